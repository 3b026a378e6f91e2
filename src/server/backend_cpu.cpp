#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

#include "common/error.h"
#include "kv/kv_pool.h"
#include "kv/recurrent_state.h"
#include "model/forward.h"
#include "model/model.h"
#include "server/backend.h"
#include "server/engine.h"

namespace rotor::server {

namespace {

class CpuBackend final : public EngineBackend {
public:
    CpuBackend(const Model& model, const EngineConfig& cfg) {
        // The pool holds exactly slots x ctx-per-slot positions (whole blocks), so every slot can
        // always reach its full context; shared prefixes only ever need fewer blocks than that.
        // Sliding-window layers keep rings of window + the most positions a slot adds in one step.
        KvPoolLayout layout =
            make_kv_layout(kv_geometry(model), cfg.kv_k, cfg.kv_v, cfg.block_tokens, std::max(cfg.n_batch, 1));
        if (const std::string note = kv_layout_notes(layout); !note.empty()) fprintf(stderr, "KV cache: %s\n", note.c_str());
        const int64_t blocks_per_slot = (cfg.n_ctx_per_slot + cfg.block_tokens - 1) / cfg.block_tokens;
        kv_ = std::make_unique<PagedKvCache>(std::move(layout), blocks_per_slot * cfg.n_slots, cfg.n_slots,
                                             cfg.n_ctx_per_slot);
        const int threads =
            cfg.n_threads > 0 ? cfg.n_threads : (int)std::max(1u, std::thread::hardware_concurrency());
        fwd_ = std::make_unique<CpuForward>(model, threads);
        if (model.cfg.hybrid()) {
            rs_ = std::make_unique<RecurrentState>(recurrent_geometry(model.cfg), cfg.n_slots);
            checkpoints_.resize(cfg.n_slots);
        }
    }
    void forward(const Batch& batch, std::vector<float>& logits) override {
        fwd_->forward(batch, *kv_, rs_.get(), logits);
    }
    void seq_truncate(int seq, int n) override {
        if (rs_) set_state(seq, seq, n);
        kv_->seq_truncate(seq, n);
    }
    void seq_share_prefix(int src, int dst, int n) override {
        if (rs_) set_state(src, dst, n);
        kv_->seq_share_prefix(src, dst, n);
    }
    int reusable_prefix(int src, int n) const override {
        n = kv_->seq_reusable(src, n);  // sliding-window rings may have lost what a query at n sees
        if (!rs_) return n;
        int best = 0;
        if (rs_->seq_pos(src) <= n) best = rs_->seq_pos(src);
        const auto& c = checkpoints_[src];
        if (c && c->pos <= n) best = std::max(best, c->pos);
        return best;
    }
    void checkpoint(int seq) override {
        if (rs_) checkpoints_[seq] = std::make_unique<RecurrentState::Snapshot>(rs_->snapshot(seq));
    }
    KvUsage kv_usage() const override {
        KvUsage u;
        u.bytes_used = kv_->bytes_used();
        u.bytes_capacity = kv_->bytes_capacity();
        u.blocks_total = kv_->n_blocks();
        u.blocks_used = kv_->n_blocks() - kv_->free_blocks();
        u.block_bytes = kv_block_bytes(kv_->layout());
        return u;
    }
    int n_threads() const override { return fwd_->n_threads(); }
    std::string device() const override { return "cpu"; }

private:
    // dst's recurrent state becomes src's state after n positions: src's live state, its checkpoint,
    // or fresh (n = 0). A checkpoint beyond n no longer describes dst's tokens and is dropped.
    void set_state(int src, int dst, int n) {
        const std::unique_ptr<RecurrentState::Snapshot>& c = checkpoints_[src];
        if (n == 0) {
            rs_->seq_reset(dst);
        } else if (rs_->seq_pos(src) == n) {
            if (src != dst) rs_->seq_copy(src, dst);
        } else if (c && c->pos == n) {
            rs_->restore(dst, *c);
        } else {
            throw Error("internal: the recurrent state of sequence " + std::to_string(src) + " is not known at position " +
                        std::to_string(n));
        }
        if (src != dst) checkpoints_[dst] = c && c->pos <= n ? std::make_unique<RecurrentState::Snapshot>(*c) : nullptr;
        else if (c && c->pos > n) checkpoints_[dst].reset();
    }

    std::unique_ptr<PagedKvCache> kv_;
    std::unique_ptr<CpuForward> fwd_;
    std::unique_ptr<RecurrentState> rs_;  // hybrid models only
    std::vector<std::unique_ptr<RecurrentState::Snapshot>> checkpoints_;  // per slot, at its last prompt's end
};

}  // namespace

std::unique_ptr<EngineBackend> make_cpu_backend(const Model& model, const EngineConfig& cfg) {
    return std::make_unique<CpuBackend>(model, cfg);
}

}  // namespace rotor::server
