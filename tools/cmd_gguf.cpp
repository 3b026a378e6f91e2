// rotor gguf dump FILE TENSOR --f32 OUT: one tensor dequantized to little-endian float32.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "commands.h"
#include "common/error.h"
#include "gguf/gguf.h"

namespace rotor::cli {

namespace {

int usage() {
    fprintf(stderr, "usage: rotor gguf dump FILE TENSOR --f32 OUT   (OUT '-' writes to stdout)\n");
    return 2;
}

int dump(const Args& args) {
    if (args.size() != 5 || args[3] != "--f32") return usage();
    gguf::File f = gguf::File::open(args[1]);
    const gguf::TensorInfo* t = f.tensor(args[2]);
    if (!t) throw Error("tensor '" + args[2] + "' not found in '" + args[1] + "'");
    const FormatInfo& fi = format_info(t->type);
    if (!fi.can_dequantize)
        throw Error("tensor '" + args[2] + "' has type " + std::string(fi.name) + ", which rotor cannot dequantize");
    const bool to_stdout = args[4] == "-";
    FILE* out = to_stdout ? stdout : fopen(args[4].c_str(), "wb");
    if (!out) throw Error("cannot write '" + args[4] + "': " + strerror(errno));
    const int64_t row = t->ne[0];
    const uint64_t rb = row_bytes(t->type, (uint64_t)row);
    std::vector<float> buf((size_t)row);
    bool ok = true;
    for (int64_t r = 0; r < t->rows() && ok; r++) {
        dequantize_row(t->type, t->data + (uint64_t)r * rb, buf.data(), row);
        ok = fwrite(buf.data(), sizeof(float), buf.size(), out) == buf.size();
    }
    if (!to_stdout && fclose(out) != 0) ok = false;
    if (!ok) throw Error("write to '" + args[4] + "' failed: " + strerror(errno));
    fprintf(stderr, "wrote %lld floats (%s %s) to %s\n", (long long)t->n_elements, std::string(fi.name).c_str(),
            args[2].c_str(), args[4].c_str());
    return 0;
}

}  // namespace

static int cmd_gguf(const Args& args) {
    if (args.empty()) return usage();
    if (args[0] == "dump") return dump(args);
    return usage();
}

ROTOR_COMMAND(gguf, "gguf dump FILE TENSOR --f32 OUT     one tensor dequantized to little-endian float32", cmd_gguf);

}  // namespace rotor::cli
