#!/usr/bin/env bash
# tests/ha/ha-quorum.sh: etcd member failures (issue 11). One of three
# members stopped: nothing changes (same leader, it still converges). Two
# stopped (no quorum): within the lease TTL nobody may write, status says
# why, and cfsim sees no write. Members restarted: leadership resumes by
# itself and the spec change made meanwhile converges.
set -u
# When the member stopped was etcd's raft leader, the two left elect
# another (--election-timeout 500 ms, then the lease keepalives find it):
# about a second without keepalives, longer on a loaded machine, which
# production's 10 s lease rides out (the local window outlasts the last
# answered keepalive by TTL - TTL/5); 5 s failed under make check -j2.
HA_TTL=${HA_TTL:-10}
. "$(dirname "$0")/lib.sh"
ha_setup
start_etcd
start_cfsim
spec_kv alpha
host_config A
host_config B
start_host A
start_host B
for i in $(seq 200); do [ "$(leaders A B)" = 1 ] && [ "$(kv_titles)" = alpha ] && break; sleep 0.05; done
check "one leader, converged" [ "$(kv_titles)" = alpha ]
if [ "$(role A)" = leader ]; then L=A; else L=B; fi
host_status "$L"
changes=$(printf '%s' "$BODY" | jq -r .ha.role_changes)

# --- one member down: no change
stop_etcd_member 1
spec_kv alpha beta
for i in $(seq 200); do [ "$(kv_titles)" = alpha,beta ] && break; sleep 0.05; done
check "one etcd member stopped: the leader still converges" [ "$(kv_titles)" = alpha,beta ]
sleep $((TTL / 2 + 2))   # two keepalive rounds or more
host_status "$L"
check "one etcd member stopped: same leader, no role change" \
	[ "$(printf '%s' "$BODY" | jq -r '.ha.role + " " + (.ha.role_changes | tostring)')" = "leader $changes" ]

# --- two down: no quorum, no writer
stop_etcd_member 2
ok=0
for i in $(seq $(((TTL + 1) * 20))); do
	host_status A; a=$(printf '%s' "$BODY" | jq -r .ha.may_write)
	host_status B; b=$(printf '%s' "$BODY" | jq -r .ha.may_write)
	[ "$a" = false ] && [ "$b" = false ] && { ok=1; break; }
	sleep 0.05
done
check "no quorum: within the lease TTL no host may write" [ "$ok" = 1 ]
host_status "$L"
check "no quorum: status says why ($(printf '%s' "$BODY" | jq -r .ha.reason))" \
	[ "$(printf '%s' "$BODY" | jq -r '.ha.reason | length > 0')" = true ]
w0=$(curl -s "$SIM/__sim/stats" | jq .writes)
spec_kv alpha beta gamma
sleep 3
check "no quorum: no write reached Cloudflare" [ "$(curl -s "$SIM/__sim/stats" | jq .writes)" = "$w0" ]
check "no quorum: nobody leads" [ "$(leaders A B)" = 0 ]

# --- members back: leadership resumes by itself, the change converges
start_etcd_member 1 existing
start_etcd_member 2 existing
# Leases that lapsed locally live on in etcd until the new raft leader's
# extension runs out: up to a TTL, then a host is elected.
for i in $(seq $(((3 * TTL) * 20))); do [ "$(leaders A B)" = 1 ] && [ "$(kv_titles)" = alpha,beta,gamma ] && break; sleep 0.05; done
check "quorum back: a leader again, by itself" [ "$(leaders A B)" = 1 ]
check "quorum back: the change made meanwhile converged" [ "$(kv_titles)" = alpha,beta,gamma ]
check "no duplicate resource" no_duplicates
finish
