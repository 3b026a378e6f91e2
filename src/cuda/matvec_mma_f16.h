// Internal to the CUDA backend: the f16 tensor-core mat-vec for steps of up to 16 tokens on q4_K and q6_K
// weights (matvec_mma_f16.cu, version 3 of the tensor-core mat-vec; matvec_mma.h decides when it runs).
// It reads quantize_act_q8's int8 activations like the other mat-vec kernels and needs kSplitBytes of
// room for its split-K sums after them (matmul_scratch_bytes reserves it for 2 tokens or more).
// ROTOR_MMQ_F16=0 (or set_enabled(false)) leaves its launches to version 2 (9-16 tokens) or the dp4a kernel.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/matvec_q8.h"
#include "cuda/scratch_sizes.h"

namespace rotor::cuda::mmqh {

// Room for the split-K partial sums (16 tokens x 4 bytes per row of a row block and range).
inline constexpr size_t kSplitBytes = kMatvecF16SplitBytes;  // scratch_sizes.h: the planner counts it
bool enabled();  // the first call reads ROTOR_MMQ_F16 (default on)
void set_enabled(bool on);
// Whether it takes n_tok tokens of type t (q4_K or q6_K, 1..16 tokens; matvec_mma.h decides which token
// counts go to the tensor cores at all).
bool applies(GgmlType t, int n_tok);
// The number of ranges each of row_blocks row blocks (block_rows rows of nb super-blocks) is split into: the
// fewest rounds of resident blocks times super-blocks per block, plus one super-block's worth per split for
// the partial sums, within split_room bytes of them (a launch gives each job a third of kSplitBytes).
int choose_splits(int64_t row_blocks, int block_rows, int nb, int64_t resident_blocks, size_t split_room);
// Y_j = W_j X for n_jobs <= mmvq::kMaxJobs q4_K or q6_K matrices; mmvq::can_run must hold for each.
void launch(GgmlType t, const mmvq::Job* jobs, int n_jobs, int64_t cols, const mmvq::ActView& x, int n_tok,
            cudaStream_t s);

}  // namespace rotor::cuda::mmqh
