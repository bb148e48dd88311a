#!/usr/bin/env bash
# Object storage benchmark (issue 11, "Performance"): lsmvault against restic
# 0.14 backing up the 8-generation RocksDB series to a real S3 server (moto)
# behind a shaped link, at each link speed of --rates.
#
# Network: a namespace (lsmv-s3) joined to the host by a veth pair (host
# 10.213.0.1/30, namespace 10.213.0.2/30); moto_server runs inside it; `tc
# qdisc tbf` shapes BOTH directions at the rate measured (host-side veth
# egress = upload, namespace-side egress = download). The namespace, the veth
# pair and moto are removed by a trap on exit, on failure and on Ctrl-C (not
# after SIGKILL: then `ip netns pids lsmv-s3 | xargs -r kill; ip netns del
# lsmv-s3`). Runs as root.
#
# Data (--dataset): dbbench = db_bench fills a RocksDB (snappy SSTs), then
# generations 2..G each overwrite ~7.5% of the keys before an `ldb
# checkpoint` (benches/lib.sh, the series of benches/peers/run.sh); corpus =
# the same with records whose values are slices of real text found on the
# machine, loaded with `ldb load` (benches/corpus.py; no value repeats
# another, unlike db_bench's). The checkpoints are made once, before the
# first rate. Taking a checkpoint hard-links the unchanged SSTs of the
# previous one, which changes their ctime (restic takes that as a change);
# so before generation K is backed up, at every rate, every file of checkpoint
# K is hard-linked and unlinked once: the ctime change the checkpoint made in
# production happens between the backups of K-1 and K at every rate.
#
# Per rate: a fresh moto, one bucket per tool, an encrypted lsmvault
# repository with default settings (s3:http://10.213.0.2:PORT/bench-lsmvault/lsmvault,
# --cache-dir in the work directory) and a restic repository (format 2,
# --compression auto, s3:http://10.213.0.2:PORT/bench-restic/restic, cache in
# the work directory). Each generation is backed up by both tools, the tool
# that goes first alternating per generation (restic backs up from one fixed
# path, STAGE, that the checkpoint is renamed to: it finds its parent snapshot
# by path). Then, with warm caches: an unchanged backup of the newest
# generation and `snapshots`, by both tools; then restores of the newest and
# the oldest generation, --repeat times (order alternating), each checked with
# `diff -r` against its checkpoint.
#
# Per step and tool: wall time (bash's clock), CPU and peak RSS (GNU time);
# bytes uploaded / downloaded = the host veth's tx_bytes / rx_bytes deltas
# (IP, TCP and HTTP included: one yardstick for both tools); requests = lines
# moto logs (one per HTTP request) between the step's start and end, and for
# lsmvault also its own count (LSMVAULT_REQUEST_STATS=1); during backups, the
# largest number of connections to moto holding > 16 KiB of unsent or unacked
# data (uploads in flight, /proc/net/tcp sampled every 20 ms). `sync` and a
# prefault file before every timed step, as in benches/generations.sh.
#
#   benches/s3/run.sh                                             # 512 MiB, 8 generations, 1gbit and 100mbit
#   benches/s3/run.sh --size-mb 32 --generations 3 --rates 1gbit   # smoke test, ~2 min
#
# Options:
#   --size-mb N        approximate live data of the database [512]
#   --generations G    checkpoints [8]
#   --churn-percent P  keys overwritten between checkpoints [7.5]
#   --dataset D        dbbench (db_bench's values) or corpus (slices of real text) [dbbench]
#   --rates LIST       comma-separated tc rates [1gbit,100mbit]
#   --repeat N         runs of each restore [3; 1 below 256 MiB]
#   --port N           moto's port inside the namespace [9000]
#   --work DIR         work directory (absent or empty); default mktemp under /tmp
#   --keep             keep the work directory (moto's logs, per-step logs)
#   --no-build         use the existing lsmvault binary (LSMVAULT_BIN or target/release)
#   --no-install       do not apt-get install missing tools
#   --no-prefault      skip the prefault file before each timed step
#   --out FILE         also write the Markdown report to FILE and the raw rows to FILE.tsv
#
# Environment: LSMVAULT_BIN (a prebuilt lsmvault; implies no build),
# LSMVAULT_MOTO_SERVER (default /opt/lsmvault-moto/bin/moto_server, which
# .ci/run installs).

set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# A failed step is reported in the tables, not fatal.
MEASURE_FAILURES="return"

SIZE_MB=512
GENERATIONS=8
CHURN_PERCENT=7.5
RATES=1gbit,100mbit
REPEAT=""
PORT=9000
WORK=""
KEEP=0
BUILD=1
INSTALL=1
PREFAULT=1
OUT=""
SERIES_SOURCE=dbbench

while [[ $# -gt 0 ]]; do
    case "$1" in
        --size-mb) SIZE_MB=$2; shift 2 ;;
        --generations) GENERATIONS=$2; shift 2 ;;
        --churn-percent) CHURN_PERCENT=$2; shift 2 ;;
        --dataset) SERIES_SOURCE=$2; shift 2 ;;
        --rates) RATES=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --no-install) INSTALL=0; shift ;;
        --no-prefault) PREFAULT=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $SIZE_MB =~ ^[0-9]+$ && $SIZE_MB -ge 1 ]] || { echo "--size-mb must be a positive integer" >&2; exit 2; }
[[ $GENERATIONS =~ ^[0-9]+$ && $GENERATIONS -ge 1 ]] || { echo "--generations must be >= 1" >&2; exit 2; }
[[ $SERIES_SOURCE == dbbench || $SERIES_SOURCE == corpus ]] || { echo "--dataset must be dbbench or corpus" >&2; exit 2; }
[[ $PORT =~ ^[0-9]+$ && $PORT -ge 1 && $PORT -le 65535 ]] || { echo "--port must be a TCP port" >&2; exit 2; }
if [[ -z $REPEAT ]]; then REPEAT=3; ((SIZE_MB < 256)) && REPEAT=1; fi
[[ $REPEAT =~ ^[0-9]+$ && $REPEAT -ge 1 ]] || { echo "--repeat must be >= 1" >&2; exit 2; }
IFS=, read -r -a RATE_LIST <<<"$RATES"
for rate in "${RATE_LIST[@]}"; do
    [[ $rate =~ ^[0-9]+(kbit|mbit|gbit)$ ]] || { echo "rate $rate: use tc units, e.g. 1gbit, 100mbit, 500kbit" >&2; exit 2; }
done
[[ $(id -u) -eq 0 ]] || die "run as root: the benchmark creates a network namespace, a veth pair and tc qdiscs"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LSMVAULT=${LSMVAULT_BIN:-$ROOT/target/release/lsmvault}
MOTO=${LSMVAULT_MOTO_SERVER:-/opt/lsmvault-moto/bin/moto_server}
NS=lsmv-s3
VETH_HOST=lsmv-s3-h
VETH_NS=lsmv-s3-n
HOST_IP=10.213.0.1
NS_IP=10.213.0.2
ENDPOINT=http://$NS_IP:$PORT
BUCKET_LSMVAULT=bench-lsmvault
BUCKET_RESTIC=bench-restic
# What the code says about lsmvault's uploads in flight (checked at commit
# 76bbfca; the report also shows what this run observed):
LSMVAULT_UPLOADS_IN_CODE="up to 8 upload threads for a remote repository (LSMVAULT_UPLOADS; crates/lsmvault/src/repo/upload_pool.rs), each uploading a pack spilled to an unlinked file in \$TMPDIR (parts of 5-6 MiB read one at a time), so 8 packs upload at once when the backup has 8 ready"
RESTIC_UPLOADS_IN_CODE="5: restic 0.14's default -o s3.connections=5"

# --- installation ------------------------------------------------------------
need=()
command -v db_bench >/dev/null && command -v ldb >/dev/null || need+=(rocksdb-tools)
[[ -x /usr/bin/time ]] || need+=(time)
command -v restic >/dev/null || need+=(restic)
command -v ip >/dev/null && command -v tc >/dev/null || need+=(iproute2)
command -v curl >/dev/null || need+=(curl)
if [[ ${#need[@]} -gt 0 ]]; then
    [[ $INSTALL -eq 1 ]] || die "missing: ${need[*]} (apt-get install -y ${need[*]})"
    log "apt-get install -y ${need[*]}"
    apt-get install -y -q "${need[@]}" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need[@]}" >/dev/null 2>&1; } ||
        die "apt-get install ${need[*]} failed"
fi
for tool in db_bench ldb python3 diff du curl restic ip tc; do command -v "$tool" >/dev/null || die "$tool not found"; done
[[ -x $MOTO ]] || die "moto_server not found at $MOTO (.ci/run installs it; or set LSMVAULT_MOTO_SERVER)"
if [[ $BUILD -eq 1 && -z ${LSMVAULT_BIN:-} ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x $LSMVAULT ]] || die "$LSMVAULT missing"

# Leftovers of a run killed with SIGKILL (or another run): refuse, never touch.
ip netns list | grep -qw "$NS" &&
    die "network namespace $NS exists (another run, or one killed by SIGKILL): ip netns pids $NS | xargs -r kill; ip netns del $NS"
ip link show "$VETH_HOST" >/dev/null 2>&1 && die "interface $VETH_HOST exists: ip link del $VETH_HOST"

if [[ -z $WORK ]]; then
    WORK=$(mktemp -d /tmp/lsmvault-s3.XXXXXX)
else
    mkdir -p "$WORK"
    [[ -z $(ls -A "$WORK") ]] || die "--work $WORK is not empty"
    WORK=$(cd "$WORK" && pwd)
fi

# --- network and moto, all removed on exit -------------------------------------
MOTO_PID=""
NS_CREATED=0
stop_moto() {
    [[ -n $MOTO_PID ]] || return 0
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=""
}
cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    stop_moto
    [[ -n ${SAMPLER_PID:-} ]] && { kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; }
    ip link del "$VETH_HOST" 2>/dev/null || true
    [[ $NS_CREATED -eq 1 ]] && { ip netns del "$NS" 2>/dev/null || log "could not delete namespace $NS"; }
    if [[ $KEEP -eq 1 ]]; then log "kept work directory $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

network_up() {
    ip netns add "$NS"
    NS_CREATED=1
    ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
    ip link set "$VETH_NS" netns "$NS"
    ip addr add "$HOST_IP/30" dev "$VETH_HOST"
    ip link set "$VETH_HOST" up
    ip netns exec "$NS" ip addr add "$NS_IP/30" dev "$VETH_NS"
    ip netns exec "$NS" ip link set "$VETH_NS" up
    ip netns exec "$NS" ip link set lo up
}

# shape RATE: tbf at RATE on both veth ends; burst = 10 ms at RATE (at least
# 128 KiB, so that a 64 KiB GSO packet passes whole).
shape() {
    local bits burst
    bits=$(rate_bits "$1")
    burst=$((bits / 8 / 100))
    ((burst < 131072)) && burst=131072
    tc qdisc replace dev "$VETH_HOST" root tbf rate "$1" burst "$burst" latency 50ms
    ip netns exec "$NS" tc qdisc replace dev "$VETH_NS" root tbf rate "$1" burst "$burst" latency 50ms
    SHAPING="tbf rate $1 burst $burst latency 50ms"
}
rate_bits() {
    local n=${1%%[a-z]*} unit=${1##*[0-9]}
    case $unit in kbit) echo $((n * 1000)) ;; mbit) echo $((n * 1000000)) ;; gbit) echo $((n * 1000000000)) ;; esac
}

start_moto() {
    MOTO_LOG=$WORK/moto-$1.log
    ip netns exec "$NS" env PYTHONUNBUFFERED=1 TMPDIR="$WORK/moto-tmp" "$MOTO" -H "$NS_IP" -p "$PORT" >"$MOTO_LOG" 2>&1 &
    MOTO_PID=$!
    local tries=0
    until curl -s -o /dev/null --max-time 2 "$ENDPOINT/"; do
        kill -0 "$MOTO_PID" 2>/dev/null || { tail "$MOTO_LOG" >&2; die "moto_server exited"; }
        ((++tries < 600)) || die "moto_server did not answer within 60 s"
        sleep 0.1
    done
    # `ip netns exec` execs moto in place: MOTO_PID is moto itself (its CPU
    # time is read from /proc/MOTO_PID/stat).
    [[ $(tr "\0" " " <"/proc/$MOTO_PID/cmdline") == *moto_server* ]] || die "process $MOTO_PID is not moto_server"
    local bucket
    for bucket in "$BUCKET_LSMVAULT" "$BUCKET_RESTIC" probe; do
        s3curl -X PUT -H 'Content-Length: 0' "$ENDPOINT/$bucket" || die "creating bucket $bucket failed"
    done
}

# s3curl ARGS...: a signed request (moto refuses anonymous reads of private objects).
s3curl() { curl -sf -o /dev/null --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"; }

# Requests moto has logged so far (werkzeug: one line per request).
moto_requests() { grep -c 'HTTP/1\.[01]' "$MOTO_LOG" || true; }
# ... once the count has been still for 0.3 s (a request is logged as its
# answer starts; this waits for the last ones to reach the log).
moto_requests_settled() {
    local before after
    after=$(moto_requests)
    while :; do
        before=$after
        sleep 0.3
        after=$(moto_requests)
        [[ $after -eq $before ]] && break
    done
    echo "$after"
}
# moto_alive WHEN: stop the benchmark if moto died (nothing left to measure).
moto_alive() {
    kill -0 "$MOTO_PID" 2>/dev/null && return 0
    tail -n 5 "$MOTO_LOG" >&2
    die "moto_server died $1: the remaining steps would measure nothing"
}
# CPU seconds moto used so far (utime + stime of its process; 0 once it is gone).
moto_cpu() { [[ -r /proc/$MOTO_PID/stat ]] || { echo 0; return; }; awk -v t="$CLOCK_TICKS" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$MOTO_PID/stat"; }
net_bytes() { echo "$(<"/sys/class/net/$VETH_HOST/statistics/tx_bytes") $(<"/sys/class/net/$VETH_HOST/statistics/rx_bytes")"; }

# Uploads in flight: connections to moto holding > 16 KiB of unsent or
# unacknowledged data, from /proc/net/tcp every 20 ms; the maximum is
# written to FILE on SIGTERM. Started and ready before the timed step.
start_sampler() {
    local ready=$WORK/sampler.ready
    rm -f "$ready"
    python3 - "$NS_IP" "$PORT" "$1" "$ready" <<'PY' &
import signal, socket, struct, sys, time
ip, port, out, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
remote = "%08X:%04X" % (struct.unpack("<I", socket.inet_aton(ip))[0], port)
peak = 0
def stop(*_):
    open(out, "w").write(f"{peak}\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(ready, "w").close()
while True:
    busy = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[2] == remote and fields[3] == "01" and int(fields[4].split(":")[0], 16) > 16384:
                busy += 1
    peak = max(peak, busy)
    time.sleep(0.02)
PY
    SAMPLER_PID=$!
    local tries=0
    until [[ -e $ready ]]; do ((++tries < 200)) || die "sampler did not start"; sleep 0.02; done
}
stop_sampler() {
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
}

# --- steps ---------------------------------------------------------------------
export AWS_ACCESS_KEY_ID=lsmvault-bench AWS_SECRET_ACCESS_KEY=lsmvault-bench-secret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export RESTIC_PASSWORD=s3-benchmark LSMVAULT_PASSWORD=s3-benchmark
unset LSMVAULT_PASSWORD_FILE LSMVAULT_PASSWORD_COMMAND LSMVAULT_REPOSITORY LSMVAULT_CACHE_DIR RESTIC_REPOSITORY
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY=$NS_IP no_proxy=$NS_IP

LOGS=$WORK/logs
RESULTS=$WORK/results.tsv
NEWBYTES=$WORK/newbytes.tsv
CKPT=$WORK/ckpt
STAGE=$WORK/stage/db
mkdir -p "$LOGS" "$CKPT" "$WORK/stage" "$WORK/moto-tmp"
: >"$RESULTS"
: >"$NEWBYTES"
PREFAULT_MB=$((SIZE_MB * 5 / 4 + 1))

# Raw rows: rate tool step gen run wall cpu rss_kib other up_bytes down_bytes
# requests own_requests own_up own_down in_flight server_cpu ok note
row() { local IFS=$'\t'; echo "$*" >>"$RESULTS"; }
series_recorded() { row setup db "$1" "$2" "" "$WALL" "$CPU" "$RSS" "$OTHER" "$3" "" "" "" "" "" "" "" ok ""; }

# lsmvault's own request count from its LSMVAULT_REQUEST_STATS=1 line, on two
# lines: "requests bytes_up bytes_down", then the requests by object kind.
own_stats() {
    python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    if line.startswith('{"request_stats"'):
        s = json.loads(line)["request_stats"]
        print(s["requests"], s["bytes_up"], s["bytes_down"])
        print("; ".join(f"{kind}: " + ", ".join(f"{m} {n}" for m, n in methods.items())
                        for kind, methods in s["by_kind"].items()))
        break
else:
    print("- - -")
    print("no request_stats line")
PY
}

repo_of() { [[ $1 == lsmvault ]] && echo "s3:$ENDPOINT/$BUCKET_LSMVAULT/lsmvault" || echo "s3:$ENDPOINT/$BUCKET_RESTIC/restic"; }
tool_cmd() { # TOOL ACTION ARGS...: sets CMD
    local tool=$1 action=$2 repo
    repo=$(repo_of "$tool")
    shift 2
    if [[ $tool == lsmvault ]]; then
        CMD=(env LSMVAULT_REQUEST_STATS=1 "$LSMVAULT" --repo "$repo" --cache-dir "$WORK/lsmvault-cache" --json --quiet)
        case $action in
            init) CMD+=(init) ;;
            backup) CMD+=(backup "$1" --tag "$2") ;;
            snapshots) CMD+=(snapshots) ;;
            restore) CMD+=(restore "latest:$1" --target "$2") ;;
        esac
    else
        CMD=(restic -r "$repo" --cache-dir "$WORK/restic-cache" --quiet)
        case $action in
            init) CMD+=(init --repository-version 2) ;;
            backup) CMD+=(--compression auto backup --tag "$2" "$1") ;;
            snapshots) CMD+=(snapshots) ;;
            restore) CMD+=(restore latest --tag "$1" --target "$2") ;;
        esac
    fi
}

# step RATE TOOL STEP GEN RUN SAMPLE(0/1) CMD...: one timed step and its row;
# sets STEP_OK.
step() {
    local rate=$1 tool=$2 name=$3 gen=$4 run=$5 sample=$6 req0 req1 up0 down0 up1 down1 own=("" "" "") peak="" stats
    local server0 server1
    STEP_KINDS=""
    shift 6
    settle
    req0=$(moto_requests_settled)
    moto_alive "before $tool $name $gen"
    read -r up0 down0 < <(net_bytes)
    server0=$(moto_cpu)
    [[ $sample -eq 1 ]] && start_sampler "$WORK/sampler.out"
    STEP_OK=ok
    measure "$rate-$tool-$name-$gen-r$run" "$@" || STEP_OK="FAILED($?)"
    [[ $sample -eq 1 ]] && { stop_sampler; peak=$(<"$WORK/sampler.out"); }
    moto_alive "during $tool $name $gen"
    read -r up1 down1 < <(net_bytes)
    server1=$(moto_cpu)
    req1=$(moto_requests_settled)
    if [[ $tool == lsmvault ]]; then
        stats=$(own_stats "$LOGS/$rate-$tool-$name-$gen-r$run.err")
        read -r -a own <<<"${stats%%$'\n'*}"
        [[ ${own[0]} == - ]] && own=("" "" "")
        STEP_KINDS=${stats#*$'\n'}
    fi
    STEP_ROW=("$rate" "$tool" "$name" "$gen" "$run" "$WALL" "$CPU" "$RSS" "$OTHER" "$((up1 - up0))" "$((down1 - down0))"
        "$((req1 - req0))" "${own[0]:-}" "${own[1]:-}" "${own[2]:-}" "$peak" "$(awk -v a="$server0" -v b="$server1" 'BEGIN { printf "%.2f", b - a }')")
    log "[$rate] $tool $name $gen: $(((up1 - up0) / 1000000)) MB up, $(((down1 - down0) / 1000000)) MB down, $((req1 - req0)) requests${own[0]:+ (own count ${own[0]})}${peak:+, $peak uploads in flight}"
}

# relink DIR: hard-link and unlink every file of DIR once (the ctime change
# taking the checkpoint made; see the header).
relink() {
    local f tmp=$WORK/relink.tmp
    for f in "$1"/*; do ln "$f" "$tmp" && rm "$tmp"; done
}

backup() { # RATE TOOL GEN_NAME CKPT_DIR STEP
    local rate=$1 tool=$2 gen=$3 src=$4 from=$4
    [[ $tool == restic ]] && { mv "$src" "$STAGE"; from=$STAGE; }
    tool_cmd "$tool" backup "$from" "$gen"
    step "$rate" "$tool" "$5" "$gen" 1 1 "${CMD[@]}"
    [[ $tool == restic ]] && mv "$STAGE" "$src"
    row "${STEP_ROW[@]}" "$STEP_OK" "$STEP_KINDS"
}

# probe RATE STEP: one 32 MiB object PUT and GET with curl (single stream,
# moto included): what one connection gets, shaped or not.
probe() {
    local blob=$WORK/probe.bin up down
    head -c $((32 * 1048576)) /dev/urandom >"$blob"
    up=$(s3curl -w '%{speed_upload}' -T "$blob" "$ENDPOINT/probe/blob") || up=0
    down=$(s3curl -w '%{speed_download}' "$ENDPOINT/probe/blob") || down=0
    s3curl -X DELETE "$ENDPOINT/probe/blob" || true
    rm -f "$blob"
    row "$1" curl "$2" "" 1 "" "" "" "" "$up" "$down" "" "" "" "" "" "" ok "single-stream bytes/s (PUT, GET) of a 32 MiB object"
    log "[$1] $2, one curl stream: PUT $((${up%.*} / 1000000)) MB/s, GET $((${down%.*} / 1000000)) MB/s"
}

run_rate() {
    local rate=$1 tool generation order
    log "[$rate] shaping both directions, fresh moto"
    tc qdisc del dev "$VETH_HOST" root 2>/dev/null || true
    ip netns exec "$NS" tc qdisc del dev "$VETH_NS" root 2>/dev/null || true
    start_moto "$rate"
    probe "$rate" probe_unshaped
    shape "$rate"
    echo "$rate	$SHAPING" >>"$WORK/shaping"
    rm -rf "$WORK/lsmvault-cache" "$WORK/restic-cache"
    probe "$rate" probe
    for tool in lsmvault restic; do
        tool_cmd "$tool" init
        "${CMD[@]}" >"$LOGS/$rate-$tool-init.out" 2>"$LOGS/$rate-$tool-init.err" ||
            { tail "$LOGS/$rate-$tool-init.err" >&2; die "[$rate] $tool init failed"; }
    done
    for ((generation = 1; generation <= GENERATIONS; generation++)); do
        relink "$CKPT/gen$generation"
        order=(lsmvault restic)
        ((generation % 2 == 0)) && order=(restic lsmvault)
        for tool in "${order[@]}"; do
            backup "$rate" "$tool" "gen$generation" "$CKPT/gen$generation" \
                "$([[ $generation -eq 1 ]] && echo initial || echo incremental)"
        done
    done
    order=(lsmvault restic)
    ((GENERATIONS % 2 == 1)) && order=(restic lsmvault)
    for tool in "${order[@]}"; do backup "$rate" "$tool" "gen$GENERATIONS" "$CKPT/gen$GENERATIONS" unchanged; done
    for tool in "${order[@]}"; do
        tool_cmd "$tool" snapshots
        step "$rate" "$tool" snapshots "" 1 0 "${CMD[@]}"
        row "${STEP_ROW[@]}" "$STEP_OK" "$STEP_KINDS"
    done
    restores "$rate"
    stop_moto
}

# restores RATE: newest and oldest generation, --repeat times, tool order and
# newest/oldest order alternating; each checked with diff -r.
restores() {
    local rate=$1 run which g tool target=$WORK/restore restored note ok
    for ((run = 1; run <= REPEAT; run++)); do
        local tools=(lsmvault restic) whiches=(newest oldest)
        ((run % 2 == 0)) && tools=(restic lsmvault) && whiches=(oldest newest)
        for which in "${whiches[@]}"; do
            g=$GENERATIONS
            [[ $which == oldest ]] && g=1
            for tool in "${tools[@]}"; do
                rm -rf "$target"
                tool_cmd "$tool" restore "gen$g" "$target"
                restored=$target
                [[ $tool == restic ]] && restored=$target$STAGE
                step "$rate" "$tool" "restore_$which" "gen$g" "$run" 0 "${CMD[@]}"
                ok=$STEP_OK note=""
                if [[ $ok == ok ]]; then
                    if diff -r "$CKPT/gen$g" "$restored" >"$LOGS/$rate-$tool-restore-gen$g-r$run.diff" 2>&1; then
                        note="diff -r identical"
                    else
                        ok=DIFFERS
                        note="diff -r: $(grep -c . "$LOGS/$rate-$tool-restore-gen$g-r$run.diff") lines differ"
                    fi
                fi
                row "${STEP_ROW[@]}" "$ok" "$note"
                log "[$rate] $tool restore gen$g run $run: $ok${note:+ ($note)}"
            done
        done
    done
    rm -rf "$target"
}

# --- run ---------------------------------------------------------------------------
series_sizes "$SIZE_MB" "$CHURN_PERCENT"
log "work $WORK; dataset $SERIES_SOURCE; ~$SIZE_MB MiB ($KEYS keys), $GENERATIONS generations, $CHURN_KEYS keys overwritten each; rates $RATES; repeat $REPEAT"
series_fill snappy "$WORK/db"
for ((generation = 1; generation <= GENERATIONS; generation++)); do
    series_checkpoint "$generation" "$CKPT" "$NEWBYTES"
done
series_unique "$CKPT" "$NEWBYTES"
rm -rf "$WORK/db" # the checkpoints hold every file the backups need

network_up
for rate in "${RATE_LIST[@]}"; do run_rate "$rate"; done

# --- report --------------------------------------------------------------------------
# checkout_state DIR: "COMMIT" (+ a note on uncommitted changes in crates/).
checkout_state() {
    local head
    head=$(git -C "$1" rev-parse --short HEAD 2>/dev/null) || { echo "? (not a git checkout)"; return; }
    echo "$head$(git -C "$1" diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/')"
}
# Where the binary comes from: a binary at CHECKOUT/target/release/lsmvault
# was built from CHECKOUT (at its HEAD if the build is not older than the
# last commit; the binary's date says).
binary_checkout() {
    local dir
    dir=$(cd "$(dirname "$LSMVAULT")" && pwd)
    if [[ $dir == */target/release ]] && git -C "${dir%/target/release}" rev-parse HEAD >/dev/null 2>&1; then
        echo "checkout ${dir%/target/release} at $(checkout_state "${dir%/target/release}"), binary built $(date -u -r "$LSMVAULT" +%FT%TZ), HEAD committed $(TZ=UTC git -C "${dir%/target/release}" log -1 --format=%cd --date=format-local:%FT%TZ)"
    else
        echo "not in a checkout's target/release: its commit is unknown"
    fi
}
ENVFILE=$WORK/environment
{
    echo "cpu	$(lscpu | awk -F: '/^Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) cores"
    echo "kernel	$(uname -r)"
    echo "memory	$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "moto	$("$(dirname "$MOTO")/python3" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?') ($MOTO)"
    echo "restic	$(restic version | cut -d' ' -f1-2)"
    echo "lsmvault	$("$LSMVAULT" --version) at $LSMVAULT ($(binary_checkout)); script from checkout $(checkout_state "$ROOT")"
    echo "lsmvault_uploads	$LSMVAULT_UPLOADS_IN_CODE"
    echo "restic_uploads	$RESTIC_UPLOADS_IN_CODE"
    if [[ $SERIES_SOURCE == corpus ]]; then
        echo "size	~$SIZE_MB MiB, $KEYS keys (corpus: values are $SERIES_VALUE_SIZE-byte slices of real text, benches/corpus.py, loaded with ldb load; snappy), $GENERATIONS generations, $CHURN_KEYS keys overwritten between generations with other slices"
    else
        echo "size	~$SIZE_MB MiB, $KEYS keys (db_bench fillrandom, value_size $SERIES_VALUE_SIZE, snappy), $GENERATIONS generations, $CHURN_KEYS keys overwritten between generations"
    fi
    echo "repeat	$REPEAT"
    echo "prefault	$PREFAULT"
    cat "$WORK/shaping"
} >"$ENVFILE"
REPORT=$WORK/report.md
python3 "$(dirname "${BASH_SOURCE[0]}")/report.py" "$RESULTS" "$NEWBYTES" "$ENVFILE" >"$REPORT"
cat "$REPORT"
if [[ -n $OUT ]]; then cp "$REPORT" "$OUT"; cp "$RESULTS" "$OUT.tsv"; cat "$NEWBYTES" >>"$OUT.tsv"; fi
