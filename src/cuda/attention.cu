// The KV cache on the GPU and attention over it: quantize-on-write stores (with the Hadamard rotation
// of the *h types) and split-K flash-decoding attention that reads every stored type in place.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "common/half.h"
#include "cuda/attention.h"
#include "cuda/attention_decode.h"
#include "cuda/attention_decode_tcq.h"
#include "cuda/device_common.cuh"
#include "cuda/kv_rotorquant.h"
#include "cuda/kv_trellis.h"
#include "cuda/kv_turbo.h"
#include "formats/blocks.h"
#include "formats/chunk_decode.h"
#include "kv/kv_hadamard.h"
#include "kv/kv_packed_codes.h"
#include "kv/kv_trellis.h"

namespace rotor::cuda {

namespace {


template <class E>
__device__ inline float load_elem(const E* p);
template <>
__device__ inline float load_elem<float>(const float* p) {
    return *p;
}
template <>
__device__ inline float load_elem<__half>(const __half* p) {
    return __half2float(*p);
}
// Elements per storage unit: a row of d elements is d / kUnitElems<E> units of E.
template <class E>
inline constexpr int kUnitElems = 1;
template <>
inline constexpr int kUnitElems<block_q8_0> = QK8_0;
template <>
inline constexpr int kUnitElems<block_q4_0> = QK4_0;
template <>
inline constexpr int kUnitElems<block_q4_1> = QK4_1;
template <>
inline constexpr int kUnitElems<block_q5_0> = QK5_0;
template <>
inline constexpr int kUnitElems<block_q5_1> = QK5_1;
template <>
inline constexpr int kUnitElems<block_iq4_nl> = QK4_NL;

// The 4-bit code of element e (0..31) of a block of 16 code bytes: low nibbles first, then high.
__device__ inline int nibble(const uint8_t* qs, int e) {
    return e < 16 ? (qs[e] & 0x0F) : (qs[e - 16] >> 4);
}
// Element e's fifth bit (q5_0 / q5_1: bit e of the block's 32-bit qh).
__device__ inline int fifth_bit(const uint8_t* qh, int e) {
    return (qh[e / 8] >> (e % 8)) & 1;
}

// Code of element e (0..31) of a block, as the float it stands for before the scale (element =
// d * code + block_min); the layouts are blocks.h's, the values chunk_decode.h's.
__device__ inline float block_code(const block_q8_0& b, int e) { return (float)b.qs[e]; }
__device__ inline float block_code(const block_q4_0& b, int e) {
    return (float)(nibble(b.qs, e) - 8);
}
__device__ inline float block_code(const block_q4_1& b, int e) {
    return (float)nibble(b.qs, e);
}
__device__ inline float block_code(const block_q5_0& b, int e) {
    return (float)((nibble(b.qs, e) | fifth_bit(b.qh, e) << 4) - 16);
}
__device__ inline float block_code(const block_q5_1& b, int e) {
    return (float)(nibble(b.qs, e) | fifth_bit(b.qh, e) << 4);
}
__device__ inline float block_code(const block_iq4_nl& b, int e) {
    return (float)chunk_detail::iq4nl(nibble(b.qs, e));
}
template <class B>
__device__ inline float block_min(const B& b) {
    if constexpr (std::is_same_v<B, block_q4_1> || std::is_same_v<B, block_q5_1>)
        return fp16_to_f32(b.m);
    else
        return 0.0f;
}

// Element e of a row of units.
template <class E>
__device__ inline float row_elem(const E* row, int e) {
    if constexpr (kUnitElems<E> == 1) {
        return load_elem(row + e);
    } else {
        const E& b = row[e / kUnitElems<E>];
        return fp16_to_f32(b.d) * block_code(b, e % kUnitElems<E>) + block_min(b);
    }
}

// PL consecutive elements starting at e0 (a multiple of PL; PL divides 32, so they lie in one block)
// of a row of blocks: the scale once, the codes with 2-byte loads (blocks are 2-byte aligned).
template <int PL>
__device__ inline void load_block_run(const block_q8_0* row, int e0, float* out) {
    const block_q8_0& b = row[e0 / QK8_0];
    const float d = fp16_to_f32(b.d);
    const uint16_t* c = reinterpret_cast<const uint16_t*>(b.qs + e0 % QK8_0);
#pragma unroll
    for (int i = 0; i < PL / 2; i++) {
        const uint16_t w = c[i];
        out[2 * i] = d * (float)(int8_t)(w & 0xFF);
        out[2 * i + 1] = d * (float)(int8_t)(w >> 8);
    }
}
template <int PL>
__device__ inline void load_block_run(const block_q4_0* row, int e0, float* out) {
    const block_q4_0& b = row[e0 / QK4_0];
    const float d = fp16_to_f32(b.d);
    const int off = e0 % QK4_0, shift = off < QK4_0 / 2 ? 0 : 4;
    const uint16_t* c = reinterpret_cast<const uint16_t*>(b.qs + off % (QK4_0 / 2));
#pragma unroll
    for (int i = 0; i < PL / 2; i++) {
        const uint16_t w = c[i];
        out[2 * i] = d * (float)((int)((w >> shift) & 0x0F) - 8);
        out[2 * i + 1] = d * (float)((int)((w >> (8 + shift)) & 0x0F) - 8);
    }
}

// The other block types element by element (their rows run on this kernel only where the tensor-core
// kernels do not take them: heads other than 64 / 128 / 256, keys from values).
template <int PL, class B>
__device__ inline void load_block_run(const B* row, int e0, float* out) {
    const B& b = row[e0 / kUnitElems<B>];
    const float d = fp16_to_f32(b.d), m = block_min(b);
#pragma unroll
    for (int i = 0; i < PL; i++) out[i] = d * block_code(b, (e0 + i) % kUnitElems<B>) + m;
}

// A tcqK row (src/kv/kv_trellis.h): {fp16 scale; circular code string}; attention reads it through
// these helpers with the table in shared memory. K is a kernel argument, not a template parameter:
// one set of kernels serves the three widths (a few integer operations per 8 elements).
struct TcqRow {};
template <class E>
inline constexpr bool kIsTcq = std::is_same_v<E, TcqRow>;

__device__ inline float tcq_scale(const uint8_t* row) {
    return fp16_to_f32(*reinterpret_cast<const uint16_t*>(row));
}
// Element e of a row of d elements (the byte-wise reference read).
__device__ inline float tcq_elem(const uint8_t* row, int d, int K, int e, const float* table) {
    return tcq_scale(row) * table[kvq::trellis_window(row + 2, d * K / 8, e, K)];
}
// PL consecutive elements from e0 = lane * PL: 16-bit words (rows and code strings start at even bytes,
// and hold an even number of bytes when d is a power of two >= 16), 8 elements per 64-bit window. K is
// a template argument: with PL * K a multiple of 16 every shift is a constant (with K at run time,
// Qwen3.5-27B with tcq4 at 112K decoded 38.4 tok/s against 41.2 with this, H200, 2026-11-30).
template <int PL, int K>
__device__ inline void tcq_load_run_k(const uint8_t* row, int d, int e0, const float* table, float* out) {
    const float sc = tcq_scale(row);
    const uint16_t* w = reinterpret_cast<const uint16_t*>(row + 2);
    const int nw = d * K / 16;
    constexpr bool kWordAligned = PL * K % 16 == 0;  // e0 * K is then a multiple of 16
    const int lane_w = kWordAligned ? e0 * K / 16 : 0;
#pragma unroll
    for (int c0 = 0; c0 < PL; c0 += 8) {
        const int w0 = kWordAligned ? lane_w + c0 * K / 16 : (e0 + c0) * K / 16;
        uint64_t bits = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int wi = w0 + j;
            bits |= (uint64_t)w[wi < nw ? wi : wi % nw] << (16 * j);  // past the end: the string wraps
        }
#pragma unroll
        for (int i = 0; i < (PL - c0 < 8 ? PL - c0 : 8); i++) {
            // at most 15 + 7 K: the window ends by bit 55
            const int sh = kWordAligned ? (c0 + i) * K - 16 * (c0 * K / 16) : (e0 + c0 + i) * K - 16 * w0;
            out[c0 + i] = sc * table[(int)((bits >> sh) & (kvq::kTrellisStates - 1))];
        }
    }
}
template <int PL>
__device__ inline void tcq_load_run(const uint8_t* row, int d, int K, int e0, const float* table, float* out) {
    if (K == 4)
        tcq_load_run_k<PL, 4>(row, d, e0, table, out);
    else if (K == 3)
        tcq_load_run_k<PL, 3>(row, d, e0, table, out);
    else
        tcq_load_run_k<PL, 2>(row, d, e0, table, out);
}

// A tbq row (kv_turbo.h): {fp16 scale; packed codes}; attention reads it with the codebook's centroids
// in shared memory.
struct TbqRow {};
template <class E>
inline constexpr bool kIsTbq = std::is_same_v<E, TbqRow>;
// A RotorQuant row (kv_rotorquant.h): blocks of 128 {fp16 scale; packed codes}, read with the type's
// centroids in shared memory.
struct RqRow {};
template <class E>
inline constexpr bool kIsRq = std::is_same_v<E, RqRow>;
// tcq, tbq and RotorQuant rows: a scale times a value the block looks up in a table in shared memory
template <class E>
inline constexpr bool kIsCoded = kIsTcq<E> || kIsTbq<E> || kIsRq<E>;
template <class E>
inline constexpr int kCodeTableSize = kIsTcq<E> ? kvq::kTrellisStates : (kIsTbq<E> || kIsRq<E> ? 16 : 1);
template <class E>
__host__ __device__ inline uint64_t coded_row_bytes(int d, int bits) {
    if constexpr (kIsTcq<E>)
        return kvq::trellis_row_bytes(d, bits);
    else if constexpr (kIsRq<E>)
        return (uint64_t)(d / kRqBlock) * rotorquant_block_bytes(bits);
    else
        return kvq::turbo_row_bytes(d, bits);
}
// Element e of a RotorQuant row.
__device__ inline float rq_elem(const uint8_t* row, int bits, int e, const float* centroids) {
    const uint8_t* blk = row + (e / kRqBlock) * rotorquant_block_bytes(bits);
    return tcq_scale(blk) * centroids[kvq::packed_code(bits, blk + 2, kRqBlock, e % kRqBlock)];
}
// PL consecutive elements from e0 = lane * PL (PL divides 128: one block).
template <int PL>
__device__ inline void rq_load_run(const uint8_t* row, int bits, int e0, const float* centroids, float* out) {
    const uint8_t* blk = row + (e0 / kRqBlock) * rotorquant_block_bytes(bits);
    const float sc = tcq_scale(blk);
#pragma unroll
    for (int i = 0; i < PL; i++)
        out[i] = sc * centroids[kvq::packed_code(bits, blk + 2, kRqBlock, (e0 + i) % kRqBlock)];
}

__device__ inline float tbq_elem(const uint8_t* row, int d, int bits, int e, const float* centroids) {
    return tcq_scale(row) * centroids[kvq::packed_code(bits, row + 2, d, e)];
}
// PL consecutive elements from e0 = lane * PL.
template <int PL>
__device__ inline void tbq_load_run(const uint8_t* row, int d, int bits, int e0, const float* centroids, float* out) {
    const float sc = tcq_scale(row);
#pragma unroll
    for (int i = 0; i < PL; i++) out[i] = sc * centroids[kvq::packed_code(bits, row + 2, d, e0 + i)];
}

constexpr int kMaxHeadDim = 512;

template <class E>
__device__ inline E store_elem(float v);
template <>
__device__ inline float store_elem<float>(float v) {
    return v;
}
template <>
__device__ inline __half store_elem<__half>(float v) {
    return __float2half_rn(v);
}

template <class E>
__global__ void kv_store_kernel(E* K, E* V, int hkv, int dk, int dv, int ctx, const float* __restrict__ k,
                                const float* __restrict__ v, const int32_t* __restrict__ seq,
                                const int32_t* __restrict__ pos) {
    const int t = blockIdx.x;
    const size_t slot = (size_t)seq[t] * ctx + pos[t] % ctx;  // a ring on sliding-window layers
    if (K)  // null where the key comes from the value
        for (int i = threadIdx.x; i < hkv * dk; i += blockDim.x) K[slot * hkv * dk + i] = store_elem<E>(k[(size_t)t * hkv * dk + i]);
    for (int i = threadIdx.x; i < hkv * dv; i += blockDim.x) V[slot * hkv * dv + i] = store_elem<E>(v[(size_t)t * hkv * dv + i]);
}

// Quantizes 32 values (one per lane) into a block with the same float operations as the CPU's
// formats (q_q8_0, q_q4_0), so an unrotated cache holds the CPU cache's exact bytes.
__device__ inline void quantize_block(float x, int lane, block_q8_0& dst) {
    float amax = fabsf(x);
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    dst.qs[lane] = (int8_t)fminf(fmaxf(roundf(x * id), -128.0f), 127.0f);
    if (lane == 0) dst.d = f32_to_fp16(d);
}
// quant::trunc_clamp (quantize_impl.h) for lo = 0
__device__ inline int trunc_clamp_to(float v, int hi) {
    return !(v > 0.0f) ? 0 : (!(v < (float)hi) ? hi : (int)v);
}
// The signed value of largest magnitude of the warp's 32 (the first one on ties, as the CPU's loops keep).
__device__ inline float warp_signed_absmax(float x, int lane) {
    float amax = fabsf(x), mx = x;
    int at = lane;
    for (int o = 16; o > 0; o >>= 1) {
        const float a2 = __shfl_xor_sync(0xffffffffu, amax, o), m2 = __shfl_xor_sync(0xffffffffu, mx, o);
        const int at2 = __shfl_xor_sync(0xffffffffu, at, o);
        if (a2 > amax || (a2 == amax && at2 < at)) amax = a2, mx = m2, at = at2;
    }
    return mx;
}
// Lane e's 4-bit code q into byte e % 16 of qs (low nibble for e < 16, high for the rest).
__device__ inline void pack_nibbles(int q, int lane, uint8_t* qs) {
    const int hi = __shfl_down_sync(0xffffffffu, q & 0x0F, 16);
    if (lane < 16) qs[lane] = (uint8_t)((q & 0x0F) | (hi << 4));
}
// Every lane's fifth code bit into the 32-bit qh (bit e = element e), as q_q5_0 / q_q5_1 store it.
__device__ inline void pack_fifth_bits(int q, int lane, uint8_t* qh) {
    const uint32_t bits = __ballot_sync(0xffffffffu, (q >> 4) & 1);
    if (lane < 4) qh[lane] = (uint8_t)(bits >> (8 * lane));
}
// q_q4_0 / q_q5_0: d = max / -2^(bits-1), codes trunc(x / d + 2^(bits-1) + 0.5) clamped.
__device__ inline void quantize_block(float x, int lane, block_q4_0& dst) {
    const float d = warp_signed_absmax(x, lane) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const int q =
        trunc_clamp_to(__fadd_rn(__fmul_rn(x, id), 8.5f), 15);  // no FMA: the CPU rounds the product
    pack_nibbles(q, lane, dst.qs);
    if (lane == 0) dst.d = f32_to_fp16(d);
}
__device__ inline void quantize_block(float x, int lane, block_q5_0& dst) {
    const float d = warp_signed_absmax(x, lane) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const int q = trunc_clamp_to(__fadd_rn(__fmul_rn(x, id), 16.5f), 31);
    pack_nibbles(q, lane, dst.qs);
    pack_fifth_bits(q, lane, dst.qh);
    if (lane == 0) dst.d = f32_to_fp16(d);
}
// q_q4_1 / q_q5_1: codes 0 .. 2^bits - 1 over [min, max], d = (max - min) / (2^bits - 1).
template <int Bits, class B>
__device__ inline void quantize_block_min(float x, int lane, B& dst) {
    float lo = x, hi = x;
    for (int o = 16; o > 0; o >>= 1) {
        lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, o));
        hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, o));
    }
    constexpr int kMax = (1 << Bits) - 1;
    const float d = (hi - lo) / kMax;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const int q = trunc_clamp_to(__fadd_rn(__fmul_rn(x - lo, id), 0.5f), kMax);
    pack_nibbles(q, lane, dst.qs);
    if constexpr (Bits == 5) pack_fifth_bits(q, lane, dst.qh);
    if (lane == 0) {
        dst.d = f32_to_fp16(d);
        dst.m = f32_to_fp16(lo);
    }
}
__device__ inline void quantize_block(float x, int lane, block_q4_1& dst) {
    quantize_block_min<4>(x, lane, dst);
}
__device__ inline void quantize_block(float x, int lane, block_q5_1& dst) {
    quantize_block_min<5>(x, lane, dst);
}

// ggml's best_index_int8 over the iq4_nl code book (quantize_kquants.cpp): the nearest value, ties up.
__device__ inline int iq4nl_best_index(float x) {
    if (x <= (float)chunk_detail::iq4nl(0)) return 0;
    if (x >= (float)chunk_detail::iq4nl(15)) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        const int mav = (ml + mu) / 2;
        if (x < (float)chunk_detail::iq4nl(mav))
            mu = mav;
        else
            ml = mav;
    }
    return x - (float)chunk_detail::iq4nl(mu - 1) < (float)chunk_detail::iq4nl(mu) - x ? mu - 1 : mu;
}
// quantize_iq4_nl (quant::quantize_iq4_impl for one block of 32, weights x^2, ntry 7), with the CPU's
// float operations in its order: lane 0 (the first fit) and lanes 1..15 (the tries) each sum over the
// 32 elements in order, then lane 0 walks the tries in order as the CPU's loop does.
__device__ inline void quantize_block(float x, int lane, block_iq4_nl& dst) {
    const float mx = warp_signed_absmax(x, lane);
    if (!(fabsf(mx) >= 1e-15f)) {  // ggml's GROUP_MAX_EPS: d = 0, every code the one nearest 0
        pack_nibbles(iq4nl_best_index(0.0f), lane, dst.qs);
        if (lane == 0) dst.d = f32_to_fp16(0.0f);
        return;
    }
    // lane 0: the first fit's 1 / d; lane 1 + i (i < 15): try itry = i - 7
    const float id = lane == 0 ? 1 / (-mx / (float)chunk_detail::iq4nl(0))
                               : (float)(lane - 8 + chunk_detail::iq4nl(0)) / mx;
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float xj = __shfl_sync(0xffffffffu, x, j);
        const float w = __fmul_rn(xj, xj);
        const float q = (float)chunk_detail::iq4nl(iq4nl_best_index(__fmul_rn(id, xj)));
        sumqx = __fadd_rn(sumqx, __fmul_rn(__fmul_rn(w, q), xj));
        sumq2 = __fadd_rn(sumq2, __fmul_rn(__fmul_rn(w, q), q));
    }
    // every lane walks the tries in the CPU's order (the same values everywhere)
    const float sx0 = __shfl_sync(0xffffffffu, sumqx, 0), s20 = __shfl_sync(0xffffffffu, sumq2, 0);
    float d = s20 > 0 ? sx0 / s20 : 0.0f;
    float best = __fmul_rn(d, sx0);
    for (int t = 1; t <= 15; t++) {
        const float sx = __shfl_sync(0xffffffffu, sumqx, t), s2 = __shfl_sync(0xffffffffu, sumq2, t);
        if (s2 > 0 && __fmul_rn(sx, sx) > __fmul_rn(best, s2)) {
            d = sx / s2;
            best = __fmul_rn(d, sx);
        }
    }
    const float idf = d != 0 ? 1 / d : 0.0f;
    pack_nibbles(iq4nl_best_index(__fmul_rn(idf, x)), lane, dst.qs);
    if (lane == 0) dst.d = f32_to_fp16(d);
}

// In-place orthonormal Walsh-Hadamard transform of n = 2^m floats in shared memory (Sylvester
// order, H_ij = (-1)^popcount(i & j) / sqrt(n), no signs: the CPU's *h formats); all threads of the
// block take part.
__device__ inline void hadamard_shared(float* x, int n) {
    for (int h = 1; h < n; h <<= 1) {
        __syncthreads();
        for (int i = threadIdx.x; i < n / 2; i += blockDim.x) {
            const int j = (i / h) * 2 * h + i % h;
            const float a = x[j], b = x[j + h];
            x[j] = a + b;
            x[j + h] = a - b;
        }
    }
    __syncthreads();
    const float s = rsqrtf((float)n);
    for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] *= s;
    __syncthreads();
}

// Quantize on write: one thread block per (token, KV head, K or V) row, one warp per block of 32;
// with Rotate, the row is first rotated by the Hadamard matrix of its size in shared memory.
template <class B, bool Rotate>
__global__ void kv_store_blocks_kernel(B* K, B* V, int hkv, int dk, int dv, int ctx, const float* __restrict__ k,
                                       const float* __restrict__ v, const int32_t* __restrict__ seq,
                                       const int32_t* __restrict__ pos) {
    __shared__ float row[kMaxHeadDim];
    const int t = blockIdx.x, h = blockIdx.y, which = K ? blockIdx.z : 1;  // V only: the key comes from it
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, warps = blockDim.x / kWarp;
    const size_t slot = (size_t)seq[t] * ctx + pos[t] % ctx;  // a ring on sliding-window layers
    const int d = which == 0 ? dk : dv;
    const float* x = (which == 0 ? k : v) + ((size_t)t * hkv + h) * d;
    B* dst = (which == 0 ? K : V) + (slot * hkv + h) * (d / 32);
    if constexpr (Rotate) {
        for (int i = threadIdx.x; i < d; i += blockDim.x) row[i] = x[i];
        hadamard_shared(row, d);
        x = row;
    }
    for (int b = warp; b < d / 32; b += warps) quantize_block(x[32 * b + lane], lane, dst[b]);
}

// Rotates n_rows rows of d floats in place by the Hadamard matrix (its own inverse); signs 1: D first
// (R x = H D x / sqrt(d)), 2: D last (R^T y = D H y / sqrt(d)), with the CPU's randomized signs.
__global__ void hadamard_rows_kernel(float* x, int d, int signs) {
    __shared__ float row[kMaxHeadDim];
    float* r = x + (size_t)blockIdx.x * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        row[i] = signs == 1 && kvq::hadamard_sign_negative(kvq::kSignSeed, d, i) ? -r[i] : r[i];
    hadamard_shared(row, d);
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        r[i] = signs == 2 && kvq::hadamard_sign_negative(kvq::kSignSeed, d, i) ? -row[i] : row[i];
}

constexpr int kSplitPositions = 256;  // positions per split-K part
constexpr int kAttnWarps = 4;

// Loads PL consecutive elements to floats with the widest aligned loads (16, 8 or 4 bytes).
template <class E, int PL>
__device__ inline void load_run(const E* p, float* out) {
    constexpr int kBytes = PL * (int)sizeof(E);
    if constexpr (kBytes % 16 == 0 || kBytes % 8 == 0 || kBytes % 4 == 0) {
        constexpr int kWord = kBytes % 16 == 0 ? 16 : (kBytes % 8 == 0 ? 8 : 4);
        constexpr int kWords = kBytes / kWord;
        constexpr int kPerWord = kWord / 4;  // 32-bit pieces per load
        const uint32_t* src = reinterpret_cast<const uint32_t*>(p);
#pragma unroll
        for (int wd = 0; wd < kWords; wd++) {
            uint32_t piece[kPerWord];
            if constexpr (kWord == 16) {
                const uint4 u = reinterpret_cast<const uint4*>(src)[wd];
                piece[0] = u.x, piece[1] = u.y, piece[2] = u.z, piece[3] = u.w;
            } else if constexpr (kWord == 8) {
                const uint2 u = reinterpret_cast<const uint2*>(src)[wd];
                piece[0] = u.x, piece[1] = u.y;
            } else {
                piece[0] = src[wd];
            }
#pragma unroll
            for (int k = 0; k < kPerWord; k++) {
                if constexpr (sizeof(E) == 4) {
                    out[wd * kPerWord + k] = __uint_as_float(piece[k]);
                } else {
                    const __half2 h = *reinterpret_cast<const __half2*>(&piece[k]);
                    const float2 f = __half22float2(h);
                    out[(wd * kPerWord + k) * 2] = f.x;
                    out[(wd * kPerWord + k) * 2 + 1] = f.y;
                }
            }
        }
    } else {
#pragma unroll
        for (int i = 0; i < PL; i++) out[i] = load_elem(p + i);
    }
}

// In-place orthonormal Walsh-Hadamard transform of a row of 32 * PL floats spread over a warp, PL
// consecutive elements per lane (element lane * PL + i): the butterflies of hadamard_shared, the
// low bits inside a lane, the high bits across lanes.
template <int PL>
__device__ inline void warp_hadamard(float (&x)[PL], int lane) {
#pragma unroll
    for (int h = 1; h < PL; h <<= 1)
#pragma unroll
        for (int i = 0; i < PL; i++)
            if (!(i & h)) {
                const float a = x[i], b = x[i + h];
                x[i] = a + b;
                x[i + h] = a - b;
            }
#pragma unroll
    for (int m = 1; m < kWarp; m <<= 1) {
        const bool upper = lane & m;
#pragma unroll
        for (int i = 0; i < PL; i++) {
            const float o = __shfl_xor_sync(0xffffffffu, x[i], m);
            x[i] = upper ? o - x[i] : x[i] + o;
        }
    }
    const float sc = rsqrtf((float)(kWarp * PL));
#pragma unroll
    for (int i = 0; i < PL; i++) x[i] *= sc;
}

constexpr int kMaxRopePairs = kMaxHeadDim / 2;

// sin and cos of the float angle a (RoPE's float product position * frequency, up to ~1e6): reduced by
// 2 pi in two FMA steps (float(2 pi) and its error, ~2e-7 absolute), then the hardware approximations
// (~5e-7 absolute on [-pi, pi]); sincosf's slow path for large angles cost more than the row itself.
__device__ inline void rope_sincos(float a, float* s, float* c) {
    const float k = rintf(a * 0.159154943091895336f);  // 1 / (2 pi)
    float r = fmaf(-k, 6.28318548202514648f, a);        // float(2 pi) = 2 pi + 1.7484556e-7
    r = fmaf(k, 1.7484556e-7f, r);
    __sincosf(r, s, c);
}

// What the kernel needs to derive keys from values (KvLayerView's key_from_value fields).
struct KeyFromValueArgs {
    const float* k_weight = nullptr;
    const float* inv_freq = nullptr;
    int n_rot = 0, rope_pairs = 0;
    bool rotated = false;  // the stored rows are H v: rotated back per position before the key is built
};

// One block per (KV head, query-head group, token, split): the query heads that share a KV head
// (GQA) are served together, so each K/V row is read once per group, not once per query head.
// Each warp runs an online softmax over its positions (two at a time, loads first), with the
// rows spread over its lanes: PL consecutive elements per lane when the head size is 32 * PL (wide
// loads), else elements lane + 32 i. The block merges its warps and writes (max, sum, acc[dv]) per
// query head and split. A sliding-window layer (window > 0) attends to positions (p - window, p] only,
// split from the window's first position, position j read from slot j % ctx of its ring.
// KFV (key from value): K is not read; the key of position j is RoPE_j(w (.) v_j) (v_j rotated back
// first for a rotated type). Its score needs no per-position rotation of the row: with c, s the cosine
// and sine of pair (e, e') = (e, e + n_rot / 2) at j, q . k_j = sum_e v_e (c a_e + s b_e) where
// a_e = q_e w_e and b_e = q_e' w_e, b_e' = -q_e w_e' (pairs past n_rot: a_e only). Each warp computes the
// cosines and sines of its position once into shared memory (rope_pairs / 32 per lane, rope_sincos).
template <class E, int PL, int GB, bool KFV>
__global__ void __launch_bounds__(kAttnWarps* kWarp)
    attention_split_kernel(const E* __restrict__ K, const E* __restrict__ V, int hkv, int dk, int dv, int ctx,
                           int window, const float* __restrict__ q, const int32_t* __restrict__ seq,
                           const int32_t* __restrict__ pos, int n_head, float scale, int n_split,
                           float* __restrict__ partial, KeyFromValueArgs kfv, const float* __restrict__ code_table,
                           int code_bits) {
    constexpr bool TQ = kIsCoded<E>;  // tcq / tbq: the code table in shared memory
    __shared__ float table[kCodeTableSize<E>];
    if constexpr (TQ) {
        for (int i = threadIdx.x; i < kCodeTableSize<E>; i += blockDim.x) table[i] = code_table[i];
        __syncthreads();
    }
    const int group = n_head / hkv, blocks_per_kv = (group + GB - 1) / GB;
    const int g = blockIdx.x / blocks_per_kv, h0 = g * group + (blockIdx.x % blocks_per_kv) * GB;
    const int nh = min(GB, g * group + group - h0);
    const int t = blockIdx.y, split = blockIdx.z;
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int n_kv = pos[t] + 1;
    const int first = window > 0 ? max(0, n_kv - window) : 0;
    const int begin = first + split * kSplitPositions, end = min(n_kv, begin + kSplitPositions);
    const bool contiguous = dk == kWarp * PL && dv == kWarp * PL;
    auto elem = [&](int i) { return contiguous ? lane * PL + i : lane + kWarp * i; };

    // qr: the scaled query (KFV: its a_e); qb: KFV's b_e
    constexpr int QB = KFV ? GB : 1;
    float qr[GB][PL], qb[QB][PL], acc[GB][PL], m[GB], l[GB];
    const int half = kfv.n_rot / 2;
    int pair[KFV ? PL : 1];  // KFV: the RoPE pair of element elem(i), -1 past the rotated pairs
    float sign[KFV && TQ ? PL : 1];  // KFV on tcq / tbq: D of R^T = D H / sqrt(d), per element
    if constexpr (KFV) {
#pragma unroll
        for (int i = 0; i < PL; i++) {
            const int e = elem(i), j = e < half ? e : e - half;
            pair[i] = (e < kfv.n_rot && j < kfv.rope_pairs) ? j : -1;
            if constexpr (TQ) sign[i] = kvq::hadamard_sign_negative(kvq::kSignSeed, dv, e) ? -1.0f : 1.0f;
        }
    }
#pragma unroll
    for (int j = 0; j < GB; j++) {
        const float* qh = q + ((size_t)t * n_head + h0 + j) * dk;
#pragma unroll
        for (int i = 0; i < PL; i++) {
            const int e = elem(i);
            const bool live = j < nh && e < dk;
            qr[j][i] = live ? qh[e] * scale : 0.0f;
            if constexpr (KFV) {
                const float w = live ? kfv.k_weight[e] : 0.0f;
                qr[j][i] *= w;
                float b = 0.0f;
                if (live && e < kfv.n_rot) b = e < half ? qh[e + half] * scale * w : -qh[e - half] * scale * w;
                qb[j][i] = b;
            }
            acc[j][i] = 0.0f;
        }
        m[j] = -INFINITY;
        l[j] = 0.0f;
    }
    // KFV: this lane's frequencies (pairs lane + 32 r) and its warp's cosines and sines
    constexpr int kFreqRegs = KFV ? kMaxRopePairs / kWarp : 1;
    float freq[kFreqRegs];
    __shared__ float sm_cos[KFV ? kAttnWarps : 1][KFV ? kMaxRopePairs : 1];
    __shared__ float sm_sin[KFV ? kAttnWarps : 1][KFV ? kMaxRopePairs : 1];
    if constexpr (KFV) {
#pragma unroll
        for (int r = 0; r < kFreqRegs; r++) {
            const int j = lane + kWarp * r;
            freq[r] = j < kfv.rope_pairs ? kfv.inv_freq[j] : 0.0f;
        }
    }

    const size_t base = (size_t)seq[t] * ctx;
    constexpr int U = 2;  // positions in flight per warp
    for (int p0 = begin + warp; p0 < end; p0 += kAttnWarps * U) {
        float kv[KFV ? 1 : U][PL], vv[U][PL];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = p0 + u * kAttnWarps;
            if (p >= end) break;
            constexpr int kU = kUnitElems<E>;
            const size_t slot = base + (p < ctx ? p : p % ctx);  // only ring positions wrap
            if constexpr (TQ) {
                const int tk = code_bits;
                const uint8_t* kr = KFV ? nullptr
                                        : reinterpret_cast<const uint8_t*>(K) + (slot * hkv + g) * coded_row_bytes<E>(dk, tk);
                const uint8_t* vr = reinterpret_cast<const uint8_t*>(V) + (slot * hkv + g) * coded_row_bytes<E>(dv, tk);
                if (contiguous) {
                    if constexpr (kIsTcq<E>) {
                        if constexpr (!KFV) tcq_load_run<PL>(kr, dk, tk, lane * PL, table, kv[u]);
                        tcq_load_run<PL>(vr, dv, tk, lane * PL, table, vv[u]);
                    } else if constexpr (kIsRq<E>) {
                        if constexpr (!KFV) rq_load_run<PL>(kr, tk, lane * PL, table, kv[u]);
                        rq_load_run<PL>(vr, tk, lane * PL, table, vv[u]);
                    } else {
                        if constexpr (!KFV) tbq_load_run<PL>(kr, dk, tk, lane * PL, table, kv[u]);
                        tbq_load_run<PL>(vr, dv, tk, lane * PL, table, vv[u]);
                    }
                } else {
                    auto coded_elem = [&](const uint8_t* row, int d, int e) {
                        if constexpr (kIsTcq<E>)
                            return tcq_elem(row, d, tk, e, table);
                        else if constexpr (kIsRq<E>)
                            return rq_elem(row, tk, e, table);
                        else
                            return tbq_elem(row, d, tk, e, table);
                    };
#pragma unroll
                    for (int i = 0; i < PL; i++) {
                        if constexpr (!KFV) kv[u][i] = elem(i) < dk ? coded_elem(kr, dk, elem(i)) : 0.0f;
                        vv[u][i] = elem(i) < dv ? coded_elem(vr, dv, elem(i)) : 0.0f;
                    }
                }
            } else {
                const E* kr = KFV ? nullptr : K + (slot * hkv + g) * (dk / kU);
                const E* vr = V + (slot * hkv + g) * (dv / kU);
                bool wide = false;
                if constexpr (kU == 1) {
                    if (contiguous) {
                        if constexpr (!KFV) load_run<E, PL>(kr + lane * PL, kv[u]);
                        load_run<E, PL>(vr + lane * PL, vv[u]);
                        wide = true;
                    }
                } else if constexpr (PL % 2 == 0 && kU % PL == 0) {
                    if (contiguous) {
                        if constexpr (!KFV) load_block_run<PL>(kr, lane * PL, kv[u]);
                        load_block_run<PL>(vr, lane * PL, vv[u]);
                        wide = true;
                    }
                }
                if (!wide) {
#pragma unroll
                    for (int i = 0; i < PL; i++) {
                        if constexpr (!KFV) kv[u][i] = elem(i) < dk ? row_elem(kr, elem(i)) : 0.0f;
                        vv[u][i] = elem(i) < dv ? row_elem(vr, elem(i)) : 0.0f;
                    }
                }
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = p0 + u * kAttnWarps;
            if (p >= end) break;
            float dots[GB];
            if constexpr (KFV) {
                // the row in the model's basis, this position's cosines and sines, then the GB scores
                float x[PL];
#pragma unroll
                for (int i = 0; i < PL; i++) x[i] = vv[u][i];
                // rotated types have power-of-two head sizes, so contiguous rows (key_from_value_refusal)
                if constexpr ((PL & (PL - 1)) == 0)
                    if (kfv.rotated) warp_hadamard<PL>(x, lane);
                if constexpr (TQ)
#pragma unroll
                    for (int i = 0; i < PL; i++) x[i] *= sign[i];
                __syncwarp();  // the previous position's cosines are read
#pragma unroll
                for (int r = 0; r < kFreqRegs; r++) {
                    const int j = lane + kWarp * r;
                    if (j < kfv.rope_pairs) rope_sincos((float)p * freq[r], &sm_sin[warp][j], &sm_cos[warp][j]);
                }
                __syncwarp();
#pragma unroll
                for (int j = 0; j < GB; j++) dots[j] = 0.0f;
#pragma unroll
                for (int i = 0; i < PL; i++) {
                    const float c = pair[i] >= 0 ? sm_cos[warp][pair[i]] : 1.0f;
                    const float sn = pair[i] >= 0 ? sm_sin[warp][pair[i]] : 0.0f;
#pragma unroll
                    for (int j = 0; j < GB; j++) dots[j] += x[i] * (c * qr[j][i] + sn * qb[j][i]);
                }
            } else {
#pragma unroll
                for (int j = 0; j < GB; j++) {
                    float d = 0.0f;
#pragma unroll
                    for (int i = 0; i < PL; i++) d += qr[j][i] * kv[u][i];
                    dots[j] = d;
                }
            }
#pragma unroll
            for (int j = 0; j < GB; j++) {
                const float d = warp_sum(dots[j]);
                const float m_new = fmaxf(m[j], d);
                const float corr = expf(m[j] - m_new), w = expf(d - m_new);
                l[j] = l[j] * corr + w;
#pragma unroll
                for (int i = 0; i < PL; i++) acc[j][i] = acc[j][i] * corr + w * vv[u][i];
                m[j] = m_new;
            }
        }
    }

    // merge the warps, one query head at a time
    __shared__ float sm_m[kAttnWarps], sm_l[kAttnWarps];
    __shared__ float sm_acc[kAttnWarps][PL * kWarp];
#pragma unroll
    for (int j = 0; j < GB; j++) {
        if (j >= nh) break;
        if (lane == 0) {
            sm_m[warp] = m[j];
            sm_l[warp] = l[j];
        }
#pragma unroll
        for (int i = 0; i < PL; i++) sm_acc[warp][elem(i)] = acc[j][i];
        __syncthreads();
        float* part = partial + (((size_t)t * n_head + h0 + j) * n_split + split) * (dv + 2);
        float M = -INFINITY;
        for (int w = 0; w < kAttnWarps; w++) M = fmaxf(M, sm_m[w]);
        for (int i = threadIdx.x; i < dv; i += blockDim.x) {
            float a = 0.0f;
            for (int w = 0; w < kAttnWarps; w++)
                if (sm_m[w] != -INFINITY) a += sm_acc[w][i] * expf(sm_m[w] - M);
            part[2 + i] = a;
        }
        if (threadIdx.x == 0) {
            float L = 0.0f;
            for (int w = 0; w < kAttnWarps; w++)
                if (sm_m[w] != -INFINITY) L += sm_l[w] * expf(sm_m[w] - M);
            part[0] = M;
            part[1] = L;
        }
        __syncthreads();
    }
}

template <class E, int PL>
void launch_attention_split(const KvLayerView& kv, const float* q, const int32_t* seq, const int32_t* pos, int n_tok,
                            int n_head, float scale, int ns, float* partial, cudaStream_t s) {
    // query heads per block: registers hold GB * PL query and output values per lane
    constexpr int GB = PL <= 4 ? 8 : (PL <= 8 ? 4 : 2);
    const int group = n_head / kv.n_head_kv;
    const dim3 grid((unsigned)(kv.n_head_kv * ((group + GB - 1) / GB)), (unsigned)n_tok, (unsigned)ns);
    const E* K = static_cast<const E*>(kv.k);
    const E* V = static_cast<const E*>(kv.v);
    const int code_bits = kIsTcq<E>   ? kv_elem_tcq_bits(kv.elem)
                          : kIsTbq<E> ? kv_elem_tbq_bits(kv.elem)
                                      : (kIsRq<E> ? kv_elem_rotorquant_bits(kv.elem) : 0);
    const float* table = kIsTcq<E>   ? tcq_device_table(code_bits)
                         : kIsTbq<E> ? tbq_device_codebook(code_bits)
                                     : (kIsRq<E> ? rotorquant_device_centroids(kv.elem) : nullptr);
    if (kv.key_from_value()) {
        const KeyFromValueArgs a{kv.k_weight, kv.rope_inv_freq, kv.n_rot, kv.rope_pairs, kv_elem_rotated(kv.elem)};
        attention_split_kernel<E, PL, GB, true><<<grid, kAttnWarps * kWarp, 0, s>>>(
            K, V, kv.n_head_kv, kv.head_dim_k, kv.head_dim_v, kv.ctx, kv.window, q, seq, pos, n_head, scale, ns, partial, a,
            table, code_bits);
    } else {
        attention_split_kernel<E, PL, GB, false><<<grid, kAttnWarps * kWarp, 0, s>>>(
            K, V, kv.n_head_kv, kv.head_dim_k, kv.head_dim_v, kv.ctx, kv.window, q, seq, pos, n_head, scale, ns, partial,
            KeyFromValueArgs{}, table, code_bits);
    }
}

template <class E>
void launch_attention_split_any(const KvLayerView& kv, const float* q, const int32_t* seq, const int32_t* pos,
                                int n_tok, int n_head, float scale, int ns, float* partial, cudaStream_t s) {
    const int d = std::max(kv.head_dim_k, kv.head_dim_v), pl = (d + kWarp - 1) / kWarp;
    if (pl <= 1) launch_attention_split<E, 1>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
    else if (pl <= 2) launch_attention_split<E, 2>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
    else if (pl <= 3) {
        if constexpr (kIsCoded<E>) throw Error("CUDA attention: tcq / tbq rows of " + std::to_string(d));  // powers of two only
        else launch_attention_split<E, 3>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
    }
    else if (pl <= 4) launch_attention_split<E, 4>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
    else if (pl <= 8) launch_attention_split<E, 8>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
    else launch_attention_split<E, 16>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
}

// One block per (query head, 32 output elements, token): M and L over the splits (each block of a head
// computes them again), then 8 warps take every 8th split, a lane per element, and the warps' sums are
// added in shared memory. Enough blocks to use the GPU and independent loads: one block per (head,
// token) with a thread per element walking the splits took ~0.3 ms at 112K context.
constexpr int kMergeThreads = 256;
constexpr int kMergeWarps = kMergeThreads / kWarp;

__global__ void __launch_bounds__(kMergeThreads)
    attention_merge_kernel(const float* __restrict__ partial, int n_head, int dv, int n_split, float* __restrict__ out) {
    __shared__ float red[kWarp];
    __shared__ float sums[kMergeWarps][kWarp];
    const int chunks = (dv + kWarp - 1) / kWarp;
    const int h = blockIdx.x / chunks, i = (blockIdx.x % chunks) * kWarp + threadIdx.x % kWarp, t = blockIdx.y;
    const int warp = threadIdx.x / kWarp;
    const size_t stride = (size_t)dv + 2;
    const float* part = partial + ((size_t)t * n_head + h) * n_split * stride;
    float M = -INFINITY;
    for (int s = threadIdx.x; s < n_split; s += kMergeThreads) M = fmaxf(M, part[s * stride]);
    M = block_max(M, red);
    float L = 0.0f;
    for (int s = threadIdx.x; s < n_split; s += kMergeThreads) {
        const float ms = part[s * stride];
        if (ms != -INFINITY) L += part[s * stride + 1] * expf(ms - M);
    }
    L = block_sum(L, red);
    float a = 0.0f;
    if (i < dv) {
#pragma unroll 4
        for (int s = warp; s < n_split; s += kMergeWarps) {
            const float ms = part[s * stride];
            if (ms != -INFINITY) a += part[s * stride + 2 + i] * expf(ms - M);
        }
    }
    sums[warp][threadIdx.x % kWarp] = a;
    __syncthreads();
    if (warp == 0 && i < dv) {
        float acc = 0.0f;
        for (int w = 0; w < kMergeWarps; w++) acc += sums[w][threadIdx.x];
        out[((size_t)t * n_head + h) * dv + i] = acc / L;
    }
}

}  // namespace

const char* kv_elem_name(KvElem e) {
    switch (e) {
        case KvElem::F32: return "f32";
        case KvElem::F16: return "f16";
        case KvElem::Q8_0: return "q8_0";
        case KvElem::Q4_0: return "q4_0";
        case KvElem::Q8_0H: return "q8_0h";
        case KvElem::Q4_0H: return "q4_0h";
        case KvElem::TCQ2: return "tcq2";
        case KvElem::TCQ3: return "tcq3";
        case KvElem::TCQ4: return "tcq4";
        case KvElem::TBQ2: return "tbq2";
        case KvElem::TBQ3: return "tbq3";
        case KvElem::TBQ4: return "tbq4";
        case KvElem::TBQ2NC: return "tbq2nc";
        case KvElem::TBQ3NC: return "tbq3nc";
        case KvElem::TBQ4NC: return "tbq4nc";
        case KvElem::Q4_1:
            return "q4_1";
        case KvElem::Q5_0:
            return "q5_0";
        case KvElem::Q5_1:
            return "q5_1";
        case KvElem::IQ4_NL:
            return "iq4_nl";
        case KvElem::Q4_1H:
            return "q4_1h";
        case KvElem::Q5_0H:
            return "q5_0h";
        case KvElem::Q5_1H:
            return "q5_1h";
        case KvElem::IQ4_NLH:
            return "iq4_nlh";
        case KvElem::PLANAR3_0:
            return "planar3_0";
        case KvElem::ISO3_0:
            return "iso3_0";
        case KvElem::PLANAR4_0:
            return "planar4_0";
        case KvElem::ISO4_0:
            return "iso4_0";
        case KvElem::PLANAR3_C:
            return "planar3_c";
        case KvElem::ISO3_C:
            return "iso3_c";
        case KvElem::PLANAR4_C:
            return "planar4_c";
        case KvElem::ISO4_C:
            return "iso4_c";
    }
    return "?";
}
size_t kv_row_bytes(KvElem e, int d) {
    switch (e) {
        case KvElem::F32: return (size_t)d * 4;
        case KvElem::F16: return (size_t)d * 2;
        case KvElem::Q8_0:
        case KvElem::Q8_0H: return (size_t)d / QK8_0 * sizeof(block_q8_0);
        case KvElem::Q4_0:
        case KvElem::Q4_0H: return (size_t)d / QK4_0 * sizeof(block_q4_0);
        case KvElem::TCQ2:
        case KvElem::TCQ3:
        case KvElem::TCQ4: return (size_t)kvq::trellis_row_bytes(d, kv_elem_tcq_bits(e));
        case KvElem::TBQ2:
        case KvElem::TBQ3:
        case KvElem::TBQ4:
        case KvElem::TBQ2NC:
        case KvElem::TBQ3NC:
        case KvElem::TBQ4NC: return (size_t)kvq::turbo_row_bytes(d, kv_elem_tbq_bits(e));
        case KvElem::Q4_1:
        case KvElem::Q4_1H:
            return (size_t)d / QK4_1 * sizeof(block_q4_1);
        case KvElem::Q5_0:
        case KvElem::Q5_0H:
            return (size_t)d / QK5_0 * sizeof(block_q5_0);
        case KvElem::Q5_1:
        case KvElem::Q5_1H:
            return (size_t)d / QK5_1 * sizeof(block_q5_1);
        case KvElem::IQ4_NL:
        case KvElem::IQ4_NLH:
            return (size_t)d / QK4_NL * sizeof(block_iq4_nl);
        case KvElem::PLANAR3_0:
        case KvElem::ISO3_0:
        case KvElem::PLANAR4_0:
        case KvElem::ISO4_0:
        case KvElem::PLANAR3_C:
        case KvElem::ISO3_C:
        case KvElem::PLANAR4_C:
        case KvElem::ISO4_C:
            return (size_t)(d / kRqBlock) * rotorquant_block_bytes(kv_elem_rotorquant_bits(e));
    }
    return 0;
}
int kv_elem_tcq_bits(KvElem e) {
    return e == KvElem::TCQ2 ? 2 : (e == KvElem::TCQ3 ? 3 : (e == KvElem::TCQ4 ? 4 : 0));
}
int kv_elem_tbq_bits(KvElem e) {
    switch (e) {
        case KvElem::TBQ2:
        case KvElem::TBQ2NC: return 2;
        case KvElem::TBQ3:
        case KvElem::TBQ3NC: return 3;
        case KvElem::TBQ4:
        case KvElem::TBQ4NC: return 4;
        default: return 0;
    }
}
bool kv_elem_block_min(KvElem e) {
    return e == KvElem::Q4_1 || e == KvElem::Q4_1H || e == KvElem::Q5_1 || e == KvElem::Q5_1H;
}
int kv_elem_rotorquant_bits(KvElem e) {
    switch (e) {
        case KvElem::PLANAR3_0:
        case KvElem::ISO3_0:
        case KvElem::PLANAR3_C:
        case KvElem::ISO3_C:
            return 3;
        case KvElem::PLANAR4_0:
        case KvElem::ISO4_0:
        case KvElem::PLANAR4_C:
        case KvElem::ISO4_C:
            return 4;
        default:
            return 0;
    }
}
bool kv_elem_rotorquant_iso(KvElem e) {
    return e == KvElem::ISO3_0 || e == KvElem::ISO4_0 || e == KvElem::ISO3_C || e == KvElem::ISO4_C;
}
bool kv_elem_rotorquant_corrected(KvElem e) {
    return e == KvElem::PLANAR3_C || e == KvElem::ISO3_C || e == KvElem::PLANAR4_C || e == KvElem::ISO4_C;
}
bool kv_elem_tbq_norm_corrected(KvElem e) { return e == KvElem::TBQ2NC || e == KvElem::TBQ3NC || e == KvElem::TBQ4NC; }
bool kv_elem_randomized(KvElem e) { return kv_elem_tcq_bits(e) > 0 || kv_elem_tbq_bits(e) > 0; }
bool kv_elem_rotated(KvElem e) {
    switch (e) {
        case KvElem::Q8_0H:
        case KvElem::Q4_0H:
        case KvElem::Q4_1H:
        case KvElem::Q5_0H:
        case KvElem::Q5_1H:
        case KvElem::IQ4_NLH:
            return true;
        default:
            return kv_elem_randomized(e) || kv_elem_rotorquant_bits(e) > 0;
    }
}
std::string kv_elem_refusal(KvElem e, int d) {
    if (d > kMaxHeadDim) return "head size " + std::to_string(d) + " is above the CUDA attention's 512";
    if (e == KvElem::F32 || e == KvElem::F16) return {};
    if (kv_elem_rotorquant_bits(e)) return rotorquant_refusal(e, d);
    if (kv_elem_randomized(e)) {
        if (d < 16 || (d & (d - 1)))
            return "KV type " + std::string(kv_elem_name(e)) +
                   " on the GPU needs a power-of-two head size of at least 16 (its Hadamard rotation; the CPU also "
                   "has orders 80 and 96)";
        if (const int k = kv_elem_tcq_bits(e)) return tcq_store_refusal(d, k);
        return tbq_refusal(d);
    }
    if (d % 32) return "KV type " + std::string(kv_elem_name(e)) + " on the GPU needs head sizes that are multiples of 32";
    if (kv_elem_rotated(e) && (d & (d - 1)))
        return "KV type " + std::string(kv_elem_name(e)) +
               " on the GPU needs a power-of-two head size (its Hadamard rotation; the CPU also has orders 80 and 96)";
    return {};
}
bool kv_elem_supports(KvElem e, int d) { return kv_elem_refusal(e, d).empty(); }

std::string key_from_value_refusal(const KvLayerView& kv) {
    const int d = kv.head_dim_k;
    if (kv.head_dim_v != d) return "keys derived from values need equal K and V head sizes";
    if (kv.n_rot < 0 || kv.n_rot > d || kv.n_rot % 2) return "RoPE dimensions " + std::to_string(kv.n_rot) + " do not fit head size " + std::to_string(d);
    if (kv.rope_pairs < 0 || kv.rope_pairs > kv.n_rot / 2 || kv.rope_pairs > kMaxRopePairs)
        return "rotated RoPE pairs " + std::to_string(kv.rope_pairs) + " out of range";
    if (!kv.k_weight || (kv.rope_pairs > 0 && !kv.rope_inv_freq)) return "key from value: k_weight or frequencies missing";
    if (kv_elem_rotorquant_bits(kv.elem))  // the kernel rotates rows back by Hadamard matrices only
        return "keys derived from values do not read RotorQuant (" + std::string(kv_elem_name(kv.elem)) +
               ") caches";
    return kv_elem_refusal(kv.elem, d);
}

int key_from_value_rope_pairs(const float* inv_freq, int n_rot, int n_ctx) {
    int pairs = 0;
    for (int j = 0; j < n_rot / 2; j++)
        if ((double)std::fabs(inv_freq[j]) * std::max(n_ctx, 1) >= 1e-6) pairs = j + 1;
    return pairs;
}

void hadamard_rows(float* x, int n_rows, int d, cudaStream_t s) {
    if (n_rows == 0) return;
    if (d > kMaxHeadDim || (d & (d - 1))) throw Error("CUDA Hadamard rotation: size must be a power of two <= 512");
    hadamard_rows_kernel<<<n_rows, 128, 0, s>>>(x, d, 0);
    check_launch("hadamard_rows");
}

void kv_rotate_rows(KvElem e, float* x, int n_rows, int d, bool back, cudaStream_t s) {
    if (!kv_elem_rotated(e)) throw Error(std::string("kv_rotate_rows: KV type ") + kv_elem_name(e) + " is not rotated");
    if (n_rows == 0) return;
    if (kv_elem_rotorquant_bits(e)) return rotorquant_rotate_rows(e, x, n_rows, d, back, s);
    if (d > kMaxHeadDim || (d & (d - 1))) throw Error("CUDA Hadamard rotation: size must be a power of two <= 512");
    hadamard_rows_kernel<<<n_rows, 128, 0, s>>>(x, d, kv_elem_randomized(e) ? (back ? 2 : 1) : 0);
    check_launch("kv_rotate_rows");
}

template <class B, bool Rotate>
void store_blocks(const KvLayerView& kv, const float* k, const float* v, const int32_t* seq,
                  const int32_t* pos, dim3 rows, cudaStream_t s) {
    kv_store_blocks_kernel<B, Rotate><<<rows, 128, 0, s>>>(static_cast<B*>(kv.k), static_cast<B*>(kv.v),
                                                           kv.n_head_kv, kv.head_dim_k, kv.head_dim_v, kv.ctx,
                                                           k, v, seq, pos);
}

void kv_store(const KvLayerView& kv, const float* k, const float* v, const int32_t* seq, const int32_t* pos, int n_tok,
              cudaStream_t s) {
    if (n_tok == 0) return;
    const int H = kv.n_head_kv, dk = kv.head_dim_k, dv = kv.head_dim_v;
    // block types: one thread block per K or V head row (V rows only where the key comes from the value)
    const dim3 rows((unsigned)n_tok, (unsigned)H, kv.k ? 2 : 1);
    switch (kv.elem) {
        case KvElem::F32:
            kv_store_kernel<float><<<n_tok, 256, 0, s>>>(static_cast<float*>(kv.k), static_cast<float*>(kv.v), H, dk, dv,
                                                        kv.ctx, k, v, seq, pos);
            break;
        case KvElem::F16:
            kv_store_kernel<__half><<<n_tok, 256, 0, s>>>(static_cast<__half*>(kv.k), static_cast<__half*>(kv.v), H, dk,
                                                         dv, kv.ctx, k, v, seq, pos);
            break;
        case KvElem::Q8_0:
            store_blocks<block_q8_0, false>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::Q8_0H:
            store_blocks<block_q8_0, true>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::Q4_0:
            store_blocks<block_q4_0, false>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::Q4_0H:
            store_blocks<block_q4_0, true>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::Q4_1:
            store_blocks<block_q4_1, false>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::Q4_1H:
            store_blocks<block_q4_1, true>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::Q5_0:
            store_blocks<block_q5_0, false>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::Q5_0H:
            store_blocks<block_q5_0, true>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::Q5_1:
            store_blocks<block_q5_1, false>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::Q5_1H:
            store_blocks<block_q5_1, true>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::IQ4_NL:
            store_blocks<block_iq4_nl, false>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::IQ4_NLH:
            store_blocks<block_iq4_nl, true>(kv, k, v, seq, pos, rows, s);
            break;
        case KvElem::PLANAR3_0:
        case KvElem::ISO3_0:
        case KvElem::PLANAR4_0:
        case KvElem::ISO4_0:
        case KvElem::PLANAR3_C:
        case KvElem::ISO3_C:
        case KvElem::PLANAR4_C:
        case KvElem::ISO4_C:
            kv_store_rotorquant(kv, k, v, seq, pos, n_tok, s);
            return;
        case KvElem::TCQ2:
        case KvElem::TCQ3:
        case KvElem::TCQ4: kv_store_tcq(kv, k, v, seq, pos, n_tok, s); return;
        case KvElem::TBQ2:
        case KvElem::TBQ3:
        case KvElem::TBQ4:
        case KvElem::TBQ2NC:
        case KvElem::TBQ3NC:
        case KvElem::TBQ4NC: kv_store_tbq(kv, k, v, seq, pos, n_tok, s); return;
    }
    check_launch("kv_store");
}

int attention_splits(int max_kv) { return (max_kv + kSplitPositions - 1) / kSplitPositions; }

size_t attention_partial_floats(int n_tok, int n_head, int head_dim_v, int max_kv) {
    return (size_t)n_tok * n_head * attention_splits(max_kv) * (head_dim_v + 2);
}

void attention(const KvLayerView& kv, const float* q, float* out, const int32_t* seq, const int32_t* pos, int n_tok,
               int n_head, float scale, int max_kv, float* partial, cudaStream_t s) {
    if (n_tok == 0) return;
    if (kv.n_head_kv <= 0 || n_head % kv.n_head_kv)
        throw Error("CUDA attention: query heads must be a multiple of KV heads");
    // A window bounds the positions a query sees; the split count still follows from max_kv alone
    // (a graph's key): ceil(min(max_kv, w) / 256) = min(splits(max_kv), splits(w)).
    const int window_positions = kv.window > 0 ? std::min(max_kv, kv.window) : max_kv;
    const int splits = attention_splits(window_positions);
    for (int d : {kv.head_dim_k, kv.head_dim_v})  // head size, block multiple, rotation order
        if (std::string why = kv_elem_refusal(kv.elem, d); !why.empty()) throw Error("CUDA attention: " + why);
    if (kv.key_from_value())
        if (std::string why = key_from_value_refusal(kv); !why.empty()) throw Error("CUDA attention: " + why);
    // Rotated types are read like their plain blocks: the caller rotates q before and the output after.
    int ns = splits;
    // the tensor-core decode kernels
    const bool tcq = attention_decode_tc_enabled() && attention_decode_tcq_supports(kv);
    if (tcq || (attention_decode_tc_enabled() && attention_decode_tc_supports(kv))) {
        // from the positions rounded up to 256, as the split: a graph replayed at any max_kv of its
        // key covers them all (<= splits: partial holds them)
        const int sp = attention_decode_split(kv, n_head, n_tok, max_kv);
        ns = (splits * kSplitPositions + sp - 1) / sp;
        if (tcq)
            attention_decode_tcq(kv, q, seq, pos, n_tok, n_head, scale, ns, sp, partial, s);
        else
            attention_decode_tc(kv, q, seq, pos, n_tok, n_head, scale, ns, sp, partial, s);
    } else switch (kv.elem) {
        case KvElem::F32: launch_attention_split_any<float>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s); break;
        case KvElem::F16: launch_attention_split_any<__half>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s); break;
        case KvElem::Q8_0:
        case KvElem::Q8_0H:
            launch_attention_split_any<block_q8_0>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
            break;
        case KvElem::Q4_0:
        case KvElem::Q4_0H:
            launch_attention_split_any<block_q4_0>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
            break;
        case KvElem::TCQ2:
        case KvElem::TCQ3:
        case KvElem::TCQ4: launch_attention_split_any<TcqRow>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s); break;
        case KvElem::TBQ2:
        case KvElem::TBQ3:
        case KvElem::TBQ4:
        case KvElem::TBQ2NC:
        case KvElem::TBQ3NC:
        case KvElem::TBQ4NC: launch_attention_split_any<TbqRow>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s); break;
        case KvElem::Q4_1:
        case KvElem::Q4_1H:
            launch_attention_split_any<block_q4_1>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
            break;
        case KvElem::Q5_0:
        case KvElem::Q5_0H:
            launch_attention_split_any<block_q5_0>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
            break;
        case KvElem::Q5_1:
        case KvElem::Q5_1H:
            launch_attention_split_any<block_q5_1>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
            break;
        case KvElem::IQ4_NL:
        case KvElem::IQ4_NLH:
            launch_attention_split_any<block_iq4_nl>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
            break;
        case KvElem::PLANAR3_0:
        case KvElem::ISO3_0:
        case KvElem::PLANAR4_0:
        case KvElem::ISO4_0:
        case KvElem::PLANAR3_C:
        case KvElem::ISO3_C:
        case KvElem::PLANAR4_C:
        case KvElem::ISO4_C:
            launch_attention_split_any<RqRow>(kv, q, seq, pos, n_tok, n_head, scale, ns, partial, s);
            break;
    }
    check_launch("attention_split");
    const unsigned chunks = (unsigned)((kv.head_dim_v + kWarp - 1) / kWarp);
    attention_merge_kernel<<<dim3((unsigned)n_head * chunks, (unsigned)n_tok), kMergeThreads, 0, s>>>(
        partial, n_head, kv.head_dim_v, ns, out);
    check_launch("attention_merge");
}

}  // namespace rotor::cuda
