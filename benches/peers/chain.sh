#!/usr/bin/env bash
# Restore chains and prune (issues 3/4): one repository of G generations
# (default 20, ~256 MiB database, snappy), then
#   - restore of generation 1 and of generation G, --repeat times alternating
#     (no restore chains: both must take the same time within noise), each
#     checked with diff -r;
#   - `forget --group-by host --keep-last 3 --prune --json`: time, peak RSS,
#     repository bytes before/after;
#   - a fresh repository holding only the last 3 generations, for comparison.
# Timing as in benches/generations.sh (sync + prefault before each timed step).
#
#   benches/peers/chain.sh [--size-mb 256] [--generations 20] [--repeat 3] [--work DIR] [--keep]
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
SIZE_MB=256 GENERATIONS=20 REPEAT=3 WORK="" KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --size-mb) SIZE_MB=$2; shift 2 ;;
        --generations) GENERATIONS=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LSMVAULT=${LSMVAULT_BIN:-$ROOT/target/release/lsmvault}
[[ -n $WORK ]] || WORK=$(mktemp -d /tmp/lsmvault-chain.XXXXXX)
mkdir -p "$WORK/logs" "$WORK/ckpt"
[[ $KEEP -eq 1 ]] || trap 'rm -rf "$WORK"' EXIT
LOGS=$WORK/logs
PREFAULT_MB=$((SIZE_MB * 5 / 4 + 1))
PREFAULT=1
KEYS=$((SIZE_MB * 1048576 / 236)); CHURN=$((KEYS * 75 / 1000))
FLAGS=(--db="$WORK/db" --value_size=400 --compression_type=snappy --threads=1)
db_bench "${FLAGS[@]}" --benchmarks=fillrandom --use_existing_db=0 --num="$KEYS" --seed=1 >/dev/null
R=$WORK/repo
"$LSMVAULT" --repo "$R" --quiet init --no-encryption >/dev/null
echo "| step | wall s | CPU s | peak RSS MiB | note |"
echo "|---|---:|---:|---:|---|"
for ((g = 1; g <= GENERATIONS; g++)); do
    ((g > 1)) && db_bench "${FLAGS[@]}" --benchmarks=overwrite --use_existing_db=1 --num="$CHURN" --seed="$g" >/dev/null
    ldb --db="$WORK/db" checkpoint --checkpoint_dir="$WORK/ckpt/gen$g" >/dev/null
    settle
    measure "backup$g" "$LSMVAULT" --repo "$R" --json --quiet backup "$WORK/ckpt/gen$g" --tag "gen$g"
    echo "| backup gen$g | $WALL | $CPU | $((RSS / 1024)) | checkpoint $(bytes_of "$WORK/ckpt/gen$g") B, repo $(bytes_of "$R") B |"
done
for ((run = 1; run <= REPEAT; run++)); do
    order=(1 "$GENERATIONS"); ((run % 2 == 0)) && order=("$GENERATIONS" 1)
    for g in "${order[@]}"; do
        rm -rf "$WORK/restore"; settle
        measure "restore$g-r$run" "$LSMVAULT" --repo "$R" --json --quiet restore "latest:gen$g" --target "$WORK/restore"
        diff -r "$WORK/ckpt/gen$g" "$WORK/restore" >/dev/null && ok="diff -r identical" || ok="**DIFFERS**"
        echo "| restore gen$g run $run | $WALL | $CPU | $((RSS / 1024)) | $(bytes_of "$WORK/ckpt/gen$g") B, $ok |"
    done
done
rm -rf "$WORK/restore"
before=$(bytes_of "$R")
settle
measure forget "$LSMVAULT" --repo "$R" --json --quiet forget --group-by host --keep-last 3 --prune
echo "| forget --keep-last 3 --prune | $WALL | $CPU | $((RSS / 1024)) | repo $before B -> $(bytes_of "$R") B |"
cp "$LOGS/forget.out" "$WORK/forget.json"
F=$WORK/fresh
"$LSMVAULT" --repo "$F" --quiet init --no-encryption >/dev/null
for ((g = GENERATIONS - 2; g <= GENERATIONS; g++)); do
    "$LSMVAULT" --repo "$F" --json --quiet backup "$WORK/ckpt/gen$g" --tag "gen$g" >/dev/null
done
echo
echo "After prune: $(bytes_of "$R") B; fresh repository of generations $((GENERATIONS - 2))-$GENERATIONS only: $(bytes_of "$F") B; unique bytes of those 3 checkpoints: $(du -sbc "$WORK/ckpt/gen$((GENERATIONS - 2))" "$WORK/ckpt/gen$((GENERATIONS - 1))" "$WORK/ckpt/gen$GENERATIONS" | tail -1 | cut -f1) B"
settle
measure verify_after "$LSMVAULT" --repo "$R" --json --quiet verify --read-data
echo "verify --read-data after prune: $WALL s, findings: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["findings"]))' "$LOGS/verify_after.out")"
echo; echo "forget --prune --json (first 1500 chars):"; echo '```'; head -c 1500 "$WORK/forget.json"; echo; echo '```'
