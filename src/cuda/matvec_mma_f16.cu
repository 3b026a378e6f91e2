// The f16 tensor-core mat-vec for steps of 2-16 tokens on q4_K and q6_K weights (matvec_mma_f16.h):
// version 3 of the tensor-core mat-vec. Versions 1 and 2 (matvec_mma.cu) ran one int8 mma per 32-element
// sub-block and turned every int32 result into float with the sub-block's and the activations' scales at
// once: about 0.6 instructions per weight byte where an H200 SM issues 0.25 for each byte its share of DRAM
// delivers, so 16 tokens ran at 9-13% of the copy bandwidth. Here the scales go into the operands:
//  - weights: each lane turns its codes into f16 values c * code with one LOP3 (the 4- or 6-bit code
//    into the mantissa of 1 + code / 64) and one HFMA2 (h * 64c - 64c: exact, then one rounding), so
//    one mma.m16n8k16 covers 16 elements of any sub-blocks and the f32 accumulators run through a whole
//    super-block; the offsets (q4_K: -m per 32-element sub-block, q6_K: -32 c per 16-element group) are
//    one extra mma per super-block against the activations' sums per group;
//  - activations: the block turns the int8 codes (quantize_act_q8's layout, d and d * sum per 32) of
//    each super-block into f16 once, for all its warps, divided by the token's largest d in the
//    super-block (so every value is at most 127 in magnitude: no f16 overflow whatever the activations),
//    in the order the lanes' weights come out (below); the mma results of a super-block are multiplied
//    back by that divisor.
// Element order (q4_K; q6_K's is described at products_q6k): lane (group g, tig t) of a warp owns rows g
// and g + 8 of its 16 and, in every super-block, the 32 code bytes of pair t (sub-blocks 2t and 2t + 1: byte
// i holds element i of 2t in its low nibble, of 2t + 1 in its high one). Word jw of those bytes gives two k16
// steps: (low nibbles of bytes 0, 2 | of bytes 1, 3) for sub-block 2t and the same high nibbles for 2t + 1,
// i.e. the mma's k slots (2t, 2t+1 | 2t+8, 2t+9) hold elements (4jw, 4jw+2 | 4jw+1, 4jw+3) of the sub-block;
// the activations are stored per token as [jw][t][sub-block of the pair][4 halves in that order], so a lane
// reads both steps' B fragments with one 16-byte load, conflict-free (a token row is 576 bytes).
// Work: a block owns 16 rows per warp (q4_K 8 warps, 2 blocks per SM; q6_K 4 warps, 3 per SM on an
// H100 / H200) and a range of super-blocks; rows x ranges are many blocks, so the GPU balances them. Where
// the rows alone make too few blocks, each row block's super-blocks are split into ranges (split-K): partial
// sums go to the activation scratch (ActView::split), and the last block of a row block to finish (a counter
// per row block) adds them in range order, so the result does not depend on timing. Copies: cp.async, 3
// stages of the warp's 16 rows (q4_K: 144 bytes each; q6_K: the 224 aligned bytes around its 210) and of the
// block's activations (codes, d, and for q4_K d * sum), one barrier per super-block.
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "cuda/cp_async.cuh"
#include "cuda/cuda_util.h"
#include "cuda/matvec_mma_f16.h"
#include "cuda/mma_f16.cuh"
#include "cuda/mmvq_units.h"
#include "cuda/pdl.cuh"

namespace rotor::cuda::mmqh {

namespace {

constexpr int kTileRows = 16;               // rows per warp
constexpr int kStages = 3;                  // super-blocks in the copy pipeline
constexpr int kSbElems = 256;               // elements per super-block
constexpr int kTok = 16;                    // token columns of the B tile (two n-tiles)
constexpr int kRawCodes = kTok * kSbElems;  // int8 codes of a super-block, natural order
constexpr int kRawScales = kTok * 8 * 4;    // d (or d * sum) per 32, f32
constexpr int kBTok = kSbElems * 2 + 64;    // f16 B bytes per token (144 words: rows g, g+1 on other banks)
constexpr int kBStage = kTok * kBTok;
constexpr int kMaxRowBlocks = 4096;  // split counters
constexpr int kMaxSplits = 32;

// What differs between the formats: a row's bytes per super-block, where a warp's stage keeps them
// (q4_K's 144 bytes are 16-byte aligned in every row; q6_K's 210 start at any even offset, so a row's
// stage holds the 16-byte aligned 224 bytes around them), and the groups of the extra mma that adds
// the offsets (q4_K: -m per 32-element sub-block, k = 8; q6_K: -32 c per 16-element scale group, k = 16).
template <GgmlType T>
struct Fmt;
template <>
struct Fmt<GgmlType::Q4_K> {
    static constexpr int kBlockBytes = 144, kPieces = 9, kSlotRow = 144, kGroups = 8;
    static constexpr int kWarps = 8, kMinBlocks = 2;  // 90 KB of shared memory a block
};
template <>
struct Fmt<GgmlType::Q6_K> {
    static constexpr int kBlockBytes = 210, kPieces = 14, kSlotRow = 224, kGroups = 16;
    static constexpr int kWarps = 4, kMinBlocks = 3;  // 78 KB a block (8 warps: 121 KB, one block per SM)
};
template <GgmlType T>
inline constexpr int kThreads = Fmt<T>::kWarps * 32;
template <GgmlType T>
inline constexpr int kBlockRows = Fmt<T>::kWarps* kTileRows;  // rows per block
template <GgmlType T>
struct Smem {
    // the activations' codes and d, and for q4_K d * sum (q6_K sums its groups of 16 from the codes)
    static constexpr int kScaleArrays = T == GgmlType::Q4_K ? 2 : 1;
    static constexpr int kRawStage = kRawCodes + kScaleArrays * kRawScales;
    static constexpr int kAStage = kTileRows * Fmt<T>::kSlotRow;  // one warp's rows of one super-block
    static constexpr int kMinStage = kTok * Fmt<T>::kGroups * 2;  // f16 sums per group / divisor
    static constexpr int kA = 0;
    static constexpr int kRaw = kA + Fmt<T>::kWarps * kStages * kAStage;
    static constexpr int kB = kRaw + kStages * kRawStage;
    static constexpr int kMin = kB + 2 * kBStage;
    static constexpr int kDiv = kMin + 2 * kMinStage;
    static constexpr int kBytes = kDiv + 2 * kTok * 4;
};

// Per row block, the number of its ranges that have finished; the last resets it to 0.
__device__ unsigned g_split_done[kMaxRowBlocks];

__device__ inline uint32_t lop_and_or(uint32_t a, uint32_t mask, uint32_t bits) {  // (a & mask) | bits
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(r) : "r"(a), "r"(mask), "r"(bits));
    return r;
}
__device__ inline uint32_t hfma2(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t r;
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
// mma_f16.cuh's m16n8k16 with the fragments as scalars (a0, a1: rows g, g + 8 at k 2t; a2, a3 at k 2t + 8)
__device__ inline void mma16(float c[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                             uint32_t b1) {
    const uint32_t a[4] = {a0, a1, a2, a3}, b[2] = {b0, b1};
    mma_16816(c, a, b);
}

// 1 + v / 64 as f16 for the bits of v at 4-9 and 20-25 (a 4- or 6-bit code per half); S * h - S with S = 64c
// is then c * code, exactly rounded once.
constexpr uint32_t kNibMask = 0x00F000F0u, kSixMask = 0x03F003F0u, kOne = 0x3C003C00u;
__device__ inline uint32_t scale_pair(float c64) {
    return h2_bits(__float2half2_rn(c64));
}
__device__ inline uint32_t neg_pair(uint32_t s) {
    return s ^ 0x80008000u;
}  // the negation, exactly

// ---- q4_K: lane t owns the 32 code bytes of sub-blocks 2t and 2t + 1 (low / high nibbles)

// One row's scales for the lane's sub-blocks 2t, 2t + 1 from its block header (d, dmin, 12 bytes of
// 6-bit scales and mins): S = (64c, 64c) and N = -S per sub-block, and (-m_2t, -m_2t+1).
struct RowScales {
    uint32_t s0, n0, s1, n1, mins;
};
__device__ inline RowScales row_scales(uint4 h, int t) {
    const float d = __half2float(__ushort_as_half((unsigned short)(h.x & 0xFFFFu)));
    const float dmin = __half2float(__ushort_as_half((unsigned short)(h.x >> 16)));
    uint32_t sc, mn;
    ::rotor::mmvq::k4_scale_min_pair(t, h.y, h.z, h.w, sc, mn);
    RowScales r;
    r.s0 = scale_pair(64.0f * d * (float)(sc & 0xFFu));
    r.n0 = neg_pair(r.s0);
    r.s1 = scale_pair(64.0f * d * (float)((sc >> 8) & 0xFFu));
    r.n1 = neg_pair(r.s1);
    r.mins = pack_half2(-dmin * (float)(mn & 0xFFu), -dmin * (float)((mn >> 8) & 0xFFu));
    return r;
}

// The products of one super-block: rows ra (group g) and rb (g + 8) of the warp's stage, B tile bt and
// the sums per sub-block bm, into c.
template <int NT>
__device__ inline void products_q4k(const uint8_t* ra, const uint8_t* rb, int g, int t, const uint8_t* bt,
                                    const uint8_t* bm, float (&c)[NT][4]) {
    const RowScales sa = row_scales(*reinterpret_cast<const uint4*>(ra), t);
    const RowScales sb = row_scales(*reinterpret_cast<const uint4*>(rb), t);
    const uint4 qa0 = *reinterpret_cast<const uint4*>(ra + 16 + 32 * t);
    const uint4 qa1 = *reinterpret_cast<const uint4*>(ra + 32 + 32 * t);
    const uint4 qb0 = *reinterpret_cast<const uint4*>(rb + 16 + 32 * t);
    const uint4 qb1 = *reinterpret_cast<const uint4*>(rb + 32 + 32 * t);
    const uint32_t qa[8] = {qa0.x, qa0.y, qa0.z, qa0.w, qa1.x, qa1.y, qa1.z, qa1.w};
    const uint32_t qb[8] = {qb0.x, qb0.y, qb0.z, qb0.w, qb1.x, qb1.y, qb1.z, qb1.w};
#pragma unroll
    for (int jw = 0; jw < 8; jw++) {
        const uint32_t wa = qa[jw], wb = qb[jw];
        // sub-block 2t: low nibbles; bytes 0, 2 (k slots 2t, 2t+1) and 1, 3 (2t+8, 2t+9)
        const uint32_t a_lo02 = hfma2(lop_and_or(wa << 4, kNibMask, kOne), sa.s0, sa.n0);
        const uint32_t a_lo13 = hfma2(lop_and_or(wa >> 4, kNibMask, kOne), sa.s0, sa.n0);
        const uint32_t b_lo02 = hfma2(lop_and_or(wb << 4, kNibMask, kOne), sb.s0, sb.n0);
        const uint32_t b_lo13 = hfma2(lop_and_or(wb >> 4, kNibMask, kOne), sb.s0, sb.n0);
        // sub-block 2t + 1: high nibbles
        const uint32_t a_hi02 = hfma2(lop_and_or(wa, kNibMask, kOne), sa.s1, sa.n1);
        const uint32_t a_hi13 = hfma2(lop_and_or(wa >> 8, kNibMask, kOne), sa.s1, sa.n1);
        const uint32_t b_hi02 = hfma2(lop_and_or(wb, kNibMask, kOne), sb.s1, sb.n1);
        const uint32_t b_hi13 = hfma2(lop_and_or(wb >> 8, kNibMask, kOne), sb.s1, sb.n1);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const uint4 bv = *reinterpret_cast<const uint4*>(bt + (nt * 8 + g) * kBTok + (jw * 4 + t) * 16);
            mma16(c[nt], a_lo02, b_lo02, a_lo13, b_lo13, bv.x, bv.y);
            mma16(c[nt], a_hi02, b_hi02, a_hi13, b_hi13, bv.z, bv.w);
        }
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
        mma_1688(c[nt], sa.mins, sb.mins, *reinterpret_cast<const uint32_t*>(bm + (nt * 8 + g) * 16 + 4 * t));
}

// ---- q6_K: ql[128] (4 low bits), qh[64] (2 high bits), int8 scales[16], f16 d; element 128h + 32k + l
// is ql byte 64h + 32(k & 1) + l (nibble k >> 1) with qh byte 32h + l's bits 2k, 2k+1 above it, minus 32;
// its scale is byte 8h + 2k + l / 16. Lane t owns l = 8t .. 8t + 7 of every (h, k): word w of the 8 ql
// bytes at (h, k & 1) gives the k16 steps of k & 1 (low nibbles) and (k & 1) + 2 (high nibbles), in the
// same slot order as q4_K. Rows are only 2-byte aligned: words are read with funnel shifts
// (mmvq_units.h load_words), from the row's copy at its offset in the stage.

__device__ inline void load8(const uint8_t* p, uint32_t (&w)[2]) {
    ::rotor::mmvq::load_words<2, 2>(p, w);
}
__device__ inline float q6_scale(const uint32_t (&sc)[2], int i) {  // int8 scale i (0..7) of the 8 loaded
    return (float)(int8_t)((sc[i >> 2] >> (8 * (i & 3))) & 0xFFu);
}

template <int NT>
__device__ inline void products_q6k(const uint8_t* ra, const uint8_t* rb, int g, int t, const uint8_t* bt,
                                    const uint8_t* bm, float (&c)[NT][4]) {
    const float da = __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short*>(ra + 208)));
    const float db = __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short*>(rb + 208)));
#pragma unroll
    for (int h = 0; h < 2; h++) {
        uint32_t qha[2], qhb[2], sca[2], scb[2];
        load8(ra + 128 + 32 * h + 8 * t, qha);
        load8(rb + 128 + 32 * h + 8 * t, qhb);
        load8(ra + 192 + 8 * h, sca);
        load8(rb + 192 + 8 * h, scb);
#pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            uint32_t qla[2], qlb[2];
            load8(ra + 64 * h + 32 * kk + 8 * t, qla);
            load8(rb + 64 * h + 32 * kk + 8 * t, qlb);
            // scales of (h, k) for k = kk (low nibbles) and kk + 2 (high): byte 2k + t / 2 of the 8
            uint32_t s_a[2], s_b[2];
#pragma unroll
            for (int nib = 0; nib < 2; nib++) {
                const int k = kk + 2 * nib;
                s_a[nib] = scale_pair(64.0f * da * q6_scale(sca, 2 * k + (t >> 1)));
                s_b[nib] = scale_pair(64.0f * db * q6_scale(scb, 2 * k + (t >> 1)));
            }
#pragma unroll
            for (int w = 0; w < 2; w++) {
                const int jw = (h * 2 + kk) * 2 + w;
                uint32_t a02[2], a13[2], b02[2], b13[2];
#pragma unroll
                for (int nib = 0; nib < 2; nib++) {
                    const int k = kk + 2 * nib;
                    const uint32_t va =
                        ((qla[w] >> (4 * nib)) & 0x0F0F0F0Fu) | (((qha[w] >> (2 * k)) & 0x03030303u) << 4);
                    const uint32_t vb =
                        ((qlb[w] >> (4 * nib)) & 0x0F0F0F0Fu) | (((qhb[w] >> (2 * k)) & 0x03030303u) << 4);
                    a02[nib] = hfma2(lop_and_or(va << 4, kSixMask, kOne), s_a[nib], neg_pair(s_a[nib]));
                    a13[nib] = hfma2(lop_and_or(va >> 4, kSixMask, kOne), s_a[nib], neg_pair(s_a[nib]));
                    b02[nib] = hfma2(lop_and_or(vb << 4, kSixMask, kOne), s_b[nib], neg_pair(s_b[nib]));
                    b13[nib] = hfma2(lop_and_or(vb >> 4, kSixMask, kOne), s_b[nib], neg_pair(s_b[nib]));
                }
#pragma unroll
                for (int nt = 0; nt < NT; nt++) {
                    const uint4 bv =
                        *reinterpret_cast<const uint4*>(bt + (nt * 8 + g) * kBTok + (jw * 4 + t) * 16);
                    mma16(c[nt], a02[0], b02[0], a13[0], b13[0], bv.x, bv.y);
                    mma16(c[nt], a02[1], b02[1], a13[1], b13[1], bv.z, bv.w);
                }
            }
        }
    }
    // the codes' offset: -32 c per scale group; lane t holds groups 2t, 2t + 1 (a0, a1) and 8 + 2t, 9 + 2t
    auto offs = [&](const uint8_t* r, float d, int i) {  // groups i, i + 1
        const uint32_t two = *reinterpret_cast<const unsigned short*>(r + 192 + i);
        return pack_half2(-32.0f * d * (float)(int8_t)(two & 0xFFu), -32.0f * d * (float)(int8_t)(two >> 8));
    };
    const uint32_t m0a = offs(ra, da, 2 * t), m0b = offs(rb, db, 2 * t);
    const uint32_t m1a = offs(ra, da, 8 + 2 * t), m1b = offs(rb, db, 8 + 2 * t);
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const uint8_t* bmt = bm + (nt * 8 + g) * 32;
        mma16(c[nt], m0a, m0b, m1a, m1b, *reinterpret_cast<const uint32_t*>(bmt + 4 * t),
              *reinterpret_cast<const uint32_t*>(bmt + 16 + 4 * t));
    }
}

// Each job's row blocks times its ranges (splits), numbered through the jobs in order: job j's blocks end
// at item_end[j]. Splits are chosen per job, as if it ran alone, so a matrix's results do not depend on
// the matrices it shares a launch with.
struct Items {
    int splits[mmvq::kMaxJobs];
    int item_end[mmvq::kMaxJobs];
};

template <GgmlType T, int NT>
__global__ void __launch_bounds__(kThreads<T>, Fmt<T>::kMinBlocks)
    mmqh_kernel(mmvq::Jobs blocks, Items items, int64_t row_bytes, int nb, mmvq::ActView x, int n_tok) {
    using F = Fmt<T>;
    using S = Smem<T>;
    constexpr int kThreads = ::rotor::cuda::mmqh::kThreads<T>,
                  kBlockRows = ::rotor::cuda::mmqh::kBlockRows<T>;
    constexpr int kT = NT * 8;  // token columns used
    constexpr bool kQ6 = T == GgmlType::Q6_K;
    extern __shared__ __align__(16) uint8_t smem[];
    pdl_trigger();
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int g = lane >> 2, t = lane & 3;
    const int item = blockIdx.x;
    const int j = (blocks.n > 1 && item >= items.item_end[0]) + (blocks.n > 2 && item >= items.item_end[1]);
    const int item0 = j == 0 ? 0 : (j == 1 ? items.item_end[0] : items.item_end[1]);
    const int splits = j == 0 ? items.splits[0] : (j == 1 ? items.splits[1] : items.splits[2]);
    const mmvq::JobAt job = mmvq::job_of(blocks, j);
    const int first = job.first;
    const int rbk = first + (item - item0) / splits,
              split = (item - item0) % splits;  // row block of all jobs
    const uint8_t* W = job.w;
    float* Y = job.y;
    const int rows = job.rows;
    const uint8_t* w_end = W + (size_t)rows * row_bytes;
    const int row0 = (rbk - first) * kBlockRows;
    const int kb0 = (int)((int64_t)split * nb / splits), kb1 = (int)((int64_t)(split + 1) * nb / splits);
    const int n = kb1 - kb0;

    uint8_t* a_ring = smem + S::kA + warp * kStages * S::kAStage;
    uint8_t* raw_ring = smem + S::kRaw;
    // this lane's A copies: pieces lane, lane + 32, ... of the warp's 16 rows x kPieces, as the start of
    // the row's block in the first super-block (null: a row past the matrix, zero-filled) and the piece's
    // place in the stage. q6_K pieces start at the 16-byte boundary at or before the block, and the last
    // ones of a matrix copy only its bytes.
    constexpr int kAPieces = (kTileRows * F::kPieces + 31) / 32;
    const uint8_t* a_src[kAPieces];
    int a_dst[kAPieces];
#pragma unroll
    for (int k = 0; k < kAPieces; k++) {
        const int p = lane + 32 * k, r = p / F::kPieces, pc = p % F::kPieces;
        const int row = row0 + warp * kTileRows + r;
        a_dst[k] = p < kTileRows * F::kPieces ? r * F::kSlotRow + 16 * pc : -1;
        a_src[k] = row < rows ? W + (size_t)row * row_bytes + (size_t)kb0 * F::kBlockBytes : nullptr;
    }
    auto issue_a = [&](int i) {
        if (i >= n) return;
        uint8_t* dst = a_ring + (i % kStages) * S::kAStage;
#pragma unroll
        for (int k = 0; k < kAPieces; k++) {
            if (a_dst[k] < 0) continue;
            const int pc = (a_dst[k] % F::kSlotRow) / 16;
            if (!a_src[k]) {
                cp_async16(dst + a_dst[k], W, 0);
                continue;
            }
            const uint8_t* blk = a_src[k] + (size_t)i * F::kBlockBytes;
            const uint8_t* src = blk - (reinterpret_cast<uintptr_t>(blk) & 15) + 16 * pc;
            const int64_t left = w_end - src;
            cp_async16(dst + a_dst[k], left > 0 ? src : W, left >= 16 ? 16 : (left > 0 ? (int)left : 0));
        }
    };
    // the block's activation copies: kT tokens x 16 chunks of 16 codes, then d and d * sum (32 bytes
    // each). A chunk of super-block kb sits at act_code_index(256 kb + 16 c) = (its place in super-block
    // 0) + 2048 (kb / 8) + 16 (kb % 8): one offset per super-block for all pieces.
    constexpr int kScalePieces = 2 * kT * S::kScaleArrays;  // 16-byte pieces of d (and d * sum)
    constexpr int kRawPieces = (kT * 16 + kScalePieces + kThreads - 1) / kThreads;
    const uint8_t* r_src[kRawPieces];
    int r_dst[kRawPieces];
    bool r_codes[kRawPieces];
#pragma unroll
    for (int k = 0; k < kRawPieces; k++) {
        const int p = tid + kThreads * k;
        r_codes[k] = p < kT * 16;
        if (p < kT * 16) {
            const int tok = p / 16, c = p % 16;
            r_dst[k] = tok * kSbElems + 16 * c;
            r_src[k] = tok < n_tok ? reinterpret_cast<const uint8_t*>(x.codes + (size_t)tok * x.code_stride +
                                                                      ::rotor::mmvq::act_code_index(16 * c))
                                   : nullptr;
        } else if (p < kT * 16 + kScalePieces) {
            const int q = p - kT * 16, which = q / (2 * kT), tok = (q % (2 * kT)) / 2, half = q % 2;
            r_dst[k] = kRawCodes + which * kRawScales + tok * 32 + 16 * half;
            r_src[k] = tok < n_tok ? reinterpret_cast<const uint8_t*>((which ? x.s : x.d) +
                                                                      (size_t)tok * x.ds_stride + 4 * half)
                                   : nullptr;
        } else {
            r_dst[k] = -1;
            r_src[k] = nullptr;
        }
    }
    auto issue_raw = [&](int i) {
        if (i >= n) return;
        uint8_t* dst = raw_ring + (i % kStages) * S::kRawStage;
        const int kb = kb0 + i;
        const size_t code_off = (size_t)(kb >> 3) * 2048 + (size_t)(kb & 7) * 16,
                     scale_off = (size_t)kb * 8 * 4;
#pragma unroll
        for (int k = 0; k < kRawPieces; k++)
            if (r_dst[k] >= 0)
                cp_async16(dst + r_dst[k], r_src[k] ? r_src[k] + (r_codes[k] ? code_off : scale_off) : W,
                           r_src[k] ? 16 : 0);
    };
    // raw stage i -> f16 B tile, sums per group and divisors of buffer b. Item (token, chunk c of 16 codes);
    // the chunk's words go where the lanes that own its elements read them (q4_K: sub-block c / 2 belongs
    // to lane c / 4, words 4 (c % 2) .. of its pair; q6_K: (h, k) = (c / 8, c % 8 / 2), elements
    // 16 (c % 2) .. of lanes 2 (c % 2) and 2 (c % 2) + 1).
    auto convert = [&](int i, int b) {
        const uint8_t* raw = raw_ring + (i % kStages) * S::kRawStage;
        const float* rd = reinterpret_cast<const float*>(raw + kRawCodes);
        const float* rs = reinterpret_cast<const float*>(raw + kRawCodes + kRawScales);
        uint8_t* bt = smem + S::kB + b * kBStage;
        __half* bmin = reinterpret_cast<__half*>(smem + S::kMin + b * S::kMinStage);
        float* div = reinterpret_cast<float*>(smem + S::kDiv + b * kTok * 4);
#pragma unroll
        for (int k = 0; k < (kT * 16 + kThreads - 1) / kThreads; k++) {
            const int item = tid + kThreads * k, tok = item / 16, c = item % 16;  // codes 16c .. 16c + 15
            if (item >= kT * 16) break;
            const float4 d03 = *reinterpret_cast<const float4*>(rd + tok * 8);
            const float4 d47 = *reinterpret_cast<const float4*>(rd + tok * 8 + 4);
            const float p = fmaxf(fmaxf(fmaxf(d03.x, d03.y), fmaxf(d03.z, d03.w)),
                                  fmaxf(fmaxf(d47.x, d47.y), fmaxf(d47.z, d47.w)));
            const float inv = p > 0.0f ? 1.0f / p : 0.0f;
            const float rf = rd[tok * 8 + c / 2] * inv;
            const __half2 r = __float2half2_rn(rf);
            const uint4 codes = *reinterpret_cast<const uint4*>(raw + tok * kSbElems + 16 * c);
            const uint32_t cw[4] = {codes.x, codes.y, codes.z, codes.w};
            const __half2 bias = __float2half2_rn(1152.0f);  // 1024 + the 128 added to make codes unsigned
#pragma unroll
            for (int w = 0; w < 4; w++) {
                const uint32_t u = cw[w] ^ 0x80808080u;
                const uint32_t e02 = __byte_perm(u, 0x64646464u, 0x4240),
                               e13 = __byte_perm(u, 0x64646464u, 0x4341);
                const __half2 v02 = __hmul2(__hsub2(*reinterpret_cast<const __half2*>(&e02), bias), r);
                const __half2 v13 = __hmul2(__hsub2(*reinterpret_cast<const __half2*>(&e13), bias), r);
                int off;
                if constexpr (kQ6) {
                    const int h = c / 8, k2 = (c % 8) / 2, tl = 2 * (c % 2) + w / 2;
                    off = ((((h * 2 + (k2 & 1)) * 2 + (w & 1)) * 4 + tl) * 2 + (k2 >> 1)) * 8;
                } else {
                    off = (((4 * (c % 2) + w) * 4 + c / 4) * 2 + (c / 2) % 2) * 8;
                }
                uint2 out;
                out.x = h2_bits(v02);
                out.y = h2_bits(v13);
                *reinterpret_cast<uint2*>(bt + tok * kBTok + off) = out;
            }
            if constexpr (kQ6) {  // the chunk is scale group c
                int sum = 0;
#pragma unroll
                for (int w = 0; w < 4; w++) sum = __dp4a((int)cw[w], 0x01010101, sum);
                bmin[tok * 16 + c] = __float2half_rn((float)sum * rf);
            } else if (c % 2 == 0) {
                bmin[tok * 8 + c / 2] = __float2half_rn(rs[tok * 8 + c / 2] * inv);
            }
            if (c == 0) div[tok] = p;
        }
    };

    issue_a(0);
    issue_a(1);
    pdl_wait();  // the activations (and our outputs, the split counters) belong to earlier kernels
    issue_raw(0);
    cp_async_commit();
    issue_raw(1);
    cp_async_commit();
    cp_async_wait<kStages - 2>();  // stage 0 (this thread's copies)
    __syncthreads();
    convert(0, 0);

    // where the lane's rows g and g + 8 start (q6_K: their block's offset in the stage varies)
    const uint8_t* row_a =
        W + (size_t)(row0 + warp * kTileRows + g) * row_bytes + (size_t)kb0 * F::kBlockBytes;
    const uint8_t* row_b = row_a + 8 * (size_t)row_bytes;
    float acc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    for (int i = 0; i < n; i++) {
        issue_a(i + kStages - 1);  // into the slots of stage i - 1, done with since the last barrier
        issue_raw(i + kStages - 1);
        cp_async_commit();
        cp_async_wait<kStages - 2>();  // stage i + 1
        __syncthreads();               // stage i + 1 for all; B tile i visible; B tile i + 1's buffer free
        if (i + 1 < n) convert(i + 1, (i + 1) % 2);

        const int b = i % 2;
        const uint8_t* slot = a_ring + (i % kStages) * S::kAStage;
        const uint8_t* ra = slot + g * F::kSlotRow;
        const uint8_t* rb = slot + (g + 8) * F::kSlotRow;
        if constexpr (kQ6) {
            ra += reinterpret_cast<uintptr_t>(row_a + (size_t)i * F::kBlockBytes) & 15;
            rb += reinterpret_cast<uintptr_t>(row_b + (size_t)i * F::kBlockBytes) & 15;
        }
        const uint8_t* bt = smem + S::kB + b * kBStage;
        const uint8_t* bm = smem + S::kMin + b * S::kMinStage;
        float c[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) c[nt][0] = c[nt][1] = c[nt][2] = c[nt][3] = 0.0f;
        if constexpr (kQ6)
            products_q6k<NT>(ra, rb, g, t, bt, bm, c);
        else
            products_q4k<NT>(ra, rb, g, t, bt, bm, c);
        const float* div = reinterpret_cast<const float*>(smem + S::kDiv + b * kTok * 4);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const float p0 = div[nt * 8 + 2 * t], p1 = div[nt * 8 + 2 * t + 1];
            acc[nt][0] += c[nt][0] * p0;
            acc[nt][1] += c[nt][1] * p1;
            acc[nt][2] += c[nt][2] * p0;
            acc[nt][3] += c[nt][3] * p1;
        }
        __syncwarp();  // the warp's A slot is refilled at the next iteration's top
    }
    cp_async_wait<0>();

    // outputs: rows g, g + 8 of the warp's 16, tokens 2t, 2t + 1 of each n-tile
    const int lr0 = warp * kTileRows + g;
    if (splits == 1) {
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const int row = row0 + lr0 + 8 * (q >> 1), tok = nt * 8 + 2 * t + (q & 1);
                if (row < rows && tok < n_tok) Y[(size_t)tok * rows + row] = acc[nt][q];
            }
        return;
    }
    float* part =
        x.split + (size_t)(item - split) * kTok * kBlockRows;  // the row block's [split][token][row]
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int lr = lr0 + 8 * (q >> 1), tok = nt * 8 + 2 * t + (q & 1);
            part[((size_t)split * kTok + tok) * kBlockRows + lr] = acc[nt][q];
        }
    __threadfence();
    __syncthreads();
    __shared__ bool last;
    if (tid == 0) last = atomicAdd(&g_split_done[rbk], 1u) == (unsigned)splits - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int idx = tid; idx < NT * 8 * kBlockRows; idx += kThreads) {
        const int tok = idx / kBlockRows, lr = idx % kBlockRows, row = row0 + lr;
        float v = 0.0f;
        for (int s2 = 0; s2 < splits; s2++) v += __ldcg(part + ((size_t)s2 * kTok + tok) * kBlockRows + lr);
        if (row < rows && tok < n_tok) Y[(size_t)tok * rows + row] = v;
    }
    if (tid == 0) g_split_done[rbk] = 0;  // for the next launch (kernels of a stream run in order)
}

template <GgmlType T, int NT>
unsigned resident() {  // blocks that fit on the GPU at once, after the shared-memory opt-in
    static unsigned blocks = 0;  // per instantiation (one GPU per process in rotor)
    if (!blocks) {
        const int smem = Smem<T>::kBytes;
        check(cudaFuncSetAttribute(mmqh_kernel<T, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
              "f16 tensor-core mat-vec shared memory");
        blocks = resident_blocks(mmqh_kernel<T, NT>, kThreads<T>, smem);
    }
    return blocks;
}

int g_mode = -1;  // -1: not chosen yet

}  // namespace

bool enabled() {
    if (g_mode < 0) g_mode = env_switch("ROTOR_MMQ_F16", 1);
    return g_mode == 1;
}
void set_enabled(bool on) {
    g_mode = on ? 1 : 0;
}

bool applies(GgmlType t, int n_tok) {
    return enabled() && (t == GgmlType::Q4_K || t == GgmlType::Q6_K) && n_tok >= 1 && n_tok <= kTok;
}

int choose_splits(int64_t row_blocks, int block_rows, int nb, int64_t resident, size_t split_room) {
    int best = 1;
    double best_cost = 0;
    for (int s = 1; s <= std::min(nb, kMaxSplits); s++) {
        if (s > 1 && (size_t)(row_blocks * s) * kTok * block_rows * 4 > split_room) break;
        // rounds of resident blocks times super-blocks per block, plus about one super-block of work
        // for the partial sums of a split
        const int64_t rounds = (row_blocks * s + resident - 1) / resident;
        const double cost = (double)rounds * ((nb + s - 1) / s) + (s > 1 ? 1.0 : 0.0);
        if (s == 1 || cost < best_cost) best = s, best_cost = cost;
    }
    return best;
}

namespace {
template <GgmlType T, int NT>
void launch_t(const mmvq::Job* jobs, int n_jobs, int64_t rb, int nb, const mmvq::ActView& x, int n_tok,
              cudaStream_t s) {
    const mmvq::Jobs blocks = mmvq::make_jobs(jobs, n_jobs, kBlockRows<T>);
    // each job's splits as if it ran alone, within a third of the room (and of the counters)
    const int row_blocks = blocks.group_end[n_jobs - 1];
    const size_t room = x.split && row_blocks <= kMaxRowBlocks ? x.split_bytes / mmvq::kMaxJobs : 0;
    Items items{};
    int total = 0;
    for (int i = 0; i < n_jobs; i++) {
        const int rbj = blocks.group_end[i] - (i ? blocks.group_end[i - 1] : 0);
        items.splits[i] = choose_splits(rbj, kBlockRows<T>, nb, (int64_t)resident<T, NT>(), room);
        total += rbj * items.splits[i];
        items.item_end[i] = total;
    }
    mmvq::launch_pdl_smem(mmqh_kernel<T, NT>, (unsigned)total, kThreads<T>, Smem<T>::kBytes, s, blocks, items,
                          rb, nb, x, n_tok);
}
}  // namespace

void launch(GgmlType t, const mmvq::Job* jobs, int n_jobs, int64_t cols, const mmvq::ActView& x, int n_tok,
            cudaStream_t s) {
    if (t != GgmlType::Q4_K && t != GgmlType::Q6_K)
        throw Error("f16 tensor-core mat-vec: q4_K and q6_K only (got " + std::string(format_info(t).name) +
                    ")");
    if (n_jobs < 1 || n_jobs > mmvq::kMaxJobs || n_tok < 1 || n_tok > kTok || cols % kSbElems)
        throw Error("f16 tensor-core mat-vec: bad launch");
    int64_t all_rows = 0;
    for (int i = 0; i < n_jobs; i++) all_rows += jobs[i].rows;
    if (all_rows == 0) return;
    const int64_t rb = (int64_t)row_bytes(t, (uint64_t)cols);
    const int nb = (int)(cols / kSbElems);
    const bool two = n_tok > 8;
    if (t == GgmlType::Q4_K)
        two ? launch_t<GgmlType::Q4_K, 2>(jobs, n_jobs, rb, nb, x, n_tok, s)
            : launch_t<GgmlType::Q4_K, 1>(jobs, n_jobs, rb, nb, x, n_tok, s);
    else
        two ? launch_t<GgmlType::Q6_K, 2>(jobs, n_jobs, rb, nb, x, n_tok, s)
            : launch_t<GgmlType::Q6_K, 1>(jobs, n_jobs, rb, nb, x, n_tok, s);
    check(cudaGetLastError(), "f16 tensor-core mat-vec launch");
}

}  // namespace rotor::cuda::mmqh
