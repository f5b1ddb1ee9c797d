#!/usr/bin/env bash
# tests/ha/ha-tls.sh: binderyd against an etcd that demands TLS with
# client certificates and user/password auth (issue 11): with the right
# CA, certificate, key and password the host leads and reconciles; with a
# wrong password it never leads, its status says why, and the password is
# in no log. Certificates are made here with openssl; etcd listens on a
# free loopback port. Skips (77) without openssl or etcdctl.
set -u
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || skip_all "openssl is not installed"
command -v etcdctl >/dev/null || skip_all "etcdctl is not installed (Debian package etcd-client)"
ha_setup
start_cfsim
t=$work/tls
mkdir -p "$t"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
mkcert() { # NAME SUBJECT EXT
	openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$t/$1.key" -out "$t/$1.csr" 2>/dev/null
	printf '%s\n' "$3" > "$t/$1.ext"
	openssl x509 -req -in "$t/$1.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -days 2 \
		-extfile "$t/$1.ext" -out "$t/$1.pem" 2>/dev/null
}
mkcert server /CN=server "subjectAltName=IP:127.0.0.1"
# etcdctl's (gRPC): CN = the etcd user. binderyd's: no CN, since with auth
# on etcd's JSON gateway refuses a client certificate that has one.
mkcert admin /CN=root "extendedKeyUsage=clientAuth"
mkcert client /O=bindery "extendedKeyUsage=clientAuth"
chmod 0600 "$t"/*.key

ports=($(free_ports 2))
EP=https://127.0.0.1:${ports[0]}
"$ETCD" --name t --data-dir "$work/etcd" --listen-client-urls "$EP" --advertise-client-urls "$EP" \
	--listen-peer-urls "http://127.0.0.1:${ports[1]}" --initial-advertise-peer-urls "http://127.0.0.1:${ports[1]}" \
	--initial-cluster "t=http://127.0.0.1:${ports[1]}" --cert-file "$t/server.pem" --key-file "$t/server.key" \
	--trusted-ca-file "$t/ca.pem" --client-cert-auth --log-level error > "$work/etcd.log" 2>&1 &
pids="$pids $!"
ctl() { etcdctl --endpoints "$EP" --cacert "$t/ca.pem" --cert "$t/admin.pem" --key "$t/admin.key" "$@"; }
for i in $(seq 200); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.05; done
check "etcd with TLS and client certificates is up" ctl endpoint health
PW=pw-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
ctl user add "root:$PW" >/dev/null && ctl user grant-role root root >/dev/null && ctl auth enable >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$t/ca.pem" --cert "$t/client.pem" --key "$t/client.key" \
	"$EP/v3/kv/range" -d '{"key":"eA=="}')
check "etcd auth is on (a read without a token: HTTP $code)" [ "$code" != 200 ]
printf '%s' "$PW" > "$work/creds/etcd-password"
printf 'wrong-%s' "$PW" > "$work/creds/etcd-password-bad"
chmod 0600 "$work/creds/"*
ETCD_URLS="[$EP]"
spec_kv secure

host_config A "ca_file: $t/ca.pem" "cert_file: $t/client.pem" "key_file: $t/client.key" \
	"user: root" "password: { credential: etcd-password }"
host_config B "ca_file: $t/ca.pem" "cert_file: $t/client.pem" "key_file: $t/client.key" \
	"user: root" "password: { credential: etcd-password-bad }"
start_host B
start_host A
check "with CA, client certificate and password the host leads" wait_role A leader 10
for i in $(seq 200); do [ "$(kv_titles)" = secure ] && break; sleep 0.05; done
check "and reconciles" [ "$(kv_titles)" = secure ]
sleep $((TTL + 1))
check "with a wrong password the other never leads" [ "$(role B)" = follower ]
host_status B
check "its status says why ($(printf '%s' "$BODY" | jq -r .ha.reason))" \
	sh -c "printf '%s' '$(printf '%s' "$BODY" | jq -r .ha.reason)' | grep -qi 'auth'"
check "no password in any log" sh -c "! grep -rqF -e '$PW' '$work/A/binderyd.log' '$work/B/binderyd.log'"
finish
