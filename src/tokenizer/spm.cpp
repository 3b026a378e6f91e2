// SentencePiece-style BPE ("llama" vocabularies): starting from characters, repeatedly merge the
// adjacent pair whose concatenation is the token with the highest score; characters that end up in
// no token are spelled with <0xNN> byte tokens.
#include <algorithm>

#include "common/utf8.h"
#include "tokenizer/vocab_impl.h"

namespace rotor::tok {

namespace {

struct Symbol {
    int32_t prev, next;
    uint32_t start, len;  // bytes of the text; len 0 once merged into its left neighbour
};

struct Bigram {
    float score;
    int32_t left, right;
    uint32_t size;
};

struct BigramOrder {
    // The heap top is the highest score; on equal scores the leftmost pair.
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.score != b.score ? a.score < b.score : a.left > b.left;
    }
};

}  // namespace

namespace {

void spm_piece(const Vocab::Impl& v, std::string_view text, std::vector<int32_t>& out) {
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const size_t len = std::min((size_t)std::max(1, utf8_seq_len((uint8_t)text[i])), text.size() - i);
        const int32_t k = (int32_t)sym.size();
        sym.push_back({k - 1, k + 1, (uint32_t)i, (uint32_t)len});
        i += len;
    }
    if (sym.empty()) return;
    sym.back().next = -1;

    std::vector<Bigram> heap;
    auto try_bigram = [&](int32_t left, int32_t right) {
        if (left < 0 || right < 0) return;
        const Symbol& l = sym[(size_t)left];
        const Symbol& r = sym[(size_t)right];
        const uint32_t size = l.len + r.len;
        const int32_t id = v.lookup(text.substr(l.start, size));  // adjacent symbols are contiguous
        if (id < 0) return;
        heap.push_back({v.tokens[(size_t)id].score, left, right, size});
        std::push_heap(heap.begin(), heap.end(), BigramOrder());
    };
    for (int32_t i = 1; i < (int32_t)sym.size(); i++) try_bigram(i - 1, i);

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), BigramOrder());
        const Bigram b = heap.back();
        heap.pop_back();
        Symbol& l = sym[(size_t)b.left];
        Symbol& r = sym[(size_t)b.right];
        if (l.len == 0 || r.len == 0 || l.len + r.len != b.size) continue;  // stale
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[(size_t)r.next].prev = b.left;
        try_bigram(l.prev, b.left);
        try_bigram(b.left, l.next);
    }

    for (int32_t i = 0; i >= 0; i = sym[(size_t)i].next) {
        const Symbol& s = sym[(size_t)i];
        const std::string_view piece = text.substr(s.start, s.len);
        // Every merged symbol is a token; only single characters can be missing from the vocabulary.
        if (const int32_t id = v.lookup(piece); id >= 0) {
            out.push_back(id);
            continue;
        }
        for (char ch : piece) {
            const int32_t t = v.byte_token[(uint8_t)ch];
            if (t >= 0) out.push_back(t);
            else if (v.unk >= 0) out.push_back(v.unk);
        }
    }
}

}  // namespace

void spm_tokenize(const Vocab::Impl& v, std::string_view text, std::vector<int32_t>& out, WordCache& cache) {
    if (!v.split_at_spaces) {
        spm_piece(v, text, out);
        return;
    }
    std::vector<size_t> lens;
    cut_before_spaces(v, text, lens);
    size_t off = 0;
    std::vector<int32_t> ids;
    for (size_t len : lens) {
        const std::string_view piece = text.substr(off, len);
        off += len;
        if (len > WordCache::kMaxLen) {
            spm_piece(v, piece, out);
            continue;
        }
        auto it = cache.words.find(std::string(piece));
        if (it == cache.words.end()) {
            ids.clear();
            spm_piece(v, piece, ids);
            it = cache.words.emplace(std::string(piece), ids).first;
        }
        out.insert(out.end(), it->second.begin(), it->second.end());
    }
}

}  // namespace rotor::tok
