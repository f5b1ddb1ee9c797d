/* test-plan.c: the planner on hand-built generations, live states and
 * ledgers. This is where the safety rules are proven. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "util.h"

#define SEC USEC_PER_SEC
#define NOW (1800000000ULL * USEC_PER_SEC)

/* ---- builders ---- */

static Generation *gen_new(void) {
        Generation *g = calloc(1, sizeof(Generation));

        ck_assert_ptr_nonnull(g);
        g->spec_dir = strdup("/spec");
        return g;
}

#define GROW(arr, n) \
        do { \
                arr = realloc(arr, ((n) + 1) * sizeof(*(arr))); \
                ck_assert_ptr_nonnull(arr); \
                memset(&(arr)[n], 0, sizeof(*(arr))); \
                (n)++; \
        } while (0)

static KVNamespace *add_kv(Generation *g, const char *name) {
        GROW(g->kv_namespaces, g->n_kv_namespaces);
        KVNamespace *k = &g->kv_namespaces[g->n_kv_namespaces - 1];
        k->name = strdup(name);
        return k;
}

static R2Bucket *add_r2(Generation *g, const char *name) {
        GROW(g->r2_buckets, g->n_r2_buckets);
        R2Bucket *b = &g->r2_buckets[g->n_r2_buckets - 1];
        b->name = strdup(name);
        return b;
}

static D1Database *add_d1(Generation *g, const char *name) {
        GROW(g->d1_databases, g->n_d1_databases);
        D1Database *d = &g->d1_databases[g->n_d1_databases - 1];
        d->name = strdup(name);
        return d;
}

static Queue *add_queue(Generation *g, const char *name) {
        GROW(g->queues, g->n_queues);
        Queue *q = &g->queues[g->n_queues - 1];
        q->name = strdup(name);
        q->delivery_delay = -1;
        q->message_retention_period = -1;
        return q;
}

static Worker *add_worker(Generation *g, const char *name) {
        GROW(g->workers, g->n_workers);
        Worker *w = &g->workers[g->n_workers - 1];
        w->name = strdup(name);
        w->main_module = strdup("index.js");
        w->compatibility_date = strdup("2025-06-01");
        w->workers_dev = -1;
        snprintf(w->digest, sizeof(w->digest), "digest-of-%s", name);
        return w;
}

static Binding *add_binding(Worker *w, const char *name, BindingKind k) {
        GROW(w->bindings, w->n_bindings);
        Binding *b = &w->bindings[w->n_bindings - 1];
        b->name = strdup(name);
        b->kind = k;
        return b;
}

static Binding *add_target(Worker *w, const char *name, BindingKind k, const char *target) {
        Binding *b = add_binding(w, name, k);
        b->target = strdup(target);
        return b;
}

static Binding *add_secret(Worker *w, const char *name, const char *cred) {
        Binding *b = add_binding(w, name, BINDING_SECRET);
        b->secret.source = SECRET_SOURCE_CREDENTIAL;
        b->secret.ref = strdup(cred);
        return b;
}

static void add_class(Worker *w, const char *cls) {
        GROW(w->do_classes, w->n_do_classes);
        w->do_classes[w->n_do_classes - 1].class_name = strdup(cls);
        w->do_classes[w->n_do_classes - 1].sqlite = true;
}

static PlanPolicy policy(void) {
        return (PlanPolicy) {
                .prune = false,
                .prune_settle_usec = 30 * SEC,
                .max_deletions = 5,
                .now_usec = NOW,
                .generation_since_usec = NOW - 3600 * SEC,
                .allow_empty = true,        /* most tests plan deletions from an empty spec */
        };
}

static Plan *compute(const Generation *g, const LiveState *l, const Ledger *d, const PlanPolicy *p) {
        Plan *plan = NULL;

        ck_assert_int_eq(plan_compute(g, l, d, p, &plan), 0);
        ck_assert_ptr_nonnull(plan);
        return plan;
}

static LiveState *live_listed(void) {
        LiveState *l = live_state_new();

        l->workers_listed = true;
        for (int k = 0; k < _RESOURCE_KIND_MAX; k++)
                l->listed[k] = true;
        return l;
}

static const Action *find(const Plan *p, ActionKind k, const char *name) {
        for (size_t i = 0; i < p->n_actions; i++)
                if (p->actions[i].kind == k && streq_ptr(p->actions[i].name, name))
                        return &p->actions[i];
        return NULL;
}

static const Action *find_detail(const Plan *p, ActionKind k, const char *name, const char *detail) {
        for (size_t i = 0; i < p->n_actions; i++)
                if (p->actions[i].kind == k && streq_ptr(p->actions[i].name, name) &&
                    streq_ptr(p->actions[i].detail, detail))
                        return &p->actions[i];
        return NULL;
}

static bool depends(const Action *a, const Action *on) {
        for (size_t i = 0; i < a->n_deps; i++)
                if (a->deps[i] == on->index)
                        return true;
        return false;
}

static size_t count(const Plan *p, ActionKind k) {
        size_t n = 0;

        for (size_t i = 0; i < p->n_actions; i++)
                n += p->actions[i].kind == k;
        return n;
}

static LedgerEntry *own(Ledger *l, ResourceKind k, const char *doc, const char *name, const char *id) {
        LedgerEntry *e = ledger_ensure(l, k, doc);

        ck_assert_ptr_nonnull(e);
        free(e->name);
        e->name = strdup(name);
        free(e->id);
        e->id = id ? strdup(id) : NULL;
        return e;
}

/* Records a worker as applied exactly as desired (what apply does). */
static LedgerEntry *own_worker_synced(Ledger *l, const Generation *g, const LiveState *live, const Worker *w,
                                      const char *etag) {
        char d[65];
        LedgerEntry *e = own(l, RESOURCE_WORKER, w->name, w->name, w->name);

        ck_assert_int_eq(plan_worker_digest(g, w, live, l, false, d, NULL), 0);
        e->digest = strdup(d);
        e->etag = etag ? strdup(etag) : NULL;
        return e;
}

/* ---- tests ---- */

START_TEST(test_empty) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

        ck_assert_uint_eq(plan->n_actions, 0);
        ck_assert(!plan_has_changes(plan));
}
END_TEST

START_TEST(test_create_order) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w;

        add_kv(g, "sessions")->title = strdup("api-sessions");
        add_r2(g, "uploads");
        add_d1(g, "main-db");
        add_queue(g, "jobs");
        w = add_worker(g, "api");
        add_target(w, "DB", BINDING_D1, "main-db");
        add_target(w, "JOBS", BINDING_QUEUE, "jobs");
        add_target(w, "SESSIONS", BINDING_KV_NAMESPACE, "sessions");
        add_target(w, "UPLOADS", BINDING_R2_BUCKET, "uploads");

        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        const Action *kv = find(plan, ACTION_CREATE, "api-sessions"), *r2 = find(plan, ACTION_CREATE, "uploads"),
                     *d1 = find(plan, ACTION_CREATE, "main-db"), *q = find(plan, ACTION_CREATE, "jobs"),
                     *wa = find(plan, ACTION_CREATE, "api");

        ck_assert_ptr_nonnull(kv);
        ck_assert_ptr_nonnull(r2);
        ck_assert_ptr_nonnull(d1);
        ck_assert_ptr_nonnull(q);
        ck_assert_ptr_nonnull(wa);
        ck_assert(kv->intent && wa->intent);
        ck_assert(depends(wa, kv));
        ck_assert(depends(wa, r2));
        ck_assert(depends(wa, d1));
        ck_assert(depends(wa, q));
        ck_assert_uint_eq(plan->n_changes, 5);
        ck_assert_uint_eq(plan->n_blocked, 0);
        ck_assert(!wa->drift);
}
END_TEST

START_TEST(test_in_sync_is_noop) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w;
        LiveWorker *lw;
        LedgerEntry *e;

        add_kv(g, "sessions");
        w = add_worker(g, "api");
        add_target(w, "SESSIONS", BINDING_KV_NAMESPACE, "sessions");
        add_secret(w, "TOKEN", "tok");
        ck_assert_ptr_nonnull(live_state_add_resource(l, RESOURCE_KV_NAMESPACE, "kv1", "sessions"));
        lw = live_state_add_worker(l, "api");
        lw->etag = strdup("e1");
        own(d, RESOURCE_KV_NAMESPACE, "sessions", "sessions", "kv1");
        e = own_worker_synced(d, g, l, &g->workers[0], "e1");
        ck_assert_int_eq(ledger_entry_set_secret(e, "TOKEN", "h1"), 0);
        PlanSecret s = { .owner = "api", .name = "TOKEN", .hmac = "h1" };
        p.secrets = &s;
        p.n_secrets = 1;

        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        ck_assert_uint_eq(plan->n_changes, 0);
        ck_assert_uint_eq(count(plan, ACTION_NOOP), 2);
        ck_assert(!plan_has_changes(plan));

        /* The daemon's report counts the no-ops; the CLI's lists them. */
        _cleanup_(json_object_putp) json_object *all = plan_to_json(plan, true);
        _cleanup_(json_object_putp) json_object *counted = plan_to_json(plan, false);
        ck_assert_uint_eq(json_object_array_length(json_object_object_get(all, "actions")), 2);
        ck_assert_uint_eq(json_object_array_length(json_object_object_get(counted, "actions")), 0);
        ck_assert_int_eq(json_object_get_int(json_object_object_get(all, "no_ops")), 2);
        ck_assert_int_eq(json_object_get_int(json_object_object_get(counted, "no_ops")), 2);
}
END_TEST

START_TEST(test_binding_normalisation) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w;
        LiveWorker *lw;
        Binding *b;
        static const char *const live_json[] = {
                /* D1 as `id` (wrangler) instead of database_id */
                "{\"type\":\"d1\",\"name\":\"DB\",\"id\":\"d1-uuid\"}",
                /* JSON in another key order, with spaces */
                "{\"name\":\"LIMITS\",\"type\":\"json\",\"json\":{ \"z\": [1, 2], \"a\": {\"y\": 1.0, \"b\": \"x/y\"} }}",
                /* DO naming its own script; default environment */
                "{\"type\":\"durable_object_namespace\",\"name\":\"COUNTER\",\"class_name\":\"Counter\",\"script_name\":\"api\",\"environment\":\"production\"}",
                /* service with the default environment spelled out, unknown extra field */
                "{\"type\":\"service\",\"name\":\"AUTH\",\"service\":\"auth\",\"environment\":\"production\",\"future_field\":7}",
                "{\"type\":\"plain_text\",\"name\":\"STAGE\",\"text\":\"production\"}",
                "{\"type\":\"r2_bucket\",\"name\":\"UPLOADS\",\"bucket_name\":\"uploads\",\"jurisdiction\":\"default\"}",
                "{\"type\":\"secret_text\",\"name\":\"TOKEN\"}",
        };

        add_d1(g, "main-db");
        add_r2(g, "uploads");
        w = add_worker(g, "api");
        add_binding(w, "AUTH", BINDING_SERVICE)->service = strdup("auth");
        b = add_binding(w, "COUNTER", BINDING_DURABLE_OBJECT);
        b->class_name = strdup("Counter");
        add_target(w, "DB", BINDING_D1, "main-db");
        add_binding(w, "LIMITS", BINDING_JSON)->json = strdup("{\"a\":{\"b\":\"x\\/y\",\"y\":1},\"z\":[1,2]}");
        add_binding(w, "STAGE", BINDING_PLAIN_TEXT)->text = strdup("production");
        add_secret(w, "TOKEN", "tok");
        add_target(w, "UPLOADS", BINDING_R2_BUCKET, "uploads");
        add_class(w, "Counter");

        ck_assert_ptr_nonnull(live_state_add_resource(l, RESOURCE_D1_DATABASE, "d1-uuid", "main-db"));
        ck_assert_ptr_nonnull(live_state_add_resource(l, RESOURCE_R2_BUCKET, "uploads", "uploads"));
        lw = live_state_add_worker(l, "api");
        lw->detail = true;
        lw->etag = strdup("e1");
        for (size_t i = 0; i < ELEMENTSOF(live_json); i++) {
                json_object *j = json_tokener_parse(live_json[i]);
                char *canon = NULL;

                ck_assert_ptr_nonnull(j);
                ck_assert_int_eq(plan_binding_canon_json(j, "api", &canon), 0);
                if (canon)
                        ck_assert_ptr_nonnull(live_worker_add_binding(lw, json_object_get_string(
                                                                               json_object_object_get(j, "name")),
                                                                       "x", canon));
                else
                        ck_assert_int_eq(strv_extend(&lw->secret_names, "TOKEN"), 0);
                free(canon);
                json_object_put(j);
        }
        live_worker_sort(lw);
        lw->migration_tag = NULL;
        own(d, RESOURCE_D1_DATABASE, "main-db", "main-db", "d1-uuid");
        own(d, RESOURCE_R2_BUCKET, "uploads", "uploads", "uploads");
        LedgerEntry *e = own_worker_synced(d, g, l, w, "e1");
        ck_assert_int_eq(strv_extend(&e->do_classes, "Counter"), 0);
        ck_assert_int_eq(ledger_entry_set_secret(e, "TOKEN", "h"), 0);
        PlanSecret s = { .owner = "api", .name = "TOKEN", .hmac = "h" };
        p.secrets = &s;
        p.n_secrets = 1;

        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        _cleanup_free_ char *text = plan_to_text(plan, true);
        ck_assert_msg(plan->n_changes == 0, "perpetual diff:\n%s", text);
}
END_TEST

START_TEST(test_canonical_json) {
        json_object *a = json_tokener_parse("{\"b\": [1, 2.0, {\"y\":null, \"x\":true}], \"a\": \"s/t\"}");
        _cleanup_free_ char *c = plan_json_canonical(a);

        ck_assert_str_eq(c, "{\"a\":\"s/t\",\"b\":[1,2,{\"x\":true,\"y\":null}]}");
        json_object_put(a);
}
END_TEST

static Plan *drift_plan(DriftPolicy dp, const char *live_text, bool remove_binding) {
        Generation *g = gen_new();
        LiveState *l = live_listed();
        Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w = add_worker(g, "api");
        LiveWorker *lw;
        Plan *plan;
        json_object *j;
        char *canon = NULL;

        add_binding(w, "A", BINDING_PLAIN_TEXT)->text = strdup("one");
        add_binding(w, "STAGE", BINDING_PLAIN_TEXT)->text = strdup("production");
        w->policy.drift = dp;
        lw = live_state_add_worker(l, "api");
        lw->detail = true;
        lw->etag = strdup("e1");
        live_worker_add_binding(lw, "A", "plain_text", "plain_text text=one");
        if (!remove_binding) {
                j = json_object_new_object();
                json_object_object_add(j, "type", json_object_new_string("plain_text"));
                json_object_object_add(j, "text", json_object_new_string(live_text));
                ck_assert_int_eq(plan_binding_canon_json(j, "api", &canon), 0);
                live_worker_add_binding(lw, "STAGE", "plain_text", canon);
                free(canon);
                json_object_put(j);
        }
        own_worker_synced(d, g, l, w, "e1");
        plan = compute(g, l, d, &p);
        ledger_free(d);
        live_state_free(l);
        /* Actions point into g only through worker/desired; the reasons
         * are copied, so g can go. */
        for (size_t i = 0; i < plan->n_actions; i++) {
                plan->actions[i].worker = NULL;
                plan->actions[i].desired = NULL;
        }
        generation_free(g);
        return plan;
}

START_TEST(test_drift_changed_var) {
        _cleanup_(plan_freep) Plan *plan = drift_plan(DRIFT_REPAIR, "staging", false);
        const Action *a = find(plan, ACTION_UPLOAD, "api");

        ck_assert_ptr_nonnull(a);
        ck_assert(a->drift);
        ck_assert_ptr_nonnull(strstr(a->reason, "binding STAGE differs"));
        ck_assert_uint_eq(plan->n_changes, 1);
}
END_TEST

START_TEST(test_drift_removed_binding) {
        _cleanup_(plan_freep) Plan *plan = drift_plan(DRIFT_REPAIR, NULL, true);
        const Action *a = find(plan, ACTION_UPLOAD, "api");

        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(strstr(a->reason, "binding STAGE missing"));
}
END_TEST

START_TEST(test_drift_report_writes_nothing) {
        _cleanup_(plan_freep) Plan *plan = drift_plan(DRIFT_REPORT, "staging", false);

        ck_assert_uint_eq(plan->n_changes, 0);
        ck_assert_uint_eq(plan->n_drift, 1);
        ck_assert_ptr_nonnull(find(plan, ACTION_DRIFT_REPORT, "api"));
}
END_TEST

START_TEST(test_drift_etag) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w = add_worker(g, "api");
        LiveWorker *lw = live_state_add_worker(l, "api");

        lw->etag = strdup("someone-else");
        own_worker_synced(d, g, l, w, "ours");
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        const Action *a = find(plan, ACTION_UPLOAD, "api");
        ck_assert_ptr_nonnull(a);
        ck_assert(a->drift);
}
END_TEST

START_TEST(test_unowned_blocked_and_adopt) {
        for (int mode = 0; mode < 3; mode++) {
                _cleanup_(generation_freep) Generation *g = gen_new();
                _cleanup_(live_state_freep) LiveState *l = live_listed();
                _cleanup_(ledger_freep) Ledger *d = ledger_new();
                PlanPolicy p = policy();
                KVNamespace *k = add_kv(g, "cache");
                Worker *w;

                k->policy.adopt = mode == 1;
                w = add_worker(g, "api");
                w->policy.adopt = mode == 1;
                add_target(w, "CACHE", BINDING_KV_NAMESPACE, "cache");
                live_state_add_resource(l, RESOURCE_KV_NAMESPACE, "kv-foreign", "cache");
                live_state_add_worker(l, "api")->etag = strdup("x");
                if (mode == 2) {
                        ck_assert_int_eq(ledger_add_intent(d, RESOURCE_KV_NAMESPACE, "cache", "run-1"), 0);
                        ck_assert_int_eq(ledger_add_intent(d, RESOURCE_WORKER, "api", "run-1"), 0);
                }
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                if (mode == 0) {
                        const Action *b = find(plan, ACTION_BLOCKED, "cache");

                        ck_assert_ptr_nonnull(b);
                        ck_assert_ptr_nonnull(strstr(b->reason, "not owned by bindery"));
                        ck_assert_ptr_nonnull(strstr(b->reason, "adopt: true"));
                        ck_assert_ptr_nonnull(find(plan, ACTION_BLOCKED, "api"));
                        ck_assert_uint_eq(plan->n_changes, 0);
                        ck_assert_uint_eq(count(plan, ACTION_CREATE), 0);
                } else {
                        const Action *ak = find(plan, ACTION_ADOPT, "cache"), *aw = find(plan, ACTION_ADOPT, "api");
                        const Action *up = find(plan, ACTION_UPLOAD, "api");

                        ck_assert_ptr_nonnull(ak);
                        ck_assert_str_eq(ak->id, "kv-foreign");
                        ck_assert_ptr_nonnull(aw);
                        ck_assert_ptr_nonnull(up);
                        ck_assert(depends(up, aw));
                        ck_assert(depends(up, ak));
                        ck_assert_uint_eq(plan->n_blocked, 0);
                        ck_assert_uint_eq(count(plan, ACTION_CREATE), 0);
                        if (mode == 2)
                                ck_assert_ptr_nonnull(strstr(ak->reason, "interrupted run"));
                }
        }
}
END_TEST

START_TEST(test_external_never_touched) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        KVNamespace *k = add_kv(g, "shared");
        KVNamespace *k2;
        Worker *w;
        char *v = NULL;

        k->policy.external = true;
        k->id = strdup("ext-id");
        k2 = add_kv(g, "missing");
        k2->policy.external = true;
        k = &g->kv_namespaces[0];
        w = add_worker(g, "api");
        add_target(w, "SHARED", BINDING_KV_NAMESPACE, "shared");
        live_state_add_resource(l, RESOURCE_KV_NAMESPACE, "ext-id", "shared-title");

        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        ck_assert_ptr_nonnull(find(plan, ACTION_NOOP, "shared"));
        ck_assert_ptr_nonnull(find(plan, ACTION_BLOCKED, "missing"));
        ck_assert_ptr_nonnull(find(plan, ACTION_CREATE, "api"));
        ck_assert_uint_eq(count(plan, ACTION_DELETE) + count(plan, ACTION_UPDATE), 0);
        ck_assert_int_eq(plan_resolve_binding(g, w, &w->bindings[0], l, d, false, &v, NULL), 0);
        ck_assert_str_eq(v, "ext-id");
        free(v);

        /* An external binding by id in the binding itself. */
        {
                _cleanup_(generation_freep) Generation *g2 = gen_new();
                Worker *w2 = add_worker(g2, "x");
                Binding *b = add_binding(w2, "K", BINDING_KV_NAMESPACE);

                b->target_id = strdup("raw-id");
                ck_assert_int_eq(plan_resolve_binding(g2, w2, b, l, d, false, &v, NULL), 0);
                ck_assert_str_eq(v, "raw-id");
                free(v);
        }
}
END_TEST

static Ledger *ledger_with_removed(bool data_delete) {
        Ledger *d = ledger_new();

        own(d, RESOURCE_WORKER, "old", "old", "old");
        own(d, RESOURCE_KV_NAMESPACE, "kv", "kv-title", "kv1")->deletion = data_delete ? DELETION_DELETE : DELETION_RETAIN;
        own(d, RESOURCE_R2_BUCKET, "r2", "bucket", "bucket")->deletion = data_delete ? DELETION_DELETE : DELETION_RETAIN;
        own(d, RESOURCE_D1_DATABASE, "d1", "db", "d1id")->deletion = data_delete ? DELETION_DELETE : DELETION_RETAIN;
        own(d, RESOURCE_QUEUE, "q", "queue", "qid")->deletion = data_delete ? DELETION_DELETE : DELETION_RETAIN;
        return d;
}

static LiveState *live_with_removed(void) {
        LiveState *l = live_listed();

        live_state_add_worker(l, "old");
        live_state_add_resource(l, RESOURCE_KV_NAMESPACE, "kv1", "kv-title");
        live_state_add_resource(l, RESOURCE_R2_BUCKET, "bucket", "bucket");
        live_state_add_resource(l, RESOURCE_D1_DATABASE, "d1id", "db");
        live_state_add_resource(l, RESOURCE_QUEUE, "qid", "queue");
        return l;
}

START_TEST(test_prune_off_retains) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_with_removed();
        _cleanup_(ledger_freep) Ledger *d = ledger_with_removed(false);
        PlanPolicy p = policy();
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

        ck_assert_uint_eq(plan->n_deletes, 0);
        ck_assert_uint_eq(plan->n_changes, 0);
        ck_assert_ptr_nonnull(strstr(find(plan, ACTION_NOOP, "old")->reason, "prune is off"));
        ck_assert_ptr_nonnull(strstr(find(plan, ACTION_NOOP, "kv-title")->reason, "retain"));
}
END_TEST

START_TEST(test_prune_on_deletes_worker_only) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_with_removed();
        _cleanup_(ledger_freep) Ledger *d = ledger_with_removed(false);
        PlanPolicy p = policy();

        p.prune = true;
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        ck_assert_uint_eq(plan->n_deletes, 1);
        ck_assert_ptr_nonnull(find(plan, ACTION_DELETE, "old"));
        ck_assert_ptr_nonnull(find(plan, ACTION_NOOP, "bucket"));
        ck_assert_ptr_nonnull(find(plan, ACTION_NOOP, "db"));
        ck_assert_ptr_nonnull(find(plan, ACTION_NOOP, "queue"));
}
END_TEST

START_TEST(test_deletion_policy_delete) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_with_removed();
        _cleanup_(ledger_freep) Ledger *d = ledger_with_removed(true);
        PlanPolicy p = policy();
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

        /* Data resources with a recorded delete policy go even without prune. */
        ck_assert_uint_eq(plan->n_deletes, 4);
        ck_assert_ptr_null(find(plan, ACTION_DELETE, "old"));
        const Action *kv = find(plan, ACTION_DELETE, "kv-title");
        ck_assert_ptr_nonnull(kv);
        ck_assert_str_eq(kv->id, "kv1");
}
END_TEST

START_TEST(test_do_worker_retained) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        LedgerEntry *e = own(d, RESOURCE_WORKER, "counter", "counter", "counter");

        ck_assert_int_eq(strv_extend(&e->do_classes, "Counter"), 0);
        live_state_add_worker(l, "counter");
        p.prune = true;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_uint_eq(plan->n_deletes, 0);
                ck_assert_ptr_nonnull(strstr(find(plan, ACTION_NOOP, "counter")->reason, "Durable Object"));
        }
        e->deletion = DELETION_DELETE;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_uint_eq(plan->n_deletes, 1);
        }
}
END_TEST

START_TEST(test_prune_settle) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_with_removed();
        _cleanup_(ledger_freep) Ledger *d = ledger_with_removed(true);
        PlanPolicy p = policy();

        p.prune = true;
        p.generation_since_usec = NOW - 10 * SEC; /* half-written spec: 10 s old, settle 30 s */
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        ck_assert_uint_eq(plan->n_deletes, 0);
        ck_assert_uint_eq(plan->n_waiting, 5);
        ck_assert_ptr_nonnull(strstr(find(plan, ACTION_NOOP, "old")->reason, "stable for 30s"));
}
END_TEST

/* Settled changes: every removal waits for prune_settle, additions and
 * updates do not (a spec file written line by line). */
START_TEST(test_settled_removals) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w = add_worker(g, "api");
        LiveWorker *lw;
        LedgerEntry *e;

        add_binding(w, "STAGE", BINDING_PLAIN_TEXT)->text = strdup("produc");   /* cut short: an update */
        add_secret(w, "NEW", "new");
        lw = live_state_add_worker(l, "api");
        lw->etag = strdup("e");
        e = own_worker_synced(d, g, l, w, "e");
        free(e->digest);
        e->digest = strdup("the-digest-of-the-whole-file");
        ck_assert_int_eq(strv_extend(&e->binding_names, "STAGE"), 0);
        ck_assert_int_eq(strv_extend(&e->binding_names, "OLD"), 0);   /* the next line, not written yet */
        ledger_entry_set_secret(e, "GONE", "hg");
        ck_assert_int_eq(strv_extend(&e->crons, "0 * * * *"), 0);
        e->crons_set = true;
        PlanSecret s[] = { { "api", "NEW", "hn", NULL } };
        p.secrets = s;
        p.n_secrets = ELEMENTSOF(s);

        p.generation_since_usec = NOW - 1 * SEC;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *up = find(plan, ACTION_UPLOAD, "api");

                /* The update goes out at once, keeping the dropped binding. */
                ck_assert_ptr_nonnull(up);
                ck_assert_int_eq(strv_length(up->inherit), 1);
                ck_assert_str_eq(up->inherit[0], "OLD");
                ck_assert_ptr_nonnull(strstr(up->reason, "binding(s) OLD kept until the spec has been stable for 30s"));
                ck_assert_ptr_null(find(plan, ACTION_DELETE_SECRET, "api"));
                ck_assert_ptr_null(find(plan, ACTION_SET_SCHEDULES, "api"));
                ck_assert_ptr_nonnull(find_detail(plan, ACTION_PUT_SECRET, "api", "NEW"));  /* an addition */
                ck_assert_uint_eq(plan->n_waiting, 3);
                ck_assert_ptr_nonnull(strstr(find_detail(plan, ACTION_NOOP, "api", "GONE")->reason,
                                             "secret removal waits until the spec has been stable for 30s"));
        }
        /* Settled (or settled by a trigger that expected it): removed. */
        p.generation_since_usec = NOW - 31 * SEC;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                ck_assert_ptr_nonnull(find(plan, ACTION_UPLOAD, "api"));
                ck_assert_ptr_null(find(plan, ACTION_UPLOAD, "api")->inherit);
                ck_assert_ptr_nonnull(find_detail(plan, ACTION_DELETE_SECRET, "api", "GONE"));
                ck_assert_ptr_nonnull(find(plan, ACTION_SET_SCHEDULES, "api"));
                ck_assert_uint_eq(plan->n_waiting, 0);
        }
        /* After an upload that kept OLD: nothing else differs. Unsettled, the
         * removal waits (shown); settled, an upload drops it. */
        free(e->digest);
        {
                char dg[65];

                ck_assert_int_eq(plan_worker_digest(g, w, l, d, false, dg, NULL), 0);
                e->digest = strdup(dg);
        }
        strv_free(e->crons);
        e->crons = NULL;
        e->crons_set = false;
        ledger_entry_remove_secret(e, "GONE");
        ledger_entry_set_secret(e, "NEW", "hn");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                ck_assert_ptr_nonnull(find(plan, ACTION_UPLOAD, "api"));   /* settled: drop OLD */
                ck_assert_ptr_nonnull(strstr(find(plan, ACTION_UPLOAD, "api")->reason, "OLD removed from the spec"));
        }
        p.generation_since_usec = NOW - 1 * SEC;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                ck_assert_ptr_null(find(plan, ACTION_UPLOAD, "api"));
                ck_assert_uint_eq(plan->n_waiting, 1);
                bool shown = false;

                for (size_t i = 0; i < plan->n_actions; i++)
                        if (plan->actions[i].waiting && strstr(plan->actions[i].reason, "binding removal (OLD) waits"))
                                shown = true;
                ck_assert(shown);
        }
        p.generation_since_usec = NOW - 31 * SEC;
        /* An upload that only adds or updates bindings does not wait. */
        p.generation_since_usec = NOW - 1 * SEC;
        add_binding(w, "OLD", BINDING_PLAIN_TEXT)->text = strdup("x");
        add_binding(w, "ADDED", BINDING_PLAIN_TEXT)->text = strdup("y");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                ck_assert_ptr_nonnull(find(plan, ACTION_UPLOAD, "api"));
        }
        /* Schedules: a cron added goes out at once, the dropped one kept. */
        ck_assert_int_eq(strv_extend(&e->crons, "0 * * * *"), 0);
        e->crons_set = true;
        ck_assert_int_eq(strv_extend(&w->crons, "5 * * * *"), 0);
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *a = find(plan, ACTION_SET_SCHEDULES, "api");

                ck_assert_ptr_nonnull(a);
                ck_assert_int_eq(strv_length(a->inherit), 1);
                ck_assert_str_eq(a->inherit[0], "0 * * * *");
        }
        p.generation_since_usec = NOW - 31 * SEC;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                ck_assert_ptr_null(find(plan, ACTION_SET_SCHEDULES, "api")->inherit);
        }
}
END_TEST

/* A generation without documents deletes nothing unless allow_empty; the
 * mass-deletion guard still applies then. */
START_TEST(test_empty_guard) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        char n[16];

        for (int i = 0; i < 6; i++) {
                snprintf(n, sizeof(n), "w%d", i);
                own(d, RESOURCE_WORKER, n, n, n);
                live_state_add_worker(l, n);
        }
        p.prune = true;
        p.allow_empty = false;
        p.force = true;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                ck_assert_uint_eq(plan->n_deletes, 0);
                ck_assert_uint_eq(plan->n_blocked, 6);
                ck_assert_ptr_nonnull(strstr(find(plan, ACTION_BLOCKED, "w0")->reason, "allow_empty: true"));
                ck_assert(plan->empty_refused);
                _cleanup_free_ char *t = plan_to_text(plan, false);
                ck_assert_ptr_nonnull(strstr(t, "has no documents: nothing is deleted"));
        }
        p.allow_empty = true;
        p.force = false;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                ck_assert_uint_eq(plan->n_deletes, 0);
                ck_assert_ptr_nonnull(strstr(find(plan, ACTION_BLOCKED, "w0")->reason, "max_deletions (5)"));
        }
        p.force = true;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                ck_assert_uint_eq(plan->n_deletes, 6);
        }
        /* Not empty: the guard does not apply. */
        p.allow_empty = false;
        add_kv(g, "cache");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                ck_assert_uint_eq(plan->n_deletes, 6);
        }
}
END_TEST

START_TEST(test_null_generation_never_deletes) {
        _cleanup_(live_state_freep) LiveState *l = live_with_removed();
        _cleanup_(ledger_freep) Ledger *d = ledger_with_removed(true);
        PlanPolicy p = policy();

        p.prune = true;
        p.force = true;
        _cleanup_(plan_freep) Plan *plan = compute(NULL, l, d, &p);
        ck_assert(plan->generation_missing);
        ck_assert_uint_eq(plan->n_deletes, 0);
        ck_assert_uint_eq(plan->n_changes, 0);
        _cleanup_free_ char *t = plan_to_text(plan, false);
        ck_assert_ptr_nonnull(strstr(t, "No valid spec generation"));
}
END_TEST

START_TEST(test_max_deletions) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        char n[16];

        for (int i = 0; i < 6; i++) {
                snprintf(n, sizeof(n), "w%d", i);
                own(d, RESOURCE_WORKER, n, n, n);
                live_state_add_worker(l, n);
        }
        p.prune = true;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_uint_eq(plan->n_deletes, 0);
                ck_assert_uint_eq(plan->n_blocked, 6);
                ck_assert_ptr_nonnull(strstr(find(plan, ACTION_BLOCKED, "w0")->reason, "max_deletions (5)"));
        }
        p.force = true;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_uint_eq(plan->n_deletes, 6);
                ck_assert_uint_eq(plan->n_blocked, 0);
        }
        p.force = false;
        p.max_deletions = 6;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_uint_eq(plan->n_deletes, 6);
        }
}
END_TEST

START_TEST(test_secrets) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w = add_worker(g, "api");
        LiveWorker *lw;
        LedgerEntry *e;

        add_secret(w, "A", "a");
        add_secret(w, "B", "b");
        add_secret(w, "C", "c");
        add_secret(w, "D", "d");
        lw = live_state_add_worker(l, "api");
        lw->etag = strdup("e");
        e = own_worker_synced(d, g, l, w, "e");
        ledger_entry_set_secret(e, "A", "ha");       /* unchanged */
        ledger_entry_set_secret(e, "B", "hb-old");   /* rotated */
        /* C new; D unreadable */
        ledger_entry_set_secret(e, "OLD", "ho");     /* removed from spec */
        PlanSecret s[] = {
                { "api", "A", "ha", NULL },
                { "api", "B", "hb-new", NULL },
                { "api", "C", "hc", NULL },
                { "api", "D", NULL, "credential 'd': not found" },
        };
        p.secrets = s;
        p.n_secrets = ELEMENTSOF(s);
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                ck_assert_ptr_null(find_detail(plan, ACTION_PUT_SECRET, "api", "A"));
                ck_assert_ptr_nonnull(find_detail(plan, ACTION_PUT_SECRET, "api", "B"));
                ck_assert_ptr_nonnull(find_detail(plan, ACTION_PUT_SECRET, "api", "C"));
                ck_assert_ptr_nonnull(find_detail(plan, ACTION_BLOCKED, "api", "D"));
                ck_assert_ptr_nonnull(strstr(find_detail(plan, ACTION_BLOCKED, "api", "D")->reason, "not found"));
                ck_assert_ptr_nonnull(find_detail(plan, ACTION_DELETE_SECRET, "api", "OLD"));
                /* A rotation needs no upload. */
                ck_assert_ptr_null(find(plan, ACTION_UPLOAD, "api"));
        }
        /* Drift: a secret missing on the worker, or written outside bindery. */
        ledger_entry_set_secret(e, "B", "hb-new");
        ledger_entry_set_secret(e, "C", "hc");
        lw->detail = true;
        ck_assert_int_eq(strv_extend(&lw->secret_names, "A"), 0);
        ck_assert_int_eq(strv_extend(&lw->secret_names, "C"), 0);
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *b = find_detail(plan, ACTION_PUT_SECRET, "api", "B");

                ck_assert_ptr_nonnull(b);
                ck_assert(b->drift);
                ck_assert_ptr_null(find_detail(plan, ACTION_PUT_SECRET, "api", "A"));
        }
        lw->secrets_written = true;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_ptr_nonnull(find_detail(plan, ACTION_PUT_SECRET, "api", "A"));
        }
        g->workers[0].policy.drift = DRIFT_REPORT;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_ptr_null(find_detail(plan, ACTION_PUT_SECRET, "api", "A"));
                ck_assert_ptr_nonnull(find_detail(plan, ACTION_DRIFT_REPORT, "api", "A"));
        }
}
END_TEST

START_TEST(test_durable_objects) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *user, *owner;
        Binding *b;

        /* The user is declared first: order must come from dependencies. */
        user = add_worker(g, "frontend");
        owner = add_worker(g, "counter");
        user = &g->workers[0];
        b = add_binding(user, "COUNTER", BINDING_DURABLE_OBJECT);
        b->class_name = strdup("Counter");
        b->script_name = strdup("counter");
        add_binding(user, "SELF", BINDING_SERVICE)->service = strdup("counter");
        add_class(owner, "Counter");

        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *o = find(plan, ACTION_CREATE, "counter"), *u = find(plan, ACTION_CREATE, "frontend");

                ck_assert_ptr_nonnull(o);
                ck_assert_ptr_nonnull(u);
                ck_assert(depends(u, o));
                ck_assert_uint_lt(o->index, u->index);   /* the list is in dependency order */
                ck_assert_ptr_nonnull(o->new_tag);
                ck_assert_ptr_null(o->old_tag);
                ck_assert_str_eq(o->auto_new_classes[0], "Counter");
        }

        /* Owned, in sync, then a new class: automatic migration. */
        LiveWorker *lo = live_state_add_worker(l, "counter");
        char *tag = NULL;
        char *cls[] = { (char *) "Counter", NULL };
        ck_assert_int_eq(plan_auto_migration_tag(cls, &tag), 0);
        lo->migration_tag = tag;
        LedgerEntry *e = own_worker_synced(d, g, l, owner, NULL);
        ck_assert_int_eq(strv_extend(&e->do_classes, "Counter"), 0);
        e->migration_tag = strdup(tag);
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_ptr_nonnull(find(plan, ACTION_NOOP, "counter"));
        }
        add_class(owner, "Limiter");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *m = find(plan, ACTION_MIGRATE, "counter");

                ck_assert_ptr_nonnull(m);
                ck_assert_str_eq(m->old_tag, tag);
                ck_assert_str_eq(m->auto_new_classes[0], "Limiter");
                ck_assert_uint_eq(strv_length(m->auto_new_classes), 1);
        }
        /* A class removed without a migration step is refused. */
        free(owner->do_classes[0].class_name);
        owner->do_classes[0].class_name = strdup("Renamed");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *bl = find(plan, ACTION_BLOCKED, "counter");

                ck_assert_ptr_nonnull(bl);
                ck_assert_ptr_nonnull(strstr(bl->reason, "deleted_classes"));
        }
}
END_TEST

START_TEST(test_explicit_migrations) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w = add_worker(g, "counter");
        LiveWorker *lw;

        add_class(w, "Counter2");
        w->migrations = calloc(2, sizeof(MigrationStep));
        w->n_migrations = 2;
        w->migrations[0].tag = strdup("v1");
        ck_assert_int_eq(strv_extend(&w->migrations[0].new_sqlite_classes, "Counter"), 0);
        w->migrations[1].tag = strdup("v2");
        w->migrations[1].renamed_classes = calloc(1, sizeof(RenamedClass));
        w->migrations[1].n_renamed_classes = 1;
        w->migrations[1].renamed_classes[0].from = strdup("Counter");
        w->migrations[1].renamed_classes[0].to = strdup("Counter2");
        lw = live_state_add_worker(l, "counter");
        lw->migration_tag = strdup("v1");
        own_worker_synced(d, g, l, w, NULL)->migration_tag = strdup("v1");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *m = find(plan, ACTION_MIGRATE, "counter");

                ck_assert_ptr_nonnull(m);
                ck_assert_str_eq(m->old_tag, "v1");
                ck_assert_str_eq(m->new_tag, "v2");
        }
        free(lw->migration_tag);
        lw->migration_tag = strdup("v2");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_ptr_null(find(plan, ACTION_MIGRATE, "counter"));
        }
        free(lw->migration_tag);
        lw->migration_tag = strdup("v9-unknown");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_ptr_nonnull(find(plan, ACTION_BLOCKED, "counter"));
        }
}
END_TEST

START_TEST(test_kv_deleted_outside) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w;

        add_kv(g, "cache");
        w = add_worker(g, "api");
        add_target(w, "CACHE", BINDING_KV_NAMESPACE, "cache");
        live_state_add_worker(l, "api");
        own(d, RESOURCE_KV_NAMESPACE, "cache", "cache", "kv-old");
        /* The worker was synced while the namespace existed. */
        live_state_add_resource(l, RESOURCE_KV_NAMESPACE, "kv-old", "cache");
        own_worker_synced(d, g, l, w, NULL);
        l->resources[0].kind = RESOURCE_R2_BUCKET; /* now gone from the KV list */
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *c = find(plan, ACTION_CREATE, "cache"), *u = find(plan, ACTION_UPLOAD, "api");

                ck_assert_ptr_nonnull(c);
                ck_assert(c->drift);
                ck_assert_ptr_nonnull(u);
                ck_assert(depends(u, c));
        }
        g->kv_namespaces[0].policy.drift = DRIFT_REPORT;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_ptr_nonnull(find(plan, ACTION_DRIFT_REPORT, "cache"));
                ck_assert_uint_eq(plan->n_changes, 0);
        }
}
END_TEST

START_TEST(test_worker_deleted_outside_and_unlisted) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w = add_worker(g, "api");

        w->crons = NULL;
        own_worker_synced(d, g, l, w, "e");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *c = find(plan, ACTION_CREATE, "api");
                ck_assert_ptr_nonnull(c);
                ck_assert(c->drift);
        }
        /* The list could not be read: trust the ledger, never recreate. */
        l->workers_listed = false;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_uint_eq(plan->n_changes, 0);
        }
}
END_TEST

START_TEST(test_schedules_subdomain_consumers) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w;
        LiveWorker *lw;
        LedgerEntry *e;
        LiveResource *q;

        add_queue(g, "jobs");
        w = add_worker(g, "api");
        ck_assert_int_eq(strv_extend(&w->crons, "*/5 * * * *"), 0);
        w->workers_dev = 1;
        w->consumers = calloc(1, sizeof(QueueConsumer));
        w->n_consumers = 1;
        w->consumers[0] = (QueueConsumer) { .queue = strdup("jobs"), .batch_size = 10, .max_retries = -1,
                                            .max_wait_time_ms = -1, .max_concurrency = -1, .retry_delay = -1 };
        lw = live_state_add_worker(l, "api");
        q = live_state_add_resource(l, RESOURCE_QUEUE, "qid", "jobs");
        own(d, RESOURCE_QUEUE, "jobs", "jobs", "qid");
        e = own_worker_synced(d, g, l, w, NULL);
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_ptr_nonnull(find(plan, ACTION_SET_SCHEDULES, "api"));
                ck_assert_ptr_nonnull(find(plan, ACTION_SET_SUBDOMAIN, "api"));
                ck_assert_ptr_nonnull(find_detail(plan, ACTION_SET_CONSUMER, "api", "jobs"));
        }
        /* Recorded and live agree: nothing. */
        e->crons_set = true;
        ck_assert_int_eq(strv_extend(&e->crons, "*/5 * * * *"), 0);
        e->subdomain = 1;
        ck_assert_int_eq(strv_extend(&e->consumers, "jobs"), 0);
        {
                json_object *j = json_tokener_parse("{\"script_name\":\"api\",\"settings\":{\"batch_size\":10}}");
                char *canon = plan_consumer_canon_json(j);

                live_resource_add_consumer(q, "api", "c1", canon);
                free(canon);
                json_object_put(j);
        }
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                _cleanup_free_ char *t = plan_to_text(plan, true);
                ck_assert_msg(plan->n_changes == 0, "%s", t);
        }
        /* Drift in schedules and subdomain. */
        lw->crons_known = true;
        ck_assert_int_eq(strv_extend(&lw->crons, "0 * * * *"), 0);
        lw->subdomain = 0;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert(find(plan, ACTION_SET_SCHEDULES, "api")->drift);
                ck_assert(find(plan, ACTION_SET_SUBDOMAIN, "api")->drift);
        }
        /* Consumer removed from the spec: detached. */
        w->n_consumers = 0;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *c = find_detail(plan, ACTION_SET_CONSUMER, "api", "jobs");
                ck_assert_ptr_nonnull(c);
                ck_assert(c->remove);
                ck_assert_str_eq(c->id, "c1");
        }
        w->n_consumers = 1;
}
END_TEST

/* Every action comes after everything it depends on. */
static void assert_topological(const Plan *p) {
        for (size_t i = 0; i < p->n_actions; i++) {
                ck_assert_uint_eq(p->actions[i].index, i);
                for (size_t k = 0; k < p->actions[i].n_deps; k++)
                        ck_assert_uint_lt(p->actions[i].deps[k], i);
        }
}

START_TEST(test_topological_order) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w;
        Binding *b;

        /* users first in the spec, owners later, plus removals */
        for (int i = 0; i < 3; i++) {
                char n[16], o[16];

                snprintf(n, sizeof(n), "user%d", i);
                snprintf(o, sizeof(o), "owner%d", i);
                w = add_worker(g, n);
                b = add_binding(w, "DO", BINDING_DURABLE_OBJECT);
                b->class_name = strdup("C");
                b->script_name = strdup(o);
                add_secret(w, "S", "s");
        }
        for (int i = 0; i < 3; i++) {
                char o[16];

                snprintf(o, sizeof(o), "owner%d", i);
                add_class(add_worker(g, o), "C");
        }
        own(d, RESOURCE_KV_NAMESPACE, "gone", "gone", "kvg")->deletion = DELETION_DELETE;
        live_state_add_resource(l, RESOURCE_KV_NAMESPACE, "kvg", "gone");
        PlanSecret ps[] = { { "user0", "S", "h", NULL }, { "user1", "S", "h", NULL }, { "user2", "S", "h", NULL } };
        p.secrets = ps;
        p.n_secrets = 3;
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        assert_topological(plan);
        ck_assert_uint_lt(find(plan, ACTION_CREATE, "owner1")->index, find(plan, ACTION_CREATE, "user1")->index);
        ck_assert_uint_lt(find(plan, ACTION_CREATE, "user2")->index,
                          find_detail(plan, ACTION_PUT_SECRET, "user2", "S")->index);
        ck_assert_uint_eq(find(plan, ACTION_DELETE, "gone")->index, plan->n_actions - 1);
}
END_TEST

START_TEST(test_output_forms) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w;

        add_kv(g, "cache");
        w = add_worker(g, "api");
        add_target(w, "CACHE", BINDING_KV_NAMESPACE, "cache");
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        _cleanup_free_ char *t = plan_to_text(plan, false);
        json_object *j = plan_to_json(plan, true), *acts, *a1, *deps;

        ck_assert_ptr_nonnull(strstr(t, "create        KVNamespace/cache: new KV namespace 'cache'\n"));
        ck_assert_ptr_nonnull(strstr(t, "create        Worker/api: new worker 'api'\n"));
        ck_assert_ptr_nonnull(strstr(t, "2 changes, 0 deletions, 0 blocked"));
        ck_assert_ptr_nonnull(j);
        ck_assert(json_object_object_get_ex(j, "actions", &acts));
        ck_assert_uint_eq(json_object_array_length(acts), 2);
        a1 = json_object_array_get_idx(acts, 1);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(a1, "action")), "create");
        deps = json_object_object_get(a1, "depends_on");
        ck_assert_int_eq(json_object_get_int(json_object_array_get_idx(deps, 0)), 0);
        ck_assert_int_eq(json_object_get_int(json_object_object_get(j, "changes")), 2);
        json_object_put(j);
}
END_TEST

START_TEST(test_unknown_binding_type_is_diff_not_crash) {
        json_object *j = json_tokener_parse("{\"type\":\"brand_new_kind\",\"name\":\"X\",\"weird\":{\"b\":1,\"a\":2}}");
        char *c = NULL;

        ck_assert_int_eq(plan_binding_canon_json(j, "api", &c), 0);
        ck_assert_str_eq(c, "brand_new_kind raw={\"type\":\"brand_new_kind\",\"weird\":{\"a\":2,\"b\":1}}");
        free(c);
        json_object_put(j);
        j = json_tokener_parse("{\"name\":\"X\"}");
        ck_assert_int_eq(plan_binding_canon_json(j, "api", &c), 0);
        ck_assert_ptr_nonnull(c);
        free(c);
        json_object_put(j);
}
END_TEST

START_TEST(test_store_secret) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        SecretsStore *st;
        SecretsStoreSecret *ss;
        Worker *w;

        g->secrets_stores = calloc(1, sizeof(SecretsStore));
        g->n_secrets_stores = 1;
        st = &g->secrets_stores[0];
        st->name = strdup("default");
        st->policy.external = true;
        st->is_default = true;
        g->default_store = st;
        g->secrets_store_secrets = calloc(1, sizeof(SecretsStoreSecret));
        g->n_secrets_store_secrets = 1;
        ss = &g->secrets_store_secrets[0];
        ss->name = strdup("api-token");
        ss->value.source = SECRET_SOURCE_ENV;
        ss->value.ref = strdup("TOKEN");
        w = add_worker(g, "api");
        add_target(w, "TOKEN", BINDING_SECRETS_STORE_SECRET, "api-token");
        live_state_add_resource(l, RESOURCE_SECRETS_STORE, "store1", "default");
        PlanSecret s = { "", "api-token", "h1", NULL };
        p.secrets = &s;
        p.n_secrets = 1;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *c = find(plan, ACTION_CREATE, "api-token"), *wc = find(plan, ACTION_CREATE, "api");

                ck_assert_ptr_nonnull(c);
                ck_assert_ptr_nonnull(wc);
                ck_assert(depends(wc, c));
        }
        LedgerEntry *e = own(d, RESOURCE_SECRETS_STORE_SECRET, "api-token", "api-token", "sid");
        char dg[65];
        plan_resource_digest(RESOURCE_SECRETS_STORE_SECRET, ss, dg);
        e->digest = strdup(dg);
        e->hmac = strdup("h1");
        LiveResource *lr = live_state_add_resource(l, RESOURCE_SECRETS_STORE_SECRET, "sid", "api-token");
        lr->store_id = strdup("store1");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_ptr_nonnull(find(plan, ACTION_NOOP, "api-token"));
        }
        s.hmac = "h2";
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_ptr_nonnull(find(plan, ACTION_UPDATE, "api-token"));
        }
}
END_TEST


START_TEST(test_kv_rename) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        KVNamespace *k = add_kv(g, "cache");

        k->title = strdup("new-title");
        live_state_add_resource(l, RESOURCE_KV_NAMESPACE, "kv1", "old-title");
        own(d, RESOURCE_KV_NAMESPACE, "cache", "old-title", "kv1");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *u = find(plan, ACTION_UPDATE, "new-title");
                _cleanup_free_ char *text = plan_to_text(plan, false);

                ck_assert_ptr_nonnull(u);
                ck_assert(!u->drift);
                ck_assert_str_eq(u->id, "kv1");
                ck_assert_ptr_nonnull(strstr(text, "    ~ title: \"old-title\" -> \"new-title\"\n"));
        }
        /* Renamed outside bindery: the ledger says new-title, live says other. */
        free(ledger_find(d, RESOURCE_KV_NAMESPACE, "cache")->name);
        ledger_find(d, RESOURCE_KV_NAMESPACE, "cache")->name = strdup("new-title");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *u = find(plan, ACTION_UPDATE, "new-title");

                ck_assert_ptr_nonnull(u);
                ck_assert(u->drift);
        }
        g->kv_namespaces[0].policy.drift = DRIFT_REPORT;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_ptr_nonnull(find(plan, ACTION_DRIFT_REPORT, "new-title"));
                ck_assert_uint_eq(plan->n_changes, 0);
        }
}
END_TEST

START_TEST(test_suspend_external_worker) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w;

        w = add_worker(g, "paused");
        w->policy.suspend = true;
        w = add_worker(g, "theirs");
        w->policy.external = true;
        live_state_add_worker(l, "theirs");
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        ck_assert_uint_eq(plan->n_changes, 0);
        ck_assert_uint_eq(plan->n_blocked, 0);
        ck_assert_ptr_nonnull(strstr(find(plan, ACTION_NOOP, "paused")->reason, "suspended"));
        ck_assert(find(plan, ACTION_NOOP, "paused")->suspended);        /* status: "suspended" */
        ck_assert_ptr_nonnull(strstr(find(plan, ACTION_NOOP, "theirs")->reason, "external"));
        ck_assert(!find(plan, ACTION_NOOP, "theirs")->suspended);
}
END_TEST

START_TEST(test_worker_blocked_by_missing_external) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        KVNamespace *k = add_kv(g, "shared");
        Worker *w;

        k->policy.external = true;
        w = add_worker(g, "api");
        add_target(w, "S", BINDING_KV_NAMESPACE, "shared");
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        const Action *b = find(plan, ACTION_BLOCKED, "api");

        ck_assert_ptr_nonnull(b);
        ck_assert_ptr_nonnull(strstr(b->reason, "blocked"));
        ck_assert_uint_eq(plan->n_changes, 0);
}
END_TEST

START_TEST(test_intent_worker_with_migration) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w = add_worker(g, "counter");
        LiveWorker *lw;

        add_class(w, "Counter");
        w->migrations = calloc(1, sizeof(MigrationStep));
        w->n_migrations = 1;
        w->migrations[0].tag = strdup("v1");
        ck_assert_int_eq(strv_extend(&w->migrations[0].new_sqlite_classes, "Counter"), 0);
        /* Killed after the upload, before the record: the script carries v1. */
        lw = live_state_add_worker(l, "counter");
        lw->migration_tag = strdup("v1");
        ck_assert_int_eq(ledger_add_intent(d, RESOURCE_WORKER, "counter", "run-9"), 0);
        _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
        const Action *ad = find(plan, ACTION_ADOPT, "counter"), *up = find(plan, ACTION_UPLOAD, "counter");

        ck_assert_ptr_nonnull(ad);
        ck_assert_ptr_nonnull(up);                      /* a plain upload: no migration again */
        ck_assert_ptr_null(find(plan, ACTION_MIGRATE, "counter"));
        ck_assert_ptr_null(find(plan, ACTION_CREATE, "counter"));
        ck_assert_uint_eq(plan->n_blocked, 0);
}
END_TEST

START_TEST(test_service_dependency_only_on_create) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *a = add_worker(g, "front"), *b;

        add_binding(a, "AUTH", BINDING_SERVICE)->service = strdup("auth");
        b = add_worker(g, "auth");
        a = &g->workers[0];
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert(depends(find(plan, ACTION_CREATE, "front"), find(plan, ACTION_CREATE, "auth")));
        }
        /* auth exists and only changes: front does not wait for it. */
        live_state_add_worker(l, "auth");
        own(d, RESOURCE_WORKER, "auth", "auth", "auth")->digest = strdup("old");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *fa = find(plan, ACTION_CREATE, "front"), *au = find(plan, ACTION_UPLOAD, "auth");

                ck_assert_ptr_nonnull(fa);
                ck_assert_ptr_nonnull(au);
                ck_assert(!depends(fa, au));
        }
        (void) b;
}
END_TEST

START_TEST(test_digest_ignores_non_upload_changes) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        Worker *w = add_worker(g, "api");
        char d1[65], d2[65];

        add_secret(w, "K", "cred-a");
        ck_assert_int_eq(plan_worker_digest(g, w, l, d, false, d1, NULL), 0);
        ck_assert_int_eq(strv_extend(&w->crons, "0 * * * *"), 0);
        w->workers_dev = 1;
        w->policy.drift = DRIFT_REPORT;
        w->policy.adopt = true;
        free(w->bindings[0].secret.ref);
        w->bindings[0].secret.ref = strdup("cred-b");
        ck_assert_int_eq(plan_worker_digest(g, w, l, d, false, d2, NULL), 0);
        ck_assert_str_eq(d1, d2);
        free(w->compatibility_date);
        w->compatibility_date = strdup("2026-01-01");
        ck_assert_int_eq(plan_worker_digest(g, w, l, d, false, d2, NULL), 0);
        ck_assert_str_ne(d1, d2);
}
END_TEST

/* A loaded (sorted) generation caches each worker's digest with the
 * resolved targets it came from: a moved target is a new digest, equal to
 * the one computed without the cache; a new generation inherits the
 * caches of unchanged workers only. */
START_TEST(test_digest_cache) {
        _cleanup_(generation_freep) Generation *g = gen_new(), *g2 = gen_new(), *g3 = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed(), *l2 = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        Worker *w, *w2, *w3;
        char c1[65], c2[65], u1[65], u2[65];
        bool unresolved = true;

        add_kv(g, "cache");
        w = add_worker(g, "api");
        add_target(w, "CACHE", BINDING_KV_NAMESPACE, "cache");
        add_secret(w, "K", "cred-a");
        ck_assert_ptr_nonnull(live_state_add_resource(l, RESOURCE_KV_NAMESPACE, "id-1", "cache"));
        ck_assert_ptr_nonnull(live_state_add_resource(l2, RESOURCE_KV_NAMESPACE, "id-2", "cache"));

        /* Uncached reference values. */
        ck_assert_int_eq(plan_worker_digest(g, w, l, d, false, u1, NULL), 0);
        ck_assert_int_eq(plan_worker_digest(g, w, l2, d, false, u2, NULL), 0);
        ck_assert_str_ne(u1, u2);
        ck_assert_ptr_null(w->digest_key);

        g->sorted = true;
        ck_assert_int_eq(plan_worker_digest(g, w, l, d, false, c1, &unresolved), 0);
        ck_assert_str_eq(c1, u1);
        ck_assert(!unresolved);
        ck_assert_ptr_nonnull(w->digest_key);
        ck_assert_ptr_nonnull(w->upload_prefix);
        ck_assert_int_eq(plan_worker_digest(g, w, l, d, false, c1, NULL), 0);
        ck_assert_str_eq(c1, u1);
        ck_assert_int_eq(plan_worker_digest(g, w, l2, d, false, c2, NULL), 0);
        ck_assert_str_eq(c2, u2);
        ck_assert_int_eq(plan_worker_digest(g, w, l, d, false, c1, NULL), 0);
        ck_assert_str_eq(c1, u1);

        /* Same canonical worker: inherited; another: not. */
        add_kv(g2, "cache");
        w2 = add_worker(g2, "api");
        add_target(w2, "CACHE", BINDING_KV_NAMESPACE, "cache");
        add_secret(w2, "K", "cred-a");
        g2->sorted = true;
        plan_generation_inherit(g2, g);
        ck_assert_str_eq(w2->digest_key, w->digest_key);
        ck_assert_str_eq(w2->digest_cached, u1);
        ck_assert_ptr_nonnull(w2->upload_prefix);

        add_kv(g3, "cache");
        w3 = add_worker(g3, "api");
        add_target(w3, "CACHE", BINDING_KV_NAMESPACE, "cache");
        snprintf(w3->digest, sizeof(w3->digest), "another-digest");
        free(w3->compatibility_date);
        w3->compatibility_date = strdup("2026-01-01");
        g3->sorted = true;
        plan_generation_inherit(g3, g);
        ck_assert_ptr_null(w3->digest_key);
        ck_assert_ptr_null(w3->upload_prefix);
        ck_assert_int_eq(plan_worker_digest(g3, w3, l, d, false, c1, NULL), 0);
        ck_assert_str_ne(c1, u1);

        /* An unresolved target is cached as such. */
        live_state_free(TAKE_PTR(l));
        l = live_listed();
        ck_assert_int_eq(plan_worker_digest(g, w, l, d, false, c1, &unresolved), 0);
        ck_assert(unresolved);
        ck_assert_int_eq(plan_worker_digest(g, w, l, d, false, c2, &unresolved), 0);
        ck_assert(unresolved);
        ck_assert_str_eq(c1, c2);
        ck_assert_str_ne(c1, u1);
}
END_TEST

START_TEST(test_store_secret_deletion_policy) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        LedgerEntry *e = own(d, RESOURCE_SECRETS_STORE_SECRET, "tok", "tok", "sid");
        LiveResource *r = live_state_add_resource(l, RESOURCE_SECRETS_STORE_SECRET, "sid", "tok");

        r->store_id = strdup("st");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_uint_eq(plan->n_deletes, 0);  /* prune off */
        }
        p.prune = true;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                /* Retained like data (bindery-spec(5)): workers outside the
                 * spec may bind an account-level store secret by name. */
                ck_assert_uint_eq(plan->n_deletes, 0);
        }
        p.prune = false;
        e->deletion = DELETION_DELETE;
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                ck_assert_uint_eq(plan->n_deletes, 1);
        }
}
END_TEST


/* ---- the plan's diff lines ---- */

static const ActionChange *change(const Action *a, const char *field) {
        for (size_t i = 0; a && i < a->n_changes; i++)
                if (streq(a->changes[i].field, field))
                        return &a->changes[i];
        return NULL;
}

static char *plain_canon(const char *text) {
        json_object *j = json_object_new_object();
        char *canon = NULL;

        json_object_object_add(j, "type", json_object_new_string("plain_text"));
        json_object_object_add(j, "text", json_object_new_string(text));
        ck_assert_int_eq(plan_binding_canon_json(j, "api", &canon), 0);
        json_object_put(j);
        return canon;
}

START_TEST(test_diff_drifted_var) {
        _cleanup_(plan_freep) Plan *plan = drift_plan(DRIFT_REPAIR, "staging now", false);
        const Action *a = find(plan, ACTION_UPLOAD, "api");
        const ActionChange *ch = change(a, "STAGE");
        _cleanup_free_ char *text = plan_to_text(plan, false);
        _cleanup_(json_object_putp) json_object *j = plan_to_json(plan, true);
        json_object *acts, *diff, *d, *v;

        ck_assert_ptr_nonnull(ch);
        ck_assert_int_eq(ch->op, '~');
        ck_assert_str_eq(ch->before, "\"staging now\"");
        ck_assert_str_eq(ch->after, "\"production\"");
        ck_assert_ptr_null(change(a, "A"));             /* equal: no line */
        ck_assert_ptr_nonnull(strstr(text, "\n    ~ STAGE: \"staging now\" -> \"production\"\n"));
        ck_assert(json_object_object_get_ex(j, "actions", &acts));
        ck_assert(json_object_object_get_ex(json_object_array_get_idx(acts, (int) a->index), "diff", &diff));
        ck_assert_uint_eq(json_object_array_length(diff), 1);
        d = json_object_array_get_idx(diff, 0);
        ck_assert(json_object_object_get_ex(d, "before", &v));
        ck_assert_str_eq(json_object_get_string(v), "\"staging now\"");
        ck_assert(json_object_object_get_ex(d, "after", &v));
        ck_assert_str_eq(json_object_get_string(v), "\"production\"");
        ck_assert(json_object_object_get_ex(d, "op", &v));
        ck_assert_str_eq(json_object_get_string(v), "~");
}
END_TEST

START_TEST(test_diff_spec_change) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w = add_worker(g, "api");
        LiveWorker *lw = live_state_add_worker(l, "api");
        _cleanup_free_ char *c1 = plain_canon("staging"), *c2 = plain_canon("gone");

        lw->etag = strdup("e1");
        lw->compatibility_date = strdup("2024-01-01");
        add_binding(w, "STAGE", BINDING_PLAIN_TEXT)->text = strdup("staging");
        add_binding(w, "OLD", BINDING_PLAIN_TEXT)->text = strdup("gone");
        free(w->compatibility_date);
        w->compatibility_date = strdup("2024-01-01");
        own_worker_synced(d, g, l, w, "e1");
        /* The spec moves on: STAGE changes, OLD goes, NEW and a JSON var come. */
        free(w->bindings[0].text);
        w->bindings[0].text = strdup("production");
        free(w->bindings[1].name);
        w->bindings[1].name = strdup("NEW");
        add_binding(w, "CONF", BINDING_JSON)->json = strdup("{\"b\":1,\"a\":[true]}");
        free(w->compatibility_date);
        w->compatibility_date = strdup("2025-06-01");
        /* Without the live detail bindery cannot know the old values. */
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *a = find(plan, ACTION_UPLOAD, "api");
                _cleanup_free_ char *text = plan_to_text(plan, false);

                ck_assert_ptr_nonnull(a);
                ck_assert_ptr_nonnull(change(a, "bindings"));
                ck_assert_int_eq(change(a, "bindings")->op, '?');
                ck_assert_ptr_nonnull(strstr(text, "? bindings: current value unknown"));
                ck_assert_ptr_null(strstr(text, "staging"));    /* never guessed */
                ck_assert_ptr_nonnull(strstr(text, "~ compatibility_date: \"2024-01-01\" -> \"2025-06-01\""));
        }
        lw->detail = true;
        live_worker_add_binding(lw, "STAGE", "plain_text", c1);
        live_worker_add_binding(lw, "OLD", "plain_text", c2);
        live_worker_sort(lw);
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                const Action *a = find(plan, ACTION_UPLOAD, "api");
                _cleanup_free_ char *text = plan_to_text(plan, false);

                ck_assert_ptr_nonnull(a);
                ck_assert(!a->drift);
                ck_assert_ptr_null(strstr(a->reason, "binding"));  /* a spec change, not drift */
                ck_assert_ptr_nonnull(strstr(text, "    ~ STAGE: \"staging\" -> \"production\"\n"));
                ck_assert_ptr_nonnull(strstr(text, "    + NEW: \"production\"\n") ?: strstr(text, "    + NEW: \"gone\"\n"));
                ck_assert_ptr_nonnull(strstr(text, "    - OLD: \"gone\"\n"));
                ck_assert_ptr_nonnull(strstr(text, "    + CONF: {\"a\":[true],\"b\":1}\n"));
                ck_assert_ptr_null(change(a, "bindings"));
        }
}
END_TEST

START_TEST(test_diff_new_target_known_after_apply) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w = add_worker(g, "api");
        _cleanup_(plan_freep) Plan *plan = NULL;
        _cleanup_free_ char *text = NULL;

        add_kv(g, "cache");
        add_target(w, "CACHE", BINDING_KV_NAMESPACE, "cache");
        plan = compute(g, l, d, &p);
        text = plan_to_text(plan, false);
        ck_assert_ptr_nonnull(change(find(plan, ACTION_CREATE, "api"), "CACHE"));
        ck_assert_ptr_null(change(find(plan, ACTION_CREATE, "api"), "CACHE")->after);
        ck_assert_ptr_nonnull(strstr(text, "    + CACHE: (known after apply)\n"));
        ck_assert_ptr_nonnull(strstr(text, "    + compatibility_date: \"2025-06-01\"\n"));
}
END_TEST

START_TEST(test_diff_secrets_never_shown) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w = add_worker(g, "api");
        LiveWorker *lw = live_state_add_worker(l, "api");
        LedgerEntry *e;

        add_secret(w, "ROTATED", "r");
        add_secret(w, "FRESH", "f");
        lw->etag = strdup("e");
        e = own_worker_synced(d, g, l, w, "e");
        ledger_entry_set_secret(e, "ROTATED", "hmac-old-7f3a");
        ledger_entry_set_secret(e, "DROPPED", "hmac-dropped-99");
        PlanSecret s[] = {
                { "api", "ROTATED", "hmac-new-c0de", NULL },
                { "api", "FRESH", "hmac-fresh-beef", NULL },
        };
        p.secrets = s;
        p.n_secrets = ELEMENTSOF(s);
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                _cleanup_free_ char *text = plan_to_text(plan, true);
                _cleanup_(json_object_putp) json_object *j = plan_to_json(plan, true);
                const char *js = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
                const ActionChange *r = change(find_detail(plan, ACTION_PUT_SECRET, "api", "ROTATED"), "ROTATED"),
                                   *f = change(find_detail(plan, ACTION_PUT_SECRET, "api", "FRESH"), "FRESH");

                ck_assert_ptr_nonnull(r);
                ck_assert_ptr_nonnull(f);
                ck_assert(r->secret && f->secret);
                ck_assert_int_eq(r->op, '~');
                ck_assert_int_eq(f->op, '+');
                ck_assert_ptr_null(r->before);
                ck_assert_ptr_null(r->after);
                ck_assert_ptr_nonnull(strstr(text, "    ~ ROTATED: (value changed)\n"));
                ck_assert_ptr_nonnull(strstr(text, "    + FRESH: (new)\n"));
                ck_assert_ptr_nonnull(strstr(text, "    - DROPPED: (secret removed)\n"));
                /* No fingerprint, no value, no before/after for a secret. */
                ck_assert_ptr_null(strstr(text, "hmac-"));
                ck_assert_ptr_null(strstr(js, "hmac-"));
                ck_assert_ptr_nonnull(strstr(js, "\"value\":\"changed\""));
                ck_assert_ptr_nonnull(strstr(js, "\"value\":\"new\""));
                ck_assert_ptr_null(strstr(js, "\"before\""));
                ck_assert_ptr_null(strstr(js, "\"after\""));
        }
}
END_TEST

START_TEST(test_diff_settings) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        Worker *w;
        LiveWorker *lw;
        LedgerEntry *e;
        LiveResource *q;

        add_queue(g, "jobs");
        w = add_worker(g, "api");
        ck_assert_int_eq(strv_extend(&w->crons, "*/5 * * * *"), 0);
        w->workers_dev = 1;
        w->consumers = calloc(1, sizeof(QueueConsumer));
        w->n_consumers = 1;
        w->consumers[0] = (QueueConsumer) { .queue = strdup("jobs"), .batch_size = 20, .max_retries = -1,
                                            .max_wait_time_ms = -1, .max_concurrency = -1, .retry_delay = -1 };
        lw = live_state_add_worker(l, "api");
        lw->crons_known = true;
        ck_assert_int_eq(strv_extend(&lw->crons, "0 * * * *"), 0);
        q = live_state_add_resource(l, RESOURCE_QUEUE, "qid", "jobs");
        own(d, RESOURCE_QUEUE, "jobs", "jobs", "qid");
        e = own_worker_synced(d, g, l, w, NULL);
        e->crons_set = true;
        ck_assert_int_eq(strv_extend(&e->crons, "0 * * * *"), 0);
        e->subdomain = 0;
        ck_assert_int_eq(strv_extend(&e->consumers, "jobs"), 0);
        {
                json_object *j = json_tokener_parse("{\"script_name\":\"api\",\"settings\":{\"batch_size\":10}}");
                char *canon = plan_consumer_canon_json(j);

                live_resource_add_consumer(q, "api", "c1", canon);
                free(canon);
                json_object_put(j);
        }
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);
                _cleanup_free_ char *text = plan_to_text(plan, false);

                ck_assert_ptr_nonnull(strstr(text, "    ~ crons: [\"0 * * * *\"] -> [\"*/5 * * * *\"]\n"));
                /* workers.dev was not read: unknown, not guessed from the ledger. */
                ck_assert_ptr_nonnull(strstr(text, "    ~ workers_dev: (unknown) -> true\n"));
                ck_assert_ptr_nonnull(strstr(text, "    ~ consumer jobs.batch_size: 10 -> 20\n"));
                /* Only the setting that differs. */
                ck_assert_ptr_null(strstr(text, "consumer jobs.max_retries"));
        }
}
END_TEST

/* Deletion order from dependencies (issue 8): store secrets before their
 * store, a worker (and its consumer attachment) before the queue it
 * consumed and the namespace only it bound. */
START_TEST(test_deletion_order) {
        _cleanup_(generation_freep) Generation *g = gen_new();
        _cleanup_(live_state_freep) LiveState *l = live_listed();
        _cleanup_(ledger_freep) Ledger *d = ledger_new();
        PlanPolicy p = policy();
        LedgerEntry *e;
        LiveResource *r;
        const Action *store, *secret, *worker, *queue, *kv;

        p.prune = true;
        e = own(d, RESOURCE_SECRETS_STORE, "st", "st", "store-1");
        e->deletion = DELETION_DELETE;
        live_state_add_resource(l, RESOURCE_SECRETS_STORE, "store-1", "st");
        e = own(d, RESOURCE_SECRETS_STORE_SECRET, "tok", "tok", "sec-1");
        e->deletion = DELETION_DELETE;
        e->store_id = strdup("store-1");
        r = live_state_add_resource(l, RESOURCE_SECRETS_STORE_SECRET, "sec-1", "tok");
        r->store_id = strdup("store-1");
        e = own(d, RESOURCE_QUEUE, "jobs", "jobs", "q-1");
        e->deletion = DELETION_DELETE;
        live_state_add_resource(l, RESOURCE_QUEUE, "q-1", "jobs");
        e = own(d, RESOURCE_KV_NAMESPACE, "cache", "cache", "kv-1");
        e->deletion = DELETION_DELETE;
        live_state_add_resource(l, RESOURCE_KV_NAMESPACE, "kv-1", "cache");
        own(d, RESOURCE_WORKER, "consumer", "consumer", "consumer");
        live_state_add_worker(l, "consumer");
        {
                _cleanup_(plan_freep) Plan *plan = compute(g, l, d, &p);

                store = find(plan, ACTION_DELETE, "st");
                secret = find(plan, ACTION_DELETE, "tok");
                worker = find(plan, ACTION_DELETE, "consumer");
                queue = find(plan, ACTION_DELETE, "jobs");
                kv = find(plan, ACTION_DELETE, "cache");
                ck_assert_ptr_nonnull(store);
                ck_assert_ptr_nonnull(secret);
                ck_assert_ptr_nonnull(worker);
                ck_assert_ptr_nonnull(queue);
                ck_assert_ptr_nonnull(kv);
                ck_assert(depends(store, secret));
                ck_assert(!depends(secret, store));
                ck_assert(depends(queue, worker));
                ck_assert(depends(kv, worker));
                /* plan_sort puts every action after what it waits for */
                ck_assert_uint_lt(secret->index, store->index);
                ck_assert_uint_lt(worker->index, queue->index);
        }
}
END_TEST

static Suite *plan_suite(void) {
        Suite *s = suite_create("plan");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_empty);
        tcase_add_test(tc, test_create_order);
        tcase_add_test(tc, test_in_sync_is_noop);
        tcase_add_test(tc, test_binding_normalisation);
        tcase_add_test(tc, test_canonical_json);
        tcase_add_test(tc, test_drift_changed_var);
        tcase_add_test(tc, test_drift_removed_binding);
        tcase_add_test(tc, test_drift_report_writes_nothing);
        tcase_add_test(tc, test_drift_etag);
        tcase_add_test(tc, test_unowned_blocked_and_adopt);
        tcase_add_test(tc, test_external_never_touched);
        tcase_add_test(tc, test_prune_off_retains);
        tcase_add_test(tc, test_prune_on_deletes_worker_only);
        tcase_add_test(tc, test_deletion_policy_delete);
        tcase_add_test(tc, test_deletion_order);
        tcase_add_test(tc, test_do_worker_retained);
        tcase_add_test(tc, test_prune_settle);
        tcase_add_test(tc, test_settled_removals);
        tcase_add_test(tc, test_empty_guard);
        tcase_add_test(tc, test_null_generation_never_deletes);
        tcase_add_test(tc, test_max_deletions);
        tcase_add_test(tc, test_secrets);
        tcase_add_test(tc, test_durable_objects);
        tcase_add_test(tc, test_explicit_migrations);
        tcase_add_test(tc, test_kv_deleted_outside);
        tcase_add_test(tc, test_worker_deleted_outside_and_unlisted);
        tcase_add_test(tc, test_schedules_subdomain_consumers);
        tcase_add_test(tc, test_topological_order);
        tcase_add_test(tc, test_output_forms);
        tcase_add_test(tc, test_unknown_binding_type_is_diff_not_crash);
        tcase_add_test(tc, test_store_secret);
        tcase_add_test(tc, test_kv_rename);
        tcase_add_test(tc, test_suspend_external_worker);
        tcase_add_test(tc, test_worker_blocked_by_missing_external);
        tcase_add_test(tc, test_intent_worker_with_migration);
        tcase_add_test(tc, test_service_dependency_only_on_create);
        tcase_add_test(tc, test_digest_ignores_non_upload_changes);
        tcase_add_test(tc, test_digest_cache);
        tcase_add_test(tc, test_store_secret_deletion_policy);
        tcase_add_test(tc, test_diff_drifted_var);
        tcase_add_test(tc, test_diff_spec_change);
        tcase_add_test(tc, test_diff_new_target_known_after_apply);
        tcase_add_test(tc, test_diff_secrets_never_shown);
        tcase_add_test(tc, test_diff_settings);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(plan_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
