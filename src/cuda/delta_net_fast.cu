// The fast Gated DeltaNet kernels (delta_net_fast.h): d_v split into column slices, decode of one sequence
// as one kernel. CudaForward's default since they passed rotor-check-qwen35 on an H200 (2026-11-29).
#include "cuda/delta_net_fast.h"

#include <algorithm>
#include <cmath>

#include "cuda/delta_net_conv.cuh"
#include "cuda/device_common.cuh"
#include "cuda/pdl.cuh"

namespace rotor::cuda {

namespace {

constexpr int kMaxConvKernel = 4;  // gdn_step keeps K-1 inputs in registers (Qwen3.5: 4)

// The delta-rule kernels split each value head's d_v columns into slices of kSlice: block (value head h,
// token t0, column slice), working only when t0 is its sequence's first token of the step (it then runs
// all of the sequence's tokens in order). The columns of S are independent in the delta rule, so the
// slices need no communication, and a decode step has n_v_heads x d_v/kSlice blocks instead of n_v_heads.
// Thread (row group grp, column jl) holds S rows grp*R .. grp*R+R-1 of column slice*kSlice + jl in
// registers (a warp's loads of a row are contiguous). Per token, with a = exp(g):
//   u = beta (v - a S^T k);  o = a S^T q + u (k . q);  S = a S + k u^T
// (the CPU's S *= a; u = beta (v - S^T k); S += k u^T; o = S^T q, reassociated so that one reduction over
// the row groups gives both S^T k and S^T q); token buffers in shared memory alternate, so two barriers a
// token. The gated RMSNorm's sum of o^2 spans the slices: each writes y = o * norm_w * SiLU(z) and its
// part of the sum (part_ss [n][n_v_heads][slices]); y is scaled by 1/rms once every slice is done.
constexpr int kSlice = kWarp;

// Floats of one token's shared buffer: q [dk], k [dk], v [kSlice], the row groups' partial S^T k and
// S^T q [G][kSlice], and per group q.k, q.q, k.k; a multiple of 4, so that each buffer is 16-byte aligned.
__host__ __device__ inline int delta_buf_floats(int dk, int G) {
    return (2 * dk + kSlice + 2 * G * kSlice + 3 * G + 3) / 4 * 4;
}

// This thread's rows against k and q (16-byte shared loads), and the group's q.k, q.q, k.k.
template <int R>
__device__ inline void rows_dot(const float (&S)[R], const float* qs, const float* ks, int grp, float& pk, float& pq,
                                float& pkq, float& pqq, float& pkk) {
    const float4* q4 = reinterpret_cast<const float4*>(qs + grp * R);
    const float4* k4 = reinterpret_cast<const float4*>(ks + grp * R);
#pragma unroll
    for (int r = 0; r < R / 4; r++) {
        const float4 qv = q4[r], kv = k4[r];
        pk += S[4 * r] * kv.x + S[4 * r + 1] * kv.y + S[4 * r + 2] * kv.z + S[4 * r + 3] * kv.w;
        pq += S[4 * r] * qv.x + S[4 * r + 1] * qv.y + S[4 * r + 2] * qv.z + S[4 * r + 3] * qv.w;
        pkq += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
        pqq += qv.x * qv.x + qv.y * qv.y + qv.z * qv.z + qv.w * qv.w;
        pkk += kv.x * kv.x + kv.y * kv.y + kv.z * kv.z + kv.w * kv.w;
    }
}

// S = a S + k uk^T for this thread's rows.
template <int R>
__device__ inline void rows_update(float (&S)[R], const float* ks, int grp, float a, float uk) {
    const float4* k4 = reinterpret_cast<const float4*>(ks + grp * R);
#pragma unroll
    for (int r = 0; r < R / 4; r++) {
        const float4 kv = k4[r];
        S[4 * r] = a * S[4 * r] + kv.x * uk;
        S[4 * r + 1] = a * S[4 * r + 1] + kv.y * uk;
        S[4 * r + 2] = a * S[4 * r + 2] + kv.z * uk;
        S[4 * r + 3] = a * S[4 * r + 3] + kv.w * uk;
    }
}

// The prompt path: q and k come normalized from gdn_conv, beta and g computed; the rescale is gdn_rescale's.
template <int R>
__global__ void __launch_bounds__(256)
    gdn_delta_kernel(GdnShape g, const float* __restrict__ mix, const float* __restrict__ cv,
                     const float* __restrict__ ab, const float* __restrict__ z, const float* __restrict__ norm_w,
                     GdnState st, const int32_t* __restrict__ seq, const int32_t* __restrict__ pos, SeqPlan plan, int n,
                     float* __restrict__ out, float* __restrict__ part_ss) {
    const int h = blockIdx.x, t0 = blockIdx.y, slice = blockIdx.z, NS = gridDim.z;
    if (pos[t0] != plan.first_pos[t0]) return;
    const int Hk = g.n_k_heads, Hv = g.n_v_heads, dk = g.d_k, dv = g.d_v, C = g.channels();
    const int V = g.v_dim(), kh = h % Hk, G = dk / R;
    const int jl = threadIdx.x % kSlice, grp = threadIdx.x / kSlice, j = slice * kSlice + jl;
    const bool col = j < dv;
    const int sq = seq[t0], p0 = pos[t0], s0 = plan.start[t0], cnt = plan.count[t0];
    float* Sg = st.ssm + (size_t)sq * st.seq_stride + (size_t)h * dk * dv;
    extern __shared__ float4 sm4[];
    float* sm = reinterpret_cast<float*>(sm4);
    const int buf = delta_buf_floats(dk, G);

    float S[R];
#pragma unroll
    for (int r = 0; r < R; r++) S[r] = (p0 != 0 && col) ? Sg[(size_t)(grp * R + r) * dv + j] : 0.0f;

    // Token k+1's inputs are loaded into registers while token k is computed (a thread per element of q
    // and k: blockDim >= d_k), so a token costs two barriers, not a memory round trip.
    const int i_in = threadIdx.x;
    const bool v_in = i_in < kSlice && slice * kSlice + i_in < dv;
    float nq = 0.0f, nk = 0.0f, nv = 0.0f, nz = 0.0f, nbeta = 0.0f, ng = 0.0f;
#define ROTOR_GDN_PREFETCH(T)                                                   \
    {                                                                           \
        const int tp = (T);                                                     \
        const float* row = cv + (size_t)tp * C;                                 \
        if (i_in < dk) {                                                        \
            nq = row[kh * dk + i_in];                                           \
            nk = row[Hk * dk + kh * dk + i_in];                                 \
        }                                                                       \
        if (v_in) {                                                             \
            nv = row[2 * Hk * dk + h * dv + slice * kSlice + i_in];             \
            nz = z[(size_t)tp * V + h * dv + slice * kSlice + i_in];            \
        }                                                                       \
        nbeta = ab[(size_t)tp * Hv + h];                                        \
        ng = ab[(size_t)(n + tp) * Hv + h];                                     \
    }
    ROTOR_GDN_PREFETCH(plan.order[s0])
    for (int k = 0; k < cnt; k++) {
        const int t = plan.order[s0 + k];
        float* qs = sm + (k & 1) * buf;
        float* ks = qs + dk;
        float* vs = ks + dk;
        float* rk = vs + kSlice;
        float* rq = rk + G * kSlice;
        float* rd = rq + G * kSlice;
        if (i_in < dk) qs[i_in] = nq, ks[i_in] = nk;
        if (i_in < kSlice) vs[i_in] = nv;
        const float zj = nz, beta = nbeta, a = expf(ng);  // zj: lane jl of warp 0 holds column j's
        if (k + 1 < cnt) ROTOR_GDN_PREFETCH(plan.order[s0 + k + 1])
#undef ROTOR_GDN_PREFETCH
        __syncthreads();
        float pk = 0.0f, pq = 0.0f, pkq = 0.0f, pqq = 0.0f, pkk = 0.0f;
        rows_dot<R>(S, qs, ks, grp, pk, pq, pkq, pqq, pkk);
        rk[grp * kSlice + jl] = pk;
        rq[grp * kSlice + jl] = pq;
        if (jl == 0) rd[3 * grp] = pkq;
        __syncthreads();
        float sk = 0.0f, sqk = 0.0f, kq = 0.0f;
        for (int gg = 0; gg < G; gg++) {
            sk += rk[gg * kSlice + jl];
            sqk += rq[gg * kSlice + jl];
            kq += rd[3 * gg];
        }
        const float u = col ? (vs[jl] - a * sk) * beta : 0.0f;
        const float o = a * sqk + u * kq;
        rows_update<R>(S, ks, grp, a, u);
        if (grp == 0) {
            const float ss = warp_sum(col ? o * o : 0.0f);
            if (col) out[(size_t)t * V + h * dv + j] = o * norm_w[j] * siluf_(zj);
            if (jl == 0) part_ss[((size_t)t * Hv + h) * NS + slice] = ss;
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++)
        if (col) Sg[(size_t)(grp * R + r) * dv + j] = S[r];

    // the conv state: this block owns its slice's v channels, and slice 0 of head h < Hk the q/k channels of key
    // head h
    gdn_advance_conv(g, mix, st, plan, sq, s0, p0, cnt, h, slice * kSlice, min(kSlice, dv - slice * kSlice),
                     slice == 0 && h < Hk);
}

// y *= 1/rms(o) per (token, value head): block (token t), a warp per head.
__global__ void gdn_rescale_kernel(float* __restrict__ out, const float* __restrict__ part_ss, int Hv, int dv, int NS,
                                   float eps) {
    pdl_trigger();  // the output projection's mat-vec may start copying its weights
    const int t = blockIdx.x, lane = threadIdx.x % kWarp;
    for (int h = threadIdx.x / kWarp; h < Hv; h += blockDim.x / kWarp) {
        const float* ps = part_ss + ((size_t)t * Hv + h) * NS;
        float ss = 0.0f;
        for (int s = 0; s < NS; s++) ss += ps[s];
        const float scale = 1.0f / sqrtf(ss / (float)dv + eps);
        float* y = out + ((size_t)t * Hv + h) * dv;
        for (int i = lane; i < dv; i += kWarp) y[i] *= scale;
    }
}

// The whole layer step in one kernel, for short steps (decode): the blocks of gdn_delta_kernel, each also
// running, per token, the conv of the channels it reads (q/k head kh = h % Hk and its v columns; the blocks
// sharing kh compute their q/k conv redundantly), with the q/k L2 norms folded into the rows' reduction
// (S^T k^ = S^T k / |k|, ...): three barriers a token, no intermediate buffers, a thread per conv channel.
// The conv state of a slice's v columns is its block's; that of q/k head kh is advanced by the last block
// reading it to finish, and the rescale of head h's outputs is done by the last of its slices (atomic
// counters per (sequence, key head) and per (sequence, value head), reset by that block).
template <int R>
__global__ void __launch_bounds__(1024)
    gdn_step_kernel(GdnShape g, const float* __restrict__ mix, const float* __restrict__ ab,
                    const float* __restrict__ conv_w, const float* __restrict__ ssm_a,
                    const float* __restrict__ dt_bias, const float* __restrict__ z, const float* __restrict__ norm_w,
                    float eps, GdnState st, int* __restrict__ qk_done, int* __restrict__ head_done,
                    const int32_t* __restrict__ seq, const int32_t* __restrict__ pos, SeqPlan plan, int n,
                    float* __restrict__ out, float* __restrict__ part_ss) {
    pdl_trigger();  // the output projection's mat-vec may start copying its weights
    const int h = blockIdx.x, t0 = blockIdx.y, slice = blockIdx.z, NS = gridDim.z;
    if (pos[t0] != plan.first_pos[t0]) return;
    const int Hk = g.n_k_heads, Hv = g.n_v_heads, dk = g.d_k, dv = g.d_v, K = g.conv_kernel, C = g.channels();
    const int V = g.v_dim(), kh = h % Hk, G = dk / R;
    const int jl = threadIdx.x % kSlice, grp = threadIdx.x / kSlice, j = slice * kSlice + jl;
    const bool col = j < dv;
    const int sq = seq[t0], p0 = pos[t0], s0 = plan.start[t0], cnt = plan.count[t0];
    float* Sg = st.ssm + (size_t)sq * st.seq_stride + (size_t)h * dk * dv;
    float* cs = st.conv + (size_t)sq * st.seq_stride;
    const int nvc = min(kSlice, dv - slice * kSlice), nch = 2 * dk + nvc;  // <= blockDim (delta_rows_per_thread)
    const int c_in = threadIdx.x;  // this thread's conv channel: q head kh, k head kh, then the slice's v columns
    const int ch = c_in < dk ? kh * dk + c_in
                             : (c_in < 2 * dk ? Hk * dk + kh * dk + (c_in - dk) : 2 * Hk * dk + h * dv + slice * kSlice + (c_in - 2 * dk));
    extern __shared__ float4 sm4[];
    float* sm = reinterpret_cast<float*>(sm4);
    const int buf = delta_buf_floats(dk, G);
    const float qscale = 1.0f / sqrtf((float)dk);
    float keep[kMaxConvKernel - 1];  // the last token's conv inputs: the new conv state of channel ch

    float S[R];
#pragma unroll
    for (int r = 0; r < R; r++) S[r] = (p0 != 0 && col) ? Sg[(size_t)(grp * R + r) * dv + j] : 0.0f;

    for (int k = 0; k < cnt; k++) {
        const int t = plan.order[s0 + k], p = p0 + k;
        float* xs = sm + (k & 1) * buf;  // q [dk], k [dk], v [kSlice]: conv outputs, q/k not yet normalized
        float* rk = xs + 2 * dk + kSlice;
        float* rq = rk + G * kSlice;
        float* rd = rq + G * kSlice;  // [G][3]: q.k, q.q, k.k
        if (c_in < nch) {
            const float* w = conv_w + (size_t)ch * K;
            const float cur = mix[(size_t)t * C + ch];
            float acc = w[K - 1] * cur;
            float win[kMaxConvKernel];  // inputs at positions p-K+1 .. p-1 (oldest first), then cur
#pragma unroll
            for (int i = 0; i < kMaxConvKernel - 1; i++) {
                const int q = p - (K - 1) + i;
                float v = 0.0f;
                if (i < K - 1) {
                    if (q >= p0) v = mix[(size_t)plan.order[s0 + q - p0] * C + ch];
                    else if (q >= 0) v = cs[(size_t)(q - p0 + K - 1) * C + ch];
                    acc += w[i] * v;
                }
                win[i] = v;
            }
            win[kMaxConvKernel - 1] = 0.0f;
#pragma unroll
            for (int i = 0; i < kMaxConvKernel - 1; i++) keep[i] = i + 1 < K - 1 ? win[i + 1] : (i + 1 == K - 1 ? cur : 0.0f);
            xs[c_in] = siluf_(acc);
        }
        const float zj = (grp == 0 && col) ? z[(size_t)t * V + h * dv + j] : 0.0f;
        const float beta = sigmoidf_(ab[(size_t)t * Hv + h]);
        const float a = expf(ssm_a[h] * softplusf_(ab[(size_t)(n + t) * Hv + h] + dt_bias[h]));
        __syncthreads();
        const float* qs = xs;
        const float* ks = xs + dk;
        float pk = 0.0f, pq = 0.0f, pkq = 0.0f, pqq = 0.0f, pkk = 0.0f;
        rows_dot<R>(S, qs, ks, grp, pk, pq, pkq, pqq, pkk);
        rk[grp * kSlice + jl] = pk;
        rq[grp * kSlice + jl] = pq;
        if (jl == 0) rd[3 * grp] = pkq, rd[3 * grp + 1] = pqq, rd[3 * grp + 2] = pkk;
        __syncthreads();
        float sk = 0.0f, sqk = 0.0f, kq = 0.0f, qq = 0.0f, kk = 0.0f;
        for (int gg = 0; gg < G; gg++) {
            sk += rk[gg * kSlice + jl];
            sqk += rq[gg * kSlice + jl];
            kq += rd[3 * gg];
            qq += rd[3 * gg + 1];
            kk += rd[3 * gg + 2];
        }
        // L2 norms as transformers/FLA: x / sqrt(sum x^2 + 1e-6); q also / sqrt(d_k)
        const float iq = qscale / sqrtf(qq + 1e-6f), ik = 1.0f / sqrtf(kk + 1e-6f);
        const float u = col ? (xs[2 * dk + jl] - a * sk * ik) * beta : 0.0f;
        const float o = a * sqk * iq + u * kq * iq * ik;
        rows_update<R>(S, ks, grp, a, u * ik);
        if (grp == 0) {
            const float ss = warp_sum(col ? o * o : 0.0f);
            if (col) out[(size_t)t * V + h * dv + j] = o * norm_w[j] * siluf_(zj);
            if (jl == 0) part_ss[((size_t)t * Hv + h) * NS + slice] = ss;
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++)
        if (col) Sg[(size_t)(grp * R + r) * dv + j] = S[r];
    // the conv state of channel ch: this slice's v columns now, the q/k channels by the last reader below
    const bool own_channel = c_in >= 2 * dk && c_in < nch;
    if (own_channel) {
#pragma unroll
        for (int i = 0; i < kMaxConvKernel - 1; i++)
            if (i < K - 1) cs[(size_t)i * C + ch] = keep[i];
    }

    __shared__ int last_qk, last_head;
    __threadfence();  // the outputs and partial sums above, before the counters say this block is done
    __syncthreads();  // and every read of the q/k conv state by this block is done (its values were used)
    if (threadIdx.x == 0) {
        int* dq = qk_done + (size_t)sq * Hk + kh;
        last_qk = atomicAdd(dq, 1) == (Hv / Hk) * NS - 1;
        if (last_qk) *dq = 0;  // for the next layer (a later launch)
        int* dh = head_done + (size_t)sq * Hv + h;
        last_head = atomicAdd(dh, 1) == NS - 1;
        if (last_head) *dh = 0;
    }
    __syncthreads();
    if (last_qk && c_in < 2 * dk) {
#pragma unroll
        for (int i = 0; i < kMaxConvKernel - 1; i++)
            if (i < K - 1) cs[(size_t)i * C + ch] = keep[i];
    }
    if (last_head) {  // every slice's y and part of the sum are written: y *= 1/rms(o), a warp per token
        __threadfence();
        const int lane = threadIdx.x % kWarp;
        for (int k = threadIdx.x / kWarp; k < cnt; k += blockDim.x / kWarp) {
            const int t = plan.order[s0 + k];
            const float* ps = part_ss + ((size_t)t * Hv + h) * NS;
            float ss = 0.0f;
            for (int s = 0; s < NS; s++) ss += __ldcg(ps + s);
            const float scale = 1.0f / sqrtf(ss / (float)dv + eps);
            float* y = out + (size_t)t * V + h * dv;
            for (int i = lane; i < dv; i += kWarp) y[i] = __ldcg(y + i) * scale;
        }
    }
}

// Rows per thread (R) of the delta-rule kernels for these head sizes, 0 when none fits. gdn_delta: at most 256
// threads (G * kSlice, G = d_k / R row groups), at least one per element of q and k (its prefetch).
// gdn_step: at least one thread per conv channel it runs (2 d_k + kSlice), at most 1024.
int delta_rows_per_thread(int dk, int dv, bool step) {
    for (int R : {8, 16, 32})
        if (dk % R == 0) {
            const int threads = dk / R * kSlice;
            if (!step && threads <= 256 && threads >= dk) return R;
            if (step && threads <= 1024 && threads >= 2 * dk + std::min(kSlice, dv)) return R;
        }
    return 0;
}
int delta_slices(int dv) { return (dv + kSlice - 1) / kSlice; }

__global__ void moe_combine_kernel(float* y, const float* __restrict__ routed, const float* __restrict__ shared,
                                   const float* __restrict__ gate_w, int E) {
    pdl_trigger();  // the next norm (and the mat-vec after it) may be scheduled
    __shared__ float part[32];
    const size_t off = (size_t)blockIdx.x * E;
    float gs = 0.0f;
    if (shared) {
        float d = 0.0f;
        for (int i = threadIdx.x; i < E; i += blockDim.x) d += gate_w[i] * y[off + i];
        gs = sigmoidf_(block_sum(d, part));  // its barriers order every read of y before the writes below
    }
    for (int i = threadIdx.x; i < E; i += blockDim.x)
        y[off + i] = shared ? routed[off + i] + gs * shared[off + i] : routed[off + i];
}

int threads_for(int width) { return std::min(1024, std::max(kWarp, (width + kWarp - 1) / kWarp * kWarp)); }

}  // namespace

std::string gdn_fast_refusal(const GdnShape& g) {
    if (g.n_k_heads <= 0 || g.n_v_heads <= 0 || g.n_v_heads % g.n_k_heads)
        return "Gated DeltaNet: value heads must be a positive multiple of key heads";
    if (g.conv_kernel < 1 || g.conv_kernel > kMaxConvKernel)
        return "Gated DeltaNet: conv kernel " + std::to_string(g.conv_kernel) + " is not supported on the GPU (1.." +
               std::to_string(kMaxConvKernel) + ")";
    if (g.d_v < 1 || g.d_v > 1024 || delta_rows_per_thread(g.d_k, g.d_v, false) == 0 ||
        delta_rows_per_thread(g.d_k, g.d_v, true) == 0)
        return "Gated DeltaNet: head sizes d_k " + std::to_string(g.d_k) + ", d_v " + std::to_string(g.d_v) +
               " are not supported on the GPU (d_k a multiple of 8 up to 256, d_v up to 1024)";
    return "";
}

size_t gdn_scratch_floats(int n, const GdnShape& g) { return (size_t)n * g.n_v_heads * delta_slices(g.d_v); }

void gdn_delta_sliced(const GdnShape& g, const float* mix, const float* conv_out, const float* ab, const float* z,
               const float* norm_w, float eps, const GdnState& st, const int32_t* seq, const int32_t* pos,
               const SeqPlan& plan, int n, float* out, float* scratch, cudaStream_t s) {
    if (n == 0) return;
    const int R = delta_rows_per_thread(g.d_k, g.d_v, false), NS = delta_slices(g.d_v);
    const int G = R ? g.d_k / R : 0;
    const dim3 grid((unsigned)g.n_v_heads, (unsigned)n, (unsigned)NS);
    const unsigned threads = (unsigned)(G * kSlice);
    const size_t smem = 2 * sizeof(float) * (size_t)delta_buf_floats(g.d_k, G);
    switch (R) {
#define ROTOR_R(N)                                                                                                 \
    case N:                                                                                                        \
        gdn_delta_kernel<N><<<grid, threads, smem, s>>>(g, mix, conv_out, ab, z, norm_w, st, seq, pos, plan, n, out, \
                                                        scratch);                                                  \
        break;
        ROTOR_R(8) ROTOR_R(16) ROTOR_R(32)
#undef ROTOR_R
        default: throw Error(gdn_fast_refusal(g));
    }
    check_launch("gdn_delta");
    gdn_rescale(out, scratch, n, g, eps, s);
}

void gdn_rescale(float* out, const float* part_ss, int n, const GdnShape& g, float eps, cudaStream_t s) {
    if (n == 0) return;
    gdn_rescale_kernel<<<n, threads_for(std::min(g.n_v_heads * kWarp, 256)), 0, s>>>(out, part_ss, g.n_v_heads, g.d_v,
                                                                                      delta_slices(g.d_v), eps);
    check_launch("gdn_rescale");
}

size_t gdn_step_counters(int n_seq, const GdnShape& g) { return (size_t)n_seq * (g.n_k_heads + g.n_v_heads); }

void gdn_step(const GdnShape& g, const float* mix, const float* ab, const float* conv_w, const float* ssm_a,
              const float* dt_bias, const float* z, const float* norm_w, float eps, const GdnState& st, int* counters,
              int n_seq, const int32_t* seq, const int32_t* pos, const SeqPlan& plan, int n, float* out, float* scratch,
              cudaStream_t s) {
    if (n == 0) return;
    const int R = delta_rows_per_thread(g.d_k, g.d_v, true), NS = delta_slices(g.d_v);
    const int G = R ? g.d_k / R : 0;
    const dim3 grid((unsigned)g.n_v_heads, (unsigned)n, (unsigned)NS);
    const unsigned threads = (unsigned)(G * kSlice);
    const size_t smem = 2 * sizeof(float) * (size_t)delta_buf_floats(g.d_k, G);
    int* qk_done = counters;
    int* head_done = counters + (size_t)n_seq * g.n_k_heads;
    switch (R) {
#define ROTOR_R(N)                                                                                              \
    case N:                                                                                                     \
        gdn_step_kernel<N><<<grid, threads, smem, s>>>(g, mix, ab, conv_w, ssm_a, dt_bias, z, norm_w, eps, st,    \
                                                       qk_done, head_done, seq, pos, plan, n, out, scratch);    \
        break;
        ROTOR_R(8)  // the smallest R is taken, and 8 fits every d_k up to 256
#undef ROTOR_R
        default: throw Error(gdn_fast_refusal(g));
    }
    check_launch("gdn_step");
}

void moe_combine(float* y, const float* routed, const float* shared, const float* gate_w, int n, int E,
                 cudaStream_t s) {
    if (n == 0) return;
    moe_combine_kernel<<<n, threads_for(std::min(E, 1024)), 0, s>>>(y, routed, shared, gate_w, E);
    check_launch("moe_combine");
}

}  // namespace rotor::cuda
