// The Jinja language itself: ~275 snippets whose expected output (or error) Python jinja2 produced
// with transformers' settings (fixtures/jinja_snippets.json, from gen_renders.py), plus hand-written
// checks of what Python cannot tell us: limits, the C++ API, and deliberate differences.
#include "chat/jinja_eval.h"
#include "testdata.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace rotor::jinja {
namespace {

using json = nlohmann::ordered_json;

const json& snippets() {
    static const json j = [] {
        std::ifstream f(test::source_dir() + "/tests/chat/fixtures/jinja_snippets.json", std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        return f ? json::parse(ss.str()) : json();
    }();
    return j;
}

std::vector<int> snippet_indices() {
    std::vector<int> idx;
    if (snippets().is_object())
        for (size_t i = 0; i < snippets()["snippets"].size(); i++) idx.push_back(int(i));
    return idx;
}

std::tm fixed_now() {
    std::tm t{};
    t.tm_year = 124;
    t.tm_mon = 6;
    t.tm_mday = 26;
    t.tm_hour = 10;
    t.tm_min = 30;
    time_t secs = timegm(&t);
    gmtime_r(&secs, &t);
    return t;
}

std::string render(std::string_view src, const json& vars = json::object(), RenderOptions opts = {}) {
    if (!opts.now) opts.now = fixed_now();
    return Template(src).render(vars, opts);
}

// "<ExceptionClass>: <message>" of a failing render, or "" when it renders.
std::string error_of(std::string_view src, const json& vars = json::object(), RenderOptions opts = {}) {
    try {
        render(src, vars, opts);
    } catch (const TemplateError& e) {
        return e.what();
    }
    return "";
}

class Snippets : public ::testing::TestWithParam<int> {};

TEST_P(Snippets, MatchPythonJinja2) {
    const json& s = snippets()["snippets"][size_t(GetParam())];
    std::string src = s["template"].get<std::string>();
    SCOPED_TRACE("template: " + src);
    if (s["ok"].get<bool>()) {
        try {
            EXPECT_EQ(render(src, snippets()["vars"]), s["text"].get<std::string>());
        } catch (const TemplateError& e) {
            FAIL() << "raised " << e.what();
        }
    } else {
        EXPECT_EQ(error_of(src, snippets()["vars"]), s["error"].get<std::string>());
    }
}

INSTANTIATE_TEST_SUITE_P(Fixture, Snippets, ::testing::ValuesIn(snippet_indices()),
                         [](const ::testing::TestParamInfo<int>& i) { return "snippet_" + std::to_string(i.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Snippets);

// ---------------------------------------------------------------------------------------------- API

TEST(Jinja, RendersVariablesFromJson) {
    json vars = {{"name", "World"}, {"items", {1, 2.5, "x", nullptr, true}}, {"obj", {{"z", 1}, {"a", 2}}}};
    EXPECT_EQ(render("Hello {{ name }}! {{ items }} {{ obj }}", vars), "Hello World! [1, 2.5, 'x', None, True] {'z': 1, 'a': 2}");
}

TEST(Jinja, TemplateIsReusable) {
    Template t("{{ a * 2 }}");
    EXPECT_EQ(t.render(json{{"a", 2}}), "4");
    EXPECT_EQ(t.render(json{{"a", "ab"}}), "abab");
}

TEST(Jinja, ErrorsCarryKindMessageAndLine) {
    try {
        render("line1\n{% if true %}\n{{ raise_exception('boom') }}\n{% endif %}");
        FAIL();
    } catch (const TemplateError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Raised);
        EXPECT_EQ(e.message(), "boom");
        EXPECT_EQ(std::string(e.what()), "TemplateError: boom");
        EXPECT_EQ(e.line(), 3);
    }
    try {
        Template t("a\nb {{ 1 + }}");
        FAIL();
    } catch (const TemplateError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Syntax);
        EXPECT_EQ(e.line(), 2);
    }
}

TEST(Jinja, ParseErrorsHappenAtConstruction) {
    EXPECT_THROW(Template("{% for x in y %}"), TemplateError);
    EXPECT_THROW(Template("{{ x|no_such_filter }}"), TemplateError);
    EXPECT_NO_THROW(Template("{% if x %}{{ x|no_such_filter }}{% endif %}"));  // runtime only, as jinja2
}

TEST(Jinja, StrftimeNowUsesInjectedTime) {
    EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}"), "26 Jul 2024");
    RenderOptions opts;
    std::tm t{};
    t.tm_year = 100;
    t.tm_mday = 1;
    opts.now = t;
    EXPECT_EQ(render("{{ strftime_now('%Y-%m-%d') }}", json::object(), opts), "2000-01-01");
}

// ---------------------------------------------------------------------------------------------- differences

// Where this interpreter knowingly differs from Python (documented in tests/chat/README.md).
TEST(Jinja, DeliberateDifferences) {
    // break/continue outside a loop: Python fails compiling generated code with a SyntaxError
    EXPECT_EQ(error_of("{% break %}"), "TemplateSyntaxError: 'break' outside loop");
    // templates are self-contained: no loader
    EXPECT_NE(error_of("{% include 'x' %}").find("TemplateSyntaxError"), std::string::npos);
    // 64-bit integers instead of Python's unbounded ones
    EXPECT_EQ(error_of("{{ 2 ** 64 }}"), "OverflowError: integer overflow (64-bit integers)");
    EXPECT_EQ(render("{{ 2 ** 62 }}"), "4611686018427387904");
}

TEST(Jinja, UnicodeCaseMapping) {
    EXPECT_EQ(render("{{ 'straße ÀÉÎ ωσς живой'|upper }}"), "STRASSE ÀÉÎ ΩΣΣ ЖИВОЙ");
    EXPECT_EQ(render("{{ 'ÀÉÎ ΩΣ ЖИВОЙ'|lower }}"), "àéî ωσ живой");
}

TEST(Jinja, InvalidUtf8NeverBreaksThings) {
    std::string bad = "a\xff\xc3(b\xe2\x82";
    json vars = {{"s", json::binary_t()}};
    std::string src = "{{ '" + bad + "'|length }}|{{ '" + bad + "'[::-1]|length }}|{{ '" + bad + "'|upper }}";
    EXPECT_EQ(render(src), "7|7|A\xff\xc3(B\xe2\x82");
}

// ---------------------------------------------------------------------------------------------- limits

TEST(JinjaLimits, OutputSize) {
    RenderOptions opts;
    opts.max_output_bytes = 1000;
    EXPECT_EQ(error_of("{% for i in range(2000) %}x{% endfor %}", json::object(), opts),
              "TemplateLimitError: rendered text exceeds the output size limit");
    EXPECT_EQ(error_of("{{ 'x' * 5000 }}", json::object(), opts), "TemplateLimitError: rendered text exceeds the output size limit");
    EXPECT_EQ(error_of("{% set ns = namespace(s='ab') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                       json::object(), opts),
              "TemplateLimitError: rendered text exceeds the output size limit");
}

TEST(JinjaLimits, WorkBudget) {
    RenderOptions opts;
    opts.max_work = 10000;
    std::string e = error_of("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", json::object(), opts);
    EXPECT_NE(e.find("TemplateLimitError: template exceeded its work limit"), std::string::npos) << e;
}

TEST(JinjaLimits, RecursionDepth) {
    std::string e = error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    EXPECT_NE(e.find("TemplateLimitError: template recursion too deep"), std::string::npos) << e;
    // deep but bounded recursion is fine
    EXPECT_EQ(render("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% else %}done{% endif %}{% endmacro %}{{ f(30) }}"), "done");
}

TEST(JinjaLimits, NestingDepthAtParseTime) {
    std::string deep = "{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}";
    EXPECT_NE(error_of(deep).find("TemplateSyntaxError"), std::string::npos);
    std::string chain = "{{ 1";
    for (int i = 0; i < 1000; i++) chain += " + 1";
    chain += " }}";
    EXPECT_NE(error_of(chain).find("nesting too deep"), std::string::npos);
    std::string ifs;
    for (int i = 0; i < 500; i++) ifs += "{% if true %}";
    EXPECT_NE(error_of(ifs).find("TemplateSyntaxError"), std::string::npos);
}

TEST(JinjaLimits, ValueNesting) {
    std::string e = error_of("{% set ns = namespace(v=[]) %}{% for i in range(5000) %}{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v|length }}");
    EXPECT_NE(e.find("value nesting too deep"), std::string::npos) << e;
}

TEST(JinjaLimits, SelfReferenceDoesNotLeakOrLoop) {
    // a namespace holding itself and a macro capturing its scope: freed at the end of the render
    EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = ns %}{% macro m() %}{{ ns.me is defined }}{% endmacro %}{{ m() }}"),
              "True");
    std::string e = error_of("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns }}");
    EXPECT_NE(e.find("TemplateLimitError"), std::string::npos) << e;
}

TEST(JinjaLimits, RangeIsCappedLikeTheSandbox) {
    EXPECT_EQ(error_of("{{ range(200000)|length }}"),
              "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
}

}  // namespace
}  // namespace rotor::jinja
