# tests/integration/lib.sh: shared helpers for the engine's integration
# tests (sourced). Each test starts its own cfsim on a free loopback port,
# works in a private temporary directory, never writes into the source
# tree, and ends with "N passed, N failed".
#
# Environment: top_builddir and top_srcdir (set by make check; default
# to the current directory and this script's tree).

set -u

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
BINDERYD="$top_builddir/daemon/binderyd"
CFSIM="$top_builddir/tests/cfsim/cfsim"
SPECS="$top_srcdir/tests/integration/specs"
ACCOUNT=023e105f4ecef8ad9ca31a8372d0c353
TOKEN=it-token-$$
# A third party's token (the dashboard, another tool): `api` writes with
# it, so its writes show in the audit feed under another token than
# bindery's (bindery leaves its own token's entries out of its query).
OTHER_TOKEN=it-other-token-$$
CMD_TIMEOUT=${CMD_TIMEOUT:-120}

n_pass=0
n_fail=0
CFSIM_PID=

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bindery-it.XXXXXX")

cleanup() {
        [ -n "$CFSIM_PID" ] && kill "$CFSIM_PID" 2>/dev/null && wait "$CFSIM_PID" 2>/dev/null
        [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

for f in "$BINDERYD" "$CFSIM"; do
        if [ ! -x "$f" ]; then
                echo "missing $f (build first)"
                echo "0 passed, 1 failed"
                exit 1
        fi
done
# jq and curl (Debian packages) drive cfsim from the outside; without
# them the test is skipped (exit 77), not failed.
for tool in jq curl; do
        if ! command -v "$tool" >/dev/null; then
                echo "SKIP: $tool is not installed (apt-get install $tool)"
                echo "0 passed, 0 failed"
                exit 77
        fi
done

ok() {
        n_pass=$((n_pass + 1))
        echo "ok - $*"
}

not_ok() {
        n_fail=$((n_fail + 1))
        echo "not ok - $*"
}

# check NAME COMMAND...: passes when COMMAND succeeds.
check() {
        local name=$1
        shift
        if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# check_eq NAME GOT WANT
check_eq() {
        if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (got '$2', want '$3')"; fi
}

finish() {
        echo "$n_pass passed, $n_fail failed"
        [ "$n_fail" -eq 0 ]
        exit $?
}

# What the integration specs can only reference, never create (specs/full
# binds an existing Hyperdrive config and Vectorize index): cfsim is
# seeded with exactly these, as a real account would already hold them.
# Everything else runs on cfsim's defaults (binding targets must exist,
# 1,200 requests per 5 minutes per token, Cloudflare's account limits);
# a test that needs more passes the flag to start_cfsim, visibly.
write_cfsim_seed() {
        cat >"$TMP/cfsim-seed.json" <<'SEED'
{"hyperdrive": [{"id": "5f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99", "name": "it-postgres"}],
 "vectorize": [{"name": "docs-index"}]}
SEED
}

# start_cfsim [ARGS...]: starts cfsim on a free port, seeded as above;
# sets URL, SIM, API.
start_cfsim() {
        write_cfsim_seed
        # Emptied here, not by the redirection below: the shell truncates
        # in the child, and this loop could read a previous cfsim's port.
        URL=
        : >"$TMP/cfsim.out"
        "$CFSIM" --port 0 --host 127.0.0.1 --account-id "$ACCOUNT" --token "$TOKEN" --token "$OTHER_TOKEN" --seed "$TMP/cfsim-seed.json" "$@" \
                >"$TMP/cfsim.out" 2>"$TMP/cfsim.err" &
        CFSIM_PID=$!
        for _ in $(seq 100); do
                URL=$(sed -n 's/^cfsim listening on //p' "$TMP/cfsim.out" 2>/dev/null)
                [ -n "$URL" ] && break
                sleep 0.05
        done
        if [ -z "$URL" ]; then
                echo "cfsim did not start"; cat "$TMP/cfsim.err"
                echo "0 passed, 1 failed"
                exit 1
        fi
        SIM=${URL%/client/v4}
        API="$URL/accounts/$ACCOUNT"
}

# api METHOD PATH [curl args...]: a call to cfsim as a third party would
# make it (the dashboard, another tool).
api() {
        local m=$1 p=$2
        shift 2
        curl -s -X "$m" -H "Authorization: Bearer $OTHER_TOKEN" "$API/$p" "$@"
}

sim_reset_counters() { curl -s -X POST "$SIM/__sim/reset?counters=1" >/dev/null; }
sim_stats() { curl -s "$SIM/__sim/stats"; }
sim_writes() { sim_stats | jq -r '.writes'; }
sim_requests() { sim_stats | jq -r '.requests'; }
sim_route() { sim_stats | jq -r --arg r "$1" '.by_route[$r] // 0'; }
sim_state() { curl -s "$SIM/__sim/state"; }
sim_faults() { curl -s -X POST "$SIM/__sim/faults" -d "$1" >/dev/null; }

# write_config [EXTRA YAML...]: the binderyd.yaml for this test.
write_config() {
        mkdir -p "$TMP/state"
        {
                echo "account_id: $ACCOUNT"
                echo "api_url: $URL"
                echo "spec_dir: $TMP/spec"
                echo "state_dir: $TMP/state"
                echo "api_token: { env: IT_CF_TOKEN }"
                # What the specs may read (bindery-spec(5), Secrets): these variables only.
                echo "spec_env: [IT_API_KEY, IT_JWT_SECRET, IT_STORE_SECRET, IT_MANY_SECRET]"
                case " $* " in *" prune_settle:"*) ;; *) echo "prune_settle: 0s" ;; esac
                echo "log_level: warning"
                for l in "$@"; do echo "$l"; done
        } >"$TMP/binderyd.yaml"
}

# use_spec NAME: copies tests/integration/specs/NAME to $TMP/spec.
use_spec() {
        rm -rf "$TMP/spec"
        cp -r "$SPECS/$1" "$TMP/spec"
        chmod -R u+w "$TMP/spec"
}

export IT_CF_TOKEN=$TOKEN

# bd COMMAND [ARGS...]: runs binderyd; stdout in $TMP/out, stderr in
# $TMP/err, the exit code in $RC (never aborts the test).
bd() {
        local cmd=$1
        shift
        RC=0
        timeout "$CMD_TIMEOUT" "$BINDERYD" "$cmd" --config "$TMP/binderyd.yaml" "$@" >"$TMP/out" 2>"$TMP/err" || RC=$?
        cat "$TMP/out" >>"$TMP/all-output"
        cat "$TMP/err" >>"$TMP/all-output"
}

show_output() {
        echo "--- stdout"; cat "$TMP/out"; echo "--- stderr"; cat "$TMP/err"
}

# gen_many N [DO_EVERY]: writes a spec of N workers into $TMP/spec, each
# with its own KV namespace, a plain var and a secret (env IT_MANY_SECRET);
# every DO_EVERY-th worker (default 10) also owns a Durable Object class.
gen_many() {
        local n=$1 every=${2:-10} i name
        rm -rf "$TMP/spec"
        mkdir -p "$TMP/spec/b"
        echo 'export class Box {} export default { fetch() { return new Response("m"); } };' >"$TMP/spec/b/index.js"
        {
                for i in $(seq -w 1 "$n"); do
                        name=m$i
                        printf -- '---\nkind: KVNamespace\nname: kv-%s\n' "$name"
                        printf -- '---\nkind: Worker\nname: %s\nmain: b/index.js\ncompatibility_date: "2025-06-01"\n' "$name"
                        if [ $((10#$i % every)) -eq 0 ]; then
                                printf 'durable_objects:\n  classes: [Box]\n  migrations:\n    - tag: v1\n      new_sqlite_classes: [Box]\n'
                        fi
                        printf 'bindings:\n  STAGE: s-%s\n  CACHE: { kv_namespace: kv-%s }\n  KEY: { secret: { env: IT_MANY_SECRET } }\n' "$name" "$name"
                done
        } >"$TMP/spec/many.yaml"
}

# no_duplicates: every KV title and script appears once in cfsim.
no_duplicates() {
        local s
        s=$(sim_state)
        [ "$(echo "$s" | jq '[.kv[].title] | length')" = "$(echo "$s" | jq '[.kv[].title] | unique | length')" ]
}
