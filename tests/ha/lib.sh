# tests/ha/lib.sh: shared by the high-availability tests (sourced). Starts
# a 3-member etcd cluster (Debian's etcd-server), one cfsim and up to three
# binderyd hosts on loopback with free ports in a private temporary
# directory; every process started is stopped by the EXIT trap, every
# wait is bounded. Skips (77), saying why, without etcd, curl or jq.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
# ok/fail/check/finish, setup (work dir, credentials), start_cfsim, sim_state.
. "$top_srcdir/tests/daemon/lib.sh"
ETCD=${ETCD:-$(command -v etcd || echo /usr/bin/etcd)}
TTL=${HA_TTL:-2}

# A stopped (SIGSTOP) process ignores SIGTERM: continue, then kill.
cleanup() {
	local p
	for p in $pids; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}

ha_setup() {
	[ -x "$ETCD" ] || skip_all "etcd is not installed (Debian package etcd-server)"
	command -v jq >/dev/null || skip_all "jq is not installed"
	command -v python3 >/dev/null || skip_all "python3 is not installed"
	setup
}

# free_ports N: N distinct free loopback ports, one per line (held open
# together while chosen, so they differ).
free_ports() {
	python3 -c '
import socket, sys
s = []
for _ in range(int(sys.argv[1])):
    x = socket.socket(); x.bind(("127.0.0.1", 0)); s.append(x)
for x in s: print(x.getsockname()[1])
' "$1"
}

setup() {
	[ -x "$BINDERYD" ] || skip_all "$BINDERYD is not built"
	[ -x "$CFSIM" ] || skip_all "cfsim ($CFSIM) is not built"
	[ -x "$ETCD" ] || skip_all "etcd is not installed (Debian package etcd-server)"
	command -v curl >/dev/null || skip_all "curl is not installed"
	command -v jq >/dev/null || skip_all "jq is not installed"
	command -v python3 >/dev/null || skip_all "python3 is not installed"
	work=$(mktemp -d "${TMPDIR:-/tmp}/bindery-ha.XXXXXX")
	trap cleanup EXIT
	mkdir -p "$work/spec" "$work/creds"
	chmod 0700 "$work/creds"
	API_TOKEN=cf-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	HTTP_TOKEN=http-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf '%s' "$API_TOKEN" > "$work/creds/cloudflare-api-token"
	printf '%s\n' "$HTTP_TOKEN" > "$work/creds/http-token"
	chmod 0600 "$work/creds/"*
}

# start_etcd: a 3-member cluster; ETCD_URLS (YAML list), ETCD_EP[1..3],
# ETCD_PID[1..3].
start_etcd() {
	local ports i cluster=""
	ports=($(free_ports 6))
	for i in 1 2 3; do
		ETCD_EP[$i]=http://127.0.0.1:${ports[$((2 * i - 2))]}
		ETCD_PEER[$i]=http://127.0.0.1:${ports[$((2 * i - 1))]}
		cluster="$cluster${cluster:+,}e$i=${ETCD_PEER[$i]}"
	done
	ETCD_CLUSTER=$cluster
	for i in 1 2 3; do start_etcd_member "$i" new; done
	ETCD_URLS="[${ETCD_EP[1]}, ${ETCD_EP[2]}, ${ETCD_EP[3]}]"
	for i in $(seq 200); do
		etcd_healthy 1 && etcd_healthy 2 && etcd_healthy 3 && return 0
		sleep 0.05
	done
	cat "$work"/etcd*.log | tail -20
	echo "etcd cluster did not become healthy"
	exit 1
}

# start_etcd_member I new|existing
start_etcd_member() {
	local i=$1
	"$ETCD" --name "e$i" --data-dir "$work/etcd$i" \
		--listen-client-urls "${ETCD_EP[$i]}" --advertise-client-urls "${ETCD_EP[$i]}" \
		--listen-peer-urls "${ETCD_PEER[$i]}" --initial-advertise-peer-urls "${ETCD_PEER[$i]}" \
		--initial-cluster "$ETCD_CLUSTER" --initial-cluster-state "$2" --initial-cluster-token "bindery-ha-$$" \
		--heartbeat-interval 50 --election-timeout 500 --log-level error >> "$work/etcd$i.log" 2>&1 &
	ETCD_PID[$i]=$!
	pids="$pids $!"
}

stop_etcd_member() {
	kill -KILL "${ETCD_PID[$1]}" 2>/dev/null
	wait "${ETCD_PID[$1]}" 2>/dev/null
}

etcd_healthy() {
	curl -fs -m 1 "${ETCD_EP[$1]}/health" 2>/dev/null | grep -q '"health":"true"'
}

# host_config NAME [extra ha: lines...]: $work/NAME/binderyd.yaml on a
# free port (PORT_NAME), its own state directory, the shared spec (or
# $SPEC_NAME).
host_config() {
	local name=$1 port; shift
	port=$(free_ports 1)
	eval "PORT_$name=$port"
	mkdir -p "$work/$name/state"
	{
		echo "account_id: $ACCOUNT"
		echo "api_url: $SIM/client/v4"
		eval "echo \"spec_dir: \${SPEC_$name:-$work/spec}\""
		echo "state_dir: $work/$name/state"
		echo "listen: 127.0.0.1:$port"
		echo "http_token: { credential: http-token }"
		echo "interval: 10m"
		echo "prune_settle: 0s"
		echo "ha:"
		echo "  etcd: $ETCD_URLS"
		echo "  name: $name"
		echo "  advertise_url: http://127.0.0.1:$port"
		echo "  lease_ttl: ${TTL}s"
		for l in "$@"; do echo "  $l"; done
	} > "$work/$name/binderyd.yaml"
}

# start_host NAME: starts binderyd NAME (its config first); PID_NAME.
start_host() {
	local name=$1 pid port i
	CREDENTIALS_DIRECTORY="$work/creds" "$BINDERYD" --config "$work/$name/binderyd.yaml" \
		>> "$work/$name/binderyd.log" 2>&1 &
	pid=$!
	pids="$pids $pid"
	eval "PID_$name=$pid"
	eval "port=\$PORT_$name"
	for i in $(seq 200); do curl -fs -m 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
	cat "$work/$name/binderyd.log"
	echo "binderyd $name did not start"
	exit 1
}

# host_status NAME: GET /v1/status of NAME into $BODY ("" if down).
host_status() {
	local port
	eval "port=\$PORT_$1"
	BODY=$(curl -s -m 2 "http://127.0.0.1:$port/v1/status" 2>/dev/null)
}

# role NAME: leader, follower, or down.
role() {
	host_status "$1"
	[ -n "$BODY" ] || { echo down; return; }
	printf '%s' "$BODY" | jq -r '.ha.role // "none"'
}

# wait_role NAME ROLE SECONDS: polls every 50 ms, bounded.
wait_role() {
	local i n=$(($3 * 20))
	for i in $(seq "$n"); do [ "$(role "$1")" = "$2" ] && return 0; sleep 0.05; done
	return 1
}

# wait_leader_known NAME SECONDS: NAME's status names a leader (a
# follower learns it at its first leader look-up).
wait_leader_known() {
	local i n=$(($2 * 20))
	for i in $(seq "$n"); do
		host_status "$1"
		[ "$(printf '%s' "$BODY" | jq -r '.ha.leader_url != null')" = true ] && return 0
		sleep 0.05
	done
	return 1
}

# leaders NAMES...: how many of them say they lead.
leaders() {
	local n=0 h
	for h in "$@"; do [ "$(role "$h")" = leader ] && n=$((n + 1)); done
	echo "$n"
}

# sim_requests: cfsim's request log (oldest first).
sim_requests() { curl -s "$SIM/__sim/requests"; }
# writes_by AGENT_NAME: writes (non-GET) cfsim saw from binderyd on that host.
writes_by() {
	sim_requests | jq --arg ua "($1)" '[.requests[] | select(.method != "GET" and (.user_agent | endswith($ua)))] | length'
}
kv_titles() { sim_state | jq -r '[.kv[].title] | sort | join(",")'; }
no_duplicates() {
	local s
	s=$(sim_state)
	[ "$(echo "$s" | jq '[.kv[].title] | length')" = "$(echo "$s" | jq '[.kv[].title] | unique | length')" ]
}

# spec_kv NAMES...: the spec is exactly these KV namespaces. No adopt: a
# new leader knows what another host created from the ledger in etcd.
spec_kv() {
	local n
	: > "$work/spec/kv.yaml.tmp"
	for n in "$@"; do printf -- '---\nkind: KVNamespace\nname: %s\n' "$n" >> "$work/spec/kv.yaml.tmp"; done
	mv "$work/spec/kv.yaml.tmp" "$work/spec/kv.yaml"
}

# last_run_done NAME: the host's last finished run as "RESULT GENERATION".
last_run() {
	host_status "$1"
	printf '%s' "$BODY" | jq -r '(.last_run.result // "none") + " " + (.last_run.trigger // "")'
}

# spec_workers N TAG: N workers, each bound to its own KV namespace, with
# TAG in a plain variable (a new TAG updates every worker).
spec_workers() {
	local n=$1 tag=$2 i
	mkdir -p "$work/spec/b"
	echo 'export default { fetch() { return new Response("w"); } };' > "$work/spec/b/index.js"
	for i in $(seq -w 1 "$n"); do
		printf -- '---\nkind: KVNamespace\nname: kv-w%s\n' "$i"
		printf -- '---\nkind: Worker\nname: w%s\nmain: b/index.js\ncompatibility_date: "2025-06-01"\n' "$i"
		printf 'bindings:\n  STAGE: %s\n  CACHE: { kv_namespace: kv-w%s }\n' "$tag" "$i"
	done > "$work/spec/workers.yaml.tmp"
	mv "$work/spec/workers.yaml.tmp" "$work/spec/workers.yaml"
}

# etcd_clear_ledger: deletes every key under the prefix (between trials,
# with every host stopped: a killed leader's key goes too, harmlessly).
etcd_clear_ledger() {
	local p end
	p=/bindery/$ACCOUNT/
	end=$(printf '%s' "${p%/}0" | base64 -w0)
	curl -s -m 5 "${ETCD_EP[1]}/v3/kv/deleterange" \
		-d "{\"key\": \"$(printf '%s' "$p" | base64 -w0)\", \"range_end\": \"$end\"}" >/dev/null
}

# election_names: the hosts (campaign value "name") holding a key in the
# election now, leader and candidates, one per line (etcd's v3 range).
election_names() {
	local p
	p=/bindery/$ACCOUNT/election/
	curl -s -m 5 "${ETCD_EP[1]}/v3/kv/range" -d "{\"key\": \"$(printf '%s' "$p" | base64 -w0)\",
		\"range_end\": \"$(printf '%s' "${p%/}0" | base64 -w0)\"}" |
		jq -r '.kvs // [] | .[].value | @base64d | fromjson | .name'
}

# stop_host NAME: kill -9 and reap.
stop_host() {
	local pid
	eval "pid=\$PID_$1"
	kill -KILL "$pid" 2>/dev/null
	{ wait "$pid"; } 2>/dev/null
}

# host_idle NAME: it leads and has no current or pending run.
host_idle() {
	host_status "$1"
	[ "$(printf '%s' "$BODY" | jq -r '.ha.role == "leader" and .current_run == null and .pending_run == null and .last_run != null')" = true ]
}
