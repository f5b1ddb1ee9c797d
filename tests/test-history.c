/* test-history.c: the run history on disk (history.h): records read back
 * where they were written, the byte cap held across rotations, a torn
 * line skipped, an older runs.json moved in. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history.h"
#include "util.h"

static char dir[] = "/tmp/test-history-XXXXXX";

static void setup(void) {
        strcpy(dir, "/tmp/test-history-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
        const char *names[] = { HISTORY_FILE, HISTORY_FILE_OLD, HISTORY_LEGACY_FILE };

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                _cleanup_free_ char *p = path_join(dir, names[i]);

                (void) unlink(p);
        }
        (void) rmdir(dir);
}

static json_object *record(unsigned i, size_t pad) {
        json_object *j = json_object_new_object();
        char id[32], *fill = malloc(pad + 1);

        ck_assert_ptr_nonnull(fill);
        memset(fill, 'x', pad);
        fill[pad] = '\0';
        snprintf(id, sizeof(id), "1-%u", i);
        json_object_object_add(j, "id", json_object_new_string(id));
        json_object_object_add(j, "text", json_object_new_string(fill));
        free(fill);
        return j;
}

static uint64_t file_size(const char *name) {
        _cleanup_free_ char *p = path_join(dir, name);
        struct stat st;

        return stat(p, &st) == 0 ? (uint64_t) st.st_size : 0;
}

typedef struct Seen {
        unsigned n;
        char last_id[32];
        HistoryRef last_ref;
} Seen;

static void count(json_object *j, const HistoryRef *ref, void *userdata) {
        Seen *s = userdata;
        json_object *v;

        s->n++;
        ck_assert(json_object_object_get_ex(j, "id", &v));
        snprintf(s->last_id, sizeof(s->last_id), "%s", json_object_get_string(v));
        s->last_ref = *ref;
}

START_TEST(test_append_read_back) {
        _cleanup_(history_freep) History *h = NULL;
        HistoryRef refs[10];
        json_object *j, *v;

        ck_assert_int_eq(history_open(&h, dir, 0), 0);
        for (unsigned i = 0; i < 10; i++) {
                _cleanup_(json_object_putp) json_object *r = record(i, 100 * i);

                ck_assert_int_eq(history_append(h, r, &refs[i]), 0);
        }
        for (unsigned i = 0; i < 10; i++) {
                char want[32];

                ck_assert_int_eq(history_read(h, &refs[i], &j), 0);
                snprintf(want, sizeof(want), "1-%u", i);
                ck_assert(json_object_object_get_ex(j, "id", &v));
                ck_assert_str_eq(json_object_get_string(v), want);
                ck_assert(json_object_object_get_ex(j, "text", &v));
                ck_assert_uint_eq(strlen(json_object_get_string(v)), 100 * i);
                json_object_put(j);
        }
        /* Reopened: the same records, streamed, in order. */
        h = history_free(h);
        ck_assert_int_eq(history_open(&h, dir, 0), 0);
        {
                Seen s = { 0 };

                ck_assert_int_eq(history_load(h, count, &s), 10);
                ck_assert_str_eq(s.last_id, "1-9");
                ck_assert_int_eq(history_read(h, &s.last_ref, &j), 0);
                json_object_put(j);
        }
}
END_TEST

START_TEST(test_bounded) {
        _cleanup_(history_freep) History *h = NULL;
        const uint64_t cap = 64 * 1024;
        HistoryRef first, last;
        json_object *j;
        Seen s = { 0 };

        ck_assert_int_eq(history_open(&h, dir, cap), 0);
        /* 2,000 records of ~1 KiB: 30 times the cap. */
        for (unsigned i = 0; i < 2000; i++) {
                _cleanup_(json_object_putp) json_object *r = record(i, 1000);

                ck_assert_int_eq(history_append(h, r, i == 0 ? &first : &last), 0);
                ck_assert_uint_le(history_bytes(h), cap);
                ck_assert_uint_le(file_size(HISTORY_FILE) + file_size(HISTORY_FILE_OLD), cap);
        }
        /* The oldest is gone, the newest reads back. */
        ck_assert_int_eq(history_read(h, &first, &j), -ENOENT);
        ck_assert_int_eq(history_read(h, &last, &j), 0);
        json_object_put(j);
        /* One record over half the cap is refused, the files unchanged. */
        {
                _cleanup_(json_object_putp) json_object *big = record(0, cap / 2);
                uint64_t before = history_bytes(h);

                ck_assert_int_eq(history_append(h, big, NULL), -EFBIG);
                ck_assert_uint_eq(history_bytes(h), before);
        }
        h = history_free(h);
        ck_assert_int_eq(history_open(&h, dir, cap), 0);
        ck_assert_int_gt(history_load(h, count, &s), 30);
        ck_assert_str_eq(s.last_id, "1-1999");
}
END_TEST

START_TEST(test_torn_line) {
        _cleanup_(history_freep) History *h = NULL;
        _cleanup_free_ char *p = path_join(dir, HISTORY_FILE);
        Seen s = { 0 };
        FILE *f;

        f = fopen(p, "we");
        ck_assert_ptr_nonnull(f);
        fputs("{\"id\":\"1-1\"}\n{\"id\":\"1-2\",\"te", f);      /* a crash mid-write */
        fclose(f);
        ck_assert_int_eq(history_open(&h, dir, 0), 0);
        {
                _cleanup_(json_object_putp) json_object *r = record(3, 10);

                ck_assert_int_eq(history_append(h, r, NULL), 0);
        }
        ck_assert_int_eq(history_load(h, count, &s), 2);
        ck_assert_str_eq(s.last_id, "1-3");
}
END_TEST

START_TEST(test_legacy_moved) {
        _cleanup_(history_freep) History *h = NULL;
        _cleanup_free_ char *p = path_join(dir, HISTORY_LEGACY_FILE);
        Seen s = { 0 };
        FILE *f;

        f = fopen(p, "we");
        ck_assert_ptr_nonnull(f);
        fputs("[{\"id\":\"5-1\",\"result\":\"ok\"},{\"id\":\"5-2\",\"result\":\"ok\"}]", f);
        fclose(f);
        ck_assert_int_eq(history_open(&h, dir, 0), 0);
        ck_assert_int_eq(history_load(h, count, &s), 2);
        ck_assert_str_eq(s.last_id, "5-2");
        ck_assert_int_eq(access(p, F_OK), -1);
        /* Loaded again: from the new file only, once. */
        s = (Seen) { 0 };
        ck_assert_int_eq(history_load(h, count, &s), 2);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("history");
        TCase *tc = tcase_create("history");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_append_read_back);
        tcase_add_test(tc, test_bounded);
        tcase_add_test(tc, test_torn_line);
        tcase_add_test(tc, test_legacy_moved);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
