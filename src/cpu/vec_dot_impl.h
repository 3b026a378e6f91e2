// Internal to src/cpu: the per-level kernel sets that vec_dot.cpp assembles into the public table.
//
// The SIMD sets live in files compiled with -mavx2 / -mavx512* (see CMakeLists.txt). Code in those
// files must not call inline functions or templates shared with baseline files (common/half.h,
// the standard library's containers...): the linker keeps one copy of such a function, and it
// could be the AVX one. They use intrinsics and their own static helpers only, and the lookup
// functions below are called only after cpu_isa_supported() said yes.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/vec_dot.h"

namespace rotor::cpu {

// One level's kernels for a weight format: dot == nullptr when the level has none for it.
struct KernelEntry {
    VecDotFn dot = nullptr;
    int reuse = 1;
};

KernelEntry scalar_kernel(GgmlType weight);
KernelEntry avx2_kernel(GgmlType weight);
KernelEntry avx512_kernel(GgmlType weight);

// Activation quantizers (Q8_0, Q8_1, Q8_K) at each level; nullptr for other types.
QuantizeActFn scalar_quantizer(GgmlType act);
QuantizeActFn avx2_quantizer(GgmlType act);
QuantizeActFn avx512_quantizer(GgmlType act);

// Adapts a one-activation kernel float f(n, w, a) to the VecDotFn shape.
template <float (*F)(int64_t, const void*, const void*)>
void dot_each(int64_t n, const void* w, const void* act, size_t act_stride, float* out, size_t out_stride,
              int n_act) {
    for (int j = 0; j < n_act; j++) out[(size_t)j * out_stride] = F(n, w, (const char*)act + (size_t)j * act_stride);
}

// Drives a kernel that serves R activations per pass over the weight row (K::run<R>, R = 1..RMax,
// RMax <= 4): groups of RMax, then the remainder. run<R> must compute each activation's result
// exactly as run<1> does, so the grouping never changes a result.
template <class K, int RMax = 4>
void dot_multi(int64_t n, const void* w, const void* act, size_t act_stride, float* out, size_t out_stride,
               int n_act) {
    static_assert(RMax >= 1 && RMax <= 4);
    const char* a = static_cast<const char*>(act);
    for (; n_act >= RMax; n_act -= RMax, a += RMax * act_stride, out += RMax * out_stride)
        K::template run<RMax>(n, w, a, act_stride, out, out_stride);
    if constexpr (RMax > 3)
        if (n_act == 3) K::template run<3>(n, w, a, act_stride, out, out_stride);
    if constexpr (RMax > 2)
        if (n_act == 2) K::template run<2>(n, w, a, act_stride, out, out_stride);
    if constexpr (RMax > 1)
        if (n_act == 1) K::template run<1>(n, w, a, act_stride, out, out_stride);
}

// NVFP4 scale byte (UE4M3) -> value / 2 for all 256 byte values, as formats/fp4.h's
// ue4m3_to_f32_half (and ggml): 0x00 and 0x7F (the NaN code) give 0; otherwise bit 7 is ignored,
// exponent bias 7, subnormals man * 2^-9. A table, so SIMD files need no shared inline function;
// the values are exact in float: (8 + man) * 2^(exp - 11) or man * 2^-10.
struct Ue4m3Table {
    float v[256];
};
constexpr Ue4m3Table make_ue4m3_half() {
    Ue4m3Table t{};
    for (int x = 0; x < 256; x++) {
        if (x == 0 || x == 0x7F) continue;
        const int exp = (x >> 3) & 0xF, man = x & 7;
        float v = exp == 0 ? (float)man : (float)(8 + man);
        const int e2 = exp == 0 ? -10 : exp - 11;  // power of two to apply
        for (int i = 0; i < e2; i++) v *= 2.0f;
        for (int i = 0; i > e2; i--) v *= 0.5f;
        t.v[x] = v;
    }
    return t;
}
inline constexpr Ue4m3Table kUe4m3Half = make_ue4m3_half();

// MXFP4 scale byte (E8M0) -> bits of 2^(e-127) / 2, as formats/fp4.h's e8m0_to_f32_half.
constexpr uint32_t e8m0_half_bits(uint8_t e) { return e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23; }

}  // namespace rotor::cpu
