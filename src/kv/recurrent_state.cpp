#include "kv/recurrent_state.h"

#include <algorithm>
#include <string>

namespace rotor {

bool RecurrentGeometry::any() const {
    for (int l = 0; l < n_layer(); l++)
        if (conv_channels[l] > 0 || n_v_heads[l] > 0) return true;
    return false;
}

size_t RecurrentGeometry::floats_per_seq() const {
    size_t n = 0;
    for (int l = 0; l < n_layer(); l++) n += conv_floats(l) + ssm_floats(l);
    return n;
}

RecurrentState::RecurrentState(RecurrentGeometry geometry, int n_seq) : geo_(std::move(geometry)) {
    if (n_seq <= 0) throw Error("recurrent state: need at least one sequence");
    if ((int)geo_.n_v_heads.size() != geo_.n_layer()) throw Error("recurrent state: inconsistent geometry");
    if (geo_.any() && (geo_.conv_kernel < 1 || geo_.d_k <= 0 || geo_.d_v <= 0))
        throw Error("recurrent state: invalid conv kernel or head sizes");
    conv_off_.resize(geo_.n_layer());
    ssm_off_.resize(geo_.n_layer());
    for (int l = 0; l < geo_.n_layer(); l++) {
        conv_off_[l] = per_seq_;
        per_seq_ += geo_.conv_floats(l);
        ssm_off_[l] = per_seq_;
        per_seq_ += geo_.ssm_floats(l);
    }
    data_.assign(per_seq_ * (size_t)n_seq, 0.0f);
    pos_.assign(n_seq, 0);
}

void RecurrentState::check(int seq) const {
    if (seq < 0 || seq >= n_seq())
        throw Error("recurrent state: sequence " + std::to_string(seq) + " is outside the store's " +
                    std::to_string(n_seq()));
}

int RecurrentState::seq_pos(int seq) const {
    check(seq);
    return pos_[seq];
}

void RecurrentState::seq_reset(int seq) {
    check(seq);
    std::fill(seq_base(seq), seq_base(seq) + per_seq_, 0.0f);
    pos_[seq] = 0;
}

void RecurrentState::seq_copy(int src, int dst) {
    check(src);
    check(dst);
    if (src == dst) return;
    std::copy(seq_base(src), seq_base(src) + per_seq_, seq_base(dst));
    pos_[dst] = pos_[src];
}

RecurrentState::Snapshot RecurrentState::snapshot(int seq) const {
    check(seq);
    Snapshot s;
    s.pos = pos_[seq];
    const float* b = data_.data() + (size_t)seq * per_seq_;
    s.data.assign(b, b + per_seq_);
    return s;
}

void RecurrentState::restore(int seq, const Snapshot& s) {
    check(seq);
    if (s.data.size() != per_seq_ || s.pos < 0)
        throw Error("recurrent state: snapshot does not match this store's geometry");
    std::copy(s.data.begin(), s.data.end(), seq_base(seq));
    pos_[seq] = s.pos;
}

float* RecurrentState::conv(int layer, int seq) {
    check(seq);
    return seq_base(seq) + conv_off_[layer];
}

float* RecurrentState::ssm(int layer, int seq) {
    check(seq);
    return seq_base(seq) + ssm_off_[layer];
}

void RecurrentState::set_seq_pos(int seq, int pos) {
    check(seq);
    pos_[seq] = pos;
}

}  // namespace rotor
