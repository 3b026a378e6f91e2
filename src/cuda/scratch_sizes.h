// The CUDA backend's fixed scratch rooms, in plain C++ so that the memory planner (plan/planner.cpp)
// counts the bytes the GPU code allocates from the same constants, with or without CUDA in the build.
#pragma once
#include <cstddef>

namespace rotor::cuda {

// split-K partial sums of the tensor-core matmul (matmul_tc.h), batches of 32 tokens or more
inline constexpr size_t kMatmulTcSplitBytes = size_t(32) << 20;
// split-K partial sums of the f16 tensor-core mat-vec (matvec_mma_f16.h), steps of 2 tokens or more
inline constexpr size_t kMatvecF16SplitBytes = size_t(24) << 20;

}  // namespace rotor::cuda
