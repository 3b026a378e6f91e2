// Chat prompts from a model's chat template, rendered as Hugging Face transformers'
// apply_chat_template(messages, tools=..., add_generation_prompt=..., **kwargs) renders them.
#pragma once
#include "chat/chat_parse.h"
#include "chat/jinja_eval.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace rotor::chat {

using json = nlohmann::ordered_json;  // key order matters: templates print dicts in insertion order

// One-shot render. `tools` null means no tools (the template sees tools=None); `extra_kwargs` is an
// object of further template variables (e.g. {"enable_thinking": false}) and may override
// bos_token/eos_token/documents. Throws jinja::TemplateError, or std::invalid_argument when
// messages is not an array.
std::string render_chat(std::string_view template_source, const json& messages, const json& tools,
                        bool add_generation_prompt, const json& extra_kwargs, std::string_view bos_token,
                        std::string_view eos_token, const jinja::RenderOptions& opts = {});

// A template parsed once (at model load) and rendered per request.
class ChatTemplate {
public:
    ChatTemplate(std::string_view source, std::string bos_token, std::string eos_token);

    std::string render(const json& messages, const json& tools, bool add_generation_prompt,
                       const json& extra_kwargs = json::object(), const jinja::RenderOptions& opts = {}) const;

    // Tool-call and reasoning conventions of the model family, detected from the template source.
    const ChatFormat& format() const { return format_; }

private:
    jinja::Template tmpl_;
    std::string bos_, eos_;
    ChatFormat format_;
};

// A generation prompt the template forgot, added as llama.cpp adds it: Gemma 4's template leaves the
// prompt at the end of a turn ("<turn|>\n") when an assistant message with tool calls, their results
// and content comes last; the model's turn is then opened ("<|turn>model\n"). Other formats: as is.
void complete_generation_prompt(std::string& prompt, const ChatFormat& fmt);

// OpenAI clients send tool-call `arguments` as JSON text; Hugging Face templates expect an object
// (they iterate it or tojson it). Returns messages with every parseable arguments string replaced
// by the object it encodes; anything else is left as it was.
json normalize_tool_call_arguments(const json& messages);

}  // namespace rotor::chat
