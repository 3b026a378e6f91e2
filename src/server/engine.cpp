#include "server/engine.h"

#include <algorithm>
#include <thread>

#include "common/error.h"
#include "model/model.h"
#include "server/backend.h"
#include "sample/stop.h"
#include "tokenizer/vocab.h"

namespace rotor::server {

using Clock = std::chrono::steady_clock;

namespace {

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    const size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

}  // namespace

const char* finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::Stop: return "stop";
        case FinishReason::Length: return "length";
        case FinishReason::Cancelled: return "cancelled";
        case FinishReason::Error: return "error";
        case FinishReason::None: break;
    }
    return "none";
}

// ---- GenTask

void GenTask::push(GenEvent ev) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        events_.push_back(std::move(ev));
    }
    cv_.notify_all();
}

bool GenTask::next(GenEvent& out, int timeout_ms) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); })) return false;
    out = std::move(events_.front());
    events_.pop_front();
    return true;
}

bool GenTask::drain(std::vector<GenEvent>& out, int timeout_ms) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); })) return false;
    while (!events_.empty()) {
        out.push_back(std::move(events_.front()));
        events_.pop_front();
    }
    return true;
}

// ---- slots

struct Engine::Slot {
    int id = 0;
    std::shared_ptr<GenTask> task;  // null while idle
    std::vector<int32_t> cache;     // tokens whose K/V the pool holds at positions [0, size)
    size_t n_prompt_done = 0;       // prompt tokens in the cache
    int32_t pending = -1;           // sampled but not fed yet (decode phase)
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<StreamDecoder> dec;
    std::unique_ptr<StopMatcher> stop;
    GenStats stats;
    Clock::time_point t_start, t_first;
    uint64_t last_used = 0;
    uint64_t admit_seq = 0;  // order of admission: older prompts are chunked first

    bool busy() const { return task != nullptr; }
    bool prompting() const { return busy() && pending < 0; }
};

Engine::Engine(const Model& model, const Vocab& vocab, EngineConfig cfg) : model_(model), vocab_(vocab), cfg_(cfg) {
    if (cfg_.n_slots < 1 || cfg_.n_slots > 1024) throw Error("--slots must be between 1 and 1024");
    if (cfg_.n_ctx_per_slot < 2) throw Error("--ctx-per-slot must be at least 2");
    if (cfg_.n_batch < 1) throw Error("--batch must be at least 1");
    if (cfg_.n_queue < 0) throw Error("--queue must not be negative");
    if (cfg_.block_tokens < 1) throw Error("KV block size must be positive");
    if (vocab.n_tokens() != model.cfg.n_vocab)
        throw Error("the vocabulary has " + std::to_string(vocab.n_tokens()) + " tokens but the model " +
                    std::to_string(model.cfg.n_vocab));
    backend_ = cfg_.gpu ? make_gpu_backend(model, cfg_) : make_cpu_backend(model, cfg_);
    cfg_.n_threads = backend_->n_threads();
    device_ = backend_->device();
    for (int i = 0; i < cfg_.n_slots; i++) {
        slots_.push_back(std::make_unique<Slot>());
        slots_.back()->id = i;
    }
    {
        std::lock_guard<std::mutex> lk(mu_);
        publish_locked();
    }
    thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { stop(); }

void Engine::stop() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

uint64_t Engine::kv_block_bytes() const { return backend_->kv_usage().block_bytes; }

std::shared_ptr<GenTask> Engine::submit(GenRequest req, std::string* why) {
    auto task = std::make_shared<GenTask>();
    task->req_ = std::move(req);
    task->t_submit_ = Clock::now();
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stop_) {
            if (why) *why = "the server is shutting down";
            return nullptr;
        }
        int busy = admitting_;
        for (const SlotInfo& s : slot_info_) busy += s.busy ? 1 : 0;
        // Waiting beyond the free slots is what the queue limit bounds.
        const int waiting = (int)queue_.size() - (cfg_.n_slots - busy);
        if (waiting >= cfg_.n_queue) {
            metrics_.requests_rejected_total++;
            if (why)
                *why = "the server is busy: all " + std::to_string(cfg_.n_slots) + " slots are in use and " +
                       std::to_string(queue_.size()) + " requests are waiting";
            return nullptr;
        }
        task->id_ = next_id_++;
        queue_.push_back(task);
        metrics_.requests_deferred = (int)queue_.size();
    }
    cv_.notify_all();
    return task;
}

EngineMetrics Engine::metrics() const {
    std::lock_guard<std::mutex> lk(mu_);
    return metrics_;
}

std::vector<SlotInfo> Engine::slots() const {
    std::lock_guard<std::mutex> lk(mu_);
    return slot_info_;
}

void Engine::publish_locked() {
    slot_info_.resize(slots_.size());
    int busy = 0;
    int64_t tokens = 0;
    for (size_t i = 0; i < slots_.size(); i++) {
        const Slot& s = *slots_[i];
        SlotInfo& o = slot_info_[i];
        o.id = s.id;
        o.busy = s.busy();
        o.task_id = s.busy() ? s.task->id_ : 0;
        o.n_ctx = cfg_.n_ctx_per_slot;
        o.n_cached = (int)s.cache.size();
        o.n_prompt = s.busy() ? s.stats.n_prompt : 0;
        o.n_prompt_done = s.busy() ? (int)s.n_prompt_done : 0;
        o.n_generated = s.busy() ? s.stats.n_generated : 0;
        busy += s.busy() ? 1 : 0;
        tokens += (int64_t)s.cache.size();
    }
    metrics_.requests_processing = busy;
    metrics_.requests_deferred = (int)queue_.size();
    const KvUsage u = backend_->kv_usage();
    metrics_.kv_bytes_used = u.bytes_used;
    metrics_.kv_bytes_capacity = u.bytes_capacity;
    metrics_.kv_blocks_total = u.blocks_total;
    metrics_.kv_blocks_used = u.blocks_used;
    metrics_.kv_tokens = tokens;
}

void Engine::start_slot(Slot& s, std::shared_ptr<GenTask> task) {
    const GenRequest& r = task->req_;
    s.task = std::move(task);
    s.t_start = Clock::now();
    s.stats = GenStats{};
    s.stats.slot = s.id;
    s.stats.n_prompt = (int)r.prompt.size();
    s.stats.queue_ms = ms_between(s.task->t_submit_, s.t_start);
    s.pending = -1;
    s.admit_seq = ++use_clock_;
    if (r.prompt.empty()) return finish_slot(s, FinishReason::Error, "the prompt is empty");
    if ((int)r.prompt.size() >= cfg_.n_ctx_per_slot)
        return finish_slot(s, FinishReason::Error,
                           "the prompt has " + std::to_string(r.prompt.size()) +
                               " tokens; the context per request is " + std::to_string(cfg_.n_ctx_per_slot));
    for (int32_t t : r.prompt)
        if (t < 0 || t >= model_.cfg.n_vocab)
            return finish_slot(s, FinishReason::Error, "token id " + std::to_string(t) + " is outside the vocabulary");
    try {
        s.sampler = std::make_unique<Sampler>(r.sampling);
    } catch (const std::exception& e) {
        return finish_slot(s, FinishReason::Error, e.what());
    }
    s.stats.seed = s.sampler->seed();
    s.dec = std::make_unique<StreamDecoder>(vocab_);
    s.stop = std::make_unique<StopMatcher>(r.stop);
    // llama.cpp's server feeds the prompt to the penalty history too.
    if (r.sampling.penalty_last_n != 0) {
        for (int32_t t : r.prompt) s.sampler->accept(t);
    }

    // Prefix reuse: the longest common prefix with any slot's cached tokens, keeping at least the
    // last prompt token to compute (its logits give the first generated token).
    const size_t max_reuse = r.prompt.size() - 1;
    size_t best_len = 0;
    Slot* best = nullptr;
    for (auto& o : slots_) {
        const size_t n =
            (size_t)backend_->reusable_prefix(o->id, (int)std::min(common_prefix(o->cache, r.prompt), max_reuse));
        if (n > best_len) {
            best_len = n;
            best = o.get();
        }
    }
    if (best == &s) {
        backend_->seq_truncate(s.id, (int)best_len);
        s.cache.resize(best_len);
    } else {
        backend_->seq_truncate(s.id, 0);
        s.cache.clear();
        if (best && best_len > 0) {
            backend_->seq_share_prefix(best->id, s.id, (int)best_len);
            s.cache.assign(r.prompt.begin(), r.prompt.begin() + (ptrdiff_t)best_len);
        }
    }
    s.n_prompt_done = s.cache.size();
    s.stats.n_cached = (int)best_len;
}

void Engine::finish_slot(Slot& s, FinishReason why, const std::string& error) {
    GenEvent ev;
    ev.done = true;
    ev.finish = why;
    ev.error = error;
    if ((why == FinishReason::Stop || why == FinishReason::Length) && s.dec && s.stop && !s.stop->stopped()) {
        // End of generation: release what the detokenizer and the stop matcher held back.
        StopMatcher::Output o = s.stop->feed(s.dec->flush());
        ev.text = std::move(o.text);
        if (!o.stopped) ev.text += s.stop->flush();
    }
    const Clock::time_point now = Clock::now();
    if (s.stats.n_generated > 0) s.stats.gen_ms = ms_between(s.t_first, now);
    else s.stats.prompt_ms = ms_between(s.t_start, now);
    ev.stats = s.stats;
    std::shared_ptr<GenTask> task = std::move(s.task);
    s.task.reset();
    s.sampler.reset();
    s.dec.reset();
    s.stop.reset();
    s.pending = -1;
    s.last_used = ++use_clock_;
    {
        // Published before the event goes out: whoever sees the end also sees the slot free.
        std::lock_guard<std::mutex> lk(mu_);
        metrics_.requests_total++;
        if (why == FinishReason::Cancelled) metrics_.requests_cancelled_total++;
        metrics_.tokens_predicted_seconds_total += s.stats.gen_ms / 1000.0;
        publish_locked();
    }
    task->push(std::move(ev));
}

void Engine::sample_slot(Slot& s, float* logits) {
    const GenRequest& r = s.task->req_;
    GenEvent ev;
    GenToken tok;
    SampleInfo info;
    int32_t id;
    try {
        id = s.sampler->sample(logits, model_.cfg.n_vocab, r.want_logprobs ? &info : nullptr);
        s.sampler->accept(id);
    } catch (const std::exception& e) {
        return finish_slot(s, FinishReason::Error, e.what());
    }
    const Clock::time_point now = Clock::now();
    if (s.stats.n_generated == 0) {
        s.t_first = now;
        s.stats.prompt_ms = ms_between(s.t_start, now);
        std::lock_guard<std::mutex> lk(mu_);
        metrics_.prompt_seconds_total += s.stats.prompt_ms / 1000.0;
    }
    s.stats.n_generated++;
    {
        std::lock_guard<std::mutex> lk(mu_);
        metrics_.tokens_predicted_total++;
    }
    tok.id = id;
    if (r.want_logprobs) {
        tok.logprob = info.logprob;
        tok.top = std::move(info.top);
    }
    ev.tokens.push_back(std::move(tok));

    if (!r.ignore_eos && vocab_.is_eog(id)) {
        s.task->push(std::move(ev));
        return finish_slot(s, FinishReason::Stop);
    }
    StopMatcher::Output o = s.stop->feed(s.dec->push(id));
    ev.text = std::move(o.text);
    s.task->push(std::move(ev));
    if (o.stopped) return finish_slot(s, FinishReason::Stop);
    if (r.max_tokens >= 0 && s.stats.n_generated >= r.max_tokens) return finish_slot(s, FinishReason::Length);
    // The token just sampled needs position cache.size(); the context ends there.
    if ((int)s.cache.size() >= cfg_.n_ctx_per_slot) return finish_slot(s, FinishReason::Length);
    s.pending = id;
}

void Engine::step() {
    Batch batch;
    std::vector<Slot*> fed;  // per batch row: the slot
    for (auto& sp : slots_) {
        Slot& s = *sp;
        if (s.busy() && s.pending >= 0) {
            batch.add(s.pending, (int32_t)s.cache.size(), s.id, true);
            fed.push_back(&s);
        }
    }
    std::vector<Slot*> prompting;
    for (auto& sp : slots_)
        if (sp->prompting()) prompting.push_back(sp.get());
    std::sort(prompting.begin(), prompting.end(), [](Slot* a, Slot* b) { return a->admit_seq < b->admit_seq; });
    int budget = cfg_.n_batch;
    for (Slot* s : prompting) {
        const std::vector<int32_t>& p = s->task->req_.prompt;
        const int n = std::min<int>(budget, (int)(p.size() - s->n_prompt_done));
        for (int i = 0; i < n; i++) {
            const size_t k = s->n_prompt_done + (size_t)i;
            batch.add(p[k], (int32_t)k, s->id, k + 1 == p.size());
            fed.push_back(s);
        }
        budget -= n;
        if (budget <= 0) break;
    }
    if (batch.size() == 0) return;

    try {
        backend_->forward(batch, logits_);
    } catch (const std::exception& e) {
        // Not expected (requests are validated and every slot fits its context): fail the requests of
        // this batch, and forget any positions the failed pass reserved.
        for (Slot* s : fed) {
            if (!s->busy()) continue;
            const int keep = backend_->reusable_prefix(s->id, (int)s->cache.size());
            backend_->seq_truncate(s->id, keep);
            s->cache.resize((size_t)keep);
            finish_slot(*s, FinishReason::Error, std::string("forward pass failed: ") + e.what());
        }
        return;
    }

    int busy = 0;
    for (auto& sp : slots_) busy += sp->busy() ? 1 : 0;
    uint64_t prompt_computed = 0;
    for (int i = 0; i < batch.size(); i++) {
        Slot& s = *fed[i];
        s.cache.push_back(batch.token[i]);
        if (s.pending < 0) {
            s.n_prompt_done++;
            prompt_computed++;
            if (s.n_prompt_done == s.task->req_.prompt.size()) backend_->checkpoint(s.id);
        }
    }
    {
        std::lock_guard<std::mutex> lk(mu_);
        metrics_.n_decode_total++;
        metrics_.n_busy_slots_total += (uint64_t)busy;
        metrics_.prompt_tokens_total += prompt_computed;
    }
    // Sample in batch order: rows with logits are the decode rows and each finished prompt's last row.
    int row = 0;
    for (int i = 0; i < batch.size(); i++) {
        if (!batch.want_logits[i]) continue;
        Slot& s = *fed[i];
        float* lg = logits_.data() + (size_t)row * model_.cfg.n_vocab;
        row++;
        if (!s.busy()) continue;
        if (s.pending >= 0) s.pending = -1;  // fed now; sample_slot sets the next one
        sample_slot(s, lg);
    }
}

void Engine::loop() {
    std::vector<std::shared_ptr<GenTask>> admitted;
    for (;;) {
        admitted.clear();
        {
            std::unique_lock<std::mutex> lk(mu_);
            auto any_busy = [&] {
                for (auto& s : slots_)
                    if (s->busy()) return true;
                return false;
            };
            cv_.wait(lk, [&] { return stop_ || !queue_.empty() || any_busy(); });
            if (stop_) break;
            int idle = 0;
            for (auto& s : slots_) idle += s->busy() ? 0 : 1;
            while (idle > 0 && !queue_.empty()) {
                admitted.push_back(std::move(queue_.front()));
                queue_.pop_front();
                idle--;
            }
            admitting_ = (int)admitted.size();
        }
        for (auto& t : admitted) {
            Slot* s = nullptr;
            for (auto& o : slots_)  // least recently used idle slot; start_slot may move to a better one
                if (!o->busy() && (!s || o->last_used < s->last_used)) s = o.get();
            // Prefer the idle slot that already holds this prompt's longest prefix: no sharing needed.
            size_t best = 0;
            for (auto& o : slots_) {
                if (o->busy()) continue;
                const size_t n = common_prefix(o->cache, t->req_.prompt);
                if (n > best) {
                    best = n;
                    s = o.get();
                }
            }
            if (t->cancelled()) {
                GenEvent ev;
                ev.done = true;
                ev.finish = FinishReason::Cancelled;
                {
                    std::lock_guard<std::mutex> lk(mu_);
                    metrics_.requests_total++;
                    metrics_.requests_cancelled_total++;
                }
                t->push(std::move(ev));
                continue;
            }
            start_slot(*s, t);
            if (s->busy()) {
                std::lock_guard<std::mutex> lk(mu_);
                metrics_.prompt_tokens_cached_total += (uint64_t)s->stats.n_cached;
            }
        }
        if (!admitted.empty()) {  // before the first token goes out, /slots and submit() see them busy
            std::lock_guard<std::mutex> lk(mu_);
            admitting_ = 0;
            publish_locked();
        }
        for (auto& s : slots_)
            if (s->busy() && s->task->cancelled()) finish_slot(*s, FinishReason::Cancelled);
        step();
        std::lock_guard<std::mutex> lk(mu_);
        publish_locked();
    }
    // Shutting down: nothing waits forever.
    for (auto& s : slots_)
        if (s->busy()) finish_slot(*s, FinishReason::Error, "the server is shutting down");
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& t : queue_) {
        GenEvent ev;
        ev.done = true;
        ev.finish = FinishReason::Error;
        ev.error = "the server is shutting down";
        t->push(std::move(ev));
    }
    queue_.clear();
    publish_locked();
}

}  // namespace rotor::server
