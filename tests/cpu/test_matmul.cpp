// Mat-mul over the thread pool: every output must equal the single-row dot product of the same
// kernel bit for bit (whatever the thread count, token tiling and reuse width), padding outside
// the output must stay untouched, and the result must match a double-precision reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "common/error.h"
#include "cpu/matmul.h"
#include "cpu/thread_pool.h"
#include "cpu_test_util.h"

using namespace rotor;
using namespace rotor::test;

namespace {

class Matmul : public ::testing::TestWithParam<GgmlType> {};

std::string param_name(const ::testing::TestParamInfo<GgmlType>& p) { return type_name(p.param); }

void check_matmul(GgmlType t, int64_t rows, int64_t cols, CpuIsa isa, ThreadPool* pool, int64_t n_tok, std::mt19937& rng) {
    const VecDotKernel* k = vec_dot_kernel(t, isa);
    ASSERT_NE(k, nullptr);
    const Bytes w = craft_weights(t, rows * cols, rng);
    const WeightMatrix wm{t, rows, cols, w.data()};
    const size_t ldx = (size_t)cols + 5, ldy = (size_t)rows + 3;
    std::vector<float> x((size_t)n_tok * ldx, std::numeric_limits<float>::quiet_NaN());
    for (int64_t tk = 0; tk < n_tok; tk++) {
        const std::vector<float> row = craft_acts(cols, rng);
        std::copy(row.begin(), row.end(), x.begin() + tk * ldx);
    }
    const float sentinel = -12345.0f;
    std::vector<float> y((size_t)n_tok * ldy, sentinel);
    matmul(wm, x.data(), ldx, n_tok, y.data(), ldy, pool, isa);

    const size_t rb = (size_t)row_bytes(t, (uint64_t)cols);
    const bool have_deq = format_info(t).can_dequantize;
    std::vector<std::vector<double>> wd;
    if (have_deq)
        for (int64_t r = 0; r < rows; r++) wd.push_back(dequant_weights(t, w.data() + r * rb, cols));
    Bytes a(act_row_bytes(*k, cols) + 64);
    int bad = 0;
    for (int64_t tk = 0; tk < n_tok && bad < 5; tk++) {
        k->quantize(x.data() + tk * ldx, a.data(), cols);
        const std::vector<double> ad = dequant_act(k->act, a.data(), cols);
        for (int64_t r = 0; r < rows && bad < 5; r++) {
            float want = 0;
            k->dot(cols, w.data() + r * rb, a.data(), 0, &want, 1, 1);
            const float got = y[tk * ldy + r];
            if (got != want) {
                bad++;
                ADD_FAILURE() << type_name(t) << " " << cpu_isa_name(k->isa) << " threads " << (pool ? pool->size() : 1)
                              << " n_tok " << n_tok << ": y[" << tk << "][" << r << "] = " << got << ", dot gives " << want;
            }
            if (have_deq) {
                double ref = 0, abs = 0;
                for (int64_t c = 0; c < cols; c++) ref += wd[r][c] * ad[c], abs += std::fabs(wd[r][c] * ad[c]);
                double extra = 0;  // Q4_1/Q5_1 use the fp16-rounded block sum of the activation
                if (k->act == GgmlType::Q8_1) {
                    for (int64_t b = 0; b < cols / 32; b++) {
                        uint16_t m;
                        memcpy(&m, w.data() + r * rb + b * format_info(t).block_bytes + 2, 2);
                        const auto& yb = reinterpret_cast<const block_q8_1*>(a.data())[b];
                        extra += std::fabs((double)fp16_to_f32(m) * fp16_to_f32(yb.s)) * std::ldexp(1.0, -10);
                    }
                }
                if (std::fabs(got - ref) > 1e-5 * abs + extra + 1e-30) {
                    bad++;
                    ADD_FAILURE() << type_name(t) << " " << cpu_isa_name(k->isa) << " n_tok " << n_tok << ": y[" << tk
                                  << "][" << r << "] = " << got << ", double reference " << ref;
                }
            }
        }
        for (int64_t r = rows; r < (int64_t)ldy; r++) ASSERT_EQ(y[tk * ldy + r], sentinel) << "wrote past the row end";
    }
}

}  // namespace

TEST_P(Matmul, TokensThreadsAndIsas) {
    const GgmlType t = GetParam();
    ASSERT_NE(vec_dot_kernel(t, CpuIsa::Scalar), nullptr) << type_name(t);
    if (!format_info(t).can_dequantize)
        std::printf("[ note     ] %s: no dequantize_row in formats/ yet; checking against the row dots only\n",
                    type_name(t).c_str());
    std::mt19937 rng(17 + (int)t);
    ThreadPool pool2(2);
    // 301 rows: odd, not a multiple of the thread count, and big enough to be split over threads.
    const int64_t rows = 301, cols = 1024;
    for (CpuIsa isa : {CpuIsa::Scalar, cpu_isa_best()}) {
        const VecDotKernel* k = vec_dot_kernel(t, isa);
        std::printf("[ isa      ] %s matmul at %s: dot %s (reuse %d), quantize %s\n", type_name(t).c_str(),
                    std::string(cpu_isa_name(isa)).c_str(), std::string(cpu_isa_name(k->isa)).c_str(), k->reuse,
                    std::string(cpu_isa_name(k->quantize_isa)).c_str());
        for (ThreadPool* pool : {(ThreadPool*)nullptr, &pool2})
            for (int64_t n_tok : {1, 3, 17}) check_matmul(t, rows, cols, isa, pool, n_tok, rng);
    }
    check_matmul(t, 1, cols, cpu_isa_best(), &pool2, 3, rng);  // a single row
    check_matmul(t, 7, 256, cpu_isa_best(), &pool2, 5, rng);   // too small to split
}

INSTANTIATE_TEST_SUITE_P(AllFormats, Matmul, ::testing::ValuesIn(cpu_weight_types()), param_name);

TEST(MatmulApi, RejectsBadShapes) {
    std::vector<uint8_t> w(1024);
    float x[64] = {}, y[4] = {};
    EXPECT_THROW(matmul(WeightMatrix{GgmlType::Q4_K, 1, 100, w.data()}, x, 100, 1, y, 1), Error);
    EXPECT_THROW(matmul(WeightMatrix{GgmlType::I32, 1, 16, w.data()}, x, 16, 1, y, 1), Error);
}

TEST(MatmulApi, SharedQuantizedActivations) {
    // Quantize once, multiply by two weights of the same activation type (the Q/K/V pattern).
    std::mt19937 rng(3);
    const int64_t cols = 512, n_tok = 5;
    const Bytes w1 = craft_weights(GgmlType::Q4_K, 64 * cols, rng), w2 = craft_weights(GgmlType::Q6_K, 32 * cols, rng);
    const WeightMatrix m1{GgmlType::Q4_K, 64, cols, w1.data()}, m2{GgmlType::Q6_K, 32, cols, w2.data()};
    const std::vector<float> x = craft_acts(n_tok * cols, rng);
    ThreadPool pool(2);
    const VecDotKernel* k1 = vec_dot_kernel(GgmlType::Q4_K);
    const VecDotKernel* k2 = vec_dot_kernel(GgmlType::Q6_K);
    ASSERT_EQ(k1->act, k2->act);
    QuantizedActs qa;
    quantize_acts(k1->act, x.data(), cols, n_tok, cols, qa, &pool, k1->quantize_isa);
    std::vector<float> y1(n_tok * 64), y2(n_tok * 32), r1(n_tok * 64), r2(n_tok * 32);
    matmul_quantized(m1, *k1, qa, y1.data(), 64, &pool);
    matmul_quantized(m2, *k2, qa, y2.data(), 32, &pool);
    matmul(m1, x.data(), cols, n_tok, r1.data(), 64, nullptr);
    matmul(m2, x.data(), cols, n_tok, r2.data(), 32, nullptr);
    EXPECT_EQ(y1, r1);
    EXPECT_EQ(y2, r2);
}
