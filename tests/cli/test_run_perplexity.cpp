// The rotor program end to end: `rotor run` greedy text equals PyTorch's greedy continuation of the same
// prompt (models/rotor-kjv-11m/greedy.json, decoded with the model's own vocabulary), and `rotor
// perplexity` reads text, scores it and compares KV types through a saved KL base.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "kv/kv_format.h"
#include "testdata.h"

using rotor::test::run_cli;
#include "tokenizer/vocab.h"

using namespace rotor;
namespace fs = std::filesystem;

namespace {

std::string model_dir() { return test::source_dir() + "/models/rotor-kjv-11m/"; }


}  // namespace

TEST(Cli, RunGreedyEqualsPyTorchContinuation) {
    if (!std::getenv("ROTOR_BIN")) GTEST_SKIP() << "ROTOR_BIN not set (run through ctest)";
    const std::string model = model_dir() + "rotor-kjv-11m-bf16.gguf";
    gguf::File f = gguf::File::open(model);
    const Vocab vocab = Vocab::from_gguf(f);
    std::ifstream gf(model_dir() + "greedy.json");
    for (const auto& c : nlohmann::json::parse(gf)) {
        const auto ids = c["ids"].get<std::vector<int32_t>>();
        const auto prompt_ids = c["prompt_ids"].get<std::vector<int32_t>>();
        // PyTorch's continuation as text: everything after the prompt's tokens
        const std::vector<int32_t> gen(ids.begin() + (long)prompt_ids.size(), ids.end());
        const std::string want = c["prompt"].get<std::string>() + vocab.detokenize(gen);
        std::string out, err;
        ASSERT_EQ(run_cli("run -m " + model + " -p '" + c["prompt"].get<std::string>() + "' -n " +
                              std::to_string(gen.size()) + " --temp 0 --kv-k f32 --kv-v f32",
                          &out, &err), 0) << err;
        EXPECT_EQ(out, want + "\n") << err;
        EXPECT_NE(err.find("[length] prompt: " + std::to_string(prompt_ids.size()) + " tokens"), std::string::npos) << err;
    }
}

TEST(Cli, RunRejectsBadInput) {
    if (!std::getenv("ROTOR_BIN")) GTEST_SKIP() << "ROTOR_BIN not set (run through ctest)";
    std::string out, err;
    EXPECT_EQ(run_cli("run -p hello", &out, &err), 1);  // no model
    EXPECT_NE(err.find("model"), std::string::npos);
    EXPECT_EQ(run_cli("run -m " + model_dir() + "rotor-kjv-11m-q8_0.gguf -p hi --kv-k nope", &out, &err), 1);
    EXPECT_NE(err.find("nope"), std::string::npos) << err;
    EXPECT_EQ(run_cli("run -m " + model_dir() + "rotor-kjv-11m-q8_0.gguf -p hi -n x", &out, &err), 1);
    EXPECT_EQ(run_cli("run -m " + model_dir() + "rotor-kjv-11m-q8_0.gguf -p hi --ctx 1", &out, &err), 1);
    EXPECT_NE(err.find("context"), std::string::npos) << err;
}

TEST(Cli, PerplexityAndKlAgainstABase) {
    if (!std::getenv("ROTOR_BIN")) GTEST_SKIP() << "ROTOR_BIN not set (run through ctest)";
    const std::string model = model_dir() + "rotor-kjv-11m-q8_0.gguf";
    const std::string base = (fs::temp_directory_path() / ("rotor_kl_" + std::to_string(getpid()))).string();
    // (sanitizer builds: half the context)
    const int ctx = std::getenv("ROTOR_SANITIZED") ? 128 : 256;
    const std::string text = "perplexity -m " + model + " -f " + model_dir() + "val.txt --chunks 2 ";
    const std::string common = text + "--ctx " + std::to_string(ctx) + " ";
    std::string out, err;
    ASSERT_EQ(run_cli(common + "--kv-k f32 --kv-v f32 --kl-divergence-base " + base, &out, &err), 0) << err;
    EXPECT_NE(out.find("perplexity: "), std::string::npos) << out;
    // the same run against its own base: zero divergence, same top token everywhere
    ASSERT_EQ(run_cli(common + "--kv-k f32 --kv-v f32 --kl-divergence " + base, &out, &err), 0) << err;
    EXPECT_NE(out.find("same top token 100.000%"), std::string::npos) << out;
    EXPECT_NE(out.find("PPL ratio 1.000000"), std::string::npos) << out;
    // a 4-bit cache: measurable divergence, reported
    ASSERT_EQ(run_cli(common + "--kv-k q4_0 --kv-v q4_0 --kl-divergence " + base, &out, &err), 0) << err;
    EXPECT_NE(out.find("KL divergence"), std::string::npos) << out;
    EXPECT_EQ(out.find("mean   0.000000 "), std::string::npos) << out;
    // a base made with another context is refused
    EXPECT_EQ(run_cli(text + "--ctx " + std::to_string(ctx / 2) + " --kl-divergence " + base, &out, &err), 1);
    EXPECT_NE(err.find("context"), std::string::npos) << err;
    fs::remove(base);
}

// --gpu never falls back to the CPU silently: without a GPU (or a CUDA build) it fails and says why;
// a KV type the GPU cache cannot hold is refused by name.
TEST(Cli, GpuFlagFailsClearlyWithoutGpu) {
    if (!std::getenv("ROTOR_BIN")) GTEST_SKIP() << "ROTOR_BIN not set (run through ctest)";
    std::string out, err;
    const std::string m = model_dir() + "rotor-kjv-11m-q8_0.gguf";
    const int rc = run_cli("run -m " + m + " -p hi -n 2 --gpu --kv-k f16 --kv-v f16", &out, &err);
    if (rc != 0) {
        EXPECT_EQ(rc, 1);
        EXPECT_TRUE(err.find("no CUDA GPU found") != std::string::npos ||
                    err.find("built without the CUDA backend") != std::string::npos ||
                    err.find("not supported by this build") != std::string::npos)
            << err;
    }
    // a KV type only the CPU has (bf16) is refused by name before any GPU is looked for
    EXPECT_EQ(run_cli("run -m " + m + " -p hi -n 2 --gpu --kv-k bf16 --kv-v bf16", &out, &err), 1);
    EXPECT_TRUE(err.find("bf16") != std::string::npos ||
                err.find("without the CUDA backend") != std::string::npos)
        << err;
    // every other KV type of the CPU's registry is one the GPU takes: the run gets past the KV check (and
    // stops at the missing GPU or build); a type added to the CPU only must be added here on purpose
    for (const std::string& t : kv_format_names()) {
        if (t == "bf16") continue;
        run_cli("run -m " + m + " -p hi -n 2 --gpu --kv-k " + t + " --kv-v " + t, &out, &err);
        EXPECT_EQ(err.find("is not supported by the CUDA backend"), std::string::npos) << t << ": " << err;
    }
}
