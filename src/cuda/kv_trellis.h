// tcq2 / tcq3 / tcq4 on the GPU (src/kv/kv_trellis.h has the row layout, kv_trellis.cpp the design):
// the code tables in device memory, and quantize-on-write by the same Viterbi search as the CPU, so a
// stored row holds the CPU cache's exact bytes.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "cuda/attention.h"

namespace rotor::cuda {

// tcqK's table by window (4096 floats) on the current device; copied there on the first call (which
// also sets the encoder's shared memory limit), which must come before any graph capture
// (CudaForward's constructor makes it).
const float* tcq_device_table(int k);

// Shared memory the encoder needs for one row of head size d (its Viterbi keeps one byte of back
// pointers per thread and element); "" when the current device has it, else why not.
size_t tcq_store_smem_bytes(int d, int k);
std::string tcq_store_refusal(int d, int k);

// kv_store for a tcq layer: one block per (token, KV head, K or V) row.
void kv_store_tcq(const KvLayerView& kv, const float* k, const float* v, const int32_t* seq, const int32_t* pos,
                  int n_tok, cudaStream_t s);

}  // namespace rotor::cuda
