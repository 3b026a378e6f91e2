// qwen35 / qwen35moe on the GPU: the same computation as CpuForward::forward_hybrid
// (model/forward_qwen35.cpp). Per layer: x += mixer(RMSNorm(x)); x += FFN(RMSNorm(x)), where the mixer is a
// Gated DeltaNet layer (delta_net.h: conv, delta rule and gated norm in two kernels, the recurrent state
// per sequence on the GPU) or a gated full-attention layer (the shared KV cache and attention), and the
// FFN is SwiGLU or routed experts (moe.h) plus the sigmoid-gated shared expert. Each residual add is fused
// with the norm that follows it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cuda/cuda_forward_qwen35.h"
#include "cuda/delta_net_chunked.h"
#include "cuda/delta_net_fast.h"
#include "cuda/matmul_tc.h"
#include "cuda/scratch_sizes.h"

namespace rotor::cuda {

namespace {
const float* f32p(const void* p) { return static_cast<const float*>(p); }
// Fast path: steps of one sequence with at most this many tokens run the Gated DeltaNet layer as one
// kernel (gdn_step: decode); steps where a sequence has kGdnChunkedMinTokens or more (prompts) as conv + the
// chunked delta rule (delta_net_chunked.h: a 512-token prompt 351 us a layer against 1165); the others (several
// sequences of a few tokens) as conv + the token-by-token delta rule, which prefetches each next token's
// inputs. Measured on an H200 (rotor-check-qwen35 --bench, a Qwen3.5-27B layer; bench/RESULTS.md
// "Switches verified"): one token of 1 sequence 11.4 us against 13.5, but of 2 / 4 / 16 sequences 16.6 /
// 23.6 / 94.7 us against 14.4 / 22.2 / 71.3.
constexpr int kGdnStepMaxSeqTokens = 4;
// on unless set_qwen35_fast_paths(false) or ROTOR_QWEN35_FAST=0 (the benchmarks' switch) turn them off
int g_fast_paths = -1;  // -1: ROTOR_QWEN35_FAST not read yet
int g_chunked = -1;     // -1: ROTOR_GDN_CHUNKED not read yet
}  // namespace

void set_qwen35_fast_paths(bool on) { g_fast_paths = on ? 1 : 0; }
bool qwen35_fast_paths() {
    if (g_fast_paths < 0) g_fast_paths = env_switch("ROTOR_QWEN35_FAST", 1);
    return g_fast_paths == 1;
}
void set_qwen35_chunked(bool on) { g_chunked = on ? 1 : 0; }
bool qwen35_chunked() {
    if (g_chunked < 0) g_chunked = env_switch("ROTOR_GDN_CHUNKED", 1);
    return g_chunked == 1;
}

void CudaForward::init_qwen35() {
    const ModelConfig& c = m_.cfg;
    auto b = std::make_unique<Qwen35Buffers>();
    const std::string who = "CUDA forward (" + c.arch_name + "): ";
    b->gdn = GdnShape{c.ssm_n_k_heads, c.ssm_n_v_heads, c.ssm_d_k, c.ssm_d_v, c.ssm_conv_kernel};
    bool any_recurrent = false;
    for (int l = 0; l < c.n_layer_main; l++) any_recurrent = any_recurrent || c.is_recurrent(l);
    if (any_recurrent)
        if (std::string why = gdn_refusal(b->gdn); !why.empty()) throw Error(who + why);
    b->fast = qwen35_fast_paths();
    if (any_recurrent && b->fast)
        if (std::string why = gdn_fast_refusal(b->gdn); !why.empty()) throw Error(who + "fast paths: " + why);
    const size_t B = opt_.max_batch;
    const int E = c.n_embd;

    // Recurrent state, laid out as RecurrentState's per-sequence block (so snapshots are interchangeable).
    const RecurrentGeometry geo = recurrent_geometry(c);
    b->conv_off.assign(c.n_layer, 0);
    b->ssm_off.assign(c.n_layer, 0);
    for (int l = 0; l < c.n_layer; l++) {
        b->conv_off[l] = b->per_seq_floats;
        b->per_seq_floats += geo.conv_floats(l);
        b->ssm_off[l] = b->per_seq_floats;
        b->per_seq_floats += geo.ssm_floats(l);
    }
    state_bytes_per_seq_ = b->per_seq_floats * sizeof(float);
    b->state.resize(std::max<size_t>(state_bytes_per_seq_ * opt_.n_seq, 16));
    ROTOR_CUDA_CHECK(cudaMemset(b->state.get(), 0, b->state.bytes()));
    b->seq_pos.assign(opt_.n_seq, 0);

    // Activations.
    const size_t C = b->gdn.channels(), V = b->gdn.v_dim(), Hv = c.ssm_n_v_heads;
    int max_qg = 0, max_attn_in = 0;
    for (int l = 0; l < c.n_layer_main; l++)
        if (!c.is_recurrent(l)) {
            if (c.head_dim_k[l] > 512) throw Error(who + "attention head size above 512");
            max_qg = std::max(max_qg, 2 * c.q_dim(l));
            max_attn_in = std::max(max_attn_in, c.n_head[l] * c.head_dim_v[l]);
        }
    if (any_recurrent) {
        b->mix.resize(B * C * 4);
        b->conv_out.resize(B * C * 4);
        b->z.resize(B * V * 4);
        b->ab.resize(B * 2 * Hv * 4);
        b->gdn_out.resize(B * V * 4);
        if (b->fast) {
            b->gdn_scratch.resize(gdn_scratch_floats(opt_.max_batch, b->gdn) * sizeof(float));
            b->step_counters.resize(gdn_step_counters(opt_.n_seq, b->gdn) * sizeof(int));
            ROTOR_CUDA_CHECK(cudaMemset(b->step_counters.get(), 0, b->step_counters.bytes()));
            if (qwen35_chunked()) {
                if (std::string why = gdn_chunked_refusal(b->gdn); !why.empty()) {
                    fprintf(stderr, "%snote: %s; prompts run the token-by-token delta rule\n", who.c_str(), why.c_str());
                } else {
                    b->chunked = true;
                    const GdnShape& g = b->gdn;
                    int ffn = 0;  // the dense FFN's gate_ / up_ hold B x ffn floats each (cuda_forward.cu)
                    if (c.arch == Arch::Qwen35)
                        for (int l = 0; l < c.n_layer; l++) ffn = std::max(ffn, c.n_ff[l]);
                    if (gdn_chunked_extra_bytes(B, opt_.n_seq, g.n_v_heads, g.d_k, g.d_v, ffn) == 0) {
                        b->chunk_wu = gate_.get();
                        b->chunk_pc = up_.get();
                    } else {
                        const size_t wu = gdn_chunked_wu_bytes(B, g.n_v_heads, g.d_k, g.d_v);
                        b->chunk_scratch.resize(wu + gdn_chunked_pc_bytes(B, opt_.n_seq, g.n_v_heads));
                        b->chunk_wu = b->chunk_scratch.get();
                        b->chunk_pc = static_cast<char*>(b->chunk_scratch.get()) + wu;
                    }
                }
            }
        }
    }
    b->qg.resize(std::max<size_t>(B * max_qg * 4, 16));
    b->plan.resize(5 * B * 4);
    int32_t* pl = b->plan.get<int32_t>();
    b->plan_view = SeqPlan{pl, pl + B, pl + 2 * B, pl + 3 * B, pl + 4 * B};
    size_t extra = 0;
    if (c.arch == Arch::Qwen35Moe) {
        if (c.n_expert <= 0 || c.n_expert_used <= 0) throw Error(who + "no experts");
        b->moe = std::make_unique<MoeRunner>(opt_.max_batch, c.n_expert_used, E, c.n_ff_exp);
        extra += b->moe->device_bytes();
        b->router.resize(B * c.n_expert * 4);
        b->expert_ids.resize(B * c.n_expert_used * 4);
        b->expert_w.resize(B * c.n_expert_used * 4);
        b->moe_out.resize(B * E * 4);
        if (c.n_ff_shexp > 0) {
            b->sh_gate.resize(B * c.n_ff_shexp * 4);
            b->sh_up.resize(B * c.n_ff_shexp * 4);
            b->sh_out.resize(B * E * 4);
        }
    }
    for (const DeviceBuffer* d : {&b->state, &b->mix, &b->conv_out, &b->z, &b->ab, &b->gdn_out, &b->gdn_scratch,
                                  &b->step_counters, &b->chunk_scratch, &b->qg, &b->plan,
                                  &b->router, &b->expert_ids, &b->expert_w, &b->moe_out, &b->sh_gate, &b->sh_up,
                                  &b->sh_out})
        extra += d->bytes();
    extra -= b->state.bytes();  // the state is counted per sequence (state_bytes_per_seq), not here

    // The matmul scratch was sized for the llama-family inputs; the DeltaNet output projection and the
    // shared expert's down projection may have longer rows.
    int64_t max_cols = std::max<int64_t>({(int64_t)E, (int64_t)V, (int64_t)max_attn_in, (int64_t)c.n_ff_shexp});
    for (int l = 0; l < c.n_layer_main; l++) max_cols = std::max<int64_t>(max_cols, c.n_ff[l]);
    auto grow = [&](DeviceBuffer& d, size_t bytes) {
        const size_t before = d.bytes();
        d.resize(bytes);
        activation_bytes_ += d.bytes() - before;
    };
    if (!opt_.exact_matmul) grow(act_q8_, matmul_scratch_bytes(opt_.max_batch, max_cols));
    if (tc_scratch_.get()) grow(tc_scratch_, matmul_tc_scratch_bytes(opt_.max_batch, max_cols));
    activation_bytes_ += extra;
    q35_ = std::move(b);
}

void CudaForward::check_batch_qwen35(const Batch& batch) const {
    // The CPU's rule (kv/recurrent_state.h): each sequence's positions consecutive in batch order, the
    // first one 0 (a fresh start) or where its state stands.
    const int n = batch.size();
    std::vector<int> last(opt_.n_seq, -1);  // last position seen in this batch, per sequence
    for (int t = 0; t < n; t++) {
        const int s = batch.seq[t], p = batch.pos[t];
        if (last[s] >= 0) {
            if (p != last[s] + 1)
                throw Error("sequence " + std::to_string(s) + ": position " + std::to_string(p) + " follows position " +
                            std::to_string(last[s]) +
                            "; a model with recurrent layers needs consecutive positions in batch order");
        } else if (p != 0 && p != q35_->seq_pos[s]) {
            throw Error("sequence " + std::to_string(s) + ": the batch starts at position " + std::to_string(p) +
                        " but its recurrent state is at position " + std::to_string(q35_->seq_pos[s]) +
                        " (continue from there, restart at 0, or restore a copy of the state taken at " +
                        std::to_string(p) + ")");
        }
        last[s] = p;
    }
}

void CudaForward::after_step_qwen35(const Batch& batch) {
    for (int t = 0; t < batch.size(); t++) q35_->seq_pos[batch.seq[t]] = batch.pos[t] + 1;
}

void CudaForward::enqueue_qwen35(int n, int max_kv, const std::vector<int>& out_rows) {
    const ModelConfig& c = m_.cfg;
    cudaStream_t s = stream_;
    Qwen35Buffers& b = *q35_;
    const int E = c.n_embd;
    const float eps = c.rms_eps;
    float* x = x_.get<float>();
    float* xn = xn_.get<float>();
    const int32_t* seq = seq_.get<int32_t>();
    const int32_t* pos = pos_.get<int32_t>();
    const SeqPlan& plan = b.plan_view;
    if (b.fast) {  // the default path (set_qwen35_fast_paths), verified on an H200
        seq_plan(seq, pos, n, plan, s);
        // the most tokens one sequence has in this step and how many sequences it has, from the staged batch
        // (a captured graph keeps the choice made here; both paths compute the same for any batch)
        int max_seq_tokens = 0, n_seqs = 0;
        {
            const int* staged_seq = staging_ + 2 * opt_.max_batch;
            std::vector<int> per_seq(opt_.n_seq, 0);
            for (int t = 0; t < n; t++) {
                n_seqs += per_seq[staged_seq[t]] == 0;
                max_seq_tokens = std::max(max_seq_tokens, ++per_seq[staged_seq[t]]);
            }
        }
        const bool one_step_kernel = n_seqs == 1 && max_seq_tokens <= kGdnStepMaxSeqTokens;
        const bool chunked = b.chunked && max_seq_tokens >= kGdnChunkedMinTokens;
        // As enqueue_llama: on the int8 path the kernel that produces a mat-vec's input also quantizes it
        // (residual add + RMSNorm + quantization before the mixer's and the FFN's projections, SwiGLU +
        // quantization before down). pre_q8 says whether (the scratch) or not (null).
        auto pre_q8 = [&](const MatmulJob* jobs, int n_jobs, int64_t cols) -> void* {
            if (opt_.exact_matmul || !act_q8_.get() || cols % 32 || use_tensor_cores(jobs, n_jobs, cols, n)) return nullptr;
            for (int j = 0; j < n_jobs; j++)
                if (jobs[j].rows > 0 && matmul_int8_applies(jobs[j].type, jobs[j].W, cols)) return act_q8_.get();
            return nullptr;
        };
        auto run_jobs = [&](const MatmulJob* jobs, int n_jobs, int64_t cols, const float* in, void* q8) {
            if (q8) matmul_multi_q8(jobs, n_jobs, cols, in, q8, n, s);
            else linear_multi(jobs, n_jobs, cols, in, n);
        };
        // x: the residual stream; xn: a sublayer's output until the next norm adds it to x and overwrites it
        auto norm_in = [&](int l, const float* norm_w, void* q8) {
            if (l == 0) get_rows_rms_norm_q8(tok_embd_.type, tok_embd_.data, tok_.get<int32_t>(), x, norm_w, xn, n, E, eps, q8, s);
            else add_rms_norm_q8(x, xn, norm_w, xn, n, E, eps, q8, s);
        };

        for (int l = 0; l < c.n_layer_main; l++) {
            const DevLayer& L = layers_[l];
            const float* attn_norm = f32p(L.attn_norm.data);
            // ---- mixer: RMSNorm(x) -> xn
            if (c.is_recurrent(l)) {
                const GdnShape& g = b.gdn;
                float* ab = b.ab.get<float>();
                const MatmulJob jobs[] = {{L.ssm_in.type, L.ssm_in.data, L.ssm_in.rows, b.mix.get<float>()},
                                          {L.ssm_z.type, L.ssm_z.data, L.ssm_z.rows, b.z.get<float>()},
                                          {L.ssm_beta.type, L.ssm_beta.data, L.ssm_beta.rows, ab},
                                          {L.ssm_alpha.type, L.ssm_alpha.data, L.ssm_alpha.rows, ab + (size_t)n * g.n_v_heads}};
                void* q8 = pre_q8(jobs, 4, E);
                norm_in(l, attn_norm, q8);
                run_jobs(jobs, 4, E, xn, q8);
                float* st = b.state.get<float>();
                const GdnState gs{st + b.conv_off[l], st + b.ssm_off[l], b.per_seq_floats};
                if (one_step_kernel) {  // decode of one sequence: one kernel
                    gdn_step(g, b.mix.get<float>(), ab, f32p(L.ssm_conv1d.data), f32p(L.ssm_a.data), f32p(L.ssm_dt.data),
                             b.z.get<float>(), f32p(L.ssm_norm.data), eps, gs, b.step_counters.get<int>(), opt_.n_seq, seq,
                             pos, plan, n, b.gdn_out.get<float>(), b.gdn_scratch.get<float>(), s);
                } else if (chunked) {  // prompts: the chunked delta rule
                    gdn_conv(g, b.mix.get<float>(), b.conv_out.get<float>(), ab, f32p(L.ssm_conv1d.data),
                             f32p(L.ssm_a.data), f32p(L.ssm_dt.data), gs, seq, pos, plan, n, s);
                    gdn_delta_chunked(g, b.mix.get<float>(), b.conv_out.get<float>(), ab, b.z.get<float>(),
                                      f32p(L.ssm_norm.data), eps, gs, seq, pos, plan, n, opt_.n_seq,
                                      b.gdn_out.get<float>(), b.gdn_scratch.get<float>(), b.chunk_wu, b.chunk_pc, s);
                } else {
                    gdn_conv(g, b.mix.get<float>(), b.conv_out.get<float>(), ab, f32p(L.ssm_conv1d.data),
                             f32p(L.ssm_a.data), f32p(L.ssm_dt.data), gs, seq, pos, plan, n, s);
                    gdn_delta_sliced(g, b.mix.get<float>(), b.conv_out.get<float>(), ab, b.z.get<float>(),
                                     f32p(L.ssm_norm.data), eps, gs, seq, pos, plan, n, b.gdn_out.get<float>(),
                                     b.gdn_scratch.get<float>(), s);
                }
                linear(L.ssm_out, b.gdn_out.get<float>(), n, xn);
            } else {
                const int H = c.n_head[l], Hkv = c.n_head_kv[l], D = c.head_dim_k[l];
                float* qg = b.qg.get<float>();
                float* q = q_.get<float>();
                float* k = k_.get<float>();
                float* v = v_.get<float>();
                float* attn = attn_.get<float>();
                const MatmulJob jobs[] = {{L.wq.type, L.wq.data, L.wq.rows, qg},
                                          {L.wk.type, L.wk.data, L.wk.rows, k},
                                          {L.wv.type, L.wv.data, L.wv.rows, v}};
                void* q8 = pre_q8(jobs, 3, E);
                norm_in(l, attn_norm, q8);
                run_jobs(jobs, 3, E, xn, q8);
                gated_qk_prep(qg, q, k, f32p(L.q_norm.data), f32p(L.k_norm.data), n, H, Hkv, D, c.n_rot, eps, pos,
                              inv_freq_.get<float>(), s);
                kv_store(L.kv, k, v, seq, pos, n, s);  // rotates K and V itself for the *h types
                const bool rotated = kv_elem_rotated(L.kv.elem);
                if (rotated) kv_rotate_rows(L.kv.elem, q, n * H, D, false, s);  // attention runs in the rotated basis
                attend(L.kv, q, attn, n, H, 1.0f / std::sqrt((float)D), max_kv);
                if (rotated) kv_rotate_rows(L.kv.elem, attn, n * H, D, true, s);
                sigmoid_gate(attn, qg, n, H, D, s);
                linear(L.wo, attn, n, xn);
            }

            // ---- FFN: RMSNorm(x + mixer) -> xn
            const float* ffn_norm = f32p(L.ffn_norm.data);
            if (c.arch == Arch::Qwen35Moe) {
                const int NE = c.n_expert, top = c.n_expert_used;
                const bool shared = L.ffn_gate_shexp.data != nullptr;
                const MatmulJob sh_jobs[] = {{L.ffn_gate_shexp.type, L.ffn_gate_shexp.data, L.ffn_gate_shexp.rows, b.sh_gate.get<float>()},
                                             {L.ffn_up_shexp.type, L.ffn_up_shexp.data, L.ffn_up_shexp.rows, b.sh_up.get<float>()}};
                void* q8 = shared ? pre_q8(sh_jobs, 2, E) : nullptr;
                add_rms_norm_q8(x, xn, ffn_norm, xn, n, E, eps, q8, s);
                // the router in f32 on every path: a rounded logit could change the experts chosen
                matmul(L.ffn_gate_inp.type, L.ffn_gate_inp.data, NE, E, xn, n, b.router.get<float>(), s, nullptr);
                moe_route(b.router.get<float>(), n, NE, top, nullptr, b.expert_ids.get<int32_t>(), b.expert_w.get<float>(), s);
                auto expert_matrix = [&](const DevWeight& w) {
                    return w.data ? ExpertMatrix{w.type, w.data, w.rows / NE, w.cols} : ExpertMatrix{};
                };
                ExpertWeights ew;
                ew.gate = expert_matrix(L.ffn_gate_exps);
                ew.up = expert_matrix(L.ffn_up_exps);
                ew.gate_up = expert_matrix(L.ffn_gate_up_exps);
                ew.down = expert_matrix(L.ffn_down_exps);
                ew.n_expert = NE;
                ew.n_ff = c.n_ff_exp;
                ew.n_embd = E;
                ew.gelu = false;
                b.moe->run(ew, xn, n, b.expert_ids.get<int32_t>(), b.expert_w.get<float>(), b.moe_out.get<float>(), s);
                if (shared) {
                    run_jobs(sh_jobs, 2, E, xn, q8);
                    const int ffs = (int)L.ffn_gate_shexp.rows;
                    const MatmulJob down{L.ffn_down_shexp.type, L.ffn_down_shexp.data, L.ffn_down_shexp.rows, b.sh_out.get<float>()};
                    if (void* q8d = pre_q8(&down, 1, ffs)) {
                        swiglu_q8(b.sh_gate.get<float>(), b.sh_up.get<float>(), n, ffs, q8d, s);
                        matmul_q8(down.type, down.W, down.rows, ffs, b.sh_gate.get<float>(), q8d, n, down.Y, s);
                    } else {
                        swiglu(b.sh_gate.get<float>(), b.sh_up.get<float>(), (int64_t)n * ffs, s);
                        linear(L.ffn_down_shexp, b.sh_gate.get<float>(), n, down.Y);
                    }
                }
                // xn = routed + sigmoid(w_shexp . xn) * shared (xn, the FFN input, read first)
                moe_combine(xn, b.moe_out.get<float>(), shared ? b.sh_out.get<float>() : nullptr,
                            shared ? f32p(L.ffn_gate_inp_shexp.data) : nullptr, n, E, s);
            } else {
                const int ff = c.n_ff[l];
                const MatmulJob gate_up[] = {{L.ffn_gate.type, L.ffn_gate.data, L.ffn_gate.rows, gate_.get<float>()},
                                             {L.ffn_up.type, L.ffn_up.data, L.ffn_up.rows, up_.get<float>()}};
                void* q8 = pre_q8(gate_up, 2, E);
                add_rms_norm_q8(x, xn, ffn_norm, xn, n, E, eps, q8, s);
                run_jobs(gate_up, 2, E, xn, q8);
                const MatmulJob down{L.ffn_down.type, L.ffn_down.data, L.ffn_down.rows, xn};
                if (void* q8d = pre_q8(&down, 1, ff)) {
                    swiglu_q8(gate_.get<float>(), up_.get<float>(), n, ff, q8d, s);
                    matmul_q8(down.type, down.W, down.rows, ff, gate_.get<float>(), q8d, n, xn, s);
                } else {
                    swiglu(gate_.get<float>(), up_.get<float>(), (int64_t)n * ff, s);
                    linear(L.ffn_down, gate_.get<float>(), n, xn);
                }
            }
            // xn: the FFN output, added to the residual by the next layer's norm (or below)
        }
        add(x, xn, (int64_t)n * E, s);  // (read_hybrid keeps n_layer_main >= 1)
        enqueue_logits((int)out_rows.size(), out_rows);
        return;
    }
    get_rows(tok_embd_.type, tok_embd_.data, E, tok_.get<int32_t>(), n, x, s);
    seq_plan(seq, pos, n, plan, s);
    if (c.n_layer_main > 0) rms_norm(x, f32p(layers_[0].attn_norm.data), xn, n, E, eps, s);

    for (int l = 0; l < c.n_layer_main; l++) {
        const DevLayer& L = layers_[l];
        // ---- mixer: xn -> xn
        if (c.is_recurrent(l)) {
            const GdnShape& g = b.gdn;
            float* ab = b.ab.get<float>();
            const MatmulJob jobs[] = {{L.ssm_in.type, L.ssm_in.data, L.ssm_in.rows, b.mix.get<float>()},
                                      {L.ssm_z.type, L.ssm_z.data, L.ssm_z.rows, b.z.get<float>()},
                                      {L.ssm_beta.type, L.ssm_beta.data, L.ssm_beta.rows, ab},
                                      {L.ssm_alpha.type, L.ssm_alpha.data, L.ssm_alpha.rows, ab + (size_t)n * g.n_v_heads}};
            linear_multi(jobs, 4, E, xn, n);
            float* st = b.state.get<float>();
            const GdnState gs{st + b.conv_off[l], st + b.ssm_off[l], b.per_seq_floats};
            gdn_conv(g, b.mix.get<float>(), b.conv_out.get<float>(), ab, f32p(L.ssm_conv1d.data), f32p(L.ssm_a.data),
                     f32p(L.ssm_dt.data), gs, seq, pos, plan, n, s);
            gdn_delta(g, b.mix.get<float>(), b.conv_out.get<float>(), ab, b.z.get<float>(), f32p(L.ssm_norm.data), eps,
                      gs, seq, pos, plan, n, b.gdn_out.get<float>(), s);
            linear(L.ssm_out, b.gdn_out.get<float>(), n, xn);
        } else {
            const int H = c.n_head[l], Hkv = c.n_head_kv[l], D = c.head_dim_k[l];
            float* qg = b.qg.get<float>();
            float* q = q_.get<float>();
            float* k = k_.get<float>();
            float* v = v_.get<float>();
            float* attn = attn_.get<float>();
            const MatmulJob jobs[] = {{L.wq.type, L.wq.data, L.wq.rows, qg},
                                      {L.wk.type, L.wk.data, L.wk.rows, k},
                                      {L.wv.type, L.wv.data, L.wv.rows, v}};
            linear_multi(jobs, 3, E, xn, n);
            gated_qk_prep(qg, q, k, f32p(L.q_norm.data), f32p(L.k_norm.data), n, H, Hkv, D, c.n_rot, eps, pos,
                          inv_freq_.get<float>(), s);
            kv_store(L.kv, k, v, seq, pos, n, s);  // rotates K and V itself for the *h types
            const bool rotated = kv_elem_rotated(L.kv.elem);
            if (rotated) kv_rotate_rows(L.kv.elem, q, n * H, D, false, s);  // attention runs in the rotated basis
            attend(L.kv, q, attn, n, H, 1.0f / std::sqrt((float)D), max_kv);
            if (rotated) kv_rotate_rows(L.kv.elem, attn, n * H, D, true, s);
            sigmoid_gate(attn, qg, n, H, D, s);
            linear(L.wo, attn, n, xn);
        }
        residual_norm(x, xn, nullptr, nullptr, nullptr, f32p(L.ffn_norm.data), xn, n, E, eps, s);

        // ---- FFN: xn -> x += ..., then the next layer's input norm
        const float* next_norm = l + 1 < c.n_layer_main ? f32p(layers_[l + 1].attn_norm.data) : nullptr;
        if (c.arch == Arch::Qwen35Moe) {
            const int NE = c.n_expert, top = c.n_expert_used;
            // the router in f32 on every path: a rounded logit could change the experts chosen
            matmul(L.ffn_gate_inp.type, L.ffn_gate_inp.data, NE, E, xn, n, b.router.get<float>(), s, nullptr);
            moe_route(b.router.get<float>(), n, NE, top, nullptr, b.expert_ids.get<int32_t>(), b.expert_w.get<float>(), s);
            auto expert_matrix = [&](const DevWeight& w) {
                return w.data ? ExpertMatrix{w.type, w.data, w.rows / NE, w.cols} : ExpertMatrix{};
            };
            ExpertWeights ew;
            ew.gate = expert_matrix(L.ffn_gate_exps);
            ew.up = expert_matrix(L.ffn_up_exps);
            ew.gate_up = expert_matrix(L.ffn_gate_up_exps);
            ew.down = expert_matrix(L.ffn_down_exps);
            ew.n_expert = NE;
            ew.n_ff = c.n_ff_exp;
            ew.n_embd = E;
            ew.gelu = false;
            b.moe->run(ew, xn, n, b.expert_ids.get<int32_t>(), b.expert_w.get<float>(), b.moe_out.get<float>(), s);
            if (L.ffn_gate_shexp.data) {
                const MatmulJob jobs[] = {{L.ffn_gate_shexp.type, L.ffn_gate_shexp.data, L.ffn_gate_shexp.rows, b.sh_gate.get<float>()},
                                          {L.ffn_up_shexp.type, L.ffn_up_shexp.data, L.ffn_up_shexp.rows, b.sh_up.get<float>()}};
                linear_multi(jobs, 2, E, xn, n);
                swiglu(b.sh_gate.get<float>(), b.sh_up.get<float>(), (int64_t)n * L.ffn_gate_shexp.rows, s);
                linear(L.ffn_down_shexp, b.sh_gate.get<float>(), n, b.sh_out.get<float>());
                residual_norm(x, b.moe_out.get<float>(), b.sh_out.get<float>(), f32p(L.ffn_gate_inp_shexp.data), xn,
                              next_norm, xn, n, E, eps, s);
            } else {
                residual_norm(x, b.moe_out.get<float>(), nullptr, nullptr, nullptr, next_norm, xn, n, E, eps, s);
            }
        } else {
            const MatmulJob gate_up[] = {{L.ffn_gate.type, L.ffn_gate.data, L.ffn_gate.rows, gate_.get<float>()},
                                         {L.ffn_up.type, L.ffn_up.data, L.ffn_up.rows, up_.get<float>()}};
            linear_multi(gate_up, 2, E, xn, n);
            swiglu(gate_.get<float>(), up_.get<float>(), (int64_t)n * c.n_ff[l], s);
            linear(L.ffn_down, gate_.get<float>(), n, xn);
            residual_norm(x, xn, nullptr, nullptr, nullptr, next_norm, xn, n, E, eps, s);
        }
    }
    enqueue_logits((int)out_rows.size(), out_rows);
}

// ---- the state API (host copies; each call finishes before it returns)

namespace {
void check_seq(int seq, int n_seq, const char* what) {
    if (seq < 0 || seq >= n_seq)
        throw Error(std::string(what) + ": sequence " + std::to_string(seq) + " is outside the cache's " +
                    std::to_string(n_seq) + " sequences");
}
}  // namespace

int CudaForward::seq_state_pos(int seq) const {
    if (!q35_) return 0;
    check_seq(seq, opt_.n_seq, "seq_state_pos");
    return q35_->seq_pos[seq];
}

void CudaForward::copy_seq_state(int src, int dst) {
    if (!q35_) return;
    check_seq(src, opt_.n_seq, "copy_seq_state");
    check_seq(dst, opt_.n_seq, "copy_seq_state");
    if (src == dst) return;
    char* base = q35_->state.get<char>();
    ROTOR_CUDA_CHECK(cudaMemcpyAsync(base + (size_t)dst * state_bytes_per_seq_, base + (size_t)src * state_bytes_per_seq_,
                                     state_bytes_per_seq_, cudaMemcpyDeviceToDevice, stream_));
    ROTOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    q35_->seq_pos[dst] = q35_->seq_pos[src];
}

void CudaForward::save_seq_state(int seq, std::vector<uint8_t>& host) const {
    if (!q35_) {
        host.clear();
        return;
    }
    check_seq(seq, opt_.n_seq, "save_seq_state");
    host.resize(state_bytes_per_seq_);
    ROTOR_CUDA_CHECK(cudaMemcpyAsync(host.data(), q35_->state.get<char>() + (size_t)seq * state_bytes_per_seq_,
                                     state_bytes_per_seq_, cudaMemcpyDeviceToHost, stream_));
    ROTOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaForward::load_seq_state(int seq, const std::vector<uint8_t>& host, int pos) {
    if (!q35_) throw Error("load_seq_state: this model has no recurrent state");
    check_seq(seq, opt_.n_seq, "load_seq_state");
    if (host.size() != state_bytes_per_seq_ || pos < 0 || pos > opt_.ctx)
        throw Error("load_seq_state: the state does not match this model (" + std::to_string(host.size()) + " bytes, " +
                    std::to_string(state_bytes_per_seq_) + " expected) or position " + std::to_string(pos) +
                    " is outside the context");
    ROTOR_CUDA_CHECK(cudaMemcpyAsync(q35_->state.get<char>() + (size_t)seq * state_bytes_per_seq_, host.data(),
                                     state_bytes_per_seq_, cudaMemcpyHostToDevice, stream_));
    ROTOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    q35_->seq_pos[seq] = pos;
}

}  // namespace rotor::cuda
