// cp.async (sm_80+): global -> shared copies that do not pass through registers, so a warp can keep
// several in flight while it computes on earlier ones. Used by the int8 mat-vec and attention kernels.
#pragma once
#include <cstdint>

namespace rotor::cuda {

// 16 bytes global -> shared; only `bytes` (<= 16) are read, the rest of the destination is zeroed (the
// last piece of a matrix, or rows past its end with bytes = 0).
__device__ inline void cp_async16(uint8_t* dst, const uint8_t* src, int bytes) {
    const unsigned sa = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sa), "l"(src), "r"(bytes) : "memory");
}
// W (4, 8 or 16) bytes global -> shared at a shared-space address; valid false zero-fills (nothing read).
template <int W>
__device__ inline void cp_async(uint32_t dst, const void* src, bool valid) {
    const int n = valid ? W : 0;
    if constexpr (W == 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(dst), "l"(src), "n"(W), "r"(n) : "memory");
}
// 4 bytes global -> shared, only `bytes` (0..4) of them read, the rest of the destination zeroed: a row
// that ends 2 bytes into a word (attention_decode_tcq.cu).
__device__ inline void cp_async4_bytes(uint32_t dst, const void* src, int bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
// W bytes, always read (no zero-fill operand to compute).
template <int W>
__device__ inline void cp_async_full(uint32_t dst, const void* src) {
    if constexpr (W == 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(dst), "l"(src), "n"(W) : "memory");
}
__device__ inline void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ inline void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace rotor::cuda
