// The paged KV pool: one allocation of fixed-size blocks shared by all sequences, per-sequence block
// tables, blocks shared by reference count between sequences with a common prefix (copy on write),
// K and V formats chosen per layer, and exact byte accounting through kv_block_bytes(), which the
// memory planner uses too. A full pool is a KvCacheFull error, never corruption.
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
};

// Builds the layout for one K type and one V type on every layer; throws rotor::Error (at load time)
// when a type does not support a layer's head size.
KvPoolLayout make_kv_layout(const KvGeometry& geo, const std::string& k_type, const std::string& v_type,
                            int block_tokens = 16);

// Bytes of one block (block_tokens positions of every layer, K and V, scales included). The one
// accounting function: the pool allocates n_blocks * this, the planner divides memory by it.
uint64_t kv_block_bytes(const KvPoolLayout& layout);
// Bytes per token of context for a layout (block bytes / block tokens).
double kv_bytes_per_token(const KvPoolLayout& layout);

class PagedKvCache;
// A pool sized for n_seq sequences of n_ctx positions each (every sequence can reach its context).
std::unique_ptr<PagedKvCache> make_paged_kv_cache(const KvGeometry& geo, const std::string& k_type,
                                                  const std::string& v_type, int n_seq, int n_ctx,
                                                  int block_tokens = 16);

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

    // Make dst's first n_tokens positions share src's blocks (prefix reuse). dst must be empty.
    // A partially filled last block is shared too and copied when either sequence writes into it.
    void seq_share_prefix(int src, int dst, int n_tokens);
    int seq_tokens(int seq) const;  // positions reserved

    const KvPoolLayout& layout() const { return layout_; }
    int64_t n_blocks() const { return n_blocks_; }
    int64_t free_blocks() const { return (int64_t)free_.size(); }
    uint64_t bytes_capacity() const { return (uint64_t)n_blocks_ * kv_block_bytes(layout_); }
    uint64_t bytes_used() const { return (uint64_t)(n_blocks_ - free_blocks()) * kv_block_bytes(layout_); }
    int block_refcount(int block) const { return refs_[block]; }
    const std::vector<int>& block_table(int seq) const { return seqs_[seq].blocks; }

private:
    struct Seq {
        std::vector<int> blocks;
        int n_tokens = 0;
    };
    uint8_t* k_row(int layer, int block, int slot, int head) const;
    uint8_t* v_row(int layer, int block, int slot, int head) const;
    int alloc_block();
    void release_block(int b);
    void make_block_private(int seq, int block_index);  // copy on write
    void check_seq(int seq) const;

    KvPoolLayout layout_;
    int64_t n_blocks_;
    int n_ctx_max_;
    std::vector<uint64_t> k_row_bytes_, v_row_bytes_;   // per layer
    std::vector<std::unique_ptr<uint8_t[]>> k_arena_, v_arena_;  // per layer: [block][slot][head] rows
    std::vector<int> refs_;
    std::vector<int> free_;
    std::vector<Seq> seqs_;
};

}  // namespace rotor
