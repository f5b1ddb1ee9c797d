#!/bin/sh
# tests/daemon/notifications.sh: notifications out (binderyd.yaml notify:).
#   - a receiver on loopback gets blocked, failed and recovered events, each
#     a JSON body {event, run_id, result, generation, resources, text} with
#     a valid X-Bindery-Signature-256 (HMAC-SHA256 under the notify secret);
#   - no secret value (notify secret, API token, HTTP token) in any body;
#   - a second target that is down (connection refused) delays nothing:
#     each triggered run still answers at once, /healthz stays fast, and the
#     daemon says it retries.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

setup
command -v python3 >/dev/null || skip_all "python3 is not installed"
start_cfsim
NOTIFY_SECRET=notify-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$NOTIFY_SECRET" > "$work/creds/notify-secret"
chmod 0600 "$work/creds/notify-secret"

python3 "$top_srcdir/tests/daemon/notify-receiver.py" "$work/received.jsonl" "$work/receiver.port" &
pids="$pids $!"
for i in $(seq 100); do [ -s "$work/receiver.port" ] && break; sleep 0.05; done
RPORT=$(cat "$work/receiver.port")
[ -n "$RPORT" ] || { echo "receiver did not start"; exit 1; }
# A port nobody listens on: bind, learn, close.
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')

small_spec production
printf '  API_KEY: { secret: { credential: api-key } }\n' >> "$work/spec/workers/api.yaml"
write_config "notify:" \
	"  - url: http://127.0.0.1:$RPORT/hook" \
	"    secret: { credential: notify-secret }" \
	"    events: [failed, blocked, drift, recovered]" \
	"  - url: http://127.0.0.1:$DEAD/down" \
	"    events: [failed, blocked, recovered]" \
	"  - url: http://127.0.0.1:$RPORT/unsigned" \
	"    secret: { credential: no-such-secret }" \
	"    events: [recovered]"
start_daemon
wait_idle || fail "first reconcile did not finish"

received() { # event → count of bodies with that event
	python3 - "$work/received.jsonl" "$1" <<'PY'
import json, sys
n = 0
try:
    for l in open(sys.argv[1]):
        if json.loads(json.loads(l)["body"])["event"] == sys.argv[2]:
            n += 1
except FileNotFoundError:
    pass
print(n)
PY
}
wait_event() { # event: bounded wait for one delivery
	local i
	for i in $(seq 100); do [ "$(received "$1")" -ge 1 ] && return 0; sleep 0.05; done
	return 1
}

check "blocked run (missing credential): a blocked event arrives" wait_event blocked
check "a notify secret that cannot be read is named at start" \
	grep -q "Notifications to http://127.0.0.1:$RPORT/unsigned: cannot read secret credential:no-such-secret" "$work/binderyd.log"

# A failed run: Cloudflare refuses the upload of the changed worker.
sed -i '/API_KEY/d; s/^  STAGE: .*/  STAGE: two/' "$work/spec/workers/api.yaml"
curl -s -X POST "$SIM/__sim/faults" -d '[{"method": "PUT", "route": "/workers/scripts/api$", "kind": "400"}]' >/dev/null
t0=$(now_ms)
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
t1=$(now_ms)
check "failed run answers (409) while a target is down, in $((t1 - t0)) ms" [ "$STATUS" = 409 -a $((t1 - t0)) -lt 5000 ]
check "failed run: a failed event arrives" wait_event failed

curl -s -X POST "$SIM/__sim/faults" -d '[]' >/dev/null
t0=$(now_ms)
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
t1=$(now_ms)
check "good run answers 200 while a target is down, in $((t1 - t0)) ms" [ "$STATUS" = 200 -a $((t1 - t0)) -lt 5000 ]
check "first good run after a failed one: a recovered event arrives" wait_event recovered
# A second good run is not a recovery.
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
sleep 0.3
check "a second good run sends nothing more ($(received recovered) recovered)" [ "$(received recovered)" = 1 ]

t0=$(now_ms)
for i in $(seq 20); do curl -fs -m 2 "$API/healthz" -o /dev/null || break; done
t1=$(now_ms)
check "20 × /healthz while the down target is retried: $((t1 - t0)) ms" [ $((t1 - t0)) -lt 2000 ]
check "a target whose secret cannot be read sends nothing, and says so" \
	grep -q "Notification recovered to http://127.0.0.1:$RPORT/unsigned not sent: its secret" "$work/binderyd.log"
check "the daemon says it retries the down target" grep -q "Notification .* to http://127.0.0.1:$DEAD/down: .*retrying with backoff" "$work/binderyd.log"

# Every body: the fields, a valid signature, no secret value.
out=$(python3 - "$work/received.jsonl" "$NOTIFY_SECRET" "$API_TOKEN" "$HTTP_TOKEN" <<'PY'
import hashlib, hmac, json, sys
path, key, *secrets = sys.argv[1:]
bad = []
n = 0
for line in open(path):
    r = json.loads(line)
    n += 1
    body = r["body"]
    h = {k.lower(): v for k, v in r["headers"].items()}
    want = "sha256=" + hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()
    if h.get("x-bindery-signature-256") != want:
        bad.append("signature of request %d" % n)
    d = json.loads(body)
    for f in ("event", "run_id", "result", "generation", "resources", "text"):
        if f not in d:
            bad.append("request %d lacks %s" % (n, f))
    if "\n" in d.get("text", "\n") or not d.get("text", "").startswith("bindery: "):
        bad.append("request %d: text is not one line" % n)
    if d["event"] in ("failed", "blocked"):
        if not d["resources"] or not all({"kind", "name", "state", "reason"} <= set(x) for x in d["resources"]):
            bad.append("request %d: no resources with kind/name/state/reason" % n)
    if d["event"] == "blocked" and "api-key" not in d["resources"][0]["reason"]:
        bad.append("blocked: the reason does not name the credential")
    for s in [key] + secrets:
        if s in line:
            bad.append("a secret value in request %d" % n)
print("%d requests; %s" % (n, "; ".join(bad) if bad else "all good"))
PY
)
echo "    $out"
case $out in *"all good") ok "every notification signed, complete, one-line text, no secret value" ;; *) fail "notification bodies: $out" ;; esac
check "no secret value in the daemon's log" sh -c "! grep -q -e '$NOTIFY_SECRET' -e '$API_TOKEN' '$work/binderyd.log'"

curl -s "$API/metrics" > "$work/metrics.prom"
check "/metrics counts the delivered notifications" grep -q '^bindery_notifications_total{outcome="sent"} [3-9]' "$work/metrics.prom"

stop_daemon
finish
