// The CUDA benchmark (bench_cuda.cu), run by `rotor bench` and by the rotor-bench-cuda program.
#pragma once

namespace rotor::cuda {
int bench_cuda_main(int argc, char** argv);  // argv[0] is the program name; prints markdown tables
}
