// Decoding of one 8-element chunk of a weight block: the unit of work of the GPU mat-vec and
// embedding kernels (a warp's lanes take consecutive chunks, so a warp reads a row contiguously).
// Host/device neutral: CUDA kernels use these functions, and the CPU tests check every chunk of every
// format against the reference dequantizer (dequantize.cpp), bit for bit, so the GPU decodes exactly
// what the CPU does. The block structs come from blocks.h; nothing here redefines a layout.
//
// ChunkDecoder<T>::kBlockElems / kBlockBytes: one block; decode8(block, c, out) writes elements
// 8c .. 8c+7 of the block (0 <= c < kBlockElems / 8).
//
// The hot formats also have codes8(block, c, q, d, m): the chunk as eight small integer codes packed
// in two words of int8 lanes (q[0]: elements 0-3), with element = d * code + m. The GPU dots those
// with int8 activations four at a time (dp4a); the CPU tests check d * code + m against decode8.
#pragma once
#include <cstdint>
#include <cstring>

#include "common/half.h"
#include "formats/blocks.h"
#include "formats/formats.h"

namespace rotor {

namespace chunk_detail {

// IQ4_NL / IQ4_XS code book, the values of kIq4nlValues (iq_tables.cpp; a test pins them equal),
// packed eight signed bytes per 64-bit word so that device code looks codes up with shifts: a
// table in memory would serialize the lanes of a warp that index it differently.
ROTOR_HD int iq4nl(int code) {
    // bytes, least significant first: -127 -104 -83 -65 -49 -35 -22 -10 | 1 13 25 38 53 69 89 113
    const uint64_t lo = 0xF6EADDCFBFAD9881ull, hi = 0x7159453526190D01ull;
    return (int8_t)(((code < 8 ? lo : hi) >> (8 * (code & 7))) & 0xFF);
}

// Q4_K / Q5_K packed 6-bit scale and min of sub-block j (see dequantize.cpp's scale_min_k4).
ROTOR_HD void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Four bytes at p as a little-endian word; p is 2- (a2) or 4-byte (a4) aligned in the GPU's buffers.
ROTOR_HD uint32_t load_u32_a2(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
    const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
    return h[0] | ((uint32_t)h[1] << 16);
#else
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#endif
}
ROTOR_HD uint32_t load_u32_a4(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
    return *reinterpret_cast<const uint32_t*>(p);
#else
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#endif
}

}  // namespace chunk_detail

template <GgmlType T>
struct ChunkDecoder;

template <>
struct ChunkDecoder<GgmlType::F32> {
    static constexpr int kBlockElems = 8, kBlockBytes = 32;
    ROTOR_HD static void decode8(const uint8_t* b, int, float* out) {
        const auto* p = reinterpret_cast<const float*>(b);
        for (int i = 0; i < 8; i++) out[i] = p[i];
    }
};

template <>
struct ChunkDecoder<GgmlType::F16> {
    static constexpr int kBlockElems = 8, kBlockBytes = 16;
    ROTOR_HD static void decode8(const uint8_t* b, int, float* out) {
        const auto* p = reinterpret_cast<const uint16_t*>(b);
        for (int i = 0; i < 8; i++) out[i] = fp16_to_f32(p[i]);
    }
};

template <>
struct ChunkDecoder<GgmlType::BF16> {
    static constexpr int kBlockElems = 8, kBlockBytes = 16;
    ROTOR_HD static void decode8(const uint8_t* b, int, float* out) {
        const auto* p = reinterpret_cast<const uint16_t*>(b);
        for (int i = 0; i < 8; i++) out[i] = bf16_to_f32(p[i]);
    }
};

template <>
struct ChunkDecoder<GgmlType::Q8_0> {
    static constexpr int kBlockElems = QK8_0, kBlockBytes = sizeof(block_q8_0);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_q8_0*>(b);
        const float d = fp16_to_f32(x.d);
        for (int i = 0; i < 8; i++) out[i] = (float)x.qs[8 * c + i] * d;
    }
    ROTOR_HD static void codes8(const uint8_t* b, int c, uint32_t* q, float& d, float& m) {
        const auto& x = *reinterpret_cast<const block_q8_0*>(b);
        q[0] = chunk_detail::load_u32_a2(reinterpret_cast<const uint8_t*>(x.qs) + 8 * c);
        q[1] = chunk_detail::load_u32_a2(reinterpret_cast<const uint8_t*>(x.qs) + 8 * c + 4);
        d = fp16_to_f32(x.d);
        m = 0.0f;
    }
};

// The 32-element 4/5-bit formats: element j < 16 is the low nibble of qs[j], element j + 16 the high.
template <>
struct ChunkDecoder<GgmlType::Q4_0> {
    static constexpr int kBlockElems = QK4_0, kBlockBytes = sizeof(block_q4_0);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_q4_0*>(b);
        const float d = fp16_to_f32(x.d);
        const int shift = c >= 2 ? 4 : 0, base = 8 * (c & 1);
        for (int i = 0; i < 8; i++) out[i] = (float)(((x.qs[base + i] >> shift) & 0x0F) - 8) * d;
    }
    ROTOR_HD static void codes8(const uint8_t* b, int c, uint32_t* q, float& d, float& m) {
        const auto& x = *reinterpret_cast<const block_q4_0*>(b);
        const int shift = c >= 2 ? 4 : 0, base = 8 * (c & 1);
        q[0] = (chunk_detail::load_u32_a2(x.qs + base) >> shift) & 0x0F0F0F0Fu;
        q[1] = (chunk_detail::load_u32_a2(x.qs + base + 4) >> shift) & 0x0F0F0F0Fu;
        d = fp16_to_f32(x.d);
        m = -8.0f * d;  // codes 0..15 stand for -8..7
    }
};

template <>
struct ChunkDecoder<GgmlType::Q4_1> {
    static constexpr int kBlockElems = QK4_1, kBlockBytes = sizeof(block_q4_1);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_q4_1*>(b);
        const float d = fp16_to_f32(x.d), m = fp16_to_f32(x.m);
        const int shift = c >= 2 ? 4 : 0, base = 8 * (c & 1);
        for (int i = 0; i < 8; i++) out[i] = (float)((x.qs[base + i] >> shift) & 0x0F) * d + m;
    }
};

template <>
struct ChunkDecoder<GgmlType::Q5_0> {
    static constexpr int kBlockElems = QK5_0, kBlockBytes = sizeof(block_q5_0);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_q5_0*>(b);
        const float d = fp16_to_f32(x.d);
        const uint32_t qh = x.qh[0] | (uint32_t)x.qh[1] << 8 | (uint32_t)x.qh[2] << 16 | (uint32_t)x.qh[3] << 24;
        const int shift = c >= 2 ? 4 : 0, base = 8 * (c & 1);
        for (int i = 0; i < 8; i++) {
            const int e = 8 * c + i;  // element e's fifth bit is bit e of qh
            out[i] = (float)((int)(((x.qs[base + i] >> shift) & 0x0F) | (((qh >> e) & 1u) << 4)) - 16) * d;
        }
    }
};

template <>
struct ChunkDecoder<GgmlType::Q5_1> {
    static constexpr int kBlockElems = QK5_1, kBlockBytes = sizeof(block_q5_1);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_q5_1*>(b);
        const float d = fp16_to_f32(x.d), m = fp16_to_f32(x.m);
        const uint32_t qh = x.qh[0] | (uint32_t)x.qh[1] << 8 | (uint32_t)x.qh[2] << 16 | (uint32_t)x.qh[3] << 24;
        const int shift = c >= 2 ? 4 : 0, base = 8 * (c & 1);
        for (int i = 0; i < 8; i++) {
            const int e = 8 * c + i;
            out[i] = (float)(((x.qs[base + i] >> shift) & 0x0F) | (((qh >> e) & 1u) << 4)) * d + m;
        }
    }
};

template <>
struct ChunkDecoder<GgmlType::IQ4_NL> {
    static constexpr int kBlockElems = QK4_NL, kBlockBytes = sizeof(block_iq4_nl);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_iq4_nl*>(b);
        const float d = fp16_to_f32(x.d);
        const int shift = c >= 2 ? 4 : 0, base = 8 * (c & 1);
        for (int i = 0; i < 8; i++) out[i] = d * (float)chunk_detail::iq4nl((x.qs[base + i] >> shift) & 0x0F);
    }
};

// K-quants (256-element super-blocks). Q2_K / Q3_K: in each 128-element half, element 32k + l
// comes from bits 2k..2k+1 of byte l of the half's 32 code bytes; 16-element sub-blocks have scales.
template <>
struct ChunkDecoder<GgmlType::Q2_K> {
    static constexpr int kBlockElems = QK_K, kBlockBytes = sizeof(block_q2_K);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_q2_K*>(b);
        const int e = 8 * c, half = e / 128, r = e % 128, k = r / 32, l0 = r % 32;
        const int sc = x.scales[8 * half + 2 * k + l0 / 16];
        const float dl = fp16_to_f32(x.d) * (float)(sc & 0x0F), ml = fp16_to_f32(x.dmin) * (float)(sc >> 4);
        const uint8_t* q = x.qs + 32 * half + l0;
        for (int i = 0; i < 8; i++) out[i] = dl * (float)((q[i] >> (2 * k)) & 3) - ml;
    }
};

template <>
struct ChunkDecoder<GgmlType::Q3_K> {
    static constexpr int kBlockElems = QK_K, kBlockBytes = sizeof(block_q3_K);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_q3_K*>(b);
        const int e = 8 * c, half = e / 128, r = e % 128, k = r / 32, l0 = r % 32;
        const int j = 8 * half + 2 * k + l0 / 16;  // scale index, 6-bit signed with offset 32
        const int lo = (x.scales[j % 8] >> (4 * (j / 8))) & 0x0F;
        const int hi = (x.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        const float dl = fp16_to_f32(x.d) * (float)((lo | (hi << 4)) - 32);
        const uint8_t m = (uint8_t)(1u << (4 * half + k));
        const uint8_t* q = x.qs + 32 * half + l0;
        for (int i = 0; i < 8; i++) {
            const int v = ((q[i] >> (2 * k)) & 3) - ((x.hmask[l0 + i] & m) ? 0 : 4);
            out[i] = dl * (float)v;
        }
    }
};

// Q4_K / Q5_K: 64-element groups from 32 code bytes: low nibbles first (sub-block 2g), then high
// nibbles (sub-block 2g + 1); Q5_K's fifth bits are bits 2g and 2g + 1 of qh[l].
template <>
struct ChunkDecoder<GgmlType::Q4_K> {
    static constexpr int kBlockElems = QK_K, kBlockBytes = sizeof(block_q4_K);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_q4_K*>(b);
        const int e = 8 * c, g = e / 64, hi = (e % 64) / 32, l0 = e % 32;
        int sc, m;
        chunk_detail::scale_min_k4(2 * g + hi, x.scales, sc, m);
        const float d = fp16_to_f32(x.d) * (float)sc, mn = fp16_to_f32(x.dmin) * (float)m;
        const uint8_t* q = x.qs + 32 * g + l0;
        for (int i = 0; i < 8; i++) out[i] = d * (float)((q[i] >> (4 * hi)) & 0x0F) - mn;
    }
    ROTOR_HD static void codes8(const uint8_t* b, int c, uint32_t* q, float& d, float& m) {
        const auto& x = *reinterpret_cast<const block_q4_K*>(b);
        const int e = 8 * c, g = e / 64, hi = (e % 64) / 32, l0 = e % 32;
        int sc, mn;
        chunk_detail::scale_min_k4(2 * g + hi, x.scales, sc, mn);
        const uint8_t* p = x.qs + 32 * g + l0;
        q[0] = (chunk_detail::load_u32_a4(p) >> (4 * hi)) & 0x0F0F0F0Fu;
        q[1] = (chunk_detail::load_u32_a4(p + 4) >> (4 * hi)) & 0x0F0F0F0Fu;
        d = fp16_to_f32(x.d) * (float)sc;
        m = -(fp16_to_f32(x.dmin) * (float)mn);
    }
};

template <>
struct ChunkDecoder<GgmlType::Q5_K> {
    static constexpr int kBlockElems = QK_K, kBlockBytes = sizeof(block_q5_K);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_q5_K*>(b);
        const int e = 8 * c, g = e / 64, hi = (e % 64) / 32, l0 = e % 32;
        int sc, m;
        chunk_detail::scale_min_k4(2 * g + hi, x.scales, sc, m);
        const float d = fp16_to_f32(x.d) * (float)sc, mn = fp16_to_f32(x.dmin) * (float)m;
        const uint8_t* q = x.qs + 32 * g + l0;
        const uint8_t u = (uint8_t)(1u << (2 * g + hi));
        for (int i = 0; i < 8; i++)
            out[i] = d * (float)(((q[i] >> (4 * hi)) & 0x0F) + ((x.qh[l0 + i] & u) ? 16 : 0)) - mn;
    }
    ROTOR_HD static void codes8(const uint8_t* b, int c, uint32_t* q, float& d, float& m) {
        const auto& x = *reinterpret_cast<const block_q5_K*>(b);
        const int e = 8 * c, g = e / 64, hi = (e % 64) / 32, l0 = e % 32, bit = 2 * g + hi;
        int sc, mn;
        chunk_detail::scale_min_k4(2 * g + hi, x.scales, sc, mn);
        const uint8_t* p = x.qs + 32 * g + l0;
        for (int w = 0; w < 2; w++) {
            const uint32_t lo = (chunk_detail::load_u32_a4(p + 4 * w) >> (4 * hi)) & 0x0F0F0F0Fu;
            const uint32_t h = ((chunk_detail::load_u32_a4(x.qh + l0 + 4 * w) >> bit) & 0x01010101u) << 4;
            q[w] = lo | h;
        }
        d = fp16_to_f32(x.d) * (float)sc;
        m = -(fp16_to_f32(x.dmin) * (float)mn);
    }
};

// Q6_K: per 128-element half, element 32k + l takes a nibble of ql (k = 0, 1: low nibbles of bytes
// l and l + 32; k = 2, 3: high nibbles) and bits 2k..2k+1 of qh[l]; scales per 16 elements.
template <>
struct ChunkDecoder<GgmlType::Q6_K> {
    static constexpr int kBlockElems = QK_K, kBlockBytes = sizeof(block_q6_K);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_q6_K*>(b);
        const int e = 8 * c, half = e / 128, r = e % 128, k = r / 32, l0 = r % 32;
        const float d = fp16_to_f32(x.d) * (float)x.scales[8 * half + l0 / 16 + 2 * k];
        const uint8_t* ql = x.ql + 64 * half + l0 + 32 * (k & 1);
        const uint8_t* qh = x.qh + 32 * half + l0;
        const int nib = 4 * (k >> 1);
        for (int i = 0; i < 8; i++) {
            const int q = (((ql[i] >> nib) & 0x0F) | (((qh[i] >> (2 * k)) & 3) << 4)) - 32;
            out[i] = d * (float)q;
        }
    }
    ROTOR_HD static void codes8(const uint8_t* b, int c, uint32_t* q, float& d, float& m) {
        const auto& x = *reinterpret_cast<const block_q6_K*>(b);
        const int e = 8 * c, half = e / 128, r = e % 128, k = r / 32, l0 = r % 32;
        const uint8_t* ql = x.ql + 64 * half + l0 + 32 * (k & 1);
        const uint8_t* qh = x.qh + 32 * half + l0;
        const int nib = 4 * (k >> 1);
        for (int w = 0; w < 2; w++) {
            const uint32_t lo = (chunk_detail::load_u32_a2(ql + 4 * w) >> nib) & 0x0F0F0F0Fu;
            const uint32_t h = ((chunk_detail::load_u32_a2(qh + 4 * w) >> (2 * k)) & 0x03030303u) << 4;
            q[w] = lo | h;  // 0..63 stand for -32..31
        }
        d = fp16_to_f32(x.d) * (float)x.scales[8 * half + l0 / 16 + 2 * k];
        m = -32.0f * d;
    }
};

template <>
struct ChunkDecoder<GgmlType::IQ4_XS> {
    static constexpr int kBlockElems = QK_K, kBlockBytes = sizeof(block_iq4_xs);
    ROTOR_HD static void decode8(const uint8_t* b, int c, float* out) {
        const auto& x = *reinterpret_cast<const block_iq4_xs*>(b);
        const int e = 8 * c, ib = e / 32, r = e % 32;
        const int ls = ((x.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) | (((x.scales_h >> (2 * ib)) & 3) << 4);
        const float dl = fp16_to_f32(x.d) * (float)(ls - 32);
        const int shift = r >= 16 ? 4 : 0;
        const uint8_t* q = x.qs + 16 * ib + (r % 16);
        for (int i = 0; i < 8; i++) out[i] = dl * (float)chunk_detail::iq4nl((q[i] >> shift) & 0x0F);
    }
};

// Whether ChunkDecoder<T> has the integer form codes8.
template <GgmlType T>
inline constexpr bool kHasCodes8 = requires { &ChunkDecoder<T>::codes8; };

// Calls f.template operator()<T>() for the weight type t when it has a chunk decoder; returns false
// otherwise. The list of types is written once, here.
template <class F>
inline bool with_chunk_decoder(GgmlType t, F&& f) {  // host only
    switch (t) {
#define ROTOR_CHUNK_CASE(X) \
    case GgmlType::X: f.template operator()<GgmlType::X>(); return true;
        ROTOR_CHUNK_CASE(F32)
        ROTOR_CHUNK_CASE(F16)
        ROTOR_CHUNK_CASE(BF16)
        ROTOR_CHUNK_CASE(Q8_0)
        ROTOR_CHUNK_CASE(Q4_0)
        ROTOR_CHUNK_CASE(Q4_1)
        ROTOR_CHUNK_CASE(Q5_0)
        ROTOR_CHUNK_CASE(Q5_1)
        ROTOR_CHUNK_CASE(IQ4_NL)
        ROTOR_CHUNK_CASE(Q2_K)
        ROTOR_CHUNK_CASE(Q3_K)
        ROTOR_CHUNK_CASE(Q4_K)
        ROTOR_CHUNK_CASE(Q5_K)
        ROTOR_CHUNK_CASE(Q6_K)
        ROTOR_CHUNK_CASE(IQ4_XS)
#undef ROTOR_CHUNK_CASE
        default: return false;
    }
}

}  // namespace rotor
