#!/usr/bin/env bash
# tests/ha/ha-idle.sh: with ha:, the lease keepalive is the one extra
# timer of an idle daemon (issue 11). A leader and a follower (whose
# campaign and observe stream wait in etcd all the while) with a 30 s
# lease, after the first reconcile, no HTTP client: over IDLE_SECONDS (11)
# each may wake for one or two keepalive rounds (every lease_ttl / 3 =
# 10 s: the timer, the keepalive and the leader's look-up with their
# answers) and the idle daemon's own allowance, never in a loop:
# voluntary context switches (/proc/PID/task/*/status) at most MAX_WAKES
# (16).
set -u
HA_TTL=30
. "$(dirname "$0")/lib.sh"
IDLE_SECONDS=${IDLE_SECONDS:-11}
MAX_WAKES=${MAX_WAKES:-16}
ha_setup
[ -r /proc/self/status ] || skip_all "no /proc: cannot count context switches"
start_etcd
start_cfsim
spec_kv idle
host_config A
host_config B
start_host A
for i in $(seq 200); do host_idle A && break; sleep 0.05; done
start_host B
wait_role B follower 5
check "one leader converged, one follower" [ "$(role A):$(role B)" = leader:follower ]
sleep 0.5

switches() {
	local t n=0 v
	for t in /proc/"$1"/task/*/status; do
		v=$(sed -n 's/^voluntary_ctxt_switches:[[:space:]]*//p' "$t")
		n=$((n + ${v:-0}))
	done
	echo "$n"
}
a0=$(switches "$PID_A") b0=$(switches "$PID_B")
sleep "$IDLE_SECONDS"
a=$(( $(switches "$PID_A") - a0 )) b=$(( $(switches "$PID_B") - b0 ))
echo "# idle ${IDLE_SECONDS}s: leader $a, follower $b voluntary context switches"
check "an idle leader sleeps between keepalives ($a wake-ups, at most $MAX_WAKES)" [ "$a" -le "$MAX_WAKES" ]
check "an idle follower sleeps, its campaign waiting in etcd ($b wake-ups, at most $MAX_WAKES)" [ "$b" -le "$MAX_WAKES" ]
finish
