// Scale encodings of the FP4 formats (MXFP4: E8M0 per 32; NVFP4: UE4M3 per 16), as ggml decodes
// and encodes them. The FP4 element table (kMxfp4Values) holds doubled E2M1 values, so the
// decoders return half the real scale, like ggml's *_half helpers.
#pragma once
#include <cstdint>

#include "common/half.h"

namespace rotor {

// E8M0 (2^(e-127)) halved: 2^(e-128). e = 0 and 1 give float subnormals.
ROTOR_HD float e8m0_to_f32_half(uint8_t e) {
    return bits_to_f32(e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23);
}

// UE4M3 (unsigned, 4 exponent bits with bias 7, 3 mantissa bits), halved. As in ggml, 0 and 0x7F
// (E4M3's NaN) decode to 0 and bit 7 is not masked off before that check but ignored afterwards.
ROTOR_HD float ue4m3_to_f32_half(uint8_t x) {
    if (x == 0 || x == 0x7F) return 0.0f;
    const int exp = (x >> 3) & 0x0F;
    const int man = x & 0x07;
    // man * 2^-9 (subnormal) or (1 + man/8) * 2^(exp-7), then halved; the products are exact
    const int e2 = exp == 0 ? -10 : exp - 11;
    const float scale = bits_to_f32((uint32_t)(e2 + 127) << 23);
    return (float)(exp == 0 ? man : 8 + man) * scale;
}

// ggml's ggml_fp32_to_ue4m3: non-positive (and NaN) -> 0, saturates at 448 (0x7E), mantissa
// rounded half up on the fourth dropped bit, subnormals rounded to the nearest multiple of 2^-9.
inline uint8_t f32_to_ue4m3(float x) {
    if (!(x > 0.0f)) return 0;
    if (x > 448.0f) x = 448.0f;
    const uint32_t bits = f32_to_bits(x);
    const int f_exp = (int)((bits >> 23) & 0xFF) - 127;
    int man = (int)((bits >> 20) & 7);
    int exp = f_exp + 7;
    if (exp <= 0) {
        const int m = (int)(x * 512.0f + 0.5f);  // x < 2^-6, so m <= 8
        if (m < 1) return 0;
        return (uint8_t)(m > 7 ? 7 : m);
    }
    if (exp >= 15) return 0x7E;
    man += (int)((bits >> 19) & 1);
    if (man > 7) {
        man = 0;
        if (++exp >= 15) return 0x7E;
    }
    return (uint8_t)((exp << 3) | man);
}

}  // namespace rotor
