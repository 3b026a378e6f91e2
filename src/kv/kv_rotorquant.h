// RotorQuant's constants (kv_rotorquant.cpp) in one flat struct, for the GPU's encoder and rotations
// (src/cuda/kv_rotorquant.cu): the same tables the CPU format uses, so both encode alike.
#pragma once

namespace rotor::kvq {

// How a rotated coordinate v becomes a code.
enum class RotorQuantRule {
    MidLadder,   // shipped 3-bit: the number of mids m with !(v < m) (the fork's "if (val < mid[i])" ladder)
    Nearest,     // shipped 4-bit: the nearest centroid by |v - c|, the first of equals
    BoundCount,  // corrected (_c): the number of bounds b with v > b (ScalarCodebook::index)
};

struct RotorQuantTables {
    float cos[64], sin[64];                // planar: pair p of a block rotated by (cos, sin)
    float qw[32], qx[32], qy[32], qz[32];  // iso: group g of 4 multiplied by this quaternion (left)
    float centroid[16];                    // 2^bits used
    float threshold[15];                   // mids or bounds for the rule, 2^bits - 1 used
    RotorQuantRule rule;
};

// The tables of planar / iso (iso), 3 or 4 bits, shipped (_0) or corrected (_c).
RotorQuantTables rotorquant_tables(bool iso, int bits, bool corrected);

}  // namespace rotor::kvq
