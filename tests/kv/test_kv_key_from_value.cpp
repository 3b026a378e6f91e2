// K = V layers (gemma4's global layers): a cache that stores only v and rebuilds each key from it
// (KvGeometry::KeyFromValue) against a cache given the same keys explicitly, computed here with a
// separately written RoPE (angles in double of the float product, pairs (i, i + n_rot/2)).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kv/dense_kv_cache.h"
#include "kv/kv_format.h"
#include "kv/kv_pool.h"

using namespace rotor;

namespace {

struct KfvShape {
    int hkv = 2, d = 64, n_rot = 64, n_head = 8, window = 0;
};

// Two layers: layer 0 stores K and V, layer 1 derives keys from values. Returns (explicit, derived).
std::pair<KvGeometry, KvGeometry> geometries(const KfvShape& s, std::mt19937& rng) {
    KvGeometry g;
    g.n_head_kv = {s.hkv, s.hkv};
    g.head_dim_k = g.head_dim_v = {s.d, s.d};
    g.window = {0, s.window};
    KvGeometry f = g;
    f.key_from_value.resize(2);
    std::uniform_real_distribution<float> u(0.5f, 1.5f);
    KvGeometry::KeyFromValue& kv = f.key_from_value[1];
    for (int i = 0; i < s.d; i++) kv.k_weight.push_back(u(rng));
    for (int i = 0; i < s.n_rot / 2; i++) kv.inv_freq.push_back((float)std::pow(10000.0, -2.0 * i / s.n_rot));
    kv.n_rot = s.n_rot;
    return {g, f};
}

// The key this test expects for value v at position pos.
std::vector<float> expected_key(const KvGeometry::KeyFromValue& f, const float* v, int d, int pos) {
    std::vector<double> k(d);
    for (int i = 0; i < d; i++) k[i] = (double)f.k_weight[i] * v[i];
    const int half = f.n_rot / 2;
    for (int i = 0; i < half; i++) {
        const double a = (double)((float)pos * f.inv_freq[i]);
        const double x0 = k[i], x1 = k[i + half];
        k[i] = x0 * std::cos(a) - x1 * std::sin(a);
        k[i + half] = x0 * std::sin(a) + x1 * std::cos(a);
    }
    return std::vector<float>(k.begin(), k.end());
}

// Fills both caches with positions [0, T) of seq 0 (the explicit one gets the expected keys) and
// returns the worst |difference| of the attention outputs at every position, relative to max|v|.
double compare(KvCache& expl, KvCache& derived, const KvGeometry& f, const KfvShape& s, int T, std::mt19937& rng) {
    std::normal_distribution<float> nd;
    expl.seq_reserve(0, T);
    derived.seq_reserve(0, T);
    const int layer = 1, kd = s.hkv * s.d;
    double worst = 0, vmax = 0;
    std::vector<float> q((size_t)s.n_head * s.d), a((size_t)s.n_head * s.d), b((size_t)s.n_head * s.d);
    for (int p = 0; p < T; p++) {
        std::vector<float> v(kd), k(kd), junk(kd, NAN);  // the derived cache must not read k
        for (float& x : v) x = nd(rng), vmax = std::max(vmax, (double)std::fabs(x));
        for (int h = 0; h < s.hkv; h++) {
            const std::vector<float> kh = expected_key(f.key_from_value[layer], &v[(size_t)h * s.d], s.d, p);
            std::copy(kh.begin(), kh.end(), k.begin() + (ptrdiff_t)h * s.d);
        }
        expl.store(layer, 0, p, k.data(), v.data());
        derived.store(layer, 0, p, junk.data(), v.data());
        for (float& x : q) x = nd(rng) * 0.3f;
        AttnParams ap;
        ap.n_head = s.n_head;
        ap.scale = 1.0f / std::sqrt((float)s.d);
        expl.attend(layer, 0, p + 1, q.data(), a.data(), ap);
        derived.attend(layer, 0, p + 1, q.data(), b.data(), ap);
        for (size_t i = 0; i < a.size(); i++) worst = std::max(worst, (double)std::fabs(a[i] - b[i]));
    }
    return worst / vmax;
}

}  // namespace

TEST(KvKeyFromValue, DenseCacheEqualsExplicitKeys) {
    std::mt19937 rng(7);
    for (KfvShape s : {KfvShape{}, KfvShape{1, 128, 64, 4, 0}, KfvShape{2, 64, 64, 8, 9}}) {
        auto [g, f] = geometries(s, rng);
        DenseKvCache expl(g, 1, 40), derived(f, 1, 40);
        EXPECT_LT(compare(expl, derived, f, s, 40, rng), 2e-6) << "d " << s.d << " n_rot " << s.n_rot << " window " << s.window;
    }
}

TEST(KvKeyFromValue, PagedCacheEqualsExplicitKeysAcrossBlocksAndRings) {
    std::mt19937 rng(8);
    for (KfvShape s : {KfvShape{}, KfvShape{1, 128, 64, 4, 0}, KfvShape{2, 64, 64, 8, 9}}) {
        auto [g, f] = geometries(s, rng);
        // blocks of 8 and a ring of 9 + 8 positions (rounded to 24) that wraps several times in 70
        auto expl = make_paged_kv_cache(g, "f32", "f32", 1, 70, 8, 8);
        auto derived = make_paged_kv_cache(f, "f32", "f32", 1, 70, 8, 8);
        EXPECT_LT(compare(*expl, *derived, f, s, 70, rng), 2e-6) << "d " << s.d << " window " << s.window;
    }
}

TEST(KvKeyFromValue, QuantizedTypesStayCloseToF32) {
    // Each type's derived keys come from its quantized value; the error follows its precision.
    for (const auto& [type, bound] : std::vector<std::pair<const char*, double>>{
             {"f16", 2e-3}, {"q8_0", 2e-2}, {"q8_0h", 2e-2}, {"q4_0h", 2e-1}, {"tcq4", 2e-1}}) {
        std::mt19937 rng(9);
        KfvShape s;
        auto [g, f] = geometries(s, rng);
        auto expl = make_paged_kv_cache(f, "f32", "f32", 1, 50, 16, 16);
        auto q = make_paged_kv_cache(f, type, type, 1, 50, 16, 16);
        const double err = compare(*expl, *q, f, s, 50, rng);
        EXPECT_LT(err, bound) << type;
        EXPECT_GT(err, 0.0) << type << ": a lossy type that reproduces f32 exactly did not quantize";
    }
}

TEST(KvKeyFromValue, StoresNoKeyRows) {
    std::mt19937 rng(10);
    KfvShape s;
    auto [g, f] = geometries(s, rng);
    const KvPoolLayout lg = make_kv_layout(g, "q8_0", "q4_0h", 16, 16), lf = make_kv_layout(f, "q8_0", "q4_0h", 16, 16);
    const uint64_t k_rows = 16ull * s.hkv * find_kv_format("q8_0")->row_bytes(s.d);  // layer 1's K rows per block
    EXPECT_EQ(kv_block_bytes(lg) - kv_block_bytes(lf), k_rows);
    EXPECT_TRUE(kv_layout_notes(lg).empty());
    EXPECT_NE(kv_layout_notes(lf).find("layers 1 (K = V) store one q4_0h row"), std::string::npos) << kv_layout_notes(lf);
    // shapes that disagree are refused when the layout is built
    f.key_from_value[1].k_weight.pop_back();
    EXPECT_THROW(make_kv_layout(f, "f16", "f16"), Error);
}

// Prefix sharing and truncation on a K = V layer: seq 1 shares seq 0's first 20 positions (a partial
// block of 8 included, copied on write when either writes into it), both go on with different
// values, then seq 0 is cut back to 13 and rewritten. At every step the derived cache attends as the
// explicit-key cache given the same operations does (f32 keys there, the key of the value as the type
// stores it; values of the same type in both).
TEST(KvKeyFromValue, SharedPrefixAndTruncationKeepTheDerivedKeys) {
    for (const char* type : {"f32", "q4_0h"}) {
        std::mt19937 rng(11);
        KfvShape s;
        const auto geo = geometries(s, rng);  // (no structured binding: the lambdas below use f)
        const KvGeometry &g = geo.first, &f = geo.second;
        auto expl = make_paged_kv_cache(g, "f32", type, 2, 64, 8, 8);
        auto derived = make_paged_kv_cache(f, type, type, 2, 64, 8, 8);
        std::normal_distribution<float> nd;
        const int layer = 1, kd = s.hkv * s.d;
        double worst = 0, vmax = 0;
        std::vector<float> q((size_t)s.n_head * s.d), a(q.size()), b(q.size());
        std::vector<std::vector<float>> vals[2] = {std::vector<std::vector<float>>(30), std::vector<std::vector<float>>(30)};
        auto put = [&](int seq, int p) {
            std::vector<float> v(kd), k(kd), junk(kd, NAN);
            for (float& x : v) x = nd(rng), vmax = std::max(vmax, (double)std::fabs(x));
            vals[seq][p] = v;
            for (int h = 0; h < s.hkv; h++) {
                // the explicit cache gets the key of the value as the format returns it (q4_0h rounds v)
                std::vector<float> vq(v.begin() + (ptrdiff_t)h * s.d, v.begin() + (ptrdiff_t)(h + 1) * s.d);
                const KvFormat& fmt = *find_kv_format(type);
                std::vector<uint8_t> row(fmt.row_bytes(s.d));
                fmt.quantize(vq.data(), row.data(), s.d);
                fmt.dequantize(row.data(), vq.data(), s.d);
                const std::vector<float> kh = expected_key(f.key_from_value[layer], vq.data(), s.d, p);
                std::copy(kh.begin(), kh.end(), k.begin() + (ptrdiff_t)h * s.d);
            }
            expl->store(layer, seq, p, k.data(), v.data());
            derived->store(layer, seq, p, junk.data(), v.data());
        };
        auto check = [&](int seq, int n_kv) {
            for (float& x : q) x = nd(rng) * 0.3f;
            AttnParams ap;
            ap.n_head = s.n_head;
            ap.scale = 1.0f / std::sqrt((float)s.d);
            expl->attend(layer, seq, n_kv, q.data(), a.data(), ap);
            derived->attend(layer, seq, n_kv, q.data(), b.data(), ap);
            for (size_t i = 0; i < a.size(); i++) worst = std::max(worst, (double)std::fabs(a[i] - b[i]));
        };
        for (auto* c : {expl.get(), derived.get()}) c->seq_reserve(0, 20);
        for (int p = 0; p < 20; p++) put(0, p), check(0, p + 1);
        for (auto* c : {expl.get(), derived.get()}) {
            c->seq_share_prefix(0, 1, 20);
            c->seq_reserve(0, 30);
            c->seq_reserve(1, 30);
        }
        for (int p = 0; p < 20; p++) vals[1][p] = vals[0][p];
        for (int p = 20; p < 30; p++) {
            put(1, p), check(1, p + 1);
            put(0, p), check(0, p + 1);
        }
        check(1, 30);  // seq 1 still sees seq 0's first 20 values, not what seq 0 wrote after sharing
        for (auto* c : {expl.get(), derived.get()}) {
            c->seq_truncate(0, 13);
            c->seq_reserve(0, 25);
        }
        for (int p = 13; p < 25; p++) put(0, p), check(0, p + 1);
        check(1, 30);
        EXPECT_LT(worst / vmax, 2e-6) << type;
        // and both sequences as a cache that never shared or truncated holds them
        auto fresh = make_paged_kv_cache(f, type, type, 2, 64, 8, 8);
        const int len[2] = {25, 30};
        std::vector<float> c(q.size());
        for (int seq = 0; seq < 2; seq++) {
            fresh->seq_reserve(seq, len[seq]);
            std::vector<float> junk(kd, NAN);
            for (int p = 0; p < len[seq]; p++) fresh->store(layer, seq, p, junk.data(), vals[seq][p].data());
            for (float& x : q) x = nd(rng) * 0.3f;
            AttnParams ap;
            ap.n_head = s.n_head;
            ap.scale = 1.0f / std::sqrt((float)s.d);
            derived->attend(layer, seq, len[seq], q.data(), b.data(), ap);
            fresh->attend(layer, seq, len[seq], q.data(), c.data(), ap);
            for (size_t i = 0; i < b.size(); i++) EXPECT_EQ(b[i], c[i]) << type << " seq " << seq << " element " << i;
        }
    }
}
