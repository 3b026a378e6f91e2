// AVX-512 (BW + VNNI) kernels for the common decode formats: F32/F16/BF16, Q8_0, Q4_0, IQ4_NL,
// Q4_K, Q5_K, Q6_K and IQ4_XS. vpdpbusd multiplies unsigned by signed bytes and adds groups of four
// into int32 without saturation, so one instruction replaces AVX2's maddubs + madd + add on twice
// the width. Signed weights use the activation as the unsigned side: (y ^ 0x80) = y + 128, and the
// accumulator starts at -128 * (sum of each lane's four weights), computed once per weight block and
// shared by every activation; the result is exactly sum(w * y) per lane, for any int8 y.
//
// The other formats (Q4_1, Q5_x, Q2_K, Q3_K, IQ1-3, TQ, MXFP4, NVFP4) keep their AVX2 kernels at this
// level: they are rare in practice, or their time goes to table lookups and bit unpacking that the
// wider registers do not shorten.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers read a deliberately uninitialized variable inside _mm512_undefined_*()
// (GCC bug 105593) and trip -Wuninitialized wherever such intrinsics are inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "cpu/simd_x86.h"
#include "cpu/vec_dot_impl.h"

#include "formats/iq_tables.h"

namespace rotor::cpu {

namespace {

using namespace simd;

template <class T>
inline const T* act_row(const char* a, size_t stride, int r) {
    return reinterpret_cast<const T*>(a + (size_t)r * stride);
}

// ---- float weights, f32 activations

struct SrcF32 {
    using T = float;
    static __m512 load16(const T* p) { return _mm512_loadu_ps(p); }
    static float one(const T* p) { return *p; }
};
struct SrcF16 {
    using T = uint16_t;
    static __m512 load16(const T* p) { return _mm512_cvtph_ps(loadu256(p)); }
    static float one(const T* p) { return _cvtsh_ss(*p); }
};
struct SrcBF16 {
    using T = uint16_t;
    static __m512 load16(const T* p) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(loadu256(p)), 16));
    }
    static float one(const T* p) {
        const uint32_t u = (uint32_t)*p << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
};

template <class Src>
struct FloatDot {
    template <int R>
    static void run(int64_t n, const void* w, const char* a, size_t as, float* out, size_t os) {
        using T = typename Src::T;
        constexpr int U = 4;  // 16-float vectors per step; R = 4 uses 16 accumulators of the 32 zmm
        const T* x = static_cast<const T*>(w);
        __m512 acc[R][U];
        for (int r = 0; r < R; r++)
            for (int u = 0; u < U; u++) acc[r][u] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 16 * U <= n; i += 16 * U) {
            __m512 xv[U];
            for (int u = 0; u < U; u++) xv[u] = Src::load16(x + i + 16 * u);
            for (int r = 0; r < R; r++) {
                const float* y = act_row<float>(a, as, r) + i;
                for (int u = 0; u < U; u++) acc[r][u] = _mm512_fmadd_ps(xv[u], _mm512_loadu_ps(y + 16 * u), acc[r][u]);
            }
        }
        for (; i + 16 <= n; i += 16) {
            const __m512 xv = Src::load16(x + i);
            for (int r = 0; r < R; r++)
                acc[r][0] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(act_row<float>(a, as, r) + i), acc[r][0]);
        }
        for (int r = 0; r < R; r++) {
            const __m512 s01 = _mm512_add_ps(acc[r][0], acc[r][1]), s23 = _mm512_add_ps(acc[r][2], acc[r][3]);
            float s = hsum(_mm512_add_ps(s01, s23));
            const float* y = act_row<float>(a, as, r);
            for (int64_t j = i; j < n; j++) s += Src::one(x + j) * y[j];
            out[(size_t)r * os] = s;
        }
    }
};

// ---- 32-element blocks with Q8_0 activations, two blocks per zmm

// -128 * (sum of each lane's four signed weights): the start value that turns dpbusd(y ^ 0x80, w)
// into sum(w * y).
inline __m512i neg_offset(__m512i w) {
    return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), w));
}

// Two Q8_0 activation blocks' codes, offset to unsigned.
inline __m512i act_pair_u8(const block_q8_0& y0, const block_q8_0& y1) {
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(y0.qs)), loadu256(y1.qs), 1);
    return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
}

// Four blocks' 16 packed bytes -> their 4-bit codes in element order, blocks 0-1 in q01 and 2-3 in
// q23: [lo(0) hi(0) lo(1) hi(1)] and [lo(2) hi(2) lo(3) hi(3)] in 16-byte lanes.
inline void nibbles_quad(const uint8_t* p0, const uint8_t* p1, const uint8_t* p2, const uint8_t* p3, __m512i& q01,
                         __m512i& q23) {
    __m512i z = _mm512_castsi128_si512(loadu128(p0));
    z = _mm512_inserti32x4(z, loadu128(p1), 1);
    z = _mm512_inserti32x4(z, loadu128(p2), 2);
    z = _mm512_inserti32x4(z, loadu128(p3), 3);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i lo = _mm512_and_si512(z, m4), hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
    q01 = _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi);
    q23 = _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), hi);
}

// [lo nibbles, hi nibbles] of 16 bytes at p0, then of 16 bytes at p1: two blocks' 4-bit codes in order.
inline __m512i nibbles_pair(const uint8_t* p0, const uint8_t* p1) {
    const __m256i t = _mm256_set_m128i(loadu128(p1), loadu128(p0));
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1);  // p0 p1 p0>>4 p1>>4
    return _mm512_and_si512(_mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0F));
}

// The AVX2 (single block) remainder of these kernels: signed 32 codes times one activation block.
inline __m256i dot_block_i8(__m256i w, const block_q8_0& y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(loadu256(y.qs), w)),
                             _mm256_set1_epi16(1));
}

// Weight decoders: two blocks' signed codes (zmm) or one block's (ymm), and the blocks' scales.
struct DecodeQ8_0 {
    using Block = block_q8_0;
    static __m512i pair(const Block* x) {
        return _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(x[0].qs)), loadu256(x[1].qs), 1);
    }
    static void quad(const Block* x, __m512i& q01, __m512i& q23) { q01 = pair(x), q23 = pair(x + 2); }
    static __m256i one(const Block& x) { return loadu256(x.qs); }
};
struct DecodeQ4_0 {
    using Block = block_q4_0;
    static void quad(const Block* x, __m512i& q01, __m512i& q23) {
        nibbles_quad(x[0].qs, x[1].qs, x[2].qs, x[3].qs, q01, q23);
        q01 = _mm512_sub_epi8(q01, _mm512_set1_epi8(8));
        q23 = _mm512_sub_epi8(q23, _mm512_set1_epi8(8));
    }
    static __m256i one(const Block& x) { return _mm256_sub_epi8(nibbles_lo_hi(x.qs), _mm256_set1_epi8(8)); }
};
struct DecodeIQ4_NL {
    using Block = block_iq4_nl;
    static void quad(const Block* x, __m512i& q01, __m512i& q23) {
        const __m512i tbl = _mm512_broadcast_i32x4(loadu128(kIq4nlValues));
        nibbles_quad(x[0].qs, x[1].qs, x[2].qs, x[3].qs, q01, q23);
        q01 = _mm512_shuffle_epi8(tbl, q01);
        q23 = _mm512_shuffle_epi8(tbl, q23);
    }
    static __m256i one(const Block& x) {
        return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(loadu128(kIq4nlValues)), nibbles_lo_hi(x.qs));
    }
};

// The fp16 scales of four consecutive blocks as floats.
template <class B>
inline __m128 scales4(const B* x) {
    return _mm_cvtph_ps(_mm_setr_epi16((short)x[0].d, (short)x[1].d, (short)x[2].d, (short)x[3].d, 0, 0, 0, 0));
}

template <class D>
struct DotQ8_0Acts {
    template <int R>
    static void run(int64_t n, const void* w, const char* a, size_t as, float* out, size_t os) {
        const auto* x = static_cast<const typename D::Block*>(w);
        const int64_t nb = n / 32;
        // lanes of block 2k (first eight) and 2k+1 (last eight) for the pair's scale vector
        const __m512i pick01 = _mm512_inserti64x4(_mm512_set1_epi32(0), _mm256_set1_epi32(1), 1);
        const __m512i pick23 = _mm512_inserti64x4(_mm512_set1_epi32(2), _mm256_set1_epi32(3), 1);
        __m512 acc0[R], acc1[R];  // one FMA chain per pair of blocks
        for (int r = 0; r < R; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 4 <= nb; b += 4) {  // four blocks: two zmm of codes, one vector of scales
            __m512i q01, q23;
            D::quad(x + b, q01, q23);
            const __m512i off01 = neg_offset(q01), off23 = neg_offset(q23);
            const __m128 dx = scales4(x + b);
            for (int r = 0; r < R; r++) {
                const block_q8_0* y = act_row<block_q8_0>(a, as, r) + b;
                const __m512 sc = _mm512_castps128_ps512(_mm_mul_ps(dx, scales4(y)));
                const __m512i p01 = _mm512_dpbusd_epi32(off01, act_pair_u8(y[0], y[1]), q01);
                const __m512i p23 = _mm512_dpbusd_epi32(off23, act_pair_u8(y[2], y[3]), q23);
                acc0[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p01), _mm512_permutexvar_ps(pick01, sc), acc0[r]);
                acc1[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p23), _mm512_permutexvar_ps(pick23, sc), acc1[r]);
            }
        }
        for (int r = 0; r < R; r++) {
            float s = hsum(_mm512_add_ps(acc0[r], acc1[r]));
            const block_q8_0* y = act_row<block_q8_0>(a, as, r);
            for (int64_t k = b; k < nb; k++) {  // the last one to three blocks
                const __m256i p = dot_block_i8(D::one(x[k]), y[k]);
                s += hsum(_mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(x[k].d) * h2f(y[k].d))));
            }
            out[(size_t)r * os] = s;
        }
    }
};

// ---- 256-element super-blocks with Q8_K activations
//
// Per block the products are summed exactly in int32 lanes; the lanes are then scaled and added in
// float lanes (as ggml does) rather than reduced to one integer per block, which costs more than
// the rest of a Q4_K block's work. Results differ from the scalar kernel by float rounding only.

// int32 vector [v[2j] x8 | v[2j+1] x8] from 16 int32 values.
inline __m512i scale_pair(__m512i v, int j) {
    return _mm512_permutexvar_epi32(
        _mm512_inserti64x4(_mm512_set1_epi32(2 * j), _mm256_set1_epi32(2 * j + 1), 1), v);
}

inline __m256i fold256(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }

template <bool kFive>
struct DotQ45_K {
    using Block = std::conditional_t<kFive, block_q5_K, block_q4_K>;
    template <int R>
    static void run(int64_t n, const void* w, const char* a, size_t as, float* out, size_t os) {
        const auto* x = static_cast<const Block*>(w);
        const __m512i m4 = _mm512_set1_epi8(0x0F);
        const __m512i shift = halves_epi16(0, 4);  // low 256 bits: low nibbles; high: high nibbles
        __m512 acc[R];
        __m256 macc[R];  // min terms
        for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps(), macc[r] = _mm256_setzero_ps();
        for (int64_t b = 0; b < n / QK_K; b++) {
            const __m128i sm = k4_scales_mins(x[b].scales);
            const __m512i sc32 = _mm512_cvtepu8_epi32(sm);
            // mins as int16, each twice: paired with bsums[2j], bsums[2j+1] by one madd
            const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));
            // 64 elements per zmm: sub-block 2j (low nibbles of 32 bytes) then 2j+1 (high nibbles)
            __m512i q[4], s[4];
            __m512i hb;
            if constexpr (kFive) hb = bcast256(x[b].qh);
            for (int j = 0; j < 4; j++) {
                q[j] = _mm512_and_si512(_mm512_srlv_epi16(bcast256(x[b].qs + 32 * j), shift), m4);
                if constexpr (kFive) {  // fifth bit: bit 2j of qh for the low half, bit 2j+1 for the high
                    const __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (2 * j))),
                                                           _mm256_set1_epi8((char)(1 << (2 * j + 1))), 1);
                    q[j] = _mm512_mask_add_epi8(q[j], _mm512_test_epi8_mask(hb, bit), q[j], _mm512_set1_epi8(16));
                }
                s[j] = scale_pair(sc32, j);
            }
            const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
            for (int r = 0; r < R; r++) {
                const block_q8_K& y = act_row<block_q8_K>(a, as, r)[b];
                // Each lane's four products sum to |p| <= 4 * 31 * 127 < 2^15, so p fits the low int16
                // of its lane (the high one is its sign) and dpwssd with the scale in the low int16
                // (zero in the high one) multiplies and accumulates exactly.
                __m512i isum = _mm512_setzero_si512();
                for (int j = 0; j < 4; j++) {
                    const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[j], loadu512(y.qs + 64 * j));
                    isum = _mm512_dpwssd_epi32(isum, p, s[j]);
                }
                const __m256i mins = _mm256_madd_epi16(loadu256(y.bsums), mins16);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d), acc[r]);
                macc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(dmin * y.d), macc[r]);
            }
        }
        for (int r = 0; r < R; r++) out[(size_t)r * os] = hsum(acc[r]) - hsum(macc[r]);
    }
};

struct DotQ6_K {
    template <int R>
    static void run(int64_t n, const void* w, const char* a, size_t as, float* out, size_t os) {
        const auto* x = static_cast<const block_q6_K*>(w);
        const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(3);
        const __m512i sh_lo = halves_epi16(0, 2), sh_hi = halves_epi16(4, 6);
        // scale of each group of 16 elements, four groups per zmm: [k x4, k+1 x4, k+2 x4, k+3 x4]
        const __m512i grp = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        __m256 acc[R];
        for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
        for (int64_t b = 0; b < n / QK_K; b++) {
            // signed scales in the low int16 of each lane, zero above (for dpwssd)
            const __m512i sc32 = _mm512_and_si512(_mm512_cvtepi8_epi32(loadu128(x[b].scales)), _mm512_set1_epi32(0xFFFF));
            __m512i q[4], s[4];
            for (int h = 0; h < 2; h++) {  // 128 elements from ql[64], qh[32]
                const __m512i ql = loadu512(x[b].ql + 64 * h);
                const __m512i qh = bcast256(x[b].qh + 32 * h);
                // elements 0..63: low nibbles | qh bits 0-1 (first 32) or 2-3 (next 32), as 6-bit codes
                const __m512i h_lo = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_lo), m3), 4);
                const __m512i h_hi = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_hi), m3), 4);
                q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), h_lo);
                q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), h_hi);
                s[2 * h] = _mm512_permutexvar_epi32(_mm512_add_epi32(grp, _mm512_set1_epi32(8 * h)), sc32);
                s[2 * h + 1] = _mm512_permutexvar_epi32(_mm512_add_epi32(grp, _mm512_set1_epi32(8 * h + 4)), sc32);
            }
            // the codes carry +32: subtract 32 * sum_k scale[k] * bsums[k]
            const __m256i sc16 = _mm256_cvtepi8_epi16(loadu128(x[b].scales));
            const float d = h2f(x[b].d);
            for (int r = 0; r < R; r++) {
                const block_q8_K& y = act_row<block_q8_K>(a, as, r)[b];
                // |p| <= 4 * 63 * 127 < 2^15: exact through dpwssd as for Q4_K
                __m512i isum = _mm512_setzero_si512();
                for (int i = 0; i < 4; i++) {
                    const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[i], loadu512(y.qs + 64 * i));
                    isum = _mm512_dpwssd_epi32(isum, p, s[i]);
                }
                const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu256(y.bsums)), 5);
                const __m256i tot = _mm256_sub_epi32(fold256(isum), corr);
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_set1_ps(d * y.d), acc[r]);
            }
        }
        for (int r = 0; r < R; r++) out[(size_t)r * os] = hsum(acc[r]);
    }
};

struct DotIQ4_XS {
    template <int R>
    static void run(int64_t n, const void* w, const char* a, size_t as, float* out, size_t os) {
        const auto* x = static_cast<const block_iq4_xs*>(w);
        // The levels plus 128 (1..241) as the unsigned side; the 128 * sum(y) this adds per
        // sub-block comes back out through the activation's bsums.
        const __m512i tbl = _mm512_add_epi8(_mm512_broadcast_i32x4(loadu128(kIq4nlValues)), _mm512_set1_epi8((char)0x80));
        __m256 acc[R];
        for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
        for (int64_t b = 0; b < n / QK_K; b++) {
            // 6-bit scales, one byte each: 4 low bits from scales_l, 2 high bits from scales_h (minus 32)
            uint32_t sl;
            memcpy(&sl, x[b].scales_l, 4);
            const uint64_t ls = _pdep_u64(sl, 0x0F0F0F0F0F0F0F0Full) | _pdep_u64(x[b].scales_h, 0x3030303030303030ull);
            const __m128i ls8 = _mm_sub_epi8(_mm_cvtsi64_si128((long long)ls), _mm_set1_epi8(32));
            const __m512i sc32 = _mm512_cvtepi8_epi32(ls8);
            // -128 * scale, each twice: paired with bsums[2j], bsums[2j+1] by one madd
            const __m256i corr16 = _mm256_slli_epi16(_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(ls8, ls8)), 7);
            __m512i q[4], s[4];
            for (int j = 0; j < 4; j++) {  // sub-blocks 2j, 2j+1: 32 bytes of nibbles
                q[j] = _mm512_shuffle_epi8(tbl, nibbles_pair(x[b].qs + 32 * j, x[b].qs + 32 * j + 16));
                s[j] = scale_pair(sc32, j);
            }
            const float d = h2f(x[b].d);
            for (int r = 0; r < R; r++) {
                const block_q8_K& y = act_row<block_q8_K>(a, as, r)[b];
                __m512i isum = _mm512_setzero_si512();
                for (int j = 0; j < 4; j++) {
                    const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[j], loadu512(y.qs + 64 * j));
                    isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(p, s[j]));
                }
                const __m256i tot = _mm256_sub_epi32(fold256(isum), _mm256_madd_epi16(loadu256(y.bsums), corr16));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_set1_ps(d * y.d), acc[r]);
            }
        }
        for (int r = 0; r < R; r++) out[(size_t)r * os] = hsum(acc[r]);
    }
};

}  // namespace

KernelEntry avx512_kernel(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return {dot_multi<FloatDot<SrcF32>>, 4};
        case GgmlType::F16: return {dot_multi<FloatDot<SrcF16>>, 4};
        case GgmlType::BF16: return {dot_multi<FloatDot<SrcBF16>>, 4};
        case GgmlType::Q8_0: return {dot_multi<DotQ8_0Acts<DecodeQ8_0>>, 4};
        case GgmlType::Q4_0: return {dot_multi<DotQ8_0Acts<DecodeQ4_0>>, 4};
        case GgmlType::Q4_K: return {dot_multi<DotQ45_K<false>>, 4};
        case GgmlType::Q5_K: return {dot_multi<DotQ45_K<true>>, 4};
        case GgmlType::Q6_K: return {dot_multi<DotQ6_K>, 4};
        case GgmlType::IQ4_NL: return {dot_multi<DotQ8_0Acts<DecodeIQ4_NL>>, 4};
        case GgmlType::IQ4_XS: return {dot_multi<DotIQ4_XS>, 4};
        default: return {};
    }
}

// The activation quantizers stay at AVX2: quantizing one row costs well under 1% of a mat-vec.
QuantizeActFn avx512_quantizer(GgmlType) { return nullptr; }

}  // namespace rotor::cpu
