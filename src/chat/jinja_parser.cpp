#include "chat/jinja_parser.h"

#include <algorithm>
#include <set>

namespace rotor::jinja {

namespace {

// Deeper nesting than this is rejected: it bounds the recursion of both parser and evaluator
// (Python's own compiler gives up far earlier on such templates).
constexpr int kMaxNesting = 200;

std::string describe_expr(std::string_view expr) {
    if (expr.substr(0, 5) == "name:") return std::string(expr.substr(5));
    if (expr == "block_end") return "end of statement block";
    if (expr == "variable_end") return "end of print statement";
    if (expr == "block_begin") return "begin of statement block";
    if (expr == "eof") return "end of template";
    return std::string(expr);
}

bool test_token(const Token& t, std::string_view expr) {
    if (expr.substr(0, 5) == "name:") return t.type == Tok::Name && t.text == expr.substr(5);
    if (expr == "name") return t.type == Tok::Name;
    if (expr == "block_end") return t.type == Tok::BlockEnd;
    if (expr == "variable_end") return t.type == Tok::VarEnd;
    if (expr == "eof") return t.type == Tok::Eof;
    return t.type == Tok::Op && t.text == expr;
}

// Height of an expression from its direct children's cached heights, so that long left-associative
// chains (a + b + c ...) cannot make the evaluator recurse without bound either.
int compute_depth(const Expr* e);

class Parser {
public:
    explicit Parser(std::vector<Token> toks) : toks_(std::move(toks)) {}

    std::unique_ptr<Program> parse() {
        auto prog = std::make_unique<Program>();
        prog->body = subparse(nullptr);
        return prog;
    }

private:
    using EndTokens = std::vector<std::string>;

    std::vector<Token> toks_;
    size_t i_ = 0;
    std::vector<std::string> tag_stack_;
    std::vector<const EndTokens*> end_token_stack_;
    int depth_ = 0;
    int loop_depth_ = 0;
    std::vector<MacroDef*> macro_stack_;

    struct DepthGuard {
        Parser& p;
        explicit DepthGuard(Parser& pp) : p(pp) {
            if (++p.depth_ > kMaxNesting) p.fail("template nesting too deep");
        }
        ~DepthGuard() { p.depth_--; }
    };

    const Token& cur() const { return toks_[i_]; }
    const Token& look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
    const Token& next() {
        const Token& t = toks_[i_];
        if (i_ + 1 < toks_.size()) i_++;
        return t;
    }
    bool skip_if(std::string_view expr) {
        if (!test_token(cur(), expr)) return false;
        next();
        return true;
    }
    const Token& expect(std::string_view expr) {
        if (!test_token(cur(), expr)) {
            std::string d = describe_expr(expr);
            if (cur().type == Tok::Eof) fail("unexpected end of template, expected " + py_repr_string(d) + ".");
            fail("expected token " + py_repr_string(d) + ", got " + py_repr_string(describe_token(cur())));
        }
        return next();
    }
    [[noreturn]] void fail(const std::string& msg, ErrorKind kind = ErrorKind::Syntax) const {
        throw TemplateError(kind, msg, cur().line);
    }

    [[noreturn]] void fail_ut_eof(const std::string* name, std::vector<const EndTokens*> stack) {
        std::set<std::string> expected;
        for (auto* e : stack)
            for (auto& x : *e) expected.insert(describe_expr(x));
        std::string looking;
        if (!stack.empty()) {
            for (auto& x : *stack.back()) {
                if (!looking.empty()) looking += " or ";
                looking += py_repr_string(describe_expr(x));
            }
        }
        std::string msg = name ? "Encountered unknown tag " + py_repr_string(*name) + "." : "Unexpected end of template.";
        if (!looking.empty()) {
            if (name && expected.count(*name))
                msg += " You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for " +
                       looking + ".";
            else
                msg += " Jinja was looking for the following tags: " + looking + ".";
        }
        if (!tag_stack_.empty()) msg += " The innermost block that needs to be closed is " + py_repr_string(tag_stack_.back()) + ".";
        fail(msg);
    }

    // ---------------------------------------------------------------------------------- statements

    Body subparse(const EndTokens* end_tokens) {
        DepthGuard g(*this);
        Body body;
        if (end_tokens) end_token_stack_.push_back(end_tokens);
        while (cur().type != Tok::Eof) {
            const Token& t = cur();
            if (t.type == Tok::Data) {
                auto d = std::make_unique<DataStmt>();
                d->line = t.line;
                d->text = t.text;
                body.push_back(std::move(d));
                next();
            } else if (t.type == Tok::VarBegin) {
                next();
                auto p = std::make_unique<PrintStmt>();
                p->line = t.line;
                p->expr = parse_tuple(false, true, {}, false);
                expect("variable_end");
                body.push_back(std::move(p));
            } else if (t.type == Tok::BlockBegin) {
                next();
                if (end_tokens) {
                    for (auto& e : *end_tokens)
                        if (test_token(cur(), e)) {
                            end_token_stack_.pop_back();
                            return body;
                        }
                }
                if (auto s = parse_statement()) body.push_back(std::move(s));
                expect("block_end");
            } else {
                fail("unexpected " + py_repr_string(describe_token(t)));
            }
        }
        if (end_tokens) end_token_stack_.pop_back();
        return body;
    }

    Body parse_statements(const EndTokens& end_tokens, bool drop_needle) {
        skip_if(":");
        expect("block_end");
        Body body = subparse(&end_tokens);
        if (cur().type == Tok::Eof) {
            auto stack = end_token_stack_;
            stack.push_back(&end_tokens);
            fail_ut_eof(nullptr, stack);
        }
        if (drop_needle) next();
        return body;
    }

    StmtPtr parse_statement() {
        const Token& t = cur();
        if (t.type != Tok::Name) fail("tag name expected");
        std::string name = t.text;
        int line = t.line;
        tag_stack_.push_back(name);
        StmtPtr s;
        if (name == "for") s = parse_for();
        else if (name == "if") s = parse_if();
        else if (name == "set") s = parse_set();
        else if (name == "macro") s = parse_macro();
        else if (name == "call") s = parse_call_block();
        else if (name == "filter") s = parse_filter_block();
        else if (name == "with") s = parse_with();
        else if (name == "print") s = parse_print();
        else if (name == "generation") s = parse_generation();
        else if (name == "break" || name == "continue") {
            next();
            if (loop_depth_ == 0) fail("'" + name + "' outside loop");
            s = std::make_unique<SimpleStmt>(name == "break" ? StmtKind::Break : StmtKind::Continue);
        } else if (name == "block" || name == "extends" || name == "include" || name == "import" || name == "from" ||
                   name == "autoescape") {
            fail("the '" + name + "' tag is not supported (chat templates are self-contained)");
        } else {
            tag_stack_.pop_back();
            fail_ut_eof(&name, end_token_stack_);
        }
        s->line = line;
        tag_stack_.pop_back();
        return s;
    }

    StmtPtr parse_for() {
        expect("name:for");
        auto f = std::make_unique<ForStmt>();
        f->target = parse_assign_target(true, false, {"name:in"}, false);
        expect("name:in");
        f->iter = parse_tuple(false, false, {"name:recursive"}, false);
        if (skip_if("name:if")) f->filter = parse_expression(true);
        if (skip_if("name:recursive")) fail("recursive for loops are not supported");
        static const EndTokens body_end{"name:endfor", "name:else"}, else_end{"name:endfor"};
        loop_depth_++;
        f->body = parse_statements(body_end, false);
        loop_depth_--;
        if (next().text != "endfor") f->else_body = parse_statements(else_end, true);
        return f;
    }

    StmtPtr parse_if() {
        expect("name:if");
        auto s = std::make_unique<IfStmt>();
        static const EndTokens body_end{"name:elif", "name:else", "name:endif"}, else_end{"name:endif"};
        while (true) {
            ExprPtr test = parse_tuple(false, false, {}, false);
            Body body = parse_statements(body_end, false);
            s->branches.emplace_back(std::move(test), std::move(body));
            const Token& t = next();
            if (t.is_name("elif")) continue;
            if (t.is_name("else")) s->else_body = parse_statements(else_end, true);
            break;
        }
        return s;
    }

    StmtPtr parse_set() {
        next();
        ExprPtr target = parse_assign_target(true, false, {}, true);
        if (skip_if("=")) {
            auto s = std::make_unique<SetStmt>();
            s->target = std::move(target);
            s->value = parse_tuple(false, true, {}, false);
            return s;
        }
        auto s = std::make_unique<SetBlockStmt>();
        s->target = std::move(target);
        s->filter = parse_filter(nullptr, false);
        static const EndTokens end{"name:endset"};
        s->body = parse_statements(end, true);
        return s;
    }

    void parse_signature(MacroDef& def) {
        expect("(");
        while (!cur().is_op(")")) {
            if (!def.params.empty()) expect(",");
            const Token& n = expect("name");
            std::string pname = n.text;
            if (skip_if("=")) {
                def.defaults.push_back(parse_expression(true));
            } else if (!def.defaults.empty()) {
                fail("non-default argument follows default argument");
            }
            def.params.push_back(pname);
        }
        expect(")");
    }

    void parse_macro_body(MacroDef& def, const EndTokens& end) {
        int saved_loops = loop_depth_;
        loop_depth_ = 0;
        macro_stack_.push_back(&def);
        def.body = parse_statements(end, true);
        macro_stack_.pop_back();
        loop_depth_ = saved_loops;
    }

    StmtPtr parse_macro() {
        next();
        auto m = std::make_unique<MacroStmt>();
        m->def.name = expect("name").text;
        parse_signature(m->def);
        static const EndTokens end{"name:endmacro"};
        parse_macro_body(m->def, end);
        return m;
    }

    StmtPtr parse_call_block() {
        next();
        auto c = std::make_unique<CallBlockStmt>();
        c->caller.name = "caller";
        if (cur().is_op("(")) parse_signature(c->caller);
        c->call = parse_expression(true);
        if (c->call->kind != ExprKind::Call) fail("expected call");
        static const EndTokens end{"name:endcall"};
        parse_macro_body(c->caller, end);
        return c;
    }

    StmtPtr parse_filter_block() {
        next();
        auto f = std::make_unique<FilterBlockStmt>();
        f->filter = parse_filter(nullptr, true);
        static const EndTokens end{"name:endfilter"};
        f->body = parse_statements(end, true);
        return f;
    }

    StmtPtr parse_with() {
        next();
        auto w = std::make_unique<WithStmt>();
        while (cur().type != Tok::BlockEnd) {
            if (!w->assigns.empty()) expect(",");
            ExprPtr target = parse_assign_target(true, false, {}, false);
            expect("=");
            w->assigns.emplace_back(std::move(target), parse_expression(true));
        }
        static const EndTokens end{"name:endwith"};
        w->body = parse_statements(end, true);
        return w;
    }

    StmtPtr parse_print() {
        next();
        // {% print a, b %} prints each expression: same as a Print of each, in a Scope
        auto s = std::make_unique<ScopeStmt>();
        bool first = true;
        while (cur().type != Tok::BlockEnd) {
            if (!first) expect(",");
            first = false;
            auto p = std::make_unique<PrintStmt>();
            p->line = cur().line;
            p->expr = parse_expression(true);
            s->body.push_back(std::move(p));
        }
        return s;
    }

    StmtPtr parse_generation() {
        next();
        auto s = std::make_unique<ScopeStmt>();
        static const EndTokens end{"name:endgeneration"};
        s->body = parse_statements(end, true);
        return s;
    }

    // ---------------------------------------------------------------------------------- targets

    ExprPtr parse_assign_target(bool with_tuple, bool name_only, const EndTokens& extra_end, bool with_namespace) {
        ExprPtr target;
        if (name_only) {
            auto n = std::make_unique<NameExpr>();
            n->line = cur().line;
            n->name = expect("name").text;
            target = std::move(n);
        } else if (with_namespace && cur().type == Tok::Name && look().is_op(".")) {
            auto r = std::make_unique<NSRefExpr>();
            r->line = cur().line;
            r->name = next().text;
            next();
            r->attr = expect("name").text;
            target = std::move(r);
        } else if (with_tuple) {
            target = parse_tuple(true, true, extra_end, false);
        } else {
            target = parse_primary();
        }
        check_assignable(target.get());
        return target;
    }

    void check_assignable(const Expr* e) {
        switch (e->kind) {
            case ExprKind::Name: {
                auto& n = static_cast<const NameExpr*>(e)->name;
                if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None")
                    fail("can't assign to 'const'");
                return;
            }
            case ExprKind::NSRef: return;
            case ExprKind::Tuple:
                for (auto& x : static_cast<const SeqExpr*>(e)->items) check_assignable(x.get());
                return;
            case ExprKind::Const: fail("can't assign to 'const'");
            case ExprKind::List: fail("can't assign to 'list'");
            case ExprKind::Dict: fail("can't assign to 'dict'");
            default: fail("can't assign to '" + std::string("expression") + "'");
        }
    }

    // ---------------------------------------------------------------------------------- expressions

    ExprPtr finish(ExprPtr e, int line) {
        e->line = line;
        e->depth = compute_depth(e.get());
        if (e->depth > kMaxNesting) fail("expression nesting too deep");
        return e;
    }

    bool is_tuple_end(const EndTokens& extra) const {
        const Token& t = cur();
        if (t.type == Tok::VarEnd || t.type == Tok::BlockEnd || t.is_op(")")) return true;
        for (auto& e : extra)
            if (test_token(t, e)) return true;
        return false;
    }

    ExprPtr parse_tuple(bool simplified, bool with_condexpr, const EndTokens& extra_end, bool explicit_parens) {
        int line = cur().line;
        std::vector<ExprPtr> args;
        bool is_tuple = false;
        while (true) {
            if (!args.empty()) expect(",");
            if (is_tuple_end(extra_end)) break;
            args.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
            if (cur().is_op(","))
                is_tuple = true;
            else
                break;
        }
        if (!is_tuple) {
            if (!args.empty()) return std::move(args[0]);
            if (!explicit_parens) fail("Expected an expression, got " + py_repr_string(describe_token(cur())));
        }
        auto t = std::make_unique<SeqExpr>(ExprKind::Tuple);
        t->items = std::move(args);
        return finish(std::move(t), line);
    }

    ExprPtr parse_expression(bool with_condexpr) {
        DepthGuard g(*this);
        return with_condexpr ? parse_condexpr() : parse_or();
    }

    ExprPtr parse_condexpr() {
        int line = cur().line;
        ExprPtr expr1 = parse_or();
        while (skip_if("name:if")) {
            auto c = std::make_unique<CondExpr>();
            c->test = parse_or();
            if (skip_if("name:else")) c->otherwise = parse_condexpr();
            c->then = std::move(expr1);
            expr1 = finish(std::move(c), line);
            line = cur().line;
        }
        return expr1;
    }

    ExprPtr binary(ExprKind k, ExprPtr l, ExprPtr r, int line, BinOp op = BinOp::Add) {
        auto b = std::make_unique<BinaryExpr>(k);
        b->op = op;
        b->left = std::move(l);
        b->right = std::move(r);
        return finish(std::move(b), line);
    }

    ExprPtr parse_or() {
        int line = cur().line;
        ExprPtr left = parse_and();
        while (skip_if("name:or")) left = binary(ExprKind::Or, std::move(left), parse_and(), line);
        return left;
    }

    ExprPtr parse_and() {
        int line = cur().line;
        ExprPtr left = parse_not();
        while (skip_if("name:and")) left = binary(ExprKind::And, std::move(left), parse_not(), line);
        return left;
    }

    ExprPtr parse_not() {
        if (cur().is_name("not")) {
            DepthGuard g(*this);
            int line = next().line;
            auto u = std::make_unique<UnaryExpr>(ExprKind::Not);
            u->operand = parse_not();
            return finish(std::move(u), line);
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        int line = cur().line;
        ExprPtr expr = parse_math1();
        std::vector<std::pair<CmpOp, ExprPtr>> ops;
        while (true) {
            const Token& t = cur();
            CmpOp op;
            if (t.is_op("==")) op = CmpOp::Eq;
            else if (t.is_op("!=")) op = CmpOp::Ne;
            else if (t.is_op("<")) op = CmpOp::Lt;
            else if (t.is_op("<=")) op = CmpOp::Le;
            else if (t.is_op(">")) op = CmpOp::Gt;
            else if (t.is_op(">=")) op = CmpOp::Ge;
            else if (t.is_name("in")) op = CmpOp::In;
            else if (t.is_name("not") && look().is_name("in")) {
                next();
                op = CmpOp::NotIn;
            } else
                break;
            next();
            ops.emplace_back(op, parse_math1());
        }
        if (ops.empty()) return expr;
        auto c = std::make_unique<CompareExpr>();
        c->first = std::move(expr);
        c->rest = std::move(ops);
        return finish(std::move(c), line);
    }

    ExprPtr parse_math1() {
        int line = cur().line;
        ExprPtr left = parse_concat();
        while (cur().is_op("+") || cur().is_op("-")) {
            BinOp op = next().text == "+" ? BinOp::Add : BinOp::Sub;
            left = binary(ExprKind::Binary, std::move(left), parse_concat(), line, op);
        }
        return left;
    }

    ExprPtr parse_concat() {
        int line = cur().line;
        ExprPtr first = parse_math2();
        if (!cur().is_op("~")) return first;
        auto c = std::make_unique<ConcatExpr>();
        c->parts.push_back(std::move(first));
        while (skip_if("~")) c->parts.push_back(parse_math2());
        return finish(std::move(c), line);
    }

    ExprPtr parse_math2() {
        int line = cur().line;
        ExprPtr left = parse_pow();
        while (true) {
            BinOp op;
            if (cur().is_op("*")) op = BinOp::Mul;
            else if (cur().is_op("/")) op = BinOp::Div;
            else if (cur().is_op("//")) op = BinOp::FloorDiv;
            else if (cur().is_op("%")) op = BinOp::Mod;
            else break;
            next();
            left = binary(ExprKind::Binary, std::move(left), parse_pow(), line, op);
        }
        return left;
    }

    ExprPtr parse_pow() {
        int line = cur().line;
        ExprPtr left = parse_unary(true);
        while (skip_if("**")) left = binary(ExprKind::Binary, std::move(left), parse_unary(true), line, BinOp::Pow);
        return left;
    }

    ExprPtr parse_unary(bool with_filter) {
        DepthGuard g(*this);
        int line = cur().line;
        ExprPtr node;
        if (cur().is_op("-") || cur().is_op("+")) {
            ExprKind k = next().text == "-" ? ExprKind::Neg : ExprKind::Pos;
            auto u = std::make_unique<UnaryExpr>(k);
            u->operand = parse_unary(false);
            node = finish(std::move(u), line);
        } else {
            node = parse_primary();
        }
        node = parse_postfix(std::move(node));
        if (with_filter) node = parse_filter_expr(std::move(node));
        return node;
    }

    ExprPtr parse_primary() {
        DepthGuard g(*this);
        const Token& t = cur();
        int line = t.line;
        if (t.type == Tok::Name) {
            next();
            auto c = std::make_unique<ConstExpr>();
            if (t.text == "true" || t.text == "True") c->value = Value(true);
            else if (t.text == "false" || t.text == "False") c->value = Value(false);
            else if (t.text == "none" || t.text == "None") c->value = Value::none();
            else {
                auto n = std::make_unique<NameExpr>();
                n->name = t.text;
                note_name(n->name);
                return finish(std::move(n), line);
            }
            return finish(std::move(c), line);
        }
        if (t.type == Tok::String) {
            std::string s;
            while (cur().type == Tok::String) s += next().text;  // adjacent literals concatenate
            auto c = std::make_unique<ConstExpr>();
            c->value = Value(std::move(s));
            return finish(std::move(c), line);
        }
        if (t.type == Tok::Integer || t.type == Tok::Float) {
            next();
            auto c = std::make_unique<ConstExpr>();
            c->value = t.type == Tok::Integer ? Value(t.ival) : Value(t.fval);
            return finish(std::move(c), line);
        }
        if (t.is_op("(")) {
            next();
            ExprPtr e = parse_tuple(false, true, {}, true);
            expect(")");
            return e;
        }
        if (t.is_op("[")) return parse_list();
        if (t.is_op("{")) return parse_dict();
        fail("unexpected " + py_repr_string(describe_token(t)));
    }

    // Macros that read caller/varargs/kwargs accept those (jinja2 finds them by static analysis).
    void note_name(const std::string& n) {
        for (MacroDef* m : macro_stack_) {
            if (n == "caller") m->uses_caller = true;
            if (n == "varargs") m->uses_varargs = true;
            if (n == "kwargs") m->uses_kwargs = true;
        }
    }

    ExprPtr parse_list() {
        int line = expect("[").line;
        auto l = std::make_unique<SeqExpr>(ExprKind::List);
        while (!cur().is_op("]")) {
            if (!l->items.empty()) expect(",");
            if (cur().is_op("]")) break;
            l->items.push_back(parse_expression(true));
        }
        expect("]");
        return finish(std::move(l), line);
    }

    ExprPtr parse_dict() {
        int line = expect("{").line;
        auto d = std::make_unique<DictExpr>();
        while (!cur().is_op("}")) {
            if (!d->items.empty()) expect(",");
            if (cur().is_op("}")) break;
            ExprPtr key = parse_expression(true);
            expect(":");
            d->items.emplace_back(std::move(key), parse_expression(true));
        }
        expect("}");
        return finish(std::move(d), line);
    }

    ExprPtr parse_postfix(ExprPtr node) {
        while (true) {
            if (cur().is_op(".") || cur().is_op("["))
                node = parse_subscript(std::move(node));
            else if (cur().is_op("("))
                node = parse_call(std::move(node));
            else
                break;
        }
        return node;
    }

    ExprPtr parse_filter_expr(ExprPtr node) {
        while (true) {
            if (cur().is_op("|"))
                node = parse_filter(std::move(node), false);
            else if (cur().is_name("is"))
                node = parse_test(std::move(node));
            else if (cur().is_op("("))
                node = parse_call(std::move(node));
            else
                break;
        }
        return node;
    }

    ExprPtr parse_subscript(ExprPtr node) {
        const Token& t = next();
        int line = t.line;
        if (t.is_op(".")) {
            const Token& a = next();
            if (a.type == Tok::Name) {
                auto e = std::make_unique<AttrExpr>();
                e->obj = std::move(node);
                e->attr = a.text;
                return finish(std::move(e), line);
            }
            if (a.type != Tok::Integer) fail("expected name or number");
            auto c = std::make_unique<ConstExpr>();
            c->value = Value(a.ival);
            c->line = a.line;
            auto e = std::make_unique<ItemExpr>();
            e->obj = std::move(node);
            e->index = std::move(c);
            return finish(std::move(e), line);
        }
        // '['
        std::vector<ExprPtr> args;
        while (!cur().is_op("]")) {
            if (!args.empty()) expect(",");
            args.push_back(parse_subscribed());
        }
        expect("]");
        auto e = std::make_unique<ItemExpr>();
        e->obj = std::move(node);
        if (args.size() == 1) {
            e->index = std::move(args[0]);
        } else {
            auto tup = std::make_unique<SeqExpr>(ExprKind::Tuple);
            tup->items = std::move(args);
            tup->line = line;
            e->index = std::move(tup);
        }
        return finish(std::move(e), line);
    }

    ExprPtr parse_subscribed() {
        int line = cur().line;
        ExprPtr start;
        if (cur().is_op(":")) {
            next();
        } else {
            ExprPtr node = parse_expression(true);
            if (!cur().is_op(":")) return node;
            next();
            start = std::move(node);
        }
        auto s = std::make_unique<SliceExpr>();
        s->start = std::move(start);
        if (!cur().is_op(":") && !cur().is_op("]") && !cur().is_op(",")) s->stop = parse_expression(true);
        if (cur().is_op(":")) {
            next();
            if (!cur().is_op("]") && !cur().is_op(",")) s->step = parse_expression(true);
        }
        return finish(std::move(s), line);
    }

    CallArgsExpr parse_call_args() {
        expect("(");
        CallArgsExpr a;
        bool require_comma = false;
        auto ensure = [&](bool ok) {
            if (!ok) fail("invalid syntax for function call expression");
        };
        while (!cur().is_op(")")) {
            if (require_comma) {
                expect(",");
                if (cur().is_op(")")) break;
            }
            if (cur().is_op("*")) {
                ensure(!a.dyn_args && !a.dyn_kwargs);
                next();
                a.dyn_args = parse_expression(true);
            } else if (cur().is_op("**")) {
                ensure(!a.dyn_kwargs);
                next();
                a.dyn_kwargs = parse_expression(true);
            } else if (cur().type == Tok::Name && look().is_op("=")) {
                ensure(!a.dyn_kwargs);
                std::string key = next().text;
                next();
                a.kwargs.emplace_back(key, parse_expression(true));
            } else {
                ensure(!a.dyn_args && !a.dyn_kwargs && a.kwargs.empty());
                a.args.push_back(parse_expression(true));
            }
            require_comma = true;
        }
        expect(")");
        return a;
    }

    ExprPtr parse_call(ExprPtr node) {
        int line = cur().line;
        auto c = std::make_unique<CallExpr>();
        c->callee = std::move(node);
        c->args = parse_call_args();
        return finish(std::move(c), line);
    }

    std::string dotted_name() {
        std::string name = expect("name").text;
        while (cur().is_op(".")) {
            next();
            name += "." + expect("name").text;
        }
        return name;
    }

    ExprPtr parse_filter(ExprPtr node, bool start_inline) {
        while (cur().is_op("|") || start_inline) {
            if (!start_inline) next();
            start_inline = false;
            int line = cur().line;
            auto f = std::make_unique<FilterExpr>(ExprKind::Filter);
            f->name = dotted_name();
            f->known = is_known_filter(f->name);
            if (cur().is_op("(")) f->args = parse_call_args();
            f->value = std::move(node);
            node = finish(std::move(f), line);
        }
        return node;
    }

    ExprPtr parse_test(ExprPtr node) {
        int line = next().line;  // 'is'
        bool negated = skip_if("name:not");
        auto t = std::make_unique<FilterExpr>(ExprKind::Test);
        t->name = dotted_name();
        t->known = is_known_test(t->name);
        const Token& c = cur();
        if (c.is_op("(")) {
            t->args = parse_call_args();
        } else if ((c.type == Tok::Name || c.type == Tok::String || c.type == Tok::Integer || c.type == Tok::Float ||
                    c.is_op("[") || c.is_op("{")) &&
                   !c.is_name("else") && !c.is_name("or") && !c.is_name("and")) {
            if (c.is_name("is")) fail("You cannot chain multiple tests with is");
            ExprPtr arg = parse_primary();
            t->args.args.push_back(parse_postfix(std::move(arg)));
        }
        t->value = std::move(node);
        ExprPtr result = finish(std::move(t), line);
        if (negated) {
            auto u = std::make_unique<UnaryExpr>(ExprKind::Not);
            u->operand = std::move(result);
            result = finish(std::move(u), line);
        }
        return result;
    }
};

int depth_of(const Expr* e) { return e ? std::max(e->depth, 1) : 0; }

int compute_depth(const Expr* e) {
    auto args_depth = [](const CallArgsExpr& a) {
        int d = std::max(depth_of(a.dyn_args.get()), depth_of(a.dyn_kwargs.get()));
        for (auto& x : a.args) d = std::max(d, depth_of(x.get()));
        for (auto& [k, x] : a.kwargs) d = std::max(d, depth_of(x.get()));
        return d;
    };
    int d = 0;
    switch (e->kind) {
        case ExprKind::Const:
        case ExprKind::Name:
        case ExprKind::NSRef: return 1;
        case ExprKind::List:
        case ExprKind::Tuple:
            for (auto& x : static_cast<const SeqExpr*>(e)->items) d = std::max(d, depth_of(x.get()));
            break;
        case ExprKind::Dict:
            for (auto& [k, v] : static_cast<const DictExpr*>(e)->items)
                d = std::max({d, depth_of(k.get()), depth_of(v.get())});
            break;
        case ExprKind::Attr: d = depth_of(static_cast<const AttrExpr*>(e)->obj.get()); break;
        case ExprKind::Item: {
            auto* i = static_cast<const ItemExpr*>(e);
            d = std::max(depth_of(i->obj.get()), depth_of(i->index.get()));
            break;
        }
        case ExprKind::Slice: {
            auto* s = static_cast<const SliceExpr*>(e);
            d = std::max({depth_of(s->start.get()), depth_of(s->stop.get()), depth_of(s->step.get())});
            break;
        }
        case ExprKind::Call: {
            auto* c = static_cast<const CallExpr*>(e);
            d = std::max(depth_of(c->callee.get()), args_depth(c->args));
            break;
        }
        case ExprKind::Filter:
        case ExprKind::Test: {
            auto* f = static_cast<const FilterExpr*>(e);
            d = std::max(depth_of(f->value.get()), args_depth(f->args));
            break;
        }
        case ExprKind::Neg:
        case ExprKind::Pos:
        case ExprKind::Not: d = depth_of(static_cast<const UnaryExpr*>(e)->operand.get()); break;
        case ExprKind::Binary:
        case ExprKind::And:
        case ExprKind::Or: {
            auto* b = static_cast<const BinaryExpr*>(e);
            d = std::max(depth_of(b->left.get()), depth_of(b->right.get()));
            break;
        }
        case ExprKind::Concat:
            for (auto& x : static_cast<const ConcatExpr*>(e)->parts) d = std::max(d, depth_of(x.get()));
            break;
        case ExprKind::Compare: {
            auto* c = static_cast<const CompareExpr*>(e);
            d = depth_of(c->first.get());
            for (auto& [op, x] : c->rest) d = std::max(d, depth_of(x.get()));
            break;
        }
        case ExprKind::Cond: {
            auto* c = static_cast<const CondExpr*>(e);
            d = std::max({depth_of(c->test.get()), depth_of(c->then.get()), depth_of(c->otherwise.get())});
            break;
        }
    }
    return d + 1;
}

}  // namespace

// jinja2 compiles the whole template after parsing it and fails on a filter or test it does not
// know, except inside an if statement or conditional expression of the same frame (a "soft" frame:
// there the error waits until the call runs). Loop, macro, call, filter, with and set-block bodies
// are new frames.
class Validator {
public:
    void body(const Body& b, bool soft) {
        for (auto& s : b) stmt(*s, soft);
    }

private:
    void stmt(const Stmt& s, bool soft) {
        switch (s.kind) {
            case StmtKind::Data:
            case StmtKind::Break:
            case StmtKind::Continue: return;
            case StmtKind::Print: expr(static_cast<const PrintStmt&>(s).expr.get(), soft); return;
            case StmtKind::For: {
                auto& f = static_cast<const ForStmt&>(s);
                expr(f.iter.get(), soft);
                expr(f.filter.get(), false);
                body(f.body, false);
                body(f.else_body, false);
                return;
            }
            case StmtKind::If:
                for (auto& [test, b] : static_cast<const IfStmt&>(s).branches) {
                    expr(test.get(), true);
                    body(b, true);
                }
                body(static_cast<const IfStmt&>(s).else_body, true);
                return;
            case StmtKind::Set: expr(static_cast<const SetStmt&>(s).value.get(), soft); return;
            case StmtKind::SetBlock:
                body(static_cast<const SetBlockStmt&>(s).body, false);
                expr(static_cast<const SetBlockStmt&>(s).filter.get(), false);
                return;
            case StmtKind::Macro: macro(static_cast<const MacroStmt&>(s).def); return;
            case StmtKind::CallBlock:
                expr(static_cast<const CallBlockStmt&>(s).call.get(), soft);
                macro(static_cast<const CallBlockStmt&>(s).caller);
                return;
            case StmtKind::FilterBlock:
                expr(static_cast<const FilterBlockStmt&>(s).filter.get(), false);
                body(static_cast<const FilterBlockStmt&>(s).body, false);
                return;
            case StmtKind::With:
                for (auto& [t, v] : static_cast<const WithStmt&>(s).assigns) expr(v.get(), soft);
                body(static_cast<const WithStmt&>(s).body, false);
                return;
            case StmtKind::Scope: body(static_cast<const ScopeStmt&>(s).body, soft); return;
        }
    }

    void macro(const MacroDef& m) {
        for (auto& d : m.defaults) expr(d.get(), false);
        body(m.body, false);
    }

    void args(const CallArgsExpr& a, bool soft) {
        for (auto& x : a.args) expr(x.get(), soft);
        for (auto& [k, x] : a.kwargs) expr(x.get(), soft);
        expr(a.dyn_args.get(), soft);
        expr(a.dyn_kwargs.get(), soft);
    }

    void expr(const Expr* e, bool soft) {
        if (!e) return;
        switch (e->kind) {
            case ExprKind::Const:
            case ExprKind::Name:
            case ExprKind::NSRef: return;
            case ExprKind::List:
            case ExprKind::Tuple:
                for (auto& x : static_cast<const SeqExpr*>(e)->items) expr(x.get(), soft);
                return;
            case ExprKind::Dict:
                for (auto& [k, v] : static_cast<const DictExpr*>(e)->items) {
                    expr(k.get(), soft);
                    expr(v.get(), soft);
                }
                return;
            case ExprKind::Attr: expr(static_cast<const AttrExpr*>(e)->obj.get(), soft); return;
            case ExprKind::Item:
                expr(static_cast<const ItemExpr*>(e)->obj.get(), soft);
                expr(static_cast<const ItemExpr*>(e)->index.get(), soft);
                return;
            case ExprKind::Slice: {
                auto* s = static_cast<const SliceExpr*>(e);
                expr(s->start.get(), soft);
                expr(s->stop.get(), soft);
                expr(s->step.get(), soft);
                return;
            }
            case ExprKind::Call:
                expr(static_cast<const CallExpr*>(e)->callee.get(), soft);
                args(static_cast<const CallExpr*>(e)->args, soft);
                return;
            case ExprKind::Filter:
            case ExprKind::Test: {
                auto* f = static_cast<const FilterExpr*>(e);
                if (!f->known && !soft)  // checked before the filtered value, as jinja2's compiler does
                    throw TemplateError(ErrorKind::Assertion,
                                        std::string("No ") + (e->kind == ExprKind::Filter ? "filter" : "test") + " named " +
                                            py_repr_string(f->name) + ".",
                                        e->line);
                expr(f->value.get(), soft);
                args(f->args, soft);
                return;
            }
            case ExprKind::Neg:
            case ExprKind::Pos:
            case ExprKind::Not: expr(static_cast<const UnaryExpr*>(e)->operand.get(), soft); return;
            case ExprKind::Binary:
            case ExprKind::And:
            case ExprKind::Or:
                expr(static_cast<const BinaryExpr*>(e)->left.get(), soft);
                expr(static_cast<const BinaryExpr*>(e)->right.get(), soft);
                return;
            case ExprKind::Concat:
                for (auto& x : static_cast<const ConcatExpr*>(e)->parts) expr(x.get(), soft);
                return;
            case ExprKind::Compare:
                expr(static_cast<const CompareExpr*>(e)->first.get(), soft);
                for (auto& [op, x] : static_cast<const CompareExpr*>(e)->rest) expr(x.get(), soft);
                return;
            case ExprKind::Cond: {
                auto* c = static_cast<const CondExpr*>(e);
                expr(c->test.get(), true);
                expr(c->then.get(), true);
                expr(c->otherwise.get(), true);
                return;
            }
        }
    }
};

std::unique_ptr<Program> parse_template(std::string_view source) {
    auto program = Parser(tokenize(source)).parse();
    Validator().body(program->body, false);
    return program;
}

}  // namespace rotor::jinja
