// The KV cache seen by a model's forward pass: store one token's K and V for a layer, and run
// attention for one query over a sequence's cached positions. Attention lives behind this interface
// because a compressed cache must read its own format in place (and apply its rotation to the query
// and the output once); the forward pass never sees how keys and values are stored.
#pragma once
#include <cstdint>
#include <vector>

#include "common/error.h"
#include "common/rope.h"

namespace rotor {

// Shapes of the cache per layer (layers without a KV cache have n_head_kv == 0).
struct KvGeometry {
    std::vector<int> n_head_kv;
    std::vector<int> head_dim_k;
    std::vector<int> head_dim_v;
    // Sliding-window layers: a query at position p sees only positions (p - window, p], the last
    // `window` positions including itself (transformers' sliding_window, llama.cpp's n_swa). Empty or
    // 0 = the whole context.
    std::vector<int> window;
    // A layer whose keys are derived from its stored values (gemma4's K = V global layers): the cache
    // keeps only v (n_head_kv * head_dim_v floats per position; head_dim_k == head_dim_v) and the key of
    // position p is RoPE-NeoX(p; n_rot, inv_freq)(k_weight (.) v_p), exactly what the forward computes as
    // k there (k_norm = its weight times v's weightless norm, then RoPE). Empty: K and V stored apart.
    struct KeyFromValue {
        std::vector<float> k_weight;  // head_dim floats
        std::vector<float> inv_freq;  // n_rot / 2 frequencies
        int n_rot = 0;
    };
    std::vector<KeyFromValue> key_from_value;  // per layer, or empty
    int n_layer() const { return (int)n_head_kv.size(); }
    int window_of(int layer) const { return window.empty() ? 0 : window[layer]; }
    bool key_from_value_at(int layer) const {
        return layer < (int)key_from_value.size() && !key_from_value[layer].k_weight.empty();
    }
    // The key of a stored value v (head_dim floats, the model's basis) at position pos, into k.
    void derive_key(int layer, int pos, const float* v, float* k) const;
};

// Thrown when a sequence cannot grow: the pool is full or the sequence reached its context limit.
class KvCacheFull : public Error {
public:
    using Error::Error;
};

struct AttnParams {
    int n_head = 0;       // query heads; each group of n_head / n_head_kv shares one KV head
    float scale = 1.0f;   // applied to q.k before the softmax
};

class KvCache {
public:
    virtual ~KvCache() = default;
    virtual const KvGeometry& geometry() const = 0;

    // Make room for positions [0, n_tokens) of seq (throws KvCacheFull; nothing changes then).
    virtual void seq_reserve(int seq, int n_tokens) = 0;
    // Forget positions >= n_tokens of seq (n_tokens = 0 frees the sequence).
    virtual void seq_truncate(int seq, int n_tokens) = 0;
    virtual int seq_capacity(int seq) const = 0;

    // k: n_head_kv * head_dim_k floats, v: n_head_kv * head_dim_v floats, for position pos of seq (k is
    // not read on a key-from-value layer).
    virtual void store(int layer, int seq, int pos, const float* k, const float* v) = 0;
    // out[h] = sum_p softmax_p(scale * q[h] . k[p]) v[p] over positions p in [0, n_kv) of seq, where
    // q holds n_head * head_dim_k floats and out n_head * head_dim_v; on a sliding-window layer over
    // [max(0, n_kv - window), n_kv) only. Safe to call concurrently for different (seq, query) pairs
    // once every store of the step is done.
    virtual void attend(int layer, int seq, int n_kv, const float* q, float* out, const AttnParams& p) const = 0;

    // Sliding-window layers may keep only a ring of recent positions (the paged pool does). The rules a
    // forward pass follows then, both 0 for caches that keep every position:
    // - max_step_tokens(): the most positions one sequence may store in one step (all stored before any
    //   of them attends) without overwriting a position an earlier query of the step still sees;
    // - seq_window_floor(seq, layer): positions of seq below this may be gone from the layer's ring, so
    //   a step whose first position is p needs max(0, p - window + 1) >= it (after a rollback or a
    //   shared prefix further back than the ring reaches, the positions are lost: recompute them).
    virtual int max_step_tokens() const { return 0; }
    virtual int seq_window_floor(int seq, int layer) const {
        (void)seq;
        (void)layer;
        return 0;
    }
    // The longest n' <= n at which seq can be cut back (seq_truncate) or shared and continued: n unless
    // a sliding-window ring no longer holds the positions a query at n' would see.
    int seq_reusable(int seq, int n) const;
};

inline void KvGeometry::derive_key(int layer, int pos, const float* v, float* k) const {
    const KeyFromValue& f = key_from_value[layer];
    const int d = head_dim_k[layer];
    for (int i = 0; i < d; i++) k[i] = f.k_weight[i] * v[i];
    rope(k, 1, d, f.n_rot, RopeStyle::Neox, pos, f.inv_freq.data());
}

inline int KvCache::seq_reusable(int seq, int n) const {
    const KvGeometry& g = geometry();
    for (int l = 0; l < g.n_layer(); l++) {
        const int w = g.window_of(l);
        if (w <= 0 || g.n_head_kv[l] == 0) continue;
        const int floor = seq_window_floor(seq, l);
        if (floor > 0 && n > 0 && n - w + 1 < floor) return 0;  // only a fresh start is safe
    }
    return n;
}

}  // namespace rotor
