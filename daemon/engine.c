/* engine.c: one reconcile — observe → plan → (apply) → report — on the
 * event loop, and the per-resource status it leaves behind (engine.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "apply.h"
#include "cfapi.h"
#include "cfreq.h"
#include "engine.h"
#include "ledger.h"
#include "log.h"
#include "observe.h"
#include "plan.h"
#include "secrets.h"
#include "spec.h"
#include "store-file.h"
#include "util.h"

#define META_AUDIT_LAST "engine.audit.last"
#define META_AUDIT_SEEN "engine.audit.seen"
#define META_OWN_WRITES "engine.own_writes"
#define META_OWN_WRITES_SINCE "engine.own_writes.since"
/* When the oldest own write still waiting for its entry was sent (µs):
 * the feed is read unfiltered from there only (observe.c), not over the
 * whole audit_overlap. */
#define META_OWN_WRITES_FROM "engine.own_writes.from"
#define OWN_WRITES_MAX 2000
/* The audit feed's delay as measured by our own writes (µs): the last
 * write's entry was in the post-apply read this long after it was sent,
 * at most. The overlap re-read each cycle is AUDIT_LAG_MARGIN times that,
 * at least AUDIT_OVERLAP_FLOOR_USEC, at most audit_overlap (and the whole
 * audit_overlap while the delay is unknown or own writes are missing). */
#define META_AUDIT_LAG "engine.audit.lag"
/* When the last post-apply read ran (µs). For two minutes after, a read
 * that leaves bindery's entries out still remembers their ids: a run of
 * writes starting within a minute reads them back in its post-apply
 * window, and must not take them for its own writes to the same paths. */
#define META_AUDIT_POST "engine.audit.post"
/* bindery's own API token id as the audit feed spells it (actor.token_id
 * of the entries its own writes were matched to, all agreeing, and the
 * same as GET /user/tokens/verify answers: two sources, so another
 * actor's write to the same path cannot pass for bindery's), with the
 * token's HMAC: {"id": …, "fp": …}. Its entries are left out of the
 * observe query (actor_token_id.not), so a no-op does not page through
 * its own last converge. Used only while the token's HMAC matches. */
#define META_AUDIT_TOKEN "engine.audit.token"
#define AUDIT_LAG_MARGIN 4
#define AUDIT_OVERLAP_FLOOR_USEC (30 * USEC_PER_SEC)
#define META_REFRESH_LAST "engine.refresh.last"
#define META_REFRESH_CURSOR "engine.refresh.cursor"
/* The staggered full refresh never spends more than this share of the
 * request budget in one cycle (about 4 requests per worker). */
#define REFRESH_BUDGET_SHARE 5   /* 1/5 = 20% */
#define REFRESH_REQUESTS_PER_WORKER 4
/* Without the audit feed, a bindings-only change (PATCH /settings, a
 * dashboard edit) shows in no list: no public evidence says it moves the
 * script's modified_on or etag (shared/change-detection.md §1 (c): [U]).
 * So the fallback reads settings of managed workers on a rotation that
 * spends at most this share of the request budget per cycle. */
#define ROTATION_BUDGET_SHARE 4  /* 1/4 = 25% */
#define META_ROTATION_CURSOR "engine.rotation.cursor"

struct Engine {
        sd_event *event;
        /* config (owned copies) */
        char *account_id;
        char *api_url;
        char *state_dir;
        uint64_t full_refresh_usec;
        bool prune;
        uint64_t prune_settle_usec;
        uint64_t audit_overlap_usec;
        uint64_t target_wait_usec;
        bool allow_empty;
        char *token_problem;        /* engine_token_problem() */
        char *token_ref;            /* the api_token reference, for messages */
        char *token_id;             /* the token's id in the audit feed (META_AUDIT_TOKEN), or NULL */
        char *token_verified_id;    /* the id GET /user/tokens/verify answered, or NULL */
        char *token_feed_id;        /* the id the feed showed on own writes, or NULL */
        bool token_verify_asked;
        bool token_verify_pending;  /* its answer is awaited: the run's end waits for it */
        bool finish_waiting;        /* the run's end waits for token_verify_pending */
        char token_fp[65];          /* HMAC of the token ("": none) */
        unsigned max_deletions;
        unsigned concurrency;
        unsigned request_budget;
        uint64_t request_window_usec;

        Store *store;                   /* where the ledger is committed (owned) */
        Ledger *ledger;                 /* what bindery owns: loaded once, committed per batch */
        bool locked;                    /* the store is writable */
        bool fenced;                    /* a commit was refused (-ESTALE): write nothing more */
        bool commit_pending;            /* the last commit failed: the ledger's changes wait for the next */
        uint8_t hmac_key[STORE_HMAC_KEY_SIZE];
        bool have_hmac_key;
        char *key_error;                /* why the store's HMAC key is unusable, naming it */
        CfApi *api;
        LiveState *live;                /* last observation */
        ResourceStatus *status;         /* per resource after the last run (engine_status) */
        size_t n_status;
        uint64_t status_generation;     /* engine_status_generation */

        /* the run */
        bool running;
        bool cancelled;
        const Generation *g;
        RunMode mode;
        bool force;
        bool report_noops;
        char *run_id;
        uint64_t generation_since_usec;
        engine_run_done_t done;
        void *userdata;
        Observer *observer;
        Applier *applier;
        Plan *plan;
        PlanPolicy policy;
        PlanSecret *psecrets;
        size_t n_psecrets;
        char **refresh;
        char **rotation;                /* the settings rotation's workers this cycle */
        ChangeDetection detection;      /* of the last observe */
        bool detection_logged;          /* the fallback was explained once */
        bool audit_gap;                 /* own writes never showed up in the feed */
        char *detection_reason;
        char **audit_seen_new;
        char **own_writes_left;         /* own writes whose audit entries were not seen yet */
        uint64_t own_writes_from_usec;  /* when the oldest of this run's unmatched writes was sent; 0: none */
        bool post_audit_done;
        uint64_t audit_lag_usec;        /* measured this run (post-apply read); 0: not measured */
        bool audit_lag_unknown;         /* own writes of this run were missing from the feed */
        uint64_t audit_checked_usec;
        bool audit_ok;
        char *error;
        int error_code;
        uint64_t started_usec;
        uint64_t requests_at_start;
        unsigned n_details;
        unsigned post_pending;
        bool save_failed;
        bool key_error_logged;
        SpecGrant grant;            /* what specs may read: file references are checked again when read */
        sd_event_source *finish_source;
        RunResult result;
};

const char *run_result_to_string(RunResult r) {
        static const char *const t[_RUN_RESULT_MAX] = {
                [RUN_RESULT_OK] = "ok",
                [RUN_RESULT_CHANGES] = "changes",
                [RUN_RESULT_FAILED] = "failed",
                [RUN_RESULT_BLOCKED] = "blocked",
                [RUN_RESULT_DRIFT] = "drift",
                [RUN_RESULT_INTERRUPTED] = "interrupted",
        };
        return r >= 0 && r < _RUN_RESULT_MAX ? t[r] : NULL;
}

const char *resource_state_to_string(ResourceState s) {
        static const char *const t[_RESOURCE_STATE_MAX] = {
                [RESOURCE_STATE_SUSPENDED] = "suspended",
                [RESOURCE_STATE_IN_SYNC] = "in_sync",
                [RESOURCE_STATE_DRIFTED] = "drifted",
                [RESOURCE_STATE_PENDING] = "pending",
                [RESOURCE_STATE_FAILED] = "failed",
                [RESOURCE_STATE_BLOCKED] = "blocked",
        };
        return s >= 0 && s < _RESOURCE_STATE_MAX ? t[s] : NULL;
}

static const char *strempty(const char *s) {
        return s ?: "";
}

static int dup_str(char **dst, const char *s) {
        char *c = NULL;

        if (s && !(c = strdup(s)))
                return -ENOMEM;
        free(*dst);
        *dst = c;
        return 0;
}

static uint64_t requests_total(const CfApi *api) {
        _cleanup_free_ CfApiStats *st = malloc(sizeof(CfApiStats));

        if (!st)
                return 0;
        cfapi_stats(api, st);
        return st->requests_total;
}

/* ---- the ledger's commits ---- */

/* Commits what the ledger has changed since the last commit, as one
 * batch. -ESTALE (another leader holds the store) fences the engine: the
 * run stops and nothing more is written. */
static int engine_commit(Engine *e) {
        _cleanup_free_ char *msg = NULL;
        int r;

        if (e->fenced)
                return -ESTALE;
        r = ledger_set_run_id(e->ledger, e->run_id);
        if (r >= 0)
                r = ledger_commit(e->ledger, e->store, &msg);
        e->commit_pending = r < 0;
        if (r >= 0)
                return 0;
        if (r == -ESTALE) {
                log_error("The state in %s was taken over by another binderyd (%s); this one stops writing.",
                          store_describe(e->store), msg ?: "fenced out");
                e->fenced = true;
                if (e->applier)
                        apply_cancel(e->applier);
        } else if (!e->save_failed)
                log_error_errno(r, "Cannot save the state file (%s): %s", store_describe(e->store),
                                msg ?: strerror(-r));
        e->save_failed = true;
        return r;
}

/* ---- construction ---- */

static int engine_copy_config(Engine *e, const Config *c) {
        SpecGrant g = {};

        if (dup_str(&e->account_id, c->account_id) < 0 || dup_str(&e->api_url, c->api_url ?: CONFIG_DEFAULT_API_URL) < 0 ||
            dup_str(&e->state_dir, c->state_dir) < 0)
                return -ENOMEM;
        if (config_spec_grant(c, &g) < 0)
                return -ENOMEM;
        spec_grant_done(&e->grant);
        e->grant = g;
        e->full_refresh_usec = c->full_refresh_usec ?: 6 * 3600 * USEC_PER_SEC;
        e->audit_overlap_usec = c->audit_overlap_usec ?: OBSERVE_AUDIT_OVERLAP_USEC;
        e->prune = c->prune;
        e->prune_settle_usec = c->prune_settle_usec;
        e->target_wait_usec = c->target_wait_usec;
        e->allow_empty = c->allow_empty;
        e->max_deletions = c->max_deletions;
        e->concurrency = c->concurrency ?: 8;
        e->request_budget = c->request_budget ?: 1000;
        e->request_window_usec = c->request_window_usec ?: 300 * USEC_PER_SEC;
        return 0;
}

static int engine_secret_hmac(Engine *e, const void *value, size_t size, char ret[static 65]);

int engine_new_with_store(Engine **ret, sd_event *event, const Config *config, Store *store) {
        _cleanup_(store_freep) Store *st = store;
        _cleanup_(engine_freep) Engine *e = NULL;
        _cleanup_free_ char *msg = NULL, *msg_token = NULL;
        char *token = NULL;
        size_t token_size = 0;
        CfApiOptions o;
        int r;

        if (!config || !config->state_dir || !config->account_id || !store)
                return -EINVAL;
        e = calloc(1, sizeof(Engine));
        if (!e)
                return -ENOMEM;
        e->event = sd_event_ref(event);
        r = engine_copy_config(e, config);
        if (r < 0)
                return r;
        r = ledger_load(st, &e->ledger, &msg);
        if (r < 0) {
                if (msg)
                        log_error("State: %s", msg);
                return r;
        }
        e->store = TAKE_PTR(st);
        e->locked = e->store->writable;
        r = ledger_bind(e->ledger, e->account_id, e->api_url);
        if (r < 0)
                return r;

        e->token_ref = secret_ref_to_string(&config->api_token);
        r = secrets_resolve(&config->api_token, NULL, &token, &token_size, &msg_token);
        if (r < 0) {
                _cleanup_free_ char *ref = secret_ref_to_string(&config->api_token);

                log_debug_errno(r, "No API token could be read, continuing without one: %m");
                if (asprintf(&e->token_problem, "no Cloudflare API token: cannot read %s (api_token): %s",
                             strna(ref), msg_token ? msg_token : strerror(-r)) < 0)
                        e->token_problem = NULL;
        }
        cfapi_options_from_config(&o, config);
        o.token = r >= 0 ? token : NULL;
        o.token_size = r >= 0 ? token_size : 0;
        if (!o.token || engine_secret_hmac(e, token, token_size, e->token_fp) < 0)
                e->token_fp[0] = 0;
        r = cfapi_new(&e->api, event, &o);
        erase_and_free(token, token_size);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(e);
        return 0;
}

int engine_new(Engine **ret, sd_event *event, const Config *config, bool lock) {
        _cleanup_free_ char *msg = NULL;
        Store *store = NULL;
        int r;

        if (!config || !config->state_dir || !config->account_id)
                return -EINVAL;
        r = store_file_open(config->state_dir, lock, &store, &msg);
        if (r < 0) {
                /* -EBUSY: the callers say it better. Others (a corrupt
                 * file) only msg names precisely. */
                if (r != -EBUSY && msg)
                        log_error("State: %s", msg);
                else
                        log_debug("Cannot open state '%s': %s", config->state_dir, strna(msg));
                return r;
        }
        return engine_new_with_store(ret, event, config, store);
}

/* Only a run reads the observation, the plan and the applier: they go
 * when it finishes (its status and report are built by then), so the
 * daemon does not hold them between runs. */
static void run_release(Engine *e) {
        e->observer = observe_free(e->observer);
        e->applier = apply_free(e->applier);
        e->plan = plan_free(e->plan);
        e->live = live_state_free(e->live);
}

static void run_reset(Engine *e) {
        run_release(e);
        for (size_t i = 0; i < e->n_psecrets; i++) {
                free((char *) e->psecrets[i].owner);
                free((char *) e->psecrets[i].name);
                free((char *) e->psecrets[i].hmac);
                free((char *) e->psecrets[i].error);
        }
        e->psecrets = mfree(e->psecrets);
        e->n_psecrets = 0;
        e->refresh = strv_free(e->refresh);
        e->rotation = strv_free(e->rotation);
        e->audit_seen_new = strv_free(e->audit_seen_new);
        e->own_writes_left = strv_free(e->own_writes_left);
        e->own_writes_from_usec = 0;
        e->post_audit_done = false;
        e->audit_lag_usec = 0;
        e->audit_lag_unknown = false;
        e->error = mfree(e->error);
        e->run_id = mfree(e->run_id);
        e->finish_source = sd_event_source_disable_unref(e->finish_source);
}

Engine *engine_free(Engine *e) {
        if (!e)
                return NULL;
        run_reset(e);
        /* The client's callbacks (observe/apply) are abandoned above; freeing
         * it cancels their requests. */
        e->api = cfapi_free(e->api);
        e->ledger = ledger_free(e->ledger);
        e->store = store_free(e->store);   /* after the ledger's last commit; releases the lock */
        explicit_bzero(e->hmac_key, sizeof e->hmac_key);
        free(e->key_error);
        e->live = live_state_free(e->live);
        status_free(e->status, e->n_status);
        free(e->detection_reason);
        free(e->account_id);
        free(e->api_url);
        free(e->state_dir);
        free(e->token_problem);
        free(e->token_ref);
        free(e->token_id);
        free(e->token_verified_id);
        free(e->token_feed_id);
        spec_grant_done(&e->grant);
        sd_event_unref(e->event);
        free(e);
        return NULL;
}

int engine_set_config(Engine *e, const Config *c) {
        int r;

        if (!streq_ptr(c->account_id, e->account_id) ||
            !streq_ptr(c->api_url ?: CONFIG_DEFAULT_API_URL, e->api_url) || !streq_ptr(c->state_dir, e->state_dir))
                return -EXDEV; /* the account binding and state dir need a restart */
        r = engine_copy_config(e, c);
        if (r < 0)
                return r;
        cfapi_set_limits(e->api, e->concurrency, e->request_budget, e->request_window_usec);
        return 0;
}

bool engine_is_running(const Engine *e) {
        return e && e->running;
}

void engine_set_may_send(Engine *e, cfapi_may_send_t fn, void *userdata) {
        cfapi_set_may_send(e->api, fn, userdata);
}

void engine_cancel(Engine *e) {
        if (!e || !e->running)
                return;
        e->cancelled = true;
        if (e->applier)
                apply_cancel(e->applier);
}

const ResourceStatus *engine_status(const Engine *e, size_t *ret_n) {
        *ret_n = e->n_status;
        return e->status;
}

json_object *engine_status_json(const Engine *e, bool problems_only) {
        json_object *a = json_object_new_array();
        char ts[64];

        for (size_t i = 0; a && i < e->n_status; i++) {
                const ResourceStatus *x = &e->status[i];
                json_object *o;

                if (problems_only && (x->state == RESOURCE_STATE_IN_SYNC || x->state == RESOURCE_STATE_SUSPENDED ||
                                      x->state == RESOURCE_STATE_PENDING))
                        continue;
                o = json_object_new_object();
                if (!o || json_object_array_add(a, o) < 0) {
                        json_object_put(o);
                        json_object_put(a);
                        return NULL;
                }
                json_object_object_add(o, "kind", json_object_new_string(x->kind));
                json_object_object_add(o, "name", json_object_new_string(strempty(x->name)));
                if (x->cf_name)
                        json_object_object_add(o, "cf_name", json_object_new_string(x->cf_name));
                json_object_object_add(o, "state", json_object_new_string(resource_state_to_string(x->state)));
                json_object_object_add(o, "reason", json_object_new_string(strempty(x->reason)));
                json_object_object_add(o, "last_change",
                                       json_object_new_string(format_rfc3339(x->last_change_usec, ts, sizeof(ts))));
                if (x->id)
                        json_object_object_add(o, "id", json_object_new_string(x->id));
        }
        return a;
}

uint64_t engine_status_generation(const Engine *e) {
        return e ? e->status_generation : 0;
}

void engine_generation_inherit(Generation *g, const Generation *old) {
        plan_generation_inherit(g, old);
}

const char *engine_token_problem(const Engine *e) {
        return e->token_problem;
}

static bool token_id_valid(const char *id) {
        return id && *id && strlen(id) <= 64 &&
               !id[strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")];
}

/* Takes the token id the feed showed on bindery's own writes once
 * /user/tokens/verify has named the same, whichever answer comes first. */
static void token_id_settle(Engine *e) {
        const char *id = e->token_feed_id;

        if (!id || !streq_ptr(id, e->token_verified_id) || streq_ptr(e->token_id, id))
                return;
        free(e->token_id);
        e->token_id = strdup(id);
}

/* The id the feed showed on bindery's own writes (NULL: none learnt). */
static void learn_token_id(Engine *e, const char *id) {
        if (!token_id_valid(id) || streq_ptr(e->token_feed_id, id))
                return;
        free(e->token_feed_id);
        e->token_feed_id = strdup(id);
        token_id_settle(e);
}

/* Notes the id of a /user/tokens/verify answer (an active token). */
static void take_verified_id(Engine *e, const CfReply *reply) {
        json_object *id = NULL, *st = NULL;

        if (reply->error < 0 || !reply->result || !json_object_object_get_ex(reply->result, "id", &id) ||
            !token_id_valid(json_object_get_string(id)) ||
            (json_object_object_get_ex(reply->result, "status", &st) && !streq_ptr(json_object_get_string(st), "active")))
                return;
        free(e->token_verified_id);
        e->token_verified_id = strdup(json_object_get_string(id));
        token_id_settle(e);
}

static void run_finish_later(Engine *e);

static void on_own_token(CfApi *api, const CfReply *reply, void *userdata) {
        Engine *e = userdata;

        if (reply->error == -ECANCELED)
                return; /* the engine is going away */
        e->token_verify_pending = false;
        take_verified_id(e, reply);
        if (e->finish_waiting) {
                e->finish_waiting = false;
                run_finish_later(e);
        }
}

/* The token id for the audit query: the saved one, if the token is the
 * same; else learnt again from the next own writes, which needs the id
 * /user/tokens/verify answers (asked once, by apply runs). */
static void audit_token_prepare(Engine *e, RunMode mode) {
        const char *v = ledger_get_meta(e->ledger, META_AUDIT_TOKEN);
        _cleanup_(json_object_putp) json_object *j = v ? json_tokener_parse(v) : NULL;
        json_object *id, *fp;
        CfRequest req = {
                .method = "GET",
                .path = cfreq_template(CF_PATH_TOKEN_VERIFY),
                .priority = CFAPI_PRIORITY_NORMAL,
                .flags = CFAPI_NO_RETRY,
        };

        if (e->token_id || !e->token_fp[0])
                return;
        if (j && json_object_object_get_ex(j, "id", &id) && token_id_valid(json_object_get_string(id)) &&
            json_object_object_get_ex(j, "fp", &fp) && streq_ptr(json_object_get_string(fp), e->token_fp)) {
                e->token_id = strdup(json_object_get_string(id));
                return;
        }
        if (mode != RUN_MODE_APPLY || e->token_verified_id || e->token_verify_asked || e->token_problem)
                return;
        if (cfapi_submit(e->api, &req, on_own_token, e, NULL) >= 0)
                e->token_verify_asked = e->token_verify_pending = true;
}

typedef struct VerifyCall {
        Engine *e;
        engine_verify_done_t done;
        void *userdata;
        char *ref;
} VerifyCall;

static void on_token_verified(CfApi *api, const CfReply *reply, void *userdata) {
        VerifyCall *v = userdata;
        _cleanup_free_ char *finding = NULL;
        json_object *st = NULL;
        int k;

        if (reply->error != -ECANCELED)
                take_verified_id(v->e, reply);
        if (reply->error == -EACCES)
                k = asprintf(&finding, "Cloudflare refused the API token (%s): %s", strna(v->ref), strna(reply->message));
        else if (reply->error < 0)
                k = asprintf(&finding, "could not verify the API token (%s): %s", strna(v->ref), strna(reply->message));
        else {
                if (reply->result)
                        (void) json_object_object_get_ex(reply->result, "status", &st);
                k = asprintf(&finding, "the API token (%s) is %s", strna(v->ref),
                             st ? json_object_get_string(st) : "accepted");
        }
        v->done(reply->error < 0 ? reply->error : st && !streq(json_object_get_string(st), "active") ? -EACCES : 0,
                k < 0 ? "out of memory" : finding, v->userdata);
        free(v->ref);
        free(v);
}

int engine_verify_token(Engine *e, engine_verify_done_t done, void *userdata) {
        CfRequest req = {
                .method = "GET",
                .path = cfreq_template(CF_PATH_TOKEN_VERIFY),
                .priority = CFAPI_PRIORITY_NORMAL,
                .flags = CFAPI_NO_RETRY,
        };
        VerifyCall *v;
        int r;

        v = calloc(1, sizeof(VerifyCall));
        if (!v)
                return -ENOMEM;
        v->e = e;
        v->done = done;
        v->userdata = userdata;
        v->ref = e->token_ref ? strdup(e->token_ref) : NULL;
        r = cfapi_submit(e->api, &req, on_token_verified, v, NULL);
        if (r < 0) {
                free(v->ref);
                free(v);
        } else
                e->token_verify_asked = true;
        return r;
}

void engine_api_stats(const Engine *e, CfApiStats *ret) {
        cfapi_stats(e->api, ret);
}

/* ---- the run ---- */

static void run_finish(Engine *e, bool release);

static int on_finish_event(sd_event_source *s, void *userdata) {
        Engine *e = userdata;

        e->finish_source = sd_event_source_disable_unref(e->finish_source);
        /* The token id learnt in this run is saved with it: a short run
         * (a no-op) may be done before /user/tokens/verify answers. */
        if (e->token_verify_pending) {
                e->finish_waiting = true;
                return 0;
        }
        run_finish(e, true);
        return 0;
}

/* Finishes from the loop, never from inside a callback chain of engine_run. */
static void run_finish_later(Engine *e) {
        if (e->finish_source)
                return;
        if (sd_event_add_defer(e->event, &e->finish_source, on_finish_event, e) < 0)
                run_finish(e, false);   /* maybe inside an observer's or applier's callback */
}

static void run_fail(Engine *e, int r, const char *what) {
        if (!e->error) {
                e->error_code = r;
                if (asprintf(&e->error, "%s: %s", what, strerror(-r)) < 0)
                        e->error = NULL;
        }
        run_finish_later(e);
}

static const char *policy_error(int r) {
        return r == -ENOKEY ? "no per-install key yet" : strerror(-r);
}

/* Reads a spec secret; a file reference is checked against the grant
 * again first (where its symlinks lead now). */
static int engine_secret_read(Engine *e, const SecretRef *ref, char **v, size_t *n, char **err) {
        if (ref->source == SECRET_SOURCE_FILE) {
                int r = spec_grant_check_file(&e->grant, ref->ref, err);

                if (r < 0)
                        return r;
        }
        return secrets_resolve(ref, e->g ? e->g->spec_dir : NULL, v, n, err);
}

/* The fingerprint of a secret value: HMAC-SHA256 (hex) under the
 * store's per-install key (fetched once; -ENOKEY when read-only and none
 * exists yet, -EBADMSG with e->key_error when unusable). */
static int engine_secret_hmac(Engine *e, const void *value, size_t size, char ret[static 65]) {
        static const char hex[] = "0123456789abcdef";
        uint8_t md[32];
        int r;

        if (!e->have_hmac_key) {
                _cleanup_free_ char *msg = NULL;

                r = store_hmac_key(e->store, e->hmac_key, &msg);
                if (r < 0) {
                        if (r == -EBADMSG && msg) {
                                free(e->key_error);
                                e->key_error = TAKE_PTR(msg);
                        }
                        return r;
                }
                e->have_hmac_key = true;
        }
        hmac_sha256_raw(e->hmac_key, STORE_HMAC_KEY_SIZE, value ?: (const void *) "", size, md);
        for (unsigned i = 0; i < 32; i++) {
                ret[2 * i] = hex[md[i] >> 4];
                ret[2 * i + 1] = hex[md[i] & 15];
        }
        ret[64] = 0;
        explicit_bzero(md, sizeof md);
        return 0;
}

/* HMACs of every desired secret, read now and wiped at once. */
static int compute_secret_hmacs(Engine *e) {
        const Generation *g = e->g;
        size_t cap = 0;

        if (!g)
                return 0;
        for (size_t i = 0; i < g->n_workers; i++)
                cap += g->workers[i].n_bindings;
        cap += g->n_secrets_store_secrets;
        e->psecrets = calloc(cap + 1, sizeof(PlanSecret));
        if (!e->psecrets)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_workers + g->n_secrets_store_secrets; i++) {
                const Worker *w = i < g->n_workers ? &g->workers[i] : NULL;
                size_t nb = w ? w->n_bindings : 1;

                for (size_t j = 0; j < nb; j++) {
                        const SecretRef *ref;
                        const char *owner, *name;
                        PlanSecret *ps;
                        char *v = NULL, *err = NULL;
                        size_t size = 0;
                        char h[65];
                        int r;

                        if (w) {
                                if (w->bindings[j].kind != BINDING_SECRET)
                                        continue;
                                ref = &w->bindings[j].secret;
                                owner = w->name;
                                name = w->bindings[j].name;
                        } else {
                                const SecretsStoreSecret *s = &g->secrets_store_secrets[i - g->n_workers];

                                ref = &s->value;
                                owner = "";
                                name = s->name;
                        }
                        ps = &e->psecrets[e->n_psecrets++];
                        ps->owner = strdup(owner);
                        ps->name = strdup(name);
                        if (!ps->owner || !ps->name)
                                return -ENOMEM;
                        r = engine_secret_read(e, ref, &v, &size, &err);
                        if (r < 0) {
                                ps->error = err ?: strdup(strerror(-r));
                                continue;
                        }
                        r = engine_secret_hmac(e, v, size, h);
                        erase_and_free(v, size);
                        if (r == -ENOKEY) {
                                /* Plan without the lock on a fresh state: nothing
                                 * can have been fingerprinted yet. */
                                snprintf(h, sizeof(h), "unkeyed");
                                r = 0;
                        }
                        if (r < 0) {
                                const char *ke = r == -EBADMSG ? e->key_error : NULL;

                                /* A bad hmac.key is the state's problem, not the secret's. */
                                if (ke && !e->key_error_logged) {
                                        log_error("%s", ke);
                                        e->key_error_logged = true;
                                }
                                ps->error = strdup(ke ?: policy_error(r));
                                continue;
                        }
                        ps->hmac = strdup(h);
                        if (!ps->hmac)
                                return -ENOMEM;
                }
        }
        if (e->n_psecrets > 1)
                qsort(e->psecrets, e->n_psecrets, sizeof(PlanSecret), plan_secret_cmp);
        return 0;
}

static int apply_hook_save(void *userdata) {
        return engine_commit(userdata);
}

static int apply_hook_secret_read(void *userdata, const SecretRef *ref, char **v, size_t *n, char **err) {
        return engine_secret_read(userdata, ref, v, n, err);
}

static int apply_hook_hmac(void *userdata, const void *v, size_t n, char ret[static 65]) {
        Engine *e = userdata;

        return engine_secret_hmac(e, v, n, ret);
}

static void apply_hook_action_done(void *userdata, const Action *a, int error, const char *message) {
        Engine *e = userdata;
        _cleanup_free_ char *res = NULL;

        if (asprintf(&res, "%s/%s", resource_kind_to_string(a->resource_kind), strna(a->name)) < 0)
                return;
        if (error < 0)
                log_event(LOG_WARNING, e->run_id, res, action_kind_to_string(a->kind), "%s %s%s%s%s: failed: %s",
                          action_kind_to_string(a->kind), res, a->detail ? " [" : "", strempty(a->detail),
                          a->detail ? "]" : "", strna(message));
        else
                log_event(LOG_INFO, e->run_id, res, action_kind_to_string(a->kind), "%s %s%s%s%s: %s",
                          action_kind_to_string(a->kind), res, a->detail ? " [" : "", strempty(a->detail),
                          a->detail ? "]" : "", strna(a->reason));
}

/* Records the list fingerprint of workers that are known to be as desired,
 * so the next cycle does not read them again. */
static void absorb_worker(Ledger *l, LedgerEntry *le, const LiveWorker *lw) {
        bool changed = !streq_ptr(le->etag, lw->etag) || !streq_ptr(le->modified_on, lw->modified_on) ||
                       (lw->migration_tag && !streq_ptr(le->migration_tag, lw->migration_tag));

        (void) dup_str(&le->etag, lw->etag);
        (void) dup_str(&le->modified_on, lw->modified_on);
        if (lw->migration_tag)
                (void) dup_str(&le->migration_tag, lw->migration_tag);
        if (changed)
                ledger_touch(l, le);
}

/* Whether worker action i leaves its worker with something pending
 * (blocked, drift reported, a change not done or failed). */
static bool worker_has_pending(const Plan *p, size_t i, const Applier *ap) {
        const Action *a = &p->actions[i];

        if (a->kind == ACTION_BLOCKED || a->kind == ACTION_DRIFT_REPORT)
                return true;
        if (action_kind_is_change(a->kind)) {
                const ApplyResult *r = ap ? apply_result(ap, i) : NULL;

                if (!r || !r->done || r->error < 0)
                        return true;
        }
        return false;
}

/* The workers with something pending, in one pass over the plan (asking
 * the plan per worker was quadratic). NULL on OOM. */
static StrSet *workers_pending(const Plan *p, const Applier *ap) {
        StrSet *s = strset_new();

        for (size_t i = 0; s && p && i < p->n_actions; i++)
                if (p->actions[i].resource_kind == RESOURCE_WORKER && p->actions[i].name &&
                    worker_has_pending(p, i, ap) && strset_put(s, p->actions[i].name) < 0)
                        s = strset_free(s);
        return s;
}

/* The token id learnt, with the token's HMAC (META_AUDIT_TOKEN). */
static void save_audit_token(Engine *e) {
        _cleanup_(json_object_putp) json_object *t = NULL;

        if (!e->token_id || !e->token_fp[0])
                return;
        t = json_object_new_object();
        if (!t)
                return;
        json_object_object_add(t, "id", json_object_new_string(e->token_id));
        json_object_object_add(t, "fp", json_object_new_string(e->token_fp));
        (void) ledger_set_meta(e->ledger, META_AUDIT_TOKEN, json_object_to_json_string_ext(t, JSON_C_TO_STRING_PLAIN));
}

static void save_audit_position(Engine *e) {
        char buf[32];

        if (!e->audit_ok)
                return;
        snprintf(buf, sizeof(buf), "%" PRIu64, e->audit_checked_usec);
        (void) ledger_set_meta(e->ledger, META_AUDIT_LAST, buf);
        if (e->post_audit_done) {
                snprintf(buf, sizeof(buf), "%" PRIu64, e->audit_checked_usec);
                (void) ledger_set_meta(e->ledger, META_AUDIT_POST, buf);
        }
        if (e->audit_lag_usec > 0) {
                snprintf(buf, sizeof(buf), "%" PRIu64, e->audit_lag_usec);
                (void) ledger_set_meta(e->ledger, META_AUDIT_LAG, buf);
        } else if (e->audit_lag_unknown)
                (void) ledger_set_meta(e->ledger, META_AUDIT_LAG, NULL);
        save_audit_token(e);
        {
                /* No tree of them: after a converge of 10,000 workers the
                 * overlap window holds 30,000 entry ids, and their json-c
                 * objects were this run's heap peak (3 MB). */
                _cleanup_free_ char *seen = strv_to_json_text(e->audit_seen_new, 0, SIZE_MAX);

                if (seen)
                        (void) ledger_set_meta(e->ledger, META_AUDIT_SEEN, seen);
        }
        {
                size_t n = strv_length(e->own_writes_left), from = n > OWN_WRITES_MAX ? n - OWN_WRITES_MAX : 0;
                _cleanup_free_ char *own = n > 0 ? strv_to_json_text(e->own_writes_left, from, n) : NULL;

                if (n == 0 || own)
                        (void) ledger_set_meta(e->ledger, META_OWN_WRITES, own);
                /* Since when some own write has been waiting for its entry,
                 * and when the oldest waiting one was sent. */
                if (n == 0 || e->audit_gap) {
                        (void) ledger_set_meta(e->ledger, META_OWN_WRITES_SINCE, NULL);
                        (void) ledger_set_meta(e->ledger, META_OWN_WRITES_FROM, NULL);
                }
                if (n > 0 && e->own_writes_from_usec > 0) {
                        const char *v = ledger_get_meta(e->ledger, META_OWN_WRITES_FROM);
                        uint64_t old = 0;

                        if (!v || safe_atou64(v, &old) < 0 || old == 0 || old > e->own_writes_from_usec) {
                                snprintf(buf, sizeof(buf), "%" PRIu64, e->own_writes_from_usec);
                                (void) ledger_set_meta(e->ledger, META_OWN_WRITES_FROM, buf);
                        }
                }
                if (n > 0 && !ledger_get_meta(e->ledger, META_OWN_WRITES_SINCE)) {
                        snprintf(buf, sizeof(buf), "%" PRIu64, e->audit_checked_usec);
                        (void) ledger_set_meta(e->ledger, META_OWN_WRITES_SINCE, buf);
                }
        }
}

static char **load_meta_strv(const Ledger *ledger, const char *key) {
        const char *v = ledger_get_meta(ledger, key);
        json_object *j = v ? json_tokener_parse(v) : NULL;
        char **l = calloc(1, sizeof(char *));
        size_t n = 0;

        for (size_t i = 0; l && j && json_object_is_type(j, json_type_array) && i < json_object_array_length(j); i++)
                if (strv_extend_n(&l, &n, json_object_get_string(json_object_array_get_idx(j, i))) < 0) {
                        l = strv_free(l);
                        break;
                }
        json_object_put(j);
        return l;
}

/* ---- post-apply: record our own writes' fingerprints ---- */

typedef struct PostReq {
        Engine *e;
        bool audit;
        json_object *counts;        /* audit: own writes still to match (observe_write_counts) */
        StrSet *seen;               /* audit: entry ids processed before */
        size_t n_seen_before;       /* audit: length of audit_seen_new before this read */
        size_t n_seen_new;          /* audit: length of audit_seen_new now */
        LiveState *live;            /* scripts: the list, streamed in */
        char *token_id;             /* audit: actor.token_id of the entries own writes matched */
        bool token_mixed;           /* audit: ...not one and the same */
} PostReq;

static PostReq *post_req_free(PostReq *q) {
        if (!q)
                return NULL;
        json_object_put(q->counts);
        strset_free(q->seen);
        live_state_free(q->live);
        free(q->token_id);
        return mfree(q);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(PostReq *, post_req_free);

/* One item of the post-apply lists, as it streams in: a script into the
 * list, or an audit entry matched against our own writes (its id is then
 * processed; anything else stays unseen for the next observe). */
static int on_post_item(json_object *item, void *userdata) {
        PostReq *q = userdata;
        _cleanup_(audit_entry_done) AuditEntry a = {};
        int r;

        if (!q->audit)
                return observe_parse_script(item, q->live);
        r = observe_audit_entry(item, q->e->token_id, &a);
        if (r < 0)
                return r;
        if (!a.id || strset_contains(q->seen, a.id))
                return 0;
        if (!a.key || !a.mine || !observe_write_take(q->counts, a.key))
                return 0;
        if (strv_extend_n(&q->e->audit_seen_new, &q->n_seen_new, a.id) < 0)
                return -ENOMEM;
        if (observe_token_agree(&q->token_id, &q->token_mixed, observe_audit_token_id(item)) < 0)
                return -ENOMEM;
        return 0;
}

/* When the oldest write still unmatched in counts was sent (0: none, or
 * the times are unknown). */
static uint64_t oldest_waiting(json_object *counts, char * const *writes, const uint64_t *t) {
        uint64_t from = 0;
        json_object *v;

        for (size_t i = 0; t && writes && writes[i]; i++)
                if (json_object_object_get_ex(counts, writes[i], &v) && json_object_get_int(v) > 0 &&
                    (from == 0 || t[i] < from))
                        from = t[i];
        return from;
}

static void post_done(Engine *e) {
        if (--e->post_pending > 0)
                return;
        run_finish_later(e);
}

static void on_post_reply(CfApi *api, const CfReply *reply, void *userdata) {
        _cleanup_(post_req_freep) PostReq *q = userdata;
        Engine *e = q->e;
        bool audit = q->audit;

        if (reply->error == -ECANCELED)
                return; /* the engine is going away */
        if (reply->error < 0) {
                if (audit) {
                        char * const *writes = apply_writes(e->applier);

                        /* Entries matched before the read failed: unseen
                         * again, as every write waits for its entry. */
                        for (size_t k = q->n_seen_before; e->audit_seen_new && e->audit_seen_new[k]; k++)
                                e->audit_seen_new[k] = mfree(e->audit_seen_new[k]);

                        for (size_t k = 0; writes && writes[k]; k++)
                                if (strv_extend(&e->own_writes_left, writes[k]) < 0)
                                        break;
                }
                post_done(e);
                return;
        }
        if (!audit) {
                LiveState *l = q->live;
                _cleanup_(strset_freep) StrSet *pending = workers_pending(e->plan, e->applier);

                for (size_t i = 0; pending && i < l->n_workers; i++) {
                        LedgerEntry *le = ledger_find(e->ledger, RESOURCE_WORKER, l->workers[i].name);

                        if (le && !strset_contains(pending, le->doc))
                                absorb_worker(e->ledger, le, &l->workers[i]);
                }
        } else {
                size_t before = strv_length(e->own_writes_left);
                uint64_t last_write = apply_last_write_usec(e->applier);

                /* Writes whose entries have not shown up yet are matched
                 * by later cycles instead of being taken for drift. */
                (void) observe_write_leftovers(q->counts, &e->own_writes_left);
                /* Not known for writes that waited before this run
                 * without a recorded time (then the whole window). */
                if (before == 0 || ledger_get_meta(e->ledger, META_OWN_WRITES_FROM))
                        e->own_writes_from_usec = oldest_waiting(q->counts, apply_writes(e->applier),
                                                                 apply_write_times(e->applier));
                if (!q->token_mixed)
                        learn_token_id(e, q->token_id);
                e->post_audit_done = true;
                e->audit_checked_usec = now_realtime_usec();
                /* Every write's entry is there, the last one's too: the
                 * feed's delay is at most the time since it was sent. */
                if (strv_length(e->own_writes_left) == before && last_write > 0 &&
                    e->audit_checked_usec > last_write)
                        e->audit_lag_usec = e->audit_checked_usec - last_write;
                else
                        e->audit_lag_unknown = true;
        }
        post_done(e);
}

static int post_submit(Engine *e, bool audit) {
        _cleanup_(post_req_freep) PostReq *q = calloc(1, sizeof(PostReq));
        _cleanup_free_ char *path = NULL, *query = NULL;
        CfRequest r = { .method = "GET", .priority = CFAPI_PRIORITY_NORMAL, .each = on_post_item };
        int k;

        if (!q)
                return -ENOMEM;
        q->e = e;
        q->audit = audit;
        if (audit) {
                q->counts = observe_write_counts(apply_writes(e->applier));
                q->seen = strset_new();
                if (!q->counts || !q->seen)
                        return -ENOMEM;
                for (size_t i = 0; e->audit_seen_new && e->audit_seen_new[i]; i++)
                        if (strset_put(q->seen, e->audit_seen_new[i]) < 0)
                                return -ENOMEM;
                q->n_seen_before = q->n_seen_new = strv_length(e->audit_seen_new);
        } else {
                q->live = live_state_new();
                if (!q->live)
                        return -ENOMEM;
        }
        if (audit) {
                uint64_t from = e->started_usec > OBSERVE_AUDIT_OVERLAP_USEC ? e->started_usec - 60 * USEC_PER_SEC : 0;

                k = cfreq_audit_query(from, now_realtime_usec() + OBSERVE_AUDIT_BEFORE_SLACK_USEC, NULL, &query);
                if (k < 0)
                        return k;
                r.paging = CFAPI_PAGING_CURSOR;
        }
        k = cfreq_path(&path, audit ? CF_PATH_AUDIT : CF_PATH_SCRIPTS);
        if (k < 0)
                return k;
        r.path = path;
        r.query = query;
        k = cfapi_submit(e->api, &r, on_post_reply, q, NULL);
        if (k < 0)
                return k;
        TAKE_PTR(q);
        e->post_pending++;
        return 0;
}

static void on_apply_done(Applier *ap, void *userdata) {
        Engine *e = userdata;

        if (e->cancelled || e->fenced || apply_n_writes(ap) == 0) {
                run_finish_later(e);
                return;
        }
        if (post_submit(e, false) < 0 || post_submit(e, true) < 0) {
                if (e->post_pending == 0)
                        run_finish_later(e);
        }
}

static void record_policies(Engine *e) {
        const Generation *g = e->g;

        if (!g)
                return;
#define REC(kind, arr, n)                                                                                      \
        for (size_t i = 0; i < g->n; i++) {                                                                   \
                LedgerEntry *le = ledger_find(e->ledger, kind, g->arr[i].name);                               \
                DeletionPolicy d = g->arr[i].policy.deletion_explicit &&                                      \
                                                   g->arr[i].policy.deletion == DELETION_DELETE               \
                                           ? DELETION_DELETE                                                  \
                                           : DELETION_RETAIN;                                                 \
                if (le && (le->deletion != d || le->drift != g->arr[i].policy.drift)) {                      \
                        le->deletion = d;                                                                     \
                        le->drift = g->arr[i].policy.drift;                                                   \
                        ledger_touch(e->ledger, le);                                                          \
                }                                                                                             \
        }
        REC(RESOURCE_WORKER, workers, n_workers)
        REC(RESOURCE_KV_NAMESPACE, kv_namespaces, n_kv_namespaces)
        REC(RESOURCE_R2_BUCKET, r2_buckets, n_r2_buckets)
        REC(RESOURCE_D1_DATABASE, d1_databases, n_d1_databases)
        REC(RESOURCE_QUEUE, queues, n_queues)
        REC(RESOURCE_SECRETS_STORE, secrets_stores, n_secrets_stores)
        REC(RESOURCE_SECRETS_STORE_SECRET, secrets_store_secrets, n_secrets_store_secrets)
#undef REC
}

/* The settings rotation: the next managed workers after the saved cursor
 * (wrapping), as many as ROTATION_BUDGET_SHARE of the budget allows. */
static int pick_rotation(Engine *e) {
        const char *cursor = ledger_get_meta(e->ledger, META_ROTATION_CURSOR);
        unsigned cap = e->request_budget / ROTATION_BUDGET_SHARE / REFRESH_REQUESTS_PER_WORKER;
        _cleanup_strv_free_ char **names = NULL;
        size_t start = 0, n = 0, n_rotation = strv_length(e->rotation);

        if (cap == 0)
                cap = 1;
        for (size_t i = 0; i < e->ledger->n_entries; i++)
                if (e->ledger->entries[i]->kind == RESOURCE_WORKER && strv_extend_n(&names, &n, e->ledger->entries[i]->doc) < 0)
                        return -ENOMEM;
        if (n == 0)
                return 0;
        strv_sort_uniq(names);
        n = strv_length(names);
        for (size_t i = 0; cursor && i < n; i++)
                if (strcmp(names[i], cursor) <= 0)
                        start = i + 1;
        for (size_t k = 0; k < n && k < cap; k++)
                if (strv_extend_n(&e->rotation, &n_rotation, names[(start + k) % n]) < 0)
                        return -ENOMEM;
        return 0;
}

static void rotation_advance(Engine *e) {
        size_t n = strv_length(e->rotation);

        if (e->detection != CHANGE_DETECTION_FALLBACK || n == 0)
                return;
        (void) ledger_set_meta(e->ledger, META_ROTATION_CURSOR, e->rotation[n - 1]);
}

static const char *const change_detection_table[_CHANGE_DETECTION_MAX] = {
        [CHANGE_DETECTION_UNKNOWN] = "unknown",
        [CHANGE_DETECTION_AUDIT] = "audit",
        [CHANGE_DETECTION_FALLBACK] = "fallback",
};

const char *change_detection_to_string(ChangeDetection d) {
        return d >= 0 && d < _CHANGE_DETECTION_MAX ? change_detection_table[d] : NULL;
}

ChangeDetection engine_change_detection(const Engine *e, const char **ret_reason) {
        if (ret_reason)
                *ret_reason = e->detection_reason;
        return e->detection;
}

/* Notes which change detection the cycle had; explains a fallback once
 * (and the return to the feed once). */
static void note_detection(Engine *e, const ObserveResult *res) {
        ChangeDetection d = res->audit_ok && !e->audit_gap ? CHANGE_DETECTION_AUDIT : CHANGE_DETECTION_FALLBACK;
        _cleanup_free_ char *why = NULL;

        if (d == CHANGE_DETECTION_FALLBACK) {
                if (res->audit_ok)
                        why = strdup("the audit log feed has gaps: bindery's own writes never showed up in it "
                                     "within 15 minutes");
                else if (res->audit_http_status == 403)
                        why = strdup("the audit log feed is refused (HTTP 403): the API token lacks the "
                                     "'Account Settings Read' permission");
                else if (asprintf(&why, "the audit log feed is unavailable (%s)",
                                  res->audit_message ?: "no answer") < 0)
                        why = NULL;
        }
        free(e->detection_reason);
        e->detection_reason = TAKE_PTR(why);
        e->status_generation++;         /* the reason may have changed */
        if (d == e->detection)
                return;
        if (d == CHANGE_DETECTION_FALLBACK && !e->detection_logged) {
                log_warning("Change detection falls back to the script and resource lists plus a settings rotation "
                            "of %zu worker(s) per cycle, because %s.%s",
                            strv_length(e->rotation), strna(e->detection_reason),
                            res->audit_http_status == 403
                                    ? " Add the permission 'Account Settings Read' to the token to restore it."
                                    : "");
                e->detection_logged = true;
        } else if (d == CHANGE_DETECTION_AUDIT && e->detection == CHANGE_DETECTION_FALLBACK) {
                log_info("The audit log feed answers again: change detection uses it.");
                e->detection_logged = false;
        }
        e->detection = d;
}

/* Which managed workers the staggered full refresh reads this cycle. */
static int pick_refresh(Engine *e, uint64_t now) {
        const char *last = ledger_get_meta(e->ledger, META_REFRESH_LAST), *cursor = ledger_get_meta(e->ledger, META_REFRESH_CURSOR);
        uint64_t last_usec = 0;
        unsigned cap = e->request_budget / REFRESH_BUDGET_SHARE / REFRESH_REQUESTS_PER_WORKER;
        _cleanup_strv_free_ char **names = NULL;
        size_t start = 0, n = 0, n_refresh = strv_length(e->refresh);

        if (cap == 0)
                cap = 1;
        if (last && safe_atou64(last, &last_usec) < 0)
                last_usec = 0;
        if (!last || (now > last_usec && now - last_usec < e->full_refresh_usec && !cursor))
                return 0;
        for (size_t i = 0; i < e->ledger->n_entries; i++)
                if (e->ledger->entries[i]->kind == RESOURCE_WORKER && strv_extend_n(&names, &n, e->ledger->entries[i]->doc) < 0)
                        return -ENOMEM;
        strv_sort_uniq(names);
        for (size_t i = 0; cursor && names && names[i]; i++)
                if (strcmp(names[i], cursor) <= 0)
                        start = i + 1;
        for (size_t i = start; names && names[i] && n_refresh < cap; i++)
                if (strv_extend_n(&e->refresh, &n_refresh, names[i]) < 0)
                        return -ENOMEM;
        return 0;
}

static void refresh_advance(Engine *e, uint64_t now) {
        const char *last = ledger_get_meta(e->ledger, META_REFRESH_LAST);
        size_t n = strv_length(e->refresh);
        unsigned cap = e->request_budget / REFRESH_BUDGET_SHARE / REFRESH_REQUESTS_PER_WORKER;
        char buf[32];

        if (cap == 0)
                cap = 1;
        if (!last) {
                snprintf(buf, sizeof(buf), "%" PRIu64, now);
                (void) ledger_set_meta(e->ledger, META_REFRESH_LAST, buf);
                return;
        }
        if (n == 0)
                return;
        if (n < cap) {
                snprintf(buf, sizeof(buf), "%" PRIu64, now);
                (void) ledger_set_meta(e->ledger, META_REFRESH_LAST, buf);
                (void) ledger_set_meta(e->ledger, META_REFRESH_CURSOR, NULL);
        } else
                (void) ledger_set_meta(e->ledger, META_REFRESH_CURSOR, e->refresh[n - 1]);
}

static void on_observed(ObserveResult *res, void *userdata) {
        Engine *e = userdata;
        int r;

        e->n_details = res->n_details;
        if (res->error < 0) {
                if (!e->error) {
                        e->error_code = res->error;
                        if (e->token_problem)
                                r = asprintf(&e->error, "%s (Cloudflare answered: %s)", e->token_problem,
                                             strna(res->message));
                        else if (res->error == -EACCES)
                                r = asprintf(&e->error, "Cloudflare refused the API token (%s): %s; check the token "
                                             "and its permissions%s%s%s (binderyd(8), TOKEN PERMISSIONS)",
                                             strna(e->token_ref), strna(res->message),
                                             cfreq_permission(res->message) ? " (this request needs " : "",
                                             strempty(cfreq_permission(res->message)),
                                             cfreq_permission(res->message) ? ")" : "");
                        else
                                r = res->message ? asprintf(&e->error, "%s", res->message) : -1;
                        if (r < 0)
                                e->error = NULL;
                }
                run_finish_later(e);
                return;
        }
        live_state_free(e->live);
        e->live = TAKE_PTR(res->live);
        e->audit_ok = res->audit_ok;
        e->audit_checked_usec = res->audit_checked_usec;
        note_detection(e, res);
        e->audit_seen_new = TAKE_PTR(res->audit_seen);
        e->own_writes_left = TAKE_PTR(res->own_writes_left);
        learn_token_id(e, res->own_token_id);

        r = compute_secret_hmacs(e);
        if (r < 0)
                return run_fail(e, r, "secrets");
        e->policy = (PlanPolicy) {
                .prune = e->prune,
                .prune_settle_usec = e->prune_settle_usec,
                .allow_empty = e->allow_empty,
                .max_deletions = e->max_deletions,
                .force = e->force,
                .now_usec = now_realtime_usec(),
                .generation_since_usec = e->generation_since_usec,
                .secrets = e->psecrets,
                .n_secrets = e->n_psecrets,
                .secrets_sorted = true,
        };
        live_state_trim(e->live);
        r = plan_compute(e->g, e->live, e->ledger, &e->policy, &e->plan);
        if (r < 0)
                return run_fail(e, r, "plan");

        /* Workers read in detail and found as desired: remember the list
         * entry, so they are not read again until something changes. */
        {
                _cleanup_(strset_freep) StrSet *pending = workers_pending(e->plan, NULL);

                for (size_t i = 0; pending && i < e->live->n_workers; i++) {
                        const LiveWorker *lw = &e->live->workers[i];
                        LedgerEntry *le;

                        if (!lw->dirty || !lw->detail)
                                continue;
                        le = ledger_find(e->ledger, RESOURCE_WORKER, lw->name);
                        if (le && !strset_contains(pending, lw->name))
                                absorb_worker(e->ledger, le, lw);
                }
        }

        if (e->mode == RUN_MODE_PLAN || e->cancelled || !plan_has_changes(e->plan)) {
                /* Nothing to apply: nothing reads the observation again.
                 * It goes before the audit position is printed (the
                 * 10,000-worker no-op's heap peak was here). The observer
                 * is in its own callback: run_finish frees it. */
                e->live = live_state_free(e->live);
                if (e->mode == RUN_MODE_APPLY && !e->cancelled) {
                        record_policies(e);
                        save_audit_position(e);
                        refresh_advance(e, e->policy.now_usec);
                        rotation_advance(e);
                }
                run_finish_later(e);
                return;
        }
        record_policies(e);
        save_audit_position(e);
        refresh_advance(e, e->policy.now_usec);
        rotation_advance(e);
        r = engine_commit(e);
        if (r < 0)
                return run_fail(e, r, "state");
        {
                ApplyHooks h = {
                        .save = apply_hook_save,
                        .secret_read = apply_hook_secret_read,
                        .secret_hmac = apply_hook_hmac,
                        .action_done = apply_hook_action_done,
                        .userdata = e,
                };

                r = apply_start(e->api, e->event, e->g, e->plan, e->ledger, e->live, e->concurrency, e->run_id, &h,
                                on_apply_done, e, &e->applier);
                if (r >= 0)
                        apply_set_target_wait(e->applier, e->target_wait_usec);
        }
        if (r < 0)
                return run_fail(e, r, "apply");
}

/* ---- The per-resource status from the plan and the apply results ---- */

void status_free(ResourceStatus *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(s[i].name);        /* its strings share one block */
        free(s);
}

/* An index of status entries by kind and name (value: index + 1), so
 * build_status() is linear in the number of actions. The keys are the
 * entries themselves (their arrays do not move while indexed): no key
 * is copied, which at 10,000 workers was 3 MB at the run's peak. */
static unsigned long status_key_hash(const void *k) {
        const ResourceStatus *x = k;
        unsigned long h = 14695981039346656037UL;      /* FNV-1a over "KIND/NAME" */

        for (const char *p = x->kind; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211UL;
        h = (h ^ '/') * 1099511628211UL;
        for (const char *p = x->name; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211UL;
        return h;
}

static int status_key_equal(const void *a, const void *b) {
        const ResourceStatus *x = a, *y = b;

        return streq(x->kind, y->kind) && streq(x->name, y->name);
}

static struct lh_table *status_index_new(size_t n) {
        /* Sized so that n entries never make it grow (json-c doubles it
         * when 0.66 full). */
        n = 2 * n + 16;
        return lh_table_new(n > (1U << 24) ? (1 << 24) : (int) n, NULL, status_key_hash, status_key_equal);
}

static void status_index_free(struct lh_table **t) {
        if (*t)
                lh_table_free(*t);
}

static bool status_index_find(struct lh_table *t, const char *kind, const char *name, size_t *ret) {
        const ResourceStatus probe = { .kind = kind, .name = (char *) name };
        void *v = NULL;

        if (!t || !kind || !name || !lh_table_lookup_ex(t, &probe, &v))
                return false;
        *ret = (size_t) (uintptr_t) v - 1;
        return true;
}

/* Adds x (at index i) unless its kind and name are there (the first
 * entry stays). */
static int status_index_add(struct lh_table *t, const ResourceStatus *x, size_t i) {
        if (lh_table_lookup_ex(t, x, NULL))
                return 0;
        return lh_table_insert(t, x, (const void *) (uintptr_t) (i + 1)) < 0 ? -ENOMEM : 0;
}

/* The state an action leaves its resource in, and why. */
static ResourceState action_state(const Action *a, const ApplyResult *r, const char **reason, char **why) {
        *reason = a->reason;
        switch (a->kind) {
        case ACTION_NOOP:
                return a->waiting ? RESOURCE_STATE_PENDING :
                       a->suspended ? RESOURCE_STATE_SUSPENDED : RESOURCE_STATE_IN_SYNC;
        case ACTION_BLOCKED:
                return RESOURCE_STATE_BLOCKED;
        case ACTION_DRIFT_REPORT:
                return RESOURCE_STATE_DRIFTED;
        default:
                if (!r || !r->done)
                        return a->drift ? RESOURCE_STATE_DRIFTED : RESOURCE_STATE_PENDING;
                if (r->error >= 0)
                        return RESOURCE_STATE_IN_SYNC;
                *reason = r->message;
                if (r->error == -EACCES && cfreq_permission(r->message) &&
                    asprintf(why, "%s (Cloudflare refused the API token: it needs %s)", strna(r->message),
                             cfreq_permission(r->message)) >= 0)
                        *reason = *why;
                return RESOURCE_STATE_FAILED;
        }
}

/* Fills *x (whatever it held is not freed) with copies of the strings,
 * all in one block that x->name owns: a status entry per resource is
 * one allocation, not four (at 1,000 workers, 6,000 blocks were kept
 * between runs). */
static int status_set(ResourceStatus *x, const char *kind, const char *name, const char *cf_name,
                      ResourceState st, const char *reason, const char *id, uint64_t when) {
        size_t ln = strlen(strempty(name)) + 1, lr = strlen(strempty(reason)) + 1,
               lc = cf_name ? strlen(cf_name) + 1 : 0, li = id ? strlen(id) + 1 : 0;
        char *p = malloc(ln + lr + lc + li);

        if (!p)
                return -ENOMEM;
        *x = (ResourceStatus) {
                .kind = kind,
                .state = st,
                .last_change_usec = when,
                .name = memcpy(p, strempty(name), ln),
                .reason = memcpy(p + ln, strempty(reason), lr),
                .cf_name = cf_name ? memcpy(p + ln + lr, cf_name, lc) : NULL,
                .id = id ? memcpy(p + ln + lr + lc, id, li) : NULL,
        };
        return 0;
}

/* The previous status's entry for kind/name: usually at the same
 * position (guess); else through an index of it, built at the first miss
 * (*prev), so a whole status is found in linear time. */
static bool status_find_prev(const Engine *e, struct lh_table **prev, size_t guess, const char *kind,
                             const char *name, size_t *ret) {
        if (!name)
                return false;
        if (guess < e->n_status && streq(e->status[guess].kind, kind) && streq(e->status[guess].name, name)) {
                *ret = guess;
                return true;
        }
        if (!*prev) {
                *prev = status_index_new(e->n_status);
                for (size_t k = 0; *prev && k < e->n_status; k++)
                        if (status_index_add(*prev, &e->status[k], k) < 0)
                                break;
        }
        return status_index_find(*prev, kind, name, ret);
}

/* The per-resource status after a run (or plan), typed: the HTTP edge
 * makes JSON of it (engine_status_json). An entry whose strings are the
 * previous status's takes that entry's block instead of a copy: a no-op
 * run allocates no strings (at 10,000 workers 1.5 MB at the run's peak). */
static void build_status(Engine *e) {
        _cleanup_(status_index_free) struct lh_table *idx = NULL, *prev = NULL;
        size_t n_max = (e->plan ? e->plan->n_actions : 0) + 1, n = 0;
        ResourceStatus *arr = calloc(n_max, sizeof(ResourceStatus));
        _cleanup_free_ bool *given = calloc(e->n_status + 1, sizeof(bool));     /* old entries whose block moved */
        _cleanup_free_ size_t *from = calloc(n_max, sizeof(size_t));          /* new entries holding one: old index + 1 */
        uint64_t now = now_realtime_usec() / USEC_PER_SEC * USEC_PER_SEC;     /* whole seconds, as shown */
        int r = 0;

        idx = status_index_new(n_max);
        if (!arr || !idx || !given || !from) {
                free(arr);
                return;
        }
        for (size_t i = 0; e->plan && i < e->plan->n_actions && r >= 0; i++) {
                const Action *a = &e->plan->actions[i];
                const char *kind = resource_kind_to_string(a->resource_kind), *name = a->doc ?: a->name, *reason;
                _cleanup_free_ char *why = NULL;
                ResourceState st = action_state(a, e->applier ? apply_result(e->applier, i) : NULL, &reason, &why);
                size_t k;

                /* One entry per resource: keep the worst state. */
                if (name && status_index_find(idx, kind, name, &k)) {
                        ResourceStatus *x = &arr[k], y;

                        if (st == RESOURCE_STATE_IN_SYNC || st == RESOURCE_STATE_SUSPENDED ||
                            (x->state != RESOURCE_STATE_IN_SYNC && x->state != RESOURCE_STATE_SUSPENDED &&
                             st < x->state))
                                continue;
                        r = status_set(&y, x->kind, x->name, x->cf_name, st, reason, x->id, x->last_change_usec);
                        if (r < 0)
                                break;
                        if (from[k] > 0)
                                given[from[k] - 1] = false;     /* the old entry keeps its block, still looked at */
                        else
                                free(x->name);
                        *x = y;
                        from[k] = 0;
                        continue;
                }
                {
                        const LedgerEntry *le = e->ledger ? ledger_find(e->ledger, a->resource_kind, a->doc ?: "") : NULL;
                        const char *cf_name = a->name && !streq_ptr(a->name, a->doc) ? a->name : NULL,
                                   *id = le && le->id ? le->id : a->id;
                        size_t j;

                        if (status_find_prev(e, &prev, n, kind, name, &j) && !given[j] &&
                            streq(e->status[j].name, strempty(name)) && streq_ptr(e->status[j].cf_name, cf_name) &&
                            streq(e->status[j].reason, strempty(reason)) && streq_ptr(e->status[j].id, id)) {
                                arr[n] = e->status[j];
                                arr[n].kind = kind;
                                arr[n].state = st;
                                arr[n].last_change_usec = now;
                                given[j] = true;
                                from[n] = j + 1;
                        } else
                                r = status_set(&arr[n], kind, name, cf_name, st, reason, id, now);
                }
                n++;
                if (r >= 0)
                        r = status_index_add(idx, &arr[n - 1], n - 1);
        }
        if (e->error && r >= 0) {
                r = status_set(&arr[n], "Account", strna(e->account_id), NULL, RESOURCE_STATE_FAILED, e->error, NULL,
                               now);
                n++;
        }
        if (r < 0) {
                for (size_t k = 0; k < n; k++)
                        if (from[k] == 0)
                                free(arr[k].name);
                free(arr);
                return;         /* out of memory: the previous status stays whole */
        }
        /* last_change moves only when a resource's state or reason does.
         * Entries are unique by kind and name and usually where they were
         * in the previous status; the rest is found through an index of
         * it, built at the first miss, so this is linear too. */
        for (size_t i = 0; i < n; i++) {
                ResourceStatus *x = &arr[i];
                size_t j;

                if (!status_find_prev(e, &prev, i, x->kind, x->name, &j))
                        continue;
                if (x->state == e->status[j].state && streq(x->reason, e->status[j].reason))
                        x->last_change_usec = e->status[j].last_change_usec;
        }
        for (size_t k = 0; k < e->n_status; k++)
                if (!given[k])
                        free(e->status[k].name);
        free(e->status);
        e->status = arr;
        e->n_status = n;
        e->status_generation++;
}

/* Counts the actions that failed; one skipped because a dependency was
 * blocked counts as blocked instead. */
static void run_count_failures(const Engine *e, unsigned *ret_failed, unsigned *ret_skipped_blocked) {
        unsigned n_failed = 0, n_skipped_blocked = 0;

        for (size_t i = 0; e->applier && i < e->plan->n_actions; i++) {
                const ApplyResult *r = apply_result(e->applier, i);
                const Action *a = &e->plan->actions[i];
                bool any_blocked = false;

                if (!r->done || r->error >= 0)
                        continue;
                for (size_t d = 0; r->skipped && d < a->n_deps; d++)
                        if (e->plan->actions[a->deps[d]].kind == ACTION_BLOCKED)
                                any_blocked = true;
                if (any_blocked)
                        n_skipped_blocked++;
                else
                        n_failed++;
        }
        *ret_failed = n_failed;
        *ret_skipped_blocked = n_skipped_blocked;
}

static RunResult run_result(const Engine *e, unsigned n_failed) {
        const Plan *p = e->plan;

        if (e->fenced)
                return RUN_RESULT_INTERRUPTED;
        if (e->error || e->save_failed || n_failed > 0)
                return RUN_RESULT_FAILED;
        if (p && p->n_blocked > 0)
                return e->mode == RUN_MODE_PLAN ? RUN_RESULT_CHANGES : RUN_RESULT_BLOCKED;
        if (e->mode == RUN_MODE_PLAN && p && (plan_has_changes(p) || p->n_drift > 0 || p->n_waiting > 0))
                return RUN_RESULT_CHANGES;
        if (p && p->n_drift > 0)
                return RUN_RESULT_DRIFT;      /* drift: report findings, nothing else to do */
        return RUN_RESULT_OK;
}

/* What an apply did, an action a line, then the counts. */
static void apply_to_text(const Engine *e, FILE *f, unsigned n_failed, unsigned n_skipped_blocked) {
        const Plan *p = e->plan;
        unsigned n_applied = p->n_changes - n_failed - n_skipped_blocked;

        for (size_t i = 0; i < p->n_actions; i++) {
                const Action *a = &p->actions[i];
                const ApplyResult *r = apply_result(e->applier, i);
                const char *st;

                if (a->kind == ACTION_NOOP && !a->waiting)
                        continue;
                st = !action_kind_is_change(a->kind) ? ""
                     : !r->done                      ? "not run: "
                     : r->error < 0                  ? "FAILED: "
                                                     : "";
                fprintf(f, "%-13s %s/%s", a->waiting ? "waiting" : action_kind_to_string(a->kind),
                        resource_kind_to_string(a->resource_kind), strna(a->name));
                if (a->detail)
                        fprintf(f, " [%s]", a->detail);
                fprintf(f, ": %s%s%s%s\n", st, strna(a->reason), r->error < 0 && r->message ? " — " : "",
                        r->error < 0 && r->message ? r->message : "");
        }
        fprintf(f, "%u change%s applied, %u failed, %u blocked, %u drift reported\n", n_applied,
                n_applied == 1 ? "" : "s", n_failed, p->n_blocked + n_skipped_blocked, p->n_drift);
}

/* The run's report as text: the plan (or what the apply did), then the
 * errors. NULL when out of memory. */
static char *run_report_text(const Engine *e, unsigned n_failed, unsigned n_skipped_blocked) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        if (e->plan && (e->mode == RUN_MODE_PLAN || !e->applier)) {
                _cleanup_free_ char *plan_text = plan_to_text(e->plan, false);

                if (plan_text)
                        fputs(plan_text, f);
        } else if (e->plan)
                apply_to_text(e, f, n_failed, n_skipped_blocked);
        if (e->error)
                fprintf(f, "error: %s\n", e->error);
        if (e->fenced)
                fprintf(f, "error: interrupted: another binderyd took over the state; nothing more was written\n");
        else if (e->save_failed)
                fprintf(f, "error: the state file could not be saved\n");
        fclose(f);
        return buf;
}

/* The run's report as JSON: the plan, the result and, after an apply,
 * each change's status. NULL when out of memory. */
static json_object *run_report_json(const Engine *e, const RunReport *rep) {
        json_object *o = e->plan ? plan_to_json(e->plan, e->report_noops) : json_object_new_object(), *acts;

        if (!o)
                return NULL;
        json_object_object_add(o, "run_id", json_object_new_string(strna(e->run_id)));
        json_object_object_add(o, "mode", json_object_new_string(e->mode == RUN_MODE_PLAN ? "plan" : "apply"));
        json_object_object_add(o, "result", json_object_new_string(run_result_to_string(rep->result)));
        if (e->error)
                json_object_object_add(o, "error", json_object_new_string(e->error));
        if (e->applier && json_object_object_get_ex(o, "actions", &acts))
                for (size_t k = 0; k < json_object_array_length(acts); k++) {
                        json_object *x = json_object_array_get_idx(acts, k), *idx;
                        const ApplyResult *r;
                        size_t i;

                        /* Without no-ops the array is not the plan's order
                         * by position: each entry names its action. */
                        if (!json_object_object_get_ex(x, "index", &idx))
                                continue;
                        i = (size_t) json_object_get_int(idx);
                        if (i >= e->plan->n_actions || !action_kind_is_change(e->plan->actions[i].kind))
                                continue;
                        r = apply_result(e->applier, i);
                        json_object_object_add(x, "status",
                                               json_object_new_string(!r->done ? "not-run"
                                                                      : r->error < 0 ? (r->skipped ? "skipped" : "failed")
                                                                                     : "done"));
                        if (r->error < 0 && r->message)
                                json_object_object_add(x, "error", json_object_new_string(r->message));
                }
        json_object_object_add(o, "details_read", json_object_new_int((int) e->n_details));
        json_object_object_add(o, "requests", json_object_new_int((int) rep->n_requests));
        json_object_object_add(o, "writes", json_object_new_int((int) rep->n_writes));
        return o;
}

/* Completes the run: state, status, report, done(). With release (from
 * the loop, not from inside a callback of the observer or applier) the
 * run's working data goes too. */
static void run_finish(Engine *e, bool release) {
        _cleanup_(json_object_putp) json_object *report = NULL;
        _cleanup_free_ char *text = NULL;
        RunReport rep = {};
        unsigned n_failed, n_skipped_blocked;
        engine_run_done_t done = e->done;
        void *ud = e->userdata;

        if (!e->running)
                return;
        /* A run that applied nothing needs its observation no more: it
         * goes before the status and the report are built, not after
         * (at 10,000 workers 7 MB at the run's peak). An applier may
         * still point into it (a cancelled apply's last answers). */
        if (release && !e->applier) {
                e->observer = observe_free(e->observer);
                e->live = live_state_free(e->live);
        }
        run_count_failures(e, &n_failed, &n_skipped_blocked);
        /* Persist what was learnt (fingerprints absorbed, audit position). */
        if (e->mode == RUN_MODE_APPLY && e->locked && !e->error && !e->fenced) {
                if (e->applier)
                        save_audit_position(e);
                else if (e->audit_ok)
                        save_audit_token(e);    /* verify may answer after the no-op's plan */
                (void) engine_commit(e);
        }
        /* A dry run that failed (GET /v1/plan with the API unreachable, say)
         * learnt nothing: keep the status the last run left. */
        if (!(e->mode == RUN_MODE_PLAN && e->error))
                build_status(e);
        /* What a dry run or a failed run noted but did not commit is put
         * back (the next run starts from the committed ledger). After a
         * failed commit the changes stay, for the next commit. */
        if (!e->commit_pending && ledger_has_changes(e->ledger)) {
                _cleanup_free_ char *msg = NULL;
                int r = ledger_discard(e->ledger, e->store, &msg);

                if (r < 0)
                        log_warning_errno(r, "Cannot read the state back (%s) to drop this run's changes, "
                                          "they are kept: %s", store_describe(e->store), msg ?: strerror(-r));
        }

        rep.result = run_result(e, n_failed);
        rep.n_actions = e->plan ? (unsigned) e->plan->n_changes : 0;
        rep.n_writes = e->applier ? apply_n_writes(e->applier) : 0;
        rep.n_requests = (unsigned) (requests_total(e->api) - e->requests_at_start);
        rep.n_failed = n_failed;
        rep.n_blocked = e->plan ? e->plan->n_blocked : 0;
        rep.started_usec = e->started_usec;
        rep.finished_usec = now_realtime_usec();
        text = run_report_text(e, n_failed, n_skipped_blocked);
        report = run_report_json(e, &rep);
        rep.json = report;
        rep.text = text;

        e->running = false;
        /* The caller copies or refs what it keeps; the rest goes now,
         * not at the next run, and before done() (whose caller trims the
         * heap). */
        if (release)
                run_release(e);
        if (done)
                done(e, &rep, ud);
}

/* How far back the audit query reaches before the last check: the feed's
 * measured delay with a margin (META_AUDIT_LAG), so a large converge's
 * own entries are not read again cycle after cycle; the configured
 * audit_overlap while the delay is unknown or own writes still wait for
 * their entries. */
static uint64_t audit_overlap_now(const Engine *e, char * const *own_waiting) {
        const char *v = ledger_get_meta(e->ledger, META_AUDIT_LAG);
        uint64_t lag = 0, o;

        if ((own_waiting && own_waiting[0]) || !v || safe_atou64(v, &lag) < 0 || lag == 0 ||
            lag > e->audit_overlap_usec / AUDIT_LAG_MARGIN)
                return e->audit_overlap_usec;
        o = lag * AUDIT_LAG_MARGIN;
        if (o < AUDIT_OVERLAP_FLOOR_USEC)
                o = AUDIT_OVERLAP_FLOOR_USEC;
        return o < e->audit_overlap_usec ? o : e->audit_overlap_usec;
}

int engine_run(Engine *e, const Generation *g, const RunOptions *o, engine_run_done_t done, void *userdata) {
        _cleanup_strv_free_ char **seen = NULL, **own = NULL;
        const char *last, *from, *post;
        uint64_t last_usec = 0, overlap, from_usec = 0, post_usec = 0;
        bool keep_seen;
        ObserveRequest req;
        int r;

        if (e->running)
                return -EBUSY;
        if (o->mode == RUN_MODE_APPLY && !e->locked)
                return -EROFS;
        run_reset(e);
        e->g = g;
        e->mode = o->mode;
        e->force = o->force;
        e->report_noops = o->report_noops;
        e->cancelled = false;
        e->save_failed = false;
        e->error_code = 0;
        e->generation_since_usec = o->generation_since_usec;
        e->done = done;
        e->userdata = userdata;
        e->started_usec = now_realtime_usec();
        e->requests_at_start = requests_total(e->api);
        if (o->run_id)
                e->run_id = strdup(o->run_id);
        else if (asprintf(&e->run_id, "run-%" PRIx64, e->started_usec) < 0)
                e->run_id = NULL;
        if (!e->run_id)
                return -ENOMEM;
        if (o->mode == RUN_MODE_APPLY && e->fenced)
                return -ESTALE;
        r = pick_refresh(e, e->started_usec);
        if (r < 0)
                return r;
        r = pick_rotation(e);
        if (r < 0)
                return r;
        seen = load_meta_strv(e->ledger, META_AUDIT_SEEN);
        own = load_meta_strv(e->ledger, META_OWN_WRITES);
        /* Gaps: own writes still unmatched after the whole overlap window
         * can never show up any more; the feed lost them, so it may lose
         * others' writes too. This cycle also runs the settings rotation,
         * and the lost writes are dropped. */
        e->audit_gap = false;
        {
                const char *since = ledger_get_meta(e->ledger, META_OWN_WRITES_SINCE);
                uint64_t since_usec = 0;

                if (own && own[0] && since && safe_atou64(since, &since_usec) >= 0 &&
                    e->started_usec > since_usec + e->audit_overlap_usec) {
                        e->audit_gap = true;
                        own = strv_free(own);
                }
        }
        last = ledger_get_meta(e->ledger, META_AUDIT_LAST);
        if (last && safe_atou64(last, &last_usec) < 0)
                last_usec = 0;
        overlap = audit_overlap_now(e, own);
        audit_token_prepare(e, o->mode);
        from = own && own[0] ? ledger_get_meta(e->ledger, META_OWN_WRITES_FROM) : NULL;
        if (from && safe_atou64(from, &from_usec) < 0)
                from_usec = 0;
        post = ledger_get_meta(e->ledger, META_AUDIT_POST);
        keep_seen = post && safe_atou64(post, &post_usec) >= 0 &&
                    e->started_usec < post_usec + 2 * OBSERVE_AUDIT_OWN_SLACK_USEC;
        req = (ObserveRequest) {
                .g = g,
                .ledger = e->ledger,
                .audit_last_usec = last_usec,
                .audit_seen = seen,
                .own_writes = own,
                .refresh = e->refresh,
                .rotation = e->rotation,
                .audit_gap = e->audit_gap,
                .audit_overlap_usec = overlap,
                .audit_own_token_id = e->token_id,
                .own_writes_from_usec = from_usec,
                .audit_keep_seen = keep_seen,
                .priority = o->mode == RUN_MODE_PLAN ? CFAPI_PRIORITY_LOW : CFAPI_PRIORITY_NORMAL,
                .now_usec = e->started_usec,
        };
        r = observe_start(e->api, &req, on_observed, e, &e->observer);
        if (r < 0)
                return r;
        e->running = true;
        return 0;
}
