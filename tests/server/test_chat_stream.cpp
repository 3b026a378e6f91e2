// Streaming chat deltas (src/server/chat_stream.h) with canned model outputs: however the text is split
// into pieces, the streamed reasoning and content concatenate to exactly the non-streamed reply, tool
// calls come out whole at the end, and no piece of a tool-call or reasoning tag leaks into content.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "chat/chat_render.h"
#include "server/chat_stream.h"
#include "testdata.h"

namespace rotor::server {
namespace {

using chat::ChatFormat;
using chat::ToolCallStyle;
using ojson = nlohmann::ordered_json;

ChatFormat fmt(ToolCallStyle s, bool reasoning) {
    ChatFormat f;
    f.tool_calls = s;
    f.reasoning = reasoning;
    return f;
}

const ojson kTools = ojson::parse(R"([{"type":"function","function":{"name":"get_weather",
    "parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}}])");

std::string fixed_id() { return "call_fixed"; }

struct Streamed {
    std::string reasoning, content;
    int deltas_before_end = 0;
    std::string content_before_end;
    ChatStreamParser::Final final;
};

Streamed stream(const std::string& text, const ChatFormat& f, bool open, const ojson* tools, std::mt19937& rng) {
    ChatStreamParser p(f, open, tools);
    Streamed s;
    size_t i = 0;
    while (i < text.size()) {
        const size_t n = 1 + rng() % 7;
        ChatDelta d = p.push(std::string_view(text).substr(i, n));
        i += n;
        s.reasoning += d.reasoning;
        s.content += d.content;
        if (!d.empty()) s.deltas_before_end++;
    }
    s.content_before_end = s.content;
    s.final = p.finish(fixed_id);
    s.reasoning += s.final.delta.reasoning;
    s.content += s.final.delta.content;
    return s;
}

void check_consistent(const std::string& text, const ChatFormat& f, bool open, const ojson* tools) {
    const chat::ParsedOutput whole = parse_chat_reply(text, f, open, tools, fixed_id);
    std::mt19937 rng(1);
    for (int trial = 0; trial < 40; trial++) {
        Streamed s = stream(text, f, open, tools, rng);
        EXPECT_EQ(s.reasoning, whole.reasoning_content) << text;
        EXPECT_EQ(s.content, whole.content) << text;
        ASSERT_EQ(s.final.parsed.tool_calls.size(), whole.tool_calls.size()) << text;
        for (size_t k = 0; k < whole.tool_calls.size(); k++) {
            EXPECT_EQ(s.final.parsed.tool_calls[k].name, whole.tool_calls[k].name);
            EXPECT_EQ(s.final.parsed.tool_calls[k].arguments, whole.tool_calls[k].arguments);
        }
        for (const char* tag : {"<think", "</think"})
            EXPECT_EQ(s.content_before_end.find(tag), std::string::npos) << text << " leaked " << tag;
        if (!tools) continue;  // without tools, tool-call syntax is ordinary content
        for (const char* tag : {"<tool_call", "<function=", "<|python_tag|>"})
            EXPECT_EQ(s.content_before_end.find(tag), std::string::npos) << text << " leaked " << tag;
    }
}

TEST(ChatStream, HermesWithReasoning) {
    const ChatFormat f = fmt(ToolCallStyle::Hermes, true);
    const std::string texts[] = {
        "<think>\nLet me think about it.\n</think>\n\nThe answer is 4.",
        "<think>\nNeed the weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
        "Sure thing.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>",
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"A\"}}\n</tool_call>\n<tool_call>\n"
        "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"B\"}}\n</tool_call>",
        "<tool_call>{not json</tool_call>",
        "Plain answer with a < sign and <b>tags</b>.",
        "  \n<think>late</think>answer",
        "<think>cut off while thinking",
        "",
    };
    for (const auto& t : texts) {
        check_consistent(t, f, false, &kTools);
        check_consistent(t, f, false, nullptr);  // no tools offered: tool syntax is content
    }
}

TEST(ChatStream, ReasoningIsStreamedBeforeTheEnd) {
    std::mt19937 rng(3);
    const std::string t = "<think>\nStep one. Step two. Step three.\n</think>\n\nDone, and more text follows here.";
    Streamed s = stream(t, fmt(ToolCallStyle::Hermes, true), false, &kTools, rng);
    EXPECT_GT(s.deltas_before_end, 3);
    EXPECT_EQ(s.content_before_end.substr(0, 4), "Done");
    EXPECT_EQ(s.reasoning, "Step one. Step two. Step three.");
}

TEST(ChatStream, ContentBeforeAToolCallStreamsThenCallAtEnd) {
    std::mt19937 rng(4);
    const std::string t = "Checking the weather now.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
    Streamed s = stream(t, fmt(ToolCallStyle::Hermes, false), false, &kTools, rng);
    EXPECT_EQ(s.content_before_end.substr(0, 25), "Checking the weather now.");
    ASSERT_EQ(s.final.parsed.tool_calls.size(), 1u);
    EXPECT_EQ(s.final.parsed.tool_calls[0].name, "get_weather");
    EXPECT_EQ(nlohmann::json::parse(s.final.parsed.tool_calls[0].arguments)["city"], "Oslo");
    EXPECT_EQ(s.final.parsed.tool_calls[0].id, "call_fixed");
}

TEST(ChatStream, QwenXmlToolCalls) {
    const ChatFormat f = fmt(ToolCallStyle::QwenXml, true);
    const std::string t =
        "<think>\nweather\n</think>\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>";
    check_consistent(t, f, false, &kTools);
    const chat::ParsedOutput p = parse_chat_reply(t, f, false, &kTools, fixed_id);
    ASSERT_EQ(p.tool_calls.size(), 1u);
    const auto args = nlohmann::json::parse(p.tool_calls[0].arguments);
    EXPECT_EQ(args["city"], "Paris");
    EXPECT_EQ(args["days"], 3);  // typed from the tool's schema
    check_consistent("I will look.\n<function=get_weather>\n<parameter=city>\nX\n</parameter>\n</function>", f, false, &kTools);
}

TEST(ChatStream, Llama3ToolCalls) {
    const ChatFormat f = fmt(ToolCallStyle::Llama3, false);
    const std::string call = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}";
    check_consistent(call, f, false, &kTools);
    const chat::ParsedOutput p = parse_chat_reply(call, f, false, &kTools, fixed_id);
    ASSERT_EQ(p.tool_calls.size(), 1u);
    EXPECT_EQ(p.tool_calls[0].name, "get_weather");
    EXPECT_TRUE(p.content.empty());
    check_consistent("Hello there, no tools needed.", f, false, &kTools);
    check_consistent("{ this is not a call }", f, false, &kTools);
    check_consistent("<|python_tag|>get_weather(city=\"Paris\")", f, false, &kTools);
}

TEST(ChatStream, PromptOpenedReasoning) {
    const ChatFormat f = fmt(ToolCallStyle::Hermes, true);
    const std::string t = "The user greets me.\n</think>\n\nHello!";
    check_consistent(t, f, true, nullptr);
    const chat::ParsedOutput p = parse_chat_reply(t, f, true, nullptr);
    EXPECT_EQ(p.reasoning_content, "The user greets me.");
    EXPECT_EQ(p.content, "Hello!");
}

// The formats the real templates declare (detected the way the server detects them).
TEST(ChatStream, RealTemplatesDetectTheirFormats) {
    const std::string dir = test::testdata("templates/llama.cpp");
    ROTOR_REQUIRE_TESTDATA(dir);
    auto read = [&](const std::string& name) {
        std::ifstream f(dir + "/" + name);
        std::stringstream ss;
        ss << f.rdbuf();
        return ss.str();
    };
    EXPECT_EQ(chat::detect_chat_format(read("Qwen-Qwen3-0.6B.jinja")).tool_calls, ToolCallStyle::Hermes);
    EXPECT_TRUE(chat::detect_chat_format(read("Qwen-Qwen3-0.6B.jinja")).reasoning);
    EXPECT_EQ(chat::detect_chat_format(read("Qwen3.5-4B.jinja")).tool_calls, ToolCallStyle::QwenXml);
    EXPECT_EQ(chat::detect_chat_format(read("meta-llama-Llama-3.1-8B-Instruct.jinja")).tool_calls, ToolCallStyle::Llama3);
    EXPECT_EQ(chat::detect_chat_format(read("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja")).tool_calls,
              ToolCallStyle::Hermes);
}

}  // namespace
}  // namespace rotor::server
