#!/usr/bin/env bash
# tests/ha/ha-basic.sh: two binderyd hosts, one 3-member etcd cluster, one
# cfsim (issue 11). Exactly one leads and reconciles; the follower serves
# status with role, leader and leader_url and forwards an authenticated
# trigger to the leader; kill -9 of the leader: the follower leads and
# finishes the pending reconcile within lease_ttl + 5 s; every write
# carries the writer's user agent; SIGTERM of a leader resigns (its key
# leaves the election at exit; with a 30 s lease the other leads before
# 15 s); ha.forward: false answers 307 and the CLI follows it. A relayed
# trigger's Location (/v1/runs/ID) is served by the follower (relayed to
# the leader), and so is GET /v1/runs. A second
# daemon on a host's state directory fails at once, naming it.
set -u
. "$(dirname "$0")/lib.sh"
ha_setup
start_etcd
start_cfsim
spec_kv alpha beta
host_config A
host_config B
start_host A
start_host B

# --- one leader
for i in $(seq 200); do [ "$(leaders A B)" = 1 ] && break; sleep 0.05; done
check "exactly one of two hosts leads" [ "$(leaders A B)" = 1 ]
if [ "$(role A)" = leader ]; then L=A F=B; else L=B F=A; fi
wait_leader_known "$F" 10
host_status "$F"
check "the follower names the leader" [ "$(printf '%s' "$BODY" | jq -r .ha.leader)" = "$L" ]
eval "lport=\$PORT_$L fport=\$PORT_$F"
check "the follower gives the leader's advertise_url" \
	[ "$(printf '%s' "$BODY" | jq -r .ha.leader_url)" = "http://127.0.0.1:$lport" ]
check "status has since" [ "$(printf '%s' "$BODY" | jq -r '.ha.since | length > 0')" = true ]

# --- a second daemon on the leader's state directory fails at once
port2=$(free_ports 1)
sed "s|^listen: .*|listen: 127.0.0.1:$port2|; s|advertise_url: .*|advertise_url: http://127.0.0.1:$port2|" \
	"$work/$L/binderyd.yaml" > "$work/same-dir.yaml"
CREDENTIALS_DIRECTORY="$work/creds" timeout 20 "$BINDERYD" --config "$work/same-dir.yaml" > "$work/same-dir.log" 2>&1
rc=$?
check "a second daemon on the same state directory exits with an error (rc $rc)" \
	sh -c '[ "$1" != 0 ] && [ "$1" != 124 ]' _ "$rc"
check "it names the locked state directory" grep -q "The state directory '$work/$L/state' is locked" "$work/same-dir.log"
check "the first daemon still leads" [ "$(role "$L")" = leader ]

# --- the leader converges; only it wrote
for i in $(seq 200); do [ "$(kv_titles)" = "alpha,beta" ] && break; sleep 0.05; done
check "the leader created the spec's namespaces" [ "$(kv_titles)" = "alpha,beta" ]
check "every write came from the leader ($L)" [ "$(writes_by "$F")" = 0 ] 
check "the leader's writes carry binderyd/VERSION ($L)" [ "$(writes_by "$L")" -ge 2 ]
curl -s -m 2 "http://127.0.0.1:$fport/metrics" > "$work/metrics"
check "metrics show the follower role" grep -q 'bindery_ha_role{role="follower"} 1' "$work/metrics"

# --- a trigger sent to the follower runs on the leader
out=$(curl -s -m 40 -w '\n%{http_code}' -X POST -H "Authorization: Bearer $HTTP_TOKEN" \
	"http://127.0.0.1:$fport/v1/reconcile?wait=30")
code=${out##*$'\n'}
run=$(printf '%s' "${out%$'\n'*}" | jq -r .id)
check "a trigger to the follower is forwarded and answered (HTTP $code)" [ "$code" = 200 ]
check "the forwarded run is the leader's" \
	[ "$(curl -s -m 2 "http://127.0.0.1:$lport/v1/runs/$run" | jq -r .state)" = done ]
# The relayed answer's Location names the run on the follower too: a CI
# client that follows it (same host, same token) reaches the leader's run.
curl -s -m 40 -D "$work/hdr" -o "$work/body" -X POST -H "Authorization: Bearer $HTTP_TOKEN" \
	"http://127.0.0.1:$fport/v1/reconcile"
run2=$(jq -r .id "$work/body")
loc=$(tr -d '\r' < "$work/hdr" | sed -n 's/^[Ll]ocation: //p')
check "a relayed trigger answers with Location /v1/runs/ID ($loc)" [ "$loc" = "/v1/runs/$run2" ]
state=
for i in $(seq 200); do
	state=$(curl -s -m 5 -H "Authorization: Bearer $HTTP_TOKEN" "http://127.0.0.1:$fport$loc" | jq -r .state)
	[ "$state" = done ] && break; sleep 0.05
done
check "GET of that Location on the follower reaches the leader's run ($state)" [ "$state" = done ]
check "GET /v1/runs on the follower lists the leader's runs" sh -c \
	'curl -s -m 5 -H "Authorization: Bearer $1" "$2/v1/runs" | jq -e --arg id "$3" "[.. | objects | select(.id? == \$id)] | length > 0" >/dev/null' \
	_ "$HTTP_TOKEN" "http://127.0.0.1:$fport" "$run2"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $HTTP_TOKEN" \
	"http://127.0.0.1:$fport/v1/runs/no-such-run")
check "a run neither host has is 404 through the follower (HTTP $code)" [ "$code" = 404 ]
plan=$(curl -s -m 40 -H "Authorization: Bearer $HTTP_TOKEN" "http://127.0.0.1:$fport/v1/plan" | jq -r .result)
check "a plan asked of the follower comes from the leader ($plan)" [ "$plan" = ok ]
# The CLI: plan reads the ledger in etcd (in sync: exit 0); apply is the
# leader's job.
CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" plan --config "$work/$F/binderyd.yaml" > "$work/plan.out" 2>&1
rc=$?
check "binderyd plan on a follower reads the ledger in etcd: in sync (rc $rc)" [ "$rc" = 0 ]
CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" apply --config "$work/$F/binderyd.yaml" > "$work/apply.out" 2>&1
rc=$?
check "binderyd apply with ha: is refused (rc $rc)" sh -c '[ "$1" = 1 ] && grep -q "only the leading daemon writes" "$2"' _ "$rc" "$work/apply.out"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$fport/v1/reconcile")
check "the follower still wants the token (HTTP $code)" [ "$code" = 401 ]

# --- kill -9 of the leader: the follower leads and finishes the pending work
eval "kill -KILL \$PID_$L; { wait \$PID_$L; } 2>/dev/null"
t0=$(now_ms)
spec_kv alpha beta gamma       # work only the new leader can do
deadline=$(( t0 + (TTL + 5) * 1000 ))
converged=0
while [ "$(now_ms)" -lt "$deadline" ]; do
	if [ "$(role "$F")" = leader ] && [ "$(kv_titles)" = "alpha,beta,gamma" ]; then
		host_status "$F"
		[ "$(printf '%s' "$BODY" | jq -r '.current_run == null and .pending_run == null')" = true ] && { converged=1; break; }
	fi
	sleep 0.05
done
check "after kill -9 the follower leads and converges within lease_ttl + 5 s" [ "$converged" = 1 ]
check "no duplicate resource after the failover" no_duplicates
check "the new leader wrote (user agent $F)" [ "$(writes_by "$F")" -ge 1 ]

# --- SIGTERM hands over by resigning. No timing bound (the bench
# tests/bench/ha-failover.sh measures it): with a 30 s lease, the resigned
# leader's key is gone from the election as soon as it has exited, and
# the follower leads before lease_ttl / 2, which a lease expiry cannot do.
LONG=30
TTL=$LONG host_config "$L"
start_host "$L"
check "the restarted host follows" wait_role "$L" follower 5
eval "kill -TERM \$PID_$F; wait \$PID_$F"
check "SIGTERM: the leader ($F) exited cleanly" [ $? = 0 ]
check "and the follower ($L) leads" wait_role "$L" leader $((TTL + 5))
TTL=$LONG host_config "$F"
start_host "$F"
check "the restarted host follows" wait_role "$F" follower 5
# A follower's campaign key appears when its campaign request lands, which
# can be just after its status says "follower": wait for it (bounded).
names=
for _ in $(seq 100); do
	names=$(election_names | sort | tr '\n' ,)
	[ "$names" = "A,B," ] && break
	sleep 0.1
done
check "both hold their key in the election (saw: $names)" [ "$names" = "A,B," ]
t0=$(now_ms)
eval "kill -TERM \$PID_$L; wait \$PID_$L"
check "SIGTERM of the leader ($L, lease ${LONG}s): it exited cleanly" [ $? = 0 ]
names=$(election_names | tr '\n' ,)
check "its key left the election when it exited (resigned; left: $names)" [ "$names" = "$F," ]
wait_role "$F" leader $((LONG / 2))
ms=$(( $(now_ms) - t0 ))
check "the other host leads before lease_ttl / 2 could pass (${ms} ms)" [ "$(role "$F")" = leader ]
# From here $L leads (up) and $F is down, as the rest expects.
t=$L L=$F F=$t

# --- forward: false answers 307; the CLI follows it with the token
host_config "$F" "forward: false"
eval "fport=\$PORT_$F lport=\$PORT_$L"
start_host "$F"
wait_role "$F" follower 5
check "the restarted follower learns who leads" wait_leader_known "$F" 10
hdr=$(curl -s -m 5 -o /dev/null -w '%{http_code} %{redirect_url}' -X POST \
	-H "Authorization: Bearer $HTTP_TOKEN" "http://127.0.0.1:$fport/v1/reconcile")
check "forward: false answers 307 to the leader ($hdr)" \
	[ "$hdr" = "307 http://127.0.0.1:$lport/v1/reconcile" ]
run3=$(curl -s -m 40 --location-trusted -X POST -H "Authorization: Bearer $HTTP_TOKEN" \
	"http://127.0.0.1:$fport/v1/reconcile?wait=30" | jq -r .id)
state=$(curl -s -m 5 --location-trusted -H "Authorization: Bearer $HTTP_TOKEN" \
	"http://127.0.0.1:$fport/v1/runs/$run3" | jq -r .state)
check "forward: false: GET /v1/runs/ID follows the 307 to the leader's run ($state)" [ "$state" = done ]
BINDERY_HTTP_TOKEN=$HTTP_TOKEN timeout 60 "$BINDERYD" reconcile --url "http://127.0.0.1:$fport" --wait 30 \
	> "$work/cli.out" 2>&1
rc=$?
check "binderyd reconcile --wait through a follower succeeds (rc $rc)" [ "$rc" = 0 ]
grep -q "^run " "$work/cli.out" || cat "$work/cli.out"
check "no duplicate resource at the end" no_duplicates
finish
