#include "kv/kv_pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace rotor {

KvPoolLayout make_kv_layout(const KvGeometry& geo, const std::string& k_type, const std::string& v_type,
                            int block_tokens, int batch_tokens) {
    if (block_tokens <= 0) throw Error("KV block size must be positive");
    if (batch_tokens <= 0) throw Error("KV pool: batch size must be positive");
    KvPoolLayout L;
    L.geo = geo;
    L.block_tokens = block_tokens;
    L.batch_tokens = batch_tokens;
    for (int l = 0; l < geo.n_layer(); l++) {
        const bool has_kv = geo.n_head_kv[l] > 0;
        const bool kfv = has_kv && geo.key_from_value_at(l);
        if (kfv) {
            const KvGeometry::KeyFromValue& f = geo.key_from_value[l];
            if (geo.head_dim_k[l] != geo.head_dim_v[l] || (int)f.k_weight.size() != geo.head_dim_k[l] ||
                f.n_rot < 0 || f.n_rot > geo.head_dim_k[l] || f.n_rot % 2 || (int)f.inv_freq.size() < f.n_rot / 2)
                throw Error("KV cache: layer " + std::to_string(l) + " derives keys from values but its shapes disagree");
        }
        L.v_fmt.push_back(has_kv ? &require_kv_format(v_type, geo.head_dim_v[l]) : nullptr);
        // no K rows where keys come from values: k_fmt then only marks the layer as cached (the V type)
        L.k_fmt.push_back(!has_kv ? nullptr : kfv ? L.v_fmt.back() : &require_kv_format(k_type, geo.head_dim_k[l]));
    }
    return L;
}

std::string kv_layout_notes(const KvPoolLayout& L) {
    std::string layers, type;
    for (int l = 0; l < L.geo.n_layer(); l++)
        if (L.k_fmt[l] && !L.k_stored(l)) {
            layers += (layers.empty() ? "" : ",") + std::to_string(l);
            type = L.v_fmt[l]->name();
        }
    if (layers.empty()) return {};
    return "layers " + layers + " (K = V) store one " + type +
           " row per position and KV head; each key is rebuilt from it on read (k_norm weight, RoPE)";
}

namespace {
uint64_t k_row_bytes(const KvPoolLayout& L, int l) {  // 0 where the key comes from the value
    return L.k_stored(l) ? L.k_fmt[l]->row_bytes(L.geo.head_dim_k[l]) : 0;
}
uint64_t position_bytes(const KvPoolLayout& L, int l) {  // one position of layer l, K and V, every KV head
    return (uint64_t)L.geo.n_head_kv[l] * (k_row_bytes(L, l) + L.v_fmt[l]->row_bytes(L.geo.head_dim_v[l]));
}
}  // namespace

uint64_t kv_block_bytes(const KvPoolLayout& L) {
    uint64_t per_token = 0;
    for (int l = 0; l < L.geo.n_layer(); l++)
        if (L.k_fmt[l] && !L.ring(l)) per_token += position_bytes(L, l);
    return per_token * (uint64_t)L.block_tokens;
}

int kv_ring_tokens(const KvPoolLayout& L, int l, int n_ctx) {
    if (!L.ring(l)) return 0;
    const int64_t tokens = std::min<int64_t>(n_ctx, (int64_t)L.geo.window_of(l) + L.batch_tokens);
    return (int)((tokens + L.block_tokens - 1) / L.block_tokens * L.block_tokens);
}

uint64_t kv_ring_bytes_per_seq(const KvPoolLayout& L, int n_ctx) {
    uint64_t b = 0;
    for (int l = 0; l < L.geo.n_layer(); l++)
        if (L.ring(l)) b += (uint64_t)kv_ring_tokens(L, l, n_ctx) * position_bytes(L, l);
    return b;
}

double kv_bytes_per_token(const KvPoolLayout& L) { return (double)kv_block_bytes(L) / L.block_tokens; }

std::unique_ptr<PagedKvCache> make_paged_kv_cache(const KvGeometry& geo, const std::string& k_type,
                                                  const std::string& v_type, int n_seq, int n_ctx, int block_tokens,
                                                  int batch_tokens) {
    const int64_t blocks_per_seq = (n_ctx + block_tokens - 1) / block_tokens;
    return std::make_unique<PagedKvCache>(make_kv_layout(geo, k_type, v_type, block_tokens, batch_tokens),
                                          blocks_per_seq * n_seq, n_seq, n_ctx);
}

PagedKvCache::PagedKvCache(KvPoolLayout layout, int64_t n_blocks, int n_seq, int n_ctx_max)
    : layout_(std::move(layout)), n_blocks_(n_blocks), n_ctx_max_(n_ctx_max) {
    if (n_blocks <= 0 || n_seq <= 0 || n_ctx_max <= 0) throw Error("KV pool: blocks, sequences and context must be positive");
    if (n_blocks > (1 << 30)) throw Error("KV pool: too many blocks");
    const int nl = layout_.geo.n_layer();
    k_row_bytes_.resize(nl);
    v_row_bytes_.resize(nl);
    k_arena_.resize(nl);
    v_arena_.resize(nl);
    ring_tokens_.assign(nl, 0);
    ring_bytes_ = kv_ring_bytes_per_seq(layout_, n_ctx_max);
    for (int l = 0; l < nl; l++) {
        if (!layout_.k_fmt[l]) continue;
        k_row_bytes_[l] = k_row_bytes(layout_, l);
        v_row_bytes_[l] = layout_.v_fmt[l]->row_bytes(layout_.geo.head_dim_v[l]);
        ring_tokens_[l] = kv_ring_tokens(layout_, l, n_ctx_max);
        // rows: n_blocks blocks of block_tokens positions, or n_seq rings of ring_tokens positions
        const uint64_t positions = ring_tokens_[l] ? (uint64_t)n_seq * ring_tokens_[l]
                                                   : (uint64_t)n_blocks * layout_.block_tokens;
        const uint64_t rows = positions * layout_.geo.n_head_kv[l];
        try {
            k_arena_[l].reset(new uint8_t[(size_t)(rows * k_row_bytes_[l])]);
            v_arena_[l].reset(new uint8_t[(size_t)(rows * v_row_bytes_[l])]);
        } catch (const std::bad_alloc&) {
            throw Error("KV pool: cannot allocate " + std::to_string(bytes_capacity()) + " bytes");
        }
        // A ring that can wrap within a sequence bounds the positions one step may store.
        if (ring_tokens_[l] && ring_tokens_[l] < n_ctx_max) {
            const int step = ring_tokens_[l] - layout_.geo.window_of(l) + 1;
            max_step_ = max_step_ == 0 ? step : std::min(max_step_, step);
        }
    }
    refs_.assign((size_t)n_blocks, 0);
    free_.reserve((size_t)n_blocks);
    for (int64_t b = n_blocks - 1; b >= 0; b--) free_.push_back((int)b);  // hand out low ids first
    seqs_.resize(n_seq);
}

PagedKvCache::~PagedKvCache() = default;

void PagedKvCache::check_seq(int seq) const {
    if (seq < 0 || seq >= (int)seqs_.size()) throw Error("KV cache: sequence " + std::to_string(seq) + " out of range");
}

uint8_t* PagedKvCache::k_row(int layer, int block, int slot, int head) const {
    const uint64_t idx = ((uint64_t)block * layout_.block_tokens + slot) * layout_.geo.n_head_kv[layer] + head;
    return k_arena_[layer].get() + idx * k_row_bytes_[layer];
}
uint8_t* PagedKvCache::v_row(int layer, int block, int slot, int head) const {
    const uint64_t idx = ((uint64_t)block * layout_.block_tokens + slot) * layout_.geo.n_head_kv[layer] + head;
    return v_arena_[layer].get() + idx * v_row_bytes_[layer];
}

uint8_t* PagedKvCache::k_at(int layer, int seq, int pos, int head) const {
    if (const int R = ring_tokens_[layer]) {
        const uint64_t idx = ((uint64_t)seq * R + (uint64_t)(pos % R)) * layout_.geo.n_head_kv[layer] + head;
        return k_arena_[layer].get() + idx * k_row_bytes_[layer];
    }
    const int B = layout_.block_tokens;
    return k_row(layer, seqs_[seq].blocks[pos / B], pos % B, head);
}
uint8_t* PagedKvCache::v_at(int layer, int seq, int pos, int head) const {
    if (const int R = ring_tokens_[layer]) {
        const uint64_t idx = ((uint64_t)seq * R + (uint64_t)(pos % R)) * layout_.geo.n_head_kv[layer] + head;
        return v_arena_[layer].get() + idx * v_row_bytes_[layer];
    }
    const int B = layout_.block_tokens;
    return v_row(layer, seqs_[seq].blocks[pos / B], pos % B, head);
}

int PagedKvCache::seq_window_floor(int seq, int layer) const {
    check_seq(seq);
    const int R = ring_tokens_[layer];
    if (R == 0) return 0;
    return std::max(0, seqs_[seq].hi - R + 1);  // a ring slot holds the latest position stored into it
}

uint64_t PagedKvCache::bytes_used() const {
    uint64_t rings = 0;
    for (const Seq& s : seqs_)
        if (s.n_tokens > 0) rings += ring_bytes_;
    return (uint64_t)(n_blocks_ - free_blocks()) * kv_block_bytes(layout_) + rings;
}

int PagedKvCache::alloc_block() {
    const int b = free_.back();
    free_.pop_back();
    refs_[b] = 1;
    return b;
}

void PagedKvCache::release_block(int b) {
    if (--refs_[b] == 0) free_.push_back(b);
}

void PagedKvCache::seq_reserve(int seq, int n_tokens) {
    check_seq(seq);
    Seq& s = seqs_[seq];
    if (n_tokens > n_ctx_max_)
        throw KvCacheFull("sequence needs " + std::to_string(n_tokens) + " positions, the limit per sequence is " +
                          std::to_string(n_ctx_max_));
    if (n_tokens <= s.n_tokens) return;
    const int need = (n_tokens + layout_.block_tokens - 1) / layout_.block_tokens - (int)s.blocks.size();
    if (need > (int)free_.size())
        throw KvCacheFull("KV pool is full: sequence needs " + std::to_string(need) + " more blocks, " +
                          std::to_string(free_.size()) + " free of " + std::to_string(n_blocks_));
    for (int i = 0; i < need; i++) s.blocks.push_back(alloc_block());
    s.n_tokens = n_tokens;
}

void PagedKvCache::seq_truncate(int seq, int n_tokens) {
    check_seq(seq);
    Seq& s = seqs_[seq];
    n_tokens = std::max(0, std::min(n_tokens, s.n_tokens));
    const int keep = (n_tokens + layout_.block_tokens - 1) / layout_.block_tokens;
    while ((int)s.blocks.size() > keep) {
        release_block(s.blocks.back());
        s.blocks.pop_back();
    }
    s.n_tokens = n_tokens;
    if (n_tokens == 0) s.hi = -1;  // an empty sequence starts its rings afresh
}

int PagedKvCache::seq_tokens(int seq) const {
    check_seq(seq);
    return seqs_[seq].n_tokens;
}

void PagedKvCache::seq_share_prefix(int src, int dst, int n_tokens) {
    check_seq(src);
    check_seq(dst);
    if (src == dst) throw Error("KV cache: a sequence cannot share a prefix with itself");
    if (!seqs_[dst].blocks.empty()) throw Error("KV cache: prefix sharing needs an empty destination sequence");
    if (n_tokens < 0 || n_tokens > seqs_[src].n_tokens) throw Error("KV cache: shared prefix longer than the source");
    const int nb = (n_tokens + layout_.block_tokens - 1) / layout_.block_tokens;
    for (int i = 0; i < nb; i++) {
        const int b = seqs_[src].blocks[i];
        refs_[b]++;
        seqs_[dst].blocks.push_back(b);
    }
    seqs_[dst].n_tokens = n_tokens;
    seqs_[dst].hi = n_tokens > 0 ? seqs_[src].hi : -1;
    if (n_tokens > 0)
        for (int l = 0; l < layout_.geo.n_layer(); l++) {
            const int R = ring_tokens_[l];
            if (!R) continue;
            const uint64_t rows = (uint64_t)R * layout_.geo.n_head_kv[l];
            memcpy(k_at(l, dst, 0, 0), k_at(l, src, 0, 0), rows * k_row_bytes_[l]);
            memcpy(v_at(l, dst, 0, 0), v_at(l, src, 0, 0), rows * v_row_bytes_[l]);
        }
}

void PagedKvCache::make_block_private(int seq, int bi) {
    int& b = seqs_[seq].blocks[bi];
    if (refs_[b] == 1) return;
    if (free_.empty()) throw KvCacheFull("KV pool is full: no block left to copy a shared block into");
    const int fresh = alloc_block();
    for (int l = 0; l < layout_.geo.n_layer(); l++) {
        if (!layout_.k_fmt[l] || ring_tokens_[l]) continue;
        const uint64_t rows = (uint64_t)layout_.block_tokens * layout_.geo.n_head_kv[l];
        memcpy(k_row(l, fresh, 0, 0), k_row(l, b, 0, 0), rows * k_row_bytes_[l]);
        memcpy(v_row(l, fresh, 0, 0), v_row(l, b, 0, 0), rows * v_row_bytes_[l]);
    }
    release_block(b);
    b = fresh;
}

void PagedKvCache::store(int layer, int seq, int pos, const float* k, const float* v) {
    check_seq(seq);
    if (layer < 0 || layer >= layout_.geo.n_layer() || !layout_.k_fmt[layer]) throw Error("KV cache: bad layer");
    Seq& s = seqs_[seq];
    if (pos < 0 || pos >= s.n_tokens) throw Error("KV cache: store outside the reserved positions");
    if (ring_tokens_[layer]) s.hi = std::max(s.hi, pos);
    else make_block_private(seq, pos / layout_.block_tokens);
    const int hkv = layout_.geo.n_head_kv[layer], dk = layout_.geo.head_dim_k[layer], dv = layout_.geo.head_dim_v[layer];
    const bool k_stored = layout_.k_stored(layer);
    for (int h = 0; h < hkv; h++) {
        if (k_stored) layout_.k_fmt[layer]->quantize(k + (size_t)h * dk, k_at(layer, seq, pos, h), dk);
        layout_.v_fmt[layer]->quantize(v + (size_t)h * dv, v_at(layer, seq, pos, h), dv);
    }
}

void PagedKvCache::attend(int layer, int seq, int n_kv, const float* q, float* out, const AttnParams& p) const {
    check_seq(seq);
    const Seq& s = seqs_[seq];
    if (n_kv <= 0 || n_kv > s.n_tokens) throw Error("KV cache: attention over unreserved positions");
    const KvFormat& kf = *layout_.k_fmt[layer];
    const KvFormat& vf = *layout_.v_fmt[layer];
    const int hkv = layout_.geo.n_head_kv[layer], dk = layout_.geo.head_dim_k[layer], dv = layout_.geo.head_dim_v[layer];
    const int group = p.n_head / hkv;
    const int w_len = layout_.geo.window_of(layer);
    const int t0 = w_len > 0 ? std::max(0, n_kv - w_len) : 0;  // sliding window: the last w_len positions
    if (ring_tokens_[layer] && t0 < seq_window_floor(seq, layer))
        throw Error("KV cache: the sliding-window ring no longer holds position " + std::to_string(t0));
    thread_local std::vector<float> scores, q_rot;
    if (!layout_.k_stored(layer)) {
        attend_key_from_value(layer, seq, t0, n_kv, q, out, p);
        return;
    }
    scores.resize((size_t)n_kv);
    q_rot.resize((size_t)dk);
    for (int h = 0; h < p.n_head; h++) {
        const int g = h / group;
        memcpy(q_rot.data(), q + (size_t)h * dk, (size_t)dk * sizeof(float));
        kf.rotate(q_rot.data(), dk);  // once per query head, never per key
        float mx = -INFINITY;
        for (int t = t0; t < n_kv; t++) {
            scores[t] = kf.dot(k_at(layer, seq, t, g), q_rot.data(), dk) * p.scale;
            mx = std::max(mx, scores[t]);
        }
        double sum = 0;
        for (int t = t0; t < n_kv; t++) {
            scores[t] = std::exp(scores[t] - mx);
            sum += scores[t];
        }
        float* oh = out + (size_t)h * dv;
        std::fill(oh, oh + dv, 0.0f);
        const float inv = (float)(1.0 / sum);
        for (int t = t0; t < n_kv; t++) vf.axpy(v_at(layer, seq, t, g), scores[t] * inv, oh, dv);
        vf.unrotate(oh, dv);  // once per output head
    }
}

// A key-from-value layer: each position's value is decoded once per KV head to the model's basis, its
// key rebuilt (KvGeometry::derive_key) and dotted with the group's query heads (not rotated: the key is
// in the model's basis); the values are then summed in the stored basis and the output rotated back.
void PagedKvCache::attend_key_from_value(int layer, int seq, int t0, int n_kv, const float* q, float* out,
                                         const AttnParams& p) const {
    const KvFormat& vf = *layout_.v_fmt[layer];
    const int hkv = layout_.geo.n_head_kv[layer], d = layout_.geo.head_dim_v[layer];
    const int group = p.n_head / hkv, n = n_kv - t0;
    thread_local std::vector<float> scores, v, k;
    scores.resize((size_t)group * n);
    v.resize((size_t)d);
    k.resize((size_t)d);
    for (int g = 0; g < hkv; g++) {
        for (int t = t0; t < n_kv; t++) {
            vf.dequantize(v_at(layer, seq, t, g), v.data(), d);
            layout_.geo.derive_key(layer, t, v.data(), k.data());
            for (int j = 0; j < group; j++) {
                const float* qh = q + (size_t)(g * group + j) * d;
                float dot = 0;
                for (int i = 0; i < d; i++) dot += qh[i] * k[i];
                scores[(size_t)j * n + (t - t0)] = dot * p.scale;
            }
        }
        for (int j = 0; j < group; j++) {
            float* sc = &scores[(size_t)j * n];
            const float mx = *std::max_element(sc, sc + n);
            double sum = 0;
            for (int i = 0; i < n; i++) sum += (sc[i] = std::exp(sc[i] - mx));
            float* oh = out + (size_t)(g * group + j) * d;
            std::fill(oh, oh + d, 0.0f);
            const float inv = (float)(1.0 / sum);
            for (int t = t0; t < n_kv; t++) vf.axpy(v_at(layer, seq, t, g), sc[t - t0] * inv, oh, d);
            vf.unrotate(oh, d);
        }
    }
}

}  // namespace rotor
