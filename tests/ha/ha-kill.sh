#!/usr/bin/env bash
# tests/ha/ha-kill.sh: kill -9 of the leader at random moments of a
# 50-worker apply (20 trials; HA_KILL_TRIALS, HA_KILL_WORKERS), two hosts,
# a 3-member etcd cluster, cfsim (issue 11). After each kill the follower
# leads and converges from the ledger and intents in etcd: no resource
# created twice, none "not owned", nothing missing, and a plan afterwards
# has nothing to do.
set -u
. "$(dirname "$0")/lib.sh"
N=${HA_KILL_WORKERS:-50}
TRIALS=${HA_KILL_TRIALS:-20}
ha_setup
start_etcd
# 20 applies of 100 creates: past Cloudflare's 1,200 per 5 minutes.
start_cfsim --rate-limit 1000000/300
host_config A
host_config B

# One uninterrupted apply, to spread the kills over its length.
spec_workers "$N" ref
start_host A
start_host B
t0=$(now_ms)
for i in $(seq 1200); do host_idle A || host_idle B && break; sleep 0.05; done
full_ms=$(( $(now_ms) - t0 ))
check "reference: one host converges the $N workers" [ "$(sim_state | jq '.scripts | length')" = "$N" ]
echo "# a full $N-worker apply (from start) takes ${full_ms} ms here"

unowned=0 dups=0 missing=0 dirty=0 slow=0 killed=0
for t in $(seq "$TRIALS"); do
	stop_host A
	stop_host B
	sleep 0.3       # a commit a killed host had on the wire lands before the clearing
	curl -s -X POST "$SIM/__sim/reset" >/dev/null
	etcd_clear_ledger
	rm -rf "$work/A/state" "$work/B/state"
	spec_workers "$N" "t$t"
	start_host A
	start_host B
	for i in $(seq 200); do [ "$(leaders A B)" = 1 ] && break; sleep 0.05; done
	if [ "$(role A)" = leader ]; then L=A F=B; else L=B F=A; fi
	at_ms=$(( RANDOM % (full_ms > 0 ? full_ms : 1) ))
	sleep "$(awk -v m="$at_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
	host_idle "$L" || killed=$((killed + 1))
	stop_host "$L"
	ok=0
	for i in $(seq $(( (TTL + 60) * 20 ))); do host_idle "$F" && { ok=1; break; }; sleep 0.05; done
	if [ "$ok" != 1 ]; then
		slow=$((slow + 1))
		host_status "$F"
		echo "# trial $t: $F did not converge: $(printf '%s' "$BODY" | jq -c '{ha: .ha.role, reason: .ha.reason, current: .current_run.id, pending: .pending_run.id, last: .last_run.result}')"
		mkdir -p "$work/failed-$t" && cp "$work"/[AB]/binderyd.log "$work/failed-$t/" 2>/dev/null
		cp "$work/A/binderyd.log" "$work/failed-$t/A.log"; cp "$work/B/binderyd.log" "$work/failed-$t/B.log"
	fi
	eval "fport=\$PORT_$F"
	grep -q "not owned" "$work/$F/binderyd.log" && { unowned=$((unowned + 1)); echo "# trial $t: 'not owned' in $F's log"; }
	no_duplicates || { dups=$((dups + 1)); echo "# trial $t: duplicate KV titles"; }
	[ "$(sim_state | jq '.kv | length')" = "$N" ] || { missing=$((missing + 1)); echo "# trial $t: $(sim_state | jq '.kv | length') KV namespaces"; }
	[ "$(sim_state | jq '.scripts | length')" = "$N" ] || { missing=$((missing + 1)); echo "# trial $t: $(sim_state | jq '.scripts | length') scripts"; }
	plan=$(curl -s -m 60 -H "Authorization: Bearer $HTTP_TOKEN" "http://127.0.0.1:$fport/v1/plan" | jq -r .result)
	[ "$plan" = ok ] || { dirty=$((dirty + 1)); echo "# trial $t: a plan after convergence says $plan"; }
	: > "$work/A/binderyd.log"
	: > "$work/B/binderyd.log"
done
echo "# $killed of $TRIALS leaders were killed mid-apply (kill at a random moment of ${full_ms} ms)"
check "the new leader converged every time (within lease_ttl + 60 s)" [ "$slow" = 0 ]
check "no 'not owned' block (intents in etcd)" [ "$unowned" = 0 ]
check "no duplicates" [ "$dups" = 0 ]
check "nothing missing" [ "$missing" = 0 ]
check "nothing left to do after each failover" [ "$dirty" = 0 ]
finish
