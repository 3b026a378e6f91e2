#include "plan/model_memory.h"

#include <algorithm>

namespace rotor {

namespace {

std::vector<int> per_layer_ints(const gguf::File& f, const std::string& key, int n_layer, int fallback) {
    const gguf::Value* v = f.find(key);
    if (!v) return std::vector<int>(n_layer, fallback);
    if (v->type == gguf::ValueType::ARRAY) {
        if (!v->raw || v->count != (uint64_t)n_layer) f.fail("key '" + key + "' must hold " + std::to_string(n_layer) + " integers");
        std::vector<int> out(n_layer);
        for (int i = 0; i < n_layer; i++) out[i] = (int)v->array_int(i);
        return out;
    }
    return std::vector<int>(n_layer, (int)*f.get_uint(key));
}

std::vector<bool> per_layer_bools(const gguf::File& f, const std::string& key, int n_layer) {
    const gguf::Value* v = f.get_array(key);
    if (!v || !v->raw || v->count != (uint64_t)n_layer) f.fail("key '" + key + "' must hold " + std::to_string(n_layer) + " booleans");
    std::vector<bool> out(n_layer);
    for (int i = 0; i < n_layer; i++) out[i] = v->array_int(i) != 0;
    return out;
}

int req(const gguf::File& f, const std::string& key) {
    auto v = f.get_uint(key);
    if (!v) f.fail("missing required key '" + key + "'");
    return (int)*v;
}

int opt(const gguf::File& f, const std::string& key, int fallback) {
    auto v = f.get_uint(key);
    return v ? (int)*v : fallback;
}

}  // namespace

ModelMemory read_model_memory(const gguf::File& f) {
    ModelMemory m;
    m.arch = f.architecture();
    const std::string& a = m.arch;
    static const char* known[] = {"llama", "qwen2", "qwen3", "qwen3moe", "qwen35", "qwen35moe", "gemma3", "gemma4"};
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return a == k; }) == std::end(known))
        f.fail("architecture '" + a + "' is not known to the memory planner");
    const std::string p = a + ".";
    m.n_layer = req(f, p + "block_count");
    m.n_embd = req(f, p + "embedding_length");
    m.n_ctx_train = req(f, p + "context_length");
    const int L = m.n_layer;
    const std::vector<int> n_head = per_layer_ints(f, p + "attention.head_count", L, 0);
    const std::vector<int> n_head_kv = per_layer_ints(f, p + "attention.head_count_kv", L, n_head[0]);
    const int hd_default = n_head[0] ? m.n_embd / n_head[0] : 0;
    const int hk = opt(f, p + "attention.key_length", hd_default), hv = opt(f, p + "attention.value_length", hk);
    if (const gguf::TensorInfo* e = f.tensor("token_embd.weight")) m.n_vocab = (int)e->ne[1];
    else m.n_vocab = opt(f, p + "vocab_size", 0);

    // feed-forward width for activation buffers: dense FFN, or the active experts side by side
    const std::vector<int> ff = per_layer_ints(f, p + "feed_forward_length", L, 0);
    m.max_ff = *std::max_element(ff.begin(), ff.end());
    const int n_used = opt(f, p + "expert_used_count", 0), f_exp = opt(f, p + "expert_feed_forward_length", 0);
    m.max_ff = std::max(m.max_ff, n_used * f_exp + opt(f, p + "expert_shared_feed_forward_length", 0));

    m.layers.resize(L);
    for (int l = 0; l < L; l++) {
        LayerMemory& lm = m.layers[l];
        lm.has_kv = true;
        lm.n_head_kv = n_head_kv[l];
        lm.head_dim_k = hk;
        lm.head_dim_v = hv;
        m.max_q_dim = std::max(m.max_q_dim, n_head[l] * hk);
    }

    if (a == "qwen35" || a == "qwen35moe") {
        // Gated DeltaNet layers keep a recurrent state instead of a cache (gguf-conventions.md 3.5).
        const int n_main = L - opt(f, p + "nextn_predict_layers", 0);
        std::vector<bool> recurrent(L, false);
        if (f.find(p + "attention.recurrent_layers")) {
            recurrent = per_layer_bools(f, p + "attention.recurrent_layers", L);
        } else {
            const int interval = opt(f, p + "full_attention_interval", 4);
            for (int l = 0; l < L; l++) recurrent[l] = l < n_main && (l + 1) % interval != 0;
        }
        const int d_state = req(f, p + "ssm.state_size"), h_k = req(f, p + "ssm.group_count");
        const int h_v = req(f, p + "ssm.time_step_rank"), inner = req(f, p + "ssm.inner_size");
        const int conv_k = req(f, p + "ssm.conv_kernel");
        const uint64_t d_v = (uint64_t)inner / (uint64_t)h_v;
        const uint64_t conv_dim = 2ull * h_k * d_state + (uint64_t)inner;
        for (int l = 0; l < L; l++) {
            if (l >= n_main) m.layers[l].has_kv = false;  // the MTP block: rotor does not run it
            if (!recurrent[l]) continue;
            m.layers[l].has_kv = false;
            m.layers[l].recurrent = true;
            m.recurrent_bytes_per_seq += 4ull * h_v * d_state * d_v + 4ull * (uint64_t)(conv_k - 1) * conv_dim;
        }
        m.ssm_channels = (int)conv_dim;
        m.ssm_v_dim = inner;
        m.ssm_v_heads = h_v;
        m.ssm_d_k = d_state;
        for (int l = 0; l < n_main; l++)
            if (!recurrent[l]) m.max_gated_q = std::max(m.max_gated_q, 2 * n_head[l] * hk);
    } else if (a == "gemma3") {
        const int window = req(f, p + "attention.sliding_window");
        std::vector<bool> swa(L);
        if (f.find(p + "attention.sliding_window_pattern") &&
            f.find(p + "attention.sliding_window_pattern")->type == gguf::ValueType::ARRAY) {
            swa = per_layer_bools(f, p + "attention.sliding_window_pattern", L);
        } else {
            const int period = opt(f, p + "attention.sliding_window_pattern", 6);
            for (int l = 0; l < L; l++) swa[l] = period > 1 && l % period < period - 1;
        }
        for (int l = 0; l < L; l++) m.layers[l].window = swa[l] ? window : 0;
    } else if (a == "gemma4") {
        const int window = req(f, p + "attention.sliding_window");
        const std::vector<bool> swa = per_layer_bools(f, p + "attention.sliding_window_pattern", L);
        const int hk_swa = req(f, p + "attention.key_length_swa");
        const int hv_swa = opt(f, p + "attention.value_length_swa", hk_swa);
        const int shared = opt(f, p + "attention.shared_kv_layers", 0);
        for (int l = 0; l < L; l++) {
            LayerMemory& lm = m.layers[l];
            if (swa[l]) {
                lm.window = window;
                lm.head_dim_k = hk_swa;
                lm.head_dim_v = hv_swa;
            }
            // K = V layers have no attn_v tensor; the value is the key projection, stored once (the caches
            // rebuild the key from it: kv_cache.h, KeyFromValue)
            lm.v_is_k = !f.tensor("blk." + std::to_string(l) + ".attn_v.weight");
            if (l >= L - shared) lm.has_kv = false;  // reuses an earlier layer's cache
            m.max_q_dim = std::max(m.max_q_dim, n_head[l] * lm.head_dim_k);
        }
    }

    m.n_expert = opt(f, p + "expert_count", 0);
    m.n_expert_used = n_used;
    m.n_ff_exp = f_exp;
    m.n_ff_shexp = opt(f, p + "expert_shared_feed_forward_length", 0);
    for (int l = 0; l < L && m.n_expert > 0; l++)
        if (f.tensor("blk." + std::to_string(l) + ".ffn_gate_inp.weight")) m.n_moe_layers++;

    for (const auto& t : f.tensors()) m.weight_bytes += t.n_bytes;
    m.n_tensors = (int)f.tensors().size();
    return m;
}

int kv_head_dim(const ModelMemory& m) {
    int d = 0;
    for (const LayerMemory& l : m.layers)
        if (l.has_kv) d = std::max({d, l.head_dim_k, l.head_dim_v});
    return d;
}

}  // namespace rotor
