#!/bin/sh
# tests/daemon/ci.sh: the CI flow against a running daemon.
#   - a spec edit followed at once by POST /v1/reconcile?wait=30: the
#     answer's generation is the new digest (binderyd validate) and cfsim
#     already holds the change (REPS repetitions, default 100, 0 stale);
#   - ?expect= with a digest the directory does not produce: 412 with the
#     digest it does produce; a matching expect: 200.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
REPS=${REPS:-100}

setup
# 100 edit-and-trigger rounds, 20 symlink flips and the rest send more than
# Cloudflare's 1,200 requests per 5 minutes: raise cfsim's limit, visibly,
# and bindery's request_budget with it (a sliding window shared by the
# daemon and the CLI runs here: at 1000/5m the flips would wait for the
# edit rounds' requests to age out; this test is about edit -> live).
start_cfsim --rate-limit 100000/300
small_spec production
BUDGET="request_budget: 100000/5m"
write_config "prune_settle: 1h" "$BUDGET"
start_daemon
wait_idle || fail "first reconcile did not finish"

digest_of() { "$BINDERYD" validate --spec-dir "$work/spec" | sed -n 's/^digest //p'; }

# 1. no stale answers
stale=0 bad=0 t0=$(now_ms)
for i in $(seq "$REPS"); do
	sed -i "s/^  STAGE: .*/  STAGE: stage-$i/" "$work/spec/workers/api.yaml"
	want=$(digest_of)
	http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
	got=$(sed -n 's/.*"generation":"\([0-9a-f]*\)".*/\1/p' <<<"$BODY")   # no python per round: keep it fast
	if [ "$STATUS" != 200 ]; then
		bad=$((bad + 1)); echo "    rep $i: HTTP $STATUS: $BODY"; continue
	fi
	if [ "$got" != "$want" ] || ! sim_state | grep -q "\"stage-$i\""; then
		stale=$((stale + 1)); echo "    rep $i: stale (generation ${got:0:12}, wanted ${want:0:12})"
	fi
done
t1=$(now_ms)
echo "    $REPS edit+trigger rounds in $((t1 - t0)) ms: $stale stale, $bad not 200 (load $(cut -d' ' -f1 /proc/loadavg))"
check "edit then POST ?wait=30, $REPS times: 0 stale answers ($stale)" [ "$stale" = 0 ]
check "every answer was 200 ($bad not)" [ "$bad" = 0 ]

# 2. ?expect=
want=$(digest_of)
http POST '/v1/reconcile?wait=30&expect=0123456789ab' -H "Authorization: Bearer $HTTP_TOKEN"
check "?expect= another digest: 412 ($STATUS)" [ "$STATUS" = 412 ]
check "412 names the digest the directory produces" [ "$(json 'd.get("digest")')" = "$want" ]
http POST '/v1/reconcile?wait=30&expect=0123' -H "Authorization: Bearer $HTTP_TOKEN"
check "?expect= shorter than 12 hex digits: 400 ($STATUS)" [ "$STATUS" = 400 ]
http POST "/v1/reconcile?wait=30&expect=${want:0:12}" -H "Authorization: Bearer $HTTP_TOKEN"
check "?expect= the digest on disk: 200 ($STATUS)" [ "$STATUS" = 200 -a "$(json 'd.get("generation")')" = "$want" ]
echo 'kind: Worker' > "$work/spec/workers/broken.yaml"
http POST "/v1/reconcile?wait=30&expect=${want:0:12}" -H "Authorization: Bearer $HTTP_TOKEN"
check "?expect= with a rejected directory: 412 with its errors ($STATUS)" \
	[ "$STATUS" = 412 -a "$(json 'len(d.get("errors") or [])')" -ge 1 ]
rm -f "$work/spec/workers/broken.yaml"

# last_change moves only when a resource's state or reason does.
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
http GET /v1/status
lc1=$(json '[r["last_change"] for r in d["resources"] if r["name"] == "sessions"][0]')
sleep 1.1
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
http GET /v1/status
lc2=$(json '[r["last_change"] for r in d["resources"] if r["name"] == "sessions"][0]')
check "last_change stays put over a run that changes nothing ($lc1, $lc2)" [ "$lc1" = "$lc2" ]
# suspend: true shows as suspended.
printf 'kind: KVNamespace\nname: sessions\nsuspend: true\n' > "$work/spec/kv.yaml"
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
http GET /v1/status
check "suspend: true shows as suspended" [ "$(json '[r["state"] for r in d["resources"] if r["name"] == "sessions"][0]')" = suspended ]
printf 'kind: KVNamespace\nname: sessions\n' > "$work/spec/kv.yaml"

# 3. The CLI client: binderyd reconcile / status, each exit code.
cli() { # args...: output in $OUT, exit code in $RC
	OUT=$("$BINDERYD" "$@" 2>&1); RC=$?
}
tokfile=$work/creds/http-token
cli reconcile --url "$API" --token-file "$tokfile"
check "reconcile without --wait: exit 0 once queued ($RC)" [ "$RC" = 0 ]
check "reconcile without --wait: says queued" grep -q 'queued' <<<"$OUT"
wait_idle
sed -i "s/^  STAGE: .*/  STAGE: via-cli/" "$work/spec/workers/api.yaml"
want=$(digest_of)
# The client's view of the config: a wildcard listen host is loopback; the
# token is the http_token credential (as inside the unit).
sed "s/^listen: .*/listen: 0.0.0.0:$PORT/" "$work/binderyd.yaml" > "$work/client.yaml"
CREDENTIALS_DIRECTORY=$work/creds cli reconcile -c "$work/client.yaml" --wait 30 --expect "${want:0:16}"
check "reconcile --wait 30 --expect (URL and token from the config): exit 0 ($RC)" [ "$RC" = 0 ]
check "reconcile --wait: the change is in cfsim" grep -q '"via-cli"' <(sim_state)
check "reconcile --wait: prints the run and its generation" grep -q "generation ${want:0:12}" <<<"$OUT"
cli reconcile --url "$API" --token-file "$tokfile" --wait 30 --expect 0123456789abcdef
check "reconcile --expect another digest: exit 1 ($RC)" [ "$RC" = 1 ]
check "reconcile --expect another digest: names the digest on disk" grep -q "produces $want" <<<"$OUT"
BINDERY_HTTP_TOKEN=wrong cli reconcile --url "$API" --wait 5
check "reconcile with a wrong token (\$BINDERY_HTTP_TOKEN): exit 1 ($RC)" [ "$RC" = 1 ]
cli reconcile --url "http://127.0.0.1:1" --token-file "$tokfile"
check "reconcile with no daemon: exit 1 ($RC)" [ "$RC" = 1 ]
cli status -c "$work/client.yaml"
check "status in sync: exit 0 ($RC)" [ "$RC" = 0 ]
check "status: a table" grep -q '^KIND' <<<"$OUT"
cli status --url "$API" --json
check "status --json: valid JSON" python3 -c 'import json,sys; json.loads(sys.argv[1])' "$OUT"
cli reconcile --help
check "reconcile --help: its own usage ($RC)" grep -q 'Usage: binderyd reconcile' <<<"$OUT"
cli status --help
check "status --help: its own usage" grep -q 'Usage: binderyd status' <<<"$OUT"
# A run that cannot finish in time: exit 4.
curl -s -X POST "$SIM/__sim/faults" -d '[{"method": "GET", "route": "/workers/scripts$", "kind": "stall", "seconds": 3, "count": 1}]' >/dev/null
cli reconcile --url "$API" --token-file "$tokfile" --wait 1
check "reconcile --wait 1 on a slow run: exit 4 ($RC)" [ "$RC" = 4 ]
wait_idle
# Blocked: an unowned worker of the same name.
curl -s -X PUT -H "Authorization: Bearer $API_TOKEN" -F 'metadata={"main_module":"w.js"};type=application/json' \
	-F 'w.js=@-;filename=w.js;type=application/javascript+module' \
	"$SIM/client/v4/accounts/$ACCOUNT/workers/scripts/squatter" <<<'export default {}' >/dev/null
printf 'kind: Worker\nname: squatter\nmain: ../bundles/api.js\ncompatibility_date: "2025-06-01"\n' > "$work/spec/workers/squatter.yaml"
cli reconcile --url "$API" --token-file "$tokfile" --wait 30
check "reconcile --wait, blocked by an unowned worker: exit 3 ($RC)" [ "$RC" = 3 ]
cli status --url "$API"
check "status with a blocked resource: exit 3 ($RC)" [ "$RC" = 3 ]
rm -f "$work/spec/workers/squatter.yaml"
cli reconcile --url "$API" --token-file "$tokfile" --wait 30
check "reconcile --wait after the fix: exit 0 ($RC)" [ "$RC" = 0 ]

# 4. The journal (stderr here) says why; run history survives a restart.
log_has() { grep -q -- "$1" "$work/binderyd.log"; }
http GET /v1/runs
ids_before=$(json '" ".join(r["id"] for r in d)')
stop_daemon
printf '  API_KEY: { secret: { credential: api-key } }\n' >> "$work/spec/workers/api.yaml"
start_daemon
wait_idle
http GET /v1/runs
kept=$(json 'len([r for r in d if r["id"] in "'"$ids_before"'".split()])')
check "run history survives a restart ($kept of $(wc -w <<<"$ids_before") runs)" [ "$kept" = "$(wc -w <<<"$ids_before")" ]
last_before=${ids_before%% *}
http GET "/v1/runs/$last_before"
check "a run from before the restart keeps its report, without no-ops" \
	[ "$STATUS" = 200 -a "$(json 'len([a for a in d["report"]["actions"] if a["action"] == "no-op" and not a.get("waiting")])')" = 0 ]
check "the report counts the no-ops it leaves out" [ "$(json 'd["report"]["no_ops"] > 0')" = True ]
check "durations are rounded to milliseconds" python3 -c 'import sys; d=sys.argv[1]; assert len(d.split(".")[-1]) <= 3, d' "$(json 'd["duration_sec"]')"
check "start-up token check says what it found" log_has 'Token check (GET /user/tokens/verify): the API token (credential:cloudflare-api-token) is active'
check "blocked run: a line naming the resource and the missing credential" \
	log_has "Worker/api blocked: secret API_KEY: cannot read its value: .*api-key"
sed -i '/API_KEY/d' "$work/spec/workers/api.yaml"
stop_daemon

# A token Cloudflare refuses.
printf 'wrong-token' > "$work/creds/cloudflare-api-token"
start_daemon
wait_idle
check "refused token: the start-up check says so" log_has 'Token check (GET /user/tokens/verify): Cloudflare refused the API token'
check "refused token: the failed run says so" log_has 'Reconcile .*: Cloudflare refused the API token (credential:cloudflare-api-token)'
check "refused token: ... naming the permission the request needs" log_has 'refused the API token.*this request needs [A-Za-z0-9 ]*: [A-Z][a-z]*)'
check "no token value in the log" sh -c "! grep -q -- '$API_TOKEN' '$work/binderyd.log'"
stop_daemon

# No token at all.
rm -f "$work/creds/cloudflare-api-token"
start_daemon
wait_idle
check "missing token: an error naming the reference at start" \
	log_has "error.*no Cloudflare API token: cannot read credential:cloudflare-api-token.*credential 'cloudflare-api-token': not found"
check "missing token: named again when a run starts" \
	log_has "Reconcile [0-9-]*: no Cloudflare API token: cannot read credential:cloudflare-api-token.*credential 'cloudflare-api-token': not found"
stop_daemon
printf '%s' "$API_TOKEN" > "$work/creds/cloudflare-api-token"

# 5. A symlinked spec_dir flipped atomically, FLIPS times (default 20): each
# target is enforced without SIGHUP.
FLIPS=${FLIPS:-20}
mkdir -p "$work/releases"
for i in $(seq 0 "$FLIPS"); do
	cp -r "$work/spec" "$work/releases/r$i"
	sed -i "s/^  STAGE: .*/  STAGE: flip-$i/" "$work/releases/r$i/workers/api.yaml"
done
ln -s "$work/releases/r0" "$work/current"
sed -i "s|^spec_dir: .*|spec_dir: $work/current|" "$work/binderyd.yaml"
start_daemon
wait_idle
enforced=0 t0=$(now_ms)
for i in $(seq "$FLIPS"); do
	ln -s "$work/releases/r$i" "$work/current.tmp" && mv -T "$work/current.tmp" "$work/current"
	for k in $(seq 100); do sim_state | grep -q "\"flip-$i\"" && { enforced=$((enforced + 1)); break; }; sleep 0.05; done
done
t1=$(now_ms)
echo "    $enforced of $FLIPS symlink flips enforced in $((t1 - t0)) ms"
check "symlink flips: every one of $FLIPS enforced, no SIGHUP ($enforced)" [ "$enforced" = "$FLIPS" ]
check "symlink flips: no reload happened" sh -c "! grep -q 'Reloading' '$work/binderyd.log'"
stop_daemon

# 6. Settled changes: the worker's file rewritten line by line (as a slow
# copy or a careless editor does) never removes a binding or a secret that
# a later line restores; removals wait for prune_settle (30 s here).
sim_bindings() { # the binding names of the deployed version of script api
	sim_state | python3 -c 'import json,sys; d=json.load(sys.stdin); v=d["scripts"]["api"]["versions"][-1]; print(" ".join(sorted(b["name"] for b in v["bindings"])))'
}
printf 'k3y-%s' "$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$work/creds/api-key"
chmod 0600 "$work/creds/api-key"
write_config "prune_settle: 30s" "$BUDGET"
rm -rf "$work/spec"; cp -r "$work/releases/r0" "$work/spec"
cat > "$work/full.yaml" <<'YAML'
kind: Worker
name: api
main: ../bundles/api.js
compatibility_date: "2025-06-01"
bindings:
  SESSIONS: { kv_namespace: sessions }
  STAGE: production
  API_KEY: { secret: { credential: api-key } }
  EXTRA: more
YAML
cp "$work/full.yaml" "$work/spec/workers/api.yaml"
start_daemon
wait_idle
full=$(sim_bindings)
check "settle: converged with every binding ($full)" [ "$full" = "API_KEY EXTRA SESSIONS STAGE" ]
curl -s -X POST "$SIM/__sim/reset?counters=1" >/dev/null
: > "$work/spec/workers/api.yaml"
lost=0
while IFS= read -r line; do
	printf '%s\n' "$line" >> "$work/spec/workers/api.yaml"
	sleep 0.3
	now=$(sim_bindings)
	[ "$now" = "$full" ] || { lost=$((lost + 1)); echo "    after '$line': bindings '$now'"; }
done < "$work/full.yaml"
wait_idle
deletes=$(curl -s "$SIM/__sim/requests" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["requests"] if r["method"] == "DELETE"))')
check "settle: no binding or secret went missing while the file grew ($lost)" [ "$lost" = 0 ]
check "settle: no DELETE request ($deletes)" [ "$deletes" = 0 ]
check "settle: all bindings there at the end" [ "$(sim_bindings)" = "$full" ]
check "run history holds no secret value" sh -c "! grep -qF '$(cat "$work/creds/api-key")' '$work/state/runs.jsonl'"
# A real removal waits, is shown, and a trigger that expects it settles it.
sed -i 's/^  EXTRA: more/  ADDED: now/' "$work/spec/workers/api.yaml"
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
check "settle: a removal answers 200 with pending_removals ($STATUS)" \
	[ "$STATUS" = 200 -a "$(json 'd.get("pending_removals", 0)')" -ge 1 ]
check "settle: ... and when they are due" [ -n "$(json 'd.get("removals_due_at") or ""')" ]
check "settle: the addition is deployed at once, the removed binding kept ($(sim_bindings))" \
	[ "$(sim_bindings)" = "ADDED API_KEY EXTRA SESSIONS STAGE" ]
http GET /v1/status
check "settle: status shows the pending removal" [ "$(json 'd.get("pending_removals", 0)')" -ge 1 ]
cli status --url "$API"
check "settle: binderyd status exits 2 with a removal pending ($RC)" [ "$RC" = 2 ]
check "settle: ... and its table says when it is due" grep -q '^removals .* waiting for prune_settle, due 20' <<<"$OUT"
want=$(digest_of)
http POST "/v1/reconcile?wait=30&expect=$want" -H "Authorization: Bearer $HTTP_TOKEN"
check "settle: a trigger expecting the generation removes at once ($STATUS, $(sim_bindings))" \
	[ "$STATUS" = 200 -a "$(sim_bindings)" = "ADDED API_KEY SESSIONS STAGE" ]
stop_daemon

# 7. An emptied spec directory with prune: true deletes nothing (the
# status says why) until allow_empty: true, and then within max_deletions.
write_config "prune: true" "max_deletions: 5" "$BUDGET"
start_daemon
wait_idle
mkdir -p "$work/spec.away"; mv "$work/spec/"* "$work/spec.away/"
http POST '/v1/reconcile?wait=30' -H "Authorization: Bearer $HTTP_TOKEN"
check "emptied: the run is blocked ($STATUS)" [ "$STATUS" = 409 -a "$(json 'd.get("result")')" = blocked ]
check "emptied: worker api still in cfsim" python3 -c 'import json,sys; assert "api" in json.load(sys.stdin)["scripts"]' < <(sim_state)
http GET /v1/status
empty_said() {
	[ -n "$(json 'd["generation"].get("empty") or ""')" ] &&
		grep -q 'allow_empty: true' <<<"$(json '[r["reason"] for r in d["resources"] if r["name"] == "api"]')"
}
check "emptied: status says why (generation.empty and the resource's reason)" empty_said
stop_daemon
write_config "prune: true" "max_deletions: 5" "allow_empty: true" "$BUDGET"
start_daemon
wait_idle
check "allow_empty: true: worker api deleted" python3 -c 'import json,sys; assert "api" not in json.load(sys.stdin)["scripts"]' < <(sim_state)
cli state forget KVNamespace/sessions -c "$work/binderyd.yaml"
forget_refused() { [ "$RC" = 1 ] && grep -q locked <<<"$OUT"; }
check "state forget while the daemon runs: exit 1, says the state is locked ($RC)" forget_refused
stop_daemon
cli state forget KVNamespace/sessions -c "$work/binderyd.yaml"
check "state forget KVNamespace/sessions: exit 0 ($RC)" [ "$RC" = 0 ]
check "state forget: the record is gone from state.json" \
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 2 and "resource/KVNamespace/sessions" not in d["records"]' "$work/state/state.json"
check "state forget: the namespace itself is not deleted" grep -q '"sessions"' <(sim_state)
cli state forget KVNamespace/sessions -c "$work/binderyd.yaml"
check "state forget of something not owned: exit 1 ($RC)" [ "$RC" = 1 ]

finish
