// IEEE binary16 and bfloat16 conversions, exact (round-to-nearest-even, subnormals kept).
// Header-only and host/device neutral so CPU, CUDA and tests share one definition.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define ROTOR_HD __host__ __device__ inline
#include <cuda_fp16.h>
#else
#define ROTOR_HD inline
#endif

namespace rotor {

ROTOR_HD float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
ROTOR_HD uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

ROTOR_HD float fp16_to_f32(uint16_t h) {
#if defined(__CUDA_ARCH__)
    return __half2float(__ushort_as_half(h));  // one instruction; exact, as the code below
#else
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mant << 13));  // inf / nan
    if (exp == 0) {
        if (mant == 0) return bits_to_f32(sign);
        // subnormal: value = mant * 2^-24, exact in float
        float v = (float)mant * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112u) << 23) | (mant << 13));
#endif
}

ROTOR_HD uint16_t f32_to_fp16(float f) {
    const uint32_t x = f32_to_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return sign | (absx > 0x7f800000u ? 0x7e00u : 0x7c00u);  // nan / inf
    if (absx >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520 -> inf
    const int32_t exp = (int32_t)(absx >> 23) - 127;
    if (exp < -25) return sign;  // below half of the smallest subnormal -> 0
    uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    int shift;  // how many low bits of the 24-bit mantissa to drop
    uint32_t hexp;
    if (exp < -14) {  // subnormal half
        shift = 13 + (-14 - exp);
        hexp = 0;
    } else {
        shift = 13;
        hexp = (uint32_t)(exp + 15);
        mant &= 0x7fffffu;
    }
    const uint32_t half_ulp = 1u << (shift - 1);
    const uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t q = mant >> shift;
    if (rem > half_ulp || (rem == half_ulp && (q & 1u))) q++;
    // mantissa overflow carries into the exponent naturally
    return (uint16_t)(sign | ((hexp << 10) + q));
}

ROTOR_HD float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

ROTOR_HD uint16_t f32_to_bf16(float f) {
    uint32_t x = f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64);  // quiet nan, as ggml
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

}  // namespace rotor
