#include "model/model.h"

#include <cmath>

namespace rotor {

namespace {

std::string shape_str(const int64_t* ne, int n) {
    std::string s = "{";
    for (int i = 0; i < n; i++) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "}";
}

class Binder {
public:
    explicit Binder(const gguf::File& f) : f_(f) {}

    // Binds tensor `name` and checks its shape (trailing 1s may be omitted in the file).
    Weight get(const std::string& name, std::vector<int64_t> shape, bool required = true) const {
        const gguf::TensorInfo* t = f_.tensor(name);
        Weight w;
        if (!t) {
            if (required) f_.fail("missing tensor '" + name + "'");
            return w;
        }
        for (size_t d = 0; d < 4; d++) {
            const int64_t want = d < shape.size() ? shape[d] : 1;
            if (t->ne[d] != want)
                f_.fail("tensor '" + name + "' has shape " + shape_str(t->ne, 4) + ", expected " +
                        shape_str(shape.data(), (int)shape.size()));
        }
        if (!t->data) f_.fail("tensor '" + name + "' has no data in the file");
        const FormatInfo& fi = format_info(t->type);
        if (!fi.can_dequantize) f_.fail("tensor '" + name + "' has type " + std::string(fi.name) + ", which rotor cannot compute with");
        w.type = t->type;
        w.data = t->data;
        for (int d = 0; d < 4; d++) w.ne[d] = t->ne[d];
        w.name = name;
        return w;
    }

    // 1-D tensors (norms, biases) must be F32 so the forward pass can read them directly.
    Weight vec(const std::string& name, int64_t n, bool required = true) const {
        Weight w = get(name, {n}, required);
        if (w.present() && w.type != GgmlType::F32)
            f_.fail("tensor '" + name + "' must be f32, found " + std::string(format_info(w.type).name));
        return w;
    }

    bool has(const std::string& name) const { return f_.tensor(name) != nullptr; }
    [[noreturn]] void fail(const std::string& msg) const { f_.fail(msg); }

private:
    const gguf::File& f_;
};

// qwen35 / qwen35moe (gguf-conventions.md 3.5, 3.6). MTP layers (index >= n_layer_main) stay unbound.
// The routed experts' stacked tensors of one layer: gate and up fused or apart, then down.
void bind_experts(const Binder& b, const std::string& p, int64_t E, int64_t fe, int64_t n, LayerWeights& L) {
    if (b.has(p + "ffn_gate_up_exps.weight")) {
        L.ffn_gate_up_exps = b.get(p + "ffn_gate_up_exps.weight", {E, 2 * fe, n});
    } else {
        L.ffn_gate_exps = b.get(p + "ffn_gate_exps.weight", {E, fe, n});
        L.ffn_up_exps = b.get(p + "ffn_up_exps.weight", {E, fe, n});
    }
    L.ffn_down_exps = b.get(p + "ffn_down_exps.weight", {fe, E, n});
}

void bind_hybrid(const Binder& b, const ModelConfig& c, std::vector<LayerWeights>& layers) {
    const int64_t E = c.n_embd;
    for (int l = 0; l < c.n_layer_main; l++) {
        const std::string p = "blk." + std::to_string(l) + ".";
        LayerWeights& L = layers[l];
        L.attn_norm = b.vec(p + "attn_norm.weight", E);
        L.ffn_norm = b.vec(p + "post_attention_norm.weight", E);
        if (c.is_recurrent(l)) {
            const int64_t vdim = (int64_t)c.ssm_n_v_heads * c.ssm_d_v, hv = c.ssm_n_v_heads;
            L.ssm_in = b.get(p + "attn_qkv.weight", {E, c.ssm_conv_dim()});
            L.ssm_z = b.get(p + "attn_gate.weight", {E, vdim});
            L.ssm_conv1d = b.get(p + "ssm_conv1d.weight", {c.ssm_conv_kernel, c.ssm_conv_dim()});
            if (L.ssm_conv1d.type != GgmlType::F32)
                b.fail("tensor '" + p + "ssm_conv1d.weight' must be f32");
            L.ssm_dt = b.vec(p + "ssm_dt.bias", hv);
            L.ssm_a = b.vec(p + "ssm_a", hv);
            L.ssm_beta = b.get(p + "ssm_beta.weight", {E, hv});
            L.ssm_alpha = b.get(p + "ssm_alpha.weight", {E, hv});
            L.ssm_norm = b.vec(p + "ssm_norm.weight", c.ssm_d_v);
            L.ssm_out = b.get(p + "ssm_out.weight", {vdim, E});
        } else {
            const int64_t hd = c.head_dim_k[l], q = c.q_dim(l);
            if (c.head_dim_v[l] != hd) b.fail("qwen35: key and value head sizes must be equal");
            L.wq = b.get(p + "attn_q.weight", {E, 2 * q});
            L.wk = b.get(p + "attn_k.weight", {E, c.kv_dim_k(l)});
            L.wv = b.get(p + "attn_v.weight", {E, c.kv_dim_v(l)});
            L.wo = b.get(p + "attn_output.weight", {q, E});
            L.q_norm = b.vec(p + "attn_q_norm.weight", hd);
            L.k_norm = b.vec(p + "attn_k_norm.weight", hd);
        }
        if (c.arch == Arch::Qwen35Moe) {
            const int64_t n = c.n_expert, fe = c.n_ff_exp;
            L.ffn_gate_inp = b.get(p + "ffn_gate_inp.weight", {E, n});
            if (L.ffn_gate_inp.type != GgmlType::F32) b.fail("tensor '" + p + "ffn_gate_inp.weight' must be f32");
            bind_experts(b, p, E, fe, n, L);
            if (c.n_ff_shexp > 0) {
                L.ffn_gate_inp_shexp = b.vec(p + "ffn_gate_inp_shexp.weight", E);
                L.ffn_gate_shexp = b.get(p + "ffn_gate_shexp.weight", {E, c.n_ff_shexp});
                L.ffn_up_shexp = b.get(p + "ffn_up_shexp.weight", {E, c.n_ff_shexp});
                L.ffn_down_shexp = b.get(p + "ffn_down_shexp.weight", {c.n_ff_shexp, E});
            }
        } else {
            const int64_t ff = c.n_ff[l];
            L.ffn_gate = b.get(p + "ffn_gate.weight", {E, ff});
            L.ffn_up = b.get(p + "ffn_up.weight", {E, ff});
            L.ffn_down = b.get(p + "ffn_down.weight", {ff, E});
        }
    }
}

// gemma4 (gguf-conventions.md 3.8). Every layer: attention with q/k norms (no attn_v on K = V layers),
// sandwich norms, the dense GELU MLP; MoE layers (ffn_gate_inp present) add the routed experts.
void bind_gemma4(const Binder& b, const ModelConfig& c, std::vector<LayerWeights>& layers) {
    const int64_t E = c.n_embd;
    for (int l = 0; l < c.n_layer; l++) {
        const std::string p = "blk." + std::to_string(l) + ".";
        LayerWeights& L = layers[l];
        const int64_t hd = c.head_dim_k[l], q = c.q_dim(l), kv = c.kv_dim_k(l), ff = c.n_ff[l];
        L.attn_norm = b.vec(p + "attn_norm.weight", E);
        L.wq = b.get(p + "attn_q.weight", {E, q});
        L.wk = b.get(p + "attn_k.weight", {E, kv});
        if (!c.v_is_k[l]) L.wv = b.get(p + "attn_v.weight", {E, c.kv_dim_v(l)});
        L.wo = b.get(p + "attn_output.weight", {q, E});
        L.q_norm = b.vec(p + "attn_q_norm.weight", hd);
        L.k_norm = b.vec(p + "attn_k_norm.weight", hd);
        L.post_attn_norm = b.vec(p + "post_attention_norm.weight", E);
        L.ffn_norm = b.vec(p + "ffn_norm.weight", E);
        L.ffn_gate = b.get(p + "ffn_gate.weight", {E, ff});
        L.ffn_up = b.get(p + "ffn_up.weight", {E, ff});
        L.ffn_down = b.get(p + "ffn_down.weight", {ff, E});
        L.post_ffw_norm = b.vec(p + "post_ffw_norm.weight", E);
        L.out_scale = b.vec(p + "layer_output_scale.weight", 1, false);
        if (c.n_expert > 0 && b.has(p + "ffn_gate_inp.weight")) {
            const int64_t n = c.n_expert, fe = c.n_ff_exp;
            L.ffn_gate_inp = b.get(p + "ffn_gate_inp.weight", {E, n});
            if (L.ffn_gate_inp.type != GgmlType::F32) b.fail("tensor '" + p + "ffn_gate_inp.weight' must be f32");
            L.ffn_gate_inp_scale = b.vec(p + "ffn_gate_inp.scale", E);
            L.pre_ffw_norm_2 = b.vec(p + "pre_ffw_norm_2.weight", E);
            L.post_ffw_norm_1 = b.vec(p + "post_ffw_norm_1.weight", E);
            L.post_ffw_norm_2 = b.vec(p + "post_ffw_norm_2.weight", E);
            bind_experts(b, p, E, fe, n, L);
            L.ffn_down_exps_scale = b.vec(p + "ffn_down_exps.scale", n, false);
        }
    }
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path) { return from_file(gguf::File::open(path)); }

std::unique_ptr<Model> Model::from_file(gguf::File file) {
    auto m = std::make_unique<Model>(Model{std::move(file), {}, {}, {}, {}, {}, {}});
    const gguf::File& f = m->file;
    ModelConfig& c = m->cfg;
    c = read_model_config(f);
    Binder b(f);
    const int64_t E = c.n_embd, V = c.n_vocab;
    m->tok_embd = b.get("token_embd.weight", {E, V});
    m->output_norm = b.vec("output_norm.weight", E);
    m->output = c.tied_output ? m->tok_embd : b.get("output.weight", {E, V});
    if (c.has_rope_freqs) m->rope_freqs = b.vec("rope_freqs.weight", c.n_rot / 2);
    m->layers.resize(c.n_layer);
    if (c.hybrid()) {
        bind_hybrid(b, c, m->layers);
        return m;
    }
    if (c.arch == Arch::Gemma4) {
        if (!c.has_rope_freqs) b.fail("gemma4: missing tensor 'rope_freqs.weight' (the global layers' proportional RoPE)");
        bind_gemma4(b, c, m->layers);
        return m;
    }
    for (int l = 0; l < c.n_layer; l++) {
        const std::string p = "blk." + std::to_string(l) + ".";
        LayerWeights& L = m->layers[l];
        const int64_t q = c.q_dim(l), k = c.kv_dim_k(l), v = c.kv_dim_v(l), ff = c.n_ff[l];
        L.attn_norm = b.vec(p + "attn_norm.weight", E);
        L.wq = b.get(p + "attn_q.weight", {E, q});
        L.wk = b.get(p + "attn_k.weight", {E, k});
        L.wv = b.get(p + "attn_v.weight", {E, v});
        L.wo = b.get(p + "attn_output.weight", {c.n_head[l] * (int64_t)c.head_dim_v[l], E});
        if (c.qkv_bias) {
            L.bq = b.vec(p + "attn_q.bias", q);
            L.bk = b.vec(p + "attn_k.bias", k);
            L.bv = b.vec(p + "attn_v.bias", v);
        }
        if (c.qk_norm) {
            L.q_norm = b.vec(p + "attn_q_norm.weight", c.head_dim_k[l]);
            L.k_norm = b.vec(p + "attn_k_norm.weight", c.head_dim_k[l]);
        }
        L.ffn_norm = b.vec(p + "ffn_norm.weight", E);
        L.ffn_gate = b.get(p + "ffn_gate.weight", {E, ff});
        L.ffn_up = b.get(p + "ffn_up.weight", {E, ff});
        L.ffn_down = b.get(p + "ffn_down.weight", {ff, E});
    }
    return m;
}

uint64_t Model::weight_bytes() const {
    uint64_t b = output.bytes();  // token_embd: one row per token, negligible
    for (const auto& L : layers) {
        for (const Weight* w : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.bq, &L.bk, &L.bv, &L.q_norm, &L.k_norm,
                                &L.ffn_norm, &L.ffn_gate, &L.ffn_up, &L.ffn_down, &L.ssm_in, &L.ssm_z, &L.ssm_conv1d,
                                &L.ssm_dt, &L.ssm_a, &L.ssm_beta, &L.ssm_alpha, &L.ssm_norm, &L.ssm_out, &L.ffn_gate_inp,
                                &L.ffn_gate_inp_shexp, &L.ffn_gate_shexp, &L.ffn_up_shexp, &L.ffn_down_shexp,
                                &L.post_attn_norm, &L.post_ffw_norm, &L.pre_ffw_norm_2, &L.post_ffw_norm_1,
                                &L.post_ffw_norm_2, &L.ffn_gate_inp_scale, &L.ffn_down_exps_scale, &L.out_scale})
            if (w->present()) b += w->bytes();
        // routed experts: only n_expert_used of them are read per token
        for (const Weight* w : {&L.ffn_gate_exps, &L.ffn_up_exps, &L.ffn_down_exps, &L.ffn_gate_up_exps})
            if (w->present()) b += w->bytes() / (uint64_t)cfg.n_expert * (uint64_t)cfg.n_expert_used;
    }
    return b;
}

}  // namespace rotor
