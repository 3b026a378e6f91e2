// Packed code arrays of the rotated scalar-codebook formats (tbq, RotorQuant's planar / iso), shared by
// the CPU formats and the GPU's kernels: 2-bit (4 per byte, element j at bits 2 (j % 4) of byte j / 4),
// 3-bit as RotorQuant stores it (that 2-bit array followed by a plane of the third bits, 8 per byte,
// element j at bit j % 8 of byte n / 4 + j / 8), 4-bit (element j in the low nibble of byte j / 2 when
// j is even, the high nibble when odd).
#pragma once
#include <cstdint>

#include "common/half.h"

namespace rotor::kvq {

ROTOR_HD uint64_t packed_code_bytes(int bits, int n) {
    return (uint64_t)n * bits / 8;
}

// Code i of a packed array of n codes, read in place.
ROTOR_HD int packed_code(int bits, const uint8_t* c, int n, int i) {
    switch (bits) {
        case 2:
            return (c[i / 4] >> (2 * (i % 4))) & 3;
        case 3:
            return ((c[i / 4] >> (2 * (i % 4))) & 3) | (((c[n / 4 + i / 8] >> (i % 8)) & 1) << 2);
        default:
            return (c[i / 2] >> (4 * (i % 2))) & 15;
    }
}

// A tbq row (kv_turbo.cpp): {fp16 scale; packed codes}.
ROTOR_HD uint64_t turbo_row_bytes(int n, int bits) {
    return 2 + packed_code_bytes(bits, n);
}

}  // namespace rotor::kvq
