// The hybrid Qwen3.5 forward pass beyond single-sequence parity (test_hf_parity.cpp): random models of
// the synthetic tiny-qwen35 / tiny-qwen35moe shapes in several formats, continuous batching of several
// sequences against each sequence run alone, the recurrent-state position rules, and prefix reuse the
// way a server would do it (KV blocks shared, state copied from a snapshot).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>

#include "convert/synthetic.h"
#include "kv/dense_kv_cache.h"
#include "kv/kv_pool.h"
#include "model/forward.h"

using namespace rotor;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Model> tiny(const std::string& shape, const std::string& mix) {
    const std::string path =
        (fs::temp_directory_path() / ("rotor_" + shape + "_" + mix + "_" + std::to_string(getpid()) + ".gguf")).string();
    write_synthetic_model(find_shape(shape), parse_quant_mix(mix), path);
    auto m = Model::load(path);
    fs::remove(path);  // the mapping stays valid
    return m;
}

std::vector<int> tokens(int n, int salt) {
    std::vector<int> t;
    for (int i = 0; i < n; i++) t.push_back((i * 37 + salt * 101 + 5) % 1000);
    return t;
}

// Logits of every token of `ids` run alone as one sequence (one batch).
std::vector<float> alone(const Model& m, const std::vector<int>& ids) {
    DenseKvCache kv(kv_geometry(m.cfg), 1, 64);
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
            DenseKvCache kv(kv_geometry(m->cfg), 1, 16);
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
        DenseKvCache kv(kv_geometry(m->cfg), 1, 64);
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
    DenseKvCache kv(kv_geometry(m->cfg), 2, 64);
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
    DenseKvCache kv(kv_geometry(m->cfg), 2, 64);
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

    auto kv = make_paged_kv_cache(kv_geometry(m->cfg), "f32", "f32", 3, 64);
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
