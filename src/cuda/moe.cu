// Routed experts on the GPU (moe.h): the router's top-k and the expert FFNs.
//
// The FFNs run on a table of "entries": an entry is one expert and up to 8 slots, each slot a
// (token, k) pair p = token * top_k + k routed to that expert (or -1). The expert kernels give each
// warp consecutive groups of two weight rows of one entry's expert, so an expert's rows are read
// once per entry for all of its slots:
//  - decode (n_tok <= 8): a first kernel builds the table on the device from the ids (one entry
//    per distinct expert of the step, slot t = token t) and quantizes x, so each selected expert
//    matrix is read once per step however many tokens chose it, nothing is read back to the host
//    and the launches are fixed (CUDA-graph capturable). gate and up run in one kernel (a warp's two
//    rows are gate row r and up row r) whose epilogue writes act(gate) * up; down writes one row per
//    pair, and the last warp to finish a row group (a counter per group) sums each token's pairs in
//    k order into `out`: no extra launch, no float atomics, the same result on every run.
//  - prefill: the routing is read back, tokens are grouped by expert on the host (in chunks of
//    kPrefillChunk tokens, which bounds the scratch); an expert with >= tc_min_tokens tokens runs its
//    matrices on the gathered rows with the tensor-core matmul, the others as entries of 8 tokens
//    through the same kernels as decode; a last kernel sums each token's pairs in k order.
// Weights with an int8 unit (mmvq_units.h, moe_units.cuh: q8_0, q4_0, q5_0, q4_K, q5_K, q6_K) are
// streamed through shared memory with cp.async and dotted with dp4a against activations quantized
// once to int8 per 32 (kernels.h's quantize_act_q8); every other format runs an exact kernel (f32
// activations, the chunk decoders of formats/chunk_decode.h).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/kernels.h"
#include "cuda/matmul_tc.h"
#include "cuda/matvec_q8.h"
#include "cuda/moe.h"
#include "cuda/moe_units.cuh"
#include "cuda/pdl.cuh"
#include "formats/chunk_decode.h"

namespace rotor::cuda {

namespace {

using ::rotor::mmvq::ActRow;
using ::rotor::mmvq::Unit;
using ::rotor::mmvq::UnitAct;
using mmvq::ActView;

constexpr int kWarps = 4;           // warps per block of the expert kernels
constexpr int kSlots = 8;           // slots per entry
constexpr int kMaxTopK = 32;        // moe_route: one lane per chosen expert
constexpr int kMaxExperts = 1024;   // moe_route: 32 per lane
constexpr int kPrefillChunk = 256;  // tokens per prefill pass (bounds the per-pair scratch)
constexpr int kStages = 3;          // spans in flight per warp in the int8 kernel
constexpr bool kGpwTwoWaves = false;  // row groups per warp: see launch_expert (off: GPU-verified policy)

// ---------------------------------------------------------------- router

// One warp per token: softmax as the CPU computes it (float exp of x - max, a double sum, each
// probability rounded to float), then top_k rounds of a warp arg-max over the untaken experts
// (larger probability first, ties to the lower id: partial_sort's order), renormalized in double.
__global__ void route_kernel(float* logits, int n_tok, int n_expert, int top_k, const float* scale, int32_t* ids,
                             float* weights) {
    const int t = blockIdx.x * kWarps + threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    if (t >= n_tok) return;
    float* r = logits + (size_t)t * n_expert;
    float mx = -INFINITY;
    for (int e = lane; e < n_expert; e += kWarp) mx = fmaxf(mx, r[e]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    double sum = 0;
    for (int e = lane; e < n_expert; e += kWarp) {
        // exp in double rounded once to float: the correctly rounded expf, as the CPU's
        const float v = (float)exp((double)(r[e] - mx));
        r[e] = v;
        sum += v;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    for (int e = lane; e < n_expert; e += kWarp) r[e] = (float)((double)r[e] / sum);
    __syncwarp();
    uint32_t taken = 0;  // bit j: expert lane + 32 j
    int my_id = -1;
    float my_p = 0.0f;
    for (int k = 0; k < top_k; k++) {
        float bv = -INFINITY;
        int bi = INT32_MAX;
        for (int j = 0, e = lane; e < n_expert; j++, e += kWarp) {
            const float v = r[e];
            if (!((taken >> j) & 1u) && (v > bv || bi == INT32_MAX)) bv = v, bi = e;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (oi != INT32_MAX && (bi == INT32_MAX || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
        }
        if (bi % kWarp == lane) taken |= 1u << (bi / kWarp);
        if (lane == k) my_id = bi, my_p = bv;
    }
    double top_sum = 0;
    for (int k = 0; k < top_k; k++) top_sum += (double)__shfl_sync(0xffffffffu, my_p, k);
    if (lane < top_k) {
        ids[(size_t)t * top_k + lane] = my_id;
        weights[(size_t)t * top_k + lane] = (float)((double)my_p / top_sum) * (scale ? scale[my_id] : 1.0f);
    }
}

// ---------------------------------------------------------------- the entry table

// Where the table lives (ints): n_ent, expert[cap], slot[cap][kSlots]; then host-built lists for the
// tensor-core experts (prefill). Entries past n_ent have expert -1 (up to the launch's grid).
struct Table {
    int* n_ent = nullptr;
    int* expert = nullptr;
    int* slot = nullptr;
    int* lists = nullptr;
};

// The first kernel of a decode step, two jobs in one launch:
//  - the last block builds the table from the ids: one entry per distinct valid expert, in order of
//    first appearance, slot t = the pair of token t routed to it or -1; ids outside [0, n_expert)
//    are left out (the router never makes them), and a step without a valid id zeroes `out`;
//  - the other blocks quantize x to int8 per 32 exactly as kernels.h's quantize_act_q8 does (one
//    warp per 32 elements, the same layout and arithmetic), when the gate / up matrices take it.
__global__ void __launch_bounds__(kWarps* kWarp)
    prep_kernel(const int32_t* ids, int n_tok, int top_k, int n_expert, int max_ent, Table tab, const float* X,
                int64_t cols, int8_t* q, int64_t code_stride, float* d_out, float* s_out, int64_t ds_stride,
                float* out, int64_t n_out) {
    pdl_trigger();
    pdl_wait();  // the ids and x come from the kernels before
    if (blockIdx.x + 1 < gridDim.x) {
        const int lane = threadIdx.x % kWarp, nbr = (int)(cols / 32);
        const int64_t blk = (int64_t)blockIdx.x * kWarps + threadIdx.x / kWarp;
        if (blk >= (int64_t)n_tok * nbr) return;
        const int64_t t = blk / nbr, b = blk % nbr;
        const float v = X[t * cols + b * 32 + lane];
        float amax = fabsf(v);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const int code = (int)roundf(__fmul_rn(v, id));
        q[t * code_stride + ::rotor::mmvq::act_code_index(b * 32 + lane)] = (int8_t)code;
        int sum = code;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (lane == 0) {
            d_out[t * ds_stride + b] = d;
            s_out[t * ds_stride + b] = d * (float)sum;
        }
        return;
    }
    __shared__ int s_id[kSlots * kMaxTopK];
    __shared__ int s_first[kSlots * kMaxTopK];
    __shared__ int s_n;
    const int P = n_tok * top_k;
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
        const int e = ids[p];
        s_id[p] = e >= 0 && e < n_expert ? e : -1;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
        bool first = s_id[p] >= 0;
        for (int q2 = 0; q2 < p && first; q2++) first = s_id[q2] != s_id[p];
        s_first[p] = first;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
        if (!s_first[p]) continue;
        int u = 0;
        for (int q2 = 0; q2 < p; q2++) u += s_first[q2];
        const int e = s_id[p];
        tab.expert[u] = e;
        for (int t = 0; t < kSlots; t++) {
            int slot = -1;
            if (t < n_tok)
                for (int k = 0; k < top_k; k++)
                    if (s_id[t * top_k + k] == e) slot = t * top_k + k;
            tab.slot[u * kSlots + t] = slot;
        }
    }
    if (threadIdx.x == 0) {
        int n = 0;
        for (int p = 0; p < P; p++) n += s_first[p];
        *tab.n_ent = n;
        s_n = n;
    }
    __syncthreads();
    for (int u = s_n + (int)threadIdx.x; u < max_ent; u += blockDim.x) tab.expert[u] = -1;
    if (s_n == 0)
        for (int64_t i = threadIdx.x; i < n_out; i += blockDim.x) out[i] = 0.0f;
}

// ---------------------------------------------------------------- expert kernels

// What a launch computes. A warp takes gpw consecutive row groups of one entry (blockIdx.y); a
// group is two weight rows:
//   kPairAct: rows g of a (gate) and b (up); y[p][g] = act(gate) * up
//   kStore:   rows 2g, 2g + 1 of a; y[p][2g + r] = the dot
//   kActMul:  rows 2g, 2g + 1 of a (up, when gate has another format); y[p][..] = act(y) * dot
// Two epilogues count finished warps (a device counter, reset by the warp that finds it full):
//  - q_counters (gate/up in decode): the last warp of each entry's 32 rows of h quantizes them to
//    int8 for down, as quantize_act_q8 would (no launch of its own);
//  - counters (down in decode): the last warp of a tile (the same rows over every entry) writes
//    out[t][j] = sum_k w[t][k] * y[t * top_k + k][j], k in order: the weighted sum of the experts
//    without another launch, the same result whichever warp comes last.
enum Kind : int { kPairAct = 0, kStore = 1, kActMul = 2 };

struct Mat {  // one part of a stacked expert tensor
    const uint8_t* base = nullptr;
    const uint8_t* end = nullptr;  // the tensor's end (copies never read past it)
    int64_t expert_rows = 0;       // rows from one expert to the next
    int64_t row0 = 0;              // the part's first row inside an expert (up in a fused gate_up)
};

struct Params {
    Mat a, b;
    int64_t row_bytes = 0;
    int64_t cols = 0;
    int rows = 0;      // rows of the part per expert (kStore / kActMul)
    int n_groups = 0;  // row groups per expert
    int gpw = 1;       // row groups per warp
    int kind = 0;
    int gelu = 0;
    int act_div = 1;   // activation row of slot pair p: p / act_div (top_k: token rows; 1: pair rows)
    float* y = nullptr;
    int64_t y_stride = 0;
    const int* n_ent = nullptr;
    const int* expert = nullptr;
    const int* slot = nullptr;
    // the fused int8 quantization of h (gate/up in decode): counts per (entry, 32 rows of h)
    int* q_counters = nullptr;  // zero between launches (the last warp resets its count)
    int8_t* q_codes = nullptr;
    float* q_d = nullptr;
    float* q_s = nullptr;
    int64_t q_code_stride = 0, q_ds_stride = 0;
    // the fused weighted sum (down in decode): counts per warp tile
    int* counters = nullptr;  // zero between launches (the last warp resets its count)
    const int32_t* ids = nullptr;
    const float* w = nullptr;
    int top_k = 0, n_tok = 0, n_expert = 0;
    float* out = nullptr;
    int64_t out_stride = 0;
};

__device__ inline float expert_act(float g, int gelu) {
    if (gelu) {
        const float k = 0.7978845608028654f;  // sqrt(2/pi): gelu_pytorch_tanh, as forward_ops.h
        return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
    }
    return siluf_(g);
}

__device__ inline const uint8_t* row_ptr(const Params& p, int e, int g, int r) {
    if (p.kind == kPairAct) {
        const Mat& m = r ? p.b : p.a;
        return m.base + (size_t)((int64_t)e * m.expert_rows + m.row0 + g) * p.row_bytes;
    }
    return p.a.base + (size_t)((int64_t)e * p.a.expert_rows + p.a.row0 + 2 * g + r) * p.row_bytes;
}

__device__ inline int rows_in_group(const Params& p, int g) {
    return p.kind == kPairAct ? 2 : min(2, p.rows - 2 * g);
}

// Lane 0: the finished dots v0, v1 of slot pair `pair`.
__device__ inline void store_entry(const Params& p, int g, int nr, int pair, float v0, float v1) {
    float* y = p.y + (size_t)pair * p.y_stride;
    if (p.kind == kPairAct) {
        y[g] = expert_act(v0, p.gelu) * v1;
    } else if (p.kind == kStore) {
        y[2 * g] = v0;
        if (nr > 1) y[2 * g + 1] = v1;
    } else {
        y[2 * g] = expert_act(y[2 * g], p.gelu) * v0;
        if (nr > 1) y[2 * g + 1] = expert_act(y[2 * g + 1], p.gelu) * v1;
    }
}

// Every lane: row group g of the warp's entry is done (acc: this lane's part of each slot's dots).
template <int NT>
__device__ __forceinline__ void finish_group(const Params& p, int g, const int (&slot)[NT], float (&acc)[2][NT],
                                             int lane) {
    const int nr = rows_in_group(p, g);
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (slot[t] < 0) continue;  // the same for the whole warp
        const float v0 = warp_sum(acc[0][t]), v1 = warp_sum(acc[1][t]);
        if (lane == 0) store_entry(p, g, nr, slot[t], v0, v1);
        acc[0][t] = acc[1][t] = 0.0f;
    }
}

// Lane 0 counts this warp in *counter; true on every lane for the warp that makes it `full`.
__device__ inline bool last_to_finish(int* counter, int full, int lane) {
    int last = 0;
    if (lane == 0) {
        __threadfence();  // our stores before our count
        last = atomicAdd(counter, 1) == full - 1;
    }
    last = __shfl_sync(0xffffffffu, last, 0);
    if (last) __threadfence();  // every other warp's stores (made before its count) before our reads
    return last != 0;
}

// Every lane, after the warp's row groups g0 .. g0 + ng - 1 of entry u are stored.
template <int NT>
__device__ __forceinline__ void finish_warp(const Params& p, int u, int g0, int ng, const int (&slot)[NT],
                                            int n_ent, int lane) {
    if (p.q_counters) {
        // h rows [r0, r0 + n) of this warp, inside one 32-row block (the host makes n divide 32)
        const int per_group = p.kind == kPairAct ? 1 : 2;
        const int r0 = g0 * per_group, n = p.gpw * per_group, blk = r0 / 32;
        int* c = p.q_counters + (size_t)u * (p.rows / 32) + blk;
        if (last_to_finish(c, 32 / n, lane)) {
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (slot[t] < 0) continue;
                const size_t pair = (size_t)slot[t];
                const float v = __ldcg(p.y + pair * p.y_stride + 32 * blk + lane);
                float amax = fabsf(v);
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
                const float d = amax / 127.0f;  // matvec_q8.cu quantize_kernel's arithmetic
                const float id = d != 0.0f ? 1.0f / d : 0.0f;
                const int code = (int)roundf(__fmul_rn(v, id));
                p.q_codes[pair * p.q_code_stride + ::rotor::mmvq::act_code_index(32 * blk + lane)] = (int8_t)code;
                int sum = code;
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
                if (lane == 0) {
                    p.q_d[pair * p.q_ds_stride + blk] = d;
                    p.q_s[pair * p.q_ds_stride + blk] = d * (float)sum;
                }
            }
            if (lane == 0) *c = 0;  // for the next launch
        }
    }
    if (p.counters) {
        int* c = p.counters + g0 / p.gpw;
        if (last_to_finish(c, n_ent, lane)) {
            const int j0 = 2 * g0, nrows = min(2 * ng, p.rows - j0);
            for (int i = lane; i < p.n_tok * nrows; i += kWarp) {
                const int t = i / nrows, j = j0 + i % nrows;
                float s = 0.0f;
#pragma unroll 8
                for (int k = 0; k < p.top_k; k++) {  // loads independent of each other: all in flight
                    const int pair = t * p.top_k + k, e = p.ids[pair];
                    const float wv = p.w[pair], yv = __ldcg(p.y + (size_t)pair * p.y_stride + j);
                    s += e >= 0 && e < p.n_expert ? wv * yv : 0.0f;
                }
                p.out[(size_t)t * p.out_stride + j] = s;
            }
            if (lane == 0) *c = 0;
        }
    }
}

__device__ inline void cp_async16(uint8_t* dst, const uint8_t* src, int bytes) {
    const unsigned sa = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sa), "l"(src), "r"(bytes) : "memory");
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ inline void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// The int8 kernel: as matvec_q8.cu's, a warp streams its rows through shared memory in spans of
// whole blocks (32 units, one per lane), kStages - 1 spans ahead (across its row groups), and each
// lane dots its unit with the int8 activations of every slot. NT: slots (1, 2, 4 or 8).
template <GgmlType T, int NT>
__global__ void __launch_bounds__(kWarps* kWarp) expert_q8_kernel(Params p, ActView x) {
    using U = Unit<T>;
    constexpr int ST = kStages;
    constexpr int kSpan = U::kSpanBlocks * U::kBlockBytes;
    // a span copy starts at the 16-byte boundary at or before the span (up to 14 bytes earlier), and
    // the 2-byte-aligned loads read one word past a block: 32 bytes of room
    constexpr int kSlot = kSpan + 32;
    static_assert(kSpan % 16 == 0 && U::kSpanBlocks * U::kUnitsPerBlock == kWarp);
    __shared__ __align__(16) uint8_t smem[kWarps][ST][2][kSlot];

    pdl_trigger();
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int g0 = (blockIdx.x * kWarps + warp) * p.gpw;
    const int u = blockIdx.y;
    if (g0 >= p.n_groups) return;  // whole warps only: no block-wide barrier below
    pdl_wait();                    // the table and the activations come from the kernels before
    const int n_ent = *p.n_ent, e = p.expert[u];
    if (e < 0 || u >= n_ent) return;
    const int nb = (int)(p.cols / U::kBlockElems);
    const int n_spans = (nb + U::kSpanBlocks - 1) / U::kSpanBlocks;
    const int ng = min(p.gpw, p.n_groups - g0);
    const int n_items = ng * n_spans;

    // item k (group g0 + k / n_spans, span k % n_spans) of each row -> slot k % ST, one commit group each
    auto issue = [&](int k) {
        if (k < n_items) {
            const int g = g0 + k / n_spans;
            const int nr = rows_in_group(p, g);
            const int64_t off = (int64_t)(k % n_spans) * kSpan;
            const int64_t len = min((int64_t)kSpan, p.row_bytes - off);
#pragma unroll
            for (int r = 0; r < 2; r++) {
                if (r >= nr) break;
                const uint8_t* a = row_ptr(p, e, g, r) + off;
                const uint8_t* end = (r == 1 && p.kind == kPairAct) ? p.b.end : p.a.end;
                const uint8_t* a16 = a - (reinterpret_cast<uintptr_t>(a) & 15);
                const int n16 = (int)((a + len - a16 + 15) / 16);
                uint8_t* dst = &smem[warp][k % ST][r][0];
                for (int i = lane; i < n16; i += kWarp) {
                    const uint8_t* src = a16 + 16 * i;
                    cp_async16(dst + 16 * i, src, end - src >= 16 ? 16 : (int)(end - src));
                }
            }
        }
        cp_async_commit();
    };
    for (int k = 0; k < ST - 1; k++) issue(k);

    int slot[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) slot[t] = p.slot[u * kSlots + t];
    float acc[2][NT];
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
    const int jb = lane / U::kUnitsPerBlock, sub = lane % U::kUnitsPerBlock;
    for (int k = 0; k < n_items; k++) {
        issue(k + ST - 1);        // into the slot computed in the previous iteration
        cp_async_wait<ST - 1>();  // item k has landed (this lane's copies)
        __syncwarp();             // ... and the other lanes'
        const int g = g0 + k / n_spans, sp = k % n_spans;
        const int blk = sp * U::kSpanBlocks + jb;
        if (blk < nb) {
            typename U::W wu[2];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                // where the span starts inside its copy (0 for q4_K / q5_K: rows are 16-byte multiples);
                // a group's missing second row decodes whatever the slot holds, and is never stored
                const int shift = (int)(reinterpret_cast<uintptr_t>(row_ptr(p, e, g, r) + (size_t)sp * kSpan) & 15);
                U::load(&smem[warp][k % ST][r][shift + jb * U::kBlockBytes], sub, wu[r]);
            }
            const int64_t e0 = (int64_t)blk * U::kBlockElems;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (slot[t] < 0) continue;  // the same for the whole warp
                const size_t row = (size_t)(slot[t] / p.act_div);
                const ActRow xr{x.codes + row * x.code_stride, x.d + row * x.ds_stride, x.s + row * x.ds_stride};
                UnitAct<T> xa;
                ::rotor::mmvq::load_unit_act<T>(xr, sub, e0, xa);
#pragma unroll
                for (int r = 0; r < 2; r++) acc[r][t] += ::rotor::mmvq::unit_dot<T>(wu[r], xa);
            }
        }
        if (sp == n_spans - 1) finish_group<NT>(p, g, slot, acc, lane);
        __syncwarp();  // every lane is done with slot k % ST before it is refilled
    }
    cp_async_wait<0>();
    finish_warp<NT>(p, u, g0, ng, slot, n_ent, lane);
}

// The exact kernel (formats without an int8 unit, or weights it cannot read): f32 activations
// (rows of cols floats, slot pair p's row p / act_div), each lane decoding 8-element chunks
// c = lane, lane + 32, ... of its two rows. Slots: 8.
template <GgmlType T>
__global__ void __launch_bounds__(kWarps* kWarp) expert_exact_kernel(Params p, const float* __restrict__ X) {
    using D = ChunkDecoder<T>;
    constexpr int kChunksPerBlock = D::kBlockElems / 8;
    pdl_trigger();
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int g0 = (blockIdx.x * kWarps + warp) * p.gpw;
    const int u = blockIdx.y;
    if (g0 >= p.n_groups) return;
    pdl_wait();
    const int n_ent = *p.n_ent, e = p.expert[u];
    if (e < 0 || u >= n_ent) return;
    const int ng = min(p.gpw, p.n_groups - g0);
    const int chunks = (int)(p.cols / 8);
    int slot[kSlots];
#pragma unroll
    for (int t = 0; t < kSlots; t++) slot[t] = p.slot[u * kSlots + t];
    float acc[2][kSlots];
    for (int g = g0; g < g0 + ng; g++) {
        const int nr = rows_in_group(p, g);
        const uint8_t* w0 = row_ptr(p, e, g, 0);
        const uint8_t* w1 = row_ptr(p, e, g, nr > 1 ? 1 : 0);
#pragma unroll
        for (int t = 0; t < kSlots; t++) acc[0][t] = acc[1][t] = 0.0f;
        for (int c = lane; c < chunks; c += kWarp) {
            const size_t off = (size_t)(c / kChunksPerBlock) * D::kBlockBytes;
            float v0[8], v1[8];
            D::decode8(w0 + off, c % kChunksPerBlock, v0);
            D::decode8(w1 + off, c % kChunksPerBlock, v1);
#pragma unroll
            for (int t = 0; t < kSlots; t++) {
                if (slot[t] < 0) continue;
                const float4* xp =
                    reinterpret_cast<const float4*>(X + (size_t)(slot[t] / p.act_div) * p.cols + 8 * (size_t)c);
                const float4 xa = __ldg(xp), xb = __ldg(xp + 1);
                acc[0][t] += v0[0] * xa.x + v0[1] * xa.y + v0[2] * xa.z + v0[3] * xa.w + v0[4] * xb.x +
                             v0[5] * xb.y + v0[6] * xb.z + v0[7] * xb.w;
                acc[1][t] += v1[0] * xa.x + v1[1] * xa.y + v1[2] * xa.z + v1[3] * xa.w + v1[4] * xb.x +
                             v1[5] * xb.y + v1[6] * xb.z + v1[7] * xb.w;
            }
        }
        finish_group<kSlots>(p, g, slot, acc, lane);
    }
    finish_warp<kSlots>(p, u, g0, ng, slot, n_ent, lane);
}

// ---------------------------------------------------------------- prefill helpers

// out[t][j] = sum_k w[t][k] * y[t * top_k + k][j], k in order
__global__ void weighted_sum_kernel(const float* __restrict__ y, const float* __restrict__ w, int top_k, int64_t n,
                                    int n_tok, float* __restrict__ out) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n_tok * n) return;
    const int64_t t = i / n, j = i % n;
    float s = 0.0f;
    for (int k = 0; k < top_k; k++) s += w[t * top_k + k] * y[(t * top_k + k) * n + j];
    out[i] = s;
}

// dst[i][:] = src[rows[i]][:] (gather), or dst[rows[i]][:] = src[i][:] (scatter)
__global__ void gather_rows_kernel(const float* __restrict__ src, const int* __restrict__ rows, int64_t n,
                                   float* __restrict__ dst, int scatter) {
    const int i = blockIdx.x;
    const float* s = src + (size_t)(scatter ? i : rows[i]) * n;
    float* d = dst + (size_t)(scatter ? rows[i] : i) * n;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) d[j] = s[j];
}

// h[i][j] = act(g[i * gs + j]) * u[i * us + j]
__global__ void act_mul_kernel(const float* __restrict__ g, int64_t gs, const float* __restrict__ u, int64_t us,
                               int m, int64_t n, int gelu, float* __restrict__ h) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)m * n) return;
    const int64_t r = i / n, j = i % n;
    h[i] = expert_act(g[r * gs + j], gelu) * u[r * us + j];
}

// ---------------------------------------------------------------- host side

bool has_unit(GgmlType t) {
    return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::Q5_0 || t == GgmlType::Q4_K ||
           t == GgmlType::Q5_K || t == GgmlType::Q6_K;
}

// Whether the int8 kernel reads this tensor: a unit format, whole 32-element groups, the tensor on a
// 16-byte boundary (span copies start at the boundary at or before them), q4_K / q5_K rows of whole
// 16-byte pieces (their units are read with 16-byte loads).
bool int8_reads(const ExpertMatrix& m) {
    if (!has_unit(m.type) || m.cols % 32 || m.cols % format_info(m.type).block_elems) return false;
    if (reinterpret_cast<uintptr_t>(m.data) % 16) return false;
    const bool k16 = m.type == GgmlType::Q4_K || m.type == GgmlType::Q5_K;
    return !k16 || row_bytes(m.type, (uint64_t)m.cols) % 16 == 0;
}

Mat mat_of(const ExpertMatrix& m, int n_expert, int64_t row0) {
    Mat r;
    r.base = static_cast<const uint8_t*>(m.data);
    r.end = r.base + (size_t)m.rows_per_expert * n_expert * row_bytes(m.type, (uint64_t)m.cols);
    r.expert_rows = m.rows_per_expert;
    r.row0 = row0;
    return r;
}

// Launch with programmatic stream serialization where the GPU has it (sm_90+): the kernel's blocks
// are scheduled while the previous kernel of the stream finishes (each kernel waits, pdl_wait,
// before it reads what came before). Not on the legacy default stream.
template <class... P, class... A>
void launch_pdl(void (*kernel)(P...), dim3 grid, cudaStream_t s, A&&... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(kWarps * kWarp);
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = s != nullptr && sm90_or_later() ? 1 : 0;
    check(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...), "cudaLaunchKernelEx");
}

// Warps of a kernel resident on the GPU at once.
template <class K>
int64_t resident_warps(K kernel) {
    return (int64_t)resident_blocks(kernel, kWarps * kWarp, 0) * kWarps;
}

// Row groups per warp (a power of two, at most gpw_max: the h quantization needs the rows of a warp
// to divide 32). Each warp pays a chain of dependent steps (table, weights, dots, stores, counts)
// whatever its length, so very short warps waste it. Verified on an H200 (rotor-check-moe, commit
// 75de1bf): the fewest with which the warps fit on the GPU at once (one wave). kGpwTwoWaves instead
// keeps at least two waves: a single wave of long warps ends in a long tail, and an earlier version
// with more, shorter warps ran the 8-token steps 10-25% faster; not yet run on a GPU, so off until
// rotor-check-moe passes and measures it.
template <class K>
void launch_expert(K kernel, Params p, unsigned grid_y, int gpw_max, cudaStream_t s, const void* act) {
    static thread_local std::vector<std::pair<const void*, int64_t>> cache;  // kernel -> resident warps
    int64_t resident = 0;
    for (const auto& c : cache)
        if (c.first == reinterpret_cast<const void*>(kernel)) resident = c.second;
    if (!resident) {
        resident = resident_warps(kernel);
        cache.push_back({reinterpret_cast<const void*>(kernel), resident});
    }
    p.gpw = 1;
    if (kGpwTwoWaves)
        while (p.gpw < gpw_max && (int64_t)((p.n_groups + 2 * p.gpw - 1) / (2 * p.gpw)) * grid_y >= 2 * resident)
            p.gpw *= 2;
    else
        while (p.gpw < gpw_max && (int64_t)((p.n_groups + p.gpw - 1) / p.gpw) * grid_y > resident) p.gpw *= 2;
    const dim3 grid(blocks_for((p.n_groups + p.gpw - 1) / p.gpw, kWarps), grid_y);
    if constexpr (std::is_same_v<K, void (*)(Params, ActView)>)
        launch_pdl(kernel, grid, s, p, *static_cast<const ActView*>(act));
    else
        launch_pdl(kernel, grid, s, p, static_cast<const float*>(act));
}

unsigned nt_of(int slots) { return slots <= 1 ? 1 : slots <= 2 ? 2 : slots <= 4 ? 4 : 8; }

template <GgmlType T>
void launch_q8_t(const Params& p, const ActView& x, int slots, unsigned grid_y, int gpw_max, cudaStream_t s) {
    switch (nt_of(slots)) {
        case 1: launch_expert(expert_q8_kernel<T, 1>, p, grid_y, gpw_max, s, &x); break;
        case 2: launch_expert(expert_q8_kernel<T, 2>, p, grid_y, gpw_max, s, &x); break;
        case 4: launch_expert(expert_q8_kernel<T, 4>, p, grid_y, gpw_max, s, &x); break;
        default: launch_expert(expert_q8_kernel<T, 8>, p, grid_y, gpw_max, s, &x); break;
    }
}

void launch_q8(GgmlType t, const Params& p, const ActView& x, int slots, unsigned grid_y, int gpw_max,
               cudaStream_t s) {
    switch (t) {
        case GgmlType::Q8_0: launch_q8_t<GgmlType::Q8_0>(p, x, slots, grid_y, gpw_max, s); break;
        case GgmlType::Q4_0: launch_q8_t<GgmlType::Q4_0>(p, x, slots, grid_y, gpw_max, s); break;
        case GgmlType::Q5_0: launch_q8_t<GgmlType::Q5_0>(p, x, slots, grid_y, gpw_max, s); break;
        case GgmlType::Q4_K: launch_q8_t<GgmlType::Q4_K>(p, x, slots, grid_y, gpw_max, s); break;
        case GgmlType::Q5_K: launch_q8_t<GgmlType::Q5_K>(p, x, slots, grid_y, gpw_max, s); break;
        case GgmlType::Q6_K: launch_q8_t<GgmlType::Q6_K>(p, x, slots, grid_y, gpw_max, s); break;
        default: throw Error("MoE: no int8 kernel for " + std::string(format_info(t).name));
    }
    check_launch("MoE int8 expert kernel");
}

void launch_exact(GgmlType t, const Params& p, const float* X, unsigned grid_y, int gpw_max, cudaStream_t s) {
    const bool ok = with_chunk_decoder(
        t, [&]<GgmlType T>() { launch_expert(expert_exact_kernel<T>, p, grid_y, gpw_max, s, X); });
    if (!ok) throw Error("MoE: no CUDA kernel for expert weights of type " + std::string(format_info(t).name));
    check_launch("MoE expert kernel");
}

std::string shape_str(const ExpertMatrix& m) {
    return std::string(format_info(m.type).name) + " " + std::to_string(m.rows_per_expert) + "x" +
           std::to_string(m.cols);
}

}  // namespace

// ---------------------------------------------------------------- router entry point

void moe_route(float* logits, int n_tok, int n_expert, int top_k, const float* per_expert_scale, int32_t* ids,
               float* weights, cudaStream_t s) {
    if (n_tok <= 0) return;
    if (n_expert < 1 || n_expert > kMaxExperts)
        throw Error("MoE router: " + std::to_string(n_expert) + " experts (the GPU router takes 1 to " +
                    std::to_string(kMaxExperts) + ")");
    if (top_k < 1 || top_k > std::min(n_expert, kMaxTopK))
        throw Error("MoE router: top_k " + std::to_string(top_k) + " of " + std::to_string(n_expert) +
                    " experts (the GPU router takes 1 to " + std::to_string(kMaxTopK) + ")");
    route_kernel<<<blocks_for(n_tok, kWarps), kWarps * kWarp, 0, s>>>(logits, n_tok, n_expert, top_k,
                                                                        per_expert_scale, ids, weights);
    check_launch("moe_route");
}

// ---------------------------------------------------------------- MoeRunner

struct MoeRunner::Impl {
    int max_tok = 0, top_k = 0, n_embd = 0, n_ff = 0;
    int chunk = 0;    // tokens per pass (decode steps and prefill chunks)
    int cap = 0;      // entries the table holds (chunk * top_k: every entry has a pair)
    bool prefill = false, tc = false;
    int tc_min_tokens = 32;
    DeviceBuffer table, counters, q_counters;  // entries; counts of the fused weighted sum and h quantization
    DeviceBuffer xq, h, hq, y;         // x and h as int8; h; the down rows of each pair
    DeviceBuffer xe, gu, he, ye, tcs;  // tensor-core experts: gathered x, gate|up, h, down; matmul_tc scratch
    size_t tcs_bytes = 0;
    std::vector<int32_t> host_ids;
    std::vector<int> host_table;

    Table tab() const {
        int* base = table.get<int>();
        Table t;
        t.n_ent = base;
        t.expert = base + 1;
        t.slot = base + 1 + cap;
        t.lists = base + 1 + cap + (size_t)cap * kSlots;
        return t;
    }
    size_t table_ints() const { return 1 + (size_t)cap * (1 + kSlots) + 2 * (size_t)cap; }
};

MoeRunner::MoeRunner(int max_tok, int top_k, int n_embd, int n_ff) : impl_(new Impl) {
    Impl& m = *impl_;
    if (max_tok < 1 || top_k < 1 || top_k > kMaxTopK || n_embd < 1 || n_ff < 1) {
        delete impl_;
        impl_ = nullptr;
        throw Error("MoeRunner: bad shape (max_tok " + std::to_string(max_tok) + ", top_k " + std::to_string(top_k) +
                    ", n_embd " + std::to_string(n_embd) + ", n_ff " + std::to_string(n_ff) + ")");
    }
    m.max_tok = max_tok, m.top_k = top_k, m.n_embd = n_embd, m.n_ff = n_ff;
    m.chunk = std::min(max_tok, kPrefillChunk);
    m.cap = m.chunk * top_k;
    m.prefill = max_tok > kSlots;
    const int P = m.chunk * top_k;
    try {
        m.table.resize(sizeof(int) * m.table_ints());
        // the table's expert ids start invalid (-1: no entry), the counts at zero
        ROTOR_CUDA_CHECK(cudaMemset(m.table.get(), 0xFF, m.table.bytes()));
        m.counters.resize(sizeof(int) * (size_t)((n_embd + 1) / 2));
        ROTOR_CUDA_CHECK(cudaMemset(m.counters.get(), 0, m.counters.bytes()));
        m.q_counters.resize(sizeof(int) * (size_t)m.cap * ((n_ff + 31) / 32));
        ROTOR_CUDA_CHECK(cudaMemset(m.q_counters.get(), 0, m.q_counters.bytes()));
        m.xq.resize(act_q8_layout(m.chunk, n_embd).bytes);
        m.h.resize(sizeof(float) * (size_t)P * n_ff);
        m.hq.resize(act_q8_layout(P, n_ff).bytes);
        m.y.resize(sizeof(float) * (size_t)P * n_embd);
        if (m.prefill) {
            m.tc = m.chunk >= m.tc_min_tokens;
            if (m.tc) {
                m.xe.resize(sizeof(float) * (size_t)m.chunk * n_embd);
                m.gu.resize(sizeof(float) * (size_t)m.chunk * 2 * n_ff);
                m.he.resize(sizeof(float) * (size_t)m.chunk * n_ff);
                m.ye.resize(sizeof(float) * (size_t)m.chunk * n_embd);
                // the activations plus some room for split-K (matmul_tc.h: less than full size only
                // means fewer split-K slices, which matter little at these token counts)
                m.tcs_bytes = matmul_tc_min_scratch_bytes(m.chunk, std::max(n_embd, n_ff)) + (size_t(8) << 20);
                m.tcs.resize(m.tcs_bytes);
            }
        }
    } catch (...) {
        delete impl_;
        impl_ = nullptr;
        throw;
    }
}

MoeRunner::~MoeRunner() { delete impl_; }

size_t MoeRunner::device_bytes() const {
    const Impl& m = *impl_;
    return m.table.bytes() + m.counters.bytes() + m.q_counters.bytes() + m.xq.bytes() + m.h.bytes() + m.hq.bytes() + m.y.bytes() +
           m.xe.bytes() + m.gu.bytes() + m.he.bytes() + m.ye.bytes() + m.tcs.bytes();
}

void MoeRunner::set_tc_min_tokens(int n) { impl_->tc_min_tokens = std::max(1, n); }

void MoeRunner::validate(const ExpertWeights& w) {
    const bool fused = w.gate_up.data != nullptr;
    auto need = [&](const ExpertMatrix& m, int64_t rows, int64_t cols, const char* what) {
        if (!m.data) throw Error(std::string("MoE: expert tensor ") + what + " is missing");
        if (m.rows_per_expert != rows || m.cols != cols)
            throw Error(std::string("MoE: expert tensor ") + what + " is " + shape_str(m) + ", expected " +
                        std::to_string(rows) + "x" + std::to_string(cols) + " per expert");
        if (!weight_type_supported(m.type))
            throw Error(std::string("MoE: expert tensor ") + what + " has type " +
                        std::string(format_info(m.type).name) + ", which has no CUDA kernel (supported: " +
                        supported_weight_types() + ")");
        if (cols % 8)
            throw Error(std::string("MoE: expert tensor ") + what + " has rows of " + std::to_string(cols) +
                        " elements (the GPU experts need a multiple of 8)");
    };
    if (w.n_expert < 1 || w.n_ff < 1 || w.n_embd < 1) throw Error("MoE: bad expert shape");
    if (fused) {
        need(w.gate_up, 2 * (int64_t)w.n_ff, w.n_embd, "gate_up");
    } else {
        need(w.gate, w.n_ff, w.n_embd, "gate");
        need(w.up, w.n_ff, w.n_embd, "up");
    }
    need(w.down, w.n_embd, w.n_ff, "down");
}

namespace {

bool gate_up_int8(const ExpertWeights& w) {
    const bool fused = w.gate_up.data != nullptr;
    return int8_reads(fused ? w.gate_up : w.gate) || (!fused && int8_reads(w.up));
}

// Where gate/up's last pass also quantizes h for down (decode).
struct HQuant {
    void* hq = nullptr;  // act_q8_layout(n_pairs, n_ff)
    int n_pairs = 0;
    int* counters = nullptr;
};

// gate/up for the entries of `tab` into h[pair][n_ff] = act(gate) * up. x: f32 rows (act_div: pair ->
// row); xq: their int8 form, quantized here unless x_ready. With hquant, h is also quantized.
void run_gate_up(const ExpertWeights& w, const Table& tab, const float* x, int n_rows, void* xq, bool x_ready,
                 int act_div, int slots, unsigned grid_y, float* h, const HQuant* hquant, cudaStream_t s) {
    const bool fused = w.gate_up.data != nullptr;
    const ExpertMatrix& G = fused ? w.gate_up : w.gate;
    const ExpertMatrix& Uw = fused ? w.gate_up : w.up;
    const bool q8_g = int8_reads(G), q8_u = int8_reads(Uw);
    if ((q8_g || q8_u) && !x_ready) quantize_act_q8(x, n_rows, w.n_embd, xq, s);
    const ActView xv = mmvq::act_view(xq, n_rows, w.n_embd);
    Params p;
    p.cols = w.n_embd;
    p.gelu = w.gelu;
    p.act_div = act_div;
    p.y = h;
    p.y_stride = w.n_ff;
    p.rows = w.n_ff;
    p.n_ent = tab.n_ent, p.expert = tab.expert, p.slot = tab.slot;
    auto set_hquant = [&]() {
        if (!hquant) return;
        const ActQ8Layout L = act_q8_layout(hquant->n_pairs, w.n_ff);
        char* base = static_cast<char*>(hquant->hq);
        p.q_counters = hquant->counters;
        p.q_codes = reinterpret_cast<int8_t*>(base + L.codes);
        p.q_d = reinterpret_cast<float*>(base + L.d);
        p.q_s = reinterpret_cast<float*>(base + L.s);
        p.q_code_stride = L.code_stride;
        p.q_ds_stride = L.ds_stride;
    };
    if (G.type == Uw.type && q8_g == q8_u) {  // one pass: gate row r and up row r per warp
        p.kind = kPairAct;
        p.a = mat_of(G, w.n_expert, 0);
        p.b = mat_of(Uw, w.n_expert, fused ? w.n_ff : 0);
        p.row_bytes = (int64_t)row_bytes(G.type, (uint64_t)w.n_embd);
        p.n_groups = w.n_ff;
        set_hquant();
        if (q8_g)
            launch_q8(G.type, p, xv, slots, grid_y, 32, s);
        else
            launch_exact(G.type, p, x, grid_y, 32, s);
        return;
    }
    // gate and up of different formats: gate stored, then up multiplied in
    for (int part = 0; part < 2; part++) {
        const ExpertMatrix& M = part ? Uw : G;
        const bool q8 = part ? q8_u : q8_g;
        p.kind = part ? kActMul : kStore;
        p.a = mat_of(M, w.n_expert, part && fused ? w.n_ff : 0);
        p.row_bytes = (int64_t)row_bytes(M.type, (uint64_t)w.n_embd);
        p.n_groups = (w.n_ff + 1) / 2;
        if (part) set_hquant();
        if (q8)
            launch_q8(M.type, p, xv, slots, grid_y, 16, s);
        else
            launch_exact(M.type, p, x, grid_y, 16, s);
    }
}

// down for the entries of `tab` into y[pair] (unweighted); h is quantized here unless h_ready. With
// counters (decode), also out[t] = the weighted sum of token t's pairs.
void run_down(const ExpertWeights& w, const Table& tab, const float* h, int n_pairs, void* hq, bool h_ready,
              int slots, unsigned grid_y, float* y, int* counters, const int32_t* ids, const float* weights,
              int top_k, int n_tok, float* out, cudaStream_t s) {
    const bool q8 = int8_reads(w.down);
    if (q8 && !h_ready) quantize_act_q8(h, n_pairs, w.n_ff, hq, s);
    Params p;
    p.kind = kStore;
    p.a = mat_of(w.down, w.n_expert, 0);
    p.row_bytes = (int64_t)row_bytes(w.down.type, (uint64_t)w.n_ff);
    p.cols = w.n_ff;
    p.rows = w.n_embd;
    p.n_groups = (w.n_embd + 1) / 2;
    p.gelu = w.gelu;
    p.act_div = 1;
    p.y = y;
    p.y_stride = w.n_embd;
    p.n_ent = tab.n_ent, p.expert = tab.expert, p.slot = tab.slot;
    p.counters = counters;
    p.ids = ids;
    p.w = weights;
    p.top_k = top_k;
    p.n_tok = n_tok;
    p.n_expert = w.n_expert;
    p.out = out;
    p.out_stride = w.n_embd;
    if (q8)
        launch_q8(w.down.type, p, mmvq::act_view(hq, n_pairs, w.n_ff), slots, grid_y, 32, s);
    else
        launch_exact(w.down.type, p, h, grid_y, 32, s);
}

}  // namespace

void MoeRunner::run(const ExpertWeights& w, const float* x, int n_tok, const int32_t* ids, const float* weights,
                    float* out, cudaStream_t s) {
    Impl& m = *impl_;
    if (n_tok <= 0) return;
    if (n_tok > m.max_tok)
        throw Error("MoeRunner: " + std::to_string(n_tok) + " tokens, sized for " + std::to_string(m.max_tok));
    if (w.n_embd != m.n_embd || w.n_ff != m.n_ff)
        throw Error("MoeRunner: weights of n_embd " + std::to_string(w.n_embd) + ", n_ff " + std::to_string(w.n_ff) +
                    " on a runner sized for " + std::to_string(m.n_embd) + ", " + std::to_string(m.n_ff));
    validate(w);
    if (reinterpret_cast<uintptr_t>(x) % 16 || reinterpret_cast<uintptr_t>(out) % 16)
        throw Error("MoeRunner: x and out must be 16-byte aligned");
    const int top_k = m.top_k;
    const Table tab = m.tab();

    if (n_tok <= kSlots) {
        // decode: the table from the ids on the device, no host synchronization, three or four launches
        const int max_ent = std::min(n_tok * top_k, w.n_expert);
        const bool q8_x = gate_up_int8(w);
        const ActQ8Layout L = act_q8_layout(n_tok, w.n_embd);
        char* xq = m.xq.get<char>();
        const int64_t q_blocks = q8_x ? (int64_t)n_tok * (w.n_embd / 32) : 0;
        launch_pdl(prep_kernel, dim3(blocks_for(q_blocks, kWarps) + 1), s, ids, n_tok, top_k, w.n_expert, max_ent,
                   tab, x, (int64_t)w.n_embd, reinterpret_cast<int8_t*>(xq + L.codes), L.code_stride,
                   reinterpret_cast<float*>(xq + L.d), reinterpret_cast<float*>(xq + L.s), L.ds_stride, out,
                   (int64_t)n_tok * w.n_embd);
        check_launch("MoE prep");
        // h quantized for down by gate/up's last warps (needs whole 32-row blocks of h)
        const bool fuse_hq = int8_reads(w.down) && w.n_ff % 32 == 0;
        const HQuant hquant{m.hq.get(), n_tok * top_k, m.q_counters.get<int>()};
        run_gate_up(w, tab, x, n_tok, xq, true, top_k, n_tok, (unsigned)max_ent, m.h.get<float>(),
                    fuse_hq ? &hquant : nullptr, s);
        run_down(w, tab, m.h.get<float>(), n_tok * top_k, m.hq.get(), fuse_hq, n_tok, (unsigned)max_ent,
                 m.y.get<float>(), m.counters.get<int>(), ids, weights, top_k, n_tok, out, s);
        return;
    }

    // prefill: the routing on the host, tokens grouped by expert, chunk by chunk
    const size_t n_pairs_all = (size_t)n_tok * top_k;
    m.host_ids.resize(n_pairs_all);
    check(cudaMemcpyAsync(m.host_ids.data(), ids, n_pairs_all * sizeof(int32_t), cudaMemcpyDeviceToHost, s),
          "MoE routing to the host");
    check(cudaStreamSynchronize(s), "MoE routing to the host");
    for (size_t i = 0; i < n_pairs_all; i++)
        if (m.host_ids[i] < 0 || m.host_ids[i] >= w.n_expert)
            throw Error("MoE: expert id " + std::to_string(m.host_ids[i]) + " out of range (" +
                        std::to_string(w.n_expert) + " experts)");
    const bool fused = w.gate_up.data != nullptr;
    const ExpertMatrix& G = fused ? w.gate_up : w.gate;
    const bool tc_ok = m.tc && matmul_tc_supported(G.type, w.n_embd) &&
                       (fused || matmul_tc_supported(w.up.type, w.n_embd)) &&
                       matmul_tc_supported(w.down.type, w.n_ff);
    std::vector<std::vector<int>> by_expert((size_t)w.n_expert);
    for (int t0 = 0; t0 < n_tok; t0 += m.chunk) {
        const int mt = std::min(m.chunk, n_tok - t0);
        const int P = mt * top_k;
        for (auto& v : by_expert) v.clear();
        for (int p = 0; p < P; p++) by_expert[(size_t)m.host_ids[(size_t)t0 * top_k + p]].push_back(p);
        // the table: entries of up to 8 pairs; then, per tensor-core expert, its tokens and pairs
        std::vector<int>& T = m.host_table;
        T.assign(m.table_ints(), -1);
        const size_t lists = 1 + (size_t)m.cap * (1 + kSlots);
        int n_ent = 0, n_list = 0;
        struct TcExpert {
            int e, first, count;
        };
        std::vector<TcExpert> tc_experts;
        for (int e = 0; e < w.n_expert; e++) {
            const std::vector<int>& ps = by_expert[(size_t)e];
            if (ps.empty()) continue;
            if (tc_ok && (int)ps.size() >= m.tc_min_tokens) {
                tc_experts.push_back({e, n_list, (int)ps.size()});
                for (size_t i = 0; i < ps.size(); i++) {
                    T[lists + n_list + i] = ps[i] / top_k;          // token
                    T[lists + m.cap + n_list + i] = ps[i];          // pair
                }
                n_list += (int)ps.size();
                continue;
            }
            for (size_t i0 = 0; i0 < ps.size(); i0 += kSlots, n_ent++) {
                T[1 + (size_t)n_ent] = e;
                for (size_t i = i0; i < std::min(ps.size(), i0 + kSlots); i++)
                    T[1 + (size_t)m.cap + (size_t)n_ent * kSlots + (i - i0)] = ps[i];
            }
        }
        T[0] = n_ent;
        check(cudaMemcpyAsync(m.table.get(), T.data(), T.size() * sizeof(int), cudaMemcpyHostToDevice, s),
              "MoE table upload");
        const float* xc = x + (size_t)t0 * w.n_embd;
        float* h = m.h.get<float>();
        float* y = m.y.get<float>();
        if (n_ent > 0)
            run_gate_up(w, tab, xc, mt, m.xq.get(), false, top_k, kSlots, (unsigned)n_ent, h, nullptr, s);
        for (const TcExpert& te : tc_experts) {
            const int* toks = tab.lists + te.first;
            const int* pairs = tab.lists + m.cap + te.first;
            float* xe = m.xe.get<float>();
            float* gu = m.gu.get<float>();
            float* he = m.he.get<float>();
            float* ye = m.ye.get<float>();
            gather_rows_kernel<<<te.count, 256, 0, s>>>(xc, toks, w.n_embd, xe, 0);
            check_launch("MoE gather");
            const size_t rb_g = row_bytes(G.type, (uint64_t)w.n_embd);
            if (fused) {
                const uint8_t* W = static_cast<const uint8_t*>(G.data) + (size_t)te.e * 2 * w.n_ff * rb_g;
                matmul_tc(G.type, W, 2 * (int64_t)w.n_ff, w.n_embd, xe, te.count, gu, s, m.tcs.get(), m.tcs_bytes);
                act_mul_kernel<<<blocks_for((int64_t)te.count * w.n_ff, 256), 256, 0, s>>>(
                    gu, 2 * (int64_t)w.n_ff, gu + w.n_ff, 2 * (int64_t)w.n_ff, te.count, w.n_ff, w.gelu, he);
            } else {
                const size_t rb_u = row_bytes(w.up.type, (uint64_t)w.n_embd);
                const uint8_t* Wg = static_cast<const uint8_t*>(w.gate.data) + (size_t)te.e * w.n_ff * rb_g;
                const uint8_t* Wu = static_cast<const uint8_t*>(w.up.data) + (size_t)te.e * w.n_ff * rb_u;
                float* up = gu + (size_t)te.count * w.n_ff;
                matmul_tc_prepare(xe, te.count, w.n_embd, m.tcs.get(), s);
                matmul_tc_prepared(G.type, Wg, w.n_ff, w.n_embd, te.count, gu, s, m.tcs.get(), m.tcs_bytes);
                matmul_tc_prepared(w.up.type, Wu, w.n_ff, w.n_embd, te.count, up, s, m.tcs.get(), m.tcs_bytes);
                act_mul_kernel<<<blocks_for((int64_t)te.count * w.n_ff, 256), 256, 0, s>>>(
                    gu, w.n_ff, up, w.n_ff, te.count, w.n_ff, w.gelu, he);
            }
            check_launch("MoE act");
            const size_t rb_d = row_bytes(w.down.type, (uint64_t)w.n_ff);
            const uint8_t* Wd = static_cast<const uint8_t*>(w.down.data) + (size_t)te.e * w.n_embd * rb_d;
            matmul_tc(w.down.type, Wd, w.n_embd, w.n_ff, he, te.count, ye, s, m.tcs.get(), m.tcs_bytes);
            gather_rows_kernel<<<te.count, 256, 0, s>>>(ye, pairs, w.n_embd, y, 1);
            check_launch("MoE scatter");
        }
        if (n_ent > 0)
            run_down(w, tab, h, P, m.hq.get(), false, kSlots, (unsigned)n_ent, y, nullptr, nullptr, nullptr, top_k,
                     mt, nullptr, s);
        weighted_sum_kernel<<<blocks_for((int64_t)mt * w.n_embd, 256), 256, 0, s>>>(
            y, weights + (size_t)t0 * top_k, top_k, w.n_embd, mt, out + (size_t)t0 * w.n_embd);
        check_launch("MoE weighted sum");
    }
}

}  // namespace rotor::cuda
