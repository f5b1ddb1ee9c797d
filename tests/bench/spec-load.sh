#!/bin/sh
# tests/bench/spec-load.sh [N]: generates a spec directory with N workers
# (default 1000; FILES (default 100) YAML files of N/FILES documents,
# one bundle per worker,
# each worker with ten bindings to shared resources, a JSON var and a
# secret reference), then times `binderyd validate` on it (best of 5) and
# reports its peak RSS with /usr/bin/time -v. Goal: under 100 ms for 1,000
# workers. Not part of `make check`.
set -eu

n=${1:-1000}
build=${top_builddir:-$(cd "$(dirname "$0")/../.." && pwd)}
binderyd=${BINDERYD:-$build/daemon/binderyd}
dir=$(mktemp -d /tmp/spec-bench.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT

mkdir -p "$dir/bundles" "$dir/workers"
cat >"$dir/resources.yaml" <<YAML
kind: KVNamespace
name: sessions
---
kind: R2Bucket
name: uploads
---
kind: D1Database
name: main-db
---
kind: Queue
name: jobs
---
kind: SecretsStore
name: default
default: true
YAML
files=${FILES:-100}
per=$(( (n + files - 1) / files ))
i=0
f=0
while [ "$i" -lt "$n" ]; do
	out="$dir/workers/w$(printf %03d "$f").yaml"
	: >"$out"
	j=0
	while [ "$j" -lt "$per" ] && [ "$i" -lt "$n" ]; do
		printf 'export default { fetch() { return new Response("worker %d"); } };\n' "$i" >"$dir/bundles/w$i.js"
		cat >>"$out" <<YAML
---
kind: Worker
name: worker-$i
main: ../bundles/w$i.js
compatibility_date: "2025-06-01"
compatibility_flags: [nodejs_compat]
crons: ["*/$(( i % 59 + 1 )) * * * *"]
tags: [bench, group-$(( i % 10 ))]
bindings:
  STAGE: production
  INDEX: "$i"
  LIMITS: { json: { rpm: $i, burst: 20, paths: ["/a", "/b"] } }
  API_KEY: { secret: { credential: api-key } }
  SESSIONS: { kv_namespace: sessions }
  UPLOADS: { r2_bucket: uploads }
  DB: { d1: main-db }
  JOBS: { queue: jobs }
  TOKEN: { secrets_store: { secret: api-token } }
  AI: { ai: {} }
YAML
		i=$((i + 1))
		j=$((j + 1))
	done
	f=$((f + 1))
done

"$binderyd" validate --spec-dir "$dir" >/dev/null || { "$binderyd" validate --spec-dir "$dir" | head; exit 1; }
best=
for run in 1 2 3 4 5; do
	t0=$(date +%s%N)
	"$binderyd" validate --spec-dir "$dir" >/dev/null
	t1=$(date +%s%N)
	ms=$(( (t1 - t0) / 1000000 ))
	if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
done
tv=$(/usr/bin/time -v "$binderyd" validate --spec-dir "$dir" 2>&1 >/dev/null)
rss=$(echo "$tv" | awk -F': ' '/Maximum resident set size/ { print $2 }')
cpu=$(echo "$tv" | awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%d", (u + s) * 1000 }')
summary=$("$binderyd" validate --spec-dir "$dir")
echo "$summary"
# Wall time suffers on a busy machine; user+sys CPU time does much less.
echo "spec-load: $n workers, $(du -sk "$dir" | cut -f1) KiB on disk: best of 5 ${best} ms wall," \
	"${cpu} ms CPU (user+sys), peak RSS $((rss / 1024)) MiB ($rss KiB), load average $(cut -d' ' -f1 /proc/loadavg)"
