// Random-weight models of real shapes, written with rotor's GGUF writer, for benchmarks and memory
// planning on machines that cannot download models. Weight blocks are real quantizations of Gaussian
// rows (a pool of rows per tensor shape, reused), so every format sees realistic bit patterns and the
// forward pass stays numerically sane.
#pragma once
#include <string>
#include <vector>

#include "formats/formats.h"

namespace rotor {

struct ModelShape {
    std::string name;  // e.g. "llama-3.2-1b"
    std::string arch;  // "llama", "qwen2", "qwen3"
    int n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_vocab, n_ctx;
    float rope_base;
    bool tied;
    bool qkv_bias;
};

const std::vector<ModelShape>& known_shapes();
const ModelShape& find_shape(const std::string& name);  // rotor::Error lists the known names

// How llama-quantize's Q4_K_M picks each tensor's type (gguf-conventions.md section 5.3), or one type
// for every matrix when mix is a plain type name ("q8_0", "f16", ...).
struct QuantMix {
    std::string name;
    GgmlType uniform = GgmlType::F16;
    bool q4_k_m = false;
};
QuantMix parse_quant_mix(const std::string& name);

// Bytes of the tensor data section (each tensor padded to 32), without writing anything.
uint64_t synthetic_data_bytes(const ModelShape& shape, const QuantMix& mix);

// Writes the model; returns the total tensor bytes.
uint64_t write_synthetic_model(const ModelShape& shape, const QuantMix& mix, const std::string& path,
                               uint64_t seed = 1, const std::string& vocab_from = "");

}  // namespace rotor
