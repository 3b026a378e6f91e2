// Internal to the CUDA backend: kernel 4 of the int8 mat-vec (matvec_bulk.cu), one token on q4_K, q5_K
// and q6_K weights, sm_90 and later. Each block streams tiles of whole consecutive rows into shared
// memory with one bulk copy per tile (cp.async.bulk, completion on an mbarrier), so the bytes in flight
// do not depend on registers or on per-lane copy instructions.
// Only when forced (ROTOR_MMVQ=4 / set_matvec_kernel(4)): on an H200 it read every matrix slower than
// the automatic choice of kernels 2 and 3 (bench/RESULTS.md, "Kernel 4"), 30-45% of the copy bandwidth
// against 40-71%, and Qwen3.5-27B decoded at 101 tok/s against 114.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/matvec_q8.h"

namespace rotor::cuda::mmvq::bulk {

// Whether kernel 4 can take a one-token launch of type t with rows of cols elements on the current
// GPU: q4_K / q5_K / q6_K, sm_90 or later, a row that fits a tile (at most kMaxRowBytes).
bool applies(GgmlType t, int64_t cols);
inline constexpr int64_t kMaxRowBytes = 16 * 1024;
// Y_j = W_j x for one token; applies(t, cols) and mmvq::can_run must hold.
void launch(GgmlType t, const Job* jobs, int n_jobs, int64_t cols, const ActView& x, cudaStream_t s);

}  // namespace rotor::cuda::mmvq::bulk
