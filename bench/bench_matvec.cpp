// CPU mat-vec benchmark: how close each weight format's decode path comes to the machine's memory
// bandwidth, measured in the same run. Prints a table; asserts nothing.
//
//   bench_matvec [--threads N] [--isa scalar|avx2|avx512|all] [--types q4_K,q8_0,...]
//                [--rows R] [--cols C] [--budget-mib M] [--bw-mib M] [--ntok T] [--seconds S]
//                [--rounds N]
//
// The machine this runs on may be shared: other tenants take cores and memory bandwidth for
// seconds at a time. So the whole list is measured --rounds times (3 by default), the bandwidth
// before each round, and each figure printed is the best round's.
//
// Each format gets several distinct rows x cols matrices (4096 x 4096 by default) adding up to
// at least --budget-mib (256 MiB, far above the L3), visited round robin as a model's layers are,
// so every mat-vec streams its weights from DRAM. Times include quantizing the activation.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "cpu/cpu_isa.h"
#include "cpu/matmul.h"
#include "cpu/membw.h"
#include "cpu/thread_pool.h"
#include "cpu/vec_dot.h"
#include "formats/formats.h"

using namespace rotor;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Options {
    int threads = 0;
    std::string isa = "best";
    std::string types;
    int64_t rows = 4096, cols = 4096;
    int64_t budget_mib = 256, bw_mib = 1024;
    int ntok = 8;
    double seconds = 1.0;
    int rounds = 3;
};

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: bench_matvec [--threads N] [--isa scalar|avx2|avx512|best|all] [--types a,b,...]\n"
                 "                    [--rows R] [--cols C] [--budget-mib M] [--bw-mib M] [--ntok T] [--seconds S]\n"
                 "                    [--rounds N]\n");
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (a == "--threads") o.threads = std::atoi(next().c_str());
        else if (a == "--isa") o.isa = next();
        else if (a == "--types") o.types = next();
        else if (a == "--rows") o.rows = std::atoll(next().c_str());
        else if (a == "--cols") o.cols = std::atoll(next().c_str());
        else if (a == "--budget-mib") o.budget_mib = std::atoll(next().c_str());
        else if (a == "--bw-mib") o.bw_mib = std::atoll(next().c_str());
        else if (a == "--ntok") o.ntok = std::atoi(next().c_str());
        else if (a == "--seconds") o.seconds = std::atof(next().c_str());
        else if (a == "--rounds") o.rounds = std::max(1, std::atoi(next().c_str()));
        else usage();
    }
    return o;
}

// Page-aligned buffer, touched so its pages exist before timing.
struct Buffer {
    uint8_t* p = nullptr;
    size_t n = 0;
    explicit Buffer(size_t bytes) : n(bytes) {
        p = static_cast<uint8_t*>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096));
        if (!p) {
            std::fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
            std::exit(1);
        }
        memset(p, 0, bytes);
    }
    ~Buffer() { std::free(p); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
};

// ---- weights

void put_f16(uint8_t* p, float v) {
    const uint16_t h = f32_to_fp16(v);
    memcpy(p, &h, 2);
}

// Random bytes with sane scales (as tests/cpu does), so no path meets NaN or denormal slowdowns.
void fill_weights(GgmlType t, uint8_t* p, int64_t n_elems, std::mt19937& rng) {
    const FormatInfo& f = format_info(t);
    const int64_t nb = n_elems / f.block_elems;
    std::uniform_int_distribution<uint32_t> u32;
    std::normal_distribution<float> normal(0.0f, 1.0f);
    if (t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) {
        for (int64_t i = 0; i < n_elems; i++) {
            const float v = normal(rng) * 0.02f;
            if (t == GgmlType::F32) memcpy(p + 4 * i, &v, 4);
            else if (t == GgmlType::F16) put_f16(p + 2 * i, v);
            else {
                const uint16_t h = f32_to_bf16(v);
                memcpy(p + 2 * i, &h, 2);
            }
        }
        return;
    }
    const size_t bytes = (size_t)nb * f.block_bytes;
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
        const uint32_t v = u32(rng);
        memcpy(p + i, &v, 4);
    }
    const float d = 0.01f;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t* blk = p + b * f.block_bytes;
        switch (t) {
            case GgmlType::Q4_1: case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K:
                put_f16(blk, d), put_f16(blk + 2, d); break;
            case GgmlType::Q2_K: put_f16(blk + 80, d), put_f16(blk + 82, d); break;
            case GgmlType::Q3_K: put_f16(blk + 108, d); break;
            case GgmlType::Q6_K: put_f16(blk + 208, d); break;
            case GgmlType::TQ1_0: put_f16(blk + 52, d); break;
            case GgmlType::TQ2_0: put_f16(blk + 64, d); break;
            case GgmlType::IQ1_M: {
                const uint16_t h = f32_to_fp16(d);
                for (int k = 0; k < 4; k++) {
                    uint16_t w;
                    memcpy(&w, blk + 48 + 2 * k, 2);
                    w = (uint16_t)((w & 0x0FFF) | (((h >> (4 * k)) & 0xF) << 12));
                    memcpy(blk + 48 + 2 * k, &w, 2);
                }
                break;
            }
            case GgmlType::MXFP4: blk[0] = 120; break;
            case GgmlType::NVFP4: memset(blk, 0x30, 4); break;
            default: put_f16(blk, d); break;
        }
    }
}

struct Result {
    double us_per_matvec = 0, gbps = 0, us_per_batch = 0;
};

Result bench_format(GgmlType t, CpuIsa isa, ThreadPool& pool, const Options& o, std::mt19937& rng) {
    const size_t mat_bytes = (size_t)row_bytes(t, (uint64_t)o.cols) * (size_t)o.rows;
    const int n_mats = (int)std::max<size_t>(2, ((size_t)o.budget_mib << 20) / mat_bytes + 1);
    Buffer w(mat_bytes * (size_t)n_mats);
    fill_weights(t, w.p, o.rows * o.cols * n_mats, rng);
    std::vector<WeightMatrix> mats;
    for (int i = 0; i < n_mats; i++) mats.push_back({t, o.rows, o.cols, w.p + mat_bytes * (size_t)i});

    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x((size_t)(o.cols * o.ntok));
    for (auto& v : x) v = normal(rng);
    std::vector<float> y((size_t)(o.rows * o.ntok));
    QuantizedActs scratch;

    Result r;
    // mat-vec: whole cycles over all matrices until the time budget is spent; best cycle wins
    double best = 1e30, spent = 0;
    for (int cycle = 0; cycle < 3 || spent < o.seconds; cycle++) {
        const auto t0 = Clock::now();
        for (const auto& m : mats) matvec(m, x.data(), y.data(), &pool, isa, &scratch);
        const double s = seconds_since(t0);
        if (cycle > 0) best = std::min(best, s / n_mats);  // the first cycle warms up
        spent += s;
        if (cycle > 200) break;
    }
    r.us_per_matvec = best * 1e6;
    r.gbps = (double)mat_bytes / best / 1e9;
    // small batch: n_tok tokens through the same matrices
    best = 1e30, spent = 0;
    for (int cycle = 0; cycle < 3 || spent < o.seconds / 2; cycle++) {
        const auto t0 = Clock::now();
        for (const auto& m : mats) matmul(m, x.data(), (size_t)o.cols, o.ntok, y.data(), (size_t)o.rows, &pool, isa, &scratch);
        const double s = seconds_since(t0);
        if (cycle > 0) best = std::min(best, s / n_mats);
        spent += s;
        if (cycle > 100) break;
    }
    r.us_per_batch = best * 1e6;
    return r;
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    size_t b = 0;
    while (b <= s.size()) {
        const size_t e = std::min(s.find(',', b), s.size());
        if (e > b) out.push_back(s.substr(b, e - b));
        b = e + 1;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    ThreadPool pool(o.threads);

    std::vector<CpuIsa> isas;
    if (o.isa == "all") {
        for (CpuIsa i : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512})
            if (cpu_isa_supported(i)) isas.push_back(i);
    } else if (o.isa == "best") {
        isas.push_back(cpu_isa_default());
    } else if (auto i = cpu_isa_from_name(o.isa)) {
        isas.push_back(*i);
    } else {
        usage();
    }

    std::vector<GgmlType> types;
    if (o.types.empty()) {
        for (const char* n : {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_K", "q3_K", "q4_K",
                              "q5_K", "q6_K", "iq4_nl", "iq4_xs", "iq3_xxs", "iq3_s", "iq2_xxs", "iq2_xs", "iq2_s",
                              "iq1_s", "iq1_m", "tq1_0", "tq2_0", "mxfp4", "nvfp4"})
            types.push_back(*format_from_name(n));
    } else {
        for (const std::string& n : split(o.types)) {
            auto t = format_from_name(n);
            if (!t) {
                std::fprintf(stderr, "unknown type %s\n", n.c_str());
                return 2;
            }
            types.push_back(*t);
        }
    }

    // rounds over the whole list; keep each format's best round
    struct Cell {
        const VecDotKernel* k = nullptr;
        Result best;
    };
    std::vector<Cell> cells(isas.size() * types.size());
    double read_gbps = 0, copy_gbps = 0, read_min = 1e30;
    std::mt19937 rng(1);
    for (int round = 0; round < o.rounds; round++) {
        const MemoryBandwidth mbw = measure_memory_bandwidth(pool, (size_t)o.bw_mib << 20);
        read_gbps = std::max(read_gbps, mbw.read_gbs);
        copy_gbps = std::max(copy_gbps, mbw.copy_gbs);
        read_min = std::min(read_min, mbw.read_gbs);
        std::fprintf(stderr, "round %d/%d: read %.1f GB/s\n", round + 1, o.rounds, mbw.read_gbs);
        for (size_t i = 0; i < isas.size(); i++) {
            for (size_t j = 0; j < types.size(); j++) {
                Cell& c = cells[i * types.size() + j];
                c.k = vec_dot_kernel(types[j], isas[i]);
                if (!c.k) continue;
                const Result r = bench_format(types[j], isas[i], pool, o, rng);
                if (round == 0 || r.us_per_matvec < c.best.us_per_matvec) {
                    c.best.us_per_matvec = r.us_per_matvec;
                    c.best.gbps = r.gbps;
                }
                if (round == 0 || r.us_per_batch < c.best.us_per_batch) c.best.us_per_batch = r.us_per_batch;
            }
        }
    }

    std::printf("threads %d, cpu best isa %s, best of %d rounds\n", pool.size(),
                std::string(cpu_isa_name(cpu_isa_best())).c_str(), o.rounds);
    std::printf("memory: read %.1f GB/s (rounds ranged %.1f-%.1f), copy %.1f GB/s (read+write bytes), %lld MiB buffer\n\n",
                read_gbps, read_min, read_gbps, copy_gbps, (long long)o.bw_mib);
    std::printf("matrix %lld x %lld per weight, weights cycled over >= %lld MiB; n_tok=%d batch for the last columns\n\n",
                (long long)o.rows, (long long)o.cols, (long long)o.budget_mib, o.ntok);
    std::printf("| format  | isa (dot/quant) | thr | bits/w | MiB/mat | mat-vec us | GB/s  | %% read BW | n_tok=%d us | us/token |\n",
                o.ntok);
    std::printf("|---------|-----------------|-----|--------|---------|------------|-------|-----------|-------------|----------|\n");
    for (size_t i = 0; i < isas.size(); i++) {
        for (size_t j = 0; j < types.size(); j++) {
            const Cell& c = cells[i * types.size() + j];
            const FormatInfo& f = format_info(types[j]);
            if (!c.k) {
                std::printf("| %-7s | (no kernel)     |     |        |         |            |       |           |             |          |\n",
                            std::string(f.name).c_str());
                continue;
            }
            const Result& r = c.best;
            const double bits = 8.0 * f.block_bytes / f.block_elems;
            const std::string isa_s = std::string(cpu_isa_name(c.k->isa)) + "/" + std::string(cpu_isa_name(c.k->quantize_isa));
            std::printf("| %-7s | %-15s | %3d | %6.3f | %7.2f | %10.1f | %5.1f | %8.0f%% | %11.1f | %8.1f |\n",
                        std::string(f.name).c_str(), isa_s.c_str(), pool.size(), bits,
                        (double)row_bytes(types[j], (uint64_t)o.cols) * (double)o.rows / (1 << 20), r.us_per_matvec, r.gbps,
                        100.0 * r.gbps / read_gbps, r.us_per_batch, r.us_per_batch / o.ntok);
        }
    }
    return 0;
}
