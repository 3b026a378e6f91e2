// Internal to the reference quantizers: helpers shared by quantize.cpp (formats with a closed-form
// scale) and quantize_kquants.cpp (the search-based K-quant and IQ4 quantizers).
#pragma once
#include <cmath>
#include <cstdint>

namespace rotor::quant {

// ggml's nearest_int: round half to even (it adds 1.5 * 2^23 and reads the low mantissa bits,
// valid for |f| <= 2^22 - 1). Out-of-range values, for which ggml asserts, are clamped first so
// that no input can produce garbage; NaN gives 0.
inline int nearest_int(float f) {
    constexpr float kLimit = 4194303.0f;
    if (!(std::fabs(f) <= kLimit)) f = std::isnan(f) ? 0.0f : std::copysign(kLimit, f);
    return (int)std::nearbyint(f);
}

// C's truncating float -> integer conversion restricted to [lo, hi]: ggml's (int8_t)(v) / MIN(hi, .)
// for every finite input it produces in range, and defined (no UB) for NaN, Inf and huge values.
inline int trunc_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (!(v < (float)hi)) return hi;
    return (int)v;
}

// Search-based quantizers (quantize_kquants.cpp); same contract as QuantizeFn.
void quantize_q2_K(const float* x, void* dst, int64_t n);
void quantize_q3_K(const float* x, void* dst, int64_t n);
void quantize_q4_K(const float* x, void* dst, int64_t n);
void quantize_q5_K(const float* x, void* dst, int64_t n);
void quantize_q6_K(const float* x, void* dst, int64_t n);
void quantize_iq4_nl(const float* x, void* dst, int64_t n);
void quantize_iq4_xs(const float* x, void* dst, int64_t n);

}  // namespace rotor::quant
