// Internal to the CUDA backend: the tensor-core int8 mat-vec for steps of 9-16 tokens (matvec_mma.cu),
// q4_K and q6_K weights (the Q4_K_M mix's matrices). The dp4a kernel (matvec_q8.h) reads the weights once per 8 tokens and an 8-token launch
// costs 2.7x a 1-token one (bench/RESULTS.md, "One decode step under ncu"); this one takes 16 tokens
// in one pass with mma.sync (sm_80+). Arithmetic: mmq_units.h.
//
// Automatic by default: launches of 9-16 tokens whose matrices have kAutoMinRows rows or more in all
// (one H200, 2026-11-29, bench/RESULTS.md "Tensor-core mat-vec for 9-16 tokens": 16 tokens of a
// 14336x4096 q4_K matrix 58 us against 91 for two dp4a passes of 8, 128256x4096 q6_K 551 against 882;
// but 1024x4096 q4_K 16.8 against 13.9). ROTOR_MMQ=1 takes every 9-16 token launch, ROTOR_MMQ=0 none;
// set_enabled(true / false) the same. rotor-check-cuda's "mmq" lines check it whatever the switch.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/matvec_q8.h"

namespace rotor::cuda::mmq {

inline constexpr int64_t kAutoMinRows = 4096;
bool enabled();  // not switched off; the first call reads ROTOR_MMQ
void set_enabled(bool on);  // on: every 9-16 token launch; off: none
int mode();                 // 0 off, 1 every launch, 2 automatic (the default)
void set_mode(int m);
// Whether this kernel takes n_tok tokens of type t (q4_K or q6_K, 9..16 tokens) for matrices of `rows`
// rows in all.
bool applies(GgmlType t, int n_tok, int64_t rows);
// Y_j = W_j X for n_jobs <= mmvq::kMaxJobs q4_K or q6_K matrices, 1 <= n_tok <= 16; mmvq::can_run must hold.
void launch(GgmlType t, const mmvq::Job* jobs, int n_jobs, int64_t cols, const mmvq::ActView& x, int n_tok,
            cudaStream_t s);

}  // namespace rotor::cuda::mmq
