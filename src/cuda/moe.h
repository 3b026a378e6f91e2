// Routed experts on the GPU, shared by qwen35moe and gemma4: the CPU's route_top_k and run_experts
// (model/forward_moe.cpp). Expert weights are the GGUF 3-D tensors as uploaded: expert e's matrix is
// rows [e * rows_per_expert, (e + 1) * rows_per_expert) of the stacked tensor.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "formats/formats.h"

namespace rotor::cuda {

// A stacked expert tensor on the GPU: n_expert matrices of rows_per_expert rows of cols elements.
struct ExpertMatrix {
    GgmlType type = GgmlType::F32;
    const void* data = nullptr;
    int64_t rows_per_expert = 0, cols = 0;
};

struct ExpertWeights {
    ExpertMatrix gate, up;  // separate gate and up, or
    ExpertMatrix gate_up;   // fused: expert e's first n_ff rows are its gate, the next n_ff its up
    ExpertMatrix down;      // {n_ff -> n_embd}
    int n_expert = 0, n_ff = 0, n_embd = 0;
    bool gelu = false;      // gate activation: GELU (tanh approximation, gemma4) or SiLU (qwen35moe)
};

// logits [n_tok][n_expert] (router output, overwritten) -> for each token its top_k experts ids[t][i]
// and weights w[t][i]: softmax over all experts, the top_k largest (ties to the lower id), renormalized
// to sum 1, times per_expert_scale[e] when given (gemma4). Ids in descending probability.
void moe_route(float* logits, int n_tok, int n_expert, int top_k, const float* per_expert_scale, int32_t* ids,
               float* weights, cudaStream_t s);

// Scratch and launches of the expert FFNs for up to max_tok tokens with top_k experts each.
class MoeRunner {
public:
    MoeRunner(int max_tok, int top_k, int n_embd, int n_ff);
    ~MoeRunner();
    MoeRunner(const MoeRunner&) = delete;
    MoeRunner& operator=(const MoeRunner&) = delete;
    size_t device_bytes() const;  // scratch on the GPU (for the memory planner's count)

    // Throws rotor::Error naming the tensor when the GPU experts cannot run these weights (missing
    // tensor, shape, format without a CUDA kernel); run() checks too, call it at load time.
    static void validate(const ExpertWeights& w);
    // Checks and benchmarks: prefill experts with at least n tokens take the tensor-core matmul
    // (default 32; a huge n keeps every expert on the int8 / exact kernels).
    void set_tc_min_tokens(int n);

    // out[t] = sum_i w[t][i] * down_e(act(gate_e x[t]) * up_e x[t]) with e = ids[t][i] (overwrites out).
    // Steps of up to 8 tokens run without host synchronization (they are captured in CUDA graphs);
    // larger ones may read the routing back to group tokens by expert.
    void run(const ExpertWeights& w, const float* x, int n_tok, const int32_t* ids, const float* weights, float* out,
             cudaStream_t s);

private:
    struct Impl;
    Impl* impl_ = nullptr;
};

}  // namespace rotor::cuda
