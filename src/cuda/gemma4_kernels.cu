// Gemma 4's element-wise kernels (gemma4_kernels.h).
#include <algorithm>

#include "cuda/device_common.cuh"
#include "cuda/gemma4_kernels.h"

namespace rotor::cuda {

namespace {

// Sum over the thread block (blockDim.x a multiple of 32, at most 1024), returned to every thread.
// Safe to call several times in a row: the first barrier keeps the shared slots until all have read.
__device__ inline float block_sum(float v) {
    __shared__ float part[32];
    __shared__ float total;
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float s = lane < (int)(blockDim.x / kWarp) ? part[lane] : 0.0f;
        s = warp_sum(s);
        if (lane == 0) total = s;
    }
    __syncthreads();
    return total;
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

// One block per row. Each thread touches the same elements in every loop, so h written to a is read
// back by the thread that wrote it (no barrier needed between the loops).
__global__ void sandwich_residual_kernel(float* x, float* a, const float* __restrict__ wa, const float* b,
                                         const float* __restrict__ wb, const float* __restrict__ w_post,
                                         const float* __restrict__ scale, int n, float eps) {
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
    for (int i = threadIdx.x; i < n; i += blockDim.x) xr[i] = (xr[i] + ar[i] * k * w_post[i]) * s;
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
                       const float* scale, int rows, int n, float eps, cudaStream_t st) {
    if (rows == 0) return;
    if ((b != nullptr) != (wb != nullptr) || (b && !wa)) throw Error("sandwich_residual: b needs wb and wa");
    sandwich_residual_kernel<<<rows, row_threads(n), 0, st>>>(x, a, wa, b, wb, w_post, scale, n, eps);
    check_launch("sandwich_residual");
}

void softcap(float* x, int64_t n, float cap, cudaStream_t st) {
    if (n == 0) return;
    softcap_kernel<<<blocks_for(n, 256), 256, 0, st>>>(x, n, cap, 1.0f / cap);
    check_launch("softcap");
}

}  // namespace rotor::cuda
