// Unicode properties (binary search in the generated tables) and canonical normalization.
#include "tokenizer/ucd.h"

#include <algorithm>

#include "common/utf8.h"

namespace rotor::unicode {

namespace {

// Hangul syllables compose and decompose arithmetically (Unicode ch. 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

// Index of the last range whose start is <= cp, for tables packed as (start << shift) | value.
size_t range_index(const uint32_t* table, size_t n, uint32_t cp, int shift) {
    const uint32_t key = (cp << shift) | ((1u << shift) - 1);
    const uint32_t* it = std::upper_bound(table, table + n, key);
    return (size_t)(it - table) - 1;  // table[0] starts at code point 0
}

}  // namespace

Category category(uint32_t cp) {
    if (cp >= 0x110000) return Cn;
    const size_t k = range_index(data::kCategoryRanges, data::kCategoryRanges_size, cp, 5);
    return (Category)(data::kCategoryRanges[k] & 31);
}

bool is_whitespace(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
        case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
            return true;
        default:
            return cp >= 0x2000 && cp <= 0x200A;
    }
}

uint32_t to_lower(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    const data::CodePair* b = data::kLowercase;
    const data::CodePair* e = b + data::kLowercase_size;
    const data::CodePair* it = std::lower_bound(b, e, cp, [](const data::CodePair& p, uint32_t v) { return p.from < v; });
    return (it != e && it->from == cp) ? it->to : cp;
}

uint8_t combining_class(uint32_t cp) {
    if (cp < 0x300 || cp >= 0x110000) return 0;
    const size_t k = range_index(data::kCombiningClassRanges, data::kCombiningClassRanges_size, cp, 8);
    return (uint8_t)(data::kCombiningClassRanges[k] & 0xff);
}

std::vector<uint32_t> decode_utf8(std::string_view s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    size_t i = 0;
    while (i < s.size()) {
        const uint8_t c = p[i];
        const int len = utf8_seq_len(c);
        if (len <= 1 || i + (size_t)len > s.size()) {  // ASCII (or a stray byte: kept as its value)
            out.push_back(c);
            i++;
            continue;
        }
        uint32_t cp = c & (0x7f >> len);
        for (int k = 1; k < len; k++) cp = (cp << 6) | (p[i + k] & 0x3f);
        out.push_back(cp);
        i += len;
    }
    return out;
}

std::string encode_utf8(const std::vector<uint32_t>& cps) {
    std::string out;
    out.reserve(cps.size());
    for (uint32_t cp : cps) utf8_append(out, cp);
    return out;
}

std::vector<uint32_t> nfd(const std::vector<uint32_t>& cps) {
    std::vector<uint32_t> out;
    out.reserve(cps.size());
    const data::Decomposition* b = data::kDecompositions;
    const data::Decomposition* e = b + data::kDecompositions_size;
    for (uint32_t cp : cps) {
        if (cp >= kSBase && cp < kSBase + kSCount) {
            const uint32_t s = cp - kSBase;
            out.push_back(kLBase + s / kNCount);
            out.push_back(kVBase + (s % kNCount) / kTCount);
            if (s % kTCount) out.push_back(kTBase + s % kTCount);
            continue;
        }
        if (cp < 0xC0) {
            out.push_back(cp);
            continue;
        }
        const data::Decomposition* it =
            std::lower_bound(b, e, cp, [](const data::Decomposition& d, uint32_t v) { return d.cp < v; });
        if (it != e && it->cp == cp)
            out.insert(out.end(), data::kDecompositionPool + it->offset, data::kDecompositionPool + it->offset + it->length);
        else
            out.push_back(cp);
    }
    // Canonical ordering: stable sort of each run of non-starters by combining class.
    for (size_t i = 0; i < out.size();) {
        if (combining_class(out[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < out.size() && combining_class(out[j]) != 0) j++;
        std::stable_sort(out.begin() + (ptrdiff_t)i, out.begin() + (ptrdiff_t)j,
                         [](uint32_t a, uint32_t b) { return combining_class(a) < combining_class(b); });
        i = j;
    }
    return out;
}

namespace {

// The primary composite of a + b, or 0.
uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
        return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
    if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
        return a + (b - kTBase);
    const data::Composition* lo = data::kCompositions;
    const data::Composition* hi = lo + data::kCompositions_size;
    const data::Composition* it = std::lower_bound(lo, hi, std::pair<uint32_t, uint32_t>(a, b),
                                                   [](const data::Composition& c, const std::pair<uint32_t, uint32_t>& v) {
                                                       return c.first != v.first ? c.first < v.first : c.second < v.second;
                                                   });
    return (it != hi && it->first == a && it->second == b) ? it->composite : 0;
}

}  // namespace

std::vector<uint32_t> nfc(const std::vector<uint32_t>& cps) {
    std::vector<uint32_t> d = nfd(cps);
    std::vector<uint32_t> out;
    out.reserve(d.size());
    ptrdiff_t starter = -1;  // index in out of the last starter, -1 if none
    int last_class = 0;      // combining class of the last character appended
    for (uint32_t cp : d) {
        const int cls = combining_class(cp);
        // cp may join the starter unless a character in between blocks it. last_class == 0 means the
        // last character appended is the starter itself (every class-0 character becomes the starter).
        if (starter >= 0 && (last_class < cls || last_class == 0)) {
            if (const uint32_t c = compose_pair(out[(size_t)starter], cp)) {
                out[(size_t)starter] = c;
                continue;
            }
        }
        if (cls == 0) starter = (ptrdiff_t)out.size();
        last_class = cls;
        out.push_back(cp);
    }
    return out;
}

std::string nfc(std::string_view s) {
    if (is_nfc_quick(s)) return std::string(s);
    return encode_utf8(nfc(decode_utf8(s)));
}

bool is_nfc_quick(std::string_view s) {
    // Below U+0300 there are no combining marks and nothing composes, so such text is already NFC.
    bool simple = true;
    for (size_t i = 0; i < s.size() && simple; i++) {
        const uint8_t c = (uint8_t)s[i];
        if (c >= 0xCC) simple = false;  // lead byte of U+0300 or above
    }
    if (simple) return true;
    const std::vector<uint32_t> cps = decode_utf8(s);
    return nfc(cps) == cps;
}

}  // namespace rotor::unicode
