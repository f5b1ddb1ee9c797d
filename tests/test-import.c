/* test-import.c: the JSONC reader and the importer's mapping rules
 * (import.c) on small in-memory configurations; the corpus test
 * (tests/import/import.sh) covers whole files and the command. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "util.h"

static char *strip(const char *in) {
        char *s = strdup(in);

        ck_assert_ptr_nonnull(s);
        import_strip_jsonc(s, strlen(s));
        return s;
}

START_TEST(test_strip_jsonc) {
        _cleanup_free_ char *a = strip("{\"a\": 1, // c\n\"b\": \"x // y /* z */\"}");
        _cleanup_free_ char *b = strip("[1, 2, /* *x* */ ]");
        _cleanup_free_ char *c = strip("{\"s\": \"q\\\"//\", \"t\": [3,\n],\n}");
        _cleanup_free_ char *d = strip("/* a\nb */{}");

        ck_assert_str_eq(a, "{\"a\": 1,     \n\"b\": \"x // y /* z */\"}");
        ck_assert_str_eq(b, "[1, 2            ]");
        ck_assert_str_eq(c, "{\"s\": \"q\\\"//\", \"t\": [3 \n] \n}");
        ck_assert_str_eq(d, "    \n    {}");
}
END_TEST

START_TEST(test_parse_errors) {
        json_object *o = NULL;
        const char *err = NULL;
        unsigned line = 0, column = 0;
        const char *bad = "{\n  \"a\": 1\n  \"b\": 2\n}";
        const char *good = "// top\n{ \"a\": [1, 2,], }\n";

        ck_assert_int_eq(import_parse_jsonc(bad, strlen(bad), &o, &err, &line, &column), -EINVAL);
        ck_assert_ptr_nonnull(err);
        ck_assert_uint_eq(line, 3);
        ck_assert_int_eq(import_parse_jsonc("{} x", 4, &o, &err, &line, &column), -EINVAL);
        ck_assert_uint_eq(column, 4);
        ck_assert_int_eq(import_parse_jsonc(good, strlen(good), &o, &err, &line, &column), 0);
        ck_assert_int_eq(json_object_array_length(json_object_object_get(o, "a")), 2);
        json_object_put(o);
}
END_TEST

/* Imports one JSON configuration; returns the run (caller frees). */
static void run_import(const char *json, bool adopt, ImportRun *run) {
        ImportSource src = { .display = "w.json", .dir = "/nonexistent-test-import", .rel_dir = "" };
        json_object *o = json_tokener_parse(json);

        ck_assert_ptr_nonnull(o);
        *run = (ImportRun) { .adopt = adopt, .output = "." };
        ck_assert_int_eq(import_config(run, &src, o, NULL), 0);
        ck_assert_int_eq(import_finish(run), 0);
        json_object_put(o);
}

static const char *file(const ImportRun *run, const char *name) {
        for (size_t i = 0; i < run->n_files; i++)
                if (streq(run->files[i].name, name))
                        return run->files[i].content;
        return NULL;
}

static bool has_note(const ImportRun *run, const char *needle) {
        for (size_t i = 0; i < run->n_notes; i++)
                if (strstr(run->notes[i].text, needle))
                        return true;
        return false;
}

START_TEST(test_env_names_and_inheritance) {
        ImportRun run;

        run_import("{\"name\": \"api\", \"main\": \"x.js\", \"compatibility_date\": \"2025-01-01\","
                   " \"vars\": {\"A\": \"top\"},"
                   " \"env\": {\"staging\": {\"vars\": {\"A\": \"s\"}},"
                   "           \"prod\": {\"name\": \"api-live\", \"compatibility_date\": \"2025-02-02\"}}}",
                   false, &run);
        ck_assert_uint_eq(run.n_errors, 0);
        ck_assert_uint_eq(run.n_files, 3);
        ck_assert_ptr_nonnull(file(&run, "api.yaml"));
        ck_assert_ptr_nonnull(strstr(file(&run, "api-staging.yaml"), "\nname: api-staging\n"));
        /* main and the date are inherited, vars are not. */
        ck_assert_ptr_nonnull(strstr(file(&run, "api-staging.yaml"), "\ncompatibility_date: \"2025-01-01\"\n"));
        ck_assert_ptr_nonnull(strstr(file(&run, "api-staging.yaml"), "\n  A: s\n"));
        ck_assert_ptr_nonnull(strstr(file(&run, "api-live.yaml"), "\ncompatibility_date: \"2025-02-02\"\n"));
        ck_assert_ptr_null(strstr(file(&run, "api-live.yaml"), "bindings:"));
        /* The main file cannot be read (no such directory): bundle it. */
        ck_assert(has_note(&run, "main is 'bundles/api/x.js'"));
        import_run_done(&run);
}
END_TEST

START_TEST(test_resources_adopt_and_external) {
        ImportRun run;
        const char *r;

        run_import("{\"name\": \"w\", \"main\": \"x.js\", \"compatibility_date\": \"2025-01-01\","
                   " \"kv_namespaces\": [{\"binding\": \"K\", \"id\": \"0f2ac74b498b48028cb68387c421e279\"}],"
                   " \"r2_buckets\": [{\"binding\": \"B\", \"bucket_name\": \"bkt\", \"jurisdiction\": \"eu\"},"
                   "                  {\"binding\": \"C\", \"bucket_name\": \"true\"}],"
                   " \"queues\": {\"producers\": [{\"binding\": \"Q\", \"queue\": \"jobs\"}],"
                   "              \"consumers\": [{\"queue\": \"jobs\", \"max_batch_timeout\": 1.5}]}}",
                   true, &run);
        ck_assert_uint_eq(run.n_errors, 0);
        r = file(&run, "resources.yaml");
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_nonnull(strstr(r, "kind: KVNamespace\nname: kv-0f2ac74b498b48028cb68387c421e279\n"
                                        "external: true\nid: 0f2ac74b498b48028cb68387c421e279\n"));
        ck_assert_ptr_nonnull(strstr(r, "kind: R2Bucket\nname: bkt\nadopt: true\njurisdiction: eu\n"));
        /* The queue is named by the producer and the consumer: one document. */
        ck_assert_ptr_nonnull(strstr(r, "name: jobs"));
        ck_assert_ptr_null(strstr(strstr(r, "name: jobs") + 1, "name: jobs"));
        ck_assert_ptr_nonnull(strstr(file(&run, "w.yaml"), "\nadopt: true\n"));
        ck_assert_ptr_nonnull(strstr(file(&run, "w.yaml"), "max_wait_time_ms: 1500"));
        /* A bucket named "true" would read as a boolean: kept, reported. */
        ck_assert(has_note(&run, "w.json: r2_buckets[1]: cannot be expressed"));
        ck_assert_ptr_null(strstr(r, "name: true"));
        import_run_done(&run);
}
END_TEST

/* A max_batch_timeout no spec could hold (found by fuzz-import-json: the
 * conversion to milliseconds overflowed) is kept as a comment. */
START_TEST(test_batch_timeout_out_of_range) {
        ImportRun run;

        run_import("{\"name\": \"w\", \"main\": \"x.js\", \"compatibility_date\": \"2025-01-01\","
                   " \"queues\": {\"consumers\": [{\"queue\": \"jobs\", \"max_batch_timeout\": 1.5e300},"
                   "                               {\"queue\": \"jobs2\", \"max_batch_timeout\": -1}]}}",
                   true, &run);
        ck_assert_uint_eq(run.n_errors, 0);
        ck_assert_ptr_null(strstr(file(&run, "w.yaml"), "max_wait_time_ms"));
        ck_assert(has_note(&run, "w.json: queues.consumers[0].max_batch_timeout: cannot be expressed"));
        ck_assert(has_note(&run, "w.json: queues.consumers[1].max_batch_timeout: cannot be expressed"));
        import_run_done(&run);
}
END_TEST

START_TEST(test_errors) {
        ImportRun run;

        run_import("{\"main\": \"x.js\"}", false, &run);
        ck_assert_uint_ge(run.n_errors, 1);
        ck_assert(has_note(&run, "no 'name'"));
        import_run_done(&run);
        run_import("{\"name\": \"w\", \"main\": \"x.js\", \"compatibility_date\": \"2025-01-01\","
                   " \"vars\": {\"my-var\": \"a\"}}", false, &run);
        ck_assert_uint_eq(run.n_errors, 1);
        ck_assert(has_note(&run, "w.json: vars.my-var: variable name 'my-var' is not a valid JavaScript identifier"));
        import_run_done(&run);
}
END_TEST

int main(void) {
        Suite *s = suite_create("import");
        TCase *tc = tcase_create("import");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_strip_jsonc);
        tcase_add_test(tc, test_parse_errors);
        tcase_add_test(tc, test_env_names_and_inheritance);
        tcase_add_test(tc, test_resources_adopt_and_external);
        tcase_add_test(tc, test_batch_timeout_out_of_range);
        tcase_add_test(tc, test_errors);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
