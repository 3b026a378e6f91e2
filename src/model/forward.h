// The CPU forward pass: one function per architecture family, over a batch of tokens from any number
// of sequences (continuous batching), with the KV cache behind its interface (and, for the hybrid
// qwen35 models, the per-sequence recurrent state beside it). This is the reference that every GPU
// kernel and KV format is checked against, so it computes in f32 throughout.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/recurrent_state.h"
#include "model/model.h"

namespace rotor {

class ThreadPool;
struct QuantizedActs;

// Tokens to run in one step. A sequence's tokens must appear in position order; a token at position p
// attends to positions [0, p] of its sequence (earlier positions come from the cache).
struct Batch {
    std::vector<int32_t> token;
    std::vector<int32_t> pos;
    std::vector<int32_t> seq;
    std::vector<uint8_t> want_logits;

    void add(int32_t tok, int32_t p, int32_t s, bool logits) {
        token.push_back(tok);
        pos.push_back(p);
        seq.push_back(s);
        want_logits.push_back(logits ? 1 : 0);
    }
    int size() const { return (int)token.size(); }
    void clear() {
        token.clear();
        pos.clear();
        seq.clear();
        want_logits.clear();
    }
};

// Tokens routed to each expert, with their weights: softmax over the router logits (in place), the
// top k renormalized to sum 1, times per_expert_scale[e] when given (forward_moe.cpp).
using ExpertRouting = std::vector<std::vector<std::pair<int, float>>>;
ExpertRouting route_top_k(float* logits, int n, int n_expert, int top, const float* per_expert_scale);

class CpuForward {
public:
    CpuForward(const Model& model, int n_threads);
    ~CpuForward();

    // Runs the batch and writes n_vocab logits for every token with want_logits, in batch order.
    // Throws rotor::Error for invalid tokens/positions and KvCacheFull when a sequence cannot grow
    // (the cache is unchanged for that sequence's new positions then).
    // Hybrid models (ModelConfig::hybrid(), qwen35) also need `rs` (from recurrent_geometry(), with as
    // many sequences as the cache); their batches must continue each sequence's recurrent state (see
    // kv/recurrent_state.h), which is checked before anything changes. Other models ignore `rs`.
    void forward(const Batch& batch, KvCache& kv, RecurrentState* rs, std::vector<float>& logits);
    void forward(const Batch& batch, KvCache& kv, std::vector<float>& logits) { forward(batch, kv, nullptr, logits); }

    // Gated DeltaNet layers: 0 (the default) runs the delta rule in its recurrent form everywhere; n > 0
    // runs each sequence's consecutive tokens of a batch (prefill) in the chunked form with n-token chunks
    // (model/delta_rule.h). Both are exact up to float rounding.
    void set_delta_rule_chunk(int n_tokens) { delta_chunk_ = n_tokens; }

    // Hidden state after the final norm for each output row (for tests and embeddings).
    const std::vector<float>& last_hidden() const { return out_hidden_; }
    int n_threads() const;

private:
    void embed(const Batch& batch, KvCache& kv);
    void attention(int l, const Batch& batch, KvCache& kv);  // q_, k_, v_ -> attn_ (norms, RoPE, cache)
    void swiglu(const Weight& gate, const Weight& up, const Weight& down, int n, float* out);
    void output(const Batch& batch, std::vector<float>& logits);
    // forward_qwen35.cpp
    void forward_hybrid(const Batch& batch, KvCache& kv, RecurrentState& rs, std::vector<float>& logits);
    void delta_net(int l, const Batch& batch, const std::vector<std::vector<int>>& seq_tokens, RecurrentState& rs);
    void gated_attention(int l, const Batch& batch, KvCache& kv);
    void moe(int l, int n);
    // forward_gemma4.cpp
    void forward_gemma4(const Batch& batch, KvCache& kv, std::vector<float>& logits);
    void gemma4_step(const Batch& batch, KvCache& kv, std::vector<float>& logits);
    void gemma4_attention(int l, const Batch& batch, KvCache& kv);
    void gemma4_experts(int l, int n, float* out);
    // out[t] = sum over t's experts of weight * FFN_e(x[t]) (forward_moe.cpp); moe_in_ is its scratch.
    void run_experts(const LayerWeights& L, const ExpertRouting& routed, const float* x, int n, bool gelu, float* out);
    void gelu_ffn(const Weight& gate, const Weight& up, const Weight& down, int n, float* out);

    const Model& m_;
    std::unique_ptr<ThreadPool> pool_;
    std::unique_ptr<QuantizedActs> act_scratch_;
    // scratch, grown as needed
    std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_, out_hidden_;
    std::vector<float> qg_, z_, ba_, moe_in_, moe_out_;
    std::vector<float> rope_inv_freq_;
    std::vector<float> rope_inv_freq_swa_, ffn_out_, moe_x_;  // gemma4
    int delta_chunk_ = 0;
};

// KV cache shapes: layers without a cache (Gated DeltaNet layers, MTP layers) have n_head_kv == 0.
KvGeometry kv_geometry(const ModelConfig& c);
// The same for a loaded model, with gemma4's K = V layers described (KvGeometry::KeyFromValue: their
// k_norm weight and the global RoPE), so caches store only their values. Use this one to build caches.
KvGeometry kv_geometry(const Model& m);
// Recurrent state shapes (no layer has any for non-hybrid models).
RecurrentGeometry recurrent_geometry(const ModelConfig& c);

// RoPE frequencies per rotated pair, n_rot / 2 of them: freq_scale * base^(-2i/n_rot), divided by
// rope_freqs.weight's factors when the model has them (as llama.cpp and HF compute theta). The CPU
// and CUDA forward passes both use this.
std::vector<float> rope_inv_freq(const Model& m);
// gemma4's sliding-window layers: n_rot_swa / 2 frequencies base_swa^(-2i/n_rot_swa) (no rope_freqs).
std::vector<float> rope_inv_freq_swa(const Model& m);

}  // namespace rotor
