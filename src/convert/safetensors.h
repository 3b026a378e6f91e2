// Read-only view of a .safetensors file (8-byte little-endian header length, JSON header, raw data).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rotor {

struct SafeTensor {
    std::string dtype;           // "F32", "F16", "BF16", "F64"
    std::vector<int64_t> shape;  // row-major, outermost first (HF order)
    const uint8_t* data = nullptr;
    uint64_t n_bytes = 0;
    int64_t numel() const;
    // Converts to float32 (F32/F16/BF16/F64); throws rotor::Error for other dtypes.
    std::vector<float> to_f32() const;
};

class SafeTensorsFile {
public:
    explicit SafeTensorsFile(const std::string& path);  // throws rotor::Error naming the file
    const std::map<std::string, SafeTensor>& tensors() const { return tensors_; }
    const SafeTensor* find(const std::string& name) const;

private:
    std::string path_;
    std::vector<uint8_t> bytes_;
    std::map<std::string, SafeTensor> tensors_;
};

}  // namespace rotor
