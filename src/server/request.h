// Request validation: the JSON body of /v1/chat/completions or /v1/completions -> a checked request,
// or an OpenAI-shaped error. A pure function (no model, no I/O), so it is fuzzed directly.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sample/sampler.h"

namespace rotor::server {

using json = nlohmann::ordered_json;  // chat templates print dicts in insertion order

// OpenAI's error object: {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
    int status = 400;
    std::string message;
    std::string type = "invalid_request_error";
    std::string param;  // "" -> null
    std::string code;   // "" -> null
    json to_json() const;
};

enum class Endpoint { Chat, Completion };

// What validation needs to know about the server (no model object: keeps this a pure function).
struct RequestLimits {
    int n_vocab = 0;                       // logit_bias ids and prompt token ids must be below this
    std::vector<std::string> model_names;  // accepted "model" values; empty: any
    int max_stop = 16;                     // stop strings per request
    int max_top_logprobs = 20;
};

struct ParsedRequest {
    Endpoint endpoint = Endpoint::Chat;
    std::string model;  // as requested ("" if absent)
    // chat
    json messages;      // validated array (tool-call arguments still as sent)
    json tools;         // null when no tools are offered (or tool_choice is "none")
    json chat_template_kwargs = json::object();
    // completions
    std::string prompt_text;
    std::vector<int32_t> prompt_tokens;  // when the prompt was given as token ids
    bool prompt_is_tokens = false;
    // both
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    int max_tokens = -1;         // -1: until end of generation or the context is full
    SamplerParams sampling;
    std::vector<std::string> stop;
    bool logprobs = false;
    int top_logprobs = 0;
    bool ignore_eos = false;
};

// Parses and validates. On failure returns false and fills *err (status 400 with a message naming
// the field; param set to the field's name). Never throws.
bool parse_request(Endpoint ep, std::string_view body, const RequestLimits& limits, ParsedRequest* out, ApiError* err);

}  // namespace rotor::server
