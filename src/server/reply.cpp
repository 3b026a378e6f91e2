#include "server/reply.h"

#include <algorithm>
#include <cmath>

#include "tokenizer/vocab.h"

namespace rotor::server {

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

// JSON has no -inf; OpenAI reports -9999 for "practically impossible".
double finite_logprob(double lp) { return std::isfinite(lp) ? lp : -9999.0; }

json logprob_entry(const std::string& piece, double lp) {
    json bytes = json::array();
    for (char c : piece) bytes.push_back((int)(uint8_t)c);
    json e = json::object();
    e["token"] = utf8_sanitize(piece);
    e["logprob"] = finite_logprob(lp);
    e["bytes"] = std::move(bytes);
    return e;
}

// OpenAI's chat logprobs entry for one sampled token.
json chat_logprob(const Vocab& v, const GenToken& t) {
    json e = logprob_entry(v.token_to_piece(t.id), t.logprob);
    json top = json::array();
    for (const TokenLogprob& a : t.top) top.push_back(logprob_entry(v.token_to_piece(a.token), a.logprob));
    e["top_logprobs"] = std::move(top);
    return e;
}

// End-of-generation tokens end the reply; they are not part of its text, so not of its logprobs.
bool listed(const Vocab& v, const GenToken& t, bool ignore_eos) { return ignore_eos || !v.is_eog(t.id); }

}  // namespace

json usage_json(const GenStats& s) {
    json u = json::object();
    u["prompt_tokens"] = s.n_prompt;
    u["completion_tokens"] = s.n_generated;
    u["total_tokens"] = s.n_prompt + s.n_generated;
    u["prompt_tokens_details"] = {{"cached_tokens", s.n_cached}};
    return u;
}

json timings_json(const GenStats& s) {
    json t = json::object();
    t["cache_n"] = s.n_cached;
    t["prompt_n"] = s.n_prompt - s.n_cached;
    t["prompt_ms"] = s.prompt_ms;
    t["predicted_n"] = s.n_generated;
    t["predicted_ms"] = s.gen_ms;
    t["queue_ms"] = s.queue_ms;
    t["slot"] = s.slot;
    return t;
}

std::string stream_error(const std::string& message) {
    ApiError e;
    e.status = 500;
    e.type = "server_error";
    e.message = message;
    return sse(e.to_json()) + "data: [DONE]\n\n";
}

// ---- chat

ChatReply::ChatReply(const Vocab& vocab, ReplyOptions opt, const chat::ChatFormat& fmt, bool reasoning_open,
                     const json* tools)
    : vocab_(vocab), opt_(std::move(opt)), fmt_(fmt), reasoning_open_(reasoning_open),
      tools_(tools && tools->is_array() ? tools : nullptr), parser_(fmt, reasoning_open, tools_) {
    for (const std::string& t : fmt.preserved_tokens) {
        const int32_t id = vocab.find(t);
        if (id >= 0 && !vocab.is_eog(id) && vocab.token_to_piece(id).empty()) shown_.push_back(id);
    }
}

// One token per event, and a control token adds no text of its own: what the event carries came
// before it. (Text the stop-string matcher still holds comes out after it; the parsers skip
// whitespace around tool-call bodies, but a held piece can still split "<|channel>" from "thought".)
std::string ChatReply::text_of(const GenEvent& ev) const {
    std::string t = ev.text;
    for (const GenToken& k : ev.tokens)
        if (std::find(shown_.begin(), shown_.end(), k.id) != shown_.end()) t += vocab_.token(k.id).text;
    return t;
}

void ChatReply::take_logprobs(const GenEvent& ev) {
    if (!opt_.logprobs) return;
    for (const GenToken& t : ev.tokens)
        if (listed(vocab_, t, opt_.ignore_eos)) logprobs_.push_back(chat_logprob(vocab_, t));
}

json ChatReply::chunk(json delta, json logprobs, json finish) const {
    json c = json::object();
    c["id"] = opt_.id;
    c["object"] = "chat.completion.chunk";
    c["created"] = opt_.created;
    c["model"] = opt_.model;
    c["system_fingerprint"] = "rotor";
    json choice = json::object();
    choice["index"] = 0;
    choice["delta"] = std::move(delta);
    choice["logprobs"] = std::move(logprobs);
    choice["finish_reason"] = std::move(finish);
    c["choices"] = json::array({std::move(choice)});
    if (opt_.include_usage) c["usage"] = nullptr;
    return c;
}

std::string ChatReply::stream(const GenEvent& ev) {
    std::string out;
    if (!started_) {
        started_ = true;
        out += sse(chunk({{"role", "assistant"}, {"content", ""}}, nullptr, nullptr));
    }
    if (ev.done && ev.finish == FinishReason::Error) return out + stream_error(ev.error);
    take_logprobs(ev);
    ChatDelta d = parser_.push(text_of(ev));
    auto delta_json = [](const ChatDelta& x) {
        json j = json::object();
        if (!x.reasoning.empty()) j["reasoning_content"] = x.reasoning;
        if (!x.content.empty()) j["content"] = x.content;
        return j;
    };
    auto pending_logprobs = [&]() {
        if (!opt_.logprobs) return json(nullptr);
        json lp = {{"content", std::move(logprobs_)}};
        logprobs_ = json::array();
        return lp;
    };
    if (!ev.done) {
        // Logprobs of tokens that added no text yet ride along with the next text.
        if (!d.empty()) out += sse(chunk(delta_json(d), pending_logprobs(), nullptr));
        return out;
    }
    ChatStreamParser::Final f = parser_.finish(opt_.make_tool_id);
    d.reasoning += f.delta.reasoning;
    d.content += f.delta.content;
    if (!d.empty() || !logprobs_.empty()) out += sse(chunk(delta_json(d), pending_logprobs(), nullptr));
    if (!f.parsed.tool_calls.empty()) {
        json calls = json::array();
        for (size_t i = 0; i < f.parsed.tool_calls.size(); i++) {
            const chat::ToolCall& c = f.parsed.tool_calls[i];
            calls.push_back({{"index", (int)i},
                             {"id", c.id},
                             {"type", "function"},
                             {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
        }
        out += sse(chunk({{"tool_calls", std::move(calls)}}, nullptr, nullptr));
    }
    json last = chunk(json::object(), nullptr, f.parsed.tool_calls.empty() ? finish_reason_name(ev.finish) : "tool_calls");
    last["timings"] = timings_json(ev.stats);
    out += sse(last);
    if (opt_.include_usage) {
        json u = json::object();
        u["id"] = opt_.id;
        u["object"] = "chat.completion.chunk";
        u["created"] = opt_.created;
        u["model"] = opt_.model;
        u["system_fingerprint"] = "rotor";
        u["choices"] = json::array();
        u["usage"] = usage_json(ev.stats);
        out += sse(u);
    }
    return out + "data: [DONE]\n\n";
}

void ChatReply::add(const GenEvent& ev) {
    text_ += text_of(ev);
    take_logprobs(ev);
    if (ev.done) last_ = ev;
}

json ChatReply::body() const {
    const chat::ParsedOutput parsed = parse_chat_reply(text_, fmt_, reasoning_open_, tools_, opt_.make_tool_id);
    json choice = json::object();
    choice["index"] = 0;
    choice["message"] = parsed.to_message();
    choice["logprobs"] = opt_.logprobs ? json{{"content", logprobs_}} : json(nullptr);
    choice["finish_reason"] = parsed.tool_calls.empty() ? finish_reason_name(last_.finish) : "tool_calls";
    json b = json::object();
    b["id"] = opt_.id;
    b["object"] = "chat.completion";
    b["created"] = opt_.created;
    b["model"] = opt_.model;
    b["system_fingerprint"] = "rotor";
    b["choices"] = json::array({std::move(choice)});
    b["usage"] = usage_json(last_.stats);
    b["timings"] = timings_json(last_.stats);
    return b;
}

// ---- completions

CompletionReply::CompletionReply(const Vocab& vocab, ReplyOptions opt) : vocab_(vocab), opt_(std::move(opt)) {}

json CompletionReply::base() const {
    json b = json::object();
    b["id"] = opt_.id;
    b["object"] = "text_completion";
    b["created"] = opt_.created;
    b["model"] = opt_.model;
    b["system_fingerprint"] = "rotor";
    return b;
}

// Legacy completions logprobs: parallel arrays, alternatives as {token: logprob} objects, offsets into
// the generated text.
void CompletionReply::take_logprobs(const GenEvent& ev) {
    if (!opt_.logprobs) return;
    for (const GenToken& t : ev.tokens) {
        if (!listed(vocab_, t, opt_.ignore_eos)) continue;
        const std::string& piece = vocab_.token_to_piece(t.id);
        tokens_.push_back(utf8_sanitize(piece));
        token_logprobs_.push_back(finite_logprob(t.logprob));
        json alt = json::object();
        for (const TokenLogprob& a : t.top) alt[utf8_sanitize(vocab_.token_to_piece(a.token))] = finite_logprob(a.logprob);
        top_.push_back(std::move(alt));
        offsets_.push_back(offset_);
        offset_ += piece.size();
    }
}

json CompletionReply::logprobs_json() {
    json j = {{"tokens", std::move(tokens_)}, {"token_logprobs", std::move(token_logprobs_)}, {"top_logprobs", std::move(top_)},
              {"text_offset", std::move(offsets_)}};
    tokens_ = token_logprobs_ = top_ = offsets_ = json::array();
    return j;
}

std::string CompletionReply::stream(const GenEvent& ev) {
    if (ev.done && ev.finish == FinishReason::Error) return stream_error(ev.error);
    take_logprobs(ev);
    std::string out;
    if (!ev.text.empty() || ev.done) {
        json c = json::object();
        c["text"] = ev.text;
        c["index"] = 0;
        c["logprobs"] = opt_.logprobs && !tokens_.empty() ? logprobs_json() : json(nullptr);
        c["finish_reason"] = ev.done ? json(finish_reason_name(ev.finish)) : json(nullptr);
        json b = base();
        b["choices"] = json::array({std::move(c)});
        if (opt_.include_usage) b["usage"] = nullptr;
        if (ev.done) b["timings"] = timings_json(ev.stats);
        out += sse(b);
    }
    if (!ev.done) return out;
    if (opt_.include_usage) {
        json u = base();
        u["choices"] = json::array();
        u["usage"] = usage_json(ev.stats);
        out += sse(u);
    }
    return out + "data: [DONE]\n\n";
}

void CompletionReply::add(const GenEvent& ev) {
    text_ += ev.text;
    take_logprobs(ev);
    if (ev.done) last_ = ev;
}

json CompletionReply::body() const {
    json c = json::object();
    c["text"] = text_;
    c["index"] = 0;
    c["logprobs"] = opt_.logprobs ? json{{"tokens", tokens_}, {"token_logprobs", token_logprobs_}, {"top_logprobs", top_},
                                         {"text_offset", offsets_}}
                                  : json(nullptr);
    c["finish_reason"] = finish_reason_name(last_.finish);
    json b = base();
    b["choices"] = json::array({std::move(c)});
    b["usage"] = usage_json(last_.stats);
    b["timings"] = timings_json(last_.stats);
    return b;
}

}  // namespace rotor::server
