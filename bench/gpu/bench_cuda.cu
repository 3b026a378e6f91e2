// rotor bench (and rotor-bench-cuda): what the CUDA backend achieves against the GPU's measured copy
// bandwidth.
//   rotor bench [--dir DIR] [--shapes llama-3.1-8b,qwen2.5-32b] [--kv f16] [--quick]
//                    [--no-matvec] [--matvec-only] [--sweep] [--batches 1,4]
// 1. device-to-device copy bandwidth (the roofline of a memory-bound kernel), measured in this run;
// 2. mat-vec GB/s per weight format on a 14336 x 4096 matrix (f32 and int8 activations), and the
//    int8 mat-vec on every matrix shape of the 8B / 32B Q4_K_M mixes for 1, 2, 4, 8 tokens (--sweep:
//    each rows-per-warp variant too). Each timing replays a CUDA graph of launches that rotate over
//    copies of the matrix totalling >= 256 MB, so that the 50 MB L2 does not serve the weights;
//    activations are quantized beforehand (the quantize kernel is timed on its own line);
// 3. decode tok/s of random-weight models of real shapes in the stock Q4_K_M mix (written by our
//    GGUF writer) at context 0, 4K, 32K (and 112K, 128K where the cache fits; not with --quick), for
//    one sequence and (--batches 1,2,4,8,16) several at context 0 and 4K; prefill tok/s of a prompt of
//    512, 8K and 32K tokens in chunks of 512. Any architecture CudaForward runs (llama family, qwen35,
//    gemma4; --shapes names from `rotor synth --list`).
// Decode at context P runs consecutive tokens from position P (the cache holds whatever was there;
// its values do not change the time; a hybrid model's recurrent state is set to position P first).
// Prints markdown tables.
// ROTOR_BENCH_PROFILE=1: the first timed decode step at the first --ctxs context (one sequence) and at
// context 0 (several sequences) of each batch size runs between
// cudaProfilerStart/Stop, so that `ncu --profile-from-start off` times that one step's kernels
// (scripts/gpu/kernel_times.py sums them per kernel).
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/gpu/bench_cuda.h"
#include "convert/synthetic.h"
#include "cuda/cuda_forward.h"
#include "cuda/device.h"
#include "cuda/kernels.h"

using namespace rotor;
using namespace rotor::cuda;

namespace {

struct Timer {
    cudaEvent_t a, b;
    Timer() {
        cudaEventCreate(&a);
        cudaEventCreate(&b);
    }
    ~Timer() {
        cudaEventDestroy(a);
        cudaEventDestroy(b);
    }
    void start(cudaStream_t s = nullptr) { cudaEventRecord(a, s); }
    double stop_ms(cudaStream_t s = nullptr) {
        cudaEventRecord(b, s);
        cudaEventSynchronize(b);
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        return ms;
    }
};

double copy_bandwidth() {
    const size_t bytes = (size_t)2 << 30;
    DeviceBuffer src(bytes), dst(bytes);
    cudaMemset(src.get(), 1, bytes);
    Timer t;
    for (int i = 0; i < 2; i++) cudaMemcpy(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice);
    const int iters = 10;
    t.start();
    for (int i = 0; i < iters; i++) cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice);
    const double ms = t.stop_ms();
    return 2.0 * bytes * iters / (ms * 1e-3);  // read + write
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> v;
    std::stringstream ss(s);
    for (std::string x; std::getline(ss, x, ',');)
        if (!x.empty()) v.push_back(x);
    return v;
}

// Random weights for a (rows x cols) matrix of type t: 64 quantized Gaussian rows, repeated, then
// copied on the device into enough buffers to total >= 256 MB (launches rotate over them).
struct RotatingWeights {
    std::vector<std::unique_ptr<DeviceBuffer>> bufs;
    size_t bytes = 0;
    RotatingWeights(GgmlType t, int64_t rows, int64_t cols) {
        const size_t rb = row_bytes(t, (uint64_t)cols);
        bytes = rb * rows;
        std::vector<uint8_t> pool(rb * 64);
        std::mt19937 rng(1);
        std::normal_distribution<float> gd(0.0f, 0.02f);
        std::vector<float> row(cols);
        for (int r = 0; r < 64; r++) {
            for (auto& x : row) x = gd(rng);
            quantize_row(t, row.data(), pool.data() + r * rb, cols);
        }
        const int n = (int)std::clamp<size_t>(((size_t)256 << 20) / bytes + 1, 1, 64);
        for (int i = 0; i < n; i++) {
            bufs.push_back(std::make_unique<DeviceBuffer>(bytes));
            char* d = bufs.back()->get<char>();
            for (int64_t r = 0; r < rows; r += 64) {
                const int64_t k = std::min<int64_t>(64, rows - r);
                if (i == 0)
                    bufs[0]->upload(pool.data(), k * rb, r * rb);
                else
                    ROTOR_CUDA_CHECK(cudaMemcpy(d + r * rb, bufs[0]->get<char>() + r * rb, k * rb,
                                                cudaMemcpyDeviceToDevice));
            }
        }
    }
};

// Median time of one call of `launch(i)` (i = buffer index), from replays of a captured CUDA graph.
template <class F>
double graph_time_us(int n_bufs, F&& launch) {
    cudaStream_t s;
    ROTOR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    const int per_graph = std::max(20, n_bufs);
    cudaGraph_t g = nullptr;
    ROTOR_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < per_graph; i++) launch(i % n_bufs, s);
    ROTOR_CUDA_CHECK(cudaStreamEndCapture(s, &g));
    cudaGraphExec_t exec = nullptr;
    ROTOR_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
    for (int i = 0; i < 2; i++) ROTOR_CUDA_CHECK(cudaGraphLaunch(exec, s));
    std::vector<double> t;
    Timer tm;
    for (int i = 0; i < 7; i++) {
        tm.start(s);
        ROTOR_CUDA_CHECK(cudaGraphLaunch(exec, s));
        t.push_back(tm.stop_ms(s) * 1e3 / per_graph);
    }
    ROTOR_CUDA_CHECK(cudaGetLastError());
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(g);
    cudaStreamDestroy(s);
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

// One step between cudaProfilerStart/Stop when ROTOR_BENCH_PROFILE is set (see the header comment).
template <class F>
void profiled_step(F&& step) {
    const char* e = std::getenv("ROTOR_BENCH_PROFILE");
    if (!e || !*e || *e == '0') return;
    ROTOR_CUDA_CHECK(cudaDeviceSynchronize());
    cudaProfilerStart();
    step();
    ROTOR_CUDA_CHECK(cudaDeviceSynchronize());
    cudaProfilerStop();
}

}  // namespace

int rotor::cuda::bench_cuda_main(int argc, char** argv) {
    std::string dir = "/tmp/rotor-bench", shapes = "llama-3.1-8b,qwen2.5-32b", kv_name = "f16";
    std::string batches_arg = "1", ctxs_arg, prompts_arg = "512,8192,32768", mv_tokens_arg;
    bool quick = false, no_matvec = false, matvec_only = false, sweep = false;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--dir" && i + 1 < argc)
            dir = argv[++i];
        else if (a == "--shapes" && i + 1 < argc)
            shapes = argv[++i];
        else if (a == "--kv" && i + 1 < argc)
            kv_name = argv[++i];
        else if (a == "--quick")
            quick = true;
        else if (a == "--no-matvec")
            no_matvec = true;
        else if (a == "--matvec-only")
            matvec_only = true;
        else if (a == "--sweep")
            sweep = true;
        else if (a == "--mv-tokens" && i + 1 < argc)
            mv_tokens_arg = argv[++i];
        else if (a == "--batches" && i + 1 < argc)
            batches_arg = argv[++i];
        else if (a == "--ctxs" && i + 1 < argc)
            ctxs_arg = argv[++i];
        else if (a == "--prompts" && i + 1 < argc)
            prompts_arg = argv[++i];
        else {
            fprintf(stderr,
                    "usage: rotor bench (or rotor-bench-cuda) [--dir DIR] [--shapes A,B] [--kv f16|f32|q8_0] [--quick] "
                    "[--no-matvec] "
                    "[--matvec-only] [--sweep] [--mv-tokens 1,2] [--batches 1,4] [--ctxs 0,32768,114688] "
                    "[--prompts 512,8192]\n"
                    "  --mv-tokens: the mat-vec tables' token counts (default all)\n"
                    "  --ctxs: decode contexts (default 0,4096,32768, and 114688,131072 without --quick)\n"
                    "  --prompts: prefill lengths (default 512,8192,32768)\n");
            return 2;
        }
    }
    try {
        const GpuInfo g = select_gpu(0);
        const double bw = copy_bandwidth();
        printf(
            "GPU: %s, %d SMs, %.1f GiB; spec DRAM bandwidth %.0f GB/s; measured copy bandwidth %.0f GB/s\n\n",
            g.name.c_str(), g.sm_count, g.total_bytes / 1073741824.0, g.peak_bandwidth() / 1e9, bw / 1e9);

        // ---- mat-vec per format (14336 x 4096), both paths; int8 includes quantizing the activations
        printf(
            "| weight format | path | matrix | n_tok | us | weight GB/s | %% of copy bw "
            "|\n|---|---|---|---|---|---|---|\n");
        const int64_t rows = 14336, cols = 4096;
        DeviceBuffer dx(cols * 16 * 4), dy((size_t)152064 * 16 * 4), scratch(matmul_scratch_bytes(16, 27648));
        {
            std::vector<float> xh(27648 * 16);
            std::mt19937 rng(2);
            std::normal_distribution<float> gd(0.0f, 1.0f);
            for (auto& v : xh) v = gd(rng);
            dx.resize(xh.size() * 4);
            dx.upload(xh.data(), xh.size() * 4);
        }
        for (uint32_t id = 0; id < kGgmlTypeCount && !no_matvec; id++) {
            const FormatInfo* f = format_info(id);
            if (!f || !weight_type_supported(f->type)) continue;
            RotatingWeights w(f->type, rows, cols);
            for (bool int8 : {false, true}) {
                if (int8 && !matmul_has_int8_path(f->type)) continue;
                void* sc = int8 ? scratch.get() : nullptr;
                for (int nt : {1, 4}) {
                    const double us = graph_time_us((int)w.bufs.size(), [&](int i, cudaStream_t s) {
                        matmul(f->type, w.bufs[i]->get(), rows, cols, dx.get<float>(), nt, dy.get<float>(), s,
                               sc);
                    });
                    const double gbs = w.bytes / (us * 1e-6) / 1e9;
                    printf("| %s | %s | %lldx%lld | %d | %.1f | %.0f | %.0f%% |\n",
                           std::string(f->name).c_str(), int8 ? "int8 acts" : "f32 acts", (long long)rows,
                           (long long)cols, nt, us, gbs, 100.0 * gbs * 1e9 / bw);
                }
            }
        }
        printf("\n");

        // ---- the int8 mat-vec alone on the matrices of the 8B / 32B Q4_K_M mixes
        if (!no_matvec) {
            struct Shape {
                const char* what;
                int64_t rows, cols;
                GgmlType t;
            };
            const Shape shapes_mv[] = {
                {"8B wq / wo", 4096, 4096, GgmlType::Q4_K},
                {"8B wk / wv", 1024, 4096, GgmlType::Q4_K},
                {"8B wv (more bits)", 1024, 4096, GgmlType::Q6_K},
                {"8B gate / up", 14336, 4096, GgmlType::Q4_K},
                {"8B down", 4096, 14336, GgmlType::Q4_K},
                {"8B down (more bits)", 4096, 14336, GgmlType::Q6_K},
                {"8B output", 128256, 4096, GgmlType::Q6_K},
                {"32B wq / wo", 5120, 5120, GgmlType::Q4_K},
                {"32B wk / wv", 1024, 5120, GgmlType::Q4_K},
                {"32B wv (more bits)", 1024, 5120, GgmlType::Q6_K},
                {"32B gate / up", 27648, 5120, GgmlType::Q4_K},
                {"32B down", 5120, 27648, GgmlType::Q4_K},
                {"32B down (more bits)", 5120, 27648, GgmlType::Q6_K},
                {"32B output", 152064, 5120, GgmlType::Q6_K},
                {"Qwen3.5-27B gate / up", 17408, 5120, GgmlType::Q4_K},
                {"Qwen3.5-27B down (more bits)", 5120, 17408, GgmlType::Q6_K},
                {"Qwen3.5-27B qkv (Gated DeltaNet)", 10240, 5120, GgmlType::Q4_K},
                {"q5_K 14336x4096", 14336, 4096, GgmlType::Q5_K},
                {"q8_0 14336x4096", 14336, 4096, GgmlType::Q8_0},
                {"q8_0 4096x14336", 4096, 14336, GgmlType::Q8_0},
                {"q4_0 14336x4096", 14336, 4096, GgmlType::Q4_0},
            };
            // variants (--sweep): kernel version (matvec_q8.cu) x rows per warp x persistent grid; the
            // default first (kernel 0: the current one)
            struct Variant {
                int kernel, rw;
                bool persistent;
                std::string name;
            };
            const int kernel_now = matvec_kernel();
            const std::vector<Variant> variants = sweep ? std::vector<Variant>{{0, 0, true, "default"},
                                                                               {2, 0, true, "kernel 2"},
                                                                               {3, 2, true, "kernel 3 rw2"},
                                                                               {3, 1, true, "kernel 3 rw1"},
                                                                               {0, 2, false, "rw2 one-shot"},
                                                                               {0, 1, true, "rw1 persistent"},
                                                                               {4, 0, true, "kernel 4"}}
                                                        : std::vector<Variant>{{0, 0, true, "default"},
                                                                               {4, 0, true, "kernel 4"}};
            std::vector<int> mv_tokens =
                mv_tokens_arg.empty() ? std::vector<int>{1, 2, 4, 8, 12, 16} : std::vector<int>{};
            for (const std::string& x : split(mv_tokens_arg)) mv_tokens.push_back(std::stoi(x));
            auto mv_tok = [&](int nt) { return std::find(mv_tokens.begin(), mv_tokens.end(), nt) != mv_tokens.end(); };
            printf(
                "int8 mat-vec kernel alone (activations quantized beforehand; CUDA graph of launches over >= "
                "256 MB "
                "of copies); default = 2 rows per warp, persistent grid\n\n");
            printf("| matrix | type | rows x cols | MB | n_tok | us | weight GB/s | %% of copy bw |");
            for (size_t v = 1; v < variants.size(); v++) printf(" %s |", variants[v].name.c_str());
            printf("\n|---|---|---|---|---|---|---|---|");
            for (size_t v = 1; v < variants.size(); v++) printf("---|");
            printf("\n");
            for (const Shape& sh : shapes_mv) {
                RotatingWeights w(sh.t, sh.rows, sh.cols);
                for (int nt : {1, 2, 4, 8}) {
                    if (!mv_tok(nt)) continue;
                    quantize_act_q8(dx.get<float>(), nt, sh.cols, scratch.get(), nullptr);
                    ROTOR_CUDA_CHECK(cudaDeviceSynchronize());  // the timed graphs run on their own stream
                    std::vector<double> us;
                    for (const Variant& v : variants) {
                        if ((v.rw == 1 && nt > 4) || ((v.kernel == 3 || v.kernel == 4) && nt > 1)) {
                            // not instantiated (the kernel takes 2 rows), or kernels 3 / 4 take one token only
                            us.push_back(NAN);
                            continue;
                        }
                        if (v.kernel) set_matvec_kernel(v.kernel);
                        set_matvec_tuning(v.rw, v.persistent);
                        us.push_back(graph_time_us((int)w.bufs.size(), [&](int i, cudaStream_t s) {
                            matmul_q8(sh.t, w.bufs[i]->get(), sh.rows, sh.cols, dx.get<float>(),
                                      scratch.get(), nt, dy.get<float>(), s);
                        }));
                        set_matvec_tuning();
                        set_matvec_kernel(kernel_now);
                    }
                    const double gbs = w.bytes / (us[0] * 1e-6) / 1e9;
                    printf("| %s | %s | %lldx%lld | %.1f | %d | %.1f | %.0f | %.0f%% |", sh.what,
                           std::string(format_info(sh.t).name).c_str(), (long long)sh.rows,
                           (long long)sh.cols, w.bytes / 1e6, nt, us[0], gbs, 100.0 * gbs * 1e9 / bw);
                    for (size_t v = 1; v < us.size(); v++) {
                        if (std::isnan(us[v]))
                            printf(" |");
                        else
                            printf(" %.0f%% |", 100.0 * (w.bytes / (us[v] * 1e-6)) / bw);
                    }
                    printf("\n");
                }
                if ((sh.t == GgmlType::Q4_K || sh.t == GgmlType::Q6_K) && mv_tok(16)) {  // 16 tokens: two dp4a passes of 8 against the tensor cores (matvec_mma.h)
                    quantize_act_q8(dx.get<float>(), 16, sh.cols, scratch.get(), nullptr);
                    ROTOR_CUDA_CHECK(cudaDeviceSynchronize());
                    const int was = matvec_mma_mode();
                    double us16[2];
                    for (int on = 0; on < 2; on++) {
                        set_matvec_mma(on == 1);
                        us16[on] = graph_time_us((int)w.bufs.size(), [&](int i, cudaStream_t s) {
                            matmul_q8(sh.t, w.bufs[i]->get(), sh.rows, sh.cols, dx.get<float>(), scratch.get(), 16,
                                      dy.get<float>(), s);
                        });
                    }
                    set_matvec_mma_mode(was);
                    const double gbs = w.bytes / (us16[0] * 1e-6) / 1e9;
                    printf("| %s | %s | %lldx%lld | %.1f | 16 | %.1f | %.0f | %.0f%% | tensor cores (ROTOR_MMQ=1): %.1f us, "
                           "%.0f%% |\n",
                           sh.what, std::string(format_info(sh.t).name).c_str(), (long long)sh.rows, (long long)sh.cols, w.bytes / 1e6, us16[0], gbs,
                           100.0 * gbs * 1e9 / bw, us16[1], 100.0 * (w.bytes / (us16[1] * 1e-6)) / bw);
                }
            }
            // the f16 tensor-core mat-vec (matvec_mma_f16.h) against the dp4a kernel and version 2
            printf("\nq4_K / q6_K, 2-16 tokens: dp4a kernel (groups of 8), tensor-core version 2 (9-16 tokens) and "
                   "version 3 (f16, matvec_mma_f16.h), us and %% of copy bandwidth\n\n");
            printf("| matrix | type | rows x cols | MB | n_tok | dp4a us | v2 us | v3 us | dp4a %% | v3 %% |\n");
            printf("|---|---|---|---|---|---|---|---|---|---|\n");
            for (const Shape& sh : shapes_mv) {
                if (sh.t != GgmlType::Q4_K && sh.t != GgmlType::Q6_K) continue;
                RotatingWeights w(sh.t, sh.rows, sh.cols);
                for (int nt : {2, 4, 8, 12, 16}) {
                    if (!mv_tok(nt)) continue;
                    quantize_act_q8(dx.get<float>(), nt, sh.cols, scratch.get(), nullptr);
                    ROTOR_CUDA_CHECK(cudaDeviceSynchronize());
                    const int was = matvec_mma_mode();
                    double us3[3];
                    for (int v = 0; v < 3; v++) {
                        if (v == 1 && nt <= 8) {
                            us3[v] = NAN;
                            continue;
                        }
                        set_matvec_mma_mode(v == 0 ? 0 : 1);
                        set_matvec_mma_f16(v == 2);
                        us3[v] = graph_time_us((int)w.bufs.size(), [&](int i, cudaStream_t s) {
                            matmul_q8(sh.t, w.bufs[i]->get(), sh.rows, sh.cols, dx.get<float>(), scratch.get(), nt,
                                      dy.get<float>(), s);
                        });
                    }
                    set_matvec_mma_f16(true);
                    set_matvec_mma_mode(was);
                    auto pct = [&](double us) { return 100.0 * (w.bytes / (us * 1e-6)) / bw; };
                    printf("| %s | %s | %lldx%lld | %.1f | %d | %.1f | %.1f | %.1f | %.0f%% | %.0f%% |\n", sh.what,
                           std::string(format_info(sh.t).name).c_str(), (long long)sh.rows, (long long)sh.cols,
                           w.bytes / 1e6, nt, us3[0], us3[1], us3[2], pct(us3[0]), pct(us3[2]));
                }
            }
            for (int64_t c : {4096, 5120, 14336, 27648}) {
                const double us = graph_time_us(1, [&](int, cudaStream_t s) {
                    quantize_act_q8(dx.get<float>(), 1, c, scratch.get(), s);
                });
                printf("| quantize activations | f32 -> int8 | 1x%lld | | 1 | %.1f | | |\n", (long long)c,
                       us);
            }
            printf("\n");
        }
        if (matvec_only) return 0;

        // ---- models
        std::vector<std::string> variant_lines;
        std::filesystem::create_directories(dir);
        std::vector<int> batches;
        for (const std::string& b : split(batches_arg)) batches.push_back(std::max(1, std::stoi(b)));
        std::sort(batches.begin(), batches.end());
        const int max_b = batches.back();
        std::vector<std::string> decode_rows, prefill_rows;
        for (const std::string& name : split(shapes)) {
            const ModelShape& sh = find_shape(name);
            const std::string path = dir + "/" + name + "-q4_k_m.gguf";
            if (!std::filesystem::exists(path)) {
                auto t0 = std::chrono::steady_clock::now();
                write_synthetic_model(sh, parse_quant_mix("q4_k_m"), path, 1);
                fprintf(stderr, "wrote %s in %.0f s\n", path.c_str(),
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            auto m = Model::load(path);
            const ModelConfig& c = m->cfg;
            const KvElem kv = parse_kv_elem(kv_name);
            // Bytes one decode step reads: the weights (Model::weight_bytes: the output matrix and every
            // layer, not the embedding table, of which one row is read; routed experts as the share that
            // B tokens select in expectation, n_expert * (1 - (1 - k/n_expert)^B)), the K/V each query
            // reads (a sliding-window layer reads its window), and the recurrent state read and written.
            uint64_t expert_bytes = 0;
            for (const LayerWeights& L : m->layers)
                for (const Weight* w : {&L.ffn_gate_exps, &L.ffn_up_exps, &L.ffn_down_exps, &L.ffn_gate_up_exps})
                    if (w->present()) expert_bytes += w->bytes();
            const double dense_bytes =
                (double)m->weight_bytes() -
                (c.n_expert ? (double)expert_bytes * c.n_expert_used / c.n_expert : 0.0);
            auto weights_read = [&](int B) {
                if (!c.n_expert) return dense_bytes;
                const double share = 1.0 - std::pow(1.0 - (double)c.n_expert_used / c.n_expert, B);
                return dense_bytes + (double)expert_bytes * share;
            };
            const KvGeometry geo = kv_geometry(c);  // KV heads per layer (none on Gated DeltaNet layers)
            auto kv_read = [&](int ctx_pos) {  // one query at position ctx_pos
                double b = 0;
                for (int l = 0; l < c.n_layer; l++) {
                    if (geo.n_head_kv[l] == 0) continue;
                    const int w = c.window_of(l);
                    const int positions = w > 0 ? std::min(ctx_pos + 1, w) : ctx_pos + 1;
                    b += (double)positions * geo.n_head_kv[l] * kv_head_position_bytes(c, l, kv);
                }
                return b;
            };
            uint64_t per_pos = 0;  // cache bytes per position of context (not counting the rings)
            for (int l = 0; l < c.n_layer; l++)
                if (c.window_of(l) == 0)
                    per_pos += (uint64_t)geo.n_head_kv[l] * kv_head_position_bytes(c, l, kv);
            const int margin = 64;  // decode runs on from the context for warm-up and timing
            const uint64_t budget = g.total_bytes - m->weight_bytes() - ((uint64_t)8 << 30);
            std::vector<int> ctxs = {0, 4096, 32768};
            if (!quick) ctxs.insert(ctxs.end(), {114688, 131072});
            if (!ctxs_arg.empty()) {
                ctxs.clear();
                for (const std::string& x : split(ctxs_arg)) ctxs.push_back(std::max(0, std::stoi(x)));
            }
            std::vector<int> prompts;
            for (const std::string& x : split(prompts_arg))  // whole chunks of 512
                prompts.push_back((std::max(1, std::stoi(x)) + 511) / 512 * 512);
            const int iters = quick ? 10 : 30;

            // One sequence: prefill at 512 / 8K / 32K tokens (chunks of 512) and decode at each context.
            {
                int max_ctx = 512;
                for (int x : prompts)
                    if ((uint64_t)x * per_pos <= budget) max_ctx = std::max(max_ctx, x);
                for (int x : ctxs)
                    if ((uint64_t)(x + margin) * per_pos <= budget) max_ctx = std::max(max_ctx, x + margin);
                CudaForwardOptions o;
                o.n_seq = 1;
                o.ctx = max_ctx;
                o.max_batch = 512;
                o.kv = kv;
                CudaForward fw(*m, o);
                auto start_at = [&](int pos) {  // a hybrid model's state must be at the next position
                    if (fw.has_recurrent_state()) fw.load_seq_state(0, std::vector<uint8_t>(fw.state_bytes_per_seq(), 0), pos);
                };
                for (int prompt : prompts) {
                    if (prompt > o.ctx) {
                        prefill_rows.push_back("| " + name + " | " + kv_name + " | " + std::to_string(prompt) +
                                               " | (cache does not fit) |");
                        continue;
                    }
                    auto run_prompt = [&] {
                        for (int p0 = 0; p0 < prompt; p0 += 512) {
                            Batch b;
                            for (int p = p0; p < p0 + 512; p++) b.add(1 + p % 1000, p, 0, p == prompt - 1);
                            fw.forward_device(b);
                        }
                    };
                    if (prompt == prompts.front()) run_prompt();  // warm-up
                    const auto t0 = std::chrono::steady_clock::now();
                    run_prompt();
                    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                    char line[256];
                    snprintf(line, sizeof line, "| %s | %s | %d | %.0f |", name.c_str(), kv_name.c_str(), prompt,
                             prompt / sec);
                    prefill_rows.push_back(line);
                }
                for (int x : ctxs) {
                    if (x + margin > o.ctx) {
                        decode_rows.push_back("| " + name + " | " + kv_name + " | | | " + std::to_string(x) +
                                              " | 1 | (cache does not fit) | | | | |");
                        continue;
                    }
                    start_at(x);
                    int pos = x;
                    auto step = [&] {
                        Batch d;
                        d.add(42, pos++, 0, true);
                        fw.forward_device(d);
                    };
                    for (int i = 0; i < 3; i++) step();
                    if (x == ctxs.front()) profiled_step(step);
                    const auto t0 = std::chrono::steady_clock::now();
                    for (int i = 0; i < iters; i++) step();
                    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
                    const double bytes = weights_read(1) + kv_read(x + 3 + iters / 2) + 2.0 * fw.state_bytes_per_seq();
                    char line[512];
                    snprintf(line, sizeof line, "| %s | %s | %.2f | %.2f | %d | 1 | %.1f | %.2f | %.0f | %.0f | %.0f%% |",
                             name.c_str(), kv_name.c_str(), weights_read(1) / 1073741824.0, bytes / 1073741824.0, x,
                             1.0 / sec, sec * 1e3, bw / bytes, bytes / sec / 1e9, 100.0 * bytes / sec / bw);
                    decode_rows.push_back(line);
                }
            }
            // Several sequences, one token each per step, at context 0 and 4K: aggregate tok/s.
            if (max_b > 1) {
                const int bctx = 4096;
                CudaForwardOptions o;
                o.n_seq = max_b;
                o.ctx = bctx + margin;
                o.max_batch = std::max(512, max_b);
                o.kv = kv;
                if ((uint64_t)o.ctx * per_pos * max_b > budget) {
                    decode_rows.push_back("| " + name + " | " + kv_name + " | | | | " + std::to_string(max_b) +
                                          " | (cache does not fit) | | | | |");
                } else {
                    CudaForward fw(*m, o);
                    for (int x : {0, bctx}) {
                        for (int B : batches) {
                            if (B == 1) continue;  // in the single-sequence rows
                            for (int b = 0; b < B; b++)
                                if (fw.has_recurrent_state())
                                    fw.load_seq_state(b, std::vector<uint8_t>(fw.state_bytes_per_seq(), 0), x);
                            int pos = x;
                            auto step = [&] {
                                Batch d;
                                for (int b = 0; b < B; b++) d.add(42 + b, pos, b, true);
                                pos++;
                                fw.forward_device(d);
                            };
                            for (int i = 0; i < 3; i++) step();
                            if (x == 0) profiled_step(step);
                            const auto t0 = std::chrono::steady_clock::now();
                            for (int i = 0; i < iters; i++) step();  // margin > 3 + iters: within the cache
                            const double sec =
                                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
                            const double bytes = weights_read(B) + B * (kv_read(x + 3 + iters / 2) + 2.0 * fw.state_bytes_per_seq());
                            char line[512];
                            snprintf(line, sizeof line,
                                     "| %s | %s | %.2f | %.2f | %d | %d | %.1f | %.2f | %.0f | %.0f | %.0f%% |", name.c_str(),
                                     kv_name.c_str(), weights_read(B) / 1073741824.0, bytes / 1073741824.0, x, B, B / sec,
                                     sec * 1e3, B * bw / bytes, bytes / sec / 1e9, 100.0 * bytes / sec / bw);
                            decode_rows.push_back(line);
                        }
                    }
                }
            }
            if (sweep) {  // the mat-vec variants in the decode step (context 0, batch 1), each a fresh forward
                struct V {
                    int kernel, rw;
                    bool persistent, pdl;
                    const char* name;
                };
                const int kernel_now = matvec_kernel();
                for (const V& v : {V{0, 0, true, true, "default (2 rows/warp, persistent, PDL)"},
                                   V{2, 0, true, true, "kernel 2"}, V{3, 2, true, true, "kernel 3 rw2"},
                                   V{3, 1, true, true, "kernel 3 rw1"}, V{0, 0, false, true, "one-shot grid"},
                                   V{0, 0, true, false, "no PDL"}}) {
                    if (v.kernel) set_matvec_kernel(v.kernel);
                    set_matvec_tuning(v.rw, v.persistent, v.pdl);
                    CudaForwardOptions o1;
                    o1.n_seq = 1;
                    o1.ctx = 512;
                    o1.max_batch = 8;
                    o1.kv = kv;
                    CudaForward f1(*m, o1);
                    int pos = 0;
                    auto step = [&] {
                        Batch d;
                        d.add(42, pos++, 0, true);
                        f1.forward_device(d);
                    };
                    for (int i = 0; i < 3; i++) step();
                    const int n_it = 20;
                    const auto t1 = std::chrono::steady_clock::now();
                    for (int i = 0; i < n_it; i++) step();
                    const double s1 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() / n_it;
                    variant_lines.push_back("| " + name + " | " + v.name + " | " + std::to_string(1.0 / s1).substr(0, 5) + " |");
                    set_matvec_tuning();
                    set_matvec_kernel(kernel_now);
                }
            }
        }
        printf("| model (Q4_K_M mix, random weights) | KV | weights read GiB | bytes/step GiB | context | batch | "
               "decode tok/s | ms/step | roofline tok/s | GB/s | %% of copy bw |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (const std::string& l : decode_rows) printf("%s\n", l.c_str());
        printf("\n| model | KV | prompt tokens (chunks of 512) | prefill tok/s |\n|---|---|---|---|\n");
        for (const std::string& l : prefill_rows) printf("%s\n", l.c_str());
        if (!variant_lines.empty()) {
            printf("\n| model | int8 mat-vec variant | decode tok/s (context 0, batch 1) |\n|---|---|---|\n");
            for (const std::string& l : variant_lines) printf("%s\n", l.c_str());
        }
    } catch (const std::exception& e) {
        fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
