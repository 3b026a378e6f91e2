// jinja2's filters and tests, the Python str/dict/list methods templates call, the globals
// (range, dict, namespace, joiner, raise_exception, strftime_now) and Python's two string
// formatting mini-languages (`fmt % args` and str.format), all with Python's results.
#include "chat/jinja_interp.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <unordered_map>
#include <unordered_set>

namespace rotor::jinja {

namespace {

// ------------------------------------------------------------------------------------------ arguments

struct Param {
    const char* name;
    Value def;
    bool required = false;
};
Param req(const char* n) { return {n, Value(), true}; }
Param opt(const char* n, Value d) { return {n, std::move(d), false}; }

// Python-style binding of positional then keyword arguments to named parameters, with CPython's
// messages. Filters and tests are Python functions whose first parameter is the value (counted in
// "takes from 1 to 4 positional arguments"); methods are builtins with their own phrasing.
std::vector<Value> bind_impl(const std::string& fname, const CallArgs& a, std::initializer_list<Param> params, bool method) {
    std::vector<Value> out;
    std::vector<bool> set(params.size(), false);
    size_t nreq = 0;
    for (auto& p : params) nreq += p.required;
    if (a.args.size() > params.size()) {
        if (method)
            fail(ErrorKind::Type, fname + " expected at most " + std::to_string(params.size()) + " argument" +
                                      (params.size() == 1 ? "" : "s") + ", got " + std::to_string(a.args.size()));
        size_t lo = nreq + 1, hi = params.size() + 1, given = a.args.size() + 1;
        std::string takes = lo == hi ? std::to_string(hi) : "from " + std::to_string(lo) + " to " + std::to_string(hi);
        fail(ErrorKind::Type, fname + "() takes " + takes + " positional argument" + (hi == 1 ? "" : "s") + " but " +
                                  std::to_string(given) + (given == 1 ? " was" : " were") + " given");
    }
    size_t i = 0;
    for (auto& p : params) {
        out.push_back(i < a.args.size() ? a.args[i] : p.def);
        set[i] = i < a.args.size();
        i++;
    }
    for (auto& [k, v] : a.kwargs) {
        size_t j = 0;
        bool found = false;
        for (auto& p : params) {
            if (k == p.name) {
                if (set[j]) fail(ErrorKind::Type, fname + "() got multiple values for argument '" + k + "'");
                out[j] = v;
                set[j] = true;
                found = true;
                break;
            }
            j++;
        }
        if (!found) fail(ErrorKind::Type, fname + "() got an unexpected keyword argument '" + k + "'");
    }
    std::vector<std::string> missing;
    size_t j = 0;
    for (auto& p : params) {
        if (p.required && !set[j]) missing.push_back(std::string("'") + p.name + "'");
        j++;
    }
    if (!missing.empty()) {
        if (method)
            fail(ErrorKind::Type, fname + " expected at least " + std::to_string(nreq) + " argument" + (nreq == 1 ? "" : "s") +
                                      ", got " + std::to_string(a.args.size()));
        std::string names;
        for (size_t k = 0; k < missing.size(); k++) {
            if (k) names += k + 1 == missing.size() ? (missing.size() > 2 ? ", and " : " and ") : ", ";
            names += missing[k];
        }
        fail(ErrorKind::Type, fname + "() missing " + std::to_string(missing.size()) + " required positional argument" +
                                  (missing.size() == 1 ? "" : "s") + ": " + names);
    }
    return out;
}
std::vector<Value> bind(const std::string& fname, const CallArgs& a, std::initializer_list<Param> params) {
    return bind_impl(fname, a, params, false);
}
std::vector<Value> bind_method(const std::string& fname, const CallArgs& a, std::initializer_list<Param> params) {
    return bind_impl(fname, a, params, true);
}

void no_kwargs(const std::string& fname, const CallArgs& a) {
    if (!a.kwargs.empty()) fail(ErrorKind::Type, fname + "() takes no keyword arguments");
}

int64_t as_int(const Value& v, const char* what = "an integer") {
    if (v.is_int() || v.is_bool()) return v.get_int();
    if (v.is_undefined()) fail_undefined(v);
    fail(ErrorKind::Type, "'" + v.type_name() + "' object cannot be interpreted as " + what);
}

const std::string& as_str(const Value& v, const std::string& fname) {
    if (!v.is_string()) fail(ErrorKind::Type, fname + " argument must be str, not " + v.type_name());
    return v.str();
}

// ------------------------------------------------------------------------------------------ text helpers

std::string repeat(std::u32string_view fill, size_t n) {
    std::u32string r;
    for (size_t i = 0; i < n; i++) r += fill;
    return from_u32(r);
}

// str.split / str.rsplit
ValueList py_split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right) {
    ValueList out;
    std::u32string u = to_u32(s);
    if (sep.is_none() || sep.is_undefined()) {
        // CPython's split_whitespace / rsplit_whitespace: the remainder after maxsplit keeps its
        // whitespace on the far side
        int64_t n = int64_t(u.size()), left = maxsplit < 0 ? INT64_MAX : maxsplit;
        auto sub = [&](int64_t b, int64_t e) { return Value(from_u32(std::u32string_view(u).substr(size_t(b), size_t(e - b)))); };
        if (!from_right) {
            int64_t i = 0;
            while (left-- > 0) {
                while (i < n && py_isspace(u[size_t(i)])) i++;
                if (i == n) break;
                int64_t j = i++;
                while (i < n && !py_isspace(u[size_t(i)])) i++;
                out.push_back(sub(j, i));
            }
            if (i < n) {
                while (i < n && py_isspace(u[size_t(i)])) i++;
                if (i != n) out.push_back(sub(i, n));
            }
        } else {
            int64_t i = n - 1;
            while (left-- > 0) {
                while (i >= 0 && py_isspace(u[size_t(i)])) i--;
                if (i < 0) break;
                int64_t j = i--;
                while (i >= 0 && !py_isspace(u[size_t(i)])) i--;
                out.push_back(sub(i + 1, j + 1));
            }
            if (i >= 0) {
                while (i >= 0 && py_isspace(u[size_t(i)])) i--;
                if (i >= 0) out.push_back(sub(0, i + 1));
            }
            std::reverse(out.begin(), out.end());
        }
        return out;
    }
    if (!sep.is_string()) fail(ErrorKind::Type, "must be str or None, not " + sep.type_name());
    if (sep.str().empty()) fail(ErrorKind::Value, "empty separator");
    const std::string& d = sep.str();
    if (!from_right) {
        size_t start = 0;
        int64_t splits = 0;
        while (maxsplit < 0 || splits < maxsplit) {
            size_t p = s.find(d, start);
            if (p == std::string::npos) break;
            out.emplace_back(s.substr(start, p - start));
            start = p + d.size();
            splits++;
        }
        out.emplace_back(s.substr(start));
    } else {
        std::vector<std::string> parts;
        size_t end = s.size();
        int64_t splits = 0;
        while (maxsplit < 0 || splits < maxsplit) {
            if (end < d.size()) break;
            size_t p = s.rfind(d, end - d.size());
            if (p == std::string::npos) break;
            parts.push_back(s.substr(p + d.size(), end - p - d.size()));
            end = p;
            splits++;
        }
        parts.push_back(s.substr(0, end));
        for (size_t k = parts.size(); k-- > 0;) out.emplace_back(parts[k]);
    }
    return out;
}

bool is_line_break(char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
}

std::vector<std::string> py_splitlines(const std::string& s, bool keepends) {
    std::vector<std::string> out;
    std::u32string u = to_u32(s);
    size_t i = 0, n = u.size();
    while (i < n) {
        size_t b = i;
        while (i < n && !is_line_break(u[i])) i++;
        size_t e = i;
        if (i < n) {
            if (u[i] == '\r' && i + 1 < n && u[i + 1] == '\n')
                i += 2;
            else
                i++;
        }
        out.push_back(from_u32(std::u32string_view(u).substr(b, (keepends ? i : e) - b)));
    }
    return out;
}

bool is_cased(char32_t c) { return py_isupper(c) || py_islower(c); }

std::string py_title(const std::string& s) {
    std::u32string out;
    bool prev_cased = false;
    for (size_t i = 0; i < s.size();) {
        uint32_t c = utf8_next(s, i);
        if (prev_cased)
            py_lower_cp(c, out);
        else
            py_upper_cp(c, out);
        prev_cased = is_cased(c);
    }
    return from_u32(out);
}

std::string py_capitalize(const std::string& s) {
    std::u32string out;
    bool first = true;
    for (size_t i = 0; i < s.size();) {
        uint32_t c = utf8_next(s, i);
        if (first)
            py_upper_cp(c, out);
        else
            py_lower_cp(c, out);
        first = false;
    }
    return from_u32(out);
}

// Python's str.center/ljust/rjust.
std::string py_pad(const std::string& s, int64_t width, char32_t fill, char align) {
    size_t len = cp_count(s);
    if (width <= int64_t(len)) return s;
    size_t marg = size_t(width) - len;
    size_t left = align == '<' ? 0 : align == '>' ? marg : marg / 2 + (marg & size_t(width) & 1);
    std::u32string f(1, fill);
    return repeat(f, left) + s + repeat(f, marg - left);
}

// Code point offsets for find/count with Python's start/end clamping.
void clamp_range(int64_t len, const Value& start, const Value& end, int64_t& b, int64_t& e) {
    auto conv = [&](const Value& v, int64_t dflt) {
        if (v.is_none() || v.is_undefined()) return dflt;
        int64_t x = as_int(v);
        if (x < 0) x = std::max<int64_t>(0, x + len);
        return std::min(x, len);
    };
    b = conv(start, 0);
    e = conv(end, len);
}

int64_t py_find(const std::string& s, const std::string& sub, const Value& start, const Value& end, bool reverse) {
    std::u32string u = to_u32(s), w = to_u32(sub);
    int64_t b, e;
    clamp_range(int64_t(u.size()), start, end, b, e);
    if (e - b < int64_t(w.size())) return -1;
    std::u32string_view view = std::u32string_view(u).substr(size_t(b), size_t(e - b));
    size_t p = reverse ? view.rfind(w) : view.find(w);
    return p == std::u32string_view::npos ? -1 : int64_t(p) + b;
}

int64_t py_count(const std::string& s, const std::string& sub, const Value& start, const Value& end) {
    std::u32string u = to_u32(s), w = to_u32(sub);
    int64_t b, e;
    clamp_range(int64_t(u.size()), start, end, b, e);
    if (e < b) return 0;
    if (w.empty()) return e - b + 1;
    std::u32string_view view = std::u32string_view(u).substr(size_t(b), size_t(e - b));
    int64_t n = 0;
    for (size_t p = view.find(w); p != std::u32string_view::npos; p = view.find(w, p + w.size())) n++;
    return n;
}

std::string py_replace(Interp& in, const std::string& s, const std::string& old, const std::string& rep, int64_t count) {
    std::string out;
    if (old.empty()) {  // Python inserts `rep` around every code point
        int64_t done = 0;
        size_t i = 0;
        while (true) {
            if (count < 0 || done < count) {
                out += rep;
                done++;
            }
            if (i >= s.size()) break;
            size_t b = i;
            utf8_next(s, i);
            out.append(s, b, i - b);
            in.check_size(out.size());
        }
        return out;
    }
    size_t start = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
        size_t p = s.find(old, start);
        if (p == std::string::npos) break;
        out.append(s, start, p - start);
        out += rep;
        in.check_size(out.size());
        start = p + old.size();
        done++;
    }
    out.append(s, start, std::string::npos);
    in.check_size(out.size());
    return out;
}

bool py_str_islower(const std::string& s) {
    bool cased = false;
    for (size_t i = 0; i < s.size();) {
        uint32_t c = utf8_next(s, i);
        if (py_isupper(c)) return false;
        if (py_islower(c)) cased = true;
    }
    return cased;
}
bool py_str_isupper(const std::string& s) {
    bool cased = false;
    for (size_t i = 0; i < s.size();) {
        uint32_t c = utf8_next(s, i);
        if (py_islower(c)) return false;
        if (py_isupper(c)) cased = true;
    }
    return cased;
}

template <class Pred>
bool all_cps(const std::string& s, Pred p) {
    if (s.empty()) return false;
    for (size_t i = 0; i < s.size();)
        if (!p(utf8_next(s, i))) return false;
    return true;
}

// ------------------------------------------------------------------------------------------ formatting

std::string int_to_base(int64_t v, int base, bool upper) {
    if (v == 0) return "0";
    bool neg = v < 0;
    uint64_t u = neg ? uint64_t(0) - uint64_t(v) : uint64_t(v);
    std::string r;
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    while (u) {
        r += digits[u % uint64_t(base)];
        u /= uint64_t(base);
    }
    if (neg) r += '-';
    return std::string(r.rbegin(), r.rend());
}

std::string c_format_double(char type, int precision, double v, bool alt) {
    if (std::isnan(v)) return (type >= 'A' && type <= 'Z') ? "NAN" : "nan";
    if (std::isinf(v)) return v > 0 ? ((type >= 'A' && type <= 'Z') ? "INF" : "inf") : ((type >= 'A' && type <= 'Z') ? "-INF" : "-inf");
    char fmt[16];
    std::snprintf(fmt, sizeof fmt, "%%%s.*%c", alt ? "#" : "", type);
    int n = std::snprintf(nullptr, 0, fmt, precision, v);
    std::string out(size_t(n) + 1, '\0');
    std::snprintf(out.data(), out.size(), fmt, precision, v);
    out.resize(size_t(n));
    return out;
}

// Pads a formatted number/string: align '<' '>' '^' or '=' (after the sign).
std::string align_text(std::string body, std::string sign, int64_t width, char32_t fill, char align) {
    size_t len = cp_count(body) + sign.size();
    if (width <= int64_t(len)) return sign + body;
    size_t pad = size_t(width) - len;
    std::u32string f(1, fill);
    switch (align) {
        case '<': return sign + body + repeat(f, pad);
        case '^': return repeat(f, pad / 2) + sign + body + repeat(f, pad - pad / 2);
        case '=': return sign + repeat(f, pad) + body;
        default: return repeat(f, pad) + sign + body;
    }
}

std::string group_digits(const std::string& digits, char sep, int every) {
    std::string out;
    int n = int(digits.size());
    for (int i = 0; i < n; i++) {
        out += digits[size_t(i)];
        int left = n - 1 - i;
        if (left > 0 && left % every == 0) out += sep;
    }
    return out;
}

// format(value, spec): Python's format-spec mini-language for str, int and float.
std::string format_spec(Interp& in, const Value& v, const std::string& spec) {
    if (spec.empty()) return in.str(v);
    std::u32string u = to_u32(spec);
    size_t i = 0;
    char32_t fill = ' ';
    char align = 0;
    auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
    if (u.size() >= 2 && is_align(u[1])) {
        fill = u[0];
        align = char(u[1]);
        i = 2;
    } else if (!u.empty() && is_align(u[0])) {
        align = char(u[0]);
        i = 1;
    }
    char sign = '-';
    if (i < u.size() && (u[i] == '+' || u[i] == '-' || u[i] == ' ')) sign = char(u[i++]);
    bool alt = false;
    if (i < u.size() && u[i] == '#') {
        alt = true;
        i++;
    }
    if (i < u.size() && u[i] == '0') {
        if (!align) {
            fill = '0';
            align = '=';
        }
        i++;
    }
    int64_t width = -1;
    while (i < u.size() && u[i] >= '0' && u[i] <= '9') {
        width = std::max<int64_t>(width, 0) * 10 + int64_t(u[i++] - '0');
        if (width > int64_t(in.opts().max_output_bytes)) in.check_size(SIZE_MAX);
    }
    char grouping = 0;
    if (i < u.size() && (u[i] == ',' || u[i] == '_')) grouping = char(u[i++]);
    int precision = -1;
    if (i < u.size() && u[i] == '.') {
        i++;
        precision = 0;
        bool any = false;
        while (i < u.size() && u[i] >= '0' && u[i] <= '9') {
            precision = std::min(precision * 10 + int(u[i++] - '0'), 10000);
            any = true;
        }
        if (!any) fail(ErrorKind::Value, "Format specifier missing precision");
    }
    char type = 0;
    if (i < u.size()) type = char(u[i++]);
    if (i != u.size()) fail(ErrorKind::Value, "Invalid format specifier");

    if (v.is_string() || (!v.is_number())) {
        if (!v.is_string()) {
            if (!spec.empty()) fail(ErrorKind::Type, "unsupported format string passed to " + v.type_name() + ".__format__");
        }
        if (type && type != 's') fail(ErrorKind::Value, std::string("Unknown format code '") + type + "' for object of type 'str'");
        std::string s = v.str();
        if (precision >= 0) {
            std::u32string su = to_u32(s);
            if (su.size() > size_t(precision)) s = from_u32(std::u32string_view(su).substr(0, size_t(precision)));
        }
        return align_text(s, "", width, fill, align ? align : '<');
    }
    bool is_float_v = v.is_float();
    if (!is_float_v && (type == 0 || type == 'd' || type == 'b' || type == 'o' || type == 'x' || type == 'X' || type == 'n' || type == 'c')) {
        int64_t x = v.get_int();
        if (type == 'c') return align_text(from_u32(std::u32string(1, char32_t(x))), "", width, fill, align ? align : '<');
        int base = (type == 'b') ? 2 : (type == 'o') ? 8 : (type == 'x' || type == 'X') ? 16 : 10;
        std::string digits = int_to_base(x < 0 ? 0 : x, base, type == 'X');
        if (x < 0) digits = int_to_base(x, base, type == 'X').substr(1);
        if (grouping) digits = group_digits(digits, grouping, base == 10 ? 3 : 4);
        if (alt && base != 10) digits = std::string("0") + (base == 2 ? 'b' : base == 8 ? 'o' : (type == 'X' ? 'X' : 'x')) + digits;
        std::string sgn = x < 0 ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
        return align_text(digits, sgn, width, fill, align ? align : '>');
    }
    double d = v.get_float();
    std::string body;
    bool neg = std::signbit(d) && !std::isnan(d);
    double a = std::fabs(d);
    switch (type) {
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G': body = c_format_double(type, precision < 0 ? 6 : precision, a, alt); break;
        case '%': body = c_format_double('f', precision < 0 ? 6 : precision, a * 100, alt) + "%"; break;
        case 'n': body = c_format_double('g', precision < 0 ? 6 : precision, a, alt); break;
        case 0:
            if (precision < 0) {
                body = py_float_repr(a);
            } else {
                body = c_format_double('g', precision == 0 ? 1 : precision, a, alt);
                if (body.find_first_of(".ein") == std::string::npos) body += ".0";
            }
            break;
        default: fail(ErrorKind::Value, std::string("Unknown format code '") + type + "' for object of type 'float'");
    }
    if (grouping) {
        size_t e = body.find_first_of(".eE%");
        std::string ip = body.substr(0, e), rest = e == std::string::npos ? "" : body.substr(e);
        if (!ip.empty() && ip.find_first_not_of("0123456789") == std::string::npos) body = group_digits(ip, grouping, 3) + rest;
    }
    std::string sgn = neg ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
    return align_text(body, sgn, width, fill, align ? align : '>');
}

// str.format: {} {0} {name} {name.attr} {name[key]} with !r/!s/!a conversions and format specs.
std::string str_format(Interp& in, const std::string& fmt, const CallArgs& a) {
    std::string out;
    size_t auto_idx = 0;
    bool used_auto = false, used_manual = false;
    size_t i = 0, n = fmt.size();
    while (i < n) {
        char c = fmt[i];
        if (c == '}') {
            if (i + 1 < n && fmt[i + 1] == '}') {
                out += '}';
                i += 2;
                continue;
            }
            fail(ErrorKind::Value, "Single '}' encountered in format string");
        }
        if (c != '{') {
            out += c;
            i++;
            continue;
        }
        if (i + 1 < n && fmt[i + 1] == '{') {
            out += '{';
            i += 2;
            continue;
        }
        // find the matching '}' (specs may nest one level of {})
        size_t j = i + 1;
        int depth = 1;
        while (j < n && depth > 0) {
            if (fmt[j] == '{') depth++;
            else if (fmt[j] == '}') depth--;
            if (depth > 0) j++;
        }
        if (j >= n) fail(ErrorKind::Value, "expected '}' before end of string");
        std::string field = fmt.substr(i + 1, j - i - 1);
        i = j + 1;
        std::string spec;
        char conv = 0;
        size_t colon = std::string::npos;
        for (size_t k = 0, br = 0; k < field.size(); k++) {
            if (field[k] == '[') br++;
            else if (field[k] == ']' && br) br--;
            else if (field[k] == ':' && !br) {
                colon = k;
                break;
            }
        }
        if (colon != std::string::npos) {
            spec = field.substr(colon + 1);
            field.resize(colon);
        }
        size_t bang = field.find('!');
        if (bang != std::string::npos) {
            if (bang + 2 != field.size()) fail(ErrorKind::Value, "expected ':' after conversion specifier");
            conv = field[bang + 1];
            field.resize(bang);
        }
        if (spec.find('{') != std::string::npos) spec = str_format(in, spec, a);
        // first part: index or name
        size_t k = 0;
        while (k < field.size() && field[k] != '.' && field[k] != '[') k++;
        std::string head = field.substr(0, k);
        Value v;
        if (head.empty()) {
            if (used_manual) fail(ErrorKind::Value, "cannot switch from manual field specification to automatic field numbering");
            used_auto = true;
            size_t idx = auto_idx++;
            if (idx >= a.args.size()) fail(ErrorKind::Index, "tuple index out of range");
            v = a.args[idx];
        } else if (head.find_first_not_of("0123456789") == std::string::npos) {
            if (used_auto) fail(ErrorKind::Value, "cannot switch from automatic field numbering to manual field specification");
            used_manual = true;
            size_t idx = head.size() > 9 ? SIZE_MAX : size_t(std::stoull(head));
            if (idx >= a.args.size()) fail(ErrorKind::Index, "tuple index out of range");
            v = a.args[idx];
        } else {
            const Value* kv = a.kwarg(head);
            if (!kv) fail(ErrorKind::Key, py_repr_string(head));
            v = *kv;
        }
        while (k < field.size()) {
            if (field[k] == '.') {
                size_t e = k + 1;
                while (e < field.size() && field[e] != '.' && field[e] != '[') e++;
                v = in.getattr(v, field.substr(k + 1, e - k - 1));
                k = e;
            } else {
                size_t e = field.find(']', k);
                if (e == std::string::npos) fail(ErrorKind::Value, "Missing ']' in format string");
                std::string key = field.substr(k + 1, e - k - 1);
                Value kv = (!key.empty() && key.find_first_not_of("0123456789") == std::string::npos && key.size() < 10)
                               ? Value(int64_t(std::stoll(key)))
                               : Value(key);
                v = in.getitem(v, kv);
                k = e + 1;
            }
        }
        if (v.is_undefined()) fail_undefined(v);
        if (conv == 'r' || conv == 'a') {
            std::string r;
            py_repr(v, r, in.opts().max_output_bytes);
            v = Value(r);
        } else if (conv == 's') {
            v = Value(in.str(v));
        } else if (conv) {
            fail(ErrorKind::Value, std::string("Unknown conversion specifier ") + conv);
        }
        out += format_spec(in, v, spec);
        in.check_size(out.size());
    }
    return out;
}

}  // namespace

std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

// Python's printf-style `fmt % args`.
std::string percent_format(Interp& in, const std::string& fmt, const Value& args) {
    ValueList list;
    const Dict* mapping = nullptr;
    if (args.is_list() && args.seq_kind() == SeqKind::Tuple)
        list = args.items();
    else
        list.push_back(args);
    if (args.is_dict()) mapping = &args.dict();
    size_t next = 0;
    bool used_mapping = false;
    std::string out;
    auto take = [&]() -> Value {
        if (next >= list.size()) fail(ErrorKind::Type, "not enough arguments for format string");
        return list[next++];
    };
    size_t i = 0, n = fmt.size();
    while (i < n) {
        char c = fmt[i];
        if (c != '%') {
            out += c;
            i++;
            continue;
        }
        size_t start = i++;
        if (i >= n) fail(ErrorKind::Value, "incomplete format");
        Value arg;
        bool have_arg = false;
        if (fmt[i] == '(') {
            size_t e = fmt.find(')', i);
            if (e == std::string::npos) fail(ErrorKind::Value, "incomplete format key");
            if (!mapping) fail(ErrorKind::Type, "format requires a mapping");
            const Value* v = mapping->find(fmt.substr(i + 1, e - i - 1));
            if (!v) fail(ErrorKind::Key, py_repr_string(fmt.substr(i + 1, e - i - 1)));
            arg = *v;
            have_arg = true;
            used_mapping = true;
            i = e + 1;
        }
        std::string flags;
        while (i < n && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) flags += fmt[i++];
        int64_t width = -1;
        if (i < n && fmt[i] == '*') {
            width = as_int(take());
            i++;
        } else {
            while (i < n && fmt[i] >= '0' && fmt[i] <= '9') width = std::min<int64_t>(std::max<int64_t>(width, 0) * 10 + (fmt[i++] - '0'), 1 << 30);
        }
        int precision = -1;
        if (i < n && fmt[i] == '.') {
            i++;
            precision = 0;
            if (i < n && fmt[i] == '*') {
                precision = int(std::clamp<int64_t>(as_int(take()), 0, 10000));
                i++;
            } else {
                while (i < n && fmt[i] >= '0' && fmt[i] <= '9') precision = std::min(precision * 10 + (fmt[i++] - '0'), 10000);
            }
        }
        while (i < n && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) i++;
        if (i >= n) fail(ErrorKind::Value, "incomplete format");
        char type = fmt[i++];
        if (type == '%') {
            out += '%';
            continue;
        }
        if (!have_arg) arg = take();
        if (width > int64_t(in.opts().max_output_bytes)) in.check_size(SIZE_MAX);
        bool left = flags.find('-') != std::string::npos, zero = flags.find('0') != std::string::npos && !left;
        bool plus = flags.find('+') != std::string::npos, space = flags.find(' ') != std::string::npos;
        bool alt = flags.find('#') != std::string::npos;
        std::string body, sign;
        switch (type) {
            case 's':
            case 'r':
            case 'a': {
                if (type == 's') {
                    body = in.str(arg);
                } else {
                    py_repr(arg, body, in.opts().max_output_bytes);
                }
                if (precision >= 0) {
                    std::u32string u = to_u32(body);
                    if (u.size() > size_t(precision)) body = from_u32(std::u32string_view(u).substr(0, size_t(precision)));
                }
                zero = false;
                break;
            }
            case 'd':
            case 'i':
            case 'u':
            case 'x':
            case 'X':
            case 'o': {
                int64_t x;
                if (arg.is_int() || arg.is_bool()) {
                    x = arg.get_int();
                } else if (arg.is_float() && (type == 'd' || type == 'i' || type == 'u')) {
                    double d = arg.get_float();
                    if (!std::isfinite(d)) fail(ErrorKind::Overflow, "cannot convert float infinity to integer");
                    if (std::fabs(d) >= 9.2e18) fail(ErrorKind::Overflow, "integer overflow (64-bit integers)");
                    x = int64_t(d);
                } else {
                    if (arg.is_undefined()) fail_undefined(arg);
                    if (type == 'x' || type == 'X' || type == 'o')
                        fail(ErrorKind::Type, std::string("%") + type + " format: an integer is required, not " + arg.type_name());
                    fail(ErrorKind::Type, std::string("%") + type + " format: a real number is required, not " + arg.type_name());
                }
                int base = (type == 'x' || type == 'X') ? 16 : type == 'o' ? 8 : 10;
                body = int_to_base(x, base, type == 'X');
                if (x < 0) {
                    sign = "-";
                    body = body.substr(1);
                } else if (plus) {
                    sign = "+";
                } else if (space) {
                    sign = " ";
                }
                if (precision >= 0 && int(body.size()) < precision) body = std::string(size_t(precision) - body.size(), '0') + body;
                if (alt && base == 16) sign += type == 'X' ? "0X" : "0x";
                if (alt && base == 8) sign += "0o";
                break;
            }
            case 'e':
            case 'E':
            case 'f':
            case 'F':
            case 'g':
            case 'G': {
                if (!arg.is_number()) {
                    if (arg.is_undefined()) fail_undefined(arg);
                    fail(ErrorKind::Type, "must be real number, not " + arg.type_name());
                }
                double d = arg.get_float();
                body = c_format_double(type, precision < 0 ? 6 : precision, std::fabs(d), alt);
                if (std::signbit(d) && !std::isnan(d)) sign = "-";
                else if (plus) sign = "+";
                else if (space) sign = " ";
                break;
            }
            case 'c': {
                if (arg.is_string() && cp_count(arg.str()) == 1) {
                    body = arg.str();
                } else if (arg.is_int()) {
                    int64_t cp = arg.get_int();
                    if (cp < 0 || cp > 0x10ffff) fail(ErrorKind::Overflow, "%c arg not in range(0x110000)");
                    utf8_put(body, uint32_t(cp));
                } else {
                    fail(ErrorKind::Type, "%c requires int or char");
                }
                zero = false;
                break;
            }
            default: {
                char buf[96];
                std::snprintf(buf, sizeof buf, "unsupported format character '%c' (0x%x) at index %zu", type, unsigned(uint8_t(type)), i - 1);
                (void)start;
                fail(ErrorKind::Value, buf);
            }
        }
        out += align_text(body, sign, width, zero ? U'0' : U' ', left ? '<' : zero ? '=' : '>');
        in.check_size(out.size());
    }
    if (!used_mapping && !mapping && next < list.size())
        fail(ErrorKind::Type, "not all arguments converted during string formatting");
    return out;
}

namespace {

// ------------------------------------------------------------------------------------------ filters

using FilterFn = Value (*)(Interp&, const Value&, CallArgs&);
using TestFn = bool (*)(Interp&, const Value&, CallArgs&);

Value ignore_case(const Value& v) { return v.is_string() ? Value(py_lower(v.str())) : v; }

// jinja2's make_attrgetter: "a.b.0" walks item lookups (falling back to attributes).
Value attr_path(Interp& in, const Value& item, const Value& attribute) {
    if (attribute.is_int()) return in.getitem(item, attribute);
    std::string path = in.str(attribute);
    Value v = item;
    size_t start = 0;
    while (true) {
        size_t dot = path.find('.', start);
        std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        bool digits = !part.empty() && part.size() < 18 && part.find_first_not_of("0123456789") == std::string::npos;
        v = in.getitem(v, digits ? Value(int64_t(std::stoll(part))) : Value(part));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return v;
}

std::function<Value(const Value&)> make_key(Interp& in, const Value& attribute, bool case_sensitive, const Value& dflt = Value()) {
    return [&in, attribute, case_sensitive, dflt](const Value& item) {
        Value v = item;
        if (!attribute.is_none() && !attribute.is_undefined()) {
            v = attr_path(in, item, attribute);
            if (v.is_undefined() && !dflt.is_undefined()) v = dflt;
        }
        return case_sensitive ? v : ignore_case(v);
    };
}

Value f_abs(Interp&, const Value& v, CallArgs& a) {
    bind("do_abs", a, {});
    if (v.is_float()) return Value(std::fabs(v.get_float()));
    if (v.is_int() || v.is_bool()) {
        if (v.get_int() == INT64_MIN) fail(ErrorKind::Overflow, "integer overflow (64-bit integers)");
        return Value(v.get_int() < 0 ? -v.get_int() : v.get_int());
    }
    fail(ErrorKind::Type, "bad operand type for abs(): '" + v.type_name() + "'");
}

Value f_attr(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_attr", a, {req("name")});
    std::string name = in.str(p[0]);
    if (v.is_undefined()) fail_undefined(v);
    if (name.size() >= 2 && name[0] == '_' && name[1] == '_')
        return Value::undefined_hint("access to attribute " + py_repr_string(name) + " of " + py_repr_string(v.type_name()) + " object is unsafe.",
                                     ErrorKind::Security);
    if (v.is_namespace()) {
        if (const Value* x = v.ns().attrs.find(name)) return *x;
    } else if (auto m = get_method(v, name)) {
        return *m;
    }
    return Value::undefined_attr(v, name);
}

Value f_batch(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_batch", a, {req("linecount"), opt("fill_with", Value::none())});
    int64_t count = as_int(p[0]);
    ValueList items = in.iterate(v), out, tmp;
    in.tick(items.size());
    for (auto& x : items) {
        if (int64_t(tmp.size()) == count) {
            out.emplace_back(std::move(tmp));
            tmp.clear();
        }
        tmp.push_back(x);
    }
    if (!tmp.empty()) {
        if (!p[1].is_none())
            while (int64_t(tmp.size()) < count) tmp.push_back(p[1]);
        out.emplace_back(std::move(tmp));
    }
    return Value(std::move(out), SeqKind::Generator);
}

Value f_capitalize(Interp& in, const Value& v, CallArgs& a) {
    bind("do_capitalize", a, {});
    return Value(py_capitalize(in.str(v)));
}

Value f_center(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_center", a, {opt("width", Value(80))});
    int64_t w = as_int(p[0]);
    in.check_size(size_t(std::max<int64_t>(w, 0)));
    return Value(py_pad(in.str(v), w, ' ', '^'));
}

Value f_length(Interp&, const Value& v, CallArgs& a) {
    bind("length", a, {});
    switch (v.type()) {
        case Value::Type::String: return Value(int64_t(cp_count(v.str())));
        case Value::Type::List:
            if (is_iterator(v.seq_kind())) fail(ErrorKind::Type, "object of type '" + v.type_name() + "' has no len()");
            return Value(int64_t(v.items().size()));
        case Value::Type::Dict: return Value(int64_t(v.dict().size()));
        case Value::Type::Undefined: return Value(0);
        default: fail(ErrorKind::Type, "object of type '" + v.type_name() + "' has no len()");
    }
}

Value f_default(Interp&, const Value& v, CallArgs& a) {
    auto p = bind("do_default", a, {opt("default_value", Value("")), opt("boolean", Value(false))});
    if (v.is_undefined() || (p[1].truthy() && !v.truthy())) return p[0];
    return v;
}

Value f_dictsort(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_dictsort", a, {opt("case_sensitive", Value(false)), opt("by", Value("key")), opt("reverse", Value(false))});
    if (v.is_undefined()) fail_undefined(v);
    if (!v.is_dict()) fail(ErrorKind::Undefined, "'" + v.type_name() + " object' has no attribute 'items'");
    std::string by = in.str(p[1]);
    if (by != "key" && by != "value") fail(ErrorKind::FilterArgument, "You can only sort by either \"key\" or \"value\"");
    size_t pos = by == "key" ? 0 : 1;
    bool cs = p[0].truthy(), rev = p[2].truthy();
    std::vector<std::pair<Value, Value>> entries;  // (sort key, item)
    for (auto& [k, x] : v.dict().entries()) {
        Value item(ValueList{k, x}, SeqKind::Tuple);
        Value key = pos == 0 ? k : x;
        entries.emplace_back(cs ? key : ignore_case(key), item);
    }
    in.tick(entries.size());
    stable_sort_safe(entries, [rev](auto& x, auto& y) { return rev ? py_less(y.first, x.first) : py_less(x.first, y.first); });
    ValueList out;
    for (auto& e : entries) out.push_back(e.second);
    return Value(std::move(out));
}

Value f_escape(Interp& in, const Value& v, CallArgs& a) {
    bind("escape", a, {});
    if (v.is_markup()) return v;
    return Value(html_escape(in.str(v)), true);
}

Value f_forceescape(Interp& in, const Value& v, CallArgs& a) {
    bind("do_forceescape", a, {});
    return Value(html_escape(in.str(v)), true);
}

Value f_first(Interp& in, const Value& v, CallArgs& a) {
    bind("do_first", a, {});
    if (v.is_list() && !v.items().empty()) return v.items()[0];
    ValueList items = in.iterate(v);
    if (items.empty()) return Value::undefined_hint("No first item, sequence was empty.");
    return items[0];
}

Value f_last(Interp& in, const Value& v, CallArgs& a) {
    bind("do_last", a, {});
    if (v.is_list() && v.seq_kind() == SeqKind::Generator) fail(ErrorKind::Type, "'generator' object is not reversible");
    if (v.is_list() && !v.items().empty()) return v.items().back();
    ValueList items = in.iterate(v);
    if (items.empty()) return Value::undefined_hint("No last item, sequence was empty.");
    return items.back();
}

// float(str) as Python parses it: surrounding whitespace, underscores between digits, inf/nan.
bool parse_py_float(const std::string& text, double& out) {
    std::string s = py_strip(text, nullptr, true, true), t;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] == '_') {
            if (i == 0 || i + 1 >= s.size() || !isdigit(uint8_t(s[i - 1])) || !isdigit(uint8_t(s[i + 1]))) return false;
            continue;
        }
        t += s[i];
    }
    if (t.empty()) return false;
    std::string low = py_lower(t);
    std::string body = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
    if (body == "inf" || body == "infinity" || body == "nan") {
        double x = body == "nan" ? NAN : HUGE_VAL;
        out = low[0] == '-' ? -x : x;
        return true;
    }
    for (char c : body)
        if (!(isdigit(uint8_t(c)) || c == '.' || c == 'e' || c == '+' || c == '-')) return false;
    char* end = nullptr;
    out = std::strtod(t.c_str(), &end);
    return end && *end == '\0' && end != t.c_str();
}

// int(str, base) as Python parses it.
bool parse_py_int(const std::string& text, int64_t base, int64_t& out) {
    std::string s = py_strip(text, nullptr, true, true);
    size_t i = 0;
    bool neg = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (base == 0 || base == 16 || base == 8 || base == 2) {
        if (i + 1 < s.size() && s[i] == '0') {
            char k = char(s[i + 1] | 32);
            int64_t pb = k == 'x' ? 16 : k == 'o' ? 8 : k == 'b' ? 2 : 0;
            if (pb && (base == 0 || base == pb)) {
                base = pb;
                i += 2;
                if (i < s.size() && s[i] == '_') i++;
            }
        }
        if (base == 0) base = 10;
    }
    if (base < 2 || base > 36 || i >= s.size()) return false;
    uint64_t v = 0;
    bool any = false;
    for (; i < s.size(); i++) {
        char c = s[i];
        if (c == '_' && any && i + 1 < s.size() && s[i + 1] != '_') continue;
        int d = isdigit(uint8_t(c)) ? c - '0' : isalpha(uint8_t(c)) ? (c | 32) - 'a' + 10 : 99;
        if (d >= base) return false;
        if (v > (uint64_t(INT64_MAX) - uint64_t(d)) / uint64_t(base)) fail(ErrorKind::Overflow, "integer overflow (64-bit integers)");
        v = v * uint64_t(base) + uint64_t(d);
        any = true;
    }
    if (!any) return false;
    out = neg ? -int64_t(v) : int64_t(v);
    return true;
}

int64_t float_to_int(double d) {
    if (std::isinf(d)) fail(ErrorKind::Overflow, "cannot convert float infinity to integer");
    if (std::fabs(d) >= 9.223372036854775e18) fail(ErrorKind::Overflow, "integer overflow (64-bit integers)");
    return int64_t(d);
}

Value f_float(Interp&, const Value& v, CallArgs& a) {
    auto p = bind("do_float", a, {opt("default", Value(0.0))});
    if (v.is_number()) return Value(v.get_float());
    if (v.is_undefined()) fail_undefined(v);
    double d;
    if (v.is_string() && parse_py_float(v.str(), d)) return Value(d);
    return p[0];
}

Value f_int(Interp&, const Value& v, CallArgs& a) {
    auto p = bind("do_int", a, {opt("default", Value(0)), opt("base", Value(10))});
    if (v.is_int() || v.is_bool()) return Value(v.get_int());
    if (v.is_float()) {
        if (std::isnan(v.get_float())) return p[0];
        return Value(float_to_int(v.get_float()));
    }
    if (v.is_undefined()) fail_undefined(v);
    if (v.is_string()) {
        int64_t x;
        if (parse_py_int(v.str(), as_int(p[1]), x)) return Value(x);
        double d;  // "42.23"|int gives 42, as in jinja2
        if (parse_py_float(v.str(), d) && !std::isnan(d)) return Value(float_to_int(d));
    }
    return p[0];
}

Value f_format(Interp& in, const Value& v, CallArgs& a) {
    if (!a.args.empty() && !a.kwargs.empty())
        fail(ErrorKind::FilterArgument, "can't handle positional and keyword arguments at the same time");
    Value args;
    if (!a.kwargs.empty()) {
        Dict d;
        for (auto& [k, x] : a.kwargs) d.set(k, x);
        args = Value(std::move(d));
    } else {
        args = Value(a.args, SeqKind::Tuple);
    }
    return Value(percent_format(in, in.str(v), args));
}

Value f_indent(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_indent", a, {opt("width", Value(4)), opt("first", Value(false)), opt("blank", Value(false))});
    std::string indention;
    if (p[0].is_string()) {
        indention = p[0].str();
    } else {
        int64_t w = as_int(p[0]);
        in.check_size(size_t(std::max<int64_t>(w, 0)));
        indention.assign(size_t(std::max<int64_t>(w, 0)), ' ');
    }
    std::string s = in.str(v) + "\n";  // jinja2 appends a newline so splitlines keeps a trailing empty line
    std::vector<std::string> lines = py_splitlines(s, false);
    std::string rv;
    if (p[2].truthy()) {
        for (size_t i = 0; i < lines.size(); i++) {
            if (i) rv += "\n" + indention;
            rv += lines[i];
            in.check_size(rv.size());
        }
    } else {
        rv = lines.empty() ? "" : lines[0];
        for (size_t i = 1; i < lines.size(); i++) {
            rv += "\n";
            if (!lines[i].empty()) rv += indention;
            rv += lines[i];
            in.check_size(rv.size());
        }
    }
    if (p[1].truthy()) rv = indention + rv;
    return Value(std::move(rv), v.is_markup());
}

Value f_items(Interp&, const Value& v, CallArgs& a) {
    bind("do_items", a, {});
    if (v.is_undefined()) return Value(ValueList{}, SeqKind::Generator);
    if (!v.is_dict()) fail(ErrorKind::Type, "Can only get item pairs from a mapping.");
    ValueList out;
    for (auto& [k, x] : v.dict().entries()) out.emplace_back(ValueList{k, x}, SeqKind::Tuple);
    return Value(std::move(out), SeqKind::Generator);
}

Value f_join(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_join", a, {opt("d", Value("")), opt("attribute", Value::none())});
    ValueList items = in.iterate(v);
    in.tick(items.size());
    std::string sep = in.str(p[0]), out;
    auto key = make_key(in, p[1], true);
    bool first = true;
    for (auto& x : items) {
        if (!first) out += sep;
        first = false;
        py_str(p[1].is_none() ? x : key(x), out, in.opts().max_output_bytes);
        in.check_size(out.size());
    }
    return Value(std::move(out));
}

Value f_list(Interp& in, const Value& v, CallArgs& a) {
    bind("do_list", a, {});
    return Value(in.iterate(v));
}

Value f_lower(Interp& in, const Value& v, CallArgs& a) {
    bind("do_lower", a, {});
    return Value(py_lower(in.str(v)));
}

Value f_upper(Interp& in, const Value& v, CallArgs& a) {
    bind("do_upper", a, {});
    return Value(py_upper(in.str(v)));
}

Value f_map(Interp& in, const Value& v, CallArgs& a) {
    if (!v.truthy()) return Value(ValueList{}, SeqKind::Generator);  // jinja2: `if value:` before iterating
    ValueList items = in.iterate(v), out;
    in.tick(items.size());
    const Value* attribute = a.kwarg("attribute");
    if (a.args.empty() && attribute) {
        Value dflt;
        for (auto& [k, x] : a.kwargs) {
            if (k == "default") dflt = x;
            else if (k != "attribute") fail(ErrorKind::FilterArgument, "Unexpected keyword argument " + py_repr_string(k));
        }
        auto key = make_key(in, *attribute, true, dflt);
        for (auto& x : items) out.push_back(key(x));
        return Value(std::move(out), SeqKind::Generator);
    }
    if (a.args.empty()) fail(ErrorKind::FilterArgument, "map requires a filter argument");
    std::string name = in.str(a.args[0]);
    if (!is_known_filter(name)) fail(ErrorKind::Runtime, "No filter named " + py_repr_string(name) + ".");
    CallArgs rest;
    rest.args.assign(a.args.begin() + 1, a.args.end());
    rest.kwargs = a.kwargs;
    for (auto& x : items) {
        CallArgs copy = rest;
        out.push_back(call_filter(in, name, x, copy));
    }
    return Value(std::move(out), SeqKind::Generator);
}

Value min_max(Interp& in, const Value& v, CallArgs& a, bool want_max) {
    auto p = bind(want_max ? "do_max" : "do_min", a, {opt("case_sensitive", Value(false)), opt("attribute", Value::none())});
    ValueList items = in.iterate(v);
    in.tick(items.size());
    if (items.empty()) return Value::undefined_hint("No aggregated item, sequence was empty.");
    auto key = make_key(in, p[1], p[0].truthy());
    size_t best = 0;
    Value best_key = key(items[0]);
    for (size_t i = 1; i < items.size(); i++) {
        Value k = key(items[i]);
        if (want_max ? py_less(best_key, k) : py_less(k, best_key)) {
            best = i;
            best_key = k;
        }
    }
    return items[best];
}
Value f_max(Interp& in, const Value& v, CallArgs& a) { return min_max(in, v, a, true); }
Value f_min(Interp& in, const Value& v, CallArgs& a) { return min_max(in, v, a, false); }

Value f_pprint(Interp& in, const Value& v, CallArgs& a) {
    bind("do_pprint", a, {});
    std::string s;
    py_repr(v, s, in.opts().max_output_bytes);
    return Value(s);
}

// select/reject/selectattr/rejectattr
Value select_impl(Interp& in, const Value& v, CallArgs& a, bool with_attr, bool keep) {
    if (!v.truthy()) return Value(ValueList{}, SeqKind::Generator);  // jinja2: `if value:` before iterating
    ValueList items = in.iterate(v), out;
    in.tick(items.size());
    size_t off = 0;
    Value attribute;
    if (with_attr) {
        if (a.args.empty()) fail(ErrorKind::FilterArgument, "Missing parameter for attribute name");
        attribute = a.args[0];
        off = 1;
    }
    std::string test;
    CallArgs rest;
    if (a.args.size() > off) {
        test = in.str(a.args[off]);
        if (!is_known_test(test)) fail(ErrorKind::Runtime, "No test named " + py_repr_string(test) + ".");
        rest.args.assign(a.args.begin() + long(off) + 1, a.args.end());
        rest.kwargs = a.kwargs;
    }
    for (auto& x : items) {
        Value probe = with_attr ? attr_path(in, x, attribute) : x;
        bool r;
        if (test.empty()) {
            r = probe.truthy();
        } else {
            CallArgs copy = rest;
            r = call_test(in, test, probe, copy);
        }
        if (r == keep) out.push_back(x);
    }
    return Value(std::move(out), SeqKind::Generator);
}
Value f_select(Interp& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, false, true); }
Value f_reject(Interp& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, false, false); }
Value f_selectattr(Interp& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, true, true); }
Value f_rejectattr(Interp& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, true, false); }

Value f_replace(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_replace", a, {req("old"), req("new"), opt("count", Value::none())});
    int64_t count = p[2].is_none() ? -1 : as_int(p[2]);
    return Value(py_replace(in, in.str(v), in.str(p[0]), in.str(p[1]), count));
}

Value f_reverse(Interp& in, const Value& v, CallArgs& a) {
    bind("do_reverse", a, {});
    if (v.is_string()) {
        std::u32string u = to_u32(v.str());
        return Value(from_u32(std::u32string(u.rbegin(), u.rend())));
    }
    ValueList items = in.iterate(v);
    ValueList rev(items.rbegin(), items.rend());
    if (v.is_dict()) return Value(std::move(rev), SeqKind::DictReverseIterator);
    if (v.is_list() && !is_iterator(v.seq_kind()))
        return Value(std::move(rev), v.seq_kind() == SeqKind::List || v.seq_kind() == SeqKind::Tuple ? SeqKind::ListReverseIterator
                                                                                                        : SeqKind::DictReverseIterator);
    return Value(std::move(rev));  // not reversible: jinja2 falls back to a reversed list
}

Value f_round(Interp&, const Value& v, CallArgs& a) {
    auto p = bind("do_round", a, {opt("precision", Value(0)), opt("method", Value("common"))});
    if (!p[1].is_string() || (p[1].str() != "common" && p[1].str() != "ceil" && p[1].str() != "floor"))
        fail(ErrorKind::FilterArgument, "method must be common, ceil or floor");
    if (v.is_undefined() || !v.is_number()) fail(ErrorKind::Type, "type " + v.type_name() + " doesn't define __round__ method");
    int64_t prec = as_int(p[0]);
    const std::string& method = p[1].str();
    if (method == "common") {
        if (!v.is_float()) return Value(v.get_int());  // round(int, n) stays an int
        double d = v.get_float();
        if (!std::isfinite(d)) return Value(d);
        if (prec >= 0 && prec <= 300) {
            // printf rounds the exact binary value half-to-even, like Python's round()
            std::string s = c_format_double('f', int(prec), d, false);
            return Value(std::strtod(s.c_str(), nullptr));
        }
        double m = std::pow(10.0, double(-prec));
        return Value(std::nearbyint(d / m) * m);
    }
    double m = std::pow(10.0, double(std::clamp<int64_t>(prec, -300, 300)));
    double d = v.get_float() * m;
    return Value((method == "ceil" ? std::ceil(d) : std::floor(d)) / m);
}

Value f_safe(Interp& in, const Value& v, CallArgs& a) {
    bind("do_mark_safe", a, {});
    return Value(in.str(v), true);
}

Value f_slice(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_slice", a, {req("slices"), opt("fill_with", Value::none())});
    ValueList seq = in.iterate(v), out;
    int64_t slices = as_int(p[0]);
    if (slices <= 0) fail(ErrorKind::ZeroDivision, "integer division or modulo by zero");
    in.tick(seq.size() + size_t(std::min<int64_t>(slices, 1 << 20)));
    int64_t length = int64_t(seq.size()), per = length / slices, with_extra = length % slices, offset = 0;
    for (int64_t i = 0; i < slices; i++) {
        int64_t start = offset + i * per;
        if (i < with_extra) offset++;
        int64_t end = offset + (i + 1) * per;
        ValueList tmp(seq.begin() + start, seq.begin() + end);
        if (!p[1].is_none() && i >= with_extra) tmp.push_back(p[1]);
        out.emplace_back(std::move(tmp));
    }
    return Value(std::move(out), SeqKind::Generator);
}

Value f_sort(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_sort", a, {opt("reverse", Value(false)), opt("case_sensitive", Value(false)), opt("attribute", Value::none())});
    ValueList items = in.iterate(v);
    in.tick(items.size() * 4);
    bool rev = p[0].truthy();
    std::vector<Value> attrs;  // "a,b" sorts by several attributes
    if (p[2].is_string() && p[2].str().find(',') != std::string::npos) {
        for (auto& part : py_split(p[2].str(), Value(","), -1, false)) attrs.push_back(part);
    } else {
        attrs.push_back(p[2]);
    }
    std::vector<std::pair<Value, Value>> keyed;
    for (auto& x : items) {
        ValueList ks;
        for (auto& at : attrs) ks.push_back(make_key(in, at, p[1].truthy())(x));
        keyed.emplace_back(ks.size() == 1 ? ks[0] : Value(std::move(ks), SeqKind::Tuple), x);
    }
    stable_sort_safe(keyed, [rev](auto& x, auto& y) { return rev ? py_less(y.first, x.first) : py_less(x.first, y.first); });
    ValueList out;
    for (auto& k : keyed) out.push_back(k.second);
    return Value(std::move(out));
}

Value f_string(Interp& in, const Value& v, CallArgs& a) {
    bind("soft_str", a, {});
    if (v.is_string()) return v;
    return Value(in.str(v));
}

Value f_striptags(Interp& in, const Value& v, CallArgs& a) {
    bind("do_striptags", a, {});
    std::string s = in.str(v), out;
    for (size_t i = 0; i < s.size();) {
        if (s.compare(i, 4, "<!--") == 0) {
            size_t e = s.find("-->", i + 4);
            if (e != std::string::npos) {
                i = e + 3;
                continue;
            }
        }
        if (s[i] == '<') {
            size_t e = s.find('>', i + 1);
            if (e != std::string::npos) {
                i = e + 1;
                continue;
            }
        }
        out += s[i++];
    }
    std::string joined;
    for (auto& w : py_split(out, Value::none(), -1, false)) {
        if (!joined.empty()) joined += ' ';
        joined += w.str();
    }
    static const std::pair<const char*, const char*> ents[] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&#34;", "\""},
                                                                {"&quot;", "\""}, {"&#39;", "'"}, {"&nbsp;", "\xc2\xa0"}};
    std::string res;
    for (size_t i = 0; i < joined.size();) {
        bool hit = false;
        if (joined[i] == '&')
            for (auto& [e, r] : ents)
                if (joined.compare(i, strlen(e), e) == 0) {
                    res += r;
                    i += strlen(e);
                    hit = true;
                    break;
                }
        if (!hit) res += joined[i++];
    }
    return Value(res);
}

Value f_sum(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_sum", a, {opt("attribute", Value::none()), opt("start", Value(0))});
    ValueList items = in.iterate(v);
    in.tick(items.size());
    auto key = make_key(in, p[0], true);
    Value total = p[1];
    if (total.is_string()) fail(ErrorKind::Type, "sum() can't sum strings [use ''.join(seq) instead]");
    for (auto& x : items) total = in.binary(BinOp::Add, total, p[0].is_none() ? x : key(x));
    return total;
}

Value f_title(Interp& in, const Value& v, CallArgs& a) {
    bind("do_title", a, {});
    // jinja2 capitalises the pieces between whitespace and -([{< runs
    std::string s = in.str(v);
    std::u32string u = to_u32(s), out;
    auto is_sep = [](char32_t c) { return py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
    size_t i = 0;
    while (i < u.size()) {
        size_t b = i;
        bool sep = is_sep(u[i]);
        while (i < u.size() && is_sep(u[i]) == sep) i++;
        for (size_t k = b; k < i; k++) {
            if (k == b)
                py_upper_cp(u[k], out);
            else
                py_lower_cp(u[k], out);
        }
    }
    return Value(from_u32(out));
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
Value f_tojson(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("tojson", a, {opt("ensure_ascii", Value(false)), opt("indent", Value::none()), opt("separators", Value::none()),
                                opt("sort_keys", Value(false))});
    JsonDumpOptions o;
    o.ensure_ascii = p[0].truthy();
    o.sort_keys = p[3].truthy();
    if (p[1].is_string()) {
        o.indent_is_string = true;
        o.indent_str = p[1].str();
        o.indent = 0;
    } else if (!p[1].is_none()) {
        o.indent = int(std::clamp<int64_t>(as_int(p[1]), 0, 1 << 20));
    }
    bool pretty = !p[1].is_none();
    if (pretty) o.item_sep = ",";
    if (!p[2].is_none()) {
        if (!p[2].is_list() || p[2].items().size() != 2 || !p[2].items()[0].is_string() || !p[2].items()[1].is_string())
            fail(ErrorKind::Value, "separators must be a pair of strings");
        o.item_sep = p[2].items()[0].str();
        o.key_sep = p[2].items()[1].str();
    }
    std::string out;
    json_dumps(v, o, out, in.opts().max_output_bytes);
    return Value(std::move(out));
}

Value f_trim(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_trim", a, {opt("chars", Value::none())});
    std::string chars = p[0].is_none() ? std::string() : in.str(p[0]);
    return Value(py_strip(in.str(v), p[0].is_none() ? nullptr : &chars, true, true));
}

Value f_truncate(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_truncate", a, {opt("length", Value(255)), opt("killwords", Value(false)), opt("end", Value("...")),
                                     opt("leeway", Value::none())});
    std::u32string s = to_u32(in.str(v)), end = to_u32(in.str(p[2]));
    int64_t length = as_int(p[0]), leeway = p[3].is_none() ? 5 : as_int(p[3]);
    if (length < int64_t(end.size())) fail(ErrorKind::Runtime, "expected length >= " + std::to_string(end.size()) + ", got " + std::to_string(length));
    if (leeway < 0) fail(ErrorKind::Runtime, "expected leeway >= 0, got " + std::to_string(leeway));
    if (int64_t(s.size()) <= length + leeway) return Value(from_u32(s));
    std::u32string head = s.substr(0, size_t(length - int64_t(end.size())));
    if (p[1].truthy()) return Value(from_u32(head + end));
    size_t sp = head.rfind(U' ');
    if (sp != std::u32string::npos) head.resize(sp);
    return Value(from_u32(head + end));
}

Value f_unique(Interp& in, const Value& v, CallArgs& a) {
    auto p = bind("do_unique", a, {opt("case_sensitive", Value(false)), opt("attribute", Value::none())});
    ValueList items = in.iterate(v), out;
    auto key = make_key(in, p[1], p[0].truthy());
    Dict seen;
    in.tick(items.size());
    for (auto& x : items) {
        Value k = key(x);
        if (seen.find_value(k)) continue;
        seen.set_value(k, Value(true));
        out.push_back(x);
    }
    return Value(std::move(out), SeqKind::Generator);
}

std::string url_quote(const std::string& s, bool for_query) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~' || (!for_query && c == '/')) {
            out += char(c);
        } else if (for_query && c == ' ') {
            out += '+';
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

Value f_urlencode(Interp& in, const Value& v, CallArgs& a) {
    bind("do_urlencode", a, {});
    if (v.is_string()) return Value(url_quote(v.str(), false));
    std::string out;
    auto add = [&](const Value& k, const Value& x) {
        if (!out.empty()) out += '&';
        out += url_quote(in.str(k), true) + "=" + url_quote(in.str(x), true);
    };
    if (v.is_dict()) {
        for (auto& [k, x] : v.dict().entries()) add(k, x);
    } else if (v.is_list()) {
        for (auto& item : v.items()) {
            ValueList kv = in.iterate(item);
            if (kv.size() != 2) fail(ErrorKind::Value, "too many values to unpack (expected 2)");
            add(kv[0], kv[1]);
        }
    } else {
        return Value(url_quote(in.str(v), false));
    }
    return Value(out);
}

Value f_wordcount(Interp& in, const Value& v, CallArgs& a) {
    bind("do_wordcount", a, {});
    std::string s = in.str(v);
    int64_t n = 0;
    bool in_word = false;
    for (size_t i = 0; i < s.size();) {
        uint32_t c = utf8_next(s, i);
        bool w = py_isalpha(c) || py_isdigit(c) || c == '_';
        if (w && !in_word) n++;
        in_word = w;
    }
    return Value(n);
}

const std::unordered_map<std::string, FilterFn>& filters() {
    static const std::unordered_map<std::string, FilterFn> m = {
        {"abs", f_abs}, {"attr", f_attr}, {"batch", f_batch}, {"capitalize", f_capitalize}, {"center", f_center},
        {"count", f_length}, {"d", f_default}, {"default", f_default}, {"dictsort", f_dictsort}, {"e", f_escape},
        {"escape", f_escape}, {"first", f_first}, {"float", f_float}, {"forceescape", f_forceescape},
        {"format", f_format}, {"indent", f_indent}, {"int", f_int}, {"items", f_items}, {"join", f_join},
        {"last", f_last}, {"length", f_length}, {"list", f_list}, {"lower", f_lower}, {"map", f_map}, {"max", f_max},
        {"min", f_min}, {"pprint", f_pprint}, {"reject", f_reject}, {"rejectattr", f_rejectattr},
        {"replace", f_replace}, {"reverse", f_reverse}, {"round", f_round}, {"safe", f_safe}, {"select", f_select},
        {"selectattr", f_selectattr}, {"slice", f_slice}, {"sort", f_sort}, {"string", f_string},
        {"striptags", f_striptags}, {"sum", f_sum}, {"title", f_title}, {"tojson", f_tojson}, {"trim", f_trim},
        {"truncate", f_truncate}, {"unique", f_unique}, {"upper", f_upper}, {"urlencode", f_urlencode},
        {"wordcount", f_wordcount},
    };
    return m;
}

// ------------------------------------------------------------------------------------------ tests

Value one_arg(const char* name, CallArgs& a, const char* param) { return bind(name, a, {req(param)})[0]; }

bool t_defined(Interp&, const Value& v, CallArgs& a) { return bind("test_defined", a, {}), !v.is_undefined(); }
bool t_undefined(Interp&, const Value& v, CallArgs& a) { return bind("test_undefined", a, {}), v.is_undefined(); }
bool t_none(Interp&, const Value& v, CallArgs& a) { return bind("test_none", a, {}), v.is_none(); }
bool t_boolean(Interp&, const Value& v, CallArgs& a) { return bind("test_boolean", a, {}), v.is_bool(); }
bool t_false(Interp&, const Value& v, CallArgs& a) { return bind("test_false", a, {}), v.is_bool() && !v.get_bool(); }
bool t_true(Interp&, const Value& v, CallArgs& a) { return bind("test_true", a, {}), v.is_bool() && v.get_bool(); }
bool t_integer(Interp&, const Value& v, CallArgs& a) { return bind("test_integer", a, {}), v.is_int(); }
bool t_float(Interp&, const Value& v, CallArgs& a) { return bind("test_float", a, {}), v.is_float(); }
bool t_number(Interp&, const Value& v, CallArgs& a) { return bind("test_number", a, {}), v.is_number(); }
bool t_string(Interp&, const Value& v, CallArgs& a) { return bind("test_string", a, {}), v.is_string(); }
bool t_mapping(Interp&, const Value& v, CallArgs& a) { return bind("test_mapping", a, {}), v.is_dict(); }
// Undefined defines __iter__, __len__, __getitem__ and __call__, so these tests accept it, as in jinja2.
bool t_iterable(Interp&, const Value& v, CallArgs& a) {
    bind("test_iterable", a, {});
    return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
}
bool t_sequence(Interp&, const Value& v, CallArgs& a) {
    bind("test_sequence", a, {});  // needs __len__ and __getitem__
    return (v.is_list() && !is_iterator(v.seq_kind()) && v.seq_kind() != SeqKind::DictItems &&
            v.seq_kind() != SeqKind::DictKeys && v.seq_kind() != SeqKind::DictValues) ||
           v.is_dict() ||
           v.is_string() || v.is_undefined();
}
bool t_callable(Interp&, const Value& v, CallArgs& a) { return bind("callable", a, {}), v.is_function() || v.is_undefined(); }
bool t_escaped(Interp&, const Value& v, CallArgs& a) { return bind("test_escaped", a, {}), v.is_markup(); }
bool t_sameas(Interp&, const Value& v, CallArgs& a) {
    Value o = one_arg("test_sameas", a, "other");
    if (v.type() != o.type()) return false;
    switch (v.type()) {
        case Value::Type::None:
        case Value::Type::Undefined: return true;
        case Value::Type::Bool:
        case Value::Type::Int:
        case Value::Type::Float:
        case Value::Type::String: return py_equal(v, o);
        default: return v.identity() == o.identity();
    }
}
bool t_in(Interp& in, const Value& v, CallArgs& a) { return in.contains(one_arg("test_in", a, "seq"), v); }
bool t_eq(Interp& in, const Value& v, CallArgs& a) { return in.compare(CmpOp::Eq, v, one_arg("eq", a, "b")); }
bool t_ne(Interp& in, const Value& v, CallArgs& a) { return in.compare(CmpOp::Ne, v, one_arg("ne", a, "b")); }
bool t_lt(Interp& in, const Value& v, CallArgs& a) { return in.compare(CmpOp::Lt, v, one_arg("lt", a, "b")); }
bool t_le(Interp& in, const Value& v, CallArgs& a) { return in.compare(CmpOp::Le, v, one_arg("le", a, "b")); }
bool t_gt(Interp& in, const Value& v, CallArgs& a) { return in.compare(CmpOp::Gt, v, one_arg("gt", a, "b")); }
bool t_ge(Interp& in, const Value& v, CallArgs& a) { return in.compare(CmpOp::Ge, v, one_arg("ge", a, "b")); }
bool t_divisibleby(Interp& in, const Value& v, CallArgs& a) {
    Value n = one_arg("test_divisibleby", a, "num");
    return py_equal(in.binary(BinOp::Mod, v, n), Value(0));
}
bool t_even(Interp& in, const Value& v, CallArgs& a) {
    bind("test_even", a, {});
    return py_equal(in.binary(BinOp::Mod, v, Value(2)), Value(0));
}
bool t_odd(Interp& in, const Value& v, CallArgs& a) {
    bind("test_odd", a, {});
    return py_equal(in.binary(BinOp::Mod, v, Value(2)), Value(1));
}
bool t_lower(Interp& in, const Value& v, CallArgs& a) { return bind("test_lower", a, {}), py_str_islower(in.str(v)); }
bool t_upper(Interp& in, const Value& v, CallArgs& a) { return bind("test_upper", a, {}), py_str_isupper(in.str(v)); }
bool t_filter(Interp& in, const Value& v, CallArgs& a) { return bind("test_filter", a, {}), is_known_filter(in.str(v)); }
bool t_test(Interp& in, const Value& v, CallArgs& a) { return bind("test_test", a, {}), is_known_test(in.str(v)); }

const std::unordered_map<std::string, TestFn>& tests() {
    static const std::unordered_map<std::string, TestFn> m = {
        {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none}, {"boolean", t_boolean},
        {"false", t_false}, {"true", t_true}, {"integer", t_integer}, {"float", t_float}, {"number", t_number},
        {"string", t_string}, {"mapping", t_mapping}, {"iterable", t_iterable}, {"sequence", t_sequence},
        {"callable", t_callable}, {"escaped", t_escaped}, {"sameas", t_sameas}, {"in", t_in}, {"eq", t_eq},
        {"equalto", t_eq}, {"==", t_eq}, {"ne", t_ne}, {"!=", t_ne}, {"lt", t_lt}, {"lessthan", t_lt}, {"<", t_lt},
        {"le", t_le}, {"<=", t_le}, {"gt", t_gt}, {"greaterthan", t_gt}, {">", t_gt}, {"ge", t_ge}, {">=", t_ge},
        {"divisibleby", t_divisibleby}, {"even", t_even}, {"odd", t_odd}, {"lower", t_lower}, {"upper", t_upper},
        {"filter", t_filter}, {"test", t_test},
    };
    return m;
}

// ------------------------------------------------------------------------------------------ methods

Value str_method(Interp& in, const Value& self, const std::string& name, CallArgs& a) {
    const std::string& s = self.str();
    std::string fname = name;
    auto strip_chars = [&](const Value& c, std::string& buf) -> const std::string* {
        if (c.is_none()) return nullptr;
        if (!c.is_string()) fail(ErrorKind::Type, name + " arg must be None or str");
        buf = c.str();
        return &buf;
    };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        no_kwargs(name, a);
        auto p = bind_method(name, a, {opt("chars", Value::none())});
        std::string buf;
        const std::string* chars = strip_chars(p[0], buf);
        return Value(py_strip(s, chars, name != "rstrip", name != "lstrip"), self.is_markup());
    }
    if (name == "split" || name == "rsplit") {
        auto p = bind_method(name, a, {opt("sep", Value::none()), opt("maxsplit", Value(-1))});
        ValueList parts = py_split(s, p[0], as_int(p[1]), name == "rsplit");
        in.check_items(parts.size());
        return Value(std::move(parts));
    }
    if (name == "splitlines") {
        auto p = bind_method(name, a, {opt("keepends", Value(false))});
        ValueList out;
        for (auto& l : py_splitlines(s, p[0].truthy())) out.emplace_back(l);
        return Value(std::move(out));
    }
    if (name == "startswith" || name == "endswith") {
        no_kwargs(name, a);
        auto p = bind_method(name, a, {req("prefix"), opt("start", Value::none()), opt("end", Value::none())});
        std::u32string u = to_u32(s);
        int64_t b, e;
        clamp_range(int64_t(u.size()), p[1], p[2], b, e);
        std::u32string_view view = e >= b ? std::u32string_view(u).substr(size_t(b), size_t(e - b)) : std::u32string_view();
        ValueList cands = (p[0].is_list() && p[0].seq_kind() == SeqKind::Tuple) ? p[0].items() : ValueList{p[0]};
        for (auto& c : cands) {
            if (!c.is_string())
                fail(ErrorKind::Type, name + " first arg must be str or a tuple of str, not " + c.type_name());
            std::u32string w = to_u32(c.str());
            if (e < b) continue;
            if (w.size() > view.size()) continue;
            if (name == "startswith" ? view.substr(0, w.size()) == w : view.substr(view.size() - w.size()) == w) return Value(true);
        }
        return Value(false);
    }
    if (name == "replace") {
        no_kwargs(name, a);
        auto p = bind_method(name, a, {req("old"), req("new"), opt("count", Value(-1))});
        return Value(py_replace(in, s, as_str(p[0], name), as_str(p[1], name), as_int(p[2])), self.is_markup());
    }
    if (name == "upper") return bind_method(name, a, {}), Value(py_upper(s));
    if (name == "lower" || name == "casefold") return bind_method(name, a, {}), Value(py_lower(s));
    if (name == "title") return bind_method(name, a, {}), Value(py_title(s));
    if (name == "capitalize") return bind_method(name, a, {}), Value(py_capitalize(s));
    if (name == "swapcase") {
        bind_method(name, a, {});
        std::u32string out;
        for (size_t i = 0; i < s.size();) {
            uint32_t c = utf8_next(s, i);
            if (py_isupper(c)) py_lower_cp(c, out);
            else if (py_islower(c)) py_upper_cp(c, out);
            else out += char32_t(c);
        }
        return Value(from_u32(out));
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
        no_kwargs(name, a);
        auto p = bind_method(name, a, {req("sub"), opt("start", Value::none()), opt("end", Value::none())});
        int64_t r = py_find(s, as_str(p[0], name), p[1], p[2], name[0] == 'r');
        if (r < 0 && (name == "index" || name == "rindex")) fail(ErrorKind::Value, "substring not found");
        return Value(r);
    }
    if (name == "count") {
        no_kwargs(name, a);
        auto p = bind_method(name, a, {req("sub"), opt("start", Value::none()), opt("end", Value::none())});
        return Value(py_count(s, as_str(p[0], name), p[1], p[2]));
    }
    if (name == "format") return Value(str_format(in, s, a));
    if (name == "join") {
        auto p = bind_method(name, a, {req("iterable")});
        ValueList items = in.iterate(p[0]);
        std::string out;
        for (size_t i = 0; i < items.size(); i++) {
            if (!items[i].is_string())
                fail(ErrorKind::Type, "sequence item " + std::to_string(i) + ": expected str instance, " + items[i].type_name() + " found");
            if (i) out += s;
            out += items[i].str();
            in.check_size(out.size());
        }
        return Value(std::move(out));
    }
    if (name == "center" || name == "ljust" || name == "rjust") {
        no_kwargs(name, a);
        auto p = bind_method(name, a, {req("width"), opt("fillchar", Value(" "))});
        if (!p[1].is_string() || cp_count(p[1].str()) != 1)
            fail(ErrorKind::Type, "The fill character must be exactly one character long");
        int64_t w = as_int(p[0]);
        in.check_size(size_t(std::max<int64_t>(w, 0)));
        return Value(py_pad(s, w, to_u32(p[1].str())[0], name == "center" ? '^' : name == "ljust" ? '<' : '>'));
    }
    if (name == "zfill") {
        auto p = bind_method(name, a, {req("width")});
        int64_t w = as_int(p[0]);
        in.check_size(size_t(std::max<int64_t>(w, 0)));
        size_t len = cp_count(s);
        if (w <= int64_t(len)) return Value(s);
        std::string pad(size_t(w) - len, '0');
        if (!s.empty() && (s[0] == '+' || s[0] == '-')) return Value(s.substr(0, 1) + pad + s.substr(1));
        return Value(pad + s);
    }
    if (name == "partition" || name == "rpartition") {
        auto p = bind_method(name, a, {req("sep")});
        const std::string& sep = as_str(p[0], name);
        if (sep.empty()) fail(ErrorKind::Value, "empty separator");
        size_t pos = name == "partition" ? s.find(sep) : s.rfind(sep);
        if (pos == std::string::npos)
            return name == "partition" ? Value(ValueList{Value(s), Value(""), Value("")}, SeqKind::Tuple)
                                       : Value(ValueList{Value(""), Value(""), Value(s)}, SeqKind::Tuple);
        return Value(ValueList{Value(s.substr(0, pos)), Value(sep), Value(s.substr(pos + sep.size()))}, SeqKind::Tuple);
    }
    if (name == "removeprefix" || name == "removesuffix") {
        auto p = bind_method(name, a, {req("affix")});
        const std::string& x = as_str(p[0], name);
        if (name == "removeprefix" && s.compare(0, x.size(), x) == 0) return Value(s.substr(x.size()));
        if (name == "removesuffix" && !x.empty() && s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0)
            return Value(s.substr(0, s.size() - x.size()));
        return Value(s);
    }
    bind_method(name, a, {});
    if (name == "isalpha") return Value(all_cps(s, py_isalpha));
    if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") return Value(all_cps(s, py_isdigit));
    if (name == "isalnum") return Value(all_cps(s, [](uint32_t c) { return py_isalpha(c) || py_isdigit(c); }));
    if (name == "isspace") return Value(all_cps(s, py_isspace));
    if (name == "islower") return Value(py_str_islower(s));
    if (name == "isupper") return Value(py_str_isupper(s));
    if (name == "istitle") return Value(!s.empty() && py_title(s) == s && std::any_of(s.begin(), s.end(), [](char c) { return isalpha(uint8_t(c)); }));
    fail(ErrorKind::Type, "unsupported method str." + fname);
}

Value dict_method(Interp&, const Value& self, const std::string& name, CallArgs& a) {
    const Dict& d = self.dict();
    if (name == "get") {
        no_kwargs(name, a);
        auto p = bind_method(name, a, {req("key"), opt("default", Value::none())});
        if (!is_hashable(p[0])) fail(ErrorKind::Type, "unhashable type: '" + p[0].type_name() + "'");
        const Value* v = d.find_value(p[0]);
        return v ? *v : p[1];
    }
    bind_method(name, a, {});
    if (name == "copy") return self;
    ValueList out;
    for (auto& [k, v] : d.entries()) {
        if (name == "items") out.emplace_back(ValueList{k, v}, SeqKind::Tuple);
        else if (name == "keys") out.push_back(k);
        else out.push_back(v);
    }
    SeqKind kind = name == "items" ? SeqKind::DictItems : name == "keys" ? SeqKind::DictKeys : SeqKind::DictValues;
    return Value(std::move(out), kind);
}

Value seq_method(Interp&, const Value& self, const std::string& name, CallArgs& a) {
    const ValueList& items = self.items();
    if (name == "copy") return bind_method(name, a, {}), Value(items, SeqKind::List);
    auto p = bind_method(name, a, {req("value")});
    if (name == "count") {
        int64_t n = 0;
        for (auto& x : items) n += py_equal(x, p[0]);
        return Value(n);
    }
    for (size_t i = 0; i < items.size(); i++)
        if (py_equal(items[i], p[0])) return Value(int64_t(i));
    fail(ErrorKind::Value, self.seq_kind() == SeqKind::Tuple ? "tuple.index(x): x not in tuple" : "list.index(x): x not in list");
}

Value bound(const Value& self, const std::string& name, Value (*fn)(Interp&, const Value&, const std::string&, CallArgs&)) {
    auto f = std::make_shared<Function>();
    f->name = name;
    f->kind = Function::Kind::Method;
    f->call = [self, name, fn](Interp& in, CallArgs& a) { return fn(in, self, name, a); };
    return Value(std::shared_ptr<const Function>(std::move(f)));
}

Value unsafe(const Value& obj, const std::string& name) {
    return Value::undefined_hint("access to attribute " + py_repr_string(name) + " of " + py_repr_string(obj.type_name()) +
                                     " object is unsafe.",
                                 ErrorKind::Security);
}

// ------------------------------------------------------------------------------------------ globals

Value g_range(Interp& in, CallArgs& a) {
    no_kwargs("range", a);
    if (a.args.empty() || a.args.size() > 3)
        fail(ErrorKind::Type, a.args.empty() ? "range expected at least 1 argument, got 0"
                                             : "range expected at most 3 arguments, got " + std::to_string(a.args.size()));
    for (auto& x : a.args)
        if (!x.is_int() && !x.is_bool()) {
            if (x.is_undefined()) fail_undefined(x);
            fail(ErrorKind::Type, "'" + x.type_name() + "' object cannot be interpreted as an integer");
        }
    int64_t start = 0, stop, step = 1;
    if (a.args.size() == 1) {
        stop = a.args[0].get_int();
    } else {
        start = a.args[0].get_int();
        stop = a.args[1].get_int();
        if (a.args.size() == 3) step = a.args[2].get_int();
    }
    if (step == 0) fail(ErrorKind::Value, "range() arg 3 must not be zero");
    long double span = step > 0 ? (long double)stop - start : (long double)start - stop;
    long double len = span <= 0 ? 0 : std::ceil(span / std::fabs((long double)step));
    if (len > 100000)  // jinja2's sandbox MAX_RANGE
        fail(ErrorKind::Overflow, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    ValueList out;
    in.tick(size_t(len));
    for (int64_t i = 0; i < int64_t(len); i++) out.emplace_back(start + i * step);
    return Value(std::move(out));
}

Dict dict_from_args(Interp& in, CallArgs& a, const char* fname) {
    if (a.args.size() > 1) fail(ErrorKind::Type, std::string(fname) + " expected at most 1 argument, got " + std::to_string(a.args.size()));
    Dict d;
    if (!a.args.empty()) {
        const Value& src = a.args[0];
        if (src.is_dict()) {
            d = src.dict();
        } else if (src.is_namespace()) {
            fail(ErrorKind::Type, "'Namespace' object is not iterable");
        } else {
            ValueList items = in.iterate(src);
            size_t i = 0;
            for (auto& item : items) {
                ValueList kv = (item.is_list() || item.is_string()) ? in.iterate(item) : ValueList{};
                if (kv.size() != 2)
                    fail(ErrorKind::Value, "dictionary update sequence element #" + std::to_string(i) + " has length " +
                                               std::to_string(kv.size()) + "; 2 is required");
                d.set_value(kv[0], kv[1]);
                i++;
            }
        }
    }
    for (auto& [k, v] : a.kwargs) d.set(k, v);
    return d;
}

Value g_dict(Interp& in, CallArgs& a) { return Value(dict_from_args(in, a, "dict")); }

Value g_namespace(Interp& in, CallArgs& a) {
    auto ns = in.new_namespace();
    ns->attrs = dict_from_args(in, a, "namespace");
    return Value(ns);
}

Value g_joiner(Interp&, CallArgs& a) {
    auto p = bind("joiner", a, {opt("sep", Value(", "))});
    auto used = std::make_shared<bool>(false);
    auto f = std::make_shared<Function>();
    f->name = "joiner";
    Value sep = p[0];
    f->call = [used, sep](Interp&, CallArgs&) -> Value {
        if (!*used) {
            *used = true;
            return Value("");
        }
        return sep;
    };
    return Value(std::shared_ptr<const Function>(std::move(f)));
}

Value g_raise_exception(Interp& in, CallArgs& a) {
    auto p = bind("raise_exception", a, {req("message")});
    throw TemplateError(ErrorKind::Raised, in.str(p[0]));
}

Value g_strftime_now(Interp& in, CallArgs& a) {
    auto p = bind("strftime_now", a, {req("format")});
    std::string fmt = in.str(p[0]);
    std::tm t{};
    if (in.opts().now) {
        t = *in.opts().now;
    } else {
        std::time_t now = std::time(nullptr);
        localtime_r(&now, &t);
    }
    if (fmt.empty()) return Value("");
    for (size_t cap = 256; cap <= (1u << 20); cap *= 4) {
        std::string buf(cap, '\0');
        size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &t);
        if (n > 0) {
            buf.resize(n);
            return Value(buf);
        }
    }
    return Value("");
}

Value make_global(const char* name, Value (*fn)(Interp&, CallArgs&)) {
    auto f = std::make_shared<Function>();
    f->name = name;
    f->call = fn;
    return Value(std::shared_ptr<const Function>(std::move(f)));
}

}  // namespace

// ------------------------------------------------------------------------------------------ entry points

bool is_known_filter(std::string_view name) { return filters().count(std::string(name)) > 0; }
bool is_known_test(std::string_view name) { return tests().count(std::string(name)) > 0; }

Value call_filter(Interp& in, const std::string& name, const Value& v, CallArgs& args) {
    auto it = filters().find(name);
    if (it == filters().end()) fail(ErrorKind::Runtime, "No filter named " + py_repr_string(name) + ".");
    return it->second(in, v, args);
}

bool call_test(Interp& in, const std::string& name, const Value& v, CallArgs& args) {
    auto it = tests().find(name);
    if (it == tests().end()) fail(ErrorKind::Runtime, "No test named " + py_repr_string(name) + ".");
    return it->second(in, v, args);
}

std::optional<Value> get_method(const Value& obj, const std::string& name) {
    static const std::unordered_set<std::string> str_methods = {
        "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "replace", "upper",
        "lower", "casefold", "title", "capitalize", "swapcase", "find", "rfind", "index", "rindex", "count", "format",
        "join", "center", "ljust", "rjust", "zfill", "partition", "rpartition", "removeprefix", "removesuffix",
        "isalpha", "isdigit", "isdecimal", "isnumeric", "isalnum", "isspace", "islower", "isupper", "istitle"};
    static const std::unordered_set<std::string> dict_methods = {"get", "items", "keys", "values", "copy"};
    static const std::unordered_set<std::string> dict_unsafe = {"clear", "pop", "popitem", "setdefault", "update", "fromkeys"};
    static const std::unordered_set<std::string> list_unsafe = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
    switch (obj.type()) {
        case Value::Type::String:
            if (str_methods.count(name)) return bound(obj, name, str_method);
            return std::nullopt;
        case Value::Type::Dict:
            if (dict_methods.count(name)) return bound(obj, name, dict_method);
            if (dict_unsafe.count(name)) return unsafe(obj, name);
            return std::nullopt;
        case Value::Type::List: {
            SeqKind k = obj.seq_kind();
            if (k != SeqKind::List && k != SeqKind::Tuple) return std::nullopt;
            if (name == "count" || name == "index" || (name == "copy" && k == SeqKind::List)) return bound(obj, name, seq_method);
            if (k == SeqKind::List && list_unsafe.count(name)) return unsafe(obj, name);
            return std::nullopt;
        }
        case Value::Type::Float:
            if (name == "is_integer") {
                auto f = std::make_shared<Function>();
                f->name = name;
                f->kind = Function::Kind::Method;
                double d = obj.get_float();
                f->call = [d](Interp&, CallArgs& a) { return bind("is_integer", a, {}), Value(std::isfinite(d) && d == std::floor(d)); };
                return Value(std::shared_ptr<const Function>(std::move(f)));
            }
            return std::nullopt;
        default: return std::nullopt;
    }
}

const Value* find_global(const std::string& name) {
    static const std::unordered_map<std::string, Value> globals = {
        {"range", make_global("range", g_range)},
        {"dict", make_global("dict", g_dict)},
        {"namespace", make_global("namespace", g_namespace)},
        {"joiner", make_global("joiner", g_joiner)},
        {"raise_exception", make_global("raise_exception", g_raise_exception)},
        {"strftime_now", make_global("strftime_now", g_strftime_now)},
    };
    auto it = globals.find(name);
    return it == globals.end() ? nullptr : &it->second;
}

}  // namespace rotor::jinja
