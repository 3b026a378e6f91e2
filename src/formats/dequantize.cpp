// Reference dequantizers: scalar, bit-exact with ggml's dequantize_row_* and gguf-py.
// Every product is written in ggml's order (e.g. (d * scale) * q, not d * (scale * q)): with fp16
// scales most products are exact, but not all of them (Q6_K, IQ4_XS), and the order decides the
// rounding. Blocks are read through the structs of blocks.h; multi-byte fields that ggml reads by
// type punning are read with memcpy here.
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "formats/blocks.h"
#include "formats/fp4.h"
#include "formats/iq_tables.h"
#include "formats/row_converters.h"

namespace rotor {

namespace {

// ---------------------------------------------------------------- plain storage types

void dq_f32(const void* src, float* dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
void dq_f16(const void* src, float* dst, int64_t n) {
    const auto* s = static_cast<const uint8_t*>(src);
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = fp16_to_f32(h);
    }
}
void dq_bf16(const void* src, float* dst, int64_t n) {
    const auto* s = static_cast<const uint8_t*>(src);
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
    }
}

// Integer tensors (and F64) converted to the nearest float.
template <typename T>
void dq_int(const void* src, float* dst, int64_t n) {
    const auto* s = static_cast<const uint8_t*>(src);
    for (int64_t i = 0; i < n; i++) {
        T v;
        memcpy(&v, s + sizeof(T) * (size_t)i, sizeof(T));
        dst[i] = static_cast<float>(v);
    }
}
void dq_f64(const void* src, float* dst, int64_t n) {
    const auto* s = static_cast<const uint8_t*>(src);
    for (int64_t i = 0; i < n; i++) {
        double v;
        memcpy(&v, s + 8 * (size_t)i, 8);
        // A double beyond float's range is undefined behaviour to convert; IEEE rounding would give
        // +-inf from FLT_MAX + half an ulp on, so say that explicitly.
        if (std::fabs(v) >= 0x1.ffffffp127) dst[i] = std::signbit(v) ? -INFINITY : INFINITY;
        else dst[i] = static_cast<float>(v);
    }
}

// ---------------------------------------------------------------- 32-element blocks

void dq_q4_0(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q4_0*>(src);
    for (int64_t i = 0; i < n / QK4_0; i++, y += QK4_0) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            y[j] = (float)x0 * d;
            y[j + QK4_0 / 2] = (float)x1 * d;
        }
    }
}

void dq_q4_1(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q4_1*>(src);
    for (int64_t i = 0; i < n / QK4_1; i++, y += QK4_1) {
        const float d = fp16_to_f32(x[i].d);
        const float m = fp16_to_f32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[j] = (float)(x[i].qs[j] & 0x0F) * d + m;
            y[j + QK4_1 / 2] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

// Bit j of qh is the fifth bit of element j.
uint32_t load_qh(const uint8_t* qh) {
    uint32_t v;
    memcpy(&v, qh, 4);
    return v;
}

void dq_q5_0(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q5_0*>(src);
    for (int64_t i = 0; i < n / QK5_0; i++, y += QK5_0) {
        const float d = fp16_to_f32(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int x0 = (int)((x[i].qs[j] & 0x0F) | (((qh >> j) & 1u) << 4)) - 16;
            const int x1 = (int)((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
            y[j] = (float)x0 * d;
            y[j + QK5_0 / 2] = (float)x1 * d;
        }
    }
}

void dq_q5_1(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q5_1*>(src);
    for (int64_t i = 0; i < n / QK5_1; i++, y += QK5_1) {
        const float d = fp16_to_f32(x[i].d);
        const float m = fp16_to_f32(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int x0 = (int)((x[i].qs[j] & 0x0F) | (((qh >> j) & 1u) << 4));
            const int x1 = (int)((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
            y[j] = (float)x0 * d + m;
            y[j + QK5_1 / 2] = (float)x1 * d + m;
        }
    }
}

void dq_q8_0(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q8_0*>(src);
    for (int64_t i = 0; i < n / QK8_0; i++, y += QK8_0) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK8_0; j++) y[j] = (float)x[i].qs[j] * d;
    }
}

// Q8_1 is an activation format (ggml has no dequantizer for it); s is only a cached sum.
void dq_q8_1(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q8_1*>(src);
    for (int64_t i = 0; i < n / QK8_1; i++, y += QK8_1) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK8_1; j++) y[j] = (float)x[i].qs[j] * d;
    }
}

void dq_iq4_nl(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_iq4_nl*>(src);
    for (int64_t i = 0; i < n / QK4_NL; i++, y += QK4_NL) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK4_NL / 2; j++) {
            y[j] = d * (float)kIq4nlValues[x[i].qs[j] & 0x0F];
            y[j + QK4_NL / 2] = d * (float)kIq4nlValues[x[i].qs[j] >> 4];
        }
    }
}

void dq_mxfp4(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_mxfp4*>(src);
    for (int64_t i = 0; i < n / QK_MXFP4; i++, y += QK_MXFP4) {
        const float d = e8m0_to_f32_half(x[i].e);
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            y[j] = (float)kMxfp4Values[x[i].qs[j] & 0x0F] * d;
            y[j + QK_MXFP4 / 2] = (float)kMxfp4Values[x[i].qs[j] >> 4] * d;
        }
    }
}

void dq_nvfp4(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_nvfp4*>(src);
    constexpr int kHalf = QK_NVFP4_SUB / 2;
    for (int64_t i = 0; i < n / QK_NVFP4; i++) {
        for (int s = 0; s < QK_NVFP4 / QK_NVFP4_SUB; s++, y += QK_NVFP4_SUB) {
            const float d = ue4m3_to_f32_half(x[i].d[s]);
            const uint8_t* q = x[i].qs + s * kHalf;
            for (int j = 0; j < kHalf; j++) {
                y[j] = (float)kMxfp4Values[q[j] & 0x0F] * d;
                y[j + kHalf] = (float)kMxfp4Values[q[j] >> 4] * d;
            }
        }
    }
}

// ---------------------------------------------------------------- K-quants (256-element super-blocks)

// Q4_K / Q5_K: eight 6-bit scales and mins packed in 12 bytes. Sub-block j < 4 keeps both in the
// low 6 bits of bytes j and j+4; j >= 4 keeps the low 4 bits in byte j+4 and the top 2 bits in the
// unused high bits of bytes j-4 (scale) and j (min).
void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Elements of a 128-element half come from 32 bytes of 2-bit codes: element 32*k + l is bits
// 2k..2k+1 of byte l. Q2_K and Q3_K share this order.
void dq_q2_K(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q2_K*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const float dmin = fp16_to_f32(x[i].dmin);
        const uint8_t* q = x[i].qs;
        int is = 0;
        for (int half = 0; half < QK_K / 128; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {  // two 16-element sub-blocks per shift
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (float)(sc & 0x0F);
                    const float ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16 * part] >> shift) & 3) - ml;
                }
            }
        }
    }
}

// Q3_K: sixteen 6-bit signed scales (offset 32) in 12 bytes: the low 4 bits of scale j are nibble
// (j / 8) of byte j % 8, the high 2 bits are bits 2*(j/4).. of byte 8 + j % 4.
void unpack_q3_K_scales(const uint8_t* packed, int* out) {
    for (int j = 0; j < 16; j++) {
        const int lo = (packed[j % 8] >> (4 * (j / 8))) & 0x0F;
        const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (lo | (hi << 4)) - 32;
    }
}

void dq_q3_K(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q3_K*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d_all = fp16_to_f32(x[i].d);
        int scales[16];
        unpack_q3_K_scales(x[i].scales, scales);
        const uint8_t* q = x[i].qs;
        const uint8_t* hm = x[i].hmask;
        uint8_t m = 1;  // the high bit of element 32*k + l (k = 0..7 over the block) is bit k of hmask[l]
        int is = 0;
        for (int half = 0; half < QK_K / 128; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
                for (int part = 0; part < 2; part++) {
                    const float dl = d_all * (float)scales[is++];
                    for (int l = 16 * part; l < 16 * part + 16; l++) {
                        const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

void dq_q4_K(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q4_K*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const float dmin = fp16_to_f32(x[i].dmin);
        const uint8_t* q = x[i].qs;
        for (int is = 0; is < QK_K / 32; is += 2, q += 32) {  // 64 elements from 32 bytes
            uint8_t sc, m;
            scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0x0F) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void dq_q5_K(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q5_K*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const float dmin = fp16_to_f32(x[i].dmin);
        const uint8_t* ql = x[i].qs;
        const uint8_t* qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;  // fifth bits of the two 32-element halves in qh
        for (int is = 0; is < QK_K / 32; is += 2, ql += 32) {
            uint8_t sc, m;
            scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

void dq_q6_K(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q6_K*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const uint8_t* ql = x[i].ql;
        const uint8_t* qh = x[i].qh;
        const int8_t* sc = x[i].scales;
        for (int half = 0; half < QK_K / 128; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void dq_q8_K(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_q8_K*>(src);
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j++) *y++ = x[i].d * (float)x[i].qs[j];
}

// ---------------------------------------------------------------- ternary

// TQ1_0 packs 5 trits per byte as a fixed-point fraction q = ceil(t * 256 / 243) of the base-3
// number t; multiplying by 3^k (mod 256) moves trit k to the top, and (q * 3) >> 8 reads it.
int tq1_trit(uint8_t byte, int k) {
    static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
    const uint8_t q = (uint8_t)(byte * kPow3[k]);
    return ((int)q * 3) >> 8;
}

void dq_tq1_0(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_tq1_0*>(src);
    constexpr int kQs = (int)sizeof(x->qs);  // 48: 32 bytes, then 16 bytes, 5 trits each
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < kQs; j += (j < 32 ? 32 : 16)) {
            const int width = j < 32 ? 32 : 16;
            for (int k = 0; k < 5; k++)
                for (int m = 0; m < width; m++) *y++ = (float)(tq1_trit(x[i].qs[j + m], k) - 1) * d;
        }
        for (int k = 0; k < 4; k++)  // qh: 4 trits per byte
            for (int j = 0; j < (int)sizeof(x->qh); j++) *y++ = (float)(tq1_trit(x[i].qh[j], k) - 1) * d;
    }
}

void dq_tq2_0(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_tq2_0*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < (int)sizeof(x->qs); j += 32)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++) *y++ = (float)(((x[i].qs[j + m] >> (2 * l)) & 3) - 1) * d;
    }
}

// ---------------------------------------------------------------- IQ formats

uint8_t grid_byte(uint64_t entry, int j) { return (uint8_t)(entry >> (8 * j)); }

// 8 weights from a grid entry: db * magnitude, negated where the sign byte says so.
void put8(float* y, float db, uint64_t entry, uint8_t signs) {
    for (int j = 0; j < 8; j++) {
        const float v = db * (float)grid_byte(entry, j);
        y[j] = (signs & kKmaskIq2xs[j]) ? -v : v;
    }
}

uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

// IQ2_XXS: per 32 weights two uint32: four 8-bit grid indices, then 4 x 7-bit sign indices and a
// 4-bit scale in the top bits.
void dq_iq2_xxs(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_iq2_xxs*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const auto* qs = reinterpret_cast<const uint8_t*>(x[i].qs);
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8) {
            const uint32_t signs_scale = load_u32(qs + 4);
            const float db = d * (0.5f + (float)(signs_scale >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++, y += 8)
                put8(y, db, kIq2xxsGrid[qs[l]], kKsignsIq2xs[(signs_scale >> (7 * l)) & 127]);
        }
    }
}

// IQ2_XS: uint16 per 8 weights (9-bit grid index, 7-bit sign index); 4-bit scales per 16 weights.
void dq_iq2_xs(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_iq2_xs*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const auto* qs = reinterpret_cast<const uint8_t*>(x[i].qs);
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const float db[2] = {d * (0.5f + (float)(x[i].scales[ib] & 0x0F)) * 0.25f,
                                 d * (0.5f + (float)(x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, y += 8) {
                const uint16_t q = load_u16(qs + 2 * (4 * ib + l));
                put8(y, db[l / 2], kIq2xsGrid[q & 511], kKsignsIq2xs[q >> 9]);
            }
        }
    }
}

// IQ2_S: 10-bit grid indices (8 bits in qs, 2 in qh), explicit sign bytes after the 32 index bytes.
void dq_iq2_s(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_iq2_s*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const uint8_t* qs = x[i].qs;
        const uint8_t* signs = x[i].qs + QK_K / 8;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, signs += 4) {
            const float db[2] = {d * (0.5f + (float)(x[i].scales[ib] & 0x0F)) * 0.25f,
                                 d * (0.5f + (float)(x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, y += 8) {
                const int idx = qs[l] | ((x[i].qh[ib] << (8 - 2 * l)) & 0x300);
                put8(y, db[l / 2], kIq2sGrid[idx], signs[l]);
            }
        }
    }
}

// 4 weights from each of two IQ3 grid entries, the 8 signs of one sign byte.
void put4x2(float* y, float db, uint32_t g1, uint32_t g2, uint8_t signs) {
    for (int j = 0; j < 4; j++) {
        const float v1 = db * (float)grid_byte(g1, j);
        const float v2 = db * (float)grid_byte(g2, j);
        y[j] = (signs & kKmaskIq2xs[j]) ? -v1 : v1;
        y[j + 4] = (signs & kKmaskIq2xs[j + 4]) ? -v2 : v2;
    }
}

// IQ3_XXS: 64 bytes of 8-bit grid indices, then per 32 weights a uint32 of 4 x 7-bit sign indices
// and a 4-bit scale.
void dq_iq3_xxs(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_iq3_xxs*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const uint8_t* qs = x[i].qs;
        const uint8_t* scales_signs = x[i].qs + QK_K / 4;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8) {
            const uint32_t aux = load_u32(scales_signs + 4 * ib);
            const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++, y += 8)
                put4x2(y, db, kIq3xxsGrid[qs[2 * l]], kIq3xxsGrid[qs[2 * l + 1]],
                       kKsignsIq2xs[(aux >> (7 * l)) & 127]);
        }
    }
}

// IQ3_S: 9-bit grid indices (8 bits in qs, 1 in qh), explicit sign bytes, 4-bit odd scales per 32.
void dq_iq3_s(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_iq3_s*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const uint8_t* qs = x[i].qs;
        const uint8_t* signs = x[i].signs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8, signs += 4) {
            const int sc = (x[i].scales[ib / 2] >> (4 * (ib % 2))) & 0x0F;
            const float db = d * (float)(1 + 2 * sc);
            const uint8_t qh = x[i].qh[ib];
            for (int l = 0; l < 4; l++, y += 8) {
                const int i1 = qs[2 * l] | ((qh << (8 - 2 * l)) & 256);
                const int i2 = qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
                put4x2(y, db, kIq3sGrid[i1], kIq3sGrid[i2], signs[l]);
            }
        }
    }
}

// 8 weights dl * (grid + delta) from an IQ1 grid entry (bytes are int8 -1, 0, +1).
void put8_iq1(float* y, float dl, uint64_t entry, float delta) {
    for (int j = 0; j < 8; j++) y[j] = dl * ((float)(int8_t)grid_byte(entry, j) + delta);
}

// IQ1_S: per 32 weights a uint16 qh: 4 x 3 high index bits, a 3-bit scale and the delta sign.
void dq_iq1_s(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_iq1_s*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const uint8_t* qs = x[i].qs;
        const auto* qh_bytes = reinterpret_cast<const uint8_t*>(x[i].qh);
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4) {
            const uint16_t qh = load_u16(qh_bytes + 2 * ib);
            const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            const float delta = (qh & 0x8000) ? -kIq1sDelta : kIq1sDelta;
            for (int l = 0; l < 4; l++, y += 8) put8_iq1(y, dl, kIq1sGrid[qs[l] | (((qh >> (3 * l)) & 7) << 8)], delta);
        }
    }
}

// IQ1_M: 11-bit indices (qs + a nibble of qh each, whose bit 3 picks the delta sign); 3-bit scales
// per 16 weights in scales[] (as four uint16), whose top nibbles together hold the fp16 d.
void dq_iq1_m(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_iq1_m*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint16_t sc[4];
        for (int k = 0; k < 4; k++) sc[k] = load_u16(x[i].scales + 2 * k);
        const uint16_t d_bits =
            (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000));
        const float d = fp16_to_f32(d_bits);
        const uint8_t* qs = x[i].qs;
        const uint8_t* qh = x[i].qh;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, qh += 2) {
            const float dl1 = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 0)) & 7) + 1);
            const float dl2 = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1);
            for (int l = 0; l < 4; l++, y += 8) {
                const uint8_t nib = (uint8_t)((qh[l / 2] >> (4 * (l % 2))) & 0x0F);
                const int idx = qs[l] | ((nib & 7) << 8);
                const float delta = (nib & 8) ? -kIq1mDelta : kIq1mDelta;
                put8_iq1(y, l < 2 ? dl1 : dl2, kIq1sGrid[idx], delta);
            }
        }
    }
}

// IQ4_XS: IQ4_NL levels with 6-bit scales per 32 (4 low bits in scales_l, 2 high in scales_h).
void dq_iq4_xs(const void* src, float* y, int64_t n) {
    const auto* x = static_cast<const block_iq4_xs*>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const uint8_t* qs = x[i].qs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 16, y += 32) {
            const int ls = ((x[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) | (((x[i].scales_h >> (2 * ib)) & 3) << 4);
            const float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)kIq4nlValues[qs[j] & 0x0F];
                y[j + 16] = dl * (float)kIq4nlValues[qs[j] >> 4];
            }
        }
    }
}

}  // namespace

DequantizeFn find_dequantizer(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return dq_f32;
        case GgmlType::F16: return dq_f16;
        case GgmlType::BF16: return dq_bf16;
        case GgmlType::F64: return dq_f64;
        case GgmlType::I8: return dq_int<int8_t>;
        case GgmlType::I16: return dq_int<int16_t>;
        case GgmlType::I32: return dq_int<int32_t>;
        case GgmlType::I64: return dq_int<int64_t>;
        case GgmlType::Q4_0: return dq_q4_0;
        case GgmlType::Q4_1: return dq_q4_1;
        case GgmlType::Q5_0: return dq_q5_0;
        case GgmlType::Q5_1: return dq_q5_1;
        case GgmlType::Q8_0: return dq_q8_0;
        case GgmlType::Q8_1: return dq_q8_1;
        case GgmlType::Q2_K: return dq_q2_K;
        case GgmlType::Q3_K: return dq_q3_K;
        case GgmlType::Q4_K: return dq_q4_K;
        case GgmlType::Q5_K: return dq_q5_K;
        case GgmlType::Q6_K: return dq_q6_K;
        case GgmlType::Q8_K: return dq_q8_K;
        case GgmlType::IQ2_XXS: return dq_iq2_xxs;
        case GgmlType::IQ2_XS: return dq_iq2_xs;
        case GgmlType::IQ2_S: return dq_iq2_s;
        case GgmlType::IQ3_XXS: return dq_iq3_xxs;
        case GgmlType::IQ3_S: return dq_iq3_s;
        case GgmlType::IQ1_S: return dq_iq1_s;
        case GgmlType::IQ1_M: return dq_iq1_m;
        case GgmlType::IQ4_NL: return dq_iq4_nl;
        case GgmlType::IQ4_XS: return dq_iq4_xs;
        case GgmlType::TQ1_0: return dq_tq1_0;
        case GgmlType::TQ2_0: return dq_tq2_0;
        case GgmlType::MXFP4: return dq_mxfp4;
        case GgmlType::NVFP4: return dq_nvfp4;
        default: return nullptr;  // Q1_0, Q2_0: no reference data to check a decoder against
    }
}

}  // namespace rotor
