#!/bin/bash
# engine-audit-overlap.sh: the audit feed is re-read from the last check
# minus an overlap sized to the feed's delay (issue 13: a fixed 15
# minutes re-read 15 pages after a 5,000-worker converge). The delay is
# measured by bindery's own writes (their entries in the post-apply read);
# the overlap is 4 times that, at least 30 s, at most audit_overlap, and
# the whole audit_overlap while the delay is unknown. cfsim's request log
# shows each audit query's `since`:
#   - audit_overlap: 20s: 20 s (plus the time between the two runs);
#   - the default after a converge whose writes all showed up: 30 s;
#   - a feed that lags (cfsim --audit-delay): the default 15 minutes;
#   - and the audit pages of the second no-op more than 30 s after a
#     converge of 600 workers (1,200 entries, two pages of 1,000): one
#     (with a fixed 15 minutes, every cycle for 15 minutes read both).
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; echo "0 passed, 0 failed"; exit 77; }

start_cfsim
gen_many 2 100
export IT_MANY_SECRET=overlap-secret

in_range() { [ "$1" -ge "$2" ] && [ "$1" -lt "$3" ]; }

# lag: seconds between the last audit query and its `since`.
lag() {
        curl -s "$SIM/__sim/requests" | python3 -c '
import json, sys, datetime, urllib.parse
def t(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
rs = [r for r in json.load(sys.stdin)["requests"] if r["path"].endswith("/logs/audit")]
q = urllib.parse.parse_qs(rs[-1]["query"])
print(int(t(rs[-1]["time"]) - t(q["since"][0])))'
}

write_config "audit_overlap: 20s"
bd apply
check_eq "cold converge exits 0" "$RC" 0
bd apply
check_eq "second run exits 0" "$RC" 0
l=$(lag)
echo "# audit_overlap 20s: since lies ${l} s before the query"
check "the query goes back 20 s and the time between runs, not 15 minutes (${l} s)" in_range "$l" 20 120

write_config
bd apply
check_eq "a run with the default exits 0" "$RC" 0
l=$(lag)
echo "# default, the feed's delay measured: since lies ${l} s before the query"
check "the default goes back the 30 s floor, not 15 minutes (${l} s)" in_range "$l" 30 120

# A feed that lags: own writes miss the post-apply read, the delay is
# unknown, the whole default overlap is read.
kill "$CFSIM_PID" 2>/dev/null; wait "$CFSIM_PID" 2>/dev/null
rm -rf "$TMP/state"
start_cfsim --audit-delay 3
write_config
bd apply
check_eq "a cold converge with a lagging feed exits 0" "$RC" 0
bd apply
l=$(lag)
echo "# default, the feed lags: since lies ${l} s before the query"
check "with the delay unknown the default goes back 15 minutes (${l} s)" in_range "$l" 900 1000

# Pages after a large converge: 600 workers write 1,200 entries (two
# pages); 30 s later a no-op reads one page, not the converge again.
kill "$CFSIM_PID" 2>/dev/null; wait "$CFSIM_PID" 2>/dev/null
rm -rf "$TMP/state"
start_cfsim --max-scripts 0 --rate-limit 1000000/300
gen_many 600 100000
write_config "concurrency: 16" "request_budget: 100000/5m"
bd apply
check_eq "cold converge of 600 workers exits 0" "$RC" 0
entries=$(api GET "logs/audit?since=2000-01-01T00:00:00Z&before=2100-01-01T00:00:00Z&limit=1000" | jq '.result | length')
check "the converge left more than one page of entries ($entries of 1000 on the first)" [ "$entries" = 1000 ]
# 32 s later: the first no-op still reads the overlap before the
# converge's last check; the next one reads from its own check on.
sleep 32
sim_reset_counters
bd apply
check_eq "a no-op 32 s later exits 0" "$RC" 0
first=$(sim_route "GET /accounts/:account_id/logs/audit")
sim_reset_counters
bd apply
check_eq "the next no-op exits 0" "$RC" 0
pages=$(sim_route "GET /accounts/:account_id/logs/audit")
echo "# audit pages read after the converge: $first by the first no-op 32 s later, $pages by the next"
check "the next no-op read one audit page, not the converge's ($pages)" [ "$pages" = 1 ]
finish
