// Engine events -> OpenAI responses. One object per request turns the GenEvents of its GenTask into
// either Server-Sent Events (streaming) or one response body, with no I/O: the API handler writes what
// these return, and the tests feed them canned events (a model output of our choosing) to check
// tool calls, reasoning, logprobs and finish reasons end to end at the engine boundary.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "server/chat_stream.h"
#include "server/engine.h"
#include "server/request.h"

namespace rotor {
class Vocab;
}

namespace rotor::server {

struct ReplyOptions {
    std::string id;      // "chatcmpl-..." / "cmpl-..."
    std::string model;
    int64_t created = 0;
    bool include_usage = false;
    bool logprobs = false;
    bool ignore_eos = false;  // end-of-generation tokens are then ordinary tokens (listed in logprobs)
    std::function<std::string()> make_tool_id;  // default: random "call_..." ids
};

json usage_json(const GenStats& s);
json timings_json(const GenStats& s);

class ChatReply {
public:
    ChatReply(const Vocab& vocab, ReplyOptions opt, const chat::ChatFormat& fmt, bool reasoning_open, const json* tools);

    // Streaming: the SSE text ("data: ...\n\n" events) to send for this event; the first call also
    // sends the role chunk, the final one the finish chunk, the usage chunk and "data: [DONE]".
    std::string stream(const GenEvent& ev);
    // Not streaming: add every event, then body() once the last (done) one was added.
    void add(const GenEvent& ev);
    json body() const;

private:
    json chunk(json delta, json logprobs, json finish) const;
    void take_logprobs(const GenEvent& ev);
    // The event's text with the format's preserved control tokens written where they were sampled.
    std::string text_of(const GenEvent& ev) const;

    const Vocab& vocab_;
    ReplyOptions opt_;
    chat::ChatFormat fmt_;
    bool reasoning_open_;
    const json* tools_;
    ChatStreamParser parser_;
    std::vector<int32_t> shown_;  // control tokens the detokenizer drops but the parser needs (Gemma 4's)
    bool started_ = false;
    std::string text_;
    json logprobs_ = json::array();  // pending (streaming) or all (not streaming)
    GenEvent last_;
};

class CompletionReply {
public:
    CompletionReply(const Vocab& vocab, ReplyOptions opt);
    std::string stream(const GenEvent& ev);
    void add(const GenEvent& ev);
    json body() const;

private:
    json base() const;
    void take_logprobs(const GenEvent& ev);
    json logprobs_json();

    const Vocab& vocab_;
    ReplyOptions opt_;
    std::string text_;
    // legacy logprobs, pending (streaming) or all (not streaming)
    json tokens_ = json::array(), token_logprobs_ = json::array(), top_ = json::array(), offsets_ = json::array();
    size_t offset_ = 0;
    GenEvent last_;
};

// An error event in a stream: {"error": {...}} then [DONE].
std::string stream_error(const std::string& message);

}  // namespace rotor::server
