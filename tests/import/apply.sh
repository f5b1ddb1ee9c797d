#!/usr/bin/env bash
# tests/import/apply.sh: what a wrangler user moving to bindery does, against
# a strict cfsim (--check-bindings: resources must exist before they are
# bound, as on Cloudflare):
#   1. wrangler itself creates the resources (kv namespace create, r2 bucket
#      create, d1 create, queues create) and deploys two workers
#      (tests/import/projects/*: TOML and JSONC; every binding there is one
#      bindery expresses);
#   2. "binderyd import --adopt" turns their configurations into specs;
#   3. "binderyd plan" lists nothing but adopting what wrangler made (no
#      create, upload, update or delete), "binderyd apply" adopts it, and
#      a second plan has no changes at all.
# wrangler comes from the conformance suite's pinned npm install
# ($top_builddir/tests/conformance/npm, made by conformance.sh, which make
# check runs first). Skips (77), loudly, without node, npm or that install,
# and in the sanitizer pass (as conformance.sh does).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
top_builddir=$(cd "$top_builddir" && pwd)
BINDERYD="$top_builddir/daemon/binderyd"
CFSIM="$top_builddir/tests/cfsim/cfsim"
WRANGLER="$top_builddir/tests/conformance/npm/node_modules/.bin/wrangler"
n_pass=0 n_fail=0
ok() { n_pass=$((n_pass + 1)); echo "ok - $*"; }
not_ok() { n_fail=$((n_fail + 1)); echo "not ok - $*"; }
skip() { echo "SKIP: import-apply: $*"; echo "SKIP: the import was NOT checked against wrangler's own deployment"; exit 77; }

[ "${BINDERY_SANITIZED:-0}" = 1 ] && skip "not run in the sanitizer pass (BINDERY_SANITIZED=1); it runs in the normal pass"
command -v node >/dev/null || skip "node is not installed (wrangler needs Node.js >= 20)"
command -v npm >/dev/null || skip "npm is not installed"
for t in jq curl; do command -v "$t" >/dev/null || skip "$t is not installed"; done
[ -x "$WRANGLER" ] || skip "no wrangler in $top_builddir/tests/conformance/npm (conformance.sh installs it with npm ci; did it skip?)"
for f in "$BINDERYD" "$CFSIM"; do
	[ -x "$f" ] || { echo "missing $f (build first)"; echo "0 passed, 1 failed"; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bindery-import-apply.XXXXXX")
chmod 0700 "$TMP"
# wrangler leaves .wrangler/ in its working directory: never the build tree
# (make distcheck refuses files left after distclean).
cd "$TMP"
CFSIM_PID=
cleanup() {
	[ -n "$CFSIM_PID" ] && kill "$CFSIM_PID" 2>/dev/null && wait "$CFSIM_PID" 2>/dev/null
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

ACCOUNT=023e105f4ecef8ad9ca31a8372d0c353
TOKEN=import-apply-$$
# Strict like Cloudflare: --check-bindings while cfsim has that flag (a
# cfsim that is strict by default may drop it).
strict=
"$CFSIM" --help 2>&1 | grep -q -- '--check-bindings' && strict=--check-bindings
"$CFSIM" --host 127.0.0.1 --port 0 --account-id "$ACCOUNT" --token "$TOKEN" $strict \
	>"$TMP/cfsim.out" 2>"$TMP/cfsim.err" &
CFSIM_PID=$!
URL=
for _ in $(seq 100); do
	URL=$(sed -n 's/^cfsim listening on //p' "$TMP/cfsim.out")
	[ -n "$URL" ] && break
	sleep 0.05
done
[ -n "$URL" ] || { echo "cfsim did not start"; cat "$TMP/cfsim.err"; echo "0 passed, 1 failed"; exit 1; }
API="$URL/accounts/$ACCOUNT"
api() { curl -s -H "Authorization: Bearer $TOKEN" "$API/$1"; }

# wrangler's environment: this cfsim only, private HOME, no telemetry.
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy NODE_OPTIONS WRANGLER_LOG \
	CLOUDFLARE_API_KEY CLOUDFLARE_EMAIL CF_API_TOKEN CF_ACCOUNT_ID
mkdir -p "$TMP/home" "$TMP/tmp"
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost HOME="$TMP/home" TMPDIR="$TMP/tmp"
export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false WRANGLER_HIDE_BANNER=true CI=true
export npm_config_registry=http://127.0.0.1:9/ NO_UPDATE_NOTIFIER=1 DO_NOT_TRACK=1
export CLOUDFLARE_API_TOKEN="$TOKEN" CLOUDFLARE_ACCOUNT_ID="$ACCOUNT"
export CLOUDFLARE_API_BASE_URL="$URL" CLOUDFLARE_BASE_URL="$URL"

wr() { # log-name args...
	local name=$1
	shift
	if timeout 120 "$WRANGLER" "$@" >"$TMP/wrangler-$name.log" 2>&1; then
		ok "wrangler $* ($name)"
	else
		not_ok "wrangler $* failed:"; tail -15 "$TMP/wrangler-$name.log" | sed 's/^/#   /'
	fi
}

# 1. wrangler creates what the configurations bind, then deploys them.
wr kv kv namespace create imp-sessions
wr r2 r2 bucket create imp-archive
wr d1 d1 create imp-db
wr queue queues create imp-jobs
KV_ID=$(api 'storage/kv/namespaces?per_page=100' | jq -r '.result[] | select(.title == "imp-sessions") | .id')
D1_ID=$(api 'd1/database?per_page=100' | jq -r '.result[] | select(.name == "imp-db") | .uuid')
[ -n "$KV_ID" ] && [ -n "$D1_ID" ] && ok "the namespace and the database exist ($KV_ID, $D1_ID)" ||
	not_ok "wrangler's namespace or database is missing"
cp -r "$top_srcdir/tests/import/projects" "$TMP/projects"
chmod -R u+w "$TMP/projects"
for cfg in "$TMP"/projects/*/wrangler.*; do
	sed -i "s/@KV_ID@/$KV_ID/g; s/@D1_ID@/$D1_ID/g" "$cfg"
done
for p in shop edge; do
	(cd "$TMP/projects/$p" && wr "deploy-$p" deploy)
done

# 2. Import both, adopting what wrangler made.
rc=0
(cd "$TMP/projects" && "$BINDERYD" import --adopt --output "$TMP/projects" shop/wrangler.toml edge/wrangler.jsonc) \
	>"$TMP/import.out" 2>"$TMP/import.err" || rc=$?
if [ "$rc" -eq 0 ]; then ok "binderyd import --adopt of both"; else not_ok "import exits $rc:"; cat "$TMP/import.err"; fi
if [ ! -s "$TMP/import.err" ]; then ok "import reports nothing it cannot express"; else
	not_ok "import reported:"; cat "$TMP/import.err"; fi
# The spec directory is the projects' parent: the specs point at each
# project's own main; wrangler's configurations are not YAML, so not read.
"$BINDERYD" validate --spec-dir "$TMP/projects" >"$TMP/validate" 2>&1 && ok "binderyd validate accepts the import" ||
	{ not_ok "validate refuses the import:"; cat "$TMP/validate"; }

# 3. Plan: only adoptions; apply; plan again: nothing.
mkdir -p "$TMP/state"
cat >"$TMP/binderyd.yaml" <<CONF
account_id: $ACCOUNT
api_url: $URL
spec_dir: $TMP/projects
state_dir: $TMP/state
api_token: { env: IMPORT_APPLY_TOKEN }
log_level: warning
# The spec was written a moment ago: removals (imp-edge's workers.dev off)
# would wait prune_settle. This test is about the import, not settling.
prune_settle: 0s
CONF
export IMPORT_APPLY_TOKEN=$TOKEN
bd() { # name command args...
	local name=$1
	shift
	RC=0
	timeout 120 "$BINDERYD" "$@" --config "$TMP/binderyd.yaml" >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
}
bd plan1 plan --json

[ "$RC" = 2 ] && ok "plan before adoption exits 2 (changes pending)" || { not_ok "plan exits $RC:"; cat "$TMP/plan1.err"; }
check_jq() { # name file jq-expression (true when passing)
	if jq -e "$3" "$2" >/dev/null 2>&1; then ok "$1"; else not_ok "$1"; fi
}
check_jq "plan creates nothing (every resource and worker is wrangler's)" "$TMP/plan1.out" \
	'[.actions[] | select(.action | test("create"))] | length == 0'
check_jq "plan deletes and blocks nothing" "$TMP/plan1.out" '.deletes == 0 and .blocked == 0'
check_jq "plan adopts both workers and the named resources" "$TMP/plan1.out" \
	'[.actions[] | select(.action == "adopt") | .kind + "/" + .name] | sort ==
	 ["D1Database/imp-db", "Queue/imp-jobs", "R2Bucket/imp-archive", "Worker/imp-edge", "Worker/imp-shop"]'
check_jq "the KV namespace is bound by id, never changed" "$TMP/plan1.out" \
	'[.actions[] | select(.kind == "KVNamespace") | .action] == ["no-op"]'
check_jq "every other change follows an adoption" "$TMP/plan1.out" \
	'[.actions[] | select(.action != "adopt" and .action != "no-op") | .reason |
	  test("after adopting|workers.dev|schedules|recording consumer")] | all'

# What wrangler bound, as the API shows it, before bindery touches anything.
bindings() { # script
	api "workers/scripts/$1/settings" | jq -S '[.result.bindings[] | {name, type, text, json, namespace_id,
		bucket_name, queue_name, class_name, service, d1: (.id // .database_id)}] | sort_by(.name)'
}
for w in imp-shop imp-edge; do bindings "$w" >"$TMP/bindings-wrangler-$w.json"; done

bd apply apply
[ "$RC" = 0 ] && ok "binderyd apply adopts (exit 0)" || { not_ok "apply exits $RC:"; cat "$TMP/apply.err" "$TMP/apply.out" | tail -20; }
bd plan2 plan --json
[ "$RC" = 0 ] && ok "plan after adoption exits 0" || not_ok "plan after adoption exits $RC"
check_jq "plan after adoption: 0 changes" "$TMP/plan2.out" '.changes == 0 and .drift == 0'
for w in imp-shop imp-edge; do
	bindings "$w" >"$TMP/bindings-bindery-$w.json"
	n=$(jq length "$TMP/bindings-wrangler-$w.json")
	if [ "$n" -gt 0 ] && cmp -s "$TMP/bindings-wrangler-$w.json" "$TMP/bindings-bindery-$w.json"; then
		ok "$w: bindery's bindings equal wrangler's ($n)"
	else
		not_ok "$w: bindings differ from wrangler's"; diff "$TMP/bindings-wrangler-$w.json" "$TMP/bindings-bindery-$w.json" | head -20
	fi
done

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
