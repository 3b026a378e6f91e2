// rotor kv-eval: quality of every KV format on synthetic vectors and on captured real K/V/Q
// (src/kv/kv_eval.h defines the measures). Prints a table; --csv writes
// dataset,type,bits_per_element,mse_rel,k_dot_rel_err,attn_out_rel_err,attn_kl.
// With --model and --tokens it also runs the model end to end on the decode path (one token per
// step, as llama-perplexity's KL runs do) through the paged cache in each type, and reports
// perplexity and the KL divergence of the next-token distributions from the f32 cache's.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include "cli_common.h"
#include "commands.h"
#include "common/error.h"
#include "kv/kv_eval.h"
#include "kv/kv_format.h"
#include "kv/kv_pool.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/perplexity.h"

namespace rotor::cli {

namespace {

// A CSV field: quoted (with doubled quotes) when it holds a comma or a quote, e.g. a capture named
// "tiny-qwen35 (random weights, f32)".
std::string csv_field(const std::string& v) {
    if (v.find_first_of(",\"") == std::string::npos) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

}  // namespace

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, sep);)
        if (!item.empty()) out.push_back(item);
    return out;
}

const KvFormat& format_named(const std::string& name) {
    const KvFormat* f = find_kv_format(name);
    if (!f) {
        std::string known;
        for (const auto& n : kv_format_names()) known += (known.empty() ? "" : ", ") + n;
        throw Error("unknown KV type '" + name + "' (known: " + known + ")");
    }
    return *f;
}

void usage() {
    printf("usage: rotor kv-eval [--types LIST] [--datasets LIST] [--capture FILE]... [--csv FILE]\n"
           "  --types LIST      comma-separated KV types, 'all' (default), or K/V pairs such as tcq4/tcq3\n"
           "  --datasets LIST   synthetic sets: gaussian,outlier,aniso,rope (default all), or 'none'\n"
           "  --capture FILE    add the K/V/Q recorded by rotor kv-capture (repeatable)\n"
           "  --dim N           synthetic head size (128)        --heads N     sequences per set (4)\n"
           "  --pos N           keys per sequence (256)          --queries N   queries per sequence (16)\n"
           "  --query-pos N     query positions per captured head (16)\n"
           "  --seed N          synthetic data seed (1)          --threads N   (2)\n"
           "  --csv FILE        write dataset,type,bits_per_element,mse_rel,k_dot_rel_err,attn_out_rel_err,attn_kl\n"
           "  --model M --tokens F.u16   also run the model end to end through the paged cache in each type\n"
           "                    (decode path) and compare its next-token distributions with the f32 cache's\n"
           "  --ctx N --chunks N          context and chunks of that run (1024, 4); --model-csv FILE for its table\n");
}

// End to end: perplexity and KL(p_f32 || p_type) per scored position, llama-perplexity's protocol
// (chunks of n_ctx, BOS first, the second half scored) on the decode path.
void model_eval(const std::string& model_path, const std::string& tokens_path, int n_ctx, int n_chunks, int n_threads,
                const std::vector<std::pair<const KvFormat*, const KvFormat*>>& types, const std::string& csv_path) {
    auto model = Model::load(model_path);
    const std::vector<int32_t> tokens = read_u16_tokens(tokens_path);
    PerplexityOptions po;
    po.n_ctx = n_ctx;
    po.max_chunks = n_chunks;
    po.n_threads = n_threads;
    po.decode_path = true;
    if (auto b = model->file.get_uint("tokenizer.ggml.bos_token_id")) po.bos = (int32_t)*b;
    const int V = model->cfg.n_vocab;
    std::vector<float> base;
    std::vector<int32_t> targets;
    po.on_scored = [&](const float* lp, int n, int32_t t) {
        base.insert(base.end(), lp, lp + n);
        targets.push_back(t);
    };
    const PerplexityResult rb = compute_perplexity(*model, tokens, po);
    printf("\nend to end: %s, %d chunks of %d tokens, decode path, %lld scored positions\n", model_path.c_str(),
           rb.chunks, n_ctx, (long long)rb.scored);
    printf("  %-18s %7s %10s %10s %12s %12s %12s %9s\n", "type", "bits", "ppl", "ppl_ratio", "kl_mean", "kl_p99",
           "kl_max", "same_top");
    printf("  %-18s %7s %10.4f %10s %12s %12s %12s %9s\n", "f32 (base)", "32.000", rb.ppl(), "1", "0", "0", "0", "100%");
    std::ofstream csv;
    if (!csv_path.empty()) {
        csv.open(csv_path);
        if (!csv) throw Error("cannot write '" + csv_path + "'");
        csv << "model,type,bits_per_element,ppl,ppl_ratio,kl_mean,kl_p99,kl_max,same_top\n";
    }
    const KvGeometry geo = kv_geometry(*model);
    for (const auto& [kf, vf] : types) {
        const std::string name = kf->name() == vf->name() ? kf->name() : kf->name() + "/" + vf->name();
        std::string why;
        bool ok = true;
        for (int l = 0; l < geo.n_layer() && ok; l++)
            ok = !geo.n_head_kv[l] || (kf->supports(geo.head_dim_k[l], &why) && vf->supports(geo.head_dim_v[l], &why));
        if (!ok) {
            printf("  %-18s unsupported: %s\n", name.c_str(), why.c_str());
            continue;
        }
        double bits = 0, elems = 0;
        for (int l = 0; l < geo.n_layer(); l++) {
            if (!geo.n_head_kv[l]) continue;
            // a K = V layer stores one row (the value) for both
            const bool kfv = geo.key_from_value_at(l);
            bits += 8.0 * geo.n_head_kv[l] *
                    (double)((kfv ? 0 : kf->row_bytes(geo.head_dim_k[l])) + vf->row_bytes(geo.head_dim_v[l]));
            elems += (double)geo.n_head_kv[l] * ((kfv ? 0 : geo.head_dim_k[l]) + geo.head_dim_v[l]);
        }
        PerplexityOptions o = po;
        // named copies: clang < 16 cannot capture structured bindings
        const std::string k_name = kf->name(), v_name = vf->name();
        o.make_cache = [&](const ModelConfig& c, int n_seq, int ctx) -> std::unique_ptr<KvCache> {
            (void)c;  // the model's own geometry: gemma4's K = V layers need its weights
            return make_paged_kv_cache(geo, k_name, v_name, n_seq, ctx);
        };
        std::vector<double> kl;
        int64_t pos = 0, same = 0;
        o.on_scored = [&](const float* lp, int n, int32_t) {
            const float* b = &base[(size_t)pos * V];
            double d = 0;
            int ab = 0, aq = 0;
            for (int i = 0; i < n; i++) {
                d += std::exp((double)b[i]) * ((double)b[i] - lp[i]);
                if (b[i] > b[ab]) ab = i;
                if (lp[i] > lp[aq]) aq = i;
            }
            kl.push_back(std::max(d, 0.0));
            same += ab == aq;
            pos++;
        };
        const PerplexityResult r = compute_perplexity(*model, tokens, o);
        std::vector<double> sorted = kl;
        std::sort(sorted.begin(), sorted.end());
        double mean = 0;
        for (double x : kl) mean += x;
        mean /= (double)std::max<size_t>(1, kl.size());
        const double p99 = sorted.empty() ? 0 : sorted[(size_t)(0.99 * (double)(sorted.size() - 1))];
        const double mx = sorted.empty() ? 0 : sorted.back();
        const double top = pos ? 100.0 * (double)same / (double)pos : 0;
        printf("  %-18s %7.3f %10.4f %10.5f %12.3e %12.3e %12.3e %8.2f%%\n", name.c_str(), bits / elems, r.ppl(),
               r.ppl() / rb.ppl(), mean, p99, mx, top);
        fflush(stdout);
        if (csv.is_open()) {
            char line[512];
            snprintf(line, sizeof line, "%s,%s,%.4f,%.6f,%.6f,%.6e,%.6e,%.6e,%.4f\n", csv_field(model->cfg.arch_name).c_str(),
                     name.c_str(), bits / elems, r.ppl(), r.ppl() / rb.ppl(), mean, p99, mx, top);
            csv << line;
        }
    }
}

int cmd_kv_eval(const Args& args) {
    std::vector<std::string> type_specs = {"all"}, kinds = synthetic_kinds(), captures;
    SyntheticOptions so;
    int n_threads = 2, query_pos = 16, model_ctx = 1024, model_chunks = 4;
    std::string csv_path, model_path, tokens_path, model_csv;
    for (size_t i = 0; i < args.size(); i++) {
        const std::string& a = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw Error("option " + a + " needs a value");
            return args[++i];
        };
        if (a == "--types") type_specs = split(value(), ',');
        else if (a == "--datasets") {
            kinds = split(value(), ',');
            if (kinds.size() == 1 && kinds[0] == "none") kinds.clear();
        } else if (a == "--capture") captures.push_back(value());
        else if (a == "--dim") so.dim = parse_int(a, value(), 2);
        else if (a == "--heads") so.n_heads = parse_int(a, value(), 1);
        else if (a == "--pos") so.n_pos = parse_int(a, value(), 1);
        else if (a == "--queries") so.n_queries = parse_int(a, value(), 1);
        else if (a == "--query-pos") query_pos = parse_int(a, value(), 1);
        else if (a == "--seed") so.seed = (uint64_t)parse_int(a, value(), 0);
        else if (a == "-t" || a == "--threads") n_threads = parse_int(a, value(), 1);
        else if (a == "--csv") csv_path = value();
        else if (a == "--model" || a == "-m") model_path = value();
        else if (a == "--tokens") tokens_path = value();
        else if (a == "--ctx") model_ctx = parse_int(a, value(), 4);
        else if (a == "--chunks") model_chunks = parse_int(a, value(), 1);
        else if (a == "--model-csv") model_csv = value();
        else if (a == "-h" || a == "--help") {
            usage();
            return 0;
        } else throw Error("unknown option " + a + " (rotor kv-eval --help)");
    }
    const auto known_kinds = synthetic_kinds();
    for (const auto& k : kinds)
        if (std::find(known_kinds.begin(), known_kinds.end(), k) == known_kinds.end())
            throw Error("unknown dataset '" + k + "' (synthetic sets: gaussian, outlier, aniso, rope)");

    // Resolve every type before any work, so a typo fails at once.
    std::vector<std::pair<const KvFormat*, const KvFormat*>> types;
    for (const auto& spec : type_specs) {
        if (spec == "all") {
            for (const auto& n : kv_format_names()) types.push_back({&format_named(n), &format_named(n)});
            continue;
        }
        const auto kv = split(spec, '/');
        if (kv.size() == 1) types.push_back({&format_named(kv[0]), &format_named(kv[0])});
        else if (kv.size() == 2) types.push_back({&format_named(kv[0]), &format_named(kv[1])});
        else throw Error("bad type '" + spec + "' (a type, or K/V)");
    }
    if (types.empty()) throw Error("--types selects no type");
    if (model_path.empty() != tokens_path.empty()) throw Error("--model and --tokens go together");

    std::vector<KvEvalDataset> datasets;
    for (const auto& k : kinds) datasets.push_back(make_synthetic_dataset(k, so));
    for (const auto& path : captures)
        for (auto& d : datasets_from_capture(read_kv_capture(path), query_pos)) datasets.push_back(std::move(d));
    if (datasets.empty() && model_path.empty()) throw Error("no dataset selected");

    std::ofstream csv;
    if (!csv_path.empty()) {
        csv.open(csv_path);
        if (!csv) throw Error("cannot write '" + csv_path + "'");
        csv << "dataset,type,bits_per_element,mse_rel,k_dot_rel_err,attn_out_rel_err,attn_kl\n";
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& ds : datasets) {
        size_t n_vec = 0, n_q = 0;
        for (const auto& h : ds.heads) n_vec += (size_t)h.n_pos, n_q += h.q_len.size();
        printf("\ndataset %s: head size %d/%d, %zu heads, %zu K and V vectors, %zu queries\n", ds.name.c_str(), ds.dk,
               ds.dv, ds.heads.size(), n_vec, n_q);
        printf("  %-18s %7s %10s %10s %10s %10s %12s %12s\n", "type", "bits", "mse_rel", "mse_k", "mse_v", "k_dot",
               "attn_out", "attn_kl");
        for (const auto& [kf, vf] : types) {
            const KvEvalResult r = evaluate_kv_types(ds, *kf, *vf, n_threads);
            if (!r.supported) {
                printf("  %-18s unsupported: %s\n", r.type.c_str(), r.why.c_str());
                continue;
            }
            printf("  %-18s %7.3f %10.3e %10.3e %10.3e %10.3e %12.3e %12.3e\n", r.type.c_str(), r.bits_per_element,
                   r.mse_rel, r.mse_k, r.mse_v, r.k_dot_rel_err, r.attn_out_rel_err, r.attn_kl);
            fflush(stdout);
            if (csv.is_open()) {
                char line[512];
                snprintf(line, sizeof line, "%s,%s,%.4f,%.6e,%.6e,%.6e,%.6e\n", csv_field(r.dataset).c_str(), r.type.c_str(),
                         r.bits_per_element, r.mse_rel, r.k_dot_rel_err, r.attn_out_rel_err, r.attn_kl);
                csv << line;
            }
        }
    }
    if (csv.is_open()) {
        csv.close();
        if (!csv) throw Error("error writing '" + csv_path + "'");
    }
    if (!model_path.empty()) model_eval(model_path, tokens_path, model_ctx, model_chunks, n_threads, types, model_csv);
    printf("\n%.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return 0;
}

}  // namespace

ROTOR_COMMAND(kv_eval, "kv-eval [--types T] [--capture F]   quality per bit of the KV cache formats", cmd_kv_eval);

}  // namespace rotor::cli
