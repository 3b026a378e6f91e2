// Rank-driven BPE (byte-level GPT-2 style, and gemma4's raw-UTF-8 variant with <0xNN> fallback).
#include <algorithm>
#include <unordered_map>

#include "common/utf8.h"
#include "tokenizer/ucd.h"
#include "tokenizer/vocab_impl.h"

namespace rotor::tok {

namespace {

struct ByteMap {
    uint32_t to_cp[256];
    int16_t from_cp[324];  // the mapped code points are all below 0x144
    ByteMap() {
        std::fill(std::begin(from_cp), std::end(from_cp), (int16_t)-1);
        // Printable Latin-1 bytes stand for themselves; the other 68 take code points 256, 257, ...
        uint32_t next = 256;
        for (int b = 0; b < 256; b++) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            to_cp[b] = printable ? (uint32_t)b : next++;
            from_cp[to_cp[b]] = (int16_t)b;
        }
    }
};

const ByteMap& byte_map() {
    static const ByteMap m;
    return m;
}

struct Symbol {
    int32_t id;       // token or merge-result symbol, -1 for a character no merge knows
    int32_t prev, next;
    uint32_t start, len;  // bytes of the word; len 0 once merged into its left neighbour
};

struct Bigram {
    int32_t rank;
    int32_t left, right;
    int32_t left_id, right_id;
    int32_t result;
};

struct BigramOrder {
    // priority_queue pops the "largest": lowest rank first, then leftmost.
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
    }
};

}  // namespace

uint32_t byte_to_cp(uint8_t b) { return byte_map().to_cp[b]; }
int byte_from_cp(uint32_t cp) { return cp < 324 ? byte_map().from_cp[cp] : -1; }

// Buffers reused from word to word.
struct BpeScratch {
    std::vector<Symbol> symbols;
    std::vector<Bigram> heap;
    std::string encoded;
};

namespace {

void try_bigram(const Vocab::Impl& v, BpeScratch& c, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = c.symbols[(size_t)left];
    const Symbol& r = c.symbols[(size_t)right];
    if (l.id < 0 || r.id < 0) return;
    const tok::MergeTable::Merge* m = v.merges.find(l.id, r.id);
    if (!m) return;
    c.heap.push_back({m->rank, left, right, l.id, r.id, m->result});
    std::push_heap(c.heap.begin(), c.heap.end(), BigramOrder());
}

void bpe_word(const Vocab::Impl& v, std::string_view word, std::vector<int32_t>& out, BpeScratch& c) {
    const bool byte_level = v.spec.byte_encode;
    if (v.spec.ignore_merges || (!byte_level && word.find_first_not_of('\n') == std::string_view::npos)) {
        // A piece that is a token as a whole is taken whole (llama3's ignore_merges; gemma4's newline runs).
        int32_t id = -1;
        if (byte_level) {
            c.encoded.clear();
            for (char ch : word) utf8_append(c.encoded, byte_to_cp((uint8_t)ch));
            id = v.lookup(c.encoded);
        } else {
            id = v.lookup(word);
        }
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }

    std::vector<Symbol>& sym = c.symbols;
    sym.clear();
    if (byte_level) {
        for (size_t i = 0; i < word.size(); i++)
            sym.push_back({v.byte_symbol[(uint8_t)word[i]], (int32_t)i - 1, (int32_t)i + 1, (uint32_t)i, 1});
    } else {
        for (size_t i = 0; i < word.size();) {
            const int n = std::max(1, utf8_seq_len((uint8_t)word[i]));
            const size_t len = std::min((size_t)n, word.size() - i);
            const int32_t k = (int32_t)sym.size();
            sym.push_back({v.lookup_symbol(word.substr(i, len)), k - 1, k + 1, (uint32_t)i, (uint32_t)len});
            i += len;
        }
    }
    if (sym.empty()) return;
    sym.back().next = -1;

    c.heap.clear();
    for (int32_t i = 1; i < (int32_t)sym.size(); i++) try_bigram(v, c, i - 1, i);
    while (!c.heap.empty()) {
        std::pop_heap(c.heap.begin(), c.heap.end(), BigramOrder());
        const Bigram b = c.heap.back();
        c.heap.pop_back();
        Symbol& l = sym[(size_t)b.left];
        Symbol& r = sym[(size_t)b.right];
        // Stale if either side has changed since the pair was queued.
        if (l.len == 0 || r.len == 0 || l.id != b.left_id || r.id != b.right_id || l.next != b.right) continue;
        l.id = b.result;
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[(size_t)r.next].prev = b.left;
        try_bigram(v, c, l.prev, b.left);
        try_bigram(v, c, b.left, l.next);
    }

    for (int32_t i = 0; i >= 0; i = sym[(size_t)i].next) {
        const Symbol& s = sym[(size_t)i];
        if (s.id >= 0 && s.id < v.n()) {
            out.push_back(s.id);
            continue;
        }
        // Not a token: its bytes as byte tokens (gemma4's <0xNN>), as llama.cpp falls back.
        for (uint32_t k = 0; k < s.len; k++) {
            const int32_t t = v.byte_token[(uint8_t)word[s.start + k]];
            if (t >= 0) out.push_back(t);
            else if (v.unk >= 0) out.push_back(v.unk);
        }
    }
}

}  // namespace

void bpe_tokenize(const Vocab::Impl& v, std::string_view text, std::vector<int32_t>& out, WordCache& cache) {
    std::string normalized;
    if (v.spec.nfc && !unicode::is_nfc_quick(text)) {
        normalized = unicode::nfc(text);
        text = normalized;
    }
    BpeScratch scratch;
    std::vector<size_t> pieces = v.splitter->split(text), sub;
    size_t off = 0;
    std::vector<int32_t> ids;
    auto run = [&](std::string_view word) {
        if (word.size() > WordCache::kMaxLen) {
            bpe_word(v, word, out, scratch);
            return;
        }
        auto it = cache.words.find(std::string(word));
        if (it == cache.words.end()) {
            ids.clear();
            bpe_word(v, word, ids, scratch);
            it = cache.words.emplace(std::string(word), ids).first;
        }
        out.insert(out.end(), it->second.begin(), it->second.end());
    };
    for (size_t len : pieces) {
        const std::string_view word = text.substr(off, len);
        off += len;
        if (!v.split_at_spaces) {
            run(word);
            continue;
        }
        cut_before_spaces(v, word, sub);
        size_t o = 0;
        for (size_t n : sub) {
            run(word.substr(o, n));
            o += n;
        }
    }
}

}  // namespace rotor::tok
