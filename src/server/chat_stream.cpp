#include "server/chat_stream.h"

#include <algorithm>

namespace rotor::server {

namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view ltrim(std::string_view s) {
    while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
    return s;
}

std::vector<std::string> tool_markers(chat::ToolCallStyle s) {
    switch (s) {
        case chat::ToolCallStyle::Hermes: return {"<tool_call>"};
        case chat::ToolCallStyle::QwenXml: return {"<tool_call>", "<function="};
        case chat::ToolCallStyle::Llama3: return {"<|python_tag|>"};
        case chat::ToolCallStyle::Gemma4: return {"<|tool_call>"};
        case chat::ToolCallStyle::None: break;
    }
    return {};
}

bool has_tools(const nlohmann::ordered_json* tools) { return tools && tools->is_array() && !tools->empty(); }

}  // namespace

ChatStreamParser::ChatStreamParser(const chat::ChatFormat& fmt, bool reasoning_open, const nlohmann::ordered_json* tools)
    : fmt_(fmt), fmt_plain_(fmt), reasoning_open_(reasoning_open), tools_(has_tools(tools) ? tools : nullptr) {
    if (!tools_) fmt_.tool_calls = chat::ToolCallStyle::None;
    fmt_plain_.tool_calls = chat::ToolCallStyle::None;
    if (fmt_.reasoning) {
        markers_.push_back(fmt_.think_open);
        markers_.push_back(fmt_.think_close);
    }
    if (fmt_.channels) markers_.push_back("<|turn>model\n");  // skipped at the start (see ChatFormat)
    for (auto& m : tool_markers(fmt_.tool_calls)) markers_.push_back(m);
}

ChatDelta ChatStreamParser::push(std::string_view piece) {
    text_.append(piece);
    // Hold back a tail that could still grow into a marker ("</thi" before "</think>").
    size_t hold = 0;
    for (const std::string& m : markers_) {
        for (size_t k = std::min(m.size() - 1, text_.size()); k > hold; k--) {
            if (std::string_view(text_).substr(text_.size() - k) == std::string_view(m).substr(0, k)) {
                hold = k;
                break;
            }
        }
    }
    chat::ParseOptions o;
    o.reasoning_open = reasoning_open_;
    const chat::ParsedOutput p =
        chat::parse_model_output(std::string_view(text_).substr(0, text_.size() - hold), fmt_plain_, o);
    return diff(p, false);
}

ChatDelta ChatStreamParser::diff(const chat::ParsedOutput& p, bool final) {
    ChatDelta d;
    if (starts_with(p.reasoning_content, sent_reasoning_)) {
        d.reasoning = p.reasoning_content.substr(sent_reasoning_.size());
        sent_reasoning_ = p.reasoning_content;
    }
    std::string content = p.content;
    if (!final) {
        if (content_frozen_) return d;
        if (fmt_.tool_calls != chat::ToolCallStyle::None) {
            size_t cut = std::string::npos;
            for (const auto& m : tool_markers(fmt_.tool_calls)) cut = std::min(cut, content.find(m));
            // Llama 3.x writes a tool call as a bare JSON object: hold a reply that starts like one.
            if (fmt_.tool_calls == chat::ToolCallStyle::Llama3 && starts_with(ltrim(content), "{")) cut = 0;
            if (cut != std::string::npos) {
                content.resize(cut);
                content_frozen_ = true;
            }
            // Whitespace before a tool call is dropped by the final parse: hold it until then.
            while (!content.empty() && is_ws(content.back())) content.pop_back();
        }
        // Before anything was sent, whitespace may still precede an opening <think>.
        if (fmt_.reasoning && !reasoning_open_ && sent_content_.empty() && sent_reasoning_.empty() &&
            ltrim(content).empty())
            return d;
    }
    if (starts_with(content, sent_content_)) {
        d.content = content.substr(sent_content_.size());
        sent_content_ = content;
    }
    return d;
}

ChatStreamParser::Final ChatStreamParser::finish(std::function<std::string()> make_id) {
    Final f;
    f.parsed = parse_chat_reply(text_, fmt_, reasoning_open_, tools_, std::move(make_id));
    f.delta = diff(f.parsed, true);
    return f;
}

chat::ParsedOutput parse_chat_reply(std::string_view text, const chat::ChatFormat& fmt, bool reasoning_open,
                                    const nlohmann::ordered_json* tools, std::function<std::string()> make_id) {
    chat::ChatFormat f = fmt;
    if (!has_tools(tools)) f.tool_calls = chat::ToolCallStyle::None;
    chat::ParseOptions o;
    o.reasoning_open = reasoning_open;
    o.tools = has_tools(tools) ? tools : nullptr;
    o.make_id = std::move(make_id);
    return chat::parse_model_output(text, f, o);
}

}  // namespace rotor::server
