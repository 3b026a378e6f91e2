// Shared helpers of the CPU kernel tests: crafted weight blocks, activations, reference dots.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "cpu/cpu_isa.h"
#include "cpu/vec_dot.h"
#include "formats/blocks.h"
#include "formats/formats.h"

namespace rotor::test {

// Every weight format the CPU kernels cover.
inline const std::vector<GgmlType>& cpu_weight_types() {
    static const std::vector<GgmlType> v = {
        GgmlType::F32,    GgmlType::F16,    GgmlType::BF16,  GgmlType::Q4_0,  GgmlType::Q4_1,    GgmlType::Q5_0,
        GgmlType::Q5_1,   GgmlType::Q8_0,   GgmlType::Q2_K,  GgmlType::Q3_K,  GgmlType::Q4_K,    GgmlType::Q5_K,
        GgmlType::Q6_K,   GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::IQ3_XXS, GgmlType::IQ3_S, GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS, GgmlType::IQ2_S,  GgmlType::IQ1_S, GgmlType::IQ1_M, GgmlType::TQ1_0,   GgmlType::TQ2_0,
        GgmlType::MXFP4,  GgmlType::NVFP4,
    };
    return v;
}

inline std::string type_name(GgmlType t) { return std::string(format_info(t).name); }

// The testdata file name of a type ("Q4_K" for q4_K).
inline std::string testdata_name(GgmlType t) {
    std::string s = type_name(t);
    for (char& c : s) c = (char)std::toupper((unsigned char)c);
    return s;
}

// Levels this machine can run, scalar first.
inline std::vector<CpuIsa> supported_isas() {
    std::vector<CpuIsa> v;
    for (CpuIsa i : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512})
        if (cpu_isa_supported(i)) v.push_back(i);
    return v;
}

// Byte storage with 8-byte alignment (block structs need at most 4).
struct Bytes {
    std::vector<uint64_t> store;
    size_t size = 0;
    explicit Bytes(size_t n = 0) : store((n + 7) / 8), size(n) {}
    uint8_t* data() { return reinterpret_cast<uint8_t*>(store.data()); }
    const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(store.data()); }
};

inline void put_f16(uint8_t* p, float v) {
    const uint16_t h = f32_to_fp16(v);
    memcpy(p, &h, 2);
}

// Blocks as the testdata README describes its crafted ones: uniform random bytes, then every scale
// field overwritten with a finite value, |d| log-uniform in [1e-3, 1e-1] (d, dmin positive; the
// Q4_1/Q5_1 min with a random sign). Float formats get normally distributed values.
inline Bytes craft_weights(GgmlType t, int64_t n_elems, std::mt19937& rng) {
    const FormatInfo& f = format_info(t);
    const int64_t nb = n_elems / f.block_elems;
    Bytes out((size_t)(nb * f.block_bytes));
    uint8_t* p = out.data();
    std::normal_distribution<float> normal(0.0f, 1.0f);
    if (t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) {
        for (int64_t i = 0; i < n_elems; i++) {
            const float v = normal(rng);
            if (t == GgmlType::F32) memcpy(p + 4 * i, &v, 4);
            if (t == GgmlType::F16) put_f16(p + 2 * i, v);
            if (t == GgmlType::BF16) {
                const uint16_t h = f32_to_bf16(v);
                memcpy(p + 2 * i, &h, 2);
            }
        }
        return out;
    }
    std::uniform_int_distribution<int> byte(0, 255);
    for (size_t i = 0; i < out.size; i++) p[i] = (uint8_t)byte(rng);
    std::uniform_real_distribution<float> logd(std::log(1e-3f), std::log(1e-1f));
    auto scale = [&] { return std::exp(logd(rng)); };
    auto sign = [&] { return byte(rng) & 1 ? -1.0f : 1.0f; };
    for (int64_t b = 0; b < nb; b++) {
        uint8_t* blk = p + b * f.block_bytes;
        switch (t) {
            case GgmlType::Q4_1:
            case GgmlType::Q5_1: put_f16(blk, scale()), put_f16(blk + 2, sign() * scale()); break;
            case GgmlType::Q4_K:
            case GgmlType::Q5_K: put_f16(blk, scale()), put_f16(blk + 2, scale()); break;
            case GgmlType::Q2_K: put_f16(blk + 80, scale()), put_f16(blk + 82, scale()); break;
            case GgmlType::Q3_K: put_f16(blk + 108, scale()); break;
            case GgmlType::Q6_K: put_f16(blk + 208, scale()); break;
            case GgmlType::TQ1_0: put_f16(blk + 52, scale()); break;
            case GgmlType::TQ2_0: put_f16(blk + 64, scale()); break;
            case GgmlType::IQ1_M: {  // fp16 d in the top nibbles of the four scale words at 48..55
                const uint16_t h = f32_to_fp16(scale());
                for (int k = 0; k < 4; k++) {
                    uint16_t wv;
                    memcpy(&wv, blk + 48 + 2 * k, 2);
                    wv = (uint16_t)((wv & 0x0FFF) | (((h >> (4 * k)) & 0xF) << 12));
                    memcpy(blk + 48 + 2 * k, &wv, 2);
                }
                break;
            }
            case GgmlType::MXFP4: blk[0] = (uint8_t)std::uniform_int_distribution<int>(117, 137)(rng); break;
            case GgmlType::NVFP4:
                for (int k = 0; k < 4; k++) blk[k] = (uint8_t)std::uniform_int_distribution<int>(0x20, 0x57)(rng);
                break;
            default: put_f16(blk, scale()); break;  // d at byte 0 (Q4_0, Q5_0, Q8_0, IQ*)
        }
    }
    return out;
}

// Activations: normal values with a few outliers, and one all-zero and one constant block of 256.
inline std::vector<float> craft_acts(int64_t n, std::mt19937& rng, float scale = 1.0f) {
    std::normal_distribution<float> normal(0.0f, scale);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    std::vector<float> x((size_t)n);
    for (auto& v : x) v = normal(rng) * (u(rng) < 0.01f ? 20.0f : 1.0f);
    return x;
}

// Dequantized activation row (types Q8_0, Q8_1, Q8_K are d * q; F32 as is). Uses the reference
// dequantize_row() when formats/ has it, else decodes the three trivial layouts here.
inline std::vector<double> dequant_act(GgmlType t, const void* a, int64_t n) {
    std::vector<double> out((size_t)n);
    if (t == GgmlType::F32) {
        for (int64_t i = 0; i < n; i++) out[i] = static_cast<const float*>(a)[i];
        return out;
    }
    if (format_info(t).can_dequantize) {
        std::vector<float> f((size_t)n);
        dequantize_row(t, a, f.data(), n);
        for (int64_t i = 0; i < n; i++) out[i] = f[i];
        return out;
    }
    for (int64_t i = 0; i < n; i++) {
        if (t == GgmlType::Q8_0) {
            const auto& b = static_cast<const block_q8_0*>(a)[i / 32];
            out[i] = (double)fp16_to_f32(b.d) * b.qs[i % 32];
        } else if (t == GgmlType::Q8_1) {
            const auto& b = static_cast<const block_q8_1*>(a)[i / 32];
            out[i] = (double)fp16_to_f32(b.d) * b.qs[i % 32];
        } else {
            const auto& b = static_cast<const block_q8_K*>(a)[i / 256];
            out[i] = (double)b.d * b.qs[i % 256];
        }
    }
    return out;
}

// Weight row dequantized with the reference dequantize_row(); empty if formats/ has none yet.
inline std::vector<double> dequant_weights(GgmlType t, const void* w, int64_t n) {
    if (!format_info(t).can_dequantize) return {};
    std::vector<float> f((size_t)n);
    dequantize_row(t, w, f.data(), n);
    return std::vector<double>(f.begin(), f.end());
}

inline std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

inline Bytes to_bytes(const std::vector<uint8_t>& v) {
    Bytes b(v.size());
    if (!v.empty()) memcpy(b.data(), v.data(), v.size());
    return b;
}

}  // namespace rotor::test
