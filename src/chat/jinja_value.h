// Values of the Jinja interpreter, with Python semantics: what chat templates see as Python objects
// (None, bool, int, float, str, list, tuple, dict, functions, namespace(), Undefined) and how Python
// prints, compares and serialises them, so renders match jinja2 byte for byte.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rotor::jinja {

// The Python exception class a jinja2 render would raise; kind_name() gives its name.
enum class ErrorKind : uint8_t {
    Syntax,        // TemplateSyntaxError
    Assertion,     // TemplateAssertionError (unknown filter/test at compile time)
    Runtime,       // TemplateRuntimeError
    Undefined,     // UndefinedError
    Security,      // SecurityError (sandbox)
    Type,          // TypeError
    Value,         // ValueError
    ZeroDivision,  // ZeroDivisionError
    Overflow,      // OverflowError
    Index,         // IndexError
    Key,           // KeyError
    FilterArgument,  // FilterArgumentError
    Raised,        // TemplateError from raise_exception()
    Limit,         // not Python: a resource bound of this interpreter (output, work, depth)
};

class TemplateError : public std::runtime_error {
public:
    TemplateError(ErrorKind kind, std::string message, int line = 0);
    ErrorKind kind() const noexcept { return kind_; }
    const std::string& message() const noexcept { return message_; }
    int line() const noexcept { return line_; }
    static const char* kind_name(ErrorKind k);

private:
    ErrorKind kind_;
    std::string message_;
    int line_;
};

[[noreturn]] void fail(ErrorKind kind, std::string message);

class Value;
class Dict;
struct Function;
struct Namespace;
struct UndefinedInfo;
using ValueList = std::vector<Value>;

// Which Python sequence type a List value stands for: they hold the same data but print, index and
// serialise differently. The iterator kinds are what jinja2's lazy filters (map, select, unique,
// reverse...) return: iterable, always true, but without len(), indexing or JSON form.
enum class SeqKind : uint8_t { List, Tuple, DictItems, DictKeys, DictValues, Generator, ListReverseIterator, DictReverseIterator };
inline bool is_iterator(SeqKind k) { return k >= SeqKind::Generator; }

class Value {
public:
    enum class Type : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Function, Namespace };

    Value() = default;  // jinja2's default Undefined
    Value(bool b) : type_(Type::Bool), b_(b) {}
    Value(int v) : type_(Type::Int), i_(v) {}
    Value(int64_t v) : type_(Type::Int), i_(v) {}
    Value(double v) : type_(Type::Float), f_(v) {}
    Value(std::string s, bool markup = false);
    Value(std::string_view s) : Value(std::string(s)) {}
    Value(const char* s) : Value(std::string(s)) {}
    Value(ValueList items, SeqKind kind = SeqKind::List);
    Value(Dict d);
    Value(std::shared_ptr<const Function> f);
    Value(std::shared_ptr<Namespace> ns);

    static Value none() {
        Value v;
        v.type_ = Type::None;
        return v;
    }
    // Undefined values carry what jinja2 would say when one is used.
    static Value undefined_name(std::string name);
    static Value undefined_attr(const Value& obj, std::string attr);
    static Value undefined_item(const Value& obj, const Value& key);
    static Value undefined_hint(std::string hint, ErrorKind kind = ErrorKind::Undefined);

    Type type() const { return type_; }
    // Containment depth (1 for scalars, namespaces and functions). Bounded at construction so that
    // printing, comparing and destroying values never recurses without limit.
    int depth() const { return depth_; }
    static constexpr int kMaxDepth = 1000;
    bool is_undefined() const { return type_ == Type::Undefined; }
    bool is_none() const { return type_ == Type::None; }
    bool is_bool() const { return type_ == Type::Bool; }
    bool is_int() const { return type_ == Type::Int; }
    bool is_float() const { return type_ == Type::Float; }
    bool is_number() const { return type_ == Type::Int || type_ == Type::Float || type_ == Type::Bool; }
    bool is_string() const { return type_ == Type::String; }
    bool is_list() const { return type_ == Type::List; }
    bool is_dict() const { return type_ == Type::Dict; }
    bool is_function() const { return type_ == Type::Function; }
    bool is_namespace() const { return type_ == Type::Namespace; }

    bool get_bool() const { return b_; }
    int64_t get_int() const { return type_ == Type::Bool ? int64_t(b_) : i_; }
    double get_float() const { return type_ == Type::Float ? f_ : double(get_int()); }
    const std::string& str() const;
    bool is_markup() const { return type_ == Type::String && sub_ != 0; }
    const ValueList& items() const;
    SeqKind seq_kind() const { return SeqKind(sub_); }
    const Dict& dict() const;
    const Function& func() const;
    Namespace& ns() const;
    const UndefinedInfo& undef() const;
    const void* identity() const { return ptr_.get(); }

    bool truthy() const;
    // Python's type(x).__name__ for error messages.
    std::string type_name() const;

private:
    Type type_ = Type::Undefined;
    uint8_t sub_ = 0;  // String: markup flag; List: SeqKind
    uint16_t depth_ = 1;
    union {
        bool b_;
        int64_t i_ = 0;
        double f_;
    };
    std::shared_ptr<void> ptr_;
};

// Insertion-ordered mapping like a Python dict. Keys are hashable values; 1, 1.0 and True are one key.
class Dict {
public:
    using Entry = std::pair<Value, Value>;
    const Value* find_value(const Value& key) const;
    const Value* find(std::string_view key) const;
    void set_value(const Value& key, Value v);  // checks hashability
    void set(std::string key, Value v) { set_value(Value(std::move(key)), std::move(v)); }
    size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    const std::vector<Entry>& entries() const { return entries_; }
    void clear();

private:
    std::vector<Entry> entries_;
    std::unordered_map<std::string, size_t> str_index_;
};

struct CallArgs {
    ValueList args;
    std::vector<std::pair<std::string, Value>> kwargs;
    const Value* kwarg(std::string_view name) const;
};

class Interp;  // jinja_eval.cpp: gives builtins access to limits and to filters/tests

struct Function {
    enum class Kind : uint8_t { Builtin, Method, Macro };
    std::string name;
    Kind kind = Kind::Builtin;
    std::function<Value(Interp&, CallArgs&)> call;
};

// jinja2's namespace(): the one mutable object templates can write into ({% set ns.x = ... %}).
struct Namespace {
    Dict attrs;
};

struct UndefinedInfo {
    std::string hint;      // explicit message, if any
    std::string name;      // missing name/attribute (repr'd when not a str key)
    std::string obj_type;  // object_type_repr of the container, empty for a missing variable
    bool has_obj = false;
    bool name_is_str = true;
    ErrorKind kind = ErrorKind::Undefined;
    std::string message() const;
};

// ---- Python semantics
bool py_equal(const Value& a, const Value& b);
// Python ordering: -1/0/1, or 2 when unordered (NaN). Lists/tuples compare lexicographically.
// Throws TypeError like Python ("'<' not supported between instances of 'int' and 'str'").
int py_cmp(const Value& a, const Value& b, const char* op = "<");
inline bool py_less(const Value& a, const Value& b, const char* op = "<") { return py_cmp(a, b, op) == -1; }
bool is_hashable(const Value& v);

// str(x) and repr(x). `limit` bounds the produced text (a TemplateError of kind Limit beyond it).
void py_str(const Value& v, std::string& out, size_t limit = SIZE_MAX);
std::string py_str(const Value& v, size_t limit = SIZE_MAX);
void py_repr(const Value& v, std::string& out, size_t limit = SIZE_MAX);
std::string py_repr_string(std::string_view s);
std::string py_float_repr(double d);
// Undefined used where Python would call a method on it: raises its UndefinedError.
[[noreturn]] void fail_undefined(const Value& v);

// json.dumps(x, ensure_ascii, indent, separators, sort_keys) as transformers' tojson filter calls it.
struct JsonDumpOptions {
    bool ensure_ascii = false;
    int indent = -1;  // <0: None
    std::string indent_str;  // used when indent was given as a string
    bool indent_is_string = false;
    std::string item_sep = ", ", key_sep = ": ";
    bool sort_keys = false;
};
void json_dumps(const Value& v, const JsonDumpOptions& opt, std::string& out, size_t limit = SIZE_MAX);

// Request JSON (at most 900 levels deep) should be parsed as ordered_json: Python dicts keep key order and templates print it.
Value from_json(const nlohmann::ordered_json& j);
Value from_json(const nlohmann::json& j);
nlohmann::ordered_json to_json(const Value& v);

// Stable bottom-up merge sort. Unlike std::sort it stays in bounds whatever the comparator answers
// (NaN, or a comparator that throws TypeError half way), and stable like Python's sort.
template <class T, class Less>
void stable_sort_safe(std::vector<T>& v, Less less) {
    size_t n = v.size();
    if (n < 2) return;
    std::vector<T> tmp(n);
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = std::min(lo + w, n), hi = std::min(lo + 2 * w, n), a = lo, b = mid, o = lo;
            while (a < mid && b < hi) tmp[o++] = less(v[b], v[a]) ? std::move(v[b++]) : std::move(v[a++]);
            while (a < mid) tmp[o++] = std::move(v[a++]);
            while (b < hi) tmp[o++] = std::move(v[b++]);
        }
        v.swap(tmp);
    }
}

// ---- Python text helpers over UTF-8. Invalid bytes decode to U+DC80..U+DCFF (like Python's
// surrogateescape) and encode back to the same byte, so no input is lost or read out of bounds.
uint32_t utf8_next(std::string_view s, size_t& i);
void utf8_put(std::string& out, uint32_t cp);
std::u32string to_u32(std::string_view s);
std::string from_u32(std::u32string_view s);
size_t cp_count(std::string_view s);
bool py_isspace(uint32_t c);
bool py_isalpha(uint32_t c);
bool py_isdigit(uint32_t c);
bool py_isupper(uint32_t c);
bool py_islower(uint32_t c);
void py_upper_cp(uint32_t c, std::u32string& out);
void py_lower_cp(uint32_t c, std::u32string& out);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);

}  // namespace rotor::jinja
