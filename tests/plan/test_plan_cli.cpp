// `rotor plan --slots N --ctx C`: the part-by-part breakdown the GPU server is measured against, and
// `rotor serve --gpu`'s refusals on a machine (or build) that cannot run it: never a silent CPU run.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "convert/synthetic.h"
#include "testdata.h"

namespace rotor::test {
namespace {

TEST(PlanCli, BreakdownOfExactlyNSlotsOfCTokens) {
    const std::string path =
        (std::filesystem::temp_directory_path() / ("rotor_plan_cli_" + std::to_string(getpid()) + ".gguf")).string();
    write_synthetic_model(find_shape("llama-3.1-8b"), parse_quant_mix("q4_k_m"), path, 1, "", false);
    std::string out, err;
    const int rc = run_cli("plan -m " + path + " --vram 16 --kv-k q8_0 --kv-v q8_0 --slots 4 --ctx 16384 --json", &out, &err);
    if (rc == -1) GTEST_SKIP() << "ROTOR_BIN not set";
    ASSERT_EQ(rc, 0) << err;
    const auto j = nlohmann::json::parse(out);
    const auto& p = j.at("plans").at(0);
    const auto& b = p.at("breakdown");
    EXPECT_EQ(p.at("slots").get<int>(), 4);
    EXPECT_EQ(b.at("weights").get<uint64_t>(), j.at("weights_bytes").get<uint64_t>());
    // Llama 3.1 8B at q8_0: 32 layers x 8 KV heads x 2 x 34 bytes per 32 elements of 128 = 68 KiB per token
    EXPECT_EQ(b.at("kv").get<uint64_t>(), 4ull * 16384 * 32 * 8 * 2 * (128 / 32 * 34));
    EXPECT_EQ(b.at("overhead").get<uint64_t>(), 512ull << 20);
    EXPECT_GT(b.at("compute").get<uint64_t>(), 0u);
    EXPECT_EQ(b.at("total").get<uint64_t>(), b.at("weights").get<uint64_t>() + b.at("kv").get<uint64_t>() +
                                                 b.at("recurrent").get<uint64_t>() + b.at("compute").get<uint64_t>() +
                                                 b.at("overhead").get<uint64_t>());
    EXPECT_TRUE(p.at("fits").get<bool>());  // 9.5 GiB on 16
    ASSERT_EQ(run_cli("plan -m " + path + " --vram 8 --kv-k q8_0 --kv-v q8_0 --slots 4 --ctx 16384", &out, &err), 0);
    EXPECT_NE(out.find("does not fit"), std::string::npos) << out;
    std::filesystem::remove(path);
}

TEST(ServeCli, GpuRefusalsAreClearErrors) {
    const std::string model = source_dir() + "/models/rotor-kjv-11m/rotor-kjv-11m-q8_0.gguf";
    if (!std::filesystem::exists(model)) GTEST_SKIP() << "model not found: " << model;
    std::string out, err;
    // A KV type the GPU cannot hold is refused by name (before any GPU is looked for); a build without
    // CUDA says so.
    int rc = run_cli("serve -m " + model + " --port 0 --gpu --kv-k bf16 --kv-v bf16", &out, &err);
    if (rc == -1) GTEST_SKIP() << "ROTOR_BIN not set";
    EXPECT_NE(rc, 0);
    EXPECT_TRUE(err.find("KV type 'bf16' is not supported by the CUDA backend") != std::string::npos ||
                err.find("built without the CUDA backend") != std::string::npos)
        << err;
    rc = run_cli("serve -m " + model + " --port 0 --gpu --kv-k f16 --kv-v q8_0", &out, &err);
    EXPECT_NE(rc, 0);
    EXPECT_TRUE(err.find("K and V must have the same KV type") != std::string::npos ||
                err.find("built without the CUDA backend") != std::string::npos)
        << err;
    // A GPU index that does not exist (here: no GPU at all, or fewer than 100).
    rc = run_cli("serve -m " + model + " --port 0 --gpu-id 99", &out, &err);
    EXPECT_NE(rc, 0);
    EXPECT_TRUE(err.find("no CUDA GPU found") != std::string::npos || err.find("GPU 99 does not exist") != std::string::npos ||
                err.find("built without the CUDA backend") != std::string::npos)
        << err;
}

// `rotor bench` measures the GPU: without one (or without the CUDA build) it says so and fails, and a
// bad option prints its usage.
TEST(BenchCli, NeedsAGpuAndSaysSo) {
    std::string out, err;
    // (on a machine with a GPU this stops at the unknown shape, after measuring the copy bandwidth)
    int rc = run_cli("bench --quick --no-matvec --shapes no-such-shape", &out, &err);
    if (rc == -1) GTEST_SKIP() << "ROTOR_BIN not set";
    EXPECT_NE(rc, 0);
    EXPECT_TRUE(err.find("no CUDA GPU found") != std::string::npos || err.find("built without") != std::string::npos ||
                err.find("unknown model shape 'no-such-shape'") != std::string::npos)
        << err;
    rc = run_cli("bench --no-such-option", &out, &err);
    EXPECT_NE(rc, 0);
    EXPECT_TRUE(err.find("usage: rotor bench") != std::string::npos || err.find("built without") != std::string::npos)
        << err;
}

}  // namespace
}  // namespace rotor::test
