// Stop strings for streamed generation.
//
// StopMatcher is fed the decoded text pieces one at a time and says which bytes may be shown now:
//  - When a stop string completes, feed() returns the text before it (the stop string and anything
//    after it are dropped, as OpenAI does) with stopped = true. Later calls return nothing.
//  - Otherwise the longest tail of the unsent text that is a proper prefix of some stop string is
//    held back, so a streaming client never sees part of a stop string; it is released as soon as it
//    can no longer become one (or by flush() at the end of generation).
// Which stop wins: the one whose match ENDS first in the text (what a client reading byte by byte
// would hit first); on equal ends the longer one (earliest start); then the lower index. This makes
// the result independent of how the text is split into pieces.
// UTF-8: a piece is expected to end on a character boundary (a streaming detokenizer holds partial
// characters back); an incomplete sequence at the end is held back anyway, and text is never cut in
// the middle of a multi-byte character, even with stop strings that are not valid UTF-8 (a match or a
// held-back tail only ever starts on a character boundary).
// Empty stop strings are ignored. Cost per piece: O(unsent bytes x total stop bytes); the unsent text
// is at most the longest stop string (plus a partial character).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace rotor {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops = {});

    struct Output {
        std::string text;      // bytes that may be shown now
        bool stopped = false;  // a stop string matched (now or in an earlier call)
        int stop_index = -1;   // which one: an index into stops()
    };

    Output feed(std::string_view piece);
    // End of generation without a stop: returns the held-back text (empty after a stop).
    std::string flush();
    // Forget everything fed so far (same stop strings).
    void reset();

    bool stopped() const { return stop_index_ >= 0; }
    int stop_index() const { return stop_index_; }
    size_t held() const { return pending_.size(); }
    const std::vector<std::string>& stops() const { return stops_; }

private:
    std::vector<std::string> stops_;
    size_t max_len_ = 0;
    std::string pending_;  // fed but not yet returned
    int stop_index_ = -1;
};

}  // namespace rotor
