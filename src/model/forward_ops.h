// Small f32 building blocks shared by the CPU forward passes (forward.cpp, forward_qwen35.cpp).
// Internal to src/model.
#pragma once
#include <cmath>

#include "common/rope.h"
#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "model/model.h"

namespace rotor::ops {

inline void rms_norm(const float* x, const float* w, float* y, int n, float eps) {
    double ss = 0;  // double: the reference must not depend on summation order at large n
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = (float)(1.0 / std::sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

// RMS norm without a weight (gemma4's value norm and router input).
inline void rms_norm_plain(const float* x, float* y, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = (float)(1.0 / std::sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * scale;
}

// y[t] = W x[t] for every token t of the batch.
inline void linear(const WeightMatrix& wm, const float* x, int n_tok, float* y, ThreadPool& pool,
                   QuantizedActs& scratch) {
    matmul(wm, x, (size_t)wm.cols, n_tok, y, (size_t)wm.rows, &pool, cpu_isa_default(), &scratch);
}
inline void linear(const Weight& w, const float* x, int n_tok, float* y, ThreadPool& pool, QuantizedActs& scratch) {
    linear(WeightMatrix{w.type, w.rows(), w.cols(), w.data}, x, n_tok, y, pool, scratch);
}

inline const float* f32(const Weight& w) { return reinterpret_cast<const float*>(w.data); }

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
// transformers' gelu_pytorch_tanh (llama.cpp's ggml_gelu): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
inline float gelu_tanh(float x) {
    const float k = 0.7978845608028654f;  // sqrt(2/pi)
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
// torch.nn.functional.softplus (beta 1, threshold 20)
inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

}  // namespace rotor::ops
