#!/bin/bash
# engine-audit-own.sh: a no-op does not page through bindery's own last
# converge in the audit feed (issue 13). Bindery learns its token's id
# from the feed (actor.token_id of the entries its own writes were
# matched to, if /user/tokens/verify names the same; kept in the state
# with the token's HMAC) and leaves that token's entries out of the
# observe query (actor_token_id.not=ID, the form SDK 6.5 sends); its own
# writes are matched by the post-apply read, which is not filtered. cfsim serves
# pages of 100 entries here (--audit-page-max), so paging shows at a
# few hundred workers:
#   - a converge of 300 workers writes ~1,200 entries (12+ pages);
#   - the first and second no-op after it read one audit page each, and
#     their query leaves out bindery's token (the id cfsim gives it);
#   - another actor's settings change (another token: the scripts list
#     does not show it, etag unchanged) is still found by the next plan;
#   - while own writes wait for their entries (cfsim --audit-delay), the
#     query is not filtered, so they are matched; once matched, it is;
#   - another API token: the old id is not used, the new one is learnt.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; echo "0 passed, 0 failed"; exit 77; }

export IT_MANY_SECRET=own-secret
AUDIT_ROUTE="GET /accounts/:account_id/logs/audit"

# last_audit_query: the query string of the last audit read in cfsim's log.
last_audit_query() {
        curl -s "$SIM/__sim/requests" | jq -r '[.requests[] | select(.path | endswith("/logs/audit"))] | last | .query'
}
# audit_lags: per audit read in cfsim's log, "filtered|unfiltered S",
# S the seconds its `since` lies before the request.
audit_lags() {
        curl -s "$SIM/__sim/requests" | python3 -c '
import json, sys, datetime, urllib.parse
def t(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
for r in json.load(sys.stdin)["requests"]:
    if r["path"].endswith("/logs/audit"):
        q = urllib.parse.parse_qs(r["query"])
        print("filtered" if "actor_token_id.not" in q else "unfiltered", int(t(r["time"]) - t(q["since"][0])))'
}
# token_id TOKEN: the id cfsim's /user/tokens/verify gives TOKEN.
# The audit queries since the last sim_reset_counters.
run_audit_queries() {
        curl -s "$SIM/__sim/requests" | jq -r '.requests[] | select(.path | endswith("/logs/audit")) | .query'
}
# What a run sent and left, as comments (for a failed check).
show_run_requests() {
        curl -s "$SIM/__sim/requests" | jq -r '.requests[] | "# \(.time) \(.method) \(.path) \(.query)"' | cut -c1-220
        sed 's/^/# stderr: /' "$TMP/err"
}
# filtered_by TOKEN: an audit query since the last sim_reset_counters
# leaves TOKEN's entries out.
filtered_by() {
        grep -q "actor_token_id.not=$(token_id "$1")" <<<"$(run_audit_queries)"
}
token_id() {
        curl -s -H "Authorization: Bearer $1" "$URL/user/tokens/verify" | jq -r .result.id
}

start_cfsim --max-scripts 0 --rate-limit 1000000/300 --audit-page-max 100
OWN_ID=$(token_id "$TOKEN")
OTHER_ID=$(token_id "$OTHER_TOKEN")
two_ids() { [ -n "$OWN_ID" ] && [ "$OWN_ID" != null ] && [ -n "$OTHER_ID" ] && [ "$OWN_ID" != "$OTHER_ID" ]; }
check "cfsim gives the two tokens different ids ($OWN_ID, $OTHER_ID)" two_ids

gen_many 300 100000
write_config "concurrency: 16" "request_budget: 100000/5m"
sim_reset_counters
bd apply
check_eq "cold converge of 300 workers exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output
conv_pages=$(sim_route "$AUDIT_ROUTE")
verify=$(sim_route "GET /user/tokens/verify")
check "the converge's post-apply read pages through its own entries ($conv_pages pages of 100)" [ "$conv_pages" -ge 10 ]
check_eq "the converge asks for the token's id once" "$verify" 1

for n in first second; do
        sim_reset_counters
        bd apply
        check_eq "the $n no-op exits 0" "$RC" 0
        check_eq "the $n no-op writes nothing" "$(sim_writes)" 0
        pages=$(sim_route "$AUDIT_ROUTE")
        req=$(sim_requests)
        echo "# $n no-op after the converge: $pages audit page(s), $req requests"
        check_eq "the $n no-op reads one audit page, not the converge's $conv_pages" "$pages" 1
        check "the $n no-op leaves out bindery's own token" grep -q "actor_token_id.not=$OWN_ID" <<<"$(last_audit_query)"
        check_eq "the $n no-op does not ask for the token id again" "$(sim_route "GET /user/tokens/verify")" 0
        check "the $n no-op costs at most 15 requests ($req)" [ "$req" -le 15 ]
done

# Another actor changes a binding (settings only: etag and modified_on
# stay, so only the audit feed tells).
E0=$(api GET workers/scripts | jq -r '.result[] | select(.id=="m007") | .etag')
api GET workers/scripts/m007/settings |
        jq -c '{bindings: ([.result.bindings[] | select(.type != "secret_text")] | map(if .name == "STAGE" then .text = "outside" else . end)), keep_bindings: ["secret_text"]}' \
                >"$TMP/settings.json"
check_eq "another token's PATCH settings is accepted" \
        "$(api PATCH workers/scripts/m007/settings -F "settings=<$TMP/settings.json;type=application/json" | jq -r .success)" true
check_eq "the outside change leaves the etag" "$(api GET workers/scripts | jq -r '.result[] | select(.id=="m007") | .etag')" "$E0"
bd plan
check_eq "the next plan finds the outside change (exit 2)" "$RC" 2
check "the plan names the changed worker" grep -q m007 "$TMP/out"
[ "$RC" = 2 ] || show_output
bd apply
check_eq "apply repairs it" "$RC" 0
check_eq "the binding is back" \
        "$(api GET workers/scripts/m007/settings | jq -r '.result.bindings[] | select(.name == "STAGE") | .text')" s-m007

# A lagging feed: own writes wait for their entries, so the query is not
# filtered until they are matched.
kill "$CFSIM_PID" 2>/dev/null; wait "$CFSIM_PID" 2>/dev/null
rm -rf "$TMP/state"
start_cfsim --audit-delay 5
gen_many 2 100
write_config
bd apply
check_eq "a converge with a lagging feed exits 0" "$RC" 0
bd apply
check_eq "a no-op at once exits 0" "$RC" 0
check "with own writes unmatched the query is not filtered" \
        bash -c '! grep -q actor_token_id.not <<<"$1"' _ "$(last_audit_query)"
sleep 6
bd apply
check_eq "a no-op once the entries show exits 0" "$RC" 0
sim_reset_counters
bd apply
check_eq "the next no-op exits 0" "$RC" 0
check "once they are matched the query leaves out bindery's token" \
        filtered_by "$TOKEN"
filtered_by "$TOKEN" || show_run_requests
# A write to a path written by the converge a few seconds before: its
# post-apply read must not take the converge's entry (still in its
# window, left out of the filtered reads since) for this write's, so
# the write waits for its own entry and the next no-op looks for it.
sed -i 's/STAGE: s-m1$/STAGE: s-m1-again/' "$TMP/spec/many.yaml"
bd apply
check_eq "an edit of m1 right after exits 0" "$RC" 0
sim_reset_counters
bd apply
check_eq "the no-op at once exits 0" "$RC" 0
check_eq "the edit's write waits for its own entry: two reads (filtered, and from the write on)" \
        "$(sim_route "$AUDIT_ROUTE")" 2
sed -i 's/STAGE: s-m1-again$/STAGE: s-m1/' "$TMP/spec/many.yaml"
sleep 6
bd apply
check_eq "m1 back as it was exits 0" "$RC" 0

# Entries of bindery's token that a filtered read left out of the ids
# it remembers are still its own when a later read is not filtered
# (a new worker's writes wait for their entries): m2's converge entries
# are not taken for an outside write (which would re-read m2 and put
# its secret again).
gen_many 3 100
bd apply
check_eq "a third worker applies" "$RC" 0
sleep 6
sim_reset_counters
bd apply
check_eq "the no-op after it exits 0" "$RC" 0
check_eq "it writes nothing" "$(sim_writes)" 0
check_eq "it does not read m2 in detail" "$(sim_stats | jq '[.by_route | to_entries[] | select(.key | test("scripts/:script_name/"))] | length')" 0
[ "$(sim_writes)" = 0 ] || show_output
# ...and it read the feed twice: others' entries over the whole window
# (filtered), every entry only from a minute before m3's writes were sent.
check_eq "it reads the feed twice (filtered, and from the waiting writes on)" "$(sim_route "$AUDIT_ROUTE")" 2
audit_lags > "$TMP/lags"
check "one read is filtered and reaches back the whole window" grep -q '^filtered [0-9]\{3,\}$' "$TMP/lags"
check "the unfiltered one reaches back about a minute, not 15 ($(tr '\n' ' ' <"$TMP/lags"))" \
        grep -q '^unfiltered [0-9]\{1,2\}$' "$TMP/lags"

# Another API token: the old id is not used; the new one is learnt from
# the new token's own writes.
sim_reset_counters
IT_CF_TOKEN=$OTHER_TOKEN bd apply
check_eq "a run with another token exits 0" "$RC" 0
check_eq "it asks for the new token's id" "$(sim_route "GET /user/tokens/verify")" 1
check "it does not leave out the old token's entries" \
        bash -c '! grep -q "actor_token_id.not=$1" <<<"$2"' _ "$(token_id "$TOKEN")" "$(last_audit_query)"
# A write with the new token (its entries wait, as above), then matched.
sed -i 's/STAGE: s-m1$/STAGE: s-m1-edited/' "$TMP/spec/many.yaml"
IT_CF_TOKEN=$OTHER_TOKEN bd apply
check_eq "an edit applied with it exits 0" "$RC" 0
sleep 6
IT_CF_TOKEN=$OTHER_TOKEN bd apply
sim_reset_counters
IT_CF_TOKEN=$OTHER_TOKEN bd apply
check_eq "later runs with it exit 0" "$RC" 0
check "later runs leave out the new token's entries" \
        filtered_by "$OTHER_TOKEN"
filtered_by "$OTHER_TOKEN" || show_run_requests
finish
