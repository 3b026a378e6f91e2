// CudaForward's qwen35 / qwen35moe part (cuda_forward_qwen35.cu): its buffers and recurrent state.
#pragma once
#include <memory>
#include <vector>

#include "cuda/cuda_forward.h"
#include "cuda/delta_net.h"
#include "cuda/moe.h"

namespace rotor::cuda {

// The faster kernels for qwen35 (delta_net_fast.h; in the int8 path the residual add, norm and
// quantization fused as enqueue_llama does): on by default since rotor-check-qwen35 passed with them on an
// H200; off (the first kernels, still checked: rotor-check-qwen35 --no-fast) with set_qwen35_fast_paths(false)
// or ROTOR_QWEN35_FAST=0. Read when a CudaForward is made; process-wide.
void set_qwen35_fast_paths(bool on);
bool qwen35_fast_paths();

// The chunked delta rule (delta_net_chunked.h) for steps where a sequence has kGdnChunkedMinTokens tokens or
// more (prompts), within the fast paths: on by default; off (gdn_delta_sliced for every step) with
// set_qwen35_chunked(false) or ROTOR_GDN_CHUNKED=0. Read when a CudaForward is made; process-wide.
void set_qwen35_chunked(bool on);
bool qwen35_chunked();
inline constexpr int kGdnChunkedMinTokens = 16;

struct CudaForward::Qwen35Buffers {
    std::vector<int> seq_pos;  // positions each sequence's recurrent state has consumed (host copy)
    bool fast = true;          // set_qwen35_fast_paths when made
    GdnShape gdn;
    // The state, kv/recurrent_state.h's layout: per sequence, per recurrent layer its conv inputs then its
    // delta-rule state (offsets in floats within a sequence's block).
    size_t per_seq_floats = 0;
    std::vector<size_t> conv_off, ssm_off;
    DeviceBuffer state;  // [n_seq][per_seq_floats]
    // Gated DeltaNet activations for max_batch tokens: projections, conv output, beta/alpha, the output
    DeviceBuffer mix, conv_out, z, ab, gdn_out;
    DeviceBuffer gdn_scratch, step_counters;  // fast path: per-slice sums of o^2, gdn_step's counters
    bool chunked = false;                      // qwen35_chunked() and the shape supported
    // gdn_delta_chunked's two scratch parts: in the dense FFN's gate and up buffers (idle during the mixer)
    // when they fit (scratch_sizes.h, gdn_chunked_extra_bytes), else in chunk_scratch
    void* chunk_wu = nullptr;
    void* chunk_pc = nullptr;
    DeviceBuffer chunk_scratch;
    DeviceBuffer qg;    // gated attention: attn_q's output (query and gate per head)
    DeviceBuffer plan;  // SeqPlan's arrays
    SeqPlan plan_view;
    // qwen35moe: router logits, top-k ids and weights, routed output, shared expert
    std::unique_ptr<MoeRunner> moe;
    DeviceBuffer router, expert_ids, expert_w, moe_out, sh_gate, sh_up, sh_out;
};

}  // namespace rotor::cuda
