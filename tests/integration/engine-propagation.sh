#!/bin/bash
# engine-propagation.sh: bindery converges on a Cloudflare where a new KV
# namespace, R2 bucket, D1 database, queue or Secrets Store secret is
# listed at once but accepted as a binding target only a moment later
# (issue 8; cfsim --propagation-delay, as Alchemy observed on the live
# API). The upload that binds it is refused with the target's not-found
# code and retried within binding_target_wait; then a no-op plan exits 0.
#   - the integration spec (specs/full), every create lagging 1 s;
#   - the same with only every second create lagging;
#   - the example spec (etc/examples), seeded with what it references.
. "$(dirname "$0")/lib.sh"

export IT_API_KEY=prop-api-key IT_JWT_SECRET=prop-jwt IT_STORE_SECRET=prop-store

restart_cfsim() {
        [ -n "$CFSIM_PID" ] && kill "$CFSIM_PID" 2>/dev/null && wait "$CFSIM_PID" 2>/dev/null
        CFSIM_PID=
        rm -rf "$TMP/state"
        start_cfsim "$@"
}

converge() {    # LABEL
        bd apply
        check_eq "$1: apply converges (exit 0)" "$RC" 0
        [ "$RC" = 0 ] || show_output
        check "$1: some upload was refused while a target propagated" \
                bash -c "curl -s '$SIM/__sim/stats' | jq -e '(.by_status[\"400\"] // 0) > 0' >/dev/null"
        bd plan
        check_eq "$1: no-op plan exits 0" "$RC" 0
        [ "$RC" = 0 ] || show_output
}

restart_cfsim --propagation-delay 1
use_spec full
write_config
converge "full spec, every create lags 1 s"

restart_cfsim --propagation-delay 1 --propagation-every 2
use_spec full
write_config
converge "full spec, every second create lags"

# etc/examples: its credentials from a private directory, its externals
# seeded (the LEGACY namespace, the eu ARCHIVE bucket, Hyperdrive and
# Vectorize), as scripts/demo does.
restart_cfsim --propagation-delay 1
curl -s -X POST "$SIM/__sim/seed" -d '{"kv": [{"id": "0f2ac74b498b48028cb68387c421e279", "title": "legacy-sessions"}],
 "r2": [{"name": "company-archive", "jurisdiction": "eu"}],
 "hyperdrive": [{"id": "5f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99", "name": "company-postgres"}],
 "vectorize": [{"name": "docs-index"}]}' >/dev/null
rm -rf "$TMP/spec"
cp -r "$top_srcdir/etc/examples" "$TMP/spec"
chmod -R u+w "$TMP/spec"
mkdir -m 0700 "$TMP/creds"
for c in $(grep -rhoE 'credential:[[:space:]]*["'\'']?[A-Za-z0-9._-]+' "$TMP/spec" |
           sed -E 's/credential:[[:space:]]*["'\'']?//' | sort -u); do
        printf 'example-%s-value' "$c" >"$TMP/creds/$c"
done
write_config
export CREDENTIALS_DIRECTORY=$TMP/creds
converge "etc/examples, every create lags 1 s"

finish
