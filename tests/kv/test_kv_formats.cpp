// KV formats: every registered format at every head size it must support. Round-trip error within a
// bound set by the format's code bits, dot/axpy equal to the decoded row, rotations orthonormal and
// folded correctly into attention, plain types byte-identical to src/formats (llama.cpp's cache
// bytes), RotorQuant's layouts and hand-derived blocks, and clear errors for what is unsupported.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <set>

#include "common/error.h"
#include "common/half.h"
#include "formats/formats.h"
#include "kv/kv_codebook.h"
#include "kv/kv_format.h"
#include "kv/kv_format_impl.h"
#include "kv/kv_hadamard.h"
#include "kv/kv_rotorquant.h"
#include "kv/kv_trellis.h"

using namespace rotor;

namespace {

const int kHeadSizes[] = {64, 80, 96, 128, 256, 512};

std::vector<float> gaussian(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
}

double dot(const float* a, const float* b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
double norm(const float* a, int n) { return std::sqrt(dot(a, a, n)); }

bool is_rotorquant(const std::string& n) { return n.rfind("planar", 0) == 0 || n.rfind("iso", 0) == 0; }
bool is_float(const std::string& n) { return n == "f32" || n == "f16" || n == "bf16"; }

// Largest relative MSE allowed on N(0, 1) data: c * 4^-b with b the code bits per element and c set
// just above the measured value of the format family (see the comments), so a wrong scale, table,
// packing or rotation fails while sampling noise does not.
double mse_bound(const std::string& n) {
    if (n == "f32") return 0.0;
    if (n == "f16") return 1e-7;   // measured 4.3e-8 (11-bit mantissa)
    if (n == "bf16") return 5e-6;  // measured 2.8e-6 (8-bit mantissa)
    std::string base = n;
    if (base.size() > 1 && base.back() == 'h') base.pop_back();
    if (base == "q8_0") return 2.5 * std::pow(4.0, -8);  // block scales + uniform codes: c about 1.9
    if (base == "q5_0" || base == "q5_1") return 2.5 * std::pow(4.0, -5);
    if (base == "q4_0" || base == "q4_1" || base == "iq4_nl") return 2.5 * std::pow(4.0, -4);
    if (n == "planar4_0" || n == "iso4_0") return 5.5 * std::pow(4.0, -4);  // the shipped 4-bit table: c = 4.7
    const int b = n.rfind("tbq", 0) == 0 || n.rfind("tcq", 0) == 0 ? n[3] - '0' : n.find('3') != std::string::npos ? 3 : 4;
    if (n.rfind("tcq", 0) == 0) return 1.45 * std::pow(4.0, -b);  // trellis: c = 1.14-1.23, below any scalar code
    return 2.7 * std::pow(4.0, -b);                                // Lloyd-Max scalar: c = 1.85-2.4
}

struct Case {
    std::string name;
    int d;
};

std::vector<Case> all_cases() {
    std::vector<Case> v;
    for (const auto& n : kv_format_names())
        for (int d : kHeadSizes)
            if (find_kv_format(n)->supports(d, nullptr)) v.push_back({n, d});
    return v;
}

class KvFormatCase : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST(KvFormats, RegistryHasEveryFamily) {
    const auto names = kv_format_names();
    const std::set<std::string> have(names.begin(), names.end());
    EXPECT_EQ(have.size(), names.size()) << "duplicate names";
    for (const char* n : {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl", "q8_0h", "q4_0h",
                          "q4_1h", "q5_0h", "q5_1h", "iq4_nlh", "planar3_0", "iso3_0", "planar4_0", "iso4_0",
                          "planar3_c", "iso3_c", "planar4_c", "iso4_c", "tbq2", "tbq3", "tbq4", "tbq2nc", "tbq3nc",
                          "tbq4nc", "tcq2", "tcq3", "tcq4"})
        EXPECT_TRUE(have.count(n)) << n;
    EXPECT_EQ(find_kv_format("q4_0x"), nullptr);
}

TEST(KvFormats, HeadSizeSupport) {
    for (const auto& n : kv_format_names()) {
        const KvFormat& f = *find_kv_format(n);
        for (int d : kHeadSizes) {
            const bool want = !is_rotorquant(n) || d % 128 == 0;
            std::string why;
            EXPECT_EQ(f.supports(d, &why), want) << n << " at " << d << ": " << why;
            if (!want) {
                EXPECT_NE(why.find("128"), std::string::npos) << why;
            }
        }
        std::string why;
        EXPECT_FALSE(f.supports(0, &why)) << n;
        EXPECT_FALSE(f.supports(-64, &why)) << n;
    }
    // Odd sizes: floats store anything, blocks of 32 need multiples of 16, Hadamard types a Hadamard order.
    std::string why;
    EXPECT_TRUE(find_kv_format("f16")->supports(8, &why));
    EXPECT_FALSE(find_kv_format("q4_0")->supports(40, &why));
    EXPECT_TRUE(find_kv_format("q4_0")->supports(48, &why));
    EXPECT_FALSE(find_kv_format("tcq3")->supports(56, &why));  // no Hadamard matrix 2^m * (q + 1) of order 56
    EXPECT_NE(why.find("Hadamard"), std::string::npos) << why;
}

TEST(KvFormats, RequireGivesLoadTimeErrors) {
    EXPECT_EQ(&require_kv_format("tcq3", 128), find_kv_format("tcq3"));
    try {
        require_kv_format("q4_k", 128);
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("unknown KV type 'q4_k'"), std::string::npos) << m;
        EXPECT_NE(m.find("tcq3"), std::string::npos) << m;  // lists the known names
    }
    try {
        require_kv_format("planar3_0", 80);
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("planar3_0 does not support head size 80"), std::string::npos) << m;
        EXPECT_NE(m.find("128 elements"), std::string::npos) << m;  // and says why
    }
}

TEST(KvFormats, BitsPerElementCountEverything) {
    struct B {
        const char* name;
        int d;
        double bits;
    } want[] = {{"f16", 128, 16},     {"q8_0", 128, 8.5},    {"q4_0", 128, 4.5},   {"q4_0", 80, 5.4},  // 3 blocks
                {"q4_1h", 64, 5.0},   {"q5_0", 96, 5.5},     {"iq4_nl", 128, 4.5}, {"planar3_0", 128, 3.125},
                {"iso3_0", 256, 3.125}, {"planar4_0", 128, 4.125}, {"tbq3", 128, 3.125}, {"tbq2", 64, 2.25},
                {"tcq4", 128, 4.125}, {"tcq3", 80, 3.2},    {"tcq2", 512, 2.03125}};
    for (const auto& w : want) EXPECT_DOUBLE_EQ(find_kv_format(w.name)->bits_per_element(w.d), w.bits) << w.name;
    EXPECT_EQ(find_kv_format("planar3_0")->row_bytes(128), 50u);
    EXPECT_EQ(find_kv_format("iso3_0")->row_bytes(256), 100u);
    EXPECT_EQ(find_kv_format("planar4_0")->row_bytes(128), 66u);
    EXPECT_EQ(find_kv_format("iso4_c")->row_bytes(512), 264u);
}

TEST_P(KvFormatCase, RoundTripErrorWithinItsBitsBound) {
    const auto [name, d] = GetParam();
    const KvFormat& f = *find_kv_format(name);
    const int n_vec = std::max(4, (name.rfind("tcq", 0) == 0 ? 4096 : 16384) / d);
    const auto x = gaussian((size_t)n_vec * d, 1000 + d);
    std::vector<uint8_t> row(f.row_bytes(d));
    std::vector<float> y(d);
    double err = 0, nrm = 0;
    for (int v = 0; v < n_vec; v++) {
        const float* xv = &x[(size_t)v * d];
        f.quantize(xv, row.data(), d);
        f.dequantize(row.data(), y.data(), d);
        for (int i = 0; i < d; i++) {
            ASSERT_TRUE(std::isfinite(y[i])) << name;
            err += ((double)y[i] - xv[i]) * ((double)y[i] - xv[i]);
            nrm += (double)xv[i] * xv[i];
        }
    }
    const double rel = err / nrm, bound = mse_bound(name);
    EXPECT_LE(rel, bound) << name << " d=" << d;
    // and not suspiciously good either (a format that stores more than it says it does)
    if (!is_float(name)) {
        EXPECT_GT(rel, bound / 8) << name << " d=" << d;
    }
}

TEST_P(KvFormatCase, DotAndAxpyEqualTheDecodedRow) {
    const auto [name, d] = GetParam();
    const KvFormat& f = *find_kv_format(name);
    const auto x = gaussian((size_t)3 * d, 7 + d, 3.0f);
    std::vector<uint8_t> row(f.row_bytes(d));
    std::vector<float> y(d), acc(d), acc2(d);
    for (int v = 0; v < 2; v++) {
        f.quantize(&x[(size_t)v * d], row.data(), d);
        f.dequantize_rotated(row.data(), y.data(), d);
        const float* q = &x[(size_t)2 * d];
        const double want = dot(y.data(), q, d), scale = norm(y.data(), d) * norm(q, d);
        EXPECT_NEAR(f.dot(row.data(), q, d), want, 1e-5 * scale) << name;
        for (int i = 0; i < d; i++) acc[i] = acc2[i] = q[i];
        f.axpy(row.data(), -0.75f, acc.data(), d);
        for (int i = 0; i < d; i++) EXPECT_NEAR(acc[i], acc2[i] - 0.75f * y[i], 1e-5f * (std::fabs(acc2[i]) + std::fabs(y[i])) + 1e-6f) << name << " " << i;
    }
}

TEST_P(KvFormatCase, RotationIsFoldedIntoAttention) {
    const auto [name, d] = GetParam();
    const KvFormat& f = *find_kv_format(name);
    const auto x = gaussian((size_t)2 * d, 99 + d);
    const float* k = x.data();
    const float* q = x.data() + d;
    std::vector<uint8_t> row(f.row_bytes(d));
    std::vector<float> kd(d), qr(q, q + d), back(d);
    f.quantize(k, row.data(), d);
    f.dequantize(row.data(), kd.data(), d);
    f.rotate(qr.data(), d);
    // <R q, stored> = <q, R^-1 stored>: the query is rotated once, keys never.
    const double want = dot(q, kd.data(), d);
    EXPECT_NEAR(f.dot(row.data(), qr.data(), d), want, 2e-5 * norm(q, d) * norm(kd.data(), d)) << name;
    // sum_t p_t R^-1 v_t = R^-1 sum_t p_t v_t: the output is unrotated once.
    std::fill(back.begin(), back.end(), 0.0f);
    f.axpy(row.data(), 0.5f, back.data(), d);
    f.unrotate(back.data(), d);
    for (int i = 0; i < d; i++) EXPECT_NEAR(back[i], 0.5f * kd[i], 2e-5f * norm(kd.data(), d)) << name;

    if (name == "iso3_0" || name == "iso4_0") {
        // As shipped, the quaternions are not unit: the fork's conjugate "inverse" scales group g by
        // |q_g|^2. Group 1 (elements 4..7) has |q|^2 = 0.787: it decodes 21% small.
        std::vector<float> e(d, 0.0f);
        e[5] = 1.0f;
        f.rotate(e.data(), d);
        f.unrotate(e.data(), d);
        EXPECT_NEAR(e[5], 0.7872, 1e-3) << name;
        return;
    }
    // Orthonormal: norm kept, unrotate undoes rotate.
    std::vector<float> r(q, q + d);
    f.rotate(r.data(), d);
    EXPECT_NEAR(norm(r.data(), d), norm(q, d), 1e-6 * norm(q, d)) << name;
    f.unrotate(r.data(), d);
    for (int i = 0; i < d; i++) EXPECT_NEAR(r[i], q[i], 1e-6 * norm(q, d)) << name;
    const bool want_rotated = name.back() == 'h' || is_rotorquant(name) || name.rfind("tbq", 0) == 0 || name.rfind("tcq", 0) == 0;
    EXPECT_EQ(f.rotated(), want_rotated) << name;
}

TEST_P(KvFormatCase, ZeroVectorStaysZero) {
    const auto [name, d] = GetParam();
    const KvFormat& f = *find_kv_format(name);
    std::vector<float> x(d, 0.0f), y(d, 1.0f);
    std::vector<uint8_t> row(f.row_bytes(d), 0xAB);
    f.quantize(x.data(), row.data(), d);
    f.dequantize(row.data(), y.data(), d);
    for (int i = 0; i < d; i++) EXPECT_EQ(y[i], 0.0f) << name;
}

INSTANTIATE_TEST_SUITE_P(All, KvFormatCase, ::testing::ValuesIn(all_cases()), [](const auto& info) {
    return info.param.name + "_" + std::to_string(info.param.d);
});

TEST(KvFormats, PlainTypesStoreLlamaCppBlocks) {
    const GgmlType types[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::IQ4_NL};
    for (GgmlType t : types) {
        const std::string name(format_info(t).name);
        for (int d : kHeadSizes) {
            const auto x = gaussian(d, 5 + d, 2.0f);
            const int padded = (d + 31) / 32 * 32;
            for (bool h : {false, true}) {
                const KvFormat& f = *find_kv_format(name + (h ? "h" : ""));
                std::vector<float> src(padded, 0.0f);
                std::copy(x.begin(), x.end(), src.begin());
                if (h) kvq::shared_hadamard(d, false).forward(src.data());
                std::vector<uint8_t> want(row_bytes(t, padded)), got(f.row_bytes(d));
                quantize_row(t, src.data(), want.data(), padded);
                f.quantize(x.data(), got.data(), d);
                EXPECT_EQ(got, want) << f.name() << " d=" << d;
                std::vector<float> dq(padded), mine(d);
                dequantize_row(t, want.data(), dq.data(), padded);
                f.dequantize_rotated(got.data(), mine.data(), d);
                for (int i = 0; i < d; i++) EXPECT_EQ(mine[i], dq[i]) << f.name() << " d=" << d << " i=" << i;
            }
        }
    }
}

TEST(KvFormats, HadamardMatchesLlamaCpp) {
    // llama.cpp (ggml_gen_hadamard): Sylvester's matrix, H_ij = (-1)^popcount(i & j) / sqrt(n), no signs.
    for (int n : {64, 128, 256, 512}) {
        const auto& H = kvq::shared_hadamard(n, false);
        EXPECT_EQ(H.paley_order(), 1);
        for (int j : {0, 1, 37, n - 1}) {
            std::vector<float> e(n, 0.0f);
            e[j] = 1.0f;
            H.forward(e.data());
            for (int i = 0; i < n; i++) {
                const float want = ((std::popcount((unsigned)(i & j)) & 1) ? -1.0f : 1.0f) / std::sqrt((float)n);
                ASSERT_NEAR(e[i], want, 1e-7f) << n << " " << i << " " << j;
            }
        }
    }
    // Head sizes that are not powers of two get true Hadamard matrices (every entry +-1): H H^T = n I.
    for (int n : {80, 96, 48, 12, 20}) {
        kvq::Hadamard H(n, 0);
        EXPECT_GT(H.paley_order(), 1) << n;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                int s = 0;
                for (int k = 0; k < n; k++) s += H.entry(i, k) * H.entry(j, k);
                ASSERT_EQ(s, i == j ? n : 0) << n << " " << i << " " << j;
            }
    }
    EXPECT_EQ(kvq::Hadamard(80, 0).paley_order(), 20);  // H_4 (x) Paley(19)
    EXPECT_EQ(kvq::Hadamard(96, 0).paley_order(), 12);  // H_8 (x) Paley(11)
    EXPECT_THROW(kvq::Hadamard(36, 0), Error);
}

TEST(KvFormats, LloydMaxTablesAreTheKnownOnes) {
    // Max (1960): the minimum MSE of 2, 4, 8 and 16 levels for N(0, 1).
    const double want_mse[] = {0.3634, 0.1175, 0.03455, 0.009497};
    const double want_top[] = {0.7979, 1.510, 2.152, 2.733};  // the outermost level
    for (int b = 1; b <= 4; b++) {
        const auto& cb = kvq::lloyd_max_normal(b);
        ASSERT_EQ(cb.centroid.size(), (size_t)1 << b);
        EXPECT_NEAR(cb.mse, want_mse[b - 1], 2e-4) << b;
        EXPECT_NEAR(cb.centroid.back(), want_top[b - 1], 2e-3) << b;
        for (size_t i = 0; i < cb.centroid.size(); i++) EXPECT_FLOAT_EQ(cb.centroid[i], -cb.centroid[cb.centroid.size() - 1 - i]);
        for (size_t i = 0; i < cb.bound.size(); i++) EXPECT_FLOAT_EQ(cb.bound[i], 0.5f * (cb.centroid[i] + cb.centroid[i + 1]));
    }
    // The 3-bit table for N(0, 1/128) the _c variants use; the reference says about +-{0.0217, 0.0668, 0.1188, 0.1902}.
    const auto c = kvq::scaled_codebook(kvq::lloyd_max_normal(3), 1.0 / std::sqrt(128.0));
    EXPECT_NEAR(c.centroid[4], 0.0217, 1e-4);
    EXPECT_NEAR(c.centroid[7], 0.1902, 1e-4);
}

TEST(KvFormats, RotorQuantShippedBlocksByHand) {
    // planar3_0, x = e_0: u = e_0; the first Givens pair gives (cos0, sin0) = (-0.9095, -0.4157), both
    // below the first midpoint -0.154259: index 0 (centroid -0.190685). The 126 zeros are not < mid[3]
    // = 0 but are < 0.043589: index 4 (0.021460), i.e. low bits 00 and third bit 1.
    // ||c||^2 = 2 * 0.190685^2 + 126 * 0.02146^2 = 0.130749, d = 1 / 0.361592 = 2.76555 -> fp16 0x4188.
    std::vector<float> x(128, 0.0f);
    x[0] = 1.0f;
    std::vector<uint8_t> want(50, 0x00), got(50);
    want[0] = 0x88;
    want[1] = 0x41;
    for (int i = 34; i < 50; i++) want[i] = 0xFF;
    want[34] = 0xFC;  // elements 0 and 1 have third bit 0
    find_kv_format("planar3_0")->quantize(x.data(), got.data(), 128);
    EXPECT_EQ(got, want);
    // x = e_5: pair 2 gives (-sin2, cos2) = (-0.5207, -0.8537) at elements 4 and 5: indexes 0.
    x[0] = 0.0f;
    x[5] = 1.0f;
    want[34] = 0xCF;
    find_kv_format("planar3_0")->quantize(x.data(), got.data(), 128);
    EXPECT_EQ(got, want);

    // iso3_0, x = e_0: q_0 (x) (1, 0, 0, 0) = q_0 = (0.8351, 0.3547, 0.2417, 0.3039): all above
    // 0.154259, index 7 (low bits 11, third bit 1). ||c||^2 = 4 * 0.190685^2 + 124 * 0.02146^2 =
    // 0.202549, d = 1 / 0.450054 = 2.22196 -> fp16 0x4072.
    std::fill(x.begin(), x.end(), 0.0f);
    x[0] = 1.0f;
    std::fill(want.begin(), want.end(), 0x00);
    want[0] = 0x72;
    want[1] = 0x40;
    want[2] = 0xFF;  // elements 0..3: low bits 11 11 11 11
    for (int i = 34; i < 50; i++) want[i] = 0xFF;
    find_kv_format("iso3_0")->quantize(x.data(), got.data(), 128);
    EXPECT_EQ(got, want);

    // planar4_0, x = e_0: -0.9095 and -0.4157 -> index 0 (-0.173926); a zero is equally far from
    // -0.006938 and 0.006938 and the search keeps the first: index 7. Nibbles: byte 0 = 0x00, then 0x77.
    // ||c||^2 = 2 * 0.173926^2 + 126 * 0.006938^2 = 0.0665656, d = 1 / 0.258003 = 3.87592 -> fp16 0x43C0.
    std::vector<uint8_t> want4(66, 0x77), got4(66);
    want4[0] = 0xC0;
    want4[1] = 0x43;
    want4[2] = 0x00;
    find_kv_format("planar4_0")->quantize(x.data(), got4.data(), 128);
    EXPECT_EQ(got4, want4);

    // A head of 256 is two independent blocks with the same constants.
    std::vector<float> x2(256, 0.0f);
    x2[128] = 1.0f;
    std::vector<uint8_t> got2(100);
    find_kv_format("iso3_0")->quantize(x2.data(), got2.data(), 256);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), got2.begin() + 50));
}

TEST(KvFormats, CorrectedRotorQuantFixesTheShippedDefects) {
    // 4-bit: the shipped table is not Lloyd-Max for N(0, 1/128) (its outer level is 0.174, not 0.241):
    // about twice the MSE of the corrected table on the same rotation.
    const int d = 128, n = 256;
    const auto x = gaussian((size_t)n * d, 31);
    auto mse = [&](const char* name) {
        const KvFormat& f = *find_kv_format(name);
        std::vector<uint8_t> row(f.row_bytes(d));
        std::vector<float> y(d);
        double e = 0, s = 0;
        for (int v = 0; v < n; v++) {
            f.quantize(&x[(size_t)v * d], row.data(), d);
            f.dequantize(row.data(), y.data(), d);
            for (int i = 0; i < d; i++) e += std::pow(y[i] - x[(size_t)v * d + i], 2), s += std::pow(x[(size_t)v * d + i], 2);
        }
        return e / s;
    };
    EXPECT_GT(mse("planar4_0"), 1.7 * mse("planar4_c"));
    EXPECT_GT(mse("iso4_0"), 1.7 * mse("iso4_c"));
    // 3-bit: iso's non-unit quaternions cost a little even on Gaussian data; the corrected one does not.
    EXPECT_GT(mse("iso3_0"), 1.01 * mse("iso3_c"));
}

TEST(KvFormats, TrellisTableHoldsEveryQuantileOnce) {
    // tcq decodes element i as scale * T[window_i]; T is a permutation of the 4096 normal quantiles.
    // Check through the format: a stored row whose scale is 1 decodes to table values only.
    std::vector<float> q;
    for (int s = 0; s < 4096; s++) q.push_back((float)kvq::normal_quantile((s + 0.5) / 4096));
    const KvFormat& f = *find_kv_format("tcq3");
    std::vector<uint8_t> row(f.row_bytes(128), 0);
    const uint16_t one = f32_to_fp16(1.0f);
    memcpy(row.data(), &one, 2);
    std::mt19937 rng(3);
    for (size_t i = 2; i < row.size(); i++) row[i] = (uint8_t)rng();
    std::vector<float> y(128);
    f.dequantize_rotated(row.data(), y.data(), 128);
    for (float v : y) EXPECT_TRUE(std::binary_search(q.begin(), q.end(), v)) << v;
}

TEST(KvFormats, TrellisWindowAndTableAreTheFormats) {
    // The GPU decodes tcq rows with trellis_window and trellis_code_table (kv_trellis.h); both must say
    // what the format's own decoder says, at every bit width and at head sizes whose code strings wrap
    // inside a 3-byte window (16) or not (64, 256).
    std::mt19937 rng(5);
    for (int k = 2; k <= 4; k++)
        for (int d : {16, 64, 256}) {
            const KvFormat& f = *find_kv_format("tcq" + std::to_string(k));
            ASSERT_EQ(f.row_bytes(d), kvq::trellis_row_bytes(d, k));
            std::vector<uint8_t> row(f.row_bytes(d));
            for (uint8_t& b : row) b = (uint8_t)rng();
            const uint16_t sc = f32_to_fp16(0.75f);
            memcpy(row.data(), &sc, 2);
            std::vector<float> y(d);
            f.dequantize_rotated(row.data(), y.data(), d);
            const std::vector<float>& T = kvq::trellis_code_table(k);
            for (int i = 0; i < d; i++)
                EXPECT_EQ(y[i], 0.75f * T[kvq::trellis_window(row.data() + 2, d * k / 8, i, k)]) << k << " " << d << " " << i;
        }
    EXPECT_THROW(kvq::trellis_code_table(5), Error);
}

TEST(KvFormats, RandomizedHadamardSignsComeFromOneFunction) {
    // hadamard_sign_negative (what the GPU kernels call) gives the signs the CPU rotation applies:
    // forward(e_i) = H D e_i / sqrt(n), whose first entry is sign_i / sqrt(n) (row 0 of H is all ones).
    for (int n : {16, 128, 256}) {
        const kvq::Hadamard& h = kvq::shared_hadamard(n, true);
        for (int i = 0; i < n; i++) {
            std::vector<float> e(n, 0.0f);
            e[i] = 1.0f;
            h.forward(e.data());
            EXPECT_EQ(e[0] < 0, kvq::hadamard_sign_negative(kvq::kSignSeed, n, i)) << n << " " << i;
        }
    }
    uint64_t st = 42;
    for (uint64_t i = 0; i < 5; i++) EXPECT_EQ(kvq::splitmix64_nth(42, i), kvq::splitmix64(st));
}

// kv/kv_rotorquant.h exports RotorQuant's constants for the GPU encoder (src/cuda/kv_rotorquant.cu). An
// encoder written here from the exported tables alone (the GPU kernel's steps, in the CPU's float order)
// must give the CPU format's bytes for every type, and each exported centroid must be what the format
// decodes: a table or rule exported wrong fails here, without a GPU.
TEST(KvFormats, RotorQuantExportedTablesEncodeAsTheFormat) {
    std::mt19937 rng(11);
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (bool corrected : {false, true})
        for (int bits : {3, 4})
            for (bool iso : {false, true}) {
                const std::string name = std::string(iso ? "iso" : "planar") + std::to_string(bits) + (corrected ? "_c" : "_0");
                const KvFormat& f = require_kv_format(name, 256);
                const kvq::RotorQuantTables t = kvq::rotorquant_tables(iso, bits, corrected);
                const int levels = 1 << bits;
                const size_t bb = f.row_bytes(128);
                // every code decodes to its exported centroid (scale 1)
                for (int c = 0; c < levels; c++) {
                    std::vector<uint8_t> blk(bb), idx(128, (uint8_t)c);
                    const uint16_t one = f32_to_fp16(1.0f);
                    memcpy(blk.data(), &one, 2);
                    kvq::pack_codes(bits, idx.data(), 128, blk.data() + 2);
                    float y[128];
                    f.dequantize_rotated(blk.data(), y, 128);
                    for (float v : y) ASSERT_EQ(v, t.centroid[c]) << name << " code " << c;
                }
                auto code = [&](float v) {
                    int i = 0;
                    switch (t.rule) {
                        case kvq::RotorQuantRule::MidLadder:
                            while (i < levels - 1 && !(v < t.threshold[i])) i++;
                            return i;
                        case kvq::RotorQuantRule::BoundCount:
                            for (int b = 0; b < levels - 1; b++) i += v > t.threshold[b];
                            return i;
                        case kvq::RotorQuantRule::Nearest:
                            for (int k = 1; k < levels; k++)
                                if (std::fabs(v - t.centroid[k]) < std::fabs(v - t.centroid[i])) i = k;
                            return i;
                    }
                    return i;
                };
                for (int trial = 0; trial < 200; trial++) {
                    std::vector<float> x(256);
                    const float sc = trial % 4 == 0 ? 1e-3f : (trial % 4 == 1 ? 30.0f : 1.0f);
                    for (float& v : x) v = sc * g(rng);
                    if (trial == 7) std::fill(x.begin() + 128, x.end(), 0.0f);  // a zero block
                    std::vector<uint8_t> want(f.row_bytes(256)), got(f.row_bytes(256));
                    f.quantize(x.data(), want.data(), 256);
                    for (int b = 0; b < 2; b++) {
                        const float* src = x.data() + 128 * b;
                        float norm_sq = 0.0f;
                        for (int j = 0; j < 128; j++) norm_sq += src[j] * src[j];
                        const float grp_norm = std::sqrt(norm_sq);
                        const float inv = grp_norm > 1e-10f ? 1.0f / grp_norm : 0.0f;
                        float r[128];
                        if (iso) {
                            for (int q = 0; q < 32; q++) {
                                const float w = t.qw[q], a = t.qx[q], bq = t.qy[q], z = t.qz[q];
                                const float v0 = src[4 * q] * inv, v1 = src[4 * q + 1] * inv, v2 = src[4 * q + 2] * inv,
                                            v3 = src[4 * q + 3] * inv;
                                r[4 * q] = w * v0 - a * v1 - bq * v2 - z * v3;
                                r[4 * q + 1] = w * v1 + a * v0 + bq * v3 - z * v2;
                                r[4 * q + 2] = w * v2 - a * v3 + bq * v0 + z * v1;
                                r[4 * q + 3] = w * v3 + a * v2 - bq * v1 + z * v0;
                            }
                        } else {
                            for (int p = 0; p < 64; p++) {
                                const float u0 = src[2 * p] * inv, u1 = src[2 * p + 1] * inv;
                                r[2 * p] = t.cos[p] * u0 - t.sin[p] * u1;
                                r[2 * p + 1] = t.sin[p] * u0 + t.cos[p] * u1;
                            }
                        }
                        uint8_t idx[128];
                        float recon_sq = 0.0f;
                        for (int j = 0; j < 128; j++) {
                            idx[j] = (uint8_t)code(r[j]);
                            recon_sq += t.centroid[idx[j]] * t.centroid[idx[j]];
                        }
                        const float recon = std::sqrt(recon_sq);
                        const uint16_t d = f32_to_fp16(recon > 1e-10f ? grp_norm / recon : grp_norm);
                        memcpy(got.data() + bb * b, &d, 2);
                        kvq::pack_codes(bits, idx, 128, got.data() + bb * b + 2);
                    }
                    ASSERT_EQ(got, want) << name << " trial " << trial;
                }
            }
}
