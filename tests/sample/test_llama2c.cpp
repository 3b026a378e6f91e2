// SamplerMode::Llama2c: llama2.c run.c's xorshift64* stream and its sampler. Expected values are
// derived from run.c's formulas by hand (or by Python big-integer arithmetic), not from rotor's code.
// The end-to-end check against reference/sample_t1.0_p0.9_s133742_n256.tokens needs the forward pass.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sample/rng.h"
#include "sample/sampler.h"

namespace {

using rotor::Sampler;
using rotor::SamplerParams;
using rotor::XorShift64Star;

TEST(Llama2cRng, SeedOneByHand) {
    // state 1: 1 ^ (1 >> 12) = 1; 1 ^ (1 << 25) = 0x2000001; 0x2000001 ^ (0x2000001 >> 27) = 0x2000001.
    // 0x2000001 * 0x2545F4914F6CDD1D mod 2^64 = 0x2545F4914F6CDD1D + 0x229ED9BA3A000000
    //                                         = 0x47E4CE4B896CDD1D; >> 32 = 0x47E4CE4B = 1206177355.
    XorShift64Star r(1);
    EXPECT_EQ(r.next_u32(), 1206177355u);
    EXPECT_EQ(r.state(), 0x2000001ull);
}

TEST(Llama2cRng, Seed133742) {
    // random_u32 / random_f32 for run.c's -s 133742 (Python, exact integer arithmetic)
    XorShift64Star r(133742);
    EXPECT_EQ(r.next_u32(), 3033531262u);
    EXPECT_EQ(r.state(), 0x4149c0288ddull);
    EXPECT_EQ(r.next_u32(), 2674377904u);
    EXPECT_EQ(r.state(), 0x29ba928000191853ull);
    XorShift64Star f(133742);
    // (u32 >> 8) / 2^24 is exact in float
    EXPECT_EQ(f.next_f32(), 11849731.0f / 16777216.0f);
    EXPECT_EQ(f.next_f32(), 10446788.0f / 16777216.0f);
    EXPECT_EQ(f.next_f32(), 9034627.0f / 16777216.0f);
    EXPECT_EQ(f.next_f32(), 8935217.0f / 16777216.0f);
}

// Coins for seed 133742: 0.70630, 0.62268, 0.53851, 0.53258 (see above).
std::vector<int> run(Sampler& s, const std::vector<float>& logits, int steps) {
    std::vector<int> out;
    for (int i = 0; i < steps; i++) {
        std::vector<float> w = logits;
        out.push_back(s.sample(w.data(), static_cast<int>(w.size())));
    }
    return out;
}

TEST(Llama2cSampler, TopP) {
    // p = {0.1, 0.05, 0.5, 0.3, 0.05}; top_p 0.7: cutoff 0.3/4 = 0.075 keeps ids 0, 2, 3; sorted 2, 3, 0;
    // the running sum exceeds 0.7 at id 3 (0.8): r = coin * 0.8 = 0.565, 0.498, 0.431, 0.426
    // -> 3 (0.565 >= 0.5), then 2, 2, 2.
    const std::vector<float> logits = {std::log(0.1f), std::log(0.05f), std::log(0.5f), std::log(0.3f),
                                       std::log(0.05f)};
    Sampler s(SamplerParams::llama2c(1.0f, 0.7f, 133742));
    EXPECT_EQ(s.seed(), 133742u);
    EXPECT_EQ(run(s, logits, 4), (std::vector<int>{3, 2, 2, 2}));

    // temperature divides the logits first: doubled logits at temperature 2 are the same distribution
    std::vector<float> doubled = logits;
    for (float& l : doubled) l *= 2.0f;
    Sampler t(SamplerParams::llama2c(2.0f, 0.7f, 133742));
    EXPECT_EQ(run(t, doubled, 4), (std::vector<int>{3, 2, 2, 2}));
}

TEST(Llama2cSampler, TiesKeepIndexOrderLikeGlibcQsort) {
    // four equal probabilities 0.25; top_p 0.5: the sum exceeds 0.5 at the third element (0.75).
    // glibc's stable qsort keeps ids 0, 1, 2: r = 0.7063 * 0.75 = 0.530 -> third = id 2; then
    // r = 0.467, 0.404, 0.399 -> id 1. (A reversed tie order would give 1, 2, 2, 2.)
    const std::vector<float> logits = {0.0f, 0.0f, 0.0f, 0.0f};
    Sampler s(SamplerParams::llama2c(1.0f, 0.5f, 133742));
    EXPECT_EQ(run(s, logits, 4), (std::vector<int>{2, 1, 1, 1}));
}

TEST(Llama2cSampler, MultWhenTopPOutsideOpenInterval) {
    // p = {0.6, 0.1, 0.3}; cdf 0.6, 0.7, 1.0; coins 0.706, 0.623, 0.539, 0.533 -> 2, 1, 0, 0
    const std::vector<float> logits = {std::log(0.6f), std::log(0.1f), std::log(0.3f)};
    for (float topp : {0.0f, 1.0f, -0.5f}) {
        Sampler s(SamplerParams::llama2c(1.0f, topp, 133742));
        EXPECT_EQ(run(s, logits, 4), (std::vector<int>{2, 1, 0, 0})) << "top_p=" << topp;
    }
}

TEST(Llama2cSampler, GreedyAndEdgeCases) {
    Sampler g(SamplerParams::llama2c(0.0f, 0.9f, 133742));
    std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f};
    EXPECT_EQ(g.sample(logits.data(), 4), 1);
    // nothing passes the cutoff (1 - 0.1) / 1 = 0.9: run.c would read out of bounds; rotor takes the argmax
    Sampler c(SamplerParams::llama2c(1.0f, 0.1f, 133742));
    std::vector<float> two = {0.0f, 0.0f};
    EXPECT_EQ(c.sample(two.data(), 2), 0);
    std::vector<float> one = {3.0f};
    EXPECT_EQ(c.sample(one.data(), 1), 0);
    // seed 0 (run.c: "use the time") gets a nonzero random seed
    Sampler r(SamplerParams::llama2c(1.0f, 0.9f, 0));
    EXPECT_NE(r.seed(), 0u);
}

TEST(Llama2cSampler, LogprobsDoNotDisturbTheSample) {
    const std::vector<float> logits = {std::log(0.1f), std::log(0.05f), std::log(0.5f), std::log(0.3f),
                                       std::log(0.05f)};
    SamplerParams p = SamplerParams::llama2c(1.0f, 0.7f, 133742);
    p.n_probs = 2;
    Sampler s(p);
    rotor::SampleInfo info;
    std::vector<int> got;
    for (int i = 0; i < 4; i++) {
        std::vector<float> w = logits;
        got.push_back(s.sample(w.data(), 5, &info));
        EXPECT_NEAR(info.logprob, std::log(got.back() == 3 ? 0.3 : 0.5), 1e-6);
        ASSERT_EQ(info.top.size(), 2u);
        EXPECT_EQ(info.top[0].token, 2);
        EXPECT_EQ(info.top[1].token, 3);
    }
    EXPECT_EQ(got, (std::vector<int>{3, 2, 2, 2}));
}

}  // namespace
