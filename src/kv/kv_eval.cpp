#include "kv/kv_eval.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>

#include "common/error.h"
#include "cpu/thread_pool.h"
#include "kv/dense_kv_cache.h"
#include "kv/kv_hadamard.h"
#include "model/forward.h"
#include "model/model.h"

namespace rotor {

namespace {

// Box-Muller normals from splitmix64, so a seed means the same data with any compiler / libstdc++.
struct Normal {
    uint64_t state;
    bool have = false;
    double spare = 0;
    explicit Normal(uint64_t seed) : state(seed) {}
    double uniform() { return ((kvq::splitmix64(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
    double operator()() {
        if (have) {
            have = false;
            return spare;
        }
        const double r = std::sqrt(-2.0 * std::log(uniform())), a = 2.0 * M_PI * uniform();
        spare = r * std::sin(a);
        have = true;
        return r * std::cos(a);
    }
};

// Channel standard deviations log-uniform over [10^-1.5, 1], in random order.
std::vector<double> channel_scales(int d, Normal& rng) {
    std::vector<double> s(d);
    for (int c = 0; c < d; c++) s[c] = std::pow(10.0, -1.5 * (c + 0.5) / d);
    for (int c = d - 1; c > 0; c--) std::swap(s[c], s[(size_t)(rng.uniform() * (c + 1)) % (size_t)(c + 1)]);
    return s;
}

// RoPE on adjacent pairs (2i, 2i+1), angle pos * 10000^(-2i/d).
void rope(double* x, int d, int pos) {
    for (int i = 0; i < d / 2; i++) {
        const double a = pos * std::pow(10000.0, -2.0 * i / d), c = std::cos(a), s = std::sin(a);
        const double x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = x0 * c - x1 * s;
        x[2 * i + 1] = x0 * s + x1 * c;
    }
}

void check_file(std::istream& f, const std::string& path) {
    if (!f) throw Error("kv capture '" + path + "': truncated or unreadable");
}

template <class T>
void put(std::ofstream& f, T v) {
    f.write(reinterpret_cast<const char*>(&v), sizeof v);
}
template <class T>
T get(std::ifstream& f, const std::string& path) {
    T v{};
    f.read(reinterpret_cast<char*>(&v), sizeof v);
    check_file(f, path);
    return v;
}

// The f32 reference cache, recording every key and value stored and every query attended with.
class RecordingKvCache final : public KvCache {
public:
    RecordingKvCache(const KvGeometry& geo, int n_ctx) : inner_(geo, 1, n_ctx), n_ctx_(n_ctx) {}

    void begin_chunk(std::vector<std::vector<float>>* k, std::vector<std::vector<float>>* v,
                     std::vector<std::vector<float>>* q, const std::vector<int>& n_head) {
        k_ = k;
        v_ = v;
        q_ = q;
        const KvGeometry& g = inner_.geometry();
        k->assign(g.n_layer(), {});
        v->assign(g.n_layer(), {});
        q->assign(g.n_layer(), {});
        for (int l = 0; l < g.n_layer(); l++) {
            if (!g.n_head_kv[l]) continue;
            (*k)[l].assign((size_t)n_ctx_ * g.n_head_kv[l] * g.head_dim_k[l], 0.0f);
            (*v)[l].assign((size_t)n_ctx_ * g.n_head_kv[l] * g.head_dim_v[l], 0.0f);
            (*q)[l].assign((size_t)n_ctx_ * n_head[l] * g.head_dim_k[l], 0.0f);
        }
        n_head_ = n_head;
        inner_.seq_truncate(0, 0);
    }

    const KvGeometry& geometry() const override { return inner_.geometry(); }
    void seq_reserve(int seq, int n) override { inner_.seq_reserve(seq, n); }
    void seq_truncate(int seq, int n) override { inner_.seq_truncate(seq, n); }
    int seq_capacity(int seq) const override { return inner_.seq_capacity(seq); }
    void store(int layer, int seq, int pos, const float* k, const float* v) override {
        inner_.store(layer, seq, pos, k, v);
        const KvGeometry& g = inner_.geometry();
        const size_t dk = (size_t)g.n_head_kv[layer] * g.head_dim_k[layer];
        const size_t dv = (size_t)g.n_head_kv[layer] * g.head_dim_v[layer];
        memcpy((*k_)[layer].data() + pos * dk, k, dk * sizeof(float));
        memcpy((*v_)[layer].data() + pos * dv, v, dv * sizeof(float));
    }
    void attend(int layer, int seq, int n_kv, const float* q, float* out, const AttnParams& p) const override {
        if (p.n_head != n_head_[layer]) throw Error("kv capture: unexpected number of query heads");
        const size_t dq = (size_t)p.n_head * inner_.geometry().head_dim_k[layer];
        // Distinct positions write distinct slots, so concurrent attend() calls are safe.
        memcpy((*q_)[layer].data() + (size_t)(n_kv - 1) * dq, q, dq * sizeof(float));
        if (n_kv == 1) scale_[layer] = p.scale;  // one thread handles position 0 of a layer
        inner_.attend(layer, seq, n_kv, q, out, p);
    }
    mutable std::vector<float> scale_;

private:
    DenseKvCache inner_;
    int n_ctx_;
    std::vector<int> n_head_;
    std::vector<std::vector<float>>*k_ = nullptr, *v_ = nullptr, *q_ = nullptr;
};

struct Acc {
    double err_k = 0, norm_k = 0, err_v = 0, norm_v = 0;
    double dot_err = 0, dot_norm = 0, out_err = 0, out_norm = 0, kl = 0;
    int64_t n_queries = 0;
};

void evaluate_head(const KvEvalHead& h, int dk, int dv, const KvFormat& kf, const KvFormat& vf, Acc& a) {
    const uint64_t rbk = kf.row_bytes(dk), rbv = vf.row_bytes(dv);
    std::vector<uint8_t> kq((size_t)h.n_pos * rbk), vq((size_t)h.n_pos * rbv);
    std::vector<float> tmp(std::max(dk, dv));
    for (int t = 0; t < h.n_pos; t++) {
        const float* k = &h.k[(size_t)t * dk];
        kf.quantize(k, &kq[t * rbk], dk);
        kf.dequantize(&kq[t * rbk], tmp.data(), dk);
        for (int i = 0; i < dk; i++) {
            a.err_k += ((double)tmp[i] - k[i]) * ((double)tmp[i] - k[i]);
            a.norm_k += (double)k[i] * k[i];
        }
        const float* v = &h.v[(size_t)t * dv];
        vf.quantize(v, &vq[t * rbv], dv);
        vf.dequantize(&vq[t * rbv], tmp.data(), dv);
        for (int i = 0; i < dv; i++) {
            a.err_v += ((double)tmp[i] - v[i]) * ((double)tmp[i] - v[i]);
            a.norm_v += (double)v[i] * v[i];
        }
    }
    std::vector<float> qr(dk), acc(dv);
    std::vector<double> le(h.n_pos), la(h.n_pos), out(dv);
    for (size_t j = 0; j < h.q_len.size(); j++) {
        const int L = h.q_len[j];
        const float* q = &h.q[j * dk];
        std::copy(q, q + dk, qr.begin());
        kf.rotate(qr.data(), dk);
        double me = -INFINITY, ma = -INFINITY;
        for (int t = 0; t < L; t++) {
            const float* k = &h.k[(size_t)t * dk];
            double exact = 0;
            for (int i = 0; i < dk; i++) exact += (double)q[i] * k[i];
            const double approx = kf.dot(&kq[t * rbk], qr.data(), dk);
            a.dot_err += (approx - exact) * (approx - exact);
            a.dot_norm += exact * exact;
            le[t] = h.scale * exact;
            la[t] = (double)(h.scale * (float)approx);
            me = std::max(me, le[t]);
            ma = std::max(ma, la[t]);
        }
        double se = 0, sa = 0;
        for (int t = 0; t < L; t++) {
            se += std::exp(le[t] - me);
            sa += std::exp(la[t] - ma);
        }
        const double lse_e = me + std::log(se), lse_a = ma + std::log(sa);
        std::fill(out.begin(), out.end(), 0.0);
        std::fill(acc.begin(), acc.end(), 0.0f);
        double kl = 0;
        for (int t = 0; t < L; t++) {
            const double pe = std::exp(le[t] - lse_e), pa = std::exp(la[t] - lse_a);
            kl += pe * ((le[t] - lse_e) - (la[t] - lse_a));
            const float* v = &h.v[(size_t)t * dv];
            for (int i = 0; i < dv; i++) out[i] += pe * v[i];
            vf.axpy(&vq[t * rbv], (float)pa, acc.data(), dv);
        }
        vf.unrotate(acc.data(), dv);
        for (int i = 0; i < dv; i++) {
            a.out_err += (acc[i] - out[i]) * (acc[i] - out[i]);
            a.out_norm += out[i] * out[i];
        }
        a.kl += std::max(kl, 0.0);  // rounding can leave a tiny negative value for identical weights
        a.n_queries++;
    }
}

}  // namespace

std::vector<std::string> synthetic_kinds() { return {"gaussian", "outlier", "aniso", "rope"}; }

KvEvalDataset make_synthetic_dataset(const std::string& kind, const SyntheticOptions& opt) {
    const int d = opt.dim;
    if (d <= 0 || d % 2 || opt.n_heads <= 0 || opt.n_pos <= 0 || opt.n_queries <= 0)
        throw Error("synthetic KV data: dimension must be even and positive, counts positive");
    const auto kinds = synthetic_kinds();
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) throw Error("unknown synthetic dataset '" + kind + "'");
    KvEvalDataset ds;
    ds.name = kind;
    ds.dk = ds.dv = d;
    uint64_t kind_hash = 0xcbf29ce484222325ull;  // FNV-1a, stable everywhere
    for (char ch : kind) kind_hash = (kind_hash ^ (uint8_t)ch) * 0x100000001b3ull;
    uint64_t mix = opt.seed ^ kind_hash;  // a random start in splitmix64's cycle: seeds never overlap
    Normal rng(kvq::splitmix64(mix));
    // Dataset-wide structure (shared by all heads): outlier channels, channel profiles, means.
    std::vector<int> outliers;
    while ((int)outliers.size() < std::min(4, d)) {
        const int c = (int)(rng.uniform() * d) % d;
        if (std::find(outliers.begin(), outliers.end(), c) == outliers.end()) outliers.push_back(c);
    }
    const std::vector<double> sk = channel_scales(d, rng), sv = channel_scales(d, rng);
    std::vector<double> mk(d, 0.0), mq(d, 0.0);
    for (int c = d / 2; c < d; c++) {  // offsets on the slowly rotating (low-frequency) half of the pairs
        mk[c] = 3.0 * sk[c] * rng();
        mq[c] = 3.0 * sk[c] * rng();
    }
    std::vector<double> x(d);
    auto sample = [&](const std::string& role, int pos, float* out) {
        for (int c = 0; c < d; c++) x[c] = rng();
        if (kind == "outlier" && role != "q")
            for (int c : outliers) x[c] *= 20.0;
        if (kind == "aniso" || kind == "rope")
            for (int c = 0; c < d; c++) x[c] *= role == "v" ? sv[c] : sk[c];
        if (kind == "rope" && role != "v") {
            for (int c = 0; c < d; c++) x[c] += role == "k" ? mk[c] : mq[c];
            rope(x.data(), d, pos);
        }
        for (int c = 0; c < d; c++) out[c] = (float)x[c];
    };
    for (int hh = 0; hh < opt.n_heads; hh++) {
        KvEvalHead h;
        h.n_pos = opt.n_pos;
        h.scale = (float)(1.0 / std::sqrt((double)d));
        h.k.resize((size_t)opt.n_pos * d);
        h.v.resize((size_t)opt.n_pos * d);
        h.q.resize((size_t)opt.n_queries * d);
        for (int t = 0; t < opt.n_pos; t++) {
            sample("k", t, &h.k[(size_t)t * d]);
            sample("v", t, &h.v[(size_t)t * d]);
        }
        for (int j = 0; j < opt.n_queries; j++) {
            sample("q", opt.n_pos - 1, &h.q[(size_t)j * d]);
            h.q_len.push_back(opt.n_pos);
        }
        ds.heads.push_back(std::move(h));
    }
    return ds;
}

KvCapture capture_kv(const Model& model, const std::vector<int32_t>& tokens, int n_ctx, int n_chunk, int32_t bos,
                     int n_threads, const std::string& name) {
    if (n_ctx <= 0 || n_chunk <= 0) throw Error("kv capture: context and chunk count must be positive");
    if ((int64_t)n_ctx * n_chunk > (int64_t)tokens.size())
        throw Error("kv capture: " + std::to_string(n_chunk) + " chunks of " + std::to_string(n_ctx) + " tokens need " +
                    std::to_string((int64_t)n_ctx * n_chunk) + " tokens, the file has " + std::to_string(tokens.size()));
    const ModelConfig& c = model.cfg;
    KvCapture cap;
    cap.name = name;
    cap.n_ctx = n_ctx;
    cap.n_chunk = n_chunk;
    const KvGeometry geo = kv_geometry(c);
    RecordingKvCache kv(geo, n_ctx);
    kv.scale_.assign(geo.n_layer(), 1.0f);
    CpuForward fw(model, n_threads);
    // hybrid models (qwen35): the Gated DeltaNet layers keep a state; each chunk starts it afresh at 0
    std::unique_ptr<RecurrentState> rs;
    if (c.hybrid()) rs = std::make_unique<RecurrentState>(recurrent_geometry(c), 1);
    std::vector<float> logits;
    cap.k.resize(n_chunk);
    cap.v.resize(n_chunk);
    cap.q.resize(n_chunk);
    for (int ch = 0; ch < n_chunk; ch++) {
        kv.begin_chunk(&cap.k[ch], &cap.v[ch], &cap.q[ch], c.n_head);
        Batch b;
        for (int i = 0; i < n_ctx; i++) {
            int32_t tok = tokens[(size_t)ch * n_ctx + i];
            if (i == 0 && bos >= 0) tok = bos;
            b.add(tok, i, 0, i == n_ctx - 1);
        }
        fw.forward(b, kv, rs.get(), logits);
    }
    for (int l = 0; l < geo.n_layer(); l++)
        cap.layers.push_back({c.n_head[l], geo.n_head_kv[l], geo.head_dim_k[l], geo.head_dim_v[l], kv.scale_[l]});
    return cap;
}

void write_kv_capture(const std::string& path, const KvCapture& cap) {
    std::ofstream f(path, std::ios::binary);
    if (!f) throw Error("cannot write '" + path + "'");
    f.write("RKVCAP01", 8);
    put<uint32_t>(f, 1);
    put<uint32_t>(f, (uint32_t)cap.layers.size());
    put<uint32_t>(f, (uint32_t)cap.n_chunk);
    put<uint32_t>(f, (uint32_t)cap.n_ctx);
    put<uint32_t>(f, (uint32_t)cap.name.size());
    f.write(cap.name.data(), (std::streamsize)cap.name.size());
    for (const auto& L : cap.layers) {
        put<int32_t>(f, L.n_head);
        put<int32_t>(f, L.n_head_kv);
        put<int32_t>(f, L.head_dim_k);
        put<int32_t>(f, L.head_dim_v);
        put<float>(f, L.attn_scale);
    }
    for (int ch = 0; ch < cap.n_chunk; ch++)
        for (size_t l = 0; l < cap.layers.size(); l++) {
            if (!cap.layers[l].n_head_kv) continue;
            for (const auto* a : {&cap.k[ch][l], &cap.v[ch][l], &cap.q[ch][l]})
                f.write(reinterpret_cast<const char*>(a->data()), (std::streamsize)(a->size() * sizeof(float)));
        }
    f.close();
    if (!f) throw Error("error writing '" + path + "'");
}

KvCapture read_kv_capture(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot open kv capture '" + path + "'");
    char magic[8];
    f.read(magic, 8);
    check_file(f, path);
    if (memcmp(magic, "RKVCAP01", 8) != 0) throw Error("'" + path + "' is not a rotor kv capture file");
    if (get<uint32_t>(f, path) != 1) throw Error("kv capture '" + path + "': unsupported version");
    KvCapture cap;
    const uint32_t n_layer = get<uint32_t>(f, path);
    cap.n_chunk = (int)get<uint32_t>(f, path);
    cap.n_ctx = (int)get<uint32_t>(f, path);
    const uint32_t name_len = get<uint32_t>(f, path);
    if (n_layer > 4096 || name_len > 4096 || cap.n_ctx <= 0 || cap.n_ctx > (1 << 24) || cap.n_chunk <= 0 ||
        cap.n_chunk > (1 << 16))
        throw Error("kv capture '" + path + "': implausible header");
    cap.name.resize(name_len);
    f.read(cap.name.data(), name_len);
    check_file(f, path);
    uint64_t total = 0;
    for (uint32_t l = 0; l < n_layer; l++) {
        KvCaptureLayer L;
        L.n_head = get<int32_t>(f, path);
        L.n_head_kv = get<int32_t>(f, path);
        L.head_dim_k = get<int32_t>(f, path);
        L.head_dim_v = get<int32_t>(f, path);
        L.attn_scale = get<float>(f, path);
        const bool ok = L.n_head_kv == 0 || (L.n_head > 0 && L.n_head_kv > 0 && L.n_head % L.n_head_kv == 0 &&
                                             L.n_head <= 4096 && L.head_dim_k > 0 && L.head_dim_k <= 4096 &&
                                             L.head_dim_v > 0 && L.head_dim_v <= 4096);
        if (!ok || !std::isfinite(L.attn_scale)) throw Error("kv capture '" + path + "': bad layer shape");
        total += (uint64_t)L.n_head_kv * (L.head_dim_k + L.head_dim_v) + (uint64_t)(L.n_head_kv ? L.n_head : 0) * L.head_dim_k;
        cap.layers.push_back(L);
    }
    // The data must be exactly there: compare with the file size before allocating.
    const auto here = f.tellg();
    f.seekg(0, std::ios::end);
    const uint64_t left = (uint64_t)(f.tellg() - here);
    f.seekg(here);
    if (left != total * cap.n_ctx * cap.n_chunk * sizeof(float))
        throw Error("kv capture '" + path + "': data size does not match the header");
    cap.k.assign(cap.n_chunk, std::vector<std::vector<float>>(n_layer));
    cap.v = cap.k;
    cap.q = cap.k;
    for (int ch = 0; ch < cap.n_chunk; ch++)
        for (uint32_t l = 0; l < n_layer; l++) {
            const KvCaptureLayer& L = cap.layers[l];
            if (!L.n_head_kv) continue;
            cap.k[ch][l].resize((size_t)cap.n_ctx * L.n_head_kv * L.head_dim_k);
            cap.v[ch][l].resize((size_t)cap.n_ctx * L.n_head_kv * L.head_dim_v);
            cap.q[ch][l].resize((size_t)cap.n_ctx * L.n_head * L.head_dim_k);
            for (auto* a : {&cap.k[ch][l], &cap.v[ch][l], &cap.q[ch][l]}) {
                f.read(reinterpret_cast<char*>(a->data()), (std::streamsize)(a->size() * sizeof(float)));
                check_file(f, path);
            }
        }
    return cap;
}

std::vector<KvEvalDataset> datasets_from_capture(const KvCapture& cap, int n_query_pos) {
    if (n_query_pos <= 0) throw Error("kv eval: need at least one query position");
    std::vector<int> pos;  // the last position, then evenly spread over the second half
    for (int j = 0; j < n_query_pos; j++) {
        const int p = cap.n_ctx - 1 - (int)((int64_t)j * (cap.n_ctx / 2) / n_query_pos);
        if (p >= 0 && (pos.empty() || p != pos.back())) pos.push_back(p);
    }
    std::vector<KvEvalDataset> out;
    for (size_t l = 0; l < cap.layers.size(); l++) {
        const KvCaptureLayer& L = cap.layers[l];
        if (!L.n_head_kv) continue;
        auto it = std::find_if(out.begin(), out.end(), [&](const KvEvalDataset& d) {
            return d.dk == L.head_dim_k && d.dv == L.head_dim_v;
        });
        if (it == out.end()) {
            out.push_back({cap.name, L.head_dim_k, L.head_dim_v, {}});
            it = out.end() - 1;
        }
        const int dk = L.head_dim_k, dv = L.head_dim_v, group = L.n_head / L.n_head_kv;
        for (int ch = 0; ch < cap.n_chunk; ch++)
            for (int g = 0; g < L.n_head_kv; g++) {
                KvEvalHead h;
                h.n_pos = cap.n_ctx;
                h.scale = L.attn_scale;
                for (int t = 0; t < cap.n_ctx; t++) {
                    const float* k = &cap.k[ch][l][((size_t)t * L.n_head_kv + g) * dk];
                    const float* v = &cap.v[ch][l][((size_t)t * L.n_head_kv + g) * dv];
                    h.k.insert(h.k.end(), k, k + dk);
                    h.v.insert(h.v.end(), v, v + dv);
                }
                for (int qh = g * group; qh < (g + 1) * group; qh++)
                    for (int p : pos) {
                        const float* q = &cap.q[ch][l][((size_t)p * L.n_head + qh) * dk];
                        h.q.insert(h.q.end(), q, q + dk);
                        h.q_len.push_back(p + 1);
                    }
                it->heads.push_back(std::move(h));
            }
    }
    if (out.size() > 1)
        for (auto& d : out) d.name += "/d" + std::to_string(d.dk);
    return out;
}

KvEvalResult evaluate_kv_types(const KvEvalDataset& ds, const KvFormat& kf, const KvFormat& vf, int n_threads) {
    KvEvalResult r;
    r.dataset = ds.name;
    r.type = kf.name() == vf.name() ? kf.name() : kf.name() + "/" + vf.name();
    std::string why;
    if (!kf.supports(ds.dk, &why) || !vf.supports(ds.dv, &why)) {
        r.supported = false;
        r.why = why;
        return r;
    }
    r.bits_per_element = 8.0 * (double)(kf.row_bytes(ds.dk) + vf.row_bytes(ds.dv)) / (ds.dk + ds.dv);
    ThreadPool pool(std::max(1, n_threads));
    std::vector<Acc> acc(pool.size());
    std::vector<std::string> errors(pool.size());
    pool.parallel_for((int64_t)ds.heads.size(), 1, [&](int64_t b, int64_t e, int t) {
        try {
            for (int64_t i = b; i < e; i++) evaluate_head(ds.heads[i], ds.dk, ds.dv, kf, vf, acc[t]);
        } catch (const std::exception& ex) {  // work functions must not throw
            errors[t] = ex.what();
        }
    });
    for (const auto& e : errors)
        if (!e.empty()) throw Error("kv eval: " + e);
    Acc s;
    for (const Acc& a : acc) {
        s.err_k += a.err_k, s.norm_k += a.norm_k, s.err_v += a.err_v, s.norm_v += a.norm_v;
        s.dot_err += a.dot_err, s.dot_norm += a.dot_norm, s.out_err += a.out_err, s.out_norm += a.out_norm;
        s.kl += a.kl, s.n_queries += a.n_queries;
    }
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    r.mse_k = ratio(s.err_k, s.norm_k);
    r.mse_v = ratio(s.err_v, s.norm_v);
    r.mse_rel = 0.5 * (r.mse_k + r.mse_v);
    r.k_dot_rel_err = std::sqrt(ratio(s.dot_err, s.dot_norm));
    r.attn_out_rel_err = std::sqrt(ratio(s.out_err, s.out_norm));
    r.attn_kl = s.n_queries ? s.kl / s.n_queries : 0.0;
    return r;
}

}  // namespace rotor
