// `rotor serve --profile NAME[:VARIANT]`: settings from profiles/NAME.json (written by
// scripts/gen_profiles.py from rotor plan's numbers). VARIANT is long_context (default) or throughput.
// `auto` asks the CUDA runtime for GPU 0 and takes, among the profiles planned for the model being
// served (same file name), the one of the largest card whose memory it has (a build without the CUDA
// backend, a machine without a GPU, or a model no profile was planned for, gets a clear error).
#pragma once
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli_common.h"
#include "common/error.h"
#ifdef ROTOR_HAVE_CUDA
#include "cuda/device.h"
#endif

namespace rotor::cli {

struct ServeProfile {
    std::string path, variant, model_file, model_repo;
    int slots = 0, ctx_per_slot = 0;
    std::string kv_k, kv_v;
};

// Folders searched for NAME.json: $ROTOR_PROFILES, ./profiles, and profiles/ beside or above the binary.
inline std::vector<std::filesystem::path> profile_dirs() {
    std::vector<std::filesystem::path> dirs;
    if (const char* e = std::getenv("ROTOR_PROFILES"); e && *e) dirs.emplace_back(e);
    dirs.emplace_back("profiles");
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        const std::filesystem::path dir = std::filesystem::path(std::string(exe, (size_t)n)).parent_path();
        dirs.push_back(dir / "profiles");
        dirs.push_back(dir.parent_path() / "profiles");
    }
    return dirs;
}

// The profile for this machine's GPU 0 and this model file: the largest card (usable_bytes) not above
// its memory among the profiles planned for model_file.
inline std::string auto_profile_path(const std::string& model_file) {
#ifdef ROTOR_HAVE_CUDA
    const std::vector<cuda::GpuInfo> gpus = cuda::list_gpus();
    if (gpus.empty()) throw Error("--profile auto: no CUDA GPU found (is the NVIDIA driver loaded?); name a profile instead");
    const cuda::GpuInfo& g = gpus[0];
    std::string best;
    std::set<std::string> planned;  // model files the profiles were planned for
    uint64_t best_bytes = 0;
    for (const auto& d : profile_dirs()) {
        if (!std::filesystem::is_directory(d)) continue;
        for (const auto& e : std::filesystem::directory_iterator(d)) {
            if (e.path().extension() != ".json") continue;
            try {
                const auto j = nlohmann::json::parse(read_text_file(e.path().string()));
                const std::string file = j.at("model").at("file").get<std::string>();
                planned.insert(file);
                if (file != model_file) continue;
                // what CUDA reports as total is the card less the driver's share (usable_bytes)
                const uint64_t b = j.value("usable_bytes", j.at("device_bytes").get<uint64_t>());
                if (b <= g.total_bytes + (g.total_bytes >> 6) && b > best_bytes) {  // 1.5% slack: reported sizes vary
                    best_bytes = b;
                    best = e.path().string();
                }
            } catch (const std::exception&) {
                continue;  // not a profile
            }
        }
        if (!best.empty()) break;
    }
    if (best.empty() && !planned.count(model_file)) {
        std::string names;
        for (const std::string& f : planned) names += (names.empty() ? "" : ", ") + f;
        throw Error("--profile auto: no profile was planned for " + model_file + " (profiles exist for " + names +
                    "); plan it with `rotor plan -m MODEL --vram GIB` and give --slots, --ctx-per-slot, --kv-k, --kv-v");
    }
    if (best.empty())
        throw Error("--profile auto: no profile for " + model_file + " fits " + g.name + " (" +
                    std::to_string(g.total_bytes >> 20) + " MiB)");
    fprintf(stderr, "--profile auto: GPU 0 is %s (%.1f GiB): %s\n", g.name.c_str(), g.total_bytes / 1073741824.0,
            best.c_str());
    return best;
#else
    (void)model_file;
    throw Error("--profile auto: GPU detection needs the CUDA backend, which this build does not have (nvcc was not "
                "found when it was built); name a profile instead (e.g. --profile rtx-4090; they are in profiles/)");
#endif
}

// model_file: the served model's file name (for auto).
inline ServeProfile load_serve_profile(const std::string& spec, const std::string& model_file) {
    std::string name = spec, variant = "long_context";
    if (const size_t colon = spec.rfind(':'); colon != std::string::npos) {
        name = spec.substr(0, colon);
        variant = spec.substr(colon + 1);
    }
    if (name == "auto") name = auto_profile_path(model_file);
    std::filesystem::path path;
    if (name.find('/') != std::string::npos || name.ends_with(".json")) {
        path = name;
    } else {
        std::string searched;
        for (const auto& d : profile_dirs()) {
            if (std::filesystem::exists(d / (name + ".json"))) {
                path = d / (name + ".json");
                break;
            }
            searched += (searched.empty() ? "" : ", ") + d.string();
        }
        if (path.empty()) throw Error("no profile '" + name + "' (looked in " + searched + ")");
    }
    ServeProfile p;
    p.path = path.string();
    p.variant = variant;
    try {
        const auto j = nlohmann::json::parse(read_text_file(p.path));
        if (!j.at("variants").contains(variant))
            throw Error("profile '" + p.path + "' has no variant '" + variant + "' (long_context, throughput)");
        const auto& v = j.at("variants").at(variant);
        p.slots = v.at("slots").get<int>();
        p.ctx_per_slot = v.at("ctx_per_slot").get<int>();
        p.kv_k = v.at("kv_k").get<std::string>();
        p.kv_v = v.at("kv_v").get<std::string>();
        p.model_file = j.at("model").at("file").get<std::string>();
        p.model_repo = j.at("model").at("repo").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
        throw Error("profile '" + p.path + "' is not a valid profile: " + e.what());
    }
    return p;
}

}  // namespace rotor::cli
