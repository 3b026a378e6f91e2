// gemma4 on the GPU: the CPU forward's computation (model/forward_gemma4.cpp) step for step.
//   x = embd * sqrt(E)
//   per layer: x += post_attention_norm(attn(attn_norm(x)))
//              m = MLP(ffn_norm(x)) (GELU-tanh, gated); MoE layers: m = post_ffw_norm_1(m) +
//                  post_ffw_norm_2(experts(pre_ffw_norm_2(x))), routed on rms_norm(x) / sqrt(E) * scale
//              x = (x + post_ffw_norm(m)) * layer_output_scale
//   logits = cap * tanh(W_out output_norm(x) / cap)
// Attention: per-layer heads and head sizes, q/k norms with weights, v with a weightless norm (on K = V
// layers v is the raw key projection), NeoX RoPE with the sliding layers' own base and dims or the
// global layers' rope_freqs (proportional), scale 1, sliding-window layers over their KV rings.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "cuda/cuda_forward_gemma4.h"
#include "cuda/gemma4_kernels.h"

namespace rotor::cuda {

namespace {
const float* f32p(const void* p) { return static_cast<const float*>(p); }
}  // namespace

void CudaForward::init_gemma4() {
    const ModelConfig& c = m_.cfg;
    g4_ = std::make_unique<Gemma4Buffers>();
    Gemma4Buffers& g = *g4_;
    // A sliding-window ring holds window + max_seq_tokens positions: a step that stores more positions of
    // one sequence would overwrite what its first queries still see. Larger steps are checked on the host
    // (enqueue_gemma4); steps of up to 8 tokens replay CUDA graphs that check nothing, so they must fit.
    const int graph_tokens = std::min(kGraphMaxTokens, opt_.max_batch);
    if (opt_.max_seq_tokens < graph_tokens)
        throw Error("gemma4 on the GPU: max_seq_tokens " + std::to_string(opt_.max_seq_tokens) + " is below " +
                    std::to_string(graph_tokens) +
                    " (steps of up to 8 tokens replay CUDA graphs, which cannot check the sliding-window rings)");

    std::vector<float> inv = rope_inv_freq_swa(m_);
    if (inv.empty()) inv.push_back(0.0f);
    g.inv_freq_swa.resize(inv.size() * 4);
    g.inv_freq_swa.upload(inv.data(), inv.size() * 4);

    const size_t B = opt_.max_batch, E = c.n_embd;
    g.ffn_out.resize(B * E * 4);
    g.router_w.assign(c.n_layer, nullptr);
    g.experts.assign(c.n_layer, ExpertWeights{});
    std::vector<int> moe_layers;
    for (int l = 0; l < c.n_layer; l++)
        if (layers_[l].ffn_gate_inp.data) moe_layers.push_back(l);
    if (!moe_layers.empty()) {
        const int NE = c.n_expert, top = c.n_expert_used;
        g.moe_in.resize(B * E * 4);
        g.router_in.resize(B * E * 4);
        g.moe_out.resize(B * E * 4);
        g.router_logits.resize(B * NE * 4);
        g.expert_ids.resize(B * top * 4);
        g.expert_w.resize(B * top * 4);
        // The router's input rms_norm(x) / sqrt(E) * scale as one norm weight per layer.
        std::vector<float> rw(moe_layers.size() * E);
        const float root = 1.0f / std::sqrt((float)E);
        for (size_t i = 0; i < moe_layers.size(); i++) {
            const float* rs = reinterpret_cast<const float*>(m_.layers[moe_layers[i]].ffn_gate_inp_scale.data);
            for (size_t e = 0; e < E; e++) rw[i * E + e] = root * rs[e];
        }
        g.router_norm.resize(rw.size() * 4);
        g.router_norm.upload(rw.data(), rw.size() * 4);
        for (size_t i = 0; i < moe_layers.size(); i++) {
            const int l = moe_layers[i];
            const DevLayer& L = layers_[l];
            g.router_w[l] = g.router_norm.get<float>() + i * E;
            auto stacked = [&](const DevWeight& w) {
                return ExpertMatrix{w.type, w.data, w.rows / NE, w.cols};
            };
            ExpertWeights& ew = g.experts[l];
            if (L.ffn_gate_up_exps.data) {
                ew.gate_up = stacked(L.ffn_gate_up_exps);
            } else {
                ew.gate = stacked(L.ffn_gate_exps);
                ew.up = stacked(L.ffn_up_exps);
            }
            ew.down = stacked(L.ffn_down_exps);
            ew.n_expert = NE;
            ew.n_ff = c.n_ff_exp;
            ew.n_embd = c.n_embd;
            ew.gelu = true;
            MoeRunner::validate(ew);  // refused now, naming the tensor, rather than at the first step
        }
        g.moe = std::make_unique<MoeRunner>(opt_.max_batch, top, c.n_embd, c.n_ff_exp);
        // the exact path keeps the experts off the tensor cores too (float weights then run in f32)
        if (opt_.exact_matmul) g.moe->set_tc_min_tokens(std::numeric_limits<int>::max());
        activation_bytes_ += g.moe->device_bytes();
    }
    for (const DeviceBuffer* b : {&g.inv_freq_swa, &g.ffn_out, &g.moe_in, &g.moe_out, &g.router_logits, &g.expert_ids,
                                  &g.expert_w, &g.router_norm, &g.router_in})
        activation_bytes_ += b->bytes();
}

void CudaForward::enqueue_gemma4(int n, int max_kv, const std::vector<int>& out_rows) {
    const ModelConfig& c = m_.cfg;
    Gemma4Buffers& g = *g4_;
    cudaStream_t s = stream_;
    if (n > opt_.max_seq_tokens) {  // never a captured step (init_gemma4): the staged batch is this step's
        const int32_t* seq = staging_ + 2 * opt_.max_batch;
        g.seq_tokens.assign(opt_.n_seq, 0);
        for (int t = 0; t < n; t++)
            if (++g.seq_tokens[seq[t]] > opt_.max_seq_tokens)
                throw Error("gemma4 on the GPU: a step stores more than max_seq_tokens (" +
                            std::to_string(opt_.max_seq_tokens) + ") positions of sequence " + std::to_string(seq[t]) +
                            ", more than its sliding-window rings hold; split the batch");
    }
    const int E = c.n_embd;
    const float eps = c.rms_eps;
    float* x = x_.get<float>();
    float* xn = xn_.get<float>();
    float* q = q_.get<float>();
    float* k = k_.get<float>();
    float* v = v_.get<float>();
    float* attn = attn_.get<float>();
    const int32_t* pos = pos_.get<int32_t>();
    get_rows(tok_embd_.type, tok_embd_.data, E, tok_.get<int32_t>(), n, x, s);
    scale_values(x, (int64_t)n * E, c.embd_scale, s);
    rms_norm(x, f32p(layers_[0].attn_norm.data), xn, n, E, eps, s);  // later layers': the previous residual's

    for (int l = 0; l < c.n_layer; l++) {
        const DevLayer& L = layers_[l];
        const int H = c.n_head[l], Hkv = c.n_head_kv[l], D = c.head_dim_k[l];
        const bool moe = L.ffn_gate_inp.data != nullptr;
        // ---- attention (xn = attn_norm(x))
        {
            const MatmulJob qkv[] = {{L.wq.type, L.wq.data, L.wq.rows, q},
                                     {L.wk.type, L.wk.data, L.wk.rows, k},
                                     {L.wv.type, L.wv.data, L.wv.rows, v}};
            linear_multi(qkv, L.wv.data ? 3 : 2, L.wq.cols, xn, n);
        }
        // q/k norms and RoPE (the sliding layers' base and dims, or rope_freqs' proportional RoPE on the
        // global ones), v's weightless norm, of the raw key projection on K = V layers: one kernel
        const bool swa = c.is_swa(l);
        gemma4_qkv_prep(q, k, v, n, H, Hkv, D, swa ? c.n_rot_swa : c.n_rot, f32p(L.q_norm.data), f32p(L.k_norm.data),
                        L.wv.data == nullptr, pos, swa ? g.inv_freq_swa.get<float>() : inv_freq_.get<float>(), eps, s);
        kv_store(L.kv, k, v, seq_.get<int32_t>(), pos, n, s);  // rotates K and V itself; V only on K = V layers
        const bool rotated = kv_elem_rotated(L.kv.elem);
        // attention runs in the rotated basis, but for K = V layers it builds keys in the model's
        if (rotated && !L.kv.key_from_value()) kv_rotate_rows(L.kv.elem, q, n * H, D, false, s);
        attend(L.kv, q, attn, n, H, /*scale=*/1.0f, max_kv);  // the q/k norms set the scale
        if (rotated) kv_rotate_rows(L.kv.elem, attn, n * H, D, true, s);
        linear(L.wo, attn, n, xn);
        float* moe_in = g.moe_in.get<float>();
        float* router_in = g.router_in.get<float>();
        {  // x += post_attention_norm(attn); then the feed-forward inputs: ffn_norm(x) and the experts'
            NextNorms next;
            next.add(f32p(L.ffn_norm.data), xn);
            if (moe) {
                next.add(g.router_w[l], router_in);  // rms_norm(x) / sqrt(E) * ffn_gate_inp.scale
                next.add(f32p(L.pre_ffw_norm_2.data), moe_in);
            }
            sandwich_residual(x, xn, nullptr, nullptr, nullptr, f32p(L.post_attn_norm.data), nullptr, n, E, eps, s,
                              next);
        }

        // ---- dense GELU MLP, then the routed experts beside it
        const int ff = c.n_ff[l];
        {
            const MatmulJob gate_up[] = {{L.ffn_gate.type, L.ffn_gate.data, L.ffn_gate.rows, gate_.get<float>()},
                                         {L.ffn_up.type, L.ffn_up.data, L.ffn_up.rows, up_.get<float>()}};
            linear_multi(gate_up, 2, L.ffn_gate.cols, xn, n);
        }
        gelu_tanh_mul(gate_.get<float>(), up_.get<float>(), (int64_t)n * ff, s);
        float* ffn_out = g.ffn_out.get<float>();
        linear(L.ffn_down, gate_.get<float>(), n, ffn_out);
        const float* out_scale = f32p(L.out_scale.data);  // null: 1
        NextNorms next;  // the next layer's attn_norm(x)
        if (l + 1 < c.n_layer) next.add(f32p(layers_[l + 1].attn_norm.data), xn);
        if (moe) {
            float* logits = g.router_logits.get<float>();
            int32_t* ids = g.expert_ids.get<int32_t>();
            float* w = g.expert_w.get<float>();
            // the router in f32 whatever the batch (no f16 tensor-core rounding): the CPU's expert choices
            matmul(L.ffn_gate_inp.type, L.ffn_gate_inp.data, L.ffn_gate_inp.rows, L.ffn_gate_inp.cols, router_in, n,
                   logits, s);
            moe_route(logits, n, c.n_expert, c.n_expert_used, f32p(L.ffn_down_exps_scale.data), ids, w, s);
            g.moe->run(g.experts[l], moe_in, n, ids, w, g.moe_out.get<float>(), s);
            sandwich_residual(x, ffn_out, f32p(L.post_ffw_norm_1.data), g.moe_out.get<float>(),
                              f32p(L.post_ffw_norm_2.data), f32p(L.post_ffw_norm.data), out_scale, n, E, eps, s, next);
        } else {
            sandwich_residual(x, ffn_out, nullptr, nullptr, nullptr, f32p(L.post_ffw_norm.data), out_scale, n, E, eps, s,
                              next);
        }
    }

    const int n_out = (int)out_rows.size();
    enqueue_logits(n_out, out_rows);
    if (c.final_logit_softcap > 0 && n_out)
        softcap(logits_.get<float>(), (int64_t)n_out * c.n_vocab, c.final_logit_softcap, s);
}

}  // namespace rotor::cuda
