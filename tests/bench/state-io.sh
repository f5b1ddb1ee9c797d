#!/bin/bash
# tests/bench/state-io.sh: a benchmark, not a test.
# Cold converge of N (default 1000) workers, each with its own KV
# namespace, a var and a secret, under strace: the bytes binderyd writes
# to its state files (state.json and its temporaries, state.journal) and
# its fsync/fdatasync calls, beside the API requests. Before the journal
# every save rewrote the whole state.json (bytes per action grew with N);
# now a commit appends its records (see test-store-file's
# test_commit_cost_flat for the per-commit count).
# cfsim's rate limit and script limit are raised for the benchmark.
# Usage: top_builddir=BUILD [N=1000] tests/bench/state-io.sh
. "$(dirname "$0")/../integration/lib.sh"

N=${N:-1000}
command -v strace >/dev/null || { echo "SKIP: strace is not installed"; exit 77; }
start_cfsim --max-scripts 0 --rate-limit 1000000/300
gen_many "$N" 100000
write_config "concurrency: 16" "request_budget: 100000/5m"
export IT_MANY_SECRET=bench-secret

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
strace -f -y -e trace=write,fsync,fdatasync -o "$TMP/trace" \
        "$BINDERYD" apply --config "$TMP/binderyd.yaml" >"$TMP/out" 2>"$TMP/err"
RC=$?
check_eq "cold converge exits 0" "$RC" 0
awk -v n="$N" '/state\.json|state\.journal/ && /^[0-9]+ +write\(/ { x = $NF; if (x ~ /^[0-9]+$/) b += x; w++ }
     /fsync\(|fdatasync\(/ { f++ }
     END { printf "%d workers: state bytes written %d (%.0f per worker) in %d writes; fsync+fdatasync %d\n",
                  n, b, b / n, w, f }' "$TMP/trace"
echo "requests $(sim_requests), writes $(sim_writes)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
finish
