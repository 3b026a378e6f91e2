// The reference converters against gguf-py's vectors (../shared/testdata/quants, see its README):
// every dequantizer bit for bit, the closed-form quantizers byte for byte, the same data read
// through quant-test.gguf, and `rotor gguf dump` end to end.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "formats/formats.h"
#include "formats_test_util.h"
#include "gguf/gguf.h"

namespace fs = std::filesystem;
using rotor::GgmlType;
using namespace rotor::test;

namespace {

std::string param_name(const ::testing::TestParamInfo<GgmlType>& info) { return testdata_name(info.param); }

// ------------------------------------------------------------ dequantization

class DequantVectors : public ::testing::TestWithParam<GgmlType> {};

TEST_P(DequantVectors, BitExact) {
    const GgmlType t = GetParam();
    const std::string name = testdata_name(t);
    ROTOR_REQUIRE_TESTDATA(quants_file(name + ".blocks.bin"));
    const std::vector<uint8_t> blocks = read_file_bytes(quants_file(name + ".blocks.bin"));
    const std::vector<float> want = read_f32_file(quants_file(name + ".f32.bin"));
    const rotor::FormatInfo& fi = rotor::format_info(t);
    ASSERT_TRUE(fi.can_dequantize);
    ASSERT_EQ(blocks.size(), rotor::row_bytes(t, want.size()));
    EXPECT_TRUE(same_bits(dequantize(t, blocks, want.size()), want, (int)fi.block_elems));

    // Row by row (one block per call) must give the same as one long row.
    Bytes in(blocks);
    std::vector<float> got(want.size());
    for (size_t b = 0; b < want.size() / fi.block_elems; b++)
        rotor::dequantize_row(t, in.data() + b * fi.block_bytes, got.data() + b * fi.block_elems, fi.block_elems);
    EXPECT_TRUE(same_bits(got, want, (int)fi.block_elems));
}

INSTANTIATE_TEST_SUITE_P(
    Formats, DequantVectors,
    ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                      GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                      GgmlType::Q6_K, GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS,
                      GgmlType::IQ3_S, GgmlType::IQ1_S, GgmlType::IQ1_M, GgmlType::IQ4_NL, GgmlType::IQ4_XS,
                      GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::MXFP4, GgmlType::NVFP4),
    param_name);

// ------------------------------------------------------------ quantization

class QuantVectors : public ::testing::TestWithParam<GgmlType> {};

TEST_P(QuantVectors, ByteExact) {
    const GgmlType t = GetParam();
    const std::string name = testdata_name(t);
    ROTOR_REQUIRE_TESTDATA(quants_file(name + ".input.f32.bin"));
    const std::vector<float> input = read_f32_file(quants_file(name + ".input.f32.bin"));
    const std::vector<uint8_t> want = read_file_bytes(quants_file(name + ".quant.bin"));
    const rotor::FormatInfo& fi = rotor::format_info(t);
    ASSERT_TRUE(fi.can_quantize);
    ASSERT_EQ(want.size(), rotor::row_bytes(t, input.size()));
    EXPECT_TRUE(same_bytes(quantize(t, input), want, fi.block_bytes));
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantVectors,
                         ::testing::Values(GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                           GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::TQ1_0,
                                           GgmlType::TQ2_0, GgmlType::MXFP4),
                         param_name);

// ------------------------------------------------------------ quant-test.gguf

// Tensor name -> expected f32 file, from index.json's "gguf" section. A minimal scan, not a JSON
// parser: within the "tensors" array every object has "name" before "expected_f32".
std::map<std::string, std::string> gguf_expected_files(const std::string& index_json) {
    std::map<std::string, std::string> out;
    auto string_after = [&](const std::string& key, size_t from, size_t* end) -> std::string {
        const size_t k = index_json.find("\"" + key + "\"", from);
        if (k == std::string::npos) return {};
        const size_t q1 = index_json.find('"', index_json.find(':', k) + 1);
        const size_t q2 = index_json.find('"', q1 + 1);
        *end = q2 + 1;
        return index_json.substr(q1 + 1, q2 - q1 - 1);
    };
    size_t pos = index_json.find("\"tensors\"", index_json.find("\"gguf\""));
    if (pos == std::string::npos) return out;
    size_t stop = index_json.find('[', pos);  // the array's end: its matching ']'
    for (int depth = 0; stop < index_json.size(); stop++) {
        if (index_json[stop] == '[') depth++;
        if (index_json[stop] == ']' && --depth == 0) break;
    }
    while (pos < stop) {
        size_t after_name = 0, after_file = 0;
        const std::string name = string_after("name", pos, &after_name);
        if (name.empty() || after_name > stop) break;
        const std::string file = string_after("expected_f32", after_name, &after_file);
        if (file.empty() || after_file > stop) break;
        out[name] = file;
        pos = after_file;
    }
    return out;
}

TEST(QuantTestGguf, EveryTensorDequantizesToItsExpectedFile) {
    const std::string path = quants_file("quant-test.gguf");
    ROTOR_REQUIRE_TESTDATA(path);
    const std::vector<uint8_t> index_bytes = read_file_bytes(quants_file("index.json"));
    const std::string index(index_bytes.begin(), index_bytes.end());
    const auto expected = gguf_expected_files(index);
    const rotor::gguf::File f = rotor::gguf::File::open(path);
    ASSERT_EQ(f.tensors().size(), 26u);
    ASSERT_EQ(expected.size(), f.tensors().size());
    for (const auto& t : f.tensors()) {
        SCOPED_TRACE(std::string(t.name));
        const auto it = expected.find(std::string(t.name));
        ASSERT_NE(it, expected.end());
        const std::vector<float> want = read_f32_file(quants_file(it->second));
        ASSERT_EQ((uint64_t)want.size(), t.n_elements);
        std::vector<float> got(want.size());
        rotor::dequantize_row(t.type, t.data, got.data(), (int64_t)got.size());
        EXPECT_TRUE(same_bits(got, want, (int)rotor::format_info(t.type).block_elems));
    }
}

// ------------------------------------------------------------ the CLI


using rotor::test::run_cli;

std::string temp_path(const std::string& name) { return (fs::temp_directory_path() / name).string(); }

TEST(FormatsCli, DumpQ4KMatchesExpected) {
    if (!std::getenv("ROTOR_BIN")) GTEST_SKIP() << "ROTOR_BIN not set (run through ctest)";
    const std::string gguf = quants_file("quant-test.gguf");
    ROTOR_REQUIRE_TESTDATA(gguf);
    for (const char* tensor : {"q4_K", "iq2_xxs", "nvfp4"}) {
        SCOPED_TRACE(tensor);
        const std::string out_path = temp_path(std::string("rotor_formats_dump_") + tensor + ".f32");
        std::string out;
        ASSERT_EQ(run_cli("gguf dump " + gguf + " " + tensor + " --f32 " + out_path, &out), 0) << out;
        const std::string expected_name = testdata_name(*rotor::format_from_name(tensor)) + ".f32.bin";
        EXPECT_EQ(read_file_bytes(out_path), read_file_bytes(quants_file(expected_name)));
        fs::remove(out_path);
    }
}

TEST(FormatsCli, DumpOfUnsupportedTypeFailsClearly) {
    if (!std::getenv("ROTOR_BIN")) GTEST_SKIP() << "ROTOR_BIN not set (run through ctest)";
    ASSERT_FALSE(rotor::format_info(GgmlType::Q1_0).can_dequantize);
    const std::string path = temp_path("rotor_formats_q1_0.gguf");
    const std::string out_path = temp_path("rotor_formats_q1_0.f32");
    std::vector<uint8_t> block(rotor::row_bytes(GgmlType::Q1_0, 128), 0x5a);
    rotor::gguf::Writer w;
    w.set_string("general.architecture", "quant-test");
    w.add_tensor("bits", GgmlType::Q1_0, {128}, block.data());
    w.write(path);
    std::string out;
    const int rc = run_cli("gguf dump " + path + " bits --f32 " + out_path, &out);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("q1_0"), std::string::npos) << out;
    EXPECT_NE(out.find("cannot dequantize"), std::string::npos) << out;
    fs::remove(path);
    fs::remove(out_path);
}

}  // namespace
