// AVX2 dot-product kernels for float weights, the 32-element block formats, the K-quants and the
// ternary formats. Integer products use maddubs (u8 x s8 -> pairs in int16, never saturating for
// these ranges) and madd (int16 pairs -> int32, with a per-16-element scale folded in). The hot
// formats decode each weight block once and dot it with up to four activations (K::run<R>).
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

// ---- float weights

// Element sources for the float kernels: 8 at a time as floats, and one (for the tail).
struct SrcF32 {
    using T = float;
    static __m256 load8(const T* p) { return _mm256_loadu_ps(p); }
    static float one(const T* p) { return *p; }
};
struct SrcF16 {
    using T = uint16_t;
    static __m256 load8(const T* p) { return _mm256_cvtph_ps(loadu128(p)); }
    static float one(const T* p) { return _cvtsh_ss(*p); }
};
struct SrcBF16 {
    using T = uint16_t;
    static __m256 load8(const T* p) {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(loadu128(p)), 16));
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
        constexpr int U = 4;  // 8-float vectors per step: enough independent FMA chains (R <= 2 fits 16 ymm)
        const T* x = static_cast<const T*>(w);
        __m256 acc[R][U];
        for (int r = 0; r < R; r++)
            for (int u = 0; u < U; u++) acc[r][u] = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 * U <= n; i += 8 * U) {
            __m256 xv[U];
            for (int u = 0; u < U; u++) xv[u] = Src::load8(x + i + 8 * u);
            for (int r = 0; r < R; r++) {
                const float* y = act_row<float>(a, as, r) + i;
                for (int u = 0; u < U; u++) acc[r][u] = _mm256_fmadd_ps(xv[u], _mm256_loadu_ps(y + 8 * u), acc[r][u]);
            }
        }
        for (; i + 8 <= n; i += 8) {
            const __m256 xv = Src::load8(x + i);
            for (int r = 0; r < R; r++)
                acc[r][0] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(act_row<float>(a, as, r) + i), acc[r][0]);
        }
        for (int r = 0; r < R; r++) {
            for (int u = 1; u < U; u++) acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][u]);
            float s = hsum(acc[r][0]);
            const float* y = act_row<float>(a, as, r);
            for (int64_t j = i; j < n; j++) s += Src::one(x + j) * y[j];
            out[(size_t)r * os] = s;
        }
    }
};
using DotF32 = FloatDot<SrcF32>;
using DotF16 = FloatDot<SrcF16>;
using DotBF16 = FloatDot<SrcBF16>;

// ---- 32-element blocks, Q8_0 / Q8_1 activations

// Q4_0 / Q8_0 / IQ4_NL: decode a block to 32 signed codes once, dot it with up to four
// activations. Even and odd blocks go to separate accumulators so that one activation is not
// bound by the latency of a single FMA chain.
struct DecodeQ4_0 {
    using Block = block_q4_0;
    static __m256i codes(const Block& x) { return _mm256_sub_epi8(nibbles_lo_hi(x.qs), _mm256_set1_epi8(8)); }
};
struct DecodeQ8_0 {
    using Block = block_q8_0;
    static __m256i codes(const Block& x) { return loadu256(x.qs); }
};
struct DecodeIQ4_NL {
    using Block = block_iq4_nl;
    static __m256i codes(const Block& x) {
        return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(loadu128(kIq4nlValues)), nibbles_lo_hi(x.qs));
    }
};

template <class D>
struct DotQ8_0Acts {
    template <int R>
    static void run(int64_t n, const void* w, const char* a, size_t as, float* out, size_t os) {
        const auto* x = static_cast<const typename D::Block*>(w);
        const int64_t nb = n / 32;
        __m256 acc0[R], acc1[R];
        for (int r = 0; r < R; r++) acc0[r] = acc1[r] = _mm256_setzero_ps();
        auto step = [&](int64_t b, __m256 (&acc)[R]) {
            const __m256i q = D::codes(x[b]);
            const float dx = h2f(x[b].d);
            for (int r = 0; r < R; r++) {
                const block_q8_0& y = act_row<block_q8_0>(a, as, r)[b];
                const __m256i p = dot_i8(q, loadu256(y.qs));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dx * h2f(y.d)), acc[r]);
            }
        };
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) step(b, acc0), step(b + 1, acc1);
        if (b < nb) step(b, acc0);
        for (int r = 0; r < R; r++) out[(size_t)r * os] = hsum(_mm256_add_ps(acc0[r], acc1[r]));
    }
};

float dot_q4_1(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_q4_1*>(w);
    const auto* y = static_cast<const block_q8_1*>(va);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        const __m256i p = dot_u8(nibbles_lo_hi(x[b].qs), loadu256(y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), acc);
        mins += h2f(x[b].m) * h2f(y[b].s);
    }
    return hsum(acc) + mins;
}

float dot_q5_0(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_q5_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(va);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK5_0; b++) {
        uint32_t qh;
        memcpy(&qh, x[b].qh, 4);
        // nibble | 0xF0 where the fifth bit is clear is exactly (q - 16) as int8.
        const __m256i hi = _mm256_andnot_si256(bits_to_bytes(qh), _mm256_set1_epi8((char)0xF0));
        const __m256i q = _mm256_or_si256(nibbles_lo_hi(x[b].qs), hi);
        const __m256i p = dot_i8(q, loadu256(y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), acc);
    }
    return hsum(acc);
}

float dot_q5_1(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_q5_1*>(w);
    const auto* y = static_cast<const block_q8_1*>(va);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t b = 0; b < n / QK5_1; b++) {
        uint32_t qh;
        memcpy(&qh, x[b].qh, 4);
        const __m256i hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
        const __m256i q = _mm256_or_si256(nibbles_lo_hi(x[b].qs), hi);
        const __m256i p = dot_u8(q, loadu256(y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), acc);
        mins += h2f(x[b].m) * h2f(y[b].s);
    }
    return hsum(acc) + mins;
}

inline __m256i table16(const int8_t* values) {
    return _mm256_broadcastsi128_si256(loadu128(values));
}

float dot_mxfp4(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_mxfp4*>(w);
    const auto* y = static_cast<const block_q8_0*>(va);
    const __m256i tbl = table16(kMxfp4Values);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_MXFP4; b++) {
        const __m256i q = _mm256_shuffle_epi8(tbl, nibbles_lo_hi(x[b].qs));
        const __m256i p = dot_i8(q, loadu256(y[b].qs));
        const uint32_t eb = e8m0_half_bits(x[b].e);
        float e;
        memcpy(&e, &eb, 4);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(y[b].d) * e), acc);
    }
    return hsum(acc);
}

float dot_nvfp4(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_nvfp4*>(w);
    const auto* y = static_cast<const block_q8_0*>(va);
    const __m256i tbl = table16(kMxfp4Values);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_NVFP4; b++) {
        for (int h = 0; h < 2; h++) {  // sub-blocks 2h, 2h+1 = Q8_0 block 2b+h
            const __m128i q = loadu128(x[b].qs + 16 * h);
            const __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
            // sub-block s: its 8 bytes' low nibbles are elements 0..7, high nibbles 8..15
            const __m256i v = _mm256_set_m128i(_mm_unpackhi_epi64(lo, hi), _mm_unpacklo_epi64(lo, hi));
            const block_q8_0& yb = y[2 * b + h];
            const __m256i p = dot_i8(_mm256_shuffle_epi8(tbl, v), loadu256(yb.qs));
            const float dy = h2f(yb.d);
            const __m256 sc = _mm256_set_m128(_mm_set1_ps(dy * kUe4m3Half.v[x[b].d[2 * h + 1]]),
                                              _mm_set1_ps(dy * kUe4m3Half.v[x[b].d[2 * h]]));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sc, acc);
        }
    }
    return hsum(acc);
}

// ---- K-quants, Q8_K activations
//
// Per block the products are summed exactly in int32 lanes, which are then scaled and added in
// float lanes (as ggml does); reducing every block to one integer first costs about a third of the
// kernel's time. Results differ from the scalar kernel by float rounding only.

// Shuffle mask picking int16 element k of each 128-bit lane into all eight positions.
inline __m256i pick16(int k) { return _mm256_set1_epi16((short)(0x0100 + 0x0202 * k)); }
// ... element k in the low lane and element k+1 in the high lane (v holds the same 8 in both lanes).
inline __m256i pick16_pair(int k) {
    return _mm256_set_m128i(_mm_set1_epi16((short)(0x0100 + 0x0202 * (k + 1))), _mm_set1_epi16((short)(0x0100 + 0x0202 * k)));
}


template <bool kFive>
struct DotQ45_K {
    using Block = std::conditional_t<kFive, block_q5_K, block_q4_K>;
    template <int R>
    static void run(int64_t n, const void* w, const char* a, size_t as, float* out, size_t os) {
        const auto* x = static_cast<const Block*>(w);
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        __m256 acc[R], macc[R];  // block terms, min terms
        for (int r = 0; r < R; r++) acc[r] = macc[r] = _mm256_setzero_ps();
        for (int64_t b = 0; b < n / QK_K; b++) {
            const __m128i sm = k4_scales_mins(x[b].scales);
            const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
            // mins as int16, each twice: paired with bsums[2j], bsums[2j+1] by one madd
            const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));
            __m256i hb;
            if constexpr (kFive) hb = loadu256(x[b].qh);
            __m256i sumi[R];
            for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();
            for (int j = 0; j < 4; j++) {  // 64 elements: low nibbles (sub-block 2j), high nibbles (2j+1)
                const __m256i q = loadu256(x[b].qs + 32 * j);
                __m256i lo = _mm256_and_si256(q, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if constexpr (kFive) {
                    const __m256i one = _mm256_set1_epi8(1);
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4));
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4));
                }
                const __m256i s_lo = _mm256_shuffle_epi8(sc16, pick16(2 * j));
                const __m256i s_hi = _mm256_shuffle_epi8(sc16, pick16(2 * j + 1));
                for (int r = 0; r < R; r++) {
                    const int8_t* q8 = act_row<block_q8_K>(a, as, r)[b].qs + 64 * j;
                    const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, loadu256(q8)), s_lo);
                    const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, loadu256(q8 + 32)), s_hi);
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p_lo, p_hi));
                }
            }
            const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
            for (int r = 0; r < R; r++) {
                const block_q8_K& y = act_row<block_q8_K>(a, as, r)[b];
                const __m256i mins = _mm256_madd_epi16(loadu256(y.bsums), mins16);
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r]), _mm256_set1_ps(d * y.d), acc[r]);
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
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        const __m256i m2 = _mm256_set1_epi8(0x03), m2s2 = _mm256_set1_epi8(0x0C), m2s4 = _mm256_set1_epi8(0x30);
        __m256 acc[R];
        for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
        for (int64_t b = 0; b < n / QK_K; b++) {
            __m256i sumi[R];
            for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();
            for (int h = 0; h < 2; h++) {  // 128 elements from ql[64], qh[32]
                const __m256i qa = loadu256(x[b].ql + 64 * h), qb = loadu256(x[b].ql + 64 * h + 32);
                const __m256i qh = loadu256(x[b].qh + 32 * h);
                // unsigned 6-bit codes (value + 32) of elements 0..31, 32..63, 64..95, 96..127
                __m256i v[4];
                v[0] = _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
                v[1] = _mm256_or_si256(_mm256_and_si256(qb, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2s2), 2));
                v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4), _mm256_and_si256(qh, m2s4));
                v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2s4));
                const __m256i sc16 = _mm256_broadcastsi128_si256(
                    _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[b].scales + 8 * h))));
                __m256i s[4];
                for (int i = 0; i < 4; i++) s[i] = _mm256_shuffle_epi8(sc16, pick16_pair(2 * i));
                for (int r = 0; r < R; r++) {
                    const int8_t* q8 = act_row<block_q8_K>(a, as, r)[b].qs + 128 * h;
                    for (int i = 0; i < 4; i++)
                        sumi[r] = _mm256_add_epi32(
                            sumi[r], _mm256_madd_epi16(_mm256_maddubs_epi16(v[i], loadu256(q8 + 32 * i)), s[i]));
                }
            }
            // The codes carry +32: subtract 32 * sum_k scale[k] * bsums[k].
            const __m256i sc_all = _mm256_cvtepi8_epi16(loadu128(x[b].scales));
            const float d = h2f(x[b].d);
            for (int r = 0; r < R; r++) {
                const block_q8_K& y = act_row<block_q8_K>(a, as, r)[b];
                const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sc_all, loadu256(y.bsums)), 5);
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[r], corr)), _mm256_set1_ps(d * y.d),
                                         acc[r]);
            }
        }
        for (int r = 0; r < R; r++) out[(size_t)r * os] = hsum(acc[r]);
    }
};

float dot_q2_K(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_q2_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps(), macc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const __m128i sc = loadu128(x[b].scales);
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
        const __m256i mins = _mm256_madd_epi16(mins16, loadu256(y[b].bsums));
        const __m128i sc_lo = _mm_and_si128(sc, m4);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q = loadu256(x[b].qs + 32 * h);
            const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(h ? _mm_srli_si128(sc_lo, 8) : sc_lo));
            for (int s = 0; s < 4; s++) {
                const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), m3);
                const __m256i p = _mm256_maddubs_epi16(v, loadu256(y[b].qs + 128 * h + 32 * s));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc16, pick16_pair(2 * s))));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(y[b].d * h2f(x[b].d)), acc);
        macc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(y[b].d * h2f(x[b].dmin)), macc);
    }
    return hsum(acc) - hsum(macc);
}

// The 16 signed scales of a Q3_K block as int8: 4 low bits (nibbles of bytes 0..7), 2 high bits
// (byte 8 + j%4, bits 2*(j/4)), biased by 32. Built in registers: the 12 bytes end 2 bytes before
// the block does, so no 16-byte load, and no store-to-load round trip.
inline __m128i q3_K_scales(const uint8_t* s) {
    uint64_t lo8;
    uint32_t hi4;
    memcpy(&lo8, s, 8);
    memcpy(&hi4, s + 8, 4);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i v = _mm_cvtsi64_si128((long long)lo8);
    const __m128i low = _mm_unpacklo_epi64(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    const __m128i high = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)hi4), _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
    return _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi16(high, 4)), _mm_set1_epi8(32));
}

float dot_q3_K(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_q3_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const __m128i sc8 = q3_K_scales(x[b].scales);
        const __m256i hm = loadu256(x[b].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q = loadu256(x[b].qs + 32 * h);
            const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_srli_si128(sc8, 8) : sc8));
            for (int s = 0; s < 4; s++) {
                // code + 4 = low two bits | (high bit << 2), in 0..7
                const __m256i hb = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + s), one), 2);
                const __m256i v = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * s), m3), hb);
                const __m256i p = _mm256_maddubs_epi16(v, loadu256(y[b].qs + 128 * h + 32 * s));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc16, pick16_pair(2 * s))));
            }
        }
        // the codes carry +4: subtract 4 * sum_k scale[k] * bsums[k]
        const __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), loadu256(y[b].bsums));
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 2));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(h2f(x[b].d) * y[b].d), acc);
    }
    return hsum(acc);
}

// ---- ternary (lookup-free, but not common enough to trade exactness for speed: these and the IQ
// kernels reduce each block exactly and reproduce the scalar result bit for bit)

float dot_tq2_0(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_tq2_0*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    const __m256i m3 = _mm256_set1_epi8(3);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q = loadu256(x[b].qs + 32 * h);
            for (int l = 0; l < 4; l++) {
                const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * l), m3);
                sumi = _mm256_add_epi32(sumi, dot_u8(v, loadu256(y[b].qs + 128 * h + 32 * l)));
            }
        }
        // codes are value + 1: subtract the sum of all activations
        sumi = _mm256_sub_epi32(sumi, _mm256_madd_epi16(loadu256(y[b].bsums), _mm256_set1_epi16(1)));
        sum += (float)hsum_i32(sumi) * (y[b].d * h2f(x[b].d));
    }
    return sum;
}

// bytes q -> q * m mod 256, with m given per 16-bit lane (the same for both bytes of a lane)
inline __m256i mul_bytes(__m256i q, __m256i m16) {
    const __m256i even = _mm256_and_si256(_mm256_mullo_epi16(q, m16), _mm256_set1_epi16(0x00FF));
    const __m256i odd = _mm256_slli_epi16(_mm256_mullo_epi16(_mm256_srli_epi16(q, 8), m16), 8);
    return _mm256_or_si256(even, odd);
}
// bytes v -> (v * 3) >> 8, the leading base-3 digit of a TQ1_0 byte
inline __m256i top_trit(__m256i v) {
    const __m256i three = _mm256_set1_epi16(3);
    const __m256i even = _mm256_mulhi_epu16(_mm256_slli_epi16(v, 8), three);
    const __m256i odd = _mm256_mulhi_epu16(_mm256_and_si256(v, _mm256_set1_epi16((short)0xFF00)), three);
    return _mm256_or_si256(even, _mm256_slli_epi16(odd, 8));
}

float dot_tq1_0(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_tq1_0*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    static constexpr short pow3[5] = {1, 3, 9, 27, 81};
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const int8_t* q8 = y[b].qs;
        __m256i sumi = _mm256_setzero_si256();
        const __m256i qa = loadu256(x[b].qs);  // trit l of byte m -> element 32l + m
        for (int l = 0; l < 5; l++) {
            const __m256i t = top_trit(mul_bytes(qa, _mm256_set1_epi16(pow3[l])));
            sumi = _mm256_add_epi32(sumi, dot_u8(t, loadu256(q8 + 32 * l)));
        }
        const __m128i qb = loadu128(x[b].qs + 32);  // trit l of byte m -> element 160 + 16l + m
        const __m256i qbb = _mm256_set_m128i(qb, qb);
        for (int l = 0; l < 4; l += 2) {
            const __m256i m = _mm256_set_m128i(_mm_set1_epi16(pow3[l + 1]), _mm_set1_epi16(pow3[l]));
            sumi = _mm256_add_epi32(sumi, dot_u8(top_trit(mul_bytes(qbb, m)), loadu256(q8 + 160 + 16 * l)));
        }
        // elements 224..239 (trit 4 of qs[32..47]) and 240..255 (trit l of qh[m] -> 240 + 4l + m)
        uint32_t qh;
        memcpy(&qh, x[b].qh, 4);
        const __m256i qc = _mm256_set_m128i(_mm_set1_epi32((int)qh), qb);
        const __m256i mc = _mm256_set_m128i(_mm_set_epi16(27, 27, 9, 9, 3, 3, 1, 1), _mm_set1_epi16(81));
        sumi = _mm256_add_epi32(sumi, dot_u8(top_trit(mul_bytes(qc, mc)), loadu256(q8 + 224)));
        // trits are value + 1: subtract the sum of all activations
        sumi = _mm256_sub_epi32(sumi, _mm256_madd_epi16(loadu256(y[b].bsums), _mm256_set1_epi16(1)));
        sum += (float)hsum_i32(sumi) * (h2f(x[b].d) * y[b].d);
    }
    return sum;
}


struct DotIQ4_XS {
    template <int R>
    static void run(int64_t n, const void* w, const char* a, size_t as, float* out, size_t os) {
        const auto* x = static_cast<const block_iq4_xs*>(w);
        const __m256i tbl = table16(kIq4nlValues);
        __m256 acc[R];
        for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
        for (int64_t b = 0; b < n / QK_K; b++) {
            __m256i sumi[R];
            for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();
            for (int ib = 0; ib < 8; ib++) {
                const int ls = ((x[b].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((x[b].scales_h >> (2 * ib)) & 3) << 4);
                const __m256i s = _mm256_set1_epi16((short)(ls - 32));
                const __m256i q = _mm256_shuffle_epi8(tbl, nibbles_lo_hi(x[b].qs + 16 * ib));
                for (int r = 0; r < R; r++) {
                    const int8_t* q8 = act_row<block_q8_K>(a, as, r)[b].qs + 32 * ib;
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(mul_i8_i16(q, loadu256(q8)), s));
                }
            }
            const float d = h2f(x[b].d);
            for (int r = 0; r < R; r++)
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r]), _mm256_set1_ps(d * act_row<block_q8_K>(a, as, r)[b].d),
                                         acc[r]);
        }
        for (int r = 0; r < R; r++) out[(size_t)r * os] = hsum(acc[r]);
    }
};


}  // namespace

// Defined in vec_dot_iq_avx2.cpp.
KernelEntry avx2_iq_kernel(GgmlType t);

KernelEntry avx2_kernel(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return {dot_multi<DotF32, 2>, 2};
        case GgmlType::F16: return {dot_multi<DotF16, 2>, 2};
        case GgmlType::BF16: return {dot_multi<DotBF16, 2>, 2};
        case GgmlType::Q4_0: return {dot_multi<DotQ8_0Acts<DecodeQ4_0>>, 4};
        case GgmlType::Q8_0: return {dot_multi<DotQ8_0Acts<DecodeQ8_0>>, 4};
        case GgmlType::Q4_1: return {dot_each<dot_q4_1>};
        case GgmlType::Q5_0: return {dot_each<dot_q5_0>};
        case GgmlType::Q5_1: return {dot_each<dot_q5_1>};
        case GgmlType::MXFP4: return {dot_each<dot_mxfp4>};
        case GgmlType::NVFP4: return {dot_each<dot_nvfp4>};
        case GgmlType::Q2_K: return {dot_each<dot_q2_K>};
        case GgmlType::Q3_K: return {dot_each<dot_q3_K>};
        case GgmlType::Q4_K: return {dot_multi<DotQ45_K<false>>, 4};
        case GgmlType::Q5_K: return {dot_multi<DotQ45_K<true>>, 4};
        case GgmlType::Q6_K: return {dot_multi<DotQ6_K>, 4};
        case GgmlType::TQ1_0: return {dot_each<dot_tq1_0>};
        case GgmlType::TQ2_0: return {dot_each<dot_tq2_0>};
        case GgmlType::IQ4_NL: return {dot_multi<DotQ8_0Acts<DecodeIQ4_NL>>, 4};
        case GgmlType::IQ4_XS: return {dot_multi<DotIQ4_XS>, 4};
        default: return avx2_iq_kernel(t);
    }
}

}  // namespace rotor::cpu
