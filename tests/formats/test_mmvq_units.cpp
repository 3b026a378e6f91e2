// The int8 mat-vec's units (cuda/mmvq_units.h, the code the CUDA kernel runs per lane), and the tensor-
// core variant's lane code (cuda/mmq_units.h, with the warp's mma emulated), checked on the CPU: a row is copied span by span into 16-byte aligned buffers as the kernel's shared memory
// holds it, every lane's unit is dotted with int8 activations, and the sum must equal the
// dequantized weights times the same activations (in double) to float rounding. Quantized Gaussian
// rows and random bytes (every scale pattern a file may hold), rows that end inside a span.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/mmq_units.h"
#include "cuda/mmvq_units.h"

namespace rotor {
namespace {

struct Act {
    std::vector<int8_t> codes;
    std::vector<float> d, s;
};

// As the GPU's quantize kernel (and the CPU's Q8_0 codes): d = max|x| / 127, codes round(x * (1 / d)).
Act quantize_act(const std::vector<float>& x) {
    Act a;
    const size_t nb = x.size() / 32;
    a.codes.assign((size_t)mmvq::act_row_codes((int64_t)x.size()), 0x55);
    a.d.resize(nb);
    a.s.resize(nb);
    for (size_t b = 0; b < nb; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = std::max(amax, std::fabs(x[32 * b + i]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            const int8_t q = (int8_t)std::roundf(x[32 * b + i] * id);
            a.codes[(size_t)mmvq::act_code_index((int64_t)(32 * b + i))] = q;
            sum += q;
        }
        a.d[b] = d;
        a.s[b] = d * (float)sum;
    }
    return a;
}

// The kernel's walk over one row: spans of kSpanBlocks blocks, lane = unit.
template <GgmlType T>
double unit_row_dot(const uint8_t* row, int64_t n, const Act& a) {
    using U = mmvq::Unit<T>;
    const int64_t nb = n / U::kBlockElems;
    constexpr int kSpan = U::kSpanBlocks * U::kBlockBytes;
    static_assert(U::kSpanBlocks * U::kUnitsPerBlock == 32, "one unit per lane");
    static_assert(kSpan % 16 == 0, "spans start 16-byte aligned");
    alignas(16) uint8_t span[kSpan + 16];
    const mmvq::ActRow x{a.codes.data(), a.d.data(), a.s.data()};
    double sum = 0;
    for (int64_t sp = 0; sp * U::kSpanBlocks < nb; sp++) {
        memset(span, 0xA5, sizeof span);
        const int64_t blocks = std::min<int64_t>(U::kSpanBlocks, nb - sp * U::kSpanBlocks);
        memcpy(span, row + sp * kSpan, (size_t)blocks * U::kBlockBytes);
        for (int lane = 0; lane < 32; lane++) {
            const int jb = lane / U::kUnitsPerBlock, sub = lane % U::kUnitsPerBlock;
            const int64_t blk = sp * U::kSpanBlocks + jb;
            if (blk >= nb) continue;
            typename U::W w;
            U::load(span + jb * U::kBlockBytes, sub, w);
            mmvq::UnitAct<T> xa;
            mmvq::load_unit_act<T>(x, sub, blk * U::kBlockElems, xa);
            sum += mmvq::unit_dot<T>(w, xa);
        }
    }
    return sum;
}

double unit_row_dot(GgmlType t, const uint8_t* row, int64_t n, const Act& a) {
    switch (t) {
        case GgmlType::Q8_0:
            return unit_row_dot<GgmlType::Q8_0>(row, n, a);
        case GgmlType::Q4_0:
            return unit_row_dot<GgmlType::Q4_0>(row, n, a);
        case GgmlType::Q4_K:
            return unit_row_dot<GgmlType::Q4_K>(row, n, a);
        case GgmlType::Q5_K:
            return unit_row_dot<GgmlType::Q5_K>(row, n, a);
        case GgmlType::Q6_K:
            return unit_row_dot<GgmlType::Q6_K>(row, n, a);
        default:
            ADD_FAILURE() << "no unit for " << format_info(t).name;
            return 0;
    }
}

const GgmlType kUnitTypes[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K,
                               GgmlType::Q6_K};

void check_row(GgmlType t, const std::vector<uint8_t>& q, int64_t n, const std::vector<float>& x,
               const char* what) {
    const Act a = quantize_act(x);
    std::vector<float> w((size_t)n);
    dequantize_row(t, q.data(), w.data(), n);
    double ref = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        const double xr = (double)a.d[i / 32] * a.codes[(size_t)mmvq::act_code_index(i)];
        ref += (double)w[i] * xr;
        mag += std::fabs((double)w[i] * xr);
    }
    if (!std::isfinite(ref)) return;  // random bytes may hold inf/nan scales
    const double got = unit_row_dot(t, q.data(), n, a);
    EXPECT_LE(std::fabs(got - ref), 1e-6 * mag + 1e-30) << format_info(t).name << " " << what << " n=" << n;
}

TEST(MmvqUnits, MatchDequantizedWeightsOnQuantizedRows) {
    std::mt19937 rng(11);
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (GgmlType t : kUnitTypes) {
        // whole spans, a row ending inside a span, one block
        for (int64_t n : {int64_t(4096), int64_t(256 * 11), int64_t(256), int64_t(5120)}) {
            std::vector<float> wf((size_t)n), x((size_t)n);
            for (auto& v : wf) v = g(rng) * (1.0f + 3.0f * (g(rng) > 2.0f));
            for (auto& v : x) v = g(rng);
            std::vector<uint8_t> q(row_bytes(t, n));
            quantize_row(t, wf.data(), q.data(), n);
            check_row(t, q, n, x, "quantized");
        }
    }
}

TEST(MmvqUnits, MatchDequantizedWeightsOnRandomBytes) {
    std::mt19937 rng(12);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::uniform_int_distribution<int> byte(0, 255);
    for (GgmlType t : kUnitTypes) {
        const int64_t n = 256 * 9;
        for (int rep = 0; rep < 20; rep++) {
            std::vector<uint8_t> q(row_bytes(t, n));
            for (auto& b : q) b = (uint8_t)byte(rng);
            // keep the f16 scales finite and moderate: clear the top exponent bits
            const FormatInfo& f = format_info(t);
            for (int64_t b = 0; b < n / f.block_elems; b++) {
                uint8_t* blk = q.data() + b * f.block_bytes;
                auto tame = [](uint8_t* h) { h[1] &= 0x3F; };  // |value| < 2
                if (t == GgmlType::Q6_K)
                    tame(blk + 208);
                else if (t == GgmlType::Q4_K || t == GgmlType::Q5_K)
                    tame(blk), tame(blk + 2);
                else
                    tame(blk);
            }
            std::vector<float> x((size_t)n);
            for (auto& v : x) v = g(rng);
            check_row(t, q, n, x, "random bytes");
        }
    }
}

TEST(MmvqUnits, ActivationCodesAreTheCpuQ8_0Codes) {
    std::mt19937 rng(13);
    std::normal_distribution<float> g(0.0f, 2.0f);
    std::vector<float> x(4096);
    for (auto& v : x) v = g(rng);
    for (int i = 64; i < 96; i++) x[i] = 0.0f;  // an all-zero block
    const Act a = quantize_act(x);
    std::vector<block_q8_0> ref(x.size() / 32);
    quantize_row(GgmlType::Q8_0, x.data(), ref.data(), (int64_t)x.size());
    for (size_t b = 0; b < ref.size(); b++) {
        EXPECT_EQ(f32_to_fp16(a.d[b]), ref[b].d) << "block " << b;
        for (int i = 0; i < 32; i++)
            ASSERT_EQ(a.codes[(size_t)mmvq::act_code_index((int64_t)(32 * b + i))], ref[b].qs[i])
                << "block " << b << " code " << i;
    }
}

// The activation code order is a permutation of each 2048-code span, in 16-code chunks.
TEST(MmvqUnits, ActivationCodeOrderIsAPermutation) {
    std::vector<int> hits(3 * mmvq::kActSpan, 0);
    for (int64_t e = 0; e < 3 * mmvq::kActSpan; e++) {
        const int64_t p = mmvq::act_code_index(e);
        ASSERT_EQ(p / mmvq::kActSpan, e / mmvq::kActSpan);
        ASSERT_EQ(p % 16, e % 16);
        hits[(size_t)p]++;
    }
    for (int h : hits) EXPECT_EQ(h, 1);
    EXPECT_EQ(mmvq::act_row_codes(4096), 4096);
    EXPECT_EQ(mmvq::act_row_codes(5120), 6144);
}

// The direct-load kernel (matvec_q8.cu, kernel 3) finds a lane's activation chunks and scales at
// constant distances from its first chunk: true for every lane of every span of the three formats.
template <GgmlType T>
void expect_lane_free_offsets() {
    using U = mmvq::Unit<T>;
    for (int span = 0; span < 3; span++)
        for (int lane = 0; lane < 32; lane++) {
            const int jb = lane / U::kUnitsPerBlock, sub = lane % U::kUnitsPerBlock;
            const int64_t e0 = (int64_t)span * mmvq::kActSpan + jb * U::kBlockElems;
            const int64_t first = mmvq::act_code_index(e0 + U::group_offset(sub, 0));
            for (int g = 0; g < U::kGroups; g++) {
                for (int c = 0; c < U::kGroupElems / 16; c++)
                    ASSERT_EQ(mmvq::act_code_index(e0 + U::group_offset(sub, g) + 16 * c) - first,
                              mmvq::act_chunk_delta<T>(g, c))
                        << format_info(T).name << " lane " << lane << " group " << g << " chunk " << c;
                ASSERT_EQ((e0 + U::group_offset(sub, g)) / 32 - (e0 + U::group_offset(sub, 0)) / 32,
                          mmvq::act_scale_delta<T>(g))
                    << format_info(T).name << " lane " << lane << " group " << g;
            }
        }
}

TEST(MmvqUnits, ActivationOffsetsAreLaneFree) {
    expect_lane_free_offsets<GgmlType::Q4_K>();
    expect_lane_free_offsets<GgmlType::Q5_K>();
    expect_lane_free_offsets<GgmlType::Q6_K>();
}

// The tensor-core kernel's walk over a tile (matvec_mma.cu, mmq_kernel): 16 rows (rows past n_rows
// zero, as the kernel's zero-filled copies), n_tok tokens; every lane's fragments from mmq_units.h, the
// mma emulated from the PTX layouts, the lanes' results gathered into y[t][r]. q6_K blocks are copied
// at a 2-byte aligned offset that differs per row, as a row's blocks sit in the kernel's copies.
std::vector<double> mmq_tile(GgmlType type, const std::vector<uint8_t>& rows, int n_rows, int64_t n,
                             const std::vector<Act>& acts) {
    const bool q6 = type == GgmlType::Q6_K;
    const int bb = q6 ? mmq::kQ6KBlockBytes : mmq::kQ4KBlockBytes;
    const int64_t nb = n / 256;
    const size_t rb = (size_t)nb * bb;
    const int n_tok = (int)acts.size();
    std::vector<double> y((size_t)mmq::kMaxTokens * mmq::kTileRows, 0.0);
    float acc[32][2][4] = {};
    alignas(16) uint8_t copy[mmq::kTileRows][256];
    auto blk = [&](int r) { return copy[r] + (q6 ? 2 * (r % 8) : 0); };
    auto xd = [&](int t, int64_t e0) { return t < n_tok ? acts[(size_t)t].d[(size_t)(e0 / 32)] : 0.0f; };
    auto xs = [&](int t, int64_t e0) { return t < n_tok ? acts[(size_t)t].s[(size_t)(e0 / 32)] : 0.0f; };
    for (int64_t kb = 0; kb < nb; kb++) {
        memset(copy, 0, sizeof copy);
        for (int r = 0; r < n_rows; r++) memcpy(blk(r), rows.data() + r * rb + kb * bb, (size_t)bb);
        for (int j = 0; j < 8; j++) {
            const int64_t e0 = kb * 256 + 32 * j;
            uint32_t a[32][4];
            for (int lane = 0; lane < 32; lane++) {
                const int g = mmq::frag_group(lane);
                if (q6)
                    mmq::q6k_a_frag(blk(g), blk(g + 8), j, mmq::frag_tig(lane), a[lane]);
                else
                    mmq::q4k_a_frag(blk(g), blk(g + 8), j, mmq::frag_tig(lane), a[lane]);
            }
            for (int nt = 0; nt * mmq::kTileTokens < n_tok; nt++) {
                uint32_t b[32][2];
                for (int lane = 0; lane < 32; lane++) {
                    const int tb = nt * 8 + mmq::frag_group(lane);
                    b[lane][0] = b[lane][1] = 0;
                    if (tb < n_tok) mmq::act_b_frag(acts[(size_t)tb].codes.data(), e0, mmq::frag_tig(lane), b[lane]);
                }
                int c[32][4], c_hi[32][4];
                if (q6) {
                    uint32_t a_lo[32][2], a_hi[32][2], b_lo[32], b_hi[32];
                    for (int lane = 0; lane < 32; lane++) {
                        a_lo[lane][0] = a[lane][0], a_lo[lane][1] = a[lane][1], b_lo[lane] = b[lane][0];
                        a_hi[lane][0] = a[lane][2], a_hi[lane][1] = a[lane][3], b_hi[lane] = b[lane][1];
                    }
                    mmq::mma16_emulate(a_lo, b_lo, c);
                    mmq::mma16_emulate(a_hi, b_hi, c_hi);
                } else {
                    mmq::mma_emulate(a, b, c);
                }
                for (int lane = 0; lane < 32; lane++) {
                    const int g = mmq::frag_group(lane), t0 = nt * 8 + 2 * mmq::frag_tig(lane), t1 = t0 + 1;
                    if (q6) {
                        float lo, hi, lo8, hi8;
                        mmq::q6k_scales(blk(g), j, lo, hi);
                        mmq::q6k_scales(blk(g + 8), j, lo8, hi8);
                        mmq::accumulate_q6k(c[lane], c_hi[lane], lo, hi, lo8, hi8, xd(t0, e0), xd(t1, e0), acc[lane][nt]);
                    } else {
                        float cg, mg, cg8, mg8;
                        mmq::q4k_scale_min(blk(g), j, cg, mg);
                        mmq::q4k_scale_min(blk(g + 8), j, cg8, mg8);
                        mmq::accumulate(c[lane], cg, mg, cg8, mg8, xd(t0, e0), xs(t0, e0), xd(t1, e0), xs(t1, e0),
                                        acc[lane][nt]);
                    }
                }
            }
        }
    }
    for (int lane = 0; lane < 32; lane++)
        for (int nt = 0; nt < 2; nt++)
            for (int q = 0; q < 4; q++) {
                const int r = mmq::frag_group(lane) + 8 * (q >> 1), t = nt * 8 + 2 * mmq::frag_tig(lane) + (q & 1);
                y[(size_t)t * mmq::kTileRows + r] = acc[lane][nt][q];
            }
    return y;
}

// Every (row, token) of the tile equals the dequantized weights times the same int8 activations, in
// double, to float rounding; tokens past n_tok and rows past n_rows come out as zero.
TEST(MmqUnits, TilesMatchDequantizedWeights) {
    std::mt19937 rng(14);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::uniform_int_distribution<int> byte(0, 255);
    for (const GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K})
    for (const int n_rows : {16, 11}) {
        for (const int n_tok : {16, 9, 13, 8, 1}) {
            for (const bool random_bytes : {false, true}) {
                const int64_t n = 256 * 5;
                const size_t rb = row_bytes(type, n);
                const int bb = type == GgmlType::Q6_K ? mmq::kQ6KBlockBytes : mmq::kQ4KBlockBytes;
                std::vector<uint8_t> rows(rb * n_rows);
                for (int r = 0; r < n_rows; r++) {
                    uint8_t* q = rows.data() + r * rb;
                    if (random_bytes) {
                        for (size_t i = 0; i < rb; i++) q[i] = (uint8_t)byte(rng);
                        for (int64_t b = 0; b < n / 256; b++) {  // finite d (and dmin)
                            if (type == GgmlType::Q6_K) {
                                q[b * bb + 209] &= 0x3F;
                            } else {
                                q[b * bb + 1] &= 0x3F;
                                q[b * bb + 3] &= 0x3F;
                            }
                        }
                    } else {
                        std::vector<float> wf((size_t)n);
                        for (auto& v : wf) v = g(rng) * (1.0f + 3.0f * (g(rng) > 2.0f));
                        quantize_row(type, wf.data(), q, n);
                    }
                }
                std::vector<Act> acts;
                for (int t = 0; t < n_tok; t++) {
                    std::vector<float> x((size_t)n);
                    for (auto& v : x) v = g(rng);
                    acts.push_back(quantize_act(x));
                }
                const std::vector<double> y = mmq_tile(type, rows, n_rows, n, acts);
                std::vector<float> w((size_t)n);
                for (int r = 0; r < mmq::kTileRows; r++) {
                    if (r < n_rows) dequantize_row(type, rows.data() + r * rb, w.data(), n);
                    for (int t = 0; t < mmq::kMaxTokens; t++) {
                        const double got = y[(size_t)t * mmq::kTileRows + r];
                        if (r >= n_rows || t >= n_tok) {
                            EXPECT_EQ(got, 0.0) << "row " << r << " token " << t;
                            continue;
                        }
                        double ref = 0, mag = 0;
                        for (int64_t i = 0; i < n; i++) {
                            const double xr = (double)acts[(size_t)t].d[(size_t)(i / 32)] *
                                              acts[(size_t)t].codes[(size_t)mmvq::act_code_index(i)];
                            ref += (double)w[(size_t)i] * xr;
                            mag += std::fabs((double)w[(size_t)i] * xr);
                        }
                        EXPECT_LE(std::fabs(got - ref), 2e-6 * mag + 1e-30)
                            << format_info(type).name << " rows " << n_rows << " tokens " << n_tok
                            << (random_bytes ? " random bytes" : "")
                            << ": row " << r << " token " << t;
                    }
                }
            }
        }
    }
}

}  // namespace
}  // namespace rotor
