// Random number generators for sampling. Both are defined bit for bit by their formulas, so a seed
// gives the same stream on every platform and standard library (no <random> distributions).
#pragma once
#include <cstdint>

namespace rotor {

// SplitMix64 (Steele, Lea, Flood 2014): expands one 64-bit seed into well-mixed state words.
inline uint64_t splitmix64(uint64_t& x) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// xoshiro256** (Blackman & Vigna 2018), state filled from the seed by four SplitMix64 steps
// (never all zero). rotor's own sampler draws from this.
class Xoshiro256 {
public:
    explicit Xoshiro256(uint64_t seed = 0) { seed_with(seed); }

    void seed_with(uint64_t seed) {
        uint64_t x = seed;
        for (uint64_t& w : s_) w = splitmix64(x);
    }

    uint64_t next() {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    // Uniform in [0, 1): the top 53 bits as a multiple of 2^-53.
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t s_[4] = {};
};

// xorshift64* exactly as llama2.c's run.c (random_u32 / random_f32): the state is the seed itself
// (a zero state stays zero forever, which is why run.c refuses seed 0).
class XorShift64Star {
public:
    explicit XorShift64Star(uint64_t state = 0) : state_(state) {}

    void seed_with(uint64_t state) { state_ = state; }
    uint64_t state() const { return state_; }

    uint32_t next_u32() {
        state_ ^= state_ >> 12;
        state_ ^= state_ << 25;
        state_ ^= state_ >> 27;
        return static_cast<uint32_t>((state_ * 0x2545F4914F6CDD1Dull) >> 32);
    }

    // run.c's random_f32: the top 24 bits of next_u32() divided by 2^24, in float, in [0, 1).
    float next_f32() { return static_cast<float>(next_u32() >> 8) / 16777216.0f; }

private:
    uint64_t state_;
};

}  // namespace rotor
