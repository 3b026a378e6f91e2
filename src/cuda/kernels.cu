#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/half.h"
#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/kernels.h"
#include "cuda/matvec_q8.h"
#include "cuda/pdl.cuh"
#include "formats/chunk_decode.h"

namespace rotor::cuda {

namespace {

// ---------------------------------------------------------------- mat-vec

constexpr int kMatvecWarps = 4;  // warps per block of every mat-vec kernel

// A warp computes RW rows for NT tokens: each lane takes 8-element chunks c = lane, lane + 32, ...,
// loads the NT activation chunks once and dots them with the same chunk of its RW rows. The RW rows'
// weight loads are independent, so a warp keeps RW times more bytes in flight (a decode mat-vec is
// bound by memory latency x bytes in flight), and each activation load serves RW rows.
template <GgmlType T, int NT, int RW>
__global__ void __launch_bounds__(kMatvecWarps* kWarp)
    matvec_kernel(const uint8_t* __restrict__ W, size_t row_bytes, int64_t rows, int cols,
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
            xa[t] = __ldg(xp);
            xb[t] = __ldg(xp + 1);
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
            if (lane == 0 && r < nr) Y[(size_t)t * rows + row0 + r] = sum;
        }
}

template <GgmlType T, int NT>
void launch_matvec_nt(const uint8_t* w, size_t rb, int64_t rows, int64_t cols, const float* X, float* Y, cudaStream_t s) {
    // rows per warp: more rows keep more bytes in flight, but fewer warps; on H200 only f32 gains
    constexpr int RW = (T == GgmlType::F32 && NT <= 2) ? 4 : 1;  // measured: only f32 rows gain
    const unsigned grid = blocks_for(rows, kMatvecWarps * RW);
    matvec_kernel<T, NT, RW><<<grid, kMatvecWarps * kWarp, 0, s>>>(w, rb, rows, (int)cols, X, Y);
}

template <GgmlType T>
void launch_matvec(const void* W, int64_t rows, int64_t cols, const float* X, int nt, float* Y, cudaStream_t s) {
    const size_t rb = row_bytes(T, (uint64_t)cols);
    const auto* w = static_cast<const uint8_t*>(W);
    switch (nt) {
#define ROTOR_NT(N) \
    case N: launch_matvec_nt<T, N>(w, rb, rows, cols, X, Y, s); break;
        ROTOR_NT(1) ROTOR_NT(2) ROTOR_NT(3) ROTOR_NT(4) ROTOR_NT(5) ROTOR_NT(6) ROTOR_NT(7) ROTOR_NT(8)
#undef ROTOR_NT
        default: throw Error("matvec: bad token group");
    }
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

__global__ void swiglu_kernel(float* gate, const float* __restrict__ up, int64_t n) {
    pdl_trigger();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

__global__ void rope_kernel(float* x, int n_head, int head_dim, int n_rot, bool neox, const int32_t* __restrict__ pos,
                            const float* __restrict__ inv_freq) {
    const int t = blockIdx.x, half = n_rot / 2;
    const float p = (float)pos[t];
    for (int k = threadIdx.x; k < n_head * half; k += blockDim.x) {
        const int h = k / half, i = k % half;
        float* v = x + ((size_t)t * n_head + h) * head_dim;
        const float theta = p * inv_freq[i];
        float sn, cs;
        sincosf(theta, &sn, &cs);
        const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs - x1 * sn;
        v[b] = x0 * sn + x1 * cs;
    }
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

// int8 path over groups of 8 tokens; jobs all of type t with int8_applies.
void matmul_int8(GgmlType t, const mmvq::Job* jobs, int n_jobs, int64_t cols, const void* act_q8, int n_tok,
                 cudaStream_t s) {
    const mmvq::ActView x = mmvq::act_view(act_q8, n_tok, cols);
    for (int t0 = 0; t0 < n_tok; t0 += 8) {
        const int nt = n_tok - t0 < 8 ? n_tok - t0 : 8;
        mmvq::Job g[mmvq::kMaxJobs];
        for (int i = 0; i < n_jobs; i++) g[i] = {jobs[i].W, jobs[i].rows, jobs[i].Y + (size_t)t0 * jobs[i].rows};
        mmvq::launch(t, g, n_jobs, cols, x.tokens_from(t0), nt, s);
    }
}
}  // namespace

bool matmul_has_int8_path(GgmlType t) { return mmvq::supported(t); }

bool matmul_int8_applies(GgmlType t, const void* W, int64_t cols) { return mmvq::can_run(t, W, cols); }

void set_matvec_tuning(int rows_per_warp, bool persistent, bool pdl) {
    mmvq::set_tuning({rows_per_warp == 1 || rows_per_warp == 2 ? rows_per_warp : 0, persistent ? 1 : 0, pdl ? 1 : 0});
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
    std::vector<bool> int8(n_jobs, false);
    bool any = false;
    for (int i = 0; i < n_jobs; i++) {
        int8[i] = act_scratch && jobs[i].rows > 0 && matmul_int8_applies(jobs[i].type, jobs[i].W, cols);
        any = any || int8[i];
    }
    if (any) quantize_act_q8(X, n_tok, cols, act_scratch, s);
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
        matmul_int8(jobs[i].type, group, n, cols, act_scratch, n_tok, s);
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

}  // namespace rotor::cuda
