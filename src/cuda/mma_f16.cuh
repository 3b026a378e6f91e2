// mma.sync m16n8k16 / m16n8k8 with f16 inputs and f32 accumulators (sm_80+), and the half2 bit helpers
// the tensor-core attention and mat-vec kernels share.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

namespace rotor::cuda {

// c += a (16x16, row) * b (16x8, col), f16 inputs, f32 accumulators
__device__ inline void mma_16816(float* c, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
// c += a (16x8, row: a0 rows g, a1 rows g + 8) * b (8x8, col)
__device__ inline void mma_1688(float* c, uint32_t a0, uint32_t a1, uint32_t b0) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(b0));
}
__device__ inline uint32_t pack_half2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);  // lo at the lower address
    return *reinterpret_cast<const uint32_t*>(&h);
}
__device__ inline uint32_t h2_bits(__half2 h) {
    return *reinterpret_cast<const uint32_t*>(&h);
}
__device__ inline __half2 bits_h2(uint32_t u) {
    return *reinterpret_cast<const __half2*>(&u);
}

// The f16 at p (2-byte aligned): a block scale in a raw cache row.
__device__ inline float half_at(const uint8_t* p) {
    return __half2float(*reinterpret_cast<const __half*>(p));
}
// e with amax < 2^e for a row's largest |value scale| (0 for a row of zeros, at least -24: f16's
// smallest subnormal). The tensor-core attention kernels add it to each position's score in the
// running max, so that the weight times the value scale stays below 1 (inside f16's range).
__device__ inline int value_scale_exponent(float amax) {
    int e = 0;
    if (amax > 0.0f && amax <= 65504.0f) frexpf(amax, &e);
    return e > -24 ? e : -24;
}

// f32 pair as f16 hi and lo parts (a = hi + lo to about 2^-22 relative, while a stays in f16's normal
// range): two mma.sync products, hi then lo, give an f16-operand product f32 accuracy.
__device__ inline void split_pair(float a, float b, uint32_t& hi, uint32_t& lo) {
    const __half2 h = __floats2half2_rn(a, b);
    const float2 f = __half22float2(h);
    hi = h2_bits(h);
    lo = pack_half2(a - f.x, b - f.y);
}

}  // namespace rotor::cuda
