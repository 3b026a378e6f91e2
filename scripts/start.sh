#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (apt packages), builds rotor, and starts its OpenAI-compatible
# server on the small model the project ships (models/rotor-kjv-11m, no GPU or network needed):
#   ./scripts/start.sh                      serve the default model on http://127.0.0.1:8080
#   ./scripts/start.sh serve -m M.gguf ...  any rotor command instead (see build/rotor --help)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
if [ $# -eq 0 ]; then
  set -- serve -m models/rotor-kjv-11m/rotor-kjv-11m-q8_0.gguf --host "${ROTOR_HOST:-127.0.0.1}" \
    --port "${ROTOR_PORT:-8080}"
fi
exec build/rotor "$@"
