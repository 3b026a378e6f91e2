// Programmatic dependent launch (sm_90 and later): a kernel launched with the programmatic stream
// serialization attribute may be scheduled while the previous kernel of its stream still runs, as
// soon as every block of that kernel has called pdl_trigger() (or exited). Such a kernel must call
// pdl_wait() before it reads anything earlier kernels write and before it writes anything; what it
// does before (the int8 mat-vec's weight copies) overlaps the previous kernel. Both are no-ops on
// older GPUs and for kernels launched without the attribute.
#pragma once

namespace rotor::cuda {

__device__ inline void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__device__ inline void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

}  // namespace rotor::cuda
