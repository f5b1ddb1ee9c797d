/* test-cfreq.c: Cloudflare paths (escaping), the request bodies apply
 * sends and the answers it reads, on hand-built spec types. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cfreq.h"
#include "util.h"

/* The compact JSON text of o (valid until o changes). */
static const char *text(json_object *o) {
        return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

START_TEST(test_paths_escape_each_segment) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        ck_assert_int_eq(cfreq_path(&a, CF_PATH_SCRIPT_SECRET, "my worker", "A/B?c=d&e"), 0);
        ck_assert_str_eq(a, "workers/scripts/my%20worker/secrets/A%2FB%3Fc%3Dd%26e");
        ck_assert_int_eq(cfreq_path(&b, CF_PATH_QUEUE_CONSUMER, "q-1", "c#1"), 0);
        ck_assert_str_eq(b, "queues/q-1/consumers/c%231");
        ck_assert_int_eq(cfreq_path(&c, cfreq_item(RESOURCE_D1_DATABASE), "üid"), 0);
        ck_assert_str_eq(c, "d1/database/%C3%BCid");
        ck_assert_int_eq(cfreq_item(RESOURCE_SECRETS_STORE_SECRET), _CF_PATH_INVALID);
        ck_assert_int_eq(cfreq_collection(_RESOURCE_KIND_MAX), _CF_PATH_INVALID);
        for (CfPath p = 0; p < _CF_PATH_MAX; p++) {
                const char *t = cfreq_template(p);
                unsigned n = 0;

                for (const char *x = t; (x = strchr(x, '{')); x++)
                        n++;
                ck_assert_uint_eq(cfreq_segments(p), n);
        }
}
END_TEST

START_TEST(test_create_bodies) {
        R2Bucket r2 = { .location_hint = (char *) "weur", .storage_class = (char *) "InfrequentAccess",
                        .jurisdiction = (char *) "eu" };
        D1Database d1 = { .location_hint = (char *) "enam", .jurisdiction = (char *) "fedramp" };
        Queue q = { .delivery_delay = 5, .message_retention_period = -1 }, q0 = { .delivery_delay = -1,
                                                                                   .message_retention_period = -1 };
        json_object *b = NULL;
        _cleanup_free_ char *h = NULL, *none = (char *) 1;

        ck_assert_int_eq(cfreq_create_body(RESOURCE_KV_NAMESPACE, "cache \"x\"", NULL, &b), 0);
        ck_assert_str_eq(text(b), "{\"title\":\"cache \\\"x\\\"\"}");
        json_object_put(b);
        ck_assert_int_eq(cfreq_create_body(RESOURCE_R2_BUCKET, "files", &r2, &b), 0);
        ck_assert_str_eq(text(b), "{\"name\":\"files\",\"locationHint\":\"weur\",\"storageClass\":\"InfrequentAccess\"}");
        json_object_put(b);
        ck_assert_int_eq(cfreq_create_body(RESOURCE_D1_DATABASE, "db", &d1, &b), 0);
        ck_assert_str_eq(text(b), "{\"name\":\"db\",\"primary_location_hint\":\"enam\",\"jurisdiction\":\"fedramp\"}");
        json_object_put(b);
        ck_assert_int_eq(cfreq_create_body(RESOURCE_QUEUE, "jobs", &q, &b), 0);
        ck_assert_str_eq(text(b), "{\"queue_name\":\"jobs\",\"settings\":{\"delivery_delay\":5}}");
        json_object_put(b);
        ck_assert_int_eq(cfreq_create_body(RESOURCE_QUEUE, "jobs", &q0, &b), 0);
        ck_assert_str_eq(text(b), "{\"queue_name\":\"jobs\"}");     /* no settings: none sent */
        json_object_put(b);
        ck_assert_int_eq(cfreq_create_body(RESOURCE_SECRETS_STORE, "main", NULL, &b), 0);
        ck_assert_str_eq(text(b), "{\"name\":\"main\"}");
        json_object_put(b);
        b = NULL;
        ck_assert_int_eq(cfreq_create_body(RESOURCE_WORKER, "w", NULL, &b), -EOPNOTSUPP);
        ck_assert_int_eq(cfreq_create_body(RESOURCE_SECRETS_STORE_SECRET, "s", NULL, &b), -EOPNOTSUPP);
        ck_assert_ptr_null(b);

        ck_assert_int_eq(cfreq_update_body(RESOURCE_KV_NAMESPACE, "renamed", NULL, &b), 0);
        ck_assert_str_eq(text(b), "{\"title\":\"renamed\"}");
        json_object_put(b);
        ck_assert_int_eq(cfreq_update_body(RESOURCE_QUEUE, "jobs", &q0, &b), 0);
        ck_assert_str_eq(text(b), "{\"settings\":{}}");
        json_object_put(b);
        b = NULL;
        ck_assert_int_eq(cfreq_update_body(RESOURCE_R2_BUCKET, "files", &r2, &b), -EOPNOTSUPP);
        ck_assert_ptr_null(b);

        ck_assert_int_eq(cfreq_r2_jurisdiction_header(r2.jurisdiction, &h), 0);
        ck_assert_str_eq(h, "cf-r2-jurisdiction: eu");
        ck_assert_int_eq(cfreq_r2_jurisdiction_header(NULL, &none), 0);
        ck_assert_ptr_null(none);
}
END_TEST

START_TEST(test_worker_bodies) {
        SecretsStoreSecret s = { .comment = (char *) "rotated" };
        SecretsStoreSecret scoped = { .scopes = (char *[]) { (char *) "ai-gateway", (char *) "workers", NULL } };
        QueueConsumer qc = { .batch_size = 10, .max_retries = 0, .max_wait_time_ms = -1, .max_concurrency = -1,
                             .retry_delay = 30, .dead_letter_queue = (char *) "dlq" };
        json_object *b;

        b = cfreq_store_secret_body(&s, "API_KEY");
        ck_assert_str_eq(text(b), "{\"name\":\"API_KEY\",\"scopes\":[\"workers\"],\"comment\":\"rotated\"}");
        json_object_put(b);
        b = cfreq_store_secret_body(&scoped, NULL);      /* an update: no name */
        ck_assert_str_eq(text(b), "{\"scopes\":[\"ai-gateway\",\"workers\"]}");
        json_object_put(b);
        b = cfreq_worker_secret_body("TOKEN");
        ck_assert_str_eq(text(b), "{\"name\":\"TOKEN\",\"type\":\"secret_text\"}");
        json_object_put(b);
        b = cfreq_schedules_body((char *[]) { (char *) "*/5 * * * *", NULL }, (char *[]) { (char *) "0 0 * * *", NULL });
        ck_assert_str_eq(text(b), "[{\"cron\":\"*/5 * * * *\"},{\"cron\":\"0 0 * * *\"}]");
        json_object_put(b);
        b = cfreq_schedules_body(NULL, NULL);           /* clears every trigger */
        ck_assert_str_eq(text(b), "[]");
        json_object_put(b);
        b = cfreq_subdomain_body(false);
        ck_assert_str_eq(text(b), "{\"enabled\":false}");
        json_object_put(b);
        b = cfreq_consumer_body("worker-a", &qc);
        ck_assert_str_eq(text(b), "{\"type\":\"worker\",\"script_name\":\"worker-a\",\"dead_letter_queue\":\"dlq\","
                                  "\"settings\":{\"batch_size\":10,\"max_retries\":0,\"retry_delay\":30}}");
        json_object_put(b);
}
END_TEST

START_TEST(test_secret_json) {
        _cleanup_(json_object_putp) json_object *rest = cfreq_worker_secret_body("K");
        _cleanup_(json_object_putp) json_object *empty = json_object_new_object();
        _cleanup_(json_object_putp) json_object *parsed = NULL;
        const char *value = "a\"b\\c\n\x01é";
        char *buf = NULL;
        size_t size = 0, cap = 0;

        ck_assert_int_eq(cfreq_secret_json(rest, "text", value, false, &buf, &size, &cap), 0);
        ck_assert_uint_le(size, cap);
        ck_assert_str_eq(strndupa(buf, size), "{\"text\":\"a\\\"b\\\\c\\u000a\\u0001é\",\"name\":\"K\",\"type\":\"secret_text\"}");
        /* It parses back to the same value. */
        parsed = json_tokener_parse(strndupa(buf, size));
        ck_assert_ptr_nonnull(parsed);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(parsed, "text")), value);
        erase_and_free(buf, cap);

        ck_assert_int_eq(cfreq_secret_json(empty, "value", "v", true, &buf, &size, &cap), 0);
        ck_assert_str_eq(strndupa(buf, size), "[{\"value\":\"v\"}]");
        erase_and_free(buf, cap);
}
END_TEST

START_TEST(test_worker_metadata) {
        R2Bucket bucket = { .name = (char *) "files", .jurisdiction = (char *) "eu" };
        Generation g = { .r2_buckets = &bucket, .n_r2_buckets = 1 };
        Binding bindings[] = {
                { .name = (char *) "CACHE", .kind = BINDING_KV_NAMESPACE, .target = (char *) "cache" },
                { .name = (char *) "FILES", .kind = BINDING_R2_BUCKET, .target = (char *) "files" },
                { .name = (char *) "KEY", .kind = BINDING_SECRET },
                { .name = (char *) "STAGE", .kind = BINDING_PLAIN_TEXT, .text = (char *) "prod" },
        };
        CfBindingTarget targets[] = { { .value = "kv-1" }, { .value = "files" }, {}, {} };
        MigrationStep steps[] = {
                { .tag = (char *) "v1", .new_sqlite_classes = (char *[]) { (char *) "Room", NULL } },
                { .tag = (char *) "v2", .deleted_classes = (char *[]) { (char *) "Old", NULL },
                  .renamed_classes = (RenamedClass[]) { { (char *) "A", (char *) "B" } }, .n_renamed_classes = 1 },
        };
        Worker w = {
                .name = (char *) "api",
                .main_module = (char *) "index.js",
                .compatibility_date = (char *) "2025-06-01",
                .bindings = bindings,
                .n_bindings = ELEMENTSOF(bindings),
                .migrations = steps,
                .n_migrations = ELEMENTSOF(steps),
                .observability = { .set = true, .enabled = true, .head_sampling_rate = 0.5 },
                .logpush = true,
        };
        CfMigration mig = { .old_tag = "v1", .new_tag = "v2" };
        _cleanup_(json_object_putp) json_object *m = NULL;
        json_object *b, *x;
        char *err = NULL;

        m = cfreq_worker_metadata(&g, &w, targets, &mig, &err);
        ck_assert_ptr_nonnull(m);
        ck_assert_ptr_null(err);
        b = json_object_object_get(m, "bindings");
        ck_assert_uint_eq(json_object_array_length(b), 3);      /* the secret goes through the secrets API */
        ck_assert_str_eq(text(json_object_array_get_idx(b, 0)),
                         "{\"type\":\"kv_namespace\",\"name\":\"CACHE\",\"namespace_id\":\"kv-1\"}");
        /* An R2 reference without a jurisdiction takes its bucket's. */
        ck_assert_str_eq(text(json_object_array_get_idx(b, 1)),
                         "{\"type\":\"r2_bucket\",\"name\":\"FILES\",\"bucket_name\":\"files\",\"jurisdiction\":\"eu\"}");
        ck_assert_str_eq(text(json_object_array_get_idx(b, 2)),
                         "{\"type\":\"plain_text\",\"name\":\"STAGE\",\"text\":\"prod\"}");
        ck_assert_str_eq(text(json_object_object_get(m, "observability")),
                         "{\"enabled\":true,\"head_sampling_rate\":0.5}");
        ck_assert(json_object_get_boolean(json_object_object_get(m, "logpush")));
        /* Only the steps after old_tag. */
        x = json_object_object_get(m, "migrations");
        ck_assert_str_eq(text(x), "{\"old_tag\":\"v1\",\"new_tag\":\"v2\",\"steps\":[{\"new_classes\":[],"
                                  "\"new_sqlite_classes\":[],\"renamed_classes\":[{\"from\":\"A\",\"to\":\"B\"}],"
                                  "\"deleted_classes\":[\"Old\"]}]}");

        ck_assert_int_eq(cfreq_metadata_inherit(m, (char *[]) { (char *) "GONE", NULL }), 0);
        ck_assert_str_eq(text(json_object_array_get_idx(b, 3)), "{\"name\":\"GONE\",\"type\":\"inherit\"}");
        json_object_put(TAKE_PTR(m));

        /* An unresolved target is an error naming the binding, not a guess. */
        targets[0].value = NULL;
        m = cfreq_worker_metadata(&g, &w, targets, NULL, &err);
        ck_assert_ptr_null(m);
        ck_assert_str_eq(err, "binding CACHE: its cache is not available");
        free(err);
}
END_TEST

START_TEST(test_answers) {
        _cleanup_(json_object_putp) json_object *d1 = json_tokener_parse("{\"uuid\":\"u-1\",\"id\":\"i-1\"}");
        _cleanup_(json_object_putp) json_object *q = json_tokener_parse("{\"id\":\"q-2\"}");
        _cleanup_(json_object_putp) json_object *sec = json_tokener_parse("[{\"id\":\"s-1\",\"store_id\":\"st-1\"}]");
        _cleanup_(json_object_putp) json_object *up =
                json_tokener_parse("{\"etag\":\"e1\",\"modified_on\":\"2026-01-01T00:00:00Z\",\"migration_tag\":7}");
        _cleanup_(json_object_putp) json_object *list =
                json_tokener_parse("[{\"title\":\"a\",\"id\":\"1\"},{\"title\":\"b\",\"id\":\"2\"},{\"name\":\"b\"}]");
        CfUploadAnswer ans;

        ck_assert_str_eq(cfreq_created_id(RESOURCE_D1_DATABASE, "db", d1), "u-1");
        ck_assert_str_eq(cfreq_created_id(RESOURCE_QUEUE, "jobs", q), "q-2");
        ck_assert_str_eq(cfreq_created_id(RESOURCE_R2_BUCKET, "files", NULL), "files");
        ck_assert_str_eq(cfreq_created_id(RESOURCE_SECRETS_STORE_SECRET, "s", sec), "s-1");
        ck_assert_str_eq(cfreq_created_store_id(sec), "st-1");
        ck_assert_ptr_null(cfreq_created_id(RESOURCE_KV_NAMESPACE, "cache", NULL));
        ck_assert_ptr_null(cfreq_created_id(RESOURCE_KV_NAMESPACE, "cache", sec));   /* not an object */
        ck_assert_ptr_null(cfreq_created_id(RESOURCE_WORKER, "w", q));

        cfreq_upload_answer(up, &ans);
        ck_assert_str_eq(ans.etag, "e1");
        ck_assert_str_eq(ans.modified_on, "2026-01-01T00:00:00Z");
        ck_assert_ptr_null(ans.migration_tag);                  /* not a string: not taken */

        ck_assert_str_eq(cfreq_name_key(RESOURCE_QUEUE), "queue_name");
        ck_assert_str_eq(json_object_get_string(json_object_object_get(
                                 cfreq_find_listed(RESOURCE_KV_NAMESPACE, list, "b"), "id")),
                         "2");
        ck_assert_ptr_null(cfreq_find_listed(RESOURCE_KV_NAMESPACE, list, "c"));
        ck_assert_ptr_null(cfreq_find_listed(RESOURCE_KV_NAMESPACE, q, "b"));
}
END_TEST

static Suite *cfreq_suite(void) {
        Suite *s = suite_create("cfreq");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_paths_escape_each_segment);
        tcase_add_test(tc, test_create_bodies);
        tcase_add_test(tc, test_worker_bodies);
        tcase_add_test(tc, test_secret_json);
        tcase_add_test(tc, test_worker_metadata);
        tcase_add_test(tc, test_answers);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(cfreq_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
