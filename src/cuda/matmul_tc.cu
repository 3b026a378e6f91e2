// Tensor-core matmul (matmul_tc.h). One thread block computes a tile of 128 weight rows x BN
// tokens (BN = 32, 64 or 128) over a range of columns, in k-tiles of 32 columns:
//  - raw weight bytes arrive in slabs of whole blocks (about 256 bytes of each row: one K-quant
//    super-block, four 32-element blocks, 64 floats or halves) by cp.async, 16 bytes at a time, as
//    the 16-byte aligned superset of each row's slab (any block size, any row alignment; segments
//    that would leave the tensor are copied byte by byte instead), double-buffered: the next slab
//    is requested when the decode of the current one starts;
//  - each k-tile of those rows is decoded by the format's ChunkDecoder (formats/chunk_decode.h)
//    into an f16 tile in shared memory, one k-tile ahead of the tensor cores;
//  - the token tile comes from the f16 copy of X that matmul_tc_prepare wrote (scaled per token by
//    a power of two), by cp.async, two k-tiles ahead; tokens past n_tok are zero-filled;
//  - 8 warps (2 along rows x 4 along tokens) run ldmatrix + mma.sync m16n8k16 with f32
//    accumulators; one barrier per k-tile, the decode of k-tile j+1 and the products of k-tile j
//    in the same phase, so warps overlap the two.
// When rows x n_tok gives too few blocks to fill the GPU, the columns are split (split-K) into
// slab ranges whose partial sums go to scratch and are added by a second kernel (deterministic).
//
// Measured on H200 (bench/gpu/results/2026-11-28-h200-matmul_tc.md): 85-160 TFLOP/s at 512 tokens,
// 3-18x the mat-vec path from 64 tokens up, about equal to it at 16. The time is per-k-tile
// overhead rather than tensor-core or memory throughput: leaving out the decode saves ~40%,
// leaving out the products ~30%, and the copies + barriers + index arithmetic alone are ~40% of
// the total (ablation table there). Next steps: k-tiles of 64 columns (half the barriers),
// wgmma on sm_90 behind the same decode.
#include "cuda/matmul_tc.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <string>

#include "cuda/cp_async.cuh"
#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/mma_f16.cuh"
#include "formats/chunk_decode.h"

namespace rotor::cuda {

namespace {

constexpr int kThreads = 256;  // 8 warps
constexpr int kBM = 128;       // weight rows per block
constexpr int kBK = 32;        // columns per k-tile: two m16n8k16 steps
constexpr int kLds = kBK + 8;  // f16 row stride of the W and X tiles: 80 bytes, so ldmatrix's 8 rows hit distinct banks
constexpr int kMaxSplit = 16;

template <GgmlType T>
struct Geo {
    using D = ChunkDecoder<T>;
    // columns per raw slab: whole blocks, at least two k-tiles (the pipeline below relies on it)
    static constexpr int kSlabCols = D::kBlockElems >= 256 ? D::kBlockElems : (D::kBlockElems >= 32 ? 128 : 64);
    static constexpr int kTilesPerSlab = kSlabCols / kBK;
    static constexpr int kSlabBytes = kSlabCols / D::kBlockElems * D::kBlockBytes;
    static constexpr int kSlot = (kSlabBytes + 15 + 15) / 16 * 16;  // a row's slab at any offset mod 16
    static constexpr int kSegs = kSlot / 16;
    static_assert(kSlabCols % kBK == 0 && kTilesPerSlab >= 2 && kSlabCols % D::kBlockElems == 0);
};

template <GgmlType T>
constexpr size_t smem_bytes(int bn) {
    return (size_t)3 * bn * kLds * 2 + (size_t)2 * kBM * kLds * 2 + (size_t)2 * kBM * Geo<T>::kSlot;
}

__device__ inline void ldsm_x4(uint32_t* r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ inline void ldsm_x2(uint32_t* r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
}
// Benchmark ablations (matmul_tc_set_ablation): leave out the decode or the products.
constexpr int kSkipDecode = 1, kSkipProducts = 2;

// out (gridDim.z == 1: Y, scaled per token; else partial sums of slice blockIdx.z, unscaled)
template <GgmlType T, int BN>
__global__ void __launch_bounds__(kThreads, BN == 32 ? 3 : 2)
    matmul_tc_kernel(const uint8_t* __restrict__ W, size_t row_bytes, int rows, int cols,
                     const __half* __restrict__ X16, const float* __restrict__ inv_scale, int n_tok,
                     int slabs_per_split, int ablation, float* __restrict__ out) {
    using G = Geo<T>;
    using D = ChunkDecoder<T>;
    constexpr int WN = BN / 4;   // tokens per warp
    constexpr int NT8 = WN / 8;  // n8 tiles per warp: 4, 2 or 1
    static_assert(NT8 == 1 || NT8 % 2 == 0);
    extern __shared__ __align__(16) uint8_t smem[];
    __half* xs = reinterpret_cast<__half*>(smem);                   // [3][BN][kLds]
    __half* ws = xs + 3 * BN * kLds;                                 // [2][kBM][kLds]
    uint8_t* raw = reinterpret_cast<uint8_t*>(ws + 2 * kBM * kLds);  // [2][kBM][kSlot]

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int wm = warp % 2, wn = warp / 2;
    const int n0 = blockIdx.x * BN, m0 = blockIdx.y * kBM;
    const int n_slabs = (cols + G::kSlabCols - 1) / G::kSlabCols;
    const int slab0 = blockIdx.z * slabs_per_split;
    const int kt0 = slab0 * G::kTilesPerSlab;
    const int nkl = min(cols / kBK, min(n_slabs, slab0 + slabs_per_split) * G::kTilesPerSlab) - kt0;
    const uintptr_t w_begin = (uintptr_t)W, w_end = w_begin + (size_t)rows * row_bytes;

    // Group g of cp.async copies (g = -3, -2, ...; one commit each, possibly empty): the X tile of
    // local k-tile g + 2 and raw bytes: slab 0 in group -3, then, when local k-tile g + 1 starts a
    // slab (its decode runs in iteration g), the next slab, into the buffer whose last k-tile was
    // decoded in iteration g - 1: a whole slab of iterations ahead of its first decode.
    auto issue = [&](int g) {
        const int jx = g + 2;
        if (jx >= 0 && jx < nkl) {
            const int kc = (kt0 + jx) * kBK;
            __half* dst = xs + (jx % 3) * BN * kLds;
            for (int i = tid; i < BN * (kBK / 8); i += kThreads) {
                const int t = i / (kBK / 8), seg = i % (kBK / 8);
                const int tok = n0 + t;
                const __half* src = X16 + (size_t)min(tok, n_tok - 1) * cols + kc + seg * 8;
                cp_async<16>(smem_u32(dst + t * kLds + seg * 8), src, tok < n_tok);
            }
        }
        const int jr = g == -3 ? 0 : ((g + 1 >= 0 && (g + 1) % G::kTilesPerSlab == 0) ? g + 1 + G::kTilesPerSlab : -1);
        if (jr >= 0 && jr < nkl) {
            const int slab = (kt0 + jr) / G::kTilesPerSlab;
            const int nbytes = min(G::kSlabCols, cols - slab * G::kSlabCols) / D::kBlockElems * D::kBlockBytes;
            uint8_t* dst = raw + (slab & 1) * kBM * G::kSlot;
            for (int i = tid; i < kBM * G::kSegs; i += kThreads) {
                const int r = i / G::kSegs, seg = i % G::kSegs;
                if (m0 + r >= rows) continue;
                const uintptr_t a = (uintptr_t)W + (size_t)(m0 + r) * row_bytes + (size_t)slab * G::kSlabBytes;
                const uintptr_t lo = (a & ~(uintptr_t)15) + 16 * seg, hi = lo + 16;
                if (lo >= a + nbytes) continue;
                uint8_t* d = dst + r * G::kSlot + 16 * seg;
                if (lo >= w_begin && hi <= w_end) {
                    cp_async<16>(smem_u32(d), reinterpret_cast<const void*>(lo), true);
                } else {  // the tensor's first or last bytes: nothing outside it is read
                    const uintptr_t p_end = hi < a + nbytes ? hi : a + nbytes;
                    for (uintptr_t p = lo > a ? lo : a; p < p_end; p++) d[p - lo] = *reinterpret_cast<const uint8_t*>(p);
                }
            }
        }
        cp_async_commit();
    };

    // This thread's decode tasks: chunk dch of rows drow[it]; a row's bytes sit in its slot at
    // the offset mod 16 of their global address (the copies keep it).
    constexpr int kDecIt = kBM * (kBK / 8) / kThreads;
    static_assert(kBM * (kBK / 8) % kThreads == 0 && kThreads % (kBK / 8) == 0);
    const int dch = tid % (kBK / 8);
    int drow[kDecIt], doff[kDecIt];
#pragma unroll
    for (int it = 0; it < kDecIt; it++) {
        drow[it] = (tid + it * kThreads) / (kBK / 8);
        doff[it] = (int)(((uintptr_t)W + (size_t)(m0 + drow[it]) * row_bytes) & 15);
    }

    // local k-tile j: 128 rows x 32 columns decoded from its slab into ws[j % 2] as f16
    auto decode = [&](int j) {
        const int kt = kt0 + j, slab = kt / G::kTilesPerSlab;
        const uint8_t* src = raw + (slab & 1) * kBM * G::kSlot;
        __half* dst = ws + (j & 1) * kBM * kLds;
        const int e = (kt % G::kTilesPerSlab) * kBK + dch * 8;
        const int slab_off = (int)(((unsigned)slab * (unsigned)G::kSlabBytes) & 15u);
#pragma unroll
        for (int it = 0; it < kDecIt; it++) {
            const int r = drow[it];
            uint4 q = make_uint4(0, 0, 0, 0);
            if (m0 + r < rows) {
                const int off = (doff[it] + slab_off) & 15;
                float v[8];
                D::decode8(src + r * G::kSlot + off + (e / D::kBlockElems) * D::kBlockBytes, (e % D::kBlockElems) / 8, v);
                q = make_uint4(pack_half2(v[0], v[1]), pack_half2(v[2], v[3]), pack_half2(v[4], v[5]),
                               pack_half2(v[6], v[7]));
            }
            *reinterpret_cast<uint4*>(dst + r * kLds + dch * 8) = q;
        }
    };

    float acc[4][NT8][4];
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < NT8; ni++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[mi][ni][q] = 0.0f;

    // local k-tile j: this warp's 64 rows x WN tokens
    auto products = [&](int j) {
        const __half* a_s = ws + (j & 1) * kBM * kLds;
        const __half* b_s = xs + (j % 3) * BN * kLds;
#pragma unroll
        for (int ks = 0; ks < kBK / 16; ks++) {
            uint32_t a[4][4], b[NT8][2];
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
                ldsm_x4(a[mi], smem_u32(a_s + (wm * 64 + mi * 16 + (lane & 15)) * kLds + ks * 16 + (lane >> 4) * 8));
            if constexpr (NT8 == 1) {
                ldsm_x2(b[0], smem_u32(b_s + (wn * WN + (lane & 7)) * kLds + ks * 16 + ((lane >> 3) & 1) * 8));
            } else {
#pragma unroll
                for (int nj = 0; nj < NT8 / 2; nj++) {
                    uint32_t r[4];
                    ldsm_x4(r, smem_u32(b_s + (wn * WN + nj * 16 + (lane & 7) + ((lane >> 4) << 3)) * kLds + ks * 16 +
                                        ((lane >> 3) & 1) * 8));
                    b[2 * nj][0] = r[0];
                    b[2 * nj][1] = r[1];
                    b[2 * nj + 1][0] = r[2];
                    b[2 * nj + 1][1] = r[3];
                }
            }
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < NT8; ni++) mma_16816(acc[mi][ni], a[mi], b[ni]);
        }
    };

    // Iteration j: groups up to j - 2 have landed (X tile j, raw slab of tile j + 1); the barrier
    // also ends iteration j - 1's reads of the buffers that group j and decode(j + 1) overwrite.
    // The products come first: the decode's instructions issue while the mma.sync run.
    issue(-3);
    issue(-2);
    for (int j = -1; j < nkl; j++) {
        cp_async_wait<1>();
        __syncthreads();
        issue(j);
        if (j >= 0 && !(ablation & kSkipProducts)) products(j);
        if (j + 1 < nkl && !(ablation & kSkipDecode)) decode(j + 1);
    }

    const bool final_out = gridDim.z == 1;
    float* o = out + (size_t)blockIdx.z * n_tok * rows;
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
        const int r = m0 + wm * 64 + mi * 16 + (lane >> 2);
#pragma unroll
        for (int ni = 0; ni < NT8; ni++) {
#pragma unroll
            for (int q = 0; q < 2; q++) {
                const int tok = n0 + wn * WN + ni * 8 + (lane & 3) * 2 + q;
                if (tok >= n_tok) continue;
                const float sc = final_out ? inv_scale[tok] : 1.0f;
                if (r < rows) o[(size_t)tok * rows + r] = acc[mi][ni][q] * sc;
                if (r + 8 < rows) o[(size_t)tok * rows + r + 8] = acc[mi][ni][2 + q] * sc;
            }
        }
    }
}

__global__ void splitk_reduce_kernel(const float* __restrict__ part, int split, int n_tok, int rows,
                                     const float* __restrict__ inv_scale, float* __restrict__ Y) {
    const size_t n = (size_t)n_tok * rows;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int z = 0; z < split; z++) s += part[(size_t)z * n + i];
        Y[i] = s * inv_scale[i / rows];
    }
}

// One block per token: 2^e = the power of two that brings max|x| into [2^14, 2^15) (1 for rows of
// zeros or holding inf; fmaxf skips NaN, which then propagates through f16), X16 = f16(x * 2^e).
constexpr int kPrepThreads = 256;
__global__ void __launch_bounds__(kPrepThreads)
    prepare_kernel(const float* __restrict__ X, int cols, __half* __restrict__ X16, float* __restrict__ inv_scale) {
    const float* x = X + (size_t)blockIdx.x * cols;
    float m = 0.0f;
    for (int i = threadIdx.x; i < cols; i += kPrepThreads) m = fmaxf(m, fabsf(x[i]));
    __shared__ float red[kPrepThreads / 32];
    __shared__ float scale;
    m = warp_max(m);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = m;
    __syncthreads();
    if (threadIdx.x < 32) {
        m = warp_max(threadIdx.x < kPrepThreads / 32 ? red[threadIdx.x] : 0.0f);
        if (threadIdx.x == 0) {
            int e = 0;
            if (m > 0.0f && isfinite(m)) {
                int ex;
                frexpf(m, &ex);             // m < 2^ex
                e = 15 - max(ex, -112);     // 2^e stays a normal float
            }
            scale = ldexpf(1.0f, e);
            inv_scale[blockIdx.x] = ldexpf(1.0f, -e);
        }
    }
    __syncthreads();
    const float s = scale;
    __half2* o = reinterpret_cast<__half2*>(X16 + (size_t)blockIdx.x * cols);
    for (int i = threadIdx.x; i < cols / 2; i += kPrepThreads) o[i] = __floats2half2_rn(x[2 * i] * s, x[2 * i + 1] * s);
}

// ---------------------------------------------------------------- host side

struct DeviceLimits {
    int sms = 0;
    int smem_optin = 0;
};

constexpr int kMaxDevices = 64;

DeviceLimits device_limits(int dev) {
    static std::mutex mu;
    static DeviceLimits cache[kMaxDevices];
    std::lock_guard<std::mutex> lock(mu);
    DeviceLimits& d = cache[dev];
    if (d.sms == 0) {
        ROTOR_CUDA_CHECK(cudaDeviceGetAttribute(&d.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        ROTOR_CUDA_CHECK(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev));
    }
    return d;
}

// Raises the kernel's shared-memory limit once per device; returns its resident blocks per SM.
template <GgmlType T, int BN>
int kernel_occupancy(int dev) {
    static std::mutex mu;
    static int occ[kMaxDevices] = {};
    std::lock_guard<std::mutex> lock(mu);
    if (occ[dev] == 0) {
        const size_t smem = smem_bytes<T>(BN);
        ROTOR_CUDA_CHECK(cudaFuncSetAttribute(matmul_tc_kernel<T, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              (int)smem));
        int n = 0;
        ROTOR_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, matmul_tc_kernel<T, BN>, kThreads, smem));
        if (n < 1) throw Error("matmul_tc: kernel does not fit on this GPU");
        occ[dev] = n;
    }
    return occ[dev];
}

int g_force_tile = 0, g_force_split = 0, g_ablation = 0;

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

struct ScratchLayout {
    size_t inv = 0, part = 0;  // offsets; X16 at 0
};
ScratchLayout scratch_layout(int n_tok, int64_t cols) {
    ScratchLayout L;
    L.inv = align256((size_t)n_tok * (size_t)cols * 2);
    L.part = L.inv + align256((size_t)n_tok * 4);
    return L;
}

struct Problem {
    const uint8_t* W;
    size_t row_bytes;
    int rows, cols, n_tok;
    const __half* x16;
    const float* inv;
    float* Y;
    float* part;
    size_t part_bytes;
    cudaStream_t s;
};

template <GgmlType T, int BN>
void launch(const Problem& p, int dev, const DeviceLimits& lim) {
    using G = Geo<T>;
    const int occ = kernel_occupancy<T, BN>(dev);
    const unsigned gx = (unsigned)((p.n_tok + BN - 1) / BN), gy = (unsigned)((p.rows + kBM - 1) / kBM);
    const int64_t tiles = (int64_t)gx * gy;
    const int n_slabs = (p.cols + G::kSlabCols - 1) / G::kSlabCols;
    // split-K to about one full wave of blocks (the kernel is bound by each block's latency, so
    // resident blocks are what counts; measured on H200: up to 1.8x for 4096 rows x 512 tokens)
    int split = 1;
    if (g_force_split > 0) {
        split = g_force_split;
    } else {
        const int64_t target = (int64_t)lim.sms * occ;
        if (tiles < target) split = (int)std::clamp<int64_t>((target + tiles / 2) / tiles, 1, kMaxSplit);
    }
    const size_t per_split = (size_t)p.n_tok * p.rows * sizeof(float);
    if (split > 1) split = (int)std::min<size_t>((size_t)split, p.part_bytes / per_split);
    split = std::max(1, std::min(split, n_slabs));
    const int sps = (n_slabs + split - 1) / split;
    split = (n_slabs + sps - 1) / sps;  // no empty slice
    if (gy > 65535u) throw Error("matmul_tc: too many rows");
    const dim3 grid(gx, gy, (unsigned)split);
    matmul_tc_kernel<T, BN><<<grid, kThreads, smem_bytes<T>(BN), p.s>>>(
        p.W, p.row_bytes, p.rows, p.cols, p.x16, p.inv, p.n_tok, sps, g_ablation, split > 1 ? p.part : p.Y);
    check_launch("matmul_tc");
    if (split > 1) {
        const size_t n = (size_t)p.n_tok * p.rows;
        const unsigned blocks = (unsigned)std::min<size_t>((n + 255) / 256, (size_t)lim.sms * 8);
        splitk_reduce_kernel<<<blocks, 256, 0, p.s>>>(p.part, split, p.n_tok, p.rows, p.inv, p.Y);
        check_launch("matmul_tc split-K reduce");
    }
}

template <GgmlType T>
void run(const Problem& p) {
    int dev = 0;
    ROTOR_CUDA_CHECK(cudaGetDevice(&dev));
    if (dev < 0 || dev >= kMaxDevices) throw Error("matmul_tc: device id out of range");
    const DeviceLimits lim = device_limits(dev);
    auto fits = [&](int bn) { return smem_bytes<T>(bn) <= (size_t)lim.smem_optin; };
    int bn = g_force_tile ? g_force_tile : (p.n_tok <= 32 ? 32 : (p.n_tok <= 64 ? 64 : 128));
    while (bn > 32 && !fits(bn)) bn /= 2;
    if (!fits(bn)) throw Error("matmul_tc: not enough shared memory on this GPU");
    switch (bn) {
        case 32: launch<T, 32>(p, dev, lim); break;
        case 64: launch<T, 64>(p, dev, lim); break;
        case 128: launch<T, 128>(p, dev, lim); break;
        default: throw Error("matmul_tc: bad token tile " + std::to_string(bn));
    }
}

}  // namespace

bool matmul_tc_supported(GgmlType t, int64_t cols) {
    bool ok = false;
    with_chunk_decoder(t, [&]<GgmlType T>() {
        ok = cols > 0 && cols % kBK == 0 && cols % ChunkDecoder<T>::kBlockElems == 0 && cols <= INT_MAX / 4;
    });
    return ok;
}

size_t matmul_tc_min_scratch_bytes(int n_tok, int64_t cols) { return scratch_layout(n_tok, cols).part; }
size_t matmul_tc_scratch_bytes(int n_tok, int64_t cols) {
    return matmul_tc_min_scratch_bytes(n_tok, cols) + kMatmulTcSplitBytes;
}

void matmul_tc_force_config(int tile_tokens, int split) {
    g_force_tile = tile_tokens;
    g_force_split = split;
}

void matmul_tc_set_ablation(int flags) { g_ablation = flags; }

void matmul_tc_prepare(const float* X, int n_tok, int64_t cols, void* scratch, cudaStream_t s) {
    if (n_tok <= 0) return;
    if (cols <= 0 || cols % kBK != 0) throw Error("matmul_tc_prepare: row length not a multiple of 32");
    if ((uintptr_t)scratch % 16 != 0) throw Error("matmul_tc: scratch not 16-byte aligned");
    const ScratchLayout L = scratch_layout(n_tok, cols);
    auto* base = static_cast<uint8_t*>(scratch);
    prepare_kernel<<<n_tok, kPrepThreads, 0, s>>>(X, (int)cols, reinterpret_cast<__half*>(base),
                                                   reinterpret_cast<float*>(base + L.inv));
    check_launch("matmul_tc prepare");
}

void matmul_tc_prepared(GgmlType t, const void* W, int64_t rows, int64_t cols, int n_tok, float* Y, cudaStream_t s,
                        void* scratch, size_t scratch_bytes) {
    if (n_tok <= 0 || rows <= 0) return;
    if (!matmul_tc_supported(t, cols))
        throw Error("matmul_tc: no kernel for " + std::string(format_info(t).name) + " rows of " + std::to_string(cols));
    if (rows > INT_MAX) throw Error("matmul_tc: too many rows");
    const ScratchLayout L = scratch_layout(n_tok, cols);
    if (scratch_bytes < L.part) throw Error("matmul_tc: scratch too small");
    auto* base = static_cast<uint8_t*>(scratch);
    const Problem p{static_cast<const uint8_t*>(W),
                    (size_t)row_bytes(t, (uint64_t)cols),
                    (int)rows,
                    (int)cols,
                    n_tok,
                    reinterpret_cast<const __half*>(base),
                    reinterpret_cast<const float*>(base + L.inv),
                    Y,
                    reinterpret_cast<float*>(base + L.part),
                    scratch_bytes - L.part,
                    s};
    with_chunk_decoder(t, [&]<GgmlType T>() { run<T>(p); });
}

void matmul_tc(GgmlType t, const void* W, int64_t rows, int64_t cols, const float* X, int n_tok, float* Y,
               cudaStream_t s, void* scratch, size_t scratch_bytes) {
    if (n_tok <= 0 || rows <= 0) return;
    if (!matmul_tc_supported(t, cols))
        throw Error("matmul_tc: no kernel for " + std::string(format_info(t).name) + " rows of " + std::to_string(cols));
    if (scratch_bytes < matmul_tc_min_scratch_bytes(n_tok, cols)) throw Error("matmul_tc: scratch too small");
    matmul_tc_prepare(X, n_tok, cols, scratch, s);
    matmul_tc_prepared(t, W, rows, cols, n_tok, Y, s, scratch, scratch_bytes);
}

}  // namespace rotor::cuda
