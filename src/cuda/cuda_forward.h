// The CUDA forward pass: the same computation as CpuForward (model/forward*.cpp), over a batch of
// tokens from any number of sequences, with the weights copied to the GPU in their GGUF formats and a
// dense per-sequence KV cache on the GPU (cuda/attention.h). One enqueue function per architecture
// family: llama / qwen2 / qwen3 here, qwen35 / qwen35moe in cuda_forward_qwen35.cu (Gated DeltaNet
// state per sequence on the GPU), gemma4 in cuda_forward_gemma4.cu (sliding-window rings).
// Everything unsupported (a weight type without a kernel, a head size above 512, a GPU this build
// has no kernels for) is refused in the constructor with a rotor::Error.
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda/cuda_util.h"
#include "cuda/kernels.h"
#include "model/forward.h"
#include "model/model.h"

namespace rotor::cuda {

struct CudaForwardOptions {
    int gpu = 0;
    int n_seq = 1;            // sequences the KV cache holds
    int ctx = 2048;           // positions per sequence
    int max_batch = 512;      // tokens per forward call (larger batches are refused)
    int max_logit_rows = 0;   // rows with logits per call (0: max_batch); the server needs one per slot
    // The most tokens of one sequence in one call (0: max_batch). Sliding-window layers keep a ring of
    // window + this many positions (the planner's and the CPU pool's ring: window + n_batch).
    int max_seq_tokens = 0;
    int ring_round = 1;  // rings rounded up to a multiple of this (the server's KV block, as the planner counts)
    KvElem kv = KvElem::F16;  // parse_kv_elem: f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl (and *h),
                              // tcq2-4, tbq2-4, tbq2nc-4nc, planar3/4_0/_c, iso3/4_0/_c
    // f32 activations for every weight format (the dequantized-weights result, for checks); by
    // default formats with integer codes run on int8 activations (see kernels.h, matmul).
    bool exact_matmul = false;
    bool cuda_graphs = true;  // replay decode steps (<= 8 tokens) as CUDA graphs
};

// KV element type by name; rotor::Error lists the supported names otherwise.
KvElem parse_kv_elem(const std::string& name);
// Bytes one position of layer l takes per KV head: its K and V rows, the V row alone on K = V layers.
size_t kv_head_position_bytes(const ModelConfig& c, int layer, KvElem kv);

class CudaForward {
public:
    CudaForward(const Model& model, const CudaForwardOptions& opt);
    ~CudaForward();

    // As CpuForward::forward: n_vocab logits for each token with want_logits, in batch order.
    // Positions must be < ctx and sequences < n_seq (rotor::Error / KvCacheFull otherwise).
    void forward(const Batch& batch, std::vector<float>& logits);

    // Runs the batch but leaves the logits on the GPU (for benchmarks); returns after the GPU is done.
    void forward_device(const Batch& batch);

    // Copies positions [0, n) of sequence src's K/V to sequence dst on the GPU (prefix reuse).
    void copy_seq_prefix(int src, int dst, int n);
    // Positions layer l stores per sequence: the context, the ring of a sliding-window layer, 0 without KV.
    int kv_positions(int layer) const { return layers_[layer].kv.n_head_kv ? layers_[layer].kv.ctx : 0; }
    // K+V bytes one position of one sequence takes over all layers.
    uint64_t kv_bytes_per_position() const { return kv_bytes_per_pos_; }
    // Bytes of activation, logits and scratch buffers (everything but weights and KV).
    uint64_t activation_bytes() const { return activation_bytes_; }
    const CudaForwardOptions& options() const { return opt_; }

    // ---- Recurrent state (qwen35 / qwen35moe; cuda_forward_qwen35.cu). Each sequence has its Gated
    // DeltaNet state on the GPU; a batch must continue it (its first position is 0, which resets it,
    // or the sequence's current length). The server snapshots it at the end of a prompt.
    bool has_recurrent_state() const { return state_bytes_per_seq_ > 0; }
    uint64_t state_bytes_per_seq() const { return state_bytes_per_seq_; }
    int seq_state_pos(int seq) const;                      // positions the state has consumed
    void copy_seq_state(int src, int dst);                 // dst's state (and position) = src's
    void save_seq_state(int seq, std::vector<uint8_t>& host) const;  // to host memory (a checkpoint)
    void load_seq_state(int seq, const std::vector<uint8_t>& host, int pos);
    void reset_seq_state(int seq);  // a fresh state: position 0 (the next step restarts it)

    void set_cuda_graphs(bool on) { opt_.cuda_graphs = on; }
    uint64_t weight_bytes() const { return weight_bytes_; }
    uint64_t kv_bytes() const { return kv_bytes_; }
    const std::string& gpu_name() const { return gpu_name_; }
    cudaStream_t stream() const { return stream_; }

private:
    struct DevWeight {
        GgmlType type = GgmlType::F32;
        int64_t rows = 0, cols = 0;
        const void* data = nullptr;  // inside arena_
    };
    // The device copy of LayerWeights (model/model.h), field for field (absent tensors have data null).
    struct DevLayer {
        DevWeight attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm, ffn_norm, ffn_gate, ffn_up, ffn_down;
        DevWeight ssm_in, ssm_z, ssm_conv1d, ssm_dt, ssm_a, ssm_beta, ssm_alpha, ssm_norm, ssm_out;
        DevWeight ffn_gate_inp, ffn_gate_exps, ffn_up_exps, ffn_down_exps, ffn_gate_up_exps;
        DevWeight ffn_gate_inp_shexp, ffn_gate_shexp, ffn_up_shexp, ffn_down_shexp;
        DevWeight post_attn_norm, post_ffw_norm, pre_ffw_norm_2, post_ffw_norm_1, post_ffw_norm_2;
        DevWeight ffn_gate_inp_scale, ffn_down_exps_scale, out_scale;
        KvLayerView kv;  // n_head_kv 0 on layers without a KV cache (Gated DeltaNet)
    };
    static const std::vector<std::pair<Weight LayerWeights::*, DevWeight DevLayer::*>>& layer_fields();
    DevWeight upload(const Weight& w);  // copies into arena_ once per distinct tensor
    void run(const Batch& batch);  // validates, stages, launches (or replays a graph)
    void enqueue(int n, int max_kv, const std::vector<int>& out_rows);  // the step's launches, by arch
    void enqueue_llama(int n, int max_kv, const std::vector<int>& out_rows);
    void enqueue_logits(int n_out, const std::vector<int>& out_rows);  // final norm + output projection
    // Attention of n tokens (q, K/V already stored) in token groups that keep the split-K scratch bounded.
    void attend(const KvLayerView& kv, const float* q, float* out, int n, int n_head, float scale, int max_kv);

    // qwen35 / qwen35moe (cuda_forward_qwen35.cu): buffers and state, batch rules, the step.
    struct Qwen35Buffers;
    std::unique_ptr<Qwen35Buffers> q35_;
    void init_qwen35();
    void check_batch_qwen35(const Batch& batch) const;
    void enqueue_qwen35(int n, int max_kv, const std::vector<int>& out_rows);
    void after_step_qwen35(const Batch& batch);  // host bookkeeping once a step is enqueued
    // gemma4 (cuda_forward_gemma4.cu)
    struct Gemma4Buffers;
    std::unique_ptr<Gemma4Buffers> g4_;
    void init_gemma4();
    void enqueue_gemma4(int n, int max_kv, const std::vector<int>& out_rows);
    void clear_graphs();
    void linear(const DevWeight& w, const float* x, int n_tok, float* y);
    // Several weights applied to the same x (Q/K/V, gate/up): its conversion is shared.
    void linear_multi(const MatmulJob* jobs, int n_jobs, int64_t cols, const float* x, int n_tok);
    bool use_tensor_cores(const MatmulJob* jobs, int n_jobs, int64_t cols, int n_tok) const;
    static constexpr int kTcMinTokens = 32;  // batches from this size run on the tensor cores

    const Model& m_;
    CudaForwardOptions opt_;
    std::string gpu_name_;
    cudaStream_t stream_ = nullptr;
    DeviceBuffer arena_, kv_arena_;
    std::map<const void*, size_t> offsets_;  // host tensor -> offset in arena_
    size_t next_offset_ = 0;
    DevWeight tok_embd_, output_norm_, output_;
    std::vector<DevLayer> layers_;
    uint64_t weight_bytes_ = 0, kv_bytes_ = 0, kv_bytes_per_pos_ = 0, activation_bytes_ = 0, state_bytes_per_seq_ = 0;
    // activations for max_batch tokens
    DeviceBuffer x_, xn_, q_, k_, v_, attn_, gate_, up_, hidden_, logits_, partial_;
    DeviceBuffer tok_, pos_, seq_, inv_freq_, act_q8_, tc_scratch_;
    int* staging_ = nullptr;  // pinned: tokens, positions, sequences of the step

    struct GraphKey {
        int n_tok;
        size_t splits;
        std::vector<int> out_rows;
        bool operator<(const GraphKey& o) const {
            if (n_tok != o.n_tok) return n_tok < o.n_tok;
            if (splits != o.splits) return splits < o.splits;
            return out_rows < o.out_rows;
        }
    };
    static constexpr int kGraphMaxTokens = 8;
    static constexpr size_t kMaxGraphs = 64;
    std::map<GraphKey, cudaGraphExec_t> graphs_;
};

}  // namespace rotor::cuda
