#!/bin/sh
# tests/daemon/load.sh: the HTTP API stays responsive under load.
#   - while a reconcile of WORKERS workers (default 100) runs, GET
#     /v1/status keeps answering: p99 and max latency are measured and the
#     p99 must stay under P99_MAX_MS (default 250 ms);
#   - 200 idle connections do not block a trigger (202 within 1 s).
# tests/bench/status-p99.sh runs it with 500 workers.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
WORKERS=${WORKERS:-100}
P99_MAX_MS=${P99_MAX_MS:-250}

setup
# A few requests per worker: with 500 workers (status-p99.sh) past
# Cloudflare's 1,200 per 5 minutes, and at 1,000 past its 500 scripts per
# account, so both limits are raised here; this test measures the status
# API, not throttling or account limits.
start_cfsim --rate-limit 1000000/300 --max-scripts 0
many_workers "$WORKERS"
write_config "concurrency: 8" "request_budget: 100000/5m"
# The first script list stalls 2 s: the plan request below surely meets
# the running reconcile.
curl -s -X POST "$SIM/__sim/faults" -d '[{"method": "GET", "route": "/workers/scripts$", "kind": "stall", "seconds": 2, "count": 1}]' >/dev/null
start_daemon

# Sample /v1/status from the moment the daemon is up (its first reconcile
# creates every worker) until that reconcile is over: one curl process,
# sequential requests on one keep-alive connection, so the figures are
# the daemon's latency rather than process start-up.
curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$API/v1/status?n=[1-1000000]" > "$work/samples" 2>/dev/null &
sampler=$!
pids="$pids $sampler"
# A plan while the reconcile runs must not delay it: 503 + Retry-After
# (nothing cached yet).
plan=$(curl -s -m 10 -D - -o /dev/null "$API/v1/plan" | tr -d '\r')
pst=$(printf '%s\n' "$plan" | awk 'NR == 1 { print $2 }')
check "GET /v1/plan during the reconcile: 503 with Retry-After ($pst)" \
	[ "$pst" = 503 -a -n "$(printf '%s\n' "$plan" | grep -i '^Retry-After: [0-9]')" ]
t0=$(now_ms)
for i in $(seq 1200); do
	http GET /v1/runs
	[ "$(json 'len([r for r in d if r["state"] == "done"])')" -ge 1 ] && break
	sleep 0.1
done
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
dt=$(json '[r["duration_sec"] for r in d if r["state"] == "done"][-1]')
# The last line may be the request cut short by the kill.
head -n -1 "$work/samples" | grep -v '^200 ' | head -3 > "$work/bad"
awk '{ print $2 }' "$work/samples" > "$work/lat"
n=$(wc -l < "$work/lat")
p50=$(sort -n "$work/lat" | awk '{ a[NR] = $1 } END { printf "%.1f", a[int(NR / 2) + 1] * 1000 }')
p99=$(p99_ms < "$work/lat")
max=$(max_ms < "$work/lat")
http GET /v1/status
echo "    $WORKERS workers: the reconcile took ${dt} s; $n GET /v1/status meanwhile: p50 ${p50} ms, p99 ${p99} ms, max ${max} ms"
echo "    result: $(json 'd["last_run"]["result"] if d["last_run"] else None'), in_sync $(json 'd["summary"]["in_sync"]')"
[ -s "$work/bad" ] && sed "s/^/    not 200: /" "$work/bad"
check "every status request answered 200" [ ! -s "$work/bad" ]
check "status answered throughout the reconcile ($n samples)" [ "$n" -ge 20 ]
check "status p99 ${p99} ms < ${P99_MAX_MS} ms" awk -v p="$p99" -v m="$P99_MAX_MS" 'BEGIN { exit !(p < m) }'
check "all $WORKERS workers in sync" [ "$(json 'd["summary"]["in_sync"]')" -ge "$WORKERS" ]

# 200 idle connections, then a trigger.
wait_idle
for i in $(seq 200); do exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"; fds="$fds $fd"; done
sleep 0.2
out=$(curl -s -m 10 -o /dev/null -w '%{http_code} %{time_total}' -X POST -H "Authorization: Bearer $HTTP_TOKEN" "$API/v1/reconcile")
echo "    with 200 idle connections: POST /v1/reconcile -> $out"
check "200 idle connections do not block a trigger (202 in < 1 s)" \
	awk -v s="${out%% *}" -v t="${out#* }" 'BEGIN { exit !(s == 202 && t < 1.0) }'
for fd in $fds; do exec {fd}>&-; done
wait_idle 600
stop_daemon
check "SIGTERM: exit 0" [ $? = 0 ]
finish
