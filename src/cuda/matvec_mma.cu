// The tensor-core int8 mat-vec (matvec_mma.h) for q4_K / q6_K weights and 9-16 tokens. A block owns 16
// rows of one matrix (a tile); its kWarps warps take the rows' super-blocks in turn (warp w: w, w +
// kWarps, ...), each streaming its super-blocks of the 16 rows through its own shared-memory stages with
// cp.async, kStages - 1 ahead of the one computed (q6_K's 210-byte blocks are copied from the 16-byte
// boundary before them and read at their offset). Per 32-element sub-block a warp runs one
// mma.sync.m16n8k32 (s8) per 8 tokens (q4_K; q6_K, a scale per 16: two m16n8k16) and turns the int32
// results to float with the sub-block's scales at once (mmq_units.h). Every lane ends with its own
// (row, token) partial sums; warp 0 adds the warps' in a fixed order. The matrices of a launch (Q/K/V,
// gate/up) share it.
// The first version gave each warp a whole tile (one warp per 16 rows: 256 warps for a 4096-row matrix)
// and was correct on an H200 but 1.2-4x slower than the dp4a kernel (bench/RESULTS.md, "Kernel 3"); this
// one, with the rows split over 8 warps, has NOT YET RUN ON A GPU. Off either way (matvec_mma.h).
#include <algorithm>
#include <cstdlib>
#include <string>

#include "cuda/cp_async.cuh"
#include "cuda/cuda_util.h"
#include "cuda/matvec_mma.h"
#include "cuda/matvec_mma_f16.h"
#include "cuda/mmq_units.h"
#include "cuda/pdl.cuh"

namespace rotor::cuda::mmq {

namespace {

using ::rotor::mmq::kQ4KBlockBytes;
using ::rotor::mmq::kQ6KBlockBytes;
using ::rotor::mmq::kTileRows;
constexpr int kWarps = 8;   // warps per block, all on one tile
constexpr int kStages = 3;  // super-blocks per warp in the pipeline

// A row's super-block in shared memory: q4_K's 144 bytes are 16-byte aligned in every row (9 copies);
// q6_K's 210 start anywhere 2-byte aligned, so up to 15 copies from the boundary before them.
template <GgmlType T>
struct Layout {
    static constexpr int kBlock = T == GgmlType::Q4_K ? kQ4KBlockBytes : kQ6KBlockBytes;
    static constexpr int kPiecesPerRow = T == GgmlType::Q4_K ? kBlock / 16 : 15;
    static constexpr int kSlotRow = 16 * kPiecesPerRow;
    static constexpr size_t kSmem = (size_t)kWarps * kStages * kTileRows * kSlotRow;  // dynamic, per block
};

__device__ inline void mma_s8(const uint32_t a[4], const uint32_t b[2], int c[4]) {
    c[0] = c[1] = c[2] = c[3] = 0;
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ inline void mma16_s8(uint32_t a0, uint32_t a1, uint32_t b, int c[4]) {
    c[0] = c[1] = c[2] = c[3] = 0;
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(b));
}

template <GgmlType T, int NTILES>
__global__ void __launch_bounds__(kWarps * 32) mmq_kernel(mmvq::Jobs tiles, int64_t row_bytes, int nb, mmvq::ActView x,
                                                          int n_tok) {
    using L = Layout<T>;
    extern __shared__ __align__(16) uint8_t smem_dyn[];
    __shared__ float red[kWarps][NTILES][4][32];  // the warps' partial sums, per lane
    pdl_trigger();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = ::rotor::mmq::frag_group(lane), tig = ::rotor::mmq::frag_tig(lane);
    const int tile = blockIdx.x;  // the grid has one block per tile
    uint8_t* stages = smem_dyn + (size_t)warp * kStages * kTileRows * L::kSlotRow;
    const mmvq::JobAt job = mmvq::job_at(tiles, tile);
    const uint8_t* W = job.w;
    float* Y = job.y;
    const int rows = job.rows;
    const int row0 = (tile - job.first) * kTileRows;
    const int nr = min(kTileRows, rows - row0);
    const uint8_t* wt = W + (size_t)row0 * row_bytes;
    const uint8_t* w_end = W + (size_t)rows * row_bytes;
    // where row r's block kb starts inside its copy (0 for q4_K)
    auto shift = [&](int r, int kb) {
        return (int)(reinterpret_cast<uintptr_t>(wt + (size_t)r * row_bytes + (size_t)kb * L::kBlock) & 15);
    };

    // this warp's i-th super-block of the tile's rows (kb = warp + i kWarps) into stage i % kStages
    auto issue = [&](int i) {
        const int kb = warp + i * kWarps;
        if (kb < nb) {
            uint8_t* dst = stages + (size_t)(i % kStages) * kTileRows * L::kSlotRow;
            for (int p = lane; p < kTileRows * L::kPiecesPerRow; p += 32) {
                const int r = p / L::kPiecesPerRow, piece = p % L::kPiecesPerRow;
                const uint8_t* a16 = wt + (size_t)r * row_bytes + (size_t)kb * L::kBlock - shift(r, kb);
                if (16 * piece >= shift(r, kb) + L::kBlock) continue;  // past the block
                // rows past the matrix: zeros (their results are not written); the matrix's last piece: its bytes
                const int64_t left = w_end - (a16 + 16 * piece);
                const int bytes = r < nr ? (left < 16 ? (int)left : 16) : 0;
                cp_async16(dst + r * L::kSlotRow + 16 * piece, bytes > 0 ? a16 + 16 * piece : W, bytes);
            }
        }
        cp_async_commit();
    };
    for (int k = 0; k < kStages - 1; k++) issue(k);
    pdl_wait();  // the activations (and our output) belong to earlier kernels

    float acc[NTILES][4];
#pragma unroll
    for (int nt = 0; nt < NTILES; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    for (int i = 0;; i++) {
        const int kb = warp + i * kWarps;
        if (kb >= nb) break;
        issue(i + kStages - 1);
        cp_async_wait<kStages - 1>();  // super-block kb has landed (this lane's copies)
        __syncwarp();                  // ... and the other lanes'
        const uint8_t* slot = stages + (size_t)(i % kStages) * kTileRows * L::kSlotRow;
        const uint8_t* rg = slot + g * L::kSlotRow + shift(g, kb);
        const uint8_t* rg8 = slot + (g + 8) * L::kSlotRow + shift(g + 8, kb);
#pragma unroll 2
        for (int sb = 0; sb < 8; sb++) {
            uint32_t a[4];
            float cg, mg, cg8, mg8;  // q4_K: scale, min; q6_K: the two halves' scales
            if constexpr (T == GgmlType::Q4_K) {
                ::rotor::mmq::q4k_a_frag(rg, rg8, sb, tig, a);
                ::rotor::mmq::q4k_scale_min(rg, sb, cg, mg);
                ::rotor::mmq::q4k_scale_min(rg8, sb, cg8, mg8);
            } else {
                ::rotor::mmq::q6k_a_frag(rg, rg8, sb, tig, a);
                ::rotor::mmq::q6k_scales(rg, sb, cg, mg);
                ::rotor::mmq::q6k_scales(rg8, sb, cg8, mg8);
            }
            const int64_t e0 = (int64_t)kb * 256 + 32 * sb;
            const int64_t kg = e0 / 32;
#pragma unroll
            for (int nt = 0; nt < NTILES; nt++) {
                const int tb = nt * 8 + g;  // this lane's B column
                uint32_t b[2] = {0u, 0u};
                if (tb < n_tok) ::rotor::mmq::act_b_frag(x.codes + (size_t)tb * x.code_stride, e0, tig, b);
                const int t0 = nt * 8 + 2 * tig, t1 = t0 + 1;
                const float xd0 = t0 < n_tok ? __ldg(x.d + (size_t)t0 * x.ds_stride + kg) : 0.0f;
                const float xd1 = t1 < n_tok ? __ldg(x.d + (size_t)t1 * x.ds_stride + kg) : 0.0f;
                if constexpr (T == GgmlType::Q4_K) {
                    const float xs0 = t0 < n_tok ? __ldg(x.s + (size_t)t0 * x.ds_stride + kg) : 0.0f;
                    const float xs1 = t1 < n_tok ? __ldg(x.s + (size_t)t1 * x.ds_stride + kg) : 0.0f;
                    int c[4];
                    mma_s8(a, b, c);
                    ::rotor::mmq::accumulate(c, cg, mg, cg8, mg8, xd0, xs0, xd1, xs1, acc[nt]);
                } else {
                    int c_lo[4], c_hi[4];
                    mma16_s8(a[0], a[1], b[0], c_lo);
                    mma16_s8(a[2], a[3], b[1], c_hi);
                    ::rotor::mmq::accumulate_q6k(c_lo, c_hi, cg, mg, cg8, mg8, xd0, xd1, acc[nt]);
                }
            }
        }
        __syncwarp();  // every lane is done with stage i % kStages before it is refilled
    }
    cp_async_wait<0>();
#pragma unroll
    for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
        for (int q = 0; q < 4; q++) red[warp][nt][q][lane] = acc[nt][q];
    __syncthreads();
    if (warp != 0) return;
#pragma unroll
    for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
        for (int q = 0; q < 4; q++) {
            float v = 0.0f;
            for (int w = 0; w < kWarps; w++) v += red[w][nt][q][lane];
            const int r = g + 8 * (q >> 1), t = nt * 8 + 2 * tig + (q & 1);
            if (r < nr && t < n_tok) Y[(size_t)t * rows + row0 + r] = v;
        }
}

// Sets the kernel's dynamic shared-memory limit once; returns the bytes a block takes.
template <GgmlType T, int NTILES>
size_t prepare() {
    static bool done = false;  // per instantiation (one GPU per process in rotor)
    if (!done) {
        check(cudaFuncSetAttribute(mmq_kernel<T, NTILES>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   (int)Layout<T>::kSmem),
              "tensor-core mat-vec shared memory");
        done = true;
    }
    return Layout<T>::kSmem;
}

int g_enabled = -1;  // -1: not chosen yet

}  // namespace

// ROTOR_MMQ: unset automatic (kAutoMinRows), 1 every q4_K / q6_K launch of 9-16 tokens, 0 never.
int mode() {
    if (g_enabled < 0) {
        g_enabled = env_switch("ROTOR_MMQ", 2);
    }
    return g_enabled;
}

bool enabled() { return mode() != 0; }

void set_enabled(bool on) { g_enabled = on ? 1 : 0; }
void set_mode(int m) { g_enabled = m >= 0 && m <= 2 ? m : 2; }

bool applies(GgmlType t, int n_tok, int64_t rows, int64_t cols) {
    const int m = mode();
    if (m != 0 && mmqh::applies(t, n_tok)) {  // version 3 (f16)
        // automatic: 8-16 tokens, and 4-7 for q4_K launches of 12 MB or more (one H200, bench/RESULTS.md
        // "The f16 tensor-core mat-vec"): below those the dp4a kernel is as fast or faster
        return m == 1 || n_tok >= 8 ||
               (t == GgmlType::Q4_K && n_tok >= 4 && (double)rows * (double)row_bytes(t, (uint64_t)cols) >= 12e6);
    }
    if (m == 0 || (t != GgmlType::Q4_K && t != GgmlType::Q6_K) || n_tok <= 8 || n_tok > 16) return false;
    return m == 1 || rows >= kAutoMinRows;
}

void launch(GgmlType t, const mmvq::Job* jobs, int n_jobs, int64_t cols, const mmvq::ActView& x, int n_tok,
            cudaStream_t s) {
    if (mmqh::applies(t, n_tok)) return mmqh::launch(t, jobs, n_jobs, cols, x, n_tok, s);  // version 3
    if (t != GgmlType::Q4_K && t != GgmlType::Q6_K)
        throw Error("tensor-core int8 mat-vec: q4_K and q6_K only (got " + std::string(format_info(t).name) + ")");
    if (n_jobs < 1 || n_jobs > mmvq::kMaxJobs || n_tok < 1 || n_tok > 16 || cols % 256)
        throw Error("tensor-core int8 mat-vec: bad launch");
    const mmvq::Jobs tiles = mmvq::make_jobs(jobs, n_jobs, kTileRows);  // a group per 16-row tile
    const int total = tiles.group_end[n_jobs - 1];
    if (total == 0) return;
    const int64_t rb = (int64_t)row_bytes(t, (uint64_t)cols);
    const int nb = (int)(cols / 256);
    const unsigned grid = (unsigned)total;
    const bool q4 = t == GgmlType::Q4_K, two = n_tok > 8;
    const auto kernel = q4 ? (two ? mmq_kernel<GgmlType::Q4_K, 2> : mmq_kernel<GgmlType::Q4_K, 1>)
                           : (two ? mmq_kernel<GgmlType::Q6_K, 2> : mmq_kernel<GgmlType::Q6_K, 1>);
    const size_t smem = q4 ? (two ? prepare<GgmlType::Q4_K, 2>() : prepare<GgmlType::Q4_K, 1>())
                           : (two ? prepare<GgmlType::Q6_K, 2>() : prepare<GgmlType::Q6_K, 1>());
    mmvq::launch_pdl_smem(kernel, grid, kWarps * 32, smem, s, tiles, rb, nb, x, n_tok);
    check(cudaGetLastError(), "tensor-core int8 mat-vec launch");
}

}  // namespace rotor::cuda::mmq
