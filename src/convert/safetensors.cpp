#include "convert/safetensors.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/half.h"

namespace rotor {

int64_t SafeTensor::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::vector<float> SafeTensor::to_f32() const {
    const int64_t n = numel();
    std::vector<float> out((size_t)n);
    if (dtype == "F32") {
        memcpy(out.data(), data, (size_t)n * 4);
    } else if (dtype == "F16" || dtype == "BF16") {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, data + 2 * i, 2);
            out[i] = dtype == "F16" ? fp16_to_f32(h) : bf16_to_f32(h);
        }
    } else if (dtype == "F64") {
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, data + 8 * i, 8);
            out[i] = (float)d;
        }
    } else {
        throw Error("safetensors dtype " + dtype + " is not supported");
    }
    return out;
}

SafeTensorsFile::SafeTensorsFile(const std::string& path) : path_(path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot open '" + path + "'");
    bytes_.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    auto fail = [&](const std::string& m) { throw Error("safetensors file '" + path + "': " + m); };
    if (bytes_.size() < 8) fail("too short");
    uint64_t hlen;
    memcpy(&hlen, bytes_.data(), 8);
    if (hlen > bytes_.size() - 8) fail("header length runs past the end");
    nlohmann::json h;
    try {
        h = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + (long)hlen);
    } catch (const std::exception& e) {
        fail(std::string("bad JSON header: ") + e.what());
    }
    const uint64_t base = 8 + hlen, data_size = bytes_.size() - base;
    for (auto it = h.begin(); it != h.end(); ++it) {
        if (it.key() == "__metadata__") continue;
        SafeTensor t;
        try {
            t.dtype = it.value().at("dtype").get<std::string>();
            t.shape = it.value().at("shape").get<std::vector<int64_t>>();
            const auto off = it.value().at("data_offsets").get<std::vector<uint64_t>>();
            if (off.size() != 2 || off[0] > off[1] || off[1] > data_size) fail("bad data_offsets for " + it.key());
            t.data = bytes_.data() + base + off[0];
            t.n_bytes = off[1] - off[0];
        } catch (const nlohmann::json::exception& e) {
            fail("bad entry for '" + it.key() + "': " + e.what());
        }
        const uint64_t esz = t.dtype == "F64" ? 8 : t.dtype == "F32" ? 4 : 2;
        if ((uint64_t)t.numel() * esz != t.n_bytes) fail("size of '" + it.key() + "' does not match its shape");
        tensors_[it.key()] = t;
    }
}

const SafeTensor* SafeTensorsFile::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace rotor
