// A loaded model: the GGUF mapping, its hyperparameters, and every weight bound by name and checked
// for shape at load time. Weights stay in the file's format (no conversion at load).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "formats/formats.h"
#include "gguf/gguf.h"
#include "model/config.h"

namespace rotor {

// A weight as stored: ggml shape order (ne[0] = row length = input features).
struct Weight {
    GgmlType type = GgmlType::F32;
    const uint8_t* data = nullptr;
    int64_t ne[4] = {1, 1, 1, 1};
    std::string name;
    bool present() const { return data != nullptr; }
    int64_t cols() const { return ne[0]; }
    int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
    uint64_t row_bytes() const { return rotor::row_bytes(type, (uint64_t)ne[0]); }
    uint64_t bytes() const { return row_bytes() * (uint64_t)rows(); }
};

struct LayerWeights {
    Weight attn_norm, wq, wk, wv, wo;
    Weight bq, bk, bv;          // qwen2
    Weight q_norm, k_norm;      // qwen3
    Weight ffn_norm, ffn_gate, ffn_up, ffn_down;
};

struct Model {
    gguf::File file;
    ModelConfig cfg;
    Weight tok_embd, output_norm, output, rope_freqs;
    std::vector<LayerWeights> layers;

    // Throws rotor::Error naming the file and the first missing or mis-shaped tensor.
    static std::unique_ptr<Model> load(const std::string& path);
    static std::unique_ptr<Model> from_file(gguf::File f);

    uint64_t weight_bytes() const;  // bytes of all tensors read per decoded token (upper bound)
};

}  // namespace rotor
