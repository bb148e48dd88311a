#!/usr/bin/env bash
# Compression and encryption benchmark of lsmvault on RocksDB checkpoints
# (issue 5).
#
# For each database compression (db_bench --compression_type=none, snappy,
# zstd) the script builds one RocksDB with db_bench fillrandom (same keys,
# same seed, so the same logical data each time) and takes one `ldb
# checkpoint`. For that checkpoint it measures these lsmvault settings:
#
#   plain-off    init --no-encryption --compression off
#   plain-auto   init --no-encryption                   (compression auto, the default)
#   plain-zstd3  init --no-encryption --compression zstd:3
#   enc-auto     init --kdf-target-ms K                 (encrypted, default cipher, auto)
#   enc-off      init --kdf-target-ms K --compression off
#   enc-off-xchacha  init --kdf-target-ms K --compression off --cipher xchacha20-poly1305
#                (only when `init --help` lists --cipher; the default cipher is
#                then aes-256-gcm-subkey)
#
# Per setting and run: an initial backup into a fresh repository (wall, CPU,
# peak RSS), the stored repository bytes (`du -sb`), `lsmvault snapshots`
# on that repository (the fixed cost of opening it: for an encrypted
# repository this includes the argon2id password derivation), and a restore
# of the snapshot (checked with `diff -r` against the checkpoint). The
# settings are interleaved run by run (A B C D E, A B C D E, ...) so that
# machine noise hits all of them alike; every figure is a median of --repeat
# runs. At the end, `snapshots` is also timed on small repositories made with
# the default KDF target (500 ms), to report that fixed cost apart from the
# per-byte throughput.
#
# Timing is as in benches/generations.sh: wall time from bash's microsecond
# clock, CPU user+sys and peak RSS from GNU time, the CPU time the rest of the
# machine used meanwhile from /proc/stat; before every timed step (untimed)
# `sync`, then a "prefault" file of 1.25x the checkpoint is written and
# deleted (see generations.sh's header for why). Warm page cache throughout.
#
# Prints Markdown on stdout; progress goes to stderr. MB = 10^6 bytes.
#
#   benches/compression.sh                          # 512 MiB, 3 runs; ~7 min on 2 cores
#   benches/compression.sh --size-mb 32 --repeat 1  # smoke test, ~1 min
#
# Options (environment variables in brackets):
#   --size-mb N          approximate live data of the database (db_bench keys =
#                        N MiB / 236 B, as in generations.sh) [LSMVAULT_BENCH_SIZE_MB, 512]
#   --repeat N           runs of every step per setting [LSMVAULT_BENCH_REPEAT, 3]
#   --db-compressions L  comma-separated db_bench --compression_type values
#                        [LSMVAULT_BENCH_DB_COMPRESSIONS, none,snappy,zstd]
#   --kdf-target-ms MS   `init --kdf-target-ms` of the encrypted settings; the
#                        default 1 gives argon2id's minimum (1 iteration of
#                        32 MiB), so the per-byte cost is not buried under the
#                        KDF [LSMVAULT_BENCH_KDF_TARGET_MS, 1]
#   --open-repeat N      runs of the fixed-cost `snapshots` timing on the
#                        small repositories [LSMVAULT_BENCH_OPEN_REPEAT, 7]
#   --work DIR           work directory (absent or empty); default: mktemp under /tmp
#   --keep               keep the work directory (checkpoints, logs, results.tsv)
#   --no-build           do not run `cargo build --release` (use LSMVAULT_BIN or
#                        the existing target/release/lsmvault)
#   --no-prefault        skip the prefault file before each timed step
#
# LSMVAULT_BIN=PATH: the lsmvault binary to measure (default
# target/release/lsmvault; give a copy when others rebuild target/ meanwhile).
# LSMVAULT_BIN_COMMIT=REV: the commit that binary was built from, for the report.
#
# Requires db_bench and ldb (Debian: rocksdb-tools), python3, GNU time
# (/usr/bin/time; installed with apt-get when missing and running as root).

set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MB=${LSMVAULT_BENCH_SIZE_MB:-512}
REPEAT=${LSMVAULT_BENCH_REPEAT:-3}
DB_COMPRESSIONS=${LSMVAULT_BENCH_DB_COMPRESSIONS:-none,snappy,zstd}
KDF_TARGET_MS=${LSMVAULT_BENCH_KDF_TARGET_MS:-1}
OPEN_REPEAT=${LSMVAULT_BENCH_OPEN_REPEAT:-7}
WORK=""
KEEP=0
BUILD=1
PREFAULT=1
VALUE_SIZE=400
# On-disk bytes per db_bench key with snappy (see generations.sh); the same
# key count is used for every database compression.
BYTES_PER_KEY=236


while [[ $# -gt 0 ]]; do
    case "$1" in
        --size-mb) SIZE_MB=$2; shift 2 ;;
        --size-mb=*) SIZE_MB=${1#*=}; shift ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --repeat=*) REPEAT=${1#*=}; shift ;;
        --db-compressions) DB_COMPRESSIONS=$2; shift 2 ;;
        --db-compressions=*) DB_COMPRESSIONS=${1#*=}; shift ;;
        --kdf-target-ms) KDF_TARGET_MS=$2; shift 2 ;;
        --kdf-target-ms=*) KDF_TARGET_MS=${1#*=}; shift ;;
        --open-repeat) OPEN_REPEAT=$2; shift 2 ;;
        --open-repeat=*) OPEN_REPEAT=${1#*=}; shift ;;
        --work) WORK=$2; shift 2 ;;
        --work=*) WORK=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --no-prefault) PREFAULT=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

[[ $SIZE_MB =~ ^[0-9]+$ && $SIZE_MB -ge 1 ]] || { echo "--size-mb must be a positive integer" >&2; exit 2; }
[[ $REPEAT =~ ^[0-9]+$ && $REPEAT -ge 1 ]] || { echo "--repeat must be >= 1" >&2; exit 2; }
[[ $OPEN_REPEAT =~ ^[0-9]+$ && $OPEN_REPEAT -ge 1 ]] || { echo "--open-repeat must be >= 1" >&2; exit 2; }
[[ $KDF_TARGET_MS =~ ^[0-9]+$ && $KDF_TARGET_MS -ge 1 ]] || { echo "--kdf-target-ms must be a positive integer" >&2; exit 2; }
IFS=, read -r -a DB_LIST <<<"$DB_COMPRESSIONS"
for db_compression in "${DB_LIST[@]}"; do
    [[ $db_compression =~ ^[a-z0-9]+$ ]] || { echo "bad --db-compressions entry: $db_compression" >&2; exit 2; }
done


ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LSMVAULT=${LSMVAULT_BIN:-$ROOT/target/release/lsmvault}

for tool in db_bench ldb python3 diff du; do
    command -v "$tool" >/dev/null || die "$tool not found (db_bench/ldb: apt-get install rocksdb-tools)"
done
if [[ ! -x /usr/bin/time && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing time with apt-get"
    apt-get install -y -q time >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q time >/dev/null 2>&1; } || true
fi
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required for CPU time and peak RSS"

if [[ -z $WORK ]]; then
    WORK=$(mktemp -d /tmp/lsmvault-compression.XXXXXX)
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

LOGS=$WORK/logs
RESULTS=$WORK/results.tsv
mkdir -p "$LOGS"
: >"$RESULTS"
KEYS=$((SIZE_MB * 1048576 / BYTES_PER_KEY))

# --- measurement (helpers in benches/lib.sh) ---------------------------------

# record DB SETTING STEP RUN DATA REPO STORED NOTE: one result row (after measure).
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" \
        "$WALL" "$CPU" "$RSS" "$OTHER" "$5" "$6" "$7" "$8" >>"$RESULTS"
}

json() {
    python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($2)" "$1"
}


PREFAULT_MB=0

# --- build -------------------------------------------------------------------

if [[ $BUILD -eq 1 ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x $LSMVAULT ]] || die "$LSMVAULT missing (build it, or set LSMVAULT_BIN)"
"$LSMVAULT" init --help | grep -q -- --kdf-target-ms || die "this lsmvault build has no init --kdf-target-ms (no encryption?)"

unset LSMVAULT_PASSWORD LSMVAULT_PASSWORD_FILE LSMVAULT_REPOSITORY
head -c 24 /dev/urandom | base64 >"$WORK/password"
PASSWORD_ARGS=(--password-file "$WORK/password")

# The settings, in their interleaving order: name, global arguments (password),
# init arguments.
SETTINGS=(plain-off plain-auto plain-zstd3 enc-auto enc-off)
HAS_CIPHER=0
if "$LSMVAULT" init --help | grep -q -- --cipher; then
    HAS_CIPHER=1
    SETTINGS+=(enc-off-xchacha)
fi
declare -A SETTING_GLOBAL SETTING_INIT
SETTING_GLOBAL[plain-off]=""
SETTING_INIT[plain-off]="--no-encryption --compression off"
SETTING_GLOBAL[plain-auto]=""
SETTING_INIT[plain-auto]="--no-encryption"
SETTING_GLOBAL[plain-zstd3]=""
SETTING_INIT[plain-zstd3]="--no-encryption --compression zstd:3"
SETTING_GLOBAL[enc-auto]="password"
SETTING_INIT[enc-auto]="--kdf-target-ms $KDF_TARGET_MS"
SETTING_GLOBAL[enc-off]="password"
SETTING_INIT[enc-off]="--kdf-target-ms $KDF_TARGET_MS --compression off"
SETTING_GLOBAL[enc-off-xchacha]="password"
SETTING_INIT[enc-off-xchacha]="--kdf-target-ms $KDF_TARGET_MS --compression off --cipher xchacha20-poly1305"

# lsmv_cmd SETTING REPO ARGS...: sets CMD to the lsmvault command line for
# SETTING (with the password file when it is an encrypted one).
lsmv_cmd() {
    local setting=$1 repo=$2
    shift 2
    CMD=("$LSMVAULT" --repo "$repo" --quiet)
    [[ ${SETTING_GLOBAL[$setting]} == password ]] && CMD+=("${PASSWORD_ARGS[@]}")
    CMD+=("$@")
}

log "work directory $WORK; $KEYS keys (~$SIZE_MB MiB of live data); db compressions: ${DB_LIST[*]}; $REPEAT run(s); encrypted settings: --kdf-target-ms $KDF_TARGET_MS"

# --- per database compression ------------------------------------------------

declare -A CKPT_BYTES CKPT_FILES
for db_compression in "${DB_LIST[@]}"; do
    db=$WORK/db-$db_compression
    ckpt=$WORK/ckpt-$db_compression
    PREFAULT_MB=0
    measure "db_fill_$db_compression" db_bench --db="$db" --value_size="$VALUE_SIZE" --compression_type="$db_compression" \
        --threads=1 --benchmarks=fillrandom --use_existing_db=0 --num="$KEYS" --seed=1
    record "$db_compression" setup db_fill 1 "" "" "" ""
    measure "checkpoint_$db_compression" ldb --db="$db" checkpoint --checkpoint_dir="$ckpt"
    CKPT_BYTES[$db_compression]=$(bytes_of "$ckpt")
    CKPT_FILES[$db_compression]=$(find "$ckpt" -type f | wc -l)
    record "$db_compression" setup checkpoint 1 "${CKPT_BYTES[$db_compression]}" "" "" "${CKPT_FILES[$db_compression]} files"
    PREFAULT_MB=$((CKPT_BYTES[$db_compression] * 5 / 4 / 1048576 + 1))
    data=${CKPT_BYTES[$db_compression]}

    for ((run = 1; run <= REPEAT; run++)); do
        for setting in "${SETTINGS[@]}"; do
            tag=${db_compression}_${setting}_run$run
            repo=$WORK/repo
            target=$WORK/restore
            rm -rf "$repo" "$target"
            # shellcheck disable=SC2206 # the init arguments are plain words
            init_args=(${SETTING_INIT[$setting]})
            lsmv_cmd "$setting" "$repo" init "${init_args[@]}"
            "${CMD[@]}" >"$LOGS/init_$tag.out"

            settle
            lsmv_cmd "$setting" "$repo" --json backup "$ckpt"
            measure "backup_$tag" "${CMD[@]}"
            out=$LOGS/backup_$tag.out
            snapshot=$(json "$out" 'd["id"]')
            stored=$(bytes_of "$repo")
            record "$db_compression" "$setting" backup "$run" "$data" "$stored" \
                "$(json "$out" 'd["snapshot"]["stats"]["bytes_stored"]')" \
                "$(json "$out" 'd["snapshot"]["stats"]["blobs_added"]') blobs, $(json "$out" 'd["snapshot"]["stats"]["packs_written"]') packs"

            settle
            lsmv_cmd "$setting" "$repo" --json snapshots
            measure "open_$tag" "${CMD[@]}"
            record "$db_compression" "$setting" open "$run" "" "$stored" "" ""

            settle
            lsmv_cmd "$setting" "$repo" --json restore "$snapshot" --target "$target"
            measure "restore_$tag" "${CMD[@]}"
            record "$db_compression" "$setting" restore "$run" "$data" "$stored" "" \
                "$(json "$LOGS/restore_$tag.out" 'd["files"]') files"
            diff -r "$ckpt" "$target" >"$LOGS/restore_$tag.diff" ||
                die "restore $tag differs from its checkpoint (see $LOGS/restore_$tag.diff)"
            log "restore_$tag: diff -r against the checkpoint: identical"
            rm -rf "$repo" "$target"
        done
    done
    # The checkpoint is kept with --keep (e.g. for a profile); the database not.
    rm -rf "$db"
    [[ $KEEP -eq 1 ]] || rm -rf "$ckpt"
done

# --- fixed cost of opening a repository (KDF) --------------------------------

# Three small repositories holding one snapshot of a two-file directory:
# plaintext, encrypted with the benchmark's KDF target, encrypted with the
# default target (500 ms). `snapshots` is timed on each, interleaved.
PREFAULT_MB=0
small=$WORK/small-source
mkdir -p "$small"
head -c 65536 /dev/urandom >"$small/a"
echo small >"$small/b"
declare -A OPEN_INIT OPEN_GLOBAL
OPEN_KINDS=(plaintext encrypted-kdf-$KDF_TARGET_MS encrypted-kdf-default)
OPEN_INIT[plaintext]="--no-encryption"
OPEN_GLOBAL[plaintext]=""
OPEN_INIT[encrypted-kdf-$KDF_TARGET_MS]="--kdf-target-ms $KDF_TARGET_MS"
OPEN_GLOBAL[encrypted-kdf-$KDF_TARGET_MS]="password"
OPEN_INIT[encrypted-kdf-default]=""
OPEN_GLOBAL[encrypted-kdf-default]="password"
declare -A OPEN_ITERATIONS
for kind in "${OPEN_KINDS[@]}"; do
    repo=$WORK/open-$kind
    SETTING_GLOBAL[$kind]=${OPEN_GLOBAL[$kind]}
    # shellcheck disable=SC2206
    init_args=(${OPEN_INIT[$kind]})
    lsmv_cmd "$kind" "$repo" init "${init_args[@]}"
    "${CMD[@]}" >"$LOGS/init_open_$kind.out"
    lsmv_cmd "$kind" "$repo" backup "$small"
    "${CMD[@]}" >"$LOGS/backup_open_$kind.out"
    if [[ -d $repo/keys ]] && [[ -n $(ls -A "$repo/keys") ]]; then
        OPEN_ITERATIONS[$kind]=$(python3 -c 'import json, sys; k = json.load(open(sys.argv[1]))["kdf_params"]; print("argon2id %d MiB, %d iteration(s), parallelism %d" % (k["memory_kib"] // 1024, k["iterations"], k["parallelism"]))' "$(ls -d "$repo"/keys/* | head -n 1)")
    else
        OPEN_ITERATIONS[$kind]="no key"
    fi
done
for ((run = 1; run <= OPEN_REPEAT; run++)); do
    for kind in "${OPEN_KINDS[@]}"; do
        lsmv_cmd "$kind" "$WORK/open-$kind" --json snapshots
        settle
        measure "open_small_${kind}_run$run" "${CMD[@]}"
        record small "$kind" open "$run" "" "$(bytes_of "$WORK/open-$kind")" "" "${OPEN_ITERATIONS[$kind]}"
    done
done

# --- report ------------------------------------------------------------------

BENCH_KDF=$(python3 -c 'import json, sys; k = json.load(open(sys.argv[1]))["kdf_params"]; print("argon2id %d MiB, %d iteration(s)" % (k["memory_kib"] // 1024, k["iterations"]))' "$(ls -d "$WORK/open-encrypted-kdf-$KDF_TARGET_MS"/keys/* | head -n 1)")

echo "## lsmvault compression and encryption benchmark"
echo
echo "- database: $KEYS keys (db_bench fillrandom --value_size $VALUE_SIZE --seed 1 --threads 1, ~$SIZE_MB MiB target of live data), one \`ldb checkpoint\` per \`--compression_type\` (${DB_LIST[*]}); db_bench values repeat a 1 MiB random buffer (\`--compression_ratio\` 0.5), so compression ratios are flattered"
if [[ -n ${LSMVAULT_BIN_COMMIT:-} ]]; then
    built="built from git $LSMVAULT_BIN_COMMIT"
else
    built="source tree at git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/')"
fi
echo "- lsmvault: $("$LSMVAULT" --version), binary \`$LSMVAULT\`, $built"
echo "- settings: plain-off = \`init --no-encryption --compression off\`; plain-auto = \`init --no-encryption\` (auto); plain-zstd3 = \`init --no-encryption --compression zstd:3\`; enc-auto = \`init --kdf-target-ms $KDF_TARGET_MS\` ($BENCH_KDF); enc-off = same with \`--compression off\`$([[ $HAS_CIPHER -eq 1 ]] && echo " (both with the default cipher, \`aes-256-gcm-subkey\`); enc-off-xchacha = enc-off with \`--cipher xchacha20-poly1305\`"); every backup into a fresh repository"
echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r); warm page cache (not dropped); before each timed step: \`sync\`$([[ $PREFAULT -eq 1 ]] && echo " and a prefault file of 1.25x the checkpoint written and deleted")"
echo "- $REPEAT run(s) per setting, interleaved (${SETTINGS[*]}, then again); figures are medians; MB = 10^6 bytes; MB/s = checkpoint bytes / wall; open = \`lsmvault snapshots\` on the backed-up repository (includes the KDF when encrypted); other CPU s = max over the runs of the CPU time the rest of the machine used during the step"
echo
# Directory entries of a repository (counted by `du -sb`).
REPO_DIRS=$(find "$WORK/open-plaintext" -type d | wc -l)
REPO_DIR_BYTES=$(find "$WORK/open-plaintext" -type d -printf '%s\n' | awk '{ s += $1 } END { print s }')
python3 - "$RESULTS" "$KDF_TARGET_MS" "$REPO_DIRS" "$REPO_DIR_BYTES" <<'EOF'
import statistics, sys

rows = []
for line in open(sys.argv[1]):
    db, setting, step, run, wall, cpu, rss, other, data, repo, stored, note = line.rstrip("\n").split("\t")
    rows.append(dict(db=db, setting=setting, step=step, run=int(run), wall=float(wall), cpu=float(cpu),
                     rss=int(rss), other=float(other), data=int(data) if data else None,
                     repo=int(repo) if repo else None, stored=int(stored) if stored else None, note=note))
kdf = sys.argv[2]
median = statistics.median
dbs = list(dict.fromkeys(r["db"] for r in rows if r["db"] != "small"))
SETTINGS = ["plain-off", "plain-auto", "plain-zstd3", "enc-auto", "enc-off", "enc-off-xchacha"]

def sel(db, setting, step):
    return [r for r in rows if r["db"] == db and r["setting"] == setting and r["step"] == step]

def med(db, setting, step, key="wall"):
    return median([r[key] for r in sel(db, setting, step)])

mb = lambda b: f"{b / 1e6:.1f}"
rate = lambda b, w: b / 1e6 / w if w > 0 else float("inf")
pct = lambda x: f"{x * 100:+.1f}%"

print("### Setup (db_bench, ldb; not lsmvault)\n")
print("| db compression | db_bench fillrandom wall s | checkpoint MB | files |")
print("|---|---:|---:|---:|")
for db in dbs:
    fill = sel(db, "setup", "db_fill")[0]
    ck = sel(db, "setup", "checkpoint")[0]
    print(f"| {db} | {fill['wall']:.1f} | {mb(ck['data'])} | {ck['note'].split()[0]} |")

summary = {}
for db in dbs:
    data = sel(db, "setup", "checkpoint")[0]["data"]
    print(f"\n### db_bench --compression_type={db} (checkpoint {mb(data)} MB)\n")
    print("| setting | stored MB | stored / checkpoint | packs MB | blobs | backup s | backup MB/s | backup CPU s | backup peak RSS MiB | restore s | restore MB/s | restore CPU s | restore peak RSS MiB | open s | backup MB/s runs | restore MB/s runs | stored MB runs | other CPU s (max) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|")
    for s in SETTINGS:
        b, r, o = sel(db, s, "backup"), sel(db, s, "restore"), sel(db, s, "open")
        if not b:
            continue
        stored = median([x["repo"] for x in b])
        packs = median([x["stored"] for x in b])
        blobs = median([int(x["note"].split()[0]) for x in b])
        bw, rw, ow = med(db, s, "backup"), med(db, s, "restore"), med(db, s, "open")
        summary[(db, s)] = dict(stored=stored, packs=packs, bw=bw, rw=rw, ow=ow, data=data)
        other = max(x["other"] for x in b + r + o)
        print(f"| {s} | {mb(stored)} | {stored / data:.3f} | {mb(packs)} | {blobs:g} | {bw:.3f} | {rate(data, bw):.0f} | {med(db, s, 'backup', 'cpu'):.2f} | "
              f"{int(med(db, s, 'backup', 'rss')) // 1024} | {rw:.3f} | {rate(data, rw):.0f} | {med(db, s, 'restore', 'cpu'):.2f} | "
              f"{int(med(db, s, 'restore', 'rss')) // 1024} | {ow:.3f} | "
              + ", ".join(f"{rate(data, x['wall']):.0f}" for x in b) + " | "
              + ", ".join(f"{rate(data, x['wall']):.0f}" for x in r) + " | "
              + ", ".join(mb(x["repo"]) for x in b) + f" | {other:.2f} |")

# Fixed cost of opening, measured on small repositories.
small = [r for r in rows if r["db"] == "small"]
kinds = list(dict.fromkeys(r["setting"] for r in small))
open_med = {k: median([r["wall"] for r in small if r["setting"] == k]) for k in kinds}
print("\n### Fixed cost of opening a repository (`lsmvault snapshots`, small repository, one snapshot)\n")
print("| repository | KDF | open s (median) | open CPU s | minus plaintext s | runs s |")
print("|---|---|---:|---:|---:|---|")
for k in kinds:
    rs = [r for r in small if r["setting"] == k]
    print(f"| {k} | {rs[0]['note']} | {open_med[k]:.3f} | {median([r['cpu'] for r in rs]):.2f} | "
          f"{open_med[k] - open_med['plaintext']:.3f} | " + ", ".join(f"{r['wall']:.3f}" for r in rs) + " |")
default_extra = open_med["encrypted-kdf-default"] - open_med[f"encrypted-kdf-{kdf}"]

print("\n### Encrypted vs plaintext at the same compression (medians)\n")
print("Slowdown = encrypted wall / plaintext wall - 1 (positive = encrypted slower; target <= +15%). "
      "*incl. KDF* is as measured (the encrypted commands pay the "
      f"`--kdf-target-ms {kdf}` KDF); *excl. KDF* subtracts the fixed cost of opening the encrypted repository "
      "(median `snapshots` wall on the encrypted minus the plaintext repository of the same table); "
      "*with default KDF* adds the measured difference between the default-KDF and the "
      f"`--kdf-target-ms {kdf}` small repositories ({default_extra:.3f} s), i.e. what a repository created "
      "with the default `init` would pay (derived, not run).\n")
print("| db compression | compression | backup slowdown incl. KDF | excl. KDF | with default KDF | restore slowdown incl. KDF | excl. KDF | with default KDF | fixed cost s (open enc - plain) | <= 15% (backup / restore, excl. KDF) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
for db in dbs:
    for comp, enc, plain in (("auto", "enc-auto", "plain-auto"), ("off", "enc-off", "plain-off"),
                             ("off, xchacha20-poly1305", "enc-off-xchacha", "plain-off")):
        if (db, enc) not in summary or (db, plain) not in summary:
            continue
        e, p = summary[(db, enc)], summary[(db, plain)]
        fixed = e["ow"] - p["ow"]
        b_in, r_in = e["bw"] / p["bw"] - 1, e["rw"] / p["rw"] - 1
        b_ex, r_ex = (e["bw"] - fixed) / p["bw"] - 1, (e["rw"] - fixed) / p["rw"] - 1
        b_def, r_def = (e["bw"] + default_extra) / p["bw"] - 1, (e["rw"] + default_extra) / p["rw"] - 1
        ok = lambda x: "yes" if x <= 0.15 else "**no**"
        print(f"| {db} | {comp} | {pct(b_in)} | {pct(b_ex)} | {pct(b_def)} | {pct(r_in)} | {pct(r_ex)} | {pct(r_def)} | {fixed:.3f} | {ok(b_ex)} / {ok(r_ex)} |")

print("\n### Stored size (medians of `du -sb` of the repository)\n")
print(f"`du -sb` counts the repository's {sys.argv[3]} directories ({int(sys.argv[4]) / 1e6:.2f} MB) too; *packs* is the "
      "backup's `bytes_stored` (pack files only). Plaintext settings (unkeyed chunker) give the same chunks every "
      "run; every encrypted repository has its own master key, hence its own chunk boundaries.\n")
print("| db compression | checkpoint MB | off MB | auto MB | zstd:3 MB | auto / off | zstd:3 / off | auto / off (packs) | enc-auto / plain-auto | enc-off / plain-off |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for db in dbs:
    g = lambda s: summary[(db, s)]["stored"]
    pk = lambda s: summary[(db, s)]["packs"]
    print(f"| {db} | {mb(summary[(db, 'plain-off')]['data'])} | {mb(g('plain-off'))} | {mb(g('plain-auto'))} | {mb(g('plain-zstd3'))} | "
          f"{g('plain-auto') / g('plain-off'):.3f} | {g('plain-zstd3') / g('plain-off'):.3f} | {pk('plain-auto') / pk('plain-off'):.3f} | "
          f"{g('enc-auto') / g('plain-auto'):.3f} | {g('enc-off') / g('plain-off'):.4f} |")
EOF
