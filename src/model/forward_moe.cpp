// Routed experts shared by qwen35moe and gemma4: softmax router, top-k renormalized, and each
// expert's FFN over the tokens routed to it (each expert's weights read once per step).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/forward.h"
#include "model/forward_ops.h"

namespace rotor {

using namespace ops;

ExpertRouting route_top_k(float* logits, int n, int n_expert, int top, const float* per_expert_scale) {
    ExpertRouting routed((size_t)n_expert);
    std::vector<int> idx((size_t)n_expert);
    for (int t = 0; t < n; t++) {
        float* r = logits + (size_t)t * n_expert;
        const float mx = *std::max_element(r, r + n_expert);
        double sum = 0;
        for (int e = 0; e < n_expert; e++) sum += (r[e] = std::exp(r[e] - mx));
        for (int e = 0; e < n_expert; e++) r[e] = (float)(r[e] / sum);
        std::iota(idx.begin(), idx.end(), 0);
        std::partial_sort(idx.begin(), idx.begin() + top, idx.end(),
                          [&](int a, int b) { return r[a] > r[b] || (r[a] == r[b] && a < b); });
        double top_sum = 0;
        for (int i = 0; i < top; i++) top_sum += r[idx[i]];
        for (int i = 0; i < top; i++) {
            const int e = idx[i];
            routed[e].push_back({t, (float)(r[e] / top_sum) * (per_expert_scale ? per_expert_scale[e] : 1.0f)});
        }
    }
    return routed;
}

void CpuForward::run_experts(const LayerWeights& L, const ExpertRouting& routed, const float* x, int n, bool gelu,
                             float* out) {
    const ModelConfig& c = m_.cfg;
    const int FE = c.n_ff_exp, E = c.n_embd;
    auto rows_of = [](const Weight& w, int64_t n_rows, int64_t row0) {
        return WeightMatrix{w.type, n_rows, w.cols(), w.data + (uint64_t)row0 * w.row_bytes()};
    };
    const bool fused = L.ffn_gate_up_exps.present();  // gate and up stacked in one tensor per expert
    std::fill(out, out + (size_t)n * E, 0.0f);
    for (int e = 0; e < (int)routed.size(); e++) {
        const auto& toks = routed[e];
        if (toks.empty()) continue;
        const int m = (int)toks.size();
        moe_in_.resize((size_t)m * E);
        for (int i = 0; i < m; i++)
            std::copy(x + (size_t)toks[i].first * E, x + (size_t)(toks[i].first + 1) * E, &moe_in_[(size_t)i * E]);
        const WeightMatrix wg = fused ? rows_of(L.ffn_gate_up_exps, FE, (int64_t)e * 2 * FE) : rows_of(L.ffn_gate_exps, FE, (int64_t)e * FE);
        const WeightMatrix wu = fused ? rows_of(L.ffn_gate_up_exps, FE, (int64_t)e * 2 * FE + FE) : rows_of(L.ffn_up_exps, FE, (int64_t)e * FE);
        const WeightMatrix wd = rows_of(L.ffn_down_exps, E, (int64_t)e * E);
        gate_.resize((size_t)m * FE);
        up_.resize((size_t)m * FE);
        linear(wg, moe_in_.data(), m, gate_.data(), *pool_, *act_scratch_);
        linear(wu, moe_in_.data(), m, up_.data(), *pool_, *act_scratch_);
        for (size_t i = 0; i < (size_t)m * FE; i++) gate_[i] = (gelu ? gelu_tanh(gate_[i]) : silu(gate_[i])) * up_[i];
        linear(wd, gate_.data(), m, moe_in_.data(), *pool_, *act_scratch_);  // the input is no longer needed
        for (int i = 0; i < m; i++) {
            float* o = out + (size_t)toks[i].first * E;
            const float p = toks[i].second;
            for (int j = 0; j < E; j++) o[j] += p * moe_in_[(size_t)i * E + j];
        }
    }
}

}  // namespace rotor
