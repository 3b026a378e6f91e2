// Memory bandwidth of this machine, measured the way the decode path reads weights (all threads
// streaming a buffer far larger than the last-level cache). Benchmarks print it beside their own
// GB/s so every figure has its roofline from the same run.
#pragma once
#include <cstddef>

namespace rotor {

class ThreadPool;

struct MemoryBandwidth {
    double read_gbs = 0;  // bytes read per second / 1e9
    double copy_gbs = 0;  // (bytes read + bytes written) per second / 1e9
};

// Best of several passes over a buffer of `bytes` (default 1 GiB).
MemoryBandwidth measure_memory_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30);

}  // namespace rotor
