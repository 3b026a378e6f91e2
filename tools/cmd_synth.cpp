// rotor synth --shape NAME --mix MIX -o FILE [--metadata-only] [--seed N] [--vocab-from GGUF]
// A random-weight model of a real shape (src/convert/synthetic.h); metadata-only files (tensor table,
// no data) are what `rotor plan` needs to plan for models that are not downloaded.
#include <cstdio>

#include "cli_common.h"
#include "commands.h"
#include "convert/synthetic.h"

namespace rotor::cli {

namespace {

const char* kUsage =
    "usage: rotor synth --shape NAME --mix MIX -o FILE [options]\n"
    "  --shape NAME         a known model shape (--list shows them)\n"
    "  --mix MIX            Q4_K_M, Q3_K_M or IQ3_XXS (llama-quantize's stock per-tensor choice), or one\n"
    "                       weight type for every matrix (q8_0, f16, ...); default Q4_K_M\n"
    "  --metadata-only      write the header and tensor table only (enough for rotor plan)\n"
    "  --seed N             random weights' seed (default 1)\n"
    "  --vocab-from GGUF    copy the tokenizer of a real model file\n"
    "  --list               the known shapes\n";

int cmd_synth(const Args& args) {
    std::string shape, mix = "Q4_K_M", out, vocab;
    bool metadata_only = false, list = false;
    int seed = 1;
    ArgReader a(args);
    while (a.next()) {
        const std::string& o = a.arg();
        if (o == "--shape") shape = a.value();
        else if (o == "--mix") mix = a.value();
        else if (o == "-o" || o == "--output") out = a.value();
        else if (o == "--metadata-only") metadata_only = true;
        else if (o == "--seed") seed = parse_int(o, a.value(), 0);
        else if (o == "--vocab-from") vocab = a.value();
        else if (o == "--list") list = true;
        else if (o == "-h" || o == "--help") {
            printf("%s", kUsage);
            return 0;
        } else throw Error("unknown option " + o + "\n" + kUsage);
    }
    if (list) {
        for (const ModelShape& s : known_shapes()) printf("%-18s %s, %d layers\n", s.name.c_str(), s.arch.c_str(), s.n_layer);
        return 0;
    }
    if (shape.empty() || out.empty()) throw Error(std::string("--shape and -o are required\n") + kUsage);
    const ModelShape& s = find_shape(shape);
    const QuantMix m = parse_quant_mix(mix);
    const uint64_t bytes = write_synthetic_model(s, m, out, (uint64_t)seed, vocab, !metadata_only);
    printf("%s: %s %s, %llu bytes of tensors%s\n", out.c_str(), s.name.c_str(), mix.c_str(), (unsigned long long)bytes,
           metadata_only ? " (metadata only)" : "");
    return 0;
}

}  // namespace

ROTOR_COMMAND(synth, "synth --shape NAME --mix MIX -o FILE [--metadata-only]   random-weight model of a real shape",
              cmd_synth);

}  // namespace rotor::cli
