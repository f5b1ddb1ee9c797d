#!/bin/bash
# engine-audit-overlap.sh: the audit feed is re-read from the last check
# minus audit_overlap (issue 13: a fixed 15 minutes re-read 15 pages after
# a 5,000-worker converge). cfsim's request log shows each audit query's
# `since`: with audit_overlap: 20s it lies 20 s (plus the time between
# the two runs) before the query; with the default, 15 minutes.
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
echo "# default: since lies ${l} s before the query"
check "the default goes back 15 minutes (${l} s)" in_range "$l" 900 1000
finish
