#!/bin/bash
# tests/abuse/http-flood.sh: unauthenticated clients cannot starve the API.
# From loopback (the same address as the authorised client), IDLE
# connections that never send a byte and SLOW slowloris connections (a
# header line a second, never finished, reopened when closed) hold the
# daemon's slots; meanwhile an authorised POST /v1/reconcile must be
# answered within 1 s and GET /healthz within 100 ms, every time.
# FLOOD_IDLE / FLOOD_SLOW / FLOOD_SECONDS size it (CI: 500 + 500, 4 s).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/daemon/lib.sh"
FLOOD=${FLOOD:-$top_builddir/tests/abuse/flood}
IDLE=${FLOOD_IDLE:-500} SLOW=${FLOOD_SLOW:-500} SECONDS_=${FLOOD_SECONDS:-4}
# The limits are for a machine with a core to spare: they scale with the
# run queue (load average per CPU, when above 1; this machine is shared
# with the rest of the suite) and under sanitizers (several times slower).
F=$(awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" 'BEGIN { f = l / n; f = f < 1 ? 1 : int(f + 0.999); print f }')
[ "${BINDERY_SANITIZED:-0}" = 1 ] && F=$((F * 5))
H_LIMIT=$((100 * F)) T_LIMIT=$((1000 * F))

setup
[ -x "$FLOOD" ] || skip_all "$FLOOD is not built"
start_cfsim
small_spec
write_config
start_daemon
wait_idle 100 || fail "the daemon did not settle before the flood"

out=$("$FLOOD" "$PORT" "$IDLE" "$SLOW" "$SECONDS_" "$HTTP_TOKEN")
rc=$?
[ "$rc" = 77 ] && skip_all "$out"
echo "$out" | sed 's/^/  /'
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
field() { echo "$out" | sed -n "s/^$1 .*$2=\([0-9.]*\).*/\1/p"; }
h_max=$(field healthz max_ms) h_n=$(field healthz n) h_fail=$(field healthz failed)
t_max=$(field trigger max_ms) t_n=$(field trigger n) t_fail=$(field trigger failed)
check "flood ran ($IDLE idle + $SLOW slowloris) with measurements (healthz n=$h_n, trigger n=$t_n)" \
	[ "${h_n:-0}" -ge 5 -a "${t_n:-0}" -ge 5 ]
check "every /healthz answered under the flood (failed=$h_fail)" [ "${h_fail:-1}" = 0 ]
check "every authorised trigger answered under the flood (failed=$t_fail)" [ "${t_fail:-1}" = 0 ]
check "/healthz within $H_LIMIT ms under the flood (max ${h_max} ms)" \
	awk -v m="${h_max:-99999}" -v l="$H_LIMIT" 'BEGIN { exit !(m < l) }'
check "trigger within $T_LIMIT ms under the flood (max ${t_max} ms)" \
	awk -v m="${t_max:-99999}" -v l="$T_LIMIT" 'BEGIN { exit !(m < l) }'
# The daemon still works after the flood.
http GET /healthz
check "healthy after the flood ($STATUS)" [ "$STATUS" = 200 ]
stop_daemon
check "stopped cleanly after the flood" [ $? = 0 ]
finish
