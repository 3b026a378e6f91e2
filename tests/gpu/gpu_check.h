// What every GPU check program (tests/gpu/check_*.cu) shares: one PASS / FAIL line per check and the
// counts, device buffers poisoned with NaN, seeded Gaussian inputs, and the error measures of logits.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "cuda/cuda_util.h"
#include "formats/formats.h"
#include "model/model.h"

namespace rotor::gpu_check {

inline int g_failed = 0, g_passed = 0;
inline int g_report_width = 52;  // column of the details

inline void report(bool ok, const std::string& what, const std::string& detail) {
    printf("%s  %-*s %s\n", ok ? "PASS" : "FAIL", g_report_width, what.c_str(), detail.c_str());
    fflush(stdout);
    (ok ? g_passed : g_failed)++;
}

// Milliseconds of GPU time for what f enqueues on stream s (events around it, then a wait).
template <class F>
double event_ms(cudaStream_t s, F&& f) {
    cudaEvent_t a, b;
    ROTOR_CUDA_CHECK(cudaEventCreate(&a));
    ROTOR_CUDA_CHECK(cudaEventCreate(&b));
    ROTOR_CUDA_CHECK(cudaEventRecord(a, s));
    f();
    ROTOR_CUDA_CHECK(cudaEventRecord(b, s));
    ROTOR_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    ROTOR_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return ms;
}

// A device copy of a host vector, or `count` elements filled with 0xFF bytes (NaN for floats), so
// that an output the kernel fails to write shows up.
template <class T>
struct Dev {
    cuda::DeviceBuffer buf;
    size_t n = 0;
    explicit Dev(const std::vector<T>& h) : buf(std::max<size_t>(h.size() * sizeof(T), 16)), n(h.size()) {
        if (n) buf.upload(h.data(), n * sizeof(T));
    }
    explicit Dev(size_t count) : buf(std::max<size_t>(count * sizeof(T), 16)), n(count) {
        ROTOR_CUDA_CHECK(cudaMemset(buf.get(), 0xFF, count * sizeof(T)));
    }
    T* p() const { return buf.get<T>(); }
    std::vector<T> get() const {
        ROTOR_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<T> h(n);
        if (n) buf.download(h.data(), n * sizeof(T));
        return h;
    }
};

// A KV layer view with equal K and V head sizes (the caller sets the k and v pointers).
inline cuda::KvLayerView kv_view(cuda::KvElem e, int hkv, int d, int ctx, int window) {
    cuda::KvLayerView kv;
    kv.elem = e;
    kv.n_head_kv = hkv;
    kv.head_dim_k = kv.head_dim_v = d;
    kv.ctx = ctx;
    kv.window = window;
    return kv;
}

inline std::mt19937 rng(20261128);  // each program may reseed it first thing in main
inline std::vector<float> gaussian(size_t n, float sigma = 1.0f) {
    std::normal_distribution<float> g(0.0f, sigma);
    std::vector<float> v(n);
    for (auto& x : v) x = g(rng);
    return v;
}

// Relative L2 error of a against the reference b (infinite when a holds a NaN or an infinity).
inline double rel_l2(const float* a, const float* b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return std::isfinite(num) ? std::sqrt(num / (den + 1e-30)) : INFINITY;
}

inline int argmax(const float* v, int n) { return (int)(std::max_element(v, v + n) - v); }

// w rewritten to f32 rows (kept alive in store): the CPU forward then computes with exactly the
// weights the GPU's exact path decodes, the like-for-like reference for it.
inline void dequantize_in_place(Weight& w, std::vector<std::vector<float>>& store) {
    if (!w.present() || w.type == GgmlType::F32) return;
    store.emplace_back((size_t)w.rows() * w.cols());
    for (int64_t r = 0; r < w.rows(); r++)
        dequantize_row(w.type, w.data + r * w.row_bytes(), &store.back()[(size_t)r * w.cols()], w.cols());
    w.type = GgmlType::F32;
    w.data = reinterpret_cast<const uint8_t*>(store.back().data());
}

}  // namespace rotor::gpu_check
