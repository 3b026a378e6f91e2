// The tensor-core int8 mat-vec (matvec_mma.h) for q4_K weights and 9-16 tokens. A warp owns 16 rows of
// one matrix and all of their columns: it streams the 16 rows' super-blocks (16 x 144 bytes) through
// shared memory with cp.async, ST - 1 super-blocks in flight ahead of the one computed; per 32-element
// sub-block it runs one mma.sync.m16n8k32 (s8) per 8 tokens and turns the int32 results to float with
// the sub-block's scale and min at once (mmq_units.h). Every lane ends with its own (row, token)
// values: no reduction. Blocks of kWarps warps; the matrices of a launch (Q/K/V, gate/up) share it.
// NOT YET RUN ON A GPU (matvec_mma.h).
#include <algorithm>
#include <cstdlib>
#include <string>

#include "cuda/cp_async.cuh"
#include "cuda/cuda_util.h"
#include "cuda/matvec_mma.h"
#include "cuda/mmq_units.h"
#include "cuda/pdl.cuh"

namespace rotor::cuda::mmq {

namespace {

using ::rotor::mmq::kQ4KBlockBytes;
using ::rotor::mmq::kTileRows;
constexpr int kWarps = 4;   // warps per block
constexpr int kStages = 3;  // super-blocks per warp in the pipeline
constexpr int kPieces = kTileRows * kQ4KBlockBytes / 16;  // 16-byte copies of a tile's super-block: 144

struct Tiles {
    const uint8_t* W[mmvq::kMaxJobs];
    float* Y[mmvq::kMaxJobs];
    int rows[mmvq::kMaxJobs];
    int tile_end[mmvq::kMaxJobs];  // tiles of jobs 0..j
    int n;
};

__device__ inline void mma_s8(const uint32_t a[4], const uint32_t b[2], int c[4]) {
    c[0] = c[1] = c[2] = c[3] = 0;
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <int NTILES>
__global__ void __launch_bounds__(kWarps * 32) mmq_q4k_kernel(Tiles tiles, int64_t row_bytes, int nb, mmvq::ActView x,
                                                              int n_tok) {
    __shared__ __align__(16) uint8_t smem[kWarps][kStages][kTileRows * kQ4KBlockBytes];
    pdl_trigger();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = ::rotor::mmq::frag_group(lane), tig = ::rotor::mmq::frag_tig(lane);
    const int n_tiles = tiles.tile_end[tiles.n - 1];
    const int tile = blockIdx.x * kWarps + warp;
    if (tile >= n_tiles) return;
    const int j = (tiles.n > 1 && tile >= tiles.tile_end[0]) + (tiles.n > 2 && tile >= tiles.tile_end[1]);
    const int first = j == 0 ? 0 : (j == 1 ? tiles.tile_end[0] : tiles.tile_end[1]);
    const uint8_t* W = j == 0 ? tiles.W[0] : (j == 1 ? tiles.W[1] : tiles.W[2]);
    float* Y = j == 0 ? tiles.Y[0] : (j == 1 ? tiles.Y[1] : tiles.Y[2]);
    const int rows = j == 0 ? tiles.rows[0] : (j == 1 ? tiles.rows[1] : tiles.rows[2]);
    const int row0 = (tile - first) * kTileRows;
    const int nr = min(kTileRows, rows - row0);
    const uint8_t* wt = W + (size_t)row0 * row_bytes;

    auto issue = [&](int kb) {  // super-block kb of the tile's rows into slot kb % kStages
        if (kb < nb) {
            uint8_t* dst = smem[warp][kb % kStages];
            for (int i = lane; i < kPieces; i += 32) {
                const int r = i / (kQ4KBlockBytes / 16), piece = i % (kQ4KBlockBytes / 16);
                const bool in = r < nr;  // rows past the matrix: zeros (their results are not written)
                const uint8_t* src = in ? wt + (size_t)r * row_bytes + (size_t)kb * kQ4KBlockBytes + 16 * piece : W;
                cp_async16(dst + r * kQ4KBlockBytes + 16 * piece, src, in ? 16 : 0);
            }
        }
        cp_async_commit();
    };
    for (int k = 0; k < kStages - 1; k++) issue(k);
    pdl_wait();  // the activations (and our output) belong to earlier kernels

    float acc[NTILES][4];
#pragma unroll
    for (int nt = 0; nt < NTILES; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    for (int kb = 0; kb < nb; kb++) {
        issue(kb + kStages - 1);
        cp_async_wait<kStages - 1>();  // super-block kb has landed (this lane's copies)
        __syncwarp();                  // ... and the other lanes'
        const uint8_t* rg = smem[warp][kb % kStages] + g * kQ4KBlockBytes;
        const uint8_t* rg8 = rg + 8 * kQ4KBlockBytes;
#pragma unroll 2
        for (int sb = 0; sb < 8; sb++) {
            uint32_t a[4];
            ::rotor::mmq::q4k_a_frag(rg, rg8, sb, tig, a);
            float cg, mg, cg8, mg8;
            ::rotor::mmq::q4k_scale_min(rg, sb, cg, mg);
            ::rotor::mmq::q4k_scale_min(rg8, sb, cg8, mg8);
            const int64_t e0 = (int64_t)kb * 256 + 32 * sb;
            const int64_t kg = e0 / 32;
#pragma unroll
            for (int nt = 0; nt < NTILES; nt++) {
                const int tb = nt * 8 + g;  // this lane's B column
                uint32_t b[2] = {0u, 0u};
                if (tb < n_tok) ::rotor::mmq::act_b_frag(x.codes + (size_t)tb * x.code_stride, e0, tig, b);
                int c[4];
                mma_s8(a, b, c);
                const int t0 = nt * 8 + 2 * tig, t1 = t0 + 1;
                const float xd0 = t0 < n_tok ? __ldg(x.d + (size_t)t0 * x.ds_stride + kg) : 0.0f;
                const float xs0 = t0 < n_tok ? __ldg(x.s + (size_t)t0 * x.ds_stride + kg) : 0.0f;
                const float xd1 = t1 < n_tok ? __ldg(x.d + (size_t)t1 * x.ds_stride + kg) : 0.0f;
                const float xs1 = t1 < n_tok ? __ldg(x.s + (size_t)t1 * x.ds_stride + kg) : 0.0f;
                ::rotor::mmq::accumulate(c, cg, mg, cg8, mg8, xd0, xs0, xd1, xs1, acc[nt]);
            }
        }
        __syncwarp();  // every lane is done with slot kb % kStages before it is refilled
    }
    cp_async_wait<0>();
#pragma unroll
    for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int r = g + 8 * (q >> 1), t = nt * 8 + 2 * tig + (q & 1);
            if (r < nr && t < n_tok) Y[(size_t)t * rows + row0 + r] = acc[nt][q];
        }
}

int g_enabled = -1;  // -1: not chosen yet

}  // namespace

bool enabled() {
    if (g_enabled < 0) {
        const char* e = std::getenv("ROTOR_MMQ");
        g_enabled = e && std::string(e) == "1" ? 1 : 0;
    }
    return g_enabled == 1;
}

void set_enabled(bool on) { g_enabled = on ? 1 : 0; }

bool applies(GgmlType t, int n_tok) { return enabled() && t == GgmlType::Q4_K && n_tok > 8 && n_tok <= 16; }

void launch(GgmlType t, const mmvq::Job* jobs, int n_jobs, int64_t cols, const mmvq::ActView& x, int n_tok,
            cudaStream_t s) {
    if (t != GgmlType::Q4_K) throw Error("tensor-core int8 mat-vec: q4_K only (got " + std::string(format_info(t).name) + ")");
    if (n_jobs < 1 || n_jobs > mmvq::kMaxJobs || n_tok < 1 || n_tok > 16 || cols % 256)
        throw Error("tensor-core int8 mat-vec: bad launch");
    Tiles tiles{};
    tiles.n = n_jobs;
    int total = 0;
    for (int i = 0; i < n_jobs; i++) {
        tiles.W[i] = static_cast<const uint8_t*>(jobs[i].W);
        tiles.Y[i] = jobs[i].Y;
        tiles.rows[i] = (int)jobs[i].rows;
        total += (int)((jobs[i].rows + kTileRows - 1) / kTileRows);
        tiles.tile_end[i] = total;
    }
    if (total == 0) return;
    const int64_t rb = (int64_t)row_bytes(t, (uint64_t)cols);
    const int nb = (int)(cols / 256);
    const unsigned grid = (unsigned)((total + kWarps - 1) / kWarps);
    if (n_tok > 8)
        mmvq::launch_pdl(mmq_q4k_kernel<2>, grid, kWarps * 32, s, tiles, rb, nb, x, n_tok);
    else
        mmvq::launch_pdl(mmq_q4k_kernel<1>, grid, kWarps * 32, s, tiles, rb, nb, x, n_tok);
    check(cudaGetLastError(), "tensor-core int8 mat-vec launch");
}

}  // namespace rotor::cuda::mmq
