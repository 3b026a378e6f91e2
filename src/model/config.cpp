#include "model/config.h"

#include <algorithm>
#include <cmath>

namespace rotor {

namespace {

struct ArchEntry {
    const char* name;
    Arch arch;
    RopeStyle rope;
    bool qkv_bias, qk_norm;
};

constexpr ArchEntry kArchs[] = {
    {"llama", Arch::Llama, RopeStyle::Norm, false, false},
    {"qwen2", Arch::Qwen2, RopeStyle::Neox, true, false},
    {"qwen3", Arch::Qwen3, RopeStyle::Neox, false, true},
    // IMROPE: for text every section gets the same position, which is partial NeoX RoPE (gguf-conventions 2.3)
    {"qwen35", Arch::Qwen35, RopeStyle::Neox, false, true},
    {"qwen35moe", Arch::Qwen35Moe, RopeStyle::Neox, false, true},
    {"gemma4", Arch::Gemma4, RopeStyle::Neox, false, true},
};

// A per-layer key that may be a scalar or an array of n_layer integers.
std::vector<int> per_layer(const gguf::File& f, const std::string& key, int n_layer, int fallback, bool required) {
    const gguf::Value* v = f.find(key);
    if (!v) {
        if (required) f.fail("missing required key '" + key + "'");
        return std::vector<int>(n_layer, fallback);
    }
    if (v->type == gguf::ValueType::ARRAY) {
        if (v->raw == nullptr || v->count != (uint64_t)n_layer)
            f.fail("key '" + key + "' must be an integer array of " + std::to_string(n_layer) + " entries");
        std::vector<int> out(n_layer);
        for (int i = 0; i < n_layer; i++) {
            const int64_t x = v->array_int(i);
            if (x < 0 || x > (1 << 24)) f.fail("key '" + key + "' has an out-of-range entry " + std::to_string(x));
            out[i] = (int)x;
        }
        return out;
    }
    const uint64_t x = *f.get_uint(key);
    if (x > (1u << 24)) f.fail("key '" + key + "' is out of range (" + std::to_string(x) + ")");
    return std::vector<int>(n_layer, (int)x);
}

int get_dim(const gguf::File& f, const std::string& key, bool required, int fallback = 0) {
    auto v = f.get_uint(key);
    if (!v) {
        if (required) f.fail("missing required key '" + key + "'");
        return fallback;
    }
    if (*v == 0 || *v > (1u << 24)) f.fail("key '" + key + "' is out of range (" + std::to_string(*v) + ")");
    return (int)*v;
}

// qwen35 / qwen35moe keys (gguf-conventions.md 3.5, 3.6).
void read_hybrid(const gguf::File& f, ModelConfig& c) {
    const std::string p = c.arch_name + ".";
    const int nextn = (int)f.get_uint(p + "nextn_predict_layers").value_or(0);
    if (nextn < 0 || nextn >= c.n_layer) f.fail("nextn_predict_layers is out of range");
    c.n_layer_main = c.n_layer - nextn;  // the MTP block(s) at the end are not run
    c.recurrent.assign(c.n_layer, 0);
    if (const gguf::Value* v = f.find(p + "attention.recurrent_layers")) {
        if (v->type != gguf::ValueType::ARRAY || v->raw == nullptr || v->count != (uint64_t)c.n_layer)
            f.fail("key '" + p + "attention.recurrent_layers' must be an array of " + std::to_string(c.n_layer) + " flags");
        for (int l = 0; l < c.n_layer; l++) c.recurrent[l] = v->array_int(l) != 0 && l < c.n_layer_main;
    } else {
        const int interval = get_dim(f, p + "full_attention_interval", false, 4);
        for (int l = 0; l < c.n_layer_main; l++) c.recurrent[l] = (l + 1) % interval != 0;
    }
    c.attn_output_gate = true;
    c.ssm_conv_kernel = get_dim(f, p + "ssm.conv_kernel", true);
    c.ssm_d_k = get_dim(f, p + "ssm.state_size", true);
    c.ssm_n_k_heads = get_dim(f, p + "ssm.group_count", true);
    c.ssm_n_v_heads = get_dim(f, p + "ssm.time_step_rank", true);
    const int inner = get_dim(f, p + "ssm.inner_size", true);
    if (inner % c.ssm_n_v_heads) f.fail("ssm.inner_size is not a multiple of ssm.time_step_rank");
    c.ssm_d_v = inner / c.ssm_n_v_heads;
    if (c.ssm_n_v_heads % c.ssm_n_k_heads)
        f.fail("ssm.time_step_rank " + std::to_string(c.ssm_n_v_heads) + " is not a multiple of ssm.group_count " +
               std::to_string(c.ssm_n_k_heads));
    if (c.ssm_conv_kernel > 64) f.fail("ssm.conv_kernel is out of range");
    if (c.arch == Arch::Qwen35Moe) {
        c.n_expert = get_dim(f, p + "expert_count", true);
        c.n_expert_used = get_dim(f, p + "expert_used_count", true);
        c.n_ff_exp = get_dim(f, p + "expert_feed_forward_length", true);
        c.n_ff_shexp = get_dim(f, p + "expert_shared_feed_forward_length", false, 0);
        if (c.n_expert_used > c.n_expert) f.fail("expert_used_count exceeds expert_count");
    }
}

// gemma4 keys (gguf-conventions.md 3.8): the generic keys describe the global layers (key_length,
// rope.dimension_count, rope.freq_base); the *_swa keys and the per-layer pattern the sliding ones.
void read_gemma4(const gguf::File& f, ModelConfig& c) {
    const std::string p = c.arch_name + ".";
    if (f.get_uint(p + "attention.shared_kv_layers").value_or(0) != 0)
        f.fail("gemma4 with shared KV layers (attention.shared_kv_layers > 0, Gemma 4 E2B/E4B) is not supported");
    if (f.get_uint(p + "embedding_length_per_layer_input").value_or(0) != 0)
        f.fail("gemma4 with per-layer input embeddings (Gemma 4 E2B/E4B) is not supported");
    const int window = get_dim(f, p + "attention.sliding_window", true);
    const gguf::Value* pat = f.find(p + "attention.sliding_window_pattern");
    if (!pat || pat->type != gguf::ValueType::ARRAY || pat->raw == nullptr || pat->count != (uint64_t)c.n_layer)
        f.fail("key '" + p + "attention.sliding_window_pattern' must be an array of " + std::to_string(c.n_layer) + " flags");
    const int hk_swa = get_dim(f, p + "attention.key_length_swa", true);
    const int hv_swa = get_dim(f, p + "attention.value_length_swa", false, hk_swa);
    c.n_rot_swa = get_dim(f, p + "rope.dimension_count_swa", false, hk_swa);
    if (c.n_rot_swa > hk_swa || c.n_rot_swa % 2) f.fail("rope.dimension_count_swa is invalid for head size " + std::to_string(hk_swa));
    c.rope_base_swa = (float)f.get_float(p + "rope.freq_base_swa").value_or(10000.0);
    if (!(c.rope_base_swa > 1.0f)) f.fail("rope.freq_base_swa out of range");
    c.final_logit_softcap = (float)f.get_float(p + "final_logit_softcapping").value_or(0.0);
    if (c.final_logit_softcap < 0) f.fail("final_logit_softcapping out of range");
    c.embd_scale = std::sqrt((float)c.n_embd);
    c.window.assign(c.n_layer, 0);
    c.v_is_k.assign(c.n_layer, 0);
    for (int l = 0; l < c.n_layer; l++) {
        if (pat->array_int(l) != 0) {
            c.window[l] = window;
            c.head_dim_k[l] = hk_swa;
            c.head_dim_v[l] = hv_swa;
        }
        if (c.head_dim_k[l] != c.head_dim_v[l]) f.fail("gemma4: key and value head sizes must be equal");
        c.v_is_k[l] = f.tensor("blk." + std::to_string(l) + ".attn_v.weight") == nullptr;
        if (c.v_is_k[l] && c.is_swa(l)) f.fail("gemma4: sliding-window layer " + std::to_string(l) + " has no attn_v");
    }
    c.n_expert = get_dim(f, p + "expert_count", false, 0);
    if (c.n_expert > 0) {
        c.n_expert_used = get_dim(f, p + "expert_used_count", true);
        c.n_ff_exp = get_dim(f, p + "expert_feed_forward_length", true);
        if (c.n_expert_used > c.n_expert) f.fail("expert_used_count exceeds expert_count");
    }
}

}  // namespace

const char* arch_name(Arch a) {
    for (const auto& e : kArchs)
        if (e.arch == a) return e.name;
    return "?";
}

int ModelConfig::max_head_dim() const {
    int m = 0;
    for (int l = 0; l < n_layer; l++) m = std::max({m, head_dim_k[l], head_dim_v[l]});
    return m;
}

ModelConfig read_model_config(const gguf::File& f) {
    ModelConfig c;
    c.arch_name = f.architecture();
    const ArchEntry* entry = nullptr;
    for (const auto& e : kArchs)
        if (c.arch_name == e.name) entry = &e;
    if (!entry) {
        std::string supported;
        for (const auto& e : kArchs) supported += std::string(supported.empty() ? "" : ", ") + e.name;
        f.fail("architecture '" + c.arch_name + "' is not supported (supported: " + supported + ")");
    }
    c.arch = entry->arch;
    c.rope_style = entry->rope;
    c.qkv_bias = entry->qkv_bias;
    c.qk_norm = entry->qk_norm;
    const std::string p = c.arch_name + ".";

    c.n_layer = get_dim(f, p + "block_count", true);
    c.n_embd = get_dim(f, p + "embedding_length", true);
    c.n_ctx_train = get_dim(f, p + "context_length", true);
    c.n_head = per_layer(f, p + "attention.head_count", c.n_layer, 0, true);
    c.n_head_kv = per_layer(f, p + "attention.head_count_kv", c.n_layer, 0, false);
    for (int l = 0; l < c.n_layer; l++) {
        if (c.n_head[l] <= 0) f.fail("layer " + std::to_string(l) + " has no attention heads");
        if (c.n_head_kv[l] == 0) c.n_head_kv[l] = c.n_head[l];
        if (c.n_head[l] % c.n_head_kv[l] != 0)
            f.fail("layer " + std::to_string(l) + ": head_count " + std::to_string(c.n_head[l]) +
                   " is not a multiple of head_count_kv " + std::to_string(c.n_head_kv[l]));
    }
    const int default_head_dim = c.n_embd / c.n_head[0];
    const int hk = get_dim(f, p + "attention.key_length", false, default_head_dim);
    const int hv = get_dim(f, p + "attention.value_length", false, hk);
    c.head_dim_k.assign(c.n_layer, hk);
    c.head_dim_v.assign(c.n_layer, hv);
    // qwen35moe has no dense FFN (and no feed_forward_length key in real files)
    c.n_ff = per_layer(f, p + "feed_forward_length", c.n_layer, 0, c.arch != Arch::Qwen35Moe);

    auto eps = f.get_float(p + "attention.layer_norm_rms_epsilon");
    if (!eps) f.fail("missing required key '" + p + "attention.layer_norm_rms_epsilon'");
    if (!(*eps > 0 && *eps < 1)) f.fail("layer_norm_rms_epsilon out of range");
    c.rms_eps = (float)*eps;

    c.n_rot = get_dim(f, p + "rope.dimension_count", false, hk);
    if (c.n_rot > hk || c.n_rot % 2) f.fail("rope.dimension_count " + std::to_string(c.n_rot) + " is invalid for head size " + std::to_string(hk));
    if (c.arch == Arch::Llama && c.n_rot != hk)
        f.fail("llama: rope.dimension_count must equal the head size (as llama.cpp requires)");
    c.rope_base = (float)f.get_float(p + "rope.freq_base").value_or(10000.0);
    if (!(c.rope_base > 1.0f)) f.fail("rope.freq_base out of range");
    const std::string scaling(f.get_string(p + "rope.scaling.type").value_or("none"));
    const double factor = f.get_float(p + "rope.scaling.factor").value_or(1.0);
    if (scaling == "linear") {
        if (!(factor > 0)) f.fail("rope.scaling.factor must be positive");
        c.rope_freq_scale = (float)(1.0 / factor);
    } else if (scaling != "none" && !(scaling == "yarn" && factor == 1.0)) {
        f.fail("RoPE scaling type '" + scaling + "' is not supported yet (supported: none, linear, and Llama 3's rope_freqs)");
    }

    const gguf::TensorInfo* emb = f.tensor("token_embd.weight");
    if (!emb) f.fail("missing tensor 'token_embd.weight'");
    c.n_vocab = (int)emb->ne[1];
    if (auto vs = f.get_uint(p + "vocab_size"); vs && *vs != (uint64_t)c.n_vocab)
        f.fail(p + "vocab_size " + std::to_string(*vs) + " does not match token_embd rows " + std::to_string(c.n_vocab));
    c.tied_output = f.tensor("output.weight") == nullptr;
    c.has_rope_freqs = f.tensor("rope_freqs.weight") != nullptr;
    c.n_layer_main = c.n_layer;
    if (c.hybrid()) read_hybrid(f, c);
    if (c.arch == Arch::Gemma4) read_gemma4(f, c);
    return c;
}

}  // namespace rotor
