#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/matmul.h"
#include "cpu/thread_pool.h"

namespace rotor {

namespace {

void rms_norm(const float* x, const float* w, float* y, int n, float eps) {
    double ss = 0;  // double: the reference must not depend on summation order at large n
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = (float)(1.0 / std::sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

// y[t] = W x[t] for every token t of the batch.
void linear(const Weight& w, const float* x, int n_tok, float* y, ThreadPool& pool, QuantizedActs& scratch) {
    const WeightMatrix wm{w.type, w.rows(), w.cols(), w.data};
    matmul(wm, x, (size_t)w.cols(), n_tok, y, (size_t)w.rows(), &pool, cpu_isa_default(), &scratch);
}

void add_bias(float* y, const Weight& b, int n_tok, int dim) {
    if (!b.present()) return;
    const auto* bias = reinterpret_cast<const float*>(b.data);
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < dim; i++) y[(size_t)t * dim + i] += bias[i];
}

// Rotates the first n_rot dims of each head in place. Norm style pairs (2i, 2i+1); Neox pairs (i, i+n_rot/2).
void rope(float* x, int n_head, int head_dim, int n_rot, RopeStyle style, int pos, const float* inv_freq) {
    const int half = n_rot / 2;
    for (int h = 0; h < n_head; h++) {
        float* v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            const float theta = (float)pos * inv_freq[i];
            const float c = std::cos(theta), s = std::sin(theta);
            const int a = style == RopeStyle::Norm ? 2 * i : i;
            const int b = style == RopeStyle::Norm ? 2 * i + 1 : i + half;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace

KvGeometry kv_geometry(const ModelConfig& c) {
    KvGeometry g;
    g.n_head_kv = c.n_head_kv;
    g.head_dim_k = c.head_dim_k;
    g.head_dim_v = c.head_dim_v;
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

CpuForward::CpuForward(const Model& model, int n_threads)
    : m_(model), pool_(std::make_unique<ThreadPool>(std::max(1, n_threads))),
      act_scratch_(std::make_unique<QuantizedActs>()) {
    rope_inv_freq_ = rope_inv_freq(m_);
}

CpuForward::~CpuForward() = default;

int CpuForward::n_threads() const { return pool_->size(); }

void CpuForward::forward(const Batch& batch, KvCache& kv, std::vector<float>& logits) {
    const ModelConfig& c = m_.cfg;
    const int n = batch.size();
    const int E = c.n_embd;
    if (n == 0) {
        logits.clear();
        return;
    }
    // Validate the whole batch before touching the cache.
    for (int t = 0; t < n; t++) {
        if (batch.token[t] < 0 || batch.token[t] >= c.n_vocab)
            throw Error("token id " + std::to_string(batch.token[t]) + " is outside the vocabulary (" +
                        std::to_string(c.n_vocab) + ")");
        if (batch.pos[t] < 0) throw Error("negative position in batch");
    }
    // Reserve every sequence's positions first: a full cache fails before any state changes.
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

    for (int l = 0; l < c.n_layer; l++) {
        const LayerWeights& L = m_.layers[l];
        const int H = c.n_head[l], Hkv = c.n_head_kv[l], dk = c.head_dim_k[l], dv = c.head_dim_v[l];
        const int qd = H * dk, kd = Hkv * dk, vd = Hkv * dv;
        q_.resize((size_t)n * qd);
        k_.resize((size_t)n * kd);
        v_.resize((size_t)n * vd);
        attn_.resize((size_t)n * H * dv);

        const auto* attn_norm = reinterpret_cast<const float*>(L.attn_norm.data);
        for (int t = 0; t < n; t++) rms_norm(&x_[(size_t)t * E], attn_norm, &xn_[(size_t)t * E], E, c.rms_eps);
        linear(L.wq, xn_.data(), n, q_.data(), *pool_, *act_scratch_);
        linear(L.wk, xn_.data(), n, k_.data(), *pool_, *act_scratch_);
        linear(L.wv, xn_.data(), n, v_.data(), *pool_, *act_scratch_);
        add_bias(q_.data(), L.bq, n, qd);
        add_bias(k_.data(), L.bk, n, kd);
        add_bias(v_.data(), L.bv, n, vd);

        for (int t = 0; t < n; t++) {
            float* qt = &q_[(size_t)t * qd];
            float* kt = &k_[(size_t)t * kd];
            if (c.qk_norm) {
                const auto* qw = reinterpret_cast<const float*>(L.q_norm.data);
                const auto* kw = reinterpret_cast<const float*>(L.k_norm.data);
                for (int h = 0; h < H; h++) rms_norm(qt + h * dk, qw, qt + h * dk, dk, c.rms_eps);
                for (int h = 0; h < Hkv; h++) rms_norm(kt + h * dk, kw, kt + h * dk, dk, c.rms_eps);
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

        linear(L.wo, attn_.data(), n, xn_.data(), *pool_, *act_scratch_);
        for (size_t i = 0; i < (size_t)n * E; i++) x_[i] += xn_[i];

        // SwiGLU feed-forward
        const int ff = c.n_ff[l];
        gate_.resize((size_t)n * ff);
        up_.resize((size_t)n * ff);
        const auto* ffn_norm = reinterpret_cast<const float*>(L.ffn_norm.data);
        for (int t = 0; t < n; t++) rms_norm(&x_[(size_t)t * E], ffn_norm, &xn_[(size_t)t * E], E, c.rms_eps);
        linear(L.ffn_gate, xn_.data(), n, gate_.data(), *pool_, *act_scratch_);
        linear(L.ffn_up, xn_.data(), n, up_.data(), *pool_, *act_scratch_);
        for (size_t i = 0; i < (size_t)n * ff; i++) gate_[i] = silu(gate_[i]) * up_[i];
        linear(L.ffn_down, gate_.data(), n, xn_.data(), *pool_, *act_scratch_);
        for (size_t i = 0; i < (size_t)n * E; i++) x_[i] += xn_[i];
    }

    // Final norm and output projection, only for the rows that want logits.
    std::vector<int> rows;
    for (int t = 0; t < n; t++)
        if (batch.want_logits[t]) rows.push_back(t);
    out_hidden_.resize(rows.size() * E);
    const auto* onorm = reinterpret_cast<const float*>(m_.output_norm.data);
    for (size_t r = 0; r < rows.size(); r++)
        rms_norm(&x_[(size_t)rows[r] * E], onorm, &out_hidden_[r * E], E, c.rms_eps);
    logits.resize(rows.size() * (size_t)c.n_vocab);
    if (!rows.empty()) linear(m_.output, out_hidden_.data(), (int)rows.size(), logits.data(), *pool_, *act_scratch_);
}

}  // namespace rotor
