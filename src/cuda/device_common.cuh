// Small device helpers shared by the CUDA kernel files.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/cuda_util.h"

namespace rotor::cuda {

constexpr int kWarp = 32;

__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

inline unsigned blocks_for(int64_t n, int per_block) { return (unsigned)((n + per_block - 1) / per_block); }

}  // namespace rotor::cuda
