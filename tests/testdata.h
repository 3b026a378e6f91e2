// Where tests find ../shared/testdata (or $ROTOR_TESTDATA). Tests that need it call
// ROTOR_REQUIRE_TESTDATA(path) and are reported as skipped, with the path, when it is absent.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace rotor::test {

inline std::string testdata_dir() {
    if (const char* e = std::getenv("ROTOR_TESTDATA")) return e;
    return ROTOR_DEFAULT_TESTDATA;
}
inline std::string testdata(const std::string& rel) { return testdata_dir() + "/" + rel; }
inline std::string source_dir() { return ROTOR_SOURCE_DIR; }

}  // namespace rotor::test

#define ROTOR_REQUIRE_TESTDATA(path)                                                  \
    do {                                                                              \
        if (!std::filesystem::exists(path)) GTEST_SKIP() << "test data not found: " << (path); \
    } while (0)
