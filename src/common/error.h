// One exception type for everything a user can cause (bad files, bad arguments, bad requests).
#pragma once
#include <stdexcept>
#include <string>

namespace rotor {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace rotor
