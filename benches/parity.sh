#!/usr/bin/env bash
# The cost of parity: backup time and repository size with parity off and
# with `init --parity SCHEME`, interleaved (off, parity, off, parity, ...)
# so both see the same load on a shared machine.
#
# Each run initialises a fresh plaintext repository, backs up every given
# checkpoint directory in order, and records the wall time of each backup,
# the repository's size, its parity bytes, and, after a `prune` (which
# merges the small parity groups of the backups), its size again.
#
#   benches/generations.sh --size-mb 512 --generations 2 --keep --work /tmp/ckpt-work
#   benches/parity.sh /tmp/ckpt-work/ckpt/gen1 /tmp/ckpt-work/ckpt/gen2
#
# Options (environment): PARITY_SCHEME (default 10+2), PARITY_RUNS (default
# 3 per mode), LSMVAULT_BIN (default target/release/lsmvault). Prints
# Markdown on stdout; progress on stderr. MB = 10^6 bytes.

set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 ]] || { usage; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LSMVAULT=${LSMVAULT_BIN:-$ROOT/target/release/lsmvault}
SCHEME=${PARITY_SCHEME:-10+2}
RUNS=${PARITY_RUNS:-3}
WORK=$(mktemp -d)
LOGS=$WORK/logs
PREFAULT=0
mkdir -p "$LOGS"
trap 'rm -rf "$WORK"' EXIT
unset LSMVAULT_PASSWORD LSMVAULT_PASSWORD_FILE LSMVAULT_REPOSITORY

echo "| mode | run | backup wall s (each checkpoint) | backup CPU s | repo MB | parity MB | repo MB after prune | parity MB after prune | peak RSS MiB (largest backup) |"
echo "|---|---:|---|---|---:|---:|---:|---:|---:|"
for ((run = 1; run <= RUNS; run++)); do
    for mode in off "$SCHEME"; do
        repo=$WORK/repo
        rm -rf "$repo"
        if [[ $mode == off ]]; then
            "$LSMVAULT" --repo "$repo" --quiet init --no-encryption >/dev/null
        else
            "$LSMVAULT" --repo "$repo" --quiet init --no-encryption --parity "$mode" >/dev/null
        fi
        times=()
        cpus=()
        peak=0
        for checkpoint in "$@"; do
            sync
            measure "backup-$mode-$run" "$LSMVAULT" --repo "$repo" --quiet backup "$checkpoint"
            times+=("$WALL")
            cpus+=("$CPU")
            ((RSS > peak)) && peak=$RSS
        done
        size=$(bytes_of "$repo")
        parity=0
        [[ -d $repo/parity ]] && parity=$(bytes_of "$repo/parity")
        "$LSMVAULT" --repo "$repo" --quiet prune >/dev/null
        size_after=$(bytes_of "$repo")
        parity_after=0
        [[ -d $repo/parity ]] && parity_after=$(bytes_of "$repo/parity")
        awk -v m="$mode" -v r="$run" -v t="${times[*]}" -v c="${cpus[*]}" -v s="$size" -v p="$parity" \
            -v sa="$size_after" -v pa="$parity_after" -v k="$peak" 'BEGIN {
                gsub(/ /, ", ", t); gsub(/ /, ", ", c)
                printf "| %s | %d | %s | %s | %.1f | %.1f | %.1f | %.1f | %d |\n",
                    m, r, t, c, s / 1e6, p / 1e6, sa / 1e6, pa / 1e6, k / 1024 }'
    done
done
