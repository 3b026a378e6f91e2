// The chunked (parallel) form of the gated delta rule on the GPU, for prompts (src/cuda/delta_net_chunked.cu).
// It computes what gdn_delta / gdn_delta_sliced compute token by token, to float rounding, with the math of
// model/delta_rule.cpp's delta_rule_chunked (transformers' torch_chunk_gated_delta_rule): each sequence's tokens
// of the step are cut into chunks of kGdnChunk (scratch_sizes.h), and per chunk of L tokens, with c_i the
// cumulative log-decay within the chunk,
//   A[i][j] = beta_i (k_i . k_j) e^(c_i - c_j) (j < i);  (I + A) [W | U] = [beta e^c k | beta v]
//   P[i][j] = (q_i . k_j) e^(c_i - c_j) (j <= i)
//   V' = U - W S;  o_i = e^(c_i) q_i S + sum_j P[i][j] V'_j;  S <- e^(c_L) S + sum_j e^(c_L - c_j) k_j V'_j^T
// Everything but the last line's S is independent of the state, so one kernel computes W, U, P and c for
// every chunk at once, and a second walks each sequence's chunks in order, per value head and slice of 32
// state columns, with three small matrix products per chunk instead of a barrier-bound step per token.
#pragma once
#include <cuda_runtime_api.h>
#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda/delta_net.h"

namespace rotor::cuda {

// Why the chunked kernels cannot run these shapes ("" when they can): d_k one of 16, 32, 64, 128, 256 and d_v a
// multiple of 4 up to 1024. CudaForward then runs prompts through gdn_delta_sliced, and says so at load.
std::string gdn_chunked_refusal(const GdnShape& g);

// gdn_delta_sliced's contract (delta_net_fast.h: conv_out and ab as gdn_conv leaves them, the state and the
// conv state advanced, out = the gated RMSNorm of o), over any batch of at most max_seqs sequences.
// part_ss: gdn_scratch_floats(n) floats; scratch_wu / scratch_pc: gdn_chunked_wu_bytes(n, ...) and
// gdn_chunked_pc_bytes(n, max_seqs, ...) bytes (scratch_sizes.h), 16-byte aligned.
void gdn_delta_chunked(const GdnShape& g, const float* mix, const float* conv_out, const float* ab, const float* z,
                       const float* norm_w, float eps, const GdnState& st, const int32_t* seq, const int32_t* pos,
                       const SeqPlan& plan, int n, int max_seqs, float* out, float* part_ss, void* scratch_wu,
                       void* scratch_pc, cudaStream_t s);

}  // namespace rotor::cuda
