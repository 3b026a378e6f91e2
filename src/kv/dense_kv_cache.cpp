#include "kv/dense_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace rotor {

DenseKvCache::DenseKvCache(KvGeometry geometry, int n_seq, int n_ctx_per_seq)
    : geo_(std::move(geometry)), n_seq_(n_seq), n_ctx_(n_ctx_per_seq) {
    if (n_seq <= 0 || n_ctx_per_seq <= 0) throw Error("KV cache: need at least one sequence and one position");
    slabs_.resize((size_t)n_seq * geo_.n_layer());
    reserved_.assign(n_seq, 0);
}

void DenseKvCache::check(int layer, int seq) const {
    if (seq < 0 || seq >= n_seq_) throw Error("KV cache: sequence " + std::to_string(seq) + " out of range");
    if (layer < 0 || layer >= geo_.n_layer()) throw Error("KV cache: layer out of range");
}

DenseKvCache::Slab& DenseKvCache::slab(int layer, int seq) { return slabs_[(size_t)seq * geo_.n_layer() + layer]; }
const DenseKvCache::Slab& DenseKvCache::slab(int layer, int seq) const {
    return slabs_[(size_t)seq * geo_.n_layer() + layer];
}

void DenseKvCache::seq_reserve(int seq, int n_tokens) {
    check(0, seq);
    if (n_tokens > n_ctx_)
        throw KvCacheFull("sequence needs " + std::to_string(n_tokens) + " positions, its context is " +
                          std::to_string(n_ctx_));
    if (reserved_[seq] == 0 && n_tokens > 0) {
        for (int l = 0; l < geo_.n_layer(); l++) {
            Slab& s = slab(l, seq);
            // no K where the key comes from the value
            s.k.assign(geo_.key_from_value_at(l) ? 0 : (size_t)n_ctx_ * geo_.n_head_kv[l] * geo_.head_dim_k[l], 0.0f);
            s.v.assign((size_t)n_ctx_ * geo_.n_head_kv[l] * geo_.head_dim_v[l], 0.0f);
        }
    }
    reserved_[seq] = std::max(reserved_[seq], n_tokens);
}

void DenseKvCache::seq_truncate(int seq, int n_tokens) {
    check(0, seq);
    if (n_tokens <= 0) {
        for (int l = 0; l < geo_.n_layer(); l++) {
            Slab& s = slab(l, seq);
            std::vector<float>().swap(s.k);
            std::vector<float>().swap(s.v);
        }
        reserved_[seq] = 0;
    } else {
        reserved_[seq] = std::min(reserved_[seq], n_tokens);
    }
}

void DenseKvCache::store(int layer, int seq, int pos, const float* k, const float* v) {
    check(layer, seq);
    if (pos < 0 || pos >= reserved_[seq]) throw Error("KV cache: store outside the reserved positions");
    const size_t dk = (size_t)geo_.n_head_kv[layer] * geo_.head_dim_k[layer];
    const size_t dv = (size_t)geo_.n_head_kv[layer] * geo_.head_dim_v[layer];
    Slab& s = slab(layer, seq);
    if (!geo_.key_from_value_at(layer)) memcpy(s.k.data() + pos * dk, k, dk * sizeof(float));
    memcpy(s.v.data() + pos * dv, v, dv * sizeof(float));
}

void DenseKvCache::attend(int layer, int seq, int n_kv, const float* q, float* out, const AttnParams& p) const {
    check(layer, seq);
    if (n_kv <= 0 || n_kv > reserved_[seq]) throw Error("KV cache: attention over unreserved positions");
    const int hkv = geo_.n_head_kv[layer], dk = geo_.head_dim_k[layer], dv = geo_.head_dim_v[layer];
    const int group = p.n_head / hkv;
    const Slab& s = slab(layer, seq);
    const int w_len = geo_.window_of(layer);
    const int t0 = w_len > 0 ? std::max(0, n_kv - w_len) : 0;  // sliding window: the last w_len positions
    std::vector<float> w((size_t)n_kv), derived;
    const bool kfv = geo_.key_from_value_at(layer);
    if (kfv) {  // every position's key, rebuilt from its value
        derived.resize((size_t)n_kv * hkv * dk);
        for (int t = t0; t < n_kv; t++)
            for (int g = 0; g < hkv; g++)
                geo_.derive_key(layer, t, s.v.data() + ((size_t)t * hkv + g) * dv, &derived[((size_t)t * hkv + g) * dk]);
    }
    const float* keys = kfv ? derived.data() : s.k.data();
    for (int h = 0; h < p.n_head; h++) {
        const int g = h / group;
        const float* qh = q + (size_t)h * dk;
        float mx = -INFINITY;
        for (int t = t0; t < n_kv; t++) {
            const float* kt = keys + ((size_t)t * hkv + g) * dk;
            float d = 0;
            for (int i = 0; i < dk; i++) d += qh[i] * kt[i];
            w[t] = d * p.scale;
            mx = std::max(mx, w[t]);
        }
        float sum = 0;
        for (int t = t0; t < n_kv; t++) {
            w[t] = std::exp(w[t] - mx);
            sum += w[t];
        }
        float* oh = out + (size_t)h * dv;
        std::fill(oh, oh + dv, 0.0f);
        for (int t = t0; t < n_kv; t++) {
            const float a = w[t] / sum;
            const float* vt = s.v.data() + ((size_t)t * hkv + g) * dv;
            for (int i = 0; i < dv; i++) oh[i] += a * vt[i];
        }
    }
}

size_t DenseKvCache::bytes_allocated() const {
    size_t b = 0;
    for (const auto& s : slabs_) b += (s.k.size() + s.v.size()) * sizeof(float);
    return b;
}

}  // namespace rotor
