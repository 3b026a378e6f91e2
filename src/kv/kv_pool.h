// The paged KV pool: one allocation of fixed-size blocks shared by all sequences, per-sequence block
// tables, blocks shared by reference count between sequences with a common prefix (copy on write),
// K and V formats chosen per layer, and exact byte accounting through kv_block_bytes() and
// kv_ring_bytes_per_seq(), which the memory planner's kv_bytes_per_slot() matches. A full pool is a
// KvCacheFull error, never corruption.
//
// Sliding-window layers (KvGeometry::window) do not use the blocks: each sequence owns a ring of
// ring_tokens = min(n_ctx, window + batch_tokens) positions rounded up to whole blocks, position p in
// slot p mod ring_tokens, so such a layer's memory is bounded by the window, not the context. A step
// may store up to ring_tokens - window + 1 positions of a sequence (max_step_tokens(); the CPU forward
// splits larger batches). Prefix sharing copies the rings (they are small); positions that a ring has
// overwritten are reported by seq_window_floor() / seq_reusable().
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/kv_format.h"

namespace rotor {

struct KvPoolLayout {
    KvGeometry geo;
    std::vector<const KvFormat*> k_fmt, v_fmt;  // per layer (nullptr where the layer has no cache)
    int block_tokens = 16;
    int batch_tokens = 512;  // positions one step may add to a sequence, beyond the window (ring sizes)
    bool ring(int layer) const { return k_fmt[layer] && geo.window_of(layer) > 0; }
    // Whether the layer stores K rows: not where keys are derived from values (k_fmt is then unused).
    bool k_stored(int layer) const { return k_fmt[layer] && !geo.key_from_value_at(layer); }
};

// Builds the layout for one K type and one V type on every layer; throws rotor::Error (at load time)
// when a type does not support a layer's head size. Key-from-value layers (KvGeometry) store V rows only:
// the V type holds them and the K type is not used there (kv_layout_notes says so).
KvPoolLayout make_kv_layout(const KvGeometry& geo, const std::string& k_type, const std::string& v_type,
                            int block_tokens = 16, int batch_tokens = 512);

// Bytes of one block (block_tokens positions of every layer that is not a sliding-window ring, K and
// V, scales included): the pool allocates n_blocks * this for those layers.
uint64_t kv_block_bytes(const KvPoolLayout& layout);
// What a user should know about the layout beyond the types asked for ("" when nothing): the layers that
// store one V row per position and derive keys from it.
std::string kv_layout_notes(const KvPoolLayout& layout);
// Positions of a sliding-window layer's ring for sequences of up to n_ctx positions (0 for other
// layers): min(n_ctx, window + batch_tokens), rounded up to whole blocks, as the planner counts them.
int kv_ring_tokens(const KvPoolLayout& layout, int layer, int n_ctx);
// Bytes of every ring of one sequence: the pool allocates n_seq * this beside the blocks.
uint64_t kv_ring_bytes_per_seq(const KvPoolLayout& layout, int n_ctx);
// Bytes per token of context of the block-paged layers (block bytes / block tokens).
double kv_bytes_per_token(const KvPoolLayout& layout);

class PagedKvCache;
// A pool sized for n_seq sequences of n_ctx positions each (every sequence can reach its context).
std::unique_ptr<PagedKvCache> make_paged_kv_cache(const KvGeometry& geo, const std::string& k_type,
                                                  const std::string& v_type, int n_seq, int n_ctx,
                                                  int block_tokens = 16, int batch_tokens = 512);

class PagedKvCache final : public KvCache {
public:
    // n_blocks blocks are allocated now; n_seq sequence slots; n_ctx_max positions per sequence at most.
    PagedKvCache(KvPoolLayout layout, int64_t n_blocks, int n_seq, int n_ctx_max);
    ~PagedKvCache() override;

    const KvGeometry& geometry() const override { return layout_.geo; }
    void seq_reserve(int seq, int n_tokens) override;
    void seq_truncate(int seq, int n_tokens) override;
    int seq_capacity(int seq) const override { return n_ctx_max_; }
    void store(int layer, int seq, int pos, const float* k, const float* v) override;
    void attend(int layer, int seq, int n_kv, const float* q, float* out, const AttnParams& p) const override;
    int max_step_tokens() const override { return max_step_; }
    int seq_window_floor(int seq, int layer) const override;

    // Make dst's first n_tokens positions share src's blocks (prefix reuse). dst must be empty.
    // A partially filled last block is shared too and copied when either sequence writes into it.
    // Sliding-window rings are copied whole (what src's ring has lost, dst's has too).
    void seq_share_prefix(int src, int dst, int n_tokens);
    int seq_tokens(int seq) const;  // positions reserved

    const KvPoolLayout& layout() const { return layout_; }
    int64_t n_blocks() const { return n_blocks_; }
    int64_t free_blocks() const { return (int64_t)free_.size(); }
    uint64_t ring_bytes_per_seq() const { return ring_bytes_; }
    int ring_tokens(int layer) const { return ring_tokens_[layer]; }
    // Blocks plus every sequence's rings: what the planner's kv_bytes_per_slot() counts per slot.
    uint64_t bytes_capacity() const {
        return (uint64_t)n_blocks_ * kv_block_bytes(layout_) + (uint64_t)seqs_.size() * ring_bytes_;
    }
    uint64_t bytes_used() const;
    int block_refcount(int block) const { return refs_[block]; }
    const std::vector<int>& block_table(int seq) const { return seqs_[seq].blocks; }

private:
    struct Seq {
        std::vector<int> blocks;
        int n_tokens = 0;
        int hi = -1;  // highest position stored in the rings since the sequence was last empty
    };
    void attend_key_from_value(int layer, int seq, int t0, int n_kv, const float* q, float* out,
                               const AttnParams& p) const;
    uint8_t* k_row(int layer, int block, int slot, int head) const;
    uint8_t* v_row(int layer, int block, int slot, int head) const;
    // The stored row of position pos of seq (blocks or ring).
    uint8_t* k_at(int layer, int seq, int pos, int head) const;
    uint8_t* v_at(int layer, int seq, int pos, int head) const;
    int alloc_block();
    void release_block(int b);
    void make_block_private(int seq, int block_index);  // copy on write
    void check_seq(int seq) const;

    KvPoolLayout layout_;
    int64_t n_blocks_;
    int n_ctx_max_;
    std::vector<uint64_t> k_row_bytes_, v_row_bytes_;   // per layer
    // per layer: [block][slot][head] rows, or for a ring layer [seq][ring slot][head] rows
    std::vector<std::unique_ptr<uint8_t[]>> k_arena_, v_arena_;
    std::vector<int> ring_tokens_;  // per layer, 0 = block-paged
    uint64_t ring_bytes_ = 0;       // per sequence
    int max_step_ = 0;
    std::vector<int> refs_;
    std::vector<int> free_;
    std::vector<Seq> seqs_;
};

}  // namespace rotor
