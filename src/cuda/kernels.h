// The CUDA backend's kernels, as host functions that launch on a stream. Activations are f32,
// token-major ([n_tok][dim]); weights stay in their GGUF format and are decoded in registers by the
// chunk decoders of formats/chunk_decode.h (the same code the CPU tests check bit for bit).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/attention.h"  // the KV cache and attention, declared apart
#include "formats/formats.h"

namespace rotor::cuda {

// Weight formats with a CUDA mat-vec; the others are refused when a model is loaded.
bool weight_type_supported(GgmlType t);
// Rows of `cols` elements: multiples of 8 for every format, any length for f32/f16/bf16.
bool weight_rows_supported(GgmlType t, int64_t cols);
std::string supported_weight_types();

// Y[t][r] = sum_c W[r][c] * X[t][c] for t < n_tok; W is `rows` rows of `cols` elements of type t.
// Up to 8 tokens share each pass over the weights (decode of several slots); larger batches run in
// groups of 8.
//
// Two paths. Exact: weights decoded to f32 and dotted with f32 activations (the CPU's
// dequantized-weights result to float rounding), one warp per row. Int8 (when `act_scratch` is
// given and the format has one: q8_0, q4_0, q4_K, q5_K, q6_K): activations quantized once per
// call to int8 per 32 elements (the CPU's Q8_0 codes, with an f32 scale) and dotted four at a time
// with dp4a by a kernel that streams whole blocks through shared memory (matvec_q8.cu), which is
// what makes a decode mat-vec memory-bound rather than instruction-bound. Weights whose rows are
// not aligned for it (never the case for the GPU's own arena) take the exact path.
size_t matmul_scratch_bytes(int n_tok, int64_t cols);
bool matmul_has_int8_path(GgmlType t);
// Whether matmul with act_scratch takes the int8 path for these weights.
bool matmul_int8_applies(GgmlType t, const void* W, int64_t cols);
void matmul(GgmlType t, const void* W, int64_t rows, int64_t cols, const float* X, int n_tok, float* Y,
            cudaStream_t s, void* act_scratch = nullptr);

// The int8 activations: codes (code_stride int8 per token, code e at mmvq_units.h's
// act_code_index(e)), and per 32 elements the scale d and d * (sum of the codes), ds_stride floats
// per token, at these offsets in the scratch.
struct ActQ8Layout {
    size_t codes = 0, d = 0, s = 0, bytes = 0;
    int64_t code_stride = 0, ds_stride = 0;
};
ActQ8Layout act_q8_layout(int n_tok, int64_t cols);
void quantize_act_q8(const float* X, int n_tok, int64_t cols, void* scratch, cudaStream_t s);

// Y = W X with X already quantized into `act_q8` by quantize_act_q8(X, n_tok, cols, ...). Formats
// without an int8 path (or misaligned weights) run the exact path on X.
void matmul_q8(GgmlType t, const void* W, int64_t rows, int64_t cols, const float* X, const void* act_q8, int n_tok,
               float* Y, cudaStream_t s);

// Several weights applied to one activation (Q, K, V; gate, up): X is quantized once when any of
// them has an int8 path and act_scratch is given, and matrices of one type share a launch. A shared
// launch gives the same floats as one launch per matrix except on kernel 3 (one token, rows of more
// than one span of 2048 elements): there the rows a block's warps cut depend on the launch's total
// rows, so a row's sum may round differently in its last bits. Each launch is deterministic.
struct MatmulJob {
    GgmlType type = GgmlType::F32;
    const void* W = nullptr;
    int64_t rows = 0;
    float* Y = nullptr;
};
void matmul_multi(const MatmulJob* jobs, int n_jobs, int64_t cols, const float* X, int n_tok, cudaStream_t s,
                  void* act_scratch);
// matmul_multi with X already quantized into act_q8 (quantize_act_q8's layout for n_tok tokens, e.g.
// by add_rms_norm_q8 or swiglu_q8): jobs without an int8 path run the exact path on X.
void matmul_multi_q8(const MatmulJob* jobs, int n_jobs, int64_t cols, const float* X, const void* act_q8, int n_tok,
                     cudaStream_t s);

// Benchmarks and checks: the int8 kernel's variant (matvec_q8.h, Tuning): rows per warp (1 or 2;
// 0 = its own choice), persistent grid, programmatic dependent launch. The defaults are the variant
// measured in bench/RESULTS.md (the others were within noise of it for decode).
void set_matvec_tuning(int rows_per_warp = 0, bool persistent = true, bool pdl = true);

// Switches between two verified paths (rotor-check-cuda checks both settings either way; both were on
// by default once they passed on an H200: bench/RESULTS.md, "Switches verified"):
//  - the int8 mat-vec kernel (matvec_q8.cu): 2 = teams of warps split a row's spans, 3 = one token of
//    q4_K / q5_K / q6_K read straight into registers (the rest as 2), 4 = one token of q4_K / q5_K /
//    q6_K streamed in tiles of whole rows by bulk copies (sm_90+, matvec_bulk.h; the rest as 3;
//    slower, so only when forced), 0 = the default: 3 for one token where its two-row groups are at
//    least half the resident warps, else 2 (measured: bench/RESULTS.md, "Kernel 3" and "Kernel 3
//    balanced"); ROTOR_MMVQ=2/3/4 forces one (kernel 1 was removed; 1 is refused);
//  - the fused decode path of CudaForward's llama family (add_rms_norm_q8, qkv_prep, swiglu_q8 and
//    the mat-vecs on their pre-quantized activations; the default); ROTOR_FUSED_DECODE=0 turns it off.
//    It computes the same logits, bit for bit, with fewer launches. Read when a step is enqueued (graphs
//    captured before a change keep what they captured).
void set_matvec_kernel(int version);
int matvec_kernel();
// The tensor-core mat-vec for steps of several tokens of q4_K / q6_K (matvec_mma.h): automatic by default
// (8-16 tokens, 4-7 on large q4_K matrices); set_matvec_mma(true) takes every launch it can, false none
// (ROTOR_MMQ=1 / 0). The mode (0 off, 1 every launch, 2 automatic) saves and restores the choice around
// a check.
void set_matvec_mma(bool on);
bool matvec_mma();
int matvec_mma_mode();
void set_matvec_mma_mode(int mode);
// Its version 3 (f16 operands, matvec_mma_f16.h): on unless ROTOR_MMQ_F16=0 (then version 2 takes 9-16
// tokens); with set_matvec_mma(true) it takes every q4_K / q6_K launch of 1-16 tokens. applies: whether
// it would take n_tok tokens of type t.
void set_matvec_mma_f16(bool on);
bool matvec_mma_f16_applies(GgmlType t, int n_tok);
// The int8 path's next pass over n_left tokens of matrices of `rows` rows in all (type t, rows of cols):
// how many tokens it takes (up to 8 on the dp4a kernels, 16 on the tensor cores), whether they run on
// the tensor-core mat-vec under the current mode (matvec_mma.h) and whether on its f16 version 3.
struct Int8Pass {
    int n_tok;
    bool mma, f16;
};
Int8Pass matmul_int8_pass(GgmlType t, int n_left, int64_t rows, int64_t cols);
void set_fused_decode(bool on);
bool fused_decode();

// out[i][:] = row ids[i] of `table` (cols elements of type t), decoded to f32.
void get_rows(GgmlType t, const void* table, int64_t cols, const int32_t* ids, int n, float* out, cudaStream_t s);

// y[r] = x[r] / rms(x[r]) * w for each of `rows` rows of n floats (y may alias x).
void rms_norm(const float* x, const float* w, float* y, int rows, int n, float eps, cudaStream_t s);
// y[r][i] += b[i]
void add_bias(float* y, const float* b, int rows, int n, cudaStream_t s);
// x += y (n floats)
void add(float* x, const float* y, int64_t n, cudaStream_t s);
// gate = silu(gate) * up (n floats)
void swiglu(float* gate, const float* up, int64_t n, cudaStream_t s);
// RoPE on the first n_rot dims of each head of x[t] (n_head heads of head_dim), position pos[t];
// neox: pairs (i, i + n_rot/2), else adjacent pairs. inv_freq: n_rot/2 floats.
void rope(float* x, int n_tok, int n_head, int head_dim, int n_rot, bool neox, const int32_t* pos,
          const float* inv_freq, cudaStream_t s);

// ---- Fused kernels of the decode path: each is one launch for a sequence of the kernels above and
// computes the same floats, bit for bit (same per-element operations, same reduction order).

// x += y (skipped when y is null), then xn = rms_norm(x) * w, and xn quantized into act_q8
// (quantize_act_q8's layout for `rows` tokens; skipped when act_q8 is null; n % 32 == 0 then): add,
// rms_norm and quantize_act_q8 in one launch. y may alias xn (each element is read before it is
// written, by the same thread).
void add_rms_norm_q8(float* x, const float* y, const float* w, float* xn, int rows, int n, float eps, void* act_q8,
                     cudaStream_t s);
// get_rows of the embedding table into x, then as add_rms_norm_q8 without the add.
void get_rows_rms_norm_q8(GgmlType t, const void* table, const int32_t* ids, float* x, const float* w, float* xn,
                          int rows, int n, float eps, void* act_q8, cudaStream_t s);
// gate = silu(gate) * up for n_tok rows of n, quantized into act_q8 (n % 32 == 0): swiglu and
// quantize_act_q8 (the down projection's input) in one launch.
void swiglu_q8(float* gate, const float* up, int n_tok, int64_t n, void* act_q8, cudaStream_t s);

// The attention inputs after the Q/K/V projections, for all heads of n_tok tokens in one launch, in
// place: the biases (bq / bk / bv where not null), RMSNorm of each q and k head (q_norm / k_norm
// where not null), RoPE on the first n_rot dims at positions pos[t], and for a rotated cache type the
// rotation of q into its stored basis (kv_rotate_rows). When the cache stores floats (f32, f16) K and V are written to it at
// (seq[t], pos[t] % ctx) as kv_store does, and qkv_prep returns true; otherwise they stay in k / v
// for kv_store. The same floats as add_bias, rms_norm, rope, kv_rotate_rows and kv_store in that order.
struct QkvPrep {
    float* q = nullptr;
    float* k = nullptr;
    float* v = nullptr;
    const float* bq = nullptr;
    const float* bk = nullptr;
    const float* bv = nullptr;
    const float* q_norm = nullptr;
    const float* k_norm = nullptr;
    int n_head = 0, n_head_kv = 0, head_dim_k = 0, head_dim_v = 0, n_rot = 0;
    bool neox = false;
    float eps = 0.0f;
    const int32_t* pos = nullptr;
    const int32_t* seq = nullptr;
    const float* inv_freq = nullptr;
};
bool qkv_prep(const QkvPrep& p, const KvLayerView& kv, int n_tok, cudaStream_t s);

}  // namespace rotor::cuda
