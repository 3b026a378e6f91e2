// rotor pull against a loopback HTTP server: verified downloads, resume after a dropped connection, a
// server that ignores Range, wrong checksums, and clear errors for 404 / 401 / refused connections.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "common/error.h"
#include "http_fixture.h"
#include "pull/pull.h"
#include "pull/sha256.h"
#include "testdata.h"

using namespace rotor;
using rotor::test::LoopbackServer;
namespace fs = std::filesystem;

namespace {

std::string payload(size_t n) {
    std::mt19937 rng(42);
    std::string s(n, 0);
    for (char& c : s) c = (char)rng();
    return s;
}

std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

class Pull : public ::testing::Test {
protected:
    void SetUp() override {
        if (!pull_available()) GTEST_SKIP() << "rotor was built without libcurl";
        dir_ = fs::temp_directory_path() / ("rotor_pull_" + std::to_string(getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override {
        if (!dir_.empty()) fs::remove_all(dir_);
    }
    PullOptions options(const std::string& url) {
        PullOptions o;
        o.url = url;
        o.dest = (dir_ / "model.gguf").string();
        o.progress = false;
        o.retry_pause_ms = 1;
        return o;
    }
    std::string error_of(const PullOptions& o) {
        try {
            pull_file(o);
        } catch (const Error& e) {
            return e.what();
        }
        return "(no error)";
    }
    fs::path dir_;
};

}  // namespace

TEST(PullUrl, HuggingFaceResolveUrls) {
    EXPECT_EQ(hf_resolve_url("", "unsloth/Qwen3.5-27B-GGUF", "Qwen3.5-27B-Q4_K_M.gguf"),
              "https://huggingface.co/unsloth/Qwen3.5-27B-GGUF/resolve/main/Qwen3.5-27B-Q4_K_M.gguf");
    EXPECT_EQ(hf_resolve_url("http://127.0.0.1:9/", "a/b", "dir/c d.gguf"), "http://127.0.0.1:9/a/b/resolve/main/dir/c%20d.gguf");
}

TEST_F(Pull, FullDownloadVerifiedAgainstServerEtag) {
    LoopbackServer::Config c;
    c.payload = payload(300000);
    c.etag = sha256_hex(c.payload);
    LoopbackServer srv(c);
    const PullResult r = pull_file(options(srv.url()));
    EXPECT_EQ(r.bytes, c.payload.size());
    EXPECT_EQ(r.downloaded, c.payload.size());
    EXPECT_EQ(r.sha256, c.etag);
    EXPECT_EQ(r.sha256_source, "server");
    EXPECT_EQ(slurp(dir_ / "model.gguf"), c.payload);
    EXPECT_FALSE(fs::exists(dir_ / "model.gguf.part"));
    // run again: the file is there, nothing is fetched
    const size_t requests = srv.ranges().size();
    EXPECT_TRUE(pull_file(options(srv.url())).already_present);
    EXPECT_EQ(srv.ranges().size(), requests);
}

TEST_F(Pull, GivenChecksumAndRedirectWithLinkedEtag) {
    LoopbackServer::Config c;
    c.payload = payload(70000);
    c.linked_etag = sha256_hex(c.payload);
    c.etag = "0123abcd";  // what a CDN sends: not a sha256, ignored
    LoopbackServer srv(c);
    PullResult r = pull_file(options(srv.base() + "/redirect" + "/org/repo/resolve/main/model.gguf"));
    EXPECT_EQ(r.sha256_source, "server");
    EXPECT_EQ(r.sha256, c.linked_etag);
    fs::remove(dir_ / "model.gguf");
    PullOptions o = options(srv.url());
    o.sha256 = sha256_hex(c.payload);
    for (char& ch : o.sha256) ch = (char)std::toupper((unsigned char)ch);  // either case is accepted
    r = pull_file(o);
    EXPECT_EQ(r.sha256_source, "--sha256");
    EXPECT_EQ(slurp(dir_ / "model.gguf"), c.payload);
}

TEST_F(Pull, ResumesAfterADroppedConnection) {
    LoopbackServer::Config c;
    c.payload = payload(500000);
    c.etag = sha256_hex(c.payload);
    c.drop_after = 123456;
    c.drops = 1;
    LoopbackServer srv(c);
    const std::string err = error_of(options(srv.url()));
    EXPECT_NE(err.find("run the same command again to resume"), std::string::npos) << err;
    EXPECT_NE(err.find(srv.url()), std::string::npos) << err;
    EXPECT_EQ(fs::file_size(dir_ / "model.gguf.part"), 123456u);
    EXPECT_FALSE(fs::exists(dir_ / "model.gguf"));
    const PullResult r = pull_file(options(srv.url()));
    EXPECT_EQ(r.downloaded, 500000u - 123456u);
    EXPECT_EQ(r.sha256_source, "server");
    EXPECT_EQ(slurp(dir_ / "model.gguf"), c.payload);
    const auto ranges = srv.ranges();
    ASSERT_EQ(ranges.size(), 2u);
    EXPECT_EQ(ranges[0], "");
    EXPECT_EQ(ranges[1], "bytes=123456-");
}

TEST_F(Pull, RetriesWithinOneCall) {
    LoopbackServer::Config c;
    c.payload = payload(200000);
    c.etag = sha256_hex(c.payload);
    c.drop_after = 1000;
    c.drops = 2;
    LoopbackServer srv(c);
    PullOptions o = options(srv.url());
    o.attempts = 3;
    const PullResult r = pull_file(o);
    EXPECT_EQ(r.downloaded, 200000u);
    EXPECT_EQ(slurp(dir_ / "model.gguf"), c.payload);
    EXPECT_EQ(srv.ranges().back(), "bytes=2000-");
}

TEST_F(Pull, ServerIgnoringRangeRestartsFromZero) {
    LoopbackServer::Config c;
    c.payload = payload(100000);
    c.etag = sha256_hex(c.payload);
    c.ignore_range = true;
    LoopbackServer srv(c);
    std::ofstream(dir_ / "model.gguf.part", std::ios::binary) << std::string(5000, 'x');  // stale bytes
    const PullResult r = pull_file(options(srv.url()));
    EXPECT_EQ(srv.ranges().at(0), "bytes=5000-");
    EXPECT_EQ(r.downloaded, 100000u);
    EXPECT_EQ(slurp(dir_ / "model.gguf"), c.payload);
}

TEST_F(Pull, CompletePartFileIsVerifiedAfter416) {
    LoopbackServer::Config c;
    c.payload = payload(40000);
    c.etag = sha256_hex(c.payload);
    LoopbackServer srv(c);
    std::ofstream(dir_ / "model.gguf.part", std::ios::binary) << c.payload;
    const PullResult r = pull_file(options(srv.url()));
    EXPECT_EQ(r.downloaded, 0u);
    EXPECT_EQ(r.sha256_source, "server");
    EXPECT_EQ(slurp(dir_ / "model.gguf"), c.payload);
}

TEST_F(Pull, WrongChecksumDeletesThePartFile) {
    LoopbackServer::Config c;
    c.payload = payload(50000);
    LoopbackServer srv(c);
    PullOptions o = options(srv.url());
    o.sha256 = sha256_hex("something else");
    const std::string err = error_of(o);
    EXPECT_NE(err.find("checksum mismatch"), std::string::npos) << err;
    EXPECT_NE(err.find(sha256_hex(c.payload)), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(dir_ / "model.gguf.part"));
    EXPECT_FALSE(fs::exists(dir_ / "model.gguf"));
    // the same when the server's digest is wrong
    LoopbackServer::Config bad = c;
    bad.etag = sha256_hex("not the payload");
    LoopbackServer srv2(bad);
    EXPECT_NE(error_of(options(srv2.url())).find("from the server"), std::string::npos);
    EXPECT_FALSE(fs::exists(dir_ / "model.gguf.part"));
    o.sha256 = "xyz";
    EXPECT_NE(error_of(o).find("64 hex digits"), std::string::npos);
}

TEST_F(Pull, NoChecksumAvailableStillDownloads) {
    LoopbackServer::Config c;
    c.payload = payload(1000);
    LoopbackServer srv(c);
    const PullResult r = pull_file(options(srv.url()));
    EXPECT_EQ(r.sha256_source, "");
    EXPECT_EQ(slurp(dir_ / "model.gguf"), c.payload);
}

TEST_F(Pull, ClearErrorsFor404And401AndRefusedConnections) {
    LoopbackServer::Config c;
    c.payload = "x";
    LoopbackServer srv(c);
    const std::string missing = srv.base() + "/org/repo/resolve/main/nope.gguf";
    std::string err = error_of(options(missing));
    EXPECT_NE(err.find(missing), std::string::npos) << err;
    EXPECT_NE(err.find("HTTP 404"), std::string::npos) << err;
    EXPECT_NE(err.find("Entry not found"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(dir_ / "model.gguf.part"));

    PullOptions o = options(srv.base() + "/private/x.gguf");
    o.bearer_token = "hf_secret";
    err = error_of(o);
    EXPECT_NE(err.find("HTTP 401"), std::string::npos) << err;
    EXPECT_NE(err.find("HF_TOKEN"), std::string::npos) << err;
    EXPECT_EQ(srv.auths().back(), "Bearer hf_secret");

    const std::string refused = "http://127.0.0.1:" + std::to_string(LoopbackServer::closed_port()) + "/a/b";
    err = error_of(options(refused));
    EXPECT_NE(err.find(refused), std::string::npos) << err;
    EXPECT_NE(err.find("connection refused"), std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << "one line: " << err;
}

TEST_F(Pull, CommandLine) {
    LoopbackServer::Config c;
    c.payload = payload(64000);
    c.etag = sha256_hex(c.payload);
    LoopbackServer srv(c);
    std::string out, err;
    const std::string common = " -o '" + dir_.string() + "' --endpoint " + srv.base();
    int rc = rotor::test::run_cli("pull org/repo model.gguf --quiet" + common, &out, &err);
    if (rc == -1) GTEST_SKIP() << "ROTOR_BIN not set";
    EXPECT_EQ(rc, 0) << err;
    EXPECT_NE(out.find("sha256 " + c.etag + " ok (from the server)"), std::string::npos) << out;
    EXPECT_EQ(slurp(dir_ / "model.gguf"), c.payload);
    rc = rotor::test::run_cli("pull org/repo model.gguf --quiet --sha256 " + c.etag + common, &out, &err);
    EXPECT_EQ(rc, 0) << err;
    EXPECT_NE(out.find("already present"), std::string::npos) << out;

    rc = rotor::test::run_cli("pull org/repo missing.gguf" + common, &out, &err);
    EXPECT_NE(rc, 0);
    EXPECT_NE(err.find("error: cannot download " + srv.base() + "/org/repo/resolve/main/missing.gguf: HTTP 404"),
              std::string::npos) << err;
    // HF_ENDPOINT names the server when --endpoint is absent
    rc = system(("HF_ENDPOINT=" + srv.base() + " " + std::getenv("ROTOR_BIN") + " pull org/repo model.gguf --quiet -o '" +
                 (dir_ / "sub").string() + "' >/dev/null 2>&1").c_str());
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(slurp(dir_ / "sub" / "model.gguf"), c.payload);

    rc = rotor::test::run_cli("pull org/repo", &out, &err);
    EXPECT_NE(rc, 0);
    EXPECT_NE(err.find("expected ORG/REPO and FILE"), std::string::npos) << err;
}
