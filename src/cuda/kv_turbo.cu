// Quantize-on-write for the tbq KV types (kv_turbo.h): kv_turbo.cpp's TurboFormat::quantize as one
// thread block per row, every operation that decides a byte done as the CPU does it (rounded the same,
// sums in the same order), so rotor-check-cuda can compare the stored rows with the CPU's byte for byte.
//
// Per row: the rotation and sum of squares of kv_rotate_row.cuh; sigma = sqrt(norm2 / d); each
// coordinate's code = the number of bounds below (float)(y_i / sigma) (ScalarCodebook::index); for the
// norm-corrected types the sum of the chosen centroids' squares in order by one thread; the scale as
// fp16; the codes packed by bytes.
#include <algorithm>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "cuda/cuda_util.h"
#include "cuda/device_common.cuh"
#include "cuda/kv_rotate_row.cuh"
#include "cuda/kv_turbo.h"
#include "kv/kv_codebook.h"
#include "kv/kv_packed_codes.h"

namespace rotor::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxDim = 512;  // the CUDA attention's largest head

__global__ void __launch_bounds__(kThreads)
    kv_store_tbq_kernel(uint8_t* Kc, uint8_t* Vc, int hkv, int dk, int dv, int ctx,
                        const float* __restrict__ k, const float* __restrict__ v,
                        const int32_t* __restrict__ seq, const int32_t* __restrict__ pos,
                        const float* __restrict__ codebook, int bits, bool norm_corrected) {
    __shared__ double rot[kMaxDim];
    __shared__ float y[kMaxDim];
    __shared__ uint8_t idx[kMaxDim];
    __shared__ float cb[kTbqCodebookFloats];
    const int t = blockIdx.x, h = blockIdx.y, which = Kc ? blockIdx.z : 1;  // V only: the key comes from it
    const int d = which == 0 ? dk : dv, tid = threadIdx.x;
    const int levels = 1 << bits;
    for (int i = tid; i < kTbqCodebookFloats; i += kThreads) cb[i] = codebook[i];

    const float* x = (which == 0 ? k : v) + ((size_t)t * hkv + h) * d;
    const size_t slot = (size_t)seq[t] * ctx + pos[t] % ctx;  // a ring on sliding-window layers
    const int nbytes = (int)kvq::packed_code_bytes(bits, d);
    uint8_t* dst = (which == 0 ? Kc : Vc) + (slot * hkv + h) * (size_t)kvq::turbo_row_bytes(d, bits);

    const double norm2 = rotate_row_in_cpu_order(x, d, rot, y);  // its barriers cover cb too
    const double sigma = __dsqrt_rn(__ddiv_rn(norm2, (double)d));
    for (int i = tid; i < d; i += kThreads) {
        int c = 0;
        if (sigma > 0.0) {
            const float u = __double2float_rn(__ddiv_rn((double)y[i], sigma));
            for (int b = 0; b < levels - 1; b++) c += u > cb[kTbqBoundsAt + b];
        }
        idx[i] = (uint8_t)c;
    }
    __syncthreads();
    if (tid == 0) {
        double scale = sigma;
        if (norm_corrected) {
            double c2 = 0.0;
            for (int i = 0; i < d; i++) {
                const double c = (double)cb[idx[i]];
                c2 = __dadd_rn(c2, __dmul_rn(c, c));
            }
            scale = c2 > 0.0 ? __dsqrt_rn(__ddiv_rn(norm2, c2)) : 0.0;
        }
        const uint16_t sc = f32_to_fp16(__double2float_rn(scale));
        dst[0] = (uint8_t)(sc & 0xFF);
        dst[1] = (uint8_t)(sc >> 8);
    }
    // byte j of the packed codes (kv_packed_codes.h's layout)
    for (int j = tid; j < nbytes; j += kThreads) {
        uint32_t byte = 0;
        if (bits == 4) {
            byte = (idx[2 * j] & 15u) | ((idx[2 * j + 1] & 15u) << 4);
        } else if (bits == 2 || j < d / 4) {  // 2-bit codes, or 3-bit's low two bits
            for (int e = 0; e < 4; e++) byte |= (idx[4 * j + e] & 3u) << (2 * e);
        } else {  // 3-bit: the plane of third bits
            const int e0 = 8 * (j - d / 4);
            for (int e = 0; e < 8; e++) byte |= ((idx[e0 + e] >> 2) & 1u) << e;
        }
        dst[2 + j] = (uint8_t)byte;
    }
}

struct TbqCodebooks;

}  // namespace

const float* tbq_device_codebook(int bits) {
    if (bits < 2 || bits > 4) throw Error("tbq codebook: bits " + std::to_string(bits));
    // the device layout of each codebook, made once: this runs on every tbq launch
    auto layout = [](int b) {
        const kvq::ScalarCodebook& cb = kvq::lloyd_max_normal(b);
        std::vector<float> host(kTbqCodebookFloats, 0.0f);
        std::copy(cb.centroid.begin(), cb.centroid.end(), host.begin());
        std::copy(cb.bound.begin(), cb.bound.end(), host.begin() + kTbqBoundsAt);
        return host;
    };
    static const std::vector<float> hosts[3] = {layout(2), layout(3), layout(4)};
    return device_table_once<TbqCodebooks, 3>(bits - 2, hosts[bits - 2]);
}

std::string tbq_refusal(int d) {
    if (d > kMaxDim) return "tbq on the GPU supports head sizes up to " + std::to_string(kMaxDim);
    return {};
}

void kv_store_tbq(const KvLayerView& kv, const float* k, const float* v, const int32_t* seq,
                  const int32_t* pos, int n_tok, cudaStream_t s) {
    if (n_tok == 0) return;
    const int bits = kv_elem_tbq_bits(kv.elem);
    if (bits == 0) throw Error("kv_store_tbq: not a tbq layer");
    for (int d : {kv.k ? kv.head_dim_k : 0, kv.head_dim_v})
        if (d > 0)
            if (std::string why = tbq_refusal(d); !why.empty()) throw Error("CUDA kv_store: " + why);
    const dim3 grid((unsigned)n_tok, (unsigned)kv.n_head_kv, kv.k ? 2u : 1u);
    kv_store_tbq_kernel<<<grid, kThreads, 0, s>>>(
        static_cast<uint8_t*>(kv.k), static_cast<uint8_t*>(kv.v), kv.n_head_kv, kv.head_dim_k, kv.head_dim_v,
        kv.ctx, k, v, seq, pos, tbq_device_codebook(bits), bits, kv_elem_tbq_norm_corrected(kv.elem));
    check_launch("kv_store_tbq");
}

}  // namespace rotor::cuda
