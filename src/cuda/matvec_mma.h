// Internal to the CUDA backend: the tensor-core int8 mat-vec for steps of 9-16 tokens (matvec_mma.cu),
// q4_K and q6_K weights (the Q4_K_M mix's matrices). The dp4a kernel (matvec_q8.h) reads the weights once per 8 tokens and an 8-token launch
// costs 2.7x a 1-token one (bench/RESULTS.md, "One decode step under ncu"); this one takes 16 tokens
// in one pass with mma.sync (sm_80+). Arithmetic: mmq_units.h.
//
// Off unless set_enabled(true) or ROTOR_MMQ=1: it passed every GPU check on an H200 (rotor-check-cuda's
// "mmq" lines against the dequantized weights and the CPU, rotor-check-qwen35 / -gemma4 with it on) but
// is 1.2-4x SLOWER than two dp4a passes of 8 tokens (bench/RESULTS.md, "Kernel 3"): 16 tokens of the
// 8B's 4096x4096 take 88 us against 25.5. Each warp's 16-row tile walks a whole row with one mma chain
// and few warps per SM are resident; it needs a split over the row (as kernel 2's teams) before use.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/matvec_q8.h"

namespace rotor::cuda::mmq {

bool enabled();  // the first call reads ROTOR_MMQ
void set_enabled(bool on);
// Whether this kernel takes n_tok tokens of type t (q4_K or q6_K, 9..16 tokens).
bool applies(GgmlType t, int n_tok);
// Y_j = W_j X for n_jobs <= mmvq::kMaxJobs q4_K or q6_K matrices, 1 <= n_tok <= 16; mmvq::can_run must hold.
void launch(GgmlType t, const mmvq::Job* jobs, int n_jobs, int64_t cols, const mmvq::ActView& x, int n_tok,
            cudaStream_t s);

}  // namespace rotor::cuda::mmq
