// Scalar codebooks for the rotated KV formats, computed at start-up rather than typed in: the
// Lloyd-Max (minimum mean squared error) quantizer of the standard normal distribution, and the
// normal quantile function behind the trellis code table.
#pragma once
#include <vector>

namespace rotor::kvq {

struct ScalarCodebook {
    std::vector<float> centroid;  // ascending, 2^bits entries
    std::vector<float> bound;     // decision thresholds between neighbours (midpoints), 2^bits - 1
    double mse = 0;               // expected squared error for one N(0, 1) sample

    // Index of the nearest centroid (ties go to the lower one).
    int index(float y) const {
        int i = 0;
        for (float b : bound) i += y > b;
        return i;
    }
};

// Lloyd-Max codebook for N(0, 1) with 2^bits levels, bits in [1, 4]: iterates the centroid condition
// (each level is the conditional mean of its cell) and the nearest-neighbour condition (thresholds
// at midpoints) to convergence in double precision.
const ScalarCodebook& lloyd_max_normal(int bits);

// The same codebook for N(0, sigma^2) (levels and thresholds times sigma).
ScalarCodebook scaled_codebook(const ScalarCodebook& cb, double sigma);

double normal_cdf(double x);
double normal_quantile(double p);  // inverse of normal_cdf on (0, 1)

}  // namespace rotor::kvq
