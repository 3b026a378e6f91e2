// Quantizers without byte vectors (K-quants, IQ4, Q8_1, Q8_K, NVFP4) and properties of all of them:
// reconstruction error on Gaussian data, requantization, and edge inputs.
//
// Every quantizer here was also compared, outside this repository, with ggml's C reference
// (quantize_row_*_ref, quantize_iq4_nl/xs without imatrix; built with -ffp-contract=off) on 1.2M
// values of nine distributions (Gaussian, 1e-19..1e4 block scales, ties, constant and zero groups,
// outliers): identical bytes for every block. The golden digests below keep it that way.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/half.h"
#include "formats/blocks.h"
#include "formats/formats.h"
#include "formats_test_util.h"

using rotor::GgmlType;
using namespace rotor::test;

namespace {

constexpr size_t kN = 256 * 256;  // 256 super-blocks

std::string type_param_name(const ::testing::TestParamInfo<GgmlType>& i) { return testdata_name(i.param); }

// ------------------------------------------------------------ reconstruction error

// Relative RMS error of dequant(quant(x)) for x ~ N(0, sigma^2), sigma = 1, 1e-3 and 100. `measured`
// is this implementation's value at sigma 1 (the worst of the three where it differs: small sigma
// makes the K-quants' fp16 super-block scales subnormal); `bound` is about 10% above the worst, far
// below what a broken quantizer (wrong sub-block scale, a lost bit plane, a bad search) gives.
struct ErrorBound {
    GgmlType type;
    double measured, bound;
};

const ErrorBound kErrorBounds[] = {
    {GgmlType::F16, 0.00021, 0.00023},   {GgmlType::BF16, 0.00167, 0.0019},
    {GgmlType::Q4_0, 0.0857, 0.094},     {GgmlType::Q4_1, 0.0781, 0.086},
    {GgmlType::Q5_0, 0.0426, 0.047},     {GgmlType::Q5_1, 0.0378, 0.042},
    {GgmlType::Q8_0, 0.00538, 0.0059},   {GgmlType::Q8_1, 0.00538, 0.0059},
    {GgmlType::Q8_K, 0.00694, 0.0076},   {GgmlType::Q2_K, 0.2958, 0.325},
    {GgmlType::Q3_K, 0.1513, 0.166},     {GgmlType::Q4_K, 0.0715, 0.079},
    {GgmlType::Q5_K, 0.0373, 0.041},     {GgmlType::Q6_K, 0.0206, 0.0227},  // 0.0177 at sigma 1
    {GgmlType::IQ4_NL, 0.0765, 0.084},   {GgmlType::IQ4_XS, 0.0814, 0.090},  // 0.0765 at sigma 1
    {GgmlType::MXFP4, 0.1196, 0.131},    {GgmlType::NVFP4, 0.0959, 0.105},
};

std::string bound_name(const ::testing::TestParamInfo<ErrorBound>& info) { return testdata_name(info.param.type); }

class QuantizeError : public ::testing::TestWithParam<ErrorBound> {};

TEST_P(QuantizeError, GaussianRelativeRmse) {
    const ErrorBound& b = GetParam();
    for (float sigma : {1.0f, 1e-3f, 100.0f}) {
        // NVFP4 blocks carry no tensor scale, and the smallest UE4M3 scale (2^-9) is far above what
        // data with sigma 1e-3 needs: it quantizes to zero. Real NVFP4 models are scaled to fit.
        if (b.type == GgmlType::NVFP4 && sigma < 0.01f) continue;
        const std::vector<float> x = gaussian(sigma == 1.0f ? kN : kN / 4, sigma == 1.0f ? 1 : 2, sigma);
        const double err = rel_rmse(x, dequantize(b.type, quantize(b.type, x), x.size()));
        EXPECT_LT(err, b.bound) << "sigma " << sigma;
        EXPECT_GT(err, b.measured * 0.5) << "sigma " << sigma << ": suspiciously exact";
    }
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantizeError, ::testing::ValuesIn(kErrorBounds), bound_name);

// ------------------------------------------------------------ golden digests

// FNV-1a digests of the bytes ggml's C reference quantizers (quantize_row_*_ref; quantize_iq4_nl /
// quantize_iq4_xs with no imatrix) write for golden_input(), computed outside this repository by
// linking ggml's ggml-quants.c (ggml-org/ggml d99724f, built with -O2 -ffp-contract=off). They
// pin bit-exactness with ggml for the formats that have no test vectors.
std::vector<float> golden_input() {
    std::vector<float> x = irwin_hall(64 * 256, 11);
    for (int j = 0; j < 256; j++) x[j] = 0.0f;         // an all-zero super-block
    for (int j = 256; j < 512; j++) x[j] = 0.75f;      // a constant one
    x[600] = 40.0f;                                    // an outlier
    x[800] = 5.0f;                                     // a tie for the largest magnitude
    x[801] = -5.0f;
    for (int j = 1024; j < 1280; j++) x[j] *= 1e-4f;   // small values (subnormal fp16 scales)
    for (int j = 1280; j < 1536; j++) x[j] = x[j] * 0.5f + 1.0f;  // mostly positive (the mins)
    return x;
}

struct Golden {
    GgmlType type;
    uint64_t digest;
};

const Golden kGolden[] = {
    {GgmlType::Q2_K, 0x6febc6a975592c41ull},   {GgmlType::Q3_K, 0x3d3433c4ead508cfull},
    {GgmlType::Q4_K, 0x66545762237c521cull},   {GgmlType::Q5_K, 0xd10bf1c248fc4648ull},
    {GgmlType::Q6_K, 0x82f77a79b66ea4b8ull},   {GgmlType::Q8_K, 0x4d6463f5c33e0447ull},
    {GgmlType::Q8_1, 0x17023cc56be2c911ull},   {GgmlType::NVFP4, 0xf9c795ac12d39607ull},
    {GgmlType::IQ4_NL, 0x3d1660b0046691a3ull}, {GgmlType::IQ4_XS, 0xddae4f1d3eee1d73ull},
};

class GoldenDigest : public ::testing::TestWithParam<Golden> {};

TEST_P(GoldenDigest, MatchesGgmlReference) {
    const Golden& g = GetParam();
    EXPECT_EQ(fnv1a(quantize(g.type, golden_input())), g.digest);
}

INSTANTIATE_TEST_SUITE_P(Formats, GoldenDigest, ::testing::ValuesIn(kGolden),
                         [](const ::testing::TestParamInfo<Golden>& i) { return testdata_name(i.param.type); });

// ------------------------------------------------------------ requantization

// Closed-form formats reproduce their own output: the decoded block has the same extremes, so the
// same scale, and every value sits on a code. quant(dequant(quant(x))) == quant(x) byte for byte.
class Idempotent : public ::testing::TestWithParam<GgmlType> {};

TEST_P(Idempotent, RequantizingDecodedDataGivesTheSameBytes) {
    const GgmlType t = GetParam();
    const std::vector<float> x = gaussian(kN, 3);
    const std::vector<uint8_t> q1 = quantize(t, x);
    const std::vector<uint8_t> q2 = quantize(t, dequantize(t, q1, x.size()));
    EXPECT_TRUE(same_bytes(q2, q1, rotor::format_info(t).block_bytes));
}

INSTANTIATE_TEST_SUITE_P(Formats, Idempotent,
                         ::testing::Values(GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                           GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::TQ1_0,
                                           GgmlType::TQ2_0, GgmlType::MXFP4, GgmlType::NVFP4),
                         type_param_name);

// The search-based quantizers are not idempotent, by design: their candidate scales are fixed
// fractions of the block's range (e.g. (nmax + 0.1*k)/max), which the grid of the decoded data
// need not be among, their weights (x^2, |x|, sigma + |x|) change with the data, Q3_K's greedy
// code moves depend on the start, and the sub-block scales are requantized to 4..8 bits under a
// new fp16 super-block scale. Measured with seed 3: identical blocks Q2_K 254/256, Q3_K 154/256,
// Q4_K 256/256, Q5_K 242/256, Q6_K 201/256 (the others differ only in the codes of sub-blocks
// whose scale rounded to 0), IQ4_NL 2037/2048, IQ4_XS 244/256. What must hold is that
// requantizing loses almost nothing: the second decode stays close to the first and hardly
// farther from the original data.
class Stable : public ::testing::TestWithParam<GgmlType> {};

TEST_P(Stable, RequantizingDecodedDataChangesLittle) {
    const GgmlType t = GetParam();
    const std::vector<float> x = gaussian(kN, 3);
    const std::vector<float> y1 = dequantize(t, quantize(t, x), x.size());
    const std::vector<float> y2 = dequantize(t, quantize(t, y1), x.size());
    const double err1 = rel_rmse(x, y1), err2 = rel_rmse(x, y2), drift = rel_rmse(y1, y2);
    // measured drift / err1: Q2_K 0.018, Q3_K 0.18, Q4_K 0, Q5_K 0.061, Q6_K 0, IQ4_NL 0.059,
    // IQ4_XS 0.061; err2 / err1 at most 1.0174 (Q3_K)
    EXPECT_LT(drift, 0.25 * err1);
    EXPECT_LT(err2, 1.03 * err1);
}

INSTANTIATE_TEST_SUITE_P(Formats, Stable,
                         ::testing::Values(GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                                           GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS),
                         type_param_name);

// ------------------------------------------------------------ the activation formats

// Q8_1 is Q8_0 plus s = d * sum(codes): same d and codes as the vector-checked Q8_0.
TEST(ActivationFormats, Q8_1MatchesQ8_0PlusSum) {
    const std::vector<float> x = gaussian(4096, 5);
    const std::vector<uint8_t> a = quantize(GgmlType::Q8_0, x), b = quantize(GgmlType::Q8_1, x);
    for (size_t i = 0; i < x.size() / 32; i++) {
        rotor::block_q8_0 q0;
        rotor::block_q8_1 q1;
        memcpy(&q0, a.data() + i * sizeof q0, sizeof q0);
        memcpy(&q1, b.data() + i * sizeof q1, sizeof q1);
        ASSERT_EQ(q1.d, q0.d) << i;
        ASSERT_EQ(memcmp(q1.qs, q0.qs, 32), 0) << i;
        // s is computed from the float32 d, as ggml does, then rounded to fp16
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[i * 32 + j]));
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += q1.qs[j];
        EXPECT_EQ(q1.s, rotor::f32_to_fp16((float)sum * (amax / 127))) << i;
    }
    // On requantization codes and d repeat; s may move by the fp16 rounding of the new float d.
    const std::vector<uint8_t> c = quantize(GgmlType::Q8_1, dequantize(GgmlType::Q8_1, b, x.size()));
    for (size_t i = 0; i < x.size() / 32; i++) {
        EXPECT_EQ(memcmp(c.data() + i * 36, b.data() + i * 36, 2), 0) << i;
        EXPECT_EQ(memcmp(c.data() + i * 36 + 4, b.data() + i * 36 + 4, 32), 0) << i;
    }
}

// Q8_K: f32 d = max / -127 for the signed extreme max, so the extreme always gets code -127 and
// its sign goes into d; codes rounded half to even; bsums the sums of each 16 codes.
TEST(ActivationFormats, Q8_K) {
    std::vector<float> x = gaussian(4 * 256, 6);
    x[300] = -7.0f;  // block 1's extreme is negative: d > 0
    x[600] = 7.0f;
    x[610] = -7.0f;  // a tie in block 2: the first one wins, so d < 0
    for (int j = 768; j < 1024; j++) x[j] = 0.0f;
    const std::vector<uint8_t> q = quantize(GgmlType::Q8_K, x);
    ASSERT_EQ(q.size(), 4 * sizeof(rotor::block_q8_K));
    for (int i = 0; i < 4; i++) {
        rotor::block_q8_K b;
        memcpy(&b, q.data() + i * sizeof b, sizeof b);
        const float* xb = x.data() + 256 * i;
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += b.qs[16 * j + l];
            EXPECT_EQ(b.bsums[j], sum) << i << " " << j;
        }
        if (i == 3) {
            EXPECT_EQ(b.d, 0.0f);
            for (int j = 0; j < 256; j++) EXPECT_EQ(b.qs[j], 0);
            continue;
        }
        float max = 0, amax = 0;
        for (int j = 0; j < 256; j++)
            if (std::fabs(xb[j]) > amax) {
                amax = std::fabs(xb[j]);
                max = xb[j];
            }
        const float iscale = -127.f / max;
        EXPECT_EQ(b.d, 1 / iscale);
        for (int j = 0; j < 256; j++) {
            EXPECT_EQ(b.qs[j], (int)std::nearbyint(iscale * xb[j])) << j;
            EXPECT_LE(std::fabs(b.d * b.qs[j] - xb[j]), std::fabs(b.d) * 0.5f + 1e-6f) << j;
        }
    }
    rotor::block_q8_K b1, b2;
    memcpy(&b1, q.data() + sizeof b1, sizeof b1);
    memcpy(&b2, q.data() + 2 * sizeof b2, sizeof b2);
    EXPECT_GT(b1.d, 0.0f);
    EXPECT_EQ(b1.qs[300 - 256], -127);
    EXPECT_LT(b2.d, 0.0f);
    EXPECT_EQ(b2.qs[600 - 512], -127);
    EXPECT_EQ(b2.qs[610 - 512], 127);
}

// ------------------------------------------------------------ edge inputs

std::vector<GgmlType> quantizable_types() {
    std::vector<GgmlType> v;
    for (uint32_t id = 0; id < rotor::kGgmlTypeCount; id++) {
        const rotor::FormatInfo* f = rotor::format_info(id);
        if (f && f->can_quantize && f->can_dequantize) v.push_back(f->type);
    }
    return v;
}

class EdgeInputs : public ::testing::TestWithParam<GgmlType> {};

// All zeros, constants, one outlier, tiny and subnormal values: the decoded values are finite and,
// where the format can represent them, right.
TEST_P(EdgeInputs, DecodeToFiniteSensibleValues) {
    const GgmlType t = GetParam();
    const size_t n = 512;  // two super-blocks
    auto check = [&](const std::vector<float>& x, const char* what) -> std::vector<float> {
        SCOPED_TRACE(what);
        const std::vector<float> y = dequantize(t, quantize(t, x), n);
        for (size_t i = 0; i < n; i++) EXPECT_TRUE(std::isfinite(y[i])) << i << ": " << y[i];
        return y;
    };

    const std::vector<float> zeros = check(std::vector<float>(n, 0.0f), "zeros");
    for (float v : zeros) EXPECT_EQ(v, 0.0f);

    for (float c : {0.75f, -3.0f}) {
        const std::vector<float> y = check(std::vector<float>(n, c), "constant");
        for (float v : y) EXPECT_NEAR(v, c, std::fabs(c) * (t == GgmlType::MXFP4 ? 0.2f : 0.07f));
    }

    std::vector<float> outlier = gaussian(n, 7, 0.01f);
    outlier[100] = 1000.0f;
    outlier[300] = -1000.0f;
    const std::vector<float> y = check(outlier, "outlier");
    EXPECT_NEAR(y[100], 1000.0f, 250.0f);
    EXPECT_NEAR(y[300], -1000.0f, 250.0f);

    for (float scale : {1e-6f, 1e-20f, 1e-40f}) {  // down to float subnormals; fp16 scales underflow
        const std::vector<float> tiny = gaussian(n, 8, scale);
        const std::vector<float> yt = check(tiny, "tiny");
        for (size_t i = 0; i < n; i++) EXPECT_LE(std::fabs(yt[i]), 16 * scale + 1e-30f) << scale;
    }

    std::vector<float> mixed = gaussian(n, 9);
    for (size_t i = 0; i < 64; i++) mixed[i] = 0.0f;  // a zero sub-block beside normal data
    check(mixed, "zero sub-block");
}

// NaN and Inf inputs have no meaningful encoding, but must not reach undefined behaviour (the
// sanitizer build checks that) or disturb the other blocks.
TEST_P(EdgeInputs, NonFiniteInputsStayInTheirBlock) {
    const GgmlType t = GetParam();
    const size_t be = rotor::format_info(t).block_elems, n = 4 * std::max<size_t>(be, 256);
    std::vector<float> x = gaussian(n, 10);
    const std::vector<uint8_t> clean = quantize(t, x);
    x[3] = std::numeric_limits<float>::quiet_NaN();
    x[n - 1] = std::numeric_limits<float>::infinity();
    x[n - 2] = -std::numeric_limits<float>::infinity();
    const std::vector<uint8_t> dirty = quantize(t, x);
    (void)dequantize(t, dirty, n);
    const size_t bb = rotor::format_info(t).block_bytes;
    const size_t first_clean = 3 / be + 1, last_clean = (n - 2) / be;  // blocks untouched by non-finite values
    for (size_t b = first_clean; b < last_clean; b++)
        EXPECT_EQ(memcmp(clean.data() + b * bb, dirty.data() + b * bb, bb), 0) << "block " << b;
}

INSTANTIATE_TEST_SUITE_P(Formats, EdgeInputs, ::testing::ValuesIn(quantizable_types()), type_param_name);

}  // namespace
