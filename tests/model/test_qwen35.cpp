// The hybrid Qwen3.5 forward pass beyond single-sequence parity (test_hf_parity.cpp): random models of
// the synthetic tiny-qwen35 / tiny-qwen35moe shapes in several formats, continuous batching of several
// sequences against each sequence run alone, the recurrent-state position rules, and prefix reuse the
// way a server would do it (KV blocks shared, state copied from a snapshot).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <random>

#include "convert/synthetic.h"
#include "kv/dense_kv_cache.h"
#include "kv/kv_pool.h"
#include "model/delta_rule.h"
#include "model/forward.h"
#include "plan/model_memory.h"
#include "synthetic_model.h"

using namespace rotor;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Model> tiny(const std::string& shape, const std::string& mix) { return test::load_synthetic(shape, mix); }

std::vector<int> tokens(int n, int salt) {
    std::vector<int> t;
    for (int i = 0; i < n; i++) t.push_back((i * 37 + salt * 101 + 5) % 1000);
    return t;
}

// Logits of every token of `ids` run alone as one sequence (one batch).
std::vector<float> alone(const Model& m, const std::vector<int>& ids) {
    DenseKvCache kv(kv_geometry(m), 1, 64);
    RecurrentState rs(recurrent_geometry(m.cfg), 1);
    CpuForward fw(m, 2);
    Batch b;
    for (size_t i = 0; i < ids.size(); i++) b.add(ids[i], (int)i, 0, true);
    std::vector<float> out;
    fw.forward(b, kv, &rs, out);
    return out;
}

double rel_diff(const float* a, const float* b, int n) {
    double e = 0, s = 0;
    for (int i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return std::sqrt(e / s);
}

class Qwen35Shapes : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST(Qwen35, SyntheticModelsRunInCommonFormats) {
    for (const char* shape : {"tiny-qwen35", "tiny-qwen35moe"})
        for (const char* mix : {"f32", "q8_0", "q4_k_m"}) {
            auto m = tiny(shape, mix);
            ASSERT_TRUE(m->cfg.hybrid());
            EXPECT_EQ(m->cfg.is_recurrent(0), true);
            EXPECT_EQ(m->cfg.is_recurrent(1), false);
            DenseKvCache kv(kv_geometry(*m), 1, 16);
            RecurrentState rs(recurrent_geometry(m->cfg), 1);
            CpuForward fw(*m, 2);
            Batch b;
            for (int i = 0; i < 8; i++) b.add(i * 7, i, 0, i == 7);
            std::vector<float> logits;
            fw.forward(b, kv, &rs, logits);
            ASSERT_EQ(logits.size(), (size_t)m->cfg.n_vocab) << shape << " " << mix;
            b.clear();
            b.add(3, 8, 0, true);
            fw.forward(b, kv, &rs, logits);
            ASSERT_EQ(logits.size(), (size_t)m->cfg.n_vocab);
            for (float x : logits) ASSERT_TRUE(std::isfinite(x)) << shape << " " << mix;
            EXPECT_EQ(rs.seq_pos(0), 9);
        }
}

TEST_P(Qwen35Shapes, DecodeAndInterleavedSequencesMatchOneSequenceAlone) {
    auto m = tiny(GetParam(), "f32");
    const int V = m->cfg.n_vocab;
    const std::vector<int> a = tokens(12, 1), b = tokens(7, 2);
    const std::vector<float> ref_a = alone(*m, a), ref_b = alone(*m, b);

    // Token by token (the decode path) equals the one-batch prefill.
    {
        DenseKvCache kv(kv_geometry(*m), 1, 64);
        RecurrentState rs(recurrent_geometry(m->cfg), 1);
        CpuForward fw(*m, 1);
        std::vector<float> out;
        for (size_t i = 0; i < a.size(); i++) {
            Batch bt;
            bt.add(a[i], (int)i, 0, true);
            fw.forward(bt, kv, &rs, out);
            EXPECT_LT(rel_diff(out.data(), &ref_a[i * V], V), 1e-5) << "position " << i;
        }
    }
    // Two sequences in the same batches, their tokens interleaved, in two steps of unequal chunks.
    DenseKvCache kv(kv_geometry(*m), 2, 64);
    RecurrentState rs(recurrent_geometry(m->cfg), 2);
    CpuForward fw(*m, 2);
    const int split_a[] = {0, 5, 12}, split_b[] = {0, 3, 7};
    for (int step = 0; step < 2; step++) {
        Batch bt;
        std::vector<std::pair<int, int>> rows;  // (sequence, position) of each output row
        for (int i = split_a[step], j = split_b[step]; i < split_a[step + 1] || j < split_b[step + 1];) {
            if (i < split_a[step + 1]) {
                bt.add(a[i], i, 0, true);
                rows.push_back({0, i++});
            }
            if (j < split_b[step + 1]) {
                bt.add(b[j], j, 1, true);
                rows.push_back({1, j++});
            }
        }
        std::vector<float> out;
        fw.forward(bt, kv, &rs, out);
        for (size_t r = 0; r < rows.size(); r++) {
            const float* want = rows[r].first == 0 ? &ref_a[(size_t)rows[r].second * V] : &ref_b[(size_t)rows[r].second * V];
            EXPECT_LT(rel_diff(&out[r * V], want, V), 1e-5) << "sequence " << rows[r].first << " position " << rows[r].second;
        }
    }
    EXPECT_EQ(rs.seq_pos(0), 12);
    EXPECT_EQ(rs.seq_pos(1), 7);
}

TEST_P(Qwen35Shapes, BatchesMustContinueTheRecurrentState) {
    auto m = tiny(GetParam(), "f32");
    const int V = m->cfg.n_vocab;
    const std::vector<int> a = tokens(8, 3);
    const std::vector<float> ref = alone(*m, a);
    DenseKvCache kv(kv_geometry(*m), 2, 64);
    RecurrentState rs(recurrent_geometry(m->cfg), 2);
    CpuForward fw(*m, 2);
    std::vector<float> out;
    Batch b;
    for (int i = 0; i < 5; i++) b.add(a[i], i, 0, false);
    fw.forward(b, kv, &rs, out);
    EXPECT_EQ(rs.seq_pos(0), 5);
    const RecurrentState::Snapshot before = rs.snapshot(0);

    auto refused = [&](std::vector<std::pair<int, int>> pos_seq) {
        Batch bad;
        for (auto [p, s] : pos_seq) bad.add(a[p % 8], p, s, true);
        EXPECT_THROW(fw.forward(bad, kv, &rs, out), Error);
        EXPECT_EQ(rs.seq_pos(0), 5);
        EXPECT_EQ(rs.snapshot(0).data, before.data);  // nothing changed
    };
    refused({{6, 0}});          // a gap after the state's position
    refused({{5, 0}, {7, 0}});  // a gap inside the batch
    refused({{3, 0}});          // going back without restoring a copy
    refused({{5, 0}, {5, 0}});  // the same position twice
    refused({{0, 2}});          // a sequence outside the store
    EXPECT_THROW(fw.forward(b, kv, out), Error);  // no RecurrentState at all
    {
        RecurrentGeometry g = recurrent_geometry(m->cfg);
        g.d_v *= 2;
        RecurrentState other(g, 2);
        EXPECT_THROW(fw.forward(b, kv, &other, out), Error);
    }

    // Continuing where the state is works and gives the one-batch logits.
    b.clear();
    for (int i = 5; i < 8; i++) b.add(a[i], i, 0, true);
    fw.forward(b, kv, &rs, out);
    for (int i = 5; i < 8; i++) EXPECT_LT(rel_diff(&out[(size_t)(i - 5) * V], &ref[(size_t)i * V], V), 1e-5);
    // Position 0 starts the sequence afresh.
    b.clear();
    for (int i = 0; i < 3; i++) b.add(a[i], i, 0, true);
    fw.forward(b, kv, &rs, out);
    for (int i = 0; i < 3; i++) EXPECT_LT(rel_diff(&out[(size_t)i * V], &ref[(size_t)i * V], V), 1e-5);
    EXPECT_EQ(rs.seq_pos(0), 3);
}

TEST_P(Qwen35Shapes, PrefixReuseSharesKvBlocksAndCopiesTheState) {
    auto m = tiny(GetParam(), "f32");
    const int V = m->cfg.n_vocab;
    const std::vector<int> prompt = tokens(10, 4), suffix = tokens(4, 5);
    std::vector<int> whole = prompt;
    whole.insert(whole.end(), suffix.begin(), suffix.end());
    const std::vector<float> ref = alone(*m, whole);

    auto kv = make_paged_kv_cache(kv_geometry(*m), "f32", "f32", 3, 64);
    RecurrentState rs(recurrent_geometry(m->cfg), 3);
    CpuForward fw(*m, 2);
    std::vector<float> out;
    Batch b;
    for (size_t i = 0; i < prompt.size(); i++) b.add(prompt[i], (int)i, 0, false);
    fw.forward(b, *kv, &rs, out);
    rs.seq_copy(0, 2);  // keep the state at the end of the prompt in a spare slot
    const RecurrentState::Snapshot snap = rs.snapshot(0);
    b.clear();
    for (int i = 0; i < 3; i++) b.add(7 + i, 10 + i, 0, false);  // sequence 0 moves on
    fw.forward(b, *kv, &rs, out);

    // A new request with the same prompt: share the prompt's KV blocks, restore the state, run the suffix.
    auto check_suffix = [&](int seq) {
        kv->seq_share_prefix(0, seq, (int)prompt.size());
        Batch s;
        for (size_t i = 0; i < suffix.size(); i++) s.add(suffix[i], (int)(prompt.size() + i), seq, true);
        fw.forward(s, *kv, &rs, out);
        for (size_t i = 0; i < suffix.size(); i++)
            EXPECT_LT(rel_diff(&out[i * V], &ref[(prompt.size() + i) * V], V), 1e-5) << "suffix token " << i;
    };
    rs.seq_copy(2, 1);
    check_suffix(1);
    kv->seq_truncate(1, 0);
    rs.restore(1, snap);
    check_suffix(1);
    // Sequence 0 cannot go back to the end of the prompt without a copy of its state there.
    Batch back;
    back.add(suffix[0], (int)prompt.size(), 0, true);
    EXPECT_THROW(fw.forward(back, *kv, &rs, out), Error);
}

INSTANTIATE_TEST_SUITE_P(Synthetic, Qwen35Shapes, ::testing::Values("tiny-qwen35", "tiny-qwen35moe"),
                         [](const auto& info) {
                             std::string s = info.param;
                             for (char& ch : s)
                                 if (ch == '-') ch = '_';
                             return s;
                         });

TEST(RecurrentState, CopyResetSnapshotAndBounds) {
    RecurrentGeometry g;
    g.conv_kernel = 4;
    g.d_k = 3;
    g.d_v = 2;
    g.conv_channels = {5, 0, 5};
    g.n_v_heads = {2, 0, 2};
    EXPECT_TRUE(g.any());
    EXPECT_EQ(g.floats_per_seq(), 2u * (3 * 5 + 2 * 3 * 2));
    RecurrentState rs(g, 3);
    EXPECT_EQ(rs.bytes_per_seq(), g.floats_per_seq() * 4);
    rs.conv(2, 1)[4] = 7.0f;
    rs.ssm(0, 1)[11] = -2.0f;
    rs.set_seq_pos(1, 6);
    rs.seq_copy(1, 2);
    EXPECT_EQ(rs.seq_pos(2), 6);
    EXPECT_EQ(rs.conv(2, 2)[4], 7.0f);
    EXPECT_EQ(rs.ssm(0, 2)[11], -2.0f);
    EXPECT_EQ(rs.ssm(0, 0)[11], 0.0f);
    const RecurrentState::Snapshot s = rs.snapshot(2);
    rs.seq_reset(2);
    EXPECT_EQ(rs.seq_pos(2), 0);
    EXPECT_EQ(rs.conv(2, 2)[4], 0.0f);
    rs.restore(0, s);
    EXPECT_EQ(rs.seq_pos(0), 6);
    EXPECT_EQ(rs.ssm(0, 0)[11], -2.0f);
    EXPECT_THROW(rs.seq_pos(3), Error);
    EXPECT_THROW(rs.seq_copy(0, -1), Error);
    RecurrentState::Snapshot bad = s;
    bad.data.pop_back();
    EXPECT_THROW(rs.restore(0, bad), Error);
    EXPECT_THROW(RecurrentState(g, 0), Error);
}

TEST(DeltaRule, ChunkedFormEqualsRecurrentForm) {
    const int T = 37, dk = 8, dv = 6;
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_real_distribution<float> ud(0.0f, 1.0f);
    // q, k rows L2-normalized (q also scaled) as the forward pass gives them; v, g, beta per token
    std::vector<float> q((size_t)T * dk), k((size_t)T * dk), v((size_t)T * dv), g(T), beta(T), S0((size_t)dk * dv);
    for (int t = 0; t < T; t++) {
        for (float* x : {&q[(size_t)t * dk], &k[(size_t)t * dk]}) {
            double ss = 0;
            for (int i = 0; i < dk; i++) {
                x[i] = nd(rng);
                ss += (double)x[i] * x[i];
            }
            for (int i = 0; i < dk; i++) x[i] /= (float)std::sqrt(ss);
        }
        for (int i = 0; i < dk; i++) q[(size_t)t * dk + i] /= std::sqrt((float)dk);
        for (int i = 0; i < dv; i++) v[(size_t)t * dv + i] = nd(rng);
        g[t] = -3.0f * ud(rng) * ud(rng);  // decays from 1 down to e^-3
        beta[t] = ud(rng);
    }
    for (float& x : S0) x = 0.3f * nd(rng);
    auto make = [&](std::vector<float>& out) {
        DeltaRuleRun r;
        r.n_tok = T, r.d_k = dk, r.d_v = dv;
        r.q = q.data(), r.k = k.data(), r.v = v.data(), r.stride_qk = dk, r.stride_v = dv;
        r.g = g.data(), r.beta = beta.data(), r.stride_g = 1;
        out.assign((size_t)T * dv, 0.0f);
        r.out = out.data(), r.stride_o = dv;
        return r;
    };
    std::vector<float> want, S_want = S0;
    delta_rule_recurrent(make(want), S_want.data());
    for (int chunk : {1, 4, 16, 64}) {
        std::vector<float> got, S = S0;
        delta_rule_chunked(make(got), S.data(), chunk);
        EXPECT_LT(rel_diff(got.data(), want.data(), (int)want.size()), 1e-5) << "chunk " << chunk;
        EXPECT_LT(rel_diff(S.data(), S_want.data(), (int)S.size()), 1e-5) << "chunk " << chunk;
    }
}

TEST_P(Qwen35Shapes, ChunkedPrefillMatchesRecurrentPrefill) {
    auto m = tiny(GetParam(), "f32");
    const int V = m->cfg.n_vocab;
    const std::vector<int> a = tokens(21, 6);
    const std::vector<float> ref = alone(*m, a);
    DenseKvCache kv(kv_geometry(*m), 1, 64);
    RecurrentState rs(recurrent_geometry(m->cfg), 1);
    CpuForward fw(*m, 2);
    fw.set_delta_rule_chunk(8);
    std::vector<float> out;
    Batch b;
    for (int i = 0; i < 17; i++) b.add(a[i], i, 0, true);  // chunks of 8, 8, 1
    fw.forward(b, kv, &rs, out);
    b.clear();
    for (int i = 17; i < 21; i++) b.add(a[i], i, 0, true);  // continues from the chunked state
    std::vector<float> rest;
    fw.forward(b, kv, &rs, rest);
    out.insert(out.end(), rest.begin(), rest.end());
    for (int i = 0; i < 21; i++) EXPECT_LT(rel_diff(&out[(size_t)i * V], &ref[(size_t)i * V], V), 1e-5) << "position " << i;
}

// The planner sizes the recurrent state from metadata alone; the store the forward pass uses must agree.
TEST(RecurrentState, SizeEqualsThePlannersAccounting) {
    for (const char* shape : {"qwen3.5-27b", "qwen3.5-35b-a3b", "tiny-qwen35moe"}) {
        const std::string path =
            (fs::temp_directory_path() / ("rotor_meta_" + std::string(shape) + std::to_string(getpid()) + ".gguf")).string();
        write_synthetic_model(find_shape(shape), parse_quant_mix("q4_k_m"), path, 1, "", false);
        const gguf::File f = gguf::File::open(path, gguf::OpenOptions{true});
        const ModelConfig c = read_model_config(f);
        EXPECT_EQ(RecurrentState(recurrent_geometry(c), 1).bytes_per_seq(), read_model_memory(f).recurrent_bytes_per_seq)
            << shape;
        fs::remove(path);
    }
}
