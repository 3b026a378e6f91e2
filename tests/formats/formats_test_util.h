// Helpers of the format tests: test data files, bit-exact comparison, Gaussian inputs.
#pragma once
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "formats/formats.h"
#include "testdata.h"

namespace rotor::test {

inline std::string quants_dir() { return testdata("quants"); }
inline std::string quants_file(const std::string& name) { return quants_dir() + "/" + name; }

inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Float32 little-endian file (the test machines are little-endian, as GGUF).
inline std::vector<float> read_f32_file(const std::string& path) {
    const std::vector<uint8_t> b = read_file_bytes(path);
    std::vector<float> v(b.size() / 4);
    if (!v.empty()) memcpy(v.data(), b.data(), v.size() * 4);
    return v;
}

// Byte storage aligned for any block struct (block_q8_K needs 4).
struct Bytes {
    std::vector<uint64_t> store;
    size_t size = 0;
    explicit Bytes(size_t n = 0) : store((n + 7) / 8), size(n) {}
    explicit Bytes(const std::vector<uint8_t>& v) : Bytes(v.size()) {
        if (!v.empty()) memcpy(data(), v.data(), v.size());
    }
    uint8_t* data() { return reinterpret_cast<uint8_t*>(store.data()); }
    const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(store.data()); }
    std::vector<uint8_t> vec() const { return std::vector<uint8_t>(data(), data() + size); }
};

// The gguf-py enum name used by the test data files ("Q4_K" for q4_K).
inline std::string testdata_name(GgmlType t) {
    std::string s(format_info(t).name);
    for (char& c : s) c = (char)std::toupper((unsigned char)c);
    return s;
}

inline uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// Bit-pattern equality (so +0 != -0); describes the first differences on failure.
inline ::testing::AssertionResult same_bits(const std::vector<float>& got, const std::vector<float>& want,
                                            int block_elems = 1) {
    if (got.size() != want.size())
        return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
    size_t bad = 0;
    std::string first;
    for (size_t i = 0; i < got.size(); i++) {
        if (bits_of(got[i]) == bits_of(want[i])) continue;
        if (bad++ < 5) {
            char buf[160];
            snprintf(buf, sizeof buf, "\n  element %zu (block %zu): got %.9g (0x%08x), want %.9g (0x%08x)", i,
                     i / (size_t)block_elems, (double)got[i], bits_of(got[i]), (double)want[i], bits_of(want[i]));
            first += buf;
        }
    }
    if (bad == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements differ" << first;
}

inline ::testing::AssertionResult same_bytes(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want,
                                             size_t block_bytes) {
    if (got.size() != want.size())
        return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
    size_t bad_blocks = 0;
    std::string first;
    for (size_t b = 0; b * block_bytes < got.size(); b++) {
        if (memcmp(got.data() + b * block_bytes, want.data() + b * block_bytes, block_bytes) == 0) continue;
        if (bad_blocks++ < 3) {
            for (size_t k = b * block_bytes; k < (b + 1) * block_bytes; k++) {
                if (got[k] != want[k]) {
                    char buf[120];
                    snprintf(buf, sizeof buf, "\n  block %zu: first difference at byte %zu: got 0x%02x, want 0x%02x",
                             b, k - b * block_bytes, got[k], want[k]);
                    first += buf;
                    break;
                }
            }
        }
    }
    if (bad_blocks == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << bad_blocks << " of " << got.size() / block_bytes << " blocks differ"
                                         << first;
}

// Standard normal samples from a fixed seed, the same on every platform (mt19937 is specified;
// the standard distributions are not).
inline std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    auto uniform = [&] { return ((double)(rng() >> 5) + 0.5) / 134217728.0; };  // (0, 1), 27 bits
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i += 2) {
        const double r = std::sqrt(-2.0 * std::log(uniform())), a = 6.283185307179586 * uniform();
        v[i] = (float)(r * std::cos(a)) * sigma;
        if (i + 1 < n) v[i + 1] = (float)(r * std::sin(a)) * sigma;
    }
    return v;
}

// Approximately Gaussian samples (sum of 12 uniforms - 6) using only integer and IEEE arithmetic,
// so the values are identical with any libm: inputs for the golden digests.
inline std::vector<float> irwin_hall(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < 12; k++) s += (double)(rng() >> 8) * (1.0 / 16777216.0);
        v[i] = (float)(s - 6.0);
    }
    return v;
}

// FNV-1a, 64 bits.
inline uint64_t fnv1a(const std::vector<uint8_t>& b) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint8_t c : b) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

inline std::vector<uint8_t> quantize(GgmlType t, const std::vector<float>& x) {
    Bytes out(row_bytes(t, x.size()));
    quantize_row(t, x.data(), out.data(), (int64_t)x.size());
    return out.vec();
}

inline std::vector<float> dequantize(GgmlType t, const std::vector<uint8_t>& q, size_t n) {
    Bytes in(q);
    std::vector<float> y(n);
    dequantize_row(t, in.data(), y.data(), (int64_t)n);
    return y;
}

// sqrt(sum (x - y)^2 / sum x^2)
inline double rel_rmse(const std::vector<float>& x, const std::vector<float>& y) {
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); i++) {
        num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        den += (double)x[i] * x[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace rotor::test
