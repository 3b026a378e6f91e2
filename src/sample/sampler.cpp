#include "sample/sampler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>

#include "common/error.h"

namespace rotor {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kPosInf = std::numeric_limits<float>::infinity();
// Token ids above this are refused by accept(): the history is indexed by id, and no vocabulary
// comes near it (the largest in use have ~262K entries).
constexpr int kMaxTokenId = 1 << 24;

[[noreturn]] void fail(const std::string& msg) { throw Error("sampler: " + msg); }

uint64_t random_seed() {
    uint64_t s = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    try {
        std::random_device rd;
        s ^= (static_cast<uint64_t>(rd()) << 32) ^ rd();
    } catch (...) {
        // no entropy source: the clock alone still gives distinct seeds
    }
    return s;
}

// Candidate order: descending logit, then ascending id (a strict total order: NaNs never enter).
struct CandBetter {
    template <typename C>
    bool operator()(const C& a, const C& b) const {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    }
};

}  // namespace

SamplerParams SamplerParams::greedy() {
    SamplerParams p;
    p.temperature = 0.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    return p;
}

SamplerParams SamplerParams::llama2c(float temperature, float top_p, int64_t seed) {
    SamplerParams p;
    p.mode = SamplerMode::Llama2c;
    p.temperature = temperature;
    p.top_p = top_p;
    p.seed = seed;
    return p;
}

Sampler::Sampler(SamplerParams params) : params_(std::move(params)) {
    const SamplerParams& p = params_;
    if (std::isnan(p.temperature)) fail("temperature is NaN");
    if (std::isnan(p.top_p)) fail("top_p is NaN");
    if (std::isnan(p.min_p)) fail("min_p is NaN");
    if (std::isnan(p.typical_p)) fail("typical_p is NaN");
    if (p.min_keep < 0) fail("min_keep is negative");
    if (!(p.repetition_penalty > 0.0f) || std::isinf(p.repetition_penalty))
        fail("repetition_penalty must be a finite number > 0");
    if (!std::isfinite(p.presence_penalty)) fail("presence_penalty must be finite");
    if (!std::isfinite(p.frequency_penalty)) fail("frequency_penalty must be finite");
    if (p.n_probs < 0) fail("n_probs is negative");
    for (const auto& [token, bias] : p.logit_bias) {
        if (token < 0) fail("logit_bias names a negative token id " + std::to_string(token));
        if (std::isnan(bias) || bias == kPosInf)
            fail("logit_bias for token " + std::to_string(token) + " must be a number or -inf");
    }
    seed_rng();
}

void Sampler::seed_rng() {
    uint64_t s = static_cast<uint64_t>(params_.seed);
    if (params_.mode == SamplerMode::Llama2c) {
        // run.c: seed <= 0 means (unsigned int)time(NULL); a zero xorshift state would stay zero
        if (params_.seed == -1 || s == 0) {
            s = random_seed();
            s = (s ^ (s >> 32)) & 0xffffffffull;
            if (s == 0) s = 1;
        }
    } else if (params_.seed == -1) {
        s = random_seed();
    }
    seed_ = s;
    rng_.seed_with(s);
    rng_l2c_.seed_with(s);
}

void Sampler::reset() {
    ring_.clear();
    ring_next_ = 0;
    for (int32_t t : distinct_) {
        counts_[t] = 0;
        distinct_pos_[t] = -1;
    }
    distinct_.clear();
    seed_rng();
}

// ---- penalty history

void Sampler::count_add(int token, int delta) {
    if (static_cast<size_t>(token) >= counts_.size()) {
        counts_.resize(static_cast<size_t>(token) + 1, 0);
        distinct_pos_.resize(static_cast<size_t>(token) + 1, -1);
    }
    int32_t& c = counts_[token];
    if (c == 0 && delta > 0) {
        distinct_pos_[token] = static_cast<int32_t>(distinct_.size());
        distinct_.push_back(token);
    }
    c += delta;
    if (c == 0) {
        const int32_t pos = distinct_pos_[token];
        const int32_t last = distinct_.back();
        distinct_[pos] = last;
        distinct_pos_[last] = pos;
        distinct_.pop_back();
        distinct_pos_[token] = -1;
    }
}

void Sampler::accept(int token) {
    if (token < 0) fail("accept() got a negative token id " + std::to_string(token));
    if (token > kMaxTokenId) fail("accept() got an implausible token id " + std::to_string(token));
    const int32_t window = params_.penalty_last_n;
    if (window == 0) return;
    count_add(token, +1);
    if (window < 0) return;  // unbounded: counts only
    if (ring_.size() < static_cast<size_t>(window)) {
        ring_.push_back(token);
        return;
    }
    const int32_t oldest = ring_[ring_next_];
    ring_[ring_next_] = token;
    ring_next_ = (ring_next_ + 1) % static_cast<size_t>(window);
    count_add(oldest, -1);
}

void Sampler::apply_bias_and_penalties(float* logits, int n_vocab) const {
    const SamplerParams& p = params_;
    for (const auto& [token, bias] : p.logit_bias)
        if (token < n_vocab) logits[token] += bias;

    if (p.penalty_last_n == 0 ||
        (p.repetition_penalty == 1.0f && p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f))
        return;
    for (int32_t t : distinct_) {
        if (t >= n_vocab) continue;
        const int32_t count = counts_[t];
        float& l = logits[t];
        if (l <= 0.0f)
            l *= p.repetition_penalty;
        else
            l /= p.repetition_penalty;
        l -= static_cast<float>(count) * p.frequency_penalty +
             static_cast<float>(count > 0) * p.presence_penalty;
    }
}

// ---- sampling

int Sampler::sample(float* logits, int n_vocab, SampleInfo* info) {
    if (logits == nullptr || n_vocab <= 0) fail("sample() needs at least one logit");
    apply_bias_and_penalties(logits, n_vocab);
    int token;
    if (params_.mode == SamplerMode::Llama2c) {
        if (info != nullptr) {  // run.c overwrites its input; keep the logits for the log-probabilities
            scratch_.assign(logits, logits + n_vocab);
            token = sample_llama2c(scratch_.data(), n_vocab);
        } else {
            token = sample_llama2c(logits, n_vocab);
        }
    } else {
        token = sample_rotor(logits, n_vocab);
    }
    if (info != nullptr) fill_info(logits, n_vocab, token, info);
    return token;
}

void Sampler::fill_info(const float* logits, int n_vocab, int token, SampleInfo* info) {
    info->token = token;
    info->top.clear();
    float lmax = kNegInf;
    for (int i = 0; i < n_vocab; i++) lmax = logits[i] > lmax ? logits[i] : lmax;
    // log p(t) = logit(t) - log_z; a +inf logit takes all the mass (shared among the +inf tokens)
    double log_z = 0.0;
    if (lmax == kPosInf) {
        int n_inf = 0;
        for (int i = 0; i < n_vocab; i++) n_inf += logits[i] == kPosInf;
        log_z = std::log(static_cast<double>(n_inf));
    } else if (lmax > kNegInf) {
        double sum = 0.0;
        for (int i = 0; i < n_vocab; i++)
            if (logits[i] > kNegInf) sum += std::exp(static_cast<double>(logits[i]) - lmax);
        log_z = lmax + std::log(sum);
    }
    auto logprob = [&](int t) -> double {
        const float l = logits[t];
        if (!(l > kNegInf)) return -std::numeric_limits<double>::infinity();
        if (lmax == kPosInf) return l == kPosInf ? -log_z : -std::numeric_limits<double>::infinity();
        return static_cast<double>(l) - log_z;
    };
    info->logprob =
        (token >= 0 && token < n_vocab) ? logprob(token) : -std::numeric_limits<double>::infinity();
    if (params_.n_probs > 0) {
        select_top(logits, n_vocab, static_cast<size_t>(params_.n_probs), top_);
        for (const Cand& c : top_) info->top.push_back({c.id, logprob(c.id)});
    }
}

// The k best of the finite / +inf logits, sorted best first, through a heap whose front is the worst
// kept so far. Ids arrive in ascending order, so an equal logit never displaces a kept one.
void Sampler::select_top(const float* logits, int n_vocab, size_t k, std::vector<Cand>& out) const {
    out.clear();
    if (k == 0) return;
    const CandBetter better;
    for (int i = 0; i < n_vocab; i++) {
        const float l = logits[i];
        if (!(l > kNegInf)) continue;
        if (out.size() < k) {
            out.push_back({l, i});
            std::push_heap(out.begin(), out.end(), better);
        } else if (l > out.front().logit) {
            std::pop_heap(out.begin(), out.end(), better);
            out.back() = {l, i};
            std::push_heap(out.begin(), out.end(), better);
        }
    }
    std::sort(out.begin(), out.end(), better);
}

// Given cand_[0, done) sorted and better than the rest, extends the sorted prefix to [0, end).
void Sampler::sort_prefix(size_t done, size_t end) {
    const auto first = cand_.begin() + static_cast<ptrdiff_t>(done);
    const auto mid = cand_.begin() + static_cast<ptrdiff_t>(end);
    if (mid < cand_.end()) std::nth_element(first, mid, cand_.end(), CandBetter());
    std::sort(first, mid, CandBetter());
}

size_t Sampler::keep_count() const { return static_cast<size_t>(std::max(params_.min_keep, 1)); }

void Sampler::apply_typical() {
    const size_t m = cand_.size();
    float lmax = kNegInf;
    for (const Cand& c : cand_) lmax = std::max(lmax, c.logit);
    double z = 0.0;
    for (const Cand& c : cand_) z += std::exp(static_cast<double>(c.logit) - lmax);
    const double log_z = std::log(z);
    typical_.resize(m);
    double entropy = 0.0;
    for (size_t i = 0; i < m; i++) {
        const double log_p = static_cast<double>(cand_[i].logit) - lmax - log_z;
        const double p = std::exp(log_p);
        typical_[i] = {-log_p, p, cand_[i]};
        if (p > 0.0) entropy -= p * log_p;
    }
    for (Typical& t : typical_) t.score = std::fabs(t.score - entropy);
    std::sort(typical_.begin(), typical_.end(), [](const Typical& a, const Typical& b) {
        if (a.score != b.score) return a.score < b.score;
        return CandBetter()(a.c, b.c);
    });
    const double target = params_.typical_p;
    const size_t keep_min = keep_count();
    size_t last = m;
    double cum = 0.0;
    for (size_t i = 0; i < m; i++) {
        cum += typical_[i].p;
        if (cum > target && i + 1 >= keep_min) {
            last = i + 1;
            break;
        }
    }
    cand_.resize(last);
    for (size_t i = 0; i < last; i++) cand_[i] = typical_[i].c;
    std::sort(cand_.begin(), cand_.end(), CandBetter());
}

void Sampler::apply_top_p(bool& sorted, float lmax) {
    const size_t m = cand_.size();
    double z = 0.0;
    for (const Cand& c : cand_) z += std::exp(static_cast<double>(c.logit) - lmax);
    const double target = params_.top_p;
    const size_t keep_min = keep_count();
    size_t last = m;
    size_t done = sorted ? m : 0;
    size_t chunk = 64;
    double cum = 0.0;
    for (size_t i = 0; i < m; i++) {
        if (i == done) {  // sort only as much of the list as the walk reaches
            const size_t end = std::min(m, done + chunk);
            sort_prefix(done, end);
            done = end;
            chunk *= 4;
        }
        cum += std::exp(static_cast<double>(cand_[i].logit) - lmax) / z;
        if (cum >= target && i + 1 >= keep_min) {
            last = i + 1;
            break;
        }
    }
    cand_.resize(last);
    sorted = true;
}

void Sampler::apply_min_p(bool& sorted, float lmax) {
    const size_t m = cand_.size();
    const float min_logit = lmax + std::log(params_.min_p);  // p >= min_p * p_max, as llama.cpp (float)
    const size_t keep_min = std::min(keep_count(), m);
    if (sorted) {
        size_t i = 1;
        while (i < m && (cand_[i].logit >= min_logit || i < keep_min)) i++;
        cand_.resize(i);
        return;
    }
    size_t passing = 0;
    for (const Cand& c : cand_) passing += c.logit >= min_logit;
    if (passing >= keep_min) {
        cand_.erase(std::remove_if(cand_.begin(), cand_.end(),
                                   [min_logit](const Cand& c) { return !(c.logit >= min_logit); }),
                    cand_.end());
    } else {
        sort_prefix(0, keep_min);
        cand_.resize(keep_min);
        sorted = true;
    }
}

int Sampler::sample_rotor(const float* logits, int n_vocab) {
    const SamplerParams& p = params_;
    if (p.temperature <= 0.0f) {
        int best = -1;
        float best_l = kNegInf;
        for (int i = 0; i < n_vocab; i++) {
            if (logits[i] > best_l) {
                best_l = logits[i];
                best = i;
            }
        }
        if (best < 0) fail("no token can be chosen: every logit is -inf or NaN");
        return best;
    }

    // 3. top-k, or every possible token
    bool sorted = false;
    if (p.top_k > 0 && p.top_k < n_vocab) {
        select_top(logits, n_vocab, static_cast<size_t>(p.top_k), cand_);
        sorted = true;
    } else {
        cand_.clear();
        for (int i = 0; i < n_vocab; i++)
            if (logits[i] > kNegInf) cand_.push_back({logits[i], i});
    }
    if (cand_.empty()) fail("no token can be chosen: every logit is -inf or NaN");
    auto max_logit = [&]() {
        if (sorted) return cand_.front().logit;
        float lmax = kNegInf;
        for (const Cand& c : cand_) lmax = std::max(lmax, c.logit);
        return lmax;
    };
    float lmax = max_logit();
    if (lmax == kPosInf) {
        for (const Cand& c : cand_)  // sorted or ascending ids: the first +inf has the lowest id
            if (c.logit == kPosInf) return c.id;
    }

    // 4-6. truncation
    if (p.typical_p < 1.0f) {
        apply_typical();
        sorted = true;
        lmax = cand_.front().logit;
    }
    if (p.top_p < 1.0f) apply_top_p(sorted, lmax);
    if (p.min_p > 0.0f) apply_min_p(sorted, lmax);

    // 7-8. temperature and the draw, in the candidates' order
    lmax = max_logit();
    const size_t m = cand_.size();
    weight_.resize(m);
    const double temp = p.temperature;
    double total = 0.0;
    for (size_t i = 0; i < m; i++) {
        weight_[i] = std::exp((static_cast<double>(cand_[i].logit) - lmax) / temp);
        total += weight_[i];
    }
    const double target = rng_.uniform() * total;
    double cum = 0.0;
    for (size_t i = 0; i < m; i++) {
        cum += weight_[i];
        if (target < cum) return cand_[i].id;
    }
    for (size_t i = m; i-- > 0;)  // rounding: the last candidate that has any weight
        if (weight_[i] > 0.0) return cand_[i].id;
    return cand_.front().id;
}

// ---- llama2.c run.c, operation for operation (float arithmetic throughout)

int Sampler::sample_llama2c(float* x, int n) {
    auto argmax = [&]() {
        int max_i = 0;
        float max_p = x[0];
        for (int i = 1; i < n; i++) {
            if (x[i] > max_p) {
                max_i = i;
                max_p = x[i];
            }
        }
        return max_i;
    };
    const float temperature = params_.temperature;
    if (temperature <= 0.0f) return argmax();

    for (int q = 0; q < n; q++) x[q] /= temperature;
    // softmax
    float max_val = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max_val) max_val = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = std::exp(x[i] - max_val);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;

    const float coin = rng_l2c_.next_f32();
    const float topp = params_.top_p;
    if (topp <= 0.0f || topp >= 1.0f) {  // sample_mult
        float cdf = 0.0f;
        for (int i = 0; i < n; i++) {
            cdf += x[i];
            if (coin < cdf) return i;
        }
        return n - 1;
    }

    // sample_topp
    if (n == 1) return 0;
    const float cutoff = (1.0f - topp) / static_cast<float>(n - 1);
    top_.clear();
    for (int i = 0; i < n; i++)
        if (x[i] >= cutoff) top_.push_back({x[i], i});  // .logit holds the probability
    if (top_.empty()) return argmax();
    // glibc's qsort is a stable merge sort: ties keep ascending index order
    std::sort(top_.begin(), top_.end(), CandBetter());
    const int n0 = static_cast<int>(top_.size());
    float cumulative_prob = 0.0f;
    int last_idx = n0 - 1;
    for (int i = 0; i < n0; i++) {
        cumulative_prob += top_[i].logit;
        if (cumulative_prob > topp) {
            last_idx = i;
            break;
        }
    }
    const float r = coin * cumulative_prob;
    float cdf = 0.0f;
    for (int i = 0; i <= last_idx; i++) {
        cdf += top_[i].logit;
        if (r < cdf) return top_[i].id;
    }
    return top_[last_idx].id;
}

}  // namespace rotor
