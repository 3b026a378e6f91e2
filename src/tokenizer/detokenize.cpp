// Token ids back to text: token pieces, whole-sequence detokenization and the streaming decoder.
#include "common/error.h"
#include "common/utf8.h"
#include "tokenizer/ucd.h"
#include "tokenizer/vocab_impl.h"

namespace rotor {

namespace tok {

namespace {

void unescape_spaces(std::string_view s, std::string& out) {
    for (size_t i = 0; i < s.size(); i++) {
        if (s.compare(i, 3, "\xe2\x96\x81") == 0) {
            out += ' ';
            i += 2;
        } else {
            out += s[i];
        }
    }
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

}  // namespace

std::string compute_piece(const Vocab::Impl& v, int32_t id) {
    const TokenInfo& t = v.tokens[(size_t)id];
    std::string out;
    switch (t.type) {
        case TokenType::Control:
        case TokenType::Unknown:
            return t.text;  // stored as plain text in every model
        case TokenType::UserDefined:
            // Plain text too, but where spaces are U+2581 (SPM, gemma4) added whitespace tokens such as
            // "▁▁" stand for spaces, as Hugging Face's decoder renders them.
            if (v.type == VocabType::Bpe && !v.escape_whitespace) return t.text;
            unescape_spaces(t.text, out);
            return out;
        case TokenType::Byte:
            if (t.text.size() == 6 && t.text.compare(0, 3, "<0x") == 0 && t.text[5] == '>' && hex_digit(t.text[3]) >= 0 &&
                hex_digit(t.text[4]) >= 0)
                return std::string(1, (char)(hex_digit(t.text[3]) * 16 + hex_digit(t.text[4])));
            break;  // an odd byte token: decode its text like a normal one
        case TokenType::Normal:
            break;
        default:
            return "";  // unused / undefined tokens produce nothing (llama.cpp)
    }
    if (v.type != VocabType::Bpe || v.escape_whitespace) {
        unescape_spaces(t.text, out);
        return out;
    }
    // Byte-level BPE: every character stands for one byte.
    for (uint32_t cp : unicode::decode_utf8(t.text)) {
        const int b = byte_from_cp(cp);
        if (b >= 0) out += (char)b;
        else utf8_append(out, cp);  // not a byte character: keep it as text
    }
    return out;
}

}  // namespace tok

namespace {

// Tokens that do not count as the start of the text for SPM's prefix-space removal.
bool is_leading_special(const Vocab::Impl& v, int32_t id) {
    const TokenType t = v.tokens[(size_t)id].type;
    return t == TokenType::Control || t == TokenType::Unknown || t == TokenType::UserDefined;
}

bool strips_first_space(const Vocab::Impl& v) { return v.add_space_prefix || v.type == VocabType::Wpm; }

void append_replacement(std::string& out) { out += "\xef\xbf\xbd"; }

// Appends s to out with invalid sequences replaced by U+FFFD. When hold_tail, an incomplete but so
// far valid sequence at the very end is not consumed. Returns the number of bytes consumed.
size_t sanitize(std::string_view s, std::string& out, bool hold_tail) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const uint8_t c = p[i];
        if (c < 0x80) {
            out += (char)c;
            i++;
            continue;
        }
        const int len = utf8_seq_len(c);
        if (len == 0) {
            append_replacement(out);
            i++;
            continue;
        }
        // Check the continuation bytes one by one (the second byte's range depends on the lead).
        int k = 1;
        for (; k < len && i + (size_t)k < n; k++) {
            const uint8_t d = p[i + (size_t)k];
            uint8_t lo = 0x80, hi = 0xBF;
            if (k == 1) {
                if (c == 0xE0) lo = 0xA0;
                else if (c == 0xED) hi = 0x9F;
                else if (c == 0xF0) lo = 0x90;
                else if (c == 0xF4) hi = 0x8F;
            }
            if (d < lo || d > hi) break;
        }
        if (k == len) {
            out.append(s.substr(i, (size_t)len));
            i += (size_t)len;
        } else if (i + (size_t)k == n && hold_tail) {
            return i;  // incomplete: wait for more bytes
        } else {
            append_replacement(out);  // one U+FFFD for the maximal invalid subpart
            i += (size_t)k;
        }
    }
    return n;
}

}  // namespace

std::string utf8_sanitize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    sanitize(s, out, false);
    return out;
}

const std::string& Vocab::token_to_piece(int32_t id, bool render_special) const {
    static const std::string kEmpty;
    if (!valid(id)) throw Error("token id " + std::to_string(id) + " is out of range (" + std::to_string(n_tokens()) + " tokens)");
    if (!render_special && impl_->is_special_type(id)) return kEmpty;
    return impl_->pieces[(size_t)id];
}

std::string Vocab::detokenize(std::span<const int32_t> ids, bool render_special) const {
    const Impl& v = *impl_;
    std::string out;
    bool at_start = strips_first_space(v);
    for (int32_t id : ids) {
        std::string_view piece = token_to_piece(id, render_special);
        if (at_start && !is_leading_special(v, id)) {
            if (!piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
            at_start = false;
        }
        out.append(piece);
    }
    return out;
}

StreamDecoder::StreamDecoder(const Vocab& vocab, bool render_special)
    : vocab_(vocab), render_special_(render_special), at_start_(strips_first_space(vocab.impl())) {}

std::string StreamDecoder::push(int32_t id) {
    std::string_view piece = vocab_.token_to_piece(id, render_special_);
    if (at_start_ && !is_leading_special(vocab_.impl(), id)) {
        if (!piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
        at_start_ = false;
    }
    pending_ += piece;
    std::string out;
    const size_t used = sanitize(pending_, out, true);
    pending_.erase(0, used);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out;
    sanitize(pending_, out, false);
    pending_.clear();
    return out;
}

void StreamDecoder::reset() {
    pending_.clear();
    at_start_ = strips_first_space(vocab_.impl());
}

}  // namespace rotor
