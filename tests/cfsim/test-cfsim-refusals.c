/* test-cfsim-refusals.c: what cfsim refuses by default, as Cloudflare does:
 * one upload per missing binding target (each with its code), settings
 * PATCH, propagation lag, secret names over other bindings, queue consumer
 * rules, account limits, R2 jurisdictions, the 403 fault kind, the audit
 * log switches and seeding. See tests/cfsim/README.md for the sources. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim-test.h"

#define CODE "export default { async fetch() { return new Response('hi'); } };\n"
#define QCODE "export default { async fetch() { return new Response('q'); }, async queue(batch) {} };\n"

/* Uploads w with one binding (JSON object text) and returns the answer. */
static Resp *bind_one(const char *binding) {
        char meta[1024];

        snprintf(meta, sizeof(meta), "{\"main_module\":\"i.js\",\"bindings\":[%s]}", binding);
        return upload("w", NULL, meta, "i.js", CODE);
}

static void assert_names(const Resp *r, const char *binding, const char *target) {
        const char *m = jstr(r->json, "errors.0.message");

        ck_assert_ptr_nonnull(m);
        ck_assert_msg(strstr(m, binding) && strstr(m, target), "message '%s' names neither '%s' nor '%s'", m, binding,
                      target);
}

START_TEST(test_each_missing_target) {
        static const struct {
                const char *binding, *name, *target;
                int code;
        } cases[] = {
                { "{\"name\":\"K\",\"type\":\"kv_namespace\",\"namespace_id\":\"0123456789abcdef0123456789abcdef\"}", "K",
                  "0123456789abcdef0123456789abcdef", 10041 },
                { "{\"name\":\"K\",\"type\":\"kv_namespace\",\"namespace_id\":\"placeholder-kv-id\"}", "K", "placeholder-kv-id",
                  10042 },
                { "{\"name\":\"B\",\"type\":\"r2_bucket\",\"bucket_name\":\"nope\"}", "B", "nope", 10085 },
                { "{\"name\":\"D\",\"type\":\"d1\",\"id\":\"39314b87-f2d2-46a5-8523-189b3dbcbecf\"}", "D",
                  "39314b87-f2d2-46a5-8523-189b3dbcbecf", 10181 },
                { "{\"name\":\"Q\",\"type\":\"queue\",\"queue_name\":\"nope\"}", "Q", "nope", 11000 },
                { "{\"name\":\"AUTH\",\"type\":\"service\",\"service\":\"no-such-worker\"}", "AUTH", "no-such-worker", 10143 },
                { "{\"name\":\"C\",\"type\":\"durable_object_namespace\",\"class_name\":\"Counter\",\"script_name\":\"ghost\"}",
                  "C", "ghost", 10061 },
                { "{\"name\":\"C\",\"type\":\"durable_object_namespace\",\"class_name\":\"Counter\"}", "C", "Counter", 10061 },
                { "{\"name\":\"T\",\"type\":\"secrets_store_secret\",\"store_id\":\"0123456789abcdef0123456789abcdef\",\"secret_name\":\"tok\"}",
                  "T", "tok", 10182 },
                { "{\"name\":\"H\",\"type\":\"hyperdrive\",\"id\":\"0123456789abcdef0123456789abcdef\"}", "H",
                  "0123456789abcdef0123456789abcdef", 10157 },
                { "{\"name\":\"V\",\"type\":\"vectorize\",\"index_name\":\"idx\"}", "V", "idx", 10159 },
        };
        Resp *r;

        sim_reset();
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                r = bind_one(cases[i].binding);
                ck_assert_error(r, 400, cases[i].code);
                assert_names(r, cases[i].name, cases[i].target);
        }
        /* Nothing was uploaded. */
        ck_assert_uint_eq(jlen(api("GET", "/workers/scripts", NULL)->json, "result"), 0);
        /* R2 in the binding's jurisdiction: a default bucket does not
         * satisfy an eu binding. */
        ck_assert_ok(api("POST", "/r2/buckets", "{\"name\":\"arch\"}"));
        ck_assert_ok(bind_one("{\"name\":\"B\",\"type\":\"r2_bucket\",\"bucket_name\":\"arch\"}"));
        ck_assert_error(bind_one("{\"name\":\"B\",\"type\":\"r2_bucket\",\"bucket_name\":\"arch\",\"jurisdiction\":\"eu\"}"), 400,
                        10085);
        /* A DO class of another script that does not export it. */
        ck_assert_ok(upload("owner", NULL, "{\"main_module\":\"i.js\",\"migrations\":{\"new_tag\":\"v1\",\"new_classes\":[\"Real\"]}}",
                            "i.js", CODE));
        ck_assert_error(bind_one("{\"name\":\"C\",\"type\":\"durable_object_namespace\",\"class_name\":\"Fake\",\"script_name\":\"owner\"}"),
                        400, 10061);
        ck_assert_ok(bind_one("{\"name\":\"C\",\"type\":\"durable_object_namespace\",\"class_name\":\"Real\",\"script_name\":\"owner\"}"));
        /* Its own class, created by the same upload's migration. */
        ck_assert_ok(upload("self", NULL,
                            "{\"main_module\":\"i.js\",\"migrations\":{\"new_tag\":\"v1\",\"new_classes\":[\"Mine\"]},"
                            "\"bindings\":[{\"name\":\"M\",\"type\":\"durable_object_namespace\",\"class_name\":\"Mine\"}]}",
                            "i.js", CODE));
        /* A refused upload's migration is rolled back. */
        r = upload("self2", NULL,
                   "{\"main_module\":\"i.js\",\"migrations\":{\"new_tag\":\"v1\",\"new_classes\":[\"X\"]},"
                   "\"bindings\":[{\"name\":\"Q\",\"type\":\"queue\",\"queue_name\":\"nope\"}]}",
                   "i.js", CODE);
        ck_assert_error(r, 400, 11000);
        ck_assert_ptr_null(strstr(api("GET", "/workers/durable_objects/namespaces", NULL)->body, "self2"));
        /* A service binding to itself is fine. */
        ck_assert_ok(upload("loop", NULL,
                            "{\"main_module\":\"i.js\",\"bindings\":[{\"name\":\"ME\",\"type\":\"service\",\"service\":\"loop\"}]}",
                            "i.js", CODE));
}
END_TEST

START_TEST(test_settings_patch_refused) {
        Resp *r;

        sim_reset();
        ck_assert_ok(upload("w", NULL, "{\"main_module\":\"i.js\"}", "i.js", CODE));
        r = api("PATCH", "/workers/scripts/w/settings",
                "{\"bindings\":[{\"name\":\"AUTH\",\"type\":\"service\",\"service\":\"no-such-worker\"}]}");
        ck_assert_error(r, 400, 10143);
        assert_names(r, "AUTH", "no-such-worker");
        r = api("GET", "/workers/scripts/w/settings", NULL);
        ck_assert_uint_eq(jlen(r->json, "result.bindings"), 0);
}
END_TEST

START_TEST(test_secret_over_binding) {
        Resp *r;

        sim_reset();
        ck_assert_ok(upload("w", NULL,
                            "{\"main_module\":\"i.js\",\"bindings\":[{\"name\":\"MODE\",\"type\":\"plain_text\",\"text\":\"x\"}]}",
                            "i.js", CODE));
        r = api("PUT", "/workers/scripts/w/secrets", "{\"name\":\"MODE\",\"text\":\"s3cret\",\"type\":\"secret_text\"}");
        ck_assert_error(r, 400, 10053);
        ck_assert_ptr_nonnull(strstr(jstr(r->json, "errors.0.message"), "Binding name 'MODE' already in use"));
        ck_assert_ptr_null(strstr(r->body, "s3cret"));
        ck_assert_ok(api("PUT", "/workers/scripts/w/secrets", "{\"name\":\"OTHER\",\"text\":\"s\",\"type\":\"secret_text\"}"));
        /* A secret may be replaced by a secret. */
        ck_assert_ok(api("PUT", "/workers/scripts/w/secrets", "{\"name\":\"OTHER\",\"text\":\"t\",\"type\":\"secret_text\"}"));
}
END_TEST

START_TEST(test_queue_consumer_rules) {
        char q[64], dlq[64];
        Resp *r;

        sim_reset();
        r = api("POST", "/queues", "{\"queue_name\":\"jobs\",\"settings\":{\"delivery_delay\":5,\"message_retention_period\":600}}");
        ck_assert_ok(r);
        snprintf(q, sizeof(q), "%s", jstr(r->json, "result.queue_id"));
        r = api("POST", "/queues", "{\"queue_name\":\"dead\"}");
        snprintf(dlq, sizeof(dlq), "%s", jstr(r->json, "result.queue_id"));
        /* A consumer for a script that does not exist. */
        ck_assert_error(apif("POST", "{\"type\":\"worker\",\"script_name\":\"ghost\"}", "/queues/%s/consumers", q), 400, 100127);
        ck_assert_ok(upload("c", NULL, "{\"main_module\":\"i.js\"}", "i.js", QCODE));
        r = apif("POST", "{\"type\":\"worker\",\"script_name\":\"c\"}", "/queues/%s/consumers", q);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.dead_letter_queue"), "");
        r = apif("GET", NULL, "/queues/%s/consumers", q);
        ck_assert_str_eq(jstr(r->json, "result.0.dead_letter_queue"), "");
        /* An upload dropping the queue handler of a consumer: 11001. */
        r = upload("c", NULL, "{\"main_module\":\"i.js\"}", "i.js", CODE);
        ck_assert_error(r, 400, 11001);
        ck_assert_ok(upload("c", NULL, "{\"main_module\":\"i.js\"}", "i.js", QCODE));
        /* Deleting a consumer script without force: 10064; forced, its
         * consumers go too. */
        ck_assert_error(api("DELETE", "/workers/scripts/c", NULL), 400, 10064);
        ck_assert_ok(api("DELETE", "/workers/scripts/c?force=true", NULL));
        r = apif("GET", NULL, "/queues/%s/consumers", q);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);
        /* PUT replaces: settings not sent go back to their defaults. */
        r = apif("PUT", "{\"queue_name\":\"jobs\",\"settings\":{\"delivery_delay\":7}}", "/queues/%s", q);
        ck_assert_ok(r);
        ck_assert_int_eq(jint(r->json, "result.settings.delivery_delay"), 7);
        ck_assert_int_eq(jint(r->json, "result.settings.message_retention_period"), 345600);
        /* PATCH merges. */
        r = apif("PATCH", "{\"settings\":{\"message_retention_period\":900}}", "/queues/%s", q);
        ck_assert_int_eq(jint(r->json, "result.settings.delivery_delay"), 7);
        ck_assert_int_eq(jint(r->json, "result.settings.message_retention_period"), 900);
        (void) dlq;
}
END_TEST

START_TEST(test_jurisdiction_and_403_fault) {
        static const char *const eu[] = { "cf-r2-jurisdiction: eu", NULL };
        char path[256];
        Resp *r;

        sim_reset();
        snprintf(path, sizeof(path), "/client/v4/accounts/%s/r2/buckets", SIM_TEST_ACCOUNT);
        ck_assert_ok(sim_call("POST", path, "application/json", "{\"name\":\"arch\"}", 15, eu));
        /* Without the header the bucket is invisible: list, get, delete. */
        r = api("GET", "/r2/buckets", NULL);
        ck_assert_uint_eq(jlen(r->json, "result.buckets"), 0);
        ck_assert_error(api("GET", "/r2/buckets/arch", NULL), 404, 10006);
        ck_assert_error(api("DELETE", "/r2/buckets/arch", NULL), 404, 10006);
        r = sim_call("GET", path, NULL, NULL, 0, eu);
        ck_assert_uint_eq(jlen(r->json, "result.buckets"), 1);
        ck_assert_str_eq(jstr(r->json, "result.buckets.0.jurisdiction"), "eu");
        snprintf(path, sizeof(path), "/client/v4/accounts/%s/r2/buckets/arch", SIM_TEST_ACCOUNT);
        ck_assert_ok(sim_call("GET", path, NULL, NULL, 0, eu));
        ck_assert_ok(sim_call("DELETE", path, NULL, NULL, 0, eu));
        ck_assert_error(sim_call("GET", path, NULL, NULL, 0, eu), 404, 10006);

        /* The 403 fault kind: a refusal before the handler. */
        ck_assert_status(op("POST", "/__sim/faults", "{\"route\":\"/logs/audit\",\"kind\":\"403\",\"count\":1}"), 200);
        ck_assert_error(api("GET", "/logs/audit?since=2000-01-01&before=2100-01-01", NULL), 403, 10000);
        ck_assert_ok(api("GET", "/logs/audit?since=2000-01-01&before=2100-01-01", NULL));
}
END_TEST

START_TEST(test_seed_route) {
        Resp *r;

        sim_reset();
        ck_assert_status(op("POST", "/__sim/seed", "{\"bogus\":[]}"), 400);
        ck_assert_status(op("POST", "/__sim/seed", "{\"kv\":[{\"id\":\"x\"}]}"), 400);
        ck_assert_status(op("POST", "/__sim/seed",
                            "{\"hyperdrive\":[{\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"pg\"}],"
                            "\"vectorize\":[{\"name\":\"idx\"}],"
                            "\"r2\":[{\"name\":\"legacy-bucket\",\"jurisdiction\":\"eu\"}],"
                            "\"stores\":[{\"id\":\"fedcba9876543210fedcba9876543210\",\"name\":\"main\",\"secrets\":[\"tok\"]}]}"),
                         200);
        r = bind_one("{\"name\":\"H\",\"type\":\"hyperdrive\",\"id\":\"0123456789abcdef0123456789abcdef\"}");
        ck_assert_ok(r);
        ck_assert_ok(bind_one("{\"name\":\"V\",\"type\":\"vectorize\",\"index_name\":\"idx\"}"));
        ck_assert_ok(bind_one("{\"name\":\"B\",\"type\":\"r2_bucket\",\"bucket_name\":\"legacy-bucket\",\"jurisdiction\":\"eu\"}"));
        ck_assert_ok(bind_one("{\"name\":\"T\",\"type\":\"secrets_store_secret\",\"store_id\":\"fedcba9876543210fedcba9876543210\",\"secret_name\":\"tok\"}"));
        /* An invalid seed adds nothing; what exists is kept. */
        ck_assert_status(op("POST", "/__sim/seed", "{\"vectorize\":[{\"name\":\"new\"},{\"name\":\"new\"}]}"), 400);
        ck_assert_status(op("POST", "/__sim/seed", "{\"vectorize\":[{\"name\":\"new\"},{\"name\":\"bad name\"}]}"), 400);
        ck_assert_error(bind_one("{\"name\":\"V\",\"type\":\"vectorize\",\"index_name\":\"new\"}"), 400, 10159);
        ck_assert_status(op("POST", "/__sim/seed", "{\"vectorize\":[{\"name\":\"new\"},{\"name\":\"idx\"}]}"), 200);
        ck_assert_ok(bind_one("{\"name\":\"V\",\"type\":\"vectorize\",\"index_name\":\"new\"}"));
}
END_TEST

START_TEST(test_propagation) {
        static const char *const args[] = { "--propagation-delay", "1", NULL };
        char meta[512], kv[64], d1[256], st[64], ss[512];
        SimProc p;
        Resp *r;

        ck_assert_int_eq(sim_test_start(&p, args), 0);
        r = api("POST", "/storage/kv/namespaces", "{\"title\":\"fresh\"}");
        snprintf(kv, sizeof(kv), "%s", jstr(r->json, "result.id"));
        /* Listed and readable at once ... */
        ck_assert_ok(apif("GET", NULL, "/storage/kv/namespaces/%s", kv));
        /* ... but not yet a binding target. */
        snprintf(meta, sizeof(meta), "{\"name\":\"K\",\"type\":\"kv_namespace\",\"namespace_id\":\"%s\"}", kv);
        ck_assert_error(bind_one(meta), 400, 10041);
        ck_assert_ok(api("POST", "/queues", "{\"queue_name\":\"q\"}"));
        ck_assert_error(bind_one("{\"name\":\"Q\",\"type\":\"queue\",\"queue_name\":\"q\"}"), 400, 11000);
        ck_assert_ok(api("POST", "/r2/buckets", "{\"name\":\"fresh-bucket\"}"));
        ck_assert_error(bind_one("{\"name\":\"B\",\"type\":\"r2_bucket\",\"bucket_name\":\"fresh-bucket\"}"), 400, 10085);
        r = api("POST", "/d1/database", "{\"name\":\"fresh-db\"}");
        snprintf(d1, sizeof(d1), "{\"name\":\"D\",\"type\":\"d1\",\"id\":\"%s\"}", jstr(r->json, "result.uuid"));
        ck_assert_error(bind_one(d1), 400, 10181);
        r = api("POST", "/secrets_store/stores", "{\"name\":\"s\"}");
        snprintf(st, sizeof(st), "%s", jstr(r->json, "result.id"));
        ck_assert_ok(apif("POST", "[{\"name\":\"tok\",\"value\":\"v\",\"scopes\":[\"workers\"]}]", "/secrets_store/stores/%s/secrets", st));
        snprintf(ss, sizeof(ss), "{\"name\":\"T\",\"type\":\"secrets_store_secret\",\"store_id\":\"%s\",\"secret_name\":\"tok\"}", st);
        ck_assert_error(bind_one(ss), 400, 10182);
        usleep(1100 * 1000);
        ck_assert_ok(bind_one(meta));
        ck_assert_ok(bind_one("{\"name\":\"Q\",\"type\":\"queue\",\"queue_name\":\"q\"}"));
        ck_assert_ok(bind_one("{\"name\":\"B\",\"type\":\"r2_bucket\",\"bucket_name\":\"fresh-bucket\"}"));
        ck_assert_ok(bind_one(d1));
        ck_assert_ok(bind_one(ss));
        ck_assert_int_eq(sim_test_stop(&p), 0);
}
END_TEST

START_TEST(test_propagation_some) {
        static const char *const args[] = { "--propagation-delay", "30", "--propagation-every", "2", NULL };
        SimProc p;

        ck_assert_int_eq(sim_test_start(&p, args), 0);
        ck_assert_ok(api("POST", "/queues", "{\"queue_name\":\"first\"}"));
        ck_assert_ok(api("POST", "/queues", "{\"queue_name\":\"second\"}"));
        ck_assert_ok(bind_one("{\"name\":\"Q\",\"type\":\"queue\",\"queue_name\":\"first\"}"));
        ck_assert_error(bind_one("{\"name\":\"Q\",\"type\":\"queue\",\"queue_name\":\"second\"}"), 400, 11000);
        ck_assert_int_eq(sim_test_stop(&p), 0);
}
END_TEST

START_TEST(test_limits_and_lenient_flags) {
        static const char *const args[] = { "--max-scripts", "2", "--max-crons", "1", "--max-store-secrets", "2",
                                            "--no-check-bindings", NULL };
        char st[64];
        SimProc p;
        Resp *r;

        ck_assert_int_eq(sim_test_start(&p, args), 0);
        /* --no-check-bindings: a made-up id is accepted. */
        ck_assert_ok(bind_one("{\"name\":\"Q\",\"type\":\"queue\",\"queue_name\":\"nope\"}"));
        ck_assert_ok(upload("w2", NULL, "{\"main_module\":\"i.js\"}", "i.js", CODE));
        ck_assert_error(upload("w3", NULL, "{\"main_module\":\"i.js\"}", "i.js", CODE), 400, 10037);
        ck_assert_ok(upload("w2", NULL, "{\"main_module\":\"i.js\"}", "i.js", CODE)); /* an update is fine */
        ck_assert_ok(api("PUT", "/workers/scripts/w/schedules", "[{\"cron\":\"*/5 * * * *\"}]"));
        ck_assert_status(api("PUT", "/workers/scripts/w2/schedules", "[{\"cron\":\"*/5 * * * *\"}]"), 400);
        ck_assert_ok(api("PUT", "/workers/scripts/w/schedules", "[{\"cron\":\"*/6 * * * *\"}]"));
        r = api("POST", "/secrets_store/stores", "{\"name\":\"s\"}");
        snprintf(st, sizeof(st), "%s", jstr(r->json, "result.id"));
        ck_assert_error(api("POST", "/secrets_store/stores", "{\"name\":\"t\"}"), 400, 1003);
        ck_assert_ok(apif("POST", "[{\"name\":\"a\",\"value\":\"v\",\"scopes\":[\"workers\"]},{\"name\":\"b\",\"value\":\"v\",\"scopes\":[\"workers\"]}]",
                          "/secrets_store/stores/%s/secrets", st));
        ck_assert_error(apif("POST", "[{\"name\":\"c\",\"value\":\"v\",\"scopes\":[\"workers\"]}]", "/secrets_store/stores/%s/secrets", st),
                        400, 1003);
        r = api("GET", "/secrets_store/quota", NULL);
        ck_assert_ok(r);
        ck_assert_int_eq(jint(r->json, "result.secrets.quota"), 2);
        ck_assert_int_eq(jint(r->json, "result.secrets.usage"), 2);
        ck_assert_int_eq(sim_test_stop(&p), 0);
}
END_TEST

START_TEST(test_audit_forbidden_and_delay) {
        static const char *const forbidden[] = { "--audit-forbidden", NULL };
        static const char *const delayed[] = { "--audit-delay", "1", NULL };
        SimProc p;
        Resp *r;

        ck_assert_int_eq(sim_test_start(&p, forbidden), 0);
        ck_assert_error(api("GET", "/logs/audit?since=2000-01-01&before=2100-01-01", NULL), 403, 10000);
        ck_assert_ok(api("GET", "/workers/scripts", NULL));
        ck_assert_int_eq(sim_test_stop(&p), 0);

        ck_assert_int_eq(sim_test_start(&p, delayed), 0);
        ck_assert_ok(api("POST", "/storage/kv/namespaces", "{\"title\":\"k\"}"));
        r = api("GET", "/logs/audit?since=2000-01-01&before=2100-01-01", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);
        usleep(1100 * 1000);
        r = api("GET", "/logs/audit?since=2000-01-01&before=2100-01-01", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        ck_assert_int_eq(sim_test_stop(&p), 0);
}
END_TEST

START_TEST(test_seed_file) {
        char dir[256], file[300];
        const char *args[] = { "--seed", file, NULL };
        SimProc p;
        FILE *f;

        snprintf(dir, sizeof(dir), "%s/cfsim-seed-XXXXXX", getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(file, sizeof(file), "%s/seed.json", dir);
        f = fopen(file, "w");
        ck_assert_ptr_nonnull(f);
        fputs("{\"kv\":[{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"title\":\"legacy\"}]}", f);
        fclose(f);
        ck_assert_int_eq(sim_test_start(&p, args), 0);
        ck_assert_ok(bind_one("{\"name\":\"L\",\"type\":\"kv_namespace\",\"namespace_id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}"));
        ck_assert_str_eq(jstr(api("GET", "/storage/kv/namespaces", NULL)->json, "result.0.title"), "legacy");
        ck_assert_int_eq(sim_test_stop(&p), 0);
        /* A bad seed file stops cfsim at start. */
        f = fopen(file, "w");
        fputs("{\"kv\":7}", f);
        fclose(f);
        ck_assert_int_lt(sim_test_start(&p, args), 0);
        unlink(file);
        rmdir(dir);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("cfsim-refusals");
        TCase *tc = tcase_create("refusals"), *own = tcase_create("own-process");

        tcase_add_unchecked_fixture(tc, sim_test_fixture_start, sim_test_fixture_stop);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_each_missing_target);
        tcase_add_test(tc, test_settings_patch_refused);
        tcase_add_test(tc, test_secret_over_binding);
        tcase_add_test(tc, test_queue_consumer_rules);
        tcase_add_test(tc, test_jurisdiction_and_403_fault);
        tcase_add_test(tc, test_seed_route);
        suite_add_tcase(s, tc);
        tcase_set_timeout(own, 60);
        tcase_add_test(own, test_propagation);
        tcase_add_test(own, test_propagation_some);
        tcase_add_test(own, test_limits_and_lenient_flags);
        tcase_add_test(own, test_audit_forbidden_and_delay);
        tcase_add_test(own, test_seed_file);
        suite_add_tcase(s, own);
        return s;
}

int main(void) {
        return sim_test_run(suite());
}
