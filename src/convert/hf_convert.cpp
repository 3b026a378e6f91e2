#include "convert/hf_convert.h"

#include <algorithm>
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
    std::string dir;  // for messages
    std::vector<std::unique_ptr<SafeTensorsFile>> files;
    const SafeTensor* find(const std::string& name) const {
        for (const auto& f : files)
            if (const SafeTensor* t = f->find(name)) return t;
        return nullptr;
    }
    // The tensor, or an error naming the checkpoint (nullptr when it is optional and absent).
    const SafeTensor* tensor(const std::string& name, bool required = true) const {
        const SafeTensor* t = find(name);
        if (!t && required) throw Error("checkpoint in '" + dir + "' lacks tensor '" + name + "'");
        return t;
    }
    // Its values as f32, after checking the shape the config implies.
    std::vector<float> data(const std::string& name, const std::vector<int64_t>& shape) const {
        const SafeTensor* t = tensor(name);
        check_shape(name, *t, shape);
        return t->to_f32();
    }
    static void check_shape(const std::string& name, const SafeTensor& t, const std::vector<int64_t>& shape) {
        if (t.shape == shape) return;
        std::string want;
        for (int64_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
        throw Error("'" + name + "' does not have the shape [" + want + "] its config implies");
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

uint32_t file_type(GgmlType t) {
    return t == GgmlType::F32 ? 0 : t == GgmlType::F16 ? 1 : t == GgmlType::BF16 ? 32 : t == GgmlType::Q8_0 ? 7 : 1024;
}

// Converted tensors: quantized to their type and kept alive until the writer has written them.
struct TensorSink {
    gguf::Writer& w;
    std::vector<std::vector<uint8_t>> store;
    void add(const std::string& name, const std::vector<float>& v, std::vector<int64_t> dims, GgmlType t) {
        const FormatInfo& fi = format_info(t);
        if (dims[0] % fi.block_elems != 0) t = GgmlType::F16;  // llama.cpp's fallback for odd widths
        store.emplace_back(row_bytes(t, (uint64_t)dims[0]) * (v.size() / (size_t)dims[0]));
        const int64_t rows = (int64_t)v.size() / dims[0];
        for (int64_t r = 0; r < rows; r++)
            quantize_row(t, v.data() + r * dims[0], store.back().data() + r * row_bytes(t, (uint64_t)dims[0]), dims[0]);
        w.add_tensor(name, t, dims, store.back().data());
    }
};

// The tokenizer keys: copied from opt.vocab_from, or converted from the folder's tokenizer.json.
void add_vocab(gguf::Writer& w, const fs::path& dir, const json& c, const HfConvertOptions& opt, int64_t V) {
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
}

// llama.cpp's V-head reorder for Gated DeltaNet weights (conversion/qwen.py, _LinearAttentionVReorderBase):
// HF groups the value heads by key head (g0v0..g0v(r-1), g1v0, ...); GGUF files tile them
// (g0v0, g1v0, ..., g0v1, g1v1, ...), so value head h reads key head h mod H_k. Reorders `n_heads * d`
// consecutive rows of `cols` floats starting at row `row0`: new head j*H_k + g <- old head g*r + j.
void reorder_v_rows(std::vector<float>& w, int64_t row0, int64_t n_k, int64_t n_v, int64_t d, int64_t cols) {
    const int64_t r = n_v / n_k;
    if (r == 1) return;
    const std::vector<float> old(w.begin() + row0 * cols, w.begin() + (row0 + n_v * d) * cols);
    for (int64_t g = 0; g < n_k; g++)
        for (int64_t j = 0; j < r; j++)
            std::copy(old.begin() + (g * r + j) * d * cols, old.begin() + (g * r + j + 1) * d * cols,
                      w.begin() + (row0 + (j * n_k + g) * d) * cols);
}

// The same reorder on the columns of a [rows, n_v * d] matrix (out_proj's input features).
void reorder_v_cols(std::vector<float>& w, int64_t rows, int64_t n_k, int64_t n_v, int64_t d) {
    const int64_t r = n_v / n_k, cols = n_v * d;
    if (r == 1) return;
    std::vector<float> row((size_t)cols);
    for (int64_t i = 0; i < rows; i++) {
        float* p = w.data() + i * cols;
        std::copy(p, p + cols, row.begin());
        for (int64_t g = 0; g < n_k; g++)
            for (int64_t j = 0; j < r; j++)
                std::copy(row.begin() + (g * r + j) * d, row.begin() + (g * r + j + 1) * d, p + (j * n_k + g) * d);
    }
}

// Qwen3.5 (qwen3_5 / qwen3_5_moe, text or the text part of the VL checkpoint) -> qwen35 / qwen35moe with
// llama.cpp's conventions (gguf-conventions.md 2.5, 3.5, 3.6): norm weights +1 except linear_attn.norm,
// A_log -> -exp(A_log), conv1d squeezed to {K, conv_dim}, V heads tiled, attn_q left interleaved
// (query then gate per head), experts stacked {in, out, n_expert}. The MTP block is not exported.
// Multimodal checkpoints (Qwen3.5, Gemma 4) keep the text model's settings in text_config and its
// tensors under model.language_model.; text-only ones at the top level and under model.
const json& text_config(const json& c) {
    return c.contains("text_config") && c["text_config"].is_object() ? c["text_config"] : c;
}
std::string text_tensor_prefix(const HfModel& hf) {
    return hf.find("model.language_model.embed_tokens.weight") ? "model.language_model." : "model.";
}
int64_t cfg_need(const json& c, const char* key) {  // a positive integer the converter cannot do without
    const int64_t v = cfg_get<int64_t>(c, key, 0);
    if (v <= 0) throw Error("config.json lacks '" + std::string(key) + "'");
    return v;
}

std::string convert_qwen35(const fs::path& dir, const json& c, const std::string& mt, const HfModel& hf,
                           const HfConvertOptions& opt, const std::string& out_path) {
    const bool moe = mt.rfind("qwen3_5_moe", 0) == 0;
    const std::string arch = moe ? "qwen35moe" : "qwen35";
    const json& tc = text_config(c);
    const std::string pre = text_tensor_prefix(hf);
    auto need = [&](const char* key) { return cfg_need(tc, key); };
    const int64_t E = need("hidden_size"), L = need("num_hidden_layers"), H = need("num_attention_heads");
    const int64_t Hkv = cfg_get<int64_t>(tc, "num_key_value_heads", H), hd = cfg_get<int64_t>(tc, "head_dim", 256);
    const int64_t K = need("linear_conv_kernel_dim"), dk = need("linear_key_head_dim"), dv = need("linear_value_head_dim");
    const int64_t Hk = need("linear_num_key_heads"), Hv = need("linear_num_value_heads");
    if (Hv % Hk) throw Error("linear_num_value_heads must be a multiple of linear_num_key_heads");
    if (!cfg_get<bool>(tc, "attn_output_gate", true)) throw Error("Qwen3.5 without attn_output_gate is not supported");
    if (cfg_get<bool>(tc, "attention_bias", false)) throw Error("Qwen3.5 with attention biases is not supported");
    const json rope = rope_params(tc);
    const std::string rope_type = cfg_get<std::string>(rope, "rope_type", cfg_get<std::string>(rope, "type", "default"));
    if (rope_type != "default") throw Error("RoPE type '" + rope_type + "' is not supported by the converter");
    const double partial = cfg_get<double>(rope, "partial_rotary_factor", cfg_get<double>(tc, "partial_rotary_factor", 0.25));
    std::vector<int32_t> sections = {11, 11, 10, 0};
    if (rope.contains("mrope_section") && rope["mrope_section"].is_array()) {
        sections.assign(4, 0);
        for (size_t i = 0; i < rope["mrope_section"].size() && i < 4; i++) sections[i] = rope["mrope_section"][i].get<int32_t>();
    }
    // layer_types as transformers keeps them; without them, full attention every full_attention_interval
    const int64_t interval = cfg_get<int64_t>(tc, "full_attention_interval", 4);
    std::vector<bool> recurrent((size_t)L);
    const bool have_types = tc.contains("layer_types") && tc["layer_types"].is_array();
    for (int64_t l = 0; l < L; l++) {
        if (!have_types) {
            recurrent[l] = (l + 1) % interval != 0;
            continue;
        }
        if ((int64_t)tc["layer_types"].size() != L) throw Error("layer_types must have num_hidden_layers entries");
        const std::string t = tc["layer_types"][l].get<std::string>();
        if (t != "linear_attention" && t != "full_attention") throw Error("layer type '" + t + "' is not supported");
        recurrent[l] = t == "linear_attention";
    }

    gguf::Writer w;
    TensorSink sink{w, {}};
    const std::string p = arch + ".";
    w.set_string("general.architecture", arch);
    w.set_string("general.name", opt.name.empty() ? dir.filename().string() : opt.name);
    w.set_u32(p + "context_length", cfg_get<uint32_t>(tc, "max_position_embeddings", 262144));
    w.set_u32(p + "embedding_length", (uint32_t)E);
    w.set_u32(p + "block_count", (uint32_t)L);
    if (!moe) w.set_u32(p + "feed_forward_length", (uint32_t)need("intermediate_size"));
    w.set_u32(p + "attention.head_count", (uint32_t)H);
    w.set_u32(p + "attention.head_count_kv", (uint32_t)Hkv);
    w.set_u32(p + "attention.key_length", (uint32_t)hd);
    w.set_u32(p + "attention.value_length", (uint32_t)hd);
    w.set_f32(p + "attention.layer_norm_rms_epsilon", cfg_get<float>(tc, "rms_norm_eps", 1e-6f));
    w.set_f32(p + "rope.freq_base", cfg_get<float>(rope, "rope_theta", 10000000.0f));
    w.set_u32(p + "rope.dimension_count", (uint32_t)(hd * partial));
    w.set_array_i32(p + "rope.dimension_sections", sections);
    w.set_u32(p + "ssm.conv_kernel", (uint32_t)K);
    w.set_u32(p + "ssm.state_size", (uint32_t)dk);
    w.set_u32(p + "ssm.group_count", (uint32_t)Hk);
    w.set_u32(p + "ssm.time_step_rank", (uint32_t)Hv);
    w.set_u32(p + "ssm.inner_size", (uint32_t)(dv * Hv));
    if (have_types) w.set_array_bool(p + "attention.recurrent_layers", recurrent);
    w.set_u32(p + "full_attention_interval", (uint32_t)interval);
    int64_t NE = 0, FE = 0, FS = 0;
    if (moe) {
        NE = need("num_experts");
        FE = need("moe_intermediate_size");
        FS = cfg_get<int64_t>(tc, "shared_expert_intermediate_size", 0);
        w.set_u32(p + "expert_count", (uint32_t)NE);
        w.set_u32(p + "expert_used_count", (uint32_t)need("num_experts_per_tok"));
        w.set_u32(p + "expert_feed_forward_length", (uint32_t)FE);
        if (FS > 0) w.set_u32(p + "expert_shared_feed_forward_length", (uint32_t)FS);
    }
    w.set_u32("general.file_type", file_type(opt.outtype));

    auto tensor = [&](const std::string& name, bool required = true) { return hf.tensor(name, required); };
    auto data = [&](const std::string& name, const std::vector<int64_t>& shape) { return hf.data(name, shape); };
    // HF [out, in] -> ggml {in, out}
    auto matrix = [&](const std::string& name, std::vector<float> v, int64_t out, int64_t in, GgmlType t) {
        sink.add(name, v, {in, out}, t);
    };
    auto norm = [&](const std::string& hf_name, const std::string& name, int64_t n, bool plus_one) {
        std::vector<float> v = data(hf_name, {n});
        if (plus_one)
            for (float& x : v) x += 1.0f;  // HF computes x * (1 + w)
        sink.add(name, v, {n}, GgmlType::F32);
    };

    const SafeTensor* emb = tensor(pre + "embed_tokens.weight");
    if (emb->shape.size() != 2 || emb->shape[1] != E) throw Error("embed_tokens has an unexpected shape");
    const int64_t V = emb->shape[0];
    w.set_u32(p + "vocab_size", (uint32_t)V);
    matrix("token_embd.weight", emb->to_f32(), V, E, opt.outtype);
    norm(pre + "norm.weight", "output_norm.weight", E, true);
    const bool tied = cfg_get<bool>(c, "tie_word_embeddings", cfg_get<bool>(tc, "tie_word_embeddings", false)) ||
                      !hf.find("lm_head.weight");
    if (!tied) matrix("output.weight", data("lm_head.weight", {V, E}), V, E, opt.outtype);

    const int64_t kdim = Hk * dk, vdim = Hv * dv, conv_dim = 2 * kdim + vdim;
    for (int64_t l = 0; l < L; l++) {
        const std::string hp = pre + "layers." + std::to_string(l) + ".", gp = "blk." + std::to_string(l) + ".";
        norm(hp + "input_layernorm.weight", gp + "attn_norm.weight", E, true);
        norm(hp + "post_attention_layernorm.weight", gp + "post_attention_norm.weight", E, true);
        if (recurrent[l]) {
            const std::string a = hp + "linear_attn.";
            std::vector<float> qkv = data(a + "in_proj_qkv.weight", {conv_dim, E});
            reorder_v_rows(qkv, 2 * kdim, Hk, Hv, dv, E);
            matrix(gp + "attn_qkv.weight", qkv, conv_dim, E, opt.outtype);
            std::vector<float> z = data(a + "in_proj_z.weight", {vdim, E});
            reorder_v_rows(z, 0, Hk, Hv, dv, E);
            matrix(gp + "attn_gate.weight", z, vdim, E, opt.outtype);
            std::vector<float> conv = data(a + "conv1d.weight", {conv_dim, 1, K});  // [C][K] = ggml {K, C}
            reorder_v_rows(conv, 2 * kdim, Hk, Hv, dv, K);
            sink.add(gp + "ssm_conv1d.weight", conv, {K, conv_dim}, GgmlType::F32);
            std::vector<float> dt = data(a + "dt_bias", {Hv});
            reorder_v_rows(dt, 0, Hk, Hv, 1, 1);
            sink.add(gp + "ssm_dt.bias", dt, {Hv}, GgmlType::F32);
            std::vector<float> A = data(a + "A_log", {Hv});
            reorder_v_rows(A, 0, Hk, Hv, 1, 1);
            for (float& x : A) x = -std::exp(x);
            sink.add(gp + "ssm_a", A, {Hv}, GgmlType::F32);
            std::vector<float> b = data(a + "in_proj_b.weight", {Hv, E});
            reorder_v_rows(b, 0, Hk, Hv, 1, E);
            matrix(gp + "ssm_beta.weight", b, Hv, E, opt.outtype);
            std::vector<float> al = data(a + "in_proj_a.weight", {Hv, E});
            reorder_v_rows(al, 0, Hk, Hv, 1, E);
            matrix(gp + "ssm_alpha.weight", al, Hv, E, opt.outtype);
            norm(a + "norm.weight", gp + "ssm_norm.weight", dv, false);  // the gated norm: used as-is
            std::vector<float> out = data(a + "out_proj.weight", {E, vdim});
            reorder_v_cols(out, E, Hk, Hv, dv);
            matrix(gp + "ssm_out.weight", out, E, vdim, opt.outtype);
        } else {
            const std::string a = hp + "self_attn.";
            matrix(gp + "attn_q.weight", data(a + "q_proj.weight", {2 * H * hd, E}), 2 * H * hd, E, opt.outtype);
            matrix(gp + "attn_k.weight", data(a + "k_proj.weight", {Hkv * hd, E}), Hkv * hd, E, opt.outtype);
            matrix(gp + "attn_v.weight", data(a + "v_proj.weight", {Hkv * hd, E}), Hkv * hd, E, opt.outtype);
            matrix(gp + "attn_output.weight", data(a + "o_proj.weight", {E, H * hd}), E, H * hd, opt.outtype);
            norm(a + "q_norm.weight", gp + "attn_q_norm.weight", hd, true);
            norm(a + "k_norm.weight", gp + "attn_k_norm.weight", hd, true);
        }
        const std::string m = hp + "mlp.";
        if (!moe) {
            const int64_t FF = need("intermediate_size");
            matrix(gp + "ffn_gate.weight", data(m + "gate_proj.weight", {FF, E}), FF, E, opt.outtype);
            matrix(gp + "ffn_up.weight", data(m + "up_proj.weight", {FF, E}), FF, E, opt.outtype);
            matrix(gp + "ffn_down.weight", data(m + "down_proj.weight", {E, FF}), E, FF, opt.outtype);
            continue;
        }
        sink.add(gp + "ffn_gate_inp.weight", data(m + "gate.weight", {NE, E}), {E, NE}, GgmlType::F32);
        // Experts: transformers' fused [n_exp, 2F, E] gate_up_proj (gate rows first) and [n_exp, E, F]
        // down_proj, or one module per expert; stacked as {E, F, n_exp} and {F, E, n_exp}.
        std::vector<float> gate, up, down;
        if (hf.find(m + "experts.gate_up_proj")) {
            const std::vector<float> gu = data(m + "experts.gate_up_proj", {NE, 2 * FE, E});
            for (int64_t e = 0; e < NE; e++) {
                const auto base = gu.begin() + e * 2 * FE * E;
                gate.insert(gate.end(), base, base + FE * E);
                up.insert(up.end(), base + FE * E, base + 2 * FE * E);
            }
            down = data(m + "experts.down_proj", {NE, E, FE});
        } else {
            for (int64_t e = 0; e < NE; e++) {
                const std::string x = m + "experts." + std::to_string(e) + ".";
                const std::vector<float> g = data(x + "gate_proj.weight", {FE, E}), u = data(x + "up_proj.weight", {FE, E});
                const std::vector<float> d = data(x + "down_proj.weight", {E, FE});
                gate.insert(gate.end(), g.begin(), g.end());
                up.insert(up.end(), u.begin(), u.end());
                down.insert(down.end(), d.begin(), d.end());
            }
        }
        sink.add(gp + "ffn_gate_exps.weight", gate, {E, FE, NE}, opt.outtype);
        sink.add(gp + "ffn_up_exps.weight", up, {E, FE, NE}, opt.outtype);
        sink.add(gp + "ffn_down_exps.weight", down, {FE, E, NE}, opt.outtype);
        if (FS > 0) {
            sink.add(gp + "ffn_gate_inp_shexp.weight", data(m + "shared_expert_gate.weight", {1, E}), {E, 1}, GgmlType::F32);
            matrix(gp + "ffn_gate_shexp.weight", data(m + "shared_expert.gate_proj.weight", {FS, E}), FS, E, opt.outtype);
            matrix(gp + "ffn_up_shexp.weight", data(m + "shared_expert.up_proj.weight", {FS, E}), FS, E, opt.outtype);
            matrix(gp + "ffn_down_shexp.weight", data(m + "shared_expert.down_proj.weight", {E, FS}), E, FS, opt.outtype);
        }
    }
    add_vocab(w, dir, tc, opt, V);
    w.write(out_path);
    return arch + " model, " + std::to_string(L) + " layers, " + std::to_string(E) + " wide, " +
           std::string(format_info(opt.outtype).name) + " -> " + out_path;
}

// Gemma 4 (gemma4 with a text_config, or gemma4_text) -> gemma4 with llama.cpp's conventions
// (gguf-conventions.md 3.8, conversion/gemma.py Gemma4Model): norms as stored (no +1), the generic keys
// for the global layers and *_swa keys for the sliding ones, head_count_kv per layer, the layer pattern
// as booleans, rope_freqs for the global layers' proportional RoPE (1 for the rotated pairs, 1e30 for
// the rest), router.scale -> ffn_gate_inp.scale, per_expert_scale -> ffn_down_exps.scale, the fused
// experts as {E, 2F, n} / {F, E, n}, layer_scalar -> layer_output_scale. Head sizes and KV heads per
// layer come from the tensors (q_norm, k_proj), since transformers 5.17 may keep them in per_layer_config.
std::string convert_gemma4(const fs::path& dir, const json& c, const HfModel& hf, const HfConvertOptions& opt,
                           const std::string& out_path) {
    const std::string arch = "gemma4";
    const json& tc = text_config(c);
    const std::string pre = text_tensor_prefix(hf);
    auto need = [&](const char* key) { return cfg_need(tc, key); };
    const int64_t E = need("hidden_size"), L = need("num_hidden_layers"), H = need("num_attention_heads");
    const int64_t FF = need("intermediate_size"), window = need("sliding_window");
    if (cfg_get<int64_t>(tc, "num_kv_shared_layers", 0) != 0)
        throw Error("Gemma 4 with shared KV layers (E2B/E4B) is not supported");
    if (cfg_get<int64_t>(tc, "hidden_size_per_layer_input", 0) != 0)
        throw Error("Gemma 4 with per-layer input embeddings (E2B/E4B) is not supported");
    if (cfg_get<bool>(tc, "attention_bias", false)) throw Error("Gemma 4 with attention biases is not supported");
    if (tc.contains("use_bidirectional_attention") && !tc["use_bidirectional_attention"].is_null())
        throw Error("Gemma 4 with bidirectional attention is not supported");
    const std::string act = cfg_get<std::string>(tc, "hidden_activation", "gelu_pytorch_tanh");
    if (act != "gelu_pytorch_tanh") throw Error("Gemma 4 activation '" + act + "' is not supported");
    // layer types as transformers keeps them; by default every sixth layer is global, and the last one always
    std::vector<bool> swa((size_t)L);
    const bool have_types = tc.contains("layer_types") && tc["layer_types"].is_array();
    if (have_types && (int64_t)tc["layer_types"].size() != L) throw Error("layer_types must have num_hidden_layers entries");
    for (int64_t l = 0; l < L; l++) {
        if (!have_types) {
            swa[l] = (l + 1) % 6 != 0 && l != L - 1;
            continue;
        }
        const std::string t = tc["layer_types"][l].get<std::string>();
        if (t != "sliding_attention" && t != "full_attention") throw Error("layer type '" + t + "' is not supported");
        swa[l] = t == "sliding_attention";
    }
    // per layer: head size from q_norm, KV heads from k_proj; V only where the layer has v_proj
    std::vector<int64_t> hd((size_t)L), hkv((size_t)L);
    std::vector<bool> has_v((size_t)L);
    int64_t hd_swa = 0, hd_full = 0;
    for (int64_t l = 0; l < L; l++) {
        const std::string a = pre + "layers." + std::to_string(l) + ".self_attn.";
        const SafeTensor* qn = hf.find(a + "q_norm.weight");
        const SafeTensor* k = hf.find(a + "k_proj.weight");
        if (!qn || qn->shape.size() != 1 || !k || k->shape.size() != 2)
            throw Error("checkpoint in '" + dir.string() + "' lacks layer " + std::to_string(l) + "'s q_norm or k_proj");
        hd[l] = qn->shape[0];
        if (k->shape[0] % hd[l]) throw Error("layer " + std::to_string(l) + ": k_proj rows are not whole heads");
        hkv[l] = k->shape[0] / hd[l];
        if (H % hkv[l]) throw Error("layer " + std::to_string(l) + ": attention heads are not a multiple of KV heads");
        has_v[l] = hf.find(a + "v_proj.weight") != nullptr;
        if (!has_v[l] && swa[l]) throw Error("sliding-window layer " + std::to_string(l) + " has no v_proj");
        int64_t& want = swa[l] ? hd_swa : hd_full;
        if (want && want != hd[l]) throw Error("Gemma 4 layers of one type must share one head size");
        want = hd[l];
    }
    if (!hd_full) throw Error("Gemma 4 without a full-attention layer is not supported");
    if (!hd_swa) hd_swa = hd_full;
    // RoPE per layer type (transformers: rope_parameters keyed by layer type)
    json rp = tc.contains("rope_parameters") && tc["rope_parameters"].is_object() ? tc["rope_parameters"] : json::object();
    const json rope_swa = rp.contains("sliding_attention") && rp["sliding_attention"].is_object() ? rp["sliding_attention"] : json::object();
    const json rope_full = rp.contains("full_attention") && rp["full_attention"].is_object()
                               ? rp["full_attention"]
                               : json{{"rope_type", "proportional"}, {"partial_rotary_factor", 0.25}, {"rope_theta", 1000000.0}};
    const std::string type_swa = cfg_get<std::string>(rope_swa, "rope_type", "default");
    const std::string type_full = cfg_get<std::string>(rope_full, "rope_type", "default");
    if (type_swa != "default") throw Error("sliding-window RoPE type '" + type_swa + "' is not supported");
    if (type_full != "proportional" && type_full != "default")
        throw Error("global RoPE type '" + type_full + "' is not supported (proportional or default)");
    if (cfg_get<double>(rope_full, "factor", 1.0) != 1.0) throw Error("Gemma 4 RoPE scaling factors are not supported");
    const double theta_swa = cfg_get<double>(rope_swa, "rope_theta", 10000.0);
    const double theta_full = cfg_get<double>(rope_full, "rope_theta", 1000000.0);
    const double partial_full = type_full == "proportional" ? cfg_get<double>(rope_full, "partial_rotary_factor", 1.0) : 1.0;
    const int64_t n_rot_swa = (int64_t)((double)hd_swa * cfg_get<double>(rope_swa, "partial_rotary_factor", 1.0));
    const int64_t rotated_pairs = (int64_t)(partial_full * (double)hd_full / 2);  // transformers' rope_angles

    gguf::Writer w;
    TensorSink sink{w, {}};
    const std::string p = arch + ".";
    w.set_string("general.architecture", arch);
    w.set_string("general.name", opt.name.empty() ? dir.filename().string() : opt.name);
    w.set_u32(p + "context_length", cfg_get<uint32_t>(tc, "max_position_embeddings", 131072));
    w.set_u32(p + "embedding_length", (uint32_t)E);
    w.set_u32(p + "block_count", (uint32_t)L);
    w.set_u32(p + "feed_forward_length", (uint32_t)FF);
    w.set_u32(p + "attention.head_count", (uint32_t)H);
    if (std::all_of(hkv.begin(), hkv.end(), [&](int64_t v) { return v == hkv[0]; })) {
        w.set_u32(p + "attention.head_count_kv", (uint32_t)hkv[0]);
    } else {
        std::vector<int32_t> arr(hkv.begin(), hkv.end());
        w.set_array_i32(p + "attention.head_count_kv", arr);
    }
    w.set_f32(p + "attention.layer_norm_rms_epsilon", cfg_get<float>(tc, "rms_norm_eps", 1e-6f));
    w.set_u32(p + "attention.key_length", (uint32_t)hd_full);
    w.set_u32(p + "attention.value_length", (uint32_t)hd_full);
    w.set_u32(p + "attention.key_length_swa", (uint32_t)hd_swa);
    w.set_u32(p + "attention.value_length_swa", (uint32_t)hd_swa);
    w.set_f32(p + "rope.freq_base", (float)theta_full);
    w.set_f32(p + "rope.freq_base_swa", (float)theta_swa);
    w.set_u32(p + "rope.dimension_count", (uint32_t)hd_full);  // all pairs; rope_freqs stops the rest
    w.set_u32(p + "rope.dimension_count_swa", (uint32_t)n_rot_swa);
    w.set_u32(p + "attention.sliding_window", (uint32_t)window);
    w.set_array_bool(p + "attention.sliding_window_pattern", swa);
    w.set_u32(p + "attention.shared_kv_layers", 0);
    w.set_u32(p + "embedding_length_per_layer_input", 0);
    if (tc.contains("final_logit_softcapping") && tc["final_logit_softcapping"].is_number())
        w.set_f32(p + "final_logit_softcapping", tc["final_logit_softcapping"].get<float>());
    const bool moe = cfg_get<bool>(tc, "enable_moe_block", false);
    int64_t NE = 0, FE = 0;
    if (moe) {
        NE = need("num_experts");
        FE = need("moe_intermediate_size");
        w.set_u32(p + "expert_count", (uint32_t)NE);
        w.set_u32(p + "expert_used_count", (uint32_t)need("top_k_experts"));
        w.set_u32(p + "expert_feed_forward_length", (uint32_t)FE);
    }
    w.set_u32("general.file_type", file_type(opt.outtype));

    auto tensor = [&](const std::string& name, bool required = true) { return hf.tensor(name, required); };
    auto data = [&](const std::string& name, const std::vector<int64_t>& shape) { return hf.data(name, shape); };
    auto matrix = [&](const std::string& hf_name, const std::string& name, int64_t out, int64_t in) {
        sink.add(name, data(hf_name, {out, in}), {in, out}, opt.outtype);  // HF [out, in] -> ggml {in, out}
    };
    auto f32 = [&](const std::string& hf_name, const std::string& name, int64_t n) {
        sink.add(name, data(hf_name, {n}), {n}, GgmlType::F32);
    };

    const SafeTensor* emb = tensor(pre + "embed_tokens.weight");
    if (emb->shape.size() != 2 || emb->shape[1] != E) throw Error("embed_tokens has an unexpected shape");
    const int64_t V = emb->shape[0];
    w.set_u32(p + "vocab_size", (uint32_t)V);
    sink.add("token_embd.weight", emb->to_f32(), {E, V}, opt.outtype);
    f32(pre + "norm.weight", "output_norm.weight", E);
    const bool tied = cfg_get<bool>(c, "tie_word_embeddings", cfg_get<bool>(tc, "tie_word_embeddings", true)) ||
                      !hf.find("lm_head.weight");
    if (!tied) matrix("lm_head.weight", "output.weight", V, E);
    std::vector<float> freqs((size_t)(hd_full / 2), 1e30f);
    for (int64_t i = 0; i < rotated_pairs && i < hd_full / 2; i++) freqs[(size_t)i] = 1.0f;
    sink.add("rope_freqs.weight", freqs, {hd_full / 2}, GgmlType::F32);

    for (int64_t l = 0; l < L; l++) {
        const std::string hp = pre + "layers." + std::to_string(l) + ".", gp = "blk." + std::to_string(l) + ".";
        const std::string a = hp + "self_attn.";
        const int64_t q = H * hd[l], kv = hkv[l] * hd[l];
        f32(hp + "input_layernorm.weight", gp + "attn_norm.weight", E);
        matrix(a + "q_proj.weight", gp + "attn_q.weight", q, E);
        matrix(a + "k_proj.weight", gp + "attn_k.weight", kv, E);
        if (has_v[l]) matrix(a + "v_proj.weight", gp + "attn_v.weight", kv, E);
        matrix(a + "o_proj.weight", gp + "attn_output.weight", E, q);
        f32(a + "q_norm.weight", gp + "attn_q_norm.weight", hd[l]);
        f32(a + "k_norm.weight", gp + "attn_k_norm.weight", hd[l]);
        f32(hp + "post_attention_layernorm.weight", gp + "post_attention_norm.weight", E);
        f32(hp + "pre_feedforward_layernorm.weight", gp + "ffn_norm.weight", E);
        matrix(hp + "mlp.gate_proj.weight", gp + "ffn_gate.weight", FF, E);
        matrix(hp + "mlp.up_proj.weight", gp + "ffn_up.weight", FF, E);
        matrix(hp + "mlp.down_proj.weight", gp + "ffn_down.weight", E, FF);
        f32(hp + "post_feedforward_layernorm.weight", gp + "post_ffw_norm.weight", E);
        if (hf.find(hp + "layer_scalar")) f32(hp + "layer_scalar", gp + "layer_output_scale.weight", 1);
        if (!moe) continue;
        sink.add(gp + "ffn_gate_inp.weight", data(hp + "router.proj.weight", {NE, E}), {E, NE}, GgmlType::F32);
        f32(hp + "router.scale", gp + "ffn_gate_inp.scale", E);
        f32(hp + "pre_feedforward_layernorm_2.weight", gp + "pre_ffw_norm_2.weight", E);
        f32(hp + "post_feedforward_layernorm_1.weight", gp + "post_ffw_norm_1.weight", E);
        f32(hp + "post_feedforward_layernorm_2.weight", gp + "post_ffw_norm_2.weight", E);
        // transformers' [n, 2F, E] (gate rows, then up rows) and [n, E, F]: ggml {E, 2F, n} and {F, E, n}
        sink.add(gp + "ffn_gate_up_exps.weight", data(hp + "experts.gate_up_proj", {NE, 2 * FE, E}), {E, 2 * FE, NE}, opt.outtype);
        sink.add(gp + "ffn_down_exps.weight", data(hp + "experts.down_proj", {NE, E, FE}), {FE, E, NE}, opt.outtype);
        f32(hp + "router.per_expert_scale", gp + "ffn_down_exps.scale", NE);
    }
    add_vocab(w, dir, tc, opt, V);
    w.write(out_path);
    return arch + " model, " + std::to_string(L) + " layers, " + std::to_string(E) + " wide, " +
           std::string(format_info(opt.outtype).name) + " -> " + out_path;
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
    else if (mt == "qwen3_5" || mt == "qwen3_5_text" || mt == "qwen3_5_moe" || mt == "qwen3_5_moe_text") arch = "qwen35";
    else if (mt == "gemma4" || mt == "gemma4_text") arch = "gemma4";
    else throw Error("model_type '" + mt + "' is not supported by the converter (llama, mistral, qwen2, qwen3, qwen3_5, qwen3_5_moe, gemma4)");

    HfModel hf;
    hf.dir = hf_dir;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") hf.files.push_back(std::make_unique<SafeTensorsFile>(e.path().string()));
    if (hf.files.empty()) throw Error("no .safetensors files in '" + hf_dir + "'");
    if (arch == "qwen35") return convert_qwen35(dir, c, mt, hf, opt, out_path);
    if (arch == "gemma4") return convert_gemma4(dir, c, hf, opt, out_path);

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
    w.set_u32("general.file_type", file_type(opt.outtype));

    // Tensor bytes must outlive the writer's write(); the sink keeps every converted buffer.
    TensorSink sink{w, {}};
    auto add = [&](const std::string& name, const std::vector<float>& v, std::vector<int64_t> dims, GgmlType t) {
        sink.add(name, v, std::move(dims), t);
    };
    auto tensor = [&](const std::string& hf_name, bool required = true) { return hf.tensor(hf_name, required); };
    // 2-D weight [out, in] -> ggml {in, out}; `permute_heads` > 0 applies llama's Q/K permutation.
    auto matrix = [&](const std::string& hf_name, const std::string& name, int64_t permute_heads = 0,
                      const std::vector<int64_t>& shape = {}) {
        const SafeTensor* t = tensor(hf_name);
        if (t->shape.size() != 2) throw Error("'" + hf_name + "' is not a matrix");
        if (!shape.empty()) HfModel::check_shape(hf_name, *t, shape);
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
        matrix(hp + "self_attn.q_proj.weight", gp + "attn_q.weight", is_llama ? H : 0, {H * hd, E});
        matrix(hp + "self_attn.k_proj.weight", gp + "attn_k.weight", is_llama ? Hkv : 0, {Hkv * hd, E});
        matrix(hp + "self_attn.v_proj.weight", gp + "attn_v.weight", 0, {Hkv * hd, E});
        matrix(hp + "self_attn.o_proj.weight", gp + "attn_output.weight", 0, {E, H * hd});
        const bool bias_required = arch == "qwen2";
        vector(hp + "self_attn.q_proj.bias", gp + "attn_q.bias", is_llama ? H : 0, bias_required);
        vector(hp + "self_attn.k_proj.bias", gp + "attn_k.bias", is_llama ? Hkv : 0, bias_required);
        vector(hp + "self_attn.v_proj.bias", gp + "attn_v.bias", 0, bias_required);
        if (arch == "qwen3") {
            vector(hp + "self_attn.q_norm.weight", gp + "attn_q_norm.weight");
            vector(hp + "self_attn.k_norm.weight", gp + "attn_k_norm.weight");
        }
        vector(hp + "post_attention_layernorm.weight", gp + "ffn_norm.weight");
        matrix(hp + "mlp.gate_proj.weight", gp + "ffn_gate.weight", 0, {FF, E});
        matrix(hp + "mlp.up_proj.weight", gp + "ffn_up.weight", 0, {FF, E});
        matrix(hp + "mlp.down_proj.weight", gp + "ffn_down.weight", 0, {E, FF});
    }

    add_vocab(w, dir, c, opt, V);
    w.write(out_path);
    return arch + " model, " + std::to_string(L) + " layers, " + std::to_string(E) + " wide, " +
           std::string(format_info(opt.outtype).name) + " -> " + out_path;
}

}  // namespace rotor
