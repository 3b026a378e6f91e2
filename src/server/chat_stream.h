// Streaming a chat reply as OpenAI deltas: the generated text grows piece by piece and is split into
// reasoning_content and content as it arrives, while text that may still turn into a tool call or a
// reasoning tag is held back. Tool calls are only emitted at the end, once complete (a half-written
// call cannot be parsed), by the same parse_model_output the non-streaming reply uses, so a streamed
// reply concatenates to exactly the non-streamed one.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_parse.h"

namespace rotor::server {

struct ChatDelta {
    std::string reasoning;  // new reasoning_content
    std::string content;    // new content
    bool empty() const { return reasoning.empty() && content.empty(); }
};

class ChatStreamParser {
public:
    // fmt: the model family's conventions. reasoning_open: the prompt already opened a <think> block.
    // tools: the request's tools (nullptr / null when none are offered: tool-call syntax is then plain
    // content, as llama-server does).
    ChatStreamParser(const chat::ChatFormat& fmt, bool reasoning_open, const nlohmann::ordered_json* tools);

    ChatDelta push(std::string_view piece);

    struct Final {
        ChatDelta delta;               // what completes the text sent so far
        chat::ParsedOutput parsed;     // the whole reply (as the non-streaming response has it)
    };
    // End of generation. make_id names tool calls (tests pass a fixed one).
    Final finish(std::function<std::string()> make_id = {});

    const std::string& text() const { return text_; }

private:
    ChatDelta diff(const chat::ParsedOutput& p, bool final);

    chat::ChatFormat fmt_;        // with tool calls only when tools are offered
    chat::ChatFormat fmt_plain_;  // reasoning only: what the stream parses incrementally
    bool reasoning_open_;
    const nlohmann::ordered_json* tools_;
    std::vector<std::string> markers_;  // held back while a suffix could still become one
    std::string text_;
    std::string sent_reasoning_, sent_content_;
    bool content_frozen_ = false;  // a tool call started: content waits for the end
};

// One-shot parse of a finished reply with the same rules (non-streaming responses).
chat::ParsedOutput parse_chat_reply(std::string_view text, const chat::ChatFormat& fmt, bool reasoning_open,
                                    const nlohmann::ordered_json* tools,
                                    std::function<std::string()> make_id = {});

}  // namespace rotor::server
