#!/bin/bash
# engine-r2-jurisdiction.sh: an R2 bucket in the eu jurisdiction (issue 8).
# Cloudflare lists, reads and deletes such a bucket only with the
# cf-r2-jurisdiction header; bindery used to send it on the create only,
# so the bucket was invisible, recreated on every run (409) and the second
# apply crashed (a use after free in apply.c). Now:
#   - apply twice, then plan exits 0 (the bucket is seen in its jurisdiction);
#   - removing it with deletion_policy: delete removes it (the DELETE carries
#     the header), leaving the default-jurisdiction bucket alone.
. "$(dirname "$0")/lib.sh"

start_cfsim
mkdir -p "$TMP/spec/b"
echo 'export default { fetch() { return new Response("r2"); } };' >"$TMP/spec/b/index.js"
buckets() { api GET r2/buckets "$@" | jq -r '[.result.buckets[]?.name] | sort | join(",")'; }

write_spec() {
        {
                cat <<'EOF'
kind: R2Bucket
name: plain
bucket_name: it-plain
---
kind: Worker
name: r2w
main: b/index.js
compatibility_date: "2025-06-01"
bindings:
  PLAIN: { r2_bucket: plain }
EOF
                if [ "$1" = with-eu ]; then
                        echo '  EU: { r2_bucket: eu-data }'
                        cat <<'EOF'
---
kind: R2Bucket
name: eu-data
bucket_name: it-eu-data
jurisdiction: eu
deletion_policy: delete
EOF
                fi
        } >"$TMP/spec/all.yaml"
}

write_spec with-eu
write_config "prune: true"
bd apply
check_eq "first apply exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output
check_eq "the eu bucket exists in eu" "$(buckets -H 'cf-r2-jurisdiction: eu')" "it-eu-data"
check_eq "and not in the default jurisdiction" "$(buckets)" "it-plain"

sim_reset_counters
bd apply
check_eq "second apply exits 0 (no crash, no 409)" "$RC" 0
[ "$RC" = 0 ] || show_output
check_eq "second apply writes nothing" "$(sim_writes)" 0
bd plan
check_eq "plan afterwards exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output
check_eq "still one eu bucket" "$(buckets -H 'cf-r2-jurisdiction: eu')" "it-eu-data"

# Removed with deletion_policy: delete recorded: deleted in its jurisdiction.
write_spec without-eu
bd apply
check_eq "apply without the eu bucket exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output
check_eq "the eu bucket is deleted" "$(buckets -H 'cf-r2-jurisdiction: eu')" ""
check_eq "the default bucket stays" "$(buckets)" "it-plain"
check "the DELETE carried the jurisdiction (no 404 left in the output)" \
        bash -c "! grep -qi 'not found' '$TMP/err'"
bd plan
check_eq "plan after the prune exits 0" "$RC" 0
[ "$RC" = 0 ] || show_output

finish
