/* model.h: the desired state of an account, as one immutable generation.
 *
 * The spec loader (spec.c) builds a Generation from a directory of YAML
 * files; the planner (plan.c) compares it with observed state. Plain
 * visible structs: this is data, not an object with behaviour. Every
 * string is owned by the Generation and freed by generation_free().
 *
 * Names: every resource document has a `name`, unique per kind within the
 * generation, which other documents use to refer to it. The name
 * Cloudflare sees is a separate field (KV title, bucket name, database
 * name, queue name, store name, script name), defaulting to `name`.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "cleanup.h"

/* Where a value came from, for error messages: FILE is relative to the
 * spec directory, line and column count from 1 (0: unknown). */
typedef struct Location {
        const char *file; /* points into Generation.files[] */
        unsigned line;
        unsigned column;
} Location;

typedef enum ResourceKind {
        RESOURCE_WORKER,
        RESOURCE_KV_NAMESPACE,
        RESOURCE_R2_BUCKET,
        RESOURCE_D1_DATABASE,
        RESOURCE_QUEUE,
        RESOURCE_SECRETS_STORE,
        RESOURCE_SECRETS_STORE_SECRET,
        _RESOURCE_KIND_MAX,
        _RESOURCE_KIND_INVALID = -EINVAL,
} ResourceKind;

/* "Worker", "KVNamespace", ... as written in the spec's `kind:`. */
const char *resource_kind_to_string(ResourceKind k) _pure_;
ResourceKind resource_kind_from_string(const char *s) _pure_;
/* KV, R2, D1 and Queues hold data: never deleted without an explicit,
 * recorded deletion_policy: delete. */
bool resource_kind_is_data(ResourceKind k) _pure_;

typedef enum DeletionPolicy {
        DELETION_RETAIN,   /* default for data resources */
        DELETION_DELETE,
        _DELETION_POLICY_MAX,
        _DELETION_POLICY_INVALID = -EINVAL,
} DeletionPolicy;

typedef enum DriftPolicy {
        DRIFT_REPAIR,      /* default */
        DRIFT_REPORT,      /* record drift, write nothing */
        _DRIFT_POLICY_MAX,
        _DRIFT_POLICY_INVALID = -EINVAL,
} DriftPolicy;

const char *deletion_policy_to_string(DeletionPolicy p) _pure_;
DeletionPolicy deletion_policy_from_string(const char *s) _pure_;
const char *drift_policy_to_string(DriftPolicy p) _pure_;
DriftPolicy drift_policy_from_string(const char *s) _pure_;

/* Per-resource policy, common to every kind. */
typedef struct ResourcePolicy {
        bool adopt;                 /* take ownership of a same-named existing resource */
        bool external;              /* bound by name or id, never created/updated/deleted */
        bool suspend;               /* skip this resource in reconciles */
        bool deletion_explicit;     /* deletion_policy was written in the spec */
        DeletionPolicy deletion;    /* default: RETAIN for data, DELETE for workers */
        DriftPolicy drift;
} ResourcePolicy;

/* A reference to a secret value; the loader checks its form only and
 * never reads the value. The value is read at apply time (secrets.c). */
typedef enum SecretSource {
        SECRET_SOURCE_CREDENTIAL,   /* $CREDENTIALS_DIRECTORY/NAME */
        SECRET_SOURCE_FILE,         /* a path; relative paths resolved against the spec file */
        SECRET_SOURCE_ENV,          /* an environment variable */
        _SECRET_SOURCE_MAX,
        _SECRET_SOURCE_INVALID = -EINVAL,
} SecretSource;

typedef struct SecretRef {
        SecretSource source;
        char *ref;                  /* credential name, absolute path, or variable name */
} SecretRef;

const char *secret_source_to_string(SecretSource s) _pure_;
/* "credential:api-key", "file:/etc/x", "env:VAR": what status shows. Caller frees. */
char *secret_ref_to_string(const SecretRef *s);

/* ---- Resource documents (besides Worker) ---- */

typedef struct KVNamespace {
        char *name;
        char *title;                /* Cloudflare title; default name */
        char *id;                   /* set for external references by id */
        ResourcePolicy policy;
        Location loc;
} KVNamespace;

typedef struct R2Bucket {
        char *name;
        char *bucket_name;          /* default name */
        char *jurisdiction;         /* NULL (default), "eu", "fedramp" */
        char *location_hint;        /* NULL or apac|eeur|enam|weur|wnam|oc */
        char *storage_class;        /* NULL, "Standard", "InfrequentAccess" */
        ResourcePolicy policy;
        Location loc;
} R2Bucket;

typedef struct D1Database {
        char *name;
        char *database_name;        /* default name */
        char *id;                   /* external by id */
        char *location_hint;
        char *jurisdiction;
        ResourcePolicy policy;
        Location loc;
} D1Database;

typedef struct Queue {
        char *name;
        char *queue_name;           /* default name */
        char *id;                   /* external by id */
        int64_t delivery_delay;     /* seconds; -1 unset */
        int64_t message_retention_period; /* seconds; -1 unset */
        ResourcePolicy policy;
        Location loc;
} Queue;

typedef struct SecretsStore {
        char *name;
        char *store_name;           /* the store's Cloudflare name; default name */
        char *id;                   /* external by id */
        bool is_default;            /* `default: true`: bindings may omit the store */
        ResourcePolicy policy;      /* external unless `managed: true` in the spec */
        Location loc;
} SecretsStore;

typedef struct SecretsStoreSecret {
        char *name;
        char *store;                /* SecretsStore document name (default store if omitted) */
        char *secret_name;          /* name inside the store; default name */
        SecretRef value;
        char **scopes;              /* default {"workers"} */
        char *comment;
        ResourcePolicy policy;
        Location loc;
} SecretsStoreSecret;

/* ---- Workers ---- */

typedef enum BindingKind {
        BINDING_PLAIN_TEXT,
        BINDING_JSON,
        BINDING_SECRET,             /* secret_text, sent through the secrets API */
        BINDING_KV_NAMESPACE,
        BINDING_R2_BUCKET,
        BINDING_D1,
        BINDING_DURABLE_OBJECT,
        BINDING_QUEUE,              /* producer */
        BINDING_SERVICE,
        BINDING_SECRETS_STORE_SECRET,
        BINDING_ANALYTICS_ENGINE,
        BINDING_AI,
        BINDING_VERSION_METADATA,
        BINDING_HYPERDRIVE,
        BINDING_VECTORIZE,
        BINDING_BROWSER,
        BINDING_WORKFLOW,
        _BINDING_KIND_MAX,
        _BINDING_KIND_INVALID = -EINVAL,
} BindingKind;

/* The Cloudflare metadata `type` ("plain_text", "kv_namespace", "d1", ...),
 * from the binding-kind table (binding-kinds.c). */
const char *binding_kind_to_api_type(BindingKind k) _pure_;
BindingKind binding_kind_from_api_type(const char *s) _pure_;

/* One binding. Which fields are set depends on kind; unset fields are NULL.
 *   PLAIN_TEXT           text
 *   JSON                 json (canonical JSON text: sorted keys, no spaces)
 *   SECRET               secret
 *   KV_NAMESPACE         target (KVNamespace doc) or target_id (namespace id)
 *   R2_BUCKET            target (R2Bucket doc) or target_id (bucket name), jurisdiction
 *   D1                   target (D1Database doc) or target_id (database uuid)
 *   QUEUE                target (Queue doc) or target_id (queue name)
 *   DURABLE_OBJECT       class_name, script_name (NULL: this worker), environment
 *   SERVICE              service, environment, entrypoint
 *   SECRETS_STORE_SECRET target (SecretsStoreSecret doc) or store + secret_name
 *                        (store: SecretsStore doc name; NULL: default store)
 *   ANALYTICS_ENGINE     dataset
 *   HYPERDRIVE           target_id (config id)
 *   VECTORIZE            index_name
 *   WORKFLOW             workflow_name, class_name, script_name
 *   AI, VERSION_METADATA, BROWSER: nothing else
 */
typedef struct Binding {
        char *name;                 /* the JS variable; unique per worker */
        BindingKind kind;
        char *text;
        char *json;
        SecretRef secret;
        char *target;
        char *target_id;
        char *jurisdiction;
        char *class_name;
        char *script_name;
        char *environment;
        char *service;
        char *entrypoint;
        char *store;
        char *secret_name;
        char *dataset;
        char *index_name;
        char *workflow_name;
        Location loc;
} Binding;

typedef enum ModuleType {
        MODULE_ESM,                 /* application/javascript+module */
        MODULE_COMMONJS,            /* application/javascript */
        MODULE_WASM,                /* application/wasm */
        MODULE_TEXT,                /* text/plain */
        MODULE_DATA,                /* application/octet-stream */
        MODULE_SOURCE_MAP,          /* application/source-map */
        _MODULE_TYPE_MAX,
        _MODULE_TYPE_INVALID = -EINVAL,
} ModuleType;

const char *module_type_to_content_type(ModuleType t) _pure_;
const char *module_type_to_string(ModuleType t) _pure_;  /* "esm", "wasm", ... */
ModuleType module_type_from_string(const char *s) _pure_;

typedef struct Module {
        char *name;                 /* module name as uploaded (path relative to the main module's dir) */
        char *path;                 /* absolute path on disk */
        ModuleType type;
        uint64_t size;
        char sha256[65];            /* content digest, part of the generation digest */
        Location loc;
} Module;

typedef struct RenamedClass {
        char *from;
        char *to;
} RenamedClass;

/* One step of a Durable Object migration history, as written in the spec.
 * Steps are applied in order; a worker's ledger in state records which
 * tags were applied. */
typedef struct MigrationStep {
        char *tag;
        char **new_classes;
        char **new_sqlite_classes;
        RenamedClass *renamed_classes;
        size_t n_renamed_classes;
        char **deleted_classes;
        Location loc;
} MigrationStep;

typedef struct DurableObjectClass {
        char *class_name;
        bool sqlite;                /* storage: sqlite (default) or kv */
        Location loc;
} DurableObjectClass;

typedef struct QueueConsumer {
        char *queue;                /* Queue document name */
        char *queue_id;             /* or an external queue by name (target_id semantics) */
        int64_t batch_size;         /* -1 unset */
        int64_t max_retries;
        int64_t max_wait_time_ms;
        int64_t max_concurrency;
        int64_t retry_delay;
        char *dead_letter_queue;    /* queue name */
        Location loc;
} QueueConsumer;

typedef struct Observability {
        bool set;                   /* the spec has an observability block */
        bool enabled;
        double head_sampling_rate;  /* -1 unset */
        bool logs_set;
        bool logs_enabled;
        bool logs_invocation_logs;
} Observability;

typedef struct Worker {
        char *name;                 /* document name = script name */
        char *main_module;          /* module name of the entry (a key into modules[]) */
        Module *modules;            /* modules[0] is main */
        size_t n_modules;
        char *compatibility_date;   /* YYYY-MM-DD */
        char **compatibility_flags; /* sorted, unique */
        Binding *bindings;          /* sorted by name */
        size_t n_bindings;
        char **crons;               /* sorted, unique; NULL: none */
        int workers_dev;            /* -1 unset (leave alone), 0 off, 1 on */
        QueueConsumer *consumers;
        size_t n_consumers;
        DurableObjectClass *do_classes;
        size_t n_do_classes;
        MigrationStep *migrations;
        size_t n_migrations;
        char **tags;                /* sorted, unique */
        Observability observability;
        bool logpush;
        ResourcePolicy policy;
        char digest[65];            /* SHA-256 over the canonical worker (modules, bindings, settings) */
        char source_key[65];        /* spec_reload(): SHA-256 of directory, file, document as written; "" none */
        Location loc;
        /* Cache of plan_worker_digest() for a loaded generation: the
         * SHA-256 state after the worker's own part, which does not
         * change while the generation lives (a Sha256, util.h). */
        void *upload_prefix;
        /* ... and of its last result: the resolved binding targets it
         * came from (plan.c worker_digest_key), the digest, unresolved. */
        char *digest_key;
        char digest_cached[65];
        bool digest_unresolved;
} Worker;

/* One validated generation. Immutable once built. */
typedef struct Generation {
        char *spec_dir;             /* absolute */
        char digest[65];            /* SHA-256 over every YAML file and referenced module */
        char **files;               /* YAML files read, relative to spec_dir, sorted */
        uint64_t loaded_usec;       /* CLOCK_REALTIME when loaded */

        Worker *workers;
        size_t n_workers;
        KVNamespace *kv_namespaces;
        size_t n_kv_namespaces;
        R2Bucket *r2_buckets;
        size_t n_r2_buckets;
        D1Database *d1_databases;
        size_t n_d1_databases;
        Queue *queues;
        size_t n_queues;
        SecretsStore *secrets_stores;
        size_t n_secrets_stores;
        SecretsStoreSecret *secrets_store_secrets;
        size_t n_secrets_store_secrets;
        const SecretsStore *default_store; /* NULL: none named */
        bool sorted;                /* the arrays are in name order (spec_finalize_generation):
                                     * lookups by name are binary searches */
} Generation;

Generation *generation_free(Generation *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(Generation *, generation_free);

/* Lookups by document name; NULL if absent. */
const Worker *generation_find_worker(const Generation *g, const char *name);
const KVNamespace *generation_find_kv(const Generation *g, const char *name);
const R2Bucket *generation_find_r2(const Generation *g, const char *name);
const D1Database *generation_find_d1(const Generation *g, const char *name);
const Queue *generation_find_queue(const Generation *g, const char *name);
const SecretsStore *generation_find_store(const Generation *g, const char *name);
const SecretsStoreSecret *generation_find_store_secret(const Generation *g, const char *name);
/* The document of kind k named name (a Worker, KVNamespace, ...), or NULL. */
const void *generation_find_doc(const Generation *g, ResourceKind k, const char *name);

/* Canonical JSON of one worker and of a whole generation: fixed key order,
 * arrays in the generation's (sorted) order, modules by name, type and
 * SHA-256 (never their paths), secrets only as references. Worker.digest
 * and Generation.digest are SHA-256 over these texts (printed with
 * JSON_C_TO_STRING_PLAIN), so equal specs give equal digests. New
 * reference; NULL on OOM. */
json_object *worker_to_json(const Worker *w);
json_object *generation_to_json(const Generation *g);
/* To f, the bytes json_object_to_json_string_ext(generation_to_json(g'),
 * flags) gives for g' = g without its workers, one resource at a time
 * (at 10,000 KV namespaces the tree was megabytes of json-c tables).
 * 0, or -ENOMEM. */
int generation_rest_to_text(const Generation *g, int flags, FILE *f);
