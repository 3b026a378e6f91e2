// What a model needs in memory, read from GGUF metadata alone (a file whose tensor data is absent or
// sparse is enough): weights as stored, which layers keep a KV cache and with what shape, sliding
// windows, K=V sharing, and per-sequence recurrent state. Covers the architectures users plan for,
// including ones rotor cannot run yet (qwen35, qwen35moe, gemma3, gemma4), so the numbers are right
// before the kernels exist.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace rotor {

struct LayerMemory {
    bool has_kv = false;
    int n_head_kv = 0;
    int head_dim_k = 0, head_dim_v = 0;
    int window = 0;         // sliding-window length in tokens; 0 = attends to the whole context
    bool v_is_k = false;    // K = V (Gemma 4 global layers): stored once
    bool recurrent = false; // Gated DeltaNet layer (state instead of a cache)
};

struct ModelMemory {
    std::string arch;
    int n_layer = 0, n_embd = 0, n_vocab = 0, n_ctx_train = 0;
    int max_ff = 0;            // widest feed-forward (dense or summed active experts), for activations
    int max_q_dim = 0;
    std::vector<LayerMemory> layers;
    uint64_t weight_bytes = 0;            // all tensors as stored
    uint64_t recurrent_bytes_per_seq = 0; // f32 recurrent + conv state of all recurrent layers
    int n_tensors = 0;
    // Shapes behind the GPU forward's buffers beyond the llama family's (planner.cpp, plan_memory)
    int ssm_channels = 0, ssm_v_dim = 0, ssm_v_heads = 0, ssm_d_k = 0;  // qwen35: conv channels, H_v * d_v, H_v, d_k
    int max_gated_q = 0;                                   // qwen35: query + gate rows of attention layers
    int n_expert = 0, n_expert_used = 0, n_ff_exp = 0, n_ff_shexp = 0, n_moe_layers = 0;
};

// Throws rotor::Error (naming the file and key) for unknown architectures or missing keys.
ModelMemory read_model_memory(const gguf::File& f);

// The largest K or V head size of the layers that keep a KV cache (what a KV format must support).
int kv_head_dim(const ModelMemory& m);

}  // namespace rotor
