// Reference quantizers: scalar, bit-exact with ggml's quantize_row_*_ref and gguf-py.
// This file has the formats whose scale follows from the block's extremes in closed form; the
// search-based K-quant and IQ4 quantizers are in quantize_kquants.cpp. Arithmetic is float32 in
// ggml's order and the build disables FMA contraction, which ggml/gguf-py do not use either.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "formats/blocks.h"
#include "formats/fp4.h"
#include "formats/iq_tables.h"
#include "formats/quantize_impl.h"
#include "formats/row_converters.h"

namespace rotor {

using quant::nearest_int;
using quant::trunc_clamp;

namespace {

// ---------------------------------------------------------------- plain storage types

void q_f32(const float* src, void* dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
void q_f16(const float* src, void* dst, int64_t n) {
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = f32_to_fp16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}
void q_bf16(const float* src, void* dst, int64_t n) {
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = f32_to_bf16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

// ---------------------------------------------------------------- helpers

// The element of largest magnitude, signed; the first one wins ties (as ggml's strict '<').
float signed_absmax(const float* x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

float absmax(const float* x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) amax = std::fmax(amax, std::fabs(x[j]));  // a NaN input never becomes the scale
    return amax;
}

void min_max(const float* x, int n, float* min, float* max) {
    *min = FLT_MAX;
    *max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

// ---------------------------------------------------------------- 32-element blocks

// Q4_0 / Q5_0: d = -max/2^(bits-1) with max the signed extreme, so the extreme maps to code 0 and
// codes run 0 .. 2^bits-1 around the offset 2^(bits-1); rounding is truncation of v + offset + 0.5.
void q_q4_0(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q4_0*>(dst);
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        const float d = signed_absmax(x, QK4_0) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int q0 = trunc_clamp(x[j] * id + 8.5f, 0, 15);
            const int q1 = trunc_clamp(x[j + QK4_0 / 2] * id + 8.5f, 0, 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void q_q5_0(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q5_0*>(dst);
    for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
        const float d = signed_absmax(x, QK5_0) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int q0 = trunc_clamp(x[j] * id + 16.5f, 0, 31);
            const int q1 = trunc_clamp(x[j + QK5_0 / 2] * id + 16.5f, 0, 31);
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK5_0 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

// Q4_1 / Q5_1: codes 0 .. 2^bits-1 spread over [min, max].
void q_q4_1(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q4_1*>(dst);
    for (int64_t i = 0; i < n / QK4_1; i++, x += QK4_1) {
        float min, max;
        min_max(x, QK4_1, &min, &max);
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        y[i].m = f32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int q0 = trunc_clamp((x[j] - min) * id + 0.5f, 0, 15);
            const int q1 = trunc_clamp((x[j + QK4_1 / 2] - min) * id + 0.5f, 0, 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void q_q5_1(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q5_1*>(dst);
    for (int64_t i = 0; i < n / QK5_1; i++, x += QK5_1) {
        float min, max;
        min_max(x, QK5_1, &min, &max);
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        y[i].m = f32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int q0 = trunc_clamp((x[j] - min) * id + 0.5f, 0, 31);
            const int q1 = trunc_clamp((x[j + QK5_1 / 2] - min) * id + 0.5f, 0, 31);
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK5_1 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

// Q8_0 / Q8_1: d = amax/127, codes roundf(x/d) (half away from zero). The codes use the float32
// d even where its fp16 copy underflows to 0 (the block then dequantizes to +-0, as in ggml).
void q_q8_0(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q8_0*>(dst);
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        const float d = absmax(x, QK8_0) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)trunc_clamp(std::round(x[j] * id), -128, 127);
    }
}

void q_q8_1(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q8_1*>(dst);
    for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
        const float d = absmax(x, QK8_1) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[i].qs[j] = (int8_t)trunc_clamp(std::round(x[j] * id), -128, 127);
            sum += y[i].qs[j];
        }
        y[i].s = f32_to_fp16((float)sum * d);
    }
}

// Q8_K (activations for the K-quant dot products): f32 d = max/-127 with max the signed extreme,
// codes rounded half to even, and the sum of each 16 codes. An all-zero block gets d = 0 and zero
// codes and sums (ggml leaves its bsums unset there).
void q_q8_K(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q8_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        const float max = signed_absmax(x, QK_K);
        if (max == 0.0f) {
            memset(&y[i], 0, sizeof(block_q8_K));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) y[i].qs[j] = (int8_t)std::min(127, nearest_int(iscale * x[j]));
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

// ---------------------------------------------------------------- ternary

// The trit 0, 1, 2 (for -1, 0, +1) of v = x/amax, rounded half away from zero like lroundf. v is in
// [-1, 1] up to rounding; the clamp only keeps NaN defined.
int trit(float v) { return (int)std::lround(std::fmax(-1.0f, std::fmin(1.0f, v))) + 1; }

// TQ1_0 stores 5 trits per byte as ceil(t * 256 / 243) of the base-3 number t (first trit most
// significant), so that the decoder can read trit k with one multiply; see dq_tq1_0.
uint8_t pack_trits(uint32_t t) { return (uint8_t)((t * 256 + 242) / 243); }

void q_tq1_0(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_tq1_0*>(dst);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = absmax(x, QK_K);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        // qs: 32 bytes covering 160 elements (byte m holds elements m + 32k), then 16 bytes covering 80
        int pos = 0;
        for (const int width : {32, 16}) {
            for (int m = 0; m < width; m++) {
                uint32_t t = 0;
                for (int k = 0; k < 5; k++) t = t * 3 + (uint32_t)trit(x[m + k * width] * id);
                y[i].qs[pos + m] = pack_trits(t);
            }
            pos += width;
            x += 5 * width;
        }
        // qh: 4 bytes covering the last 16 elements, 4 trits each, shifted up to 5 trit places
        constexpr int kQh = (int)sizeof(y->qh);
        for (int j = 0; j < kQh; j++) {
            uint32_t t = 0;
            for (int k = 0; k < 4; k++) t = t * 3 + (uint32_t)trit(x[j + k * kQh] * id);
            y[i].qh[j] = pack_trits(t * 3);
        }
        x += 4 * kQh;
    }
}

void q_tq2_0(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_tq2_0*>(dst);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = absmax(x, QK_K);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < (int)sizeof(y->qs); j += 32, x += 128) {  // byte m: elements m + 32l
            for (int m = 0; m < 32; m++) {
                int q = 0;
                for (int l = 0; l < 4; l++) q |= trit(x[m + 32 * l] * id) << (2 * l);
                y[i].qs[j + m] = (uint8_t)q;
            }
        }
    }
}

// ---------------------------------------------------------------- FP4

// The FP4 code whose (doubled) value times e is nearest to x; the first one wins ties, so +0
// (code 0) is chosen over -0 (code 8).
int best_fp4_index(float x, float e) {
    int best = 0;
    float best_err = std::fabs((float)kMxfp4Values[0] * e - x);
    for (int i = 1; i < 16; i++) {
        const float err = std::fabs((float)kMxfp4Values[i] * e - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return best;
}

// MXFP4: shared exponent floor(log2(amax)) - 2 (6 = 1.5 * 2^2 is the largest E2M1 value), biased by
// 127. ggml converts that float to uint8_t unchecked; it is clamped to 0..255 here, which changes
// nothing for amax in [2^-125, 2^128) and keeps tiny or infinite blocks defined.
void q_mxfp4(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_mxfp4*>(dst);
    for (int64_t i = 0; i < n / QK_MXFP4; i++, x += QK_MXFP4) {
        float amax = 0.0f;
        for (int j = 0; j < QK_MXFP4; j++)
            if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
        const float e = amax > 0.0f ? std::floor(std::log2(amax)) - 2 + 127 : 0.0f;
        y[i].e = (uint8_t)trunc_clamp(e, 0, 255);
        const float d = e8m0_to_f32_half(y[i].e);
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            const int q0 = best_fp4_index(x[j], d);
            const int q1 = best_fp4_index(x[j + QK_MXFP4 / 2], d);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

// NVFP4: a UE4M3 scale amax/6 per 16 elements (ggml's quantize_row_nvfp4_ref).
void q_nvfp4(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_nvfp4*>(dst);
    constexpr int kHalf = QK_NVFP4_SUB / 2;
    for (int64_t i = 0; i < n / QK_NVFP4; i++) {
        for (int s = 0; s < QK_NVFP4 / QK_NVFP4_SUB; s++, x += QK_NVFP4_SUB) {
            float amax = 0.0f;
            for (int j = 0; j < QK_NVFP4_SUB; j++)
                if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
            y[i].d[s] = f32_to_ue4m3(amax / 6.0f);
            const float d = ue4m3_to_f32_half(y[i].d[s]);
            for (int j = 0; j < kHalf; j++) {
                const int q0 = best_fp4_index(x[j], d);
                const int q1 = best_fp4_index(x[j + kHalf], d);
                y[i].qs[s * kHalf + j] = (uint8_t)(q0 | (q1 << 4));
            }
        }
    }
}

}  // namespace

QuantizeFn find_quantizer(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return q_f32;
        case GgmlType::F16: return q_f16;
        case GgmlType::BF16: return q_bf16;
        case GgmlType::Q4_0: return q_q4_0;
        case GgmlType::Q4_1: return q_q4_1;
        case GgmlType::Q5_0: return q_q5_0;
        case GgmlType::Q5_1: return q_q5_1;
        case GgmlType::Q8_0: return q_q8_0;
        case GgmlType::Q8_1: return q_q8_1;
        case GgmlType::Q8_K: return q_q8_K;
        case GgmlType::Q2_K: return quant::quantize_q2_K;
        case GgmlType::Q3_K: return quant::quantize_q3_K;
        case GgmlType::Q4_K: return quant::quantize_q4_K;
        case GgmlType::Q5_K: return quant::quantize_q5_K;
        case GgmlType::Q6_K: return quant::quantize_q6_K;
        case GgmlType::IQ4_NL: return quant::quantize_iq4_nl;
        case GgmlType::IQ4_XS: return quant::quantize_iq4_xs;
        case GgmlType::TQ1_0: return q_tq1_0;
        case GgmlType::TQ2_0: return q_tq2_0;
        case GgmlType::MXFP4: return q_mxfp4;
        case GgmlType::NVFP4: return q_nvfp4;
        default: return nullptr;
    }
}

}  // namespace rotor
