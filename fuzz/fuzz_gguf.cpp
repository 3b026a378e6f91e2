// libFuzzer target: the GGUF parser and the dequantizers behind `rotor gguf dump` on arbitrary bytes.
// Any input must either parse or raise rotor::Error; nothing may read outside the buffer.
#include <cstdint>
#include <vector>

#include "gguf/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        rotor::gguf::OpenOptions opt;
        opt.allow_missing_data = (size & 1) != 0;  // exercise both modes
        rotor::gguf::File f = rotor::gguf::File::parse(data, size, "fuzz.gguf", opt);
        for (const auto& kv : f.kvs()) {
            const auto& v = kv.value;
            if (v.type == rotor::gguf::ValueType::ARRAY && v.raw)
                for (uint64_t k = 0; k < v.count && k < 16; k++) (void)v.array_float(k);
        }
        std::vector<float> row;
        for (const auto& t : f.tensors()) {
            const rotor::FormatInfo& fi = rotor::format_info(t.type);
            if (!t.data || !fi.can_dequantize || t.ne[0] == 0 || t.ne[0] > 4096 || t.n_elements == 0) continue;
            row.resize((size_t)t.ne[0]);
            rotor::dequantize_row(t.type, t.data, row.data(), t.ne[0]);
        }
    } catch (const rotor::Error&) {
    }
    return 0;
}
