#!/usr/bin/env bash
# WAL archive, point-in-time recovery and live checkpoints (issue 6), measured
# with the real lsmvault CLI against real RocksDB (Debian's db_bench and ldb).
#
# 1. WAL archive overhead. A long-lived `db_bench fillseq` writer on a fresh
#    database (16-byte keys, 400-byte values, a memtable 4x the WAL target so
#    the WAL is never flushed or rotated; key i is written with sequence i + 1)
#    is stopped with SIGSTOP when its WAL segment reaches --wal-mb; then
#    `lsmvault wal archive` stores the whole segment (run 1 into the main
#    repository, runs 2..N each into a fresh scratch repository). A live
#    snapshot (`backup --live`) is taken, then --repeat times the writer is let
#    on (SIGCONT) until the segment grew by --growth-kb, stopped again and the
#    segment archived again: time, `bytes_added` (JSON) and the growth of the
#    repository (`du -sb`) per run. Last, one archive run with nothing new.
# 2. Point-in-time restore vs plain restore. `restore --seq N` (N in the middle
#    of the archived range after the snapshot) against `restore SNAPSHOT` of
#    the same snapshot, --repeat times alternating; every result is opened
#    with `ldb scan` (on a copy: ldb's open writes) and must hold exactly the
#    keys 0..N-1 (PITR) or as many keys as the snapshot's sequence number.
# 3. Write pause of a live checkpoint. A ~--size-mb database (db_bench
#    fillrandom), a rate-limited `db_bench overwrite` writer on it, and
#    --checkpoints runs of `lsmvault checkpoint DB DEST --freeze-cmd 'kill
#    -STOP PID' --thaw-cmd 'kill -CONT PID'` (--json reports the pause),
#    --checkpoint-gap apart. Each checkpoint is checked afterwards on a copy: `ldb
#    checkconsistency`, and `ldb scan` must list between the keys the database
#    had before the writer started and the key space.
#
# Timing as in benches/generations.sh: bash's microsecond clock for wall
# time, GNU time for CPU and peak RSS, medians of repeated runs, `sync` and a
# prefault file (1.25x the largest step's output) before every timed step;
# warm page cache. Prints Markdown on stdout; progress goes to stderr.
# MB = 10^6 bytes.
#
#   benches/pitr.sh                                   # ~1 GiB database, 64 MiB WAL
#   benches/pitr.sh --size-mb 8 --wal-mb 2 --growth-kb 256 --repeat 1 --checkpoints 1  # smoke test
#
# Options (environment variables in brackets):
#   --size-mb N        size of the checkpointed database (part 3) [LSMVAULT_BENCH_SIZE_MB, 1024]
#   --wal-mb N         WAL segment size at the first archive [LSMVAULT_BENCH_WAL_MB, 64]
#   --growth-kb N      WAL growth between two archive runs [LSMVAULT_BENCH_GROWTH_KB, 1024]
#   --repeat N         runs of the archives and restores [LSMVAULT_BENCH_REPEAT, 3]
#   --checkpoints N    live checkpoints under the writer [LSMVAULT_BENCH_CHECKPOINTS, 5]
#   --wal-rate-mb N    write rate limit of the WAL writer, MB/s; 0: none [0]
#                      (RocksDB's rate limiter grants a period's bytes in one
#                      burst, which would overshoot --growth-kb)
#   --writer-rate-mb N write rate limit of the writer under checkpoint, MB/s [8]
#   --checkpoint-gap S seconds between two checkpoints (and before the first) [2]
#   --work DIR         work directory (absent or empty); default: mktemp under /tmp
#   --keep             keep the work directory (default: remove it at the end)
#   --no-build         use the existing target/release/lsmvault (or LSMVAULT_BIN)
#   --no-prefault      skip the prefault file before each timed step
#
# LSMVAULT_BIN: a prebuilt binary to use instead of target/release/lsmvault.
# Requires db_bench and ldb (Debian: rocksdb-tools), python3, GNU time.

set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MB=${LSMVAULT_BENCH_SIZE_MB:-1024}
WAL_MB=${LSMVAULT_BENCH_WAL_MB:-64}
GROWTH_KB=${LSMVAULT_BENCH_GROWTH_KB:-1024}
REPEAT=${LSMVAULT_BENCH_REPEAT:-3}
CHECKPOINTS=${LSMVAULT_BENCH_CHECKPOINTS:-5}
WAL_RATE_MB=0
CHECKPOINT_GAP=2
WRITER_RATE_MB=8
WORK=""
KEEP=0
BUILD=1
PREFAULT=1
VALUE_SIZE=400
# On-disk bytes per db_bench key (16-byte keys, 400-byte values, snappy), as
# in generations.sh.
BYTES_PER_KEY=236


while [[ $# -gt 0 ]]; do
    case "$1" in
        --size-mb) SIZE_MB=$2; shift 2 ;;
        --size-mb=*) SIZE_MB=${1#*=}; shift ;;
        --wal-mb) WAL_MB=$2; shift 2 ;;
        --wal-mb=*) WAL_MB=${1#*=}; shift ;;
        --growth-kb) GROWTH_KB=$2; shift 2 ;;
        --growth-kb=*) GROWTH_KB=${1#*=}; shift ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --repeat=*) REPEAT=${1#*=}; shift ;;
        --checkpoints) CHECKPOINTS=$2; shift 2 ;;
        --checkpoints=*) CHECKPOINTS=${1#*=}; shift ;;
        --wal-rate-mb) WAL_RATE_MB=$2; shift 2 ;;
        --wal-rate-mb=*) WAL_RATE_MB=${1#*=}; shift ;;
        --writer-rate-mb) WRITER_RATE_MB=$2; shift 2 ;;
        --writer-rate-mb=*) WRITER_RATE_MB=${1#*=}; shift ;;
        --checkpoint-gap) CHECKPOINT_GAP=$2; shift 2 ;;
        --checkpoint-gap=*) CHECKPOINT_GAP=${1#*=}; shift ;;
        --work) WORK=$2; shift 2 ;;
        --work=*) WORK=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --no-prefault) PREFAULT=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

for option in SIZE_MB WAL_MB GROWTH_KB REPEAT CHECKPOINTS WRITER_RATE_MB; do
    value=${!option}
    [[ $value =~ ^[0-9]+$ && $value -ge 1 ]] ||
        { echo "--$(tr 'A-Z_' 'a-z-' <<<"$option") must be a positive integer" >&2; exit 2; }
done
[[ $WAL_RATE_MB =~ ^[0-9]+$ ]] || { echo "--wal-rate-mb must be an integer" >&2; exit 2; }
[[ $CHECKPOINT_GAP =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "--checkpoint-gap must be a number" >&2; exit 2; }


ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LSMVAULT=${LSMVAULT_BIN:-$ROOT/target/release/lsmvault}

for tool in db_bench ldb python3 du; do
    command -v "$tool" >/dev/null || die "$tool not found (db_bench/ldb: apt-get install rocksdb-tools)"
done
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required for CPU time and peak RSS (apt-get install time)"

if [[ -z $WORK ]]; then
    WORK=$(mktemp -d /tmp/lsmvault-pitr.XXXXXX)
else
    mkdir -p "$WORK"
    [[ -z $(ls -A "$WORK") ]] || die "--work $WORK is not empty"
    WORK=$(cd "$WORK" && pwd)
fi

# Writers started in the background; stopped and killed whatever happens.
WRITERS=()
stop_writer() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local status=$?
    for pid in "${WRITERS[@]}"; do stop_writer "$pid"; done
    if [[ $KEEP -eq 1 ]]; then
        log "kept work directory $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT

LOGS=$WORK/logs
RESULTS=$WORK/results.tsv
mkdir -p "$LOGS"
: >"$RESULTS"

# --- measurement (helpers in benches/lib.sh) ---------------------------------

# record PART NAME [KEY=VALUE...]: one result row (after measure): the part,
# the step name, wall, CPU, RSS, other CPU, then free-form fields.
record() {
    local part=$1 name=$2
    shift 2
    local IFS=$'\t'
    printf '%s\t%s\twall=%s\tcpu=%s\trss=%s\tother=%s\t%s\n' "$part" "$name" "$WALL" "$CPU" "$RSS" "$OTHER" "$*" >>"$RESULTS"
}

# json FILE SEGMENT EXPR...: evaluates Python expressions over the JSON
# document `d` (and `s`, the entry of d["segments"] named SEGMENT, if any) and
# prints their values separated by tabs (one python3 start per call).
json() {
    python3 - "$@" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
s = next((x for x in d.get("segments", []) if x.get("file_name") == sys.argv[2]), None) if isinstance(d, dict) else None
print("\t".join(str(eval(expression)) for expression in sys.argv[3:]))
EOF
}


# Prefault (see generations.sh): 1.25x the largest output of a timed step, the
# WAL segment (restores) or the active WAL copied by a checkpoint (<= the
# default 64 MiB memtable).
PREFAULT_MB=$(((WAL_MB > 64 ? WAL_MB : 64) * 5 / 4 + 1))

# wal_wait PID DIR BYTES [cont]: (with `cont`: sends PID SIGCONT first, from
# the poller, so its start-up does not count) waits until the newest *.log of
# DIR holds at least BYTES, sends PID SIGSTOP, waits until every thread of PID
# is stopped and prints the segment's size then.
wal_wait() {
    python3 - "$@" <<'EOF'
import glob, os, signal, sys, time

pid, directory, wanted = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 600
if sys.argv[4:] == ["cont"]:
    os.kill(pid, signal.SIGCONT)

def newest():
    logs = sorted(glob.glob(os.path.join(directory, "*.log")))
    return logs[-1] if logs else None

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

while True:
    segment = newest()
    try:
        size = os.stat(segment).st_size if segment else 0
    except FileNotFoundError:
        # The writer rotated its WAL and deleted this segment between the
        # listing and the stat (seen under load): look again.
        size = 0
    if size >= wanted:
        os.kill(pid, signal.SIGSTOP)
        break
    if not alive():
        sys.exit(f"the writer {pid} exited before its WAL reached {wanted} bytes")
    if time.monotonic() > deadline:
        sys.exit(f"timeout waiting for the WAL to reach {wanted} bytes")
    time.sleep(0.001)

def stopped():
    for task in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            with open(task) as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                    return False
        except FileNotFoundError:
            pass
    return True

while not stopped():
    time.sleep(0.001)
print(os.stat(newest()).st_size)
EOF
}

# scan_copy DIR: copies DIR (SSTs hard-linked, every other file copied: ldb's
# open writes a MANIFEST, a LOG and may flush the WAL), checks it with `ldb
# checkconsistency`, and sets KEYS_FOUND and LAST_KEY (hex) from `ldb scan`.
scan_copy() {
    local source=$1 copy=$WORK/scan-copy file
    rm -rf "$copy"
    cp -al "$source" "$copy"
    while IFS= read -r -d '' file; do
        rm -f "$file"
        cp -p "$source/${file#"$copy"/}" "$file"
    done < <(find "$copy" -type f ! -name '*.sst' -print0)
    ldb --db="$copy" checkconsistency >"$LOGS/scan-consistency.out" 2>&1 ||
        die "ldb checkconsistency failed on a copy of $source: $(tail -n 3 "$LOGS/scan-consistency.out")"
    ldb --db="$copy" scan --no_value --hex >"$LOGS/scan.out" 2>"$LOGS/scan.err" ||
        die "ldb scan failed on a copy of $source: $(tail -n 3 "$LOGS/scan.err")"
    KEYS_FOUND=$(wc -l <"$LOGS/scan.out")
    LAST_KEY=$(tail -n 1 "$LOGS/scan.out")
    rm -rf "$copy" "$LOGS/scan.out"
}
# The integer in the first 8 bytes of a db_bench key printed by `ldb --hex`.
key_int() { echo $((16#${1:2:16})); }

CHECKS=()
check() { # check DESCRIPTION: a check that passed (failures die)
    CHECKS+=("$1")
    log "check: $1"
}

# --- build -------------------------------------------------------------------

if [[ $BUILD -eq 1 ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x $LSMVAULT ]] || die "$LSMVAULT missing (run without --no-build, or set LSMVAULT_BIN)"
unset LSMVAULT_PASSWORD LSMVAULT_PASSWORD_FILE LSMVAULT_REPOSITORY
INIT_ARGS=()
"$LSMVAULT" init --help | grep -q -- --no-encryption && INIT_ARGS=(--no-encryption)
LV=("$LSMVAULT" --json --quiet)

WAL_BYTES=$((WAL_MB * 1048576))
GROWTH_BYTES=$((GROWTH_KB * 1024))
log "work directory $WORK; WAL ${WAL_MB} MiB + $REPEAT x ${GROWTH_KB} KiB; checkpointed database ~$SIZE_MB MiB, $CHECKPOINTS checkpoint(s)"

# --- 1. WAL archive ----------------------------------------------------------

PDB=$WORK/wal-db
REPO=$WORK/repo
"${LV[@]}" --repo "$REPO" init "${INIT_ARGS[@]}" >"$LOGS/init.out"
# ~439 WAL bytes per write: enough keys that the writer never finishes.
WAL_KEYS=$(((WAL_BYTES + GROWTH_BYTES * (REPEAT + 2)) / 400 * 4 + 100000))
# The writer starts stopped (the shell stops itself, then execs db_bench under
# the same pid) and the poller lets it go: no write happens before the poller
# watches.
bash -c 'kill -STOP $$; exec "$@"' db_bench db_bench --db="$PDB" --benchmarks=fillseq --num="$WAL_KEYS" \
    --key_size=16 --value_size="$VALUE_SIZE" --compression_type=snappy --threads=1 \
    --write_buffer_size=$((WAL_BYTES * 4 + 64 * 1048576)) --max_write_buffer_number=2 --disable_auto_compactions=1 \
    --benchmark_write_rate_limit=$((WAL_RATE_MB * 1000000)) >"$LOGS/wal-writer.out" 2>&1 &
WAL_WRITER=$!
WRITERS+=("$WAL_WRITER")
until [[ $(cut -d ' ' -f 3 "/proc/$WAL_WRITER/stat" 2>/dev/null) == T ]]; do
    kill -0 "$WAL_WRITER" 2>/dev/null || die "the WAL writer did not start (see $LOGS/wal-writer.out)"
    sleep 0.01
done
log "WAL writer: db_bench fillseq, pid $WAL_WRITER, rate limit $WAL_RATE_MB MB/s (0: none)"

SEGMENT_SIZE=$(wal_wait "$WAL_WRITER" "$PDB" "$WAL_BYTES" cont) || die "WAL writer: see $LOGS/wal-writer.out"
SEGMENT=$(basename "$(find "$PDB" -maxdepth 1 -name '*.log' | sort | tail -n 1)")
log "WAL $SEGMENT at $SEGMENT_SIZE bytes, writer stopped"
for ((run = 1; run <= REPEAT; run++)); do
    repo=$REPO
    if ((run > 1)); then
        repo=$WORK/repo-scratch
        rm -rf "$repo"
        "${LV[@]}" --repo "$repo" init "${INIT_ARGS[@]}" >/dev/null
    fi
    before=$(bytes_of "$repo")
    settle
    measure "archive_full_run$run" "${LV[@]}" --repo "$repo" wal archive "$PDB"
    out=$LOGS/archive_full_run$run.out
    IFS=$'\t' read -r status added stored < <(json "$out" "$SEGMENT" 's["status"]' 'd["bytes_added"]' 'd["bytes_stored"]')
    [[ $status == new ]] || die "archive run $run: $SEGMENT not archived as new (see $out)"
    record wal archive_full "run=$run" "segment=$SEGMENT_SIZE" "growth=$SEGMENT_SIZE" "added=$added" "stored=$stored" \
        "repo_delta=$(($(bytes_of "$repo") - before))" "repo=$([[ $run -eq 1 ]] && echo main || echo fresh)"
    if ((run > 1)); then rm -rf "$repo"; fi
done
check "first archive stored $SEGMENT ($SEGMENT_SIZE bytes) as a new segment"

# The snapshot the restores start from: a live checkpoint (the writer is
# stopped already: no freeze command needed) backed up.
settle
measure backup_live "${LV[@]}" --repo "$REPO" backup --live "$PDB"
IFS=$'\t' read -r SNAPSHOT SNAPSHOT_SEQUENCE < <(json "$LOGS/backup_live.out" - 'd["id"]' 'd["snapshot"]["database"]["last_sequence"]')
log "snapshot ${SNAPSHOT:0:12} at sequence $SNAPSHOT_SEQUENCE"

previous=$SEGMENT_SIZE
for ((run = 1; run <= REPEAT; run++)); do
    size=$(wal_wait "$WAL_WRITER" "$PDB" $((previous + GROWTH_BYTES)) cont) || die "WAL writer: see $LOGS/wal-writer.out"
    before=$(bytes_of "$REPO")
    settle
    measure "archive_grown_run$run" "${LV[@]}" --repo "$REPO" wal archive "$PDB"
    out=$LOGS/archive_grown_run$run.out
    IFS=$'\t' read -r status archived added stored LAST_SEQUENCE < <(json "$out" "$SEGMENT" \
        's["status"]' 's["size"]' 'd["bytes_added"]' 'd["bytes_stored"]' 's["last_sequence"]')
    [[ $status == grown ]] || die "archive run $run after growth: $SEGMENT not archived as grown (see $out)"
    [[ $archived == "$size" ]] || die "archive run $run: archived size differs from the segment's $size bytes (see $out)"
    record wal archive_grown "run=$run" "segment=$size" "growth=$((size - previous))" "added=$added" "stored=$stored" \
        "repo_delta=$(($(bytes_of "$REPO") - before))" "repo=main"
    previous=$size
done
check "$REPEAT archive run(s) after growth stored $SEGMENT as grown"

before=$(bytes_of "$REPO")
settle
measure archive_unchanged "${LV[@]}" --repo "$REPO" wal archive "$PDB"
IFS=$'\t' read -r added stored < <(json "$LOGS/archive_unchanged.out" - 'd["bytes_added"]' 'd["bytes_stored"]')
[[ $added == 0 ]] || die "an unchanged WAL added bytes (see $LOGS/archive_unchanged.out)"
record wal archive_unchanged "run=1" "segment=$previous" "growth=0" "added=0" \
    "stored=$stored" "repo_delta=$(($(bytes_of "$REPO") - before))" "repo=main"
check "an archive run with nothing new added 0 bytes"
stop_writer "$WAL_WRITER"
WRITERS=()

# --- 2. point-in-time restore vs plain restore -------------------------------

# The middle of the archived range after the snapshot (the snapshot follows
# the first archive, so N lies in the growth archived afterwards).
TARGET_SEQUENCE=$((SNAPSHOT_SEQUENCE + (LAST_SEQUENCE - SNAPSHOT_SEQUENCE) / 2))
((TARGET_SEQUENCE > SNAPSHOT_SEQUENCE)) || die "nothing archived after the snapshot"
log "restores: snapshot at $SNAPSHOT_SEQUENCE, PITR target $TARGET_SEQUENCE, archive ends at $LAST_SEQUENCE"
restore_plain() {
    local run=$1 target=$WORK/restore
    rm -rf "$target"
    settle
    measure "restore_plain_run$run" "${LV[@]}" --repo "$REPO" restore "$SNAPSHOT" --target "$target"
    scan_copy "$target"
    [[ $KEYS_FOUND -eq $SNAPSHOT_SEQUENCE ]] ||
        die "plain restore run $run: ldb scan lists $KEYS_FOUND keys, the snapshot's sequence is $SNAPSHOT_SEQUENCE"
    record restore plain "run=$run" "bytes=$(bytes_of "$target")" "sequence=$SNAPSHOT_SEQUENCE" "keys=$KEYS_FOUND"
    rm -rf "$target"
}
restore_pitr() {
    local run=$1 target=$WORK/restore out snapshot restored wal
    rm -rf "$target"
    settle
    measure "restore_pitr_run$run" "${LV[@]}" --repo "$REPO" restore --seq "$TARGET_SEQUENCE" --target "$target"
    out=$LOGS/restore_pitr_run$run.out
    IFS=$'\t' read -r snapshot restored wal < <(json "$out" - 'd["snapshot"]' 'd["restored_sequence"]' 'sum(x["bytes"] for x in d["segments"])')
    [[ $snapshot == "$SNAPSHOT" ]] || die "PITR run $run did not start from snapshot $SNAPSHOT (see $out)"
    [[ $restored == "$TARGET_SEQUENCE" ]] || die "PITR run $run restored another sequence (see $out)"
    scan_copy "$target"
    [[ $KEYS_FOUND -eq $TARGET_SEQUENCE && $(key_int "$LAST_KEY") -eq $((TARGET_SEQUENCE - 1)) ]] ||
        die "PITR run $run: ldb scan lists $KEYS_FOUND keys up to $LAST_KEY; sequence $TARGET_SEQUENCE means keys 0..$((TARGET_SEQUENCE - 1))"
    record restore pitr "run=$run" "bytes=$(bytes_of "$target")" "sequence=$TARGET_SEQUENCE" "keys=$KEYS_FOUND" \
        "wal=$wal"
    rm -rf "$target"
}
for ((run = 1; run <= REPEAT; run++)); do
    if ((run % 2 == 1)); then
        restore_plain "$run"
        restore_pitr "$run"
    else
        restore_pitr "$run"
        restore_plain "$run"
    fi
done
check "every plain restore opens with ldb and holds the snapshot's $SNAPSHOT_SEQUENCE keys"
check "every PITR restore (--seq $TARGET_SEQUENCE) opens with ldb and holds exactly keys 0..$((TARGET_SEQUENCE - 1))"
rm -rf "$PDB"

# --- 3. live checkpoint under a writer ----------------------------------------

DB=$WORK/db
KEYS=$((SIZE_MB * 1048576 / BYTES_PER_KEY))
DB_BENCH_FLAGS=(--db="$DB" --value_size="$VALUE_SIZE" --compression_type=snappy --threads=1 --num="$KEYS")
measure db_fill db_bench "${DB_BENCH_FLAGS[@]}" --benchmarks=fillrandom --use_existing_db=0 --seed=1
record setup db_fill "keys=$KEYS" "bytes=$(bytes_of "$DB")"
measure db_scan ldb --db="$DB" scan --no_value --hex
BASE_KEYS=$(wc -l <"$LOGS/db_scan.out")
rm -f "$LOGS/db_scan.out"
record setup db_scan "keys=$BASE_KEYS"
log "database: $(bytes_of "$DB") bytes, $BASE_KEYS distinct keys of $KEYS"

db_bench "${DB_BENCH_FLAGS[@]}" --benchmarks=overwrite --use_existing_db=1 --duration=3600 --seed=2 \
    --benchmark_write_rate_limit=$((WRITER_RATE_MB * 1000000)) >"$LOGS/writer.out" 2>&1 &
WRITER=$!
WRITERS+=("$WRITER")
log "writer: db_bench overwrite, pid $WRITER, rate limit $WRITER_RATE_MB MB/s"
mkdir -p "$WORK/checkpoints"
for ((run = 1; run <= CHECKPOINTS; run++)); do
    sleep "$CHECKPOINT_GAP"
    kill -0 "$WRITER" 2>/dev/null || die "the writer exited (see $LOGS/writer.out)"
    settle
    measure "checkpoint_run$run" "${LV[@]}" checkpoint "$DB" "$WORK/checkpoints/c$run" \
        --freeze-cmd "kill -STOP $WRITER" --thaw-cmd "kill -CONT $WRITER"
    out=$LOGS/checkpoint_run$run.out
    IFS=$'\t' read -r pause linked copied bytes_copied < <(json "$out" - 'd["pause_seconds"]' 'd["linked"]' 'd["copied"]' 'd["bytes_copied"]')
    record checkpoint live "run=$run" "pause=$pause" "linked=$linked" "copied=$copied" "bytes_copied=$bytes_copied" \
        "bytes=$(bytes_of "$WORK/checkpoints/c$run")" "wal=$(find "$WORK/checkpoints/c$run" -maxdepth 1 -name '*.log' -printf '%s\n' | sort -n | tail -n 1)"
done
kill -0 "$WRITER" 2>/dev/null || die "the writer exited during the checkpoints (see $LOGS/writer.out)"
stop_writer "$WRITER"
WRITERS=()
for ((run = 1; run <= CHECKPOINTS; run++)); do
    scan_copy "$WORK/checkpoints/c$run"
    ((KEYS_FOUND >= BASE_KEYS && KEYS_FOUND <= KEYS)) ||
        die "checkpoint $run: ldb scan lists $KEYS_FOUND keys, expected $BASE_KEYS..$KEYS"
    printf 'checkpoint\tscan\trun=%s\tkeys=%s\n' "$run" "$KEYS_FOUND" >>"$RESULTS"
    rm -rf "$WORK/checkpoints/c$run"
done
check "every checkpoint passes ldb checkconsistency and ldb scan lists $BASE_KEYS..$KEYS keys"

# --- report ------------------------------------------------------------------

echo "## lsmvault WAL archive, point-in-time recovery and live checkpoint benchmark"
echo
if [[ -n ${LSMVAULT_BIN:-} ]]; then
    built="prebuilt LSMVAULT_BIN=$LSMVAULT (checkout now at git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
else
    built="git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/')"
fi
echo "- lsmvault: $("$LSMVAULT" --version), $built; repository plaintext (\`init ${INIT_ARGS[*]}\`), compression auto; $(db_bench --version 2>&1 | head -n 1)"
echo "- WAL: db_bench fillseq on a fresh database (16-byte keys, $VALUE_SIZE-byte values, rate limit $([[ $WAL_RATE_MB -gt 0 ]] && echo "$WAL_RATE_MB MB/s" || echo none), memtable larger than the WAL), stopped with SIGSTOP at >= $WAL_MB MiB, then $REPEAT time(s) let on for >= $GROWTH_KB KiB"
echo "- checkpointed database: ~$SIZE_MB MiB target, $KEYS keys (db_bench fillrandom, snappy), $BASE_KEYS distinct; writer db_bench overwrite (default 64 MiB memtable), rate limit $WRITER_RATE_MB MB/s; $CHECKPOINTS checkpoint(s), $CHECKPOINT_GAP s apart"
echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r); warm page cache; before each timed step: \`sync\`$([[ $PREFAULT -eq 1 ]] && echo " and a $PREFAULT_MB MiB prefault file written and deleted")"
echo "- MB = 10^6 bytes; repeated steps: medians; other CPU s = CPU time the rest of the machine used during the step (shared machine)"
echo
python3 - "$RESULTS" "$SNAPSHOT_SEQUENCE" "$TARGET_SEQUENCE" "$LAST_SEQUENCE" <<'EOF'
import statistics, sys

rows = []
for line in open(sys.argv[1]):
    part, name, *fields = line.rstrip("\n").split("\t")
    row = dict(part=part, name=name)
    for field in fields:
        key, _, value = field.partition("=")
        try:
            row[key] = float(value) if "." in value else int(value)
        except ValueError:
            row[key] = value
    rows.append(row)
snapshot_sequence, target_sequence, last_sequence = map(int, sys.argv[2:5])

def select(part, name):
    return [r for r in rows if r["part"] == part and r["name"] == name]

median = lambda values: statistics.median(values) if values else float("nan")
mb = lambda b: f"{b / 1e6:.2f}"

print("### WAL archive (`lsmvault wal archive`)\n")
print("| step | run | repository | wall s | CPU s | peak RSS MiB | segment B | growth B | bytes_added B | bytes_stored B | repo du delta B | other CPU s |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
labels = {"archive_full": "first archive (whole segment)", "archive_grown": "archive after growth", "archive_unchanged": "archive, nothing new"}
for name in labels:
    for r in select("wal", name):
        print(f"| {labels[name]} | {r['run']} | {r['repo']} | {r['wall']:.3f} | {r['cpu']:.2f} | {r['rss'] // 1024} | {r['segment']} | {r['growth']} | "
              f"{r['added']} | {r['stored']} | {r['repo_delta']} | {r['other']:.2f} |")
full, grown = select("wal", "archive_full"), select("wal", "archive_grown")
print("\nMedians: first archive of a {} MB segment {:.3f} s ({:.0f} MB/s); archive after {:.0f} B of growth {:.3f} s, "
      "bytes_added {:.0f} B ({:.3f}x the growth), repository +{:.0f} B ({:.3f}x the growth).".format(
          mb(full[0]["segment"]), median([r["wall"] for r in full]),
          full[0]["segment"] / 1e6 / median([r["wall"] for r in full]),
          median([r["growth"] for r in grown]), median([r["wall"] for r in grown]),
          median([r["added"] for r in grown]), median([r["added"] / r["growth"] for r in grown]),
          median([r["repo_delta"] for r in grown]), median([r["repo_delta"] / r["growth"] for r in grown])))

print("\n### Point-in-time restore vs plain restore (`restore --seq N` vs `restore SNAPSHOT`)\n")
print(f"Snapshot at sequence {snapshot_sequence} (taken after the first archive); archive ends at {last_sequence}; PITR target N = {target_sequence}.\n")
print("| restore | run | wall s | CPU s | peak RSS MiB | restored B | WAL written B | MB/s | keys (ldb scan) | other CPU s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
restores = [r for r in rows if r["part"] == "restore"]
for r in restores:
    label = "plain `restore SNAPSHOT`" if r["name"] == "plain" else f"PITR `restore --seq {r['sequence']}`"
    print(f"| {label} | {r['run']} | {r['wall']:.3f} | {r['cpu']:.2f} | {r['rss'] // 1024} | {r['bytes']} | {r.get('wal', '')} | "
          f"{r['bytes'] / 1e6 / r['wall']:.0f} | {r['keys']} | {r['other']:.2f} |")
plain, pitr = select("restore", "plain"), select("restore", "pitr")
mp, mt = median([r["wall"] for r in plain]), median([r["wall"] for r in pitr])
print(f"\nMedians: plain {mp:.3f} s ({plain[0]['bytes'] / 1e6 / mp:.0f} MB/s), PITR {mt:.3f} s "
      f"({pitr[0]['bytes'] / 1e6 / mt:.0f} MB/s); PITR / plain = {mt / mp:.2f}x.")

print("\n### Live checkpoint under a writer (`lsmvault checkpoint --freeze-cmd 'kill -STOP PID' --thaw-cmd 'kill -CONT PID'`)\n")
print("| run | pause ms | checkpoint wall s | CPU s | peak RSS MiB | linked | copied | bytes copied | active WAL B | checkpoint B | keys (ldb scan of a copy) | other CPU s |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
scans = {r["run"]: r["keys"] for r in select("checkpoint", "scan")}
live = select("checkpoint", "live")
for r in live:
    print(f"| {r['run']} | {r['pause'] * 1000:.1f} | {r['wall']:.3f} | {r['cpu']:.2f} | {r['rss'] // 1024} | {r['linked']} | {r['copied']} | "
          f"{r['bytes_copied']} | {r['wal']} | {r['bytes']} | {scans.get(r['run'], '')} | {r['other']:.2f} |")
print(f"\nMedians: pause {median([r['pause'] for r in live]) * 1000:.1f} ms (max {max(r['pause'] for r in live) * 1000:.1f} ms), "
      f"checkpoint wall {median([r['wall'] for r in live]):.3f} s, bytes copied {median([r['bytes_copied'] for r in live]) / 1e6:.1f} MB.")

setup = [r for r in rows if r["part"] == "setup"]
print("\nSetup (not lsmvault): " + "; ".join(
    f"{r['name']} {r['wall']:.1f} s" + (f" ({r['bytes'] / 1e6:.0f} MB)" if "bytes" in r else "") for r in setup) + ".")
EOF
echo
echo "### Checks"
echo
for line in "${CHECKS[@]}"; do echo "- $line"; done
echo
echo "all checks passed"
