#!/bin/bash
# engine-ratelimit.sh: bindery against Cloudflare's rate limit (issue 8),
# at a small size (a few seconds). cfsim's limit is shrunk here, visibly
# (40 requests per 2 s, a 2 s block), so a 20-worker cold converge needs
# several windows:
#   - it finishes, and never draws a 429: the Ratelimit header on every
#     answer says how much is left, and bindery waits for the window;
#   - with the window exhausted by someone else (the same token), the
#     429s bindery cannot avoid are few (its first requests in flight),
#     then it waits out the block instead of hammering, and finishes.
# tests/bench/engine-ratelimit-1000.sh is the same at 1,000 workers.
. "$(dirname "$0")/lib.sh"

N=${N:-20}
RATE=${RATE:-40/2}
BLOCK=${BLOCK:-2}
start_cfsim --rate-limit "$RATE" --rate-limit-block "$BLOCK" --max-scripts 0
gen_many "$N" 10
write_config "request_budget: 100000/5m"
export IT_MANY_SECRET=rl-secret
n429() { sim_stats | jq '.by_status["429"] // 0'; }

t0=$(date +%s)
bd apply
t1=$(date +%s)
check_eq "cold converge of $N workers under $RATE req/s exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output
check_eq "no 429 drawn (the Ratelimit header was followed)" "$(n429)" 0
echo "# cold converge: $(sim_requests) requests in $((t1 - t0)) s, 429s: $(n429)"
bd plan
check_eq "no-op plan exits 0" "$RC" 0

# Someone else spends the window: the next requests are refused until
# the block ends.
sim_reset_counters
for _ in $(seq $(( ${RATE%/*} + 5 ))); do api GET workers/scripts -o /dev/null; done
base=$(n429)
sed -i 's/^  STAGE: s-m01$/  STAGE: changed/' "$TMP/spec/many.yaml"
bd apply
check_eq "apply after a block exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output
drawn=$(( $(n429) - base ))
echo "# 429s drawn by bindery during the block: $drawn"
check "it waited out the block (at most its first requests in flight were refused)" [ "$drawn" -le 8 ]
finish
