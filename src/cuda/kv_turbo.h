// tbq2-4 and tbq2nc-4nc on the GPU (src/kv/kv_turbo.cpp has the format: the randomized Hadamard
// rotation, one fp16 scale per row, each coordinate coded by the b-bit Lloyd-Max codebook of N(0, 1),
// kv_packed_codes.h's packing): the codebooks in device memory, and quantize-on-write with the CPU's
// operations in the CPU's order, so a stored row holds the CPU cache's exact bytes.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "cuda/attention.h"

namespace rotor::cuda {

// The b-bit codebook on the current device: kTbqCodebookFloats floats, the 2^b centroids from index 0
// and the 2^b - 1 decision bounds from index kTbqBoundsAt. Copied there on the first call, which must
// come before any graph capture (CudaForward's constructor makes it).
constexpr int kTbqBoundsAt = 16, kTbqCodebookFloats = 32;
const float* tbq_device_codebook(int bits);

// "" when tbq can hold heads of d on the GPU, else why not.
std::string tbq_refusal(int d);

// kv_store for a tbq layer: one block per (token, KV head, K or V) row.
void kv_store_tbq(const KvLayerView& kv, const float* k, const float* v, const int32_t* seq,
                  const int32_t* pos, int n_tok, cudaStream_t s);

}  // namespace rotor::cuda
