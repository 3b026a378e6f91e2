// Gemma 4's element-wise steps on the GPU (src/cuda/gemma4_kernels.cu), the same float operations as
// the CPU forward (model/forward_gemma4.cpp, model/forward_ops.h). Activations are token-major rows.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rotor::cuda {

// x[i] *= s (n floats): the embedding scale sqrt(n_embd).
void scale_values(float* x, int64_t n, float s, cudaStream_t st);

// y[r] = x[r] / rms(x[r]) for `rows` rows of n floats, no weight (the value norm, the router input);
// y may alias x.
void rms_norm_plain(const float* x, float* y, int rows, int n, float eps, cudaStream_t st);

// gate = gelu_tanh(gate) * up (n floats): transformers' gelu_pytorch_tanh.
void gelu_tanh_mul(float* gate, const float* up, int64_t n, cudaStream_t st);

// The attention inputs of one layer, in place, for n_tok tokens (q: [n_tok][H][D], k and v:
// [n_tok][Hkv][D]): each query head rms_norm(q) * qw then NeoX RoPE of its first n_rot dims at
// pos[t] with inv_freq; each KV head v = rms_norm(v) without weight, of k's raw values when v_from_k
// (K = V layers: v's input is ignored), then k = rms_norm(k) * kw and the same RoPE. D <= 512, even n_rot.
void gemma4_qkv_prep(float* q, float* k, float* v, int n_tok, int H, int Hkv, int D, int n_rot, const float* qw,
                     const float* kw, bool v_from_k, const int32_t* pos, const float* inv_freq, float eps,
                     cudaStream_t st);

// Up to three norms of the new x that the next kernels take as input: y[i] = rms_norm(x) * w[i].
struct NextNorms {
    const float* w[3] = {nullptr, nullptr, nullptr};
    float* y[3] = {nullptr, nullptr, nullptr};
    int n = 0;
    void add(const float* weight, float* out) {
        w[n] = weight;
        y[n++] = out;
    }
};

// Gemma's sandwich residual, per row of n floats:
//   h = a                                  when wa is null, else
//   h = norm(a) * wa [+ norm(b) * wb]      (the dense MLP's and the experts' post-norms; b optional)
//   x = (x + norm(h) * w_post) * (*scale)  (scale: a device float, the layer output scale; null = 1)
// then next's outputs from the new x (an output may be a). a is overwritten with h when wa is given.
void sandwich_residual(float* x, float* a, const float* wa, const float* b, const float* wb, const float* w_post,
                       const float* scale, int rows, int n, float eps, cudaStream_t st, const NextNorms& next = {});

// x = cap * tanh(x / cap) (n floats): the final logit soft-cap.
void softcap(float* x, int64_t n, float cap, cudaStream_t st);

}  // namespace rotor::cuda
