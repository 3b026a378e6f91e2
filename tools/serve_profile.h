// `rotor serve --profile NAME[:VARIANT]`: settings from profiles/NAME.json (written by
// scripts/gen_profiles.py from rotor plan's numbers). VARIANT is long_context (default) or throughput.
// `auto` needs the GPU detection the CUDA backend will provide; until then it is a clear error.
#pragma once
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_common.h"
#include "common/error.h"

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

inline ServeProfile load_serve_profile(const std::string& spec) {
    std::string name = spec, variant = "long_context";
    if (const size_t colon = spec.rfind(':'); colon != std::string::npos) {
        name = spec.substr(0, colon);
        variant = spec.substr(colon + 1);
    }
    if (name == "auto")
        throw Error("--profile auto: GPU detection needs the CUDA backend, which this build does not have yet; "
                    "name a profile instead (e.g. --profile rtx-4090; they are in profiles/)");
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
