// A loaded model: the GGUF mapping, its hyperparameters, and every weight bound by name and checked
// for shape at load time. Weights stay in the file's format (no conversion at load).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "formats/formats.h"
#include "gguf/gguf.h"
#include "model/config.h"

namespace rotor {

// A weight as stored: ggml shape order (ne[0] = row length = input features).
struct Weight {
    GgmlType type = GgmlType::F32;
    const uint8_t* data = nullptr;
    int64_t ne[4] = {1, 1, 1, 1};
    std::string name;
    bool present() const { return data != nullptr; }
    int64_t cols() const { return ne[0]; }
    int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
    uint64_t row_bytes() const { return rotor::row_bytes(type, (uint64_t)ne[0]); }
    uint64_t bytes() const { return row_bytes() * (uint64_t)rows(); }
};

struct LayerWeights {
    Weight attn_norm, wq, wk, wv, wo;
    Weight bq, bk, bv;          // qwen2
    Weight q_norm, k_norm;      // qwen3, qwen35 (qwen35's attn_q is {E, 2*H*D}: per head query then gate)
    Weight ffn_norm, ffn_gate, ffn_up, ffn_down;  // qwen35: ffn_norm is post_attention_norm
    // qwen35 Gated DeltaNet layers
    Weight ssm_in;              // attn_qkv {E, conv_dim}: q, k, v rows (V heads in tiled order)
    Weight ssm_z;               // attn_gate {E, H_v*d_v}: the gated norm's SiLU gate
    Weight ssm_conv1d;          // {K, conv_dim} f32
    Weight ssm_dt, ssm_a;       // {H_v} f32: dt bias, -exp(A_log)
    Weight ssm_beta, ssm_alpha; // {E, H_v}
    Weight ssm_norm;            // {d_v} f32, shared by the heads
    Weight ssm_out;             // {H_v*d_v, E}
    // qwen35moe: routed experts (3-D, one {in, out} matrix per expert) and the shared expert
    Weight ffn_gate_inp;                           // router {E, n_expert} f32
    Weight ffn_gate_exps, ffn_up_exps, ffn_down_exps;
    Weight ffn_gate_up_exps;                       // fused alternative: per expert gate rows then up rows
    Weight ffn_gate_inp_shexp;                     // {E} f32
    Weight ffn_gate_shexp, ffn_up_shexp, ffn_down_shexp;
    // gemma4: sandwich norms around attention and the feed-forward block (ffn_norm is the pre-norm of
    // the dense MLP), the experts' own pre/post norms, the router's input scale {E}, the per-expert
    // output scale {n_expert}, and the layer's output scale {1}. wv is absent on K = V layers.
    Weight post_attn_norm, post_ffw_norm, pre_ffw_norm_2, post_ffw_norm_1, post_ffw_norm_2;
    Weight ffn_gate_inp_scale, ffn_down_exps_scale, out_scale;
};

struct Model {
    gguf::File file;
    ModelConfig cfg;
    Weight tok_embd, output_norm, output, rope_freqs;
    std::vector<LayerWeights> layers;

    // Throws rotor::Error naming the file and the first missing or mis-shaped tensor.
    static std::unique_ptr<Model> load(const std::string& path);
    static std::unique_ptr<Model> from_file(gguf::File f);

    uint64_t weight_bytes() const;  // bytes of all tensors read per decoded token (upper bound)
};

}  // namespace rotor
