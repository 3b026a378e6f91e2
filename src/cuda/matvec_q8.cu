// The int8-activation mat-vec of the decode path (q8_0, q4_0, q4_K, q5_K, q6_K weights), built to
// keep HBM busy rather than the instruction issue:
//  - a warp owns RW rows (1 or 2) at a time and streams them through shared memory in spans of
//    whole blocks (32 units, one per lane: mmvq_units.h) with cp.async: ST - 1 spans in flight
//    ahead of the one being dotted, the next row group's included (a persistent grid strides the
//    row groups over the warps), 16-byte copies that are coalesced whatever the block size (q6_K's
//    210 bytes, q8_0's 34);
//  - each lane decodes its unit once (scales and mins once per 32 / 64 elements, codes as int8
//    words) and dots it with every token's activations (dp4a), so the weights are read once per
//    call for up to 8 tokens; the activations are quantized once per call (or once for several
//    matrices: kernels.h, matmul_multi) and are reused by the RW rows of a warp;
//  - up to three matrices of one type and row length share a launch (Q/K/V, gate/up);
//  - the mat-vec and quantize kernels use programmatic dependent launch (pdl.cuh): the weight
//    copies may start while the previous kernel of the stream still runs.
// Two kernels here (kernels.h, set_matvec_kernel; kernel 3 and the automatic choice between 2 and 3
// are described where kernel 3 is defined; kernel 4 is matvec_bulk.cu): 2, teams of warps split each
// row's spans, increments instead of divisions, activation offsets per lane computed once, 8 warps per
// block with dynamic shared memory, rows per group and team size chosen by the busiest warp's work
// (it replaced kernel 1, one warp per row group, whose H200 profile showed 58% issue slots busy at 676
// instructions per item and half the warps idle on the 8B down matrix: bench/RESULTS.md); 3, one token
// of q4_K / q5_K / q6_K read straight into registers.
#include <algorithm>
#include <cstdlib>
#include <utility>

#include "cuda/cp_async.cuh"
#include "cuda/cuda_util.h"
#include "cuda/kernels.h"
#include "cuda/matvec_bulk.h"
#include "cuda/matvec_q8.h"
#include "cuda/matvec_mma_f16.h"
#include "cuda/mmvq_units.h"
#include "cuda/pdl.cuh"

namespace rotor::cuda {

namespace mmvq {

namespace {

using namespace ::rotor::mmvq;

constexpr int kWarp = 32;
constexpr int kWarps = 8;  // warps per block

Tuning g_tuning;  // benchmarks and checks may change it

template <int RW>
inline constexpr int kStages = RW == 1 ? 4 : 3;  // spans per warp in the pipeline
// Blocks per SM the register allocation must allow: 3 x 8 warps for one token (more warps hide more
// latency; 80 registers, no spills), 2 for more tokens (their accumulators need the registers)
template <int NT>
inline constexpr int kMinBlocks = NT == 1 ? 3 : 2;

// All groups of a launch (a constant index: see pick).
__device__ inline int total_groups(const Jobs& jobs) {
    return jobs.n == 1 ? jobs.group_end[0] : (jobs.n == 2 ? jobs.group_end[1] : jobs.group_end[2]);
}

__device__ inline float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ inline void named_barrier(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// The rows of one group: its matrix, first row, rows in the group.
struct Group {
    const uint8_t* w;    // the group's first row
    const uint8_t* end;  // the end of its matrix
    float* y;
    int rows, row0, nr;
};
template <int RW>
__device__ inline Group group_at(const Jobs& jobs, int64_t row_bytes, int g) {
    const JobAt m = job_at(jobs, g);
    Group o;
    o.rows = m.rows;
    o.row0 = (g - m.first) * RW;
    o.nr = min(RW, o.rows - o.row0);
    o.w = m.w + (size_t)o.row0 * row_bytes;
    o.end = m.w + (size_t)o.rows * row_bytes;
    o.y = m.y;
    return o;
}

// Rows are cut into groups of RW rows and each row into spans of whole blocks (32 units, one per
// lane). A block's warps work in teams of WG (a power of two <= the spans of a row): a team takes one
// group at a time, its warp j the spans j, j + WG, ..., and the team's partial sums meet in shared
// memory (a fixed order: the result does not depend on timing). Teams stride over the groups
// (persistent grid). A warp's items (group, span) stream through ST shared-memory slots with cp.async,
// so the copies of the next items (next group included) are in flight while one is dotted. The
// per-item bookkeeping is increments only: the lane's activation offsets inside a span are computed
// once (act_code_index is additive over spans of 1024 and 2048 elements).
template <GgmlType T, int NT, int RW>
__global__ void __launch_bounds__(kWarps* kWarp, kMinBlocks<NT>)
    mmvq_kernel(Jobs jobs, int64_t row_bytes, int nb, int n_spans, int wg, ActView x) {
    using U = Unit<T>;
    constexpr int ST = kStages<RW>;
    constexpr int kSpan = U::kSpanBlocks * U::kBlockBytes;
    constexpr int kSpanElems = U::kSpanBlocks * U::kBlockElems;
    // a span copy starts at the 16-byte boundary at or before the span (up to 14 bytes earlier), and
    // load_words<N, 2> reads one word past a block: 32 bytes of room
    constexpr int kSlot = kSpan + 32;
    constexpr int kPieces = kSpan / 16 + 1;  // 16-byte copies of a span, at most
    constexpr int kPiecesPerLane = (kPieces + kWarp - 1) / kWarp;
    static_assert(kSpan % 16 == 0 && U::kSpanBlocks * U::kUnitsPerBlock == kWarp);
    static_assert(kSpanElems == 1024 || kSpanElems == 2048);  // act_code_index additive over spans
    extern __shared__ __align__(16) uint8_t smem[];
    __shared__ float red[2][kWarps][RW * NT];  // the teams' partial sums, by group parity
    pdl_trigger();

    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    uint8_t* slots = smem + (size_t)warp * ST * RW * kSlot;  // item k, row r: slots + (k % ST * RW + r) * kSlot
    const int teams = kWarps / wg, team = warp / wg, j = warp % wg;
    const int n_groups = total_groups(jobs);
    const int gstride = gridDim.x * teams;
    const int g0 = blockIdx.x * teams + team;
    if (g0 >= n_groups) return;  // the whole team: its named barrier is not used

    // producer: the next item to copy
    int pg = g0, psp = j, pk = 0;
    Group pgrp = group_at<RW>(jobs, row_bytes, pg);
    auto issue = [&]() {
        if (pg < n_groups) {
            const int64_t off = (int64_t)psp * kSpan;
            const int64_t len = min((int64_t)kSpan, row_bytes - off);
            uint8_t* dst0 = slots + (size_t)(pk % ST) * RW * kSlot;
#pragma unroll
            for (int r = 0; r < RW; r++) {
                if (r >= pgrp.nr) break;
                const uint8_t* a = pgrp.w + (size_t)r * row_bytes + off;
                const uint8_t* a16 = a - (reinterpret_cast<uintptr_t>(a) & 15);
                const int n16 = (int)((a + len - a16 + 15) / 16);
                const int64_t left = pgrp.end - a16;  // bytes of the matrix from a16 on
#pragma unroll
                for (int i = 0; i < kPiecesPerLane; i++) {
                    const int piece = lane + kWarp * i;
                    if (piece < n16) {
                        const int64_t rem = left - 16 * piece;
                        cp_async16(dst0 + r * kSlot + 16 * piece, a16 + 16 * piece, rem >= 16 ? 16 : (int)rem);
                    }
                }
            }
            psp += wg;
            if (psp >= n_spans) {
                psp = j;
                pg += gstride;
                if (pg < n_groups) pgrp = group_at<RW>(jobs, row_bytes, pg);
            }
        }
        cp_async_commit();
        pk++;
    };

    for (int k = 0; k < ST - 1; k++) issue();

    // this lane's unit: block jb of the span, unit sub; its activations' offsets inside a span
    const int jb = lane / U::kUnitsPerBlock, sub = lane % U::kUnitsPerBlock;
    constexpr int kChunks = U::kGroupElems / 16;
    uint32_t code_off[U::kGroups][kChunks], ds_off[U::kGroups];
#pragma unroll
    for (int g = 0; g < U::kGroups; g++) {
        const int e = jb * U::kBlockElems + U::group_offset(sub, g);
#pragma unroll
        for (int c = 0; c < kChunks; c++) code_off[g][c] = (uint32_t)act_code_index(e + 16 * c);
        ds_off[g] = (uint32_t)(e / 32);
    }
    pdl_wait();  // the activations (and our output) belong to earlier kernels

    float acc[RW][NT];
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
    int cg = g0, csp = j, par = 0;
    Group grp = group_at<RW>(jobs, row_bytes, cg);
    int shift[RW];  // where row r's spans start inside their 16-byte-aligned copies
#pragma unroll
    for (int r = 0; r < RW; r++) shift[r] = (int)(reinterpret_cast<uintptr_t>(grp.w + (size_t)r * row_bytes) & 15);
    for (int k = 0;; k++) {
        issue();                  // item k + ST - 1, into the slot computed in the previous iteration
        cp_async_wait<ST - 1>();  // item k has landed (this lane's copies)
        __syncwarp();             // ... and the other lanes'
        const int blk = csp * U::kSpanBlocks + jb;
        if (blk < nb) {
            const uint8_t* slot = slots + (size_t)(k % ST) * RW * kSlot;
            typename U::W wu[RW];
#pragma unroll
            for (int r = 0; r < RW; r++)
                if (r < grp.nr) U::load(slot + r * kSlot + shift[r] + jb * U::kBlockBytes, sub, wu[r]);
            const int64_t e_span = (int64_t)csp * kSpanElems;
            const int64_t code_base = act_code_index(e_span), ds_base = e_span / 32;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                const int8_t* cb = x.codes + (size_t)t * x.code_stride + code_base;
                const float* db = x.d + (size_t)t * x.ds_stride + ds_base;
                const float* sbp = x.s + (size_t)t * x.ds_stride + ds_base;
                UnitAct<T> xa;
#pragma unroll
                for (int g = 0; g < U::kGroups; g++) {
#pragma unroll
                    for (int c = 0; c < kChunks; c++) {
                        const int4 v = __ldg(reinterpret_cast<const int4*>(cb + code_off[g][c]));
                        uint32_t* o = xa.a + g * (U::kGroupElems / 4) + 4 * c;
                        o[0] = (uint32_t)v.x, o[1] = (uint32_t)v.y, o[2] = (uint32_t)v.z, o[3] = (uint32_t)v.w;
                    }
                    xa.d[g] = __ldg(db + ds_off[g]);
                    xa.s[g] = U::kHasMin ? __ldg(sbp + ds_off[g]) : 0.0f;
                }
#pragma unroll
                for (int r = 0; r < RW; r++) acc[r][t] += unit_dot<T>(wu[r], xa);
            }
        }
        __syncwarp();  // every lane is done with slot k % ST before it is refilled
        if (csp + wg < n_spans) {
            csp += wg;
            continue;
        }
        // the team's last span of this group: sum and write its rows
#pragma unroll
        for (int r = 0; r < RW; r++)
#pragma unroll
            for (int t = 0; t < NT; t++) {
                const float v = warp_sum(acc[r][t]);  // every lane holds the sum
                acc[r][t] = 0.0f;
                if (wg == 1) {
                    if (lane == 0 && r < grp.nr) grp.y[(size_t)t * grp.rows + grp.row0 + r] = v;
                } else if (lane == r * NT + t) {
                    red[par][warp][lane] = v;
                }
            }
        if (wg > 1) {
            named_barrier(1 + team, wg * kWarp);
            if (j == 0 && lane < RW * NT && lane / NT < grp.nr) {
                float v = 0.0f;
                for (int i = 0; i < wg; i++) v += red[par][team * wg + i][lane];
                grp.y[(size_t)(lane % NT) * grp.rows + grp.row0 + lane / NT] = v;
            }
            par ^= 1;  // the next group writes the other half: no second barrier needed
        }
        cg += gstride;
        if (cg >= n_groups) break;
        csp = j;
        grp = group_at<RW>(jobs, row_bytes, cg);
#pragma unroll
        for (int r = 0; r < RW; r++) shift[r] = (int)(reinterpret_cast<uintptr_t>(grp.w + (size_t)r * row_bytes) & 15);
    }
    cp_async_wait<0>();
}

template <GgmlType T, int RW>
constexpr size_t smem_bytes() {
    return (size_t)kWarps * kStages<RW> * RW * (Unit<T>::kSpanBlocks * Unit<T>::kBlockBytes + 32);
}

// Blocks of the kernel that fit on the GPU at once (the persistent grid); sets its shared-memory limit.
template <GgmlType T, int NT, int RW>
unsigned prepare_kernel() {
    static unsigned resident = 0;  // per instantiation (one GPU per process in rotor)
    if (resident) return resident;
    const auto kernel = mmvq_kernel<T, NT, RW>;
    const size_t smem = smem_bytes<T, RW>();
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), "smem limit");
    resident = resident_blocks(kernel, kWarps * kWarp, smem);
    return resident;
}

template <GgmlType T, int NT, int RW>
void launch_one(const Jobs& jobs, int64_t rb, int nb, int n_spans, int wg, const ActView& x, bool persistent,
                cudaStream_t s) {
    const unsigned resident = prepare_kernel<T, NT, RW>();
    const int groups = jobs.group_end[jobs.n - 1], teams = kWarps / wg;
    unsigned grid = (unsigned)((groups + teams - 1) / teams);
    if (persistent) grid = std::min(grid, resident);
    launch_pdl_smem(mmvq_kernel<T, NT, RW>, grid, kWarps * kWarp, smem_bytes<T, RW>(), s, jobs, rb, nb, n_spans, wg,
                    x);
}

// Instantiated: 1 row per group for 1-4 tokens, 2 rows per group for 1-8 tokens.
template <GgmlType T, int RW>
void launch_nt(const Jobs& jobs, int64_t rb, int nb, int n_spans, int wg, const ActView& x, int nt, bool persistent,
               cudaStream_t s) {
    switch (nt) {
#define ROTOR_NT(N)                                                           \
    case N:                                                                   \
        launch_one<T, N, RW>(jobs, rb, nb, n_spans, wg, x, persistent, s);   \
        return;
        ROTOR_NT(1) ROTOR_NT(2) ROTOR_NT(3) ROTOR_NT(4)
        default:
            break;
    }
    if constexpr (RW == 2) {
        switch (nt) {
            ROTOR_NT(5) ROTOR_NT(6) ROTOR_NT(7) ROTOR_NT(8)
#undef ROTOR_NT
            default:
                break;
        }
    }
    throw Error("int8 mat-vec: bad token group");
}

// Warps of the persistent grid of the kernel for nt tokens.
template <GgmlType T, int RW>
int64_t resident_warps(int nt) {
    unsigned blocks = 1;
    switch (nt) {
#define ROTOR_NT(N)                                  \
    case N:                                          \
        blocks = prepare_kernel<T, N, RW>();         \
        break;
        ROTOR_NT(1) ROTOR_NT(2) ROTOR_NT(3) ROTOR_NT(4)
        default:
            if constexpr (RW == 2) {
                switch (nt) {
                    ROTOR_NT(5) ROTOR_NT(6) ROTOR_NT(7) ROTOR_NT(8)
                    default:
                        break;
                }
            }
            break;
#undef ROTOR_NT
    }
    return (int64_t)blocks * kWarps;
}

// The work of the busiest warp, in block-rows, when `groups` groups of rw rows go to teams of wg
// warps in rounds and warp j of a team takes the spans j, j + wg, ... of its group (warp 0 carries
// the most blocks). The launch takes the (rw, wg) that minimizes it: a 4096-row matrix of 2-span
// rows is 1.3 two-row groups per warp (two rounds for some), but 2.6 single-row items with teams of
// two (three rounds of half the size).
int64_t busiest_warp(int64_t groups, int64_t warps, int wg, int rw, int nb, int span_blocks) {
    const int64_t teams = std::max<int64_t>(1, warps / wg);
    const int64_t rounds = (groups + teams - 1) / teams;
    int most = 0;
    for (int j = 0; j < wg; j++) {
        int blocks = 0;
        for (int b0 = j * span_blocks; b0 < nb; b0 += wg * span_blocks) blocks += std::min(span_blocks, nb - b0);
        most = std::max(most, blocks);
    }
    return rounds * most * rw;
}

// Kernel 2 for 2-4 tokens with two rows per warp and a grid of every row group (the GPU schedules
// blocks as others finish) instead of its own choice of rows and a persistent grid. Measured on an
// H200 (bench/RESULTS.md, "Kernel 3"; scripts/gpu/bench_mmvq2_oneshot.sh): decode at 2 and 4 slots
// 147 -> 164 and 216 -> 246 tok/s on the 32B, 161 -> 183 and 238 -> 278 on Qwen3.5-27B, the 8B within
// 1%; at 1 and 8-16 tokens within 1.6% either way, so those keep the old choice.
// ROTOR_MMVQ2_ONESHOT=0 turns it off, =1 takes it for every token count.
bool k2_one_shot(int nt) {
    static const int mode = env_switch("ROTOR_MMVQ2_ONESHOT", 2);  // 2: for 2-4 tokens
    return mode == 1 || (mode == 2 && nt >= 2 && nt <= 4);
}

template <GgmlType T>
void launch_type(const Job* job, int n_jobs, int64_t cols, const ActView& x, int nt, cudaStream_t s) {
    using U = Unit<T>;
    const int64_t rb = (int64_t)row_bytes(T, (uint64_t)cols);
    const int nb = (int)(cols / U::kBlockElems);
    const int n_spans = (nb + U::kSpanBlocks - 1) / U::kSpanBlocks;
    // with the default tuning, two rows per warp and a one-shot grid where k2_one_shot says so
    const bool one_shot = g_tuning.rows_per_warp == 0 && g_tuning.persistent != 0 && k2_one_shot(nt);
    const int want_rw = one_shot ? 2 : g_tuning.rows_per_warp;
    const bool persistent = !one_shot && g_tuning.persistent != 0;
    // rows per group (two share each activation load; one-row kernels exist for up to 4 tokens) and
    // warps per team (a power of two, at most the spans of a row): the pair whose busiest warp has
    // the least to read, two rows preferred unless one row gains more than 10%
    int best_rw = 2, best_wg = 1;
    double best = 0;
    for (int rw : {2, 1}) {
        if (want_rw && rw != want_rw && nt <= 4) continue;
        if (rw == 1 && nt > 4) continue;
        int64_t groups = 0;
        for (int i = 0; i < n_jobs; i++) groups += (job[i].rows + rw - 1) / rw;
        const int64_t warps = rw == 1 ? resident_warps<T, 1>(nt) : resident_warps<T, 2>(nt);
        for (int wg = 1; wg <= std::min(kWarps, n_spans); wg *= 2) {
            const double cost = (double)busiest_warp(groups, warps, wg, rw, nb, U::kSpanBlocks) * (rw == 1 ? 1.1 : 1.0);
            if (best == 0 || cost < best) best = cost, best_rw = rw, best_wg = wg;
        }
    }
    const int rw = best_rw, wg = best_wg;
    const Jobs jobs = make_jobs(job, n_jobs, rw);
    if (jobs.group_end[n_jobs - 1] == 0) return;
    if (rw == 1)
        launch_nt<T, 1>(jobs, rb, nb, n_spans, wg, x, nt, persistent, s);
    else
        launch_nt<T, 2>(jobs, rb, nb, n_spans, wg, x, nt, persistent, s);
}

// ---------------------------------------------------------------- kernel 3: loads straight into registers
// Kernel 2 runs out of issue slots before it runs out of bandwidth: its loop spends about 600
// instructions per item of two rows (2304 bytes of q4_K, PTX count), where an H100/H200 SM can issue
// 4 warp instructions for each 16 bytes its share of DRAM delivers (0.25 per byte; kernel 2 needs
// 0.26), and 16-byte cp.async pieces, shared-memory slots and their bookkeeping are most of it.
// Kernel 3 (q4_K, q5_K, q6_K for one token; kernel 2 does the rest) keeps the same units, lanes and
// activation order but reads each lane's unit from global memory into registers (Unit<T>::load_raw on
// the matrix itself: q4_K / q5_K blocks are 16-byte aligned; q6_K reads aligned words and never
// past its block). The register buffers hold the bytes as loaded and the consumer decodes them
// (Unit<T>::decode), so no instruction waits on a load before its span is dotted: two buffers, the
// next span's loads issued before the current one is dotted, the first before the wait for the
// previous kernel (the weights do not depend on it). Lanes past a row's last block (rows of 20
// blocks: 2.5 spans) and rows past a matrix's last load a valid block and drop it.
//
// Work is balanced over the warps to the span: block b takes the groups [G b / B, G (b + 1) / B) and
// cuts their (group, span) items into 8 contiguous ranges, one per warp. A warp writes the groups
// that lie whole in its range; a group cut between warps leaves a partial sum per warp in shared
// memory, and the warp where it starts adds them in warp order (the result does not depend on
// timing). With whole groups per warp, Qwen3.5-27B's 5120-row down matrix (2560 groups of 9 spans
// on 2112 warps) took two rounds, 18 spans per warp where 11 are the mean.
template <GgmlType T>
inline constexpr bool kDirect = T == GgmlType::Q4_K || T == GgmlType::Q5_K || T == GgmlType::Q6_K;

// One token (a version for 2-4 spilled 60-500 bytes once the buffers held raw bytes; kernel 2 takes them).
template <GgmlType T, int RW>
__global__ void __launch_bounds__(kWarps* kWarp, RW == 1 ? 3 : 2)
    mmvq_direct_kernel(Jobs jobs, int64_t row_bytes, int nb, int n_spans, ActView x) {
    using U = Unit<T>;
    using W = typename U::W;
    using R = typename U::Raw;
    constexpr int kSpanElems = U::kSpanBlocks * U::kBlockElems;
    static_assert(U::kSpanBlocks * U::kUnitsPerBlock == kWarp);
    static_assert(kSpanElems == kActSpan);  // a span's first code index is its first element
    // a warp's partial sums (one per row) of the groups it shares: [0] the one begun before its range,
    // [1] the one it begins and does not finish
    __shared__ float piece[kWarps][2][RW];
    __shared__ int piece_group[kWarps][2];
    pdl_trigger();

    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int n_groups = total_groups(jobs);
    const int gb0 = (int)((int64_t)n_groups * blockIdx.x / gridDim.x);
    const int gb1 = (int)((int64_t)n_groups * (blockIdx.x + 1) / gridDim.x);
    if (gb0 == gb1) return;  // the whole block
    const int64_t items = (int64_t)(gb1 - gb0) * n_spans;
    const int64_t i0 = items * warp / kWarps, i1 = items * (warp + 1) / kWarps;
    if (lane == 0) piece_group[warp][0] = piece_group[warp][1] = -1;  // the lane that writes them later
    const int jb = lane / U::kUnitsPerBlock, sub = lane % U::kUnitsPerBlock;

    // the range's first item
    const int g_first = gb0 + (int)(i0 / n_spans), sp_first = (int)(i0 % n_spans);
    const Group grp_first = group_at<RW>(jobs, row_bytes, min(g_first, gb1 - 1));

    // producer: the next item to load
    int64_t pi = i0;
    int pg = g_first, psp = sp_first;
    Group pgrp = grp_first;
    auto fetch = [&](R(&w)[RW]) {
        if (pi >= i1) return;
        const int blk = min(psp * U::kSpanBlocks + jb, nb - 1);
#pragma unroll
        for (int r = 0; r < RW; r++) {
            const int rr = min(r, pgrp.nr - 1);
            U::load_raw(pgrp.w + (size_t)rr * row_bytes + (size_t)blk * U::kBlockBytes, sub, w[r]);
        }
        pi++;
        if (++psp == n_spans) {
            psp = 0;
            if (++pg < gb1) pgrp = group_at<RW>(jobs, row_bytes, pg);
        }
    };
    R wa[RW], wb[RW];
    fetch(wa);
    pdl_wait();  // the activations (and our output) belong to earlier kernels

    // this lane's first activation chunk and scale inside a span; the others are constants away
    const int e_lane = jb * U::kBlockElems + U::group_offset(sub, 0);
    const int code_lane = (int)act_code_index(e_lane), ds_lane = e_lane / 32;
    float acc[RW];
#pragma unroll
    for (int r = 0; r < RW; r++) acc[r] = 0.0f;

    // consumer: dots the item in raw; at a group's end or the range's end writes the group's sums (or
    // leaves its piece); false once the range is done
    int64_t ci = i0;
    int cg = g_first, csp = sp_first;
    bool c_begun_here = sp_first == 0;  // the group's first span is in this warp's range
    Group cgrp = grp_first;
    auto consume = [&](const R(&raw)[RW]) -> bool {
        if (csp * U::kSpanBlocks + jb < nb) {
            W w[RW];
#pragma unroll
            for (int r = 0; r < RW; r++) U::decode(raw[r], sub, w[r]);
            const int64_t e_span = (int64_t)csp * kSpanElems;
            UnitAct<T> xa;
            load_unit_act_at<T>(x.codes + e_span + code_lane, x.d + e_span / 32 + ds_lane,
                                x.s + e_span / 32 + ds_lane, [](const auto* p) { return __ldg(p); }, xa);
#pragma unroll
            for (int r = 0; r < RW; r++) acc[r] += unit_dot<T>(w[r], xa);
        }
        ci++;
        const bool group_end = ++csp == n_spans, range_end = ci == i1;
        if (!group_end && !range_end) return true;
        const bool whole = group_end && c_begun_here;
        const int slot = c_begun_here ? 1 : 0;
#pragma unroll
        for (int r = 0; r < RW; r++) {
            const float v = warp_sum(acc[r]);  // every lane holds the sum
            acc[r] = 0.0f;
            if (lane == r) {
                if (!whole)
                    piece[warp][slot][r] = v;
                else if (r < cgrp.nr)
                    cgrp.y[cgrp.row0 + r] = v;
            }
        }
        if (!whole && lane == 0) piece_group[warp][slot] = cg;
        if (group_end) {
            csp = 0;
            c_begun_here = true;
            if (++cg < gb1) cgrp = group_at<RW>(jobs, row_bytes, cg);
        }
        return !range_end;
    };
    if (i0 < i1) {
        for (;;) {
            fetch(wb);
            if (!consume(wa)) break;
            fetch(wa);
            if (!consume(wb)) break;
        }
    }
    // groups cut between warps: the warp where one begins adds the later warps' pieces in order (the
    // same test in every warp: blocks whose warps' ranges are whole groups skip the barrier)
    bool cuts = false;
#pragma unroll
    for (int w = 1; w < kWarps; w++) cuts |= items * w / kWarps % n_spans != 0;
    if (!cuts) return;
    __syncthreads();
    const int g = piece_group[warp][1];
    if (g >= 0 && lane < RW) {
        float v = piece[warp][1][lane];
        for (int j = warp + 1; j < kWarps; j++)
            if (piece_group[j][0] == g) v += piece[j][0][lane];
        const Group grp = group_at<RW>(jobs, row_bytes, g);
        if (lane < grp.nr) grp.y[grp.row0 + lane] = v;
    }
}

// Blocks of kernel 3 that fit on the GPU at once (its grid: each takes one contiguous run of groups).
template <GgmlType T, int RW>
unsigned resident_direct() {
    static unsigned resident = 0;  // per instantiation (one GPU per process in rotor)
    if (!resident) resident = resident_blocks(mmvq_direct_kernel<T, RW>, kWarps * kWarp, 0);
    return resident;
}

template <GgmlType T, int RW>
void launch_direct(const Jobs& jobs, int64_t rb, int nb, int n_spans, const ActView& x, bool persistent,
                       cudaStream_t s) {
    const auto kernel = mmvq_direct_kernel<T, RW>;
    const unsigned resident = resident_direct<T, RW>();
    const int groups = jobs.group_end[jobs.n - 1];
    unsigned grid = (unsigned)((groups + kWarps - 1) / kWarps);
    if (persistent) grid = std::min(grid, resident);
    launch_pdl(kernel, grid, kWarps * kWarp, s, jobs, rb, nb, n_spans, x);
}

// The least fill of the last round of resident warps at which the automatic choice takes kernel 3, in
// percent (ROTOR_MMVQ_FILL overrides it for benchmarks). Since kernel 3 balances its work to the span,
// rounds no longer cost it anything; the rule now keeps kernel 2 for matrices of fewer two-row groups
// than half the resident warps (the 1024-row K/V matrices: 1056 on an H200).
int direct_fill_percent() {
    static const int fill = env_int("ROTOR_MMVQ_FILL", 50, 0, 100);
    return fill;
}

// Kernel 3 for the launch if it takes the type and token count (else false: kernel 2 runs it). The
// automatic choice (kernel() == 0) takes it only for one token when its two-row groups fill at least
// direct_fill_percent() of the resident warps' last round. Measured on an H200 (bench/RESULTS.md,
// "Kernel 3" and "Kernel 3 balanced"): alone, kernel 3 reads large matrices at one token faster than
// kernel 2 (8B down 51 -> 72% of the copy bandwidth, 32B gate/up 45 -> 70%, 32B down 53 -> 77%) but
// loses on the 1024-row K/V matrices (22 -> 17%, ROTOR_MMVQ_FILL=0) and at 2-4 tokens, where kernel
// 2's teams split rows over more warps.
template <GgmlType T>
bool launch_type_direct(const Job* job, int n_jobs, int64_t cols, const ActView& x, int nt, bool automatic,
                        cudaStream_t s) {
    if constexpr (!kDirect<T>) {
        return false;
    } else {
        using U = Unit<T>;
        if (nt != 1 || (automatic && g_tuning.rows_per_warp == 1)) return false;
        const int rw = g_tuning.rows_per_warp == 1 ? 1 : 2;  // two rows share each activation load
        const Jobs jobs = make_jobs(job, n_jobs, rw);
        const int64_t groups = jobs.group_end[n_jobs - 1];
        if (automatic) {
            const int64_t warps = (int64_t)resident_direct<T, 2>() * kWarps;
            const int64_t rounds = (groups + warps - 1) / warps;
            if (groups * 100 < rounds * warps * direct_fill_percent()) return false;
        }
        if (groups == 0) return true;
        const int64_t rb = (int64_t)row_bytes(T, (uint64_t)cols);
        const int nb = (int)(cols / U::kBlockElems);
        const int n_spans = (nb + U::kSpanBlocks - 1) / U::kSpanBlocks;
        const bool persistent = g_tuning.persistent != 0;
        if (rw == 1)
            launch_direct<T, 1>(jobs, rb, nb, n_spans, x, persistent, s);
        else
            launch_direct<T, 2>(jobs, rb, nb, n_spans, x, persistent, s);
        return true;
    }
}

// ---------------------------------------------------------------- activations

// One warp per 32 activations: d = max|x| / 127, codes round(x * (1 / d)) (the CPU's Q8_0 codes,
// bit for bit) stored in act_code_index order, s = d * sum(codes).
__global__ void quantize_kernel(const float* __restrict__ X, int64_t cols, int64_t n_blocks, int nbr,
                                int8_t* q, int64_t code_stride, float* d_out, float* s_out,
                                int64_t ds_stride) {
    pdl_trigger();
    pdl_wait();
    const int64_t blk = (int64_t)blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
    if (blk >= n_blocks) return;
    const int lane = threadIdx.x % kWarp;
    const int64_t t = blk / nbr, b = blk % nbr;
    quantize_act_warp(X[t * cols + b * 32 + lane], lane, b * 32, q + t * code_stride, d_out + t * ds_stride,
                      s_out + t * ds_stride);
}

int64_t ds_stride_for(int64_t cols) {
    return (cols / 32 + 3) / 4 * 4;
}  // float4-aligned rows

}  // namespace

int g_kernel = -1;  // -1: not read from the environment yet; 0: automatic (kernel 2 or 3 per launch)

// Kernel 1 (one warp per row group through shared memory, the first default) was removed once
// kernels 2 and 3 beat it on every matrix (bench/RESULTS.md, "Kernel 3"); its number stays unused.
void set_kernel(int version) {
    if (version < 0 || version > 4 || version == 1)
        throw Error("int8 mat-vec: kernel version 0 (automatic), 2, 3 or 4 (1 was removed)");
    g_kernel = version;
}

int kernel() {
    if (g_kernel < 0) {
        const int v = env_int("ROTOR_MMVQ", 0, 0, 4);  // automatic unless ROTOR_MMVQ=2, 3 or 4
        if (v == 1) throw Error("ROTOR_MMVQ=1: kernel 1 was removed; 0 (automatic), 2, 3 or 4");
        g_kernel = v;
    }
    return g_kernel;
}

bool supported(GgmlType t) {
    return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::Q4_K || t == GgmlType::Q5_K ||
           t == GgmlType::Q6_K;
}

bool can_run(GgmlType t, const void* W, int64_t cols) {
    if (!supported(t) || cols % 32 || cols % format_info(t).block_elems) return false;
    // spans are copied in 16-byte pieces from the 16-byte boundary at or before them: the matrix must
    // start on one (the GPU's allocations do), and q4_K / q5_K rows must be whole pieces
    if (reinterpret_cast<uintptr_t>(W) % 16) return false;
    const bool k16 = t == GgmlType::Q4_K || t == GgmlType::Q5_K;
    return !k16 || row_bytes(t, (uint64_t)cols) % 16 == 0;
}

void set_tuning(const Tuning& t) {
    g_tuning = t;
}

bool pdl_enabled(cudaStream_t s) {
    return g_tuning.pdl && s != nullptr && sm90_or_later();  // not on the legacy default stream
}

// Kernel 4 (matvec_bulk.h) for a one-token launch: only when forced.
bool takes_bulk(GgmlType t, int64_t cols) {
    return kernel() == 4 && bulk::applies(t, cols);
}

void launch(GgmlType t, const Job* jobs, int n_jobs, int64_t cols, const ActView& x, int n_tok,
            cudaStream_t s) {
    if (n_jobs < 1 || n_jobs > kMaxJobs || n_tok < 1 || n_tok > 8) throw Error("int8 mat-vec: bad launch");
    switch (t) {
#define ROTOR_TYPE(T)                                                                                 \
    case T:                                                                                           \
        if (n_tok == 1 && takes_bulk(T, cols))                                                        \
            bulk::launch(T, jobs, n_jobs, cols, x, s);                                                \
        else if (kernel() == 2 || !launch_type_direct<T>(jobs, n_jobs, cols, x, n_tok, kernel() == 0, s)) \
            launch_type<T>(jobs, n_jobs, cols, x, n_tok, s);                                          \
        break;
        ROTOR_TYPE(GgmlType::Q8_0)
        ROTOR_TYPE(GgmlType::Q4_0)
        ROTOR_TYPE(GgmlType::Q4_K)
        ROTOR_TYPE(GgmlType::Q5_K)
        ROTOR_TYPE(GgmlType::Q6_K)
#undef ROTOR_TYPE
        default:
            throw Error("int8 mat-vec: unsupported type " + std::string(format_info(t).name));
    }
    check(cudaGetLastError(), "int8 mat-vec launch");
}

void quantize(const float* X, int n_tok, int64_t cols, void* scratch, cudaStream_t s) {
    const ActQ8Layout L = act_q8_layout(n_tok, cols);
    char* base = static_cast<char*>(scratch);
    const int64_t n_blocks = (int64_t)n_tok * (cols / 32);
    constexpr int kPerBlock = 4;
    launch_pdl(quantize_kernel, (unsigned)((n_blocks + kPerBlock - 1) / kPerBlock), kPerBlock * 32, s, X,
               cols, n_blocks, (int)(cols / 32), reinterpret_cast<int8_t*>(base + L.codes), L.code_stride,
               reinterpret_cast<float*>(base + L.d), reinterpret_cast<float*>(base + L.s), L.ds_stride);
}

ActView act_view(const void* scratch, int n_tok, int64_t cols) {
    const ActQ8Layout L = act_q8_layout(n_tok, cols);
    const char* base = static_cast<const char*>(scratch);
    ActView v;
    v.codes = reinterpret_cast<const int8_t*>(base + L.codes);
    v.d = reinterpret_cast<const float*>(base + L.d);
    v.s = reinterpret_cast<const float*>(base + L.s);
    v.code_stride = L.code_stride;
    v.ds_stride = L.ds_stride;
    return v;
}

size_t split_room(int n_tok) {
    return n_tok > 1 ? mmqh::kSplitBytes : 0;  // the f16 tensor-core mat-vec's split-K sums (2+ tokens)
}

ActView scratch_view(void* scratch, int n_tok, int64_t cols) {
    ActView v = act_view(scratch, n_tok, cols);
    if (split_room(n_tok)) {
        v.split = reinterpret_cast<float*>(static_cast<char*>(scratch) + act_q8_layout(n_tok, cols).bytes);
        v.split_bytes = split_room(n_tok);
    }
    return v;
}

}  // namespace mmvq

ActQ8Layout act_q8_layout(int n_tok, int64_t cols) {
    auto up = [](size_t n) { return (n + 255) / 256 * 256; };
    ActQ8Layout L;
    const size_t ds = (size_t)n_tok * mmvq::ds_stride_for(cols) * sizeof(float);
    L.code_stride = ::rotor::mmvq::act_row_codes(cols);
    L.ds_stride = mmvq::ds_stride_for(cols);
    L.codes = 0;
    L.d = up((size_t)n_tok * L.code_stride);
    L.s = L.d + up(ds);
    L.bytes = L.s + up(ds);
    return L;
}

size_t matmul_scratch_bytes(int n_tok, int64_t cols) {
    return act_q8_layout(n_tok, cols).bytes + mmvq::split_room(n_tok);
}

void quantize_act_q8(const float* X, int n_tok, int64_t cols, void* scratch, cudaStream_t s) {
    if (cols % 32) throw Error("int8 activations need rows of a multiple of 32");
    if (n_tok == 0) return;
    mmvq::quantize(X, n_tok, cols, scratch, s);
    check(cudaGetLastError(), "quantize_act_q8");
}

}  // namespace rotor::cuda
