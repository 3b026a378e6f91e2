// Tensor-core split-K decode attention over tcq and tbq rows (attention_decode_tcq.h). Both are {f16
// scale; codes} with element i = scale * table[code i]; they differ in where code i lies (tcq: the 12-bit
// window from bit i K of a circular string; tbq: kv_packed_codes.h's packed b-bit codes) and in the table
// (4096 windows against 2^b centroids). The text below says tcq; tbq differs only there.
//
// The block, warp and tile structure of attention_decode.cu's kernel (one block per KV head, group of
// up to 8 query heads, token and split; 4 warps, tiles of 16 positions; online softmax in base 2 with the
// query's power of two; the p' = 2^(s - m) <= 1 / d bound through the value scale's exponent; the 4
// warps merged into one split part). What differs, because a tcq row is {f16 scale; a circular bit
// string of d * K bits} and element i is scale * table[the 12 bits from bit i * K]:
//   - Rows are 2 + d K / 8 bytes, 2 mod 4, so they start at 2-byte boundaries. Each staged row is
//     copied in 4-byte words from the word boundary at or below it (the 2 bytes before an odd row
//     belong to the row before it). The word that ends an even row keeps 2 bytes (cp.async's
//     zero-filling source size), so no copy reads past the row. The row's phase (0 or 2) is kept beside
//     the ring.
//   - A operands are table values, exact in f32: the table is staged as f16 hi + lo pairs (16 KiB),
//     and each product is hi x (q hi + q lo) + lo x q hi (three mma; lo x lo is below 2^-22).
//   - Scales are per row, not per 32-element block: the key scale multiplies each position's score once,
//     and the value scale goes into the weights once per tile, not once per block.
//   - Keys: a lane's four dims of a k-step (4 t .. 4 t + 3, the same slot order as the block kernels'
//     queries) are one 12 + 3 K bit span at a bit offset fixed per lane. Three 16-bit words and a funnel
//     shift per element give it. Values: a lane's two dims of an m-tile (16 mt + 2 g, + 1) are one
//     12 + K bit span of two words.
// The query preparation, the softmax step and the merge of the warps are attention_decode_parts.cuh's,
// shared with attention_decode.cu.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "common/env_switch.h"
#include "cuda/attention_decode.h"
#include "cuda/attention_decode_parts.cuh"
#include "cuda/attention_decode_tcq.h"
#include "cuda/cp_async.cuh"
#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/kv_rotorquant.h"
#include "cuda/kv_trellis.h"
#include "cuda/kv_turbo.h"
#include "cuda/mma_f16.cuh"
#include "kv/kv_trellis.h"

namespace rotor::cuda {

namespace {

constexpr int kStages = 2;  // tiles in flight per warp

template <int D, bool Tbq>
struct TcqGeo {
    static constexpr int kBlocks = D / 32;
    static constexpr int kRowStride = D / 2 + 4;  // staged row: tcq4's 2 + D / 2 bytes, word-rounded, + phase
    static constexpr int kStageBytes = 2 * kTile * kRowStride;  // K rows, then V rows
    static constexpr int kRingBytes = kDecWarps * kStages * kStageBytes;
    static constexpr int kMergeBytes = kDecWarps * kHeadsPerBlock * D * 4;
    static constexpr int kArenaBytes = ((kRingBytes > kMergeBytes ? kRingBytes : kMergeBytes) + 15) / 16 * 16;
    static constexpr int kTableEntries = Tbq ? 16 : kvq::kTrellisStates;
    static constexpr int kTableBytes = kTableEntries * 4;  // f16 hi | lo << 16 per window / centroid
    static constexpr int kQFragBytes = kBlocks * 2 * kWarp * 16;
    static constexpr int kPBytes = kDecWarps * kTile * kHeadsPerBlock * 4;
    static constexpr int kPhaseBytes = kDecWarps * kStages * 2 * kTile;  // one byte per staged row
    static constexpr int kSmem =
        kArenaBytes + kTableBytes + kQFragBytes + kPBytes + 2 * kHeadsPerBlock * 4 + kPhaseBytes;
    static_assert(kRowStride % 4 == 0 && kQFragBytes % 16 == 0);
    static_assert(kSmem <= 99 * 1024, "tcq decode tile does not fit in 99 KiB (sm_86/89/120)");
};

// 16-bit code word j of a staged row's circular string of nw words.
__device__ inline uint32_t code_word(const uint8_t* codes, int j, int nw) {
    return *reinterpret_cast<const uint16_t*>(codes + 2 * (j < nw ? j : j - nw));
}

// tcq: the table entries of a lane's 4 key dims, windows from bit ok + i K of code word j0 on (steps
// start on words; the string wraps).
__device__ inline void tcq_key_entries(const uint8_t* codes, int j0, int ok, int kbits, int nw,
                                       const uint32_t* table, uint32_t (&t)[4]) {
    const uint32_t lo = code_word(codes, j0, nw) | (code_word(codes, j0 + 1, nw) << 16);
    const uint32_t hi = code_word(codes, j0 + 2, nw);
#pragma unroll
    for (int i = 0; i < 4; i++)
        t[i] = table[__funnelshift_r(lo, hi, ok + i * kbits) & (kvq::kTrellisStates - 1)];
}

// tbq: the table indices of N consecutive elements from e0 (a multiple of N) of a staged row's packed
// codes (kv_packed_codes.h: c-bit codes, c = 2 or 4, or for 3 bits a 2-bit array and a plane of third
// bits from bit 2 D). A read may take the 16-bit word after the string's end (the staged row's padding
// or the next staged row, inside the ring): those bits are masked off.
template <int N>
__device__ inline void tbq_indices(const uint8_t* codes, int e0, int bits, int d, uint32_t (&idx)[N]) {
    auto bits16 = [&](int off) {  // bits off .. off + 15 of the string (a word past its end: masked off)
        const uint16_t* w = reinterpret_cast<const uint16_t*>(codes) + (off >> 4);
        return ((uint32_t)w[0] | ((uint32_t)w[1] << 16)) >> (off & 15);
    };
    const int c = bits == 3 ? 2 : bits;
    const uint32_t lo = bits16(e0 * c), hi = bits == 3 ? bits16(2 * d + e0) : 0u;
#pragma unroll
    for (int i = 0; i < N; i++) idx[i] = ((lo >> (i * c)) & ((1u << c) - 1)) | (((hi >> i) & 1u) << 2);
}

template <int D, bool Tbq>
__global__ void __launch_bounds__(kDecWarps* kWarp, D == 128 ? 4 : 3)
    attention_decode_tcq_kernel(const uint8_t* __restrict__ K, const uint8_t* __restrict__ V, int hkv,
                                int ctx, int window, const float* __restrict__ q,
                                const int32_t* __restrict__ seq, const int32_t* __restrict__ pos, int n_head,
                                float scale, int n_split, int split_positions, float* __restrict__ partial,
                                const float* __restrict__ table_f32, int kbits) {
    using G = TcqGeo<D, Tbq>;
    constexpr int NB = G::kBlocks, RS = G::kRowStride;
    extern __shared__ __align__(16) uint8_t smem[];
    uint8_t* arena = smem;
    uint32_t* table = reinterpret_cast<uint32_t*>(smem + G::kArenaBytes);
    uint4* qfrag = reinterpret_cast<uint4*>(smem + G::kArenaBytes + G::kTableBytes);
    float* ps_all = reinterpret_cast<float*>(smem + G::kArenaBytes + G::kTableBytes + G::kQFragBytes);
    float* head_inv = ps_all + kDecWarps * kTile * kHeadsPerBlock;
    float* head_mul = head_inv + kHeadsPerBlock;
    uint8_t* phase_all = reinterpret_cast<uint8_t*>(head_mul + kHeadsPerBlock);

    const int RB = 2 + D * kbits / 8;  // bytes per stored row: 2 mod 4 at D = 128 / 256
    const int n_words = (RB + 2) / 4;  // staged 4-byte words per row
    const int nw16 = D * kbits / 16;   // 16-bit words of the code string

    const DecBlock blk(hkv, n_head, ctx, window, seq, pos, split_positions);
    const int g = blk.g, h0 = blk.h0, nh = blk.nh, t = blk.t, split = blk.split;
    const int warp = blk.warp, lane = blk.lane, lg = blk.lg, lt = blk.lt, wbegin = blk.wbegin,
              wend = blk.wend;
    const size_t base = blk.base;
    uint8_t* ring = arena + warp * kStages * G::kStageBytes;
    uint8_t* phase = phase_all + warp * kStages * 2 * kTile;  // [stage][row]
    float* ps = ps_all + warp * kTile * kHeadsPerBlock;
    const uint32_t ring_s = (uint32_t)__cvta_generic_to_shared(ring);

    // A tile's copies: the 32 raw rows of positions p0 .. p0 + 15 (K, then V), each in 4-byte words from
    // the boundary at or below it, at most two words per lane (33 at D = 256, tcq4 / tbq4).
    constexpr int kWordIters = (RS / 4 + kWarp - 1) / kWarp;
    auto issue_any = [&](int p0, int buf) {  // any tile: rows past wend zero-filled, ring positions wrapped
        for (int r32 = 0; r32 < 2 * kTile; r32++) {
            const int which = r32 / kTile, r = r32 % kTile;
            const bool valid = p0 + r < wend;
            const int p = valid ? p0 + r : p0;
            const size_t row = (base + (p < ctx ? p : p % ctx)) * hkv + g;  // only ring positions wrap
            const int ph = (int)(row & 1) * 2;  // RB = 2 mod 4: odd rows start 2 bytes into a word
            const uint8_t* src = (which ? V : K) + row * RB - ph;
            const uint32_t dst = ring_s + buf * G::kStageBytes + r32 * RS;
#pragma unroll
            for (int i = 0; i < kWordIters; i++) {
                const int w = lane + kWarp * i;
                if (w < n_words)
                    cp_async4_bytes(dst + 4 * w, src + 4 * w,
                                    !valid ? 0 : (w == n_words - 1 && ph == 0 ? 2 : 4));
            }
            if (lane == 0) phase[buf * 2 * kTile + r32] = (uint8_t)ph;
        }
        cp_async_commit();
    };
    // issue_full: 16 valid rows in consecutive slots, unrolled: row r is the first row plus r hkv rows,
    // its phase the first row's parity plus r hkv's (about a dozen instructions a row, where issue_any's
    // modulo and 64-bit products cost several times that; ncu: 4065 instructions per tile before)
    const int row_step = hkv * RB, step_parity = hkv & 1;
    auto issue_full = [&](size_t row0, int buf) {
        const uint8_t* k0 = K + row0 * RB;
        const uint8_t* v0 = V + row0 * RB;
        const int parity0 = (int)(row0 & 1);
#pragma unroll
        for (int r32 = 0; r32 < 2 * kTile; r32++) {
            const int r = r32 % kTile;
            const int ph = ((parity0 + r * step_parity) & 1) * 2;
            const uint8_t* src = (r32 < kTile ? k0 : v0) + r * row_step - ph;
            const uint32_t dst = ring_s + buf * G::kStageBytes + r32 * RS;
#pragma unroll
            for (int i = 0; i < kWordIters; i++) {
                const int w = lane + kWarp * i;
                if (w < n_words)
                    cp_async4_bytes(dst + 4 * w, src + 4 * w, w == n_words - 1 && ph == 0 ? 2 : 4);
            }
            if (lane == 0) phase[buf * 2 * kTile + r32] = (uint8_t)ph;
        }
        cp_async_commit();
    };
    auto issue = [&](int p0, int buf) {  // the raw K and V rows of positions p0 .. p0 + 15 (those < wend)
        const int s0 = p0 < ctx ? p0 : p0 % ctx;
        if (p0 + kTile <= wend && s0 + kTile <= ctx)
            issue_full((base + s0) * hkv + g, buf);
        else
            issue_any(p0, buf);
    };
    if (wbegin < wend) issue_any(wbegin, 0);

    // the code table as f16 hi | lo << 16 (table = hi + lo to ~2^-22)
    for (int i = threadIdx.x; i < G::kTableEntries; i += blockDim.x) {
        const float v = table_f32[i];
        const __half hi = __float2half_rn(v);
        const __half lo = __float2half_rn(v - __half2float(hi));
        table[i] = (uint32_t)__half_as_ushort(hi) | ((uint32_t)__half_as_ushort(lo) << 16);
    }
    prepare_query<D>(q, t, n_head, h0, nh, scale, head_mul, head_inv, qfrag);  // after the table: a barrier

    float o[D / 16][4];
#pragma unroll
    for (int i = 0; i < D / 16; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
    const float inv0 = head_inv[2 * lt], inv1 = head_inv[2 * lt + 1];
    // tcq: bit offsets in their words of dim 4 lt (keys; steps start on words) and 2 lg (values; m-tiles)
    [[maybe_unused]] const int ok = (4 * lt * kbits) & 15;
    [[maybe_unused]] const int ov = (2 * lg * kbits) & 15;
    const int rows[4] = {2 * lt, 2 * lt + 1, 2 * lt + 8, 2 * lt + 9};

    int buf = 0;
    for (int p0 = wbegin; p0 < wend; p0 += kTile, buf ^= 1) {
        const bool more = p0 + kTile < wend;
        if (more) issue(p0 + kTile, buf ^ 1);
        if (more)
            cp_async_wait<1>();
        else
            cp_async_wait<0>();
        __syncwarp();
        const uint8_t* Ks = ring + buf * G::kStageBytes;
        const uint8_t* Vs = Ks + kTile * RS;
        const uint8_t* ph = phase + buf * 2 * kTile;

        // the value scales' exponents (lanes 0..15: row lane) and the weights' scales
        float e_row = 0.0f;
        if (lane < kTile && p0 + lane < wend)
            e_row = (float)value_scale_exponent(fabsf(half_at(Vs + lane * RS + ph[kTile + lane])));
        const float e_a = __shfl_sync(0xffffffffu, e_row, lg), e_b = __shfl_sync(0xffffffffu, e_row, lg + 8);
        const bool live_a = p0 + lg < wend, live_b = p0 + lg + 8 < wend;

        // S^T = K Q^T: rows lg and lg + 8, heads 2 lt and 2 lt + 1
        const uint8_t* ka = Ks + lg * RS + ph[lg];
        const uint8_t* kb = Ks + (lg + 8) * RS + ph[lg + 8];
        float acc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
        for (int b = 0; b < NB; b++) {
#pragma unroll
            for (int s = 0; s < 2; s++) {
                uint32_t ta[4], tb[4];
                if constexpr (Tbq) {
                    uint32_t ia[4], ib[4];
                    tbq_indices<4>(ka + 2, 32 * b + 16 * s + 4 * lt, kbits, D, ia);
                    tbq_indices<4>(kb + 2, 32 * b + 16 * s + 4 * lt, kbits, D, ib);
#pragma unroll
                    for (int i = 0; i < 4; i++) ta[i] = table[ia[i]], tb[i] = table[ib[i]];
                } else {
                    const int j0 = ((32 * b + 16 * s + 4 * lt) * kbits) >> 4;
                    tcq_key_entries(ka + 2, j0, ok, kbits, nw16, table, ta);
                    tcq_key_entries(kb + 2, j0, ok, kbits, nw16, table, tb);
                }
                // A: rows lg / lg + 8, slot pairs (2t, 2t+1) = dims 4t, 4t+1 and (2t+8, 2t+9) = 4t+2, 4t+3
                const uint32_t ah[4] = {__byte_perm(ta[0], ta[1], 0x5410), __byte_perm(tb[0], tb[1], 0x5410),
                                        __byte_perm(ta[2], ta[3], 0x5410), __byte_perm(tb[2], tb[3], 0x5410)};
                const uint32_t al[4] = {__byte_perm(ta[0], ta[1], 0x7632), __byte_perm(tb[0], tb[1], 0x7632),
                                        __byte_perm(ta[2], ta[3], 0x7632), __byte_perm(tb[2], tb[3], 0x7632)};
                const uint4 f = qfrag[(2 * b + s) * kWarp + lane];
                const uint32_t qh[2] = {f.x, f.y}, ql[2] = {f.z, f.w};
                mma_16816(acc[s], ah, qh);
                mma_16816(acc[s], ah, ql);
                mma_16816(acc[s], al, qh);
            }
        }
        const float sk_a = half_at(ka), sk_b = half_at(kb);
        float sc[4];
        sc[0] = live_a ? (acc[0][0] + acc[1][0]) * sk_a * inv0 : -INFINITY;
        sc[1] = live_a ? (acc[0][1] + acc[1][1]) * sk_a * inv1 : -INFINITY;
        sc[2] = live_b ? (acc[0][2] + acc[1][2]) * sk_b * inv0 : -INFINITY;
        sc[3] = live_b ? (acc[0][3] + acc[1][3]) * sk_b * inv1 : -INFINITY;

        softmax_tile(sc, e_a, e_b, m_run, l_run, o);
        *reinterpret_cast<float2*>(ps + lg * kHeadsPerBlock + 2 * lt) = make_float2(sc[0], sc[1]);
        *reinterpret_cast<float2*>(ps + (lg + 8) * kHeadsPerBlock + 2 * lt) = make_float2(sc[2], sc[3]);
        __syncwarp();
        // B = p' x the value scale of each position (rows past wend: p' = 0 and a zero-filled scale)
        const uint8_t* vrow[4];
        float w[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            vrow[k] = Vs + rows[k] * RS + ph[kTile + rows[k]];
            w[k] = ps[rows[k] * kHeadsPerBlock + lg] * half_at(vrow[k]);
        }
        uint32_t bh[2], bl[2];
        split_pair(w[0], w[1], bh[0], bl[0]);
        split_pair(w[2], w[3], bh[1], bl[1]);

        // O^T += V^T P'^T: m-tile mt's rows lg / lg + 8 are dims 16 mt + 2 lg and + 1 (one window pair)
#pragma unroll
        for (int mt = 0; mt < D / 16; mt++) {
            uint32_t x0[4], x1[4];
            if constexpr (Tbq) {
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    uint32_t ix[2];
                    tbq_indices<2>(vrow[k] + 2, 16 * mt + 2 * lg, kbits, D, ix);
                    x0[k] = table[ix[0]], x1[k] = table[ix[1]];
                }
            } else {
                const int jv = ((16 * mt + 2 * lg) * kbits) >> 4;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const uint32_t lo =
                        code_word(vrow[k] + 2, jv, nw16) | (code_word(vrow[k] + 2, jv + 1, nw16) << 16);
                    x0[k] = table[(lo >> ov) & (kvq::kTrellisStates - 1)];
                    x1[k] = table[(lo >> (ov + kbits)) & (kvq::kTrellisStates - 1)];
                }
            }
            // A regs: (dim row, position pair): a0 = (lg; 2lt, 2lt+1), a1 = (lg+8; same), a2 / a3 = +8
            const uint32_t ah[4] = {__byte_perm(x0[0], x0[1], 0x5410), __byte_perm(x1[0], x1[1], 0x5410),
                                    __byte_perm(x0[2], x0[3], 0x5410), __byte_perm(x1[2], x1[3], 0x5410)};
            const uint32_t al[4] = {__byte_perm(x0[0], x0[1], 0x7632), __byte_perm(x1[0], x1[1], 0x7632),
                                    __byte_perm(x0[2], x0[3], 0x7632), __byte_perm(x1[2], x1[3], 0x7632)};
            mma_16816(o[mt], ah, bh);
            mma_16816(o[mt], ah, bl);
            mma_16816(o[mt], al, bh);
        }
        __syncwarp();  // this stage and ps are read before they are overwritten
    }

    // the rings are done: every warp waited for all its copies
    write_split_part<D>(o, m_run, l_run, arena, ps_all, partial, t, n_head, h0, nh, n_split, split);
}

template <int D, bool Tbq>
void launch_tcq(const KvLayerView& kv, const float* q, const int32_t* seq, const int32_t* pos, int n_tok,
                int n_head, float scale, int n_split, int split_positions, float* partial, cudaStream_t s) {
    using G = TcqGeo<D, Tbq>;
    auto kernel = attention_decode_tcq_kernel<D, Tbq>;
    smem_optin_once<attention_decode_tcq_kernel<D, Tbq>>(G::kSmem);
    // RotorQuant rows of 128 are tbq rows ({fp16 scale; 128 packed codes}, the same 3-bit planes) with the
    // type's own centroids
    const int rq_bits = kv_elem_rotorquant_bits(kv.elem);
    const int kbits = rq_bits ? rq_bits : (Tbq ? kv_elem_tbq_bits(kv.elem) : kv_elem_tcq_bits(kv.elem));
    const float* table = rq_bits ? rotorquant_device_centroids(kv.elem)
                                 : (Tbq ? tbq_device_codebook(kbits) : tcq_device_table(kbits));
    const int group = n_head / kv.n_head_kv;
    const dim3 grid((unsigned)(kv.n_head_kv * ((group + kHeadsPerBlock - 1) / kHeadsPerBlock)),
                    (unsigned)n_tok, (unsigned)n_split);
    kernel<<<grid, kDecWarps * kWarp, G::kSmem, s>>>(
        static_cast<const uint8_t*>(kv.k), static_cast<const uint8_t*>(kv.v), kv.n_head_kv, kv.ctx, kv.window,
        q, seq, pos, n_head, scale, n_split, split_positions, partial, table, kbits);
}

EnvSwitch g_tcq("ROTOR_DECODE_ATTENTION_TCQ", 1);  // =0: tcq / tbq layers on attention.cu's CUDA-core kernel
// =1: RotorQuant layers with heads of 128 on this kernel as tbq rows. Off: written and compiled, not yet run
// on a GPU (rotor-check-attention checks it with the switch on).
EnvSwitch g_rq("ROTOR_DECODE_ATTENTION_RQ", 0);

template <int D, bool Tbq>
int resident_blocks_of() {
    using G = TcqGeo<D, Tbq>;
    smem_optin_once<attention_decode_tcq_kernel<D, Tbq>>(G::kSmem);
    return (int)resident_blocks(attention_decode_tcq_kernel<D, Tbq>, kDecWarps * kWarp, G::kSmem);
}

}  // namespace

bool attention_decode_tcq_enabled() {
    return g_tcq.on();
}
void set_attention_decode_tcq_enabled(bool on) {
    g_tcq.set(on);
}

bool attention_decode_rq_enabled() {
    return g_rq.on();
}
void set_attention_decode_rq_enabled(bool on) {
    g_rq.set(on);
}

bool attention_decode_tcq_supports(const KvLayerView& kv) {
    const bool rq = kv_elem_rotorquant_bits(kv.elem) > 0;
    if (!attention_decode_tcq_enabled() || !(kv_elem_randomized(kv.elem) || (rq && g_rq.on()))) return false;
    const int d = kv.head_dim_k;
    if (kv.key_from_value() || kv.head_dim_v != d || !kv.k || !kv.v) return false;
    if (d != 128 && (rq || d != 256)) return false;  // RotorQuant: one block of 128 per row (one scale)
    return reinterpret_cast<uintptr_t>(kv.k) % 4 == 0 && reinterpret_cast<uintptr_t>(kv.v) % 4 == 0;
}

int attention_decode_tcq_resident_blocks(const KvLayerView& kv) {
    const bool tbq = kv_elem_tbq_bits(kv.elem) > 0 || kv_elem_rotorquant_bits(kv.elem) > 0;
    if (kv.head_dim_k == 128) return tbq ? resident_blocks_of<128, true>() : resident_blocks_of<128, false>();
    return tbq ? resident_blocks_of<256, true>() : resident_blocks_of<256, false>();
}

void attention_decode_tcq(const KvLayerView& kv, const float* q, const int32_t* seq, const int32_t* pos,
                          int n_tok, int n_head, float scale, int n_split, int split_positions,
                          float* partial, cudaStream_t s) {
    if (!attention_decode_tcq_supports(kv)) throw Error("CUDA tcq decode attention: layer not supported");
    if (split_positions % (kDecWarps * kTile))
        throw Error("CUDA tcq decode attention: split size must be a multiple of 64");
    const bool tbq = kv_elem_tbq_bits(kv.elem) > 0 || kv_elem_rotorquant_bits(kv.elem) > 0;
    const auto launch = kv.head_dim_k == 128 ? (tbq ? launch_tcq<128, true> : launch_tcq<128, false>)
                                             : (tbq ? launch_tcq<256, true> : launch_tcq<256, false>);
    launch(kv, q, seq, pos, n_tok, n_head, scale, n_split, split_positions, partial, s);
    check_launch("attention_decode_tcq");
}

}  // namespace rotor::cuda
