// GGUF reader and writer: real files from testdata, round trips, and hostile inputs.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "testdata.h"

using rotor::test::run_cli;

namespace fs = std::filesystem;
using rotor::Error;
using rotor::GgmlType;
using namespace rotor::gguf;

namespace {

std::vector<std::string> testdata_ggufs() {
    std::vector<std::string> out;
    for (const char* dir : {"vocab", "stories260K", "quants"}) {
        const std::string d = rotor::test::testdata(dir);
        if (!fs::exists(d)) continue;
        for (const auto& e : fs::directory_iterator(d))
            if (e.path().extension() == ".gguf") out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A small file exercising every value type, nested arrays, and three tensors of different formats.
Writer small_writer() {
    Writer w;
    w.set_string("general.architecture", "llama");
    w.set_u8("t.u8", 200);
    w.set_i8("t.i8", -100);
    w.set_u16("t.u16", 60000);
    w.set_i16("t.i16", -30000);
    w.set_u32("t.u32", 4000000000u);
    w.set_i32("t.i32", -2000000000);
    w.set_u64("t.u64", 1ull << 60);
    w.set_i64("t.i64", -(1ll << 60));
    w.set_f32("t.f32", 1.5f);
    w.set_f64("t.f64", -2.25);
    w.set_bool("t.bool", true);
    w.set_string("t.str", "héllo ✓");
    w.set_array_i32("t.arr_i32", {1, -2, 3});
    w.set_array_f32("t.arr_f32", {0.5f, 1e30f});
    w.set_array_bool("t.arr_bool", {true, false, true});
    w.set_array_string("t.arr_str", {"a", "", "ü"});
    return w;
}

std::vector<uint8_t> small_file_bytes() {
    static std::vector<float> f32(8 * 3, 0.25f);
    static std::vector<uint8_t> q8(2 * 34, 0);  // two Q8_0 blocks (d = 0)
    static std::vector<uint16_t> f16(32, 0x3c00);
    Writer w = small_writer();
    w.add_tensor("a.weight", GgmlType::F32, {8, 3}, f32.data());
    w.add_tensor("b.weight", GgmlType::Q8_0, {64}, q8.data());
    w.add_tensor("c.weight", GgmlType::F16, {16, 2}, f16.data());
    return w.to_bytes();
}

File parse(const std::vector<uint8_t>& b, const char* name = "mem.gguf", OpenOptions o = {}) {
    return File::parse(b.data(), b.size(), name, o);
}

// Expect a rotor::Error whose message names the file and contains `what`.
void expect_error(const std::vector<uint8_t>& b, const std::string& what, OpenOptions o = {}) {
    try {
        parse(b, "bad.gguf", o);
        ADD_FAILURE() << "no error; expected: " << what;
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("bad.gguf"), std::string::npos) << msg;
        EXPECT_NE(msg.find(what), std::string::npos) << "message: " << msg << "\nexpected to contain: " << what;
    }
}

template <typename T>
void poke(std::vector<uint8_t>& b, size_t off, T v) {
    ASSERT_LE(off + sizeof(T), b.size());
    memcpy(b.data() + off, &v, sizeof(T));
}

// Byte offset of the first occurrence of a string in the file (keys, names).
size_t find_str(const std::vector<uint8_t>& b, const std::string& s) {
    const std::vector<uint8_t> needle(s.begin(), s.end());  // compare as bytes, not signed chars
    auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end());
    if (it == b.end()) throw std::runtime_error("marker not found: " + s);
    return (size_t)(it - b.begin());
}

void expect_same_value(const Value& a, const Value& b, const std::string& key) {
    ASSERT_EQ(a.type, b.type) << key;
    switch (a.type) {
        case ValueType::STRING: EXPECT_EQ(a.str, b.str) << key; break;
        case ValueType::F32:
        case ValueType::F64: EXPECT_EQ(memcmp(&a.num, &b.num, sizeof a.num), 0) << key; break;
        case ValueType::ARRAY:
            ASSERT_EQ(a.elem_type, b.elem_type) << key;
            ASSERT_EQ(a.count, b.count) << key;
            if (a.elem_type == ValueType::STRING) EXPECT_EQ(a.strs, b.strs) << key;
            else if (a.elem_type == ValueType::ARRAY)
                for (uint64_t k = 0; k < a.count; k++) expect_same_value(a.arrs[k], b.arrs[k], key);
            else EXPECT_EQ(memcmp(a.raw, b.raw, a.count * value_type_size(a.elem_type)), 0) << key;
            break;
        default: EXPECT_EQ(a.num.u, b.num.u) << key;
    }
}

Writer copy_of(const File& f) {
    Writer w(f.alignment());
    for (const auto& kv : f.kvs()) w.set_value(kv.key, kv.value);
    for (const auto& t : f.tensors())
        w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data);
    return w;
}

}  // namespace

// ------------------------------------------------------------ real files

class RealFile : public ::testing::TestWithParam<std::string> {};

TEST_P(RealFile, ParsesAndRoundTripsThroughWriter) {
    const std::string path = GetParam();
    File f = File::open(path);
    EXPECT_TRUE(f.version() == 2 || f.version() == 3);
    EXPECT_FALSE(f.architecture().empty());
    std::vector<uint8_t> again = copy_of(f).to_bytes();
    File g = parse(again);
    ASSERT_EQ(f.kvs().size(), g.kvs().size());
    for (size_t i = 0; i < f.kvs().size(); i++) {
        EXPECT_EQ(f.kvs()[i].key, g.kvs()[i].key);
        expect_same_value(f.kvs()[i].value, g.kvs()[i].value, std::string(f.kvs()[i].key));
    }
    ASSERT_EQ(f.tensors().size(), g.tensors().size());
    for (size_t i = 0; i < f.tensors().size(); i++) {
        const auto &a = f.tensors()[i], &b = g.tensors()[i];
        EXPECT_EQ(a.name, b.name);
        EXPECT_EQ(a.type, b.type);
        EXPECT_EQ(a.n_dims, b.n_dims);
        for (int d = 0; d < 4; d++) EXPECT_EQ(a.ne[d], b.ne[d]);
        ASSERT_EQ(a.n_bytes, b.n_bytes);
        EXPECT_EQ(memcmp(a.data, b.data, a.n_bytes), 0) << a.name;
    }
    // Files written by ggml's writers come back byte for byte (same order, padding and types), except
    // that some writers leave a tensor-less file unpadded; ours always pads the header to the alignment.
    std::vector<uint8_t> orig = read_bytes(path);
    if (f.tensors().empty() && again.size() > orig.size() && again.size() - orig.size() < f.alignment())
        orig.resize(again.size(), 0);
    if (f.version() == 3) {
        ASSERT_EQ(again.size(), orig.size()) << path;
        const auto diff = std::mismatch(again.begin(), again.end(), orig.begin());
        EXPECT_TRUE(diff.first == again.end()) << "rewritten file differs at byte " << (diff.first - again.begin());
    }
}

INSTANTIATE_TEST_SUITE_P(Testdata, RealFile, ::testing::ValuesIn(testdata_ggufs()),
                         [](const auto& info) {
                             std::string n = fs::path(info.param).stem().string();
                             for (char& c : n)
                                 if (!isalnum((unsigned char)c)) c = '_';
                             return n;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RealFile);

TEST(GgufReader, Stories260KMetadata) {
    const std::string path = rotor::test::testdata("stories260K/stories260K.gguf");
    ROTOR_REQUIRE_TESTDATA(path);
    File f = File::open(path);
    EXPECT_EQ(f.architecture(), "llama");
    EXPECT_EQ(f.tensors().size(), 48u);
    EXPECT_EQ(*f.get_uint("llama.context_length"), 128u);
    EXPECT_EQ(*f.get_uint("llama.embedding_length"), 64u);
    EXPECT_EQ(*f.get_uint("llama.attention.head_count_kv"), 4u);
    EXPECT_FLOAT_EQ((float)*f.get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
    const Value* toks = f.get_array("tokenizer.ggml.tokens");
    ASSERT_NE(toks, nullptr);
    EXPECT_EQ(toks->count, 512u);
    EXPECT_EQ(toks->strs[1], "<s>");
    const TensorInfo* t = f.tensor("blk.0.ffn_down.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->ne[0], 172);
    EXPECT_EQ(t->ne[1], 64);
    EXPECT_EQ(t->n_bytes, 172u * 64 * 4);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 32, 0u) << "tensor data must be aligned in the mapping";
    EXPECT_THROW(f.get_string("llama.context_length"), Error);  // wrong type is an error, not a default
}

// ------------------------------------------------------------ writer

TEST(GgufWriter, EveryValueTypeRoundTrips) {
    File f = parse(small_file_bytes());
    EXPECT_EQ(*f.get_uint("t.u8"), 200u);
    EXPECT_EQ(*f.get_int("t.i8"), -100);
    EXPECT_EQ(*f.get_uint("t.u16"), 60000u);
    EXPECT_EQ(*f.get_int("t.i16"), -30000);
    EXPECT_EQ(*f.get_uint("t.u32"), 4000000000u);
    EXPECT_EQ(*f.get_int("t.i32"), -2000000000);
    EXPECT_EQ(*f.get_uint("t.u64"), 1ull << 60);
    EXPECT_EQ(*f.get_int("t.i64"), -(1ll << 60));
    EXPECT_EQ(*f.get_float("t.f32"), 1.5);
    EXPECT_EQ(*f.get_float("t.f64"), -2.25);
    EXPECT_EQ(*f.get_bool("t.bool"), true);
    EXPECT_EQ(*f.get_string("t.str"), "héllo ✓");
    const Value* a = f.get_array("t.arr_i32");
    ASSERT_EQ(a->count, 3u);
    EXPECT_EQ(a->array_int(1), -2);
    EXPECT_EQ(f.get_array("t.arr_f32")->array_float(1), (double)1e30f);
    EXPECT_EQ(f.get_array("t.arr_bool")->array_int(2), 1);
    EXPECT_EQ(f.get_array("t.arr_str")->strs[2], "ü");
    EXPECT_THROW(f.get_uint("t.i8"), Error);  // negative value asked as unsigned
    EXPECT_FALSE(f.get_uint("missing").has_value());
    ASSERT_EQ(f.tensors().size(), 3u);
    EXPECT_EQ(f.tensors()[1].offset % 32, 0u);
    EXPECT_EQ(f.tensor("c.weight")->ne[1], 2);
    float x;
    memcpy(&x, f.tensor("a.weight")->data + 4 * 23, 4);
    EXPECT_EQ(x, 0.25f);
}

TEST(GgufWriter, NestedArraysAndCustomAlignment) {
    File src = parse(small_file_bytes());
    // Build a nested array value [[1,-2,3], [1,-2,3]] from a parsed array, write with alignment 64.
    Value nested;
    nested.type = ValueType::ARRAY;
    nested.elem_type = ValueType::ARRAY;
    nested.count = 2;
    nested.arrs = {*src.get_array("t.arr_i32"), *src.get_array("t.arr_i32")};
    Writer w(64);
    w.set_value("n.nested", nested);
    static const float data[64] = {};
    w.add_tensor("x", GgmlType::F32, {5}, data);
    w.add_tensor("y", GgmlType::F32, {3}, data);
    File f = parse(w.to_bytes());
    EXPECT_EQ(f.alignment(), 64u);
    EXPECT_EQ(f.data_offset() % 64, 0u);
    EXPECT_EQ(f.tensor("y")->offset, 64u);
    const Value* n = f.get_array("n.nested");
    ASSERT_EQ(n->elem_type, ValueType::ARRAY);
    ASSERT_EQ(n->arrs.size(), 2u);
    EXPECT_EQ(n->arrs[1].array_int(2), 3);
}

TEST(GgufWriter, RejectsBadInput) {
    Writer w;
    static const float data[32] = {};
    EXPECT_THROW(w.add_tensor("q", GgmlType::Q4_0, {33}, data), Error);  // not a multiple of 32
    EXPECT_THROW(w.add_tensor(std::string(64, 'x'), GgmlType::F32, {1}, data), Error);
    w.add_tensor("t", GgmlType::F32, {1}, data);
    EXPECT_THROW(w.add_tensor("t", GgmlType::F32, {1}, data), Error);
    EXPECT_THROW(w.set_string("k", std::string("\xff\xfe")), Error);
    EXPECT_THROW(Writer(3), Error);
    EXPECT_THROW(w.write("/nonexistent-dir/x.gguf"), Error);
}

// ------------------------------------------------------------ hostile files

TEST(GgufHostile, EveryTruncationIsAClearError) {
    const std::vector<uint8_t> full = small_file_bytes();
    ASSERT_NO_THROW(parse(full));
    for (size_t n = 0; n < full.size(); n++) {
        std::vector<uint8_t> cut(full.begin(), full.begin() + n);
        try {
            parse(cut, "cut.gguf");
            ADD_FAILURE() << "truncated to " << n << " bytes parsed without error";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("cut.gguf"), std::string::npos);
        }
    }
}

TEST(GgufHostile, TruncatedRealFile) {
    const std::string path = rotor::test::testdata("stories260K/stories260K.gguf");
    ROTOR_REQUIRE_TESTDATA(path);
    const std::vector<uint8_t> full = read_bytes(path);
    File whole = parse(full);
    for (size_t n = 0; n < full.size(); n += (n < whole.data_offset() + 64 ? 1 : 4093)) {
        std::vector<uint8_t> cut(full.begin(), full.begin() + n);
        EXPECT_THROW(parse(cut), Error) << "cut at " << n;
    }
    // Metadata-only use (the planner): a file cut inside the data section still opens and says so.
    const size_t keep = whole.data_offset() + whole.tensors()[0].n_bytes + 300;  // first tensor complete
    std::vector<uint8_t> cut(full.begin(), full.begin() + (long)keep);
    OpenOptions lenient;
    lenient.allow_missing_data = true;
    File f = parse(cut, "cut.gguf", lenient);
    EXPECT_FALSE(f.has_all_data());
    EXPECT_EQ(f.tensor("output.weight")->data, nullptr);
    EXPECT_NE(f.tensors()[0].data, nullptr);
}

TEST(GgufHostile, HeaderProblems) {
    std::vector<uint8_t> b = small_file_bytes();
    {
        auto x = b;
        x[0] = 'X';
        expect_error(x, "bad magic");
    }
    {
        auto x = b;
        poke<uint32_t>(x, 4, 1);
        expect_error(x, "version 1 is not supported");
    }
    {
        auto x = b;
        poke<uint32_t>(x, 4, 7);
        expect_error(x, "unsupported GGUF version 7");
    }
    {
        auto x = b;
        poke<uint32_t>(x, 4, 3u << 24);
        expect_error(x, "big-endian");
    }
    {
        auto x = b;
        poke<uint64_t>(x, 8, 1ull << 62);  // tensor count
        expect_error(x, "tensor count");
    }
    {
        auto x = b;
        poke<uint64_t>(x, 16, ~0ull);  // kv count
        expect_error(x, "metadata count");
    }
    expect_error(std::vector<uint8_t>{'G', 'G'}, "too short");
}

TEST(GgufHostile, MetadataProblems) {
    const std::vector<uint8_t> b = small_file_bytes();
    {  // key length that runs past the end
        auto x = b;
        poke<uint64_t>(x, 24, 1ull << 40);
        expect_error(x, "claims length");
    }
    {  // unknown value type: the type field follows the key "t.u8"
        auto x = b;
        poke<uint32_t>(x, find_str(x, "t.u8") + 4, 99);
        expect_error(x, "unknown value type 99");
    }
    {  // bool that is neither 0 nor 1
        auto x = b;
        x[find_str(x, "t.bool") + 6 + 4] = 7;
        expect_error(x, "bool");
    }
    {  // array count that cannot fit
        auto x = b;
        poke<uint64_t>(x, find_str(x, "t.arr_i32") + 9 + 4 + 4, 1ull << 61);
        expect_error(x, "claims");
    }
    {  // unknown array element type
        auto x = b;
        poke<uint32_t>(x, find_str(x, "t.arr_i32") + 9 + 4, 42);
        expect_error(x, "unknown array element type 42");
    }
    {  // invalid UTF-8 in a string value
        auto x = b;
        x[find_str(x, "h\xc3\xa9llo") + 1] = (char)0xff;
        expect_error(x, "not valid UTF-8");
    }
    {  // duplicate keys: write "dupA" and "dupB", then rename the second to "dupA"
        Writer w;
        w.set_u8("dupA", 1);
        w.set_u8("dupB", 2);
        auto y = w.to_bytes();
        memcpy(y.data() + find_str(y, "dupB"), "dupA", 4);
        expect_error(y, "duplicate metadata key 'dupA'");
    }
    {  // alignment of the wrong type / not a power of two
        Writer w;
        w.set_u64("general.alignment", 64);
        expect_error(w.to_bytes(), "general.alignment must be u32");
        Writer v;
        v.set_u32("general.alignment", 48);
        expect_error(v.to_bytes(), "not a power of two");
    }
    {  // arrays nested too deep
        Value leaf;
        leaf.type = ValueType::ARRAY;
        leaf.elem_type = ValueType::I32;
        Value v = leaf;
        for (int d = 0; d < kMaxArrayDepth + 1; d++) {
            Value outer;
            outer.type = ValueType::ARRAY;
            outer.elem_type = ValueType::ARRAY;
            outer.count = 1;
            outer.arrs = {v};
            v = outer;
        }
        Writer w;
        w.set_value("deep", v);
        expect_error(w.to_bytes(), "nested deeper");
    }
}

TEST(GgufHostile, TensorInfoProblems) {
    const std::vector<uint8_t> b = small_file_bytes();
    const size_t a = find_str(b, "a.weight");  // name, then n_dims u32, ne i64 x2, type u32, offset u64
    const size_t ndims = a + 8, ne0 = ndims + 4, ne1 = ne0 + 8, type = ne1 + 8, off = type + 4;
    {
        auto x = b;
        poke<uint32_t>(x, ndims, 5);
        expect_error(x, "5 dimensions");
    }
    {
        auto x = b;
        poke<int64_t>(x, ne1, -3);
        expect_error(x, "negative dimension");
    }
    {
        auto x = b;
        poke<int64_t>(x, ne0, 1ll << 40);
        poke<int64_t>(x, ne1, 1ll << 40);
        expect_error(x, "overflows");
    }
    {
        auto x = b;
        poke<uint32_t>(x, type, 4);  // Q4_2, removed from ggml
        expect_error(x, "unknown type id 4");
    }
    {
        auto x = b;
        poke<uint32_t>(x, type, 1000);
        expect_error(x, "unknown type id 1000");
    }
    {
        auto x = b;
        poke<uint32_t>(x, type, (uint32_t)GgmlType::Q4_0);  // ne0 = 8 is not a multiple of 32
        expect_error(x, "not a multiple");
    }
    {
        auto x = b;
        poke<uint64_t>(x, off, 32);
        expect_error(x, "has data offset 32, expected 0");
    }
    {
        auto x = b;
        poke<uint64_t>(x, find_str(x, "b.weight") + 8 + 4 + 8 + 4, ~0ull - 5);
        expect_error(x, "data offset");
    }
    {  // duplicate tensor names
        auto x = b;
        memcpy(x.data() + find_str(x, "c.weight"), "a", 1);
        expect_error(x, "duplicate tensor name 'a.weight'");
    }
    {  // tensor bytes beyond the end of the file
        auto x = b;
        poke<int64_t>(x, find_str(x, "c.weight") + 8 + 4 + 8, 4000);
        expect_error(x, "truncated");
    }
}

TEST(GgufHostile, RandomMutationsNeverCrash) {
    const std::vector<uint8_t> base = small_file_bytes();
    std::mt19937_64 rng(1234);
    int ok = 0, rejected = 0;
    for (int iter = 0; iter < 3000; iter++) {
        std::vector<uint8_t> x = base;
        const int edits = 1 + (int)(rng() % 4);
        for (int e = 0; e < edits; e++) {
            const size_t pos = rng() % x.size();
            switch (rng() % 3) {
                case 0: x[pos] = (uint8_t)rng(); break;
                case 1: x[pos] ^= (uint8_t)(1u << (rng() % 8)); break;
                default: memset(x.data() + pos, 0xff, std::min<size_t>(8, x.size() - pos));
            }
        }
        try {
            File f = parse(x);
            for (const auto& kv : f.kvs()) (void)kv.value.count;
            ok++;
        } catch (const Error&) {
            rejected++;
        }
    }
    EXPECT_EQ(ok + rejected, 3000);
    EXPECT_GT(rejected, 0);
}

TEST(GgufFiles, OpenErrorsNameTheFile) {
    try {
        File::open("/nonexistent/model.gguf");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
    }
    EXPECT_THROW(File::open("/"), Error);  // a directory
}

// ------------------------------------------------------------ the CLI

TEST(GgufCli, InfoOnEveryTestdataFile) {
    if (!std::getenv("ROTOR_BIN")) GTEST_SKIP() << "ROTOR_BIN not set (run through ctest)";
    const auto files = testdata_ggufs();
    if (files.empty()) GTEST_SKIP() << "no testdata at " << rotor::test::testdata_dir();
    for (const auto& path : files) {
        std::string out;
        EXPECT_EQ(run_cli("info " + path, &out), 0) << out;
        EXPECT_NE(out.find("architecture: "), std::string::npos) << path;
        EXPECT_NE(out.find("tensors: "), std::string::npos) << path;
        EXPECT_NE(out.find("vocabulary"), std::string::npos) << path;
    }
    std::string out;
    run_cli("info " + rotor::test::testdata("stories260K/stories260K.gguf"), &out);
    EXPECT_NE(out.find("llama.embedding_length"), std::string::npos);
    EXPECT_NE(out.find("blk.4.ffn_norm.weight"), std::string::npos);
    EXPECT_NE(out.find("tokens   512"), std::string::npos);
    EXPECT_NE(out.find("bos      1 \"<s>\""), std::string::npos);
}

TEST(GgufCli, InfoOnCorruptFileFailsClearly) {
    if (!std::getenv("ROTOR_BIN")) GTEST_SKIP() << "ROTOR_BIN not set (run through ctest)";
    const std::string path = (fs::temp_directory_path() / "rotor_corrupt_test.gguf").string();
    auto b = small_file_bytes();
    b.resize(b.size() / 2);
    std::ofstream(path, std::ios::binary).write((const char*)b.data(), (std::streamsize)b.size());
    std::string out;
    EXPECT_EQ(run_cli("info " + path, &out), 1);
    EXPECT_NE(out.find("rotor_corrupt_test.gguf"), std::string::npos) << out;
    EXPECT_EQ(run_cli("info", &out), 2);  // usage
    EXPECT_EQ(run_cli("gguf dump " + path + " a.weight --f32 /dev/null", &out), 1);
    fs::remove(path);
}
