#include "chat/jinja_lexer.h"

#include "chat/jinja_value.h"

#include <charconv>
#include <cmath>

namespace rotor::jinja {

namespace {

bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident_char(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
int hex_val(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

[[noreturn]] void syntax_error(const std::string& msg, int line) { throw TemplateError(ErrorKind::Syntax, msg, line); }

// Python's `'...'.encode('ascii', 'backslashreplace').decode('unicode-escape')`, which is how
// jinja2 turns a string literal into its value.
std::string decode_string_literal(std::string_view raw, int line) {
    std::string ascii;
    static const char* hex = "0123456789abcdef";
    for (size_t i = 0; i < raw.size();) {
        uint32_t c = utf8_next(raw, i);
        if (c < 0x80) {
            ascii += char(c);
        } else if (c <= 0xff) {
            ascii += "\\x";
            ascii += hex[c >> 4];
            ascii += hex[c & 15];
        } else if (c <= 0xffff) {
            ascii += "\\u";
            for (int k = 12; k >= 0; k -= 4) ascii += hex[(c >> k) & 15];
        } else {
            ascii += "\\U";
            for (int k = 28; k >= 0; k -= 4) ascii += hex[(c >> k) & 15];
        }
    }
    std::string out;
    size_t n = ascii.size();
    for (size_t i = 0; i < n;) {
        char c = ascii[i];
        if (c != '\\') {
            out += c;
            i++;
            continue;
        }
        if (i + 1 >= n) syntax_error("\\ at end of string", line);
        char e = ascii[i + 1];
        i += 2;
        switch (e) {
            case '\n': break;
            case '\\': out += '\\'; break;
            case '\'': out += '\''; break;
            case '"': out += '"'; break;
            case 'a': out += '\a'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'v': out += '\v'; break;
            case 'x':
            case 'u':
            case 'U': {
                int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                uint32_t v = 0;
                for (int k = 0; k < digits; k++) {
                    int h = i + size_t(k) < n ? hex_val(ascii[i + size_t(k)]) : -1;
                    if (h < 0)
                        syntax_error(e == 'x' ? "truncated \\xXX escape"
                                              : e == 'u' ? "truncated \\uXXXX escape" : "truncated \\UXXXXXXXX escape",
                                     line);
                    v = v * 16 + uint32_t(h);
                }
                i += size_t(digits);
                if (v > 0x10ffff) syntax_error("illegal Unicode character", line);
                utf8_put(out, v);
                break;
            }
            case 'N': syntax_error("malformed \\N character escape", line);
            default:
                if (e >= '0' && e <= '7') {
                    uint32_t v = uint32_t(e - '0');
                    for (int k = 0; k < 2 && i < n && ascii[i] >= '0' && ascii[i] <= '7'; k++) v = v * 8 + uint32_t(ascii[i++] - '0');
                    utf8_put(out, v);
                } else {  // unknown escapes stay as written
                    out += '\\';
                    out += e;
                }
        }
    }
    return out;
}

class Lexer {
public:
    explicit Lexer(std::string_view source) {
        // jinja2 normalises \r\n and \r to \n and (keep_trailing_newline=False) drops one final newline.
        src_.reserve(source.size());
        for (size_t i = 0; i < source.size(); i++) {
            if (source[i] == '\r') {
                src_ += '\n';
                if (i + 1 < source.size() && source[i + 1] == '\n') i++;
            } else {
                src_ += source[i];
            }
        }
        if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    }

    std::vector<Token> run() {
        while (pos_ < src_.size()) {
            if (!root_step()) break;
        }
        push(Tok::Eof, "");
        return std::move(out_);
    }

private:
    std::string src_;
    size_t pos_ = 0;
    int line_ = 1;
    bool line_starting_ = true;  // did the previous match end with a newline (lstrip_blocks)
    std::vector<Token> out_;

    bool at(size_t p, std::string_view s) const { return src_.compare(p, s.size(), s) == 0; }

    // Byte length of the whitespace character at p (Python's \s), 0 if none.
    size_t ws_len(size_t p) const {
        if (p >= src_.size()) return 0;
        unsigned char c = uint8_t(src_[p]);
        if (c < 0x80) return py_isspace(c) ? 1 : 0;
        size_t q = p;
        uint32_t cp = utf8_next(src_, q);
        return py_isspace(cp) ? q - p : 0;
    }
    size_t skip_ws(size_t p) const {
        while (size_t l = ws_len(p)) p += l;
        return p;
    }
    void count_lines(size_t from, size_t to) {
        for (size_t i = from; i < to && i < src_.size(); i++)
            if (src_[i] == '\n') line_++;
    }

    void push(Tok t, std::string text) {
        Token tok;
        tok.type = t;
        tok.text = std::move(text);
        tok.line = line_;
        out_.push_back(std::move(tok));
    }

    // Whitespace handling of the text before a tag: `-` strips all of it, otherwise lstrip_blocks
    // removes spaces/tabs between the line start and a block or comment tag.
    std::string strip_before(std::string text, char sign, bool is_variable) const {
        if (sign == '-') {
            size_t keep = 0;
            for (size_t i = 0; i < text.size();)
                if (!py_isspace(utf8_next(text, i))) keep = i;
            text.resize(keep);
        } else if (sign != '+' && !is_variable) {
            size_t nl = text.rfind('\n');
            size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
            if ((l_pos > 0 || line_starting_) && l_pos < text.size()) {
                size_t p = l_pos;
                bool all_ws = true;
                while (p < text.size()) {
                    size_t q = p;
                    uint32_t cp = utf8_next(text, q);
                    if (!py_isspace(cp)) {
                        all_ws = false;
                        break;
                    }
                    p = q;
                }
                if (all_ws) text.resize(l_pos);
            }
        }
        return text;
    }

    void emit_data(std::string text) {
        if (!text.empty()) push(Tok::Data, std::move(text));
    }

    // One step in the root state: text up to the next tag, then the tag. False at end of input.
    bool root_step() {
        size_t p = pos_;
        Tok kind = Tok::Data;
        for (;; p++) {
            p = src_.find('{', p);
            if (p == std::string::npos || p + 1 >= src_.size()) {
                p = std::string::npos;
                break;
            }
            char c = src_[p + 1];
            if (c == '{') kind = Tok::VarBegin;
            else if (c == '%') kind = Tok::BlockBegin;
            else if (c == '#') kind = Tok::Data;  // comment
            else continue;
            break;
        }
        if (p == std::string::npos) {
            emit_data(src_.substr(pos_));
            count_lines(pos_, src_.size());
            pos_ = src_.size();
            return false;
        }
        std::string text = src_.substr(pos_, p - pos_);
        size_t q = p + 2;
        char sign = 0;
        if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];

        // {% raw %}: the match includes the whole opening tag (no trim_blocks newline after it)
        if (kind == Tok::BlockBegin) {
            size_t r = skip_ws(q);
            if (at(r, "raw")) {
                r = skip_ws(r + 3);
                size_t end = 0;
                if (at(r, "-%}")) end = skip_ws(r + 3);
                else if (at(r, "%}")) end = r + 2;
                if (end) {
                    emit_data(strip_before(std::move(text), sign, false));
                    count_lines(pos_, end);
                    line_starting_ = src_[end - 1] == '\n';
                    pos_ = end;
                    lex_raw();
                    return true;
                }
            }
        }

        bool is_comment = src_[p + 1] == '#';
        emit_data(strip_before(std::move(text), sign, kind == Tok::VarBegin));
        count_lines(pos_, p);
        line_starting_ = false;
        pos_ = q;
        if (is_comment) {
            lex_comment();
        } else {
            push(kind, kind == Tok::VarBegin ? "{{" : "{%");
            lex_tag(kind == Tok::BlockBegin);
        }
        return true;
    }

    void lex_comment() {
        for (size_t i = pos_; i < src_.size(); i++) {
            size_t end = 0;
            if (at(i, "+#}")) end = i + 3;
            else if (at(i, "-#}")) end = skip_ws(i + 3);
            else if (at(i, "#}")) {
                end = i + 2;
                if (end < src_.size() && src_[end] == '\n') end++;  // trim_blocks
            }
            if (end) {
                count_lines(pos_, end);
                line_starting_ = src_[end - 1] == '\n';
                pos_ = end;
                return;
            }
        }
        syntax_error("Missing end of comment tag", line_);
    }

    void lex_raw() {
        for (size_t i = src_.find("{%", pos_); i != std::string::npos; i = src_.find("{%", i + 1)) {
            size_t r = i + 2;
            char sign = 0;
            if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) sign = src_[r++];
            r = skip_ws(r);
            if (!at(r, "endraw")) continue;
            r = skip_ws(r + 6);
            size_t end = 0;
            if (at(r, "+%}")) end = r + 3;
            else if (at(r, "-%}")) end = skip_ws(r + 3);
            else if (at(r, "%}")) {
                end = r + 2;
                if (end < src_.size() && src_[end] == '\n') end++;
            }
            if (!end) continue;
            emit_data(strip_before(src_.substr(pos_, i - pos_), sign, false));
            count_lines(pos_, end);
            line_starting_ = src_[end - 1] == '\n';
            pos_ = end;
            return;
        }
        syntax_error("Missing end of raw directive", line_);
    }

    // Tokens inside {{ }} or {% %} up to the closing delimiter (only recognised with balanced brackets).
    void lex_tag(bool block) {
        std::string balance;
        while (pos_ < src_.size()) {
            if (balance.empty()) {
                size_t end = 0;
                if (block) {
                    if (at(pos_, "+%}")) end = pos_ + 3;
                    else if (at(pos_, "-%}")) end = skip_ws(pos_ + 3);
                    else if (at(pos_, "%}")) {
                        end = pos_ + 2;
                        if (end < src_.size() && src_[end] == '\n') end++;  // trim_blocks
                    }
                } else {
                    if (at(pos_, "-}}")) end = skip_ws(pos_ + 3);
                    else if (at(pos_, "}}")) end = pos_ + 2;
                }
                if (end) {
                    push(block ? Tok::BlockEnd : Tok::VarEnd, block ? "%}" : "}}");
                    count_lines(pos_, end);
                    line_starting_ = src_[end - 1] == '\n';
                    pos_ = end;
                    return;
                }
            }
            if (size_t w = ws_len(pos_)) {
                size_t e = skip_ws(pos_ + w);
                count_lines(pos_, e);
                pos_ = e;
                continue;
            }
            if (lex_number()) continue;
            char c = src_[pos_];
            if (is_ident_start(c)) {
                size_t e = pos_ + 1;
                while (e < src_.size() && is_ident_char(src_[e])) e++;
                push(Tok::Name, src_.substr(pos_, e - pos_));
                pos_ = e;
                continue;
            }
            if (c == '\'' || c == '"') {
                size_t e = pos_ + 1;
                bool closed = false;
                while (e < src_.size()) {
                    if (src_[e] == '\\') {
                        e += 2;
                        continue;
                    }
                    if (src_[e] == c) {
                        closed = true;
                        break;
                    }
                    e++;
                }
                if (closed) {
                    int start_line = line_;
                    std::string value = decode_string_literal(std::string_view(src_).substr(pos_ + 1, e - pos_ - 1), line_);
                    push(Tok::String, std::move(value));
                    out_.back().line = start_line;
                    count_lines(pos_, e + 1);
                    pos_ = e + 1;
                    continue;
                }
            }
            if (lex_operator(balance)) continue;
            size_t q = pos_;
            uint32_t cp = utf8_next(src_, q);
            std::string ch;
            utf8_put(ch, cp);
            syntax_error("unexpected char " + py_repr_string(ch) + " at " + std::to_string(pos_), line_);
        }
        // end of input inside a tag: the parser reports what it expected
    }

    bool lex_number() {
        const std::string& s = src_;
        size_t n = s.size(), p = pos_;
        if (!is_digit(s[p])) return false;
        // digits with single underscores between them: (\d+_)*\d+
        auto digits = [&](size_t i) -> size_t {
            if (i >= n || !is_digit(s[i])) return 0;
            size_t e = i;
            while (true) {
                while (e < n && is_digit(s[e])) e++;
                if (e + 1 < n && s[e] == '_' && is_digit(s[e + 1])) {
                    e++;
                    continue;
                }
                return e;
            }
        };
        // float: not preceded by '.', digits then (.digits)?e[+-]?digits or .digits
        if (p == 0 || s[p - 1] != '.') {
            size_t e = digits(p);
            size_t frac_end = 0;
            if (e < n && s[e] == '.') frac_end = digits(e + 1);
            size_t after = frac_end ? frac_end : e;
            size_t exp_end = 0;
            if (after < n && (s[after] == 'e' || s[after] == 'E')) {
                size_t x = after + 1;
                if (x < n && (s[x] == '+' || s[x] == '-')) x++;
                exp_end = digits(x);
            }
            size_t fend = exp_end ? exp_end : frac_end;
            if (fend) {
                std::string text;
                for (size_t i = p; i < fend; i++)
                    if (s[i] != '_') text += s[i];
                double v = 0;
                auto r = std::from_chars(text.data(), text.data() + text.size(), v);
                if (r.ec == std::errc::result_out_of_range) v = text.find('-') != std::string::npos ? 0.0 : HUGE_VAL;
                push(Tok::Float, s.substr(p, fend - p));
                out_.back().fval = v;
                pos_ = fend;
                return true;
            }
        }
        // integer: 0b/0o/0x prefixes, [1-9](_?\d)*, or 0(_?0)*
        int base = 10;
        size_t i = p, e = p;
        if (s[p] == '0' && p + 1 < n && std::string_view("bBoOxX").find(s[p + 1]) != std::string_view::npos) {
            char k = char(s[p + 1] | 32);
            base = k == 'b' ? 2 : k == 'o' ? 8 : 16;
            i = p + 2;
            e = i;
            auto ok = [&](char c) { int h = hex_val(c); return h >= 0 && h < base; };
            while (e < n) {
                if (ok(s[e])) e++;
                else if (s[e] == '_' && e + 1 < n && ok(s[e + 1])) e += 2;
                else break;
            }
            if (e == i) {  // "0x" without digits: just the integer 0
                base = 10;
                i = p;
                e = p + 1;
            }
        } else if (s[p] == '0') {
            e = p + 1;
            while (e < n) {
                if (s[e] == '0') e++;
                else if (s[e] == '_' && e + 1 < n && s[e + 1] == '0') e += 2;
                else break;
            }
        } else {
            e = p + 1;
            while (e < n) {
                if (is_digit(s[e])) e++;
                else if (s[e] == '_' && e + 1 < n && is_digit(s[e + 1])) e += 2;
                else break;
            }
        }
        uint64_t v = 0;
        for (size_t k = i; k < e; k++) {
            if (s[k] == '_') continue;
            uint64_t d = uint64_t(hex_val(s[k]));
            if (v > (uint64_t(INT64_MAX) - d) / uint64_t(base)) syntax_error("integer literal too large", line_);
            v = v * uint64_t(base) + d;
        }
        push(Tok::Integer, s.substr(p, e - p));
        out_.back().ival = int64_t(v);
        pos_ = e;
        return true;
    }

    bool lex_operator(std::string& balance) {
        static const char* ops2[] = {"**", "//", "==", "!=", ">=", "<="};
        for (const char* op : ops2)
            if (at(pos_, op)) {
                push(Tok::Op, op);
                pos_ += 2;
                return true;
            }
        char c = src_[pos_];
        if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) return false;
        if (c == '(' || c == '[' || c == '{') {
            balance += c == '(' ? ')' : c == '[' ? ']' : '}';
        } else if (c == ')' || c == ']' || c == '}') {
            if (balance.empty()) syntax_error(std::string("unexpected '") + c + "'", line_);
            char expected = balance.back();
            balance.pop_back();
            if (expected != c)
                syntax_error(std::string("unexpected '") + c + "', expected '" + expected + "'", line_);
        }
        push(Tok::Op, std::string(1, c));
        pos_++;
        return true;
    }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

std::string describe_token(const Token& t) {
    switch (t.type) {
        case Tok::Name:
        case Tok::Op: return t.text;
        case Tok::Data: return "template data / text";
        case Tok::VarBegin: return "begin of print statement";
        case Tok::VarEnd: return "end of print statement";
        case Tok::BlockBegin: return "begin of statement block";
        case Tok::BlockEnd: return "end of statement block";
        case Tok::String: return "string";
        case Tok::Integer: return "integer";
        case Tok::Float: return "float";
        case Tok::Eof: return "end of template";
    }
    return "token";
}

}  // namespace rotor::jinja
