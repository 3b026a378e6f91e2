// Tensor-core prefill attention (flash-attention-2 style, mma.sync m16n8k16 f16 -> f32) over the
// dense KV cache of attention.h, reading every KvElem in place: K/V tiles are dequantized into shared
// memory as f16, never copied to global memory. For runs of consecutive query positions of one
// sequence (a prompt chunk), causal, GQA (the query heads of one KV head share each K/V tile), sliding
// windows over rings (KvLayerView::window / ctx, as attention()). The *h types are read like their
// plain blocks: the caller rotates q before and the output after, as for attention().
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "cuda/attention.h"

namespace rotor::cuda {

// Queries at positions pos0 .. pos0 + len - 1 of sequence seq (already stored in the cache with
// everything before them); their q rows are q[tok0 .. tok0 + len - 1], outputs likewise.
struct PrefillRun {
    int seq = 0, pos0 = 0, len = 0, tok0 = 0;
};

// Why this layer cannot run on the prefill kernel ("" when it can): head sizes 64, 128, 256, 512 with
// dk == dv, n_head a multiple of n_head_kv, the KV type's own rules (kv_elem_refusal).
std::string attention_prefill_refusal(const KvLayerView& kv, int n_head);

// out[tok][h] (f32, [token][n_head][head_dim_v]) = softmax(scale * q[tok][h] . K) V over the positions
// each query sees, for every run. q is f32 [token][n_head][head_dim_k]. Not for captured graphs (the
// runs are launch parameters).
void attention_prefill(const KvLayerView& kv, const float* q, float* out, const PrefillRun* runs, int n_runs,
                       int n_head, float scale, cudaStream_t s);

// Whether CudaForward sends prompt runs to this kernel. Off by default until it has passed
// rotor-check-attention on a GPU; ROTOR_PREFILL_ATTENTION=1 in the environment (read once) or this
// setter turns it on.
bool attention_prefill_enabled();
void set_attention_prefill_enabled(bool on);

}  // namespace rotor::cuda
