#!/bin/sh
# tests/systemd/nspawn.sh: the installed units under a real systemd.
#
# Boots systemd as PID 1 in systemd-nspawn (recipe: doc systemd-and-tooling
# §2): the root is an overlay of the host's / with its upper directory on a
# private tmpfs, nspawn runs in a cgroup of its own with --register=no
# --keep-unit --private-network, and commands go in through nsenter. Inside:
# cfsim as a service, binderyd.service as installed (sbindir /opt/bindery),
# and checks that it starts (Type=notify) and reaches active, reads its API
# token through LoadCredential, runs as a DynamicUser, writes its
# StateDirectory, logs structured fields to the journal, reconciles a small
# spec into cfsim (and an edit without a trigger), reloads on `systemctl
# reload`, is socket-activated by binderyd.socket, feeds its watchdog (and
# a frozen daemon is killed by it and restarted), and stops cleanly.
#
# Needs root and systemd-nspawn (package systemd-container); skips (77),
# loudly, without them and under BINDERY_SANITIZED=1. KEEP=1 keeps the
# work directory (and leaves it mounted) for inspection.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
BINDERYD=${BINDERYD:-$top_builddir/daemon/binderyd}
CFSIM=${CFSIM:-$top_builddir/tests/cfsim/cfsim}
ACCOUNT=023e105f4ecef8ad9ca31a8372d0c353
passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
skip() {
	echo "SKIP: $* -- the systemd units were NOT tested under a real systemd"
	echo "0 passed, 0 failed"
	exit 77
}

[ "${BINDERY_SANITIZED:-0}" = 1 ] && skip "sanitizer build (BINDERY_SANITIZED=1): nspawn runs in the normal build only"
[ "$(id -u)" = 0 ] || skip "not root (mounting the overlay and booting nspawn need root)"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is missing (apt-get install --no-install-recommends systemd-container)"
command -v nsenter >/dev/null || skip "nsenter is missing"
[ -x "$BINDERYD" ] || skip "$BINDERYD is not built"
[ -x "$CFSIM" ] || skip "cfsim ($CFSIM) is not built"
[ -d /sys/fs/cgroup ] || skip "no /sys/fs/cgroup"

t_start=$(date +%s%3N)
work=$(mktemp -d "${TMPDIR:-/tmp}/bindery-nspawn.XXXXXX")
root=$work/root
name=bnd$$
cg=bindery-nspawn.$$
nspawn_pid=
pid1=

cleanup() {
	trap - EXIT
	if [ -n "$pid1" ] && kill -0 "$pid1" 2>/dev/null; then
		nsenter -t "$pid1" -a -- systemctl poweroff >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.05; done
	fi
	[ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null && kill -KILL "$nspawn_pid" 2>/dev/null
	[ -n "$nspawn_pid" ] && wait "$nspawn_pid" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept $work (still mounted)"
	else
		umount -R "$root" 2>/dev/null || umount -l "$root" 2>/dev/null
		umount "$work" 2>/dev/null || umount -l "$work" 2>/dev/null
		rm -rf "$work"
	fi
	for h in unified systemd; do
		d=/sys/fs/cgroup/$h/$cg
		[ -d "$d" ] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	rm -f "/run/systemd/nspawn/propagate/$name" 2>/dev/null
	rmdir "/run/systemd/nspawn/propagate/$name" 2>/dev/null
}
trap cleanup EXIT

# ---- the root: an overlay of / on a private tmpfs ----
mount -t tmpfs -o mode=0700,size=512m bindery-nspawn "$work" || skip "cannot mount a tmpfs"
mkdir -p "$work/upper" "$work/ovl" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/ovl" "$root" ||
	skip "cannot mount an overlay of / (no overlayfs?)"

od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$root/etc/machine-id"
echo >> "$root/etc/machine-id"
# No host services: the .wants directories of the host go away (whiteouts).
for w in getty.target.wants multi-user.target.wants timers.target.wants sysinit.target.wants \
         default.target.wants sockets.target.wants; do
	rm -rf "$root/etc/systemd/system/$w"
done
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
for u in getty@tty1.service console-getty.service systemd-timesyncd.service postgresql.service \
         e2scrub_reap.service apt-daily.timer apt-daily-upgrade.timer man-db.timer; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done

# binderyd and cfsim, installed like a package would (never the build tree:
# PrivateTmp= and ProtectHome= would hide it)
install -D -m 0755 "$BINDERYD" "$root/opt/bindery/sbin/binderyd"
install -D -m 0755 "$CFSIM" "$root/opt/bindery/bin/cfsim"
for u in binderyd.service binderyd@.service; do
	sed -e 's|@sbindir@|/opt/bindery/sbin|g' "$top_srcdir/systemd/$u.in" > "$root/etc/systemd/system/$u"
done
cp "$top_srcdir/systemd/binderyd.socket" "$root/etc/systemd/system/"

API_TOKEN=cf-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
HTTP_TOKEN=http-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
cat > "$root/etc/systemd/system/cfsim.service" <<EOF
[Unit]
Description=cfsim, the local Cloudflare API (test)
[Service]
ExecStart=/opt/bindery/bin/cfsim --port 8788 --host 127.0.0.1 --account-id $ACCOUNT --token $API_TOKEN
ExecStartPost=/bin/sh -c 'for i in \$(seq 100); do curl -fs -o /dev/null http://127.0.0.1:8788/__sim/stats && exit 0; sleep 0.05; done; exit 1'
EOF
mkdir -p "$root/etc/systemd/system/binderyd.service.d"
cat > "$root/etc/systemd/system/binderyd.service.d/test.conf" <<EOF
[Unit]
Wants=cfsim.service
After=cfsim.service
EOF

mkdir -p "$root/etc/bindery" "$root/srv/bindery/spec/workers" "$root/srv/bindery/spec/bundles"
umask 077
printf '%s\n' "$API_TOKEN" > "$root/etc/bindery/cloudflare-api-token"
printf '%s\n' "$HTTP_TOKEN" > "$root/etc/bindery/http-token"
umask 022
cat > "$root/etc/bindery/binderyd.yaml" <<EOF
account_id: $ACCOUNT
api_url: http://127.0.0.1:8788/client/v4
api_token: { credential: cloudflare-api-token }
spec_dir: /srv/bindery/spec
listen: 127.0.0.1:9470
http_token: { credential: http-token }
interval: 10m
EOF
chmod 0644 "$root/etc/bindery/binderyd.yaml"
printf 'kind: KVNamespace\nname: sessions\n' > "$root/srv/bindery/spec/kv.yaml"
echo 'export default { fetch() { return new Response("ok"); } };' > "$root/srv/bindery/spec/bundles/api.js"
cat > "$root/srv/bindery/spec/workers/api.yaml" <<EOF
kind: Worker
name: api
main: ../bundles/api.js
compatibility_date: "2025-06-01"
bindings:
  SESSIONS: { kv_namespace: sessions }
  STAGE: production
EOF
chmod -R a+rX "$root/srv/bindery"

# ---- boot, in a cgroup of our own ----
for h in unified systemd; do
	[ -d "/sys/fs/cgroup/$h" ] && mkdir -p "/sys/fs/cgroup/$h/$cg"
done
t_boot=$(date +%s%3N)
(
	for h in unified systemd; do
		[ -d "/sys/fs/cgroup/$h/$cg" ] && echo "$BASHPID" > "/sys/fs/cgroup/$h/$cg/cgroup.procs"
	done
	exec systemd-nspawn -q -D "$root" --boot --register=no --keep-unit --private-network \
		-M "$name" --console=pipe < /dev/null > "$work/nspawn.log" 2>&1
) &
nspawn_pid=$!

# PID 1 of the container: a "systemd" whose NSpid ends in 1, below nspawn.
for _ in $(seq 200); do
	for p in $(pgrep -x systemd); do
		ns=$(awk '/^NSpid:/ { print $NF }' "/proc/$p/status" 2>/dev/null)
		[ "$ns" = 1 ] || continue
		pp=$p
		while [ -n "$pp" ] && [ "$pp" -gt 1 ]; do
			[ "$pp" = "$nspawn_pid" ] && { pid1=$p; break 3; }
			pp=$(awk '/^PPid:/ { print $2 }' "/proc/$pp/status" 2>/dev/null)
		done
	done
	kill -0 "$nspawn_pid" 2>/dev/null || break
	sleep 0.05
done
if [ -z "$pid1" ]; then
	sed 's/^/    /' "$work/nspawn.log"
	fail "systemd-nspawn did not boot a systemd PID 1"
	echo "$passed passed, $failed failed"
	exit 1
fi
echo "    PID 1 found after $(( $(date +%s%3N) - t_boot )) ms"
ct() { nsenter -t "$pid1" -a -- "$@"; }
for _ in $(seq 200); do ct test -S /run/systemd/private 2>/dev/null && break; sleep 0.05; done
echo "    systemd's private bus up after $(( $(date +%s%3N) - t_boot )) ms"
state=$(ct timeout 30 systemctl is-system-running --wait 2>/dev/null)
t_up=$(date +%s%3N)
echo "    booted in $((t_up - t_boot)) ms: $state"
check "PID 1 in the container is systemd" [ "$(ct cat /proc/1/comm)" = systemd ]
check "the system reached running ($state)" [ "$state" = running ]
[ "$state" = running ] || ct systemctl --failed --no-pager --no-legend | sed 's/^/    failed: /'
[ -n "${NSPAWN_DEBUG:-}" ] && ct systemd-analyze blame --no-pager | head -8 | sed 's/^/    blame: /'

# ---- binderyd.service ----
ct systemctl start binderyd.service
rc=$?
check "systemctl start binderyd.service (Type=notify) succeeds (rc $rc)" [ "$rc" = 0 ]
check "binderyd.service is active" [ "$(ct systemctl is-active binderyd.service)" = active ]
mainpid=$(ct systemctl show -P MainPID binderyd.service)
# (not the owner of /proc/PID: the daemon makes itself non-dumpable, which hands that to root)
uid=$(ct awk '/^Uid:/ { print $2 }' "/proc/$mainpid/status" 2>/dev/null)
check "runs as a DynamicUser (uid $uid in 61184..65519)" [ -n "$uid" -a "${uid:-0}" -ge 61184 -a "${uid:-0}" -le 65519 ]
check "READY=1 arrived: status text set ($(ct systemctl show -P StatusText binderyd.service))" \
	[ -n "$(ct systemctl show -P StatusText binderyd.service)" ]
check "WatchdogSec=30s is armed" [ "$(ct systemctl show -P WatchdogUSec binderyd.service)" = 30s ]

api() { ct curl -s -m 20 "$@"; }
run=$(api -X POST -H "Authorization: Bearer $HTTP_TOKEN" 'http://127.0.0.1:9470/v1/reconcile?wait=30')
result=$(printf '%s' "$run" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("result"))' 2>/dev/null)
check "POST /v1/reconcile?wait=30 with the http-token credential: result ok ($result)" [ "$result" = ok ]
check "the API token came from LoadCredential: cfsim (token required) has worker api" \
	sh -c "nsenter -t $pid1 -a -- curl -s http://127.0.0.1:8788/__sim/state | grep -q '\"production\"'"
check "StateDirectory: /var/lib/bindery -> private/bindery, written" \
	sh -c "[ \"\$(nsenter -t $pid1 -a -- readlink /var/lib/bindery)\" = private/bindery ] && [ -n \"\$(nsenter -t $pid1 -a -- ls -A /var/lib/private/bindery)\" ]"
check "the journal has the daemon's structured lines (BINDERY_RUN=)" \
	sh -c "nsenter -t $pid1 -a -- journalctl -u binderyd.service -o verbose --no-pager | grep -q '^ *BINDERY_RUN='"
check "the journal says the reconcile finished" \
	sh -c "nsenter -t $pid1 -a -- journalctl -u binderyd.service --no-pager | grep -q 'finished: ok'"

# an edit, no trigger: inotify under ProtectSystem=strict
ct sed -i 's/STAGE: production/STAGE: staging/' /srv/bindery/spec/workers/api.yaml
seen=0
for _ in $(seq 60); do
	if ct curl -s http://127.0.0.1:8788/__sim/state | grep -q '"staging"'; then seen=1; break; fi
	sleep 0.05
done
check "a spec edit reaches cfsim within 3 s with no trigger" [ "$seen" = 1 ]

ct systemctl reload binderyd.service
rc=$?
sleep 0.3
check "systemctl reload succeeds (rc $rc), same MainPID, still active" \
	[ "$rc" = 0 -a "$(ct systemctl show -P MainPID binderyd.service)" = "$mainpid" -a "$(ct systemctl is-active binderyd.service)" = active ]
check "the journal shows the reload" \
	sh -c "nsenter -t $pid1 -a -- journalctl -u binderyd.service --no-pager | grep -q 'Configuration reloaded'"

ct systemctl stop binderyd.service
check "systemctl stop: inactive, Result=success, exit 0" \
	[ "$(ct systemctl is-active binderyd.service)" = inactive -a "$(ct systemctl show -P Result binderyd.service)" = success -a "$(ct systemctl show -P ExecMainStatus binderyd.service)" = 0 ]
check "zero restarts" [ "$(ct systemctl show -P NRestarts binderyd.service)" = 0 ]

# ---- binderyd.socket ----
ct systemctl start binderyd.socket
check "binderyd.socket listening, service still inactive" \
	[ "$(ct systemctl is-active binderyd.socket)" = active -a "$(ct systemctl is-active binderyd.service)" = inactive ]
code=$(ct curl -s -m 20 -o /dev/null -w '%{http_code}' http://127.0.0.1:9470/readyz)
check "the first connection activates binderyd.service, /readyz 200 ($code)" \
	[ "$code" = 200 -a "$(ct systemctl is-active binderyd.service)" = active ]
check "binderyd served the socket systemd passed" \
	sh -c "nsenter -t $pid1 -a -- journalctl -u binderyd.service --no-pager | grep -q 'socket(s) passed by systemd'"
ct systemctl stop binderyd.service binderyd.socket
check "stopped cleanly again (Result=success)" [ "$(ct systemctl show -P Result binderyd.service)" = success ]

# ---- the watchdog is fed: WatchdogSec=1s, 2.5 s later same process ----
ct mkdir -p /run/systemd/system/binderyd.service.d
printf '[Service]\nWatchdogSec=1s\nRestartSec=200ms\n' | ct tee /run/systemd/system/binderyd.service.d/watchdog.conf >/dev/null
ct systemctl daemon-reload
ct systemctl start binderyd.service
wpid=$(ct systemctl show -P MainPID binderyd.service)
sleep 2.5
check "WatchdogSec=1s: after 2.5 s the same process is active, no watchdog kill" \
	[ "$(ct systemctl show -P MainPID binderyd.service)" = "$wpid" -a "$(ct systemctl is-active binderyd.service)" = active -a "$(ct systemctl show -P WatchdogUSec binderyd.service)" = 1s ]
# and enforced: a frozen daemon is killed and restarted
# (never with an empty pid: "kill -STOP" of nothing would stop this test's own process group)
[ -n "$wpid" ] && [ "$wpid" != 0 ] && ct kill -STOP "$wpid"
restarted=0
for _ in $(seq 100); do
	[ "$(ct systemctl show -P NRestarts binderyd.service)" -ge 1 ] 2>/dev/null && { restarted=1; break; }
	sleep 0.1
done
check "a frozen daemon (SIGSTOP) is killed by the watchdog and restarted" \
	sh -c "[ $restarted = 1 ] && nsenter -t $pid1 -a -- journalctl -u binderyd.service --no-pager | grep -q 'Watchdog timeout'"
for _ in $(seq 100); do [ "$(ct systemctl is-active binderyd.service)" = active ] && break; sleep 0.1; done
ct systemctl stop binderyd.service
check "stopped cleanly after the watchdog checks (Result=success)" [ "$(ct systemctl show -P Result binderyd.service)" = success ]

echo "    journal excerpt:"
ct journalctl -u binderyd.service --no-pager -n 8 | sed 's/^/      /'

# ---- shutdown ----
ct systemctl poweroff >/dev/null 2>&1
for _ in $(seq 200); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.05; done
wait "$nspawn_pid"
rc=$?
pid1=
check "systemctl poweroff: nspawn exits 0 ($rc)" [ "$rc" = 0 ]
echo "    total $(( $(date +%s%3N) - t_start )) ms"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
