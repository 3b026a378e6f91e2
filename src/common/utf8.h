// UTF-8 helpers shared by the GGUF reader, the tokenizers and the streaming detokenizer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rotor {

// Strict validation (no overlongs, no surrogates, nothing above U+10FFFF).
bool utf8_valid(std::string_view s);

// Length in bytes of the sequence introduced by lead byte c (1..4), or 0 for a continuation/invalid byte.
inline int utf8_seq_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c < 0xc2) return 0;
    if (c < 0xe0) return 2;
    if (c < 0xf0) return 3;
    if (c < 0xf5) return 4;
    return 0;
}

// Number of bytes at the end of s that form an incomplete (but so far valid) UTF-8 sequence.
// A streaming decoder holds these back until the next piece completes them.
size_t utf8_incomplete_tail(std::string_view s);

void utf8_append(std::string& out, uint32_t cp);

}  // namespace rotor
