// Writes small valid inputs for the fuzz targets into DIR/<target>/ (run by scripts/test.sh before fuzzing),
// so the fuzzers start from real structure instead of random bytes.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace fs = std::filesystem;

static void save(const fs::path& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
    fs::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary).write((const char*)bytes.data(), (std::streamsize)bytes.size());
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    const fs::path root = argv[1];
    using rotor::GgmlType;
    // One tensor of each format (two blocks each) plus every metadata value type.
    rotor::gguf::Writer w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.block_count", 1);
    w.set_f32("llama.rope.freq_base", 10000.0f);
    w.set_bool("b", true);
    w.set_i64("i", -5);
    w.set_f64("d", 0.5);
    w.set_array_string("tokenizer.ggml.tokens", {"<s>", "a", "b"});
    w.set_array_i32("arr", {1, 2, 3});
    std::vector<uint8_t> blocks(2 * 292, 0x11);
    for (uint32_t id = 0; id < rotor::kGgmlTypeCount; id++) {
        const rotor::FormatInfo* fi = rotor::format_info(id);
        if (!fi || !fi->can_dequantize) continue;
        w.add_tensor(std::string("t.") + std::string(fi->name), fi->type, {(int64_t)fi->block_elems * 2}, blocks.data());
    }
    save(root / "gguf", "all_formats.gguf", w.to_bytes());
    rotor::gguf::Writer small;
    small.set_string("general.architecture", "x");
    static const float f[4] = {1, 2, 3, 4};
    small.add_tensor("w", GgmlType::F32, {2, 2}, f);
    save(root / "gguf", "small.gguf", small.to_bytes());
    return 0;
}
