#!/usr/bin/env bash
# tests/bench/ha-failover.sh: a benchmark, not a test (issue 11). Two
# binderyd hosts on a 3-member etcd cluster and cfsim; HA_TRIALS (20)
# times: kill -9 the leader, change the spec, and time from the kill to
# the new leader's first write as cfsim logged it (its request log time),
# then restart the killed host as a follower. Prints the median and the
# worst failover with the lease TTL (HA_TTL, default 2 s; production
# default 10 s) and the load average, since other work shares the
# machine. Usage: top_builddir=BUILD tests/bench/ha-failover.sh
set -u
. "$(dirname "$0")/../ha/lib.sh"
TRIALS=${HA_TRIALS:-20}
ha_setup
start_etcd
start_cfsim
spec_kv t00
host_config A
host_config B
start_host A
start_host B
for i in $(seq 200); do [ "$(leaders A B)" = 1 ] && [ "$(kv_titles)" = t00 ] && break; sleep 0.05; done
: > "$work/times"
names=t00
for n in $(seq 1 "$TRIALS"); do
	if [ "$(role A)" = leader ]; then L=A F=B; else L=B F=A; fi
	name=$(printf 't%02d' "$n")
	curl -s -X POST "$SIM/__sim/reset?counters=1" >/dev/null     # the request log starts here
	t0=$(date +%s.%N)
	eval "kill -KILL \$PID_$L; { wait \$PID_$L; } 2>/dev/null"
	names="$names $name"
	spec_kv $names
	got=
	for i in $(seq $(((TTL + 10) * 20))); do
		got=$(sim_requests | jq -r --arg ua "($F)" \
			'[.requests[] | select(.method == "POST" and (.user_agent | endswith($ua)))] | first | .time // empty')
		[ -n "$got" ] && [ "$(kv_titles | tr ',' '\n' | grep -c "^$name$")" = 1 ] && break
		got=
		sleep 0.05
	done
	if [ -z "$got" ]; then echo "trial $n: no failover within $((TTL + 10)) s"; continue; fi
	python3 -c 'import sys, datetime
t = datetime.datetime.fromisoformat(sys.argv[2].replace("Z", "+00:00")).timestamp()
print("%.3f" % (t - float(sys.argv[1])))' "$t0" "$got" >> "$work/times"
	echo "trial $n: $L killed, $F wrote after $(tail -1 "$work/times") s (load $(cut -d' ' -f1-3 /proc/loadavg))"
	start_host "$L"
	wait_role "$L" follower 5 || echo "trial $n: $L did not come back as a follower"
done
sort -n "$work/times" | awk -v ttl="$TTL" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" '
	{ a[NR] = $1 }
	END {
		if (NR == 0) { print "no trial completed"; exit 1 }
		m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "ha-failover: %d trials, lease_ttl %ds: median %.2f s, worst %.2f s (kill -9 to the new leader'"'"'s first write; load average %s)\n", NR, ttl, m, a[NR], load
	}'
