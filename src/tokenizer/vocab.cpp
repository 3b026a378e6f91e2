// Loading a Vocab from GGUF metadata, special-token partitioning, and tokenize().
#include "tokenizer/vocab.h"

#include <algorithm>
#include <cctype>
#include <unordered_set>

#include "common/error.h"
#include "common/utf8.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab_impl.h"

namespace rotor {

namespace {

bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

std::string lower_ascii(std::string s) {
    for (char& c : s) c = (char)std::tolower((unsigned char)c);
    return s;
}

// Offset of the first byte that is not part of valid UTF-8.
size_t first_invalid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const uint8_t c = (uint8_t)s[i];
        const size_t len = c < 0x80 ? 1 : (size_t)utf8_seq_len(c);
        if (len == 0 || i + len > s.size() || !utf8_valid(s.substr(i, len))) return i;
        i += len;
    }
    return s.size();
}

void replace_spaces(std::string& s) {
    std::string out;
    out.reserve(s.size() + s.size() / 4);
    for (char c : s) {
        if (c == ' ') out += "\xe2\x96\x81";
        else out += c;
    }
    s.swap(out);
}

struct SpecialKey {
    const char* key;
    int32_t Vocab::Impl::*field;
};

const SpecialKey kSpecialKeys[] = {
    {"tokenizer.ggml.bos_token_id", &Vocab::Impl::bos},
    {"tokenizer.ggml.eos_token_id", &Vocab::Impl::eos},
    {"tokenizer.ggml.eot_token_id", &Vocab::Impl::eot},
    {"tokenizer.ggml.eom_token_id", &Vocab::Impl::eom},
    {"tokenizer.ggml.unknown_token_id", &Vocab::Impl::unk},
    {"tokenizer.ggml.seperator_token_id", &Vocab::Impl::sep},  // sic: llama.cpp's key name
    {"tokenizer.ggml.padding_token_id", &Vocab::Impl::pad},
    {"tokenizer.ggml.mask_token_id", &Vocab::Impl::mask},
    {"tokenizer.ggml.fim_pre_token_id", &Vocab::Impl::fim_pre},
    {"tokenizer.ggml.fim_suf_token_id", &Vocab::Impl::fim_suf},
    {"tokenizer.ggml.fim_mid_token_id", &Vocab::Impl::fim_mid},
    {"tokenizer.ggml.fim_pad_token_id", &Vocab::Impl::fim_pad},
    {"tokenizer.ggml.fim_rep_token_id", &Vocab::Impl::fim_rep},
    {"tokenizer.ggml.fim_sep_token_id", &Vocab::Impl::fim_sep},
    // older names of the FIM keys
    {"tokenizer.ggml.prefix_token_id", &Vocab::Impl::fim_pre},
    {"tokenizer.ggml.suffix_token_id", &Vocab::Impl::fim_suf},
    {"tokenizer.ggml.middle_token_id", &Vocab::Impl::fim_mid},
};

// Token texts llama.cpp recognises when the GGUF does not name these tokens.
const char* const kEotTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                 "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>",
                                 "<end_of_utterance>"};
const char* const kFimPreTexts[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>",
                                    "▁<PRE>", "<|code_prefix|>", "<|prefix|>"};
const char* const kFimSufTexts[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>",
                                    "▁<SUF>", "<|code_suffix|>", "<|suffix|>"};
const char* const kFimMidTexts[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>",
                                    "▁<MID>", "<|code_middle|>", "<|middle|>"};
const char* const kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
const char* const kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
const char* const kFimSepTexts[] = {"<|file_sep|>"};
const char* const kEogTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                                 "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                                 "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                                 "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~["};

class Loader {
public:
    Loader(const gguf::File& f, Vocab::Impl& v) : f_(f), v_(v) {}

    void run() {
        read_model();
        read_tokens();
        read_flags_and_specials();
        detect_specials();
        if (v_.type == VocabType::Bpe) read_merges();
        find_space_cuts();
        build_byte_tables();
        build_special_matcher();
        v_.pieces.resize(v_.tokens.size());
        for (int32_t id = 0; id < v_.n(); id++) v_.pieces[(size_t)id] = tok::compute_piece(v_, id);
    }

private:
    [[noreturn]] void fail(const std::string& msg) const { f_.fail("vocabulary: " + msg); }

    void read_model() {
        auto model = f_.get_string("tokenizer.ggml.model");
        if (!model) fail("no tokenizer.ggml.model (the file has no vocabulary)");
        v_.model = std::string(*model);
        if (auto pre = f_.get_string("tokenizer.ggml.pre")) v_.pre = std::string(*pre);
        if (v_.model == "llama") {
            v_.type = VocabType::Spm;
            v_.bos = 1, v_.eos = 2, v_.unk = 0;
            v_.add_space_prefix = true;
            v_.add_bos = true;
        } else if (v_.model == "bert") {
            v_.type = VocabType::Wpm;
            v_.bos = 101, v_.unk = 100, v_.sep = 102, v_.pad = 0, v_.mask = 103;
            v_.add_bos = true;
            v_.add_sep = true;
        } else if (v_.model == "gpt2" || v_.model == "gemma4") {
            v_.type = VocabType::Bpe;
            std::string& pre = effective_pre_;
            pre = v_.pre;
            if (v_.model == "gemma4") {
                pre = "gemma4";  // llama.cpp ignores the key for this model
            } else {
                v_.bos = 11, v_.eos = 11;  // llama.cpp's defaults for gpt2 vocabularies
                if (pre.empty())
                    v_.warnings.push_back(
                        "tokenizer.ggml.pre is absent: using llama.cpp's 'default' pre-tokenizer (the model may "
                        "have been trained with another one)");
            }
            try {
                v_.spec = tok::pre_tokenizer_spec(pre);
            } catch (const Error& e) {
                fail(e.what());
            }
            if (v_.spec.no_bos) v_.bos = -1;
            v_.add_bos = v_.spec.add_bos;
            v_.escape_whitespace = v_.spec.escape_whitespace;
            v_.splitter = std::make_unique<tok::RegexSplitter>(v_.spec.regexes);
        } else {
            fail("tokenizer model '" + v_.model + "' is not supported (rotor knows llama, gpt2, gemma4 and bert)");
        }
    }

    void read_tokens() {
        const gguf::Value* toks = f_.get_array("tokenizer.ggml.tokens");
        if (!toks) fail("tokenizer.ggml.tokens is missing");
        if (toks->elem_type != gguf::ValueType::STRING) fail("tokenizer.ggml.tokens is not an array of strings");
        if (toks->count == 0) fail("tokenizer.ggml.tokens is empty");
        if (toks->count > (uint64_t)INT32_MAX) fail("too many tokens");
        const size_t n = (size_t)toks->count;

        const gguf::Value* scores = f_.get_array("tokenizer.ggml.scores");
        if (scores) {
            if (scores->elem_type != gguf::ValueType::F32 && scores->elem_type != gguf::ValueType::I32)
                fail("tokenizer.ggml.scores is not an array of f32");
            if (scores->count < n)
                fail("tokenizer.ggml.scores has " + std::to_string(scores->count) + " entries for " + std::to_string(n) +
                     " tokens");
        }
        const gguf::Value* types = f_.get_array("tokenizer.ggml.token_type");
        if (types) {
            if (types->elem_type != gguf::ValueType::I32 && types->elem_type != gguf::ValueType::U32)
                fail("tokenizer.ggml.token_type is not an array of i32");
            if (types->count < n)
                fail("tokenizer.ggml.token_type has " + std::to_string(types->count) + " entries for " +
                     std::to_string(n) + " tokens");
        }

        v_.tokens.resize(n);
        for (size_t i = 0; i < n; i++) {
            TokenInfo& t = v_.tokens[i];
            t.text = std::string(toks->strs[i]);
            if (t.text.empty()) t.text = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp names them
            if (scores) t.score = scores->elem_type == gguf::ValueType::F32 ? (float)scores->array_float(i)
                                                                             : (float)scores->array_int(i);
            if (types) {
                const int64_t tt = types->array_int(i);
                t.type = (tt >= 1 && tt <= 6) ? (TokenType)tt : TokenType::Undefined;
            }
        }
        v_.token_to_id.reserve(n);
        for (size_t i = 0; i < n; i++) {
            const int32_t had = v_.token_to_id.insert(v_.tokens[i].text, (int32_t)i);
            if (had != (int32_t)i)
                fail("duplicate token '" + v_.tokens[i].text + "' (ids " + std::to_string(had) + " and " +
                     std::to_string(i) + ")");
            v_.max_token_len = std::max(v_.max_token_len, v_.tokens[i].text.size());
        }
    }

    void read_flags_and_specials() {
        if (auto b = f_.get_bool("tokenizer.ggml.add_space_prefix")) v_.add_space_prefix = *b;
        // Defaults that fall outside this vocabulary mean "none".
        for (const SpecialKey& k : kSpecialKeys)
            if (v_.*k.field >= v_.n()) v_.*k.field = -1;
        for (const SpecialKey& k : kSpecialKeys) {
            const gguf::Value* val = f_.find(k.key);
            if (!val) continue;
            if (!val->is_integer()) fail(std::string(k.key) + " is not an integer");
            const int64_t id = *f_.get_int(k.key);
            if (id < 0 || id == 0xffffffffLL) {  // llama.cpp writes -1 as u32 for "none"
                v_.*k.field = -1;
                continue;
            }
            if (id >= v_.n())
                fail(std::string(k.key) + " = " + std::to_string(id) + " is out of range (" + std::to_string(v_.n()) +
                     " tokens)");
            v_.*k.field = (int32_t)id;
        }
        if (auto b = f_.get_bool("tokenizer.ggml.add_bos_token")) v_.add_bos = *b;
        if (auto b = f_.get_bool("tokenizer.ggml.add_eos_token")) v_.add_eos = *b;
        if (auto b = f_.get_bool("tokenizer.ggml.add_sep_token")) v_.add_sep = *b;
        if (effective_pre_ == "gemma4" || effective_pre_ == "granite-embed-multi-311m")
            v_.add_bos = true;  // llama.cpp's Gemma 4 override
        if (v_.add_bos && v_.bos < 0) fail("tokenizer.ggml.add_bos_token is true but there is no BOS token");
        if (v_.add_eos && v_.eos < 0) fail("tokenizer.ggml.add_eos_token is true but there is no EOS token");
        if (v_.type == VocabType::Wpm && v_.add_sep && v_.sep < 0)
            fail("tokenizer.ggml.add_sep_token is true but there is no separator token");
        if (v_.type == VocabType::Wpm && v_.unk < 0) fail("a WordPiece vocabulary needs an unknown token");
        if (auto b = f_.get_bool("tokenizer.ggml.normalizer.lowercase")) v_.lowercase = *b;
        v_.strip_accents = v_.lowercase;
        if (auto b = f_.get_bool("tokenizer.ggml.normalizer.strip_accents")) v_.strip_accents = *b;
    }

    void make_control(int32_t id) {
        TokenInfo& t = v_.tokens[(size_t)id];
        if (t.type != TokenType::Control && t.type != TokenType::UserDefined && t.type != TokenType::Unknown)
            t.type = TokenType::Control;  // llama.cpp adds the control attribute to such tokens
    }

    template <size_t N>
    void detect(int32_t& field, const char* const (&texts)[N]) {
        if (field >= 0) return;
        // llama.cpp takes whichever matching token its hash map yields first; take the lowest id.
        int32_t best = -1;
        for (const char* t : texts)
            if (int32_t id = v_.lookup(t); id >= 0 && (best < 0 || id < best)) best = id;
        if (best >= 0) {
            field = best;
            make_control(best);
        }
    }

    void detect_specials() {
        detect(v_.eot, kEotTexts);
        static const char* const kEom[] = {"<|eom_id|>"};
        detect(v_.eom, kEom);
        detect(v_.fim_pre, kFimPreTexts);
        detect(v_.fim_suf, kFimSufTexts);
        detect(v_.fim_mid, kFimMidTexts);
        detect(v_.fim_pad, kFimPadTexts);
        detect(v_.fim_rep, kFimRepTexts);
        detect(v_.fim_sep, kFimSepTexts);

        std::vector<int32_t> eog;
        for (int32_t id : {v_.fim_pad, v_.fim_rep, v_.fim_sep})
            if (id >= 0) eog.push_back(id);
        for (const char* t : kEogTexts)
            if (int32_t id = v_.lookup(t); id >= 0) {
                eog.push_back(id);
                make_control(id);
            }
        // gpt-oss: these structure tokens are always shown.
        for (const char* t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})
            if (int32_t id = v_.lookup(t); id >= 0) v_.tokens[(size_t)id].type = TokenType::UserDefined;
        for (int32_t id : {v_.eos, v_.eot, v_.eom})
            if (id >= 0) eog.push_back(id);
        std::sort(eog.begin(), eog.end());
        eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
        auto has = [&](const char* t) {
            const int32_t id = v_.lookup(t);
            return id >= 0 && std::binary_search(eog.begin(), eog.end(), id);
        };
        // o200k_harmony / solar-open: <|end|> ends a message, not the generation.
        if (((has("<|return|>") && has("<|call|>")) || (has("<|calls|>") && has("<|flush|>"))) && has("<|end|>")) {
            const int32_t id = v_.lookup("<|end|>");
            eog.erase(std::find(eog.begin(), eog.end(), id));
            v_.tokens[(size_t)id].type = TokenType::UserDefined;
        }
        // Gemma 4: </s> is ordinary text.
        if (has("<|tool_response>") && has("</s>")) {
            const int32_t id = v_.lookup("</s>");
            eog.erase(std::find(eog.begin(), eog.end(), id));
            v_.tokens[(size_t)id].type = TokenType::Normal;
        }
        v_.eog = std::move(eog);

        // Whitespace stripping around special tokens, set by model name as llama.cpp does.
        std::string name = lower_ascii(std::string(f_.get_string("general.name").value_or("")));
        const std::string arch = f_.architecture();
        auto set_attr = [&](const char* text, bool TokenInfo::*field, bool value) {
            if (int32_t id = v_.lookup(text); id >= 0) v_.tokens[(size_t)id].*field = value;
        };
        if (v_.pre.find("jina-v2-de") != std::string::npos || v_.pre.find("jina-v2-es") != std::string::npos ||
            v_.pre.find("jina-v2-code") != std::string::npos || arch.find("nomic-bert-moe") != std::string::npos ||
            arch.find("jina-bert-v3") != std::string::npos) {
            set_attr("<mask>", &TokenInfo::lstrip, true);
        } else if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
            for (TokenInfo& t : v_.tokens)
                if (t.type == TokenType::Control || t.type == TokenType::UserDefined || t.type == TokenType::Unknown)
                    t.rstrip = true;
            set_attr("</s>", &TokenInfo::rstrip, true);
            for (const char* t : {"<unk>", "<s>", "<|endoftext|>"}) set_attr(t, &TokenInfo::rstrip, false);
        } else if (name.find("modern-bert") != std::string::npos) {
            set_attr("[MASK]", &TokenInfo::lstrip, true);
        }
    }

    void read_merges() {
        const gguf::Value* m = f_.get_array("tokenizer.ggml.merges");
        if (!m) fail("tokenizer.ggml.merges is missing (a BPE vocabulary needs its merges)");
        if (m->elem_type != gguf::ValueType::STRING) fail("tokenizer.ggml.merges is not an array of strings");
        if (m->count > (uint64_t)INT32_MAX) fail("too many merges");
        const size_t n = (size_t)m->count;
        std::vector<std::pair<std::string_view, std::string_view>> parts(n);
        for (size_t i = 0; i < n; i++) {
            const std::string_view s = m->strs[i];
            const size_t sp = s.size() > 1 ? s.find(' ', 1) : std::string_view::npos;
            if (sp == std::string_view::npos || sp + 1 >= s.size())
                fail("merge " + std::to_string(i) + " '" + std::string(s) + "' is not two tokens separated by a space");
            parts[i] = {s.substr(0, sp), s.substr(sp + 1)};
        }
        // A merge can apply only if both its parts can occur as symbols: tokens, single characters (the
        // starting symbols) or results of merges that can apply. Merges of two tokens can; the others
        // (rare, except in sparse test vocabularies) go through a worklist, so their order does not
        // matter. Merges that can never apply are dropped.
        struct Ids {
            int32_t a, b, r;
        };
        std::vector<Ids> ids(n);
        std::vector<char> usable(n, 0);
        std::unordered_set<std::string> produced;  // results of usable merges that are not tokens
        std::unordered_map<std::string, std::vector<size_t>> waiting;
        std::vector<size_t> work;
        std::string joined;
        auto make_usable = [&](size_t i) {
            usable[i] = 1;
            if (ids[i].r >= 0) return;
            joined.assign(parts[i].first).append(parts[i].second);
            if (!produced.insert(joined).second) return;
            if (auto it = waiting.find(joined); it != waiting.end()) {
                work.insert(work.end(), it->second.begin(), it->second.end());
                waiting.erase(it);
            }
        };
        for (size_t i = 0; i < n; i++) {
            joined.assign(parts[i].first).append(parts[i].second);
            ids[i] = {v_.lookup(parts[i].first), v_.lookup(parts[i].second), v_.lookup(joined)};
            if (ids[i].a >= 0 && ids[i].b >= 0) make_usable(i);
            else work.push_back(i);
        }
        auto single_char = [](std::string_view s) {
            return !s.empty() && (size_t)std::max(1, utf8_seq_len((uint8_t)s[0])) == s.size() && utf8_valid(s);
        };
        auto available = [&](std::string_view s) { return single_char(s) || produced.count(std::string(s)) > 0; };
        std::reverse(work.begin(), work.end());  // pop in list order
        while (!work.empty()) {
            const size_t i = work.back();
            work.pop_back();
            if (usable[i]) continue;
            if (ids[i].a < 0 && !available(parts[i].first)) {
                waiting[std::string(parts[i].first)].push_back(i);
                continue;
            }
            if (ids[i].b < 0 && !available(parts[i].second)) {
                waiting[std::string(parts[i].second)].push_back(i);
                continue;
            }
            make_usable(i);
        }
        // Symbols that are not tokens get ids of their own (see Impl::merges).
        size_t n_usable = 0;
        const size_t n_not_token = produced.size();
        for (size_t i = 0; i < n; i++) {
            if (!usable[i]) continue;
            n_usable++;
            if (ids[i].a < 0) produced.insert(std::string(parts[i].first));  // a character not in the vocabulary
            if (ids[i].b < 0) produced.insert(std::string(parts[i].second));
        }
        v_.extra_symbols.assign(produced.begin(), produced.end());
        std::sort(v_.extra_symbols.begin(), v_.extra_symbols.end());
        v_.extra_to_id.reserve(v_.extra_symbols.size());
        for (size_t k = 0; k < v_.extra_symbols.size(); k++) v_.extra_to_id.insert(v_.extra_symbols[k], v_.n() + (int32_t)k);
        if (n_not_token)
            v_.warnings.push_back(std::to_string(n_not_token) +
                                  " BPE merges produce text that is not a token (kept, as llama.cpp does)");
        if (n_usable < n)
            v_.warnings.push_back(std::to_string(n - n_usable) +
                                  " BPE merges name text that neither a token nor any merge can produce; they can never "
                                  "apply and are ignored");
        v_.merges.reserve(n_usable);
        usable_merges_.reserve(n_usable);
        for (size_t i = 0; i < n; i++) {
            if (!usable[i]) continue;
            Ids& x = ids[i];
            if (x.a < 0) x.a = v_.lookup_symbol(parts[i].first);
            if (x.b < 0) x.b = v_.lookup_symbol(parts[i].second);
            if (x.r < 0) {
                joined.assign(parts[i].first).append(parts[i].second);
                x.r = v_.lookup_symbol(joined);
            }
            usable_merges_.push_back(parts[i]);
            // The first (lowest-rank) merge of a pair wins, as in llama.cpp.
            v_.merges.insert(x.a, x.b, {(int32_t)i, x.r});
        }
    }

    // Where text may be cut before spaces (see Impl::split_at_spaces).
    void find_space_cuts() {
        static const std::string_view kSpace = "\xe2\x96\x81";
        std::vector<std::string>& joiners = v_.joins_space;
        // The character ending `left` if `right` starts with a space and it is not a space itself.
        auto note = [&](std::string_view left, std::string_view right) {
            if (right.substr(0, 3) != kSpace || left.empty() || (left.size() >= 3 && left.substr(left.size() - 3) == kSpace))
                return;
            size_t q = left.size() - 1;
            while (q > 0 && ((uint8_t)left[q] & 0xc0) == 0x80) q--;
            const std::string c(left.substr(q));
            if (std::find(joiners.begin(), joiners.end(), c) == joiners.end()) joiners.push_back(c);
        };
        if (v_.type == VocabType::Spm) {
            for (const TokenInfo& t : v_.tokens) {
                const std::string_view s = t.text;
                for (size_t p = s.find(kSpace, 1); p != std::string_view::npos; p = s.find(kSpace, p + 1))
                    note(s.substr(0, p), s.substr(p));
            }
        } else if (v_.type == VocabType::Bpe && v_.escape_whitespace) {
            for (const auto& [a, b] : usable_merges_) note(a, b);
        } else {
            return;
        }
        v_.split_at_spaces = joiners.size() <= 32;  // else not worth it
    }

    void build_byte_tables() {
        static const char* const hex = "0123456789ABCDEF";
        for (int b = 0; b < 256; b++) {
            std::string gpt2;
            utf8_append(gpt2, tok::byte_to_cp((uint8_t)b));
            v_.byte_symbol[(size_t)b] = v_.lookup_symbol(gpt2);
            int32_t tok = -1;
            if (v_.type == VocabType::Bpe && v_.spec.byte_encode) {
                tok = v_.lookup(gpt2);
            } else {
                const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
                tok = v_.lookup(name);
                if (tok < 0 && b < 0x80) tok = v_.lookup(std::string(1, (char)b));
            }
            v_.byte_token[(size_t)b] = tok;
        }
    }

    void build_special_matcher() {
        for (int32_t id = 0; id < v_.n(); id++) {
            const TokenType t = v_.tokens[(size_t)id].type;
            if (t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown)
                v_.special_tokens.push_back(id);
        }
        std::stable_sort(v_.special_tokens.begin(), v_.special_tokens.end(), [&](int32_t a, int32_t b) {
            return v_.tokens[(size_t)a].text.size() > v_.tokens[(size_t)b].text.size();
        });
        v_.trie.assign(1, {});
        for (size_t k = 0; k < v_.special_tokens.size(); k++) {
            const std::string& s = v_.tokens[(size_t)v_.special_tokens[k]].text;
            int32_t node = 0;
            for (char c : s) {
                const uint64_t key = ((uint64_t)node << 8) | (uint8_t)c;
                auto it = v_.trie_edges.find(key);
                if (it == v_.trie_edges.end()) {
                    v_.trie.push_back({});
                    it = v_.trie_edges.emplace(key, (int32_t)v_.trie.size() - 1).first;
                }
                node = it->second;
            }
            v_.trie[(size_t)node].token = (int32_t)k;  // index into special_tokens
        }
    }

    const gguf::File& f_;
    Vocab::Impl& v_;
    std::string effective_pre_;  // the pre-tokenizer name in force (BPE)
    std::vector<std::pair<std::string_view, std::string_view>> usable_merges_;
};

struct Fragment {
    size_t off = 0, len = 0;
    int32_t token = -1;  // >= 0: a special token; else the text [off, off + len)
};

// llama.cpp's special-token partition: special tokens longest first, each cutting every text fragment
// at all its occurrences. A trie pass first finds which special tokens occur at all, so the cost does
// not grow with the number of special tokens in the vocabulary.
std::vector<Fragment> partition(const Vocab::Impl& v, std::string_view text, bool parse_special) {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({0, text.size(), -1});
    if (v.special_tokens.empty()) return frags;

    std::vector<int32_t> found;  // indices into special_tokens
    for (size_t i = 0; i < text.size(); i++) {
        int32_t node = 0;
        for (size_t j = i; j < text.size(); j++) {
            auto it = v.trie_edges.find(((uint64_t)node << 8) | (uint8_t)text[j]);
            if (it == v.trie_edges.end()) break;
            node = it->second;
            if (v.trie[(size_t)node].token >= 0) found.push_back(v.trie[(size_t)node].token);
        }
    }
    if (found.empty()) return frags;
    std::sort(found.begin(), found.end());
    found.erase(std::unique(found.begin(), found.end()), found.end());

    std::vector<Fragment> next;
    for (int32_t k : found) {
        const int32_t id = v.special_tokens[(size_t)k];
        const TokenInfo& t = v.tokens[(size_t)id];
        if (!parse_special && v.is_special_type(id)) continue;  // user-defined tokens always match
        next.clear();
        for (const Fragment& f : frags) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            const size_t end = f.off + f.len;
            const std::string_view window = text.substr(0, end);
            size_t pos = f.off;
            while (pos < end) {
                const size_t m = window.find(t.text, pos);
                if (m == std::string_view::npos) break;
                size_t left_end = m;
                if (t.lstrip)
                    while (left_end > pos && is_ascii_space(text[left_end - 1])) left_end--;
                if (left_end > pos) next.push_back({pos, left_end - pos, -1});
                next.push_back({0, 0, id});
                pos = m + t.text.size();
                if (t.rstrip)
                    while (pos < end && is_ascii_space(text[pos])) pos++;
            }
            if (pos < end) next.push_back({pos, end - pos, -1});
        }
        frags.swap(next);
    }
    return frags;
}

}  // namespace

namespace tok {

void cut_before_spaces(const Vocab::Impl& v, std::string_view s, std::vector<size_t>& lens) {
    static const std::string_view kSpace = "\xe2\x96\x81";
    lens.clear();
    size_t start = 0;
    for (size_t p = s.find(kSpace, 1); p != std::string_view::npos; p = s.find(kSpace, p + 3)) {
        size_t q = p - 1;  // start of the character before the space
        while (q > 0 && ((uint8_t)s[q] & 0xc0) == 0x80) q--;
        const std::string_view prev = s.substr(q, p - q);
        if (prev == kSpace) continue;  // inside a run of spaces
        if (std::find(v.joins_space.begin(), v.joins_space.end(), prev) != v.joins_space.end()) continue;
        lens.push_back(p - start);
        start = p;
    }
    if (start < s.size()) lens.push_back(s.size() - start);
}

}  // namespace tok

Vocab Vocab::from_gguf(const gguf::File& f) {
    auto impl = std::make_shared<Impl>();
    Loader(f, *impl).run();
    Impl& v = *impl;
    Vocab out;
    out.impl_ = impl;
    // The newline token: SPM's <0x0A>, otherwise what "\n" tokenizes to.
    if (v.type == VocabType::Spm) {
        v.nl = v.byte_token['\n'] >= 0 ? v.byte_token['\n'] : v.pad;
    } else if (v.type == VocabType::Wpm) {
        v.nl = v.pad;
    } else {
        const std::vector<int32_t> ids = out.tokenize("\n", false, false);
        v.nl = ids.empty() ? v.pad : ids[0];
    }
    return out;
}

std::vector<int32_t> Vocab::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    const Impl& v = *impl_;
    if (!utf8_valid(text))
        throw Error("text to tokenize is not valid UTF-8 (at byte " + std::to_string(first_invalid_utf8(text)) + ")");
    const std::vector<Fragment> frags = partition(v, text, parse_special);
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    switch (v.type) {
        case VocabType::Spm: {
            if (add_special && v.add_bos) out.push_back(v.bos);
            bool prev_special = true;  // text at the start gets the space prefix too
            tok::WordCache cache;
            std::string s;
            for (const Fragment& f : frags) {
                if (f.token >= 0) {
                    out.push_back(f.token);
                    prev_special = true;
                    continue;
                }
                s.clear();
                if (v.add_space_prefix && prev_special) s = " ";
                s.append(text.substr(f.off, f.len));
                replace_spaces(s);
                tok::spm_tokenize(v, s, out, cache);
                prev_special = false;
            }
            if (add_special && v.add_eos) out.push_back(v.eos);
            break;
        }
        case VocabType::Bpe: {
            if (add_special && v.add_bos) out.push_back(v.bos);
            tok::WordCache cache;
            std::string s;
            for (const Fragment& f : frags) {
                if (f.token >= 0) {
                    out.push_back(f.token);
                    continue;
                }
                s.assign(text.substr(f.off, f.len));
                if (v.escape_whitespace) replace_spaces(s);
                tok::bpe_tokenize(v, s, out, cache);
            }
            if (add_special && v.add_eos) out.push_back(v.eos);
            break;
        }
        case VocabType::Wpm: {
            if (add_special && v.add_bos) out.push_back(v.bos);
            for (const Fragment& f : frags) {
                if (f.token >= 0) out.push_back(f.token);
                else tok::wpm_tokenize(v, text.substr(f.off, f.len), out);
            }
            if (add_special && v.add_sep) out.push_back(v.sep);
            break;
        }
    }
    return out;
}

int32_t Vocab::n_tokens() const { return impl_->n(); }
const TokenInfo& Vocab::token(int32_t id) const {
    if (!valid(id)) throw Error("token id " + std::to_string(id) + " is out of range (" + std::to_string(n_tokens()) + " tokens)");
    return impl_->tokens[(size_t)id];
}
int32_t Vocab::find(std::string_view text) const { return impl_->lookup(text); }
VocabType Vocab::type() const { return impl_->type; }
const std::string& Vocab::model() const { return impl_->model; }
const std::string& Vocab::pre() const { return impl_->pre; }
int32_t Vocab::bos() const { return impl_->bos; }
int32_t Vocab::eos() const { return impl_->eos; }
int32_t Vocab::eot() const { return impl_->eot; }
int32_t Vocab::eom() const { return impl_->eom; }
int32_t Vocab::unk() const { return impl_->unk; }
int32_t Vocab::sep() const { return impl_->sep; }
int32_t Vocab::pad() const { return impl_->pad; }
int32_t Vocab::mask() const { return impl_->mask; }
int32_t Vocab::nl() const { return impl_->nl; }
int32_t Vocab::fim_pre() const { return impl_->fim_pre; }
int32_t Vocab::fim_suf() const { return impl_->fim_suf; }
int32_t Vocab::fim_mid() const { return impl_->fim_mid; }
int32_t Vocab::fim_pad() const { return impl_->fim_pad; }
int32_t Vocab::fim_rep() const { return impl_->fim_rep; }
int32_t Vocab::fim_sep() const { return impl_->fim_sep; }
bool Vocab::add_bos() const { return impl_->add_bos; }
bool Vocab::add_eos() const { return impl_->add_eos; }
bool Vocab::add_space_prefix() const { return impl_->add_space_prefix; }
const std::vector<int32_t>& Vocab::eog_ids() const { return impl_->eog; }
bool Vocab::is_eog(int32_t id) const { return std::binary_search(impl_->eog.begin(), impl_->eog.end(), id); }
bool Vocab::is_control(int32_t id) const { return valid(id) && impl_->is_special_type(id); }
const std::vector<std::string>& Vocab::warnings() const { return impl_->warnings; }

}  // namespace rotor
