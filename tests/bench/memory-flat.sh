#!/bin/sh
# tests/bench/memory-flat.sh: a benchmark (issue 13, memory goal): peak and
# steady RSS of the daemon holding 1,000 workers, at reconcile 1, 100 and
# 500 (no-ops after a cold converge), with the load average beside each.
# cfsim's limits are raised by flag (--max-scripts 0: no Workers-per-
# account limit; --rate-limit 1000000/300: no throttling), said here as in
# the output: this measures memory, not throttling.
# Goal: peak RSS <= 16 MiB at 1,000 workers, flat across 500 reconciles.
# Usage: top_builddir=BUILD tests/bench/memory-flat.sh  (WORKERS, RUNS)
echo "# cfsim limits raised by flag: --max-scripts 0 --rate-limit 1000000/300"
WORKERS=${WORKERS:-1000} RUNS=${RUNS:-500} BASE=${BASE:-100} REPORT_AT="1 100 500" \
	MAX_GROWTH_KIB=${MAX_GROWTH_KIB:-4096} \
	exec bash "$(dirname "$0")/../daemon/memory-flat.sh"
