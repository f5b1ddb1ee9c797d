/* test-observe.c: observe's decoders on recorded-style JSON — tolerant of
 * unknown fields, unknown enum values and odd shapes. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "observe.h"
#include "util.h"

START_TEST(test_script_list_tolerant) {
        _cleanup_(live_state_freep) LiveState *l = live_state_new();
        json_object *j = json_tokener_parse(
                "[{\"id\":\"api\",\"etag\":\"e1\",\"modified_on\":\"2026-01-01T00:00:00Z\",\"migration_tag\":\"v1\","
                "\"placement_mode\":\"targeted\",\"brand_new\":{\"x\":[1,2]},\"compatibility_date\":\"2025-06-01\"},"
                "{\"etag\":\"no-id\"},"
                "42,"
                "{\"id\":\"other\",\"etag\":null,\"modified_on\":7,\"tags\":\"not-an-array\"}]");
        LiveWorker *w;

        ck_assert_int_eq(observe_parse_script_list(j, l), 0);
        ck_assert(l->workers_listed);
        ck_assert_uint_eq(l->n_workers, 2);
        w = live_state_find_worker(l, "api");
        ck_assert_ptr_nonnull(w);
        ck_assert_str_eq(w->etag, "e1");
        ck_assert_str_eq(w->migration_tag, "v1");
        ck_assert_str_eq(w->compatibility_date, "2025-06-01");
        w = live_state_find_worker(l, "other");
        ck_assert_ptr_nonnull(w);
        ck_assert_ptr_null(w->etag);
        ck_assert_ptr_null(w->modified_on);
        json_object_put(j);

        j = json_tokener_parse("{\"not\":\"an array\"}");
        ck_assert_int_eq(observe_parse_script_list(j, l), -EBADMSG);
        json_object_put(j);
}
END_TEST

START_TEST(test_bindings) {
        _cleanup_(live_state_freep) LiveState *l = live_state_new();
        LiveWorker *w = live_state_add_worker(l, "api");
        json_object *j = json_tokener_parse(
                "[{\"type\":\"secret_text\",\"name\":\"B_SECRET\"},"
                "{\"type\":\"secret_key\",\"name\":\"A_KEY\",\"algorithm\":{}},"
                "{\"type\":\"d1\",\"name\":\"DB\",\"id\":\"u1\",\"database_id\":\"u1\"},"
                "{\"type\":\"some_future_kind\",\"name\":\"F\",\"opt\":true},"
                "{\"type\":\"kv_namespace\",\"name\":\"A\",\"namespace_id\":\"k\"},"
                "{\"name\":\"NOTYPE\"},"
                "{\"type\":\"plain_text\"}]");

        ck_assert_int_eq(observe_parse_bindings(j, w), 0);
        ck_assert_uint_eq(w->n_bindings, 4);
        ck_assert_str_eq(w->bindings[0].name, "A");        /* sorted */
        ck_assert_str_eq(w->bindings[0].canon, "kv_namespace namespace_id=k");
        ck_assert_str_eq(w->bindings[1].canon, "d1 database_id=u1");
        ck_assert_uint_eq(strv_length(w->secret_names), 2);
        ck_assert_str_eq(w->secret_names[0], "A_KEY");
        ck_assert_str_eq(w->secret_names[1], "B_SECRET");
        json_object_put(j);

        /* Parsing again replaces, never appends. */
        j = json_tokener_parse("[]");
        ck_assert_int_eq(observe_parse_bindings(j, w), 0);
        ck_assert_uint_eq(w->n_bindings, 0);
        ck_assert_uint_eq(strv_length(w->secret_names), 0);
        json_object_put(j);
        ck_assert_int_eq(observe_parse_bindings(NULL, w), 0);
}
END_TEST

START_TEST(test_resources) {
        _cleanup_(live_state_freep) LiveState *l = live_state_new();
        json_object *kv = json_tokener_parse("[{\"id\":\"k1\",\"title\":\"cache\",\"supports_url_encoding\":true},"
                                             "{\"title\":\"no-id\"}]");
        json_object *r2 = json_tokener_parse("[{\"name\":\"b\",\"creation_date\":\"x\",\"jurisdiction\":\"eu\"}]");
        json_object *d1 = json_tokener_parse("[{\"uuid\":\"u\",\"name\":\"db\",\"version\":\"beta-x\"}]");
        json_object *q = json_tokener_parse(
                "[{\"queue_id\":\"q1\",\"queue_name\":\"jobs\",\"consumers\":[{\"consumer_id\":\"c1\","
                "\"script_name\":\"api\",\"type\":\"worker\",\"settings\":{\"batch_size\":10,\"max_concurrency\":null}},"
                "{\"type\":\"http_pull\",\"consumer_id\":\"c2\"}]}]");
        json_object *ss = json_tokener_parse("[{\"id\":\"s1\",\"name\":\"tok\",\"status\":\"active\"},"
                                             "{\"id\":\"s2\",\"name\":\"gone\",\"status\":\"deleted\"}]");
        const LiveResource *r;

        ck_assert_int_eq(observe_parse_resources(RESOURCE_KV_NAMESPACE, kv, l, NULL), 0);
        ck_assert_int_eq(observe_parse_resources(RESOURCE_R2_BUCKET, r2, l, NULL), 0);
        ck_assert_int_eq(observe_parse_resources(RESOURCE_D1_DATABASE, d1, l, NULL), 0);
        ck_assert_int_eq(observe_parse_resources(RESOURCE_QUEUE, q, l, NULL), 0);
        ck_assert_int_eq(observe_parse_resources(RESOURCE_SECRETS_STORE_SECRET, ss, l, "store1"), 0);
        ck_assert_int_eq(observe_parse_resources(RESOURCE_SECRETS_STORE, NULL, l, NULL), 0);
        ck_assert(l->listed[RESOURCE_SECRETS_STORE]);
        ck_assert_uint_eq(l->n_resources, 5);
        ck_assert_ptr_nonnull(live_state_find_by_id(l, RESOURCE_KV_NAMESPACE, "k1"));
        ck_assert_ptr_nonnull(live_state_find_by_name(l, RESOURCE_R2_BUCKET, "b", NULL));
        ck_assert_ptr_nonnull(live_state_find_by_id(l, RESOURCE_D1_DATABASE, "u"));
        r = live_state_find_by_name(l, RESOURCE_QUEUE, "jobs", NULL);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(r->n_consumers, 1);
        ck_assert_str_eq(r->consumers[0].consumer_id, "c1");
        ck_assert_str_eq(r->consumers[0].canon,
                         "batch_size=10 max_retries=-1 max_wait_time_ms=-1 max_concurrency=-1 retry_delay=-1 dlq=n/a");
        r = live_state_find_by_name(l, RESOURCE_SECRETS_STORE_SECRET, "tok", "store1");
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r->store_id, "store1");
        ck_assert_ptr_null(live_state_find_by_name(l, RESOURCE_SECRETS_STORE_SECRET, "gone", NULL));

        ck_assert_int_eq(observe_parse_resources(RESOURCE_KV_NAMESPACE, r2 /* fine shape */, l, NULL), 0);
        {
                json_object *bad = json_tokener_parse("{\"buckets\":[]}");
                ck_assert_int_eq(observe_parse_resources(RESOURCE_R2_BUCKET, bad, l, NULL), -EBADMSG);
                json_object_put(bad);
        }
        json_object_put(kv);
        json_object_put(r2);
        json_object_put(d1);
        json_object_put(q);
        json_object_put(ss);
}
END_TEST

START_TEST(test_audit_uri) {
        char *s = NULL;
        bool secrets = false;

        ck_assert_int_eq(observe_audit_script("/accounts/a/workers/scripts/api/secrets", &s, &secrets), 1);
        ck_assert_str_eq(s, "api");
        ck_assert(secrets);
        free(s);
        ck_assert_int_eq(observe_audit_script("/client/v4/accounts/a/workers/scripts/my%2Dworker?x=1", &s, &secrets), 1);
        ck_assert_str_eq(s, "my-worker");
        ck_assert(!secrets);
        free(s);
        ck_assert_int_eq(observe_audit_script("/accounts/a/workers/scripts/api/secrets-bulk", &s, &secrets), 1);
        ck_assert(secrets);
        free(s);
        ck_assert_int_eq(observe_audit_script("/accounts/a/workers/scripts/x%", &s, &secrets), 1);
        ck_assert_str_eq(s, "x%");
        free(s);
        ck_assert_int_eq(observe_audit_script("/accounts/a/storage/kv/namespaces/x", &s, &secrets), 0);
        ck_assert_int_eq(observe_audit_script("/accounts/a/workers/scripts/", &s, &secrets), 0);
        ck_assert_int_eq(observe_audit_script(NULL, &s, &secrets), 0);
}
END_TEST

START_TEST(test_audit_matches) {
        ck_assert(observe_audit_matches("PUT", "/accounts/a/workers/scripts/api/secrets", "PUT workers/scripts/api/secrets"));
        ck_assert(observe_audit_matches("DELETE", "/client/v4/accounts/a/workers/scripts/api?force=true",
                                        "DELETE workers/scripts/api"));
        ck_assert(!observe_audit_matches("POST", "/accounts/a/workers/scripts/api/secrets",
                                         "PUT workers/scripts/api/secrets"));
        ck_assert(!observe_audit_matches("PUT", "/accounts/a/workers/scripts/xapi", "PUT workers/scripts/api"));
        ck_assert(!observe_audit_matches("PUT", "/accounts/a/workers/scripts/api/secrets", "PUT workers/scripts/api"));
        ck_assert(!observe_audit_matches("PUTX", "/accounts/a/workers/scripts/api", "PUT workers/scripts/api"));
        ck_assert(!observe_audit_matches(NULL, "/x", "PUT x"));
        ck_assert(!observe_audit_matches("PUT", "/x", "no-space"));
}
END_TEST

START_TEST(test_write_keys) {
        char *k = observe_audit_write_key("DELETE", "/client/v4/accounts/abc/workers/scripts/api?force=true");
        char *w[] = { (char *) "PUT workers/scripts/api", (char *) "PUT workers/scripts/api",
                      (char *) "POST storage/kv/namespaces", NULL };
        json_object *c = observe_write_counts(w);
        char **left = NULL;

        ck_assert_str_eq(k, "DELETE workers/scripts/api");
        free(k);
        k = observe_audit_write_key("PUT", "/accounts/abc/workers/scripts/api");
        ck_assert(observe_write_take(c, k));
        ck_assert(observe_write_take(c, k));
        ck_assert(!observe_write_take(c, k));   /* two writes match two entries, not three */
        free(k);
        ck_assert_int_eq(observe_write_leftovers(c, &left), 0);
        ck_assert_uint_eq(strv_length(left), 1);
        ck_assert_str_eq(left[0], "POST storage/kv/namespaces");
        strv_free(left);
        json_object_put(c);
        ck_assert_ptr_null(observe_audit_write_key(NULL, "/x"));
}
END_TEST

/* bindery's own token in audit entries: which entries own writes may be
 * matched to, and learning the id only when every match agrees. */
START_TEST(test_audit_own_token) {
        json_object *mine = json_tokener_parse("{\"id\":\"1\",\"raw\":{\"method\":\"PUT\",\"uri\":"
                                               "\"/accounts/a/workers/scripts/api\"},\"actor\":{\"token_id\":\"t1\"}}");
        json_object *other = json_tokener_parse("{\"id\":\"2\",\"raw\":{\"method\":\"PUT\",\"uri\":"
                                                "\"/accounts/a/workers/scripts/api\"},\"actor\":{\"context\":\"dash\"}}");
        AuditEntry a = {};
        char *id = NULL;
        bool mixed = false;

        ck_assert_int_eq(observe_audit_entry(mine, "t1", &a), 1);
        ck_assert(a.own_token && a.mine);
        audit_entry_done(&a);
        ck_assert_int_eq(observe_audit_entry(other, "t1", &a), 1);
        ck_assert(!a.own_token && !a.mine);     /* a dashboard user's: never one of bindery's writes */
        audit_entry_done(&a);
        ck_assert_int_eq(observe_audit_entry(other, NULL, &a), 1);
        ck_assert(!a.own_token && a.mine);      /* id unknown: any entry may be bindery's */
        audit_entry_done(&a);
        ck_assert_str_eq(observe_audit_token_id(mine), "t1");
        ck_assert_ptr_null(observe_audit_token_id(other));

        ck_assert_int_eq(observe_token_agree(&id, &mixed, "t1"), 0);
        ck_assert_int_eq(observe_token_agree(&id, &mixed, "t1"), 0);
        ck_assert(!mixed);
        ck_assert_str_eq(id, "t1");
        ck_assert_int_eq(observe_token_agree(&id, &mixed, "t2"), 0);
        ck_assert(mixed);                       /* two ids: learn none */
        id = mfree(id);
        mixed = false;
        ck_assert_int_eq(observe_token_agree(&id, &mixed, NULL), 0);
        ck_assert(mixed);                       /* an entry without a token id */
        ck_assert_ptr_null(id);
        json_object_put(mine);
        json_object_put(other);
}
END_TEST

static Suite *observe_suite(void) {
        Suite *s = suite_create("observe");
        TCase *tc = tcase_create("decode");

        tcase_add_test(tc, test_script_list_tolerant);
        tcase_add_test(tc, test_bindings);
        tcase_add_test(tc, test_resources);
        tcase_add_test(tc, test_audit_uri);
        tcase_add_test(tc, test_audit_matches);
        tcase_add_test(tc, test_write_keys);
        tcase_add_test(tc, test_audit_own_token);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(observe_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
