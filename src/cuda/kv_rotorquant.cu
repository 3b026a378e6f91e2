// RotorQuant's planar / iso KV types on the GPU (kv_rotorquant.h). The encoder is kv_rotorquant.cpp's
// RotorQuantFormat::quantize with every operation that decides a byte done as the CPU does it (no FMA
// contraction, sums in the CPU's order by one thread), so rotor-check-cuda compares stored rows byte for
// byte.
#include <cuda_fp16.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/kv_rotorquant.h"
#include "kv/kv_rotorquant.h"

namespace rotor::cuda {

namespace {

constexpr int kMaxDim = 512;  // the CUDA attention's largest head
constexpr int kTypes = 8;     // planar / iso x 3 / 4 bits x shipped / corrected

int type_index(KvElem e) {
    switch (e) {
        case KvElem::PLANAR3_0:
            return 0;
        case KvElem::ISO3_0:
            return 1;
        case KvElem::PLANAR4_0:
            return 2;
        case KvElem::ISO4_0:
            return 3;
        case KvElem::PLANAR3_C:
            return 4;
        case KvElem::ISO3_C:
            return 5;
        case KvElem::PLANAR4_C:
            return 6;
        case KvElem::ISO4_C:
            return 7;
        default:
            throw Error(std::string("RotorQuant: not a planar / iso type: ") + kv_elem_name(e));
    }
}

// The tables as the kernels read them (kvq::RotorQuantTables, one struct per type in device memory).
// Their host images are made once: device_tables runs on every store, rotation and attention launch.
using Tables = kvq::RotorQuantTables;
struct RqTables;
const Tables* device_tables(KvElem e) {
    static_assert(sizeof(Tables) % sizeof(float) == 0 && alignof(Tables) == alignof(float));
    static const std::vector<std::vector<float>> hosts = [] {
        std::vector<std::vector<float>> v;  // in type_index order
        for (bool corrected : {false, true})
            for (int bits : {3, 4})
                for (bool iso : {false, true}) {
                    const Tables t = kvq::rotorquant_tables(iso, bits, corrected);
                    std::vector<float> words(sizeof(Tables) / sizeof(float));
                    memcpy(words.data(), &t, sizeof(Tables));  // the struct's bytes, rule included
                    v.push_back(std::move(words));
                }
        return v;
    }();
    const int i = type_index(e);
    return reinterpret_cast<const Tables*>(device_table_once<RqTables, kTypes>(i, hosts[i]));
}

// The encoder's rotation of one block, the fork's expressions term by term, left to right, each
// product and sum rounded (the CPU builds without FMA contraction).
__device__ inline void rq_forward_pair(const Tables& t, int p, float a, float b, float& ra, float& rb) {
    const float c = t.cos[p], s = t.sin[p];
    ra = __fsub_rn(__fmul_rn(c, a), __fmul_rn(s, b));
    rb = __fadd_rn(__fmul_rn(s, a), __fmul_rn(c, b));
}
// r = q (x) v (iso), q = (w, x, y, z); the conjugate gives the decode map.
__device__ inline void quat_mul(float w, float x, float y, float z, const float (&v)[4], float (&r)[4]) {
    r[0] = __fsub_rn(__fsub_rn(__fsub_rn(__fmul_rn(w, v[0]), __fmul_rn(x, v[1])), __fmul_rn(y, v[2])),
                     __fmul_rn(z, v[3]));
    r[1] = __fsub_rn(__fadd_rn(__fadd_rn(__fmul_rn(w, v[1]), __fmul_rn(x, v[0])), __fmul_rn(y, v[3])),
                     __fmul_rn(z, v[2]));
    r[2] = __fadd_rn(__fadd_rn(__fsub_rn(__fmul_rn(w, v[2]), __fmul_rn(x, v[3])), __fmul_rn(y, v[0])),
                     __fmul_rn(z, v[1]));
    r[3] = __fadd_rn(__fsub_rn(__fadd_rn(__fmul_rn(w, v[3]), __fmul_rn(x, v[2])), __fmul_rn(y, v[1])),
                     __fmul_rn(z, v[0]));
}

__device__ inline int rq_code(const Tables& t, int levels, float v) {
    switch (t.rule) {
        case kvq::RotorQuantRule::MidLadder: {
            int i = 0;
            while (i < levels - 1 && !(v < t.threshold[i])) i++;
            return i;
        }
        case kvq::RotorQuantRule::BoundCount: {
            int i = 0;
            for (int b = 0; b < levels - 1; b++) i += v > t.threshold[b];
            return i;
        }
        default: {
            int best = 0;
            float best_d = fabsf(__fsub_rn(v, t.centroid[0]));
            for (int i = 1; i < levels; i++) {
                const float d = fabsf(__fsub_rn(v, t.centroid[i]));
                if (d < best_d) best_d = d, best = i;
            }
            return best;
        }
    }
}

// One thread block of 128 threads per (token, KV head, K or V) row, one RotorQuant block at a time:
// thread j owns element j of the block.
__global__ void __launch_bounds__(kRqBlock)
    kv_store_rq_kernel(uint8_t* Kc, uint8_t* Vc, int hkv, int dk, int dv, int ctx,
                       const float* __restrict__ k, const float* __restrict__ v,
                       const int32_t* __restrict__ seq, const int32_t* __restrict__ pos,
                       const Tables* __restrict__ tables, bool iso, int bits) {
    __shared__ float src[kRqBlock], r[kRqBlock];
    __shared__ uint8_t idx[kRqBlock];
    __shared__ float norms[2];  // grp_norm, inv_norm
    const Tables& t = *tables;
    const int tt = blockIdx.x, h = blockIdx.y, which = Kc ? blockIdx.z : 1;
    const int d = which == 0 ? dk : dv, j = threadIdx.x, levels = 1 << bits;
    const float* x = (which == 0 ? k : v) + ((size_t)tt * hkv + h) * d;
    const size_t slot = (size_t)seq[tt] * ctx + pos[tt] % ctx;  // a ring on sliding-window layers
    const uint64_t bb = rotorquant_block_bytes(bits);
    uint8_t* dst = (which == 0 ? Kc : Vc) + (slot * hkv + h) * (d / kRqBlock) * bb;
    const int nbytes = (int)kvq::packed_code_bytes(bits, kRqBlock);
    for (int b0 = 0; b0 < d; b0 += kRqBlock, dst += bb) {
        src[j] = x[b0 + j];
        __syncthreads();
        if (j == 0) {
            float norm_sq = 0.0f;
            for (int i = 0; i < kRqBlock; i++) norm_sq = __fadd_rn(norm_sq, __fmul_rn(src[i], src[i]));
            const float grp_norm = __fsqrt_rn(norm_sq);
            norms[0] = grp_norm;
            norms[1] = grp_norm > 1e-10f ? __fdiv_rn(1.0f, grp_norm) : 0.0f;
        }
        __syncthreads();
        const float inv_norm = norms[1];
        if (iso) {
            if (j < 32) {
                const float u[4] = {__fmul_rn(src[4 * j], inv_norm), __fmul_rn(src[4 * j + 1], inv_norm),
                                    __fmul_rn(src[4 * j + 2], inv_norm), __fmul_rn(src[4 * j + 3], inv_norm)};
                float o[4];
                quat_mul(t.qw[j], t.qx[j], t.qy[j], t.qz[j], u, o);
                for (int i = 0; i < 4; i++) r[4 * j + i] = o[i];
            }
        } else if (j < 64) {
            rq_forward_pair(t, j, __fmul_rn(src[2 * j], inv_norm), __fmul_rn(src[2 * j + 1], inv_norm),
                            r[2 * j], r[2 * j + 1]);
        }
        __syncthreads();
        idx[j] = (uint8_t)rq_code(t, levels, r[j]);
        __syncthreads();
        if (j == 0) {
            float recon_sq = 0.0f;
            for (int i = 0; i < kRqBlock; i++) {
                const float c = t.centroid[idx[i]];
                recon_sq = __fadd_rn(recon_sq, __fmul_rn(c, c));
            }
            const float recon_norm = __fsqrt_rn(recon_sq), grp_norm = norms[0];
            const uint16_t sc = f32_to_fp16(recon_norm > 1e-10f ? __fdiv_rn(grp_norm, recon_norm) : grp_norm);
            dst[0] = (uint8_t)(sc & 0xFF);
            dst[1] = (uint8_t)(sc >> 8);
        }
        // byte j of the packed codes (kv_packed_codes.h's layout over 128 codes)
        if (j < nbytes) {
            uint32_t byte = 0;
            if (bits == 4) {
                byte = (idx[2 * j] & 15u) | ((idx[2 * j + 1] & 15u) << 4);
            } else if (j < kRqBlock / 4) {  // 3-bit: the low two bits
                for (int e = 0; e < 4; e++) byte |= (idx[4 * j + e] & 3u) << (2 * e);
            } else {  // 3-bit: the plane of third bits
                const int e0 = 8 * (j - kRqBlock / 4);
                for (int e = 0; e < 8; e++) byte |= ((idx[e0 + e] >> 2) & 1u) << e;
            }
            dst[2 + j] = (uint8_t)byte;
        }
        __syncthreads();  // src, r, idx are reused by the next block
    }
}

// back = false: the encoder's rotation (queries); back = true: the CPU's inverse (outputs). One thread per
// pair (planar) or group of 4 (iso).
__global__ void rq_rotate_rows_kernel(float* x, int d, int n_rows, const Tables* __restrict__ tables,
                                      bool iso, bool back) {
    const Tables& t = *tables;
    const int per_row = iso ? d / 4 : d / 2;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n_rows * per_row) return;
    const int64_t row = i / per_row;
    const int u = (int)(i % per_row);
    float* p = x + row * d;
    if (iso) {
        const int g = u % 32;  // the group's quaternion within its block of 128
        float* v4 = p + 4 * u;
        const float v[4] = {v4[0], v4[1], v4[2], v4[3]};
        const float sg = back ? -1.0f : 1.0f;
        float o[4];
        quat_mul(t.qw[g], sg * t.qx[g], sg * t.qy[g], sg * t.qz[g], v, o);
        for (int k = 0; k < 4; k++) v4[k] = o[k];
    } else {
        const int pr = u % 64;
        const float c = t.cos[pr], s = back ? -t.sin[pr] : t.sin[pr];
        const float a = p[2 * u], b = p[2 * u + 1];
        p[2 * u] = c * a - s * b;
        p[2 * u + 1] = s * a + c * b;
    }
}

}  // namespace

const float* rotorquant_device_centroids(KvElem e) {
    return device_tables(e)->centroid;
}

std::string rotorquant_refusal(KvElem e, int d) {
    if (d % kRqBlock)
        return "KV type " + std::string(kv_elem_name(e)) +
               " needs head sizes that are multiples of 128 (RotorQuant blocks are 128 elements of one head)";
    if (d > kMaxDim) return "RotorQuant on the GPU supports head sizes up to " + std::to_string(kMaxDim);
    return {};
}

void kv_store_rotorquant(const KvLayerView& kv, const float* k, const float* v, const int32_t* seq,
                         const int32_t* pos, int n_tok, cudaStream_t s) {
    if (n_tok == 0) return;
    for (int d : {kv.k ? kv.head_dim_k : 0, kv.head_dim_v})
        if (d > 0)
            if (std::string why = rotorquant_refusal(kv.elem, d); !why.empty())
                throw Error("CUDA kv_store: " + why);
    const dim3 grid((unsigned)n_tok, (unsigned)kv.n_head_kv, kv.k ? 2u : 1u);
    kv_store_rq_kernel<<<grid, kRqBlock, 0, s>>>(
        static_cast<uint8_t*>(kv.k), static_cast<uint8_t*>(kv.v), kv.n_head_kv, kv.head_dim_k, kv.head_dim_v,
        kv.ctx, k, v, seq, pos, device_tables(kv.elem), kv_elem_rotorquant_iso(kv.elem),
        kv_elem_rotorquant_bits(kv.elem));
    check_launch("kv_store_rotorquant");
}

void rotorquant_rotate_rows(KvElem e, float* x, int n_rows, int d, bool back, cudaStream_t s) {
    if (n_rows == 0) return;
    if (std::string why = rotorquant_refusal(e, d); !why.empty())
        throw Error("CUDA RotorQuant rotation: " + why);
    const bool iso = kv_elem_rotorquant_iso(e);
    const int64_t units = (int64_t)n_rows * (iso ? d / 4 : d / 2);
    rq_rotate_rows_kernel<<<(unsigned)((units + 255) / 256), 256, 0, s>>>(x, d, n_rows, device_tables(e), iso,
                                                                          back);
    check_launch("rotorquant_rotate_rows");
}

}  // namespace rotor::cuda
