#!/bin/bash
# tests/bench/edit-live.sh: a benchmark, not a test (issue 13, edit →
# live). N workers (default 5000; each with its own KV namespace, a var
# and a secret, in one generated spec file) are converged by `binderyd
# apply`; then the daemon runs on the same state (interval 1h: only the
# edit triggers it) and EDITS times (default 3) one worker's var is
# changed in the spec file. Each edit's figure is the time from the write
# of the file to cfsim answering that worker's upload (cfsim's request
# log, microsecond times): inotify, the 200 ms debounce, the spec load,
# observe, plan and the upload. Goal: <= 1 s at 5,000 workers.
# The audit query reaches back at least 30 s (the overlap floor) from
# the last run's check: while that check is within 30 s of the converge,
# a run pages over the converge's entries again (~15 pages of 1,000 at
# 5,000 workers, cfsim ~25 ms each), so each figure says how many audit
# pages its run read. SETTLE=S waits S seconds after the daemon's first
# run before the first edit (default 0; with 35 the first edit still
# reads them, the window reaching back from the first run's check, and
# every later edit is the steady state: one page). Beside
# each figure: the daemon's CPU time (user + system) from the write to
# the end of the run, less sensitive to a shared host than the wall time.
# cfsim's limits are raised by flag (--max-scripts 0, --rate-limit
# 1000000/300), said here as in the output: this measures latency, not
# throttling. The load average is printed beside each figure.
# Usage: top_builddir=BUILD [N=5000] [EDITS=3] [SETTLE=0] tests/bench/edit-live.sh
: "${CMD_TIMEOUT:=3600}"
. "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; echo "0 passed, 0 failed"; exit 77; }
N=${N:-5000}
EDITS=${EDITS:-3}
export IT_MANY_SECRET=bench-secret
la() { cut -d' ' -f1-3 /proc/loadavg; }

echo "# cfsim limits raised by flag: --max-scripts 0 --rate-limit 1000000/300"
start_cfsim --max-scripts 0 --rate-limit 1000000/300
gen_many "$N" 100
write_config "concurrency: 16" "request_budget: 100000/5m"
t0=$(date +%s%N)
bd apply
echo "# cold converge of $N workers: exit $RC, $(( ($(date +%s%N) - t0) / 1000000 )) ms (load $(la))"
check_eq "cold converge exits 0" "$RC" 0

write_config "concurrency: 16" "request_budget: 100000/5m" "interval: 1h" "listen: 127.0.0.1:0"
"$BINDERYD" --config "$TMP/binderyd.yaml" >"$TMP/daemon.log" 2>&1 &
DPID=$!
trap 'kill $DPID 2>/dev/null; wait $DPID 2>/dev/null; cleanup' EXIT
runs() { cat "$TMP/state/runs.jsonl" 2>/dev/null | wc -l; }
# cpu_ms: the daemon's CPU time so far (user + system), in ms.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$DPID/stat"; }
for _ in $(seq 1200); do [ "$(runs)" -ge 1 ] && break; sleep 0.1; done
check "the daemon's first run finished" [ "$(runs)" -ge 1 ]
sleep "${SETTLE:-0}"

# upload_usec NAME: cfsim's answer time (µs since the epoch) of the
# first upload of script NAME in its log and how many requests (audit
# pages among them) came before it, or nothing.
upload_usec() {
        curl -s "$SIM/__sim/requests" | python3 -c '
import json, sys, datetime
name, n, audit = sys.argv[1], 0, 0
for r in json.load(sys.stdin)["requests"]:
    if r["method"] == "PUT" and r["path"].endswith("/workers/scripts/" + name):
        t = datetime.datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        print(int(t.timestamp() * 1000000), n, audit)
        break
    n += 1
    audit += r["path"].endswith("/logs/audit")' "$1"
}

ok_edits=0
for e in $(seq "$EDITS"); do
        i=$(printf '%0*d' "${#N}" $(( (e * 997) % N + 1 )))
        sim_reset_counters
        before=$(runs)
        c0=$(cpu_ms)
        t_edit=$(( $(date +%s%N) / 1000 ))
        sed -i "s/^  STAGE: s-m$i\$/  STAGE: edited-$e-m$i/" "$TMP/spec/many.yaml"
        up=
        for _ in $(seq 600); do
                read -r up nreq naudit < <(upload_usec "m$i")
                [ -n "$up" ] && break
                sleep 0.05
        done
        for _ in $(seq 600); do [ "$(runs)" -gt "$before" ] && break; sleep 0.1; done
        c1=$(cpu_ms)
        if [ -n "$up" ]; then
                ok_edits=$((ok_edits + 1))
                echo "# edit $e (m$i): upload answered $(( (up - t_edit) / 1000 )) ms after the write," \
                        "$nreq requests before it, $naudit of them audit pages; the daemon's CPU from" \
                        "the write to the run's end $((c1 - c0)) ms (load $(la))"
        else
                echo "# edit $e (m$i): no upload seen"
        fi
done
check_eq "every edit reached cfsim" "$ok_edits" "$EDITS"
finish
