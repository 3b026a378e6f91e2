#include "common/utf8.h"

namespace rotor {

bool utf8_valid(std::string_view s) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        const int len = utf8_seq_len(c);
        if (len == 0 || i + len > n) return false;
        for (int k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80) return false;
        if (len == 3) {
            if (c == 0xe0 && p[i + 1] < 0xa0) return false;  // overlong
            if (c == 0xed && p[i + 1] >= 0xa0) return false;  // surrogate
        } else if (len == 4) {
            if (c == 0xf0 && p[i + 1] < 0x90) return false;  // overlong
            if (c == 0xf4 && p[i + 1] >= 0x90) return false;  // > U+10FFFF
        }
        i += len;
    }
    return true;
}

size_t utf8_incomplete_tail(std::string_view s) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const size_t n = s.size();
    // look back at most 3 bytes for a lead byte whose sequence runs past the end
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const uint8_t c = p[n - back];
        if ((c & 0xc0) == 0x80) continue;  // continuation byte, keep looking
        const int len = utf8_seq_len(c);
        return (len > (int)back) ? back : 0;
    }
    return 0;
}

void utf8_append(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back((char)cp);
    } else if (cp < 0x800) {
        out.push_back((char)(0xc0 | (cp >> 6)));
        out.push_back((char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        out.push_back((char)(0xe0 | (cp >> 12)));
        out.push_back((char)(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back((char)(0x80 | (cp & 0x3f)));
    } else {
        out.push_back((char)(0xf0 | (cp >> 18)));
        out.push_back((char)(0x80 | ((cp >> 12) & 0x3f)));
        out.push_back((char)(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back((char)(0x80 | (cp & 0x3f)));
    }
}

}  // namespace rotor
