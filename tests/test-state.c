/* test-state.c: the state directory: atomic save, lock, binding, corrupt
 * files, intents, policies, own writes, secret fingerprints. Every test
 * works in its own temporary directory. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "state.h"
#include "util.h"

#define ACCOUNT "0123456789abcdef0123456789abcdef"
#define API_URL "https://api.cloudflare.com/client/v4"

static char *make_tmpdir(void) {
        const char *tmp = getenv("TMPDIR");
        char *d = NULL;

        ck_assert_int_ge(asprintf(&d, "%s/test-state.XXXXXX", isempty(tmp) ? "/tmp" : tmp), 0);
        ck_assert_ptr_nonnull(mkdtemp(d));
        return d;
}

static void rm_rf(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                p = path_join(dir, de->d_name);
                (void) unlink(p);
        }
        closedir(d);
        (void) rmdir(dir);
}

static void write_text(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *p = path_join(dir, name);

        ck_assert_int_eq(write_file_atomic(p, text, strlen(text), 0600), 0);
}

static char *read_text(const char *dir, const char *name) {
        _cleanup_free_ char *p = path_join(dir, name);
        char *data = NULL;
        size_t size;

        ck_assert_int_eq(read_full_file(p, 1 << 24, &data, &size), 0);
        return data;
}

static void put_kv(State *s, const char *name, const char *id) {
        StateResource r = {
                .kind = RESOURCE_KV_NAMESPACE,
                .name = (char *) name,
                .cf_id = (char *) id,
                .cf_name = (char *) name,
                .ownership = OWNERSHIP_CREATED,
                .digest = (char *) "sha256:abc",
                .deletion = DELETION_RETAIN,
                .drift = DRIFT_REPAIR,
                .run_id = (char *) "run-1",
        };

        ck_assert_int_eq(state_put(s, &r), 0);
}

START_TEST(test_fresh_roundtrip) {
        _cleanup_free_ char *dir = make_tmpdir(), *text = NULL, *err = NULL;
        State *s = NULL;
        const StateResource *r;
        const StateResource *const *all;
        size_t n;
        struct stat st;

        ck_assert_int_eq(state_open(dir, true, &s, &err), 0);
        ck_assert(state_is_locked(s));
        ck_assert_ptr_null(state_account_id(s));
        /* Never bound: nothing to save yet. */
        ck_assert_int_eq(state_save(s), -EDESTADDRREQ);
        ck_assert_int_eq(state_bind(s, ACCOUNT, API_URL), 0);

        put_kv(s, "sessions", "ns-1");
        put_kv(s, "cache", "ns-2");
        {
                char *tags[] = { (char *) "v1", NULL };
                StateResource w = {
                        .kind = RESOURCE_WORKER, .name = (char *) "api", .cf_id = (char *) "api",
                        .cf_name = (char *) "api", .ownership = OWNERSHIP_ADOPTED,
                        .deletion = DELETION_DELETE, .drift = DRIFT_REPORT, .migration_tags = tags,
                };
                ck_assert_int_eq(state_put(s, &w), 0);
        }
        ck_assert_int_eq(state_add_migration_tag(s, "api", "v2"), 0);
        ck_assert_int_eq(state_add_migration_tag(s, "api", "v2"), 0);
        ck_assert_int_eq(state_add_migration_tag(s, "nope", "v2"), -ENOENT);
        ck_assert_int_eq(state_set_meta(s, "audit_since", "2026-11-23T09:00:00Z"), 0);
        ck_assert_int_eq(state_save(s), 0);
        s = state_free(s);

        /* Mode 0600 and valid JSON. */
        {
                _cleanup_free_ char *p = path_join(dir, "state.json");

                ck_assert_int_eq(stat(p, &st), 0);
                ck_assert_uint_eq(st.st_mode & 07777, 0600);
        }
        text = read_text(dir, "state.json");
        ck_assert_ptr_nonnull(strstr(text, "\"version\""));

        ck_assert_int_eq(state_open(dir, true, &s, &err), 0);
        ck_assert_str_eq(state_account_id(s), ACCOUNT);
        ck_assert_str_eq(state_api_url(s), API_URL);
        all = state_resources(s, &n);
        ck_assert_uint_eq(n, 3);
        /* Sorted by kind (Worker first), then name. */
        ck_assert_int_eq(all[0]->kind, RESOURCE_WORKER);
        ck_assert_str_eq(all[1]->name, "cache");
        ck_assert_str_eq(all[2]->name, "sessions");
        r = state_get(s, RESOURCE_KV_NAMESPACE, "sessions");
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r->cf_id, "ns-1");
        ck_assert_str_eq(r->digest, "sha256:abc");
        ck_assert_int_eq(r->ownership, OWNERSHIP_CREATED);
        ck_assert_uint_gt(r->created_usec, 0);
        r = state_get(s, RESOURCE_WORKER, "api");
        ck_assert_int_eq(r->ownership, OWNERSHIP_ADOPTED);
        ck_assert_int_eq(r->drift, DRIFT_REPORT);
        ck_assert_uint_eq(strv_length(r->migration_tags), 2);
        ck_assert_str_eq(r->migration_tags[1], "v2");
        ck_assert_ptr_eq(state_find_cf(s, RESOURCE_KV_NAMESPACE, "ns-2", NULL),
                         state_get(s, RESOURCE_KV_NAMESPACE, "cache"));
        ck_assert_ptr_eq(state_find_cf(s, RESOURCE_KV_NAMESPACE, NULL, "sessions"),
                         state_get(s, RESOURCE_KV_NAMESPACE, "sessions"));
        ck_assert_str_eq(state_get_meta(s, "audit_since"), "2026-11-23T09:00:00Z");
        ck_assert_int_eq(state_remove(s, RESOURCE_KV_NAMESPACE, "cache"), 0);
        ck_assert_int_eq(state_remove(s, RESOURCE_KV_NAMESPACE, "cache"), -ENOENT);
        ck_assert_ptr_null(state_get(s, RESOURCE_KV_NAMESPACE, "cache"));
        state_free(s);
        rm_rf(dir);
}
END_TEST

START_TEST(test_atomic_save) {
        _cleanup_free_ char *dir = make_tmpdir(), *p = NULL;
        State *s = NULL;
        struct stat st1, st2;
        DIR *d;
        struct dirent *de;

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(state_bind(s, ACCOUNT, API_URL), 0);
        put_kv(s, "a", "1");
        ck_assert_int_eq(state_save(s), 0);
        p = path_join(dir, "state.json");
        ck_assert_int_eq(stat(p, &st1), 0);
        put_kv(s, "b", "2");
        ck_assert_int_eq(state_save(s), 0);
        ck_assert_int_eq(stat(p, &st2), 0);
        /* Replaced by rename, not rewritten in place. */
        ck_assert_uint_ne(st1.st_ino, st2.st_ino);
        /* No temporary files left behind. */
        d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                ck_assert_msg(!strstr(de->d_name, ".tmp"), "left over: %s", de->d_name);
        closedir(d);
        state_free(s);
        rm_rf(dir);
}
END_TEST

START_TEST(test_lock_contention) {
        _cleanup_free_ char *dir = make_tmpdir();
        State *s = NULL;
        pid_t pid;
        int status;

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(state_bind(s, ACCOUNT, API_URL), 0);
        put_kv(s, "a", "1");
        ck_assert_int_eq(state_save(s), 0);

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                State *t = NULL;
                char *err = NULL;
                int r = state_open(dir, true, &t, &err);

                if (r != -EBUSY || !err || !strstr(err, "held by another process"))
                        _exit(1);
                free(err);
                /* Read-only open works while the lock is held. */
                r = state_open(dir, false, &t, NULL);
                if (r < 0 || !state_get(t, RESOURCE_KV_NAMESPACE, "a") || state_is_locked(t))
                        _exit(2);
                if (state_save(t) != -EROFS)
                        _exit(3);
                state_free(t);
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);

        /* Released on free: another process gets it. */
        s = state_free(s);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                State *t = NULL;

                _exit(state_open(dir, true, &t, NULL) == 0 && state_is_locked(t) ? 0 : 1);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        rm_rf(dir);
}
END_TEST

/* Deleting state/lock under a running daemon must not let a second one
 * in: the directory itself is locked too. */
START_TEST(test_lock_survives_unlink) {
        _cleanup_free_ char *dir = make_tmpdir(), *lock = NULL;
        State *s = NULL;
        pid_t pid;
        int status;

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        lock = path_join(dir, "lock");
        ck_assert_int_eq(unlink(lock), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                State *t = NULL;
                char *err = NULL;
                int r = state_open(dir, true, &t, &err);

                _exit(r == -EBUSY && err && strstr(err, dir) ? 0 : 1);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        s = state_free(s);
        /* a state_dir that is a symlink (StateDirectory= with DynamicUser=) locks too */
        {
                _cleanup_free_ char *link = NULL;

                ck_assert_int_ge(asprintf(&link, "%s.link", dir), 0);
                ck_assert_int_eq(symlink(dir, link), 0);
                ck_assert_int_eq(state_open(link, true, &s, NULL), 0);
                ck_assert(state_is_locked(s));
                s = state_free(s);
                ck_assert_int_eq(unlink(link), 0);
        }
        rm_rf(dir);
}
END_TEST

/* A kill -9 mid-save leaves state.json.tmp.PID: removed at the next
 * locked open, and state.json itself untouched. */
START_TEST(test_stale_temporaries_removed) {
        _cleanup_free_ char *dir = make_tmpdir(), *t1 = NULL, *t2 = NULL, *other = NULL;
        State *s = NULL;

        write_text(dir, "state.json.tmp.4242", "{\"version\": 1, \"resou");
        write_text(dir, "hmac.key.tmp.77", "0123");
        write_text(dir, "notes.txt", "keep me");
        ck_assert_int_eq(state_open(dir, false, &s, NULL), 0);  /* read-only: leaves them */
        s = state_free(s);
        t1 = path_join(dir, "state.json.tmp.4242");
        t2 = path_join(dir, "hmac.key.tmp.77");
        other = path_join(dir, "notes.txt");
        ck_assert_int_eq(access(t1, F_OK), 0);
        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(access(t1, F_OK), -1);
        ck_assert_int_eq(access(t2, F_OK), -1);
        ck_assert_int_eq(access(other, F_OK), 0);
        s = state_free(s);
        rm_rf(dir);
}
END_TEST

/* A short hmac.key is the state's problem, said so naming the file. */
START_TEST(test_short_key_named) {
        _cleanup_free_ char *dir = make_tmpdir();
        State *s = NULL;
        char h[65];

        write_text(dir, "hmac.key", "short");
        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(state_secret_hmac(s, "value", 5, h), -EBADMSG);
        ck_assert_ptr_nonnull(state_key_error(s));
        ck_assert_ptr_nonnull(strstr(state_key_error(s), "hmac.key: 5 bytes, expected 32"));
        s = state_free(s);
        rm_rf(dir);
}
END_TEST

START_TEST(test_binding_mismatch) {
        _cleanup_free_ char *dir = make_tmpdir();
        State *s = NULL;

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(state_bind(s, ACCOUNT, API_URL "/"), 0);
        ck_assert_int_eq(state_save(s), 0);
        s = state_free(s);

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        /* Same account, trailing slash aside. */
        ck_assert_int_eq(state_bind(s, ACCOUNT, API_URL), 0);
        /* A simulator's URL, or another account: refused, nothing changed. */
        ck_assert_int_eq(state_bind(s, ACCOUNT, "http://127.0.0.1:8788/client/v4"), -EXDEV);
        ck_assert_int_eq(state_bind(s, "ffffffffffffffffffffffffffffffff", API_URL), -EXDEV);
        ck_assert_str_eq(state_account_id(s), ACCOUNT);
        ck_assert_str_eq(state_api_url(s), API_URL "/");
        state_free(s);
        rm_rf(dir);
}
END_TEST

START_TEST(test_corrupt_refused) {
        static const struct {
                const char *text;
                int error;
                const char *needle;
        } cases[] = {
                { "{\"version\": 1, \"resources\": [", -EBADMSG, "truncated" },
                { "garbage", -EBADMSG, "not valid JSON" },
                { "", -EBADMSG, "not valid JSON" },
                { "[]", -EBADMSG, "expected a JSON object" },
                { "{}", -EBADMSG, "missing format version" },
                { "{\"version\": 99}", -EPROTONOSUPPORT, "newer" },
                { "{\"version\": 1, \"resources\": {}}", -EBADMSG, "resources: expected an array" },
                { "{\"version\": 1, \"resources\": [{\"kind\": \"Nope\", \"name\": \"x\", \"ownership\": \"created\"}]}",
                  -EBADMSG, "unknown kind 'Nope'" },
                { "{\"version\": 1, \"resources\": [{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"stolen\"}]}",
                  -EBADMSG, "invalid ownership" },
                { "{\"version\": 1, \"resources\": [{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\"},"
                  "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\"}]}", -EBADMSG, "duplicate" },
                { "{\"version\": 1, \"secrets\": {\"worker:api\": {\"K\": \"plaintext\"}}}", -EBADMSG, "fingerprint" },
                { "{\"version\": 1} trailing", -EBADMSG, "trailing" },
                /* Version 1: a ledger string that is not a JSON object. */
                { "{\"version\": 1, \"resources\": [{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\"}],"
                  "\"meta\": {\"engine.x.Worker.x\": \"[1]\"}}", -EBADMSG, "meta.engine.x.Worker.x" },
                { "{\"version\": 1, \"intents\": [{\"kind\": \"KVNamespace\", \"cf_name\": \"c\"},"
                  "{\"kind\": \"KVNamespace\", \"cf_name\": \"c\"}]}", -EBADMSG, "duplicate intent" },
                /* Version 2. */
                { "{\"version\": 2, \"records\": []}", -EBADMSG, "records: expected an object" },
                { "{\"version\": 2, \"records\": {\"thing/x\": {}}}", -EBADMSG, "unknown record type" },
                { "{\"version\": 2, \"records\": {\"resource/Worker/y\": {\"kind\": \"Worker\", \"name\": \"x\","
                  "\"ownership\": \"created\"}}}", -EBADMSG, "key does not name" },
                { "{\"version\": 2, \"records\": {\"resource/Worker/x\": {\"kind\": \"Worker\", \"name\": \"x\","
                  "\"ownership\": \"created\", \"ledger\": \"{}\"}}}", -EBADMSG, "ledger: expected an object" },
                { "{\"version\": 2, \"records\": {\"intent/KVNamespace/b\": {\"kind\": \"KVNamespace\", \"name\": \"a\","
                  "\"cf_name\": \"c\"}}}", -EBADMSG, "key does not name" },
                { "{\"version\": 2, \"records\": {\"secrets/worker:api\": {\"K\": \"plaintext\"}}}", -EBADMSG,
                  "fingerprint" },
                { "{\"version\": 2, \"records\": {\"meta/k\": \"v\"}}", -EBADMSG, "string \"value\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *dir = make_tmpdir(), *err = NULL, *path = NULL;
                State *s = NULL;
                int r;

                write_text(dir, "state.json", cases[i].text);
                path = path_join(dir, "state.json");
                r = state_open(dir, true, &s, &err);
                ck_assert_msg(r == cases[i].error, "case %zu: %d", i, r);
                ck_assert_ptr_null(s);
                ck_assert_ptr_nonnull(err);
                /* The message names the file. */
                ck_assert_msg(startswith(err, path), "case %zu: %s", i, err);
                ck_assert_msg(strstr(err, cases[i].needle), "case %zu: %s", i, err);
                /* Read-only too. */
                ck_assert_int_eq(state_open(dir, false, &s, NULL), cases[i].error);
                rm_rf(dir);
        }
}
END_TEST

START_TEST(test_unreadable_and_oversize) {
        _cleanup_free_ char *dir = make_tmpdir(), *path = NULL, *err = NULL;
        State *s = NULL;
        int fd;

        path = path_join(dir, "state.json");
        /* A directory where the file should be: an error, not "fresh". */
        ck_assert_int_eq(mkdir(path, 0700), 0);
        ck_assert_int_lt(state_open(dir, false, &s, &err), 0);
        ck_assert_ptr_nonnull(strstr(err, path));
        ck_assert_int_eq(rmdir(path), 0);
        err = mfree(err);

        /* Over the size cap (sparse). */
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t) STATE_MAX_SIZE + 1), 0);
        close(fd);
        ck_assert_int_eq(state_open(dir, false, &s, &err), -EFBIG);
        ck_assert_ptr_nonnull(strstr(err, path));
        rm_rf(dir);

        /* A missing directory read-only: a fresh state. */
        ck_assert_int_eq(state_open("/nonexistent/bindery-test", false, &s, NULL), 0);
        ck_assert_uint_eq(({ size_t n; state_resources(s, &n); n; }), 0);
        state_free(s);
}
END_TEST

START_TEST(test_intents_survive) {
        _cleanup_free_ char *dir = make_tmpdir();
        State *s = NULL;
        const StateIntent *i;
        size_t n;

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(state_bind(s, ACCOUNT, API_URL), 0);
        ck_assert_int_eq(state_intent_add(s, RESOURCE_KV_NAMESPACE, "sessions", "api-sessions", "run-7"), 0);
        ck_assert_int_eq(state_intent_add(s, RESOURCE_R2_BUCKET, "uploads", "uploads", "run-7"), 0);
        ck_assert_int_eq(state_save(s), 0);
        /* "Crash": drop everything without clearing. */
        s = state_free(s);

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        state_intents(s, &n);
        ck_assert_uint_eq(n, 2);
        i = state_intent_find(s, RESOURCE_KV_NAMESPACE, "api-sessions");
        ck_assert_ptr_nonnull(i);
        ck_assert_str_eq(i->name, "sessions");
        ck_assert_str_eq(i->run_id, "run-7");
        ck_assert_uint_gt(i->time_usec, 0);
        ck_assert_ptr_null(state_intent_find(s, RESOURCE_R2_BUCKET, "api-sessions"));

        /* Recognised as ours: record it, then clear the intent. */
        put_kv(s, "sessions", "ns-9");
        ck_assert_int_eq(state_intent_clear(s, RESOURCE_KV_NAMESPACE, "api-sessions"), 0);
        ck_assert_int_eq(state_intent_clear(s, RESOURCE_KV_NAMESPACE, "api-sessions"), -ENOENT);
        ck_assert_int_eq(state_save(s), 0);
        s = state_free(s);

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        state_intents(s, &n);
        ck_assert_uint_eq(n, 1);
        ck_assert_ptr_nonnull(state_get(s, RESOURCE_KV_NAMESPACE, "sessions"));
        state_free(s);
        rm_rf(dir);
}
END_TEST

START_TEST(test_policy_retained) {
        _cleanup_free_ char *dir = make_tmpdir();
        State *s = NULL;
        const StateResource *r;

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(state_bind(s, ACCOUNT, API_URL), 0);
        put_kv(s, "scratch", "ns-3");
        ck_assert_int_eq(state_set_policy(s, RESOURCE_KV_NAMESPACE, "scratch", DELETION_DELETE, DRIFT_REPORT), 0);
        ck_assert_int_eq(state_set_digest(s, RESOURCE_KV_NAMESPACE, "scratch", "sha256:def"), 0);
        ck_assert_int_eq(state_set_policy(s, RESOURCE_KV_NAMESPACE, "gone", DELETION_DELETE, DRIFT_REPAIR), -ENOENT);
        ck_assert_int_eq(state_save(s), 0);
        s = state_free(s);

        /* The document has left the spec; the state still knows its policy. */
        ck_assert_int_eq(state_open(dir, false, &s, NULL), 0);
        r = state_get(s, RESOURCE_KV_NAMESPACE, "scratch");
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->deletion, DELETION_DELETE);
        ck_assert_int_eq(r->drift, DRIFT_REPORT);
        ck_assert_str_eq(r->digest, "sha256:def");
        state_free(s);
        rm_rf(dir);
}
END_TEST

START_TEST(test_own_writes) {
        _cleanup_free_ char *dir = make_tmpdir();
        State *s = NULL;
        char m[32];

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(state_bind(s, ACCOUNT, API_URL), 0);
        put_kv(s, "a", "1");
        for (unsigned i = 0; i < STATE_MAX_OWN_WRITES + 8; i++) {
                snprintf(m, sizeof m, "etag-%u", i);
                ck_assert_int_eq(state_add_own_write(s, RESOURCE_KV_NAMESPACE, "a", m), 0);
        }
        ck_assert_int_eq(state_add_own_write(s, RESOURCE_KV_NAMESPACE, "a", "etag-39"), 0);
        ck_assert_uint_eq(strv_length(state_get(s, RESOURCE_KV_NAMESPACE, "a")->own_writes), STATE_MAX_OWN_WRITES);
        ck_assert(!state_is_own_write(s, RESOURCE_KV_NAMESPACE, "a", "etag-0"));
        ck_assert(state_is_own_write(s, RESOURCE_KV_NAMESPACE, "a", "etag-39"));
        ck_assert(state_is_own_write(s, RESOURCE_KV_NAMESPACE, "a", "etag-8"));
        ck_assert_int_eq(state_save(s), 0);
        s = state_free(s);
        ck_assert_int_eq(state_open(dir, false, &s, NULL), 0);
        ck_assert(state_is_own_write(s, RESOURCE_KV_NAMESPACE, "a", "etag-20"));
        ck_assert(!state_is_own_write(s, RESOURCE_KV_NAMESPACE, "a", "etag-7"));
        state_free(s);
        rm_rf(dir);
}
END_TEST

START_TEST(test_secret_fingerprints) {
        _cleanup_free_ char *dir = make_tmpdir(), *dir2 = make_tmpdir(), *text = NULL, *keyp = NULL;
        static const char value[] = "hunter2-very-secret-value";
        char a[65], b[65], c[65];
        State *s = NULL, *t = NULL;
        struct stat st;

        /* Read-only and no key yet: nothing can be fingerprinted. */
        ck_assert_int_eq(state_open(dir, false, &s, NULL), 0);
        ck_assert_int_eq(state_secret_hmac(s, value, strlen(value), a), -ENOKEY);
        s = state_free(s);

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(state_bind(s, ACCOUNT, API_URL), 0);
        ck_assert_int_eq(state_secret_hmac(s, value, strlen(value), a), 0);
        ck_assert_int_eq(state_secret_hmac(s, value, strlen(value), b), 0);
        ck_assert_str_eq(a, b);
        ck_assert_uint_eq(strlen(a), 64);

        /* The key file: 32 bytes, 0600. */
        keyp = path_join(dir, "hmac.key");
        ck_assert_int_eq(stat(keyp, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(st.st_size, 32);

        ck_assert_int_eq(state_secret_set(s, "worker:api", "API_KEY", value, strlen(value)), 0);
        ck_assert_int_eq(state_secret_set(s, "store:default", "api-token", "other-value", 11), 0);
        ck_assert_int_eq(state_secret_matches(s, "worker:api", "API_KEY", value, strlen(value)), 1);
        ck_assert_int_eq(state_secret_matches(s, "worker:api", "API_KEY", "changed!", 8), 0);
        ck_assert_int_eq(state_secret_matches(s, "worker:api", "OTHER", value, strlen(value)), 0);
        ck_assert_str_eq(state_secret_get(s, "worker:api", "API_KEY"), a);
        ck_assert_int_eq(state_save(s), 0);
        s = state_free(s);

        /* No value in the file. */
        text = read_text(dir, "state.json");
        ck_assert_ptr_null(strstr(text, value));
        ck_assert_ptr_null(strstr(text, "other-value"));
        ck_assert_ptr_nonnull(strstr(text, a));

        /* Stable across reopen (same key), even read-only. */
        ck_assert_int_eq(state_open(dir, false, &s, NULL), 0);
        ck_assert_int_eq(state_secret_hmac(s, value, strlen(value), c), 0);
        ck_assert_str_eq(a, c);
        ck_assert_int_eq(state_secret_matches(s, "worker:api", "API_KEY", value, strlen(value)), 1);
        ck_assert_int_eq(state_secret_forget(s, "worker:api", "API_KEY"), 0);
        ck_assert_ptr_null(state_secret_get(s, "worker:api", "API_KEY"));
        ck_assert_int_eq(state_secret_forget(s, "store:default", NULL), 0);
        ck_assert_int_eq(state_secret_forget(s, "store:default", NULL), -ENOENT);
        s = state_free(s);

        /* Another install: another key, another fingerprint. */
        ck_assert_int_eq(state_open(dir2, true, &t, NULL), 0);
        ck_assert_int_eq(state_secret_hmac(t, value, strlen(value), c), 0);
        ck_assert_str_ne(a, c);
        t = state_free(t);

        /* A corrupt key is an error, never silently replaced. */
        write_text(dir2, "hmac.key", "short");
        ck_assert_int_eq(state_open(dir2, true, &t, NULL), 0);
        ck_assert_int_eq(state_secret_hmac(t, value, strlen(value), c), -EBADMSG);
        state_free(t);
        rm_rf(dir);
        rm_rf(dir2);
}
END_TEST

START_TEST(test_to_json) {
        _cleanup_free_ char *dir = make_tmpdir();
        State *s = NULL;
        json_object *j, *v;

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(state_bind(s, ACCOUNT, API_URL), 0);
        put_kv(s, "a", "1");
        j = state_to_json(s);
        ck_assert_ptr_nonnull(j);
        ck_assert(json_object_object_get_ex(j, "version", &v));
        ck_assert_int_eq(json_object_get_int(v), STATE_FORMAT_VERSION);
        ck_assert_int_eq(STATE_FORMAT_VERSION, 2);
        ck_assert(!json_object_object_get_ex(j, "resources", NULL));
        ck_assert(json_object_object_get_ex(j, "records", &v));
        ck_assert_int_eq(json_object_object_length(v), 1);
        ck_assert(json_object_object_get_ex(v, "resource/KVNamespace/a", NULL));
        json_object_put(j);
        ck_assert_str_eq(ownership_to_string(OWNERSHIP_ADOPTED), "adopted");
        ck_assert_int_eq(ownership_from_string("created"), OWNERSHIP_CREATED);
        ck_assert_int_eq(ownership_from_string("x"), -EINVAL);
        state_free(s);
        rm_rf(dir);
}
END_TEST

/* A version-1 file (as binderyd wrote it before version 2: arrays, and
 * the engine's ledger fields as JSON strings in meta) is lifted: the
 * strings become each resource's ledger object, the meta entries go, the
 * rest is kept; the next save writes version 2, one record per thing,
 * which loads back equal. */
START_TEST(test_v1_lifted) {
        _cleanup_free_ char *dir = make_tmpdir(), *text = NULL;
        State *s = NULL;
        const StateResource *r;
        json_object *j, *records, *rec, *v;

        write_text(dir, "state.json",
                   "{\"version\": 1,"
                   " \"binding\": {\"account_id\": \"" ACCOUNT "\", \"api_url\": \"" API_URL "\"},"
                   " \"resources\": [{\"kind\": \"Worker\", \"name\": \"api\", \"cf_id\": \"api\", \"cf_name\": \"api\","
                   "   \"ownership\": \"created\", \"digest\": \"d1\", \"deletion_policy\": \"retain\","
                   "   \"drift_policy\": \"report\", \"migration_tags\": [\"v1\"]},"
                   "  {\"kind\": \"KVNamespace\", \"name\": \"sessions\", \"cf_id\": \"ns1\", \"cf_name\": \"it-sessions\","
                   "   \"ownership\": \"adopted\", \"deletion_policy\": \"delete\"}],"
                   " \"intents\": [{\"kind\": \"D1Database\", \"name\": \"db\", \"cf_name\": \"main-db\", \"run_id\": \"r1\"}],"
                   " \"secrets\": {\"store:default\": {\"tok\": \"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\"}},"
                   " \"meta\": {\"engine.audit.last\": \"2026-12-07T03:24:10Z\","
                   "   \"engine.x.Worker.api\": \"{\\\"etag\\\":\\\"e1\\\",\\\"crons\\\":[\\\"*/5 * * * *\\\"]}\","
                   "   \"engine.x.KVNamespace.gone\": \"{}\"}}");
        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        r = state_get(s, RESOURCE_WORKER, "api");
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_nonnull(r->ledger);
        ck_assert(json_object_object_get_ex(r->ledger, "etag", &v));
        ck_assert_str_eq(json_object_get_string(v), "e1");
        ck_assert(json_object_object_get_ex(r->ledger, "crons", &v));
        ck_assert_int_eq(json_object_array_length(v), 1);
        ck_assert_int_eq(r->drift, DRIFT_REPORT);
        ck_assert_str_eq(r->migration_tags[0], "v1");
        r = state_get(s, RESOURCE_KV_NAMESPACE, "sessions");
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_null(r->ledger);
        ck_assert_int_eq(r->ownership, OWNERSHIP_ADOPTED);
        ck_assert_int_eq(r->deletion, DELETION_DELETE);
        ck_assert_ptr_nonnull(state_intent_find(s, RESOURCE_D1_DATABASE, "main-db"));
        ck_assert_ptr_nonnull(state_secret_get(s, "store:default", "tok"));
        ck_assert_str_eq(state_get_meta(s, "engine.audit.last"), "2026-12-07T03:24:10Z");
        ck_assert_ptr_null(state_get_meta(s, "engine.x.Worker.api"));
        ck_assert_ptr_null(state_get_meta(s, "engine.x.KVNamespace.gone"));

        /* Saved as version 2: one keyed record each. */
        ck_assert_int_eq(state_save(s), 0);
        state_free(s);
        s = NULL;
        j = json_object_from_file(text = path_join(dir, "state.json"));
        ck_assert_ptr_nonnull(j);
        ck_assert(json_object_object_get_ex(j, "version", &v));
        ck_assert_int_eq(json_object_get_int(v), 2);
        ck_assert(json_object_object_get_ex(j, "records", &records));
        ck_assert_int_eq(json_object_object_length(records), 5);
        ck_assert(json_object_object_get_ex(records, "resource/Worker/api", &rec));
        ck_assert(json_object_object_get_ex(rec, "ledger", &v));
        ck_assert(json_object_object_get_ex(v, "etag", NULL));
        ck_assert(json_object_object_get_ex(records, "resource/KVNamespace/sessions", NULL));
        ck_assert(json_object_object_get_ex(records, "intent/D1Database/main-db", NULL));
        ck_assert(json_object_object_get_ex(records, "secrets/store:default", NULL));
        ck_assert(json_object_object_get_ex(records, "meta/engine.audit.last", &rec));
        ck_assert(json_object_object_get_ex(rec, "value", NULL));
        json_object_put(j);

        /* And version 2 loads back the same. */
        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        r = state_get(s, RESOURCE_WORKER, "api");
        ck_assert_ptr_nonnull(r);
        ck_assert(json_object_object_get_ex(r->ledger, "etag", &v));
        ck_assert_str_eq(json_object_get_string(v), "e1");
        ck_assert_int_eq(r->drift, DRIFT_REPORT);
        ck_assert_str_eq(state_account_id(s), ACCOUNT);
        ck_assert_ptr_nonnull(state_get(s, RESOURCE_KV_NAMESPACE, "sessions"));
        ck_assert_ptr_nonnull(state_intent_find(s, RESOURCE_D1_DATABASE, "main-db"));
        ck_assert_ptr_nonnull(state_secret_get(s, "store:default", "tok"));
        ck_assert_str_eq(state_get_meta(s, "engine.audit.last"), "2026-12-07T03:24:10Z");
        state_free(s);
        rm_rf(dir);
}
END_TEST

/* state_put deep-copies the ledger object: changing the caller's copy
 * afterwards changes nothing stored. */
START_TEST(test_ledger_object_copied) {
        _cleanup_free_ char *dir = make_tmpdir();
        _cleanup_(json_object_putp) json_object *x = json_object_new_object();
        State *s = NULL;
        const StateResource *r;
        json_object *v;

        ck_assert_int_eq(state_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(json_object_object_add(x, "etag", json_object_new_string("e1")), 0);
        StateResource rec = { .kind = RESOURCE_WORKER, .name = (char *) "w", .cf_id = (char *) "w",
                              .cf_name = (char *) "w", .ledger = x };
        ck_assert_int_eq(state_put(s, &rec), 0);
        ck_assert_int_eq(json_object_object_add(x, "etag", json_object_new_string("e2")), 0);
        r = state_get(s, RESOURCE_WORKER, "w");
        ck_assert(json_object_object_get_ex(r->ledger, "etag", &v));
        ck_assert_str_eq(json_object_get_string(v), "e1");
        state_free(s);
        rm_rf(dir);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("state");
        TCase *tc = tcase_create("state");

        tcase_add_test(tc, test_fresh_roundtrip);
        tcase_add_test(tc, test_atomic_save);
        tcase_add_test(tc, test_lock_contention);
        tcase_add_test(tc, test_lock_survives_unlink);
        tcase_add_test(tc, test_stale_temporaries_removed);
        tcase_add_test(tc, test_short_key_named);
        tcase_add_test(tc, test_binding_mismatch);
        tcase_add_test(tc, test_corrupt_refused);
        tcase_add_test(tc, test_unreadable_and_oversize);
        tcase_add_test(tc, test_intents_survive);
        tcase_add_test(tc, test_policy_retained);
        tcase_add_test(tc, test_own_writes);
        tcase_add_test(tc, test_secret_fingerprints);
        tcase_add_test(tc, test_to_json);
        tcase_add_test(tc, test_v1_lifted);
        tcase_add_test(tc, test_ledger_object_copied);
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
