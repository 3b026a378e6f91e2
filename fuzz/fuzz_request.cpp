// libFuzzer target: the server's request edge. Arbitrary bytes as the JSON body of /v1/chat/completions
// and /v1/completions (parse_request), as an HTTP request head and chunked body (parse_http_head,
// decode_chunked), and spliced into valid requests so the fuzzer reaches field validation without a
// seed corpus. A 400 is the expected outcome for bad input; a crash, hang, sanitizer report or an
// exception escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/chat_stream.h"
#include "server/http.h"
#include "server/request.h"

namespace {

using rotor::server::ApiError;
using rotor::server::Endpoint;
using rotor::server::ParsedRequest;
using rotor::server::RequestLimits;

const RequestLimits& limits() {
    static const RequestLimits l = [] {
        RequestLimits r;
        r.n_vocab = 4096;
        r.model_names = {"rotor-kjv-11m-q8_0"};
        return r;
    }();
    return l;
}

void check(Endpoint ep, std::string_view body) {
    ParsedRequest r;
    ApiError e;
    if (!rotor::server::parse_request(ep, body, limits(), &r, &e)) {
        if (e.status != 400 || e.message.empty()) __builtin_trap();
        (void)e.to_json().dump();
        return;
    }
    // What the server does next with a valid chat request that needs no model: the reply parser.
    if (ep == Endpoint::Chat && r.tools.is_array()) {
        rotor::chat::ChatFormat f;
        f.tool_calls = rotor::chat::ToolCallStyle::Hermes;
        f.reasoning = true;
        rotor::server::ChatStreamParser p(f, false, &r.tools);
        p.push(body.substr(0, body.size() / 2));
        p.push(body.substr(body.size() / 2));
        p.finish([] { return std::string("id"); });
    }
}

// Valid requests with a hole where the fuzzer's bytes go.
const char* const kSplices[][2] = {
    {R"({"messages":[{"role":"user","content":"hi"}],)", "}"},
    {R"({"messages":[{"role":"user","content":)", "}]}"},
    {R"({"messages":[{"role":"assistant","tool_calls":[)", "]}]}"},
    {R"({"messages":[{"role":"user","content":"x"}],"tools":[)", "]}"},
    {R"({"prompt":)", ",\"max_tokens\":4}"},
    {R"({"prompt":"x","logit_bias":{)", "}}"},
    {R"({"prompt":"x","stop":)", "}"},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0];
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (mode % 4) {
        case 0:
            check(Endpoint::Chat, in);
            check(Endpoint::Completion, in);
            break;
        case 1: {
            const size_t k = (mode / 4) % (sizeof kSplices / sizeof kSplices[0]);
            const std::string body = std::string(kSplices[k][0]) + std::string(in) + kSplices[k][1];
            check(Endpoint::Chat, body);
            check(Endpoint::Completion, body);
            break;
        }
        case 2: {
            rotor::server::HttpHead h;
            rotor::server::HttpParseError e;
            const size_t end = in.find("\r\n\r\n");
            const bool ok = rotor::server::parse_http_head(in.substr(0, end), &h, &e);
            if (!ok && (e.status < 400 || e.message.empty())) __builtin_trap();
            break;
        }
        default: {
            std::string body;
            size_t used = 0;
            bool complete = false;
            if (rotor::server::decode_chunked(in, 1 << 16, &body, &used, &complete) && complete) {
                if (used > in.size() || body.size() > in.size()) __builtin_trap();
            }
            break;
        }
    }
    return 0;
}
