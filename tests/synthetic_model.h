// A random-weight model of one of rotor synth's shapes, written by our GGUF writer to a temporary file
// and loaded; the file is removed at once (the mapping stays valid). For tests of whole models.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "convert/synthetic.h"
#include "model/model.h"

namespace rotor::test {

inline std::unique_ptr<Model> load_synthetic(const std::string& shape, const std::string& mix, uint64_t seed = 1,
                                             const std::string& vocab_from = "") {
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("rotor_" + shape + "_" + mix + "_" + std::to_string(getpid()) + ".gguf"))
                                 .string();
    write_synthetic_model(find_shape(shape), parse_quant_mix(mix), path, seed, vocab_from);
    auto m = Model::load(path);
    std::filesystem::remove(path);
    return m;
}

}  // namespace rotor::test
