// The scheduler: one loop thread owns the model's forward pass and its KV cache and serves every
// request through a fixed number of slots (llama-server's design). Other threads only submit tasks
// and read their events; nothing here knows about HTTP or JSON.
//
// Each step builds one batch: one decode token for every generating slot, then prompt tokens of the
// slots still reading their prompts (at most n_batch prompt tokens per step, oldest request first).
// A slot's KV sequence is its slot id. When a slot finishes, its tokens stay in the cache: a later
// request shares the longest matching prefix from any slot (server/backend.h: blocks shared copy on
// write on the CPU, a device copy on the GPU) and computes only the rest. Requests beyond the slots wait in a bounded FIFO queue.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sample/sampler.h"

namespace rotor {
struct Model;
class Vocab;
}  // namespace rotor

namespace rotor::server {

class EngineBackend;

struct EngineConfig {
    int n_slots = 4;
    int n_ctx_per_slot = 2048;  // positions one request may use (prompt + generated), never shared out
    int n_batch = 512;          // prompt tokens per step, all slots together
    int n_queue = 64;           // requests waiting for a slot beyond which submit() refuses
    int n_threads = 0;          // forward-pass threads (0: hardware concurrency)
    std::string kv_k = "f16", kv_v = "f16";
    int block_tokens = 16;
    bool gpu = false;   // the CUDA forward with its KV cache on GPU gpu_index (server/backend.h)
    int gpu_index = 0;
};

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", ...

struct GenRequest {
    std::vector<int32_t> prompt;      // token ids, at least one
    SamplerParams sampling;
    int max_tokens = -1;              // -1: until end of generation or the context is full
    std::vector<std::string> stop;    // stop strings over the generated text
    bool ignore_eos = false;          // keep going past end-of-generation tokens
    bool want_logprobs = false;       // fill GenToken::logprob (and top, when sampling.n_probs > 0)
};

struct GenToken {
    int32_t id = -1;
    double logprob = 0.0;
    std::vector<TokenLogprob> top;
};

struct GenStats {
    int slot = -1;
    int n_prompt = 0;      // prompt tokens
    int n_cached = 0;      // of which reused from the pool (not computed)
    int n_generated = 0;   // sampled tokens, an end-of-generation token included
    double queue_ms = 0;   // submit -> slot
    double prompt_ms = 0;  // slot -> first token sampled
    double gen_ms = 0;     // first token -> end
    uint64_t seed = 0;     // the sampler's seed (the drawn one when random)
};

// What one step produced for one request. `text` is display-ready: complete UTF-8, with stop strings
// and anything after them removed and possible stop-string prefixes held back until resolved.
struct GenEvent {
    std::string text;
    std::vector<GenToken> tokens;  // tokens sampled in this step (one, or none in the final event)
    bool done = false;
    FinishReason finish = FinishReason::None;
    std::string error;  // finish == Error
    GenStats stats;     // complete when done
};

// The handle a submitter holds: events arrive in order; the last one has done = true.
class GenTask {
public:
    // Waits up to timeout_ms for the next event. False on timeout.
    bool next(GenEvent& out, int timeout_ms);
    // Moves every queued event into out (appending); returns whether any came.
    bool drain(std::vector<GenEvent>& out, int timeout_ms);
    // Asks the loop to stop this request and free its slot (a client went away). Idempotent.
    void cancel() { cancelled_ = true; }
    bool cancelled() const { return cancelled_.load(); }
    uint64_t id() const { return id_; }

private:
    friend class Engine;
    void push(GenEvent ev);

    uint64_t id_ = 0;
    GenRequest req_;
    std::chrono::steady_clock::time_point t_submit_;
    std::atomic<bool> cancelled_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<GenEvent> events_;
};

struct EngineMetrics {
    uint64_t prompt_tokens_total = 0;     // prompt tokens computed (cached ones excluded)
    uint64_t prompt_tokens_cached_total = 0;
    double prompt_seconds_total = 0;
    uint64_t tokens_predicted_total = 0;
    double tokens_predicted_seconds_total = 0;
    uint64_t n_decode_total = 0;          // forward passes
    uint64_t n_busy_slots_total = 0;      // sum over forward passes of the slots in the batch
    uint64_t requests_total = 0;          // finished requests
    uint64_t requests_cancelled_total = 0;
    uint64_t requests_rejected_total = 0; // refused because the queue was full
    int requests_processing = 0;          // in slots
    int requests_deferred = 0;            // waiting in the queue
    uint64_t kv_bytes_used = 0, kv_bytes_capacity = 0;
    int64_t kv_blocks_used = 0, kv_blocks_total = 0;
    int64_t kv_tokens = 0;                // positions held by all slots (shared ones counted per slot)
};

struct SlotInfo {
    int id = 0;
    bool busy = false;
    uint64_t task_id = 0;
    int n_ctx = 0;
    int n_cached = 0;     // positions in the pool for this slot
    int n_prompt = 0;
    int n_prompt_done = 0;
    int n_generated = 0;
};

class Engine {
public:
    // Builds the forward pass and a pool of n_slots x n_ctx_per_slot positions (rounded up to whole
    // blocks). Throws rotor::Error for invalid settings or KV types. The model and vocab must outlive
    // the engine. The loop thread starts at once.
    Engine(const Model& model, const Vocab& vocab, EngineConfig cfg);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Queues a request. Returns nullptr (and *why) when the queue is full or the engine is stopping.
    // An invalid request (empty prompt, longer than the context, bad sampling parameters) is accepted
    // and finishes at once with FinishReason::Error: callers validate first for a clear 400.
    std::shared_ptr<GenTask> submit(GenRequest req, std::string* why = nullptr);

    // Stops the loop; queued and running requests finish with an error event.
    void stop();

    const EngineConfig& config() const { return cfg_; }
    EngineMetrics metrics() const;
    std::vector<SlotInfo> slots() const;
    uint64_t kv_block_bytes() const;
    const std::string& device() const { return device_; }  // "cpu" or the GPU's name
    const std::string& kv_type_k() const { return cfg_.kv_k; }
    const std::string& kv_type_v() const { return cfg_.kv_v; }

private:
    struct Slot;
    void loop();
    bool admit_locked();
    void start_slot(Slot& s, std::shared_ptr<GenTask> task);
    void step();
    void sample_slot(Slot& s, float* logits);
    void finish_slot(Slot& s, FinishReason why, const std::string& error = {});
    void publish_locked();

    const Model& model_;
    const Vocab& vocab_;
    EngineConfig cfg_;
    std::unique_ptr<EngineBackend> backend_;
    std::string device_;
    std::vector<std::unique_ptr<Slot>> slots_;
    uint64_t use_clock_ = 0;  // for least-recently-used idle slots

    mutable std::mutex mu_;  // guards queue_, stop_, metrics_, slot_info_
    std::condition_variable cv_;
    std::deque<std::shared_ptr<GenTask>> queue_;
    int admitting_ = 0;  // taken off the queue, not yet in a published slot (counted as busy)
    bool stop_ = false;
    uint64_t next_id_ = 1;
    EngineMetrics metrics_;
    std::vector<SlotInfo> slot_info_;
    std::thread thread_;

    // loop-thread scratch
    std::vector<float> logits_;
};

}  // namespace rotor::server
