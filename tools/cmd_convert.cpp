// rotor convert-hf DIR OUT.gguf [--outtype T] [--vocab FILE.gguf] [--name NAME]
#include <cstdio>
#include <fstream>
#include <iterator>

#include "commands.h"
#include "common/error.h"
#include "convert/hf_convert.h"

namespace rotor::cli {

namespace {

int cmd_convert_hf(const Args& args) {
    HfConvertOptions opt;
    std::vector<std::string> pos;
    for (size_t i = 0; i < args.size(); i++) {
        const std::string& a = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw Error("option " + a + " needs a value");
            return args[++i];
        };
        if (a == "--outtype") {
            const std::string& t = value();
            auto ft = format_from_name(t);
            if (!ft || !format_info(*ft).can_quantize) throw Error("--outtype " + t + " is not a type rotor can write");
            opt.outtype = *ft;
        } else if (a == "--vocab") {
            opt.vocab_from = value();
        } else if (a == "--name") {
            opt.name = value();
        } else if (a == "--pre") {
            opt.bpe_pre = value();
        } else if (a == "--add-bos") {
            opt.add_bos = true;
        } else if (a == "--chat-template") {
            const std::string path = value();
            std::ifstream f(path);
            if (!f) throw Error("cannot read chat template '" + path + "'");
            opt.chat_template.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        } else if (a == "-h" || a == "--help") {
            printf("usage: rotor convert-hf HF_DIR OUT.gguf [--outtype f32|f16|bf16|q8_0|...] [--vocab VOCAB.gguf] [--name NAME]\n"
                   "       [--pre NAME] [--add-bos] [--chat-template FILE.jinja]   (for a byte-level BPE tokenizer.json)\n");
            return 0;
        } else if (!a.empty() && a[0] == '-') {
            throw Error("unknown option " + a);
        } else {
            pos.push_back(a);
        }
    }
    if (pos.size() != 2) throw Error("usage: rotor convert-hf HF_DIR OUT.gguf [--outtype T] [--vocab VOCAB.gguf]");
    printf("%s\n", convert_hf_to_gguf(pos[0], pos[1], opt).c_str());
    return 0;
}

}  // namespace

ROTOR_COMMAND(convert_hf, "convert-hf HF_DIR OUT.gguf [--outtype T]  Hugging Face safetensors -> GGUF", cmd_convert_hf);

}  // namespace rotor::cli
