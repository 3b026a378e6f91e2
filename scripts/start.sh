#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds rotor and starts it. Arguments go to the rotor program.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
if [ $# -eq 0 ]; then set -- --help; fi
exec build/rotor "$@"
