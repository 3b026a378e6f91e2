// Small device helpers shared by the CUDA kernel files.
#pragma once
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>

#include "cuda/cuda_util.h"

namespace rotor::cuda {

constexpr int kWarp = 32;

__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum / max over the block (blockDim.x a multiple of 32); every thread gets the result. part: 32
// shared floats, free again when the call returns.
__device__ inline float block_sum(float v, float* part) {
    v = warp_sum(v);
    if (threadIdx.x % kWarp == 0) part[threadIdx.x / kWarp] = v;
    __syncthreads();
    float r = 0.0f;
    for (int w = 0; w < (int)blockDim.x / kWarp; w++) r += part[w];
    __syncthreads();  // part may be reused
    return r;
}
__device__ inline float block_max(float v, float* part) {
    v = warp_max(v);
    if (threadIdx.x % kWarp == 0) part[threadIdx.x / kWarp] = v;
    __syncthreads();
    float r = -INFINITY;
    for (int w = 0; w < (int)blockDim.x / kWarp; w++) r = fmaxf(r, part[w]);
    __syncthreads();  // part may be reused
    return r;
}

// A generic pointer into shared memory as the 32-bit shared-space address PTX wants.
__device__ inline uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// Activations as the CPU's ops compute them (model/forward_ops.h): sigmoid, silu, and torch's softplus
// (beta 1, threshold 20).
__device__ inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ inline float siluf_(float x) { return x / (1.0f + expf(-x)); }
__device__ inline float softplusf_(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

inline unsigned blocks_for(int64_t n, int per_block) { return (unsigned)((n + per_block - 1) / per_block); }

}  // namespace rotor::cuda
