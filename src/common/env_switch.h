// 0/1 switches read from the environment (the GPU backend's path switches, cuda/cuda_util.h): strict, so
// a typo in a variable's value is an error rather than a silently chosen path. Plain C++, so the CPU
// tests check it.
#pragma once
#include <atomic>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace rotor {

// A whole number from lo to hi (0 <= lo <= hi) read from the environment: unset or empty gives
// `unset`; anything but plain decimal digits (no sign, spaces or leading zeros) or a number out of range
// is an error naming the variable and the value.
inline int env_int(const char* name, int unset, int lo, int hi) {
    const char* e = std::getenv(name);
    const std::string v = e ? e : "";
    if (v.empty()) return unset;
    bool ok = v.size() <= 9 && (v.size() == 1 || v[0] != '0');
    for (char c : v) ok = ok && c >= '0' && c <= '9';
    const long n = ok ? std::stol(v) : -1;
    if (!ok || n < lo || n > hi)
        throw Error(std::string(name) + " must be a whole number from " + std::to_string(lo) + " to " +
                    std::to_string(hi) + ", not '" + v + "'");
    return (int)n;
}

// 0/1 switches: unset or empty gives `unset`, "0" 0, "1" 1; anything else is an error naming the variable.
inline int env_switch(const char* name, int unset) {
    return env_int(name, unset, 0, 1);
}

// A 0/1 switch read from the environment on first use (env_switch), settable at run time.
class EnvSwitch {
public:
    constexpr EnvSwitch(const char* name, int unset) : name_(name), unset_(unset) {}
    bool on() {
        int v = v_.load();
        if (v < 0) {
            int expected = -1;
            v_.compare_exchange_strong(expected, env_switch(name_, unset_));
            v = v_.load();
        }
        return v == 1;
    }
    void set(bool on) { v_.store(on ? 1 : 0); }

private:
    const char* name_;
    int unset_;
    std::atomic<int> v_{-1};  // -1: not read yet
};

}  // namespace rotor
