#!/bin/bash
# engine-state-v1.sh: a version-1 state directory written by bindery
# before the version-2 format (tests/data/state-v1: state.json, its HMAC
# key, and the cfsim state it was written against, after converging the
# "full" spec) is lifted on load: apply converges with 0 writes, and the
# state it saves is version 2 and converges again with 0 writes.
. "$(dirname "$0")/lib.sh"

DATA="$top_srcdir/tests/data/state-v1"

# cfsim restarted from the state the v1 run left.
cp "$DATA/cfsim-state.json" "$TMP/cfsim-state.json"
chmod u+w "$TMP/cfsim-state.json"
start_cfsim --state "$TMP/cfsim-state.json"
use_spec full
write_config
mkdir -p "$TMP/state"
chmod 0700 "$TMP/state"
# The binding names the api_url the file was written against; this cfsim
# listens on another port.
sed "s|@API_URL@|$URL|" "$DATA/state.json" >"$TMP/state/state.json"
python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(open(sys.argv[1]).read().strip()))' \
        "$DATA/hmac.key.hex" >"$TMP/state/hmac.key"
chmod 0600 "$TMP/state/state.json" "$TMP/state/hmac.key"
# The secret values the v1 state's fingerprints were made of.
export IT_API_KEY=v1-api-key IT_JWT_SECRET=v1-jwt-secret IT_STORE_SECRET=v1-store-secret

check_eq "the fixture is a version-1 state" "$(jq .version "$TMP/state/state.json")" 1

sim_reset_counters
bd apply
check_eq "apply on the v1 state exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output
check_eq "apply on the v1 state: 0 writes" "$(sim_writes)" 0
check_eq "the state is saved as version 2" "$(jq .version "$TMP/state/state.json")" 2
check_eq "nine resources owned after the lift" \
        "$(jq '[.records | to_entries[] | select(.key | startswith("resource/"))] | length' "$TMP/state/state.json")" 9
check_eq "no meta JSON strings for ledger entries" \
        "$(jq '[.records | keys[] | select(startswith("meta/engine.x."))] | length' "$TMP/state/state.json")" 0
check_eq "the worker's secret fingerprint survived the lift" \
        "$(jq -r '.records["resource/Worker/api"].ledger.secrets.API_KEY | length' "$TMP/state/state.json")" 64

sim_reset_counters
bd apply
check_eq "apply on the v2 state exits 0" "$RC" 0
check_eq "apply on the v2 state: 0 writes" "$(sim_writes)" 0

# A secret changed in the spec's environment is still detected (the
# lifted fingerprints are compared, not dropped).
export IT_API_KEY=v1-api-key-rotated
sim_reset_counters
bd apply
check_eq "rotated secret: apply exits 0" "$RC" 0
check "rotated secret: written" test "$(sim_writes)" -ge 1

finish
