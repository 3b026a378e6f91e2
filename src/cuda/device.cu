#include "cuda/device.h"

#include "cuda/cuda_util.h"

namespace rotor::cuda {

namespace {
__global__ void probe_kernel(int* out) {
    if (out) *out = 1;
}
}  // namespace

std::vector<GpuInfo> list_gpus() {
    std::vector<GpuInfo> out;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver / no device" error
        return out;
    }
    for (int i = 0; i < n; i++) {
        cudaDeviceProp p{};
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        GpuInfo g;
        g.index = i;
        g.name = p.name;
        g.cc_major = p.major;
        g.cc_minor = p.minor;
        g.sm_count = p.multiProcessorCount;
        g.total_bytes = p.totalGlobalMem;
        cudaDeviceGetAttribute(&g.mem_bus_bits, cudaDevAttrGlobalMemoryBusWidth, i);
        cudaDeviceGetAttribute(&g.mem_clock_khz, cudaDevAttrMemoryClockRate, i);
        size_t free_b = 0, total_b = 0;
        if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) g.free_bytes = free_b;
        cudaGetLastError();
        out.push_back(g);
    }
    return out;
}

std::string built_architectures() {
#ifdef ROTOR_CUDA_ARCHS
    std::string s = ROTOR_CUDA_ARCHS, out;
    size_t i = 0;
    while (i <= s.size()) {
        size_t j = s.find_first_of(";, ", i);
        if (j == std::string::npos) j = s.size();
        std::string a = s.substr(i, j - i);
        if (const size_t dash = a.find('-'); dash != std::string::npos) a = a.substr(0, dash);
        if (!a.empty()) out += (out.empty() ? "sm_" : " sm_") + a;
        i = j + 1;
    }
    return out;
#else
    return "(unknown)";
#endif
}

GpuInfo select_gpu(int index) {
    const std::vector<GpuInfo> gpus = list_gpus();
    if (gpus.empty()) throw Error("no CUDA GPU found (is the NVIDIA driver loaded?)");
    if (index < 0 || index >= (int)gpus.size())
        throw Error("GPU " + std::to_string(index) + " does not exist (" + std::to_string(gpus.size()) + " found)");
    const GpuInfo& g = gpus[index];
    ROTOR_CUDA_CHECK(cudaSetDevice(index));
    cudaFuncAttributes attr{};
    if (cudaFuncGetAttributes(&attr, probe_kernel) != cudaSuccess) {
        cudaGetLastError();
        throw Error("GPU " + std::to_string(index) + " (" + g.name + ", sm_" + std::to_string(g.cc_major) +
                    std::to_string(g.cc_minor) + ") is not supported by this build: it has kernels for " +
                    built_architectures() + "; rebuild with -DCMAKE_CUDA_ARCHITECTURES=" +
                    std::to_string(g.cc_major) + std::to_string(g.cc_minor));
    }
    return g;
}

}  // namespace rotor::cuda
