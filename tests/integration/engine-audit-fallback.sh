#!/bin/bash
# engine-audit-fallback.sh: change detection without the audit log feed
# (issue 8). A token without "Account Settings Read" gets 403 from
# GET /logs/audit for the whole run; a bindings-only change made outside
# bindery (PATCH /settings, as the dashboard does) must still be found:
#   - apply converges and logs once which permission to add;
#   - the out-of-band change is planned (exit 2) and repaired, then plan
#     exits 0;
#   - with the feed answering but 2 s late (cfsim --audit-delay), own
#     writes seen late are no drift and an outside change is found once
#     it shows up;
#   - a feed that loses bindery's own writes for longer than its 15 min
#     overlap has gaps: the cycle falls back to the rotation too;
#   - the daemon shows the mode in /v1/status and /metrics (fallback).
. "$(dirname "$0")/lib.sh"

start_cfsim --audit-forbidden
mkdir -p "$TMP/spec/b"
echo 'export default { fetch() { return new Response("f"); } };' >"$TMP/spec/b/index.js"
{
        printf 'kind: KVNamespace\nname: fb-kv\n'
        for n in fa fb fc; do
                printf -- '---\nkind: Worker\nname: %s\nmain: b/index.js\ncompatibility_date: "2025-06-01"\n' "$n"
                printf 'bindings:\n  STAGE: prod\n  CACHE: { kv_namespace: fb-kv }\n'
        done
} >"$TMP/spec/all.yaml"
write_config

bd apply
check_eq "apply without the audit feed exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output
check_eq "the fallback is explained once" "$(grep -c "Change detection falls back" "$TMP/err")" 1
check "the log names the permission to add" grep -q "Account Settings Read" "$TMP/err"
bd plan
check_eq "plan after apply exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output

# A bindings-only change outside bindery: fb's STAGE becomes "staging".
patch_stage() {
        api GET workers/scripts/fb/settings |
                jq -c '{bindings: [.result.bindings[] | select(.type != "secret_text") |
                         if .name == "STAGE" then .text = "staging" else . end], keep_bindings: ["secret_text"]}' \
                        >"$TMP/settings.json"
        api PATCH workers/scripts/fb/settings -F "settings=<$TMP/settings.json;type=application/json" | jq -r .success
}
check_eq "out-of-band PATCH /settings accepted" "$(patch_stage)" true
bd plan
check_eq "the change is planned without the feed (exit 2)" "$RC" 2
[ "$RC" = 2 ] || show_output
check "the plan repairs Worker/fb" grep -q "Worker/fb" "$TMP/out"
bd apply
check_eq "apply repairs it (exit 0)" "$RC" 0
[ "$RC" = 0 ] || show_output
check_eq "STAGE is prod again" \
        "$(api GET workers/scripts/fb/settings | jq -r '.result.bindings[] | select(.name == "STAGE") | .text')" prod
bd plan
check_eq "plan afterwards exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output

# Audit mode with late entries (the docs warn of ingestion lag): bindery's
# own writes show up after its run and are not taken for drift; a write by
# someone else is still found once it shows up.
kill "$CFSIM_PID" 2>/dev/null && wait "$CFSIM_PID" 2>/dev/null
CFSIM_PID=
rm -rf "$TMP/state"
start_cfsim --audit-delay 2
write_config
bd apply
check_eq "audit delay 2 s: apply exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output
check "audit delay: no fallback (the feed answers)" bash -c "! grep -q 'Change detection falls back' '$TMP/err'"
sleep 2.5
bd plan
check_eq "audit delay: own writes seen late are no drift (plan exits 0)" "$RC" 0
[ "$RC" = 0 ] || show_output
check_eq "audit delay: out-of-band PATCH accepted" "$(patch_stage)" true
sleep 2.5
bd plan
check_eq "audit delay: the outside change is planned once it shows up (exit 2)" "$RC" 2
[ "$RC" = 2 ] || show_output
bd apply
check_eq "audit delay: repaired (exit 0)" "$RC" 0

# Gaps: the feed answers but never shows bindery's own writes (entries
# delayed past any run here). Once they have waited longer than the 15 min
# overlap window (made so by back-dating the mark in the state file), the
# feed is taken to lose entries: the cycle runs the settings rotation.
kill "$CFSIM_PID" 2>/dev/null && wait "$CFSIM_PID" 2>/dev/null
CFSIM_PID=
rm -rf "$TMP/state"
start_cfsim --audit-delay 100000
write_config
bd apply
check_eq "gaps: apply exits 0" "$RC" 0
check "gaps: the own writes wait for their entries" \
        bash -c "jq -e '.records[\"meta/engine.own_writes.since\"].value != null' '$TMP/state/state.json' >/dev/null"
check_eq "gaps: out-of-band PATCH accepted" "$(patch_stage)" true
bd plan
check_eq "gaps: before the gap is known, the unlogged change is not seen yet (plan exits 0)" "$RC" 0
old=$(( $(date +%s) * 1000000 - 20 * 60 * 1000000 ))
jq --arg t "$old" '.records["meta/engine.own_writes.since"].value = $t' "$TMP/state/state.json" >"$TMP/state.new" &&
        cat "$TMP/state.new" >"$TMP/state/state.json"
bd plan
check_eq "gaps: own writes lost for 15 min: the rotation finds the change (exit 2)" "$RC" 2
[ "$RC" = 2 ] || show_output
check "gaps: the fallback names the gaps" grep -q "audit log feed has gaps" "$TMP/err"

# The daemon reports the mode (the audit feed refused again).
sim_faults '{"route":"/logs/audit","kind":"403"}'

sed -i 's/^log_level: .*/log_level: info/' "$TMP/binderyd.yaml"   # for "HTTP API listening"
echo "listen: 127.0.0.1:0" >>"$TMP/binderyd.yaml"
echo "interval: 10m" >>"$TMP/binderyd.yaml"
"$BINDERYD" --config "$TMP/binderyd.yaml" >"$TMP/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 200); do grep -q 'HTTP API listening' "$TMP/daemon.log" && break; sleep 0.05; done
PORT=$(sed -n 's|.*HTTP API listening on .* (port \([0-9]*\)).*|\1|p' "$TMP/daemon.log" | head -1)
mode=
for _ in $(seq 200); do
        mode=$(curl -s "http://127.0.0.1:$PORT/v1/status" | jq -r '.change_detection.mode // empty' 2>/dev/null)
        [ "$mode" = fallback ] && break
        sleep 0.05
done
check_eq "/v1/status: change_detection.mode" "$mode" fallback
check "/metrics: bindery_change_detection_mode{mode=\"fallback\"} 1" \
        bash -c "curl -s http://127.0.0.1:$PORT/metrics | grep -qx 'bindery_change_detection_mode{mode=\"fallback\"} 1'"
kill -TERM "$DPID" 2>/dev/null
wait "$DPID"
check_eq "the daemon exits 0 on SIGTERM" "$?" 0

finish
