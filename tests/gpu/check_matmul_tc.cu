// rotor-check-matmul-tc: the tensor-core matmul (cuda/matmul_tc.h) against the CPU, then timed.
//   rotor-check-matmul-tc [--no-bench] [--quick] [--sweep]
// Checks: every weight format with a chunk decoder, on fresh random weights (quantized by the CPU's
// reference quantizer, dequantized by its reference dequantizer) and activations, outputs and
// scratch poisoned with NaN first, against the f64 product on the CPU: shapes with edge tiles in
// rows, tokens and columns, n_tok = 1, 7, 16, 33, 64, 300, 512, every token tile and split-K count
// forced in turn, weights at an address that is not 16-byte aligned, activations from 1e-20 to 1e20
// and beyond f16's range, and the prepare / prepared pair. Error: relative L2 per token (worst token).
// Benchmark: markdown table of time, TFLOP/s and weight GB/s for the Llama-3.1-8B shapes, against the
// mat-vec path (kernels.h matmul with the int8 activations where the format has them).
// --sweep also times every token tile x split-K count on some shapes. Exit status 1 on any failure.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda/cuda_util.h"
#include "cuda/device.h"
#include "cuda/kernels.h"
#include "cuda/matmul_tc.h"
#include "formats/chunk_decode.h"
#include "formats/formats.h"
#include "gpu_check.h"

using namespace rotor;
using namespace rotor::cuda;
using namespace rotor::gpu_check;

namespace {




// f(i) for i in [0, n) on all cores
template <class F>
void parallel_for(int64_t n, F&& f) {
    const int nt = (int)std::max(1u, std::min(32u, std::thread::hardware_concurrency()));
    std::vector<std::thread> th;
    for (int k = 0; k < nt; k++)
        th.emplace_back([&, k] {
            for (int64_t i = k; i < n; i += nt) f(i);
        });
    for (auto& t : th) t.join();
}

std::string type_name(GgmlType t) { return std::string(format_info(t).name); }

// Random weights of type t: rows x cols, quantized by the CPU reference.
std::vector<uint8_t> random_weights(GgmlType t, int64_t rows, int64_t cols) {
    const size_t rb = row_bytes(t, cols);
    std::vector<float> wf = gaussian((size_t)rows * cols, 0.05f);
    std::vector<uint8_t> wq(rb * rows);
    parallel_for(rows, [&](int64_t r) { quantize_row(t, &wf[(size_t)r * cols], wq.data() + r * rb, cols); });
    return wq;
}

// ref[t][r] = sum_c deq(W)[r][c] * x[t][c] in double
std::vector<double> reference(GgmlType t, const std::vector<uint8_t>& wq, int64_t rows, int64_t cols,
                              const std::vector<float>& x, int n_tok) {
    const size_t rb = row_bytes(t, cols);
    std::vector<double> ref((size_t)n_tok * rows);
    parallel_for(rows, [&](int64_t r) {
        std::vector<float> w(cols);
        dequantize_row(t, wq.data() + r * rb, w.data(), cols);
        for (int tk = 0; tk < n_tok; tk++) {
            const float* xt = &x[(size_t)tk * cols];
            double s = 0;
            for (int64_t c = 0; c < cols; c++) s += (double)w[c] * xt[c];
            ref[(size_t)tk * rows + r] = s;
        }
    });
    return ref;
}

// Worst relative L2 error over tokens (a token whose reference is all zeros must come out zero);
// `finite` false if any output is not finite.
double worst_token_error(const std::vector<float>& y, const std::vector<double>& ref, int n_tok, int64_t rows,
                         bool& finite) {
    finite = true;
    double worst = 0;
    for (int tk = 0; tk < n_tok; tk++) {
        double num = 0, den = 0;
        for (int64_t r = 0; r < rows; r++) {
            const double got = y[(size_t)tk * rows + r], want = ref[(size_t)tk * rows + r];
            if (!std::isfinite(got)) finite = false;
            num += (got - want) * (got - want);
            den += want * want;
        }
        worst = std::max(worst, den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0));
    }
    return worst;
}

constexpr double kTol = 2e-3;  // f16 rounding of W and X: about 5e-4 expected

struct CheckOpts {
    int tile = 0, split = 0;  // forced configuration (0: automatic)
    size_t w_offset = 0;      // bytes before W in its allocation (misalignment)
    std::vector<float> token_scale;  // per-token factors on X (empty: 1)
    bool outlier = false;            // one element of each token 1e4 times the rest
    std::string tag;
};

CheckOpts forced(int tile, int split) {
    CheckOpts o;
    o.tile = tile;
    o.split = split;
    return o;
}

void check(GgmlType t, int64_t rows, int64_t cols, int n_tok, const CheckOpts& o = CheckOpts()) {
    const std::vector<uint8_t> wq = random_weights(t, rows, cols);
    std::vector<float> x = gaussian((size_t)n_tok * cols, 1.0f);
    for (int tk = 0; tk < n_tok; tk++) {
        const float s = o.token_scale.empty() ? 1.0f : o.token_scale[tk % o.token_scale.size()];
        for (int64_t c = 0; c < cols; c++) x[(size_t)tk * cols + c] *= s;
        if (o.outlier) x[(size_t)tk * cols + (tk * 37) % cols] *= 1e4f;
    }
    const std::vector<double> ref = reference(t, wq, rows, cols, x, n_tok);

    DeviceBuffer dw(wq.size() + o.w_offset + 16), dx(x.size() * 4), dy((size_t)n_tok * rows * 4);
    dw.upload(wq.data(), wq.size(), o.w_offset);
    dx.upload(x.data(), x.size() * 4);
    const size_t sb = matmul_tc_scratch_bytes(n_tok, cols);
    DeviceBuffer scratch(sb);
    ROTOR_CUDA_CHECK(cudaMemset(dy.get(), 0xFF, (size_t)n_tok * rows * 4));  // NaN
    ROTOR_CUDA_CHECK(cudaMemset(scratch.get(), 0xFF, sb));
    matmul_tc_force_config(o.tile, o.split);
    matmul_tc(t, dw.get<uint8_t>() + o.w_offset, rows, cols, dx.get<float>(), n_tok, dy.get<float>(), nullptr,
              scratch.get(), sb);
    matmul_tc_force_config(0, 0);
    ROTOR_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> y((size_t)n_tok * rows);
    dy.download(y.data(), y.size() * 4);
    bool finite = false;
    const double err = worst_token_error(y, ref, n_tok, rows, finite);
    char d[160];
    snprintf(d, sizeof d, "rel L2 (worst token) %.2e%s", err, finite ? "" : ", NOT FINITE");
    std::string what = "tc " + type_name(t) + " " + std::to_string(rows) + "x" + std::to_string(cols) + " x" +
                       std::to_string(n_tok);
    if (o.tile || o.split) what += " tile " + std::to_string(o.tile) + " split " + std::to_string(o.split);
    if (o.w_offset) what += " W+" + std::to_string(o.w_offset);
    if (!o.tag.empty()) what += " " + o.tag;
    report(finite && err < kTol, what, d);
}

// matmul_tc_prepare once, then matmul_tc_prepared for two matrices: the same bits as matmul_tc.
void check_prepared(int n_tok) {
    const int64_t cols = 1024, rows_a = 300, rows_b = 129;
    const GgmlType ta = GgmlType::Q4_K, tb = GgmlType::Q8_0;
    const std::vector<uint8_t> wa = random_weights(ta, rows_a, cols), wb = random_weights(tb, rows_b, cols);
    const std::vector<float> x = gaussian((size_t)n_tok * cols, 1.0f);
    DeviceBuffer da(wa.size()), db(wb.size()), dx(x.size() * 4);
    da.upload(wa.data(), wa.size());
    db.upload(wb.data(), wb.size());
    dx.upload(x.data(), x.size() * 4);
    const size_t sb = matmul_tc_scratch_bytes(n_tok, cols);
    DeviceBuffer scratch(sb), y1((size_t)n_tok * rows_a * 4), y2((size_t)n_tok * rows_b * 4),
        z1((size_t)n_tok * rows_a * 4), z2((size_t)n_tok * rows_b * 4);
    for (DeviceBuffer* b : {&y1, &y2, &z1, &z2}) ROTOR_CUDA_CHECK(cudaMemset(b->get(), 0xFF, b->bytes()));
    matmul_tc_prepare(dx.get<float>(), n_tok, cols, scratch.get(), nullptr);
    matmul_tc_prepared(ta, da.get(), rows_a, cols, n_tok, y1.get<float>(), nullptr, scratch.get(), sb);
    matmul_tc_prepared(tb, db.get(), rows_b, cols, n_tok, y2.get<float>(), nullptr, scratch.get(), sb);
    matmul_tc(ta, da.get(), rows_a, cols, dx.get<float>(), n_tok, z1.get<float>(), nullptr, scratch.get(), sb);
    matmul_tc(tb, db.get(), rows_b, cols, dx.get<float>(), n_tok, z2.get<float>(), nullptr, scratch.get(), sb);
    ROTOR_CUDA_CHECK(cudaDeviceSynchronize());
    auto get = [](const DeviceBuffer& b) {
        std::vector<uint8_t> h(b.bytes());
        b.download(h.data(), h.size());
        return h;
    };
    const bool same = get(y1) == get(z1) && get(y2) == get(z2);
    std::vector<float> y((size_t)n_tok * rows_a);
    y1.download(y.data(), y.size() * 4);
    bool finite = false;
    const double err = worst_token_error(y, reference(ta, wa, rows_a, cols, x, n_tok), n_tok, rows_a, finite);
    char d[128];
    snprintf(d, sizeof d, "%s matmul_tc; rel L2 %.2e", same ? "identical to" : "DIFFERS from", err);
    report(same && finite && err < kTol, "tc prepare + prepared q4_K, q8_0 x" + std::to_string(n_tok), d);
}

// ---------------------------------------------------------------- benchmark

// Weights of a real shape: 256 random rows quantized once, repeated; several copies so that the
// copies together exceed the L2 cache (each timed run reads the next copy).
struct BenchWeights {
    std::vector<DeviceBuffer> bufs;
    size_t bytes = 0;
    BenchWeights(GgmlType t, int64_t rows, int64_t cols) {
        const int64_t pool = 256;
        const std::vector<uint8_t> wq = random_weights(t, pool, cols);
        const size_t rb = row_bytes(t, cols);
        bytes = rb * rows;
        std::vector<uint8_t> h(bytes);
        for (int64_t r = 0; r < rows; r++) memcpy(h.data() + r * rb, wq.data() + (r % pool) * rb, rb);
        const int copies = (int)std::clamp<size_t>((size_t(256) << 20) / bytes + 1, 1, 8);
        for (int i = 0; i < copies; i++) {
            bufs.emplace_back(bytes);
            bufs.back().upload(h.data(), bytes);
        }
    }
};

// Median over 5 batches of the mean time of one call (µs); each batch runs `reps` calls back to
// back, rotating over the weight copies, between two events.
template <class F>
double time_us(int copies, F&& f, double batch_ms = 20.0) {
    cudaEvent_t e0, e1;
    ROTOR_CUDA_CHECK(cudaEventCreate(&e0));
    ROTOR_CUDA_CHECK(cudaEventCreate(&e1));
    for (int i = 0; i < 2; i++) f(i % copies);  // warm-up
    ROTOR_CUDA_CHECK(cudaEventRecord(e0));
    f(0);
    ROTOR_CUDA_CHECK(cudaEventRecord(e1));
    ROTOR_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    ROTOR_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    const int reps = std::clamp((int)(batch_ms / std::max(ms, 1e-3f)), 3, 200);
    std::vector<double> t;
    for (int b = 0; b < 5; b++) {
        ROTOR_CUDA_CHECK(cudaEventRecord(e0));
        for (int i = 0; i < reps; i++) f(i % copies);
        ROTOR_CUDA_CHECK(cudaEventRecord(e1));
        ROTOR_CUDA_CHECK(cudaEventSynchronize(e1));
        ROTOR_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        t.push_back(ms * 1e3 / reps);
    }
    ROTOR_CUDA_CHECK(cudaGetLastError());
    ROTOR_CUDA_CHECK(cudaEventDestroy(e0));
    ROTOR_CUDA_CHECK(cudaEventDestroy(e1));
    std::sort(t.begin(), t.end());
    return t[2];
}

struct BenchShape {
    const char* what;
    int64_t rows, cols;
};
const BenchShape kShapes[] = {{"8B wq / wo", 4096, 4096},     {"8B gate / up", 14336, 4096},
                               {"8B down", 4096, 14336},        {"8B output", 128256, 4096},
                               {"8B wk / wv", 1024, 4096}};
const GgmlType kBenchTypes[] = {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::F16};

void bench(bool quick, bool sweep) {
    const int max_tok = 512;
    const int64_t max_cols = 14336, max_rows = 128256;
    const std::vector<float> x = gaussian((size_t)max_tok * max_cols, 1.0f);
    DeviceBuffer dx(x.size() * 4), dy((size_t)max_tok * max_rows * 4);
    dx.upload(x.data(), x.size() * 4);
    const size_t sb = matmul_tc_scratch_bytes(max_tok, max_cols);
    DeviceBuffer scratch(sb), act(matmul_scratch_bytes(max_tok, max_cols));

    printf("\nmatmul_tc (f16 tensor cores, mma.sync) against the mat-vec path (kernels.h matmul: int8 dp4a for\n");
    printf("q4_K / q6_K / q8_0, f32 exact for f16; groups of 8 tokens). Time per call, median of 5 batches,\n");
    printf("weights rotated over copies larger than L2; matmul_tc includes the activation pass (prepare).\n\n");
    printf("| matrix | type | rows x cols | weight MB | n_tok | tc us | tc TFLOP/s | tc weight GB/s | mat-vec us | speed-up |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (const BenchShape& sh : kShapes) {
        for (GgmlType t : kBenchTypes) {
            if (quick && t != GgmlType::Q4_K) continue;
            BenchWeights w(t, sh.rows, sh.cols);
            const int copies = (int)w.bufs.size();
            for (int nt : {16, 64, 512}) {
                const double us = time_us(copies, [&](int i) {
                    matmul_tc(t, w.bufs[i].get(), sh.rows, sh.cols, dx.get<float>(), nt, dy.get<float>(), nullptr,
                              scratch.get(), sb);
                });
                const double mv = time_us(copies, [&](int i) {
                    matmul(t, w.bufs[i].get(), sh.rows, sh.cols, dx.get<float>(), nt, dy.get<float>(), nullptr,
                           act.get());
                });
                const double flops = 2.0 * nt * sh.rows * sh.cols;
                printf("| %s | %s | %lldx%lld | %.1f | %d | %.1f | %.1f | %.0f | %.1f | %.1fx |\n", sh.what,
                       type_name(t).c_str(), (long long)sh.rows, (long long)sh.cols, w.bytes / 1e6, nt, us,
                       flops / (us * 1e-6) / 1e12, w.bytes / (us * 1e-6) / 1e9, mv, mv / us);
                fflush(stdout);
            }
        }
    }
    // the activation pass alone
    for (int nt : {16, 512})
        for (int64_t c : {4096, 14336}) {
            const double us = time_us(1, [&](int) { matmul_tc_prepare(dx.get<float>(), nt, c, scratch.get(), nullptr); });
            printf("| prepare (X -> f16) | f32 | %dx%lld | | %d | %.1f | | | | |\n", nt, (long long)c, nt, us);
        }

    if (!sweep) return;
    // where the time goes: the kernel without the decode, without the products, without both
    // (wrong results; timing only), activations prepared beforehand
    printf("\nablation (us, prepared activations): full / no decode / no products / neither\n\n");
    printf("| matrix | type | n_tok | full | no decode | no products | neither |\n|---|---|---|---|---|---|---|\n");
    for (int si = 0; si < 3; si++) {
        const BenchShape& sh = kShapes[si];
        for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::F16}) {
            BenchWeights w(t, sh.rows, sh.cols);
            const int copies = (int)w.bufs.size();
            matmul_tc_prepare(dx.get<float>(), 512, sh.cols, scratch.get(), nullptr);
            for (int nt : {16, 512}) {
                printf("| %s | %s | %d", sh.what, type_name(t).c_str(), nt);
                for (int ab : {0, 1, 2, 3}) {
                    matmul_tc_set_ablation(ab);
                    printf(" | %.1f", time_us(copies, [&](int i) {
                               matmul_tc_prepared(t, w.bufs[i].get(), sh.rows, sh.cols, nt, dy.get<float>(), nullptr,
                                                  scratch.get(), sb);
                           }, 3.0));
                    matmul_tc_set_ablation(0);
                }
                printf(" |\n");
                fflush(stdout);
            }
        }
    }
    printf("\nsweep: token tile x split-K (us, prepared activations; auto = the heuristic's choice)\n\n");
    printf("| matrix | type | n_tok | auto | t32 s1 | t32 s4 | t32 s8 | t32 s16 | t64 s1 | t64 s2 | t64 s4 | t64 s8 | t128 s1 | t128 s2 | t128 s4 | t128 s8 |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int si = 0; si < 3; si++) {
        const BenchShape& sh = kShapes[si];
        for (GgmlType t : {GgmlType::Q4_K, GgmlType::F16}) {
            BenchWeights w(t, sh.rows, sh.cols);
            const int copies = (int)w.bufs.size();
            matmul_tc_prepare(dx.get<float>(), 512, sh.cols, scratch.get(), nullptr);
            for (int nt : {16, 64, 128, 256, 512}) {
                auto run = [&](int tile, int split) {
                    matmul_tc_force_config(tile, split);
                    const double us = time_us(copies, [&](int i) {
                        matmul_tc_prepared(t, w.bufs[i].get(), sh.rows, sh.cols, nt, dy.get<float>(), nullptr,
                                           scratch.get(), sb);
                    }, 3.0);
                    matmul_tc_force_config(0, 0);
                    return us;
                };
                printf("| %s | %s | %d | %.1f", sh.what, type_name(t).c_str(), nt, run(0, 0));
                for (int split : {1, 4, 8, 16}) printf(" | %.1f", run(32, split));
                for (int tile : {64, 128})
                    for (int split : {1, 2, 4, 8}) printf(" | %.1f", run(tile, split));
                printf(" |\n");
                fflush(stdout);
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    bool do_bench = true, quick = false, sweep = false;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--no-bench") {
            do_bench = false;
        } else if (a == "--quick") {
            quick = true;
        } else if (a == "--sweep") {
            sweep = true;
        } else {
            fprintf(stderr, "usage: rotor-check-matmul-tc [--no-bench] [--quick] [--sweep]\n");
            return 2;
        }
    }
    try {
        const GpuInfo g = select_gpu(0);
        printf("GPU: %s (sm_%d%d, %d SMs, %.1f GiB); built for %s\n", g.name.c_str(), g.cc_major, g.cc_minor,
               g.sm_count, g.total_bytes / 1073741824.0, built_architectures().c_str());

        for (uint32_t id = 0; id < kGgmlTypeCount; id++) {
            const FormatInfo* f = format_info(id);
            if (!f || !matmul_tc_supported(f->type, 256)) continue;
            const GgmlType t = f->type;
            const bool k256 = f->block_elems == 256;
            check(t, 256, 512, 1);
            check(t, 200, 768, 7);
            check(t, 131, 1024, 64);
            check(t, 300, 1280, 300);
            check(t, 128, 2048, 512);
            check(t, 1000, 4096, 16);  // split-K by the heuristic
            if (!k256) check(t, 77, 32 * 13, 33);  // a last slab of one k-tile
            // every token tile, with and without split-K
            for (int tile : {32, 64, 128})
                for (int split : {1, 4}) check(t, 200, 1536, 100, forced(tile, split));
            check(t, 140, 1280, 40, forced(64, 3));  // slices of unequal length
            check(t, 129, 4096, 20, forced(32, 16));
            // weights not 16-byte aligned: rows straddle 16-byte boundaries; the first and last bytes
            // of the tensor are copied without reading outside it
            CheckOpts mis;
            mis.w_offset = t == GgmlType::F32 ? 4 : 2;
            check(t, 133, 768, 9, mis);
        }
        // activations beyond f16's range and far below it: per-token scales 1e-20 .. 1e20, 3e4 (values
        // past 65504), zeros, and tokens with one element 1e4 times the rest
        const std::vector<float> scales = {1.0f, 1e6f, 1e-6f, 3e4f, 1e-20f, 1e20f, 0.0f, 7.5e4f};
        for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::F16, GgmlType::BF16, GgmlType::F32}) {
            CheckOpts big;
            big.token_scale = scales;
            big.tag = "X 1e-20..1e20";
            check(t, 256, 1024, 8, big);
            big.outlier = true;
            big.tag = "X outliers";
            check(t, 256, 1024, 67, big);
        }
        for (int nt : {1, 64, 333}) check_prepared(nt);
        printf("\n%d passed, %d failed\n", g_passed, g_failed);
        if (do_bench) bench(quick, sweep);
    } catch (const std::exception& e) {
        fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return g_failed ? 1 : 0;
}
