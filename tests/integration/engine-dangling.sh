#!/bin/bash
# engine-dangling.sh: a binding whose target exists nowhere (issue 8).
# Cloudflare refuses such an upload (KV 10041, R2 10085, D1 10181, queue
# 11000, service 10143, DO 10061); bindery must find it at plan time:
#   - plan exits 3 and names each binding with FILE:LINE and the target;
#   - apply exits 3, uploads nothing of those workers (per /__sim/requests)
#     and still applies the rest of the generation;
#   - once the target exists (here: created out of band), the worker
#     converges.
. "$(dirname "$0")/lib.sh"

start_cfsim
mkdir -p "$TMP/spec/b"
echo 'export class Box {} export default { fetch() { return new Response("d"); } };' >"$TMP/spec/b/index.js"

w() {  # NAME BINDING-LINE
        printf -- '---\nkind: Worker\nname: %s\nmain: b/index.js\ncompatibility_date: "2025-06-01"\nbindings:\n  %s\n' "$1" "$2"
}
{
        printf 'kind: KVNamespace\nname: real-kv\n'
        w good-one 'CACHE: { kv_namespace: real-kv }'
        w d-kv 'KV: { kv_namespace: { id: 0f2ac74b498b48028cb68387c421e279 } }'
        w d-r2 'ARCHIVE: { r2_bucket: { name: no-such-bucket } }'
        w d-d1 'DB: { d1: { id: 01234567-89ab-cdef-0123-456789abcdef } }'
        w d-queue 'JOBS: { queue: { name: no-such-queue } }'
        w d-service 'AUTH: { service: no-such-worker }'
        w d-do 'BOX: { durable_object: { class_name: Box, script: no-such-do-host } }'
} >"$TMP/spec/all.yaml"
line_of() { grep -n "$1" "$TMP/spec/all.yaml" | head -1 | cut -d: -f1; }
write_config

bd plan
check_eq "plan exits 3" "$RC" 3
[ "$RC" = 3 ] || show_output
for pair in "KV:KV namespace '0f2ac74b498b48028cb68387c421e279'" "ARCHIVE:R2 bucket 'no-such-bucket'" \
        "DB:D1 database '01234567-89ab-cdef-0123-456789abcdef'" "JOBS:queue 'no-such-queue'" \
        "AUTH:worker 'no-such-worker'" "BOX:Durable Object class 'Box' in worker 'no-such-do-host'"; do
        b=${pair%%:*}
        t=${pair#*:}
        l=$(line_of "^  $b:")
        check "plan names $b with FILE:LINE and its target" grep -qF "all.yaml:$l:3: binding $b: its target $t does not exist" "$TMP/out"
done

curl -s -X POST "$SIM/__sim/reset?counters=1" >/dev/null
bd apply
check_eq "apply exits 3 (blocked)" "$RC" 3
[ "$RC" = 3 ] || show_output
reqs=$(curl -s "$SIM/__sim/requests?limit=1000")
for n in d-kv d-r2 d-d1 d-queue d-service d-do; do
        check_eq "no request touched $n" \
                "$(echo "$reqs" | jq --arg n "$n" '[.. | strings | select(test("/workers/scripts/" + $n + "($|[/?])"))] | length')" 0
done
check_eq "the rest applied: good-one uploaded" \
        "$(api GET workers/scripts | jq -r '[.result[].id] | sort | join(",")')" "good-one"

# The missing service appears (someone deploys it): d-service converges.
printf '{"main_module":"index.js"}' >"$TMP/meta.json"
api PUT workers/scripts/no-such-worker -F "metadata=<$TMP/meta.json;type=application/json" \
        -F "index.js=@$TMP/spec/b/index.js;filename=index.js;type=application/javascript+module" >/dev/null
{
        printf 'kind: KVNamespace\nname: real-kv\n'
        w good-one 'CACHE: { kv_namespace: real-kv }'
        w d-service 'AUTH: { service: no-such-worker }'
} >"$TMP/spec/all.yaml"
bd apply
check_eq "with the target deployed, apply exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output
bd plan
check_eq "then plan exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output

finish
