// rotor's own formats, tcq2 / tcq3 / tcq4: randomized Hadamard rotation (as tbq) followed by
// trellis-coded quantization instead of one scalar code per coordinate.
//
// Why: after the rotation a head vector is, to a very good approximation, a Gaussian vector with one
// unknown scale. A scalar Lloyd-Max quantizer at b bits is 4.3-4.4 dB (2.7x in MSE) away from the
// rate-distortion limit 4^-b of that source; most of the gap is the "space-filling" loss of a cubic
// cell in high dimension, which only vector quantization can recover. A bitshift trellis (the code
// of QTIP, Tseng et al. 2024) is a vector quantizer over the whole head that stays cheap to decode:
//
//   The row holds a circular bit string B of n * k bits (n = head size, k = bits per element).
//   Element i is decoded from the L = 12 bits of B starting at bit i * k (wrapping around the end):
//   y_i = scale * T_k[window_i], T_k a fixed table of the 4096 normal quantiles
//   Phi^-1((i + 1/2) / 4096) arranged as make_code_table describes (fixed seed). Consecutive
//   windows share L - k bits, so the encoder cannot pick each element's value freely: it searches
//   the best path through a 4096-state trellis (Viterbi; tail-biting, so the string closes on
//   itself and costs exactly n * k bits). Decoding element i is one 24-bit load, a shift, a mask
//   and a table lookup: random access, no state, fit for a fused attention kernel (the table is
//   16 KiB of floats). scale is the least-squares scale <y, T[w]> / ||T[w]||^2, stored as fp16.
//
// Row layout: {fp16 scale; u8 B[n * k / 8]}, bit j of B = bit j % 8 of byte j / 8. Bits per
// element: k + 16 / n (3.125 at 3 bits on a head of 128: RotorQuant's planar3_0 / iso3_0 size).
// Measured on N(0, 1) vectors of 128 (kv-eval's gaussian set): relative MSE 0.071 / 0.0184 /
// 0.0048 at 2 / 3 / 4 bits, against Lloyd-Max's 0.116 / 0.0341 / 0.0093 at the same size, i.e.
// about half a bit per element better; the Shannon bound is 0.0625 / 0.0156 / 0.0039.
// Encoding costs about (n + 64) x 4096 compare-and-adds per vector (a first pass over 64 elements
// around the wrap point fixes the tail-biting bits); decoding costs what a scalar code does.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "kv/kv_codebook.h"
#include "kv/kv_format_impl.h"
#include "kv/kv_hadamard.h"
#include "kv/kv_trellis.h"

namespace rotor::kvq {

namespace {

constexpr int kL = kTrellisL;
constexpr int kStates = kTrellisStates;
constexpr int kMaxRowCodeBytes = 1024;  // head sizes up to 2048 at 4 bits
constexpr uint64_t kTableSeed = 0x74726c6c69733132ull;

std::vector<float> make_code_table(int k) {
    const int G = kStates >> k, F = 1 << k;
    uint64_t st = kTableSeed + (uint64_t)k;
    auto shuffle = [&](std::vector<int>& v) {
        for (int i = (int)v.size() - 1; i > 0; i--) std::swap(v[i], v[splitmix64(st) % (uint64_t)(i + 1)]);
    };
    std::vector<int> offset(G), perm(F);
    for (int j = 0; j < G; j++) offset[j] = j;
    shuffle(offset);
    std::vector<float> t(kStates);
    for (int j = 0; j < G; j++) {
        for (int h = 0; h < F; h++) perm[h] = h;
        shuffle(perm);
        for (int h = 0; h < F; h++) t[(size_t)perm[h] * G + j] = (float)normal_quantile((h + (offset[j] + 0.5) / G) / F);
    }
    return t;
}

// The table for k bits per element. From a state whose low L-k bits are j, the next element can
// take the 2^k values T[h * 2^(L-k) + j], h = the k new bits. Those are made one value per stratum
// h' of N(0, 1) split into 2^k equiprobable cells, at the quantile (h' + u_j) / 2^k with a per-j
// offset u_j (the strata then hold every quantile (i + 1/2) / 4096 exactly once), and assigned to
// h through a per-j random permutation: every choice set spans the distribution, and the new bits
// say nothing simple about the value. Measured on Gaussian data this is 5-9% lower MSE than a plain
// random assignment of the 4096 quantiles.
const std::vector<float>& code_table(int k) { return trellis_code_table(k); }

// The same table in the Viterbi's state order P(s) = (s mod 2^k) * 2^(L-k) + (s >> k).
std::vector<float> make_code_table_p(int k) {
    const int G = kStates >> k;
    const std::vector<float>& T = code_table(k);
    std::vector<float> tp(kStates);
    for (int s = 0; s < kStates; s++) tp[(size_t)(s & ((1 << k) - 1)) * G + (s >> k)] = T[s];
    return tp;
}
const std::vector<float>& code_table_p(int k) {
    static const std::vector<float> tables[3] = {make_code_table_p(2), make_code_table_p(3), make_code_table_p(4)};
    return tables[k - 2];
}

// Viterbi search over targets t[0..m): the state sequence minimizing sum_i (t_i - T[s_i])^2 subject
// to s_i >> k == s_{i+1} & (2^(L-k) - 1). init_low / end_high (or -1) pin the low L-k bits of the
// first state and the high L-k bits of the last one.
//
// Costs are kept in the order P(s) = (s mod 2^k) * G + (s >> k), G = 2^(L-k): the 2^k candidates
// of a predecessor group (same s >> k) are then G apart, so the group minimum is an elementwise
// minimum of 2^k contiguous arrays, and the next costs, after one small transpose of the minima,
// are written contiguously too. TP is T in that order. All inner loops vectorize.
template <int K>
inline float tag(float cost, uint32_t u) {
    return std::bit_cast<float>((std::bit_cast<uint32_t>(cost) & ~(uint32_t)((1 << K) - 1)) | u);
}

template <int K>
void viterbi_k(const float* TP, const float* t, int m, int init_low, int end_high, int* states) {
    constexpr int G = kStates >> K, F = 1 << K, A = G / F, low_mask = G - 1;
    static_assert(kL >= 2 * K, "the transpose below needs G to be a multiple of 2^k");
    thread_local std::vector<float> cost, next, gmin, gmin_t;
    thread_local std::vector<uint8_t> back;
    cost.resize(kStates);
    next.resize(kStates);
    gmin.resize(G);
    gmin_t.resize(G);
    back.resize((size_t)m * G);
    constexpr float kInf = 1e30f;  // "not allowed"; finite, so its bits stay a number when tagged
    for (int p = 0; p < kStates; p++) {
        const int s = ((p % G) << K) | (p / G);
        const float e = t[0] - TP[p];
        cost[p] = (init_low < 0 || (s & low_mask) == init_low) ? e * e : kInf;
    }
    for (int i = 1; i < m; i++) {
        // The candidate index rides in the low K mantissa bits of its cost (costs are >= 0, so the
        // float order is the bit order), which makes min-with-argmin a plain vector minimum. It
        // perturbs a path metric by at most 2^-20 of itself per step: it can only pick among
        // near-equal paths.
        uint8_t* bk = back.data() + (size_t)i * G;
        float* gm = gmin.data();
        for (int g = 0; g < G; g++) gm[g] = tag<K>(cost[g], 0);
        for (int u = 1; u < F; u++) {
            const float* c = cost.data() + (size_t)u * G;
            for (int g = 0; g < G; g++) {
                const float v = tag<K>(c[g], (uint32_t)u);
                gm[g] = v < gm[g] ? v : gm[g];
            }
        }
        for (int g = 0; g < G; g++) bk[g] = (uint8_t)(std::bit_cast<uint32_t>(gm[g]) & (F - 1));
        for (int a = 0; a < A; a++)
            for (int b = 0; b < F; b++) gmin_t[(size_t)b * A + a] = gm[(a << K) | b];
        const float ti = t[i];
        for (int b = 0; b < F; b++) {
            const float* gb = gmin_t.data() + (size_t)b * A;
            for (int h = 0; h < F; h++) {
                const size_t off = (size_t)b * G + (size_t)h * A;
                const float* tp = TP + off;
                float* nx = next.data() + off;
                for (int a = 0; a < A; a++) {
                    const float e = ti - tp[a];
                    nx[a] = gb[a] + e * e;
                }
            }
        }
        cost.swap(next);
    }
    int best_p = -1;
    for (int p = 0; p < kStates; p++)
        if ((end_high < 0 || p % G == end_high) && (best_p < 0 || cost[p] < cost[best_p])) best_p = p;
    int s = ((best_p % G) << K) | (best_p / G);
    states[m - 1] = s;
    for (int i = m - 1; i > 0; i--) {
        const int g = s & low_mask;
        s = (g << K) | back[(size_t)i * G + g];
        states[i - 1] = s;
    }
}

void viterbi(const float* TP, const float* t, int m, int k, int init_low, int end_high, int* states) {
    switch (k) {
        case 2: return viterbi_k<2>(TP, t, m, init_low, end_high, states);
        case 3: return viterbi_k<3>(TP, t, m, init_low, end_high, states);
        default: return viterbi_k<4>(TP, t, m, init_low, end_high, states);
    }
}

class TrellisFormat final : public NamedKvFormat {
public:
    explicit TrellisFormat(int k) : NamedKvFormat("tcq" + std::to_string(k)), k_(k), T_(code_table(k)), TP_(code_table_p(k)) {}

    bool supports(int n, std::string* why) const override {
        if (!check_head_dim_positive(n, why)) return false;
        if (n % 8 != 0 || (int64_t)n * k_ / 8 > kMaxRowCodeBytes) {
            if (why) *why = "trellis codes need a head size that is a multiple of 8 (at most 2048)";
            return false;
        }
        return Hadamard::exists(n, why);
    }
    uint64_t row_bytes(int n) const override { return trellis_row_bytes(n, k_); }
    bool rotated() const override { return true; }
    void rotate(float* x, int n) const override { shared_hadamard(n, true).forward(x); }
    void unrotate(float* x, int n) const override { shared_hadamard(n, true).inverse(x); }

    void quantize(const float* x, void* dst, int n) const override {
        thread_local std::vector<float> y, t;
        thread_local std::vector<int> st, st1;
        y.assign(x, x + n);
        rotate(y.data(), n);
        double norm2 = 0;
        for (int i = 0; i < n; i++) norm2 += (double)y[i] * y[i];
        auto* out = static_cast<uint8_t*>(dst);
        const int nbytes = n * k_ / 8;
        memset(out, 0, 2 + (size_t)nbytes);
        if (!(norm2 > 0) || !std::isfinite(norm2)) return;  // zero (or unusable) vector: scale 0
        const double sigma = std::sqrt(norm2 / n);
        t.resize(n);
        for (int i = 0; i < n; i++) t[i] = (float)(y[i] / sigma);

        // Tail-biting: a first pass over a window around the wrap point (elements n-W/2 .. n-1, 0 ..
        // W/2-1) settles the L-k bits the last and first states share; the full pass then runs with
        // them pinned at both ends (QTIP's two-pass heuristic).
        const int G = kStates >> k_;
        const int W = std::min(n, 64);
        thread_local std::vector<float> tw;
        tw.resize(W);
        for (int r = 0; r < W; r++) tw[r] = t[(n - W / 2 + r) % n];
        st1.resize(W);
        viterbi(TP_.data(), tw.data(), W, k_, -1, -1, st1.data());
        const int overlap = st1[W / 2] & (G - 1);
        st.resize(n);
        viterbi(TP_.data(), t.data(), n, k_, overlap, overlap, st.data());

        // Element i's state starts at bit i*k; its low k bits are the string's bits i*k .. i*k+k-1.
        uint8_t* codes = out + 2;
        for (int i = 0; i < n; i++) {
            const int bit = i * k_;
            const uint32_t v = (uint32_t)st[i] & ((1u << k_) - 1);
            codes[bit / 8] |= (uint8_t)(v << (bit % 8));
            if (bit % 8 + k_ > 8) codes[bit / 8 + 1] |= (uint8_t)(v >> (8 - bit % 8));
        }
        // The scale is fitted to the windows as they will be read back.
        uint8_t buf[kMaxRowCodeBytes + 4];
        const uint8_t* c = padded(codes, nbytes, buf);
        double xy = 0, yy = 0;
        for (int i = 0; i < n; i++) {
            const double v = T_[read(c, i)];
            xy += y[i] * v;
            yy += v * v;
        }
        store_fp16(out, (float)(yy > 0 ? xy / yy : 0.0));
    }
    void dequantize_rotated(const void* src, float* y, int n) const override {
        const auto* in = static_cast<const uint8_t*>(src);
        uint8_t buf[kMaxRowCodeBytes + 4];
        const uint8_t* c = padded(in + 2, n * k_ / 8, buf);
        const float s = load_fp16(in);
        for (int i = 0; i < n; i++) y[i] = T_[read(c, i)] * s;
    }
    float dot(const void* row, const float* q, int n) const override {
        const auto* in = static_cast<const uint8_t*>(row);
        uint8_t buf[kMaxRowCodeBytes + 4];
        const uint8_t* c = padded(in + 2, n * k_ / 8, buf);
        float sum = 0;
        for (int i = 0; i < n; i++) sum += T_[read(c, i)] * q[i];
        return sum * load_fp16(in);
    }
    void axpy(const void* row, float w, float* acc, int n) const override {
        const auto* in = static_cast<const uint8_t*>(row);
        uint8_t buf[kMaxRowCodeBytes + 4];
        const uint8_t* c = padded(in + 2, n * k_ / 8, buf);
        const float ws = w * load_fp16(in);
        for (int i = 0; i < n; i++) acc[i] += ws * T_[read(c, i)];
    }

private:
    // The code string followed by its own first bytes again, so every window is one unaligned read.
    static const uint8_t* padded(const uint8_t* codes, int nbytes, uint8_t* buf) {
        memcpy(buf, codes, (size_t)nbytes);
        for (int j = 0; j < 4; j++) buf[nbytes + j] = codes[j % nbytes];
        return buf;
    }
    int read(const uint8_t* c, int i) const {
        const int bit = i * k_;
        const uint8_t* p = c + bit / 8;
        const uint32_t w = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
        return (int)((w >> (bit % 8)) & (kStates - 1));
    }

    int k_;
    const std::vector<float>& T_;   // by state
    const std::vector<float>& TP_;  // in the Viterbi order
};

}  // namespace

const std::vector<float>& trellis_code_table(int k) {
    static const std::vector<float> tables[3] = {make_code_table(2), make_code_table(3), make_code_table(4)};
    if (k < kTrellisMinBits || k > kTrellisMaxBits) throw Error("trellis code table: bits " + std::to_string(k));
    return tables[k - 2];
}

std::vector<std::unique_ptr<KvFormat>> make_trellis_kv_formats() {
    std::vector<std::unique_ptr<KvFormat>> v;
    for (int k : {2, 3, 4}) v.push_back(std::make_unique<TrellisFormat>(k));
    return v;
}

}  // namespace rotor::kvq
