// What comes back from the model: splitting generated text into reasoning, content and
// OpenAI-style tool calls, by the conventions of the model family (detected from its template).
// Pure functions over text; malformed tool calls stay in the content, they never throw.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace rotor::chat {

enum class ToolCallStyle {
    None,
    Hermes,   // <tool_call>{"name": ..., "arguments": {...}}</tool_call> (Qwen2.5/Qwen3, Hermes 2/3)
    QwenXml,  // <tool_call><function=name><parameter=x>v</parameter></function></tool_call> (Qwen3.5, Qwen3-Coder)
    Llama3,   // {"name": ..., "parameters": {...}} or <|python_tag|>... (Llama 3.1/3.2/3.3)
    Gemma4,   // <|tool_call>call:name{key:<|"|>text<|"|>,n:1,xs:[...]}<tool_call|> (Gemma 4)
};

struct ChatFormat {
    ToolCallStyle tool_calls = ToolCallStyle::None;
    bool reasoning = false;  // the model writes <think>...</think> before its answer
    std::string think_open = "<think>", think_close = "</think>";
    // Gemma 4: reasoning is the "thought" channel, <|channel>thought\n...<channel|>, and such a block
    // may also come later in the reply (an empty one is often written after the answer); every block
    // goes to the reasoning, stray <|channel> / <channel|> tokens are dropped, and a leading
    // "<|turn>model\n" is skipped.
    bool channels = false;
    // Control tokens the parser must see in the generated text (a detokenizer drops control tokens):
    // the reply renders these where the model sampled them (llama.cpp's "preserved tokens").
    std::vector<std::string> preserved_tokens;
};

ChatFormat detect_chat_format(std::string_view template_source);

// True when a rendered prompt ends inside an opened reasoning block (the generation prompt already
// wrote "<think>"), so the generated text starts with reasoning and has no opening tag.
bool prompt_opens_reasoning(std::string_view prompt, const ChatFormat& fmt);

struct ToolCall {
    std::string id;
    std::string name;
    std::string arguments;  // JSON object text
};

struct ParsedOutput {
    std::string content;
    std::string reasoning_content;
    std::vector<ToolCall> tool_calls;
    // {"role": "assistant", "content": ..., "reasoning_content"?: ..., "tool_calls"?: [...]} (OpenAI shape;
    // content is null when there are tool calls and no text)
    nlohmann::ordered_json to_message() const;
};

struct ParseOptions {
    bool reasoning_open = false;                 // see prompt_opens_reasoning
    const nlohmann::ordered_json* tools = nullptr;  // OpenAI tools: parameter types for XML-style values
    std::function<std::string()> make_id;        // default: "call_" + 24 random alphanumerics
};

ParsedOutput parse_model_output(std::string_view text, const ChatFormat& fmt, const ParseOptions& opts = {});

}  // namespace rotor::chat
