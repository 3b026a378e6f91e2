// CudaForward's qwen35 / qwen35moe part (cuda_forward_qwen35.cu): its buffers and recurrent state.
#pragma once
#include <memory>
#include <vector>

#include "cuda/cuda_forward.h"
#include "cuda/delta_net.h"
#include "cuda/moe.h"

namespace rotor::cuda {

struct CudaForward::Qwen35Buffers {
    std::vector<int> seq_pos;  // positions each sequence's recurrent state has consumed (host copy)
    GdnShape gdn;
    // The state, kv/recurrent_state.h's layout: per sequence, per recurrent layer its conv inputs then its
    // delta-rule state (offsets in floats within a sequence's block).
    size_t per_seq_floats = 0;
    std::vector<size_t> conv_off, ssm_off;
    DeviceBuffer state;  // [n_seq][per_seq_floats]
    // Gated DeltaNet activations for max_batch tokens: projections, conv output, beta/alpha, the output
    DeviceBuffer mix, conv_out, z, ab, gdn_out;
    DeviceBuffer gdn_scratch;    // gdn_delta / gdn_step's per-slice sums
    DeviceBuffer step_counters;  // gdn_step's counters, zero between steps
    DeviceBuffer qg;    // gated attention: attn_q's output (query and gate per head)
    DeviceBuffer plan;  // SeqPlan's arrays
    SeqPlan plan_view;
    // qwen35moe: router logits, top-k ids and weights, routed output, shared expert
    std::unique_ptr<MoeRunner> moe;
    DeviceBuffer router, expert_ids, expert_w, moe_out, sh_gate, sh_up, sh_out;
};

}  // namespace rotor::cuda
