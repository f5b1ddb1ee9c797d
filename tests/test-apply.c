/* test-apply.c: the worker upload metadata (cloudflare-api.md §2.2) built
 * from a hand-made generation and ledger; the DAG executor on a real
 * sd-event loop against a small libmicrohttpd fake on 127.0.0.1 (port 0)
 * for the paths a test through cfsim cannot reach reliably. */
#include <check.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "apply.h"
#include "util.h"

static Generation *gen(void) {
        Generation *g = calloc(1, sizeof(Generation));
        Worker *w;

        g->spec_dir = strdup("/spec");
        g->kv_namespaces = calloc(1, sizeof(KVNamespace));
        g->n_kv_namespaces = 1;
        g->kv_namespaces[0].name = strdup("cache");
        g->d1_databases = calloc(1, sizeof(D1Database));
        g->n_d1_databases = 1;
        g->d1_databases[0].name = strdup("db");
        g->workers = calloc(1, sizeof(Worker));
        g->n_workers = 1;
        w = &g->workers[0];
        w->name = strdup("api");
        w->main_module = strdup("index.js");
        w->compatibility_date = strdup("2025-06-01");
        w->workers_dev = -1;
        w->bindings = calloc(5, sizeof(Binding));
        w->n_bindings = 5;
        w->bindings[0] = (Binding) { .name = strdup("CACHE"), .kind = BINDING_KV_NAMESPACE, .target = strdup("cache") };
        w->bindings[1] = (Binding) { .name = strdup("DB"), .kind = BINDING_D1, .target = strdup("db") };
        w->bindings[2] = (Binding) { .name = strdup("KEY"), .kind = BINDING_SECRET,
                                     .secret = { SECRET_SOURCE_ENV, strdup("X") } };
        w->bindings[3] = (Binding) { .name = strdup("LIMITS"), .kind = BINDING_JSON, .json = strdup("{\"a\":1}") };
        w->bindings[4] = (Binding) { .name = strdup("STAGE"), .kind = BINDING_PLAIN_TEXT, .text = strdup("prod") };
        w->do_classes = calloc(2, sizeof(DurableObjectClass));
        w->n_do_classes = 2;
        w->do_classes[0] = (DurableObjectClass) { .class_name = strdup("A"), .sqlite = true };
        w->do_classes[1] = (DurableObjectClass) { .class_name = strdup("B"), .sqlite = false };
        return g;
}

static const char *s(json_object *o, const char *k) {
        json_object *v;

        return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static json_object *binding(json_object *m, const char *name) {
        json_object *b = json_object_object_get(m, "bindings");

        for (size_t i = 0; i < json_object_array_length(b); i++)
                if (streq_ptr(s(json_object_array_get_idx(b, i), "name"), name))
                        return json_object_array_get_idx(b, i);
        return NULL;
}

START_TEST(test_metadata) {
        _cleanup_(generation_freep) Generation *g = gen();
        _cleanup_(ledger_freep) Ledger *l = ledger_new();
        _cleanup_(live_state_freep) LiveState *live = live_state_new();
        LedgerEntry *e;
        char *err = NULL;
        json_object *m, *keep;
        Action a = {};

        e = ledger_ensure(l, RESOURCE_KV_NAMESPACE, "cache");
        e->id = strdup("kv-1");
        e = ledger_ensure(l, RESOURCE_D1_DATABASE, "db");
        e->id = strdup("d1-uuid");

        m = apply_worker_metadata(g, &g->workers[0], l, live, NULL, &err);
        ck_assert_ptr_nonnull(m);
        ck_assert_str_eq(s(m, "main_module"), "index.js");
        ck_assert_str_eq(s(m, "compatibility_date"), "2025-06-01");
        keep = json_object_object_get(m, "keep_bindings");
        ck_assert_uint_eq(json_object_array_length(keep), 2);
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(keep, 0)), "secret_text");
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(keep, 1)), "secret_key");
        ck_assert_ptr_null(binding(m, "KEY"));   /* secrets never in the metadata */
        ck_assert_str_eq(s(binding(m, "CACHE"), "type"), "kv_namespace");
        ck_assert_str_eq(s(binding(m, "CACHE"), "namespace_id"), "kv-1");
        ck_assert_str_eq(s(binding(m, "DB"), "database_id"), "d1-uuid");
        ck_assert_str_eq(json_object_to_json_string_ext(json_object_object_get(binding(m, "LIMITS"), "json"),
                                                        JSON_C_TO_STRING_PLAIN),
                         "{\"a\":1}");
        ck_assert_str_eq(s(binding(m, "STAGE"), "text"), "prod");
        ck_assert_uint_eq(json_object_array_length(json_object_object_get(m, "tags")), 0);
        ck_assert(!json_object_object_get_ex(m, "migrations", NULL));
        json_object_put(m);

        /* Automatic migration: new classes by storage. */
        a.old_tag = NULL;
        a.new_tag = (char *) "bindery-x";
        a.auto_new_classes = (char *[]) { (char *) "A", (char *) "B", NULL };
        m = apply_worker_metadata(g, &g->workers[0], l, live, &a, &err);
        ck_assert_ptr_nonnull(m);
        {
                json_object *mig = json_object_object_get(m, "migrations"), *st;

                ck_assert_ptr_nonnull(mig);
                ck_assert_ptr_null(s(mig, "old_tag"));
                ck_assert_str_eq(s(mig, "new_tag"), "bindery-x");
                st = json_object_array_get_idx(json_object_object_get(mig, "steps"), 0);
                ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(
                                         json_object_object_get(st, "new_sqlite_classes"), 0)),
                                 "A");
                ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(
                                         json_object_object_get(st, "new_classes"), 0)),
                                 "B");
        }
        json_object_put(m);

        /* A binding whose target is not available is an error, not a guess. */
        ledger_remove(l, RESOURCE_KV_NAMESPACE, "cache");
        m = apply_worker_metadata(g, &g->workers[0], l, live, NULL, &err);
        ck_assert_ptr_null(m);
        ck_assert_ptr_nonnull(err);
        ck_assert_ptr_nonnull(strstr(err, "CACHE"));
        free(err);
}
END_TEST

START_TEST(test_explicit_steps) {
        _cleanup_(generation_freep) Generation *g = gen();
        _cleanup_(ledger_freep) Ledger *l = ledger_new();
        _cleanup_(live_state_freep) LiveState *live = live_state_new();
        Worker *w = &g->workers[0];
        char *err = NULL;
        Action a = { .old_tag = (char *) "v1", .new_tag = (char *) "v3" };
        json_object *m, *steps;

        w->n_bindings = 0; /* no targets needed here; bindings freed by the generation */
        w->migrations = calloc(3, sizeof(MigrationStep));
        w->n_migrations = 3;
        w->migrations[0].tag = strdup("v1");
        w->migrations[1].tag = strdup("v2");
        w->migrations[1].renamed_classes = calloc(1, sizeof(RenamedClass));
        w->migrations[1].n_renamed_classes = 1;
        w->migrations[1].renamed_classes[0] = (RenamedClass) { strdup("Old"), strdup("New") };
        w->migrations[2].tag = strdup("v3");
        ck_assert_int_eq(strv_extend(&w->migrations[2].deleted_classes, "Gone"), 0);
        m = apply_worker_metadata(g, w, l, live, &a, &err);
        ck_assert_ptr_nonnull(m);
        steps = json_object_object_get(json_object_object_get(m, "migrations"), "steps");
        ck_assert_uint_eq(json_object_array_length(steps), 2);  /* v2 and v3, not v1 */
        ck_assert_str_eq(s(json_object_array_get_idx(json_object_object_get(json_object_array_get_idx(steps, 0),
                                                                            "renamed_classes"),
                                                     0),
                           "to"),
                         "New");
        ck_assert_str_eq(s(json_object_object_get(m, "migrations"), "old_tag"), "v1");
        json_object_put(m);
        w->n_bindings = 5;
}
END_TEST


/* ---- The executor against a fake API ---- */

typedef struct FakeApi {
        struct MHD_Daemon *mhd;
        uint16_t port;
        unsigned posts, gets, puts;
        bool creates;           /* KV creates succeed (else: refused as existing) */
        unsigned refusals;      /* worker uploads refused with 10041 before one succeeds */
} FakeApi;

static enum MHD_Result fake_reply(struct MHD_Connection *c, unsigned status, const char *body) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), (void *) body,
                                                                    MHD_RESPMEM_MUST_COPY);
        enum MHD_Result ret;

        if (!resp)
                return MHD_NO;
        (void) MHD_add_response_header(resp, "Content-Type", "application/json");
        ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* A create refused as existing (KV 10014) whose resource no list shows,
 * as a bucket in a jurisdiction looked up without its header was. */
static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls) {
        FakeApi *f = cls;
        static int marker;

        if (!*con_cls) {
                *con_cls = &marker;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (strstr(url, "/workers/scripts/") && streq(method, "PUT")) {
                unsigned n = __atomic_add_fetch(&f->puts, 1, __ATOMIC_SEQ_CST);

                if (n <= f->refusals)
                        return fake_reply(c, 400, "{\"success\":false,\"errors\":[{\"code\":10041,\"message\":"
                                                  "\"KV namespace 'kv-1' not found (binding CACHE)\"}]}");
                return fake_reply(c, 200, "{\"success\":true,\"errors\":[],\"messages\":[],"
                                          "\"result\":{\"id\":\"api\",\"etag\":\"e1\"}}");
        }
        if (!strstr(url, "/storage/kv/namespaces"))
                return fake_reply(c, 404, "{\"success\":false,\"errors\":[{\"code\":7003,\"message\":\"no route\"}]}");
        if (streq(method, "POST") && f->creates) {
                __atomic_add_fetch(&f->posts, 1, __ATOMIC_SEQ_CST);
                return fake_reply(c, 200, "{\"success\":true,\"errors\":[],\"messages\":[],"
                                          "\"result\":{\"id\":\"kv-1\",\"title\":\"cache\"}}");
        }
        if (streq(method, "POST")) {
                __atomic_add_fetch(&f->posts, 1, __ATOMIC_SEQ_CST);
                return fake_reply(c, 400, "{\"success\":false,\"errors\":[{\"code\":10014,"
                                          "\"message\":\"a namespace with this title already exists\"}]}");
        }
        __atomic_add_fetch(&f->gets, 1, __ATOMIC_SEQ_CST);
        return fake_reply(c, 200, "{\"success\":true,\"errors\":[],\"messages\":[],\"result\":[],"
                                  "\"result_info\":{\"page\":1,\"per_page\":1000,\"count\":0,\"total_count\":0}}");
}

static const char *strempty_msg(const char *s) {
        return s ? s : "";
}

typedef struct Outcome {
        sd_event *event;
        unsigned done_calls, actions;
        int error;
        char message[256];
} Outcome;

static int hook_save(void *userdata) {
        return 0;
}

static void hook_action_done(void *userdata, const Action *a, int error, const char *message) {
        Outcome *o = userdata;

        o->actions++;
        o->error = error;
        snprintf(o->message, sizeof o->message, "%s", message ?: "");
}

static void on_done(Applier *ap, void *userdata) {
        Outcome *o = userdata;

        o->done_calls++;
        (void) sd_event_exit(o->event, 0);
}

/* job_lookup_done() finished the job and returned the error, and the
 * reply handler finished it a second time: a use after free that ASan
 * reports (issue 8). Now the action fails once, naming why. */
static void fake_start(FakeApi *f) {
        const union MHD_DaemonInfo *di;

        f->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, fake_handler,
                                  f, MHD_OPTION_SOCK_ADDR,
                                  (struct sockaddr *) &(struct sockaddr_in) { .sin_family = AF_INET,
                                                                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) },
                                  MHD_OPTION_END);
        ck_assert_ptr_nonnull(f->mhd);
        di = MHD_get_daemon_info(f->mhd, MHD_DAEMON_INFO_BIND_PORT);
        ck_assert_ptr_nonnull(di);
        f->port = di->port;
}

static CfApi *fake_api(const FakeApi *f, sd_event *event) {
        CfApiOptions opts = {};
        CfApi *api = NULL;
        char url[64];

        snprintf(url, sizeof url, "http://127.0.0.1:%u/client/v4", f->port);
        opts.api_url = url;
        opts.account_id = "acc123";
        opts.token = "t";
        opts.token_size = 1;
        opts.backoff_base_usec = 10 * USEC_PER_MSEC;
        opts.request_timeout_usec = 5 * USEC_PER_SEC;
        ck_assert_int_eq(cfapi_new(&api, event, &opts), 0);
        return api;
}

/* A generation of one KV namespace "cache" and one worker "api" binding
 * it as CACHE, with its module in a temporary file. */
static Generation *gen_kv_worker(char *module_path) {
        Generation *g = calloc(1, sizeof(Generation));
        Worker *w;
        int fd;

        ck_assert_ptr_nonnull(g);
        fd = mkstemp(module_path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "export default {};\n", 19), 19);
        close(fd);
        g->spec_dir = strdup("/spec");
        g->kv_namespaces = calloc(1, sizeof(KVNamespace));
        g->n_kv_namespaces = 1;
        g->kv_namespaces[0].name = strdup("cache");
        g->workers = calloc(1, sizeof(Worker));
        g->n_workers = 1;
        w = &g->workers[0];
        w->name = strdup("api");
        w->main_module = strdup("index.js");
        w->compatibility_date = strdup("2025-06-01");
        w->workers_dev = -1;
        w->modules = calloc(1, sizeof(Module));
        w->n_modules = 1;
        w->modules[0] = (Module) { .name = strdup("index.js"), .path = strdup(module_path), .type = MODULE_ESM };
        w->bindings = calloc(1, sizeof(Binding));
        w->n_bindings = 1;
        w->bindings[0] = (Binding) { .name = strdup("CACHE"), .kind = BINDING_KV_NAMESPACE, .target = strdup("cache") };
        return g;
}

/* Runs a two-action plan (create KV "cache" → create worker "api", or
 * only the worker upload when the namespace is already recorded) with
 * the given target wait; fills o. */
static void run_target_plan(FakeApi *f, bool create_kv, uint64_t wait_usec, Outcome *o, int *ret_worker_error,
                            char *ret_worker_message, size_t n) {
        char module[] = "/tmp/test-apply-XXXXXX";
        _cleanup_(generation_freep) Generation *g = gen_kv_worker(module);
        _cleanup_(ledger_freep) Ledger *l = ledger_new();
        _cleanup_(live_state_freep) LiveState *live = live_state_new();
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        CfApi *api;
        Applier *ap = NULL;
        Action acts[2] = {};
        unsigned dep0 = 0;
        Plan plan = { .actions = acts, .n_changes = 2 };
        ApplyHooks hooks = { .save = hook_save, .action_done = hook_action_done, .userdata = o };
        size_t wi;

        if (create_kv) {
                acts[0] = (Action) { .kind = ACTION_CREATE, .resource_kind = RESOURCE_KV_NAMESPACE, .doc = (char *) "cache",
                                     .name = (char *) "cache", .intent = true, .desired = &g->kv_namespaces[0] };
                acts[1] = (Action) { .index = 1, .kind = ACTION_CREATE, .resource_kind = RESOURCE_WORKER, .doc = (char *) "api",
                                     .name = (char *) "api", .intent = true, .worker = &g->workers[0],
                                     .desired = &g->workers[0], .deps = &dep0, .n_deps = 1 };
                plan.n_actions = 2;
                wi = 1;
        } else {
                LedgerEntry *e = ledger_ensure(l, RESOURCE_KV_NAMESPACE, "cache");

                e->id = strdup("kv-1");
                ledger_ensure(l, RESOURCE_WORKER, "api");
                acts[0] = (Action) { .kind = ACTION_UPLOAD, .resource_kind = RESOURCE_WORKER, .doc = (char *) "api",
                                     .name = (char *) "api", .worker = &g->workers[0], .desired = &g->workers[0] };
                plan.n_actions = 1;
                plan.n_changes = 1;
                wi = 0;
        }
        ck_assert_int_ge(sd_event_new(&event), 0);
        o->event = event;
        api = fake_api(f, event);
        ck_assert_int_eq(apply_start(api, event, g, &plan, l, live, 4, "run-1", &hooks, on_done, o, &ap), 0);
        apply_set_target_wait(ap, wait_usec);
        ck_assert_int_ge(sd_event_loop(event), 0);
        *ret_worker_error = apply_result(ap, wi)->error;
        snprintf(ret_worker_message, n, "%s", strempty_msg(apply_result(ap, wi)->message));
        ap = apply_free(ap);
        api = cfapi_free(api);
        unlink(module);
}

/* Cloudflare may not accept a target it just created as a binding target
 * yet (issue 8): the upload is retried until it is, within the wait. */
START_TEST(test_target_propagation_retried) {
        FakeApi f = { .creates = true, .refusals = 2 };
        Outcome o = {};
        int err;
        char msg[512];
        uint64_t t0 = now_monotonic_usec();

        fake_start(&f);
        run_target_plan(&f, true, 10 * USEC_PER_SEC, &o, &err, msg, sizeof msg);
        ck_assert_int_eq(err, 0);
        ck_assert_uint_eq(f.puts, 3);           /* two refusals, then accepted */
        ck_assert_uint_ge(now_monotonic_usec() - t0, 1000 * USEC_PER_MSEC);     /* 0.5 s + 1 s of backoff */
        MHD_stop_daemon(f.mhd);
}
END_TEST

/* It never propagates: the upload fails after the wait, naming the
 * binding; every attempt was a request (bounded). */
START_TEST(test_target_wait_bounded) {
        FakeApi f = { .creates = true, .refusals = 1000 };
        Outcome o = {};
        int err;
        char msg[512];

        fake_start(&f);
        run_target_plan(&f, true, 1500 * USEC_PER_MSEC, &o, &err, msg, sizeof msg);
        ck_assert_int_eq(err, -ETIMEDOUT);
        ck_assert_msg(strstr(msg, "binding CACHE") && strstr(msg, "10041"), "%s", msg);
        ck_assert_uint_ge(f.puts, 2);
        ck_assert_uint_le(f.puts, 4);
        MHD_stop_daemon(f.mhd);
}
END_TEST

/* A not-found for a target this run did not create fails at once. */
START_TEST(test_target_not_created_fails_at_once) {
        FakeApi f = { .creates = true, .refusals = 1000 };
        Outcome o = {};
        int err;
        char msg[512];

        fake_start(&f);
        run_target_plan(&f, false, 10 * USEC_PER_SEC, &o, &err, msg, sizeof msg);
        ck_assert_int_eq(err, -ENXIO);
        ck_assert_msg(strstr(msg, "binding CACHE") && strstr(msg, "KV namespace") && strstr(msg, "10041"), "%s", msg);
        ck_assert_uint_eq(f.puts, 1);
        MHD_stop_daemon(f.mhd);
}
END_TEST

START_TEST(test_exists_but_not_listed) {
        _cleanup_(generation_freep) Generation *g = calloc(1, sizeof(Generation));
        _cleanup_(ledger_freep) Ledger *l = ledger_new();
        _cleanup_(live_state_freep) LiveState *live = live_state_new();
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(cfapi_freep) CfApi *api = NULL;
        _cleanup_(apply_freep) Applier *ap = NULL;
        FakeApi f = {};
        Outcome o = {};
        Action act = {};
        Plan plan = { .actions = &act, .n_actions = 1, .n_changes = 1 };
        ApplyHooks hooks = { .save = hook_save, .action_done = hook_action_done, .userdata = &o };
        const union MHD_DaemonInfo *di;
        char url[64];
        CfApiOptions opts = {};

        f.mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, fake_handler,
                                 &f, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *) &(struct sockaddr_in) { .sin_family = AF_INET,
                                                                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) },
                                 MHD_OPTION_END);
        ck_assert_ptr_nonnull(f.mhd);
        di = MHD_get_daemon_info(f.mhd, MHD_DAEMON_INFO_BIND_PORT);
        ck_assert_ptr_nonnull(di);
        f.port = di->port;

        ck_assert_ptr_nonnull(g);
        g->kv_namespaces = calloc(1, sizeof(KVNamespace));
        ck_assert_ptr_nonnull(g->kv_namespaces);
        g->n_kv_namespaces = 1;
        g->kv_namespaces[0].name = strdup("cache");
        act = (Action) { .kind = ACTION_CREATE, .resource_kind = RESOURCE_KV_NAMESPACE, .doc = (char *) "cache",
                         .name = (char *) "cache", .intent = true, .desired = &g->kv_namespaces[0] };

        ck_assert_int_ge(sd_event_new(&event), 0);
        o.event = event;
        snprintf(url, sizeof url, "http://127.0.0.1:%u/client/v4", f.port);
        opts.api_url = url;
        opts.account_id = "acc123";
        opts.token = "t";
        opts.token_size = 1;
        opts.backoff_base_usec = 10 * USEC_PER_MSEC;
        opts.request_timeout_usec = 5 * USEC_PER_SEC;
        ck_assert_int_eq(cfapi_new(&api, event, &opts), 0);
        ck_assert_int_eq(apply_start(api, event, g, &plan, l, live, 4, "run-1", &hooks, on_done, &o, &ap), 0);
        ck_assert_int_ge(sd_event_loop(event), 0);

        ck_assert_uint_eq(o.done_calls, 1);
        ck_assert_uint_eq(o.actions, 1);        /* reported once */
        ck_assert_int_eq(o.error, -EEXIST);
        ck_assert_ptr_nonnull(strstr(o.message, "no such resource is listed"));
        ck_assert_int_eq(apply_result(ap, 0)->error, -EEXIST);
        ck_assert_uint_eq(f.posts, 1);
        ck_assert_uint_ge(f.gets, 1);
        /* The intent stays: the create may have landed somewhere unseen. */
        ck_assert_ptr_nonnull(ledger_find_intent(l, RESOURCE_KV_NAMESPACE, "cache"));
        ap = apply_free(ap);
        api = cfapi_free(api);
        MHD_stop_daemon(f.mhd);
}
END_TEST

static Suite *apply_suite(void) {
        Suite *su = suite_create("apply");
        TCase *tc = tcase_create("metadata");

        tcase_add_test(tc, test_metadata);
        tcase_add_test(tc, test_explicit_steps);
        suite_add_tcase(su, tc);
        tc = tcase_create("executor");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_exists_but_not_listed);
        tcase_add_test(tc, test_target_propagation_retried);
        tcase_add_test(tc, test_target_wait_bounded);
        tcase_add_test(tc, test_target_not_created_fails_at_once);
        suite_add_tcase(su, tc);
        return su;
}

int main(void) {
        SRunner *sr = srunner_create(apply_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
