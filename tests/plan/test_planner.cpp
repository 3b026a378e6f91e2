// The planner's KV arithmetic on the target models (metadata-only files written by rotor's writer with
// the stock tensor tables): the per-token figures of models-and-memory.md, sliding-window rings, and
// budgets that are never exceeded.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "convert/synthetic.h"
#include "kv/kv_format.h"
#include "cuda/scratch_sizes.h"
#include "plan/planner.h"

using namespace rotor;

namespace {

ModelMemory memory_of(const std::string& shape) {
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("rotor_planner_" + shape + "_" + std::to_string(getpid()) + ".gguf")).string();
    write_synthetic_model(find_shape(shape), parse_quant_mix("q4_k_m"), path, 1, "", false);
    gguf::File f = gguf::File::open(path, gguf::OpenOptions{true});
    ModelMemory m = read_model_memory(f);
    std::filesystem::remove(path);
    return m;
}

PlanSettings settings(const std::string& k, const std::string& v, int head_dim) {
    PlanSettings s;
    s.k = &require_kv_format(k, head_dim);
    s.v = &require_kv_format(v, head_dim);
    s.overhead_bytes = 512ull << 20;
    return s;
}

}  // namespace

TEST(Planner, Qwen35KvPerTokenIs64KiBAtF16) {
    const ModelMemory m = memory_of("qwen3.5-27b");
    const PlanSettings s = settings("f16", "f16", 256);
    // 16 full-attention layers x 2 (K, V) x 4 heads x 256 x 2 bytes (models-and-memory.md)
    EXPECT_EQ(kv_bytes_per_slot(m, s, 16384), 16384ull * 65536);
    EXPECT_EQ(kv_bytes_per_slot(m, s, 1), 16ull * 65536);  // whole blocks of 16 positions
    // tbq4 stores one fp16 scale and 4-bit codes per head vector: 130 bytes for a head of 256
    EXPECT_EQ(kv_bytes_per_slot(m, settings("tbq4", "tbq4", 256), 16384), 16384ull * 16 * 2 * 4 * 130);
}

TEST(Planner, Gemma4GlobalLayersGrowAndSlidingLayersAreRings) {
    const ModelMemory m = memory_of("gemma-4-26b-a4b");
    const PlanSettings s = settings("f16", "f16", 512);
    const uint64_t a = kv_bytes_per_slot(m, s, 65536), b = kv_bytes_per_slot(m, s, 131072);
    // only the 5 global layers grow: 5 x 2 heads x 512 x 2 bytes, K = V stored once = 10 KiB per token
    // (models-and-memory.md: 20 KiB with K and V apart)
    EXPECT_EQ(b - a, 65536ull * 10240);
    // the 25 sliding layers hold window + batch tokens each: 25 x 8 heads x 256 x 2 x 2 x (1024 + 512)
    EXPECT_EQ(a - 65536ull * 10240, 25ull * 8 * 256 * 2 * 2 * 1536);
}

TEST(Planner, BudgetsAreRespectedAndMonotonic) {
    const ModelMemory m = memory_of("qwen3.5-27b");
    const PlanSettings s = settings("q8_0", "q8_0", 256);
    const uint64_t budget = find_device("rtx-4090").bytes;
    int64_t prev = m.n_ctx_train + 1;
    for (int slots = 1; slots <= 6; slots++) {
        const int64_t c = max_context_per_slot(m, s, slots, budget);
        EXPECT_LE(c, prev);
        prev = c;
        ASSERT_GT(c, 0);
        EXPECT_LE(plan_memory(m, s, slots, c).total(), budget);
        EXPECT_GT(plan_memory(m, s, slots, c + 16).total(), budget) << "a larger context would still fit";
    }
    const int n = max_slots(m, s, 32768, budget);
    EXPECT_LE(plan_memory(m, s, n, 32768).total(), budget);
    EXPECT_GT(plan_memory(m, s, n + 1, 32768).total(), budget);
    EXPECT_EQ(max_context_per_slot(m, s, 1, 1ull << 30), 0);  // the weights alone do not fit in 1 GiB
    EXPECT_THROW(find_device("voodoo-5"), Error);
}

// A card's plan fits in what CUDA can allocate: nvidia-smi's total less the driver's share. On the H200
// that share was measured (CUDA reported 139.8 GiB of its 143771 MiB, and a profile planned on the whole
// total did not load); elsewhere it is estimated as 0.5% of the card, at least 384 MiB.
TEST(Planner, CardsLeaveTheDriversShare) {
    const Device& h200 = find_device("h200");
    EXPECT_TRUE(h200.reserved_measured);
    EXPECT_EQ(h200.bytes, 143771ull << 20);
    EXPECT_NEAR(h200.usable() / 1073741824.0, 139.8, 0.05);
    for (const Device& d : known_devices()) {
        EXPECT_GE(d.reserved_bytes, 384ull << 20) << d.name;
        EXPECT_GE(d.reserved_bytes, d.bytes / 250) << d.name;  // at least 0.4%
        EXPECT_LT(d.usable(), d.bytes) << d.name;
        if (!d.reserved_measured) {
            EXPECT_EQ(d.reserved_bytes, std::max<uint64_t>(384ull << 20, d.bytes / 200)) << d.name;
        }
    }
}

// The server's load-time check: nothing to say when the plan fits the free memory, else the breakdown
// and the largest slot count and context that do fit there.
TEST(Planner, GpuShortfallSaysWhatFits) {
    const ModelMemory m = memory_of("gemma-4-26b-a4b");
    const PlanSettings s = settings("q4_0h", "q4_0h", 512);
    const uint64_t free_bytes = plan_memory(m, s, 10, 32768).total() + (1ull << 20);
    EXPECT_EQ(gpu_shortfall(m, s, 10, 32768, free_bytes, "Test GPU"), "");
    const std::string msg = gpu_shortfall(m, s, 11, 32768, free_bytes, "Test GPU");
    EXPECT_NE(msg.find("not enough GPU memory: 11 slots x 32768 positions with KV q4_0h/q4_0h"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Test GPU has"), std::string::npos) << msg;
    EXPECT_NE(msg.find("it holds 10 slots of 32768 positions"), std::string::npos) << msg;
    const int64_t c = max_context_per_slot(m, s, 11, free_bytes);
    ASSERT_GT(c, 0);
    ASSERT_LT(c, 32768);
    EXPECT_NE(msg.find("or 11 slots of " + std::to_string(c) + " positions"), std::string::npos) << msg;
    const std::string none = gpu_shortfall(m, s, 1, 4096, 8ull << 30, "Small GPU");
    EXPECT_NE(none.find("the weights alone do not fit"), std::string::npos) << none;
}

// The compute term counts the Gated DeltaNet and expert buffers of the GPU forward (planner.cpp,
// family_buffers), from the shapes of gguf-conventions.md written out here: the difference against the
// same model planned as a plain llama-family one without experts.
TEST(Planner, ComputeCountsTheHybridAndExpertBuffers) {
    PlanSettings s = settings("q8_0", "q8_0", 256);
    s.batch_tokens = 512;
    auto family_part = [&](ModelMemory m, int slots) {
        const uint64_t with = plan_memory(m, s, slots, 4096).compute;
        m.arch = "llama";
        m.n_expert = m.n_expert_used = 0;
        return with - plan_memory(m, s, slots, 4096).compute;
    };
    // Qwen3.5-27B: GDN 16 k heads x 128 and 48 v heads x 128 (conv channels 2*16*128 + 48*128 = 10240,
    // v 6144), 24 query heads x 256 with a gate (12288 rows); per token: 2 x conv, z, out, alpha|beta,
    // q + gate, 5 plan ints, 4 slices' sums of o^2 per v head. The chunked delta rule's scratch (per token
    // and v head W and U, 128 + 128 floats: 12288 a token, and P and c, 33) lies in the FFN's gate and up
    // buffers (17408 floats a token each): nothing more.
    const uint64_t B = 512 + 1;
    EXPECT_EQ(family_part(memory_of("qwen3.5-27b"), 1), 4 * B * (2 * 10240 + 2 * 6144 + 2 * 48 + 12288 + 5 + 48 * 4));
    EXPECT_EQ(cuda::gdn_chunked_extra_bytes(B, 1, 48, 128, 128, 17408), 0u);
    // where they do not fit (an FFN narrower than 12288), W | U (4 B 48 256) and P | c (4 B 48 33) plus 2 ints
    // per chunk slot (17 chunks of 32 + 1 per sequence) and per sequence
    EXPECT_EQ(cuda::gdn_chunked_extra_bytes(B, 1, 48, 128, 128, 12287),
              4 * B * 48 * 256 + 4 * B * 48 * 33 + 4 * 2 * (17 + 1) + 4 * 2 * 1);
    // Gemma 4 26B-A4B: E 2816, 128 experts top-8 of width 704 on all 30 layers; beside the MoE runner:
    // the dense MLP's output, 3 rows of E for the experts, router logits + ids + weights, router norms
    const ModelMemory g = memory_of("gemma-4-26b-a4b");
    EXPECT_EQ(g.n_moe_layers, 30);
    const uint64_t runner = family_part(g, 1) - (4 * B * 2816 + 4 * B * 3 * 2816 + 4ull * 30 * 2816 + 4 * B * (128 + 16));
    // the runner holds at least the hidden (4 x 704) and down (4 x 2816) rows of 256 tokens x 8 experts
    EXPECT_GE(runner, 256ull * 8 * 4 * (704 + 2816));
    EXPECT_LE(runner, 100ull << 20);
    // more slots, more tokens per step: every part grows
    EXPECT_GT(family_part(memory_of("qwen3.5-35b-a3b"), 16), family_part(memory_of("qwen3.5-27b"), 16) / 4);
    EXPECT_EQ(family_part(memory_of("llama-3.1-8b"), 4), 0u);
}
