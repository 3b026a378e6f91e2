#include "chat/chat_render.h"

#include <stdexcept>

namespace rotor::chat {

namespace {

jinja::Dict template_vars(const json& messages, const json& tools, bool add_generation_prompt, const json& extra_kwargs,
                          std::string_view bos_token, std::string_view eos_token) {
    if (!messages.is_array()) throw std::invalid_argument("render_chat: messages must be a JSON array");
    if (!extra_kwargs.is_null() && !extra_kwargs.is_object())
        throw std::invalid_argument("render_chat: extra_kwargs must be a JSON object");
    // transformers: render(messages=..., tools=..., documents=..., add_generation_prompt=...,
    //                      **{**special_tokens_map, **kwargs})
    jinja::Dict vars;
    vars.set("bos_token", jinja::Value(std::string(bos_token)));
    vars.set("eos_token", jinja::Value(std::string(eos_token)));
    vars.set("documents", jinja::Value::none());
    if (extra_kwargs.is_object())
        for (auto it = extra_kwargs.begin(); it != extra_kwargs.end(); ++it) vars.set(it.key(), jinja::from_json(it.value()));
    vars.set("messages", jinja::from_json(messages));
    vars.set("tools", tools.is_null() ? jinja::Value::none() : jinja::from_json(tools));
    vars.set("add_generation_prompt", jinja::Value(add_generation_prompt));
    return vars;
}

}  // namespace

std::string render_chat(std::string_view template_source, const json& messages, const json& tools,
                        bool add_generation_prompt, const json& extra_kwargs, std::string_view bos_token,
                        std::string_view eos_token, const jinja::RenderOptions& opts) {
    jinja::Template t(template_source);
    return t.render(template_vars(messages, tools, add_generation_prompt, extra_kwargs, bos_token, eos_token), opts);
}

ChatTemplate::ChatTemplate(std::string_view source, std::string bos_token, std::string eos_token)
    : tmpl_(source), bos_(std::move(bos_token)), eos_(std::move(eos_token)), format_(detect_chat_format(source)) {}

std::string ChatTemplate::render(const json& messages, const json& tools, bool add_generation_prompt,
                                 const json& extra_kwargs, const jinja::RenderOptions& opts) const {
    return tmpl_.render(template_vars(messages, tools, add_generation_prompt, extra_kwargs, bos_, eos_), opts);
}

void complete_generation_prompt(std::string& prompt, const ChatFormat& fmt) {
    static constexpr std::string_view turn_end = "<turn|>\n";
    if (fmt.tool_calls != ToolCallStyle::Gemma4 || !fmt.channels) return;
    if (prompt.size() >= turn_end.size() && std::string_view(prompt).substr(prompt.size() - turn_end.size()) == turn_end)
        prompt += "<|turn>model\n";
}

json normalize_tool_call_arguments(const json& messages) {
    json out = messages;
    if (!out.is_array()) return out;
    for (auto& m : out) {
        if (!m.is_object() || !m.contains("tool_calls") || !m["tool_calls"].is_array()) continue;
        for (auto& call : m["tool_calls"]) {
            if (!call.is_object()) continue;
            json* fn = call.contains("function") && call["function"].is_object() ? &call["function"] : &call;
            if (!fn->contains("arguments") || !(*fn)["arguments"].is_string()) continue;
            json parsed = json::parse((*fn)["arguments"].get<std::string>(), nullptr, false);
            if (!parsed.is_discarded()) (*fn)["arguments"] = std::move(parsed);
        }
    }
    return out;
}

}  // namespace rotor::chat
