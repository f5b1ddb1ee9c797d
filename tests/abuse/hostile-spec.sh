#!/bin/bash
# tests/abuse/hostile-spec.sh: what a hostile spec writer can do to the
# daemon, bounded. Each check failed before issue 12:
#  - a FIFO named like a spec or a module hung the loader (validate and
#    the daemon's loop); now it is an error at FILE and the loop answers;
#  - 3,000 unresolved references among 3,000 names of 59 characters
#    took ~60 s of "did you mean"; now bounded (< 3 s here);
#  - huge names made huge messages (RSS, /v1/status); now cut;
#  - a spec could read the daemon's own API token ({credential:
#    cloudflare-api-token}) or a file in the state directory; now
#    refused at load with FILE:LINE:COLUMN and nothing is uploaded;
#  - a replayed webhook with ?force=1 bypassed max_deletions.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/daemon/lib.sh"
BIG_NAMES=${BIG_NAMES:-30}

setup
# Sanitizers slow everything ~10x: time limits scale (the bugs were ~60 s and a hang).
SLOW=1; [ "${BINDERY_SANITIZED:-0}" = 1 ] && SLOW=10
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1000 }'; }
validate() { timeout 20 "$BINDERYD" validate --spec-dir "$1" 2>&1; }

# ---- FIFOs, a BOM, a symlink loop: errors at FILE, no hang ----
h=$work/hostile; mkdir -p "$h"
echo 'export default {};' > "$h/w.js"
printf 'kind: Worker\nname: w\nmain: w.js\nmodules: [pipe.js]\ncompatibility_date: "2025-06-01"\n' > "$h/w.yaml"
mkfifo "$h/pipe.js" "$h/queue.yaml"
printf '\xef\xbb\xbfkind: Queue\nname: q\n' > "$h/bom.yaml"
ln -s loop-b.yaml "$h/loop-a.yaml"; ln -s loop-a.yaml "$h/loop-b.yaml"
t0=$(now_ms); out=$(validate "$h"); rc=$?; t1=$(now_ms)
check "validate with FIFOs returns (rc $rc, $(secs "$t0" "$t1") s)" [ "$rc" = 1 ]
check "a FIFO named like a spec is an error at FILE" grep -q '^queue.yaml: a FIFO, not a regular file' <<<"$out"
check "a FIFO as a module is an error at FILE:LINE:COLUMN" grep -q "^w.yaml:4:11: module 'pipe.js' is not a regular file (a FIFO)" <<<"$out"
check "a BOM is named" grep -q '^bom.yaml:1:1: file starts with a UTF-8 byte order mark' <<<"$out"
check "a symlink loop is named (not 'dangling')" grep -q '^loop-a.yaml:1:1: symlink loop' <<<"$out"

# ---- 3,000 x 3,000 unresolved names of 59 characters ----
m=$work/hints; mkdir -p "$m"
echo 'export default {};' > "$m/w.js"
python3 - "$m" <<'PY'
import sys
d = sys.argv[1]
with open(d + "/many.yaml", "w") as f:
    for i in range(3000):
        f.write("---\nkind: KVNamespace\nname: kv-%056d\n" % i)
    for w in range(30):
        f.write('---\nkind: Worker\nname: w%d\nmain: w.js\ncompatibility_date: "2025-06-01"\nbindings:\n' % w)
        for i in range(100):
            f.write("  B%d: { kv_namespace: kx-%056d }\n" % (i, w * 100 + i))
PY
t0=$(now_ms); out=$(validate "$m"); rc=$?; t1=$(now_ms)
check "3,000 x 3,000 unresolved names: validate in $(secs "$t0" "$t1") s (< $((3 * SLOW)) s), rc $rc" \
	[ "$rc" = 1 -a $((t1 - t0)) -lt $((3000 * SLOW)) ]
check "... still with FILE:LINE:COLUMN and some hints" grep -q "^many.yaml:[0-9]*:[0-9]*: binding 'B0': no KVNamespace named .*did you mean" <<<"$out"

# ---- huge names: messages cut ----
b=$work/big; mkdir -p "$b"
python3 - "$b" "$BIG_NAMES" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open("%s/q%d.yaml" % (d, i), "w") as f:
        f.write("kind: Queue\nname: " + "a" * (1024 * 1024 - 100) + "\n")
PY
t0=$(now_ms); out=$(validate "$b"); rc=$?; t1=$(now_ms)
bytes=$(printf '%s' "$out" | wc -c)
check "$BIG_NAMES names of 1 MiB: $bytes bytes of errors (< 64 KiB) in $(secs "$t0" "$t1") s, rc $rc" \
	[ "$rc" = 1 -a "$bytes" -lt 65536 ]

# ---- the daemon: a FIFO in its spec does not stop the loop; no secret of the daemon's ----
start_cfsim
small_spec
mkfifo "$work/spec/fifo.yaml"
cat >> "$work/spec/workers/api.yaml" <<'YAML'
  LEAK: { secret: { credential: cloudflare-api-token } }
  LEAK2: { secret: { file: ../../state/hmac.key } }
YAML
write_config "spec_files_dir: $work/spec-secrets"
mkdir -p "$work/spec-secrets"
start_daemon
t0=$(now_ms); http GET /healthz; t1=$(now_ms)
check "daemon answers /healthz with a FIFO in the spec ($STATUS in $((t1 - t0)) ms)" [ "$STATUS" = 200 ]
http GET /v1/status
check "the FIFO is a spec error in /v1/status" grep -q 'fifo.yaml: a FIFO' <<<"$BODY"
check "the daemon's API token is refused at FILE:LINE:COLUMN" \
	grep -q "workers/api.yaml:8:[0-9]*: credential 'cloudflare-api-token' is one of the daemon's own secrets" <<<"$BODY"
check "a file in the state directory is refused at FILE:LINE:COLUMN" \
	grep -q "workers/api.yaml:9:[0-9]*: secret file '../../state/hmac.key' belongs to the daemon" <<<"$BODY"
check "nothing was uploaded" bash -c '! grep -q "\"api\"" <<<"$1"' _ "$(sim_state)"
check "the API token never appears in the status" bash -c '! grep -qF "$1" <<<"$2"' _ "$API_TOKEN" "$BODY"

# ---- a replayed webhook with ?force=1 cannot bypass max_deletions ----
stop_daemon
rm -f "$work/spec/fifo.yaml" "$work/spec/workers/api.yaml"
many_workers 3
write_config "prune: true" "max_deletions: 1"
start_daemon
wait_idle 200
http GET /v1/status
check "three workers applied" [ "$(sim_state | grep -o '"w[123]"' | sort -u | wc -l)" = 3 ]
rm -f "$work/spec/workers/many.yaml"
sleep 0.5; wait_idle 200
body='{"ref":"refs/heads/main"}'
sig=sha256=$(printf '%s' "$body" | python3 -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())' "$HOOK_SECRET")
http POST '/v1/hooks/github?force=1&wait=10' -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $sig" --data-binary "$body"
check "signed webhook with ?force=1: accepted, no wait ($STATUS)" [ "$STATUS" = 202 ]
sleep 0.3; wait_idle 200
check "max_deletions held: the three workers remain" [ "$(sim_state | grep -o '"w[123]"' | sort -u | wc -l)" = 3 ]
stop_daemon
finish
