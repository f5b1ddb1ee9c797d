/* engine.h: one reconcile (observe → plan → apply), run asynchronously on
 * an sd-event loop, and the per-resource status it leaves behind.
 *
 * The Engine is long-lived: it owns the Cloudflare API client (its request
 * budget carries over between runs), the state directory (and its lock,
 * taken by engine_new), and what it last observed. The daemon (manager.c)
 * and the plan/apply commands (cmd-engine.c) both drive it through this
 * interface; the CLI runs the loop until the run's callback fires.
 *
 * At most one run at a time: engine_run returns -EBUSY while one runs.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "cfapi.h"
#include "config.h"
#include "model.h"

typedef struct Engine Engine;

typedef enum RunMode {
        RUN_MODE_PLAN,              /* observe and plan; write nothing */
        RUN_MODE_APPLY,
        _RUN_MODE_MAX,
        _RUN_MODE_INVALID = -EINVAL,
} RunMode;

typedef enum RunResult {
        RUN_RESULT_OK,              /* apply: in sync afterwards; plan: nothing to do */
        RUN_RESULT_CHANGES,         /* plan: changes pending or drift reported */
        RUN_RESULT_FAILED,          /* an action or the observe failed */
        RUN_RESULT_BLOCKED,         /* a safety rule refused (guard, unowned, account mismatch) */
        RUN_RESULT_DRIFT,           /* apply: only drift reported (drift: report); nothing else to do */
        RUN_RESULT_INTERRUPTED,     /* stopped: the store fenced this engine out (another leader) */
        _RUN_RESULT_MAX,
        _RUN_RESULT_INVALID = -EINVAL,
} RunResult;

const char *run_result_to_string(RunResult r) _pure_;   /* "ok", "changes", "failed", "blocked", "drift", "interrupted" */

/* Per-resource status, as /v1/status shows it. */
typedef enum ResourceState {
        RESOURCE_STATE_IN_SYNC,
        RESOURCE_STATE_DRIFTED,
        RESOURCE_STATE_PENDING,
        RESOURCE_STATE_FAILED,
        RESOURCE_STATE_BLOCKED,
        RESOURCE_STATE_SUSPENDED,   /* suspend: true (not a severity: never replaces another state) */
        _RESOURCE_STATE_MAX,
        _RESOURCE_STATE_INVALID = -EINVAL,
} ResourceState;

const char *resource_state_to_string(ResourceState s) _pure_;

typedef struct RunOptions {
        RunMode mode;
        bool force;                 /* allow more than max_deletions */
        const char *run_id;         /* for logs (BINDERY_RUN); copied */
        /* When the generation became current (CLOCK_REALTIME µs): deletions
         * wait until it has been stable for prune_settle. 0: now. */
        uint64_t generation_since_usec;
        /* The JSON report lists the no-op actions too (the CLI's --json);
         * the daemon's reports count them only. */
        bool report_noops;
} RunOptions;

/* The report of one finished run. json is the whole report (actions with
 * reasons, counts, errors; never a secret value); the caller takes a ref
 * with json_object_get if it keeps it. */
/* How drift is found: the audit log feed (writes since the last cycle),
 * or, when the feed is unavailable (a token without Account Settings
 * Read, errors), the lists plus a budgeted settings rotation. */
typedef enum ChangeDetection {
        CHANGE_DETECTION_UNKNOWN,       /* no observe yet */
        CHANGE_DETECTION_AUDIT,
        CHANGE_DETECTION_FALLBACK,
        _CHANGE_DETECTION_MAX,
        _CHANGE_DETECTION_INVALID = -EINVAL,
} ChangeDetection;

const char *change_detection_to_string(ChangeDetection d) _pure_;

typedef struct RunReport {
        RunResult result;
        unsigned n_actions;         /* planned (plan) or executed (apply) */
        unsigned n_writes;          /* API writes made */
        unsigned n_requests;        /* API requests made */
        unsigned n_failed;
        unsigned n_blocked;         /* blocked actions in the plan */
        uint64_t started_usec, finished_usec;
        json_object *json;
        const char *text;           /* human-readable plan/report, for the CLI */
} RunReport;

typedef void (*engine_run_done_t)(Engine *e, const RunReport *report, void *userdata);

/* Creates the engine: opens and locks config->state_dir (-EBUSY if another
 * process holds the lock; with lock=false for plan, reads without it),
 * checks the state's account_id/api_url binding (-EXDEV on mismatch),
 * and sets up the API client on the event loop. Logs nothing above debug;
 * the caller reports errors. */
int engine_new(Engine **ret, sd_event *event, const Config *config, bool lock);
/* The same over a store opened by the caller (store-file.h, or the etcd
 * backend): takes ownership of store (freed on failure too), loads the
 * ledger from it, and checks or records the account binding (-EXDEV on
 * mismatch). Apply runs need store->writable. */
typedef struct Store Store;
int engine_new_with_store(Engine **ret, sd_event *event, const Config *config, Store *store);
Engine *engine_free(Engine *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(Engine *, engine_free);

/* The write gate of the engine's Cloudflare client (cfapi_set_may_send):
 * high availability passes ha_may_write through it. */
void engine_set_may_send(Engine *e, cfapi_may_send_t fn, void *userdata);

/* Replaces the config (SIGHUP). Takes effect for the next run. */
int engine_set_config(Engine *e, const Config *config);

/* Starts a run against generation g (NULL: the spec failed to load —
 * nothing may be deleted; the engine still observes for status). g must
 * stay alive until done is called. Returns -EBUSY if a run is going. */
int engine_run(Engine *e, const Generation *g, const RunOptions *o,
               engine_run_done_t done, void *userdata);

bool engine_is_running(const Engine *e);

/* Asks a running run to stop after in-flight requests (SIGTERM); done is
 * still called. */
void engine_cancel(Engine *e);

/* One resource's status after the last run (secrets as references). */
typedef struct ResourceStatus {
        const char *kind;           /* resource_kind_to_string(), or "Account" */
        char *name;                 /* the spec's name ("" if none); owns the strings below too */
        const char *cf_name;        /* the name at Cloudflare when it differs; else NULL */
        ResourceState state;
        const char *reason;         /* never NULL */
        const char *id;             /* NULL: none known */
        uint64_t last_change_usec;  /* CLOCK_REALTIME, whole seconds; moves only with state or reason */
} ResourceStatus;

void status_free(ResourceStatus *s, size_t n);

/* The per-resource status after the last run, typed (borrowed until the
 * next run finishes). */
const ResourceStatus *engine_status(const Engine *e, size_t *ret_n);
/* The same as JSON for the HTTP and notification edges: an array of
 * {kind, name, cf_name?, state, reason, last_change, id?}; with
 * problems_only only the failed, blocked and drifted ones. Caller puts
 * the reference; NULL on OOM. */
json_object *engine_status_json(const Engine *e, bool problems_only);
/* Moves whenever engine_status_json() or engine_change_detection() may
 * answer differently (a run finished, the change detection was noted):
 * the daemon serves /v1/status from bytes prepared once per change. */
uint64_t engine_status_generation(const Engine *e);

/* A newly loaded generation takes the per-worker digest caches of the
 * one it replaces, for workers that did not change (plan.c). */
void engine_generation_inherit(Generation *g, const Generation *old);

/* Why the engine has no usable API token ("no Cloudflare API token:
 * credential 'cloudflare-api-token' …", naming the reference it looked
 * for), or NULL when one was read. */
const char *engine_token_problem(const Engine *e);

/* Asks Cloudflare about the API token (GET /user/tokens/verify) and calls
 * done with a one-line finding (never the token) and 0, -EACCES (refused)
 * or another negative errno. Returns 0 or a negative errno. */
typedef void (*engine_verify_done_t)(int error, const char *finding, void *userdata);
int engine_verify_token(Engine *e, engine_verify_done_t done, void *userdata);

/* API client figures for /metrics: requests by HTTP status, latency,
 * budget left. */
void engine_api_stats(const Engine *e, CfApiStats *ret);
/* The change detection of the last observe, and why it fell back (NULL
 * in audit mode; points into the engine, valid until the next run). */
ChangeDetection engine_change_detection(const Engine *e, const char **ret_reason);
