// The table of ggml tensor types: ids as stored in GGUF, block size, bytes per block, and the
// reference (scalar) dequantize / quantize entry points. Every other part of rotor asks here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace rotor {

enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41, Q2_0 = 42,
};
constexpr uint32_t kGgmlTypeCount = 43;  // ids >= this are unknown to every ggml version we know

struct FormatInfo {
    GgmlType type;
    std::string_view name;  // ggml's lower-case type name ("q4_K", "iq2_xxs", ...)
    uint32_t block_elems;   // elements per block
    uint32_t block_bytes;   // bytes per block
    bool can_dequantize;    // rotor has a reference dequantizer for it
    bool can_quantize;      // rotor has a reference quantizer for it
};

// nullptr for ids that are not (or no longer) ggml types, e.g. 4, 5, 31..33, 36..38, >= 43.
const FormatInfo* format_info(uint32_t type_id);
inline const FormatInfo& format_info(GgmlType t) { return *format_info(static_cast<uint32_t>(t)); }
std::optional<GgmlType> format_from_name(std::string_view name);  // case-insensitive

// Bytes for a row of n elements (n must be a multiple of the block size).
inline uint64_t row_bytes(GgmlType t, uint64_t n) {
    const FormatInfo& f = format_info(t);
    return n / f.block_elems * f.block_bytes;
}

// Reference conversions of one row of n elements (n a multiple of the block size). They are the
// definition every SIMD/CUDA path is tested against and are bit-exact with ggml / gguf-py.
// Throw rotor::Error for types without a converter.
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);
void quantize_row(GgmlType t, const float* src, void* dst, int64_t n);

}  // namespace rotor
