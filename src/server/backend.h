// What the scheduler's loop needs from a forward pass and the KV storage behind it: run a batch,
// forget a sequence's tail, give one sequence another's prefix, and report KV bytes. Two backends:
// the CPU forward over the paged pool (prefix blocks shared by reference), and the CUDA forward over
// a dense per-slot cache on the GPU (a shared prefix is copied on the device).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/forward.h"

namespace rotor {
struct Model;
}

namespace rotor::server {

struct EngineConfig;

struct KvUsage {
    uint64_t bytes_used = 0, bytes_capacity = 0;
    int64_t blocks_used = 0, blocks_total = 0;
    uint64_t block_bytes = 0;  // block_tokens positions of every layer, K and V
};

class EngineBackend {
public:
    virtual ~EngineBackend() = default;
    // n_vocab logits per token with want_logits, in batch order (throws rotor::Error / KvCacheFull).
    virtual void forward(const Batch& batch, std::vector<float>& logits) = 0;
    // Forget positions >= n of seq.
    virtual void seq_truncate(int seq, int n) = 0;
    // dst (empty) gets src's first n positions; n must be a reusable_prefix of src.
    virtual void seq_share_prefix(int src, int dst, int n) = 0;
    // The longest length <= n at which src's first positions can be kept (seq_truncate) or shared:
    // any n for a KV cache; on hybrid models only lengths where the recurrent state is known (src's
    // current length, or its checkpoint), since that state cannot be rolled back.
    virtual int reusable_prefix(int src, int n) const { return n; }
    // seq has just consumed its whole prompt: hybrid models keep a copy of the recurrent state here,
    // so a later request that shares the prompt but not the reply can still reuse it.
    virtual void checkpoint(int seq) { (void)seq; }
    virtual KvUsage kv_usage() const = 0;
    virtual int n_threads() const = 0;         // CPU threads of the forward pass (0 on the GPU)
    virtual std::string device() const = 0;    // "cpu" or the GPU's name
};

// The CPU forward over a paged pool of exactly n_slots x ctx-per-slot positions (whole blocks).
std::unique_ptr<EngineBackend> make_cpu_backend(const Model& model, const EngineConfig& cfg);
// The CUDA forward with a dense cache of n_slots x ctx-per-slot positions (whole blocks) on GPU
// cfg.gpu_index; rotor::Error when this build has no CUDA backend or the model / KV type is
// unsupported there.
std::unique_ptr<EngineBackend> make_gpu_backend(const Model& model, const EngineConfig& cfg);

}  // namespace rotor::server
