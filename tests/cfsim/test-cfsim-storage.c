/* test-cfsim-storage.c: KV, R2, D1, Queues, Secrets Store, Durable Object
 * namespaces and the account routes of cfsim, with both pagination styles
 * and their error codes. */
#include <stdio.h>
#include <string.h>

#include "sim-test.h"

START_TEST(test_kv) {
        Resp *r;
        char id[64], body[128];

        sim_reset();
        r = api("POST", "/storage/kv/namespaces", "{\"title\":\"sessions\"}");
        ck_assert_ok(r);
        ck_assert_int_eq(strlen(jstr(r->json, "result.id")), 32);
        ck_assert_str_eq(jstr(r->json, "result.title"), "sessions");
        snprintf(id, sizeof(id), "%s", jstr(r->json, "result.id"));
        ck_assert_error(api("POST", "/storage/kv/namespaces", "{\"title\":\"sessions\"}"), 400, 10014);
        ck_assert_error(api("POST", "/storage/kv/namespaces", "{}"), 400, 10019);
        ck_assert_error(api("POST", "/storage/kv/namespaces", "{\"title\":"), 400, 10021);

        r = apif("GET", NULL, "/storage/kv/namespaces/%s", id);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.title"), "sessions");
        ck_assert_error(api("GET", "/storage/kv/namespaces/00000000000000000000000000000000", NULL), 404, 10013);

        ck_assert_ok(api("POST", "/storage/kv/namespaces", "{\"title\":\"other\"}"));
        r = apif("PUT", "{\"title\":\"other\"}", "/storage/kv/namespaces/%s", id);
        ck_assert_error(r, 400, 10014);
        r = apif("PUT", "{\"title\":\"renamed\"}", "/storage/kv/namespaces/%s", id);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.title"), "renamed");

        /* Page pagination: 25 namespaces, 10 a page, then an empty page. */
        for (int i = 0; i < 23; i++) {
                snprintf(body, sizeof(body), "{\"title\":\"ns-%02d\"}", i);
                ck_assert_ok(api("POST", "/storage/kv/namespaces", body));
        }
        r = api("GET", "/storage/kv/namespaces", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 20); /* default per_page */
        {
                size_t seen = 0;

                for (int page = 1; page < 10; page++) {
                        r = apif("GET", NULL, "/storage/kv/namespaces?per_page=10&page=%d&order=title&direction=asc", page);
                        ck_assert_ok(r);
                        ck_assert_int_eq(jint(r->json, "result_info.page"), page);
                        ck_assert_int_eq(jint(r->json, "result_info.per_page"), 10);
                        ck_assert_int_eq(jint(r->json, "result_info.total_count"), 25);
                        ck_assert_int_eq(jint(r->json, "result_info.total_pages"), 3);
                        ck_assert_int_eq(jint(r->json, "result_info.count"), (int64_t) jlen(r->json, "result"));
                        if (jlen(r->json, "result") == 0)
                                break;
                        seen += jlen(r->json, "result");
                }
                ck_assert_uint_eq(seen, 25);
        }
        r = api("GET", "/storage/kv/namespaces?per_page=5&page=1&order=title&direction=desc", NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.title"), "renamed");
        ck_assert_error(api("GET", "/storage/kv/namespaces?page=abc", NULL), 400, 10021);

        ck_assert_ok(apif("DELETE", NULL, "/storage/kv/namespaces/%s", id));
        ck_assert_error(apif("DELETE", NULL, "/storage/kv/namespaces/%s", id), 404, 10013);
}
END_TEST

START_TEST(test_r2) {
        static const char *const eu[] = { "cf-r2-jurisdiction: eu", NULL };
        static const char *const ia[] = { "cf-r2-storage-class: InfrequentAccess", NULL };
        const char *path = "/client/v4/accounts/" SIM_TEST_ACCOUNT "/r2/buckets";
        Resp *r;
        char body[128], cursor[128] = "";
        size_t seen = 0;

        sim_reset();
        /* wrangler labels this JSON text/plain. */
        r = sim_call("POST", path, "text/plain;charset=UTF-8", "{\"name\":\"uploads\"}", 18, NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.name"), "uploads");
        ck_assert_ptr_nonnull(jstr(r->json, "result.creation_date"));
        ck_assert_error(api("POST", "/r2/buckets", "{\"name\":\"uploads\"}"), 409, 10004);
        ck_assert_error(api("POST", "/r2/buckets", "{\"name\":\"y\"}"), 400, 10005);
        ck_assert_error(api("POST", "/r2/buckets", "{\"name\":\"Bad_Name\"}"), 400, 10005);
        ck_assert_ok(api("GET", "/r2/buckets/uploads", NULL));
        ck_assert_error(api("GET", "/r2/buckets/missing", NULL), 404, 10006);

        /* Jurisdictions are separate namespaces. */
        r = sim_call("GET", "/client/v4/accounts/" SIM_TEST_ACCOUNT "/r2/buckets/uploads", NULL, NULL, 0, eu);
        ck_assert_error(r, 404, 10006);
        r = sim_call("POST", path, "application/json", "{\"name\":\"uploads\"}", 18, eu);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.jurisdiction"), "eu");
        r = sim_call("GET", path, NULL, NULL, 0, eu);
        ck_assert_uint_eq(jlen(r->json, "result.buckets"), 1);

        /* Cursor pagination over 7 default-jurisdiction buckets. */
        for (int i = 0; i < 6; i++) {
                snprintf(body, sizeof(body), "{\"name\":\"bucket-%d\"}", i);
                ck_assert_ok(api("POST", "/r2/buckets", body));
        }
        for (int i = 0; i < 10; i++) {
                r = apif("GET", NULL, "/r2/buckets?per_page=3%s%s", *cursor ? "&cursor=" : "", cursor);
                ck_assert_ok(r);
                ck_assert_ptr_nonnull(jpath(r->json, "result.buckets"));
                seen += jlen(r->json, "result.buckets");
                if (!jstr(r->json, "result_info.cursor"))
                        break;
                snprintf(cursor, sizeof(cursor), "%s", jstr(r->json, "result_info.cursor"));
        }
        ck_assert_uint_eq(seen, 7);
        r = api("GET", "/r2/buckets?name_contains=bucket-", NULL);
        ck_assert_uint_eq(jlen(r->json, "result.buckets"), 6);

        r = sim_call("PATCH", "/client/v4/accounts/" SIM_TEST_ACCOUNT "/r2/buckets/uploads", NULL, NULL, 0, ia);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.storage_class"), "InfrequentAccess");
        ck_assert_status(api("PATCH", "/r2/buckets/uploads", NULL), 400);
        ck_assert_ok(api("DELETE", "/r2/buckets/uploads", NULL));
        ck_assert_error(api("DELETE", "/r2/buckets/uploads", NULL), 404, 10006);
        r = sim_call("GET", path, NULL, NULL, 0, eu);
        ck_assert_uint_eq(jlen(r->json, "result.buckets"), 1);
}
END_TEST

START_TEST(test_d1) {
        Resp *r;
        char id[64];

        sim_reset();
        r = api("POST", "/d1/database", "{\"name\":\"main-db\"}");
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.name"), "main-db");
        ck_assert_int_eq(strlen(jstr(r->json, "result.uuid")), 36);
        snprintf(id, sizeof(id), "%s", jstr(r->json, "result.uuid"));
        ck_assert_error(api("POST", "/d1/database", "{\"name\":\"main-db\"}"), 400, 7502);
        ck_assert_status(api("POST", "/d1/database", "{}"), 400);
        r = api("GET", "/d1/database?per_page=1000&page=1", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        ck_assert_int_eq(jint(r->json, "result_info.total_count"), 1);
        r = api("GET", "/d1/database?page=2", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);
        r = api("GET", "/d1/database?name=main", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        ck_assert_ok(apif("GET", NULL, "/d1/database/%s", id));
        r = apif("PATCH", "{\"read_replication\":{\"mode\":\"auto\"}}", "/d1/database/%s", id);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.read_replication.mode"), "auto");
        ck_assert_status(apif("PUT", "{\"read_replication\":{\"mode\":\"sometimes\"}}", "/d1/database/%s", id), 400);
        ck_assert_ok(apif("DELETE", NULL, "/d1/database/%s", id));
        ck_assert_error(apif("GET", NULL, "/d1/database/%s", id), 404, 7404);
        ck_assert_error(apif("DELETE", NULL, "/d1/database/%s", id), 404, 7404);
}
END_TEST

START_TEST(test_queues) {
        const char *path = "/client/v4/accounts/" SIM_TEST_ACCOUNT "/queues";
        Resp *r;
        char qid[64], cid[64];

        sim_reset();
        r = sim_call("POST", path, "text/plain;charset=UTF-8", "{\"queue_name\":\"jobs\"}", 21, NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.queue_name"), "jobs");
        snprintf(qid, sizeof(qid), "%s", jstr(r->json, "result.queue_id"));
        ck_assert_ptr_nonnull(jstr(r->json, "result.modified_on"));
        ck_assert_status(api("POST", "/queues", "{\"queue_name\":\"jobs\"}"), 409);
        ck_assert_status(api("POST", "/queues", "{\"queue_name\":\"Bad Name\"}"), 400);
        ck_assert_ok(api("POST", "/queues", "{\"queue_name\":\"other\"}"));

        r = api("GET", "/queues?name=jobs&page=1", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        ck_assert_str_eq(jstr(r->json, "result.0.queue_name"), "jobs");
        r = api("GET", "/queues?name=jobs&name=other", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 2);
        r = api("GET", "/queues?page=2", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);

        /* Producers come from the live workers' queue bindings. */
        ck_assert_ok(upload("producer", NULL,
                            "{\"main_module\":\"i.js\",\"bindings\":[{\"type\":\"queue\",\"name\":\"Q\",\"queue_name\":\"jobs\"}]}",
                            "i.js", "export default { async queue() {} }"));
        r = apif("GET", NULL, "/queues/%s", qid);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.producers.0.script"), "producer");
        ck_assert_int_eq(jint(r->json, "result.producers_total_count"), 1);

        r = apif("PATCH", "{\"settings\":{\"delivery_delay\":5}}", "/queues/%s", qid);
        ck_assert_ok(r);
        ck_assert_int_eq(jint(r->json, "result.settings.delivery_delay"), 5);
        ck_assert_status(apif("PATCH", "{\"settings\":{\"bogus\":1}}", "/queues/%s", qid), 400);
        r = apif("PUT", "{\"queue_name\":\"jobs2\"}", "/queues/%s", qid);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.queue_name"), "jobs2");

        /* Consumers. */
        r = apif("POST", "{\"type\":\"worker\",\"script_name\":\"producer\",\"settings\":{\"batch_size\":5}}", "/queues/%s/consumers", qid);
        ck_assert_ok(r);
        snprintf(cid, sizeof(cid), "%s", jstr(r->json, "result.consumer_id"));
        ck_assert_int_eq(jint(r->json, "result.settings.batch_size"), 5);
        r = apif("POST", "{\"type\":\"worker\",\"script_name\":\"producer\"}", "/queues/%s/consumers", qid);
        ck_assert_error(r, 400, 11004);
        ck_assert_ok(apif("POST", "{\"type\":\"http_pull\"}", "/queues/%s/consumers", qid));
        r = apif("GET", NULL, "/queues/%s/consumers", qid);
        ck_assert_uint_eq(jlen(r->json, "result"), 2);
        r = apif("PUT", "{\"settings\":{\"max_retries\":9}}", "/queues/%s/consumers/%s", qid, cid);
        ck_assert_ok(r);
        ck_assert_int_eq(jint(r->json, "result.settings.max_retries"), 9);
        ck_assert_int_eq(jint(r->json, "result.settings.batch_size"), 5);
        ck_assert_ok(apif("GET", NULL, "/queues/%s/consumers/%s", qid, cid));
        r = apif("GET", NULL, "/queues/%s", qid);
        ck_assert_int_eq(jint(r->json, "result.consumers_total_count"), 2);
        ck_assert_ok(apif("DELETE", NULL, "/queues/%s/consumers/%s", qid, cid));
        ck_assert_status(apif("GET", NULL, "/queues/%s/consumers/%s", qid, cid), 404);
        ck_assert_ok(apif("DELETE", NULL, "/queues/%s", qid));
        ck_assert_error(apif("GET", NULL, "/queues/%s", qid), 404, 11000);
}
END_TEST

START_TEST(test_secrets_store) {
        Resp *r;
        char sid[64], secid[64];

        sim_reset();
        r = api("POST", "/secrets_store/stores", "{\"name\":\"default\"}");
        ck_assert_ok(r);
        snprintf(sid, sizeof(sid), "%s", jstr(r->json, "result.id"));
        ck_assert_str_eq(jstr(r->json, "result.name"), "default");
        /* One store per account (Secrets Store docs), by default. */
        ck_assert_error(api("POST", "/secrets_store/stores", "[{\"name\":\"legacy\"}]"), 400, 1003);
        ck_assert_error(api("POST", "/secrets_store/stores", "{\"name\":\"default\"}"), 409, 1003);
        r = api("GET", "/secrets_store/stores?page=1&per_page=1", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        ck_assert_int_eq(jint(r->json, "result_info.total_count"), 1);
        ck_assert_error(api("GET", "/secrets_store/stores/nope", NULL), 404, 1001);

        r = apif("POST", "[{\"name\":\"api-token\",\"value\":\"TOPSECRET\",\"scopes\":[\"workers\"],\"comment\":\"c\"}]",
                 "/secrets_store/stores/%s/secrets", sid);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.0.name"), "api-token");
        ck_assert_str_eq(jstr(r->json, "result.0.status"), "active");
        ck_assert(strstr(r->body, "TOPSECRET") == NULL);
        ck_assert_ptr_null(jpath(r->json, "result.0.value"));
        snprintf(secid, sizeof(secid), "%s", jstr(r->json, "result.0.id"));
        r = apif("POST", "[{\"name\":\"api-token\",\"value\":\"x\",\"scopes\":[\"workers\"]}]", "/secrets_store/stores/%s/secrets", sid);
        ck_assert_error(r, 409, 1003);
        r = apif("POST", "[{\"name\":\"\",\"value\":\"x\",\"scopes\":[\"workers\"]}]", "/secrets_store/stores/%s/secrets", sid);
        ck_assert_error(r, 400, 1001);
        r = apif("POST", "[{\"name\":\"n\",\"value\":\"x\",\"scopes\":[\"everything\"]}]", "/secrets_store/stores/%s/secrets", sid);
        ck_assert_error(r, 400, 1001);

        r = apif("GET", NULL, "/secrets_store/stores/%s/secrets?search=api", sid);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        ck_assert(strstr(r->body, "TOPSECRET") == NULL);
        r = apif("GET", NULL, "/secrets_store/stores/%s/secrets/%s", sid, secid);
        ck_assert_ok(r);
        ck_assert_ptr_null(jpath(r->json, "result.value"));
        r = apif("PATCH", "{\"value\":\"NEWSECRET\",\"comment\":\"rotated\"}", "/secrets_store/stores/%s/secrets/%s", sid, secid);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.comment"), "rotated");
        ck_assert(strstr(r->body, "NEWSECRET") == NULL);
        r = apif("POST", "{\"name\":\"copy\",\"scopes\":[\"workers\"]}", "/secrets_store/stores/%s/secrets/%s/duplicate", sid, secid);
        ck_assert_ok(r);
        r = op("GET", "/__sim/state", NULL);
        ck_assert(strstr(r->body, "NEWSECRET") == NULL && strstr(r->body, "TOPSECRET") == NULL);
        ck_assert(strstr(r->body, "\"value\":\"sha256:") != NULL);

        ck_assert_error(apif("DELETE", NULL, "/secrets_store/stores/%s", sid), 409, 1002);
        ck_assert_ok(apif("DELETE", NULL, "/secrets_store/stores/%s/secrets/%s", sid, secid));
        ck_assert_error(apif("GET", NULL, "/secrets_store/stores/%s/secrets/%s", sid, secid), 404, 1001);
        ck_assert_ok(apif("DELETE", NULL, "/secrets_store/stores/%s?force=true", sid));
        ck_assert_error(apif("GET", NULL, "/secrets_store/stores/%s", sid), 404, 1001);
        /* The pre-2026 array form, once the one store is gone. */
        r = api("POST", "/secrets_store/stores", "[{\"name\":\"legacy\"}]");
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.0.name"), "legacy");
}
END_TEST

START_TEST(test_account_routes) {
        Resp *r;

        sim_reset();
        r = sim_call("GET", "/client/v4/user/tokens/verify", NULL, NULL, 0, NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.status"), "active");
        r = sim_call("GET", "/client/v4/accounts?page=1", NULL, NULL, 0, NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.0.id"), SIM_TEST_ACCOUNT);
        ck_assert_int_eq(jint(r->json, "result_info.total_pages"), 1);
        r = sim_call("GET", "/client/v4/memberships", NULL, NULL, 0, NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.account.id"), SIM_TEST_ACCOUNT);
        r = sim_call("GET", "/client/v4/user", NULL, NULL, 0, NULL);
        ck_assert_ptr_nonnull(jstr(r->json, "result.email"));
        /* Another account id is not ours. */
        r = sim_call("GET", "/client/v4/accounts/ffffffffffffffffffffffffffffffff/workers/scripts", NULL, NULL, 0, NULL);
        ck_assert_error(r, 403, 10000);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("cfsim-storage");
        TCase *tc = tcase_create("storage");

        tcase_add_unchecked_fixture(tc, sim_test_fixture_start, sim_test_fixture_stop);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_kv);
        tcase_add_test(tc, test_r2);
        tcase_add_test(tc, test_d1);
        tcase_add_test(tc, test_queues);
        tcase_add_test(tc, test_secrets_store);
        tcase_add_test(tc, test_account_routes);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return sim_test_run(suite());
}
