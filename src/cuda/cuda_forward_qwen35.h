// CudaForward's qwen35 / qwen35moe part (cuda_forward_qwen35.cu): its buffers and recurrent state.
#pragma once
#include "cuda/cuda_forward.h"

namespace rotor::cuda {

struct CudaForward::Qwen35Buffers {
    std::vector<int> seq_pos;  // positions each sequence's recurrent state has consumed (host copy)
};

}  // namespace rotor::cuda
