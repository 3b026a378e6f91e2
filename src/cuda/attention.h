// The KV cache on the GPU (dense per sequence) and attention over it (src/cuda/attention.cu).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace rotor::cuda {

// ---- KV cache (dense per sequence: [seq][pos][head_kv][dim] per layer) and attention

// How K and V are stored: floats, or llama.cpp's q8_0 / q4_0 blocks of 32 elements (quantized on
// write with the CPU formats' float operations, so the bytes equal the CPU cache's; read in place by
// the attention kernel), or the same blocks of H x with H the orthonormal Walsh-Hadamard matrix of
// the head size (the CPU's q8_0h / q4_0h). For a rotated type the caller rotates each query head
// before attention and each output head after it (kv_rotate_rows): <Hq, Hk> = <q, k>. The tcq types
// (rotor's trellis codes, src/kv/kv_trellis.h) store rows of R x, R = H D / sqrt(d) with the fixed random
// signs D, in the CPU's exact bytes (kv_trellis.h here); so do the tbq types (TurboQuant's scalar
// Lloyd-Max codes, src/kv/kv_turbo.cpp; kv_turbo.h here).
enum class KvElem {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q8_0H,
    Q4_0H,
    TCQ2,
    TCQ3,
    TCQ4,
    TBQ2,
    TBQ3,
    TBQ4,
    TBQ2NC,
    TBQ3NC,
    TBQ4NC,
    Q4_1,
    Q5_0,
    Q5_1,
    IQ4_NL,
    Q4_1H,
    Q5_0H,
    Q5_1H,
    IQ4_NLH,  // the other ggml blocks of 32 (and Hadamard forms)
    // RotorQuant (kv_rotorquant.cpp): blocks of 128 rotated by Givens pairs (planar) or quaternions (iso)
    PLANAR3_0,
    ISO3_0,
    PLANAR4_0,
    ISO4_0,
    PLANAR3_C,
    ISO3_C,
    PLANAR4_C,
    ISO4_C
};
const char* kv_elem_name(KvElem e);  // the CPU format's name
size_t kv_row_bytes(KvElem e, int head_dim);  // one head's row
bool kv_elem_rotated(KvElem e);
bool kv_elem_randomized(KvElem e);  // rotated with the random signs (tcq, tbq)
int kv_elem_tcq_bits(KvElem e);     // 2..4 for tcq2..tcq4, else 0
int kv_elem_tbq_bits(KvElem e);     // 2..4 for tbq2..tbq4 and tbq2nc..tbq4nc, else 0
bool kv_elem_tbq_norm_corrected(KvElem e);  // tbq2nc..tbq4nc
bool kv_elem_block_min(KvElem e);           // q4_1 / q5_1 (and *h): element = d * code + the block's minimum
int kv_elem_rotorquant_bits(KvElem e);      // 3 or 4 for planar / iso, else 0
bool kv_elem_rotorquant_iso(KvElem e);
bool kv_elem_rotorquant_corrected(KvElem e);  // the _c forms
// Why this type cannot hold heads of this size on the GPU ("" when it can): block types need
// multiples of 32, rotated ones a power of two, every type at most 512.
std::string kv_elem_refusal(KvElem e, int head_dim);
bool kv_elem_supports(KvElem e, int head_dim);
// Rotates n_rows rows of d floats in place by the orthonormal Hadamard matrix (its own inverse);
// d a power of two <= 512.
void hadamard_rows(float* x, int n_rows, int d, cudaStream_t s);
// Into the stored basis of a rotated type (back = false: queries) or out of it (back = true:
// attention outputs): hadamard_rows for the *h types, R or R^T for the randomized ones.
void kv_rotate_rows(KvElem e, float* x, int n_rows, int d, bool back, cudaStream_t s);

struct KvLayerView {
    void* k = nullptr;
    void* v = nullptr;
    KvElem elem = KvElem::F16;
    int n_head_kv = 0, head_dim_k = 0, head_dim_v = 0;
    int ctx = 0;  // positions stored per sequence: the context, or the ring on a sliding-window layer
    // Sliding-window layer (gemma4): a query at p sees (p - window, p]; position p is stored at
    // p % ctx (ctx = window + the most tokens one sequence stores in a step). 0 = whole context.
    int window = 0;
    // Key from value (gemma4's K = V global layers): only V is stored (k is null) and the key of position
    // j is RoPE-NeoX(j; n_rot, rope_inv_freq)(k_weight (.) v_j) in the model's basis, what the forward
    // computes as k (k_norm's weight, then RoPE) from the same normalized projection; the CPU cache's
    // KvGeometry::KeyFromValue. The query then stays in the model's basis even for a rotated type (the
    // key is rebuilt there, the stored row rotated back per position); the output is in the stored basis
    // as for every layer (rotate it back after attention).
    const float* k_weight = nullptr;       // head_dim floats (device)
    const float* rope_inv_freq = nullptr;  // n_rot / 2 floats (device)
    int n_rot = 0;
    // Pairs [0, rope_pairs) are rotated; later pairs have frequencies so small that no position of the
    // context turns them (cos 1, sin below 1e-6: gemma4's proportional RoPE leaves 3/4 of them still).
    int rope_pairs = 0;
    bool key_from_value() const { return k_weight != nullptr; }
};

// Why attention cannot derive keys from values for this layer shape ("" when it can).
std::string key_from_value_refusal(const KvLayerView& kv);
// rope_pairs for a layer: 1 + the last pair whose angle reaches 1e-6 within n_ctx positions.
int key_from_value_rope_pairs(const float* host_inv_freq, int n_rot, int n_ctx);

// Stores k[t], v[t] at (seq[t], pos[t] % ctx) (the slot itself when pos < ctx, as outside rings; only v
// where the key comes from the value). Tokens of one call must not share a slot (a step stores at most
// ctx - window positions of a sequence).
void kv_store(const KvLayerView& kv, const float* k, const float* v, const int32_t* seq, const int32_t* pos, int n_tok,
              cudaStream_t s);

// out[t][h] = softmax(scale * q[t][h] . K[seq[t]][0..pos[t]]) V, for n_head query heads sharing KV
// heads in groups; on a sliding-window layer over positions (pos[t] - window, pos[t]] only, position
// j read from its ring slot j % ctx. Split-K (flash-decoding): each (token, head) is cut into position
// ranges that run in parallel and are merged by a second kernel. `partial` is scratch of
// attention_partial_floats(...) floats (enough for a window too: it counts max_kv's splits).
size_t attention_partial_floats(int n_tok, int n_head, int head_dim_v, int max_kv);
int attention_splits(int max_kv);  // split-K parts for max_kv positions
void attention(const KvLayerView& kv, const float* q, float* out, const int32_t* seq, const int32_t* pos, int n_tok,
               int n_head, float scale, int max_kv, float* partial, cudaStream_t s);

}  // namespace rotor::cuda
