// rotor-check-moe: the routed experts on the GPU (src/cuda/moe.cu) against a CPU reference, and their
// decode benchmark, on the GPU machine.
//   rotor-check-moe [--quick] [--bench-only] [--bench SHAPE N_TOK]
// Router: moe_route against rotor's route_top_k (model/forward_moe.cpp): ids exact, weights to 1e-6,
// with and without gemma4's per-expert scale, on Gaussian logits and on logits full of exact ties.
// Experts: MoeRunner::run on fresh random inputs, the output poisoned with NaN first, against a CPU
// FFN written here from the formats' reference dequantizers, for 1, 2, 3, 8 tokens (decode: the
// device-built table, also replayed from a CUDA graph) and 9, 33, 200 (prefill: host grouping; with
// the tensor-core experts and without), top 2 and 8 of 8 and 128 experts, separate and fused
// gate/up, SiLU and GELU, f32 / f16 / q8_0 / q4_K / q5_0 / q6_K / q4_1 / q5_1 experts and the stock
// mixes (qwen35moe's q4_K + q6_K down, gemma4's q8_0 + q5_0 down, gate and up of two formats).
// Also: the q5_0 int8 unit on the CPU, run-to-run determinism. Prints one line per check, then the
// benchmark table; exit status 1 if any check fails.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda/cuda_util.h"
#include "cuda/kernels.h"
#include "cuda/moe.h"
#include "cuda/moe_units.cuh"
#include "formats/formats.h"
#include "model/forward.h"
#include "model/forward_ops.h"
#include "gpu_check.h"

using namespace rotor;
using namespace rotor::cuda;
using namespace rotor::gpu_check;

namespace {



std::string tname(GgmlType t) { return std::string(format_info(t).name); }

template <class T>
DeviceBuffer upload(const std::vector<T>& h) {
    DeviceBuffer b(std::max<size_t>(h.size() * sizeof(T), 16));
    if (!h.empty()) b.upload(h.data(), h.size() * sizeof(T));
    return b;
}
template <class T>
std::vector<T> download(const DeviceBuffer& b, size_t n) {
    ROTOR_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> h(n);
    if (n) b.download(h.data(), n * sizeof(T));
    return h;
}

template <class F>
void parallel_for(int n, F&& f) {
    const int nt = (int)std::max(1u, std::min(32u, std::thread::hardware_concurrency()));
    std::vector<std::thread> th;
    for (int w = 0; w < nt; w++)
        th.emplace_back([&, w] {
            for (int i = w; i < n; i += nt) f(i);
        });
    for (auto& t : th) t.join();
}

// ---------------------------------------------------------------- the q5_0 int8 unit on the CPU

// Unit<Q5_0> (moe_units.cuh) dotted with int8 activations against the reference dequantizer times
// the same activations: equal to float rounding (the unit's codes are exact integers).
void check_q5_0_unit() {
    const int n_blocks = 512;
    std::vector<float> w = gaussian(32 * n_blocks, 0.05f);
    std::vector<uint8_t> q(sizeof(block_q5_0) * n_blocks + 16, 0);
    quantize_row(GgmlType::Q5_0, w.data(), q.data(), 32 * n_blocks);
    std::vector<float> deq(32 * n_blocks);
    dequantize_row(GgmlType::Q5_0, q.data(), deq.data(), 32 * n_blocks);
    std::uniform_int_distribution<int> code(-127, 127);
    double worst = 0;
    for (int b = 0; b < n_blocks; b++) {
        mmvq::Unit<GgmlType::Q5_0>::W u;
        mmvq::Unit<GgmlType::Q5_0>::load(q.data() + b * sizeof(block_q5_0), 0, u);
        mmvq::UnitAct<GgmlType::Q5_0> a;
        int8_t c[32];
        int sum = 0;
        for (int i = 0; i < 32; i++) sum += (c[i] = (int8_t)code(rng));
        memcpy(a.a, c, 32);
        a.d[0] = 0.01f;
        a.s[0] = 0.01f * (float)sum;
        const double got = mmvq::unit_dot<GgmlType::Q5_0>(u, a);
        double ref = 0, mag = 0;
        for (int i = 0; i < 32; i++) {
            ref += (double)deq[b * 32 + i] * 0.01 * c[i];
            mag += std::fabs((double)deq[b * 32 + i] * 0.01 * c[i]);
        }
        worst = std::max(worst, std::fabs(got - ref) / (mag + 1e-30));
    }
    char d[96];
    snprintf(d, sizeof d, "max |err| / sum|w*x| = %.2e over %d blocks", worst, n_blocks);
    report(worst < 1e-6, "q5_0 int8 unit (CPU) vs dequantize_row", d);  // float rounding of a 32-term sum
}

// ---------------------------------------------------------------- router

void check_route(int n_tok, int n_expert, int top_k, bool scaled, bool ties) {
    std::vector<float> logits = gaussian((size_t)n_tok * n_expert, 2.0f);
    if (ties)  // multiples of 1/4 in a small range: many exactly equal probabilities
        for (auto& v : logits) v = std::round(v * 0.5f) * 0.25f;
    std::vector<float> scale;
    if (scaled) {
        std::uniform_real_distribution<float> u(0.5f, 1.5f);
        scale.resize((size_t)n_expert);
        for (auto& v : scale) v = u(rng);
    }
    DeviceBuffer dl = upload(logits), ds = upload(scale.empty() ? std::vector<float>(1) : scale);
    DeviceBuffer di((size_t)n_tok * top_k * 4), dw((size_t)n_tok * top_k * 4);
    ROTOR_CUDA_CHECK(cudaMemset(di.get(), 0xFF, di.bytes()));
    ROTOR_CUDA_CHECK(cudaMemset(dw.get(), 0xFF, dw.bytes()));
    moe_route(dl.get<float>(), n_tok, n_expert, top_k, scaled ? ds.get<float>() : nullptr, di.get<int32_t>(),
              dw.get<float>(), nullptr);
    const std::vector<int32_t> ids = download<int32_t>(di, (size_t)n_tok * top_k);
    const std::vector<float> wts = download<float>(dw, (size_t)n_tok * top_k);
    const std::vector<float> probs = download<float>(dl, logits.size());

    std::vector<float> cpu = logits;
    const ExpertRouting routed = route_top_k(cpu.data(), n_tok, n_expert, top_k, scaled ? scale.data() : nullptr);
    // the CPU's choice per token, in descending probability (ties to the lower id), with its weight
    std::vector<std::vector<std::pair<int, float>>> per_tok((size_t)n_tok);
    for (int e = 0; e < n_expert; e++)
        for (const auto& [t, wgt] : routed[(size_t)e]) per_tok[(size_t)t].push_back({e, wgt});
    int id_mismatch = 0;
    double w_err = 0, p_err = 0;
    for (int t = 0; t < n_tok; t++) {
        auto& v = per_tok[(size_t)t];
        const float* r = &cpu[(size_t)t * n_expert];
        std::sort(v.begin(), v.end(), [&](const auto& a, const auto& b) {
            return r[a.first] > r[b.first] || (r[a.first] == r[b.first] && a.first < b.first);
        });
        for (int k = 0; k < top_k; k++) {
            const size_t i = (size_t)t * top_k + k;
            if (k >= (int)v.size() || ids[i] != v[(size_t)k].first) {
                id_mismatch++;
                continue;
            }
            const double err = std::fabs((double)wts[i] - v[(size_t)k].second);
            w_err = std::isfinite(wts[i]) ? std::max(w_err, err) : INFINITY;
        }
    }
    for (size_t i = 0; i < cpu.size(); i++)
        p_err = std::isfinite(probs[i]) ? std::max(p_err, (double)std::fabs(probs[i] - cpu[i])) : INFINITY;
    char d[128];
    snprintf(d, sizeof d, "id mismatches %d, max |w - cpu| %.1e, max |prob - cpu| %.1e", id_mismatch, w_err, p_err);
    // weights and probabilities: both sides round the same double quotients to float; 1e-6 leaves
    // room for the exp's last bit
    report(id_mismatch == 0 && w_err <= 1e-6 && p_err <= 1e-6,
           "moe_route " + std::to_string(n_tok) + " tok, top " + std::to_string(top_k) + " of " +
               std::to_string(n_expert) + (scaled ? ", scaled" : "") + (ties ? ", ties" : ""),
           d);
}

// ---------------------------------------------------------------- experts

struct Config {
    const char* name;
    bool fused, gelu;
    GgmlType tg, tu, td;  // gate (or gate_up), up (unused when fused), down
    int n_embd, n_ff;
};

// What the GPU's int8 path reads (moe.cu int8_reads; every buffer here is cudaMalloc-aligned).
bool gpu_int8(GgmlType t, int64_t cols) {
    const bool unit = t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::Q5_0 || t == GgmlType::Q4_K ||
                      t == GgmlType::Q5_K || t == GgmlType::Q6_K;
    return unit && cols % 32 == 0 && cols % format_info(t).block_elems == 0;
}

// Random weights (Gaussian, sigma 0.05) of n_mat stacked matrices quantized to t, and their
// dequantized values.
void make_weights(GgmlType t, int64_t rows, int64_t cols, std::vector<uint8_t>& q, std::vector<float>& deq) {
    const size_t rb = row_bytes(t, (uint64_t)cols);
    q.assign(rb * rows, 0);
    deq.assign((size_t)rows * cols, 0.0f);
    const std::vector<float> w = gaussian((size_t)rows * cols, 0.05f);
    const int64_t per = 64;
    parallel_for((int)((rows + per - 1) / per), [&](int i) {
        for (int64_t r = i * per; r < std::min(rows, (i + 1) * per); r++) {
            const float* src = &w[(size_t)r * cols];
            if (t == GgmlType::F32)
                memcpy(q.data() + r * rb, src, rb);
            else
                quantize_row(t, src, q.data() + r * rb, cols);
            dequantize_row(t, q.data() + r * rb, &deq[(size_t)r * cols], cols);
        }
    });
}

struct Experts {
    Config c;
    int n_expert = 0;
    std::vector<float> g, u, d;  // dequantized: [e][n_ff][n_embd] gate, up; [e][n_embd][n_ff] down
    DeviceBuffer bg, bu, bd;
    ExpertWeights w;
};

void make_experts(const Config& c, int n_expert, Experts& X) {
    X.c = c;
    X.n_expert = n_expert;
    const int E = c.n_embd, F = c.n_ff;
    std::vector<uint8_t> q;
    std::vector<float> deq;
    if (c.fused) {
        make_weights(c.tg, (int64_t)n_expert * 2 * F, E, q, deq);
        X.g.resize((size_t)n_expert * F * E);
        X.u.resize((size_t)n_expert * F * E);
        for (int e = 0; e < n_expert; e++) {
            const float* src = &deq[(size_t)e * 2 * F * E];
            std::copy(src, src + (size_t)F * E, &X.g[(size_t)e * F * E]);
            std::copy(src + (size_t)F * E, src + (size_t)2 * F * E, &X.u[(size_t)e * F * E]);
        }
        X.bg = upload(q);
        X.w.gate_up = {c.tg, X.bg.get(), 2 * (int64_t)F, E};
    } else {
        make_weights(c.tg, (int64_t)n_expert * F, E, q, X.g);
        X.bg = upload(q);
        make_weights(c.tu, (int64_t)n_expert * F, E, q, X.u);
        X.bu = upload(q);
        X.w.gate = {c.tg, X.bg.get(), F, E};
        X.w.up = {c.tu, X.bu.get(), F, E};
    }
    make_weights(c.td, (int64_t)n_expert * E, F, q, X.d);
    X.bd = upload(q);
    X.w.down = {c.td, X.bd.get(), E, F};
    X.w.n_expert = n_expert;
    X.w.n_ff = F;
    X.w.n_embd = E;
    X.w.gelu = c.gelu;
}

// The GPU's activation quantization (matvec_q8.cu quantize_kernel), dequantized: per 32, d =
// max|x| / 127, codes round(x * (1 / d)) in float.
void q8_round_trip(float* x, int64_t n) {
    for (int64_t b = 0; b < n; b += 32) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = std::max(amax, std::fabs(x[b + i]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int i = 0; i < 32; i++) x[b + i] = d * std::round(x[b + i] * id);
    }
}

// out[t] = sum_k w[t][k] FFN_ids[t][k](x[t]), in double from the dequantized weights. mirror: the
// activations going into int8 matrices rounded as the GPU rounds them (x for gate / up, h for down).
std::vector<float> reference(const Experts& X, const std::vector<float>& x, int n_tok, int top_k,
                             const std::vector<int32_t>& ids, const std::vector<float>& wts, bool mirror) {
    const int E = X.c.n_embd, F = X.c.n_ff;
    const bool fused = X.c.fused;
    const bool q8_g = mirror && gpu_int8(X.c.tg, E), q8_u = mirror && gpu_int8(fused ? X.c.tg : X.c.tu, E);
    const bool q8_d = mirror && gpu_int8(X.c.td, F);
    std::vector<float> out((size_t)n_tok * E, 0.0f);
    parallel_for(n_tok, [&](int t) {
        std::vector<float> xq(x.begin() + (size_t)t * E, x.begin() + (size_t)(t + 1) * E);
        const std::vector<float> xf = xq;
        q8_round_trip(xq.data(), E);
        std::vector<float> h((size_t)F);
        std::vector<double> acc((size_t)E, 0.0);
        for (int k = 0; k < top_k; k++) {
            const int e = ids[(size_t)t * top_k + k];
            const float* xg = q8_g ? xq.data() : xf.data();
            const float* xu = q8_u ? xq.data() : xf.data();
            for (int r = 0; r < F; r++) {
                double g = 0, u = 0;
                const float* wg = &X.g[((size_t)e * F + r) * E];
                const float* wu = &X.u[((size_t)e * F + r) * E];
                for (int c = 0; c < E; c++) g += (double)wg[c] * xg[c], u += (double)wu[c] * xu[c];
                h[(size_t)r] = (X.c.gelu ? ops::gelu_tanh((float)g) : ops::silu((float)g)) * (float)u;
            }
            if (q8_d) q8_round_trip(h.data(), F);
            const double wk = wts[(size_t)t * top_k + k];
            for (int r = 0; r < E; r++) {
                const float* wd = &X.d[((size_t)e * E + r) * F];
                double s = 0;
                for (int c = 0; c < F; c++) s += (double)wd[c] * h[(size_t)c];
                acc[(size_t)r] += wk * s;
            }
        }
        for (int r = 0; r < E; r++) out[(size_t)t * E + r] = (float)acc[(size_t)r];
    });
    return out;
}

// worst over tokens of |got - ref| / |ref| (L2 over the token's outputs); infinity if any is not finite
double worst_token_error(const std::vector<float>& got, const std::vector<float>& ref, int n_tok, int n) {
    double worst = 0;
    for (int t = 0; t < n_tok; t++) {
        double e2 = 0, r2 = 0;
        for (int j = 0; j < n; j++) {
            const double g = got[(size_t)t * n + j], r = ref[(size_t)t * n + j];
            if (!std::isfinite(g)) return INFINITY;
            e2 += (g - r) * (g - r);
            r2 += r * r;
        }
        worst = std::max(worst, std::sqrt(e2 / std::max(r2, 1e-30)));
    }
    return worst;
}

// Tolerances, per token, relative L2 of the output:
//  - against the plain reference (f32 x and h): when a matrix takes the int8 path, its input is
//    rounded to int8 per 32 (relative RMS error about 0.5% for Gaussian x, about 1% for the heavier-
//    tailed h = act(gate) * up), so the output is off by about 1%: 3e-2. Exact kernels: f32
//    accumulation only: 1e-4. Prefill experts on tensor cores round x, h and the weights to f16
//    (2e-4 to 5e-4 per matmul, matmul_tc.h): 3e-3 where no int8 is involved.
//  - against the mirror reference (the GPU's own int8 rounding of x and h): what is left is float
//    accumulation order, plus the rare h code that lands on the other side of a rounding boundary
//    because h differs in its last bits (one code of one pair: about 5e-4 of the token's norm): 3e-3.
constexpr double kTolInt8 = 3e-2, kTolExact = 1e-4, kTolTc = 3e-3, kTolMirror = 3e-3;

void check_experts(Experts& X, int n_tok, int top_k, MoeRunner& runner) {
    const Config& c = X.c;
    const int E = c.n_embd;
    const bool any_int8 = gpu_int8(c.tg, E) || (!c.fused && gpu_int8(c.tu, E)) || gpu_int8(c.td, c.n_ff);
    // routing from the GPU router (checked above) on random logits
    std::vector<float> logits = gaussian((size_t)n_tok * X.n_expert, 1.5f);
    DeviceBuffer dl = upload(logits), di((size_t)n_tok * top_k * 4), dw((size_t)n_tok * top_k * 4);
    moe_route(dl.get<float>(), n_tok, X.n_expert, top_k, nullptr, di.get<int32_t>(), dw.get<float>(), nullptr);
    const std::vector<int32_t> ids = download<int32_t>(di, (size_t)n_tok * top_k);
    const std::vector<float> wts = download<float>(dw, (size_t)n_tok * top_k);
    const std::vector<float> x = gaussian((size_t)n_tok * E);
    DeviceBuffer dx = upload(x), dout((size_t)n_tok * E * 4);

    auto run_once = [&](int tc_min) {
        runner.set_tc_min_tokens(tc_min);
        ROTOR_CUDA_CHECK(cudaMemset(dout.get(), 0xFF, dout.bytes()));  // NaN
        runner.run(X.w, dx.get<float>(), n_tok, di.get<int32_t>(), dw.get<float>(), dout.get<float>(), nullptr);
        return download<float>(dout, (size_t)n_tok * E);
    };
    const std::string what = std::string(c.name) + " " + std::to_string(X.n_expert) + "e top" +
                             std::to_string(top_k) + " x" + std::to_string(n_tok);
    const std::vector<float> plain = reference(X, x, n_tok, top_k, ids, wts, false);
    const std::vector<float> mirror = any_int8 ? reference(X, x, n_tok, top_k, ids, wts, true) : plain;
    char d[200];
    if (n_tok <= 8) {
        const std::vector<float> got = run_once(32);
        const double e_plain = worst_token_error(got, plain, n_tok, E);
        const double e_mirror = worst_token_error(got, mirror, n_tok, E);
        snprintf(d, sizeof d, "rel L2 %.1e (mirror %.1e)", e_plain, e_mirror);
        report(e_plain < (any_int8 ? kTolInt8 : kTolExact) && e_mirror < (any_int8 ? kTolMirror : kTolExact),
               what, d);
        // the same step captured in a CUDA graph and replayed: no host synchronization inside, and
        // the same bits
        cudaStream_t s;
        ROTOR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        ROTOR_CUDA_CHECK(cudaMemset(dout.get(), 0xFF, dout.bytes()));
        cudaGraph_t graph = nullptr;
        cudaGraphExec_t exec = nullptr;
        bool captured = true;
        try {
            ROTOR_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
            runner.run(X.w, dx.get<float>(), n_tok, di.get<int32_t>(), dw.get<float>(), dout.get<float>(), s);
            ROTOR_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
            ROTOR_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
            ROTOR_CUDA_CHECK(cudaGraphLaunch(exec, s));
            ROTOR_CUDA_CHECK(cudaStreamSynchronize(s));
        } catch (const Error& err) {
            captured = false;
            printf("      capture failed: %s\n", err.what());
            cudaGetLastError();
        }
        const std::vector<float> replay = download<float>(dout, (size_t)n_tok * E);
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
        cudaStreamDestroy(s);
        const bool same = captured && memcmp(replay.data(), got.data(), got.size() * 4) == 0;
        report(same, what + " graph replay", same ? "bitwise equal to the direct run" : "DIFFERS");
        return;
    }
    // prefill: with the tensor-core experts (plain reference), then every expert on the int8 / exact
    // kernels (mirror reference), then the first again (determinism)
    const std::vector<float> got_tc = run_once(32);
    const double e_tc = worst_token_error(got_tc, plain, n_tok, E);
    snprintf(d, sizeof d, "rel L2 %.1e", e_tc);
    report(e_tc < (any_int8 ? kTolInt8 : kTolTc), what + " (tc >= 32)", d);
    const std::vector<float> got_k = run_once(1 << 30);
    const double e_plain = worst_token_error(got_k, plain, n_tok, E);
    const double e_mirror = worst_token_error(got_k, mirror, n_tok, E);
    snprintf(d, sizeof d, "rel L2 %.1e (mirror %.1e)", e_plain, e_mirror);
    report(e_plain < (any_int8 ? kTolInt8 : kTolExact) && e_mirror < (any_int8 ? kTolMirror : kTolExact),
           what + " (no tc)", d);
    const std::vector<float> again = run_once(32);
    const bool same = memcmp(again.data(), got_tc.data(), again.size() * 4) == 0;
    report(same, what + " run twice", same ? "bitwise equal" : "DIFFERS");
}

// ---------------------------------------------------------------- benchmark

struct BenchCase {
    const char* what;
    int n_embd, n_ff, n_expert, top_k;
    bool fused, gelu;
    GgmlType tg, td;
};

void bench(const std::string& only, int only_tok) {
    const BenchCase cases[] = {
        {"gemma4-26B-A4B", 2816, 704, 128, 8, true, true, GgmlType::Q8_0, GgmlType::Q8_0},
        {"qwen3.5-35B-A3B", 2048, 512, 256, 8, false, false, GgmlType::Q4_K, GgmlType::Q6_K},
    };
    printf("\nDecode benchmark: MoeRunner::run (the expert FFNs of one layer, routing given), GPU time per\n");
    printf("call from cudaEvents over 50 calls after 5 warm-up calls, each call on another of 16 random\n");
    printf("routings (so the experts read are mostly not in L2). Bytes: the distinct experts' three\n");
    printf("matrices, averaged over the routings. stream: plain launches; graph: one CUDA graph per call.\n");
    printf("dense us: the dense int8 mat-vec (kernels.h matmul, stream) reading the same bytes as two matrices.\n\n");
    printf("| model shape | experts | n_tok | active MB | stream us | stream GB/s | graph us | graph GB/s | dense us |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    cudaStream_t s;
    ROTOR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    for (const BenchCase& b : cases) {
        if (!only.empty() && std::string(b.what).find(only) == std::string::npos) continue;
        const int E = b.n_embd, F = b.n_ff, NE = b.n_expert;
        const size_t rb_g = row_bytes(b.tg, E), rb_d = row_bytes(b.td, F);
        // contents do not matter for the time: a constant byte (f16 scales 0x1111, small and finite)
        DeviceBuffer gu((size_t)NE * 2 * F * rb_g), dn((size_t)NE * E * rb_d);
        ROTOR_CUDA_CHECK(cudaMemset(gu.get(), 0x11, gu.bytes()));
        ROTOR_CUDA_CHECK(cudaMemset(dn.get(), 0x11, dn.bytes()));
        ExpertWeights w;
        if (b.fused) {
            w.gate_up = {b.tg, gu.get(), 2 * (int64_t)F, E};
        } else {
            w.gate = {b.tg, gu.get(), F, E};
            w.up = {b.tg, gu.get<uint8_t>() + (size_t)NE * F * rb_g, F, E};
        }
        w.down = {b.td, dn.get(), E, F};
        w.n_expert = NE, w.n_ff = F, w.n_embd = E, w.gelu = b.gelu;
        const size_t expert_bytes = 2 * F * rb_g + E * rb_d;
        for (int n_tok : {1, 8}) {
            if (only_tok && n_tok != only_tok) continue;
            constexpr int kRoutings = 16;
            MoeRunner runner(n_tok, b.top_k, E, F);
            std::vector<DeviceBuffer> dids, dwts;
            double distinct = 0;
            for (int r = 0; r < kRoutings; r++) {
                std::vector<float> logits = gaussian((size_t)n_tok * NE, 1.5f);
                DeviceBuffer dl = upload(logits);
                dids.emplace_back((size_t)n_tok * b.top_k * 4);
                dwts.emplace_back((size_t)n_tok * b.top_k * 4);
                moe_route(dl.get<float>(), n_tok, NE, b.top_k, nullptr, dids.back().get<int32_t>(),
                          dwts.back().get<float>(), nullptr);
                std::vector<int32_t> ids = download<int32_t>(dids.back(), (size_t)n_tok * b.top_k);
                std::sort(ids.begin(), ids.end());
                distinct += (double)(std::unique(ids.begin(), ids.end()) - ids.begin()) / kRoutings;
            }
            const std::vector<float> x = gaussian((size_t)n_tok * E);
            DeviceBuffer dx = upload(x), dout((size_t)n_tok * E * 4);
            auto call = [&](int i, cudaStream_t st) {
                runner.run(w, dx.get<float>(), n_tok, dids[(size_t)i % kRoutings].get<int32_t>(),
                           dwts[(size_t)i % kRoutings].get<float>(), dout.get<float>(), st);
            };
            constexpr int kRuns = 50;
            for (int i = 0; i < 5; i++) call(i, s);
            const double ms_stream = event_ms(s, [&] {
                for (int i = 0; i < kRuns; i++) call(i, s);
            });
            // graphs: one per routing (the ids pointer is a launch parameter), replayed in turn
            std::vector<cudaGraphExec_t> execs;
            for (int r = 0; r < kRoutings; r++) {
                cudaGraph_t g;
                cudaGraphExec_t ex;
                ROTOR_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
                call(r, s);
                ROTOR_CUDA_CHECK(cudaStreamEndCapture(s, &g));
                ROTOR_CUDA_CHECK(cudaGraphInstantiate(&ex, g, 0));
                ROTOR_CUDA_CHECK(cudaGraphDestroy(g));
                execs.push_back(ex);
            }
            for (int i = 0; i < 5; i++) ROTOR_CUDA_CHECK(cudaGraphLaunch(execs[(size_t)i % kRoutings], s));
            const double ms_graph = event_ms(s, [&] {
                for (int i = 0; i < kRuns; i++) ROTOR_CUDA_CHECK(cudaGraphLaunch(execs[(size_t)i % kRoutings], s));
            });
            for (auto ex : execs) cudaGraphExecDestroy(ex);
            // baseline: the dense int8 mat-vec (kernels.h matmul) over the same bytes, as one matrix of
            // the active experts' gate|up rows and one of their down matrices side by side, rotated
            // over the expert tensors (so again mostly not in L2)
            const int na = (int)std::lround(distinct);
            DeviceBuffer act(matmul_scratch_bytes(n_tok, (int64_t)na * F) + matmul_scratch_bytes(n_tok, E)),
                gy((size_t)n_tok * na * 2 * F * 4), dy((size_t)n_tok * E * 4), hx((size_t)n_tok * na * F * 4);
            ROTOR_CUDA_CHECK(cudaMemset(hx.get(), 0, hx.bytes()));
            auto dense = [&](int i) {
                const size_t slot = (size_t)(i % std::max(1, NE / na)) * na;  // first expert of the rotation
                matmul(b.tg, gu.get<uint8_t>() + slot * 2 * F * rb_g, (int64_t)na * 2 * F, E, dx.get<float>(), n_tok,
                       gy.get<float>(), s, act.get());
                // down of na experts side by side: rows of na * F elements (the same bytes as na matrices)
                matmul(b.td, dn.get<uint8_t>() + slot * E * rb_d, E, (int64_t)na * F, hx.get<float>(), n_tok,
                       dy.get<float>(), s, act.get());
            };
            for (int i = 0; i < 5; i++) dense(i);
            const double ms_dense = event_ms(s, [&] {
                for (int i = 0; i < kRuns; i++) dense(i);
            });
            const double bytes = distinct * (double)expert_bytes;
            const double us_s = ms_stream * 1e3 / kRuns, us_g = ms_graph * 1e3 / kRuns, us_d = ms_dense * 1e3 / kRuns;
            printf("| %s | %d x %s/%s, top %d | %d | %.1f | %.1f | %.0f | %.1f | %.0f | %.1f |\n", b.what, NE,
                   tname(b.tg).c_str(), tname(b.td).c_str(), b.top_k, n_tok, bytes / 1e6, us_s, bytes / us_s / 1e3,
                   us_g, bytes / us_g / 1e3, us_d);
            fflush(stdout);
        }
    }
    cudaStreamDestroy(s);
}

}  // namespace

int main(int argc, char** argv) {
    g_report_width = 64;
    bool quick = false, bench_only = false;
    std::string only;
    int only_tok = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--bench-only")) bench_only = true;
        else if (!strcmp(argv[i], "--bench") && i + 2 < argc) {  // one benchmark row: shape substring, n_tok
            bench_only = true;
            only = argv[++i];
            only_tok = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: rotor-check-moe [--quick] [--bench-only] [--bench SHAPE N_TOK]\n");
            return 2;
        }
    }
    try {
        int n_dev = 0;
        if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
            fprintf(stderr, "rotor-check-moe: no CUDA device\n");
            return 1;
        }
        if (!bench_only) {
            check_q5_0_unit();
            for (int n_expert : {8, 128, 256})
                for (int top_k : {1, 2, 8})
                    for (int n_tok : {1, 3, 8, 200})
                        for (int flags = 0; flags < 4; flags++)
                            check_route(n_tok, n_expert, top_k, flags & 1, flags & 2);
            check_route(5, 1024, 32, true, false);
            check_route(5, 1000, 32, false, true);

            using G = GgmlType;
            const Config configs[] = {
                {"f32 silu", false, false, G::F32, G::F32, G::F32, 256, 128},
                {"f32 fused gelu", true, true, G::F32, G::F32, G::F32, 256, 128},
                {"f16 fused silu", true, false, G::F16, G::F16, G::F16, 256, 96},
                {"q8_0 silu", false, false, G::Q8_0, G::Q8_0, G::Q8_0, 352, 160},
                {"q8_0 fused gelu", true, true, G::Q8_0, G::Q8_0, G::Q8_0, 352, 160},
                {"q8_0 fused silu", true, false, G::Q8_0, G::Q8_0, G::Q8_0, 352, 160},
                {"q4_K silu", false, false, G::Q4_K, G::Q4_K, G::Q4_K, 512, 256},
                {"q4_K fused gelu", true, true, G::Q4_K, G::Q4_K, G::Q4_K, 512, 256},
                {"q5_0 silu", false, false, G::Q5_0, G::Q5_0, G::Q5_0, 352, 160},
                {"q5_0 fused gelu", true, true, G::Q5_0, G::Q5_0, G::Q5_0, 352, 160},
                {"q6_K silu", false, false, G::Q6_K, G::Q6_K, G::Q6_K, 512, 256},
                {"q6_K fused gelu", true, true, G::Q6_K, G::Q6_K, G::Q6_K, 512, 256},
                {"qwen mix q4_K/q6_K silu", false, false, G::Q4_K, G::Q4_K, G::Q6_K, 512, 256},
                {"gemma mix q8_0/q5_0 fused gelu", true, true, G::Q8_0, G::Q8_0, G::Q5_0, 352, 160},
                {"gate q4_K up q5_K down q4_0 gelu", false, true, G::Q4_K, G::Q5_K, G::Q4_0, 512, 256},
                {"gate q8_0 up q4_1 down q5_1 silu", false, false, G::Q8_0, G::Q4_1, G::Q5_1, 256, 128},
            };
            const int toks_all[] = {1, 2, 3, 8, 9, 33, 200};
            for (const Config& c : configs)
                for (int n_expert : {8, 128}) {
                    Experts X;
                    make_experts(c, n_expert, X);
                    MoeRunner::validate(X.w);
                    for (int top_k : {2, 8}) {
                        MoeRunner runner(200, top_k, c.n_embd, c.n_ff);
                        for (int n_tok : toks_all) {
                            if (quick && n_tok != 1 && n_tok != 8 && n_tok != 33) continue;
                            check_experts(X, n_tok, top_k, runner);
                        }
                    }
                }
            // a runner for decode only (max_tok 4) and its scratch
            {
                MoeRunner small(4, 8, 2816, 704), big(512, 8, 2816, 704);
                char d[96];
                snprintf(d, sizeof d, "device_bytes %.1f MB (max_tok 4), %.1f MB (max_tok 512)",
                         small.device_bytes() / 1e6, big.device_bytes() / 1e6);
                report(small.device_bytes() > 0 && small.device_bytes() < big.device_bytes(), "MoeRunner scratch", d);
            }
            // refusals: a format without a CUDA kernel, a wrong shape
            {
                ExpertWeights w;
                w.n_expert = 4, w.n_ff = 64, w.n_embd = 256;
                DeviceBuffer b(1 << 20);
                w.gate = {GgmlType::IQ2_XXS, b.get(), 64, 256};
                w.up = {GgmlType::Q8_0, b.get(), 64, 256};
                w.down = {GgmlType::Q8_0, b.get(), 256, 64};
                std::string msg;
                try {
                    MoeRunner::validate(w);
                } catch (const Error& e) {
                    msg = e.what();
                }
                report(msg.find("iq2_xxs") != std::string::npos, "refuses iq2_xxs experts", msg);
                w.gate.type = GgmlType::Q8_0;
                w.down.rows_per_expert = 128;
                msg.clear();
                try {
                    MoeRunner::validate(w);
                } catch (const Error& e) {
                    msg = e.what();
                }
                report(msg.find("down") != std::string::npos, "refuses a wrong down shape", msg);
            }
        }
        bench(only, only_tok);
    } catch (const std::exception& e) {
        fprintf(stderr, "rotor-check-moe: %s\n", e.what());
        return 1;
    }
    printf("\n%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
