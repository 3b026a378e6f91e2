// A small HTTP/1.1 server for the API edge: one thread per connection (a request that streams holds
// its connection for the whole generation, so a fixed pool would cap concurrency), keep-alive,
// Content-Length and chunked request bodies, chunked responses for Server-Sent Events, and a way for
// a handler to notice that its client went away (so generation can be cancelled).
//
// Written here rather than taken from Debian's cpp-httplib because that package is a compiled shared
// library built with OpenSSL/zlib/brotli ABI switches; this keeps the server self-contained, lets the
// request-head parser be fuzzed, and leaves no uninstrumented code under the sanitizers.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rotor::server {

struct HttpRequest {
    std::string method;   // "GET", "POST", ...
    std::string target;   // as sent: path and query
    std::string path;     // target without the query
    std::string query;    // after '?', undecoded
    int version_minor = 1;  // HTTP/1.<n>
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values trimmed
    std::string body;

    // The first header with this (lower-case) name, or nullptr.
    const std::string* header(std::string_view name) const;
};

// What the head (request line and headers, up to the blank line) says about the body.
struct HttpHead {
    HttpRequest req;
    uint64_t content_length = 0;
    bool chunked = false;          // Transfer-Encoding: chunked
    bool expect_continue = false;  // Expect: 100-continue
    bool keep_alive = true;        // HTTP/1.1 default unless "Connection: close"
};

struct HttpParseError {
    int status = 400;
    std::string message;
};

// Parses a request head: `head` is everything before the "\r\n\r\n" (lines may also end in a bare
// "\n"). Pure; returns false and fills *err on anything malformed or unsupported.
bool parse_http_head(std::string_view head, HttpHead* out, HttpParseError* err);

// Decodes a complete chunked body (chunk extensions and trailers are skipped). Returns false when the
// encoding is malformed or the decoded body would exceed max_bytes. *consumed is how many input bytes
// made up the body (including the final CRLF); 0 with true means "need more input".
bool decode_chunked(std::string_view in, uint64_t max_bytes, std::string* body, size_t* consumed, bool* complete);

// The reply side of one request. A handler either calls send() once, or begin_stream() followed by
// any number of write() and then end_stream(). Writes never raise; after a failed write the client is
// gone and every later call is a no-op.
class HttpResponse {
public:
    HttpResponse(int fd, bool keep_alive, bool head_only);

    using Headers = std::vector<std::pair<std::string, std::string>>;
    void send(int status, std::string_view content_type, std::string_view body, const Headers& extra = {});
    bool begin_stream(int status, std::string_view content_type, const Headers& extra = {});
    bool write(std::string_view data);  // one chunk; false when the client is gone
    void end_stream();

    // True when the peer closed or reset the connection (checked without blocking).
    bool client_gone();
    bool sent() const { return started_; }
    bool keep_alive() const { return keep_alive_ && !failed_; }
    int status() const { return status_; }

private:
    bool write_all(std::string_view data);
    std::string head(int status, std::string_view content_type, const Headers& extra, const std::string* length);

    int fd_;
    bool keep_alive_;
    bool head_only_;
    bool started_ = false;
    bool streaming_ = false;
    bool failed_ = false;
    int status_ = 0;
};

const char* http_status_text(int status);

struct HttpLimits {
    size_t max_head_bytes = 64 * 1024;
    uint64_t max_body_bytes = 32ull << 20;
    int max_connections = 512;   // beyond this a new connection gets 503 and is closed
    int idle_timeout_ms = 30000; // keep-alive connections idle this long are closed
    int read_timeout_ms = 30000; // a request that stalls this long mid-way is dropped
};

class HttpServer {
public:
    using Handler = std::function<void(const HttpRequest&, HttpResponse&)>;

    HttpServer(Handler handler, HttpLimits limits = {});
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds and listens (port 0: any free port). Throws rotor::Error naming the address on failure.
    void listen(const std::string& host, int port);
    int port() const { return port_; }

    // Accepts connections until stop(); returns after every connection thread has finished.
    void run();
    // Callable from any thread (and from a signal-watching thread): closes the listener and shuts
    // down open connections so their threads return.
    void stop();

    int open_connections() const { return n_conn_.load(); }

private:
    void serve_connection(int fd);

    Handler handler_;
    HttpLimits limits_;
    int listen_fd_ = -1;
    int wake_pipe_[2] = {-1, -1};  // stop() writes here to break the accept poll
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> n_conn_{0};
    std::mutex mu_;
    std::condition_variable cv_;
    std::set<int> fds_;  // open connections, for stop()
};

}  // namespace rotor::server
