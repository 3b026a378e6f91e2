#include "chat/jinja_interp.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace rotor::jinja {

// ------------------------------------------------------------------------------------------ Template

Template::Template(std::string_view source) : program_(parse_template(source)) {}
Template::~Template() = default;

std::string Template::render(const Dict& vars, const RenderOptions& opts) const {
    Interp in(opts);
    return in.render(*program_, vars);
}

std::string Template::render(const nlohmann::ordered_json& vars, const RenderOptions& opts) const {
    if (!vars.is_object()) fail(ErrorKind::Type, "template variables must be a JSON object");
    Value v = from_json(vars);
    return render(v.dict(), opts);
}

// ------------------------------------------------------------------------------------------ limits

Interp::~Interp() {
    // Macros hold the scope they were defined in (which holds them) and namespaces can hold
    // themselves: empty them so everything is freed. The registries keep nested namespaces and
    // scopes alive meanwhile, so this clearing never recurses deeply.
    for (auto& s : captured_scopes_) s->vars.clear();
    for (auto& n : namespaces_) n->attrs.clear();
}

Interp::DepthGuard::DepthGuard(Interp& i) : in(i) {
    if (++in.depth_ > in.opts_.max_depth) {
        in.depth_--;
        fail(ErrorKind::Limit, "template recursion too deep (more than " + std::to_string(in.opts_.max_depth) + " levels)");
    }
}

void Interp::tick(size_t units) {
    work_ += units;
    if (work_ > opts_.max_work) fail(ErrorKind::Limit, "template exceeded its work limit (loop iterations, calls and filtered items)");
}

void Interp::check_size(size_t bytes) const {
    if (bytes > opts_.max_output_bytes) fail(ErrorKind::Limit, "rendered text exceeds the output size limit");
}

void Interp::check_items(size_t n) const {
    if (n > opts_.max_list_items) fail(ErrorKind::Limit, "list exceeds the size limit");
}

void Interp::append(std::string& out, std::string_view s) const {
    check_size(out.size() + s.size());
    out += s;
}

std::shared_ptr<Namespace> Interp::new_namespace() {
    auto ns = std::make_shared<Namespace>();
    namespaces_.push_back(ns);
    return ns;
}

std::string Interp::str(const Value& v) {
    if (v.is_string()) return v.str();
    std::string s;
    py_str(v, s, opts_.max_output_bytes);
    return s;
}

// ------------------------------------------------------------------------------------------ rendering

std::string Interp::render(const Program& program, const Dict& vars) {
    auto root = std::make_shared<Scope>(nullptr);
    for (auto& [k, v] : vars.entries()) root->vars[py_str(k)] = v;
    std::string out;
    exec_body(program.body, root, out);
    return out;
}

Interp::Flow Interp::exec_body(const Body& body, const std::shared_ptr<Scope>& scope, std::string& out) {
    for (auto& s : body) {
        Flow f = exec(*s, scope, out);
        if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
}

Interp::Flow Interp::exec(const Stmt& s, const std::shared_ptr<Scope>& scope, std::string& out) {
    DepthGuard g(*this);
    try {
        switch (s.kind) {
            case StmtKind::Data: append(out, static_cast<const DataStmt&>(s).text); break;
            case StmtKind::Print: {
                Value v = eval(*static_cast<const PrintStmt&>(s).expr, scope);
                if (v.is_string())
                    append(out, v.str());
                else
                    py_str(v, out, opts_.max_output_bytes);
                break;
            }
            case StmtKind::For: exec_for(static_cast<const ForStmt&>(s), scope, out); break;
            case StmtKind::If: {
                auto& st = static_cast<const IfStmt&>(s);
                for (auto& [test, body] : st.branches)
                    if (eval(*test, scope).truthy()) return exec_body(body, scope, out);
                return exec_body(st.else_body, scope, out);
            }
            case StmtKind::Set: {
                auto& st = static_cast<const SetStmt&>(s);
                assign(*st.target, eval(*st.value, scope), scope);
                break;
            }
            case StmtKind::SetBlock: {
                auto& st = static_cast<const SetBlockStmt&>(s);
                std::string buf;
                Flow f = exec_body(st.body, std::make_shared<Scope>(scope), buf);
                if (f != Flow::Normal) return f;
                Value v(std::move(buf));
                if (st.filter) v = eval_filter(static_cast<const FilterExpr&>(*st.filter), scope, &v);
                assign(*st.target, v, scope);
                break;
            }
            case StmtKind::Macro: {
                auto& def = static_cast<const MacroStmt&>(s).def;
                scope->vars[def.name] = make_macro(def, scope);
                break;
            }
            case StmtKind::CallBlock: {
                auto& st = static_cast<const CallBlockStmt&>(s);
                auto& call = static_cast<const CallExpr&>(*st.call);
                Value fn = eval(*call.callee, scope);
                CallArgs args = eval_args(call.args, scope);
                args.kwargs.emplace_back("caller", make_macro(st.caller, scope));
                Value r = this->call(fn, args);
                py_str(r, out, opts_.max_output_bytes);
                break;
            }
            case StmtKind::FilterBlock: {
                auto& st = static_cast<const FilterBlockStmt&>(s);
                std::string buf;
                Flow f = exec_body(st.body, std::make_shared<Scope>(scope), buf);
                if (f != Flow::Normal) return f;
                Value input(std::move(buf));
                Value v = eval_filter(static_cast<const FilterExpr&>(*st.filter), scope, &input);
                py_str(v, out, opts_.max_output_bytes);
                break;
            }
            case StmtKind::With: {
                auto& st = static_cast<const WithStmt&>(s);
                auto inner = std::make_shared<Scope>(scope);
                for (auto& [target, value] : st.assigns) assign(*target, eval(*value, scope), inner);
                return exec_body(st.body, inner, out);
            }
            case StmtKind::Break: return Flow::Break;
            case StmtKind::Continue: return Flow::Continue;
            case StmtKind::Scope: return exec_body(static_cast<const ScopeStmt&>(s).body, scope, out);
        }
    } catch (TemplateError& e) {
        if (e.line() == 0) throw TemplateError(e.kind(), e.message(), s.line);
        throw;
    }
    return Flow::Normal;
}

// State shared by one for loop's `loop` object and its cycle()/changed() functions.
struct LoopState {
    size_t index0 = 0;
    bool changed_called = false;
    Value last_changed;
};

void Interp::exec_for(const ForStmt& f, const std::shared_ptr<Scope>& scope, std::string& out) {
    ValueList items = iterate(eval(*f.iter, scope));
    if (f.filter) {
        ValueList kept;
        for (auto& item : items) {
            tick();
            auto tmp = std::make_shared<Scope>(scope);
            assign(*f.target, item, tmp);
            if (eval(*f.filter, tmp).truthy()) kept.push_back(item);
        }
        items = std::move(kept);
    }
    if (items.empty()) {
        exec_body(f.else_body, std::make_shared<Scope>(scope), out);
        return;
    }
    auto state = std::make_shared<LoopState>();
    auto cycle = std::make_shared<Function>();
    cycle->name = "cycle";
    cycle->call = [state](Interp&, CallArgs& a) -> Value {
        if (a.args.empty()) fail(ErrorKind::Type, "no items for cycling given");
        return a.args[state->index0 % a.args.size()];
    };
    auto changed = std::make_shared<Function>();
    changed->name = "changed";
    changed->call = [state](Interp&, CallArgs& a) -> Value {
        Value v(a.args, SeqKind::Tuple);
        if (state->changed_called && py_equal(v, state->last_changed)) return Value(false);
        state->changed_called = true;
        state->last_changed = v;
        return Value(true);
    };
    Value cycle_v{std::shared_ptr<const Function>(cycle)}, changed_v{std::shared_ptr<const Function>(changed)};
    size_t n = items.size();
    for (size_t i = 0; i < n; i++) {
        tick();
        state->index0 = i;
        auto inner = std::make_shared<Scope>(scope);
        Dict loop;
        loop.set("index0", Value(int64_t(i)));
        loop.set("index", Value(int64_t(i + 1)));
        loop.set("revindex0", Value(int64_t(n - i - 1)));
        loop.set("revindex", Value(int64_t(n - i)));
        loop.set("first", Value(i == 0));
        loop.set("last", Value(i + 1 == n));
        loop.set("length", Value(int64_t(n)));
        loop.set("depth0", Value(0));
        loop.set("depth", Value(1));
        loop.set("previtem", i > 0 ? items[i - 1] : Value::undefined_hint("there is no previous item"));
        loop.set("nextitem", i + 1 < n ? items[i + 1] : Value::undefined_hint("there is no next item"));
        loop.set("cycle", cycle_v);
        loop.set("changed", changed_v);
        inner->vars["loop"] = Value(std::move(loop));
        assign(*f.target, items[i], inner);
        if (exec_body(f.body, inner, out) == Flow::Break) break;
    }
}

// ------------------------------------------------------------------------------------------ expressions

Value Interp::lookup(const std::string& name, const std::shared_ptr<Scope>& scope) const {
    for (const Scope* s = scope.get(); s; s = s->parent.get()) {
        auto it = s->vars.find(name);
        if (it != s->vars.end()) return it->second;
    }
    if (const Value* g = find_global(name)) return *g;
    return Value::undefined_name(name);
}

void Interp::assign(const Expr& target, const Value& v, const std::shared_ptr<Scope>& scope) {
    switch (target.kind) {
        case ExprKind::Name: scope->vars[static_cast<const NameExpr&>(target).name] = v; return;
        case ExprKind::NSRef: {
            auto& r = static_cast<const NSRefExpr&>(target);
            Value ns = lookup(r.name, scope);
            if (!ns.is_namespace()) fail(ErrorKind::Runtime, "cannot assign attribute on non-namespace object");
            ns.ns().attrs.set(r.attr, v);
            return;
        }
        case ExprKind::Tuple: {
            auto& t = static_cast<const SeqExpr&>(target);
            bool iterable = v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
            if (!iterable) fail(ErrorKind::Type, "cannot unpack non-iterable " + v.type_name() + " object");
            ValueList vals = iterate(v);
            size_t want = t.items.size();
            if (vals.size() < want)
                fail(ErrorKind::Value, "not enough values to unpack (expected " + std::to_string(want) + ", got " +
                                           std::to_string(vals.size()) + ")");
            if (vals.size() > want)
                fail(ErrorKind::Value, "too many values to unpack (expected " + std::to_string(want) + ")");
            for (size_t i = 0; i < want; i++) assign(*t.items[i], vals[i], scope);
            return;
        }
        default: fail(ErrorKind::Syntax, "can't assign to this expression");
    }
}

CallArgs Interp::eval_args(const CallArgsExpr& a, const std::shared_ptr<Scope>& scope) {
    CallArgs out;
    for (auto& x : a.args) out.args.push_back(eval(*x, scope));
    if (a.dyn_args) {
        ValueList extra = iterate(eval(*a.dyn_args, scope));
        out.args.insert(out.args.end(), extra.begin(), extra.end());
    }
    for (auto& [k, x] : a.kwargs) out.kwargs.emplace_back(k, eval(*x, scope));
    if (a.dyn_kwargs) {
        Value d = eval(*a.dyn_kwargs, scope);
        if (!d.is_dict()) fail(ErrorKind::Type, "argument after ** must be a mapping, not " + d.type_name());
        for (auto& [k, v] : d.dict().entries()) {
            if (!k.is_string()) fail(ErrorKind::Type, "keywords must be strings");
            if (out.kwarg(k.str())) fail(ErrorKind::Type, "got multiple values for keyword argument '" + k.str() + "'");
            out.kwargs.emplace_back(k.str(), v);
        }
    }
    return out;
}

Value Interp::eval_filter(const FilterExpr& f, const std::shared_ptr<Scope>& scope, const Value* input) {
    if (!f.known) fail(ErrorKind::Runtime, "No filter named " + py_repr_string(f.name) + " found.");
    Value v;
    if (!f.value)
        v = input ? *input : Value();
    else if (input && f.value->kind == ExprKind::Filter)
        v = eval_filter(static_cast<const FilterExpr&>(*f.value), scope, input);
    else
        v = eval(*f.value, scope);
    CallArgs args = eval_args(f.args, scope);
    return call_filter(*this, f.name, v, args);
}

Value Interp::slice(const Value& obj, const SliceExpr& s, const std::shared_ptr<Scope>& scope) {
    bool ok = true;
    auto bound = [&](const ExprPtr& e, bool& present) -> int64_t {
        present = false;
        if (!e) return 0;
        Value v = eval(*e, scope);
        if (v.is_none()) return 0;
        if (v.is_int() || v.is_bool()) {
            present = true;
            return v.get_int();
        }
        ok = false;  // TypeError inside __getitem__: jinja2 turns it into undefined
        return 0;
    };
    bool has_start, has_stop, has_step;
    int64_t start = bound(s.start, has_start), stop = bound(s.stop, has_stop), step = bound(s.step, has_step);
    if (obj.is_undefined()) fail_undefined(obj);
    bool sliceable = obj.is_string() || (obj.is_list() && (obj.seq_kind() == SeqKind::List || obj.seq_kind() == SeqKind::Tuple));
    if (!ok || !sliceable) return Value::undefined_hint(obj.type_name() + " object has no element slice");
    if (!has_step) step = 1;
    if (step == 0) fail(ErrorKind::Value, "slice step cannot be zero");
    std::u32string u;
    if (obj.is_string()) u = to_u32(obj.str());
    int64_t len = obj.is_string() ? int64_t(u.size()) : int64_t(obj.items().size());
    // Python's slice.indices()
    int64_t lower = step < 0 ? -1 : 0, upper = step < 0 ? len - 1 : len;
    auto fix = [&](int64_t v, bool present, int64_t dflt) {
        if (!present) return dflt;
        if (v < 0) {
            v += len;
            if (v < lower) v = lower;
        } else if (v > upper) {
            v = upper;
        }
        return v;
    };
    start = fix(start, has_start, step < 0 ? upper : lower);
    stop = fix(stop, has_stop, step < 0 ? lower : upper);
    if (obj.is_string()) {
        std::u32string r;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) r += u[size_t(i)];
        return Value(from_u32(r));
    }
    ValueList r;
    auto& items = obj.items();
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) r.push_back(items[size_t(i)]);
    return Value(std::move(r), obj.seq_kind());
}

Value Interp::eval(const Expr& e, const std::shared_ptr<Scope>& scope) {
    DepthGuard g(*this);
    switch (e.kind) {
        case ExprKind::Const: return static_cast<const ConstExpr&>(e).value;
        case ExprKind::Name: return lookup(static_cast<const NameExpr&>(e).name, scope);
        case ExprKind::List:
        case ExprKind::Tuple: {
            auto& s = static_cast<const SeqExpr&>(e);
            ValueList items;
            items.reserve(s.items.size());
            for (auto& x : s.items) items.push_back(eval(*x, scope));
            return Value(std::move(items), e.kind == ExprKind::Tuple ? SeqKind::Tuple : SeqKind::List);
        }
        case ExprKind::Dict: {
            Dict d;
            for (auto& [k, v] : static_cast<const DictExpr&>(e).items) {
                Value key = eval(*k, scope);
                d.set_value(key, eval(*v, scope));
            }
            return Value(std::move(d));
        }
        case ExprKind::Attr: {
            auto& a = static_cast<const AttrExpr&>(e);
            return getattr(eval(*a.obj, scope), a.attr);
        }
        case ExprKind::Item: {
            auto& it = static_cast<const ItemExpr&>(e);
            Value obj = eval(*it.obj, scope);
            if (it.index->kind == ExprKind::Slice) return slice(obj, static_cast<const SliceExpr&>(*it.index), scope);
            return getitem(obj, eval(*it.index, scope));
        }
        case ExprKind::Slice: return Value::undefined_hint("slice used outside a subscript");
        case ExprKind::NSRef: fail(ErrorKind::Syntax, "namespace reference outside an assignment");
        case ExprKind::Call: {
            auto& c = static_cast<const CallExpr&>(e);
            Value fn = eval(*c.callee, scope);
            CallArgs args = eval_args(c.args, scope);
            return call(fn, args);
        }
        case ExprKind::Filter: return eval_filter(static_cast<const FilterExpr&>(e), scope, nullptr);
        case ExprKind::Test: {
            auto& t = static_cast<const FilterExpr&>(e);
            if (!t.known) fail(ErrorKind::Runtime, "No test named " + py_repr_string(t.name) + " found.");
            Value v = eval(*t.value, scope);
            CallArgs args = eval_args(t.args, scope);
            return Value(call_test(*this, t.name, v, args));
        }
        case ExprKind::Not: return Value(!eval(*static_cast<const UnaryExpr&>(e).operand, scope).truthy());
        case ExprKind::Neg:
        case ExprKind::Pos: {
            Value v = eval(*static_cast<const UnaryExpr&>(e).operand, scope);
            if (v.is_undefined()) fail_undefined(v);
            const char* op = e.kind == ExprKind::Neg ? "-" : "+";
            if (!v.is_number()) fail(ErrorKind::Type, std::string("bad operand type for unary ") + op + ": '" + v.type_name() + "'");
            if (e.kind == ExprKind::Pos) return v.is_bool() ? Value(v.get_int()) : v;
            if (v.is_float()) return Value(-v.get_float());
            if (v.get_int() == INT64_MIN) fail(ErrorKind::Overflow, "integer overflow (64-bit integers)");
            return Value(-v.get_int());
        }
        case ExprKind::Binary: {
            auto& b = static_cast<const BinaryExpr&>(e);
            Value l = eval(*b.left, scope);
            Value r = eval(*b.right, scope);
            return binary(b.op, l, r);
        }
        case ExprKind::And:
        case ExprKind::Or: {
            auto& b = static_cast<const BinaryExpr&>(e);
            Value l = eval(*b.left, scope);
            if (l.truthy() == (e.kind == ExprKind::Or)) return l;
            return eval(*b.right, scope);
        }
        case ExprKind::Concat: {
            std::string s;
            for (auto& p : static_cast<const ConcatExpr&>(e).parts) {
                Value v = eval(*p, scope);
                py_str(v, s, opts_.max_output_bytes);
            }
            return Value(std::move(s));
        }
        case ExprKind::Compare: {
            auto& c = static_cast<const CompareExpr&>(e);
            Value left = eval(*c.first, scope);
            for (auto& [op, x] : c.rest) {
                Value right = eval(*x, scope);
                if (!compare(op, left, right)) return Value(false);
                left = std::move(right);
            }
            return Value(true);
        }
        case ExprKind::Cond: {
            auto& c = static_cast<const CondExpr&>(e);
            if (eval(*c.test, scope).truthy()) return eval(*c.then, scope);
            if (c.otherwise) return eval(*c.otherwise, scope);
            return Value::undefined_hint("the inline if-expression on line " + std::to_string(e.line) +
                                         " evaluated to false and no else section was defined.");
        }
    }
    return Value();
}

// ------------------------------------------------------------------------------------------ macros

Value Interp::make_macro(const MacroDef& def, const std::shared_ptr<Scope>& closure) {
    if (captured_scopes_.empty() || captured_scopes_.back() != closure) captured_scopes_.push_back(closure);
    auto fn = std::make_shared<Function>();
    fn->name = def.name;
    fn->kind = Function::Kind::Macro;
    const MacroDef* d = &def;  // the Program outlives every render
    fn->call = [d, closure](Interp& in, CallArgs& args) { return in.invoke_macro(*d, closure, args); };
    return Value(std::shared_ptr<const Function>(std::move(fn)));
}

// jinja2.runtime.Macro.__call__: positional args fill parameters, then keyword args; leftovers go to
// varargs/kwargs when the body uses them, otherwise they are errors.
Value Interp::invoke_macro(const MacroDef& def, const std::shared_ptr<Scope>& closure, CallArgs& args) {
    DepthGuard g(*this);
    tick();
    auto scope = std::make_shared<Scope>(closure);
    size_t np = def.params.size(), nd = def.defaults.size();
    std::vector<bool> bound(np, false);
    size_t npos = std::min(np, args.args.size());
    for (size_t i = 0; i < npos; i++) {
        scope->vars[def.params[i]] = args.args[i];
        bound[i] = true;
    }
    std::vector<std::pair<std::string, Value>> rest;
    bool found_caller = false;
    for (auto& [k, v] : args.kwargs) {
        size_t idx = np;
        if (npos < np)
            for (size_t i = npos; i < np; i++)
                if (def.params[i] == k) idx = i;
        if (idx < np && !bound[idx]) {
            scope->vars[k] = v;
            bound[idx] = true;
            if (k == "caller") found_caller = true;
        } else {
            rest.emplace_back(k, v);
        }
    }
    if (def.uses_caller && !found_caller) {
        Value caller = Value::undefined_hint("No caller defined");
        for (size_t i = 0; i < rest.size(); i++)
            if (rest[i].first == "caller") {
                caller = rest[i].second;
                rest.erase(rest.begin() + long(i));
                break;
            }
        scope->vars["caller"] = caller;
    }
    if (def.uses_kwargs) {
        Dict kw;
        for (auto& [k, v] : rest) kw.set(k, v);
        scope->vars["kwargs"] = Value(std::move(kw));
    } else if (!rest.empty()) {
        for (auto& [k, v] : rest)
            if (k == "caller")
                fail(ErrorKind::Type, "macro " + py_repr_string(def.name) +
                                          " was invoked with two values for the special caller argument. This is most likely a bug.");
        fail(ErrorKind::Type, "macro " + py_repr_string(def.name) + " takes no keyword argument " + py_repr_string(rest[0].first));
    }
    if (def.uses_varargs) {
        ValueList extra;
        for (size_t i = np; i < args.args.size(); i++) extra.push_back(args.args[i]);
        scope->vars["varargs"] = Value(std::move(extra), SeqKind::Tuple);
    } else if (args.args.size() > np) {
        fail(ErrorKind::Type, "macro " + py_repr_string(def.name) + " takes not more than " + std::to_string(np) + " argument(s)");
    }
    // defaults are evaluated in the macro's scope, so they can use earlier parameters
    for (size_t i = 0; i < np; i++) {
        if (bound[i]) continue;
        if (i >= np - nd)
            scope->vars[def.params[i]] = eval(*def.defaults[i - (np - nd)], scope);
        else
            scope->vars[def.params[i]] = Value::undefined_hint("parameter " + py_repr_string(def.params[i]) + " was not provided");
    }
    std::string out;
    exec_body(def.body, scope, out);
    return Value(std::move(out));
}

// ------------------------------------------------------------------------------------------ Python operations

Value Interp::call(const Value& fn, CallArgs& args) {
    if (fn.is_function()) {
        tick();
        return fn.func().call(*this, args);
    }
    if (fn.is_undefined()) fail_undefined(fn);
    fail(ErrorKind::Type, "'" + fn.type_name() + "' object is not callable");
}

static Value unsafe_attr(const Value& obj, const std::string& name) {
    return Value::undefined_hint("access to attribute " + py_repr_string(name) + " of " + py_repr_string(obj.type_name()) +
                                     " object is unsafe.",
                                 ErrorKind::Security);
}

Value Interp::getattr(const Value& obj, const std::string& name) {
    if (obj.is_undefined()) fail_undefined(obj);
    if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return unsafe_attr(obj, name);
    if (obj.is_namespace()) {
        if (const Value* v = obj.ns().attrs.find(name)) return *v;
        return Value::undefined_attr(obj, name);
    }
    if (auto m = get_method(obj, name)) return *m;
    if (obj.is_dict())
        if (const Value* v = obj.dict().find(name)) return *v;
    return Value::undefined_attr(obj, name);
}

Value Interp::getitem(const Value& obj, const Value& key) {
    if (obj.is_undefined()) fail_undefined(obj);
    if (obj.is_dict()) {
        if (is_hashable(key))
            if (const Value* v = obj.dict().find_value(key)) return *v;
    } else if (obj.is_list() && (key.is_int() || key.is_bool()) &&
               (obj.seq_kind() == SeqKind::List || obj.seq_kind() == SeqKind::Tuple)) {
        auto& items = obj.items();
        int64_t i = key.get_int(), n = int64_t(items.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return items[size_t(i)];
    } else if (obj.is_string() && (key.is_int() || key.is_bool())) {
        std::u32string u = to_u32(obj.str());
        int64_t i = key.get_int(), n = int64_t(u.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return Value(from_u32(u.substr(size_t(i), 1)));
    }
    // jinja2's sandboxed getitem falls back to the attribute of that name
    if (key.is_string()) {
        const std::string& name = key.str();
        if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return unsafe_attr(obj, name);
        if (obj.is_namespace())
            if (const Value* v = obj.ns().attrs.find(name)) return *v;
        if (auto m = get_method(obj, name)) return *m;
    }
    return Value::undefined_item(obj, key);
}

ValueList Interp::iterate(const Value& v) {
    switch (v.type()) {
        case Value::Type::List: return v.items();
        case Value::Type::Dict: {
            ValueList keys;
            keys.reserve(v.dict().size());
            for (auto& [k, x] : v.dict().entries()) keys.push_back(k);
            return keys;
        }
        case Value::Type::String: {
            ValueList chars;
            const std::string& s = v.str();
            for (size_t i = 0; i < s.size();) {
                size_t b = i;
                utf8_next(s, i);
                chars.emplace_back(s.substr(b, i - b));
            }
            return chars;
        }
        case Value::Type::Undefined: return {};
        default: fail(ErrorKind::Type, "'" + v.type_name() + "' object is not iterable");
    }
}

static bool mul_overflow(int64_t a, int64_t b, int64_t& r) { return __builtin_mul_overflow(a, b, &r); }

// Python's float floor division and modulo (results take the sign of the divisor).
static double py_fmod(double x, double y) {
    double m = std::fmod(x, y);
    if (m != 0) {
        if ((y < 0) != (m < 0)) m += y;
    } else {
        m = std::copysign(0.0, y);
    }
    return m;
}
static double py_floordiv(double x, double y) {
    double m = std::fmod(x, y);
    double div = (x - m) / y;
    if (m != 0 && ((y < 0) != (m < 0))) div -= 1.0;
    if (div == 0) return std::copysign(0.0, x / y);
    double fl = std::floor(div);
    if (div - fl > 0.5) fl += 1.0;
    return fl;
}

Value Interp::binary(BinOp op, const Value& a, const Value& b) {
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    static const char* names[] = {"+", "-", "*", "/", "//", "%", "**"};
    auto unsupported = [&]() -> Value {
        fail(ErrorKind::Type, std::string("unsupported operand type(s) for ") + names[int(op)] + ": '" + a.type_name() +
                                  "' and '" + b.type_name() + "'");
    };
    auto overflow = []() -> Value { fail(ErrorKind::Overflow, "integer overflow (64-bit integers)"); };
    if (a.is_number() && b.is_number()) {
        bool ints = !a.is_float() && !b.is_float();
        int64_t x = a.get_int(), y = b.get_int(), r = 0;
        double fx = a.get_float(), fy = b.get_float();
        switch (op) {
            case BinOp::Add:
                if (!ints) return Value(fx + fy);
                if (__builtin_add_overflow(x, y, &r)) return overflow();
                return Value(r);
            case BinOp::Sub:
                if (!ints) return Value(fx - fy);
                if (__builtin_sub_overflow(x, y, &r)) return overflow();
                return Value(r);
            case BinOp::Mul:
                if (!ints) return Value(fx * fy);
                if (mul_overflow(x, y, r)) return overflow();
                return Value(r);
            case BinOp::Div:
                if (fy == 0) fail(ErrorKind::ZeroDivision, ints ? "division by zero" : "float division by zero");
                return Value(fx / fy);
            case BinOp::FloorDiv:
                if (ints) {
                    if (y == 0) fail(ErrorKind::ZeroDivision, "integer division or modulo by zero");
                    if (x == INT64_MIN && y == -1) return overflow();
                    int64_t q = x / y;
                    if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
                    return Value(q);
                }
                if (fy == 0) fail(ErrorKind::ZeroDivision, "float floor division by zero");
                return Value(py_floordiv(fx, fy));
            case BinOp::Mod:
                if (ints) {
                    if (y == 0) fail(ErrorKind::ZeroDivision, "integer modulo by zero");
                    if (y == -1) return Value(int64_t(0));
                    int64_t m = x % y;
                    if (m != 0 && ((m < 0) != (y < 0))) m += y;
                    return Value(m);
                }
                if (fy == 0) fail(ErrorKind::ZeroDivision, "float modulo");
                return Value(py_fmod(fx, fy));
            case BinOp::Pow:
                if (ints && y >= 0) {
                    int64_t result = 1, base = x;
                    for (int64_t e = y; e > 0; e >>= 1) {
                        if ((e & 1) && mul_overflow(result, base, result)) return overflow();
                        if (e > 1 && mul_overflow(base, base, base)) return overflow();
                    }
                    return Value(result);
                }
                if (fx == 0 && fy < 0) fail(ErrorKind::ZeroDivision, "0.0 cannot be raised to a negative power");
                if (fx < 0 && fy != std::floor(fy)) fail(ErrorKind::Value, "complex results are not supported");
                return Value(std::pow(fx, fy));
        }
    }
    switch (op) {
        case BinOp::Add:
            if (a.is_string() && b.is_string()) {
                check_size(a.str().size() + b.str().size());
                if (a.is_markup() || b.is_markup()) {  // Markup escapes plain text added to it
                    std::string l = a.is_markup() ? a.str() : html_escape(a.str());
                    std::string r = b.is_markup() ? b.str() : html_escape(b.str());
                    check_size(l.size() + r.size());
                    return Value(l + r, true);
                }
                return Value(a.str() + b.str());
            }
            if (a.is_string()) fail(ErrorKind::Type, "can only concatenate str (not \"" + b.type_name() + "\") to str");
            if (a.is_list() && (a.seq_kind() == SeqKind::List || a.seq_kind() == SeqKind::Tuple)) {
                if (!b.is_list() || b.seq_kind() != a.seq_kind())
                    fail(ErrorKind::Type, "can only concatenate " + a.type_name() + " (not \"" + b.type_name() + "\") to " + a.type_name());
                check_items(a.items().size() + b.items().size());
                tick(a.items().size() + b.items().size());
                ValueList r = a.items();
                r.insert(r.end(), b.items().begin(), b.items().end());
                return Value(std::move(r), a.seq_kind());
            }
            return unsupported();
        case BinOp::Mul: {
            const Value* seq = (a.is_string() || a.is_list()) ? &a : (b.is_string() || b.is_list()) ? &b : nullptr;
            const Value* count = seq == &a ? &b : &a;
            if (!seq || (seq->is_list() && seq->seq_kind() != SeqKind::List && seq->seq_kind() != SeqKind::Tuple)) return unsupported();
            if (count->is_float()) fail(ErrorKind::Type, "can't multiply sequence by non-int of type 'float'");
            if (!count->is_int() && !count->is_bool())
                fail(ErrorKind::Type, "can't multiply sequence by non-int of type '" + count->type_name() + "'");
            int64_t n = std::max<int64_t>(0, count->get_int());
            if (seq->is_string()) {
                const std::string& s = seq->str();
                if (!s.empty() && uint64_t(n) > opts_.max_output_bytes / s.size()) check_size(SIZE_MAX);
                tick(s.size() * size_t(n) / 256);
                std::string r;
                r.reserve(s.size() * size_t(n));
                for (int64_t i = 0; i < n; i++) r += s;
                return Value(std::move(r), seq->is_markup());
            }
            auto& items = seq->items();
            if (!items.empty() && uint64_t(n) > opts_.max_list_items / items.size()) check_items(SIZE_MAX);
            tick(items.size() * size_t(n));
            ValueList r;
            for (int64_t i = 0; i < n; i++) r.insert(r.end(), items.begin(), items.end());
            return Value(std::move(r), seq->seq_kind());
        }
        case BinOp::Mod:
            if (a.is_string()) return Value(percent_format(*this, a.str(), b), a.is_markup());
            return unsupported();
        default: return unsupported();
    }
}

bool Interp::contains(const Value& container, const Value& item) {
    switch (container.type()) {
        case Value::Type::String:
            if (!item.is_string())
                fail(ErrorKind::Type, "'in <string>' requires string as left operand, not " + item.type_name());
            return container.str().find(item.str()) != std::string::npos;
        case Value::Type::List:
            tick(container.items().size() / 16);
            for (auto& x : container.items())
                if (py_equal(x, item)) return true;
            return false;
        case Value::Type::Dict:
            if (!is_hashable(item)) fail(ErrorKind::Type, "unhashable type: '" + item.type_name() + "'");
            return container.dict().find_value(item) != nullptr;
        case Value::Type::Undefined: return false;
        default: fail(ErrorKind::Type, "argument of type '" + container.type_name() + "' is not iterable");
    }
}

bool Interp::compare(CmpOp op, const Value& a, const Value& b) {
    switch (op) {
        case CmpOp::Eq: return py_equal(a, b);
        case CmpOp::Ne: return !py_equal(a, b);
        case CmpOp::Lt: return py_cmp(a, b, "<") == -1;
        case CmpOp::Le: {
            int c = py_cmp(a, b, "<=");
            return c == -1 || c == 0;
        }
        case CmpOp::Gt: return py_cmp(a, b, ">") == 1;
        case CmpOp::Ge: {
            int c = py_cmp(a, b, ">=");
            return c == 1 || c == 0;
        }
        case CmpOp::In: return contains(b, a);
        case CmpOp::NotIn: return !contains(b, a);
    }
    return false;
}

}  // namespace rotor::jinja
