// CudaForward's gemma4 part (cuda_forward_gemma4.cu): its buffers.
#pragma once
#include <memory>
#include <vector>

#include "cuda/cuda_forward.h"
#include "cuda/moe.h"

namespace rotor::cuda {

struct CudaForward::Gemma4Buffers {
    DeviceBuffer inv_freq_swa;  // the sliding-window layers' RoPE frequencies (the global ones: inv_freq_)
    // max_batch rows each: the dense MLP's output, the experts' input and output, the router's input and
    // logits, the routing
    DeviceBuffer ffn_out, moe_in, moe_out, router_in, router_logits, expert_ids, expert_w;
    // The router's input norm weight per MoE layer: ffn_gate_inp.scale / sqrt(n_embd) (n_embd floats each)
    DeviceBuffer router_norm;
    std::vector<const float*> router_w;  // per layer into router_norm, null on layers without experts
    std::vector<ExpertWeights> experts;  // per layer (n_expert 0 on layers without experts)
    std::unique_ptr<MoeRunner> moe;
    std::vector<int> seq_tokens;  // host scratch of the per-step ring check: tokens per sequence
};

}  // namespace rotor::cuda
