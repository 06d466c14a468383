#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs each fuzz target for a set time over its corpus, and stops at the
# first one that finds a fault (its input is saved as BUILD/crash-<target>-*).
#   fuzz/run.sh BUILD SECONDS [TARGET...]     (default: every target)
# New inputs the fuzzer finds go to BUILD/corpus/<target>/; the seeds in
# fuzz/corpus/<target>/ are only read.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
secs=$2
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(codec records file_store settings ids)

printf '%-12s %12s %10s %8s\n' target execs execs/s seconds
for t in "${targets[@]}"; do
  work="$build/corpus/$t"
  log="$build/fuzz_$t.log"
  mkdir -p "$work"
  if ! "$build/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -max_len=65536 \
       -print_final_stats=1 -artifact_prefix="$build/crash-$t-" "$work" "fuzz/corpus/$t" \
       >"$log" 2>&1; then
    echo "fuzz_$t found a fault; the input is $build/crash-$t-*; the log ends:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
  printf '%-12s %12s %10s %8s\n' "$t" "$execs" "$rate" "$secs"
done
