#!/bin/sh
# tests/daemon/memory-flat.sh: the daemon's memory stays flat across
# reconciles (issue 13: the run history lives on disk, bounded in bytes;
# before, every run's report — no-ops included — stayed in memory, about
# 2 MiB per run at 1,000 workers).
# WORKERS workers (default 200) are converged, then RUNS no-op reconciles
# (default 60) are triggered one after the other (POST /v1/reconcile?wait).
# VmRSS is read from /proc at run 1, at run BASE (default 10, once the
# allocator has settled) and at the last run; the growth from BASE to the
# last must stay under MAX_GROWTH_KIB (default 2048 KiB) — a byte count,
# not a timing. tests/bench/memory-flat.sh runs it with 1,000 workers and
# 500 runs and prints the figures.
# cfsim's limits are raised by flag (--max-scripts 0, --rate-limit): this
# counts memory, not throttling or account limits.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
WORKERS=${WORKERS:-200}
RUNS=${RUNS:-60}
BASE=${BASE:-10}
MAX_GROWTH_KIB=${MAX_GROWTH_KIB:-2048}
REPORT_AT=${REPORT_AT:-"1 $BASE $RUNS"}

setup
# ASan keeps freed memory in its quarantine (up to 256 MiB) and pads every
# block: RSS there measures the sanitizer, not the daemon.
[ "${BINDERY_SANITIZED:-0}" = 1 ] && skip_all "BINDERY_SANITIZED=1: RSS under ASan measures its quarantine (the normal build runs this)"
command -v python3 >/dev/null || skip_all "python3 is not installed"
[ -r /proc/self/status ] || skip_all "no /proc to read VmRSS from"
start_cfsim --rate-limit 1000000/300 --max-scripts 0
many_workers "$WORKERS"
write_config "concurrency: 16" "request_budget: 100000/5m"
start_daemon
wait_idle 3000 || fail "the cold converge of $WORKERS workers did not finish"

kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$DAEMON_PID/status"; }
la() { cut -d' ' -f1-3 /proc/loadavg; }
echo "    $WORKERS workers converged: VmRSS $(kib VmRSS) KiB, peak (VmHWM) $(kib VmHWM) KiB (load average $(la))"
bad=0
for i in $(seq "$RUNS"); do
	http POST '/v1/reconcile?wait=120' -H "Authorization: Bearer $HTTP_TOKEN"
	[ "$STATUS" = 200 ] || bad=$((bad + 1))
	[ "$i" = "$BASE" ] && base_rss=$(kib VmRSS)
	case " $REPORT_AT " in *" $i "*)
		echo "    run $i: VmRSS $(kib VmRSS) KiB, peak (VmHWM) $(kib VmHWM) KiB, history $(cat "$work/state/runs.jsonl"* | wc -c) bytes (load average $(la))" ;;
	esac
done
last_rss=$(kib VmRSS)
check "every no-op reconcile answered 200 ($bad did not)" [ "$bad" = 0 ]
http GET /v1/runs
check "/v1/runs lists the last runs ($(json 'len(d)'))" [ "$(json 'len(d)')" -ge "$((RUNS < 200 ? RUNS : 200))" ]
growth=$((last_rss - base_rss))
echo "    VmRSS growth from run $BASE to run $RUNS: $growth KiB"
check "VmRSS grew by $growth KiB from run $BASE to $RUNS (< $MAX_GROWTH_KIB KiB)" [ "$growth" -lt "$MAX_GROWTH_KIB" ]
stop_daemon
finish
