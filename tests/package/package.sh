#!/usr/bin/env bash
# tests/package/package.sh: the Debian packages build (scripts/package, from
# a copy of the tree, DEB_BUILD_OPTIONS=nocheck), lintian reports no error
# or warning, and an install into a throwaway root (dpkg -x) holds every
# file the packages promise: binderyd, its TOML reader bindery-toml (an
# import of a wrangler.toml from the unpacked root runs it), the units
# (not enabled, not started), the man pages, /etc/bindery/binderyd.yaml as
# a conffile, the examples; cfsim and cfsim(1). Skips (77), loudly, without dpkg-buildpackage,
# debhelper, lintian or a build dependency, and in the sanitizer pass (the
# package build does not depend on the build flavour; it runs in the
# normal pass).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
n_pass=0 n_fail=0
ok() { n_pass=$((n_pass + 1)); echo "ok - $*"; }
not_ok() { n_fail=$((n_fail + 1)); echo "not ok - $*"; }
skip() { echo "SKIP: package: $*"; echo "SKIP: the Debian package was NOT built or checked"; exit 77; }

[ "${BINDERY_SANITIZED:-0}" = 1 ] && skip "not run in the sanitizer pass (BINDERY_SANITIZED=1); it runs in the normal pass"
command -v dpkg-buildpackage >/dev/null || skip "dpkg-buildpackage is missing (apt-get install dpkg-dev)"
command -v dh >/dev/null || skip "debhelper is missing (apt-get install debhelper)"
command -v lintian >/dev/null || skip "lintian is missing (apt-get install lintian)"
if ! missing=$(cd "$top_srcdir" && dpkg-checkbuilddeps 2>&1); then
	skip "build dependencies are missing: $missing"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bindery-pkgtest.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
SECONDS=0
if "$top_srcdir/scripts/package" --no-deps --no-dbgsym --out "$TMP/debs" --jobs 2 >"$TMP/log" 2>&1; then
	ok "scripts/package builds bindery and bindery-cfsim, lintian clean ($SECONDS s)"
else
	not_ok "scripts/package failed:"; tail -40 "$TMP/log"
	echo "$n_pass passed, $n_fail failed"; exit 1
fi
grep -E '^(W|E): ' "$TMP/log" && not_ok "lintian printed warnings or errors" || ok "lintian printed no W: or E: line"

root="$TMP/root"
for p in bindery bindery-cfsim; do
	deb=$(ls "$TMP/debs/${p}_"*.deb 2>/dev/null | head -1)
	if [ -n "$deb" ] && dpkg -x "$deb" "$root"; then ok "dpkg -x $(basename "$deb")"; else not_ok "no $p .deb"; fi
done
for f in usr/sbin/binderyd usr/libexec/bindery/bindery-toml \
	lib/systemd/system/binderyd.service lib/systemd/system/binderyd@.service lib/systemd/system/binderyd.socket \
	usr/share/man/man8/binderyd.8.gz usr/share/man/man5/binderyd.yaml.5.gz usr/share/man/man5/bindery-spec.5.gz \
	etc/bindery/binderyd.yaml \
	usr/share/bindery/examples/counter.yaml usr/share/bindery/examples/workers/api.yaml \
	usr/share/bindery/examples/bundles/api/index.js \
	usr/share/doc/bindery/copyright \
	usr/bin/cfsim usr/share/man/man1/cfsim.1.gz; do
	if [ -f "$root/$f" ]; then ok "installs /$f"; else not_ok "/$f is missing"; fi
done
[ -x "$root/usr/sbin/binderyd" ] && [ -x "$root/usr/libexec/bindery/bindery-toml" ] && [ -x "$root/usr/bin/cfsim" ] &&
	ok "binderyd, bindery-toml and cfsim are executable" || not_ok "binderyd, bindery-toml or cfsim is not executable"
grep -q '^ExecStart=/usr/sbin/binderyd ' "$root/lib/systemd/system/binderyd.service" &&
	ok "binderyd.service runs /usr/sbin/binderyd" || not_ok "binderyd.service ExecStart is not /usr/sbin/binderyd"

ctl="$TMP/ctl"
dpkg -e "$(ls "$TMP/debs/bindery_"*.deb | head -1)" "$ctl"
grep -qx /etc/bindery/binderyd.yaml "$ctl/conffiles" && ok "/etc/bindery/binderyd.yaml is a conffile" ||
	not_ok "/etc/bindery/binderyd.yaml is not a conffile"
if grep -q 'deb-systemd-invoke' "$ctl/postinst"; then not_ok "postinst starts a unit"; else ok "postinst starts no unit"; fi
# Every "deb-systemd-helper enable" sits inside an "if ... was-enabled" block
# (dh_installsystemd --no-enable): the admin's choice is kept, nothing more.
if awk '/--quiet was-enabled/ { w = 1 } /deb-systemd-helper enable/ && !w { bad = 1 }
	/^[[:space:]]*fi$/ && w { w = 0 } END { exit bad }' "$ctl/postinst"; then
	ok "postinst enables a unit only when the admin had enabled it"
else
	not_ok "postinst enables units"
fi
purge=$(sed -n '/"\$1" = "purge"/,/^fi/p' "$ctl/postrm")
if echo "$purge" | grep -q 'rm -rf /var/lib/private/bindery /var/lib/bindery' &&
   [ "$(grep -c 'rm -rf /var/lib' "$ctl/postrm")" = 1 ]; then
	ok "postrm removes the state directory on purge only"
else
	not_ok "postrm does not remove the state directory on purge only"
fi

# The packaged programs run.
"$root/usr/sbin/binderyd" --version | grep -q '^binderyd ' && ok "packaged binderyd --version" || not_ok "packaged binderyd does not run"
"$root/usr/sbin/binderyd" validate --spec-dir "$root/usr/share/bindery/examples" >"$TMP/v" 2>&1 &&
	ok "packaged examples validate" || { not_ok "packaged examples do not validate"; cat "$TMP/v"; }
"$root/usr/sbin/binderyd" schema | python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null &&
	ok "packaged binderyd schema prints JSON" || not_ok "packaged binderyd schema"
# import of a wrangler.toml runs the packaged TOML reader: binderyd, run
# from the unpacked root, finds it at the same root's /usr/libexec/bindery.
mkdir -p "$TMP/wr"
printf 'name = "pkg"\nmain = "index.js"\ncompatibility_date = "2024-09-01"\n' >"$TMP/wr/wrangler.toml"
echo 'export default { async fetch() { return new Response("x"); } };' >"$TMP/wr/index.js"
(cd "$TMP/wr" && "$root/usr/sbin/binderyd" import --output . wrangler.toml) >"$TMP/v" 2>&1 && [ -f "$TMP/wr/pkg.yaml" ] &&
	ok "packaged binderyd imports a wrangler.toml" || { not_ok "packaged binderyd import of a wrangler.toml"; cat "$TMP/v"; }
"$root/usr/bin/cfsim" --help 2>&1 | grep -q -- '--check-bindings' && ok "packaged cfsim --help" || not_ok "packaged cfsim does not run"

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
