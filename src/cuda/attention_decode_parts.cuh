// The parts the tensor-core decode attention kernels share (attention_decode.cu over block and f16 rows,
// attention_decode_tcq.cu over tcq rows): the block's shape, the query as hi + lo fragments with a power
// of two per head, the online softmax step of a tile, and the merge of the warps into one split part.
// Each kernel decodes its own rows into mma operands between them.
#pragma once
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "cuda/device_common.cuh"
#include "cuda/mma_f16.cuh"

namespace rotor::cuda {

constexpr int kDecWarps = 4;
constexpr int kTile = 16;          // positions per tile (the mma's M for keys, K for values)
constexpr int kHeadsPerBlock = 8;  // query heads per block (the mma's N)
constexpr float kDecLog2e = 1.4426950408889634f;

// The dim behind fragment slot k (0..15) of k-step s of 32-dim group b, for the K operand: slots 2t, 2t+1,
// 2t+8, 2t+9 of lane quad t hold dims 4t .. 4t+3 of the step's 16 (q4_0: step 0 the low nibbles of
// bytes 0..15, step 1 the high nibbles; q8_0: bytes 16 s .. 16 s + 15; tcq: one bit span).
__device__ inline int k_slot_dim(int b, int s, int k) {
    const int t = (k % 8) / 2, hi = k / 8, j = k % 2;
    return 32 * b + 16 * s + 4 * t + 2 * hi + j;
}

// Where a block and its warp work: KV head g, its query heads h0 .. h0 + nh - 1 (blockIdx.x), token t
// (blockIdx.y), split (blockIdx.z) of split_positions, this warp's positions [wbegin, wend) (a quarter
// of the split; a sliding window counts from its first position) and its sequence's first cache row.
struct DecBlock {
    int g, h0, nh, t, split, warp, lane, lg, lt, wbegin, wend;
    size_t base;
    __device__ DecBlock(int hkv, int n_head, int ctx, int window, const int32_t* __restrict__ seq,
                        const int32_t* __restrict__ pos, int split_positions) {
        const int group = n_head / hkv, hblocks = (group + kHeadsPerBlock - 1) / kHeadsPerBlock;
        g = blockIdx.x / hblocks, h0 = g * group + (blockIdx.x % hblocks) * kHeadsPerBlock;
        nh = min(kHeadsPerBlock, g * group + group - h0);
        t = blockIdx.y, split = blockIdx.z;
        warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, lg = lane >> 2, lt = lane & 3;
        const int n_kv = pos[t] + 1;
        const int first = window > 0 ? max(0, n_kv - window) : 0;
        const int begin = first + split * split_positions, end = min(n_kv, begin + split_positions);
        const int per_warp = split_positions / kDecWarps;
        wbegin = begin + warp * per_warp, wend = min(end, wbegin + per_warp);
        base = (size_t)seq[t] * ctx;
    }
};

// Each head's power of two (|q * scale * log2 e| * 2^k <= 2^10, which f16 holds with room to spare)
// into head_mul / head_inv, then the query as the B operand of S^T = K Q^T in hi and lo parts: entry
// [b][s][lane] of qfrag = {hi(2t, 2t+1), hi(2t+8, 2t+9), lo(...), lo(...)} for head lane / 4 (zero past
// the block's nh heads). Both end at a block barrier.
template <int D>
__device__ inline void prepare_query(const float* __restrict__ q, int t, int n_head, int h0, int nh,
                                     float scale, float* head_mul, float* head_inv, uint4* qfrag) {
    constexpr int NB = D / 32;
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    for (int j = warp; j < kHeadsPerBlock; j += kDecWarps) {
        float amax = 0.0f;
        if (j < nh) {
            const float* qh = q + ((size_t)t * n_head + h0 + j) * D;
            for (int i = lane; i < D; i += kWarp) amax = fmaxf(amax, fabsf(qh[i] * scale * kDecLog2e));
        }
        amax = warp_max(amax);
        if (lane == 0) {
            int e = 0;
            if (amax > 0.0f && amax <= 3.0e38f) frexpf(amax, &e);  // amax < 2^e
            e = max(e, -100);
            head_mul[j] = ldexpf(1.0f, 10 - e);
            head_inv[j] = ldexpf(1.0f, e - 10);
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < NB * 2 * kWarp; i += blockDim.x) {
        const int b = i / (2 * kWarp), s = (i / kWarp) % 2, ln = i % kWarp, hj = ln >> 2, tq = ln & 3;
        float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (hj < nh) {
            const float* qh = q + ((size_t)t * n_head + h0 + hj) * D;
            const float mul = scale * kDecLog2e * head_mul[hj];
            const int ks[4] = {2 * tq, 2 * tq + 1, 2 * tq + 8, 2 * tq + 9};
#pragma unroll
            for (int k = 0; k < 4; k++) v[k] = qh[k_slot_dim(b, s, ks[k])] * mul;
        }
        uint4 f;
        split_pair(v[0], v[1], f.x, f.z);
        split_pair(v[2], v[3], f.y, f.w);
        qfrag[i] = f;
    }
    __syncthreads();
}

// One tile's online softmax per head column (this lane's scores sc: rows lg, lg + 8 of heads 2 lt,
// 2 lt + 1, in base 2, -inf where masked) with the max over s + e (the value scales' exponents e_a /
// e_b of the two rows, so that p' times the scale stays <= 1): sc becomes p', the running max and sum
// move, and the output fragments o (NT m-tiles) are rescaled where the max grew.
template <int NT>
__device__ inline void softmax_tile(float (&sc)[4], float e_a, float e_b, float (&m_run)[2],
                                    float (&l_run)[2], float (&o)[NT][4]) {
    float corr[2];
#pragma unroll
    for (int c = 0; c < 2; c++) {
        float mx = fmaxf(sc[c] + e_a, sc[2 + c] + e_b);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
        const float m_new = fmaxf(m_run[c], mx);
        corr[c] = exp2f(m_run[c] - m_new);  // 0 on the first tile
        m_run[c] = m_new;
        sc[c] = exp2f(sc[c] - m_new);
        sc[2 + c] = exp2f(sc[2 + c] - m_new);
        l_run[c] = l_run[c] * corr[c] + sc[c] + sc[2 + c];
    }
    if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f)) {
#pragma unroll
        for (int i = 0; i < NT; i++) {
            o[i][0] *= corr[0];
            o[i][1] *= corr[1];
            o[i][2] *= corr[0];
            o[i][3] *= corr[1];
        }
    }
}

// The block's split part: each warp's column sums, then the 4 warps merged in the arena (m-tile i's
// rows lg / lg + 8 are dims 16 i + 2 lg and + 1) and written as (max in natural-log units, sum,
// unnormalized output) per query head: attention.cu's layout. The caller's rings must be done (every
// warp waited for all its copies); ps_all holds kDecWarps * kHeadsPerBlock * 2 floats.
template <int D>
__device__ inline void write_split_part(const float (&o)[D / 16][4], const float (&m_run)[2],
                                        float (&l_run)[2], uint8_t* arena, float* ps_all,
                                        float* __restrict__ partial, int t, int n_head, int h0, int nh,
                                        int n_split, int split) {
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, lg = lane >> 2, lt = lane & 3;
    // the warp's column sums over its 8 row groups
#pragma unroll
    for (int c = 0; c < 2; c++)
        for (int x = 4; x < kWarp; x <<= 1) l_run[c] += __shfl_xor_sync(0xffffffffu, l_run[c], x);

    __syncthreads();
    float* sm_o = reinterpret_cast<float*>(arena);  // [warp][head][D]
    float* sm_m = ps_all;                           // [warp][head], [warp][head] sums after
    float* sm_l = ps_all + kDecWarps * kHeadsPerBlock;
#pragma unroll
    for (int i = 0; i < D / 16; i++) {
        const int dim = 16 * i + 2 * lg;
        float* ow = sm_o + (size_t)warp * kHeadsPerBlock * D;
        ow[(2 * lt) * D + dim] = o[i][0];
        ow[(2 * lt + 1) * D + dim] = o[i][1];
        ow[(2 * lt) * D + dim + 1] = o[i][2];
        ow[(2 * lt + 1) * D + dim + 1] = o[i][3];
    }
    if (lg == 0) {
        for (int c = 0; c < 2; c++) {
            sm_m[warp * kHeadsPerBlock + 2 * lt + c] = m_run[c];
            sm_l[warp * kHeadsPerBlock + 2 * lt + c] = l_run[c];
        }
    }
    __syncthreads();
    constexpr float kLn2 = 0.6931471805599453f;
    for (int j = 0; j < nh; j++) {
        float M = -INFINITY;
        for (int w = 0; w < kDecWarps; w++) M = fmaxf(M, sm_m[w * kHeadsPerBlock + j]);
        float* part = partial + (((size_t)t * n_head + h0 + j) * n_split + split) * (D + 2);
        for (int i = threadIdx.x; i < D; i += blockDim.x) {
            float a = 0.0f;
            for (int w = 0; w < kDecWarps; w++) {
                const float mw = sm_m[w * kHeadsPerBlock + j];
                if (mw != -INFINITY) a += sm_o[((size_t)w * kHeadsPerBlock + j) * D + i] * exp2f(mw - M);
            }
            part[2 + i] = a;
        }
        if (threadIdx.x == 0) {
            float L = 0.0f;
            for (int w = 0; w < kDecWarps; w++) {
                const float mw = sm_m[w * kHeadsPerBlock + j];
                if (mw != -INFINITY) L += sm_l[w * kHeadsPerBlock + j] * exp2f(mw - M);
            }
            part[0] = M == -INFINITY ? -INFINITY : M * kLn2;  // natural-log units, as attention.cu's parts
            part[1] = L;
        }
    }
}

}  // namespace rotor::cuda
