// Gemma 4 chat at the API layer: the format detected from its real template, streamed deltas that
// concatenate to the non-streamed reply however the text is split (every byte, random pieces), and
// replies built from canned token events with a Gemma 4 vocabulary, where the channel, tool-call and
// quote tokens are control tokens the detokenizer drops and the reply must put back.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "chat/chat_render.h"
#include "gguf/gguf.h"
#include "server/chat_stream.h"
#include "server/reply.h"
#include "testdata.h"
#include "tokenizer/vocab.h"

namespace rotor::server {
namespace {

using ojson = nlohmann::ordered_json;

const ojson kTools = ojson::parse(R"([{"type":"function","function":{"name":"get_weather",
    "parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}}])");

std::string gemma4_template_path() { return test::testdata("templates/llama.cpp/google-gemma-4-31B-it.jinja"); }

chat::ChatFormat gemma4_format() {
    std::ifstream f(gemma4_template_path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return chat::detect_chat_format(ss.str());
}

std::string fixed_id() { return "call_fixed"; }

struct Streamed {
    std::string reasoning, content, content_before_end;
    ChatStreamParser::Final final;
};

Streamed stream(const std::string& text, const chat::ChatFormat& f, const ojson* tools, const std::vector<size_t>& cuts) {
    ChatStreamParser p(f, false, tools);
    Streamed s;
    size_t at = 0;
    for (size_t cut : cuts) {
        ChatDelta d = p.push(std::string_view(text).substr(at, cut - at));
        at = cut;
        s.reasoning += d.reasoning;
        s.content += d.content;
    }
    s.content_before_end = s.content;
    s.final = p.finish(fixed_id);
    s.reasoning += s.final.delta.reasoning;
    s.content += s.final.delta.content;
    return s;
}

void check_consistent(const std::string& text, const chat::ChatFormat& f, const ojson* tools) {
    const chat::ParsedOutput whole = parse_chat_reply(text, f, false, tools, fixed_id);
    std::vector<std::vector<size_t>> splits;
    std::vector<size_t> bytes;
    for (size_t i = 1; i <= text.size(); i++) bytes.push_back(i);
    splits.push_back(bytes);
    std::mt19937 rng(5);
    for (int trial = 0; trial < 30; trial++) {
        std::vector<size_t> cuts;
        for (size_t i = 0; i < text.size();) {
            i = std::min(text.size(), i + 1 + rng() % 9);
            cuts.push_back(i);
        }
        splits.push_back(cuts);
    }
    for (const auto& cuts : splits) {
        Streamed s = stream(text, f, tools, cuts);
        EXPECT_EQ(s.reasoning, whole.reasoning_content) << text;
        EXPECT_EQ(s.content, whole.content) << text;
        ASSERT_EQ(s.final.parsed.tool_calls.size(), whole.tool_calls.size()) << text;
        for (size_t k = 0; k < whole.tool_calls.size(); k++) {
            EXPECT_EQ(s.final.parsed.tool_calls[k].name, whole.tool_calls[k].name);
            EXPECT_EQ(s.final.parsed.tool_calls[k].arguments, whole.tool_calls[k].arguments);
        }
        for (const char* tag : {"<|channel", "<channel|", "<|turn>"})
            EXPECT_EQ(s.content_before_end.find(tag), std::string::npos) << text << " leaked " << tag;
        EXPECT_EQ(s.reasoning.find("<channel|"), std::string::npos) << text;
        if (tools) {
            EXPECT_EQ(s.content_before_end.find("<|tool_call"), std::string::npos) << text;
        }
    }
}

TEST(Gemma4Stream, DeltasConcatenateToTheReply) {
    ROTOR_REQUIRE_TESTDATA(gemma4_template_path());
    const chat::ChatFormat f = gemma4_format();
    ASSERT_EQ(f.tool_calls, chat::ToolCallStyle::Gemma4);
    const std::string texts[] = {
        "<|channel>thought\nThe user greets me.<channel|>Hello! How can I help?",
        "Hello!<|channel>thought\n<channel|>",
        "<|channel>thought\nweather<channel|>Let me check.<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>,days:3}<tool_call|>",
        "<|tool_call>call:get_weather{city:<|\"|>A<|\"|>}<tool_call|><|tool_call>call:get_weather{city:<|\"|>B, C<|\"|>}<tool_call|>",
        "<|tool_call>call:get_weather{city:Paris}<tool_call|>",
        "<|turn>model\nHi there.",
        "A<channel|>B",
        "<|channel>thought\nA<channel|>First. <|channel>thought\nB<channel|>Second.",
        "<|channel>thought\ncut off while thinking",
        "",
        "  \n<|channel>thought\nlate<channel|>answer",
        "Use <|channel> x and <|tool_call> y",
        "Plain answer with a < sign, a <|pipe| and <b>tags</b>.",
    };
    for (const auto& t : texts) {
        check_consistent(t, f, &kTools);
        check_consistent(t, f, nullptr);  // no tools offered: tool-call syntax is content
    }
}

TEST(Gemma4Stream, ReasoningStreamsBeforeTheEndAndCallsComeWhole) {
    ROTOR_REQUIRE_TESTDATA(gemma4_template_path());
    const chat::ChatFormat f = gemma4_format();
    const std::string t = "<|channel>thought\nStep one. Step two.<channel|>Checking now."
                          "<|tool_call>call:get_weather{city:<|\"|>Oslo<|\"|>,days:2}<tool_call|>";
    std::vector<size_t> cuts;
    for (size_t i = 1; i <= t.size(); i++) cuts.push_back(i);
    ChatStreamParser p(f, false, &kTools);
    std::string reasoning_seen;
    for (size_t i = 0; i < t.size(); i++) {
        ChatDelta d = p.push(t.substr(i, 1));
        reasoning_seen += d.reasoning;
        if (t.compare(0, i + 1, "<|channel>thought\nStep one.") == 0) {
            EXPECT_EQ(reasoning_seen, "Step one.");  // before the rest was generated
        }
    }
    Streamed s = stream(t, f, &kTools, cuts);
    EXPECT_EQ(s.reasoning, "Step one. Step two.");
    EXPECT_EQ(s.content_before_end, "Checking now.");
    ASSERT_EQ(s.final.parsed.tool_calls.size(), 1u);
    EXPECT_EQ(s.final.parsed.tool_calls[0].name, "get_weather");
    EXPECT_EQ(s.final.parsed.tool_calls[0].arguments, R"({"city":"Oslo","days":2})");
}

// ---- replies from token events with a Gemma 4 vocabulary

const Vocab* gemma4_vocab() {
    static std::unique_ptr<Vocab> v = [] {
        std::unique_ptr<Vocab> p;
        const std::string path = test::testdata("vocab/ggml-vocab-gemma4-from-gemma3-npm.gguf");
        if (std::filesystem::exists(path)) p = std::make_unique<Vocab>(Vocab::from_gguf(gguf::File::open(path)));
        return p;
    }();
    return v.get();
}

// The events the engine makes for `text` (special tokens in it become those tokens) followed by the
// end-of-generation token `end`: its detokenizer renders no control token, and `end` adds no text.
std::vector<GenEvent> events_for(const Vocab& v, const std::string& text, const std::string& end) {
    std::vector<GenEvent> evs;
    std::vector<int32_t> ids = v.tokenize(text, false, true);
    EXPECT_TRUE(v.is_eog(v.find(end))) << end;
    ids.push_back(v.find(end));
    StreamDecoder dec(v);
    for (int32_t id : ids) {
        GenEvent e;
        GenToken t;
        t.id = id;
        e.tokens.push_back(t);
        if (!v.is_eog(id)) e.text = dec.push(id);
        evs.push_back(e);
    }
    GenEvent last;
    last.done = true;
    last.finish = FinishReason::Stop;
    last.text = dec.flush();
    last.stats.n_generated = (int)ids.size();
    evs.push_back(last);
    return evs;
}

ReplyOptions options() {
    ReplyOptions o;
    o.id = "chatcmpl-test";
    o.model = "gemma";
    o.created = 1;
    o.make_tool_id = [] { return std::string("call_x"); };
    return o;
}

// "data: {...}" events of a stream, [DONE] last.
std::vector<ojson> sse(const std::string& s) {
    std::vector<ojson> out;
    size_t pos = 0;
    bool done = false;
    while (pos < s.size()) {
        const size_t end = s.find("\n\n", pos);
        const std::string ev = s.substr(pos, end - pos);
        pos = end + 2;
        if (ev == "data: [DONE]") done = true;
        else out.push_back(ojson::parse(ev.substr(6)));
    }
    EXPECT_TRUE(done);
    return out;
}

struct Both {
    ojson body;                 // the non-streamed response
    std::string reasoning, content;  // the stream's deltas, concatenated
    ojson tool_calls, finish;   // the stream's tool-call delta and finish reason
};

Both reply(const Vocab& v, const chat::ChatFormat& f, const std::string& text, const std::string& end, const ojson* tools) {
    Both b;
    const std::vector<GenEvent> evs = events_for(v, text, end);
    ChatReply whole(v, options(), f, false, tools);
    for (const GenEvent& e : evs) whole.add(e);
    b.body = whole.body();
    ChatReply streamed(v, options(), f, false, tools);
    std::string out;
    for (const GenEvent& e : evs) out += streamed.stream(e);
    for (const ojson& c : sse(out)) {
        if (c["choices"].empty()) continue;
        const ojson& d = c["choices"][0]["delta"];
        if (d.contains("reasoning_content")) b.reasoning += d["reasoning_content"].get<std::string>();
        if (d.contains("content")) b.content += d["content"].get<std::string>();
        if (d.contains("tool_calls")) b.tool_calls = d["tool_calls"];
        if (!c["choices"][0]["finish_reason"].is_null()) b.finish = c["choices"][0]["finish_reason"];
    }
    return b;
}

TEST(Gemma4Reply, ThoughtChannelFromControlTokens) {
    ROTOR_REQUIRE_TESTDATA(gemma4_template_path());
    const Vocab* v = gemma4_vocab();
    if (!v) GTEST_SKIP() << "the Gemma 4 vocabulary is not in the test data";
    const chat::ChatFormat f = gemma4_format();
    const std::string text = "<|channel>thought\nThe user says hello; answer briefly.<channel|>Hello! How can I help you today?";
    ASSERT_EQ(v->tokenize("<|channel>", false, true).size(), 1u);
    ASSERT_TRUE(v->token_to_piece(v->find("<|channel>")).empty());  // the detokenizer drops it
    Both b = reply(*v, f, text, "<turn|>", nullptr);
    const ojson& m = b.body["choices"][0]["message"];
    EXPECT_EQ(m["reasoning_content"], "The user says hello; answer briefly.");
    EXPECT_EQ(m["content"], "Hello! How can I help you today?");
    EXPECT_EQ(b.body["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(b.reasoning, m["reasoning_content"]);
    EXPECT_EQ(b.content, m["content"]);
    EXPECT_EQ(b.finish, "stop");
    // Without the preserved tokens the markers would be lost and the thought would leak into content.
    chat::ChatFormat bare = f;
    bare.preserved_tokens.clear();
    Both lost = reply(*v, bare, text, "<turn|>", nullptr);
    EXPECT_NE(lost.body["choices"][0]["message"]["content"].get<std::string>().find("answer briefly"), std::string::npos);
}

TEST(Gemma4Reply, ToolCallsFromControlTokens) {
    ROTOR_REQUIRE_TESTDATA(gemma4_template_path());
    const Vocab* v = gemma4_vocab();
    if (!v) GTEST_SKIP() << "the Gemma 4 vocabulary is not in the test data";
    const chat::ChatFormat f = gemma4_format();
    // what the template writes for two calls (tests/chat checks it against jinja2's renders); the model
    // ends the turn with <|tool_response>, an end-of-generation token
    const std::string text = "<|channel>thought\nTwo cities.<channel|>Checking both."
                             "<|tool_call>call:get_weather{city:<|\"|>Oslo, Norway<|\"|>,days:2}<tool_call|>"
                             "<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>}<tool_call|>";
    Both b = reply(*v, f, text, "<|tool_response>", &kTools);
    const ojson& m = b.body["choices"][0]["message"];
    EXPECT_EQ(b.body["choices"][0]["finish_reason"], "tool_calls");
    EXPECT_EQ(m["reasoning_content"], "Two cities.");
    EXPECT_EQ(m["content"], "Checking both.");
    ASSERT_EQ(m["tool_calls"].size(), 2u);
    EXPECT_EQ(m["tool_calls"][0]["id"], "call_x");
    EXPECT_EQ(m["tool_calls"][0]["function"]["name"], "get_weather");
    EXPECT_EQ(m["tool_calls"][0]["function"]["arguments"], R"({"city":"Oslo, Norway","days":2})");
    EXPECT_EQ(m["tool_calls"][1]["function"]["arguments"], R"({"city":"Paris"})");
    // streamed: the same text, then both calls whole at the end
    EXPECT_EQ(b.reasoning, "Two cities.");
    EXPECT_EQ(b.content, "Checking both.");
    EXPECT_EQ(b.finish, "tool_calls");
    ASSERT_EQ(b.tool_calls.size(), 2u);
    EXPECT_EQ(b.tool_calls[1]["index"], 1);
    EXPECT_EQ(b.tool_calls[1]["function"]["arguments"], R"({"city":"Paris"})");
    // no tools offered: the call is text, with its markers
    Both plain = reply(*v, f, text, "<|tool_response>", nullptr);
    EXPECT_EQ(plain.body["choices"][0]["finish_reason"], "stop");
    EXPECT_NE(plain.body["choices"][0]["message"]["content"].get<std::string>().find("<|tool_call>call:get_weather{"),
              std::string::npos);
}

}  // namespace
}  // namespace rotor::server
