#include <algorithm>
#include <thread>

#include "kv/kv_pool.h"
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
        KvPoolLayout layout = make_kv_layout(kv_geometry(model.cfg), cfg.kv_k, cfg.kv_v, cfg.block_tokens);
        const int64_t blocks_per_slot = (cfg.n_ctx_per_slot + cfg.block_tokens - 1) / cfg.block_tokens;
        kv_ = std::make_unique<PagedKvCache>(std::move(layout), blocks_per_slot * cfg.n_slots, cfg.n_slots,
                                             cfg.n_ctx_per_slot);
        const int threads =
            cfg.n_threads > 0 ? cfg.n_threads : (int)std::max(1u, std::thread::hardware_concurrency());
        fwd_ = std::make_unique<CpuForward>(model, threads);
    }
    void forward(const Batch& batch, std::vector<float>& logits) override { fwd_->forward(batch, *kv_, logits); }
    void seq_truncate(int seq, int n) override { kv_->seq_truncate(seq, n); }
    void seq_share_prefix(int src, int dst, int n) override { kv_->seq_share_prefix(src, dst, n); }
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
    std::unique_ptr<PagedKvCache> kv_;
    std::unique_ptr<CpuForward> fwd_;
};

}  // namespace

std::unique_ptr<EngineBackend> make_cpu_backend(const Model& model, const EngineConfig& cfg) {
    return std::make_unique<CpuBackend>(model, cfg);
}

}  // namespace rotor::server
