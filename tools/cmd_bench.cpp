// rotor bench: decode and prefill speed of the CUDA backend on random-weight models of real shapes,
// against the GPU's copy bandwidth measured in the same run (bench/gpu/bench_cuda.cu).
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#ifdef ROTOR_HAVE_CUDA
#include "bench/gpu/bench_cuda.h"
#endif

namespace rotor::cli {
namespace {

int cmd_bench(const Args& args) {
#ifdef ROTOR_HAVE_CUDA
    std::vector<std::string> store = {"rotor bench"};
    store.insert(store.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : store) argv.push_back(a.data());
    return rotor::cuda::bench_cuda_main((int)argv.size(), argv.data());
#else
    (void)args;
    fprintf(stderr, "error: rotor bench measures the CUDA backend; this rotor was built without it (no nvcc)\n");
    return 1;
#endif
}

}  // namespace

ROTOR_COMMAND(bench, "bench [--shapes A,B] [--kv T] [--batches 1,4,16] [--quick]   GPU decode/prefill speed vs bandwidth",
              cmd_bench);

}  // namespace rotor::cli
