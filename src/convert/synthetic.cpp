#include "convert/synthetic.h"

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>

#include "common/error.h"
#include "gguf/gguf.h"

namespace rotor {

namespace {

// llama-quantize's use_more_bits(i, n): the first and last eighth, and every third layer between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// llama-quantize's fallback when a row is not a whole number of 256-blocks.
GgmlType fallback_for_width(GgmlType t, int64_t ne0) {
    if (ne0 % 256 == 0) return t;
    switch (t) {
        case GgmlType::Q4_K: return GgmlType::Q5_0;
        case GgmlType::Q5_K: return GgmlType::Q5_1;
        case GgmlType::Q6_K: return GgmlType::Q8_0;
        case GgmlType::Q2_K: case GgmlType::Q3_K: return GgmlType::Q4_0;
        case GgmlType::IQ3_XXS: case GgmlType::IQ3_S: case GgmlType::IQ2_S: return GgmlType::IQ4_NL;
        default: return t;
    }
}

// Tensor table of a shape in file order: global tensors, then each layer, as llama.cpp's loader names them.
std::vector<PlannedTensor> build_plan(const ModelShape& s, const QuantMix& mix) {
    std::vector<PlannedTensor> out;
    const int64_t E = s.n_embd;
    // llama-quantize's counters: attn_v-like tensors (attn_v, attn_qkv) counted in file order; ffn_down
    // by layer number for MoE models, in file order otherwise (the same for the layouts here).
    int n_attn_v = 0;
    for (int l = 0; l < s.n_layer; l++) {
        const bool full = s.full_interval == 0 || (l + 1) % s.full_interval == 0;
        const bool swa = s.swa_period > 0 && (l + 1) % s.swa_period != 0;
        if (s.arch == "gemma4" ? swa : true) n_attn_v++;
        (void)full;
    }
    int i_attn_v = 0;
    auto matrix_type = [&](const std::string& role, int index, int count, int64_t ne0) {
        GgmlType t = mix.uniform;
        if (mix.q4_k_m) {
            t = GgmlType::Q4_K;
            if (role == "output") t = GgmlType::Q6_K;
            if ((role == "attn_v" || role == "ffn_down") && use_more_bits(index, count)) t = GgmlType::Q6_K;
            t = fallback_for_width(t, ne0);
        } else if (mix.q3_k_m) {  // section 5.5
            t = GgmlType::Q3_K;
            if (role == "output") t = GgmlType::Q6_K;
            if (role == "attn_v") t = index < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
            if (role == "ffn_down") t = index < count / 16 ? GgmlType::Q5_K : GgmlType::Q4_K;
            if (role == "attn_output") t = s.n_expert == 8 ? GgmlType::Q5_K : GgmlType::Q4_K;
            t = fallback_for_width(t, ne0);
        } else if (mix.iq3_xxs) {  // section 5.6, with an imatrix (llama-quantize requires one)
            t = GgmlType::IQ3_XXS;
            if (role == "output") t = GgmlType::Q5_K;
            if (role == "token_embd") t = GgmlType::IQ3_S;
            if (role == "attn_v" && s.n_head >= 4 * s.n_head_kv) t = GgmlType::Q4_K;
            if (role == "attn_k" || role == "attn_q") t = GgmlType::IQ2_S;
            if (role == "attn_output") t = s.n_expert == 8 ? GgmlType::Q5_K : GgmlType::IQ3_S;
            t = fallback_for_width(t, ne0);
        }
        if (ne0 % format_info(t).block_elems != 0) t = GgmlType::F16;
        return t;
    };
    auto mat = [&](const std::string& name, const std::string& role, int idx, int cnt, std::vector<int64_t> dims) {
        out.push_back({name, matrix_type(role, idx, cnt, dims[0]), dims, PlannedTensor::Matrix});
    };
    auto attn_v_like = [&](const std::string& name, std::vector<int64_t> dims) {
        mat(name, "attn_v", i_attn_v++, n_attn_v, dims);
    };
    auto f32 = [&](const std::string& name, std::vector<int64_t> dims, PlannedTensor::Kind k) {
        out.push_back({name, GgmlType::F32, dims, k});
    };
    mat("token_embd.weight", s.tied ? "output" : "token_embd", 0, 1, {E, s.n_vocab});
    if (s.arch == "llama" && s.rope_base >= 500000.0f) f32("rope_freqs.weight", {s.head_dim / 2}, PlannedTensor::RopeFreqs);
    if (s.arch == "gemma4") f32("rope_freqs.weight", {s.head_dim_full / 2}, PlannedTensor::RopeFreqs);
    for (int l = 0; l < s.n_layer; l++) {
        const std::string p = "blk." + std::to_string(l) + ".";
        const bool full = s.full_interval == 0 || (l + 1) % s.full_interval == 0;
        const bool swa = s.swa_period > 0 && (l + 1) % s.swa_period != 0;
        const int hd = (s.arch == "gemma4" && !swa) ? s.head_dim_full : s.head_dim;
        const int hkv = (s.arch == "gemma4" && !swa) ? s.n_head_kv_full : s.n_head_kv;
        const int64_t q = (int64_t)s.n_head * hd, kv = (int64_t)hkv * hd;
        f32(p + "attn_norm.weight", {E}, PlannedTensor::Norm);
        if (full) {  // attention layer
            mat(p + "attn_q.weight", "attn_q", l, s.n_layer, {E, s.arch.rfind("qwen35", 0) == 0 ? 2 * q : q});
            mat(p + "attn_k.weight", "attn_k", l, s.n_layer, {E, kv});
            if (s.arch != "gemma4" || swa) attn_v_like(p + "attn_v.weight", {E, kv});
            mat(p + "attn_output.weight", "attn_output", l, s.n_layer, {q, E});
            if (s.qkv_bias) {
                f32(p + "attn_q.bias", {q}, PlannedTensor::Bias);
                f32(p + "attn_k.bias", {kv}, PlannedTensor::Bias);
                f32(p + "attn_v.bias", {kv}, PlannedTensor::Bias);
            }
            if (s.arch == "qwen3" || s.arch.rfind("qwen35", 0) == 0 || s.arch == "gemma4") {
                f32(p + "attn_q_norm.weight", {hd}, PlannedTensor::Norm);
                f32(p + "attn_k_norm.weight", {hd}, PlannedTensor::Norm);
            }
        } else {  // Gated DeltaNet layer
            const int64_t kdim = (int64_t)s.gdn_k_heads * s.gdn_head_dim, vdim = (int64_t)s.gdn_v_heads * s.gdn_head_dim;
            attn_v_like(p + "attn_qkv.weight", {E, 2 * kdim + vdim});
            mat(p + "attn_gate.weight", "attn_gate", l, s.n_layer, {E, vdim});
            f32(p + "ssm_conv1d.weight", {s.conv_kernel, 2 * kdim + vdim}, PlannedTensor::Bias);
            f32(p + "ssm_dt.bias", {s.gdn_v_heads}, PlannedTensor::Bias);
            f32(p + "ssm_a", {s.gdn_v_heads}, PlannedTensor::SsmA);
            mat(p + "ssm_beta.weight", "ssm_beta", l, s.n_layer, {E, s.gdn_v_heads});
            mat(p + "ssm_alpha.weight", "ssm_alpha", l, s.n_layer, {E, s.gdn_v_heads});
            f32(p + "ssm_norm.weight", {s.gdn_head_dim}, PlannedTensor::Norm);
            mat(p + "ssm_out.weight", "ssm_out", l, s.n_layer, {vdim, E});
        }
        if (s.arch == "gemma4") {
            f32(p + "post_attention_norm.weight", {E}, PlannedTensor::Norm);
            f32(p + "ffn_norm.weight", {E}, PlannedTensor::Norm);
            mat(p + "ffn_gate.weight", "ffn_gate", l, s.n_layer, {E, s.n_ff});
            mat(p + "ffn_up.weight", "ffn_up", l, s.n_layer, {E, s.n_ff});
            mat(p + "ffn_down.weight", "ffn_down", l, s.n_layer, {s.n_ff, E});
            f32(p + "post_ffw_norm.weight", {E}, PlannedTensor::Norm);
            f32(p + "layer_output_scale.weight", {1}, PlannedTensor::Scale);
            f32(p + "ffn_gate_inp.weight", {E, s.n_expert}, PlannedTensor::Bias);
            f32(p + "ffn_gate_inp.scale", {E}, PlannedTensor::Scale);
            f32(p + "pre_ffw_norm_2.weight", {E}, PlannedTensor::Norm);
            f32(p + "post_ffw_norm_1.weight", {E}, PlannedTensor::Norm);
            f32(p + "post_ffw_norm_2.weight", {E}, PlannedTensor::Norm);
            mat(p + "ffn_gate_up_exps.weight", "ffn_gate", l, s.n_layer, {E, 2ll * s.ff_expert, s.n_expert});
            mat(p + "ffn_down_exps.weight", "ffn_down", l, s.n_layer, {s.ff_expert, E, s.n_expert});
            f32(p + "ffn_down_exps.scale", {s.n_expert}, PlannedTensor::Scale);
            continue;
        }
        f32(p + (s.arch.rfind("qwen35", 0) == 0 ? "post_attention_norm.weight" : "ffn_norm.weight"), {E}, PlannedTensor::Norm);
        if (s.n_expert > 0) {
            f32(p + "ffn_gate_inp.weight", {E, s.n_expert}, PlannedTensor::Bias);
            mat(p + "ffn_gate_exps.weight", "ffn_gate", l, s.n_layer, {E, s.ff_expert, s.n_expert});
            mat(p + "ffn_up_exps.weight", "ffn_up", l, s.n_layer, {E, s.ff_expert, s.n_expert});
            mat(p + "ffn_down_exps.weight", "ffn_down", l, s.n_layer, {s.ff_expert, E, s.n_expert});
            if (s.ff_shared > 0) {
                f32(p + "ffn_gate_inp_shexp.weight", {E}, PlannedTensor::Bias);
                mat(p + "ffn_gate_shexp.weight", "ffn_gate", l, s.n_layer, {E, s.ff_shared});
                mat(p + "ffn_up_shexp.weight", "ffn_up", l, s.n_layer, {E, s.ff_shared});
                mat(p + "ffn_down_shexp.weight", "ffn_down", l, s.n_layer, {s.ff_shared, E});
            }
        } else {
            mat(p + "ffn_gate.weight", "ffn_gate", l, s.n_layer, {E, s.n_ff});
            mat(p + "ffn_up.weight", "ffn_up", l, s.n_layer, {E, s.n_ff});
            mat(p + "ffn_down.weight", "ffn_down", l, s.n_layer, {s.n_ff, E});
        }
    }
    f32("output_norm.weight", {E}, PlannedTensor::Norm);
    if (!s.tied) mat("output.weight", "output", 0, 1, {E, s.n_vocab});
    return out;
}

// A pool of quantized Gaussian rows per (type, width); tensors are filled by picking rows from it.
class RowPool {
public:
    explicit RowPool(uint64_t seed) : rng_(seed) {}
    const std::vector<uint8_t>& rows(GgmlType t, int64_t width) {
        auto key = std::make_pair((int)t, width);
        auto it = pools_.find(key);
        if (it != pools_.end()) return it->second;
        const uint64_t rb = row_bytes(t, (uint64_t)width);
        std::vector<uint8_t> pool(rb * kRows);
        std::normal_distribution<float> nd(0.0f, 1.0f / std::sqrt((float)width));
        std::vector<float> row((size_t)width);
        for (int r = 0; r < kRows; r++) {
            for (auto& x : row) x = nd(rng_);
            quantize_row(t, row.data(), pool.data() + r * rb, width);
        }
        return pools_[key] = std::move(pool);
    }
    static constexpr int kRows = 61;  // prime, so consecutive tensors do not repeat in step

private:
    std::mt19937_64 rng_;
    std::map<std::pair<int, int64_t>, std::vector<uint8_t>> pools_;
};

}  // namespace

const std::vector<ModelShape>& known_shapes() {
    static const std::vector<ModelShape> shapes = {
        // name, arch, layers, embd, ff, heads, kv heads, head dim, vocab, ctx, rope base, tied, qkv bias
        {"llama-3.2-1b", "llama", 16, 2048, 8192, 32, 8, 64, 128256, 131072, 500000.0f, true, false},
        {"llama-3.1-8b", "llama", 32, 4096, 14336, 32, 8, 128, 128256, 131072, 500000.0f, false, false},
        {"qwen2.5-32b", "qwen2", 64, 5120, 27648, 40, 8, 128, 152064, 32768, 1000000.0f, false, true},
        {"qwen3-32b", "qwen3", 64, 5120, 25600, 64, 8, 128, 151936, 40960, 1000000.0f, false, false},
        {"tiny-llama", "llama", 2, 256, 512, 4, 2, 64, 1024, 4096, 10000.0f, false, false},
    };
    static const std::vector<ModelShape> all = [] {
        std::vector<ModelShape> v = shapes;
        ModelShape q35{"qwen3.5-27b", "qwen35", 64, 5120, 17408, 24, 4, 256, 248320, 262144, 1e7f, false, false};
        q35.full_interval = 4, q35.gdn_k_heads = 16, q35.gdn_v_heads = 48, q35.gdn_head_dim = 128;
        q35.conv_kernel = 4, q35.n_rot = 64;
        v.push_back(q35);
        ModelShape moe{"qwen3.5-35b-a3b", "qwen35moe", 40, 2048, 0, 16, 2, 256, 248320, 262144, 1e7f, false, false};
        moe.full_interval = 4, moe.gdn_k_heads = 16, moe.gdn_v_heads = 32, moe.gdn_head_dim = 128;
        moe.conv_kernel = 4, moe.n_rot = 64, moe.n_expert = 256, moe.n_expert_used = 8, moe.ff_expert = 512;
        moe.ff_shared = 512;
        v.push_back(moe);
        // small hybrids that run in tests: full attention every second layer, 2 key / 4 or 6 value heads;
        // vocabulary 4096 so that rotor-kjv-11m's tokenizer fits (--vocab-from)
        ModelShape tq{"tiny-qwen35", "qwen35", 4, 256, 512, 4, 2, 64, 4096, 4096, 1e7f, false, false};
        tq.full_interval = 2, tq.gdn_k_heads = 2, tq.gdn_v_heads = 4, tq.gdn_head_dim = 32, tq.conv_kernel = 4, tq.n_rot = 16;
        v.push_back(tq);
        ModelShape tm{"tiny-qwen35moe", "qwen35moe", 4, 256, 0, 4, 2, 64, 4096, 4096, 1e7f, true, false};
        tm.full_interval = 2, tm.gdn_k_heads = 2, tm.gdn_v_heads = 6, tm.gdn_head_dim = 32, tm.conv_kernel = 4, tm.n_rot = 16;
        tm.n_expert = 8, tm.n_expert_used = 2, tm.ff_expert = 128, tm.ff_shared = 128;
        v.push_back(tm);
        ModelShape g4{"gemma-4-26b-a4b", "gemma4", 30, 2816, 2112, 16, 8, 256, 262144, 262144, 1e6f, true, false};
        g4.window = 1024, g4.swa_period = 6, g4.head_dim_full = 512, g4.n_head_kv_full = 2;
        g4.n_expert = 128, g4.n_expert_used = 8, g4.ff_expert = 704;
        v.push_back(g4);
        // a small Gemma 4 that runs in tests: window 32, every third layer global with head size 512 (the
        // real global head size) and one KV head, K = V there; 8 experts, top 2; vocabulary 4096 so that
        // rotor-kjv-11m's tokenizer fits (--vocab-from)
        ModelShape tg{"tiny-gemma4", "gemma4", 6, 256, 512, 4, 2, 256, 4096, 4096, 1e6f, true, false};
        tg.window = 32, tg.swa_period = 3, tg.head_dim_full = 512, tg.n_head_kv_full = 1;
        tg.n_expert = 8, tg.n_expert_used = 2, tg.ff_expert = 128;
        v.push_back(tg);
        return v;
    }();
    return all;
}

const ModelShape& find_shape(const std::string& name) {
    std::string names;
    for (const auto& s : known_shapes()) {
        if (s.name == name) return s;
        names += (names.empty() ? "" : ", ") + s.name;
    }
    throw Error("unknown model shape '" + name + "' (known: " + names + ")");
}

QuantMix parse_quant_mix(const std::string& name) {
    QuantMix m;
    m.name = name;
    if (name == "q4_k_m" || name == "Q4_K_M") {
        m.q4_k_m = true;
        return m;
    }
    if (name == "q3_k_m" || name == "Q3_K_M") {
        m.q3_k_m = true;
        return m;
    }
    if (name == "iq3_xxs" || name == "IQ3_XXS") {
        m.iq3_xxs = true;
        return m;
    }
    auto t = format_from_name(name);
    if (!t || !format_info(*t).can_quantize) throw Error("quantization mix '" + name + "' is not one rotor can write");
    m.uniform = *t;
    return m;
}

namespace {

uint64_t tensor_bytes(const PlannedTensor& t) {
    uint64_t rows = 1;
    for (size_t d = 1; d < t.dims.size(); d++) rows *= (uint64_t)t.dims[d];
    return row_bytes(t.type, (uint64_t)t.dims[0]) * rows;
}

// The hyperparameter keys llama.cpp's loader reads for each architecture (gguf-conventions.md 3.x).
void write_metadata(gguf::Writer& w, const ModelShape& s) {
    const std::string p = s.arch + ".";
    w.set_string("general.architecture", s.arch);
    w.set_u32(p + "context_length", (uint32_t)s.n_ctx);
    w.set_u32(p + "embedding_length", (uint32_t)s.n_embd);
    w.set_u32(p + "block_count", (uint32_t)s.n_layer);
    if (s.n_ff) w.set_u32(p + "feed_forward_length", (uint32_t)s.n_ff);
    w.set_u32(p + "attention.head_count", (uint32_t)s.n_head);
    w.set_f32(p + "rope.freq_base", s.rope_base);
    w.set_f32(p + "attention.layer_norm_rms_epsilon", s.arch == "llama" ? 1e-5f : 1e-6f);
    w.set_u32(p + "vocab_size", (uint32_t)s.n_vocab);
    if (s.n_expert) {
        w.set_u32(p + "expert_count", (uint32_t)s.n_expert);
        w.set_u32(p + "expert_used_count", (uint32_t)s.n_expert_used);
        w.set_u32(p + "expert_feed_forward_length", (uint32_t)s.ff_expert);
        if (s.ff_shared) w.set_u32(p + "expert_shared_feed_forward_length", (uint32_t)s.ff_shared);
    }
    if (s.arch == "gemma4") {
        std::vector<int32_t> kv_heads;
        std::vector<bool> swa;
        for (int l = 0; l < s.n_layer; l++) {
            const bool is_swa = (l + 1) % s.swa_period != 0;
            swa.push_back(is_swa);
            kv_heads.push_back(is_swa ? s.n_head_kv : s.n_head_kv_full);
        }
        w.set_array_i32(p + "attention.head_count_kv", kv_heads);
        w.set_array_bool(p + "attention.sliding_window_pattern", swa);
        w.set_u32(p + "attention.sliding_window", (uint32_t)s.window);
        w.set_u32(p + "attention.key_length", (uint32_t)s.head_dim_full);
        w.set_u32(p + "attention.value_length", (uint32_t)s.head_dim_full);
        w.set_u32(p + "attention.key_length_swa", (uint32_t)s.head_dim);
        w.set_u32(p + "attention.value_length_swa", (uint32_t)s.head_dim);
        w.set_u32(p + "rope.dimension_count", (uint32_t)s.head_dim_full);
        w.set_u32(p + "rope.dimension_count_swa", (uint32_t)s.head_dim);
        w.set_f32(p + "rope.freq_base_swa", 10000.0f);
        w.set_u32(p + "attention.shared_kv_layers", 0);
        w.set_u32(p + "embedding_length_per_layer_input", 0);
        w.set_f32(p + "final_logit_softcapping", 30.0f);
        return;
    }
    w.set_u32(p + "attention.head_count_kv", (uint32_t)s.n_head_kv);
    if (s.gdn_v_heads) {
        w.set_u32(p + "attention.key_length", (uint32_t)s.head_dim);
        w.set_u32(p + "attention.value_length", (uint32_t)s.head_dim);
        w.set_u32(p + "rope.dimension_count", (uint32_t)s.n_rot);
        w.set_array_i32(p + "rope.dimension_sections", {11, 11, 10, 0});
        w.set_u32(p + "ssm.conv_kernel", (uint32_t)s.conv_kernel);
        w.set_u32(p + "ssm.state_size", (uint32_t)s.gdn_head_dim);
        w.set_u32(p + "ssm.group_count", (uint32_t)s.gdn_k_heads);
        w.set_u32(p + "ssm.time_step_rank", (uint32_t)s.gdn_v_heads);
        w.set_u32(p + "ssm.inner_size", (uint32_t)(s.gdn_v_heads * s.gdn_head_dim));
        w.set_u32(p + "full_attention_interval", (uint32_t)s.full_interval);
        return;
    }
    w.set_u32(p + "rope.dimension_count", (uint32_t)s.head_dim);
    if (s.head_dim * s.n_head != s.n_embd) {
        w.set_u32(p + "attention.key_length", (uint32_t)s.head_dim);
        w.set_u32(p + "attention.value_length", (uint32_t)s.head_dim);
    }
}

}  // namespace

std::vector<PlannedTensor> plan_synthetic_tensors(const ModelShape& shape, const QuantMix& mix) {
    return build_plan(shape, mix);
}

uint64_t write_synthetic_model(const ModelShape& shape, const QuantMix& mix, const std::string& path, uint64_t seed,
                               const std::string& vocab_from, bool with_data) {
    gguf::Writer w;
    ModelShape s = shape;
    std::unique_ptr<gguf::File> vf;
    if (!vocab_from.empty()) {
        // the tokenizer decides the vocabulary: embedding and output rows follow it (a server refuses a
        // model whose rows and tokens disagree)
        vf = std::make_unique<gguf::File>(gguf::File::open(vocab_from, gguf::OpenOptions{true}));
        const gguf::Value* tokens = vf->find("tokenizer.ggml.tokens");
        if (!tokens || tokens->type != gguf::ValueType::ARRAY || tokens->count == 0)
            throw Error("'" + vocab_from + "' has no tokenizer.ggml.tokens to copy");
        s.n_vocab = (int)tokens->count;
    }
    write_metadata(w, s);
    w.set_string("general.name", s.name + " (random weights, " + mix.name + ")");
    if (vf)
        for (const auto& kv : vf->kvs())
            if (kv.key.substr(0, 10) == "tokenizer.") w.set_value(kv.key, kv.value);
    auto pool = std::make_shared<RowPool>(seed);
    uint64_t total = 0, tensor_index = 0;
    const std::vector<PlannedTensor> plan = build_plan(s, mix);
    if (with_data)
        for (const PlannedTensor& t : plan)
            if (t.kind == PlannedTensor::Matrix && !format_info(t.type).can_quantize)
                throw Error("mix " + mix.name + " uses " + std::string(format_info(t.type).name) +
                            ", which rotor cannot quantize: write it metadata-only");
    for (const PlannedTensor& t : plan) {
        total += tensor_bytes(t);
        const uint64_t salt = tensor_index++ * 7919;
        const ModelShape shape = s;
        w.add_tensor(t.name, t.type, t.dims, [pool, t, salt, shape](uint8_t* dst, uint64_t n_bytes) {
            auto* f = reinterpret_cast<float*>(dst);
            const uint64_t n = n_bytes / 4;  // for the f32 kinds
            switch (t.kind) {
                case PlannedTensor::Norm: {
                    // Gemma 4 attends with scale 1 (its q/k norms set the scale): weights of D^-1/4 keep the
                    // scores of unit-RMS random heads near unit variance instead of sqrt(D)
                    const bool qk = shape.arch == "gemma4" && (t.name.find("attn_q_norm") != std::string::npos ||
                                                                t.name.find("attn_k_norm") != std::string::npos);
                    const float base = qk ? std::pow((float)n, -0.25f) : 1.0f;
                    for (uint64_t i = 0; i < n; i++) f[i] = base * (1.0f + 0.01f * (float)((i * 37 + salt) % 17) / 17);
                    return;
                }
                case PlannedTensor::Bias:
                    if (shape.arch == "gemma4" && t.name.find("ffn_gate_inp.weight") != std::string::npos) {
                        // Gemma 4's router reads rms_norm(x) / sqrt(E): unit-variance weights make decisive
                        // expert choices (near-uniform ones would flip on any rounding)
                        uint64_t h = salt * 0x9E3779B97F4A7C15ull + 1;
                        for (uint64_t i = 0; i < n; i++) {
                            h = h * 6364136223846793005ull + 1442695040888963407ull;
                            f[i] = ((float)(h >> 40) / (float)(1ull << 24) - 0.5f) * 3.4641016f;  // uniform, variance 1
                        }
                        return;
                    }
                    for (uint64_t i = 0; i < n; i++) f[i] = 0.01f * (float)((i * 13 + salt) % 11) - 0.05f;
                    return;
                case PlannedTensor::Scale:
                    for (uint64_t i = 0; i < n; i++) f[i] = 1.0f;
                    return;
                case PlannedTensor::SsmA:  // -exp(A_log): negative decay rates
                    for (uint64_t i = 0; i < n; i++) f[i] = -0.5f - 0.05f * (float)(i % 16);
                    return;
                case PlannedTensor::RopeFreqs: {
                    if (shape.arch == "gemma4") {  // proportional RoPE: a quarter of the pairs rotate
                        for (uint64_t i = 0; i < n; i++) f[i] = i < n / 4 ? 1.0f : 1e30f;
                        return;
                    }
                    // Llama 3 scaling (factor 32 for 3.2, 8 for 3.1; lo 1, hi 4, original context 8192)
                    const double factor = shape.n_layer <= 16 ? 32.0 : 8.0, lo_w = 8192.0, hi_w = 8192.0 / 4;
                    for (uint64_t i = 0; i < n; i++) {
                        const double wavelen = 2 * M_PI * std::pow((double)shape.rope_base, 2.0 * i / (2.0 * n));
                        if (wavelen < hi_w) f[i] = 1.0f;
                        else if (wavelen > lo_w) f[i] = (float)factor;
                        else {
                            const double smooth = (8192.0 / wavelen - 1) / (4 - 1);
                            f[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
                        }
                    }
                    return;
                }
                case PlannedTensor::Matrix: {
                    const int64_t width = t.dims[0];
                    const std::vector<uint8_t>& rows = pool->rows(t.type, width);
                    const uint64_t rb = row_bytes(t.type, (uint64_t)width);
                    for (uint64_t r = 0; r * rb < n_bytes; r++)
                        memcpy(dst + r * rb, rows.data() + ((r * 31 + salt) % RowPool::kRows) * rb, rb);
                    return;
                }
            }
        });
    }
    w.write(path, with_data);
    return total;
}

uint64_t synthetic_data_bytes(const ModelShape& s, const QuantMix& mix) {
    uint64_t off = 0;
    for (const PlannedTensor& t : build_plan(s, mix)) off = (off + tensor_bytes(t) + 31) / 32 * 32;
    return off;
}

}  // namespace rotor
