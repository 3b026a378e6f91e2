// Tensor-core prefill attention (flash-attention-2 style, mma.sync m16n8k16 f16 -> f32) over the
// dense KV cache of attention.h, reading f16, q8_0 and q4_0 caches (and q8_0h / q4_0h) in place: K/V
// tiles hold the stored codes in shared memory, never an f16 copy in global memory, and every product
// keeps f32 accuracy (f16 hi + lo parts; attention_prefill.cu). For runs of consecutive query
// positions of one sequence (a prompt chunk), causal, GQA (the query heads of one KV head share each
// K/V tile), sliding windows over rings (KvLayerView::window / ctx, as attention()). The *h types are
// read like their plain blocks: the caller rotates q before and the output after, as for attention().
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

// Why this layer cannot run on the prefill kernel ("" when it can): f16 or block caches (not f32),
// stored keys (not K = V), head sizes 64, 128, 256 with dk == dv, n_head a multiple of n_head_kv with
// at most 64 query heads per KV head, the KV type's own rules (kv_elem_refusal). Refused layers run
// the split-K kernel (CudaForward::attend).
std::string attention_prefill_refusal(const KvLayerView& kv, int n_head);

// out[tok][h] (f32, [token][n_head][head_dim_v]) = softmax(scale * q[tok][h] . K) V over the positions
// each query sees, for every run. q is f32 [token][n_head][head_dim_k]. Not for captured graphs (the
// runs are launch parameters).
void attention_prefill(const KvLayerView& kv, const float* q, float* out, const PrefillRun* runs, int n_runs,
                       int n_head, float scale, cudaStream_t s);

// Whether CudaForward sends prompt runs to this kernel: on by default since it passed
// rotor-check-attention and the end-to-end checks on an H200 (2026-11-29); ROTOR_PREFILL_ATTENTION=0
// in the environment (read once) or this setter sends every query to the split-K kernel.
bool attention_prefill_enabled();
void set_attention_prefill_enabled(bool on);

// The shortest run of consecutive positions CudaForward::attend gives this kernel. A block walks its
// keys one tile after another, so a short run at a long context (few blocks) is faster on the split-K
// kernel: at position 4096 (Llama-3.1-8B's heads) the two break even at about 64 tokens for f16 and
// 100 for q4_0h (bench/RESULTS.md), hence 128. The check programs lower it to 16 so that their short
// prompts run this kernel. Values below kPrefillMinRunFloor are refused: CudaForward captures steps of
// up to 8 tokens in CUDA graphs, and the runs are launch parameters.
constexpr int kPrefillMinRunFloor = 16;
int attention_prefill_min_run();
void set_attention_prefill_min_run(int n);

}  // namespace rotor::cuda
