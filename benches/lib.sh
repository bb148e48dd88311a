# shellcheck shell=bash
# Helpers shared by the benchmark scripts (generations.sh, compression.sh,
# pitr.sh, peers/run.sh, s3/run.sh): logging, timing one step, the
# prefault/settle before it, the generation series of RocksDB checkpoints.
# Sourced, not run. A script sets LOGS (per-step logs), WORK, PREFAULT (1/0)
# and PREFAULT_MB before it calls measure or settle; it may set
# MEASURE_FAILURES=return to get a failing step's status back instead of the
# default exit.

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# Busy CPU time of the whole machine so far, in clock ticks (/proc/stat: user
# nice system irq softirq steal). A step's busy delta minus its own CPU time
# is what other processes (and kernel writeback threads) used meanwhile: the
# machine is shared, and this column says which runs were disturbed.
CLOCK_TICKS=$(getconf CLK_TCK)
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# measure NAME CMD...: runs CMD (stdout to $LOGS/NAME.out, stderr to .err) and
# sets WALL (s, bash's microsecond clock), CPU (user+sys s) and RSS (peak KiB)
# from GNU time, and OTHER (CPU s the rest of the machine used meanwhile).
MEASURE_FAILURES=${MEASURE_FAILURES:-exit}
measure() {
    local name=$1
    shift
    local timing=$LOGS/$name.time started ended user sys busy_before busy_after status=0
    busy_before=$(cpu_busy)
    started=$EPOCHREALTIME
    /usr/bin/time -f '%e %U %S %M' -o "$timing" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err" || status=$?
    ended=$EPOCHREALTIME
    busy_after=$(cpu_busy)
    if [[ $status -ne 0 && $MEASURE_FAILURES != return ]]; then
        echo "error: step $name failed: $*" >&2
        tail -n 20 "$LOGS/$name.err" "$LOGS/$name.out" >&2 || true
        exit 1
    fi
    read -r _ user sys RSS < <(tail -n 1 "$timing")
    [[ $RSS =~ ^[0-9]+$ ]] || RSS=0
    [[ $user =~ ^[0-9.]+$ ]] || user=0
    [[ $sys =~ ^[0-9.]+$ ]] || sys=0
    # awk, not python3: a python3 start costs ~0.15 s on the VM, which the
    # smoke tests pay per step.
    read -r WALL CPU OTHER < <(awk -v s="$started" -v e="$ended" -v u="$user" -v y="$sys" \
        -v b="$busy_before" -v a="$busy_after" -v t="$CLOCK_TICKS" 'BEGIN {
            other = (a - b) / t - (u + y); if (other < 0) other = 0
            printf "%.3f %.2f %.2f\n", e - s, u + y, other }')
    if [[ $status -ne 0 ]]; then
        log "$name: FAILED (status $status): $*"
        tail -n 5 "$LOGS/$name.err" >&2 || true
    else
        log "$name: ${WALL}s wall, ${CPU}s CPU, $((RSS / 1024)) MiB peak RSS, ${OTHER}s CPU of other processes"
    fi
    return "$status"
}

bytes_of() { du -sb "$1" | cut -f1; }

# settle: before a timed step, write back dirty pages and (with PREFAULT=1)
# write and delete a file of PREFAULT_MB, so every step gets the same supply
# of recycled pages (see generations.sh's header).
settle() {
    sync
    if [[ $PREFAULT -eq 1 && ${PREFAULT_MB:-0} -gt 0 ]]; then
        dd if=/dev/zero of="$WORK/prefault" bs=16M count=$(((PREFAULT_MB + 15) / 16)) status=none
        rm -f "$WORK/prefault"
    fi
}

# --- the generation series (peers/run.sh, s3/run.sh) ---------------------------
# A RocksDB of KEYS records, then per generation G: for G >= 2 an overwrite of
# CHURN_KEYS keys (seed G), and an `ldb checkpoint` into CKPT/genG. Two
# sources of records (SERIES_SOURCE, set before series_sizes):
# - dbbench (default): db_bench fillrandom (value_size SERIES_VALUE_SIZE) and
#   db_bench overwrite. Its values repeat one ~1 MiB random buffer, so zstd
#   over multi-MiB blobs finds redundancy real databases do not have.
# - corpus: values are SERIES_VALUE_SIZE-byte slices of real text found on
#   the machine (man pages, /usr/share/doc, ~/.cargo/registry/src, the Rust
#   toolchain's docs: benches/corpus.py), no value repeating another, loaded
#   with `ldb load` in a shuffled key order (seed 1); the churn overwrites
#   CHURN_KEYS keys (seed G) with slices at random offsets of the same text.
#   The text pool is written once to $WORK/corpus-pool.txt.
# Both write SSTs compressed with DATASET (snappy, zstd...). A script calls
# series_sizes once, then series_fill and series_checkpoint; after every timed
# setup step they call the script's `series_recorded STEP GEN BYTES` (its raw
# rows). Each checkpoint appends one row to the NEWBYTES file: DATASET genG
# total_bytes files new_sst new_wal new_other ("new": inode not in the
# previous checkpoint).
SERIES_SOURCE=${SERIES_SOURCE:-dbbench}
SERIES_VALUE_SIZE=400
CORPUS=$(dirname "${BASH_SOURCE[0]}")/corpus.py

# Bytes of snappy SSTs per key (measured): db_bench's values compress to half,
# text to ~0.7.
series_bytes_per_key() { [[ $SERIES_SOURCE == corpus ]] && echo 280 || echo 236; }

# series_sizes SIZE_MB CHURN_PERCENT: sets KEYS and CHURN_KEYS.
series_sizes() {
    case $SERIES_SOURCE in dbbench | corpus) ;; *) die "unknown dataset $SERIES_SOURCE (dbbench or corpus)" ;; esac
    KEYS=$(($1 * 1048576 / $(series_bytes_per_key)))
    CHURN_KEYS=$(python3 -c "import sys; print(max(1, round(int(sys.argv[1]) * float(sys.argv[2]) / 100)))" "$KEYS" "$2")
}

# series_fill DATASET DB: fills DB (snappy or zstd SSTs) with KEYS keys.
series_fill() {
    SERIES_DATASET=$1
    SERIES_FLAGS=(--db="$2" --value_size="$SERIES_VALUE_SIZE" --compression_type="$1" --threads=1)
    if [[ $SERIES_SOURCE == corpus ]]; then
        log "[$1] corpus: text pool of $((KEYS * SERIES_VALUE_SIZE)) bytes, then ldb load of $KEYS keys"
        python3 "$CORPUS" pool "$WORK/corpus-pool.txt" $((KEYS * SERIES_VALUE_SIZE)) || die "corpus.py pool failed"
        # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
        measure "$1-db_fill" bash -c 'set -o pipefail; python3 "$1" fill "$2" "$3" "$4" | ldb --db="$5" load --create_if_missing --compression_type="$6"' \
            _ "$CORPUS" "$WORK/corpus-pool.txt" "$KEYS" "$SERIES_VALUE_SIZE" "$2" "$1" || die "ldb load failed"
    else
        log "[$1] db_bench fillrandom, $KEYS keys"
        measure "$1-db_fill" db_bench "${SERIES_FLAGS[@]}" --benchmarks=fillrandom --use_existing_db=0 \
            --num="$KEYS" --seed=1 || die "db_bench failed"
    fi
    series_recorded db_fill "" ""
}

# series_churn GEN: overwrites CHURN_KEYS keys (seed GEN).
series_churn() {
    local generation=$1 dataset=$SERIES_DATASET db=${SERIES_FLAGS[0]#--db=}
    if [[ $SERIES_SOURCE == corpus ]]; then
        # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
        measure "$dataset-db_churn$generation" bash -c 'set -o pipefail; python3 "$1" churn "$2" "$3" "$4" "$5" "$6" | ldb --db="$7" load --compression_type="$8"' \
            _ "$CORPUS" "$WORK/corpus-pool.txt" "$KEYS" "$SERIES_VALUE_SIZE" "$CHURN_KEYS" "$generation" "$db" "$dataset" ||
            die "ldb load (churn) failed"
    else
        measure "$dataset-db_churn$generation" db_bench "${SERIES_FLAGS[@]}" --benchmarks=overwrite \
            --use_existing_db=1 --num="$CHURN_KEYS" --seed="$generation" || die "db_bench overwrite failed"
    fi
}

# series_checkpoint GEN CKPT NEWBYTES: churn (GEN >= 2), then CKPT/genGEN.
series_checkpoint() {
    local generation=$1 ckpt=$2 dataset=$SERIES_DATASET db
    db=${SERIES_FLAGS[0]#--db=}
    if ((generation > 1)); then
        series_churn "$generation"
        series_recorded churn "gen$generation" ""
    fi
    measure "$dataset-checkpoint$generation" ldb --db="$db" checkpoint --checkpoint_dir="$ckpt/gen$generation" ||
        die "ldb checkpoint failed"
    series_recorded checkpoint "gen$generation" "$(bytes_of "$ckpt/gen$generation")"
    python3 - "$ckpt" "$generation" "$dataset" >>"$3" <<'PY'
import os, sys
ckpt, g, dataset = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def files(d):
    return {n: os.stat(os.path.join(d, n)) for n in os.listdir(d)}
cur = files(os.path.join(ckpt, f"gen{g}"))
prev = {s.st_ino for s in files(os.path.join(ckpt, f"gen{g-1}")).values()} if g > 1 else set()
new = {"sst": 0, "wal": 0, "other": 0}
for n, s in cur.items():
    if s.st_ino in prev:
        continue
    kind = "sst" if n.endswith(".sst") else "wal" if n.endswith(".log") else "other"
    new[kind] += s.st_size
total = sum(s.st_size for s in cur.values())
print(f"{dataset}\tgen{g}\t{total}\t{len(cur)}\t{new['sst']}\t{new['wal']}\t{new['other']}")
PY
}

# series_unique CKPT NEWBYTES: the "unique" row (du -sb of all checkpoints,
# hard links counted once).
series_unique() { printf '%s\tunique\t%s\n' "$SERIES_DATASET" "$(bytes_of "$1")" >>"$2"; }
