#include "plan/planner.h"

#include <algorithm>
#include <cstdio>

#include "common/error.h"
#include "cuda/scratch_sizes.h"

namespace rotor {

namespace {

// The driver keeps part of each card's memory (nvidia-smi's memory.reserved); CUDA's total is what is
// left. Measured on the H200 of the device machine (scripts/gpu/cuda_run.sh memory prints it); for
// the cards not measured here, an estimate: 0.5% of the card, at least 384 MiB (the H200's is 0.43%).
Device card(const char* name, uint64_t total_mib, uint64_t measured_reserved_mib = 0) {
    Device d;
    d.name = name;
    d.bytes = total_mib << 20;
    d.reserved_measured = measured_reserved_mib > 0;
    d.reserved_bytes = d.reserved_measured ? measured_reserved_mib << 20 : std::max<uint64_t>(384ull << 20, d.bytes / 200);
    return d;
}

}  // namespace

std::string gib_text(uint64_t b) {
    char t[32];
    snprintf(t, sizeof t, "%.2f GiB", b / 1073741824.0);
    return t;
}

const std::vector<Device>& known_devices() {
    // Total memory as nvidia-smi reports it for each card (MiB).
    static const std::vector<Device> devices = {
        card("rtx-4060ti-16", 16380), card("rtx-4090", 24564), card("rtx-5090", 32607),
        card("a100-80", 81920),       card("h100", 81559),     card("h200", 143771, 616),
    };
    return devices;
}

const Device& find_device(const std::string& name) {
    std::string names;
    for (const auto& d : known_devices()) {
        if (d.name == name) return d;
        names += (names.empty() ? "" : ", ") + d.name;
    }
    throw Error("unknown GPU '" + name + "' (known: " + names + "; or give --vram GIB)");
}

uint64_t kv_bytes_per_slot(const ModelMemory& m, const PlanSettings& s, int64_t ctx) {
    if (!s.k || !s.v) throw Error("plan: KV formats not set");
    const int64_t B = s.block_tokens;
    uint64_t total = 0;
    for (const LayerMemory& l : m.layers) {
        if (!l.has_kv) continue;
        int64_t tokens = ctx;
        if (l.window > 0) tokens = std::min<int64_t>(ctx, l.window + s.batch_tokens);  // a ring, not the context
        const int64_t blocks = (tokens + B - 1) / B;
        // K = V layers store the value alone and rebuild keys from it (kv_cache.h, KeyFromValue)
        const uint64_t row = (l.v_is_k ? 0 : s.k->row_bytes(l.head_dim_k)) + s.v->row_bytes(l.head_dim_v);
        total += (uint64_t)blocks * (uint64_t)B * (uint64_t)l.n_head_kv * row;
    }
    return total;
}

namespace {

// The routed experts' scratch for steps of up to B tokens (cuda/moe.cu, MoeRunner's constructor): an
// entry table, counters, the int8 copies of x and of the hidden rows, the hidden and down rows of
// each (token, expert) pair of a 256-token chunk, and for prefill the tensor-core buffers.
uint64_t moe_runner_bytes(uint64_t B, uint64_t E, uint64_t F, uint64_t top) {
    const uint64_t chunk = std::min<uint64_t>(B, 256), P = chunk * top;
    auto int8_rows = [](uint64_t n, uint64_t cols) { return n * cols + 2 * 4 * n * ((cols + 31) / 32); };  // codes, d, s
    uint64_t b = 4 * (1 + P * 9 + 2 * P) + 4 * ((E + 1) / 2) + 4 * P * ((F + 31) / 32) + int8_rows(chunk, E) +
                 4 * P * F + int8_rows(P, F) + 4 * P * E;
    if (B > 8 && chunk >= 32)  // prefill on the tensor cores: gathered x, gate|up, h, down, f16 copy + scale
        b += 4 * chunk * (2 * E + 3 * F) + chunk * std::max(E, F) * 2 + 4 * chunk + (8ull << 20);
    return b;
}

// What the qwen35 / qwen35moe / gemma4 forwards add to the llama buffers for steps of B tokens in S sequences
// (cuda_forward_qwen35.cu init_qwen35, cuda_forward_gemma4.cu init_gemma4), f32 unless said.
uint64_t family_buffers(const ModelMemory& m, uint64_t B, uint64_t S) {
    const uint64_t E = (uint64_t)m.n_embd;
    uint64_t b = 0;
    if (m.arch == "qwen35" || m.arch == "qwen35moe") {
        // conv input and output, the gate z, alpha|beta, the DeltaNet output, q + gate, the batch plan (int)
        b += 4 * B * (2ull * m.ssm_channels + 2ull * m.ssm_v_dim + 2ull * m.ssm_v_heads + (uint64_t)m.max_gated_q + 5);
        // the fast path's per-slice sums of o^2 (32 columns of d_v each), and the chunked delta rule's scratch
        const uint64_t d_v = m.ssm_v_heads ? (uint64_t)m.ssm_v_dim / m.ssm_v_heads : 0;
        b += 4 * B * (uint64_t)m.ssm_v_heads * ((d_v + 31) / 32);
        // (the forward lends it the dense FFN's buffers when they are wide enough; qwen35moe's experts have their own)
        const uint64_t ffn = m.arch == "qwen35" ? (uint64_t)m.max_ff : 0;
        b += cuda::gdn_chunked_extra_bytes(B, S, (uint64_t)m.ssm_v_heads, (uint64_t)m.ssm_d_k, d_v, ffn);
    } else if (m.arch == "gemma4") {
        b += 4 * B * E;  // the dense MLP's output beside the experts
        if (m.n_moe_layers > 0) b += 4 * B * 3 * E + 4ull * m.n_moe_layers * E;  // experts' in, router's in, out; router norms
    }
    if (m.n_expert > 0 && m.n_expert_used > 0) {
        b += 4 * B * ((uint64_t)m.n_expert + 2ull * m.n_expert_used);  // router logits, chosen ids and weights
        if (m.arch == "qwen35moe") {
            b += 4 * B * E;  // the experts' sum
            if (m.n_ff_shexp > 0) b += 4 * B * (2ull * m.n_ff_shexp + E);  // the shared expert
        }
        b += moe_runner_bytes(B, E, (uint64_t)m.n_ff_exp, (uint64_t)m.n_expert_used);
    }
    return b;
}

}  // namespace

MemoryBreakdown plan_memory(const ModelMemory& m, const PlanSettings& s, int slots, int64_t ctx_per_slot) {
    MemoryBreakdown b;
    b.weights = m.weight_bytes;
    b.kv = kv_bytes_per_slot(m, s, ctx_per_slot) * (uint64_t)slots;
    b.recurrent = m.recurrent_bytes_per_seq * (uint64_t)slots;
    // Activation buffers of one step, as the GPU forward allocates them (cuda/cuda_forward.cu): a step
    // holds a prompt chunk of batch_tokens plus one decode token per slot. Per token, f32: residual and
    // normed copy, q, k, v, attention output and the two feed-forward halves, plus the int8 copy of the
    // widest input (codes and one f32 scale per 32); per slot, one row of hidden state and of logits;
    // the split-K attention scratch (capped at 64 MiB); and the tensor-core matmul's f16 copy of the
    // widest input with a scale per token, plus its 32 MiB of split-K sums (batches of 32+ tokens), and
    // the 24 MiB of split-K sums of the f16 tensor-core mat-vec (cuda/matvec_mma_f16.h: steps of 2+
    // tokens, after the int8 copy); then the Gated DeltaNet, routed-expert and Gemma 4 buffers
    // (family_buffers).
    const uint64_t B = (uint64_t)s.batch_tokens + (uint64_t)std::max(slots, 1);
    const uint64_t R = (uint64_t)std::max(slots, 1);
    int max_k = 0, max_v = 0;
    uint64_t partial_per_token = 0;
    const uint64_t splits = ((uint64_t)std::max<int64_t>(ctx_per_slot, 1) + 255) / 256;
    for (const LayerMemory& l : m.layers) {
        if (!l.has_kv) continue;
        max_k = std::max(max_k, l.n_head_kv * l.head_dim_k);
        max_v = std::max(max_v, l.n_head_kv * l.head_dim_v);
        const uint64_t heads = l.head_dim_k ? (uint64_t)m.max_q_dim / l.head_dim_k : 0;
        partial_per_token = std::max<uint64_t>(partial_per_token, 4ull * heads * splits * (uint64_t)(l.head_dim_v + 2));
    }
    const uint64_t per_token = 2ull * m.n_embd + 2ull * m.max_q_dim + (uint64_t)max_k + (uint64_t)max_v + 2ull * m.max_ff;
    const uint64_t widest = std::max<uint64_t>({(uint64_t)m.n_embd, (uint64_t)m.max_q_dim, (uint64_t)m.max_ff});
    const uint64_t partial = std::max(partial_per_token, std::min<uint64_t>(partial_per_token * B, 64ull << 20));
    const uint64_t tensor_core = B >= 32 ? B * widest * 2 + 4 * B + cuda::kMatmulTcSplitBytes : 0;
    const uint64_t mmq_split = B > 1 ? cuda::kMatvecF16SplitBytes : 0;
    b.compute = 4ull * (B * per_token + R * ((uint64_t)m.n_embd + (uint64_t)m.n_vocab)) + B * widest * 9 / 8 + mmq_split +
                partial + tensor_core + family_buffers(m, B, R);
    b.overhead = s.overhead_bytes;
    return b;
}

int64_t max_context_per_slot(const ModelMemory& m, const PlanSettings& s, int slots, uint64_t budget) {
    if (plan_memory(m, s, slots, s.block_tokens).total() > budget) return 0;
    int64_t lo = s.block_tokens, hi = m.n_ctx_train;
    if (plan_memory(m, s, slots, hi).total() <= budget) return hi;
    while (hi - lo > 1) {  // KV bytes grow monotonically with context
        const int64_t mid = lo + (hi - lo) / 2;
        (plan_memory(m, s, slots, mid).total() <= budget ? lo : hi) = mid;
    }
    return lo / s.block_tokens * s.block_tokens;  // whole blocks
}

int max_slots(const ModelMemory& m, const PlanSettings& s, int64_t ctx_per_slot, uint64_t budget) {
    int n = 0;
    while (n < 4096 && plan_memory(m, s, n + 1, ctx_per_slot).total() <= budget) n++;
    return n;
}

std::string gpu_shortfall(const ModelMemory& m, const PlanSettings& s, int slots, int64_t ctx_per_slot,
                          uint64_t free_bytes, const std::string& gpu_name) {
    const MemoryBreakdown b = plan_memory(m, s, slots, ctx_per_slot);
    if (b.total() <= free_bytes) return "";
    std::string msg = "not enough GPU memory: " + std::to_string(slots) + " slots x " + std::to_string(ctx_per_slot) +
                      " positions with KV " + s.k->name() + "/" + s.v->name() + " need " +
                      gib_text(b.total()) + " (weights " + gib_text(b.weights) + ", KV " + gib_text(b.kv);
    if (b.recurrent) msg += ", recurrent state " + gib_text(b.recurrent);
    msg += ", activations " + gib_text(b.compute) + ", runtime " + gib_text(b.overhead) + ") but " + gpu_name +
           " has " + gib_text(free_bytes) + " free";
    const int n = max_slots(m, s, ctx_per_slot, free_bytes);
    const int64_t c = max_context_per_slot(m, s, slots, free_bytes);
    if (n > 0 || c > 0) {
        msg += "; it holds";
        if (n > 0) msg += " " + std::to_string(n) + " slots of " + std::to_string(ctx_per_slot) + " positions";
        if (n > 0 && c > 0) msg += ", or";
        if (c > 0) msg += " " + std::to_string(slots) + " slots of " + std::to_string(c) + " positions";
    } else {
        msg += "; the weights alone do not fit (a smaller quantization, or the CPU backend)";
    }
    return msg + " (--slots, --ctx-per-slot; `rotor plan -m MODEL --vram GIB` for the whole table)";
}

}  // namespace rotor
