// The GPUs of this machine as the CUDA runtime reports them, and the load-time check that rotor was
// built for the chosen one (no silent fallback: a card without a kernel image is an error).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rotor::cuda {

struct GpuInfo {
    int index = 0;
    std::string name;
    int cc_major = 0, cc_minor = 0;
    int sm_count = 0;
    uint64_t total_bytes = 0, free_bytes = 0;
    int mem_bus_bits = 0;
    int mem_clock_khz = 0;
    // Theoretical DRAM bandwidth in bytes/s from the bus width and clock (0 when not reported).
    double peak_bandwidth() const { return 2.0 * mem_clock_khz * 1e3 * mem_bus_bits / 8.0; }
};

// Empty when there is no driver or no device (never throws for that).
std::vector<GpuInfo> list_gpus();

// Makes GPU `index` current and checks that this build has kernels for its architecture;
// throws rotor::Error naming the card, its sm_XY and the architectures built otherwise.
GpuInfo select_gpu(int index);

// The architectures this binary carries kernels for, e.g. "sm_80 sm_86 sm_89 sm_90 sm_120".
std::string built_architectures();

}  // namespace rotor::cuda
