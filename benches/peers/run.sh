#!/usr/bin/env bash
# Peer comparison: lsmvault against restic, borg, rsync --link-dest and cp -a
# on churned RocksDB checkpoints (issue 3).
#
# For every dataset (db_bench SSTs compressed with snappy, and with zstd) the
# script fills a RocksDB with db_bench, then for generation 1..G: overwrites
# ~7.5% of the keys (generation >= 2), takes an `ldb checkpoint`, reports the
# bytes of the checkpoint that are new (inode not in the previous checkpoint;
# SST / WAL / MANIFEST+other) and backs the checkpoint up with every tool, each
# into its own fresh repository (checkpoint and backups interleave as they
# would in production, so hard-linking a checkpoint changes the ctime of the
# previous checkpoint's SSTs before the next backup, as it does for real).
# Then: an unchanged backup of the newest generation, restores of the newest
# and the oldest generation (each checked with `diff -r` against the
# checkpoint AND opened: `ldb --db=RESTORED scan | md5sum` must equal the scan
# of a copy of the checkpoint), a full verify where the tool has one, repeated
# initial backups into scratch repositories, and the machine's ceilings.
#
# Every tool is one adapter block (`adapter_TOOL_{init,backup,restore,verify}`
# below); add a tool by adding a block and its name to ALL_TOOLS.
#
# Timing technique as in benches/generations.sh: wall from bash's microsecond
# clock, CPU and peak RSS from GNU time, `sync` and a prefault file (written
# and deleted) before every timed step, warm page cache. The generation series
# runs once; the initial backup, both restores and the verify run --repeat
# times (medians reported).
#
#   benches/peers/run.sh                                        # ~1 GiB, 8 generations, all tools
#   benches/peers/run.sh --size-mb 20 --generations 2 --tools lsmvault   # smoke test
#
# Options:
#   --size-mb N          approximate live data of the database [1024]
#   --generations G      checkpoints per dataset [8]
#   --churn-percent P    keys overwritten between checkpoints [7.5]
#   --repeat N           runs of initial backup, restores, verify [3; 1 below 256 MiB]
#   --tools LIST         comma-separated subset of: lsmvault,lsmvault-baseline,restic,restic-ignore-ctime,
#                        borg-lz4,borg-zstd3,rsync,cp  [all]
#   --datasets LIST      comma-separated subset of: snappy,zstd [both]
#   --work DIR           work directory (absent or empty); default mktemp under /tmp
#   --keep               keep the work directory
#   --no-build           use the existing lsmvault binary (LSMVAULT_BIN or target/release)
#   --no-install         do not apt-get install missing tools
#   --no-prefault        skip the prefault file before each timed step
#   --no-ceilings        skip machine ceilings
#   --no-scan            skip the `ldb scan` open check of restores
#   --out FILE           also write the Markdown to FILE and the raw rows to FILE.tsv
#   --chart FILE         PNG chart (repository size and backup time per generation);
#                        needs python3 matplotlib (pip install matplotlib)
#
# Note: db_bench values repeat a 1 MiB random buffer (--compression_ratio 0.5),
# i.e. artificial redundancy: compression figures flatter every compressing tool.

set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# A failed step is reported in the table, not fatal.
MEASURE_FAILURES=return

SIZE_MB=1024
GENERATIONS=8
CHURN_PERCENT=7.5
REPEAT=""
ALL_TOOLS=lsmvault,lsmvault-baseline,restic,restic-ignore-ctime,borg-lz4,borg-zstd3,rsync,cp
TOOLS=$ALL_TOOLS
DATASETS=snappy,zstd
WORK=""
KEEP=0
BUILD=1
INSTALL=1
PREFAULT=1
CEILINGS=1
SCAN=1
OUT=""
CHART=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        --size-mb) SIZE_MB=$2; shift 2 ;;
        --generations) GENERATIONS=$2; shift 2 ;;
        --churn-percent) CHURN_PERCENT=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --tools) TOOLS=$2; shift 2 ;;
        --datasets) DATASETS=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --no-install) INSTALL=0; shift ;;
        --no-prefault) PREFAULT=0; shift ;;
        --no-ceilings) CEILINGS=0; shift ;;
        --no-scan) SCAN=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        --chart) CHART=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $SIZE_MB =~ ^[0-9]+$ && $SIZE_MB -ge 1 ]] || { echo "--size-mb must be a positive integer" >&2; exit 2; }
[[ $GENERATIONS =~ ^[0-9]+$ && $GENERATIONS -ge 1 ]] || { echo "--generations must be >= 1" >&2; exit 2; }
if [[ -z $REPEAT ]]; then REPEAT=3; ((SIZE_MB < 256)) && REPEAT=1; fi
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
IFS=, read -r -a DATASET_LIST <<<"$DATASETS"
for t in "${TOOL_LIST[@]}"; do [[ ,$ALL_TOOLS, == *,$t,* ]] || { echo "unknown tool $t" >&2; exit 2; }; done
for d in "${DATASET_LIST[@]}"; do [[ $d == snappy || $d == zstd ]] || { echo "unknown dataset $d" >&2; exit 2; }; done

has_tool() { [[ ,$TOOLS, == *,$1,* ]]; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LSMVAULT=${LSMVAULT_BIN:-$ROOT/target/release/lsmvault}
# lsmvault-baseline: another build of lsmvault (LSMVAULT_BASELINE_BIN), measured
# beside this one on the same data, e.g. the commit before a refactoring.
LSMVAULT_BASELINE=${LSMVAULT_BASELINE_BIN:-}

# --- installation ------------------------------------------------------------
need=()
command -v db_bench >/dev/null && command -v ldb >/dev/null || need+=(rocksdb-tools)
[[ -x /usr/bin/time ]] || need+=(time)
{ has_tool restic || has_tool restic-ignore-ctime; } && ! command -v restic >/dev/null && need+=(restic)
{ has_tool borg-lz4 || has_tool borg-zstd3; } && ! command -v borg >/dev/null && need+=(borgbackup)
has_tool rsync && ! command -v rsync >/dev/null && need+=(rsync)
if [[ ${#need[@]} -gt 0 ]]; then
    [[ $INSTALL -eq 1 && $(id -u) -eq 0 ]] || die "missing: ${need[*]} (apt-get install -y ${need[*]})"
    log "apt-get install -y ${need[*]}"
    apt-get install -y -q "${need[@]}" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need[@]}" >/dev/null 2>&1; } ||
        die "apt-get install ${need[*]} failed"
fi
for tool in db_bench ldb python3 diff du md5sum; do command -v "$tool" >/dev/null || die "$tool not found"; done

if [[ $BUILD -eq 1 && -z ${LSMVAULT_BIN:-} ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
if has_tool lsmvault; then [[ -x $LSMVAULT ]] || die "$LSMVAULT missing"; fi
if has_tool lsmvault-baseline; then
    [[ -x $LSMVAULT_BASELINE ]] || die "lsmvault-baseline needs LSMVAULT_BASELINE_BIN (an executable lsmvault)"
fi

if [[ -z $WORK ]]; then
    WORK=$(mktemp -d /tmp/lsmvault-peers.XXXXXX)
else
    mkdir -p "$WORK"
    [[ -z $(ls -A "$WORK") ]] || die "--work $WORK is not empty"
    WORK=$(cd "$WORK" && pwd)
fi
cleanup() {
    local status=$?
    if [[ $KEEP -eq 1 ]]; then log "kept work directory $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
LOGS=$WORK/logs
RESULTS=$WORK/results.tsv
NEWBYTES=$WORK/newbytes.tsv
mkdir -p "$LOGS"
: >"$RESULTS"
: >"$NEWBYTES"

export RESTIC_PASSWORD=peers-benchmark RESTIC_CACHE_DIR=$WORK/restic-cache
export BORG_BASE_DIR=$WORK/borg-home BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
unset LSMVAULT_PASSWORD LSMVAULT_PASSWORD_FILE LSMVAULT_REPOSITORY

series_sizes "$SIZE_MB" "$CHURN_PERCENT"

# --- measurement (helpers in benches/lib.sh) ---------------------------------

# record DATASET TOOL STEP GEN RUN REPO_BYTES OK NOTE (after measure)
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$WALL" "$CPU" "$RSS" "$OTHER" "$6" "$7" "$8" >>"$RESULTS"
}
# the setup rows of the generation series (benches/lib.sh)
series_recorded() { record "$SERIES_DATASET" setup "$1" "$2" "" "$3" ok ""; }

PREFAULT_MB=$((SIZE_MB * 5 / 4 + 1))

# --- adapters ------------------------------------------------------------------
# adapter_T_init REPO                  create an empty repository (untimed)
# adapter_T_backup REPO GEN SRC PREV   set CMD to the backup command of SRC as generation
#                                      GEN (GEN "unchanged": the newest again; PREV: previous
#                                      generation name or empty)
# adapter_T_restore REPO GEN TARGET    set CMD to restore GEN into TARGET (absent);
#                                      set RESTORED to the directory holding the files
# adapter_T_verify REPO                set CMD to the full verify, or CMD=() if none
# STAGED_T=1: the tool backs up from one fixed path ($STAGE) that the checkpoint is
# renamed to for the backup (restic and borg find their parent / files cache by path).

# lsmvault: every checkpoint directory as it is (siblings: the previous one is the parent).
STAGED_lsmvault=0
adapter_lsmvault_init() { "$LSMVAULT" --repo "$1" --quiet init --no-encryption >/dev/null; }
adapter_lsmvault_backup() { CMD=("$LSMVAULT" --repo "$1" --json --quiet backup "$3" --tag "$2"); }
adapter_lsmvault_restore() { CMD=("$LSMVAULT" --repo "$1" --json --quiet restore "latest:$2" --target "$3"); RESTORED=$3; }
adapter_lsmvault_verify() { CMD=("$LSMVAULT" --repo "$1" --json --quiet verify --read-data); }

# lsmvault-baseline: the lsmvault adapter with the baseline build.
STAGED_lsmvault_baseline=0
adapter_lsmvault_baseline_init() { LSMVAULT=$LSMVAULT_BASELINE adapter_lsmvault_init "$@"; }
adapter_lsmvault_baseline_backup() { LSMVAULT=$LSMVAULT_BASELINE adapter_lsmvault_backup "$@"; }
adapter_lsmvault_baseline_restore() { LSMVAULT=$LSMVAULT_BASELINE adapter_lsmvault_restore "$@"; }
adapter_lsmvault_baseline_verify() { LSMVAULT=$LSMVAULT_BASELINE adapter_lsmvault_verify "$@"; }

# restic: repository format 2, --compression auto.
STAGED_restic=1
adapter_restic_init() { restic -r "$1" --quiet init --repository-version 2 >/dev/null; }
adapter_restic_backup() { CMD=(restic -r "$1" --compression auto --quiet backup --tag "$2" "$3"); }
adapter_restic_restore() { CMD=(restic -r "$1" --quiet restore latest --tag "$2" --target "$3"); RESTORED=$3$STAGE; }
adapter_restic_verify() { CMD=(restic -r "$1" --quiet check --read-data); }

# restic --ignore-ctime: hard-linking a checkpoint changes the ctime of the
# previous checkpoint's SSTs, which restic otherwise takes as a change (re-read).
STAGED_restic_ignore_ctime=1
adapter_restic_ignore_ctime_init() { adapter_restic_init "$@"; }
adapter_restic_ignore_ctime_backup() { adapter_restic_backup "$@"; CMD+=(--ignore-ctime); }
adapter_restic_ignore_ctime_restore() { adapter_restic_restore "$@"; }
adapter_restic_ignore_ctime_verify() { adapter_restic_verify "$@"; }

# borg 1.2: unencrypted, paths relative to the stage directory.
STAGED_borg_lz4=1
adapter_borg_lz4_init() { borg init -e none "$1" >/dev/null 2>&1; }
adapter_borg_lz4_backup() { CMD=(env -C "$3" borg create --compression "${BORG_COMPRESSION:-lz4}" "$1::$2" .); }
adapter_borg_lz4_restore() { mkdir -p "$3"; CMD=(env -C "$3" borg extract "$1::$2"); RESTORED=$3; }
adapter_borg_lz4_verify() { CMD=(borg check --verify-data "$1"); }
STAGED_borg_zstd3=1
adapter_borg_zstd3_init() { adapter_borg_lz4_init "$@"; }
adapter_borg_zstd3_backup() { BORG_COMPRESSION=zstd,3 adapter_borg_lz4_backup "$@"; }
adapter_borg_zstd3_restore() { adapter_borg_lz4_restore "$@"; }
adapter_borg_zstd3_verify() { adapter_borg_lz4_verify "$@"; }

# rsync --link-dest: one tree per generation, unchanged files (size + mtime in
# whole seconds) hard-linked to the previous tree. Restore: rsync -a back.
STAGED_rsync=0
adapter_rsync_init() { mkdir -p "$1"; }
adapter_rsync_backup() {
    CMD=(rsync -a)
    [[ -n $4 ]] && CMD+=(--link-dest="$1/$4")
    CMD+=("$3/" "$1/$2/")
}
adapter_rsync_restore() { CMD=(rsync -a "$1/$2/" "$3/"); RESTORED=$3; }
adapter_rsync_verify() { CMD=(); }

# cp -a: a full copy per generation.
STAGED_cp=0
adapter_cp_init() { mkdir -p "$1"; }
adapter_cp_backup() { CMD=(cp -a "$3" "$1/$2"); }
adapter_cp_restore() { CMD=(cp -a "$1/$2" "$3"); RESTORED=$3; }
adapter_cp_verify() { CMD=(); }

fn() { echo "adapter_${1//-/_}_$2"; }
staged() { local v="STAGED_${1//-/_}"; [[ ${!v} -eq 1 ]]; }

# tool_backup DATASET TOOL REPO GEN_NAME CKPT_DIR PREV_NAME STEP RUN: one timed backup.
tool_backup() {
    local dataset=$1 tool=$2 repo=$3 gen=$4 src=$5 prev=$6 step=$7 run=$8 ok=ok status=0
    local from=$src
    settle
    if staged "$tool"; then mv "$src" "$STAGE"; from=$STAGE; fi
    "$(fn "$tool" backup)" "$repo" "$gen" "$from" "$prev"
    measure "$dataset-$tool-$step-$gen-r$run" "${CMD[@]}" || { status=$?; ok="FAILED($status)"; }
    if staged "$tool"; then mv "$STAGE" "$src"; fi
    record "$dataset" "$tool" "$step" "$gen" "$run" "$(bytes_of "$repo")" "$ok" ""
}

# scan_md5 DIR: md5 of `ldb scan` of a throw-away copy of DIR (ldb open writes).
scan_md5() {
    local copy=$WORK/scan-copy
    rm -rf "$copy"
    cp -a "$1" "$copy"
    local sum
    sum=$( { ldb --db="$copy" scan 2>/dev/null || echo LDB-FAILED; } | md5sum | cut -d' ' -f1)
    rm -rf "$copy"
    echo "$sum"
}

# --- ceilings --------------------------------------------------------------------
ceilings() {
    local blob=$WORK/ceiling.bin count=$((SIZE_MB / 16)) dir=$1
    ((count > 64)) && count=64
    ((count < 4)) && count=4
    for ((run = 1; run <= REPEAT; run++)); do
        settle
        measure "ceiling-cat-r$run" sh -c 'cat "$@" >/dev/null' sh "$dir"/* && record machine ceiling cat "$(bytes_of "$dir")" "$run" "" ok ""
        rm -f "$blob"; settle
        measure "ceiling-dd-r$run" dd if=/dev/zero of="$blob" bs=16M count="$count" conv=fsync &&
            record machine ceiling dd_fsync "$((count * 16 * 1048576))" "$run" "" ok ""
        rm -f "$blob"
    done
}

# --- one dataset ---------------------------------------------------------------
run_dataset() {
    local dataset=$1 base=$WORK/$dataset
    DB=$base/db
    CKPT=$base/ckpt
    STAGE=$base/stage/db
    mkdir -p "$CKPT" "$base/stage"
    series_fill "$dataset" "$DB"
    local tool
    for tool in "${TOOL_LIST[@]}"; do
        rm -rf "$base/repo-$tool"
        "$(fn "$tool" init)" "$base/repo-$tool"
    done
    local generation prev=""
    for ((generation = 1; generation <= GENERATIONS; generation++)); do
        series_checkpoint "$generation" "$CKPT" "$NEWBYTES"
        for tool in "${TOOL_LIST[@]}"; do
            tool_backup "$dataset" "$tool" "$base/repo-$tool" "gen$generation" "$CKPT/gen$generation" "$prev" \
                "$([[ $generation -eq 1 ]] && echo initial || echo incremental)" 1
        done
        prev=gen$generation
    done
    series_unique "$CKPT" "$NEWBYTES"
    for tool in "${TOOL_LIST[@]}"; do
        tool_backup "$dataset" "$tool" "$base/repo-$tool" unchanged "$CKPT/gen$GENERATIONS" "gen$GENERATIONS" unchanged 1
    done

    # reference scans of the oldest and newest checkpoints
    declare -A REF
    if [[ $SCAN -eq 1 ]]; then
        for g in 1 "$GENERATIONS"; do REF[$g]=$(scan_md5 "$CKPT/gen$g"); log "[$dataset] ldb scan gen$g: ${REF[$g]}"; done
    fi

    local run target=$WORK/restore which g ok checks
    for tool in "${TOOL_LIST[@]}"; do
        for ((run = 1; run <= REPEAT; run++)); do
            local order=(newest oldest)
            ((run % 2 == 0)) && order=(oldest newest)
            for which in "${order[@]}"; do
                g=$GENERATIONS
                [[ $which == oldest ]] && g=1
                rm -rf "$target"
                settle
                "$(fn "$tool" restore)" "$base/repo-$tool" "gen$g" "$target"
                ok=ok
                checks=""
                if measure "$dataset-$tool-restore_$which-gen$g-r$run" "${CMD[@]}"; then
                    if diff -r "$CKPT/gen$g" "$RESTORED" >"$LOGS/$dataset-$tool-restore-gen$g-r$run.diff" 2>&1; then
                        checks="diff -r identical"
                    else
                        ok=DIFFERS
                        checks="diff -r: $(grep -c . "$LOGS/$dataset-$tool-restore-gen$g-r$run.diff") lines differ"
                    fi
                    if [[ $SCAN -eq 1 && $run -eq 1 ]]; then
                        local sum
                        sum=$(scan_md5 "$RESTORED")
                        if [[ $sum == "${REF[$g]}" ]]; then
                            checks+="; ldb scan equal"
                        else
                            ok="OPEN-FAILED"
                            checks+="; ldb scan DIFFERS/FAILED"
                        fi
                    fi
                else
                    ok=FAILED
                fi
                local w=$WALL c=$CPU r=$RSS o=$OTHER
                WALL=$w CPU=$c RSS=$r OTHER=$o
                record "$dataset" "$tool" "restore_$which" "gen$g" "$run" "" "$ok" "$checks"
                log "[$dataset] $tool restore gen$g run $run: $ok ($checks)"
                rm -rf "$target"
            done
        done
        "$(fn "$tool" verify)" "$base/repo-$tool"
        if [[ ${#CMD[@]} -gt 0 ]]; then
            for ((run = 1; run <= REPEAT; run++)); do
                settle
                ok=ok
                measure "$dataset-$tool-verify-r$run" "${CMD[@]}" || ok=FAILED
                record "$dataset" "$tool" verify "" "$run" "$(bytes_of "$base/repo-$tool")" "$ok" ""
            done
        fi
        for ((run = 2; run <= REPEAT; run++)); do
            local scratch=$base/scratch-$tool
            rm -rf "$scratch"
            "$(fn "$tool" init)" "$scratch"
            tool_backup "$dataset" "$tool" "$scratch" gen1 "$CKPT/gen1" "" initial "$run"
            rm -rf "$scratch"
        done
    done
    for tool in "${TOOL_LIST[@]}"; do du -sb "$base/repo-$tool" >>"$LOGS/repo-sizes"; done
    [[ $CEILINGS -eq 1 && $dataset == "${DATASET_LIST[0]}" ]] && ceilings "$CKPT/gen$GENERATIONS"
    # free the disk before the next dataset
    rm -rf "$base"
}

log "work $WORK; ~$SIZE_MB MiB ($KEYS keys), $GENERATIONS generations, $CHURN_KEYS keys overwritten each; tools $TOOLS; datasets $DATASETS; repeat $REPEAT"
for dataset in "${DATASET_LIST[@]}"; do run_dataset "$dataset"; done

# --- report ----------------------------------------------------------------------
versions="lsmvault: $("$LSMVAULT" --version 2>/dev/null || echo n/a), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/')"
[[ -n $LSMVAULT_BASELINE ]] && versions+="; lsmvault-baseline: $LSMVAULT_BASELINE"
has_tool restic && versions+="; $(restic version | cut -d' ' -f1-2)"
has_tool borg-lz4 && versions+="; $(borg --version)"
has_tool rsync && versions+="; rsync $(rsync --version | awk 'NR == 1 {print $3}')"
REPORT=$WORK/report.md
python3 - "$RESULTS" "$NEWBYTES" "$SIZE_MB" "$KEYS" "$GENERATIONS" "$CHURN_KEYS" "$REPEAT" "$versions" "$(nproc)" "$PREFAULT" "${CHART:-}" >"$REPORT" <<'PY'
import statistics, sys, collections
results, newbytes, size_mb, keys, G, churn, repeat, versions, ncpu, prefault, chart = sys.argv[1:12]
G = int(G)
rows = []
for line in open(results):
    ds, tool, step, gen, run, wall, cpu, rss, other, repo, ok, note = line.rstrip("\n").split("\t")
    rows.append(dict(ds=ds, tool=tool, step=step, gen=gen, run=run, wall=float(wall), cpu=float(cpu), rss=int(rss),
                     other=float(other), repo=int(repo) if repo else None, ok=ok, note=note))
nb = collections.defaultdict(list); unique = {}
for line in open(newbytes):
    f = line.rstrip("\n").split("\t")
    if f[1] == "unique":
        unique[f[0]] = int(f[2])
    else:
        nb[f[0]].append(f)
MB = lambda b: b / 1e6
med = lambda v: statistics.median(v) if v else float("nan")
print(f"- database: ~{size_mb} MiB target, {keys} keys (db_bench fillrandom, value_size 400), {G} generations, "
      f"overwrite of {churn} keys between generations; {versions}")
print(f"- machine: {ncpu} cores; warm page cache; before each timed step `sync`" + (" and a prefault file" if prefault == "1" else ""))
print(f"- generation series (incremental backups, repository sizes): 1 run; initial backup, restores, verify: "
      f"median of {repeat} run(s). MB = 10^6 bytes. db_bench values repeat a 1 MiB random buffer: "
      f"compression ratios are flattered by artificial redundancy.")
datasets = list(dict.fromkeys(r["ds"] for r in rows if r["ds"] != "machine"))
order = list(dict.fromkeys(r["tool"] for r in rows if r["ds"] != "machine" and r["step"] in ("initial",)))
summary = {}
for ds in datasets:
    print(f"\n### Dataset: {ds} SSTs\n")
    print("| generation | checkpoint MB | files | new SST MB | new WAL MB | new MANIFEST+other MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for f in nb[ds]:
        print(f"| {f[1]} | {MB(int(f[2])):.1f} | {f[3]} | {MB(int(f[4])):.1f} | {MB(int(f[5])):.2f} | {MB(int(f[6])):.3f} |")
    u = unique.get(ds, 0)
    print(f"\nUnique bytes over all generations (`du -sb` of all checkpoints, hard links counted once): {MB(u):.1f} MB\n")
    print("| tool | initial s | initial CPU s | mean incremental s | unchanged s (% of initial) | repo MB | repo / unique | restore newest s | restore oldest s | verify s | peak RSS MiB (backup / restore / verify) | restore checks |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for tool in order:
        R = [r for r in rows if r["ds"] == ds and r["tool"] == tool]
        st = lambda s: [r for r in R if r["step"] == s]
        ini = st("initial"); inc = st("incremental"); unc = st("unchanged")
        rn = st("restore_newest"); ro = st("restore_oldest"); ver = st("verify")
        series = [r for r in R if r["step"] in ("initial", "incremental") and r["run"] == "1"]
        s = dict(initial=med([r["wall"] for r in ini]), initial_cpu=med([r["cpu"] for r in ini]),
                 incr=statistics.mean([r["wall"] for r in inc]) if inc else float("nan"),
                 unchanged=unc[0]["wall"] if unc else float("nan"),
                 repo=series[-1]["repo"] if series else 0,
                 rn=med([r["wall"] for r in rn if r["ok"] != "FAILED"]), ro=med([r["wall"] for r in ro if r["ok"] != "FAILED"]),
                 verify=med([r["wall"] for r in ver]) if ver else None,
                 rss_b=max([r["rss"] for r in ini + inc + unc] or [0]) // 1024,
                 rss_r=max([r["rss"] for r in rn + ro] or [0]) // 1024,
                 rss_v=max([r["rss"] for r in ver] or [0]) // 1024,
                 series=[(r["gen"], r["wall"], r["repo"]) for r in series],
                 fails=[f"{r['step']} {r['gen']} run {r['run']}: {r['ok']} ({r['note']})" for r in R if r["ok"] != "ok"],
                 checks=sorted(set(r["note"] for r in rn + ro if r["note"])))
        summary[(ds, tool)] = s
        fails = "; ".join(s["fails"]) if s["fails"] else "all restores identical" + (" and open" if any("ldb" in c for c in s["checks"]) else "")
        print(f"| {tool} | {s['initial']:.2f} | {s['initial_cpu']:.2f} | {s['incr']:.2f} | {s['unchanged']:.3f} ({s['unchanged'] / s['initial'] * 100:.1f}%) | "
              f"{MB(s['repo']):.1f} | {s['repo'] / u if u else float('nan'):.2f} | {s['rn']:.2f} | {s['ro']:.2f} | "
              f"{'n/a' if s['verify'] is None else format(s['verify'], '.2f')} | {s['rss_b']} / {s['rss_r']} / {s['rss_v'] if s['verify'] is not None else '-'} | {fails} |")
    print("\nPer-generation backup wall s (repository MB after it):\n")
    print("| tool | " + " | ".join(f"gen{g}" for g in range(1, G + 1)) + " | unchanged |")
    print("|---|" + "---:|" * (G + 1))
    for tool in order:
        s = summary[(ds, tool)]
        print(f"| {tool} | " + " | ".join(f"{w:.2f} ({MB(b):.0f})" for _, w, b in s["series"]) + f" | {s['unchanged']:.3f} |")
    L = summary.get((ds, "lsmvault"))
    if L:
        print("\nTargets (lsmvault against peers, same run):\n")
        print("| target | measured | met |")
        print("|---|---|---|")
        def t(name, val, limit, txt):
            ok = val <= limit
            print(f"| {name} | {txt} | {'yes' if ok else '**no**'} |")
        P = lambda tl: summary.get((ds, tl))
        if P("rsync"):
            t("initial backup <= 1.0x rsync --link-dest", L["initial"] / P("rsync")["initial"], 1.0,
              f"{L['initial']:.2f} s / {P('rsync')['initial']:.2f} s = {L['initial'] / P('rsync')['initial']:.2f}x")
            t("mean incremental <= 0.5x rsync", L["incr"] / P("rsync")["incr"], 0.5,
              f"{L['incr']:.2f} s / {P('rsync')['incr']:.2f} s = {L['incr'] / P('rsync')['incr']:.2f}x")
            t("restore newest <= 1.0x rsync copy-back", L["rn"] / P("rsync")["rn"], 1.0,
              f"{L['rn']:.2f} s / {P('rsync')['rn']:.2f} s = {L['rn'] / P('rsync')['rn']:.2f}x")
        if P("borg-zstd3"):
            t("repo after all generations <= borg zstd,3", L["repo"] / P("borg-zstd3")["repo"], 1.0,
              f"{MB(L['repo']):.1f} MB / {MB(P('borg-zstd3')['repo']):.1f} MB = {L['repo'] / P('borg-zstd3')['repo']:.2f}x")
        t("unchanged backup <= 2% of initial", L["unchanged"] / L["initial"], 0.02,
          f"{L['unchanged']:.3f} s / {L['initial']:.2f} s = {L['unchanged'] / L['initial'] * 100:.2f}%")
        if P("restic"):
            t("restore newest <= 0.55x restic", L["rn"] / P("restic")["rn"], 0.55,
              f"{L['rn']:.2f} s / {P('restic')['rn']:.2f} s = {L['rn'] / P('restic')['rn']:.2f}x")
            t("verify --read-data <= 0.35x restic check --read-data", L["verify"] / P("restic")["verify"], 0.35,
              f"{L['verify']:.2f} s / {P('restic')['verify']:.2f} s = {L['verify'] / P('restic')['verify']:.2f}x")
            print(f"| (info) initial backup vs restic | {L['initial'] / P('restic')['initial']:.2f}x | |")
            print(f"| (info) mean incremental vs restic | {L['incr'] / P('restic')['incr']:.2f}x | |")
        rss = max(L["rss_b"], L["rss_r"], L["rss_v"])
        t("peak RSS of every lsmvault command <= 64 MiB", rss, 64, f"max {rss} MiB (backup {L['rss_b']}, restore {L['rss_r']}, verify {L['rss_v']})")
C = [r for r in rows if r["ds"] == "machine"]
if C:
    print("\n### Machine ceilings\n\n| measurement | MB | median wall s | median MB/s |\n|---|---:|---:|---:|")
    for g in dict.fromkeys(r["step"] for r in C):
        rs = [r for r in C if r["step"] == g]
        w = med([r["wall"] for r in rs]); d = int(rs[0]["gen"])
        print(f"| {g} | {MB(d):.0f} | {w:.3f} | {MB(d) / w:.0f} |")
if chart:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib not installed: no chart)")
    else:
        fig, axes = plt.subplots(len(datasets), 2, figsize=(12, 4.2 * len(datasets)), squeeze=False)
        for i, ds in enumerate(datasets):
            for tool in order:
                s = summary[(ds, tool)]
                xs = list(range(1, len(s["series"]) + 1))
                axes[i][0].plot(xs, [MB(b) for _, _, b in s["series"]], marker="o", label=tool)
                axes[i][1].plot(xs, [w for _, w, _ in s["series"]], marker="o", label=tool)
            axes[i][0].set_title(f"{ds} SSTs: repository size after each generation")
            axes[i][0].set_ylabel("MB"); axes[i][0].set_xlabel("generation"); axes[i][0].set_yscale("log")
            axes[i][1].set_title(f"{ds} SSTs: backup wall time per generation")
            axes[i][1].set_ylabel("s"); axes[i][1].set_xlabel("generation"); axes[i][1].set_yscale("log")
            axes[i][0].legend(fontsize=8); axes[i][1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(chart, dpi=90)
        print(f"\nChart: `{chart}`")
PY
cat "$REPORT"
if [[ -n $OUT ]]; then cp "$REPORT" "$OUT"; cp "$RESULTS" "$OUT.tsv"; cat "$NEWBYTES" >>"$OUT.tsv"; fi
