// TurboQuant-style formats (arXiv 2504.19874, the MSE variant): rotate the whole head vector by a
// randomized Hadamard transform (kv_hadamard.h, fixed signs), so each coordinate of x / ||x|| is
// close to N(0, 1/d); quantize every coordinate with the b-bit Lloyd-Max codebook of that
// distribution; store one fp16 scale per vector. No QJL residual sketch (reimplementations found it
// hurts attention after the softmax).
//
//   tbq2, tbq3, tbq4      scale = ||x|| / sqrt(d): the paper's "store the norm"
//   tbq2nc, tbq3nc, ...   scale = ||x|| / ||c|| ("norm correction", c the chosen unit-variance
//                         centroids): the decoded vector keeps ||x|| exactly, as RotorQuant does
// Row layout: {fp16 scale; codes} with the codes packed as kv_format_impl.h describes (3-bit: a
// 2-bit array then a plane of third bits). Bits per element: b + 16 / d.
#include <cmath>

#include "common/error.h"
#include "kv/kv_codebook.h"
#include "kv/kv_format_impl.h"
#include "kv/kv_hadamard.h"

namespace rotor::kvq {

namespace {

class TurboFormat final : public NamedKvFormat {
public:
    TurboFormat(int bits, bool norm_corrected)
        : NamedKvFormat("tbq" + std::to_string(bits) + (norm_corrected ? "nc" : "")),
          bits_(bits),
          norm_corrected_(norm_corrected),
          cb_(lloyd_max_normal(bits)) {}

    bool supports(int n, std::string* why) const override {
        if (!check_head_dim_positive(n, why)) return false;
        if (n % 8 != 0) {
            if (why) *why = "packed codes need a head size that is a multiple of 8";
            return false;
        }
        return Hadamard::exists(n, why);
    }
    uint64_t row_bytes(int n) const override { return turbo_row_bytes(n, bits_); }
    bool rotated() const override { return true; }
    void rotate(float* x, int n) const override { shared_hadamard(n, true).forward(x); }
    void unrotate(float* x, int n) const override { shared_hadamard(n, true).inverse(x); }

    void quantize(const float* x, void* dst, int n) const override {
        thread_local std::vector<float> y;
        thread_local std::vector<uint8_t> idx;
        y.assign(x, x + n);
        idx.resize(n);
        rotate(y.data(), n);
        double norm2 = 0;
        for (int i = 0; i < n; i++) norm2 += (double)y[i] * y[i];
        const double sigma = std::sqrt(norm2 / n);
        double c2 = 0;
        for (int i = 0; i < n; i++) {
            idx[i] = sigma > 0 ? (uint8_t)cb_.index((float)(y[i] / sigma)) : 0;
            c2 += (double)cb_.centroid[idx[i]] * cb_.centroid[idx[i]];
        }
        double scale = sigma;
        if (norm_corrected_) scale = c2 > 0 ? std::sqrt(norm2 / c2) : 0.0;
        auto* out = static_cast<uint8_t*>(dst);
        store_fp16(out, (float)scale);
        pack_codes(bits_, idx.data(), n, out + 2);
    }
    void dequantize_rotated(const void* src, float* y, int n) const override {
        const auto* in = static_cast<const uint8_t*>(src);
        const float s = load_fp16(in);
        for (int i = 0; i < n; i++) y[i] = cb_.centroid[code(in + 2, i, n)] * s;
    }
    float dot(const void* row, const float* q, int n) const override {
        const auto* in = static_cast<const uint8_t*>(row);
        float sum = 0;
        for (int i = 0; i < n; i++) sum += cb_.centroid[code(in + 2, i, n)] * q[i];
        return sum * load_fp16(in);
    }
    void axpy(const void* row, float w, float* acc, int n) const override {
        const auto* in = static_cast<const uint8_t*>(row);
        const float ws = w * load_fp16(in);
        for (int i = 0; i < n; i++) acc[i] += ws * cb_.centroid[code(in + 2, i, n)];
    }

private:
    int code(const uint8_t* c, int i, int n) const { return packed_code(bits_, c, n, i); }
    int bits_;
    bool norm_corrected_;
    const ScalarCodebook& cb_;
};

}  // namespace

std::vector<std::unique_ptr<KvFormat>> make_turbo_kv_formats() {
    std::vector<std::unique_ptr<KvFormat>> v;
    for (bool nc : {false, true})
        for (int bits : {2, 3, 4}) v.push_back(std::make_unique<TurboFormat>(bits, nc));
    return v;
}

}  // namespace rotor::kvq
