#include "model/perplexity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "kv/dense_kv_cache.h"
#include "model/forward.h"

namespace rotor {

namespace {

// log-softmax in double, written as float
void log_softmax(const float* logits, int n, std::vector<float>& out) {
    double mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = std::max(mx, (double)logits[i]);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += std::exp((double)logits[i] - mx);
    const double lse = mx + std::log(sum);
    out.resize(n);
    for (int i = 0; i < n; i++) out[i] = (float)((double)logits[i] - lse);
}

constexpr char kKlMagic[8] = {'R', 'T', 'K', 'L', 'B', 'A', 'S', 'E'};
constexpr uint32_t kKlVersion = 2;

// One scored position: the target's log-prob (f32, exact, so the base perplexity is exact), the
// minimum log-prob (f32), then every log-prob as uint16 on [min, 0] (steps of at most 80/65535).
constexpr size_t kRecordHeader = 8;
void encode_logprobs(const float* lp, int n, int32_t target, std::vector<uint8_t>& rec) {
    float mn = 0;
    for (int i = 0; i < n; i++) mn = std::min(mn, lp[i]);
    mn = std::max(mn, -80.0f);  // beyond e^-80 nothing matters for KL; keeps the step small
    rec.resize(kRecordHeader + 2 * (size_t)n);
    memcpy(rec.data(), &lp[target], 4);
    memcpy(rec.data() + 4, &mn, 4);
    const float scale = mn < 0 ? 65535.0f / -mn : 0.0f;
    for (int i = 0; i < n; i++) {
        const float v = std::max(lp[i], mn);
        const auto q = (uint16_t)std::lround((v - mn) * scale);
        memcpy(rec.data() + kRecordHeader + 2 * i, &q, 2);
    }
}

// Returns the exact target log-prob; lp gets the dequantized distribution.
float decode_logprobs(const uint8_t* rec, int n, std::vector<double>& lp) {
    float target_lp, mn;
    memcpy(&target_lp, rec, 4);
    memcpy(&mn, rec + 4, 4);
    lp.resize(n);
    const double step = mn < 0 ? -(double)mn / 65535.0 : 0.0;
    for (int i = 0; i < n; i++) {
        uint16_t q;
        memcpy(&q, rec + kRecordHeader + 2 * i, 2);
        lp[i] = mn + q * step;
    }
    return target_lp;
}

}  // namespace

double PerplexityResult::ppl() const { return scored ? std::exp(nll / (double)scored) : NAN; }

PerplexityResult compute_perplexity(const Model& m, const std::vector<int32_t>& tokens, const PerplexityOptions& opt) {
    if (opt.n_ctx < 4 || opt.n_ctx % 2) throw Error("perplexity: context must be an even number >= 4");
    PerplexityResult r;
    r.n_ctx = opt.n_ctx;
    int n_chunks = (int)(tokens.size() / (size_t)opt.n_ctx);
    if (opt.max_chunks > 0) n_chunks = std::min(n_chunks, opt.max_chunks);
    if (n_chunks == 0)
        throw Error("perplexity: the text has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of " +
                    std::to_string(opt.n_ctx));
    const int V = m.cfg.n_vocab, first = opt.n_ctx / 2, n_score = opt.n_ctx - 1 - first;
    // The group's log-probs wait in memory until the group ends: keep that under 512 MiB.
    const int64_t per_chunk = (int64_t)n_score * V * (int64_t)sizeof(float);
    const int P = (int)std::clamp<int64_t>(opt.decode_path ? opt.n_parallel : 1, 1, std::max<int64_t>(1, (512ll << 20) / per_chunk));
    // the CPU forward (and its thread pool) only when no other backend runs the steps
    std::unique_ptr<CpuForward> fw = opt.step ? nullptr : std::make_unique<CpuForward>(m, opt.n_threads);
    std::vector<float> logits, lp;
    // Log-probs of a group's chunks are computed position by position across the group, but reported
    // chunk by chunk; keep them until the group is done (n_score x V floats per chunk).
    std::vector<std::vector<float>> pending((size_t)P);
    std::vector<std::vector<int32_t>> chunks((size_t)P);
    for (int c0 = 0; c0 < n_chunks; c0 += P) {
        const int np = std::min(P, n_chunks - c0);
        std::unique_ptr<KvCache> kv;
        std::unique_ptr<RecurrentState> rs;  // hybrid models: every chunk starts at position 0 (a fresh state)
        if (!opt.step) {
            kv = opt.make_cache ? opt.make_cache(m.cfg, np, opt.n_ctx)
                                : std::make_unique<DenseKvCache>(kv_geometry(m), np, opt.n_ctx);
            if (m.cfg.hybrid()) rs = std::make_unique<RecurrentState>(recurrent_geometry(m.cfg), np);
        }
        auto run = [&](const Batch& batch) {
            if (opt.step) opt.step(batch, logits);
            else fw->forward(batch, *kv, rs.get(), logits);
        };
        for (int s = 0; s < np; s++) {
            const long at = (long)(c0 + s) * opt.n_ctx;
            chunks[s].assign(tokens.begin() + at, tokens.begin() + at + opt.n_ctx);
            if (opt.bos >= 0) chunks[s][0] = opt.bos;
            pending[s].resize((size_t)n_score * V);
        }
        Batch b;
        if (opt.decode_path) {
            for (int pos = 0; pos < opt.n_ctx - 1; pos++) {
                b.clear();
                for (int s = 0; s < np; s++) b.add(chunks[s][pos], pos, s, pos >= first);
                run(b);
                if (pos >= first)
                    for (int s = 0; s < np; s++) {
                        log_softmax(&logits[(size_t)s * V], V, lp);
                        std::copy(lp.begin(), lp.end(), pending[s].begin() + (size_t)(pos - first) * V);
                    }
            }
        } else {
            for (int pos = 0; pos < opt.n_ctx - 1; pos++) b.add(chunks[0][pos], pos, 0, pos >= first);
            run(b);
            for (int j = 0; j < n_score; j++) {
                log_softmax(&logits[(size_t)j * V], V, lp);
                std::copy(lp.begin(), lp.end(), pending[0].begin() + (size_t)j * V);
            }
        }
        for (int s = 0; s < np; s++) {
            double chunk_nll = 0;
            for (int j = 0; j < n_score; j++) {
                const float* row = &pending[s][(size_t)j * V];
                const int32_t target = chunks[s][first + j + 1];
                chunk_nll -= row[target];
                if (opt.on_scored) opt.on_scored(row, V, target);
            }
            r.chunk_nll.push_back(chunk_nll);
            r.nll += chunk_nll;
            r.scored += n_score;
            r.chunks++;
            if (opt.on_progress) opt.on_progress(r.chunks - 1, n_chunks, r.ppl());
        }
    }
    return r;
}

// ---------------------------------------------------------------- KL base file

struct KlBaseWriter::Impl {
    std::string path;
    FILE* f = nullptr;
    int n_vocab = 0;
    std::vector<uint8_t> rec;
    bool ok = true;
};

KlBaseWriter::KlBaseWriter(const std::string& path, int n_ctx, int n_vocab, const std::vector<int32_t>& tokens)
    : impl_(std::make_unique<Impl>()) {
    impl_->path = path;
    impl_->n_vocab = n_vocab;
    impl_->f = fopen(path.c_str(), "wb");
    if (!impl_->f) throw Error("cannot write KL base '" + path + "'");
    const uint32_t hdr[3] = {kKlVersion, (uint32_t)n_ctx, (uint32_t)n_vocab};
    const uint64_t nt = tokens.size();
    impl_->ok = fwrite(kKlMagic, 1, 8, impl_->f) == 8 && fwrite(hdr, 4, 3, impl_->f) == 3 &&
                fwrite(&nt, 8, 1, impl_->f) == 1 && fwrite(tokens.data(), 4, nt, impl_->f) == nt;
}

KlBaseWriter::~KlBaseWriter() {
    if (impl_->f) fclose(impl_->f);
}

void KlBaseWriter::add(const float* logprobs, int32_t target) {
    encode_logprobs(logprobs, impl_->n_vocab, target, impl_->rec);
    if (impl_->ok) impl_->ok = fwrite(impl_->rec.data(), 1, impl_->rec.size(), impl_->f) == impl_->rec.size();
}

void KlBaseWriter::finish() {
    const bool closed = fclose(impl_->f) == 0;
    impl_->f = nullptr;
    if (!impl_->ok || !closed) throw Error("writing KL base '" + impl_->path + "' failed");
}

struct KlComparator::Impl {
    std::string path;
    FILE* f = nullptr;
    int n_vocab = 0;
    std::vector<uint8_t> rec;
    std::vector<double> base;
    std::vector<double> kld;
    double nll_base = 0, nll = 0;
    int64_t same_top = 0;
};

KlComparator::KlComparator(const std::string& path, int n_ctx, int n_vocab, const std::vector<int32_t>& tokens)
    : impl_(std::make_unique<Impl>()) {
    impl_->path = path;
    impl_->n_vocab = n_vocab;
    impl_->f = fopen(path.c_str(), "rb");
    if (!impl_->f) throw Error("cannot read KL base '" + path + "'");
    char magic[8];
    uint32_t hdr[3];
    uint64_t nt = 0;
    if (fread(magic, 1, 8, impl_->f) != 8 || memcmp(magic, kKlMagic, 8) != 0 || fread(hdr, 4, 3, impl_->f) != 3 ||
        fread(&nt, 8, 1, impl_->f) != 1)
        throw Error("'" + path + "' is not a rotor KL base file");
    if (hdr[0] != kKlVersion) throw Error("KL base '" + path + "' has unsupported version " + std::to_string(hdr[0]));
    if ((int)hdr[1] != n_ctx || (int)hdr[2] != n_vocab)
        throw Error("KL base '" + path + "' was made with context " + std::to_string(hdr[1]) + " and vocabulary " +
                    std::to_string(hdr[2]) + "; this run has " + std::to_string(n_ctx) + " and " + std::to_string(n_vocab));
    std::vector<int32_t> base_tokens(nt);
    if (nt != tokens.size() || fread(base_tokens.data(), 4, nt, impl_->f) != nt || base_tokens != tokens)
        throw Error("KL base '" + path + "' was made from different tokens");
    impl_->rec.resize(kRecordHeader + 2 * (size_t)n_vocab);
}

KlComparator::~KlComparator() {
    if (impl_->f) fclose(impl_->f);
}

void KlComparator::add(const float* lp, int32_t target) {
    Impl& s = *impl_;
    if (fread(s.rec.data(), 1, s.rec.size(), s.f) != s.rec.size())
        throw Error("KL base '" + s.path + "' ends early (fewer chunks than this run)");
    const float base_target = decode_logprobs(s.rec.data(), s.n_vocab, s.base);
    double kl = 0;
    int top_base = 0, top = 0;
    for (int i = 0; i < s.n_vocab; i++) {
        const double pb = std::exp(s.base[i]);
        kl += pb * (s.base[i] - (double)lp[i]);
        if (s.base[i] > s.base[top_base]) top_base = i;
        if (lp[i] > lp[top]) top = i;
    }
    s.kld.push_back(std::max(0.0, kl));  // tiny negatives are quantization noise of the stored base
    s.nll_base -= base_target;
    s.nll -= lp[target];
    s.same_top += top == top_base;
}

KlStats KlComparator::stats() const {
    const Impl& s = *impl_;
    KlStats st;
    st.n = (int64_t)s.kld.size();
    if (!st.n) return st;
    std::vector<double> k = s.kld;
    std::sort(k.begin(), k.end());
    double sum = 0, sq = 0;
    for (double x : k) {
        sum += x;
        sq += x * x;
    }
    st.mean = sum / st.n;
    st.mean_kld_stderr = st.n > 1 ? std::sqrt(std::max(0.0, sq / st.n - st.mean * st.mean) / (double)(st.n - 1)) : 0;
    auto pct = [&](double p) { return k[std::min<size_t>(k.size() - 1, (size_t)(p * (double)(k.size() - 1) + 0.5))]; };
    st.median = pct(0.5);
    st.p99 = pct(0.99);
    st.p999 = pct(0.999);
    st.max = k.back();
    st.ppl_base = std::exp(s.nll_base / st.n);
    st.ppl = std::exp(s.nll / st.n);
    st.same_top = (double)s.same_top / st.n;
    return st;
}

}  // namespace rotor
