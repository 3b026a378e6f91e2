#include "pull/pull.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "pull/sha256.h"

#ifdef ROTOR_HAVE_CURL
#include <curl/curl.h>
#endif

namespace rotor {

namespace fs = std::filesystem;

std::string hf_resolve_url(const std::string& endpoint, const std::string& repo, const std::string& file) {
    std::string e = endpoint.empty() ? "https://huggingface.co" : endpoint;
    while (!e.empty() && e.back() == '/') e.pop_back();
    std::string path;
    for (char c : file) {  // the file may sit in a folder of the repository; only spaces need escaping here
        if (c == ' ') path += "%20";
        else path += c;
    }
    return e + "/" + repo + "/resolve/main/" + path;
}

#ifndef ROTOR_HAVE_CURL

bool pull_available() { return false; }

PullResult pull_file(const PullOptions& o) {
    throw Error("this rotor was built without libcurl, so it cannot download " + o.url +
                " (install libcurl4-openssl-dev and rebuild, or fetch the file with curl / wget)");
}

#else

bool pull_available() { return true; }

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string s) {
    for (char& c : s) c = (char)std::tolower((unsigned char)c);
    return s;
}

std::string trim(const std::string& s) {
    size_t a = 0, b = s.size();
    while (a < b && std::isspace((unsigned char)s[a])) a++;
    while (b > a && std::isspace((unsigned char)s[b - 1])) b--;
    return s.substr(a, b - a);
}

std::string human_bytes(double b) {
    char buf[32];
    if (b >= 1073741824.0) snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
    else if (b >= 1048576.0) snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
    else snprintf(buf, sizeof buf, "%.0f KiB", b / 1024.0);
    return buf;
}

std::string human_time(double s) {
    char buf[32];
    if (s >= 3600) snprintf(buf, sizeof buf, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60) snprintf(buf, sizeof buf, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, sizeof buf, "%ds", (int)s);
    return buf;
}

// One HTTP request (redirects followed) and what it left behind.
struct Transfer {
    std::string part;
    uint64_t offset = 0;  // bytes of the part file before this request
    bool progress = true, tty = false;

    FILE* out = nullptr;
    bool body_started = false;
    bool restarted = false;  // the server answered a Range request with the whole file
    long status = 0;
    uint64_t received = 0;
    uint64_t total = 0;  // whole file size when the server said so
    // headers of the response being received (reset at each status line: redirects carry their own)
    uint64_t content_length = 0;
    bool has_content_length = false;
    std::string content_range;
    // digests any response of the chain announced (Hugging Face: X-Linked-Etag on the redirect)
    std::string linked_etag, etag, error_message;
    std::string error_body, write_error;

    Clock::time_point start = Clock::now(), last_print{};
    CURL* curl = nullptr;

    void print_progress(bool final_line) {
        if (!progress) return;
        const auto now = Clock::now();
        const double interval = tty ? 0.2 : 10.0;
        if (!final_line && std::chrono::duration<double>(now - last_print).count() < interval) return;
        last_print = now;
        const double secs = std::max(1e-3, std::chrono::duration<double>(now - start).count());
        const double rate = received / secs;
        const uint64_t have = offset + received;
        std::string line = human_bytes((double)have);
        if (total) {
            char buf[128];
            const double eta = rate > 0 ? (double)(total - std::min(total, have)) / rate : 0;
            snprintf(buf, sizeof buf, " / %s  %5.1f%%  %7.1f MB/s  ETA %s", human_bytes((double)total).c_str(),
                     100.0 * have / total, rate / 1e6, human_time(eta).c_str());
            line += buf;
        } else {
            char buf[64];
            snprintf(buf, sizeof buf, "  %7.1f MB/s", rate / 1e6);
            line += buf;
        }
        if (tty) fprintf(stderr, "\r  %-70s%s", line.c_str(), final_line ? "\n" : "");
        else if (!final_line) fprintf(stderr, "rotor pull: %s\n", line.c_str());
        fflush(stderr);
    }
};

std::string etag_digest(const std::string& v) {
    std::string s = trim(v);
    if (s.rfind("W/", 0) == 0) s = s.substr(2);
    if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
    return is_sha256_hex(s) ? lower(s) : "";
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
    Transfer& t = *static_cast<Transfer*>(user);
    const std::string line(data, size * n);
    if (line.rfind("HTTP/", 0) == 0) {
        t.content_length = 0;
        t.has_content_length = false;
        t.content_range.clear();
        const size_t sp = line.find(' ');
        if (sp != std::string::npos) t.status = std::strtol(line.c_str() + sp + 1, nullptr, 10);
        return size * n;
    }
    const size_t colon = line.find(':');
    if (colon == std::string::npos) return size * n;
    const std::string key = lower(trim(line.substr(0, colon))), value = trim(line.substr(colon + 1));
    if (key == "content-length") {
        t.content_length = std::strtoull(value.c_str(), nullptr, 10);
        t.has_content_length = true;
    } else if (key == "content-range") {
        t.content_range = value;
    } else if (key == "x-linked-etag") {
        if (auto d = etag_digest(value); !d.empty()) t.linked_etag = d;
    } else if (key == "etag") {
        if (auto d = etag_digest(value); !d.empty()) t.etag = d;
    } else if (key == "x-error-message") {
        t.error_message = value;
    }
    return size * n;
}

// "bytes START-END/TOTAL" or "bytes */TOTAL": START (or -1) and TOTAL (0 when unknown).
void parse_content_range(const std::string& v, int64_t* start, uint64_t* total) {
    *start = -1;
    *total = 0;
    if (v.rfind("bytes ", 0) != 0) return;
    const std::string r = v.substr(6);
    if (r[0] != '*') *start = std::strtoll(r.c_str(), nullptr, 10);
    const size_t slash = r.find('/');
    if (slash != std::string::npos && r.compare(slash + 1, 1, "*") != 0)
        *total = std::strtoull(r.c_str() + slash + 1, nullptr, 10);
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
    Transfer& t = *static_cast<Transfer*>(user);
    const size_t bytes = size * n;
    if (!t.body_started) {
        t.body_started = true;
        curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
        if (t.status == 206) {
            int64_t start;
            parse_content_range(t.content_range, &start, &t.total);
            if (start != (int64_t)t.offset) {
                t.write_error = "the server sent a range starting at " + std::to_string(start) + ", not at " +
                                std::to_string(t.offset);
                return 0;
            }
            t.out = fopen(t.part.c_str(), "ab");
        } else if (t.status == 200) {
            t.restarted = t.offset > 0;
            t.offset = 0;
            t.total = t.has_content_length ? t.content_length : 0;
            t.out = fopen(t.part.c_str(), "wb");
        }
        if ((t.status == 200 || t.status == 206) && !t.out) {
            t.write_error = "cannot write '" + t.part + "': " + strerror(errno);
            return 0;
        }
    }
    if (!t.out) {  // an error response: keep the start of its body for the message
        if (t.error_body.size() < 300) t.error_body.append(data, std::min<size_t>(bytes, 300 - t.error_body.size()));
        return bytes;
    }
    if (fwrite(data, 1, bytes, t.out) != bytes) {
        t.write_error = "cannot write '" + t.part + "': " + strerror(errno);
        return 0;
    }
    t.received += bytes;
    t.print_progress(false);
    return bytes;
}

uint64_t file_size_or_zero(const std::string& p) {
    std::error_code ec;
    const auto s = fs::file_size(p, ec);
    return ec ? 0 : (uint64_t)s;
}

std::string http_cause(long status, const Transfer& t) {
    std::string c = "HTTP " + std::to_string(status);
    switch (status) {
        case 401: c += " Unauthorized (a gated or private repository, or a wrong name: set HF_TOKEN if you have access)"; break;
        case 403: c += " Forbidden (accept the model's license on its page, and set HF_TOKEN)"; break;
        case 404: c += " Not Found (check the repository and file name)"; break;
        case 429: c += " Too Many Requests (try again later)"; break;
        default: if (status >= 500) c += " (server error; try again later)";
    }
    if (!t.error_message.empty()) c += ": " + t.error_message;
    return c;
}

std::once_flag g_curl_init;

enum class Outcome { Complete, Retry, RestartFromZero };

// One request; throws Error for failures that retrying cannot fix.
Outcome transfer_once(const PullOptions& o, Transfer& t, std::string* retry_cause) {
    CURL* c = curl_easy_init();
    if (!c) throw Error("cannot download " + o.url + ": libcurl failed to initialize");
    t.curl = c;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_slist* headers = nullptr;
    if (!o.bearer_token.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + o.bearer_token).c_str());
    const std::string range = std::to_string(t.offset) + "-";
    curl_easy_setopt(c, CURLOPT_URL, o.url.c_str());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "rotor-pull/1");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o.connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);  // a stalled connection: under 1 KiB/s for a minute
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (t.offset > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    const CURLcode res = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    t.curl = nullptr;
    if (t.out) {
        if (fclose(t.out) != 0 && t.write_error.empty()) t.write_error = "cannot write '" + t.part + "': " + strerror(errno);
        t.out = nullptr;
    }
    if (t.received) t.print_progress(true);
    const std::string where = "cannot download " + o.url + ": ";
    if (!t.write_error.empty()) throw Error(where + t.write_error);
    const std::string detail = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(res));
    switch (res) {
        case CURLE_OK: break;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            throw Error(where + "cannot resolve the host name (offline, or DNS failure): " + detail);
        case CURLE_COULDNT_CONNECT:
            throw Error(where + "cannot connect (connection refused, or no route to the host): " + detail);
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
            *retry_cause = detail;
            return Outcome::Retry;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
            throw Error(where + "TLS failure (is the system's ca-certificates package installed?): " + detail);
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            throw Error(where + "not a URL libcurl can fetch: " + detail);
        default: throw Error(where + detail);
    }
    if (status == 416 && t.offset > 0) {
        int64_t start;
        uint64_t total;
        parse_content_range(t.content_range, &start, &total);
        if (total == 0 || total == t.offset) {
            t.total = t.offset;
            return Outcome::Complete;  // the part file already holds every byte
        }
        return Outcome::RestartFromZero;  // a part file longer than the file: start over
    }
    if (status != 200 && status != 206) throw Error(where + http_cause(status, t));
    const uint64_t have = file_size_or_zero(t.part);
    if (t.total && have < t.total) {
        *retry_cause = "the connection ended after " + std::to_string(have) + " of " + std::to_string(t.total) + " bytes";
        return Outcome::Retry;
    }
    if (t.total && have > t.total) return Outcome::RestartFromZero;
    return Outcome::Complete;
}

}  // namespace

PullResult pull_file(const PullOptions& o) {
    if (o.url.empty() || o.dest.empty()) throw Error("pull: a URL and a destination are required");
    if (!o.sha256.empty() && !is_sha256_hex(o.sha256))
        throw Error("--sha256 expects 64 hex digits, got '" + o.sha256 + "'");
    const std::string want_given = lower(o.sha256);
    PullResult r;
    if (fs::exists(o.dest)) {
        r.already_present = true;
        r.bytes = file_size_or_zero(o.dest);
        if (!want_given.empty()) {
            r.sha256 = sha256_file(o.dest);
            if (r.sha256 != want_given)
                throw Error("'" + o.dest + "' already exists but its sha256 is " + r.sha256 + ", not " + want_given +
                            "; remove it to download it again");
            r.sha256_source = "--sha256";
        }
        return r;
    }
    const fs::path parent = fs::path(o.dest).parent_path();
    if (!parent.empty()) {
        std::error_code ec;
        fs::create_directories(parent, ec);
        if (ec) throw Error("cannot create the folder '" + parent.string() + "': " + ec.message());
    }
    std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });

    Transfer t;
    t.part = o.dest + ".part";
    t.progress = o.progress;
    t.tty = isatty(STDERR_FILENO);
    int pause_ms = o.retry_pause_ms;
    bool restarted_once = false;
    for (int attempt = 1;; attempt++) {
        t.offset = file_size_or_zero(t.part);
        t.received = 0;
        t.body_started = false;
        t.restarted = false;
        t.start = Clock::now();
        if (t.offset > 0 && o.progress)
            fprintf(stderr, "rotor pull: resuming %s at %s\n", t.part.c_str(), human_bytes((double)t.offset).c_str());
        std::string cause;
        const Outcome out = transfer_once(o, t, &cause);
        r.downloaded += t.received;
        if (t.restarted && o.progress) fprintf(stderr, "rotor pull: the server ignored the range request; downloaded from the start\n");
        if (out == Outcome::Complete) break;
        if (out == Outcome::RestartFromZero) {
            if (restarted_once) throw Error("cannot download " + o.url + ": the server's size keeps disagreeing with the part file");
            restarted_once = true;
            fs::remove(t.part);
            attempt--;
            continue;
        }
        const uint64_t have = file_size_or_zero(t.part);
        if (attempt >= o.attempts)
            throw Error("cannot download " + o.url + ": the connection dropped (" + cause + "); " + std::to_string(have) +
                        " bytes are kept in '" + t.part + "': run the same command again to resume");
        if (o.progress) fprintf(stderr, "rotor pull: connection dropped (%s); retrying\n", cause.c_str());
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
        pause_ms *= 2;
    }

    r.bytes = file_size_or_zero(t.part);
    std::string want = want_given;
    r.sha256_source = want.empty() ? "" : "--sha256";
    if (want.empty()) {
        want = !t.linked_etag.empty() ? t.linked_etag : t.etag;
        if (!want.empty()) r.sha256_source = "server";
    }
    if (!want.empty()) {
        if (o.progress) fprintf(stderr, "rotor pull: verifying sha256 of %s\n", human_bytes((double)r.bytes).c_str());
        r.sha256 = sha256_file(t.part);
        if (r.sha256 != want) {
            fs::remove(t.part);
            throw Error("checksum mismatch for " + o.url + ": expected sha256 " + want + " (" +
                        (r.sha256_source == "server" ? "from the server" : "from --sha256") + "), got " + r.sha256 +
                        "; the partial file was deleted");
        }
    }
    std::error_code ec;
    fs::rename(t.part, o.dest, ec);
    if (ec) throw Error("cannot rename '" + t.part + "' to '" + o.dest + "': " + ec.message());
    return r;
}

#endif  // ROTOR_HAVE_CURL

}  // namespace rotor
