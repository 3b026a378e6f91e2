#include "sample/stop.h"

#include <algorithm>
#include <utility>

#include "common/utf8.h"

namespace rotor {

namespace {

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xc0) == 0x80; }

// First occurrence of s in text that starts on a character boundary (a stop string that is not valid
// UTF-8 could otherwise match from the middle of a character).
size_t find_at_boundary(const std::string& text, const std::string& s) {
    for (size_t pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos + 1))
        if (!is_continuation(text[pos])) return pos;
    return std::string::npos;
}

}  // namespace

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
    for (const std::string& s : stops_) max_len_ = std::max(max_len_, s.size());
}

void StopMatcher::reset() {
    pending_.clear();
    stop_index_ = -1;
}

StopMatcher::Output StopMatcher::feed(std::string_view piece) {
    Output out;
    if (stopped()) {
        out.stopped = true;
        out.stop_index = stop_index_;
        return out;
    }
    pending_.append(piece);

    // 1. a complete match: the first occurrence of each stop is its earliest end
    size_t best_start = std::string::npos, best_end = std::string::npos;
    int best = -1;
    for (size_t k = 0; k < stops_.size(); k++) {
        const std::string& s = stops_[k];
        if (s.empty()) continue;
        const size_t pos = find_at_boundary(pending_, s);
        if (pos == std::string::npos) continue;
        const size_t end = pos + s.size();
        if (best < 0 || end < best_end || (end == best_end && pos < best_start)) {
            best = static_cast<int>(k);
            best_start = pos;
            best_end = end;
        }
    }
    if (best >= 0) {
        pending_.resize(best_start);
        out.text = std::move(pending_);
        pending_.clear();
        out.stopped = true;
        out.stop_index = stop_index_ = best;
        return out;
    }

    // 2. hold back the longest tail (starting on a character boundary) that is a proper prefix of a stop
    const size_t n = pending_.size();
    size_t keep_from = n;
    const size_t first = (max_len_ > 0 && n > max_len_ - 1) ? n - (max_len_ - 1) : 0;
    for (size_t i = first; i < n && keep_from == n; i++) {
        if (is_continuation(pending_[i])) continue;
        const std::string_view tail = std::string_view(pending_).substr(i);
        for (const std::string& s : stops_) {
            if (s.size() > tail.size() && std::string_view(s).substr(0, tail.size()) == tail) {
                keep_from = i;
                break;
            }
        }
    }
    keep_from = std::min(keep_from, n - utf8_incomplete_tail(pending_));

    out.text.assign(pending_, 0, keep_from);
    pending_.erase(0, keep_from);
    return out;
}

std::string StopMatcher::flush() {
    std::string rest = std::move(pending_);
    pending_.clear();
    return rest;
}

}  // namespace rotor
