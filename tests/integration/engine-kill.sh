#!/bin/bash
# engine-kill.sh: `kill -9` of `binderyd apply` at random moments of a
# 50-worker apply (20 trials by default): after each kill the state file
# is readable, the rerun converges (exit 0) with no "not owned" error and
# no duplicate resources, and a further run has nothing to do.
# tests/bench/kill-200.sh runs it 200 times.
. "$(dirname "$0")/lib.sh"

N=${ENGINE_KILL_WORKERS:-50}
TRIALS=${ENGINE_KILL_TRIALS:-20}
# Each trial is a few hundred requests and the reference run more: past
# Cloudflare's 1,200 per 5 minutes over the whole test, so the limit is
# raised here (a full /__sim/reset between trials clears the window too).
start_cfsim --rate-limit 1000000/300
gen_many "$N" 10
write_config "concurrency: 8"
export IT_MANY_SECRET=kill-secret-value

# How long a full apply takes here, to spread the kills over it.
start=$(date +%s%N)
bd apply
full_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check_eq "reference apply exits 0" "$RC" 0
echo "# a full $N-worker apply takes ${full_ms} ms"

bad_state=0 bad_rerun=0 unowned=0 dups=0 dirty=0 killed_mid=0
for t in $(seq "$TRIALS"); do
        curl -s -X POST "$SIM/__sim/reset" >/dev/null
        rm -rf "$TMP/state"
        mkdir -p "$TMP/state"
        at_ms=$(( RANDOM % (full_ms > 0 ? full_ms : 1) ))
        "$BINDERYD" apply --config "$TMP/binderyd.yaml" >"$TMP/kill.out" 2>&1 &
        pid=$!
        sleep "$(awk -v m="$at_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
        if kill -9 "$pid" 2>/dev/null; then killed_mid=$((killed_mid + 1)); fi
        wait "$pid" 2>/dev/null
        if [ -e "$TMP/state/state.json" ] && ! jq -e . "$TMP/state/state.json" >/dev/null 2>&1; then
                bad_state=$((bad_state + 1))
                echo "# trial $t: state.json unreadable after kill at ${at_ms} ms"
        fi
        bd apply
        if [ "$RC" != 0 ]; then
                bad_rerun=$((bad_rerun + 1))
                echo "# trial $t (kill at ${at_ms} ms): rerun exit $RC"
                sed 's/^/#   /' "$TMP/out" | grep -v '^#   \(create\|put-secret\|upload\|adopt\|migrate\)' | head -5
        fi
        if grep -q "not owned" "$TMP/out" "$TMP/err"; then unowned=$((unowned + 1)); fi
        no_duplicates || dups=$((dups + 1))
        [ "$(sim_state | jq '.kv | length')" = "$N" ] || dups=$((dups + 1))
        [ "$(sim_state | jq '.scripts | length')" = "$N" ] || dups=$((dups + 1))
        bd plan
        [ "$RC" = 0 ] || { dirty=$((dirty + 1)); echo "# trial $t: plan after rerun exit $RC"; head -3 "$TMP/out" | sed 's/^/#   /'; }
done
echo "# $killed_mid of $TRIALS runs were killed mid-apply"
check_eq "state file readable after every kill" "$bad_state" 0
check_eq "every rerun converges (exit 0)" "$bad_rerun" 0
check_eq "no 'not owned' errors" "$unowned" 0
check_eq "no duplicates, nothing missing" "$dups" 0
check_eq "nothing left to do after each rerun" "$dirty" 0

finish
