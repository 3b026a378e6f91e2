// SHA-256 against the FIPS 180-2 example vectors and against the system's sha256sum.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "pull/sha256.h"

using namespace rotor;

TEST(Sha256, KnownVectors) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ChunkingDoesNotMatter) {
    std::string data(1000, 0);
    for (size_t i = 0; i < data.size(); i++) data[i] = (char)(i * 131 + 7);
    const std::string whole = sha256_hex(data);
    for (size_t step : {1, 3, 55, 56, 63, 64, 65, 200}) {
        Sha256 s;
        for (size_t off = 0; off < data.size(); off += step) s.update(data.data() + off, std::min(step, data.size() - off));
        EXPECT_EQ(s.hex_digest(), whole) << step;
    }
    EXPECT_TRUE(is_sha256_hex(whole));
    EXPECT_FALSE(is_sha256_hex(whole.substr(1)));
    EXPECT_FALSE(is_sha256_hex(std::string(63, 'a') + "g"));
}

TEST(Sha256, MatchesSha256sum) {
    if (std::system("command -v sha256sum >/dev/null 2>&1") != 0) GTEST_SKIP() << "sha256sum not installed";
    const auto path = std::filesystem::temp_directory_path() / ("rotor_sha_" + std::to_string(getpid()));
    std::mt19937 rng(7);
    std::string data(3 * 1048576 + 17, 0);  // several of sha256_file's 1 MiB reads, and a tail
    for (char& c : data) c = (char)rng();
    std::ofstream(path, std::ios::binary).write(data.data(), (std::streamsize)data.size());
    FILE* p = popen(("sha256sum '" + path.string() + "'").c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[65] = {0};
    ASSERT_EQ(fread(buf, 1, 64, p), 64u);
    pclose(p);
    EXPECT_EQ(sha256_file(path.string()), std::string(buf));
    EXPECT_EQ(sha256_hex(data), std::string(buf));
    std::filesystem::remove(path);
}
