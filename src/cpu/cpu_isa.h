// Which x86 SIMD level the CPU kernels use. One binary runs anywhere: the level is picked at run
// time from the CPU's features, and can be lowered (never raised past what the CPU has) for tests
// and benchmarks, by argument or by the environment variable ROTOR_CPU_ISA=scalar|avx2|avx512.
#pragma once
#include <optional>
#include <string_view>

namespace rotor {

enum class CpuIsa : int {
    Scalar = 0,  // portable C++, the reference every SIMD kernel is tested against
    Avx2 = 1,    // AVX2 + FMA + F16C
    Avx512 = 2,  // AVX-512 F/BW/VL/DQ + VNNI (Ice Lake, Zen 4 and later)
};

std::string_view cpu_isa_name(CpuIsa isa);                      // "scalar", "avx2", "avx512"
std::optional<CpuIsa> cpu_isa_from_name(std::string_view name);  // case-insensitive

// True when this CPU (and OS, for the wide register state) can run kernels of that level.
bool cpu_isa_supported(CpuIsa isa);
// The best level the CPU supports.
CpuIsa cpu_isa_best();
// The level used when none is asked for: cpu_isa_best(), lowered by $ROTOR_CPU_ISA when set
// (a value above what the CPU supports is clamped down; an unknown value throws rotor::Error).
// The environment is read once, at the first call.
CpuIsa cpu_isa_default();

}  // namespace rotor
