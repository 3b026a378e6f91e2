#include <algorithm>
#include <cstdio>
#include <string>

#include "common/error.h"
#include "kv/kv_pool.h"
#include "model/forward.h"
#include "model/model.h"
#include "plan/model_memory.h"
#include "plan/planner.h"
#include "server/backend.h"
#include "server/engine.h"
#ifdef ROTOR_HAVE_CUDA
#include "cuda/cuda_forward.h"
#include "cuda/device.h"
#endif

namespace rotor::server {

#ifdef ROTOR_HAVE_CUDA
namespace {

// The dense GPU cache: each slot owns ctx positions of every layer, so truncation only moves the
// slot's length (later positions are overwritten before they are read) and a shared prefix is a
// device-to-device copy. Usage is reported in the pool's block units, like the CPU backend.
// The rules the CPU backend keeps (backend_cpu.cpp) hold here too:
// - sliding-window layers (gemma4) keep rings of window + n_batch positions: a slot's ring holds the
//   latest positions stored into it, so positions below (highest stored - ring + 1) may be gone, and a
//   prefix is reusable only where the window a query at its end sees is still there;
// - hybrid models (qwen35) cannot roll their recurrent state back: a prefix is reusable at the slot's
//   current length or at its checkpoint (a host copy of the state taken at the end of its prompt).
class GpuBackend final : public EngineBackend {
public:
    GpuBackend(const Model& model, const EngineConfig& cfg) : block_tokens_(cfg.block_tokens) {
        if (cfg.kv_k != cfg.kv_v)
            throw Error("on the GPU, K and V must have the same KV type so far (got " + cfg.kv_k + " / " + cfg.kv_v + ")");
        blocks_per_slot_ = (cfg.n_ctx_per_slot + cfg.block_tokens - 1) / cfg.block_tokens;
        const cuda::KvElem kv = cuda::parse_kv_elem(cfg.kv_k);  // an unsupported type is refused before the GPU is asked
        check_memory(model, cfg);
        cuda::CudaForwardOptions o;
        o.gpu = cfg.gpu_index;
        o.n_seq = cfg.n_slots;
        o.ctx = (int)(blocks_per_slot_ * cfg.block_tokens);  // whole blocks, as the planner counts
        o.max_batch = cfg.n_batch + cfg.n_slots;              // prompt chunk + one decode token per slot
        o.max_logit_rows = cfg.n_slots;                       // a decode token or a prompt's last, per slot
        o.max_seq_tokens = std::max(cfg.n_batch, 1);          // a slot adds at most a prompt chunk per step
        o.ring_round = cfg.block_tokens;
        o.kv = kv;
        fwd_ = std::make_unique<cuda::CudaForward>(model, o);
        len_.assign(cfg.n_slots, 0);
        hi_.assign(cfg.n_slots, -1);
        for (int l = 0; l < model.cfg.n_layer; l++)
            if (const int R = fwd_->kv_positions(l); model.cfg.is_swa(l) && R > 0 && R < o.ctx)
                rings_.push_back({model.cfg.window_of(l), R});
        checkpoints_.resize(cfg.n_slots);
        fprintf(stderr, "GPU memory on %s: weights %.1f MiB, KV %.1f MiB, recurrent state %.1f MiB, activations %.1f MiB\n",
                fwd_->gpu_name().c_str(), fwd_->weight_bytes() / 1048576.0, fwd_->kv_bytes() / 1048576.0,
                fwd_->state_bytes_per_seq() * (double)cfg.n_slots / 1048576.0, fwd_->activation_bytes() / 1048576.0);
        // K = V layers (gemma4): the same note as the CPU pool's, from the same geometry and types
        bool kfv = false;
        for (int l = 0; l < model.cfg.n_layer; l++) kfv = kfv || model.cfg.v_is_k_at(l);
        if (kfv)
            if (const std::string note = kv_layout_notes(make_kv_layout(kv_geometry(model), cfg.kv_k, cfg.kv_v));
                !note.empty())
                fprintf(stderr, "KV cache: %s\n", note.c_str());
    }
    // Before allocating anything: the planner's figure for these settings against the memory this GPU
    // has free, so a profile or settings that do not fit get the numbers and what would fit, not a bare
    // cudaMalloc failure part-way through loading.
    void check_memory(const Model& model, const EngineConfig& cfg) {
        const cuda::GpuInfo g = cuda::select_gpu(cfg.gpu_index);
        const ModelMemory mm = read_model_memory(model.file);
        const int head_dim = kv_head_dim(mm);
        PlanSettings ps;
        ps.k = &require_kv_format(cfg.kv_k, head_dim);
        ps.v = &require_kv_format(cfg.kv_v, head_dim);
        ps.block_tokens = cfg.block_tokens;
        ps.batch_tokens = cfg.n_batch;
        ps.overhead_bytes = kRuntimeBeyondContext;
        fprintf(stderr, "GPU %d (%s): %.1f MiB free of %.1f MiB\n", g.index, g.name.c_str(), g.free_bytes / 1048576.0,
                g.total_bytes / 1048576.0);
        if (const std::string msg = gpu_shortfall(mm, ps, cfg.n_slots, (int64_t)blocks_per_slot_ * cfg.block_tokens,
                                                  g.free_bytes, g.name);
            !msg.empty())
            throw Error(msg);
    }
    // What the runtime takes beyond the CUDA context, which already counts in the free memory: kernel
    // images loaded on first use, CUDA graphs, allocation rounding. The planner's 512 MiB overhead is
    // this plus the context (about 550 MiB in all measured on an H200: bench/RESULTS.md).
    static constexpr uint64_t kRuntimeBeyondContext = 128ull << 20;

    void forward(const Batch& batch, std::vector<float>& logits) override {
        for (int i = 0; i < batch.size(); i++)  // the first position of each slot's run must still see its window
            if (i == 0 || batch.seq[i] != batch.seq[i - 1])
                for (const Ring& r : rings_) {
                    const int t0 = std::max(0, batch.pos[i] - r.window + 1);
                    if (t0 > 0 && t0 < floor(batch.seq[i], r))
                        throw Error("KV cache: the sliding-window ring no longer holds position " + std::to_string(t0));
                }
        fwd_->forward(batch, logits);
        for (int i = 0; i < batch.size(); i++) {
            len_[batch.seq[i]] = std::max(len_[batch.seq[i]], batch.pos[i] + 1);
            hi_[batch.seq[i]] = std::max(hi_[batch.seq[i]], batch.pos[i]);
        }
    }
    void seq_truncate(int seq, int n) override {
        if (fwd_->has_recurrent_state()) set_state(seq, seq, n);
        len_[seq] = std::min(len_[seq], n);
        if (n == 0) hi_[seq] = -1;  // an empty slot starts its rings afresh
    }
    void seq_share_prefix(int src, int dst, int n) override {
        if (fwd_->has_recurrent_state()) set_state(src, dst, n);
        fwd_->copy_seq_prefix(src, dst, n);
        len_[dst] = n;
        hi_[dst] = n > 0 ? hi_[src] : -1;
    }
    int reusable_prefix(int src, int n) const override {
        for (const Ring& r : rings_) {  // kv_cache.h's seq_reusable
            const int f = floor(src, r);
            if (f > 0 && n > 0 && n - r.window + 1 < f) return 0;
        }
        if (!fwd_->has_recurrent_state()) return n;
        int best = 0;
        if (fwd_->seq_state_pos(src) <= n) best = fwd_->seq_state_pos(src);
        if (checkpoints_[src].pos >= 0 && checkpoints_[src].pos <= n) best = std::max(best, checkpoints_[src].pos);
        return best;
    }
    void checkpoint(int seq) override {
        if (!fwd_->has_recurrent_state()) return;
        fwd_->save_seq_state(seq, checkpoints_[seq].state);
        checkpoints_[seq].pos = fwd_->seq_state_pos(seq);
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
    struct Ring {
        int window, tokens;
    };
    struct Checkpoint {
        int pos = -1;
        std::vector<uint8_t> state;
    };
    int floor(int seq, const Ring& r) const { return std::max(0, hi_[seq] - r.tokens + 1); }
    // dst's recurrent state becomes src's after n positions: src's live state, its checkpoint, or fresh.
    void set_state(int src, int dst, int n) {
        const Checkpoint& c = checkpoints_[src];
        if (n == 0) {
            fwd_->reset_seq_state(dst);
        } else if (fwd_->seq_state_pos(src) == n) {
            if (src != dst) fwd_->copy_seq_state(src, dst);
        } else if (c.pos == n) {
            fwd_->load_seq_state(dst, c.state, c.pos);
        } else {
            throw Error("internal: the recurrent state of sequence " + std::to_string(src) + " is not known at position " +
                        std::to_string(n));
        }
        if (src != dst) checkpoints_[dst] = c.pos >= 0 && c.pos <= n ? c : Checkpoint{};
        else if (c.pos > n) checkpoints_[dst] = Checkpoint{};
    }

    std::unique_ptr<cuda::CudaForward> fwd_;
    int block_tokens_;
    int64_t blocks_per_slot_ = 0;
    std::vector<int> len_;  // positions each slot holds
    std::vector<int> hi_;   // highest position stored per slot since it was last emptied (rings)
    std::vector<Ring> rings_;  // sliding-window layers whose ring is shorter than the context
    std::vector<Checkpoint> checkpoints_;  // hybrid models: per slot, at its last prompt's end
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
