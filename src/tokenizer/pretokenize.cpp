// Pre-tokenizer regexes by tokenizer.ggml.pre name, and the PCRE2 splitter that applies them.
#include "tokenizer/pretokenize.h"

#include <pcre2.h>

#include <algorithm>

#include "common/error.h"

namespace rotor::tok {

namespace {

// The regexes, as llama.cpp's llama-vocab.cpp lists them per pre-tokenizer type. Where llama.cpp
// rewrote a tokenizer.json regex only because std::regex lacks a feature (Unicode subcategories,
// possessive quantifiers), the tokenizer.json original is used: PCRE2 runs it as Hugging Face does.
// (?i:'s|...) stays spelled out as [sS] classes so that no Unicode case folding (U+017F) applies.
#define CONTRACTIONS R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]))re"

const char* const kGpt2 = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))re";
const char* const kLlama3 =
    CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kJais2 =
    CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+)re"
    R"re(|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S))re"
    R"re(|\s{1,2}(?!\S)|\s{1})re";
const char* const kQwen2 =
    CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kQwen35 =
    CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kBloom = R"re( ?[^(\s|.,!?…。，、।۔،)]+)re";
const char* const kDeepseekLetters =
    // Cased letters of many scripts (\x{} escapes: NFC-normalizing editors would change some).
    R"re(\s?[)re"
    R"re(A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293})re"
    R"re(\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C})re"
    R"re(\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5})re"
    R"re(\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B})re"
    R"re(\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45})re"
    R"re(\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4})re"
    R"re(\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB})re"
    R"re(\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115})re"
    R"re(\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139})re"
    R"re(\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})re"
    R"re(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})re"
    R"re(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17})re"
    R"re(\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB})re"
    R"re(\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943})re"
    R"re(]+)re";
const char* const kCjkDeepseek = R"re([一-龥ࠀ-一가-퟿]+)re";
const char* const kCjkKana = R"re([一-龥぀-ゟ゠-ヿ]+)re";
const char* const kAsciiPunctLetters = R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+)re";
// GPT-4o style: cased words with an optional contraction, digits in threes, '/' kept after symbols.
const char* const kGpt4o =
    R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+)re" CONTRACTIONS
    R"re(?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*)re" CONTRACTIONS
    R"re(?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

struct Group {
    std::vector<std::string> names;
    PreTokenizerSpec spec;
};

PreTokenizerSpec make(std::vector<std::string> regexes) {
    PreTokenizerSpec s;
    s.regexes = std::move(regexes);
    return s;
}

const std::vector<Group>& groups() {
    static const std::vector<Group> g = [] {
        std::vector<Group> v;
        auto add = [&](std::vector<std::string> names, PreTokenizerSpec s) {
            s.name = names[0];
            v.push_back({std::move(names), std::move(s)});
        };
        {
            PreTokenizerSpec s = make({"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"});
            add({"default", ""}, s);
        }
        {
            PreTokenizerSpec s = make({kLlama3});
            s.ignore_merges = true;
            s.add_bos = true;
            add({"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"}, s);
        }
        add({"dbrx", "smaug-bpe"}, make({kLlama3}));
        {
            PreTokenizerSpec s = make({kLlama3});
            s.no_bos = true;
            add({"chatglm-bpe", "glm4"}, s);
        }
        add({"jais-2"}, make({kJais2}));
        add({"deepseek-llm"}, make({"[\\r\\n]", kDeepseekLetters, R"re(\s?[!-/:-~！-／：-～‘-‟　-。]+)re", "\\s+$",
                                    kCjkDeepseek, "\\p{N}+"}));
        add({"deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"},
            make({"\\p{N}{1,3}", kCjkKana,
                  std::string(kAsciiPunctLetters) +
                      R"re(|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}));
        add({"spark2_5"}, make({"\\p{N}{1,3}", kCjkKana,
                                std::string(kAsciiPunctLetters) +
                                    R"re(|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+)re",
                                "\\p{N}"}));
        {
            PreTokenizerSpec s = make({R"re([가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+)re",
                                       R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+)re" CONTRACTIONS
                                       R"re(?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*)re" CONTRACTIONS
                                       R"re(?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"});
            s.ignore_merges = true;
            add({"youtu"}, s);
        }
        add({"deepseek-coder"}, make({"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjkDeepseek, "\\p{N}"}));
        add({"falcon"}, make({"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"}));
        add({"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2"},
            make({"\\p{N}", kGpt2}));
        add({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
             "modern-bert", "exaone4", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "trillion",
             "granite-docling"},
            make({kGpt2}));
        {
            // Qwen's tokenizer.json normalizes to NFC before splitting; llama.cpp skips that step, which
            // only matters for text that is not already NFC (e.g. "e" + U+0301).
            PreTokenizerSpec s = make({kQwen2});
            s.nfc = true;
            add({"qwen2"}, s);
            s = make({kQwen35});
            s.nfc = true;
            add({"qwen35"}, s);
        }
        add({"deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "hunyuan", "solar-open", "megrez", "grok-2"},
            make({kQwen2}));
        add({"bloom", "poro-chat", "gpt3-finnish"}, make({kBloom}));
        add({"viking"}, make({kBloom, "\\p{N}"}));
        {
            PreTokenizerSpec s = make({R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+)re"
                                       R"re(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*)re"
                                       R"re(|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"});
            s.ignore_merges = true;
            s.add_bos = true;
            add({"tekken"}, s);
        }
        {
            PreTokenizerSpec s = make({"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )",
                                       "\\p{N}", "[\\p{P}!-/:-@\\[-`{-~]", kGpt2});
            s.add_bos = true;
            add({"chameleon"}, s);
        }
        add({"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, make({kGpt4o}));
        {
            PreTokenizerSpec s = make({kGpt4o});
            s.ignore_merges = true;
            add({"granite-embed-multi-97m"}, s);
        }
        add({"tiny_aya", "cohere2moe"}, make({"\\d{1,3}(?=(?:\\d{3})*\\b)", kGpt4o}));
        add({"superbpe"}, make({"\\p{N}+", "(?=(\\d{3})+(?!\\d))"}));
        add({"bailingmoe", "bailingmoe2", "llada-moe"},
            make({R"re('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*)re"
                  R"re(|\s*[\r\n]|\s+(?!\S)|\s+)re"}));
        add({"seed-coder"},
            make({CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)re"}));
        add({"ufakzeka"}, make({R"re([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}));
        // llama.cpp splits digit runs with custom code: leading len % 3 digits, then groups of three.
        add({"afmoe"}, make({R"re(\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N})))re",
                             R"re([一-鿿㐀-䶿\x{F900}-\x{FAFF}぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+)re",
                             std::string(kAsciiPunctLetters) +
                                 R"re(|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}));
        add({"laguna"}, make({"[^\\n]+|[\\n]+", kQwen2}));
        add({"exaone-moe"},
            make({CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?)re"
                  R"re(|\s*[\r\n]|\s+(?!\S)|\s+)re"}));
        {
            PreTokenizerSpec s = make({"\\p{N}{1,3}", CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+)re"
                                                      R"re(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"});
            s.ignore_merges = true;
            add({"minicpm5"}, s);
        }
        {
            // SPM-style BPE: spaces become U+2581, merges run on raw UTF-8 over whole lines.
            PreTokenizerSpec s = make({"[^\\n]+|[\\n]+"});
            s.byte_encode = false;
            s.escape_whitespace = true;
            add({"gemma4", "granite-embed-multi-311m", "sarvam-moe"}, s);
        }
        return v;
    }();
    return g;
}

}  // namespace

PreTokenizerSpec pre_tokenizer_spec(std::string_view pre) {
    for (const Group& g : groups())
        for (const std::string& n : g.names)
            if (n == pre) return g.spec;
    throw Error("unknown pre-tokenizer '" + std::string(pre) + "' (tokenizer.ggml.pre); rotor knows: " + [] {
        std::string s;
        for (const std::string& n : pre_tokenizer_names()) s += (s.empty() ? "" : ", ") + n;
        return s;
    }());
}

std::vector<std::string> pre_tokenizer_names() {
    std::vector<std::string> out;
    for (const Group& g : groups())
        for (const std::string& n : g.names)
            if (!n.empty()) out.push_back(n);
    return out;
}

// ---- RegexSplitter

struct RegexSplitter::Compiled {
    pcre2_code* code = nullptr;
    bool jit = false;
    ~Compiled() {
        if (code) pcre2_code_free(code);
    }
};

RegexSplitter::RegexSplitter(const std::vector<std::string>& regexes) {
    for (const std::string& re : regexes) {
        auto c = std::make_unique<Compiled>();
        int err = 0;
        PCRE2_SIZE err_off = 0;
        // DOLLAR_ENDONLY: '$' means the end of the piece, as in ECMAScript and Rust (no final-newline rule).
        c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                                PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
        if (!c->code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            throw Error("pre-tokenizer regex does not compile at offset " + std::to_string(err_off) + ": " +
                        reinterpret_cast<const char*>(msg) + ": " + re);
        }
        c->jit = pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE) == 0;
        res_.push_back(std::move(c));
    }
}

RegexSplitter::~RegexSplitter() = default;

namespace {

struct MatchResources {
    pcre2_match_data* md = nullptr;
    pcre2_match_context* mctx = nullptr;
    pcre2_jit_stack* jit_stack = nullptr;
    MatchResources() {
        md = pcre2_match_data_create(4, nullptr);
        mctx = pcre2_match_context_create(nullptr);
        jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
        if (!md || !mctx || !jit_stack) throw Error("out of memory for the pre-tokenizer regex");
        pcre2_jit_stack_assign(mctx, nullptr, jit_stack);
    }
    ~MatchResources() {
        pcre2_jit_stack_free(jit_stack);
        pcre2_match_context_free(mctx);
        pcre2_match_data_free(md);
    }
    MatchResources(const MatchResources&) = delete;
    MatchResources& operator=(const MatchResources&) = delete;
};

// One match attempt; falls back from JIT to the interpreter if the JIT stack runs out.
int match_once(pcre2_code* code, bool jit, const char* subj, size_t len, size_t start, uint32_t opts, MatchResources& r) {
    const auto* s = reinterpret_cast<PCRE2_SPTR>(subj);
    int rc;
    if (jit && !(opts & PCRE2_ANCHORED)) {
        rc = pcre2_jit_match(code, s, len, start, opts, r.md, r.mctx);
        if (rc != PCRE2_ERROR_JIT_STACKLIMIT) return rc;
    }
    return pcre2_match(code, s, len, start, opts | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, r.md, r.mctx);
}

size_t next_char(const char* s, size_t len, size_t pos) {
    pos++;
    while (pos < len && ((uint8_t)s[pos] & 0xc0) == 0x80) pos++;
    return pos;
}

}  // namespace

std::vector<size_t> RegexSplitter::split(std::string_view text) const {
    std::vector<size_t> pieces;
    if (text.empty()) return pieces;
    pieces.push_back(text.size());
    MatchResources r;
    std::vector<size_t> next;
    for (const auto& re : res_) {
        next.clear();
        next.reserve(pieces.size() * 2);
        size_t base = 0;
        for (size_t plen : pieces) {
            const char* subj = text.data() + base;
            size_t last_end = 0, pos = 0;
            uint32_t opts = 0;
            while (pos <= plen) {
                const int rc = match_once(re->code, re->jit, subj, plen, pos, opts, r);
                if (rc == PCRE2_ERROR_NOMATCH) {
                    if (opts == 0) break;
                    // No non-empty match where the empty one was: move on by one character.
                    opts = 0;
                    pos = next_char(subj, plen, pos);
                    if (pos > plen) break;
                    continue;
                }
                if (rc < 0) {
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    throw Error(std::string("pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(msg));
                }
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(r.md);
                const size_t m0 = ov[0], m1 = ov[1];
                if (m0 > last_end) next.push_back(m0 - last_end);  // text between matches is a piece too
                if (m1 > m0) next.push_back(m1 - m0);             // an empty match only cuts
                last_end = m1;
                pos = m1;
                opts = (m1 == m0) ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
            }
            if (plen > last_end) next.push_back(plen - last_end);
            base += plen;
        }
        pieces.swap(next);
    }
    return pieces;
}

}  // namespace rotor::tok
