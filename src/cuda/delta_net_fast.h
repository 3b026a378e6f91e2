// Fast kernels of the Gated DeltaNet layer (src/cuda/delta_net_fast.cu), beside delta_net.h's
// verified ones: each value head's d_v columns split into 32-column slices (4x the blocks for Qwen3.5),
// the next token's inputs prefetched, and for decode the whole layer step (conv, q/k norms, delta rule,
// gated norm) in one kernel. They compute what gdn_delta does, to float rounding. CudaForward takes them by
// default (cuda_forward_qwen35.h, set_qwen35_fast_paths); rotor-check-qwen35 checks them against the CPU
// and transformers (--no-fast: the first kernels instead).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda/delta_net.h"

namespace rotor::cuda {

// Why these kernels cannot run these shapes ("" when they can).
std::string gdn_fast_refusal(const GdnShape& g);

// gdn_delta with the columns split into slices; scratch: gdn_scratch_floats(n) floats (per-slice sums of
// o^2, for the gated norm's rescale, a second launch).
size_t gdn_scratch_floats(int n, const GdnShape& g);
void gdn_delta_sliced(const GdnShape& g, const float* mix, const float* conv_out, const float* ab, const float* z,
                      const float* norm_w, float eps, const GdnState& st, const int32_t* seq, const int32_t* pos,
                      const SeqPlan& plan, int n, float* out, float* scratch, cudaStream_t s);

// y *= 1 / rms(o) per (token, value head), o's sum of squares being the sum of part_ss's slices (32 columns of
// d_v each): the gated norm's second half after gdn_delta_sliced's (or gdn_delta_chunked's) kernel.
void gdn_rescale(float* out, const float* part_ss, int n, const GdnShape& g, float eps, cudaStream_t s);
// gdn_conv + gdn_delta in one kernel, for steps whose sequences have few tokens each (decode): ab read-only
// (raw beta / alpha projections), no intermediate buffers. counters: gdn_step_counters(n_seq) ints, zero
// before the first call (each call leaves them zero); n_seq: the state's sequences.
size_t gdn_step_counters(int n_seq, const GdnShape& g);
void gdn_step(const GdnShape& g, const float* mix, const float* ab, const float* conv_w, const float* ssm_a,
              const float* dt_bias, const float* z, const float* norm_w, float eps, const GdnState& st, int* counters,
              int n_seq, const int32_t* seq, const int32_t* pos, const SeqPlan& plan, int n, float* out, float* scratch,
              cudaStream_t s);

// The MoE block's output: y[t] = routed[t] + sigmoid(gate_w . y[t]) * shared[t] per token (E floats), y
// holding the block's input before (read first); y = routed[t] when shared is null.
void moe_combine(float* y, const float* routed, const float* shared, const float* gate_w, int n, int E, cudaStream_t s);

}  // namespace rotor::cuda
