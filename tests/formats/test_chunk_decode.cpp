// The 8-element chunk decoders (formats/chunk_decode.h) that the CUDA kernels run, checked on the CPU
// against the reference dequantizer, bit for bit: on quantized Gaussian rows and on random bytes
// (every bit pattern a file may hold, scales included).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "formats/chunk_decode.h"
#include "formats/iq_tables.h"

namespace rotor {
namespace {

const GgmlType kChunkTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                                GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::IQ4_NL, GgmlType::Q2_K,
                                GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_XS};

// Decodes a whole row chunk by chunk.
std::vector<float> decode_by_chunks(GgmlType t, const std::vector<uint8_t>& row, int64_t n) {
    std::vector<float> out((size_t)n);
    const bool known = with_chunk_decoder(t, [&]<GgmlType T>() {
        using D = ChunkDecoder<T>;
        EXPECT_EQ((uint32_t)D::kBlockElems % 8, 0u);
        EXPECT_EQ(row_bytes(t, D::kBlockElems), (uint64_t)D::kBlockBytes) << format_info(t).name;
        for (int64_t c = 0; c < n / 8; c++) {
            const int64_t blk = c / (D::kBlockElems / 8);
            D::decode8(row.data() + blk * D::kBlockBytes, (int)(c % (D::kBlockElems / 8)), &out[(size_t)c * 8]);
        }
    });
    EXPECT_TRUE(known) << format_info(t).name;
    return out;
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); i++) {
        if (std::isnan(a[i]) && std::isnan(b[i])) continue;
        uint32_t x, y;
        memcpy(&x, &a[i], 4);
        memcpy(&y, &b[i], 4);
        ASSERT_EQ(x, y) << what << " element " << i << ": chunk " << a[i] << " reference " << b[i];
    }
}

TEST(ChunkDecode, MatchesReferenceOnQuantizedRows) {
    std::mt19937 rng(7);
    std::normal_distribution<float> g(0.0f, 1.0f);
    const int64_t n = 1024;
    for (GgmlType t : kChunkTypes) {
        const FormatInfo& f = format_info(t);
        if (!f.can_quantize) continue;  // covered by the random-bytes test below
        std::vector<float> x((size_t)n);
        for (auto& v : x) v = g(rng) * (1.0f + 3.0f * (g(rng) > 2.0f));  // a few outliers
        std::vector<uint8_t> q(row_bytes(t, n));
        quantize_row(t, x.data(), q.data(), n);
        std::vector<float> ref((size_t)n);
        dequantize_row(t, q.data(), ref.data(), n);
        expect_same_bits(decode_by_chunks(t, q, n), ref, std::string(f.name).c_str());
    }
}

TEST(ChunkDecode, MatchesReferenceOnRandomBytes) {
    std::mt19937 rng(11);
    const int64_t n = 2048;
    for (GgmlType t : kChunkTypes) {
        const FormatInfo& f = format_info(t);
        for (int trial = 0; trial < 8; trial++) {
            std::vector<uint8_t> q(row_bytes(t, n));
            for (auto& b : q) b = (uint8_t)rng();
            std::vector<float> ref((size_t)n);
            dequantize_row(t, q.data(), ref.data(), n);
            expect_same_bits(decode_by_chunks(t, q, n), ref, std::string(f.name).c_str());
        }
    }
}

TEST(ChunkDecode, Iq4CodebookIsTheFormatsOne) {
    for (int i = 0; i < 16; i++) EXPECT_EQ(chunk_detail::iq4nl(i), kIq4nlValues[i]) << i;
}

TEST(ChunkDecode, TypesWithoutDecoderAreRefused) {
    EXPECT_FALSE(with_chunk_decoder(GgmlType::IQ2_XXS, []<GgmlType>() {}));
    EXPECT_FALSE(with_chunk_decoder(GgmlType::TQ1_0, []<GgmlType>() {}));
}

}  // namespace
}  // namespace rotor

namespace rotor {
namespace {

// The integer form (codes8: element = d * code + m, codes as int8 lanes) against decode8, on the
// same quantized and random rows; equal up to float rounding of the two formulas.
TEST(ChunkDecode, IntegerCodesMatchDecode) {
    std::mt19937 rng(5);
    std::normal_distribution<float> g(0.0f, 1.0f);
    const int64_t n = 1024;
    int checked = 0;
    for (GgmlType t : kChunkTypes) {
        with_chunk_decoder(t, [&]<GgmlType T>() {
            if constexpr (kHasCodes8<T>) {
                using D = ChunkDecoder<T>;
                checked++;
                for (int trial = 0; trial < 4; trial++) {
                    std::vector<uint8_t> q(row_bytes(t, n));
                    if (trial < 2) {
                        std::vector<float> x((size_t)n);
                        for (auto& v : x) v = g(rng);
                        quantize_row(t, x.data(), q.data(), n);
                    } else {
                        for (auto& b : q) b = (uint8_t)rng();
                    }
                    for (int64_t c = 0; c < n / 8; c++) {
                        const uint8_t* blk = q.data() + (c / (D::kBlockElems / 8)) * D::kBlockBytes;
                        const int ci = (int)(c % (D::kBlockElems / 8));
                        float ref[8], d = 0, m = 0;
                        uint32_t w[2];
                        D::decode8(blk, ci, ref);
                        D::codes8(blk, ci, w, d, m);
                        for (int i = 0; i < 8; i++) {
                            const int code = (int8_t)(uint8_t)(w[i / 4] >> (8 * (i % 4)));
                            const float got = d * (float)code + m;
                            if (!std::isfinite(ref[i]) || !std::isfinite(got)) continue;  // random scale bits
                            const float tol = 1e-6f * (std::fabs(d) * 128.0f + std::fabs(m)) + 1e-30f;
                            ASSERT_NEAR(got, ref[i], tol) << format_info(t).name << " chunk " << c << " elem " << i;
                        }
                    }
                }
            }
        });
    }
    EXPECT_EQ(checked, 5);  // q8_0, q4_0, q4_K, q5_K, q6_K
}

}  // namespace
}  // namespace rotor
