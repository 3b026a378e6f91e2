// Internal to the CUDA backend: the tensor-core mat-vec for steps of several tokens on q4_K and q6_K
// weights (the Q4_K_M mix's matrices), where the dp4a kernel (matvec_q8.h) reads the weights once per 8
// tokens and an 8-token launch costs 2.7x a 1-token one (bench/RESULTS.md, "One decode step under ncu").
// Two kernels: version 3 (matvec_mma_f16.h: f16 operands, 1-16 tokens), the default, and version 2
// (matvec_mma.cu: int8 mma per sub-block, 9-16 tokens; arithmetic in mmq_units.h), which runs when
// version 3 is switched off (ROTOR_MMQ_F16=0).
//
// Automatic by default (applies): version 3 for launches of 8-16 tokens, and of 4-7 tokens on q4_K
// matrices of 12 MB or more (one H200, 2026-11-29, bench/RESULTS.md "The f16 tensor-core mat-vec");
// version 2 for 9-16 tokens on kAutoMinRows rows or more ("Tensor-core mat-vec for 9-16 tokens").
// ROTOR_MMQ=1 takes every launch the kernels can (version 3: 1-16 tokens), ROTOR_MMQ=0 none;
// set_enabled(true / false) the same. rotor-check-cuda's "mmq" lines check them whatever the switch.
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
// Whether the tensor cores take n_tok tokens of type t for matrices of `rows` rows of `cols` in all.
bool applies(GgmlType t, int n_tok, int64_t rows, int64_t cols);
// Y_j = W_j X for n_jobs <= mmvq::kMaxJobs q4_K or q6_K matrices, 1 <= n_tok <= 16; mmvq::can_run must hold.
void launch(GgmlType t, const mmvq::Job* jobs, int n_jobs, int64_t cols, const mmvq::ActView& x, int n_tok,
            cudaStream_t s);

}  // namespace rotor::cuda::mmq
