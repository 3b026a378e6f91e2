// Helpers for the *_avx2.cpp / *_avx512.cpp kernel files only (they need those compile flags).
// Everything here is `static inline`: each kernel file gets its own copy compiled for its own ISA,
// so no AVX code can leak into baseline files through the linker's choice of inline copies.
#pragma once
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "simd_x86.h is for files compiled with -mavx2 -mfma -mf16c"
#endif
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "formats/blocks.h"

namespace rotor::cpu::simd {

static inline float h2f(half_bits h) { return _cvtsh_ss(h); }

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

static inline int hsum_i32(__m128i s) {
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

static inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
static inline __m128i loadu128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// 16 packed bytes -> 32 nibbles: low nibbles in the low 128 bits, high nibbles in the high 128.
static inline __m256i nibbles_lo_hi(const uint8_t* q) {
    const __m128i b = loadu128(q);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

// Pairwise int8 x int8 products summed into 16 int16 (no saturation for |x| <= 128, |y| <= 127).
// maddubs wants unsigned x signed, so the sign of x moves onto y.
static inline __m256i mul_i8_i16(__m256i x, __m256i y) {
    return _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}
// Sum of each 4 consecutive int8 products -> 8 int32.
static inline __m256i dot_i8(__m256i x, __m256i y) {
    return _mm256_madd_epi16(mul_i8_i16(x, y), _mm256_set1_epi16(1));
}
// Same for unsigned x (0..255 with 2*x*|y| < 32768).
static inline __m256i dot_u8(__m256i x, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

// 32 bits -> 32 bytes, 0xFF where the bit is set (byte i <- bit i).
static inline __m256i bits_to_bytes(uint32_t bits) {
    const __m256i v = _mm256_set1_epi32((int)bits);
    const __m256i idx = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i sel = _mm256_set1_epi64x((int64_t)0x8040201008040201ull);
    return _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(v, idx), sel), sel);
}

// y with its sign flipped where the corresponding bit of `signs` is set (byte i <- bit i).
static inline __m256i apply_signs(__m256i y, uint32_t signs) {
    return _mm256_sign_epi8(y, _mm256_or_si256(bits_to_bytes(signs), _mm256_set1_epi8(1)));
}

// [a x8 | b x8] as int16: one scale for each 16-element half of a 32-element group.
static inline __m256i scale_pair_i16(int a, int b) {
    return _mm256_set_m128i(_mm_set1_epi16((short)b), _mm_set1_epi16((short)a));
}

// Q4_K / Q5_K: the 12 bytes of packed 6-bit scales and mins at s (16 bytes readable) -> bytes 0..7
// the eight scales, bytes 8..15 the eight mins. With the three words u0 u1 u2 of s:
//   scales 0-3 = u0 & 0x3f..   scales 4-7 = (u2 & 0x0f..) | (u0 >> 6 & 0x03..) << 4
//   mins 0-3   = u1 & 0x3f..   mins 4-7   = (u2 >> 4 & 0x0f..) | (u1 >> 6 & 0x03..) << 4
static inline __m128i k4_scales_mins(const uint8_t* s) {
    const __m128i v = loadu128(s);
    const __m128i low6 = _mm_and_si128(v, _mm_set1_epi8(0x3F));                      // lanes 0, 1
    const __m128i u2 = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 2, 2, 2));
    const __m128i lo4 = _mm_and_si128(_mm_srlv_epi32(u2, _mm_setr_epi32(0, 4, 0, 0)), _mm_set1_epi8(0x0F));
    const __m128i top2 = _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(v, 6), _mm_set1_epi8(0x03)), 4);
    return _mm_unpacklo_epi32(low6, _mm_or_si128(lo4, top2));
}

}  // namespace rotor::cpu::simd

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
namespace rotor::cpu::simd {

static inline __m512i loadu512(const void* p) { return _mm512_loadu_si512(p); }

// The 32 bytes at p in both 256-bit halves (a load with broadcast: no shuffle uop).
static inline __m512i bcast256(const void* p) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
}

// 16-bit lane shift counts: a in the low 256 bits, b in the high 256 bits.
static inline __m512i halves_epi16(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)a), _mm256_set1_epi16((short)b), 1);
}

static inline int hsum_i32(__m512i v) {
    return hsum_i32(_mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)));
}

static inline float hsum(__m512 v) {
    return hsum(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

}  // namespace rotor::cpu::simd
#endif
