// Internal to the CUDA backend: the tensor-core int8 mat-vec for steps of 9-16 tokens (matvec_mma.cu),
// q4_K and q6_K weights (the Q4_K_M mix's matrices). The dp4a kernel (matvec_q8.h) reads the weights once per 8 tokens and an 8-token launch
// costs 2.7x a 1-token one (bench/RESULTS.md, "One decode step under ncu"); this one takes 16 tokens
// in one pass with mma.sync (sm_80+). Arithmetic: mmq_units.h.
//
// NOT YET RUN ON A GPU: off unless set_enabled(true) or ROTOR_MMQ=1; rotor-check-cuda checks it against
// the dequantized weights and the CPU (its "mmq" lines), then the default can change.
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
