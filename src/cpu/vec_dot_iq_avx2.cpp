// AVX2 kernels for the lattice-codebook formats (IQ2_*, IQ3_*, IQ1_*): per 8 (or 4) weights a grid
// entry is looked up by index and assembled into a vector; signs are applied to the activation
// instead of the weights (the grids are unsigned), then maddubs / madd as for the K-quants. Each
// block's integer sum is reduced exactly and scaled with the scalar kernel's float expression, so
// the results equal the scalar kernel's bit for bit.
// AVX-512 buys little here (the work is the scalar table lookups), so these serve both levels.
#include "cpu/simd_x86.h"
#include "cpu/vec_dot_impl.h"

#include "formats/iq_tables.h"

namespace rotor::cpu {


namespace {

using namespace simd;

inline __m256i grid4x64(uint64_t g0, uint64_t g1, uint64_t g2, uint64_t g3) {
    return _mm256_set_epi64x((int64_t)g3, (int64_t)g2, (int64_t)g1, (int64_t)g0);
}

// 7-bit sign field -> eight multipliers (+1 or -1 bytes) for sign_epi8, the eighth sign being the
// even-parity bit: the rule behind kKsignsIq2xs (the scalar kernels use that table, so the
// SIMD-vs-scalar tests check this one).
struct SignTable {
    uint64_t v[128];
};
constexpr SignTable make_sign_table() {
    SignTable t{};
    for (int i = 0; i < 128; i++) {
        int parity = 0;
        for (int k = 0; k < 7; k++) parity ^= (i >> k) & 1;
        const int bits = i | (parity << 7);
        for (int j = 0; j < 8; j++) t.v[i] |= (uint64_t)((bits >> j) & 1 ? 0xFF : 0x01) << (8 * j);
    }
    return t;
}
constexpr SignTable kSigns = make_sign_table();

// Four 7-bit sign fields (bits 0..27 of v) applied to 32 activations.
inline __m256i apply_signs7(__m256i y, uint32_t v) {
    return _mm256_sign_epi8(y, grid4x64(kSigns.v[v & 127], kSigns.v[(v >> 7) & 127], kSigns.v[(v >> 14) & 127],
                                        kSigns.v[(v >> 21) & 127]));
}

float dot_iq2_xxs(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_iq2_xxs*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m256i sumi = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            uint32_t aux[2];
            memcpy(aux, x[b].qs + 4 * ib, 8);
            const __m256i g = grid4x64(kIq2xxsGrid[aux[0] & 255], kIq2xxsGrid[(aux[0] >> 8) & 255],
                                       kIq2xxsGrid[(aux[0] >> 16) & 255], kIq2xxsGrid[aux[0] >> 24]);
            const __m256i q8 = apply_signs7(loadu256(y[b].qs + 32 * ib), aux[1]);
            const __m256i ls = _mm256_set1_epi16((short)(2 * (aux[1] >> 28) + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(g, q8), ls));
        }
        sum += h2f(x[b].d) * y[b].d * (float)hsum_i32(sumi);
    }
    return 0.125f * sum;
}

float dot_iq2_xs(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_iq2_xs*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m256i sumi = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const uint16_t* q = x[b].qs + 4 * ib;  // 9-bit grid index | 7 sign bits << 9
            const __m256i g = grid4x64(kIq2xsGrid[q[0] & 511], kIq2xsGrid[q[1] & 511], kIq2xsGrid[q[2] & 511],
                                       kIq2xsGrid[q[3] & 511]);
            const __m256i q8 = _mm256_sign_epi8(
                loadu256(y[b].qs + 32 * ib), grid4x64(kSigns.v[q[0] >> 9], kSigns.v[q[1] >> 9], kSigns.v[q[2] >> 9], kSigns.v[q[3] >> 9]));
            const __m256i ls = scale_pair_i16(2 * (x[b].scales[ib] & 0xF) + 1, 2 * (x[b].scales[ib] >> 4) + 1);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(g, q8), ls));
        }
        sum += h2f(x[b].d) * y[b].d * (float)hsum_i32(sumi);
    }
    return 0.125f * sum;
}

float dot_iq2_s(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_iq2_s*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t* qs = x[b].qs;
        const uint8_t* sg = x[b].qs + QK_K / 8;
        __m256i sumi = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const int qh = x[b].qh[ib];
            const uint8_t* q = qs + 4 * ib;
            const __m256i g = grid4x64(kIq2sGrid[q[0] | ((qh << 8) & 0x300)], kIq2sGrid[q[1] | ((qh << 6) & 0x300)],
                                       kIq2sGrid[q[2] | ((qh << 4) & 0x300)], kIq2sGrid[q[3] | ((qh << 2) & 0x300)]);
            uint32_t signs;
            memcpy(&signs, sg + 4 * ib, 4);
            const __m256i q8 = apply_signs(loadu256(y[b].qs + 32 * ib), signs);
            const __m256i ls = scale_pair_i16(2 * (x[b].scales[ib] & 0xF) + 1, 2 * (x[b].scales[ib] >> 4) + 1);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(g, q8), ls));
        }
        sum += h2f(x[b].d) * y[b].d * (float)hsum_i32(sumi);
    }
    return 0.125f * sum;
}

float dot_iq3_xxs(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_iq3_xxs*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t* q3 = x[b].qs;
        const uint8_t* gas = x[b].qs + QK_K / 4;
        __m256i sumi = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t* q = q3 + 8 * ib;
            const __m256i g = _mm256_set_epi32((int)kIq3xxsGrid[q[7]], (int)kIq3xxsGrid[q[6]], (int)kIq3xxsGrid[q[5]],
                                               (int)kIq3xxsGrid[q[4]], (int)kIq3xxsGrid[q[3]], (int)kIq3xxsGrid[q[2]],
                                               (int)kIq3xxsGrid[q[1]], (int)kIq3xxsGrid[q[0]]);
            uint32_t aux;
            memcpy(&aux, gas + 4 * ib, 4);
            const __m256i q8 = apply_signs7(loadu256(y[b].qs + 32 * ib), aux);
            const __m256i ls = _mm256_set1_epi16((short)(2 * (aux >> 28) + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(g, q8), ls));
        }
        sum += h2f(x[b].d) * y[b].d * (float)hsum_i32(sumi);
    }
    return 0.25f * sum;
}

float dot_iq3_s(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_iq3_s*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m256i sumi = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t* q = x[b].qs + 8 * ib;
            const int qh = x[b].qh[ib];  // ninth index bit of grid entry k is bit k
            auto idx = [&](int k) { return (int)kIq3sGrid[q[k] | (((qh >> k) & 1) << 8)]; };
            const __m256i g = _mm256_set_epi32(idx(7), idx(6), idx(5), idx(4), idx(3), idx(2), idx(1), idx(0));
            uint32_t signs;
            memcpy(&signs, x[b].signs + 4 * ib, 4);
            const __m256i q8 = apply_signs(loadu256(y[b].qs + 32 * ib), signs);
            const __m256i ls = _mm256_set1_epi16((short)(2 * ((x[b].scales[ib / 2] >> (4 * (ib % 2))) & 0xF) + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(g, q8), ls));
        }
        sum += h2f(x[b].d) * y[b].d * (float)hsum_i32(sumi);
    }
    return sum;
}

float dot_iq1_s(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_iq1_s*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m256i sumi = _mm256_setzero_si256();
        int sumd = 0;
        for (int ib = 0; ib < 8; ib++) {
            const int qh = x[b].qh[ib];
            const uint8_t* q = x[b].qs + 4 * ib;
            const __m256i g = grid4x64(kIq1sGrid[q[0] | ((qh << 8) & 0x700)], kIq1sGrid[q[1] | ((qh << 5) & 0x700)],
                                       kIq1sGrid[q[2] | ((qh << 2) & 0x700)], kIq1sGrid[q[3] | ((qh >> 1) & 0x700)]);
            const int ls = 2 * ((qh >> 12) & 7) + 1;
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(mul_i8_i16(g, loadu256(y[b].qs + 32 * ib)),
                                                            _mm256_set1_epi16((short)ls)));
            sumd += (qh & 0x8000 ? -ls : ls) * (y[b].bsums[2 * ib] + y[b].bsums[2 * ib + 1]);
        }
        sum += h2f(x[b].d) * y[b].d * ((float)hsum_i32(sumi) + kIq1sDelta * (float)sumd);
    }
    return sum;
}

float dot_iq1_m(int64_t n, const void* w, const void* va) {
    const auto* x = static_cast<const block_iq1_m*>(w);
    const auto* y = static_cast<const block_q8_K*>(va);
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint16_t sc[4];
        memcpy(sc, x[b].scales, 8);
        const uint16_t dbits = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) |
                                          (sc[3] & 0xF000));
        __m256i sumi = _mm256_setzero_si256(), sumd = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t* q = x[b].qs + 4 * ib;
            const int h0 = x[b].qh[2 * ib], h1 = x[b].qh[2 * ib + 1];  // 3 index bits + delta sign per 8
            const __m256i g = grid4x64(kIq1sGrid[q[0] | ((h0 << 8) & 0x700)], kIq1sGrid[q[1] | ((h0 << 4) & 0x700)],
                                       kIq1sGrid[q[2] | ((h1 << 8) & 0x700)], kIq1sGrid[q[3] | ((h1 << 4) & 0x700)]);
            auto delta = [](int bit) { return bit ? (int64_t)-1 : (int64_t)0x0101010101010101; };
            const __m256i dl = _mm256_set_epi64x(delta(h1 & 0x80), delta(h1 & 0x08), delta(h0 & 0x80), delta(h0 & 0x08));
            const int s6 = sc[ib / 2] >> (6 * (ib % 2));
            const __m256i ls = scale_pair_i16(2 * (s6 & 7) + 1, 2 * ((s6 >> 3) & 7) + 1);
            const __m256i q8 = loadu256(y[b].qs + 32 * ib);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(mul_i8_i16(g, q8), ls));
            sumd = _mm256_add_epi32(sumd, _mm256_madd_epi16(mul_i8_i16(dl, q8), ls));
        }
        sum += h2f(dbits) * y[b].d * ((float)hsum_i32(sumi) + kIq1mDelta * (float)hsum_i32(sumd));
    }
    return sum;
}

}  // namespace

KernelEntry avx2_iq_kernel(GgmlType t) {
    switch (t) {
        case GgmlType::IQ2_XXS: return {dot_each<dot_iq2_xxs>};
        case GgmlType::IQ2_XS: return {dot_each<dot_iq2_xs>};
        case GgmlType::IQ2_S: return {dot_each<dot_iq2_s>};
        case GgmlType::IQ3_XXS: return {dot_each<dot_iq3_xxs>};
        case GgmlType::IQ3_S: return {dot_each<dot_iq3_s>};
        case GgmlType::IQ1_S: return {dot_each<dot_iq1_s>};
        case GgmlType::IQ1_M: return {dot_each<dot_iq1_m>};
        default: return {};
    }
}

}  // namespace rotor::cpu
