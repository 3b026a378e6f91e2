#!/usr/bin/env bash
# Configures and builds rotor into build/ (Release). Extra arguments go to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
# Ninja where installed (scripts/setup.sh installs it): it compiles any target's files as soon as a core
# is free, in the order CMakeLists.txt lists them, where make finishes each library before the targets
# that link it begin. A build tree keeps the generator it was first made with.
if [ -z "${CMAKE_GENERATOR:-}" ] && command -v ninja >/dev/null 2>&1; then
  export CMAKE_GENERATOR=Ninja
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$jobs"
