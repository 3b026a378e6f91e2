// Expected token ids from other tokenizer implementations (../shared/testdata/tokenizer-fixtures and
// qwen35-tokenizer): llama-tokenizer-js (Llama 2), llama3-tokenizer-js (Llama 3.1) and Hugging Face's
// tokenizer for Qwen3.6 on the sparse Qwen3.5 vocabulary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>

#include "tokenizer_test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace rotor;
using rotor::test::cached_vocab;
using rotor::test::ids_text;
using rotor::test::testdata;

namespace {

std::vector<int32_t> to_ids(const json& a) {
    std::vector<int32_t> ids;
    for (const auto& x : a) ids.push_back(x.get<int32_t>());
    return ids;
}

TEST(TokenizerJs, Llama2Spm) {
    const std::string cases = testdata("tokenizer-fixtures/llama-tokenizer-js_llama2_encode_cases.json");
    const std::string gguf = testdata("vocab/ggml-vocab-llama-spm.gguf");
    ROTOR_REQUIRE_TESTDATA(cases);
    ROTOR_REQUIRE_TESTDATA(gguf);
    const Vocab& v = cached_vocab(gguf);
    const json j = json::parse(rotor::test::read_file(cases));
    ASSERT_EQ(j.size(), 12u);
    for (const auto& c : j) {
        // encode(text, add_bos_token = true, add_preceding_space = true): BOS plus SPM's space prefix.
        ASSERT_EQ(c["encode_args"][0], true);
        ASSERT_EQ(c["encode_args"][1], true);
        const std::string text = c["input"];
        const std::vector<int32_t> ids = v.tokenize(text, true, false);
        EXPECT_EQ(ids_text(ids), ids_text(to_ids(c["ids"]))) << "text: " << rotor::test::escaped(text);
        EXPECT_EQ(v.detokenize(ids), text);
    }
}

// Llama-3.1 names for special tokens that the Llama 3 vocabulary calls <|reserved_special_token_N|>
// (or does not have): cases using them cannot give llama3-tokenizer-js's ids on this vocabulary.
bool uses_llama31_only_names(const std::string& text) {
    for (const char* name : {"<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2"})
        if (text.find(name) != std::string::npos) return true;
    // Llama 3.1 renumbered the reserved tokens from 2 on; 0 and 1 keep their ids.
    size_t pos = 0;
    while ((pos = text.find("<|reserved_special_token_", pos)) != std::string::npos) {
        pos += 25;
        const std::string num = text.substr(pos, text.find('|', pos) - pos);
        if (num != "0" && num != "1") return true;
    }
    return false;
}

void run_llama3_case(const Vocab& v, const std::string& text, const std::vector<int32_t>& expected, bool bos, bool eos) {
    // llama3-tokenizer-js matches special-token names in the text.
    std::vector<int32_t> ids = v.tokenize(text, false, true);
    if (bos) ids.insert(ids.begin(), v.bos());
    if (eos) ids.push_back(v.eos());
    if (uses_llama31_only_names(text)) {
        // Not comparable: make sure it really differs (else it belongs with the checked cases).
        EXPECT_NE(ids_text(ids), ids_text(expected)) << "Llama-3.1-name case now matches: " << text;
        return;
    }
    EXPECT_EQ(ids_text(ids), ids_text(expected)) << "text: " << rotor::test::escaped(text);
}

TEST(TokenizerJs, Llama3EncodeCases) {
    const std::string cases = testdata("tokenizer-fixtures/llama3-tokenizer-js_encode_cases.json");
    const std::string gguf = testdata("vocab/ggml-vocab-llama3-from-npm.gguf");
    ROTOR_REQUIRE_TESTDATA(cases);
    ROTOR_REQUIRE_TESTDATA(gguf);
    const Vocab& v = cached_vocab(gguf);
    const json j = json::parse(rotor::test::read_file(cases));
    ASSERT_EQ(j.size(), 22u);
    int n_31 = 0;
    for (const auto& c : j) {
        const std::string text = c["input"];
        n_31 += uses_llama31_only_names(text);
        const json& opt = c["encode_args"][0];
        const bool bos = opt.is_null() || opt.value("bos", true);
        const bool eos = opt.is_null() || opt.value("eos", true);
        run_llama3_case(v, text, to_ids(c["ids"]), bos, eos);
    }
    // Three cases here (and one in llama3-tokenizer-js_tests.json) use Llama-3.1-only names.
    EXPECT_EQ(n_31, 3) << "cases with Llama-3.1-only names in this file";
}

TEST(TokenizerJs, Llama3Tests) {
    const std::string cases = testdata("tokenizer-fixtures/llama3-tokenizer-js_tests.json");
    const std::string gguf = testdata("vocab/ggml-vocab-llama3-from-npm.gguf");
    ROTOR_REQUIRE_TESTDATA(cases);
    ROTOR_REQUIRE_TESTDATA(gguf);
    const Vocab& v = cached_vocab(gguf);
    const json j = json::parse(rotor::test::read_file(cases));
    ASSERT_EQ(j.size(), 19u);
    int n_31 = 0;
    for (const auto& c : j) {
        const std::string text = c["input"];
        n_31 += uses_llama31_only_names(text);
        // testEncodeAndDecode encodes without BOS/EOS; testEncode passes its options (default: both).
        const json& opt = c["options"];
        const bool plain = c["fn"] == "testEncodeAndDecode";
        const bool bos = !plain && (opt.is_null() || opt.value("bos", true));
        const bool eos = !plain && (opt.is_null() || opt.value("eos", true));
        run_llama3_case(v, text, to_ids(c["expected_ids"]), bos, eos);
        if (c["fn"] == "testEncodeAndDecode" && !uses_llama31_only_names(text)) {
            EXPECT_EQ(v.detokenize(v.tokenize(text, false, true), true), text);
        }
    }
    EXPECT_EQ(n_31, 1);
}

// The Qwen3.5 sparse vocabulary is stored xz-compressed; it is unpacked into a temporary folder.
class Qwen35 : public testing::Test {
protected:
    static void SetUpTestSuite() {
        const std::string xz = testdata("qwen35-tokenizer/ggml-vocab-qwen35-SPARSE-fixture-only.gguf.xz");
        if (!fs::exists(xz)) return;
        char tmpl[] = "/tmp/rotor-qwen35-XXXXXX";
        if (!mkdtemp(tmpl)) return;
        dir_ = tmpl;
        path_ = dir_ + "/ggml-vocab-qwen35-SPARSE-fixture-only.gguf";
        const std::string cmd = "xz -dc '" + xz + "' > '" + path_ + "'";
        if (std::system(cmd.c_str()) != 0) path_.clear();
    }
    static void TearDownTestSuite() {
        if (!dir_.empty()) fs::remove_all(dir_);
    }
    static std::string dir_, path_;
};
std::string Qwen35::dir_, Qwen35::path_;

TEST_F(Qwen35, GoldenCases) {
    const std::string cases = testdata("qwen35-tokenizer/qwen36_golden_cases.json");
    ROTOR_REQUIRE_TESTDATA(cases);
    ROTOR_REQUIRE_TESTDATA(testdata("qwen35-tokenizer/ggml-vocab-qwen35-SPARSE-fixture-only.gguf.xz"));
    ASSERT_FALSE(path_.empty()) << "could not unpack the vocabulary with xz";
    const Vocab& v = cached_vocab(path_);
    EXPECT_EQ(v.pre(), "qwen35");
    EXPECT_FALSE(v.add_bos());
    const json j = json::parse(rotor::test::read_file(cases));
    ASSERT_EQ(j["cases"].size(), 18u);
    for (const auto& c : j["cases"]) {
        const std::string text = c["text"];
        const bool parse_special = c["kind"] != "text";  // trusted text and rendered chats: specials parsed
        const std::vector<int32_t> ids = v.tokenize(text, false, parse_special);
        EXPECT_EQ(ids_text(ids), ids_text(to_ids(c["token_ids"]))) << "case " << c["name"];
    }
}

}  // namespace
