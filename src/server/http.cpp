#include "server/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <memory>
#include <thread>

#include "common/error.h"

namespace rotor::server {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && (is_space(s.back()) || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    return out;
}

// RFC 9110 token characters (method and header names).
bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

bool has_token(std::string_view list, std::string_view tok) {  // comma-separated, case-insensitive
    size_t i = 0;
    while (i <= list.size()) {
        size_t j = list.find(',', i);
        if (j == std::string_view::npos) j = list.size();
        if (lower(trim(list.substr(i, j - i))) == tok) return true;
        i = j + 1;
    }
    return false;
}

bool parse_u64(std::string_view s, uint64_t* v, int base) {
    if (s.empty() || s.size() > 18) return false;
    uint64_t x = 0;
    for (char c : s) {
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return false;
        x = x * (uint64_t)base + (uint64_t)d;
    }
    *v = x;
    return true;
}

// Where the head ends: returns the index of the first body byte, or npos.
size_t head_end(std::string_view buf, size_t* head_len) {
    const size_t crlf = buf.find("\r\n\r\n");
    const size_t lf = buf.find("\n\n");
    if (crlf == std::string_view::npos && lf == std::string_view::npos) return std::string_view::npos;
    if (lf != std::string_view::npos && (crlf == std::string_view::npos || lf < crlf)) {
        *head_len = lf;
        return lf + 2;
    }
    *head_len = crlf;
    return crlf + 4;
}

// A minimal OpenAI-shaped error for failures the HTTP layer answers itself (before any handler).
std::string error_body(const std::string& msg) {
    std::string esc;
    for (char c : msg) {
        if (c == '"' || c == '\\') esc += '\\';
        if ((unsigned char)c >= 0x20) esc += c;
    }
    return "{\"error\":{\"message\":\"" + esc + "\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}";
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (k == name) return &v;
    return nullptr;
}

bool parse_http_head(std::string_view head, HttpHead* out, HttpParseError* err) {
    *out = HttpHead{};
    auto fail = [&](int status, std::string msg) {
        err->status = status;
        err->message = std::move(msg);
        return false;
    };
    size_t eol = head.find('\n');
    std::string_view line = head.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // request line: METHOD SP target SP HTTP/1.x
    const size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos || sp1 == 0) return fail(400, "malformed request line");
    const size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return fail(400, "malformed request line");
    std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                     version = line.substr(sp2 + 1);
    for (char c : method)
        if (!is_tchar(c)) return fail(400, "malformed request method");
    for (char c : target)
        if ((unsigned char)c <= 0x20 || c == 0x7f) return fail(400, "malformed request target");
    if (version == "HTTP/1.1") out->req.version_minor = 1;
    else if (version == "HTTP/1.0") out->req.version_minor = 0;
    else return fail(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    if (target.empty() || (target[0] != '/' && target != "*")) return fail(400, "request target must be a path");
    out->req.method = std::string(method);
    out->req.target = std::string(target);
    const size_t q = target.find('?');
    out->req.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) out->req.query = std::string(target.substr(q + 1));
    out->keep_alive = out->req.version_minor == 1;

    bool have_length = false;
    size_t pos = eol == std::string_view::npos ? head.size() : eol + 1;
    while (pos < head.size()) {
        size_t e = head.find('\n', pos);
        if (e == std::string_view::npos) e = head.size();
        std::string_view h = head.substr(pos, e - pos);
        pos = e + 1;
        if (!h.empty() && h.back() == '\r') h.remove_suffix(1);
        if (h.empty()) continue;
        if (is_space(h[0])) return fail(400, "obsolete header line folding is not supported");
        const size_t colon = h.find(':');
        if (colon == std::string_view::npos || colon == 0) return fail(400, "malformed header line");
        for (size_t i = 0; i < colon; i++)
            if (!is_tchar(h[i])) return fail(400, "malformed header name");
        if (out->req.headers.size() >= 128) return fail(431, "too many header fields");
        std::string name = lower(h.substr(0, colon));
        std::string_view value = trim(h.substr(colon + 1));
        for (char c : value)
            if ((unsigned char)c < 0x20 && c != '\t') return fail(400, "control character in a header value");
        if (name == "content-length") {
            uint64_t n = 0;
            if (!parse_u64(value, &n, 10)) return fail(400, "invalid Content-Length");
            if (have_length && n != out->content_length) return fail(400, "conflicting Content-Length headers");
            have_length = true;
            out->content_length = n;
        } else if (name == "transfer-encoding") {
            if (lower(value) != "chunked") return fail(501, "only the chunked transfer coding is supported");
            out->chunked = true;
        } else if (name == "connection") {
            if (has_token(value, "close")) out->keep_alive = false;
            else if (has_token(value, "keep-alive")) out->keep_alive = true;
        } else if (name == "expect") {
            if (lower(value) != "100-continue") return fail(417, "unsupported Expect header");
            out->expect_continue = true;
        }
        out->req.headers.emplace_back(std::move(name), std::string(value));
    }
    if (out->chunked && have_length) return fail(400, "both Content-Length and Transfer-Encoding given");
    return true;
}

bool decode_chunked(std::string_view in, uint64_t max_bytes, std::string* body, size_t* consumed, bool* complete) {
    body->clear();
    *consumed = 0;
    *complete = false;
    size_t pos = 0;
    for (;;) {
        const size_t eol = in.find("\r\n", pos);
        if (eol == std::string_view::npos) return in.size() - pos <= 1024;  // size line still arriving
        std::string_view size_line = in.substr(pos, eol - pos);
        size_line = size_line.substr(0, size_line.find(';'));  // drop chunk extensions
        uint64_t n = 0;
        if (!parse_u64(trim(size_line), &n, 16)) return false;
        if (n > max_bytes || body->size() + n > max_bytes) return false;
        pos = eol + 2;
        if (n == 0) {
            // trailers until an empty line
            for (;;) {
                const size_t te = in.find("\r\n", pos);
                if (te == std::string_view::npos) return in.size() - pos <= 8192;
                const bool empty = te == pos;
                pos = te + 2;
                if (empty) {
                    *consumed = pos;
                    *complete = true;
                    return true;
                }
            }
        }
        if (in.size() - pos < n + 2) return true;  // chunk data still arriving
        body->append(in.substr(pos, n));
        if (in.substr(pos + n, 2) != "\r\n") return false;
        pos += n + 2;
    }
}

const char* http_status_text(int s) {
    switch (s) {
        case 100: return "Continue";
        case 200: return "OK";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 415: return "Unsupported Media Type";
        case 417: return "Expectation Failed";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

// ---- response

HttpResponse::HttpResponse(int fd, bool keep_alive, bool head_only)
    : fd_(fd), keep_alive_(keep_alive), head_only_(head_only) {}

bool HttpResponse::write_all(std::string_view data) {
    if (failed_) return false;
    while (!data.empty()) {
        const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {  // peer gone, or the send timeout hit on a client that stopped reading
            failed_ = true;
            return false;
        }
        data.remove_prefix((size_t)n);
    }
    return true;
}

std::string HttpResponse::head(int status, std::string_view content_type, const Headers& extra,
                               const std::string* length) {
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " + http_status_text(status) + "\r\n";
    if (!content_type.empty()) h += "Content-Type: " + std::string(content_type) + "\r\n";
    if (length) h += "Content-Length: " + *length + "\r\n";
    else if (keep_alive_) h += "Transfer-Encoding: chunked\r\n";
    h += keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    for (const auto& [k, v] : extra) h += k + ": " + v + "\r\n";
    h += "\r\n";
    return h;
}

void HttpResponse::send(int status, std::string_view content_type, std::string_view body, const Headers& extra) {
    if (started_) return;
    started_ = true;
    status_ = status;
    const std::string len = std::to_string(body.size());
    std::string out = head(status, content_type, extra, &len);
    if (!head_only_) out.append(body);
    write_all(out);
}

bool HttpResponse::begin_stream(int status, std::string_view content_type, const Headers& extra) {
    if (started_) return false;
    started_ = true;
    streaming_ = true;
    status_ = status;
    // Without keep-alive (HTTP/1.0 clients) the body is raw bytes ended by closing the connection.
    return write_all(head(status, content_type, extra, nullptr));
}

bool HttpResponse::write(std::string_view data) {
    if (!streaming_ || failed_) return false;
    if (data.empty() || head_only_) return true;
    if (!keep_alive_) return write_all(data);
    char size[32];
    snprintf(size, sizeof size, "%zx\r\n", data.size());
    std::string chunk = size;
    chunk.append(data);
    chunk += "\r\n";
    return write_all(chunk);
}

void HttpResponse::end_stream() {
    if (!streaming_) return;
    streaming_ = false;
    if (keep_alive_ && !head_only_) write_all("0\r\n\r\n");
}

bool HttpResponse::client_gone() {
    if (failed_) return true;
    pollfd p{fd_, (short)(POLLIN | POLLRDHUP), 0};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return failed_ = true;
    if (p.revents & POLLIN) {  // data (a pipelined request) or EOF
        char c;
        const ssize_t n = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return failed_ = true;
    }
    return false;
}

// ---- server

struct ConnThread {
    std::thread th;
    std::atomic<bool> done{false};
};

struct ConnList {
    std::list<std::unique_ptr<ConnThread>> items;
};

HttpServer::HttpServer(Handler handler, HttpLimits limits) : handler_(std::move(handler)), limits_(limits) {
    if (pipe(wake_pipe_) != 0) throw Error(std::string("cannot create a pipe: ") + strerror(errno));
    fcntl(wake_pipe_[0], F_SETFL, O_NONBLOCK);
    fcntl(wake_pipe_[1], F_SETFL, O_NONBLOCK);
}

HttpServer::~HttpServer() {
    stop();
    if (listen_fd_ >= 0) close(listen_fd_);
    close(wake_pipe_[0]);
    close(wake_pipe_[1]);
}

void HttpServer::listen(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string where = host + ":" + std::to_string(port);
    const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) throw Error("cannot resolve " + where + ": " + gai_strerror(rc));
    std::string last_err = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
        const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last_err = strerror(errno);
            continue;
        }
        const int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 1024) != 0) {
            last_err = strerror(errno);
            close(fd);
            continue;
        }
        listen_fd_ = fd;
        break;
    }
    freeaddrinfo(res);
    if (listen_fd_ < 0) throw Error("cannot listen on " + where + ": " + last_err);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(listen_fd_, (sockaddr*)&ss, &len);
    port_ = ss.ss_family == AF_INET6 ? ntohs(((sockaddr_in6*)&ss)->sin6_port) : ntohs(((sockaddr_in*)&ss)->sin_port);
}

void HttpServer::stop() {
    stopping_ = true;
    const char c = 1;
    if (write(wake_pipe_[1], &c, 1) < 0) {
        // the pipe is full: a wake-up is already pending
    }
    std::lock_guard<std::mutex> lk(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
}

void HttpServer::run() {
    if (listen_fd_ < 0) throw Error("HttpServer::run before listen");
    ConnList conns;
    auto reap = [&](bool all) {
        for (auto it = conns.items.begin(); it != conns.items.end();) {
            if (all || (*it)->done.load()) {
                (*it)->th.join();
                it = conns.items.erase(it);
            } else {
                ++it;
            }
        }
        n_conn_ = (int)conns.items.size();
    };
    while (!stopping_) {
        pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
        const int r = poll(p, 2, 1000);
        reap(false);
        if (r <= 0 || stopping_) continue;
        if (!(p[0].revents & POLLIN)) continue;
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // SSE chunks go out at once
        timeval tv{30, 0};  // a client that stops reading cannot hold a writer forever
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if ((int)conns.items.size() >= limits_.max_connections) {
            HttpResponse res(fd, false, false);
            res.send(503, "application/json", error_body("too many open connections"));
            close(fd);
            continue;
        }
        {
            std::lock_guard<std::mutex> lk(mu_);
            fds_.insert(fd);
        }
        auto c = std::make_unique<ConnThread>();
        ConnThread* cp = c.get();
        cp->th = std::thread([this, fd, cp] {
            serve_connection(fd);
            {
                std::lock_guard<std::mutex> lk(mu_);
                fds_.erase(fd);
            }
            close(fd);
            cp->done = true;
        });
        conns.items.push_back(std::move(c));
        n_conn_ = (int)conns.items.size();
    }
    {
        std::lock_guard<std::mutex> lk(mu_);
        for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    }
    reap(true);
}

void HttpServer::serve_connection(int fd) {
    std::string buf;
    char tmp[16384];
    // Reads more bytes into buf; false on EOF, error, timeout or stop.
    auto fill = [&](int timeout_ms) {
        pollfd p{fd, POLLIN, 0};
        const int r = poll(&p, 1, timeout_ms);
        if (r <= 0 || stopping_) return false;
        const ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return false;
        buf.append(tmp, (size_t)n);
        return true;
    };
    auto reject = [&](int status, const std::string& msg) {
        HttpResponse res(fd, false, false);
        res.send(status, "application/json", error_body(msg));
    };
    while (!stopping_) {
        size_t head_len = 0, body_at = std::string::npos;
        while ((body_at = head_end(buf, &head_len)) == std::string::npos) {
            if (buf.size() > limits_.max_head_bytes) return reject(431, "request head too large");
            if (!fill(buf.empty() ? limits_.idle_timeout_ms : limits_.read_timeout_ms)) return;
        }
        if (head_len > limits_.max_head_bytes) return reject(431, "request head too large");
        HttpHead h;
        HttpParseError perr;
        if (!parse_http_head(std::string_view(buf).substr(0, head_len), &h, &perr)) return reject(perr.status, perr.message);
        buf.erase(0, body_at);
        if (!h.chunked && h.content_length > limits_.max_body_bytes)
            return reject(413, "request body larger than " + std::to_string(limits_.max_body_bytes) + " bytes");
        if (h.expect_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (::send(fd, cont, sizeof cont - 1, MSG_NOSIGNAL) < 0) return;
        }
        if (h.chunked) {
            for (;;) {
                size_t used = 0;
                bool complete = false;
                if (!decode_chunked(buf, limits_.max_body_bytes, &h.req.body, &used, &complete))
                    return reject(400, "malformed chunked request body");
                if (complete) {
                    buf.erase(0, used);
                    break;
                }
                if (!fill(limits_.read_timeout_ms)) return;
            }
        } else {
            while (buf.size() < h.content_length)
                if (!fill(limits_.read_timeout_ms)) return;
            h.req.body = buf.substr(0, (size_t)h.content_length);
            buf.erase(0, (size_t)h.content_length);
        }
        HttpResponse res(fd, h.keep_alive && !stopping_, h.req.method == "HEAD");
        try {
            handler_(h.req, res);
        } catch (const std::exception& e) {
            if (!res.sent()) res.send(500, "application/json", error_body(std::string("internal error: ") + e.what()));
        }
        if (!res.sent()) res.send(500, "application/json", error_body("the handler sent no response"));
        res.end_stream();
        if (!res.keep_alive()) return;
    }
}

}  // namespace rotor::server
