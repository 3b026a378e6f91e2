// rotor::StopMatcher: matches across piece boundaries, hold-back and release, several stops,
// which stop wins, UTF-8 safety, flush, and independence from how the text is split.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sample/rng.h"
#include "sample/stop.h"

namespace {

using rotor::StopMatcher;

// Feeds the pieces; returns everything shown (plus the flush when no stop hit) and the stop index.
std::pair<std::string, int> stream(StopMatcher& m, const std::vector<std::string>& pieces) {
    std::string shown;
    for (const auto& p : pieces) {
        const auto out = m.feed(p);
        shown += out.text;
        if (out.stopped) return {shown, out.stop_index};
    }
    shown += m.flush();
    return {shown, -1};
}

TEST(StopMatcher, NoStopsPassesThrough) {
    StopMatcher m;
    EXPECT_EQ(m.feed("Hello").text, "Hello");
    EXPECT_EQ(m.feed(", world").text, ", world");
    EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, MatchAcrossPieces) {
    StopMatcher m({"STOP"});
    auto a = m.feed("Hello ST");
    EXPECT_EQ(a.text, "Hello ");
    EXPECT_FALSE(a.stopped);
    EXPECT_EQ(m.held(), 2u);
    auto b = m.feed("O");
    EXPECT_EQ(b.text, "");
    EXPECT_EQ(m.held(), 3u);
    auto c = m.feed("P and more");
    EXPECT_TRUE(c.stopped);
    EXPECT_EQ(c.stop_index, 0);
    EXPECT_EQ(c.text, "");
    // after a stop: nothing more comes out
    auto d = m.feed("ignored");
    EXPECT_TRUE(d.stopped);
    EXPECT_EQ(d.text, "");
    EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, TextBeforeTheStopInTheSamePiece) {
    StopMatcher m({"</s>"});
    auto a = m.feed("done.</s>trailing");
    EXPECT_TRUE(a.stopped);
    EXPECT_EQ(a.text, "done.");
}

TEST(StopMatcher, HoldThenRelease) {
    StopMatcher m({"STOP"});
    EXPECT_EQ(m.feed("a S").text, "a ");
    EXPECT_EQ(m.feed("T").text, "");
    auto r = m.feed("x");  // "STx" can no longer become "STOP"
    EXPECT_FALSE(r.stopped);
    EXPECT_EQ(r.text, "STx");
    EXPECT_EQ(m.held(), 0u);
    // a released tail that itself starts a new candidate: "SST" -> "S" out, "ST" held
    EXPECT_EQ(m.feed("SST").text, "S");
    EXPECT_EQ(m.flush(), "ST");
}

TEST(StopMatcher, StopAtTheVeryStart) {
    StopMatcher m({"###"});
    auto a = m.feed("###");
    EXPECT_TRUE(a.stopped);
    EXPECT_EQ(a.text, "");
    StopMatcher m2({"###"});
    EXPECT_EQ(m2.feed("#").text, "");
    EXPECT_EQ(m2.feed("#").text, "");
    auto b = m2.feed("#");
    EXPECT_TRUE(b.stopped);
    EXPECT_EQ(b.text, "");
}

TEST(StopMatcher, FlushReleasesThePartialMatch) {
    StopMatcher m({"<|im_end|>"});
    EXPECT_EQ(m.feed("answer <|im").text, "answer ");
    EXPECT_EQ(m.flush(), "<|im");
    EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, MultipleStopsAndOverlappingPrefixes) {
    StopMatcher m({"abcd", "abx", "\n\n"});
    EXPECT_EQ(m.feed("zab").text, "z");  // "ab" could be abcd or abx
    EXPECT_EQ(m.feed("c").text, "");     // "abc" still a prefix of abcd
    auto r = m.feed("e\n");              // "abce\n": abcd impossible; "\n" may start "\n\n"
    EXPECT_EQ(r.text, "abce");
    auto s = m.feed("\nrest");
    EXPECT_TRUE(s.stopped);
    EXPECT_EQ(s.stop_index, 2);
    EXPECT_EQ(s.text, "");

    StopMatcher m2({"abcd", "abx"});
    auto t = m2.feed("ab");
    EXPECT_EQ(t.text, "");
    auto u = m2.feed("x!");
    EXPECT_TRUE(u.stopped);
    EXPECT_EQ(u.stop_index, 1);
}

TEST(StopMatcher, EarliestEndingMatchWins) {
    // "y" completes before "xyz" when reading left to right, however the text is split
    StopMatcher m({"xyz", "y"});
    auto a = m.feed("axyz");
    EXPECT_TRUE(a.stopped);
    EXPECT_EQ(a.stop_index, 1);
    EXPECT_EQ(a.text, "ax");
    StopMatcher m2({"xyz", "y"});
    EXPECT_EQ(stream(m2, {"a", "x", "y", "z"}), std::make_pair(std::string("ax"), 1));
    // equal ends: the longer (earlier) one; equal matches: the lower index
    StopMatcher m3({"bc", "abc"});
    auto b = m3.feed("_abc");
    EXPECT_EQ(b.stop_index, 1);
    EXPECT_EQ(b.text, "_");
    StopMatcher m4({"bc", "bc"});
    EXPECT_EQ(m4.feed("abc").stop_index, 0);
}

TEST(StopMatcher, EmptyStopIsIgnored) {
    StopMatcher m({"", "end"});
    EXPECT_EQ(m.feed("text").text, "text");
    auto r = m.feed(" the end");
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.stop_index, 1);
    EXPECT_EQ(r.text, " the ");
}

TEST(StopMatcher, Utf8) {
    // "é" is C3 A9; the stop "é!" shares its first character with the text
    StopMatcher m({"\xc3\xa9!"});
    EXPECT_EQ(m.feed("caf").text, "caf");
    EXPECT_EQ(m.feed("\xc3\xa9").text, "");
    EXPECT_EQ(m.feed("?").text, "\xc3\xa9?");
    // an incomplete character at the end of a piece is held until completed
    StopMatcher n({"zzz"});
    EXPECT_EQ(n.feed("a\xe2\x82").text, "a");
    EXPECT_EQ(n.feed("\xac b").text, "\xe2\x82\xac b");
    // a stop that is not valid UTF-8 (starts with a continuation byte) never splits a character
    StopMatcher bad({"\xa9x"});
    EXPECT_EQ(bad.feed("\xc3\xa9").text, "\xc3\xa9");
    auto r = bad.feed("x");
    EXPECT_FALSE(r.stopped);
    EXPECT_EQ(r.text, "x");
    // multi-byte stop strings
    StopMatcher cjk({"\xe3\x80\x82\xe3\x80\x82"});  // "。。"
    EXPECT_EQ(stream(cjk, {"\xe5\xa5\xbd", "\xe3\x80\x82", "\xe3\x80\x82", "\xe5\x90\x97"}),
              std::make_pair(std::string("\xe5\xa5\xbd"), 0));
}

TEST(StopMatcher, ResultIndependentOfSplitting) {
    // random texts over a small alphabet, random stop sets, random splits: the shown text and the
    // stop index must equal those of feeding the whole text at once
    uint64_t x = 2024;
    auto rnd = [&](uint64_t n) { return rotor::splitmix64(x) % n; };
    const std::string alphabet[] = {"a", "b", "c", "\xc3\xa9"};
    for (int iter = 0; iter < 500; iter++) {
        std::vector<std::string> chars;
        const int len = 1 + static_cast<int>(rnd(30));
        for (int i = 0; i < len; i++) chars.push_back(alphabet[rnd(4)]);
        std::vector<std::string> stops;
        const int n_stops = 1 + static_cast<int>(rnd(3));
        for (int k = 0; k < n_stops; k++) {
            std::string s;
            const int sl = 1 + static_cast<int>(rnd(4));
            for (int i = 0; i < sl; i++) s += alphabet[rnd(4)];
            stops.push_back(s);
        }
        std::string whole;
        for (const auto& c : chars) whole += c;
        StopMatcher ref(stops);
        const auto expect = stream(ref, {whole});

        std::vector<std::string> pieces;
        for (size_t i = 0; i < chars.size();) {
            const size_t take = 1 + rnd(3);
            std::string p;
            for (size_t j = 0; j < take && i < chars.size(); j++) p += chars[i++];
            pieces.push_back(p);
        }
        StopMatcher m(stops);
        EXPECT_EQ(stream(m, pieces), expect) << "text '" << whole << "'";
        // the shown text is a prefix of the whole text and never contains a stop string
        EXPECT_EQ(whole.compare(0, expect.first.size(), expect.first), 0);
        for (const auto& s : stops) EXPECT_EQ(expect.first.find(s), std::string::npos);
    }
}

TEST(StopMatcher, Reset) {
    StopMatcher m({"x"});
    EXPECT_TRUE(m.feed("x").stopped);
    m.reset();
    EXPECT_FALSE(m.stopped());
    EXPECT_EQ(m.feed("abc").text, "abc");
}

}  // namespace
