// Jinja parser: tokens -> AST, following jinja2's grammar (operator precedence, tuples, filters and
// tests, statements) plus the two extensions Hugging Face loads: loopcontrols (break/continue) and
// its {% generation %} tag.
#pragma once
#include "chat/jinja_lexer.h"
#include "chat/jinja_value.h"

#include <memory>
#include <string>
#include <vector>

namespace rotor::jinja {

// ------------------------------------------------------------------------------------------ expressions

enum class ExprKind : uint8_t {
    Const, Name, NSRef, List, Tuple, Dict, Attr, Item, Slice, Call, Filter, Test,
    Neg, Pos, Not, Binary, And, Or, Concat, Compare, Cond,
};

enum class BinOp : uint8_t { Add, Sub, Mul, Div, FloorDiv, Mod, Pow };
enum class CmpOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };

struct Expr {
    ExprKind kind;
    int line = 0;
    int depth = 1;  // height of this subtree; bounded at parse time so evaluation cannot recurse without end
    explicit Expr(ExprKind k) : kind(k) {}
    virtual ~Expr() = default;
};
using ExprPtr = std::unique_ptr<Expr>;

struct ConstExpr : Expr {
    Value value;
    ConstExpr() : Expr(ExprKind::Const) {}
};
struct NameExpr : Expr {
    std::string name;
    NameExpr() : Expr(ExprKind::Name) {}
};
struct NSRefExpr : Expr {  // `ns.attr` as an assignment target
    std::string name, attr;
    NSRefExpr() : Expr(ExprKind::NSRef) {}
};
struct SeqExpr : Expr {  // List or Tuple
    std::vector<ExprPtr> items;
    explicit SeqExpr(ExprKind k) : Expr(k) {}
};
struct DictExpr : Expr {
    std::vector<std::pair<ExprPtr, ExprPtr>> items;
    DictExpr() : Expr(ExprKind::Dict) {}
};
struct AttrExpr : Expr {
    ExprPtr obj;
    std::string attr;
    AttrExpr() : Expr(ExprKind::Attr) {}
};
struct ItemExpr : Expr {
    ExprPtr obj, index;
    ItemExpr() : Expr(ExprKind::Item) {}
};
struct SliceExpr : Expr {
    ExprPtr start, stop, step;  // each may be null
    SliceExpr() : Expr(ExprKind::Slice) {}
};
struct CallArgsExpr {
    std::vector<ExprPtr> args;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    ExprPtr dyn_args, dyn_kwargs;  // *args, **kwargs
};
struct CallExpr : Expr {
    ExprPtr callee;
    CallArgsExpr args;
    CallExpr() : Expr(ExprKind::Call) {}
};
// Filter and Test. `value` is null for the innermost filter of a filter block / set block.
struct FilterExpr : Expr {
    ExprPtr value;
    std::string name;
    CallArgsExpr args;
    bool known = true;  // unknown names inside if/condexpr fail only when evaluated, as in jinja2
    explicit FilterExpr(ExprKind k) : Expr(k) {}
};
struct UnaryExpr : Expr {  // Neg, Pos, Not
    ExprPtr operand;
    explicit UnaryExpr(ExprKind k) : Expr(k) {}
};
struct BinaryExpr : Expr {  // Binary (with op), And, Or
    BinOp op = BinOp::Add;
    ExprPtr left, right;
    explicit BinaryExpr(ExprKind k) : Expr(k) {}
};
struct ConcatExpr : Expr {
    std::vector<ExprPtr> parts;
    ConcatExpr() : Expr(ExprKind::Concat) {}
};
struct CompareExpr : Expr {
    ExprPtr first;
    std::vector<std::pair<CmpOp, ExprPtr>> rest;  // chained like Python: a < b < c
    CompareExpr() : Expr(ExprKind::Compare) {}
};
struct CondExpr : Expr {
    ExprPtr test, then, otherwise;  // otherwise may be null (-> undefined)
    CondExpr() : Expr(ExprKind::Cond) {}
};

// ------------------------------------------------------------------------------------------ statements

enum class StmtKind : uint8_t {
    Data, Print, For, If, Set, SetBlock, Macro, CallBlock, FilterBlock, With, Break, Continue, Scope,
};

struct Stmt {
    StmtKind kind;
    int line = 0;
    explicit Stmt(StmtKind k) : kind(k) {}
    virtual ~Stmt() = default;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct DataStmt : Stmt {
    std::string text;
    DataStmt() : Stmt(StmtKind::Data) {}
};
struct PrintStmt : Stmt {
    ExprPtr expr;
    PrintStmt() : Stmt(StmtKind::Print) {}
};
struct ForStmt : Stmt {
    ExprPtr target, iter, filter;  // filter: `for x in xs if cond`
    Body body, else_body;
    ForStmt() : Stmt(StmtKind::For) {}
};
struct IfStmt : Stmt {
    std::vector<std::pair<ExprPtr, Body>> branches;  // if + elifs
    Body else_body;
    IfStmt() : Stmt(StmtKind::If) {}
};
struct SetStmt : Stmt {
    ExprPtr target, value;
    SetStmt() : Stmt(StmtKind::Set) {}
};
struct SetBlockStmt : Stmt {
    ExprPtr target, filter;  // filter may be null
    Body body;
    SetBlockStmt() : Stmt(StmtKind::SetBlock) {}
};
struct MacroDef {
    std::string name;
    std::vector<std::string> params;
    std::vector<ExprPtr> defaults;  // for the last defaults.size() params
    Body body;
    bool uses_caller = false, uses_varargs = false, uses_kwargs = false;
};
struct MacroStmt : Stmt {
    MacroDef def;
    MacroStmt() : Stmt(StmtKind::Macro) {}
};
struct CallBlockStmt : Stmt {
    MacroDef caller;  // the block body, passed to the call as `caller`
    ExprPtr call;     // a CallExpr
    CallBlockStmt() : Stmt(StmtKind::CallBlock) {}
};
struct FilterBlockStmt : Stmt {
    ExprPtr filter;
    Body body;
    FilterBlockStmt() : Stmt(StmtKind::FilterBlock) {}
};
struct WithStmt : Stmt {
    std::vector<std::pair<ExprPtr, ExprPtr>> assigns;
    Body body;
    WithStmt() : Stmt(StmtKind::With) {}
};
struct ScopeStmt : Stmt {  // {% generation %}: renders its body
    Body body;
    ScopeStmt() : Stmt(StmtKind::Scope) {}
};
struct SimpleStmt : Stmt {  // Break, Continue
    explicit SimpleStmt(StmtKind k) : Stmt(k) {}
};

struct Program {
    Body body;
};

// Throws TemplateError (Syntax, or Assertion for unknown filters/tests outside conditionals).
std::unique_ptr<Program> parse_template(std::string_view source);

// Registry of names, defined with the builtins (jinja_eval.cpp).
bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

}  // namespace rotor::jinja
