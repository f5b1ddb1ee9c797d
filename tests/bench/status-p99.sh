#!/bin/sh
# tests/bench/status-p99.sh: benchmark (run by hand, not in make check):
# GET /v1/status latency (p50/p99/max) while the daemon's first reconcile
# creates WORKERS workers (default 500) in cfsim.
#   top_builddir=build/normal tests/bench/status-p99.sh [WORKERS]
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
here=$(cd "$(dirname "$0")" && pwd)
export top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
export top_builddir=${top_builddir:-$top_srcdir/build/normal}
WORKERS=${1:-${WORKERS:-500}} P99_MAX_MS=${P99_MAX_MS:-250} exec bash "$top_srcdir/tests/daemon/load.sh"
