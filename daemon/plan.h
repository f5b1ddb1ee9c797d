/* plan.h: the pure heart of a reconcile.
 *
 *   plan_compute(desired generation, observed live state, ownership ledger,
 *                policy) → an ordered list of actions with reasons and
 *                dependencies.
 *
 * No I/O, no clock, no logging: everything the planner needs is passed in
 * (the current time too), so tests/test-plan.c proves the safety rules on
 * hand-built inputs. The engine fills LiveState from observe.c; the
 * Ledger (ledger.h: what bindery owns, the state itself) is loaded from
 * the engine's Store and only read here; apply.c executes the actions
 * and records their results in the Ledger.
 *
 * Bindings are compared in a canonical text form ("kv_namespace
 * namespace_id=ID", see plan_binding_canon_*), the same function on both
 * sides, so binding order, D1 `id` vs `database_id`, JSON key order and
 * spacing, and default values never produce a perpetual diff.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "ledger.h"
#include "model.h"

/* ---- Observed live state ---- */

typedef struct LiveBinding {
        char *name;
        char *type;                 /* API type */
        char *canon;                /* canonical form (plan_binding_canon_json) */
} LiveBinding;

typedef struct LiveConsumer {
        char *script_name;
        char *consumer_id;
        char *canon;                /* canonical settings */
} LiveConsumer;

typedef struct LiveWorker {
        char *name;
        char *etag;
        char *modified_on;
        char *migration_tag;
        char *compatibility_date;
        char **tags;                /* from the list (NULL with tags_known: none) */
        bool tags_known;
        int logpush;                /* -1 unknown */
        int observability;          /* observability.enabled; -1 unknown */
        /* Set by observe: a signal (new script, changed list entry, the
         * audit feed, full refresh) made it fetch the detail below. */
        bool dirty;
        bool detail;                /* the fields below were read this cycle */
        char **compatibility_flags; /* from the list, sorted (flags_known: the list had them) */
        bool flags_known;
        char *version_id;           /* newest deployment's first version */
        LiveBinding *bindings;      /* non-secret bindings, sorted by name */
        size_t n_bindings;
        char **secret_names;        /* secret_text/secret_key bindings, sorted */
        char **crons;               /* sorted */
        bool crons_known;
        int subdomain;              /* -1 unknown, 0 off, 1 on */
        /* The audit feed shows a write to this script's secrets that is not
         * one of bindery's own: values may have been rotated. */
        bool secrets_written;
        char *dirty_reason;         /* why observe looked closer, for messages */
        /* The spec's plan_worker_digest for this worker, resolved against
         * this LiveState and the run's ledger, when observe computed it
         * (spec_changed): the plan takes it instead of computing it again. */
        char desired_digest[65];    /* "" when not computed */
        bool desired_unresolved;
} LiveWorker;

/* A KV namespace, R2 bucket, D1 database, queue, Secrets Store store or
 * store secret, as listed. */
typedef struct LiveResource {
        ResourceKind kind;
        char *id;                   /* KV id, D1 uuid, queue id, store id, secret id; R2: the name */
        char *name;                 /* title / bucket / database / queue / store / secret name */
        char *store_id;             /* store secrets: the store */
        char *jurisdiction;         /* R2: the jurisdiction it was listed in (NULL: default) */
        char *modified;             /* when listed with one (queues, store secrets) */
        LiveConsumer *consumers;    /* queues */
        size_t n_consumers;
} LiveResource;

typedef struct LiveState {
        bool workers_listed;        /* the script list was read */
        LiveWorker *workers;
        size_t n_workers, n_workers_alloc;
        bool listed[_RESOURCE_KIND_MAX];   /* each type's list was read */
        LiveResource *resources;
        size_t n_resources, n_resources_alloc;
        /* Hash indexes (json-c lh_tables), kept by the add functions:
         * name → worker, "KIND/id" and "KIND/name" → the first such
         * resource; values are index + 1. */
        struct lh_table *worker_index, *resource_by_id, *resource_by_name;
} LiveState;

LiveState *live_state_new(void);
LiveState *live_state_free(LiveState *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(LiveState *, live_state_free);
/* Appends an empty worker / resource (zeroed; subdomain -1). NULL on OOM. */
LiveWorker *live_state_add_worker(LiveState *s, const char *name);
/* Drops the workers added after the first n (a list read again from its
 * start: cfapi's restart). */
void live_state_truncate_workers(LiveState *s, size_t n);
/* Shrinks the worker and resource arrays to their counts, once observed. */
void live_state_trim(LiveState *s);
LiveResource *live_state_add_resource(LiveState *s, ResourceKind kind, const char *id, const char *name);
LiveBinding *live_worker_add_binding(LiveWorker *w, const char *name, const char *type, const char *canon);
LiveConsumer *live_resource_add_consumer(LiveResource *r, const char *script, const char *consumer_id,
                                         const char *canon);
void live_worker_sort(LiveWorker *w);
LiveWorker *live_state_find_worker(const LiveState *s, const char *name);
LiveResource *live_state_find_by_id(const LiveState *s, ResourceKind kind, const char *id);
LiveResource *live_state_find_by_name(const LiveState *s, ResourceKind kind, const char *name,
                                      const char *store_id);

/* ---- The ownership ledger: ledger.h ---- */

/* ---- Inputs that are neither desired nor live ---- */

/* The HMAC of each desired secret value, computed by the engine at plan
 * time (secrets.h) under the per-install key; hmac NULL when the reference
 * could not be read (error says why). owner: the worker's script name for
 * worker secrets (name = binding name); "" for Secrets Store secrets
 * (name = the document name). */
typedef struct PlanSecret {
        const char *owner;
        const char *name;
        const char *hmac;
        const char *error;
} PlanSecret;

typedef struct PlanPolicy {
        bool prune;                 /* delete workers removed from the spec */
        uint64_t prune_settle_usec;
        unsigned max_deletions;
        bool force;
        uint64_t now_usec;          /* CLOCK_REALTIME */
        uint64_t generation_since_usec;     /* when this generation became current */
        bool allow_empty;           /* a generation without documents may delete (allow_empty) */
        const PlanSecret *secrets;
        size_t n_secrets;
        bool secrets_sorted;        /* secrets are in (owner, name) order: binary search */
} PlanPolicy;

/* ---- Actions ---- */

typedef enum ActionKind {
        ACTION_CREATE,              /* data resource, store secret, or a new worker (first upload) */
        ACTION_UPDATE,              /* rename / settings / store secret value */
        ACTION_DELETE,
        ACTION_ADOPT,               /* record ownership of an existing resource; no API write */
        ACTION_PUT_SECRET,
        ACTION_DELETE_SECRET,
        ACTION_UPLOAD,              /* worker code, bindings, settings */
        ACTION_SET_SCHEDULES,
        ACTION_SET_SUBDOMAIN,
        ACTION_SET_CONSUMER,        /* detail: queue name; remove: detach */
        ACTION_MIGRATE,             /* an upload carrying Durable Object migrations */
        ACTION_NOOP,
        ACTION_BLOCKED,
        ACTION_DRIFT_REPORT,
        _ACTION_KIND_MAX,
        _ACTION_KIND_INVALID = -EINVAL,
} ActionKind;

const char *action_kind_to_string(ActionKind k) _pure_;   /* "create", "put-secret", ... */
/* Whether executing the action writes to the API or the state. */
bool action_kind_is_change(ActionKind k) _pure_;

/* One line of a plan's diff ("~ STAGE: "a" -> "b""). Values are display
 * text; NULL before means bindery could not read it (said as unknown),
 * NULL after that it is only known once applied. Secrets never carry a
 * value: secret is set and before/after stay NULL. */
typedef struct ActionChange {
        char op;                    /* '~' changed, '+' added, '-' removed, '?' not read */
        char *field;
        char *before;
        char *after;
        bool secret;
} ActionChange;

typedef struct Action {
        unsigned index;             /* position in Plan.actions */
        ActionKind kind;
        ResourceKind resource_kind;
        char *doc;                  /* spec document name */
        char *name;                 /* Cloudflare name */
        char *id;                   /* live id, when known (delete, adopt, update) */
        char *detail;               /* secret name (put/delete-secret), queue name (consumer) */
        char *reason;
        bool drift;                 /* repairs a difference made outside bindery */
        bool remove;                /* set-consumer: detach; set-subdomain: disable */
        bool intent;                /* apply must write an intent first (create) */
        bool suspended;             /* a no-op because the spec says suspend: true */
        char **inherit;             /* what the spec dropped, kept until the generation settles:
                                     * upload: binding names ({"type": "inherit"});
                                     * set-schedules: crons sent along with the spec's */
        bool waiting;               /* a removal waiting for prune_settle (a no-op now) */
        unsigned *deps;             /* indexes of actions that must finish first */
        size_t n_deps;
        /* migrate / upload with migrations */
        char *old_tag;
        char *new_tag;
        char **auto_new_classes;    /* classes added without a migration step in the spec */
        /* pointers into the generation (NULL for removed resources) */
        const Worker *worker;
        const void *desired;        /* the KVNamespace, R2Bucket, ... */
        ActionChange *changes;      /* what the action changes, field by field */
        size_t n_changes;
} Action;

typedef struct Plan {
        Action *actions;
        size_t n_actions;
        unsigned n_changes;         /* actions that write */
        unsigned n_deletes;
        unsigned n_blocked;
        unsigned n_drift;           /* drift-report actions */
        unsigned n_waiting;         /* deletions waiting for prune_settle */
        bool generation_missing;
        bool empty_refused;         /* deletions refused: the generation has no documents (allow_empty) */
} Plan;

Plan *plan_free(Plan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Plan *, plan_free);

/* Orders PlanSecrets by owner, then name (neither NULL), for
 * PlanPolicy.secrets_sorted. */
int plan_secret_cmp(const void *a, const void *b);

/* Computes the plan. g may be NULL (the spec was rejected): then nothing is
 * deleted or created; the plan only notes that. live and ledger must not
 * be NULL (empty ones are fine). Returns 0 or -ENOMEM. */
int plan_compute(const Generation *g, const LiveState *live, const Ledger *ledger,
                 const PlanPolicy *policy, Plan **ret);

/* Whether something would be written (create, update, ...). */
bool plan_has_changes(const Plan *p) _pure_;

/* Text: one line per action, "kind Kind/name: reason", no-ops included
 * only with verbose; below it one indented line per ActionChange:
 * "~ NAME: old -> new", "+ NAME: new", "- NAME: old", secrets as
 * "(value changed)" / "(new)", unreadable values as "(unknown)". Caller
 * frees. */
char *plan_to_text(const Plan *p, bool verbose);
/* JSON: {"actions": [{index, action, kind, name, id?, detail?, reason,
 * drift, depends_on: [...], diff?: [{op, field, before, after} |
 * {op, field, secret: true, value: "changed"|"new"|"removed"}]}],
 * "changes": N, "deletes": N, "blocked": N, "drift": N, "no_ops": N}; an
 * unreadable before is null with "before_known": false. With noops false
 * the no-op actions (those not waiting) are counted, not listed: entries
 * are then found by "index", not by position. */
json_object *plan_to_json(const Plan *p, bool noops);

/* ---- Canonical forms (shared with observe.c and apply.c) ---- */

/* Canonical JSON text: keys sorted at every level, no spaces. Caller
 * frees; NULL on OOM. */
char *plan_json_canonical(json_object *j);
/* Canonical form of a live binding object from the API ({type, name,
 * ...}); secret bindings return NULL in *ret (they are compared by name
 * only). script is the worker the binding belongs to (a DO binding naming
 * its own script equals one without script_name). Returns 0, -ENOMEM. */
int plan_binding_canon_json(json_object *b, const char *script, char **ret);

/* How a binding's target resolves, given the ledger and live state: the
 * id/name to send. *ret NULL when unresolved (a create is pending, or an
 * external resource is missing). trust_ledger: take owned ids from the
 * ledger even when the (older) live listing lacks them — apply, after
 * creates recorded new ids. */
int plan_resolve_binding(const Generation *g, const Worker *w, const Binding *b,
                         const LiveState *live, const Ledger *ledger, bool trust_ledger,
                         char **ret_value, char **ret_store_id);
/* The canonical form of a desired binding with its resolved target. */
int plan_binding_canon_desired(const Worker *w, const Binding *b, const char *value,
                               const char *store_id, char **ret);
/* The digest recorded after an upload: the worker digest, the resolved
 * non-secret bindings and the migration tag. Returns 0 and a 64-hex
 * string in ret, -ENOMEM. When a binding cannot be resolved the digest is
 * still computed (with a placeholder) and *ret_unresolved set. */
int plan_worker_digest(const Generation *g, const Worker *w, const LiveState *live,
                       const Ledger *ledger, bool trust_ledger, char ret[static 65],
                       bool *ret_unresolved);
/* Hands the digest caches of every worker unchanged since the generation
 * before (same Worker.digest) to the new generation; both loaded. */
void plan_generation_inherit(Generation *g, const Generation *old);
/* Digests recorded for data resources (their Cloudflare-visible settings). */
void plan_resource_digest(ResourceKind kind, const void *desired, char ret[static 65]);
/* The Cloudflare name of a desired resource document. */
const char *plan_resource_cf_name(ResourceKind kind, const void *desired);
/* The store id a Secrets Store secret lives in (ledger/live), or NULL. */
const char *plan_store_id(const Generation *g, const char *store_doc, const LiveState *live,
                          const Ledger *ledger);
/* Canonical settings of a live queue consumer object (as desired ones). */
char *plan_consumer_canon_json(json_object *consumer);
/* The automatic migration tag bindery uses for classes added without a
 * migration history: "bindery-" + first 12 hex of sha256(sorted classes). */
int plan_auto_migration_tag(char * const *classes, char **ret);
