// Internals of rotor::Vocab shared by the tokenizer source files (not part of the public API).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/vocab.h"

namespace rotor {

namespace tok {

// Open-addressing index from text to id (the texts live elsewhere and must not move). Lookups touch
// one slot array and, on a likely hit, the text: far fewer cache misses than std::unordered_map on
// vocabularies of a few hundred thousand tokens.
class TextIndex {
public:
    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < n + n / 2 + 1) cap *= 2;
        slots_.assign(cap, Slot{});
        mask_ = cap - 1;
    }
    // Adds text -> id; returns the id already there if the text is present.
    int32_t insert(std::string_view text, int32_t id) {
        const uint64_t h = std::hash<std::string_view>()(text);
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            Slot& sl = slots_[i];
            if (sl.id < 0) {
                sl = Slot{(uint32_t)(h >> 32), (uint32_t)text.size(), text.data(), id};
                return id;
            }
            if (sl.hash == (uint32_t)(h >> 32) && sl.len == text.size() && text.compare(0, text.size(), sl.data, sl.len) == 0)
                return sl.id;
        }
    }
    int32_t find(std::string_view text) const {
        if (slots_.empty()) return -1;
        const uint64_t h = std::hash<std::string_view>()(text);
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            const Slot& sl = slots_[i];
            if (sl.id < 0) return -1;
            if (sl.hash == (uint32_t)(h >> 32) && sl.len == text.size() && text.compare(0, text.size(), sl.data, sl.len) == 0)
                return sl.id;
        }
    }

private:
    struct Slot {
        uint32_t hash = 0;  // high half of the hash (the low half picks the slot)
        uint32_t len = 0;
        const char* data = nullptr;
        int32_t id = -1;  // -1: empty
    };
    std::vector<Slot> slots_;
    size_t mask_ = 0;
};

// Open-addressing map from a pair of symbol ids to a merge.
class MergeTable {
public:
    struct Merge {
        int32_t rank;
        int32_t result;
    };
    void reserve(size_t n) {
        size_t cap = 16;
        bits_ = 4;
        while (cap < n + n / 2 + 1) cap *= 2, bits_++;
        slots_.assign(cap, Slot{});
    }
    size_t size() const { return size_; }
    // Keeps the first merge of a pair (the lowest rank when added in rank order).
    void insert(int32_t left, int32_t right, Merge m) {
        const uint64_t key = pack(left, right);
        for (size_t i = slot(key);; i = (i + 1) & (slots_.size() - 1)) {
            if (slots_[i].key == key) return;
            if (slots_[i].key == kEmpty) {
                slots_[i] = Slot{key, m};
                size_++;
                return;
            }
        }
    }
    const Merge* find(int32_t left, int32_t right) const {
        if (slots_.empty()) return nullptr;
        const uint64_t key = pack(left, right);
        for (size_t i = slot(key);; i = (i + 1) & (slots_.size() - 1)) {
            if (slots_[i].key == key) return &slots_[i].merge;
            if (slots_[i].key == kEmpty) return nullptr;
        }
    }

private:
    static constexpr uint64_t kEmpty = ~0ull;  // ids are non-negative int32s: no pair packs to this
    static uint64_t pack(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
    size_t slot(uint64_t key) const { return (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - bits_)); }
    struct Slot {
        uint64_t key = kEmpty;
        Merge merge{};
    };
    std::vector<Slot> slots_;
    int bits_ = 0;
    size_t size_ = 0;
};

}  // namespace tok

struct Vocab::Impl {
    VocabType type = VocabType::Spm;
    std::string model, pre;
    tok::PreTokenizerSpec spec;                  // BPE only
    std::unique_ptr<tok::RegexSplitter> splitter;  // BPE only

    std::vector<TokenInfo> tokens;
    tok::TextIndex token_to_id;  // keys point into tokens[i].text
    size_t max_token_len = 0;

    // BPE merges by symbol ids. A merge whose result is not a token gets a symbol id >= n_tokens
    // (llama.cpp merges by text, so such results still take part in later merges).
    tok::MergeTable merges;
    std::vector<std::string> extra_symbols;  // text of symbol id n_tokens + k
    tok::TextIndex extra_to_id;
    std::array<int32_t, 256> byte_symbol{};  // byte-level BPE: symbol of each byte's GPT-2 character
    std::array<int32_t, 256> byte_token{};   // token standing for one raw byte (<0xNN> or the byte's character), -1 if none

    // Special tokens (-1 = none).
    int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, sep = -1, pad = -1, mask = -1, nl = -1;
    int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
    bool add_bos = false, add_eos = false, add_sep = false, add_space_prefix = false;
    bool escape_whitespace = false;  // spaces are U+2581 in token texts
    // SPM and gemma4: text is cut before each U+2581 and the pieces are tokenized on their own (and
    // cached), except after the characters in joins_space: those are the characters some token (SPM)
    // or merge (BPE) joins to a following U+2581. No pair across a cut is then ever a merge
    // candidate, so the result is the same as for the whole text.
    bool split_at_spaces = false;
    std::vector<std::string> joins_space;
    bool lowercase = true, strip_accents = true;  // BERT normalizer
    std::vector<int32_t> eog;
    std::vector<std::string> warnings;

    // Tokens matched in text before the tokenizer runs: control / unknown (only with parse_special)
    // and user-defined ones, longest first. A trie over them finds which ones occur in a text.
    std::vector<int32_t> special_tokens;
    struct TrieNode {
        int32_t token = -1;
    };
    std::vector<TrieNode> trie;
    std::unordered_map<uint64_t, int32_t> trie_edges;  // (node << 8) | byte -> child node

    std::vector<std::string> pieces;  // token_to_piece(id, render_special = true), precomputed

    int32_t n() const { return (int32_t)tokens.size(); }
    int32_t lookup(std::string_view s) const { return token_to_id.find(s); }
    int32_t lookup_symbol(std::string_view s) const {
        const int32_t id = lookup(s);
        return id >= 0 ? id : extra_to_id.find(s);
    }
    bool is_special_type(int32_t id) const {
        const TokenType t = tokens[(size_t)id].type;
        return t == TokenType::Control || t == TokenType::Unknown;
    }
};

namespace tok {

// GPT-2's reversible byte <-> printable code point mapping.
uint32_t byte_to_cp(uint8_t b);
int byte_from_cp(uint32_t cp);  // -1 if cp is not one of the 256 characters

// Pieces seen before within one tokenize() call; prompts repeat words a lot.
struct WordCache {
    std::unordered_map<std::string, std::vector<int32_t>> words;
    static constexpr size_t kMaxLen = 64;  // longer pieces rarely repeat
};

// Lengths of the pieces of s cut as Impl::split_at_spaces describes.
void cut_before_spaces(const Vocab::Impl& v, std::string_view s, std::vector<size_t>& lens);

// The model algorithms over one fragment of text (no special tokens in it); they append ids.
void spm_tokenize(const Vocab::Impl& v, std::string_view text, std::vector<int32_t>& out, WordCache& cache);
void bpe_tokenize(const Vocab::Impl& v, std::string_view text, std::vector<int32_t>& out, WordCache& cache);
void wpm_tokenize(const Vocab::Impl& v, std::string_view text, std::vector<int32_t>& out);

// The piece of one token, computed from the vocabulary (pieces[] caches it).
std::string compute_piece(const Vocab::Impl& v, int32_t id);

}  // namespace tok
}  // namespace rotor
