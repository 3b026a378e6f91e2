// The GPU backend's 0/1 environment switches (common/env_switch.h): unset / empty, 0 and 1 are read, any
// other value is refused with the variable's name, and an EnvSwitch reads once, then follows set().
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "common/env_switch.h"

using namespace rotor;

namespace {
constexpr const char* kVar = "ROTOR_TEST_ENV_SWITCH";
}

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
    for (const char* v : {"2", "yes", "true", "on", " 1", "1 ", "01", "-1", "0x1"}) {
        setenv(kVar, v, 1);
        try {
            env_switch(kVar, 0);
            ADD_FAILURE() << "accepted '" << v << "'";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find(kVar), std::string::npos) << msg;
            EXPECT_NE(msg.find(std::string("'") + v + "'"), std::string::npos) << msg;
        }
    }
    unsetenv(kVar);
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
