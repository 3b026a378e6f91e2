// Jinja templates as Hugging Face transformers renders chat templates: jinja2's
// ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loopcontrols, a tojson that keeps
// non-ASCII text, and the raise_exception / strftime_now globals.
#pragma once
#include "chat/jinja_value.h"

#include <nlohmann/json_fwd.hpp>

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace rotor::jinja {

struct Program;

// Bounds that keep any template (including hostile ones) from running away. Exceeding one raises
// TemplateError with ErrorKind::Limit.
struct RenderOptions {
    size_t max_output_bytes = 64u << 20;  // also the longest string an expression may build
    size_t max_list_items = 4u << 20;     // longest list an expression may build
    size_t max_work = 50'000'000;         // loop iterations, macro calls and elements touched by filters
    int max_depth = 400;                  // nested statement/expression/macro evaluation
    std::optional<std::tm> now;           // what strftime_now() formats; unset: the local time
};

class Template {
public:
    // Parses; throws TemplateError (Syntax, or Assertion for an unknown filter/test).
    explicit Template(std::string_view source);
    ~Template();
    Template(const Template&) = default;
    Template& operator=(const Template&) = default;

    // Renders with these variables (a dict of name -> value). Throws TemplateError.
    std::string render(const Dict& vars, const RenderOptions& opts = {}) const;
    std::string render(const nlohmann::ordered_json& vars, const RenderOptions& opts = {}) const;

private:
    std::shared_ptr<const Program> program_;
};

}  // namespace rotor::jinja
