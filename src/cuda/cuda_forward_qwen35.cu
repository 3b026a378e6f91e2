// qwen35 / qwen35moe on the GPU: not written yet (the CPU runs them); refused at load.
#include "cuda/cuda_forward_qwen35.h"

namespace rotor::cuda {

void CudaForward::init_qwen35() {
    throw Error("architecture '" + m_.cfg.arch_name + "' does not run on the GPU yet (it runs on the CPU)");
}
void CudaForward::check_batch_qwen35(const Batch&) const {}
void CudaForward::enqueue_qwen35(int, int, const std::vector<int>&) {}
void CudaForward::after_step_qwen35(const Batch&) {}
int CudaForward::seq_state_pos(int) const { return 0; }
void CudaForward::copy_seq_state(int, int) {}
void CudaForward::save_seq_state(int, std::vector<uint8_t>&) const {}
void CudaForward::load_seq_state(int, const std::vector<uint8_t>&, int) {}

}  // namespace rotor::cuda
