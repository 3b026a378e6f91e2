// Request validation: the JSON body of /v1/chat/completions or /v1/completions -> a checked request,
// or an OpenAI-shaped error. A pure function (no model, no I/O), so it is fuzzed directly.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sample/sampler.h"

namespace rotor {
namespace gguf {
class File;
}
namespace chat {
struct ChatFormat;
}
}  // namespace rotor

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
    SamplerParams sampling;                // what a request gets for the sampling fields it leaves out
};

// The model's default sampling (RequestLimits::sampling), per field: the GGUF's recommendation where it
// has one (llama.cpp's keys general.sampling.temp, .top_k, .top_p, .min_p, .penalty_last_n,
// .penalty_repeat, a number of any type or a numeric string, as llama.cpp reads them); else, for
// temperature / top_p / top_k, Gemma 4's documented 1.0 / 0.95 / 64 when the chat template is
// Gemma 4's (fmt may be null: no template); else SamplerParams' defaults (llama.cpp's). A key of
// another type or out of range is skipped with a line in *warnings (when given). Never throws.
SamplerParams default_sampling(const gguf::File& f, const chat::ChatFormat* fmt, std::vector<std::string>* warnings = nullptr);

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
