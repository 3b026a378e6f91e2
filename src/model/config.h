// Model hyperparameters as GGUF files encode them (llama.cpp's keys and conventions), read once at
// load time. Per-layer values are vectors so that models whose layers differ (GQA per layer,
// sliding-window layers, head sizes per layer) need no special cases downstream.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/rope.h"
#include "gguf/gguf.h"

namespace rotor {

enum class Arch { Llama, Qwen2, Qwen3, Qwen35, Qwen35Moe, Gemma4 };

struct ModelConfig {
    Arch arch = Arch::Llama;
    std::string arch_name;
    int n_layer = 0;
    int n_embd = 0;
    int n_vocab = 0;
    int n_ctx_train = 0;
    float rms_eps = 1e-5f;
    std::vector<int> n_head;     // per layer
    std::vector<int> n_head_kv;  // per layer
    std::vector<int> head_dim_k, head_dim_v;  // per layer
    std::vector<int> n_ff;       // per layer
    // RoPE
    RopeStyle rope_style = RopeStyle::Norm;
    int n_rot = 0;              // rotated dims per head (the first n_rot)
    float rope_base = 10000.0f;
    float rope_freq_scale = 1.0f;  // 1/factor for linear scaling
    bool has_rope_freqs = false;   // per-dimension divisors from rope_freqs.weight (Llama 3 scaling)
    // Architecture features, as data
    bool qkv_bias = false;   // qwen2
    bool qk_norm = false;    // qwen3: RMSNorm over each q/k head before RoPE
    bool tied_output = false;

    // qwen35 / qwen35moe: hybrid models. Gated DeltaNet layers (recurrent state, no KV cache) and
    // gated full-attention layers (attn_q yields the query and a per-head sigmoid gate on the output).
    int n_layer_main = 0;              // layers the forward pass runs (block_count minus MTP layers)
    std::vector<uint8_t> recurrent;    // per layer: 1 = Gated DeltaNet layer
    bool attn_output_gate = false;
    int ssm_conv_kernel = 0;           // K of the causal conv1d
    int ssm_n_k_heads = 0, ssm_n_v_heads = 0, ssm_d_k = 0, ssm_d_v = 0;
    // Mixture of experts (qwen35moe): routed experts plus one sigmoid-gated shared expert.
    int n_expert = 0, n_expert_used = 0, n_ff_exp = 0, n_ff_shexp = 0;

    // gemma4 (gguf-conventions.md 3.8): sliding-window layers (their own head size, KV heads, RoPE base
    // and rotated dims, no rope_freqs) and global layers (rope_freqs' proportional RoPE, K = V where the
    // layer has no attn_v); sandwich norms, GELU MLP beside the routed experts, a per-layer output scale,
    // embeddings scaled by sqrt(n_embd), final logits soft-capped.
    std::vector<int> window;          // per layer: sliding-window length in tokens, 0 = whole context
    std::vector<uint8_t> v_is_k;      // per layer: no attn_v, the value is the raw key projection
    int n_rot_swa = 0;
    float rope_base_swa = 10000.0f;
    float final_logit_softcap = 0.0f; // 0 = none
    float embd_scale = 1.0f;          // token embeddings are multiplied by this (gemma: sqrt(n_embd))

    bool is_recurrent(int layer) const { return !recurrent.empty() && recurrent[layer] != 0; }
    int window_of(int layer) const { return window.empty() ? 0 : window[layer]; }
    bool is_swa(int layer) const { return window_of(layer) > 0; }
    // K = V layer: the KV caches store only v and derive the key from it (kv_cache.h, KeyFromValue)
    bool v_is_k_at(int layer) const { return !v_is_k.empty() && v_is_k[layer] != 0; }
    bool hybrid() const { return arch == Arch::Qwen35 || arch == Arch::Qwen35Moe; }
    int ssm_conv_dim() const { return 2 * ssm_n_k_heads * ssm_d_k + ssm_n_v_heads * ssm_d_v; }

    int max_head_dim() const;
    int q_dim(int layer) const { return n_head[layer] * head_dim_k[layer]; }
    int kv_dim_k(int layer) const { return n_head_kv[layer] * head_dim_k[layer]; }
    int kv_dim_v(int layer) const { return n_head_kv[layer] * head_dim_v[layer]; }
};

// Reads and validates the hyperparameters; rotor::Error names the file and the missing or bad key,
// and unsupported architectures or RoPE scaling types are refused here, not mis-run later.
ModelConfig read_model_config(const gguf::File& f);

const char* arch_name(Arch a);

}  // namespace rotor
