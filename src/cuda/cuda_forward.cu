#include "cuda/cuda_forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "cuda/attention_prefill.h"
#include "cuda/cuda_forward_gemma4.h"
#include "cuda/cuda_forward_qwen35.h"
#include "cuda/device.h"
#include "cuda/kv_rotorquant.h"
#include "cuda/kv_trellis.h"
#include "cuda/kv_turbo.h"
#include "cuda/matmul_tc.h"

namespace rotor::cuda {

namespace {
constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
constexpr size_t kMaxPartialBytes = 64u << 20;  // split-K scratch per attention launch
}  // namespace

KvElem parse_kv_elem(const std::string& name) {
    constexpr KvElem kAll[] = {KvElem::F32,    KvElem::F16,       KvElem::Q8_0,    KvElem::Q4_0,
                               KvElem::Q8_0H,  KvElem::Q4_0H,     KvElem::TCQ2,    KvElem::TCQ3,
                               KvElem::TCQ4,   KvElem::TBQ2,      KvElem::TBQ3,    KvElem::TBQ4,
                               KvElem::TBQ2NC, KvElem::TBQ3NC,    KvElem::TBQ4NC,  KvElem::Q4_1,
                               KvElem::Q5_0,   KvElem::Q5_1,      KvElem::IQ4_NL,  KvElem::Q4_1H,
                               KvElem::Q5_0H,  KvElem::Q5_1H,     KvElem::IQ4_NLH, KvElem::PLANAR3_0,
                               KvElem::ISO3_0, KvElem::PLANAR4_0, KvElem::ISO4_0,  KvElem::PLANAR3_C,
                               KvElem::ISO3_C, KvElem::PLANAR4_C, KvElem::ISO4_C};
    std::string names;
    for (KvElem e : kAll) {
        if (name == kv_elem_name(e)) return e;
        names += std::string(names.empty() ? "" : ", ") + kv_elem_name(e);
    }
    throw Error("KV type '" + name + "' is not supported by the CUDA backend yet (supported: " + names + ")");
}

const std::vector<std::pair<Weight LayerWeights::*, CudaForward::DevWeight CudaForward::DevLayer::*>>&
CudaForward::layer_fields() {
    using L = LayerWeights;
    using D = DevLayer;
    static const std::vector<std::pair<Weight L::*, DevWeight D::*>> fields = {
        {&L::attn_norm, &D::attn_norm}, {&L::wq, &D::wq}, {&L::wk, &D::wk}, {&L::wv, &D::wv}, {&L::wo, &D::wo},
        {&L::bq, &D::bq}, {&L::bk, &D::bk}, {&L::bv, &D::bv}, {&L::q_norm, &D::q_norm}, {&L::k_norm, &D::k_norm},
        {&L::ffn_norm, &D::ffn_norm}, {&L::ffn_gate, &D::ffn_gate}, {&L::ffn_up, &D::ffn_up},
        {&L::ffn_down, &D::ffn_down}, {&L::ssm_in, &D::ssm_in}, {&L::ssm_z, &D::ssm_z},
        {&L::ssm_conv1d, &D::ssm_conv1d}, {&L::ssm_dt, &D::ssm_dt}, {&L::ssm_a, &D::ssm_a},
        {&L::ssm_beta, &D::ssm_beta}, {&L::ssm_alpha, &D::ssm_alpha}, {&L::ssm_norm, &D::ssm_norm},
        {&L::ssm_out, &D::ssm_out}, {&L::ffn_gate_inp, &D::ffn_gate_inp}, {&L::ffn_gate_exps, &D::ffn_gate_exps},
        {&L::ffn_up_exps, &D::ffn_up_exps}, {&L::ffn_down_exps, &D::ffn_down_exps},
        {&L::ffn_gate_up_exps, &D::ffn_gate_up_exps}, {&L::ffn_gate_inp_shexp, &D::ffn_gate_inp_shexp},
        {&L::ffn_gate_shexp, &D::ffn_gate_shexp}, {&L::ffn_up_shexp, &D::ffn_up_shexp},
        {&L::ffn_down_shexp, &D::ffn_down_shexp}, {&L::post_attn_norm, &D::post_attn_norm},
        {&L::post_ffw_norm, &D::post_ffw_norm}, {&L::pre_ffw_norm_2, &D::pre_ffw_norm_2},
        {&L::post_ffw_norm_1, &D::post_ffw_norm_1}, {&L::post_ffw_norm_2, &D::post_ffw_norm_2},
        {&L::ffn_gate_inp_scale, &D::ffn_gate_inp_scale}, {&L::ffn_down_exps_scale, &D::ffn_down_exps_scale},
        {&L::out_scale, &D::out_scale}};
    return fields;
}

size_t kv_head_position_bytes(const ModelConfig& c, int layer, KvElem kv) {
    return (c.v_is_k_at(layer) ? 0 : kv_row_bytes(kv, c.head_dim_k[layer])) + kv_row_bytes(kv, c.head_dim_v[layer]);
}

CudaForward::CudaForward(const Model& model, const CudaForwardOptions& opt) : m_(model), opt_(opt) {
    const ModelConfig& c = m_.cfg;
    if (opt.n_seq < 1 || opt.ctx < 1 || opt.max_batch < 1) throw Error("CUDA forward: n_seq, ctx and max_batch must be positive");
    if (opt_.max_logit_rows <= 0 || opt_.max_logit_rows > opt.max_batch) opt_.max_logit_rows = opt.max_batch;
    if (opt_.max_seq_tokens <= 0 || opt_.max_seq_tokens > opt.max_batch) opt_.max_seq_tokens = opt.max_batch;
    // Refuse what the kernels cannot run before touching the GPU.
    auto check_weight = [&](const Weight& w) {
        if (!w.present()) return;
        if (!weight_type_supported(w.type))
            throw Error("tensor " + w.name + " has type " + std::string(format_info(w.type).name) +
                        ", which the CUDA backend cannot run yet (supported: " + supported_weight_types() + ")");
        if (!weight_rows_supported(w.type, w.cols()))
            throw Error("tensor " + w.name + ": row length not a multiple of 8");
    };
    check_weight(m_.tok_embd);
    check_weight(m_.output);
    for (const LayerWeights& L : m_.layers)
        for (const auto& [field, dev] : layer_fields()) check_weight(L.*field);

    const GpuInfo gpu = select_gpu(opt.gpu);
    gpu_name_ = gpu.name;
    // KV heads per layer as the CPU cache counts them: none on Gated DeltaNet and MTP layers. After
    // selecting the GPU: tcq's encoder needs shared memory that only some GPUs have for heads of 512.
    const KvGeometry geo = kv_geometry(c);
    for (int l = 0; l < c.n_layer; l++) {
        if (geo.n_head_kv[l] == 0) continue;  // no KV cache on this layer
        for (int d : {c.head_dim_k[l], c.head_dim_v[l]})
            if (std::string why = kv_elem_refusal(opt.kv, d); !why.empty())
                throw Error(why + " (layer " + std::to_string(l) + " has " + std::to_string(d) + ")");
    }
    // the code tables, before any graph capture
    if (const int bits = kv_elem_tcq_bits(opt.kv)) tcq_device_table(bits);
    if (const int bits = kv_elem_tbq_bits(opt.kv)) tbq_device_codebook(bits);
    if (kv_elem_rotorquant_bits(opt.kv)) rotorquant_device_centroids(opt.kv);
    ROTOR_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));

    // Weights: one arena, tensors in their file formats, each 256-byte aligned; a tied output
    // shares the embedding's copy.
    std::vector<const Weight*> all = {&m_.tok_embd, &m_.output_norm, &m_.output};
    for (const LayerWeights& L : m_.layers)
        for (const auto& [field, dev] : layer_fields()) all.push_back(&(L.*field));
    size_t total = 0;
    {
        std::map<const void*, bool> seen;
        for (const Weight* w : all)
            if (w->present() && !seen[w->data]) {
                seen[w->data] = true;
                total += align_up(w->bytes());
            }
    }
    arena_.resize(std::max<size_t>(total, kAlign));
    tok_embd_ = upload(m_.tok_embd);
    output_norm_ = upload(m_.output_norm);
    output_ = upload(m_.output);
    layers_.resize(c.n_layer);
    for (int l = 0; l < c.n_layer; l++)
        for (const auto& [field, dev] : layer_fields()) layers_[l].*dev = upload(m_.layers[l].*field);
    weight_bytes_ = total;

    // KV cache: per layer K then V, [seq][pos][head_kv][dim]; nothing on layers without KV heads
    // (Gated DeltaNet), a ring of window + max_seq_tokens positions on sliding-window layers, V only on
    // gemma4's K = V layers (the key is derived from it: attention.h, KvLayerView::key_from_value).
    size_t kv_total = 0;
    std::vector<std::pair<size_t, size_t>> kv_off(c.n_layer);
    std::vector<int> kv_pos(c.n_layer);
    for (int l = 0; l < c.n_layer; l++) {
        const int w = c.window_of(l);
        if (w > 0) {
            const int r = std::max(1, opt.ring_round);
            kv_pos[l] = (std::min(opt.ctx, w + opt_.max_seq_tokens) + r - 1) / r * r;
        } else {
            kv_pos[l] = opt.ctx;
        }
        const size_t ks = c.v_is_k_at(l) ? 0
                                            : (size_t)opt.n_seq * kv_pos[l] * geo.n_head_kv[l] *
                                                  kv_row_bytes(opt.kv, c.head_dim_k[l]);
        const size_t vs = (size_t)opt.n_seq * kv_pos[l] * geo.n_head_kv[l] * kv_row_bytes(opt.kv, c.head_dim_v[l]);
        kv_off[l] = {kv_total, kv_total + align_up(ks)};
        kv_total += align_up(ks) + align_up(vs);
    }
    kv_arena_.resize(std::max<size_t>(kv_total, kAlign));
    ROTOR_CUDA_CHECK(cudaMemset(kv_arena_.get(), 0, kv_arena_.bytes()));
    kv_bytes_ = kv_total;
    for (int l = 0; l < c.n_layer; l++)
        if (c.window_of(l) == 0)  // rings are a fixed size per sequence, not per position
            kv_bytes_per_pos_ += (uint64_t)geo.n_head_kv[l] * kv_head_position_bytes(c, l, opt.kv);
    for (int l = 0; l < c.n_layer; l++) {
        KvLayerView& v = layers_[l].kv;
        v.k = c.v_is_k_at(l) ? nullptr : kv_arena_.get<char>() + kv_off[l].first;
        v.v = kv_arena_.get<char>() + kv_off[l].second;
        v.elem = opt.kv;
        v.n_head_kv = geo.n_head_kv[l];
        v.head_dim_k = c.head_dim_k[l];
        v.head_dim_v = c.head_dim_v[l];
        v.ctx = kv_pos[l];
        v.window = c.window_of(l);
    }

    // Activations for max_batch tokens.
    const size_t B = opt.max_batch;
    int max_q = 0, max_k = 0, max_v = 0, max_attn = 0, max_ff = 0;
    for (int l = 0; l < c.n_layer; l++) {
        max_q = std::max(max_q, c.q_dim(l));
        max_k = std::max(max_k, c.kv_dim_k(l));
        max_v = std::max(max_v, c.kv_dim_v(l));
        max_attn = std::max(max_attn, c.n_head[l] * c.head_dim_v[l]);
        max_ff = std::max(max_ff, c.n_ff[l]);
    }
    x_.resize(B * c.n_embd * 4);
    xn_.resize(B * c.n_embd * 4);
    q_.resize(B * max_q * 4);
    k_.resize(B * max_k * 4);
    v_.resize(B * max_v * 4);
    attn_.resize(B * max_attn * 4);
    gate_.resize(B * max_ff * 4);
    up_.resize(B * max_ff * 4);
    const size_t R = opt_.max_logit_rows;
    hidden_.resize(R * c.n_embd * 4);
    logits_.resize(R * (size_t)c.n_vocab * 4);
    if (!opt.exact_matmul)
        act_q8_.resize(matmul_scratch_bytes(opt.max_batch, std::max({c.n_embd, max_attn, max_ff})));
    {
        // split-K scratch for the longest context, sized once (captured graphs keep its address)
        size_t per_tok = 0;
        for (int l = 0; l < c.n_layer; l++)
            per_tok = std::max(per_tok, attention_partial_floats(1, c.n_head[l], c.head_dim_v[l], opt.ctx) * 4);
        partial_.resize(std::max(per_tok, std::min(per_tok * B, kMaxPartialBytes)));
    }
    ROTOR_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&staging_), 3 * B * sizeof(int), cudaHostAllocDefault));
    tok_.resize(B * 4);
    pos_.resize(B * 4);
    seq_.resize(B * 4);

    if (!opt.exact_matmul && opt.max_batch >= kTcMinTokens)
        tc_scratch_.resize(matmul_tc_scratch_bytes(opt.max_batch, std::max({c.n_embd, max_attn, max_ff})));
    for (const DeviceBuffer* b : {&x_, &xn_, &q_, &k_, &v_, &attn_, &gate_, &up_, &hidden_, &logits_, &partial_, &tok_,
                                  &pos_, &seq_, &act_q8_, &tc_scratch_})
        activation_bytes_ += b->bytes();

    // RoPE frequencies: the CPU forward's own function
    std::vector<float> inv = rope_inv_freq(m_);
    if (inv.empty()) inv.push_back(0.0f);
    inv_freq_.resize(inv.size() * 4);
    inv_freq_.upload(inv.data(), inv.size() * 4);
    // K = V layers read the layer's k_norm weight and the global RoPE to derive their keys
    for (int l = 0; l < c.n_layer; l++) {
        if (!c.v_is_k_at(l) || geo.n_head_kv[l] == 0) continue;
        KvLayerView& v = layers_[l].kv;
        if (layers_[l].k_norm.type != GgmlType::F32 || !layers_[l].k_norm.data)
            throw Error("gemma4 layer " + std::to_string(l) + ": attn_k_norm must be F32 (its keys are derived from it)");
        v.k_weight = static_cast<const float*>(layers_[l].k_norm.data);
        v.rope_inv_freq = inv_freq_.get<float>();
        v.n_rot = c.n_rot;
        v.rope_pairs = key_from_value_rope_pairs(inv.data(), c.n_rot, opt.ctx);
        if (std::string why = key_from_value_refusal(v); !why.empty())
            throw Error("gemma4 layer " + std::to_string(l) + " on the GPU: " + why);
    }

    if (c.hybrid()) init_qwen35();
    else if (c.arch == Arch::Gemma4) init_gemma4();
}

CudaForward::~CudaForward() {
    clear_graphs();
    if (staging_) cudaFreeHost(staging_);
    if (stream_) cudaStreamDestroy(stream_);
}

CudaForward::DevWeight CudaForward::upload(const Weight& w) {
    DevWeight d;
    if (!w.present()) return d;
    d.type = w.type;
    d.rows = w.rows();
    d.cols = w.cols();
    auto it = offsets_.find(w.data);
    if (it == offsets_.end()) {
        it = offsets_.emplace(w.data, next_offset_).first;
        next_offset_ += align_up(w.bytes());
        arena_.upload(w.data, w.bytes(), it->second);
    }
    d.data = arena_.get<char>() + it->second;
    return d;
}

bool CudaForward::use_tensor_cores(const MatmulJob* jobs, int n_jobs, int64_t cols, int n_tok) const {
    // From kTcMinTokens tokens on, the tensor-core matmul beats the mat-vec kernels (rotor-check-matmul-tc
    // on an H200: 0.8-0.9x at 16 tokens, 2.7-3.2x at 64 for q4_K); the exact f32 path stays for checks.
    if (opt_.exact_matmul || n_tok < kTcMinTokens || !tc_scratch_.get()) return false;
    for (int j = 0; j < n_jobs; j++)
        if (!matmul_tc_supported(jobs[j].type, cols)) return false;
    return true;
}

void CudaForward::linear_multi(const MatmulJob* jobs, int n_jobs, int64_t cols, const float* x, int n_tok) {
    if (use_tensor_cores(jobs, n_jobs, cols, n_tok)) {
        matmul_tc_prepare(x, n_tok, cols, tc_scratch_.get(), stream_);  // X to f16 once for all matrices
        for (int j = 0; j < n_jobs; j++)
            matmul_tc_prepared(jobs[j].type, jobs[j].W, jobs[j].rows, cols, n_tok, jobs[j].Y, stream_, tc_scratch_.get(),
                               tc_scratch_.bytes());
        return;
    }
    matmul_multi(jobs, n_jobs, cols, x, n_tok, stream_, opt_.exact_matmul ? nullptr : act_q8_.get());
}

void CudaForward::linear(const DevWeight& w, const float* x, int n_tok, float* y) {
    const MatmulJob job{w.type, w.data, w.rows, y};
    if (use_tensor_cores(&job, 1, w.cols, n_tok)) {
        matmul_tc(w.type, w.data, w.rows, w.cols, x, n_tok, y, stream_, tc_scratch_.get(), tc_scratch_.bytes());
        return;
    }
    matmul(w.type, w.data, w.rows, w.cols, x, n_tok, y, stream_, opt_.exact_matmul ? nullptr : act_q8_.get());
}

void CudaForward::forward(const Batch& batch, std::vector<float>& logits) {
    int n_out = 0;
    for (int t = 0; t < batch.size(); t++) n_out += batch.want_logits[t] ? 1 : 0;
    run(batch);
    logits.resize((size_t)n_out * m_.cfg.n_vocab);
    if (n_out)
        ROTOR_CUDA_CHECK(cudaMemcpyAsync(logits.data(), logits_.get(), logits.size() * 4, cudaMemcpyDeviceToHost, stream_));
    ROTOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaForward::forward_device(const Batch& batch) {
    run(batch);
    ROTOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaForward::run(const Batch& batch) {
    const ModelConfig& c = m_.cfg;
    const int n = batch.size();
    if (n == 0) return;
    if (n > opt_.max_batch)
        throw Error("batch of " + std::to_string(n) + " tokens exceeds the CUDA forward's max_batch " +
                    std::to_string(opt_.max_batch));
    int max_kv = 0;
    for (int t = 0; t < n; t++) {
        if (batch.token[t] < 0 || batch.token[t] >= c.n_vocab)
            throw Error("token id " + std::to_string(batch.token[t]) + " is outside the vocabulary (" +
                        std::to_string(c.n_vocab) + ")");
        if (batch.pos[t] < 0) throw Error("negative position in batch");
        if (batch.seq[t] < 0 || batch.seq[t] >= opt_.n_seq)
            throw Error("sequence " + std::to_string(batch.seq[t]) + " is outside the cache's " +
                        std::to_string(opt_.n_seq) + " sequences");
        if (batch.pos[t] >= opt_.ctx)
            throw KvCacheFull("position " + std::to_string(batch.pos[t]) + " is beyond the context of " +
                              std::to_string(opt_.ctx));
        max_kv = std::max(max_kv, batch.pos[t] + 1);
    }
    // The batch goes through pinned staging memory, so that a captured graph's copies read the
    // current step's values when it is replayed.
    int* staged = staging_;
    memcpy(staged, batch.token.data(), n * 4);
    memcpy(staged + opt_.max_batch, batch.pos.data(), n * 4);
    memcpy(staged + 2 * opt_.max_batch, batch.seq.data(), n * 4);
    if (c.hybrid()) check_batch_qwen35(batch);
    std::vector<int> out_rows;
    for (int t = 0; t < n; t++)
        if (batch.want_logits[t]) out_rows.push_back(t);
    if ((int)out_rows.size() > opt_.max_logit_rows)
        throw Error("batch wants logits for " + std::to_string(out_rows.size()) + " tokens; the CUDA forward holds " +
                    std::to_string(opt_.max_logit_rows));

    // Small batches (decode) replay a CUDA graph of the whole step: hundreds of kernel launches
    // become one. A graph depends on the batch size, the rows that want logits and the split-K
    // count (which grows every 256 positions); those are its key.
    if (opt_.cuda_graphs && n <= kGraphMaxTokens) {
        GraphKey key{n, (size_t)attention_splits(max_kv), out_rows};
        auto it = graphs_.find(key);
        if (it == graphs_.end()) {
            if (graphs_.size() >= kMaxGraphs) clear_graphs();
            cudaGraph_t g = nullptr;
            ROTOR_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
            try {
                enqueue(n, max_kv, out_rows);
            } catch (...) {
                cudaStreamEndCapture(stream_, &g);
                if (g) cudaGraphDestroy(g);
                throw;
            }
            ROTOR_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
            cudaGraphExec_t exec = nullptr;
            const cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
            cudaGraphDestroy(g);
            check(e, "cudaGraphInstantiate");
            it = graphs_.emplace(key, exec).first;
        }
        ROTOR_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
    } else {
        enqueue(n, max_kv, out_rows);
    }
    if (c.hybrid()) after_step_qwen35(batch);
}

void CudaForward::clear_graphs() {
    for (auto& [k, g] : graphs_) cudaGraphExecDestroy(g);
    graphs_.clear();
}

// The step's inputs (tokens, positions, sequences) to the GPU, then the architecture's launches. Every
// value that changes from step to step is read by the kernels from these device buffers, so that a
// captured graph replays correctly.
void CudaForward::enqueue(int n, int max_kv, const std::vector<int>& out_rows) {
    cudaStream_t s = stream_;
    ROTOR_CUDA_CHECK(cudaMemcpyAsync(tok_.get(), staging_, n * 4, cudaMemcpyHostToDevice, s));
    ROTOR_CUDA_CHECK(cudaMemcpyAsync(pos_.get(), staging_ + opt_.max_batch, n * 4, cudaMemcpyHostToDevice, s));
    ROTOR_CUDA_CHECK(cudaMemcpyAsync(seq_.get(), staging_ + 2 * opt_.max_batch, n * 4, cudaMemcpyHostToDevice, s));
    const ModelConfig& c = m_.cfg;
    if (c.hybrid()) enqueue_qwen35(n, max_kv, out_rows);
    else if (c.arch == Arch::Gemma4) enqueue_gemma4(n, max_kv, out_rows);
    else enqueue_llama(n, max_kv, out_rows);
}

void CudaForward::attend(const KvLayerView& kv, const float* q, float* out, int n, int H, float scale, int max_kv) {
    const int dk = kv.head_dim_k, dv = kv.head_dim_v;
    const size_t per_tok = attention_partial_floats(1, H, dv, max_kv) * 4;
    const int group = (int)std::max<size_t>(1, std::min<size_t>(n, partial_.bytes() / per_tok));
    auto split_k = [&](int a, int b) {  // tokens [a, b) on the split-K kernel, in groups that fit partial_
        for (int t0 = a; t0 < b; t0 += group) {
            const int nt = std::min(group, b - t0);
            attention(kv, q + (size_t)t0 * H * dk, out + (size_t)t0 * H * dv, seq_.get<int32_t>() + t0,
                      pos_.get<int32_t>() + t0, nt, H, scale, max_kv, partial_.get<float>(), stream_);
        }
    };
    // Runs of attention_prefill_min_run() consecutive positions of one sequence go to the tensor-core
    // prefill kernel (attention_prefill_enabled()). Such a step has more than kGraphMaxTokens tokens, so
    // it is never captured and staging_ holds its batch.
    static_assert(kPrefillMinRunFloor > kGraphMaxTokens);
    const int min_run = attention_prefill_min_run();
    if (n < min_run || !attention_prefill_enabled() || !attention_prefill_refusal(kv, H).empty()) {
        split_k(0, n);
        return;
    }
    const int* pos = staging_ + opt_.max_batch;
    const int* seq = staging_ + 2 * opt_.max_batch;
    std::vector<PrefillRun> runs;
    int rest = 0;  // first token not given to a kernel yet
    for (int t = 0; t < n;) {
        int u = t + 1;
        while (u < n && seq[u] == seq[t] && pos[u] == pos[u - 1] + 1) u++;
        if (u - t >= min_run) {
            split_k(rest, t);
            runs.push_back({seq[t], pos[t], u - t, t});
            rest = u;
        }
        t = u;
    }
    split_k(rest, n);
    attention_prefill(kv, q, out, runs.data(), (int)runs.size(), H, scale, stream_);
}

void CudaForward::enqueue_llama(int n, int max_kv, const std::vector<int>& out_rows) {
    const ModelConfig& c = m_.cfg;
    cudaStream_t s = stream_;
    const int E = c.n_embd;
    float* x = x_.get<float>();
    float* xn = xn_.get<float>();
    // The fused decode path (kernels.h, set_fused_decode; the default since it passed on an H200):
    // the kernel that produces a mat-vec's input also quantizes it on the int8 path (decode, and
    // batches below the tensor cores' size): residual add + RMSNorm + quantization before Q/K/V and
    // gate/up, SwiGLU + quantization before down; biases, q/k norms, RoPE, q's rotation and K/V into a
    // float cache in one launch. The same logits, bit for bit, as the kernels one by one.
    const bool fused = fused_decode();
    // the int8 scratch when the fused kernels quantize for these matrices, else null
    auto pre_q8 = [&](const MatmulJob* jobs, int n_jobs, int64_t cols) -> void* {
        if (!fused || opt_.exact_matmul || !act_q8_.get() || cols % 32 || use_tensor_cores(jobs, n_jobs, cols, n))
            return nullptr;
        for (int j = 0; j < n_jobs; j++)
            if (jobs[j].rows > 0 && matmul_int8_applies(jobs[j].type, jobs[j].W, cols)) return act_q8_.get();
        return nullptr;
    };
    auto run_jobs = [&](const MatmulJob* jobs, int n_jobs, int64_t cols, const float* in, void* q8) {
        if (q8) matmul_multi_q8(jobs, n_jobs, cols, in, q8, n, s);
        else linear_multi(jobs, n_jobs, cols, in, n);
    };
    if (!fused) get_rows(tok_embd_.type, tok_embd_.data, E, tok_.get<int32_t>(), n, x, s);

    for (int l = 0; l < c.n_layer; l++) {
        const DevLayer& L = layers_[l];
        const int H = c.n_head[l], Hkv = c.n_head_kv[l], dk = c.head_dim_k[l], dv = c.head_dim_v[l];
        float* q = q_.get<float>();
        float* k = k_.get<float>();
        float* v = v_.get<float>();
        {  // Q, K, V: xn quantized to int8 once, matrices of one type in one launch
            const MatmulJob qkv[] = {{L.wq.type, L.wq.data, L.wq.rows, q},
                                     {L.wk.type, L.wk.data, L.wk.rows, k},
                                     {L.wv.type, L.wv.data, L.wv.rows, v}};
            void* q8 = pre_q8(qkv, 3, L.wq.cols);
            const float* norm_w = static_cast<const float*>(L.attn_norm.data);
            if (!fused)
                rms_norm(x, norm_w, xn, n, E, c.rms_eps, s);
            else if (l == 0)  // the embedding rows, then the first norm
                get_rows_rms_norm_q8(tok_embd_.type, tok_embd_.data, tok_.get<int32_t>(), x, norm_w, xn, n, E, c.rms_eps,
                                     q8, s);
            else  // the previous layer's FFN output (in xn) added to the residual, then the norm
                add_rms_norm_q8(x, xn, norm_w, xn, n, E, c.rms_eps, q8, s);
            run_jobs(qkv, 3, L.wq.cols, xn, q8);
        }
        const bool neox = c.rope_style == RopeStyle::Neox;
        const bool rotated = kv_elem_rotated(L.kv.elem);
        if (fused) {
            QkvPrep prep;
            prep.q = q;
            prep.k = k;
            prep.v = v;
            prep.bq = static_cast<const float*>(L.bq.data);
            prep.bk = static_cast<const float*>(L.bk.data);
            prep.bv = static_cast<const float*>(L.bv.data);
            if (c.qk_norm) {
                prep.q_norm = static_cast<const float*>(L.q_norm.data);
                prep.k_norm = static_cast<const float*>(L.k_norm.data);
            }
            prep.n_head = H;
            prep.n_head_kv = Hkv;
            prep.head_dim_k = dk;
            prep.head_dim_v = dv;
            prep.n_rot = c.n_rot;
            prep.neox = neox;
            prep.eps = c.rms_eps;
            prep.pos = pos_.get<int32_t>();
            prep.seq = seq_.get<int32_t>();
            prep.inv_freq = inv_freq_.get<float>();
            if (!qkv_prep(prep, L.kv, n, s))
                kv_store(L.kv, k, v, seq_.get<int32_t>(), pos_.get<int32_t>(), n, s);  // quantizes (and rotates) K, V
            if (kv_elem_rotorquant_bits(L.kv.elem))  // qkv_prep rotates queries by Hadamard matrices only
                kv_rotate_rows(L.kv.elem, q, n * H, dk, false, s);
        } else {
            if (L.bq.data) add_bias(q, static_cast<const float*>(L.bq.data), n, H * dk, s);
            if (L.bk.data) add_bias(k, static_cast<const float*>(L.bk.data), n, Hkv * dk, s);
            if (L.bv.data) add_bias(v, static_cast<const float*>(L.bv.data), n, Hkv * dv, s);
            if (c.qk_norm) {
                rms_norm(q, static_cast<const float*>(L.q_norm.data), q, n * H, dk, c.rms_eps, s);
                rms_norm(k, static_cast<const float*>(L.k_norm.data), k, n * Hkv, dk, c.rms_eps, s);
            }
            rope(q, n, H, dk, c.n_rot, neox, pos_.get<int32_t>(), inv_freq_.get<float>(), s);
            rope(k, n, Hkv, dk, c.n_rot, neox, pos_.get<int32_t>(), inv_freq_.get<float>(), s);
            kv_store(L.kv, k, v, seq_.get<int32_t>(), pos_.get<int32_t>(), n, s);  // rotates K and V itself
            if (rotated) kv_rotate_rows(L.kv.elem, q, n * H, dk, false, s);  // attention runs in the rotated basis
        }

        attend(L.kv, q, attn_.get<float>(), n, H, 1.0f / std::sqrt((float)dk), max_kv);
        if (rotated) kv_rotate_rows(L.kv.elem, attn_.get<float>(), n * H, dv, true, s);  // back from the rotated basis
        linear(L.wo, attn_.get<float>(), n, xn);

        const int ff = c.n_ff[l];
        {  // gate and up: as Q, K, V
            const MatmulJob gate_up[] = {{L.ffn_gate.type, L.ffn_gate.data, L.ffn_gate.rows, gate_.get<float>()},
                                         {L.ffn_up.type, L.ffn_up.data, L.ffn_up.rows, up_.get<float>()}};
            void* q8 = pre_q8(gate_up, 2, L.ffn_gate.cols);
            const float* norm_w = static_cast<const float*>(L.ffn_norm.data);
            if (fused) {
                add_rms_norm_q8(x, xn, norm_w, xn, n, E, c.rms_eps, q8, s);
            } else {
                add(x, xn, (int64_t)n * E, s);
                rms_norm(x, norm_w, xn, n, E, c.rms_eps, s);
            }
            run_jobs(gate_up, 2, L.ffn_gate.cols, xn, q8);
        }
        const MatmulJob down{L.ffn_down.type, L.ffn_down.data, L.ffn_down.rows, xn};
        if (void* q8 = pre_q8(&down, 1, ff)) {
            swiglu_q8(gate_.get<float>(), up_.get<float>(), n, ff, q8, s);
            matmul_q8(down.type, down.W, down.rows, ff, gate_.get<float>(), q8, n, xn, s);
        } else {
            swiglu(gate_.get<float>(), up_.get<float>(), (int64_t)n * ff, s);
            linear(L.ffn_down, gate_.get<float>(), n, xn);
        }
        // xn: the FFN output; fused, the next layer's norm adds it to the residual
        if (!fused) add(x, xn, (int64_t)n * E, s);
    }
    if (fused) add(x, xn, (int64_t)n * E, s);

    enqueue_logits((int)out_rows.size(), out_rows);
}

// Rows that want logits: gather, final norm, output projection (x_ holds the last layer's output).
void CudaForward::enqueue_logits(int n_out, const std::vector<int>& out_rows) {
    const ModelConfig& c = m_.cfg;
    cudaStream_t s = stream_;
    const int E = c.n_embd;
    const float* x = x_.get<float>();
    if (n_out == 0) return;
    float* hid = hidden_.get<float>();
    for (int r = 0; r < n_out; r++)
        ROTOR_CUDA_CHECK(cudaMemcpyAsync(hid + (size_t)r * E, x + (size_t)out_rows[r] * E, (size_t)E * 4,
                                         cudaMemcpyDeviceToDevice, s));
    rms_norm(hid, static_cast<const float*>(output_norm_.data), hid, n_out, E, c.rms_eps, s);
    linear(output_, hid, n_out, logits_.get<float>());
}

// Only the position: a step that starts a sequence at position 0 never reads its old state (the
// Gated DeltaNet kernels start from zero there), so nothing needs clearing on the GPU.
void CudaForward::reset_seq_state(int seq) {
    if (!q35_) return;
    if (seq < 0 || seq >= opt_.n_seq) throw Error("reset_seq_state: sequence outside the cache's " + std::to_string(opt_.n_seq));
    q35_->seq_pos[seq] = 0;
}

void CudaForward::copy_seq_prefix(int src, int dst, int n) {
    if (src < 0 || src >= opt_.n_seq || dst < 0 || dst >= opt_.n_seq)
        throw Error("copy_seq_prefix: sequence outside the cache's " + std::to_string(opt_.n_seq));
    if (n < 0 || n > opt_.ctx) throw Error("copy_seq_prefix: " + std::to_string(n) + " positions is beyond the context");
    if (n == 0 || src == dst) return;
    // Layout per layer: [seq][pos][head_kv][row], so a sequence's first n positions are contiguous. A
    // sliding-window ring holds position p at p % ctx: its first min(n, ctx) slots are what src holds
    // of [0, n) (the caller keeps to prefixes the ring still has; kv_cache.h's seq_window_floor).
    for (const DevLayer& L : layers_) {
        const KvLayerView& v = L.kv;
        if (v.n_head_kv == 0) continue;
        const int cnt = std::min(n, v.ctx);
        for (const auto& [base, dim] : {std::pair<char*, int>{static_cast<char*>(v.k), v.head_dim_k},
                                        std::pair<char*, int>{static_cast<char*>(v.v), v.head_dim_v}}) {
            if (!base) continue;  // no K rows where the key comes from the value
            const size_t pos_bytes = (size_t)v.n_head_kv * kv_row_bytes(v.elem, dim);
            const size_t seq_bytes = (size_t)v.ctx * pos_bytes;
            ROTOR_CUDA_CHECK(cudaMemcpyAsync(base + (size_t)dst * seq_bytes, base + (size_t)src * seq_bytes,
                                             (size_t)cnt * pos_bytes, cudaMemcpyDeviceToDevice, stream_));
        }
    }
    ROTOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace rotor::cuda
