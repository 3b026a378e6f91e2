// rotor info FILE: what a GGUF file holds, in a form a person can read.
#include <cinttypes>
#include <cstdio>
#include <string>

#include "commands.h"
#include "gguf/gguf.h"

namespace rotor::cli {

namespace {

std::string quoted(std::string_view s, size_t max = 80) {
    std::string out = "\"";
    size_t n = 0;
    for (char c : s) {
        if (n++ >= max) {
            out += "...";
            break;
        }
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '"') out += "\\\"";
        else if ((unsigned char)c < 0x20) out += "?";
        else out += c;
    }
    return out + "\"";
}

std::string scalar_text(const gguf::Value& v) {
    using gguf::ValueType;
    char buf[64];
    switch (v.type) {
        case ValueType::BOOL: return v.num.u ? "true" : "false";
        case ValueType::F32: case ValueType::F64: snprintf(buf, sizeof buf, "%.9g", v.num.f); return buf;
        case ValueType::STRING: return quoted(v.str);
        case ValueType::I8: case ValueType::I16: case ValueType::I32: case ValueType::I64:
            return std::to_string(v.num.i);
        default: return std::to_string(v.num.u);
    }
}

std::string value_text(const gguf::Value& v, size_t max_elems = 8) {
    using gguf::ValueType;
    if (v.type != ValueType::ARRAY) return scalar_text(v);
    std::string out = "[" + std::string(gguf::value_type_name(v.elem_type)) + " x " + std::to_string(v.count);
    if (v.count) out += ":";
    for (uint64_t k = 0; k < v.count && k < max_elems; k++) {
        out += k ? ", " : " ";
        if (v.elem_type == ValueType::STRING) out += quoted(v.strs[k], 24);
        else if (v.elem_type == ValueType::ARRAY) out += value_text(v.arrs[k], 4);
        else if (v.elem_type == ValueType::F32 || v.elem_type == ValueType::F64) {
            char buf[32];
            snprintf(buf, sizeof buf, "%g", v.array_float(k));
            out += buf;
        } else if (v.elem_type == ValueType::BOOL) out += v.array_int(k) ? "true" : "false";
        else out += std::to_string(v.array_int(k));
    }
    if (v.count > max_elems) out += ", ...";
    return out + "]";
}

std::string shape_text(const gguf::TensorInfo& t) {
    std::string s = "{";
    for (uint32_t d = 0; d < t.n_dims; d++) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + "}";
}

std::string bytes_text(uint64_t b) {
    char buf[64];
    if (b >= (1ull << 30)) snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
    else if (b >= (1ull << 20)) snprintf(buf, sizeof buf, "%.2f MiB", b / 1048576.0);
    else if (b >= 1024) snprintf(buf, sizeof buf, "%.2f KiB", b / 1024.0);
    else snprintf(buf, sizeof buf, "%" PRIu64 " B", b);
    return buf;
}

void print_token(const gguf::File& f, const char* label, std::string_view key) {
    auto id = f.get_uint(key);
    if (!id) return;
    if (*id == 0xffffffffu) {  // llama.cpp writes -1 as u32 for "none"
        printf("  %-8s (none)\n", label);
        return;
    }
    const gguf::Value* toks = f.get_array("tokenizer.ggml.tokens");
    std::string text;
    if (toks && toks->elem_type == gguf::ValueType::STRING && *id < toks->count) text = " " + quoted(toks->strs[*id], 32);
    else if (toks) text = " (out of range!)";
    printf("  %-8s %" PRIu64 "%s\n", label, *id, text.c_str());
}

void print_vocab(const gguf::File& f) {
    auto model = f.get_string("tokenizer.ggml.model");
    const gguf::Value* toks = f.get_array("tokenizer.ggml.tokens");
    if (!model && !toks) {
        printf("\nvocabulary: none\n");
        return;
    }
    printf("\nvocabulary:\n");
    auto pre = f.get_string("tokenizer.ggml.pre");
    printf("  model    %s\n", model ? std::string(*model).c_str() : "(missing)");
    printf("  pre      %s\n", pre ? std::string(*pre).c_str() : "(default)");
    printf("  tokens   %" PRIu64 "\n", toks ? toks->count : 0);
    if (const gguf::Value* m = f.get_array("tokenizer.ggml.merges")) printf("  merges   %" PRIu64 "\n", m->count);
    if (const gguf::Value* s = f.get_array("tokenizer.ggml.scores")) printf("  scores   %" PRIu64 "\n", s->count);
    print_token(f, "bos", "tokenizer.ggml.bos_token_id");
    print_token(f, "eos", "tokenizer.ggml.eos_token_id");
    print_token(f, "eot", "tokenizer.ggml.eot_token_id");
    print_token(f, "unk", "tokenizer.ggml.unknown_token_id");
    print_token(f, "sep", "tokenizer.ggml.seperator_token_id");
    print_token(f, "pad", "tokenizer.ggml.padding_token_id");
    print_token(f, "mask", "tokenizer.ggml.mask_token_id");
    for (const char* k : {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_space_prefix"})
        if (auto b = f.get_bool(k)) printf("  %s = %s\n", k + 15, *b ? "true" : "false");
    // token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    if (const gguf::Value* tt = f.get_array("tokenizer.ggml.token_type"); tt && tt->raw) {
        uint64_t counts[8] = {};
        std::string first_special;
        int shown = 0;
        for (uint64_t k = 0; k < tt->count; k++) {
            const int64_t t = tt->array_int(k);
            counts[(t >= 0 && t < 8) ? t : 0]++;
            if ((t == 3 || t == 4) && shown < 8 && toks && k < toks->count) {
                first_special += (shown ? ", " : "") + quoted(toks->strs[k], 24) + "=" + std::to_string(k);
                shown++;
            }
        }
        printf("  token types: normal %" PRIu64 ", control %" PRIu64 ", user-defined %" PRIu64 ", byte %" PRIu64
               ", unused %" PRIu64 ", unknown %" PRIu64 "\n",
               counts[1], counts[3], counts[4], counts[6], counts[5], counts[2]);
        if (shown) printf("  special tokens: %s%s\n", first_special.c_str(), counts[3] + counts[4] > 8 ? ", ..." : "");
    }
    if (auto tmpl = f.get_string("tokenizer.chat_template"))
        printf("  chat template: %zu bytes\n", tmpl->size());
}

}  // namespace

static int cmd_info(const Args& args) {
    if (args.size() != 1) {
        fprintf(stderr, "usage: rotor info FILE\n");
        return 2;
    }
    gguf::OpenOptions opt;
    opt.allow_missing_data = true;  // still describe metadata-only / truncated-data files, and say so
    gguf::File f = gguf::File::open(args[0], opt);
    const std::string arch = f.architecture();
    printf("file: %s\n", f.path().c_str());
    printf("  GGUF v%u, %zu metadata keys, %zu tensors, alignment %u, data at byte %" PRIu64 "%s\n", f.version(),
           f.kvs().size(), f.tensors().size(), f.alignment(), f.data_offset(),
           f.has_all_data() ? "" : " (TENSOR DATA MISSING OR TRUNCATED)");
    printf("architecture: %s\n", arch.empty() ? "(none)" : arch.c_str());
    if (auto n = f.get_string("general.name")) printf("name: %s\n", std::string(*n).c_str());
    if (auto ft = f.get_uint("general.file_type")) printf("file type: %" PRIu64 "\n", *ft);

    const std::string prefix = arch + ".";
    printf("\nhyperparameters:\n");
    int n_hp = 0;
    for (const auto& kv : f.kvs())
        if (!arch.empty() && kv.key.substr(0, prefix.size()) == prefix) {
            printf("  %-44s %s\n", std::string(kv.key).c_str(), value_text(kv.value).c_str());
            n_hp++;
        }
    if (!n_hp) printf("  (none)\n");

    printf("\nother metadata:\n");
    for (const auto& kv : f.kvs()) {
        if (!arch.empty() && kv.key.substr(0, prefix.size()) == prefix) continue;
        if (kv.key.substr(0, 15) == "tokenizer.ggml." || kv.key == "tokenizer.chat_template") continue;
        printf("  %-44s %s\n", std::string(kv.key).c_str(), value_text(kv.value).c_str());
    }

    uint64_t total = 0, params = 0;
    for (const auto& t : f.tensors()) {
        total += t.n_bytes;
        params += t.n_elements;
    }
    printf("\ntensors: %zu, %" PRIu64 " parameters, %s\n", f.tensors().size(), params, bytes_text(total).c_str());
    if (!f.tensors().empty()) printf("  %-40s %-8s %-28s %s\n", "name", "type", "shape", "bytes");
    for (const auto& t : f.tensors())
        printf("  %-40s %-8s %-28s %" PRIu64 "%s\n", std::string(t.name).c_str(),
               std::string(format_info(t.type).name).c_str(), shape_text(t).c_str(), t.n_bytes,
               t.data ? "" : "  (absent)");
    print_vocab(f);
    return 0;
}

ROTOR_COMMAND(info, "info FILE                          architecture, hyperparameters, tensors, vocabulary", cmd_info);

}  // namespace rotor::cli
