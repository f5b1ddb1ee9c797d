# tests/daemon/lib.sh: shared by the daemon's end-to-end tests (sourced).
# Starts cfsim and binderyd on loopback with free ports in a private
# temporary directory, and counts checks. Every wait is bounded. Nothing
# is written into the source tree.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
BINDERYD=${BINDERYD:-$top_builddir/daemon/binderyd}
CFSIM=${CFSIM:-$top_builddir/tests/cfsim/cfsim}
ACCOUNT=023e105f4ecef8ad9ca31a8372d0c353
passed=0 failed=0
pids=""

ok()   { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
check() { # description, command...
	local what=$1; shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
skip_all() {
	echo "SKIP: $*"
	echo "0 passed, 0 failed"
	exit 77
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

cleanup() {
	local p
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}

# Millisecond clock.
now_ms() { date +%s%3N; }

setup() {
	[ -x "$BINDERYD" ] || skip_all "$BINDERYD is not built"
	[ -x "$CFSIM" ] || skip_all "cfsim ($CFSIM) is not built"
	command -v curl >/dev/null || skip_all "curl is not installed"
	work=$(mktemp -d "${TMPDIR:-/tmp}/bindery-e2e.XXXXXX")
	trap cleanup EXIT
	mkdir -p "$work/spec/workers" "$work/spec/bundles" "$work/state" "$work/creds"
	chmod 0700 "$work/creds"
	API_TOKEN=cf-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	HTTP_TOKEN=http-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	HOOK_SECRET=hook-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf '%s' "$API_TOKEN" > "$work/creds/cloudflare-api-token"
	printf '%s\n' "$HTTP_TOKEN" > "$work/creds/http-token"
	chmod 0600 "$work/creds/"*
}

start_cfsim() {
	: > "$work/cfsim.out"   # not left to the child's redirection: a restart could read the old port
	"$CFSIM" --port 0 --host 127.0.0.1 --account-id "$ACCOUNT" --token "$API_TOKEN" "$@" > "$work/cfsim.out" 2>&1 &
	pids="$pids $!"
	local i
	for i in $(seq 100); do grep -q 'listening on' "$work/cfsim.out" && break; sleep 0.05; done
	SIM_PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/cfsim.out")
	[ -n "$SIM_PORT" ] || { cat "$work/cfsim.out"; echo "cfsim did not start"; exit 1; }
	SIM=http://127.0.0.1:$SIM_PORT
}

# write_config [extra yaml lines...]
write_config() {
	{
		echo "account_id: $ACCOUNT"
		echo "api_url: $SIM/client/v4"
		echo "spec_dir: $work/spec"
		echo "state_dir: $work/state"
		echo "listen: 127.0.0.1:0"
		echo "http_token: { credential: http-token }"
		echo "webhook_secret: { env: BINDERY_TEST_HOOK_SECRET }"
		echo "interval: 10m"
		case " $* " in *" prune_settle:"*) ;; *) echo "prune_settle: 0s" ;; esac
		for l in "$@"; do echo "$l"; done
	} > "$work/binderyd.yaml"
}

start_daemon() {
	: > "$work/binderyd.log"
	CREDENTIALS_DIRECTORY="$work/creds" BINDERY_TEST_HOOK_SECRET="$HOOK_SECRET" \
		"$BINDERYD" --config "$work/binderyd.yaml" "$@" >> "$work/binderyd.log" 2>&1 &
	DAEMON_PID=$!
	pids="$pids $DAEMON_PID"
	local i
	for i in $(seq 200); do grep -q 'HTTP API listening' "$work/binderyd.log" && break; sleep 0.05; done
	PORT=$(sed -n 's|.*HTTP API listening on .* (port \([0-9]*\)).*|\1|p' "$work/binderyd.log" | head -1)
	[ -n "$PORT" ] || { cat "$work/binderyd.log"; echo "binderyd did not start"; exit 1; }
	API=http://127.0.0.1:$PORT
	for i in $(seq 100); do curl -fs "$API/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
}

stop_daemon() {
	kill -TERM "$DAEMON_PID" 2>/dev/null
	local i
	for i in $(seq 200); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
	wait "$DAEMON_PID"
}

# http METHOD PATH [curl args...]: body in $BODY, status in $STATUS.
http() {
	local m=$1 p=$2; shift 2
	BODY=$(curl -s -m 30 -o - -w '\n%{http_code}' -X "$m" "$@" "$API$p")
	STATUS=${BODY##*$'\n'}
	BODY=${BODY%$'\n'*}
}

# json EXPR: evaluates a Python expression on $BODY parsed as d.
json() {
	printf '%s' "$BODY" | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

# Waits until the daemon is idle (no current or pending run); bounded.
wait_idle() {
	local i
	for i in $(seq "${1:-300}"); do
		http GET /v1/status
		[ "$(json 'd["current_run"] is None and d["pending_run"] is None')" = True ] && return 0
		sleep 0.1
	done
	return 1
}

runs_count() {
	http GET /v1/runs
	json 'len(d)'
}

# A small spec: a KV namespace and a worker bound to it.
small_spec() {
	printf 'kind: KVNamespace\nname: sessions\n' > "$work/spec/kv.yaml"
	echo 'export default { fetch() { return new Response("ok"); } };' > "$work/spec/bundles/api.js"
	cat > "$work/spec/workers/api.yaml" <<YAML
kind: Worker
name: api
main: ../bundles/api.js
compatibility_date: "2025-06-01"
bindings:
  SESSIONS: { kv_namespace: sessions }
  STAGE: ${1:-production}
YAML
}

# N workers, each with a KV binding and a plain text binding.
many_workers() {
	local n=$1 i
	printf 'kind: KVNamespace\nname: shared\n' > "$work/spec/kv.yaml"
	echo 'export default { fetch() { return new Response("ok"); } };' > "$work/spec/bundles/w.js"
	for i in $(seq "$n"); do
		printf 'kind: Worker\nname: w%d\nmain: ../bundles/w.js\ncompatibility_date: "2025-06-01"\nbindings:\n  KV: { kv_namespace: shared }\n  ID: "%d"\n---\n' "$i" "$i"
	done > "$work/spec/workers/many.yaml"
}

sim_state() { curl -s -m 10 "$SIM/__sim/state"; }

# p99 of a list of numbers on stdin (seconds), printed in ms.
p99_ms() { sort -n | awk '{ a[NR] = $1 } END { i = int(NR * 0.99 + 0.999); if (i < 1) i = 1; printf "%.1f", a[i] * 1000 }'; }
max_ms() { sort -n | tail -1 | awk '{ printf "%.1f", $1 * 1000 }'; }
