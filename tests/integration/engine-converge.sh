#!/bin/bash
# engine-converge.sh: a spec with every binding kind applies in one run
# and cfsim's state equals the spec; a second run writes nothing and reads
# only the per-cycle lists; secret rotation goes through the secrets API
# alone; unchanged secrets are never re-sent; canary secret values appear
# nowhere (stdout, stderr, state dir, /__sim/requests, /__sim/state).
. "$(dirname "$0")/lib.sh"

start_cfsim
use_spec full
write_config

C1=CANARYapikey$$x1; C2=CANARYjwt$$x2; C3=CANARYstore$$x3
C4=CANARYapikeyROT$$x4; C5=CANARYstoreROT$$x5
export IT_API_KEY=$C1 IT_JWT_SECRET=$C2 IT_STORE_SECRET=$C3

bd plan
check_eq "plan on an empty account exits 2" "$RC" 2
check "plan lists the worker create" grep -q "^create  *Worker/api" "$TMP/out"
check_eq "plan wrote nothing" "$(sim_writes)" 0

bd apply
check_eq "first apply exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output

S=$(sim_state)
js() { echo "$S" | jq -r "$1"; }
KV=$(js '.kv | to_entries[] | select(.value.title=="it-sessions") | .key')
D1=$(js '.d1 | to_entries[] | select(.value.name=="main-db") | .key')
ST=$(js '.stores | to_entries[] | select(.value.name=="it-store") | .key')
check "KV namespace it-sessions exists" test -n "$KV"
check "R2 bucket it-uploads exists" test "$(js '[.r2[] | select(.name=="it-uploads")] | length')" = 1
check "D1 main-db exists" test -n "$D1"
check "queue jobs exists" test "$(js '[.queues[] | select(.queue_name=="jobs")] | length')" = 1
check "secrets store and secret exist" test "$(js ".stores[\"$ST\"].secrets[] | select(.name==\"api-token\") | .status")" = active
check_eq "three scripts" "$(js '.scripts | keys | join(",")')" "api,auth,counter"

# The live version of api (latest deployment) carries exactly the spec.
V=$(echo "$S" | jq -c '.scripts.api as $s | ($s.deployments | max_by(.created_on) | .versions[0].version_id) as $id | $s.versions[] | select(.id == $id)')
b() { echo "$V" | jq -r --arg n "$1" ".bindings[] | select(.name == \$n) | $2"; }
check_eq "binding count (16 + 1 secret)" "$(echo "$V" | jq '.bindings | length')" 17
check_eq "STAGE plain_text" "$(b STAGE '.type + "=" + .text')" "plain_text=production"
check_eq "LIMITS json" "$(b LIMITS '.json | tojson')" '{"paths":["/v1"],"rpm":600}'
check_eq "SESSIONS → KV id" "$(b SESSIONS '.namespace_id')" "$KV"
check_eq "UPLOADS → bucket" "$(b UPLOADS '.bucket_name')" it-uploads
check_eq "DB → D1 uuid" "$(b DB '.database_id')" "$D1"
check_eq "JOBS → queue" "$(b JOBS '.queue_name')" jobs
check_eq "COUNTER → DO in counter" "$(b COUNTER '.class_name + "@" + .script_name')" Counter@counter
check_eq "AUTH → service" "$(b AUTH '.service')" auth
check_eq "TOKEN → store secret" "$(b TOKEN '.store_id + "/" + .secret_name')" "$ST/api-token"
check_eq "EVENTS analytics" "$(b EVENTS '.dataset')" api_events
check_eq "AI" "$(b AI '.type')" ai
check_eq "VERSION" "$(b VERSION '.type')" version_metadata
check_eq "PG hyperdrive" "$(b PG '.id')" 5f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99
check_eq "EMBEDDINGS vectorize" "$(b EMBEDDINGS '.index_name')" docs-index
check_eq "BROWSER" "$(b BROWSER '.type')" browser
check_eq "ONBOARDING workflow" "$(b ONBOARDING '.workflow_name + "/" + .class_name + "@" + .script_name')" onboarding/Onboarding@counter
check_eq "API_KEY is a secret_text" "$(b API_KEY '.type')" secret_text
check_eq "main module" "$(echo "$V" | jq -r '.main_module')" api.js
check_eq "banner.txt as text/plain" "$(echo "$V" | jq -r '.modules[] | select(.name=="banner.txt") | .content_type')" text/plain
check_eq "compatibility flags" "$(echo "$V" | jq -r '.compatibility_flags | join(",")')" nodejs_compat
check_eq "cron" "$(js '.scripts.api.schedules | map(.cron) | join(",")')" "*/5 * * * *"
check_eq "workers.dev on" "$(js '.scripts.api.subdomain.enabled')" true
check_eq "consumer on jobs" "$(js '.queues[] | select(.queue_name=="jobs") | .consumers | map(.script_name + ":" + (.settings.batch_size|tostring) + ":" + (.settings.max_retries|tostring)) | join(",")')" "api:10:3"
check_eq "Counter DO namespace created" "$(js '[.do_namespaces[] | select(.script=="counter" and .class=="Counter")] | length')" 1
check_eq "auth has its secret" "$(echo "$S" | jq -r '.scripts.auth.versions[-1].bindings[] | select(.name=="JWT_SECRET") | .type')" secret_text

# Second run: nothing to write, only the per-cycle reads.
sim_reset_counters
bd apply
check_eq "second apply exits 0" "$RC" 0
check_eq "second apply: 0 writes" "$(sim_writes)" 0
R=$(sim_stats)
check_eq "second apply: 8 requests (list, audit, KV, R2, D1, Queues, stores, store secrets)" "$(echo "$R" | jq .requests)" 8
for route in "GET /accounts/:account_id/workers/scripts" "GET /accounts/:account_id/logs/audit" \
             "GET /accounts/:account_id/storage/kv/namespaces" "GET /accounts/:account_id/r2/buckets" \
             "GET /accounts/:account_id/d1/database" "GET /accounts/:account_id/queues" \
             "GET /accounts/:account_id/secrets_store/stores" \
             "GET /accounts/:account_id/secrets_store/stores/:store_id/secrets"; do
        check_eq "second apply: one $route" "$(echo "$R" | jq -r --arg r "$route" '.by_route[$r] // 0')" 1
done
bd plan
check_eq "plan after convergence exits 0" "$RC" 0

# Rotating a secret's source: one secrets call, no upload.
export IT_API_KEY=$C4
sim_reset_counters
bd plan
check_eq "plan sees the rotation (exit 2)" "$RC" 2
check "plan: put-secret API_KEY, no upload" sh -c "grep -q 'put-secret.*API_KEY' '$TMP/out' && ! grep -q '^upload' '$TMP/out'"
bd apply
check_eq "rotation apply exits 0" "$RC" 0
check_eq "rotation: exactly one write" "$(sim_writes)" 1
check_eq "rotation: one PUT secrets" "$(sim_route 'PUT /accounts/:account_id/workers/scripts/:script_name/secrets')" 1
check_eq "rotation: no script upload" "$(sim_route 'PUT /accounts/:account_id/workers/scripts/:script_name')" 0
NEWHASH=$(printf %s "$C4" | sha256sum | cut -d' ' -f1)
check_eq "rotation: cfsim holds the new value" \
        "$(sim_state | jq -r '.scripts.api.versions[-1].bindings[] | select(.name=="API_KEY") | .text')" "sha256:$NEWHASH"

# Unchanged secrets are never re-sent.
sim_reset_counters
bd apply
check_eq "unchanged: no secrets call" "$(sim_route 'PUT /accounts/:account_id/workers/scripts/:script_name/secrets')" 0
check_eq "unchanged: 0 writes" "$(sim_writes)" 0

# A schedule change is one schedules call, no upload.
sed -i 's|^crons: \["\*/5 \* \* \* \*"\]|crons: ["*/10 * * * *"]|' "$TMP/spec/workers.yaml"
sim_reset_counters
bd apply
check_eq "cron change exits 0" "$RC" 0
check_eq "cron change: one write" "$(sim_writes)" 1
check_eq "cron change: PUT schedules" "$(sim_route 'PUT /accounts/:account_id/workers/scripts/:script_name/schedules')" 1
check_eq "cron change: cfsim has the new cron" "$(sim_state | jq -r '.scripts.api.schedules | map(.cron) | join(",")')" "*/10 * * * *"

# A Secrets Store secret rotation: one PATCH, no upload.
export IT_STORE_SECRET=$C5
sim_reset_counters
bd apply
check_eq "store secret rotation exits 0" "$RC" 0
check_eq "store secret rotation: one write" "$(sim_writes)" 1
check_eq "store secret rotation: PATCH" "$(sim_route 'PATCH /accounts/:account_id/secrets_store/stores/:store_id/secrets/:secret_id')" 1

# The staggered full refresh: when due, managed workers are read in
# detail (at most a fifth of the request budget per cycle), then not again
# until the next period. "Due" is simulated by ageing the last refresh.
age_refresh() {
        jq '.records["meta/engine.refresh.last"] = {"value": "1"}' "$TMP/state/state.json" >"$TMP/state.tmp" &&
                cat "$TMP/state.tmp" >"$TMP/state/state.json"
}
details() { sim_route 'GET /accounts/:account_id/workers/scripts/:script_name/deployments'; }
write_config "full_refresh: 1h" "request_budget: 200/5m"
age_refresh
sim_reset_counters
bd apply
check_eq "full refresh: apply exits 0" "$RC" 0
check_eq "full refresh: 3 workers read in detail" "$(details)" 3
check_eq "full refresh: nothing written" "$(sim_writes)" 0
sim_reset_counters
bd apply
check_eq "full refresh: not again right after" "$(details)" 0
write_config "full_refresh: 1h" "request_budget: 40/5m"
# The budget is a sliding window shared by every run on this state
# directory: the runs above spent more than 40 requests in the last 5
# minutes, and these runs would wait for them to age out. This part counts
# the refresh's share of the budget, so it starts with a fresh window.
rm -f "$TMP/state/request-budget"
age_refresh
sim_reset_counters
bd apply
check_eq "full refresh: a small budget refreshes 2 workers per cycle (20% of 40 / 4)" "$(details)" 2
sim_reset_counters
bd apply
check_eq "full refresh: the next cycle continues with the rest" "$(details)" 1
sim_reset_counters
bd apply
check_eq "full refresh: then the pass is complete" "$(details)" 0
write_config

# Canary values appear nowhere.
curl -s "$SIM/__sim/requests" >"$TMP/requests.json"
sim_state >"$TMP/simstate.json"
for c in $C1 $C2 $C3 $C4 $C5; do
        check "canary ${c:0:12}… not in output" sh -c "! grep -qa '$c' '$TMP/all-output'"
        check "canary ${c:0:12}… not in the state dir" sh -c "! grep -rqa '$c' '$TMP/state'"
        check "canary ${c:0:12}… not in /__sim/requests" sh -c "! grep -qa '$c' '$TMP/requests.json'"
        check "canary ${c:0:12}… not in /__sim/state" sh -c "! grep -qa '$c' '$TMP/simstate.json'"
done
check "state file is mode 0600" test "$(stat -c %a "$TMP/state/state.json")" = 600

finish
