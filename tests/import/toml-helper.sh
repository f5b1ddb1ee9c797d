#!/usr/bin/env bash
# tests/import/toml-helper.sh: the TOML reader lives outside binderyd
# (daemon/import-toml.h):
#   - binderyd needs no libstdc++, libtomlplusplus or libgcc_s (readelf);
#   - bindery-toml answers by its protocol: a document → exit 0 and
#     {"config", "lines"}; a syntax error → exit 1 and {"error": {line,
#     column, message}}; input over the limit → exit 1, "file too large";
#     an argument → exit 3;
#   - binderyd import names the reader's path when it is missing, is
#     killed, runs out of memory, answers outside the protocol or answers
#     without end (bounded), and writes nothing then. These run a copy of
#     binderyd beside a stand-in bindery-toml (binderyd looks beside itself
#     first when it is not installed).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
BINDERYD="$top_builddir/daemon/binderyd"
HELPER="$top_builddir/daemon/bindery-toml"
n_pass=0
n_fail=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bindery-toml.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

ok() { n_pass=$((n_pass + 1)); echo "ok - $*"; }
not_ok() { n_fail=$((n_fail + 1)); echo "not ok - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }

for f in "$BINDERYD" "$HELPER"; do
	[ -x "$f" ] || { echo "missing $f (build first)"; echo "0 passed, 1 failed"; exit 1; }
done

# 1. binderyd links no C++.
if command -v readelf >/dev/null; then
	needed=$(readelf -d "$BINDERYD" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
	if [ -n "$needed" ] && ! echo "$needed" | grep -q 'libstdc++\|libtomlplusplus\|libgcc_s'; then
		ok "binderyd needs no libstdc++, libtomlplusplus or libgcc_s ($(echo $needed))"
	else
		not_ok "binderyd needs: $(echo $needed)"
	fi
	readelf -d "$HELPER" | grep -q 'NEEDED.*libtomlplusplus' && ok "bindery-toml links toml++" ||
		not_ok "bindery-toml does not link toml++"
else
	not_ok "readelf is missing (binutils)"
fi

# 2. The protocol.
json_get() { python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
for k in sys.argv[2:]: d=d[k]
print(d)' "$@"; }
printf 'name = "x"\n\n[vars]\nA = 1.5\n' >"$TMP/good.toml"
rc=0; "$HELPER" <"$TMP/good.toml" >"$TMP/out" 2>"$TMP/err" || rc=$?
check "a document: exit 0" [ "$rc" = 0 ]
check "a document: config.vars.A is 1.5" [ "$(json_get "$TMP/out" config vars A 2>&1)" = 1.5 ]
check "a document: lines[vars.A] is 4" [ "$(json_get "$TMP/out" lines vars.A 2>&1)" = 4 ]
check "a document: nothing on stderr" [ ! -s "$TMP/err" ]

printf 'name = "x"\n\nport = 80 80\n' >"$TMP/bad.toml"
rc=0; "$HELPER" <"$TMP/bad.toml" >"$TMP/out" 2>"$TMP/err" || rc=$?
check "a syntax error: exit 1" [ "$rc" = 1 ]
check "a syntax error: line 3" [ "$(json_get "$TMP/out" error line 2>&1)" = 3 ]
check "a syntax error: column 11" [ "$(json_get "$TMP/out" error column 2>&1)" = 11 ]
check "a syntax error: toml++'s message" \
	[ "$(json_get "$TMP/out" error message 2>&1)" = "Error while parsing key-value pair: expected a comment or whitespace, saw '8'" ]

# Nesting past 64 levels is refused with where it starts, not taken for
# an allocation failure (line 2: "deep = " then 70 '[').
{ echo 'name = "x"'; printf 'deep = '; printf '[%.0s' $(seq 70); printf ']%.0s' $(seq 70); echo; } >"$TMP/deep.toml"
rc=0; "$HELPER" <"$TMP/deep.toml" >"$TMP/out" 2>"$TMP/err" || rc=$?
check "nesting past 64 levels: exit 1" [ "$rc" = 1 ]
check "nesting past 64 levels: line 2" [ "$(json_get "$TMP/out" error line 2>&1)" = 2 ]
check "nesting past 64 levels: its message" \
	[ "$(json_get "$TMP/out" error message 2>&1)" = "tables and arrays nest deeper than 64 levels" ]

head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' '#' >"$TMP/big.toml"
rc=0; "$HELPER" <"$TMP/big.toml" >"$TMP/out" 2>"$TMP/err" || rc=$?
check "over 1 MiB: exit 1" [ "$rc" = 1 ]
check "over 1 MiB: 'file too large' at 0:0" \
	[ "$(json_get "$TMP/out" error message 2>&1)/$(json_get "$TMP/out" error line 2>&1)" = "file too large/0" ]

rc=0; "$HELPER" extra </dev/null >"$TMP/out" 2>&1 || rc=$?
check "an argument: exit 3, no output" [ "$rc" = 3 ] && [ ! -s "$TMP/out" ]

# 3. binderyd import when the reader fails. The project to import:
mkdir -p "$TMP/proj" "$TMP/bin"
printf 'name = "x"\nmain = "index.js"\ncompatibility_date = "2024-09-01"\n' >"$TMP/proj/wrangler.toml"
echo 'export default { async fetch() { return new Response("x"); } };' >"$TMP/proj/index.js"
cp "$BINDERYD" "$TMP/bin/binderyd"

import_with() { # STAND-IN-SCRIPT (empty: no reader beside binderyd)
	rm -f "$TMP/bin/bindery-toml" "$TMP/proj/"*.yaml
	if [ -n "$1" ]; then printf '#!/bin/sh\n%s\n' "$1" >"$TMP/bin/bindery-toml"; chmod +x "$TMP/bin/bindery-toml"; fi
	rc=0
	(cd "$TMP/proj" && "$TMP/bin/binderyd" import --output . wrangler.toml) >"$TMP/out" 2>"$TMP/err" || rc=$?
}
expect_failure() { # WHAT PATTERN
	if [ "$rc" = 1 ] && grep -q "$2" "$TMP/err" && ! ls "$TMP/proj/"*.yaml >/dev/null 2>&1; then
		ok "$1: exit 1, nothing written, says '$2'"
	else
		not_ok "$1: exit $rc"; cat "$TMP/err"
	fi
}

import_with 'exec "'"$HELPER"'"'
check "the reader beside binderyd is used" [ "$rc" = 0 ] && [ -f "$TMP/proj/x.yaml" ]

installed=$(sed -n 's/^#define BINDERY_PKGLIBEXECDIR "\(.*\)"$/\1/p' "$top_builddir/config.h")/bindery-toml
if [ -e "$installed" ]; then
	echo "ok - # SKIP a missing reader: $installed is installed here"
else
	import_with ''
	expect_failure "no reader" "wrangler.toml: cannot read TOML: '$installed' is missing"
fi
import_with 'kill -SEGV $$'
expect_failure "a reader that crashes" "'$TMP/bin/bindery-toml' was killed by signal SIGSEGV"
import_with 'exit 2'
expect_failure "a reader out of memory" "'$TMP/bin/bindery-toml' ran out of memory"
import_with 'echo "{\"config\": {}}"'
expect_failure "an answer without lines" "'$TMP/bin/bindery-toml' gave an answer that is not its protocol's"
import_with 'echo "{\"config\": {}, \"lines\": {}} trailing"'
expect_failure "an answer with trailing bytes" "gave an answer that is not its protocol's"
import_with 'echo "{\"error\": {\"line\": 1}}"; exit 1'
expect_failure "an error without a column" "gave an answer that is not its protocol's"
import_with 'exit 7'
expect_failure "an unknown exit status" "'$TMP/bin/bindery-toml' exited with status 7"
import_with 'exec yes'
expect_failure "an answer without end" "'$TMP/bin/bindery-toml' answered more than 67108864 bytes"
import_with 'echo "{\"error\": {\"line\": 2, \"column\": 5, \"message\": \"bad\"}}"; exit 1'
expect_failure "a syntax error from the reader" "^error *: wrangler.toml:2:5: bad$"

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" = 0 ]
