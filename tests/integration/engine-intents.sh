#!/bin/bash
# engine-intents.sh: an intent (safety rule 1) never outlives a create the
# API refused, and always survives a create whose answer was lost.
#   - a KV create answered with a definitive 400 leaves no intent, so a
#     same-named namespace someone else creates later is "not owned"
#     (exit 3), never silently taken as bindery's own;
#   - a KV create whose answer is lost after the write (truncated body)
#     keeps its intent: the retry finds the namespace, records it as
#     bindery's, and there is exactly one.
. "$(dirname "$0")/lib.sh"

start_cfsim
mkdir -p "$TMP/spec"
kv_count() { api GET storage/kv/namespaces | jq --arg t "$1" '[.result[] | select(.title==$t)] | length'; }

# ---- a refused create ----
printf 'kind: KVNamespace\nname: refused\n' >"$TMP/spec/kv.yaml"
write_config
sim_faults '[{"method": "POST", "route": "/storage/kv/namespaces$", "kind": "400", "count": 1}]'
bd apply
sim_faults '[]'
check_eq "refused create: apply fails" "$RC" 1
check_eq "refused create: nothing was created" "$(kv_count refused)" 0
check "refused create: the state file is readable" jq -e . "$TMP/state/state.json"
check "refused create: no intent left behind" sh -c "! jq -e '[.records | to_entries[] | select(.key | startswith(\"intent/\")) | .value | select(.name==\"refused\" or .cf_name==\"refused\")] | length > 0' '$TMP/state/state.json' >/dev/null"

# Someone else creates the same title; bindery must not take it.
api POST storage/kv/namespaces -H 'Content-Type: application/json' -d '{"title": "refused"}' >/dev/null
bd apply
check_eq "someone else's namespace: apply is blocked (exit 3)" "$RC" 3
check "someone else's namespace: the error says it is not owned" grep -qi "not owned" "$TMP/err" "$TMP/out"
printf 'kind: KVNamespace\nname: refused\nadopt: true\n' >"$TMP/spec/kv.yaml"
bd apply
check_eq "adopt: true takes it explicitly" "$RC" 0
check_eq "adopt: still one namespace" "$(kv_count refused)" 1

# ---- a lost answer ----
printf 'kind: KVNamespace\nname: lost\n' >"$TMP/spec/kv.yaml"
sim_faults '[{"method": "POST", "route": "/storage/kv/namespaces$", "kind": "truncate", "count": 1}]'
bd apply
sim_faults '[]'
[ "$RC" = 0 ] || bd apply
check_eq "lost answer: converges" "$RC" 0
check_eq "lost answer: exactly one namespace" "$(kv_count lost)" 1
bd plan
check_eq "lost answer: plan is clean afterwards" "$RC" 0
[ "$RC" = 0 ] || show_output

finish
