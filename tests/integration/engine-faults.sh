#!/bin/bash
# engine-faults.sh: with cfsim faults on 20% of requests (429 with
# Retry-After, 503, dropped connections), apply converges with no
# duplicate resources, and a clean run afterwards has nothing to do.
. "$(dirname "$0")/lib.sh"

N=${ENGINE_FAULTS_WORKERS:-20}
start_cfsim
gen_many "$N" 5
write_config "concurrency: 8"
export IT_MANY_SECRET=faulty-secret-value

sim_faults '[{"route": ".", "kind": "429", "rate": 0.07, "retry_after": 1, "seed": 7},
             {"route": ".", "kind": "503", "rate": 0.07, "seed": 8},
             {"route": ".", "kind": "drop", "rate": 0.06, "seed": 9}]'
converged=no
for attempt in 1 2 3 4 5; do
        bd apply
        echo "# attempt $attempt: exit $RC"
        if [ "$RC" = 0 ]; then converged=yes; break; fi
done
check_eq "apply under 20% faults converges" "$converged" yes
[ "$converged" = yes ] || show_output
FAULTS=$(sim_stats | jq '[.by_status | to_entries[] | select(.key != "200") | .value] | add // 0')
check "faults were really injected ($FAULTS)" test "$FAULTS" -gt 0
sim_faults '[]'
check "no duplicate KV namespaces" no_duplicates
check_eq "$N KV namespaces" "$(sim_state | jq '.kv | length')" "$N"
check_eq "$N scripts" "$(sim_state | jq '.scripts | length')" "$N"
check_eq "every worker has its secret" "$(sim_state | jq '[.scripts[] | .versions[-1].bindings[] | select(.name=="KEY")] | length')" "$N"
sim_reset_counters
bd apply
check_eq "clean rerun exits 0" "$RC" 0
check_eq "clean rerun writes nothing" "$(sim_writes)" 0
bd plan
check_eq "plan: nothing to do" "$RC" 0

finish
