// Random-weight models of real shapes, written with rotor's GGUF writer, for benchmarks and memory
// planning on machines that cannot download models. The tensor table (names, shapes, and llama-quantize's
// per-tensor types) follows gguf-conventions.md exactly, so a file's byte count equals the stock file's;
// weight blocks are real quantizations of Gaussian rows (a pool of rows per shape, reused), so every
// format sees realistic bit patterns and the forward pass stays numerically sane.
#pragma once
#include <string>
#include <vector>

#include "formats/formats.h"

namespace rotor {

struct ModelShape {
    std::string name;  // e.g. "llama-3.2-1b"
    std::string arch;  // llama, qwen2, qwen3, qwen35, qwen35moe, gemma4
    int n_layer = 0, n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_vocab = 0, n_ctx = 0;
    float rope_base = 10000.0f;
    bool tied = false;
    bool qkv_bias = false;
    // qwen35 / qwen35moe: Gated DeltaNet layers, full attention every `full_interval` layers
    int full_interval = 0, gdn_k_heads = 0, gdn_v_heads = 0, gdn_head_dim = 0, conv_kernel = 0, n_rot = 0;
    // mixture of experts
    int n_expert = 0, n_expert_used = 0, ff_expert = 0, ff_shared = 0;
    // gemma4: sliding-window layers (head_dim, n_head_kv) and global layers (head_dim_full, n_head_kv_full)
    int window = 0, swa_period = 0, head_dim_full = 0, n_head_kv_full = 0;
};

const std::vector<ModelShape>& known_shapes();
const ModelShape& find_shape(const std::string& name);  // rotor::Error lists the known names

// How llama-quantize's Q4_K_M, Q3_K_M or IQ3_XXS (with an imatrix) picks each tensor's type
// (gguf-conventions.md sections 5.3, 5.5, 5.6), or one type for every matrix when mix is a plain type
// name ("q8_0", "f16", ...). IQ3_XXS files can only be written metadata-only (no IQ quantizer here).
// Unsloth's "UD" mixes are not defined anywhere we can read, so they are not offered.
struct QuantMix {
    std::string name;
    GgmlType uniform = GgmlType::F16;
    bool q4_k_m = false;
    bool q3_k_m = false;
    bool iq3_xxs = false;
};
QuantMix parse_quant_mix(const std::string& name);

// One tensor of the plan, in file order.
struct PlannedTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> dims;
    enum Kind { Matrix, Norm, Bias, RopeFreqs, SsmA, Scale } kind;
};
std::vector<PlannedTensor> plan_synthetic_tensors(const ModelShape& shape, const QuantMix& mix);

// Bytes of the tensor data section (each tensor padded to 32), without writing anything.
uint64_t synthetic_data_bytes(const ModelShape& shape, const QuantMix& mix);

// Writes the model; returns the total tensor bytes. with_data = false writes a metadata-only file.
// vocab_from copies a real tokenizer, and the vocabulary (embedding and output rows) becomes its size.
uint64_t write_synthetic_model(const ModelShape& shape, const QuantMix& mix, const std::string& path,
                               uint64_t seed = 1, const std::string& vocab_from = "", bool with_data = true);

}  // namespace rotor
