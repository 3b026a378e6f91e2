// WordPiece ("bert" vocabularies). GGUF stores word-initial pieces with a U+2581 prefix and
// continuation pieces bare (llama.cpp's conversion of BERT's "##" convention).
#include "common/utf8.h"
#include "tokenizer/ucd.h"
#include "tokenizer/vocab_impl.h"

namespace rotor::tok {

namespace {

bool is_cjk(uint32_t cp) {
    // BERT's "Chinese character" ranges (the CJK ideograph blocks), each split into its own word.
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// The BERT normalizer and pre-tokenizer: drop control characters, optionally strip accents and
// lowercase, split at whitespace, and make every punctuation mark and CJK ideograph a word.
std::vector<std::string> bert_words(const Vocab::Impl& v, std::string_view text) {
    std::vector<uint32_t> cps = unicode::decode_utf8(text);
    if (v.strip_accents) cps = unicode::nfd(cps);
    std::vector<std::string> words(1);
    for (uint32_t cp : cps) {
        if (unicode::is_whitespace(cp)) {
            if (!words.back().empty()) words.emplace_back();
            continue;
        }
        if (cp == 0 || cp == 0xFFFD || unicode::is_other(cp)) continue;
        if (v.strip_accents && unicode::category(cp) == unicode::Mn) continue;
        std::string s;
        utf8_append(s, v.lowercase ? unicode::to_lower(cp) : cp);
        if (unicode::is_punctuation(cp) || (cp < 0x7F && unicode::is_symbol(cp)) || is_cjk(cp)) {
            if (!words.back().empty()) words.emplace_back();
            words.back() = std::move(s);
            words.emplace_back();
        } else {
            words.back() += s;
        }
    }
    if (words.back().empty()) words.pop_back();
    return words;
}

}  // namespace

void wpm_tokenize(const Vocab::Impl& v, std::string_view text, std::vector<int32_t>& out) {
    for (const std::string& w : bert_words(v, text)) {
        const std::string word = "\xe2\x96\x81" + w;
        const size_t n = word.size();
        const size_t mark = out.size();
        // Greedy longest match from the left; a word with any unmatchable part is one unknown token.
        for (size_t i = 0; i < n;) {
            size_t j = std::min(n, i + v.max_token_len);
            int32_t id = -1;
            for (; j > i; j--)
                if ((id = v.lookup(std::string_view(word).substr(i, j - i))) >= 0) break;
            if (id < 0) {
                out.resize(mark);
                break;
            }
            out.push_back(id);
            i = j;
        }
        if (out.size() == mark) out.push_back(v.unk);
    }
}

}  // namespace rotor::tok
