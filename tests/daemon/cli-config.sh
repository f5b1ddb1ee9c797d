#!/bin/sh
# tests/daemon/cli-config.sh: the configuration commands.
#   - binderyd validate -c FILE: every config error as FILE:LINE:COLUMN,
#     then the spec directory it names (nginx -t style), exit codes;
#   - binderyd credentials -c FILE: every reference with where it is used,
#     and the LoadCredential= drop-in for what the unit does not load;
#   - binderyd plan after a spec change shows the old and new values
#     (observe reads the changed worker's live bindings), secrets only as
#     "(value changed)";
#   - a spec may not read the daemon's own secrets (a notify secret, by
#     credential name or by its file, even inside spec_files_dir): refused
#     at load with FILE:LINE:COLUMN.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

setup
small_spec production

# 1. validate -c
cat > "$work/bad.yaml" <<YAML
account_id: $ACCOUNT
spec_dir: spec
intervall: 5m
notify:
  - url: ftp://example.com/
    events: [failed, explode]
YAML
out=$(cd "$work" && "$BINDERYD" validate -c bad.yaml 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "validate -c a bad config: exit 1 ($rc)" [ "$rc" = 1 ]
check "validate -c: unknown key at FILE:LINE:COLUMN" grep -qx "bad.yaml:3:1: unknown key 'intervall'; did you mean 'interval'?" <<<"$out"
check "validate -c: bad notify url at FILE:LINE:COLUMN" grep -qx "bad.yaml:5:10: 'notify.url' must be an http:// or https:// URL" <<<"$out"
check "validate -c: bad event at FILE:LINE:COLUMN" grep -q "^bad.yaml:6:22: unknown notify event 'explode'" <<<"$out"

cat > "$work/good.yaml" <<YAML
account_id: $ACCOUNT
spec_dir: spec
http_token: { credential: http-token }
webhook_secret: { credential: hook-secret }
webhook_ref: refs/heads/main
notify:
  - url: https://hooks.example.com/bindery
    secret: { credential: notify-secret }
YAML
out=$(cd "$work" && "$BINDERYD" validate -c good.yaml 2>&1); rc=$?
check "validate -c a good config: exit 0 ($rc)" [ "$rc" = 0 ]
check "validate -c: says the config is OK" grep -q "^good.yaml: configuration OK (spec_dir $work/spec)" <<<"$out"
check "validate -c: then checks the spec and prints its digest" grep -q "^digest [0-9a-f]\{64\}$" <<<"$out"
out=$(cd "$work" && "$BINDERYD" validate -c good.yaml --json 2>&1)
check "validate -c --json: config and spec in one object" \
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["config"]["valid"] and d["valid"]' "$out"
echo 'kind: Worker' > "$work/spec/broken.yaml"
out=$(cd "$work" && "$BINDERYD" validate -c good.yaml 2>&1); rc=$?
check "validate -c with a broken spec: exit 1 ($rc), the spec error located" \
	[ "$rc" = 1 -a -n "$(grep 'broken.yaml:1:1:' <<<"$out")" ]
rm -f "$work/spec/broken.yaml"

# 2. credentials
printf '  API_KEY: { secret: { credential: api-key } }\n  OTHER: { secret: { env: OTHER_KEY } }\n' >> "$work/spec/workers/api.yaml"
out=$(cd "$work" && "$BINDERYD" credentials -c good.yaml 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "credentials: exit 0 ($rc)" [ "$rc" = 0 ]
dropin=$(sed -n '/^\[Service\]/,$p' <<<"$out")
want='[Service]
LoadCredential=hook-secret:/etc/bindery/hook-secret
LoadCredential=notify-secret:/etc/bindery/notify-secret
LoadCredential=api-key:/etc/bindery/api-key'
check "credentials: the drop-in loads exactly what the unit does not" [ "$dropin" = "$want" ]
check "credentials: the unit's own credentials are named as loaded" \
	grep -q "cloudflare-api-token .*api_token (default) \[binderyd.service loads it\]" <<<"$out"
check "credentials: the spec's reference with its file and line" \
	grep -q "api-key .*spec: Worker/api secret API_KEY (workers/api.yaml:8)" <<<"$out"
check "credentials: an env reference is named, not put in the drop-in" grep -q "env .*OTHER_KEY .*Environment=" <<<"$out"
out=$(cd "$work" && "$BINDERYD" credentials -c good.yaml --json)
check "credentials --json: references and the drop-in" \
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert len(d["references"]) == 6 and d["dropin"].startswith("[Service]") and d["unit"] == "binderyd.service"' "$out"
sed -i '/API_KEY\|OTHER/d' "$work/spec/workers/api.yaml"

# 3. The daemon's own secrets are not the spec's.
command -v python3 >/dev/null || skip_all "python3 is not installed"
start_cfsim
NOTIFY_SECRET=notify-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s' "$NOTIFY_SECRET" > "$work/creds/notify-secret"
chmod 0600 "$work/creds/notify-secret"
write_config "notify:" "  - url: http://127.0.0.1:9/x" "    secret: { credential: notify-secret }"
printf 'one-%s' "$NOTIFY_SECRET" > "$work/creds/api-key"
chmod 0600 "$work/creds/api-key"
printf '  API_KEY: { secret: { credential: api-key } }\n  LIMITS: { json: { rpm: 600 } }\n' >> "$work/spec/workers/api.yaml"
CREDENTIALS_DIRECTORY="$work/creds" "$BINDERYD" apply --config "$work/binderyd.yaml" >/dev/null 2>&1
sed -i 's/^  STAGE: .*/  STAGE: staging/; s/rpm: 600/rpm: 900/' "$work/spec/workers/api.yaml"
printf '  NEW_VAR: hello\n' >> "$work/spec/workers/api.yaml"
printf 'two-%s' "$NOTIFY_SECRET" > "$work/creds/api-key"
out=$(CREDENTIALS_DIRECTORY="$work/creds" "$BINDERYD" plan --config "$work/binderyd.yaml" 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "plan after a spec change: exit 2 ($rc)" [ "$rc" = 2 ]
check "plan: ~ STAGE with the live old value" grep -qx '    ~ STAGE: "production" -> "staging"' <<<"$out"
check "plan: ~ LIMITS (JSON) old -> new" grep -qx '    ~ LIMITS: {"rpm":600} -> {"rpm":900}' <<<"$out"
check "plan: + NEW_VAR" grep -qx '    + NEW_VAR: "hello"' <<<"$out"
check "plan: a rotated secret only as (value changed)" grep -qx '    ~ API_KEY: (value changed)' <<<"$out"
check "plan: no secret value" bash -c "! grep -q \"\$1\" <<<\"\$2\"" _ "$NOTIFY_SECRET" "$out"
out=$(CREDENTIALS_DIRECTORY="$work/creds" "$BINDERYD" plan --json --config "$work/binderyd.yaml" 2>/dev/null)
check "plan --json: before/after of STAGE" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
diff = [x for a in d["actions"] for x in a.get("diff", [])]
s = [x for x in diff if x["field"] == "STAGE"][0]
assert s["before"] == "\"production\"" and s["after"] == "\"staging\"", s
k = [x for x in diff if x["field"] == "API_KEY"][0]
assert k == {"op": "~", "field": "API_KEY", "secret": True, "value": "changed"}, k
' "$out"
sed -i '/API_KEY\|LIMITS\|NEW_VAR/d' "$work/spec/workers/api.yaml"
printf '  STOLEN: { secret: { credential: notify-secret } }\n  STOLEN2: { secret: { file: %s } }\n' \
	"$work/creds/notify-secret" >> "$work/spec/workers/api.yaml"
# Granting the credentials directory as spec_files_dir does not hand out
# the daemon's own files inside it.
write_config "notify:" "  - url: http://127.0.0.1:9/x" "    secret: { credential: notify-secret }" \
	"spec_files_dir: $work/creds"
out=$(CREDENTIALS_DIRECTORY="$work/creds" "$BINDERYD" plan --config "$work/binderyd.yaml" 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "plan with a spec reading a notify secret: refused at load (exit 1, got $rc)" [ "$rc" = 1 ]
check "by credential name: refused as the daemon's own, at FILE:LINE:COLUMN" \
	grep -q "workers/api.yaml:[0-9]*:[0-9]*: credential 'notify-secret' is one of the daemon's own secrets" <<<"$out"
check "by its file: refused too" \
	grep -q "workers/api.yaml:[0-9]*:[0-9]*: secret file '.*notify-secret' belongs to the daemon" <<<"$out"
check "the value never shows" bash -c "! grep -q \"\$1\" <<<\"\$2\"" _ "$NOTIFY_SECRET" "$out"
finish
