// Reference dequantizers: scalar, bit-exact with ggml's dequantize_row_* and gguf-py.
#include <cstring>

#include "common/half.h"
#include "formats/blocks.h"
#include "formats/row_converters.h"

namespace rotor {

namespace {

void dq_f32(const void* src, float* dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
void dq_f16(const void* src, float* dst, int64_t n) {
    const auto* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; i++) dst[i] = fp16_to_f32(s[i]);
}
void dq_bf16(const void* src, float* dst, int64_t n) {
    const auto* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
}

}  // namespace

DequantizeFn find_dequantizer(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return dq_f32;
        case GgmlType::F16: return dq_f16;
        case GgmlType::BF16: return dq_bf16;
        default: return nullptr;
    }
}

}  // namespace rotor
