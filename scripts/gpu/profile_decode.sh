#!/usr/bin/env bash
# On the GPU machine: where one decode step's time goes at long context. ncu times each kernel of the
# first timed decode step at the given context (ROTOR_BENCH_PROFILE), one sequence; kernel_times.py
# sums them per kernel. Models are random-weight shapes the benchmark writes itself.
#   PROFILES="qwen3.5-27b:q4_0h:114688 llama-3.1-8b:f16:32768" (default); shape:kv:context[:slots]
targets="rotor-bench-cuda"
source "$(dirname "$0")/verify_common.sh"
for p in ${PROFILES:-qwen3.5-27b:q4_0h:114688 llama-3.1-8b:f16:32768}; do
  IFS=: read -r shape kv ctx slots <<<"$p"
  slots=${slots:-1}
  csv=/tmp/ncu-$shape-$kv-$ctx-$slots.csv
  ROTOR_BENCH_PROFILE=1 timeout 300 ncu --profile-from-start off --clock-control none \
    --metrics gpu__time_duration.sum --csv --page raw build-gpu/rotor-bench-cuda --kv "$kv" --shapes "$shape" \
    --no-matvec --batches "$slots" --ctxs "$ctx" --prompts 512 --quick >"$csv" 2>/tmp/ncu.err || status=1
  { echo "## $shape, KV $kv, $slots sequence(s), context $ctx: one decode step under ncu"
    python3 scripts/gpu/kernel_times.py "$csv" | head -n 14 || tail -20 /tmp/ncu.err
    gzip -c "$csv" >"$out/ncu-$shape-$kv-$ctx-$slots.csv.gz"
    echo; } | tee -a "$out/profile_decode.md"
done
exit $status
