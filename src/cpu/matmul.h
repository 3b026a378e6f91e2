// Linear layers on the CPU: y[n_tok x rows] = x[n_tok x cols] · W^T for a weight W stored as GGUF
// keeps it (`rows` rows of `cols` elements, each row a whole number of blocks of its format).
//
// Each activation row is quantized once to the weight format's activation type (see vec_dot.h).
// Rows of W are handed to the pool's threads in chunks; inside a chunk every weight row is dotted
// with a tile of tokens while it is hot in L1, several tokens per pass for kernels that decode a
// weight block once for many activations, so a prefill is not n_tok separate mat-vecs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/thread_pool.h"
#include "cpu/vec_dot.h"
#include "formats/formats.h"

namespace rotor {

struct WeightMatrix {
    GgmlType type = GgmlType::F32;
    int64_t rows = 0;  // output features (GGUF ne[1])
    int64_t cols = 0;  // input features (GGUF ne[0]); a multiple of the format's block size
    const void* data = nullptr;  // rows * row_bytes(type, cols) bytes, aligned as GGUF data is (>= 4)
};

// Activations quantized once, to be shared by several weights with the same activation type
// (e.g. the Q, K and V projections of one input).
struct QuantizedActs {
    GgmlType type = GgmlType::F32;  // Q8_0, Q8_1, Q8_K, or F32 (then `data` holds a copy of x)
    int64_t cols = 0, n_tok = 0;
    size_t stride = 0;            // bytes from one token's row to the next
    std::vector<uint32_t> data;  // uint32 keeps blocks 4-byte aligned (block_q8_K holds a float)
    const void* row(int64_t t) const { return (const char*)data.data() + (size_t)t * stride; }
};

// Quantizes n_tok rows of x (ldx floats apart) to `type` at level `isa`, into `out` (reusing its
// storage). Splits the tokens over the pool when there are many.
void quantize_acts(GgmlType type, const float* x, size_t ldx, int64_t n_tok, int64_t cols, QuantizedActs& out,
                   ThreadPool* pool = nullptr, CpuIsa isa = cpu_isa_default());

// y[t * ldy + r] = dot(W row r, activation row t) for pre-quantized activations; a.type must be
// k.act and a.cols == w.cols. pool may be nullptr (single thread).
void matmul_quantized(const WeightMatrix& w, const VecDotKernel& k, const QuantizedActs& a, float* y, size_t ldy,
                      ThreadPool* pool = nullptr);

// y[t * ldy + r] = sum_c x[t * ldx + c] * W[r, c] for t < n_tok, r < w.rows. Uses the kernel for
// w.type at level `isa`; throws rotor::Error if the format has no CPU kernel or cols do not fit.
// `scratch` (optional) keeps the quantized activations' storage from call to call.
void matmul(const WeightMatrix& w, const float* x, size_t ldx, int64_t n_tok, float* y, size_t ldy,
            ThreadPool* pool = nullptr, CpuIsa isa = cpu_isa_default(), QuantizedActs* scratch = nullptr);

// y[r] = W[r, :] · x: the decode-step case.
inline void matvec(const WeightMatrix& w, const float* x, float* y, ThreadPool* pool = nullptr,
                   CpuIsa isa = cpu_isa_default(), QuantizedActs* scratch = nullptr) {
    matmul(w, x, (size_t)w.cols, 1, y, (size_t)w.rows, pool, isa, scratch);
}

}  // namespace rotor
