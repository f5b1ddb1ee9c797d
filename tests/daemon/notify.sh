#!/bin/sh
# tests/daemon/notify.sh: binderyd under a fake systemd and under
# systemd-socket-activate.
#   1. tests/notify-harness runs the real binderyd (engine + cfsim) with
#      NOTIFY_SOCKET, WATCHDOG_USEC and a listening socket on fd 3:
#      READY=1, STATUS=, WATCHDOG=1, HTTP on the passed socket,
#      RELOADING=1/READY=1 on SIGHUP, STOPPING=1 and exit 0 on SIGTERM.
#   2. systemd-socket-activate listens, starts binderyd on the first
#      connection and hands it the socket (skipped, loudly, if absent).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
HARNESS=${HARNESS:-$top_builddir/tests/notify-harness}
[ -x "$HARNESS" ] || skip_all "$HARNESS is not built"

setup
start_cfsim
small_spec production
write_config

echo "--- notify-harness"
CREDENTIALS_DIRECTORY="$work/creds" BINDERY_TEST_HOOK_SECRET=x \
	timeout 60 "$HARNESS" "$BINDERYD" --config "$work/binderyd.yaml" > "$work/harness.out" 2> "$work/harness.err"
rc=$?
sed 's/^/    /' "$work/harness.out"
hp=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$work/harness.out")
hf=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$work/harness.out")
check "notify-harness: all checks passed (rc $rc, ${hp:-0} passed, ${hf:-?} failed)" [ "$rc" = 0 -a "${hf:-1}" = 0 ]
check "notify-harness: binderyd said it uses the passed socket" grep -q 'socket(s) passed by systemd' "$work/harness.err"

echo "--- systemd-socket-activate"
if ! command -v systemd-socket-activate >/dev/null; then
	echo "SKIP: systemd-socket-activate is not installed; socket activation NOT tested"
else
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	systemd-socket-activate -l "127.0.0.1:$port" --fdname=http \
		-E CREDENTIALS_DIRECTORY="$work/creds" -E BINDERY_TEST_HOOK_SECRET=x \
		"$BINDERYD" --config "$work/binderyd.yaml" > "$work/activate.log" 2>&1 &
	act=$!
	pids="$pids $act"
	for i in $(seq 100); do ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break; sleep 0.05; done
	check "before the first connection, binderyd is not running" \
		[ -z "$(pgrep -P "$act" 2>/dev/null)" -a -z "$(grep 'HTTP API' "$work/activate.log")" ]
	out=$(curl -s -m 15 -w ' %{http_code}' "http://127.0.0.1:$port/healthz")
	check "first connection starts binderyd, which answers /healthz (${out##* })" [ "${out##* }" = 200 ]
	check "binderyd served the activated socket" grep -q 'socket(s) passed by systemd' "$work/activate.log"
	out=$(curl -s -m 15 -w ' %{http_code}' -X POST -H "Authorization: Bearer $HTTP_TOKEN" "http://127.0.0.1:$port/v1/reconcile?wait=30")
	check "POST /v1/reconcile?wait=30 on the activated socket: 200 (${out##* })" [ "${out##* }" = 200 ]
	kill -TERM "$act"
	for i in $(seq 100); do kill -0 "$act" 2>/dev/null || break; sleep 0.05; done
	wait "$act"
	rc=$?
	check "SIGTERM: exit 0 ($rc)" [ "$rc" = 0 ]
fi
finish
