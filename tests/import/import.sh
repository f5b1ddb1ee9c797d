#!/usr/bin/env bash
# tests/import/import.sh: "binderyd import" over the corpus in
# tests/import/corpus/ (wrangler.toml, wrangler.json and wrangler.jsonc
# configurations covering every binding kind, environments, comments,
# trailing commas and keys bindery cannot express). For each case, in a
# private copy of it:
#   - import exits 0 and writes exactly the files in expected/, byte for
#     byte, and reports exactly expected/notes (the case directory written
#     as @DIR@);
#   - where a main needs wrangler's bundle, a stand-in bundle is put where
#     the notes say, and then "binderyd validate" accepts the output;
#   - a second import gives the same bytes;
#   - no value from .dev.vars and no credential-like value reaches the
#     output or the notes.
# Then the failures: a TOML and a JSON syntax error (FILE:LINE:COLUMN), a
# configuration bindery cannot take (nothing written), a wrong file type.
# Set IMPORT_UPDATE=1 to rewrite expected/ from the current output (then
# review the diff).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
BINDERYD="$top_builddir/daemon/binderyd"
CORPUS="$top_srcdir/tests/import/corpus"
n_pass=0
n_fail=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bindery-import.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

ok() { n_pass=$((n_pass + 1)); echo "ok - $*"; }
not_ok() { n_fail=$((n_fail + 1)); echo "not ok - $*"; }

[ -x "$BINDERYD" ] || { echo "missing $BINDERYD (build first)"; echo "0 passed, 1 failed"; exit 1; }

n_cases=0
for case_dir in "$CORPUS"/*/; do
	case_dir=${case_dir%/}
	name=$(basename "$case_dir")
	n_cases=$((n_cases + 1))
	work="$TMP/$name"
	mkdir -p "$work"
	(cd "$case_dir" && find . -path ./expected -prune -o -type f -print | cpio -pdm --quiet "$work") 2>/dev/null ||
		cp -r "$case_dir/." "$work/"
	rm -rf "$work/expected" "$work/args"
	chmod -R u+w "$work"
	cfg=$(cd "$work" && ls wrangler.toml wrangler.json wrangler.jsonc 2>/dev/null | head -1)
	args=()
	[ -f "$case_dir/args" ] && read -r -a args <"$case_dir/args"
	before=$(cd "$work" && find . -type f | sort)

	rc=0
	(cd "$work" && "$BINDERYD" import "${args[@]}" --output . "$cfg") >"$TMP/out" 2>"$TMP/err" || rc=$?
	sed "s|$work|@DIR@|g" "$TMP/err" >"$TMP/notes"
	if [ "$rc" -ne 0 ]; then
		not_ok "$name: import exits $rc"; cat "$TMP/err"; continue
	fi
	ok "$name: import exits 0"
	written=$(cd "$work" && find . -maxdepth 1 -name '*.yaml' | sort)
	if [ "${IMPORT_UPDATE:-0}" = 1 ]; then
		rm -rf "$case_dir/expected" && mkdir -p "$case_dir/expected"
		for f in $written; do cp "$work/$f" "$case_dir/expected/"; done
		cp "$TMP/notes" "$case_dir/expected/notes"
	fi
	want=$(cd "$case_dir/expected" && ls *.yaml 2>/dev/null | sed 's|^|./|' | sort)
	if [ "$written" = "$want" ]; then ok "$name: writes $(echo $want)"; else
		not_ok "$name: writes '$(echo $written)', expected '$(echo $want)'"; fi
	same=1
	for f in $want; do
		cmp -s "$work/$f" "$case_dir/expected/$f" || { same=0; diff -u "$case_dir/expected/$f" "$work/$f" | head -30; }
	done
	if [ "$same" = 1 ]; then ok "$name: output equals expected/"; else not_ok "$name: output differs from expected/"; fi
	if cmp -s "$TMP/notes" "$case_dir/expected/notes"; then ok "$name: notes equal expected/notes"; else
		not_ok "$name: notes differ"; diff -u "$case_dir/expected/notes" "$TMP/notes" | head -20; fi

	# Stand-in bundles where the notes point main at wrangler's output.
	sed -n "s/.*main is '\(bundles\/[^']*\)'.*/\1/p" "$TMP/err" | while read -r b; do
		mkdir -p "$work/$(dirname "$b")"
		echo 'export default { async fetch() { return new Response("bundled"); } };' >"$work/$b"
	done
	vrc=0
	(cd "$work" && "$BINDERYD" validate --spec-dir .) >"$TMP/v" 2>&1 || vrc=$?
	if [ "$vrc" -eq 0 ]; then ok "$name: binderyd validate accepts the output"; else
		not_ok "$name: binderyd validate refuses the output"; cat "$TMP/v"; fi

	sums=$(cd "$work" && sha256sum $written)
	(cd "$work" && "$BINDERYD" import "${args[@]}" --output . "$cfg") >/dev/null 2>&1
	if [ "$(cd "$work" && sha256sum $written)" = "$sums" ]; then ok "$name: a second import gives the same bytes"; else
		not_ok "$name: a second import changed the output"; fi

	leaked=$(cd "$work" && grep -l -e 'do-not-copy-me' -e 'hunter2' -e 'zzz' $written "$TMP/err" 2>/dev/null)
	if [ -z "$leaked" ]; then ok "$name: no secret value in output or notes"; else not_ok "$name: a secret value leaked into $leaked"; fi
done
if [ "$n_cases" -ge 10 ]; then ok "corpus has $n_cases configurations"; else not_ok "corpus has only $n_cases configurations"; fi

# --- failures: located, and nothing written ---------------------------------
fail_case() { # name file content expected-stderr-regex
	local d="$TMP/fail-$1"
	mkdir -p "$d/src"
	echo 'export default {};' >"$d/src/index.js"
	printf '%s\n' "$3" >"$d/$2"
	rc=0
	(cd "$d" && "$BINDERYD" import --output out "$2") >"$TMP/out" 2>"$TMP/err" || rc=$?
	if [ "$rc" -eq 1 ] && grep -Eq -- "$4" "$TMP/err" && [ -z "$(ls "$d/out" 2>/dev/null)" ]; then
		ok "failure $1: exit 1, '$4', nothing written"
	else
		not_ok "failure $1: exit $rc, stderr:"; cat "$TMP/err"; ls "$d/out" 2>/dev/null
	fi
}
fail_case toml-syntax wrangler.toml $'name = "x"\nmain = "src/index.js"\ncompatibility_date = 2025-01-01\n[vars\nA = 1' \
	'^error *: wrangler.toml:4:[0-9]+: '
fail_case json-syntax wrangler.json $'{\n  "name": "x",\n  "main": "src/index.js"\n  "compatibility_date": "2025-01-01"\n}' \
	'wrangler.json:4:[0-9]+: '
fail_case jsonc-unterminated wrangler.jsonc $'{ "name": "x" /* never closed' 'wrangler.jsonc:[0-9]+:[0-9]+: '
fail_case no-date wrangler.toml $'name = "x"\nmain = "src/index.js"\n[[kv_namespaces]]\nbinding = "K"\nid = "0f2ac74b498b48028cb68387c421e279"' \
	'wrangler.toml: compatibility_date: no compatibility_date'
fail_case bad-name wrangler.json '{ "name": "Bad Name", "main": "src/index.js", "compatibility_date": "2025-01-01" }' \
	"'Bad Name' is not a valid worker name"
fail_case bad-binding wrangler.toml $'name = "x"\nmain = "src/index.js"\ncompatibility_date = "2025-01-01"\n[[kv_namespaces]]\nbinding = "not-an-identifier"\nid = "0f2ac74b498b48028cb68387c421e279"' \
	'wrangler.toml:4: kv_namespaces\[0\]: binding name .not-an-identifier. is not a valid JavaScript identifier'
fail_case wrong-type wrangler.yaml 'name: x' 'not a wrangler configuration'
fail_case duplicate-binding wrangler.toml $'name = "x"\nmain = "src/index.js"\ncompatibility_date = "2025-01-01"\nvars = { K = "a" }\n[[kv_namespaces]]\nbinding = "K"\nid = "0f2ac74b498b48028cb68387c421e279"' \
	"binding 'K' is defined twice"

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
