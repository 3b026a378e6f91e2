// The API end to end over real HTTP with the small model: response shapes, SSE framing, errors, API
// keys, metrics, disconnect = cancel, the queue limit, and chat templates of real models (a GGUF made
// from the small model's tensors with a Qwen3 / Llama 3.1 template) for tools and thinking switches.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "http_client.h"
#include "server/api.h"
#include "server_util.h"

namespace rotor::test {
namespace {

using ojson = nlohmann::ordered_json;

struct LiveApi {
    server::ApiServer api;
    server::HttpServer http;
    std::thread th;
    LiveApi(server::ServeOptions o, bool load = true)
        : api(std::move(o)), http([this](const server::HttpRequest& q, server::HttpResponse& r) { api.handle(q, r); }) {
        http.listen("127.0.0.1", 0);
        th = std::thread([this] { http.run(); });
        if (load) api.load();
    }
    ~LiveApi() {
        http.stop();
        api.shutdown();
        th.join();
    }
    int port() const { return http.port(); }
    Reply post(const std::string& path, const ojson& body, const std::vector<std::string>& h = {}) {
        return test::http(port(), "POST", path, body.dump(), h);
    }
    Reply get(const std::string& path, const std::vector<std::string>& h = {}) { return test::http(port(), "GET", path, "", h); }
};

server::ServeOptions opts(int slots = 2, int ctx = 512, const std::string& model = small_model_path()) {
    server::ServeOptions o;
    o.model_path = model;
    o.engine = small_engine(slots, ctx);
    return o;
}

ojson js(const Reply& r) { return ojson::parse(r.body); }

// "data: {...}\n\n" events; the last must be [DONE].
std::vector<ojson> sse_events(const std::string& body, bool* done) {
    std::vector<ojson> out;
    *done = false;
    size_t pos = 0;
    while (pos < body.size()) {
        size_t end = body.find("\n\n", pos);
        if (end == std::string::npos) end = body.size();
        std::string ev = body.substr(pos, end - pos);
        pos = end + 2;
        EXPECT_EQ(ev.substr(0, 6), "data: ") << ev;
        if (ev == "data: [DONE]") {
            *done = true;
            EXPECT_GE(pos, body.size()) << "events after [DONE]";
            continue;
        }
        out.push_back(ojson::parse(ev.substr(6)));
    }
    return out;
}

void expect_error_shape(const Reply& r, int status, const std::string& code = {}) {
    EXPECT_EQ(r.status, status) << r.body;
    ojson j = js(r);
    ASSERT_TRUE(j.contains("error")) << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    EXPECT_TRUE(j["error"].contains("param"));
    EXPECT_TRUE(j["error"].contains("code"));
    if (!code.empty()) {
        EXPECT_EQ(j["error"]["code"], code) << r.body;
    }
}

TEST(Api, HealthIs503WhileLoading) {
    if (!std::filesystem::exists(small_model_path())) GTEST_SKIP() << "model not found";
    LiveApi s(opts(), false);
    expect_error_shape(s.get("/health"), 503, "model_loading");
    expect_error_shape(s.post("/v1/completions", {{"prompt", "x"}}), 503, "model_loading");
    s.api.load();
    Reply r = s.get("/health");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(js(r)["status"], "ok");
}

TEST(Api, CompletionsNonStreaming) {
    ROTOR_REQUIRE_SMALL_MODEL();
    LiveApi s(opts());
    Reply r = s.post("/v1/completions", {{"model", "rotor-kjv-11m-q8_0"}, {"prompt", "In the beginning"}, {"max_tokens", 12}, {"temperature", 0}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("content-type").substr(0, 16), "application/json");
    ojson j = js(r);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["id"].get<std::string>().substr(0, 5), "cmpl-");
    EXPECT_EQ(j["model"], "rotor-kjv-11m-q8_0");
    EXPECT_EQ(j["choices"][0]["text"].get<std::string>().substr(0, 20), " of the LORD, the da");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["prompt_tokens"], 4);
    EXPECT_EQ(j["usage"]["completion_tokens"], 12);
    EXPECT_EQ(j["usage"]["total_tokens"], 16);
    // the file name and the path name the model too
    EXPECT_EQ(s.post("/v1/completions", {{"model", "rotor-kjv-11m-q8_0.gguf"}, {"prompt", "x"}, {"max_tokens", 1}}).status, 200);
    EXPECT_EQ(s.post("/v1/completions", {{"model", small_model_path()}, {"prompt", "x"}, {"max_tokens", 1}}).status, 200);
    // token-id prompts give the same
    std::vector<int32_t> ids = SM->vocab->tokenize("In the beginning", true, false);
    Reply r2 = s.post("/v1/completions", {{"prompt", ids}, {"max_tokens", 12}, {"temperature", 0}});
    EXPECT_EQ(js(r2)["choices"][0]["text"], j["choices"][0]["text"]);
    // legacy logprobs
    Reply r3 = s.post("/v1/completions", {{"prompt", "In the beginning"}, {"max_tokens", 3}, {"temperature", 0}, {"logprobs", 2}});
    ojson lp = js(r3)["choices"][0]["logprobs"];
    ASSERT_EQ(lp["tokens"].size(), 3u);
    EXPECT_EQ(lp["token_logprobs"].size(), 3u);
    EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
    EXPECT_EQ(lp["text_offset"][0], 0);
    EXPECT_EQ(lp["tokens"][0], " of");
}

TEST(Api, StreamingConcatenatesToNonStreaming) {
    ROTOR_REQUIRE_SMALL_MODEL();
    LiveApi s(opts());
    const ojson msgs = ojson::array({{{"role", "user"}, {"content", "And God said, Let there be light:"}}});
    Reply whole = s.post("/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 20}, {"temperature", 0}});
    ASSERT_EQ(whole.status, 200) << whole.body;
    ojson w = js(whole);
    EXPECT_EQ(w["object"], "chat.completion");
    EXPECT_EQ(w["choices"][0]["message"]["role"], "assistant");
    const std::string content = w["choices"][0]["message"]["content"];

    Reply st = s.post("/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 20}, {"temperature", 0}, {"stream", true},
                                               {"stream_options", {{"include_usage", true}}}});
    ASSERT_EQ(st.status, 200);
    EXPECT_EQ(st.header("content-type"), "text/event-stream");
    bool done = false;
    std::vector<ojson> evs = sse_events(st.body, &done);
    EXPECT_TRUE(done);
    ASSERT_GE(evs.size(), 3u);
    EXPECT_EQ(evs[0]["choices"][0]["delta"]["role"], "assistant");
    std::string streamed;
    std::string finish;
    for (size_t i = 0; i + 1 < evs.size(); i++) {
        EXPECT_EQ(evs[i]["object"], "chat.completion.chunk");
        EXPECT_EQ(evs[i]["id"], evs[0]["id"]);
        EXPECT_TRUE(evs[i]["usage"].is_null());
        const ojson& d = evs[i]["choices"][0]["delta"];
        if (d.contains("content")) streamed += d["content"].get<std::string>();
        if (!evs[i]["choices"][0]["finish_reason"].is_null()) finish = evs[i]["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(streamed, content);
    EXPECT_EQ(finish, "length");
    const ojson& last = evs.back();
    EXPECT_TRUE(last["choices"].empty());
    EXPECT_EQ(last["usage"]["completion_tokens"], 20);
    EXPECT_EQ(last["usage"]["prompt_tokens"], w["usage"]["prompt_tokens"]);

    // completions stream
    Reply cs = s.post("/v1/completions", {{"prompt", "In the beginning"}, {"max_tokens", 10}, {"temperature", 0}, {"stream", true}});
    evs = sse_events(cs.body, &done);
    EXPECT_TRUE(done);
    std::string text;
    for (auto& e : evs) text += e["choices"][0]["text"].get<std::string>();
    Reply cn = s.post("/v1/completions", {{"prompt", "In the beginning"}, {"max_tokens", 10}, {"temperature", 0}});
    EXPECT_EQ(text, js(cn)["choices"][0]["text"]);
    EXPECT_EQ(evs.back()["choices"][0]["finish_reason"], "length");
}

TEST(Api, ChatLogprobsAndStop) {
    ROTOR_REQUIRE_SMALL_MODEL();
    LiveApi s(opts());
    const ojson msgs = ojson::array({{{"role", "user"}, {"content", "In the beginning"}}});
    Reply r = s.post("/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 5}, {"temperature", 0}, {"logprobs", true}, {"top_logprobs", 3}});
    ojson j = js(r);
    const ojson& lp = j["choices"][0]["logprobs"]["content"];
    ASSERT_EQ(lp.size(), 5u);
    std::string joined;
    for (const ojson& e : lp) {
        joined += e["token"].get<std::string>();
        EXPECT_LE(e["logprob"].get<double>(), 0.0);
        EXPECT_EQ(e["top_logprobs"].size(), 3u);
        EXPECT_EQ(e["top_logprobs"][0]["token"], e["token"]);
        EXPECT_TRUE(e["bytes"].is_array());
    }
    EXPECT_EQ(joined, j["choices"][0]["message"]["content"]);
    Reply st = s.post("/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 30}, {"temperature", 0}, {"stop", {" LORD"}}});
    EXPECT_EQ(js(st)["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(js(st)["choices"][0]["message"]["content"].get<std::string>().find("LORD"), std::string::npos);
}

TEST(Api, BadRequestsAre400s) {
    ROTOR_REQUIRE_SMALL_MODEL();
    LiveApi s(opts(1, 64));
    auto raw = [&](const std::string& path, const std::string& body) { return test::http(s.port(), "POST", path, body); };
    expect_error_shape(raw("/v1/chat/completions", "{not json"), 400, "invalid_json");
    expect_error_shape(raw("/v1/completions", ""), 400, "invalid_json");
    expect_error_shape(s.post("/v1/chat/completions", {{"messages", ojson::array()}}), 400);
    expect_error_shape(s.post("/v1/chat/completions", {{"messages", "hi"}}), 400);
    expect_error_shape(s.post("/v1/chat/completions", {{"model", "gpt-4o"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}}), 400,
                       "model_not_found");
    expect_error_shape(s.post("/v1/completions", {{"prompt", "x"}, {"temperature", "warm"}}), 400);
    std::string long_text;
    for (int i = 0; i < 40; i++) long_text += "And the LORD spake unto Moses. ";
    Reply lr = s.post("/v1/completions", {{"prompt", long_text}});
    expect_error_shape(lr, 400, "context_length_exceeded");
    EXPECT_NE(js(lr)["error"]["message"].get<std::string>().find("64"), std::string::npos);
    expect_error_shape(s.post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", long_text}}}}}), 400,
                       "context_length_exceeded");
    expect_error_shape(s.get("/v1/nothing"), 404, "not_found");
    expect_error_shape(s.get("/v1/completions"), 405);
    expect_error_shape(s.post("/tokenize", {{"content", 5}}), 400);
    expect_error_shape(s.post("/detokenize", {{"tokens", {1, 999999}}}), 400);
    // The server is still fine.
    EXPECT_EQ(s.get("/health").status, 200);
    EXPECT_EQ(s.post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}).status, 200);
}

TEST(Api, ApiKey) {
    ROTOR_REQUIRE_SMALL_MODEL();
    server::ServeOptions o = opts(1);
    o.api_key = "sekret";
    LiveApi s(o);
    EXPECT_EQ(s.get("/health").status, 200);  // probes need no key
    expect_error_shape(s.get("/v1/models"), 401, "invalid_api_key");
    expect_error_shape(s.get("/v1/models", {"Authorization: Bearer wrong"}), 401, "invalid_api_key");
    expect_error_shape(s.get("/metrics", {"Authorization: Bearer sekre"}), 401, "invalid_api_key");
    EXPECT_EQ(s.get("/v1/models", {"Authorization: Bearer sekret"}).status, 200);
    EXPECT_EQ(s.get("/v1/models", {"x-api-key: sekret"}).status, 200);
    EXPECT_EQ(s.get("/v1/health").status, 200);
    EXPECT_EQ(s.post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 1}}, {"Authorization: Bearer sekret"}).status, 200);
}

TEST(Api, InfoEndpoints) {
    ROTOR_REQUIRE_SMALL_MODEL();
    server::ServeOptions o = opts(3, 128);
    o.engine.kv_k = "q8_0";
    LiveApi s(o);
    ojson m = js(s.get("/v1/models"));
    EXPECT_EQ(m["object"], "list");
    EXPECT_EQ(m["data"][0]["id"], "rotor-kjv-11m-q8_0");
    EXPECT_EQ(m["data"][0]["object"], "model");
    s.post("/v1/completions", {{"prompt", "In the beginning"}, {"max_tokens", 3}});
    Reply mr = s.get("/metrics");
    EXPECT_EQ(mr.status, 200);
    EXPECT_EQ(mr.header("content-type").substr(0, 10), "text/plain");
    for (const char* name : {"rotor:prompt_tokens_total 4", "rotor:tokens_predicted_total 3", "rotor:requests_processing 0",
                             "rotor:requests_deferred 0", "rotor:kv_cache_usage_ratio ", "# TYPE rotor:prompt_tokens_total counter",
                             "rotor:kv_cache_bytes_capacity{type_k=\"q8_0\",type_v=\"f16\"} ",
                             "rotor:kv_cache_bytes_used{type_k=\"q8_0\",type_v=\"f16\"} "})
        EXPECT_NE(mr.body.find(name), std::string::npos) << name << "\n" << mr.body;
    ojson p = js(s.get("/props"));
    EXPECT_EQ(p["total_slots"], 3);
    EXPECT_EQ(p["n_ctx_per_slot"], 128);
    EXPECT_EQ(p["default_generation_settings"]["n_ctx"], 128);
    EXPECT_EQ(p["kv_cache"]["type_k"], "q8_0");
    // no recommendations in this model and a plain template: llama.cpp's sampling defaults
    EXPECT_FLOAT_EQ(p["default_generation_settings"]["params"]["temperature"].get<float>(), 0.8f);
    EXPECT_EQ(p["default_generation_settings"]["params"]["top_k"], 40);
    EXPECT_EQ(p["kv_cache"]["bytes_capacity"], 3 * 8 * p["kv_cache"]["block_bytes"].get<uint64_t>());
    ojson sl = js(s.get("/slots"));
    ASSERT_EQ(sl.size(), 3u);
    EXPECT_EQ(sl[0]["n_ctx"], 128);
    EXPECT_FALSE(sl[0]["is_processing"]);
    ojson t = js(s.post("/tokenize", {{"content", "In the beginning"}, {"add_special", true}}));
    std::vector<int32_t> ids = t["tokens"];
    EXPECT_EQ(ids, SM->vocab->tokenize("In the beginning", true, false));
    ojson d = js(s.post("/detokenize", {{"tokens", ids}}));
    EXPECT_EQ(d["content"], "In the beginning");
    // A template that writes the BOS text itself still gets exactly one BOS.
    ASSERT_TRUE(SM->vocab->add_bos());
    const std::string bos = SM->vocab->token(SM->vocab->bos()).text;
    EXPECT_EQ(s.api.tokenize_prompt(bos + "In the beginning"), SM->vocab->tokenize("In the beginning", true, false));
    EXPECT_EQ(s.api.tokenize_prompt("In the beginning"), SM->vocab->tokenize("In the beginning", true, false));
    ojson tp = js(s.post("/tokenize", {{"content", "In"}, {"with_pieces", true}}));
    EXPECT_EQ(tp["tokens"][0]["piece"], "In");
}

TEST(Api, ClientDisconnectCancelsGeneration) {
    ROTOR_REQUIRE_SMALL_MODEL();
    LiveApi s(opts(1, 2048));
    {
        Conn c(s.port());
        const std::string body = ojson{{"prompt", "In the beginning"}, {"ignore_eos", true}, {"stream", true}}.dump();
        ASSERT_TRUE(c.send_raw("POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
        while (c.buffered().find("data: ") == std::string::npos) ASSERT_TRUE(c.fill(30000));
        EXPECT_TRUE(s.api.engine()->slots()[0].busy);
    }  // the client leaves mid-stream
    bool freed = false;
    for (int i = 0; i < 500 && !freed; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        freed = s.api.engine()->metrics().requests_cancelled_total == 1 && !s.api.engine()->slots()[0].busy;
    }
    EXPECT_TRUE(freed);
    EXPECT_LT(s.api.engine()->metrics().tokens_predicted_total, 1500u);
    // Same for a non-streaming request.
    {
        Conn c(s.port());
        const std::string body = ojson{{"prompt", "In the beginning"}, {"ignore_eos", true}}.dump();
        ASSERT_TRUE(c.send_raw("POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
        for (int i = 0; i < 500 && !s.api.engine()->slots()[0].busy; i++) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    freed = false;
    for (int i = 0; i < 500 && !freed; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        freed = s.api.engine()->metrics().requests_cancelled_total == 2 && !s.api.engine()->slots()[0].busy;
    }
    EXPECT_TRUE(freed);
    EXPECT_EQ(s.post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}).status, 200);
}

TEST(Api, FullQueueIs503) {
    ROTOR_REQUIRE_SMALL_MODEL();
    server::ServeOptions o = opts(1, 2048);
    o.engine.n_queue = 0;
    LiveApi s(o);
    Conn c(s.port());
    const std::string body = ojson{{"prompt", "In the beginning"}, {"ignore_eos", true}, {"stream", true}}.dump();
    ASSERT_TRUE(c.send_raw("POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
    while (c.buffered().find("data: ") == std::string::npos) ASSERT_TRUE(c.fill(30000));
    Reply r = s.post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}});
    expect_error_shape(r, 503, "server_busy");
    ojson mr;
    EXPECT_NE(s.get("/metrics").body.find("rotor:requests_rejected_total 1"), std::string::npos);
}

TEST(Api, ConcurrentClientsGetTheirOwnGreedyOutputs) {
    ROTOR_REQUIRE_SMALL_MODEL();
    LiveApi s(opts(4));
    const char* prompts[] = {"In the beginning", "The LORD is my shepherd;", "For God so loved the world,",
                             "Blessed are the poor in spirit:", "And God said, Let there be light:", "Jesus wept."};
    const int n = 6;
    std::vector<std::string> alone(n);
    for (int i = 0; i < n; i++)
        alone[i] = js(s.post("/v1/completions", {{"prompt", prompts[i]}, {"max_tokens", 12}, {"temperature", 0}}))["choices"][0]["text"];
    std::vector<std::string> got(n * 2);
    std::vector<std::thread> th;
    for (int k = 0; k < n * 2; k++)
        th.emplace_back([&, k] {
            const bool stream = k % 2;
            Reply r = s.post("/v1/completions", {{"prompt", prompts[k % n]}, {"max_tokens", 12}, {"temperature", 0}, {"stream", stream}});
            if (!stream) {
                got[k] = js(r)["choices"][0]["text"];
                return;
            }
            bool done = false;
            for (auto& e : sse_events(r.body, &done)) got[k] += e["choices"][0]["text"].get<std::string>();
        });
    for (auto& t : th) t.join();
    for (int k = 0; k < n * 2; k++) EXPECT_EQ(got[k], alone[k % n]) << k;
}

// ---- real chat templates on the small model's weights

std::string read_file(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// The small model's tensors and vocabulary with another model's chat template (and `extra` keys).
std::string gguf_with_template(const std::string& tmpl_file, const std::string& tag,
                               const std::function<void(gguf::Writer&)>& extra = {}) {
    const std::string out = (std::filesystem::temp_directory_path() /
                             ("rotor_srv_" + tag + "_" + std::to_string(getpid()) + ".gguf")).string();
    const gguf::File f = gguf::File::open(small_model_path());
    gguf::Writer w(f.alignment());
    for (const auto& kv : f.kvs())
        if (kv.key != "tokenizer.chat_template") w.set_value(kv.key, kv.value);
    w.set_string("tokenizer.chat_template", read_file(tmpl_file));
    if (extra) extra(w);
    for (const auto& t : f.tensors()) w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data);
    w.write(out);
    return out;
}

const ojson kWeatherTools = ojson::parse(R"([{"type":"function","function":{"name":"get_weather","description":"Weather of a city",
    "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])");

TEST(Api, Qwen3TemplateToolsAndThinking) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string tmpl = testdata("templates/llama.cpp/Qwen-Qwen3-0.6B.jinja");
    ROTOR_REQUIRE_TESTDATA(tmpl);
    const std::string path = gguf_with_template(tmpl, "qwen3");
    {
        LiveApi s(opts(2, 1024, path));
        ojson p = js(s.get("/props"));
        EXPECT_EQ(p["chat_format"]["tool_calls"], "hermes");
        EXPECT_EQ(p["chat_format"]["reasoning"], true);
        const ojson msgs = ojson::parse(R"([{"role":"user","content":"What is the weather in Paris?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
              "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny"}])");
        auto usage = [&](ojson body) {
            body["max_tokens"] = 4;
            body["temperature"] = 0;
            Reply r = s.post("/v1/chat/completions", body);
            EXPECT_EQ(r.status, 200) << r.body;
            ojson j = js(r);
            EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
            return j["usage"]["prompt_tokens"].get<int>();
        };
        const int plain = usage({{"messages", msgs}});
        const int with_tools = usage({{"messages", msgs}, {"tools", kWeatherTools}});
        const int no_think = usage({{"messages", msgs}, {"tools", kWeatherTools}, {"chat_template_kwargs", {{"enable_thinking", false}}}});
        EXPECT_GT(with_tools, plain + 20);  // the tool list is in the system prompt
        EXPECT_GT(no_think, with_tools);    // enable_thinking=false adds an empty <think></think>
        // tool_choice none: no tools rendered
        EXPECT_EQ(usage({{"messages", msgs}, {"tools", kWeatherTools}, {"tool_choice", "none"}}), plain);
        // streaming with tools offered completes with a finish reason and [DONE]
        Reply st = s.post("/v1/chat/completions", {{"messages", msgs}, {"tools", kWeatherTools}, {"max_tokens", 8}, {"stream", true}});
        bool done = false;
        auto evs = sse_events(st.body, &done);
        EXPECT_TRUE(done);
        ASSERT_FALSE(evs.empty());
        EXPECT_FALSE(evs.back()["choices"][0]["finish_reason"].is_null());
    }
    std::filesystem::remove(path);
}

TEST(Api, Llama31TemplateWithTools) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string tmpl = testdata("templates/llama.cpp/meta-llama-Llama-3.1-8B-Instruct.jinja");
    ROTOR_REQUIRE_TESTDATA(tmpl);
    const std::string path = gguf_with_template(tmpl, "llama31");
    {
        LiveApi s(opts(1, 2048, path));
        EXPECT_EQ(js(s.get("/props"))["chat_format"]["tool_calls"], "llama3");
        Reply r = s.post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Weather in Oslo?"}}}},
                                                  {"tools", kWeatherTools}, {"max_tokens", 4}});
        EXPECT_EQ(r.status, 200) << r.body;
        // Whatever the template makes of odd input (here two parallel calls, which Llama 3.1's template
        // refuses), the answer is a 200 or a 400, never a crash.
        const ojson calls = ojson::parse(R"([{"role":"user","content":"x"},{"role":"assistant","tool_calls":[
            {"function":{"name":"f","arguments":"{}"}},{"function":{"name":"g","arguments":"{}"}}]}])");
        Reply bad = s.post("/v1/chat/completions", {{"messages", calls}, {"max_tokens", 2}});
        EXPECT_TRUE(bad.status == 200 || bad.status == 400) << bad.body;
    }
    std::filesystem::remove(path);
}

// Gemma 4's template: its format is detected, its recommended sampling (temperature 1.0, top_p 0.95,
// top_k 64) is the default, and requests that leave sampling out get exactly that.
TEST(Api, Gemma4TemplateFormatAndSamplingDefaults) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string tmpl = testdata("templates/llama.cpp/google-gemma-4-31B-it.jinja");
    ROTOR_REQUIRE_TESTDATA(tmpl);
    const std::string path = gguf_with_template(tmpl, "gemma4");
    {
        LiveApi s(opts(2, 1024, path));
        ojson p = js(s.get("/props"));
        EXPECT_EQ(p["chat_format"]["tool_calls"], "gemma4");
        EXPECT_EQ(p["chat_format"]["reasoning"], true);
        const ojson& d = p["default_generation_settings"]["params"];
        EXPECT_FLOAT_EQ(d["temperature"].get<float>(), 1.0f);
        EXPECT_FLOAT_EQ(d["top_p"].get<float>(), 0.95f);
        EXPECT_EQ(d["top_k"], 64);
        EXPECT_FLOAT_EQ(d["min_p"].get<float>(), 0.05f);
        const ojson ask = ojson::parse(R"([{"role":"user","content":"What is the weather in Paris?"}])");
        auto text = [&](ojson body) {
            body["messages"] = ask;
            body["max_tokens"] = 16;
            body["seed"] = 7;
            Reply r = s.post("/v1/chat/completions", body);
            EXPECT_EQ(r.status, 200) << r.body;
            return js(r)["choices"][0]["message"]["content"].get<std::string>();
        };
        const std::string implicit = text(ojson::object());
        EXPECT_EQ(implicit, text({{"temperature", 1.0}, {"top_p", 0.95}, {"top_k", 64}}));
        // a tool-call round trip renders (the calls in Gemma 4's syntax), with thinking on or off
        const ojson msgs = ojson::parse(R"([{"role":"user","content":"What is the weather in Paris?"},
            {"role":"assistant","content":"Let me check.","tool_calls":[{"id":"call_1","type":"function",
              "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny"}])");
        for (bool think : {false, true}) {
            Reply r = s.post("/v1/chat/completions", {{"messages", msgs}, {"tools", kWeatherTools}, {"max_tokens", 4},
                                                      {"temperature", 0}, {"chat_template_kwargs", {{"enable_thinking", think}}}});
            EXPECT_EQ(r.status, 200) << r.body;
        }
    }
    std::filesystem::remove(path);
}

// Recommendations in the GGUF (llama.cpp's general.sampling.* keys) win over the template's family.
TEST(Api, SamplingDefaultsFromGgufKeys) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string tmpl = testdata("templates/llama.cpp/google-gemma-4-31B-it.jinja");
    ROTOR_REQUIRE_TESTDATA(tmpl);
    const std::string path = gguf_with_template(tmpl, "sampling", [](gguf::Writer& w) {
        w.set_f32("general.sampling.temp", 0.6f);
        w.set_i32("general.sampling.top_k", 20);
        w.set_f32("general.sampling.min_p", 0.0f);
        w.set_bool("general.sampling.top_p", true);  // unusable: skipped with a warning
    });
    {
        LiveApi s(opts(1, 512, path));
        const ojson d = js(s.get("/props"))["default_generation_settings"]["params"];
        EXPECT_FLOAT_EQ(d["temperature"].get<float>(), 0.6f);
        EXPECT_EQ(d["top_k"], 20);
        EXPECT_FLOAT_EQ(d["min_p"].get<float>(), 0.0f);
        EXPECT_FLOAT_EQ(d["top_p"].get<float>(), 0.95f);
        // completions take the model's defaults too
        auto text = [&](ojson body) {
            body["prompt"] = "In the beginning";
            body["max_tokens"] = 16;
            body["seed"] = 11;
            Reply r = s.post("/v1/completions", body);
            EXPECT_EQ(r.status, 200) << r.body;
            return js(r)["choices"][0]["text"].get<std::string>();
        };
        EXPECT_EQ(text(ojson::object()), text({{"temperature", 0.6}, {"top_k", 20}, {"min_p", 0.0}, {"top_p", 0.95}}));
    }
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace rotor::test
