// The plain reference cache: f32 keys and values, one contiguous slab per (layer, sequence), sized for
// a fixed context per sequence. Exact, simple, and what every compressed cache is compared against.
#pragma once
#include <vector>

#include "kv/kv_cache.h"

namespace rotor {

class DenseKvCache final : public KvCache {
public:
    DenseKvCache(KvGeometry geometry, int n_seq, int n_ctx_per_seq);

    const KvGeometry& geometry() const override { return geo_; }
    void seq_reserve(int seq, int n_tokens) override;
    void seq_truncate(int seq, int n_tokens) override;
    int seq_capacity(int seq) const override { return n_ctx_; }
    void store(int layer, int seq, int pos, const float* k, const float* v) override;
    void attend(int layer, int seq, int n_kv, const float* q, float* out, const AttnParams& p) const override;

    size_t bytes_allocated() const;

private:
    struct Slab {
        std::vector<float> k, v;  // [n_ctx][n_head_kv * head_dim]
    };
    Slab& slab(int layer, int seq);
    const Slab& slab(int layer, int seq) const;
    void check(int layer, int seq) const;

    KvGeometry geo_;
    int n_seq_, n_ctx_;
    std::vector<Slab> slabs_;      // [seq][layer], allocated on first reserve
    std::vector<int> reserved_;    // per sequence: positions reserved
};

}  // namespace rotor
