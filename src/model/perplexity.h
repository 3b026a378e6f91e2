// Perplexity and KL divergence as llama.cpp's llama-perplexity defines them, so numbers compare:
// the token stream is cut into chunks of n_ctx, each chunk's first token is replaced by BOS, and only
// the predictions of the second half of each chunk are scored (positions n_ctx/2 .. n_ctx-2 predicting
// the next token), so every scored token has at least n_ctx/2 tokens of context.
//
// The chunk runs on the decode path by default (one token per forward step through the KV cache),
// which is where a compressed cache's keys are actually read back; batched prefill is an option.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "model/forward.h"
#include "model/model.h"

namespace rotor {

struct PerplexityOptions {
    int n_ctx = 512;
    int n_threads = 1;
    int max_chunks = 0;       // 0 = all
    bool decode_path = true;  // token by token through the cache; false = one batched prefill per chunk
    int n_parallel = 4;       // chunks decoded together as separate sequences of one batch
    int32_t bos = -1;         // token placed first in each chunk; -1 = keep the text's own token
    // Builds the KV cache for n_seq sequences of n_ctx positions (defaults to the f32 reference cache).
    std::function<std::unique_ptr<KvCache>(const ModelConfig&, int n_seq, int n_ctx)> make_cache;
    // Another backend (the CUDA forward pass) in place of CpuForward + make_cache's cache: runs a batch
    // of sequences 0..n_parallel-1 whose positions restart at 0 with every chunk, writing the logits.
    std::function<void(const Batch&, std::vector<float>& logits)> step;
    // Called for every scored position, in order (chunk by chunk, position by position), with the full
    // log-softmax (n_vocab values) and the target token.
    std::function<void(const float* logprobs, int n_vocab, int32_t target)> on_scored;
    std::function<void(int chunk, int n_chunks, double ppl_so_far)> on_progress;
};

struct PerplexityResult {
    int n_ctx = 0;
    int chunks = 0;
    int64_t scored = 0;
    double nll = 0;  // sum over scored tokens of -log p(target)
    double ppl() const;
    std::vector<double> chunk_nll;
};

PerplexityResult compute_perplexity(const Model& model, const std::vector<int32_t>& tokens, const PerplexityOptions& opt);

// KL divergence of a run against the log-probabilities saved from a base run (--kl-divergence-base).
// The base file holds the header, the tokens, and for every scored position the target's log-prob
// (exact) and the full log-probabilities as 16-bit steps between their minimum and 0 (llama.cpp keeps
// 16-bit values too), so a base of a big vocabulary stays usable.
class KlBaseWriter {
public:
    KlBaseWriter(const std::string& path, int n_ctx, int n_vocab, const std::vector<int32_t>& tokens);
    ~KlBaseWriter();
    void add(const float* logprobs, int32_t target);
    void finish();  // throws rotor::Error on I/O failure

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

struct KlStats {
    int64_t n = 0;
    double mean = 0, median = 0, p99 = 0, p999 = 0, max = 0;
    double ppl_base = 0, ppl = 0;  // of the same scored tokens
    double same_top = 0;           // fraction of positions whose argmax agrees with the base
    double mean_kld_stderr = 0;
};

class KlComparator {
public:
    // Throws rotor::Error if the file is missing, corrupt, or was made with other tokens / n_ctx / vocab.
    KlComparator(const std::string& path, int n_ctx, int n_vocab, const std::vector<int32_t>& tokens);
    ~KlComparator();
    void add(const float* logprobs, int32_t target);
    KlStats stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rotor
