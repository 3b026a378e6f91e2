// Small helpers shared by the sub-commands: option parsing and reading whole files.
#pragma once
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"

namespace rotor::cli {

// Walks argv-style arguments; value() fetches the argument after an option or fails clearly.
class ArgReader {
public:
    explicit ArgReader(const std::vector<std::string>& args) : args_(args) {}
    bool next() { return ++i_ < args_.size(); }
    const std::string& arg() const { return args_[i_]; }
    const std::string& value() {
        if (i_ + 1 >= args_.size()) throw Error("option " + args_[i_] + " needs a value");
        return args_[++i_];
    }
    int int_value() { return (int)number(value(), true); }
    double float_value() { return number(value(), false); }

private:
    double number(const std::string& s, bool integer) {
        char* end = nullptr;
        const double v = integer ? (double)std::strtoll(s.c_str(), &end, 10) : std::strtod(s.c_str(), &end);
        if (s.empty() || *end) throw Error("option " + args_[i_ - 1] + " expects a number, got '" + s + "'");
        return v;
    }
    const std::vector<std::string>& args_;
    size_t i_ = (size_t)-1;
};

inline std::string read_text_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot read '" + path + "'");
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace rotor::cli
