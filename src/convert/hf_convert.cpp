#include "convert/hf_convert.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/error.h"
#include "convert/safetensors.h"
#include "gguf/gguf.h"

namespace rotor {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct HfModel {
    std::vector<std::unique_ptr<SafeTensorsFile>> files;
    const SafeTensor* find(const std::string& name) const {
        for (const auto& f : files)
            if (const SafeTensor* t = f->find(name)) return t;
        return nullptr;
    }
};

template <typename T>
T cfg_get(const json& c, const char* key, T fallback) {
    auto it = c.find(key);
    return (it == c.end() || it->is_null()) ? fallback : it->get<T>();
}

// transformers 5 keeps RoPE settings in rope_parameters; older configs use rope_theta / rope_scaling.
json rope_params(const json& c) {
    json r = json::object();
    if (c.contains("rope_scaling") && c["rope_scaling"].is_object()) r = c["rope_scaling"];
    if (c.contains("rope_parameters") && c["rope_parameters"].is_object())
        for (auto& [k, v] : c["rope_parameters"].items()) r[k] = v;
    if (!r.contains("rope_theta") && c.contains("rope_theta")) r["rope_theta"] = c["rope_theta"];
    return r;
}

// llama.cpp's converter: HF rotate-half rows -> adjacent pairs. Row h*hd + s*hd/2 + i goes to h*hd + 2i + s.
std::vector<float> permute_rows(const std::vector<float>& w, int64_t n_head, int64_t rows, int64_t cols) {
    const int64_t hd = rows / n_head;
    std::vector<float> out(w.size());
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t s = 0; s < 2; s++)
            for (int64_t i = 0; i < hd / 2; i++) {
                const int64_t src = h * hd + s * (hd / 2) + i, dst = h * hd + 2 * i + s;
                std::copy(w.begin() + src * cols, w.begin() + (src + 1) * cols, out.begin() + dst * cols);
            }
    return out;
}

// Hugging Face tokenizer.json (byte-level BPE) -> the GGUF tokenizer keys llama.cpp's converter writes.
void convert_tokenizer_json(const fs::path& path, const json& config, const HfConvertOptions& opt, int64_t n_vocab,
                            gguf::Writer& w) {
    std::ifstream f(path);
    json t;
    try {
        t = json::parse(f);
    } catch (const std::exception& e) {
        throw Error("'" + path.string() + "': " + e.what());
    }
    const json& model = t.at("model");
    if (model.value("type", "") != "BPE" || !t.contains("pre_tokenizer") || t["pre_tokenizer"].is_null() ||
        t["pre_tokenizer"].value("type", "") != "ByteLevel")
        throw Error("'" + path.string() + "': only byte-level BPE tokenizers are converted; pass --vocab FILE.gguf");
    std::vector<std::string> tokens((size_t)n_vocab);
    std::vector<int32_t> types((size_t)n_vocab, 0);
    auto put = [&](const std::string& s, int64_t id, int32_t type) {
        if (id < 0 || id >= n_vocab) throw Error("tokenizer.json: token id " + std::to_string(id) + " is outside the model's vocabulary");
        tokens[(size_t)id] = s;
        types[(size_t)id] = type;
    };
    for (auto& [s, id] : model.at("vocab").items()) put(s, id.get<int64_t>(), 1);
    if (t.contains("added_tokens"))
        for (const auto& a : t["added_tokens"]) put(a.at("content").get<std::string>(), a.at("id").get<int64_t>(), a.value("special", false) ? 3 : 4);
    for (int64_t i = 0; i < n_vocab; i++)
        if (types[(size_t)i] == 0) {  // padding rows of the embedding: unused, as llama.cpp's converter writes them
            tokens[(size_t)i] = "[PAD" + std::to_string(i) + "]";
            types[(size_t)i] = 5;
        }
    std::vector<std::string> merges;
    for (const auto& m : model.at("merges"))
        merges.push_back(m.is_string() ? m.get<std::string>() : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", opt.bpe_pre);
    w.set_array_string("tokenizer.ggml.tokens", tokens);
    w.set_array_i32("tokenizer.ggml.token_type", types);
    w.set_array_string("tokenizer.ggml.merges", merges);
    if (config.contains("bos_token_id") && config["bos_token_id"].is_number())
        w.set_u32("tokenizer.ggml.bos_token_id", config["bos_token_id"].get<uint32_t>());
    if (config.contains("eos_token_id") && config["eos_token_id"].is_number())
        w.set_u32("tokenizer.ggml.eos_token_id", config["eos_token_id"].get<uint32_t>());
    w.set_bool("tokenizer.ggml.add_bos_token", opt.add_bos);
    w.set_bool("tokenizer.ggml.add_eos_token", false);
}

}  // namespace

std::string convert_hf_to_gguf(const std::string& hf_dir, const std::string& out_path, const HfConvertOptions& opt) {
    const fs::path dir(hf_dir);
    std::ifstream cf(dir / "config.json");
    if (!cf) throw Error("no config.json in '" + hf_dir + "'");
    json c;
    try {
        c = json::parse(cf);
    } catch (const std::exception& e) {
        throw Error("config.json in '" + hf_dir + "': " + e.what());
    }
    const std::string mt = cfg_get<std::string>(c, "model_type", "");
    std::string arch;
    if (mt == "llama" || mt == "mistral") arch = "llama";
    else if (mt == "qwen2") arch = "qwen2";
    else if (mt == "qwen3") arch = "qwen3";
    else throw Error("model_type '" + mt + "' is not supported by the converter (llama, mistral, qwen2, qwen3)");

    HfModel hf;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") hf.files.push_back(std::make_unique<SafeTensorsFile>(e.path().string()));
    if (hf.files.empty()) throw Error("no .safetensors files in '" + hf_dir + "'");

    const int64_t E = cfg_get<int64_t>(c, "hidden_size", 0);
    const int64_t L = cfg_get<int64_t>(c, "num_hidden_layers", 0);
    const int64_t H = cfg_get<int64_t>(c, "num_attention_heads", 0);
    const int64_t Hkv = cfg_get<int64_t>(c, "num_key_value_heads", H);
    const int64_t FF = cfg_get<int64_t>(c, "intermediate_size", 0);
    if (E <= 0 || L <= 0 || H <= 0 || Hkv <= 0 || FF <= 0) throw Error("config.json lacks model dimensions");
    const int64_t hd = cfg_get<int64_t>(c, "head_dim", E / H);
    const json rope = rope_params(c);
    const std::string rope_type = cfg_get<std::string>(rope, "rope_type", cfg_get<std::string>(rope, "type", "default"));

    gguf::Writer w;
    w.set_string("general.architecture", arch);
    w.set_string("general.name", opt.name.empty() ? dir.filename().string() : opt.name);
    const std::string p = arch + ".";
    w.set_u32(p + "context_length", cfg_get<uint32_t>(c, "max_position_embeddings", 2048));
    w.set_u32(p + "embedding_length", (uint32_t)E);
    w.set_u32(p + "block_count", (uint32_t)L);
    w.set_u32(p + "feed_forward_length", (uint32_t)FF);
    w.set_u32(p + "attention.head_count", (uint32_t)H);
    w.set_u32(p + "attention.head_count_kv", (uint32_t)Hkv);
    w.set_f32(p + "rope.freq_base", cfg_get<float>(rope, "rope_theta", 10000.0f));
    w.set_f32(p + "attention.layer_norm_rms_epsilon", cfg_get<float>(c, "rms_norm_eps", 1e-6f));
    w.set_u32(p + "rope.dimension_count", (uint32_t)hd);
    if (hd != E / H) {
        w.set_u32(p + "attention.key_length", (uint32_t)hd);
        w.set_u32(p + "attention.value_length", (uint32_t)hd);
    }
    w.set_u32("general.file_type", opt.outtype == GgmlType::F32 ? 0 : opt.outtype == GgmlType::F16 ? 1
                                   : opt.outtype == GgmlType::BF16 ? 32 : opt.outtype == GgmlType::Q8_0 ? 7 : 1024);

    // Tensor bytes must outlive the writer's write(); keep every converted buffer here.
    std::vector<std::vector<uint8_t>> store;
    auto add = [&](const std::string& name, const std::vector<float>& v, std::vector<int64_t> dims, GgmlType t) {
        const FormatInfo& fi = format_info(t);
        if (dims[0] % fi.block_elems != 0) t = GgmlType::F16;  // llama.cpp's fallback for odd widths
        store.emplace_back(row_bytes(t, (uint64_t)dims[0]) * (v.size() / (size_t)dims[0]));
        const int64_t rows = (int64_t)v.size() / dims[0];
        for (int64_t r = 0; r < rows; r++)
            quantize_row(t, v.data() + r * dims[0], store.back().data() + r * row_bytes(t, (uint64_t)dims[0]), dims[0]);
        w.add_tensor(name, t, dims, store.back().data());
    };
    auto tensor = [&](const std::string& hf_name, bool required = true) -> const SafeTensor* {
        const SafeTensor* t = hf.find(hf_name);
        if (!t && required) throw Error("checkpoint in '" + hf_dir + "' lacks tensor '" + hf_name + "'");
        return t;
    };
    // 2-D weight [out, in] -> ggml {in, out}; `permute_heads` > 0 applies llama's Q/K permutation.
    auto matrix = [&](const std::string& hf_name, const std::string& name, int64_t permute_heads = 0) {
        const SafeTensor* t = tensor(hf_name);
        if (t->shape.size() != 2) throw Error("'" + hf_name + "' is not a matrix");
        std::vector<float> v = t->to_f32();
        if (permute_heads) v = permute_rows(v, permute_heads, t->shape[0], t->shape[1]);
        add(name, v, {t->shape[1], t->shape[0]}, opt.outtype);
    };
    auto vector = [&](const std::string& hf_name, const std::string& name, int64_t permute_heads = 0,
                      bool required = true) {
        const SafeTensor* t = tensor(hf_name, required);
        if (!t) return;
        std::vector<float> v = t->to_f32();
        if (permute_heads) v = permute_rows(v, permute_heads, (int64_t)v.size(), 1);
        add(name, v, {(int64_t)v.size()}, GgmlType::F32);
    };

    const bool is_llama = arch == "llama";
    matrix("model.embed_tokens.weight", "token_embd.weight");
    const int64_t V = tensor("model.embed_tokens.weight")->shape[0];
    w.set_u32(p + "vocab_size", (uint32_t)V);
    vector("model.norm.weight", "output_norm.weight");
    const bool tied = cfg_get<bool>(c, "tie_word_embeddings", false) || !hf.find("lm_head.weight");
    if (!tied) matrix("lm_head.weight", "output.weight");

    if (rope_type == "llama3") {
        // Per-dimension divisors of the rotation frequency, as llama.cpp's converter writes rope_freqs.
        const double base = cfg_get<double>(rope, "rope_theta", 10000.0), factor = cfg_get<double>(rope, "factor", 8.0);
        const double lo = cfg_get<double>(rope, "low_freq_factor", 1.0), hi = cfg_get<double>(rope, "high_freq_factor", 4.0);
        const double old_ctx = cfg_get<double>(rope, "original_max_position_embeddings", 8192.0);
        const double lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
        std::vector<float> factors;
        for (int64_t i = 0; i < hd; i += 2) {
            const double freq = 1.0 / std::pow(base, (double)i / hd);
            const double wavelen = 2 * M_PI / freq;
            if (wavelen < hi_wavelen) factors.push_back(1.0f);
            else if (wavelen > lo_wavelen) factors.push_back((float)factor);
            else {
                const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
                factors.push_back((float)(1.0 / ((1 - smooth) / factor + smooth)));
            }
        }
        add("rope_freqs.weight", factors, {(int64_t)factors.size()}, GgmlType::F32);
    } else if (rope_type == "linear") {
        w.set_string(p + "rope.scaling.type", "linear");
        w.set_f32(p + "rope.scaling.factor", cfg_get<float>(rope, "factor", 1.0f));
    } else if (rope_type != "default") {
        throw Error("RoPE type '" + rope_type + "' is not supported by the converter");
    }

    for (int64_t l = 0; l < L; l++) {
        const std::string hp = "model.layers." + std::to_string(l) + ".", gp = "blk." + std::to_string(l) + ".";
        vector(hp + "input_layernorm.weight", gp + "attn_norm.weight");
        matrix(hp + "self_attn.q_proj.weight", gp + "attn_q.weight", is_llama ? H : 0);
        matrix(hp + "self_attn.k_proj.weight", gp + "attn_k.weight", is_llama ? Hkv : 0);
        matrix(hp + "self_attn.v_proj.weight", gp + "attn_v.weight");
        matrix(hp + "self_attn.o_proj.weight", gp + "attn_output.weight");
        const bool bias_required = arch == "qwen2";
        vector(hp + "self_attn.q_proj.bias", gp + "attn_q.bias", is_llama ? H : 0, bias_required);
        vector(hp + "self_attn.k_proj.bias", gp + "attn_k.bias", is_llama ? Hkv : 0, bias_required);
        vector(hp + "self_attn.v_proj.bias", gp + "attn_v.bias", 0, bias_required);
        if (arch == "qwen3") {
            vector(hp + "self_attn.q_norm.weight", gp + "attn_q_norm.weight");
            vector(hp + "self_attn.k_norm.weight", gp + "attn_k_norm.weight");
        }
        vector(hp + "post_attention_layernorm.weight", gp + "ffn_norm.weight");
        matrix(hp + "mlp.gate_proj.weight", gp + "ffn_gate.weight");
        matrix(hp + "mlp.up_proj.weight", gp + "ffn_up.weight");
        matrix(hp + "mlp.down_proj.weight", gp + "ffn_down.weight");
    }

    if (!opt.vocab_from.empty()) {
        gguf::File vf = gguf::File::open(opt.vocab_from, gguf::OpenOptions{true});
        for (const auto& kv : vf.kvs())
            if (kv.key.substr(0, 10) == "tokenizer.") w.set_value(kv.key, kv.value);
        if (const gguf::Value* toks = vf.get_array("tokenizer.ggml.tokens"); toks && (int64_t)toks->count > V)
            throw Error("vocabulary in '" + opt.vocab_from + "' has " + std::to_string(toks->count) +
                        " tokens, more than the model's " + std::to_string(V) + " embedding rows");
    } else if (fs::exists(dir / "tokenizer.json")) {
        convert_tokenizer_json(dir / "tokenizer.json", c, opt, V, w);
    }
    if (!opt.chat_template.empty()) w.set_string("tokenizer.chat_template", opt.chat_template);
    w.write(out_path);
    return arch + " model, " + std::to_string(L) + " layers, " + std::to_string(E) + " wide, " +
           std::string(format_info(opt.outtype).name) + " -> " + out_path;
}

}  // namespace rotor
