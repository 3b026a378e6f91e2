// CUDA error checking and device memory ownership for the CUDA backend. Every CUDA failure becomes
// a rotor::Error naming the call and CUDA's message, so a missing GPU or driver is a clear error.
#pragma once
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <utility>

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

// A GPU path switch from the environment: unset or empty gives `unset`, "0" 0, "1" 1; anything else is
// an error naming the variable (a typo must not silently pick a path).
inline int env_switch(const char* name, int unset) {
    const char* e = std::getenv(name);
    const std::string v = e ? e : "";
    if (v.empty()) return unset;
    if (v != "0" && v != "1") throw Error(std::string(name) + " must be 0 or 1, not '" + v + "'");
    return v == "1" ? 1 : 0;
}

// A 0/1 path switch read from the environment on first use (env_switch), settable at run time.
class EnvSwitch {
public:
    constexpr EnvSwitch(const char* name, int unset) : name_(name), unset_(unset) {}
    bool on() {
        int v = v_.load();
        if (v < 0) {
            int expected = -1;
            v_.compare_exchange_strong(expected, env_switch(name_, unset_));
            v = v_.load();
        }
        return v == 1;
    }
    void set(bool on) { v_.store(on ? 1 : 0); }

private:
    const char* name_;
    int unset_;
    std::atomic<int> v_{-1};  // -1: not read yet
};

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
