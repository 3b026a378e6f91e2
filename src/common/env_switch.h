// 0/1 switches read from the environment (the GPU backend's path switches, cuda/cuda_util.h): strict, so
// a typo in a variable's value is an error rather than a silently chosen path. Plain C++, so the CPU
// tests check it.
#pragma once
#include <atomic>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace rotor {

// Unset or empty gives `unset`, "0" 0, "1" 1; anything else is an error naming the variable.
inline int env_switch(const char* name, int unset) {
    const char* e = std::getenv(name);
    const std::string v = e ? e : "";
    if (v.empty()) return unset;
    if (v != "0" && v != "1") throw Error(std::string(name) + " must be 0 or 1, not '" + v + "'");
    return v == "1" ? 1 : 0;
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
