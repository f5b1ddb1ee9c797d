/* manager.c: see manager.h. */
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <json-c/json.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "cmd-config.h"
#include "engine.h"
#include "history.h"
#include "httpd.h"
#include "log.h"
#include "manager.h"
#include "manager-ha.h"
#include "metrics.h"
#include "notify.h"
#include "secrets.h"
#include "spec.h"
#include "util.h"
#include "watch.h"

#define RUNS_MAX 200                        /* the ring behind /v1/runs (summaries; records on disk) */
#define DEBOUNCE_USEC (200 * USEC_PER_MSEC)
#define PLAN_FRESH_USEC (5 * USEC_PER_SEC)  /* /v1/plan reuses a plan this young */
#define PLAN_STALE_USEC (10 * 60 * USEC_PER_SEC) /* ...and, while a reconcile runs, one this old */
#define STOP_TIMEOUT_USEC (60 * USEC_PER_SEC)
#define ERRORS_LOGGED_MAX 50

typedef enum RunState {
        RUN_STATE_QUEUED,
        RUN_STATE_RUNNING,
        RUN_STATE_DONE,
} RunState;

static const char *const run_state_table[] = {
        [RUN_STATE_QUEUED] = "queued",
        [RUN_STATE_RUNNING] = "running",
        [RUN_STATE_DONE] = "done",
};

typedef struct Run {
        char id[48];
        char *trigger;              /* what queued it first */
        unsigned n_triggers;        /* triggers coalesced into it */
        bool force;
        RunState state;
        RunResult result;
        uint64_t queued_usec, started_usec, finished_usec;  /* CLOCK_REALTIME */
        unsigned n_actions, n_writes, n_requests, n_failed;
        char generation[65];
        unsigned n_pending_removals;        /* deletions waiting for prune_settle */
        uint64_t removals_due_usec;         /* CLOCK_REALTIME; 0: unknown */
        HistoryRef record;                  /* report and text, on disk (history.h) */
        bool interrupted;                   /* HA: leadership lost mid-run */
} Run;

/* Histogram buckets of run durations, seconds. */
static const double duration_buckets[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600 };

struct Manager {
        sd_event *event;
        const Options *options;
        Config *config;
        Config **old_configs;       /* kept alive: the engine may still point into them */
        size_t n_old_configs;

        Engine *engine;
        Httpd *httpd;
        Watch *watch;
        Notifier *notifier;         /* notify: targets */
        sd_event_source *sig_term, *sig_int, *sig_hup;
        sd_event_source *interval;
        sd_event_source *kick;      /* deferred: start the pending run */
        sd_event_source *stop_timer;

        /* generations */
        Generation *gen;            /* last good, enforced */
        Generation *gen_in_run;     /* handed to the running engine run */
        uint64_t gen_since_usec;
        bool gen_settled;           /* an authenticated trigger named this generation: removals need not wait */
        json_object *spec_errors;   /* of the last load attempt; empty array if it loaded */
        size_t n_spec_errors;
        uint64_t last_load_usec;
        bool ready;                 /* a generation loaded once */
        bool notified_ready;

        /* runs */
        Run *ring[RUNS_MAX];        /* oldest first */
        size_t n_ring;
        Run *current, *pending;     /* also in the ring */
        History *history;           /* STATE_DIR/runs.jsonl; NULL: none */
        uint64_t run_seq;
        uint64_t boot_sec;

        /* plan */
        bool plan_running;
        json_object *plan_cache;
        uint64_t plan_cache_usec;   /* CLOCK_MONOTONIC */
        uint64_t plan_served_cached, plan_started, plan_refused;

        /* metrics */
        uint64_t runs_by_result[_RUN_RESULT_MAX];
        uint64_t duration_counts[ELEMENTSOF(duration_buckets)];
        uint64_t duration_count;
        double duration_sum;
        uint64_t triggers, triggers_coalesced;
        uint64_t status_version;        /* moves on every change /v1/status shows (manager_status_changed) */
        uint64_t spec_loads_ok, spec_loads_failed;
        uint64_t last_success_usec;
        uint64_t started_usec;

        bool stopping;
        int exit_code;

        /* high availability (manager-ha.c); NULL without ha: */
        ManagerHA *ha;
        char ha_hold_digest[65];    /* a generation other than the one last enforced: removals wait longer */
        uint64_t ha_hold_since;     /* CLOCK_REALTIME: when this host took over with it */
        bool ha_engine_fresh;       /* the engine was opened over etcd in this leadership term */
        sd_event_source *ha_retry;  /* retries opening it */
};

static bool manager_ha_engine(Manager *m);
static int on_ha_retry(sd_event_source *s, uint64_t usec, void *userdata);

static void manager_ha_run_done(Manager *m, Run *r, const RunReport *report);

static inline uint64_t max_u64(uint64_t a, uint64_t b) {
        return a > b ? a : b;
}

/* ---- secrets ---- */

/* The value of a secret reference, wiped by the caller. */
static int resolve_secret(const SecretRef *ref, char **ret, size_t *ret_size) {
        _cleanup_free_ char *msg = NULL;
        int r;

        r = secrets_resolve(ref, NULL, ret, ret_size, &msg);
        if (r < 0) {
                _cleanup_free_ char *s = secret_ref_to_string(ref);

                return log_error_errno(r, "Cannot read secret %s: %s", strna(s), msg ? msg : strerror(-r));
        }
        return 0;
}

static int manager_apply_auth(Manager *m, const Config *c) {
        _cleanup_(erase_and_freep) char *token = NULL, *hook = NULL;
        size_t token_size = 0, hook_size = 0;
        int r;

        if (c->http_token_set) {
                r = resolve_secret(&c->http_token, &token, &token_size);
                if (r < 0)
                        return r;
        } else
                log_notice("No http_token configured: every POST but the webhook will be refused.");
        if (c->webhook_secret_set) {
                r = resolve_secret(&c->webhook_secret, &hook, &hook_size);
                if (r < 0)
                        return r;
        }
        /* Notification secrets are read at each send; say now if one
         * cannot be, rather than at the first failure. */
        for (size_t i = 0; i < c->n_notify; i++) {
                _cleanup_(erase_and_freep) char *v = NULL;
                _cleanup_free_ char *msg = NULL, *s = NULL;
                size_t n = 0;

                if (!c->notify[i].secret_set)
                        continue;
                r = secrets_resolve(&c->notify[i].secret, NULL, &v, &n, &msg);
                if (r < 0) {
                        s = secret_ref_to_string(&c->notify[i].secret);
                        log_warning("Notifications to %s: cannot read secret %s: %s; they will not be sent until "
                                    "it can be read.", c->notify[i].url, strna(s), msg ? msg : strerror(-r));
                }
        }
        r = httpd_set_webhook_ref(m->httpd, c->webhook_ref);
        if (r < 0)
                return log_error_errno(r, "Out of memory.");
        return httpd_set_auth(m->httpd, token, token_size, c->http_auth_reads, hook, hook_size);
}

/* ---- notify ---- */

/* Something GET /v1/status shows changed: the prepared bytes are stale.
 * Everything runs on the one loop, so where in a change this is called
 * does not matter, only that every change calls it (or notify below). */
static void manager_status_changed(Manager *m) {
        m->status_version++;
}

static void manager_notify_status(Manager *m) {
        const Run *last = NULL;
        char ts[64] = "";

        manager_status_changed(m);

        for (size_t i = m->n_ring; i > 0; i--)
                if (m->ring[i - 1]->state == RUN_STATE_DONE) {
                        last = m->ring[i - 1];
                        break;
                }
        if (last)
                format_rfc3339(last->finished_usec, ts, sizeof(ts));
        (void) sd_notifyf(false, "STATUS=generation %.12s%s%s; %s%s%s%s%s%s",
                          m->gen ? m->gen->digest : "(none)",
                          m->n_spec_errors > 0 ? ", spec rejected: " : "",
                          m->n_spec_errors > 0 ? "errors in /v1/status" : "",
                          m->current ? "reconciling, " : "",
                          last ? "last run " : m->current || m->pending ? "first run starting" : "no run yet",
                          last ? run_result_to_string(last->result) : "",
                          last ? " at " : "", ts,
                          m->stopping ? "; stopping" : "");
}

/* ---- runs ---- */

static Run *run_free(Run *r) {
        if (!r)
                return NULL;
        free(r->trigger);
        return mfree(r);
}

static Run *manager_find_run(Manager *m, const char *id) {
        for (size_t i = m->n_ring; i > 0; i--)   /* newest first */
                if (streq(m->ring[i - 1]->id, id))
                        return m->ring[i - 1];
        return NULL;
}

static json_object *run_to_json(const Manager *m, const Run *r, bool full) {
        json_object *j = json_object_new_object();
        char ts[64];

        if (!j)
                return NULL;
        json_object_object_add(j, "id", json_object_new_string(r->id));
        json_object_object_add(j, "state", json_object_new_string(run_state_table[r->state]));
        json_object_object_add(j, "trigger", json_object_new_string(r->trigger));
        json_object_object_add(j, "n_triggers", json_object_new_int64(r->n_triggers));
        json_object_object_add(j, "force", json_object_new_boolean(r->force));
        json_object_object_add(j, "queued_at", json_object_new_string(format_rfc3339(r->queued_usec, ts, sizeof(ts))));
        if (r->state != RUN_STATE_QUEUED) {
                json_object_object_add(j, "started_at",
                                       json_object_new_string(format_rfc3339(r->started_usec, ts, sizeof(ts))));
                json_object_object_add(j, "generation", json_object_new_string(r->generation));
        }
        if (r->state == RUN_STATE_DONE) {
                json_object_object_add(j, "finished_at",
                                       json_object_new_string(format_rfc3339(r->finished_usec, ts, sizeof(ts))));
                {
                        /* Rounded to milliseconds, printed as such. */
                        uint64_t ms = (r->finished_usec - r->started_usec + 500) / 1000;
                        char d[32];

                        snprintf(d, sizeof(d), "%" PRIu64 ".%03" PRIu64, ms / 1000, ms % 1000);
                        json_object_object_add(j, "duration_sec", json_object_new_double_s((double) ms / 1000, d));
                }
                json_object_object_add(j, "result", json_object_new_string(run_result_to_string(r->result)));
                json_object_object_add(j, "n_actions", json_object_new_int64(r->n_actions));
                json_object_object_add(j, "n_writes", json_object_new_int64(r->n_writes));
                json_object_object_add(j, "n_requests", json_object_new_int64(r->n_requests));
                json_object_object_add(j, "n_failed", json_object_new_int64(r->n_failed));
                if (r->n_pending_removals > 0) {
                        json_object_object_add(j, "pending_removals", json_object_new_int64(r->n_pending_removals));
                        json_object_object_add(j, "removals_due_at", r->removals_due_usec ?
                                               json_object_new_string(format_rfc3339(r->removals_due_usec, ts,
                                                                                     sizeof(ts))) : NULL);
                }
                if (full && m->history) {
                        _cleanup_(json_object_putp) json_object *rec = NULL;
                        json_object *v;

                        if (history_read(m->history, &r->record, &rec) >= 0) {
                                if (json_object_object_get_ex(rec, "report", &v) && v)
                                        json_object_object_add(j, "report", json_object_get(v));
                                if (json_object_object_get_ex(rec, "text", &v) && v)
                                        json_object_object_add(j, "text", json_object_get(v));
                        }
                }
                if (r->interrupted)
                        json_object_object_add(j, "interrupted", json_object_new_boolean(true));
        }
        return j;
}

/* What history keeps of a report: actions with their reasons, not no-ops.
 * Shares the report's values (references), copies nothing. */
static json_object *report_for_history(json_object *report) {
        json_object *copy;

        if (!report || !json_object_is_type(report, json_type_object))
                return NULL;
        copy = json_object_new_object();
        if (!copy)
                return NULL;
        json_object_object_foreach(report, key, val) {
                json_object *kept;

                if (!streq(key, "actions") || !json_object_is_type(val, json_type_array)) {
                        json_object_object_add(copy, key, json_object_get(val));
                        continue;
                }
                kept = json_object_new_array();
                if (!kept)
                        continue;
                for (size_t i = 0; i < json_object_array_length(val); i++) {
                        json_object *a = json_object_array_get_idx(val, i), *k, *w;

                        if (json_object_object_get_ex(a, "action", &k) && streq(json_object_get_string(k), "no-op") &&
                            !(json_object_object_get_ex(a, "waiting", &w) && json_object_get_boolean(w)))
                                continue;
                        json_object_array_add(kept, json_object_get(a));
                }
                json_object_object_add(copy, key, kept);
        }
        return copy;
}

/* Appends a finished run's record (summary, report, text) to the history
 * file; the run keeps where it lies. */
static void manager_save_run(Manager *m, Run *x, const RunReport *report) {
        _cleanup_(json_object_putp) json_object *j = NULL;
        int r;

        if (!m->history)
                return;
        j = run_to_json(m, x, false);
        if (!j)
                return;
        json_object_object_add(j, "queued_usec", json_object_new_int64((int64_t) x->queued_usec));
        json_object_object_add(j, "started_usec", json_object_new_int64((int64_t) x->started_usec));
        json_object_object_add(j, "finished_usec", json_object_new_int64((int64_t) x->finished_usec));
        json_object_object_add(j, "report", report_for_history(report->json));
        if (report->text)
                json_object_object_add(j, "text", json_object_new_string(report->text));
        r = history_append(m->history, j, &x->record);
        if (r == -EFBIG) {
                /* Too big to keep whole: the summary at least. */
                json_object_object_del(j, "report");
                json_object_object_del(j, "text");
                r = history_append(m->history, j, &x->record);
        }
        if (r < 0)
                log_warning_errno(r, "Cannot append reconcile %s to the run history, ignoring: %m", x->id);
}

static const char *jget_str(json_object *o, const char *k) {
        json_object *v;

        return o && json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : NULL;
}

static uint64_t jget_u64(json_object *o, const char *k) {
        json_object *v;

        return o && json_object_object_get_ex(o, k, &v) && v ? (uint64_t) json_object_get_int64(v) : 0;
}

static int manager_push_run(Manager *m, Run *r);

/* One record of the history file → a summary in the ring. */
static void load_run(json_object *j, const HistoryRef *ref, void *userdata) {
        Manager *m = userdata;
        const char *id = jget_str(j, "id"), *res = jget_str(j, "result");
        json_object *v;
        Run *x;

        if (!id || strlen(id) >= sizeof(x->id) || !res)
                return;
        x = calloc(1, sizeof(Run));
        if (!x)
                return;
        snprintf(x->id, sizeof(x->id), "%s", id);
        x->trigger = strdup(jget_str(j, "trigger") ?: "unknown");
        if (!x->trigger) {
                run_free(x);
                return;
        }
        x->n_triggers = (unsigned) jget_u64(j, "n_triggers");
        x->force = json_object_object_get_ex(j, "force", &v) && json_object_get_boolean(v);
        x->state = RUN_STATE_DONE;
        x->result = RUN_RESULT_FAILED;
        for (int k = 0; k < _RUN_RESULT_MAX; k++)
                if (streq_ptr(run_result_to_string(k), res))
                        x->result = k;
        x->queued_usec = jget_u64(j, "queued_usec");
        x->started_usec = jget_u64(j, "started_usec");
        x->finished_usec = jget_u64(j, "finished_usec");
        x->n_actions = (unsigned) jget_u64(j, "n_actions");
        x->n_writes = (unsigned) jget_u64(j, "n_writes");
        x->n_requests = (unsigned) jget_u64(j, "n_requests");
        x->n_failed = (unsigned) jget_u64(j, "n_failed");
        x->n_pending_removals = (unsigned) jget_u64(j, "pending_removals");
        snprintf(x->generation, sizeof(x->generation), "%s", jget_str(j, "generation") ?: "");
        x->record = *ref;
        (void) manager_push_run(m, x);
        /* Run ids stay unique across a restart within the same second. */
        {
                uint64_t boot = 0;
                _cleanup_free_ char *prefix = strndup(id, strcspn(id, "-"));

                if (prefix && safe_atou64(prefix, &boot) >= 0 && boot >= m->boot_sec)
                        m->boot_sec = boot + 1;
        }
}

/* Opens the history file and loads its summaries (a missing file is an
 * empty history; what cannot be read is reported and ignored: history is
 * not state). */
static void manager_load_runs(Manager *m) {
        int r;

        manager_status_changed(m);   /* the ring from disk */
        if (!m->config->state_dir)
                return;
        r = history_open(&m->history, m->config->state_dir, 0);
        if (r < 0) {
                log_warning_errno(r, "Cannot open the run history in '%s', keeping none: %m", m->config->state_dir);
                return;
        }
        r = history_load(m->history, load_run, m);
        if (r < 0)
                log_warning_errno(r, "Cannot read the run history in '%s', ignoring: %m", m->config->state_dir);
        else if (r > 0)
                log_info("Run history: %zu runs loaded from '%s/%s'.", m->n_ring, m->config->state_dir, HISTORY_FILE);
}

static int manager_push_run(Manager *m, Run *r) {
        manager_status_changed(m);
        if (m->n_ring == RUNS_MAX) {
                /* The oldest is done: only the two newest can be queued or running. */
                run_free(m->ring[0]);
                memmove(m->ring, m->ring + 1, sizeof(Run *) * (RUNS_MAX - 1));
                m->n_ring--;
        }
        m->ring[m->n_ring++] = r;
        return 0;
}

static void manager_kick(Manager *m) {
        (void) sd_event_source_set_enabled(m->kick, SD_EVENT_ONESHOT);
}

static void manager_finish_stop(Manager *m) {
        if (m->stopping && !engine_is_running(m->engine))
                (void) sd_event_exit(m->event, m->exit_code);
}

/* A failed or blocked run says why: the run's own error, then one line
 * per failed or blocked resource (BINDERY_RESOURCE, BINDERY_REASON). */
static void log_run_why(Manager *m, const Run *r, const RunReport *report) {
        size_t n_st = 0;
        const ResourceStatus *st = engine_status(m->engine, &n_st);
        json_object *err = NULL;
        unsigned n = 0;

        if (report->json && json_object_object_get_ex(report->json, "error", &err) && err)
                log_event_reason(LOG_ERR, r->id, NULL, json_object_get_string(err),
                                 "Reconcile %s: %s", r->id, json_object_get_string(err));
        for (size_t i = 0; i < n_st; i++) {
                const ResourceStatus *x = &st[i];
                _cleanup_free_ char *res = NULL;

                if (x->state != RESOURCE_STATE_FAILED && x->state != RESOURCE_STATE_BLOCKED)
                        continue;
                if (++n > ERRORS_LOGGED_MAX)
                        continue;
                if (asprintf(&res, "%s/%s", x->kind, x->name) < 0)
                        return;
                log_event_reason(LOG_WARNING, r->id, res, x->reason, "%s %s: %s", res,
                                 resource_state_to_string(x->state),
                                 !isempty(x->reason) ? x->reason : "(no reason recorded)");
        }
        if (n > ERRORS_LOGGED_MAX)
                log_warning("... and %u more failed or blocked resources (GET /v1/status).", n - ERRORS_LOGGED_MAX);
}

static void on_token_checked(int error, const char *finding, void *userdata) {
        if (error == -ECANCELED)
                return;
        if (error < 0)
                log_error("Token check (GET /user/tokens/verify): %s.", finding);
        else
                log_info("Token check (GET /user/tokens/verify): %s.", finding);
}

static void on_run_done(Engine *e, const RunReport *report, void *userdata) {
        Manager *m = userdata;
        Run *r = m->current;
        double sec;

        m->current = NULL;
        if (m->gen_in_run && m->gen_in_run != m->gen)
                generation_free(m->gen_in_run);
        m->gen_in_run = NULL;

        if (r) {
                r->state = RUN_STATE_DONE;
                r->result = report->result;
                r->finished_usec = now_realtime_usec();
                r->n_actions = report->n_actions;
                r->n_writes = report->n_writes;
                r->n_requests = report->n_requests;
                r->n_failed = report->n_failed;
                {
                        json_object *w;

                        if (report->json && json_object_object_get_ex(report->json, "waiting", &w))
                                r->n_pending_removals = (unsigned) json_object_get_int(w);
                        if (r->n_pending_removals > 0 && m->gen && streq(r->generation, m->gen->digest))
                                r->removals_due_usec = m->gen_since_usec + m->config->prune_settle_usec;
                }

                if (report->result >= 0 && report->result < _RUN_RESULT_MAX)
                        m->runs_by_result[report->result]++;
                sec = (double) (r->finished_usec - r->started_usec) / 1e6;
                m->duration_sum += sec;
                m->duration_count++;
                for (size_t i = 0; i < ELEMENTSOF(duration_buckets); i++)
                        if (sec <= duration_buckets[i])
                                m->duration_counts[i]++;
                if (report->result == RUN_RESULT_OK || report->result == RUN_RESULT_CHANGES ||
                    report->result == RUN_RESULT_DRIFT)
                        m->last_success_usec = r->finished_usec;

                if (report->result == RUN_RESULT_FAILED || report->result == RUN_RESULT_BLOCKED)
                        log_run_why(m, r, report);
                if (m->ha)
                        manager_ha_run_done(m, r, report);
                manager_save_run(m, r, report);
                {
                        /* Notifications look at failed, blocked and drifted ones only. */
                        _cleanup_(json_object_putp) json_object *st = engine_status_json(m->engine, true);
                        NotifyRun nr = {
                                .run_id = r->id,
                                .result = run_result_to_string(report->result),
                                .failed = report->result == RUN_RESULT_FAILED,
                                .blocked = report->result == RUN_RESULT_BLOCKED,
                                .generation = r->generation[0] ? r->generation : NULL,
                                .resources = st,
                        };

                        if (notifier_run_finished(m->notifier, m->config, &nr) < 0)
                                log_warning("Out of memory: notifications of reconcile %s not queued.", r->id);
                }
                log_event(report->result == RUN_RESULT_OK ? LOG_INFO :
                          report->result == RUN_RESULT_CHANGES || report->result == RUN_RESULT_DRIFT ? LOG_NOTICE
                                                                                                      : LOG_WARNING,
                          r->id, NULL, "finished",
                          "Reconcile %s finished: %s, %u actions, %u writes, %u API requests, %u failed, %.2fs.",
                          r->id, run_result_to_string(report->result), report->n_actions, report->n_writes,
                          report->n_requests, report->n_failed, sec);
        }
        log_set_context(NULL, NULL, NULL);
        manager_notify_status(m);
        httpd_wake(m->httpd);
        /* A run's trees are freed by now: give the pages back, so the
         * daemon's RSS between runs is what it holds, not its peak. */
        (void) malloc_trim(0);
        if (m->stopping) {
                manager_finish_stop(m);
                return;
        }
        manager_kick(m);
}

static void on_plan_done(Engine *e, const RunReport *report, void *userdata) {
        Manager *m = userdata;
        json_object *j;
        char ts[64];

        m->plan_running = false;
        manager_status_changed(m);      /* a plan rebuilds the per-resource status too */
        if (m->gen_in_run && m->gen_in_run != m->gen)
                generation_free(m->gen_in_run);
        m->gen_in_run = NULL;

        j = json_object_new_object();
        if (j) {
                json_object_object_add(j, "result", json_object_new_string(run_result_to_string(report->result)));
                json_object_object_add(j, "planned_at",
                                       json_object_new_string(format_rfc3339(now_realtime_usec(), ts, sizeof(ts))));
                json_object_object_add(j, "generation", m->gen ? json_object_new_string(m->gen->digest) : NULL);
                json_object_object_add(j, "n_actions", json_object_new_int64(report->n_actions));
                json_object_object_add(j, "n_requests", json_object_new_int64(report->n_requests));
                if (report->json)
                        json_object_object_add(j, "report", json_object_get(report->json));
                if (report->text)
                        json_object_object_add(j, "text", json_object_new_string(report->text));
                json_object_put(m->plan_cache);
                m->plan_cache = j;
                m->plan_cache_usec = now_monotonic_usec();
        }
        log_debug("Plan finished: %s, %u actions.", run_result_to_string(report->result), report->n_actions);
        httpd_wake(m->httpd);
        if (m->stopping) {
                manager_finish_stop(m);
                return;
        }
        manager_kick(m);
}

/* Starts the pending reconcile if the engine is free. */
static int on_kick(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        RunOptions o = {};
        Run *r = m->pending;
        int k;

        if (!r || m->stopping || engine_is_running(m->engine))
                return 0;
        if (m->ha && !manager_ha_is_leader(m->ha))
                return 0;       /* only the leader runs; the pending run waits for leadership */
        if (m->ha && !manager_ha_engine(m))
                return 0;       /* retried by m->ha_retry */

        m->pending = NULL;
        m->current = r;
        r->state = RUN_STATE_RUNNING;
        r->started_usec = now_realtime_usec();
        if (m->gen)
                memcpy(r->generation, m->gen->digest, sizeof(r->generation));
        m->gen_in_run = m->gen;

        o.mode = RUN_MODE_APPLY;
        o.force = r->force;
        o.run_id = r->id;
        /* 1 µs past the epoch: settled long ago (plan.c settled()). */
        o.generation_since_usec = m->gen_settled ? 1 : m->gen_since_usec;
        if (!m->gen_settled && m->gen && m->ha && streq(m->ha_hold_digest, m->gen->digest))
                /* HA: a new leader's generation differs from the one last
                 * enforced: removals wait until it has been stable, and
                 * this host leading, for prune_settle twice over. */
                o.generation_since_usec = max_u64(m->gen_since_usec, m->ha_hold_since) +
                                          m->config->prune_settle_usec;
        log_set_context(r->id, NULL, NULL);
        log_event(LOG_INFO, r->id, NULL, "start", "Reconcile %s started (trigger: %s%s, generation %.12s).",
                  r->id, r->trigger, r->force ? ", force" : "", m->gen ? m->gen->digest : "none: spec not loaded");
        if (engine_token_problem(m->engine))
                log_event_reason(LOG_ERR, r->id, NULL, engine_token_problem(m->engine), "Reconcile %s: %s.",
                                 r->id, engine_token_problem(m->engine));
        k = engine_run(m->engine, m->gen, &o, on_run_done, m);
        if (k < 0) {
                RunReport failed = { .result = RUN_RESULT_FAILED };

                log_error_errno(k, "Failed to start reconcile %s: %m", r->id);
                on_run_done(m->engine, &failed, m);
                return 0;
        }
        manager_notify_status(m);
        httpd_wake(m->httpd);  /* waiters see "running" */
        return 0;
}

/* Queues a reconcile, or joins the pending one. */
static int manager_trigger(Manager *m, const char *reason, bool force, const char **ret_id) {
        Run *r;

        if (m->stopping)
                return -ESHUTDOWN;
        if (m->ha && !manager_ha_is_leader(m->ha))
                return -EAGAIN;         /* a follower does not reconcile (httpd forwards to the leader) */
        m->triggers++;
        manager_status_changed(m);      /* n_triggers, force, a new pending run */
        if (m->pending) {
                m->pending->n_triggers++;
                m->pending->force = m->pending->force || force;
                m->triggers_coalesced++;
                log_debug("Trigger '%s' joins pending run %s.", reason, m->pending->id);
                if (ret_id)
                        *ret_id = m->pending->id;
                return 0;
        }
        r = calloc(1, sizeof(Run));
        if (!r)
                return -ENOMEM;
        r->trigger = strdup(reason);
        if (!r->trigger) {
                run_free(r);
                return -ENOMEM;
        }
        snprintf(r->id, sizeof(r->id), "%" PRIu64 "-%" PRIu64, m->boot_sec, ++m->run_seq);
        r->n_triggers = 1;
        r->force = force;
        r->state = RUN_STATE_QUEUED;
        r->queued_usec = now_realtime_usec();
        manager_push_run(m, r);
        m->pending = r;
        log_debug("Reconcile %s queued (trigger: %s).", r->id, reason);

        /* A reconcile outranks a plan: stop the plan, start when it ends. */
        if (m->plan_running)
                engine_cancel(m->engine);
        manager_kick(m);
        if (ret_id)
                *ret_id = r->id;
        return 0;
}

/* ---- spec ---- */

static void log_spec_errors(const SpecErrors *errs) {
        for (size_t i = 0; i < errs->n && i < ERRORS_LOGGED_MAX; i++) {
                _cleanup_free_ char *s = spec_error_to_string(&errs->errors[i]);

                log_warning("%s", strna(s));
        }
        if (errs->n + errs->n_dropped > ERRORS_LOGGED_MAX)
                log_warning("... and %zu more errors.", errs->n + errs->n_dropped - ERRORS_LOGGED_MAX);
}

/* Loads the spec. Returns 1 if a new generation became current, 0 if
 * nothing changed or it failed (the last good one stays). */
static int manager_load_spec(Manager *m) {
        _cleanup_(spec_errors_done) SpecErrors errs = {};
        _cleanup_(spec_grant_done) SpecGrant grant = {};
        Generation *g = NULL;
        json_object *ej;
        int r;

        m->last_load_usec = now_realtime_usec();
        manager_status_changed(m);
        r = config_spec_grant(m->config, &grant);
        if (r < 0)
                return log_error_errno(r, "Out of memory.");
        r = spec_reload(m->config->spec_dir, &grant, m->gen, &g, &errs);
        if (r < 0) {
                m->spec_loads_failed++;
                ej = spec_errors_to_json(&errs);
                if (ej) {
                        /* Each error also as one "FILE:LINE:COLUMN: message" line. */
                        for (size_t i = 0; i < json_object_array_length(ej) && i < errs.n; i++) {
                                _cleanup_free_ char *s = spec_error_to_string(&errs.errors[i]);

                                if (s)
                                        json_object_object_add(json_object_array_get_idx(ej, i), "text",
                                                               json_object_new_string(s));
                        }
                        json_object_put(m->spec_errors);
                        m->spec_errors = ej;
                }
                m->n_spec_errors = errs.n + errs.n_dropped;
                log_warning("Spec in '%s' rejected with %zu errors; still enforcing generation %.12s.",
                            m->config->spec_dir, m->n_spec_errors, m->gen ? m->gen->digest : "(none)");
                log_spec_errors(&errs);
                return 0;
        }

        m->spec_loads_ok++;
        m->n_spec_errors = 0;
        json_object_put(m->spec_errors);
        m->spec_errors = json_object_new_array();
        m->ready = true;
        if (m->gen && streq(m->gen->digest, g->digest)) {
                generation_free(g);
                log_debug("Spec unchanged (generation %.12s).", m->gen->digest);
                return 0;
        }
        log_info("Spec generation %.12s loaded: %zu files, %zu workers.", g->digest,
                 strv_length(g->files), g->n_workers);
        engine_generation_inherit(g, m->gen);
        if (m->gen && m->gen != m->gen_in_run)
                generation_free(m->gen);
        m->gen = g;
        m->gen_since_usec = now_realtime_usec();
        m->gen_settled = false;
        /* A new generation makes any cached plan moot. */
        json_object_put(m->plan_cache);
        m->plan_cache = NULL;
        return 1;
}

static void on_spec_changed(Watch *w, void *userdata) {
        Manager *m = userdata;

        if (m->stopping)
                return;
        if (manager_load_spec(m) > 0)
                (void) manager_trigger(m, "spec-change", false, NULL);
        manager_notify_status(m);
}

/* ---- timers and signals ---- */

static uint64_t jittered(uint64_t usec) {
        uint32_t rnd = 0;

        /* ±10%: a fleet of daemons started together spreads out. */
        (void) getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK);
        return usec - usec / 10 + (uint64_t) ((double) rnd / UINT32_MAX * (double) (usec / 5));
}

static int on_interval(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        (void) manager_trigger(m, "interval", false, NULL);
        (void) sd_event_source_set_time_relative(s, jittered(m->config->interval_usec));
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_error("In-flight calls did not finish within %" PRIu64 "s; exiting anyway.",
                  STOP_TIMEOUT_USEC / USEC_PER_SEC);
        m->exit_code = EXIT_FAILED;
        (void) sd_event_exit(m->event, m->exit_code);
        return 0;
}

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        if (m->stopping) {
                log_notice("Second signal: exiting now.");
                return sd_event_exit(m->event, EXIT_FAILED);
        }
        m->stopping = true;
        (void) sd_notify(false, "STOPPING=1");
        if (m->ha)
                manager_ha_resign(m->ha);       /* hand over first: a follower leads within ~2 s */
        manager_notify_status(m);
        log_info("Received %s; %s", strsignal((int) si->ssi_signo),
                 engine_is_running(m->engine) ? "finishing in-flight calls." : "stopping.");
        httpd_shutdown(m->httpd);
        if (engine_is_running(m->engine)) {
                engine_cancel(m->engine);
                (void) sd_event_add_time_relative(m->event, &m->stop_timer, CLOCK_MONOTONIC,
                                                  STOP_TIMEOUT_USEC, USEC_PER_SEC, on_stop_timeout, m);
        }
        manager_finish_stop(m);
        return 0;
}

static int manager_reload(Manager *m) {
        _cleanup_(config_freep) Config *c = NULL;
        ConfigError *errs = NULL;
        size_t n_errs = 0;
        Config **l;
        int r;

        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading...",
                          now_monotonic_usec());
        log_info("Reloading configuration and spec.");

        r = config_load(m->config->path, m->options, &c, &errs, &n_errs);
        if (r < 0) {
                config_log_errors(m->config->path, r, errs, n_errs);
                log_error("New configuration rejected; keeping the running one.");
                config_errors_free(errs, n_errs);
        } else {
                if (!strv_equal(c->listen, m->config->listen))
                        log_notice("'listen' changed; restart the daemon to apply it.");
                if (!streq(c->state_dir, m->config->state_dir))
                        log_notice("'state_dir' changed; restart the daemon to apply it.");
                if (!!c->ha != !!m->config->ha || (c->ha && !strv_equal(c->ha->etcd, m->config->ha->etcd)))
                        log_notice("'ha' changed; restart the daemon to apply it.");
                r = engine_set_config(m->engine, c);
                if (r < 0)
                        log_error_errno(r, "Engine rejected the new configuration, keeping the old one: %m");
                else if (manager_apply_auth(m, c) < 0)
                        log_error("Could not read the new configuration's tokens; keeping the old ones.");
                if (r >= 0) {
                        l = realloc(m->old_configs, sizeof(Config *) * (m->n_old_configs + 1));
                        if (l) {
                                m->old_configs = l;
                                m->old_configs[m->n_old_configs++] = m->config;
                                m->config = TAKE_PTR(c);
                                if (!streq(m->config->spec_dir, m->old_configs[m->n_old_configs - 1]->spec_dir)) {
                                        /* A new spec directory: watch it instead. */
                                        m->watch = watch_free(m->watch);
                                        r = watch_new(&m->watch, m->event, m->config->spec_dir, DEBOUNCE_USEC,
                                                      on_spec_changed, m);
                                        if (r < 0)
                                                log_warning_errno(r, "Cannot watch '%s', ignoring: %m",
                                                                  m->config->spec_dir);
                                        log_info("Now watching spec directory '%s'.", m->config->spec_dir);
                                }
                                if (!m->options->log_level)
                                        log_set_max_level(m->config->log_level);
                                (void) sd_event_source_set_time_relative(m->interval,
                                                                         jittered(m->config->interval_usec));
                                (void) sd_event_source_set_enabled(m->interval, SD_EVENT_ONESHOT);
                                log_info("Configuration reloaded.");
                        }
                }
        }

        /* The spec too: a reload always re-reads it and reconciles. */
        (void) manager_load_spec(m);
        (void) manager_trigger(m, "reload", false, NULL);
        (void) sd_notify(false, "READY=1");
        manager_notify_status(m);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        if (!m->stopping)
                (void) manager_reload(m);
        return 0;
}

/* ---- the HTTP backend ---- */

static json_object *backend_status(void *userdata) {
        Manager *m = userdata;
        _cleanup_(json_object_putp) json_object *j = json_object_new_object();
        json_object *d, *g, *files, *res, *counts;
        const Run *last = NULL;
        char ts[64];
        unsigned by_state[_RESOURCE_STATE_MAX] = {};

        if (!j)
                return NULL;
        d = json_object_new_object();
        json_object_object_add(j, "daemon", d);
        if (m->ha)
                json_object_object_add(j, "ha", manager_ha_status_json(m->ha));
        json_object_object_add(d, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(d, "pid", json_object_new_int64(getpid()));
        json_object_object_add(d, "started_at",
                               json_object_new_string(format_rfc3339(m->started_usec, ts, sizeof(ts))));
        json_object_object_add(d, "ready", json_object_new_boolean(m->ready));
        json_object_object_add(d, "stopping", json_object_new_boolean(m->stopping));
        json_object_object_add(d, "account_id", json_object_new_string(m->config->account_id));
        json_object_object_add(d, "api_url", json_object_new_string(m->config->api_url));
        json_object_object_add(d, "spec_dir", json_object_new_string(m->config->spec_dir));
        json_object_object_add(d, "interval", json_object_new_string(format_duration(m->config->interval_usec,
                                                                                     ts, sizeof(ts))));
        json_object_object_add(d, "prune", json_object_new_boolean(m->config->prune));
        json_object_object_add(d, "allow_empty", json_object_new_boolean(m->config->allow_empty));
        {
                _cleanup_free_ char *ref = secret_ref_to_string(&m->config->api_token);

                json_object_object_add(d, "api_token", json_object_new_string(strna(ref)));  /* a reference only */
        }

        g = json_object_new_object();
        json_object_object_add(j, "generation", g);
        json_object_object_add(g, "state", json_object_new_string(m->n_spec_errors > 0 ? "rejected" :
                                                                  m->gen ? "ok" : "none"));
        json_object_object_add(g, "digest", m->gen ? json_object_new_string(m->gen->digest) : NULL);
        files = json_object_new_array();
        if (m->gen)
                for (char **f = m->gen->files; f && *f; f++)
                        json_object_array_add(files, json_object_new_string(*f));
        json_object_object_add(g, "files", files);
        json_object_object_add(g, "loaded_at", m->gen ?
                               json_object_new_string(format_rfc3339(m->gen->loaded_usec, ts, sizeof(ts))) : NULL);
        json_object_object_add(g, "since", m->gen ?
                               json_object_new_string(format_rfc3339(m->gen_since_usec, ts, sizeof(ts))) : NULL);
        json_object_object_add(g, "last_load_at", m->last_load_usec ?
                               json_object_new_string(format_rfc3339(m->last_load_usec, ts, sizeof(ts))) : NULL);
        json_object_object_add(g, "errors", m->spec_errors ? json_object_get(m->spec_errors) : json_object_new_array());
        /* Removals wait until the generation has been stable for prune_settle. */
        json_object_object_add(g, "settled_at", m->gen ?
                               json_object_new_string(format_rfc3339(m->gen_settled ? m->gen_since_usec :
                                                                     m->gen_since_usec + m->config->prune_settle_usec,
                                                                     ts, sizeof(ts))) : NULL);
        if (m->gen && m->gen->n_workers + m->gen->n_kv_namespaces + m->gen->n_r2_buckets + m->gen->n_d1_databases +
                      m->gen->n_queues + m->gen->n_secrets_stores + m->gen->n_secrets_store_secrets == 0)
                json_object_object_add(g, "empty", json_object_new_string(
                        m->config->allow_empty ? "no documents; allow_empty: true lets it delete"
                                               : "no documents: nothing is deleted (set allow_empty: true to allow)"));

        for (size_t i = m->n_ring; i > 0; i--)
                if (m->ring[i - 1]->state == RUN_STATE_DONE) {
                        last = m->ring[i - 1];
                        break;
                }
        json_object_object_add(j, "current_run", m->current ? run_to_json(m, m->current, false) : NULL);
        json_object_object_add(j, "pending_run", m->pending ? run_to_json(m, m->pending, false) : NULL);
        json_object_object_add(j, "last_run", last ? run_to_json(m, last, false) : NULL);
        {
                const char *why = NULL;
                ChangeDetection mode = engine_change_detection(m->engine, &why);
                json_object *cd = json_object_new_object();

                json_object_object_add(cd, "mode", json_object_new_string(change_detection_to_string(mode)));
                json_object_object_add(cd, "reason", why ? json_object_new_string(why) : NULL);
                json_object_object_add(j, "change_detection", cd);
        }
        if (last && last->n_pending_removals > 0) {
                json_object_object_add(j, "pending_removals", json_object_new_int64(last->n_pending_removals));
                json_object_object_add(j, "removals_due_at", last->removals_due_usec ?
                                       json_object_new_string(format_rfc3339(last->removals_due_usec, ts, sizeof(ts)))
                                       : NULL);
        }

        res = engine_status_json(m->engine, false);
        if (!res)
                res = json_object_new_array();
        {
                size_t n_st = 0;
                const ResourceStatus *st = engine_status(m->engine, &n_st);

                for (size_t i = 0; i < n_st; i++)
                        by_state[st[i].state]++;
        }
        json_object_object_add(j, "resources", res);
        counts = json_object_new_object();
        for (int k = 0; k < _RESOURCE_STATE_MAX; k++)
                json_object_object_add(counts, resource_state_to_string(k), json_object_new_int64(by_state[k]));
        json_object_object_add(j, "summary", counts);
        return TAKE_PTR(j);
}

/* The version of what backend_status() answers: the manager's changes
 * plus the engine's (a run's status, the change detection). Both only
 * grow, so their sum moves whenever either does. */
static uint64_t backend_status_version(void *userdata) {
        Manager *m = userdata;

        return m->status_version + engine_status_generation(m->engine);
}

static json_object *backend_runs(void *userdata) {
        Manager *m = userdata;
        json_object *a = json_object_new_array();

        if (!a)
                return NULL;
        for (size_t i = m->n_ring; i > 0; i--)
                json_object_array_add(a, run_to_json(m, m->ring[i - 1], false));
        return a;
}

static json_object *backend_run(void *userdata, const char *id) {
        Manager *m = userdata;
        Run *r = manager_find_run(m, id);

        return r ? run_to_json(m, r, true) : NULL;
}

static int backend_trigger(void *userdata, const char *reason, bool force, char **ret_run_id) {
        Manager *m = userdata;
        const char *id = NULL;
        int r;

        r = manager_trigger(m, reason, force, &id);
        if (r < 0)
                return r;
        *ret_run_id = strdup(id);
        return *ret_run_id ? 0 : -ENOMEM;
}

/* POST /v1/reconcile and the webhook: the run applies what is on disk now,
 * whatever the watch has or has not seen yet. */
static int backend_trigger_load(void *userdata, const char *reason, bool force, const char *expect,
                                char **ret_run_id, json_object **ret_detail) {
        Manager *m = userdata;

        if (m->stopping)
                return -ESHUTDOWN;
        (void) manager_load_spec(m);
        manager_notify_status(m);
        if (expect) {
                bool rejected = m->n_spec_errors > 0;

                if (rejected || !m->gen || !startswith(m->gen->digest, expect)) {
                        _cleanup_(json_object_putp) json_object *j = json_object_new_object();

                        if (!j)
                                return -ENOMEM;
                        json_object_object_add(j, "error", json_object_new_string(
                                rejected ? "the spec directory was rejected; it does not produce the expected generation"
                                         : "the spec directory produces another generation than the expected one"));
                        json_object_object_add(j, "status", json_object_new_int(412));
                        json_object_object_add(j, "expected", json_object_new_string(expect));
                        json_object_object_add(j, "digest", !rejected && m->gen ?
                                               json_object_new_string(m->gen->digest) : NULL);
                        json_object_object_add(j, "enforced", m->gen ? json_object_new_string(m->gen->digest) : NULL);
                        json_object_object_add(j, "errors", m->spec_errors && rejected ?
                                               json_object_get(m->spec_errors) : json_object_new_array());
                        log_notice("Trigger expected generation %s; the spec directory %s %.12s.", expect,
                                   rejected ? "was rejected, still enforcing" : "produces",
                                   m->gen ? m->gen->digest : "(none)");
                        *ret_detail = TAKE_PTR(j);
                        return -ESTALE;
                }
                /* The writer says it is done: this generation's removals need not wait. */
                if (!m->gen_settled)
                        log_info("Generation %.12s settled by a trigger that expected it.", m->gen->digest);
                m->gen_settled = true;
                manager_status_changed(m);
        }
        return backend_trigger(userdata, reason, force, ret_run_id);
}

static int backend_plan(void *userdata, json_object **ret, unsigned *ret_retry_after) {
        Manager *m = userdata;
        uint64_t age = m->plan_cache ? now_monotonic_usec() - m->plan_cache_usec : UINT64_MAX;
        RunOptions o = { .mode = RUN_MODE_PLAN, .run_id = "plan" };
        int r;

        if (m->plan_cache && age < PLAN_FRESH_USEC) {
                m->plan_served_cached++;
                *ret = json_object_get(m->plan_cache);
                return 0;
        }
        if (m->plan_running)
                return -EINPROGRESS;
        if (m->current || m->pending || engine_is_running(m->engine)) {
                /* Never delay or starve a reconcile: a recent plan, or come back later. */
                if (m->plan_cache && age < PLAN_STALE_USEC) {
                        m->plan_served_cached++;
                        *ret = json_object_get(m->plan_cache);
                        return 0;
                }
                m->plan_refused++;
                *ret_retry_after = 5;
                return -EBUSY;
        }
        m->gen_in_run = m->gen;
        o.generation_since_usec = m->gen_since_usec;
        r = engine_run(m->engine, m->gen, &o, on_plan_done, m);
        if (r == -EBUSY) {
                m->gen_in_run = NULL;
                *ret_retry_after = 5;
                return -EBUSY;
        }
        if (r < 0) {
                m->gen_in_run = NULL;
                return r;
        }
        m->plan_running = true;
        m->plan_started++;
        return -EINPROGRESS;
}

static bool backend_ready(void *userdata) {
        Manager *m = userdata;

        return m->ready;
}

/* /metrics: runs, triggers and plans. */
static void metrics_runs(Manager *m, Metrics *x) {
        static const char *const results[] = { "ok", "changes", "failed", "blocked", "drift", "interrupted" };
        char le[32];

        metrics_family(x, "bindery_runs_total", "counter", "Finished reconcile runs by result.");
        for (size_t i = 0; i < ELEMENTSOF(results) && i < _RUN_RESULT_MAX; i++)
                metrics_sample(x, "bindery_runs_total", (double) m->runs_by_result[i], "result", results[i], NULL);
        metrics_family(x, "bindery_run_running", "gauge", "1 while a reconcile runs.");
        metrics_sample(x, "bindery_run_running", m->current ? 1 : 0, NULL);
        metrics_family(x, "bindery_run_pending", "gauge", "1 while a reconcile waits to start.");
        metrics_sample(x, "bindery_run_pending", m->pending ? 1 : 0, NULL);
        metrics_family(x, "bindery_run_duration_seconds", "histogram", "Reconcile run durations.");
        for (size_t i = 0; i < ELEMENTSOF(duration_buckets); i++) {
                snprintf(le, sizeof(le), "%g", duration_buckets[i]);
                metrics_sample(x, "bindery_run_duration_seconds_bucket", (double) m->duration_counts[i],
                               "le", le, NULL);
        }
        metrics_sample(x, "bindery_run_duration_seconds_bucket", (double) m->duration_count, "le", "+Inf", NULL);
        metrics_sample(x, "bindery_run_duration_seconds_sum", m->duration_sum, NULL);
        metrics_sample(x, "bindery_run_duration_seconds_count", (double) m->duration_count, NULL);
        metrics_family(x, "bindery_last_success_timestamp_seconds", "gauge",
                       "When the last reconcile that did not fail finished (Unix time).");
        metrics_sample(x, "bindery_last_success_timestamp_seconds", (double) (m->last_success_usec / USEC_PER_SEC),
                       NULL);
        metrics_family(x, "bindery_triggers_total", "counter", "Reconcile triggers received.");
        metrics_sample(x, "bindery_triggers_total", (double) m->triggers, NULL);
        metrics_family(x, "bindery_triggers_coalesced_total", "counter",
                       "Triggers that joined an already pending reconcile.");
        metrics_sample(x, "bindery_triggers_coalesced_total", (double) m->triggers_coalesced, NULL);
        metrics_family(x, "bindery_plans_total", "counter", "GET /v1/plan outcomes.");
        metrics_sample(x, "bindery_plans_total", (double) m->plan_started, "outcome", "started", NULL);
        metrics_sample(x, "bindery_plans_total", (double) m->plan_served_cached, "outcome", "cached", NULL);
        metrics_sample(x, "bindery_plans_total", (double) m->plan_refused, "outcome", "refused", NULL);
}

/* /metrics: resources by reconcile state, and the change detection mode. */
static void metrics_resources(Manager *m, Metrics *x) {
        size_t n_st = 0;
        const ResourceStatus *st = engine_status(m->engine, &n_st);
        unsigned by_state[_RESOURCE_STATE_MAX] = {};

        for (size_t i = 0; i < n_st; i++)
                by_state[st[i].state]++;
        metrics_family(x, "bindery_resources", "gauge", "Resources by reconcile state.");
        for (int k = 0; k < _RESOURCE_STATE_MAX; k++)
                metrics_sample(x, "bindery_resources", by_state[k], "state", resource_state_to_string(k), NULL);
        /* One series per resource and state, 1 for the state it is in (as
         * kube-state-metrics does), so "== 1" alerts and a change is seen. */
        metrics_family(x, "bindery_resource_condition", "gauge",
                       "Per resource: 1 for its current reconcile state, 0 for the others.");
        for (size_t i = 0; i < n_st; i++)
                for (int k = 0; k < _RESOURCE_STATE_MAX; k++)
                        metrics_sample(x, "bindery_resource_condition", st[i].state == (ResourceState) k ? 1 : 0,
                                       "kind", st[i].kind, "name", st[i].name, "state", resource_state_to_string(k),
                                       NULL);

        {
                ChangeDetection d = engine_change_detection(m->engine, NULL);

                metrics_family(x, "bindery_change_detection_mode", "gauge",
                               "How drift is found: the audit log feed, or the lists plus a settings rotation "
                               "(fallback); 1 for the current mode.");
                for (ChangeDetection k = CHANGE_DETECTION_AUDIT; k < _CHANGE_DETECTION_MAX; k++)
                        metrics_sample(x, "bindery_change_detection_mode", d == k ? 1 : 0, "mode",
                                       change_detection_to_string(k), NULL);
        }
}

/* /metrics: the Cloudflare client's counters (CfApiStats), notifications,
 * the request budget. Returns 0 or -ENOMEM. */
static int metrics_api(Manager *m, Metrics *x) {
        _cleanup_free_ CfApiStats *em = malloc(sizeof(CfApiStats));
        char le[32];

        if (!em)
                return -ENOMEM;
        engine_api_stats(m->engine, em);
        metrics_family(x, "bindery_api_requests_total", "counter",
                       "Cloudflare API requests by HTTP status (0: no answer).");
        for (int i = 0; i < CFAPI_STATUS_SLOTS; i++)
                if (em->by_status[i] > 0) {
                        snprintf(le, sizeof(le), "%d", i);
                        metrics_sample(x, "bindery_api_requests_total", (double) em->by_status[i], "code", le, NULL);
                }
        if (em->other_status > 0)
                metrics_sample(x, "bindery_api_requests_total", (double) em->other_status, "code", "other", NULL);
        metrics_family(x, "bindery_api_request_duration_seconds", "histogram",
                       "Cloudflare API request latency (each attempt) by route class.");
        for (int k = 0; k < CFAPI_ROUTE_CLASSES; k++) {
                const char *route = cfapi_route_class_name(k);
                uint64_t acc = 0;

                for (size_t i = 0; i < CFAPI_LATENCY_BUCKETS; i++) {
                        acc += em->latency_counts[k][i];
                        snprintf(le, sizeof(le), "%g", em->latency_buckets[i]);
                        metrics_sample(x, "bindery_api_request_duration_seconds_bucket", (double) acc, "route", route,
                                       "le", le, NULL);
                }
                metrics_sample(x, "bindery_api_request_duration_seconds_bucket", (double) em->latency_n[k], "route",
                               route, "le", "+Inf", NULL);
                metrics_sample(x, "bindery_api_request_duration_seconds_sum", em->latency_sum[k], "route", route,
                               NULL);
                metrics_sample(x, "bindery_api_request_duration_seconds_count", (double) em->latency_n[k], "route",
                               route, NULL);
        }
        {
                unsigned long sent, failed, dropped;

                notifier_counts(m->notifier, &sent, &failed, &dropped);
                metrics_family(x, "bindery_notifications_total", "counter",
                               "Notifications (notify:) by outcome: sent, failed (given up), dropped (queue full).");
                metrics_sample(x, "bindery_notifications_total", (double) sent, "outcome", "sent", NULL);
                metrics_sample(x, "bindery_notifications_total", (double) failed, "outcome", "failed", NULL);
                metrics_sample(x, "bindery_notifications_total", (double) dropped, "outcome", "dropped", NULL);
        }
        metrics_family(x, "bindery_api_retries_total", "counter", "Cloudflare API retries.");
        metrics_sample(x, "bindery_api_retries_total", (double) em->retries_total, NULL);
        metrics_family(x, "bindery_request_budget_remaining", "gauge",
                       "Requests left in the current request_budget window.");
        metrics_sample(x, "bindery_request_budget_remaining", (double) em->budget_left, NULL);
        metrics_family(x, "bindery_request_budget_capacity", "gauge", "Requests allowed per request_budget window.");
        metrics_sample(x, "bindery_request_budget_capacity", (double) em->budget_capacity, NULL);
        return 0;
}

/* /metrics: the enforced generation and spec loads. */
static void metrics_generation(Manager *m, Metrics *x) {
        metrics_family(x, "bindery_generation_info", "gauge", "The enforced spec generation (digest label).");
        metrics_sample(x, "bindery_generation_info", 1, "digest", m->gen ? m->gen->digest : "", NULL);
        metrics_family(x, "bindery_generation_loaded_timestamp_seconds", "gauge",
                       "When the enforced generation was loaded (Unix time).");
        metrics_sample(x, "bindery_generation_loaded_timestamp_seconds",
                       m->gen ? (double) (m->gen->loaded_usec / USEC_PER_SEC) : 0, NULL);
        metrics_family(x, "bindery_generation_files", "gauge", "YAML files in the enforced generation.");
        metrics_sample(x, "bindery_generation_files", m->gen ? (double) strv_length(m->gen->files) : 0, NULL);
        metrics_family(x, "bindery_spec_errors", "gauge", "Errors of the last spec load (0: it loaded).");
        metrics_sample(x, "bindery_spec_errors", (double) m->n_spec_errors, NULL);
        metrics_family(x, "bindery_spec_loads_total", "counter", "Spec loads by outcome.");
        metrics_sample(x, "bindery_spec_loads_total", (double) m->spec_loads_ok, "outcome", "ok", NULL);
        metrics_sample(x, "bindery_spec_loads_total", (double) m->spec_loads_failed, "outcome", "rejected", NULL);
}

static char *backend_metrics(void *userdata) {
        Manager *m = userdata;
        _cleanup_(metrics_freep) Metrics *x = metrics_new();

        if (!x)
                return NULL;
        metrics_family(x, "bindery_up", "gauge", "1 while the daemon runs.");
        metrics_sample(x, "bindery_up", 1, NULL);
        metrics_family(x, "bindery_build_info", "gauge", "The running binderyd (version label).");
        metrics_sample(x, "bindery_build_info", 1, "version", PACKAGE_VERSION, NULL);
        metrics_family(x, "bindery_ready", "gauge", "1 once a spec generation has loaded.");
        metrics_sample(x, "bindery_ready", m->ready, NULL);
        metrics_runs(m, x);
        metrics_resources(m, x);
        if (metrics_api(m, x) < 0)
                return NULL;
        metrics_generation(m, x);
        if (m->ha)
                manager_ha_metrics(m->ha, x);
        return metrics_take(TAKE_PTR(x));
}

/* ---- high availability (the work is in manager-ha.c) ---- */

/* Role changes: a new leader reconciles at once (removals held when its
 * generation is not the one last enforced); a deposed one stops its run,
 * marked interrupted. */
static void manager_on_ha_role(ManagerHA *mh, bool leader, const char *reason, void *userdata) {
        Manager *m = userdata;
        char digest[65] = "";
        uint64_t at = 0;
        int r;

        manager_status_changed(m);
        m->ha_engine_fresh = false;
        if (!leader) {
                if (m->current && engine_is_running(m->engine)) {
                        m->current->interrupted = true;
                        log_warning("Reconcile %s interrupted: leadership lost (%s).", m->current->id, reason);
                }
                engine_cancel(m->engine);
                httpd_wake(m->httpd);
                return;
        }
        m->ha_hold_digest[0] = 0;
        r = manager_ha_read_enforced(mh, digest, &at);
        if (m->gen && r != -ENOENT && (r < 0 || !streq(digest, m->gen->digest))) {
                memcpy(m->ha_hold_digest, m->gen->digest, sizeof m->ha_hold_digest);
                m->ha_hold_since = now_realtime_usec();
                log_notice("Generation %.12s differs from the one last enforced (%.12s); removals wait until it "
                           "has been stable for twice prune_settle, or a trigger expects it.", m->gen->digest,
                           r < 0 ? "unknown" : digest);
        }
        (void) manager_trigger(m, "leadership", false, NULL);
        manager_kick(m);        /* a run left pending by an earlier term joins silently: start it */
}

/* Records the generation a leader's run enforced (PREFIX "enforced"). */
static void manager_ha_run_done(Manager *m, Run *r, const RunReport *report) {
        int k;

        if (r->interrupted || !r->generation[0] || !manager_ha_is_leader(m->ha) ||
            !(report->result == RUN_RESULT_OK || report->result == RUN_RESULT_CHANGES ||
              report->result == RUN_RESULT_DRIFT))
                return;
        if (r->n_pending_removals > 0 && !m->gen_settled && streq(m->ha_hold_digest, r->generation))
                r->removals_due_usec = max_u64(m->gen_since_usec, m->ha_hold_since) +
                                       2 * m->config->prune_settle_usec;
        k = manager_ha_record_enforced(m->ha, r->generation, r->finished_usec);
        if (k < 0)
                log_warning_errno(k, "Cannot record generation %.12s as enforced in etcd, ignoring: %m",
                                  r->generation);
}

/* A new leadership term reads the ledger afresh: the engine is reopened
 * over etcd (store-etcd.c, fenced by this term's leader key) before the
 * term's first run. false while it cannot be (retried every second). */
static bool manager_ha_engine(Manager *m) {
        _cleanup_(engine_freep) Engine *e = NULL;
        Store *store = NULL;
        int r;

        if (m->ha_engine_fresh)
                return true;
        r = manager_ha_open_store(m->ha, &store);
        if (r >= 0)
                r = engine_new_with_store(&e, m->event, m->config, store);
        if (r < 0) {
                log_error_errno(r, "Cannot open the ledger in etcd, retrying in 1s: %m");
                (void) sd_event_source_set_time_relative(m->ha_retry, USEC_PER_SEC);
                (void) sd_event_source_set_enabled(m->ha_retry, SD_EVENT_ONESHOT);
                return false;
        }
        engine_set_may_send(e, manager_ha_may_send, m->ha);
        /* The status version is a sum that must only grow. */
        m->status_version += engine_status_generation(m->engine) + 1;
        engine_free(m->engine);
        m->engine = TAKE_PTR(e);
        m->ha_engine_fresh = true;
        return true;
}

static int on_ha_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        manager_kick(userdata);
        return 0;
}

static int backend_leader(void *userdata, char **ret_url, bool *ret_forward) {
        Manager *m = userdata;

        return m->ha ? manager_ha_leader(m->ha, ret_url, ret_forward) : 0;
}

static int backend_forward(void *userdata, const char *method, const char *url, const char *authorization,
                           const char *body, size_t size, uint64_t timeout_usec, httpd_relay_done_t done,
                           void *cookie, void **ret_handle) {
        Manager *m = userdata;

        if (!m->ha)
                return -EOPNOTSUPP;
        return manager_ha_forward(m->ha, method, url, authorization, body, size, timeout_usec, done, cookie,
                                  ret_handle);
}

static void backend_forward_cancel(void *userdata, void *handle) {
        Manager *m = userdata;

        if (m->ha)
                manager_ha_forward_cancel(m->ha, handle);
}

static const HttpdBackend manager_backend = {
        .status = backend_status,
        .status_version = backend_status_version,
        .runs = backend_runs,
        .run = backend_run,
        .trigger = backend_trigger,
        .trigger_load = backend_trigger_load,
        .plan = backend_plan,
        .metrics = backend_metrics,
        .ready = backend_ready,
        .leader = backend_leader,
        .forward = backend_forward,
        .forward_cancel = backend_forward_cancel,
};

/* ---- life cycle ---- */

/* glibc's defaults suit a short program, not a daemon whose runs each
 * build a large transient buffer (the scripts list: 1 MiB at 1,000
 * workers, ~10 MiB at 10,000) beside a long-lived heap. Left dynamic, the
 * mmap threshold rises to the largest buffer freed, so later big buffers
 * come from the brk heap, fragment it and stay resident. Fixed, every
 * allocation of 64 KiB or more is its own mapping, given back when
 * freed, and free memory at the heap's top goes back past 128 KiB. */
#define MANAGER_MMAP_THRESHOLD (64 * 1024)
#define MANAGER_TRIM_THRESHOLD (128 * 1024)

static void manager_tune_malloc(void) {
        if (mallopt(M_MMAP_THRESHOLD, MANAGER_MMAP_THRESHOLD) != 1 ||
            mallopt(M_TRIM_THRESHOLD, MANAGER_TRIM_THRESHOLD) != 1)
                log_debug("mallopt() refused the daemon's thresholds, ignoring.");
}

int manager_new(Manager **ret, Config *config, const Options *o) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        manager_tune_malloc();
        m = calloc(1, sizeof(Manager));
        if (!m) {
                config_free(config);
                return log_error_errno(ENOMEM, "Out of memory.");
        }
        m->config = config;
        m->options = o;
        m->started_usec = now_realtime_usec();
        m->boot_sec = m->started_usec / USEC_PER_SEC;
        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = notifier_new(&m->notifier, m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to set up notifications: %m");
        *ret = TAKE_PTR(m);
        return 0;
}

int manager_start(Manager *m) {
        _cleanup_free_ int *fds = NULL;
        HttpdSettings hs = {};
        int r, n;

        r = sd_event_add_signal(m->event, &m->sig_term, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_sigterm, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sig_int, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_sigterm, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sig_hup, SIGHUP | SD_EVENT_SIGNAL_PROCMASK, on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up signal handling: %m");
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");
        r = sd_event_add_defer(m->event, &m->kick, on_kick, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add an event source: %m");
        (void) sd_event_source_set_enabled(m->kick, SD_EVENT_OFF);

        /* With ha: the ledger is in etcd and the engine over it is opened
         * at each leadership term (manager_ha_engine); until then an
         * engine that only reads the local state directory serves status.
         * manager_ha_new holds the state directory's lock instead. */
        if (m->config->ha) {
                r = manager_ha_new(&m->ha, m->event, m->config, manager_on_ha_role, m);
                if (r < 0)
                        return r;
        }
        r = engine_new(&m->engine, m->event, m->config, !m->config->ha);
        if (r >= 0)
                manager_load_runs(m);   /* only with the state lock held */
        if (r == -EBUSY)
                return log_error_errno(r, "The state directory '%s' is locked by another bindery process.",
                                       m->config->state_dir);
        if (r == -EXDEV)
                return log_error_errno(r, "The state in '%s' belongs to another account or API URL; refusing.",
                                       m->config->state_dir);
        if (r < 0)
                return log_error_errno(r, "Failed to open the engine (state '%s'): %m", m->config->state_dir);
        if (m->config->ha) {
                engine_set_may_send(m->engine, manager_ha_may_send, m->ha);
                r = sd_event_add_time_relative(m->event, &m->ha_retry, CLOCK_MONOTONIC, USEC_PER_SEC,
                                               USEC_PER_MSEC, on_ha_retry, m);
                if (r < 0)
                        return log_error_errno(r, "Failed to add the HA retry timer: %m");
                (void) sd_event_source_set_enabled(m->ha_retry, SD_EVENT_OFF);
        }

        /* The HTTP API: sockets from systemd, else the configured addresses. */
        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "Failed to read the sockets passed by systemd: %m");
        if (n > 0) {
                fds = calloc((size_t) n, sizeof(int));
                if (!fds)
                        return log_error_errno(ENOMEM, "Out of memory.");
                for (int i = 0; i < n; i++)
                        fds[i] = SD_LISTEN_FDS_START + i;
                hs.fds = fds;
                hs.n_fds = (size_t) n;
                log_info("Using %d socket(s) passed by systemd.", n);
        } else
                hs.listen = m->config->listen;
        r = httpd_new(&m->httpd, m->event, &hs, &manager_backend, m);
        if (r < 0)
                return r;
        r = manager_apply_auth(m, m->config);
        if (r < 0)
                return r;

        r = watch_new(&m->watch, m->event, m->config->spec_dir, DEBOUNCE_USEC, on_spec_changed, m);
        if (r < 0)
                log_warning_errno(r, "Cannot watch '%s' (changes will wait for the interval or a trigger): %m",
                                  m->config->spec_dir);

        r = sd_event_add_time_relative(m->event, &m->interval, CLOCK_MONOTONIC,
                                       jittered(m->config->interval_usec), USEC_PER_SEC, on_interval, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the interval timer: %m");

        /* Say at once what is wrong with the API token, if anything. */
        if (engine_token_problem(m->engine))
                log_error("%s.", engine_token_problem(m->engine));
        else if (engine_verify_token(m->engine, on_token_checked, m) < 0)
                log_warning("Could not start the token check.");
        (void) manager_load_spec(m);
        if (m->ha && manager_ha_start(m->ha) < 0)
                return -EIO;
        (void) manager_trigger(m, "startup", false, NULL);
        (void) sd_notify(false, "READY=1");
        m->notified_ready = true;
        manager_notify_status(m);
        log_info("binderyd %s ready: account %s, spec '%s', interval %s.", PACKAGE_VERSION,
                 m->config->account_id, m->config->spec_dir,
                 format_duration(m->config->interval_usec, (char[32]) {}, 32));
        return 0;
}

int manager_run(Manager *m) {
        int r;

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m"), EXIT_FAILED;
        return r;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        sd_event_source_disable_unref(m->sig_term);
        sd_event_source_disable_unref(m->sig_int);
        sd_event_source_disable_unref(m->sig_hup);
        sd_event_source_disable_unref(m->interval);
        sd_event_source_disable_unref(m->kick);
        sd_event_source_disable_unref(m->stop_timer);
        sd_event_source_disable_unref(m->ha_retry);
        httpd_free(m->httpd);
        watch_free(m->watch);
        notifier_free(m->notifier);
        engine_free(m->engine);
        manager_ha_free(m->ha);         /* after the engine: its client asked the gate */
        if (m->gen_in_run && m->gen_in_run != m->gen)
                generation_free(m->gen_in_run);
        generation_free(m->gen);
        json_object_put(m->spec_errors);
        json_object_put(m->plan_cache);
        for (size_t i = 0; i < m->n_ring; i++)
                run_free(m->ring[i]);
        history_free(m->history);
        config_free(m->config);
        for (size_t i = 0; i < m->n_old_configs; i++)
                config_free(m->old_configs[i]);
        free(m->old_configs);
        sd_event_unref(m->event);
        return mfree(m);
}
