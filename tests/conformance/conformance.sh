#!/usr/bin/env bash
# conformance.sh: real Cloudflare clients from the npm registry (wrangler,
# alchemy, the official cloudflare SDK, pinned in package-lock.json) against
# cfsim, to prove cfsim behaves like the Cloudflare API.
#
# Run by "make check" with top_srcdir and top_builddir in the environment.
# The clients are installed with "npm ci" into
# $top_builddir/tests/conformance/npm/ (never into the source tree) and
# reused while the lockfile is unchanged.  Every scenario file gets its own
# cfsim on 127.0.0.1 (port 0), runs its clients with a timeout, and checks
# cfsim's resulting state through the API and GET /__sim/state.
#
# Output: one "PASS: name" or "FAIL: name (reason)" line per scenario, then
# "N passed, N failed".  Exit 0 when all passed, 1 when any failed, 77 (skip)
# when node/npm or the install is unavailable or under BINDERY_SANITIZED=1.
#
# Usage: conformance.sh [SCENARIO-FILE-NAME...]   (default: all of them)
# Environment: CONFORMANCE_KEEP=1 keeps the work directory for inspection;
# CFSIM=PATH runs another cfsim binary; CONFORMANCE_JOBS=N runs N scenario
# files at once (default 2); CONFORMANCE_DEBUG=1 makes wrangler
# log every request and response into the kept client logs.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -uo pipefail

srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${top_builddir:-$srcdir}
here="$srcdir/tests/conformance"
cfsim=${CFSIM:-$builddir/tests/cfsim/cfsim}
npmdir="$builddir/tests/conformance/npm"
SECONDS=0

skip() {
	echo "SKIP: conformance: $*"
	exit 77
}

if [ "${BINDERY_SANITIZED:-0}" = 1 ]; then
	skip "not run in the sanitizer pass (BINDERY_SANITIZED=1); it runs in the normal pass"
fi
command -v node >/dev/null || skip "node is not installed; the conformance suite needs Node.js >= 20"
command -v npm >/dev/null || skip "npm is not installed; the conformance suite needs npm"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 20 ] 2>/dev/null || skip "node $(node --version 2>/dev/null) is too old; wrangler 4 needs Node.js >= 20"
if [ ! -x "$cfsim" ]; then
	echo "FAIL: conformance (cfsim not built: $cfsim is missing)"
	echo "0 passed, 1 failed"
	exit 1
fi

# --- install the pinned clients (cached by the lockfile's hash) ----------
lockhash=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
stamp="$npmdir/node_modules/.bindery-lock-sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lockhash" ] &&
   [ -x "$npmdir/node_modules/.bin/wrangler" ]; then
	echo "# npm clients: up to date in $npmdir (lockfile ${lockhash:0:12})"
else
	echo "# npm clients: npm ci into $npmdir (lockfile ${lockhash:0:12})"
	mkdir -p "$npmdir" || skip "cannot create $npmdir"
	cp "$here/package.json" "$here/package-lock.json" "$here/.npmrc" "$npmdir/" ||
		skip "cannot copy package.json and package-lock.json to $npmdir"
	chmod u+w "$npmdir/package.json" "$npmdir/package-lock.json" "$npmdir/.npmrc"
	t0=$SECONDS
	if ! (cd "$npmdir" && timeout 900 npm ci --no-audit --no-fund --prefer-offline \
		>"$npmdir/npm-ci.log" 2>&1); then
		tail -20 "$npmdir/npm-ci.log" | sed 's/^/#   /'
		skip "npm ci failed (registry unreachable?); see $npmdir/npm-ci.log"
	fi
	echo "$lockhash" > "$stamp"
	echo "# npm clients: installed in $((SECONDS - t0)) s"
fi
for bin in wrangler tsx; do
	[ -x "$npmdir/node_modules/.bin/$bin" ] || skip "npm ci left no $bin in $npmdir/node_modules/.bin"
done

# --- a private work area: HOME, TMPDIR, client state all live here -------
work=$(mktemp -d "${TMPDIR:-/tmp}/bindery-conformance.XXXXXX") || exit 1
chmod 0700 "$work"
sim_pid=
cleanup() {
	trap - EXIT INT TERM
	local j
	for j in $(jobs -p); do kill "$j" 2>/dev/null; done
	wait 2>/dev/null
	if [ "${CONFORMANCE_KEEP:-0}" = 1 ]; then
		echo "# work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/home" "$work/tmp"
cp -r "$here/fixtures" "$work/fixtures"
chmod -R u+w "$work/fixtures"

account=0123456789abcdef0123456789abcdef
token=conformance-token-$$

# The clients' environment: cfsim only, nothing that reaches further.
# npm_config_registry points wrangler's update check at a closed loopback
# port; the proxies are dropped so loopback traffic goes direct.
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy \
	CLOUDFLARE_API_KEY CLOUDFLARE_EMAIL CF_API_TOKEN CF_API_KEY CF_EMAIL \
	CF_ACCOUNT_ID CF_API_BASE_URL NODE_OPTIONS WRANGLER_LOG
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export HOME="$work/home" TMPDIR="$work/tmp"
export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false
export WRANGLER_HIDE_BANNER=true CI=true
export ALCHEMY_CI_STATE_STORE_CHECK=false ALCHEMY_TELEMETRY_DISABLED=1
export ALCHEMY_PASSWORD=conformance-password DO_NOT_TRACK=1
export npm_config_registry=http://127.0.0.1:9/ NO_UPDATE_NOTIFIER=1
export CLOUDFLARE_API_TOKEN="$token" CLOUDFLARE_ACCOUNT_ID="$account"
export CONFORMANCE_WORK="$work" CONFORMANCE_FIXTURES="$work/fixtures"
export CONFORMANCE_NODE_MODULES="$npmdir/node_modules"
export NODE_PATH="$npmdir/node_modules"
if [ "${CONFORMANCE_DEBUG:-0}" = 1 ]; then
	export WRANGLER_LOG=debug WRANGLER_LOG_SANITIZE=false
fi

start_sim() { # log file
	local out=$1 url=
	# cfsim's defaults, as Cloudflare: bindings to resources that do not
	# exist are refused (every scenario creates what it binds first), the
	# rate limit is 1,200 requests per 5 minutes, the account limits hold.
	"$cfsim" --host 127.0.0.1 --port 0 --account-id "$account" --token "$token" \
		>"$out" 2>&1 &
	sim_pid=$!
	for _ in $(seq 100); do
		url=$(sed -n 's/^cfsim listening on \(http:[^ ]*\).*$/\1/p' "$out" | head -1)
		[ -n "$url" ] && break
		kill -0 "$sim_pid" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$url" ] || return 1
	case "$url" in
	http://127.0.0.1:*/client/v4) ;;
	*) echo "# cfsim announced '$url', not a loopback /client/v4 URL"; return 1 ;;
	esac
	export CLOUDFLARE_API_BASE_URL="$url" CLOUDFLARE_BASE_URL="$url" CFSIM_URL="$url"
	export CFSIM_ROOT="${url%/client/v4}"
}

stop_sim() {
	[ -n "$sim_pid" ] || return 0
	kill "$sim_pid" 2>/dev/null
	wait "$sim_pid" 2>/dev/null
	sim_pid=
}

# Runs one scenario file against its own cfsim, in a subshell of its own
# (its cfsim, HOME and TMPDIR are private to it).  Writes the file's report
# to $work/NAME.report and "PASSED FAILED" to $work/NAME.counts.
run_file() { # file
	local file=$1 name log t0 rc p f
	name=$(basename "$file" .mjs)
	log="$work/$name.out"
	t0=$SECONDS
	trap 'stop_sim' EXIT
	trap 'exit 1' INT TERM
	export CONFORMANCE_SCENARIO_DIR="$work/$name"
	export HOME="$work/$name/.home" TMPDIR="$work/$name/.tmp" XDG_CONFIG_HOME="$work/$name/.xdg"
	export WRANGLER_LOG_PATH="$work/$name/.wrangler-logs"
	mkdir -p "$HOME" "$TMPDIR" "$XDG_CONFIG_HOME" "$WRANGLER_LOG_PATH"
	exec >"$work/$name.report" 2>&1
	if ! start_sim "$work/$name.cfsim.log"; then
		echo "FAIL: $name (cfsim did not start: $(tail -1 "$work/$name.cfsim.log" 2>/dev/null))"
		echo "0 1" >"$work/$name.counts"
		return
	fi
	timeout -k 5 600 node "$file" >"$log" 2>&1
	rc=$?
	# Result lines from the scenario file; detail lines ("  ...") follow a FAIL.
	grep -E '^(PASS|FAIL): |^  ' "$log"
	p=$(grep -c '^PASS: ' "$log")
	f=$(grep -c '^FAIL: ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			echo "FAIL: $name (timed out after 600 s)"
		else
			echo "FAIL: $name (scenario script exited $rc)"
		fi
		tail -15 "$log" | sed 's/^/  | /'
		f=$((f + 1))
	fi
	if ! kill -0 "$sim_pid" 2>/dev/null; then
		wait "$sim_pid" 2>/dev/null
		echo "FAIL: $name-cfsim-alive (cfsim exited during the scenario, status $?)"
		tail -5 "$work/$name.cfsim.log" | sed 's/^/  | /'
		f=$((f + 1))
		sim_pid=
	fi
	# cfsim's request log, for a kept work directory.
	curl -s --max-time 5 "$CFSIM_ROOT/__sim/requests" >"$work/$name.requests.json" 2>/dev/null
	stop_sim
	# A failed scenario file's client and cfsim logs outlive the work dir.
	if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
		mkdir -p "$logs/$name"
		cp "$log" "$work/$name.cfsim.log" "$work/$name.requests.json" "$logs/$name/" 2>/dev/null
		cp "$work/$name"/*.log "$logs/$name/" 2>/dev/null
		echo "# $name: client and cfsim logs in $logs/$name/"
	fi
	echo "# $name: $((SECONDS - t0)) s"
	echo "$p $f" >"$work/$name.counts"
}

passed=0
failed=0
logs="$builddir/tests/conformance/logs"
rm -rf "$logs"
if [ $# -gt 0 ]; then
	files=()
	for f in "$@"; do files+=("$here/scenarios/${f%.mjs}.mjs"); done
else
	files=("$here"/scenarios/*.mjs)
fi

# Scenario files run CONFORMANCE_JOBS at a time (default 2: most of a
# client call is node loading its bundle on one core).  Reports are
# printed whole, in the order the files finish.
jobs=${CONFORMANCE_JOBS:-2}
printed=()
print_done() {
	local file name
	for file in "${files[@]}"; do
		name=$(basename "$file" .mjs)
		[ -f "$work/$name.counts" ] || continue
		case " ${printed[*]} " in *" $name "*) continue ;; esac
		printed+=("$name")
		cat "$work/$name.report"
		read -r p f <"$work/$name.counts"
		passed=$((passed + p))
		failed=$((failed + f))
	done
}
running=0
for file in "${files[@]}"; do
	if [ ! -f "$file" ]; then
		echo "FAIL: $(basename "$file" .mjs) (no such scenario file: $file)"
		failed=$((failed + 1))
		continue
	fi
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
		print_done
	fi
	( run_file "$file" ) &
	running=$((running + 1))
done
wait
print_done
for file in "${files[@]}"; do
	name=$(basename "$file" .mjs)
	if [ -f "$file" ] && [ ! -f "$work/$name.counts" ]; then
		echo "FAIL: $name (the runner lost it: no report)"
		failed=$((failed + 1))
	fi
done

echo "# conformance suite: $SECONDS s in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
