// Internal to the KV formats: the pieces shared by the format families and the factories the
// registry in kv_format.cpp collects. Not part of the public interface (kv_format.h).
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/half.h"
#include "kv/kv_format.h"
#include "kv/kv_packed_codes.h"

namespace rotor::kvq {

// A format with a name (every concrete format derives from this).
class NamedKvFormat : public KvFormat {
public:
    explicit NamedKvFormat(std::string name) : name_(std::move(name)) {}
    const std::string& name() const override { return name_; }

private:
    std::string name_;
};

inline float load_fp16(const uint8_t* p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return fp16_to_f32(h);
}
inline void store_fp16(uint8_t* p, float f) {
    const uint16_t h = f32_to_fp16(f);
    memcpy(p, &h, 2);
}

// Packed code arrays (kv_packed_codes.h has the layout and the in-place read):
void pack_codes(int bits, const uint8_t* idx, int n, uint8_t* dst);
void unpack_codes(int bits, const uint8_t* src, int n, uint8_t* idx);

// False, with the reason, when head_dim is not positive (every format's first check in supports()).
bool check_head_dim_positive(int head_dim, std::string* why);

std::vector<std::unique_ptr<KvFormat>> make_plain_kv_formats();       // f32, f16, bf16, ggml blocks (+ h)
std::vector<std::unique_ptr<KvFormat>> make_rotorquant_kv_formats();  // planar/iso, shipped and corrected
std::vector<std::unique_ptr<KvFormat>> make_turbo_kv_formats();       // tbq: Hadamard + Lloyd-Max
std::vector<std::unique_ptr<KvFormat>> make_trellis_kv_formats();     // tcq: Hadamard + trellis codes

}  // namespace rotor::kvq
