#!/bin/sh
# tests/daemon/e2e.sh: binderyd with the real engine against cfsim.
#   - a spec edit reaches cfsim within 2 s with no trigger (inotify);
#   - a broken edit keeps the previous generation enforced, its error in
#     /v1/status as file:line:column, nothing deleted; the fix converges;
#   - POST without a token 401, wrong token 401, right token 202, with
#     ?wait= 200 and the result;
#   - a burst of 50 triggers causes at most 2 reconciles;
#   - the webhook: bad signature 401, good ping 200, good push 202;
#   - /metrics parses as Prometheus text (promtool if it can be had,
#     else the strict parser in test-httpd);
#   - SIGHUP reloads (bad config kept out), SIGTERM exits 0.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

setup
start_cfsim
small_spec production
write_config
start_daemon
wait_idle || fail "first reconcile did not finish"

http GET /v1/status
check "startup: generation loaded" [ "$(json 'd["generation"]["state"]')" = ok ]
check "startup: worker api in_sync" \
	[ "$(json '[r["state"] for r in d["resources"] if r["name"] == "api"][0]')" = in_sync ]
check "cfsim has STAGE=production" grep -q '"production"' <(sim_state)
gen1=$(json 'd["generation"]["digest"]')

# 1. an edit reaches cfsim within 2 s, with no trigger
t0=$(now_ms)
sed -i 's/STAGE: production/STAGE: staging/' "$work/spec/workers/api.yaml"
seen=0
for i in $(seq 100); do
	if sim_state | grep -q '"staging"'; then seen=1; break; fi
	sleep 0.02
done
dt=$(( $(now_ms) - t0 ))
echo "    edit -> cfsim in ${dt} ms"
check "spec edit reaches cfsim within 2 s (${dt} ms)" [ "$seen" = 1 -a "$dt" -le 2000 ]
wait_idle
http GET /v1/status
gen2=$(json 'd["generation"]["digest"]')
check "the edit made a new generation" [ "$gen1" != "$gen2" ]

# 2. a broken edit: previous generation stays, error shown, nothing deleted
writes_before=$(curl -s "$SIM/__sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["writes"])')
cp "$work/spec/workers/api.yaml" "$work/api.yaml.good"
printf 'kind: Worker\nname: api\n  main: [oops\n' > "$work/spec/workers/api.yaml"
sleep 0.8
http GET /v1/status
check "broken edit: generation rejected" [ "$(json 'd["generation"]["state"]')" = rejected ]
check "broken edit: previous generation still enforced" [ "$(json 'd["generation"]["digest"]')" = "$gen2" ]
err=$(json 'd["generation"]["errors"][0]["text"]')
echo "    error: $err"
check "broken edit: error as workers/api.yaml:LINE:COLUMN" \
	[ "$(json '"%s:%d:%d" % (d["generation"]["errors"][0]["file"], d["generation"]["errors"][0]["line"], d["generation"]["errors"][0]["column"])' | grep -c '^workers/api.yaml:[1-9][0-9]*:[1-9][0-9]*$')" = 1 ]
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
check "broken edit: a forced reconcile still runs on the last good generation ($STATUS)" \
	[ "$(json 'd["generation"]')" = "$gen2" ]
check "broken edit: worker api still in cfsim" grep -q '"staging"' <(sim_state)
dels=$(curl -s "$SIM/__sim/requests" | python3 -c 'import json,sys; r=json.load(sys.stdin); r=r.get("requests", r) if isinstance(r, dict) else r; print(sum(1 for x in r if x.get("method") == "DELETE"))')
check "broken edit: no DELETE reached cfsim" [ "$dels" = 0 ]
cp "$work/api.yaml.good" "$work/spec/workers/api.yaml"
sleep 0.8
wait_idle
http GET /v1/status
check "fixed: generation ok again" [ "$(json 'd["generation"]["state"]')" = ok ]
check "fixed: no errors left" [ "$(json 'len(d["generation"]["errors"])')" = 0 ]

# 2b. watch details: editor temporaries and hidden files are ignored; a
# directory created later is watched too (inotify is not recursive)
wait_idle
before=$(runs_count)
printf 'junk: [\n' > "$work/spec/workers/.api.yaml.swp"
printf 'junk: [\n' > "$work/spec/workers/api.yaml~"
printf 'junk: [\n' > "$work/spec/workers/#api.yaml#"
sleep 0.8
http GET /v1/status
check "editor temporaries and hidden files: no reload, no run" \
	[ "$(runs_count)" = "$before" -a "$(json 'd["generation"]["state"]')" = ok ]
rm -f "$work/spec/workers/.api.yaml.swp" "$work/spec/workers/api.yaml~" "$work/spec/workers/#api.yaml#"
mkdir -p "$work/spec/more/deeper"
sleep 0.3
printf 'kind: KVNamespace\nname: cache\n' > "$work/spec/more/deeper/cache.yaml.tmp-edit"
mv "$work/spec/more/deeper/cache.yaml.tmp-edit" "$work/spec/more/deeper/cache.yaml"
seen=0
for i in $(seq 100); do
	if sim_state | grep -q '"cache"'; then seen=1; break; fi
	sleep 0.02
done
check "a file renamed into a new subdirectory reaches cfsim (IN_MOVED_TO, new watch)" [ "$seen" = 1 ]
sleep 0.5  # let the last debounced reload land before planning
wait_idle

# 2c. plan: a dry run through the engine, reused for a few seconds
# (two requests back to back: the cache lives 5 s, python start-up is slow)
http GET /v1/plan
b1=$BODY s1=$STATUS
http GET /v1/plan
b2=$BODY
BODY=$b1
check "GET /v1/plan: 200 with a result ($s1, $(json 'd.get("result")'))" [ "$s1" = 200 -a "$(json 'd.get("result")')" = ok ]
p1=$(json 'd["planned_at"]')
BODY=$b2
p2=$(json 'd["planned_at"]')
check "GET /v1/plan again: the cached plan ($p1, $p2)" [ "$p2" = "$p1" ]
http GET '/v1/plan?format=table'
check "GET /v1/plan?format=table: text" [ "$STATUS" = 200 ]
http GET '/v1/status?pretty'
pretty_ok() {
	[ "$STATUS" = 200 ] && printf '%s' "$BODY" |
		python3 -c 'import json,sys; t=sys.stdin.read(); json.loads(t); assert "\n  \"" in t' 2>/dev/null
}
check "GET /v1/status?pretty: valid indented JSON" pretty_ok

# 2d. /v1/status as prepared bytes: a strong ETag, 304 on If-None-Match,
# a new tag once a run changed the status, the body what a fresh build gives
etag_of() {
	curl -s -m 30 -D - -o /dev/null "$API/v1/status" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p'
}
code_for_tag() {
	curl -s -m 30 -o /dev/null -w '%{http_code}' -H "If-None-Match: $1" "$API/v1/status"
}
wait_idle
tag1=$(etag_of)
check "GET /v1/status: a strong ETag ($tag1)" grep -qE '^"[0-9a-f]{32}"$' <<<"$tag1"
check "GET /v1/status: the same ETag while nothing changes" [ "$(etag_of)" = "$tag1" ]
code=$(code_for_tag "$tag1")
check "If-None-Match with it: 304 ($code)" [ "$code" = 304 ]
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
wait_idle
code=$(code_for_tag "$tag1")
tag2=$(etag_of)
check "after a run: the old tag gets 200 ($code) and a new ETag ($tag2)" \
	[ "$code" = 200 -a -n "$tag2" -a "$tag2" != "$tag1" ]
check "after a run: the new tag gets 304" [ "$(code_for_tag "$tag2")" = 304 ]
same_as_fresh() {
	python3 -c 'import json,sys; assert json.loads(sys.argv[1]) == json.loads(sys.argv[2])' \
		"$(curl -s -m 30 "$API/v1/status")" "$(curl -s -m 30 "$API/v1/status?pretty")"
}
check "the prepared body equals a fresh build (?pretty)" same_as_fresh

# 3. authentication
http POST /v1/reconcile
check "POST without a token: 401 ($STATUS)" [ "$STATUS" = 401 ]
http POST /v1/reconcile -H "Authorization: Bearer wrong-$HTTP_TOKEN"
check "POST with a wrong token: 401 ($STATUS)" [ "$STATUS" = 401 ]
http POST /v1/reconcile -H "Authorization: Bearer $HTTP_TOKEN"
check "POST with the token: 202 ($STATUS)" [ "$STATUS" = 202 ]
wait_idle
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
check "POST ?wait=30: 200 with result ok ($STATUS)" [ "$STATUS" = 200 -a "$(json 'd["result"]')" = ok ]
http GET /v1/runs/nope
check "GET /v1/runs/nope: 404" [ "$STATUS" = 404 ]
http DELETE /v1/status
check "DELETE /v1/status: 405" [ "$STATUS" = 405 ]

# 4. a burst of 50 triggers: at most 2 reconciles
# Each cfsim script list stalls 1 s meanwhile, so the burst meets a
# running reconcile the way it would against the real API.
wait_idle
curl -s -X POST "$SIM/__sim/faults" -d '[{"method": "GET", "route": "/workers/scripts$", "kind": "stall", "seconds": 1, "rate": 1}]' >/dev/null
before=$(runs_count)
urls=$(for i in $(seq 50); do printf '%s ' "$API/v1/reconcile"; done)
t0=$(now_ms)
# shellcheck disable=SC2086
curl -s --no-progress-meter -Z --parallel-max 50 -X POST -H "Authorization: Bearer $HTTP_TOKEN" $urls > "$work/burst.out"
echo "    50 triggers sent in $(( $(now_ms) - t0 )) ms, $(grep -o '"id"' "$work/burst.out" | wc -l) answered with a run id"
wait_idle 600
after=$(runs_count)
curl -s -X POST "$SIM/__sim/faults" -d '[]' >/dev/null
n=$((after - before))
echo "    50 triggers -> $n reconciles"
check "burst of 50 triggers: at most 2 reconciles ($n)" [ "$n" -ge 1 -a "$n" -le 2 ]

# 5. webhook
body='{"zen":"Design for failure."}'
sig=sha256=$(printf '%s' "$body" | python3 -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())' "$HOOK_SECRET")
http POST /v1/hooks/github -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: sha256=$(printf '%064d' 0)" --data-binary "$body"
check "webhook with a bad signature: 401 ($STATUS)" [ "$STATUS" = 401 ]
http POST /v1/hooks/github -H 'X-GitHub-Event: ping' -H "X-Hub-Signature-256: $sig" --data-binary "$body"
check "webhook ping: 200 ($STATUS)" [ "$STATUS" = 200 ]
http POST /v1/hooks/github -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $sig" --data-binary "$body"
check "webhook push: 202 ($STATUS)" [ "$STATUS" = 202 ]
wait_idle

# 6. /metrics
curl -s "$API/metrics" > "$work/metrics.prom"
promtool=${PROMTOOL:-$(command -v promtool)}
# A cache outside the build tree (distcheck wants a clean build tree).
tools=${BINDERY_TOOLS_DIR:-${TMPDIR:-/tmp}/bindery-tools-$(id -u)}
if [ -z "$promtool" ] && [ -x "$tools/usr/bin/promtool" ]; then
	promtool=$tools/usr/bin/promtool
fi
if [ -z "$promtool" ] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
	# Never install the package (its postinst starts a service): unpack it.
	mkdir -p "$tools"
	( cd "$work" && timeout 120 apt-get download prometheus >/dev/null 2>&1 &&
	  dpkg-deb -x prometheus_*.deb "$tools" ) && promtool=$tools/usr/bin/promtool
fi
if [ -n "$promtool" ] && [ -x "$promtool" ]; then
	out=$("$promtool" check metrics < "$work/metrics.prom" 2>&1)
	rc=$?
	echo "    promtool: $promtool"
	check "/metrics: promtool check metrics is clean (rc $rc)" [ "$rc" -eq 0 -a -z "$out" ]
	[ -n "$out" ] && echo "$out" | sed 's/^/    /'
else
	echo "    promtool unavailable: using test-httpd's strict parser"
	check "/metrics: strict Prometheus parser" "$top_builddir/tests/test-httpd" --check-metrics "$work/metrics.prom"
fi
check "/metrics: runs by result" grep -q '^bindery_runs_total{result="ok"} [1-9]' "$work/metrics.prom"
check "/metrics: API requests by code" grep -q '^bindery_api_requests_total{code="200"} [1-9]' "$work/metrics.prom"
check "/metrics: build info with the version" grep -q '^bindery_build_info{version="[^"]*"} 1$' "$work/metrics.prom"
check "/metrics: a condition per resource and state" grep -q '^bindery_resource_condition{kind="Worker",name="[^"]*",state="in_sync"} 1$' "$work/metrics.prom"
check "/metrics: API latency histogram by route class" grep -q '^bindery_api_request_duration_seconds_bucket{route="workers",le="+Inf"} [1-9]' "$work/metrics.prom"
check "/metrics: timestamps are whole seconds" grep -Eq '^bindery_generation_loaded_timestamp_seconds [0-9]{10}$' "$work/metrics.prom"
check "/metrics: no value in exponent form" sh -c "! grep -Eq ' [0-9.]+e[+-]?[0-9]+$' '$work/metrics.prom'"
http GET /v1/status
check "/metrics: generation info" grep -q "^bindery_generation_info{digest=\"$(json 'd["generation"]["digest"]')\"} 1" "$work/metrics.prom"

# 7. SIGHUP: a bad config is kept out, the daemon keeps serving
cp "$work/binderyd.yaml" "$work/binderyd.yaml.good"
echo "intervall: 5m" >> "$work/binderyd.yaml"
kill -HUP "$DAEMON_PID"
sleep 0.5
check "SIGHUP with a bad config: error logged with file:line:column" \
	grep -q "binderyd.yaml:[0-9]*:1: unknown key 'intervall'; did you mean 'interval'?" "$work/binderyd.log"
check "SIGHUP with a bad config: still serving" curl -fs "$API/healthz" -o /dev/null
cp "$work/binderyd.yaml.good" "$work/binderyd.yaml"
kill -HUP "$DAEMON_PID"
sleep 0.5
check "SIGHUP: configuration reloaded" grep -q 'Configuration reloaded' "$work/binderyd.log"

# SIGHUP with a new spec_dir: loaded, reconciled and watched from then on
cp -r "$work/spec" "$work/spec2"
sed -i 's/STAGE: staging/STAGE: from-spec2/' "$work/spec2/workers/api.yaml"
sed -i "s|^spec_dir: .*|spec_dir: $work/spec2|" "$work/binderyd.yaml"
kill -HUP "$DAEMON_PID"
seen=0
for i in $(seq 100); do sim_state | grep -q '"from-spec2"' && { seen=1; break; }; sleep 0.05; done
check "SIGHUP with a new spec_dir: its spec reaches cfsim" [ "$seen" = 1 ]
wait_idle
sed -i 's/STAGE: from-spec2/STAGE: edited-in-spec2/' "$work/spec2/workers/api.yaml"
seen=0
for i in $(seq 100); do sim_state | grep -q '"edited-in-spec2"' && { seen=1; break; }; sleep 0.02; done
check "the new spec_dir is watched" [ "$seen" = 1 ]

# 8. SIGTERM
stop_daemon
rc=$?
check "SIGTERM: exit 0 ($rc)" [ "$rc" = 0 ]
check "state directory written" [ -n "$(ls -A "$work/state")" ]
finish
