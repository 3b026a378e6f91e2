// A tiny HTTP/1.1 server on loopback for the download tests: one file with Range support and an ETag,
// a redirect that carries X-Linked-Etag (as Hugging Face's resolve URLs do), 401 and 404 answers, and
// a switch that drops the connection part-way through the body.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rotor::test {

class LoopbackServer {
public:
    struct Config {
        std::string path = "/org/repo/resolve/main/model.gguf";
        std::string payload;
        std::string etag;          // sent as ETag: "..." when non-empty
        std::string linked_etag;   // sent as X-Linked-Etag on the redirect
        bool ignore_range = false; // answer Range requests with 200 and the whole file
        size_t drop_after = 0;     // with drops > 0: close after this many body bytes
        int drops = 0;             // how many responses are cut short
    };

    explicit LoopbackServer(Config c) : cfg_(std::move(c)) {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;
        if (bind(fd_, (sockaddr*)&a, sizeof a) != 0 || listen(fd_, 16) != 0) std::abort();
        socklen_t len = sizeof a;
        getsockname(fd_, (sockaddr*)&a, &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { loop(); });
    }
    ~LoopbackServer() {
        stop_ = true;
        thread_.join();
        close(fd_);
    }
    int port() const { return port_; }
    std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::string url() const { return base() + cfg_.path; }
    std::vector<std::string> ranges() {
        std::lock_guard<std::mutex> l(mu_);
        return ranges_;
    }
    std::vector<std::string> auths() {
        std::lock_guard<std::mutex> l(mu_);
        return auths_;
    }

    // A loopback port nothing listens on (bound, then closed).
    static int closed_port() {
        const int s = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(s, (sockaddr*)&a, sizeof a);
        socklen_t len = sizeof a;
        getsockname(s, (sockaddr*)&a, &len);
        close(s);
        return ntohs(a.sin_port);
    }

private:
    static std::string header(const std::string& req, const std::string& name) {
        std::string lower_req = req, key = "\r\n" + name + ":";
        for (char& ch : lower_req) ch = (char)std::tolower((unsigned char)ch);
        for (char& ch : key) ch = (char)std::tolower((unsigned char)ch);
        const size_t p = lower_req.find(key);
        if (p == std::string::npos) return "";
        size_t b = p + key.size();
        while (b < req.size() && req[b] == ' ') b++;
        return req.substr(b, req.find("\r\n", b) - b);
    }
    static void send_all(int c, const std::string& s) {
        size_t off = 0;
        while (off < s.size()) {
            const ssize_t n = send(c, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return;
            off += (size_t)n;
        }
    }
    void loop() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) continue;
            const int c = accept(fd_, nullptr, nullptr);
            if (c < 0) continue;
            serve(c);
            close(c);
        }
    }
    void serve(int c) {
        std::string req;
        char buf[4096];
        while (req.find("\r\n\r\n") == std::string::npos) {
            const ssize_t n = recv(c, buf, sizeof buf, 0);
            if (n <= 0) return;
            req.append(buf, (size_t)n);
        }
        const size_t sp1 = req.find(' '), sp2 = req.find(' ', sp1 + 1);
        const std::string path = req.substr(sp1 + 1, sp2 - sp1 - 1);
        const std::string range = header(req, "Range");
        {
            std::lock_guard<std::mutex> l(mu_);
            ranges_.push_back(range);
            auths_.push_back(header(req, "Authorization"));
        }
        const std::string& body_all = cfg_.payload;
        if (path == "/redirect" + cfg_.path) {
            std::string r = "HTTP/1.1 302 Found\r\nLocation: " + url() + "\r\nContent-Length: 0\r\nConnection: close\r\n";
            if (!cfg_.linked_etag.empty()) r += "X-Linked-Etag: \"" + cfg_.linked_etag + "\"\r\n";
            send_all(c, r + "\r\n");
            return;
        }
        if (path.rfind("/private/", 0) == 0) {
            send_all(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\nConnection: close\r\n\r\nunauthorized");
            return;
        }
        if (path != cfg_.path) {
            send_all(c, "HTTP/1.1 404 Not Found\r\nX-Error-Message: Entry not found\r\nContent-Length: 15\r\n"
                        "Connection: close\r\n\r\nEntry not found");
            return;
        }
        std::string head, body;
        const std::string etag = cfg_.etag.empty() ? "" : "ETag: \"" + cfg_.etag + "\"\r\n";
        const size_t size = body_all.size();
        if (!range.empty() && !cfg_.ignore_range) {
            const size_t start = std::strtoull(range.c_str() + 6, nullptr, 10);  // "bytes=N-"
            if (start >= size) {
                send_all(c, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */" + std::to_string(size) +
                                "\r\nContent-Length: 0\r\nConnection: close\r\n" + etag + "\r\n");
                return;
            }
            body = body_all.substr(start);
            head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + std::to_string(start) + "-" +
                   std::to_string(size - 1) + "/" + std::to_string(size) + "\r\n";
        } else {
            body = body_all;
            head = "HTTP/1.1 200 OK\r\n";
        }
        head += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" + etag + "\r\n";
        send_all(c, head);
        if (cfg_.drops > 0 && cfg_.drop_after < body.size()) {
            cfg_.drops--;
            send_all(c, body.substr(0, cfg_.drop_after));
            return;  // closing now: the client sees a short body
        }
        send_all(c, body);
    }

    Config cfg_;
    int fd_ = -1, port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::mutex mu_;
    std::vector<std::string> ranges_, auths_;
};

}  // namespace rotor::test
