// rotor pull ORG/REPO FILE [-o DIR] [--sha256 HEX] [--endpoint URL]: one file of a Hugging Face
// repository, resumable and verified (src/pull).
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli_common.h"
#include "commands.h"
#include "pull/pull.h"

namespace rotor::cli {

namespace {

const char* kUsage =
    "usage: rotor pull ORG/REPO FILE [options]\n"
    "  downloads https://huggingface.co/ORG/REPO/resolve/main/FILE into DIR/FILE, resuming DIR/FILE.part\n"
    "  when run again, and verifies its sha256 (the given one, or the one the server sends for LFS files)\n"
    "  -o, --output DIR     folder to write into (default: models)\n"
    "  --sha256 HEX         expected sha256 of the file\n"
    "  --endpoint URL       instead of https://huggingface.co (or env HF_ENDPOINT)\n"
    "  --retries N          tries again N times when the connection drops (default 3)\n"
    "  --quiet              no progress output\n"
    "  env HF_TOKEN         sent as a Bearer token (gated or private repositories)\n";

int cmd_pull(const Args& args) {
    std::vector<std::string> positional;
    std::string dir = "models", endpoint, sha;
    int retries = 3;
    bool quiet = false;
    if (const char* e = std::getenv("HF_ENDPOINT"); e && *e) endpoint = e;
    ArgReader a(args);
    while (a.next()) {
        const std::string& o = a.arg();
        if (o == "-o" || o == "--output") dir = a.value();
        else if (o == "--sha256") sha = a.value();
        else if (o == "--endpoint") endpoint = a.value();
        else if (o == "--retries") retries = parse_int(o, a.value(), 0);
        else if (o == "--quiet" || o == "-q") quiet = true;
        else if (o == "-h" || o == "--help") {
            printf("%s", kUsage);
            return 0;
        } else if (!o.empty() && o[0] == '-') throw Error("unknown option " + o + "\n" + kUsage);
        else positional.push_back(o);
    }
    if (positional.size() != 2) throw Error(std::string("expected ORG/REPO and FILE\n") + kUsage);
    const std::string& repo = positional[0];
    const std::string& file = positional[1];
    if (repo.find('/') == std::string::npos || repo.front() == '/' || repo.back() == '/')
        throw Error("the repository must be ORG/REPO, got '" + repo + "'");
    if (file.empty() || file.find("..") != std::string::npos || file.front() == '/')
        throw Error("FILE must be a path inside the repository, got '" + file + "'");

    PullOptions o;
    o.url = hf_resolve_url(endpoint, repo, file);
    o.dest = (std::filesystem::path(dir) / std::filesystem::path(file).filename()).string();
    o.sha256 = sha;
    o.attempts = retries + 1;
    o.progress = !quiet;
    if (const char* t = std::getenv("HF_TOKEN"); t && *t) o.bearer_token = t;
    if (!pull_available()) pull_file(o);  // throws the built-without-libcurl message
    if (!quiet) fprintf(stderr, "rotor pull: %s -> %s\n", o.url.c_str(), o.dest.c_str());
    const PullResult r = pull_file(o);
    if (r.already_present) {
        printf("%s already present (%llu bytes%s)\n", o.dest.c_str(), (unsigned long long)r.bytes,
               r.sha256.empty() ? ", not checked: give --sha256 to verify it" : ", sha256 ok");
        return 0;
    }
    printf("%s: %llu bytes, %s\n", o.dest.c_str(), (unsigned long long)r.bytes,
           r.sha256.empty() ? "not verified (no sha256 given or sent by the server)"
                            : ("sha256 " + r.sha256 + " ok (" + (r.sha256_source == "server" ? "from the server" : "--sha256") + ")").c_str());
    return 0;
}

}  // namespace

ROTOR_COMMAND(pull, "pull ORG/REPO FILE [-o DIR] [--sha256 HEX]   download a GGUF from Hugging Face (resumable, verified)",
              cmd_pull);

}  // namespace rotor::cli
