#!/bin/bash
# engine-drift.sh: drift made directly in cfsim through its API (a changed
# var, a removed binding, a rotated secret, a deleted KV namespace),
# including changes that leave the script's etag unchanged: `plan` exits
# 2 and `apply` repairs it; with `drift: report` the drift is reported and
# nothing is written.
. "$(dirname "$0")/lib.sh"

start_cfsim
use_spec full
write_config
export IT_API_KEY=drift-api-key-1 IT_JWT_SECRET=drift-jwt-1 IT_STORE_SECRET=drift-store-1

bd apply
check_eq "initial apply exits 0" "$RC" 0

etag() { api GET workers/scripts | jq -r '.result[] | select(.id=="api") | .etag'; }
live_binding() {
        api GET workers/scripts/api/settings | jq -r --arg n "$1" ".result.bindings[] | select(.name == \$n) | $2"
}
# patch_bindings JQ: rewrites api's non-secret bindings the way the
# dashboard would (PATCH /settings; secrets kept), leaving the code alone.
patch_bindings() {
        api GET workers/scripts/api/settings |
                jq -c "{bindings: ([.result.bindings[] | select(.type != \"secret_text\" and .type != \"secret_key\")] | $1), keep_bindings: [\"secret_text\", \"secret_key\"]}" \
                        >"$TMP/settings.json"
        api PATCH workers/scripts/api/settings -F "settings=<$TMP/settings.json;type=application/json" | jq -r .success
}

repair_cycle() {        # NAME CHECK-FUNCTION (evaluated after the apply)
        local name=$1
        shift
        bd plan
        check_eq "$name: plan exits 2" "$RC" 2
        [ "$RC" = 2 ] || show_output
        bd apply
        check_eq "$name: apply exits 0" "$RC" 0
        [ "$RC" = 0 ] || show_output
        check "$name: repaired" "$@"
        bd plan
        check_eq "$name: plan afterwards exits 0" "$RC" 0
        [ "$RC" = 0 ] || show_output
}

# 1. A changed var (etag unchanged: settings only).
E0=$(etag)
check_eq "drift 1: PATCH settings accepted" "$(patch_bindings 'map(if .name == "STAGE" then .text = "staging" else . end)')" true
check_eq "drift 1: the script's etag did not change" "$(etag)" "$E0"
stage_ok() { test "$(live_binding STAGE .text)" = production; }
repair_cycle "changed var" stage_ok

# 2. A removed binding.
check_eq "drift 2: PATCH settings accepted" "$(patch_bindings 'map(select(.name != "SESSIONS"))')" true
check_eq "drift 2: etag unchanged" "$(etag)" "$E0"
sessions_ok() { test -n "$(live_binding SESSIONS .namespace_id)"; }
repair_cycle "removed binding" sessions_ok

# 3. A rotated secret (PUT /secrets: etag unchanged, no binding change).
api PUT workers/scripts/api/secrets -H 'content-type: application/json' \
        -d '{"name":"API_KEY","text":"rotated-by-someone","type":"secret_text"}' >/dev/null
check_eq "drift 3: etag unchanged" "$(etag)" "$E0"
WANT=sha256:$(printf %s "$IT_API_KEY" | sha256sum | cut -d' ' -f1)
secret_ok() { test "$(sim_state | jq -r '.scripts.api.versions[-1].bindings[] | select(.name=="API_KEY") | .text')" = "$WANT"; }
repair_cycle "rotated secret" secret_ok

# 3b. Script-level settings changed outside (PATCH /script-settings: no
# new version, etag unchanged): tags and logpush, read from the list.
api PATCH workers/scripts/api/script-settings -H 'content-type: application/json' \
        -d '{"tags":["added-in-dashboard"],"logpush":true}' >/dev/null
check_eq "drift 3b: etag unchanged" "$(etag)" "$E0"
settings_ok() { test "$(api GET workers/scripts | jq -r '.result[] | select(.id=="api") | "\(.tags | length) \(.logpush)"')" = "0 false"; }
repair_cycle "script settings" settings_ok

# 4. A deleted KV namespace: recreated and rebound.
KV=$(api GET storage/kv/namespaces | jq -r '.result[] | select(.title=="it-sessions") | .id')
api DELETE "storage/kv/namespaces/$KV" >/dev/null
NEWKV() { api GET storage/kv/namespaces | jq -r '.result[] | select(.title=="it-sessions") | .id'; }
kv_exists() { test -n "$(NEWKV)"; }
repair_cycle "deleted KV namespace" kv_exists
K2=$(NEWKV)
check "deleted KV: recreated with a new id" test -n "$K2" -a "$K2" != "$KV"
check_eq "deleted KV: api rebound to the new id" "$(live_binding SESSIONS .namespace_id)" "$K2"
check_eq "deleted KV: exactly one it-sessions" "$(api GET storage/kv/namespaces | jq '[.result[] | select(.title=="it-sessions")] | length')" 1

# 5. drift: report — reported, nothing written.
sed -i 's/^name: api$/name: api\ndrift: report/' "$TMP/spec/workers.yaml"
sed -i 's/^title: it-sessions$/title: it-sessions\ndrift: report/' "$TMP/spec/resources.yaml"
bd apply
check_eq "report mode: spec change applied cleanly" "$RC" 0
# The drift policy is recorded per resource in the state (kept after the
# document leaves the spec), as the deletion policy is.
check_eq "report mode: the state records drift_policy report for the worker" \
        "$(jq -r '.records["resource/Worker/api"].drift_policy' "$TMP/state/state.json")" report
check_eq "report mode: the state records drift_policy report for the KV namespace" \
        "$(jq -r '.records["resource/KVNamespace/sessions"].drift_policy' "$TMP/state/state.json")" report
patch_bindings 'map(if .name == "STAGE" then .text = "staging" else . end)' >/dev/null
api PUT workers/scripts/api/secrets -H 'content-type: application/json' \
        -d '{"name":"API_KEY","text":"rotated-again","type":"secret_text"}' >/dev/null
K3=$(NEWKV)
api DELETE "storage/kv/namespaces/$K3" >/dev/null
bd plan
check_eq "report mode: plan exits 2" "$RC" 2
check "report mode: plan shows drift-report for the worker" grep -q "^drift-report  *Worker/api" "$TMP/out"
check "report mode: plan shows drift-report for the KV namespace" grep -q "^drift-report  *KVNamespace/it-sessions" "$TMP/out"
sim_reset_counters
bd apply --json
check_eq "report mode: apply exits 2 (drift reported)" "$RC" 2
check_eq "report mode: nothing written" "$(sim_writes)" 0
check "report mode: the JSON report counts drift" test "$(jq .drift "$TMP/out")" -ge 2
check_eq "report mode: STAGE left as found" "$(live_binding STAGE .text)" staging
check_eq "report mode: KV not recreated" "$(NEWKV)" ""

finish
