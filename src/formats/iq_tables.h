// Lookup tables of the IQ and FP4 formats, shared by the reference converters, SIMD/CUDA kernels
// and tests. The data (iq_tables.cpp) is generated from ggml's ggml-common.h by
// tools/gen_iq_tables.py; the names are rotor's.
#pragma once
#include <cstdint>

namespace rotor {

// Grids: entry i packs the magnitudes of 8 (IQ2_*: 8, 25, 43; IQ1_*: int8 -1, 0, +1) or 4 (IQ3_XXS:
// 4..62 even; IQ3_S: 1..15 odd) consecutive weights, one byte each, first weight in the low byte.
extern const uint64_t kIq2xxsGrid[256];
extern const uint64_t kIq2xsGrid[512];
extern const uint64_t kIq2sGrid[1024];
extern const uint32_t kIq3xxsGrid[256];
extern const uint32_t kIq3sGrid[512];
extern const uint64_t kIq1sGrid[2048];  // IQ1_S and IQ1_M; bytes are int8 (-1 = 0xff)

// IQ2/IQ3 signs: a 7-bit index selects 8 sign bits (bit j set: weight j is negative); the 8th bit
// is implied by even parity. kKmaskIq2xs[j] = 1 << j tests bit j.
extern const uint8_t kKsignsIq2xs[128];
extern const uint8_t kKmaskIq2xs[8];

// IQ4_NL / IQ4_XS: the 16 non-uniform levels a 4-bit code selects (times the block scale).
extern const int8_t kIq4nlValues[16];

// FP4 E2M1 values doubled (0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives, times 2) for MXFP4 and
// NVFP4; their scale decoders return half the real scale to compensate.
extern const int8_t kMxfp4Values[16];

// IQ1_S / IQ1_M: every grid value is shifted by +-delta (sign chosen per group of 8 or 16 weights).
constexpr float kIq1sDelta = 0.125f;
constexpr float kIq1mDelta = 0.125f;

}  // namespace rotor
