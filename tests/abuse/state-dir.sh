#!/bin/bash
# tests/abuse/state-dir.sh: the state directory under a careless or
# hostile operator. Each check failed before issue 12:
#  - deleting state/lock let a second daemon share the state directory;
#  - state.json.tmp.PID left by a kill -9 stayed forever;
#  - a corrupt state.json was logged as "Bad message", naming nothing;
#  - a short hmac.key was blamed on the secret being fingerprinted.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/daemon/lib.sh"

setup
start_cfsim
small_spec
printf '  TOKEN: { secret: { env: BINDERY_TEST_APP_SECRET } }\n' >> "$work/spec/workers/api.yaml"
export BINDERY_TEST_APP_SECRET=app-secret-value-1234
write_config "spec_env: BINDERY_TEST_APP_SECRET"
start_daemon
wait_idle 200
first=$DAEMON_PID
first_log=$work/binderyd.first.log

# ---- a second daemon, after the lock file was deleted ----
rm -f "$work/state/lock"
cp "$work/binderyd.log" "$first_log"
CREDENTIALS_DIRECTORY="$work/creds" BINDERY_TEST_HOOK_SECRET="$HOOK_SECRET" timeout 10 "$BINDERYD" --config "$work/binderyd.yaml" >"$work/second.log" 2>&1
rc=$?
check "a second daemon on the same state directory is refused after 'rm state/lock' (rc $rc)" [ "$rc" != 0 -a "$rc" != 124 ]
check "... saying the directory is locked" grep -q "locked by another" "$work/second.log"
kill -0 "$first" 2>/dev/null
check "the first daemon still runs" [ $? = 0 ]
stop_daemon

# ---- temporaries a kill left are removed at start ----
echo '{"version": 1, "reso' > "$work/state/state.json.tmp.4242"
start_daemon
wait_idle 200
check "state.json.tmp.4242 removed at start" [ ! -e "$work/state/state.json.tmp.4242" ]
stop_daemon

# ---- a short hmac.key: named, not blamed on the secret ----
printf 'short' > "$work/state/hmac.key"
start_daemon
wait_idle 200
check "a short hmac.key is logged naming the file" grep -q "state/hmac.key: 5 bytes, expected 32" "$work/binderyd.log"
http GET /v1/status
check "... and the status names it, not the secret's source" grep -q "hmac.key: 5 bytes" <<<"$BODY"
stop_daemon
rm -f "$work/state/hmac.key"

# ---- a full disk: said in the journal, not only in a run report ----
# The state directory on a 512 KiB tmpfs in the daemon's own mount
# namespace (root and unshare needed, else skipped), then filled.
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	mkdir -p "$work/state2"
	cat > "$work/binderyd-tmpfs" <<SH
#!/bin/sh
exec unshare -m sh -c 'mount -t tmpfs -o size=512k,mode=0700 tmpfs "\$0" && exec "\$@"' "$work/state2" "$BINDERYD" "\$@"
SH
	chmod +x "$work/binderyd-tmpfs"
	write_config "spec_env: BINDERY_TEST_APP_SECRET" "state_dir: $work/state2"
	sed -i "0,/^state_dir: .*/{/^state_dir: .*state\$/d}" "$work/binderyd.yaml"
	BINDERYD="$work/binderyd-tmpfs" start_daemon
	wait_idle 200
	nsenter -t "$DAEMON_PID" -m sh -c "dd if=/dev/zero of='$work/state2/fill' bs=4k >/dev/null 2>&1; true"
	small_spec staging-full-disk
	printf '  TOKEN: { secret: { env: BINDERY_TEST_APP_SECRET } }\n' >> "$work/spec/workers/api.yaml"
	# Everything in this spec is already someone else's (blocked), so a
	# run has nothing to record; and a commit appends a few hundred bytes
	# to state.journal, which may still fit in its last block. New
	# namespaces to create, one per second, until a commit needs a block.
	for i in $(seq 200); do
		grep -q "Cannot save the state file" "$work/binderyd.log" && break
		[ $((i % 10)) = 0 ] && printf 'kind: KVNamespace\nname: full-disk-%d\n---\n' "$i" >> "$work/spec/kv-full.yaml"
		sleep 0.1
	done
	check "a full disk is logged, naming the state file" \
		grep -q "Cannot save the state file ($work/state2): $work/state2/state.journal: cannot append: No space left on device" "$work/binderyd.log"
	stop_daemon
	rm -f "$work/spec/kv-full.yaml"
	write_config "spec_env: BINDERY_TEST_APP_SECRET"
else
	echo "SKIP: the full-disk check needs root and unshare -m"
fi

# ---- a corrupt state.json: the error names the file ----
truncate -s 20 "$work/state/state.json"
: > "$work/binderyd.log"
CREDENTIALS_DIRECTORY="$work/creds" BINDERY_TEST_HOOK_SECRET="$HOOK_SECRET" timeout 10 "$BINDERYD" --config "$work/binderyd.yaml" >"$work/binderyd.log" 2>&1
rc=$?
check "a corrupt state.json stops the daemon (rc $rc)" [ "$rc" != 0 -a "$rc" != 124 ]
check "... with an error naming the file and what is wrong" grep -q "state/state.json: not valid JSON" "$work/binderyd.log"
finish
