/* cfreq.h: every Cloudflare path bindery requests, in one table.
 *
 * Observe, apply and the engine name a path by its CfPath and hand the
 * variable segments (script, namespace id, queue id, ...) to cfreq_path,
 * which escapes each one (cfapi_escape); no other module spells a
 * Cloudflare path or escapes a segment itself. cfapi stays the transport: it prefixes
 * accounts/{account_id}/ and sends. Pure: no I/O, no state. */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef enum CfPath {
        CF_PATH_SCRIPTS,            /* workers/scripts */
        CF_PATH_SCRIPT,             /* workers/scripts/{script} */
        CF_PATH_SCRIPT_DEPLOYMENTS, /* workers/scripts/{script}/deployments */
        CF_PATH_SCRIPT_SCHEDULES,   /* workers/scripts/{script}/schedules */
        CF_PATH_SCRIPT_SUBDOMAIN,   /* workers/scripts/{script}/subdomain */
        CF_PATH_SCRIPT_SETTINGS,    /* workers/scripts/{script}/settings */
        CF_PATH_SCRIPT_SECRETS,     /* workers/scripts/{script}/secrets */
        CF_PATH_SCRIPT_SECRET,      /* workers/scripts/{script}/secrets/{name} */
        CF_PATH_SCRIPT_VERSION,     /* workers/scripts/{script}/versions/{id} */
        CF_PATH_KV_NAMESPACES,      /* storage/kv/namespaces */
        CF_PATH_KV_NAMESPACE,       /* storage/kv/namespaces/{id} */
        CF_PATH_R2_BUCKETS,         /* r2/buckets */
        CF_PATH_R2_BUCKET,          /* r2/buckets/{name} */
        CF_PATH_D1_DATABASES,       /* d1/database */
        CF_PATH_D1_DATABASE,        /* d1/database/{id} */
        CF_PATH_QUEUES,             /* queues */
        CF_PATH_QUEUE,              /* queues/{id} */
        CF_PATH_QUEUE_CONSUMERS,    /* queues/{id}/consumers */
        CF_PATH_QUEUE_CONSUMER,     /* queues/{id}/consumers/{consumer} */
        CF_PATH_STORES,             /* secrets_store/stores */
        CF_PATH_STORE,              /* secrets_store/stores/{id} */
        CF_PATH_STORE_SECRETS,      /* secrets_store/stores/{id}/secrets */
        CF_PATH_STORE_SECRET,       /* secrets_store/stores/{id}/secrets/{secret} */
        CF_PATH_AUDIT,              /* logs/audit */
        CF_PATH_TOKEN_VERIFY,       /* /user/tokens/verify (not below the account) */
        _CF_PATH_MAX,
        _CF_PATH_INVALID = -EINVAL,
} CfPath;

/* The template, "{}" standing for each segment cfreq_path fills in; for
 * a path without segments, the path itself. */
const char *cfreq_template(CfPath p) _pure_;

/* How many segments the template takes. */
unsigned cfreq_segments(CfPath p) _pure_;

/* Builds the path: as many const char * segments as cfreq_segments(p),
 * each URL-escaped (NULL counts as ""). Returns 0 or -ENOMEM. */
int cfreq_path(char **ret, CfPath p, ...);

/* The list/create path and the one-resource path of a kind
 * (_CF_PATH_INVALID for none). */
CfPath cfreq_collection(ResourceKind k) _pure_;
CfPath cfreq_item(ResourceKind k) _pure_;

/* The API token permission a request needs, from its path anywhere in
 * text (e.g. "GET storage/kv/namespaces: HTTP 403: …"), or NULL. */
const char *cfreq_permission(const char *text) _pure_;

/* Audit Logs v2 wants both ends of the window:
 * "since=<rfc3339>&before=<rfc3339>&limit=1000". Returns 0 or -ENOMEM. */
int cfreq_audit_query(uint64_t since_usec, uint64_t before_usec, char **ret);
