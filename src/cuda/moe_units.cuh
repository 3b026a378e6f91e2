// The routed experts' extra int8 unit (mmvq_units.h's scheme, host/device neutral so that
// rotor-check-moe checks it on the CPU): q5_0, the format gemma4's experts fall back to (their
// widths 704 are not multiples of 256, so the K-quants do not apply).
#pragma once
#include "cuda/mmvq_units.h"

namespace rotor::mmvq {

// Bits 0..3 of n, one to bit 0 of each byte.
ROTOR_HD uint32_t spread_nibble_bits(uint32_t n) {
    return (n & 1u) | ((n & 2u) << 7) | ((n & 4u) << 14) | ((n & 8u) << 21);
}

// q5_0: 22-byte blocks (d f16, qh 4 bytes, qs 16), unit = block. Element j < 16 is the low nibble of
// qs[j] with bit j of qh as its fifth bit, element j + 16 the high nibble with bit j + 16; codes
// 0..31 stand for -16..15 (m = -16 d).
template <>
struct Unit<GgmlType::Q5_0> {
    static constexpr int kBlockBytes = sizeof(block_q5_0), kBlockElems = QK5_0;
    static constexpr int kUnitsPerBlock = 1, kSpanBlocks = 32;
    static constexpr int kGroups = 1, kGroupElems = 32, kWords = 8;
    static constexpr bool kHasMin = true;
    using W = UnitWeights<kWords, kGroups>;
    ROTOR_HD static int group_offset(int /*sub*/, int /*g*/) { return 0; }
    ROTOR_HD static void load(const uint8_t* b, int /*sub*/, W& w) {  // b: 2-byte aligned
        uint32_t v[5];
        load_words<5, 2>(b + 2, v);  // qh, then the 16 qs bytes
        const uint32_t qh = v[0];
        ROTOR_MMVQ_UNROLL
        for (int i = 0; i < 4; i++) {
            w.q[i] = (v[1 + i] & 0x0F0F0F0Fu) | (spread_nibble_bits((qh >> (4 * i)) & 0xFu) << 4);
            w.q[4 + i] = ((v[1 + i] >> 4) & 0x0F0F0F0Fu) | (spread_nibble_bits((qh >> (16 + 4 * i)) & 0xFu) << 4);
        }
        const float d = half_bits_to_f32(load_u16(b));
        w.c[0] = d;
        w.m[0] = -16.0f * d;
    }
};

}  // namespace rotor::mmvq
