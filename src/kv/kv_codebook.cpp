#include "kv/kv_codebook.h"

#include <cmath>

#include "common/error.h"

namespace rotor::kvq {

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

static double normal_pdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }

double normal_quantile(double p) {
    if (!(p > 0 && p < 1)) throw Error("normal_quantile: p must be in (0, 1)");
    // Bisection to a bracket, then Newton steps (the CDF is smooth and strictly increasing).
    double lo = -40, hi = 40;
    for (int i = 0; i < 60; i++) {
        const double m = 0.5 * (lo + hi);
        (normal_cdf(m) < p ? lo : hi) = m;
    }
    double x = 0.5 * (lo + hi);
    for (int i = 0; i < 3; i++) {
        const double f = normal_pdf(x);
        if (f <= 0) break;
        x -= (normal_cdf(x) - p) / f;
    }
    return x;
}

static ScalarCodebook compute_lloyd_max(int bits) {
    const int n = 1 << bits;
    std::vector<double> c(n), b(n + 1);
    for (int i = 0; i < n; i++) c[i] = normal_quantile((i + 0.5) / n);  // start from the quantiles
    for (int it = 0; it < 100000; it++) {
        b[0] = -INFINITY;
        b[n] = INFINITY;
        for (int i = 1; i < n; i++) b[i] = 0.5 * (c[i - 1] + c[i]);
        double change = 0;
        for (int i = 0; i < n; i++) {
            // E[X | b_i < X < b_{i+1}] = (pdf(b_i) - pdf(b_{i+1})) / (cdf(b_{i+1}) - cdf(b_i))
            const double mass = normal_cdf(b[i + 1]) - normal_cdf(b[i]);
            const double ci = (normal_pdf(b[i]) - normal_pdf(b[i + 1])) / mass;
            change = std::max(change, std::fabs(ci - c[i]));
            c[i] = ci;
        }
        if (change < 1e-14) break;
    }
    // Symmetrize exactly (the iteration is symmetric up to rounding).
    for (int i = 0; i < n / 2; i++) {
        const double m = 0.5 * (c[n - 1 - i] - c[i]);
        c[i] = -m;
        c[n - 1 - i] = m;
    }
    ScalarCodebook cb;
    double sum_pc2 = 0;
    for (int i = 0; i < n; i++) {
        const double lo = i == 0 ? -INFINITY : 0.5 * (c[i - 1] + c[i]);
        const double hi = i == n - 1 ? INFINITY : 0.5 * (c[i] + c[i + 1]);
        sum_pc2 += (normal_cdf(hi) - normal_cdf(lo)) * c[i] * c[i];
        cb.centroid.push_back((float)c[i]);
        if (i > 0) cb.bound.push_back((float)(0.5 * (c[i - 1] + c[i])));
    }
    cb.mse = 1.0 - sum_pc2;  // E[(X - Q(X))^2] = E[X^2] - E[Q(X)^2] at the centroid condition
    return cb;
}

const ScalarCodebook& lloyd_max_normal(int bits) {
    static const ScalarCodebook tables[4] = {compute_lloyd_max(1), compute_lloyd_max(2), compute_lloyd_max(3),
                                             compute_lloyd_max(4)};
    if (bits < 1 || bits > 4) throw Error("Lloyd-Max codebooks exist for 1 to 4 bits");
    return tables[bits - 1];
}

ScalarCodebook scaled_codebook(const ScalarCodebook& cb, double sigma) {
    ScalarCodebook out;
    for (float c : cb.centroid) out.centroid.push_back((float)(c * sigma));
    for (float b : cb.bound) out.bound.push_back((float)(b * sigma));
    out.mse = cb.mse * sigma * sigma;
    return out;
}

}  // namespace rotor::kvq
