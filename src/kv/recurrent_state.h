// Per-sequence recurrent state of Gated DeltaNet layers (qwen35, qwen35moe), kept beside the KV cache:
// for each recurrent layer, the last conv_kernel - 1 inputs of the causal conv1d and the delta-rule
// state S (one d_k x d_v matrix per value head), all f32. A sequence's state summarizes every position
// it has consumed, so unlike the KV cache it cannot be truncated: going back to an earlier position
// needs a copy taken at that position (seq_copy into a spare slot, or snapshot()).
//
// Rules the forward pass enforces (and the server's prefix reuse must respect):
//   - a sequence's tokens in a batch have consecutive positions p0, p0+1, ... (in batch order);
//   - p0 == 0 starts the sequence afresh (its state is reset), otherwise p0 must equal seq_pos(seq),
//     the number of positions the state has consumed; anything else is a rotor::Error.
// So reusing a cached prefix of n tokens on a hybrid model needs both the KV blocks of those n
// positions (PagedKvCache::seq_share_prefix) and this state exactly at position n: the server has to
// keep a copy at the length it wants to reuse (e.g. at the end of each prompt's prefill), restore it
// with seq_copy / restore, and can only reuse prefixes whose length has such a copy.
#pragma once
#include <cstdint>
#include <vector>

#include "common/error.h"

namespace rotor {

// Shapes per layer; layers without recurrent state have conv_channels == 0 and n_v_heads == 0.
struct RecurrentGeometry {
    int conv_kernel = 0;               // K: the conv state keeps K - 1 inputs
    std::vector<int> conv_channels;    // per layer: 2 * H_k * d_k + H_v * d_v
    std::vector<int> n_v_heads;        // per layer: H_v
    int d_k = 0, d_v = 0;

    int n_layer() const { return (int)conv_channels.size(); }
    bool any() const;
    size_t conv_floats(int layer) const { return (size_t)(conv_kernel - 1) * (size_t)conv_channels[layer]; }
    size_t ssm_floats(int layer) const { return (size_t)n_v_heads[layer] * d_k * d_v; }
    size_t floats_per_seq() const;
};

class RecurrentState {
public:
    // All n_seq states are allocated now (zeroed): their size does not depend on the context length.
    RecurrentState(RecurrentGeometry geometry, int n_seq);

    const RecurrentGeometry& geometry() const { return geo_; }
    int n_seq() const { return (int)pos_.size(); }
    size_t bytes_per_seq() const { return geo_.floats_per_seq() * sizeof(float); }

    int seq_pos(int seq) const;            // positions consumed so far (0: fresh)
    void seq_reset(int seq);               // zero state, position 0
    void seq_copy(int src, int dst);       // dst becomes an exact copy of src (state and position)

    // A copy held outside the store, e.g. for prefix reuse across slots.
    struct Snapshot {
        int pos = 0;
        std::vector<float> data;
    };
    Snapshot snapshot(int seq) const;
    void restore(int seq, const Snapshot& s);

    // For the forward pass: the conv inputs [K-1][conv_channels] (oldest first) and the delta-rule
    // state [n_v_heads][d_k][d_v] of one layer of one sequence; and the position bookkeeping.
    float* conv(int layer, int seq);
    float* ssm(int layer, int seq);
    void set_seq_pos(int seq, int pos);

private:
    void check(int seq) const;
    float* seq_base(int seq) { return data_.data() + (size_t)seq * per_seq_; }

    RecurrentGeometry geo_;
    size_t per_seq_ = 0;
    std::vector<size_t> conv_off_, ssm_off_;  // per layer, within a sequence's block
    std::vector<float> data_;                 // [seq][layer blocks]
    std::vector<int> pos_;
};

}  // namespace rotor
