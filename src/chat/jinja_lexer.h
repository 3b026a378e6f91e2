// Jinja lexer: template source -> tokens, with jinja2's whitespace rules as Hugging Face configures
// them (trim_blocks, lstrip_blocks, `-`/`+` tag modifiers, newline normalisation, one trailing
// newline dropped).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rotor::jinja {

enum class Tok : uint8_t {
    Data,        // literal template text
    VarBegin,    // {{
    VarEnd,      // }}
    BlockBegin,  // {%
    BlockEnd,    // %}
    Name,
    String,      // text holds the decoded value
    Integer,
    Float,
    Op,          // text holds the operator: + - * / // % ** ~ ( ) [ ] { } == != < <= > >= = . : | , ;
    Eof,
};

struct Token {
    Tok type = Tok::Eof;
    std::string text;
    int64_t ival = 0;
    double fval = 0;
    int line = 1;

    bool is_op(std::string_view op) const { return type == Tok::Op && text == op; }
    bool is_name(std::string_view n) const { return type == Tok::Name && text == n; }
};

// Throws TemplateError(Syntax) on malformed input (unterminated comment/raw, bad characters,
// unbalanced brackets, bad string escapes).
std::vector<Token> tokenize(std::string_view source);

// jinja2's describe_token: how error messages name a token.
std::string describe_token(const Token& t);

}  // namespace rotor::jinja
