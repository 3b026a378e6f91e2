// The HTTP layer (src/server/http.h): head parsing, chunked bodies, keep-alive, 100-continue, limits,
// streamed responses and noticing a client that went away.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/error.h"
#include "http_client.h"
#include "server/http.h"

namespace rotor::server {
namespace {

using test::Conn;

HttpHead head_ok(const std::string& s) {
    HttpHead h;
    HttpParseError e;
    EXPECT_TRUE(parse_http_head(s, &h, &e)) << s << " -> " << e.message;
    return h;
}

int head_bad(const std::string& s) {
    HttpHead h;
    HttpParseError e;
    EXPECT_FALSE(parse_http_head(s, &h, &e)) << s;
    EXPECT_FALSE(e.message.empty());
    return e.status;
}

TEST(HttpHead, Parses) {
    HttpHead h = head_ok("POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nX-Thing:  v  \r\n");
    EXPECT_EQ(h.req.method, "POST");
    EXPECT_EQ(h.req.path, "/v1/completions");
    EXPECT_EQ(h.req.query, "x=1");
    EXPECT_EQ(h.content_length, 12u);
    EXPECT_TRUE(h.keep_alive);
    ASSERT_TRUE(h.req.header("x-thing"));
    EXPECT_EQ(*h.req.header("x-thing"), "v");
    h = head_ok("GET / HTTP/1.0\nConnection: keep-alive\n");  // bare LF lines
    EXPECT_TRUE(h.keep_alive);
    EXPECT_EQ(h.req.version_minor, 0);
    EXPECT_FALSE(head_ok("GET / HTTP/1.0").keep_alive);
    EXPECT_FALSE(head_ok("GET / HTTP/1.1\r\nConnection: Close").keep_alive);
    EXPECT_TRUE(head_ok("POST / HTTP/1.1\r\nTransfer-Encoding: chunked").chunked);
    EXPECT_TRUE(head_ok("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1").expect_continue);
}

TEST(HttpHead, RejectsMalformed) {
    EXPECT_EQ(head_bad(""), 400);
    EXPECT_EQ(head_bad("GET"), 400);
    EXPECT_EQ(head_bad("GET /"), 400);
    EXPECT_EQ(head_bad("GET  / HTTP/1.1"), 400);
    EXPECT_EQ(head_bad("GET / HTTP/2.0"), 505);
    EXPECT_EQ(head_bad("GET x HTTP/1.1"), 400);
    EXPECT_EQ(head_bad("G(T / HTTP/1.1"), 400);
    EXPECT_EQ(head_bad("GET / HTTP/1.1\r\nNoColon"), 400);
    EXPECT_EQ(head_bad("GET / HTTP/1.1\r\n: empty name"), 400);
    EXPECT_EQ(head_bad("GET / HTTP/1.1\r\nA: b\r\n folded"), 400);
    EXPECT_EQ(head_bad("GET / HTTP/1.1\r\nContent-Length: -1"), 400);
    EXPECT_EQ(head_bad("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999"), 400);
    EXPECT_EQ(head_bad("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2"), 400);
    EXPECT_EQ(head_bad("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked"), 400);
    EXPECT_EQ(head_bad("GET / HTTP/1.1\r\nTransfer-Encoding: gzip"), 501);
    EXPECT_EQ(head_bad("GET / HTTP/1.1\r\nExpect: magic"), 417);
    EXPECT_EQ(head_bad("GET / HTTP/1.1\r\nA: b\x01"), 400);
    std::string many = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 200; i++) many += "h" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(head_bad(many), 431);
}

TEST(HttpChunked, Decodes) {
    std::string body;
    size_t used = 0;
    bool complete = false;
    const std::string in = "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    ASSERT_TRUE(decode_chunked(in, 1000, &body, &used, &complete));
    EXPECT_TRUE(complete);
    EXPECT_EQ(body, "hello, world");
    EXPECT_EQ(in.substr(used), "NEXT");
    // every proper prefix: incomplete, never an error
    for (size_t n = 0; n < in.size() - 4; n++) {
        ASSERT_TRUE(decode_chunked(in.substr(0, n), 1000, &body, &used, &complete)) << n;
        EXPECT_FALSE(complete) << n;
    }
    EXPECT_FALSE(decode_chunked("zz\r\n", 1000, &body, &used, &complete));
    EXPECT_FALSE(decode_chunked("5\r\nhelloXX0\r\n\r\n", 1000, &body, &used, &complete));
    EXPECT_FALSE(decode_chunked("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 8, &body, &used, &complete));
    EXPECT_FALSE(decode_chunked("ffffffffffffffffff\r\n", 1u << 30, &body, &used, &complete));
}

struct LiveServer {
    HttpServer srv;
    std::thread th;
    explicit LiveServer(HttpServer::Handler h, HttpLimits lim = {}) : srv(std::move(h), lim) {
        srv.listen("127.0.0.1", 0);
        th = std::thread([this] { srv.run(); });
    }
    ~LiveServer() {
        srv.stop();
        th.join();
    }
    int port() const { return srv.port(); }
};

void echo(const HttpRequest& rq, HttpResponse& rs) {
    if (rq.path == "/stream") {
        rs.begin_stream(200, "text/event-stream");
        for (int i = 0; i < 3; i++) rs.write("data: " + std::to_string(i) + "\n\n");
        rs.end_stream();
        return;
    }
    rs.send(200, "text/plain", rq.method + " " + rq.path + " " + rq.body);
}

TEST(HttpServer, KeepAliveChunkedAndContinue) {
    LiveServer s(echo);
    Conn c(s.port());
    ASSERT_TRUE(c.ok());
    test::Reply r = c.request("POST", "/a", "one");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "POST /a one");
    EXPECT_EQ(r.header("connection"), "keep-alive");
    r = c.request("GET", "/b");  // same connection
    EXPECT_EQ(r.body, "GET /b ");
    ASSERT_TRUE(c.send_raw("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
    EXPECT_EQ(c.read_reply().body, "POST /c abcde");
    ASSERT_TRUE(c.send_raw("POST /d HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"));
    ASSERT_TRUE(c.fill(5000));
    EXPECT_EQ(c.buffered().substr(0, 25), "HTTP/1.1 100 Continue\r\n\r\n");
    c.buffered().erase(0, 25);
    ASSERT_TRUE(c.send_raw("xy"));
    EXPECT_EQ(c.read_reply().body, "POST /d xy");
    r = c.request("GET", "/stream");
    EXPECT_EQ(r.header("transfer-encoding"), "chunked");
    EXPECT_EQ(r.body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    // pipelined requests are answered in order
    ASSERT_TRUE(c.send_raw("GET /p1 HTTP/1.1\r\n\r\nGET /p2 HTTP/1.1\r\n\r\n"));
    EXPECT_EQ(c.read_reply().body, "GET /p1 ");
    EXPECT_EQ(c.read_reply().body, "GET /p2 ");
}

TEST(HttpServer, LimitsAndMalformedRequests) {
    HttpLimits lim;
    lim.max_body_bytes = 100;
    lim.max_head_bytes = 1024;
    LiveServer s(echo, lim);
    EXPECT_EQ(test::http(s.port(), "POST", "/", std::string(101, 'x')).status, 413);
    EXPECT_EQ(test::http(s.port(), "POST", "/", std::string(100, 'x')).status, 200);
    EXPECT_EQ(test::http(s.port(), "GET", "/", "", {"X-Big: " + std::string(2000, 'y')}).status, 431);
    Conn c(s.port());
    ASSERT_TRUE(c.send_raw("BROKEN\r\n\r\n"));
    test::Reply r = c.read_reply();
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("\"error\""), std::string::npos);
    Conn c2(s.port());
    ASSERT_TRUE(c2.send_raw("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nnothex\r\n"));
    EXPECT_EQ(c2.read_reply().status, 400);
    // HTTP/1.0: answered, then closed
    Conn c3(s.port());
    ASSERT_TRUE(c3.send_raw("GET /old HTTP/1.0\r\n\r\n"));
    r = c3.read_reply();
    EXPECT_EQ(r.body, "GET /old ");
    EXPECT_EQ(r.header("connection"), "close");
}

TEST(HttpServer, HandlerExceptionIs500) {
    LiveServer s([](const HttpRequest&, HttpResponse&) { throw std::runtime_error("boom"); });
    test::Reply r = test::http(s.port(), "GET", "/");
    EXPECT_EQ(r.status, 500);
    EXPECT_NE(r.body.find("boom"), std::string::npos);
}

TEST(HttpServer, NoticesAClientThatLeaves) {
    std::atomic<bool> noticed{false};
    std::atomic<int> writes{0};
    LiveServer s([&](const HttpRequest&, HttpResponse& rs) {
        rs.begin_stream(200, "text/event-stream");
        const auto t0 = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)) {
            if (rs.client_gone()) {
                noticed = true;
                return;
            }
            rs.write("data: x\n\n");
            writes++;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    {
        Conn c(s.port());
        ASSERT_TRUE(c.send_raw("GET / HTTP/1.1\r\n\r\n"));
        ASSERT_TRUE(c.fill(5000));
    }  // closed
    for (int i = 0; i < 400 && !noticed; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(noticed);
}

TEST(HttpServer, StopClosesIdleConnections) {
    auto s = std::make_unique<LiveServer>(echo);
    Conn c(s->port());
    EXPECT_EQ(c.request("GET", "/").status, 200);  // keep-alive: the connection stays open
    const auto t0 = std::chrono::steady_clock::now();
    s.reset();  // stop + join
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(HttpServer, ListenErrorsNameTheAddress) {
    HttpServer a(echo);
    a.listen("127.0.0.1", 0);
    HttpServer b(echo);
    try {
        b.listen("127.0.0.1", a.port());
        FAIL() << "second bind to the same port succeeded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(std::to_string(a.port())), std::string::npos);
    }
    EXPECT_THROW(b.listen("no-such-host.invalid", 0), Error);
}

}  // namespace
}  // namespace rotor::server
