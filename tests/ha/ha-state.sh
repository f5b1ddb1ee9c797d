#!/usr/bin/env bash
# tests/ha/ha-state.sh: binderyd state import / export (issue 11). A
# single-host daemon converges a spec with a secret; its state directory
# is imported into etcd; two HA hosts then converge with 0 writes (the
# HMAC key came along). Exported back into a fresh state directory, a
# single-host daemon converges with 0 writes again. An import while a
# host leads is refused; so is one into an etcd holding another ledger.
# state forget with ha: is refused while a host leads; with none, it
# removes the record from the ledger in etcd (plan then blocks on the
# unowned worker) and deletes nothing.
set -u
. "$(dirname "$0")/lib.sh"
ha_setup
start_etcd
start_cfsim
export HA_SECRET=ha-secret-$$
spec_kv alpha beta
cat > "$work/spec/w.yaml" <<YAML
kind: Worker
name: api
main: b/api.js
compatibility_date: "2025-06-01"
bindings:
  CACHE: { kv_namespace: alpha }
  KEY: { secret: { env: HA_SECRET } }
YAML
mkdir -p "$work/spec/b"
echo 'export default { fetch() { return new Response("a"); } };' > "$work/spec/b/api.js"
host_config A
host_config B
for h in A B; do sed -i "s|^ha:|spec_env: [HA_SECRET]\nha:|" "$work/$h/binderyd.yaml"; done
# The single-host configuration: A's without ha:.
sed '/^ha:/,$d' "$work/A/binderyd.yaml" > "$work/single.yaml"

writes() { curl -s "$SIM/__sim/stats" | jq .writes; }
reset_counters() { curl -s -X POST "$SIM/__sim/reset?counters=1" >/dev/null; }

# --- one host, no ha:
CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" apply --config "$work/single.yaml" > "$work/apply.out" 2>&1
check "a single host converges (apply exit $?)" [ "$(sim_state | jq '.scripts | length')" = 1 ]

# --- into etcd
CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" state import --config "$work/A/binderyd.yaml" \
	> "$work/import.out" 2>&1
rc=$?
check "state import exits 0 (rc $rc)" [ "$rc" = 0 ]
grep -q "^Imported" "$work/import.out" || cat "$work/import.out"
reset_counters
start_host A
start_host B
converged() { host_idle A || host_idle B; }
for i in $(seq 400); do converged && break; sleep 0.05; done
check "a leader converged from the imported ledger" converged
check "with 0 writes (the HMAC key came along: $(writes) writes)" [ "$(writes)" = 0 ]
# (B's own state directory is locked by B: a fresh one.)
mkdir -p "$work/E/state"
sed "s|$work/B/state|$work/E/state|" "$work/B/binderyd.yaml" > "$work/E.yaml"
CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" state import --config "$work/E.yaml" \
	> "$work/import2.out" 2>&1
rc=$?
check "an import while a host leads is refused (rc $rc)" \
	sh -c '[ "$1" = 1 ] && grep -q "leads already" "$2"' _ "$rc" "$work/import2.out"

CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" state forget Worker/api --config "$work/E.yaml" \
	> "$work/forget1.out" 2>&1
rc=$?
check "state forget with ha: while a host leads is refused (rc $rc)" \
	sh -c '[ "$1" = 1 ] && grep -q "leads already" "$2"' _ "$rc" "$work/forget1.out"

# --- back out of etcd
mkdir -p "$work/C/state"
sed "s|$work/A/state|$work/C/state|" "$work/A/binderyd.yaml" > "$work/C.yaml"
CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" state export --config "$work/C.yaml" > "$work/export.out" 2>&1
rc=$?
check "state export exits 0 (rc $rc)" [ "$rc" = 0 ]
check "the export carries the HMAC key" cmp -s "$work/A/state/hmac.key" "$work/C/state/hmac.key"
stop_host A
stop_host B
reset_counters
sed '/^ha:/,$d' "$work/C.yaml" > "$work/single-c.yaml"
CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" apply --config "$work/single-c.yaml" > "$work/apply2.out" 2>&1
rc=$?
check "a single host on the exported state converges (rc $rc) with 0 writes ($(writes))" \
	[ "$rc:$(writes)" = 0:0 ]

# --- another ledger in etcd: refused, nothing written
sleep $((TTL + 1))      # the killed hosts' leases run out
mkdir -p "$work/D/state"
sed "s|$work/A/state|$work/D/state|" "$work/A/binderyd.yaml" > "$work/D.yaml"
CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" state import --config "$work/D.yaml" > "$work/import3.out" 2>&1
rc=$?
check "an import of another ledger (another HMAC key) is refused (rc $rc)" \
	sh -c '[ "$1" = 1 ] && grep -q "another HMAC key" "$2"' _ "$rc" "$work/import3.out"

# --- state forget with ha: edits the ledger in etcd (no host leads now)
plan_rc() {
	CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" plan --config "$work/A/binderyd.yaml" \
		> "$work/plan-$1.out" 2>&1
	echo $?
}
rc=$(plan_rc before)
check "before forget, plan over etcd is in sync (rc $rc)" [ "$rc" = 0 ]
CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" state forget Worker/api --config "$work/A/binderyd.yaml" \
	> "$work/forget2.out" 2>&1
rc=$?
check "state forget Worker/api with ha: exits 0 (rc $rc)" [ "$rc" = 0 ]
grep -q "no longer owns Worker/api" "$work/forget2.out" || cat "$work/forget2.out"
rc=$(plan_rc after)
check "after forget, the ledger in etcd no longer owns the worker: plan blocks on it (rc $rc)" \
	sh -c '[ "$1" = 3 ] && grep -q "api" "$2"' _ "$rc" "$work/plan-after.out"
CREDENTIALS_DIRECTORY="$work/creds" timeout 60 "$BINDERYD" state forget Worker/api --config "$work/A/binderyd.yaml" \
	> "$work/forget3.out" 2>&1
rc=$?
check "forgetting it again: bindery does not own it (rc $rc)" \
	sh -c '[ "$1" = 1 ] && grep -q "does not own Worker/api" "$2"' _ "$rc" "$work/forget3.out"
check "forget deleted nothing on Cloudflare" [ "$(sim_state | jq '.scripts | length')" = 1 ]
finish
