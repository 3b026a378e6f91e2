#include "server/request.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>

#include "chat/chat_parse.h"
#include "common/utf8.h"
#include "gguf/gguf.h"

namespace rotor::server {

json ApiError::to_json() const {
    json e = json::object();
    e["message"] = message;
    e["type"] = type;
    e["param"] = param.empty() ? json(nullptr) : json(param);
    e["code"] = code.empty() ? json(nullptr) : json(code);
    json o = json::object();
    o["error"] = std::move(e);
    return o;
}

namespace {

// Thrown inside the parser only; parse_request turns it into its result.
struct Invalid {
    std::string message;
    std::string param;
    std::string code;
};

[[noreturn]] void invalid(const std::string& param, const std::string& msg, const std::string& code = {}) {
    throw Invalid{msg, param, code};
}

// Deeply nested JSON would make later recursive code (copies, template rendering) overflow the stack;
// nothing in a valid request nests this deep.
constexpr int kMaxDepth = 64;

bool nesting_ok(std::string_view s) {
    int depth = 0;
    bool in_str = false, esc = false;
    for (char c : s) {
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '[' || c == '{') {
            if (++depth > kMaxDepth) return false;
        } else if (c == ']' || c == '}') depth--;
    }
    return true;
}

// nlohmann's parse errors quote the bytes read, which may be invalid UTF-8; error messages must not be.
std::string printable(std::string_view s) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        const int n = utf8_seq_len((uint8_t)s[i]);
        if (n > 0 && i + (size_t)n <= s.size() && utf8_valid(s.substr(i, (size_t)n))) {
            out.append(s.substr(i, (size_t)n));
            i += (size_t)n;
        } else {
            out += '?';
            i++;
        }
    }
    return out;
}

const json* field(const json& obj, const char* name) {
    auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

bool get_bool(const json& obj, const char* name, bool def) {
    const json* v = field(obj, name);
    if (!v) return def;
    if (!v->is_boolean()) invalid(name, std::string("'") + name + "' must be a boolean");
    return v->get<bool>();
}

double get_number(const json& obj, const char* name, double def, double lo, double hi) {
    const json* v = field(obj, name);
    if (!v) return def;
    if (!v->is_number()) invalid(name, std::string("'") + name + "' must be a number");
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi) {
        char buf[160];
        snprintf(buf, sizeof buf, "'%s' must be between %g and %g", name, lo, hi);
        invalid(name, buf);
    }
    return x;
}

int64_t get_int(const json& obj, const char* name, int64_t def, int64_t lo, int64_t hi) {
    const json* v = field(obj, name);
    if (!v) return def;
    if (!v->is_number_integer()) invalid(name, std::string("'") + name + "' must be an integer");
    if (v->is_number_unsigned() && v->get<uint64_t>() > (uint64_t)std::numeric_limits<int64_t>::max())
        invalid(name, std::string("'") + name + "' is out of range");
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi)
        invalid(name, std::string("'") + name + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return x;
}

std::string at(const std::string& base, size_t i) { return base + "[" + std::to_string(i) + "]"; }

// Content: a string, or an array of {"type": "text", "text": "..."} parts (kept as parts: templates
// see what transformers would give them).
void check_content(const json& c, const std::string& param, bool allow_null) {
    if (c.is_string()) return;
    if (c.is_null()) {
        if (!allow_null) invalid(param, "'" + param + "' must not be null");
        return;
    }
    if (!c.is_array()) invalid(param, "'" + param + "' must be a string or an array of content parts");
    for (size_t i = 0; i < c.size(); i++) {
        const json& part = c[i];
        const std::string p = at(param, i);
        if (!part.is_object()) invalid(p, "'" + p + "' must be an object");
        const json* type = field(part, "type");
        if (!type || !type->is_string()) invalid(p + ".type", "'" + p + ".type' must be a string");
        if (*type != "text")
            invalid(p + ".type", "content parts of type '" + type->get<std::string>() +
                                     "' are not supported (this server serves text models)");
        const json* text = field(part, "text");
        if (!text || !text->is_string()) invalid(p + ".text", "'" + p + ".text' must be a string");
    }
}

void check_tool_calls(const json& calls, const std::string& param) {
    if (!calls.is_array()) invalid(param, "'" + param + "' must be an array");
    for (size_t i = 0; i < calls.size(); i++) {
        const json& c = calls[i];
        const std::string p = at(param, i);
        if (!c.is_object()) invalid(p, "'" + p + "' must be an object");
        if (const json* id = field(c, "id"); id && !id->is_string()) invalid(p + ".id", "'" + p + ".id' must be a string");
        if (const json* t = field(c, "type"); t && *t != "function")
            invalid(p + ".type", "'" + p + ".type' must be \"function\"");
        const json* fn = field(c, "function");
        if (!fn || !fn->is_object()) invalid(p + ".function", "'" + p + ".function' must be an object");
        const json* name = field(*fn, "name");
        if (!name || !name->is_string()) invalid(p + ".function.name", "'" + p + ".function.name' must be a string");
        const json* args = field(*fn, "arguments");
        if (args && !args->is_string() && !args->is_object())
            invalid(p + ".function.arguments", "'" + p + ".function.arguments' must be a JSON string or an object");
    }
}

json parse_messages(const json& body) {
    const json* msgs = field(body, "messages");
    if (!msgs) invalid("messages", "'messages' is required");
    if (!msgs->is_array()) invalid("messages", "'messages' must be an array");
    if (msgs->empty()) invalid("messages", "'messages' must not be empty");
    json out = json::array();
    for (size_t i = 0; i < msgs->size(); i++) {
        const json& m = (*msgs)[i];
        const std::string p = at("messages", i);
        if (!m.is_object()) invalid(p, "'" + p + "' must be an object");
        const json* role = field(m, "role");
        if (!role || !role->is_string()) invalid(p + ".role", "'" + p + ".role' must be a string");
        std::string r = role->get<std::string>();
        if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool")
            invalid(p + ".role", "'" + p + ".role' must be one of system, developer, user, assistant, tool; got '" + r + "'");
        json copy = m;
        // Chat templates know "system"; OpenAI's "developer" role means the same.
        if (r == "developer") copy["role"] = r = "system";
        const json* content = field(m, "content");
        const json* calls = field(m, "tool_calls");
        if (r == "assistant") {
            if (content) check_content(*content, p + ".content", true);
            if (calls) check_tool_calls(*calls, p + ".tool_calls");
            if (!content && !calls) invalid(p + ".content", "'" + p + ".content' is required unless tool_calls are given");
            // Clients send null content beside tool_calls; many templates test `'x' in content`, which
            // fails on None (in jinja2 too). An empty string reads the same everywhere else.
            if (!content) copy["content"] = "";
            if (const json* rc = field(m, "reasoning_content"); rc && !rc->is_string())
                invalid(p + ".reasoning_content", "'" + p + ".reasoning_content' must be a string");
        } else {
            if (!content) invalid(p + ".content", "'" + p + ".content' is required");
            check_content(*content, p + ".content", false);
            if (calls) invalid(p + ".tool_calls", "only assistant messages may carry tool_calls");
        }
        if (const json* n = field(m, "name"); n && !n->is_string()) invalid(p + ".name", "'" + p + ".name' must be a string");
        if (const json* id = field(m, "tool_call_id"); id && !id->is_string())
            invalid(p + ".tool_call_id", "'" + p + ".tool_call_id' must be a string");
        out.push_back(std::move(copy));
    }
    return out;
}

json parse_tools(const json& body) {
    const json* tools = field(body, "tools");
    if (!tools) return nullptr;
    if (!tools->is_array()) invalid("tools", "'tools' must be an array");
    for (size_t i = 0; i < tools->size(); i++) {
        const json& t = (*tools)[i];
        const std::string p = at("tools", i);
        if (!t.is_object()) invalid(p, "'" + p + "' must be an object");
        const json* type = field(t, "type");
        if (!type || *type != "function") invalid(p + ".type", "'" + p + ".type' must be \"function\"");
        const json* fn = field(t, "function");
        if (!fn || !fn->is_object()) invalid(p + ".function", "'" + p + ".function' must be an object");
        const json* name = field(*fn, "name");
        if (!name || !name->is_string() || name->get<std::string>().empty())
            invalid(p + ".function.name", "'" + p + ".function.name' must be a non-empty string");
        if (const json* d = field(*fn, "description"); d && !d->is_string())
            invalid(p + ".function.description", "'" + p + ".function.description' must be a string");
        if (const json* ps = field(*fn, "parameters"); ps && !ps->is_object())
            invalid(p + ".function.parameters", "'" + p + ".function.parameters' must be an object (a JSON Schema)");
    }
    if (tools->empty()) return nullptr;
    if (const json* choice = field(body, "tool_choice")) {
        if (choice->is_string()) {
            const std::string c = choice->get<std::string>();
            if (c == "none") return nullptr;
            if (c == "required")
                invalid("tool_choice", "tool_choice \"required\" is not supported (no constrained decoding); use \"auto\"");
            if (c != "auto") invalid("tool_choice", "'tool_choice' must be \"none\", \"auto\" or \"required\"");
        } else if (choice->is_object()) {
            invalid("tool_choice", "forcing a named tool is not supported (no constrained decoding); use \"auto\"");
        } else {
            invalid("tool_choice", "'tool_choice' must be a string or an object");
        }
    }
    return *tools;
}

void parse_prompt(const json& body, const RequestLimits& lim, ParsedRequest& r) {
    const json* p = field(body, "prompt");
    if (!p) invalid("prompt", "'prompt' is required");
    auto token_list = [&](const json& arr, const std::string& param) {
        if (arr.empty()) invalid(param, "'" + param + "' must not be empty");
        std::vector<int32_t> ids;
        for (size_t i = 0; i < arr.size(); i++) {
            const json& t = arr[i];
            if (!t.is_number_integer()) invalid(param, "'" + param + "' must hold token ids (integers)");
            const int64_t id = t.is_number_unsigned() && t.get<uint64_t>() > (uint64_t)INT32_MAX ? -1 : t.get<int64_t>();
            if (id < 0 || id >= lim.n_vocab)
                invalid(param, "token id " + t.dump() + " in '" + param + "' is outside the vocabulary (0.." +
                                   std::to_string(lim.n_vocab - 1) + ")");
            ids.push_back((int32_t)id);
        }
        r.prompt_tokens = std::move(ids);
        r.prompt_is_tokens = true;
    };
    if (p->is_string()) {
        r.prompt_text = p->get<std::string>();
        return;
    }
    if (!p->is_array()) invalid("prompt", "'prompt' must be a string, an array of token ids, or an array of one of those");
    if (p->empty()) invalid("prompt", "'prompt' must not be empty");
    if ((*p)[0].is_number()) return token_list(*p, "prompt");
    if (p->size() > 1) invalid("prompt", "only one prompt per request is supported");
    const json& one = (*p)[0];
    if (one.is_string()) {
        r.prompt_text = one.get<std::string>();
        return;
    }
    if (one.is_array()) return token_list(one, "prompt[0]");
    invalid("prompt", "'prompt' must be a string, an array of token ids, or an array of one of those");
}

void parse_sampling(const json& b, const RequestLimits& lim, ParsedRequest& r) {
    SamplerParams& s = r.sampling;
    s = lim.sampling;  // the model's defaults; each field the request gives replaces one
    s.temperature = (float)get_number(b, "temperature", s.temperature, 0.0, 100.0);
    s.top_p = (float)get_number(b, "top_p", s.top_p, 0.0, 1.0);
    s.top_k = (int32_t)get_int(b, "top_k", s.top_k, 0, 1 << 30);
    s.min_p = (float)get_number(b, "min_p", s.min_p, 0.0, 1.0);
    s.typical_p = (float)get_number(b, "typical_p", s.typical_p, 0.0, 1.0);
    s.presence_penalty = (float)get_number(b, "presence_penalty", s.presence_penalty, -2.0, 2.0);
    s.frequency_penalty = (float)get_number(b, "frequency_penalty", s.frequency_penalty, -2.0, 2.0);
    s.repetition_penalty = (float)get_number(b, "repeat_penalty", s.repetition_penalty, 1e-3, 100.0);
    s.penalty_last_n = (int32_t)get_int(b, "repeat_last_n", s.penalty_last_n, -1, 1 << 30);
    s.min_keep = (int32_t)get_int(b, "min_keep", s.min_keep, 0, 1 << 20);
    if (const json* seed = field(b, "seed")) {
        if (!seed->is_number_integer()) invalid("seed", "'seed' must be an integer");
        s.seed = seed->is_number_unsigned() ? (int64_t)seed->get<uint64_t>() : seed->get<int64_t>();
    }
    if (const json* lb = field(b, "logit_bias")) {
        if (!lb->is_object()) invalid("logit_bias", "'logit_bias' must be an object mapping token ids to biases");
        for (auto it = lb->begin(); it != lb->end(); ++it) {
            const std::string& key = it.key();
            int64_t id = -1;
            if (!key.empty() && key.size() <= 10 && key.find_first_not_of("0123456789") == std::string::npos)
                id = std::stoll(key);
            if (id < 0 || id >= lim.n_vocab)
                invalid("logit_bias", "logit_bias key '" + key + "' is not a token id of this model (0.." +
                                          std::to_string(lim.n_vocab - 1) + ")");
            if (!it.value().is_number()) invalid("logit_bias", "logit_bias values must be numbers");
            const double v = it.value().get<double>();
            if (!std::isfinite(v) || v < -100 || v > 100) invalid("logit_bias", "logit_bias values must be between -100 and 100");
            // OpenAI: -100 effectively bans the token; make it exact.
            s.logit_bias[(int32_t)id] = v <= -100 ? -std::numeric_limits<float>::infinity() : (float)v;
        }
    }
}

void parse_stop(const json& b, const RequestLimits& lim, ParsedRequest& r) {
    const json* st = field(b, "stop");
    if (!st) return;
    if (st->is_string()) {
        if (!st->get<std::string>().empty()) r.stop.push_back(st->get<std::string>());
        return;
    }
    if (!st->is_array()) invalid("stop", "'stop' must be a string or an array of strings");
    if ((int)st->size() > lim.max_stop) invalid("stop", "at most " + std::to_string(lim.max_stop) + " stop strings are supported");
    for (const json& s : *st) {
        if (!s.is_string()) invalid("stop", "'stop' must be a string or an array of strings");
        if (!s.get<std::string>().empty()) r.stop.push_back(s.get<std::string>());
    }
}

void parse_body(Endpoint ep, const json& b, const RequestLimits& lim, ParsedRequest& r) {
    if (!b.is_object()) invalid("", "the request body must be a JSON object");
    r.endpoint = ep;
    if (const json* m = field(b, "model")) {
        if (!m->is_string()) invalid("model", "'model' must be a string");
        r.model = m->get<std::string>();
        if (!lim.model_names.empty()) {
            bool known = false;
            for (const auto& n : lim.model_names) known = known || n == r.model;
            if (!known) {
                std::string list;
                for (const auto& n : lim.model_names) list += (list.empty() ? "'" : ", '") + n + "'";
                invalid("model", "the model '" + r.model + "' does not exist; this server serves " + list, "model_not_found");
            }
        }
    }
    if (ep == Endpoint::Chat) {
        r.messages = parse_messages(b);
        r.tools = parse_tools(b);
        if (const json* k = field(b, "chat_template_kwargs")) {
            if (!k->is_object()) invalid("chat_template_kwargs", "'chat_template_kwargs' must be an object");
            r.chat_template_kwargs = *k;
        }
    } else {
        parse_prompt(b, lim, r);
        if (get_bool(b, "echo", false)) invalid("echo", "'echo' is not supported");
        if (const json* s = field(b, "suffix"); s && !(s->is_string() && s->get<std::string>().empty()))
            invalid("suffix", "'suffix' is not supported");
        if (get_int(b, "best_of", 1, 1, 1) != 1) invalid("best_of", "'best_of' must be 1");
    }
    r.stream = get_bool(b, "stream", false);
    if (const json* so = field(b, "stream_options")) {
        if (!so->is_object()) invalid("stream_options", "'stream_options' must be an object");
        r.include_usage = get_bool(*so, "include_usage", false);
    }
    const char* max_names[] = {"max_completion_tokens", "max_tokens", "n_predict"};
    for (const char* n : max_names) {
        if (!field(b, n)) continue;
        r.max_tokens = (int)get_int(b, n, -1, 1, std::numeric_limits<int32_t>::max());
        break;
    }
    if (get_int(b, "n", 1, 1, 128) != 1) invalid("n", "only n = 1 is supported");
    parse_sampling(b, lim, r);
    parse_stop(b, lim, r);
    if (ep == Endpoint::Chat) {
        r.logprobs = get_bool(b, "logprobs", false);
        r.top_logprobs = (int)get_int(b, "top_logprobs", 0, 0, lim.max_top_logprobs);
        if (r.top_logprobs > 0 && !r.logprobs) invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    } else if (const json* lp = field(b, "logprobs")) {
        // Legacy completions: logprobs is the number of alternatives per token (0..5).
        if (lp->is_boolean()) {
            r.logprobs = lp->get<bool>();
        } else {
            r.top_logprobs = (int)get_int(b, "logprobs", 0, 0, 5);
            r.logprobs = true;
        }
    }
    r.sampling.n_probs = r.top_logprobs;
    r.ignore_eos = get_bool(b, "ignore_eos", false);
    if (const json* rf = field(b, "response_format")) {
        if (!rf->is_object()) invalid("response_format", "'response_format' must be an object");
        const json* t = field(*rf, "type");
        if (!t || !t->is_string()) invalid("response_format.type", "'response_format.type' must be a string");
        if (*t != "text")
            invalid("response_format", "response_format '" + t->get<std::string>() + "' is not supported (no constrained decoding)");
    }
}

}  // namespace

// ---- the model's default sampling

namespace {

// A general.sampling.* value as llama.cpp reads it (the value's text, parsed as a number).
std::optional<double> gguf_number(const gguf::File& f, const std::string& key, std::vector<std::string>* warnings) {
    try {
        if (const auto v = f.get_float(key)) return *v;
        return std::nullopt;
    } catch (const std::exception&) {
    }
    try {
        if (const auto t = f.get_string(key)) {
            const std::string text(*t);
            char* end = nullptr;
            const double v = std::strtod(text.c_str(), &end);
            if (end != text.c_str() && *end == '\0') return v;
        }
    } catch (const std::exception&) {
    }
    if (warnings) warnings->push_back("the GGUF key " + key + " is not a number; ignored");
    return std::nullopt;
}

}  // namespace

SamplerParams default_sampling(const gguf::File& f, const chat::ChatFormat* fmt, std::vector<std::string>* warnings) {
    SamplerParams s;
    if (fmt && fmt->tool_calls == chat::ToolCallStyle::Gemma4 && fmt->channels) {
        // Google's recommended sampling for Gemma 4 (its model card; Gemma 4 GGUFs carry the same keys)
        s.temperature = 1.0f;
        s.top_p = 0.95f;
        s.top_k = 64;
    }
    auto take = [&](const char* name, double lo, double hi, bool integer, auto set) {
        const std::string key = std::string("general.sampling.") + name;
        const std::optional<double> v = gguf_number(f, key, warnings);
        if (!v) return;
        if (!std::isfinite(*v) || *v < lo || *v > hi || (integer && *v != std::floor(*v))) {
            if (warnings) {
                char buf[200];
                snprintf(buf, sizeof buf, "the GGUF key %s = %g is out of range (%g..%g%s); ignored", key.c_str(), *v, lo, hi,
                         integer ? ", an integer" : "");
                warnings->push_back(buf);
            }
            return;
        }
        set(*v);
    };
    take("temp", 0.0, 100.0, false, [&](double v) { s.temperature = (float)v; });
    take("top_k", 0.0, double(1 << 30), true, [&](double v) { s.top_k = (int32_t)v; });
    take("top_p", 0.0, 1.0, false, [&](double v) { s.top_p = (float)v; });
    take("min_p", 0.0, 1.0, false, [&](double v) { s.min_p = (float)v; });
    take("penalty_last_n", -1.0, double(1 << 30), true, [&](double v) { s.penalty_last_n = (int32_t)v; });
    take("penalty_repeat", 1e-3, 100.0, false, [&](double v) { s.repetition_penalty = (float)v; });
    return s;
}

bool parse_request(Endpoint ep, std::string_view body, const RequestLimits& limits, ParsedRequest* out, ApiError* err) {
    *out = ParsedRequest{};
    auto fail = [&](std::string msg, std::string param, std::string code) {
        *err = ApiError{};
        err->status = 400;
        err->message = std::move(msg);
        err->param = std::move(param);
        err->code = std::move(code);
        return false;
    };
    if (!nesting_ok(body))
        return fail("the request body nests deeper than " + std::to_string(kMaxDepth) + " levels", "", "");
    json b;
    try {
        b = json::parse(body);
    } catch (const json::exception& e) {
        return fail("the request body is not valid JSON: " + printable(e.what()), "", "invalid_json");
    }
    try {
        parse_body(ep, b, limits, *out);
    } catch (const Invalid& e) {
        *out = ParsedRequest{};
        return fail(e.message, e.param, e.code);
    } catch (const std::exception& e) {  // a json type error this validator missed: still a 400
        *out = ParsedRequest{};
        return fail("invalid request: " + printable(e.what()), "", "");
    }
    return true;
}

}  // namespace rotor::server
