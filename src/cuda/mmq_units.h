// The tensor-core int8 mat-vec for steps of 9-16 tokens (matvec_mma.cu), one lane's share of it, host /
// device neutral so that the CPU tests run this code with the warp's mma emulated. q4_K below; q6_K
// further down.
//
// A warp owns a tile of 16 weight rows and up to 16 tokens (two n-tiles of 8). Each 32-element
// sub-block of a q4_K super-block is one mma.sync.m16n8k32 (s8 x s8 -> s32) per n-tile: the weights'
// 4-bit codes (0..15) against the activations' int8 codes (the CPU's Q8_0 codes per 32, as the dp4a
// kernel reads them), then, since a sub-block has one scale and min per row and the activations one
// scale per 32, each int32 result becomes float at once:
//
//     y[r][t] += c[r][t] * (d_r * sc_rj) * xd[t][j]  -  (dmin_r * m_rj) * xs[t][j]
//
// with xs = xd * (sum of the 32 codes): the same identity as mmvq_units.h's q4_K unit.
//
// Fragment layouts are the PTX ISA's for mma.m16n8k32 with .s8 operands (lane = 4 * group + tig):
//   A (16 x 32, row-major), four words of four codes: word 0 row group, columns 4 tig .. 4 tig + 3;
//     word 1 row group + 8, the same columns; words 2, 3 as 0, 1 with columns + 16;
//   B (32 x 8, column-major), two words: column (token) group, rows 4 tig .. 4 tig + 3, then + 16;
//   C (16 x 8, s32), four values: rows group, group + 8 (c0 c1, c2 c3), columns 2 tig, 2 tig + 1.
#pragma once
#include <cstdint>

#include "cuda/mmvq_units.h"

namespace rotor::mmq {

constexpr int kTileRows = 16;   // rows of weights per warp
constexpr int kTileTokens = 8;  // tokens per mma (an n-tile)
constexpr int kMaxTokens = 16;  // two n-tiles

ROTOR_HD int frag_group(int lane) { return lane >> 2; }
ROTOR_HD int frag_tig(int lane) { return lane & 3; }

// q4_K (144-byte blocks: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of codes: byte
// 32 p + i holds element i of sub-block 2p in its low nibble and of 2p + 1 in its high one).
constexpr int kQ4KBlockBytes = 144;

// The A fragment of sub-block j (0..7) of a super-block, from the block copies of the lane's two rows
// (row group and group + 8; 4-byte aligned).
ROTOR_HD void q4k_a_frag(const uint8_t* row_g, const uint8_t* row_g8, int j, int tig, uint32_t a[4]) {
    const int off = 16 + 32 * (j >> 1) + 4 * tig, sh = 4 * (j & 1);
    a[0] = (chunk_detail::load_u32_a4(row_g + off) >> sh) & 0x0F0F0F0Fu;
    a[1] = (chunk_detail::load_u32_a4(row_g8 + off) >> sh) & 0x0F0F0F0Fu;
    a[2] = (chunk_detail::load_u32_a4(row_g + off + 16) >> sh) & 0x0F0F0F0Fu;
    a[3] = (chunk_detail::load_u32_a4(row_g8 + off + 16) >> sh) & 0x0F0F0F0Fu;
}

// Scale and min of sub-block j of a block: the weights are c * code - m.
ROTOR_HD void q4k_scale_min(const uint8_t* blk, int j, float& c, float& m) {
    const uint32_t h0 = chunk_detail::load_u32_a4(blk), s0 = chunk_detail::load_u32_a4(blk + 4),
                   s1 = chunk_detail::load_u32_a4(blk + 8), s2 = chunk_detail::load_u32_a4(blk + 12);
    int sc, mn;
    mmvq::k4_scale_min(j, s0, s1, s2, sc, mn);
    c = mmvq::half_bits_to_f32(h0 & 0xFFFFu) * (float)sc;
    m = mmvq::half_bits_to_f32(h0 >> 16) * (float)mn;
}

// The B fragment of one token for the 32 elements from e0 (a multiple of 32): its codes in
// act_code_index order (4 consecutive codes are 4 consecutive bytes there).
ROTOR_HD void act_b_frag(const int8_t* codes, int64_t e0, int tig, uint32_t b[2]) {
    b[0] = chunk_detail::load_u32_a4(reinterpret_cast<const uint8_t*>(codes + mmvq::act_code_index(e0 + 4 * tig)));
    b[1] = chunk_detail::load_u32_a4(reinterpret_cast<const uint8_t*>(codes + mmvq::act_code_index(e0 + 16 + 4 * tig)));
}

// One lane's accumulation of one mma result: c (rows group, group + 8 x tokens 2 tig, 2 tig + 1), the
// two rows' scale / min (cg, mg / cg8, mg8) and the two tokens' xd / xs for this sub-block.
ROTOR_HD void accumulate(const int c[4], float cg, float mg, float cg8, float mg8, float xd0, float xs0, float xd1,
                         float xs1, float acc[4]) {
    acc[0] += (float)c[0] * (cg * xd0) - mg * xs0;
    acc[1] += (float)c[1] * (cg * xd1) - mg * xs1;
    acc[2] += (float)c[2] * (cg8 * xd0) - mg8 * xs0;
    acc[3] += (float)c[3] * (cg8 * xd1) - mg8 * xs1;
}

// q6_K (210-byte blocks: ql[128], qh[64], int8 scales[16], f16 d; element 128 h + 32 k + l of a block
// is ql byte 64 h + 32 (k & 1) + l, low nibble for k < 2, with qh byte 128 + 32 h + l's bits 2k, 2k + 1
// above it, minus 32; its scale is byte 192 + 8 h + 2 k + l / 16). A scale per 16 elements: each
// 32-element sub-block j = 4 h + k is two mma.m16n8k16 (A: two words, the k32 layout's words 0-1 for
// columns 0-15 and 2-3 for 16-31; B: one word, the k32 layout's b0 and b1). Blocks are only 2-byte
// aligned in the rows, and so in their shared-memory copies: words are read with funnel shifts.
constexpr int kQ6KBlockBytes = 210;

ROTOR_HD uint32_t q6k_codes(const uint8_t* blk, int h, int k, int l) {  // 4 codes from element 128 h + 32 k + l
    uint32_t ql, qh;
    mmvq::load_words<1, 2>(blk + 64 * h + 32 * (k & 1) + l, &ql);
    mmvq::load_words<1, 2>(blk + 128 + 32 * h + l, &qh);
    return mmvq::sub32_bytes(((ql >> (4 * (k >> 1))) & 0x0F0F0F0Fu) | (((qh >> (2 * k)) & 0x03030303u) << 4));
}

// The A fragments of sub-block j (0..7): a[0], a[1] columns 0-15 (rows group, group + 8), a[2], a[3]
// columns 16-31.
ROTOR_HD void q6k_a_frag(const uint8_t* row_g, const uint8_t* row_g8, int j, int tig, uint32_t a[4]) {
    const int h = j >> 2, k = j & 3;
    a[0] = q6k_codes(row_g, h, k, 4 * tig);
    a[1] = q6k_codes(row_g8, h, k, 4 * tig);
    a[2] = q6k_codes(row_g, h, k, 16 + 4 * tig);
    a[3] = q6k_codes(row_g8, h, k, 16 + 4 * tig);
}

// The scales of sub-block j's two halves (d times the int8 scale).
ROTOR_HD void q6k_scales(const uint8_t* blk, int j, float& c_lo, float& c_hi) {
    const int h = j >> 2, k = j & 3;
    const float d = mmvq::half_bits_to_f32(mmvq::load_u16(blk + 208));
    const uint32_t pair = mmvq::load_u16(blk + 192 + 8 * h + 2 * k);  // scale bytes 2k, 2k + 1: 2-byte aligned
    c_lo = d * (float)(int8_t)(pair & 0xFFu);
    c_hi = d * (float)(int8_t)(pair >> 8);
}

// One lane's accumulation for q6_K: the two halves' mma results (c_lo, c_hi), the rows' scales.
ROTOR_HD void accumulate_q6k(const int c_lo[4], const int c_hi[4], float cg_lo, float cg_hi, float cg8_lo,
                             float cg8_hi, float xd0, float xd1, float acc[4]) {
    acc[0] += ((float)c_lo[0] * cg_lo + (float)c_hi[0] * cg_hi) * xd0;
    acc[1] += ((float)c_lo[1] * cg_lo + (float)c_hi[1] * cg_hi) * xd1;
    acc[2] += ((float)c_lo[2] * cg8_lo + (float)c_hi[2] * cg8_hi) * xd0;
    acc[3] += ((float)c_lo[3] * cg8_lo + (float)c_hi[3] * cg8_hi) * xd1;
}

// What mma.m16n8k16 (.s8) computes for a whole warp: A two words (row group / group + 8, columns
// 4 tig .. 4 tig + 3), B one word (rows 4 tig .., column group), C as for k32.
inline void mma16_emulate(const uint32_t a[32][2], const uint32_t b[32], int c[32][4]) {
    int8_t A[16][16], B[16][8];
    for (int lane = 0; lane < 32; lane++) {
        const int g = frag_group(lane), t = frag_tig(lane);
        for (int i = 0; i < 4; i++) {
            A[g][4 * t + i] = (int8_t)(a[lane][0] >> (8 * i));
            A[g + 8][4 * t + i] = (int8_t)(a[lane][1] >> (8 * i));
            B[4 * t + i][g] = (int8_t)(b[lane] >> (8 * i));
        }
    }
    for (int lane = 0; lane < 32; lane++) {
        const int g = frag_group(lane), t = frag_tig(lane);
        for (int q = 0; q < 4; q++) {
            const int r = g + 8 * (q >> 1), n = 2 * t + (q & 1);
            int s = 0;
            for (int k = 0; k < 16; k++) s += (int)A[r][k] * (int)B[k][n];
            c[lane][q] = s;
        }
    }
}

// What mma.m16n8k32 computes for a whole warp, from every lane's fragments (the layouts above), c = a b.
// For the CPU tests; the GPU runs the instruction.
inline void mma_emulate(const uint32_t a[32][4], const uint32_t b[32][2], int c[32][4]) {
    int8_t A[16][32], B[32][8];
    for (int lane = 0; lane < 32; lane++) {
        const int g = frag_group(lane), t = frag_tig(lane);
        for (int q = 0; q < 4; q++)
            for (int i = 0; i < 4; i++) A[g + 8 * (q & 1)][4 * t + i + 16 * (q >> 1)] = (int8_t)(a[lane][q] >> (8 * i));
        for (int q = 0; q < 2; q++)
            for (int i = 0; i < 4; i++) B[4 * t + i + 16 * q][g] = (int8_t)(b[lane][q] >> (8 * i));
    }
    for (int lane = 0; lane < 32; lane++) {
        const int g = frag_group(lane), t = frag_tig(lane);
        for (int q = 0; q < 4; q++) {
            const int r = g + 8 * (q >> 1), n = 2 * t + (q & 1);
            int s = 0;
            for (int k = 0; k < 32; k++) s += (int)A[r][k] * (int)B[k][n];
            c[lane][q] = s;
        }
    }
}

}  // namespace rotor::mmq
