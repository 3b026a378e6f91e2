// The gated delta rule of Gated DeltaNet layers for one value head over a run of consecutive tokens,
// in two forms that compute the same thing:
//   recurrent: per token, S *= exp(g); u = beta * (v - S^T k); S += k u^T; o = S^T q   (exact; decode)
//   chunked:   the same over chunks of tokens with matrix products (the WY / UT-transform form that
//              transformers' torch_chunk_gated_delta_rule and llama.cpp's chunked path use), for prefill.
// S is [d_k][d_v] row-major (transformers' layout), updated in place. q is expected L2-normalized and
// scaled by 1/sqrt(d_k), k L2-normalized. Token t reads q + t*stride_qk, k + t*stride_qk,
// v + t*stride_v, g[t*stride_g], beta[t*stride_g] and writes out + t*stride_o.
#pragma once
#include <cstddef>

namespace rotor {

struct DeltaRuleRun {
    int n_tok = 0, d_k = 0, d_v = 0;
    const float* q = nullptr;
    const float* k = nullptr;
    const float* v = nullptr;
    size_t stride_qk = 0, stride_v = 0;
    const float* g = nullptr;  // log of the decay: S is multiplied by exp(g) <= 1
    const float* beta = nullptr;
    size_t stride_g = 0;
    float* out = nullptr;
    size_t stride_o = 0;
};

void delta_rule_recurrent(const DeltaRuleRun& r, float* S);
// chunk: tokens per chunk (transformers uses 64); the last chunk may be shorter.
void delta_rule_chunked(const DeltaRuleRun& r, float* S, int chunk);

}  // namespace rotor
