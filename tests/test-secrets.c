/* test-secrets.c: credential, file and env references; limits, trailing
 * newlines, messages that name the reference and never the value, and
 * registration with the log redactor. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "log.h"
#include "secrets.h"
#include "util.h"

static char *tmpdir;

static void setup(void) {
        const char *tmp = getenv("TMPDIR");

        ck_assert_int_ge(asprintf(&tmpdir, "%s/test-secrets.XXXXXX", isempty(tmp) ? "/tmp" : tmp), 0);
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        ck_assert_int_eq(setenv("CREDENTIALS_DIRECTORY", tmpdir, 1), 0);
}

static void teardown(void) {
        DIR *d = opendir(tmpdir);
        struct dirent *de;

        while (d && (de = readdir(d))) {
                _cleanup_free_ char *p = NULL;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                p = path_join(tmpdir, de->d_name);
                if (unlink(p) < 0)
                        (void) rmdir(p);
        }
        if (d)
                closedir(d);
        (void) rmdir(tmpdir);
        tmpdir = mfree(tmpdir);
        log_forget_secrets();
}

static char *put(const char *name, const void *data, size_t size, mode_t mode) {
        char *p = path_join(tmpdir, name);
        int fd;

        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, data, size), (ssize_t) size);
        ck_assert_int_eq(fchmod(fd, mode), 0);
        close(fd);
        return p;
}

static int resolve(SecretSource source, const char *ref, char **value, size_t *size, char **err) {
        SecretRef r = { .source = source, .ref = (char *) ref };

        return secrets_resolve(&r, NULL, value, size, err);
}

START_TEST(test_credential) {
        _cleanup_free_ char *p = put("api-key", "s3cret-value\n", 13, 0400), *err = NULL, *red = NULL;
        char *v = NULL;
        size_t n = 0;

        ck_assert_int_eq(resolve(SECRET_SOURCE_CREDENTIAL, "api-key", &v, &n, &err), 0);
        ck_assert_ptr_null(err);
        ck_assert_uint_eq(n, 12);
        ck_assert_str_eq(v, "s3cret-value");
        /* Registered with the redactor. */
        red = log_redact("token is s3cret-value, ok");
        ck_assert_ptr_null(strstr(red, "s3cret-value"));
        ck_assert_ptr_nonnull(strstr(red, "[redacted]"));
        erase_and_free(v, n);
}
END_TEST

START_TEST(test_credential_errors) {
        static const char *const bad[] = { "", ".", "..", "a/b", "../etc/shadow", "/abs" };
        _cleanup_free_ char *err = NULL;
        char *v = NULL;
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *e = NULL;

                ck_assert_int_eq(resolve(SECRET_SOURCE_CREDENTIAL, bad[i], &v, &n, &e), -EINVAL);
                ck_assert_ptr_nonnull(e);
                ck_assert(!secrets_credential_name_is_valid(bad[i]));
        }
        ck_assert(secrets_credential_name_is_valid("cloudflare-api-token"));
        ck_assert(secrets_credential_name_is_valid("..hidden"));
        /* systemd's rule: no control character; ':' and UTF-8 stay valid
         * (the spec loader has always accepted them). */
        ck_assert(!secrets_credential_name_is_valid("a\nb"));
        ck_assert(!secrets_credential_name_is_valid("a\x7f"));
        ck_assert(secrets_credential_name_is_valid("ns:token"));
        ck_assert(secrets_credential_name_is_valid("t\xc3\xb6ken"));

        ck_assert_int_eq(resolve(SECRET_SOURCE_CREDENTIAL, "nope", &v, &n, &err), -ENOENT);
        ck_assert_str_eq(err, "credential 'nope': not found in $CREDENTIALS_DIRECTORY");
        err = mfree(err);

        ck_assert_int_eq(unsetenv("CREDENTIALS_DIRECTORY"), 0);
        ck_assert_int_eq(resolve(SECRET_SOURCE_CREDENTIAL, "api-key", &v, &n, &err), -ENXIO);
        ck_assert_ptr_nonnull(strstr(err, "credential 'api-key'"));
        ck_assert_ptr_null(v);
}
END_TEST

START_TEST(test_file) {
        _cleanup_free_ char *ok = put("ok", "file-secret-1\r\n", 15, 0600);
        _cleanup_free_ char *two = put("two", "line\n\n", 6, 0400);
        _cleanup_free_ char *none = put("none", "no-newline", 10, 0600);
        _cleanup_free_ char *err = NULL;
        SecretRef rel = { .source = SECRET_SOURCE_FILE, .ref = (char *) "ok" };
        char *v = NULL;
        size_t n = 0;

        ck_assert_int_eq(resolve(SECRET_SOURCE_FILE, ok, &v, &n, &err), 0);
        ck_assert_str_eq(v, "file-secret-1");
        erase_and_free(v, n);
        /* Only one trailing newline goes. */
        ck_assert_int_eq(resolve(SECRET_SOURCE_FILE, two, &v, &n, &err), 0);
        ck_assert_uint_eq(n, 5);
        ck_assert_str_eq(v, "line\n");
        erase_and_free(v, n);
        ck_assert_int_eq(resolve(SECRET_SOURCE_FILE, none, &v, &n, &err), 0);
        ck_assert_str_eq(v, "no-newline");
        erase_and_free(v, n);
        /* Relative to base_dir. */
        ck_assert_int_eq(secrets_resolve(&rel, tmpdir, &v, &n, &err), 0);
        ck_assert_str_eq(v, "file-secret-1");
        erase_and_free(v, n);
}
END_TEST

START_TEST(test_file_refused) {
        static const char secret[] = "leaky-secret-value";
        _cleanup_free_ char *world = put("world", secret, sizeof secret - 1, 0644);
        _cleanup_free_ char *group = put("group", secret, sizeof secret - 1, 0640);
        _cleanup_free_ char *gw = put("gw", secret, sizeof secret - 1, 0620);
        _cleanup_free_ char *dir = path_join(tmpdir, "adir"), *fifo = path_join(tmpdir, "fifo");
        char *v = NULL;
        size_t n = 0;

        {
                _cleanup_free_ char *err = NULL;

                ck_assert_int_eq(resolve(SECRET_SOURCE_FILE, world, &v, &n, &err), -EPERM);
                ck_assert_ptr_nonnull(strstr(err, world));
                ck_assert_ptr_nonnull(strstr(err, "group or others"));
                /* Named by reference, never by value. */
                ck_assert_ptr_null(strstr(err, secret));
        }
        ck_assert_int_eq(resolve(SECRET_SOURCE_FILE, group, &v, &n, NULL), -EPERM);
        ck_assert_int_eq(resolve(SECRET_SOURCE_FILE, gw, &v, &n, NULL), -EPERM);

        ck_assert_int_eq(mkdir(dir, 0700), 0);
        ck_assert_int_eq(resolve(SECRET_SOURCE_FILE, dir, &v, &n, NULL), -EBADFD);
        ck_assert_int_eq(mkfifo(fifo, 0600), 0);
        {
                _cleanup_free_ char *err = NULL;

                ck_assert_int_eq(resolve(SECRET_SOURCE_FILE, fifo, &v, &n, &err), -EBADFD);
                ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
        }
        {
                _cleanup_free_ char *err = NULL, *missing = path_join(tmpdir, "missing");

                ck_assert_int_eq(resolve(SECRET_SOURCE_FILE, missing, &v, &n, &err), -ENOENT);
                ck_assert_ptr_nonnull(strstr(err, "file '"));
                ck_assert_ptr_nonnull(strstr(err, "no such file"));
        }
        ck_assert_ptr_null(v);
        ck_assert_int_eq(unlink(fifo), 0);
}
END_TEST

START_TEST(test_limits) {
        _cleanup_free_ char *big = NULL, *max = NULL, *over = NULL, *empty = NULL, *nl = NULL, *nul = NULL;
        _cleanup_free_ char *err = NULL;
        char *buf, *v = NULL;
        size_t n = 0;

        buf = malloc(SECRETS_MAX_SIZE + 2);
        ck_assert_ptr_nonnull(buf);
        memset(buf, 'x', SECRETS_MAX_SIZE + 1);
        max = put("max", buf, SECRETS_MAX_SIZE, 0600);
        over = put("over", buf, SECRETS_MAX_SIZE + 1, 0600);
        free(buf);

        ck_assert_int_eq(resolve(SECRET_SOURCE_FILE, max, &v, &n, NULL), 0);
        ck_assert_uint_eq(n, SECRETS_MAX_SIZE);
        erase_and_free(v, n);
        v = NULL;
        ck_assert_int_eq(resolve(SECRET_SOURCE_CREDENTIAL, "over", &v, &n, &err), -EFBIG);
        ck_assert_str_eq(err, "credential 'over': larger than 64 KiB");
        err = mfree(err);

        empty = put("empty", "", 0, 0600);
        nl = put("nl", "\n", 1, 0600);
        nul = put("nul", "ab\0cd", 5, 0600);
        ck_assert_int_eq(resolve(SECRET_SOURCE_CREDENTIAL, "empty", &v, &n, &err), -ENODATA);
        ck_assert_str_eq(err, "credential 'empty': empty value");
        err = mfree(err);
        ck_assert_int_eq(resolve(SECRET_SOURCE_CREDENTIAL, "nl", &v, &n, NULL), -ENODATA);
        ck_assert_int_eq(resolve(SECRET_SOURCE_CREDENTIAL, "nul", &v, &n, &err), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "NUL"));
        ck_assert_ptr_null(v);
}
END_TEST

START_TEST(test_env) {
        _cleanup_free_ char *err = NULL, *red = NULL;
        char *v = NULL;
        size_t n = 0;

        ck_assert_int_eq(setenv("BINDERY_TEST_SECRET", "env-secret-value\n", 1), 0);
        ck_assert_int_eq(resolve(SECRET_SOURCE_ENV, "BINDERY_TEST_SECRET", &v, &n, &err), 0);
        /* Environment values are taken as they are. */
        ck_assert_str_eq(v, "env-secret-value\n");
        red = log_redact("env-secret-value\n");
        ck_assert_str_eq(red, "[redacted]");
        erase_and_free(v, n);

        ck_assert_int_eq(unsetenv("BINDERY_TEST_SECRET"), 0);
        ck_assert_int_eq(resolve(SECRET_SOURCE_ENV, "BINDERY_TEST_SECRET", &v, &n, &err), -ENOENT);
        ck_assert_str_eq(err, "env 'BINDERY_TEST_SECRET': variable is not set");
        err = mfree(err);
        ck_assert_int_eq(setenv("BINDERY_TEST_EMPTY", "", 1), 0);
        ck_assert_int_eq(resolve(SECRET_SOURCE_ENV, "BINDERY_TEST_EMPTY", &v, &n, &err), -ENODATA);
        ck_assert_int_eq(resolve(SECRET_SOURCE_ENV, "", &v, &n, NULL), -EINVAL);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("secrets");
        TCase *tc = tcase_create("secrets");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_credential);
        tcase_add_test(tc, test_credential_errors);
        tcase_add_test(tc, test_file);
        tcase_add_test(tc, test_file_refused);
        tcase_add_test(tc, test_limits);
        tcase_add_test(tc, test_env);
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
