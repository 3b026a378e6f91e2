// libFuzzer target: arbitrary bytes as a chat template, rendered over a small fixed conversation
// with tools, then the same bytes parsed as model output in every tool-call style.
// A TemplateError (syntax, type, limit...) is an expected outcome; a crash, hang, leak, sanitizer
// report or any other exception escaping is a bug. Tight limits keep each input fast.
#include "chat/chat_parse.h"
#include "chat/chat_render.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

using rotor::chat::json;

const json& messages() {
    static const json m = json::parse(R"([
      {"role": "system", "content": "You are terse."},
      {"role": "user", "content": "Weather in Paris? \u00e9\u2028"},
      {"role": "assistant", "content": "", "reasoning_content": "need a tool",
       "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "n": [1, 2.5, null, true]}}}]},
      {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "18C"},
      {"role": "user", "content": [{"type": "text", "text": "thanks"}]}
    ])");
    return m;
}

const json& tools() {
    static const json t = json::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
      "required": ["city"]}}}])");
    return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view src(reinterpret_cast<const char*>(data), size);

    rotor::jinja::RenderOptions opts;
    opts.max_output_bytes = 1 << 20;
    opts.max_list_items = 1 << 16;
    opts.max_work = 200'000;
    opts.max_depth = 200;
    std::tm now{};
    now.tm_year = 124;
    now.tm_mon = 6;
    now.tm_mday = 26;
    opts.now = now;
    try {
        rotor::chat::render_chat(src, messages(), size % 2 ? tools() : json(), size % 3 != 0,
                                 json{{"enable_thinking", size % 5 != 0}}, "<s>", "</s>", opts);
    } catch (const rotor::jinja::TemplateError&) {
    }

    json t = tools();
    for (auto style : {rotor::chat::ToolCallStyle::Hermes, rotor::chat::ToolCallStyle::QwenXml,
                       rotor::chat::ToolCallStyle::Llama3}) {
        rotor::chat::ChatFormat fmt;
        fmt.tool_calls = style;
        fmt.reasoning = true;
        rotor::chat::ParseOptions po;
        po.tools = &t;
        po.reasoning_open = size % 2 == 0;
        po.make_id = [] { return std::string("call_x"); };
        auto out = rotor::chat::parse_model_output(src, fmt, po);
        (void)out.to_message().dump(-1, ' ', false, json::error_handler_t::replace);
    }
    return 0;
}
