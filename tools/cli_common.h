// Small helpers shared by the sub-commands: option parsing and reading whole files.
#pragma once
#include <cstdint>
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

// Token files: uint16 little-endian ids, as models/*/val.tokens.u16 stores them.
inline std::vector<int32_t> read_u16_tokens(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot read token file '" + path + "'");
    std::vector<unsigned char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (b.empty() || b.size() % 2) throw Error("token file '" + path + "' is not a non-empty array of uint16");
    std::vector<int32_t> t(b.size() / 2);
    for (size_t i = 0; i < t.size(); i++) t[i] = b[2 * i] | (b[2 * i + 1] << 8);
    return t;
}

// An integer option value of at least lo, or an error naming the option.
inline int parse_int(const std::string& opt, const std::string& v, int lo) {
    size_t used = 0;
    int x = 0;
    try {
        x = std::stoi(v, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != v.size() || x < lo) throw Error(opt + " needs an integer >= " + std::to_string(lo) + ", got '" + v + "'");
    return x;
}

}  // namespace rotor::cli
