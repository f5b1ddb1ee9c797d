#!/bin/bash
# tests/bench/engine-cold-200.sh: a benchmark, not a test.
# Cold converge of N (default 200) workers — each with its own KV
# namespace, a var and a secret — by `binderyd apply`, then the same N by
# `wrangler deploy` (4.86.0; KV provisioned by wrangler, the secret from
# --secrets-file) against the same cfsim (reset in between), and the
# ratio of wall times. Wrangler runs WRANGLER_PARALLEL (default 4)
# deploys at a time.
# Usage: top_builddir=BUILD [N=200] [WRANGLER=/path/to/wrangler] tests/bench/engine-cold-200.sh
# Without WRANGLER, wrangler@4.86.0 is installed into a temporary
# directory from the npm registry (never into the source tree).
. "$(dirname "$0")/../integration/lib.sh"

N=${N:-200}
P=${WRANGLER_PARALLEL:-4}
# Several cold converges of 200 workers: far past Cloudflare's 1,200
# requests per 5 minutes, so the limit is raised for this benchmark.
start_cfsim --rate-limit 1000000/300
gen_many "$N" 100000
write_config "concurrency: 16" "request_budget: 100000/5m"
export IT_MANY_SECRET=bench-secret

if [ -z "${WRANGLER:-}" ]; then
        mkdir -p "$TMP/npm"
        (cd "$TMP/npm" && npm install --no-audit --no-fund --silent wrangler@4.86.0 >/dev/null 2>&1)
        WRANGLER=$TMP/npm/node_modules/.bin/wrangler
fi
check "wrangler available" test -x "$WRANGLER"

sim_reset_counters
t0=$(date +%s%N)
/usr/bin/time -f "%M %U %S" -o "$TMP/rss" "$BINDERYD" apply --config "$TMP/binderyd.yaml" >"$TMP/out" 2>"$TMP/err"
RC=$?
b_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "bindery cold converge exits 0" "$RC" 0
b_req=$(sim_requests)
b_cpu=$(awk '{ printf "%.2f", $2 + $3 }' "$TMP/rss")
b_rss=$(awk '{ printf "%.1f", $1 / 1024 }' "$TMP/rss")
echo "bindery:  $N workers in $((b_ms / 1000)).$(printf %03d $((b_ms % 1000))) s wall, $b_cpu s CPU, $b_req requests, peak RSS $b_rss MiB"

# The same workers for wrangler.
curl -s -X POST "$SIM/__sim/reset" >/dev/null
mkdir -p "$TMP/wr"
for i in $(seq -w 1 "$N"); do
        d=$TMP/wr/m$i
        mkdir -p "$d"
        cp "$TMP/spec/b/index.js" "$d/index.js"
        cat >"$d/wrangler.json" <<JSON
{ "name": "m$i", "main": "index.js", "compatibility_date": "2025-06-01",
  "vars": { "STAGE": "s-m$i" },
  "kv_namespaces": [ { "binding": "CACHE" } ] }
JSON
        echo "{\"KEY\": \"$IT_MANY_SECRET\"}" >"$d/secrets.json"
done
export CLOUDFLARE_API_BASE_URL=$URL CLOUDFLARE_API_TOKEN=$TOKEN CLOUDFLARE_ACCOUNT_ID=$ACCOUNT \
        WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false WRANGLER_HIDE_BANNER=true CI=true \
        XDG_CONFIG_HOME=$TMP/xdg WRANGLER_LOG_PATH=$TMP/wrangler-logs
sim_reset_counters
t0=$(date +%s%N)
ls "$TMP/wr" | xargs -P "$P" -I{} sh -c \
        'cd "$1/{}" && "$2" deploy --secrets-file secrets.json >deploy.log 2>&1 || echo "{} failed" >>"$1/failures"' \
        _ "$TMP/wr" "$WRANGLER"
w_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
w_req=$(sim_requests)
check "every wrangler deploy succeeded" test ! -e "$TMP/wr/failures"
check_eq "wrangler deployed $N scripts" "$(sim_state | jq '.scripts | length')" "$N"
echo "wrangler: $N workers in $((w_ms / 1000)).$(printf %03d $((w_ms % 1000))) s wall ($P in parallel), $w_req requests"
echo "ratio wrangler/bindery (wall): $(awk -v w="$w_ms" -v b="$b_ms" 'BEGIN { printf "%.1f", w / b }')x"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
finish
