/* test-watch.c: the spec directory watch on a real sd-event loop. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "util.h"
#include "watch.h"

static unsigned fired;

static void on_changed(Watch *w, void *userdata) {
        fired++;
        (void) sd_event_exit(userdata, 0);
}

static int on_write(sd_event_source *s, uint64_t usec, void *userdata) {
        const char *path = userdata;

        ck_assert_int_eq(write_file_atomic(path, "kind: Worker\n", 13, 0644), 0);
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), -ETIMEDOUT);
}

/* Writes a file below root after 50 ms; the watch must report it within
 * 3 s. Returns the loop's exit code (0: fired). */
static int run_watch(const char *root, const char *file) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(watch_freep) Watch *w = NULL;
        int code = -1;

        fired = 0;
        ck_assert_int_eq(sd_event_new(&e), 0);
        ck_assert_int_eq(watch_new(&w, e, root, 50 * USEC_PER_MSEC, on_changed, e), 0);
        ck_assert_int_ge(sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, 50 * USEC_PER_MSEC, 1,
                                                    on_write, (void *) file), 0);
        ck_assert_int_ge(sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, 3 * USEC_PER_SEC, 1,
                                                    on_timeout, NULL), 0);
        ck_assert_int_ge(sd_event_loop(e), 0);
        ck_assert_int_ge(sd_event_get_exit_code(e, &code), 0);
        return code;
}

START_TEST(test_watch_plain_dir) {
        char dir[] = "/tmp/bindery-watch-XXXXXX";
        _cleanup_free_ char *f = NULL;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        f = path_join(dir, "a.yaml");
        ck_assert_int_eq(run_watch(dir, f), 0);
        ck_assert_uint_eq(fired, 1);
        (void) unlink(f);
        (void) rmdir(dir);
}
END_TEST

START_TEST(test_watch_symlinked_root) {
        /* A spec_dir that is a symlink ("current" -> "releases/42") must be
         * watched through the link. */
        char dir[] = "/tmp/bindery-watch-XXXXXX";
        _cleanup_free_ char *real = NULL, *link = NULL, *f = NULL;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        real = path_join(dir, "release");
        link = path_join(dir, "current");
        ck_assert_int_eq(mkdir(real, 0755), 0);
        ck_assert_int_eq(symlink(real, link), 0);
        f = path_join(real, "a.yaml");
        ck_assert_int_eq(run_watch(link, f), 0);
        ck_assert_uint_eq(fired, 1);
        (void) unlink(f);
        (void) unlink(link);
        (void) rmdir(real);
        (void) rmdir(dir);
}
END_TEST

typedef struct Flip {
        const char *target, *tmp, *link, *file;
        sd_event *event;
} Flip;

static int on_flip(sd_event_source *s, uint64_t usec, void *userdata) {
        const Flip *f = userdata;

        ck_assert_int_eq(symlink(f->target, f->tmp), 0);
        ck_assert_int_eq(rename(f->tmp, f->link), 0);
        return 0;
}

/* First report: the flip; then write into the new target; second: done. */
static void on_changed_flip(Watch *w, void *userdata) {
        Flip *f = userdata;

        if (++fired == 1)
                ck_assert_int_ge(sd_event_add_time_relative(f->event, NULL, CLOCK_MONOTONIC, 50 * USEC_PER_MSEC, 1,
                                                            on_write, (void *) f->file), 0);
        else
                (void) sd_event_exit(f->event, 0);
}

START_TEST(test_watch_symlink_flip) {
        /* "ln -s new tmp && mv -T tmp current": reported, and the same watch
         * then follows the new target. */
        char dir[] = "/tmp/bindery-watch-XXXXXX";
        _cleanup_free_ char *r1 = NULL, *r2 = NULL, *link = NULL, *tmp = NULL, *f2 = NULL;
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(watch_freep) Watch *w = NULL;
        Flip flip;
        int code = -1;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        r1 = path_join(dir, "r1");
        r2 = path_join(dir, "r2");
        link = path_join(dir, "current");
        tmp = path_join(dir, "current.tmp");
        f2 = path_join(r2, "a.yaml");
        ck_assert_int_eq(mkdir(r1, 0755), 0);
        ck_assert_int_eq(mkdir(r2, 0755), 0);
        ck_assert_int_eq(symlink(r1, link), 0);

        fired = 0;
        ck_assert_int_eq(sd_event_new(&e), 0);
        flip = (Flip) { r2, tmp, link, f2, e };
        ck_assert_int_eq(watch_new(&w, e, link, 50 * USEC_PER_MSEC, on_changed_flip, &flip), 0);
        ck_assert_int_ge(sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, 50 * USEC_PER_MSEC, 1, on_flip, &flip), 0);
        ck_assert_int_ge(sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, 5 * USEC_PER_SEC, 1, on_timeout, NULL), 0);
        ck_assert_int_ge(sd_event_loop(e), 0);
        ck_assert_int_ge(sd_event_get_exit_code(e, &code), 0);
        ck_assert_int_eq(code, 0);
        ck_assert_uint_eq(fired, 2);
        w = watch_free(w);
        (void) unlink(f2);
        (void) unlink(link);
        (void) rmdir(r1);
        (void) rmdir(r2);
        (void) rmdir(dir);
}
END_TEST

int main(void) {
        Suite *s = suite_create("watch");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_watch_plain_dir);
        tcase_add_test(tc, test_watch_symlinked_root);
        tcase_add_test(tc, test_watch_symlink_flip);
        tcase_set_timeout(tc, 20);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
