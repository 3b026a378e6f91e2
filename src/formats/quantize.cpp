// Reference quantizers: scalar, bit-exact with ggml's quantize_row_*_ref and gguf-py.
#include <cstring>

#include "common/half.h"
#include "formats/blocks.h"
#include "formats/row_converters.h"

namespace rotor {

namespace {

void q_f32(const float* src, void* dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
void q_f16(const float* src, void* dst, int64_t n) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; i++) d[i] = f32_to_fp16(src[i]);
}
void q_bf16(const float* src, void* dst, int64_t n) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
}

}  // namespace

QuantizeFn find_quantizer(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return q_f32;
        case GgmlType::F16: return q_f16;
        case GgmlType::BF16: return q_bf16;
        default: return nullptr;
    }
}

}  // namespace rotor
