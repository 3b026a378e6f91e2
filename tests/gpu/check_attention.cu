// rotor-check-attention: the tensor-core prefill attention (src/cuda/attention_prefill.cu) against a
// CPU reference, on the GPU machine, and its benchmark against the split-K kernel (attention.cu); first
// the split-K kernel's keys derived from values (check_key_from_value); last the decode cases of
// attention() (run_decode_checks: the tensor-core decode kernel of attention_decode.cu where it applies).
// --decode-only: the decode checks and the decode benchmark only (f16 caches run on the tensor-core
// decode kernel there whatever ROTOR_DECODE_ATTENTION_F16 says).
//   rotor-check-attention [--no-bench] [--bench-only] [--reps N]
// Caches hold fresh random stored values of every KV type (f32, f16, q8_0 / q4_0 blocks with random
// scales and codes; the *h types are the same blocks: the kernel reads stored values only), slots the
// queries must not read are poisoned with NaN bytes, outputs are poisoned with NaN. Each launch runs
// several runs (prompt chunks of different sequences) at once: from position 0 and later chunks,
// lengths 1, 15, 17, 100, 700, GQA 1 / 4 / 8 (and 2), head sizes 64 / 128 / 256 / 512, windows over
// rings that wrapped. The reference is exact: the dequantized stored values in double, softmax(scale
// q.k). The prefill kernel keeps f32 accuracy in every product (f16 hi + lo parts for Q and for the
// weights, codes and scales kept apart), so it must match to 5e-5 max|v| (plus f32's own rounding of
// the scores, 2^-22 sum|q k| scale, which matters only for scores in the thousands), as the split-K
// kernel on the same cache does (f32 throughout). f32 caches and head size 512 must be refused by the prefill kernel
// (they run split-K in a model); the split-K kernel is checked on them all the same.
// One line per check, a summary, exit status 1 if any check fails. Then the benchmark table.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "cuda/attention.h"
#include "cuda/attention_decode.h"
#include "cuda/attention_decode_tcq.h"
#include "cuda/attention_prefill.h"
#include "cuda/cuda_util.h"
#include "formats/blocks.h"
#include "gpu_check.h"
#include "kv/kv_format.h"

using namespace rotor;
using namespace rotor::cuda;
using namespace rotor::gpu_check;

namespace {


std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
    char b[512];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof b, f, ap);
    va_end(ap);
    return b;
}




// One random stored row of d elements of type e into out; its values exactly (dequantized) in x.
void random_row(KvElem e, int d, uint8_t* out, float* x) {
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    switch (e) {
        case KvElem::F32:
            for (int i = 0; i < d; i++) x[i] = g(rng);
            memcpy(out, x, (size_t)d * 4);
            break;
        case KvElem::F16:
            for (int i = 0; i < d; i++) {
                const uint16_t h = f32_to_fp16(g(rng));
                memcpy(out + 2 * i, &h, 2);
                x[i] = fp16_to_f32(h);
            }
            break;
        case KvElem::Q8_0:
        case KvElem::Q8_0H:
            for (int b = 0; b < d / 32; b++) {
                block_q8_0 blk;
                blk.d = f32_to_fp16(0.01f + 0.02f * u(rng));
                for (int i = 0; i < 32; i++) blk.qs[i] = (int8_t)std::uniform_int_distribution<int>(-127, 127)(rng);
                memcpy(out + b * sizeof blk, &blk, sizeof blk);
                for (int i = 0; i < 32; i++) x[32 * b + i] = fp16_to_f32(blk.d) * (float)blk.qs[i];
            }
            break;
        case KvElem::Q4_0:
        case KvElem::Q4_0H:
            for (int b = 0; b < d / 32; b++) {
                block_q4_0 blk;
                blk.d = f32_to_fp16((u(rng) < 0.5f ? -1.0f : 1.0f) * (0.2f + 0.2f * u(rng)));
                for (int i = 0; i < 16; i++) blk.qs[i] = (uint8_t)std::uniform_int_distribution<int>(0, 255)(rng);
                memcpy(out + b * sizeof blk, &blk, sizeof blk);
                for (int i = 0; i < 32; i++) {
                    const int c = i < 16 ? (blk.qs[i] & 0x0F) : (blk.qs[i - 16] >> 4);
                    x[32 * b + i] = fp16_to_f32(blk.d) * (float)(c - 8);
                }
            }
            break;
        case KvElem::Q4_1:
        case KvElem::Q5_0:
        case KvElem::Q5_1:
        case KvElem::IQ4_NL:
        case KvElem::Q4_1H:
        case KvElem::Q5_0H:
        case KvElem::Q5_1H:
        case KvElem::IQ4_NLH: {  // random code bytes, then d (and m) set to finite values; the CPU decodes
            const size_t bb = kv_row_bytes(e, 32);
            const bool has_min = kv_elem_block_min(e);
            for (size_t i = 0; i < kv_row_bytes(e, d); i++)
                out[i] = (uint8_t)std::uniform_int_distribution<int>(0, 255)(rng);
            for (int b = 0; b < d / 32; b++) {
                // q4_1 / q5_1: minima of either sign and up to a few times the spread, as real rows have
                const uint16_t dh =
                    f32_to_fp16((has_min ? 1.0f : (u(rng) < 0.5f ? -1.0f : 1.0f)) * (0.02f + 0.05f * u(rng)));
                memcpy(out + b * bb, &dh, 2);
                if (has_min) {
                    const uint16_t mh = f32_to_fp16(2.0f * g(rng));
                    memcpy(out + b * bb + 2, &mh, 2);
                }
            }
            const std::string name = kv_elem_name(e);
            require_kv_format(name, d).dequantize_rotated(out, x, d);
            break;
        }
        case KvElem::PLANAR3_0:
        case KvElem::ISO3_0:
        case KvElem::PLANAR4_0:
        case KvElem::ISO4_0:
        case KvElem::PLANAR3_C:
        case KvElem::ISO3_C:
        case KvElem::PLANAR4_C:
        case KvElem::ISO4_C: {  // random codes, a scale per block of 128; the CPU decodes
            const size_t bb = kv_row_bytes(e, 128);
            for (size_t i = 0; i < kv_row_bytes(e, d); i++)
                out[i] = (uint8_t)std::uniform_int_distribution<int>(0, 255)(rng);
            for (int b = 0; b < d / 128; b++) {
                const uint16_t sc = f32_to_fp16((u(rng) < 0.5f ? -1.0f : 1.0f) * (0.5f + u(rng)));
                memcpy(out + b * bb, &sc, 2);
            }
            const std::string name = kv_elem_name(e);
            require_kv_format(name, d).dequantize_rotated(out, x, d);
            break;
        }
        case KvElem::TCQ2:
        case KvElem::TCQ3:
        case KvElem::TCQ4:
        case KvElem::TBQ2:
        case KvElem::TBQ3:
        case KvElem::TBQ4:
        case KvElem::TBQ2NC:
        case KvElem::TBQ3NC:
        case KvElem::TBQ4NC: {  // a random scale and codes, decoded by the CPU format
            const uint16_t sc = f32_to_fp16((u(rng) < 0.5f ? -1.0f : 1.0f) * (0.5f + u(rng)));
            memcpy(out, &sc, 2);
            for (size_t i = 2; i < kv_row_bytes(e, d); i++) out[i] = (uint8_t)std::uniform_int_distribution<int>(0, 255)(rng);
            const std::string name = kv_elem_name(e);
            require_kv_format(name, d).dequantize_rotated(out, x, d);
            break;
        }
    }
}

// A cache of n_seq sequences x ctx slots; slot i of sequence s holds position i (whole context) or
// the position p with p % ctx == i in (last[s] - ctx, last[s]] (ring). Slots past last[s] hold NaN bytes.
struct HostCache {
    KvElem elem;
    int d, hkv, ctx, n_seq;
    size_t rb;
    std::vector<uint8_t> kb, vb;  // stored bytes
    std::vector<float> kx, vx;    // exact values, [seq][slot][hkv][d]
    HostCache(KvElem e, int dim, int n_head_kv, int n_ctx, const std::vector<int>& last)
        : elem(e), d(dim), hkv(n_head_kv), ctx(n_ctx), n_seq((int)last.size()), rb(kv_row_bytes(e, dim)) {
        const size_t rows = (size_t)n_seq * ctx * hkv;
        kb.assign(rows * rb, 0xFF);
        vb.assign(rows * rb, 0xFF);
        kx.assign(rows * d, NAN);
        vx.assign(rows * d, NAN);
        for (int s = 0; s < n_seq; s++)
            for (int slot = 0; slot < ctx; slot++) {
                if (last[s] < ctx && slot > last[s]) continue;  // never written: poison
                for (int g = 0; g < hkv; g++) {
                    const size_t r = ((size_t)s * ctx + slot) * hkv + g;
                    random_row(e, d, kb.data() + r * rb, kx.data() + r * d);
                    random_row(e, d, vb.data() + r * rb, vx.data() + r * d);
                }
            }
    }
    const float* krow(int s, int p, int g) const { return kx.data() + (((size_t)s * ctx + p % ctx) * hkv + g) * d; }
    const float* vrow(int s, int p, int g) const { return vx.data() + (((size_t)s * ctx + p % ctx) * hkv + g) * d; }
};

struct Case {
    KvElem elem;
    int d, n_head, hkv, window, ctx;
    std::vector<PrefillRun> runs;  // seq = index in the cache
    float scale = 0.0f;            // 0: 1 / sqrt(d)
    float qmul = 1.0f;             // queries are gaussian times this
};

void check_case(const Case& c) {
    const int G = c.n_head / c.hkv;
    std::vector<int> last;
    int n_tok = 0;
    for (const PrefillRun& r : c.runs) {
        if ((int)last.size() <= r.seq) last.resize(r.seq + 1, 0);
        last[r.seq] = r.pos0 + r.len - 1;
        n_tok = std::max(n_tok, r.tok0 + r.len);
    }
    const HostCache hc(c.elem, c.d, c.hkv, c.ctx, last);
    KvLayerView kv = kv_view(c.elem, c.hkv, c.d, c.ctx, c.window);
    DeviceBuffer K(hc.kb.size()), V(hc.vb.size());
    K.upload(hc.kb.data(), hc.kb.size());
    V.upload(hc.vb.data(), hc.vb.size());
    kv.k = K.get();
    kv.v = V.get();

    std::vector<float> q = gaussian((size_t)n_tok * c.n_head * c.d);
    for (float& x : q) x *= c.qmul;
    std::vector<int32_t> seq(n_tok, 0), pos(n_tok, 0);
    std::vector<char> used(n_tok, 0);
    for (const PrefillRun& r : c.runs)
        for (int t = 0; t < r.len; t++) seq[r.tok0 + t] = r.seq, pos[r.tok0 + t] = r.pos0 + t, used[r.tok0 + t] = 1;
    const float scale = c.scale > 0.0f ? c.scale : 1.0f / std::sqrt((float)c.d);
    const std::string why = attention_prefill_refusal(kv, c.n_head);
    const bool prefill = why.empty();
    Dev<float> dq(q), dout((size_t)n_tok * c.n_head * c.d), dsplit((size_t)n_tok * c.n_head * c.d);
    if (prefill) attention_prefill(kv, dq.p(), dout.p(), c.runs.data(), (int)c.runs.size(), c.n_head, scale, nullptr);
    const std::vector<float> out = dout.get();
    int max_kv = 0;
    for (int t = 0; t < n_tok; t++) max_kv = std::max(max_kv, pos[t] + 1);
    Dev<int32_t> dseq(seq), dpos(pos);
    Dev<float> partial(attention_partial_floats(n_tok, c.n_head, c.d, max_kv));
    attention(kv, dq.p(), dsplit.p(), dseq.p(), dpos.p(), n_tok, c.n_head, scale, max_kv, partial.p(), nullptr);
    const std::vector<float> split = dsplit.get();

    double worst = 0, worst_split = 0;
    int nan_rows = 0;
    std::vector<double> we;
    for (int t = 0; t < n_tok; t++) {
        if (!used[t]) continue;
        const int s = seq[t], p = pos[t], lo = c.window > 0 ? std::max(0, p - c.window + 1) : 0, n = p - lo + 1;
        for (int h = 0; h < c.n_head; h++) {
            const int g = h / G;
            const float* qr = q.data() + ((size_t)t * c.n_head + h) * c.d;
            we.assign(n, 0);
            double me = -1e300, vmax = 0, sabs = 0;
            for (int j = lo; j <= p; j++) {
                const float* kr = hc.krow(s, j, g);
                double se = 0, sa = 0;
                for (int i = 0; i < c.d; i++) se += (double)qr[i] * kr[i], sa += std::fabs((double)qr[i] * kr[i]);
                we[j - lo] = se * scale;
                me = std::max(me, se * scale);
                sabs = std::max(sabs, sa * scale);
                const float* vr = hc.vrow(s, j, g);
                for (int i = 0; i < c.d; i++) vmax = std::max(vmax, (double)std::fabs(vr[i]));
            }
            double sum_e = 0;
            for (int j = 0; j < n; j++) sum_e += (we[j] = std::exp(we[j] - me));
            const float* got = out.data() + ((size_t)t * c.n_head + h) * c.d;
            const float* got_split = split.data() + ((size_t)t * c.n_head + h) * c.d;
            // f32 scores carry a rounding error of about 2^-24 sum|q k| scale: it moves each weight by that
            // relative amount, negligible unless the scores are in the thousands (q x 300)
            const double tol = 5e-5 + 0x1p-22 * sabs;
            bool row_nan = false;
            for (int i = 0; i < c.d; i++) {
                double oe = 0;
                for (int j = lo; j <= p; j++) oe += we[j - lo] * hc.vrow(s, j, g)[i];
                oe /= sum_e;
                if (prefill) {
                    if (!std::isfinite(got[i])) row_nan = true;
                    worst = std::max(worst, std::isfinite(got[i]) ? std::fabs(got[i] - oe) / vmax / tol : INFINITY);
                }
                worst_split = std::max(
                    worst_split, std::isfinite(got_split[i]) ? std::fabs(got_split[i] - oe) / vmax / tol : INFINITY);
            }
            nan_rows += row_nan;
        }
    }
    std::string runs;
    for (const PrefillRun& r : c.runs) runs += fmt(" %d+%d", r.pos0, r.len);
    const std::string name = fmt("%s d=%d heads %d/%d", kv_elem_name(c.elem), c.d, c.n_head, c.hkv) +
                             (c.window > 0 ? fmt(" window %d ring %d", c.window, c.ctx) : std::string()) +
                             (c.scale > 0.0f || c.qmul != 1.0f ? fmt(" scale %g q x %g", scale, c.qmul) : std::string()) +
                             " runs" + runs;
    // tcq, tbq and the blocks with a minimum (q4_1, q5_1) run their prompts on the split-K kernel
    const bool has_min = kv_elem_block_min(c.elem);
    const bool refuse = c.elem == KvElem::F32 || c.d == 512 || kv_elem_randomized(c.elem) ||
                        kv_elem_rotorquant_bits(c.elem) || has_min;
    if (prefill)
        report(!refuse && worst <= 1.0 && nan_rows == 0, name,
               fmt("vs exact: err/tol %.2f, split-K %.2f%s", worst, worst_split,
                   nan_rows ? fmt(" NaN rows %d", nan_rows).c_str() : ""));
    else
        report(refuse, name + " (prefill kernel refuses)", why);
    report(worst_split <= 1.0, "  split-K on the same cache", fmt("vs exact: err/tol %.2f", worst_split));
}

// The split-K kernel deriving keys from values (gemma4's K = V layers: KvLayerView::key_from_value)
// against a double reference written out here: v_j = the stored row in the model's basis (H x for a
// rotated type, with H the orthonormal Sylvester Hadamard matrix built entry by entry, not by the
// butterfly), k_j = NeoX RoPE at j of w (.) v_j over n_rot dims (cos and sin in double of the float32
// angle j * inv_freq, as the CPU forward and transformers form it), scores q . k_j
// with q unrotated; the output in the stored basis (sum p_j x_j). rope_pairs from the kernel's own
// rule is checked to keep every pair that turns by 1e-6 or more.
void check_key_from_value(KvElem e, int d, int n_head, int hkv, int n_rot, bool proportional, int window, int ctx,
                          std::vector<int> last) {
    const int G = n_head / hkv, n_tok = (int)last.size();
    const HostCache hc(e, d, hkv, ctx, last);
    std::vector<float> w = gaussian(d), inv(n_rot / 2);
    for (float& x : w) x = 0.5f + std::fabs(x);
    for (int j = 0; j < n_rot / 2; j++) {
        inv[j] = (float)std::pow(10000.0, -2.0 * j / n_rot);
        if (proportional && j >= n_rot / 8) inv[j] /= 1e30f;  // gemma4's rope_freqs: a quarter turns
    }
    const int max_pos = *std::max_element(last.begin(), last.end()) + 1;
    KvLayerView kv = kv_view(e, hkv, d, ctx, window);
    kv.n_rot = n_rot;
    kv.rope_pairs = key_from_value_rope_pairs(inv.data(), n_rot, max_pos);
    DeviceBuffer V(hc.vb.size());
    V.upload(hc.vb.data(), hc.vb.size());
    kv.v = V.get();
    Dev<float> dw(w), dinv(inv);
    kv.k_weight = dw.p();
    kv.rope_inv_freq = dinv.p();
    const std::string why = key_from_value_refusal(kv);
    if (!why.empty()) {
        report(false, "key from value refused", why);
        return;
    }
    const std::vector<float> q = gaussian((size_t)n_tok * n_head * d);
    std::vector<int32_t> seq(n_tok), pos(n_tok);
    for (int t = 0; t < n_tok; t++) seq[t] = t, pos[t] = last[t];
    const float scale = 1.0f / std::sqrt((float)d);
    Dev<float> dq(q), dout((size_t)n_tok * n_head * d);
    Dev<int32_t> dseq(seq), dpos(pos);
    Dev<float> partial(attention_partial_floats(n_tok, n_head, d, max_pos));
    attention(kv, dq.p(), dout.p(), dseq.p(), dpos.p(), n_tok, n_head, scale, max_pos, partial.p(), nullptr);
    const std::vector<float> out = dout.get();

    const bool rot = kv_elem_rotated(e);
    auto hadamard = [&](int i, int j) { return (__builtin_popcount((unsigned)(i & j)) & 1 ? -1.0 : 1.0) / std::sqrt((double)d); };
    double worst = 0;
    int nan_rows = 0, dropped_turning = 0;
    for (int j = kv.rope_pairs; j < n_rot / 2; j++)
        if ((double)inv[j] * max_pos >= 1e-6) dropped_turning++;
    std::vector<double> vm(d), sc;
    std::vector<std::vector<double>> keys;  // per position of the window, for one KV head
    for (int t = 0; t < n_tok; t++) {
        const int p = pos[t], lo = window > 0 ? std::max(0, p - window + 1) : 0;
        for (int g = 0; g < hkv; g++) {
            keys.assign(p - lo + 1, std::vector<double>(d));
            double vmax = 0;
            for (int j = lo; j <= p; j++) {
                const float* x = hc.vrow(t, j, g);
                if (kv_elem_randomized(e)) {  // tcq: R^T = D H / sqrt(d) as the CPU format applies it
                    std::vector<float> y(x, x + d);
                    const std::string name = kv_elem_name(e);
                    require_kv_format(name, d).unrotate(y.data(), d);
                    for (int i = 0; i < d; i++) vm[i] = y[i], vmax = std::max(vmax, (double)std::fabs(x[i]));
                } else
                for (int i = 0; i < d; i++) {
                    double a = 0;
                    if (rot)
                        for (int c = 0; c < d; c++) a += hadamard(i, c) * x[c];
                    else
                        a = x[i];
                    vm[i] = a;
                    vmax = std::max(vmax, (double)std::fabs(x[i]));
                }
                std::vector<double>& k = keys[j - lo];
                for (int i = 0; i < d; i++) k[i] = w[i] * vm[i];
                for (int i = 0; i < n_rot / 2; i++) {
                    // the angle as the model defines it: a float32 product (CPU forward, transformers)
                    const double th = (double)((float)j * inv[i]), c = std::cos(th), s = std::sin(th);
                    const double x0 = k[i], x1 = k[i + n_rot / 2];
                    k[i] = x0 * c - x1 * s;
                    k[i + n_rot / 2] = x0 * s + x1 * c;
                }
            }
            for (int h = g * G; h < (g + 1) * G; h++) {
                const float* qr = q.data() + ((size_t)t * n_head + h) * d;
                sc.assign(p - lo + 1, 0);
                double mx = -1e300;
                for (int j = lo; j <= p; j++) {
                    double dot = 0;
                    for (int i = 0; i < d; i++) dot += (double)qr[i] * keys[j - lo][i];
                    sc[j - lo] = dot * scale;
                    mx = std::max(mx, sc[j - lo]);
                }
                double sum = 0;
                for (double& x : sc) sum += (x = std::exp(x - mx));
                const float* got = out.data() + ((size_t)t * n_head + h) * d;
                bool bad = false;
                for (int i = 0; i < d; i++) {
                    double o = 0;
                    for (int j = lo; j <= p; j++) o += sc[j - lo] * hc.vrow(t, j, g)[i];
                    o /= sum;
                    if (!std::isfinite(got[i])) bad = true;
                    worst = std::max(worst, std::isfinite(got[i]) ? std::fabs(got[i] - o) / vmax : INFINITY);
                }
                nan_rows += bad;
            }
        }
    }
    std::string at;
    for (int p : last) at += fmt(" %d", p);
    report(worst <= 1e-4 && nan_rows == 0 && dropped_turning == 0,
           fmt("key from value %s d=%d heads %d/%d rot %d%s", kv_elem_name(e), d, n_head, hkv, n_rot,
               proportional ? " prop" : "") +
               (window > 0 ? fmt(" window %d ring %d", window, ctx) : std::string()) + " at" + at,
           fmt("vs double %.1e max|v|, rope pairs %d/%d%s", worst, kv.rope_pairs, n_rot / 2,
               nan_rows ? fmt(" NaN rows %d", nan_rows).c_str() : ""));
}

void run_key_from_value_checks() {
    const KvElem elems[] = {KvElem::F32,   KvElem::F16,  KvElem::Q8_0, KvElem::Q4_0,
                            KvElem::Q8_0H, KvElem::Q4_0H, KvElem::TCQ3, KvElem::TBQ3};
    for (KvElem e : elems) {
        // gemma4 26B's global layer: d 512, 16 query heads over 2 KV heads, proportional RoPE
        check_key_from_value(e, 512, 16, 2, 512, true, 0, 700, {0, 1, 300, 699});
        check_key_from_value(e, 512, 8, 1, 512, false, 0, 600, {17, 599});
        check_key_from_value(e, 256, 8, 2, 256, false, 0, 520, {5, 519});
        check_key_from_value(e, 64, 4, 1, 64, false, 0, 300, {0, 299});
        // partial RoPE (n_rot < d), and a ring at large positions (angles past 1e5 radians)
        check_key_from_value(e, 128, 4, 2, 64, false, 0, 300, {0, 299});
        check_key_from_value(e, 512, 16, 2, 512, true, 200, 300, {150000, 131071});
    }
    // a head size that is not 32 * (1..4, 8, 16) runs element-strided rows (f16: no block constraint)
    check_key_from_value(KvElem::F16, 80, 4, 2, 80, false, 0, 300, {299});
    KvLayerView kv;
    kv.elem = KvElem::F16;
    kv.n_head_kv = 1;
    kv.head_dim_k = kv.head_dim_v = 128;
    kv.n_rot = 130;
    const float one = 1.0f;
    kv.k_weight = &one;
    report(!key_from_value_refusal(kv).empty(), "key from value refuses n_rot > head size", key_from_value_refusal(kv));
    kv.n_rot = 128;
    kv.head_dim_v = 64;
    report(!key_from_value_refusal(kv).empty(), "key from value refuses dk != dv", key_from_value_refusal(kv));
    kv.head_dim_v = 128;
    kv.elem = KvElem::ISO3_0;  // its rows turn back by quaternions, not the Hadamard matrix the kernel applies
    report(!key_from_value_refusal(kv).empty(), "key from value refuses RotorQuant", key_from_value_refusal(kv));
}

void run_checks() {
    // tcq / tbq: their prompts run on the split-K kernel (the prefill kernel refuses them; checked here)
    const KvElem elems[] = {KvElem::F32,   KvElem::F16,     KvElem::Q8_0, KvElem::Q4_0,  KvElem::Q8_0H,
                            KvElem::Q4_0H, KvElem::TCQ2,    KvElem::TCQ4, KvElem::TBQ3,  KvElem::TBQ4NC,
                            KvElem::Q5_0,  KvElem::IQ4_NLH, KvElem::Q4_1, KvElem::Q5_1H, KvElem::ISO3_0};
    // refusals
    {
        KvLayerView kv;
        kv.elem = KvElem::F16;
        kv.n_head_kv = 2;
        kv.head_dim_k = kv.head_dim_v = 96;
        report(!attention_prefill_refusal(kv, 4).empty(), "refuses head size 96", attention_prefill_refusal(kv, 4));
        kv.head_dim_k = kv.head_dim_v = 128;
        report(attention_prefill_refusal(kv, 4).empty(), "accepts head size 128 GQA 2", attention_prefill_refusal(kv, 4));
        kv.head_dim_v = 64;
        report(!attention_prefill_refusal(kv, 4).empty(), "refuses dk != dv", attention_prefill_refusal(kv, 4));
        kv.head_dim_v = 128;
        kv.n_head_kv = 1;
        report(!attention_prefill_refusal(kv, 65).empty(), "refuses 65 query heads per KV head",
               attention_prefill_refusal(kv, 65));
        // the shortest run CudaForward gives the kernel: below the floor (graph-captured steps) refused
        const int min_run = attention_prefill_min_run();
        std::string why;
        try {
            set_attention_prefill_min_run(kPrefillMinRunFloor - 1);
        } catch (const std::exception& x) {
            why = x.what();
        }
        report(!why.empty() && attention_prefill_min_run() == min_run, "refuses a shortest run below the floor", why);
    }
    for (KvElem e : elems) {
        for (int d : {64, 128, 256, 512}) {
            if (!kv_elem_supports(e, d)) continue;  // RotorQuant: heads of 128 k
            for (auto [nh, nkv] : {std::pair{2, 2}, std::pair{4, 1}, std::pair{8, 1}}) {
                // whole context: a first chunk, a one-token run, a second chunk, a longer later chunk
                Case c{e, d, nh, nkv, 0, 0, {}};
                c.runs = {{0, 0, 17, 0}, {1, 0, 1, 17}, {2, 40, 15, 18}};
                if (d <= 256) c.runs.push_back({3, 100, 100, 33});
                c.ctx = 0;
                for (const PrefillRun& r : c.runs) c.ctx = std::max(c.ctx, r.pos0 + r.len + 3);  // + poisoned slots
                check_case(c);
                // sliding window 40 over a ring of 40 + 64: a ring that wrapped five times, a run shorter
                // than the window from 0, a run across the window's first wrap
                Case w{e, d, nh, nkv, 40, 104, {}};
                w.runs = {{0, 5 * 104 + 17, 64, 0}, {1, 0, 17, 64}, {2, 50, 33, 81}};
                check_case(w);
            }
        }
        // a long first chunk (700 tokens: many query tiles, partial last tile), GQA 4 at d = 128
        check_case(Case{e, 128, 8, 2, 0, 710, {{0, 0, 700, 0}}});
        // gemma4-like sliding layer: d = 256, GQA 2, window 300 over a ring of 300 + 100, a chunk past it
        check_case(Case{e, 256, 4, 2, 300, 400, {{0, 1000, 100, 0}, {1, 250, 100, 100}}});
        // unscaled scores (Gemma 4's q/k norms leave scale 1: scores of tens), and queries far from 1 in
        // size (the Q tile's power of two)
        for (auto [sc, qm] : {std::pair{1.0f, 1.0f}, std::pair{1.0f, 4.0f}, std::pair{0.0f, 1e-3f}, std::pair{0.0f, 300.0f}})
            for (int d : {128, 256})
                check_case(Case{e, d, 8, 2, 0, 300, {{0, 0, 100, 0}, {1, 150, 40, 100}}, sc, qm});
    }
}

// Decode: one query token per sequence at positions that cut the split-K parts and the 16-position
// tiles of attention_decode.cu in every way (0, mid-tile, tile and split edges, many splits), for the
// GQA groups of real models (Qwen3.5-27B 24/4 at d 256, Llama 32/8 and Qwen2.5-32B 40/8 at d 128, 16
// heads per KV head: two blocks of 8), each KV type, whole context and a ring that wrapped. attention()
// picks the tensor-core kernel for f16 and the blocks of 32 (and their *h forms) at d 64 / 128 / 256, the
// CUDA-core kernel otherwise; both must match the exact reference to 5e-5 max|v| (check_case), and with
// ROTOR_DECODE_ATTENTION=0 the CUDA-core kernel runs them all.
void run_decode_checks() {
    const KvElem elems[] = {KvElem::F32,    KvElem::F16,      KvElem::Q8_0,      KvElem::Q4_0,
                            KvElem::Q8_0H,  KvElem::Q4_0H,    KvElem::Q4_1,      KvElem::Q5_0,
                            KvElem::Q5_1,   KvElem::IQ4_NL,   KvElem::Q4_1H,     KvElem::Q5_0H,
                            KvElem::Q5_1H,  KvElem::IQ4_NLH,  KvElem::PLANAR3_0, KvElem::ISO4_0,
                            KvElem::ISO3_C, KvElem::PLANAR4_C};  // RotorQuant: CUDA-core kernel
    struct Shape {
        int d, n_head, hkv;
    };
    const Shape shapes[] = {{256, 24, 4}, {128, 8, 2}, {128, 5, 1}, {64, 16, 1}, {64, 1, 1}, {256, 12, 1}};
    const std::vector<int> at = {0, 17, 64, 255, 300, 1000, 2999};
    // one sequence per position, whole context; then a window of 700 over a ring of 764 that wrapped,
    // one inside its first pass
    auto check_decode = [&](KvElem e, const Shape& sh) {
        if (!kv_elem_supports(e, sh.d)) return;  // RotorQuant: heads of 128 k
        Case c{e, sh.d, sh.n_head, sh.hkv, 0, at.back() + 3, {}};
        for (int i = 0; i < (int)at.size(); i++) c.runs.push_back({i, at[i], 1, i});
        check_case(c);
        check_case(Case{e, sh.d, sh.n_head, sh.hkv, 700, 764, {{0, 3000, 1, 0}, {1, 500, 1, 1}, {2, 764, 1, 2}}});
    };
    for (KvElem e : elems)
        for (const Shape& sh : shapes) check_decode(e, sh);
    // tcq / tbq: attention_decode_tcq.cu's tensor-core kernel at heads of 128 / 256 (the default), then
    // the CUDA-core one (ROTOR_DECODE_ATTENTION_TCQ=0; it also takes heads of 64 either way)
    const bool tcq_was = attention_decode_tcq_enabled();
    for (bool tc : {true, false}) {
        set_attention_decode_tcq_enabled(tc);
        printf("(tcq / tbq on the %s kernel at d 128 / 256)\n", tc ? "tensor-core" : "CUDA-core");
        for (KvElem e : {KvElem::TCQ2, KvElem::TCQ3, KvElem::TCQ4, KvElem::TBQ2, KvElem::TBQ3, KvElem::TBQ4,
                         KvElem::TBQ2NC, KvElem::TBQ3NC, KvElem::TBQ4NC})
            for (const Shape& sh : shapes) check_decode(e, sh);
    }
    set_attention_decode_tcq_enabled(tcq_was);
    // RotorQuant at heads of 128 on the tensor-core kernel as tbq rows (ROTOR_DECODE_ATTENTION_RQ=1; off by
    // default until these pass on a GPU); other heads stay on the CUDA-core kernel
    const bool rq_was = attention_decode_rq_enabled();
    set_attention_decode_rq_enabled(true);
    printf("(RotorQuant on the tensor-core kernel at d 128)\n");
    for (KvElem e : {KvElem::PLANAR3_0, KvElem::ISO3_0, KvElem::PLANAR4_0, KvElem::ISO4_0, KvElem::PLANAR3_C,
                     KvElem::ISO4_C})
        for (const Shape& sh : shapes) check_decode(e, sh);
    set_attention_decode_rq_enabled(rq_was);
    // f16 caches on the tensor-core kernel (the default; ROTOR_DECODE_ATTENTION_F16=0 turns it off)
    const bool f16_was = attention_decode_f16();
    set_attention_decode_f16(true);
    for (const Shape& sh : shapes) {
        printf("(f16 on the tensor-core kernel)\n");
        check_decode(KvElem::F16, sh);
    }
    // the longer splits attention_decode_split picks at long contexts (these short ones get 256), and
    // the lean variant (two stages, 4 blocks per SM) at the default split
    for (int split : {512, 768, 1024, 1280, 0}) {
        set_attention_decode_split(split);
        set_attention_decode_lean(split == 0);
        for (KvElem e : {KvElem::Q4_0H, KvElem::Q8_0, KvElem::F16, KvElem::Q5_1H, KvElem::IQ4_NL})
            for (const Shape& sh : {shapes[0], shapes[2]}) {
                printf("(split %d%s)\n", split, split == 0 ? ", lean" : "");
                check_decode(e, sh);
            }
        set_attention_decode_split(0);
        set_attention_decode_lean(false);
    }
    set_attention_decode_f16(f16_was);
}

// ---------------------------------------------------------------- benchmark

struct BenchCache {
    KvLayerView kv;
    DeviceBuffer K, V;
    BenchCache(KvElem e, int d, int hkv, int ctx, int window) {
        const size_t rb = kv_row_bytes(e, d), rows = (size_t)ctx * hkv;
        kv = kv_view(e, hkv, d, ctx, window);
        K.resize(rows * rb);
        V.resize(rows * rb);
        // random rows, generated once per distinct 4096 rows and repeated (values only need to be sane)
        const size_t block = std::min<size_t>(rows, 4096);
        std::vector<uint8_t> kb(block * rb), vb(block * rb);
        std::vector<float> x(d);
        for (size_t r = 0; r < block; r++) {
            random_row(e, d, kb.data() + r * rb, x.data());
            random_row(e, d, vb.data() + r * rb, x.data());
        }
        for (size_t r0 = 0; r0 < rows; r0 += block) {
            const size_t n = std::min(block, rows - r0);
            K.upload(kb.data(), n * rb, r0 * rb);
            V.upload(vb.data(), n * rb, r0 * rb);
        }
        kv.k = K.get();
        kv.v = V.get();
    }
};

// Milliseconds for the attention of chunks [p, p + chunk) for p in chunk_starts, summed, by the
// prefill kernel (split_k false) or the split-K kernel; mean of reps after one warm-up.
double time_chunks(const KvLayerView& kv, int n_head, const std::vector<int>& starts, int chunk, bool split_k, int reps,
                   const float* q, float* out, float* partial) {
    std::vector<DeviceBuffer> pos_bufs;
    Dev<int32_t> seq(std::vector<int32_t>(chunk, 0));
    for (int p0 : starts) {
        std::vector<int32_t> pos(chunk);
        for (int t = 0; t < chunk; t++) pos[t] = p0 + t;
        pos_bufs.emplace_back((size_t)chunk * 4);
        pos_bufs.back().upload(pos.data(), (size_t)chunk * 4);
    }
    const float scale = 1.0f / std::sqrt((float)kv.head_dim_k);
    auto once = [&]() {
        for (size_t i = 0; i < starts.size(); i++) {
            if (split_k) {
                attention(kv, q, out, seq.p(), pos_bufs[i].get<int32_t>(), chunk, n_head, scale, starts[i] + chunk,
                          partial, nullptr);
            } else {
                const PrefillRun r{0, starts[i], chunk, 0};
                attention_prefill(kv, q, out, &r, 1, n_head, scale, nullptr);
            }
        }
    };
    once();
    ROTOR_CUDA_CHECK(cudaDeviceSynchronize());
    return event_ms(nullptr, [&] {
               for (int r = 0; r < reps; r++) once();
           }) /
           reps;
}

// flops of QK^T and PV over the positions each query sees
double chunk_flops(int n_head, int d, const std::vector<int>& starts, int chunk, int window) {
    double keys = 0;
    for (int p0 : starts)
        for (int t = 0; t < chunk; t++) keys += window > 0 ? std::min(p0 + t + 1, window) : p0 + t + 1;
    return 4.0 * n_head * d * keys;
}

void run_bench(int reps) {
    struct Shape {
        const char* name;
        int n_head, hkv, d, window;
    };
    const Shape shapes[] = {{"llama-3.1-8b (32/8 heads, d 128)", 32, 8, 128, 0},
                            {"qwen3.5-27b (24/4 heads, d 256)", 24, 4, 256, 0},
                            {"gemma4 sliding (16/8 heads, d 256, window 1024)", 16, 8, 256, 1024}};
    const KvElem elems[] = {KvElem::F16,   KvElem::Q8_0,  KvElem::Q4_0,   KvElem::Q8_0H,
                            KvElem::Q4_0H, KvElem::Q5_0H, KvElem::IQ4_NLH};  // f32, q4_1, q5_1: refused
    const int chunk = 512;
    struct Ctx {
        const char* what;
        std::vector<int> starts;
    };
    std::vector<Ctx> ctxs = {{"512 (one chunk)", {0}}, {"8K (16 chunks of 512)", {}}, {"32K (last chunk of 512)", {32768 - 512}}};
    for (int p = 0; p < 8192; p += chunk) ctxs[1].starts.push_back(p);
    printf("\n## Prefill attention: tensor-core kernel vs split-K (ms per layer, one sequence, chunks of 512)\n");
    for (const Shape& sh : shapes) {
        printf("\n### %s\n\n| KV | context | prefill ms | TFLOP/s | split-K ms | speed-up | vs f16 (prefill) |\n"
               "|---|---|---|---|---|---|---|\n", sh.name);
        const bool long_split = sh.window == 0;  // split-K at 32K is slow: fewer reps
        Dev<float> q(gaussian((size_t)chunk * sh.n_head * sh.d)), out((size_t)chunk * sh.n_head * sh.d);
        Dev<float> partial(attention_partial_floats(chunk, sh.n_head, sh.d, 32768));
        std::vector<double> f16_ms(ctxs.size(), 0);
        for (KvElem e : elems) {
            const int ctx = sh.window > 0 ? sh.window + chunk : 32768;
            BenchCache bc(e, sh.d, sh.hkv, ctx, sh.window);
            for (size_t ci = 0; ci < ctxs.size(); ci++) {
                const Ctx& cx = ctxs[ci];
                const double ms = time_chunks(bc.kv, sh.n_head, cx.starts, chunk, false, reps, q.p(), out.p(), partial.p());
                const double ms_split = time_chunks(bc.kv, sh.n_head, cx.starts, chunk, true,
                                                    long_split && ci == 2 ? 1 : std::max(1, reps / 4), q.p(), out.p(),
                                                    partial.p());
                if (e == KvElem::F16) f16_ms[ci] = ms;
                const double tf = chunk_flops(sh.n_head, sh.d, cx.starts, chunk, sh.window) / (ms * 1e-3) / 1e12;
                printf("| %s | %s | %.3f | %.0f | %.2f | %.1fx | %.0f%% |\n", kv_elem_name(e), cx.what, ms, tf, ms_split,
                       ms_split / ms, 100.0 * f16_ms[ci] / ms);
                fflush(stdout);
            }
        }
    }
    // where the prefill kernel starts to win: short runs at position 4096 (llama-8B shape)
    printf("\n### Short runs at position 4096 (llama-3.1-8b shape): the threshold for CudaForward::attend\n\n"
           "| KV | run length | prefill ms | split-K ms |\n|---|---|---|---|\n");
    for (KvElem e : {KvElem::F16, KvElem::Q4_0H}) {
        BenchCache bc(e, 128, 8, 8192, 0);
        Dev<float> q(gaussian((size_t)256 * 32 * 128)), out((size_t)256 * 32 * 128);
        Dev<float> partial(attention_partial_floats(256, 32, 128, 8192));
        for (int len : {8, 16, 32, 64, 128, 256}) {
            const double ms = time_chunks(bc.kv, 32, {4096}, len, false, reps, q.p(), out.p(), partial.p());
            const double ms_split = time_chunks(bc.kv, 32, {4096}, len, true, reps, q.p(), out.p(), partial.p());
            printf("| %s | %d | %.3f | %.3f |\n", kv_elem_name(e), len, ms, ms_split);
            fflush(stdout);
        }
    }
}

double copy_bandwidth_gbs() {
    const size_t n = (size_t)1 << 30;
    DeviceBuffer a(n), b(n);
    ROTOR_CUDA_CHECK(cudaMemset(a.get(), 1, n));
    ROTOR_CUDA_CHECK(cudaMemcpy(b.get(), a.get(), n, cudaMemcpyDeviceToDevice));
    const double ms = event_ms(nullptr, [&] {
        for (int i = 0; i < 5; i++) ROTOR_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), n, cudaMemcpyDeviceToDevice, nullptr));
    });
    return 2.0 * 5 * n / (ms * 1e-3) / 1e9;
}

// Decode attention of one token per layer: microseconds, KV bytes read per microsecond against the
// copy bandwidth measured here; the tensor-core kernel with split rule 0 and forced to 256 .. 2048
// positions, rule 1 (the default), and its lean variant, against the CUDA-core split-K kernel (256);
// f16 caches on the tensor-core kernel as ROTOR_DECODE_ATTENTION_F16=1 (the default) sets it.
void run_decode_bench(int reps) {
    const double bw = copy_bandwidth_gbs();
    const bool f16_was = attention_decode_f16();
    const int rule_was = attention_decode_split_rule();
    set_attention_decode_f16(true);  // f16 rows: the tensor-core kernel as ROTOR_DECODE_ATTENTION_F16=1
    printf("\n## Decode attention, one token, one layer (copy bandwidth %.0f GB/s)\n\n"
           "| shape | KV | context | tensor-core, rule 0 us (split) | GB/s | %% of copy bw | split 256 / 512 / 768 / 1024 / "
           "1280 / 1536 / 2048 us | rule 1 us (split) | rule 1 coarse us (split) | rule 1 %% of copy bw | lean us | "
           "lean + rule 1 us | CUDA-core us | speed-up of rule 1 |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n", bw);
    struct Shape {
        const char* name;
        int n_head, hkv, d;
    };
    const Shape shapes[] = {{"qwen3.5-27b (24/4, d 256)", 24, 4, 256}, {"llama-3.1-8b (32/8, d 128)", 32, 8, 128},
                            {"qwen2.5-32b (40/8, d 128)", 40, 8, 128}};
    // tcq4 / tbq4: tensor-core columns unless ROTOR_DECODE_ATTENTION_TCQ=0
    const KvElem elems[] = {KvElem::F16,   KvElem::Q8_0,    KvElem::Q4_0, KvElem::Q4_1H, KvElem::Q5_0H,
                            KvElem::Q5_1H, KvElem::IQ4_NLH, KvElem::TCQ4, KvElem::TBQ4};
    const std::vector<int> ctxs = {4096, 32768, 114688};
    for (const Shape& sh : shapes) {
        Dev<float> q(gaussian((size_t)sh.n_head * sh.d)), out((size_t)sh.n_head * sh.d);
        Dev<float> partial(attention_partial_floats(1, sh.n_head, sh.d, ctxs.back()));
        for (KvElem e : elems) {
            BenchCache bc(e, sh.d, sh.hkv, ctxs.back(), 0);
            const bool tc_runs = attention_decode_tc_supports(bc.kv) || attention_decode_tcq_supports(bc.kv);
            for (int x : ctxs) {
                auto time = [&](bool tc, int split, bool lean = false, int rule = 0, bool fine = true) {
                    set_attention_decode_tc_enabled(tc);
                    set_attention_decode_split(split);
                    set_attention_decode_lean(lean);
                    set_attention_decode_split_rule(rule);
                    set_attention_decode_split_fine(fine);
                    const double us = 1e3 * time_chunks(bc.kv, sh.n_head, {x - 1}, 1, true, reps, q.p(), out.p(), partial.p());
                    set_attention_decode_tc_enabled(true);
                    set_attention_decode_split(0);
                    set_attention_decode_lean(false);
                    set_attention_decode_split_rule(0);
                    set_attention_decode_split_fine(true);
                    return us;
                };
                const double cuda_core = time(false, 0);
                const double bytes = 2.0 * x * sh.hkv * kv_row_bytes(e, sh.d);
                if (!tc_runs) {
                    printf("| %s | %s | %d | (CUDA-core) | %.0f | %.0f%% | | | | | %.1f | |\n", sh.name, kv_elem_name(e), x,
                           bytes / (cuda_core * 1e-6) / 1e9, 100.0 * bytes / (cuda_core * 1e-6) / 1e9 / bw, cuda_core);
                    continue;
                }
                const double us = time(true, 0), gbs = bytes / (us * 1e-6) / 1e9;
                const int split = attention_decode_split(bc.kv, sh.n_head, 1, x);
                std::string sweep;
                for (int sp : {256, 512, 768, 1024, 1280, 1536, 2048})
                    sweep += fmt("%s%.1f", sweep.empty() ? "" : " / ", time(true, sp));
                set_attention_decode_split_rule(1);
                const int split1 = attention_decode_split(bc.kv, sh.n_head, 1, x);
                set_attention_decode_split_fine(false);
                const int split1c = attention_decode_split(bc.kv, sh.n_head, 1, x);
                set_attention_decode_split_fine(true);
                set_attention_decode_split_rule(0);
                const double us1 = time(true, 0, false, 1), gbs1 = bytes / (us1 * 1e-6) / 1e9;
                printf("| %s | %s | %d | %.1f (%d) | %.0f | %.0f%% | %s | %.1f (%d) | %.1f (%d) | %.0f%% | %.1f | %.1f | %.1f "
                       "| %.1fx |\n",
                       sh.name, kv_elem_name(e), x, us, split, gbs, 100.0 * gbs / bw, sweep.c_str(), us1, split1,
                       time(true, 0, false, 1, false), split1c, 100.0 * gbs1 / bw, time(true, 0, true),
                       time(true, 0, true, 1), cuda_core, cuda_core / us1);
                fflush(stdout);
            }
        }
    }
    set_attention_decode_f16(f16_was);
    set_attention_decode_split_rule(rule_was);
}

}  // namespace

int main(int argc, char** argv) {
    g_report_width = 64;
    bool bench = true, checks = true, kfv_only = false, decode_only = false;
    int reps = 10;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--no-bench") bench = false;
        else if (a == "--key-from-value-only") checks = bench = false, kfv_only = true;
        else if (a == "--bench-only") checks = false;
        else if (a == "--decode-only") decode_only = true;
        else if (a == "--reps" && i + 1 < argc) reps = std::max(1, atoi(argv[++i]));
        else {
            fprintf(stderr,
                    "usage: rotor-check-attention [--no-bench] [--bench-only] [--key-from-value-only] [--decode-only] "
                    "[--reps N]\n");
            return 2;
        }
    }
    try {
        int dev = 0;
        cudaDeviceProp prop;
        ROTOR_CUDA_CHECK(cudaGetDevice(&dev));
        ROTOR_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
        printf("GPU: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
        if (decode_only) {  // the decode checks and the decode benchmark (with --no-bench / --bench-only)
            if (checks) {
                run_decode_checks();
                printf("\n%d passed, %d failed\n", g_passed, g_failed);
            }
            if (bench) run_decode_bench(reps);
            return g_failed ? 1 : 0;
        }
        if (kfv_only) {
            run_key_from_value_checks();
            printf("\n%d passed, %d failed\n", g_passed, g_failed);
        }
        if (checks) {
            run_key_from_value_checks();
            run_checks();
            run_decode_checks();
            printf("\n%d passed, %d failed\n", g_passed, g_failed);
        }
        if (bench) run_bench(reps);
    } catch (const std::exception& e) {
        printf("FAIL  exception: %s\n", e.what());
        return 1;
    }
    return g_failed ? 1 : 0;
}
