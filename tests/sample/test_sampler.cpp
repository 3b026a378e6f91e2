// rotor::Sampler in its default (llama.cpp-style) mode: greedy, truncation sets, distributions,
// penalties, logit bias, seeding, log-probabilities, parameter validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <vector>

#include "common/error.h"
#include "sample/rng.h"
#include "sample/sampler.h"

namespace {

using rotor::Sampler;
using rotor::SamplerParams;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Deterministic test logits in [lo, hi) (test-side generator, independent of the sampler's stream).
std::vector<float> make_logits(int n, uint64_t seed, float lo = -4.0f, float hi = 6.0f) {
    uint64_t x = seed;
    std::vector<float> v(n);
    for (float& f : v) f = lo + (hi - lo) * static_cast<float>(rotor::splitmix64(x) >> 40) / 16777216.0f;
    return v;
}

// Parameters with every stage off; tests switch on what they exercise.
SamplerParams plain(float temperature, int64_t seed) {
    SamplerParams p;
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

std::vector<int> histogram(Sampler& s, const std::vector<float>& logits, int draws) {
    std::vector<int> counts(logits.size(), 0);
    std::vector<float> work;
    for (int i = 0; i < draws; i++) {
        work = logits;
        const int t = s.sample(work.data(), static_cast<int>(work.size()));
        EXPECT_GE(t, 0);
        EXPECT_LT(t, static_cast<int>(logits.size()));
        counts[t]++;
    }
    return counts;
}

std::set<int> support(const std::vector<int>& counts) {
    std::set<int> s;
    for (size_t i = 0; i < counts.size(); i++)
        if (counts[i] > 0) s.insert(static_cast<int>(i));
    return s;
}

// Token ids in descending logit order, ties by lower id.
std::vector<int> order_desc(const std::vector<float>& logits) {
    std::vector<int> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    return ids;
}

std::vector<double> softmax_d(const std::vector<float>& logits, double temperature = 1.0) {
    double mx = -std::numeric_limits<double>::infinity();
    for (float l : logits) mx = std::max(mx, static_cast<double>(l));
    std::vector<double> p(logits.size());
    double z = 0;
    for (size_t i = 0; i < logits.size(); i++) z += p[i] = std::exp((logits[i] - mx) / temperature);
    for (double& x : p) x /= z;
    return p;
}

// Expected sets, computed directly from the definitions in sampler.h (temperature 1, double).
std::set<int> expect_top_k(const std::vector<float>& l, int k) {
    const auto ids = order_desc(l);
    return std::set<int>(ids.begin(), ids.begin() + k);
}
std::set<int> expect_top_p(const std::vector<float>& l, double top_p) {
    const auto p = softmax_d(l);
    std::set<int> s;
    double cum = 0;
    for (int id : order_desc(l)) {
        s.insert(id);
        cum += p[id];
        if (cum >= top_p) break;
    }
    return s;
}
std::set<int> expect_min_p(const std::vector<float>& l, double min_p) {
    const auto p = softmax_d(l);
    const double pmax = *std::max_element(p.begin(), p.end());
    std::set<int> s;
    for (size_t i = 0; i < l.size(); i++)
        if (p[i] >= min_p * pmax) s.insert(static_cast<int>(i));
    return s;
}

// Upper 0.999 quantile of chi-square with df degrees of freedom (Wilson-Hilferty).
double chi2_bound(int df) {
    const double z = 3.0902;  // standard normal 0.999 quantile
    const double a = 2.0 / (9.0 * df);
    return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

// Chi-square statistic of counts restricted to `set` against p ∝ exp(logit / temperature) on the set.
double chi2(const std::vector<int>& counts, const std::vector<float>& logits, const std::set<int>& set,
            double temperature) {
    std::vector<float> sub;
    for (int id : set) sub.push_back(logits[id]);
    const auto p = softmax_d(sub, temperature);
    int total = 0;
    for (int c : counts) total += c;
    double stat = 0;
    size_t k = 0;
    for (int id : set) {
        const double e = p[k++] * total;
        EXPECT_GE(e, 5.0) << "test setup: expected count too small for token " << id;
        stat += (counts[id] - e) * (counts[id] - e) / e;
    }
    return stat;
}

// ---- greedy

TEST(Sampler, GreedyIsArgmax) {
    for (uint64_t seed = 1; seed <= 20; seed++) {
        auto logits = make_logits(1000, seed);
        const int expect = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        SamplerParams p;  // llama.cpp defaults for everything else: greedy ignores truncation
        p.temperature = 0.0f;
        Sampler s(p);
        EXPECT_EQ(s.sample(logits.data(), 1000), expect);
    }
}

TEST(Sampler, GreedyTiesPickLowestIndex) {
    std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 3.0f, 0.5f};
    Sampler s(SamplerParams::greedy());
    EXPECT_EQ(s.sample(logits.data(), 6), 1);
    std::vector<float> neg = {-5.0f, -kInf, -1.0f, -1.0f};
    EXPECT_EQ(s.sample(neg.data(), 4), 2);
    SamplerParams p = SamplerParams::greedy();
    p.temperature = -1.0f;  // negative is greedy too
    Sampler s2(p);
    std::vector<float> first = {7.0f, 7.0f};
    EXPECT_EQ(s2.sample(first.data(), 2), 0);
}

TEST(Sampler, GreedyAfterBiasAndPenalties) {
    // raw argmax is 0; the bias and the penalties move it, and greedy follows the modified logits
    std::vector<float> logits = {5.0f, 4.0f, 3.9f, 1.0f};
    SamplerParams p = SamplerParams::greedy();
    p.logit_bias[1] = -3.0f;
    p.repetition_penalty = 2.0f;
    p.penalty_last_n = 8;
    Sampler s(p);
    s.accept(0);  // 5 -> 2.5
    // expected logits: {2.5, 1.0, 3.9, 1.0} -> 2
    EXPECT_EQ(s.sample(logits.data(), 4), 2);
    EXPECT_FLOAT_EQ(logits[0], 2.5f);
    EXPECT_FLOAT_EQ(logits[1], 1.0f);
}

TEST(Sampler, NoPossibleTokenThrows) {
    std::vector<float> logits = {-kInf, std::nanf(""), -kInf};
    Sampler g(SamplerParams::greedy());
    EXPECT_THROW(g.sample(logits.data(), 3), rotor::Error);
    Sampler s(plain(1.0f, 1));
    EXPECT_THROW(s.sample(logits.data(), 3), rotor::Error);
    EXPECT_THROW(s.sample(logits.data(), 0), rotor::Error);
}

// ---- truncation: exact candidate sets (high temperature makes every kept token likely) and
// ---- distributions (chi-square at a moderate temperature, fixed seed)

TEST(Sampler, TopKSet) {
    const auto logits = make_logits(50, 7);
    for (int k : {1, 3, 10, 49}) {
        SamplerParams p = plain(1000.0f, 11 + k);
        p.top_k = k;
        Sampler s(p);
        EXPECT_EQ(support(histogram(s, logits, 4000)), expect_top_k(logits, k)) << "k=" << k;
    }
}

TEST(Sampler, TopKDistribution) {
    const auto logits = make_logits(40, 8, -1.0f, 1.0f);
    SamplerParams p = plain(1.3f, 4242);
    p.top_k = 6;
    Sampler s(p);
    const auto counts = histogram(s, logits, 30000);
    const auto set = expect_top_k(logits, 6);
    EXPECT_EQ(support(counts), set);
    EXPECT_LT(chi2(counts, logits, set, 1.3), chi2_bound(5));
}

TEST(Sampler, TopKTiesAtTheBoundaryKeepLowerIds) {
    std::vector<float> logits = {1.0f, 2.0f, 1.0f, 1.0f, 0.0f};
    SamplerParams p = plain(1000.0f, 3);
    p.top_k = 3;
    Sampler s(p);
    EXPECT_EQ(support(histogram(s, logits, 2000)), (std::set<int>{0, 1, 2}));
}

TEST(Sampler, TopPSet) {
    const auto logits = make_logits(60, 9);
    for (double top_p : {0.0, 0.3, 0.6, 0.9, 0.99}) {
        SamplerParams p = plain(1000.0f, 5);
        p.top_p = static_cast<float>(top_p);
        Sampler s(p);
        EXPECT_EQ(support(histogram(s, logits, 6000)), expect_top_p(logits, static_cast<float>(top_p)))
            << "top_p=" << top_p;
    }
}

TEST(Sampler, TopPSetOnLargeVocabulary) {
    // no top-k: the nucleus (a few hundred tokens) is found by sorting growing chunks
    const auto logits = make_logits(10000, 10, 0.0f, 8.0f);
    SamplerParams p = plain(1e6f, 6);
    p.top_p = 0.2f;
    Sampler s(p);
    const auto expect = expect_top_p(logits, 0.2f);
    ASSERT_GT(expect.size(), 200u);
    ASSERT_LT(expect.size(), 400u);
    EXPECT_EQ(support(histogram(s, logits, 5000)), expect);
}

TEST(Sampler, TopPDistribution) {
    const auto logits = make_logits(30, 12, -2.0f, 2.0f);
    SamplerParams p = plain(0.8f, 99);
    p.top_p = 0.5f;
    Sampler s(p);
    const auto counts = histogram(s, logits, 30000);
    const auto set = expect_top_p(logits, 0.5f);
    ASSERT_GE(set.size(), 3u);
    EXPECT_EQ(support(counts), set);
    EXPECT_LT(chi2(counts, logits, set, 0.8), chi2_bound(static_cast<int>(set.size()) - 1));
}

TEST(Sampler, MinPSet) {
    const auto logits = make_logits(80, 13);
    for (double min_p : {0.01, 0.1, 0.5, 1.0}) {
        SamplerParams p = plain(1000.0f, 17);
        p.min_p = static_cast<float>(min_p);
        Sampler s(p);
        EXPECT_EQ(support(histogram(s, logits, 6000)), expect_min_p(logits, min_p)) << "min_p=" << min_p;
    }
}

TEST(Sampler, MinPDistribution) {
    const auto logits = make_logits(25, 14, -3.0f, 1.0f);
    SamplerParams p = plain(1.0f, 1234);
    p.min_p = 0.2f;
    Sampler s(p);
    const auto counts = histogram(s, logits, 30000);
    const auto set = expect_min_p(logits, 0.2);
    ASSERT_GE(set.size(), 3u);
    EXPECT_EQ(support(counts), set);
    EXPECT_LT(chi2(counts, logits, set, 1.0), chi2_bound(static_cast<int>(set.size()) - 1));
}

TEST(Sampler, ChainTopKTopPMinP) {
    // top-k 20, then top-p over the renormalised 20, then min-p against the max
    const auto logits = make_logits(200, 15, -2.0f, 3.0f);
    const auto k_set = expect_top_k(logits, 20);
    std::vector<float> sub;
    std::vector<int> ids(k_set.begin(), k_set.end());
    for (int id : ids) sub.push_back(logits[id]);
    std::set<int> expect;
    for (int j : expect_top_p(sub, 0.8)) expect.insert(ids[j]);
    const float lmax = *std::max_element(logits.begin(), logits.end());
    for (auto it = expect.begin(); it != expect.end();)
        it = logits[*it] >= lmax + std::log(0.3f) ? std::next(it) : expect.erase(it);

    SamplerParams p = plain(1000.0f, 77);
    p.top_k = 20;
    p.top_p = 0.8f;
    p.min_p = 0.3f;
    Sampler s(p);
    EXPECT_EQ(support(histogram(s, logits, 5000)), expect);
}

TEST(Sampler, MinKeep) {
    const auto logits = make_logits(40, 16);
    SamplerParams p = plain(1000.0f, 5);
    p.top_p = 0.0f;  // would keep 1
    p.min_keep = 4;
    Sampler s(p);
    EXPECT_EQ(support(histogram(s, logits, 3000)), expect_top_k(logits, 4));
    SamplerParams q = plain(1000.0f, 5);
    q.min_p = 1.0f;  // would keep 1
    q.min_keep = 3;
    Sampler s2(q);
    EXPECT_EQ(support(histogram(s2, logits, 3000)), expect_top_k(logits, 3));
}

TEST(Sampler, TypicalSet) {
    const auto logits = make_logits(30, 17);
    const auto prob = softmax_d(logits);
    double entropy = 0;
    for (double x : prob) entropy -= x * std::log(x);
    std::vector<int> ids(30);
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) {
        return std::fabs(-std::log(prob[a]) - entropy) < std::fabs(-std::log(prob[b]) - entropy);
    });
    std::set<int> expect;
    double cum = 0;
    for (int id : ids) {
        expect.insert(id);
        cum += prob[id];
        if (cum > 0.5) break;
    }
    SamplerParams p = plain(1000.0f, 21);
    p.typical_p = 0.5f;
    Sampler s(p);
    EXPECT_EQ(support(histogram(s, logits, 4000)), expect);
}

TEST(Sampler, FullDistribution) {
    const auto logits = make_logits(12, 18, -1.0f, 1.5f);
    Sampler s(plain(1.0f, 31337));
    const auto counts = histogram(s, logits, 40000);
    std::set<int> all;
    for (int i = 0; i < 12; i++) all.insert(i);
    EXPECT_LT(chi2(counts, logits, all, 1.0), chi2_bound(11));
}

// ---- penalties and bias

TEST(Sampler, PenaltiesExactFormula) {
    const std::vector<float> base = {2.0f, -1.5f, 0.0f, 3.25f, -0.25f, 1.0f, 7.0f};
    const float rep = 1.3f, freq = 0.2f, pres = 0.5f;
    auto expected = [&](const std::vector<int>& counts) {
        std::vector<float> e = base;
        for (size_t t = 0; t < e.size(); t++) {
            if (counts[t] == 0) continue;
            e[t] = e[t] <= 0.0f ? e[t] * rep : e[t] / rep;
            e[t] -= static_cast<float>(counts[t]) * freq + 1.0f * pres;
        }
        return e;
    };
    SamplerParams p = SamplerParams::greedy();
    p.repetition_penalty = rep;
    p.frequency_penalty = freq;
    p.presence_penalty = pres;
    p.penalty_last_n = 4;
    Sampler s(p);
    for (int t : {0, 0, 1, 2, 0, 4, 1}) s.accept(t);  // window: 2 0 4 1
    std::vector<float> work = base;
    s.sample(work.data(), 7);
    EXPECT_EQ(work, expected({1, 1, 1, 0, 1, 0, 0}));

    s.accept(1);
    s.accept(1);  // window: 4 1 1 1
    work = base;
    s.sample(work.data(), 7);
    EXPECT_EQ(work, expected({0, 3, 0, 0, 1, 0, 0}));

    s.reset();
    work = base;
    s.sample(work.data(), 7);
    EXPECT_EQ(work, base);

    // unbounded window counts everything since reset()
    p.penalty_last_n = -1;
    Sampler all(p);
    for (int t : {3, 3, 3, 6, 0, 3}) all.accept(t);
    work = base;
    all.sample(work.data(), 7);
    EXPECT_EQ(work, expected({1, 0, 0, 4, 0, 0, 1}));

    // window 0 disables; ids beyond the vocabulary are ignored
    p.penalty_last_n = 0;
    Sampler off(p);
    off.accept(2);
    work = base;
    off.sample(work.data(), 7);
    EXPECT_EQ(work, base);
    p.penalty_last_n = 10;
    Sampler big(p);
    big.accept(100);
    work = base;
    big.sample(work.data(), 7);
    EXPECT_EQ(work, base);
}

TEST(Sampler, PenaltyChangesTheChoice) {
    std::vector<float> logits = {3.0f, 2.9f};
    SamplerParams p = SamplerParams::greedy();
    p.presence_penalty = 0.2f;
    Sampler s(p);
    std::vector<float> w = logits;
    EXPECT_EQ(s.sample(w.data(), 2), 0);
    s.accept(0);
    w = logits;
    EXPECT_EQ(s.sample(w.data(), 2), 1);
}

TEST(Sampler, LogitBias) {
    std::vector<float> logits = {1.0f, 2.0f, 3.0f, 4.0f};
    SamplerParams p = plain(1000.0f, 8);
    p.logit_bias[3] = -kInf;     // banned
    p.logit_bias[0] = 0.5f;      // added exactly
    p.logit_bias[1000] = 50.0f;  // outside the vocabulary: ignored
    Sampler s(p);
    std::vector<float> w = logits;
    s.sample(w.data(), 4);
    EXPECT_EQ(w[0], 1.5f);
    EXPECT_EQ(w[1], 2.0f);
    EXPECT_EQ(w[3], -kInf);
    EXPECT_EQ(support(histogram(s, logits, 2000)), (std::set<int>{0, 1, 2}));

    SamplerParams g = SamplerParams::greedy();
    g.logit_bias[0] = 10.0f;
    Sampler sg(g);
    w = logits;
    EXPECT_EQ(sg.sample(w.data(), 4), 0);
}

// ---- seeding

std::vector<int> run_sequence(Sampler& s, int steps) {
    std::vector<int> out;
    for (int i = 0; i < steps; i++) {
        auto logits = make_logits(300, 1000 + i, -1.0f, 1.0f);  // same logits sequence every run
        out.push_back(s.sample(logits.data(), 300));
    }
    return out;
}

TEST(Sampler, SameSeedSameTokens) {
    SamplerParams p;  // defaults: top-k 40, top-p 0.95, min-p 0.05, temperature 0.8
    p.seed = 42;
    Sampler a(p), b(p);
    const auto sa = run_sequence(a, 200);
    EXPECT_EQ(sa, run_sequence(b, 200));
    a.reset();
    EXPECT_EQ(sa, run_sequence(a, 200));
    p.seed = 43;
    Sampler c(p);
    EXPECT_NE(sa, run_sequence(c, 200));
}

TEST(Sampler, RandomSeedIsReported) {
    SamplerParams p;
    p.seed = -1;
    Sampler a(p), b(p);
    EXPECT_NE(a.seed(), b.seed());
    const auto sa = run_sequence(a, 100);
    p.seed = static_cast<int64_t>(a.seed());
    Sampler again(p);
    EXPECT_EQ(again.seed(), a.seed());
    EXPECT_EQ(run_sequence(again, 100), sa);
}

TEST(Sampler, RngReferenceValues) {
    // SplitMix64 from 0: the published first outputs
    uint64_t x = 0;
    EXPECT_EQ(rotor::splitmix64(x), 0xe220a8397b1dcdafull);
    EXPECT_EQ(rotor::splitmix64(x), 0x6e789e6aa1b965f4ull);
    // xoshiro256** seeded with those SplitMix64 words (computed from the published algorithm in Python)
    rotor::Xoshiro256 r(0);
    EXPECT_EQ(r.next(), 0x99ec5f36cb75f2b4ull);
    EXPECT_EQ(r.next(), 0xbf6e1f784956452aull);
    EXPECT_EQ(r.next(), 0x1a5f849d4933e6e0ull);
    rotor::Xoshiro256 u(123);
    for (int i = 0; i < 1000; i++) {
        const double v = u.uniform();
        EXPECT_GE(v, 0.0);
        EXPECT_LT(v, 1.0);
    }
}

// ---- log-probabilities

TEST(Sampler, LogprobsAreLogSoftmaxAfterBias) {
    auto logits = make_logits(500, 19);
    logits[17] = logits[18] = 9.0f;  // a tie at the top: lower id first
    SamplerParams p = plain(0.7f, 5);
    p.top_k = 10;
    p.n_probs = 5;
    p.logit_bias[3] = -kInf;
    p.logit_bias[4] = 1.25f;
    Sampler s(p);
    auto biased = logits;
    biased[3] = -kInf;
    biased[4] += 1.25f;
    double mx = -1e300;
    for (float l : biased) mx = std::max(mx, static_cast<double>(l));
    double z = 0;
    for (float l : biased) z += std::exp(l - mx);
    auto lp = [&](int t) { return biased[t] - mx - std::log(z); };

    rotor::SampleInfo info;
    for (int step = 0; step < 20; step++) {
        auto w = logits;
        const int t = s.sample(w.data(), 500, &info);
        EXPECT_EQ(info.token, t);
        EXPECT_NEAR(info.logprob, lp(t), 1e-9);
        ASSERT_EQ(info.top.size(), 5u);
        const auto ids = order_desc(biased);
        for (int i = 0; i < 5; i++) {
            EXPECT_EQ(info.top[i].token, ids[i]);
            EXPECT_NEAR(info.top[i].logprob, lp(ids[i]), 1e-9);
        }
        EXPECT_EQ(info.top[0].token, 17);
        EXPECT_EQ(info.top[1].token, 18);
    }
    // fewer finite tokens than n_probs: the list is shorter
    SamplerParams q = SamplerParams::greedy();
    q.n_probs = 4;
    Sampler g(q);
    std::vector<float> small = {0.0f, -kInf, 1.0f};
    g.sample(small.data(), 3, &info);
    EXPECT_EQ(info.token, 2);
    ASSERT_EQ(info.top.size(), 2u);
    EXPECT_NEAR(info.logprob, 1.0 - std::log(1.0 + std::exp(1.0)), 1e-12);
    EXPECT_NEAR(info.top[1].logprob, -std::log(1.0 + std::exp(1.0)), 1e-12);
}

// ---- parameter validation

TEST(Sampler, RejectsInvalidParameters) {
    auto bad = [](auto edit) {
        SamplerParams p;
        edit(p);
        EXPECT_THROW(Sampler{p}, rotor::Error);
    };
    bad([](SamplerParams& p) { p.temperature = std::nanf(""); });
    bad([](SamplerParams& p) { p.top_p = std::nanf(""); });
    bad([](SamplerParams& p) { p.repetition_penalty = 0.0f; });
    bad([](SamplerParams& p) { p.repetition_penalty = -1.0f; });
    bad([](SamplerParams& p) { p.frequency_penalty = kInf; });
    bad([](SamplerParams& p) { p.n_probs = -1; });
    bad([](SamplerParams& p) { p.min_keep = -2; });
    bad([](SamplerParams& p) { p.logit_bias[-1] = 1.0f; });
    bad([](SamplerParams& p) { p.logit_bias[5] = kInf; });
    bad([](SamplerParams& p) { p.logit_bias[5] = std::nanf(""); });
    Sampler ok{SamplerParams{}};
    EXPECT_THROW(ok.accept(-1), rotor::Error);
}

}  // namespace
