// Parity with Hugging Face transformers. The fixtures in tests/fixtures/hf_parity were made on the GPU
// machine by scripts/gpu/hf_parity_fixtures.py (llama / qwen2 / qwen3) and
// scripts/gpu/hf_parity_fixtures_qwen35.py (qwen35 / qwen35moe) and scripts/gpu/hf_parity_fixtures_gemma4.py
// (gemma4 / gemma4_dense, transformers 5.17): small random models (safetensors),
// input ids, and float64 reference logits for the float32 weights and for the weights rounded to BF16
// and to Q8_0. Here rotor's converter writes each model as a GGUF with rotor's writer, the CPU forward
// pass runs it, and every position's logits are compared by relative L2 error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convert/hf_convert.h"
#include "gguf/gguf.h"
#include "kv/dense_kv_cache.h"
#include "kv/kv_pool.h"
#include "model/forward.h"
#include "testdata.h"

using namespace rotor;
namespace fs = std::filesystem;

namespace {

struct Case {
    Case(std::string a, GgmlType t, std::string r, double tol, bool med = false, std::string d = "")
        : arch(std::move(a)), type(t), ref(std::move(r)), tolerance(tol), median(med), dir(std::move(d)) {}
    std::string arch;
    GgmlType type;
    std::string ref;      // logits file
    double tolerance;     // max relative L2 per position
    bool median = false;  // bound the median position instead (see the Qwen3.5 Q8_0 cases)
    std::string dir;      // fixture folder when it is not named after the architecture
    const std::string& folder() const { return dir.empty() ? arch : dir; }
};

std::string fixture(const std::string& rel) { return test::source_dir() + "/tests/fixtures/hf_parity/" + rel; }

std::vector<float> read_f32(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<float> out(b.size() / 4);
    memcpy(out.data(), b.data(), out.size() * 4);
    return out;
}

// Runs the prompt either as one batch (prefill) or one token at a time (decode path). delta_chunk > 0:
// Gated DeltaNet layers in the chunked form.
std::vector<float> run(const Model& m, const std::vector<int>& ids, bool batched, int threads, int delta_chunk = 0) {
    DenseKvCache kv(kv_geometry(m), 1, (int)ids.size());
    RecurrentState rs(recurrent_geometry(m.cfg), 1);  // empty for the llama family
    CpuForward fw(m, threads);
    fw.set_delta_rule_chunk(delta_chunk);
    std::vector<float> all, logits;
    Batch b;
    if (batched) {
        for (size_t i = 0; i < ids.size(); i++) b.add(ids[i], (int)i, 0, true);
        fw.forward(b, kv, &rs, all);
        return all;
    }
    for (size_t i = 0; i < ids.size(); i++) {
        b.clear();
        b.add(ids[i], (int)i, 0, true);
        fw.forward(b, kv, &rs, logits);
        all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
}

// Prefill through the paged pool (f32 KV) with small blocks and steps, so that sliding-window layers
// keep rings of a few positions that wrap many times and the forward pass splits the batch.
std::vector<float> run_paged(const Model& m, const std::vector<int>& ids, int block_tokens, int batch_tokens) {
    auto kv = make_paged_kv_cache(kv_geometry(m), "f32", "f32", 1, (int)ids.size(), block_tokens, batch_tokens);
    CpuForward fw(m, 2);
    std::vector<float> all;
    Batch b;
    for (size_t i = 0; i < ids.size(); i++) b.add(ids[i], (int)i, 0, true);
    fw.forward(b, *kv, nullptr, all);
    return all;
}

double max_abs_diff(const std::vector<float>& got, const std::vector<float>& want) {
    double m = 0;
    for (size_t i = 0; i < want.size(); i++) m = std::max(m, std::fabs((double)got[i] - want[i]));
    return m;
}

std::vector<double> rel_l2_per_position(const std::vector<float>& got, const std::vector<float>& want, int n_vocab) {
    std::vector<double> out;
    for (size_t p = 0; p < want.size() / n_vocab; p++) {
        double e = 0, n = 0;
        for (int i = 0; i < n_vocab; i++) {
            const double d = (double)got[p * n_vocab + i] - want[p * n_vocab + i];
            e += d * d;
            n += (double)want[p * n_vocab + i] * want[p * n_vocab + i];
        }
        out.push_back(std::sqrt(e / n));
    }
    return out;
}

double worst_rel_l2(const std::vector<float>& got, const std::vector<float>& want, int n_vocab) {
    const std::vector<double> r = rel_l2_per_position(got, want, n_vocab);
    return *std::max_element(r.begin(), r.end());
}

double median_rel_l2(const std::vector<float>& got, const std::vector<float>& want, int n_vocab) {
    std::vector<double> r = rel_l2_per_position(got, want, n_vocab);
    std::nth_element(r.begin(), r.begin() + r.size() / 2, r.end());
    return r[r.size() / 2];
}

// The same model with every tensor dequantized to F32: isolates the weights from activation rounding.
std::string dequantized_copy(const std::string& path) {
    gguf::File f = gguf::File::open(path);
    gguf::Writer w(f.alignment());
    for (const auto& kv : f.kvs()) w.set_value(kv.key, kv.value);
    for (const auto& t : f.tensors()) {
        const gguf::TensorInfo ti = t;
        w.add_tensor(t.name, GgmlType::F32, std::vector<int64_t>(t.ne, t.ne + t.n_dims), [ti](uint8_t* dst, uint64_t) {
            const uint64_t rb = row_bytes(ti.type, (uint64_t)ti.ne[0]);
            for (int64_t r = 0; r < ti.rows(); r++)
                dequantize_row(ti.type, ti.data + r * rb, reinterpret_cast<float*>(dst) + r * ti.ne[0], ti.ne[0]);
        });
    }
    const std::string out = path + ".f32.gguf";
    w.write(out);
    return out;
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.folder() << " " << format_info(c.type).name << " vs " << c.ref; }

class HfParity : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(HfParity, LogitsMatchTransformers) {
    const Case& c = GetParam();
    if (!fs::exists(fixture(c.folder() + "/" + c.ref)))  // a fixture set not generated (yet)
        GTEST_SKIP() << "fixture " << fixture(c.folder() + "/" + c.ref) << " not generated yet";
    const fs::path dir = fs::temp_directory_path() / ("rotor_hf_" + c.folder() + "_" + std::to_string(getpid()));
    fs::create_directories(dir);
    const std::string gguf_path = (dir / ("model-" + std::string(format_info(c.type).name) + ".gguf")).string();
    HfConvertOptions opt;
    opt.outtype = c.type;
    convert_hf_to_gguf(fixture(c.folder()), gguf_path, opt);
    auto model = Model::load(gguf_path);
    EXPECT_EQ(model->cfg.arch_name, c.arch);

    std::ifstream idf(fixture(c.folder() + "/input_ids.json"));
    const std::vector<int> ids = nlohmann::json::parse(idf).get<std::vector<int>>();
    const std::vector<float> want = read_f32(fixture(c.folder() + "/" + c.ref));
    const int V = model->cfg.n_vocab;
    ASSERT_EQ(want.size(), ids.size() * (size_t)V);

    const std::vector<float> got_prefill = run(*model, ids, true, 2), got_decode = run(*model, ids, false, 1);
    const double prefill = worst_rel_l2(got_prefill, want, V);
    const double decode = worst_rel_l2(got_decode, want, V);
    RecordProperty("prefill_rel_l2", std::to_string(prefill));
    RecordProperty("decode_rel_l2", std::to_string(decode));
    printf("    %s %s: worst relative L2 per position: prefill %.3g, decode %.3g (bound %.0e); max abs %.3g / %.3g\n",
           c.folder().c_str(), std::string(format_info(c.type).name).c_str(), prefill, decode, c.tolerance,
           max_abs_diff(got_prefill, want), max_abs_diff(got_decode, want));
    if (!model->cfg.window.empty() && c.type == GgmlType::F32) {
        // Sliding-window layers in the paged pool's rings (window + 4 positions, 4-position blocks): the
        // same bound.
        const double ring = worst_rel_l2(run_paged(*model, ids, 4, 4), want, V);
        printf("    %s f32 prefill through sliding-window rings: worst relative L2 %.3g\n", c.folder().c_str(), ring);
        EXPECT_LT(ring, c.tolerance);
    }
    if (model->cfg.hybrid() && c.type == GgmlType::F32) {
        // The chunked delta rule for prefill, 16-token chunks (the last one partial): the same bound.
        const double chunked = worst_rel_l2(run(*model, ids, true, 2, 16), want, V);
        printf("    %s f32 prefill with the chunked delta rule: worst relative L2 %.3g\n", c.arch.c_str(), chunked);
        EXPECT_LT(chunked, c.tolerance);
    }
    if (c.median) {
        const double mp = median_rel_l2(got_prefill, want, V), md = median_rel_l2(got_decode, want, V);
        printf("    %s %s: median relative L2 per position: prefill %.3g, decode %.3g (bound %.0e)\n", c.folder().c_str(),
               std::string(format_info(c.type).name).c_str(), mp, md, c.tolerance);
        EXPECT_LT(mp, c.tolerance);
        EXPECT_LT(md, c.tolerance);
    } else {
        EXPECT_LT(prefill, c.tolerance);
        EXPECT_LT(decode, c.tolerance);
    }
    if (c.type == GgmlType::Q8_0 && fs::exists(fixture(c.folder() + "/logits_q8_0_act.bin"))) {
        // The whole quantized path against a reference that also rounds every Linear's input to Q8_0
        // (as rotor and llama.cpp do before their integer dot products). The arithmetic is then the
        // same, and positions agree to ~1e-7 until the first activation lands within float rounding
        // of a code boundary and the two sides round it differently (measured: position 9 for qwen3,
        // 13 for llama); that one-step difference then reaches later positions through the cache.
        // So: the first 8 positions exactly, every position within the flip-amplified 5e-2.
        const std::vector<float> act_ref = read_f32(fixture(c.folder() + "/logits_q8_0_act.bin"));
        const std::vector<float> got = run(*model, ids, true, 2);
        const std::vector<float> head(got.begin(), got.begin() + 8 * (size_t)V), head_ref(act_ref.begin(), act_ref.begin() + 8 * (size_t)V);
        // With routed experts, one such flip can also change an expert choice and move a position by
        // ~0.3 (measured on the gemma4 model against a float64 port: exact to position 43, then 2-4%
        // with one position at 0.27): there the bound holds for the median position.
        const bool experts = model->cfg.n_expert > 0;
        const double first8 = worst_rel_l2(head, head_ref, V);
        const double all = experts ? median_rel_l2(got, act_ref, V) : worst_rel_l2(got, act_ref, V);
        printf("    %s q8_0 vs reference with Q8_0-rounded activations: first 8 positions %.3g (bound 1e-6), %s %.3g\n",
               c.folder().c_str(), first8, experts ? "median position" : "all", all);
        EXPECT_LT(first8, 1e-6);
        EXPECT_LT(all, 5e-2);
    }
    if (c.type != GgmlType::F32) {
        // The stored weights themselves must equal the reference's rounded weights: with them expanded to
        // F32 (no activation rounding anywhere) the float32 bound applies.
        auto exact = Model::load(dequantized_copy(gguf_path));
        const double weights_only = worst_rel_l2(run(*exact, ids, true, 2), want, V);
        printf("    %s %s dequantized to f32: worst relative L2 %.3g (bound 1e-4)\n", c.folder().c_str(),
               std::string(format_info(c.type).name).c_str(), weights_only);
        EXPECT_LT(weights_only, 1e-4);
    }
    fs::remove_all(dir);
}

// Bounds. F32: the issue's 1e-4 (float32 arithmetic against a float64 reference lands near 2e-6).
// BF16: the reference uses the same rounded weights, so only float32 arithmetic differs: 1e-4.
// Q8_0: two checks. (1) The stored weights: the model with every tensor dequantized to F32 must meet the
// F32 bound against the reference built from the same Q8_0-rounded weights (measured ~2e-6). (2) The
// whole quantized path: rotor, like llama.cpp, also rounds each activation row to Q8_0 (one fp16 scale
// per 32 values) before the integer dot products. Each rounding adds noise of about amax/(127*sqrt(12))
// per element, ~0.5% of the row's RMS for Gaussian-like rows, at each of the 7 matrix inputs per layer;
// these random-weight models (weights 1.5/sqrt(n), sharp attention) amplify it through 3 layers to the
// measured 4-8% relative L2 on the logits. Bound 0.15: twice the worst measured, and still far below the
// O(1) error of a wrong scale, block layout or row permutation.
// Qwen3.5 (random hybrid models, more chaotic still): Q8_0 weights alone already move single positions by
// up to 0.29 (dense) / 0.50 (MoE, where a rounding can flip an expert choice) against the F32 weights,
// so for the quantized path against the weights-only reference the bound holds for the median position
// (measured 0.059 / 0.047; worst 0.34 / 0.78). The exact checks carry the weight: dequantized weights
// within 1e-4 (measured 1.7e-5 / 5.8e-6) and, for the dense model, the whole Q8_0 path against
// transformers with Q8_0-rounded activations at 7.8e-8 over all 72 positions (the MoE experts are not
// nn.Linear modules, so transformers' hooks cannot round their inputs: no such reference there).
INSTANTIATE_TEST_SUITE_P(
    Transformers, HfParity,
    ::testing::Values(Case{"llama", GgmlType::F32, "logits_f32.bin", 1e-4},
                      Case{"qwen2", GgmlType::F32, "logits_f32.bin", 1e-4},
                      Case{"qwen3", GgmlType::F32, "logits_f32.bin", 1e-4},
                      Case{"llama", GgmlType::BF16, "logits_bf16.bin", 1e-4},
                      Case{"qwen2", GgmlType::BF16, "logits_bf16.bin", 1e-4},
                      Case{"qwen3", GgmlType::BF16, "logits_bf16.bin", 1e-4},
                      Case{"llama", GgmlType::Q8_0, "logits_q8_0.bin", 0.15},
                      Case{"qwen2", GgmlType::Q8_0, "logits_q8_0.bin", 0.15},
                      Case{"qwen3", GgmlType::Q8_0, "logits_q8_0.bin", 0.15},
                      // Qwen3.5: the checkpoints are stored in BF16, so the F32 reference holds for BF16 too.
                      Case{"qwen35", GgmlType::F32, "logits_f32.bin", 1e-4},
                      Case{"qwen35moe", GgmlType::F32, "logits_f32.bin", 1e-4},
                      Case{"qwen35", GgmlType::BF16, "logits_f32.bin", 1e-4},
                      Case{"qwen35moe", GgmlType::BF16, "logits_f32.bin", 1e-4},
                      Case{"qwen35", GgmlType::Q8_0, "logits_q8_0.bin", 0.15, true},
                      Case{"qwen35moe", GgmlType::Q8_0, "logits_q8_0.bin", 0.15, true},
                      // Gemma 4 (scripts/gpu/hf_parity_fixtures_gemma4.py): BF16 checkpoints, so the F32
                      // reference holds for BF16 too. gemma4: the 26B-A4B layout (sliding window 8 over 72
                      // tokens, K = V global layers, experts, soft-capping); gemma4_dense: no experts, V
                      // projections on the global layers, no soft-capping. Measured (H200 fixtures): F32 and
                      // BF16 1.3e-6 / 1.0e-6 (also through wrapping KV rings); Q8_0 weights alone move the
                      // median position by 0.039 / 0.018 (worst 0.23 / 0.078); the whole Q8_0 path against
                      // Q8_0-rounded activations: first 8 positions 9.8e-8 / 6.2e-8, then after the first
                      // rounding flip median 0.017 (experts) / worst 0.014.
                      Case{"gemma4", GgmlType::F32, "logits_f32.bin", 1e-4},
                      Case{"gemma4", GgmlType::BF16, "logits_f32.bin", 1e-4},
                      Case{"gemma4", GgmlType::Q8_0, "logits_q8_0.bin", 0.15, true},
                      Case{"gemma4", GgmlType::F32, "logits_f32.bin", 1e-4, false, "gemma4_dense"},
                      Case{"gemma4", GgmlType::BF16, "logits_f32.bin", 1e-4, false, "gemma4_dense"},
                      Case{"gemma4", GgmlType::Q8_0, "logits_q8_0.bin", 0.15, true, "gemma4_dense"}),
    [](const auto& info) { return info.param.folder() + "_" + std::string(format_info(info.param.type).name); });

TEST(HfConvert, RejectsWhatItCannotConvert) {
    const fs::path dir = fs::temp_directory_path() / ("rotor_hf_bad_" + std::to_string(getpid()));
    fs::create_directories(dir);
    HfConvertOptions opt;
    EXPECT_THROW(convert_hf_to_gguf(dir.string(), (dir / "x.gguf").string(), opt), Error);  // no config
    std::ofstream(dir / "config.json") << R"({"model_type": "mamba"})";
    EXPECT_THROW(convert_hf_to_gguf(dir.string(), (dir / "x.gguf").string(), opt), Error);
    std::ofstream(dir / "config.json") << "{not json";
    EXPECT_THROW(convert_hf_to_gguf(dir.string(), (dir / "x.gguf").string(), opt), Error);
    fs::remove_all(dir);
}

// A config that does not match its tensors: one layer more than the checkpoint holds names the missing
// tensor; a wider feed-forward names the tensor whose shape disagrees. For each converter family.
TEST(HfConvert, ConfigThatDisagreesWithTheTensors) {
    for (const char* folder : {"qwen3", "qwen35", "gemma4"}) {
        if (!fs::exists(fixture(std::string(folder) + "/config.json"))) continue;
        const fs::path dir = fs::temp_directory_path() / ("rotor_hf_mismatch_" + std::to_string(getpid()));
        fs::create_directories(dir);
        fs::copy_file(fixture(std::string(folder) + "/model.safetensors"), dir / "model.safetensors",
                      fs::copy_options::overwrite_existing);
        std::ifstream in(fixture(std::string(folder) + "/config.json"));
        const nlohmann::json config = nlohmann::json::parse(in);
        auto message = [&](const nlohmann::json& c) {
            std::ofstream(dir / "config.json") << c.dump();
            try {
                convert_hf_to_gguf(dir.string(), (dir / "x.gguf").string(), HfConvertOptions{});
            } catch (const Error& e) {
                return std::string(e.what());
            }
            return std::string("(converted)");
        };
        nlohmann::json more_layers = config;
        nlohmann::json& text = more_layers.contains("text_config") ? more_layers["text_config"] : more_layers;
        const int n_layer = text["num_hidden_layers"].get<int>();
        text["num_hidden_layers"] = n_layer + 1;
        if (text.contains("layer_types")) text["layer_types"].push_back(text["layer_types"].back());
        const std::string m1 = message(more_layers);
        EXPECT_NE(m1.find("lacks"), std::string::npos) << folder << ": " << m1;
        EXPECT_NE(m1.find(std::to_string(n_layer)), std::string::npos) << folder << ": " << m1;
        nlohmann::json wider = config;
        nlohmann::json& t2 = wider.contains("text_config") ? wider["text_config"] : wider;
        t2["intermediate_size"] = t2["intermediate_size"].get<int>() + 32;
        const std::string m2 = message(wider);
        EXPECT_TRUE(m2.find("shape") != std::string::npos) << folder << ": " << m2;
        fs::remove_all(dir);
    }
}
