// rotor-bench-cuda: the CUDA benchmark without the rest of the rotor program (GPU machine builds).
#include "bench/gpu/bench_cuda.h"

int main(int argc, char** argv) { return rotor::cuda::bench_cuda_main(argc, argv); }
