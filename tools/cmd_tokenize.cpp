// rotor tokenize -m FILE: UTF-8 text on stdin to token ids with the model's vocabulary.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "commands.h"
#include "common/error.h"
#include "common/utf8.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

namespace rotor::cli {

namespace {

int usage() {
    fprintf(stderr,
            "usage: rotor tokenize -m FILE [--no-bos] [--parse-special] [--pieces] < text\n"
            "  prints the token ids of the UTF-8 text on stdin, space-separated on one line\n"
            "  --no-bos          do not add BOS / EOS (by default added as the vocabulary says)\n"
            "  --parse-special   special tokens written in the text (e.g. <|im_start|>) become those tokens\n"
            "  --pieces          one token per line: id, a tab, and the token's text (escaped)\n");
    return 2;
}

// The piece as readable text: control characters and bytes that are not (complete) UTF-8 escaped.
std::string escape_piece(const std::string& p) {
    std::string out;
    size_t i = 0;
    while (i < p.size()) {
        const uint8_t c = (uint8_t)p[i];
        char buf[8];
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c == '\\') out += "\\\\";
        else if (c < 0x20 || c == 0x7f) {
            snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else if (c < 0x80) {
            out += (char)c;
        } else {
            const int len = utf8_seq_len(c);
            if (len > 0 && i + (size_t)len <= p.size() && utf8_valid(std::string_view(p).substr(i, (size_t)len))) {
                out.append(p, i, (size_t)len);
                i += (size_t)len;
                continue;
            }
            snprintf(buf, sizeof buf, "\\x%02x", c);  // one byte of a character split over tokens
            out += buf;
        }
        i++;
    }
    return out;
}

}  // namespace

static int cmd_tokenize(const Args& args) {
    std::string model;
    bool add_special = true, parse_special = false, pieces = false;
    for (size_t i = 0; i < args.size(); i++) {
        const std::string& a = args[i];
        if ((a == "-m" || a == "--model") && i + 1 < args.size()) model = args[++i];
        else if (a == "--no-bos") add_special = false;
        else if (a == "--parse-special") parse_special = true;
        else if (a == "--pieces") pieces = true;
        else if (a == "-h" || a == "--help") return usage(), 0;
        else return usage();
    }
    if (model.empty()) return usage();

    gguf::OpenOptions opt;
    opt.allow_missing_data = true;  // only the vocabulary is needed
    const gguf::File f = gguf::File::open(model, opt);
    const Vocab vocab = Vocab::from_gguf(f);
    for (const std::string& w : vocab.warnings()) fprintf(stderr, "rotor tokenize: warning: %s\n", w.c_str());

    const std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::vector<int32_t> ids;
    try {
        ids = vocab.tokenize(text, add_special, parse_special);
    } catch (const Error& e) {
        throw Error(std::string("stdin: ") + e.what());  // e.g. not valid UTF-8, at which byte
    }

    std::string out;
    for (size_t i = 0; i < ids.size(); i++) {
        if (pieces) {
            out += std::to_string(ids[i]) + "\t" + escape_piece(vocab.token_to_piece(ids[i], true)) + "\n";
        } else {
            if (i) out += ' ';
            out += std::to_string(ids[i]);
        }
    }
    if (!pieces) out += '\n';
    fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

ROTOR_COMMAND(tokenize, "tokenize -m FILE [OPTIONS] < TEXT    token ids of UTF-8 text (--no-bos, --parse-special, --pieces)",
              cmd_tokenize);

}  // namespace rotor::cli
