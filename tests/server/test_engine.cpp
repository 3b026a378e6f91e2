// The scheduler with the real small model: batching across slots must not change greedy outputs,
// prefix reuse must compute fewer tokens and give the same output, cancellation and the queue limit
// must free and bound resources, and stop strings / max_tokens / context end / EOS / logprobs behave
// as documented in engine.h.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "server/engine.h"
#include "server_util.h"

namespace rotor::test {
namespace {

using server::Engine;
using server::FinishReason;
using server::GenRequest;

std::vector<int32_t> tok(const SmallModel& m, const std::string& text) { return m.vocab->tokenize(text, true, false); }

const char* kPrompts[] = {
    "In the beginning",
    "And the LORD spake unto Moses, saying,",
    "Blessed are the poor in spirit:",
    "The LORD is my shepherd;",
    "And God said, Let there be light:",
    "Now the serpent was more subtil than any beast of the field",
    "For God so loved the world,",
    "In my Father's house are many mansions:",
};

TEST(Engine, GreedyContinuationMatchesTheModelCard) {
    ROTOR_REQUIRE_SMALL_MODEL();
    Engine e(*SM->model, *SM->vocab, small_engine(1));
    auto t = e.submit(greedy_request(tok(*SM, "In the beginning"), 12));
    ASSERT_TRUE(t);
    Collected c = collect(*t);
    EXPECT_EQ(c.last.finish, FinishReason::Length);
    EXPECT_EQ(c.last.stats.n_generated, 12);
    EXPECT_EQ(c.tokens.size(), 12u);
    // models/rotor-kjv-11m/README.md (PyTorch and rotor agree)
    EXPECT_EQ(c.text.substr(0, 40), std::string(" of the LORD, the day of the LORD came up").substr(0, 40));
    EXPECT_EQ(c.last.stats.n_prompt, 4);  // BOS + 3
}

// Greedy outputs with N requests batched together equal the outputs of each request alone.
TEST(Engine, ConcurrentSlotsGiveSingleSlotOutputs) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const int n = (int)(sizeof kPrompts / sizeof kPrompts[0]);
    std::vector<Collected> alone(n);
    {
        Engine e(*SM->model, *SM->vocab, small_engine(1));
        for (int i = 0; i < n; i++) {
            auto t = e.submit(greedy_request(tok(*SM, kPrompts[i]), 24));
            alone[i] = collect(*t);
        }
    }
    for (int slots : {3, 8}) {
        Engine e(*SM->model, *SM->vocab, small_engine(slots));
        std::vector<std::shared_ptr<server::GenTask>> tasks;
        for (int i = 0; i < n; i++) tasks.push_back(e.submit(greedy_request(tok(*SM, kPrompts[i]), 24)));
        for (int i = 0; i < n; i++) {
            ASSERT_TRUE(tasks[i]);
            Collected c = collect(*tasks[i]);
            EXPECT_EQ(c.tokens, alone[i].tokens) << "prompt " << i << " with " << slots << " slots";
            EXPECT_EQ(c.text, alone[i].text) << "prompt " << i;
            EXPECT_EQ(c.last.finish, FinishReason::Length);
        }
        const server::EngineMetrics m = e.metrics();
        // Batching happened: fewer forward passes than tokens generated.
        EXPECT_LT(m.n_decode_total, m.tokens_predicted_total) << slots << " slots";
        EXPECT_GT(m.n_busy_slots_total, m.n_decode_total);
    }
}

// A prompt read in chunks of --batch tokens gives the same output as one read at once.
TEST(Engine, PromptChunkingDoesNotChangeOutput) {
    ROTOR_REQUIRE_SMALL_MODEL();
    std::string long_prompt;
    for (int i = 0; i < 6; i++) long_prompt += std::string(kPrompts[i]) + " ";
    const auto prompt = tok(*SM, long_prompt);
    ASSERT_GT(prompt.size(), 40u);
    Collected whole, chunked;
    {
        Engine e(*SM->model, *SM->vocab, small_engine(1));
        whole = collect(*e.submit(greedy_request(prompt, 16)));
    }
    {
        server::EngineConfig c = small_engine(2);
        c.n_batch = 7;
        Engine e(*SM->model, *SM->vocab, c);
        chunked = collect(*e.submit(greedy_request(prompt, 16)));
        EXPECT_GE(e.metrics().n_decode_total, prompt.size() / 7);
    }
    EXPECT_EQ(whole.tokens, chunked.tokens);
}

// Prefix reuse: the same prompt again computes only its last token; a prompt extending a cached one
// computes only the new part; outputs equal a fresh engine's.
TEST(Engine, PrefixReuseComputesFewerTokensAndSameOutput) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string base = std::string(kPrompts[1]) + " " + kPrompts[3] + " " + kPrompts[4];
    const auto p1 = tok(*SM, base);
    const auto p2 = tok(*SM, base + " " + kPrompts[6]);
    Collected fresh1, fresh2;
    {
        Engine e(*SM->model, *SM->vocab, small_engine(1));
        fresh1 = collect(*e.submit(greedy_request(p1, 16)));
    }
    {
        Engine e(*SM->model, *SM->vocab, small_engine(1));
        fresh2 = collect(*e.submit(greedy_request(p2, 16)));
    }
    Engine e(*SM->model, *SM->vocab, small_engine(2));
    Collected a = collect(*e.submit(greedy_request(p1, 16)));
    EXPECT_EQ(a.last.stats.n_cached, 0);
    EXPECT_EQ(a.tokens, fresh1.tokens);
    const uint64_t before = e.metrics().prompt_tokens_total;

    Collected again = collect(*e.submit(greedy_request(p1, 16)));
    EXPECT_EQ(again.last.stats.n_cached, (int)p1.size() - 1);
    EXPECT_EQ(e.metrics().prompt_tokens_total - before, 1u);
    EXPECT_EQ(again.tokens, fresh1.tokens);

    const uint64_t before2 = e.metrics().prompt_tokens_total;
    Collected ext = collect(*e.submit(greedy_request(p2, 16)));
    // p1 is a token prefix of p2 (the BPE split at the joint may differ by a token or so)
    EXPECT_GE(ext.last.stats.n_cached, (int)p1.size() - 2);
    EXPECT_EQ(e.metrics().prompt_tokens_total - before2, (uint64_t)(p2.size() - ext.last.stats.n_cached));
    EXPECT_EQ(ext.tokens, fresh2.tokens);
    EXPECT_EQ(e.metrics().prompt_tokens_cached_total, (uint64_t)(again.last.stats.n_cached + ext.last.stats.n_cached));
}

// A request whose prefix is held by a *busy* slot shares that slot's blocks (copy on write) and
// computes only the rest, while the other request keeps generating undisturbed.
TEST(Engine, PrefixSharedFromABusySlot) {
    ROTOR_REQUIRE_SMALL_MODEL();
    const std::string base = std::string(kPrompts[5]) + " " + kPrompts[2] + " " + kPrompts[7];
    const auto pa = tok(*SM, base);
    const auto pb = tok(*SM, base + " And");
    Collected fresh_a, fresh_b;
    {
        Engine e(*SM->model, *SM->vocab, small_engine(1));
        fresh_a = collect(*e.submit(greedy_request(pa, 64)));
        fresh_b = collect(*e.submit(greedy_request(pb, 16)));  // slot reuse is exact too
    }
    Engine e(*SM->model, *SM->vocab, small_engine(2));
    auto ta = e.submit(greedy_request(pa, 64));
    server::GenEvent first;
    ASSERT_TRUE(ta->next(first, 60000));  // a is in its slot and has read its prompt
    auto tb = e.submit(greedy_request(pb, 16));
    Collected b = collect(*tb);
    Collected a = collect(*ta);
    a.tokens.insert(a.tokens.begin(), first.tokens[0].id);
    a.text = first.text + a.text;
    EXPECT_NE(b.last.stats.slot, a.last.stats.slot);
    EXPECT_GE(b.last.stats.n_cached, (int)pa.size() - 1);
    EXPECT_EQ(b.tokens, fresh_b.tokens);
    EXPECT_EQ(a.tokens, fresh_a.tokens);
}

TEST(Engine, CancellationFreesTheSlot) {
    ROTOR_REQUIRE_SMALL_MODEL();
    Engine e(*SM->model, *SM->vocab, small_engine(1));
    GenRequest r = greedy_request(tok(*SM, kPrompts[0]), -1);
    r.ignore_eos = true;
    auto t = e.submit(r);
    server::GenEvent ev;
    ASSERT_TRUE(t->next(ev, 60000));
    EXPECT_TRUE(e.slots()[0].busy);
    t->cancel();
    Collected rest = collect(*t);
    EXPECT_EQ(rest.last.finish, FinishReason::Cancelled);
    EXPECT_LT(rest.last.stats.n_generated, 400);  // stopped long before the context end
    // The slot is free: the next request runs at once.
    Collected next = collect(*e.submit(greedy_request(tok(*SM, kPrompts[2]), 4)));
    EXPECT_EQ(next.last.finish, FinishReason::Length);
    const server::EngineMetrics m = e.metrics();
    EXPECT_EQ(m.requests_cancelled_total, 1u);
    EXPECT_EQ(m.requests_processing, 0);
    EXPECT_FALSE(e.slots()[0].busy);
}

TEST(Engine, CancelledWhileQueuedNeverRuns) {
    ROTOR_REQUIRE_SMALL_MODEL();
    Engine e(*SM->model, *SM->vocab, small_engine(1));
    auto a = e.submit(greedy_request(tok(*SM, kPrompts[0]), 40));
    auto b = e.submit(greedy_request(tok(*SM, kPrompts[1]), 40));
    b->cancel();
    Collected cb = collect(*b);
    EXPECT_EQ(cb.last.finish, FinishReason::Cancelled);
    EXPECT_EQ(cb.tokens.size(), 0u);
    EXPECT_EQ(collect(*a).last.finish, FinishReason::Length);
}

TEST(Engine, QueueLimitRefusesBeyondIt) {
    ROTOR_REQUIRE_SMALL_MODEL();
    server::EngineConfig c = small_engine(1);
    c.n_queue = 1;
    Engine e(*SM->model, *SM->vocab, c);
    GenRequest long_req = greedy_request(tok(*SM, kPrompts[0]), -1);
    long_req.ignore_eos = true;
    auto a = e.submit(long_req);
    server::GenEvent ev;
    ASSERT_TRUE(a->next(ev, 60000));  // a holds the only slot
    auto b = e.submit(greedy_request(tok(*SM, kPrompts[1]), 2));
    ASSERT_TRUE(b);  // waits
    std::string why;
    auto c2 = e.submit(greedy_request(tok(*SM, kPrompts[2]), 2), &why);
    EXPECT_FALSE(c2);
    EXPECT_NE(why.find("busy"), std::string::npos) << why;
    EXPECT_EQ(e.metrics().requests_rejected_total, 1u);
    EXPECT_EQ(e.metrics().requests_deferred, 1);
    a->cancel();
    EXPECT_EQ(collect(*b).last.finish, FinishReason::Length);
    // Room again.
    EXPECT_TRUE(e.submit(greedy_request(tok(*SM, kPrompts[2]), 2)));
}

TEST(Engine, StopStringsEndGenerationAndAreNotShown) {
    ROTOR_REQUIRE_SMALL_MODEL();
    Engine e(*SM->model, *SM->vocab, small_engine(1));
    // Greedy text: " of the LORD, the day of the LORD came up ..."
    GenRequest r = greedy_request(tok(*SM, "In the beginning"), 40);
    r.stop = {"ORD, the d"};  // spans tokens
    Collected c = collect(*e.submit(r));
    EXPECT_EQ(c.text, " of the L");
    EXPECT_EQ(c.last.finish, FinishReason::Stop);
    EXPECT_LT(c.last.stats.n_generated, 10);

    r.stop = {"nothing like this", " day"};
    c = collect(*e.submit(r));
    EXPECT_EQ(c.text, " of the LORD, the");
    EXPECT_EQ(c.last.finish, FinishReason::Stop);
}

TEST(Engine, ContextEndFinishesWithLength) {
    ROTOR_REQUIRE_SMALL_MODEL();
    Engine e(*SM->model, *SM->vocab, small_engine(1, 16));
    GenRequest r = greedy_request(tok(*SM, "In the beginning"), -1);
    r.ignore_eos = true;
    Collected c = collect(*e.submit(r));
    EXPECT_EQ(c.last.finish, FinishReason::Length);
    EXPECT_EQ(c.last.stats.n_prompt + c.last.stats.n_generated, 16 + 1);  // the last token needs no position
    EXPECT_EQ(e.slots()[0].n_cached, 16);

    Collected too_long = collect(*e.submit(greedy_request(std::vector<int32_t>(16, 5), 4)));
    EXPECT_EQ(too_long.last.finish, FinishReason::Error);
    EXPECT_NE(too_long.last.error.find("context"), std::string::npos);
    Collected empty = collect(*e.submit(greedy_request({}, 4)));
    EXPECT_EQ(empty.last.finish, FinishReason::Error);
    Collected bad = collect(*e.submit(greedy_request({1, 99999}, 4)));
    EXPECT_EQ(bad.last.finish, FinishReason::Error);
}

TEST(Engine, EndOfGenerationTokenStops) {
    ROTOR_REQUIRE_SMALL_MODEL();
    Engine e(*SM->model, *SM->vocab, small_engine(1));
    const int32_t eos = SM->vocab->eos();
    ASSERT_GE(eos, 0);
    GenRequest r = greedy_request(tok(*SM, "In the beginning"), 10);
    r.sampling.logit_bias[eos] = 1000.0f;
    Collected c = collect(*e.submit(r));
    EXPECT_EQ(c.last.finish, FinishReason::Stop);
    EXPECT_EQ(c.tokens, std::vector<int32_t>{eos});
    EXPECT_EQ(c.text, "");
    r.ignore_eos = true;
    c = collect(*e.submit(r));
    EXPECT_EQ(c.last.finish, FinishReason::Length);
    EXPECT_EQ(c.tokens.size(), 10u);
}

TEST(Engine, LogitBiasAndSeeds) {
    ROTOR_REQUIRE_SMALL_MODEL();
    Engine e(*SM->model, *SM->vocab, small_engine(2));
    const auto p = tok(*SM, kPrompts[3]);
    Collected g = collect(*e.submit(greedy_request(p, 6)));
    GenRequest banned = greedy_request(p, 6);
    banned.sampling.logit_bias[g.tokens[0]] = -INFINITY;
    Collected b = collect(*e.submit(banned));
    EXPECT_NE(b.tokens[0], g.tokens[0]);

    GenRequest s = greedy_request(p, 24);
    s.sampling = SamplerParams{};
    s.sampling.temperature = 1.5f;
    s.sampling.top_k = 0;
    s.sampling.top_p = 1.0f;
    s.sampling.min_p = 0.0f;
    s.sampling.seed = 1234;
    Collected s1 = collect(*e.submit(s));
    Collected s2 = collect(*e.submit(s));
    EXPECT_EQ(s1.tokens, s2.tokens);
    EXPECT_EQ(s1.last.stats.seed, 1234u);
    s.sampling.seed = 99;
    Collected s3 = collect(*e.submit(s));
    EXPECT_NE(s1.tokens, s3.tokens);
}

TEST(Engine, LogprobsOfGreedyTokens) {
    ROTOR_REQUIRE_SMALL_MODEL();
    Engine e(*SM->model, *SM->vocab, small_engine(1));
    GenRequest r = greedy_request(tok(*SM, kPrompts[1]), 8);
    r.want_logprobs = true;
    r.sampling.n_probs = 3;
    Collected c = collect(*e.submit(r));
    ASSERT_EQ(c.token_info.size(), 8u);
    for (const server::GenToken& t : c.token_info) {
        ASSERT_EQ(t.top.size(), 3u);
        EXPECT_EQ(t.top[0].token, t.id);  // greedy: the chosen token is the most likely
        EXPECT_DOUBLE_EQ(t.top[0].logprob, t.logprob);
        EXPECT_LE(t.logprob, 0.0);
        EXPECT_GE(t.top[0].logprob, t.top[1].logprob);
        EXPECT_GE(t.top[1].logprob, t.top[2].logprob);
        EXPECT_LT(std::exp(t.top[0].logprob) + std::exp(t.top[1].logprob) + std::exp(t.top[2].logprob), 1.0 + 1e-9);
    }
}

TEST(Engine, QuantizedKvTypesRun) {
    ROTOR_REQUIRE_SMALL_MODEL();
    server::EngineConfig c = small_engine(2, 256);
    c.kv_k = "q8_0";
    c.kv_v = "q8_0";
    Engine e(*SM->model, *SM->vocab, c);
    Collected r = collect(*e.submit(greedy_request(tok(*SM, "In the beginning"), 8)));
    EXPECT_EQ(r.tokens.size(), 8u);
    const server::EngineMetrics m = e.metrics();
    EXPECT_EQ(m.kv_bytes_capacity, (uint64_t)m.kv_blocks_total * e.kv_block_bytes());
    // 2 slots x 256 positions / 16 per block
    EXPECT_EQ(m.kv_blocks_total, 32);
    EXPECT_THROW(Engine(*SM->model, *SM->vocab, [] {
                     server::EngineConfig b = small_engine(1);
                     b.kv_k = "no-such-type";
                     return b;
                 }()),
                 Error);
}

TEST(Engine, PoolIsSlotsTimesContext) {
    ROTOR_REQUIRE_SMALL_MODEL();
    Engine e(*SM->model, *SM->vocab, small_engine(3, 100));  // 100 -> 7 blocks of 16
    const server::EngineMetrics m = e.metrics();
    EXPECT_EQ(m.kv_blocks_total, 3 * 7);
    EXPECT_EQ(m.kv_bytes_capacity, 21 * e.kv_block_bytes());
    EXPECT_EQ(m.kv_bytes_used, 0u);
    for (const server::SlotInfo& s : e.slots()) EXPECT_EQ(s.n_ctx, 100);
}

TEST(Engine, StopWithRequestsInFlightEndsThemAll) {
    ROTOR_REQUIRE_SMALL_MODEL();
    auto e = std::make_unique<Engine>(*SM->model, *SM->vocab, small_engine(1));
    GenRequest r = greedy_request(tok(*SM, kPrompts[0]), -1);
    r.ignore_eos = true;
    auto a = e->submit(r);
    auto b = e->submit(r);
    e->stop();
    EXPECT_EQ(collect(*a).last.finish, FinishReason::Error);
    EXPECT_EQ(collect(*b).last.finish, FinishReason::Error);
    EXPECT_FALSE(e->submit(r));
}

}  // namespace
}  // namespace rotor::test
