// rotor-bench-cuda: what the CUDA backend achieves against the GPU's measured copy bandwidth.
//   rotor-bench-cuda [--dir DIR] [--shapes llama-3.1-8b,qwen2.5-32b] [--kv f16] [--quick]
//                    [--no-matvec] [--matvec-only] [--sweep] [--batches 1,4]
// 1. device-to-device copy bandwidth (the roofline of a memory-bound kernel), measured in this run;
// 2. mat-vec GB/s per weight format on a 14336 x 4096 matrix (f32 and int8 activations), and the
//    int8 mat-vec on every matrix shape of the 8B / 32B Q4_K_M mixes for 1, 2, 4, 8 tokens (--sweep:
//    each rows-per-warp variant too). Each timing replays a CUDA graph of launches that rotate over
//    copies of the matrix totalling >= 256 MB, so that the 50 MB L2 does not serve the weights;
//    activations are quantized beforehand (the quantize kernel is timed on its own line);
// 3. decode tok/s of random-weight models of real shapes in the stock Q4_K_M mix (written by our
//    GGUF writer) at context 0, 4K, 32K (and 128K where the cache fits), for batches of 1 (and
//    --batches B: B sequences, one token each), and prefill tok/s.
// Decode at context P runs one token at position P over a cache of P+1 positions (attention reads
// them all; their values do not change the time). Prints markdown tables.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

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

}  // namespace

int main(int argc, char** argv) {
    std::string dir = "/tmp/rotor-bench", shapes = "llama-3.1-8b,qwen2.5-32b", kv_name = "f16";
    std::string batches_arg = "1";
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
        else if (a == "--batches" && i + 1 < argc)
            batches_arg = argv[++i];
        else {
            fprintf(stderr,
                    "usage: rotor-bench-cuda [--dir DIR] [--shapes A,B] [--kv f16|f32|q8_0] [--quick] "
                    "[--no-matvec] "
                    "[--matvec-only] [--sweep] [--batches 1,4]\n");
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
        DeviceBuffer dx(cols * 8 * 4), dy((size_t)152064 * 8 * 4), scratch(matmul_scratch_bytes(8, 27648));
        {
            std::vector<float> xh(27648 * 8);
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
                {"q5_K 14336x4096", 14336, 4096, GgmlType::Q5_K},
                {"q8_0 14336x4096", 14336, 4096, GgmlType::Q8_0},
                {"q8_0 4096x14336", 4096, 14336, GgmlType::Q8_0},
                {"q4_0 14336x4096", 14336, 4096, GgmlType::Q4_0},
            };
            // variants (--sweep): rows per warp x persistent grid; the default (2 rows, persistent) first
            struct Variant {
                int rw;
                bool persistent;
                const char* name;
            };
            const std::vector<Variant> variants = sweep ? std::vector<Variant>{{0, true, "default"},
                                                                               {2, false, "rw2 one-shot"},
                                                                               {1, true, "rw1 persistent"},
                                                                               {1, false, "rw1 one-shot"}}
                                                        : std::vector<Variant>{{0, true, "default"}};
            printf(
                "int8 mat-vec kernel alone (activations quantized beforehand; CUDA graph of launches over >= "
                "256 MB "
                "of copies); default = 2 rows per warp, persistent grid\n\n");
            printf("| matrix | type | rows x cols | MB | n_tok | us | weight GB/s | %% of copy bw |");
            for (size_t v = 1; v < variants.size(); v++) printf(" %s |", variants[v].name);
            printf("\n|---|---|---|---|---|---|---|---|");
            for (size_t v = 1; v < variants.size(); v++) printf("---|");
            printf("\n");
            for (const Shape& sh : shapes_mv) {
                RotatingWeights w(sh.t, sh.rows, sh.cols);
                for (int nt : {1, 2, 4, 8}) {
                    quantize_act_q8(dx.get<float>(), nt, sh.cols, scratch.get(), nullptr);
                    ROTOR_CUDA_CHECK(cudaDeviceSynchronize());  // the timed graphs run on their own stream
                    std::vector<double> us;
                    for (const Variant& v : variants) {
                        if (v.rw == 1 && nt > 4) {  // not instantiated: the kernel takes 2 rows
                            us.push_back(NAN);
                            continue;
                        }
                        set_matvec_tuning(v.rw, v.persistent);
                        us.push_back(graph_time_us((int)w.bufs.size(), [&](int i, cudaStream_t s) {
                            matmul_q8(sh.t, w.bufs[i]->get(), sh.rows, sh.cols, dx.get<float>(),
                                      scratch.get(), nt, dy.get<float>(), s);
                        }));
                        set_matvec_tuning();
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
        std::filesystem::create_directories(dir);
        // bytes per token = weights + the K/V read by attention; roofline tok/s = copy bandwidth / that
        std::vector<int> batches;
        for (const std::string& b : split(batches_arg)) batches.push_back(std::max(1, std::stoi(b)));
        const int max_b = *std::max_element(batches.begin(), batches.end());
        printf(
            "| model (Q4_K_M mix, random weights) | KV | weights GiB | context | batch | KV read GiB | "
            "decode tok/s | ms/step | roofline tok/s | GB/s | %% of copy bw | prefill tok/s (512) |\n");
        printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        std::vector<std::string> variant_lines;
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
            std::vector<int> ctxs = {0, 4096, 32768};
            if (!quick) ctxs.push_back(131072);
            // cache sized for the largest context that fits next to the weights (keep 4 GiB spare)
            const uint64_t per_pos = [&] {
                uint64_t b = 0;
                for (int l = 0; l < m->cfg.n_layer; l++)
                    b += (uint64_t)m->cfg.n_head_kv[l] *
                         (kv_row_bytes(parse_kv_elem(kv_name), m->cfg.head_dim_k[l]) +
                          kv_row_bytes(parse_kv_elem(kv_name), m->cfg.head_dim_v[l]));
                return b;
            }();
            const uint64_t budget = g.total_bytes - m->weight_bytes() - ((uint64_t)6 << 30);
            int max_ctx = 0;
            for (int c : ctxs)
                if ((uint64_t)(c + 1) * per_pos * max_b <= budget) max_ctx = c + 1;
            CudaForwardOptions o;
            o.n_seq = max_b;
            o.ctx = std::max(max_ctx, 512);
            o.max_batch = 512;
            o.kv = parse_kv_elem(kv_name);
            CudaForward fw(*m, o);
            // prefill 512 tokens once (also warms up)
            Batch pre;
            for (int p = 0; p < 512; p++) pre.add(1 + p % 1000, p, 0, p == 511);
            fw.forward_device(pre);
            auto t0 = std::chrono::steady_clock::now();
            fw.forward_device(pre);
            const double prefill_s =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            bool first = true;
            for (int c : ctxs) {
                if (c + 1 > o.ctx) {
                    printf("| %s | %s | | %d | | | (cache does not fit) | | | | | |\n", name.c_str(),
                           kv_name.c_str(), c);
                    continue;
                }
                for (int B : batches) {
                    Batch d;
                    for (int b = 0; b < B; b++) d.add(42 + b, c, b, true);
                    for (int i = 0; i < 3; i++) fw.forward_device(d);
                    const int iters = quick ? 10 : 30;
                    t0 = std::chrono::steady_clock::now();
                    for (int i = 0; i < iters; i++) fw.forward_device(d);
                    const double s =
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
                    const double kv_read = (double)(c + 1) * per_pos * B, bytes = fw.weight_bytes() + kv_read;
                    const double gbs = bytes / s / 1e9;
                    if (c == 0 &&
                        B == 1) {  // the same step launched kernel by kernel, for the effect of CUDA graphs
                        fw.set_cuda_graphs(false);
                        for (int i = 0; i < 3; i++) fw.forward_device(d);
                        const auto g0 = std::chrono::steady_clock::now();
                        for (int i = 0; i < iters; i++) fw.forward_device(d);
                        const double sg =
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - g0).count() /
                            iters;
                        fw.set_cuda_graphs(true);
                        fprintf(stderr,
                                "%s: decode at context 0 without CUDA graphs: %.1f tok/s (with: %.1f)\n",
                                name.c_str(), 1.0 / sg, 1.0 / s);
                    }
                    printf("| %s | %s | %.2f | %d | %d | %.2f | %.1f | %.2f | %.0f | %.0f | %.0f%% | %s |\n",
                           name.c_str(), kv_name.c_str(), fw.weight_bytes() / 1073741824.0, c, B,
                           kv_read / 1073741824.0, B / s, s * 1e3, B * bw / bytes, gbs,
                           100.0 * gbs * 1e9 / bw,
                           first ? std::to_string((int)(512 / prefill_s)).c_str() : "");
                    first = false;
                }
            }
            if (sweep) {  // the mat-vec variants in the decode step (context 0, batch 1), each a fresh
                          // forward
                struct V {
                    int rw;
                    bool persistent, pdl;
                    const char* name;
                };
                for (const V& v : {V{0, true, true, "default (2 rows/warp, persistent, PDL)"},
                                   V{0, false, true, "one-shot grid"}, V{0, true, false, "no PDL"},
                                   V{1, true, true, "1 row/warp"}}) {
                    set_matvec_tuning(v.rw, v.persistent, v.pdl);
                    CudaForwardOptions o1;
                    o1.n_seq = 1;
                    o1.ctx = 512;
                    o1.max_batch = 8;
                    o1.kv = parse_kv_elem(kv_name);
                    CudaForward f1(*m, o1);
                    Batch d;
                    d.add(42, 0, 0, true);
                    for (int i = 0; i < 3; i++) f1.forward_device(d);
                    const int iters = 20;
                    const auto t1 = std::chrono::steady_clock::now();
                    for (int i = 0; i < iters; i++) f1.forward_device(d);
                    const double s1 =
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() / iters;
                    variant_lines.push_back("| " + name + " | " + v.name + " | " +
                                            std::to_string(1.0 / s1).substr(0, 5) + " |");
                    set_matvec_tuning();
                }
            }
        }
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
