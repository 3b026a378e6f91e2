// Float formats (f32, f16, bf16) and llama.cpp's quantized cache types (q8_0, q4_0, q4_1, q5_0, q5_1,
// iq4_nl): blocks of 32 along the head vector, made by src/formats' quantize_row, so a row's bytes
// are the bytes llama.cpp's cache holds. A head size that is an odd multiple of 16 (80, 48) ends in
// a half block whose second half is zero; the padding is counted in row_bytes.
//
// The "h" variants (q4_0h, ...) store the same blocks of H x, H the orthonormal Hadamard matrix of
// the head size (kv_hadamard.h), as llama.cpp does since April 2026 (PR 21038): a plain
// Walsh-Hadamard matrix normalized by 1/sqrt(n), no random signs. Upstream rotates K with the largest
// power of two >= 64 dividing the head size (the whole head for 64, 128, 256, 512), V in blocks of 64,
// and does not rotate head sizes that are not multiples of 64; rotor uses the full-width matrix for
// both and for 80 / 96 (H_4 (x) Paley_20, H_8 (x) Paley_12). See docs/KV_FORMATS.md.
#include <algorithm>

#include "common/error.h"
#include "formats/blocks.h"
#include "formats/formats.h"
#include "formats/iq_tables.h"
#include "kv/kv_format_impl.h"
#include "kv/kv_hadamard.h"

namespace rotor::kvq {

namespace {

// ---- float formats

enum class FloatKind { F32, F16, BF16 };

class FloatFormat final : public NamedKvFormat {
public:
    FloatFormat(const char* name, FloatKind kind) : NamedKvFormat(name), kind_(kind) {}
    bool supports(int head_dim, std::string* why) const override { return check_head_dim_positive(head_dim, why); }
    uint64_t row_bytes(int head_dim) const override { return (uint64_t)head_dim * (kind_ == FloatKind::F32 ? 4 : 2); }

    void quantize(const float* x, void* dst, int n) const override {
        auto* d = static_cast<uint8_t*>(dst);
        if (kind_ == FloatKind::F32) {
            memcpy(d, x, (size_t)n * 4);
            return;
        }
        for (int i = 0; i < n; i++) {
            const uint16_t h = kind_ == FloatKind::F16 ? f32_to_fp16(x[i]) : f32_to_bf16(x[i]);
            memcpy(d + 2 * i, &h, 2);
        }
    }
    void dequantize_rotated(const void* src, float* y, int n) const override {
        each(src, n, [&](int i, float v) { y[i] = v; });
    }
    float dot(const void* row, const float* q, int n) const override {
        float sum = 0;
        each(row, n, [&](int i, float v) { sum += v * q[i]; });
        return sum;
    }
    void axpy(const void* row, float w, float* acc, int n) const override {
        each(row, n, [&](int i, float v) { acc[i] += w * v; });
    }

private:
    // Calls fn(i, value) for each stored value, with the conversion chosen once per row.
    template <class F>
    void each(const void* row, int n, F&& fn) const {
        const auto* s = static_cast<const uint8_t*>(row);
        if (kind_ == FloatKind::F32) {
            for (int i = 0; i < n; i++) {
                float f;
                memcpy(&f, s + 4 * i, 4);
                fn(i, f);
            }
        } else if (kind_ == FloatKind::F16) {
            for (int i = 0; i < n; i++) {
                uint16_t h;
                memcpy(&h, s + 2 * i, 2);
                fn(i, fp16_to_f32(h));
            }
        } else {
            for (int i = 0; i < n; i++) {
                uint16_t h;
                memcpy(&h, s + 2 * i, 2);
                fn(i, bf16_to_f32(h));
            }
        }
    }
    FloatKind kind_;
};

// ---- ggml blocks of 32

// Decodes one block into 32 floats exactly as src/formats' dequantize_row does (same float operations).
void decode_block(GgmlType t, const uint8_t* b, float* y) {
    const float d = load_fp16(b);
    switch (t) {
        case GgmlType::Q8_0:
            for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
            break;
        case GgmlType::Q4_0:
            for (int j = 0; j < 16; j++) {
                y[j] = (float)((b[2 + j] & 0x0F) - 8) * d;
                y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
            }
            break;
        case GgmlType::Q4_1: {
            const float m = load_fp16(b + 2);
            for (int j = 0; j < 16; j++) {
                y[j] = (float)(b[4 + j] & 0x0F) * d + m;
                y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
            }
            break;
        }
        case GgmlType::Q5_0: {
            uint32_t qh;
            memcpy(&qh, b + 2, 4);
            for (int j = 0; j < 16; j++) {
                const int h0 = (int)(((qh >> j) << 4) & 0x10), h1 = (int)((qh >> (j + 12)) & 0x10);
                y[j] = (float)(((b[6 + j] & 0x0F) | h0) - 16) * d;
                y[j + 16] = (float)(((b[6 + j] >> 4) | h1) - 16) * d;
            }
            break;
        }
        case GgmlType::Q5_1: {
            const float m = load_fp16(b + 2);
            uint32_t qh;
            memcpy(&qh, b + 4, 4);
            for (int j = 0; j < 16; j++) {
                const int h0 = (int)(((qh >> j) << 4) & 0x10), h1 = (int)((qh >> (j + 12)) & 0x10);
                y[j] = (float)((b[8 + j] & 0x0F) | h0) * d + m;
                y[j + 16] = (float)((b[8 + j] >> 4) | h1) * d + m;
            }
            break;
        }
        case GgmlType::IQ4_NL:
            for (int j = 0; j < 16; j++) {
                y[j] = d * (float)kIq4nlValues[b[2 + j] & 0x0F];
                y[j + 16] = d * (float)kIq4nlValues[b[2 + j] >> 4];
            }
            break;
        default: throw Error("KV block format: unsupported type");
    }
}

class BlockFormat final : public NamedKvFormat {
public:
    BlockFormat(GgmlType t, bool hadamard)
        : NamedKvFormat(std::string(format_info(t).name) + (hadamard ? "h" : "")),
          type_(t),
          hadamard_(hadamard),
          block_bytes_(format_info(t).block_bytes) {}

    bool supports(int n, std::string* why) const override {
        if (!check_head_dim_positive(n, why)) return false;
        if (n % 16 != 0) {
            if (why) *why = "blocks of 32 need a head size that is a multiple of 16 (odd multiples end in a padded half block)";
            return false;
        }
        return !hadamard_ || Hadamard::exists(n, why);
    }
    uint64_t row_bytes(int n) const override { return (uint64_t)blocks(n) * block_bytes_; }
    bool rotated() const override { return hadamard_; }
    void rotate(float* x, int n) const override {
        if (hadamard_) shared_hadamard(n, false).forward(x);
    }
    void unrotate(float* x, int n) const override {
        if (hadamard_) shared_hadamard(n, false).inverse(x);
    }

    void quantize(const float* x, void* dst, int n) const override {
        thread_local std::vector<float> buf;
        buf.assign((size_t)blocks(n) * 32, 0.0f);
        std::copy(x, x + n, buf.begin());
        rotate(buf.data(), n);
        quantize_row(type_, buf.data(), dst, (int64_t)buf.size());
    }
    void dequantize_rotated(const void* src, float* y, int n) const override {
        const auto* s = static_cast<const uint8_t*>(src);
        float blk[32];
        for (int b = 0; b < blocks(n); b++) {
            decode_block(type_, s + (size_t)b * block_bytes_, blk);
            const int m = std::min(32, n - 32 * b);
            std::copy(blk, blk + m, y + 32 * b);
        }
    }
    float dot(const void* row, const float* q, int n) const override {
        const auto* s = static_cast<const uint8_t*>(row);
        float blk[32], sum = 0;
        for (int b = 0; b < blocks(n); b++) {
            decode_block(type_, s + (size_t)b * block_bytes_, blk);
            const int m = std::min(32, n - 32 * b);
            float part = 0;
            for (int j = 0; j < m; j++) part += blk[j] * q[32 * b + j];
            sum += part;
        }
        return sum;
    }
    void axpy(const void* row, float w, float* acc, int n) const override {
        const auto* s = static_cast<const uint8_t*>(row);
        float blk[32];
        for (int b = 0; b < blocks(n); b++) {
            decode_block(type_, s + (size_t)b * block_bytes_, blk);
            const int m = std::min(32, n - 32 * b);
            for (int j = 0; j < m; j++) acc[32 * b + j] += w * blk[j];
        }
    }

private:
    static int blocks(int n) { return (n + 31) / 32; }
    GgmlType type_;
    bool hadamard_;
    uint32_t block_bytes_;
};

}  // namespace

std::vector<std::unique_ptr<KvFormat>> make_plain_kv_formats() {
    std::vector<std::unique_ptr<KvFormat>> v;
    v.push_back(std::make_unique<FloatFormat>("f32", FloatKind::F32));
    v.push_back(std::make_unique<FloatFormat>("f16", FloatKind::F16));
    v.push_back(std::make_unique<FloatFormat>("bf16", FloatKind::BF16));
    const GgmlType types[] = {GgmlType::Q8_0, GgmlType::Q5_1, GgmlType::Q5_0,
                              GgmlType::Q4_1, GgmlType::Q4_0, GgmlType::IQ4_NL};
    for (bool h : {false, true})
        for (GgmlType t : types) v.push_back(std::make_unique<BlockFormat>(t, h));
    return v;
}

}  // namespace rotor::kvq
