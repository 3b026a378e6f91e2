// Where tests find ../shared/testdata (or $ROTOR_TESTDATA). Tests that need it call
// ROTOR_REQUIRE_TESTDATA(path) and are reported as skipped, with the path, when it is absent.
#pragma once
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace rotor::test {

inline std::string testdata_dir() {
    if (const char* e = std::getenv("ROTOR_TESTDATA")) return e;
    return ROTOR_DEFAULT_TESTDATA;
}
inline std::string testdata(const std::string& rel) { return testdata_dir() + "/" + rel; }
inline std::string source_dir() { return ROTOR_SOURCE_DIR; }

// Runs the rotor program ($ROTOR_BIN, set by ctest) with args through the shell. Its stdout goes to
// *out; its stderr to *err, or into *out as well when err is null. Returns the exit status, or -1
// when ROTOR_BIN is not set.
inline int run_cli(const std::string& args, std::string* out, std::string* err = nullptr) {
    const char* bin = std::getenv("ROTOR_BIN");
    if (!bin) return -1;
    const std::string err_path =
        (std::filesystem::temp_directory_path() / ("rotor_cli_stderr_" + std::to_string(getpid()))).string();
    const std::string cmd = std::string(bin) + " " + args + (err ? " 2>" + err_path : " 2>&1");
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return -3;
    char buf[4096];
    size_t n;
    out->clear();
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
    const int status = pclose(p);
    if (err) {
        std::ifstream f(err_path);
        err->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        std::filesystem::remove(err_path);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
}

}  // namespace rotor::test

#define ROTOR_REQUIRE_TESTDATA(path)                                                  \
    do {                                                                              \
        if (!std::filesystem::exists(path)) GTEST_SKIP() << "test data not found: " << (path); \
    } while (0)
