#!/bin/bash
# tests/bench/engine-ratelimit-1000.sh: a benchmark, not a test.
# tests/integration/engine-ratelimit.sh at 1,000 workers with cfsim's
# limit shrunk to 100 requests per 10 s and a 60 s block: the cold
# converge finishes, draws no 429 it could have avoided from the
# Ratelimit header, and waits out a block someone else caused instead of
# hammering it; the 429 counts are printed.
# Usage: top_builddir=BUILD [N=1000] [RATE=100/10] [BLOCK=60] tests/bench/engine-ratelimit-1000.sh
export N=${N:-1000} RATE=${RATE:-100/10} BLOCK=${BLOCK:-60}
export CMD_TIMEOUT=${CMD_TIMEOUT:-7200}
exec bash "$(dirname "$0")/../integration/engine-ratelimit.sh"
