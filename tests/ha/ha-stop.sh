#!/usr/bin/env bash
# tests/ha/ha-stop.sh: a paused leader writes nothing after it wakes
# (issue 11). The leader is stopped (SIGSTOP) in the middle of an apply
# whose creates cfsim answers slowly, for 3 x lease_ttl; the follower takes
# over and finishes; the old leader continues (SIGCONT). cfsim's request
# log (user agents) shows no write from the old leader after the new
# leader's first write, and there is no duplicate resource.
set -u
. "$(dirname "$0")/lib.sh"
ha_setup
start_etcd
start_cfsim
spec_kv k00
host_config A
host_config B
start_host A
start_host B
for i in $(seq 200); do [ "$(leaders A B)" = 1 ] && [ "$(kv_titles)" = k00 ] && break; sleep 0.05; done
check "one leader, converged" [ "$(leaders A B):$(kv_titles)" = 1:k00 ]
if [ "$(role A)" = leader ]; then L=A F=B; else L=B F=A; fi

# Every create takes 1 s at cfsim (less than the TTL): the apply of 24 is
# under way when the leader stops.
curl -s -X POST "$SIM/__sim/faults" \
	-d '{"method": "POST", "route": "/storage/kv/namespaces$", "kind": "stall", "seconds": 1}' >/dev/null
spec_kv $(printf 'k%02d ' $(seq 0 24))
eval "lport=\$PORT_$L"
curl -s -m 5 -o /dev/null -X POST -H "Authorization: Bearer $HTTP_TOKEN" "http://127.0.0.1:$lport/v1/reconcile"
for i in $(seq 100); do [ "$(writes_by "$L")" -ge 2 ] && break; sleep 0.05; done
eval "kill -STOP \$PID_$L"
check "the leader was writing when it stopped" [ "$(writes_by "$L")" -ge 2 ]
sleep $((3 * TTL))
check "the follower took over while the leader was stopped" wait_role "$F" leader 2
eval "kill -CONT \$PID_$L"
for i in $(seq 400); do
	host_status "$F"
	[ "$(kv_titles | tr ',' '\n' | wc -l)" = 25 ] &&
		[ "$(printf '%s' "$BODY" | jq -r '.current_run == null and .pending_run == null')" = true ] && break
	sleep 0.05
done
check "the new leader converged" [ "$(kv_titles | tr ',' '\n' | wc -l)" = 25 ]
check "the old leader follows after it continued" wait_role "$L" follower 5
sleep 1
log=$(sim_requests)
first_new=$(printf '%s' "$log" | jq --arg ua "($F)" \
	'[.requests | to_entries[] | select(.value.method != "GET" and (.value.user_agent | endswith($ua)))][0].key')
late_old=$(printf '%s' "$log" | jq --arg ua "($L)" --argjson k "$first_new" \
	'[.requests | to_entries[] | select(.key > $k and .value.method != "GET" and (.value.user_agent | endswith($ua)))] | length')
check "the new leader wrote" [ "$first_new" != null ]
check "no write from the old leader after the new leader's first write (saw $late_old)" [ "$late_old" = 0 ]
check "no duplicate resource" no_duplicates
host_status "$L"
check "the old leader's run was interrupted or refused its writes" \
	[ "$(printf '%s' "$BODY" | jq -r '[.last_run.interrupted, (.last_run.result == "failed")] | any')" = true ]
finish
