// The GPU backend's environment settings (common/env_switch.h): 0/1 switches (unset / empty, 0 and 1 are
// read, any other value is refused with the variable's name; an EnvSwitch reads once, then follows set())
// and whole numbers in a range (env_int).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <utility>

#include "common/env_switch.h"

using namespace rotor;

namespace {
constexpr const char* kVar = "ROTOR_TEST_ENV_SWITCH";

// read(), with kVar set to v, must throw an Error naming the variable and the value.
template <class F>
void expect_refused(const char* v, F read) {
    setenv(kVar, v, 1);
    try {
        read();
        ADD_FAILURE() << "accepted '" << v << "'";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(kVar), std::string::npos) << msg;
        EXPECT_NE(msg.find(std::string("'") + v + "'"), std::string::npos) << msg;
    }
    unsetenv(kVar);
}
}  // namespace

TEST(EnvSwitch, UnsetOrEmptyGivesTheDefault) {
    unsetenv(kVar);
    EXPECT_EQ(env_switch(kVar, 2), 2);
    EXPECT_EQ(env_switch(kVar, 0), 0);
    setenv(kVar, "", 1);
    EXPECT_EQ(env_switch(kVar, 1), 1);
    unsetenv(kVar);
}

TEST(EnvSwitch, ZeroAndOne) {
    setenv(kVar, "0", 1);
    EXPECT_EQ(env_switch(kVar, 1), 0);
    setenv(kVar, "1", 1);
    EXPECT_EQ(env_switch(kVar, 0), 1);
    unsetenv(kVar);
}

TEST(EnvSwitch, AnyOtherValueIsAnErrorNamingTheVariable) {
    for (const char* v : {"2", "yes", "true", "on", " 1", "1 ", "01", "-1", "0x1"})
        expect_refused(v, [] { env_switch(kVar, 0); });
}

TEST(EnvSwitch, ReadsOnceThenFollowsSet) {
    setenv(kVar, "1", 1);
    EnvSwitch s(kVar, 0);
    EXPECT_TRUE(s.on());
    setenv(kVar, "0", 1);  // read already: the first value stays
    EXPECT_TRUE(s.on());
    s.set(false);
    EXPECT_FALSE(s.on());
    s.set(true);
    EXPECT_TRUE(s.on());
    unsetenv(kVar);
    EnvSwitch d(kVar, 0);  // unset: the default
    EXPECT_FALSE(d.on());
    setenv(kVar, "maybe", 1);
    EnvSwitch bad(kVar, 0);
    EXPECT_THROW(bad.on(), Error);
    unsetenv(kVar);
}

TEST(EnvInt, UnsetOrEmptyGivesTheDefaultAndNumbersInRangeAreRead) {
    unsetenv(kVar);
    EXPECT_EQ(env_int(kVar, 50, 0, 100), 50);
    setenv(kVar, "", 1);
    EXPECT_EQ(env_int(kVar, 7, 0, 100), 7);
    for (const auto& [v, n] : {std::pair<const char*, int>{"0", 0}, {"4", 4}, {"16", 16}, {"100", 100}}) {
        setenv(kVar, v, 1);
        EXPECT_EQ(env_int(kVar, 50, 0, 100), n) << v;
    }
    unsetenv(kVar);
}

TEST(EnvInt, OutOfRangeOrNotPlainDigitsIsAnErrorNamingTheVariable) {
    for (const char* v : {"101", "-1", "+3", " 3", "3 ", "03", "3.0", "x", "0x10", "99999999999"})
        expect_refused(v, [] { env_int(kVar, 0, 0, 100); });
    expect_refused("5", [] { env_int(kVar, 0, 0, 4); });  // above a smaller range
}
