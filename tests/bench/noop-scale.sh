#!/bin/bash
# tests/bench/noop-scale.sh: a benchmark, not a test (issue 13).
# For each N in SIZES (default "1000 10000"): a cold converge of N workers
# (each with its own KV namespace, a var and a secret; every 100th owns a
# Durable Object), then a no-op reconcile (`binderyd apply` with nothing
# to do) and a no-op plan. Prints, per run: API requests, wall and CPU
# (user+sys) seconds, peak RSS, and the load average beside them (the
# machine may be shared; CPU suffers less from that than wall time).
# cfsim's limits are raised by flag (--max-scripts 0: no Workers-per-
# account limit; --rate-limit 1000000/300: no throttling), as Cloudflare
# raises them on request: this counts the cost per cycle, not throttling.
# Usage: top_builddir=BUILD [SIZES="1000 10000"] tests/bench/noop-scale.sh
# Each command may take up to CMD_TIMEOUT seconds (default 3600).
: "${CMD_TIMEOUT:=3600}"
. "$(dirname "$0")/../integration/lib.sh"

SIZES=${SIZES:-1000 10000}
export IT_MANY_SECRET=bench-secret

timed() {       # LABEL COMMAND...: runs under /usr/bin/time, prints figures
        local label=$1 t0 ms
        shift
        sim_reset_counters
        t0=$(date +%s%N)
        /usr/bin/time -f "%M %U %S" -o "$TMP/rss" timeout "$CMD_TIMEOUT" "$@" >"$TMP/out" 2>"$TMP/err"
        RC=$?
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        printf '%-30s exit %s  requests %6s  %5d.%03d s wall  %7s s CPU  peak RSS %7.1f MiB  (load average %s)\n' \
                "$label" "$RC" "$(sim_requests)" $((ms / 1000)) $((ms % 1000)) \
                "$(awk '{ printf "%.2f", $2 + $3 }' "$TMP/rss")" "$(awk '{ print $1 / 1024 }' "$TMP/rss")" \
                "$(cut -d' ' -f1-3 /proc/loadavg)"
}

for n in $SIZES; do
        [ -n "$CFSIM_PID" ] && { kill "$CFSIM_PID" 2>/dev/null; wait "$CFSIM_PID" 2>/dev/null; }
        rm -rf "$TMP/state"
        start_cfsim --max-scripts 0 --rate-limit 1000000/300
        gen_many "$n" 100
        write_config "concurrency: 16" "request_budget: 100000/5m"
        echo "== $n workers"
        timed "cold converge" "$BINDERYD" apply --config "$TMP/binderyd.yaml"
        check_eq "$n: cold converge exits 0" "$RC" 0
        [ "$RC" = 0 ] || { tail -5 "$TMP/err"; continue; }
        timed "no-op reconcile" "$BINDERYD" apply --config "$TMP/binderyd.yaml"
        check_eq "$n: no-op exits 0" "$RC" 0
        check_eq "$n: the no-op writes nothing" "$(sim_writes)" 0
        timed "no-op reconcile (2)" "$BINDERYD" apply --config "$TMP/binderyd.yaml"
        timed "no-op plan" "$BINDERYD" plan --config "$TMP/binderyd.yaml"
        echo "state.json: $(du -h "$TMP/state/state.json" | cut -f1)"
done
finish
