// The registry of KV formats and what every format shares. The families live in their own files:
// kv_format_plain.cpp (f32/f16/bf16, ggml blocks, Hadamard-rotated blocks), kv_rotorquant.cpp,
// kv_turbo.cpp and kv_trellis.cpp. docs/KV_FORMATS.md describes each layout.
#include "kv/kv_format.h"

#include "common/error.h"
#include "kv/kv_format_impl.h"

namespace rotor {

void KvFormat::dequantize(const void* src, float* y, int head_dim) const {
    dequantize_rotated(src, y, head_dim);
    unrotate(y, head_dim);
}

namespace {

const std::vector<std::unique_ptr<KvFormat>>& registry() {
    static const std::vector<std::unique_ptr<KvFormat>> formats = [] {
        std::vector<std::unique_ptr<KvFormat>> all;
        for (auto* make : {kvq::make_plain_kv_formats, kvq::make_rotorquant_kv_formats, kvq::make_turbo_kv_formats,
                           kvq::make_trellis_kv_formats})
            for (auto& f : make()) all.push_back(std::move(f));
        return all;
    }();
    return formats;
}

}  // namespace

std::vector<std::string> kv_format_names() {
    std::vector<std::string> names;
    for (const auto& f : registry()) names.push_back(f->name());
    return names;
}

const KvFormat* find_kv_format(const std::string& name) {
    for (const auto& f : registry())
        if (f->name() == name) return f.get();
    return nullptr;
}

const KvFormat& require_kv_format(const std::string& name, int head_dim) {
    const KvFormat* f = find_kv_format(name);
    if (!f) {
        std::string known;
        for (const auto& n : kv_format_names()) known += (known.empty() ? "" : ", ") + n;
        throw Error("unknown KV type '" + name + "' (known: " + known + ")");
    }
    std::string why;
    if (!f->supports(head_dim, &why))
        throw Error("KV type " + name + " does not support head size " + std::to_string(head_dim) + ": " + why);
    return *f;
}

namespace kvq {

bool check_head_dim_positive(int head_dim, std::string* why) {
    if (head_dim > 0) return true;
    if (why) *why = "head size must be positive";
    return false;
}

void pack_codes(int bits, const uint8_t* idx, int n, uint8_t* dst) {
    memset(dst, 0, packed_code_bytes(bits, n));
    switch (bits) {
        case 2:
            for (int j = 0; j < n; j++) dst[j / 4] |= (uint8_t)((idx[j] & 3) << (2 * (j % 4)));
            break;
        case 3: {
            uint8_t* hi = dst + n / 4;
            for (int j = 0; j < n; j++) {
                dst[j / 4] |= (uint8_t)((idx[j] & 3) << (2 * (j % 4)));
                hi[j / 8] |= (uint8_t)(((idx[j] >> 2) & 1) << (j % 8));
            }
            break;
        }
        case 4:
            for (int j = 0; j < n; j++) dst[j / 2] |= (uint8_t)((idx[j] & 15) << (4 * (j % 2)));
            break;
        default: throw Error("pack_codes: unsupported width");
    }
}

void unpack_codes(int bits, const uint8_t* src, int n, uint8_t* idx) {
    switch (bits) {
        case 2:
            for (int j = 0; j < n; j++) idx[j] = (src[j / 4] >> (2 * (j % 4))) & 3;
            break;
        case 3: {
            const uint8_t* hi = src + n / 4;
            for (int j = 0; j < n; j++)
                idx[j] = (uint8_t)(((src[j / 4] >> (2 * (j % 4))) & 3) | (((hi[j / 8] >> (j % 8)) & 1) << 2));
            break;
        }
        case 4:
            for (int j = 0; j < n; j++) idx[j] = (src[j / 2] >> (4 * (j % 2))) & 15;
            break;
        default: throw Error("unpack_codes: unsupported width");
    }
}

}  // namespace kvq

}  // namespace rotor
