// Sub-commands of the rotor program. Each command file registers itself with ROTOR_COMMAND, so adding
// a command never edits a shared file.
#pragma once
#include <string>
#include <vector>

namespace rotor::cli {

using Args = std::vector<std::string>;
using CommandFn = int (*)(const Args& args);

struct CommandRegistrar {
    CommandRegistrar(const char* name, const char* usage, CommandFn fn);
};

}  // namespace rotor::cli

// ROTOR_COMMAND(info, "info FILE   what the file holds", cmd_info); underscores in the name become hyphens.
#define ROTOR_COMMAND(name, usage, fn) \
    static const ::rotor::cli::CommandRegistrar rotor_command_registrar_##name(#name, usage, fn)
