// The formats table (ids, names, block sizes) and the IQ lookup tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "common/error.h"
#include "formats/blocks.h"
#include "formats/formats.h"
#include "formats/iq_tables.h"

using rotor::GgmlType;

namespace {

struct Layout {
    GgmlType type;
    size_t block_elems, struct_bytes;
};

// Every type with a layout in blocks.h; F16/BF16/F32/F64/I* are scalars.
const Layout kLayouts[] = {
    {GgmlType::F32, 1, 4},
    {GgmlType::F16, 1, 2},
    {GgmlType::BF16, 1, 2},
    {GgmlType::F64, 1, 8},
    {GgmlType::I8, 1, 1},
    {GgmlType::I16, 1, 2},
    {GgmlType::I32, 1, 4},
    {GgmlType::I64, 1, 8},
    {GgmlType::Q4_0, rotor::QK4_0, sizeof(rotor::block_q4_0)},
    {GgmlType::Q4_1, rotor::QK4_1, sizeof(rotor::block_q4_1)},
    {GgmlType::Q5_0, rotor::QK5_0, sizeof(rotor::block_q5_0)},
    {GgmlType::Q5_1, rotor::QK5_1, sizeof(rotor::block_q5_1)},
    {GgmlType::Q8_0, rotor::QK8_0, sizeof(rotor::block_q8_0)},
    {GgmlType::Q8_1, rotor::QK8_1, sizeof(rotor::block_q8_1)},
    {GgmlType::Q2_K, rotor::QK_K, sizeof(rotor::block_q2_K)},
    {GgmlType::Q3_K, rotor::QK_K, sizeof(rotor::block_q3_K)},
    {GgmlType::Q4_K, rotor::QK_K, sizeof(rotor::block_q4_K)},
    {GgmlType::Q5_K, rotor::QK_K, sizeof(rotor::block_q5_K)},
    {GgmlType::Q6_K, rotor::QK_K, sizeof(rotor::block_q6_K)},
    {GgmlType::Q8_K, rotor::QK_K, sizeof(rotor::block_q8_K)},
    {GgmlType::IQ2_XXS, rotor::QK_K, sizeof(rotor::block_iq2_xxs)},
    {GgmlType::IQ2_XS, rotor::QK_K, sizeof(rotor::block_iq2_xs)},
    {GgmlType::IQ2_S, rotor::QK_K, sizeof(rotor::block_iq2_s)},
    {GgmlType::IQ3_XXS, rotor::QK_K, sizeof(rotor::block_iq3_xxs)},
    {GgmlType::IQ3_S, rotor::QK_K, sizeof(rotor::block_iq3_s)},
    {GgmlType::IQ1_S, rotor::QK_K, sizeof(rotor::block_iq1_s)},
    {GgmlType::IQ1_M, rotor::QK_K, sizeof(rotor::block_iq1_m)},
    {GgmlType::IQ4_NL, rotor::QK4_NL, sizeof(rotor::block_iq4_nl)},
    {GgmlType::IQ4_XS, rotor::QK_K, sizeof(rotor::block_iq4_xs)},
    {GgmlType::TQ1_0, rotor::QK_K, sizeof(rotor::block_tq1_0)},
    {GgmlType::TQ2_0, rotor::QK_K, sizeof(rotor::block_tq2_0)},
    {GgmlType::MXFP4, rotor::QK_MXFP4, sizeof(rotor::block_mxfp4)},
    {GgmlType::NVFP4, rotor::QK_NVFP4, sizeof(rotor::block_nvfp4)},
};

TEST(FormatsTable, BlockSizesMatchTheStructs) {
    for (const Layout& l : kLayouts) {
        const rotor::FormatInfo* f = rotor::format_info(static_cast<uint32_t>(l.type));
        ASSERT_NE(f, nullptr) << static_cast<uint32_t>(l.type);
        EXPECT_EQ(f->type, l.type);
        EXPECT_EQ(f->block_elems, l.block_elems) << f->name;
        EXPECT_EQ(f->block_bytes, l.struct_bytes) << f->name;
    }
    // Q1_0 / Q2_0 have no struct in blocks.h; ggml: 128 and 64 elements in 18 bytes.
    EXPECT_EQ(rotor::format_info(GgmlType::Q1_0).block_bytes, 18u);
    EXPECT_EQ(rotor::format_info(GgmlType::Q2_0).block_bytes, 18u);
}

TEST(FormatsTable, IdsNamesAndLookups) {
    std::set<std::string> names;
    int known = 0;
    for (uint32_t id = 0; id < rotor::kGgmlTypeCount + 10; id++) {
        const rotor::FormatInfo* f = rotor::format_info(id);
        const bool removed = id == 4 || id == 5 || (id >= 31 && id <= 33) || (id >= 36 && id <= 38);
        if (id >= rotor::kGgmlTypeCount || removed) {
            EXPECT_EQ(f, nullptr) << id;
            continue;
        }
        ASSERT_NE(f, nullptr) << id;
        known++;
        EXPECT_EQ(static_cast<uint32_t>(f->type), id);
        EXPECT_TRUE(names.insert(std::string(f->name)).second) << f->name;
        EXPECT_EQ(rotor::format_from_name(f->name), f->type);
        std::string upper(f->name);
        for (char& c : upper) c = (char)std::toupper((unsigned char)c);
        EXPECT_EQ(rotor::format_from_name(upper), f->type) << upper;  // case-insensitive
    }
    EXPECT_EQ(known, 35);
    EXPECT_FALSE(rotor::format_from_name("q4_2").has_value());
    EXPECT_FALSE(rotor::format_from_name("").has_value());
    EXPECT_EQ(rotor::format_info(GgmlType::Q4_K).name, "q4_K");
    EXPECT_EQ(rotor::format_info(GgmlType::IQ2_XXS).name, "iq2_xxs");
}

TEST(FormatsTable, ConverterCoverage) {
    for (uint32_t id = 0; id < rotor::kGgmlTypeCount; id++) {
        const rotor::FormatInfo* f = rotor::format_info(id);
        if (!f) continue;
        const bool unsupported = f->type == GgmlType::Q1_0 || f->type == GgmlType::Q2_0;
        EXPECT_EQ(f->can_dequantize, !unsupported) << f->name;
    }
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                       GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::Q2_K, GgmlType::Q3_K,
                       GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS,
                       GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::MXFP4, GgmlType::NVFP4})
        EXPECT_TRUE(rotor::format_info(t).can_quantize) << rotor::format_info(t).name;
    // The IQ2/IQ3/IQ1 quantizers need ggml's grid search and an importance matrix: not provided.
    for (GgmlType t : {GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS, GgmlType::IQ3_S,
                       GgmlType::IQ1_S, GgmlType::IQ1_M, GgmlType::Q1_0, GgmlType::Q2_0, GgmlType::I32})
        EXPECT_FALSE(rotor::format_info(t).can_quantize) << rotor::format_info(t).name;
}

TEST(FormatsTable, ConvertersRejectBadInput) {
    float out[256] = {};
    uint8_t in[512] = {};
    EXPECT_THROW(rotor::dequantize_row(GgmlType::Q1_0, in, out, 128), rotor::Error);
    EXPECT_THROW(rotor::dequantize_row(GgmlType::Q4_0, in, out, 31), rotor::Error);  // not whole blocks
    EXPECT_THROW(rotor::quantize_row(GgmlType::Q4_K, out, in, 128), rotor::Error);
    EXPECT_THROW(rotor::quantize_row(GgmlType::IQ2_XXS, out, in, 256), rotor::Error);
    EXPECT_NO_THROW(rotor::dequantize_row(GgmlType::Q4_0, in, out, 0));
}

TEST(FormatsTable, PlainIntegerAndDoubleTensors) {
    const int8_t i8[3] = {-128, 0, 127};
    const int16_t i16[2] = {-32768, 12345};
    const int32_t i32[2] = {16777217, -7};          // 2^24 + 1 rounds to even
    const int64_t i64[2] = {(int64_t)1 << 62, -1};
    const double f64[4] = {0.1, -1e300, 1e-50, -0.0};
    float out[4];
    rotor::dequantize_row(GgmlType::I8, i8, out, 3);
    EXPECT_EQ(out[0], -128.0f);
    EXPECT_EQ(out[2], 127.0f);
    rotor::dequantize_row(GgmlType::I16, i16, out, 2);
    EXPECT_EQ(out[0], -32768.0f);
    EXPECT_EQ(out[1], 12345.0f);
    rotor::dequantize_row(GgmlType::I32, i32, out, 2);
    EXPECT_EQ(out[0], 16777216.0f);
    EXPECT_EQ(out[1], -7.0f);
    rotor::dequantize_row(GgmlType::I64, i64, out, 2);
    EXPECT_EQ(out[0], 4611686018427387904.0f);
    EXPECT_EQ(out[1], -1.0f);
    rotor::dequantize_row(GgmlType::F64, f64, out, 4);
    EXPECT_EQ(out[0], 0.1f);
    EXPECT_EQ(out[1], -INFINITY);
    EXPECT_EQ(out[2], 0.0f);
    EXPECT_TRUE(std::signbit(out[3]));
}

// ------------------------------------------------------------ IQ tables (the real check is that
// the IQ test vectors decode bit-exactly; this catches a table regenerated from a broken source)

template <typename T>
bool bytes_in(T entry, int nbytes, std::initializer_list<uint8_t> allowed) {
    for (int j = 0; j < nbytes; j++) {
        const uint8_t b = (uint8_t)(entry >> (8 * j));
        if (std::find(allowed.begin(), allowed.end(), b) == allowed.end()) return false;
    }
    return true;
}

TEST(IqTables, GridEntriesUseOnlyAllowedMagnitudes) {
    for (int i = 0; i < 256; i++) EXPECT_TRUE(bytes_in(rotor::kIq2xxsGrid[i], 8, {8, 25, 43})) << i;
    for (int i = 0; i < 512; i++) EXPECT_TRUE(bytes_in(rotor::kIq2xsGrid[i], 8, {8, 25, 43})) << i;
    for (int i = 0; i < 1024; i++) EXPECT_TRUE(bytes_in(rotor::kIq2sGrid[i], 8, {8, 25, 43})) << i;
    for (int i = 0; i < 256; i++) EXPECT_TRUE(bytes_in(rotor::kIq3xxsGrid[i], 4, {4, 12, 20, 28, 36, 44, 52, 62})) << i;
    for (int i = 0; i < 512; i++) EXPECT_TRUE(bytes_in(rotor::kIq3sGrid[i], 4, {1, 3, 5, 7, 9, 11, 13, 15})) << i;
    for (int i = 0; i < 2048; i++) EXPECT_TRUE(bytes_in(rotor::kIq1sGrid[i], 8, {0xff, 0x00, 0x01})) << i;
    // entries are distinct
    EXPECT_EQ(std::set<uint64_t>(rotor::kIq2sGrid, rotor::kIq2sGrid + 1024).size(), 1024u);
    EXPECT_EQ(std::set<uint64_t>(rotor::kIq1sGrid, rotor::kIq1sGrid + 2048).size(), 2048u);
    EXPECT_EQ(std::set<uint32_t>(rotor::kIq3sGrid, rotor::kIq3sGrid + 512).size(), 512u);
}

TEST(IqTables, SignsMasksAndValues) {
    for (int j = 0; j < 8; j++) EXPECT_EQ(rotor::kKmaskIq2xs[j], 1 << j);
    for (int i = 0; i < 128; i++) {
        const int parity = __builtin_popcount((unsigned)i) & 1;
        EXPECT_EQ(rotor::kKsignsIq2xs[i], i | (parity << 7)) << i;
    }
    for (int i = 1; i < 16; i++) EXPECT_LT(rotor::kIq4nlValues[i - 1], rotor::kIq4nlValues[i]);
    EXPECT_EQ(rotor::kIq4nlValues[0], -127);
    EXPECT_EQ(rotor::kIq4nlValues[15], 113);
    const int8_t fp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    for (int i = 0; i < 16; i++) EXPECT_EQ(rotor::kMxfp4Values[i], fp4[i]);
    EXPECT_EQ(rotor::kIq1sDelta, 0.125f);
    EXPECT_EQ(rotor::kIq1mDelta, 0.125f);
}

}  // namespace
