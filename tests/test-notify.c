/* test-notify.c: the pure parts of notifications out (notify.c): which
 * events a run fires, repeat suppression, and the body. Delivery is
 * covered by tests/daemon/notifications.sh. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "log.h"
#include "notify.h"
#include "util.h"

static json_object *resources(const char *json) {
        json_object *j = json_tokener_parse(json);

        ck_assert_ptr_nonnull(j);
        return j;
}

#define FAILED_API "[{\"kind\":\"Worker\",\"name\":\"api\",\"state\":\"failed\",\"reason\":\"HTTP 400: bad\"}," \
                   "{\"kind\":\"KVNamespace\",\"name\":\"s\",\"state\":\"in_sync\",\"reason\":\"in sync\"}]"

START_TEST(test_events) {
        NotifyMemory mem = {};
        json_object *failed = resources(FAILED_API),
                    *blocked = resources("[{\"kind\":\"Worker\",\"name\":\"api\",\"state\":\"blocked\","
                                         "\"reason\":\"credential 'k': not found\"}]"),
                    *ok = resources("[{\"kind\":\"Worker\",\"name\":\"api\",\"state\":\"in_sync\"}]"),
                    *drift = resources("[{\"kind\":\"Worker\",\"name\":\"api\",\"state\":\"drifted\","
                                       "\"reason\":\"binding STAGE differs\"}]");
        NotifyRun good = { .run_id = "r1", .result = "ok", .resources = ok },
                  bad = { .run_id = "r2", .result = "failed", .failed = true, .resources = failed },
                  blk = { .run_id = "r3", .result = "blocked", .blocked = true, .resources = blocked },
                  dr = { .run_id = "r4", .result = "drift", .resources = drift };

        /* Good runs from the start: nothing. */
        ck_assert_uint_eq(notify_events(&good, &mem), 0);
        ck_assert_uint_eq(notify_events(&good, &mem), 0);
        /* A failure fires once; the same failure again does not. */
        ck_assert_uint_eq(notify_events(&bad, &mem), 1U << NOTIFY_FAILED);
        ck_assert_uint_eq(notify_events(&bad, &mem), 0);
        /* A different problem fires. */
        ck_assert_uint_eq(notify_events(&blk, &mem), 1U << NOTIFY_BLOCKED);
        /* The first good run after it: recovered, once. */
        ck_assert_uint_eq(notify_events(&good, &mem), 1U << NOTIFY_RECOVERED);
        ck_assert_uint_eq(notify_events(&good, &mem), 0);
        /* After a recovery the same failure is news again. */
        ck_assert_uint_eq(notify_events(&bad, &mem), 1U << NOTIFY_FAILED);
        /* Drift (report only) is not a failure: recovered and drift together. */
        ck_assert_uint_eq(notify_events(&dr, &mem), (1U << NOTIFY_RECOVERED) | (1U << NOTIFY_DRIFT));
        ck_assert_uint_eq(notify_events(&dr, &mem), 0);
        ck_assert_uint_eq(notify_events(&good, &mem), 0);
        ck_assert_uint_eq(notify_events(&dr, &mem), 1U << NOTIFY_DRIFT);
        json_object_put(failed);
        json_object_put(blocked);
        json_object_put(ok);
        json_object_put(drift);
}
END_TEST

START_TEST(test_body) {
        json_object *failed = resources(FAILED_API), *d, *v, *arr;
        NotifyRun bad = { .run_id = "1796600850-7", .result = "failed", .failed = true,
                          .generation = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                          .resources = failed },
                  good = { .run_id = "1796600850-8", .result = "ok" };
        _cleanup_free_ char *body = notify_body(NOTIFY_FAILED, &bad), *rec = notify_body(NOTIFY_RECOVERED, &good);

        ck_assert_ptr_nonnull(body);
        d = json_tokener_parse(body);
        ck_assert_ptr_nonnull(d);
        ck_assert(json_object_object_get_ex(d, "event", &v));
        ck_assert_str_eq(json_object_get_string(v), "failed");
        ck_assert(json_object_object_get_ex(d, "run_id", &v));
        ck_assert_str_eq(json_object_get_string(v), "1796600850-7");
        ck_assert(json_object_object_get_ex(d, "generation", &v));
        ck_assert_str_eq(json_object_get_string(v), bad.generation);
        /* Only the failed resource, with its reason. */
        ck_assert(json_object_object_get_ex(d, "resources", &arr));
        ck_assert_uint_eq(json_object_array_length(arr), 1);
        ck_assert(json_object_object_get_ex(json_object_array_get_idx(arr, 0), "reason", &v));
        ck_assert_str_eq(json_object_get_string(v), "HTTP 400: bad");
        ck_assert(json_object_object_get_ex(d, "text", &v));
        ck_assert_str_eq(json_object_get_string(v),
                         "bindery: reconcile 1796600850-7 failed at generation 0123456789ab: Worker/api failed: "
                         "HTTP 400: bad");
        json_object_put(d);

        d = json_tokener_parse(rec);
        ck_assert_ptr_nonnull(d);
        ck_assert(json_object_object_get_ex(d, "resources", &arr));
        ck_assert_uint_eq(json_object_array_length(arr), 0);
        ck_assert(json_object_object_get_ex(d, "generation", &v));
        ck_assert_ptr_null(v);
        ck_assert(json_object_object_get_ex(d, "text", &v));
        ck_assert_str_eq(json_object_get_string(v), "bindery: reconcile 1796600850-8 recovered (ok)");
        json_object_put(d);
        json_object_put(failed);
}
END_TEST

START_TEST(test_body_bounds) {
        /* 150 failed resources, one with a multi-line reason: the text stays
         * one line, the list is capped and the rest counted. */
        json_object *arr = json_object_new_array(), *d, *v, *l;
        NotifyRun bad = { .run_id = "r", .result = "failed", .failed = true, .resources = arr };
        _cleanup_free_ char *body = NULL;

        for (int i = 0; i < 150; i++) {
                json_object *x = json_object_new_object();
                char name[16];

                snprintf(name, sizeof(name), "w%d", i);
                json_object_object_add(x, "kind", json_object_new_string("Worker"));
                json_object_object_add(x, "name", json_object_new_string(name));
                json_object_object_add(x, "state", json_object_new_string("failed"));
                json_object_object_add(x, "reason", json_object_new_string(i == 0 ? "line one\nline two" : "x"));
                json_object_array_add(arr, x);
        }
        body = notify_body(NOTIFY_FAILED, &bad);
        ck_assert_ptr_nonnull(body);
        d = json_tokener_parse(body);
        ck_assert(json_object_object_get_ex(d, "resources", &l));
        ck_assert_uint_eq(json_object_array_length(l), NOTIFY_RESOURCES_MAX);
        ck_assert(json_object_object_get_ex(d, "text", &v));
        ck_assert_ptr_null(strchr(json_object_get_string(v), '\n'));
        ck_assert_ptr_nonnull(strstr(json_object_get_string(v), "line one line two (and 149 more)"));
        json_object_put(d);
        json_object_put(arr);
}
END_TEST

START_TEST(test_body_redacts) {
        /* A reason never holds a secret; if one did, it is redacted as in the log. */
        json_object *arr = resources("[{\"kind\":\"Worker\",\"name\":\"api\",\"state\":\"failed\","
                                     "\"reason\":\"echoed s3cr3t-value-123 back\"}]");
        NotifyRun bad = { .run_id = "r", .result = "failed", .failed = true, .resources = arr };
        _cleanup_free_ char *body = NULL;

        ck_assert_int_eq(log_register_secret("s3cr3t-value-123", 16), 0);
        body = notify_body(NOTIFY_FAILED, &bad);
        ck_assert_ptr_nonnull(body);
        ck_assert_ptr_null(strstr(body, "s3cr3t"));
        ck_assert_ptr_nonnull(strstr(body, "echoed [redacted] back"));
        log_forget_secrets();
        json_object_put(arr);
}
END_TEST

int main(void) {
        Suite *s = suite_create("notify");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_events);
        tcase_add_test(tc, test_body);
        tcase_add_test(tc, test_body_bounds);
        tcase_add_test(tc, test_body_redacts);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
