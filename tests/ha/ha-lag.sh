#!/usr/bin/env bash
# tests/ha/ha-lag.sh: a standby whose spec directory lags cannot prune
# what a newer spec created (issue 11). A leads with the spec {a, b} and
# records its generation in etcd; B's directory still says {a}. A dies:
# B leads, but its generation is not the one last enforced, so it holds
# the removal of b until its generation has been stable, with B leading,
# for twice prune_settle (the ordinary rule alone would let it go at
# once); then b goes.
set -u
. "$(dirname "$0")/lib.sh"
SETTLE=3
ha_setup
start_etcd
start_cfsim
# Workers: their deletion_policy defaults to delete (KV namespaces keep data).
worker() { printf -- '---\nkind: Worker\nname: %s\nmain: w.js\ncompatibility_date: "2025-06-01"\n' "$1"; }
mkdir -p "$work/specA" "$work/specB"
for d in specA specB; do echo 'export default { fetch() { return new Response("x"); } };' > "$work/$d/w.js"; done
{ worker a; worker b; } > "$work/specA/w.yaml"
worker a > "$work/specB/w.yaml"
scripts() { sim_state | jq -r '.scripts | keys | join(",")'; }
SPEC_A=$work/specA SPEC_B=$work/specB
host_config A
host_config B
for h in A B; do sed -i "s|^prune_settle: 0s|prune: true\nprune_settle: ${SETTLE}s|" "$work/$h/binderyd.yaml"; done
start_host A
for i in $(seq 200); do host_idle A && [ "$(scripts)" = a,b ] && break; sleep 0.05; done
check "A leads and creates a and b" [ "$(scripts)" = a,b ]
start_host B
wait_role B follower 5
sleep $((SETTLE + 1))   # B's generation is older than prune_settle now
stop_host A
for i in $(seq 200); do host_idle B && break; sleep 0.05; done
check "B leads after A dies" host_idle B
host_status B
check "B holds the removal of b (its generation is not the one last enforced)" \
	[ "$(scripts):$(printf '%s' "$BODY" | jq -r '.last_run.pending_removals // 0')" = a,b:1 ]
eval "bport=\$PORT_B"
reconcile() { curl -s -m 60 -X POST -H "Authorization: Bearer $HTTP_TOKEN" "http://127.0.0.1:$bport/v1/reconcile?wait=30" >/dev/null; }
reconcile
check "still held on a second run right after the takeover" [ "$(scripts)" = a,b ]
sleep $((2 * SETTLE))
reconcile
check "b goes once B's generation has been stable for twice prune_settle" [ "$(scripts)" = a ]
finish
