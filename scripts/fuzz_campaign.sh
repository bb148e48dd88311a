#!/usr/bin/env bash
# The long fuzzing run of docs/reliability.md, counted in CPU time rather than
# wall time (the machine is shared, the fuzzer runs under `nice`, by default
# at 19; LSMVAULT_FUZZ_NICE=0 gives it a fair share beside builds).
#
#   bash scripts/fuzz_campaign.sh CPU_SECONDS TARGET...
#
# Each target runs until its fuzzer process has used CPU_SECONDS of CPU time,
# starting from the checked-in corpus (`fuzz/corpus/TARGET`) plus a working
# corpus kept under $LSMVAULT_FUZZ_WORK (default /var/tmp/lsmvault-fuzz). It
# stops at the first crash, leak, timeout (-timeout=10 s) or allocation above
# 64 MiB. One line per run is appended to fuzz/campaign.tsv:
#   date  target  cpu_seconds  wall_seconds  executions  result
# At the end, inputs that add coverage are merged into fuzz/corpus/TARGET so
# the next campaign (and the stable replay test) starts from them.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
budget=${1:?CPU seconds per target}
shift
work=${LSMVAULT_FUZZ_WORK:-/var/tmp/lsmvault-fuzz}
niceness=${LSMVAULT_FUZZ_NICE:-19}
log=campaign.tsv
[ -f "$log" ] || printf 'date\ttarget\tcpu_seconds\twall_seconds\texecutions\tresult\n' >"$log"

cargo +nightly fuzz build -O >/dev/null 2>&1 || { echo "cargo fuzz build failed" >&2; exit 1; }
binaries=target/x86_64-unknown-linux-gnu/release

for target in "$@"; do
  mkdir -p "$work/$target" "artifacts/$target"
  output="$work/$target.log"
  started=$(date +%s)
  nice -n "$niceness" "$binaries/$target" "$work/$target" "corpus/$target" \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=64 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" >"$output" 2>&1 &
  pid=$!
  cpu=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 10
    # Keep the last sample: a fuzzer stopped from outside (kill -INT) is
    # gone by the next one, and its CPU time must still be logged.
    sample=$(ps -o cputimes= -p "$pid" 2>/dev/null | tr -d ' ')
    cpu=${sample:-$cpu}
    if [ "$cpu" -ge "$budget" ]; then
      kill -INT "$pid"
      break
    fi
  done
  wait "$pid"
  status=$?
  wall=$(( $(date +%s) - started ))
  executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$output" | grep -o '[0-9]*$' | tail -n 1)
  if grep -q 'run interrupted' "$output" && ! ls "artifacts/$target"/* >/dev/null 2>&1; then
    result=ok
  else
    result="FAILED (exit $status): see $output and artifacts/$target/"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$target" "$cpu" "$wall" "${executions:-?}" "$result" >>"$log"
  echo "$target: $cpu CPU s, $wall s wall, ${executions:-?} executions: $result"
  # Keep what found new coverage, so the next campaign starts from it.
  nice -n "$niceness" "$binaries/$target" -merge=1 "corpus/$target" "$work/$target" >/dev/null 2>&1 || true
done
