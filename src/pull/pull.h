// Downloads one file over HTTP(S) with libcurl: into PATH.part, resumed with a Range request when run
// again, verified against a SHA-256 (given, or the one Hugging Face sends for LFS files), renamed to
// PATH only once verified. Built without libcurl, pull_file throws an Error saying so.
#pragma once
#include <cstdint>
#include <string>

namespace rotor {

// https://huggingface.co/ORG/REPO/resolve/main/FILE, or under another endpoint (a mirror, a test server).
std::string hf_resolve_url(const std::string& endpoint, const std::string& repo, const std::string& file);

struct PullOptions {
    std::string url;
    std::string dest;             // final path; the download goes to dest + ".part" until verified
    std::string sha256;           // expected digest (64 hex); empty: use the server's, if it sends one
    std::string bearer_token;     // sent as "Authorization: Bearer ..." when non-empty
    int attempts = 1;             // tries in all when the connection drops (each one resumes)
    int retry_pause_ms = 1000;    // before the second try; doubled each time
    bool progress = true;         // progress on stderr: a bar on a terminal, occasional lines otherwise
    long connect_timeout_s = 30;
};

struct PullResult {
    uint64_t bytes = 0;       // size of the finished file
    uint64_t downloaded = 0;  // bytes received by this call (less than bytes when it resumed)
    std::string sha256;       // digest of the finished file (empty when no digest was known)
    std::string sha256_source;  // "--sha256", "server", or "" (not verified)
    bool already_present = false;
};

bool pull_available();  // built with libcurl
PullResult pull_file(const PullOptions& o);

}  // namespace rotor
