#!/usr/bin/env bash
# Live API tests: starts `rotor serve` four times on free loopback ports with the small model, waits
# for /health, runs the node tests (official openai client) against them, and stops the servers on
# exit whatever happens. Builds nothing: needs an already built rotor and tests/api/install.sh run once.
#
#   ROTOR_BIN=build/rotor tests/api/run.sh            (default: build/rotor)
#   ROTOR_MODEL=path.gguf                             (default: the small model in models/)
#   ROTOR_API_THREADS=N                               forward-pass threads per server (default 2)
#   extra arguments go to `node --test` (e.g. --test-name-pattern=metrics)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${ROTOR_BIN:-$root/build/rotor}
model=${ROTOR_MODEL:-$root/models/rotor-kjv-11m/rotor-kjv-11m-q8_0.gguf}
qwen3_template=${ROTOR_QWEN3_TEMPLATE:-$root/../shared/testdata/templates/llama.cpp/Qwen-Qwen3-0.6B.jinja}
gemma4_template=${ROTOR_GEMMA4_TEMPLATE:-$root/../shared/testdata/templates/llama.cpp/google-gemma-4-31B-it.jinja}
threads=${ROTOR_API_THREADS:-2}

case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
[ -x "$bin" ] || { echo "run.sh: $bin is not an executable (build rotor first, or set ROTOR_BIN)" >&2; exit 1; }
[ -f "$model" ] || { echo "run.sh: model $model not found" >&2; exit 1; }
[ -f "$qwen3_template" ] || { echo "run.sh: chat template $qwen3_template not found (set ROTOR_QWEN3_TEMPLATE)" >&2; exit 1; }
[ -f "$gemma4_template" ] || { echo "run.sh: chat template $gemma4_template not found (set ROTOR_GEMMA4_TEMPLATE)" >&2; exit 1; }
command -v node >/dev/null || { echo "run.sh: node not found (Node >= 20 needed)" >&2; exit 1; }
[ -f "$here/node_modules/openai/package.json" ] || { echo "run.sh: run tests/api/install.sh first" >&2; exit 1; }

logs=$(mktemp -d /tmp/rotor-api-tests.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$logs"
}
trap cleanup EXIT INT TERM

key="rotor-test-key-$$"
# start NAME ARGS...: launches a server on port 0 and sets PORT to the port it printed.
start() {
  local name=$1
  shift
  "$bin" serve -m "$model" --host 127.0.0.1 --port 0 --threads "$threads" "$@" >"$logs/$name.log" 2>&1 &
  pids+=($!)
  PORT=""
  for _ in $(seq 1 300); do
    PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$logs/$name.log" | head -n 1)
    [ -n "$PORT" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$PORT" ]; then
    echo "run.sh: server '$name' did not start:" >&2
    cat "$logs/$name.log" >&2
    exit 1
  fi
}
# wait_ready URL: polls /health until 200 (503 while loading).
wait_ready() {
  node -e '
    const url = process.argv[1] + "/health";
    const t0 = Date.now();
    (async () => {
      for (;;) {
        try { if ((await fetch(url)).status === 200) return; } catch {}
        if (Date.now() - t0 > 60000) { console.error("run.sh: " + url + " not ready after 60 s"); process.exit(1); }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();' "$1"
}

start main --slots 8 --ctx-per-slot 1024 --queue 256 --api-key "$key"
main_port=$PORT
start tight --slots 1 --ctx-per-slot 2048 --queue 0
tight_port=$PORT
start qwen3 --slots 2 --ctx-per-slot 1024 --chat-template-file "$qwen3_template"
qwen3_port=$PORT
start gemma4 --slots 2 --ctx-per-slot 1024 --chat-template-file "$gemma4_template"
gemma4_port=$PORT
for p in $main_port $tight_port $qwen3_port $gemma4_port; do wait_ready "http://127.0.0.1:$p"; done

export ROTOR_URL_MAIN="http://127.0.0.1:$main_port"
export ROTOR_URL_TIGHT="http://127.0.0.1:$tight_port"
export ROTOR_URL_QWEN3="http://127.0.0.1:$qwen3_port"
export ROTOR_URL_GEMMA4="http://127.0.0.1:$gemma4_port"
export ROTOR_API_KEY_TEST="$key"
export ROTOR_BIN="$bin" ROTOR_MODEL="$model"
export ROTOR_MODEL_ID
ROTOR_MODEL_ID=$(basename "$model" .gguf)

status=0
(cd "$here" && node --test --test-reporter=spec "$@" api.test.mjs tight.test.mjs templates.test.mjs gemma4.test.mjs) || status=$?
if [ "$status" != 0 ]; then
  for f in "$logs"/*.log; do
    echo "---- $(basename "$f")" >&2
    tail -n 20 "$f" >&2
  done
fi
exit "$status"
