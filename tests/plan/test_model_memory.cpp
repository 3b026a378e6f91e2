// What the planner reads from metadata alone: metadata-only files of the target models, written by
// rotor's writer with the stock tensor tables (their byte counts are checked in test_synthetic.cpp).
#include <gtest/gtest.h>

#include <filesystem>

#include "convert/synthetic.h"
#include "plan/model_memory.h"

using namespace rotor;

namespace {

ModelMemory memory_of(const std::string& shape) {
    const std::string path = (std::filesystem::temp_directory_path() / ("rotor_plan_" + shape + "_" +
                                                                         std::to_string(getpid()) + ".gguf")).string();
    write_synthetic_model(find_shape(shape), parse_quant_mix("q4_k_m"), path, 1, "", /*with_data=*/false);
    gguf::File f = gguf::File::open(path, gguf::OpenOptions{true});
    EXPECT_FALSE(f.has_all_data());
    ModelMemory m = read_model_memory(f);
    std::filesystem::remove(path);
    return m;
}

int kv_layers(const ModelMemory& m) {
    int n = 0;
    for (const auto& l : m.layers) n += l.has_kv;
    return n;
}

}  // namespace

TEST(ModelMemory, Qwen35HybridHasSixteenKvLayersAndRecurrentState) {
    const ModelMemory m = memory_of("qwen3.5-27b");
    EXPECT_EQ(m.n_layer, 64);
    EXPECT_EQ(kv_layers(m), 16);
    for (int l = 0; l < 64; l++) EXPECT_EQ(m.layers[l].has_kv, (l + 1) % 4 == 0) << l;
    EXPECT_EQ(m.layers[3].n_head_kv, 4);
    EXPECT_EQ(m.layers[3].head_dim_k, 256);
    // 48 GDN layers x (48 heads x 128 x 128 f32 state + 3 x 10240 f32 conv state): "about 150 MiB"
    EXPECT_EQ(m.recurrent_bytes_per_seq, 48ull * (48 * 128 * 128 * 4 + 3 * 10240 * 4));
    EXPECT_EQ(m.weight_bytes, 16536406016ull);  // every tensor of this table is a multiple of 32 bytes
}

TEST(ModelMemory, Gemma4HasRingsAndWideGlobalLayers) {
    const ModelMemory m = memory_of("gemma-4-26b-a4b");
    EXPECT_EQ(kv_layers(m), 30);
    int global = 0;
    for (int l = 0; l < 30; l++) {
        const LayerMemory& lm = m.layers[l];
        if (lm.window == 0) {
            global++;
            EXPECT_EQ(lm.head_dim_k, 512);
            EXPECT_EQ(lm.n_head_kv, 2);
            EXPECT_TRUE(lm.v_is_k);
        } else {
            EXPECT_EQ(lm.window, 1024);
            EXPECT_EQ(lm.head_dim_k, 256);
            EXPECT_EQ(lm.n_head_kv, 8);
            EXPECT_FALSE(lm.v_is_k);
        }
    }
    EXPECT_EQ(global, 5);
    EXPECT_EQ(m.recurrent_bytes_per_seq, 0u);
}

TEST(ModelMemory, DenseModelsAndErrors) {
    const ModelMemory m = memory_of("qwen3-32b");
    EXPECT_EQ(kv_layers(m), 64);
    EXPECT_EQ(m.layers[0].n_head_kv, 8);
    EXPECT_EQ(m.layers[0].head_dim_k, 128);
    gguf::Writer w;
    w.set_string("general.architecture", "mamba2");
    const auto bytes = w.to_bytes();
    EXPECT_THROW(read_model_memory(gguf::File::parse(bytes.data(), bytes.size(), "x.gguf")), Error);
}
