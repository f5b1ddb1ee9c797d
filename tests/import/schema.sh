#!/usr/bin/env bash
# tests/import/schema.sh: "binderyd schema" prints a draft 2020-12 JSON
# Schema that every good spec of the suite validates against (the loader's
# good cases, etc/examples, the integration specs, the import corpus's
# expected output), and that refuses unknown keys, unknown and wrong kinds,
# bad enum values and wrong types (schema-check.py). The validator is
# python3-jsonschema, a Debian package (scripts/deps): offline, no npm.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
BINDERYD="$top_builddir/daemon/binderyd"
[ -x "$BINDERYD" ] || { echo "missing $BINDERYD (build first)"; echo "0 passed, 1 failed"; exit 1; }
if ! python3 -c 'import jsonschema, yaml; jsonschema.Draft202012Validator' 2>/dev/null; then
	echo "SKIP: schema: python3-jsonschema (>= 4, draft 2020-12) or python3-yaml is not installed;"
	echo "SKIP: apt-get install python3-jsonschema python3-yaml (scripts/deps does)"
	exit 77
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bindery-schema.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
if ! "$BINDERYD" schema >"$TMP/schema.json" 2>"$TMP/err"; then
	echo "not ok - binderyd schema failed:"; cat "$TMP/err"; echo "0 passed, 1 failed"; exit 1
fi
# The import corpus's expected output: expected/ directories only.
mkdir -p "$TMP/import"
for d in "$top_srcdir"/tests/import/corpus/*/expected; do
	cp -r "$d" "$TMP/import/$(basename "$(dirname "$d")")"
done
python3 "$top_srcdir/tests/import/schema-check.py" "$TMP/schema.json" \
	"$top_srcdir/tests/spec/good" "$top_srcdir/etc/examples" "$top_srcdir/tests/integration/specs" "$TMP/import"
