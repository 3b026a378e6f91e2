// Tensor-core prefill attention (attention_prefill.h).
//
// One thread block per (KV head g, tile of query tokens of one run): its rows are token x query head
// of g's group (row r: token r / G, head g * G + r % G), 16 rows per warp, so one K/V tile in shared
// memory serves every query head of the group. Per K/V tile of BN positions:
//   S = Q K^T (ldmatrix + mma.sync m16n8k16, f16 in, f32 out),
//   causal / window mask on the edge tiles only, online softmax in f32 (exp2),
//   O += P V.
// Every product keeps f32 accuracy, as the decode kernel (attention_decode.cu) does, so that the
// result matches the split-K kernel and an exact reference to 5e-5 max|v| whatever the scale of the
// scores (Gemma 4's q/k norms leave them unscaled: Q rounded to f16 moved them by ~0.1):
//   - Q (times scale * log2 e and a power of two per block that puts its largest |value| just under
//     2^10) is held in shared memory as f16 hi + lo parts, two mma per product;
//   - K and V tiles hold the stored values exactly as f16: f16 caches as they are, q8_0 / q4_0 as their
//     integer codes (c, c - 8) with the block scales beside them. A 32-dim block's two k-steps go into
//     a temporary that is multiplied by each key's scale;
//   - P V: the weights times the key's value scale for each 32-dim block of V (the scale varies along
//     the summed positions, so it cannot be factored out), split into hi + lo. To keep p * d below 1
//     the running max includes each key's largest value-scale exponent e (p' = 2^(s - m) d with
//     m >= s + e); any common shift is exact for softmax (output = acc / sum).
// K/V tiles live in shared memory with rows swizzled in 16-byte chunks (chunk c of row r at
// c ^ (r % 8), so ldmatrix's 8 rows hit distinct banks):
//   f16:        cp.async straight into a ring of 2-3 tiles;
//   q8_0/q4_0:  raw block bytes by cp.async into two staging buffers, decoded to codes by all threads,
//               tile j + 1 decoded in the same phase as the products of tile j when two decoded tiles
//               fit (one barrier per tile), else decode and products in separate phases.
// f32 caches and head size 512 (Q's two parts do not fit beside a K/V tile in 99 KiB) are refused:
// those layers run the split-K kernel (attention_prefill_refusal).
// Positions past the run's last query are zero-filled (never read: the cache may hold anything there).
// Every configuration fits in 99 KiB of shared memory (sm_86 / sm_89 / sm_120's limit per block).
#include "cuda/attention_prefill.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "cuda/cp_async.cuh"
#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/mma_f16.cuh"
#include "formats/blocks.h"
#include "formats/chunk_decode.h"

namespace rotor::cuda {

namespace {

constexpr size_t kSmemBudget = 99 * 1024;  // opt-in shared memory per block on sm_86/89/120
constexpr int kMaxRuns = 32;               // runs per launch (more: several launches)
constexpr int kRowsPerBlock = 64;          // (token, query head) rows per block: every configuration's

struct RunTable {
    int n = 0;
    int seq[kMaxRuns], pos0[kMaxRuns], len[kMaxRuns], tok0[kMaxRuns];
    int tile0[kMaxRuns + 1];  // first query tile of each run; tile0[n] = all tiles
};

// Blocks of 32 read as integer codes times a block scale (no block minimum: q4_1 / q5_1 are refused).
template <class E>
constexpr bool kIsStagedBlock = std::is_same_v<E, block_q8_0> || std::is_same_v<E, block_q4_0> ||
                                std::is_same_v<E, block_q5_0> || std::is_same_v<E, block_iq4_nl>;

template <class E>
constexpr int raw_row_bytes(int d) {
    if constexpr (kIsStagedBlock<E>)
        return d / 32 * (int)sizeof(E);
    else return d * (int)sizeof(E);
}

// Geometry of one instantiation: head size D, NW warps, BN positions per K/V tile, the value
// columns split over DVS warps.
template <class E, int D, int NW, int BN, int DVS>
struct Geo {
    static constexpr int kThreads = NW * kWarp;
    static constexpr int kBM = 16 * NW / DVS;  // rows (token x head) per block
    static constexpr int kDvw = D / DVS;       // value columns per warp
    static constexpr int kNB = D / 32;         // 32-dim blocks of a row
    static constexpr bool kDirect = std::is_same_v<E, __half>;
    static constexpr bool kStaged = kIsStagedBlock<E>;
    static_assert(kDirect || kStaged);
    static constexpr int kRawRow = raw_row_bytes<E>(D);
    // widest cp.async that every raw row start allows (rows are 4-byte multiples for D % 64 == 0)
    static constexpr int kCopy = kRawRow % 16 == 0 ? 16 : (kRawRow % 8 == 0 ? 8 : 4);
    static constexpr size_t kQTile = (size_t)kBM * D * 2;  // one f16 part of Q
    static constexpr size_t kQBytes = 2 * kQTile;          // hi, then lo
    static constexpr size_t kTileBytes = (size_t)BN * D * 2;
    // staged: K scales [block][key], V scales [block][key], V exponents [key] after the two tiles
    static constexpr size_t kScaleBytes = kStaged ? (size_t)(2 * kNB * BN + BN) * 4 : 0;
    static constexpr size_t kOpBytes = 2 * kTileBytes + kScaleBytes;
    static constexpr size_t kRawBytes = kStaged ? (size_t)2 * BN * kRawRow : 0;  // one staging buffer
    static constexpr bool kInterleave = kStaged && kQBytes + 2 * kOpBytes + 2 * kRawBytes <= kSmemBudget;
    static constexpr int kStages = kDirect ? (kQBytes + 3 * kOpBytes <= kSmemBudget ? 3 : 2) : 0;
    static constexpr int kOpBuffers = kDirect ? kStages : (kInterleave ? 2 : 1);
    static constexpr size_t kSmem = kQBytes + kOpBuffers * kOpBytes + 2 * kRawBytes;
    static constexpr bool kFits = kSmem <= kSmemBudget;
    static_assert(D % 64 == 0 && BN % 16 == 0 && NW % DVS == 0 && kDvw % 32 == 0);
    static_assert(kRawBytes % 16 == 0 && kOpBytes % 16 == 0 && kQBytes % 16 == 0);
};

// Byte offset of 16-byte chunk c of row r in a tile of rows of D halves (swizzled).
template <int D>
__device__ inline uint32_t swz(int r, int c) {
    return (uint32_t)(r * D * 2 + ((c ^ (r & 7)) << 4));
}

__device__ inline void ldsm_x4(uint32_t* r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ inline void ldsm_x4_trans(uint32_t* r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
// Four bytes u0..u3 (each < 1024 - offset: codes) as the halves 1024 + u: two half2.
__device__ inline void bytes_to_h2(uint32_t w, uint32_t& lo, uint32_t& hi) {
    lo = __byte_perm(w, 0x64646464u, 0x4140);  // bytes 0, 1 under 0x64 high bytes
    hi = __byte_perm(w, 0x64646464u, 0x4342);  // bytes 2, 3
}

// 8 codes (1024 + u each, as 4 half2) minus `off`: the signed codes, exact in f16.
__device__ inline uint4 signed_codes(const uint32_t (&h)[4], __half2 off) {
    uint4 r;
    r.x = h2_bits(__hsub2(bits_h2(h[0]), off));
    r.y = h2_bits(__hsub2(bits_h2(h[1]), off));
    r.z = h2_bits(__hsub2(bits_h2(h[2]), off));
    r.w = h2_bits(__hsub2(bits_h2(h[3]), off));
    return r;
}

// Chunk c (8 elements) of a row of blocks in shared memory (2-byte aligned) to 8 codes as f16.
__device__ inline uint4 decode_chunk(const unsigned char* row, int c, const block_q8_0*) {
    const unsigned char* b = row + (c >> 2) * (int)sizeof(block_q8_0);
    const uint16_t* p = reinterpret_cast<const uint16_t*>(b + 2 + (c & 3) * 8);
    const uint32_t w0 = ((uint32_t)p[0] | ((uint32_t)p[1] << 16)) ^ 0x80808080u;  // int8 -> u = x + 128
    const uint32_t w1 = ((uint32_t)p[2] | ((uint32_t)p[3] << 16)) ^ 0x80808080u;
    uint32_t h[4];
    bytes_to_h2(w0, h[0], h[1]);
    bytes_to_h2(w1, h[2], h[3]);
    return signed_codes(h, __float2half2_rn(1152.0f));
}
__device__ inline uint4 decode_chunk(const unsigned char* row, int c, const block_q4_0*) {
    // elements 0-15 of a block: low nibbles of qs[0..15], 16-31: high nibbles
    const unsigned char* b = row + (c >> 2) * (int)sizeof(block_q4_0);
    const uint16_t* p = reinterpret_cast<const uint16_t*>(b + 2 + (c & 1) * 8);
    const int shift = (c & 2) ? 4 : 0;
    const uint32_t w0 = (((uint32_t)p[0] | ((uint32_t)p[1] << 16)) >> shift) & 0x0F0F0F0Fu;
    const uint32_t w1 = (((uint32_t)p[2] | ((uint32_t)p[3] << 16)) >> shift) & 0x0F0F0F0Fu;
    uint32_t h[4];
    bytes_to_h2(w0, h[0], h[1]);
    bytes_to_h2(w1, h[2], h[3]);
    return signed_codes(h, __float2half2_rn(1032.0f));
}
__device__ inline uint4 decode_chunk(const unsigned char* row, int c, const block_q5_0*) {
    // q4_0's nibbles, plus each element's fifth bit (bit e of qh: byte c & 3 for this chunk) at bit 4
    const unsigned char* b = row + (c >> 2) * (int)sizeof(block_q5_0);
    const uint16_t* p = reinterpret_cast<const uint16_t*>(b + 6 + (c & 1) * 8);
    const int shift = (c & 2) ? 4 : 0;
    const uint32_t hb = b[2 + (c & 3)];
    auto fifth = [](uint32_t h) {
        return ((h & 1u) << 4) | ((h & 2u) << 11) | ((h & 4u) << 18) | ((h & 8u) << 25);
    };
    const uint32_t w0 = ((((uint32_t)p[0] | ((uint32_t)p[1] << 16)) >> shift) & 0x0F0F0F0Fu) | fifth(hb);
    const uint32_t w1 = ((((uint32_t)p[2] | ((uint32_t)p[3] << 16)) >> shift) & 0x0F0F0F0Fu) | fifth(hb >> 4);
    uint32_t h[4];
    bytes_to_h2(w0, h[0], h[1]);
    bytes_to_h2(w1, h[2], h[3]);
    return signed_codes(h, __float2half2_rn(1040.0f));
}
__device__ inline uint4 decode_chunk(const unsigned char* row, int c, const block_iq4_nl*) {
    // q4_0's nibbles through the code book (chunk_decode.h's iq4nl), + 128 as bytes
    const unsigned char* b = row + (c >> 2) * (int)sizeof(block_iq4_nl);
    const uint16_t* p = reinterpret_cast<const uint16_t*>(b + 2 + (c & 1) * 8);
    const int shift = (c & 2) ? 4 : 0;
    uint32_t w[2];
#pragma unroll
    for (int k = 0; k < 2; k++) {
        const uint32_t codes = (((uint32_t)p[2 * k] | ((uint32_t)p[2 * k + 1] << 16)) >> shift) & 0x0F0F0F0Fu;
        uint32_t v = 0;
#pragma unroll
        for (int i = 0; i < 4; i++)
            v |= (uint32_t)(chunk_detail::iq4nl((int)((codes >> (8 * i)) & 0xF)) + 128) << (8 * i);
        w[k] = v;
    }
    uint32_t h[4];
    bytes_to_h2(w[0], h[0], h[1]);
    bytes_to_h2(w[1], h[2], h[3]);
    return signed_codes(h, __float2half2_rn(1152.0f));
}
template <class E, int D, int NW, int BN, int DVS>
__global__ void __launch_bounds__(NW* kWarp)
    prefill_attention_kernel(const E* __restrict__ K, const E* __restrict__ V, int hkv, int ctx, int window,
                             const float* __restrict__ q, float* __restrict__ out, int n_head, float qscale,
                             const RunTable runs) {
    using Gm = Geo<E, D, NW, BN, DVS>;
    constexpr int kBM = Gm::kBM, kThreads = Gm::kThreads, kChunks = D / 8, NB = Gm::kNB;
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ unsigned int q_amax_bits;
    unsigned char* sQ = smem;                                    // Q hi, then Q lo
    unsigned char* sOp = smem + Gm::kQBytes;                     // kOpBuffers x (K tile, V tile, scales)
    unsigned char* sRaw = sOp + Gm::kOpBuffers * Gm::kOpBytes;  // 2 staging buffers (staged types)

    // which run and which of its query tiles: the last tiles (most positions) first
    const int G = n_head / hkv, tpb = kBM / G;
    const int g = blockIdx.x;
    const int bt = (int)(gridDim.y - 1 - blockIdx.y);
    int r = 0;
    while (r + 1 < runs.n && bt >= runs.tile0[r + 1]) r++;
    const int seq = runs.seq[r], p0 = runs.pos0[r], len = runs.len[r], tok0 = runs.tok0[r];
    const int t0 = (bt - runs.tile0[r]) * tpb;  // first token of the tile in its run
    const int n_valid = min(tpb, len - t0);
    const int qmin = p0 + t0, qmax = qmin + n_valid - 1;
    const int lo = window > 0 ? max(0, qmin - window + 1) : 0, hi = qmax;
    const int n_tiles = (hi - lo + BN) / BN;
    const size_t seq_base = (size_t)seq * ctx;
    const int tid = threadIdx.x, warp = tid / kWarp, lane = tid % kWarp;

    // row of (position, KV head g) in the cache; positions past hi are never read
    auto row_index = [&](int p) -> size_t {
        const int slot = p < ctx ? p : p % ctx;  // only ring positions wrap
        return (seq_base + slot) * hkv + g;
    };

    // ---- Q tile: q * scale * log2 e * 2^k as f16 hi + lo, 2^k putting the tile's largest |value| in
    // [2^9, 2^10) (f16 holds the parts with room to spare; the scores are multiplied by 2^-k back).
    // Rows past the tile's tokens are zeros.
    auto q_row = [&](int row) -> const float* {
        const int tok = row / G;
        if (row >= tpb * G || tok >= n_valid) return nullptr;
        return q + ((size_t)(tok0 + t0 + tok) * n_head + g * G + row % G) * D;
    };
    if (tid == 0) q_amax_bits = 0;
    __syncthreads();
    float amax = 0.0f;
    for (int i = tid; i < kBM * kChunks; i += kThreads)
        if (const float* src = q_row(i / kChunks)) {
            const float4 a = *reinterpret_cast<const float4*>(src + (i % kChunks) * 8);
            const float4 b = *reinterpret_cast<const float4*>(src + (i % kChunks) * 8 + 4);
            amax = fmaxf(amax, fmaxf(fmaxf(fabsf(a.x), fabsf(a.y)), fmaxf(fabsf(a.z), fabsf(a.w))));
            amax = fmaxf(amax, fmaxf(fmaxf(fabsf(b.x), fabsf(b.y)), fmaxf(fabsf(b.z), fabsf(b.w))));
        }
    amax = warp_max(amax);
    if (lane == 0) atomicMax(&q_amax_bits, __float_as_uint(amax));  // non-negative floats order as ints
    __syncthreads();
    int qexp = 0;
    if (const float m = __uint_as_float(q_amax_bits) * qscale; m > 0.0f && m <= 3.0e38f) frexpf(m, &qexp);
    qexp = max(qexp, -100);
    const float qmul = qscale * ldexpf(1.0f, 10 - qexp), qinv = ldexpf(1.0f, qexp - 10);
    for (int i = tid; i < kBM * kChunks; i += kThreads) {
        const int row = i / kChunks, c = i % kChunks;
        uint4 h = make_uint4(0, 0, 0, 0), l = make_uint4(0, 0, 0, 0);
        if (const float* src = q_row(row)) {
            const float4 a = *reinterpret_cast<const float4*>(src + c * 8);
            const float4 b = *reinterpret_cast<const float4*>(src + c * 8 + 4);
            split_pair(a.x * qmul, a.y * qmul, h.x, l.x);
            split_pair(a.z * qmul, a.w * qmul, h.y, l.y);
            split_pair(b.x * qmul, b.y * qmul, h.z, l.z);
            split_pair(b.z * qmul, b.w * qmul, h.w, l.w);
        }
        *reinterpret_cast<uint4*>(sQ + swz<D>(row, c)) = h;
        *reinterpret_cast<uint4*>(sQ + Gm::kQTile + swz<D>(row, c)) = l;
    }

    // ---- K/V tile j: loads and decodes
    auto op_k = [&](int b) { return sOp + (size_t)b * Gm::kOpBytes; };
    auto op_v = [&](int b) { return op_k(b) + Gm::kTileBytes; };
    auto op_scales = [&](int b) { return reinterpret_cast<float*>(op_k(b) + 2 * Gm::kTileBytes); };
    // f16: tile j straight into op buffer b
    auto issue_direct = [&](int j, int b) {
        const int kt0 = lo + j * BN;
        for (int i = tid; i < 2 * BN * kChunks; i += kThreads) {
            const int which = i / (BN * kChunks), key = (i / kChunks) % BN, c = i % kChunks;
            const int p = kt0 + key;
            const bool valid = p <= hi;
            const E* base = which ? V : K;
            const E* src = base + (valid ? row_index(p) * D + c * 8 : 0);
            cp_async<16>(smem_u32((which ? op_v(b) : op_k(b)) + swz<D>(key, c)), src, valid);
        }
    };
    // q8_0 / q4_0: raw rows of tile j into staging buffer j % 2
    auto issue_raw = [&](int j) {
        constexpr int kW = Gm::kCopy, kPer = Gm::kRawRow / kW;
        const int kt0 = lo + j * BN;
        unsigned char* dst = sRaw + (size_t)(j & 1) * Gm::kRawBytes;
        for (int i = tid; i < 2 * BN * kPer; i += kThreads) {
            const int which = i / (BN * kPer), key = (i / kPer) % BN, w = i % kPer;
            const int p = kt0 + key;
            const bool valid = p <= hi;
            const unsigned char* base = reinterpret_cast<const unsigned char*>(which ? V : K);
            const unsigned char* src = base + (valid ? row_index(p) * Gm::kRawRow + (size_t)w * kW : 0);
            cp_async<kW>(smem_u32(dst + (size_t)(which * BN + key) * Gm::kRawRow + w * kW), src, valid);
        }
    };
    // staged: staging buffer j % 2 -> codes, scales and value exponents in op buffer b
    auto decode = [&](int j, int b) {
        if constexpr (Gm::kStaged) {
            const unsigned char* raw = sRaw + (size_t)(j & 1) * Gm::kRawBytes;
            float* scales = op_scales(b);  // [which][block][key]
            for (int i = tid; i < 2 * BN * kChunks; i += kThreads) {
                const int which = i / (BN * kChunks), key = (i / kChunks) % BN, c = i % kChunks;
                const unsigned char* row = raw + (size_t)(which * BN + key) * Gm::kRawRow;
                *reinterpret_cast<uint4*>((which ? op_v(b) : op_k(b)) + swz<D>(key, c)) =
                    decode_chunk(row, c, static_cast<const E*>(nullptr));
                if ((c & 3) == 0) scales[(which * NB + (c >> 2)) * BN + key] = half_at(row + (c >> 2) * sizeof(E));
            }
            // each key's largest value-scale exponent (rows past the end are zeros: 0)
            for (int key = tid; key < BN; key += kThreads) {
                const unsigned char* row = raw + (size_t)(BN + key) * Gm::kRawRow;
                float m = 0.0f;
#pragma unroll
                for (int bl = 0; bl < NB; bl++) m = fmaxf(m, fabsf(half_at(row + bl * sizeof(E))));
                scales[2 * NB * BN + key] = (float)value_scale_exponent(m);
            }
        }
    };

    // ---- per-warp state: 16 rows (row group rg), value columns [ds * kDvw, (ds + 1) * kDvw)
    const int rg = warp / DVS, ds = warp % DVS;
    const int row_a = rg * 16 + lane / 4, row_b = row_a + 8;  // the two rows this lane holds
    const int qpos_a = p0 + t0 + row_a / G, qpos_b = p0 + t0 + row_b / G;
    const int qmax_rows = p0 + t0 + (kBM - 1) / G;  // the largest position any row (valid or not) takes
    const int kq = 2 * (lane & 3);                  // this lane's first key column in an n-tile
    float o[Gm::kDvw / 8][4];
#pragma unroll
    for (int i = 0; i < Gm::kDvw / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float mx[2] = {-INFINITY, -INFINITY}, ls[2] = {0.0f, 0.0f};

    auto compute = [&](int j, int b) {
        const int kt0 = lo + j * BN;
        const uint32_t qa = smem_u32(sQ), ka = smem_u32(op_k(b)), va = smem_u32(op_v(b));
        const float* dk = op_scales(b);     // [block][key]
        const float* dv = dk + NB * BN;     // [block][key]
        const float* ev = dv + NB * BN;     // [key]
        // acc += (Q hi + Q lo) K^T over k-step ks
        auto qk_step = [&](float (&acc)[BN / 8][4], int ks) {
            uint32_t ah[4], al[4];
            const uint32_t qoff = swz<D>(rg * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, ks * 2 + (lane >> 4));
            ldsm_x4(ah, qa + qoff);
            ldsm_x4(al, qa + (uint32_t)Gm::kQTile + qoff);
#pragma unroll
            for (int np = 0; np < BN / 16; np++) {
                uint32_t bk[4];
                ldsm_x4(bk, ka + swz<D>(np * 16 + (lane & 7) + (lane >> 4) * 8, ks * 2 + ((lane >> 3) & 1)));
                mma_16816(acc[2 * np], ah, bk);
                mma_16816(acc[2 * np], al, bk);
                mma_16816(acc[2 * np + 1], ah, bk + 2);
                mma_16816(acc[2 * np + 1], al, bk + 2);
            }
        };
        float s[BN / 8][4];
#pragma unroll
        for (int i = 0; i < BN / 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
        if constexpr (Gm::kDirect) {
#pragma unroll
            for (int ks = 0; ks < D / 16; ks++) qk_step(s, ks);
        } else {
#pragma unroll
            for (int bl = 0; bl < NB; bl++) {  // a block's two k-steps, then times each key's scale
                float t[BN / 8][4];
#pragma unroll
                for (int i = 0; i < BN / 8; i++) t[i][0] = t[i][1] = t[i][2] = t[i][3] = 0.0f;
                qk_step(t, 2 * bl);
                qk_step(t, 2 * bl + 1);
#pragma unroll
                for (int nt = 0; nt < BN / 8; nt++) {
                    const float2 d = *reinterpret_cast<const float2*>(dk + bl * BN + nt * 8 + kq);
                    s[nt][0] = fmaf(t[nt][0], d.x, s[nt][0]);
                    s[nt][1] = fmaf(t[nt][1], d.y, s[nt][1]);
                    s[nt][2] = fmaf(t[nt][2], d.x, s[nt][2]);
                    s[nt][3] = fmaf(t[nt][3], d.y, s[nt][3]);
                }
            }
        }
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[nt][e] *= qinv;  // the Q tile's power of two, exactly
        // mask only where a tile crosses the diagonal or the window's start
        if (kt0 + BN - 1 > qmin || (window > 0 && kt0 <= qmax_rows - window)) {
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int key = kt0 + nt * 8 + kq + (e & 1);
                    const int qp = e < 2 ? qpos_a : qpos_b;
                    if (key > qp || (window > 0 && key <= qp - window)) s[nt][e] = -INFINITY;
                }
        }
        // the running max is over s + e (staged types; e = 0 for f16)
        float tmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
            float e0 = 0.0f, e1 = 0.0f;
            if constexpr (Gm::kStaged) {
                const float2 e = *reinterpret_cast<const float2*>(ev + nt * 8 + kq);
                e0 = e.x, e1 = e.y;
            }
            tmax[0] = fmaxf(tmax[0], fmaxf(s[nt][0] + e0, s[nt][1] + e1));
            tmax[1] = fmaxf(tmax[1], fmaxf(s[nt][2] + e0, s[nt][3] + e1));
        }
        float corr[2], muse[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            tmax[h] = fmaxf(tmax[h], __shfl_xor_sync(0xffffffffu, tmax[h], 1));
            tmax[h] = fmaxf(tmax[h], __shfl_xor_sync(0xffffffffu, tmax[h], 2));
            const float mnew = fmaxf(mx[h], tmax[h]);
            muse[h] = mnew == -INFINITY ? 0.0f : mnew;  // a row with nothing visible yet stays at zero
            corr[h] = exp2f(mx[h] - muse[h]);
            mx[h] = mnew;
        }
        float rs[2] = {0.0f, 0.0f};
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
            s[nt][0] = exp2f(s[nt][0] - muse[0]);
            s[nt][1] = exp2f(s[nt][1] - muse[0]);
            s[nt][2] = exp2f(s[nt][2] - muse[1]);
            s[nt][3] = exp2f(s[nt][3] - muse[1]);
            rs[0] += s[nt][0] + s[nt][1];
            rs[1] += s[nt][2] + s[nt][3];
        }
        ls[0] = ls[0] * corr[0] + rs[0];
        ls[1] = ls[1] * corr[1] + rs[1];
#pragma unroll
        for (int i = 0; i < Gm::kDvw / 8; i++) {
            o[i][0] *= corr[0];
            o[i][1] *= corr[0];
            o[i][2] *= corr[1];
            o[i][3] *= corr[1];
        }
        // O += P' V: the A operand's keys for this lane are kk * 16 + kq + (0, 1) and + 8
        auto pv_block = [&](int kk, int np, const uint32_t (&ph)[4], const uint32_t (&pl)[4]) {
            uint32_t bv[4];
            ldsm_x4_trans(bv, va + swz<D>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8,
                                          (ds * Gm::kDvw + np * 16) / 8 + (lane >> 4)));
            mma_16816(o[2 * np], ph, bv);
            mma_16816(o[2 * np], pl, bv);
            mma_16816(o[2 * np + 1], ph, bv + 2);
            mma_16816(o[2 * np + 1], pl, bv + 2);
        };
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            const float(&sa)[4] = s[2 * kk];
            const float(&sb)[4] = s[2 * kk + 1];
            if constexpr (Gm::kDirect) {
                uint32_t ph[4], pl[4];
                split_pair(sa[0], sa[1], ph[0], pl[0]);
                split_pair(sa[2], sa[3], ph[1], pl[1]);
                split_pair(sb[0], sb[1], ph[2], pl[2]);
                split_pair(sb[2], sb[3], ph[3], pl[3]);
#pragma unroll
                for (int np = 0; np < Gm::kDvw / 16; np++) pv_block(kk, np, ph, pl);
            } else {
#pragma unroll
                for (int bl = 0; bl < Gm::kDvw / 32; bl++) {
                    const float* d = dv + (ds * Gm::kDvw / 32 + bl) * BN + kk * 16 + kq;
                    const float2 d0 = *reinterpret_cast<const float2*>(d);
                    const float2 d1 = *reinterpret_cast<const float2*>(d + 8);
                    uint32_t ph[4], pl[4];
                    split_pair(sa[0] * d0.x, sa[1] * d0.y, ph[0], pl[0]);
                    split_pair(sa[2] * d0.x, sa[3] * d0.y, ph[1], pl[1]);
                    split_pair(sb[0] * d1.x, sb[1] * d1.y, ph[2], pl[2]);
                    split_pair(sb[2] * d1.x, sb[3] * d1.y, ph[3], pl[3]);
                    pv_block(kk, 2 * bl, ph, pl);
                    pv_block(kk, 2 * bl + 1, ph, pl);
                }
            }
        }
    };

    // ---- the pipeline
    if constexpr (Gm::kDirect) {
        constexpr int S = Gm::kStages;
#pragma unroll
        for (int j = 0; j < S - 1; j++) {
            if (j < n_tiles) issue_direct(j, j);
            cp_async_commit();
        }
        for (int j = 0; j < n_tiles; j++) {
            cp_async_wait<S - 2>();  // tile j has landed (this thread's copies)
            __syncthreads();         // everyone's copies; tile j - 1's buffer is free
            if (j + S - 1 < n_tiles) issue_direct(j + S - 1, (j + S - 1) % S);
            cp_async_commit();
            compute(j, j % S);
        }
    } else if constexpr (Gm::kInterleave) {
        // phase j: decode tile j + 1 into op (j + 1) % 2 while the products of tile j read op j % 2
        issue_raw(0);
        cp_async_commit();
        if (n_tiles > 1) issue_raw(1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        decode(0, 0);
        for (int j = 0; j < n_tiles; j++) {
            cp_async_wait<0>();  // raw tile j + 1
            __syncthreads();     // op j % 2 decoded, op (j + 1) % 2 and staging j % 2 free
            if (j + 2 < n_tiles) issue_raw(j + 2);
            cp_async_commit();
            if (j + 1 < n_tiles) decode(j + 1, (j + 1) & 1);
            compute(j, j & 1);
        }
    } else {
        issue_raw(0);
        cp_async_commit();
        for (int j = 0; j < n_tiles; j++) {
            if (j + 1 < n_tiles) issue_raw(j + 1);
            cp_async_commit();
            cp_async_wait<1>();  // raw tile j
            __syncthreads();     // raw tile j complete; the products of tile j - 1 are done
            decode(j, 0);
            __syncthreads();
            compute(j, 0);
        }
    }

    // ---- normalize and write the valid rows
#pragma unroll
    for (int h = 0; h < 2; h++) {
        ls[h] += __shfl_xor_sync(0xffffffffu, ls[h], 1);
        ls[h] += __shfl_xor_sync(0xffffffffu, ls[h], 2);
    }
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = h ? row_b : row_a, tok = row / G;
        if (row >= tpb * G || tok >= n_valid) continue;
        const float inv = 1.0f / ls[h];
        float* dst = out + ((size_t)(tok0 + t0 + tok) * n_head + g * G + row % G) * D + ds * Gm::kDvw + kq;
#pragma unroll
        for (int i = 0; i < Gm::kDvw / 8; i++)
            *reinterpret_cast<float2*>(dst + i * 8) = make_float2(o[i][2 * h] * inv, o[i][2 * h + 1] * inv);
    }
}

template <class E, int D, int NW, int BN, int DVS>
void launch(const KvLayerView& kv, const float* q, float* out, const PrefillRun* runs, int n_runs, int n_head,
            float scale, cudaStream_t s) {
    using Gm = Geo<E, D, NW, BN, DVS>;
    static_assert(Gm::kFits, "prefill attention tile does not fit in 99 KiB");
    static_assert(Gm::kBM == kRowsPerBlock);
    auto kernel = prefill_attention_kernel<E, D, NW, BN, DVS>;
    smem_optin_once<prefill_attention_kernel<E, D, NW, BN, DVS>>((int)Gm::kSmem);
    const int G = n_head / kv.n_head_kv, tpb = Gm::kBM / G;
    const float qscale = scale * 1.4426950408889634f;  // scores in log2 units: exp2 in the softmax
    for (int r0 = 0; r0 < n_runs; r0 += kMaxRuns) {
        RunTable t;
        t.n = 0;
        int tiles = 0;
        for (int r = r0; r < std::min(n_runs, r0 + kMaxRuns); r++) {
            if (runs[r].len <= 0) continue;
            t.seq[t.n] = runs[r].seq;
            t.pos0[t.n] = runs[r].pos0;
            t.len[t.n] = runs[r].len;
            t.tok0[t.n] = runs[r].tok0;
            t.tile0[t.n] = tiles;
            tiles += (runs[r].len + tpb - 1) / tpb;
            t.n++;
        }
        if (t.n == 0) continue;
        t.tile0[t.n] = tiles;
        if (tiles > 65535) throw Error("CUDA prefill attention: more than 65535 query tiles in one launch");
        kernel<<<dim3((unsigned)kv.n_head_kv, (unsigned)tiles), Gm::kThreads, Gm::kSmem, s>>>(
            static_cast<const E*>(kv.k), static_cast<const E*>(kv.v), kv.n_head_kv, kv.ctx, kv.window, q, out,
            n_head, qscale, t);
        check_launch("attention_prefill");
    }
}

// The configuration per head size: 4 warps of 16 rows over tiles of 64 / 32 / 16 positions.
template <class E>
void launch_any(const KvLayerView& kv, const float* q, float* out, const PrefillRun* runs, int n_runs, int n_head,
                float scale, cudaStream_t s) {
    switch (kv.head_dim_k) {
        case 64: launch<E, 64, 4, 64, 1>(kv, q, out, runs, n_runs, n_head, scale, s); break;
        case 128: launch<E, 128, 4, 32, 1>(kv, q, out, runs, n_runs, n_head, scale, s); break;
        case 256: launch<E, 256, 4, 16, 1>(kv, q, out, runs, n_runs, n_head, scale, s); break;
        default: throw Error("CUDA prefill attention: head size " + std::to_string(kv.head_dim_k));
    }
}


EnvSwitch g_enabled("ROTOR_PREFILL_ATTENTION", 1);
std::atomic<int> g_min_run{128};

}  // namespace

std::string attention_prefill_refusal(const KvLayerView& kv, int n_head) {
    const int d = kv.head_dim_k;
    if (kv.head_dim_v != d) return "prefill attention needs equal K and V head sizes";
    if (kv.key_from_value()) return "prefill attention reads stored keys; this layer derives them from its values";
    if (kv.elem == KvElem::F32) return "prefill attention reads f16 and block caches, not f32";
    // tcq / tbq, and the blocks with a minimum: their prompts run on attention.cu's split-K kernel
    if (kv_elem_randomized(kv.elem) || kv_elem_rotorquant_bits(kv.elem) || kv_elem_block_min(kv.elem))
        return "prefill attention reads f16 and q8_0 / q4_0 / q5_0 / iq4_nl block caches, not " +
               std::string(kv_elem_name(kv.elem));
    if (d != 64 && d != 128 && d != 256)
        return "prefill attention supports head sizes 64, 128 and 256, not " + std::to_string(d);
    if (kv.n_head_kv <= 0 || n_head % kv.n_head_kv) return "query heads must be a multiple of KV heads";
    if (n_head / kv.n_head_kv > kRowsPerBlock)
        return "prefill attention: more than " + std::to_string(kRowsPerBlock) + " query heads per KV head";
    if (std::string why = kv_elem_refusal(kv.elem, d); !why.empty()) return why;
    return {};
}

void attention_prefill(const KvLayerView& kv, const float* q, float* out, const PrefillRun* runs, int n_runs,
                       int n_head, float scale, cudaStream_t s) {
    if (n_runs == 0) return;
    if (std::string why = attention_prefill_refusal(kv, n_head); !why.empty()) throw Error("CUDA " + why);
    switch (kv.elem) {
        case KvElem::F16: launch_any<__half>(kv, q, out, runs, n_runs, n_head, scale, s); break;
        case KvElem::Q8_0:
        case KvElem::Q8_0H: launch_any<block_q8_0>(kv, q, out, runs, n_runs, n_head, scale, s); break;
        case KvElem::Q4_0:
        case KvElem::Q4_0H: launch_any<block_q4_0>(kv, q, out, runs, n_runs, n_head, scale, s); break;
        case KvElem::Q5_0:
        case KvElem::Q5_0H:
            launch_any<block_q5_0>(kv, q, out, runs, n_runs, n_head, scale, s);
            break;
        case KvElem::IQ4_NL:
        case KvElem::IQ4_NLH:
            launch_any<block_iq4_nl>(kv, q, out, runs, n_runs, n_head, scale, s);
            break;
        case KvElem::Q4_1:
        case KvElem::Q4_1H:
        case KvElem::Q5_1:
        case KvElem::Q5_1H:
        case KvElem::PLANAR3_0:
        case KvElem::ISO3_0:
        case KvElem::PLANAR4_0:
        case KvElem::ISO4_0:
        case KvElem::PLANAR3_C:
        case KvElem::ISO3_C:
        case KvElem::PLANAR4_C:
        case KvElem::ISO4_C:
        case KvElem::F32:
        case KvElem::TCQ2:
        case KvElem::TCQ3:
        case KvElem::TCQ4:
        case KvElem::TBQ2:
        case KvElem::TBQ3:
        case KvElem::TBQ4:
        case KvElem::TBQ2NC:
        case KvElem::TBQ3NC:
        case KvElem::TBQ4NC: break;  // refused above
    }
}

bool attention_prefill_enabled() { return g_enabled.on(); }
void set_attention_prefill_enabled(bool on) { g_enabled.set(on); }
int attention_prefill_min_run() { return g_min_run.load(); }
void set_attention_prefill_min_run(int n) {
    if (n < kPrefillMinRunFloor)
        throw Error("prefill attention: the shortest run must be at least " + std::to_string(kPrefillMinRunFloor) +
                    " tokens, not " + std::to_string(n));
    g_min_run.store(n);
}

}  // namespace rotor::cuda
