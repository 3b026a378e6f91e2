// gemma4 on the GPU: not written yet (the CPU runs it); refused at load.
#include "cuda/cuda_forward_gemma4.h"

namespace rotor::cuda {

void CudaForward::init_gemma4() {
    throw Error("architecture '" + m_.cfg.arch_name + "' does not run on the GPU yet (it runs on the CPU)");
}
void CudaForward::enqueue_gemma4(int, int, const std::vector<int>&) {}

}  // namespace rotor::cuda
