#include "cpu/vec_dot.h"

#include <cstring>
#include <vector>

#include "common/error.h"
#include "cpu/vec_dot_impl.h"

namespace rotor {

namespace {

constexpr int kLevels = 3;  // CpuIsa::Scalar .. Avx512

// The activation ("vec dot") type each weight format is multiplied with, as in ggml's CPU backend.
bool act_type_of(GgmlType w, GgmlType& act) {
    switch (w) {
        case GgmlType::F32:
        case GgmlType::F16:
        case GgmlType::BF16: act = GgmlType::F32; return true;
        case GgmlType::Q4_0:
        case GgmlType::Q5_0:
        case GgmlType::Q8_0:
        case GgmlType::IQ4_NL:
        case GgmlType::MXFP4:
        case GgmlType::NVFP4: act = GgmlType::Q8_0; return true;
        case GgmlType::Q4_1:
        case GgmlType::Q5_1: act = GgmlType::Q8_1; return true;
        case GgmlType::Q2_K:
        case GgmlType::Q3_K:
        case GgmlType::Q4_K:
        case GgmlType::Q5_K:
        case GgmlType::Q6_K:
        case GgmlType::IQ2_XXS:
        case GgmlType::IQ2_XS:
        case GgmlType::IQ2_S:
        case GgmlType::IQ3_XXS:
        case GgmlType::IQ3_S:
        case GgmlType::IQ1_S:
        case GgmlType::IQ1_M:
        case GgmlType::IQ4_XS:
        case GgmlType::TQ1_0:
        case GgmlType::TQ2_0: act = GgmlType::Q8_K; return true;
        default: return false;
    }
}

void copy_f32(const float* x, void* y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

cpu::KernelEntry level_kernel(GgmlType w, int level) {
    switch (level) {
        case 0: return cpu::scalar_kernel(w);
        case 1: return cpu::avx2_kernel(w);
        default: return cpu::avx512_kernel(w);
    }
}

QuantizeActFn level_quantizer(GgmlType act, int level) {
    if (act == GgmlType::F32) return copy_f32;
    switch (level) {
        case 0: return cpu::scalar_quantizer(act);
        case 1: return cpu::avx2_quantizer(act);
        default: return cpu::avx512_quantizer(act);
    }
}

struct Table {
    VecDotKernel k[kGgmlTypeCount][kLevels];
    bool present[kGgmlTypeCount][kLevels] = {};
    Table() {
        int supported = 0;
        while (supported + 1 < kLevels && cpu_isa_supported((CpuIsa)(supported + 1))) supported++;
        for (uint32_t id = 0; id < kGgmlTypeCount; id++) {
            const FormatInfo* f = format_info(id);
            GgmlType act;
            if (!f || !act_type_of(f->type, act)) continue;
            for (int want = 0; want < kLevels; want++) {
                const int top = want < supported ? want : supported;
                VecDotKernel e{f->type, act, CpuIsa::Scalar, CpuIsa::Scalar, 1, nullptr, nullptr};
                for (int l = top; l >= 0 && !e.dot; l--) {  // highest level at or below `top` that has one
                    const cpu::KernelEntry ke = level_kernel(f->type, l);
                    if (ke.dot) e.dot = ke.dot, e.reuse = ke.reuse, e.isa = (CpuIsa)l;
                }
                for (int l = top; l >= 0 && !e.quantize; l--) {
                    e.quantize = level_quantizer(act, l);
                    e.quantize_isa = (CpuIsa)l;
                }
                if (!e.dot || !e.quantize) continue;
                k[id][want] = e;
                present[id][want] = true;
            }
        }
    }
};

const Table& table() {
    static const Table t;
    return t;
}

}  // namespace

const VecDotKernel* vec_dot_kernel(GgmlType weight, CpuIsa isa) {
    const auto id = static_cast<uint32_t>(weight);
    const int level = (int)isa;
    if (id >= kGgmlTypeCount || level < 0 || level >= kLevels) return nullptr;
    const Table& t = table();
    return t.present[id][level] ? &t.k[id][level] : nullptr;
}

const VecDotKernel* vec_dot_kernel(GgmlType weight) { return vec_dot_kernel(weight, cpu_isa_default()); }

QuantizeActFn quantize_act_fn(GgmlType act, CpuIsa isa) {
    int l = (int)isa;
    if (l < 0 || l >= kLevels) return nullptr;
    while (l > 0 && !cpu_isa_supported((CpuIsa)l)) l--;
    for (; l >= 0; l--)
        if (QuantizeActFn f = level_quantizer(act, l)) return f;
    return nullptr;
}

float vec_dot_f32(GgmlType weight, const void* w, const float* x, int64_t n, CpuIsa isa) {
    const VecDotKernel* k = vec_dot_kernel(weight, isa);
    if (!k) throw Error("vec_dot: no CPU kernel for type " + std::string(format_info(weight).name));
    // uint32 storage keeps the activation blocks 4-byte aligned (block_q8_K holds a float).
    std::vector<uint32_t> act((act_row_bytes(*k, n) + 3) / 4);
    k->quantize(x, act.data(), n);
    float out = 0;
    k->dot(n, w, act.data(), 0, &out, 1, 1);
    return out;
}

}  // namespace rotor
