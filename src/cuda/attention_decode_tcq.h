// Tensor-core split-K decode attention over rotor's trellis-coded KV rows (tcq2 / tcq3 / tcq4) and the
// TurboQuant-style rows (tbq2-4, tbq2nc-4nc), read in place: attention_decode.cu's kernel with each
// element a code-table lookup instead of a block code.
// Same contract as attention_decode_tc (the part of one split per token and query head, merged by
// attention()). On by default (ROTOR_DECODE_ATTENTION_TCQ=0 or the setter turns it off): attention()
// sends the layers it supports here.
#pragma once
#include <cuda_runtime_api.h>

#include "cuda/attention.h"

namespace rotor::cuda {

// tcq2-4 and tbq (and RotorQuant at 128 with its switch on) with equal K and V head sizes of 128 or 256, keys
// stored (not derived from values), rows in 4-byte aligned buffers, and the switch on.
bool attention_decode_tcq_supports(const KvLayerView& kv);
bool attention_decode_tcq_enabled();
void set_attention_decode_tcq_enabled(bool on);
// RotorQuant (planar / iso) rows with heads of 128 on this kernel, read as tbq rows with the type's
// centroids: off by default (ROTOR_DECODE_ATTENTION_RQ=1 or the setter turns it on) until it has run its
// GPU checks.
bool attention_decode_rq_enabled();
void set_attention_decode_rq_enabled(bool on);

// Blocks of this layer's kernel the GPU holds at once (attention_decode_split's rule for tcq / tbq layers).
int attention_decode_tcq_resident_blocks(const KvLayerView& kv);

void attention_decode_tcq(const KvLayerView& kv, const float* q, const int32_t* seq, const int32_t* pos,
                          int n_tok, int n_head, float scale, int n_split, int split_positions,
                          float* partial, cudaStream_t s);

}  // namespace rotor::cuda
