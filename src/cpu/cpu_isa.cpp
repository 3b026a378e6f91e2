#include "cpu/cpu_isa.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cctype>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace rotor {

std::string_view cpu_isa_name(CpuIsa isa) {
    switch (isa) {
        case CpuIsa::Scalar: return "scalar";
        case CpuIsa::Avx2: return "avx2";
        case CpuIsa::Avx512: return "avx512";
    }
    return "?";
}

std::optional<CpuIsa> cpu_isa_from_name(std::string_view name) {
    std::string s;
    for (char c : name) s.push_back((char)std::tolower((unsigned char)c));
    if (s == "scalar" || s == "generic" || s == "none") return CpuIsa::Scalar;
    if (s == "avx2") return CpuIsa::Avx2;
    if (s == "avx512" || s == "avx-512") return CpuIsa::Avx512;
    return std::nullopt;
}

#if defined(__x86_64__) || defined(__i386__)
// F16C and BMI2 straight from CPUID: clang 14's __builtin_cpu_supports does not know them.
static bool has_f16c_bmi2() {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 29))) return false;  // leaf 1 ECX.29: F16C
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return (b & (1u << 8)) != 0;  // leaf 7 EBX.8: BMI2
}
#endif

bool cpu_isa_supported(CpuIsa isa) {
#if defined(__x86_64__) || defined(__i386__)
    // __builtin_cpu_supports also checks that the OS saves the YMM/ZMM state (via XGETBV).
    switch (isa) {
        case CpuIsa::Scalar: return true;
        case CpuIsa::Avx2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c_bmi2();
        case CpuIsa::Avx512:
            return cpu_isa_supported(CpuIsa::Avx2) && __builtin_cpu_supports("avx512f") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
    }
    return false;
#else
    return isa == CpuIsa::Scalar;
#endif
}

CpuIsa cpu_isa_best() {
    static const CpuIsa best = cpu_isa_supported(CpuIsa::Avx512) ? CpuIsa::Avx512
                               : cpu_isa_supported(CpuIsa::Avx2) ? CpuIsa::Avx2
                                                                 : CpuIsa::Scalar;
    return best;
}

CpuIsa cpu_isa_default() {
    // Read once: every linear layer asks, and the environment does not change under us.
    static const CpuIsa isa = [] {
        const CpuIsa best = cpu_isa_best();
        const char* env = std::getenv("ROTOR_CPU_ISA");
        if (!env || !*env) return best;
        const std::optional<CpuIsa> want = cpu_isa_from_name(env);
        if (!want) throw Error(std::string("ROTOR_CPU_ISA: unknown value '") + env + "' (scalar, avx2, avx512)");
        return (int)*want < (int)best ? *want : best;
    }();
    return isa;
}

}  // namespace rotor
