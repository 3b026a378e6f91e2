// Internal to the Jinja interpreter: the evaluator state that builtins (filters, tests, methods,
// globals in jinja_builtins.cpp) need, and the builtins' entry points.
#pragma once
#include "chat/jinja_eval.h"
#include "chat/jinja_parser.h"

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace rotor::jinja {

struct Scope {
    std::shared_ptr<Scope> parent;
    std::unordered_map<std::string, Value> vars;
    explicit Scope(std::shared_ptr<Scope> p) : parent(std::move(p)) {}
};

class Interp {
public:
    explicit Interp(const RenderOptions& opts) : opts_(opts) {}
    ~Interp();  // breaks the reference cycles macros and namespaces can form
    Interp(const Interp&) = delete;
    Interp& operator=(const Interp&) = delete;

    std::string render(const Program& program, const Dict& vars);

    const RenderOptions& opts() const { return opts_; }
    void tick(size_t units = 1);
    void check_size(size_t bytes) const;
    void check_items(size_t n) const;

    // Python/jinja2 operations with sandbox semantics.
    Value getattr(const Value& obj, const std::string& name);
    Value getitem(const Value& obj, const Value& key);
    Value call(const Value& fn, CallArgs& args);
    ValueList iterate(const Value& v);  // list(v)
    std::string str(const Value& v);    // str(v), bounded
    Value binary(BinOp op, const Value& a, const Value& b);
    bool compare(CmpOp op, const Value& a, const Value& b);
    bool contains(const Value& container, const Value& item);

    std::shared_ptr<Namespace> new_namespace();
    Value invoke_macro(const MacroDef& def, const std::shared_ptr<Scope>& closure, CallArgs& args);

private:
    enum class Flow { Normal, Break, Continue };

    const RenderOptions& opts_;
    size_t work_ = 0;
    int depth_ = 0;
    std::vector<std::shared_ptr<Namespace>> namespaces_;
    std::vector<std::shared_ptr<Scope>> captured_scopes_;

    struct DepthGuard {
        Interp& in;
        explicit DepthGuard(Interp& i);
        ~DepthGuard() { in.depth_--; }
    };

    Flow exec_body(const Body& body, const std::shared_ptr<Scope>& scope, std::string& out);
    Flow exec(const Stmt& s, const std::shared_ptr<Scope>& scope, std::string& out);
    void exec_for(const ForStmt& f, const std::shared_ptr<Scope>& scope, std::string& out);
    void append(std::string& out, std::string_view s) const;

    Value eval(const Expr& e, const std::shared_ptr<Scope>& scope);
    Value eval_filter(const FilterExpr& f, const std::shared_ptr<Scope>& scope, const Value* input);
    CallArgs eval_args(const CallArgsExpr& a, const std::shared_ptr<Scope>& scope);
    Value lookup(const std::string& name, const std::shared_ptr<Scope>& scope) const;
    void assign(const Expr& target, const Value& v, const std::shared_ptr<Scope>& scope);
    Value make_macro(const MacroDef& def, const std::shared_ptr<Scope>& closure);
    Value slice(const Value& obj, const SliceExpr& s, const std::shared_ptr<Scope>& scope);
};

// ---- builtins (jinja_builtins.cpp)
Value call_filter(Interp& in, const std::string& name, const Value& v, CallArgs& args);
bool call_test(Interp& in, const std::string& name, const Value& v, CallArgs& args);
// A method of a str/dict/list/tuple/float as a bound function, an unsafe-attribute undefined for
// methods the immutable sandbox forbids, or nullopt when the type has no such attribute.
std::optional<Value> get_method(const Value& obj, const std::string& name);
// range, dict, namespace, joiner, cycler, raise_exception, strftime_now; undefined otherwise.
const Value* find_global(const std::string& name);
// Python's `fmt % args` for strings.
std::string percent_format(Interp& in, const std::string& fmt, const Value& args);
std::string html_escape(std::string_view s);

}  // namespace rotor::jinja
