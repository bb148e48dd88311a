#!/usr/bin/env bash
# Parallel pack uploads to S3 (moto on 127.0.0.1): a backup of ~200 MiB of
# random data with LSMVAULT_UPLOADS=1 (one pack in flight, the old writer)
# and 8 (the default), RUNS times each, interleaved; wall time and peak RSS
# (GNU time) per run. Two stand-ins for a 100 Mbit/s link:
#   link      benches/link_proxy.py between lsmvault and moto: 12.5 MB/s
#             shared by all connections, 10 ms one way (the link is idle
#             while a pack is acknowledged)
#   throttle  --limit-upload 12MiB (the token bucket in the process; it
#             saves up while a pack is acknowledged, so it hides the gap)
#
#   benches/uploads.sh [RUNS]        (RUNS: default 3; needs moto_server,
#                                     LSMVAULT_MOTO_SERVER or .ci/run's)
set -euo pipefail
RUNS=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LSMVAULT_BIN:-$HERE/../target/release/lsmvault}
MOTO=${LSMVAULT_MOTO_SERVER:-/opt/lsmvault-moto/bin/moto_server}
[[ -x $BIN && -x $MOTO && -x /usr/bin/time ]] || { sed -n '2,14p' "$0"; exit 2; }
WORK=$(mktemp -d /tmp/lsmvault-uploads.XXXXXX)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PORT=$(free_port)
LINK=$(free_port)
"$MOTO" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
python3 "$HERE/link_proxy.py" "$LINK" "$PORT" 12500000 10 &
PROXY_PID=$!
trap 'kill $MOTO_PID $PROXY_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
mkdir "$WORK/data"
for file in $(seq 10); do head -c $((20 << 20)) /dev/urandom >"$WORK/data/f$file"; done
bucket=0
printf 'stand-in\tuploads\trun\twall_s\tpeak_rss_kib\n'
for run in $(seq "$RUNS"); do
    for setup in link throttle; do
        for uploads in 1 8; do
            bucket=$((bucket + 1))
            curl -s -X PUT "http://127.0.0.1:$PORT/bench-$bucket" >/dev/null
            if [[ $setup == link ]]; then
                repo=s3:http://127.0.0.1:$LINK/bench-$bucket/repo limit=()
            else
                repo=s3:http://127.0.0.1:$PORT/bench-$bucket/repo limit=(--limit-upload 12MiB)
            fi
            "$BIN" --repo "$repo" init --no-encryption >/dev/null
            LSMVAULT_UPLOADS=$uploads /usr/bin/time -f '%e %M' -o "$WORK/time" \
                "$BIN" --repo "$repo" "${limit[@]}" backup -q "$WORK/data"
            read -r wall rss <"$WORK/time"
            printf '%s\t%s\t%s\t%s\t%s\n' "$setup" "$uploads" "$run" "$wall" "$rss"
        done
    done
done
