// SHA-256 (FIPS 180-4), streaming: verifies downloads against the digests Hugging Face publishes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace rotor {

class Sha256 {
public:
    Sha256();
    void update(const void* data, size_t n);
    // The digest as 64 lowercase hex digits; the object must not be updated afterwards.
    std::string hex_digest();

private:
    void block(const uint8_t* p);
    uint32_t h_[8];
    uint8_t buf_[64];
    size_t buf_len_ = 0;
    uint64_t total_ = 0;
};

std::string sha256_hex(const std::string& data);
// Digest of a whole file, read in chunks; rotor::Error if it cannot be read.
std::string sha256_file(const std::string& path);
// True for 64 hex digits (either case).
bool is_sha256_hex(const std::string& s);

}  // namespace rotor
