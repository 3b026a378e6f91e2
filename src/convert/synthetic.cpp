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
        default: return t;
    }
}

struct PlannedTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> dims;
    enum Kind { Matrix, Norm, Bias, RopeFreqs } kind;
};

std::vector<PlannedTensor> plan(const ModelShape& s, const QuantMix& mix) {
    std::vector<PlannedTensor> out;
    const int64_t E = s.n_embd, q = (int64_t)s.n_head * s.head_dim, kv = (int64_t)s.n_head_kv * s.head_dim;
    auto matrix_type = [&](const std::string& role, int index, int count, int64_t ne0) {
        GgmlType t = mix.uniform;
        if (mix.q4_k_m) {
            t = GgmlType::Q4_K;
            if (role == "output") t = GgmlType::Q6_K;
            if ((role == "attn_v" || role == "ffn_down") && use_more_bits(index, count)) t = GgmlType::Q6_K;
            t = fallback_for_width(t, ne0);
        }
        if (ne0 % format_info(t).block_elems != 0) t = GgmlType::F16;
        return t;
    };
    auto mat = [&](const std::string& name, const std::string& role, int idx, int cnt, int64_t ne0, int64_t ne1) {
        out.push_back({name, matrix_type(role, idx, cnt, ne0), {ne0, ne1}, PlannedTensor::Matrix});
    };
    auto vec = [&](const std::string& name, int64_t n, PlannedTensor::Kind k) {
        out.push_back({name, GgmlType::F32, {n}, k});
    };
    mat("token_embd.weight", s.tied ? "output" : "token_embd", 0, 1, E, s.n_vocab);
    if (s.arch == "llama" && s.rope_base >= 500000.0f) vec("rope_freqs.weight", s.head_dim / 2, PlannedTensor::RopeFreqs);
    for (int l = 0; l < s.n_layer; l++) {
        const std::string p = "blk." + std::to_string(l) + ".";
        vec(p + "attn_norm.weight", E, PlannedTensor::Norm);
        mat(p + "attn_q.weight", "attn_q", l, s.n_layer, E, q);
        mat(p + "attn_k.weight", "attn_k", l, s.n_layer, E, kv);
        mat(p + "attn_v.weight", "attn_v", l, s.n_layer, E, kv);
        mat(p + "attn_output.weight", "attn_output", l, s.n_layer, q, E);
        if (s.qkv_bias) {
            vec(p + "attn_q.bias", q, PlannedTensor::Bias);
            vec(p + "attn_k.bias", kv, PlannedTensor::Bias);
            vec(p + "attn_v.bias", kv, PlannedTensor::Bias);
        }
        if (s.arch == "qwen3") {
            vec(p + "attn_q_norm.weight", s.head_dim, PlannedTensor::Norm);
            vec(p + "attn_k_norm.weight", s.head_dim, PlannedTensor::Norm);
        }
        vec(p + "ffn_norm.weight", E, PlannedTensor::Norm);
        mat(p + "ffn_gate.weight", "ffn_gate", l, s.n_layer, E, s.n_ff);
        mat(p + "ffn_up.weight", "ffn_up", l, s.n_layer, E, s.n_ff);
        mat(p + "ffn_down.weight", "ffn_down", l, s.n_layer, s.n_ff, E);
    }
    vec("output_norm.weight", E, PlannedTensor::Norm);
    if (!s.tied) mat("output.weight", "output", 0, 1, E, s.n_vocab);
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
    return shapes;
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
    auto t = format_from_name(name);
    if (!t || !format_info(*t).can_quantize) throw Error("quantization mix '" + name + "' is not one rotor can write");
    m.uniform = *t;
    return m;
}

uint64_t write_synthetic_model(const ModelShape& s, const QuantMix& mix, const std::string& path, uint64_t seed,
                               const std::string& vocab_from) {
    gguf::Writer w;
    const std::string p = s.arch + ".";
    w.set_string("general.architecture", s.arch);
    w.set_string("general.name", s.name + " (random weights, " + mix.name + ")");
    w.set_u32(p + "context_length", (uint32_t)s.n_ctx);
    w.set_u32(p + "embedding_length", (uint32_t)s.n_embd);
    w.set_u32(p + "block_count", (uint32_t)s.n_layer);
    w.set_u32(p + "feed_forward_length", (uint32_t)s.n_ff);
    w.set_u32(p + "attention.head_count", (uint32_t)s.n_head);
    w.set_u32(p + "attention.head_count_kv", (uint32_t)s.n_head_kv);
    w.set_f32(p + "rope.freq_base", s.rope_base);
    w.set_f32(p + "attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_u32(p + "rope.dimension_count", (uint32_t)s.head_dim);
    if (s.head_dim * s.n_head != s.n_embd) {
        w.set_u32(p + "attention.key_length", (uint32_t)s.head_dim);
        w.set_u32(p + "attention.value_length", (uint32_t)s.head_dim);
    }
    w.set_u32(p + "vocab_size", (uint32_t)s.n_vocab);
    if (!vocab_from.empty()) {
        gguf::File vf = gguf::File::open(vocab_from, gguf::OpenOptions{true});
        for (const auto& kv : vf.kvs())
            if (kv.key.substr(0, 10) == "tokenizer.") w.set_value(kv.key, kv.value);
    }

    auto pool = std::make_shared<RowPool>(seed);
    uint64_t total = 0, tensor_index = 0;
    for (const PlannedTensor& t : plan(s, mix)) {
        total += row_bytes(t.type, (uint64_t)t.dims[0]) * (t.dims.size() > 1 ? (uint64_t)t.dims[1] : 1);
        const uint64_t salt = tensor_index++ * 7919;
        const ModelShape shape = s;
        w.add_tensor(t.name, t.type, t.dims, [pool, t, salt, shape](uint8_t* dst, uint64_t n_bytes) {
            const int64_t width = t.dims[0];
            auto* f = reinterpret_cast<float*>(dst);
            switch (t.kind) {
                case PlannedTensor::Norm:
                    for (int64_t i = 0; i < width; i++) f[i] = 1.0f + 0.01f * (float)((i * 37 + salt) % 17) / 17;
                    return;
                case PlannedTensor::Bias:
                    for (int64_t i = 0; i < width; i++) f[i] = 0.01f * (float)((i * 13 + salt) % 11 - 5);
                    return;
                case PlannedTensor::RopeFreqs: {
                    // Llama 3 scaling (factor 32 for 3.2, 8 for 3.1; lo 1, hi 4, original context 8192)
                    const double factor = shape.n_layer <= 16 ? 32.0 : 8.0, lo_w = 8192.0, hi_w = 8192.0 / 4;
                    for (int64_t i = 0; i < width; i++) {
                        const double wavelen = 2 * M_PI * std::pow((double)shape.rope_base, 2.0 * i / (2 * width));
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
                    const std::vector<uint8_t>& rows = pool->rows(t.type, width);
                    const uint64_t rb = row_bytes(t.type, (uint64_t)width);
                    for (uint64_t r = 0; r * rb < n_bytes; r++)
                        memcpy(dst + r * rb, rows.data() + ((r * 31 + salt) % RowPool::kRows) * rb, rb);
                    return;
                }
            }
        });
    }
    w.write(path);
    return total;
}

uint64_t synthetic_data_bytes(const ModelShape& s, const QuantMix& mix) {
    uint64_t off = 0;
    for (const PlannedTensor& t : plan(s, mix)) {
        const uint64_t n = row_bytes(t.type, (uint64_t)t.dims[0]) * (t.dims.size() > 1 ? (uint64_t)t.dims[1] : 1);
        off = (off + n + 31) / 32 * 32;
    }
    return off;
}

}  // namespace rotor
