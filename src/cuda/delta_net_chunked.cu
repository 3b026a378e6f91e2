// The chunked gated delta rule (delta_net_chunked.h): three kernels and the gated norm's rescale.
//   gdn_chunk_table_kernel  one block: where each chunk and each sequence of the step begins (plan order)
//   gdn_chunk_prep_kernel   block (chunk, value head): A, P, and [W | U] by forward substitution
//   gdn_chunk_state_kernel  block (value head, slice of 32 state columns, sequence): the chunks in order
// All in f32 on the CUDA cores. The tables are built on the device from the step's plan, so the kernels are
// right for any batch, as a captured graph needs (CudaForward takes this path only for steps that are not).
#include "cuda/delta_net_chunked.h"

#include <algorithm>

#include "cuda/cp_async.cuh"
#include "cuda/delta_net_conv.cuh"
#include "cuda/delta_net_fast.h"
#include "cuda/device_common.cuh"
#include "cuda/scratch_sizes.h"

namespace rotor::cuda {

namespace {

constexpr int L = kGdnChunk;  // tokens per chunk
constexpr int kThreads = 256;
constexpr int kSlice = kWarp;  // state columns per block of the state kernel: a lane each
static_assert(L == 32 && kThreads == 256, "the prep kernel's 16 x 16 thread grid covers a 32 x 32 chunk");

// Where each part of the scratch lies. Per (value head h, plan index x): W row (h n + x) of d_k floats, U row of
// d_v, P row of L, c entry; the rows of one chunk are consecutive.
struct ChunkTables {
    float* W;
    float* U;
    float* P;
    float* c;
    int* chunk_first;
    int* chunk_len;  // 0: an unused slot
    int* seq_first;
    int* seq_count;  // 0: an unused slot
    int max_chunks, max_seqs;
};

ChunkTables carve(void* wu, void* pc, int n, int max_seqs, const GdnShape& g) {
    ChunkTables t;
    const size_t rows = (size_t)n * g.n_v_heads;
    t.W = static_cast<float*>(wu);
    t.U = t.W + rows * g.d_k;
    t.P = static_cast<float*>(pc);
    t.c = t.P + rows * L;
    t.max_chunks = (n + L - 1) / L + max_seqs;
    t.max_seqs = max_seqs;
    t.chunk_first = reinterpret_cast<int*>(t.c + rows);
    t.chunk_len = t.chunk_first + t.max_chunks;
    t.seq_first = t.chunk_len + t.max_chunks;
    t.seq_count = t.seq_first + max_seqs;
    return t;
}

__device__ inline float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ inline float dot4(float4 a, float4 b, float acc) {
    acc = fmaf(a.x, b.x, acc);
    acc = fmaf(a.y, b.y, acc);
    acc = fmaf(a.z, b.z, acc);
    return fmaf(a.w, b.w, acc);
}

// In plan order each sequence's tokens are consecutive (SeqPlan); a chunk begins at every L-th token of a
// sequence. One block scans the plan indices: chunk and sequence ids are running counts of those beginnings.
__global__ void gdn_chunk_table_kernel(SeqPlan plan, int n, ChunkTables ct) {
    __shared__ int warp_c[32], warp_s[32];
    __shared__ int base_c, base_s;
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
    if (threadIdx.x == 0) base_c = base_s = 0;
    __syncthreads();
    for (int x0 = 0; x0 < n; x0 += blockDim.x) {
        const int x = x0 + threadIdx.x;
        int t = 0, r = 1;
        if (x < n) {
            t = plan.order[x];
            r = x - plan.start[t];
        }
        const bool is_c = x < n && r % L == 0, is_s = x < n && r == 0;
        const unsigned bc = __ballot_sync(~0u, is_c), bs = __ballot_sync(~0u, is_s), below = (1u << lane) - 1;
        if (lane == 0) warp_c[warp] = __popc(bc), warp_s[warp] = __popc(bs);
        __syncthreads();
        int ic = base_c + __popc(bc & below), is = base_s + __popc(bs & below);
        for (int w = 0; w < warp; w++) ic += warp_c[w], is += warp_s[w];
        if (is_c && ic < ct.max_chunks) ct.chunk_first[ic] = x, ct.chunk_len[ic] = min(L, plan.count[t] - r);
        if (is_s && is < ct.max_seqs) ct.seq_first[is] = x, ct.seq_count[is] = plan.count[t];
        __syncthreads();
        if (threadIdx.x == 0)
            for (int w = 0; w < nw; w++) base_c += warp_c[w], base_s += warp_s[w];
        __syncthreads();
    }
    for (int i = base_c + threadIdx.x; i < ct.max_chunks; i += blockDim.x) ct.chunk_len[i] = 0;
    for (int i = base_s + threadIdx.x; i < ct.max_seqs; i += blockDim.x) ct.seq_count[i] = 0;
}

// Block (chunk slot, value head h). Shared: k and q rows [L][d_k + 4] (the padding keeps 16-byte rows and
// spreads rows over the banks), A [L][L], c, e^c, beta.
__global__ void __launch_bounds__(kThreads)
    gdn_chunk_prep_kernel(GdnShape g, const float* __restrict__ cv, const float* __restrict__ ab, SeqPlan plan, int n,
                          ChunkTables ct) {
    const int ci = blockIdx.x, h = blockIdx.y;
    const int len = ct.chunk_len[ci];
    if (len == 0) return;
    const int first = ct.chunk_first[ci];
    const int Hk = g.n_k_heads, Hv = g.n_v_heads, dk = g.d_k, dv = g.d_v, C = g.channels(), kh = h % Hk;
    const int ks = dk + 4;
    extern __shared__ float4 sm4[];
    float* Ks = reinterpret_cast<float*>(sm4);
    float* Qs = Ks + L * ks;
    float* As = Qs + L * ks;
    float* cs = As + L * L;
    float* ec = cs + L;
    float* bs = ec + L;
    __shared__ int tok[L];
    __shared__ float graw[L];
    if (threadIdx.x < L) {
        const int i = threadIdx.x;
        const int t = i < len ? plan.order[first + i] : -1;
        tok[i] = t;
        bs[i] = i < len ? ab[(size_t)t * Hv + h] : 0.0f;        // beta (gdn_conv applied the sigmoid)
        graw[i] = i < len ? ab[(size_t)(n + t) * Hv + h] : 0.0f;  // g, the log of the decay
    }
    __syncthreads();
    if (threadIdx.x == 0) {  // cumulative in double, as the CPU's delta_rule_chunked
        double acc = 0;
        for (int i = 0; i < L; i++) {
            acc += graw[i];
            cs[i] = (float)acc;
        }
    }
    const int dk4 = dk / 4;
    for (int e = threadIdx.x; e < L * dk4; e += blockDim.x) {
        const int i = e / dk4, d = (e % dk4) * 4;
        float4 q = make_float4(0.f, 0.f, 0.f, 0.f), k = q;
        if (i < len) {
            const float* row = cv + (size_t)tok[i] * C;
            q = ld4(row + kh * dk + d);
            k = ld4(row + Hk * dk + kh * dk + d);
        }
        *reinterpret_cast<float4*>(Ks + i * ks + d) = k;
        *reinterpret_cast<float4*>(Qs + i * ks + d) = q;
    }
    __syncthreads();
    if (threadIdx.x < L) ec[threadIdx.x] = expf(cs[threadIdx.x]);
    if (threadIdx.x < len) ct.c[(size_t)h * n + first + threadIdx.x] = cs[threadIdx.x];

    // A and P: thread (ti, tj) of a 16 x 16 grid takes rows ti, ti + 16 and columns tj, tj + 16; of its four
    // pairs, (ti, tj + 16) lies above the diagonal (zeros), the other three are dot products over d_k.
    {
        const int ti = threadIdx.x / 16, tj = threadIdx.x % 16;
        const float *k0 = Ks + ti * ks, *k1 = Ks + (ti + 16) * ks, *q0 = Qs + ti * ks, *q1 = Qs + (ti + 16) * ks;
        const float *j0 = Ks + tj * ks, *j1 = Ks + (tj + 16) * ks;
        float kk00 = 0.f, kk10 = 0.f, kk11 = 0.f, qk00 = 0.f, qk10 = 0.f, qk11 = 0.f;
        for (int d = 0; d < dk; d += 4) {
            const float4 a0 = ld4(k0 + d), a1 = ld4(k1 + d), b0 = ld4(q0 + d), b1 = ld4(q1 + d), c0 = ld4(j0 + d),
                         c1 = ld4(j1 + d);
            kk00 = dot4(a0, c0, kk00);
            kk10 = dot4(a1, c0, kk10);
            kk11 = dot4(a1, c1, kk11);
            qk00 = dot4(b0, c0, qk00);
            qk10 = dot4(b1, c0, qk10);
            qk11 = dot4(b1, c1, qk11);
        }
        float* P = ct.P + ((size_t)h * n + first) * L;
        auto put = [&](int i, int j, float kk, float qk) {
            const float e = expf(cs[i] - cs[j]);  // i < j: may overflow, never used
            As[i * L + j] = j < i ? bs[i] * kk * e : 0.0f;
            if (i < len) P[(size_t)i * L + j] = j <= i ? qk * e : 0.0f;
        };
        put(ti, tj, kk00, qk00);
        put(ti + 16, tj, kk10, qk10);
        put(ti + 16, tj + 16, kk11, qk11);
        As[ti * L + tj + 16] = 0.0f;
        if (ti < len) P[(size_t)ti * L + tj + 16] = 0.0f;
    }
    __syncthreads();

    // (I + A) X = B by forward substitution, a thread per column of X = [W | U] (B_i = beta_i [e^(c_i) k_i | v_i]),
    // the column in registers; A's rows are read by every thread at once (broadcast).
    for (int col = threadIdx.x; col < dk + dv; col += blockDim.x) {
        float x[L];
        const bool is_w = col < dk;
        const float* vsrc = cv + 2 * Hk * dk + (size_t)h * dv + (col - dk);
#pragma unroll
        for (int i = 0; i < L; i++) {
            float b = 0.0f;
            if (i < len) b = is_w ? bs[i] * ec[i] * Ks[i * ks + col] : bs[i] * vsrc[(size_t)tok[i] * C];
#pragma unroll
            for (int j = 0; j < i; j++) b = fmaf(-As[i * L + j], x[j], b);
            x[i] = b;
        }
        float* dst = is_w ? ct.W + ((size_t)h * n + first) * dk + col : ct.U + ((size_t)h * n + first) * dv + (col - dk);
        const int stride = is_w ? dk : dv;
#pragma unroll
        for (int i = 0; i < L; i++)
            if (i < len) dst[(size_t)i * stride] = x[i];
    }
}

// Block (value head h, column slice, sequence slot). Thread (warp w, lane): state column slice * 32 + lane; in
// the products over d_k, rows i = w + 8m of the chunk (m < L / 8); in the state update, state rows
// w RB .. w RB + RB - 1 (RB = d_k / 8), which it keeps in registers.
// The chunks of a sequence are a chain through S, so what bounds the kernel is latency: every load of chunk
// c + 1 is issued while chunk c computes. Shared memory: S [d_k][32], V' [L][32]; the W and q rows of the chunk
// [L][d_k + 4] (refilled with the next chunk's by cp.async once the products have read them); the k rows
// [2][L][d_k + 4] and P [2][L][L] (double buffered: read after that point); and per chunk its tokens, e^c and
// e^(c_L - c) [2][L]. In registers, each thread's rows' tokens, U and z entries, the next chunk's too.
template <int RB>
__global__ void __launch_bounds__(kThreads, RB <= 16 ? 2 : 1)
    gdn_chunk_state_kernel(GdnShape g, const float* __restrict__ mix, const float* __restrict__ cv,
                           const float* __restrict__ z, const float* __restrict__ norm_w, GdnState st,
                           const int32_t* __restrict__ seq, const int32_t* __restrict__ pos, SeqPlan plan, int n,
                           ChunkTables ct, float* __restrict__ out, float* __restrict__ part_ss) {
    constexpr int DK = 8 * RB, KS = DK + 4, M = L / 8, DK4 = DK / 4;
    const int h = blockIdx.x, slice = blockIdx.y, NS = gridDim.y;
    const int cnt = ct.seq_count[blockIdx.z];
    if (cnt == 0) return;
    const int f = ct.seq_first[blockIdx.z];
    const int Hk = g.n_k_heads, Hv = g.n_v_heads, dv = g.d_v, C = g.channels();
    const int V = g.v_dim(), kh = h % Hk;
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int j = slice * kSlice + lane;
    const bool col = j < dv;
    const int t_first = plan.order[f], sq = seq[t_first], p0 = pos[t_first];
    float* Sg = st.ssm + (size_t)sq * st.seq_stride + (size_t)h * DK * dv;
    extern __shared__ float4 sm4[];
    float* Ss = reinterpret_cast<float*>(sm4);
    float* Vs = Ss + DK * kSlice;
    float* Ws = Vs + L * kSlice;
    float* Qs = Ws + L * KS;
    float* Kb = Qs + L * KS;
    float* Pb = Kb + 2 * L * KS;
    float* ecb = Pb + 2 * L * L;
    float* flb = ecb + 2 * L;
    int* tokb = reinterpret_cast<int*>(flb + 2 * L);
    const float nw = col ? norm_w[j] : 0.0f;

    // The tables of the chunk at c0 into buffer b (threads < L; read after the next barrier).
    auto tables = [&](int c0, int b) {
        if (threadIdx.x < L) {
            const int i = threadIdx.x, len = min(L, cnt - c0);
            const size_t row0 = (size_t)h * n + f + c0;
            const float ci = i < len ? ct.c[row0 + i] : 0.0f, cl = ct.c[row0 + len - 1];
            tokb[b * L + i] = i < len ? plan.order[f + c0 + i] : 0;
            ecb[b * L + i] = expf(ci);
            flb[b * L + i] = i < len ? expf(cl - ci) : 0.0f;
        }
    };
    // The async copies of the chunk at c0 (its tables in buffer b already visible): W, q -> Ws, Qs; k -> Kb[b];
    // P -> Pb[b]; rows past the chunk's end zero-filled.
    auto issue = [&](int c0, int b) {
        const int len = min(L, cnt - c0);
        const size_t row0 = (size_t)h * n + f + c0;
        for (int e = threadIdx.x; e < L * DK4; e += kThreads) {
            const int i = e / DK4, d = (e % DK4) * 4;
            const bool ok = i < len;
            const float* row = cv + (size_t)tokb[b * L + i] * C;
            cp_async<16>(smem_u32(Ws + i * KS + d), ok ? ct.W + (row0 + i) * DK + d : ct.W, ok);
            cp_async<16>(smem_u32(Qs + i * KS + d), row + kh * DK + d, ok);
            cp_async<16>(smem_u32(Kb + b * L * KS + i * KS + d), row + Hk * DK + kh * DK + d, ok);
        }
        for (int e = threadIdx.x; e < L * L / 4; e += kThreads) {
            const int i = e / (L / 4), jj = (e % (L / 4)) * 4;
            const bool ok = i < len;
            cp_async<16>(smem_u32(Pb + b * L * L + i * L + jj), ok ? ct.P + (row0 + i) * L + jj : ct.P, ok);
        }
        cp_async_commit();
    };
    // This thread's rows of the chunk at c0: tokens, U and z entries.
    auto rows = [&](int c0, int (&tm)[M], float (&um)[M], float (&zm)[M]) {
        const int len = min(L, cnt - c0);
        const size_t row0 = (size_t)h * n + f + c0;
#pragma unroll
        for (int m = 0; m < M; m++) {
            const int i = warp + 8 * m;
            tm[m] = i < len ? plan.order[f + c0 + i] : 0;
            um[m] = (i < len && col) ? ct.U[(row0 + i) * dv + j] : 0.0f;
            zm[m] = (i < len && col) ? z[(size_t)tm[m] * V + h * dv + j] : 0.0f;
        }
    };

    const int d0 = warp * RB;
    float S[RB];
#pragma unroll
    for (int r = 0; r < RB; r++) {
        S[r] = (p0 != 0 && col) ? Sg[(size_t)(d0 + r) * dv + j] : 0.0f;
        Ss[(d0 + r) * kSlice + lane] = S[r];
    }
    int tm[M];
    float um[M], zm[M];
    tables(0, 0);
    rows(0, tm, um, zm);
    __syncthreads();
    issue(0, 0);

    for (int c0 = 0, b = 0; c0 < cnt; c0 += L, b ^= 1) {
        const int len = min(L, cnt - c0);
        const bool next = c0 + L < cnt;
        cp_async_wait<0>();
        __syncthreads();  // this chunk's copies and tables, and S, visible; the last chunk's reads done
        int tn[M];
        float un[M], zn[M];
        if (next) {
            tables(c0 + L, b ^ 1);
            rows(c0 + L, tn, un, zn);
        }

        // W S and q S for rows i = warp + 8m
        float ws[M], qs[M];
#pragma unroll
        for (int m = 0; m < M; m++) ws[m] = qs[m] = 0.0f;
#pragma unroll 2
        for (int d = 0; d < DK; d += 4) {
            const float4 sv = make_float4(Ss[d * kSlice + lane], Ss[(d + 1) * kSlice + lane], Ss[(d + 2) * kSlice + lane],
                                          Ss[(d + 3) * kSlice + lane]);
#pragma unroll
            for (int m = 0; m < M; m++) {
                const int i = warp + 8 * m;
                ws[m] = dot4(ld4(Ws + i * KS + d), sv, ws[m]);
                qs[m] = dot4(ld4(Qs + i * KS + d), sv, qs[m]);
            }
        }
        // V' = U - W S
#pragma unroll
        for (int m = 0; m < M; m++) {
            const int i = warp + 8 * m;
            Vs[i * kSlice + lane] = i < len ? um[m] - ws[m] : 0.0f;
        }
        __syncthreads();  // V' written; Ws, Qs read
        if (next) issue(c0 + L, b ^ 1);

        // o_i = e^(c_i) q_i S + sum_(j <= i) P[i][j] V'_j, then the gated norm's numerator and this slice's sum of o^2
        const float* Ps = Pb + b * L * L;
        const float* ec = ecb + b * L;
#pragma unroll
        for (int m = 0; m < M; m++) {
            const int i = warp + 8 * m;
            if (i >= len) continue;  // the same for the whole warp
            float o = ec[i] * qs[m];
#pragma unroll
            for (int jj = 0; jj < L; jj += 4) {
                const float4 p = ld4(Ps + i * L + jj);
                o = fmaf(p.x, Vs[jj * kSlice + lane], o);
                o = fmaf(p.y, Vs[(jj + 1) * kSlice + lane], o);
                o = fmaf(p.z, Vs[(jj + 2) * kSlice + lane], o);
                o = fmaf(p.w, Vs[(jj + 3) * kSlice + lane], o);
            }
            const float ss = warp_sum(col ? o * o : 0.0f);
            if (col) out[(size_t)tm[m] * V + h * dv + j] = o * nw * siluf_(zm[m]);
            if (lane == 0) part_ss[((size_t)tm[m] * Hv + h) * NS + slice] = ss;
        }

        // S <- e^(c_L) S + sum_j e^(c_L - c_j) k_j V'_j^T (every read of Ss above happened before the last barrier)
        const float el = ec[len - 1];
        const float* fl = flb + b * L;
        const float* Ks = Kb + b * L * KS;
#pragma unroll
        for (int r = 0; r < RB; r++) S[r] *= el;
#pragma unroll 2
        for (int jj = 0; jj < len; jj++) {
            const float v = Vs[jj * kSlice + lane] * fl[jj];
            const float* kr = Ks + jj * KS + d0;
            if constexpr (RB % 4 == 0) {
#pragma unroll
                for (int r = 0; r < RB; r += 4) {
                    const float4 k4 = ld4(kr + r);
                    S[r] = fmaf(k4.x, v, S[r]);
                    S[r + 1] = fmaf(k4.y, v, S[r + 1]);
                    S[r + 2] = fmaf(k4.z, v, S[r + 2]);
                    S[r + 3] = fmaf(k4.w, v, S[r + 3]);
                }
            } else {
#pragma unroll
                for (int r = 0; r < RB; r++) S[r] = fmaf(kr[r], v, S[r]);
            }
        }
#pragma unroll
        for (int r = 0; r < RB; r++) Ss[(d0 + r) * kSlice + lane] = S[r];
        if (next) {
#pragma unroll
            for (int m = 0; m < M; m++) tm[m] = tn[m], um[m] = un[m], zm[m] = zn[m];
        }
    }
#pragma unroll
    for (int r = 0; r < RB; r++)
        if (col) Sg[(size_t)(d0 + r) * dv + j] = S[r];

    // the conv state, as gdn_delta_sliced advances it: this block owns its slice's v channels, and slice 0 of
    // head h < Hk the q/k channels of key head h
    gdn_advance_conv(g, mix, st, plan, sq, f, p0, cnt, h, slice * kSlice, min(kSlice, dv - slice * kSlice),
                     slice == 0 && h < Hk);
}

size_t prep_smem(int dk) { return sizeof(float) * ((size_t)2 * L * (dk + 4) + L * L + 3 * L); }
// S, V', W, q, two k buffers, two P buffers, two sets of tables (tokens as ints, the same size)
size_t state_smem(int dk) {
    return sizeof(float) * ((size_t)dk * kSlice + L * kSlice + 4 * L * (dk + 4) + 2 * L * L + 6 * L);
}

template <int RB>
void launch_state(const GdnShape& g, const float* mix, const float* cv, const float* z, const float* norm_w,
                  const GdnState& st, const int32_t* seq, const int32_t* pos, const SeqPlan& plan, int n,
                  const ChunkTables& ct, float* out, float* part_ss, cudaStream_t s) {
    const size_t smem = state_smem(8 * RB);
    static bool attr = false;
    if (!attr) {
        ROTOR_CUDA_CHECK(cudaFuncSetAttribute(gdn_chunk_state_kernel<RB>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              (int)smem));
        attr = true;
    }
    const dim3 grid((unsigned)g.n_v_heads, (unsigned)((g.d_v + kSlice - 1) / kSlice), (unsigned)ct.max_seqs);
    gdn_chunk_state_kernel<RB><<<grid, kThreads, smem, s>>>(g, mix, cv, z, norm_w, st, seq, pos, plan, n, ct, out,
                                                            part_ss);
}

}  // namespace

std::string gdn_chunked_refusal(const GdnShape& g) {
    const int dk = g.d_k;
    if (dk != 16 && dk != 32 && dk != 64 && dk != 128 && dk != 256)
        return "the chunked delta rule needs d_k 16, 32, 64, 128 or 256 (the model has " + std::to_string(dk) + ")";
    if (g.d_v < 4 || g.d_v > 1024 || g.d_v % 4)
        return "the chunked delta rule needs d_v a multiple of 4 up to 1024 (the model has " + std::to_string(g.d_v) + ")";
    return "";
}

void gdn_delta_chunked(const GdnShape& g, const float* mix, const float* conv_out, const float* ab, const float* z,
                       const float* norm_w, float eps, const GdnState& st, const int32_t* seq, const int32_t* pos,
                       const SeqPlan& plan, int n, int max_seqs, float* out, float* part_ss, void* scratch_wu,
                       void* scratch_pc, cudaStream_t s) {
    if (n == 0) return;
    if (std::string why = gdn_chunked_refusal(g); !why.empty()) throw Error("Gated DeltaNet: " + why);
    max_seqs = std::max(1, std::min(max_seqs, n));
    const ChunkTables ct = carve(scratch_wu, scratch_pc, n, max_seqs, g);
    gdn_chunk_table_kernel<<<1, std::min(1024, (n + kWarp - 1) / kWarp * kWarp), 0, s>>>(plan, n, ct);
    check_launch("gdn_chunk_table");

    const size_t smem = prep_smem(g.d_k);
    static bool prep_attr = false;  // once, for the largest d_k
    if (!prep_attr) {
        ROTOR_CUDA_CHECK(
            cudaFuncSetAttribute(gdn_chunk_prep_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)prep_smem(256)));
        prep_attr = true;
    }
    gdn_chunk_prep_kernel<<<dim3((unsigned)ct.max_chunks, (unsigned)g.n_v_heads), kThreads, smem, s>>>(
        g, conv_out, ab, plan, n, ct);
    check_launch("gdn_chunk_prep");

    switch (g.d_k) {
        case 16: launch_state<2>(g, mix, conv_out, z, norm_w, st, seq, pos, plan, n, ct, out, part_ss, s); break;
        case 32: launch_state<4>(g, mix, conv_out, z, norm_w, st, seq, pos, plan, n, ct, out, part_ss, s); break;
        case 64: launch_state<8>(g, mix, conv_out, z, norm_w, st, seq, pos, plan, n, ct, out, part_ss, s); break;
        case 128: launch_state<16>(g, mix, conv_out, z, norm_w, st, seq, pos, plan, n, ct, out, part_ss, s); break;
        default: launch_state<32>(g, mix, conv_out, z, norm_w, st, seq, pos, plan, n, ct, out, part_ss, s); break;
    }
    check_launch("gdn_chunk_state");
    gdn_rescale(out, part_ss, n, g, eps, s);
}

}  // namespace rotor::cuda
