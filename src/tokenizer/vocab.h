// A model's vocabulary and tokenizer, read from the tokenizer.ggml.* keys of a GGUF file.
//
// Tokenizer models (tokenizer.ggml.model):
//   llama   SentencePiece-style: score-driven merges over characters, <0xNN> byte fallback,
//           spaces as U+2581, a space prefixed to text that starts a fragment (add_space_prefix)
//   gpt2    byte-level BPE: a regex pre-tokenizer named by tokenizer.ggml.pre, then rank-driven merges
//   gemma4  BPE on raw UTF-8 with spaces as U+2581, split only at newlines, <0xNN> byte fallback
//   bert    WordPiece with the BERT normalizer (lowercase, strip accents, split punctuation)
// Token ids, splits and special-token rules follow llama.cpp on the same file, so prompts tokenize
// to the ids the model was trained with. One deliberate difference: the qwen2 and qwen35
// pre-tokenizers normalize text to NFC first, as those models' Hugging Face tokenizers do (llama.cpp
// does not; it matters only for text that is not already NFC).
// A Vocab is immutable after loading and safe to share between threads; copies are cheap and share
// the loaded tables.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rotor {

namespace gguf {
class File;
}

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
};

enum class VocabType { Spm, Bpe, Wpm };

struct TokenInfo {
    std::string text;  // as stored in the GGUF
    float score = 0;
    TokenType type = TokenType::Normal;
    bool lstrip = false;  // when matched as a special token, eat whitespace to its left
    bool rstrip = false;  // ... and to its right
};

class Vocab {
public:
    // Throws rotor::Error when the vocabulary is missing or inconsistent (special token ids out of
    // range, duplicate tokens, scores / types / merges of the wrong type or size, malformed merges,
    // add_bos without a BOS token) or of a model / pre-tokenizer rotor does not know. Merges that
    // can never apply (a part that no token or merge produces) are dropped with a warning, as llama.cpp
    // loads such files.
    static Vocab from_gguf(const gguf::File& f);

    // Text to token ids. text must be valid UTF-8 (rotor::Error otherwise).
    //  add_special: add BOS / EOS (BERT: CLS / SEP) as the vocabulary's flags say.
    //  parse_special: control tokens written in the text (e.g. "<|im_start|>") become those tokens;
    //    when false they are ordinary text. User-defined tokens always match (llama.cpp / HF).
    std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special = false) const;

    // The bytes a token stands for (a byte token or byte-level BPE piece can be part of a UTF-8
    // sequence). Control / unknown tokens give their text when render_special, else "".
    // The reference stays valid as long as the Vocab (or a copy of it) exists.
    const std::string& token_to_piece(int32_t id, bool render_special = false) const;

    // Token ids back to text: the concatenated pieces, with SPM's prefix space (and WordPiece's word
    // marker) removed from the first text piece after any leading special tokens. Raw bytes: may end
    // in an incomplete UTF-8 sequence; use StreamDecoder for display.
    std::string detokenize(std::span<const int32_t> ids, bool render_special = false) const;

    int32_t n_tokens() const;
    const TokenInfo& token(int32_t id) const;  // rotor::Error if out of range
    int32_t find(std::string_view text) const;  // id of the token with exactly this text, or -1
    bool valid(int32_t id) const { return id >= 0 && id < n_tokens(); }

    VocabType type() const;
    const std::string& model() const;  // tokenizer.ggml.model
    const std::string& pre() const;    // tokenizer.ggml.pre ("" if absent)

    // Special tokens, -1 where the vocabulary has none.
    int32_t bos() const;
    int32_t eos() const;
    int32_t eot() const;
    int32_t eom() const;
    int32_t unk() const;
    int32_t sep() const;
    int32_t pad() const;
    int32_t mask() const;
    int32_t nl() const;  // the newline token
    int32_t fim_pre() const;
    int32_t fim_suf() const;
    int32_t fim_mid() const;
    int32_t fim_pad() const;
    int32_t fim_rep() const;
    int32_t fim_sep() const;
    bool add_bos() const;
    bool add_eos() const;
    bool add_space_prefix() const;

    // End-of-generation tokens (eos, eot, eom and the usual end-of-turn texts), sorted.
    const std::vector<int32_t>& eog_ids() const;
    bool is_eog(int32_t id) const;
    // Control or unknown: hidden in output unless rendering specials.
    bool is_control(int32_t id) const;

    // Things worth telling a user that are not errors (e.g. tokenizer.ggml.pre absent, so llama.cpp's
    // default pre-tokenizer is used).
    const std::vector<std::string>& warnings() const;

    struct Impl;
    const Impl& impl() const { return *impl_; }

private:
    Vocab() = default;  // made only by from_gguf
    std::shared_ptr<const Impl> impl_;
};

// Detokenizes a stream of tokens (generation) one at a time and returns only complete UTF-8: bytes
// of a character split over byte-fallback tokens or byte-level BPE pieces are held back until the
// character is complete. Bytes that can never form a valid character become U+FFFD, so every
// returned string is valid UTF-8.
class StreamDecoder {
public:
    explicit StreamDecoder(const Vocab& vocab, bool render_special = false);
    std::string push(int32_t id);
    // End of stream: whatever is held back (an incomplete character becomes U+FFFD).
    std::string flush();
    void reset();
    size_t held() const { return pending_.size(); }

private:
    Vocab vocab_;  // a copy shares the tables: the decoder does not depend on the caller's object
    bool render_special_;
    bool at_start_ = true;  // no text piece emitted yet (SPM prefix space still to remove)
    std::string pending_;
};

// Replaces every invalid UTF-8 sequence in s with U+FFFD (one per maximal invalid subpart).
std::string utf8_sanitize(std::string_view s);

}  // namespace rotor
