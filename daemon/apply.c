/* apply.c: see apply.h. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include "apply.h"
#include "binding-kinds.h"
#include "cfreq.h"
#include "util.h"

#define MODULE_MAX_SIZE (64U * 1024U * 1024U)
#define APPLY_TARGET_WAIT_DEFAULT_USEC (30U * 1000U * 1000U)
#define APPLY_TARGET_BACKOFF_MIN_USEC (500U * 1000U)
#define APPLY_TARGET_BACKOFF_MAX_USEC (8U * 1000U * 1000U)

typedef struct Job Job;

struct Applier {
        CfApi *api;
        const Generation *g;
        const Plan *plan;
        Ledger *ledger;
        const LiveState *live;
        unsigned concurrency;
        char *run_id;
        ApplyHooks hooks;
        apply_done_t done;
        void *userdata;

        ApplyResult *results;
        unsigned running;
        unsigned pending;       /* requests in flight */
        unsigned n_writes;
        char **writes;
        bool writes_incomplete;
        uint64_t *write_usec;           /* CLOCK_REALTIME: when each of writes[] was submitted */
        size_t n_write_usec_alloc;
        uint64_t last_write_usec;       /* CLOCK_REALTIME: the last write submitted */
        bool cancelled;
        bool dead;
        bool finished;
        sd_event *event;
        sd_event_source *defer;
        sd_event_source *flush;         /* commits the ledger once for the successes that completed together */
        uint64_t target_wait_usec;
        TAILQ_HEAD(, Job) waiting;      /* uploads waiting to retry (binding target not found yet) */
        TAILQ_HEAD(, Job) recorded;     /* successes in the ledger, not committed yet */
};

typedef enum JobStep {
        STEP_MAIN,
        STEP_LOOKUP,            /* after -EEXIST on a create: find the existing one */
        STEP_AFTER_LOOKUP,
        STEP_RETRY_NO_MIGRATION,
} JobStep;

struct Job {
        Applier *ap;
        size_t index;
        JobStep step;
        bool with_migrations;
        char *path;             /* of the main write */
        const char *method;
        /* An upload refused because Cloudflare cannot find a target this
         * run created: retried from a timer until target_wait passes. */
        uint64_t target_since_usec;
        unsigned target_attempts;
        sd_event_source *retry;
        TAILQ_ENTRY(Job) link;  /* in waiting or recorded, or in neither */
};

static const Action *job_action(const Job *j) {
        return &j->ap->plan->actions[j->index];
}

static void schedule(Applier *ap);

static void applier_destroy(Applier *ap) {
        Job *j;

        while ((j = TAILQ_FIRST(&ap->recorded))) {
                TAILQ_REMOVE(&ap->recorded, j, link);
                free(j);
        }
        if (ap->results)
                for (size_t i = 0; i < ap->plan->n_actions; i++)
                        free(ap->results[i].message);
        free(ap->results);
        free(ap->run_id);
        strv_free(ap->writes);
        free(ap->write_usec);
        sd_event_source_disable_unref(ap->defer);
        sd_event_source_disable_unref(ap->flush);
        sd_event_unref(ap->event);
        free(ap);
}

static void waiting_remove(Applier *ap, Job *j) {
        TAILQ_REMOVE(&ap->waiting, j, link);
        j->retry = sd_event_source_disable_unref(j->retry);
}

Applier *apply_free(Applier *ap) {
        if (!ap)
                return NULL;
        /* Jobs waiting on a timer are not requests in flight: drop them. */
        for (Job *j; (j = TAILQ_FIRST(&ap->waiting));) {
                waiting_remove(ap, j);
                free(j->path);
                free(j);
        }
        ap->dead = true;
        ap->defer = sd_event_source_disable_unref(ap->defer);
        ap->flush = sd_event_source_disable_unref(ap->flush);
        if (ap->pending == 0)
                applier_destroy(ap);
        return NULL;
}

void apply_cancel(Applier *ap) {
        ap->cancelled = true;
}

void apply_set_target_wait(Applier *ap, uint64_t usec) {
        ap->target_wait_usec = usec;
}

const ApplyResult *apply_result(const Applier *ap, size_t i) {
        return i < ap->plan->n_actions ? &ap->results[i] : NULL;
}

unsigned apply_n_writes(const Applier *ap) {
        return ap->n_writes;
}

uint64_t apply_last_write_usec(const Applier *ap) {
        return ap->writes_incomplete ? 0 : ap->last_write_usec;
}

char * const *apply_writes(const Applier *ap) {
        return ap->writes;
}

const uint64_t *apply_write_times(const Applier *ap) {
        return ap->writes_incomplete ? NULL : ap->write_usec;
}

/* ---- worker metadata ---- */

/* Frees the resolved binding targets (values and stores). */
static void targets_free(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

json_object *apply_worker_metadata(const Generation *g, const Worker *w, const Ledger *ledger, const LiveState *live,
                                   const Action *a, char **reterr) {
        size_t n = w->n_bindings;
        char **v = calloc(2 * n + 1, sizeof(char *));     /* value, store; per binding */
        _cleanup_free_ CfBindingTarget *t = calloc(n + 1, sizeof(CfBindingTarget));
        CfMigration mig = {};
        json_object *m = NULL;

        *reterr = NULL;
        if (!v || !t)
                goto out;
        for (size_t i = 0; i < n; i++) {
                const Binding *b = &w->bindings[i];

                if (!binding_kind_info(b->kind) || b->kind == BINDING_SECRET)
                        continue; /* through the secrets API; kept by keep_bindings */
                if (plan_resolve_binding(g, w, b, live, ledger, true, &v[2 * i], &v[2 * i + 1]) < 0)
                        goto out;
                t[i] = (CfBindingTarget) { .value = v[2 * i], .store = v[2 * i + 1] };
        }
        if (a)
                mig = (CfMigration) { .old_tag = a->old_tag, .new_tag = a->new_tag,
                                      .auto_new_classes = a->auto_new_classes };
        m = cfreq_worker_metadata(g, w, t, a ? &mig : NULL, reterr);
out:
        targets_free(v, 2 * n);
        return m;
}

/* ---- bookkeeping ---- */

static int job_finish(Job *j, int error, const char *message);
static int job_recorded(Job *j);
static void job_fail(Applier *ap, size_t index, Job *j, int error);

static void on_reply(CfApi *api, const CfReply *reply, void *userdata);

static int job_submit(Job *j, const CfRequest *r) {
        Applier *ap = j->ap;
        int k;

        k = cfapi_submit(ap->api, r, on_reply, j, NULL);
        if (k < 0)
                return k;
        ap->pending++;
        if (!streq(r->method, "GET")) {
                _cleanup_free_ char *w = NULL;

                ap->n_writes++;
                ap->last_write_usec = now_realtime_usec();
                /* Best effort: the list only saves audit-log reads later. */
                if (asprintf(&w, "%s %s", r->method, r->path) < 0 || strv_consume(&ap->writes, TAKE_PTR(w)) < 0)
                        ap->writes_incomplete = true;
                if (!ap->writes_incomplete && ap->n_writes > ap->n_write_usec_alloc) {
                        size_t n = ap->n_write_usec_alloc ? ap->n_write_usec_alloc * 2 : 64;
                        uint64_t *p = reallocarray(ap->write_usec, n, sizeof(uint64_t));

                        if (p) {
                                ap->write_usec = p;
                                ap->n_write_usec_alloc = n;
                        } else
                                ap->writes_incomplete = true;
                }
                if (!ap->writes_incomplete)
                        ap->write_usec[ap->n_writes - 1] = ap->last_write_usec;
        }
        return 0;
}

static int job_request(Job *j, const char *method, const char *path, const char *query, json_object *body,
                       const CfMultipart *mp, const char *const *headers) {
        CfRequest r = {
                .method = method,
                .path = path,
                .query = query,
                .json = body,
                .multipart = mp,
                .headers = headers,
                .priority = CFAPI_PRIORITY_NORMAL,
        };

        return job_submit(j, &r);
}

/* A request whose body carries a secret value: the JSON text
 * (cfreq_secret_json) is wiped as soon as the client has copied it (the
 * client wipes its copy when the request ends). rest: the other members
 * (no secret), as an object; key: the member holding value; array: wrap
 * in [ ]. json-c never sees the value. */
static int job_request_secret(Job *j, const char *method, const char *path, json_object *rest, const char *key,
                              const char *value, bool array) {
        CfRequest r = {
                .method = method,
                .path = path,
                .content_type = "application/json",
                .priority = CFAPI_PRIORITY_NORMAL,
        };
        char *buf = NULL;
        size_t cap = 0;
        int k;

        k = cfreq_secret_json(rest, key, value, array, &buf, &r.body_size, &cap);
        if (k < 0)
                return k;
        r.body = buf;
        k = job_submit(j, &r);
        erase_and_free(buf, cap);
        return k;
}

static int save(Applier *ap) {
        return ap->hooks.save ? ap->hooks.save(ap->hooks.userdata) : 0;
}

static LedgerEntry *record(Applier *ap, const Action *a, const char *id) {
        LedgerEntry *e = ledger_ensure(ap->ledger, a->resource_kind, a->doc);
        const ResourcePolicy *pol = NULL;

        if (!e)
                return NULL;
        if (free_and_strdup(&e->name, a->name) < 0 || (id && free_and_strdup(&e->id, id) < 0))
                return NULL;
        ledger_touch(ap->ledger, e);    /* indexed under the new name and id at once */
        switch (a->resource_kind) {
        case RESOURCE_WORKER: pol = a->worker ? &a->worker->policy : NULL; break;
        case RESOURCE_KV_NAMESPACE: pol = &((const KVNamespace *) a->desired)->policy; break;
        case RESOURCE_R2_BUCKET: pol = &((const R2Bucket *) a->desired)->policy; break;
        case RESOURCE_D1_DATABASE: pol = &((const D1Database *) a->desired)->policy; break;
        case RESOURCE_QUEUE: pol = &((const Queue *) a->desired)->policy; break;
        case RESOURCE_SECRETS_STORE: pol = &((const SecretsStore *) a->desired)->policy; break;
        case RESOURCE_SECRETS_STORE_SECRET: pol = &((const SecretsStoreSecret *) a->desired)->policy; break;
        default: break;
        }
        if (pol && a->desired) {
                e->deletion = pol->deletion_explicit && pol->deletion == DELETION_DELETE ? DELETION_DELETE
                                                                                        : DELETION_RETAIN;
                e->drift = pol->drift;
        }
        if (a->desired && a->resource_kind == RESOURCE_R2_BUCKET &&
            free_and_strdup(&e->jurisdiction, ((const R2Bucket *) a->desired)->jurisdiction) < 0)
                return NULL;
        if (a->desired && a->resource_kind != RESOURCE_WORKER) {
                char d[65];

                plan_resource_digest(a->resource_kind, a->desired, d);
                if (free_and_strdup(&e->digest, d) < 0)
                        return NULL;
        }
        (void) ledger_remove_intent(ap->ledger, a->resource_kind, a->name);
        return e;
}

/* ---- execution ---- */

static const char *queue_id_for(Applier *ap, const char *qname) {
        const LedgerEntry *e = ledger_find_by_name(ap->ledger, RESOURCE_QUEUE, qname);
        const LiveResource *lr;

        if (e && e->id)
                return e->id;
        lr = live_state_find_by_name(ap->live, RESOURCE_QUEUE, qname, NULL);
        return lr ? lr->id : NULL;
}

static int build_upload(Job *j, bool migrations, CfMultipart **ret, char **reterr) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        const Worker *w = a->worker;
        _cleanup_(cfapi_multipart_freep) CfMultipart *mp = cfapi_multipart_new();
        _cleanup_(json_object_putp) json_object *meta = NULL;
        const char *js;
        int r;

        if (!mp)
                return -ENOMEM;
        meta = apply_worker_metadata(ap->g, w, ap->ledger, ap->live, migrations ? a : NULL, reterr);
        if (!meta)
                return *reterr ? -ENXIO : -ENOMEM;
        /* Bindings the spec dropped stay until it settles (prune_settle). */
        r = cfreq_metadata_inherit(meta, a->inherit);
        if (r < 0)
                return r;
        js = json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        r = cfapi_multipart_add(mp, "metadata", NULL, "application/json", js, strlen(js));
        if (r < 0)
                return r;
        for (size_t i = 0; i < w->n_modules; i++) {
                const Module *m = &w->modules[i];
                _cleanup_free_ char *data = NULL;
                size_t size = 0;

                r = read_full_file(m->path, MODULE_MAX_SIZE, &data, &size);
                if (r < 0) {
                        if (asprintf(reterr, "module %s: cannot read %s: %s", m->name, m->path, strerror(-r)) < 0)
                                *reterr = NULL;
                        return r;
                }
                r = cfapi_multipart_add(mp, m->name, m->name, module_type_to_content_type(m->type), data, size);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(mp);
        return 0;
}

static int start_upload(Job *j, bool migrations) {
        const Action *a = job_action(j);
        _cleanup_(cfapi_multipart_freep) CfMultipart *mp = NULL;
        _cleanup_free_ char *err = NULL;
        int r;

        r = build_upload(j, migrations, &mp, &err);
        if (r < 0)
                return job_finish(j, r, err);
        j->with_migrations = migrations;
        j->path = mfree(j->path);
        if (cfreq_path(&j->path, CF_PATH_SCRIPT, a->name) < 0)
                return -ENOMEM;
        /* The multipart is copied at submission. */
        return job_request(j, "PUT", j->path, "bindings_inherit=strict", NULL, mp, NULL);
}

static int read_secret(Applier *ap, const SecretRef *ref, char **v, size_t *n, char **err) {
        if (!ap->hooks.secret_read)
                return -ENOKEY;
        return ap->hooks.secret_read(ap->hooks.userdata, ref, v, n, err);
}

static const Binding *worker_binding(const Worker *w, const char *name) {
        for (size_t i = 0; w && i < w->n_bindings; i++)
                if (streq(w->bindings[i].name, name))
                        return &w->bindings[i];
        return NULL;
}

static int start_adopt(Job *j) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        LedgerEntry *e = record(ap, a, a->id);

        if (!e)
                return -ENOMEM;
        e->adopted = true;
        if (a->resource_kind == RESOURCE_SECRETS_STORE_SECRET) {
                const LiveResource *lr = live_state_find_by_id(ap->live, a->resource_kind, a->id);

                if (lr && free_and_strdup(&e->store_id, lr->store_id) < 0)
                        return -ENOMEM;
        }
        if (a->resource_kind == RESOURCE_R2_BUCKET) {
                const LiveResource *lr = live_state_find_by_id(ap->live, a->resource_kind, a->id);

                if (lr && lr->jurisdiction && free_and_strdup(&e->jurisdiction, lr->jurisdiction) < 0)
                        return -ENOMEM;
        }
        if (a->resource_kind == RESOURCE_WORKER) {
                free(e->digest);
                e->digest = NULL; /* the upload that follows records it */
        }
        ledger_touch(ap->ledger, e);
        return job_recorded(j);
}

/* A Secrets Store secret's value goes out in one request: POST to the
 * store's collection when creating, PATCH the secret when updating. */
static int send_store_secret(Job *j, const char *store, bool create) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        const SecretsStoreSecret *s = a->desired;
        _cleanup_(json_object_putp) json_object *body = NULL;
        _cleanup_free_ char *err = NULL;
        char *value = NULL;
        size_t size = 0;
        int r;

        if (!store)
                return job_finish(j, -ENXIO, "its secrets store is not available");
        r = read_secret(ap, &s->value, &value, &size, &err);
        if (r < 0)
                return job_finish(j, r, err);
        r = create ? cfreq_path(&j->path, CF_PATH_STORE_SECRETS, store)
                   : cfreq_path(&j->path, CF_PATH_STORE_SECRET, store, a->id);
        if (r < 0) {
                erase_and_free(value, size);
                return -ENOMEM;
        }
        body = cfreq_store_secret_body(s, create ? a->name : NULL);
        if (!body) {
                erase_and_free(value, size);
                return -ENOMEM;
        }
        r = job_request_secret(j, create ? "POST" : "PATCH", j->path, body, "value", value, create);
        erase_and_free(value, size);
        return r;
}

static int create_store_secret(Job *j) {
        Applier *ap = j->ap;
        const SecretsStoreSecret *s = job_action(j)->desired;

        return send_store_secret(j, plan_store_id(ap->g, s->store, ap->live, ap->ledger), true);
}

static int start_create(Job *j) {
        const Action *a = job_action(j);
        _cleanup_(json_object_putp) json_object *body = NULL;
        _cleanup_free_ char *h = NULL;
        int r;

        if (a->resource_kind == RESOURCE_WORKER)
                return start_upload(j, a->new_tag != NULL);
        if (a->resource_kind == RESOURCE_SECRETS_STORE_SECRET)
                return create_store_secret(j);
        r = cfreq_create_body(a->resource_kind, a->name, a->desired, &body);
        if (r == -EOPNOTSUPP)
                return job_finish(j, r, "unsupported resource");
        if (r < 0)
                return r;
        if (a->resource_kind == RESOURCE_R2_BUCKET &&
            cfreq_r2_jurisdiction_header(((const R2Bucket *) a->desired)->jurisdiction, &h) < 0)
                return -ENOMEM;
        if (cfreq_path(&j->path, cfreq_collection(a->resource_kind)) < 0)
                return -ENOMEM;
        return job_request(j, "POST", j->path, NULL, body, NULL, h ? (const char *const[]) { h, NULL } : NULL);
}

static int update_store_secret(Job *j) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        const SecretsStoreSecret *s = a->desired;
        const LedgerEntry *e = ledger_find(ap->ledger, a->resource_kind, a->doc);
        const LiveResource *lr = live_state_find_by_id(ap->live, a->resource_kind, a->id);
        const char *store = (e && e->store_id) ? e->store_id
                                               : lr && lr->store_id
                                                         ? lr->store_id
                                                         : plan_store_id(ap->g, s->store, ap->live, ap->ledger);

        return send_store_secret(j, store, false);
}

static int start_update(Job *j) {
        const Action *a = job_action(j);
        _cleanup_(json_object_putp) json_object *body = NULL;
        int r;

        if (a->resource_kind == RESOURCE_SECRETS_STORE_SECRET)
                return update_store_secret(j);
        r = cfreq_update_body(a->resource_kind, a->name, a->desired, &body);
        if (r == -EOPNOTSUPP)
                return job_finish(j, 0, NULL); /* nothing updatable: recorded only */
        if (r < 0)
                return r;
        if (cfreq_path(&j->path, cfreq_item(a->resource_kind), a->id) < 0)
                return -ENOMEM;
        return job_request(j, a->resource_kind == RESOURCE_KV_NAMESPACE ? "PUT" : "PATCH", j->path, NULL, body, NULL,
                           NULL);
}

static int start_delete(Job *j) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        const char *id = a->id ?: a->name;
        const LedgerEntry *e = ledger_find(ap->ledger, a->resource_kind, a->doc);
        const char *query = NULL;
        _cleanup_free_ char *h = NULL;
        int r;

        switch (a->resource_kind) {
        case RESOURCE_WORKER:
        case RESOURCE_KV_NAMESPACE:
        case RESOURCE_D1_DATABASE:
        case RESOURCE_QUEUE:
        case RESOURCE_SECRETS_STORE:
                query = a->resource_kind == RESOURCE_WORKER ? "force=true" : NULL;
                r = cfreq_path(&j->path, cfreq_item(a->resource_kind), id);
                break;
        case RESOURCE_R2_BUCKET: {
                const LiveResource *lr = live_state_find_by_id(ap->live, a->resource_kind, a->id);
                const char *jur = e && e->jurisdiction ? e->jurisdiction : lr ? lr->jurisdiction : NULL;

                r = cfreq_path(&j->path, CF_PATH_R2_BUCKET, id);
                if (r >= 0)
                        r = cfreq_r2_jurisdiction_header(jur, &h);
                break;
        }
        case RESOURCE_SECRETS_STORE_SECRET:
                r = cfreq_path(&j->path, CF_PATH_STORE_SECRET, e ? e->store_id : NULL, id);
                break;
        default:
                return job_finish(j, -EOPNOTSUPP, "unsupported resource");
        }
        if (r < 0)
                return r;
        return job_request(j, "DELETE", j->path, query, NULL, NULL, h ? (const char *const[]) { h, NULL } : NULL);
}

static int start_put_secret(Job *j) {
        const Action *a = job_action(j);
        const Binding *b = worker_binding(a->worker, a->detail);
        _cleanup_(json_object_putp) json_object *body = NULL;
        _cleanup_free_ char *err = NULL;
        char *value = NULL;
        size_t size = 0;
        int r;

        if (!b)
                return job_finish(j, -ENOENT, "secret binding vanished from the spec");
        r = read_secret(j->ap, &b->secret, &value, &size, &err);
        if (r < 0)
                return job_finish(j, r, err);
        body = cfreq_worker_secret_body(a->detail);
        if (!body || cfreq_path(&j->path, CF_PATH_SCRIPT_SECRETS, a->name) < 0) {
                erase_and_free(value, size);
                return -ENOMEM;
        }
        r = job_request_secret(j, "PUT", j->path, body, "text", value, false);
        erase_and_free(value, size);
        return r;
}

static int start_delete_secret(Job *j) {
        const Action *a = job_action(j);

        if (cfreq_path(&j->path, CF_PATH_SCRIPT_SECRET, a->name, a->detail) < 0)
                return -ENOMEM;
        return job_request(j, "DELETE", j->path, "url_encoded=true", NULL, NULL, NULL);
}

static int start_set_schedules(Job *j) {
        const Action *a = job_action(j);
        _cleanup_(json_object_putp) json_object *body = cfreq_schedules_body(a->worker->crons, a->inherit);

        if (!body || cfreq_path(&j->path, CF_PATH_SCRIPT_SCHEDULES, a->name) < 0)
                return -ENOMEM;
        return job_request(j, "PUT", j->path, NULL, body, NULL, NULL);
}

static int start_set_subdomain(Job *j) {
        const Action *a = job_action(j);
        _cleanup_(json_object_putp) json_object *body = cfreq_subdomain_body(!a->remove);

        if (!body || cfreq_path(&j->path, CF_PATH_SCRIPT_SUBDOMAIN, a->name) < 0)
                return -ENOMEM;
        return job_request(j, "POST", j->path, NULL, body, NULL, NULL);
}

static int start_set_consumer(Job *j) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        const char *qid = queue_id_for(ap, a->detail);
        _cleanup_(json_object_putp) json_object *body = NULL;
        const QueueConsumer *qc = NULL;

        if (!qid)
                return job_finish(j, -ENXIO, "queue not found");
        if (a->remove) {
                if (!a->id)
                        return job_finish(j, 0, NULL);
                if (cfreq_path(&j->path, CF_PATH_QUEUE_CONSUMER, qid, a->id) < 0)
                        return -ENOMEM;
                return job_request(j, "DELETE", j->path, NULL, NULL, NULL, NULL);
        }
        for (size_t i = 0; i < a->worker->n_consumers; i++) {
                const QueueConsumer *c = &a->worker->consumers[i];
                const Queue *q = c->queue ? generation_find_queue(ap->g, c->queue) : NULL;
                const char *qn = q ? plan_resource_cf_name(RESOURCE_QUEUE, q) : c->queue_id;

                if (streq_ptr(qn, a->detail))
                        qc = c;
        }
        if (!qc)
                return job_finish(j, -ENOENT, "consumer vanished from the spec");
        body = cfreq_consumer_body(a->name, qc);
        if (!body)
                return -ENOMEM;
        if (a->id) {
                if (cfreq_path(&j->path, CF_PATH_QUEUE_CONSUMER, qid, a->id) < 0)
                        return -ENOMEM;
                return job_request(j, "PUT", j->path, NULL, body, NULL, NULL);
        }
        if (cfreq_path(&j->path, CF_PATH_QUEUE_CONSUMERS, qid) < 0)
                return -ENOMEM;
        return job_request(j, "POST", j->path, NULL, body, NULL, NULL);
}

static int job_start(Job *j) {
        switch (job_action(j)->kind) {
        case ACTION_ADOPT:
                return start_adopt(j);
        case ACTION_CREATE:
                return start_create(j);
        case ACTION_UPLOAD:
                return start_upload(j, false);
        case ACTION_MIGRATE:
                return start_upload(j, true);
        case ACTION_UPDATE:
                return start_update(j);
        case ACTION_DELETE:
                return start_delete(j);
        case ACTION_PUT_SECRET:
                return start_put_secret(j);
        case ACTION_DELETE_SECRET:
                return start_delete_secret(j);
        case ACTION_SET_SCHEDULES:
                return start_set_schedules(j);
        case ACTION_SET_SUBDOMAIN:
                return start_set_subdomain(j);
        case ACTION_SET_CONSUMER:
                return start_set_consumer(j);
        default:
                return job_finish(j, 0, NULL);
        }
}

/* After -EEXIST on a create whose first attempt may have succeeded: list
 * and find it by name. */
static int start_lookup(Job *j) {
        const Action *a = job_action(j);
        const char *path = NULL;
        CfPaging paging = CFAPI_PAGING_PAGE;
        const char *items_key = NULL;
        _cleanup_free_ char *owned = NULL, *hdr = NULL;
        const char *hdrs[2] = {};
        CfRequest r = { .method = "GET", .priority = CFAPI_PRIORITY_NORMAL };
        int k;

        switch (a->resource_kind) {
        case RESOURCE_KV_NAMESPACE:
        case RESOURCE_D1_DATABASE:
        case RESOURCE_QUEUE:
        case RESOURCE_SECRETS_STORE:
                path = cfreq_template(cfreq_collection(a->resource_kind));
                break;
        case RESOURCE_SECRETS_STORE_SECRET:
                owned = strdup(j->path);
                path = owned;
                break;
        case RESOURCE_R2_BUCKET: {
                const R2Bucket *b = a->desired;

                path = cfreq_template(CF_PATH_R2_BUCKETS);
                paging = CFAPI_PAGING_CURSOR;
                items_key = "buckets";
                if (b && cfreq_r2_jurisdiction_header(b->jurisdiction, &hdr) < 0)
                        return -ENOMEM;
                if (hdr) {
                        hdrs[0] = hdr;
                        r.headers = hdrs;
                }
                break;
        }
        default:
                return job_finish(j, -EEXIST, "already exists");
        }
        if (!path)
                return -ENOMEM;
        r.path = path;
        r.paging = paging;
        r.items_key = items_key;
        j->step = STEP_LOOKUP;
        k = cfapi_submit(j->ap->api, &r, on_reply, j, NULL);
        if (k < 0)
                return k;
        j->ap->pending++;
        return 0;
}

/* Fingerprints the value of a Secrets Store secret as sent, into
 * e->hmac (best effort: without it the next plan writes the value
 * again). */
static void record_store_secret_hmac(Applier *ap, const SecretsStoreSecret *s, LedgerEntry *e) {
        char *v = NULL;
        size_t n = 0;
        char h[65];

        if (read_secret(ap, &s->value, &v, &n, NULL) < 0)
                return;
        if (ap->hooks.secret_hmac && ap->hooks.secret_hmac(ap->hooks.userdata, v, n, h) >= 0)
                (void) free_and_strdup(&e->hmac, h);
        erase_and_free(v, n);
}

/* An uploaded worker: its digest, etag and migration tag, its Durable
 * Object classes, and the bindings a later upload would remove
 * (prune_settle). */
static int record_upload(Job *j, json_object *res) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        const Worker *w = a->worker;
        LedgerEntry *e = record(ap, a, a->name);
        CfUploadAnswer ans;
        char d[65];

        if (!e)
                return -ENOMEM;
        cfreq_upload_answer(res, &ans);
        if (plan_worker_digest(ap->g, w, ap->live, ap->ledger, true, d, NULL) < 0 || free_and_strdup(&e->digest, d) < 0)
                return -ENOMEM;
        if (free_and_strdup(&e->etag, ans.etag) < 0 || free_and_strdup(&e->modified_on, ans.modified_on) < 0)
                return -ENOMEM;
        if (j->with_migrations && a->new_tag && free_and_strdup(&e->migration_tag, a->new_tag) < 0)
                return -ENOMEM;
        if (ans.migration_tag && free_and_strdup(&e->migration_tag, ans.migration_tag) < 0)
                return -ENOMEM;
        e->do_classes = strv_free(e->do_classes);
        for (size_t i = 0; i < w->n_do_classes; i++)
                if (strv_extend(&e->do_classes, w->do_classes[i].class_name) < 0)
                        return -ENOMEM;
        strv_sort_uniq(e->do_classes);
        e->binding_names = strv_free(e->binding_names);
        e->binding_names = calloc(1, sizeof(char *));  /* recorded, possibly none */
        if (!e->binding_names)
                return -ENOMEM;
        for (size_t i = 0; i < w->n_bindings; i++)
                if (w->bindings[i].kind != BINDING_SECRET && strv_extend(&e->binding_names, w->bindings[i].name) < 0)
                        return -ENOMEM;
        for (size_t i = 0; a->inherit && a->inherit[i]; i++)   /* still deployed */
                if (strv_extend(&e->binding_names, a->inherit[i]) < 0)
                        return -ENOMEM;
        strv_sort_uniq(e->binding_names);
        return 0;
}

/* A created data resource (or the one found after -EEXIST): its id and,
 * for a store secret, its store and the value's fingerprint. Finishes
 * the job when the answer has no id. */
static int record_create(Job *j, json_object *res) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        const char *id = cfreq_created_id(a->resource_kind, a->name, res);
        LedgerEntry *e;

        if (!id)
                return job_finish(j, -EBADMSG, "the create answer has no id");
        e = record(ap, a, id);
        if (!e)
                return -ENOMEM;
        if (a->resource_kind == RESOURCE_SECRETS_STORE_SECRET) {
                const SecretsStoreSecret *s = a->desired;
                const char *store = cfreq_created_store_id(res) ?: plan_store_id(ap->g, s->store, ap->live, ap->ledger);

                if (free_and_strdup(&e->store_id, store) < 0)
                        return -ENOMEM;
                record_store_secret_hmac(ap, s, e);
        }
        return 0;
}

static int record_update(Job *j) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        LedgerEntry *e = record(ap, a, a->id);

        if (!e)
                return -ENOMEM;
        if (a->resource_kind == RESOURCE_SECRETS_STORE_SECRET) {
                record_store_secret_hmac(ap, a->desired, e);
                if (!e->store_id) {
                        const LiveResource *lr = live_state_find_by_id(ap->live, a->resource_kind, a->id);

                        if (lr)
                                (void) free_and_strdup(&e->store_id, lr->store_id);
                }
        }
        return 0;
}

/* A worker secret written: the fingerprint of its value. Finishes the
 * job when that cannot be taken. */
static int record_put_secret(Job *j) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        const Binding *b = worker_binding(a->worker, a->detail);
        LedgerEntry *e = ledger_find(ap->ledger, RESOURCE_WORKER, a->doc);
        char *v = NULL;
        size_t n = 0;
        char h[65];
        int r;

        if (!e)
                return job_finish(j, -ENOENT, "worker not in the state");
        r = b ? read_secret(ap, &b->secret, &v, &n, NULL) : -ENOENT;
        if (r < 0)
                return job_finish(j, r, "cannot fingerprint the secret");
        r = ap->hooks.secret_hmac ? ap->hooks.secret_hmac(ap->hooks.userdata, v, n, h) : -ENOKEY;
        erase_and_free(v, n);
        if (r < 0)
                return job_finish(j, r, "cannot fingerprint the secret");
        return ledger_entry_set_secret(e, a->detail, h) < 0 ? -ENOMEM : 0;
}

/* The crons sent: the spec's and those kept until it settles. */
static int record_schedules(const Action *a, LedgerEntry *e) {
        e->crons = strv_free(e->crons);
        e->crons = strv_copy(a->worker->crons ?: (char *[]) { NULL });
        if (!e->crons)
                return -ENOMEM;
        for (size_t i = 0; a->inherit && a->inherit[i]; i++)   /* still set */
                if (strv_extend(&e->crons, a->inherit[i]) < 0)
                        return -ENOMEM;
        strv_sort_uniq(e->crons);
        e->crons_set = true;
        return 0;
}

/* The queues the worker consumes: one added or removed. */
static int record_consumer(const Action *a, LedgerEntry *e) {
        char **n = NULL;

        if (!a->remove) {
                if (strv_contains(e->consumers, a->detail))
                        return 0;
                if (strv_extend(&e->consumers, a->detail) < 0)
                        return -ENOMEM;
                strv_sort_uniq(e->consumers);
                return 0;
        }
        for (size_t i = 0; e->consumers && e->consumers[i]; i++)
                if (!streq(e->consumers[i], a->detail) && strv_extend(&n, e->consumers[i]) < 0) {
                        strv_free(n);
                        return -ENOMEM;
                }
        strv_free(e->consumers);
        e->consumers = n;
        return 0;
}

/* A write Cloudflare accepted: recorded in the ledger by action. A
 * negative return may mean the job is gone (see job_fail). */
static int job_success(Job *j, const CfReply *reply) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        json_object *res = reply ? reply->result : NULL;
        LedgerEntry *e;
        int r = 0;

        switch (a->kind) {
        case ACTION_CREATE:
        case ACTION_UPLOAD:
        case ACTION_MIGRATE:
                r = a->resource_kind == RESOURCE_WORKER ? record_upload(j, res) : record_create(j, res);
                break;
        case ACTION_UPDATE:
                r = record_update(j);
                break;
        case ACTION_DELETE:
                (void) ledger_remove(ap->ledger, a->resource_kind, a->doc);
                break;
        case ACTION_PUT_SECRET:
                r = record_put_secret(j);
                break;
        case ACTION_DELETE_SECRET:
                e = ledger_find(ap->ledger, RESOURCE_WORKER, a->doc);
                if (e)
                        (void) ledger_entry_remove_secret(e, a->detail);
                break;
        case ACTION_SET_SCHEDULES:
        case ACTION_SET_SUBDOMAIN:
        case ACTION_SET_CONSUMER:
                e = ledger_find(ap->ledger, RESOURCE_WORKER, a->doc);
                if (!e)
                        return job_finish(j, -ENOENT, "worker not in the state");
                if (a->kind == ACTION_SET_SCHEDULES)
                        r = record_schedules(a, e);
                else if (a->kind == ACTION_SET_CONSUMER)
                        r = record_consumer(a, e);
                else
                        e->subdomain = a->remove ? 0 : 1;
                break;
        default:
                break;
        }
        if (r < 0)
                return r;
        e = ledger_find(ap->ledger, a->resource_kind, a->doc);
        if (e)
                ledger_touch(ap->ledger, e);
        return job_recorded(j);
}

/* The existing resource found after -EEXIST. */
static int job_lookup_done(Job *j, const CfReply *reply) {
        const Action *a = job_action(j);
        json_object *found;

        if (reply->error < 0)
                return job_finish(j, reply->error, reply->message);
        found = cfreq_find_listed(a->resource_kind, reply->result, a->name);
        if (!found)
                return job_finish(j, -EEXIST, "the create was refused as existing, but no such resource is listed");
        {
                CfReply fake = *reply;

                /* Reuse the success path with the listed object as result;
                 * an id key other than "id" is mapped by job_success. */
                fake.result = found;
                j->step = STEP_AFTER_LOOKUP;
                return job_success(j, &fake);
        }
}

/* Whether the reply proves that a create made nothing: the API answered
 * the first and only attempt of the create call itself with a definitive
 * client error. A retried call may have landed on an earlier attempt, and
 * 408/409/429 are not refusals, so those keep the intent. */
static bool create_refused(const Job *j, const CfReply *reply) {
        const Action *a = job_action(j);

        if (a->kind != ACTION_CREATE || !a->intent || j->step != STEP_MAIN)
                return false;
        if (reply->attempts != 1 || reply->error == -EEXIST)
                return false;
        return reply->http_status >= 400 && reply->http_status < 500 && reply->http_status != 408 &&
               reply->http_status != 409 && reply->http_status != 429;
}

/* Cloudflare's codes for an upload whose binding target it cannot find.
 * alchemy-run/alchemy PR #753 captured them from the live API for its
 * binding-target-not-found retry; 10143 is what wrangler users quote
 * ("Could not resolve service binding"), 10144 what Alchemy recorded. */
static const struct {
        int code;
        BindingKind binding;
        ResourceKind kind;      /* of the action that creates such a target */
        const char *label;
} target_codes[] = {
        { 10041, BINDING_KV_NAMESPACE, RESOURCE_KV_NAMESPACE, "KV namespace" },
        { 10085, BINDING_R2_BUCKET, RESOURCE_R2_BUCKET, "R2 bucket" },
        { 10181, BINDING_D1, RESOURCE_D1_DATABASE, "D1 database" },
        { 11000, BINDING_QUEUE, RESOURCE_QUEUE, "queue" },
        { 10143, BINDING_SERVICE, RESOURCE_WORKER, "service" },
        { 10144, BINDING_SERVICE, RESOURCE_WORKER, "service" },
        { 10061, BINDING_DURABLE_OBJECT, RESOURCE_WORKER, "Durable Object class" },
        { 10182, BINDING_SECRETS_STORE_SECRET, RESOURCE_SECRETS_STORE_SECRET, "Secrets Store secret" },
};

static int target_code_index(const CfReply *reply) {
        if (!reply || reply->error >= 0 || reply->http_status == 429 || reply->http_status >= 500)
                return -1;
        for (size_t i = 0; i < reply->n_errors; i++)
                for (size_t k = 0; k < ELEMENTSOF(target_codes); k++)
                        if (reply->errors[i].code == target_codes[k].code)
                                return (int) k;
        return -1;
}

/* Whether this run just made a target of that kind for action a: one of
 * the actions it waited for created it (or, for a service or Durable
 * Object target, created or migrated the script). */
static bool target_created_in_run(const Applier *ap, const Action *a, ResourceKind kind) {
        for (size_t i = 0; i < a->n_deps; i++) {
                const Action *d = &ap->plan->actions[a->deps[i]];
                const ApplyResult *res = &ap->results[a->deps[i]];

                if (d->resource_kind != kind || !res->done || res->error < 0)
                        continue;
                if (d->kind == ACTION_CREATE ||
                    (kind == RESOURCE_WORKER && (d->kind == ACTION_MIGRATE || d->kind == ACTION_UPLOAD)))
                        return true;
        }
        return false;
}

static int on_target_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        Applier *ap = j->ap;
        size_t index = j->index;
        int r;

        waiting_remove(ap, j);
        if (ap->cancelled) {
                (void) job_finish(j, -ECANCELED, "cancelled while waiting for a binding target");
                return 0;
        }
        r = start_upload(j, j->with_migrations);
        if (r < 0)
                job_fail(ap, index, j, r);
        return 0;
}

/* An upload refused with a binding-target-not-found code: retried with
 * backoff while a target this run created propagates, else failed at
 * once naming the binding. Consumes j on failure (as job_finish). */
static int target_not_found(Job *j, int k, const CfReply *reply) {
        Applier *ap = j->ap;
        const Action *a = job_action(j);
        _cleanup_free_ char *names = NULL, *msg = NULL;
        uint64_t now = now_monotonic_usec(), delay;
        int r;

        for (size_t i = 0; a->worker && i < a->worker->n_bindings; i++) {
                const Binding *b = &a->worker->bindings[i];
                char *n;

                if (b->kind != target_codes[k].binding)
                        continue;
                if (asprintf(&n, "%s%s%s", names ?: "", names ? ", " : "", b->name) < 0)
                        return -ENOMEM;
                free(names);
                names = n;
        }
        if (!j->target_since_usec)
                j->target_since_usec = now;
        if (!target_created_in_run(ap, a, target_codes[k].kind)) {
                if (asprintf(&msg, "binding %s: Cloudflare cannot find its %s target [code %d]: %s", strna(names),
                             target_codes[k].label, target_codes[k].code, strna(reply->message)) < 0)
                        return -ENOMEM;
                return job_finish(j, -ENXIO, msg);
        }
        if (ap->cancelled || now - j->target_since_usec >= ap->target_wait_usec) {
                if (asprintf(&msg,
                             "binding %s: Cloudflare still does not accept the %s this run created, after %" PRIu64
                             " s of retries [code %d]: %s",
                             strna(names), target_codes[k].label, (now - j->target_since_usec) / USEC_PER_SEC,
                             target_codes[k].code, strna(reply->message)) < 0)
                        return -ENOMEM;
                return job_finish(j, -ETIMEDOUT, msg);
        }
        delay = (uint64_t) APPLY_TARGET_BACKOFF_MIN_USEC << (j->target_attempts < 5 ? j->target_attempts : 5);
        if (delay > APPLY_TARGET_BACKOFF_MAX_USEC)
                delay = APPLY_TARGET_BACKOFF_MAX_USEC;
        if (delay > j->target_since_usec + ap->target_wait_usec - now)
                delay = j->target_since_usec + ap->target_wait_usec - now;
        j->target_attempts++;
        r = sd_event_add_time_relative(ap->event, &j->retry, CLOCK_MONOTONIC, delay, 0, on_target_retry, j);
        if (r < 0)
                return r;
        TAILQ_INSERT_TAIL(&ap->waiting, j, link);
        return 0;
}

/* Ownership of a Job: job_finish() and job_recorded() free it, and every
 * step that may call them (job_start, start_upload, start_lookup,
 * job_success, job_lookup_done) passes their result up, so a negative
 * return does not say whether the job still exists. The action's result
 * does: the job is gone once it is done or recorded. Fails it only if it
 * is still there (a second job_finish would be a use after free). */
static void job_fail(Applier *ap, size_t index, Job *j, int error) {
        const ApplyResult *res = &ap->results[index];

        if (res->done || res->recorded)
                return;
        (void) job_finish(j, error, NULL);
}

static void job_on_reply(Job *j, const CfReply *reply) {
        const Action *a = job_action(j);
        Applier *ap = j->ap;
        size_t index = j->index;
        int r;

        if (j->step == STEP_LOOKUP) {
                r = job_lookup_done(j, reply);
                if (r < 0)
                        job_fail(ap, index, j, r);
                return;
        }
        if (reply->error == -ENOENT &&
            (a->kind == ACTION_DELETE || a->kind == ACTION_DELETE_SECRET ||
             (a->kind == ACTION_SET_CONSUMER && a->remove))) {
                r = job_success(j, NULL); /* already gone: the goal */
                if (r < 0)
                        job_fail(ap, index, j, r);
                return;
        }
        if (reply->error == -EEXIST && a->kind == ACTION_SET_CONSUMER && !a->remove) {
                /* A retried attach whose first attempt landed: attached. */
                r = job_success(j, NULL);
                if (r < 0)
                        job_fail(ap, index, j, r);
                return;
        }
        if (a->resource_kind == RESOURCE_WORKER &&
            (a->kind == ACTION_CREATE || a->kind == ACTION_UPLOAD || a->kind == ACTION_MIGRATE)) {
                int k = target_code_index(reply);

                if (k >= 0) {
                        r = target_not_found(j, k, reply);
                        if (r < 0)
                                job_fail(ap, index, j, r);
                        return;
                }
        }
        if (reply->error == -EEXIST && a->kind == ACTION_CREATE && a->resource_kind != RESOURCE_WORKER) {
                /* An earlier attempt whose answer was lost, or a run killed
                 * after the call: the intent makes it ours. */
                r = start_lookup(j);
                if (r < 0)
                        job_fail(ap, index, j, r);
                return;
        }
        if (reply->error < 0 && j->with_migrations && j->step == STEP_MAIN &&
            (reply->error == -ESTALE || reply->error == -EINVAL || reply->error == -EEXIST)) {
                /* The migration may already be applied (a retried upload whose
                 * first attempt succeeded): retry once without it. */
                j->step = STEP_RETRY_NO_MIGRATION;
                r = start_upload(j, false);
                if (r < 0)
                        job_fail(ap, index, j, r);
                return;
        }
        if (reply->error < 0) {
                if (create_refused(j, reply))
                        /* Nothing was created: drop the intent, or a
                         * same-named resource made later by someone else
                         * would be taken for ours. */
                        (void) ledger_remove_intent(j->ap->ledger, a->resource_kind, a->name);
                (void) job_finish(j, reply->error, reply->message);
                return;
        }
        r = job_success(j, reply);
        if (r < 0)
                job_fail(ap, index, j, r);
}

static void on_reply(CfApi *api, const CfReply *reply, void *userdata) {
        Job *j = userdata;
        Applier *ap = j->ap;

        ap->pending--;
        if (ap->dead) {
                free(j->path);
                free(j);
                if (ap->pending == 0)
                        applier_destroy(ap);
                return;
        }
        job_on_reply(j, reply);
}

static void maybe_finish(Applier *ap);

static int job_finish(Job *j, int error, const char *message) {
        Applier *ap = j->ap;
        ApplyResult *res = &ap->results[j->index];
        const Action *a = job_action(j);

        if (res->done)
                return error;
        res->done = true;
        res->error = error;
        if (error < 0) {
                if (!message)
                        message = strerror(-error);
                res->message = strdup(message);
        }
        ap->running--;
        if (ap->hooks.action_done)
                ap->hooks.action_done(ap->hooks.userdata, a, error, res->message);
        free(j->path);
        free(j);
        schedule(ap);
        return error;
}

/* Commits the ledger once for every success recorded since the last
 * commit, then marks exactly those done: only now do their dependents
 * start (a crash before the commit leaves them undone, to be redone). */
static int on_flush(sd_event_source *s, void *userdata) {
        Applier *ap = userdata;
        Job *j;
        int r;

        ap->flush = sd_event_source_disable_unref(ap->flush);
        if (ap->dead)
                return 0;
        r = save(ap);
        while ((j = TAILQ_FIRST(&ap->recorded))) {
                ApplyResult *res = &ap->results[j->index];

                TAILQ_REMOVE(&ap->recorded, j, link);
                assert(res->recorded && !res->done);
                res->done = true;
                res->error = r < 0 ? r : 0;
                if (r < 0) {
                        res->message = strdup("cannot save the state file");
                }
                if (ap->hooks.action_done)
                        ap->hooks.action_done(ap->hooks.userdata, &ap->plan->actions[j->index], res->error,
                                              res->message);
                free(j);
        }
        schedule(ap);
        return 0;
}

/* A success recorded in the ledger: it counts as done once the ledger is
 * committed. Successes that complete together share one commit: the
 * flush is an idle-priority deferred event, so it runs after every
 * completion already pending in the loop. Its slot frees up at once;
 * only its dependents wait for the commit. */
static int job_recorded(Job *j) {
        Applier *ap = j->ap;
        int r;

        ap->results[j->index].recorded = true;
        ap->running--;
        j->path = mfree(j->path);
        TAILQ_INSERT_TAIL(&ap->recorded, j, link);
        if (ap->flush)
                return 0;
        r = sd_event_add_defer(ap->event, &ap->flush, on_flush, ap);
        if (r < 0)
                return on_flush(NULL, ap), 0;
        (void) sd_event_source_set_priority(ap->flush, SD_EVENT_PRIORITY_IDLE);
        return 0;
}

static bool deps_state(const Applier *ap, const Action *a, bool *ret_failed) {
        bool ready = true;

        *ret_failed = false;
        for (size_t i = 0; i < a->n_deps; i++) {
                const ApplyResult *d = &ap->results[a->deps[i]];
                const Action *da = &ap->plan->actions[a->deps[i]];

                if (da->kind == ACTION_BLOCKED) {
                        *ret_failed = true;
                        return false;
                }
                if (!action_kind_is_change(da->kind))
                        continue;
                if (d->done && d->error < 0) {
                        *ret_failed = true;
                        return false;
                }
                if (!d->done)
                        ready = false;
        }
        return ready;
}

static void maybe_finish(Applier *ap) {
        if (ap->finished || ap->running > 0)
                return;
        for (size_t i = 0; i < ap->plan->n_actions; i++)
                if (action_kind_is_change(ap->plan->actions[i].kind) && !ap->results[i].done && !ap->cancelled)
                        return;
        ap->finished = true;
        ap->done(ap, ap->userdata);
}

static int on_defer(sd_event_source *s, void *userdata) {
        Applier *ap = userdata;

        ap->defer = sd_event_source_disable_unref(ap->defer);
        schedule(ap);
        return 0;
}

/* Action i waits on an action that failed or is blocked: it is skipped. */
static void skip_action(Applier *ap, size_t i) {
        const Action *a = &ap->plan->actions[i];
        ApplyResult *res = &ap->results[i];

        res->started = res->done = res->skipped = true;
        res->error = -ENOLINK;
        res->message = strdup("skipped: an action it depends on failed or is blocked");
        if (ap->hooks.action_done)
                ap->hooks.action_done(ap->hooks.userdata, a, res->error, res->message);
}

/* The next batch into batch[]: change actions not started whose
 * dependencies are done, up to the concurrency left; the intent of each
 * create joins the ledger (*ret_intents; *ret_intent_error if one could
 * not). Returns the batch's size; *ret_skipped when an action was skipped. */
static size_t collect_batch(Applier *ap, size_t *batch, bool *ret_skipped, bool *ret_intents,
                            int *ret_intent_error) {
        size_t n = 0;

        for (size_t i = 0; i < ap->plan->n_actions && !ap->cancelled; i++) {
                const Action *a = &ap->plan->actions[i];
                bool failed;

                if (ap->results[i].started || !action_kind_is_change(a->kind))
                        continue;
                if (!deps_state(ap, a, &failed)) {
                        if (failed) {
                                skip_action(ap, i);
                                *ret_skipped = true;
                        }
                        continue;
                }
                if (ap->running + n >= ap->concurrency)
                        break;
                batch[n++] = i;
                if (a->intent) {
                        if (ledger_add_intent(ap->ledger, a->resource_kind, a->name, ap->run_id) < 0)
                                *ret_intent_error = -ENOMEM;
                        *ret_intents = true;
                }
        }
        return n;
}

/* Starts the jobs of batch[0..n) (already claimed). A create fails when
 * the batch's intents could not be saved (intent_error): safety rule 1,
 * no create without its intent on disk. Returns -1 when the applier
 * finished or died meanwhile, else whether a job was started. */
static int start_batch(Applier *ap, const size_t *batch, size_t n, int intent_error) {
        bool progress = false;

        for (size_t k = 0; k < n; k++) {
                size_t i = batch[k];
                ApplyResult *res = &ap->results[i];
                Job *j = calloc(1, sizeof(Job));
                int r;

                if (!j) {
                        ap->running--;
                        res->done = true;
                        res->error = -ENOMEM;
                        continue;
                }
                j->ap = ap;
                j->index = i;
                progress = true;
                if (intent_error < 0 && ap->plan->actions[i].intent) {
                        (void) job_finish(j, intent_error, "cannot record the intent in the state file");
                        if (ap->dead || ap->finished)
                                return -1;
                        continue;
                }
                r = job_start(j);
                if (r < 0)
                        job_fail(ap, i, j, r);
                if (ap->dead || ap->finished)
                        return -1;
        }
        return progress;
}

/* Starts whatever is ready. Never calls done synchronously from
 * apply_start: the first pass runs from a deferred event. The intents of
 * every create started together are saved once, before any of them. */
static void schedule(Applier *ap) {
        bool progress = true;

        if (ap->dead || ap->finished)
                return;
        while (progress) {
                _cleanup_free_ size_t *batch = calloc(ap->concurrency + 1, sizeof(size_t));
                bool intents = false, skipped = false;
                int intent_error = 0; /* the batch's intents could not be saved */
                size_t n;
                int r;

                if (!batch)
                        break;
                n = collect_batch(ap, batch, &skipped, &intents, &intent_error);
                /* Claimed before any starts: a nested schedule (from a job
                 * finishing synchronously) must not start them again. */
                for (size_t k = 0; k < n; k++)
                        ap->results[batch[k]].started = true;
                ap->running += n;
                if (intents && intent_error >= 0)
                        intent_error = save(ap);
                r = start_batch(ap, batch, n, intent_error);
                if (r < 0)
                        return;
                progress = skipped || r > 0;
        }
        maybe_finish(ap);
}

int apply_start(CfApi *api, sd_event *event, const Generation *g, const Plan *plan, Ledger *ledger,
                const LiveState *live, unsigned concurrency, const char *run_id, const ApplyHooks *hooks,
                apply_done_t done, void *userdata, Applier **ret) {
        Applier *ap = calloc(1, sizeof(Applier));
        int r;

        if (!ap)
                return -ENOMEM;
        TAILQ_INIT(&ap->waiting);
        TAILQ_INIT(&ap->recorded);
        ap->api = api;
        ap->g = g;
        ap->plan = plan;
        ap->ledger = ledger;
        ap->live = live;
        ap->concurrency = concurrency ?: 8;
        ap->target_wait_usec = APPLY_TARGET_WAIT_DEFAULT_USEC;
        ap->run_id = strdup(run_id ?: "run");
        ap->hooks = *hooks;
        ap->done = done;
        ap->userdata = userdata;
        ap->results = calloc(plan->n_actions + 1, sizeof(ApplyResult));
        if (!ap->run_id || !ap->results) {
                applier_destroy(ap);
                return -ENOMEM;
        }
        ap->event = sd_event_ref(event);
        r = sd_event_add_defer(event, &ap->defer, on_defer, ap);
        if (r < 0) {
                applier_destroy(ap);
                return r;
        }
        *ret = ap;
        return 0;
}
