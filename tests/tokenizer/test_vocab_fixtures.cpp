// llama.cpp's tokenizer fixtures (../shared/testdata/vocab/X.gguf.inp / .out): every test string is
// one test case, tokenized without BOS/EOS and without special-token parsing, and (where the
// tokenizer is lossless) detokenized back to the same text.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "tokenizer_test_util.h"

namespace fs = std::filesystem;
using namespace rotor;
using rotor::test::cached_vocab;
using rotor::test::testdata;

namespace {

// Fixture name -> the vocabulary it runs against (the README says which GGUF reproduces which).
struct FixtureSet {
    const char* fixture;  // vocab/<fixture>.gguf.inp / .out
    const char* gguf;     // vocab/<gguf>
};
const FixtureSet kSets[] = {
    {"ggml-vocab-bert-bge", "ggml-vocab-bert-bge.gguf"},
    {"ggml-vocab-falcon", "ggml-vocab-falcon.gguf"},
    {"ggml-vocab-gemma-4", "ggml-vocab-gemma4-from-gemma3-npm.gguf"},
    {"ggml-vocab-gpt-2", "ggml-vocab-gpt-2.gguf"},
    {"ggml-vocab-llama-bpe", "ggml-vocab-llama3-from-npm.gguf"},
    {"ggml-vocab-llama-spm", "ggml-vocab-llama-spm.gguf"},
    {"ggml-vocab-mpt", "ggml-vocab-mpt.gguf"},
    {"ggml-vocab-phi-3", "ggml-vocab-phi-3.gguf"},
    {"ggml-vocab-qwen2", "ggml-vocab-qwen3-from-npm.gguf"},
    {"ggml-vocab-starcoder", "ggml-vocab-starcoder.gguf"},
};

struct Case {
    std::string name;     // test name suffix
    std::string gguf;     // full path
    std::string missing;  // non-empty: the path that was not found (test skips)
    std::string text;
    std::vector<int32_t> ids;
};

std::vector<std::string> split_inputs(const std::string& inp) {
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> out;
    size_t pos = 0;
    while (true) {
        const size_t m = inp.find(sep, pos);
        if (m == std::string::npos) {
            out.push_back(inp.substr(pos));
            break;
        }
        out.push_back(inp.substr(pos, m - pos));
        pos = m + sep.size();
    }
    if (!out.empty() && out.back().empty()) out.pop_back();  // the file ends with the separator
    return out;
}

std::string safe_name(const std::string& s) {
    std::string out;
    for (char c : s) out += std::isalnum((unsigned char)c) ? c : '_';
    return out;
}

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    for (const FixtureSet& set : kSets) {
        const std::string base = safe_name(std::string(set.fixture).substr(11));  // drop "ggml-vocab-"
        const std::string inp = testdata(std::string("vocab/") + set.fixture + ".gguf.inp");
        const std::string outp = testdata(std::string("vocab/") + set.fixture + ".gguf.out");
        const std::string gguf = testdata(std::string("vocab/") + set.gguf);
        std::string missing;
        for (const std::string& p : {inp, outp, gguf})
            if (missing.empty() && !fs::exists(p)) missing = p;
        if (!missing.empty()) {
            cases.push_back({base + "_missing", gguf, missing, "", {}});
            continue;
        }
        const std::vector<std::string> texts = split_inputs(rotor::test::read_file(inp));
        std::vector<std::vector<int32_t>> expected;
        std::istringstream lines(rotor::test::read_file(outp));
        std::string line;
        while (std::getline(lines, line)) {
            std::istringstream ls(line);
            std::vector<int32_t> ids;
            int64_t id;
            while (ls >> id) ids.push_back((int32_t)id);
            expected.push_back(ids);
        }
        if (texts.size() != expected.size()) {
            // A broken fixture pair must fail loudly, not shrink the test set.
            cases.push_back({base + "_count_mismatch", gguf,
                             "", "", {-1, (int32_t)texts.size(), (int32_t)expected.size()}});
            continue;
        }
        for (size_t i = 0; i < texts.size(); i++) {
            char idx[24];
            snprintf(idx, sizeof idx, "%02zu", i);
            cases.push_back({base + "_" + idx, gguf, "", texts[i], expected[i]});
        }
    }
    return cases;
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class VocabFixture : public testing::TestWithParam<Case> {};

TEST_P(VocabFixture, Tokenize) {
    const Case& c = GetParam();
    if (!c.missing.empty()) GTEST_SKIP() << "test data not found: " << c.missing;
    ASSERT_FALSE(c.name.ends_with("_count_mismatch"))
        << "fixture has " << c.ids[1] << " inputs but " << c.ids[2] << " expected lines";
    const Vocab& v = cached_vocab(c.gguf);
    const std::vector<int32_t> ids = v.tokenize(c.text, false, false);
    EXPECT_EQ(rotor::test::ids_text(ids), rotor::test::ids_text(c.ids)) << "text: '" << rotor::test::escaped(c.text) << "'";

    // Lossless tokenizers give the text back (WordPiece lowercases and drops accents).
    if (v.type() != VocabType::Wpm) {
        EXPECT_EQ(v.detokenize(ids), c.text) << "round trip of '" << rotor::test::escaped(c.text) << "'";
        // Streaming one token at a time gives the same text.
        StreamDecoder dec(v);
        std::string streamed;
        for (int32_t id : ids) streamed += dec.push(id);
        streamed += dec.flush();
        EXPECT_EQ(streamed, c.text);
    }
}

INSTANTIATE_TEST_SUITE_P(Llama, VocabFixture, testing::ValuesIn(all_cases()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
