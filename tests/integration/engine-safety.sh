#!/bin/bash
# engine-safety.sh: the safety rules end to end.
#   - removed from the spec: a worker is deleted only with prune on;
#     KV/R2/D1/Queue retained unless deletion_policy: delete was recorded;
#   - 6 deletions with max_deletions: 5 refused (exit 3) without --force;
#   - a same-named worker or KV namespace bindery does not own: exit 3
#     with a clear error; adopted with adopt: true;
#   - a state bound to one account or API URL is refused against another;
#   - a half-written spec (replaced within prune_settle) deletes nothing;
#     a rejected spec changes nothing;
#   - apply while the state lock is held exits 1 pointing at the daemon.
. "$(dirname "$0")/lib.sh"

start_cfsim
mkdir -p "$TMP/spec/b"
echo 'export default { fetch() { return new Response("x"); } };' >"$TMP/spec/b/index.js"

worker_doc() {  # NAME [EXTRA LINES...]
        local n=$1
        shift
        printf -- '---\nkind: Worker\nname: %s\nmain: b/index.js\ncompatibility_date: "2025-06-01"\n' "$n"
        for l in "$@"; do echo "$l"; done
}

count() { api GET "$1" | jq "[.result[]?] | length"; }
script_exists() { api GET workers/scripts | jq -e --arg n "$1" '.result[] | select(.id == $n)' >/dev/null; }
script_gone() { ! script_exists "$1"; }
n_scripts() { api GET workers/scripts | jq '.result | length'; }

# ---- retention and prune ----
cat >"$TMP/spec/resources.yaml" <<'EOF'
kind: KVNamespace
name: keep-kv
---
kind: KVNamespace
name: del-kv
deletion_policy: delete
---
kind: R2Bucket
name: keep-r2
---
kind: D1Database
name: keep-d1
---
kind: Queue
name: keep-q
EOF
{
        worker_doc w-plain "bindings:" "  K: { kv_namespace: keep-kv }" "  D: { kv_namespace: del-kv }" \
                "  R: { r2_bucket: keep-r2 }" "  DB: { d1: keep-d1 }" "  Q: { queue: keep-q }"
        worker_doc w-other
} >"$TMP/spec/workers.yaml"
write_config
bd apply
check_eq "setup apply exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output

rm "$TMP/spec/resources.yaml"
worker_doc w-other >"$TMP/spec/workers.yaml"
sim_reset_counters
bd apply
check_eq "prune off: apply exits 0" "$RC" 0
check_eq "prune off: no writes except the recorded delete-policy KV" "$(sim_route 'DELETE /accounts/:account_id/workers/scripts/:script_name')" 0
check "prune off: w-plain still exists" script_exists w-plain
check_eq "prune off: keep-kv retained" "$(api GET storage/kv/namespaces | jq '[.result[] | select(.title=="keep-kv")] | length')" 1
check_eq "deletion_policy: delete recorded → del-kv deleted" "$(api GET storage/kv/namespaces | jq '[.result[] | select(.title=="del-kv")] | length')" 0
check_eq "R2 retained" "$(api GET r2/buckets | jq '[.result.buckets[] | select(.name=="keep-r2")] | length')" 1
check_eq "D1 retained" "$(api GET d1/database | jq '[.result[] | select(.name=="keep-d1")] | length')" 1
check_eq "Queue retained" "$(api GET queues | jq '[.result[] | select(.queue_name=="keep-q")] | length')" 1
bd plan --json
check "prune off: plan says why w-plain stays" sh -c "jq -r '.actions[] | select(.name==\"w-plain\") | .reason' '$TMP/out' | grep -q 'prune is off'"

write_config "prune: true"
bd apply
check_eq "prune on: apply exits 0" "$RC" 0
check "prune on: w-plain deleted" script_gone w-plain
check "prune on: w-other kept" script_exists w-other
check_eq "prune on: keep-kv still retained" "$(api GET storage/kv/namespaces | jq '[.result[] | select(.title=="keep-kv")] | length')" 1
check_eq "prune on: D1 still retained" "$(api GET d1/database | jq '[.result[] | select(.name=="keep-d1")] | length')" 1

# ---- max_deletions ----
{ for i in 1 2 3 4 5 6; do worker_doc "m$i"; done; worker_doc w-other; } >"$TMP/spec/workers.yaml"
bd apply
check_eq "six workers created" "$RC" 0
worker_doc w-other >"$TMP/spec/workers.yaml"
sim_reset_counters
bd apply
check_eq "6 deletions > max_deletions 5: apply exits 3" "$RC" 3
check "the refusal names max_deletions and --force" sh -c "grep -q 'max_deletions (5)' '$TMP/out' && grep -q -- '--force' '$TMP/out'"
check_eq "refused: nothing deleted" "$(sim_route 'DELETE /accounts/:account_id/workers/scripts/:script_name')" 0
bd apply --force
check_eq "--force: apply exits 0" "$RC" 0
check_eq "--force: six deleted" "$(n_scripts)" 1

# ---- unowned resources ----
printf '{"main_module":"index.js"}' >"$TMP/meta.json"
api PUT workers/scripts/squatter -F "metadata=<$TMP/meta.json;type=application/json" \
        -F "index.js=@$TMP/spec/b/index.js;filename=index.js;type=application/javascript+module" >/dev/null
api POST storage/kv/namespaces -H 'content-type: application/json' -d '{"title":"squat-kv"}' >/dev/null
{ worker_doc w-other; worker_doc squatter "bindings:" "  S: { kv_namespace: squat-kv }"; } >"$TMP/spec/workers.yaml"
printf 'kind: KVNamespace\nname: squat-kv\n' >"$TMP/spec/resources.yaml"
sim_reset_counters
bd apply
check_eq "unowned worker and KV: apply exits 3" "$RC" 3
check "unowned: clear error for the KV namespace" grep -q "KVNamespace/squat-kv: KV namespace 'squat-kv' already exists .*not owned by bindery; set adopt: true" "$TMP/out"
check "unowned: clear error for the worker" grep -q "Worker/squatter: worker 'squatter' already exists and is not owned by bindery" "$TMP/out"
check_eq "unowned: nothing written" "$(sim_writes)" 0
bd plan
check_eq "unowned: plan exits 3 (blocked outranks changes)" "$RC" 3
printf 'kind: KVNamespace\nname: squat-kv\nadopt: true\n' >"$TMP/spec/resources.yaml"
{ worker_doc w-other; worker_doc squatter "adopt: true" "bindings:" "  S: { kv_namespace: squat-kv }"; } >"$TMP/spec/workers.yaml"
bd apply
check_eq "adopt: true: apply exits 0" "$RC" 0
check "adopt: adopt actions shown" sh -c "grep -q '^adopt  *KVNamespace/squat-kv' '$TMP/out' && grep -q '^adopt  *Worker/squatter' '$TMP/out'"
check_eq "adopt: one squat-kv" "$(api GET storage/kv/namespaces | jq '[.result[] | select(.title=="squat-kv")] | length')" 1
check "adopt: ownership recorded (adopted)" sh -c "jq -e '.. | objects | select(.name? == \"squatter\" and .ownership? == \"adopted\")' '$TMP/state/state.json' >/dev/null"
bd apply
check_eq "adopt: converged" "$RC" 0

# ---- account binding ----
cp "$TMP/binderyd.yaml" "$TMP/good.yaml"
sed -i "s/^account_id: .*/account_id: 99999999999999999999999999999999/" "$TMP/binderyd.yaml"
bd apply
check_eq "state of one account refused against another: exit 3" "$RC" 3
check "account mismatch: message" grep -q "belongs to another account" "$TMP/err"
cp "$TMP/good.yaml" "$TMP/binderyd.yaml"
sed -i "s|^api_url: .*|api_url: http://127.0.0.1:1/client/v4|" "$TMP/binderyd.yaml"
bd plan
check_eq "state of one API URL refused against another: exit 3" "$RC" 3
cp "$TMP/good.yaml" "$TMP/binderyd.yaml"

# ---- half-written spec: a generation replaced within prune_settle ----
# The CLI dates a generation by its files' modification times; time
# passing is simulated by ageing them (touch -d), so the test does not
# depend on how fast a loaded machine runs it.
write_config "prune: true" "prune_settle: 30s"
{ worker_doc w-other; worker_doc squatter "adopt: true" "bindings:" "  S: { kv_namespace: squat-kv }"; worker_doc w-late; } >"$TMP/spec/workers.yaml"
bd apply
check_eq "settle: setup exits 0" "$RC" 0
{ worker_doc w-other; worker_doc squatter "adopt: true" "bindings:" "  S: { kv_namespace: squat-kv }"; } >"$TMP/spec/workers.yaml"
sim_reset_counters
bd apply
check_eq "settle: a fresh generation deletes nothing (exit 2: a removal is pending)" "$RC" 2
check "settle: w-late still exists" script_exists w-late
check_eq "settle: no deletes" "$(sim_route 'DELETE /accounts/:account_id/workers/scripts/:script_name')" 0
bd plan
check "settle: plan says it waits" grep -q "waits until the spec has been stable for 30s" "$TMP/out"
check_eq "settle: plan exits 2 while a deletion waits" "$RC" 2
find "$TMP/spec" -type f -exec touch -d '-40 seconds' {} +
bd apply
check_eq "settle: after prune_settle the deletion runs" "$RC" 0
check_eq "settle: w-late deleted" "$(api GET workers/scripts | jq '[.result[] | select(.id=="w-late")] | length')" 0

# ---- a rejected generation changes nothing ----
echo "kind: Worker
name: [broken" >"$TMP/spec/zz-broken.yaml"
sim_reset_counters
bd apply
check_eq "rejected spec: apply exits 1" "$RC" 1
check_eq "rejected spec: no API call at all" "$(sim_requests)" 0
rm "$TMP/spec/zz-broken.yaml"

# ---- the lock ----
if command -v flock >/dev/null; then
        flock "$TMP/state/lock" sleep 5 &
        LOCKER=$!
        sleep 0.3
        bd apply
        check_eq "apply while the lock is held: exit 1" "$RC" 1
        check "lock: points at POST /v1/reconcile" grep -q "POST /v1/reconcile" "$TMP/err"
        bd plan
        check_eq "plan reads without the lock (exit 0)" "$RC" 0
        kill "$LOCKER" 2>/dev/null
        wait "$LOCKER" 2>/dev/null
fi
check "state file readable JSON" jq -e . "$TMP/state/state.json" >/dev/null

finish
