// rotor plan -m FILE (--gpu NAME | --vram GIB) [--kv-k T --kv-v T] [--slots N | --ctx C] [--json]
// What fits on a card, from GGUF metadata alone (the tensor data may be absent).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_common.h"
#include "commands.h"
#include "kv/kv_format.h"
#include "plan/planner.h"

namespace rotor::cli {

namespace {

const char* kUsage =
    "usage: rotor plan -m MODEL.gguf (--gpu NAME | --vram GIB) [options]\n"
    "  --gpu NAME          a known card (rtx-4060ti-16, rtx-4090, rtx-5090, a100-80, h100, h200): its nvidia-smi\n"
    "                      total less what the driver keeps\n"
    "  --vram GIB          memory CUDA can allocate (the total `rotor serve --gpu` logs)\n"
    "  --kv-k T --kv-v T   KV types to plan for (default: f16, q8_0, q4_0h, tcq4, tcq3, each for K and V)\n"
    "  --slots N           largest context per slot for 1..N slots (default 8)\n"
    "  --ctx C             most slots of C tokens each (instead of --slots)\n"
    "  --slots N --ctx C   both: the memory of exactly N slots of C tokens, part by part\n"
    "  --batch N           prompt tokens per step, sizes activation buffers (default 512)\n"
    "  --overhead MIB      runtime overhead: CUDA context, kernels, the desktop (default 512)\n"
    "  --json              machine-readable output\n";

int cmd_plan(const Args& args) {
    std::string model_path, gpu, k_type, v_type;
    double vram_gib = 0;
    int max_slots_n = 8, batch = 512;
    int64_t ctx = 0;
    uint64_t overhead_mib = 512;
    bool json_out = false, slots_given = false;
    ArgReader a(args);
    while (a.next()) {
        const std::string& o = a.arg();
        if (o == "-m" || o == "--model") model_path = a.value();
        else if (o == "--gpu") gpu = a.value();
        else if (o == "--vram") vram_gib = a.float_value();
        else if (o == "--kv-k") k_type = a.value();
        else if (o == "--kv-v") v_type = a.value();
        else if (o == "--slots") max_slots_n = a.int_value(), slots_given = true;
        else if (o == "--ctx") ctx = a.int_value();
        else if (o == "--batch") batch = a.int_value();
        else if (o == "--overhead") overhead_mib = (uint64_t)a.int_value();
        else if (o == "--json") json_out = true;
        else if (o == "-h" || o == "--help") {
            printf("%s", kUsage);
            return 0;
        } else throw Error("unknown option " + o + "\n" + kUsage);
    }
    if (model_path.empty() || (gpu.empty() == (vram_gib <= 0)))
        throw Error(std::string("a model and exactly one of --gpu / --vram are required\n") + kUsage);
    if (max_slots_n < 1 || max_slots_n > 1024 || batch < 1 || ctx < 0) throw Error("--slots, --batch and --ctx must be positive");
    // --vram is what CUDA can allocate (its total, as `rotor serve` or torch.cuda reports it); a named
    // card's nvidia-smi total less what its driver keeps.
    const Device dev = gpu.empty() ? Device{"custom", (uint64_t)(vram_gib * 1073741824.0)} : find_device(gpu);
    const uint64_t budget = dev.usable();

    gguf::File f = gguf::File::open(model_path, gguf::OpenOptions{true});
    const ModelMemory m = read_model_memory(f);
    std::vector<std::pair<std::string, std::string>> types;
    if (!k_type.empty() || !v_type.empty()) {
        types.push_back({k_type.empty() ? v_type : k_type, v_type.empty() ? k_type : v_type});
    } else {
        for (const char* t : {"f16", "q8_0", "q4_0h", "tcq4", "tcq3"}) types.push_back({t, t});
    }
    const int head_dim = kv_head_dim(m);

    nlohmann::ordered_json out;
    out["model"] = model_path;
    out["arch"] = m.arch;
    out["weights_bytes"] = m.weight_bytes;
    out["device"] = dev.name;
    out["device_bytes"] = dev.bytes;
    out["usable_bytes"] = budget;
    out["reserved_bytes"] = dev.reserved_bytes;
    out["overhead_bytes"] = overhead_mib << 20;
    out["recurrent_bytes_per_slot"] = m.recurrent_bytes_per_seq;
    out["plans"] = nlohmann::ordered_json::array();
    int kv_layers = 0;
    for (const auto& l : m.layers) kv_layers += l.has_kv;

    if (!json_out) {
        printf("model:  %s (%s), weights %s, %d of %d layers keep a KV cache", model_path.c_str(), m.arch.c_str(),
               gib_text(m.weight_bytes).c_str(), kv_layers, m.n_layer);
        if (m.recurrent_bytes_per_seq) printf(", recurrent state %.1f MiB per slot", m.recurrent_bytes_per_seq / 1048576.0);
        printf("\ndevice: %s, %s", dev.name.c_str(), gib_text(dev.bytes).c_str());
        if (dev.reserved_bytes)
            printf(" (%s usable: the driver keeps %llu MiB, %s)", gib_text(budget).c_str(),
                   (unsigned long long)(dev.reserved_bytes >> 20), dev.reserved_measured ? "measured" : "estimated");
        printf("; runtime overhead %llu MiB (an estimate until measured on that card)\n\n", (unsigned long long)overhead_mib);
    }
    for (const auto& [kt, vt] : types) {
        PlanSettings s;
        s.k = &require_kv_format(kt, head_dim);
        s.v = &require_kv_format(vt, head_dim);
        s.batch_tokens = batch;
        s.overhead_bytes = overhead_mib << 20;
        const double per_token = (double)kv_bytes_per_slot(m, s, 65536) / 65536;
        nlohmann::ordered_json plan;
        plan["kv_k"] = kt;
        plan["kv_v"] = vt;
        plan["kv_bytes_per_token"] = per_token;
        if (!json_out)
            printf("KV %s/%s: %.1f KiB per token of context\n", kt.c_str(), vt.c_str(), per_token / 1024);
        if (ctx > 0 && slots_given) {
            const MemoryBreakdown b = plan_memory(m, s, max_slots_n, ctx);
            plan["slots"] = max_slots_n;
            plan["ctx_per_slot"] = ctx;
            plan["breakdown"] = {{"weights", b.weights}, {"kv", b.kv},           {"recurrent", b.recurrent},
                                 {"compute", b.compute}, {"overhead", b.overhead}, {"total", b.total()}};
            plan["fits"] = b.total() <= budget;
            if (!json_out)
                printf("  %d slots x %lld tokens: weights %s + KV %s + recurrent %s + compute %s + overhead %s = %s (%s)\n",
                       max_slots_n, (long long)ctx, gib_text(b.weights).c_str(), gib_text(b.kv).c_str(), gib_text(b.recurrent).c_str(),
                       gib_text(b.compute).c_str(), gib_text(b.overhead).c_str(), gib_text(b.total()).c_str(),
                       b.total() <= budget ? "fits" : "does not fit");
        } else if (ctx > 0) {
            const int n = max_slots(m, s, ctx, budget);
            plan["ctx_per_slot"] = ctx;
            plan["max_slots"] = n;
            if (!json_out) printf("  %d slots of %lld tokens fit\n", n, (long long)ctx);
        } else {
            plan["max_ctx_per_slot"] = nlohmann::ordered_json::array();
            if (!json_out) printf("  slots  context per slot  total memory\n");
            for (int slots = 1; slots <= max_slots_n; slots++) {
                const int64_t c = max_context_per_slot(m, s, slots, budget);
                const MemoryBreakdown b = plan_memory(m, s, slots, std::max<int64_t>(c, 1));
                plan["max_ctx_per_slot"].push_back({{"slots", slots}, {"ctx", c}, {"total_bytes", c ? b.total() : 0}});
                if (!json_out) printf("  %5d  %16lld  %s\n", slots, (long long)c, c ? gib_text(b.total()).c_str() : "does not fit");
            }
        }
        out["plans"].push_back(plan);
        if (!json_out) printf("\n");
    }
    if (json_out) printf("%s\n", out.dump(1).c_str());
    return 0;
}

}  // namespace

ROTOR_COMMAND(plan, "plan -m MODEL (--gpu NAME | --vram GIB) [--kv-k T --kv-v T]   what fits (rotor plan --help)",
              cmd_plan);

}  // namespace rotor::cli
