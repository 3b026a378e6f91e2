// rotor-check-cuda: the CUDA backend against the CPU reference, on the GPU machine.
//   rotor-check-cuda [--model PATH[:TOL]]... [--synthetic DIR]
// Kernels: every weight format's mat-vec and embedding gather, norms, RoPE, SwiGLU, KV store and
// split-K attention (head sizes 64..512, GQA, f32/f16 cache, several sequences) on fresh random
// inputs, outputs poisoned with NaN first. End to end: each model's logits from CudaForward against
// CpuForward (the engine that CI checks against llama2.c and transformers) on a prompt batch, then
// teacher-forced decode steps, two sequences at once. Prints one line per check and a summary;
// exit status 1 if any check fails.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "convert/synthetic.h"
#include "cpu/vec_dot.h"
#include "cuda/attention_prefill.h"
#include "cuda/cuda_forward.h"
#include "cuda/device.h"
#include "cuda/kernels.h"
#include "cuda/mmvq_units.h"
#include "formats/blocks.h"
#include "formats/formats.h"
#include "kv/dense_kv_cache.h"
#include "kv/kv_format.h"
#include "kv/kv_pool.h"
#include "model/forward.h"
#include "gpu_check.h"

using namespace rotor;
using namespace rotor::cuda;
using namespace rotor::gpu_check;

namespace {




char buf[256];
const char* fmt(const char* f, double a, double b = 0) {
    snprintf(buf, sizeof buf, f, a, b);
    return buf;
}

// ---------------------------------------------------------------- kernels

void check_matmul(GgmlType t, int64_t rows, int64_t cols, int n_tok) {
    const FormatInfo& f = format_info(t);
    if (!f.can_quantize && t != GgmlType::F32) return;
    std::vector<float> wf = gaussian((size_t)rows * cols, 0.05f);
    std::vector<uint8_t> wq(row_bytes(t, cols) * rows);
    for (int64_t r = 0; r < rows; r++)
        quantize_row(t, &wf[(size_t)r * cols], wq.data() + r * row_bytes(t, cols), cols);
    std::vector<float> deq((size_t)rows * cols);
    for (int64_t r = 0; r < rows; r++) dequantize_row(t, wq.data() + r * row_bytes(t, cols), &deq[(size_t)r * cols], cols);
    const std::vector<float> x = gaussian((size_t)n_tok * cols);
    Dev<uint8_t> dw(wq);
    Dev<float> dx(x), dy((size_t)n_tok * rows);
    matmul(t, dw.p(), rows, cols, dx.p(), n_tok, dy.p(), nullptr);
    const std::vector<float> y = dy.get();
    double worst = 0;
    for (int tk = 0; tk < n_tok; tk++)
        for (int64_t r = 0; r < rows; r++) {
            double ref = 0, mag = 0;
            for (int64_t c = 0; c < cols; c++) {
                const double p = (double)deq[(size_t)r * cols + c] * x[(size_t)tk * cols + c];
                ref += p;
                mag += std::fabs(p);
            }
            const double got = y[(size_t)tk * rows + r];
            const double err = std::isfinite(got) ? std::fabs(got - ref) / (mag + 1e-30) : INFINITY;
            worst = std::max(worst, err);
        }
    report(worst < 2e-6, std::string("matmul ") + std::string(f.name) + " " + std::to_string(rows) + "x" +
                             std::to_string(cols) + " x" + std::to_string(n_tok),
           fmt("max |err| / sum|w*x| = %.2e", worst));
}

// The forced int8 mat-vec kernel in a check's name: prefix + version + suffix ("" for the default).
std::string kernel_tag(const char* prefix, const char* suffix) {
    return matvec_kernel() > 1 ? prefix + std::to_string(matvec_kernel()) + suffix : "";
}

// The int8 path (matvec_q8.cu), on fresh random inputs with the output and the activation scratch
// poisoned (NaN) first, against two references:
//  (1) the dequantized weights times the GPU's own int8 activations, in double: the kernel's own
//      arithmetic, to float accumulation (2e-6 of sum|w*x|);
//  (2) the CPU engine's int8 dot products (cpu/vec_dot: activations quantized by the CPU, to Q8_0
//      for q8_0/q4_0 weights and to Q8_K, one scale per 256, for the K-quants): they differ by the
//      activations' rounding only, at most 0.01 (Q8_0) or 0.2 (Q8_K) / sqrt(cols) of sum|w*x| (the
//      worst of 1000 Gaussian rows, measured on the CPU, is 5 to 10 times below that);
// and the activations themselves: the CPU's Q8_0 codes, bit for bit, with the same scale up to its
// f16 rounding. rw and persistent choose the kernel's variant (kernels.h, set_matvec_tuning).
void check_matmul_q8(GgmlType t, int64_t rows, int64_t cols, int n_tok, int rw = 0, bool persistent = true) {
    const FormatInfo& f = format_info(t);
    const size_t rb = row_bytes(t, cols);
    std::vector<float> wf = gaussian((size_t)rows * cols, 0.05f);
    std::vector<uint8_t> wq(rb * rows);
    for (int64_t r = 0; r < rows; r++) quantize_row(t, &wf[(size_t)r * cols], wq.data() + r * rb, cols);
    std::vector<float> deq((size_t)rows * cols);
    for (int64_t r = 0; r < rows; r++) dequantize_row(t, wq.data() + r * rb, &deq[(size_t)r * cols], cols);
    const std::vector<float> x = gaussian((size_t)n_tok * cols);
    Dev<uint8_t> dw(wq);
    Dev<float> dx(x), dy((size_t)n_tok * rows);
    const ActQ8Layout L = act_q8_layout(n_tok, cols);
    Dev<uint8_t> scratch(matmul_scratch_bytes(n_tok, cols));
    const bool int8 = matmul_int8_applies(t, dw.p(), cols);
    set_matvec_tuning(rw, persistent);
    matmul(t, dw.p(), rows, cols, dx.p(), n_tok, dy.p(), nullptr, scratch.p());
    set_matvec_tuning();
    const std::vector<float> y = dy.get();
    const std::vector<uint8_t> sc = scratch.get();
    const auto* codes = reinterpret_cast<const int8_t*>(sc.data() + L.codes);
    const auto* dsc = reinterpret_cast<const float*>(sc.data() + L.d);
    bool same_codes = true;
    std::vector<block_q8_0> cpu_act((size_t)cols / 32);
    for (int tk = 0; tk < n_tok; tk++) {
        quantize_row(GgmlType::Q8_0, &x[(size_t)tk * cols], cpu_act.data(), cols);
        for (int64_t b = 0; b < cols / 32; b++) {
            same_codes = same_codes && f32_to_fp16(dsc[tk * L.ds_stride + b]) == cpu_act[b].d;
            for (int i = 0; i < 32; i++)
                same_codes = same_codes && codes[tk * L.code_stride + mmvq::act_code_index(32 * b + i)] == cpu_act[b].qs[i];
        }
    }
    const bool k_act = vec_dot_kernel(t, CpuIsa::Scalar)->act == GgmlType::Q8_K;
    const double tol_cpu = (k_act ? 0.2 : 0.01) / std::sqrt((double)cols);
    double worst = 0, worst_cpu = 0;
    for (int tk = 0; tk < n_tok; tk++) {
        const float* xt = &x[(size_t)tk * cols];
        for (int64_t r = 0; r < rows; r++) {
            double ref = 0, mag = 0, mag_f = 0;
            for (int64_t c = 0; c < cols; c++) {
                const double w = deq[(size_t)r * cols + c];
                const double xr = (double)dsc[tk * L.ds_stride + c / 32] * codes[tk * L.code_stride + mmvq::act_code_index(c)];
                ref += w * xr;
                mag += std::fabs(w * xr);
                mag_f += std::fabs(w * xt[c]);
            }
            const double got = y[(size_t)tk * rows + r];
            const double cpu = vec_dot_f32(t, wq.data() + r * rb, xt, cols, cpu_isa_default());
            worst = std::max(worst, std::isfinite(got) ? std::fabs(got - ref) / (mag + 1e-30) : INFINITY);
            worst_cpu = std::max(worst_cpu, std::isfinite(got) ? std::fabs(got - cpu) / (mag_f + 1e-30) : INFINITY);
        }
    }
    snprintf(buf, sizeof buf, "err/sum|w*x| %.1e; vs CPU vec_dot %.1e (tol %.0e); codes %s", worst, worst_cpu, tol_cpu,
             same_codes ? "= CPU Q8_0" : "DIFFER");
    // the f16 tensor-core kernel rounds weights (c * code), activations (code * d / max d) and mins to f16:
    // each term within about 1.5e-3 of |w * x|. Which passes of up to 16 tokens run on the tensor cores
    // (every one with set_matvec_mma(true); by default 8-16 tokens and large q4_K launches of 4-7):
    bool mma = false, f16 = false;
    for (int t0 = 0; t0 < n_tok;) {
        const Int8Pass p = matmul_int8_pass(t, n_tok - t0, rows, cols);
        mma = mma || p.mma;
        f16 = f16 || p.f16;
        t0 += p.n_tok;
    }
    report(int8 && same_codes && worst < (f16 ? 1.5e-3 : 2e-6) && worst_cpu < tol_cpu,
           std::string("matmul int8 ") + (mma ? (f16 ? "mmq-f16 " : "mmq ") : "") + kernel_tag("k", " ") +
               std::string(f.name) + " " +
               std::to_string(rows) + "x" + std::to_string(cols) + " x" + std::to_string(n_tok) +
               (rw ? " rw" + std::to_string(rw) : "") + (persistent ? "" : " one-shot"),
           buf);
}

// matmul_multi (Q/K/V, gate/up) and matmul_q8 on pre-quantized activations give the same outputs,
// bit for bit, as one matmul per matrix: mixed types (two q4_K share a launch, q6_K another, f16 on
// the exact path). Rows of one span (2048 columns): kernel 3 cuts rows between warps only when they
// have more (kernels.h, matmul_multi), and its cut rows are checked against the references in
// check_matmul_q8.
void check_matmul_multi(int n_tok) {
    const int64_t cols = 2048;
    const GgmlType types[] = {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_K, GgmlType::F16};
    const int64_t rows[] = {517, 129, 67, 65};
    std::vector<std::unique_ptr<Dev<uint8_t>>> w;
    std::vector<std::unique_ptr<Dev<float>>> y_multi, y_one;
    std::vector<MatmulJob> jobs;
    for (int i = 0; i < 4; i++) {
        const size_t rb = row_bytes(types[i], cols);
        std::vector<float> wf = gaussian((size_t)rows[i] * cols, 0.05f);
        std::vector<uint8_t> wq(rb * rows[i]);
        for (int64_t r = 0; r < rows[i]; r++) quantize_row(types[i], &wf[(size_t)r * cols], wq.data() + r * rb, cols);
        w.push_back(std::make_unique<Dev<uint8_t>>(wq));
        y_multi.push_back(std::make_unique<Dev<float>>((size_t)n_tok * rows[i]));
        y_one.push_back(std::make_unique<Dev<float>>((size_t)n_tok * rows[i]));
        jobs.push_back({types[i], w.back()->p(), rows[i], y_multi.back()->p()});
    }
    const std::vector<float> x = gaussian((size_t)n_tok * cols);
    Dev<float> dx(x);
    Dev<uint8_t> s1(matmul_scratch_bytes(n_tok, cols)), s2(matmul_scratch_bytes(n_tok, cols));
    matmul_multi(jobs.data(), 4, cols, dx.p(), n_tok, nullptr, s1.p());
    bool same = true;
    for (int i = 0; i < 4; i++) {
        matmul(types[i], w[i]->p(), rows[i], cols, dx.p(), n_tok, y_one[i]->p(), nullptr, s2.p());
        const std::vector<float> a = y_multi[i]->get(), b = y_one[i]->get();
        same = same && memcmp(a.data(), b.data(), a.size() * 4) == 0;
        for (float v : a) same = same && std::isfinite(v);
    }
    // matmul_q8 on activations quantized beforehand
    quantize_act_q8(dx.p(), n_tok, cols, s1.p(), nullptr);
    Dev<float> yq((size_t)n_tok * rows[1]);
    matmul_q8(types[1], w[1]->p(), rows[1], cols, dx.p(), s1.p(), n_tok, yq.p(), nullptr);
    const std::vector<float> a = yq.get(), b = y_one[1]->get();
    same = same && memcmp(a.data(), b.data(), a.size() * 4) == 0;
    report(same,
           std::string("matmul_multi ") + (matvec_mma_mode() == 1 ? "mmq " : "") + kernel_tag("k", " ") +
               "q4_K+q6_K+q4_K+f16 x" + std::to_string(n_tok),
           "identical to one matmul per matrix");
}

void check_get_rows(GgmlType t, int64_t cols) {
    const FormatInfo& f = format_info(t);
    if (!f.can_quantize && t != GgmlType::F32) return;
    const int64_t rows = 37;
    std::vector<float> wf = gaussian((size_t)rows * cols);
    std::vector<uint8_t> wq(row_bytes(t, cols) * rows);
    for (int64_t r = 0; r < rows; r++) quantize_row(t, &wf[(size_t)r * cols], wq.data() + r * row_bytes(t, cols), cols);
    const std::vector<int32_t> ids = {5, 0, 36, 5, 17};
    Dev<uint8_t> dw(wq);
    Dev<int32_t> di(ids);
    Dev<float> dout(ids.size() * cols);
    get_rows(t, dw.p(), cols, di.p(), (int)ids.size(), dout.p(), nullptr);
    const std::vector<float> out = dout.get();
    double worst = 0;
    std::vector<float> ref((size_t)cols);
    for (size_t i = 0; i < ids.size(); i++) {
        dequantize_row(t, wq.data() + ids[i] * row_bytes(t, cols), ref.data(), cols);
        for (int64_t c = 0; c < cols; c++) {
            const double e = std::fabs((double)out[i * cols + c] - ref[c]) / (std::fabs(ref[c]) + 1e-6);
            worst = std::max(worst, std::isfinite(out[i * cols + c]) ? e : INFINITY);
        }
    }
    // The GPU may fuse d*q + m into one FMA: one rounding of difference at most.
    report(worst < 1e-6, std::string("get_rows ") + std::string(f.name) + " cols " + std::to_string(cols),
           fmt("max rel err %.2e", worst));
}

void check_elementwise() {
    const int rows = 7, n = 1000;
    const std::vector<float> x = gaussian((size_t)rows * n, 3.0f), w = gaussian(n), up = gaussian((size_t)rows * n);
    Dev<float> dx(x), dw(w), dy((size_t)rows * n), dup(up);
    rms_norm(dx.p(), dw.p(), dy.p(), rows, n, 1e-6f, nullptr);
    std::vector<float> y = dy.get();
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)x[r * n + i] * x[r * n + i];
        const double sc = 1.0 / std::sqrt(ss / n + 1e-6);
        for (int i = 0; i < n; i++)
            worst = std::max(worst, std::fabs(y[r * n + i] - x[r * n + i] * sc * w[i]) / (std::fabs(x[r * n + i] * sc * w[i]) + 1e-3));
    }
    report(worst < 1e-5, "rms_norm", fmt("max rel err %.2e", worst));

    Dev<float> g(x);
    swiglu(g.p(), dup.p(), (int64_t)rows * n, nullptr);
    y = g.get();
    worst = 0;
    for (size_t i = 0; i < x.size(); i++) {
        const double ref = x[i] / (1.0 + std::exp(-(double)x[i])) * up[i];
        worst = std::max(worst, std::fabs(y[i] - ref) / (std::fabs(ref) + 1e-3));
    }
    report(worst < 1e-5, "swiglu", fmt("max rel err %.2e", worst));

    for (bool neox : {false, true}) {
        const int n_tok = 3, n_head = 4, hd = 128, n_rot = 96;
        const std::vector<float> q = gaussian((size_t)n_tok * n_head * hd);
        std::vector<float> inv(n_rot / 2);
        for (int i = 0; i < n_rot / 2; i++) inv[i] = (float)(1.0 / std::pow(10000.0, 2.0 * i / n_rot));
        const std::vector<int32_t> pos = {0, 17, 4000};
        Dev<float> dq(q), dinv(inv);
        Dev<int32_t> dpos(pos);
        rope(dq.p(), n_tok, n_head, hd, n_rot, neox, dpos.p(), dinv.p(), nullptr);
        const std::vector<float> out = dq.get();
        double err = 0;
        for (int t = 0; t < n_tok; t++)
            for (int h = 0; h < n_head; h++) {
                std::vector<double> ref(q.begin() + (t * n_head + h) * hd, q.begin() + (t * n_head + h + 1) * hd);
                for (int i = 0; i < n_rot / 2; i++) {
                    const double th = (double)pos[t] * inv[i];
                    const int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
                    const double x0 = ref[a], x1 = ref[b];
                    ref[a] = x0 * std::cos(th) - x1 * std::sin(th);
                    ref[b] = x0 * std::sin(th) + x1 * std::cos(th);
                }
                for (int i = 0; i < hd; i++) err = std::max(err, std::fabs(out[(t * n_head + h) * hd + i] - ref[i]));
            }
        // theta = 4000 rad in f32 has an ulp of ~2.4e-4: the CPU path rounds it the same way.
        report(err < 2e-3, neox ? "rope neox" : "rope adjacent pairs", fmt("max abs err %.2e", err));
    }
}

void check_attention(int dk, int dv, int n_head, int n_head_kv, KvElem elem) {
    const int n_seq = 2, ctx = 1200;
    // Batch: seq 0 at positions 0, 299, 300; seq 1 at 1199 (four split ranges), all attending.
    const std::vector<int32_t> seq = {0, 0, 0, 1}, pos = {0, 299, 300, 1199};
    const int n_tok = (int)seq.size();
    const std::vector<float> kall = gaussian((size_t)n_seq * ctx * n_head_kv * dk),
                             vall = gaussian((size_t)n_seq * ctx * n_head_kv * dv);
    // Store every position through kv_store (one token per (seq, pos)).
    KvLayerView kv;
    kv.elem = elem;
    kv.n_head_kv = n_head_kv;
    kv.head_dim_k = dk;
    kv.head_dim_v = dv;
    kv.ctx = ctx;
    DeviceBuffer K((size_t)n_seq * ctx * n_head_kv * kv_row_bytes(elem, dk)),
        V((size_t)n_seq * ctx * n_head_kv * kv_row_bytes(elem, dv));
    kv.k = K.get();
    kv.v = V.get();
    std::vector<int32_t> sseq, spos;
    for (int s = 0; s < n_seq; s++)
        for (int p = 0; p < ctx; p++) sseq.push_back(s), spos.push_back(p);
    Dev<float> dk_(kall), dv_(vall);
    Dev<int32_t> dss(sseq), dsp(spos);
    kv_store(kv, dk_.p(), dv_.p(), dss.p(), dsp.p(), (int)sseq.size(), nullptr);
    const std::vector<float> q = gaussian((size_t)n_tok * n_head * dk);
    Dev<float> dq(q), dout((size_t)n_tok * n_head * dv);
    Dev<int32_t> dseq(seq), dpos(pos);
    const int max_kv = 1200;
    Dev<float> partial(attention_partial_floats(n_tok, n_head, dv, max_kv));
    const float scale = 1.0f / std::sqrt((float)dk);
    const bool rotated = kv_elem_rotated(elem);
    if (rotated) kv_rotate_rows(elem, dq.p(), n_tok * n_head, dk, false, nullptr);  // the caller's part of a rotated type
    attention(kv, dq.p(), dout.p(), dseq.p(), dpos.p(), n_tok, n_head, scale, max_kv, partial.p(), nullptr);
    if (rotated) kv_rotate_rows(elem, dout.p(), n_tok * n_head, dv, true, nullptr);
    const std::vector<float> out = dout.get();
    // What the cache holds: f16 rounding, or blocks. For block types the CPU's KV format encodes every
    // head row; unrotated, its bytes must equal the GPU's; rotated (the CPU rotates in double, the GPU
    // in float), a code may differ where a value sits on a rounding boundary, so at most 1% of the
    // blocks of 32 may differ (iq4_nlh's scale is a search over 16 fits whose scores often nearly tie, so
    // a last-bit change picks another scale and rewrites the block: measured 1.5% / 3.5% of rows at heads
    // 256 / 512 on an H200, 0.1-0.2% of blocks; its unrotated form matches every byte). RotorQuant rotates
    // in float on both sides with the same operations: every row must be equal. The reference attention then
    // decodes the GPU's own bytes with the CPU format (unrotate(dequantize_rotated(row))): the kernel must
    // read them exactly. (Measured on an H200: up to 0.2% of q8_0h rows at head 512 differ, by one code
    // step.) tcq rotates in double and searches with the CPU's float operations, so every row must be equal.
    std::vector<float> ks = kall, vs = vall;
    bool same_bytes = true;
    size_t rows_differ = 0, rows_total = 0, blocks_differ = 0, blocks_total = 0;
    if (elem == KvElem::F16) {
        for (auto& x : ks) x = fp16_to_f32(f32_to_fp16(x));
        for (auto& x : vs) x = fp16_to_f32(f32_to_fp16(x));
    } else if (elem != KvElem::F32) {
        for (auto* pv : {&ks, &vs}) {
            std::vector<float>& a = *pv;
            const int d = pv == &ks ? dk : dv;
            const std::string name = kv_elem_name(elem);  // a named string: gcc 13 -Wdangling-reference
            const KvFormat& f = require_kv_format(name, d);
            const size_t rb = f.row_bytes(d), n_rows = a.size() / d;
            std::vector<uint8_t> gpu(rb * n_rows), cpu(rb);
            (pv == &ks ? K : V).download(gpu.data(), gpu.size());
            for (size_t r = 0; r < n_rows; r++) {
                f.quantize(a.data() + r * d, cpu.data(), d);
                const bool same = memcmp(cpu.data(), gpu.data() + r * rb, rb) == 0;
                rows_differ += same ? 0 : 1;
                if (rotated && !kv_elem_randomized(elem) && !kv_elem_rotorquant_bits(elem)) {  // blocks of 32
                    const size_t bb = kv_row_bytes(elem, 32);
                    for (size_t o = 0; o < rb; o += bb, blocks_total++)
                        blocks_differ += memcmp(cpu.data() + o, gpu.data() + r * rb + o, bb) != 0;
                }
                rows_total++;
                f.dequantize_rotated(gpu.data() + r * rb, a.data() + r * d, d);
                f.unrotate(a.data() + r * d, d);
            }
        }
        same_bytes = blocks_total > 0 ? blocks_differ * 100 <= blocks_total : rows_differ == 0;
    }
    double worst = 0;
    for (int t = 0; t < n_tok; t++)
        for (int h = 0; h < n_head; h++) {
            const int g = h / (n_head / n_head_kv), n_kv = pos[t] + 1;
            std::vector<double> w(n_kv);
            double mx = -1e300;
            for (int p = 0; p < n_kv; p++) {
                double d = 0;
                for (int i = 0; i < dk; i++)
                    d += (double)q[((size_t)t * n_head + h) * dk + i] *
                         ks[(((size_t)seq[t] * ctx + p) * n_head_kv + g) * dk + i];
                w[p] = d * scale;
                mx = std::max(mx, w[p]);
            }
            double sum = 0;
            for (auto& x : w) sum += (x = std::exp(x - mx));
            for (int i = 0; i < dv; i++) {
                double o = 0;
                for (int p = 0; p < n_kv; p++)
                    o += w[p] * vs[(((size_t)seq[t] * ctx + p) * n_head_kv + g) * dv + i];
                o /= sum;
                const double got = out[((size_t)t * n_head + h) * dv + i];
                worst = std::max(worst, std::isfinite(got) ? std::fabs(got - o) : INFINITY);
            }
        }
    if (elem != KvElem::F32 && elem != KvElem::F16) {
        std::string what = fmt("cache rows equal to the CPU format's bytes: %.0f of %.0f",
                               (double)(rows_total - rows_differ), (double)rows_total);
        if (blocks_total)
            what +=
                fmt("; blocks %.0f of %.0f", (double)(blocks_total - blocks_differ), (double)blocks_total);
        report(same_bytes,
               "kv_store " + std::string(kv_elem_name(elem)) + " dk=" + std::to_string(dk) +
                   " dv=" + std::to_string(dv),
               what);
    }
    report(worst < 2e-5, "attention " + std::string(kv_elem_name(elem)) + " dk=" + std::to_string(dk) +
                             " dv=" + std::to_string(dv) + " heads " + std::to_string(n_head) + "/" +
                             std::to_string(n_head_kv),
           fmt("max abs err %.2e", worst));
}

// ---------------------------------------------------------------- fused decode-path kernels
// Each fused kernel against the sequence of kernels it replaces, on fresh random inputs with every
// output (and the int8 scratch) poisoned the same way on both sides: the floats, the int8 codes and
// scales and the cache bytes must be identical (the fused kernels do the same per-element operations
// in the same reduction order).

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double m = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) {
        const double d = std::fabs((double)a[i] - b[i]);
        m = std::max(m, std::isnan(d) ? INFINITY : d);
    }
    return m;
}

// add_rms_norm_q8 (y null: no add; alias: y is xn itself, as in the forward pass) against add,
// rms_norm and quantize_act_q8.
void check_add_rms_norm_q8(int rows, int n, bool with_y, bool alias, bool quantize) {
    const std::vector<float> x0 = gaussian((size_t)rows * n, 2.0f), y0 = gaussian((size_t)rows * n),
                             w = gaussian(n, 0.5f);
    Dev<float> xa(x0), xb(x0), dw(w);
    Dev<float> xna((size_t)rows * n), xnb((size_t)rows * n);  // poisoned
    Dev<float> ya(y0), yb(y0);
    const size_t sb = matmul_scratch_bytes(rows, n);
    Dev<uint8_t> qa(sb), qb(sb);  // poisoned alike
    if (alias) {  // y in xn: the fused kernel reads it from the buffer it writes
        xna.buf.upload(y0.data(), y0.size() * 4);
        xnb.buf.upload(y0.data(), y0.size() * 4);
    }
    // reference: the kernels one by one
    if (with_y) add(xa.p(), alias ? xna.p() : ya.p(), (int64_t)rows * n, nullptr);
    rms_norm(xa.p(), dw.p(), xna.p(), rows, n, 1e-5f, nullptr);
    if (quantize) quantize_act_q8(xna.p(), rows, n, qa.p(), nullptr);
    add_rms_norm_q8(xb.p(), with_y ? (alias ? xnb.p() : yb.p()) : nullptr, dw.p(), xnb.p(), rows, n, 1e-5f,
                    quantize ? qb.p() : nullptr, nullptr);
    const bool ok = same_bits(xa.get(), xb.get()) && same_bits(xna.get(), xnb.get()) && same_bits(qa.get(), qb.get());
    snprintf(buf, sizeof buf, "x, xn%s identical (max |xn diff| %.1e)", quantize ? ", int8 codes and scales" : "",
             max_abs_diff(xna.get(), xnb.get()));
    report(ok, "add_rms_norm_q8 " + std::to_string(rows) + "x" + std::to_string(n) + (with_y ? (alias ? " y=xn" : " +y") : " no add") +
                   (quantize ? "" : " no int8"),
           buf);
}

void check_get_rows_rms_norm_q8(GgmlType t, int n, bool quantize) {
    const int64_t vocab = 37;
    const size_t rb = row_bytes(t, n);
    std::vector<float> wf = gaussian((size_t)vocab * n);
    std::vector<uint8_t> wq(rb * vocab);
    for (int64_t r = 0; r < vocab; r++) quantize_row(t, &wf[(size_t)r * n], wq.data() + r * rb, n);
    const std::vector<int32_t> ids = {5, 0, 36, 5, 17};
    const int rows = (int)ids.size();
    const std::vector<float> w = gaussian(n, 0.5f);
    Dev<uint8_t> table(wq);
    Dev<int32_t> dids(ids);
    Dev<float> dw(w), xa((size_t)rows * n), xb((size_t)rows * n), xna((size_t)rows * n), xnb((size_t)rows * n);
    const size_t sb = matmul_scratch_bytes(rows, n);
    Dev<uint8_t> qa(sb), qb(sb);
    get_rows(t, table.p(), n, dids.p(), rows, xa.p(), nullptr);
    rms_norm(xa.p(), dw.p(), xna.p(), rows, n, 1e-6f, nullptr);
    if (quantize) quantize_act_q8(xna.p(), rows, n, qa.p(), nullptr);
    get_rows_rms_norm_q8(t, table.p(), dids.p(), xb.p(), dw.p(), xnb.p(), rows, n, 1e-6f, quantize ? qb.p() : nullptr,
                         nullptr);
    const bool ok = same_bits(xa.get(), xb.get()) && same_bits(xna.get(), xnb.get()) && same_bits(qa.get(), qb.get());
    snprintf(buf, sizeof buf, "x, xn%s identical to get_rows + rms_norm%s (max |xn diff| %.1e)",
             quantize ? ", int8 codes and scales" : "", quantize ? " + quantize" : "", max_abs_diff(xna.get(), xnb.get()));
    report(ok, "get_rows_rms_norm_q8 " + std::string(format_info(t).name) + " cols " + std::to_string(n) + (quantize ? "" : " no int8"),
           buf);
}

void check_swiglu_q8(int n_tok, int n) {
    const std::vector<float> g = gaussian((size_t)n_tok * n, 3.0f), u = gaussian((size_t)n_tok * n);
    Dev<float> ga(g), gb(g), du(u);
    const size_t sb = matmul_scratch_bytes(n_tok, n);
    Dev<uint8_t> qa(sb), qb(sb);
    swiglu(ga.p(), du.p(), (int64_t)n_tok * n, nullptr);
    quantize_act_q8(ga.p(), n_tok, n, qa.p(), nullptr);
    swiglu_q8(gb.p(), du.p(), n_tok, n, qb.p(), nullptr);
    const bool ok = same_bits(ga.get(), gb.get()) && same_bits(qa.get(), qb.get());
    report(ok, "swiglu_q8 " + std::to_string(n_tok) + "x" + std::to_string(n),
           fmt("output, int8 codes and scales identical to swiglu + quantize (max diff %.1e)", max_abs_diff(ga.get(), gb.get())));
}

// qkv_prep against add_bias, rms_norm (q/k heads), rope (q, k), hadamard_rows (q, rotated caches)
// and kv_store, with positions that need sincosf's slow path (4000) and two sequences.
void check_qkv_prep(const char* what, int H, int Hkv, int d, int n_rot, bool neox, bool bias, bool norm, KvElem elem) {
    const int n_tok = 3, n_seq = 2, ctx = 4100;
    const std::vector<int32_t> pos = {0, 17, 4000}, seq = {0, 1, 1};
    const std::vector<float> q0 = gaussian((size_t)n_tok * H * d), k0 = gaussian((size_t)n_tok * Hkv * d),
                             v0 = gaussian((size_t)n_tok * Hkv * d);
    const std::vector<float> bq = gaussian((size_t)H * d), bk = gaussian((size_t)Hkv * d), bv = gaussian((size_t)Hkv * d);
    const std::vector<float> qn = gaussian(d, 0.5f), kn = gaussian(d, 0.5f);
    std::vector<float> inv(std::max(1, n_rot / 2));
    for (int i = 0; i < n_rot / 2; i++) inv[i] = (float)(1.0 / std::pow(500000.0, 2.0 * i / n_rot));
    Dev<float> qa(q0), ka(k0), va(v0), qb(q0), kb(k0), vb(v0);
    Dev<float> dbq(bq), dbk(bk), dbv(bv), dqn(qn), dkn(kn), dinv(inv);
    Dev<int32_t> dpos(pos), dseq(seq);
    const size_t cache_bytes = (size_t)n_seq * ctx * Hkv * kv_row_bytes(elem, d);
    Dev<uint8_t> Ka(cache_bytes), Va(cache_bytes), Kb(cache_bytes), Vb(cache_bytes);  // poisoned alike
    auto view = [&](Dev<uint8_t>& K, Dev<uint8_t>& V) {
        KvLayerView kv;
        kv.k = K.p();
        kv.v = V.p();
        kv.elem = elem;
        kv.n_head_kv = Hkv;
        kv.head_dim_k = kv.head_dim_v = d;
        kv.ctx = ctx;
        return kv;
    };
    // reference
    if (bias) {
        add_bias(qa.p(), dbq.p(), n_tok, H * d, nullptr);
        add_bias(ka.p(), dbk.p(), n_tok, Hkv * d, nullptr);
        add_bias(va.p(), dbv.p(), n_tok, Hkv * d, nullptr);
    }
    if (norm) {
        rms_norm(qa.p(), dqn.p(), qa.p(), n_tok * H, d, 1e-6f, nullptr);
        rms_norm(ka.p(), dkn.p(), ka.p(), n_tok * Hkv, d, 1e-6f, nullptr);
    }
    rope(qa.p(), n_tok, H, d, n_rot, neox, dpos.p(), dinv.p(), nullptr);
    rope(ka.p(), n_tok, Hkv, d, n_rot, neox, dpos.p(), dinv.p(), nullptr);
    kv_store(view(Ka, Va), ka.p(), va.p(), dseq.p(), dpos.p(), n_tok, nullptr);
    if (kv_elem_rotated(elem)) kv_rotate_rows(elem, qa.p(), n_tok * H, d, false, nullptr);
    // fused
    QkvPrep p;
    p.q = qb.p();
    p.k = kb.p();
    p.v = vb.p();
    if (bias) p.bq = dbq.p(), p.bk = dbk.p(), p.bv = dbv.p();
    if (norm) p.q_norm = dqn.p(), p.k_norm = dkn.p();
    p.n_head = H;
    p.n_head_kv = Hkv;
    p.head_dim_k = p.head_dim_v = d;
    p.n_rot = n_rot;
    p.neox = neox;
    p.eps = 1e-6f;
    p.pos = dpos.p();
    p.seq = dseq.p();
    p.inv_freq = dinv.p();
    const bool stored = qkv_prep(p, view(Kb, Vb), n_tok, nullptr);
    if (!stored) kv_store(view(Kb, Vb), kb.p(), vb.p(), dseq.p(), dpos.p(), n_tok, nullptr);
    const bool float_cache = elem == KvElem::F32 || elem == KvElem::F16;
    bool ok = stored == float_cache && same_bits(qa.get(), qb.get()) && same_bits(Ka.get(), Kb.get()) &&
              same_bits(Va.get(), Vb.get());
    if (!stored) ok = ok && same_bits(ka.get(), kb.get()) && same_bits(va.get(), vb.get());
    snprintf(buf, sizeof buf, "q%s and the %s cache identical (max |q diff| %.1e)", stored ? "" : ", k, v",
             kv_elem_name(elem), max_abs_diff(qa.get(), qb.get()));
    report(ok, std::string("qkv_prep ") + what + " d=" + std::to_string(d) + " " + kv_elem_name(elem), buf);
}

void check_fused() {
    for (int rows : {1, 3, 8}) {
        check_add_rms_norm_q8(rows, 4096, true, true, true);
        check_add_rms_norm_q8(rows, 5120, true, false, true);
    }
    check_add_rms_norm_q8(2, 4096, false, false, true);
    check_add_rms_norm_q8(2, 896, true, true, true);     // fewer elements than threads per row
    check_add_rms_norm_q8(2, 1000, true, true, false);   // not a multiple of 32: no int8
    check_add_rms_norm_q8(3, 8192, true, true, true);
    check_add_rms_norm_q8(2, 20480, true, true, true);   // longer than one block holds: unfused kernels
    check_add_rms_norm_q8(37, 2048, true, true, false);  // a prompt batch, exact path
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::F16, GgmlType::BF16, GgmlType::F32})
        check_get_rows_rms_norm_q8(t, 4096, true);
    check_get_rows_rms_norm_q8(GgmlType::Q4_K, 5120, false);
    check_get_rows_rms_norm_q8(GgmlType::F32, 172, false);  // stories260K: element by element, two launches
    for (int nt : {1, 3, 8}) check_swiglu_q8(nt, 14336);
    check_swiglu_q8(2, 1536);
    check_qkv_prep("llama", 32, 8, 128, 128, false, false, false, KvElem::F16);
    check_qkv_prep("llama", 32, 8, 128, 128, false, false, false, KvElem::F32);
    check_qkv_prep("qwen2 bias", 14, 2, 64, 64, true, true, false, KvElem::F16);
    check_qkv_prep("qwen3 norm", 16, 8, 128, 128, true, false, true, KvElem::F16);
    check_qkv_prep("qwen3 norm", 16, 8, 128, 128, true, false, true, KvElem::Q8_0);
    check_qkv_prep("partial rope", 8, 2, 256, 64, true, true, true, KvElem::Q4_0);
    check_qkv_prep("llama", 8, 2, 128, 128, false, false, false, KvElem::Q8_0H);
    check_qkv_prep("qwen3 norm", 8, 4, 128, 128, true, true, true, KvElem::Q4_0H);
    check_qkv_prep("head 512", 4, 1, 512, 512, true, false, true, KvElem::Q4_0H);
    check_qkv_prep("head 80", 8, 2, 80, 80, true, true, false, KvElem::F32);
    check_qkv_prep("qwen3 norm", 8, 4, 128, 128, true, true, true, KvElem::TCQ3);  // q rotated with signs
    check_qkv_prep("head 256", 8, 2, 256, 64, true, false, true, KvElem::TCQ4);
}

// ---------------------------------------------------------------- end to end



// The GPU decodes weights exactly (the chunk decoders are bit-exact on the CPU) and keeps
// activations in f32, while the CPU's quantized path rounds activations to Q8. The like-for-like
// reference is therefore the CPU on the same weights dequantized to f32; the comparison with the
// CPU's own quantized path is reported beside it with a looser bound.
std::unique_ptr<Model> load_dequantized(const std::string& path, std::vector<std::vector<float>>& store) {
    auto m = Model::load(path);
    auto deq = [&](Weight& w) { dequantize_in_place(w, store); };
    deq(m->tok_embd);
    deq(m->output);
    for (LayerWeights& L : m->layers)
        for (Weight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down}) deq(*w);
    return m;
}

struct Diff {
    double worst = 0;
    int agree = 0, rows = 0;
    void add(const float* got, const float* ref, int V) {
        worst = std::max(worst, rel_l2(got, ref, V));
        agree += argmax(got, V) == argmax(ref, V);
        rows++;
    }
};

void check_model(const std::string& path, double tol_q8_cpu, KvElem elem, bool exact) {
    std::unique_ptr<Model> m, mf;
    std::vector<std::vector<float>> store;
    try {
        m = Model::load(path);
        mf = load_dequantized(path, store);
    } catch (const std::exception& e) {
        report(false, "load " + path, e.what());
        return;
    }
    const ModelConfig& c = m->cfg;
    const int V = c.n_vocab, n_prompt = 24, n_decode = 8, ctx = 64;
    const std::string short_name = path.substr(path.find_last_of('/') + 1);
    for (int l = 0; l < c.n_layer; l++)
        if (!kv_elem_supports(elem, c.head_dim_k[l])) {  // must be refused at load, by name
            std::string msg;
            try {
                CudaForwardOptions o;
                o.kv = elem;
                CudaForward refused(*m, o);
            } catch (const std::exception& e) {
                msg = e.what();
            }
            report(msg.find(kv_elem_refusal(elem, c.head_dim_k[l])) != std::string::npos,
                   short_name + " kv " + kv_elem_name(elem) + " refused", msg.empty() ? "(accepted!)" : msg);
            return;
        }
    CpuForward cpu(*m, 8), cpu_f(*mf, 8);
    DenseKvCache cache(kv_geometry(c), 2, ctx), cache_f32(kv_geometry(c), 2, ctx);
    // the reference for a q8_0 GPU cache is the CPU's q8_0 paged cache (same bytes, read in place)
    std::unique_ptr<KvCache> cache_f;
    if (elem != KvElem::F32 && elem != KvElem::F16)
        cache_f = make_paged_kv_cache(kv_geometry(c), kv_elem_name(elem), kv_elem_name(elem), 2, ctx);
    else cache_f = std::make_unique<DenseKvCache>(kv_geometry(c), 2, ctx);
    CudaForwardOptions o;
    o.n_seq = 2;
    o.ctx = ctx;
    o.max_batch = 64;
    o.kv = elem;
    o.exact_matmul = exact;
    CudaForward gpu(*m, o);
    // Tokens of the case's own stream (model, cache, path), so that checks added before it do not
    // change what it runs.
    std::mt19937 case_rng((uint32_t)std::hash<std::string>{}(short_name + " " + kv_elem_name(elem) + (exact ? " exact" : "")));
    std::uniform_int_distribution<int> tok(1, V - 1);
    // Prompt: two sequences in one batch (different lengths), every row wants logits.
    Batch b;
    for (int p = 0; p < n_prompt; p++) b.add(tok(case_rng), p, 0, true);
    for (int p = 0; p < n_prompt / 2; p++) b.add(tok(case_rng), p, 1, true);
    std::vector<float> lq, lf, lg, l32;
    Diff vs_f, vs_q, cache_effect;  // cache_effect: the CPU's own quantized cache against an f32 one
    // tcq: one value off in K/V can change a row's whole trellis path (tbq: its scale, so any code), so
    // both are checked as 4-bit types
    // (q5_0 / q5_1 too: a code flip moves a value by 1/32 of its block's range, 16x q8_0's step)
    const bool four_bit = elem == KvElem::Q4_0 || elem == KvElem::Q4_0H || elem == KvElem::Q4_1 ||
                          elem == KvElem::Q4_1H || elem == KvElem::IQ4_NL || elem == KvElem::IQ4_NLH ||
                          elem == KvElem::Q5_0 || elem == KvElem::Q5_0H || elem == KvElem::Q5_1 ||
                          elem == KvElem::Q5_1H || kv_elem_randomized(elem) ||
                          kv_elem_rotorquant_bits(elem) > 0;
    auto step = [&](const Batch& batch) {
        cpu.forward(batch, cache, lq);
        cpu_f.forward(batch, *cache_f, lf);
        if (four_bit && exact) cpu_f.forward(batch, cache_f32, l32);
        gpu.forward(batch, lg);
        for (int r = 0; r < batch.size(); r++) {
            vs_f.add(&lg[(size_t)r * V], &lf[(size_t)r * V], V);
            vs_q.add(&lg[(size_t)r * V], &lq[(size_t)r * V], V);
            if (four_bit && exact) cache_effect.add(&lf[(size_t)r * V], &l32[(size_t)r * V], V);
        }
    };
    step(b);
    int next0 = argmax(&lf[(size_t)(n_prompt - 1) * V], V), next1 = argmax(&lf[(size_t)(b.size() - 1) * V], V);
    // Decode: both sequences one token per step, fed the reference's greedy choice (teacher forcing).
    for (int s = 0; s < n_decode; s++) {
        Batch d;
        d.add(next0, n_prompt + s, 0, true);
        d.add(next1, n_prompt / 2 + s, 1, true);
        step(d);
        next0 = argmax(&lf[0], V);
        next1 = argmax(&lf[V], V);
    }
    const std::string name = path.substr(path.find_last_of('/') + 1) + " kv " + kv_elem_name(elem) +
                             (exact ? " exact" : " int8") + (fused_decode() ? " fused" : "") +
                             kernel_tag(" mmvq", "");
    if (exact) {
        // f16 cache: K/V rounded to f16 (relative 2^-11) against the CPU's f32 cache; q8_0: the same
        // cache bytes on both sides except where a K/V value sits on a rounding boundary.
        // 4- and 5-bit caches: the same bytes too, but a code flip moves a value by a whole step (1/16 or
        // 1/32 of a block's range), so the bound is looser.
        // Which codes flip depends on the last bits of K/V, so on the summation order of the
        // projections: the bound is 2e-2 or a quarter of what the 4-bit cache itself changes
        // (CPU, quantized cache against f32), whichever is larger; wrong cache bytes would cost
        // about as much as the cache's whole effect.
        double tol = elem == KvElem::F32 ? 1e-4 : elem == KvElem::F16 ? 5e-3 : four_bit ? 2e-2 : 2e-3;
        if (four_bit) tol = std::max(tol, 0.25 * cache_effect.worst);
        snprintf(buf, sizeof buf, "rel L2 %.2e (tol %.1e), same argmax %d/%d", vs_f.worst, tol, vs_f.agree, vs_f.rows);
        if (four_bit)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "; 4-bit cache vs f32 on the CPU %.2e",
                     cache_effect.worst);
        report(vs_f.worst <= tol, name + " vs CPU f32 weights", buf);
    } else {
        snprintf(buf, sizeof buf, "rel L2 %.2e (tol %.0e), same argmax %d/%d; vs f32 weights %.2e", vs_q.worst,
                 tol_q8_cpu, vs_q.agree, vs_q.rows, vs_f.worst);
        report(vs_q.worst <= tol_q8_cpu, name + " vs CPU as stored", buf);
    }
}

// Decode steps replayed from CUDA graphs give the same logits, bit for bit, as the same steps
// launched kernel by kernel, across a split-K boundary (a new graph every 256 positions).
void check_graphs(const std::string& path) {
    auto m = Model::load(path);
    const int V = m->cfg.n_vocab;
    CudaForwardOptions o;
    o.n_seq = 2;
    o.ctx = 320;
    o.max_batch = 256;
    CudaForward with(*m, o);
    o.cuda_graphs = false;
    CudaForward without(*m, o);
    std::uniform_int_distribution<int> tok(1, V - 1);
    Batch b;
    for (int p = 0; p < 250; p++) b.add(tok(rng), p, 0, p == 249);
    std::vector<float> a, c;
    with.forward(b, a);
    without.forward(b, c);
    bool same = a == c;
    int steps = 0;
    for (int p = 250; p < 262; p++, steps++) {
        Batch d;
        d.add(tok(rng), p, 0, true);
        d.add(tok(rng), p - 200, 1, true);  // sequence 1 has no prompt: attends to zeros it wrote itself
        with.forward(d, a);
        without.forward(d, c);
        same = same && a == c;
    }
    report(same, "CUDA graph replay " + path.substr(path.find_last_of('/') + 1) + (fused_decode() ? " fused" : "") +
                     kernel_tag(" mmvq", ""),
           "logits identical over " + std::to_string(steps) + " decode steps across a split boundary");
}

// The fused decode path (set_fused_decode) against the kernels one by one: the same logits, bit for
// bit, on a prompt batch (tensor cores unless exact), a batch of 12 tokens (the int8 mat-vec in token
// groups, not captured) and decode steps of two tokens (CUDA graphs).
void check_fused_forward(const std::string& path, KvElem elem, bool exact) {
    auto m = Model::load(path);
    const int V = m->cfg.n_vocab;
    for (int l = 0; l < m->cfg.n_layer; l++)
        if (!kv_elem_supports(elem, m->cfg.head_dim_k[l])) return;
    std::uniform_int_distribution<int> tok(1, V - 1);
    std::vector<Batch> steps(1);
    for (int p = 0; p < 24; p++) steps[0].add(tok(rng), p, 0, true);
    for (int p = 0; p < 12; p++) steps[0].add(tok(rng), p, 1, p == 11);
    steps.emplace_back();
    for (int p = 0; p < 6; p++) steps.back().add(tok(rng), 24 + p, 0, p == 5), steps.back().add(tok(rng), 12 + p, 1, true);
    for (int st = 0; st < 6; st++) {
        steps.emplace_back();
        steps.back().add(tok(rng), 30 + st, 0, true);
        steps.back().add(tok(rng), 18 + st, 1, true);
    }
    const bool was = fused_decode();
    auto run = [&](bool fused) {
        set_fused_decode(fused);
        CudaForwardOptions o;
        o.n_seq = 2;
        o.ctx = 64;
        o.max_batch = 64;
        o.kv = elem;
        o.exact_matmul = exact;
        CudaForward gpu(*m, o);
        std::vector<float> all, lg;
        for (const Batch& b : steps) {
            gpu.forward(b, lg);
            all.insert(all.end(), lg.begin(), lg.end());
        }
        set_fused_decode(was);
        return all;
    };
    const std::vector<float> a = run(false), b = run(true);
    bool finite = true;
    for (float v : b) finite = finite && std::isfinite(v);
    snprintf(buf, sizeof buf, "logits of %zu rows identical (max |diff| %.1e)", a.size() / V, max_abs_diff(a, b));
    report(finite && same_bits(a, b),
           "fused decode " + path.substr(path.find_last_of('/') + 1) + " kv " + kv_elem_name(elem) +
               (exact ? " exact" : " int8") + kernel_tag(" mmvq", ""),
           buf);
}

}  // namespace

int main(int argc, char** argv) {
    g_report_width = 48;
    std::vector<std::pair<std::string, double>> models;
    std::string synth_dir;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--model" && i + 1 < argc) {
            std::string v = argv[++i];
            double tol = 1e-4;
            if (const size_t colon = v.rfind(':'); colon != std::string::npos) {
                tol = std::stod(v.substr(colon + 1));
                v = v.substr(0, colon);
            }
            models.push_back({v, tol});
        } else if (a == "--synthetic" && i + 1 < argc) {
            synth_dir = argv[++i];
        } else {
            fprintf(stderr, "usage: rotor-check-cuda [--model PATH[:TOL]]... [--synthetic DIR]\n");
            return 2;
        }
    }
    try {
        const GpuInfo g = select_gpu(0);
        printf("GPU: %s (sm_%d%d, %d SMs, %.1f GiB); built for %s\n", g.name.c_str(), g.cc_major, g.cc_minor,
               g.sm_count, g.total_bytes / 1073741824.0, built_architectures().c_str());
        set_attention_prefill_min_run(16);  // the short prompts here run the prefill kernel too (default 128)
        printf("CUDA weight formats: %s\n", supported_weight_types().c_str());

        // the defaults, restored after each check of a switched path
        const int kernel_default = matvec_kernel();
        const bool fused_default = fused_decode();
        for (uint32_t id = 0; id < kGgmlTypeCount; id++) {
            const FormatInfo* f = format_info(id);
            if (!f || !weight_type_supported(f->type)) continue;
            check_matmul(f->type, 1001, 4096, 1);
            check_matmul(f->type, 301, 2048, 11);  // token groups of 8 + 3
            check_get_rows(f->type, 512);
            const int default_kernel = matvec_kernel();
            for (int kernel : {2, 3, 4}) {
                if (!matmul_has_int8_path(f->type)) break;
                set_matvec_kernel(kernel);
                const int64_t be = f->block_elems;
                check_matmul_q8(f->type, 1001, 4096, 1);
                check_matmul_q8(f->type, 301, 2048, 11);  // token groups of 8 + 3
                // 1..8 tokens, odd row counts: 16-byte copies (q8_0 / q4_0 rows end inside a span),
                // then rows of 2048 + 3 blocks (K-quants end inside a span; narrower copies)
                for (int nt = 1; nt <= 8; nt++) check_matmul_q8(f->type, nt % 2 ? 37 : 6, 4096 + (be == 32 ? 256 : 0), nt);
                for (int nt = 1; nt <= 8; nt++) check_matmul_q8(f->type, nt % 2 ? 21 : 10, 2048 + 3 * be, nt);
                for (int nt : {1, 3}) check_matmul_q8(f->type, 129, 4096, nt, 1);  // one row per warp
                for (int nt : {1, 4}) check_matmul_q8(f->type, 129, 4096, nt, 2);  // two rows per warp
                for (int nt : {1, 2, 6}) check_matmul_q8(f->type, 4001, 4096 + 3 * be, nt, 0, false);  // one row group per warp
                check_matmul_q8(f->type, 77, 5120, 2);    // q6_K rows 8-byte aligned
                check_matmul_q8(f->type, 33, 3 * be, 3);  // q8_0 / q4_0 / q6_K rows 2-byte aligned
                // one token (kernel 4's tiles of whole rows): rows 2-byte aligned, one row per tile
                // (17408 columns: 14 KB of q6_K), a shared launch's worth of row counts
                check_matmul_q8(f->type, 33, 3 * be, 1);
                check_matmul_q8(f->type, 77, 5120, 1);
                check_matmul_q8(f->type, 150, 17408, 1);
                // kernel 3's spans cut between warps: 3 groups of 68 blocks over one block's 8 warps
                for (int nt : {1, 2}) check_matmul_q8(f->type, 5, 17408, nt);
            }
            set_matvec_kernel(default_kernel);
            if (f->type == GgmlType::Q4_K || f->type == GgmlType::Q6_K) {  // the tensor-core kernel for 9-16 tokens (matvec_mma.h)
                const int was = matvec_mma_mode();
                set_matvec_mma(true);
                for (int nt : {9, 12, 16}) check_matmul_q8(f->type, 1001, 4096, nt);
                for (int nt = 9; nt <= 16; nt++) check_matmul_q8(f->type, nt % 2 ? 37 : 16, 2048 + 3 * 256, nt);
                check_matmul_q8(f->type, 5, 256, 13);       // fewer rows than a tile, one super-block
                check_matmul_q8(f->type, 19, 256 * 7, 16);  // q6_K rows that start at every 2-byte offset
                check_matmul_q8(f->type, 4001, 5120, 16);   // many tiles
                check_matmul_q8(f->type, 301, 2048, 27);    // 16 + 11 tokens: two passes
                if (matvec_mma_f16_applies(f->type, 16)) {  // version 3 (f16): 1 token never splits, 2-16 may
                    for (int nt : {1, 2, 5, 8}) check_matmul_q8(f->type, 133, 4096 + 256, nt);
                    check_matmul_q8(f->type, 30001, 512, 12);  // hundreds of row blocks: one range each
                    check_matmul_q8(f->type, 4001, 5120, 9);   // split into ranges, last row block short
                    check_matmul_q8(f->type, 64, 256 * 68, 16);  // one row block, many ranges
                    set_matvec_mma_f16(false);  // version 2 still runs where version 3 is off
                    check_matmul_q8(f->type, 1001, 4096, 16);
                    set_matvec_mma_f16(true);
                }
                set_matvec_mma_mode(was);
            }
            if (f->type == GgmlType::F32 || f->type == GgmlType::F16 || f->type == GgmlType::BF16) {
                check_matmul(f->type, 77, 172, 3);  // rows that are not a multiple of 8 (stories260K)
                check_get_rows(f->type, 172);
            }
        }
        const int default_kernel = matvec_kernel();
        for (int kernel : {2, 3, 4}) {
            set_matvec_kernel(kernel);
            for (int nt : {1, 3, 8}) check_matmul_multi(nt);
        }
        set_matvec_kernel(default_kernel);
        {  // the tensor-core kernel shares its launch between matrices too
            const int was = matvec_mma_mode();
            set_matvec_mma(true);
            for (int nt : {12, 16}) check_matmul_multi(nt);
            set_matvec_mma_mode(was);
        }
        check_elementwise();
        check_fused();
        for (KvElem e :
             {KvElem::F32,       KvElem::F16,       KvElem::Q8_0,   KvElem::Q4_0,      KvElem::Q8_0H,
              KvElem::Q4_0H,     KvElem::Q4_1,      KvElem::Q5_0,   KvElem::Q5_1,      KvElem::IQ4_NL,
              KvElem::Q4_1H,     KvElem::Q5_0H,     KvElem::Q5_1H,  KvElem::IQ4_NLH,   KvElem::PLANAR3_0,
              KvElem::ISO3_0,    KvElem::PLANAR4_0, KvElem::ISO4_0, KvElem::PLANAR3_C, KvElem::ISO3_C,
              KvElem::PLANAR4_C, KvElem::ISO4_C})
            for (int hd : {64, 80, 96, 128, 256, 512})
                if (kv_elem_supports(e, hd)) check_attention(hd, hd, 8, 2, e);
        // tcq: the CPU encodes every row again (a Viterbi search per row), so fewer sizes per type
        check_attention(64, 64, 8, 2, KvElem::TCQ2);
        check_attention(128, 128, 8, 2, KvElem::TCQ3);
        check_attention(256, 256, 8, 2, KvElem::TCQ4);
        check_attention(16, 16, 4, 2, KvElem::TCQ4);  // element-strided rows, codes wrapping within a word
        check_attention(512, 512, 8, 1, KvElem::TCQ3);
        check_attention(128, 64, 8, 2, KvElem::TCQ2);  // different K and V head sizes
        // tbq: each width and scale rule, heads of 128 / 256 on the tensor-core decode kernel, the rest on
        // the CUDA-core one
        check_attention(128, 128, 8, 2, KvElem::TBQ2);
        check_attention(256, 256, 8, 2, KvElem::TBQ3);
        check_attention(128, 128, 8, 2, KvElem::TBQ4NC);
        check_attention(256, 256, 12, 2, KvElem::TBQ3NC);
        check_attention(64, 64, 8, 2, KvElem::TBQ4);
        check_attention(512, 512, 8, 1, KvElem::TBQ2NC);
        check_attention(16, 16, 4, 2, KvElem::TBQ3);  // element-strided rows
        check_attention(128, 64, 8, 2, KvElem::TBQ4);  // different K and V head sizes
        check_attention(192, 128, 8, 2, KvElem::Q8_0);  // q8_0 with K and V head sizes that differ
        check_attention(192, 128, 4, 4, KvElem::F16);  // different K and V head sizes
        check_attention(128, 128, 24, 2, KvElem::F16);  // 12 query heads per KV head: two blocks per group
        check_attention(512, 512, 8, 1, KvElem::F32);   // Gemma-4-like global layer, 8 per KV head

        if (!synth_dir.empty()) {
            // Small random models of each architecture in several weight formats (our GGUF writer).
            struct S {
                const char* arch;
                const char* mix;
                double tol;
            };
            // The CPU quantizes activations to Q8 for quantized weights; the GPU keeps them f32.
            // Against the CPU as stored the difference is the CPU's Q8 rounding of activations (a few
            // percent on random weights); against the dequantized weights it must vanish.
            const S cases[] = {{"llama", "q4_k_m", 0.1}, {"qwen2", "q8_0", 0.1}, {"qwen3", "q4_k_m", 0.1},
                               {"llama", "f16", 1e-4},   {"qwen3", "bf16", 1e-4}, {"llama", "q5_k", 0.1},
                               {"qwen2", "iq4_nl", 0.1}, {"llama", "q4_1", 0.1},  {"qwen3", "q2_k", 0.1},
                               {"llama", "q3_k", 0.1},   {"qwen2", "q5_0", 0.1},  {"llama", "q5_1", 0.1},
                               {"qwen3", "q6_k", 0.1},   {"llama", "iq4_xs", 0.1}, {"qwen2", "q4_0", 0.1}};
            for (const S& sc : cases) {
                ModelShape sh;
                sh.name = std::string("tiny-") + sc.arch;
                sh.arch = sc.arch;
                sh.n_layer = 3;
                sh.n_embd = 512;
                sh.n_ff = 1536;
                sh.n_head = 8;
                sh.n_head_kv = 2;
                sh.head_dim = 64;
                sh.n_vocab = 3000;
                sh.n_ctx = 4096;
                sh.rope_base = 10000.0f;
                sh.qkv_bias = std::string(sc.arch) == "qwen2";
                const std::string path = synth_dir + "/" + sh.name + "-" + sc.mix + ".gguf";
                write_synthetic_model(sh, parse_quant_mix(sc.mix), path, 7);
                check_model(path, sc.tol, KvElem::F32, true);
                // The default path's prompt batch (36 tokens) runs on the tensor cores with f16 inputs
                // (matmul_tc: 2e-4..5e-4 relative), so float weights get that bound there.
                check_model(path, std::max(sc.tol, 2e-3), KvElem::F32, false);
                // the switched-off paths (kernels.h): fused decode bit for bit, then with kernel 2 vs the CPU
                check_fused_forward(path, KvElem::F32, false);
                check_fused_forward(path, KvElem::Q8_0H, false);
                check_fused_forward(path, KvElem::F16, true);
                if (std::string(sc.mix) == "q4_k_m") {  // tcq / tbq end to end on a head of 64
                    check_model(path, 2e-2, KvElem::TCQ4, true);
                    check_fused_forward(path, KvElem::TCQ2, false);
                    check_model(path, 2e-2, KvElem::TBQ3, true);
                    check_fused_forward(path, KvElem::TBQ4NC, false);
                }
                set_matvec_kernel(2);
                set_fused_decode(true);
                check_model(path, std::max(sc.tol, 2e-3), KvElem::F32, false);
                set_matvec_kernel(3);  // direct loads (q4_K, q5_K, q6_K; the rest as kernel 2)
                check_model(path, std::max(sc.tol, 2e-3), KvElem::F32, false);
                set_matvec_kernel(4);  // bulk tiles (one token of q4_K, q5_K, q6_K; the rest as kernel 3)
                check_model(path, std::max(sc.tol, 2e-3), KvElem::F32, false);
                set_fused_decode(fused_default);
                set_matvec_kernel(kernel_default);
            }
        }
        if (!models.empty()) {
            check_graphs(models.back().first);
            set_matvec_kernel(2);
            set_fused_decode(true);
            check_graphs(models.back().first);
            set_fused_decode(fused_default);
            set_matvec_kernel(kernel_default);
        }
        for (const auto& [path, tol] : models) {
            check_model(path, tol, KvElem::F32, true);
            check_model(path, tol, KvElem::F16, true);
            check_model(path, tol, KvElem::Q8_0, true);
            check_model(path, tol, KvElem::Q4_0, true);
            check_model(path, tol, KvElem::Q8_0H, true);
            check_model(path, tol, KvElem::Q4_0H, true);
            check_model(path, tol, KvElem::TCQ3, true);  // refused by name where heads are below 16
            check_model(path, tol, KvElem::TCQ4, true);
            check_model(path, tol, KvElem::TBQ4, true);
            check_model(path, tol, KvElem::TBQ3NC, true);
            // the other blocks of 32: prompts on the prefill kernel (q5_0, iq4_nl) or the split-K one (q4_1,
            // q5_1), decode on the tensor-core kernel where heads are 64 / 128 / 256
            check_model(path, tol, KvElem::Q4_1, true);
            check_model(path, tol, KvElem::Q5_0H, true);
            check_model(path, tol, KvElem::Q5_1H, true);
            check_model(path, tol, KvElem::IQ4_NLH, true);
            // RotorQuant (heads of 128: the kjv models; stories260K's are refused by name)
            for (KvElem e : {KvElem::PLANAR3_0, KvElem::ISO3_0, KvElem::PLANAR4_0, KvElem::ISO4_0,
                             KvElem::PLANAR3_C, KvElem::ISO4_C})
                check_model(path, tol, e, true);
            check_model(path, std::max(tol, 5e-3), KvElem::F16, false);
            check_fused_forward(path, KvElem::F16, false);
            check_fused_forward(path, KvElem::TCQ3, false);  // returns where the heads are refused
            check_fused_forward(path, KvElem::Q4_0H, false);
            check_fused_forward(path, KvElem::Q8_0, true);
            check_fused_forward(path, KvElem::IQ4_NL, false);
            check_fused_forward(path, KvElem::Q5_1, false);
            check_fused_forward(path, KvElem::ISO3_0,
                                false);  // qkv_prep leaves RotorQuant's rotation to the caller
            set_matvec_kernel(2);
            set_fused_decode(true);
            check_fused_forward(path, KvElem::F16, false);  // kernel 2 on both sides
            check_model(path, std::max(tol, 5e-3), KvElem::F16, false);
            check_model(path, tol, KvElem::Q4_0H, true);
            set_matvec_kernel(3);
            check_fused_forward(path, KvElem::F16, false);
            check_model(path, std::max(tol, 5e-3), KvElem::F16, false);
            set_matvec_kernel(4);
            check_fused_forward(path, KvElem::F16, false);
            set_fused_decode(fused_default);
            set_matvec_kernel(kernel_default);
        }
    } catch (const std::exception& e) {
        printf("FAIL  %s\n", e.what());
        g_failed++;
    }
    printf("\n%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
