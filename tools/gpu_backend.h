// `--gpu` for the sub-commands: the CUDA forward pass as a step function (batch -> logits), or a
// clear error when this rotor was built without the CUDA backend. The GPU cache holds f32, f16, q8_0,
// q4_0, q8_0h or q4_0h K/V (cuda/attention.h); other KV types are refused at load, by name.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/forward.h"
#include "model/model.h"
#ifdef ROTOR_HAVE_CUDA
#include "cuda/cuda_forward.h"
#endif

namespace rotor::cli {

using StepFn = std::function<void(const Batch&, std::vector<float>&)>;

// Owns the GPU forward pass; step() runs a batch. n_seq sequences of ctx positions.
class GpuBackend {
public:
    GpuBackend(const Model& m, int n_seq, int ctx, int max_batch, const std::string& k_type, const std::string& v_type) {
#ifdef ROTOR_HAVE_CUDA
        if (k_type != v_type)
            throw Error("--gpu: K and V must have the same type on the GPU so far (got " + k_type + " / " + v_type + ")");
        cuda::CudaForwardOptions o;
        o.n_seq = n_seq;
        o.ctx = ctx;
        o.max_batch = max_batch;
        o.kv = cuda::parse_kv_elem(k_type);
        fw_ = std::make_unique<cuda::CudaForward>(m, o);
        fprintf(stderr, "GPU: %s, weights %.2f GiB, KV cache %.2f GiB (%s)\n", fw_->gpu_name().c_str(),
                fw_->weight_bytes() / 1073741824.0, fw_->kv_bytes() / 1073741824.0, k_type.c_str());
#else
        (void)m, (void)n_seq, (void)ctx, (void)max_batch, (void)k_type, (void)v_type;
        throw Error("--gpu: this rotor was built without the CUDA backend (nvcc was not found when it was built)");
#endif
    }
    void step(const Batch& b, std::vector<float>& logits) {
#ifdef ROTOR_HAVE_CUDA
        fw_->forward(b, logits);
#else
        (void)b, (void)logits;
#endif
    }

private:
#ifdef ROTOR_HAVE_CUDA
    std::unique_ptr<cuda::CudaForward> fw_;
#endif
};

}  // namespace rotor::cli
