// The CPU forward pass of Gemma 4 (gemma4: the 26B-A4B MoE layout and its dense relatives), following
// transformers' Gemma4TextModel and llama.cpp's GGUF conventions (gguf-conventions.md 3.8):
//   x = embd * sqrt(E)
//   per layer: a = x + post_attention_norm(attn(attn_norm(x)))
//              m = MLP(ffn_norm(a))                                   (GELU-tanh, gated)
//              MoE layers: m = post_ffw_norm_1(m) + post_ffw_norm_2(experts(pre_ffw_norm_2(a)))
//              x = (a + post_ffw_norm(m)) * layer_output_scale
//   logits = cap * tanh(W_out output_norm(x) / cap)
// Attention: q/k RMS norms with weights, v with a weightless RMS norm (on K = V layers v is the raw key
// projection, before k_norm and RoPE), NeoX RoPE per layer type (sliding: its own base and rotated
// dims; global: rope_freqs' proportional RoPE), scale 1 (the norms set the scale), sliding-window
// layers seeing the last `window` positions. Norm weights are used as stored (Gemma 4: no +1).
// Router: softmax over W_r (rms_norm(a) / sqrt(E) * scale), the top n_expert_used renormalized, each
// times its per-expert scale.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "model/forward.h"
#include "model/forward_ops.h"

namespace rotor {

using namespace ops;

// Splits a batch so that no sequence stores more positions in one step than the cache's sliding-window
// rings allow (KvCache::max_step_tokens); the steps run in order and the logits keep the batch order.
void CpuForward::forward_gemma4(const Batch& batch, KvCache& kv, std::vector<float>& logits) {
    const int limit = kv.max_step_tokens(), n = batch.size();
    std::vector<int> chunk((size_t)n, 0);
    int n_chunks = 1;
    if (limit > 0) {
        std::vector<std::pair<int, int>> seen;  // (seq, tokens so far)
        for (int t = 0; t < n; t++) {
            auto it = std::find_if(seen.begin(), seen.end(), [&](auto& p) { return p.first == batch.seq[t]; });
            if (it == seen.end()) it = seen.insert(seen.end(), {batch.seq[t], 0});
            chunk[t] = it->second++ / limit;
            n_chunks = std::max(n_chunks, chunk[t] + 1);
        }
    }
    if (n_chunks == 1) {
        gemma4_step(batch, kv, logits);
        return;
    }
    const size_t V = (size_t)m_.cfg.n_vocab;
    std::vector<int> out_row((size_t)n, -1);
    int rows = 0;
    for (int t = 0; t < n; t++)
        if (batch.want_logits[t]) out_row[t] = rows++;
    logits.assign((size_t)rows * V, 0.0f);
    std::vector<float> part;
    for (int k = 0; k < n_chunks; k++) {
        Batch sub;
        std::vector<int> orig;
        for (int t = 0; t < n; t++)
            if (chunk[t] == k) {
                sub.add(batch.token[t], batch.pos[t], batch.seq[t], batch.want_logits[t] != 0);
                orig.push_back(t);
            }
        gemma4_step(sub, kv, part);
        int r = 0;
        for (int i = 0; i < sub.size(); i++)
            if (sub.want_logits[i]) {
                std::copy(part.begin() + (size_t)r * V, part.begin() + (size_t)(r + 1) * V,
                          logits.begin() + (size_t)out_row[orig[i]] * V);
                r++;
            }
    }
}

void CpuForward::gemma4_step(const Batch& batch, KvCache& kv, std::vector<float>& logits) {
    const ModelConfig& c = m_.cfg;
    const int n = batch.size(), E = c.n_embd;
    // Every sequence must start where its sliding-window rings still hold what its first query sees.
    {
        const KvGeometry& g = kv.geometry();
        std::vector<int> seqs;
        for (int t = 0; t < n; t++) {
            if (std::find(seqs.begin(), seqs.end(), batch.seq[t]) != seqs.end()) continue;
            seqs.push_back(batch.seq[t]);
            const int p0 = batch.pos[t];
            for (int l = 0; l < g.n_layer(); l++) {
                const int w = g.window_of(l);
                if (w <= 0 || g.n_head_kv[l] == 0) continue;
                const int floor = kv.seq_window_floor(batch.seq[t], l);
                if (std::max(0, p0 - w + 1) < floor)
                    throw Error("sequence " + std::to_string(batch.seq[t]) + ": position " + std::to_string(p0) +
                                " needs positions from " + std::to_string(std::max(0, p0 - w + 1)) +
                                " on, but the sliding-window cache only holds positions from " + std::to_string(floor) +
                                " on (it was cut back further than its window ring reaches; recompute from 0)");
            }
        }
    }
    embed(batch, kv);  // validates tokens and reserves the KV positions before anything changes
    for (float& v : x_) v *= c.embd_scale;
    ffn_out_.resize((size_t)n * E);

    for (int l = 0; l < c.n_layer; l++) {
        const LayerWeights& L = m_.layers[l];
        for (int t = 0; t < n; t++) rms_norm(&x_[(size_t)t * E], f32(L.attn_norm), &xn_[(size_t)t * E], E, c.rms_eps);
        gemma4_attention(l, batch, kv);  // xn_ -> xn_
        for (int t = 0; t < n; t++) {
            float* h = &xn_[(size_t)t * E];
            rms_norm(h, f32(L.post_attn_norm), h, E, c.rms_eps);
            for (int i = 0; i < E; i++) x_[(size_t)t * E + i] += h[i];
        }

        for (int t = 0; t < n; t++) rms_norm(&x_[(size_t)t * E], f32(L.ffn_norm), &xn_[(size_t)t * E], E, c.rms_eps);
        gelu_ffn(L.ffn_gate, L.ffn_up, L.ffn_down, n, ffn_out_.data());
        if (L.ffn_gate_inp.present()) {
            for (int t = 0; t < n; t++) rms_norm(&ffn_out_[(size_t)t * E], f32(L.post_ffw_norm_1), &ffn_out_[(size_t)t * E], E, c.rms_eps);
            moe_out_.resize((size_t)n * E);
            gemma4_experts(l, n, moe_out_.data());
            for (int t = 0; t < n; t++) {
                float* m2 = &moe_out_[(size_t)t * E];
                rms_norm(m2, f32(L.post_ffw_norm_2), m2, E, c.rms_eps);
                for (int i = 0; i < E; i++) ffn_out_[(size_t)t * E + i] += m2[i];
            }
        }
        const float scale = L.out_scale.present() ? f32(L.out_scale)[0] : 1.0f;
        for (int t = 0; t < n; t++) {
            float* h = &ffn_out_[(size_t)t * E];
            rms_norm(h, f32(L.post_ffw_norm), h, E, c.rms_eps);
            for (int i = 0; i < E; i++) x_[(size_t)t * E + i] = (x_[(size_t)t * E + i] + h[i]) * scale;
        }
    }
    output(batch, logits);
    if (c.final_logit_softcap > 0) {
        const float cap = c.final_logit_softcap, inv = 1.0f / cap;
        for (float& v : logits) v = cap * std::tanh(v * inv);
    }
}

// Input xn_ (normed hidden states), output xn_ (after attn_output).
void CpuForward::gemma4_attention(int l, const Batch& batch, KvCache& kv) {
    const ModelConfig& c = m_.cfg;
    const LayerWeights& L = m_.layers[l];
    const int n = batch.size();
    const int H = c.n_head[l], Hkv = c.n_head_kv[l], D = c.head_dim_k[l];
    const size_t qd = (size_t)H * D, kd = (size_t)Hkv * D;
    q_.resize((size_t)n * qd);
    k_.resize((size_t)n * kd);
    v_.resize((size_t)n * kd);
    attn_.resize((size_t)n * qd);
    linear(L.wq, xn_.data(), n, q_.data(), *pool_, *act_scratch_);
    linear(L.wk, xn_.data(), n, k_.data(), *pool_, *act_scratch_);
    if (L.wv.present()) linear(L.wv, xn_.data(), n, v_.data(), *pool_, *act_scratch_);
    else std::copy(k_.begin(), k_.begin() + (ptrdiff_t)((size_t)n * kd), v_.begin());  // K = V: the raw projection
    const bool swa = c.is_swa(l);
    const int n_rot = swa ? c.n_rot_swa : c.n_rot;
    const float* inv_freq = swa ? rope_inv_freq_swa_.data() : rope_inv_freq_.data();
    for (int t = 0; t < n; t++) {
        float* qt = &q_[(size_t)t * qd];
        float* kt = &k_[(size_t)t * kd];
        float* vt = &v_[(size_t)t * kd];
        for (int h = 0; h < H; h++) rms_norm(qt + (size_t)h * D, f32(L.q_norm), qt + (size_t)h * D, D, c.rms_eps);
        for (int h = 0; h < Hkv; h++) {
            rms_norm(kt + (size_t)h * D, f32(L.k_norm), kt + (size_t)h * D, D, c.rms_eps);
            rms_norm_plain(vt + (size_t)h * D, vt + (size_t)h * D, D, c.rms_eps);
        }
        rope(qt, H, D, n_rot, RopeStyle::Neox, batch.pos[t], inv_freq);
        rope(kt, Hkv, D, n_rot, RopeStyle::Neox, batch.pos[t], inv_freq);
        kv.store(l, batch.seq[t], batch.pos[t], kt, vt);
    }
    AttnParams ap;
    ap.n_head = H;
    ap.scale = 1.0f;
    pool_->parallel_for(n, 1, [&](int64_t begin, int64_t end, int) {
        for (int64_t t = begin; t < end; t++)
            kv.attend(l, batch.seq[t], batch.pos[t] + 1, &q_[(size_t)t * qd], &attn_[(size_t)t * qd], ap);
    });
    linear(L.wo, attn_.data(), n, xn_.data(), *pool_, *act_scratch_);
}

// out[t] = down(gelu(gate x[t]) * up x[t]) for x = xn_.
void CpuForward::gelu_ffn(const Weight& gate, const Weight& up, const Weight& down, int n, float* out) {
    const int64_t ff = gate.rows();
    gate_.resize((size_t)n * ff);
    up_.resize((size_t)n * ff);
    linear(gate, xn_.data(), n, gate_.data(), *pool_, *act_scratch_);
    linear(up, xn_.data(), n, up_.data(), *pool_, *act_scratch_);
    for (size_t i = 0; i < (size_t)n * ff; i++) gate_[i] = gelu_tanh(gate_[i]) * up_[i];
    linear(down, gate_.data(), n, out, *pool_, *act_scratch_);
}

// The routed experts of layer l on the residual stream x_ (HF Gemma4TextRouter / Gemma4TextExperts).
// Tokens are grouped by expert so each expert's weights are read once per step.
void CpuForward::gemma4_experts(int l, int n, float* out) {
    const ModelConfig& c = m_.cfg;
    const LayerWeights& L = m_.layers[l];
    const int NE = c.n_expert, top = c.n_expert_used, E = c.n_embd;
    // router input: rms_norm(x) / sqrt(E) * scale; the experts' input: pre_ffw_norm_2(x)
    moe_x_.resize((size_t)n * E);
    const float* rs = f32(L.ffn_gate_inp_scale);
    const float root = 1.0f / std::sqrt((float)E);
    for (int t = 0; t < n; t++) {
        float* r = &moe_x_[(size_t)t * E];
        rms_norm_plain(&x_[(size_t)t * E], r, E, c.rms_eps);
        for (int i = 0; i < E; i++) r[i] = r[i] * root * rs[i];
    }
    std::vector<float> router((size_t)n * NE);
    linear(L.ffn_gate_inp, moe_x_.data(), n, router.data(), *pool_, *act_scratch_);
    for (int t = 0; t < n; t++) rms_norm(&x_[(size_t)t * E], f32(L.pre_ffw_norm_2), &moe_x_[(size_t)t * E], E, c.rms_eps);

    const float* per_expert = L.ffn_down_exps_scale.present() ? f32(L.ffn_down_exps_scale) : nullptr;
    const ExpertRouting routed = route_top_k(router.data(), n, NE, top, per_expert);
    run_experts(L, routed, moe_x_.data(), n, /*gelu=*/true, out);
}

}  // namespace rotor
