/* test-util.c: util, log redaction and model tables. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "model.h"
#include "util.h"

START_TEST(test_parse_duration) {
        uint64_t u;

        ck_assert_int_eq(parse_duration("30s", &u), 0);
        ck_assert_uint_eq(u, 30 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("5m", &u), 0);
        ck_assert_uint_eq(u, 300 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("6h", &u), 0);
        ck_assert_uint_eq(u, 6 * 3600 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("250ms", &u), 0);
        ck_assert_uint_eq(u, 250 * USEC_PER_MSEC);
        ck_assert_int_eq(parse_duration("1h30m", &u), 0);
        ck_assert_uint_eq(u, 5400 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("42", &u), 0);
        ck_assert_uint_eq(u, 42 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("", &u), -EINVAL);
        ck_assert_int_eq(parse_duration("m", &u), -EINVAL);
        ck_assert_int_eq(parse_duration("5x", &u), -EINVAL);
        ck_assert_int_eq(parse_duration("5m3", &u), -EINVAL);
        ck_assert_int_eq(parse_duration("-5s", &u), -EINVAL);
        ck_assert_int_eq(parse_duration("99999999999999999999s", &u), -ERANGE);
}
END_TEST

START_TEST(test_format_duration) {
        char buf[32];

        ck_assert_str_eq(format_duration(30 * USEC_PER_SEC, buf, sizeof(buf)), "30s");
        ck_assert_str_eq(format_duration(300 * USEC_PER_SEC, buf, sizeof(buf)), "5m");
        ck_assert_str_eq(format_duration(6 * 3600 * USEC_PER_SEC, buf, sizeof(buf)), "6h");
        ck_assert_str_eq(format_duration(1500 * USEC_PER_MSEC, buf, sizeof(buf)), "1500ms");
        ck_assert_str_eq(format_duration(0, buf, sizeof(buf)), "0s");
}
END_TEST

START_TEST(test_strv) {
        _cleanup_strv_free_ char **l = NULL, **c = NULL;

        ck_assert_int_eq(strv_extend(&l, "b"), 0);
        ck_assert_int_eq(strv_extend(&l, "a"), 0);
        ck_assert_int_eq(strv_extend(&l, "b"), 0);
        ck_assert_uint_eq(strv_length(l), 3);
        strv_sort_uniq(l);
        ck_assert_uint_eq(strv_length(l), 2);
        ck_assert_str_eq(l[0], "a");
        ck_assert_str_eq(l[1], "b");
        ck_assert(strv_contains(l, "a"));
        ck_assert(!strv_contains(l, "c"));
        c = strv_copy(l);
        ck_assert(strv_equal(l, c));
        ck_assert(!strv_equal(l, NULL));
        ck_assert(strv_equal(NULL, NULL));

        /* As JSON: json-c's bytes for the same array, escapes included. */
        {
                char *odd[] = { (char *) "a", (char *) "q\"u/o\\te", (char *) "tab\tnl\n\x01", (char *) "\xc3\xa9",
                                NULL };
                _cleanup_(json_object_putp) json_object *a = json_object_new_array();
                _cleanup_free_ char *all = NULL, *tail = NULL, *none = NULL, *empty = NULL;

                for (size_t i = 0; odd[i]; i++)
                        ck_assert_int_eq(json_object_array_add(a, json_object_new_string(odd[i])), 0);
                all = strv_to_json_text(odd, 0, SIZE_MAX);
                ck_assert_str_eq(all, json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
                tail = strv_to_json_text(odd, 2, 3);
                ck_assert_str_eq(tail, "[\"tab\\tnl\\n\\u0001\"]");
                none = strv_to_json_text(NULL, 0, SIZE_MAX);
                ck_assert_str_eq(none, "[]");
                empty = strv_to_json_text(odd, 4, 4);
                ck_assert_str_eq(empty, "[]");
        }
}
END_TEST

/* write_file_atomic_with's fill: "abc", or an error when asked to. */
static int fill_abc(FILE *out, void *userdata) {
        fputs("abc", out);
        return streq(userdata, "fail") ? -EIO : 0;
}

START_TEST(test_files) {
        char dir[] = "/tmp/bindery-test-XXXXXX";
        _cleanup_free_ char *p = NULL, *data = NULL;
        size_t size;
        struct stat st;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        p = path_join(dir, "state.json");
        ck_assert_int_eq(write_file_atomic(p, "hello", 5, 0600), 0);
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_uint_eq(st.st_mode & 0777, 0600);
        ck_assert_int_eq(read_full_file(p, 100, &data, &size), 0);
        ck_assert_uint_eq(size, 5);
        ck_assert_str_eq(data, "hello");
        data = mfree(data);
        ck_assert_int_eq(read_full_file(p, 4, &data, &size), -EFBIG);
        ck_assert_int_eq(read_full_file(dir, 100, &data, &size), -EISDIR);
        /* Written as it goes; a fill that fails leaves the file as it
         * was and no temporary. */
        {
                uint64_t n = 0;
                DIR *d;
                struct dirent *de;

                ck_assert_int_eq(write_file_atomic_with(p, 0600, fill_abc, (char *) "ok", &n), 0);
                ck_assert_uint_eq(n, 3);
                ck_assert_int_eq(write_file_atomic_with(p, 0600, fill_abc, (char *) "fail", NULL), -EIO);
                ck_assert_int_eq(read_full_file(p, 100, &data, &size), 0);
                ck_assert_str_eq(data, "abc");
                data = mfree(data);
                d = opendir(dir);
                ck_assert_ptr_nonnull(d);
                while ((de = readdir(d)))
                        ck_assert_msg(!strstr(de->d_name, ".tmp."), "left over: %s", de->d_name);
                closedir(d);
        }
        ck_assert_int_eq(unlink(p), 0);
        ck_assert_int_eq(read_full_file(p, 100, &data, &size), -ENOENT);
        ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* A pipe read to its end: past the first 64 KiB buffer, a byte past the
 * limit refused, an empty stream an empty string. */
static void pipe_with(size_t n, int fds[static 2]) {
        pid_t pid;

        ck_assert_int_eq(pipe(fds), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {         /* the writer: more than a pipe holds */
                char b[4096];

                memset(b, 'x', sizeof b);
                close(fds[0]);
                for (size_t k; n > 0; n -= k) {
                        k = n < sizeof b ? n : sizeof b;
                        if (write(fds[1], b, k) != (ssize_t) k)
                                _exit(1);
                }
                _exit(0);
        }
        ck_assert_int_eq(close(fds[1]), 0);
}

START_TEST(test_read_full_stream) {
        char *data = NULL;
        size_t size = 0;
        int fds[2];

        pipe_with(200000, fds);
        ck_assert_int_eq(read_full_stream(fds[0], 200000, &data, &size), 0);
        ck_assert_uint_eq(size, 200000);
        ck_assert_uint_eq(strspn(data, "x"), 200000);
        ck_assert_int_eq(data[size], 0);
        free(data);
        close(fds[0]);

        pipe_with(200001, fds);
        ck_assert_int_eq(read_full_stream(fds[0], 200000, &data, &size), -EFBIG);
        close(fds[0]);          /* the writer may be blocked: EPIPE ends it */

        pipe_with(0, fds);
        ck_assert_int_eq(read_full_stream(fds[0], 10, &data, &size), 0);
        ck_assert_uint_eq(size, 0);
        ck_assert_str_eq(data, "");
        free(data);
        close(fds[0]);
        while (waitpid(-1, NULL, 0) > 0)
                ;               /* the three writers */
}
END_TEST

START_TEST(test_sha256) {
        char hex[65];

        sha256_hex("abc", 3, hex);
        ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        sha256_hex("", 0, hex);
        ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

static void hex_of(const uint8_t *p, size_t n, char *ret) {
        for (size_t i = 0; i < n; i++)
                sprintf(ret + 2 * i, "%02x", p[i]);
}

/* The streaming form gives the one-shot digest, also past feedf's
 * 1 KiB stack buffer, and a copy continues independently. */
START_TEST(test_sha256_stream) {
        _cleanup_free_ char *big = malloc(3001);
        char one[65], streamed[65], copied[65];
        uint8_t raw[32];
        Sha256 *s, *c;

        ck_assert_ptr_nonnull(big);
        memset(big, 'x', 3000);
        big[3000] = 0;
        s = sha256_begin();
        ck_assert_ptr_nonnull(s);
        ck_assert_int_eq(sha256_feedf(s, "%s", "ab"), 0);
        c = sha256_copy(s);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(sha256_feedf(s, "%c", 'c'), 0);
        sha256_end_hex(s, streamed);
        ck_assert_str_eq(streamed, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        ck_assert_int_eq(sha256_feedf(c, "%s", big), 0);
        sha256_end_hex(c, copied);
        {
                _cleanup_free_ char *all = NULL;

                ck_assert_int_ge(asprintf(&all, "ab%s", big), 0);
                sha256_hex(all, strlen(all), one);
        }
        ck_assert_str_eq(copied, one);
        sha256_raw("abc", 3, raw);
        hex_of(raw, 32, one);
        ck_assert_str_eq(one, streamed);
        sha256_end_hex(NULL, one);
        ck_assert_str_eq(one, "");
        ck_assert_ptr_null(sha256_free(sha256_begin()));
}
END_TEST

/* RFC 4231 test cases 1, 2 and 6 (a key longer than the block). */
START_TEST(test_hmac_sha256) {
        uint8_t key[131], md[32];
        char hex[65];

        memset(key, 0x0b, 20);
        hmac_sha256_raw(key, 20, "Hi There", 8, md);
        hex_of(md, 32, hex);
        ck_assert_str_eq(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        hmac_sha256_raw("Jefe", 4, "what do ya want for nothing?", 28, md);
        hex_of(md, 32, hex);
        ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        memset(key, 0xaa, sizeof(key));
        hmac_sha256_raw(key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First", 54, md);
        hex_of(md, 32, hex);
        ck_assert_str_eq(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}
END_TEST

START_TEST(test_random_bytes) {
        uint8_t a[64] = {}, b[64] = {}, zero[64] = {};

        ck_assert_int_eq(random_bytes(a, 0), 0);
        ck_assert_int_eq(random_bytes(a, sizeof(a)), 0);
        ck_assert_int_eq(random_bytes(b, sizeof(b)), 0);
        /* 512 random bits: equal to zero or to each other only if broken. */
        ck_assert(memcmp(a, zero, sizeof(a)) != 0);
        ck_assert(memcmp(a, b, sizeof(a)) != 0);
}
END_TEST

START_TEST(test_consttime) {
        ck_assert(memeq_consttime("abc", 3, "abc", 3));
        ck_assert(!memeq_consttime("abc", 3, "abd", 3));
        ck_assert(!memeq_consttime("abc", 3, "abcd", 4));
        ck_assert(!memeq_consttime("abcd", 4, "abc", 3));
        ck_assert(memeq_consttime("", 0, "", 0));
        ck_assert(!memeq_consttime("\x01" "bc", 3, "\x00" "bc", 3));
}
END_TEST

START_TEST(test_redact) {
        _cleanup_free_ char *a = NULL, *b = NULL;

        ck_assert_int_eq(log_register_secret("hunter22", 8), 0);
        ck_assert_int_eq(log_register_secret("abc", 3), 0); /* too short: ignored */
        a = log_redact("token=hunter22; again hunter22.");
        ck_assert_str_eq(a, "token=[redacted]; again [redacted].");
        b = log_redact("abc stays");
        ck_assert_str_eq(b, "abc stays");
        log_forget_secrets();
}
END_TEST

/* Whether the bytes p[0..n) occur in the process's [heap] mapping. */
static bool heap_contains(const char *p, size_t n) {
        FILE *maps = fopen("/proc/self/maps", "re");
        char line[512];
        bool found = false;
        int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);

        ck_assert_ptr_nonnull(maps);
        ck_assert_int_ge(mem, 0);
        while (!found && fgets(line, sizeof(line), maps)) {
                unsigned long lo, hi;
                char *buf;

                if (!strstr(line, "[heap]") || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
                        continue;
                buf = malloc(hi - lo);
                ck_assert_ptr_nonnull(buf);
                if (pread(mem, buf, hi - lo, (off_t) lo) > 0)
                        found = memmem(buf, hi - lo, p, n) != NULL;
                free(buf);
        }
        fclose(maps);
        close(mem);
        return found;
}

/* The redaction list keeps no plaintext: once the caller wiped its copy,
 * the value is nowhere on the heap, yet it is still redacted. */
START_TEST(test_redact_keeps_no_plaintext) {
        char pattern[32], *v = malloc(32);
        _cleanup_free_ char *a = NULL;

        ck_assert_ptr_nonnull(v);
        /* built at run time, so no copy sits in .rodata */
        snprintf(pattern, sizeof(pattern), "zq%dk-%s-%d", 7, "plaintext", getpid() % 10);
        memcpy(v, pattern, strlen(pattern) + 1);
        ck_assert_int_eq(log_register_secret(v, strlen(v)), 0);
        explicit_bzero(v, 32);
        free(v);
        ck_assert(!heap_contains(pattern, strlen(pattern)));
        {
                char msg[128];

                snprintf(msg, sizeof(msg), "x %s y", pattern);
                a = log_redact(msg);
                ck_assert_str_eq(a, "x [redacted] y");
        }
        log_forget_secrets();
}
END_TEST

/* Core dumps: the process is non-dumpable, RLIMIT_CORE 0, and secret
 * buffers are MADV_DONTDUMP ("dd" in smaps). */
START_TEST(test_no_core_dumps) {
        struct rlimit rl;
        char *p = secret_malloc(100), line[512];
        unsigned long addr = (unsigned long) (uintptr_t) p;
        bool in = false, dd = false;
        FILE *f;

        ck_assert_int_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
        ck_assert_int_eq(process_harden(), 0);
        ck_assert_int_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
        ck_assert_int_eq(getrlimit(RLIMIT_CORE, &rl), 0);
        ck_assert_uint_eq(rl.rlim_cur, 0);

        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(addr % (unsigned long) sysconf(_SC_PAGESIZE), 0);
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);  /* to read our own smaps */
        f = fopen("/proc/self/smaps", "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f)) {
                unsigned long lo, hi;

                if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
                        in = addr >= lo && addr < hi;
                else if (in && startswith(line, "VmFlags:"))
                        dd = strstr(line, " dd") != NULL;
        }
        fclose(f);
        ck_assert_msg(dd, "secret_malloc() memory is not MADV_DONTDUMP");
        erase_and_free(p, 100);
}
END_TEST

START_TEST(test_redact_inside_mark) {
        /* A secret that is part of "[redacted]" must not loop forever. */
        _cleanup_free_ char *a = NULL, *b = NULL;

        ck_assert_int_eq(log_register_secret("dacted", 6), 0);
        ck_assert_int_eq(log_register_secret("[redacted]", 10), 0);
        a = log_redact("x dacted y [redacted] z");
        ck_assert_str_eq(a, "x [redacted] y [redacted] z");
        log_forget_secrets();
        /* Overlapping secrets: the longest at each position wins. */
        ck_assert_int_eq(log_register_secret("hunter", 6), 0);
        ck_assert_int_eq(log_register_secret("hunter22", 8), 0);
        b = log_redact("hunter22hunter");
        ck_assert_str_eq(b, "[redacted][redacted]");
        log_forget_secrets();
}
END_TEST

START_TEST(test_redact_ring) {
        /* More distinct secrets than the list holds: registering never
         * fails, and the newest are still redacted. */
        char v[32];
        _cleanup_free_ char *a = NULL;

        for (unsigned i = 0; i < 5000; i++) {
                snprintf(v, sizeof v, "secret-%05u", i);
                ck_assert_int_eq(log_register_secret(v, strlen(v)), 0);
        }
        a = log_redact("secret-04999 secret-00000");
        ck_assert_str_eq(a, "[redacted] secret-00000");
        log_forget_secrets();
}
END_TEST

START_TEST(test_log_errno) {
        log_set_target(LOG_TARGET_CONSOLE);
        log_set_max_level(LOG_ERR);
        ck_assert_int_eq(log_error_errno(ENOENT, "expected test message: %m"), -ENOENT);
        ck_assert_int_eq(log_debug_errno(-EIO, "filtered"), -EIO);
        ck_assert_int_eq(log_level_from_string("warning"), LOG_WARNING);
        ck_assert_int_eq(log_level_from_string("loud"), -EINVAL);
}
END_TEST

START_TEST(test_model_tables) {
        ck_assert_str_eq(resource_kind_to_string(RESOURCE_KV_NAMESPACE), "KVNamespace");
        ck_assert_int_eq(resource_kind_from_string("D1Database"), RESOURCE_D1_DATABASE);
        ck_assert_int_eq(resource_kind_from_string("Nope"), -EINVAL);
        ck_assert(resource_kind_is_data(RESOURCE_R2_BUCKET));
        ck_assert(!resource_kind_is_data(RESOURCE_WORKER));
        ck_assert_str_eq(binding_kind_to_api_type(BINDING_DURABLE_OBJECT), "durable_object_namespace");
        ck_assert_int_eq(binding_kind_from_api_type("secrets_store_secret"), BINDING_SECRETS_STORE_SECRET);
        ck_assert_int_eq(binding_kind_from_api_type("unknown_future_kind"), -EINVAL);
        ck_assert_str_eq(module_type_to_content_type(MODULE_ESM), "application/javascript+module");
        ck_assert_int_eq(deletion_policy_from_string("delete"), DELETION_DELETE);
        ck_assert_int_eq(drift_policy_from_string("report"), DRIFT_REPORT);
        ck_assert_ptr_null(resource_kind_to_string(_RESOURCE_KIND_MAX));
}
END_TEST

START_TEST(test_strset) {
        _cleanup_(strset_freep) StrSet *s = strset_new();
        char k[32];

        ck_assert_ptr_nonnull(s);
        ck_assert(!strset_contains(s, "a"));
        ck_assert_int_eq(strset_put(s, "a"), 0);
        ck_assert_int_eq(strset_put(s, "a"), 0);        /* once only */
        ck_assert_int_eq(s->count, 1);
        ck_assert(strset_contains(s, "a"));
        ck_assert(!strset_contains(s, "b"));
        ck_assert(!strset_contains(s, NULL));
        ck_assert(!strset_contains(NULL, "a"));
        /* Grows past its first size; keys are copies. */
        for (unsigned i = 0; i < 100; i++) {
                snprintf(k, sizeof k, "key-%u", i);
                ck_assert_int_eq(strset_put(s, k), 0);
        }
        strcpy(k, "changed");
        ck_assert(strset_contains(s, "key-99"));
        ck_assert(!strset_contains(s, "changed"));
        ck_assert_int_eq(s->count, 101);
}
END_TEST

static Suite *util_suite(void) {
        Suite *s = suite_create("util");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_parse_duration);
        tcase_add_test(tc, test_format_duration);
        tcase_add_test(tc, test_strv);
        tcase_add_test(tc, test_files);
        tcase_add_test(tc, test_sha256);
        tcase_add_test(tc, test_sha256_stream);
        tcase_add_test(tc, test_hmac_sha256);
        tcase_add_test(tc, test_random_bytes);
        tcase_add_test(tc, test_consttime);
        tcase_add_test(tc, test_redact);
        tcase_add_test(tc, test_redact_inside_mark);
        tcase_add_test(tc, test_redact_ring);
        tcase_add_test(tc, test_redact_keeps_no_plaintext);
        tcase_add_test(tc, test_no_core_dumps);
        tcase_add_test(tc, test_log_errno);
        tcase_add_test(tc, test_model_tables);
        tcase_add_test(tc, test_strset);
        tcase_add_test(tc, test_read_full_stream);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(util_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
