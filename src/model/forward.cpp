#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "model/forward_ops.h"

namespace rotor {

using namespace ops;

namespace {

void add_bias(float* y, const Weight& b, int n_tok, int dim) {
    if (!b.present()) return;
    const auto* bias = reinterpret_cast<const float*>(b.data);
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < dim; i++) y[(size_t)t * dim + i] += bias[i];
}

}  // namespace

KvGeometry kv_geometry(const ModelConfig& c) {
    KvGeometry g;
    g.n_head_kv = c.n_head_kv;
    g.head_dim_k = c.head_dim_k;
    g.head_dim_v = c.head_dim_v;
    g.window = c.window;
    for (int l = 0; l < c.n_layer; l++)
        if (c.is_recurrent(l) || l >= c.n_layer_main) g.n_head_kv[l] = 0;
    return g;
}

KvGeometry kv_geometry(const Model& m) {
    const ModelConfig& c = m.cfg;
    KvGeometry g = kv_geometry(c);
    std::vector<float> inv_freq;  // the global layers' RoPE, shared by every K = V layer
    for (int l = 0; l < c.n_layer; l++) {
        if (!c.v_is_k_at(l) || g.n_head_kv[l] == 0) continue;
        const Weight& w = m.layers[l].k_norm;
        if (!w.present() || w.type != GgmlType::F32 || w.cols() * w.rows() != c.head_dim_k[l])
            throw Error("layer " + std::to_string(l) + ": K = V needs an F32 attn_k_norm of " +
                        std::to_string(c.head_dim_k[l]) + " values (its keys are rebuilt from the values with it)");
        if (g.key_from_value.empty()) g.key_from_value.resize(c.n_layer);
        KvGeometry::KeyFromValue& f = g.key_from_value[l];
        const float* kw = reinterpret_cast<const float*>(w.data);
        f.k_weight.assign(kw, kw + c.head_dim_k[l]);
        if (inv_freq.empty()) inv_freq = rope_inv_freq(m);
        f.inv_freq = inv_freq;
        f.n_rot = c.n_rot;
    }
    return g;
}

RecurrentGeometry recurrent_geometry(const ModelConfig& c) {
    RecurrentGeometry g;
    g.conv_channels.assign(c.n_layer, 0);
    g.n_v_heads.assign(c.n_layer, 0);
    if (!c.hybrid()) return g;
    g.conv_kernel = c.ssm_conv_kernel;
    g.d_k = c.ssm_d_k;
    g.d_v = c.ssm_d_v;
    for (int l = 0; l < c.n_layer; l++)
        if (c.is_recurrent(l)) {
            g.conv_channels[l] = c.ssm_conv_dim();
            g.n_v_heads[l] = c.ssm_n_v_heads;
        }
    return g;
}

std::vector<float> rope_inv_freq(const Model& m) {
    const ModelConfig& c = m.cfg;
    std::vector<float> inv((size_t)(c.n_rot / 2));
    const auto* factors = reinterpret_cast<const float*>(m.rope_freqs.data);
    for (int i = 0; i < c.n_rot / 2; i++) {
        double f = c.rope_freq_scale / std::pow((double)c.rope_base, 2.0 * i / c.n_rot);
        if (factors) f /= factors[i];
        inv[i] = (float)f;
    }
    return inv;
}

std::vector<float> rope_inv_freq_swa(const Model& m) {
    const ModelConfig& c = m.cfg;
    std::vector<float> inv((size_t)(c.n_rot_swa / 2));
    for (int i = 0; i < c.n_rot_swa / 2; i++) inv[i] = (float)(1.0 / std::pow((double)c.rope_base_swa, 2.0 * i / c.n_rot_swa));
    return inv;
}

CpuForward::CpuForward(const Model& model, int n_threads)
    : m_(model), pool_(std::make_unique<ThreadPool>(std::max(1, n_threads))),
      act_scratch_(std::make_unique<QuantizedActs>()) {
    rope_inv_freq_ = rope_inv_freq(m_);
    rope_inv_freq_swa_ = rope_inv_freq_swa(m_);
}

CpuForward::~CpuForward() = default;

int CpuForward::n_threads() const { return pool_->size(); }

// Validates the batch, reserves every sequence's positions (a full cache fails before any state
// changes) and writes the token embeddings to x_.
void CpuForward::embed(const Batch& batch, KvCache& kv) {
    const ModelConfig& c = m_.cfg;
    const int n = batch.size(), E = c.n_embd;
    for (int t = 0; t < n; t++) {
        if (batch.token[t] < 0 || batch.token[t] >= c.n_vocab)
            throw Error("token id " + std::to_string(batch.token[t]) + " is outside the vocabulary (" +
                        std::to_string(c.n_vocab) + ")");
        if (batch.pos[t] < 0) throw Error("negative position in batch");
    }
    {
        std::vector<std::pair<int, int>> need;  // (seq, max pos + 1)
        for (int t = 0; t < n; t++) {
            auto it = std::find_if(need.begin(), need.end(), [&](auto& p) { return p.first == batch.seq[t]; });
            if (it == need.end()) need.push_back({batch.seq[t], batch.pos[t] + 1});
            else it->second = std::max(it->second, batch.pos[t] + 1);
        }
        for (auto& [s, len] : need) kv.seq_reserve(s, len);
    }
    x_.resize((size_t)n * E);
    xn_.resize((size_t)n * E);
    for (int t = 0; t < n; t++)
        dequantize_row(m_.tok_embd.type, m_.tok_embd.data + (uint64_t)batch.token[t] * m_.tok_embd.row_bytes(),
                       x_.data() + (size_t)t * E, E);
}

void CpuForward::attention(int l, const Batch& batch, KvCache& kv) {
    const ModelConfig& c = m_.cfg;
    const LayerWeights& L = m_.layers[l];
    const int n = batch.size();
    const int H = c.n_head[l], Hkv = c.n_head_kv[l], dk = c.head_dim_k[l], dv = c.head_dim_v[l];
    const int qd = H * dk, kd = Hkv * dk, vd = Hkv * dv;
    attn_.resize((size_t)n * H * dv);
    for (int t = 0; t < n; t++) {
        float* qt = &q_[(size_t)t * qd];
        float* kt = &k_[(size_t)t * kd];
        if (c.qk_norm) {
            for (int h = 0; h < H; h++) rms_norm(qt + h * dk, f32(L.q_norm), qt + h * dk, dk, c.rms_eps);
            for (int h = 0; h < Hkv; h++) rms_norm(kt + h * dk, f32(L.k_norm), kt + h * dk, dk, c.rms_eps);
        }
        rope(qt, H, dk, c.n_rot, c.rope_style, batch.pos[t], rope_inv_freq_.data());
        rope(kt, Hkv, dk, c.n_rot, c.rope_style, batch.pos[t], rope_inv_freq_.data());
        kv.store(l, batch.seq[t], batch.pos[t], kt, &v_[(size_t)t * vd]);
    }
    AttnParams ap;
    ap.n_head = H;
    ap.scale = 1.0f / std::sqrt((float)dk);
    pool_->parallel_for(n, 1, [&](int64_t begin, int64_t end, int) {
        for (int64_t t = begin; t < end; t++)
            kv.attend(l, batch.seq[t], batch.pos[t] + 1, &q_[(size_t)t * qd], &attn_[(size_t)t * H * dv], ap);
    });
}

// out[t] = down(silu(gate x[t]) * up x[t]) for x = xn_.
void CpuForward::swiglu(const Weight& gate, const Weight& up, const Weight& down, int n, float* out) {
    const int64_t ff = gate.rows();
    gate_.resize((size_t)n * ff);
    up_.resize((size_t)n * ff);
    linear(gate, xn_.data(), n, gate_.data(), *pool_, *act_scratch_);
    linear(up, xn_.data(), n, up_.data(), *pool_, *act_scratch_);
    for (size_t i = 0; i < (size_t)n * ff; i++) gate_[i] = silu(gate_[i]) * up_[i];
    linear(down, gate_.data(), n, out, *pool_, *act_scratch_);
}

// Final norm and output projection, only for the rows that want logits.
void CpuForward::output(const Batch& batch, std::vector<float>& logits) {
    const ModelConfig& c = m_.cfg;
    const int n = batch.size(), E = c.n_embd;
    std::vector<int> rows;
    for (int t = 0; t < n; t++)
        if (batch.want_logits[t]) rows.push_back(t);
    out_hidden_.resize(rows.size() * E);
    for (size_t r = 0; r < rows.size(); r++)
        rms_norm(&x_[(size_t)rows[r] * E], f32(m_.output_norm), &out_hidden_[r * E], E, c.rms_eps);
    logits.resize(rows.size() * (size_t)c.n_vocab);
    if (!rows.empty()) linear(m_.output, out_hidden_.data(), (int)rows.size(), logits.data(), *pool_, *act_scratch_);
}

void CpuForward::forward(const Batch& batch, KvCache& kv, RecurrentState* rs, std::vector<float>& logits) {
    const ModelConfig& c = m_.cfg;
    const int n = batch.size();
    const int E = c.n_embd;
    if (n == 0) {
        logits.clear();
        return;
    }
    if (c.hybrid()) {
        if (!rs) throw Error("model '" + c.arch_name + "' has recurrent layers: the forward pass needs a RecurrentState");
        forward_hybrid(batch, kv, *rs, logits);
        return;
    }
    if (c.arch == Arch::Gemma4) {
        forward_gemma4(batch, kv, logits);
        return;
    }
    embed(batch, kv);

    for (int l = 0; l < c.n_layer; l++) {
        const LayerWeights& L = m_.layers[l];
        const int H = c.n_head[l], Hkv = c.n_head_kv[l], dk = c.head_dim_k[l], dv = c.head_dim_v[l];
        const int qd = H * dk, kd = Hkv * dk, vd = Hkv * dv;
        q_.resize((size_t)n * qd);
        k_.resize((size_t)n * kd);
        v_.resize((size_t)n * vd);

        for (int t = 0; t < n; t++) rms_norm(&x_[(size_t)t * E], f32(L.attn_norm), &xn_[(size_t)t * E], E, c.rms_eps);
        linear(L.wq, xn_.data(), n, q_.data(), *pool_, *act_scratch_);
        linear(L.wk, xn_.data(), n, k_.data(), *pool_, *act_scratch_);
        linear(L.wv, xn_.data(), n, v_.data(), *pool_, *act_scratch_);
        add_bias(q_.data(), L.bq, n, qd);
        add_bias(k_.data(), L.bk, n, kd);
        add_bias(v_.data(), L.bv, n, vd);
        attention(l, batch, kv);
        linear(L.wo, attn_.data(), n, xn_.data(), *pool_, *act_scratch_);
        for (size_t i = 0; i < (size_t)n * E; i++) x_[i] += xn_[i];

        for (int t = 0; t < n; t++) rms_norm(&x_[(size_t)t * E], f32(L.ffn_norm), &xn_[(size_t)t * E], E, c.rms_eps);
        swiglu(L.ffn_gate, L.ffn_up, L.ffn_down, n, xn_.data());
        for (size_t i = 0; i < (size_t)n * E; i++) x_[i] += xn_[i];
    }
    output(batch, logits);
}

}  // namespace rotor
