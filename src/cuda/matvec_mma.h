// Internal to the CUDA backend: the tensor-core int8 mat-vec for steps of 9-16 tokens (matvec_mma.cu),
// q4_K and q6_K weights (the Q4_K_M mix's matrices). The dp4a kernel (matvec_q8.h) reads the weights once per 8 tokens and an 8-token launch
// costs 2.7x a 1-token one (bench/RESULTS.md, "One decode step under ncu"); this one takes 16 tokens
// in one pass with mma.sync (sm_80+). Arithmetic: mmq_units.h.
//
// Off unless set_enabled(true) or ROTOR_MMQ=1. Its first version passed every GPU check on an H200
// (rotor-check-cuda's "mmq" lines against the dequantized weights and the CPU, rotor-check-qwen35 /
// -gemma4 with it on) but was 1.2-4x SLOWER than two dp4a passes of 8 tokens (bench/RESULTS.md, "Kernel
// 3"): 16 tokens of the 8B's 4096x4096 took 88 us against 25.5, one warp walking each 16-row tile's whole
// row (256 warps for 4096 rows). The current version splits each tile's row over a block of 8 warps and
// has NOT YET RUN ON A GPU: scripts/gpu/verify_mmq.sh checks and times it.
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
