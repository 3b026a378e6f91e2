// Token sampling: turns one row of logits into the next token.
//
// Two modes.
//
// SamplerMode::Rotor (default) follows llama.cpp's common sampler chain with its default order:
//   1. logit bias      logit[t] += bias[t] (a -inf bias bans t). Ids outside [0, n_vocab) are ignored.
//   2. penalties       for every token t seen c > 0 times among the last penalty_last_n accepted tokens:
//                        logit = logit <= 0 ? logit * repetition_penalty : logit / repetition_penalty
//                        logit -= c * frequency_penalty + presence_penalty
//                      (float arithmetic, in that order, exactly llama.cpp's formula). Skipped entirely
//                      when penalty_last_n == 0 or all three are neutral (1, 0, 0).
//   -- Steps 1 and 2 write into the caller's logits. Everything below works on a private candidate
//      list; the logits are not touched further.
//   -- temperature <= 0: greedy. The token is the argmax of the logits after steps 1-2 (lowest id on
//      ties), whatever top_k/top_p/min_p/typical_p say. No random number is drawn.
//   3. top-k           keep the top_k highest logits (top_k <= 0 or >= n_vocab: off).
//   4. typical         locally typical sampling (typical_p >= 1: off): p = softmax of the candidates,
//                      H = -sum p log p; order by |-log p - H| ascending and keep the shortest prefix
//                      whose probability sum exceeds typical_p.
//   5. top-p           p = softmax of the candidates; keep the shortest prefix in descending-logit order
//                      whose cumulative probability is >= top_p (top_p >= 1: off; top_p <= 0 keeps 1).
//   6. min-p           keep tokens with logit >= max_logit + logf(min_p), i.e. p >= min_p * p_max
//                      (min_p <= 0: off).
//   7. temperature     divide the candidates' logits by temperature.
//   8. draw            p = softmax of the candidates (in double); one uniform u in [0,1) from the
//                      sampler's xoshiro256** stream (exactly one per non-greedy call) picks the first
//                      candidate whose cumulative weight exceeds u * total, walking the candidates in
//                      descending-logit order when any of 3-5 ran, else in ascending id order.
//   Typical, top-p and min-p keep at least max(min_keep, 1) tokens; top-k keeps top_k (llama.cpp).
//   Candidates are only tokens whose logit is finite or +inf after 1-2: -inf (banned) and NaN never
//   appear. If a +inf logit is present, that token (lowest id) is returned. If no token is left,
//   rotor::Error is thrown.
//   Ties: wherever an order matters, it is descending logit then ascending token id, so results never
//   depend on std::sort's instability (llama.cpp's unstable sorts may break exact ties differently).
//   Probabilities are computed in double (llama.cpp uses float), so a top-p boundary that falls within
//   float rounding may differ from llama.cpp. Deliberate deviations from llama.cpp: typical with
//   min_keep == 0 truncates (llama.cpp's size_t `min_keep - 1` wraps and typical then keeps all); the
//   greedy rule above ignores typical_p (llama.cpp could let typical drop the argmax first).
//   Cost: O(n_vocab) per call plus O(n_vocab log top_k) worst case for top-k (a heap, usually ~linear);
//   without top-k, top-p sorts only the prefix it needs (nth_element in growing chunks). typical_p
//   without top_k sorts all candidates. Buffers are reused: no allocation per call once warmed up.
//   Log-probabilities (below) add one O(n_vocab) pass with exp in double. A Sampler serves one
//   sequence at a time (not thread-safe).
//
// SamplerMode::Llama2c reproduces llama2.c run.c's sampler bit for bit (only temperature, top_p and
// seed are used; logit bias and penalties still apply first, and are no-ops at their neutral values):
//   temperature <= 0 (run.c clamps negatives to 0): argmax, first max wins, no random number drawn.
//   Otherwise, in float and in run.c's operation order: logits /= temperature; softmax (max, expf,
//   sequential sum, divide); coin = random_f32() of xorshift64* (exactly one per step); then
//   top_p <= 0 or >= 1: sample_mult (first i with coin < running cdf, else n-1);
//   else sample_topp: candidates p >= (1 - top_p) / (n - 1) in index order, sorted by p descending,
//   truncated after the first index where the running sum exceeds top_p, then r = coin * that sum
//   picks the first with r < running cdf (else the last kept).
//   qsort is not stable in general, but glibc's qsort (every release, whenever its O(n) buffer can be
//   allocated) is a merge sort, which is stable: equal probabilities stay in ascending index order. rotor
//   sorts by (p descending, index ascending), which gives exactly that order. When no token passes
//   the cutoff (possible only for tiny vocabularies, where run.c reads out of bounds), the argmax is
//   returned. The rng state is the seed itself; seed 0 (or -1) means a random seed, as in run.c.
//
// Log-probabilities (SampleInfo): the log-softmax, computed in double, of the logits after bias and
// penalties (steps 1-2) at temperature 1, before any truncation: what the model plus the request's
// bias/penalties say, independent of temperature/top-k/top-p (as OpenAI reports them). The chosen
// token's value is -inf if it had probability zero (cannot happen except for a banned token).
// `top` lists the n_probs most likely tokens with finite logits (descending, ties by lower id); it is
// shorter when fewer tokens are finite. This holds in both modes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "sample/rng.h"

namespace rotor {

enum class SamplerMode : uint8_t {
    Rotor,    // llama.cpp-style chain (see above)
    Llama2c,  // llama2.c run.c's sampler, bit for bit
};

struct SamplerParams {
    SamplerMode mode = SamplerMode::Rotor;
    // Defaults are llama.cpp's (common_params_sampling).
    float temperature = 0.8f;  // <= 0: greedy
    int32_t top_k = 40;        // <= 0: off
    float top_p = 0.95f;       // >= 1: off
    float min_p = 0.05f;       // <= 0: off
    float typical_p = 1.0f;    // >= 1: off
    int32_t min_keep = 0;      // typical/top-p/min-p keep at least max(min_keep, 1) tokens

    float repetition_penalty = 1.0f;  // must be > 0; 1: off
    int32_t penalty_last_n = 64;      // window of accepted tokens; 0: penalties off; -1: all since reset()
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;

    // Added to the logits before anything else. -inf bans a token; NaN and +inf are rejected.
    std::unordered_map<int32_t, float> logit_bias;

    // -1: a fresh random seed (see Sampler::seed()). Any other value is used as its 64-bit pattern.
    int64_t seed = -1;

    int32_t n_probs = 0;  // size of SampleInfo::top (0: none)

    // temperature 0, no truncation, no penalties: pure argmax.
    static SamplerParams greedy();
    // llama2.c run.c's `-t temperature -p top_p -s seed`.
    static SamplerParams llama2c(float temperature, float top_p, int64_t seed);
};

struct TokenLogprob {
    int32_t token = -1;
    double logprob = 0.0;
};

// Filled by Sampler::sample on request. Reuse one object across calls to avoid allocations.
struct SampleInfo {
    int32_t token = -1;
    double logprob = 0.0;           // of `token`, see the header comment for which distribution
    std::vector<TokenLogprob> top;  // params.n_probs entries at most
};

class Sampler {
public:
    // Throws rotor::Error for invalid parameters (NaNs, repetition_penalty <= 0, negative n_probs or
    // min_keep, a negative bias token id, a NaN / +inf bias, infinite frequency/presence penalties).
    explicit Sampler(SamplerParams params);

    // Picks the next token from logits[0..n_vocab). The logits may be modified in place (bias and
    // penalties in Rotor mode; run.c's temperature/softmax in Llama2c mode). Does NOT call accept().
    int sample(float* logits, int n_vocab) { return sample(logits, n_vocab, nullptr); }
    // Same, and fills *info (when not null) with the chosen token's log-probability and the top
    // params.n_probs log-probabilities.
    int sample(float* logits, int n_vocab, SampleInfo* info);

    // Appends a token to the penalty history (call it for every generated token; llama.cpp's server
    // also feeds the prompt tokens). Throws rotor::Error for a negative id or one above 2^24.
    void accept(int token);

    // Clears the penalty history and restarts the random stream from the seed (a random seed draws a
    // new one, as llama.cpp does).
    void reset();

    const SamplerParams& params() const { return params_; }
    // The seed in use (the drawn one when params.seed == -1), for reporting back to clients.
    uint64_t seed() const { return seed_; }

private:
    struct Cand {
        float logit;
        int32_t id;
    };
    struct Typical {
        double score;
        double p;
        Cand c;
    };

    void seed_rng();
    void apply_bias_and_penalties(float* logits, int n_vocab) const;
    void fill_info(const float* logits, int n_vocab, int token, SampleInfo* info);
    int sample_rotor(const float* logits, int n_vocab);
    int sample_llama2c(float* x, int n_vocab);
    void select_top(const float* logits, int n_vocab, size_t k, std::vector<Cand>& out) const;
    void sort_prefix(size_t done, size_t end);
    size_t keep_count() const;
    void apply_typical();
    void apply_top_p(bool& sorted, float lmax);
    void apply_min_p(bool& sorted, float lmax);
    void count_add(int token, int delta);

    SamplerParams params_;
    uint64_t seed_ = 0;
    Xoshiro256 rng_;
    XorShift64Star rng_l2c_;

    // penalty history: ring of the last penalty_last_n tokens (unused when the window is unbounded),
    // occurrence counts per token id and the list of ids with a nonzero count
    std::vector<int32_t> ring_;
    size_t ring_next_ = 0;
    std::vector<int32_t> counts_;
    std::vector<int32_t> distinct_pos_;  // index in distinct_, or -1
    std::vector<int32_t> distinct_;

    // scratch, reused across calls
    std::vector<Cand> cand_;
    std::vector<Cand> top_;
    std::vector<double> weight_;
    std::vector<Typical> typical_;
    std::vector<float> scratch_;
};

}  // namespace rotor
