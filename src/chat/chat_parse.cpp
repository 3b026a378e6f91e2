#include "chat/chat_parse.h"

#include <algorithm>
#include <random>

namespace rotor::chat {

using json = nlohmann::ordered_json;

namespace {

// Model output may hold broken UTF-8 (a token split mid-character): never let JSON encoding throw.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool contains(std::string_view s, std::string_view needle) { return s.find(needle) != std::string_view::npos; }

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
    return s;
}

std::string random_call_id() {
    static const char* alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string id = "call_";
    for (int i = 0; i < 24; i++) id += alnum[rng() % 62];
    return id;
}

// Appends text to content, keeping one blank-free join between pieces around removed tool calls.
void add_content(std::string& content, std::string_view piece) {
    if (trim(piece).empty()) return;
    if (!content.empty()) content += "\n";
    content += trim(piece);
}

// {"name": ..., "arguments"|"parameters": {...} or "<json text>"} -> tool call, or false.
bool json_call(const json& j, ToolCall& call) {
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
    call.name = j["name"].get<std::string>();
    const json* args = nullptr;
    if (j.contains("arguments")) args = &j["arguments"];
    else if (j.contains("parameters")) args = &j["parameters"];
    if (!args || args->is_null()) {
        call.arguments = "{}";
        return true;
    }
    if (args->is_string()) {  // arguments already encoded as text: accept it if it is a JSON object
        json inner = json::parse(args->get<std::string>(), nullptr, false);
        if (inner.is_discarded() || !inner.is_object()) return false;
        call.arguments = dump(inner);
        return true;
    }
    if (!args->is_object()) return false;
    call.arguments = dump(*args);
    return true;
}

// The JSON schema type of a tool parameter, or "" when unknown.
std::string param_type(const json* tools, const std::string& fn, const std::string& param) {
    if (!tools || !tools->is_array()) return "";
    for (auto& t : *tools) {
        const json& f = t.contains("function") ? t["function"] : t;
        if (!f.is_object() || f.value("name", "") != fn) continue;
        if (!f.contains("parameters") || !f["parameters"].is_object()) return "";
        const json& props = f["parameters"].value("properties", json::object());
        if (!props.is_object() || !props.contains(param) || !props[param].is_object()) return "";
        const json& ty = props[param].value("type", json());
        if (ty.is_string()) return ty.get<std::string>();
        return "";
    }
    return "";
}

// A <parameter=...> value of the XML style: the template writes strings raw and other values as
// JSON (or Python str() for scalars), so the schema decides; without one, only JSON objects/arrays
// are decoded.
json xml_value(const std::string& raw, const std::string& type) {
    if (type == "string") return raw;
    json v = json::parse(raw, nullptr, false);
    if (type.empty()) {
        if (!v.is_discarded() && (v.is_object() || v.is_array())) return v;
        return raw;
    }
    if (type == "boolean") {
        if (raw == "true" || raw == "True") return true;
        if (raw == "false" || raw == "False") return false;
    }
    if (type == "null" && (raw == "null" || raw == "None")) return nullptr;
    if (!v.is_discarded()) return v;
    return raw;
}

// One <function=name>...</function> body; false if malformed.
bool xml_call(std::string_view body, const json* tools, ToolCall& call) {
    body = trim(body);
    if (body.substr(0, 10) != "<function=") return false;
    size_t gt = body.find('>');
    if (gt == std::string_view::npos) return false;
    call.name = std::string(trim(body.substr(10, gt - 10)));
    if (call.name.empty()) return false;
    size_t end = body.rfind("</function>");
    std::string_view inner = body.substr(gt + 1, end == std::string_view::npos ? std::string_view::npos : end - gt - 1);
    if (end != std::string_view::npos && !trim(body.substr(end + 11)).empty()) return false;
    json args = json::object();
    size_t p = 0;
    while (true) {
        size_t open = inner.find("<parameter=", p);
        if (open == std::string_view::npos) {
            if (!trim(inner.substr(p)).empty()) return false;  // stray text between parameters
            break;
        }
        if (!trim(inner.substr(p, open - p)).empty()) return false;
        size_t name_end = inner.find('>', open);
        if (name_end == std::string_view::npos) return false;
        std::string pname(trim(inner.substr(open + 11, name_end - open - 11)));
        size_t close = inner.find("</parameter>", name_end);
        // a missing </parameter> before the next parameter or the end is tolerated
        size_t next_open = inner.find("<parameter=", name_end);
        size_t value_end = close;
        if (close == std::string_view::npos || (next_open != std::string_view::npos && next_open < close)) {
            value_end = next_open == std::string_view::npos ? inner.size() : next_open;
            p = value_end;
        } else {
            p = close + 12;
        }
        std::string_view value = inner.substr(name_end + 1, value_end - name_end - 1);
        // the template wraps values in one newline on each side
        if (!value.empty() && value.front() == '\n') value.remove_prefix(1);
        if (!value.empty() && value.back() == '\n') value.remove_suffix(1);
        if (pname.empty()) return false;
        args[pname] = xml_value(std::string(value), param_type(tools, call.name, pname));
    }
    call.arguments = dump(args);
    return true;
}

// Text with open_tag ... close_tag blocks (Hermes JSON, Qwen XML or Gemma 4 bodies); body_call parses
// one body.
using BodyParser = std::function<bool(std::string_view body, ToolCall& call)>;

void parse_tagged_calls(std::string_view text, std::string_view open_tag, std::string_view close_tag,
                        const BodyParser& body_call, ParsedOutput& out) {
    size_t p = 0;
    std::string content;
    while (p < text.size()) {
        size_t open = text.find(open_tag, p);
        if (open == std::string_view::npos) {
            add_content(content, text.substr(p));
            break;
        }
        add_content(content, text.substr(p, open - p));
        size_t body_start = open + open_tag.size();
        size_t close = text.find(close_tag, body_start);
        // generation may stop before the closing tag: take the rest as the body
        size_t body_end = close == std::string_view::npos ? text.size() : close;
        std::string_view body = text.substr(body_start, body_end - body_start);
        size_t next = close == std::string_view::npos ? text.size() : close + close_tag.size();
        ToolCall call;
        if (body_call(body, call)) {
            out.tool_calls.push_back(std::move(call));
        } else {
            add_content(content, text.substr(open, next - open));  // malformed: keep it visible
        }
        p = next;
    }
    out.content = content;
}

bool hermes_call(std::string_view body, ToolCall& call) {
    json j = json::parse(trim(body), nullptr, false);
    return !j.is_discarded() && json_call(j, call);
}

// Qwen3.5 sometimes drops the <tool_call> wrapper: bare <function=...>...</function> blocks.
bool parse_bare_functions(std::string_view text, const ParseOptions& opts, ParsedOutput& out) {
    size_t first = text.find("<function=");
    if (first == std::string_view::npos) return false;
    std::vector<ToolCall> calls;
    std::string content;
    add_content(content, text.substr(0, first));
    size_t p = first;
    while (p < text.size()) {
        size_t open = text.find("<function=", p);
        if (open == std::string_view::npos) {
            if (!trim(text.substr(p)).empty()) return false;
            break;
        }
        if (!trim(text.substr(p, open - p)).empty()) return false;
        size_t close = text.find("</function>", open);
        size_t next = close == std::string_view::npos ? text.size() : close + 11;
        ToolCall call;
        if (!xml_call(text.substr(open, next - open), opts.tools, call)) return false;
        calls.push_back(std::move(call));
        p = next;
    }
    out.content = content;
    out.tool_calls = std::move(calls);
    return true;
}

// Llama 3.x builtin tool syntax: name.call(key="value", n=1)
bool python_call(std::string_view s, ToolCall& call) {
    s = trim(s);
    size_t dot = s.find(".call(");
    if (dot == std::string_view::npos || s.back() != ')') return false;
    call.name = std::string(s.substr(0, dot));
    for (char c : call.name)
        if (!(isalnum(uint8_t(c)) || c == '_')) return false;
    std::string_view args = s.substr(dot + 6, s.size() - dot - 7);
    json obj = json::object();
    size_t i = 0;
    while (true) {
        while (i < args.size() && is_ws(args[i])) i++;
        if (i >= args.size()) break;
        size_t eq = args.find('=', i);
        if (eq == std::string_view::npos) return false;
        std::string key(trim(args.substr(i, eq - i)));
        i = eq + 1;
        while (i < args.size() && is_ws(args[i])) i++;
        if (i >= args.size()) return false;
        if (args[i] == '"' || args[i] == '\'') {
            char q = args[i++];
            std::string val;
            while (i < args.size() && args[i] != q) {
                if (args[i] == '\\' && i + 1 < args.size()) i++;
                val += args[i++];
            }
            if (i >= args.size()) return false;
            i++;
            obj[key] = val;
        } else {
            size_t e = args.find(',', i);
            std::string_view lit = trim(args.substr(i, e == std::string_view::npos ? std::string_view::npos : e - i));
            json v = json::parse(lit, nullptr, false);
            if (lit == "True") v = true;
            else if (lit == "False") v = false;
            else if (lit == "None") v = nullptr;
            if (v.is_discarded()) return false;
            obj[key] = v;
            i = e == std::string_view::npos ? args.size() : e;
        }
        while (i < args.size() && is_ws(args[i])) i++;
        if (i < args.size()) {
            if (args[i] != ',') return false;
            i++;
        }
    }
    call.arguments = dump(obj);
    return true;
}

// Llama 3.x: the whole reply is one or more {"name": ..., "parameters": ...} objects (separated by
// ';' or whitespace), optionally after <|python_tag|>, or a builtin-tool python call.
bool parse_llama3(std::string_view text, ParsedOutput& out) {
    std::string_view s = trim(text);
    for (std::string_view stop : {"<|eom_id|>", "<|eot_id|>"})
        if (s.size() >= stop.size() && s.substr(s.size() - stop.size()) == stop) s = trim(s.substr(0, s.size() - stop.size()));
    bool tagged = false;
    if (s.substr(0, 14) == "<|python_tag|>") {
        tagged = true;
        s = trim(s.substr(14));
    }
    if (s.empty()) return false;
    if (s.front() != '{') {
        ToolCall call;
        if (tagged && python_call(s, call)) {
            out.tool_calls.push_back(std::move(call));
            return true;
        }
        return false;
    }
    std::vector<ToolCall> calls;
    size_t i = 0;
    while (i < s.size()) {
        // find the end of this JSON object by bracket matching outside strings
        int depth = 0;
        bool in_str = false;
        size_t end = std::string_view::npos;
        for (size_t k = i; k < s.size(); k++) {
            char c = s[k];
            if (in_str) {
                if (c == '\\') k++;
                else if (c == '"') in_str = false;
                continue;
            }
            if (c == '"') in_str = true;
            else if (c == '{') depth++;
            else if (c == '}' && --depth == 0) {
                end = k + 1;
                break;
            }
        }
        if (end == std::string_view::npos) return false;
        json j = json::parse(s.substr(i, end - i), nullptr, false);
        ToolCall call;
        if (j.is_discarded() || !json_call(j, call)) return false;
        calls.push_back(std::move(call));
        i = end;
        while (i < s.size() && (is_ws(s[i]) || s[i] == ';')) i++;
        if (i < s.size() && s[i] != '{') return false;
    }
    out.tool_calls = std::move(calls);
    return true;
}

// ---- Gemma 4

constexpr std::string_view kGemmaQuote = "<|\"|>";  // one token: Gemma 4's string delimiter
constexpr std::string_view kChannelOpen = "<|channel>", kChannelClose = "<channel|>";
constexpr std::string_view kGemmaCallOpen = "<|tool_call>", kGemmaCallClose = "<tool_call|>";
constexpr std::string_view kGemmaTurnStart = "<|turn>model\n";

// Gemma 4's argument syntax, as its template's format_argument writes it: strings between <|"|>
// tokens (raw, no escapes), numbers and true/false bare, {key:value,...} with bare keys, [a,b,...].
// Also accepted, as models drift: JSON strings (values and keys), null / None, True / False, and
// whitespace between items. Recursive descent with a depth limit; false on anything else.
class GemmaArgs {
public:
    explicit GemmaArgs(std::string_view s) : s_(s) {}

    bool dict(json& out, int depth) {
        if (depth > kMaxDepth || !eat('{')) return false;
        out = json::object();
        skip_ws();
        if (eat('}')) return true;
        for (;;) {
            std::string k;
            json v;
            if (!key(k)) return false;
            skip_ws();
            if (!eat(':') || !value(v, depth + 1)) return false;
            out[k] = std::move(v);
            skip_ws();
            if (eat('}')) return true;
            if (!eat(',')) return false;
            skip_ws();
        }
    }

    bool at_end() {
        skip_ws();
        return i_ == s_.size();
    }

private:
    static constexpr int kMaxDepth = 64;

    void skip_ws() {
        while (i_ < s_.size() && is_ws(s_[i_])) i_++;
    }
    bool starts(std::string_view p) const { return s_.substr(i_, p.size()) == p; }
    bool eat(char c) {
        if (i_ >= s_.size() || s_[i_] != c) return false;
        i_++;
        return true;
    }

    bool value(json& out, int depth) {
        if (depth > kMaxDepth) return false;
        skip_ws();
        if (i_ >= s_.size()) return false;
        if (starts(kGemmaQuote) || s_[i_] == '"') {
            std::string str;
            if (!text(str)) return false;
            out = std::move(str);
            return true;
        }
        if (s_[i_] == '{') return dict(out, depth + 1);
        if (s_[i_] == '[') return array(out, depth + 1);
        return scalar(out);
    }

    bool array(json& out, int depth) {
        if (depth > kMaxDepth || !eat('[')) return false;
        out = json::array();
        skip_ws();
        if (eat(']')) return true;
        for (;;) {
            json v;
            if (!value(v, depth + 1)) return false;
            out.push_back(std::move(v));
            skip_ws();
            if (eat(']')) return true;
            if (!eat(',')) return false;
        }
    }

    // <|"|>text<|"|> or a JSON string literal.
    bool text(std::string& out) {
        if (starts(kGemmaQuote)) {
            size_t b = i_ + kGemmaQuote.size();
            size_t e = s_.find(kGemmaQuote, b);
            if (e == std::string_view::npos) return false;
            out = std::string(s_.substr(b, e - b));
            i_ = e + kGemmaQuote.size();
            return true;
        }
        if (!starts("\"")) return false;
        size_t k = i_ + 1;
        while (k < s_.size() && s_[k] != '"') k += s_[k] == '\\' ? 2 : 1;
        if (k >= s_.size()) return false;
        json j = json::parse(s_.substr(i_, k + 1 - i_), nullptr, false);
        if (j.is_discarded() || !j.is_string()) return false;
        out = j.get<std::string>();
        i_ = k + 1;
        return true;
    }

    // A bare key runs to the ':' (the template writes keys unquoted).
    bool key(std::string& out) {
        skip_ws();
        if (starts(kGemmaQuote) || starts("\"")) return text(out);
        size_t b = i_;
        while (i_ < s_.size() && s_[i_] != ':') {
            if (std::string_view("{}[],").find(s_[i_]) != std::string_view::npos || starts(kGemmaQuote)) return false;
            i_++;
        }
        out = std::string(trim(s_.substr(b, i_ - b)));
        return !out.empty();
    }

    // true / false / null (and Python's spellings, which the template's {{ value }} prints for None)
    // or a JSON number.
    bool scalar(json& out) {
        size_t b = i_;
        while (i_ < s_.size() && std::string_view(",}] \t\n\r").find(s_[i_]) == std::string_view::npos && !starts(kGemmaQuote))
            i_++;
        std::string_view tok = s_.substr(b, i_ - b);
        if (tok == "true" || tok == "True") out = true;
        else if (tok == "false" || tok == "False") out = false;
        else if (tok == "null" || tok == "None") out = nullptr;
        else {
            if (tok.empty() || !(tok[0] == '-' || (tok[0] >= '0' && tok[0] <= '9'))) return false;
            json n = json::parse(tok, nullptr, false);
            if (n.is_discarded() || !n.is_number()) return false;
            out = std::move(n);
        }
        return true;
    }

    std::string_view s_;
    size_t i_ = 0;
};

// The body of <|tool_call>...<tool_call|>: call:NAME{arguments}.
bool gemma_call(std::string_view body, ToolCall& call) {
    body = trim(body);
    if (body.substr(0, 5) != "call:") return false;
    body.remove_prefix(5);
    size_t brace = body.find('{');
    if (brace == std::string_view::npos) return false;
    std::string_view name = trim(body.substr(0, brace));
    if (name.empty()) return false;
    for (char c : name)
        if (is_ws(c) || std::string_view("<>{}[]:,\"'|").find(c) != std::string_view::npos) return false;
    GemmaArgs p(body.substr(brace));
    json args;
    if (!p.dict(args, 0) || !p.at_end()) return false;
    call.name = std::string(name);
    call.arguments = dump(args);
    return true;
}

// Gemma 4's channels after the leading reasoning: every <|channel>thought...<channel|> block joins the
// reasoning (an unclosed one takes the rest of the text), other <|channel> and unmatched <channel|>
// tokens are dropped (llama.cpp's parser does the same). Returns the remaining text.
std::string strip_channels(std::string_view s, const ChatFormat& fmt, std::string& reasoning) {
    std::string out;
    size_t p = 0;
    while (p < s.size()) {
        const size_t a = s.find(kChannelOpen, p), b = s.find(kChannelClose, p);
        const size_t m = std::min(a, b);
        if (m == std::string_view::npos) {
            out += s.substr(p);
            break;
        }
        out += s.substr(p, m - p);
        if (m == b) {  // a close without an open
            p = b + kChannelClose.size();
            continue;
        }
        if (s.substr(a, fmt.think_open.size()) != fmt.think_open) {  // an empty or unknown channel
            p = a + kChannelOpen.size();
            continue;
        }
        const size_t body = a + fmt.think_open.size();
        const size_t end = s.find(kChannelClose, body);
        std::string_view piece = trim(s.substr(body, end == std::string_view::npos ? std::string_view::npos : end - body));
        if (!piece.empty()) {
            if (!reasoning.empty()) reasoning += "\n\n";
            reasoning += piece;
        }
        if (end == std::string_view::npos) break;  // cut off while thinking
        p = end + kChannelClose.size();
        // Nothing but whitespace before the block: the answer starts after it.
        if (trim(out).empty()) {
            out.clear();
            while (p < s.size() && is_ws(s[p])) p++;
        }
    }
    return out;
}

}  // namespace

ChatFormat detect_chat_format(std::string_view src) {
    ChatFormat f;
    if (contains(src, "<|tool_call>call:"))  // llama.cpp detects Gemma 4 by the same literal
        f.tool_calls = ToolCallStyle::Gemma4;
    else if (contains(src, "<function=") && contains(src, "<parameter="))
        f.tool_calls = ToolCallStyle::QwenXml;
    else if (contains(src, "<tool_call>"))
        f.tool_calls = ToolCallStyle::Hermes;
    else if (contains(src, "<|python_tag|>") || (contains(src, "<|start_header_id|>") && contains(src, "\"parameters\"")))
        f.tool_calls = ToolCallStyle::Llama3;
    if (contains(src, kChannelOpen) && contains(src, kChannelClose)) {
        f.reasoning = true;
        f.channels = true;
        f.think_open = std::string(kChannelOpen) + "thought";
        f.think_close = std::string(kChannelClose);
    } else {
        f.reasoning = contains(src, "<think>") && contains(src, "</think>");
    }
    if (f.channels || f.tool_calls == ToolCallStyle::Gemma4)
        f.preserved_tokens = {std::string(kChannelOpen),   std::string(kChannelClose), std::string(kGemmaCallOpen),
                              std::string(kGemmaCallClose), std::string(kGemmaQuote),   "<|turn>"};
    return f;
}

bool prompt_opens_reasoning(std::string_view prompt, const ChatFormat& fmt) {
    if (!fmt.reasoning) return false;
    size_t open = prompt.rfind(fmt.think_open);
    if (open == std::string_view::npos) return false;
    size_t close = prompt.rfind(fmt.think_close);
    return close == std::string_view::npos || close < open;
}

json ParsedOutput::to_message() const {
    json m = json::object();
    m["role"] = "assistant";
    m["content"] = content.empty() && !tool_calls.empty() ? json(nullptr) : json(content);
    if (!reasoning_content.empty()) m["reasoning_content"] = reasoning_content;
    if (!tool_calls.empty()) {
        json calls = json::array();
        for (auto& c : tool_calls)
            calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
        m["tool_calls"] = std::move(calls);
    }
    return m;
}

ParsedOutput parse_model_output(std::string_view text, const ChatFormat& fmt, const ParseOptions& opts) {
    ParsedOutput out;
    std::string_view rest = text;
    bool after_reasoning = false;
    if (fmt.channels) {  // the model may open its turn itself
        std::string_view lead = rest;
        while (!lead.empty() && is_ws(lead.front())) lead.remove_prefix(1);
        if (lead.substr(0, kGemmaTurnStart.size()) == kGemmaTurnStart) rest = lead.substr(kGemmaTurnStart.size());
    }
    if (fmt.reasoning) {
        std::string_view lead = trim(rest);
        bool open = opts.reasoning_open;
        if (!open && lead.substr(0, fmt.think_open.size()) == fmt.think_open) {
            open = true;
            rest = lead.substr(fmt.think_open.size());
        }
        if (open) {
            size_t close = rest.find(fmt.think_close);
            if (close == std::string_view::npos) {  // cut off while still thinking
                out.reasoning_content = std::string(trim(rest));
                return out;
            }
            out.reasoning_content = std::string(trim(rest.substr(0, close)));
            rest = rest.substr(close + fmt.think_close.size());
            after_reasoning = true;
        }
    }
    std::string cleaned;
    if (fmt.channels) {
        cleaned = strip_channels(rest, fmt, out.reasoning_content);
        rest = cleaned;
    }
    // Plain replies keep their text as generated (only the gap after </think> is dropped).
    auto plain = [&]() {
        std::string_view r = rest;
        if (after_reasoning)
            while (!r.empty() && is_ws(r.front())) r.remove_prefix(1);
        out.content = std::string(r);
    };
    switch (fmt.tool_calls) {
        case ToolCallStyle::Hermes:
            if (contains(rest, "<tool_call>")) parse_tagged_calls(rest, "<tool_call>", "</tool_call>", hermes_call, out);
            else plain();
            break;
        case ToolCallStyle::QwenXml:
            if (contains(rest, "<tool_call>"))
                parse_tagged_calls(rest, "<tool_call>", "</tool_call>",
                                   [&](std::string_view body, ToolCall& c) { return xml_call(body, opts.tools, c); }, out);
            else if (!contains(rest, "<function=") || !parse_bare_functions(rest, opts, out)) plain();
            break;
        case ToolCallStyle::Llama3:
            if (!parse_llama3(rest, out)) plain();
            break;
        case ToolCallStyle::Gemma4:
            if (contains(rest, kGemmaCallOpen)) parse_tagged_calls(rest, kGemmaCallOpen, kGemmaCallClose, gemma_call, out);
            else plain();
            break;
        case ToolCallStyle::None: plain(); break;
    }
    for (auto& c : out.tool_calls) c.id = opts.make_id ? opts.make_id() : random_call_id();
    return out;
}

}  // namespace rotor::chat
