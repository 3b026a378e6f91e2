// The CUDA backend's fixed scratch rooms, in plain C++ so that the memory planner (plan/planner.cpp)
// counts the bytes the GPU code allocates from the same constants, with or without CUDA in the build.
#pragma once
#include <cstddef>

namespace rotor::cuda {

// split-K partial sums of the tensor-core matmul (matmul_tc.h), batches of 32 tokens or more
inline constexpr size_t kMatmulTcSplitBytes = size_t(32) << 20;
// split-K partial sums of the f16 tensor-core mat-vec (matvec_mma_f16.h), steps of 2 tokens or more
inline constexpr size_t kMatvecF16SplitBytes = size_t(24) << 20;

// tokens per chunk of the chunked gated delta rule (delta_net_chunked.h)
inline constexpr int kGdnChunk = 32;
// Its per-step buffers for steps of up to n tokens in at most max_seqs sequences, in two parts: per token and
// value head the rows of W (d_k) and U (d_v), f32; and per token and value head a row of P (kGdnChunk) and the
// cumulative log-decay, f32, then the chunk table (first token and length of each chunk) and the sequence
// table (first token and count), ints.
inline constexpr size_t gdn_chunked_wu_bytes(size_t n, size_t v_heads, size_t d_k, size_t d_v) {
    return 4 * n * v_heads * (d_k + d_v);
}
inline constexpr size_t gdn_chunked_pc_bytes(size_t n, size_t max_seqs, size_t v_heads) {
    const size_t max_chunks = (n + kGdnChunk - 1) / kGdnChunk + max_seqs;
    return 4 * n * v_heads * (kGdnChunk + 1) + 4 * 2 * max_chunks + 4 * 2 * max_seqs;
}
// What they add to the forward's memory: nothing when the two parts fit in the dense FFN's gate and up
// buffers (n x ffn floats each), which are idle while a Gated DeltaNet layer runs; else both, allocated.
inline constexpr size_t gdn_chunked_extra_bytes(size_t n, size_t max_seqs, size_t v_heads, size_t d_k, size_t d_v,
                                                size_t ffn) {
    const size_t wu = gdn_chunked_wu_bytes(n, v_heads, d_k, d_v), pc = gdn_chunked_pc_bytes(n, max_seqs, v_heads);
    return wu <= 4 * n * ffn && pc <= 4 * n * ffn ? 0 : wu + pc;
}

}  // namespace rotor::cuda
