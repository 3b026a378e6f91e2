#include "chat/jinja_value.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace rotor::jinja {

// ------------------------------------------------------------------------------------------ errors

TemplateError::TemplateError(ErrorKind kind, std::string message, int line)
    : std::runtime_error(std::string(kind_name(kind)) + ": " + message),
      kind_(kind),
      message_(std::move(message)),
      line_(line) {}

const char* TemplateError::kind_name(ErrorKind k) {
    switch (k) {
        case ErrorKind::Syntax: return "TemplateSyntaxError";
        case ErrorKind::Assertion: return "TemplateAssertionError";
        case ErrorKind::Runtime: return "TemplateRuntimeError";
        case ErrorKind::Undefined: return "UndefinedError";
        case ErrorKind::Security: return "SecurityError";
        case ErrorKind::Type: return "TypeError";
        case ErrorKind::Value: return "ValueError";
        case ErrorKind::ZeroDivision: return "ZeroDivisionError";
        case ErrorKind::Overflow: return "OverflowError";
        case ErrorKind::Index: return "IndexError";
        case ErrorKind::Key: return "KeyError";
        case ErrorKind::FilterArgument: return "FilterArgumentError";
        case ErrorKind::Raised: return "TemplateError";
        case ErrorKind::Limit: return "TemplateLimitError";
    }
    return "TemplateError";
}

void fail(ErrorKind kind, std::string message) { throw TemplateError(kind, std::move(message)); }

// ------------------------------------------------------------------------------------------ values

Value::Value(std::string s, bool markup) : type_(Type::String), sub_(markup ? 1 : 0) {
    ptr_ = std::make_shared<std::string>(std::move(s));
}
static uint16_t container_depth(int child_depth) {
    if (child_depth >= Value::kMaxDepth) fail(ErrorKind::Limit, "value nesting too deep");
    return uint16_t(child_depth + 1);
}

Value::Value(ValueList items, SeqKind kind) : type_(Type::List), sub_(uint8_t(kind)) {
    int d = 0;
    for (auto& x : items) d = std::max(d, x.depth());
    depth_ = container_depth(d);
    ptr_ = std::make_shared<ValueList>(std::move(items));
}
Value::Value(Dict dict) : type_(Type::Dict) {
    int d = 0;
    for (auto& [k, v] : dict.entries()) d = std::max({d, k.depth(), v.depth()});
    depth_ = container_depth(d);
    ptr_ = std::make_shared<Dict>(std::move(dict));
}
Value::Value(std::shared_ptr<const Function> f) : type_(Type::Function) {
    ptr_ = std::const_pointer_cast<Function>(std::move(f));
}
Value::Value(std::shared_ptr<Namespace> ns) : type_(Type::Namespace) { ptr_ = std::move(ns); }

const std::string& Value::str() const { return *static_cast<const std::string*>(ptr_.get()); }
const ValueList& Value::items() const { return *static_cast<const ValueList*>(ptr_.get()); }
const Dict& Value::dict() const { return *static_cast<const Dict*>(ptr_.get()); }
const Function& Value::func() const { return *static_cast<const Function*>(ptr_.get()); }
Namespace& Value::ns() const { return *static_cast<Namespace*>(ptr_.get()); }
const UndefinedInfo& Value::undef() const {
    static const UndefinedInfo plain{};
    return ptr_ ? *static_cast<const UndefinedInfo*>(ptr_.get()) : plain;
}

// jinja2.utils.object_type_repr
static std::string object_type_repr(const Value& obj) {
    if (obj.is_none()) return "None";
    return obj.type_name() + " object";
}

Value Value::undefined_name(std::string name) {
    auto u = std::make_shared<UndefinedInfo>();
    u->name = std::move(name);
    Value v;
    v.ptr_ = std::move(u);
    return v;
}
Value Value::undefined_attr(const Value& obj, std::string attr) {
    auto u = std::make_shared<UndefinedInfo>();
    u->name = std::move(attr);
    u->has_obj = true;
    u->obj_type = object_type_repr(obj);
    Value v;
    v.ptr_ = std::move(u);
    return v;
}
Value Value::undefined_item(const Value& obj, const Value& key) {
    auto u = std::make_shared<UndefinedInfo>();
    u->has_obj = true;
    u->obj_type = object_type_repr(obj);
    if (key.is_string()) {
        u->name = key.str();
    } else {
        u->name_is_str = false;
        py_repr(key, u->name, 4096);
    }
    Value v;
    v.ptr_ = std::move(u);
    return v;
}
Value Value::undefined_hint(std::string hint, ErrorKind kind) {
    auto u = std::make_shared<UndefinedInfo>();
    u->hint = std::move(hint);
    u->kind = kind;
    Value v;
    v.ptr_ = std::move(u);
    return v;
}

std::string UndefinedInfo::message() const {
    if (!hint.empty()) return hint;
    if (!has_obj) return py_repr_string(name) + " is undefined";
    if (!name_is_str) return obj_type + " has no element " + name;
    return py_repr_string(obj_type) + " has no attribute " + py_repr_string(name);
}

void fail_undefined(const Value& v) {
    const UndefinedInfo& u = v.undef();
    fail(u.kind, u.message());
}

bool Value::truthy() const {
    switch (type_) {
        case Type::Undefined:
        case Type::None: return false;
        case Type::Bool: return b_;
        case Type::Int: return i_ != 0;
        case Type::Float: return f_ != 0.0;
        case Type::String: return !str().empty();
        case Type::List: return is_iterator(seq_kind()) || !items().empty();
        case Type::Dict: return !dict().empty();
        case Type::Function:
        case Type::Namespace: return true;
    }
    return false;
}

std::string Value::type_name() const {
    switch (type_) {
        case Type::Undefined: return "Undefined";
        case Type::None: return "NoneType";
        case Type::Bool: return "bool";
        case Type::Int: return "int";
        case Type::Float: return "float";
        case Type::String: return is_markup() ? "Markup" : "str";
        case Type::List:
            switch (seq_kind()) {
                case SeqKind::List: return "list";
                case SeqKind::Tuple: return "tuple";
                case SeqKind::DictItems: return "dict_items";
                case SeqKind::DictKeys: return "dict_keys";
                case SeqKind::DictValues: return "dict_values";
                case SeqKind::Generator: return "generator";
                case SeqKind::ListReverseIterator: return "list_reverseiterator";
                case SeqKind::DictReverseIterator: return "dict_reversekeyiterator";
            }
            return "list";
        case Type::Dict: return "dict";
        case Type::Function: return func().kind == Function::Kind::Macro ? "Macro" : "builtin_function_or_method";
        case Type::Namespace: return "Namespace";
    }
    return "object";
}

const Value* CallArgs::kwarg(std::string_view name) const {
    for (auto& [k, v] : kwargs)
        if (k == name) return &v;
    return nullptr;
}

// ------------------------------------------------------------------------------------------ dict

bool is_hashable(const Value& v) {
    switch (v.type()) {
        case Value::Type::List:
            if (v.seq_kind() != SeqKind::Tuple) return false;
            for (auto& x : v.items())
                if (!is_hashable(x)) return false;
            return true;
        case Value::Type::Dict: return false;
        default: return true;
    }
}

const Value* Dict::find(std::string_view key) const {
    auto it = str_index_.find(std::string(key));
    return it == str_index_.end() ? nullptr : &entries_[it->second].second;
}

const Value* Dict::find_value(const Value& key) const {
    if (key.is_string()) return find(std::string_view(key.str()));
    for (auto& e : entries_)
        if (!e.first.is_string() && py_equal(e.first, key)) return &e.second;
    return nullptr;
}

void Dict::set_value(const Value& key, Value v) {
    if (key.is_string()) {
        auto [it, inserted] = str_index_.emplace(key.str(), entries_.size());
        if (inserted)
            entries_.emplace_back(key, std::move(v));
        else
            entries_[it->second].second = std::move(v);
        return;
    }
    if (!is_hashable(key)) fail(ErrorKind::Type, "unhashable type: '" + key.type_name() + "'");
    for (auto& e : entries_)
        if (!e.first.is_string() && py_equal(e.first, key)) {
            e.second = std::move(v);
            return;
        }
    entries_.emplace_back(key, std::move(v));
}

void Dict::clear() {
    entries_.clear();
    str_index_.clear();
}

// ------------------------------------------------------------------------------------------ comparisons

static int cmp_numbers(const Value& a, const Value& b) {
    if (a.is_float() || b.is_float()) {
        // long double holds every int64 exactly, so mixed comparisons are exact as in Python
        long double x = a.is_float() ? (long double)a.get_float() : (long double)a.get_int();
        long double y = b.is_float() ? (long double)b.get_float() : (long double)b.get_int();
        return x < y ? -1 : (x > y ? 1 : 0);
    }
    int64_t x = a.get_int(), y = b.get_int();
    return x < y ? -1 : (x > y ? 1 : 0);
}

static bool is_seq_for_compare(const Value& v) {
    return v.is_list() && (v.seq_kind() == SeqKind::List || v.seq_kind() == SeqKind::Tuple);
}

bool py_equal(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_float() && std::isnan(a.get_float())) return false;
        if (b.is_float() && std::isnan(b.get_float())) return false;
        return cmp_numbers(a, b) == 0;
    }
    if (a.type() != b.type()) return false;
    switch (a.type()) {
        case Value::Type::Undefined:
        case Value::Type::None: return true;
        case Value::Type::String: return a.str() == b.str();
        case Value::Type::List: {
            if (is_iterator(a.seq_kind()) || is_iterator(b.seq_kind())) return a.identity() == b.identity();
            bool ta = a.seq_kind() == SeqKind::Tuple, tb = b.seq_kind() == SeqKind::Tuple;
            if (ta != tb) return false;
            auto& x = a.items();
            auto& y = b.items();
            if (x.size() != y.size()) return false;
            for (size_t i = 0; i < x.size(); i++)
                if (!py_equal(x[i], y[i])) return false;
            return true;
        }
        case Value::Type::Dict: {
            auto& x = a.dict();
            auto& y = b.dict();
            if (x.size() != y.size()) return false;
            for (auto& [k, v] : x.entries()) {
                const Value* o = y.find_value(k);
                if (!o || !py_equal(v, *o)) return false;
            }
            return true;
        }
        default: return a.identity() == b.identity();
    }
}

int py_cmp(const Value& a, const Value& b, const char* op) {
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    if (a.is_number() && b.is_number()) {
        if ((a.is_float() && std::isnan(a.get_float())) || (b.is_float() && std::isnan(b.get_float()))) return 2;
        return cmp_numbers(a, b);
    }
    if (a.is_string() && b.is_string()) {  // UTF-8 byte order is code point order
        int c = a.str().compare(b.str());
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    if (is_seq_for_compare(a) && is_seq_for_compare(b) && a.seq_kind() == b.seq_kind()) {
        auto& x = a.items();
        auto& y = b.items();
        for (size_t i = 0; i < x.size() && i < y.size(); i++) {
            if (py_equal(x[i], y[i])) continue;
            return py_cmp(x[i], y[i], op);
        }
        return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
    }
    fail(ErrorKind::Type, std::string("'") + op + "' not supported between instances of '" + a.type_name() +
                              "' and '" + b.type_name() + "'");
}

// ------------------------------------------------------------------------------------------ text

uint32_t utf8_next(std::string_view s, size_t& i) {
    auto b = [&](size_t k) { return uint8_t(s[k]); };
    uint8_t c = b(i);
    if (c < 0x80) {
        i++;
        return c;
    }
    int len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (len == 0 || i + len > s.size()) {
        i++;
        return 0xDC00 + c;
    }
    uint32_t cp = len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (int k = 1; k < len; k++) {
        uint8_t cc = b(i + k);
        if ((cc & 0xc0) != 0x80) {
            i++;
            return 0xDC00 + c;
        }
        cp = (cp << 6) | (cc & 0x3f);
    }
    bool bad = (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
               (cp >= 0xd800 && cp <= 0xdfff);
    if (bad) {
        i++;
        return 0xDC00 + c;
    }
    i += len;
    return cp;
}

void utf8_put(std::string& out, uint32_t cp) {
    if (cp >= 0xDC80 && cp <= 0xDCFF) {  // an undecodable byte, restored as it came
        out += char(cp - 0xDC00);
    } else if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xc0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += char(0xe0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    } else {
        out += char(0xf0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3f));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    }
}

std::u32string to_u32(std::string_view s) {
    std::u32string r;
    r.reserve(s.size());
    for (size_t i = 0; i < s.size();) r += char32_t(utf8_next(s, i));
    return r;
}

std::string from_u32(std::u32string_view s) {
    std::string r;
    r.reserve(s.size());
    for (char32_t c : s) utf8_put(r, c);
    return r;
}

size_t cp_count(std::string_view s) {
    size_t n = 0;
    for (size_t i = 0; i < s.size(); n++) utf8_next(s, i);
    return n;
}

bool py_isspace(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

bool py_isdigit(uint32_t c) { return (c >= '0' && c <= '9') || (c >= 0xff10 && c <= 0xff19); }

// Simple one-to-one case pairs for the scripts chat text mostly uses (Latin, Greek, Cyrillic,
// Armenian, fullwidth); other scripts are uncased here.
static uint32_t lower_of(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0xc0) return c;
    if ((c >= 0xc0 && c <= 0xde && c != 0xd7)) return c + 32;
    if (c == 0x178) return 0xff;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) return (c % 2 == 0) ? c + 1 : c;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c % 2 == 1) ? c + 1 : c;
    if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
    if (c == 0x386) return 0x3ac;
    if (c >= 0x388 && c <= 0x38a) return c + 37;
    if (c == 0x38c) return 0x3cc;
    if (c == 0x38e || c == 0x38f) return c + 63;
    if (c >= 0x410 && c <= 0x42f) return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf)) return (c % 2 == 0) ? c + 1 : c;
    if (c >= 0x531 && c <= 0x556) return c + 48;
    if ((c >= 0x1e00 && c <= 0x1e95) || (c >= 0x1ea0 && c <= 0x1eff)) return (c % 2 == 0) ? c + 1 : c;
    if (c >= 0xff21 && c <= 0xff3a) return c + 32;
    return c;
}

static uint32_t upper_of(uint32_t c) {
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c < 0xb5) return c;
    if (c == 0xb5) return 0x39c;
    if (c >= 0xe0 && c <= 0xfe && c != 0xf7) return c - 32;
    if (c == 0xff) return 0x178;
    if (c == 0x131) return 'I';
    if (c == 0x17f) return 'S';
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) return (c % 2 == 1) ? c - 1 : c;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c % 2 == 0) ? c - 1 : c;
    if (c >= 0x3b1 && c <= 0x3c9) return c == 0x3c2 ? 0x3a3 : c - 32;
    if (c == 0x3ac) return 0x386;
    if (c >= 0x3ad && c <= 0x3af) return c - 37;
    if (c == 0x3cc) return 0x38c;
    if (c == 0x3cd || c == 0x3ce) return c - 63;
    if (c >= 0x430 && c <= 0x44f) return c - 32;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf)) return (c % 2 == 1) ? c - 1 : c;
    if (c >= 0x561 && c <= 0x586) return c - 48;
    if ((c >= 0x1e00 && c <= 0x1e95) || (c >= 0x1ea0 && c <= 0x1eff)) return (c % 2 == 1) ? c - 1 : c;
    if (c >= 0xff41 && c <= 0xff5a) return c - 32;
    return c;
}

bool py_isupper(uint32_t c) { return lower_of(c) != c; }
bool py_islower(uint32_t c) { return upper_of(c) != c || c == 0xdf; }

void py_upper_cp(uint32_t c, std::u32string& out) {
    if (c == 0xdf) {  // ß -> SS, as Python's full case mapping does
        out += U"SS";
        return;
    }
    out += char32_t(upper_of(c));
}
void py_lower_cp(uint32_t c, std::u32string& out) { out += char32_t(lower_of(c)); }

bool py_isalpha(uint32_t c) {
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    if (py_isupper(c) || py_islower(c)) return true;
    if (c < 0xc0) return c == 0xaa || c == 0xba;
    if (c == 0xd7 || c == 0xf7) return false;
    if (py_isspace(c)) return false;
    // exclude combining marks, punctuation, symbols, emoji and private/surrogate ranges
    if ((c >= 0x300 && c <= 0x36f) || (c >= 0x2000 && c <= 0x2bff) || (c >= 0x3000 && c <= 0x303f) ||
        (c >= 0xd800 && c <= 0xf8ff) || (c >= 0xfe00 && c <= 0xfe0f) || (c >= 0xff00 && c <= 0xff20) ||
        (c >= 0xff3b && c <= 0xff40) || (c >= 0xff5b && c <= 0xff65) || (c >= 0x1f000 && c <= 0x1faff) ||
        c > 0x10ffff)
        return false;
    return true;
}

std::string py_upper(std::string_view s) {
    std::u32string r;
    for (size_t i = 0; i < s.size();) py_upper_cp(utf8_next(s, i), r);
    return from_u32(r);
}

std::string py_lower(std::string_view s) {
    std::u32string r;
    for (size_t i = 0; i < s.size();) py_lower_cp(utf8_next(s, i), r);
    return from_u32(r);
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
    std::u32string u = to_u32(s);
    std::u32string set = chars ? to_u32(*chars) : std::u32string();
    auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
    size_t b = 0, e = u.size();
    if (left)
        while (b < e && strip_it(u[b])) b++;
    if (right)
        while (e > b && strip_it(u[e - 1])) e--;
    return from_u32(std::u32string_view(u).substr(b, e - b));
}

// ------------------------------------------------------------------------------------------ printing

static void check_limit(const std::string& out, size_t limit) {
    if (out.size() > limit) fail(ErrorKind::Limit, "rendered text exceeds the output size limit");
}

std::string py_float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);  // shortest round trip
    std::string_view s(buf, size_t(res.ptr - buf));
    std::string out;
    if (s[0] == '-') {
        out += '-';
        s.remove_prefix(1);
    }
    size_t epos = s.find('e');
    std::string digits;
    for (char c : s.substr(0, epos))
        if (c != '.') digits += c;
    int exp = 0;
    std::from_chars(s.data() + epos + 1 + (s[epos + 1] == '+' ? 1 : 0), s.data() + s.size(), exp);
    int decpt = exp + 1;  // value = 0.DIGITS * 10^decpt
    int nd = int(digits.size());
    if (decpt > -4 && decpt <= 16) {  // Python's repr switches to exponent form outside this range
        if (decpt <= 0) {
            out += "0." + std::string(size_t(-decpt), '0') + digits;
        } else if (decpt >= nd) {
            out += digits + std::string(size_t(decpt - nd), '0') + ".0";
        } else {
            out += digits.substr(0, size_t(decpt)) + "." + digits.substr(size_t(decpt));
        }
    } else {
        out += digits[0];
        if (nd > 1) out += "." + digits.substr(1);
        int e = decpt - 1;
        out += e < 0 ? "e-" : "e+";
        int ae = e < 0 ? -e : e;
        if (ae < 10) out += '0';
        out += std::to_string(ae);
    }
    return out;
}

// Python's str.isprintable() for the code points that commonly appear; others count as printable.
static bool py_isprintable(uint32_t c) {
    if (c < 0x20 || c == 0x7f) return false;
    if (c < 0x80) return true;
    if (c <= 0xa0 || c == 0xad) return false;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
        (c >= 0x205f && c <= 0x2064) || (c >= 0x2066 && c <= 0x206f) || c == 0x3000 || c == 0xfeff ||
        (c >= 0xfff9 && c <= 0xfffb) || (c >= 0x600 && c <= 0x605) || c == 0x61c || c == 0x6dd || c == 0x70f ||
        c == 0x180e || (c >= 0xd800 && c <= 0xf8ff) || c == 0xfffe || c == 0xffff || c >= 0xe0000)
        return false;
    return true;
}

std::string py_repr_string(std::string_view s) {
    bool has_sq = s.find('\'') != std::string_view::npos, has_dq = s.find('"') != std::string_view::npos;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    std::string out(1, q);
    static const char* hex = "0123456789abcdef";
    for (size_t i = 0; i < s.size();) {
        uint32_t c = utf8_next(s, i);
        if (c == uint32_t(q) || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (py_isprintable(c)) {
            utf8_put(out, c);
        } else if (c <= 0xff) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else if (c <= 0xffff) {
            out += "\\u";
            for (int k = 12; k >= 0; k -= 4) out += hex[(c >> k) & 15];
        } else {
            out += "\\U";
            for (int k = 28; k >= 0; k -= 4) out += hex[(c >> k) & 15];
        }
    }
    out += q;
    return out;
}

static void repr_into(const Value& v, std::string& out, size_t limit, int depth);

static void str_into(const Value& v, std::string& out, size_t limit, int depth) {
    switch (v.type()) {
        case Value::Type::Undefined: return;
        case Value::Type::String: out += v.str(); break;
        default: repr_into(v, out, limit, depth); return;
    }
    check_limit(out, limit);
}

static void repr_into(const Value& v, std::string& out, size_t limit, int depth) {
    if (depth > Value::kMaxDepth + 100) fail(ErrorKind::Limit, "value nesting too deep to print");
    switch (v.type()) {
        case Value::Type::Undefined: out += "Undefined"; break;
        case Value::Type::None: out += "None"; break;
        case Value::Type::Bool: out += v.get_bool() ? "True" : "False"; break;
        case Value::Type::Int: out += std::to_string(v.get_int()); break;
        case Value::Type::Float: out += py_float_repr(v.get_float()); break;
        case Value::Type::String:
            if (v.is_markup()) out += "Markup(";
            out += py_repr_string(v.str());
            if (v.is_markup()) out += ")";
            break;
        case Value::Type::List: {
            SeqKind k = v.seq_kind();
            if (is_iterator(k)) {
                out += "<" + v.type_name() + " object>";
                break;
            }
            const char* open = k == SeqKind::Tuple ? "(" : "[";
            if (k == SeqKind::DictItems) out += "dict_items(";
            if (k == SeqKind::DictKeys) out += "dict_keys(";
            if (k == SeqKind::DictValues) out += "dict_values(";
            out += open;
            bool first = true;
            for (auto& x : v.items()) {
                if (!first) out += ", ";
                first = false;
                repr_into(x, out, limit, depth + 1);
                check_limit(out, limit);
            }
            if (k == SeqKind::Tuple && v.items().size() == 1) out += ",";
            out += k == SeqKind::Tuple ? ")" : "]";
            if (k == SeqKind::DictItems || k == SeqKind::DictKeys || k == SeqKind::DictValues) out += ")";
            break;
        }
        case Value::Type::Dict: {
            out += "{";
            bool first = true;
            for (auto& [key, val] : v.dict().entries()) {
                if (!first) out += ", ";
                first = false;
                repr_into(key, out, limit, depth + 1);
                out += ": ";
                repr_into(val, out, limit, depth + 1);
                check_limit(out, limit);
            }
            out += "}";
            break;
        }
        case Value::Type::Function:
            if (v.func().kind == Function::Kind::Macro)
                out += "<Macro '" + v.func().name + "'>";
            else
                out += "<built-in method " + v.func().name + ">";
            break;
        case Value::Type::Namespace:
            out += "<Namespace ";
            repr_into(Value(v.ns().attrs), out, limit, depth + 1);
            out += ">";
            break;
    }
    check_limit(out, limit);
}

void py_str(const Value& v, std::string& out, size_t limit) { str_into(v, out, limit, 0); }
std::string py_str(const Value& v, size_t limit) {
    if (v.is_string()) return v.str();
    std::string s;
    str_into(v, s, limit, 0);
    return s;
}
void py_repr(const Value& v, std::string& out, size_t limit) { repr_into(v, out, limit, 0); }

// ------------------------------------------------------------------------------------------ JSON

static void json_string(std::string_view s, bool ensure_ascii, std::string& out) {
    static const char* hex = "0123456789abcdef";
    out += '"';
    auto u4 = [&](uint32_t c) {
        out += "\\u";
        for (int k = 12; k >= 0; k -= 4) out += hex[(c >> k) & 15];
    };
    for (size_t i = 0; i < s.size();) {
        uint32_t c = utf8_next(s, i);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20 || (ensure_ascii && c >= 0x7f)) {
                    if (c >= 0x10000) {
                        uint32_t v = c - 0x10000;
                        u4(0xd800 + (v >> 10));
                        u4(0xdc00 + (v & 0x3ff));
                    } else {
                        u4(c);
                    }
                } else {
                    utf8_put(out, c);
                }
        }
    }
    out += '"';
}

static std::string json_key(const Value& k) {
    switch (k.type()) {
        case Value::Type::String: return k.str();
        case Value::Type::None: return "null";
        case Value::Type::Bool: return k.get_bool() ? "true" : "false";
        case Value::Type::Int: return std::to_string(k.get_int());
        case Value::Type::Float: {
            double d = k.get_float();
            if (std::isnan(d)) return "NaN";
            if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
            return py_float_repr(d);
        }
        default:
            fail(ErrorKind::Type, "keys must be str, int, float, bool or None, not " + k.type_name());
    }
}

static void dump_into(const Value& v, const JsonDumpOptions& o, std::string& out, size_t limit, int level) {
    if (level > Value::kMaxDepth + 100) fail(ErrorKind::Value, "Circular reference detected");
    auto newline = [&](int lvl) {
        out += '\n';
        for (int i = 0; i < lvl; i++) {
            if (o.indent_is_string)
                out += o.indent_str;
            else
                out.append(size_t(o.indent), ' ');
            check_limit(out, limit);
        }
    };
    bool pretty = o.indent >= 0 || o.indent_is_string;
    switch (v.type()) {
        case Value::Type::None: out += "null"; break;
        case Value::Type::Bool: out += v.get_bool() ? "true" : "false"; break;
        case Value::Type::Int: out += std::to_string(v.get_int()); break;
        case Value::Type::Float: {
            double d = v.get_float();
            if (std::isnan(d))
                out += "NaN";
            else if (std::isinf(d))
                out += d > 0 ? "Infinity" : "-Infinity";
            else
                out += py_float_repr(d);
            break;
        }
        case Value::Type::String: json_string(v.str(), o.ensure_ascii, out); break;
        case Value::Type::List: {
            auto& items = v.items();
            if (v.seq_kind() != SeqKind::List && v.seq_kind() != SeqKind::Tuple)
                fail(ErrorKind::Type, "Object of type " + v.type_name() + " is not JSON serializable");
            if (items.empty()) {
                out += "[]";
                break;
            }
            out += '[';
            for (size_t i = 0; i < items.size(); i++) {
                if (i) out += o.item_sep;
                if (pretty) newline(level + 1);
                dump_into(items[i], o, out, limit, level + 1);
                check_limit(out, limit);
            }
            if (pretty) newline(level);
            out += ']';
            break;
        }
        case Value::Type::Dict: {
            auto& d = v.dict();
            if (d.empty()) {
                out += "{}";
                break;
            }
            std::vector<std::pair<Value, const Value*>> keyed;
            keyed.reserve(d.size());
            for (auto& [k, val] : d.entries()) keyed.emplace_back(k, &val);
            if (o.sort_keys)  // Python sorts the original keys, so mixed key types raise TypeError
                stable_sort_safe(keyed, [](auto& a, auto& b) { return py_less(a.first, b.first); });
            std::vector<std::pair<std::string, const Value*>> entries;
            entries.reserve(keyed.size());
            for (auto& [k, val] : keyed) entries.emplace_back(json_key(k), val);
            out += '{';
            bool first = true;
            for (auto& [k, val] : entries) {
                if (!first) out += o.item_sep;
                first = false;
                if (pretty) newline(level + 1);
                json_string(k, o.ensure_ascii, out);
                out += o.key_sep;
                dump_into(*val, o, out, limit, level + 1);
                check_limit(out, limit);
            }
            if (pretty) newline(level);
            out += '}';
            break;
        }
        default: fail(ErrorKind::Type, "Object of type " + v.type_name() + " is not JSON serializable");
    }
    check_limit(out, limit);
}

void json_dumps(const Value& v, const JsonDumpOptions& opt, std::string& out, size_t limit) {
    dump_into(v, opt, out, limit, 0);
}

template <class J>
static Value from_json_impl(const J& j, int depth) {
    if (depth > 900) fail(ErrorKind::Value, "JSON nesting too deep");
    switch (j.type()) {
        case nlohmann::json::value_t::null: return Value::none();
        case nlohmann::json::value_t::boolean: return Value(j.template get<bool>());
        case nlohmann::json::value_t::number_integer: return Value(j.template get<int64_t>());
        case nlohmann::json::value_t::number_unsigned: {
            uint64_t u = j.template get<uint64_t>();
            if (u <= uint64_t(INT64_MAX)) return Value(int64_t(u));
            return Value(double(u));  // beyond 64-bit ints (Python would keep the exact int)
        }
        case nlohmann::json::value_t::number_float: return Value(j.template get<double>());
        case nlohmann::json::value_t::string: return Value(j.template get<std::string>());
        case nlohmann::json::value_t::array: {
            ValueList items;
            items.reserve(j.size());
            for (auto& x : j) items.push_back(from_json_impl(x, depth + 1));
            return Value(std::move(items));
        }
        case nlohmann::json::value_t::object: {
            Dict d;
            for (auto it = j.begin(); it != j.end(); ++it) d.set(it.key(), from_json_impl(it.value(), depth + 1));
            return Value(std::move(d));
        }
        default: return Value::none();
    }
}

Value from_json(const nlohmann::ordered_json& j) { return from_json_impl(j, 0); }
Value from_json(const nlohmann::json& j) { return from_json_impl(j, 0); }

nlohmann::ordered_json to_json(const Value& v) {
    switch (v.type()) {
        case Value::Type::None:
        case Value::Type::Undefined: return nullptr;
        case Value::Type::Bool: return v.get_bool();
        case Value::Type::Int: return v.get_int();
        case Value::Type::Float: return v.get_float();
        case Value::Type::String: return v.str();
        case Value::Type::List: {
            auto a = nlohmann::ordered_json::array();
            for (auto& x : v.items()) a.push_back(to_json(x));
            return a;
        }
        case Value::Type::Dict: {
            auto o = nlohmann::ordered_json::object();
            for (auto& [k, x] : v.dict().entries()) o[py_str(k)] = to_json(x);
            return o;
        }
        case Value::Type::Namespace:  // may be self-referential: not exported
        case Value::Type::Function: return nullptr;
    }
    return nullptr;
}

}  // namespace rotor::jinja
