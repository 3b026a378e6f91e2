#include "cpu/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <immintrin.h>

#include "common/error.h"
#include "cpu/cpu_isa.h"
#include "cpu/thread_pool.h"

namespace rotor {

namespace {

using Clock = std::chrono::steady_clock;
volatile uint64_t g_sink;

// Several independent accumulators so the loop is bound by loads, not by the add chain.
template <int kLanes>
uint64_t stream_sum(const uint64_t* w, size_t b, size_t e) {
    uint64_t s[kLanes] = {};
    size_t i = b;
    for (; i + kLanes <= e; i += kLanes)
        for (int k = 0; k < kLanes; k++) s[k] += w[i + k];
    for (; i < e; i++) s[0] += w[i];
    uint64_t t = 0;
    for (uint64_t v : s) t ^= v;
    return t;
}
__attribute__((target("avx2"))) uint64_t stream_sum_avx2(const uint64_t* w, size_t b, size_t e) {
    return stream_sum<16>(w, b, e);  // vectorized into 32-byte loads
}

// 64-byte loads into eight independent vector accumulators (explicit, so nothing spills to the stack).
__attribute__((target("avx512f"))) uint64_t stream_sum_avx512(const uint64_t* w, size_t b, size_t e) {
    __m512i acc[8];
    for (auto& a : acc) a = _mm512_set1_epi64(0);  // not setzero: GCC 12 warns inside it
    size_t i = b;
    for (; i + 64 <= e; i += 64)
        for (int k = 0; k < 8; k++) acc[k] = _mm512_add_epi64(acc[k], _mm512_loadu_si512(w + i + 8 * k));
    uint64_t t = stream_sum<8>(w, i, e);
    alignas(64) uint64_t lanes[8];
    for (auto& a : acc) {  // not _mm512_reduce_add_epi64: GCC 12 warns inside it
        _mm512_store_si512(lanes, a);
        for (uint64_t v : lanes) t ^= v;
    }
    return t;
}

}  // namespace

MemoryBandwidth measure_memory_bandwidth(ThreadPool& pool, size_t bytes) {
    bytes = bytes / 4096 * 4096;
    auto* p = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
    if (!p) throw Error("bandwidth test: out of memory");
    pool.run([&](int t, int nt) {  // first touch by the threads that will read it
        const size_t b = bytes * t / nt / 4096 * 4096, e = t + 1 == nt ? bytes : bytes * (t + 1) / nt / 4096 * 4096;
        memset(p + b, 1, e - b);
    });
    MemoryBandwidth r;
    const auto* w = reinterpret_cast<const uint64_t*>(p);
    const size_t words = bytes / 8;
    const bool avx2 = cpu_isa_supported(CpuIsa::Avx2), avx512 = cpu_isa_supported(CpuIsa::Avx512);
    for (int rep = 0; rep < 6; rep++) {
        const auto t0 = Clock::now();
        pool.run([&](int t, int nt) {
            const size_t b = words * t / nt, e = words * (t + 1) / nt;
            g_sink = g_sink + (avx512 ? stream_sum_avx512(w, b, e) : avx2 ? stream_sum_avx2(w, b, e) : stream_sum<8>(w, b, e));
        });
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        r.read_gbs = std::max(r.read_gbs, (double)bytes / s / 1e9);
    }
    const size_t half = bytes / 2;
    for (int rep = 0; rep < 4; rep++) {
        const auto t0 = Clock::now();
        pool.run([&](int t, int nt) {
            const size_t b = half * t / nt, e = half * (t + 1) / nt;
            memcpy(p + half + b, p + b, e - b);
        });
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        r.copy_gbs = std::max(r.copy_gbs, 2.0 * (double)half / s / 1e9);
    }
    std::free(p);
    return r;
}

}  // namespace rotor
