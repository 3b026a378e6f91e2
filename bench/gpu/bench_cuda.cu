// rotor-bench-cuda: what the CUDA backend achieves against the GPU's measured copy bandwidth.
//   rotor-bench-cuda [--dir DIR] [--shapes llama-3.1-8b,qwen2.5-32b] [--kv f16] [--quick]
// 1. device-to-device copy bandwidth (the roofline of a memory-bound kernel), measured in this run;
// 2. mat-vec GB/s per weight format on a 14336 x 4096 matrix;
// 3. decode tok/s of random-weight models of real shapes in the stock Q4_K_M mix (written by our
//    GGUF writer) at context 0, 4K, 32K (and 128K where the cache fits), and prefill tok/s.
// Decode at context P runs one token at position P over a cache of P+1 positions (attention reads
// them all; their values do not change the time). Prints markdown tables.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
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

}  // namespace

int main(int argc, char** argv) {
    std::string dir = "/tmp/rotor-bench", shapes = "llama-3.1-8b,qwen2.5-32b", kv_name = "f16";
    bool quick = false, no_matvec = false;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--dir" && i + 1 < argc) dir = argv[++i];
        else if (a == "--shapes" && i + 1 < argc) shapes = argv[++i];
        else if (a == "--kv" && i + 1 < argc) kv_name = argv[++i];
        else if (a == "--quick") quick = true;
        else if (a == "--no-matvec") no_matvec = true;
        else {
            fprintf(stderr, "usage: rotor-bench-cuda [--dir DIR] [--shapes A,B] [--kv f16|f32|q8_0] [--quick] [--no-matvec]\n");
            return 2;
        }
    }
    try {
        const GpuInfo g = select_gpu(0);
        const double bw = copy_bandwidth();
        printf("GPU: %s, %d SMs, %.1f GiB; spec DRAM bandwidth %.0f GB/s; measured copy bandwidth %.0f GB/s\n\n",
               g.name.c_str(), g.sm_count, g.total_bytes / 1073741824.0, g.peak_bandwidth() / 1e9, bw / 1e9);

        // ---- mat-vec per format
        printf("| weight format | path | matrix | n_tok | us | weight GB/s | %% of copy bw |\n|---|---|---|---|---|---|---|\n");
        const int64_t rows = 14336, cols = 4096;
        for (uint32_t id = 0; id < kGgmlTypeCount && !no_matvec; id++) {
            const FormatInfo* f = format_info(id);
            if (!f || !weight_type_supported(f->type)) continue;
            const size_t wbytes = row_bytes(f->type, cols) * rows;
            std::vector<uint8_t> w(wbytes);
            {
                // real quantized blocks of Gaussian rows (a pool of 64 rows, repeated)
                std::mt19937 rng(1);
                std::normal_distribution<float> gd(0.0f, 0.02f);
                std::vector<float> row(cols);
                const size_t rb = row_bytes(f->type, cols);
                for (int r = 0; r < 64; r++) {
                    for (auto& x : row) x = gd(rng);
                    quantize_row(f->type, row.data(), w.data() + r * rb, cols);
                }
                for (int64_t r = 64; r < rows; r++) memcpy(w.data() + r * rb, w.data() + (r % 64) * rb, rb);
            }
            DeviceBuffer dw(wbytes), dx(cols * 8 * 4), dy(rows * 8 * 4), scratch(matmul_scratch_bytes(8, cols));
            dw.upload(w.data(), wbytes);
            {
                std::vector<float> xh(cols * 8);
                std::mt19937 rng(2);
                std::normal_distribution<float> gd(0.0f, 1.0f);
                for (auto& v : xh) v = gd(rng);
                dx.upload(xh.data(), xh.size() * 4);
            }
            for (bool int8 : {false, true}) {
                if (int8 && !matmul_has_int8_path(f->type)) continue;
                void* sc = int8 ? scratch.get() : nullptr;
                for (int nt : {1, 4}) {
                    for (int i = 0; i < 3; i++)
                        matmul(f->type, dw.get(), rows, cols, dx.get<float>(), nt, dy.get<float>(), nullptr, sc);
                    Timer t;
                    const int iters = 50;
                    t.start();
                    for (int i = 0; i < iters; i++)
                        matmul(f->type, dw.get(), rows, cols, dx.get<float>(), nt, dy.get<float>(), nullptr, sc);
                    const double us = t.stop_ms() * 1e3 / iters;
                    const double gbs = wbytes / (us * 1e-6) / 1e9;
                    printf("| %s | %s | %lldx%lld | %d | %.1f | %.0f | %.0f%% |\n", std::string(f->name).c_str(),
                           int8 ? "int8 acts" : "f32 acts", (long long)rows, (long long)cols, nt, us, gbs,
                           100.0 * gbs * 1e9 / bw);
                }
            }
        }
        printf("\n");

        // ---- models
        std::filesystem::create_directories(dir);
        // bytes per token = weights + the K/V read by attention; roofline tok/s = copy bandwidth / that
        printf("| model (Q4_K_M mix, random weights) | KV | weights GiB | context | KV read GiB | decode tok/s | ms/token | roofline tok/s | GB/s | %% of copy bw | prefill tok/s (512) |\n");
        printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
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
                    b += (uint64_t)m->cfg.n_head_kv[l] * (kv_row_bytes(parse_kv_elem(kv_name), m->cfg.head_dim_k[l]) +
                                                          kv_row_bytes(parse_kv_elem(kv_name), m->cfg.head_dim_v[l]));
                return b;
            }();
            const uint64_t budget = g.total_bytes - m->weight_bytes() - ((uint64_t)6 << 30);
            int max_ctx = 0;
            for (int c : ctxs)
                if ((uint64_t)(c + 1) * per_pos <= budget) max_ctx = c + 1;
            CudaForwardOptions o;
            o.n_seq = 1;
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
            const double prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            bool first = true;
            for (int c : ctxs) {
                if (c + 1 > o.ctx) {
                    printf("| %s | %s | | %d | | (cache does not fit) | | | | | |\n", name.c_str(), kv_name.c_str(), c);
                    continue;
                }
                Batch d;
                d.add(42, c, 0, true);
                for (int i = 0; i < 3; i++) fw.forward_device(d);
                const int iters = quick ? 10 : 30;
                t0 = std::chrono::steady_clock::now();
                for (int i = 0; i < iters; i++) fw.forward_device(d);
                const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
                const double kv_read = (double)(c + 1) * per_pos, bytes = fw.weight_bytes() + kv_read;
                const double gbs = bytes / s / 1e9;
                if (c == 0) {  // the same step launched kernel by kernel, for the effect of CUDA graphs
                    fw.set_cuda_graphs(false);
                    for (int i = 0; i < 3; i++) fw.forward_device(d);
                    const auto g0 = std::chrono::steady_clock::now();
                    for (int i = 0; i < iters; i++) fw.forward_device(d);
                    const double sg = std::chrono::duration<double>(std::chrono::steady_clock::now() - g0).count() / iters;
                    fw.set_cuda_graphs(true);
                    fprintf(stderr, "%s: decode at context 0 without CUDA graphs: %.1f tok/s (with: %.1f)\n",
                            name.c_str(), 1.0 / sg, 1.0 / s);
                }
                printf("| %s | %s | %.2f | %d | %.2f | %.1f | %.2f | %.0f | %.0f | %.0f%% | %s |\n", name.c_str(),
                       kv_name.c_str(), fw.weight_bytes() / 1073741824.0, c, kv_read / 1073741824.0, 1.0 / s, s * 1e3,
                       bw / bytes, gbs, 100.0 * gbs * 1e9 / bw, first ? std::to_string((int)(512 / prefill_s)).c_str() : "");
                first = false;
            }
        }
    } catch (const std::exception& e) {
        fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
