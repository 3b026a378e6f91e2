// RotorQuant's planar / iso KV types on the GPU (src/kv/kv_rotorquant.cpp has the format: blocks of 128
// elements, each scaled to unit norm, rotated by 64 Givens pairs (planar) or 32 quaternions (iso), coded
// by an 8- or 16-level table, one fp16 scale per block): quantize-on-write with the CPU's float
// operations in the CPU's order (the stored bytes equal the CPU cache's), and the rotations of queries
// and outputs that let attention read the codes in the rotated basis.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/attention.h"
#include "kv/kv_packed_codes.h"

namespace rotor::cuda {

constexpr int kRqBlock = 128;  // elements per RotorQuant block

// One block's bytes: {fp16 scale; packed codes} (kv_packed_codes.h's 3- or 4-bit layout over 128 codes).
__host__ __device__ inline uint64_t rotorquant_block_bytes(int bits) {
    return 2 + kvq::packed_code_bytes(bits, kRqBlock);
}

// The type's code table on the current device (its 2^bits centroids from index 0); copied there on the
// first call, which must come before any graph capture (CudaForward's constructor makes it).
const float* rotorquant_device_centroids(KvElem e);

// "" when RotorQuant can hold heads of d on the GPU, else why not.
std::string rotorquant_refusal(KvElem e, int d);

// kv_store for a planar / iso layer: one thread block per (token, KV head, K or V) row.
void kv_store_rotorquant(const KvLayerView& kv, const float* k, const float* v, const int32_t* seq,
                         const int32_t* pos, int n_tok, cudaStream_t s);

// Queries into the stored basis (back = false: the encoder's rotation, the transpose of the decode map)
// or outputs out of it (back = true: the CPU format's unrotate), n_rows rows of d.
void rotorquant_rotate_rows(KvElem e, float* x, int n_rows, int d, bool back, cudaStream_t s);

}  // namespace rotor::cuda
