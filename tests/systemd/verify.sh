#!/bin/sh
# tests/systemd/verify.sh: the units pass `systemd-analyze verify` with
# EMPTY output (typos only warn), and `systemd-analyze security
# --offline=true` rates both services at exposure 2.0 or better.
# ExecStart must exist on this host, so the units are generated again
# with the build tree's binderyd. Skips (77) without systemd-analyze.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze is not installed; the units were NOT verified"
	echo "0 passed, 0 failed"
	exit 77
fi
bin=${BINDERYD:-$top_builddir/daemon/binderyd}
[ -x "$bin" ] || { echo "FAIL: $bin is not built"; echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bindery-verify.XXXXXX")
trap 'rm -rf "$work"' EXIT
for u in binderyd.service binderyd@.service; do
	sed -e "s|@sbindir@|$(dirname "$bin")|g" "$top_srcdir/systemd/$u.in" > "$work/$u"
done
cp "$top_srcdir/systemd/binderyd.socket" "$work/"
cp "$work/binderyd@.service" "$work/binderyd@acme.service"

cd "$work"
for u in binderyd.service binderyd.socket binderyd@acme.service; do
	out=$(systemd-analyze verify --man=no "./$u" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && [ -z "$out" ]; then
		ok "systemd-analyze verify $u: rc 0, no output"
	else
		fail "systemd-analyze verify $u: rc $rc, output:"
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
done

for u in binderyd.service binderyd@acme.service; do
	out=$(systemd-analyze security --offline=true --no-pager "./$u" 2>&1)
	line=$(printf '%s\n' "$out" | grep 'Overall exposure level')
	echo "    $line"
	if systemd-analyze security --offline=true --threshold=20 --no-pager "./$u" >/dev/null 2>&1; then
		ok "systemd-analyze security $u: exposure <= 2.0"
	else
		fail "systemd-analyze security $u: exposure above 2.0"
		printf '%s\n' "$out" | grep -E '^✗' | sed 's/^/    /'
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
