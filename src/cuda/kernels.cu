#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "common/half.h"
#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/kernels.h"
#include "cuda/matvec_mma.h"
#include "cuda/matvec_mma_f16.h"
#include "cuda/matvec_q8.h"
#include "cuda/mmvq_units.h"
#include "cuda/pdl.cuh"
#include "formats/chunk_decode.h"
#include "kv/kv_hadamard.h"

namespace rotor::cuda {

namespace {

// ---------------------------------------------------------------- mat-vec

constexpr int kMatvecWarps = 4;  // warps per block of every mat-vec kernel

// A warp computes RW rows for nt <= NT tokens: each lane takes 8-element chunks c = lane, lane + 32, ...,
// loads the nt activation chunks once and dots them with the same chunk of its RW rows. NT is 1, 2, 4 or
// 8 (the tokens past nt are zeros and not stored), which halves the instantiations to compile. The RW rows'
// weight loads are independent, so a warp keeps RW times more bytes in flight (a decode mat-vec is
// bound by memory latency x bytes in flight), and each activation load serves RW rows.
template <GgmlType T, int NT, int RW>
__global__ void __launch_bounds__(kMatvecWarps* kWarp)
    matvec_kernel(const uint8_t* __restrict__ W, size_t row_bytes, int64_t rows, int cols, int nt,
                  const float* __restrict__ X, float* __restrict__ Y) {
    using D = ChunkDecoder<T>;
    constexpr int kChunksPerBlock = D::kBlockElems / 8;
    const int lane = threadIdx.x % kWarp;
    const int64_t row0 = ((int64_t)blockIdx.x * kMatvecWarps + threadIdx.x / kWarp) * RW;
    if (row0 >= rows) return;
    const int nr = rows - row0 < RW ? (int)(rows - row0) : RW;
    const uint8_t* w = W + (size_t)row0 * row_bytes;
    float acc[NT][RW];
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
        for (int r = 0; r < RW; r++) acc[t][r] = 0.0f;
    const int chunks = cols / 8;
#pragma unroll 2
    for (int c = lane; c < chunks; c += kWarp) {
        float4 xa[NT], xb[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float4* xp = reinterpret_cast<const float4*>(X + (size_t)t * cols + 8 * (size_t)c);
            xa[t] = t < nt ? __ldg(xp) : make_float4(0.f, 0.f, 0.f, 0.f);
            xb[t] = t < nt ? __ldg(xp + 1) : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        const size_t off = (size_t)(c / kChunksPerBlock) * D::kBlockBytes;
#pragma unroll
        for (int r = 0; r < RW; r++) {
            if (r >= nr) break;
            float v[8];
            D::decode8(w + (size_t)r * row_bytes + off, c % kChunksPerBlock, v);
#pragma unroll
            for (int t = 0; t < NT; t++)
                acc[t][r] += v[0] * xa[t].x + v[1] * xa[t].y + v[2] * xa[t].z + v[3] * xa[t].w + v[4] * xb[t].x +
                             v[5] * xb[t].y + v[6] * xb[t].z + v[7] * xb[t].w;
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
        for (int r = 0; r < RW; r++) {
            const float sum = warp_sum(acc[t][r]);
            if (lane == 0 && r < nr && t < nt) Y[(size_t)t * rows + row0 + r] = sum;
        }
}

// Few rows (a MoE router: 128 rows of f32): a block per row, its warps splitting the row's chunks, so
// that the GPU has rows x 4 warps at work instead of rows / RW (8 blocks for Gemma 4's router, 21 us:
// bench/RESULTS.md, "One decode step under ncu"). The warps' sums meet in a fixed order.
constexpr int64_t kSplitRowsMax = 1024;

template <GgmlType T, int NT>
__global__ void __launch_bounds__(kMatvecWarps* kWarp)
    matvec_split_kernel(const uint8_t* __restrict__ W, size_t row_bytes, int64_t rows, int cols, int nt,
                        const float* __restrict__ X, float* __restrict__ Y) {
    using D = ChunkDecoder<T>;
    constexpr int kChunksPerBlock = D::kBlockElems / 8;
    __shared__ float part[kMatvecWarps][NT];
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int64_t row = blockIdx.x;
    const uint8_t* w = W + (size_t)row * row_bytes;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    const int chunks = cols / 8;
#pragma unroll 2
    for (int c = threadIdx.x; c < chunks; c += kMatvecWarps * kWarp) {
        float v[8];
        D::decode8(w + (size_t)(c / kChunksPerBlock) * D::kBlockBytes, c % kChunksPerBlock, v);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t >= nt) break;
            const float4* xp = reinterpret_cast<const float4*>(X + (size_t)t * cols + 8 * (size_t)c);
            const float4 xa = __ldg(xp), xb = __ldg(xp + 1);
            acc[t] += v[0] * xa.x + v[1] * xa.y + v[2] * xa.z + v[3] * xa.w + v[4] * xb.x + v[5] * xb.y +
                      v[6] * xb.z + v[7] * xb.w;
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const float sum = warp_sum(acc[t]);
        if (lane == 0) part[warp][t] = sum;
    }
    __syncthreads();
    if (threadIdx.x < nt) {
        float sum = 0.0f;
#pragma unroll
        for (int i = 0; i < kMatvecWarps; i++) sum += part[i][threadIdx.x];
        Y[(size_t)threadIdx.x * rows + row] = sum;
    }
}

template <GgmlType T, int NT>
void launch_matvec_nt(const uint8_t* w, size_t rb, int64_t rows, int64_t cols, int nt, const float* X, float* Y,
                      cudaStream_t s) {
    if (rows <= kSplitRowsMax) {
        matvec_split_kernel<T, NT><<<(unsigned)rows, kMatvecWarps * kWarp, 0, s>>>(w, rb, rows, (int)cols, nt, X, Y);
        return;
    }
    // rows per warp: more rows keep more bytes in flight, but fewer warps; on H200 only f32 gains
    constexpr int RW = (T == GgmlType::F32 && NT <= 2) ? 4 : 1;  // measured: only f32 rows gain
    const unsigned grid = blocks_for(rows, kMatvecWarps * RW);
    matvec_kernel<T, NT, RW><<<grid, kMatvecWarps * kWarp, 0, s>>>(w, rb, rows, (int)cols, nt, X, Y);
}

template <GgmlType T>
void launch_matvec(const void* W, int64_t rows, int64_t cols, const float* X, int nt, float* Y, cudaStream_t s) {
    const size_t rb = row_bytes(T, (uint64_t)cols);
    const auto* w = static_cast<const uint8_t*>(W);
    if (nt < 1 || nt > 8) throw Error("matvec: bad token group");
    if (nt == 1) launch_matvec_nt<T, 1>(w, rb, rows, cols, nt, X, Y, s);
    else if (nt == 2) launch_matvec_nt<T, 2>(w, rb, rows, cols, nt, X, Y, s);
    else if (nt <= 4) launch_matvec_nt<T, 4>(w, rb, rows, cols, nt, X, Y, s);
    else launch_matvec_nt<T, 8>(w, rb, rows, cols, nt, X, Y, s);
}

// Float weights whose rows are not a multiple of 8 (small models: stories260K's n_ff is 172):
// element by element, no vector loads.
__device__ inline float float_elem(GgmlType t, const uint8_t* row, int i) {
    if (t == GgmlType::F32) return reinterpret_cast<const float*>(row)[i];
    const uint16_t h = reinterpret_cast<const uint16_t*>(row)[i];
    return t == GgmlType::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
}

__global__ void __launch_bounds__(kMatvecWarps* kWarp)
    matvec_float_any_kernel(GgmlType t, const uint8_t* __restrict__ W, size_t row_bytes, int64_t rows, int cols,
                            int n_tok, const float* __restrict__ X, float* __restrict__ Y) {
    const int lane = threadIdx.x % kWarp;
    const int64_t row = (int64_t)blockIdx.x * kMatvecWarps + threadIdx.x / kWarp;
    if (row >= rows) return;
    const uint8_t* w = W + (size_t)row * row_bytes;
    for (int tk = 0; tk < n_tok; tk++) {
        float acc = 0.0f;
        for (int i = lane; i < cols; i += kWarp) acc += float_elem(t, w, i) * X[(size_t)tk * cols + i];
        acc = warp_sum(acc);
        if (lane == 0) Y[(size_t)tk * rows + row] = acc;
    }
}

__global__ void get_rows_float_any_kernel(GgmlType t, const uint8_t* __restrict__ table, size_t row_bytes, int cols,
                                          const int32_t* __restrict__ ids, float* __restrict__ out) {
    const uint8_t* row = table + (size_t)ids[blockIdx.x] * row_bytes;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) out[(size_t)blockIdx.x * cols + i] = float_elem(t, row, i);
}

bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }
}  // namespace

bool weight_rows_supported(GgmlType t, int64_t cols) { return cols % 8 == 0 || is_float_type(t); }

namespace {

// ---------------------------------------------------------------- embedding rows

template <GgmlType T>
__global__ void get_rows_kernel(const uint8_t* __restrict__ table, size_t row_bytes, int cols,
                                const int32_t* __restrict__ ids, float* __restrict__ out) {
    using D = ChunkDecoder<T>;
    constexpr int kChunksPerBlock = D::kBlockElems / 8;
    const uint8_t* row = table + (size_t)ids[blockIdx.x] * row_bytes;
    float* o = out + (size_t)blockIdx.x * cols;
    for (int c = threadIdx.x; c < cols / 8; c += blockDim.x)
        D::decode8(row + (size_t)(c / kChunksPerBlock) * D::kBlockBytes, c % kChunksPerBlock, o + 8 * c);
}

// ---------------------------------------------------------------- element-wise

__global__ void rms_norm_kernel(const float* x, const float* __restrict__ w, float* y, int n, float eps) {
    pdl_trigger();  // the mat-vec after it may start copying its weights
    const float* xr = x + (size_t)blockIdx.x * n;
    float* yr = y + (size_t)blockIdx.x * n;
    __shared__ float part[32];
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
    ss = warp_sum(ss);
    if (threadIdx.x % kWarp == 0) part[threadIdx.x / kWarp] = ss;
    __syncthreads();
    if (threadIdx.x < kWarp) {
        float v = threadIdx.x < blockDim.x / kWarp ? part[threadIdx.x] : 0.0f;
        v = warp_sum(v);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    const float scale = rsqrtf(part[0] / (float)n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

__global__ void add_bias_kernel(float* y, const float* __restrict__ b, int64_t total, int n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) y[i] += b[i % n];
}

__global__ void add_kernel(float* x, const float* __restrict__ y, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

// silu(g) * u; one function for swiglu and swiglu_q8, so that both round the same way
__device__ inline float silu_mul(float g, float u) {
    return siluf_(g) * u;
}

__global__ void swiglu_kernel(float* gate, const float* __restrict__ up, int64_t n) {
    pdl_trigger();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) gate[i] = silu_mul(gate[i], up[i]);
}

// Rotates the pair (v[a], v[b]) of RoPE pair i (of half = n_rot / 2) at position p; one function for
// rope and qkv_prep.
__device__ inline void rope_pair(float* v, int i, int half, bool neox, float p, const float* __restrict__ inv_freq) {
    const float theta = p * inv_freq[i];
    float sn, cs;
    sincosf(theta, &sn, &cs);
    const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * cs - x1 * sn;
    v[b] = x0 * sn + x1 * cs;
}

__global__ void rope_kernel(float* x, int n_head, int head_dim, int n_rot, bool neox, const int32_t* __restrict__ pos,
                            const float* __restrict__ inv_freq) {
    const int t = blockIdx.x, half = n_rot / 2;
    const float p = (float)pos[t];
    for (int k = threadIdx.x; k < n_head * half; k += blockDim.x) {
        const int h = k / half, i = k % half;
        rope_pair(x + ((size_t)t * n_head + h) * head_dim, i, half, neox, p, inv_freq);
    }
}

// ---------------------------------------------------------------- fused decode-path kernels

// Where a fused kernel writes int8 activations (act_q8_layout of the launch's tokens); codes null:
// it quantizes nothing.
struct Q8Out {
    int8_t* codes = nullptr;
    float* d = nullptr;
    float* s = nullptr;
    int64_t code_stride = 0, ds_stride = 0;
};

// rms_norm's block size: the reduction order of the fused norms depends on it
int norm_threads(int n) { return n >= 1024 ? 1024 : (n + 31) / 32 * 32; }

// One row of add_rms_norm_q8 by one block. Element i = threadIdx.x + j * blockDim.x is thread
// threadIdx.x's j-th, the order in which rms_norm_kernel sums; a warp holds 32 consecutive elements
// (blockDim and, when quantizing, n are multiples of 32), one quantization block. All loads are
// issued before the first use (MAXJ per thread at most).
template <int MAXJ>
__device__ inline void add_norm_q8_row(float* x, const float* y, const float* __restrict__ w, float* xn, int n,
                                       float eps, const Q8Out& q, int64_t row) {
    __shared__ float part[32];
    float v[MAXJ], wv[MAXJ];
#pragma unroll
    for (int j = 0; j < MAXJ; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        v[j] = 0.0f;
        wv[j] = 0.0f;
        if (i < n) {
            const float a = x[i];
            v[j] = y ? a + y[i] : a;  // add_kernel's x[i] += y[i]
            wv[j] = w[i];
        }
    }
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < MAXJ; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < n) {
            if (y) x[i] = v[j];
            ss += v[j] * v[j];
        }
    }
    ss = warp_sum(ss);
    if (threadIdx.x % kWarp == 0) part[threadIdx.x / kWarp] = ss;
    __syncthreads();
    if (threadIdx.x < kWarp) {
        float t = threadIdx.x < blockDim.x / kWarp ? part[threadIdx.x] : 0.0f;
        t = warp_sum(t);
        if (threadIdx.x == 0) part[0] = t;
    }
    __syncthreads();
    const float scale = rsqrtf(part[0] / (float)n + eps);
    const int lane = threadIdx.x % kWarp;
#pragma unroll
    for (int j = 0; j < MAXJ; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < n) {  // uniform over the warp when quantizing (n % 32 == 0)
            const float o = v[j] * scale * wv[j];
            xn[i] = o;
            if (q.codes)
                ::rotor::mmvq::quantize_act_warp(o, lane, i - lane, q.codes + row * q.code_stride, q.d + row * q.ds_stride,
                                        q.s + row * q.ds_stride);
        }
    }
}

template <int MAXJ>
__global__ void __launch_bounds__(1024)
    add_rms_norm_q8_kernel(float* x, const float* y, const float* __restrict__ w, float* xn, int n, float eps, Q8Out q) {
    pdl_trigger();  // the mat-vec after it may start copying its weights
    pdl_wait();
    const size_t r = blockIdx.x;
    add_norm_q8_row<MAXJ>(x + r * n, y ? y + r * n : nullptr, w, xn + r * n, n, eps, q, (int64_t)r);
}

constexpr int kEmbedMaxJ = 16;  // rows of up to 16384 elements in the fused embedding

template <GgmlType T>
__global__ void __launch_bounds__(1024)
    get_rows_norm_q8_kernel(const uint8_t* __restrict__ table, size_t row_bytes, const int32_t* __restrict__ ids,
                            float* x, const float* __restrict__ w, float* xn, int n, float eps, Q8Out q) {
    pdl_trigger();
    pdl_wait();
    using D = ChunkDecoder<T>;
    constexpr int kChunksPerBlock = D::kBlockElems / 8;
    const uint8_t* row = table + (size_t)ids[blockIdx.x] * row_bytes;
    float* xr = x + (size_t)blockIdx.x * n;
    for (int c = threadIdx.x; c < n / 8; c += blockDim.x)
        D::decode8(row + (size_t)(c / kChunksPerBlock) * D::kBlockBytes, c % kChunksPerBlock, xr + 8 * c);
    __syncthreads();  // the block's writes of x are visible to all its threads
    add_norm_q8_row<kEmbedMaxJ>(xr, nullptr, w, xn + (size_t)blockIdx.x * n, n, eps, q, blockIdx.x);
}

// One warp per 32 elements (one quantization block) of gate.
__global__ void swiglu_q8_kernel(float* gate, const float* __restrict__ up, int64_t n, int64_t n_warps, Q8Out q) {
    pdl_trigger();
    pdl_wait();
    const int64_t wi = (int64_t)blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
    if (wi >= n_warps) return;  // whole warps
    const int lane = threadIdx.x % kWarp;
    const int64_t per_row = n / 32, t = wi / per_row, e0 = (wi % per_row) * 32;
    const int64_t i = t * n + e0 + lane;
    const float h = silu_mul(gate[i], up[i]);
    gate[i] = h;
    ::rotor::mmvq::quantize_act_warp(h, lane, e0, q.codes + t * q.code_stride, q.d + t * q.ds_stride, q.s + t * q.ds_stride);
}

// attention.cu's hadamard_shared, butterfly for butterfly (the same floats as hadamard_rows).
__device__ inline void hadamard_shared_row(float* x, int n) {
    for (int h = 1; h < n; h <<= 1) {
        __syncthreads();
        for (int i = threadIdx.x; i < n / 2; i += blockDim.x) {
            const int j = (i / h) * 2 * h + i % h;
            const float a = x[j], b = x[j + h];
            x[j] = a + b;
            x[j + h] = a - b;
        }
    }
    __syncthreads();
    const float s = rsqrtf((float)n);
    for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] *= s;
    __syncthreads();
}

constexpr int kQkvMaxDim = 512;  // the KV cache's largest head (attention.h)

// qkv_prep: one block per (token, head row): rows 0..H-1 are q's heads, then k's, then v's. Thread i
// holds element i (blockDim >= the head size), so the q/k norm sums as rms_norm does with its block
// of the head size rounded up to 32 (the extra warps add zeros). kStore: 0 K/V stay in k / v, 1 to
// an f32 cache, 2 to an f16 cache.
template <int kStore>
__global__ void __launch_bounds__(kQkvMaxDim)
    qkv_prep_kernel(QkvPrep p, void* K, void* V, int kv_ctx, int rotate_q) {
    __shared__ float row[kQkvMaxDim];
    __shared__ float part[32];
    pdl_trigger();
    pdl_wait();
    const int t = blockIdx.x, r = blockIdx.y, tid = threadIdx.x;
    const int H = p.n_head, Hkv = p.n_head_kv;
    const int kind = r < H ? 0 : (r < H + Hkv ? 1 : 2);  // q, k, v
    const int h = kind == 0 ? r : (kind == 1 ? r - H : r - H - Hkv);
    const int d = kind == 2 ? p.head_dim_v : p.head_dim_k;
    float* src = kind == 0 ? p.q + ((size_t)t * H + h) * d
                           : (kind == 1 ? p.k : p.v) + ((size_t)t * Hkv + h) * d;
    const float* bias = kind == 0 ? p.bq : (kind == 1 ? p.bk : p.bv);
    const float* nw = kind == 0 ? p.q_norm : (kind == 1 ? p.k_norm : nullptr);
    float val = 0.0f;
    if (tid < d) {
        val = src[tid];
        if (bias) val += bias[(size_t)h * d + tid];  // add_bias
    }
    if (nw) {  // rms_norm over the head
        float ss = 0.0f;
        if (tid < d) ss += val * val;
        ss = warp_sum(ss);
        if (tid % kWarp == 0) part[tid / kWarp] = ss;
        __syncthreads();
        if (tid < kWarp) {
            float a = tid < blockDim.x / kWarp ? part[tid] : 0.0f;
            a = warp_sum(a);
            if (tid == 0) part[0] = a;
        }
        __syncthreads();
        const float scale = rsqrtf(part[0] / (float)d + p.eps);
        if (tid < d) val = val * scale * nw[tid];
    }
    if (kind < 2 && p.n_rot > 0) {  // RoPE, pairs through shared memory
        if (tid < d) row[tid] = val;
        __syncthreads();
        const int half = p.n_rot / 2;
        const float pf = (float)p.pos[t];
        for (int i = tid; i < half; i += blockDim.x) rope_pair(row, i, half, p.neox, pf, p.inv_freq);
        __syncthreads();
        if (tid < d) val = row[tid];
    }
    if (kind == 0 && rotate_q) {  // attention runs in the rotated basis (2: R = H D / sqrt(d), tcq)
        __syncthreads();          // every thread has read row above
        if (tid < d) row[tid] = rotate_q == 2 && kvq::hadamard_sign_negative(kvq::kSignSeed, d, tid) ? -val : val;
        hadamard_shared_row(row, d);
        if (tid < d) val = row[tid];
    }
    if (tid >= d) return;
    if (kStore == 0 || kind == 0) {
        src[tid] = val;
        return;
    }
    const size_t slot = (size_t)p.seq[t] * kv_ctx + p.pos[t] % kv_ctx;  // kv_store's slot
    const size_t at = (slot * Hkv + h) * d + tid;
    if constexpr (kStore == 1) static_cast<float*>(kind == 1 ? K : V)[at] = val;
    if constexpr (kStore == 2) static_cast<__half*>(kind == 1 ? K : V)[at] = __float2half_rn(val);
}

}  // namespace

// ---------------------------------------------------------------- host entry points

namespace {
struct NoOp {
    template <GgmlType>
    void operator()() const {}
};
}  // namespace

bool weight_type_supported(GgmlType t) { return with_chunk_decoder(t, NoOp{}); }

std::string supported_weight_types() {
    std::string s;
    for (uint32_t id = 0; id < kGgmlTypeCount; id++) {
        const FormatInfo* f = format_info(id);
        if (f && weight_type_supported(f->type)) s += (s.empty() ? "" : ", ") + std::string(f->name);
    }
    return s;
}

namespace {

// The exact path: f32 activations, groups of 8 tokens.
void matmul_exact(GgmlType t, const void* W, int64_t rows, int64_t cols, const float* X, int n_tok, float* Y,
                  cudaStream_t s) {
    if (!weight_rows_supported(t, cols))
        throw Error("CUDA matmul: row length " + std::to_string(cols) + " is not a multiple of 8");
    if (cols % 8) {
        matvec_float_any_kernel<<<blocks_for(rows, kMatvecWarps), kMatvecWarps * kWarp, 0, s>>>(
            t, static_cast<const uint8_t*>(W), row_bytes(t, (uint64_t)cols), rows, (int)cols, n_tok, X, Y);
        check_launch("matvec_float_any");
        return;
    }
    for (int t0 = 0; t0 < n_tok; t0 += 8) {
        const int nt = n_tok - t0 < 8 ? n_tok - t0 : 8;
        const float* x = X + (size_t)t0 * cols;
        float* y = Y + (size_t)t0 * rows;
        const bool ok = with_chunk_decoder(t, [&]<GgmlType T>() { launch_matvec<T>(W, rows, cols, x, nt, y, s); });
        if (!ok) throw Error("CUDA matmul: no kernel for weight type " + std::string(format_info(t).name));
    }
    check_launch("matvec");
}

constexpr int kMmqMaxTokens = 16;  // matvec_mma.h's steps

// int8 path over groups of 8 tokens (of up to 16 on the tensor cores where matvec_mma.h applies); jobs
// all of type t with int8_applies.
void matmul_int8(GgmlType t, const mmvq::Job* jobs, int n_jobs, int64_t cols, const void* act_q8, int n_tok,
                 cudaStream_t s) {
    // act_q8 is a matmul_scratch_bytes buffer (the forward's, written by the fused quantize kernels)
    const mmvq::ActView x = mmvq::scratch_view(const_cast<void*>(act_q8), n_tok, cols);
    int64_t rows = 0;
    for (int i = 0; i < n_jobs; i++) rows += jobs[i].rows;
    for (int t0 = 0; t0 < n_tok;) {
        const Int8Pass p = matmul_int8_pass(t, n_tok - t0, rows, cols);
        mmvq::Job g[mmvq::kMaxJobs];
        for (int i = 0; i < n_jobs; i++) g[i] = {jobs[i].W, jobs[i].rows, jobs[i].Y + (size_t)t0 * jobs[i].rows};
        if (p.mma)
            mmq::launch(t, g, n_jobs, cols, x.tokens_from(t0), p.n_tok, s);
        else
            mmvq::launch(t, g, n_jobs, cols, x.tokens_from(t0), p.n_tok, s);
        t0 += p.n_tok;
    }
}
}  // namespace

bool matmul_has_int8_path(GgmlType t) { return mmvq::supported(t); }

bool matmul_int8_applies(GgmlType t, const void* W, int64_t cols) { return mmvq::can_run(t, W, cols); }

void set_matvec_tuning(int rows_per_warp, bool persistent, bool pdl) {
    mmvq::set_tuning({rows_per_warp == 1 || rows_per_warp == 2 ? rows_per_warp : 0, persistent ? 1 : 0, pdl ? 1 : 0});
}

void set_matvec_kernel(int version) { mmvq::set_kernel(version); }
int matvec_kernel() { return mmvq::kernel(); }
void set_matvec_mma(bool on) { mmq::set_enabled(on); }
bool matvec_mma() { return mmq::enabled(); }
int matvec_mma_mode() { return mmq::mode(); }
void set_matvec_mma_mode(int mode) { mmq::set_mode(mode); }
void set_matvec_mma_f16(bool on) { mmqh::set_enabled(on); }
bool matvec_mma_f16_applies(GgmlType t, int n_tok) { return mmqh::applies(t, n_tok); }
Int8Pass matmul_int8_pass(GgmlType t, int n_left, int64_t rows, int64_t cols) {
    const bool mma = mmq::applies(t, std::min(n_left, kMmqMaxTokens), rows, cols);
    const int nt = std::min(n_left, mma ? kMmqMaxTokens : 8);
    return {nt, mma, mma && mmqh::applies(t, nt)};  // as mmq::launch picks its version
}

namespace {
int g_fused_decode = -1;  // -1: not chosen yet
}  // namespace

void set_fused_decode(bool on) { g_fused_decode = on ? 1 : 0; }

bool fused_decode() {
    if (g_fused_decode < 0) {
        g_fused_decode = env_switch("ROTOR_FUSED_DECODE", 1);  // on unless ROTOR_FUSED_DECODE=0
    }
    return g_fused_decode == 1;
}

void matmul(GgmlType t, const void* W, int64_t rows, int64_t cols, const float* X, int n_tok, float* Y,
            cudaStream_t s, void* act_scratch) {
    if (n_tok <= 0 || rows <= 0) return;
    if (act_scratch && matmul_int8_applies(t, W, cols)) {
        quantize_act_q8(X, n_tok, cols, act_scratch, s);
        const mmvq::Job job{W, rows, Y};
        matmul_int8(t, &job, 1, cols, act_scratch, n_tok, s);
        return;
    }
    matmul_exact(t, W, rows, cols, X, n_tok, Y, s);
}

void matmul_q8(GgmlType t, const void* W, int64_t rows, int64_t cols, const float* X, const void* act_q8, int n_tok,
               float* Y, cudaStream_t s) {
    if (n_tok <= 0 || rows <= 0) return;
    if (matmul_int8_applies(t, W, cols)) {
        const mmvq::Job job{W, rows, Y};
        matmul_int8(t, &job, 1, cols, act_q8, n_tok, s);
        return;
    }
    matmul_exact(t, W, rows, cols, X, n_tok, Y, s);
}

void matmul_multi(const MatmulJob* jobs, int n_jobs, int64_t cols, const float* X, int n_tok, cudaStream_t s,
                  void* act_scratch) {
    if (n_tok <= 0) return;
    bool any = false;
    for (int i = 0; i < n_jobs; i++)
        any = any || (act_scratch && jobs[i].rows > 0 && matmul_int8_applies(jobs[i].type, jobs[i].W, cols));
    if (any) quantize_act_q8(X, n_tok, cols, act_scratch, s);
    matmul_multi_q8(jobs, n_jobs, cols, X, any ? act_scratch : nullptr, n_tok, s);
}

void matmul_multi_q8(const MatmulJob* jobs, int n_jobs, int64_t cols, const float* X, const void* act_q8, int n_tok,
                     cudaStream_t s) {
    if (n_tok <= 0) return;
    std::vector<bool> int8(n_jobs, false);
    for (int i = 0; i < n_jobs; i++)
        int8[i] = act_q8 && jobs[i].rows > 0 && matmul_int8_applies(jobs[i].type, jobs[i].W, cols);
    std::vector<bool> done(n_jobs, false);
    for (int i = 0; i < n_jobs; i++) {
        if (done[i]) continue;
        if (!int8[i]) {
            matmul_exact(jobs[i].type, jobs[i].W, jobs[i].rows, cols, X, n_tok, jobs[i].Y, s);
            continue;
        }
        // this job and the later int8 jobs of its type: one launch
        mmvq::Job group[mmvq::kMaxJobs];
        int n = 0;
        for (int k = i; k < n_jobs && n < mmvq::kMaxJobs; k++)
            if (!done[k] && int8[k] && jobs[k].type == jobs[i].type) {
                group[n++] = {jobs[k].W, jobs[k].rows, jobs[k].Y};
                done[k] = true;
            }
        matmul_int8(jobs[i].type, group, n, cols, act_q8, n_tok, s);
    }
}

void get_rows(GgmlType t, const void* table, int64_t cols, const int32_t* ids, int n, float* out, cudaStream_t s) {
    if (n == 0) return;
    const size_t rb = row_bytes(t, (uint64_t)cols);
    if (!weight_rows_supported(t, cols))
        throw Error("CUDA get_rows: row length " + std::to_string(cols) + " is not a multiple of 8");
    if (cols % 8) {
        get_rows_float_any_kernel<<<n, 128, 0, s>>>(t, static_cast<const uint8_t*>(table), rb, (int)cols, ids, out);
        check_launch("get_rows_float_any");
        return;
    }
    const bool ok = with_chunk_decoder(t, [&]<GgmlType T>() {
        get_rows_kernel<T><<<n, 128, 0, s>>>(static_cast<const uint8_t*>(table), rb, (int)cols, ids, out);
    });
    if (!ok) throw Error("CUDA get_rows: no kernel for type " + std::string(format_info(t).name));
    check_launch("get_rows");
}

void rms_norm(const float* x, const float* w, float* y, int rows, int n, float eps, cudaStream_t s) {
    if (rows == 0) return;
    const int threads = n >= 1024 ? 1024 : (n + 31) / 32 * 32;
    rms_norm_kernel<<<rows, threads, 0, s>>>(x, w, y, n, eps);
    check_launch("rms_norm");
}

void add_bias(float* y, const float* b, int rows, int n, cudaStream_t s) {
    const int64_t total = (int64_t)rows * n;
    if (total == 0) return;
    add_bias_kernel<<<blocks_for(total, 256), 256, 0, s>>>(y, b, total, n);
    check_launch("add_bias");
}

void add(float* x, const float* y, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    add_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, y, n);
    check_launch("add");
}

void swiglu(float* gate, const float* up, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    swiglu_kernel<<<blocks_for(n, 256), 256, 0, s>>>(gate, up, n);
    check_launch("swiglu");
}

void rope(float* x, int n_tok, int n_head, int head_dim, int n_rot, bool neox, const int32_t* pos,
          const float* inv_freq, cudaStream_t s) {
    if (n_tok == 0 || n_rot == 0) return;
    rope_kernel<<<n_tok, 256, 0, s>>>(x, n_head, head_dim, n_rot, neox, pos, inv_freq);
    check_launch("rope");
}


// ---------------------------------------------------------------- fused decode-path entry points

namespace {
Q8Out q8_out(void* scratch, int n_tok, int64_t cols) {
    Q8Out o;
    if (!scratch) return o;
    const ActQ8Layout L = act_q8_layout(n_tok, cols);
    char* b = static_cast<char*>(scratch);
    o.codes = reinterpret_cast<int8_t*>(b + L.codes);
    o.d = reinterpret_cast<float*>(b + L.d);
    o.s = reinterpret_cast<float*>(b + L.s);
    o.code_stride = L.code_stride;
    o.ds_stride = L.ds_stride;
    return o;
}

// Elements per thread of a fused norm (rms_norm's block), rounded up to an instantiated MAXJ; 0 when
// above 16.
int norm_max_j(int n) {
    const int per = (n + norm_threads(n) - 1) / norm_threads(n);
    for (int m : {1, 2, 4, 8, 16})
        if (per <= m) return m;
    return 0;
}
}  // namespace

void add_rms_norm_q8(float* x, const float* y, const float* w, float* xn, int rows, int n, float eps, void* act_q8,
                     cudaStream_t s) {
    if (rows == 0) return;
    if (act_q8 && n % 32) throw Error("add_rms_norm_q8: int8 activations need rows of a multiple of 32");
    const int threads = norm_threads(n);
    const Q8Out q = q8_out(act_q8, rows, n);
    switch (norm_max_j(n)) {
#define ROTOR_NORM(M)                                                                              \
    case M:                                                                                        \
        mmvq::launch_pdl(add_rms_norm_q8_kernel<M>, rows, threads, s, x, y, w, xn, n, eps, q);     \
        break;
        ROTOR_NORM(1) ROTOR_NORM(2) ROTOR_NORM(4) ROTOR_NORM(8) ROTOR_NORM(16)
#undef ROTOR_NORM
        default:  // rows longer than a block holds in registers: the kernels one by one
            if (y) add(x, y, (int64_t)rows * n, s);
            rms_norm(x, w, xn, rows, n, eps, s);
            if (act_q8) quantize_act_q8(xn, rows, n, act_q8, s);
            return;
    }
    check_launch("add_rms_norm_q8");
}

void get_rows_rms_norm_q8(GgmlType t, const void* table, const int32_t* ids, float* x, const float* w, float* xn,
                          int rows, int n, float eps, void* act_q8, cudaStream_t s) {
    if (rows == 0) return;
    if (act_q8 && n % 32) throw Error("get_rows_rms_norm_q8: int8 activations need rows of a multiple of 32");
    const int threads = norm_threads(n);
    bool fused = n % 8 == 0 && (n + threads - 1) / threads <= kEmbedMaxJ;
    if (fused) {
        const size_t rb = row_bytes(t, (uint64_t)n);
        const Q8Out q = q8_out(act_q8, rows, n);
        fused = with_chunk_decoder(t, [&]<GgmlType T>() {
            mmvq::launch_pdl(get_rows_norm_q8_kernel<T>, rows, threads, s, static_cast<const uint8_t*>(table), rb,
                             ids, x, w, xn, n, eps, q);
        });
    }
    if (!fused) {  // rows get_rows decodes element by element, or too long for one block: two launches
        get_rows(t, table, n, ids, rows, x, s);
        add_rms_norm_q8(x, nullptr, w, xn, rows, n, eps, act_q8, s);
        return;
    }
    check_launch("get_rows_rms_norm_q8");
}

void swiglu_q8(float* gate, const float* up, int n_tok, int64_t n, void* act_q8, cudaStream_t s) {
    if (n_tok == 0 || n == 0) return;
    if (n % 32) throw Error("swiglu_q8: int8 activations need rows of a multiple of 32");
    const int64_t warps = (int64_t)n_tok * (n / 32);
    constexpr int kWarpsPerBlock = 8;
    mmvq::launch_pdl(swiglu_q8_kernel, blocks_for(warps, kWarpsPerBlock), kWarpsPerBlock * kWarp, s, gate, up, n, warps,
                     q8_out(act_q8, n_tok, n));
    check_launch("swiglu_q8");
}

bool qkv_prep(const QkvPrep& p, const KvLayerView& kv, int n_tok, cudaStream_t s) {
    const int dmax = std::max(p.head_dim_k, p.head_dim_v);
    if (dmax > kQkvMaxDim || p.n_rot > p.head_dim_k || p.n_rot % 2 || kv.n_head_kv != p.n_head_kv)
        throw Error("qkv_prep: head sizes up to " + std::to_string(kQkvMaxDim) + " and n_rot <= the K head size");
    const int store = kv.elem == KvElem::F32 ? 1 : (kv.elem == KvElem::F16 ? 2 : 0);
    if (n_tok == 0) return store != 0;
    const dim3 grid((unsigned)n_tok, (unsigned)(p.n_head + 2 * p.n_head_kv));
    const int threads = (dmax + 31) / 32 * 32;
    // the query's rotation in the kernel: randomized Hadamard (tcq, tbq) or plain (*h); RotorQuant's
    // is the caller's (kv_rotate_rows after this)
    const int rot = kv_elem_randomized(kv.elem)
                        ? 2
                        : (kv_elem_rotated(kv.elem) && !kv_elem_rotorquant_bits(kv.elem) ? 1 : 0);
    switch (store) {
        case 1:
            mmvq::launch_pdl(qkv_prep_kernel<1>, grid, threads, s, p, kv.k, kv.v, kv.ctx, rot);
            break;
        case 2:
            mmvq::launch_pdl(qkv_prep_kernel<2>, grid, threads, s, p, kv.k, kv.v, kv.ctx, rot);
            break;
        default:
            mmvq::launch_pdl(qkv_prep_kernel<0>, grid, threads, s, p, kv.k, kv.v, kv.ctx, rot);
            break;
    }
    check_launch("qkv_prep");
    return store != 0;
}

}  // namespace rotor::cuda
