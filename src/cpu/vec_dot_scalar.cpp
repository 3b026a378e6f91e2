// Scalar dot-product kernels: the reference the SIMD kernels are tested against. Each block's
// products are summed exactly in integers (as ggml's *_generic kernels do), then scaled and added
// in float. Float weights (F32/F16/BF16) are summed in double.
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "cpu/vec_dot_impl.h"
#include "formats/blocks.h"
#include "formats/fp4.h"
#include "formats/iq_tables.h"

namespace rotor::cpu {

namespace {

inline float f16(half_bits h) { return fp16_to_f32(h); }


// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
inline void k4_scale_min(const uint8_t* s, int j, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// ---- float weights, f32 activations

float dot_f32(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const float*>(w);
    const auto* y = static_cast<const float*>(a);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * y[i];
    return (float)s;
}

float dot_f16(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const uint16_t*>(w);
    const auto* y = static_cast<const float*>(a);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)fp16_to_f32(x[i]) * y[i];
    return (float)s;
}

float dot_bf16(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const uint16_t*>(w);
    const auto* y = static_cast<const float*>(a);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)bf16_to_f32(x[i]) * y[i];
    return (float)s;
}

// ---- 32-element blocks with Q8_0 / Q8_1 activations

float dot_q4_0(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_q4_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += ((x[b].qs[j] & 0xF) - 8) * y[b].qs[j];
            isum += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
        }
        sum += (float)isum * (f16(x[b].d) * f16(y[b].d));
    }
    return sum;
}

float dot_q4_1(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_q4_1*>(w);
    const auto* y = static_cast<const block_q8_1*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += (x[b].qs[j] & 0xF) * y[b].qs[j];
            isum += (x[b].qs[j] >> 4) * y[b].qs[j + 16];
        }
        // y.s = y.d * sum(y.qs) carries the min term: sum(m * y) = m * s.
        sum += (float)isum * (f16(x[b].d) * f16(y[b].d)) + f16(x[b].m) * f16(y[b].s);
    }
    return sum;
}

float dot_q5_0(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_q5_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK5_0; b++) {
        uint32_t qh;
        memcpy(&qh, x[b].qh, 4);
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            const int v0 = ((x[b].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4)) - 16;
            const int v1 = ((x[b].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
            isum += v0 * y[b].qs[j] + v1 * y[b].qs[j + 16];
        }
        sum += (float)isum * (f16(x[b].d) * f16(y[b].d));
    }
    return sum;
}

float dot_q5_1(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_q5_1*>(w);
    const auto* y = static_cast<const block_q8_1*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK5_1; b++) {
        uint32_t qh;
        memcpy(&qh, x[b].qh, 4);
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            const int v0 = (x[b].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            const int v1 = (x[b].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            isum += v0 * y[b].qs[j] + v1 * y[b].qs[j + 16];
        }
        sum += (float)isum * (f16(x[b].d) * f16(y[b].d)) + f16(x[b].m) * f16(y[b].s);
    }
    return sum;
}

float dot_q8_0(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_q8_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        int isum = 0;
        for (int j = 0; j < 32; j++) isum += x[b].qs[j] * y[b].qs[j];
        sum += (float)isum * (f16(x[b].d) * f16(y[b].d));
    }
    return sum;
}

float dot_mxfp4(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_mxfp4*>(w);
    const auto* y = static_cast<const block_q8_0*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_MXFP4; b++) {
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += kMxfp4Values[x[b].qs[j] & 0xF] * y[b].qs[j];
            isum += kMxfp4Values[x[b].qs[j] >> 4] * y[b].qs[j + 16];
        }
        sum += (float)isum * (f16(y[b].d) * e8m0_to_f32_half(x[b].e));
    }
    return sum;
}

// NVFP4: 64 elements in 4 sub-blocks of 16 with their own scale; one block spans two Q8_0 blocks.
// Sub-block s: byte j (0..7) holds element j (low nibble) and element j + 8 (high nibble).
float dot_nvfp4(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_nvfp4*>(w);
    const auto* y = static_cast<const block_q8_0*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_NVFP4; b++) {
        for (int s = 0; s < 4; s++) {
            const block_q8_0& yb = y[2 * b + s / 2];
            const int8_t* q8 = yb.qs + (s % 2) * 16;
            int isum = 0;
            for (int j = 0; j < 8; j++) {
                const uint8_t q = x[b].qs[s * 8 + j];
                isum += kMxfp4Values[q & 0xF] * q8[j] + kMxfp4Values[q >> 4] * q8[j + 8];
            }
            sum += (float)isum * (f16(yb.d) * ue4m3_to_f32_half(x[b].d[s]));
        }
    }
    return sum;
}

// ---- K-quants with Q8_K activations

float dot_q2_K(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_q2_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        // value = d * (sc & 15) * q - dmin * (sc >> 4), per 16 elements
        int mins = 0;
        for (int j = 0; j < 16; j++) mins += y[b].bsums[j] * (x[b].scales[j] >> 4);
        int isum = 0;
        for (int half = 0; half < 2; half++) {  // 128 elements: 32 bytes of 4 x 2-bit codes
            const uint8_t* q2 = x[b].qs + 32 * half;
            for (int shift = 0; shift < 4; shift++) {
                const int e0 = 128 * half + 32 * shift;  // first element of this group of 32
                const int sc0 = x[b].scales[e0 / 16] & 0xF, sc1 = x[b].scales[e0 / 16 + 1] & 0xF;
                int s0 = 0, s1 = 0;
                for (int l = 0; l < 16; l++) s0 += ((q2[l] >> (2 * shift)) & 3) * y[b].qs[e0 + l];
                for (int l = 16; l < 32; l++) s1 += ((q2[l] >> (2 * shift)) & 3) * y[b].qs[e0 + l];
                isum += sc0 * s0 + sc1 * s1;
            }
        }
        sum += y[b].d * f16(x[b].d) * (float)isum - y[b].d * f16(x[b].dmin) * (float)mins;
    }
    return sum;
}

// The 16 signed 6-bit scales of a Q3_K block (stored biased by 32).
inline void q3_K_scales(const uint8_t* s, int out[16]) {
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
        const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (lo | (hi << 4)) - 32;
    }
}

float dot_q3_K(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_q3_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int sc[16];
        q3_K_scales(x[b].scales, sc);
        int isum = 0;
        for (int e = 0; e < QK_K; e += 16) {
            // element e: 2 low bits at qs[32*(e/128) + e%32] >> 2*((e/32)%4); high bit hmask[e%32] bit e/32,
            // and a clear high bit means -4.
            int s16 = 0;
            for (int l = 0; l < 16; l++) {
                const int i = e + l;
                const int lo = (x[b].qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3;
                const int v = lo - ((x[b].hmask[i % 32] >> (i / 32)) & 1 ? 0 : 4);
                s16 += v * y[b].qs[i];
            }
            isum += sc[e / 16] * s16;
        }
        sum += f16(x[b].d) * y[b].d * (float)isum;
    }
    return sum;
}

float dot_q4_K(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_q4_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0, mins = 0;
        for (int j = 0; j < 8; j++) {  // sub-blocks of 32: bytes 32*(j/2).., low nibble for even j
            int sc, m;
            k4_scale_min(x[b].scales, j, sc, m);
            const uint8_t* q = x[b].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int s32 = 0;
            for (int l = 0; l < 32; l++) s32 += ((q[l] >> shift) & 0xF) * y[b].qs[32 * j + l];
            isum += sc * s32;
            mins += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
        }
        sum += f16(x[b].d) * y[b].d * (float)isum - f16(x[b].dmin) * y[b].d * (float)mins;
    }
    return sum;
}

float dot_q5_K(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_q5_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0, mins = 0;
        for (int j = 0; j < 8; j++) {  // fifth bit of sub-block j is bit j of qh[l]
            int sc, m;
            k4_scale_min(x[b].scales, j, sc, m);
            const uint8_t* q = x[b].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int s32 = 0;
            for (int l = 0; l < 32; l++) {
                const int v = ((q[l] >> shift) & 0xF) | (((x[b].qh[l] >> j) & 1) << 4);
                s32 += v * y[b].qs[32 * j + l];
            }
            isum += sc * s32;
            mins += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
        }
        sum += f16(x[b].d) * y[b].d * (float)isum - f16(x[b].dmin) * y[b].d * (float)mins;
    }
    return sum;
}

float dot_q6_K(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_q6_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int half = 0; half < 2; half++) {  // 128 elements from ql[64], qh[32]
            const uint8_t* ql = x[b].ql + 64 * half;
            const uint8_t* qh = x[b].qh + 32 * half;
            const int8_t* q8 = y[b].qs + 128 * half;
            const int8_t* sc = x[b].scales + 8 * half;
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int v0 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int v1 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int v2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int v3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                isum += sc[is + 0] * v0 * q8[l] + sc[is + 2] * v1 * q8[l + 32] + sc[is + 4] * v2 * q8[l + 64] +
                        sc[is + 6] * v3 * q8[l + 96];
            }
        }
        sum += f16(x[b].d) * y[b].d * (float)isum;
    }
    return sum;
}

// ---- ternary

float dot_tq1_0(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_tq1_0*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    static constexpr uint8_t pow3[5] = {1, 3, 9, 27, 81};
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        // Each byte packs 5 trits as a base-3 fraction: trit l is the top "digit" of (byte * 3^l) mod 256.
        auto trit = [](uint8_t q, int l) { return (int)(((uint16_t)(uint8_t)(q * pow3[l]) * 3) >> 8) - 1; };
        int isum = 0;
        for (int l = 0; l < 5; l++)
            for (int m = 0; m < 32; m++) isum += trit(x[b].qs[m], l) * y[b].qs[32 * l + m];  // elements 0..159
        for (int l = 0; l < 5; l++)
            for (int m = 0; m < 16; m++) isum += trit(x[b].qs[32 + m], l) * y[b].qs[160 + 16 * l + m];  // ..239
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 4; m++) isum += trit(x[b].qh[m], l) * y[b].qs[240 + 4 * l + m];  // ..255
        sum += (float)isum * (f16(x[b].d) * y[b].d);
    }
    return sum;
}

float dot_tq2_0(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_tq2_0*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int half = 0; half < 2; half++)
            for (int l = 0; l < 4; l++)
                for (int k = 0; k < 32; k++)
                    isum += (((x[b].qs[32 * half + k] >> (2 * l)) & 3) - 1) * y[b].qs[128 * half + 32 * l + k];
        sum += (float)isum * (y[b].d * f16(x[b].d));
    }
    return sum;
}

// ---- IQ formats (lattice codebooks). Grid entries are 8 (or 4) bytes; signs come in 7 bits
// with the eighth implied by even parity (kKsignsIq2xs).

inline uint8_t grid_byte(uint64_t g, int j) { return (uint8_t)(g >> (8 * j)); }
inline int sign_of(uint8_t signs, int j) { return signs & kKmaskIq2xs[j] ? -1 : 1; }

float dot_iq2_xxs(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_iq2_xxs*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const int8_t* q8 = y[b].qs;
        int bsum = 0;
        for (int ib = 0; ib < 8; ib++) {  // 32 elements: 4 grid bytes, then 4 x 7 sign bits + 4-bit scale
            uint32_t aux[2];
            memcpy(aux, x[b].qs + 4 * ib, 8);
            const int ls = 2 * (int)(aux[1] >> 28) + 1;
            int s32 = 0;
            for (int l = 0; l < 4; l++) {
                const uint64_t g = kIq2xxsGrid[(aux[0] >> (8 * l)) & 0xFF];
                const uint8_t signs = kKsignsIq2xs[(aux[1] >> (7 * l)) & 127];
                for (int j = 0; j < 8; j++) s32 += grid_byte(g, j) * sign_of(signs, j) * q8[8 * l + j];
            }
            q8 += 32;
            bsum += s32 * ls;
        }
        sum += f16(x[b].d) * y[b].d * (float)bsum;
    }
    return 0.125f * sum;
}

float dot_iq2_xs(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_iq2_xs*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const int8_t* q8 = y[b].qs;
        int bsum = 0;
        for (int ib = 0; ib < 8; ib++) {
            const int ls[2] = {2 * (x[b].scales[ib] & 0xF) + 1, 2 * (x[b].scales[ib] >> 4) + 1};
            for (int l = 0; l < 4; l++) {  // 9-bit grid index, 7 sign bits
                const uint16_t q = x[b].qs[4 * ib + l];
                const uint64_t g = kIq2xsGrid[q & 511];
                const uint8_t signs = kKsignsIq2xs[q >> 9];
                int s8 = 0;
                for (int j = 0; j < 8; j++) s8 += grid_byte(g, j) * sign_of(signs, j) * q8[j];
                bsum += s8 * ls[l / 2];
                q8 += 8;
            }
        }
        sum += f16(x[b].d) * y[b].d * (float)bsum;
    }
    return 0.125f * sum;
}

float dot_iq2_s(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_iq2_s*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const int8_t* q8 = y[b].qs;
        const uint8_t* qs = x[b].qs;
        const uint8_t* signs = x[b].qs + QK_K / 8;  // explicit sign bytes follow the 32 index bytes
        int bsum = 0;
        for (int ib = 0; ib < 8; ib++) {
            const int ls[2] = {2 * (x[b].scales[ib] & 0xF) + 1, 2 * (x[b].scales[ib] >> 4) + 1};
            for (int l = 0; l < 4; l++) {  // 10-bit index: 8 bits in qs, 2 bits in qh
                const int idx = qs[4 * ib + l] | (((x[b].qh[ib] >> (2 * l)) & 3) << 8);
                const uint64_t g = kIq2sGrid[idx];
                int s8 = 0;
                for (int j = 0; j < 8; j++) s8 += grid_byte(g, j) * sign_of(signs[4 * ib + l], j) * q8[j];
                bsum += s8 * ls[l / 2];
                q8 += 8;
            }
        }
        sum += f16(x[b].d) * y[b].d * (float)bsum;
    }
    return 0.125f * sum;
}

float dot_iq3_xxs(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_iq3_xxs*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const int8_t* q8 = y[b].qs;
        const uint8_t* q3 = x[b].qs;
        const uint8_t* gas = x[b].qs + QK_K / 4;  // per 32: 4 x 7 sign bits + 4-bit scale
        int bsum = 0;
        for (int ib = 0; ib < 8; ib++) {
            uint32_t aux;
            memcpy(&aux, gas + 4 * ib, 4);
            const int ls = 2 * (int)(aux >> 28) + 1;
            int s32 = 0;
            for (int l = 0; l < 4; l++) {
                const uint32_t g1 = kIq3xxsGrid[q3[8 * ib + 2 * l]], g2 = kIq3xxsGrid[q3[8 * ib + 2 * l + 1]];
                const uint8_t signs = kKsignsIq2xs[(aux >> (7 * l)) & 127];
                for (int j = 0; j < 4; j++) {
                    s32 += (int)((g1 >> (8 * j)) & 0xFF) * sign_of(signs, j) * q8[j];
                    s32 += (int)((g2 >> (8 * j)) & 0xFF) * sign_of(signs, j + 4) * q8[j + 4];
                }
                q8 += 8;
            }
            bsum += s32 * ls;
        }
        sum += f16(x[b].d) * y[b].d * (float)bsum;
    }
    return 0.25f * sum;
}

float dot_iq3_s(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_iq3_s*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const int8_t* q8 = y[b].qs;
        int bsum = 0;
        for (int ib = 0; ib < 8; ib++) {  // 9-bit indices: 8 in qs, the ninth from qh[ib] bit k
            const int ls = 2 * ((x[b].scales[ib / 2] >> (4 * (ib % 2))) & 0xF) + 1;
            const uint8_t* qs = x[b].qs + 8 * ib;
            const uint8_t* signs = x[b].signs + 4 * ib;
            int s32 = 0;
            for (int l = 0; l < 4; l++) {
                const uint32_t g1 = kIq3sGrid[qs[2 * l] | (((x[b].qh[ib] >> (2 * l)) & 1) << 8)];
                const uint32_t g2 = kIq3sGrid[qs[2 * l + 1] | (((x[b].qh[ib] >> (2 * l + 1)) & 1) << 8)];
                for (int j = 0; j < 4; j++) {
                    s32 += (int)((g1 >> (8 * j)) & 0xFF) * sign_of(signs[l], j) * q8[j];
                    s32 += (int)((g2 >> (8 * j)) & 0xFF) * sign_of(signs[l], j + 4) * q8[j + 4];
                }
                q8 += 8;
            }
            bsum += s32 * ls;
        }
        sum += f16(x[b].d) * y[b].d * (float)bsum;
    }
    return sum;
}

float dot_iq1_s(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_iq1_s*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const int8_t* q8 = y[b].qs;
        int sumi = 0, sumd = 0;
        for (int ib = 0; ib < 8; ib++) {  // qh: 4 x 3 index bits, 3-bit scale, delta sign
            const uint16_t qh = x[b].qh[ib];
            const int ls = 2 * ((qh >> 12) & 7) + 1;
            const int delta = qh & 0x8000 ? -1 : 1;
            int s32 = 0;
            for (int l = 0; l < 4; l++) {
                const uint64_t g = kIq1sGrid[x[b].qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)];
                for (int j = 0; j < 8; j++) s32 += (int8_t)grid_byte(g, j) * q8[j];
                q8 += 8;
            }
            sumi += ls * s32;
            sumd += ls * delta * (y[b].bsums[2 * ib] + y[b].bsums[2 * ib + 1]);
        }
        sum += f16(x[b].d) * y[b].d * ((float)sumi + kIq1sDelta * (float)sumd);
    }
    return sum;
}

float dot_iq1_m(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_iq1_m*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint16_t sc[4];
        memcpy(sc, x[b].scales, 8);
        // The fp16 block scale is spread over the top nibbles of the four scale words.
        const uint16_t dbits = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) |
                                          (sc[3] & 0xF000));
        const int8_t* q8 = y[b].qs;
        int sumi = 0, sumd = 0;
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t* qh = x[b].qh + 2 * ib;  // per 8 elements: 3 index bits + a delta sign bit
            const int ls[2] = {2 * ((sc[ib / 2] >> (6 * (ib % 2))) & 7) + 1,
                               2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1};
            for (int l = 0; l < 4; l++) {
                const int hbits = (qh[l / 2] >> (4 * (l % 2))) & 0xF;
                const uint64_t g = kIq1sGrid[x[b].qs[4 * ib + l] | ((hbits & 7) << 8)];
                const int delta = hbits & 8 ? -1 : 1;
                int s8 = 0, y8 = 0;
                for (int j = 0; j < 8; j++) {
                    s8 += (int8_t)grid_byte(g, j) * q8[j];
                    y8 += q8[j];
                }
                sumi += ls[l / 2] * s8;
                sumd += ls[l / 2] * delta * y8;
                q8 += 8;
            }
        }
        sum += f16(dbits) * y[b].d * ((float)sumi + kIq1mDelta * (float)sumd);
    }
    return sum;
}

float dot_iq4_nl(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_iq4_nl*>(w);
    const auto* y = static_cast<const block_q8_0*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += kIq4nlValues[x[b].qs[j] & 0xF] * y[b].qs[j];
            isum += kIq4nlValues[x[b].qs[j] >> 4] * y[b].qs[j + 16];
        }
        sum += (float)isum * (f16(y[b].d) * f16(x[b].d));
    }
    return sum;
}

float dot_iq4_xs(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const block_iq4_xs*>(w);
    const auto* y = static_cast<const block_q8_K*>(a);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int ib = 0; ib < 8; ib++) {  // 6-bit scale: 4 bits in scales_l, 2 in scales_h; bias 32
            const int ls = ((x[b].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((x[b].scales_h >> (2 * ib)) & 3) << 4);
            const uint8_t* qs = x[b].qs + 16 * ib;
            const int8_t* q8 = y[b].qs + 32 * ib;
            int s32 = 0;
            for (int j = 0; j < 16; j++) s32 += kIq4nlValues[qs[j] & 0xF] * q8[j] + kIq4nlValues[qs[j] >> 4] * q8[j + 16];
            isum += (ls - 32) * s32;
        }
        sum += f16(x[b].d) * y[b].d * (float)isum;
    }
    return sum;
}

}  // namespace

KernelEntry scalar_kernel(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return {dot_each<dot_f32>};
        case GgmlType::F16: return {dot_each<dot_f16>};
        case GgmlType::BF16: return {dot_each<dot_bf16>};
        case GgmlType::Q4_0: return {dot_each<dot_q4_0>};
        case GgmlType::Q4_1: return {dot_each<dot_q4_1>};
        case GgmlType::Q5_0: return {dot_each<dot_q5_0>};
        case GgmlType::Q5_1: return {dot_each<dot_q5_1>};
        case GgmlType::Q8_0: return {dot_each<dot_q8_0>};
        case GgmlType::MXFP4: return {dot_each<dot_mxfp4>};
        case GgmlType::NVFP4: return {dot_each<dot_nvfp4>};
        case GgmlType::Q2_K: return {dot_each<dot_q2_K>};
        case GgmlType::Q3_K: return {dot_each<dot_q3_K>};
        case GgmlType::Q4_K: return {dot_each<dot_q4_K>};
        case GgmlType::Q5_K: return {dot_each<dot_q5_K>};
        case GgmlType::Q6_K: return {dot_each<dot_q6_K>};
        case GgmlType::TQ1_0: return {dot_each<dot_tq1_0>};
        case GgmlType::TQ2_0: return {dot_each<dot_tq2_0>};
        case GgmlType::IQ2_XXS: return {dot_each<dot_iq2_xxs>};
        case GgmlType::IQ2_XS: return {dot_each<dot_iq2_xs>};
        case GgmlType::IQ2_S: return {dot_each<dot_iq2_s>};
        case GgmlType::IQ3_XXS: return {dot_each<dot_iq3_xxs>};
        case GgmlType::IQ3_S: return {dot_each<dot_iq3_s>};
        case GgmlType::IQ1_S: return {dot_each<dot_iq1_s>};
        case GgmlType::IQ1_M: return {dot_each<dot_iq1_m>};
        case GgmlType::IQ4_NL: return {dot_each<dot_iq4_nl>};
        case GgmlType::IQ4_XS: return {dot_each<dot_iq4_xs>};
        default: return {};
    }
}

}  // namespace rotor::cpu
