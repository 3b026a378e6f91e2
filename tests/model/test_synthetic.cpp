// Random-weight models of real shapes: the stock Q4_K_M tensor mix must give the published byte counts
// (computed independently in ../shared/reference/gguf-conventions.md section 5.7), and a small one must run.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "convert/synthetic.h"
#include "kv/dense_kv_cache.h"
#include "model/forward.h"
#include "testdata.h"

using namespace rotor;

TEST(Synthetic, Q4KMDataBytesMatchTheStockQuantizer) {
    const QuantMix mix = parse_quant_mix("q4_k_m");
    EXPECT_EQ(synthetic_data_bytes(find_shape("llama-3.1-8b"), mix), 4912898304ull);
    EXPECT_EQ(synthetic_data_bytes(find_shape("qwen2.5-32b"), mix), 19845357568ull);
    EXPECT_EQ(synthetic_data_bytes(find_shape("qwen3-32b"), mix), 19756174336ull);
}

TEST(Synthetic, UnknownNamesAreErrors) {
    EXPECT_THROW(find_shape("gpt-5"), Error);
    EXPECT_THROW(parse_quant_mix("q9_9"), Error);
}

TEST(Synthetic, TinyModelLoadsAndRunsInEveryCommonFormat) {
    for (const char* mix : {"f32", "f16", "q8_0", "q4_0", "q4_k_m", "q6_k"}) {
        const std::string path = (std::filesystem::temp_directory_path() /
                                  ("rotor_tiny_" + std::string(mix) + "_" + std::to_string(getpid()) + ".gguf")).string();
        write_synthetic_model(find_shape("tiny-llama"), parse_quant_mix(mix), path);
        auto m = Model::load(path);
        DenseKvCache kv(kv_geometry(*m), 1, 16);
        CpuForward fw(*m, 2);
        Batch b;
        for (int i = 0; i < 8; i++) b.add(i * 7, i, 0, i == 7);
        std::vector<float> logits;
        fw.forward(b, kv, logits);
        ASSERT_EQ(logits.size(), (size_t)m->cfg.n_vocab) << mix;
        for (float x : logits) ASSERT_TRUE(std::isfinite(x)) << mix;
        std::filesystem::remove(path);
    }
}

TEST(Synthetic, HybridAndMoEShapesMatchTheStockQuantizer) {
    // gguf-conventions.md 5.7 (2026-03-10+ quantizer, no MTP block)
    const QuantMix mix = parse_quant_mix("q4_k_m");
    EXPECT_EQ(synthetic_data_bytes(find_shape("qwen3.5-27b"), mix), 16536406016ull);
    EXPECT_EQ(synthetic_data_bytes(find_shape("qwen3.5-35b-a3b"), mix), 21155768832ull);
    EXPECT_EQ(synthetic_data_bytes(find_shape("gemma-4-26b-a4b"), mix), 16780193728ull);
    auto count = [&](const std::string& shape, GgmlType t) {
        int n = 0;
        for (const auto& x : plan_synthetic_tensors(find_shape(shape), mix)) n += x.type == t;
        return n;
    };
    EXPECT_EQ(count("qwen3.5-27b", GgmlType::F32), 353);
    EXPECT_EQ(count("qwen3.5-27b", GgmlType::Q4_K), 433);
    EXPECT_EQ(count("qwen3.5-27b", GgmlType::Q6_K), 65);
    EXPECT_EQ(count("qwen3.5-35b-a3b", GgmlType::F32), 301);
    EXPECT_EQ(count("qwen3.5-35b-a3b", GgmlType::Q6_K), 61);
    EXPECT_EQ(count("gemma-4-26b-a4b", GgmlType::F32), 392);
    EXPECT_EQ(count("gemma-4-26b-a4b", GgmlType::Q4_K), 192);
    EXPECT_EQ(count("gemma-4-26b-a4b", GgmlType::Q6_K), 14);
    EXPECT_EQ(count("gemma-4-26b-a4b", GgmlType::Q8_0), 28);
    EXPECT_EQ(count("gemma-4-26b-a4b", GgmlType::Q5_0), 32);
    EXPECT_EQ(plan_synthetic_tensors(find_shape("qwen3.5-27b"), mix).size(), 851u);
    EXPECT_EQ(plan_synthetic_tensors(find_shape("gemma-4-26b-a4b"), mix).size(), 658u);
    EXPECT_EQ(plan_synthetic_tensors(find_shape("qwen3.5-35b-a3b"), mix).size(), 733u);
}

// A copied tokenizer decides the vocabulary: the embedding rows and vocab_size follow its token count
// (Llama 3's 128,256 here), so a server accepts the model.
TEST(Synthetic, VocabFromSetsTheVocabularySize) {
    const std::string vocab = test::testdata("vocab/ggml-vocab-llama3-from-npm.gguf");
    if (!std::filesystem::exists(vocab)) GTEST_SKIP() << "no " << vocab;
    const std::string path =
        (std::filesystem::temp_directory_path() / ("rotor_vocab_from_" + std::to_string(getpid()) + ".gguf")).string();
    write_synthetic_model(find_shape("gemma-4-26b-a4b"), parse_quant_mix("q4_k_m"), path, 1, vocab, false);
    const gguf::File f = gguf::File::open(path, gguf::OpenOptions{true});
    EXPECT_EQ(f.tensor("token_embd.weight")->ne[1], 128256);
    EXPECT_EQ(f.find("tokenizer.ggml.tokens")->count, 128256u);
    // a file without a tokenizer to copy (the model just written has one; a tokenizer-less one does not)
    const std::string bare = path + ".bare.gguf";
    write_synthetic_model(find_shape("tiny-llama"), parse_quant_mix("f32"), bare, 1, "", false);
    try {
        write_synthetic_model(find_shape("tiny-llama"), parse_quant_mix("f32"), path, 1, bare, false);
        ADD_FAILURE() << "a vocabulary file without tokens was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("has no tokenizer.ggml.tokens"), std::string::npos) << e.what();
    }
    EXPECT_THROW(write_synthetic_model(find_shape("tiny-llama"), parse_quant_mix("f32"), path, 1, "/nonexistent.gguf", false),
                 Error);
    std::filesystem::remove(path);
    std::filesystem::remove(bare);
}
