// rotor run -m FILE -p PROMPT [-n N] [--temp T ...]: generate text, streamed, then the speeds.
#include <chrono>
#include <cstdio>
#include <thread>

#include "cli_common.h"
#include "commands.h"
#include "gpu_backend.h"
#include "kv/kv_pool.h"
#include "model/forward.h"
#include "sample/sampler.h"
#include "sample/stop.h"
#include "tokenizer/vocab.h"

namespace rotor::cli {

namespace {

const char* kUsage =
    "usage: rotor run -m MODEL.gguf (-p PROMPT | -f FILE) [options]\n"
    "  -n N                  tokens to generate (default 128; stops early at end of generation)\n"
    "  --temp T              temperature (default 0.8; 0 = greedy)\n"
    "  --top-k K --top-p P --min-p P --typical-p P\n"
    "  --repeat-penalty R --repeat-last-n N --presence-penalty P --frequency-penalty F\n"
    "  --seed S              (default random; the seed used is printed)\n"
    "  --stop TEXT           stop string (repeatable)\n"
    "  --llama2c-sampler     llama2.c run.c's sampler (temperature, top-p, seed only)\n"
    "  --ctx N               context positions (default: prompt + n, at most the model's)\n"
    "  --kv-k T --kv-v T     KV cache types (default f16)\n"
    "  --threads N           (default: all cores)\n"
    "  --gpu                 run on the CUDA backend (KV f32, f16 or q8_0)\n"
    "  --no-bos              do not add BOS even if the vocabulary asks for it\n"
    "  --parse-special       control tokens written in the prompt become those tokens\n";

int cmd_run(const Args& args) {
    std::string model_path, prompt, k_type = "f16", v_type = "f16";
    bool have_prompt = false, add_bos = true, parse_special = false, llama2c = false, gpu = false;
    int n_predict = 128, n_ctx = 0, threads = (int)std::thread::hardware_concurrency();
    SamplerParams sp;
    std::vector<std::string> stops;
    ArgReader a(args);
    while (a.next()) {
        const std::string& o = a.arg();
        if (o == "-m" || o == "--model") model_path = a.value();
        else if (o == "-p" || o == "--prompt") prompt = a.value(), have_prompt = true;
        else if (o == "-f" || o == "--file") prompt = read_text_file(a.value()), have_prompt = true;
        else if (o == "-n" || o == "--n-predict") n_predict = a.int_value();
        else if (o == "--temp") sp.temperature = (float)a.float_value();
        else if (o == "--top-k") sp.top_k = a.int_value();
        else if (o == "--top-p") sp.top_p = (float)a.float_value();
        else if (o == "--min-p") sp.min_p = (float)a.float_value();
        else if (o == "--typical-p") sp.typical_p = (float)a.float_value();
        else if (o == "--repeat-penalty") sp.repetition_penalty = (float)a.float_value();
        else if (o == "--repeat-last-n") sp.penalty_last_n = a.int_value();
        else if (o == "--presence-penalty") sp.presence_penalty = (float)a.float_value();
        else if (o == "--frequency-penalty") sp.frequency_penalty = (float)a.float_value();
        else if (o == "--seed") sp.seed = (int64_t)a.float_value();
        else if (o == "--stop") stops.push_back(a.value());
        else if (o == "--llama2c-sampler") llama2c = true;
        else if (o == "--ctx") n_ctx = a.int_value();
        else if (o == "--kv-k") k_type = a.value();
        else if (o == "--kv-v") v_type = a.value();
        else if (o == "--threads") threads = a.int_value();
        else if (o == "--no-bos") add_bos = false;
        else if (o == "--gpu") gpu = true;
        else if (o == "--parse-special") parse_special = true;
        else if (o == "-h" || o == "--help") {
            printf("%s", kUsage);
            return 0;
        } else throw Error("unknown option " + o + "\n" + kUsage);
    }
    if (model_path.empty() || !have_prompt) throw Error(std::string("a model and a prompt are required\n") + kUsage);
    if (n_predict < 0) throw Error("-n must not be negative");
    if (llama2c) sp = SamplerParams::llama2c(sp.temperature, sp.top_p, sp.seed);

    auto model = Model::load(model_path);
    const Vocab vocab = Vocab::from_gguf(model->file);
    for (const auto& w : vocab.warnings()) fprintf(stderr, "warning: %s\n", w.c_str());
    std::vector<int32_t> tokens = vocab.tokenize(prompt, add_bos, parse_special);
    if (tokens.empty()) throw Error("the prompt is empty (and the vocabulary adds no BOS)");
    if (n_ctx == 0) n_ctx = std::min<int>((int)tokens.size() + n_predict, std::max(model->cfg.n_ctx_train, (int)tokens.size() + 1));
    if ((int)tokens.size() >= n_ctx)
        throw Error("the prompt has " + std::to_string(tokens.size()) + " tokens; the context is " +
                    std::to_string(n_ctx) + " (use --ctx)");
    if (n_ctx > model->cfg.n_ctx_train)
        fprintf(stderr, "warning: context %d is longer than the model was trained for (%d)\n", n_ctx, model->cfg.n_ctx_train);

    std::unique_ptr<KvCache> kv;
    std::unique_ptr<RecurrentState> rs;  // hybrid models (qwen35): Gated DeltaNet state beside the cache
    std::unique_ptr<CpuForward> cpu;
    std::unique_ptr<GpuBackend> backend;
    if (gpu) {
        backend = std::make_unique<GpuBackend>(*model, 1, n_ctx, (int)tokens.size(), k_type, v_type);
    } else {
        kv = make_paged_kv_cache(kv_geometry(*model), k_type, v_type, 1, n_ctx);
        if (model->cfg.hybrid()) rs = std::make_unique<RecurrentState>(recurrent_geometry(model->cfg), 1);
        cpu = std::make_unique<CpuForward>(*model, threads);
    }
    auto forward = [&](const Batch& batch, std::vector<float>& out) {
        if (backend) backend->step(batch, out);
        else cpu->forward(batch, *kv, rs.get(), out);
    };
    Sampler sampler(sp);
    StopMatcher stop(stops);
    StreamDecoder decoder(vocab);
    std::vector<float> logits;

    fputs(prompt.c_str(), stdout);
    fflush(stdout);
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    Batch b;
    for (size_t i = 0; i < tokens.size(); i++) b.add(tokens[i], (int)i, 0, i + 1 == tokens.size());
    forward(b, logits);
    const double t_prompt = std::chrono::duration<double>(Clock::now() - t0).count();
    for (int32_t t : tokens) sampler.accept(t);

    const auto t1 = Clock::now();
    int n_gen = 0;
    std::string reason = "length";
    while (n_gen < n_predict) {
        const int32_t tok = sampler.sample(logits.data(), model->cfg.n_vocab);
        sampler.accept(tok);
        n_gen++;
        if (vocab.is_eog(tok)) {
            reason = "end of generation";
            break;
        }
        const StopMatcher::Output out = stop.feed(decoder.push(tok));
        fputs(out.text.c_str(), stdout);
        fflush(stdout);
        if (out.stopped) {
            reason = "stop string";
            break;
        }
        if (n_gen == n_predict) break;
        const int pos = (int)tokens.size() + n_gen - 1;
        if (pos + 1 >= n_ctx) {
            reason = "context full";
            break;
        }
        b.clear();
        b.add(tok, pos, 0, true);
        forward(b, logits);
    }
    if (!stop.stopped()) {  // text held back by the decoder or the stop matcher
        fputs(stop.feed(decoder.flush()).text.c_str(), stdout);
        fputs(stop.flush().c_str(), stdout);
    }
    const double t_gen = std::chrono::duration<double>(Clock::now() - t1).count();
    fprintf(stdout, "\n");
    fprintf(stderr, "\n[%s] prompt: %zu tokens, %.1f tok/s | generation: %d tokens, %.1f tok/s | seed %llu, KV %s/%s, %s\n",
            reason.c_str(), tokens.size(), tokens.size() / t_prompt, n_gen, n_gen / std::max(t_gen, 1e-9),
            (unsigned long long)sampler.seed(), k_type.c_str(), v_type.c_str(),
            backend ? "GPU" : (std::to_string(cpu->n_threads()) + " threads").c_str());
    return 0;
}

}  // namespace

ROTOR_COMMAND(run, "run -m MODEL -p PROMPT [-n N] [--temp T ...]   generate text (rotor run --help)", cmd_run);

}  // namespace rotor::cli
