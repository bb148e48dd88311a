#!/usr/bin/env bash
# Parallel pack uploads to S3 (moto on 127.0.0.1): a backup of ~200 MiB of
# random data with LSMVAULT_UPLOADS=1 (one pack in flight) and 8 (the
# default), RUNS times each, interleaved, for each binary of BINS (before /
# after a change, on the same run); wall time and peak RSS (GNU time's max
# RSS) and uploads in flight per run, then the median of each. Two stand-ins
# for a 100 Mbit/s link:
#   link      benches/link_proxy.py between lsmvault and moto: 12.5 MB/s
#             shared by all connections, 10 ms one way (the link is idle
#             while a pack is acknowledged)
#   throttle  --limit-upload 12MiB (the token bucket in the process; it
#             saves up while a pack is acknowledged, so it hides the gap)
# Uploads in flight: the most connections from lsmvault to the proxy (or
# moto) holding > 16 KiB of unsent or unacknowledged data at once
# (/proc/net/tcp every 20 ms).
#
#   benches/uploads.sh [RUNS]        (RUNS: default 3; needs moto_server,
#                                     LSMVAULT_MOTO_SERVER or .ci/run's)
#   BINS="before=/tmp/lsmvault-old after=target/release/lsmvault" benches/uploads.sh
#   SETUPS="link" UPLOADS="8" ...    (defaults "link throttle" and "1 8")
set -euo pipefail
RUNS=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
BINS=${BINS:-current=${LSMVAULT_BIN:-$HERE/../target/release/lsmvault}}
SETUPS=${SETUPS:-link throttle}
UPLOADS=${UPLOADS:-1 8}
MOTO=${LSMVAULT_MOTO_SERVER:-/opt/lsmvault-moto/bin/moto_server}
for entry in $BINS; do [[ -x ${entry#*=} ]] || { echo "not executable: ${entry#*=}" >&2; sed -n '2,21p' "$0"; exit 2; }; done
[[ -x $MOTO && -x /usr/bin/time ]] || { sed -n '2,21p' "$0"; exit 2; }
WORK=$(mktemp -d /tmp/lsmvault-uploads.XXXXXX)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PORT=$(free_port)
LINK=$(free_port)
"$MOTO" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
python3 "$HERE/link_proxy.py" "$LINK" "$PORT" 12500000 10 &
PROXY_PID=$!
SAMPLER_PID=
trap 'kill $MOTO_PID $PROXY_PID $SAMPLER_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
mkdir "$WORK/data"
for file in $(seq 10); do head -c $((20 << 20)) /dev/urandom >"$WORK/data/f$file"; done

# Samples /proc/net/tcp until SIGTERM, then writes the most busy connections
# to port $1 seen at once to $2.
start_sampler() {
    rm -f "$WORK/sampler.ready"
    python3 - "$1" "$2" "$WORK/sampler.ready" <<'PY' &
import signal, sys, time
port, out, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]
remote = "0100007F:%04X" % port
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
    until [[ -e $WORK/sampler.ready ]]; do sleep 0.02; done
}
stop_sampler() { kill "$SAMPLER_PID"; wait "$SAMPLER_PID" || true; SAMPLER_PID=; }

bucket=0
printf 'binary\tstand-in\tuploads\trun\twall_s\tpeak_rss_kib\tin_flight\n' | tee "$WORK/results.tsv"
for run in $(seq "$RUNS"); do
    for setup in $SETUPS; do
        for uploads in $UPLOADS; do
            for entry in $BINS; do
                name=${entry%%=*} bin=${entry#*=}
                bucket=$((bucket + 1))
                curl -s -X PUT "http://127.0.0.1:$PORT/bench-$bucket" >/dev/null
                if [[ $setup == link ]]; then
                    repo=s3:http://127.0.0.1:$LINK/bench-$bucket/repo limit=() port=$LINK
                else
                    repo=s3:http://127.0.0.1:$PORT/bench-$bucket/repo limit=(--limit-upload 12MiB) port=$PORT
                fi
                "$bin" --repo "$repo" init --no-encryption >/dev/null
                start_sampler "$port" "$WORK/in_flight"
                LSMVAULT_UPLOADS=$uploads /usr/bin/time -f '%e %M' -o "$WORK/time" \
                    "$bin" --repo "$repo" "${limit[@]}" backup -q "$WORK/data"
                stop_sampler
                read -r wall rss <"$WORK/time"
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$setup" "$uploads" "$run" "$wall" "$rss" \
                    "$(<"$WORK/in_flight")" | tee -a "$WORK/results.tsv"
            done
        done
    done
done
echo
echo "median of $RUNS run(s):"
python3 - "$WORK/results.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
groups = {}
for row in rows:
    groups.setdefault((row["binary"], row["stand-in"], row["uploads"]), []).append(row)
print("binary\tstand-in\tuploads\twall_s\tpeak_rss_MiB\tin_flight")
for (binary, setup, uploads), runs in groups.items():
    median = lambda key: statistics.median(float(run[key]) for run in runs)
    print(f"{binary}\t{setup}\t{uploads}\t{median('wall_s'):.1f}\t{median('peak_rss_kib') / 1024:.0f}\t{median('in_flight'):.0f}")
PY
