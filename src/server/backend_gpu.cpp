#include <algorithm>
#include <cstdio>

#include "common/error.h"
#include "model/model.h"
#include "server/backend.h"
#include "server/engine.h"
#ifdef ROTOR_HAVE_CUDA
#include "cuda/cuda_forward.h"
#endif

namespace rotor::server {

#ifdef ROTOR_HAVE_CUDA
namespace {

// The dense GPU cache: each slot owns ctx positions of every layer, so truncation only moves the
// slot's length (later positions are overwritten before they are read) and a shared prefix is a
// device-to-device copy. Usage is reported in the pool's block units, like the CPU backend.
class GpuBackend final : public EngineBackend {
public:
    GpuBackend(const Model& model, const EngineConfig& cfg) : block_tokens_(cfg.block_tokens) {
        if (cfg.kv_k != cfg.kv_v)
            throw Error("on the GPU, K and V must have the same KV type so far (got " + cfg.kv_k + " / " + cfg.kv_v + ")");
        blocks_per_slot_ = (cfg.n_ctx_per_slot + cfg.block_tokens - 1) / cfg.block_tokens;
        cuda::CudaForwardOptions o;
        o.gpu = cfg.gpu_index;
        o.n_seq = cfg.n_slots;
        o.ctx = (int)(blocks_per_slot_ * cfg.block_tokens);  // whole blocks, as the planner counts
        o.max_batch = cfg.n_batch + cfg.n_slots;              // prompt chunk + one decode token per slot
        o.max_logit_rows = cfg.n_slots;                       // a decode token or a prompt's last, per slot
        o.kv = cuda::parse_kv_elem(cfg.kv_k);
        fwd_ = std::make_unique<cuda::CudaForward>(model, o);
        len_.assign(cfg.n_slots, 0);
        fprintf(stderr, "GPU memory on %s: weights %.1f MiB, KV %.1f MiB, activations %.1f MiB\n", fwd_->gpu_name().c_str(),
                fwd_->weight_bytes() / 1048576.0, fwd_->kv_bytes() / 1048576.0, fwd_->activation_bytes() / 1048576.0);
    }
    void forward(const Batch& batch, std::vector<float>& logits) override {
        fwd_->forward(batch, logits);
        for (int i = 0; i < batch.size(); i++) len_[batch.seq[i]] = std::max(len_[batch.seq[i]], batch.pos[i] + 1);
    }
    void seq_truncate(int seq, int n) override { len_[seq] = std::min(len_[seq], n); }
    void seq_share_prefix(int src, int dst, int n) override {
        fwd_->copy_seq_prefix(src, dst, n);
        len_[dst] = n;
    }
    KvUsage kv_usage() const override {
        KvUsage u;
        u.block_bytes = fwd_->kv_bytes_per_position() * (uint64_t)block_tokens_;
        u.blocks_total = blocks_per_slot_ * (int64_t)len_.size();
        for (int n : len_) u.blocks_used += (n + block_tokens_ - 1) / block_tokens_;
        u.bytes_used = (uint64_t)u.blocks_used * u.block_bytes;
        u.bytes_capacity = fwd_->kv_bytes();
        return u;
    }
    int n_threads() const override { return 0; }
    std::string device() const override { return fwd_->gpu_name(); }

private:
    std::unique_ptr<cuda::CudaForward> fwd_;
    int block_tokens_;
    int64_t blocks_per_slot_ = 0;
    std::vector<int> len_;  // positions each slot holds
};

}  // namespace

std::unique_ptr<EngineBackend> make_gpu_backend(const Model& model, const EngineConfig& cfg) {
    return std::make_unique<GpuBackend>(model, cfg);
}
#else
std::unique_ptr<EngineBackend> make_gpu_backend(const Model&, const EngineConfig&) {
    throw Error("--gpu: this rotor was built without the CUDA backend (nvcc was not found when it was built)");
}
#endif

}  // namespace rotor::server
