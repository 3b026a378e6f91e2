// The planner's KV arithmetic on the target models (metadata-only files written by rotor's writer with
// the stock tensor tables): the per-token figures of models-and-memory.md, sliding-window rings, and
// budgets that are never exceeded.
#include <gtest/gtest.h>

#include <filesystem>

#include "convert/synthetic.h"
#include "kv/kv_format.h"
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
