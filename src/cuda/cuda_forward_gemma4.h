// CudaForward's gemma4 part (cuda_forward_gemma4.cu): its buffers.
#pragma once
#include "cuda/cuda_forward.h"

namespace rotor::cuda {

struct CudaForward::Gemma4Buffers {};

}  // namespace rotor::cuda
