// Tensor-core matmul for prefill and large batches: Y[n_tok][rows] = X[n_tok][cols] . W^T, with W
// stored in its GGUF format (row r is contiguous blocks along cols) and decoded tile by tile into
// shared memory as f16 by the chunk decoders of formats/chunk_decode.h (the same code the mat-vec
// kernels run and the CPU tests check bit for bit), then multiplied with mma.sync m16n8k16 (f16
// inputs, f32 accumulation). Plain sm_80 instructions only (cp.async, ldmatrix, mma.sync), so one
// kernel serves sm_80, 86, 89, 90 and 120.
//
// Precision: W and X are rounded to f16 (relative L2 error 2e-4 to 5e-4 against the f64 product of
// the dequantized weights, as rotor-check-matmul-tc measured it on an H200). X is never clamped: each token's row is
// first multiplied by a power of two 2^e chosen so that max|x| lands in [2^14, 2^15) (exact, no
// rounding of its own), converted to f16, and the token's outputs are multiplied by 2^-e, so
// activations of any magnitude keep f16's relative precision (the check runs 1e6- and 1e-6-sized
// tokens). A token holding inf or NaN gets scale 1 and propagates them, as the f32 product would.
// Weights are converted as they are: a decoded weight beyond f16's range (|w| > 65504, which no
// quantized format reaches with ordinary scales) becomes inf and shows in the output, and weights
// under 6.1e-5 in magnitude are f16 subnormals (absolute error <= 3e-8 each).
//
// Shapes: any n_tok >= 1 and rows >= 1 (edge tiles are masked); cols a multiple of 32 and of the
// format's block size (256 for the K-quants and iq4_xs). Every format with a chunk decoder
// (with_chunk_decoder: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_K..q6_K, iq4_xs).
// Weights may have any address their format allows (rows are copied as 16-byte aligned supersets,
// with the bytes outside the tensor never read).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/scratch_sizes.h"  // kMatmulTcSplitBytes
#include "formats/formats.h"

namespace rotor::cuda {

bool matmul_tc_supported(GgmlType t, int64_t cols);

// Device scratch for n_tok tokens of cols elements: the f16 activations and per-token scales
// (needed), plus kMatmulTcSplitBytes (scratch_sizes.h) for split-K partial sums. Less than the full size still works
// (fewer split-K slices, which only matter when rows x n_tok is too small to fill the GPU); less
// than matmul_tc_min_scratch_bytes is an error.
size_t matmul_tc_min_scratch_bytes(int n_tok, int64_t cols);
size_t matmul_tc_scratch_bytes(int n_tok, int64_t cols);

// Y = X . W^T (Y is n_tok x rows, token-major, as kernels.h's matmul). Runs matmul_tc_prepare then
// matmul_tc_prepared on `scratch`.
void matmul_tc(GgmlType t, const void* W, int64_t rows, int64_t cols, const float* X, int n_tok, float* Y,
               cudaStream_t s, void* scratch, size_t scratch_bytes);

// The two steps, for several weights applied to one X (Q/K/V, gate/up): X is scaled and converted
// to f16 once into scratch, then each matrix runs on it (same n_tok, cols and scratch).
void matmul_tc_prepare(const float* X, int n_tok, int64_t cols, void* scratch, cudaStream_t s);
void matmul_tc_prepared(GgmlType t, const void* W, int64_t rows, int64_t cols, int n_tok, float* Y, cudaStream_t s,
                        void* scratch, size_t scratch_bytes);

// Tests and benchmarks: force the token tile (32, 64 or 128 tokens; 0 = automatic) and the split-K
// slices (>= 1; 0 = automatic). Not thread-safe; for the check program.
void matmul_tc_force_config(int tile_tokens, int split);
// Benchmarks only (wrong results): 1 leaves out the weight decode, 2 the tensor-core products.
void matmul_tc_set_ablation(int flags);

}  // namespace rotor::cuda
