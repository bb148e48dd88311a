# Helpers shared by the benchmark scripts (generations.sh, compression.sh,
# pitr.sh, peers/run.sh): logging, timing one step, the prefault/settle
# before it. Sourced, not run. A script sets LOGS (per-step logs), WORK,
# PREFAULT (1/0) and PREFAULT_MB before it calls measure or settle; it may
# set MEASURE_FAILURES=return to get a failing step's status back instead of
# the default exit.

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
