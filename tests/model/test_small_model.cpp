// rotor's own small model (models/rotor-kjv-11m, trained by scripts/gpu/train_small_model.py) against what
// PyTorch computed on the GPU machine from the same bf16 weights: greedy continuations and the validation
// perplexity with llama.cpp's protocol.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kv/dense_kv_cache.h"
#include "model/forward.h"
#include "model/perplexity.h"
#include "testdata.h"

using namespace rotor;

namespace {

std::string model_dir() { return test::source_dir() + "/models/rotor-kjv-11m/"; }
bool sanitized() { return std::getenv("ROTOR_SANITIZED") != nullptr; }  // slower build: fewer chunks

std::vector<int32_t> val_tokens() {
    std::ifstream f(model_dir() + "val.tokens.u16", std::ios::binary);
    std::vector<int32_t> out;
    uint16_t t;
    while (f.read(reinterpret_cast<char*>(&t), 2)) out.push_back(t);
    return out;
}

nlohmann::json read_json(const std::string& name) {
    std::ifstream f(model_dir() + name);
    return nlohmann::json::parse(f);
}

}  // namespace

TEST(SmallModel, ShapeIsWhatTheKvWorkNeeds) {
    auto m = Model::load(model_dir() + "rotor-kjv-11m-bf16.gguf");
    EXPECT_EQ(m->cfg.head_dim_k[0], 128);
    EXPECT_EQ(m->cfg.n_head[0], 3);
    EXPECT_EQ(m->cfg.n_head_kv[0], 1);  // GQA
    EXPECT_EQ(m->cfg.n_ctx_train, 2048);
    EXPECT_EQ(m->cfg.arch, Arch::Llama);
}

TEST(SmallModel, GreedyContinuationsMatchPyTorch) {
    auto m = Model::load(model_dir() + "rotor-kjv-11m-bf16.gguf");
    const auto cases = read_json("greedy.json");
    for (const auto& c : cases) {
        const auto prompt = c["prompt_ids"].get<std::vector<int>>();
        const auto want = c["ids"].get<std::vector<int>>();
        DenseKvCache kv(kv_geometry(*m), 1, (int)want.size());
        CpuForward fw(*m, 2);
        Batch b;
        for (size_t i = 0; i < prompt.size(); i++) b.add(prompt[i], (int)i, 0, i + 1 == prompt.size());
        std::vector<float> logits;
        fw.forward(b, kv, logits);
        std::vector<int> got = prompt;
        while (got.size() < want.size()) {
            const int next = (int)(std::max_element(logits.begin(), logits.end()) - logits.begin());
            got.push_back(next);
            b.clear();
            b.add(next, (int)got.size() - 1, 0, true);
            fw.forward(b, kv, logits);
        }
        EXPECT_EQ(got, want) << "prompt: " << c["prompt"];
    }
}

TEST(SmallModel, PerplexityMatchesPyTorch) {
    auto m = Model::load(model_dir() + "rotor-kjv-11m-bf16.gguf");
    const auto eval = read_json("eval.json")["perplexity"]["512"];
    const std::vector<int32_t> tokens = val_tokens();
    PerplexityOptions opt;
    opt.n_ctx = 512;
    opt.n_threads = 2;
    opt.bos = *m->file.get_uint("tokenizer.ggml.bos_token_id");
    opt.decode_path = false;
    opt.max_chunks = sanitized() ? 3 : 32;  // of 95; `rotor perplexity` runs them all (bench/RESULTS.md)
    const PerplexityResult r = compute_perplexity(*m, tokens, opt);
    const auto want = eval["chunk_nll"].get<std::vector<double>>();
    ASSERT_LE(r.chunk_nll.size(), want.size());
    double nll = 0;
    for (size_t c = 0; c < r.chunk_nll.size(); c++) {
        EXPECT_NEAR(r.chunk_nll[c], want[c], 1e-3 * want[c]) << "chunk " << c;
        nll += want[c];
    }
    const double want_ppl = std::exp(nll / (double)r.scored);
    printf("    perplexity (n_ctx 512, %d chunks): rotor %.6f, PyTorch %.6f, relative difference %.2e\n", r.chunks,
           r.ppl(), want_ppl, std::fabs(r.ppl() / want_ppl - 1));
    EXPECT_NEAR(r.ppl() / want_ppl, 1.0, 1e-3);
}

TEST(SmallModel, DecodePathEqualsBatchedPath) {
    auto m = Model::load(model_dir() + "rotor-kjv-11m-bf16.gguf");
    const std::vector<int32_t> tokens = val_tokens();
    PerplexityOptions opt;
    opt.n_ctx = sanitized() ? 128 : 256;  // token by token is the slow path under the sanitizers
    opt.n_threads = 2;
    opt.max_chunks = 3;
    opt.bos = 4093;
    auto with = [&](bool decode, int parallel) {
        PerplexityOptions o = opt;
        o.decode_path = decode;
        o.n_parallel = parallel;
        return compute_perplexity(*m, tokens, o);
    };
    const PerplexityResult batched = with(false, 1), alone = with(true, 1), together = with(true, 3);
    for (int c = 0; c < 3; c++) {
        EXPECT_NEAR(alone.chunk_nll[c], batched.chunk_nll[c], 1e-4 * batched.chunk_nll[c]);
        // sequences decoded side by side in one batch compute exactly what each computes alone
        EXPECT_EQ(together.chunk_nll[c], alone.chunk_nll[c]);
    }
}
