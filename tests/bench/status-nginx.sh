#!/bin/sh
# tests/bench/status-nginx.sh: benchmark (run by hand, not in make check):
# GET /v1/status of a daemon holding WORKERS workers (default 1,000)
# against nginx serving the same bytes from a file, with wrk, in the same
# run; then the poller's case (If-None-Match with the ETag: 304), ?pretty
# (built per request), and the latency (p99, max) of the full body while a
# converge updates every worker (goal, issue 13: binderyd >= 0.5x nginx,
# p99 < 10 ms; tests/bench/status-p99.sh has the latency alone). The load average is printed beside every
# figure (the host may be shared).
#   top_builddir=build/normal tests/bench/status-nginx.sh [WORKERS] [SECONDS]
# cfsim's rate limit and script count are raised by flag (--rate-limit,
# --max-scripts 0): this measures the status API, not throttling.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
here=$(cd "$(dirname "$0")" && pwd)
export top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
export top_builddir=${top_builddir:-$top_srcdir/build/normal}
. "$top_srcdir/tests/daemon/lib.sh"
WORKERS=${1:-${WORKERS:-1000}}
SECONDS_RUN=${2:-${SECONDS_RUN:-10}}
THREADS=${THREADS:-2} CONNECTIONS=${CONNECTIONS:-16}

command -v wrk >/dev/null || { echo "status-nginx: wrk is not installed" >&2; exit 1; }
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX" ] || { echo "status-nginx: nginx is not installed (nginx-light)" >&2; exit 1; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# wrk_run LABEL URL [wrk args...]: one line with req/s, p99 and the load average.
wrk_run() {
	local label=$1 url=$2; shift 2
	local out
	out=$(wrk --latency -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_RUN}s" "$@" "$url")
	printf '    %-34s %10s req/s  p99 %8s  non-2xx %s  (load average %s)\n' "$label" \
		"$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')" \
		"$(printf '%s\n' "$out" | awk '$1 == "99%" { print $2 }')" \
		"$(printf '%s\n' "$out" | awk '/Non-2xx/ { print $NF }' | grep . || echo 0)" \
		"$(loadavg)"
	printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }' > "$work/last-rps"
}

setup
start_cfsim --rate-limit 100000000/1 --max-scripts 0
many_workers "$WORKERS"
write_config "concurrency: 8" "request_budget: 100000/5m"
start_daemon
wait_idle 3000 || { echo "status-nginx: the first reconcile did not finish" >&2; exit 1; }

# The same bytes for nginx, and an nginx of one worker (the daemon has one loop).
mkdir -p "$work/nginx/html/v1" "$work/nginx/tmp"
# Run as root, nginx's worker is nobody: let it through the private
# directory to the file (the credentials directory stays 0700).
chmod 0711 "$work"
curl -s -o "$work/nginx/html/v1/status" "$API/v1/status"
tag=$(curl -s -D - -o /dev/null "$API/v1/status" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
bytes=$(wc -c < "$work/nginx/html/v1/status")
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $work/nginx/tmp;
	proxy_temp_path $work/nginx/tmp;
	fastcgi_temp_path $work/nginx/tmp;
	uwsgi_temp_path $work/nginx/tmp;
	scgi_temp_path $work/nginx/tmp;
	default_type application/json;
	server {
		listen 127.0.0.1:$nport;
		root $work/nginx/html;
	}
}
NGINX
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx/stderr" &
pids="$pids $!"
for i in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$nport/v1/status" && break; sleep 0.05; done
cmp -s "$work/nginx/html/v1/status" <(curl -s "http://127.0.0.1:$nport/v1/status") ||
	{ cat "$work/nginx/stderr"; echo "status-nginx: nginx does not serve the bytes" >&2; exit 1; }

echo "    GET /v1/status with $WORKERS workers: $bytes bytes, ETag $tag; wrk -t$THREADS -c$CONNECTIONS -d${SECONDS_RUN}s"
wrk_run "nginx, the same file" "http://127.0.0.1:$nport/v1/status"
ng=$(cat "$work/last-rps")
wrk_run "binderyd GET /v1/status" "$API/v1/status"
bd=$(cat "$work/last-rps")
# wrk counts only statuses over 399 as errors: the 304 is checked here.
n304=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -H "If-None-Match: $tag" "$API/v1/status")
check "If-None-Match with the ETag: 304 without a body ($n304)" [ "$n304" = "304 0" ]
wrk_run "binderyd If-None-Match (304)" "$API/v1/status" -H "If-None-Match: $tag"
wrk_run "binderyd ?pretty (built per request)" "$API/v1/status?pretty"
echo "    binderyd / nginx: $(awk -v a="$bd" -v b="$ng" 'BEGIN { printf "%.2f", a / b }')x"
check "the daemon served the same bytes throughout" cmp -s "$work/nginx/html/v1/status" <(curl -s "$API/v1/status")

# Latency with the full body while a converge updates every worker: one
# curl, sequential requests on one keep-alive connection.
sed -i 's/^  ID: "\([0-9]*\)"$/  ID: "v2-\1"/' "$work/spec/workers/many.yaml"
curl -s -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' "$API/v1/status?n=[1-10000000]" \
	> "$work/samples" 2>/dev/null &
sampler=$!
pids="$pids $sampler"
http POST '/v1/reconcile?wait=900' -H "Authorization: Bearer $HTTP_TOKEN"
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
head -n -1 "$work/samples" | awk '{ print $2 }' > "$work/lat"
echo "    during a converge updating $WORKERS workers ($(json 'd["duration_sec"]') s, $(json 'd["n_writes"]') writes," \
	"result $(json 'd["result"]')): $(wc -l < "$work/lat") GET /v1/status, p99 $(p99_ms < "$work/lat") ms," \
	"max $(max_ms < "$work/lat") ms (load average $(loadavg))"
check "every status request during the converge answered 200" [ -z "$(head -n -1 "$work/samples" | grep -v '^200 ')" ]
small=$(head -n -1 "$work/samples" | awk -v f="$bytes" '$3 < f / 2' | wc -l)
check "every answer during the converge carried the full body (none under half of $bytes bytes: $small)" [ "$small" = 0 ]
finish
