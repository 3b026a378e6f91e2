#!/usr/bin/env bash
# On the GPU machine: ncu's detailed sections (speed of light, memory, warp stalls, occupancy) for single
# kernels of one decode step. KERNELS="GgmlType.12 GgmlType.14" (regexes on the demangled name; default
# the first q4_K and q6_K kernel-3 launches), SKIP launches of each skipped first (default 6), SHAPE, KV,
# CTX (the context of the profiled step, default 0), SECTIONS (more ncu sections, e.g. "SourceCounters
# InstructionStats ComputeWorkloadAnalysis"), DETAILS=1 (the sections' tables too: stall reasons, pipes),
# METRICS (more metrics, ncu's --metrics syntax, e.g. "regex:sm__inst_executed_pipe_.*pct_of_peak_sustained_active$").
targets="rotor-bench-cuda"
source "$(dirname "$0")/verify_common.sh"
for k in ${KERNELS:-mmvq_direct_kernel.*GgmlType.12 mmvq_direct_kernel.*GgmlType.14}; do
  { echo "## $k (${SHAPE:-qwen3.5-27b}, context ${CTX:-0}, launch $((${SKIP:-6} + 1)))"
    ROTOR_BENCH_PROFILE=1 timeout 240 ncu --profile-from-start off --kernel-name-base demangled -k "regex:$k" --launch-skip "${SKIP:-6}" \
      --launch-count 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
      --section Occupancy --section LaunchStats $(for x in ${SECTIONS:-}; do echo --section "$x"; done) \
      ${DETAILS:+--print-details all} ${METRICS:+--metrics "$METRICS"} build-gpu/rotor-bench-cuda --kv "${KV:-q4_0h}" \
      --shapes "${SHAPE:-qwen3.5-27b}" --no-matvec --batches 1 --ctxs "${CTX:-0}" --prompts 512 --quick 2>&1 |
      grep -vE "^==PROF==|^\| |^GPU|^$" || status=1
  } | tee -a "$out/profile_kernel.txt"
done
exit $status
