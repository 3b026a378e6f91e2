// The CPU forward pass of the hybrid Qwen3.5 models (qwen35, qwen35moe), following transformers'
// Qwen3_5 modeling and llama.cpp's GGUF conventions (gguf-conventions.md 3.5, 3.6, 6):
//   x += mixer(RMSNorm(x)); x += FFN(RMSNorm(x)), the norm weights already +1 (folded by the converter).
// mixer = a Gated DeltaNet layer (recurrent state per sequence) or a gated full-attention layer (KV cache);
// FFN = SwiGLU (qwen35) or routed experts plus a sigmoid-gated shared expert (qwen35moe).
// The delta rule runs in its recurrent form, token by token, for prefill and decode alike (exact, and
// parallel over (sequence, value head)); the chunked form is there for prefill (set_delta_rule_chunk).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "model/delta_rule.h"
#include "model/forward.h"
#include "model/forward_ops.h"

namespace rotor {

using namespace ops;

void CpuForward::forward_hybrid(const Batch& batch, KvCache& kv, RecurrentState& rs, std::vector<float>& logits) {
    const ModelConfig& c = m_.cfg;
    const int n = batch.size(), E = c.n_embd;
    {
        const RecurrentGeometry want = recurrent_geometry(c);
        const RecurrentGeometry& got = rs.geometry();
        if (got.conv_channels != want.conv_channels || got.n_v_heads != want.n_v_heads || got.d_k != want.d_k ||
            got.d_v != want.d_v || got.conv_kernel != want.conv_kernel)
            throw Error("the recurrent state was made for a different model");
    }
    // Each sequence's tokens, in batch order, must continue its recurrent state (kv/recurrent_state.h).
    std::vector<int> seq_ids;
    std::vector<std::vector<int>> seq_tokens;
    for (int t = 0; t < n; t++) {
        auto it = std::find(seq_ids.begin(), seq_ids.end(), batch.seq[t]);
        if (it == seq_ids.end()) {
            seq_ids.push_back(batch.seq[t]);
            seq_tokens.emplace_back();
            it = seq_ids.end() - 1;
        }
        seq_tokens[it - seq_ids.begin()].push_back(t);
    }
    for (size_t s = 0; s < seq_ids.size(); s++) {
        const int seq = seq_ids[s];
        const std::vector<int>& toks = seq_tokens[s];
        const int p0 = batch.pos[toks[0]];
        for (size_t i = 1; i < toks.size(); i++)
            if (batch.pos[toks[i]] != p0 + (int)i)
                throw Error("sequence " + std::to_string(seq) + ": position " + std::to_string(batch.pos[toks[i]]) +
                            " follows position " + std::to_string(batch.pos[toks[i - 1]]) +
                            "; a model with recurrent layers needs consecutive positions in batch order");
        const int have = rs.seq_pos(seq);  // also checks that seq fits in the store
        if (p0 != 0 && p0 != have)
            throw Error("sequence " + std::to_string(seq) + ": the batch starts at position " + std::to_string(p0) +
                        " but its recurrent state is at position " + std::to_string(have) +
                        " (continue from there, restart at 0, or restore a copy of the state taken at " +
                        std::to_string(p0) + ")");
    }
    embed(batch, kv);  // validates tokens and reserves the KV positions before any state changes
    for (size_t s = 0; s < seq_ids.size(); s++)
        if (batch.pos[seq_tokens[s][0]] == 0) rs.seq_reset(seq_ids[s]);

    for (int l = 0; l < c.n_layer_main; l++) {
        const LayerWeights& L = m_.layers[l];
        for (int t = 0; t < n; t++) rms_norm(&x_[(size_t)t * E], f32(L.attn_norm), &xn_[(size_t)t * E], E, c.rms_eps);
        if (c.is_recurrent(l)) delta_net(l, batch, seq_tokens, rs);
        else gated_attention(l, batch, kv);
        for (size_t i = 0; i < (size_t)n * E; i++) x_[i] += xn_[i];

        for (int t = 0; t < n; t++) rms_norm(&x_[(size_t)t * E], f32(L.ffn_norm), &xn_[(size_t)t * E], E, c.rms_eps);
        if (c.arch == Arch::Qwen35Moe) moe(l, n);
        else swiglu(L.ffn_gate, L.ffn_up, L.ffn_down, n, xn_.data());
        for (size_t i = 0; i < (size_t)n * E; i++) x_[i] += xn_[i];
    }
    output(batch, logits);
    for (size_t s = 0; s < seq_ids.size(); s++) rs.set_seq_pos(seq_ids[s], batch.pos[seq_tokens[s].back()] + 1);
}

// Gated DeltaNet (gguf-conventions.md 6; HF Qwen3_5GatedDeltaNet). Input xn_, output xn_.
void CpuForward::delta_net(int l, const Batch& batch, const std::vector<std::vector<int>>& seq_tokens,
                           RecurrentState& rs) {
    const ModelConfig& c = m_.cfg;
    const LayerWeights& L = m_.layers[l];
    const int n = batch.size();
    const int Hk = c.ssm_n_k_heads, Hv = c.ssm_n_v_heads, dk = c.ssm_d_k, dv = c.ssm_d_v, K = c.ssm_conv_kernel;
    const int C = c.ssm_conv_dim(), kdim = Hk * dk, vdim = Hv * dv;
    qg_.resize((size_t)n * C);
    z_.resize((size_t)n * vdim);
    ba_.resize((size_t)n * 2 * Hv);
    float* mix = qg_.data();
    float* beta = ba_.data();                // [n][Hv]: b, then beta
    float* g = ba_.data() + (size_t)n * Hv;  // [n][Hv]: a, then the log decay
    linear(L.ssm_in, xn_.data(), n, mix, *pool_, *act_scratch_);
    linear(L.ssm_z, xn_.data(), n, z_.data(), *pool_, *act_scratch_);
    linear(L.ssm_beta, xn_.data(), n, beta, *pool_, *act_scratch_);
    linear(L.ssm_alpha, xn_.data(), n, g, *pool_, *act_scratch_);

    // Causal depthwise conv1d + SiLU over each sequence's tokens in order: w[c][j] multiplies the input
    // K-1-j steps back (j = K-1: the current token); the state holds the previous K-1 inputs, oldest first.
    const float* w = f32(L.ssm_conv1d);
    for (size_t s = 0; s < seq_tokens.size(); s++) {
        float* st = rs.conv(l, batch.seq[seq_tokens[s][0]]);
        const std::vector<int>& toks = seq_tokens[s];
        pool_->parallel_for(C, 64, [&](int64_t begin, int64_t end, int) {
            for (int64_t ch = begin; ch < end; ch++) {
                const float* wc = w + ch * K;
                for (int t : toks) {
                    float& m = mix[(size_t)t * C + ch];
                    float acc = wc[K - 1] * m;
                    for (int j = 0; j < K - 1; j++) acc += wc[j] * st[(size_t)j * C + ch];
                    for (int j = 0; j + 1 < K - 1; j++) st[(size_t)j * C + ch] = st[(size_t)(j + 1) * C + ch];
                    if (K > 1) st[(size_t)(K - 2) * C + ch] = m;
                    m = silu(acc);
                }
            }
        });
    }

    // q, k: L2-normalized per head (x * rsqrt(sum x^2 + 1e-6), as transformers/FLA compute it), q also
    // scaled by 1/sqrt(d_k). beta = sigmoid(b); g = -exp(A_log) * softplus(a + dt_bias), the log decay.
    const float qscale = 1.0f / std::sqrt((float)dk);
    const float* ssm_a = f32(L.ssm_a);
    const float* dt = f32(L.ssm_dt);
    for (int t = 0; t < n; t++) {
        for (int part = 0; part < 2; part++)
            for (int h = 0; h < Hk; h++) {
                float* x = mix + (size_t)t * C + (size_t)part * kdim + (size_t)h * dk;
                double ss = 0;
                for (int i = 0; i < dk; i++) ss += (double)x[i] * x[i];
                const float inv = (float)(1.0 / std::sqrt(ss + 1e-6)) * (part == 0 ? qscale : 1.0f);
                for (int i = 0; i < dk; i++) x[i] *= inv;
            }
        for (int h = 0; h < Hv; h++) {
            beta[(size_t)t * Hv + h] = sigmoid(beta[(size_t)t * Hv + h]);
            g[(size_t)t * Hv + h] = ssm_a[h] * softplus(g[(size_t)t * Hv + h] + dt[h]);
        }
    }

    // The gated delta rule per (sequence, value head), over each run of the sequence's tokens that are
    // consecutive in the batch (all of them in a prefill), in order. Value head h reads q/k head
    // h mod H_k: the converter stored the V heads in tiled order.
    attn_.resize((size_t)n * vdim);
    const int n_items = (int)seq_tokens.size() * Hv;
    pool_->parallel_for(n_items, 1, [&](int64_t begin, int64_t end, int) {
        for (int64_t item = begin; item < end; item++) {
            const int s = (int)(item / Hv), h = (int)(item % Hv), kh = h % Hk;
            const std::vector<int>& toks = seq_tokens[s];
            float* S = rs.ssm(l, batch.seq[toks[0]]) + (size_t)h * dk * dv;
            for (size_t i0 = 0; i0 < toks.size();) {
                size_t i1 = i0 + 1;
                while (i1 < toks.size() && toks[i1] == toks[i1 - 1] + 1) i1++;
                const int t0 = toks[i0];
                DeltaRuleRun run;
                run.n_tok = (int)(i1 - i0);
                run.d_k = dk;
                run.d_v = dv;
                run.q = mix + (size_t)t0 * C + (size_t)kh * dk;
                run.k = run.q + kdim;
                run.v = mix + (size_t)t0 * C + 2 * (size_t)kdim + (size_t)h * dv;
                run.stride_qk = run.stride_v = (size_t)C;
                run.g = g + (size_t)t0 * Hv + h;
                run.beta = beta + (size_t)t0 * Hv + h;
                run.stride_g = (size_t)Hv;
                run.out = &attn_[(size_t)t0 * vdim + (size_t)h * dv];
                run.stride_o = (size_t)vdim;
                if (delta_chunk_ > 0 && run.n_tok > 1) delta_rule_chunked(run, S, delta_chunk_);
                else delta_rule_recurrent(run, S);
                i0 = i1;
            }
        }
    });

    // Gated RMSNorm per head (one d_v weight shared by the heads, not +1), then the out projection.
    const float* nw = f32(L.ssm_norm);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < Hv; h++) {
            float* o = &attn_[(size_t)t * vdim + (size_t)h * dv];
            const float* z = &z_[(size_t)t * vdim + (size_t)h * dv];
            rms_norm(o, nw, o, dv, c.rms_eps);
            for (int j = 0; j < dv; j++) o[j] *= silu(z[j]);
        }
    linear(L.ssm_out, attn_.data(), n, xn_.data(), *pool_, *act_scratch_);
}

// Full attention with an output gate: attn_q yields, per head, D query values then D gate values;
// q/k RMSNorm, partial NeoX RoPE over the first n_rot dims; output * sigmoid(gate). Input/output xn_.
void CpuForward::gated_attention(int l, const Batch& batch, KvCache& kv) {
    const ModelConfig& c = m_.cfg;
    const LayerWeights& L = m_.layers[l];
    const int n = batch.size();
    const int H = c.n_head[l], D = c.head_dim_k[l];
    const size_t hd = (size_t)H * D;
    qg_.resize((size_t)n * 2 * hd);
    q_.resize((size_t)n * hd);
    gate_.resize((size_t)n * hd);
    k_.resize((size_t)n * c.kv_dim_k(l));
    v_.resize((size_t)n * c.kv_dim_v(l));
    linear(L.wq, xn_.data(), n, qg_.data(), *pool_, *act_scratch_);
    linear(L.wk, xn_.data(), n, k_.data(), *pool_, *act_scratch_);
    linear(L.wv, xn_.data(), n, v_.data(), *pool_, *act_scratch_);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++) {
            const float* src = &qg_[(size_t)t * 2 * hd + (size_t)h * 2 * D];
            std::copy(src, src + D, &q_[(size_t)t * hd + (size_t)h * D]);
            std::copy(src + D, src + 2 * D, &gate_[(size_t)t * hd + (size_t)h * D]);
        }
    attention(l, batch, kv);
    for (size_t i = 0; i < (size_t)n * hd; i++) attn_[i] *= sigmoid(gate_[i]);
    linear(L.wo, attn_.data(), n, xn_.data(), *pool_, *act_scratch_);
}

// Mixture of experts (HF Qwen3_5MoeSparseMoeBlock): p = softmax(router x); the top n_expert_used
// experts, weights renormalized to sum 1; y = sum_e p_e down_e(silu(gate_e x) * up_e x)
// + sigmoid(w_shexp . x) * shared(x). Tokens are grouped by expert so each expert's weights are read
// once per step. Input/output xn_.
void CpuForward::moe(int l, int n) {
    const ModelConfig& c = m_.cfg;
    const LayerWeights& L = m_.layers[l];
    const int NE = c.n_expert, top = c.n_expert_used, E = c.n_embd;
    std::vector<float> router((size_t)n * NE);
    linear(L.ffn_gate_inp, xn_.data(), n, router.data(), *pool_, *act_scratch_);
    const ExpertRouting routed = route_top_k(router.data(), n, NE, top, nullptr);
    moe_out_.resize((size_t)n * E);
    run_experts(L, routed, xn_.data(), n, /*gelu=*/false, moe_out_.data());
    if (L.ffn_gate_shexp.present()) {
        moe_in_.resize((size_t)n * E);
        swiglu(L.ffn_gate_shexp, L.ffn_up_shexp, L.ffn_down_shexp, n, moe_in_.data());
        const float* wg = f32(L.ffn_gate_inp_shexp);
        for (int t = 0; t < n; t++) {
            double d = 0;
            for (int j = 0; j < E; j++) d += (double)wg[j] * xn_[(size_t)t * E + j];
            const float g = sigmoid((float)d);
            for (int j = 0; j < E; j++) moe_out_[(size_t)t * E + j] += g * moe_in_[(size_t)t * E + j];
        }
    }
    std::copy(moe_out_.begin(), moe_out_.end(), xn_.begin());
}

}  // namespace rotor
