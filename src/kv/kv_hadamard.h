// Orthonormal Hadamard rotations for KV formats, of any order n = 2^m * p where p = 1 (Sylvester,
// the Walsh-Hadamard transform llama.cpp uses) or p = q + 1 for a prime q = 3 (mod 4) (Paley's
// construction I), so head sizes that are not powers of two (80 = 4 * 20, 96 = 8 * 12) get a true
// Hadamard matrix too: every output coordinate mixes every input coordinate with weight 1/sqrt(n).
// The Kronecker product H_{2^m} (x) P_p is applied as p-point dense transforms inside 2^m-point
// butterflies, O(n (log n + p)).
//
// Optionally randomized with a fixed sign vector D (TurboQuant's "randomized Hadamard"):
// forward(x) = H D x / sqrt(n), inverse(y) = D H^T y / sqrt(n). Computed in double, so the rounding
// error of a round trip is about one float ulp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/half.h"  // ROTOR_HD: the sign and PRNG functions below also run on the GPU

namespace rotor::kvq {

class Hadamard {
public:
    // Throws rotor::Error if no Hadamard matrix of this form exists (see exists()).
    Hadamard(int n, uint64_t sign_seed);  // sign_seed 0: no random signs (plain H / sqrt(n))
    static bool exists(int n, std::string* why);

    int size() const { return n_; }
    int paley_order() const { return p_; }  // 1 for a power of two
    void forward(float* x) const;
    void inverse(float* x) const;
    // Entry (i, j) of the unnormalized +-1 matrix H (without signs), for tests.
    int entry(int i, int j) const;

private:
    void apply(double* x, bool transpose) const;
    int n_, p_, rows_;            // n = rows * p, rows a power of two
    std::vector<int8_t> paley_;   // p x p, +-1 (empty when p == 1)
    std::vector<double> signs_;   // n entries of +-1, empty when not randomized
};

// Shared, immutable rotations by size (created on first use; safe to call from any thread).
// Seeds: 0 for the plain Hadamard of the "h" types, kSignSeed for the randomized one.
constexpr uint64_t kSignSeed = 0x726f746f722d6b76ull;  // "rotor-kv"
const Hadamard& shared_hadamard(int n, bool randomized);

// splitmix64: the one PRNG behind every fixed random constant of the KV formats (signs, tables).
ROTOR_HD uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
inline uint64_t splitmix64(uint64_t& state) { return splitmix64_mix(state += 0x9e3779b97f4a7c15ull); }
// What the (i + 1)-th call of splitmix64 on `state` returns, without the i calls before it.
ROTOR_HD uint64_t splitmix64_nth(uint64_t state, uint64_t i) {
    return splitmix64_mix(state + (i + 1) * 0x9e3779b97f4a7c15ull);
}

// Whether sign i of the randomized rotation of order n (shared_hadamard(n, true)) is -1: the one
// definition the CPU's Hadamard and the GPU kernels (tcq's rotations) both use.
ROTOR_HD bool hadamard_sign_negative(uint64_t sign_seed, int n, int i) {
    return (splitmix64_nth(sign_seed ^ ((uint64_t)n << 32), (uint64_t)i) >> 63) != 0;
}

}  // namespace rotor::kvq
