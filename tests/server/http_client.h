// A blocking HTTP/1.1 client over a raw socket for the server tests (one request per connection unless
// a Conn is reused), so the tests see exactly the bytes the server writes.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "server/http.h"

namespace rotor::test {

struct Reply {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;  // lower-case names
    std::string body;                                           // de-chunked
    std::string header(const std::string& name) const {
        for (auto& [k, v] : headers)
            if (k == name) return v;
        return {};
    }
};

class Conn {
public:
    explicit Conn(int port) {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd_, (sockaddr*)&a, sizeof a) != 0) {
            close(fd_);
            fd_ = -1;
        }
    }
    ~Conn() { close_now(); }
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    bool ok() const { return fd_ >= 0; }
    void close_now() {
        if (fd_ >= 0) close(fd_);
        fd_ = -1;
    }
    bool send_raw(const std::string& s) {
        size_t off = 0;
        while (off < s.size()) {
            const ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return false;
            off += (size_t)n;
        }
        return true;
    }
    // Reads more bytes (up to timeout); false on EOF / timeout.
    bool fill(int timeout_ms = 60000) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) return false;
        char tmp[8192];
        const ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
        if (n <= 0) return false;
        buf_.append(tmp, (size_t)n);
        return true;
    }
    // Reads one response (Content-Length, chunked, or until close).
    Reply read_reply(int timeout_ms = 120000) {
        Reply r;
        size_t end;
        while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
            if (!fill(timeout_ms)) return r;
        const std::string head = buf_.substr(0, end);
        buf_.erase(0, end + 4);
        r.status = std::stoi(head.substr(9, 3));
        size_t pos = head.find("\r\n");
        while (pos != std::string::npos && pos + 2 < head.size()) {
            const size_t e = head.find("\r\n", pos + 2);
            const std::string line = head.substr(pos + 2, e == std::string::npos ? std::string::npos : e - pos - 2);
            const size_t c = line.find(':');
            std::string k = line.substr(0, c);
            for (char& ch : k) ch = (char)tolower(ch);
            std::string v = line.substr(c + 1);
            while (!v.empty() && v[0] == ' ') v.erase(0, 1);
            r.headers.emplace_back(k, v);
            pos = e;
        }
        if (r.status == 100) return read_reply(timeout_ms);
        if (r.header("transfer-encoding") == "chunked") {
            for (;;) {
                size_t used = 0;
                bool complete = false;
                if (!server::decode_chunked(buf_, 1ull << 30, &r.body, &used, &complete)) return r;
                if (complete) {
                    buf_.erase(0, used);
                    return r;
                }
                if (!fill(timeout_ms)) return r;
            }
        }
        const std::string cl = r.header("content-length");
        if (!cl.empty()) {
            const size_t n = std::stoul(cl);
            while (buf_.size() < n)
                if (!fill(timeout_ms)) break;
            r.body = buf_.substr(0, n);
            buf_.erase(0, std::min(n, buf_.size()));
            return r;
        }
        while (fill(timeout_ms)) {
        }
        r.body = std::move(buf_);
        buf_.clear();
        return r;
    }
    Reply request(const std::string& method, const std::string& path, const std::string& body = {},
                  const std::vector<std::string>& extra_headers = {}) {
        std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n";
        for (const auto& h : extra_headers) req += h + "\r\n";
        if (!body.empty() || method == "POST")
            req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
        req += "\r\n" + body;
        if (!send_raw(req)) return {};
        return read_reply();
    }
    std::string& buffered() { return buf_; }
    int fd() const { return fd_; }

private:
    int fd_ = -1;
    std::string buf_;
};

inline Reply http(int port, const std::string& method, const std::string& path, const std::string& body = {},
                  const std::vector<std::string>& headers = {}) {
    Conn c(port);
    return c.request(method, path, body, headers);
}

}  // namespace rotor::test
