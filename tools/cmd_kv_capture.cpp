// rotor kv-capture -m MODEL.gguf --tokens FILE.u16 [--ctx N] [--chunks N] -o OUT: runs the model over
// the tokens through an f32 KV cache that records every key and value stored and every (post-RoPE)
// query, and writes them for `rotor kv-eval --capture`. The file format is described in
// src/kv/kv_eval.h. Tokens: uint16 little-endian ids (models/*/val.tokens.u16), or --random-tokens N.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "cli_common.h"
#include "commands.h"
#include "common/error.h"
#include "kv/kv_eval.h"
#include "kv/kv_hadamard.h"
#include "model/model.h"

namespace rotor::cli {

namespace {

int cmd_kv_capture(const Args& args) {
    std::string model_path, tokens_path, out;
    int n_ctx = 0, n_chunks = 1, n_threads = 2, random_tokens = 0, seed = 1;
    bool bos = true;
    for (size_t i = 0; i < args.size(); i++) {
        const std::string& a = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw Error("option " + a + " needs a value");
            return args[++i];
        };
        if (a == "-m" || a == "--model") model_path = value();
        else if (a == "--tokens") tokens_path = value();
        else if (a == "--random-tokens") random_tokens = parse_int(a, value(), 1);
        else if (a == "--seed") seed = parse_int(a, value(), 0);
        else if (a == "--ctx") n_ctx = parse_int(a, value(), 1);
        else if (a == "--chunks") n_chunks = parse_int(a, value(), 1);
        else if (a == "-t" || a == "--threads") n_threads = parse_int(a, value(), 1);
        else if (a == "--no-bos") bos = false;
        else if (a == "-o" || a == "--output") out = value();
        else if (a == "-h" || a == "--help") {
            printf("usage: rotor kv-capture -m MODEL.gguf (--tokens FILE.u16 | --random-tokens N [--seed S]) [--ctx N]\n"
                   "       [--chunks N] [--threads N] [--no-bos] -o OUT.kvcap\n"
                   "  Records K, V and the post-RoPE queries of every layer over chunks of N tokens (default: the\n"
                   "  model's training context, at most 2048); each chunk starts with BOS unless --no-bos.\n");
            return 0;
        } else throw Error("unknown option " + a + " (rotor kv-capture --help)");
    }
    if (model_path.empty() || out.empty()) throw Error("usage: rotor kv-capture -m MODEL.gguf --tokens FILE.u16 -o OUT");
    if (tokens_path.empty() == (random_tokens == 0)) throw Error("give exactly one of --tokens FILE and --random-tokens N");
    auto model = Model::load(model_path);
    if (n_ctx == 0) n_ctx = std::min(2048, model->cfg.n_ctx_train > 0 ? model->cfg.n_ctx_train : 2048);
    std::vector<int32_t> tokens;
    if (random_tokens) {
        uint64_t st = (uint64_t)seed;
        for (int i = 0; i < random_tokens; i++) tokens.push_back((int32_t)(kvq::splitmix64(st) % (uint64_t)model->cfg.n_vocab));
    } else {
        tokens = read_u16_tokens(tokens_path);
    }
    int32_t bos_id = -1;
    if (bos)
        if (auto b = model->file.get_uint("tokenizer.ggml.bos_token_id")) bos_id = (int32_t)*b;
    std::string name = model->file.get_string("general.name") ? std::string(*model->file.get_string("general.name"))
                                                              : model_path;
    const KvCapture cap = capture_kv(*model, tokens, n_ctx, n_chunks, bos_id, n_threads, name);
    write_kv_capture(out, cap);
    int n_kv_layers = 0;
    for (const auto& L : cap.layers) n_kv_layers += L.n_head_kv > 0;
    printf("%s: %d chunk(s) x %d tokens, %d layers with a KV cache -> %s\n", name.c_str(), n_chunks, n_ctx,
           n_kv_layers, out.c_str());
    return 0;
}

}  // namespace

ROTOR_COMMAND(kv_capture, "kv-capture -m MODEL --tokens F -o OUT  record K, V and queries of a run for kv-eval",
              cmd_kv_capture);

}  // namespace rotor::cli
