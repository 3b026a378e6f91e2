#include "formats/formats.h"

#include <cctype>
#include <string>

#include "common/error.h"
#include "formats/row_converters.h"

namespace rotor {

namespace {

struct Entry {
    GgmlType type;
    const char* name;
    uint32_t block_elems, block_bytes;
};

constexpr Entry kEntries[] = {
    {GgmlType::F32, "f32", 1, 4},           {GgmlType::F16, "f16", 1, 2},
    {GgmlType::Q4_0, "q4_0", 32, 18},       {GgmlType::Q4_1, "q4_1", 32, 20},
    {GgmlType::Q5_0, "q5_0", 32, 22},       {GgmlType::Q5_1, "q5_1", 32, 24},
    {GgmlType::Q8_0, "q8_0", 32, 34},       {GgmlType::Q8_1, "q8_1", 32, 36},
    {GgmlType::Q2_K, "q2_K", 256, 84},      {GgmlType::Q3_K, "q3_K", 256, 110},
    {GgmlType::Q4_K, "q4_K", 256, 144},     {GgmlType::Q5_K, "q5_K", 256, 176},
    {GgmlType::Q6_K, "q6_K", 256, 210},     {GgmlType::Q8_K, "q8_K", 256, 292},
    {GgmlType::IQ2_XXS, "iq2_xxs", 256, 66}, {GgmlType::IQ2_XS, "iq2_xs", 256, 74},
    {GgmlType::IQ3_XXS, "iq3_xxs", 256, 98}, {GgmlType::IQ1_S, "iq1_s", 256, 50},
    {GgmlType::IQ4_NL, "iq4_nl", 32, 18},   {GgmlType::IQ3_S, "iq3_s", 256, 110},
    {GgmlType::IQ2_S, "iq2_s", 256, 82},    {GgmlType::IQ4_XS, "iq4_xs", 256, 136},
    {GgmlType::I8, "i8", 1, 1},             {GgmlType::I16, "i16", 1, 2},
    {GgmlType::I32, "i32", 1, 4},           {GgmlType::I64, "i64", 1, 8},
    {GgmlType::F64, "f64", 1, 8},           {GgmlType::IQ1_M, "iq1_m", 256, 56},
    {GgmlType::BF16, "bf16", 1, 2},         {GgmlType::TQ1_0, "tq1_0", 256, 54},
    {GgmlType::TQ2_0, "tq2_0", 256, 66},    {GgmlType::MXFP4, "mxfp4", 32, 17},
    {GgmlType::NVFP4, "nvfp4", 64, 36},     {GgmlType::Q1_0, "q1_0", 128, 18},
    {GgmlType::Q2_0, "q2_0", 64, 18},
};

struct Table {
    FormatInfo by_id[kGgmlTypeCount];
    bool present[kGgmlTypeCount] = {};
    Table() {
        for (const Entry& e : kEntries) {
            const auto id = static_cast<uint32_t>(e.type);
            by_id[id] = FormatInfo{e.type, e.name, e.block_elems, e.block_bytes, find_dequantizer(e.type) != nullptr,
                                   find_quantizer(e.type) != nullptr};
            present[id] = true;
        }
    }
};

Table& table() {
    static Table t;
    return t;
}

}  // namespace

const FormatInfo* format_info(uint32_t id) {
    const Table& t = table();
    return (id < kGgmlTypeCount && t.present[id]) ? &t.by_id[id] : nullptr;
}

std::optional<GgmlType> format_from_name(std::string_view name) {
    std::string lower;
    for (char c : name) lower.push_back((char)std::tolower((unsigned char)c));
    for (const Entry& e : kEntries) {
        std::string en;
        for (const char* p = e.name; *p; p++) en.push_back((char)std::tolower((unsigned char)*p));
        if (en == lower) return e.type;
    }
    return std::nullopt;
}

void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
    const FormatInfo* f = format_info(static_cast<uint32_t>(t));
    DequantizeFn fn = f ? find_dequantizer(t) : nullptr;
    if (!fn) throw Error("no dequantizer for type " + std::string(f ? f->name : "?"));
    if (n % f->block_elems != 0) throw Error("dequantize_row: length not a multiple of the block size");
    fn(src, dst, n);
}

void quantize_row(GgmlType t, const float* src, void* dst, int64_t n) {
    const FormatInfo* f = format_info(static_cast<uint32_t>(t));
    QuantizeFn fn = f ? find_quantizer(t) : nullptr;
    if (!fn) throw Error("no quantizer for type " + std::string(f ? f->name : "?"));
    if (n % f->block_elems != 0) throw Error("quantize_row: length not a multiple of the block size");
    fn(src, dst, n);
}

}  // namespace rotor
