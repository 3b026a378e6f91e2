// Request validation (src/server/request.h): every bad input is a 400 naming the field, never a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>

#include "chat/chat_parse.h"
#include "common/utf8.h"
#include "gguf/gguf.h"
#include "server/request.h"

namespace rotor::server {
namespace {

RequestLimits lim() {
    RequestLimits l;
    l.n_vocab = 4096;
    l.model_names = {"rotor-kjv-11m-q8_0"};
    return l;
}

ParsedRequest ok(Endpoint ep, const std::string& body) {
    ParsedRequest r;
    ApiError e;
    EXPECT_TRUE(parse_request(ep, body, lim(), &r, &e)) << body << " -> " << e.message;
    return r;
}

ApiError bad(Endpoint ep, const std::string& body) {
    ParsedRequest r;
    ApiError e;
    EXPECT_FALSE(parse_request(ep, body, lim(), &r, &e)) << body;
    EXPECT_EQ(e.status, 400);
    EXPECT_FALSE(e.message.empty());
    return e;
}

const Endpoint C = Endpoint::Chat;
const Endpoint P = Endpoint::Completion;

TEST(Request, MinimalChat) {
    ParsedRequest r = ok(C, R"({"messages":[{"role":"user","content":"hi"}]})");
    EXPECT_EQ(r.messages.size(), 1u);
    EXPECT_FALSE(r.stream);
    EXPECT_EQ(r.max_tokens, -1);
    EXPECT_TRUE(r.tools.is_null());
    EXPECT_TRUE(r.stop.empty());
    // llama.cpp's sampling defaults when nothing is said
    EXPECT_FLOAT_EQ(r.sampling.temperature, 0.8f);
    EXPECT_EQ(r.sampling.top_k, 40);
}

TEST(Request, FullChat) {
    ParsedRequest r = ok(C, R"({
        "model": "rotor-kjv-11m-q8_0",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        ],
        "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "stream": true, "stream_options": {"include_usage": true},
        "max_completion_tokens": 12, "temperature": 0, "top_p": 0.5, "top_k": 3, "min_p": 0.1,
        "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 42,
        "logit_bias": {"17": -100, "5": 2.5},
        "stop": ["a", "", "b"], "n": 1, "logprobs": true, "top_logprobs": 4,
        "chat_template_kwargs": {"enable_thinking": false},
        "response_format": {"type": "text"}, "user": "ignored", "parallel_tool_calls": true
    })");
    EXPECT_EQ(r.messages[0]["role"], "system");  // developer -> system
    EXPECT_EQ(r.messages.size(), 4u);
    EXPECT_EQ(r.tools.size(), 1u);
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);
    EXPECT_EQ(r.max_tokens, 12);
    EXPECT_EQ(r.sampling.temperature, 0.0f);
    EXPECT_EQ(r.sampling.top_k, 3);
    EXPECT_EQ(r.sampling.seed, 42);
    EXPECT_TRUE(std::isinf(r.sampling.logit_bias.at(17)));
    EXPECT_FLOAT_EQ(r.sampling.logit_bias.at(5), 2.5f);
    EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(r.logprobs);
    EXPECT_EQ(r.top_logprobs, 4);
    EXPECT_EQ(r.sampling.n_probs, 4);
    EXPECT_EQ(r.chat_template_kwargs["enable_thinking"], false);
}

TEST(Request, ToolChoiceNoneDropsTools) {
    ParsedRequest r = ok(C, R"({"messages":[{"role":"user","content":"x"}],
        "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"})");
    EXPECT_TRUE(r.tools.is_null());
}

TEST(Request, Completions) {
    ParsedRequest r = ok(P, R"({"prompt":"In the beginning","max_tokens":5,"logprobs":2,"stop":"\n"})");
    EXPECT_EQ(r.prompt_text, "In the beginning");
    EXPECT_FALSE(r.prompt_is_tokens);
    EXPECT_TRUE(r.logprobs);
    EXPECT_EQ(r.top_logprobs, 2);
    EXPECT_EQ(r.stop, std::vector<std::string>{"\n"});
    r = ok(P, R"({"prompt":[1,2,3]})");
    EXPECT_TRUE(r.prompt_is_tokens);
    EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
    r = ok(P, R"({"prompt":["only one"]})");
    EXPECT_EQ(r.prompt_text, "only one");
    r = ok(P, R"({"prompt":[[7, 8]]})");
    EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{7, 8}));
    r = ok(P, R"({"prompt":"x","logprobs":0})");
    EXPECT_TRUE(r.logprobs);
    EXPECT_EQ(r.top_logprobs, 0);
}

// ---- the model's default sampling

// A metadata-only GGUF with the given keys (set by `fill`).
gguf::File gguf_with(const std::function<void(gguf::Writer&)>& fill) {
    gguf::Writer w;
    w.set_string("general.architecture", "llama");
    fill(w);
    const std::vector<uint8_t> bytes = w.to_bytes();
    return gguf::File::parse(bytes.data(), bytes.size(), "test.gguf");
}

chat::ChatFormat gemma4_format() {
    chat::ChatFormat f;  // as detect_chat_format makes it from Gemma 4's template (tests/chat checks that)
    f.tool_calls = chat::ToolCallStyle::Gemma4;
    f.reasoning = f.channels = true;
    f.think_open = "<|channel>thought";
    f.think_close = "<channel|>";
    return f;
}

TEST(Request, DefaultSamplingWithoutHintsIsLlamaCpps) {
    const gguf::File f = gguf_with([](gguf::Writer&) {});
    chat::ChatFormat qwen;
    qwen.tool_calls = chat::ToolCallStyle::Hermes;
    for (const chat::ChatFormat* fmt : {(const chat::ChatFormat*)nullptr, (const chat::ChatFormat*)&qwen}) {
        std::vector<std::string> w;
        const SamplerParams s = default_sampling(f, fmt, &w);
        EXPECT_FLOAT_EQ(s.temperature, 0.8f);  // llama.cpp's common_params_sampling
        EXPECT_EQ(s.top_k, 40);
        EXPECT_FLOAT_EQ(s.top_p, 0.95f);
        EXPECT_FLOAT_EQ(s.min_p, 0.05f);
        EXPECT_FLOAT_EQ(s.repetition_penalty, 1.0f);
        EXPECT_EQ(s.penalty_last_n, 64);
        EXPECT_TRUE(w.empty());
    }
}

TEST(Request, DefaultSamplingOfGemma4) {
    const chat::ChatFormat g = gemma4_format();
    const SamplerParams s = default_sampling(gguf_with([](gguf::Writer&) {}), &g);
    EXPECT_FLOAT_EQ(s.temperature, 1.0f);  // Google's recommendation for Gemma 4
    EXPECT_FLOAT_EQ(s.top_p, 0.95f);
    EXPECT_EQ(s.top_k, 64);
    EXPECT_FLOAT_EQ(s.min_p, 0.05f);  // not part of it: llama.cpp's default stays
}

TEST(Request, DefaultSamplingFromGgufKeys) {
    // llama.cpp's keys, in the types converters write (f32, i32/u32) and as text
    const gguf::File f = gguf_with([](gguf::Writer& w) {
        w.set_f32("general.sampling.temp", 0.6f);
        w.set_u32("general.sampling.top_k", 20);
        w.set_string("general.sampling.top_p", "0.9");
        w.set_f64("general.sampling.min_p", 0.0);
        w.set_i32("general.sampling.penalty_last_n", -1);
        w.set_f32("general.sampling.penalty_repeat", 1.1f);
    });
    const chat::ChatFormat g = gemma4_format();
    for (const chat::ChatFormat* fmt : {(const chat::ChatFormat*)nullptr, &g}) {  // the file wins over Gemma 4's
        std::vector<std::string> w;
        const SamplerParams s = default_sampling(f, fmt, &w);
        EXPECT_FLOAT_EQ(s.temperature, 0.6f);
        EXPECT_EQ(s.top_k, 20);
        EXPECT_FLOAT_EQ(s.top_p, 0.9f);
        EXPECT_FLOAT_EQ(s.min_p, 0.0f);
        EXPECT_EQ(s.penalty_last_n, -1);
        EXPECT_FLOAT_EQ(s.repetition_penalty, 1.1f);
        EXPECT_TRUE(w.empty()) << w[0];
    }
    // one key given: the others come from Gemma 4's recommendation
    const gguf::File one = gguf_with([](gguf::Writer& w) { w.set_f32("general.sampling.temp", 0.3f); });
    const SamplerParams s = default_sampling(one, &g);
    EXPECT_FLOAT_EQ(s.temperature, 0.3f);
    EXPECT_EQ(s.top_k, 64);
}

TEST(Request, DefaultSamplingSkipsUnusableKeys) {
    const gguf::File f = gguf_with([](gguf::Writer& w) {
        w.set_bool("general.sampling.temp", true);
        w.set_f32("general.sampling.top_p", 1.5f);
        w.set_f32("general.sampling.top_k", 12.5f);
        w.set_string("general.sampling.min_p", "a lot");
        w.set_f32("general.sampling.penalty_repeat", 0.0f);
    });
    std::vector<std::string> w;
    const SamplerParams s = default_sampling(f, nullptr, &w);
    EXPECT_FLOAT_EQ(s.temperature, 0.8f);
    EXPECT_FLOAT_EQ(s.top_p, 0.95f);
    EXPECT_EQ(s.top_k, 40);
    EXPECT_FLOAT_EQ(s.min_p, 0.05f);
    EXPECT_FLOAT_EQ(s.repetition_penalty, 1.0f);
    ASSERT_EQ(w.size(), 5u);
    EXPECT_NE(w[0].find("general.sampling.temp"), std::string::npos) << w[0];
}

TEST(Request, ModelDefaultsFillWhatTheRequestLeavesOut) {
    RequestLimits l = lim();
    l.sampling.temperature = 1.0f;
    l.sampling.top_p = 0.95f;
    l.sampling.top_k = 64;
    ParsedRequest r;
    ApiError e;
    ASSERT_TRUE(parse_request(C, R"({"messages":[{"role":"user","content":"hi"}]})", l, &r, &e)) << e.message;
    EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
    EXPECT_FLOAT_EQ(r.sampling.top_p, 0.95f);
    EXPECT_EQ(r.sampling.top_k, 64);
    ASSERT_TRUE(parse_request(C, R"({"messages":[{"role":"user","content":"hi"}],"temperature":0.2,"top_k":0})", l, &r, &e));
    EXPECT_FLOAT_EQ(r.sampling.temperature, 0.2f);
    EXPECT_EQ(r.sampling.top_k, 0);
    EXPECT_FLOAT_EQ(r.sampling.top_p, 0.95f);
    ASSERT_TRUE(parse_request(P, R"({"prompt":"x"})", l, &r, &e));  // completions too: they are the model's defaults
    EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
    EXPECT_EQ(r.sampling.top_k, 64);
}

TEST(Request, InvalidJson) {
    EXPECT_EQ(bad(C, "").code, "invalid_json");
    EXPECT_EQ(bad(C, "{").code, "invalid_json");
    EXPECT_EQ(bad(C, "{\"messages\": [}").code, "invalid_json");
    EXPECT_EQ(bad(C, "\xff\xfe").code, "invalid_json");
    EXPECT_EQ(bad(C, "{\"messages\":\"\xc3\x28\"}").code, "invalid_json");  // invalid UTF-8 in a string
    // the parser quotes what it read; the message stays valid UTF-8 (it goes into a JSON reply)
    ApiError e = bad(C, "{\"stream\xff\xff\":1}");
    EXPECT_TRUE(utf8_valid(e.message)) << e.message;
    EXPECT_NO_THROW((void)e.to_json().dump());
    bad(C, "[]");
    bad(C, "42");
    bad(C, "null");
}

TEST(Request, DeepNestingIsRefusedBeforeParsing) {
    std::string deep = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":";
    for (int i = 0; i < 100000; i++) deep += "[";
    ApiError e = bad(C, deep);
    EXPECT_NE(e.message.find("nests deeper"), std::string::npos);
}

TEST(Request, WrongFieldTypesNameTheField) {
    EXPECT_EQ(bad(C, R"({"messages":"hi"})").param, "messages");
    EXPECT_EQ(bad(C, R"({})").param, "messages");
    EXPECT_EQ(bad(C, R"({"messages":[]})").param, "messages");
    EXPECT_EQ(bad(C, R"({"messages":[1]})").param, "messages[0]");
    EXPECT_EQ(bad(C, R"({"messages":[{"content":"x"}]})").param, "messages[0].role");
    EXPECT_EQ(bad(C, R"({"messages":[{"role":"wizard","content":"x"}]})").param, "messages[0].role");
    EXPECT_EQ(bad(C, R"({"messages":[{"role":"user"}]})").param, "messages[0].content");
    EXPECT_EQ(bad(C, R"({"messages":[{"role":"user","content":5}]})").param, "messages[0].content");
    EXPECT_EQ(bad(C, R"({"messages":[{"role":"user","content":null}]})").param, "messages[0].content");
    EXPECT_EQ(bad(C, R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})").param,
              "messages[0].content[0].type");
    EXPECT_EQ(bad(C, R"({"messages":[{"role":"user","content":[{"type":"text"}]}]})").param, "messages[0].content[0].text");
    EXPECT_EQ(bad(C, R"({"messages":[{"role":"assistant"}]})").param, "messages[0].content");
    EXPECT_EQ(bad(C, R"({"messages":[{"role":"assistant","tool_calls":[{"function":{"name":1}}]}]})").param,
              "messages[0].tool_calls[0].function.name");
    EXPECT_EQ(bad(C, R"({"messages":[{"role":"user","content":"x","tool_calls":[]}]})").param, "messages[0].tool_calls");
    const std::string m = R"("messages":[{"role":"user","content":"x"}])";
    EXPECT_EQ(bad(C, "{" + m + R"(,"stream":"yes"})").param, "stream");
    EXPECT_EQ(bad(C, "{" + m + R"(,"max_tokens":"10"})").param, "max_tokens");
    EXPECT_EQ(bad(C, "{" + m + R"(,"max_tokens":0})").param, "max_tokens");
    EXPECT_EQ(bad(C, "{" + m + R"(,"max_tokens":1.5})").param, "max_tokens");
    EXPECT_EQ(bad(C, "{" + m + R"(,"max_tokens":99999999999999999999})").param, "max_tokens");
    EXPECT_EQ(bad(C, "{" + m + R"(,"temperature":-1})").param, "temperature");
    EXPECT_EQ(bad(C, "{" + m + R"(,"temperature":"hot"})").param, "temperature");
    EXPECT_EQ(bad(C, "{" + m + R"(,"top_p":1.5})").param, "top_p");
    EXPECT_EQ(bad(C, "{" + m + R"(,"top_k":-3})").param, "top_k");
    EXPECT_EQ(bad(C, "{" + m + R"(,"presence_penalty":3})").param, "presence_penalty");
    EXPECT_EQ(bad(C, "{" + m + R"(,"seed":"1"})").param, "seed");
    EXPECT_EQ(bad(C, "{" + m + R"(,"logit_bias":[1]})").param, "logit_bias");
    EXPECT_EQ(bad(C, "{" + m + R"(,"logit_bias":{"abc":1}})").param, "logit_bias");
    EXPECT_EQ(bad(C, "{" + m + R"(,"logit_bias":{"4096":1}})").param, "logit_bias");  // n_vocab
    EXPECT_EQ(bad(C, "{" + m + R"(,"logit_bias":{"-1":1}})").param, "logit_bias");
    EXPECT_EQ(bad(C, "{" + m + R"(,"logit_bias":{"5":101}})").param, "logit_bias");
    EXPECT_EQ(bad(C, "{" + m + R"(,"logit_bias":{"5":"x"}})").param, "logit_bias");
    EXPECT_EQ(bad(C, "{" + m + R"(,"stop":5})").param, "stop");
    EXPECT_EQ(bad(C, "{" + m + R"(,"stop":["a",1]})").param, "stop");
    EXPECT_EQ(bad(C, "{" + m + R"(,"stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]})").param, "stop");
    EXPECT_EQ(bad(C, "{" + m + R"(,"n":2})").param, "n");
    EXPECT_EQ(bad(C, "{" + m + R"(,"top_logprobs":3})").param, "top_logprobs");  // needs logprobs
    EXPECT_EQ(bad(C, "{" + m + R"(,"logprobs":true,"top_logprobs":21})").param, "top_logprobs");
    EXPECT_EQ(bad(C, "{" + m + R"(,"tools":{}})").param, "tools");
    EXPECT_EQ(bad(C, "{" + m + R"(,"tools":[{"type":"function","function":{"name":""}}]})").param, "tools[0].function.name");
    EXPECT_EQ(bad(C, "{" + m + R"(,"tools":[{"type":"retrieval"}]})").param, "tools[0].type");
    EXPECT_EQ(bad(C, "{" + m + R"(,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"})").param, "tool_choice");
    EXPECT_EQ(bad(C, "{" + m + R"(,"chat_template_kwargs":[]})").param, "chat_template_kwargs");
    EXPECT_EQ(bad(C, "{" + m + R"(,"response_format":{"type":"json_object"}})").param, "response_format");
    EXPECT_EQ(bad(C, "{" + m + R"(,"stream_options":true})").param, "stream_options");
}

TEST(Request, UnknownModel) {
    ApiError e = bad(C, R"({"model":"gpt-4","messages":[{"role":"user","content":"x"}]})");
    EXPECT_EQ(e.param, "model");
    EXPECT_EQ(e.code, "model_not_found");
    EXPECT_NE(e.message.find("gpt-4"), std::string::npos);
    EXPECT_NE(e.message.find("rotor-kjv-11m-q8_0"), std::string::npos);
    EXPECT_EQ(bad(C, R"({"model":7,"messages":[{"role":"user","content":"x"}]})").param, "model");
}

TEST(Request, BadCompletionPrompts) {
    EXPECT_EQ(bad(P, R"({})").param, "prompt");
    EXPECT_EQ(bad(P, R"({"prompt":5})").param, "prompt");
    EXPECT_EQ(bad(P, R"({"prompt":[]})").param, "prompt");
    EXPECT_EQ(bad(P, R"({"prompt":["a","b"]})").param, "prompt");
    EXPECT_EQ(bad(P, R"({"prompt":[1,"a"]})").param, "prompt");
    EXPECT_EQ(bad(P, R"({"prompt":[1,4096]})").param, "prompt");
    EXPECT_EQ(bad(P, R"({"prompt":[-1]})").param, "prompt");
    EXPECT_EQ(bad(P, R"({"prompt":[[]]})").param, "prompt[0]");
    EXPECT_EQ(bad(P, R"({"prompt":"x","echo":true})").param, "echo");
    EXPECT_EQ(bad(P, R"({"prompt":"x","suffix":"y"})").param, "suffix");
    EXPECT_EQ(bad(P, R"({"prompt":"x","logprobs":6})").param, "logprobs");
    EXPECT_EQ(bad(P, R"({"prompt":"x","best_of":2})").param, "best_of");
}

TEST(Request, ErrorObjectShape) {
    ApiError e = bad(C, R"({"messages":3})");
    json j = e.to_json();
    ASSERT_TRUE(j.contains("error"));
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_EQ(j["error"]["param"], "messages");
    EXPECT_TRUE(j["error"]["code"].is_null());
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_EQ(j["error"].size(), 4u);
}

// Random mutations of valid requests: parse_request answers (true or a 400), never throws or crashes.
TEST(Request, MutationsNeverThrow) {
    const std::string seeds[] = {
        R"({"messages":[{"role":"user","content":"hi"}],"temperature":0.5,"stop":["x"],"logit_bias":{"3":1}})",
        R"({"prompt":[1,2,3],"max_tokens":4,"logprobs":2,"stream":true,"stream_options":{"include_usage":true}})",
        R"({"messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}],"tools":[{"type":"function","function":{"name":"f"}}]})",
    };
    std::mt19937 rng(7);
    const char alphabet[] = "{}[]\",:0123456789.-eEtrufalsn\\ \x80\xff";
    int accepted = 0;
    for (const std::string& s : seeds) {
        for (int i = 0; i < 3000; i++) {
            std::string m = s;
            const int edits = 1 + (int)(rng() % 4);
            for (int k = 0; k < edits && !m.empty(); k++) {
                const size_t pos = rng() % m.size();
                switch (rng() % 3) {
                    case 0: m[pos] = alphabet[rng() % (sizeof alphabet - 1)]; break;
                    case 1: m.erase(pos, 1 + rng() % 3); break;
                    default: m.insert(pos, 1, alphabet[rng() % (sizeof alphabet - 1)]); break;
                }
            }
            for (Endpoint ep : {C, P}) {
                ParsedRequest r;
                ApiError e;
                bool got = false;
                EXPECT_NO_THROW(got = parse_request(ep, m, lim(), &r, &e)) << m;
                if (got) accepted++;
                else EXPECT_EQ(e.status, 400);
            }
        }
    }
    EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace rotor::server
