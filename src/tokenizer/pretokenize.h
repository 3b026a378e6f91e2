// Regex pre-tokenizers for byte-level BPE vocabularies, by the name GGUF files carry in
// tokenizer.ggml.pre (the names and regexes llama.cpp uses), run with PCRE2 in UTF + UCP mode.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rotor::tok {

// What a pre-tokenizer name implies besides its regexes (llama.cpp's per-name vocabulary flags).
struct PreTokenizerSpec {
    std::string name;                 // canonical group name (first name of the group)
    std::vector<std::string> regexes;  // applied in order, each splitting the pieces the previous one made
    bool byte_encode = true;           // GPT-2 byte-to-unicode mapping of the pieces (false: raw UTF-8)
    bool escape_whitespace = false;    // spaces become U+2581 before splitting (SPM-style BPE)
    bool ignore_merges = false;        // a piece that is itself a token is taken whole
    bool add_bos = false;              // default of tokenizer.ggml.add_bos_token
    bool no_bos = false;               // the group has no BOS token by default (chatglm)
    bool nfc = false;                  // Hugging Face's tokenizer.json applies NFC before splitting
};

// The spec for a tokenizer.ggml.pre value; throws rotor::Error for a name it does not know.
// "" (key absent) and "default" give llama.cpp's default regexes.
PreTokenizerSpec pre_tokenizer_spec(std::string_view pre);

// The names pre_tokenizer_spec accepts.
std::vector<std::string> pre_tokenizer_names();

// Compiled regexes; thread-safe to use from several threads at once.
class RegexSplitter {
public:
    explicit RegexSplitter(const std::vector<std::string>& regexes);
    ~RegexSplitter();
    RegexSplitter(const RegexSplitter&) = delete;
    RegexSplitter& operator=(const RegexSplitter&) = delete;

    // Splits valid UTF-8 text: each regex in turn cuts every current piece into its matches and the
    // text between them (llama.cpp's unicode_regex_split semantics). Returns piece lengths in bytes;
    // they add up to text.size() and none is empty.
    std::vector<size_t> split(std::string_view text) const;

private:
    struct Compiled;
    std::vector<std::unique_ptr<Compiled>> res_;
};

}  // namespace rotor::tok
