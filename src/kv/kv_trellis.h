// The pieces of the tcq formats (kv_trellis.cpp has the design) that the GPU shares with the CPU:
// the trellis size, the code tables, and where element i's window lies in a row.
//
// Row layout of tcqK on a head of n: {fp16 scale; u8 B[n * K / 8]}, B a circular bit string (bit j
// of B = bit j % 8 of byte j / 8). Element i is scale * table[w_i], w_i the kTrellisL bits of B from
// bit i * K on, wrapping past the end.
#pragma once
#include <cstdint>
#include <vector>

#include "common/half.h"

namespace rotor::kvq {

constexpr int kTrellisL = 12;  // window (state) bits
constexpr int kTrellisStates = 1 << kTrellisL;
constexpr int kTrellisMinBits = 2, kTrellisMaxBits = 4;

// tcqK's table by window (kTrellisStates floats), K in [kTrellisMinBits, kTrellisMaxBits].
const std::vector<float>& trellis_code_table(int k);

ROTOR_HD uint64_t trellis_row_bytes(int n, int k) { return 2 + (uint64_t)n * k / 8; }

// w_i of a code string of nbytes bytes, read byte by byte (the reference; kernels read wider).
ROTOR_HD int trellis_window(const uint8_t* codes, int nbytes, int i, int k) {
    const int bit = i * k, b = bit / 8;
    const uint32_t w = (uint32_t)codes[b % nbytes] | ((uint32_t)codes[(b + 1) % nbytes] << 8) |
                       ((uint32_t)codes[(b + 2) % nbytes] << 16);
    return (int)((w >> (bit % 8)) & (kTrellisStates - 1));
}

}  // namespace rotor::kvq
