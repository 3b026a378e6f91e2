// The start of every randomized-rotation encoder (tcq: kv_trellis.cu, tbq: kv_turbo.cu): the CPU's
// rotation of one row, bit for bit, so that the GPU cache can hold the CPU cache's exact bytes.
#pragma once
#include <cstdint>

#include "kv/kv_hadamard.h"

namespace rotor::cuda {

// y = H D x / sqrt(d) rounded to float as kvq::Hadamard::forward computes it (signs D from
// hadamard_sign_negative, the butterflies in double), then sum y_i^2 in the CPU's order (one thread,
// in double), returned to every thread. All threads of the block call it; rot holds d doubles of
// scratch; d is a power of two.
__device__ inline double rotate_row_in_cpu_order(const float* __restrict__ x, int d, double* rot, float* y) {
    const int tid = threadIdx.x, nt = blockDim.x;
    for (int i = tid; i < d; i += nt)
        rot[i] = kvq::hadamard_sign_negative(kvq::kSignSeed, d, i) ? -(double)x[i] : (double)x[i];
    for (int hh = 1; hh < d; hh <<= 1) {
        __syncthreads();
        for (int i = tid; i < d / 2; i += nt) {
            const int j = (i / hh) * 2 * hh + i % hh;
            const double a = rot[j], b = rot[j + hh];
            rot[j] = __dadd_rn(a, b);
            rot[j + hh] = __dsub_rn(a, b);
        }
    }
    __syncthreads();
    const double norm = __ddiv_rn(1.0, __dsqrt_rn((double)d));
    for (int i = tid; i < d; i += nt) y[i] = __double2float_rn(__dmul_rn(rot[i], norm));
    __syncthreads();
    if (tid == 0) {  // rot is free now
        double n2 = 0.0;
        for (int i = 0; i < d; i++) n2 = __dadd_rn(n2, __dmul_rn((double)y[i], (double)y[i]));
        rot[0] = n2;
    }
    __syncthreads();
    const double norm2 = rot[0];
    __syncthreads();  // rot may be reused
    return norm2;
}

}  // namespace rotor::cuda
