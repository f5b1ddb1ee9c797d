#!/bin/sh
# tests/types/tsc.sh: compiles what `binderyd types` prints for every worker
# of etc/examples with tsc against @cloudflare/workers-types (versions pinned
# in package.json / package-lock.json, installed with `npm ci` into
# $top_builddir/tests/types-work, never into the source tree). The api worker is
# compiled together with worker.ts, which uses every binding; misuse.ts must
# be rejected, which shows the types are precise. Skips (exit 77) without
# node/npm or under BINDERY_SANITIZED=1.
set -u

src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${top_builddir:-$src}
binderyd=${BINDERYD:-$build/daemon/binderyd}
work=$build/tests/types-work
passed=0
failed=0

skip() {
	echo "*** tests/types/tsc.sh SKIPPED: $* ***" >&2
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
}

if [ "${BINDERY_SANITIZED:-0}" = 1 ]; then
	skip "BINDERY_SANITIZED=1 (tsc only runs in the normal build)"
fi
command -v node >/dev/null 2>&1 || skip "node is not installed"
command -v npm >/dev/null 2>&1 || skip "npm is not installed"
if [ ! -x "$binderyd" ]; then
	echo "FAIL: $binderyd not built" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

mkdir -p "$work" || exit 1
for f in package.json package-lock.json tsconfig.json worker.ts misuse.ts; do
	cp "$src/tests/types/$f" "$work/$f" || exit 1
	chmod u+w "$work/$f"
done
if ! cmp -s "$work/package-lock.json" "$work/node_modules/.bindery-lock" 2>/dev/null; then
	echo "npm ci in $work"
	if ! (cd "$work" && npm ci --no-audit --no-fund --loglevel=error); then
		skip "npm ci failed (is the npm registry reachable?)"
	fi
	cp "$work/package-lock.json" "$work/node_modules/.bindery-lock"
fi
tsc="$work/node_modules/.bin/tsc"
[ -x "$tsc" ] || skip "tsc missing after npm ci"

# Workers of the examples: each document is "kind: Worker" then "name: X".
workers=$(cat $(find "$src/etc/examples" -name '*.yaml' -o -name '*.yml' | sort) |
	awk '/^kind: Worker/ { w = 1; next } w && /^name: / { print $2; w = 0 }')
[ -n "$workers" ] || { echo "FAIL: no workers found in etc/examples"; echo "0 passed, 1 failed"; exit 1; }

# Every worker's file at once, as a project would keep them (DIR/WORKER.d.ts,
# import paths relative to DIR).
rm -f "$work"/*.d.ts
if "$binderyd" types --spec-dir "$src/etc/examples" --all --output "$work" 2>/dev/null; then
	n=$(ls "$work"/*.d.ts | wc -l)
	nw=$(echo "$workers" | wc -w)
	if [ "$n" -eq "$nw" ]; then
		echo "PASS: types --all --output wrote one file per worker ($n)"
		passed=$((passed + 1))
	else
		echo "FAIL: types --all --output wrote $n files for $nw workers"
		failed=$((failed + 1))
	fi
else
	echo "FAIL: binderyd types --all --output"
	failed=$((failed + 1))
fi
# Durable Objects and RPC entrypoints typed from the module's exported class.
if grep -q 'COUNTER: DurableObjectNamespace<import("\.[./]*/.*/counter/index.js").Counter>' "$work/api.d.ts" 2>/dev/null &&
	grep -q 'AUTH_RPC: Service<import("\.[./]*/.*/auth/index.js").AuthRpc>' "$work/api.d.ts" &&
	grep -q 'LIMITER: DurableObjectNamespace<import(".*").RateLimiter>' "$work/counter.d.ts"; then
	echo "PASS: DO bindings typed with their class, entrypoints as Service<...>"
	passed=$((passed + 1))
else
	echo "FAIL: DO/entrypoint types missing in $work/api.d.ts or counter.d.ts"
	failed=$((failed + 1))
fi

for w in $workers; do
	if ! cp "$work/$w.d.ts" "$work/env.ts" 2>/dev/null; then
		echo "FAIL: binderyd types --all wrote no $w.d.ts"
		failed=$((failed + 1))
		continue
	fi
	if [ "$w" = api ]; then
		cp "$work/worker.ts" "$work/main.ts"
	else
		cat >"$work/main.ts" <<TS
import type { Env } from "./env";
export default {
	async fetch(request: Request, env: Env): Promise<Response> {
		return new Response(Object.keys(env).join(","));
	},
} satisfies ExportedHandler<Env>;
TS
	fi
	if (cd "$work" && "$tsc" -p tsconfig.json); then
		echo "PASS: types for worker '$w' compile"
		passed=$((passed + 1))
	else
		echo "FAIL: types for worker '$w' do not compile (env.ts and main.ts in $work)"
		failed=$((failed + 1))
	fi
done

# The precision check: misuse.ts must fail, for the reasons it states.
cp "$work/api.d.ts" "$work/env.ts"
cp "$work/misuse.ts" "$work/main.ts"
out=$(cd "$work" && "$tsc" -p tsconfig.json 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q TS2367 && echo "$out" | grep -q "'send'" &&
	echo "$out" | grep -q "'toUpperCase'" && echo "$out" | grep -q "'revoke'"; then
	echo "PASS: misuse.ts is rejected (literal, KVNamespace, JSON shape and RPC entrypoint types hold)"
	passed=$((passed + 1))
else
	echo "FAIL: misuse.ts should not compile:"
	echo "$out"
	failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
