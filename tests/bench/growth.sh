#!/bin/bash
# tests/bench/growth.sh: a benchmark, not a test (issue 13, the growth
# table). For each N in SIZES (default "100 1000 2500 10000"), on a fresh
# cfsim and state directory: a cold converge of N workers (each with its
# own KV namespace, a var and a secret; every 100th owns a Durable
# Object) by `binderyd apply`, then a no-op `binderyd apply` (the first
# one after the converge: its audit window still holds the converge's
# entries, which the query leaves out once bindery's token id is
# known), then the daemon on the same state with `interval: 1s` for
# DAEMON_SEC seconds (default 20): its no-op reconciles' CPU (from
# /proc/PID/stat, per run counted in runs.jsonl), requests per run and
# peak RSS (VmHWM). Each line prints the load average beside it: the
# machine may be shared; CPU suffers less from that than wall time.
# cfsim's limits are raised by flag (--max-scripts 0: no Workers-per-
# account limit; --rate-limit 1000000/300: no throttling), as Cloudflare
# raises them on request: this counts bindery's cost, not throttling.
# SMAPS=1 also prints the daemon's resident KiB per mapping (from
# /proc/PID/smaps, the largest first) before it is stopped.
# Usage: top_builddir=BUILD [SIZES="100 1000"] [SMAPS=1] tests/bench/growth.sh
: "${CMD_TIMEOUT:=3600}"
. "$(dirname "$0")/../integration/lib.sh"

SIZES=${SIZES:-100 1000 2500 10000}
DAEMON_SEC=${DAEMON_SEC:-20}
export IT_MANY_SECRET=bench-secret
la() { cut -d' ' -f1-3 /proc/loadavg; }

# timed LABEL COMMAND...: runs under /usr/bin/time; sets T_WALL T_CPU T_RSS T_REQ.
timed() {
        local label=$1 t0 ms
        shift
        sim_reset_counters
        t0=$(date +%s%N)
        /usr/bin/time -f "%M %U %S" -o "$TMP/rss" timeout "$CMD_TIMEOUT" "$@" >"$TMP/out" 2>"$TMP/err"
        RC=$?
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        T_WALL=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
        T_CPU=$(awk '{ printf "%.2f", $2 + $3 }' "$TMP/rss")
        T_RSS=$(awk '{ printf "%.1f", $1 / 1024 }' "$TMP/rss")
        T_REQ=$(sim_requests)
        printf '%6s %-22s exit %s %9s s wall %8s s CPU %7s requests  peak RSS %7s MiB  (load %s)\n' \
                "$N" "$label" "$RC" "$T_WALL" "$T_CPU" "$T_REQ" "$T_RSS" "$(la)"
}

echo "# cfsim limits raised by flag: --max-scripts 0 --rate-limit 1000000/300"
for N in $SIZES; do
        [ -n "$CFSIM_PID" ] && { kill "$CFSIM_PID" 2>/dev/null; wait "$CFSIM_PID" 2>/dev/null; }
        rm -rf "$TMP/state"
        start_cfsim --max-scripts 0 --rate-limit 1000000/300
        gen_many "$N" 100
        write_config "concurrency: 16" "request_budget: 100000/5m"
        timed "cold converge" "$BINDERYD" apply --config "$TMP/binderyd.yaml"
        check_eq "$N: cold converge exits 0" "$RC" 0
        [ "$RC" = 0 ] || { tail -5 "$TMP/err"; continue; }
        timed "no-op apply (CLI)" "$BINDERYD" apply --config "$TMP/binderyd.yaml"
        check_eq "$N: the no-op writes nothing" "$(sim_writes)" 0

        # The daemon: a no-op about every second.
        write_config "concurrency: 16" "request_budget: 100000/5m" "interval: 1s" "listen: 127.0.0.1:0"
        "$BINDERYD" --config "$TMP/binderyd.yaml" >"$TMP/daemon.log" 2>&1 &
        DPID=$!
        runs() { cat "$TMP/state/runs.jsonl" 2>/dev/null | wc -l; }
        cpu() { awk '{ print $14 + $15 }' "/proc/$DPID/stat" 2>/dev/null; }
        r0=$(runs)
        for _ in $(seq 600); do [ "$(runs)" -gt "$r0" ] && break; sleep 0.2; done   # the first run (start-up)
        sim_reset_counters
        c0=$(cpu) r1=$(runs)
        sleep "$DAEMON_SEC"
        c1=$(cpu) r2=$(runs) req=$(sim_requests)
        hwm=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$DPID/status")
        rss=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$DPID/status")
        [ -n "${SMAPS:-}" ] && awk '
                /^[0-9a-f]+-[0-9a-f]+ / { m = $6 != "" ? $6 : "[anon]"; sub(".*/", "", m) }
                /^Rss:/ { kb[m] += $2; total += $2 }
                END { for (m in kb) printf "%9d KiB  %s\n", kb[m], m; printf "%9d KiB  total\n", total }
        ' "/proc/$DPID/smaps" | sort -rn | head -16
        kill "$DPID"; wait "$DPID" 2>/dev/null
        n=$((r2 - r1))
        if [ "$n" -gt 0 ]; then
                printf '%6s %-22s %d runs: %s s CPU per run, %s requests per run, VmRSS %s MiB, peak (VmHWM) %s MiB  (load %s)\n' \
                        "$N" "daemon no-op" "$n" \
                        "$(awk -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.3f", c / t / n }')" \
                        "$(awk -v r="$req" -v n="$n" 'BEGIN { printf "%.1f", r / n }')" "$rss" "$hwm" "$(la)"
        fi
        check "$N: the daemon ran no-op reconciles ($n)" [ "$n" -gt 0 ]
done
finish
