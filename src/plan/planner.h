// The memory planner: a pure function of (model metadata, KV formats, slots, context, batch, device)
// -> bytes. The KV part uses the formats' own row sizes and the pool's block granularity, the same
// numbers the paged pool allocates, so what the planner promises is what the pool holds.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kv/kv_format.h"
#include "plan/model_memory.h"

namespace rotor {

struct Device {
    std::string name;
    uint64_t bytes = 0;           // total memory as nvidia-smi reports it
    uint64_t reserved_bytes = 0;  // kept by the driver (nvidia-smi's memory.reserved): never allocatable
    bool reserved_measured = false;  // false: an estimate (planner.cpp says which)
    uint64_t usable() const { return bytes - reserved_bytes; }  // what CUDA reports as total: plans fit in this
};
// Known cards by short name ("rtx-4090", "h100", ...); rotor::Error lists them for unknown names.
const Device& find_device(const std::string& name);
const std::vector<Device>& known_devices();

struct PlanSettings {
    const KvFormat* k = nullptr;
    const KvFormat* v = nullptr;
    int block_tokens = 16;       // the pool's block size
    int batch_tokens = 512;      // largest prompt chunk per step (activation buffers, window rings)
    uint64_t overhead_bytes = 0; // runtime: CUDA context, kernels, the desktop's share
};

struct MemoryBreakdown {
    uint64_t weights = 0;
    uint64_t kv = 0;          // all slots
    uint64_t recurrent = 0;   // all slots
    uint64_t compute = 0;     // activation and logits buffers for one step
    uint64_t overhead = 0;
    uint64_t total() const { return weights + kv + recurrent + compute + overhead; }
};

// KV bytes of one sequence holding ctx tokens (sliding-window layers keep a ring of window + batch).
uint64_t kv_bytes_per_slot(const ModelMemory& m, const PlanSettings& s, int64_t ctx);
MemoryBreakdown plan_memory(const ModelMemory& m, const PlanSettings& s, int slots, int64_t ctx_per_slot);

// Largest context per slot that fits in `budget` bytes with `slots` slots (0 if nothing fits), capped
// at the model's trained context.
int64_t max_context_per_slot(const ModelMemory& m, const PlanSettings& s, int slots, uint64_t budget);
// Most slots of ctx_per_slot tokens that fit in budget.
int max_slots(const ModelMemory& m, const PlanSettings& s, int64_t ctx_per_slot, uint64_t budget);

// "12.34 GiB": how the planner's reports write sizes.
std::string gib_text(uint64_t bytes);

// The server's load-time check against the GPU it runs on: whether `slots` x `ctx_per_slot` fits in
// free_bytes (free once the CUDA context exists; s.overhead_bytes is then what the runtime adds:
// kernels, CUDA graphs, allocation rounding). Empty if it fits, else a message with the breakdown and
// what would fit on that card instead.
std::string gpu_shortfall(const ModelMemory& m, const PlanSettings& s, int slots, int64_t ctx_per_slot,
                          uint64_t free_bytes, const std::string& gpu_name);

}  // namespace rotor
