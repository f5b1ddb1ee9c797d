#!/bin/sh
# tests/daemon/man-lint.sh: `mandoc -Tlint -Wwarning` is clean on every man
# page in man/ (warnings and worse fail). Skips (77), loudly, without
# mandoc.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
passed=0 failed=0
if ! command -v mandoc >/dev/null 2>&1; then
	echo "SKIP: mandoc is not installed (apt-get install mandoc); the man pages were NOT linted"
	echo "0 passed, 0 failed"
	exit 77
fi
for page in "$top_srcdir"/man/*.[1-9]; do
	[ -f "$page" ] || continue
	name=$(basename "$page")
	if out=$(mandoc -Tlint -Wwarning "$page" 2>&1) && [ -z "$out" ]; then
		passed=$((passed + 1)); echo "PASS: mandoc -Tlint $name"
	else
		failed=$((failed + 1)); echo "FAIL: mandoc -Tlint $name"
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
done
# Quotes survive rendering (a quote that starts a macro argument is eaten
# by roff unless written \(dq).
render() { mandoc -Tascii "$top_srcdir/man/$1" 2>/dev/null | col -b 2>/dev/null || mandoc -Tascii "$top_srcdir/man/$1"; }
for want in 'binderyd.8|{"error": "...", "status": N}' 'bindery-spec.5|{text: "a: b"}' \
	'binderyd.yaml.5|{"ignored": true}'; do
	page=${want%%|*} text=${want#*|}
	if render "$page" | tr -s ' \n' '  ' | grep -qF -- "$text"; then
		passed=$((passed + 1)); echo "PASS: $page renders $text"
	else
		failed=$((failed + 1)); echo "FAIL: $page does not render $text"
	fi
done
[ $((passed + failed)) -gt 0 ] || { echo "FAIL: no man pages found in $top_srcdir/man"; failed=1; }
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
