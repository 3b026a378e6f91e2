#include "server/api.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>

#include "chat/chat_render.h"
#include "common/error.h"
#include "model/model.h"
#include "server/chat_stream.h"
#include "server/reply.h"
#include "tokenizer/vocab.h"

namespace rotor::server {

namespace {

using Clock = std::chrono::steady_clock;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(HttpResponse& res, int status, const json& j) {
    res.send(status, "application/json; charset=utf-8", dump(j));
}

void send_error(HttpResponse& res, const ApiError& e) { send_json(res, e.status, e.to_json()); }

ApiError error(int status, std::string message, std::string type = "invalid_request_error", std::string param = {},
               std::string code = {}) {
    ApiError e;
    e.status = status;
    e.message = std::move(message);
    e.type = std::move(type);
    e.param = std::move(param);
    e.code = std::move(code);
    return e;
}

std::string random_id(const char* prefix) {
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string s = prefix;
    for (int i = 0; i < 24; i++) s += abc[rng() % (sizeof abc - 1)];
    return s;
}

// Constant-time comparison: the key check should not leak how many leading bytes matched.
bool same_secret(std::string_view a, std::string_view b) {
    unsigned diff = a.size() == b.size() ? 0u : 1u;
    for (size_t i = 0; i < a.size(); i++) diff |= (unsigned)(uint8_t)a[i] ^ (unsigned)(uint8_t)(i < b.size() ? b[i] : 0);
    return diff == 0;
}

}  // namespace

ApiServer::ApiServer(ServeOptions opt) : opt_(std::move(opt)) {
    model_id_ = opt_.alias;
    if (model_id_.empty()) {
        std::string base = opt_.model_path.substr(opt_.model_path.find_last_of('/') + 1);
        if (base.size() > 5 && base.substr(base.size() - 5) == ".gguf") base.resize(base.size() - 5);
        model_id_ = base;
    }
}

ApiServer::~ApiServer() { shutdown(); }

void ApiServer::shutdown() {
    if (engine_) engine_->stop();
}

void ApiServer::load() {
    model_ = Model::load(opt_.model_path);
    vocab_ = std::make_unique<Vocab>(Vocab::from_gguf(model_->file));
    for (const std::string& w : vocab_->warnings()) fprintf(stderr, "rotor serve: warning: %s\n", w.c_str());
    if (!opt_.chat_template_file.empty()) {
        std::ifstream f(opt_.chat_template_file, std::ios::binary);
        if (!f) throw Error("cannot read the chat template " + opt_.chat_template_file);
        std::stringstream ss;
        ss << f.rdbuf();
        template_source_ = ss.str();
    } else if (auto t = model_->file.get_string("tokenizer.chat_template")) {
        template_source_ = std::string(*t);
    }
    if (!template_source_.empty()) {
        const std::string bos = vocab_->bos() >= 0 ? vocab_->token(vocab_->bos()).text : "";
        const std::string eos = vocab_->eos() >= 0 ? vocab_->token(vocab_->eos()).text : "";
        try {
            template_ = std::make_unique<chat::ChatTemplate>(template_source_, bos, eos);
        } catch (const std::exception& e) {
            if (!opt_.chat_template_file.empty()) throw Error("the chat template does not parse: " + std::string(e.what()));
            fprintf(stderr, "rotor serve: warning: the model's chat template does not parse (%s); "
                            "/v1/chat/completions is disabled\n", e.what());
        }
    } else {
        fprintf(stderr, "rotor serve: warning: the model has no chat template; /v1/chat/completions is disabled\n");
    }
    {
        std::vector<std::string> warnings;
        sampling_defaults_ = default_sampling(model_->file, template_ ? &template_->format() : nullptr, &warnings);
        for (const std::string& w : warnings) fprintf(stderr, "rotor serve: warning: %s\n", w.c_str());
    }
    EngineConfig ec = opt_.engine;
    if (ec.n_ctx_per_slot <= 0) ec.n_ctx_per_slot = std::min(model_->cfg.n_ctx_train > 0 ? model_->cfg.n_ctx_train : 4096, 4096);
    if (ec.n_ctx_per_slot > model_->cfg.n_ctx_train && model_->cfg.n_ctx_train > 0)
        fprintf(stderr, "rotor serve: warning: --ctx-per-slot %d is beyond the model's trained context %d\n",
                ec.n_ctx_per_slot, model_->cfg.n_ctx_train);
    engine_ = std::make_unique<Engine>(*model_, *vocab_, ec);
    ready_ = true;
}

RequestLimits ApiServer::limits() const {
    RequestLimits l;
    l.n_vocab = vocab_->n_tokens();
    l.model_names = {model_id_};
    const std::string base = opt_.model_path.substr(opt_.model_path.find_last_of('/') + 1);
    if (base != model_id_) l.model_names.push_back(base);
    if (opt_.model_path != base) l.model_names.push_back(opt_.model_path);
    l.sampling = sampling_defaults_;
    return l;
}

std::vector<int32_t> ApiServer::tokenize_prompt(const std::string& text) const {
    std::string_view t = text;
    // Templates usually write the BOS text themselves; tokenizing with add_special would add a second.
    if (vocab_->add_bos() && vocab_->bos() >= 0) {
        const std::string& bos = vocab_->token(vocab_->bos()).text;
        if (!bos.empty() && t.substr(0, bos.size()) == bos) t.remove_prefix(bos.size());
    }
    return vocab_->tokenize(t, true, true);
}

void ApiServer::handle(const HttpRequest& req, HttpResponse& res) {
    const std::string& p = req.path;
    const bool get = req.method == "GET" || req.method == "HEAD";
    const bool post = req.method == "POST";
    if (p == "/health" || p == "/v1/health") {
        if (!get) return send_error(res, error(405, "use GET " + p));
        if (!ready()) return send_error(res, error(503, "Loading model", "unavailable_error", {}, "model_loading"));
        return send_json(res, 200, {{"status", "ok"}});
    }
    if (!opt_.api_key.empty()) {
        const std::string* auth = req.header("authorization");
        const std::string* xkey = req.header("x-api-key");
        bool ok = false;
        if (auth && auth->size() > 7 && (auth->compare(0, 7, "Bearer ") == 0 || auth->compare(0, 7, "bearer ") == 0))
            ok = same_secret(std::string_view(*auth).substr(7), opt_.api_key);
        if (!ok && xkey) ok = same_secret(*xkey, opt_.api_key);
        if (!ok) {
            const char* msg = auth || xkey ? "Incorrect API key provided." : "No API key provided: send 'Authorization: Bearer KEY'.";
            return send_error(res, error(401, msg, "invalid_request_error", {}, "invalid_api_key"));
        }
    }
    struct Route {
        const char* path;
        bool post;
    };
    static const Route routes[] = {
        {"/v1/chat/completions", true}, {"/chat/completions", true}, {"/v1/completions", true},
        {"/completions", true},         {"/tokenize", true},         {"/detokenize", true},
        {"/v1/models", false},          {"/models", false},          {"/metrics", false},
        {"/props", false},              {"/slots", false},
    };
    const Route* route = nullptr;
    for (const Route& r : routes)
        if (p == r.path) route = &r;
    if (!route) return send_error(res, error(404, "no such endpoint: " + req.method + " " + p, "invalid_request_error", {}, "not_found"));
    if (route->post ? !post : !get)
        return send_error(res, error(405, std::string("use ") + (route->post ? "POST " : "GET ") + p));
    if (!ready()) return send_error(res, error(503, "Loading model", "unavailable_error", {}, "model_loading"));

    if (p == "/v1/chat/completions" || p == "/chat/completions") return chat_completions(req, res);
    if (p == "/v1/completions" || p == "/completions") return completions(req, res);
    if (p == "/tokenize") return tokenize(req, res);
    if (p == "/detokenize") return detokenize(req, res);
    if (p == "/metrics") return metrics(res);
    if (p == "/props") return props(res);
    if (p == "/slots") return slots(res);
    return models(res);
}

// ---- generation endpoints

namespace {

// Runs until the task's final event, handing each event to on_event. Returns false when the client
// went away or a write failed: the generation is cancelled then, freeing its slot.
template <class F>
bool pump(GenTask& task, HttpResponse& res, F&& on_event) {
    std::vector<GenEvent> evs;
    Clock::time_point last_check = Clock::now();
    for (;;) {
        evs.clear();
        const bool got = task.drain(evs, 50);
        // Checked on a clock, not only when idle: a busy generation delivers events every few ms.
        if (!got || Clock::now() - last_check > std::chrono::milliseconds(50)) {
            last_check = Clock::now();
            if (res.client_gone()) {
                task.cancel();
                return false;
            }
        }
        for (GenEvent& e : evs) {
            if (!on_event(e)) {
                task.cancel();
                return false;
            }
            if (e.done) return true;
        }
    }
}

// Streams or collects a task's events through a ChatReply / CompletionReply.
template <class Reply>
void respond(GenTask& task, HttpResponse& res, Reply& reply, bool stream) {
    if (stream) {
        if (!res.begin_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}})) return task.cancel();
        pump(task, res, [&](GenEvent& ev) { return res.write(reply.stream(ev)); });
        return;
    }
    GenEvent last;
    if (!pump(task, res, [&](GenEvent& ev) {
            reply.add(ev);
            if (ev.done) last = ev;
            return true;
        }))
        return;
    if (last.finish == FinishReason::Error) return send_error(res, error(500, last.error, "server_error"));
    send_json(res, 200, reply.body());
}

GenRequest gen_request(const ParsedRequest& r) {
    GenRequest g;
    g.sampling = r.sampling;
    g.max_tokens = r.max_tokens;
    g.stop = r.stop;
    g.ignore_eos = r.ignore_eos;
    g.want_logprobs = r.logprobs;
    return g;
}

ReplyOptions reply_options(const ParsedRequest& r, const char* id_prefix, const std::string& model) {
    ReplyOptions o;
    o.id = random_id(id_prefix);
    o.model = model;
    o.created = (int64_t)time(nullptr);
    o.include_usage = r.include_usage;
    o.logprobs = r.logprobs;
    o.ignore_eos = r.ignore_eos;
    return o;
}

ApiError prompt_too_long(size_t n, int ctx, const char* param) {
    return error(400, "the prompt has " + std::to_string(n) + " tokens; the context per request is " + std::to_string(ctx) +
                          " tokens (prompt and reply together)",
                 "invalid_request_error", param, "context_length_exceeded");
}

}  // namespace

void ApiServer::chat_completions(const HttpRequest& req, HttpResponse& res) {
    ParsedRequest r;
    ApiError err;
    if (!parse_request(Endpoint::Chat, req.body, limits(), &r, &err)) return send_error(res, err);
    if (!template_)
        return send_error(res, error(400, "this model has no usable chat template; use /v1/completions, or start the "
                                          "server with --chat-template-file"));
    std::string prompt;
    try {
        const json msgs = chat::normalize_tool_call_arguments(r.messages);
        prompt = template_->render(msgs, r.tools, true, r.chat_template_kwargs);
        chat::complete_generation_prompt(prompt, template_->format());
    } catch (const std::exception& e) {
        return send_error(res, error(400, std::string("the chat template failed on these messages: ") + e.what(),
                                     "invalid_request_error", "messages"));
    }
    GenRequest g = gen_request(r);
    try {
        g.prompt = tokenize_prompt(prompt);
    } catch (const std::exception& e) {
        return send_error(res, error(400, std::string("cannot tokenize the prompt: ") + e.what(), "invalid_request_error", "messages"));
    }
    const int ctx = engine_->config().n_ctx_per_slot;
    if (g.prompt.empty()) return send_error(res, error(400, "the rendered prompt is empty", "invalid_request_error", "messages"));
    if ((int)g.prompt.size() >= ctx) return send_error(res, prompt_too_long(g.prompt.size(), ctx, "messages"));
    std::string why;
    std::shared_ptr<GenTask> task = engine_->submit(std::move(g), &why);
    if (!task) return send_error(res, error(503, why, "server_error", {}, "server_busy"));
    const chat::ChatFormat& fmt = template_->format();
    ChatReply reply(*vocab_, reply_options(r, "chatcmpl-", model_id_), fmt, chat::prompt_opens_reasoning(prompt, fmt),
                    r.tools.is_array() ? &r.tools : nullptr);
    respond(*task, res, reply, r.stream);
}

void ApiServer::completions(const HttpRequest& req, HttpResponse& res) {
    ParsedRequest r;
    ApiError err;
    if (!parse_request(Endpoint::Completion, req.body, limits(), &r, &err)) return send_error(res, err);
    GenRequest g = gen_request(r);
    if (r.prompt_is_tokens) {
        g.prompt = r.prompt_tokens;
    } else {
        try {
            g.prompt = vocab_->tokenize(r.prompt_text, true, true);
        } catch (const std::exception& e) {
            return send_error(res, error(400, std::string("cannot tokenize the prompt: ") + e.what(), "invalid_request_error", "prompt"));
        }
    }
    const int ctx = engine_->config().n_ctx_per_slot;
    if (g.prompt.empty())
        return send_error(res, error(400, "the prompt is empty (and this vocabulary adds no BOS token)", "invalid_request_error", "prompt"));
    if ((int)g.prompt.size() >= ctx) return send_error(res, prompt_too_long(g.prompt.size(), ctx, "prompt"));
    std::string why;
    std::shared_ptr<GenTask> task = engine_->submit(std::move(g), &why);
    if (!task) return send_error(res, error(503, why, "server_error", {}, "server_busy"));
    CompletionReply reply(*vocab_, reply_options(r, "cmpl-", model_id_));
    respond(*task, res, reply, r.stream);
}

// ---- utility endpoints

void ApiServer::tokenize(const HttpRequest& req, HttpResponse& res) {
    json b;
    try {
        b = json::parse(req.body);
    } catch (const std::exception& e) {
        return send_error(res, error(400, "the request body is not valid JSON: " + utf8_sanitize(e.what()), "invalid_request_error", {}, "invalid_json"));
    }
    if (!b.is_object() || !b.contains("content") || !b["content"].is_string())
        return send_error(res, error(400, "'content' must be a string", "invalid_request_error", "content"));
    auto flag = [&](const char* name, bool def) -> int {
        if (!b.contains(name) || b[name].is_null()) return def;
        return b[name].is_boolean() ? (int)b[name].get<bool>() : -1;
    };
    const int add_special = flag("add_special", false), parse_special = flag("parse_special", true),
              with_pieces = flag("with_pieces", false);
    if (add_special < 0 || parse_special < 0 || with_pieces < 0)
        return send_error(res, error(400, "'add_special', 'parse_special' and 'with_pieces' must be booleans"));
    std::vector<int32_t> ids;
    try {
        ids = vocab_->tokenize(b["content"].get<std::string>(), add_special, parse_special);
    } catch (const std::exception& e) {
        return send_error(res, error(400, std::string("cannot tokenize: ") + e.what(), "invalid_request_error", "content"));
    }
    json toks = json::array();
    for (int32_t id : ids) {
        if (!with_pieces) {
            toks.push_back(id);
            continue;
        }
        const std::string& piece = vocab_->token_to_piece(id, true);
        json pj;
        if (utf8_sanitize(piece) == piece) {
            pj = piece;
        } else {  // part of a character: the bytes, as llama-server gives them
            pj = json::array();
            for (char c : piece) pj.push_back((int)(uint8_t)c);
        }
        toks.push_back({{"id", id}, {"piece", std::move(pj)}});
    }
    send_json(res, 200, {{"tokens", std::move(toks)}});
}

void ApiServer::detokenize(const HttpRequest& req, HttpResponse& res) {
    json b;
    try {
        b = json::parse(req.body);
    } catch (const std::exception& e) {
        return send_error(res, error(400, "the request body is not valid JSON: " + utf8_sanitize(e.what()), "invalid_request_error", {}, "invalid_json"));
    }
    if (!b.is_object() || !b.contains("tokens") || !b["tokens"].is_array())
        return send_error(res, error(400, "'tokens' must be an array of token ids", "invalid_request_error", "tokens"));
    std::vector<int32_t> ids;
    for (const json& t : b["tokens"]) {
        if (!t.is_number_integer() || (t.is_number_unsigned() && t.get<uint64_t>() > (uint64_t)INT32_MAX) ||
            !vocab_->valid((int32_t)t.get<int64_t>()) || t.get<int64_t>() > INT32_MAX)
            return send_error(res, error(400, "token " + dump(t) + " is not a token id of this model (0.." +
                                                  std::to_string(vocab_->n_tokens() - 1) + ")",
                                         "invalid_request_error", "tokens"));
        ids.push_back((int32_t)t.get<int64_t>());
    }
    send_json(res, 200, {{"content", utf8_sanitize(vocab_->detokenize(ids))}});
}

void ApiServer::models(HttpResponse& res) {
    json m = json::object();
    m["id"] = model_id_;
    m["object"] = "model";
    m["created"] = (int64_t)time(nullptr);
    m["owned_by"] = "rotor";
    m["meta"] = {{"n_ctx_per_slot", engine_->config().n_ctx_per_slot},
                 {"n_ctx_train", model_->cfg.n_ctx_train},
                 {"n_vocab", model_->cfg.n_vocab},
                 {"n_params_bytes", model_->weight_bytes()}};
    send_json(res, 200, {{"object", "list"}, {"data", json::array({std::move(m)})}});
}

void ApiServer::props(HttpResponse& res) {
    const EngineConfig& c = engine_->config();
    const SamplerParams d = limits().sampling;
    json params = {{"temperature", d.temperature}, {"top_k", d.top_k},       {"top_p", d.top_p},
                   {"min_p", d.min_p},             {"typical_p", d.typical_p}, {"repeat_penalty", d.repetition_penalty},
                   {"repeat_last_n", d.penalty_last_n}, {"presence_penalty", d.presence_penalty},
                   {"frequency_penalty", d.frequency_penalty}, {"max_tokens", -1}};
    json p = json::object();
    p["default_generation_settings"] = {{"n_ctx", c.n_ctx_per_slot}, {"params", params}};
    p["total_slots"] = c.n_slots;
    p["n_ctx_per_slot"] = c.n_ctx_per_slot;
    p["n_batch"] = c.n_batch;
    p["n_queue"] = c.n_queue;
    p["n_threads"] = c.n_threads;
    p["device"] = engine_->device();
    p["model_alias"] = model_id_;
    p["model_path"] = opt_.model_path;
    p["chat_template"] = template_source_;
    p["bos_token"] = vocab_->bos() >= 0 ? vocab_->token(vocab_->bos()).text : "";
    p["eos_token"] = vocab_->eos() >= 0 ? vocab_->token(vocab_->eos()).text : "";
    const EngineMetrics m = engine_->metrics();
    p["kv_cache"] = {{"type_k", c.kv_k},
                     {"type_v", c.kv_v},
                     {"block_tokens", c.block_tokens},
                     {"block_bytes", engine_->kv_block_bytes()},
                     {"bytes_capacity", m.kv_bytes_capacity}};
    if (template_) {
        const chat::ChatFormat& f = template_->format();
        const char* style = f.tool_calls == chat::ToolCallStyle::Hermes    ? "hermes"
                            : f.tool_calls == chat::ToolCallStyle::QwenXml ? "qwen-xml"
                            : f.tool_calls == chat::ToolCallStyle::Llama3  ? "llama3"
                            : f.tool_calls == chat::ToolCallStyle::Gemma4  ? "gemma4"
                                                                           : "none";
        p["chat_format"] = {{"tool_calls", style}, {"reasoning", f.reasoning}};
    }
    p["build_info"] = "rotor";
    send_json(res, 200, p);
}

void ApiServer::slots(HttpResponse& res) {
    json arr = json::array();
    for (const SlotInfo& s : engine_->slots()) {
        json j = json::object();
        j["id"] = s.id;
        j["n_ctx"] = s.n_ctx;
        j["is_processing"] = s.busy;
        j["id_task"] = s.busy ? json(s.task_id) : json(nullptr);
        j["n_cached_tokens"] = s.n_cached;
        j["n_prompt_tokens"] = s.n_prompt;
        j["n_prompt_tokens_processed"] = s.n_prompt_done;
        j["n_decoded"] = s.n_generated;
        arr.push_back(std::move(j));
    }
    send_json(res, 200, arr);
}

void ApiServer::metrics(HttpResponse& res) {
    const EngineMetrics m = engine_->metrics();
    const EngineConfig& c = engine_->config();
    std::string out;
    char buf[512];
    auto metric = [&](const char* name, const char* type, const char* help, double v, const std::string& labels = {}) {
        snprintf(buf, sizeof buf, "# HELP rotor:%s %s\n# TYPE rotor:%s %s\nrotor:%s%s %.10g\n", name, help, name, type,
                 name, labels.c_str(), v);
        out += buf;
    };
    const std::string kv_labels = "{type_k=\"" + c.kv_k + "\",type_v=\"" + c.kv_v + "\"}";
    metric("prompt_tokens_total", "counter", "Number of prompt tokens processed.", (double)m.prompt_tokens_total);
    metric("prompt_seconds_total", "counter", "Prompt process time", m.prompt_seconds_total);
    metric("tokens_predicted_total", "counter", "Number of generation tokens processed.", (double)m.tokens_predicted_total);
    metric("tokens_predicted_seconds_total", "counter", "Predict process time", m.tokens_predicted_seconds_total);
    metric("prompt_tokens_seconds", "gauge", "Average prompt throughput in tokens/s.",
           m.prompt_seconds_total > 0 ? (double)m.prompt_tokens_total / m.prompt_seconds_total : 0.0);
    metric("predicted_tokens_seconds", "gauge", "Average generation throughput in tokens/s.",
           m.tokens_predicted_seconds_total > 0 ? (double)m.tokens_predicted_total / m.tokens_predicted_seconds_total : 0.0);
    metric("prompt_tokens_cached_total", "counter", "Prompt tokens reused from the KV pool instead of computed.",
           (double)m.prompt_tokens_cached_total);
    metric("n_decode_total", "counter", "Total number of forward passes.", (double)m.n_decode_total);
    metric("n_busy_slots_per_decode", "gauge", "Average number of busy slots per forward pass.",
           m.n_decode_total ? (double)m.n_busy_slots_total / (double)m.n_decode_total : 0.0);
    metric("requests_processing", "gauge", "Number of requests processing.", m.requests_processing);
    metric("requests_deferred", "gauge", "Number of requests deferred.", m.requests_deferred);
    metric("requests_total", "counter", "Requests finished (any reason).", (double)m.requests_total);
    metric("requests_cancelled_total", "counter", "Requests cancelled because the client went away.",
           (double)m.requests_cancelled_total);
    metric("requests_rejected_total", "counter", "Requests refused with 503 because the queue was full.",
           (double)m.requests_rejected_total);
    metric("kv_cache_usage_ratio", "gauge", "KV-cache usage. 1 means 100 percent usage.",
           m.kv_blocks_total ? (double)m.kv_blocks_used / (double)m.kv_blocks_total : 0.0);
    metric("kv_cache_tokens", "gauge", "KV-cache positions held by all slots.", (double)m.kv_tokens);
    metric("kv_cache_bytes_used", "gauge", "KV pool bytes in use (whole blocks).", (double)m.kv_bytes_used, kv_labels);
    metric("kv_cache_bytes_capacity", "gauge", "KV pool bytes allocated.", (double)m.kv_bytes_capacity, kv_labels);
    metric("slots_total", "gauge", "Number of slots.", c.n_slots);
    metric("ctx_per_slot", "gauge", "Context positions per request.", c.n_ctx_per_slot);
    res.send(200, "text/plain; version=0.0.4; charset=utf-8", out);
}

}  // namespace rotor::server
