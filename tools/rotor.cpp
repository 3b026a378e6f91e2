// rotor: command-line entry point. Sub-commands register themselves (commands.h) and are found by name.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "commands.h"
#include "common/error.h"

namespace rotor::cli {

namespace {

struct Command {
    std::string name;
    std::string usage;
    CommandFn fn;
};

std::vector<Command>& registry() {
    static std::vector<Command> commands;
    return commands;
}

void usage(FILE* out) {
    auto cmds = registry();
    std::sort(cmds.begin(), cmds.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
    fprintf(out, "usage: rotor COMMAND [ARGS]   (rotor COMMAND --help for details)\n\ncommands:\n");
    for (const auto& c : cmds) fprintf(out, "  %s\n", c.usage.c_str());
}

}  // namespace

CommandRegistrar::CommandRegistrar(const char* name, const char* usage, CommandFn fn) {
    std::string n = name;
    std::replace(n.begin(), n.end(), '_', '-');  // ROTOR_COMMAND(convert_hf, ...) is "convert-hf"
    registry().push_back({n, usage, fn});
}

}  // namespace rotor::cli

int main(int argc, char** argv) {
    using namespace rotor::cli;
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    Args args(argv + 2, argv + argc);
    for (const auto& c : registry()) {
        if (c.name != argv[1]) continue;
        try {
            return c.fn(args);
        } catch (const rotor::Error& e) {
            fprintf(stderr, "rotor %s: error: %s\n", c.name.c_str(), e.what());
            return 1;
        } catch (const std::exception& e) {
            fprintf(stderr, "rotor %s: internal error: %s\n", c.name.c_str(), e.what());
            return 3;
        }
    }
    fprintf(stderr, "rotor: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
