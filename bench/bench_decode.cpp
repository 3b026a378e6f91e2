// CPU prefill and decode speed of whole models beside the roofline: weight bytes read per decoded token
// over the memory read bandwidth measured in the same run.
//
//   bench_decode [--threads N] [--decode N] [--prompt N] MODEL.gguf...
//   bench_decode --gen llama-3.2-1b:q4_k [...]   (writes a random-weight model of that shape first)
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "convert/synthetic.h"
#include "cpu/membw.h"
#include "cpu/thread_pool.h"
#include "kv/dense_kv_cache.h"
#include "model/forward.h"

using namespace rotor;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Row {
    std::string name;
    uint64_t bytes_per_token;
    double prefill_tps, decode_tps;
};

Row bench(const std::string& path, int threads, int n_prompt, int n_decode) {
    auto m = Model::load(path);
    const int ctx = n_prompt + n_decode + 1;
    DenseKvCache kv(kv_geometry(*m), 1, ctx);
    CpuForward fw(*m, threads);
    std::vector<float> logits;
    Batch b;
    for (int i = 0; i < n_prompt; i++) b.add((i * 7 + 3) % m->cfg.n_vocab, i, 0, i + 1 == n_prompt);
    fw.forward(b, kv, logits);  // warm-up: page in the weights
    kv.seq_truncate(0, 0);
    auto t0 = Clock::now();
    fw.forward(b, kv, logits);
    const double prefill = n_prompt / since(t0);
    int tok = 1;
    t0 = Clock::now();
    for (int i = 0; i < n_decode; i++) {
        b.clear();
        b.add(tok, n_prompt + i, 0, true);
        fw.forward(b, kv, logits);
        tok = (int)(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double decode = n_decode / since(t0);
    return {std::filesystem::path(path).filename().string(), m->weight_bytes(), prefill, decode};
}

}  // namespace

int main(int argc, char** argv) {
    int threads = (int)std::thread::hardware_concurrency(), n_decode = 32, n_prompt = 64;
    std::vector<std::string> models;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s needs a value\n", a.c_str());
                exit(2);
            }
            return argv[++i];
        };
        if (a == "--threads") threads = std::stoi(next());
        else if (a == "--decode") n_decode = std::stoi(next());
        else if (a == "--prompt") n_prompt = std::stoi(next());
        else if (a == "--gen") {
            const std::string spec = next();
            const auto colon = spec.find(':');
            const std::string shape = spec.substr(0, colon), mix = colon == std::string::npos ? "q4_k" : spec.substr(colon + 1);
            const std::string path = (std::filesystem::temp_directory_path() / (shape + "-" + mix + ".gguf")).string();
            if (!std::filesystem::exists(path)) {
                fprintf(stderr, "writing %s ...\n", path.c_str());
                write_synthetic_model(find_shape(shape), parse_quant_mix(mix), path);
            }
            models.push_back(path);
        } else models.push_back(a);
    }
    if (models.empty()) {
        fprintf(stderr, "usage: bench_decode [--threads N] [--decode N] [--prompt N] [--gen SHAPE:MIX] MODEL.gguf...\n");
        return 2;
    }
    ThreadPool pool(threads);
    const MemoryBandwidth bw = measure_memory_bandwidth(pool);
    printf("threads %d, memory read bandwidth %.1f GB/s (copy %.1f GB/s), prompt %d, decode %d tokens\n\n", threads,
           bw.read_gbs, bw.copy_gbs, n_prompt, n_decode);
    printf("| model | weight MB read/token | prefill tok/s | decode tok/s | roofline tok/s | decode %% of roofline |\n");
    printf("|---|---|---|---|---|---|\n");
    for (const auto& path : models) {
        const Row r = bench(path, threads, n_prompt, n_decode);
        const double roof = bw.read_gbs * 1e9 / (double)r.bytes_per_token;
        printf("| %s | %.1f | %.1f | %.1f | %.1f | %.0f%% |\n", r.name.c_str(), r.bytes_per_token / 1e6, r.prefill_tps,
               r.decode_tps, roof, 100.0 * r.decode_tps / roof);
    }
    return 0;
}
