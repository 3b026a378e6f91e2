#include "model/delta_rule.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace rotor {

void delta_rule_recurrent(const DeltaRuleRun& r, float* S) {
    const int dk = r.d_k, dv = r.d_v;
    std::vector<float> u((size_t)dv);
    for (int t = 0; t < r.n_tok; t++) {
        const float* q = r.q + t * r.stride_qk;
        const float* k = r.k + t * r.stride_qk;
        const float* v = r.v + t * r.stride_v;
        const float a = std::exp(r.g[t * r.stride_g]), b = r.beta[t * r.stride_g];
        std::fill(u.begin(), u.end(), 0.0f);
        for (int i = 0; i < dk; i++) {  // S *= a, and S^T k from the decayed state
            float* row = S + (size_t)i * dv;
            const float ki = k[i];
            for (int j = 0; j < dv; j++) {
                row[j] *= a;
                u[j] += row[j] * ki;
            }
        }
        for (int j = 0; j < dv; j++) u[j] = (v[j] - u[j]) * b;
        float* o = r.out + t * r.stride_o;
        std::fill(o, o + dv, 0.0f);
        for (int i = 0; i < dk; i++) {  // S += k u^T, and o = S^T q from the updated state
            float* row = S + (size_t)i * dv;
            const float ki = k[i], qi = q[i];
            for (int j = 0; j < dv; j++) {
                row[j] += ki * u[j];
                o[j] += row[j] * qi;
            }
        }
    }
}

// Within a chunk of L tokens with cumulative log-decay c_i = g_0 + ... + g_i:
//   A[i][j] = beta_i (k_i . k_j) e^(c_i - c_j) for j < i;  (I + A) U = beta v,  (I + A) W = beta e^c k
//   V' = U - W S                      (the corrections the delta rule writes, given the state S before)
//   o_i = e^(c_i) q_i S + sum_{j <= i} (q_i . k_j) e^(c_i - c_j) V'_j
//   S <- e^(c_last) S + sum_j e^(c_last - c_j) k_j V'_j^T
void delta_rule_chunked(const DeltaRuleRun& r, float* S, int chunk) {
    const int dk = r.d_k, dv = r.d_v;
    chunk = std::max(1, chunk);
    std::vector<float> c((size_t)chunk), U((size_t)chunk * dv), W((size_t)chunk * dk);
    std::vector<float> S_new((size_t)dk * dv);
    for (int c0 = 0; c0 < r.n_tok; c0 += chunk) {
        const int L = std::min(chunk, r.n_tok - c0);
        auto q = [&](int i) { return r.q + (size_t)(c0 + i) * r.stride_qk; };
        auto k = [&](int i) { return r.k + (size_t)(c0 + i) * r.stride_qk; };
        auto v = [&](int i) { return r.v + (size_t)(c0 + i) * r.stride_v; };
        auto beta = [&](int i) { return r.beta[(size_t)(c0 + i) * r.stride_g]; };
        double acc = 0;
        for (int i = 0; i < L; i++) c[i] = (float)(acc += r.g[(size_t)(c0 + i) * r.stride_g]);
        auto dot = [](const float* x, const float* y, int n) {
            float s = 0;
            for (int i = 0; i < n; i++) s += x[i] * y[i];
            return s;
        };
        // U and W by forward substitution (unit lower-triangular system)
        for (int i = 0; i < L; i++) {
            float* Ui = &U[(size_t)i * dv];
            float* Wi = &W[(size_t)i * dk];
            const float b = beta(i), eci = std::exp(c[i]);
            for (int j = 0; j < dv; j++) Ui[j] = b * v(i)[j];
            for (int j = 0; j < dk; j++) Wi[j] = b * eci * k(i)[j];
            for (int j = 0; j < i; j++) {
                const float a = b * dot(k(i), k(j), dk) * std::exp(c[i] - c[j]);  // A[i][j]
                const float* Uj = &U[(size_t)j * dv];
                const float* Wj = &W[(size_t)j * dk];
                for (int x = 0; x < dv; x++) Ui[x] -= a * Uj[x];
                for (int x = 0; x < dk; x++) Wi[x] -= a * Wj[x];
            }
        }
        // V' = U - W S (into U), then the outputs against the state before the chunk
        for (int i = 0; i < L; i++) {
            float* Ui = &U[(size_t)i * dv];
            const float* Wi = &W[(size_t)i * dk];
            for (int x = 0; x < dk; x++) {
                const float w = Wi[x];
                const float* row = S + (size_t)x * dv;
                for (int j = 0; j < dv; j++) Ui[j] -= w * row[j];
            }
        }
        for (int i = 0; i < L; i++) {
            float* o = r.out + (size_t)(c0 + i) * r.stride_o;
            std::fill(o, o + dv, 0.0f);
            const float eci = std::exp(c[i]);
            for (int x = 0; x < dk; x++) {
                const float qx = q(i)[x] * eci;
                const float* row = S + (size_t)x * dv;
                for (int j = 0; j < dv; j++) o[j] += qx * row[j];
            }
            for (int j = 0; j <= i; j++) {
                const float a = dot(q(i), k(j), dk) * std::exp(c[i] - c[j]);
                const float* Vj = &U[(size_t)j * dv];
                for (int x = 0; x < dv; x++) o[x] += a * Vj[x];
            }
        }
        // the state after the chunk
        const float last = c[L - 1], e_last = std::exp(last);
        for (size_t x = 0; x < S_new.size(); x++) S_new[x] = e_last * S[x];
        for (int j = 0; j < L; j++) {
            const float e = std::exp(last - c[j]);
            const float* Vj = &U[(size_t)j * dv];
            for (int x = 0; x < dk; x++) {
                const float kx = e * k(j)[x];
                float* row = &S_new[(size_t)x * dv];
                for (int y = 0; y < dv; y++) row[y] += kx * Vj[y];
            }
        }
        std::copy(S_new.begin(), S_new.end(), S);
    }
}

}  // namespace rotor
