// `rotor tokenize` as a user runs it ($ROTOR_BIN, set by ctest).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tokenizer_test_util.h"

namespace fs = std::filesystem;
using namespace rotor;

namespace {

struct CliResult {
    int status = -1;
    std::string out;
};

// Runs `rotor ARGS < input` through the shell; stderr goes to stdout when merge_stderr.
CliResult run_rotor(const std::string& args, const std::string& input, bool merge_stderr = false) {
    const char* bin = std::getenv("ROTOR_BIN");
    CliResult r;
    if (!bin) return r;
    const fs::path in = fs::temp_directory_path() / ("rotor-tokenize-test-" + std::to_string(::getpid()) + ".txt");
    {
        std::ofstream f(in, std::ios::binary);
        f << input;
    }
    const std::string cmd = std::string("'") + bin + "' " + args + " < '" + in.string() + "'" + (merge_stderr ? " 2>&1" : "");
    FILE* p = popen(cmd.c_str(), "r");
    if (p) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
        const int st = pclose(p);
        r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    fs::remove(in);
    return r;
}

class CliTokenize : public testing::Test {
protected:
    void SetUp() override {
        if (!std::getenv("ROTOR_BIN")) GTEST_SKIP() << "ROTOR_BIN not set (run through ctest)";
        model_ = rotor::test::source_dir() + "/models/rotor-kjv-11m/rotor-kjv-11m-bf16.gguf";
        ROTOR_REQUIRE_TESTDATA(model_);
    }
    std::string model_;
};

TEST_F(CliTokenize, IdsOnOneLine) {
    const std::string text = "In the beginning God created the heaven and the earth.\n";
    const Vocab& v = rotor::test::cached_vocab(model_);
    const CliResult r = run_rotor("tokenize -m '" + model_ + "'", text);
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out, rotor::test::ids_text(v.tokenize(text, true)) + "\n");
    EXPECT_EQ(r.out.substr(0, 5), "4093 ");  // BOS
    const CliResult nb = run_rotor("tokenize -m '" + model_ + "' --no-bos", text);
    EXPECT_EQ(nb.out, rotor::test::ids_text(v.tokenize(text, false)) + "\n");
}

TEST_F(CliTokenize, ParseSpecialAndPieces) {
    const CliResult plain = run_rotor("tokenize -m '" + model_ + "' --no-bos", "<|im_end|>");
    const CliResult parsed = run_rotor("tokenize -m '" + model_ + "' --no-bos --parse-special", "<|im_end|>");
    EXPECT_NE(plain.out, "4095\n");
    EXPECT_EQ(parsed.out, "4095\n");
    const CliResult pieces = run_rotor("tokenize -m '" + model_ + "' --pieces --parse-special", "Amen.<|im_end|>\n");
    ASSERT_EQ(pieces.status, 0);
    EXPECT_EQ(pieces.out.substr(0, 19), "4093\t<|endoftext|>\n");
    EXPECT_NE(pieces.out.find("\t<|im_end|>\n"), std::string::npos) << pieces.out;
    EXPECT_NE(pieces.out.find("\t\\n\n"), std::string::npos) << pieces.out;  // the newline, escaped
}

TEST_F(CliTokenize, InvalidUtf8IsAClearError) {
    const CliResult r = run_rotor("tokenize -m '" + model_ + "'", "ok \xff\xfe", true);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.out.find("not valid UTF-8 (at byte 3)"), std::string::npos) << r.out;
}

TEST_F(CliTokenize, Usage) {
    EXPECT_EQ(run_rotor("tokenize", "", true).status, 2);
    EXPECT_EQ(run_rotor("tokenize -m '" + model_ + "' --bogus", "", true).status, 2);
    const CliResult missing = run_rotor("tokenize -m /nonexistent.gguf", "x", true);
    EXPECT_EQ(missing.status, 1);
}

}  // namespace
