// Tensor-core split-K decode attention over block-quantized KV caches (q8_0, q4_0 and their rotated
// *h forms; f16 behind a switch), reading the stored rows in place. Same contract as attention()
// (attention.h), which calls it for the layers it supports: the part of one split per (token, query head)
// into `partial`, merged by attention()'s second kernel.
#pragma once
#include <cuda_runtime_api.h>

#include "cuda/attention.h"

namespace rotor::cuda {

// Whether the kernel serves this layer: q8_0 / q4_0 (plain or rotated), and f16 when
// attention_decode_f16(); equal K and V head sizes of 64, 128 or 256; keys stored (not derived from values).
bool attention_decode_tc_supports(const KvLayerView& kv);

// f16 caches on this kernel: on by default (bench/RESULTS.md, "Decode attention defaults": 1.6-2x the
// CUDA-core kernel at 32K-112K); ROTOR_DECODE_ATTENTION_F16=0 (read once) or the setter sends them to
// attention.cu's CUDA-core kernel.
bool attention_decode_f16();
void set_attention_decode_f16(bool on);

// The split parts (max, sum, unnormalized output per query head and split, attention.cu's layout) for
// n_split splits of split_positions positions each (a multiple of 64).
void attention_decode_tc(const KvLayerView& kv, const float* q, const int32_t* seq, const int32_t* pos,
                         int n_tok, int n_head, float scale, int n_split, int split_positions, float* partial,
                         cudaStream_t s);

// Positions per split for this launch (rule 0: 256 doubled to 1024 at most while the launch keeps 1.5
// blocks per SM). Chosen from ceil(max_kv / 256), so a captured graph's split count (its key) fixes
// it; callers size the split count from that too.
int attention_decode_split(const KvLayerView& kv, int n_head, int n_tok, int max_kv);
void set_attention_decode_split(int positions);  // a multiple of 256 for every launch; 0: the rule
// Rule 1 (the default; ROTOR_DECODE_SPLIT_RULE=0 or the setter's 0 goes back to rule 0): the multiple
// of 256 that minimizes rounds of resident blocks x (positions per block + 512), from the occupancy of
// the layer's kernel variant; where that is one round, the multiple of 64 at or below it that puts the
// fewest positions on the busiest SM (ROTOR_DECODE_SPLIT_FINE=0 or the setter turns this part off).
void set_attention_decode_split_fine(bool on);
void set_attention_decode_split_rule(int rule);
int attention_decode_split_rule();

// Lean variant (for comparisons; off by default, ROTOR_DECODE_LEAN=1 or the setter): two copy stages
// and at most 128 registers, 4 blocks per SM instead of 3.
void set_attention_decode_lean(bool on);
bool attention_decode_lean();

// On by default; ROTOR_DECODE_ATTENTION=0 in the environment (read once) or the setter sends every
// layer to the CUDA-core split-K kernel instead (for comparisons).
bool attention_decode_tc_enabled();
void set_attention_decode_tc_enabled(bool on);

}  // namespace rotor::cuda
