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
 * "since=<rfc3339>&before=<rfc3339>&limit=1000", and with
 * exclude_token_id (may be NULL) "&actor_token_id.not=<id>": the entries
 * of that API token left out, in the form SDK 6.5 sends
 * `actor_token_id: { not: [id] }` (allowDots, arrayFormat repeat).
 * Returns 0 or -ENOMEM. */
int cfreq_audit_query(uint64_t since_usec, uint64_t before_usec, const char *exclude_token_id, char **ret);

/* ---- request bodies ----
 *
 * Each builds the JSON apply sends, from the spec's types; a secret value
 * never enters json-c (cfreq_secret_json writes it into a buffer of its
 * own). The json_object builders return a new object or NULL (out of
 * memory). */

/* The resolved target of one binding (plan_resolve_binding): the id or
 * name to send, and a Secrets Store secret's store. */
typedef struct CfBindingTarget {
        const char *value;
        const char *store;
} CfBindingTarget;

/* The Durable Object migration an upload carries. */
typedef struct CfMigration {
        const char *old_tag;
        const char *new_tag;
        /* Classes to create at once (the tag moved on Cloudflare's side),
         * sqlite or not as the spec declares them; NULL: the spec's
         * steps after old_tag. */
        char * const *auto_new_classes;
} CfMigration;

/* The metadata part of a worker upload: main module, bindings (targets[i]
 * is binding i's; secrets go through the secrets API and are kept by
 * keep_bindings), compatibility, tags, logpush, observability and, with
 * mig, the migration. NULL with *reterr set when a binding's target is
 * unresolved, NULL alone when out of memory. */
json_object *cfreq_worker_metadata(const Generation *g, const Worker *w, const CfBindingTarget *targets,
                                   const CfMigration *mig, char **reterr);
/* Bindings the spec dropped that an upload keeps as they are ("inherit"),
 * appended to the metadata's bindings. Returns 0 or -ENOMEM. */
int cfreq_metadata_inherit(json_object *meta, char * const *names);

/* The create body of a data resource (KV title, R2 name and hints, D1
 * name and location, queue name and settings, store name): 0, -ENOMEM, or
 * -EOPNOTSUPP for a kind created otherwise (workers, store secrets). */
int cfreq_create_body(ResourceKind k, const char *name, const void *desired, json_object **ret);
/* The update body: a KV namespace's title, a queue's settings;
 * -EOPNOTSUPP for a kind with nothing to update this way. */
int cfreq_update_body(ResourceKind k, const char *name, const void *desired, json_object **ret);
/* The header an R2 request in a jurisdiction carries
 * ("cf-r2-jurisdiction: eu"); *ret NULL without one. 0 or -ENOMEM. */
int cfreq_r2_jurisdiction_header(const char *jurisdiction, char **ret);

/* A Secrets Store secret without its value: name (create only), scopes
 * (default "workers"), comment. */
json_object *cfreq_store_secret_body(const SecretsStoreSecret *s, const char *name);
/* A worker secret without its value: name and type secret_text. */
json_object *cfreq_worker_secret_body(const char *name);
/* The cron triggers: the spec's, then those kept until the spec settles. */
json_object *cfreq_schedules_body(char * const *crons, char * const *kept);
json_object *cfreq_subdomain_body(bool enabled);
/* A worker consumer of a queue with its settings. */
json_object *cfreq_consumer_body(const char *script, const QueueConsumer *qc);

/* The JSON text {key: value, <the members of rest>}, in [ ] with array,
 * built in one buffer from secret_malloc, sized once so no realloc
 * leaves a copy of value behind. The caller wipes it:
 * erase_and_free(*ret, *ret_cap). Returns 0 or -ENOMEM. */
int cfreq_secret_json(json_object *rest, const char *key, const char *value, bool array, char **ret,
                      size_t *ret_size, size_t *ret_cap);

/* ---- answers ---- */

/* The id a create answered, or a listing holds, for an object of kind
 * k: KV "id", R2 its name, D1 "uuid" (else "id"), queue "queue_id" (else
 * "id"), a store or store secret the "id" of the (first) object. NULL
 * when there is none. */
const char *cfreq_created_id(ResourceKind k, const char *name, json_object *result);
/* The store of a created Secrets Store secret (its "store_id"), or NULL. */
const char *cfreq_created_store_id(json_object *result);
/* The member naming a listed object of kind k ("title", "queue_name",
 * else "name"). */
const char *cfreq_name_key(ResourceKind k) _pure_;
/* The object of kind k named name in a listing (the last one, as
 * Cloudflare lists a name once), or NULL. */
json_object *cfreq_find_listed(ResourceKind k, json_object *items, const char *name);

/* What bindery records of an upload's answer (pointers into result). */
typedef struct CfUploadAnswer {
        const char *etag;
        const char *modified_on;
        const char *migration_tag;
} CfUploadAnswer;

void cfreq_upload_answer(json_object *result, CfUploadAnswer *ret);
