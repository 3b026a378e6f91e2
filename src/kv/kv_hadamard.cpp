#include "kv/kv_hadamard.h"

#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <mutex>

#include "common/error.h"

namespace rotor::kvq {

namespace {

bool is_prime(int q) {
    if (q < 2) return false;
    for (int f = 2; f * f <= q; f++)
        if (q % f == 0) return false;
    return true;
}

// The Paley factor p of n: 1 when n is a power of two, else the smallest q + 1 (q prime, q = 3 mod 4)
// with n / (q + 1) a power of two; 0 when there is none.
int paley_factor(int n) {
    if (n <= 0) return 0;
    if (std::has_single_bit((unsigned)n)) return 1;
    for (int p = 4; p <= n; p += 4) {
        if (n % p != 0 || !std::has_single_bit((unsigned)(n / p))) continue;
        const int q = p - 1;
        if (q % 4 == 3 && is_prime(q)) return p;
    }
    return 0;
}

}  // namespace

bool Hadamard::exists(int n, std::string* why) {
    if (paley_factor(n) > 0) return true;
    if (why)
        *why = "no Hadamard matrix of order " + std::to_string(n) +
               " of the form 2^m * (q + 1), q a prime = 3 mod 4";
    return false;
}

Hadamard::Hadamard(int n, uint64_t sign_seed) : n_(n), p_(paley_factor(n)) {
    std::string why;
    if (!exists(n, &why)) throw Error(why);
    rows_ = n / p_;
    if (p_ > 1) {
        // Paley I: H = I + S, S = [[0, 1^T], [-1, Q]], Q_ij = chi(j - i) (quadratic character mod q).
        const int q = p_ - 1;
        std::vector<int> chi(q, -1);
        chi[0] = 0;
        for (int a = 1; a < q; a++) chi[(int)((int64_t)a * a % q)] = 1;
        paley_.assign((size_t)p_ * p_, 0);
        for (int i = 0; i < p_; i++)
            for (int j = 0; j < p_; j++) {
                int s;
                if (i == 0 && j == 0) s = 0;
                else if (i == 0) s = 1;
                else if (j == 0) s = -1;
                else s = chi[((j - i) % q + q) % q];
                paley_[(size_t)i * p_ + j] = (int8_t)(s + (i == j ? 1 : 0));
            }
        // The construction is a theorem, but a wrong table would silently break every format using it.
        for (int i = 0; i < p_; i++)
            for (int j = 0; j < p_; j++) {
                int dot = 0;
                for (int k = 0; k < p_; k++) dot += paley_[(size_t)i * p_ + k] * paley_[(size_t)j * p_ + k];
                if (dot != (i == j ? p_ : 0)) throw Error("internal error: Paley matrix of order " + std::to_string(p_));
            }
    }
    if (sign_seed) {
        signs_.resize(n);
        for (int i = 0; i < n; i++) signs_[i] = hadamard_sign_negative(sign_seed, n, i) ? -1.0 : 1.0;
    }
}

int Hadamard::entry(int i, int j) const {
    const int a = i / p_, b = i % p_, a2 = j / p_, b2 = j % p_;
    const int sylv = (std::popcount((unsigned)(a & a2)) & 1) ? -1 : 1;
    return sylv * (p_ > 1 ? paley_[(size_t)b * p_ + b2] : 1);
}

void Hadamard::apply(double* x, bool transpose) const {
    if (p_ > 1) {
        thread_local std::vector<double> tmp;
        tmp.resize(p_);
        for (int a = 0; a < rows_; a++) {
            double* r = x + (size_t)a * p_;
            for (int i = 0; i < p_; i++) {
                double s = 0;
                for (int j = 0; j < p_; j++)
                    s += (transpose ? paley_[(size_t)j * p_ + i] : paley_[(size_t)i * p_ + j]) * r[j];
                tmp[i] = s;
            }
            for (int i = 0; i < p_; i++) r[i] = tmp[i];
        }
    }
    // Sylvester butterflies across the 2^m rows of p elements (symmetric, so no transpose needed).
    for (int h = 1; h < rows_; h *= 2)
        for (int a0 = 0; a0 < rows_; a0 += 2 * h)
            for (int a = a0; a < a0 + h; a++) {
                double* u = x + (size_t)a * p_;
                double* v = x + (size_t)(a + h) * p_;
                for (int b = 0; b < p_; b++) {
                    const double s = u[b], d = v[b];
                    u[b] = s + d;
                    v[b] = s - d;
                }
            }
}

void Hadamard::forward(float* x) const {
    thread_local std::vector<double> buf;
    buf.resize(n_);
    for (int i = 0; i < n_; i++) buf[i] = signs_.empty() ? x[i] : x[i] * signs_[i];
    apply(buf.data(), false);
    const double norm = 1.0 / std::sqrt((double)n_);
    for (int i = 0; i < n_; i++) x[i] = (float)(buf[i] * norm);
}

void Hadamard::inverse(float* x) const {
    thread_local std::vector<double> buf;
    buf.resize(n_);
    for (int i = 0; i < n_; i++) buf[i] = x[i];
    apply(buf.data(), true);
    const double norm = 1.0 / std::sqrt((double)n_);
    for (int i = 0; i < n_; i++) x[i] = (float)(buf[i] * norm * (signs_.empty() ? 1.0 : signs_[i]));
}

const Hadamard& shared_hadamard(int n, bool randomized) {
    // Lock-free lookups after the first use of a size; the objects live for the whole program.
    constexpr int kMax = 8192;
    static std::array<std::atomic<const Hadamard*>, kMax + 1> plain{}, randomized_{};
    static std::mutex mu;
    auto& slot = (randomized ? randomized_ : plain);
    if (n < 1 || n > kMax) throw Error("Hadamard rotation of order " + std::to_string(n) + " is not supported");
    if (const Hadamard* h = slot[n].load(std::memory_order_acquire)) return *h;
    std::lock_guard<std::mutex> lock(mu);
    if (const Hadamard* h = slot[n].load(std::memory_order_acquire)) return *h;
    const Hadamard* h = new Hadamard(n, randomized ? kSignSeed : 0);
    slot[n].store(h, std::memory_order_release);
    return *h;
}

}  // namespace rotor::kvq
