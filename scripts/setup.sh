#!/usr/bin/env bash
# Installs what rotor needs to build and test on Debian 12, by package name. Safe to re-run: packages
# already present are not fetched again.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git          # toolchain
  ninja-build                                   # CMake's generator (scripts/build.sh)
  libgtest-dev libgmock-dev libbenchmark-dev    # tests and micro-benchmarks
  libpcre2-dev                                  # Unicode regex pre-tokenizers
  nlohmann-json3-dev                            # JSON at the server edge
  libcurl4-openssl-dev                          # rotor pull
  clang libclang-rt-14-dev                      # libFuzzer and sanitizer runtimes
  python3 python3-numpy python3-jinja2          # test oracles (Debian's python, /usr/bin/python3)
  xz-utils ca-certificates
)
# Node.js for the API tests (official openai client): the machine's own if it has one (e.g. Node 20
# from NodeSource, which bundles npm and conflicts with Debian's npm package), else Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi
