// OpenAI responses from canned engine events (src/server/reply.h): the model output is chosen here, so
// tool calls, reasoning, finish reasons, logprobs and the SSE framing are checked end to end at the
// engine boundary, streamed and not.
#include <gtest/gtest.h>

#include "server/reply.h"
#include "server_util.h"

namespace rotor::test {
namespace {

using server::ChatReply;
using server::CompletionReply;
using server::FinishReason;
using server::GenEvent;
using server::ReplyOptions;
using ojson = nlohmann::ordered_json;

const ojson kTools = ojson::parse(R"([{"type":"function","function":{"name":"get_weather",
    "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}])");

// One event per token of `text` (ASCII, so every piece is whole UTF-8), then the final event.
std::vector<GenEvent> events_for(const Vocab& v, const std::string& text, FinishReason finish, bool eos = false) {
    std::vector<GenEvent> evs;
    std::vector<int32_t> ids = v.tokenize(text, false, false);
    if (eos) ids.push_back(v.eos());
    for (int32_t id : ids) {
        GenEvent e;
        server::GenToken t;
        t.id = id;
        t.logprob = -0.25;
        t.top = {{id, -0.25}, {(id + 1) % v.n_tokens(), -2.0}};
        e.tokens.push_back(t);
        if (!v.is_eog(id)) e.text = v.token_to_piece(id);
        evs.push_back(e);
    }
    GenEvent last;
    last.done = true;
    last.finish = finish;
    last.stats.n_prompt = 10;
    last.stats.n_cached = 3;
    last.stats.n_generated = (int)ids.size();
    evs.push_back(last);
    return evs;
}

ReplyOptions options(bool logprobs = false, bool usage = false) {
    ReplyOptions o;
    o.id = "chatcmpl-test";
    o.model = "m";
    o.created = 1;
    o.logprobs = logprobs;
    o.include_usage = usage;
    o.make_tool_id = [] { return std::string("call_x"); };
    return o;
}

std::vector<ojson> sse(const std::string& s, bool* done) {
    std::vector<ojson> out;
    *done = false;
    size_t pos = 0;
    while (pos < s.size()) {
        const size_t end = s.find("\n\n", pos);
        const std::string ev = s.substr(pos, end - pos);
        pos = end + 2;
        EXPECT_EQ(ev.substr(0, 6), "data: ");
        if (ev == "data: [DONE]") {
            *done = true;
            EXPECT_EQ(pos, s.size());
        } else {
            out.push_back(ojson::parse(ev.substr(6)));
        }
    }
    return out;
}

chat::ChatFormat hermes_thinking() {
    chat::ChatFormat f;
    f.tool_calls = chat::ToolCallStyle::Hermes;
    f.reasoning = true;
    return f;
}

TEST(Reply, ChatToolCallNotStreamed) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string out = "<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                            "{\"city\": \"Paris\"}}\n</tool_call>";
    ChatReply r(*SM->vocab, options(), hermes_thinking(), false, &kTools);
    for (const GenEvent& e : events_for(*SM->vocab, out, FinishReason::Stop, true)) r.add(e);
    const ojson b = r.body();
    EXPECT_EQ(b["object"], "chat.completion");
    EXPECT_EQ(b["choices"][0]["finish_reason"], "tool_calls");
    const ojson& m = b["choices"][0]["message"];
    EXPECT_EQ(m["role"], "assistant");
    EXPECT_TRUE(m["content"].is_null());
    EXPECT_EQ(m["reasoning_content"], "The user wants weather.");
    ASSERT_EQ(m["tool_calls"].size(), 1u);
    EXPECT_EQ(m["tool_calls"][0]["id"], "call_x");
    EXPECT_EQ(m["tool_calls"][0]["type"], "function");
    EXPECT_EQ(m["tool_calls"][0]["function"]["name"], "get_weather");
    EXPECT_EQ(ojson::parse(m["tool_calls"][0]["function"]["arguments"].get<std::string>())["city"], "Paris");
    EXPECT_EQ(b["usage"]["prompt_tokens"], 10);
    EXPECT_EQ(b["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    EXPECT_EQ(b["timings"]["prompt_n"], 7);
    EXPECT_TRUE(b["choices"][0]["logprobs"].is_null());
}

TEST(Reply, ChatToolCallStreamed) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string out = "Let me look that up.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
    ChatReply r(*SM->vocab, options(false, true), hermes_thinking(), false, &kTools);
    std::string s;
    for (const GenEvent& e : events_for(*SM->vocab, out, FinishReason::Stop)) s += r.stream(e);
    bool done = false;
    std::vector<ojson> evs = sse(s, &done);
    EXPECT_TRUE(done);
    ASSERT_GE(evs.size(), 4u);
    EXPECT_EQ(evs[0]["choices"][0]["delta"]["role"], "assistant");
    std::string content;
    ojson calls;
    std::string finish;
    for (size_t i = 0; i + 1 < evs.size(); i++) {
        EXPECT_EQ(evs[i]["object"], "chat.completion.chunk");
        EXPECT_TRUE(evs[i]["usage"].is_null());
        const ojson& d = evs[i]["choices"][0]["delta"];
        if (d.contains("content")) content += d["content"].get<std::string>();
        if (d.contains("tool_calls")) calls = d["tool_calls"];
        if (!evs[i]["choices"][0]["finish_reason"].is_null()) finish = evs[i]["choices"][0]["finish_reason"];
        EXPECT_EQ(content.find("<tool_call"), std::string::npos);
    }
    EXPECT_EQ(content, "Let me look that up.");
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0]["index"], 0);
    EXPECT_EQ(calls[0]["id"], "call_x");
    EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
    EXPECT_EQ(finish, "tool_calls");
    EXPECT_TRUE(evs.back()["choices"].empty());
    EXPECT_EQ(evs.back()["usage"]["completion_tokens"], evs.back()["usage"]["total_tokens"].get<int>() - 10);
}

TEST(Reply, ToolSyntaxWithoutToolsIsContent) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string out = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>";
    ChatReply r(*SM->vocab, options(), hermes_thinking(), false, nullptr);
    for (const GenEvent& e : events_for(*SM->vocab, out, FinishReason::Length)) r.add(e);
    const ojson b = r.body();
    EXPECT_EQ(b["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(b["choices"][0]["message"]["content"], out);
    EXPECT_FALSE(b["choices"][0]["message"].contains("tool_calls"));
}

TEST(Reply, ReasoningStreamedThenContent) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string out = "<think>\nFirst this, then that.\n</think>\n\nThe answer is four.";
    ChatReply r(*SM->vocab, options(), hermes_thinking(), false, nullptr);
    std::string s;
    for (const GenEvent& e : events_for(*SM->vocab, out, FinishReason::Stop)) s += r.stream(e);
    bool done = false;
    std::string reasoning, content;
    bool content_before_reasoning_done = false;
    for (const ojson& e : sse(s, &done)) {
        const ojson& d = e["choices"][0]["delta"];
        if (d.contains("reasoning_content")) {
            reasoning += d["reasoning_content"].get<std::string>();
            content_before_reasoning_done = content_before_reasoning_done || !content.empty();
        }
        if (d.contains("content")) content += d["content"].get<std::string>();
    }
    EXPECT_TRUE(done);
    EXPECT_EQ(reasoning, "First this, then that.");
    EXPECT_EQ(content, "The answer is four.");
    EXPECT_FALSE(content_before_reasoning_done);
    // and the same reply not streamed
    ChatReply r2(*SM->vocab, options(), hermes_thinking(), false, nullptr);
    for (const GenEvent& e : events_for(*SM->vocab, out, FinishReason::Stop)) r2.add(e);
    EXPECT_EQ(r2.body()["choices"][0]["message"]["reasoning_content"], reasoning);
    EXPECT_EQ(r2.body()["choices"][0]["message"]["content"], content);
}

TEST(Reply, ChatLogprobsSkipTheEndToken) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string out = "And God said";
    const size_t n = SM->vocab->tokenize(out, false, false).size();
    ChatReply r(*SM->vocab, options(true), chat::ChatFormat{}, false, nullptr);
    for (const GenEvent& e : events_for(*SM->vocab, out, FinishReason::Stop, true)) r.add(e);
    const ojson lp = r.body()["choices"][0]["logprobs"]["content"];
    ASSERT_EQ(lp.size(), n);  // the EOS token is not listed
    std::string joined;
    for (const ojson& e : lp) {
        joined += e["token"].get<std::string>();
        EXPECT_DOUBLE_EQ(e["logprob"].get<double>(), -0.25);
        EXPECT_EQ(e["top_logprobs"].size(), 2u);
        EXPECT_EQ(e["bytes"].size(), e["token"].get<std::string>().size());
    }
    EXPECT_EQ(joined, out);
    // streamed: every token's entry arrives exactly once
    ChatReply rs(*SM->vocab, options(true), chat::ChatFormat{}, false, nullptr);
    std::string s;
    for (const GenEvent& e : events_for(*SM->vocab, out, FinishReason::Stop, true)) s += rs.stream(e);
    bool done = false;
    size_t entries = 0;
    for (const ojson& e : sse(s, &done))
        if (!e["choices"].empty() && e["choices"][0]["logprobs"].is_object()) entries += e["choices"][0]["logprobs"]["content"].size();
    EXPECT_EQ(entries, n);
}

TEST(Reply, ErrorsMidStream) {
    ROTOR_REQUIRE_SMALL_MODEL();
    GenEvent e;
    e.done = true;
    e.finish = FinishReason::Error;
    e.error = "forward pass failed";
    ChatReply r(*SM->vocab, options(), chat::ChatFormat{}, false, nullptr);
    bool done = false;
    std::vector<ojson> evs = sse(r.stream(e), &done);
    EXPECT_TRUE(done);
    ASSERT_EQ(evs.size(), 2u);  // the role chunk, then the error
    EXPECT_EQ(evs[1]["error"]["message"], "forward pass failed");
    EXPECT_EQ(evs[1]["error"]["type"], "server_error");
    CompletionReply c(*SM->vocab, options());
    evs = sse(c.stream(e), &done);
    EXPECT_TRUE(done);
    EXPECT_EQ(evs.at(0)["error"]["message"], "forward pass failed");
}

TEST(Reply, CompletionLegacyLogprobs) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string out = " of the LORD";
    CompletionReply r(*SM->vocab, options(true, true));
    for (const GenEvent& e : events_for(*SM->vocab, out, FinishReason::Length)) r.add(e);
    const ojson b = r.body();
    EXPECT_EQ(b["object"], "text_completion");
    EXPECT_EQ(b["choices"][0]["text"], out);
    EXPECT_EQ(b["choices"][0]["finish_reason"], "length");
    const ojson& lp = b["choices"][0]["logprobs"];
    std::string joined;
    for (size_t i = 0; i < lp["tokens"].size(); i++) {
        EXPECT_EQ(lp["text_offset"][i].get<size_t>(), joined.size());
        joined += lp["tokens"][i].get<std::string>();
        EXPECT_EQ(lp["top_logprobs"][i].size(), 2u);
    }
    EXPECT_EQ(joined, out);
    CompletionReply rs(*SM->vocab, options(true, true));
    std::string s;
    for (const GenEvent& e : events_for(*SM->vocab, out, FinishReason::Length)) s += rs.stream(e);
    bool done = false;
    std::vector<ojson> evs = sse(s, &done);
    EXPECT_TRUE(done);
    std::string text;
    for (size_t i = 0; i + 1 < evs.size(); i++) text += evs[i]["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(text, out);
    EXPECT_EQ(evs[evs.size() - 2]["choices"][0]["finish_reason"], "length");
    EXPECT_TRUE(evs.back()["choices"].empty());
    EXPECT_EQ(evs.back()["usage"]["prompt_tokens"], 10);
}

}  // namespace
}  // namespace rotor::test
