// Scalar activation quantizers, bit-exact with ggml's quantize_row_q8_{0,1,K}_ref (and so with
// quantize_row() in formats/). The SIMD versions reproduce exactly these operations:
//   Q8_0/Q8_1: d = amax / 127, id = 1 / d, q = roundf(x * id)  (round half away from zero)
//   Q8_K:      iscale = -127 / x[argmax |x|] (first such x), q = min(127, rne(iscale * x)), d = 1 / iscale
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "cpu/vec_dot_impl.h"
#include "formats/blocks.h"

namespace rotor::cpu {

namespace {

void quantize_q8_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_0*>(vy);
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[b].qs[j] = (int8_t)std::roundf(x[j] * id);
    }
}

void quantize_q8_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_1*>(vy);
    for (int64_t b = 0; b < n / QK8_1; b++, x += QK8_1) {
        float amax = 0;
        for (int j = 0; j < QK8_1; j++) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = f32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[b].qs[j] = (int8_t)std::roundf(x[j] * id);
            sum += y[b].qs[j];
        }
        y[b].s = f32_to_fp16((float)sum * d);
    }
}

// ggml's nearest_int: round half to even through the float adder (valid for |v| < 2^22).
inline int nearest_int(float v) {
    const float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007FFFFF) - 0x00400000;
}

void quantize_q8_K(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_K*>(vy);
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK_K; j++) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            y[b].d = 0;
            memset(y[b].qs, 0, sizeof(y[b].qs));
            memset(y[b].bsums, 0, sizeof(y[b].bsums));
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) y[b].qs[j] = (int8_t)std::min(127, nearest_int(iscale * x[j]));
        for (int j = 0; j < QK_K / 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y[b].qs[16 * j + l];
            y[b].bsums[j] = (int16_t)s;
        }
        y[b].d = 1.0f / iscale;
    }
}

}  // namespace

QuantizeActFn scalar_quantizer(GgmlType act) {
    switch (act) {
        case GgmlType::Q8_0: return quantize_q8_0;
        case GgmlType::Q8_1: return quantize_q8_1;
        case GgmlType::Q8_K: return quantize_q8_K;
        default: return nullptr;
    }
}

}  // namespace rotor::cpu
