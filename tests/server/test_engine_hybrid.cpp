// The scheduler with a hybrid model (qwen35: Gated DeltaNet layers with per-sequence recurrent state
// beside the KV cache): concurrency, prefix reuse through the whole cached reply or through the
// checkpoint at the end of the prompt, and a request that shares only part of a cached prompt.
// The model is rotor synth's tiny-qwen35 (random weights) with rotor-kjv-11m's vocabulary.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "model/model.h"
#include "server/engine.h"
#include "server_util.h"
#include "synthetic_model.h"
#include "tokenizer/vocab.h"

namespace rotor::test {
namespace {

using server::Engine;

struct Hybrid {
    std::unique_ptr<Model> model;
    std::unique_ptr<Vocab> vocab;
};

std::unique_ptr<Hybrid> load_hybrid(const std::string& shape) {
    std::unique_ptr<Hybrid> out;
    if (!std::filesystem::exists(small_model_path())) return out;
    out = std::make_unique<Hybrid>();
    out->model = load_synthetic(shape, "f32", 7, small_model_path());  // rotor-kjv-11m's tokenizer
    out->vocab = std::make_unique<Vocab>(Vocab::from_gguf(out->model->file));
    return out;
}

const Hybrid* hybrid() {
    static std::unique_ptr<Hybrid> h = load_hybrid("tiny-qwen35");
    return h.get();
}

// Gemma 4's layout: sliding-window layers (window 32 in tiny-gemma4) whose KV lives in rings.
const Hybrid* windowed() {
    static std::unique_ptr<Hybrid> h = load_hybrid("tiny-gemma4");
    return h.get();
}

std::vector<int32_t> tokens(const Hybrid& h, const std::string& text) { return h.vocab->tokenize(text, true, false); }

Collected run_alone(const Hybrid& h, const std::vector<int32_t>& prompt, int n) {
    Engine e(*h.model, *h.vocab, small_engine(1));
    return collect(*e.submit(greedy_request(prompt, n)));
}

TEST(EngineHybrid, ConcurrentSlotsGiveSingleSlotOutputs) {
    const Hybrid* h = hybrid();
    if (!h) GTEST_SKIP() << "model not found: " << small_model_path();
    ASSERT_TRUE(h->model->cfg.hybrid());
    const char* prompts[] = {"In the beginning", "And the LORD spake unto Moses, saying,", "The LORD is my shepherd;",
                             "For God so loved the world,"};
    std::vector<Collected> alone;
    for (const char* p : prompts) alone.push_back(run_alone(*h, tokens(*h, p), 12));
    Engine e(*h->model, *h->vocab, small_engine(3));
    std::vector<std::shared_ptr<server::GenTask>> tasks;
    for (const char* p : prompts) tasks.push_back(e.submit(greedy_request(tokens(*h, p), 12)));
    for (size_t i = 0; i < tasks.size(); i++) {
        ASSERT_TRUE(tasks[i]);
        EXPECT_EQ(collect(*tasks[i]).tokens, alone[i].tokens) << "prompt " << i;
    }
}

TEST(EngineHybrid, PrefixReuseKeepsTheRecurrentStateRight) {
    const Hybrid* h = hybrid();
    if (!h) GTEST_SKIP() << "model not found: " << small_model_path();
    const auto p1 = tokens(*h, "And the LORD spake unto Moses, saying, Speak unto the children of Israel");
    Engine e(*h->model, *h->vocab, small_engine(2));
    const Collected a = collect(*e.submit(greedy_request(p1, 8)));
    ASSERT_EQ(a.tokens.size(), 8u);

    // 1. The same prompt with a different continuation: the reply's tokens do not match, so only the
    //    checkpoint at the end of the prompt can be reused (not the live state beyond it).
    std::vector<int32_t> p2 = p1;
    const auto other = tokens(*h, " Ye shall be holy");
    p2.insert(p2.end(), other.begin() + 1, other.end());  // without its BOS
    const Collected b = collect(*e.submit(greedy_request(p2, 8)));
    EXPECT_EQ(b.last.stats.n_cached, (int)p1.size());
    EXPECT_EQ(b.tokens, run_alone(*h, p2, 8).tokens);

    // 2. An agent loop: the next prompt is the last prompt, its reply and more. The slot's live
    //    state is at the end of the reply's fed tokens: all of them are reused.
    std::vector<int32_t> p3 = p2;
    p3.insert(p3.end(), b.tokens.begin(), b.tokens.end() - 1);  // the last sampled token was never fed
    const auto more = tokens(*h, " and say unto them");
    p3.insert(p3.end(), more.begin() + 1, more.end());
    const Collected c = collect(*e.submit(greedy_request(p3, 8)));
    EXPECT_EQ(c.last.stats.n_cached, (int)(p2.size() + b.tokens.size() - 1));
    EXPECT_EQ(c.tokens, run_alone(*h, p3, 8).tokens);

    // 3. A prompt sharing only part of p1, at a length with no checkpoint: nothing can be reused
    //    (the state cannot be rolled back), and the output is still right.
    const auto p4 = tokens(*h, "And the LORD spake unto Aaron");
    const Collected d = collect(*e.submit(greedy_request(p4, 8)));
    EXPECT_EQ(d.last.stats.n_cached, 0);
    EXPECT_EQ(d.tokens, run_alone(*h, p4, 8).tokens);

    // 4. Two slots, each one's state restored or replaced several times: the first prompt still gives
    //    its first reply.
    EXPECT_EQ(collect(*e.submit(greedy_request(p1, 8))).tokens, a.tokens);
}

// Sliding-window rings: concurrent slots, prompts longer than the window read in chunks, and prefix
// reuse of a cached conversation far beyond the window (the ring still holds what the next query sees).
TEST(EngineWindowed, SlotsChunksAndReuseAcrossTheWindow) {
    const Hybrid* h = windowed();
    if (!h) GTEST_SKIP() << "model not found: " << small_model_path();
    std::string text;
    for (int i = 0; i < 4; i++) text += "And the LORD spake unto Moses, saying, Speak unto the children of Israel. ";
    const auto p1 = tokens(*h, text);
    ASSERT_GT(p1.size(), 64u);  // twice the window
    const auto p2 = tokens(*h, "In the beginning God created the heaven and the earth.");
    const Collected a1 = run_alone(*h, p1, 40), a2 = run_alone(*h, p2, 40);  // replies cross the window too

    server::EngineConfig c = small_engine(3);
    c.n_batch = 20;  // prompts in chunks smaller than the window, slots interleaved
    Engine e(*h->model, *h->vocab, c);
    auto t1 = e.submit(greedy_request(p1, 40));
    auto t2 = e.submit(greedy_request(p2, 40));
    const Collected b1 = collect(*t1), b2 = collect(*t2);
    EXPECT_EQ(b1.tokens, a1.tokens);
    EXPECT_EQ(b2.tokens, a2.tokens);

    // The conversation continues: everything cached is reused, and the reply equals a fresh run's.
    std::vector<int32_t> p3 = p1;
    p3.insert(p3.end(), b1.tokens.begin(), b1.tokens.end() - 1);
    const auto more = tokens(*h, " And Moses said");
    p3.insert(p3.end(), more.begin() + 1, more.end());
    const Collected b3 = collect(*e.submit(greedy_request(p3, 12)));
    EXPECT_EQ(b3.last.stats.n_cached, (int)(p1.size() + b1.tokens.size() - 1));
    EXPECT_EQ(b3.tokens, run_alone(*h, p3, 12).tokens);

    // A prompt that shares only the start of p1: the rings of p1's slot no longer hold those
    // positions, so its 19 tokens cannot be reused (at most the BOS, from a slot whose ring still holds
    // it), and the reply is still right.
    const std::vector<int32_t> p4(p1.begin(), p1.begin() + 20);
    const Collected b4 = collect(*e.submit(greedy_request(p4, 12)));
    EXPECT_LE(b4.last.stats.n_cached, 1);
    EXPECT_EQ(b4.tokens, run_alone(*h, p4, 12).tokens);
}

}  // namespace
}  // namespace rotor::test
