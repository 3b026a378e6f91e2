// The int8 mat-vec's unit of work (host/device neutral, so the CPU tests run the same code the GPU
// does): one lane takes one "unit" of a weight block (32 or 64 elements), reads its bytes from the
// warp's shared-memory copy of the row, and turns them into signed int8 codes packed four to a word
// (for dp4a) plus one float scale c and, for formats with an offset, one float m per group of 16 or
// 32 elements:
//
//     sum over the unit of w[e] * x[e]  =  sum_g  c[g] * xd[g] * (codes_g . xcodes_g)  +  m[g] * xs[g]
//
// where x = xd * xcodes per 32 elements (the activations, quantized once per call as the CPU's Q8_0:
// d = max|x| / 127, codes = round(x / d)) and xs = xd * (sum of the 32 codes). A span of kSpanBlocks
// blocks holds exactly 32 units, one per lane.
//
//   q8_0  34-byte blocks, unit = block (32 elements, 1 group, m = 0)
//   q4_0  18-byte blocks, unit = block (32 elements, 1 group, m = -8 d)
//   q4_K  144 bytes, unit = 64 elements (sub-blocks 2g, 2g+1: the low and high nibbles of 32 code bytes)
//   q5_K  176 bytes, as q4_K plus the fifth bits of qh
//   q6_K  210 bytes, unit = 16 positions l of one 128-element half, for its four 32-element rows k:
//         4 groups of 16 elements, codes - 32 stored signed (no m)
//
// Block addresses may be only 2-byte aligned (q8_0, q4_0, q6_K): words are then read from the
// aligned addresses around them and joined with funnel shifts (kBlockAlign says which reads a format
// needs: q4_K and q5_K blocks are read with 16-byte words).
#pragma once
#include <cstdint>
#include <cstring>

#include "common/half.h"
#include "formats/blocks.h"
#include "formats/chunk_decode.h"  // chunk_detail::load_u32_a4
#include "formats/formats.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

#if defined(__CUDA_ARCH__)
#define ROTOR_MMVQ_UNROLL _Pragma("unroll")
#else
#define ROTOR_MMVQ_UNROLL
#endif

namespace rotor::mmvq {

ROTOR_HD uint32_t funnel_r(uint32_t lo, uint32_t hi, int sh) {  // (hi:lo) >> sh, sh in 0..31
#if defined(__CUDA_ARCH__)
    return __funnelshift_r(lo, hi, sh);
#else
    return sh ? (lo >> sh) | (hi << (32 - sh)) : lo;
#endif
}

ROTOR_HD int dp4a(uint32_t a, uint32_t b, int c) {  // c + sum of the products of the signed bytes
#if defined(__CUDA_ARCH__)
    return __dp4a((int)a, (int)b, c);
#else
    for (int i = 0; i < 4; i++) c += (int)(int8_t)(a >> (8 * i)) * (int)(int8_t)(b >> (8 * i));
    return c;
#endif
}

// N little-endian words from p. A = 16: p is 16-byte aligned (vector reads); 4: word aligned; 2: p is
// 2-byte aligned, so the aligned words around it are read and shifted by 0 or 16 bits (N + 1 words
// when the shift is 16: 2 bytes past the last one).
template <int N, int A>
ROTOR_HD void load_words(const uint8_t* p, uint32_t* out) {
    if constexpr (A == 16) {
        static_assert(N % 4 == 0);
#if defined(__CUDA_ARCH__)
        ROTOR_MMVQ_UNROLL
        for (int i = 0; i < N / 4; i++) {
            const uint4 v = reinterpret_cast<const uint4*>(p)[i];
            out[4 * i] = v.x, out[4 * i + 1] = v.y, out[4 * i + 2] = v.z, out[4 * i + 3] = v.w;
        }
#else
        memcpy(out, p, 4 * N);
#endif
    } else if constexpr (A == 4) {
        ROTOR_MMVQ_UNROLL
        for (int i = 0; i < N; i++) out[i] = chunk_detail::load_u32_a4(p + 4 * i);
    } else {
        static_assert(A == 2);
        const uintptr_t a = reinterpret_cast<uintptr_t>(p);
        const uint8_t* base = p - (a & 3);
        const int sh = (int)(a & 3) * 8;
        uint32_t w[N + 1];
        ROTOR_MMVQ_UNROLL
        for (int i = 0; i < N; i++) w[i] = chunk_detail::load_u32_a4(base + 4 * i);
        // the word after is needed only when p is not word aligned (then it ends 2 bytes past the
        // last one read: inside the block for q6_K, so the direct-load kernel never reads past a matrix)
        w[N] = sh ? chunk_detail::load_u32_a4(base + 4 * N) : 0u;
        ROTOR_MMVQ_UNROLL
        for (int i = 0; i < N; i++) out[i] = funnel_r(w[i], w[i + 1], sh);
    }
}

ROTOR_HD uint32_t load_u16(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
    return *reinterpret_cast<const uint16_t*>(p);
#else
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
#endif
}

ROTOR_HD uint32_t byte_of(uint32_t w, int i) {
    return (w >> (8 * i)) & 0xFFu;
}

// f16 bits to float (exact either way; the GPU's conversion instruction on the device)
ROTOR_HD float half_bits_to_f32(uint32_t h) {
#if defined(__CUDA_ARCH__)
    return __half2float(__ushort_as_half((unsigned short)h));
#else
    return fp16_to_f32((uint16_t)h);
#endif
}

// The decoded weights of one unit: NQ words of int8 codes (group g is words g * NQ/NG ...), and the
// scale and offset of each group.
template <int NQ, int NG>
struct UnitWeights {
    uint32_t q[NQ];
    float c[NG];
    float m[NG];
};

template <GgmlType T>
struct Unit;

template <>
struct Unit<GgmlType::Q8_0> {
    static constexpr int kBlockBytes = sizeof(block_q8_0), kBlockElems = QK8_0;
    static constexpr int kUnitsPerBlock = 1, kSpanBlocks = 32;
    static constexpr int kGroups = 1, kGroupElems = 32, kWords = 8;
    static constexpr bool kHasMin = false;
    using W = UnitWeights<kWords, kGroups>;
    ROTOR_HD static constexpr int group_offset(int /*sub*/, int /*g*/) { return 0; }
    ROTOR_HD static void load(const uint8_t* b, int /*sub*/, W& w) {
        load_words<8, 2>(b + 2, w.q);
        w.c[0] = half_bits_to_f32(load_u16(b));
        w.m[0] = 0.0f;
    }
};

template <>
struct Unit<GgmlType::Q4_0> {
    static constexpr int kBlockBytes = sizeof(block_q4_0), kBlockElems = QK4_0;
    static constexpr int kUnitsPerBlock = 1, kSpanBlocks = 32;
    static constexpr int kGroups = 1, kGroupElems = 32, kWords = 8;
    static constexpr bool kHasMin = true;
    using W = UnitWeights<kWords, kGroups>;
    ROTOR_HD static constexpr int group_offset(int /*sub*/, int /*g*/) { return 0; }
    ROTOR_HD static void load(const uint8_t* b, int /*sub*/, W& w) {
        uint32_t qs[4];
        load_words<4, 2>(b + 2, qs);
        for (int i = 0; i < 4; i++) {
            w.q[i] = qs[i] & 0x0F0F0F0Fu;             // elements 0..15
            w.q[4 + i] = (qs[i] >> 4) & 0x0F0F0F0Fu;  // elements 16..31
        }
        const float d = half_bits_to_f32(load_u16(b));
        w.c[0] = d;
        w.m[0] = -8.0f * d;  // codes 0..15 stand for -8..7
    }
};

// Q4_K / Q5_K: the 6-bit scale and min of sub-blocks j = 2g and 2g + 1 from the 12 packed bytes
// (words s0 = bytes 0-3, s1 = 4-7, s2 = 8-11; formats' scale_min_k4).
ROTOR_HD void k4_scale_min(int j, uint32_t s0, uint32_t s1, uint32_t s2, int& sc, int& mn) {
    const int i = j & 3;
    const int lo_sc = (int)byte_of(s0, i) & 63, lo_m = (int)byte_of(s1, i) & 63;
    const int hi_sc = ((int)byte_of(s2, i) & 0x0F) | (((int)byte_of(s0, i) >> 6) << 4);
    const int hi_m = ((int)byte_of(s2, i) >> 4) | (((int)byte_of(s1, i) >> 6) << 4);
    sc = j < 4 ? lo_sc : hi_sc;
    mn = j < 4 ? lo_m : hi_m;
}

// The same for both sub-blocks of unit sub (j = 2 sub, 2 sub + 1) at once, as bytes 0 and 1 of sc
// and mn: 16-bit lanes of the packed words, about half the instructions of two k4_scale_min calls.
ROTOR_HD void k4_scale_min_pair(int sub, uint32_t s0, uint32_t s1, uint32_t s2, uint32_t& sc, uint32_t& mn) {
    const int sh = 16 * (sub & 1);
    const uint32_t a = s0 >> sh, b = s1 >> sh, c = s2 >> sh;
    const uint32_t lo_sc = a & 0x3F3Fu, lo_m = b & 0x3F3Fu;
    const uint32_t hi_sc = (c & 0x0F0Fu) | ((a >> 2) & 0x3030u);
    const uint32_t hi_m = ((c >> 4) & 0x0F0Fu) | ((b >> 2) & 0x3030u);
    sc = sub < 2 ? lo_sc : hi_sc;
    mn = sub < 2 ? lo_m : hi_m;
}

template <>
struct Unit<GgmlType::Q4_K> {
    static constexpr int kBlockBytes = sizeof(block_q4_K), kBlockElems = QK_K;
    static constexpr int kUnitsPerBlock = 4, kSpanBlocks = 8;
    static constexpr int kGroups = 2, kGroupElems = 32, kWords = 16;
    static constexpr bool kHasMin = true;
    using W = UnitWeights<kWords, kGroups>;
    ROTOR_HD static constexpr int group_offset(int sub, int g) { return 64 * sub + 32 * g; }
    struct Raw {  // the unit's bytes as loaded: d, dmin | scales 0-3 | 4-7 | 8-11, then its 32 code bytes
        uint32_t h[4], qs[8];
    };
    ROTOR_HD static void load_raw(const uint8_t* b, int sub, Raw& r) {  // b: 16-byte aligned
        load_words<4, 16>(b, r.h);
        load_words<8, 16>(b + 16 + 32 * sub, r.qs);
    }
    ROTOR_HD static void decode(const Raw& r, int sub, W& w) {
        for (int i = 0; i < 8; i++) {
            w.q[i] = r.qs[i] & 0x0F0F0F0Fu;
            w.q[8 + i] = (r.qs[i] >> 4) & 0x0F0F0F0Fu;
        }
        const float d = half_bits_to_f32(r.h[0] & 0xFFFF), dmin = half_bits_to_f32(r.h[0] >> 16);
        uint32_t sc, mn;
        k4_scale_min_pair(sub, r.h[1], r.h[2], r.h[3], sc, mn);
        for (int g = 0; g < 2; g++) {
            w.c[g] = d * (float)byte_of(sc, g);
            w.m[g] = -(dmin * (float)byte_of(mn, g));
        }
    }
    ROTOR_HD static void load(const uint8_t* b, int sub, W& w) {
        Raw r;
        load_raw(b, sub, r);
        decode(r, sub, w);
    }
};

template <>
struct Unit<GgmlType::Q5_K> {
    static constexpr int kBlockBytes = sizeof(block_q5_K), kBlockElems = QK_K;
    static constexpr int kUnitsPerBlock = 4, kSpanBlocks = 8;
    static constexpr int kGroups = 2, kGroupElems = 32, kWords = 16;
    static constexpr bool kHasMin = true;
    using W = UnitWeights<kWords, kGroups>;
    ROTOR_HD static constexpr int group_offset(int sub, int g) { return 64 * sub + 32 * g; }
    struct Raw {  // d, dmin and scales; the block's high bits; the unit's 32 low-nibble bytes
        uint32_t h[4], qh[8], qs[8];
    };
    ROTOR_HD static void load_raw(const uint8_t* b, int sub, Raw& r) {  // b: 16-byte aligned
        load_words<4, 16>(b, r.h);
        load_words<8, 16>(b + 16, r.qh);
        load_words<8, 16>(b + 48 + 32 * sub, r.qs);
    }
    ROTOR_HD static void load(const uint8_t* b, int sub, W& w) {
        Raw r;
        load_raw(b, sub, r);
        decode(r, sub, w);
    }
    ROTOR_HD static void decode(const Raw& r, int sub, W& w) {
        for (int i = 0; i < 8; i++) {
            w.q[i] = (r.qs[i] & 0x0F0F0F0Fu) | (((r.qh[i] >> (2 * sub)) & 0x01010101u) << 4);
            w.q[8 + i] = ((r.qs[i] >> 4) & 0x0F0F0F0Fu) | (((r.qh[i] >> (2 * sub + 1)) & 0x01010101u) << 4);
        }
        const float d = half_bits_to_f32(r.h[0] & 0xFFFF), dmin = half_bits_to_f32(r.h[0] >> 16);
        uint32_t sc, mn;
        k4_scale_min_pair(sub, r.h[1], r.h[2], r.h[3], sc, mn);
        for (int g = 0; g < 2; g++) {
            w.c[g] = d * (float)byte_of(sc, g);
            w.m[g] = -(dmin * (float)byte_of(mn, g));
        }
    }
};

// Bytes 0..63 minus 32, each byte on its own, as signed bytes.
ROTOR_HD uint32_t sub32_bytes(uint32_t v) {
    return ((v | 0x80808080u) - 0x20202020u) ^ 0x80808080u;
}

template <>
struct Unit<GgmlType::Q6_K> {
    static constexpr int kBlockBytes = sizeof(block_q6_K), kBlockElems = QK_K;
    static constexpr int kUnitsPerBlock = 4, kSpanBlocks = 8;
    static constexpr int kGroups = 4, kGroupElems = 16, kWords = 16;
    static constexpr bool kHasMin = false;
    using W = UnitWeights<kWords, kGroups>;
    // sub = 2 * half + (l0 / 16); group k = row k of the half: elements 128 half + 32 k + l0 + 0..15
    ROTOR_HD static constexpr int group_offset(int sub, int k) { return 128 * (sub >> 1) + 32 * k + 16 * (sub & 1); }
    struct Raw {
        uint32_t qa[4], qb[4], qh[4], sc[2], d;
    };
    ROTOR_HD static void load_raw(const uint8_t* b, int sub, Raw& r) {  // b: 2-byte aligned
        const int half = sub >> 1, l0 = 16 * (sub & 1);
        load_words<4, 2>(b + 64 * half + l0, r.qa);        // ql: rows 0 (low nibbles) and 2 (high)
        load_words<4, 2>(b + 64 * half + 32 + l0, r.qb);   // ql: rows 1 and 3
        load_words<4, 2>(b + 128 + 32 * half + l0, r.qh);  // two bits per row
        load_words<2, 2>(b + 192 + 8 * half, r.sc);        // int8 scales of the half, per 16
        r.d = load_u16(b + 208);
    }
    ROTOR_HD static void load(const uint8_t* b, int sub, W& w) {
        Raw r;
        load_raw(b, sub, r);
        decode(r, sub, w);
    }
    ROTOR_HD static void decode(const Raw& r, int sub, W& w) {
        const int l0 = 16 * (sub & 1);
        const uint32_t *qa = r.qa, *qb = r.qb, *qh = r.qh, *sc = r.sc;
        for (int i = 0; i < 4; i++) {
            w.q[i] = sub32_bytes((qa[i] & 0x0F0F0F0Fu) | ((qh[i] & 0x03030303u) << 4));
            w.q[4 + i] = sub32_bytes((qb[i] & 0x0F0F0F0Fu) | (((qh[i] >> 2) & 0x03030303u) << 4));
            w.q[8 + i] = sub32_bytes(((qa[i] >> 4) & 0x0F0F0F0Fu) | (((qh[i] >> 4) & 0x03030303u) << 4));
            w.q[12 + i] = sub32_bytes(((qb[i] >> 4) & 0x0F0F0F0Fu) | (((qh[i] >> 6) & 0x03030303u) << 4));
        }
        const float d = half_bits_to_f32(r.d);
        for (int k = 0; k < 4; k++) {
            // scale index within the half (l0 / 16 + 2 k): word k / 2 (a constant), byte l0 / 16 + 2 (k % 2)
            w.c[k] = d * (float)(int8_t)byte_of(sc[k >> 1], (l0 >> 4) + 2 * (k & 1));
            w.m[k] = 0.0f;
        }
    }
};

template <GgmlType T>
inline constexpr bool kHasUnit = requires {
    Unit<T>::kSpanBlocks;
};

// Byte alignment a format's blocks need in shared memory.
template <GgmlType T>
inline constexpr int kBlockAlign = Unit<T>::kBlockBytes % 16 == 0 ? 16 : 2;

// Where activation code e of a token row is stored. Codes go in 16-code chunks, and inside each
// span of 2048 codes chunk c = 16 a + 8 b + r sits at position 16 r + 8 b + a. With that order the
// lanes of a warp that each load one 16-byte chunk of their unit read 4 whole 128-byte lines at once
// (q4_K / q5_K: chunk i of 32 units of 64 codes; q6_K: row k of its 16-position units), where the
// natural order would touch 16 lines, a quarter of each: the activation loads are the largest
// stream the L1 serves. Token rows are padded to a multiple of 2048 codes.
constexpr int64_t kActSpan = 2048;
ROTOR_HD constexpr int64_t act_code_index(int64_t e) {
    const int64_t span = e / kActSpan;
    const int c = (int)(e % kActSpan) / 16;
    return span * kActSpan + 16 * (16 * (c % 8) + 8 * ((c / 8) % 2) + c / 16) + e % 16;
}
ROTOR_HD int64_t act_row_codes(int64_t cols) {
    return (cols + kActSpan - 1) / kActSpan * kActSpan;
}

// Where a lane's activation chunk c of group g sits relative to its chunk 0 of group 0, in codes (and
// its scale, in 32-element steps): the same for every lane of a span for q4_K, q5_K and q6_K (their
// chunks are 16 * 16 codes apart in act_code_index's order; MmvqUnits.ActivationOffsetsAreLaneFree
// checks every lane), so a kernel adds constants to one per-lane offset instead of keeping one
// register per chunk.
template <GgmlType T>
ROTOR_HD constexpr int act_chunk_delta(int g, int c) {
    return (int)(act_code_index(Unit<T>::group_offset(0, g) + 16 * c) - act_code_index(Unit<T>::group_offset(0, 0)));
}
template <GgmlType T>
ROTOR_HD constexpr int act_scale_delta(int g) {
    return Unit<T>::group_offset(0, g) / 32 - Unit<T>::group_offset(0, 0) / 32;
}

#if defined(__CUDACC__)
// Quantizes 32 activations, one per lane of a warp (elements e0 .. e0 + 31 of a token row, e0 a
// multiple of 32), as quantize_act_q8 does: d = max|x| / 127, codes round(x * (1 / d)) (the CPU's
// Q8_0 codes, bit for bit) at act_code_index, and s = d * sum(codes). Every fused kernel that
// quantizes activations calls this, so their codes equal quantize_act_q8's.
__device__ inline void quantize_act_warp(float v, int lane, int64_t e0, int8_t* codes, float* d, float* s) {
    float amax = fabsf(v);
    ROTOR_MMVQ_UNROLL
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float dd = amax / 127.0f;
    const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
    const int code = (int)roundf(__fmul_rn(v, id));
    codes[act_code_index(e0 + lane)] = (int8_t)code;
    int sum = code;
    ROTOR_MMVQ_UNROLL
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) {
        d[e0 / 32] = dd;
        s[e0 / 32] = dd * (float)sum;
    }
}
#endif

// The activations of one token, as quantize_act_q8 lays them out.
struct ActRow {
    const int8_t* codes;  // act_row_codes(cols) codes, in act_code_index order
    const float* d;       // per 32
    const float* s;       // d * sum of the 32 codes
};

// The 16 activation codes of element e .. e + 15 (e a multiple of 16) as words.
ROTOR_HD void load_act_chunk(const int8_t* codes, int64_t e, uint32_t* out) {
    const int8_t* p = codes + act_code_index(e);
#if defined(__CUDA_ARCH__)
    const int4 v = __ldg(reinterpret_cast<const int4*>(p));
    out[0] = (uint32_t)v.x, out[1] = (uint32_t)v.y, out[2] = (uint32_t)v.z, out[3] = (uint32_t)v.w;
#else
    memcpy(out, p, 16);
#endif
}

ROTOR_HD float load_act_float(const float* p) {
#if defined(__CUDA_ARCH__)
    return __ldg(p);
#else
    return *p;
#endif
}

// One token's activations for one unit: the codes of each group and its scale d (and d * sum of
// codes for formats with an offset), loaded once and dotted with the unit of several rows.
template <GgmlType T>
struct UnitAct {
    uint32_t a[Unit<T>::kWords];
    float d[Unit<T>::kGroups];
    float s[Unit<T>::kGroups];
};

// e0 = the first element of the unit's block in the row.
template <GgmlType T>
ROTOR_HD void load_unit_act(const ActRow& x, int sub, int64_t e0, UnitAct<T>& a) {
    using U = Unit<T>;
    constexpr int kWordsPerGroup = U::kGroupElems / 4;
    ROTOR_MMVQ_UNROLL
    for (int g = 0; g < U::kGroups; g++) {
        const int64_t e = e0 + U::group_offset(sub, g);
        ROTOR_MMVQ_UNROLL
        for (int c = 0; c < U::kGroupElems / 16; c++)
            load_act_chunk(x.codes, e + 16 * c, a.a + g * kWordsPerGroup + 4 * c);
        a.d[g] = load_act_float(x.d + e / 32);
        a.s[g] = U::kHasMin ? load_act_float(x.s + e / 32) : 0.0f;
    }
}

#if defined(__CUDACC__)
// load_unit_act from pointers at the lane's first code chunk and scale in its span (kernels 3 and 4:
// the others are constants away, act_chunk_delta / act_scale_delta), each read through `ld`: __ldg
// on global memory (kernel 3), a plain load from shared memory (kernel 4).
template <GgmlType T, class Ld>
__device__ inline void load_unit_act_at(const int8_t* codes, const float* d, const float* s, Ld ld, UnitAct<T>& a) {
    using U = Unit<T>;
    ROTOR_MMVQ_UNROLL
    for (int g = 0; g < U::kGroups; g++) {
        ROTOR_MMVQ_UNROLL
        for (int c = 0; c < U::kGroupElems / 16; c++) {
            const int4 v = ld(reinterpret_cast<const int4*>(codes + act_chunk_delta<T>(g, c)));
            uint32_t* o = a.a + g * (U::kGroupElems / 4) + 4 * c;
            o[0] = (uint32_t)v.x, o[1] = (uint32_t)v.y, o[2] = (uint32_t)v.z, o[3] = (uint32_t)v.w;
        }
        a.d[g] = ld(d + act_scale_delta<T>(g));
        a.s[g] = U::kHasMin ? ld(s + act_scale_delta<T>(g)) : 0.0f;
    }
}
#endif

// sum over the unit of w * x for one token
template <GgmlType T>
ROTOR_HD float unit_dot(const typename Unit<T>::W& w, const UnitAct<T>& a) {
    using U = Unit<T>;
    constexpr int kWordsPerGroup = U::kGroupElems / 4;
    float r = 0.0f;
    ROTOR_MMVQ_UNROLL
    for (int g = 0; g < U::kGroups; g++) {
        int sumi = 0;
        ROTOR_MMVQ_UNROLL
        for (int i = 0; i < kWordsPerGroup; i++)
            sumi = dp4a(w.q[g * kWordsPerGroup + i], a.a[g * kWordsPerGroup + i], sumi);
        r += w.c[g] * (a.d[g] * (float)sumi);
        if constexpr (U::kHasMin) r += w.m[g] * a.s[g];
    }
    return r;
}

}  // namespace rotor::mmvq
