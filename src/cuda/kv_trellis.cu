// Quantize-on-write for the tcq KV types (kv_trellis.h): the CPU's TrellisFormat::quantize as one
// thread block per row, with the same floating-point operations in the same order wherever they decide
// a byte, so the GPU cache holds the CPU cache's bytes exactly (rotor-check-cuda and rotor-check-gemma4
// compare every stored row).
//
// Per row:
//   1. the randomized Hadamard rotation in double (the CPU's butterflies, signs from
//      hadamard_sign_negative), rounded to float: y;
//   2. sigma = sqrt(sum y^2 / n) summed in order by one thread, targets t_i = y_i / sigma;
//   3. the tail-biting Viterbi search twice (64 elements around the wrap point with free ends, then
//      the whole row with both ends pinned to the overlap the first pass chose);
//   4. the codes packed, and the least-squares scale summed in order by one thread.
//
// The Viterbi: 4096 states on 512 threads, 8 consecutive states each with their path costs and table
// values in registers. Per element a thread takes the minima of its states' predecessor groups (the 2^k
// states with the same s >> k; the argmin u rides in the low k mantissa bits, as on the CPU) as a tree,
// across 2 threads by a shuffle where a group (16 states at k = 4) spans two, writes them to shared
// memory, and after one barrier reads the minima its states continue from: state (g << k) | u follows
// group ((g mod A) << k) | u, A = 2^(12-2k), so 8 consecutive states read consecutive minima. The
// argmins are packed to 4 bits per group (2 at k = 2): 128-256 bytes of shared memory per element.
// Costs are rounded per operation (__fadd_rn / __fmul_rn): the CPU is built without FMA contraction.
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "common/error.h"
#include "common/half.h"
#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/kv_rotate_row.cuh"
#include "cuda/kv_trellis.h"
#include "kv/kv_hadamard.h"
#include "kv/kv_trellis.h"

namespace rotor::cuda {

namespace {

constexpr int kThreads = 512;
constexpr int kStates = kvq::kTrellisStates;
constexpr int kPerThread = kStates / kThreads;  // 8 states
constexpr int kWarps = kThreads / kWarp;
constexpr int kWrapWindow = 64;                 // the first pass (the CPU's W)
constexpr int kMaxDim = 512;
constexpr int kBackBytesMax = 256;              // back pointer bytes per element (Trellis<K>::kBackBytes)

// The trellis of tcqK as the threads hold it: thread t owns states 8 t .. 8 t + 7; a predecessor group
// (the 2^K states with the same s >> K) spans kThreadsPerGroup threads or a thread holds several.
template <int K>
struct Trellis {
    static constexpr int F = 1 << K, G = kStates >> K, A = G / F;
    static constexpr int kRun = F < kPerThread ? F : kPerThread;  // states of one group in one thread
    static constexpr int kGroupsPerThread = kPerThread / kRun;
    static constexpr int kThreadsPerGroup = F / kRun;
    static constexpr int kBackBits = K == 2 ? 2 : 4;  // per group and element: the argmin u
    static constexpr int kBackBytes = G * kBackBits / 8;
    static_assert(kBackBytes <= kBackBytesMax && kGroupsPerThread * kBackBits == 4);
};

// Dynamic shared memory, in this order (every piece a multiple of 8 bytes for the doubles in front).
struct Layout {
    int d, k;
    __host__ __device__ size_t rot() const { return 0; }                          // d doubles
    __host__ __device__ size_t y() const { return rot() + (size_t)d * 8; }        // d floats
    __host__ __device__ size_t tg() const { return y() + (size_t)d * 4; }         // d floats
    __host__ __device__ size_t tw() const { return tg() + (size_t)d * 4; }        // 64 floats
    __host__ __device__ size_t gm() const { return tw() + kWrapWindow * 4; }      // 2 G floats
    __host__ __device__ size_t st() const { return gm() + 2 * (size_t)(kStates >> k) * 4; }  // d shorts
    __host__ __device__ size_t codes() const { return st() + (size_t)d * 2; }     // d k / 8 bytes
    __host__ __device__ size_t misc() const { return codes() + ((size_t)d * k / 8 + 7) / 8 * 8; }  // 2 x 16 words
    __host__ __device__ size_t back() const { return misc() + 2 * kWarps * 4; }   // d x 256 bytes at most
    __host__ __device__ size_t total() const { return back() + (size_t)d * kBackBytesMax; }
};

template <int K>
__device__ inline float tag(float cost, uint32_t u) {
    return __uint_as_float((__float_as_uint(cost) & ~(uint32_t)((1 << K) - 1)) | u);
}

// One Viterbi pass over tgt[0..m) (kv_trellis.cpp's viterbi_k); afterwards every thread can read in
// misc[0] the best final state (lowest P-order index among equal costs, as the CPU's scan keeps).
// Group minima are taken as trees (the tagged costs of a group are all different, so the minimum
// does not depend on the order).
template <int K>
__device__ void viterbi_pass(const float (&tp)[kPerThread], const float* tgt, int m, int init_low, int end_high,
                             float* gm, uint8_t* back, int* misc) {
    using T = Trellis<K>;
    constexpr int F = T::F, G = T::G, A = T::A, R = T::kRun, TPG = T::kThreadsPerGroup;
    const int tid = threadIdx.x, s0 = tid * kPerThread;  // this thread's first state
    float c[kPerThread];                                  // c[q]: state s0 + q
    {
        const float t0 = tgt[0];
#pragma unroll
        for (int q = 0; q < kPerThread; q++) {
            const float e = __fsub_rn(t0, tp[q]);
            c[q] = (init_low < 0 || ((s0 + q) & (G - 1)) == init_low) ? __fmul_rn(e, e) : 1e30f;
        }
    }
    for (int i = 1; i < m; i++) {
        float* buf = gm + (i & 1) * G;
        uint32_t nib = 0;  // this thread's groups' argmins, kBackBits each
#pragma unroll
        for (int j = 0; j < T::kGroupsPerThread; j++) {
            float v[R];
#pragma unroll
            for (int r = 0; r < R; r++) v[r] = tag<K>(c[j * R + r], (uint32_t)((s0 + j * R + r) & (F - 1)));
#pragma unroll
            for (int w = 1; w < R; w <<= 1)
#pragma unroll
                for (int r = 0; r + w < R; r += 2 * w) v[r] = v[r + w] < v[r] ? v[r + w] : v[r];
            float best = v[0];
#pragma unroll
            for (int o = 1; o < TPG; o <<= 1) {
                const float other = __shfl_xor_sync(0xffffffffu, best, o);
                best = other < best ? other : best;
            }
            if (tid % TPG == 0) buf[(s0 + j * R) >> K] = best;
            nib |= (__float_as_uint(best) & (F - 1)) << (j * T::kBackBits);
        }
        // two threads' (or thread groups') 4 bits make one byte: groups g at bit g * kBackBits
        const uint32_t hi = __shfl_xor_sync(0xffffffffu, nib, TPG);
        if (tid % (2 * TPG) == 0) back[(size_t)i * T::kBackBytes + tid / (2 * TPG)] = (uint8_t)(nib | (hi << 4));
        __syncthreads();
        const float ti = tgt[i];
#pragma unroll
        for (int j = 0; j < T::kGroupsPerThread; j++) {
            const int s = s0 + j * R, from = (((s >> K) % A) << K) | (s & (F - 1));  // R consecutive minima
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float e = __fsub_rn(ti, tp[j * R + r]);
                c[j * R + r] = __fadd_rn(buf[from + r], __fmul_rn(e, e));
            }
        }
    }
    // the best final state: P-order index p = u * G + g; ties to the lowest p
    float bc = 0.0f;
    int bp = -1;
#pragma unroll
    for (int q = 0; q < kPerThread; q++) {
        const int s = s0 + q, g = s >> K, p = (s & (F - 1)) * G + g;
        if (end_high >= 0 && g != end_high) continue;
        if (bp < 0 || c[q] < bc || (c[q] == bc && p < bp)) bc = c[q], bp = p;
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float oc = __shfl_xor_sync(0xffffffffu, bc, o);
        const int op = __shfl_xor_sync(0xffffffffu, bp, o);
        if (op >= 0 && (bp < 0 || oc < bc || (oc == bc && op < bp))) bc = oc, bp = op;
    }
    __syncthreads();  // misc is free; the last element's minima are read
    float* wc = reinterpret_cast<float*>(misc + kWarps);
    if (tid % kWarp == 0) wc[tid / kWarp] = bc, misc[tid / kWarp] = bp;
    __syncthreads();
    if (tid == 0) {
        for (int w = 1; w < kWarps; w++) {
            const float oc = wc[w];
            const int op = misc[w];
            if (op >= 0 && (bp < 0 || oc < bc || (oc == bc && op < bp))) bc = oc, bp = op;
        }
        misc[0] = ((bp % G) << K) | (bp / G);  // the state of index p
    }
    __syncthreads();
}

// The state before `s` at element i (i >= 1) of the last pass.
template <int K>
__device__ inline int back_step(const uint8_t* back, int i, int s) {
    using T = Trellis<K>;
    const int g = s & (T::G - 1), bit = g * T::kBackBits;
    const int u = (back[(size_t)i * T::kBackBytes + bit / 8] >> (bit % 8)) & (T::F - 1);
    return (g << K) | u;
}

template <int K>
__global__ void __launch_bounds__(kThreads)
    kv_store_tcq_kernel(uint8_t* Kc, uint8_t* Vc, int hkv, int dk, int dv, int ctx, const float* __restrict__ k,
                        const float* __restrict__ v, const int32_t* __restrict__ seq,
                        const int32_t* __restrict__ pos, const float* __restrict__ table) {
    constexpr int G = kStates >> K;
    extern __shared__ __align__(16) uint8_t smem[];
    const int t = blockIdx.x, h = blockIdx.y, which = Kc ? blockIdx.z : 1;  // V only: the key comes from it
    const int d = which == 0 ? dk : dv, tid = threadIdx.x;
    const Layout L{d, K};
    double* rot = reinterpret_cast<double*>(smem + L.rot());
    float* y = reinterpret_cast<float*>(smem + L.y());
    float* tg = reinterpret_cast<float*>(smem + L.tg());
    float* tw = reinterpret_cast<float*>(smem + L.tw());
    float* gm = reinterpret_cast<float*>(smem + L.gm());
    int16_t* st = reinterpret_cast<int16_t*>(smem + L.st());
    uint8_t* codes = smem + L.codes();
    int* misc = reinterpret_cast<int*>(smem + L.misc());
    uint8_t* back = smem + L.back();

    const float* x = (which == 0 ? k : v) + ((size_t)t * hkv + h) * d;
    const size_t slot = (size_t)seq[t] * ctx + pos[t] % ctx;  // a ring on sliding-window layers
    const int nbytes = d * K / 8;
    uint8_t* dst = (which == 0 ? Kc : Vc) + (slot * hkv + h) * (size_t)(2 + nbytes);

    // this thread's table values: states tid * 8 .. tid * 8 + 7 (the CPU's TP of its groups)
    float tp[kPerThread];
#pragma unroll
    for (int q = 0; q < kPerThread; q++) tp[q] = table[tid * kPerThread + q];

    // 1-2. y = H D x / sqrt(d) and the scale of the targets, as the CPU computes them
    const double norm2 = rotate_row_in_cpu_order(x, d, rot, y);
    if (!(norm2 > 0.0) || !isfinite(norm2)) {  // a zero (or unusable) vector: scale 0, codes 0
        for (int i = tid; i < 2 + nbytes; i += kThreads) dst[i] = 0;
        return;
    }
    const double sigma = __dsqrt_rn(__ddiv_rn(norm2, (double)d));
    for (int i = tid; i < d; i += kThreads) tg[i] = __double2float_rn(__ddiv_rn((double)y[i], sigma));
    const int W = min(d, kWrapWindow);
    __syncthreads();
    for (int r = tid; r < W; r += kThreads) tw[r] = tg[(d - W / 2 + r) % d];
    __syncthreads();

    // 3. the wrap window with free ends, then the row with both ends pinned to its overlap
    viterbi_pass<K>(tp, tw, W, -1, -1, gm, back, misc);
    if (tid == 0) {
        int s = misc[0];
        for (int i = W - 1; i > W / 2; i--) s = back_step<K>(back, i, s);
        misc[1] = s & (G - 1);
    }
    __syncthreads();
    const int overlap = misc[1];
    __syncthreads();
    viterbi_pass<K>(tp, tg, d, overlap, overlap, gm, back, misc);
    if (tid == 0) {
        int s = misc[0];
        st[d - 1] = (int16_t)s;
        for (int i = d - 1; i > 0; i--) {
            s = back_step<K>(back, i, s);
            st[i - 1] = (int16_t)s;
        }
    }
    __syncthreads();

    // 4. element i's low k state bits at bit i k; then the least-squares scale over the windows
    for (int b = tid; b < nbytes; b += kThreads) {
        uint32_t byte = 0;
        for (int i = (8 * b) / K; i <= (8 * b + 7) / K && i < d; i++) {
            const uint32_t val = (uint32_t)st[i] & ((1u << K) - 1);
            const int sh = i * K - 8 * b;
            byte |= sh >= 0 ? val << sh : val >> -sh;
        }
        codes[b] = (uint8_t)(byte & 0xFF);
    }
    __syncthreads();
    if (tid == 0) {
        double xy = 0.0, yy = 0.0;
        for (int i = 0; i < d; i++) {
            const double val = (double)table[kvq::trellis_window(codes, nbytes, i, K)];
            xy = __dadd_rn(xy, __dmul_rn((double)y[i], val));
            yy = __dadd_rn(yy, __dmul_rn(val, val));
        }
        const uint16_t sc = f32_to_fp16(__double2float_rn(yy > 0.0 ? __ddiv_rn(xy, yy) : 0.0));
        dst[0] = (uint8_t)(sc & 0xFF);
        dst[1] = (uint8_t)(sc >> 8);
    }
    for (int b = tid; b < nbytes; b += kThreads) dst[2 + b] = codes[b];
}

template <int K>
void launch_store(const KvLayerView& kv, const float* k, const float* v, const int32_t* seq, const int32_t* pos,
                  int n_tok, cudaStream_t s) {
    const int d = std::max(kv.k ? kv.head_dim_k : 0, kv.head_dim_v);
    const size_t smem = Layout{d, K}.total();
    const float* table = tcq_device_table(K);  // first on a device: also the kernel's shared memory limit
    const dim3 grid((unsigned)n_tok, (unsigned)kv.n_head_kv, kv.k ? 2u : 1u);
    kv_store_tcq_kernel<K><<<grid, kThreads, smem, s>>>(static_cast<uint8_t*>(kv.k), static_cast<uint8_t*>(kv.v),
                                                        kv.n_head_kv, kv.head_dim_k, kv.head_dim_v, kv.ctx, k, v, seq,
                                                        pos, table);
}

// The encoder's dynamic shared memory limit on the current device, set once per device: the largest
// layout it allows (tcq_store_refusal turns away the rest).
template <int K>
void set_store_limit() {
    smem_optin_once<kv_store_tcq_kernel<K>>((int)std::min<size_t>(Layout{kMaxDim, K}.total(), (size_t)max_smem_optin()));
}

struct TcqTables;

}  // namespace

const float* tcq_device_table(int k) {
    if (k < kvq::kTrellisMinBits || k > kvq::kTrellisMaxBits) throw Error("tcq table: bits " + std::to_string(k));
    const float* t = device_table_once<TcqTables, 3>(k - kvq::kTrellisMinBits, kvq::trellis_code_table(k));
    if (k == 2) set_store_limit<2>();
    if (k == 3) set_store_limit<3>();
    if (k == 4) set_store_limit<4>();
    return t;
}

size_t tcq_store_smem_bytes(int d, int k) { return Layout{d, k}.total(); }

std::string tcq_store_refusal(int d, int k) {
    if (d > kMaxDim) return "tcq on the GPU supports head sizes up to " + std::to_string(kMaxDim);
    const size_t need = tcq_store_smem_bytes(d, k);
    if ((long)need > (long)max_smem_optin())
        return "tcq" + std::to_string(k) + " on the GPU needs " + std::to_string(need / 1024) +
               " KiB of shared memory per block to encode heads of " + std::to_string(d) + "; this GPU allows " +
               std::to_string(max_smem_optin() / 1024) + " KiB";
    return {};
}

void kv_store_tcq(const KvLayerView& kv, const float* k, const float* v, const int32_t* seq, const int32_t* pos,
                  int n_tok, cudaStream_t s) {
    if (n_tok == 0) return;
    const int bits = kv_elem_tcq_bits(kv.elem);
    for (int d : {kv.k ? kv.head_dim_k : 0, kv.head_dim_v})
        if (d > 0)
            if (std::string why = tcq_store_refusal(d, bits); !why.empty()) throw Error("CUDA kv_store: " + why);
    switch (bits) {
        case 2: launch_store<2>(kv, k, v, seq, pos, n_tok, s); break;
        case 3: launch_store<3>(kv, k, v, seq, pos, n_tok, s); break;
        case 4: launch_store<4>(kv, k, v, seq, pos, n_tok, s); break;
        default: throw Error("kv_store_tcq: not a tcq layer");
    }
    check_launch("kv_store_tcq");
}

}  // namespace rotor::cuda
