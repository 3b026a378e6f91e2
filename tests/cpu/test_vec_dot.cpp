// Dot-product kernels: SIMD levels against the scalar reference, the scalar reference against
// dequantized weights and activations in double, activation quantizers bit-exact against
// formats/quantize_row(), on random crafted blocks and on the real testdata blocks.
//
// Tolerances. Every kernel sums a block's products exactly in integers; paths differ only in the
// float operations that scale and add those integer sums. The SIMD kernels of the common formats
// scale per-lane partial sums (as ggml does) rather than block totals, and some work on codes with
// an offset (Q4_K's unsigned codes with the min subtracted separately, Q6_K's codes + 32, ...), so
// a lane's partial sum is bounded not by sum |w_i * a_i| but by L = sum (|w_i| + 4 * M_b) * |a_i|,
// with M_b the largest |w| of the element's block (plus |m| * |a| for Q4_1/Q5_1, whose offset is
// the block min m). Each float operation on a path adds at most 2^-24 of L, and a path has at most
// (blocks + 16) of them in sequence, so SIMD vs scalar must agree to 4 * (blocks + 16) * 2^-24 * L.
// (The IQ2/IQ3/IQ1/TQ kernels reduce each block exactly and match the scalar kernel bit for bit.)
// Against the double-precision dot of dequantized weights and activations, the scalar kernel must
// agree to 1e-5 * sum |w_i * a_i| (plus, for the Q8_1 activations of Q4_1/Q5_1, the fp16 rounding of
// the stored block sum s that ggml's formula uses).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "cpu/vec_dot_impl.h"
#include "cpu_test_util.h"
#include "formats/fp4.h"
#include "testdata.h"

using namespace rotor;
using namespace rotor::test;

namespace {

#define GET_KERNEL(var, type, isa)                     \
    const VecDotKernel* var = vec_dot_kernel(type, isa); \
    ASSERT_NE(var, nullptr) << "no kernel for " << type_name(type)

// Elements covered by one weight block and the activation blocks under it.
int64_t chunk_elems(const VecDotKernel& k) {
    const int64_t wb = format_info(k.weight).block_elems, ab = format_info(k.act).block_elems;
    return std::max(wb, ab);
}

// Quantized activation row (scalar quantizer), 4-byte aligned.
Bytes quantize_scalar(const VecDotKernel& k, const std::vector<float>& x) {
    Bytes a(act_row_bytes(k, (int64_t)x.size()) + 64);
    vec_dot_kernel(k.weight, CpuIsa::Scalar)->quantize(x.data(), a.data(), (int64_t)x.size());
    return a;
}

// |w_i| of a weight row without needing formats/' dequantizers: read off the scalar kernel itself as
// the dot of each chunk with a unit activation (exact to the activation format's rounding, ~1e-4,
// plenty for a bound).
std::vector<double> weight_magnitudes(const VecDotKernel& scalar, const uint8_t* w, int64_t n) {
    const int64_t c = chunk_elems(scalar);
    std::vector<double> out((size_t)n);
    std::vector<float> unit((size_t)c);
    Bytes ua(act_row_bytes(scalar, c) + 64);
    for (int64_t e = 0; e < c; e++) {
        std::fill(unit.begin(), unit.end(), 0.0f);
        unit[(size_t)e] = 1.0f;
        scalar.quantize(unit.data(), ua.data(), c);
        for (int64_t k = 0; k < n / c; k++) {
            float wv = 0;
            scalar.dot(c, w + row_bytes(scalar.weight, (uint64_t)(k * c)), ua.data(), 0, &wv, 1, 1);
            out[(size_t)(k * c + e)] = std::fabs((double)wv);
        }
    }
    return out;
}

// L of the tolerance from |w_i| and the activation row.
double lane_bound(const VecDotKernel& k, const std::vector<double>& wabs, const uint8_t* a, int64_t n) {
    const std::vector<double> ad = dequant_act(k.act, a, n);
    const int64_t c = std::max<int64_t>(chunk_elems(k), 32);
    double s = 0;
    for (int64_t b = 0; b < n; b += c) {
        double m = 0;
        for (int64_t i = b; i < std::min(n, b + c); i++) m = std::max(m, wabs[(size_t)i]);
        for (int64_t i = b; i < std::min(n, b + c); i++) s += (wabs[(size_t)i] + 4 * m) * std::fabs(ad[(size_t)i]);
    }
    return s;
}

// Q4_1 / Q5_1 weights are d * q + m with unsigned q: the SIMD lanes hold sums of d * q * a, bounded
// by (|w| + |m|) * |a|, so the bound grows by sum |m| * |a| (twice, for safety).
double min_term_abs(GgmlType t, const uint8_t* w, const uint8_t* a, GgmlType act, int64_t n) {
    if (t != GgmlType::Q4_1 && t != GgmlType::Q5_1) return 0;
    const std::vector<double> ad = dequant_act(act, a, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t m;
        memcpy(&m, w + (i / 32) * format_info(t).block_bytes + 2, 2);
        s += 2 * std::fabs((double)fp16_to_f32(m) * ad[(size_t)i]);
    }
    return s;
}

double simd_tolerance(const VecDotKernel& k, double abs_sum, int64_t n) {
    return 4.0 * (double)(n / chunk_elems(k) + 16) * std::ldexp(1.0, -24) * abs_sum + 1e-30;
}

// Extra allowance for ggml's Q4_1/Q5_1 formula: it uses y.s = fp16(d * sum q) for the min term.
double q8_1_sum_rounding(GgmlType t, const uint8_t* w, const uint8_t* a, int64_t n) {
    if (t != GgmlType::Q4_1 && t != GgmlType::Q5_1) return 0;
    const size_t wb = format_info(t).block_bytes;
    double e = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        uint16_t m;
        memcpy(&m, w + b * wb + 2, 2);
        const auto& y = reinterpret_cast<const block_q8_1*>(a)[b];
        e += std::fabs((double)fp16_to_f32(m)) * (std::fabs((double)fp16_to_f32(y.s)) + 1e-30) * std::ldexp(1.0, -10);
    }
    return e;
}

struct DequantRef {
    double dot = 0, abs = 0;
};
DequantRef dequant_dot(const std::vector<double>& w, const std::vector<double>& a) {
    DequantRef r;
    for (size_t i = 0; i < w.size(); i++) r.dot += w[i] * a[i], r.abs += std::fabs(w[i] * a[i]);
    return r;
}

class VecDot : public ::testing::TestWithParam<GgmlType> {};

std::string param_name(const ::testing::TestParamInfo<GgmlType>& p) { return type_name(p.param); }

}  // namespace

TEST(VecDotTable, ReportsIsaPerFormat) {
    std::printf("[ isa      ] cpu best: %s, default (ROTOR_CPU_ISA): %s\n",
                std::string(cpu_isa_name(cpu_isa_best())).c_str(), std::string(cpu_isa_name(cpu_isa_default())).c_str());
    for (GgmlType t : cpu_weight_types()) {
        std::string line;
        for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512}) {
            const VecDotKernel* k = vec_dot_kernel(t, isa);
            if (!k) {
                line += " [missing]";
                ADD_FAILURE() << type_name(t) << " has no kernel at " << cpu_isa_name(isa);
                continue;
            }
            EXPECT_EQ(k->weight, t);
            EXPECT_LE((int)k->isa, (int)isa);
            EXPECT_TRUE(cpu_isa_supported(k->isa));
            char buf[96];
            std::snprintf(buf, sizeof buf, " %s->%s(x%d, act %s %s)", std::string(cpu_isa_name(isa)).c_str(),
                          std::string(cpu_isa_name(k->isa)).c_str(), k->reuse, type_name(k->act).c_str(),
                          std::string(cpu_isa_name(k->quantize_isa)).c_str());
            line += buf;
        }
        std::printf("[ isa      ] %-8s%s\n", type_name(t).c_str(), line.c_str());
    }
    EXPECT_EQ(vec_dot_kernel(GgmlType::I32, CpuIsa::Scalar), nullptr);
    EXPECT_EQ(vec_dot_kernel(GgmlType::Q8_K, CpuIsa::Scalar), nullptr);
}

TEST(VecDotTable, Fp4ScaleTablesMatchFormats) {
    // The SIMD kernels' UE4M3 table against formats/fp4.h and against ggml's formula as written
    // (ldexp form); the E8M0 bits against formats/fp4.h.
    for (int x = 0; x < 256; x++) {
        float ggml = 0;
        if (x != 0 && x != 0x7F) {
            const int exp = (x >> 3) & 0xF, man = x & 7;
            ggml = (exp == 0 ? std::ldexp((float)man, -9) : std::ldexp(1.0f + (float)man / 8.0f, exp - 7)) * 0.5f;
        }
        EXPECT_EQ(cpu::kUe4m3Half.v[x], ggml) << "byte " << x;
        EXPECT_EQ(cpu::kUe4m3Half.v[x], ue4m3_to_f32_half((uint8_t)x)) << "byte " << x;
        EXPECT_EQ(bits_to_f32(cpu::e8m0_half_bits((uint8_t)x)), e8m0_to_f32_half((uint8_t)x)) << "byte " << x;
    }
}

// ---- activation quantizers

namespace {

std::vector<float> quantizer_input(int64_t n, std::mt19937& rng) {
    std::vector<float> x = craft_acts(n, rng);
    // Edge blocks (of 256, so every activation type sees them): zeros; exact .5 ties after scaling
    // (amax 127 -> d = 1 for Q8_0/Q8_1; max -127 -> iscale = 1 for Q8_K); a negative extreme that
    // appears twice with both signs; tiny values whose fp16 scale is subnormal; large values.
    for (int i = 0; i < 256; i++) x[i] = 0.0f;
    for (int i = 0; i < 256; i++) x[256 + i] = (i % 32 == 0) ? -127.0f : (float)((i * 37) % 254 - 127) + 0.5f;
    for (int i = 0; i < 256; i++) x[512 + i] = (float)((i * 11) % 64) - 31.5f;
    x[512 + 7] = -3e3f, x[512 + 100] = 3e3f;
    for (int i = 0; i < 256; i++) x[768 + i] *= 1e-6f;
    for (int i = 0; i < 256; i++) x[1024 + i] *= 1e4f;
    return x;
}

}  // namespace

TEST(QuantizeAct, SimdBitExactWithReference) {
    std::mt19937 rng(1234);
    const int64_t n = 4096;
    const std::vector<float> x = quantizer_input(n, rng);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K}) {
        const size_t bytes = (size_t)row_bytes(t, n);
        Bytes ref(bytes);
        const bool have_ref = format_info(t).can_quantize;
        if (have_ref) quantize_row(t, x.data(), ref.data(), n);
        else quantize_act_fn(t, CpuIsa::Scalar)(x.data(), ref.data(), n);
        for (CpuIsa isa : supported_isas()) {
            Bytes got(bytes);
            memset(got.data(), 0xAB, bytes);
            QuantizeActFn q = quantize_act_fn(t, isa);
            ASSERT_NE(q, nullptr);
            q(x.data(), got.data(), n);
            EXPECT_EQ(memcmp(got.data(), ref.data(), bytes), 0)
                << type_name(t) << " at " << cpu_isa_name(isa) << " differs from the "
                << (have_ref ? "reference quantize_row" : "scalar quantizer");
        }
        if (!have_ref)
            std::printf("[ note     ] %s: formats/ has no quantize_row yet; compared with the scalar quantizer only\n",
                        type_name(t).c_str());
    }
}

// ---- dot products

TEST_P(VecDot, SimdMatchesScalar) {
    const GgmlType t = GetParam();
    GET_KERNEL(scalar, t, CpuIsa::Scalar);
    std::mt19937 rng(42 + (int)t);
    const int64_t n = 2048, n_rows = 6;
    const size_t rb = (size_t)row_bytes(t, n);
    const Bytes w = craft_weights(t, n * n_rows, rng);
    for (CpuIsa isa : supported_isas()) {
        const VecDotKernel* k = vec_dot_kernel(t, isa);
        ASSERT_NE(k, nullptr);
        if (k->isa != isa) continue;  // falls back to a lower level, tested there
        // up to 7 activations: the reuse path (4 at a time) and its remainders
        const int n_act = 7;
        std::vector<std::vector<float>> xs;
        const size_t ab = act_row_bytes(*k, n);
        const size_t astride = (ab + 63) / 64 * 64;
        Bytes acts(astride * n_act);
        for (int j = 0; j < n_act; j++) {
            xs.push_back(craft_acts(n, rng));
            scalar->quantize(xs.back().data(), acts.data() + j * astride, n);
        }
        for (int64_t r = 0; r < n_rows; r++) {
            const uint8_t* wr = w.data() + r * rb;
            std::vector<float> multi(n_act * 3, -1.0f);
            k->dot(n, wr, acts.data(), astride, multi.data(), 3, n_act);
            for (int j = 0; j < n_act; j++) {
                const uint8_t* aj = acts.data() + j * astride;
                float want = 0, one = 0;
                scalar->dot(n, wr, aj, 0, &want, 1, 1);
                k->dot(n, wr, aj, 0, &one, 1, 1);
                const double tol = simd_tolerance(
                    *k, lane_bound(*k, weight_magnitudes(*scalar, wr, n), aj, n) + min_term_abs(t, wr, aj, k->act, n), n);
                EXPECT_NEAR(one, want, tol) << type_name(t) << " " << cpu_isa_name(k->isa) << " row " << r << " act " << j;
                EXPECT_EQ(multi[j * 3], one) << type_name(t) << " " << cpu_isa_name(k->isa)
                                             << ": several activations per pass must give the single-pass result";
            }
        }
    }
}

TEST_P(VecDot, ScalarMatchesDequantizedDot) {
    const GgmlType t = GetParam();
    GET_KERNEL(scalar, t, CpuIsa::Scalar);
    if (!format_info(t).can_dequantize) GTEST_SKIP() << type_name(t) << ": formats/ has no dequantize_row yet";
    std::mt19937 rng(7 + (int)t);
    const int64_t n = 4096;
    const Bytes w = craft_weights(t, n, rng);
    const std::vector<double> wd = dequant_weights(t, w.data(), n);
    for (int rep = 0; rep < 4; rep++) {
        const std::vector<float> x = craft_acts(n, rng, rep == 3 ? 1e-3f : 1.0f);
        const Bytes a = quantize_scalar(*scalar, x);
        const DequantRef ref = dequant_dot(wd, dequant_act(scalar->act, a.data(), n));
        float got = 0;
        scalar->dot(n, w.data(), a.data(), 0, &got, 1, 1);
        const double tol = 1e-5 * ref.abs + q8_1_sum_rounding(t, w.data(), a.data(), n) + 1e-30;
        EXPECT_NEAR(got, ref.dot, tol) << type_name(t) << " rep " << rep;
    }
}

// The real testdata blocks (gguf-py quantized and crafted arbitrary bit patterns) as weight rows,
// with their expected dequantization from the same folder as the double-precision reference.
TEST_P(VecDot, TestdataBlocks) {
    const GgmlType t = GetParam();
    const std::string blocks = testdata("quants/" + testdata_name(t) + ".blocks.bin");
    const std::string f32 = testdata("quants/" + testdata_name(t) + ".f32.bin");
    ROTOR_REQUIRE_TESTDATA(blocks);
    GET_KERNEL(scalar, t, CpuIsa::Scalar);
    const Bytes w = to_bytes(read_file(blocks));
    const std::vector<uint8_t> fb = read_file(f32);
    std::vector<float> expect(fb.size() / 4);
    memcpy(expect.data(), fb.data(), fb.size());
    const int64_t row = 256, n_rows = (int64_t)expect.size() / row;
    ASSERT_EQ((size_t)row_bytes(t, (uint64_t)(row * n_rows)), w.size);
    std::mt19937 rng(99 + (int)t);
    // Keep products of the float formats' extreme values (up to ~3e38) finite.
    float wmax = 0;
    for (float v : expect) wmax = std::max(wmax, std::fabs(v));
    const float xscale = wmax > 1e4f ? 1e4f / wmax : 1.0f;
    int checked = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t* wr = w.data() + r * row_bytes(t, row);
        const std::vector<float> x = craft_acts(row, rng, xscale);
        const Bytes a = quantize_scalar(*scalar, x);
        const std::vector<double> wd(expect.begin() + r * row, expect.begin() + (r + 1) * row);
        const DequantRef ref = dequant_dot(wd, dequant_act(scalar->act, a.data(), row));
        float want = 0;
        scalar->dot(row, wr, a.data(), 0, &want, 1, 1);
        const double tol = 1e-5 * ref.abs + q8_1_sum_rounding(t, wr, a.data(), row) + 1e-30;
        EXPECT_NEAR(want, ref.dot, tol) << type_name(t) << " scalar, testdata row " << r;
        for (CpuIsa isa : supported_isas()) {
            const VecDotKernel* k = vec_dot_kernel(t, isa);
            if (k->isa != isa || isa == CpuIsa::Scalar) continue;  // each distinct SIMD kernel once
            float got = 0;
            k->dot(row, wr, a.data(), 0, &got, 1, 1);
            std::vector<double> wabs(wd);
            for (double& v : wabs) v = std::fabs(v);
            const double bound = lane_bound(*k, wabs, a.data(), row) + min_term_abs(t, wr, a.data(), k->act, row);
            EXPECT_NEAR(got, want, simd_tolerance(*k, bound, row))
                << type_name(t) << " " << cpu_isa_name(k->isa) << ", testdata row " << r;
        }
        checked++;
    }
    EXPECT_GT(checked, 0);
}

TEST_P(VecDot, OddLengthsAndZeroActivations) {
    const GgmlType t = GetParam();
    GET_KERNEL(scalar, t, CpuIsa::Scalar);
    std::mt19937 rng(5 + (int)t);
    // One chunk, three chunks (odd block counts), and for float weights a length with a tail.
    const int64_t c = chunk_elems(*scalar);
    std::vector<int64_t> lengths = {c, 3 * c, 17 * c};
    if (c == 1) lengths = {1, 7, 37, 1001};
    for (int64_t n : lengths) {
        const Bytes w = craft_weights(t, n, rng);
        std::vector<float> x = craft_acts(n, rng);
        const Bytes a = quantize_scalar(*scalar, x);
        const std::vector<float> zeros((size_t)n, 0.0f);
        const Bytes az = quantize_scalar(*scalar, zeros);
        float want = 0;
        scalar->dot(n, w.data(), a.data(), 0, &want, 1, 1);
        for (CpuIsa isa : supported_isas()) {
            const VecDotKernel* k = vec_dot_kernel(t, isa);
            float got = 0, z = 1;
            k->dot(n, w.data(), a.data(), 0, &got, 1, 1);
            k->dot(n, w.data(), az.data(), 0, &z, 1, 1);
            const double bound =
                lane_bound(*k, weight_magnitudes(*scalar, w.data(), n), a.data(), n) + min_term_abs(t, w.data(), a.data(), k->act, n);
            EXPECT_NEAR(got, want, simd_tolerance(*k, bound, n))
                << type_name(t) << " " << cpu_isa_name(k->isa) << " n=" << n;
            EXPECT_EQ(z, 0.0f) << type_name(t) << " " << cpu_isa_name(k->isa) << ": zero activations";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, VecDot, ::testing::ValuesIn(cpu_weight_types()), param_name);
