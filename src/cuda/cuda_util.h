// CUDA error checking and device memory ownership for the CUDA backend. Every CUDA failure becomes
// a rotor::Error naming the call and CUDA's message, so a missing GPU or driver is a clear error.
#pragma once
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/env_switch.h"
#include "common/error.h"

namespace rotor::cuda {

inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw Error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}
#define ROTOR_CUDA_CHECK(call) ::rotor::cuda::check((call), #call)

// Blocks of a kernel (threads per block, dynamic shared memory) that fit on the current GPU at once,
// at least 1: the size of a persistent grid.
template <class K>
unsigned resident_blocks(K kernel, int threads, size_t smem) {
    int dev = 0, sms = 0, per_sm = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "SM count");
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem), "occupancy");
    return (unsigned)(per_sm > 1 ? per_sm : 1) * (unsigned)sms;
}

// Whether the current GPU is sm_90 or later (programmatic dependent launch, bulk copies); its compute
// capability is read once per device.
inline bool sm90_or_later() {
    static int cc[64];  // 0: not read yet
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    if (dev < 0 || dev >= 64) return false;
    if (cc[dev] == 0) check(cudaDeviceGetAttribute(&cc[dev], cudaDevAttrComputeCapabilityMajor, dev), "cc");
    return cc[dev] >= 9;
}

// The most dynamic shared memory one block may ask for on the current GPU (227 KiB on sm_90, 163 on
// sm_80, 99 on sm_86 / 89 / 120), read once per device.
inline int max_smem_optin() {
    static int bytes[64];  // 0: not read yet
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    if (dev < 0 || dev >= 64) return 48 * 1024;
    if (bytes[dev] == 0)
        check(cudaDeviceGetAttribute(&bytes[dev], cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "shared memory limit");
    return bytes[dev];
}

// Raises Kernel's dynamic shared memory limit to smem bytes on the current device, once per device
// (the attribute is per device; setting it is a driver call); devices past 63 set it every time.
template <auto Kernel>
void smem_optin_once(int smem) {
    static std::atomic<uint64_t> done{0};
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    const uint64_t bit = dev >= 0 && dev < 64 ? uint64_t{1} << dev : 0;
    if (bit && (done.load() & bit)) return;
    check(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "shared memory limit");
    done.fetch_or(bit);
}

// A float table made on the host (tcq's code tables, tbq's codebooks) in device memory: copied on the
// first call on each device (which must come before any graph capture) and kept for the process, like
// the CPU's tables. Tag tells the families apart; index (< N) picks one of the family.
template <class Tag, int N>
const float* device_table_once(int index, const std::vector<float>& host) {
    constexpr int kMaxDevices = 64;
    static float* tables[kMaxDevices][N] = {};
    static std::mutex mu;
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    if (dev < 0 || dev >= kMaxDevices || index < 0 || index >= N)
        throw Error("device table: device " + std::to_string(dev) + " or index " + std::to_string(index) + " out of range");
    std::lock_guard<std::mutex> lock(mu);
    float*& t = tables[dev][index];
    if (!t) {
        void* p = nullptr;
        check(cudaMalloc(&p, host.size() * sizeof(float)), "device table: cudaMalloc");
        check(cudaMemcpy(p, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), "device table: copy");
        t = static_cast<float*>(p);
    }
    return t;
}

// env_switch / EnvSwitch (common/env_switch.h): the 0/1 GPU path switches (ROTOR_MMQ, ...).

// One device allocation, freed on destruction.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes) { resize(bytes); }
    ~DeviceBuffer() { release(); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) {
            release();
            p_ = std::exchange(o.p_, nullptr);
            n_ = std::exchange(o.n_, 0);
        }
        return *this;
    }
    // Reallocates (contents lost) when more bytes are needed.
    void resize(size_t bytes) {
        if (bytes <= n_) return;
        release();
        ROTOR_CUDA_CHECK(cudaMalloc(&p_, bytes));
        n_ = bytes;
    }
    void upload(const void* src, size_t bytes, size_t offset = 0) {
        ROTOR_CUDA_CHECK(cudaMemcpy(static_cast<char*>(p_) + offset, src, bytes, cudaMemcpyHostToDevice));
    }
    void download(void* dst, size_t bytes, size_t offset = 0) const {
        ROTOR_CUDA_CHECK(cudaMemcpy(dst, static_cast<const char*>(p_) + offset, bytes, cudaMemcpyDeviceToHost));
    }
    template <class T = void>
    T* get() const {
        return static_cast<T*>(p_);
    }
    size_t bytes() const { return n_; }

private:
    void release() {
        if (p_) cudaFree(p_);
        p_ = nullptr;
        n_ = 0;
    }
    void* p_ = nullptr;
    size_t n_ = 0;
};

}  // namespace rotor::cuda
