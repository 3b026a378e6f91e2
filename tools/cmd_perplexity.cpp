// rotor perplexity -m FILE -f TEXT [--ctx N] [--kl-divergence-base OUT | --kl-divergence BASE] [--kv-k T --kv-v T]
#include <cmath>
#include <cstdio>
#include <memory>
#include <thread>

#include "cli_common.h"
#include "commands.h"
#include "gpu_backend.h"
#include "kv/kv_pool.h"
#include "model/forward.h"
#include "model/perplexity.h"
#include "tokenizer/vocab.h"

namespace rotor::cli {

namespace {

const char* kUsage =
    "usage: rotor perplexity -m MODEL.gguf -f TEXT [options]\n"
    "  --ctx N                     chunk length (default 512); the second half of each chunk is scored\n"
    "  --chunks N                  at most N chunks (default all)\n"
    "  --kv-k T --kv-v T           KV cache types (default f16)\n"
    "  --kl-divergence-base OUT    save this run's log-probabilities as the base for KL runs\n"
    "  --kl-divergence BASE        compare with a saved base: KL divergence, PPL ratio, same top token\n"
    "  --batched                   evaluate each chunk as one prefill (default: token by token through the\n"
    "                              KV cache, where quantized keys are actually read back)\n"
    "  --parallel N                chunks decoded together as one batch (default 4)\n"
    "  --threads N\n"
    "  --gpu                       run on the CUDA backend (KV f32, f16 or q8_0)\n";

int cmd_perplexity(const Args& args) {
    std::string model_path, text_path, k_type = "f16", v_type = "f16", base_out, base_in;
    PerplexityOptions opt;
    bool gpu = false;
    opt.n_threads = (int)std::thread::hardware_concurrency();
    ArgReader a(args);
    while (a.next()) {
        const std::string& o = a.arg();
        if (o == "-m" || o == "--model") model_path = a.value();
        else if (o == "-f" || o == "--file") text_path = a.value();
        else if (o == "--ctx" || o == "-c") opt.n_ctx = a.int_value();
        else if (o == "--chunks") opt.max_chunks = a.int_value();
        else if (o == "--kv-k") k_type = a.value();
        else if (o == "--kv-v") v_type = a.value();
        else if (o == "--kl-divergence-base") base_out = a.value();
        else if (o == "--kl-divergence") base_in = a.value();
        else if (o == "--batched") opt.decode_path = false;
        else if (o == "--parallel") opt.n_parallel = a.int_value();
        else if (o == "--threads") opt.n_threads = a.int_value();
        else if (o == "--gpu") gpu = true;
        else if (o == "-h" || o == "--help") {
            printf("%s", kUsage);
            return 0;
        } else throw Error("unknown option " + o + "\n" + kUsage);
    }
    if (model_path.empty() || text_path.empty()) throw Error(std::string("a model and a text file are required\n") + kUsage);
    if (!base_out.empty() && !base_in.empty()) throw Error("--kl-divergence-base and --kl-divergence exclude each other");

    auto model = Model::load(model_path);
    const Vocab vocab = Vocab::from_gguf(model->file);
    const std::vector<int32_t> tokens = vocab.tokenize(read_text_file(text_path), false, false);
    opt.bos = vocab.add_bos() ? vocab.bos() : -1;
    // validate the KV types (and head sizes) before any work
    (void)make_kv_layout(kv_geometry(*model), k_type, v_type);
    opt.make_cache = [&](const ModelConfig& cfg, int n_seq, int n_ctx) -> std::unique_ptr<KvCache> {
        (void)cfg;  // the model's own geometry: gemma4's K = V layers need its weights
        return make_paged_kv_cache(kv_geometry(*model), k_type, v_type, n_seq, n_ctx);
    };
    std::unique_ptr<GpuBackend> backend;
    if (gpu) {
        const int n_seq = opt.decode_path ? std::max(1, opt.n_parallel) : 1;
        backend = std::make_unique<GpuBackend>(*model, n_seq, opt.n_ctx, std::max(n_seq, opt.n_ctx), k_type, v_type);
        opt.step = [&](const Batch& b, std::vector<float>& logits) { backend->step(b, logits); };
    }
    const int n_chunks = std::min<int>((int)(tokens.size() / opt.n_ctx), opt.max_chunks > 0 ? opt.max_chunks : 1 << 30);
    fprintf(stderr, "%zu tokens, %d chunks of %d, KV %s/%s, %s path\n", tokens.size(), n_chunks, opt.n_ctx,
            k_type.c_str(), v_type.c_str(), opt.decode_path ? "decode" : "batched");

    std::vector<int32_t> used(tokens.begin(), tokens.begin() + std::min<size_t>(tokens.size(), (size_t)n_chunks * opt.n_ctx));
    std::unique_ptr<KlBaseWriter> writer;
    std::unique_ptr<KlComparator> cmp;
    if (!base_out.empty()) writer = std::make_unique<KlBaseWriter>(base_out, opt.n_ctx, model->cfg.n_vocab, used);
    if (!base_in.empty()) cmp = std::make_unique<KlComparator>(base_in, opt.n_ctx, model->cfg.n_vocab, used);
    opt.on_scored = [&](const float* lp, int, int32_t target) {
        if (writer) writer->add(lp, target);
        if (cmp) cmp->add(lp, target);
    };
    opt.on_progress = [](int c, int n, double ppl) { fprintf(stderr, "[%d/%d] %.4f\n", c + 1, n, ppl); };
    const PerplexityResult r = compute_perplexity(*model, tokens, opt);
    if (writer) writer->finish();
    printf("perplexity: %.6f over %lld scored tokens (%d chunks of %d)\n", r.ppl(), (long long)r.scored, r.chunks, r.n_ctx);
    if (cmp) {
        const KlStats s = cmp->stats();
        printf("KL divergence vs %s (%lld positions):\n", base_in.c_str(), (long long)s.n);
        printf("  mean   %.6f +/- %.6f\n  median %.6f\n  99%%    %.6f\n  99.9%%  %.6f\n  max    %.6f\n", s.mean,
               s.mean_kld_stderr, s.median, s.p99, s.p999, s.max);
        printf("  PPL ratio %.6f (base %.6f)\n  same top token %.3f%%\n", s.ppl / s.ppl_base, s.ppl_base, 100 * s.same_top);
    }
    return 0;
}

}  // namespace

ROTOR_COMMAND(perplexity, "perplexity -m MODEL -f TEXT [--ctx N] [--kl-divergence(-base) F]   quality (rotor perplexity --help)",
              cmd_perplexity);

}  // namespace rotor::cli
