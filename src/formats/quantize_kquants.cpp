// Reference quantizers of the K-quants (Q2_K .. Q6_K) and IQ4_NL / IQ4_XS without an importance
// matrix: the algorithms of ggml's quantize_row_qN_K_ref and quantize_iq4_{nl,xs}, which is what
// llama-quantize writes when it has no imatrix. They search per sub-block for the scale (and min)
// that minimise a weighted squared error, then quantize the sub-block scales themselves to 4, 6 or
// 8 bits under one fp16 super-block scale and requantize every weight with the scale it will
// actually be decoded with. Float32 arithmetic in ggml's order (no FMA), so files match ggml's.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "formats/blocks.h"
#include "formats/iq_tables.h"
#include "formats/quantize_impl.h"

namespace rotor::quant {

namespace {

constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS: a group this small is all zero

int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Symmetric codes L[i] + nmax in [0, 2*nmax) for scale * (L - nmax) ~ x, weights x^2 (ggml's
// make_qx_quants with rmse_type 1 and no importance weights): start from -nmax/max, then try 18
// nearby scales and keep the one with the best weighted least-squares fit.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Q3_K's variant (make_q3_quants with do_rmse): start from -nmax/max, then up to 5 rounds of
// moving single codes where that improves the x^2-weighted fit. Codes L[i] + nmax in [0, 2*nmax).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                const int new_l = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric codes L in [0, nmax] for x ~ scale * L - the_min (ggml's make_qkx2_quants): start
// from the range [min(x, 0), max(x)], then try nstep+1 scales (rmin + rdelta*is + nmax)/range and
// keep the weighted least-squares (scale, min) pair with the smallest error (absolute error if
// use_mad). Returns the scale; *the_min >= 0 is the negated offset.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// Bytes of 2-bit codes as Q2_K/Q3_K store them: byte l of each 32-byte group holds elements
// l, l+32, l+64, l+96 of its 128 elements in bits 0-1, 2-3, 4-5, 6-7.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Q4_K / Q5_K scale bytes: the inverse of the decoder's scale_min_k4.
void pack_scale_min_k4(int j, int ls, int lm, uint8_t* q) {
    if (j < 4) {
        q[j] = (uint8_t)ls;
        q[j + 4] = (uint8_t)lm;
    } else {
        q[j + 4] = (uint8_t)((ls & 0x0F) | ((lm & 0x0F) << 4));
        q[j - 4] |= (uint8_t)((ls >> 4) << 6);
        q[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

void unpack_scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q4_K and Q5_K differ only in the code range and search parameters.
struct K4Params {
    int nmax;
    float rmin, rdelta;
    int nstep;
};

// Sub-block scales and mins of 32 elements each, then 6-bit codes for both under d and dmin.
// Fills scales[12], d, dmin and the final codes L[256].
void quantize_k4_common(const float* x, const K4Params& p, uint8_t* packed_scales, half_bits* d_out,
                        half_bits* dmin_out, uint8_t* L) {
    float scales[QK_K / 32], mins[QK_K / 32], weights[32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;  // scales are positive as the min is subtracted
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, p.nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, p.rmin, p.rdelta,
                                     p.nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(packed_scales, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; j++) {
        // ggml stores nearest_int() in a uint8_t before MIN(63, .): a negative value wraps to 63
        const int ls = std::min(63, (int)(uint8_t)nearest_int(inv_scale * scales[j]));
        const int lm = std::min(63, (int)(uint8_t)nearest_int(inv_min * mins[j]));
        pack_scale_min_k4(j, ls, lm, packed_scales);
    }
    *d_out = f32_to_fp16(max_scale / 63.f);
    *dmin_out = f32_to_fp16(max_min / 63.f);
    const float d_all = fp16_to_f32(*d_out), dmin_all = fp16_to_f32(*dmin_out);
    for (int j = 0; j < QK_K / 32; j++) {
        int sc, m;
        unpack_scale_min_k4(j, packed_scales, &sc, &m);
        const float d = d_all * (float)sc;
        if (d == 0) continue;
        const float dm = dmin_all * (float)m;
        for (int ii = 0; ii < 32; ii++) L[32 * j + ii] = (uint8_t)clampi(nearest_int((x[32 * j + ii] + dm) / d), 0, p.nmax);
    }
}

// ggml's best_index_int8: the index of the value (sorted ascending) nearest to x; ties go up.
int best_index_int8(int n, const int8_t* val, float x) {
    if (x <= (float)val[0]) return 0;
    if (x >= (float)val[n - 1]) return n - 1;
    int ml = 0, mu = n - 1;
    while (mu - ml > 1) {
        const int mav = (ml + mu) / 2;
        if (x < (float)val[mav]) mu = mav;
        else ml = mav;
    }
    return x - (float)val[mu - 1] < (float)val[mu] - x ? mu - 1 : mu;
}

// ggml's quantize_row_iq4_nl_impl without importance weights (weights x^2), ntry = 7 as
// quantize_iq4_nl / quantize_iq4_xs use: per 32 elements the scale is searched over 15 candidates
// around max/127; for IQ4_XS (super_block_size 256) the block scales are then stored as 6-bit
// multiples of d = -max_scale/32 and the codes recomputed with them.
void quantize_iq4_impl(int super_block_size, const float* x, half_bits* dh, uint8_t* q4, uint16_t* scales_h,
                       uint8_t* scales_l) {
    constexpr int kBlock = 32, kNtry = 7;
    const int8_t* values = kIq4nlValues;
    uint8_t L[QK_K];
    float scales[QK_K / kBlock], weight[kBlock];
    const int nblocks = super_block_size / kBlock;

    memset(q4, 0, (size_t)super_block_size / 2);
    *dh = f32_to_fp16(0.f);

    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < nblocks; ib++) {
        const float* xb = x + ib * kBlock;
        uint8_t* Lb = L + ib * kBlock;
        for (int j = 0; j < kBlock; j++) weight[j] = xb[j] * xb[j];
        float amax = 0, max = 0;
        for (int j = 0; j < kBlock; j++) {
            const float ax = std::fabs(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (amax < kGroupMaxEps) {
            scales[ib] = 0;
            memset(Lb, 0, kBlock);  // ggml leaves them unset; they are recomputed below
            continue;
        }
        float d = -max / (float)values[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < kBlock; j++) {
            const int l = best_index_int8(16, values, id * xb[j]);
            Lb[j] = (uint8_t)l;
            const float q = (float)values[l];
            sumqx += weight[j] * q * xb[j];
            sumq2 += weight[j] * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -kNtry; itry <= kNtry; itry++) {
            id = (float)(itry + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < kBlock; j++) {
                const float q = (float)values[best_index_int8(16, values, id * xb[j])];
                sumqx += weight[j] * q * xb[j];
                sumq2 += weight[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if (std::fabs(d) > amax_scale) {
            amax_scale = std::fabs(d);
            max_scale = d;
        }
    }

    if (nblocks > 1) {
        *scales_h = 0;
        const float d = -max_scale / 32;
        *dh = f32_to_fp16(d);
        const float id = d != 0 ? 1 / d : 0.f;
        for (int ib = 0; ib < nblocks; ib++) {
            int l = clampi(nearest_int(id * scales[ib]), -32, 31);
            const float dl = d * (float)l;
            const float idl = dl != 0 ? 1 / dl : 0.f;
            for (int j = 0; j < kBlock; j++) L[ib * kBlock + j] = (uint8_t)best_index_int8(16, values, idl * x[ib * kBlock + j]);
            l += 32;
            if (ib % 2 == 0) scales_l[ib / 2] = (uint8_t)(l & 0x0F);
            else scales_l[ib / 2] |= (uint8_t)((l & 0x0F) << 4);
            *scales_h |= (uint16_t)((l >> 4) << (2 * (ib % 8)));
        }
    } else {
        *dh = f32_to_fp16(scales[0]);
        const float id = scales[0] != 0 ? 1 / scales[0] : 0.f;
        for (int j = 0; j < super_block_size; j++) L[j] = (uint8_t)best_index_int8(16, values, id * x[j]);
    }

    for (int i = 0; i < super_block_size / 32; i++)
        for (int j = 0; j < 16; j++) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

}  // namespace

// Q2_K: 16 sub-blocks of 16 with 4-bit scale and 4-bit min each (absolute-error fit, weights |x|).
void quantize_q2_K(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q2_K*>(dst);
    constexpr float kQ4Scale = 15.f;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t L[QK_K], Laux[16];
        float weights[16], mins[QK_K / 16], scales[QK_K / 16];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = std::fabs(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = kQ4Scale / max_scale;
            for (int j = 0; j < QK_K / 16; j++) y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = f32_to_fp16(max_scale / kQ4Scale);
        } else {
            memset(y[i].scales, 0, sizeof(y[i].scales));
            y[i].d = f32_to_fp16(0.f);
        }
        if (max_min > 0) {
            const float iscale = kQ4Scale / max_min;
            for (int j = 0; j < QK_K / 16; j++) y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = f32_to_fp16(max_min / kQ4Scale);
        } else {
            y[i].dmin = f32_to_fp16(0.f);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16_to_f32(y[i].d) * (float)(y[i].scales[j] & 0x0F);
            if (d == 0) continue;
            const float dm = fp16_to_f32(y[i].dmin) * (float)(y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++) L[16 * j + ii] = (uint8_t)clampi(nearest_int((x[16 * j + ii] + dm) / d), 0, 3);
        }
        pack_2bit(L, y[i].qs);
    }
}

// Q3_K: 16 sub-blocks of 16, symmetric 3-bit codes, 6-bit signed sub-block scales.
void quantize_q3_K(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q3_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        int8_t L[QK_K];
        float scales[QK_K / 16];
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            if (std::fabs(scales[j]) > amax) {
                amax = std::fabs(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, sizeof(y[i].scales));
        if (max_scale != 0) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                const int l = clampi(nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0x0F);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0x0F) << 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = f32_to_fp16(1 / iscale);
        } else {
            y[i].d = f32_to_fp16(0.f);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            const int lo = (y[i].scales[j % 8] >> (4 * (j / 8))) & 0x0F;
            const int hi = (y[i].scales[8 + j % 4] >> (2 * (j / 4))) & 3;
            const float d = fp16_to_f32(y[i].d) * (float)((lo | (hi << 4)) - 32);
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ii++) L[16 * j + ii] = (int8_t)(clampi(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
        }
        // the high bit of element 32*k + m goes to bit k of hmask[m]; the low 2 bits like Q2_K
        memset(y[i].hmask, 0, sizeof(y[i].hmask));
        uint8_t low[QK_K];
        for (int j = 0; j < QK_K; j++) {
            if (L[j] > 3) y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
            low[j] = (uint8_t)(L[j] & 3);
        }
        pack_2bit(low, y[i].qs);
    }
}

void quantize_q4_K(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q4_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t L[QK_K];
        quantize_k4_common(x, K4Params{15, -1.f, 0.1f, 20}, y[i].scales, &y[i].d, &y[i].dmin, L);
        // 32 bytes per 64 elements: low nibble the first 32, high nibble the next 32
        for (int j = 0; j < QK_K; j += 64)
            for (int l = 0; l < 32; l++) y[i].qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

void quantize_q5_K(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q5_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t L[QK_K];
        quantize_k4_common(x, K4Params{31, -0.5f, 0.1f, 15}, y[i].scales, &y[i].d, &y[i].dmin, L);
        // as Q4_K for the low 4 bits; the fifth bit of element 64*k + l (+32) is bit 2k (2k+1) of qh[l]
        memset(y[i].qh, 0, sizeof(y[i].qh));
        for (int j = 0; j < QK_K; j += 64) {
            const int k = j / 64;
            for (int l = 0; l < 32; l++) {
                const int l1 = L[j + l], l2 = L[j + l + 32];
                y[i].qh[l] |= (uint8_t)(((l1 >> 4) << (2 * k)) | ((l2 >> 4) << (2 * k + 1)));
                y[i].qs[j / 2 + l] = (uint8_t)((l1 & 0x0F) | ((l2 & 0x0F) << 4));
            }
        }
    }
}

// Q6_K: 16 sub-blocks of 16, symmetric 6-bit codes, 8-bit signed sub-block scales.
void quantize_q6_K(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_q6_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        int8_t L[QK_K];
        float scales[QK_K / 16];
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            if (std::fabs(scales[ib]) > max_abs_scale) {
                max_abs_scale = std::fabs(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < kGroupMaxEps) {
            memset(&y[i], 0, sizeof(block_q6_K));
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = f32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++) y[i].scales[ib] = (int8_t)std::min(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16_to_f32(y[i].d) * (float)y[i].scales[j];
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ii++) L[16 * j + ii] = (int8_t)(clampi(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
        }
        // per 128 elements: ql holds the low nibbles (elements l, l+32 low; l+64, l+96 high), qh the
        // top 2 bits of elements l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7 of byte l
        uint8_t* ql = y[i].ql;
        uint8_t* qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 0x0F) | ((q3 & 0x0F) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0x0F) | ((q4 & 0x0F) << 4));
                qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}

void quantize_iq4_nl(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_iq4_nl*>(dst);
    for (int64_t i = 0; i < n / QK4_NL; i++, x += QK4_NL) quantize_iq4_impl(QK4_NL, x, &y[i].d, y[i].qs, nullptr, nullptr);
}

void quantize_iq4_xs(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<block_iq4_xs*>(dst);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K)
        quantize_iq4_impl(QK_K, x, &y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l);
}

}  // namespace rotor::quant
