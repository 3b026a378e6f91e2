// Hugging Face checkpoint (config.json + *.safetensors) -> GGUF, following llama.cpp's converter
// conventions (tensor names, the Q/K row permutation of `llama`, Llama 3 rope_freqs, F32 norms), written
// with rotor's own GGUF writer. Used for the transformers parity fixtures and for users' own models.
#pragma once
#include <string>

#include "formats/formats.h"

namespace rotor {

struct HfConvertOptions {
    GgmlType outtype = GgmlType::F16;  // type of 2-D weights (1-D tensors stay F32)
    std::string vocab_from;            // copy tokenizer.* keys from this GGUF (optional)
    std::string name;                  // general.name (default: the folder name)
    // When no vocab_from is given and the folder has a byte-level BPE tokenizer.json, it is converted
    // (tokenizer.ggml.model "gpt2"); its pre-tokenizer cannot be inferred reliably, so it is named here.
    std::string bpe_pre = "gpt-2";
    bool add_bos = false;              // tokenizer.ggml.add_bos_token for a converted tokenizer.json
    std::string chat_template;         // tokenizer.chat_template to store (optional)
};

// Returns a one-line summary. Throws rotor::Error for unsupported model types or inconsistent files.
std::string convert_hf_to_gguf(const std::string& hf_dir, const std::string& out_path, const HfConvertOptions& opt);

}  // namespace rotor
