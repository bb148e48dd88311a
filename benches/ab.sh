#!/usr/bin/env bash
# Interleaved A/B of two lsmvault builds on one checkpoint: backup into a fresh
# repository, restore, verify --read-data; the builds alternate run by run, so
# both see the same machine state. Prints median (min-max) wall, user and system
# seconds, peak RSS and minor page faults per build and command (GNU time).
#
#   benches/ab.sh BASELINE_BIN NEW_BIN CHECKPOINT_DIR [RUNS]     (RUNS: default 8)
#
# Used for the before/after table of the restructure in docs/benchmarks.md.
set -euo pipefail
[[ $# -ge 3 ]] || { sed -n '2,8p' "$0"; exit 2; }
declare -A BIN=([baseline]=$1 [new]=$2)
SOURCE=$3
RUNS=${4:-8}
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/lsmvault-ab.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
TIMES=$WORK/times

timed() { # LABEL BUILD COMMAND...
    local label=$1 build=$2
    shift 2
    sync
    /usr/bin/time -f "$label $build %e %U %S %M %R" "$@" >/dev/null 2>>"$TIMES"
}

"${BIN[new]}" --repo "$WORK/repo" --quiet init --no-encryption >/dev/null
"${BIN[new]}" --repo "$WORK/repo" --quiet backup "$SOURCE" >/dev/null
for ((run = 1; run <= RUNS; run++)); do
    for build in baseline new; do
        lsmvault=${BIN[$build]}
        rm -rf "$WORK/fresh" "$WORK/restored"
        "$lsmvault" --repo "$WORK/fresh" --quiet init --no-encryption >/dev/null
        timed backup "$build" "$lsmvault" --repo "$WORK/fresh" --quiet backup "$SOURCE"
        timed restore "$build" "$lsmvault" --repo "$WORK/repo" --quiet restore latest --target "$WORK/restored"
        timed verify "$build" "$lsmvault" --repo "$WORK/repo" --quiet verify --read-data
    done
done

python3 - "$TIMES" <<'EOF'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, build, *values = line.split()
    rows[(label, build)].append([float(value) for value in values])
print("| command | build | runs | wall s median (min-max) | user s | sys s | peak RSS MiB | minor faults |")
print("|---|---|---:|---|---:|---:|---:|---:|")
for (label, build), values in sorted(rows.items()):
    column = lambda index: [value[index] for value in values]
    print(f"| {label} | {build} | {len(values)} | {statistics.median(column(0)):.3f} "
          f"({min(column(0)):.2f}-{max(column(0)):.2f}) | {statistics.median(column(1)):.2f} | "
          f"{statistics.median(column(2)):.2f} | {statistics.median(column(3)) / 1024:.0f} | "
          f"{statistics.median(column(4)):.0f} |")
EOF
