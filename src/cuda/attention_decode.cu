// Tensor-core split-K decode attention (attention_decode.h).
//
// Why: the CUDA-core split-K kernel (attention.cu) spends about 12 FMAs per cached element on a GQA
// group of 6 query heads (q.k and p v for each head) plus a warp reduction per position and head; at
// 112K context it reads Qwen3.5-27B's 4-bit cache at a few percent of the copy bandwidth. Here the
// products run on mma.sync and a cached element costs about two instructions to decode.
//
// One block per (KV head, group of up to 8 of its query heads, token, split); 4 warps, each owning a
// quarter of the split's positions in tiles of 16. Per tile a warp
//   - copies the 16 raw K and V rows into its own ring in shared memory (cp.async; 3 stages where 99
//     KiB allows, the first ones issued before the query is prepared);
//   - S^T (16 positions x 8 heads) = K Q^T: the A operand is the stored codes as exact f16 integers
//     (q4_0: c - 8, q8_0: c), B is the query split into f16 hi + lo parts (q = hi + lo to ~2^-22), so
//     the scores keep f32 accuracy; one mma pair per 16 dims into a temporary, times the block's scale;
//   - online softmax per head (base 2; the query carries scale * log2 e and a power of two per head
//     that keeps it inside f16's range, removed from the scores);
//   - O^T (dims x heads) += V^T P'^T: A is the value codes, B = p * d (the weight times the position's
//     block scale, which varies along the summed positions and so cannot be factored out), again as f16
//     hi + lo. To keep p * d inside f16's normal range the running max includes each position's
//     largest value-scale exponent e: p' = 2^(s - m) with m >= s + e, so p' * d <= 1. Any common shift
//     is exact for softmax (output = acc / sum), so m only has to be the same for acc and sum.
// The dims of a 32-element block are assigned to fragment slots in the order the block stores them
// (q4_0: byte i holds dims i and i + 16), so a lane's codes come from 2- or 4-byte words; the query
// fragments use the same order. The 4 warps' parts are merged in shared memory and written as one
// split part (max in natural-log units, sum, unnormalized output: attention.cu's layout).
// f16 caches take the same path (ROTOR_DECODE_ATTENTION_F16=0 sends them to attention.cu) with the
// stored halves as codes, no scales and the weights split once per tile.
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "cuda/attention_decode.h"
#include "cuda/attention_decode_parts.cuh"
#include "cuda/attention_decode_tcq.h"
#include "cuda/cp_async.cuh"
#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/mma_f16.cuh"
#include "formats/blocks.h"
#include "formats/chunk_decode.h"

namespace rotor::cuda {

namespace {

template <class B>
constexpr bool kIsQ4 = std::is_same_v<B, block_q4_0>;
template <class B>
constexpr bool kIsF16 = std::is_same_v<B, __half>;
// The other 32-element blocks (q4_1, q5_0, q5_1, iq4_nl): 16 code bytes laid out as q4_0's (element e <
// 16 the low nibble of byte e, e + 16 its high nibble), q5's fifth bits in a 32-bit qh, q4_1 / q5_1 a
// block minimum m (element = d * code + m). Their codes go through nib_pair; q8_0 / q4_0 keep their own
// shorter paths below.
template <class B>
constexpr bool kIsNibbleBlock = std::is_same_v<B, block_q4_1> || std::is_same_v<B, block_q5_0> ||
                                std::is_same_v<B, block_q5_1> || std::is_same_v<B, block_iq4_nl>;
template <class B>
constexpr bool kHasMin = std::is_same_v<B, block_q4_1> || std::is_same_v<B, block_q5_1>;
template <class B>
constexpr bool kHasQh = std::is_same_v<B, block_q5_0> || std::is_same_v<B, block_q5_1>;
template <class B>
constexpr int kQsOff = (int)offsetof(B, qs);
template <class B>
struct QhOffset {
    static constexpr int value = 0;
};
template <>
struct QhOffset<block_q5_0> {
    static constexpr int value = (int)offsetof(block_q5_0, qh);
};
template <>
struct QhOffset<block_q5_1> {
    static constexpr int value = (int)offsetof(block_q5_1, qh);
};
template <class B>
constexpr int kQhOff = QhOffset<B>::value;

// Lean: two stages and at most 128 registers, so that 4 blocks fit on an SM (where shared memory
// allows) instead of 3 with three stages; the two are compared in rotor-check-attention's benchmark.
template <class B, int D, bool Lean>
struct DecGeo {
    static constexpr int kBlocks = D / 32;  // f16 rows: 32-element runs without a scale
    static constexpr int kBlockBytes = kIsF16<B> ? 64 : (int)sizeof(B);
    static constexpr int kRowBytes = kBlocks * kBlockBytes;
    static constexpr int kChunk = kRowBytes % 16 == 0 ? 16 : (kRowBytes % 8 == 0 ? 8 : 4);
    static constexpr int kPieces = kRowBytes / kChunk;  // copies per row; a lane makes kPieces per tile
    static constexpr int kStageBytes = 2 * kTile * kRowBytes;     // K rows, then V rows
    static constexpr int kQFragBytes = kBlocks * 2 * kWarp * 16;  // [block][k-step][lane] uint4
    static constexpr int kPBytes = kDecWarps * kTile * kHeadsPerBlock * 4;
    // issue_full's [piece][lane] offsets where kPieces is no power of two (block rows: 9 or 17); f16
    // rows (8 / 16 / 32 pieces) work theirs out with shifts, and their 4 KiB would cost a block per SM
    static constexpr bool kCopyTable = (kPieces & (kPieces - 1)) != 0;
    static constexpr int kCopyTableBytes = kCopyTable ? kPieces * kWarp * 4 : 0;
    // q4_1 / q5_1: each head's query sum over each block's 32 dims (the minimum's share of a score)
    static constexpr int kQSumBytes = kHasMin<B> ? kBlocks * kHeadsPerBlock * 4 : 0;
    static constexpr int kFixed =
        kQFragBytes + kPBytes + 2 * kHeadsPerBlock * 4 + kCopyTableBytes + kQSumBytes;
    // three tiles in flight per warp (Lean: two) where that fits in 99 KiB (sm_86 / 89 / 120's
    // limit), else fewer (f16 rows of 256: one 16 KiB tile per warp, 3 blocks per H200 SM still
    // keep 12 tiles in flight)
    static constexpr int fits(int st) { return kDecWarps * st * kStageBytes + kFixed <= 99 * 1024; }
    static constexpr int kStages = !Lean && fits(3) ? 3 : (fits(2) ? 2 : 1);
    static constexpr int kRingBytes = kDecWarps * kStages * kStageBytes;
    static constexpr int kMergeBytes = kDecWarps * kHeadsPerBlock * D * 4;
    static constexpr int kArenaBytes = kRingBytes > kMergeBytes ? kRingBytes : kMergeBytes;
    static constexpr int kSmem = kArenaBytes + kFixed;
    static_assert(kRowBytes % 4 == 0 && kArenaBytes % 16 == 0 && kQFragBytes % 16 == 0);
    static_assert(2 * kTile == kWarp, "a tile's K and V rows take kPieces copies of each lane");
    static_assert(kSmem <= 99 * 1024, "decode attention tile does not fit in 99 KiB (sm_86/89/120)");
};

__device__ inline uint32_t u16_at(const uint8_t* p) {
    return *reinterpret_cast<const uint16_t*>(p);
}
// Four bytes at an even offset; Aligned: the offset is a multiple of 4.
template <bool Aligned>
__device__ inline uint32_t word_at(const uint8_t* p) {
    if constexpr (Aligned)
        return *reinterpret_cast<const uint32_t*>(p);
    else
        return __byte_perm(u16_at(p), u16_at(p + 2), 0x5410);
}

// Codes to f16 integers, two per register, from a register whose bytes 0 and 2 hold them (bytes 1
// and 3 are ignored for q4_0 and must be 0 for q8_0): 1024 + u under the exponent, minus the offset.
__device__ inline uint32_t q4_lo(uint32_t x) {  // low nibbles: c - 8
    return h2_bits(__hsub2(bits_h2((x & 0x000F000Fu) | 0x64006400u), bits_h2(0x64086408u)));
}
__device__ inline uint32_t q4_hi(uint32_t x) {  // high nibbles: (1024 + 16 c) / 16 - 72 = c - 8, exact
    return h2_bits(
        __hfma2(bits_h2((x & 0x00F000F0u) | 0x64006400u), bits_h2(0x2C002C00u), bits_h2(0xD480D480u)));
}
__device__ inline uint32_t q8_codes(uint32_t x) {  // signed bytes: (u ^ 0x80) = c + 128
    return h2_bits(__hsub2(bits_h2((x ^ 0x00800080u) | 0x64006400u), bits_h2(0x64806480u)));
}
// kIsNibbleBlock codes of the two elements whose code bytes sit in bytes 0 and 2 of x (High: their
// high nibbles), with their fifth bits at bits 4 and 20 (q5; 0 otherwise), as f16 integers: q5_0 c - 16,
// q4_1 / q5_1 c, iq4_nl its code book value (via chunk_decode.h's iq4nl, + 128 under the exponent).
template <class B, bool High>
__device__ inline uint32_t nib_pair(uint32_t x, uint32_t fifth) {
    const uint32_t c = (High ? x >> 4 : x) & 0x000F000Fu;
    if constexpr (std::is_same_v<B, block_iq4_nl>) {
        const uint32_t u = (uint32_t)(chunk_detail::iq4nl((int)(c & 0xF)) + 128) |
                           ((uint32_t)(chunk_detail::iq4nl((int)(c >> 16)) + 128) << 16);
        return h2_bits(__hsub2(bits_h2(u | 0x64006400u), bits_h2(0x64806480u)));
    } else {
        constexpr uint32_t kOff = kHasMin<B> ? 0x64006400u : 0x64106410u;  // 1024 (+ 16 for q5_0)
        return h2_bits(__hsub2(bits_h2(c | fifth | 0x64006400u), bits_h2(kOff)));
    }
}
// The fifth bits of elements e and e + 1 (bits e, e + 1 of h) at bits 4 and 20 (one element's pair).
__device__ inline uint32_t fifth_pair(uint32_t h, int e) {
    return (((h >> e) & 1u) << 4) | (((h >> (e + 1)) & 1u) << 20);
}
// The fifth bit of element e of two positions (bit e of ha, of hb) at bits 4 and 20.
__device__ inline uint32_t fifth_of_two(uint32_t ha, uint32_t hb, int e) {
    return (((ha >> e) & 1u) << 4) | (((hb >> e) & 1u) << 20);
}

template <class B, int D, bool Lean>
__global__ void __launch_bounds__(kDecWarps* kWarp, Lean ? 4 : 3)
    attention_decode_tc_kernel(const uint8_t* __restrict__ K, const uint8_t* __restrict__ V, int hkv, int ctx,
                               int window, const float* __restrict__ q, const int32_t* __restrict__ seq,
                               const int32_t* __restrict__ pos, int n_head, float scale, int n_split,
                               int split_positions, float* __restrict__ partial) {
    using G = DecGeo<B, D, Lean>;
    constexpr int NB = G::kBlocks, RB = G::kRowBytes, BB = G::kBlockBytes;
    extern __shared__ __align__(16) uint8_t smem[];
    uint8_t* arena = smem;
    uint4* qfrag = reinterpret_cast<uint4*>(smem + G::kArenaBytes);
    float* ps_all = reinterpret_cast<float*>(smem + G::kArenaBytes + G::kQFragBytes);
    float* head_inv = ps_all + kDecWarps * kTile * kHeadsPerBlock;  // 2^-k of each head's query
    float* head_mul = head_inv + kHeadsPerBlock;                    // 2^k
    uint32_t* copy_table = reinterpret_cast<uint32_t*>(head_mul + kHeadsPerBlock);
    float* qsum = reinterpret_cast<float*>(copy_table) + G::kCopyTableBytes / 4;  // [block][head], kHasMin

    const DecBlock blk(hkv, n_head, ctx, window, seq, pos, split_positions);
    const int g = blk.g, h0 = blk.h0, nh = blk.nh, t = blk.t, split = blk.split;
    const int warp = blk.warp, lane = blk.lane, lg = blk.lg, lt = blk.lt, wbegin = blk.wbegin, wend = blk.wend;
    const size_t base = blk.base;
    uint8_t* ring = arena + warp * G::kStages * G::kStageBytes;
    float* ps = ps_all + warp * kTile * kHeadsPerBlock;
    const uint32_t ring_s = (uint32_t)__cvta_generic_to_shared(ring);

    // A tile's copies: chunk c = lane + 32 i (i < kPieces) of the stage's 2 x 16 rows of kPieces chunks,
    // so the ring offset is c * kChunk and a warp instruction reads ~512 contiguous-row bytes.
    constexpr int kPieces = G::kPieces, kKChunks = kTile * kPieces;
    const uint32_t lane_dst = ring_s + lane * G::kChunk;
    // copy c's global offset from its tile's first K or V row: row * hkv * RB + piece * kChunk
    auto chunk_offset = [&](int c) {
        return (uint32_t)(((c % kKChunks) / kPieces) * hkv * RB + (c % kPieces) * G::kChunk);
    };
    // issue_any: any tile (rows past wend zero-filled, ring positions wrapped), the chunk's row and
    // piece worked out per copy; the block's first tiles and its last, partial one.
    auto issue_any = [&](int p0, int buf) {
#pragma unroll
        for (int i = 0; i < kPieces; i++) {
            const int c = lane + kWarp * i;
            const int which = c / kKChunks, r = (c % kKChunks) / kPieces, off = (c % kPieces) * G::kChunk;
            const bool valid = p0 + r < wend;
            const int p = valid ? p0 + r : p0;  // past the end: zero-filled, a valid address all the same
            const size_t slot = base + (p < ctx ? p : p % ctx);  // only ring positions wrap
            const uint8_t* src = (which ? V : K) + (slot * hkv + g) * RB + off;
            cp_async<G::kChunk>(ring_s + buf * G::kStageBytes + c * G::kChunk, src, valid);
        }
        cp_async_commit();
    };
    // issue_full: 16 valid rows in consecutive slots; each copy is the tile's first K or V row plus this
    // lane's offset (row * hkv * RB + piece * kChunk, from copy_table where kPieces needs a division).
    // Per copy a shared load and a 64-bit add, instead of issue_any's division, wrap and 64-bit products.
    auto issue_full = [&](size_t slot0, int buf) {
        const uint8_t* k0 = K + (slot0 * hkv + g) * RB;
        const uint8_t* v0 = V + (slot0 * hkv + g) * RB;
#pragma unroll
        for (int i = 0; i < kPieces; i++) {
            const int c = lane + kWarp * i;
            uint32_t e;
            if constexpr (G::kCopyTable)
                e = copy_table[i * kWarp + lane];
            else
                e = chunk_offset(c);
            // which half: known per i except where the K / V boundary falls inside the 32 copies
            const bool is_v = kWarp * i >= kKChunks
                                  ? true
                                  : (kWarp * i + kWarp - 1 < kKChunks ? false : c >= kKChunks);
            cp_async_full<G::kChunk>(lane_dst + buf * G::kStageBytes + kWarp * i * G::kChunk,
                                     (is_v ? v0 : k0) + e);
        }
        cp_async_commit();
    };
    auto issue = [&](int p0, int buf) {  // raw K and V rows of positions p0 .. p0 + 15 (those < wend)
        const int s0 = p0 < ctx ? p0 : p0 % ctx;
        if (p0 + kTile <= wend && s0 + kTile <= ctx)
            issue_full(base + s0, buf);
        else
            issue_any(p0, buf);
    };

    // the first tiles' copies go out before the query is prepared, so the two latencies overlap
    for (int i = 0; i < G::kStages - 1; i++)
        if (wbegin + i * kTile < wend) issue_any(wbegin + i * kTile, i);
    if constexpr (G::kCopyTable)
        for (int c = threadIdx.x; c < kPieces * kWarp; c += blockDim.x)  // c = i * 32 + lane
            copy_table[c] = chunk_offset(c);

    prepare_query<D>(q, t, n_head, h0, nh, scale, head_mul, head_inv, qfrag);
    if constexpr (kHasMin<B>) {  // the query as the mma sees it (times scale, log2 e, 2^k), summed per block
        for (int i = threadIdx.x; i < NB * kHeadsPerBlock; i += blockDim.x) {
            const int b = i / kHeadsPerBlock, j = i % kHeadsPerBlock;
            float sum = 0.0f;
            if (j < nh) {
                const float* qh = q + ((size_t)t * n_head + h0 + j) * D + 32 * b;
                const float mul = scale * kDecLog2e * head_mul[j];
                for (int k = 0; k < 32; k++) sum += qh[k] * mul;
            }
            qsum[i] = sum;
        }
        __syncthreads();
    }

    float o[2 * NB][4];
#pragma unroll
    for (int i = 0; i < 2 * NB; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
    const float inv0 = head_inv[2 * lt], inv1 = head_inv[2 * lt + 1];
    // q4_1 / q5_1: sum over positions of p' times the value block's minimum, per block, for head lg (this
    // lane's 4 positions of each tile; the lanes of a head are added at the end)
    float acc_min[kHasMin<B> ? NB : 1];
#pragma unroll
    for (int b = 0; b < (kHasMin<B> ? NB : 1); b++) acc_min[b] = 0.0f;

    int buf = 0;
    for (int p0 = wbegin; p0 < wend; p0 += kTile, buf = buf + 1 == G::kStages ? 0 : buf + 1) {
        // tile p0 is in stage buf; the copies of the next kStages - 1 tiles are in flight or go out now
        const int ahead = p0 + (G::kStages - 1) * kTile;
        if (ahead < wend) issue(ahead, (buf + G::kStages - 1) % G::kStages);
        const int pending = min(G::kStages - 1, (wend - p0 - 1) / kTile);  // groups issued after this tile's
        if (pending >= 2)
            cp_async_wait<2>();
        else if (pending == 1)
            cp_async_wait<1>();
        else
            cp_async_wait<0>();
        __syncwarp();
        const uint8_t* Ks = ring + buf * G::kStageBytes;
        const uint8_t* Vs = Ks + kTile * RB;

        // each position's largest value-scale exponent: lanes 2r, 2r + 1 read half the blocks of row r
        float e_row = 0.0f;  // f16: no scales, p' <= 1
        if constexpr (!kIsF16<B>) {
            const int r = lane >> 1;
            float amax = 0.0f;
#pragma unroll
            for (int b = (lane & 1) * (NB / 2); b < (lane & 1) * (NB / 2) + NB / 2; b++)
                amax = fmaxf(amax, fabsf(half_at(Vs + r * RB + b * BB)));
            amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
            e_row = p0 + r < wend ? (float)value_scale_exponent(amax) : 0.0f;  // rows past the end: zeros
        }
        const float e_a = __shfl_sync(0xffffffffu, e_row, 2 * lg),
                    e_b = __shfl_sync(0xffffffffu, e_row, 2 * (lg + 8));
        const bool live_a = p0 + lg < wend, live_b = p0 + lg + 8 < wend;

        // S^T = K Q^T: rows lg and lg + 8, columns (heads) 2 lt and 2 lt + 1
        float sc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const uint8_t* ka = Ks + lg * RB;
        const uint8_t* kb = Ks + (lg + 8) * RB;
#pragma unroll
        for (int b = 0; b < NB; b++) {
            uint32_t a0[4], a1[4];      // k-steps 0 and 1
            if constexpr (kIsF16<B>) {  // dims 4 lt .. 4 lt + 3 of each step are two f16 pairs
#pragma unroll
                for (int s = 0; s < 2; s++) {
                    const int off = b * BB + 2 * (16 * s + 4 * lt);
                    const uint2 wa = *reinterpret_cast<const uint2*>(ka + off);
                    const uint2 wb = *reinterpret_cast<const uint2*>(kb + off);
                    uint32_t* a = s ? a1 : a0;
                    a[0] = wa.x, a[1] = wb.x, a[2] = wa.y, a[3] = wb.y;
                }
            } else if constexpr (kIsQ4<B>) {
                constexpr int kOff = 2;
                const bool al = (b * BB + kOff) % 4 == 0;
                const int off = b * BB + kOff + 4 * lt;
                const uint32_t wa = al ? word_at<true>(ka + off) : word_at<false>(ka + off);
                const uint32_t wb = al ? word_at<true>(kb + off) : word_at<false>(kb + off);
                const uint32_t pa01 = __byte_perm(wa, 0, 0x4140), pa23 = __byte_perm(wa, 0, 0x4342);
                const uint32_t pb01 = __byte_perm(wb, 0, 0x4140), pb23 = __byte_perm(wb, 0, 0x4342);
                a0[0] = q4_lo(pa01), a0[1] = q4_lo(pb01), a0[2] = q4_lo(pa23), a0[3] = q4_lo(pb23);
                a1[0] = q4_hi(pa01), a1[1] = q4_hi(pb01), a1[2] = q4_hi(pa23), a1[3] = q4_hi(pb23);
            } else if constexpr (kIsNibbleBlock<B>) {
                const int off = b * BB + kQsOff<B> + 4 * lt;
                const bool al = (b * BB + kQsOff<B>) % 4 == 0;
                const uint32_t wa = al ? word_at<true>(ka + off) : word_at<false>(ka + off);
                const uint32_t wb = al ? word_at<true>(kb + off) : word_at<false>(kb + off);
                uint32_t fa[2][2] = {{0, 0}, {0, 0}}, fb[2][2] = {{0, 0}, {0, 0}};  // [k-step][pair]
                if constexpr (kHasQh<B>) {
                    const int hoff = b * BB + kQhOff<B>;
                    const bool hal = hoff % 4 == 0;
                    const uint32_t ha = hal ? word_at<true>(ka + hoff) : word_at<false>(ka + hoff);
                    const uint32_t hb = hal ? word_at<true>(kb + hoff) : word_at<false>(kb + hoff);
#pragma unroll
                    for (int s = 0; s < 2; s++) {
                        const int e = 16 * s + 4 * lt;
                        fa[s][0] = fifth_pair(ha, e), fa[s][1] = fifth_pair(ha, e + 2);
                        fb[s][0] = fifth_pair(hb, e), fb[s][1] = fifth_pair(hb, e + 2);
                    }
                }
                const uint32_t pa01 = __byte_perm(wa, 0, 0x4140), pa23 = __byte_perm(wa, 0, 0x4342);
                const uint32_t pb01 = __byte_perm(wb, 0, 0x4140), pb23 = __byte_perm(wb, 0, 0x4342);
                a0[0] = nib_pair<B, false>(pa01, fa[0][0]), a0[1] = nib_pair<B, false>(pb01, fb[0][0]);
                a0[2] = nib_pair<B, false>(pa23, fa[0][1]), a0[3] = nib_pair<B, false>(pb23, fb[0][1]);
                a1[0] = nib_pair<B, true>(pa01, fa[1][0]), a1[1] = nib_pair<B, true>(pb01, fb[1][0]);
                a1[2] = nib_pair<B, true>(pa23, fa[1][1]), a1[3] = nib_pair<B, true>(pb23, fb[1][1]);
            } else {
#pragma unroll
                for (int s = 0; s < 2; s++) {
                    const bool al = (b * BB + 2 + 16 * s) % 4 == 0;
                    const int off = b * BB + 2 + 16 * s + 4 * lt;
                    const uint32_t wa = al ? word_at<true>(ka + off) : word_at<false>(ka + off);
                    const uint32_t wb = al ? word_at<true>(kb + off) : word_at<false>(kb + off);
                    uint32_t* a = s ? a1 : a0;
                    a[0] = q8_codes(__byte_perm(wa, 0, 0x4140)), a[1] = q8_codes(__byte_perm(wb, 0, 0x4140));
                    a[2] = q8_codes(__byte_perm(wa, 0, 0x4342)), a[3] = q8_codes(__byte_perm(wb, 0, 0x4342));
                }
            }
            const uint4 f0 = qfrag[(2 * b) * kWarp + lane], f1 = qfrag[(2 * b + 1) * kWarp + lane];
            float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const uint32_t h0b[2] = {f0.x, f0.y}, l0b[2] = {f0.z, f0.w}, h1b[2] = {f1.x, f1.y},
                           l1b[2] = {f1.z, f1.w};
            mma_16816(tmp, a0, h0b);
            mma_16816(tmp, a0, l0b);
            mma_16816(tmp, a1, h1b);
            mma_16816(tmp, a1, l1b);
            const float da = kIsF16<B> ? 1.0f : half_at(ka + b * BB),
                        db = kIsF16<B> ? 1.0f : half_at(kb + b * BB);
            sc[0] = fmaf(da, tmp[0], sc[0]);
            sc[1] = fmaf(da, tmp[1], sc[1]);
            sc[2] = fmaf(db, tmp[2], sc[2]);
            sc[3] = fmaf(db, tmp[3], sc[3]);
            if constexpr (kHasMin<B>) {  // + m * (the query's sum over the block)
                const float ma = half_at(ka + b * BB + 2), mb = half_at(kb + b * BB + 2);
                const float2 qs = *reinterpret_cast<const float2*>(qsum + b * kHeadsPerBlock + 2 * lt);
                sc[0] = fmaf(ma, qs.x, sc[0]);
                sc[1] = fmaf(ma, qs.y, sc[1]);
                sc[2] = fmaf(mb, qs.x, sc[2]);
                sc[3] = fmaf(mb, qs.y, sc[3]);
            }
        }
        // scores in base 2 (the head's power of two removed); masked rows -inf
        sc[0] = live_a ? sc[0] * inv0 : -INFINITY;
        sc[1] = live_a ? sc[1] * inv1 : -INFINITY;
        sc[2] = live_b ? sc[2] * inv0 : -INFINITY;
        sc[3] = live_b ? sc[3] * inv1 : -INFINITY;

        const float m_old0 = m_run[0], m_old1 = m_run[1];
        softmax_tile(sc, e_a, e_b, m_run, l_run, o);  // the max runs over s + e (see the header)
        if constexpr (kHasMin<B>) {  // head lg's rescale (softmax_tile's corr of head lg, from lane lg / 2)
            const float c0 = __shfl_sync(0xffffffffu, exp2f(m_old0 - m_run[0]), lg >> 1);
            const float c1 = __shfl_sync(0xffffffffu, exp2f(m_old1 - m_run[1]), lg >> 1);
            const float c = (lg & 1) ? c1 : c0;
#pragma unroll
            for (int b = 0; b < NB; b++) acc_min[b] *= c;
        } else {
            (void)m_old0, (void)m_old1;
        }
        // p' transposed through shared memory: this lane needs positions 2 lt, 2 lt + 1, 2 lt + 8, 2 lt + 9
        // of head lg (the B operand of O^T += V^T P'^T)
        *reinterpret_cast<float2*>(ps + lg * kHeadsPerBlock + 2 * lt) = make_float2(sc[0], sc[1]);
        *reinterpret_cast<float2*>(ps + (lg + 8) * kHeadsPerBlock + 2 * lt) = make_float2(sc[2], sc[3]);
        __syncwarp();
        const int rows[4] = {2 * lt, 2 * lt + 1, 2 * lt + 8, 2 * lt + 9};
        // Rows past wend: p' is 0 (score -inf) and the row was zero-filled (its scale too), so every
        // product with them is 0 without a test (a test per weight cost branches around the loads).
        float pw[4];
#pragma unroll
        for (int k = 0; k < 4; k++) pw[k] = ps[rows[k] * kHeadsPerBlock + lg];
        if constexpr (kHasMin<B>)
#pragma unroll
            for (int b = 0; b < NB; b++)
#pragma unroll
                for (int k = 0; k < 4; k++)
                    acc_min[b] = fmaf(pw[k], half_at(Vs + rows[k] * RB + b * BB + 2), acc_min[b]);
        uint32_t pf_hi[2] = {0, 0}, pf_lo[2] = {0, 0};  // f16: the weights need no scale, split once
        if constexpr (kIsF16<B>) {
            split_pair(pw[0], pw[1], pf_hi[0], pf_lo[0]);
            split_pair(pw[2], pw[3], pf_hi[1], pf_lo[1]);
        }

#pragma unroll
        for (int b = 0; b < NB; b++) {
            uint32_t bh[2], bl[2];
            if constexpr (kIsF16<B>) {
                bh[0] = pf_hi[0], bh[1] = pf_hi[1], bl[0] = pf_lo[0], bl[1] = pf_lo[1];
            } else {
                float w[4];
#pragma unroll
                for (int k = 0; k < 4; k++) w[k] = pw[k] * half_at(Vs + rows[k] * RB + b * BB);
                split_pair(w[0], w[1], bh[0], bl[0]);
                split_pair(w[2], w[3], bh[1], bl[1]);
            }
            // A = V^T rows (dims) lg and lg + 8 of m-tiles 2b (s = 0) and 2b + 1 (s = 1): dims
            // 32 b + 16 s + 2 lg + (0, 1); columns positions rows[]
            uint32_t av[2][4];
            if constexpr (kIsF16<B>) {  // the pair (dim, dim + 1) of rows lg and lg + 8 from each position
#pragma unroll
                for (int s = 0; s < 2; s++) {
                    uint32_t u[4];
#pragma unroll
                    for (int k = 0; k < 4; k++)
                        u[k] = *reinterpret_cast<const uint32_t*>(Vs + rows[k] * RB + b * BB +
                                                                  2 * (16 * s + 2 * lg));
                    av[s][0] = __byte_perm(u[0], u[1], 0x5410), av[s][1] = __byte_perm(u[0], u[1], 0x7632);
                    av[s][2] = __byte_perm(u[2], u[3], 0x5410), av[s][3] = __byte_perm(u[2], u[3], 0x7632);
                }
            } else if constexpr (kIsQ4<B>) {
                uint32_t u[4];
#pragma unroll
                for (int k = 0; k < 4; k++) u[k] = u16_at(Vs + rows[k] * RB + b * BB + 2 + 2 * lg);
                const uint32_t x00 = __byte_perm(u[0], u[1], 0x0400), x01 = __byte_perm(u[0], u[1], 0x0501);
                const uint32_t x10 = __byte_perm(u[2], u[3], 0x0400), x11 = __byte_perm(u[2], u[3], 0x0501);
                av[0][0] = q4_lo(x00), av[0][1] = q4_lo(x01), av[0][2] = q4_lo(x10), av[0][3] = q4_lo(x11);
                av[1][0] = q4_hi(x00), av[1][1] = q4_hi(x01), av[1][2] = q4_hi(x10), av[1][3] = q4_hi(x11);
            } else if constexpr (kIsNibbleBlock<B>) {
                uint32_t u[4], h[4] = {0, 0, 0, 0};
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const uint8_t* blk = Vs + rows[k] * RB + b * BB;
                    u[k] = u16_at(blk + kQsOff<B> + 2 * lg);
                    if constexpr (kHasQh<B>) h[k] = word_at<false>(blk + kQhOff<B>);
                }
                const uint32_t x00 = __byte_perm(u[0], u[1], 0x0400), x01 = __byte_perm(u[0], u[1], 0x0501);
                const uint32_t x10 = __byte_perm(u[2], u[3], 0x0400), x11 = __byte_perm(u[2], u[3], 0x0501);
                const int e0 = 2 * lg, e1 = 16 + 2 * lg;  // this lane's dims of k-steps 0 and 1
                av[0][0] = nib_pair<B, false>(x00, fifth_of_two(h[0], h[1], e0));
                av[0][1] = nib_pair<B, false>(x01, fifth_of_two(h[0], h[1], e0 + 1));
                av[0][2] = nib_pair<B, false>(x10, fifth_of_two(h[2], h[3], e0));
                av[0][3] = nib_pair<B, false>(x11, fifth_of_two(h[2], h[3], e0 + 1));
                av[1][0] = nib_pair<B, true>(x00, fifth_of_two(h[0], h[1], e1));
                av[1][1] = nib_pair<B, true>(x01, fifth_of_two(h[0], h[1], e1 + 1));
                av[1][2] = nib_pair<B, true>(x10, fifth_of_two(h[2], h[3], e1));
                av[1][3] = nib_pair<B, true>(x11, fifth_of_two(h[2], h[3], e1 + 1));
            } else {
#pragma unroll
                for (int s = 0; s < 2; s++) {
                    uint32_t u[4];
#pragma unroll
                    for (int k = 0; k < 4; k++)
                        u[k] = u16_at(Vs + rows[k] * RB + b * BB + 2 + 16 * s + 2 * lg);
                    av[s][0] = q8_codes(__byte_perm(u[0], u[1], 0x6420));
                    av[s][1] = q8_codes(__byte_perm(u[0], u[1], 0x6521));
                    av[s][2] = q8_codes(__byte_perm(u[2], u[3], 0x6420));
                    av[s][3] = q8_codes(__byte_perm(u[2], u[3], 0x6521));
                }
            }
#pragma unroll
            for (int s = 0; s < 2; s++) {
                mma_16816(o[2 * b + s], av[s], bh);
                mma_16816(o[2 * b + s], av[s], bl);
            }
        }
        __syncwarp();  // this stage and ps are read before they are overwritten
    }

    if constexpr (kHasMin<B>) {
        // head lg's minimum sums over the warp (the 4 lanes of lg), then into the output of heads 2 lt and
        // 2 lt + 1 (held by lanes 4 (2 lt) and 4 (2 lt + 1)) at every dim of their block
#pragma unroll
        for (int b = 0; b < NB; b++) {
            float a = acc_min[b];
            a += __shfl_xor_sync(0xffffffffu, a, 1);
            a += __shfl_xor_sync(0xffffffffu, a, 2);
            const float m0 = __shfl_sync(0xffffffffu, a, 4 * (2 * lt)),
                        m1 = __shfl_sync(0xffffffffu, a, 4 * (2 * lt + 1));
#pragma unroll
            for (int s = 0; s < 2; s++) {
                o[2 * b + s][0] += m0, o[2 * b + s][2] += m0;
                o[2 * b + s][1] += m1, o[2 * b + s][3] += m1;
            }
        }
    }
    // the rings are done: every warp waited for all its copies
    write_split_part<D>(o, m_run, l_run, arena, ps_all, partial, t, n_head, h0, nh, n_split, split);
}

// The kernel of a variant with its shared-memory opt-in set on the current device (a per-device
// attribute: once per device this process uses).
template <class B, int D, bool Lean>
auto prepared_kernel() {
    using G = DecGeo<B, D, Lean>;
    smem_optin_once<attention_decode_tc_kernel<B, D, Lean>>(G::kSmem);
    return attention_decode_tc_kernel<B, D, Lean>;
}

template <class B, int D, bool Lean>
void launch_decode(const KvLayerView& kv, const float* q, const int32_t* seq, const int32_t* pos, int n_tok,
                   int n_head, float scale, int n_split, int split_positions, float* partial,
                   cudaStream_t s) {
    using G = DecGeo<B, D, Lean>;
    auto kernel = prepared_kernel<B, D, Lean>();
    const int group = n_head / kv.n_head_kv;
    const dim3 grid((unsigned)(kv.n_head_kv * ((group + kHeadsPerBlock - 1) / kHeadsPerBlock)),
                    (unsigned)n_tok, (unsigned)n_split);
    kernel<<<grid, kDecWarps * kWarp, G::kSmem, s>>>(
        static_cast<const uint8_t*>(kv.k), static_cast<const uint8_t*>(kv.v), kv.n_head_kv, kv.ctx, kv.window,
        q, seq, pos, n_head, scale, n_split, split_positions, partial);
}

EnvSwitch g_lean("ROTOR_DECODE_LEAN", 0);

// f.template operator()<B, D, Lean>() for this layer's stored type, head size and the lean switch: the
// one place a layer picks its kernel instantiation.
template <class F>
void with_variant(const KvLayerView& kv, F&& f) {
    const bool lean = g_lean.on();
    auto by_size = [&]<class B>() {
        auto go = [&]<int D>() {
            if (lean)
                f.template operator()<B, D, true>();
            else
                f.template operator()<B, D, false>();
        };
        switch (kv.head_dim_k) {
            case 64:
                go.template operator()<64>();
                break;
            case 128:
                go.template operator()<128>();
                break;
            case 256:
                go.template operator()<256>();
                break;
            default:
                throw Error("CUDA decode attention: head size " + std::to_string(kv.head_dim_k));
        }
    };
    switch (kv.elem) {
        case KvElem::F16:
            by_size.template operator()<__half>();
            break;
        case KvElem::Q4_0:
        case KvElem::Q4_0H:
            by_size.template operator()<block_q4_0>();
            break;
        case KvElem::Q8_0:
        case KvElem::Q8_0H:
            by_size.template operator()<block_q8_0>();
            break;
        case KvElem::Q4_1:
        case KvElem::Q4_1H:
            by_size.template operator()<block_q4_1>();
            break;
        case KvElem::Q5_0:
        case KvElem::Q5_0H:
            by_size.template operator()<block_q5_0>();
            break;
        case KvElem::Q5_1:
        case KvElem::Q5_1H:
            by_size.template operator()<block_q5_1>();
            break;
        case KvElem::IQ4_NL:
        case KvElem::IQ4_NLH:
            by_size.template operator()<block_iq4_nl>();
            break;
        default:
            throw Error(std::string("CUDA decode attention: KV type ") + kv_elem_name(kv.elem));
    }
}

// Blocks of this layer's kernel variant the GPU holds at once.
int decode_resident_blocks(const KvLayerView& kv) {
    if (kv_elem_randomized(kv.elem) ||
        kv_elem_rotorquant_bits(kv.elem))  // tcq / tbq / RotorQuant: that kernel's split
        return attention_decode_tcq_resident_blocks(kv);
    int n = 0;
    with_variant(kv, [&]<class B, int D, bool Lean>() {
        n = (int)resident_blocks(prepared_kernel<B, D, Lean>(), kDecWarps * kWarp, DecGeo<B, D, Lean>::kSmem);
    });
    return n;
}

EnvSwitch g_enabled("ROTOR_DECODE_ATTENTION", 1);
std::atomic<int> g_split{0};  // 0: attention_decode_split's rule
EnvSwitch g_split_rule("ROTOR_DECODE_SPLIT_RULE", 1);  // the default since the 2026-11-29 tune run
EnvSwitch g_split_fine("ROTOR_DECODE_SPLIT_FINE", 1);   // rule 1's one-round refinement to multiples of 64
EnvSwitch g_f16("ROTOR_DECODE_ATTENTION_F16", 1);

}  // namespace

bool attention_decode_tc_supports(const KvLayerView& kv) {
    const int d = kv.head_dim_k;
    if (kv.key_from_value() || kv.head_dim_v != d || !kv.k) return false;
    if (d != 64 && d != 128 && d != 256) return false;
    switch (kv.elem) {
        case KvElem::F16:
            return attention_decode_f16();
        case KvElem::Q8_0:
        case KvElem::Q8_0H:
        case KvElem::Q4_0:
        case KvElem::Q4_0H:
        case KvElem::Q4_1:
        case KvElem::Q4_1H:
        case KvElem::Q5_0:
        case KvElem::Q5_0H:
        case KvElem::Q5_1:
        case KvElem::Q5_1H:
        case KvElem::IQ4_NL:
        case KvElem::IQ4_NLH:
            return true;
        default:
            return false;
    }
}

bool attention_decode_f16() {
    return g_f16.on();
}
void set_attention_decode_f16(bool on) {
    g_f16.set(on);
}

void attention_decode_tc(const KvLayerView& kv, const float* q, const int32_t* seq, const int32_t* pos,
                         int n_tok, int n_head, float scale, int n_split, int split_positions, float* partial,
                         cudaStream_t s) {
    if (!attention_decode_tc_supports(kv)) throw Error("CUDA decode attention: layer not supported");
    if (split_positions % (kDecWarps * kTile))
        throw Error("CUDA decode attention: split size must be a multiple of 64");
    with_variant(kv, [&]<class B, int D, bool Lean>() {
        launch_decode<B, D, Lean>(kv, q, seq, pos, n_tok, n_head, scale, n_split, split_positions, partial,
                                  s);
    });
    check_launch("attention_decode_tc");
}

int attention_decode_split(const KvLayerView& kv, int n_head, int n_tok, int max_kv) {
    if (const int forced = g_split.load(); forced > 0) return forced;
    // positions rounded up to 256: every max_kv of one graph key gets the same split
    const int n = ((kv.window > 0 ? std::min(max_kv, kv.window) : max_kv) + 255) / 256 * 256;
    const int group = n_head / kv.n_head_kv;
    const long heads = (long)kv.n_head_kv * ((group + kHeadsPerBlock - 1) / kHeadsPerBlock) * n_tok;
    if (g_split_rule.on()) {
        // Rounds of resident blocks: cost = rounds x (positions per block + kOverhead), kOverhead fitted
        // to the forced-split times of one H200 run (Qwen3.5 q4_0 at 112K: 256 / 512 / 1024 positions
        // took 130 / 103 / 104 us in 5 / 3 / 2 rounds of 396 blocks: about 540 positions of block
        // setup, first-copy latency and merge). Multiples of 256, so the graph key still fixes it.
        constexpr long kOverhead = 512;
        const long slots = std::max(1, decode_resident_blocks(kv));
        int best = 256;
        long best_cost = -1;
        for (int sp = 256; sp <= 4096; sp += 256) {
            const long blocks = heads * ((n + sp - 1) / sp);
            const long cost = (blocks + slots - 1) / slots * (sp + kOverhead);
            if (best_cost < 0 || cost < best_cost) best = sp, best_cost = cost;
            if (blocks <= slots) break;  // longer splits only lengthen the one round
        }
        if (heads * ((n + best - 1) / best) > slots || !g_split_fine.on()) return best;
        // One round: a multiple of 64 below it that puts fewer positions on the busiest SM. An SM's
        // blocks share its issue slots, so its time follows its positions (H200, Qwen3.5 q4_0 at 112K:
        // 2 or 3 blocks of 1280 / 1536 / 2048 per SM took 21-23 ns a position), a little more where it
        // holds fewer than 3 blocks (2048: 2 blocks, +6%) and much more with one (4 warps).
        int dev = 0, sms = 0;
        ROTOR_CUDA_CHECK(cudaGetDevice(&dev));
        ROTOR_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
        const long full = std::min<long>(3, slots / std::max(1, sms));
        auto busiest = [&](int sp) {  // positions on the busiest SM, weighted
            const long per_sm = (heads * ((n + sp - 1) / sp) + sms - 1) / sms;
            return (double)per_sm * sp * (per_sm >= full ? 1.0 : per_sm == 2 ? 1.06 : 1.5);
        };
        int fine = best;
        for (int sp = best - 64; sp >= 256; sp -= 64)
            if (heads * ((n + sp - 1) / sp) <= slots && busiest(sp) < busiest(fine)) fine = sp;
        return fine;
    }
    // Longer splits cost fewer block prologues and parts to merge, and won even below one round of
    // resident blocks (bench/RESULTS.md: 512 over 256 at 32K with 256 blocks); 1024 was the best or
    // within 1% at 112K, and at 4K (64 blocks) 256 was.
    int dev = 0, sms = 0;  // the current device's (a process may drive GPUs of different sizes)
    ROTOR_CUDA_CHECK(cudaGetDevice(&dev));
    ROTOR_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const long target = 3L * sms / 2;
    int sp = 256;
    while (sp < 1024 && heads * ((n + 2 * sp - 1) / (2 * sp)) >= target) sp *= 2;
    return sp;
}
void set_attention_decode_split_rule(int rule) {
    g_split_rule.set(rule == 1);
}
int attention_decode_split_rule() {
    return g_split_rule.on() ? 1 : 0;
}
void set_attention_decode_split_fine(bool on) {
    g_split_fine.set(on);
}
void set_attention_decode_lean(bool on) {
    g_lean.set(on);
}
bool attention_decode_lean() {
    return g_lean.on();
}
void set_attention_decode_split(int positions) {
    g_split.store(positions > 0 && positions % 256 == 0 ? positions : 0);
}

bool attention_decode_tc_enabled() {
    return g_enabled.on();
}
void set_attention_decode_tc_enabled(bool on) {
    g_enabled.set(on);
}

}  // namespace rotor::cuda
