// Shared helpers for the tokenizer tests: vocabularies loaded once per process, file reading.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "testdata.h"
#include "tokenizer/vocab.h"

namespace rotor::test {

inline std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Loading the big vocabularies (262k tokens, 515k merges) takes a while: do it once per path.
inline const Vocab& cached_vocab(const std::string& path) {
    static std::mutex mu;
    static std::map<std::string, std::unique_ptr<Vocab>> cache;
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(path);
    if (it == cache.end()) {
        gguf::OpenOptions opt;
        opt.allow_missing_data = true;
        const gguf::File f = gguf::File::open(path, opt);
        it = cache.emplace(path, std::make_unique<Vocab>(Vocab::from_gguf(f))).first;
    }
    return *it->second;
}

inline std::string ids_text(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    return s;
}

// Printable form of a test string for failure messages.
inline std::string escaped(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else out += c;
    }
    return out;
}

}  // namespace rotor::test
