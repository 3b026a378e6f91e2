// Dot products of a weight row in any ggml format with an activation vector, as ggml computes
// them: the activation is first quantized to the weight format's partner type ("vec dot type") and
// the dot product is summed in integers per block, then scaled in float.
//
//   weights                                  activation
//   Q4_0 Q5_0 Q8_0 IQ4_NL MXFP4 NVFP4        Q8_0   (32 per block, fp16 scale)
//   Q4_1 Q5_1                                Q8_1   (32 per block, fp16 scale and scaled sum)
//   Q2_K..Q6_K, IQ2/IQ3/IQ1, IQ4_XS, TQ1/TQ2 Q8_K   (256 per block, f32 scale, sums of 16)
//   F32 F16 BF16                             F32    (no quantization: decode is memory bound on
//                                                    the weights, and f32 keeps the activation exact)
//
// Every format has a scalar kernel (the reference), an AVX2 kernel and, where it pays, an AVX-512
// kernel; asking for a level a format has no kernel for gives the next lower one, and the table
// entry says which level it really is.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/cpu_isa.h"
#include "formats/formats.h"

namespace rotor {

// out[j * out_stride] = dot(weight row w, activation j) for j < n_act, where activation j starts
// at (const char*)act + j * act_stride and is n elements in the kernel's activation format.
// n must be a multiple of both block sizes. Kernels that reuse each decoded weight block for several
// activations do so for up to VecDotKernel::reuse activations at a time.
using VecDotFn = void (*)(int64_t n, const void* w, const void* act, size_t act_stride, float* out,
                          size_t out_stride, int n_act);

// f32 row of n elements -> n elements in an activation format (bit-exact with quantize_row()).
using QuantizeActFn = void (*)(const float* x, void* y, int64_t n);

struct VecDotKernel {
    GgmlType weight;        // weight format
    GgmlType act;           // activation format (F32 = plain floats, no quantization)
    CpuIsa isa;             // the level of `dot` (may be below the one asked for)
    CpuIsa quantize_isa;    // the level of `quantize`
    int reuse;              // activations served per pass over a weight row (1 = no reuse)
    VecDotFn dot;
    QuantizeActFn quantize;  // f32 -> act; for act == F32 a plain copy
};

// The kernel for a weight format at a level (clamped to what the CPU supports); nullptr when the
// format has no CPU dot product (I8..F64, Q8_1/Q8_K as weights, Q1_0/Q2_0).
const VecDotKernel* vec_dot_kernel(GgmlType weight, CpuIsa isa);
// Same at cpu_isa_default() (honours ROTOR_CPU_ISA).
const VecDotKernel* vec_dot_kernel(GgmlType weight);

// Activation quantizer for an activation format (Q8_0, Q8_1, Q8_K; F32 = copy) at a level.
QuantizeActFn quantize_act_fn(GgmlType act, CpuIsa isa);

// Bytes of a row of n elements in the activation format of `k` (n floats for F32).
inline size_t act_row_bytes(const VecDotKernel& k, int64_t n) { return (size_t)row_bytes(k.act, (uint64_t)n); }

// One-shot convenience (tests, tools): quantizes x for the format and returns the dot product.
float vec_dot_f32(GgmlType weight, const void* w, const float* x, int64_t n, CpuIsa isa);

}  // namespace rotor
