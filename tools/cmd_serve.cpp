// rotor serve -m FILE: the OpenAI-compatible HTTP server (src/server, docs/SERVER.md).
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "commands.h"
#include "common/error.h"
#include "server/api.h"
#include "serve_profile.h"

namespace rotor::cli {

namespace {

int usage() {
    fprintf(stderr,
            "usage: rotor serve -m FILE [options]\n"
            "  -m, --model FILE          GGUF model\n"
            "  --slots N                 requests computed at once (default 4)\n"
            "  --ctx-per-slot C          positions each request may use, prompt and reply together; the KV\n"
            "                            pool holds slots x C (default: the model's context, at most 4096)\n"
            "  --kv-k T, --kv-v T        KV cache types for keys / values (default f16)\n"
            "  --batch N                 prompt tokens per step, all slots together (default 512)\n"
            "  --queue N                 requests that may wait for a slot; beyond it 503 (default 64)\n"
            "  --threads N               forward-pass threads (default: all cores)\n"
            "  --host H                  address to listen on (default 127.0.0.1)\n"
            "  --port P                  port (default 8080; 0: any free port, printed at start)\n"
            "  --api-key K               require 'Authorization: Bearer K' (or env ROTOR_API_KEY)\n"
            "  --alias NAME              model id clients see (default: file name without .gguf)\n"
            "  --chat-template-file F    use this Jinja chat template instead of the GGUF's\n"
            "  --gpu, --gpu-id N         run the forward pass and the KV cache on CUDA GPU 0 (or N); KV types\n"
            "                            f32, f16, q8_0, q4_0, q8_0h, q4_0h there so far (others refused at load)\n"
            "  --cpu                     stay on the CPU even with --profile auto\n"
            "  --profile NAME[:VARIANT]  slots, context per slot and KV types from profiles/NAME.json\n"
            "                            (VARIANT long_context or throughput; options given here win;\n"
            "                            'auto' picks the profile of GPU 0 and implies --gpu)\n");
    return 2;
}

int to_int(const std::string& flag, const std::string& v) {
    char* end = nullptr;
    errno = 0;
    const long x = strtol(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || x < -1 || x > (1L << 30)) throw Error(flag + " needs an integer, got '" + v + "'");
    return (int)x;
}

}  // namespace

static int cmd_serve(const Args& args) {
    server::ServeOptions opt;
    opt.engine.n_ctx_per_slot = 0;  // the model's context (capped) unless given
    std::string host = "127.0.0.1";
    int port = 8080;
    if (const char* k = getenv("ROTOR_API_KEY")) opt.api_key = k;
    std::string profile;
    bool set_slots = false, set_ctx = false, set_kv_k = false, set_kv_v = false, force_cpu = false;
    for (size_t i = 0; i < args.size(); i++) {
        const std::string& a = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw Error(a + " needs a value");
            return args[++i];
        };
        if (a == "-m" || a == "--model") opt.model_path = value();
        else if (a == "--slots" || a == "-np" || a == "--parallel") opt.engine.n_slots = to_int(a, value()), set_slots = true;
        else if (a == "--ctx-per-slot") opt.engine.n_ctx_per_slot = to_int(a, value()), set_ctx = true;
        else if (a == "--kv-k") opt.engine.kv_k = value(), set_kv_k = true;
        else if (a == "--kv-v") opt.engine.kv_v = value(), set_kv_v = true;
        else if (a == "--profile") profile = value();
        else if (a == "--gpu") opt.engine.gpu = true;
        else if (a == "--gpu-id") opt.engine.gpu = true, opt.engine.gpu_index = to_int(a, value());
        else if (a == "--cpu") force_cpu = true;
        else if (a == "--batch" || a == "-b") opt.engine.n_batch = to_int(a, value());
        else if (a == "--queue") opt.engine.n_queue = to_int(a, value());
        else if (a == "--threads" || a == "-t") opt.engine.n_threads = to_int(a, value());
        else if (a == "--host") host = value();
        else if (a == "--port") port = to_int(a, value());
        else if (a == "--api-key") opt.api_key = value();
        else if (a == "--alias") opt.alias = value();
        else if (a == "--chat-template-file") opt.chat_template_file = value();
        else if (a == "-h" || a == "--help") return usage(), 0;
        else {
            fprintf(stderr, "rotor serve: unknown option '%s'\n", a.c_str());
            return usage();
        }
    }
    if (!profile.empty()) {
        const ServeProfile p =
            load_serve_profile(profile, std::filesystem::path(opt.model_path).filename().string());
        if (!set_slots) opt.engine.n_slots = p.slots;
        if (!set_ctx) opt.engine.n_ctx_per_slot = p.ctx_per_slot;
        if (!set_kv_k) opt.engine.kv_k = p.kv_k;
        if (!set_kv_v) opt.engine.kv_v = p.kv_v;
        fprintf(stderr, "rotor serve: profile %s (%s, planned for %s): %d slots x %d positions, KV %s/%s\n",
                p.path.c_str(), p.variant.c_str(), p.model_file.c_str(), opt.engine.n_slots,
                opt.engine.n_ctx_per_slot, opt.engine.kv_k.c_str(), opt.engine.kv_v.c_str());
        // A profile's numbers hold for the model it was planned with; another model's KV cache per
        // token differs, so they would not fit, or waste the card. Options given here take over.
        const std::string file = std::filesystem::path(opt.model_path).filename().string();
        if (!opt.model_path.empty() && file != p.model_file && !(set_slots && set_ctx && set_kv_k && set_kv_v))
            throw Error("profile " + p.path + " was planned for " + p.model_file + ", not " + file +
                        ": plan this model with `rotor plan -m " + opt.model_path +
                        " --gpu CARD` and give --slots, --ctx-per-slot, --kv-k and --kv-v");
    }
    // A profile detected from the GPU is meant for that GPU.
    if (profile.rfind("auto", 0) == 0 && !force_cpu) opt.engine.gpu = true;
    if (force_cpu) opt.engine.gpu = false;
    if (opt.model_path.empty()) return usage();
    if (port < 0 || port > 65535) throw Error("--port must be between 0 and 65535");

    // Signals go to the thread that waits for them (below), not to whichever thread they hit.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    server::ApiServer api(opt);
    server::HttpServer http([&api](const server::HttpRequest& rq, server::HttpResponse& rs) { api.handle(rq, rs); });
    http.listen(host, port);  // listening before the model loads: /health says 503 meanwhile
    std::thread http_thread([&http] { http.run(); });
    fprintf(stderr, "rotor serve: listening on http://%s:%d (loading %s)\n", host.c_str(), http.port(),
            opt.model_path.c_str());
    try {
        api.load();
    } catch (...) {
        http.stop();
        http_thread.join();
        throw;
    }
    const server::EngineConfig& c = api.engine()->config();
    const server::EngineMetrics m = api.engine()->metrics();
    fprintf(stderr,
            "rotor serve: model '%s' ready on %s: %d slots x %d positions, KV %s/%s, pool %.1f MiB, batch %d, %d threads\n",
            api.model_id().c_str(), api.engine()->device().c_str(), c.n_slots, c.n_ctx_per_slot, c.kv_k.c_str(),
            c.kv_v.c_str(), (double)m.kv_bytes_capacity / 1048576.0, c.n_batch, c.n_threads);
    fflush(stderr);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "rotor serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http.stop();          // no new requests; open connections are shut down
    api.shutdown();       // running generations end
    http_thread.join();
    return 0;
}

ROTOR_COMMAND(serve, "serve -m FILE [--slots N] [--ctx-per-slot C] [--port P] ...  OpenAI-compatible HTTP server",
              cmd_serve);

}  // namespace rotor::cli
