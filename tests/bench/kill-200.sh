#!/bin/bash
# tests/bench/kill-200.sh: a benchmark, not a test — the kill -9 test of
# tests/integration/engine-kill.sh repeated 200 times on a 50-worker
# apply. Usage: top_builddir=BUILD tests/bench/kill-200.sh
export ENGINE_KILL_TRIALS=${ENGINE_KILL_TRIALS:-200}
export ENGINE_KILL_WORKERS=${ENGINE_KILL_WORKERS:-50}
exec bash "$(dirname "$0")/../integration/engine-kill.sh"
