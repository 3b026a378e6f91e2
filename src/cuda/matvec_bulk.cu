// Kernel 4 of the int8 mat-vec (matvec_bulk.h): one token, q4_K / q5_K / q6_K, sm_90+.
//
// Why: at one token kernel 3 reads large matrices at 51-71% of the copy bandwidth and the decode step
// runs at 43% (bench/RESULTS.md, "Kernel 3"). Its bytes in flight are what its lanes' registers hold
// (two spans of two rows per lane, 16 warps per SM at 128 registers), and each warp's last round of
// row groups leaves SMs idle. Here the copies cost one instruction per tile: thread 0 of a block
// issues a bulk copy (cp.async.bulk, the TMA's plain form) of a tile of whole consecutive rows into
// one of kStages shared-memory stages, and the copy signals an mbarrier when its bytes have landed.
// Every block keeps kStages - 1 tiles in flight while its warps dot the oldest, so an SM with three
// blocks keeps about 100 KB in flight whatever the registers. The arithmetic is the other kernels'
// (mmvq_units.h): a warp takes (row, span) items of the tile, each lane one unit; the activations
// (one token) sit in shared memory, copied once per block. Sums of a row's spans meet in shared memory
// in a fixed order, so the result does not depend on timing. Tiles are strided over a persistent grid.
#include <algorithm>
#include <string>

#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/matvec_bulk.h"
#include "cuda/mmvq_units.h"
#include "cuda/pdl.cuh"

namespace rotor::cuda::mmvq::bulk {

namespace {

using namespace ::rotor::mmvq;

constexpr int kWarps = 8;
constexpr int kStages = 4;
// The fixed cost of a tile in choose_tile_rows, in bytes of copy time: the wait, the block barrier and
// the sums (a guess: a tenth of a 20 KB tile).
constexpr int64_t kTileOverhead = 2048;
constexpr int kMaxTileRows = 16;

struct Args {
    Jobs jobs;  // groups of `rt` rows: a tile never crosses matrices
    int64_t row_bytes;
    int nb, n_spans, rt, n_tiles;
    int stage_bytes;  // a multiple of 128
    int act_codes;    // activation codes of the token row in shared memory (a multiple of 2048)
    int n_scales;     // floats of d (and of s) in shared memory
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// The rows of one tile.
struct Tile {
    const uint8_t* w;
    float* y;
    int row0, nr;
};
__device__ inline Tile tile_at(const Args& a, int g) {
    const JobAt m = job_at(a.jobs, g);
    Tile t;
    t.row0 = (g - m.first) * a.rt;
    t.nr = min(a.rt, m.rows - t.row0);
    t.w = m.w + (size_t)t.row0 * a.row_bytes;
    t.y = m.y;
    return t;
}

// mbarrier and bulk-copy wrappers (sm_90 PTX; the kernel body is compiled for sm_90+ only).
__device__ inline void mbar_init(uint64_t* bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
__device__ inline void mbar_fence_init() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// Thread 0's arrival, announcing the bytes the copy will deliver.
__device__ inline void mbar_expect(uint64_t* bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes)
                 : "memory");
}
__device__ inline void mbar_wait(uint64_t* bar, unsigned parity) {
    uint32_t done = 0;
    do {
        asm volatile(
            "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, "
            "p;\n}\n"
            : "=r"(done)
            : "r"(smem_u32(bar)), "r"(parity)
            : "memory");
    } while (!done);
}
// bytes (a multiple of 16) global -> shared, both 16-byte aligned; completes on bar.
__device__ inline void bulk_copy(void* dst, const void* src, unsigned bytes, uint64_t* bar) {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // earlier reads of dst by this CTA first
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
            smem_u32(dst)),
        "l"(src), "r"(bytes), "r"(smem_u32(bar))
        : "memory");
}
#endif

template <GgmlType T>
__global__ void __launch_bounds__(kWarps* kWarp, 2) mmvq_bulk_kernel(Args a, ActView x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    using U = Unit<T>;
    using W = typename U::W;
    constexpr int kSpanElems = U::kSpanBlocks * U::kBlockElems;
    static_assert(U::kSpanBlocks * U::kUnitsPerBlock == kWarp && kSpanElems == kActSpan);
    pdl_trigger();
    extern __shared__ __align__(128) uint8_t smem[];
    uint64_t* bar = reinterpret_cast<uint64_t*>(smem);  // kStages barriers, then the stages
    uint8_t* stages = smem + 128;
    int8_t* act = reinterpret_cast<int8_t*>(stages + (size_t)kStages * a.stage_bytes);
    float* act_d = reinterpret_cast<float*>(act + a.act_codes);
    float* act_s = act_d + a.n_scales;
    float* sums = act_s + a.n_scales;  // [2][rt * n_spans]: the items of two tiles in turn

    const int tid = threadIdx.x, warp = tid / kWarp, lane = tid % kWarp;
    const int my_tiles =
        ((int)blockIdx.x < a.n_tiles) ? (a.n_tiles - 1 - (int)blockIdx.x) / (int)gridDim.x + 1 : 0;
    if (my_tiles == 0) return;
    if (tid == 0) {
        for (int s = 0; s < kStages; s++) mbar_init(bar + s, 1);
        mbar_fence_init();
    }
    __syncthreads();
    // The tile's bytes from the 16-byte boundary at or before its first row to the one at or after its
    // end (within the allocation: GPU allocations are 256-byte granular and 16-byte aligned matrices).
    auto issue = [&](int k) {
        const Tile t = tile_at(a, (int)blockIdx.x + k * (int)gridDim.x);
        const uintptr_t b = reinterpret_cast<uintptr_t>(t.w) & ~uintptr_t(15);
        const uintptr_t e =
            (reinterpret_cast<uintptr_t>(t.w) + (size_t)t.nr * a.row_bytes + 15) & ~uintptr_t(15);
        uint64_t* mb = bar + k % kStages;
        mbar_expect(mb, (unsigned)(e - b));
        bulk_copy(stages + (size_t)(k % kStages) * a.stage_bytes, reinterpret_cast<const void*>(b),
                  (unsigned)(e - b), mb);
    };
    if (tid == 0)
        for (int k = 0; k < kStages && k < my_tiles; k++) issue(k);  // the weights need no earlier kernel

    pdl_wait();  // the activations (and our output) belong to earlier kernels
    for (int i = tid; i < a.act_codes / 16; i += kWarps * kWarp)
        reinterpret_cast<int4*>(act)[i] = __ldg(reinterpret_cast<const int4*>(x.codes) + i);
    for (int i = tid; i < a.n_scales; i += kWarps * kWarp) {
        act_d[i] = __ldg(x.d + i);
        act_s[i] = U::kHasMin ? __ldg(x.s + i) : 0.0f;
    }
    __syncthreads();

    const int jb = lane / U::kUnitsPerBlock, sub = lane % U::kUnitsPerBlock;
    const int e_lane = jb * U::kBlockElems + U::group_offset(sub, 0);
    const int code_lane = (int)act_code_index(e_lane), ds_lane = e_lane / 32;
    for (int k = 0; k < my_tiles; k++) {
        const Tile t = tile_at(a, (int)blockIdx.x + k * (int)gridDim.x);
        const uint8_t* rows =
            stages + (size_t)(k % kStages) * a.stage_bytes + (reinterpret_cast<uintptr_t>(t.w) & 15);
        float* sk = sums + (k & 1) * a.rt * a.n_spans;
        const int items = t.nr * a.n_spans;
        mbar_wait(bar + k % kStages, (unsigned)(k / kStages) & 1u);
        for (int it = warp; it < items; it += kWarps) {
            const int r = it / a.n_spans, sp = it - r * a.n_spans;
            const int blk = sp * U::kSpanBlocks + jb;
            float v = 0.0f;
            if (blk < a.nb) {  // the row's last span may be partial (its activation scales end with the row)
                W w;
                U::load(rows + (size_t)r * a.row_bytes + (size_t)blk * U::kBlockBytes, sub, w);
                const int e_span = sp * kSpanElems;
                const int8_t* cb = act + e_span + code_lane;
                const int ds = e_span / 32 + ds_lane;
                UnitAct<T> xa;
                load_unit_act_at<T>(cb, act_d + ds, act_s + ds, [](const auto* p) { return *p; }, xa);
                v = unit_dot<T>(w, xa);
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            if (lane == 0) sk[it] = v;
        }
        __syncthreads();  // the stage is read and the items' sums are written
        if (tid == 0 && k + kStages < my_tiles) issue(k + kStages);
        if (tid < t.nr) {
            float y = 0.0f;
            for (int sp = 0; sp < a.n_spans; sp++) y += sk[tid * a.n_spans + sp];
            t.y[t.row0 + tid] = y;
        }
    }
#endif
}

struct Geometry {
    int stage_bytes, act_codes, n_scales, n_spans, nb;
    size_t smem(int rt) const {
        return 128 + (size_t)kStages * stage_bytes + (size_t)act_codes + 2ull * n_scales * 4 +
               2ull * rt * n_spans * 4;
    }
};
template <GgmlType T>
Geometry geometry(int64_t cols, int rt) {
    using U = Unit<T>;
    Geometry g;
    const int64_t rb = (int64_t)row_bytes(T, (uint64_t)cols);
    g.stage_bytes = (int)((rt * rb + 32 + 127) / 128 * 128);
    g.act_codes = (int)act_row_codes(cols);
    g.n_scales = (int)(cols / 32);
    g.nb = (int)(cols / U::kBlockElems);
    g.n_spans = (g.nb + U::kSpanBlocks - 1) / U::kSpanBlocks;
    return g;
}

template <GgmlType T>
unsigned resident(size_t smem) {
    static size_t last_smem = 0;  // per type; one GPU per process in rotor
    static unsigned last = 0;
    if (!last)
        check(cudaFuncSetAttribute(mmvq_bulk_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   max_smem_optin()),
              "bulk mat-vec shared memory");
    if (smem != last_smem || !last)
        last = resident_blocks(mmvq_bulk_kernel<T>, kWarps * kWarp, smem), last_smem = smem;
    return last;
}

// ROTOR_MMVQ_BULK_RT (benchmarks): rows per tile for every launch, 1 .. kMaxTileRows, as far as the
// tile fits (0 or unset: choose_tile_rows).
int forced_tile_rows() {
    static const int v = env_int("ROTOR_MMVQ_BULK_RT", 0, 0, kMaxTileRows);
    return v;
}

// Rows per tile: the fewest rounds of tiles over the resident blocks (of that tile's size) times the
// bytes of a tile plus kTileOverhead.
template <GgmlType T>
int choose_tile_rows(const Job* job, int n_jobs, int64_t cols) {
    const int64_t rb = (int64_t)row_bytes(T, (uint64_t)cols);
    const int max_rt = (int)std::max<int64_t>(1, std::min<int64_t>(kMaxTileRows, kMaxRowBytes / rb));
    if (const int f = forced_tile_rows(); f > 0) {
        int rt = std::min(f, max_rt);
        while (rt > 1 && geometry<T>(cols, rt).smem(rt) > (size_t)max_smem_optin()) rt--;
        return rt;
    }
    int best = 1;
    int64_t best_cost = -1;
    for (int rt = 1; rt <= max_rt; rt++) {
        int64_t tiles = 0;
        for (int i = 0; i < n_jobs; i++) tiles += (job[i].rows + rt - 1) / rt;
        const size_t smem = geometry<T>(cols, rt).smem(rt);
        if (smem > (size_t)max_smem_optin()) break;
        const int64_t slots = resident<T>(smem);
        const int64_t cost = (tiles + slots - 1) / slots * (rt * rb + kTileOverhead);
        if (best_cost < 0 || cost < best_cost) best = rt, best_cost = cost;
    }
    return best;
}

template <GgmlType T>
void launch_type(const Job* job, int n_jobs, int64_t cols, const ActView& x, cudaStream_t s) {
    const int rt = choose_tile_rows<T>(job, n_jobs, cols);
    const Geometry g = geometry<T>(cols, rt);
    Args a;
    a.jobs = make_jobs(job, n_jobs, rt);
    a.row_bytes = (int64_t)row_bytes(T, (uint64_t)cols);
    a.nb = g.nb;
    a.n_spans = g.n_spans;
    a.rt = rt;
    a.n_tiles = a.jobs.group_end[n_jobs - 1];
    a.stage_bytes = g.stage_bytes;
    a.act_codes = g.act_codes;
    a.n_scales = g.n_scales;
    if (a.n_tiles == 0) return;
    const size_t smem = g.smem(rt);
    const unsigned grid = std::min<unsigned>((unsigned)a.n_tiles, resident<T>(smem));
    launch_pdl_smem(mmvq_bulk_kernel<T>, grid, kWarps * kWarp, smem, s, a, x);
}

}  // namespace

bool applies(GgmlType t, int64_t cols) {
    if (t != GgmlType::Q4_K && t != GgmlType::Q5_K && t != GgmlType::Q6_K) return false;
    if (cols <= 0 || cols % 256 || (int64_t)row_bytes(t, (uint64_t)cols) > kMaxRowBytes || !sm90_or_later())
        return false;
    size_t smem = 0;  // of one-row tiles, the least
    switch (t) {
        case GgmlType::Q4_K:
            smem = geometry<GgmlType::Q4_K>(cols, 1).smem(1);
            break;
        case GgmlType::Q5_K:
            smem = geometry<GgmlType::Q5_K>(cols, 1).smem(1);
            break;
        default:
            smem = geometry<GgmlType::Q6_K>(cols, 1).smem(1);
    }
    return smem <= (size_t)max_smem_optin();
}

void launch(GgmlType t, const Job* jobs, int n_jobs, int64_t cols, const ActView& x, cudaStream_t s) {
    if (!applies(t, cols))
        throw Error("bulk mat-vec: does not take " + std::string(format_info(t).name) + " here");
    switch (t) {
        case GgmlType::Q4_K:
            return launch_type<GgmlType::Q4_K>(jobs, n_jobs, cols, x, s);
        case GgmlType::Q5_K:
            return launch_type<GgmlType::Q5_K>(jobs, n_jobs, cols, x, s);
        case GgmlType::Q6_K:
            return launch_type<GgmlType::Q6_K>(jobs, n_jobs, cols, x, s);
        default:
            throw Error("bulk mat-vec: unsupported type");
    }
}

}  // namespace rotor::cuda::mmvq::bulk
