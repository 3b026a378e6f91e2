// Internal to the CUDA backend: the int8-activation mat-vec (matvec_q8.cu) that kernels.cu's matmul
// runs for q8_0, q4_0, q4_K, q5_K and q6_K weights. See mmvq_units.h for the arithmetic.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <utility>

#include "common/error.h"
#include "formats/formats.h"

namespace rotor::cuda::mmvq {

// Activations of n_tok tokens quantized once (quantize_act_q8): token t's codes at
// codes + t * code_stride (in mmvq_units.h's act_code_index order), its per-32 scales and scaled
// sums at d / s + t * ds_stride.
struct ActView {
    const int8_t* codes = nullptr;
    const float* d = nullptr;
    const float* s = nullptr;
    int64_t code_stride = 0, ds_stride = 0;
    // room after the activations for a kernel's split-K sums (matvec_mma_f16.h; scratch_view)
    float* split = nullptr;
    size_t split_bytes = 0;
    ActView tokens_from(int t0) const {
        ActView v = *this;
        v.codes += (size_t)t0 * code_stride;
        v.d += (size_t)t0 * ds_stride;
        v.s += (size_t)t0 * ds_stride;
        return v;
    }
};

// The view of quantize_act_q8's scratch for n_tok tokens of cols activations.
ActView act_view(const void* scratch, int n_tok, int64_t cols);
// Bytes of split-K room matmul_scratch_bytes adds after the activations of n_tok tokens.
size_t split_room(int n_tok);
// The view of a matmul_scratch_bytes(n_tok or more, cols or more) buffer: act_view plus its split room.
ActView scratch_view(void* scratch, int n_tok, int64_t cols);

// One weight matrix of a launch (several matrices of one type and row length can share a launch).
struct Job {
    const void* W = nullptr;
    int64_t rows = 0;
    float* Y = nullptr;  // [n_tok][rows]
};
constexpr int kMaxJobs = 3;

// The matrices of a launch as a kernel argument: rows of all of them are cut into groups of rw rows,
// numbered through the jobs in order (group_end: groups of jobs 0..j). The dp4a kernels use groups of
// 1 or 2 rows, the tensor-core kernel (matvec_mma.h) tiles of 16.
struct Jobs {
    const uint8_t* W[kMaxJobs];
    float* Y[kMaxJobs];
    int rows[kMaxJobs];
    int group_end[kMaxJobs];
    int n;
};
inline Jobs make_jobs(const Job* job, int n_jobs, int rw) {
    Jobs jobs{};
    jobs.n = n_jobs;
    int total = 0;
    for (int i = 0; i < n_jobs; i++) {
        jobs.W[i] = static_cast<const uint8_t*>(job[i].W);
        jobs.Y[i] = job[i].Y;
        jobs.rows[i] = (int)job[i].rows;
        total += (int)((job[i].rows + rw - 1) / rw);
        jobs.group_end[i] = total;
    }
    return jobs;
}

bool supported(GgmlType t);
// Whether the int8 kernel can read W (16-byte aligned; q4_K / q5_K rows of whole 16-byte pieces).
bool can_run(GgmlType t, const void* W, int64_t cols);
// Y_j = W_j X for n_jobs <= kMaxJobs jobs of type t, n_tok <= 8 tokens; can_run must hold for each W.
void launch(GgmlType t, const Job* jobs, int n_jobs, int64_t cols, const ActView& x, int n_tok,
            cudaStream_t s);
// quantize_act_q8's kernel
void quantize(const float* X, int n_tok, int64_t cols, void* scratch, cudaStream_t s);

// Kernel variants, for benchmarks and checks: rows per warp (1 or 2; 0 = automatic: 2), a
// persistent grid (one block per resident slot, rows strided over the warps) or one row group per
// warp, and programmatic dependent launch.
struct Tuning {
    int rows_per_warp = 0;
    int persistent = 1;
    int pdl = 1;  // programmatic dependent launch of the mat-vec and quantize kernels (sm_90+)
};
void set_tuning(const Tuning& t);
// The kernel version (kernels.h, set_matvec_kernel): 0 = automatic (2 or 3 per launch), 1, 2 or 3;
// the first call reads ROTOR_MMVQ.
void set_kernel(int version);
int kernel();

// Whether kernels launched on s use programmatic dependent launch (the tuning allows it, s is not the
// legacy default stream, the GPU is sm_90+).
bool pdl_enabled(cudaStream_t s);

#if defined(__CUDACC__)
// Matrix j of a launch, or the one group g belongs to (the index only ever used through constant
// subscripts: a run-time index into the kernel parameters would copy them to local memory).
struct JobAt {
    const uint8_t* w;
    float* y;
    int rows;
    int first;  // the matrix's first group
};
__device__ inline int job_index(const Jobs& jobs, int g) {
    return (jobs.n > 1 && g >= jobs.group_end[0]) + (jobs.n > 2 && g >= jobs.group_end[1]);
}
__device__ inline JobAt job_of(const Jobs& jobs, int j) {
    JobAt o;
    o.w = j == 0 ? jobs.W[0] : (j == 1 ? jobs.W[1] : jobs.W[2]);
    o.y = j == 0 ? jobs.Y[0] : (j == 1 ? jobs.Y[1] : jobs.Y[2]);
    o.rows = j == 0 ? jobs.rows[0] : (j == 1 ? jobs.rows[1] : jobs.rows[2]);
    o.first = j == 0 ? 0 : (j == 1 ? jobs.group_end[0] : jobs.group_end[1]);
    return o;
}
__device__ inline JobAt job_at(const Jobs& jobs, int g) {
    return job_of(jobs, job_index(jobs, g));
}

// Launches kernel with programmatic stream serialization where pdl_enabled(s): it may be scheduled
// while the previous kernel of the stream still runs (pdl.cuh says what the kernel must do).
template <class... P, class... A>
void launch_pdl_smem(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A&&... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl_enabled(s) ? 1 : 0;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);
    if (e != cudaSuccess) throw Error(std::string("CUDA: cudaLaunchKernelEx: ") + cudaGetErrorString(e));
}
template <class... P, class... A>
void launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t s, A&&... args) {
    launch_pdl_smem(kernel, grid, block, 0, s, std::forward<A>(args)...);
}
#endif

}  // namespace rotor::cuda::mmvq
