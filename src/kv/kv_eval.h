// Measuring KV formats: how much a stored key or value changes (relative MSE), how much q.k changes,
// and how much a full softmax attention changes (output error and KL divergence of the attention
// weights), on synthetic vectors with LLM-like statistics and on K/V/Q captured from real model runs
// (rotor kv-capture). Used by `rotor kv-eval` and the tests.
//
// Capture file (rotor kv-capture), little-endian:
//   char     magic[8] = "RKVCAP01"
//   uint32   version (1), n_layer, n_chunk, n_ctx
//   uint32   name_len; char name[name_len]          (where the data came from)
//   per layer: int32 n_head, n_head_kv, head_dim_k, head_dim_v; float attn_scale
//   then for each chunk, for each layer with n_head_kv > 0:
//     float K[n_ctx][n_head_kv][head_dim_k]        keys as stored (post-RoPE)
//     float V[n_ctx][n_head_kv][head_dim_v]
//     float Q[n_ctx][n_head][head_dim_k]           the query of position p (post-RoPE), as attend() saw it
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kv/kv_format.h"

namespace rotor {

struct Model;

// One attention problem: the keys and values of one KV head over n_pos positions, and queries
// attending over a causal prefix of them.
struct KvEvalHead {
    int n_pos = 0;
    std::vector<float> k, v;    // n_pos x dk, n_pos x dv
    std::vector<float> q;       // n_q x dk
    std::vector<int> q_len;     // per query: it attends to positions [0, q_len)
    float scale = 1.0f;         // applied to q.k before the softmax
};

struct KvEvalDataset {
    std::string name;
    int dk = 0, dv = 0;
    std::vector<KvEvalHead> heads;
};

struct KvEvalResult {
    std::string dataset, type;    // type: "X", or "X/Y" for K type X with V type Y
    bool supported = true;
    std::string why;              // when not supported
    double bits_per_element = 0;  // stored bits (codes, scales, norms, padding) per K and V element
    double mse_rel = 0;           // mean of mse_k and mse_v
    double mse_k = 0, mse_v = 0;  // sum ||x - x^||^2 / sum ||x||^2 over the stored keys (values)
    double k_dot_rel_err = 0;     // sqrt(sum (q.k^ - q.k)^2 / sum (q.k)^2) over (query, key) pairs
    double attn_out_rel_err = 0;  // sqrt(sum ||o^ - o||^2 / sum ||o||^2) over queries
    double attn_kl = 0;           // mean over queries of KL(p || p^), attention weights
};

// ---- synthetic data
struct SyntheticOptions {
    int dim = 128;
    int n_heads = 4;      // independent sequences
    int n_pos = 256;      // keys / values per sequence
    int n_queries = 16;   // queries per sequence, each attending over all n_pos positions
    uint64_t seed = 1;
};
// "gaussian": i.i.d. N(0, 1); "outlier": gaussian with 4 fixed channels 20x larger (K and V);
// "aniso": per-channel standard deviations spread log-uniformly over 1.5 decades (queries share the
// keys' profile); "rope": keys and queries with per-channel means and scales, rotated by RoPE at
// their positions (base 10000), values anisotropic.
std::vector<std::string> synthetic_kinds();
KvEvalDataset make_synthetic_dataset(const std::string& kind, const SyntheticOptions& opt);

// ---- captured data
struct KvCaptureLayer {
    int n_head = 0, n_head_kv = 0, head_dim_k = 0, head_dim_v = 0;
    float attn_scale = 1.0f;
};
struct KvCapture {
    std::string name;
    int n_ctx = 0, n_chunk = 0;
    std::vector<KvCaptureLayer> layers;
    // [chunk][layer] -> K, V, Q arrays as in the file (empty for layers without a cache)
    std::vector<std::vector<std::vector<float>>> k, v, q;
};

// Runs the model over n_chunk chunks of n_ctx tokens (chunk c = tokens[c*n_ctx, (c+1)*n_ctx), its
// first token replaced by bos when bos >= 0) through an f32 cache that records every store and query.
KvCapture capture_kv(const Model& model, const std::vector<int32_t>& tokens, int n_ctx, int n_chunk, int32_t bos,
                     int n_threads, const std::string& name);
void write_kv_capture(const std::string& path, const KvCapture& cap);
KvCapture read_kv_capture(const std::string& path);  // throws rotor::Error on a bad or truncated file

// One dataset per head size in the capture: every (chunk, layer, KV head) is a head; its queries are
// the group's query heads at n_query_pos positions spread over the second half of the context
// (the last position included), each attending causally.
std::vector<KvEvalDataset> datasets_from_capture(const KvCapture& cap, int n_query_pos);

// ---- evaluation
// Every stored vector goes through k_fmt.quantize / v_fmt.quantize; scores through k_fmt.dot with
// the rotated query, outputs through v_fmt.axpy and v_fmt.unrotate, exactly as the CPU cache does.
KvEvalResult evaluate_kv_types(const KvEvalDataset& ds, const KvFormat& k_fmt, const KvFormat& v_fmt, int n_threads);

}  // namespace rotor
