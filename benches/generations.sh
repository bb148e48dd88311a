#!/usr/bin/env bash
# End-to-end benchmark of lsmvault on churned RocksDB checkpoints.
#
# Builds a RocksDB with db_bench, takes G generations (a random overwrite of
# ~7.5% of the keys between two `ldb checkpoint`s), backs every checkpoint up
# in order into one fresh repository, backs the newest one up again unchanged,
# restores the newest and the oldest generation (every restore checked with
# `diff -r` against its checkpoint), runs `verify --read-data`, and measures
# the machine's ceilings (page-cache read, BLAKE3 on one and on all cores,
# disk write with fsync).
#
# Noise: on a shared VM one run of a write-heavy step can be 2x off. The
# initial backup (into a scratch repository), both restores (alternating
# order) and the ceilings are therefore run --repeat times, and the targets
# are judged on medians. Before every timed step the script (untimed) runs
# `sync`, so no step pays for the previous step's writeback, and writes and
# deletes a "prefault" file of 1.25x the largest checkpoint: on the VM this was
# written on, a step that needs memory the guest has not used recently (or
# that was reclaimed, e.g. by DAMON pageout) paid 2-3x more system time than
# one that recycles just-freed pages, so which step came first decided the
# result. The prefault gives every step the same supply of recycled pages.
# The page cache is NOT dropped: every figure is warm-cache (the checkpoints
# were just written).
#
# Prints Markdown on stdout; progress goes to stderr. MB = 10^6 bytes.
#
#   benches/generations.sh                              # ~1 GiB, 5 generations
#   benches/generations.sh --size-mb 20 --generations 2  # smoke test, seconds
#
# Options (environment variables in brackets):
#   --size-mb N        approximate on-disk size of the database [LSMVAULT_BENCH_SIZE_MB, 1024]
#   --generations G    checkpoints to take, >= 1 [LSMVAULT_BENCH_GENERATIONS, 5]
#   --churn-percent P  keys overwritten between checkpoints [LSMVAULT_BENCH_CHURN_PERCENT, 7.5]
#   --repeat N         runs of the initial backup, restores, ceilings [LSMVAULT_BENCH_REPEAT;
#                      default 5, or 2 below --size-mb 256]
#   --work DIR         work directory (absent or empty); default: mktemp under /tmp
#   --keep             keep the work directory (default: remove it at the end)
#   --no-build         use the existing target/release/lsmvault
#   --no-ceilings      skip the machine-ceiling measurements
#   --no-prefault      skip the prefault file before each timed step
#   --encrypted        benchmark an encrypted repository (random password in a
#                      file; every command then pays the password KDF, ~0.5 s
#                      by default). Default: plaintext (`init --no-encryption`)
#   --init-option ARG  extra argument for `lsmvault init`, repeatable
#                      (e.g. --init-option=--compression=off)
#
# Requires db_bench and ldb (Debian: rocksdb-tools), python3, GNU time
# (/usr/bin/time; installed with apt-get when missing and running as root),
# and optionally b3sum (same).

set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MB=${LSMVAULT_BENCH_SIZE_MB:-1024}
GENERATIONS=${LSMVAULT_BENCH_GENERATIONS:-5}
CHURN_PERCENT=${LSMVAULT_BENCH_CHURN_PERCENT:-7.5}
REPEAT=${LSMVAULT_BENCH_REPEAT:-}
WORK=""
KEEP=0
BUILD=1
CEILINGS=1
PREFAULT=1
ENCRYPTED=0
INIT_ARGS=()
VALUE_SIZE=400
# On-disk bytes per db_bench key with 16-byte keys, 400-byte values, snappy and
# db_bench's default --compression_ratio=0.5 (measured: ~236 B/key).
BYTES_PER_KEY=236


while [[ $# -gt 0 ]]; do
    case "$1" in
        --size-mb) SIZE_MB=$2; shift 2 ;;
        --size-mb=*) SIZE_MB=${1#*=}; shift ;;
        --generations) GENERATIONS=$2; shift 2 ;;
        --generations=*) GENERATIONS=${1#*=}; shift ;;
        --churn-percent) CHURN_PERCENT=$2; shift 2 ;;
        --churn-percent=*) CHURN_PERCENT=${1#*=}; shift ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --repeat=*) REPEAT=${1#*=}; shift ;;
        --work) WORK=$2; shift 2 ;;
        --work=*) WORK=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --no-ceilings) CEILINGS=0; shift ;;
        --no-prefault) PREFAULT=0; shift ;;
        --encrypted) ENCRYPTED=1; shift ;;
        --init-option) INIT_ARGS+=("$2"); shift 2 ;;
        --init-option=*) INIT_ARGS+=("${1#*=}"); shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

[[ $SIZE_MB =~ ^[0-9]+$ && $SIZE_MB -ge 1 ]] || { echo "--size-mb must be a positive integer" >&2; exit 2; }
if [[ -z $REPEAT ]]; then
    REPEAT=5
    ((SIZE_MB < 256)) && REPEAT=2
fi
[[ $GENERATIONS =~ ^[0-9]+$ && $GENERATIONS -ge 1 ]] || { echo "--generations must be >= 1" >&2; exit 2; }
[[ $REPEAT =~ ^[0-9]+$ && $REPEAT -ge 1 ]] || { echo "--repeat must be >= 1" >&2; exit 2; }
[[ $CHURN_PERCENT =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "--churn-percent must be a number" >&2; exit 2; }


ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# LSMVAULT_BIN: a prebuilt binary (the cargo test smoke run passes its debug build).
LSMVAULT=${LSMVAULT_BIN:-$ROOT/target/release/lsmvault}

for tool in db_bench ldb python3 diff du; do
    command -v "$tool" >/dev/null || die "$tool not found (db_bench/ldb: apt-get install rocksdb-tools)"
done
apt_install() {
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        log "installing $1 with apt-get"
        apt-get install -y -q "$1" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$1" >/dev/null 2>&1; } || true
    fi
}
[[ -x /usr/bin/time ]] || apt_install time
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required for CPU time and peak RSS"
if [[ $CEILINGS -eq 1 ]] && ! command -v b3sum >/dev/null; then apt_install b3sum; fi

if [[ -z $WORK ]]; then
    WORK=$(mktemp -d /tmp/lsmvault-generations.XXXXXX)
else
    mkdir -p "$WORK"
    [[ -z $(ls -A "$WORK") ]] || die "--work $WORK is not empty"
    WORK=$(cd "$WORK" && pwd)
fi
cleanup() {
    local status=$?
    if [[ $KEEP -eq 1 ]]; then
        log "kept work directory $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT

DB=$WORK/db
CKPT=$WORK/ckpt
REPO=$WORK/repo
LOGS=$WORK/logs
RESULTS=$WORK/results.tsv
mkdir -p "$CKPT" "$LOGS"
: >"$RESULTS"

KEYS=$((SIZE_MB * 1048576 / BYTES_PER_KEY))
CHURN_KEYS=$(python3 -c "import sys; print(max(1, round(int(sys.argv[1]) * float(sys.argv[2]) / 100)))" "$KEYS" "$CHURN_PERCENT")

# --- measurement (helpers in benches/lib.sh) ---------------------------------

# record GROUP NAME DATA READ ADDED REPO NOTE: one result row (after measure).
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$WALL" "$CPU" "$RSS" "$3" "$4" "$5" "$6" "$7" "$OTHER" >>"$RESULTS"
}

# json FILE EXPR: evaluates a Python expression over the JSON document `d`.
json() {
    python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($2)" "$1"
}


PREFAULT_MB=0

# --- build -------------------------------------------------------------------

if [[ $BUILD -eq 1 ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x $LSMVAULT ]] || die "$LSMVAULT missing (run without --no-build)"

# Builds with encryption need a password or --no-encryption at init.
if "$LSMVAULT" init --help | grep -q -- --no-encryption; then
    if [[ $ENCRYPTED -eq 1 ]]; then
        head -c 24 /dev/urandom | base64 >"$WORK/password"
        export LSMVAULT_PASSWORD_FILE=$WORK/password
    else
        INIT_ARGS=(--no-encryption "${INIT_ARGS[@]}")
    fi
elif [[ $ENCRYPTED -eq 1 ]]; then
    die "this lsmvault build has no encryption"
fi
unset LSMVAULT_PASSWORD LSMVAULT_REPOSITORY
[[ $ENCRYPTED -eq 1 ]] || unset LSMVAULT_PASSWORD_FILE

log "work directory $WORK; database ~$SIZE_MB MiB ($KEYS keys), $GENERATIONS generation(s), $CHURN_KEYS keys overwritten between generations, $REPEAT run(s) of repeated steps"

# --- database and checkpoints ------------------------------------------------

DB_BENCH_FLAGS=(--db="$DB" --value_size="$VALUE_SIZE" --compression_type=snappy --threads=1)
measure db_fill db_bench "${DB_BENCH_FLAGS[@]}" --benchmarks=fillrandom --use_existing_db=0 \
    --num="$KEYS" --seed=1
record setup db_fill "" "" "" "" ""
declare -A DATA
for ((generation = 1; generation <= GENERATIONS; generation++)); do
    if [[ $generation -gt 1 ]]; then
        # --num bounds the key range too: the overwrites hit random keys among
        # the first CHURN_KEYS, so ~7.5% of the key space turns over per
        # generation and compaction rewrites the SSTs that cover it.
        measure "db_churn$generation" db_bench "${DB_BENCH_FLAGS[@]}" --benchmarks=overwrite \
            --use_existing_db=1 --num="$CHURN_KEYS" --seed="$generation"
        record setup "db_churn$generation" "" "" "" "" ""
    fi
    measure "checkpoint$generation" ldb --db="$DB" checkpoint --checkpoint_dir="$CKPT/gen$generation"
    DATA[$generation]=$(bytes_of "$CKPT/gen$generation")
    record setup "checkpoint$generation" "${DATA[$generation]}" "" "" "" "$(find "$CKPT/gen$generation" -type f | wc -l) files"
done

largest=0
for ((generation = 1; generation <= GENERATIONS; generation++)); do
    ((DATA[$generation] > largest)) && largest=${DATA[$generation]}
done
PREFAULT_MB=$((largest * 5 / 4 / 1048576 + 1))

# --- backups -----------------------------------------------------------------

"$LSMVAULT" --repo "$REPO" --quiet init "${INIT_ARGS[@]}" >"$LOGS/init.out"

# backup_step GROUP NAME REPO GENERATION: one timed backup and its row.
backup_step() {
    local group=$1 name=$2 repo=$3 generation=$4
    settle
    measure "$name" "$LSMVAULT" --repo "$repo" --json --quiet backup "$CKPT/gen$generation" --tag "gen$generation"
    local out=$LOGS/$name.out
    record "$group" "$name" "${DATA[$generation]}" \
        "$(json "$out" 'd["snapshot"]["stats"]["bytes_read"]')" \
        "$(json "$out" 'd["snapshot"]["stats"]["bytes_added"]')" \
        "$(bytes_of "$repo")" \
        "$(json "$out" '"{} new / {} changed / {} unmodified files".format(*(d["snapshot"]["stats"][k] for k in ("files_new", "files_changed", "files_unmodified")))')"
}
backup_step initial backup_gen1 "$REPO" 1
for ((generation = 2; generation <= GENERATIONS; generation++)); do
    backup_step incremental "backup_gen$generation" "$REPO" "$generation"
done
backup_step unchanged "backup_gen${GENERATIONS}_unchanged" "$REPO" "$GENERATIONS"
SNAP_OLDEST=$(json "$LOGS/backup_gen1.out" 'd["id"]')
SNAP_NEWEST=$(json "$LOGS/backup_gen$GENERATIONS.out" 'd["id"]')

# --- restores and verify -----------------------------------------------------

# restore_step GROUP NAME SNAPSHOT GENERATION: one timed restore, checked with diff -r.
restore_step() {
    local group=$1 name=$2 snapshot=$3 generation=$4 target=$WORK/restore
    rm -rf "$target"
    settle
    measure "$name" "$LSMVAULT" --repo "$REPO" --json --quiet restore "$snapshot" --target "$target"
    record "$group" "$name" "${DATA[$generation]}" "" "" "$(bytes_of "$REPO")" \
        "$(json "$LOGS/$name.out" 'd["files"]') files, diff -r identical"
    diff -r "$CKPT/gen$generation" "$target" >"$LOGS/$name.diff" ||
        die "restore of generation $generation differs from its checkpoint (see $LOGS/$name.diff)"
    log "$name: diff -r against gen$generation: identical"
    rm -rf "$target"
}
for ((run = 1; run <= REPEAT; run++)); do
    newest=(restore_newest "restore_newest_gen${GENERATIONS}_run$run" "$SNAP_NEWEST" "$GENERATIONS")
    oldest=(restore_oldest "restore_oldest_gen1_run$run" "$SNAP_OLDEST" 1)
    if ((run % 2 == 1)); then
        restore_step "${newest[@]}"
        restore_step "${oldest[@]}"
    else
        restore_step "${oldest[@]}"
        restore_step "${newest[@]}"
    fi
done

settle
measure verify_read_data "$LSMVAULT" --repo "$REPO" --json --quiet verify --read-data
VERIFY_OUT=$LOGS/verify_read_data.out
VERIFIED=$(json "$VERIFY_OUT" 'd["bytes_read"]')
record verify verify_read_data "$VERIFIED" "$VERIFIED" "" "$(bytes_of "$REPO")" \
    "$(json "$VERIFY_OUT" 'd["packs"]') packs, $(json "$VERIFY_OUT" '"clean" if not d["findings"] else "%d findings" % len(d["findings"])')"
[[ $(json "$VERIFY_OUT" 'len(d["findings"])') == 0 ]] || die "verify --read-data found damage (see $VERIFY_OUT)"

# The initial backup again (runs 2..N), each into a new scratch repository.
for ((run = 2; run <= REPEAT; run++)); do
    scratch=$WORK/repo-scratch
    rm -rf "$scratch"
    "$LSMVAULT" --repo "$scratch" --quiet init "${INIT_ARGS[@]}" >/dev/null
    backup_step initial "backup_gen1_run$run" "$scratch" 1
    rm -rf "$scratch"
done

# --- ceilings ----------------------------------------------------------------

if [[ $CEILINGS -eq 1 ]]; then
    newest_dir=$CKPT/gen$GENERATIONS
    blob=$WORK/ceiling.bin
    # 64 x 16 MiB = 1 GiB, scaled down with the database (>= 64 MiB) so that
    # the smoke test stays fast.
    count=$((SIZE_MB / 16))
    ((count > 64)) && count=64
    ((count < 4)) && count=4
    gib=$((16 * 1048576 * count))
    cat "$newest_dir"/* >/dev/null # warm (it already is: db_bench just wrote it)
    for ((run = 1; run <= REPEAT; run++)); do
        settle
        measure "ceiling_cat_run$run" sh -c 'cat "$@" >/dev/null' sh "$newest_dir"/*
        record ceiling_cat "page-cache read (\`cat gen$GENERATIONS/* > /dev/null\`)" "${DATA[$GENERATIONS]}" "" "" "" ""

        rm -f "$blob"
        settle
        measure "ceiling_dd_run$run" dd if=/dev/zero of="$blob" bs=16M count="$count" conv=fsync
        record ceiling_dd "disk write, one fsync (\`dd if=/dev/zero bs=16M count=$count conv=fsync\`)" "$gib" "" "" "" ""

        rm -f "$blob"
        settle
        measure "ceiling_dsync_run$run" dd if=/dev/zero of="$blob" bs=16M count="$count" oflag=dsync
        record ceiling_dsync "disk write, fsync per 16 MiB like lsmvault's packs (\`dd if=/dev/zero bs=16M count=$count oflag=dsync\`)" "$gib" "" "" "" ""

        if command -v b3sum >/dev/null; then
            measure "ceiling_b3sum_1_run$run" b3sum --num-threads 1 "$blob"
            record ceiling_b3_1 "BLAKE3, 1 thread (\`b3sum --num-threads 1\`, the dd file, in page cache)" "$gib" "" "" "" ""
            measure "ceiling_b3sum_all_run$run" b3sum "$blob"
            record ceiling_b3_all "BLAKE3, all $(nproc) cores (\`b3sum\`, same file)" "$gib" "" "" "" ""
        fi
    done
    rm -f "$blob"
fi

# --- report ------------------------------------------------------------------

echo "## lsmvault generations benchmark"
echo
echo "- database: ~$SIZE_MB MiB target, $KEYS keys (db_bench fillrandom, value_size $VALUE_SIZE, snappy), $GENERATIONS generation(s), overwrite of $CHURN_KEYS keys between generations"
echo "- lsmvault: $("$LSMVAULT" --version), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/')"
echo "- repository: $([[ $ENCRYPTED -eq 1 ]] && echo encrypted || echo plaintext), \`lsmvault init${INIT_ARGS[*]:+ ${INIT_ARGS[*]}}\`, otherwise defaults"
echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r); warm page cache (not dropped); before each timed step: \`sync\`$([[ $PREFAULT -eq 1 ]] && echo " and a $PREFAULT_MB MiB prefault file written and deleted")"
echo "- MB = 10^6 bytes; data = checkpoint size (verify: bytes re-read); MB/s = data / wall; repeated steps: $REPEAT run(s), targets judged on medians"
echo "- other CPU s = CPU time the rest of the machine (other processes, kernel writeback threads) used during the step: the machine is shared, and a run with other CPU well above 0 was disturbed"
if command -v b3sum >/dev/null || [[ $CEILINGS -eq 0 ]]; then :; else echo "- b3sum not available: BLAKE3 ceilings omitted"; fi
echo
python3 - "$RESULTS" <<'EOF'
import statistics, sys

rows = []
for line in open(sys.argv[1]):
    group, name, wall, cpu, rss, data, read, added, repo, note, other = line.rstrip("\n").split("\t")
    rows.append(dict(group=group, name=name, wall=float(wall), cpu=float(cpu), rss=int(rss), other=float(other),
                     data=int(data) if data else None, read=int(read) if read else None,
                     added=int(added) if added else None, repo=int(repo) if repo else None, note=note))

mb = lambda b: "" if b is None else f"{b / 1e6:.1f}"
rate = lambda b, w: (b / 1e6 / w) if w > 0 else float("inf")
median = lambda values: statistics.median(values) if values else float("nan")

print("### Setup (db_bench, ldb; not lsmvault)\n")
print("| step | wall s | CPU s | checkpoint MB | |")
print("|---|---:|---:|---:|---|")
for r in rows:
    if r["group"] == "setup":
        print(f"| {r['name']} | {r['wall']:.3f} | {r['cpu']:.2f} | {mb(r['data'])} | {r['note']} |")

print("\n### lsmvault\n")
print("| step | wall s | CPU s (user+sys) | CPU/wall | peak RSS MiB | data MB | read MB | added MB | MB/s | repo MB | other CPU s | |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    if r["group"] in ("setup",) or r["group"].startswith("ceiling"):
        continue
    cw = f"{r['cpu'] / r['wall']:.2f}" if r["wall"] > 0 else "n/a"
    print(f"| {r['name']} | {r['wall']:.3f} | {r['cpu']:.2f} | {cw} | {r['rss'] // 1024} | {mb(r['data'])} | "
          f"{mb(r['read'])} | {mb(r['added'])} | {rate(r['data'], r['wall']):.0f} | {mb(r['repo'])} | {r['other']:.2f} | {r['note']} |")

def group(name):
    return [r for r in rows if r["group"] == name]

initial = group("initial")
# Below half a second, process start-up and fixed costs dominate (smoke test).
smoke = median([r["wall"] for r in initial]) < 0.5
verdict = lambda ok: "n/a (too small)" if smoke else ("yes" if ok else "**no**")
unchanged = group("unchanged")
newest, oldest = group("restore_newest"), group("restore_oldest")
print("\n### Targets (medians of repeated steps)\n")
print("| target | measured | met |")
print("|---|---|---|")
initial_wall = median([r["wall"] for r in initial])
initial_rate = rate(initial[0]["data"], initial_wall)
runs = ", ".join(f"{rate(r['data'], r['wall']):.0f}" for r in initial)
best = lambda runs: max(rate(r["data"], r["wall"]) for r in runs)
print(f"| initial backup >= 400 MB/s from page cache | {initial_rate:.0f} MB/s median, best {best(initial):.0f} (runs: {runs}) | {verdict(initial_rate >= 400)} |")
share = unchanged[0]["wall"] / initial_wall * 100
print(f"| unchanged backup <= 2% of initial backup time | {share:.2f}% ({unchanged[0]['wall']:.3f} s / {initial_wall:.3f} s) | {verdict(share <= 2)} |")
n = rate(newest[0]["data"], median([r["wall"] for r in newest]))
o = rate(oldest[0]["data"], median([r["wall"] for r in oldest]))
apart = abs(n - o) / max(n, o) * 100
nr = ", ".join(f"{rate(r['data'], r['wall']):.0f}" for r in newest)
orr = ", ".join(f"{rate(r['data'], r['wall']):.0f}" for r in oldest)
bn, bo = best(newest), best(oldest)
best_apart = abs(bn - bo) / max(bn, bo) * 100
print(f"| restore of oldest and newest generation within 10% | medians: newest {n:.0f} MB/s, oldest {o:.0f} MB/s, {apart:.1f}% apart; best runs: {bn:.0f} vs {bo:.0f}, {best_apart:.1f}% apart (newest runs: {nr}; oldest runs: {orr}) | {verdict(apart <= 10)} |")
if smoke:
    print("\nThe steps above took well under a second: at this size process start-up and fixed costs dominate, so the targets are not judged (smoke test).")

ceilings = [g for g in dict.fromkeys(r["group"] for r in rows) if g.startswith("ceiling")]
if ceilings:
    print("\n### Machine ceilings\n")
    print("| measurement | MB | median wall s | median MB/s | runs MB/s |")
    print("|---|---:|---:|---:|---|")
    for g in ceilings:
        runs = group(g)
        wall = median([r["wall"] for r in runs])
        print(f"| {runs[0]['name']} | {mb(runs[0]['data'])} | {wall:.3f} | {rate(runs[0]['data'], wall):.0f} | "
              + ", ".join(f"{rate(r['data'], r['wall']):.0f}" for r in runs) + " |")
EOF
