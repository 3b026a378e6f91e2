// Kernels of the hybrid Qwen3.5 models (qwen35, qwen35moe) on the GPU (src/cuda/delta_net.cu): the Gated
// DeltaNet layer (causal conv1d, the gated delta rule, the gated RMSNorm) with its per-sequence recurrent
// state, and the small fused steps around the gated attention and the FFN. The CPU reference is
// model/forward_qwen35.cpp and model/delta_rule.cpp; the state layout is kv/recurrent_state.h's, so a
// sequence's state block moves between the CPU and the GPU as is.
//
// Every value that changes from step to step (sequences, positions, where each sequence's tokens are)
// is read from device memory, so that a captured CUDA graph replays any step of the same shape.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#if defined(__CUDACC__)
#define ROTOR_GDN_HD __host__ __device__
#else
#define ROTOR_GDN_HD
#endif

namespace rotor::cuda {

// Gated DeltaNet shapes (ModelConfig's ssm_*). The conv channels are the q heads, then the k heads
// (n_k_heads x d_k each), then the v heads (n_v_heads x d_v); value head h reads q/k head h % n_k_heads.
struct GdnShape {
    int n_k_heads = 0, n_v_heads = 0, d_k = 0, d_v = 0, conv_kernel = 0;
    ROTOR_GDN_HD int channels() const { return 2 * n_k_heads * d_k + n_v_heads * d_v; }
    ROTOR_GDN_HD int v_dim() const { return n_v_heads * d_v; }
};

// Why the kernels cannot run these shapes ("" when they can).
std::string gdn_refusal(const GdnShape& g);

// Where each token of a step sits within its sequence, computed on the device from seq/pos (batch order;
// a sequence's positions are consecutive, as check_batch_qwen35 enforces): first_idx[t] / first_pos[t]:
// batch index and position of the first token of t's sequence in this step; the sequence's tokens, in
// position order, are order[start[t] .. start[t] + count[t]). Each array holds n ints.
struct SeqPlan {
    int32_t* first_idx = nullptr;
    int32_t* first_pos = nullptr;
    int32_t* start = nullptr;
    int32_t* count = nullptr;
    int32_t* order = nullptr;
};
void seq_plan(const int32_t* seq, const int32_t* pos, int n, const SeqPlan& plan, cudaStream_t s);

// One layer's recurrent state for every sequence: sequence s's conv inputs are conv + s * seq_stride
// ([K-1][channels], oldest first) and its delta-rule state ssm + s * seq_stride ([n_v_heads][d_k][d_v]).
struct GdnState {
    float* conv = nullptr;
    float* ssm = nullptr;
    size_t seq_stride = 0;  // floats
};

// The per-token inputs of the delta rule from the projections (mix [n][channels], ab [2][n][n_v_heads]:
// the beta projection's output, then the alpha projection's): out = SiLU(causal depthwise conv1d(mix)) over each sequence's
// positions (the K-1 inputs before the step's first token from the conv state; none before position 0,
// which starts the sequence afresh), q and k heads L2-normalized (q also times 1/sqrt(d_k)); and in place
// ab = (beta = sigmoid(b), g = ssm_a * softplus(a + dt_bias)). The conv state is not changed here.
void gdn_conv(const GdnShape& g, const float* mix, float* out, float* ab, const float* conv_w, const float* ssm_a,
              const float* dt_bias, const GdnState& st, const int32_t* seq, const int32_t* pos, const SeqPlan& plan,
              int n, cudaStream_t s);

// The gated delta rule over each sequence's tokens in order (recurrent form: exact, any length), from the
// state (zeros when the sequence restarts at position 0) to the updated state; the conv state advanced
// past the step's inputs (raw mix); then y = RMSNorm(o) * norm_w * SiLU(z) per head into out [n][v_dim].
void gdn_delta(const GdnShape& g, const float* mix, const float* conv_out, const float* ab, const float* z,
               const float* norm_w, float eps, const GdnState& st, const int32_t* seq, const int32_t* pos,
               const SeqPlan& plan, int n, float* out, cudaStream_t s);

// Gated attention input: qg [n][H][2][D] (per head the query, then the output gate), k [n][Hkv][D].
// q[t][h] = RoPE(RMSNorm(query) * q_norm), k in place = RoPE(RMSNorm(k) * k_norm); NeoX pairs over the
// first n_rot dims, position pos[t], inv_freq n_rot/2 floats.
void gated_qk_prep(const float* qg, float* q, float* k, const float* q_norm, const float* k_norm, int n, int H,
                   int Hkv, int D, int n_rot, float eps, const int32_t* pos, const float* inv_freq, cudaStream_t s);

// attn[t][h][i] *= sigmoid(qg[t][h][1][i]) (the gate half of attn_q's output).
void sigmoid_gate(float* attn, const float* qg, int n, int H, int D, cudaStream_t s);

// Residual update and the next RMSNorm in one pass, per token t of n (E floats each):
//   x[t] += y[t] (+ sigmoid(gate_w . gate_x[t]) * y2[t] when y2 is given: the MoE's shared expert)
//   xn[t] = RMSNorm(x[t]) * norm_w (skipped when norm_w is null)
// xn may alias y or gate_x (each token's inputs are read before its output is written).
void residual_norm(float* x, const float* y, const float* y2, const float* gate_w, const float* gate_x,
                   const float* norm_w, float* xn, int n, int E, float eps, cudaStream_t s);

}  // namespace rotor::cuda
