#include "cuda/delta_net.h"

#include <algorithm>
#include <cmath>

#include "cuda/delta_net_conv.cuh"
#include "cuda/device_common.cuh"

namespace rotor::cuda {

namespace {

constexpr int kMaxConvKernel = 64;  // as ModelConfig allows

// ---------------------------------------------------------------- step plan

// One block. Positions within a sequence are consecutive in batch order, so a token's rank in its
// sequence is pos - first_pos; sequences are laid out in order of their first token.
__global__ void seq_plan_kernel(const int32_t* __restrict__ seq, const int32_t* __restrict__ pos, int n, SeqPlan p) {
    for (int t = threadIdx.x; t < n; t += blockDim.x) {
        const int s = seq[t];
        int first = t, cnt = 0;
        for (int u = 0; u < n; u++)
            if (seq[u] == s) {
                cnt++;
                first = min(first, u);
            }
        p.first_idx[t] = first;
        p.first_pos[t] = pos[first];
        p.count[t] = cnt;
    }
    __syncthreads();
    for (int t = threadIdx.x; t < n; t += blockDim.x) {
        const int f = p.first_idx[t];
        int start = 0;
        for (int u = 0; u < n; u++) start += p.first_idx[u] < f;
        p.start[t] = start;
        p.order[start + pos[t] - p.first_pos[t]] = t;
    }
}

// ---------------------------------------------------------------- Gated DeltaNet

// Block (token t, head slot): slots 0..Hk-1 are q heads, Hk..2Hk-1 k heads, then the v heads; one thread
// per channel. w[ch][j] multiplies the input K-1-j positions back (j = K-1: the current token).
__global__ void gdn_conv_kernel(GdnShape g, const float* __restrict__ mix, float* __restrict__ out, float* ab,
                                const float* __restrict__ conv_w, const float* __restrict__ ssm_a,
                                const float* __restrict__ dt_bias, GdnState st, const int32_t* __restrict__ seq,
                                const int32_t* __restrict__ pos, SeqPlan plan, int n) {
    __shared__ float part[32];
    const int t = blockIdx.x, slot = blockIdx.y;
    const int Hk = g.n_k_heads, Hv = g.n_v_heads, dk = g.d_k, dv = g.d_v, K = g.conv_kernel, C = g.channels();
    const bool qk = slot < 2 * Hk;
    const int base = qk ? slot * dk : 2 * Hk * dk + (slot - 2 * Hk) * dv;
    const int width = qk ? dk : dv;
    const int i = threadIdx.x;
    const int p = pos[t], p0 = plan.first_pos[t], s0 = plan.start[t];
    const float* cs = st.conv + (size_t)seq[t] * st.seq_stride;
    float y = 0.0f;
    if (i < width) {
        const int ch = base + i;
        const float* w = conv_w + (size_t)ch * K;
        float acc = w[K - 1] * mix[(size_t)t * C + ch];
        for (int j = 0; j < K - 1; j++) {  // oldest first, as the CPU sums
            const int q = p - (K - 1) + j;
            float v = 0.0f;  // before position 0: nothing (a sequence at 0 starts afresh)
            if (q >= p0) v = mix[(size_t)plan.order[s0 + q - p0] * C + ch];
            else if (q >= 0) v = cs[(size_t)(q - p0 + K - 1) * C + ch];
            acc += w[j] * v;
        }
        y = siluf_(acc);
    }
    if (qk) {  // L2 norm per head as transformers/FLA: x / sqrt(sum x^2 + 1e-6); q also / sqrt(d_k)
        const float ss = block_sum(y * y, part);
        y *= (1.0f / sqrtf(ss + 1e-6f)) * (slot < Hk ? 1.0f / sqrtf((float)dk) : 1.0f);
    } else if (i == 0) {
        const int h = slot - 2 * Hk;
        float* b = ab + (size_t)t * Hv + h;
        float* a = ab + (size_t)(n + t) * Hv + h;
        *b = sigmoidf_(*b);
        *a = ssm_a[h] * softplusf_(*a + dt_bias[h]);
    }
    if (i < width) out[(size_t)t * C + base + i] = y;
}

// Block (value head h, token t0), working only when t0 is its sequence's first token of the step. The state
// S [d_k][d_v] lives in registers: thread (row group grp, column j) holds rows grp*R .. grp*R+R-1 of column
// j (columns padded to a warp, so a warp's loads of a row are contiguous). Per token, with a = exp(g):
//   u = beta (v - a S^T k);  o = a S^T q + u (k . q);  S = a S + k u^T
// (the CPU's S *= a; u = beta (v - S^T k); S += k u^T; o = S^T q, reassociated so that one reduction over
// the rows gives both S^T k and S^T q). Shared buffers alternate between tokens, so two barriers a token.
template <int R>
__global__ void __launch_bounds__(512)
    gdn_delta_kernel(GdnShape g, const float* __restrict__ mix, const float* __restrict__ cv,
                     const float* __restrict__ ab, const float* __restrict__ z, const float* __restrict__ norm_w,
                     float eps, GdnState st, const int32_t* __restrict__ seq, const int32_t* __restrict__ pos,
                     SeqPlan plan, int n, float* __restrict__ out) {
    const int h = blockIdx.x, t0 = blockIdx.y;
    if (pos[t0] != plan.first_pos[t0]) return;
    const int Hk = g.n_k_heads, Hv = g.n_v_heads, dk = g.d_k, dv = g.d_v, C = g.channels();
    const int V = g.v_dim(), kh = h % Hk;
    const int dvp = (dv + kWarp - 1) / kWarp * kWarp, G = dk / R;
    const int j = threadIdx.x % dvp, grp = threadIdx.x / dvp;
    const bool col = j < dv;
    const int sq = seq[t0], p0 = pos[t0], s0 = plan.start[t0], cnt = plan.count[t0];
    float* Sg = st.ssm + (size_t)sq * st.seq_stride + (size_t)h * dk * dv;
    extern __shared__ float sm[];
    const int buf = 2 * dk + dv + 2 * G * dvp + G;

    float S[R];
#pragma unroll
    for (int r = 0; r < R; r++) S[r] = (p0 != 0 && col) ? Sg[(size_t)(grp * R + r) * dv + j] : 0.0f;

    for (int k = 0; k < cnt; k++) {
        const int t = plan.order[s0 + k];
        float* qs = sm + (k & 1) * buf;
        float* ks = qs + dk;
        float* vs = ks + dk;
        float* rk = vs + dv;
        float* rq = rk + G * dvp;
        float* rkq = rq + G * dvp;
        const float* row = cv + (size_t)t * C;
        for (int i = threadIdx.x; i < dk; i += blockDim.x) {
            qs[i] = row[kh * dk + i];
            ks[i] = row[Hk * dk + kh * dk + i];
        }
        for (int i = threadIdx.x; i < dv; i += blockDim.x) vs[i] = row[2 * Hk * dk + h * dv + i];
        __syncthreads();
        float pk = 0.0f, pq = 0.0f, pkq = 0.0f;
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int i = grp * R + r;
            pk += S[r] * ks[i];
            pq += S[r] * qs[i];
            pkq += qs[i] * ks[i];
        }
        rk[grp * dvp + j] = pk;
        rq[grp * dvp + j] = pq;
        if (j == 0) rkq[grp] = pkq;
        __syncthreads();
        float sk = 0.0f, sqk = 0.0f, kq = 0.0f;
        for (int gg = 0; gg < G; gg++) {
            sk += rk[gg * dvp + j];
            sqk += rq[gg * dvp + j];
            kq += rkq[gg];
        }
        const float beta = ab[(size_t)t * Hv + h], a = expf(ab[(size_t)(n + t) * Hv + h]);
        const float u = col ? (vs[j] - a * sk) * beta : 0.0f;
#pragma unroll
        for (int r = 0; r < R; r++) S[r] = a * S[r] + ks[grp * R + r] * u;
        if (grp == 0 && col) out[(size_t)t * V + h * dv + j] = a * sqk + u * kq;
    }
#pragma unroll
    for (int r = 0; r < R; r++)
        if (col) Sg[(size_t)(grp * R + r) * dv + j] = S[r];

    // the conv state: this block owns the channels of v head h, and of q/k head h when h < Hk
    gdn_advance_conv(g, mix, st, plan, sq, s0, p0, cnt, h, 0, dv, h < Hk);

    // Gated RMSNorm of each token's output, a warp per token (the outputs were written by this block).
    __syncthreads();
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
    for (int k = warp; k < cnt; k += nw) {
        const int t = plan.order[s0 + k];
        float* o = out + (size_t)t * V + h * dv;
        const float* zt = z + (size_t)t * V + h * dv;
        float ss = 0.0f;
        for (int i = lane; i < dv; i += kWarp) ss += o[i] * o[i];
        ss = warp_sum(ss);
        const float scale = 1.0f / sqrtf(ss / (float)dv + eps);
        for (int i = lane; i < dv; i += kWarp) o[i] = o[i] * scale * norm_w[i] * siluf_(zt[i]);
    }
}

// Rows per thread of the delta kernel for these head sizes (0: none fits): the smallest that keeps the
// block within 512 threads (its launch bound, so that 64 rows still fit in registers).
int delta_rows_per_thread(int dk, int dv) {
    const int dvp = (dv + kWarp - 1) / kWarp * kWarp;
    for (int R : {8, 16, 32, 64})
        if (dk % R == 0 && (dk / R) * dvp <= 512) return R;
    return 0;
}

// ---------------------------------------------------------------- gated attention, residual

__global__ void gated_qk_prep_kernel(const float* qg, float* q, float* k, const float* __restrict__ q_norm,
                                     const float* __restrict__ k_norm, int H, int Hkv, int D, int n_rot, float eps,
                                     const int32_t* __restrict__ pos, const float* __restrict__ inv_freq) {
    __shared__ float part[32];
    extern __shared__ float row[];  // D floats
    const int t = blockIdx.x, slot = blockIdx.y;
    const bool is_q = slot < H;
    const float* src = is_q ? qg + ((size_t)t * H + slot) * 2 * D : k + ((size_t)t * Hkv + (slot - H)) * D;
    float* dst = is_q ? q + ((size_t)t * H + slot) * D : k + ((size_t)t * Hkv + (slot - H)) * D;
    const float* w = is_q ? q_norm : k_norm;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const float v = src[i];
        row[i] = v;
        ss += v * v;
    }
    ss = block_sum(ss, part);  // also orders every read of src before the writes below (k is in place)
    const float scale = 1.0f / sqrtf(ss / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) row[i] = row[i] * scale * w[i];
    __syncthreads();
    const int half = n_rot / 2;
    const float p = (float)pos[t];
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = row[i];
        if (i < n_rot) {  // NeoX pairs (i, i + n_rot/2)
            const int pi = i < half ? i : i - half;
            float sn, cs;
            sincosf(p * inv_freq[pi], &sn, &cs);
            const float x0 = row[pi], x1 = row[pi + half];
            v = i < half ? x0 * cs - x1 * sn : x0 * sn + x1 * cs;
        }
        dst[i] = v;
    }
}

__global__ void sigmoid_gate_kernel(float* __restrict__ attn, const float* __restrict__ qg, int H, int D, int64_t total) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int64_t th = idx / D;  // token * H + head
    const int i = (int)(idx % D);
    attn[idx] *= sigmoidf_(qg[th * 2 * D + D + i]);
}

__global__ void residual_norm_kernel(float* x, const float* y, const float* y2, const float* gate_w,
                                     const float* gate_x, const float* norm_w, float* xn, int E, float eps) {
    __shared__ float part[32];
    const size_t off = (size_t)blockIdx.x * E;
    float gs = 0.0f;
    if (y2) {
        float d = 0.0f;
        for (int i = threadIdx.x; i < E; i += blockDim.x) d += gate_w[i] * gate_x[off + i];
        gs = sigmoidf_(block_sum(d, part));
    }
    float ss = 0.0f;
    for (int i = threadIdx.x; i < E; i += blockDim.x) {
        const float add = y2 ? y[off + i] + gs * y2[off + i] : y[off + i];
        const float v = x[off + i] + add;
        x[off + i] = v;
        ss += v * v;
    }
    if (!norm_w) return;
    ss = block_sum(ss, part);  // every read of y / gate_x happened before: xn may alias them
    const float scale = 1.0f / sqrtf(ss / (float)E + eps);
    for (int i = threadIdx.x; i < E; i += blockDim.x) xn[off + i] = x[off + i] * scale * norm_w[i];
}

int threads_for(int width) { return std::min(1024, std::max(kWarp, (width + kWarp - 1) / kWarp * kWarp)); }

}  // namespace

std::string gdn_refusal(const GdnShape& g) {
    if (g.n_k_heads <= 0 || g.n_v_heads <= 0 || g.n_v_heads % g.n_k_heads)
        return "Gated DeltaNet: value heads must be a positive multiple of key heads";
    if (g.conv_kernel < 1 || g.conv_kernel > kMaxConvKernel)
        return "Gated DeltaNet: conv kernel " + std::to_string(g.conv_kernel) + " is not supported on the GPU (1.." +
               std::to_string(kMaxConvKernel) + ")";
    if (g.d_k > 1024 || g.d_v > 1024 || delta_rows_per_thread(g.d_k, g.d_v) == 0)
        return "Gated DeltaNet: head sizes d_k " + std::to_string(g.d_k) + ", d_v " + std::to_string(g.d_v) +
               " are not supported on the GPU (d_k a multiple of 8, d_k/64 x d_v within 512)";
    return "";
}

void seq_plan(const int32_t* seq, const int32_t* pos, int n, const SeqPlan& plan, cudaStream_t s) {
    if (n == 0) return;
    seq_plan_kernel<<<1, threads_for(n), 0, s>>>(seq, pos, n, plan);
    check_launch("seq_plan");
}

void gdn_conv(const GdnShape& g, const float* mix, float* out, float* ab, const float* conv_w, const float* ssm_a,
              const float* dt_bias, const GdnState& st, const int32_t* seq, const int32_t* pos, const SeqPlan& plan,
              int n, cudaStream_t s) {
    if (n == 0) return;
    const dim3 grid((unsigned)n, (unsigned)(2 * g.n_k_heads + g.n_v_heads));
    gdn_conv_kernel<<<grid, threads_for(std::max(g.d_k, g.d_v)), 0, s>>>(g, mix, out, ab, conv_w, ssm_a, dt_bias, st,
                                                                         seq, pos, plan, n);
    check_launch("gdn_conv");
}

void gdn_delta(const GdnShape& g, const float* mix, const float* conv_out, const float* ab, const float* z,
               const float* norm_w, float eps, const GdnState& st, const int32_t* seq, const int32_t* pos,
               const SeqPlan& plan, int n, float* out, cudaStream_t s) {
    if (n == 0) return;
    const int R = delta_rows_per_thread(g.d_k, g.d_v);
    const int dvp = (g.d_v + kWarp - 1) / kWarp * kWarp, G = R ? g.d_k / R : 0;
    const dim3 grid((unsigned)g.n_v_heads, (unsigned)n);
    const unsigned threads = (unsigned)(G * dvp);
    const size_t smem = 2 * sizeof(float) * (size_t)(2 * g.d_k + g.d_v + 2 * G * dvp + G);
    switch (R) {
#define ROTOR_R(N)                                                                                               \
    case N:                                                                                                      \
        gdn_delta_kernel<N><<<grid, threads, smem, s>>>(g, mix, conv_out, ab, z, norm_w, eps, st, seq, pos, plan, n, \
                                                        out);                                                    \
        break;
        ROTOR_R(8) ROTOR_R(16) ROTOR_R(32) ROTOR_R(64)
#undef ROTOR_R
        default: throw Error(gdn_refusal(g));
    }
    check_launch("gdn_delta");
}

void gated_qk_prep(const float* qg, float* q, float* k, const float* q_norm, const float* k_norm, int n, int H,
                   int Hkv, int D, int n_rot, float eps, const int32_t* pos, const float* inv_freq, cudaStream_t s) {
    if (n == 0) return;
    const dim3 grid((unsigned)n, (unsigned)(H + Hkv));
    gated_qk_prep_kernel<<<grid, threads_for(D), D * sizeof(float), s>>>(qg, q, k, q_norm, k_norm, H, Hkv, D, n_rot,
                                                                         eps, pos, inv_freq);
    check_launch("gated_qk_prep");
}

void sigmoid_gate(float* attn, const float* qg, int n, int H, int D, cudaStream_t s) {
    const int64_t total = (int64_t)n * H * D;
    if (total == 0) return;
    sigmoid_gate_kernel<<<blocks_for(total, 256), 256, 0, s>>>(attn, qg, H, D, total);
    check_launch("sigmoid_gate");
}

void residual_norm(float* x, const float* y, const float* y2, const float* gate_w, const float* gate_x,
                   const float* norm_w, float* xn, int n, int E, float eps, cudaStream_t s) {
    if (n == 0) return;
    residual_norm_kernel<<<n, threads_for(std::min(E, 1024)), 0, s>>>(x, y, y2, gate_w, gate_x, norm_w, xn, E, eps);
    check_launch("residual_norm");
}

}  // namespace rotor::cuda
