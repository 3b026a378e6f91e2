// libFuzzer target: arbitrary bytes tokenized and detokenized with small vocabularies of each model
// (SentencePiece, byte-level BPE, WordPiece, built here with gguf::Writer) and, when ROTOR_SOURCE_DIR
// is set, rotor's own model vocabulary. The first byte picks the vocabulary and the flags.
// Checked: invalid UTF-8 gives rotor::Error and valid UTF-8 never does; lossless vocabularies give the
// text back; the streaming decoder emits valid UTF-8 that adds up to the same text.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/utf8.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

namespace {

rotor::Vocab load(const rotor::gguf::Writer& w) {
    const std::vector<uint8_t> bytes = w.to_bytes();
    return rotor::Vocab::from_gguf(rotor::gguf::File::parse(bytes.data(), bytes.size(), "fuzz-vocab.gguf"));
}

std::string gpt2_char(int b) {
    // GPT-2's byte-to-character map: printable Latin-1 bytes stand for themselves, the rest follow 256.
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) n++;
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    std::string s;
    rotor::utf8_append(s, printable ? (uint32_t)b : 256u + (uint32_t)n);
    return s;
}

struct Vocabs {
    std::vector<rotor::Vocab> all;
    std::vector<bool> lossless;
    // SPM's user-defined token: matched even without parse_special, and the text after it gets the
    // space prefix as in llama.cpp (TinyVocab.SpmMergesByScoreWithByteFallback), so it does not come back
    std::vector<std::string> user_token;
    Vocabs() {
        static const char* hex = "0123456789ABCDEF";
        {  // SentencePiece: specials, byte tokens, a few merges by score, a user-defined token
            std::vector<std::string> t = {"<unk>", "<s>", "</s>"};
            std::vector<int32_t> ty = {2, 3, 3};
            for (int b = 0; b < 256; b++) {
                t.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
                ty.push_back(6);
            }
            for (const char* s : {"\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab", "\xe2\x96\x81" "ab", "\xc3\xa9", "<user>"}) {
                t.push_back(s);
                ty.push_back(std::string(s) == "<user>" ? 4 : 1);
            }
            std::vector<float> sc(t.size());
            for (size_t i = 0; i < sc.size(); i++) sc[i] = -(float)(i % 7);
            rotor::gguf::Writer w;
            w.set_string("tokenizer.ggml.model", "llama");
            w.set_array_string("tokenizer.ggml.tokens", t);
            w.set_array_f32("tokenizer.ggml.scores", sc);
            w.set_array_i32("tokenizer.ggml.token_type", ty);
            all.push_back(load(w));
            lossless.push_back(true);
            user_token.push_back("<user>");
        }
        {  // byte-level BPE with the GPT-2 pre-tokenizer
            std::vector<std::string> t;
            for (int b = 0; b < 256; b++) t.push_back(gpt2_char(b));
            const std::string sp = gpt2_char(' ');
            for (const std::string& s : {sp + "a", std::string("ab"), sp + "ab", std::string("<|endoftext|>")}) t.push_back(s);
            std::vector<int32_t> ty(t.size(), 1);
            ty.back() = 3;
            rotor::gguf::Writer w;
            w.set_string("tokenizer.ggml.model", "gpt2");
            w.set_string("tokenizer.ggml.pre", "gpt-2");
            w.set_array_string("tokenizer.ggml.tokens", t);
            w.set_array_i32("tokenizer.ggml.token_type", ty);
            w.set_array_string("tokenizer.ggml.merges", {sp + " a", "a b", sp + "a b", "x yz"});
            w.set_u32("tokenizer.ggml.eos_token_id", (uint32_t)t.size() - 1);
            all.push_back(load(w));
            lossless.push_back(true);
            user_token.emplace_back();
        }
        {  // WordPiece (lossy: lowercases, strips accents)
            std::vector<std::string> t = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "\xe2\x96\x81" "a", "b", "\xe2\x96\x81" "ab",
                                          "\xe2\x96\x81" ",", "\xe2\x96\x81" "\xe4\xb8\xad"};
            std::vector<int32_t> ty = {3, 3, 3, 3, 3, 1, 1, 1, 1, 1};
            rotor::gguf::Writer w;
            w.set_string("tokenizer.ggml.model", "bert");
            w.set_array_string("tokenizer.ggml.tokens", t);
            w.set_array_i32("tokenizer.ggml.token_type", ty);
            w.set_u32("tokenizer.ggml.unknown_token_id", 1);
            w.set_u32("tokenizer.ggml.bos_token_id", 2);
            w.set_u32("tokenizer.ggml.seperator_token_id", 3);
            w.set_u32("tokenizer.ggml.padding_token_id", 0);
            all.push_back(load(w));
            lossless.push_back(false);
            user_token.emplace_back();
        }
        if (const char* src = std::getenv("ROTOR_SOURCE_DIR")) {
            const std::string path = std::string(src) + "/models/rotor-kjv-11m/rotor-kjv-11m-bf16.gguf";
            if (std::filesystem::exists(path)) {
                rotor::gguf::OpenOptions opt;
                opt.allow_missing_data = true;
                all.push_back(rotor::Vocab::from_gguf(rotor::gguf::File::open(path, opt)));
                lossless.push_back(true);
                user_token.emplace_back();
            }
        }
    }
};

const Vocabs& vocabs() {
    static const Vocabs v;
    return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const Vocabs& vs = vocabs();
    const uint8_t sel = data[0];
    const size_t k = (sel & 7) % vs.all.size();
    const rotor::Vocab& v = vs.all[k];
    const bool add_special = sel & 8, parse_special = sel & 16, render = sel & 32;
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);

    std::vector<int32_t> ids;
    try {
        ids = v.tokenize(text, add_special, parse_special);
    } catch (const rotor::Error&) {
        if (rotor::utf8_valid(text)) abort();  // valid text must tokenize
        return 0;
    }
    if (!rotor::utf8_valid(text)) abort();  // invalid text must be refused

    for (int32_t id : ids)
        if (!v.valid(id)) abort();
    const std::string back = v.detokenize(ids, render);
    rotor::StreamDecoder dec(v, render);
    std::string streamed;
    for (int32_t id : ids) {
        const std::string piece = dec.push(id);
        if (!rotor::utf8_valid(piece)) abort();
        streamed += piece;
    }
    streamed += dec.flush();
    if (streamed != rotor::utf8_sanitize(back)) abort();
    // Lossless vocabularies give the text back (U+2581 itself reads back as a space in SPM; Vocabs
    // says why text with an SPM user-defined token does not).
    const bool user = !vs.user_token[k].empty() && text.find(vs.user_token[k]) != std::string::npos;
    if (vs.lossless[k] && !parse_special && !render && !user && text.find("\xe2\x96\x81") == std::string::npos &&
        back != text)
        abort();
    return 0;
}
