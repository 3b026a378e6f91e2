// Gemma 4's element-wise kernels (gemma4_kernels.h).
#include <algorithm>

#include "cuda/device_common.cuh"
#include "cuda/gemma4_kernels.h"

namespace rotor::cuda {

namespace {

// device_common.cuh's block sum with its own shared slots (safe to call several times in a row).
__device__ inline float block_sum(float v) {
    __shared__ float part[32];
    return ::rotor::cuda::block_sum(v, part);
}

// 1 / rms of n floats whose squares sum to ss (the CPU's rms_norm scale).
__device__ inline float inv_rms(float ss, int n, float eps) { return rsqrtf(ss / (float)n + eps); }

int row_threads(int n) { return n >= 1024 ? 1024 : std::max(kWarp, (n + kWarp - 1) / kWarp * kWarp); }

__global__ void scale_kernel(float* x, int64_t n, float s) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

__global__ void rms_norm_plain_kernel(const float* x, float* y, int n, float eps) {
    const float* xr = x + (size_t)blockIdx.x * n;
    float* yr = y + (size_t)blockIdx.x * n;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
    const float k = inv_rms(block_sum(ss), n, eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * k;
}

__global__ void gelu_tanh_mul_kernel(float* gate, const float* __restrict__ up, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float x = gate[i];
        const float k = 0.7978845608028654f;  // sqrt(2/pi)
        gate[i] = 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x))) * up[i];
    }
}

constexpr int kMaxHead = 512;

// One block per (token, head): query heads first, then KV heads. The normed row goes through shared
// memory because a RoPE pair spans two threads' elements; the rotation is the same expression as
// kernels.cu's rope.
__global__ void qkv_prep_kernel(float* q, float* k, float* v, int H, int Hkv, int D, int n_rot,
                                const float* __restrict__ qw, const float* __restrict__ kw, bool v_from_k,
                                const int32_t* __restrict__ pos, const float* __restrict__ inv_freq, float eps) {
    __shared__ float sh[kMaxHead];
    const int t = blockIdx.x, h = blockIdx.y;
    const bool is_q = h < H;  // uniform over the block
    float* row = is_q ? q + ((size_t)t * H + h) * D : k + ((size_t)t * Hkv + (h - H)) * D;
    const float* w = is_q ? qw : kw;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const float x = row[i];
        sh[i] = x;
        ss += x * x;
    }
    if (!is_q) {  // V before K changes: from K's raw values on K = V layers
        float* vr = v + ((size_t)t * Hkv + (h - H)) * D;
        float sv = 0.0f;
        if (v_from_k) sv = ss;
        else
            for (int i = threadIdx.x; i < D; i += blockDim.x) sv += vr[i] * vr[i];
        const float kv = inv_rms(block_sum(sv), D, eps);
        for (int i = threadIdx.x; i < D; i += blockDim.x) vr[i] = (v_from_k ? sh[i] : vr[i]) * kv;
    }
    const float kn = inv_rms(block_sum(ss), D, eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) sh[i] = sh[i] * kn * w[i];
    __syncthreads();
    const int half = n_rot / 2;
    const float p = (float)pos[t];
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        if (i < n_rot) {
            const int j = i < half ? i : i - half;  // the pair (j, j + half)
            float sn, cs;
            sincosf(p * inv_freq[j], &sn, &cs);
            const float x0 = sh[j], x1 = sh[j + half];
            row[i] = i < half ? x0 * cs - x1 * sn : x0 * sn + x1 * cs;
        } else {
            row[i] = sh[i];
        }
    }
}

// One block per row. Each thread touches the same elements in every loop, so h written to a is read
// back by the thread that wrote it, and a next-norm output may overwrite a (no barrier needed
// between the loops beyond the reductions').
__global__ void sandwich_residual_kernel(float* x, float* a, const float* __restrict__ wa, const float* b,
                                         const float* __restrict__ wb, const float* __restrict__ w_post,
                                         const float* __restrict__ scale, int n, float eps, NextNorms next) {
    float* xr = x + (size_t)blockIdx.x * n;
    float* ar = a + (size_t)blockIdx.x * n;
    const float* br = b ? b + (size_t)blockIdx.x * n : nullptr;
    if (wa) {
        float sa = 0.0f, sb = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            sa += ar[i] * ar[i];
            if (br) sb += br[i] * br[i];
        }
        const float ka = inv_rms(block_sum(sa), n, eps);
        const float kb = br ? inv_rms(block_sum(sb), n, eps) : 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float h = ar[i] * ka * wa[i];
            if (br) h += br[i] * kb * wb[i];
            ar[i] = h;
        }
    }
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += ar[i] * ar[i];
    const float k = inv_rms(block_sum(ss), n, eps);
    const float s = scale ? *scale : 1.0f;
    float sx = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float xv = (xr[i] + ar[i] * k * w_post[i]) * s;
        xr[i] = xv;
        sx += xv * xv;
    }
    if (next.n == 0) return;  // uniform over the block
    const float kx = inv_rms(block_sum(sx), n, eps);
    const size_t off = (size_t)blockIdx.x * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float xv = xr[i] * kx;
        for (int j = 0; j < next.n; j++) next.y[j][off + i] = xv * next.w[j][i];
    }
}

__global__ void softcap_kernel(float* x, int64_t n, float cap, float inv_cap) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] * inv_cap);
}

}  // namespace

void scale_values(float* x, int64_t n, float s, cudaStream_t st) {
    if (n == 0) return;
    scale_kernel<<<blocks_for(n, 256), 256, 0, st>>>(x, n, s);
    check_launch("scale_values");
}

void rms_norm_plain(const float* x, float* y, int rows, int n, float eps, cudaStream_t st) {
    if (rows == 0) return;
    rms_norm_plain_kernel<<<rows, row_threads(n), 0, st>>>(x, y, n, eps);
    check_launch("rms_norm_plain");
}

void gelu_tanh_mul(float* gate, const float* up, int64_t n, cudaStream_t st) {
    if (n == 0) return;
    gelu_tanh_mul_kernel<<<blocks_for(n, 256), 256, 0, st>>>(gate, up, n);
    check_launch("gelu_tanh_mul");
}

void sandwich_residual(float* x, float* a, const float* wa, const float* b, const float* wb, const float* w_post,
                       const float* scale, int rows, int n, float eps, cudaStream_t st, const NextNorms& next) {
    if (rows == 0) return;
    if ((b != nullptr) != (wb != nullptr) || (b && !wa)) throw Error("sandwich_residual: b needs wb and wa");
    if (next.n < 0 || next.n > 3) throw Error("sandwich_residual: at most three next norms");
    sandwich_residual_kernel<<<rows, row_threads(n), 0, st>>>(x, a, wa, b, wb, w_post, scale, n, eps, next);
    check_launch("sandwich_residual");
}

void gemma4_qkv_prep(float* q, float* k, float* v, int n_tok, int H, int Hkv, int D, int n_rot, const float* qw,
                     const float* kw, bool v_from_k, const int32_t* pos, const float* inv_freq, float eps,
                     cudaStream_t st) {
    if (n_tok == 0) return;
    if (D > kMaxHead || n_rot > D || n_rot % 2) throw Error("gemma4_qkv_prep: head size above 512 or bad n_rot");
    qkv_prep_kernel<<<dim3((unsigned)n_tok, (unsigned)(H + Hkv)), row_threads(std::min(D, kMaxHead)), 0, st>>>(
        q, k, v, H, Hkv, D, n_rot, qw, kw, v_from_k, pos, inv_freq, eps);
    check_launch("gemma4_qkv_prep");
}

void softcap(float* x, int64_t n, float cap, cudaStream_t st) {
    if (n == 0) return;
    softcap_kernel<<<blocks_for(n, 256), 256, 0, st>>>(x, n, cap, 1.0f / cap);
    check_launch("softcap");
}

}  // namespace rotor::cuda
