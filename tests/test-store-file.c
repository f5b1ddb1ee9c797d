/* test-store-file.c: the file store (store-file.h) — records round trip
 * through the journal and the snapshot; a torn last journal line is
 * ignored, a corrupt earlier one refused naming file and line;
 * compaction keeps every record; the lock; read-only -EROFS; version 1
 * lifted; corrupt, unreadable and oversize snapshots named; the HMAC
 * key; and the cost of a commit, counted, does not grow with the number
 * of records. Every test works in its own temporary directory. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ledger.h"
#include "store-file.h"
#include "util.h"

#define ACCOUNT "0123456789abcdef0123456789abcdef"
#define API_URL "https://api.cloudflare.com/client/v4"
#define BINDING "{\"account_id\":\"" ACCOUNT "\",\"api_url\":\"" API_URL "\"}"

static char *make_tmpdir(void) {
        const char *tmp = getenv("TMPDIR");
        char *d = NULL;

        ck_assert_int_ge(asprintf(&d, "%s/test-store-file.XXXXXX", isempty(tmp) ? "/tmp" : tmp), 0);
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

static off_t file_size(const char *dir, const char *name) {
        _cleanup_free_ char *p = path_join(dir, name);
        struct stat st;

        if (stat(p, &st) < 0)
                return -1;
        return st.st_size;
}

/* The store's records as one JSON object (key → text). */
static int collect(const char *key, const char *value, void *userdata) {
        json_object_object_add(userdata, key, json_object_new_string(value));
        return 0;
}

static json_object *records_of(Store *s) {
        json_object *o = json_object_new_object();

        ck_assert_int_eq(store_load(s, collect, o, NULL), 0);
        return o;
}

static const char *rec(json_object *o, const char *key) {
        json_object *v;

        return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static void commit1(Store *s, const char *key, const char *value) {
        StoreChange c = { .key = key, .value = value };
        _cleanup_free_ char *err = NULL;

        ck_assert_msg(store_commit(s, &c, 1, &err) == 0, "%s", strna(err));
}

static char *kv_record(const char *name, const char *id) {
        char *t;

        ck_assert_int_ge(asprintf(&t, "{\"kind\":\"KVNamespace\",\"name\":\"%s\",\"cf_id\":\"%s\",\"cf_name\":\"%s\","
                                  "\"ownership\":\"created\"}", name, id, name), 0);
        return t;
}

/* A child commits some batches and dies without closing (as a kill -9
 * would leave it): the journal holds them, the snapshot does not. */
static void crash_after(const char *dir, unsigned batches) {
        pid_t pid = fork();
        int status;

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                Store *s = NULL;

                if (store_file_open(dir, true, &s, NULL) < 0)
                        _exit(1);
                for (unsigned i = 0; i < batches; i++) {
                        char key[64];
                        _cleanup_free_ char *v = NULL;
                        StoreChange c[2];

                        snprintf(key, sizeof key, "resource/KVNamespace/k%u", i);
                        v = kv_record(key + 21, "id");
                        c[0] = (StoreChange) { .key = "binding", .value = BINDING };
                        c[1] = (StoreChange) { .key = key, .value = v };
                        if (store_commit(s, c, 2, NULL) < 0)
                                _exit(2);
                }
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
}

START_TEST(test_round_trip) {
        _cleanup_free_ char *dir = make_tmpdir(), *a = kv_record("a", "1"), *b = kv_record("b", "2");
        _cleanup_(json_object_putp) json_object *o = NULL;
        Store *s = NULL, *t = NULL;
        StoreChange batch[3] = {
                { .key = "binding", .value = BINDING },
                { .key = "resource/KVNamespace/a", .value = a },
                { .key = "resource/KVNamespace/b", .value = b },
        };
        struct stat st;
        _cleanup_free_ char *journal = path_join(dir, "state.journal");

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        ck_assert(s->writable);
        ck_assert_str_eq(store_describe(s), dir);
        ck_assert_int_eq(store_commit(s, batch, 3, NULL), 0);
        commit1(s, "resource/KVNamespace/a", NULL);
        commit1(s, "meta/engine.audit.last", "{\"value\":\"42\"}");
        /* Not a JSON object: refused, nothing written. */
        ck_assert_int_eq(store_commit(s, &(StoreChange) { .key = "meta/x", .value = "nope" }, 1, NULL), -EINVAL);
        ck_assert_int_eq(store_commit(s, &(StoreChange) { .key = "bad key", .value = "{}" }, 1, NULL), -EINVAL);
        ck_assert_int_eq(stat(journal, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);

        /* While the writer runs, a reader replays the journal. */
        ck_assert_int_eq(store_file_open(dir, false, &t, NULL), 0);
        ck_assert(!t->writable);
        o = records_of(t);
        ck_assert_int_eq(json_object_object_length(o), 3);
        ck_assert_str_eq(rec(o, "binding"), BINDING);
        ck_assert_ptr_null(rec(o, "resource/KVNamespace/a"));
        ck_assert_str_eq(rec(o, "resource/KVNamespace/b"), b);
        ck_assert_str_eq(rec(o, "meta/engine.audit.last"), "{\"value\":\"42\"}");
        t = store_free(t);
        json_object_put(TAKE_PTR(o));

        /* Closed: state.json holds everything, the journal is empty, no
         * temporary is left. */
        s = store_free(s);
        ck_assert_int_eq(file_size(dir, "state.journal"), 0);
        {
                _cleanup_(json_object_putp) json_object *j = NULL;
                _cleanup_free_ char *p = path_join(dir, "state.json");
                json_object *v, *records;

                j = json_object_from_file(p);
                ck_assert_ptr_nonnull(j);
                ck_assert(json_object_object_get_ex(j, "version", &v));
                ck_assert_int_eq(json_object_get_int(v), 2);
                ck_assert(json_object_object_get_ex(j, "binding", &v));
                ck_assert(json_object_object_get_ex(j, "records", &records));
                ck_assert_int_eq(json_object_object_length(records), 2);
                ck_assert(json_object_object_get_ex(records, "resource/KVNamespace/b", NULL));
                ck_assert_int_eq(stat(p, &st), 0);
                ck_assert_uint_eq(st.st_mode & 07777, 0600);
        }
        ck_assert_int_eq(store_file_open(dir, false, &t, NULL), 0);
        o = records_of(t);
        ck_assert_int_eq(json_object_object_length(o), 3);
        ck_assert_str_eq(rec(o, "resource/KVNamespace/b"), b);
        t = store_free(t);
        {
                DIR *d = opendir(dir);
                struct dirent *de;

                ck_assert_ptr_nonnull(d);
                while ((de = readdir(d)))
                        ck_assert_msg(!strstr(de->d_name, ".tmp"), "left over: %s", de->d_name);
                closedir(d);
        }
        rm_rf(dir);
}
END_TEST

/* A crash mid-append leaves a short last line: never committed, so
 * ignored (and cut off by the next writer); a new batch after it is
 * whole. */
START_TEST(test_torn_last_line) {
        _cleanup_free_ char *dir = make_tmpdir(), *jp = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        Store *s = NULL;
        off_t whole;
        FILE *f;

        crash_after(dir, 2);
        whole = file_size(dir, "state.journal");
        ck_assert_int_gt(whole, 0);
        ck_assert_int_eq(file_size(dir, "state.json"), -1);
        jp = path_join(dir, "state.journal");
        f = fopen(jp, "ae");
        ck_assert_ptr_nonnull(f);
        fputs("3 120 0123456789abcdef {\"put\":{\"resource/KVNamespace/torn\":{\"kind\"", f);
        fclose(f);

        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 3);
        ck_assert_ptr_nonnull(rec(o, "resource/KVNamespace/k1"));
        ck_assert_ptr_null(rec(o, "resource/KVNamespace/torn"));
        s = store_free(s);
        json_object_put(TAKE_PTR(o));

        /* A last line with its newline but a wrong checksum: torn too. */
        f = fopen(jp, "ae");
        fputs("garbage\n", f);
        fclose(f);
        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        s = store_free(s);
        ck_assert_int_eq(truncate(jp, whole + 10), 0);

        /* The writer cuts it off before appending. */
        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(file_size(dir, "state.journal"), whole);
        commit1(s, "meta/after", "{\"value\":\"x\"}");
        s = store_free(s);
        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 4);
        ck_assert_ptr_nonnull(rec(o, "meta/after"));
        s = store_free(s);
        rm_rf(dir);
}
END_TEST

/* Corruption before the last line is not a crash: refused, naming the
 * file and the line. */
START_TEST(test_corrupt_middle_line) {
        _cleanup_free_ char *dir = make_tmpdir(), *text = NULL, *err = NULL, *jp = NULL, *want = NULL;
        Store *s = NULL;
        char *second;

        size_t size = 0;

        crash_after(dir, 3);
        jp = path_join(dir, "state.journal");
        ck_assert_int_eq(read_full_file(jp, 1 << 20, &text, &size), 0);
        second = strchr(text, '\n') + 1;
        second = strstr(second, "\"k1\"");
        ck_assert_ptr_nonnull(second);
        second[2] = '9';        /* "k9": same length, checksum no longer matches */
        write_text(dir, "state.journal", text);
        ck_assert_int_eq(store_file_open(dir, false, &s, &err), -EBADMSG);
        ck_assert_ptr_null(s);
        ck_assert_int_ge(asprintf(&want, "%s:2:", jp), 0);
        ck_assert_msg(startswith(err, want), "%s", err);
        err = mfree(err);
        ck_assert_int_eq(store_file_open(dir, true, &s, &err), -EBADMSG);
        ck_assert_msg(startswith(err, want), "%s", err);
        rm_rf(dir);
}
END_TEST

/* The journal is folded into the snapshot when it grows past 1 MiB (and
 * the snapshot's size); no record is lost, and each line stays small. */
START_TEST(test_compaction) {
        _cleanup_free_ char *dir = make_tmpdir();
        _cleanup_(json_object_putp) json_object *o = NULL;
        Store *s = NULL;
        StoreFileStats st;
        char key[64], val[2100];

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        commit1(s, "binding", BINDING);
        for (unsigned i = 0; i < 1200; i++) {
                snprintf(key, sizeof key, "meta/k%u", i % 500);
                snprintf(val, sizeof val, "{\"value\":\"%u %02000u\"}", i, i);
                commit1(s, key, val);
        }
        ck_assert_int_eq(store_file_stats(s, &st), 0);
        ck_assert_uint_eq(st.commits, 1201);
        ck_assert_uint_ge(st.compactions, 1);
        ck_assert_int_le(file_size(dir, "state.journal"), 1024 * 1024 + 1024);
        ck_assert_int_gt(file_size(dir, "state.json"), 0);
        /* Read back with the writer still open: snapshot plus journal. */
        {
                Store *t = NULL;

                ck_assert_int_eq(store_file_open(dir, false, &t, NULL), 0);
                o = records_of(t);
                t = store_free(t);
        }
        ck_assert_int_eq(json_object_object_length(o), 501);
        for (unsigned i = 700; i < 1200; i++) {
                snprintf(key, sizeof key, "meta/k%u", i % 500);
                snprintf(val, sizeof val, "{\"value\":\"%u %02000u\"}", i, i);
                ck_assert_str_eq(rec(o, key), val);
        }
        s = store_free(s);
        ck_assert_int_eq(store_file_stats(NULL, &st), -EINVAL);
        rm_rf(dir);
}
END_TEST

START_TEST(test_lock_exclusion) {
        _cleanup_free_ char *dir = make_tmpdir(), *lock = NULL;
        Store *s = NULL;
        pid_t pid;
        int status;

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        commit1(s, "binding", BINDING);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                Store *t = NULL;
                char *err = NULL;
                uint8_t key[STORE_HMAC_KEY_SIZE];
                int r = store_file_open(dir, true, &t, &err);

                if (r != -EBUSY || !err || !strstr(err, "held by another process"))
                        _exit(1);
                free(err);
                /* Read-only open works while the lock is held. */
                r = store_file_open(dir, false, &t, NULL);
                if (r < 0 || t->writable)
                        _exit(2);
                if (store_commit(t, &(StoreChange) { .key = "meta/x", .value = "{\"value\":\"1\"}" }, 1, NULL) != -EROFS)
                        _exit(3);
                /* No key yet, and a reader does not make one. */
                if (store_hmac_key(t, key, NULL) != -ENOKEY)
                        _exit(4);
                store_free(t);
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);

        /* Deleting "lock" frees nothing: the directory is locked too. */
        lock = path_join(dir, "lock");
        ck_assert_int_eq(unlink(lock), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                Store *t = NULL;
                char *err = NULL;
                int r = store_file_open(dir, true, &t, &err);

                _exit(r == -EBUSY && err && strstr(err, dir) ? 0 : 1);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);

        /* Released on free: another process gets it. */
        s = store_free(s);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                Store *t = NULL;

                _exit(store_file_open(dir, true, &t, NULL) == 0 && t->writable ? 0 : 1);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);

        /* A state_dir that is a symlink (StateDirectory= with DynamicUser=) locks too. */
        {
                _cleanup_free_ char *link = NULL;

                ck_assert_int_ge(asprintf(&link, "%s.link", dir), 0);
                ck_assert_int_eq(symlink(dir, link), 0);
                ck_assert_int_eq(store_file_open(link, true, &s, NULL), 0);
                ck_assert(s->writable);
                s = store_free(s);
                ck_assert_int_eq(unlink(link), 0);
        }
        rm_rf(dir);
}
END_TEST

START_TEST(test_read_only) {
        _cleanup_free_ char *dir = make_tmpdir();
        Store *s = NULL;

        /* A missing directory read-only: an empty store, nothing created. */
        ck_assert_int_eq(store_file_open("/nonexistent/bindery-test", false, &s, NULL), 0);
        {
                _cleanup_(json_object_putp) json_object *o = records_of(s);

                ck_assert_int_eq(json_object_object_length(o), 0);
        }
        ck_assert_int_eq(store_commit(s, &(StoreChange) { .key = "binding", .value = BINDING }, 1, NULL), -EROFS);
        s = store_free(s);
        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        ck_assert_int_eq(store_commit(s, &(StoreChange) { .key = "binding", .value = BINDING }, 1, NULL), -EROFS);
        s = store_free(s);
        ck_assert_int_eq(file_size(dir, "state.json"), -1);
        ck_assert_int_eq(file_size(dir, "state.journal"), -1);
        ck_assert_int_eq(file_size(dir, "lock"), -1);
        rm_rf(dir);
}
END_TEST

/* A version-1 file (arrays, and the engine's ledger fields as JSON
 * strings in meta) is lifted into records: the strings become each
 * resource's ledger object; a writer rewrites it as version 2 at once;
 * the ledger loads it. */
START_TEST(test_v1_lifted) {
        _cleanup_free_ char *dir = make_tmpdir(), *p = NULL;
        _cleanup_(json_object_putp) json_object *j = NULL;
        _cleanup_(ledger_freep) Ledger *l = NULL;
        const LedgerEntry *e;
        json_object *v, *records, *r;
        Store *s = NULL;

        write_text(dir, "state.json",
                   "{\"version\": 1,"
                   " \"binding\": {\"account_id\": \"" ACCOUNT "\", \"api_url\": \"" API_URL "\"},"
                   " \"resources\": [{\"kind\": \"Worker\", \"name\": \"api\", \"cf_id\": \"api\", \"cf_name\": \"api\","
                   "   \"ownership\": \"created\", \"digest\": \"d1\", \"deletion_policy\": \"retain\","
                   "   \"drift_policy\": \"report\", \"migration_tags\": [\"v1\"]},"
                   "  {\"kind\": \"KVNamespace\", \"name\": \"sessions\", \"cf_id\": \"ns1\", \"cf_name\": \"it sessions\","
                   "   \"ownership\": \"adopted\", \"deletion_policy\": \"delete\"}],"
                   " \"intents\": [{\"kind\": \"D1Database\", \"name\": \"db\", \"cf_name\": \"main db\", \"run_id\": \"r1\"}],"
                   " \"secrets\": {\"store:default\": {\"tok\": \"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\"}},"
                   " \"meta\": {\"engine.audit.last\": \"2026-12-07T03:24:10Z\","
                   "   \"engine.x.Worker.api\": \"{\\\"etag\\\":\\\"e1\\\",\\\"crons\\\":[\\\"*/5 * * * *\\\"]}\","
                   "   \"engine.x.KVNamespace.gone\": \"{}\"}}");
        /* Read-only: lifted in memory, the file untouched. */
        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        ck_assert_int_eq(ledger_load(s, &l, NULL), 0);
        s = store_free(s);
        e = ledger_find(l, RESOURCE_WORKER, "api");
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(e->etag, "e1");
        ck_assert(e->crons_set);
        ck_assert_str_eq(e->crons[0], "*/5 * * * *");
        ck_assert_int_eq(e->drift, DRIFT_REPORT);
        ck_assert_str_eq(e->migration_tag, "v1");
        e = ledger_find(l, RESOURCE_KV_NAMESPACE, "sessions");
        ck_assert_ptr_nonnull(e);
        ck_assert(e->adopted);
        ck_assert_int_eq(e->deletion, DELETION_DELETE);
        ck_assert_str_eq(e->name, "it sessions");
        ck_assert_ptr_nonnull(ledger_find_intent(l, RESOURCE_D1_DATABASE, "main db"));
        ck_assert_str_eq(ledger_get_meta(l, "engine.audit.last"), "2026-12-07T03:24:10Z");
        ck_assert_ptr_null(ledger_get_meta(l, "engine.x.Worker.api"));
        ck_assert_ptr_null(ledger_get_meta(l, "engine.x.KVNamespace.gone"));
        ck_assert_str_eq(ledger_account_id(l), ACCOUNT);
        ck_assert(!ledger_has_changes(l));
        p = path_join(dir, "state.json");
        j = json_object_from_file(p);
        ck_assert(json_object_object_get_ex(j, "version", &v));
        ck_assert_int_eq(json_object_get_int(v), 1);
        json_object_put(TAKE_PTR(j));
        l = ledger_free(l);

        /* A writer: version 2 on disk at once, one keyed record each. */
        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        j = json_object_from_file(p);
        ck_assert(json_object_object_get_ex(j, "version", &v));
        ck_assert_int_eq(json_object_get_int(v), 2);
        ck_assert(json_object_object_get_ex(j, "records", &records));
        ck_assert_int_eq(json_object_object_length(records), 4);
        ck_assert(json_object_object_get_ex(records, "resource/Worker/api", &r));
        ck_assert(json_object_object_get_ex(r, "ledger", &v));
        ck_assert(json_object_object_get_ex(v, "etag", NULL));
        ck_assert(json_object_object_get_ex(records, "resource/KVNamespace/sessions", NULL));
        ck_assert(json_object_object_get_ex(records, "intent/D1Database/main%20db", NULL));
        ck_assert(json_object_object_get_ex(records, "meta/engine.audit.last", &r));
        ck_assert(json_object_object_get_ex(r, "value", NULL));
        ck_assert_int_eq(ledger_load(s, &l, NULL), 0);
        ck_assert_str_eq(ledger_find(l, RESOURCE_WORKER, "api")->etag, "e1");
        ck_assert_ptr_nonnull(ledger_find_intent(l, RESOURCE_D1_DATABASE, "main db"));
        s = store_free(s);
        rm_rf(dir);
}
END_TEST

START_TEST(test_corrupt_snapshot_refused) {
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
                { "{\"version\": 0}", -EBADMSG, "invalid format version" },
                { "{\"version\": 99}", -EPROTONOSUPPORT, "newer" },
                { "{\"version\": 1, \"resources\": {}}", -EBADMSG, "resources: expected an array" },
                { "{\"version\": 1, \"resources\": [{\"kind\": \"Worker\"}]}", -EBADMSG, "needs a kind and a name" },
                { "{\"version\": 1, \"resources\": [{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\"},"
                  "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\"}]}", -EBADMSG, "duplicate" },
                { "{\"version\": 1, \"secrets\": {\"worker:api\": {\"K\": \"plaintext\"}}}", -EBADMSG, "fingerprint" },
                { "{\"version\": 1} trailing", -EBADMSG, "trailing" },
                { "{\"version\": 1, \"resources\": [{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\"}],"
                  "\"meta\": {\"engine.x.Worker.x\": \"[1]\"}}", -EBADMSG, "meta.engine.x.Worker.x" },
                { "{\"version\": 1, \"intents\": [{\"kind\": \"KVNamespace\", \"cf_name\": \"c\"},"
                  "{\"kind\": \"KVNamespace\", \"cf_name\": \"c\"}]}", -EBADMSG, "duplicate intent" },
                { "{\"version\": 2, \"binding\": []}", -EBADMSG, "binding: expected an object" },
                { "{\"version\": 2, \"records\": []}", -EBADMSG, "records: expected an object" },
                { "{\"version\": 2, \"records\": {\"meta/k\": \"v\"}}", -EBADMSG, "records.meta/k: expected an object" },
                { "{\"version\": 2, \"journal_seq\": -1}", -EBADMSG, "journal_seq" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *dir = make_tmpdir(), *err = NULL, *path = NULL;
                Store *s = NULL;
                int r;

                write_text(dir, "state.json", cases[i].text);
                path = path_join(dir, "state.json");
                r = store_file_open(dir, true, &s, &err);
                ck_assert_msg(r == cases[i].error, "case %zu: %d", i, r);
                ck_assert_ptr_null(s);
                ck_assert_ptr_nonnull(err);
                /* The message names the file. */
                ck_assert_msg(startswith(err, path), "case %zu: %s", i, err);
                ck_assert_msg(strstr(err, cases[i].needle), "case %zu: %s", i, err);
                /* Read-only too. */
                ck_assert_int_eq(store_file_open(dir, false, &s, NULL), cases[i].error);
                rm_rf(dir);
        }
}
END_TEST

/* A snapshot is read member by member (load_snapshot_streamed) whatever
 * the order and spacing of its members; one the walk does not take (a
 * repeated member) is read as a whole tree, where the last "records"
 * wins, as before the walk. */
START_TEST(test_snapshot_member_order) {
        _cleanup_free_ char *dir = make_tmpdir();
        _cleanup_(json_object_putp) json_object *o = NULL;
        Store *s = NULL;

        write_text(dir, "state.json",
                   "\n{ \"records\" :{\"meta/a\":{\"value\":\"1\"} ,\n \"meta/b\": {\"value\": \"2\"}},"
                   "\"other\": [1, {\"x\": null}], \"journal_seq\": 7,"
                   " \"binding\": {\"account_id\": \"" ACCOUNT "\"}, \"version\": 2 }\n\n");
        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 3);
        ck_assert_str_eq(rec(o, "meta/a"), "{\"value\":\"1\"}");
        ck_assert_str_eq(rec(o, "meta/b"), "{\"value\":\"2\"}");
        ck_assert_ptr_nonnull(strstr(rec(o, "binding"), ACCOUNT));
        s = store_free(s);
        json_object_put(TAKE_PTR(o));

        write_text(dir, "state.json",
                   "{\"version\": 2, \"records\": {\"meta/a\": {\"value\": \"1\"}},"
                   " \"records\": {\"meta/c\": {\"value\": \"3\"}}}");
        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 1);
        ck_assert_str_eq(rec(o, "meta/c"), "{\"value\":\"3\"}");
        s = store_free(s);
        rm_rf(dir);
}
END_TEST

/* A writer keeps only what the journal changed since state.json (the
 * records state.json holds are read back from it): its own load, and a
 * compaction, merge the two in key order — deletes, replacements and
 * new keys on either side of the file's — and agree with a reader's
 * load. A state.json not in key order (an older writer's) is kept
 * whole instead. */
static void assert_same_records(Store *writer, const char *dir) {
        _cleanup_(json_object_putp) json_object *w = records_of(writer), *r = NULL;
        const char *prev = NULL;
        Store *t = NULL;

        ck_assert_int_eq(store_file_open(dir, false, &t, NULL), 0);
        r = records_of(t);
        t = store_free(t);

        ck_assert_str_eq(json_object_to_json_string(w), json_object_to_json_string(r));
        /* In key order, as store.h promises. */
        json_object_object_foreach(w, k, v) {
                (void) v;
                ck_assert_msg(!prev || strcmp(prev, k) < 0, "%s after %s", k, prev);
                prev = k;
        }
}

START_TEST(test_writer_reads_back) {
        _cleanup_free_ char *dir = make_tmpdir(), *c2 = kv_record("c", "22");
        _cleanup_(json_object_putp) json_object *o = NULL;
        Store *s = NULL;
        StoreFileStats st;
        char key[64], val[2100];

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        commit1(s, "binding", BINDING);
        for (char c = 'b'; c <= 'e'; c++) {
                _cleanup_free_ char *v = NULL;
                char name[2] = { c, 0 };

                snprintf(key, sizeof key, "resource/KVNamespace/%c", c);
                v = kv_record(name, "1");
                commit1(s, key, v);
        }
        s = store_free(s);                 /* compacted: state.json in key order */
        ck_assert_int_eq(file_size(dir, "state.journal"), 0);

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        commit1(s, "resource/KVNamespace/b", NULL);
        commit1(s, "resource/KVNamespace/c", c2);
        commit1(s, "intent/KVNamespace/a", "{\"value\":\"before all\"}");
        commit1(s, "resource/KVNamespace/cc", "{\"value\":\"between\"}");
        commit1(s, "resource/Worker/z", "{\"value\":\"after all\"}");
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 7);
        ck_assert_ptr_null(rec(o, "resource/KVNamespace/b"));
        ck_assert_str_eq(rec(o, "resource/KVNamespace/c"), c2);
        ck_assert_str_eq(rec(o, "resource/Worker/z"), "{\"value\":\"after all\"}");
        assert_same_records(s, dir);

        /* A compaction while open reads the old state.json back. */
        for (unsigned i = 0; i < 600; i++) {
                snprintf(key, sizeof key, "meta/k%u", i % 50);
                snprintf(val, sizeof val, "{\"value\":\"%u %02000u\"}", i, i);
                commit1(s, key, val);
        }
        ck_assert_int_eq(store_file_stats(s, &st), 0);
        ck_assert_uint_ge(st.compactions, 1);
        commit1(s, "resource/KVNamespace/d", NULL);
        json_object_put(TAKE_PTR(o));
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 6 + 50);
        ck_assert_ptr_null(rec(o, "resource/KVNamespace/b"));
        ck_assert_ptr_null(rec(o, "resource/KVNamespace/d"));
        ck_assert_str_eq(rec(o, "resource/KVNamespace/c"), c2);
        assert_same_records(s, dir);
        s = store_free(s);
        json_object_put(TAKE_PTR(o));

        /* Out of key order: kept whole, and the same answers. */
        write_text(dir, "state.journal", "");
        write_text(dir, "state.json",
                   "{\"version\": 2, \"binding\": " BINDING ", \"records\": {\"meta/b\": {\"value\": \"2\"},"
                   " \"meta/a\": {\"value\": \"1\"}, \"meta/c\": {\"value\": \"3\"}}, \"journal_seq\": 0}");
        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        commit1(s, "meta/a", NULL);
        commit1(s, "meta/d", "{\"value\":\"4\"}");
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 4);
        ck_assert_ptr_null(rec(o, "meta/a"));
        ck_assert_str_eq(rec(o, "meta/b"), "{\"value\":\"2\"}");
        assert_same_records(s, dir);
        s = store_free(s);
        rm_rf(dir);
}
END_TEST

/* A writer keeps no record text after a commit, nor after loading the
 * journal: only where the text is in state.journal, read back when
 * every record is needed (load, compaction). A reader keeps the texts
 * (a writer may empty the journal under it). */
START_TEST(test_writer_keeps_no_texts) {
        _cleanup_free_ char *dir = make_tmpdir();
        _cleanup_(json_object_putp) json_object *o = NULL;
        Store *s = NULL, *t = NULL;
        StoreFileStats st;
        char key[64];

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        commit1(s, "binding", BINDING);
        for (unsigned i = 0; i < 100; i++) {
                _cleanup_free_ char *v = NULL;
                StoreChange c[2];

                snprintf(key, sizeof key, "resource/KVNamespace/k%03u", i);
                v = kv_record(key + 21, "id");
                c[0] = (StoreChange) { .key = key, .value = v };
                c[1] = (StoreChange) { .key = "meta/m", .value = i % 2 ? "{\"value\":\"odd\"}" : "{\"value\":\"even\"}" };
                ck_assert_int_eq(store_commit(s, c, 2, NULL), 0);
        }
        commit1(s, "resource/KVNamespace/k050", NULL);
        ck_assert_int_eq(store_file_stats(s, &st), 0);
        ck_assert_uint_eq(st.compactions, 0);
        ck_assert_uint_eq(st.texts_resident, strlen(BINDING));
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 1 + 99 + 1);
        ck_assert_str_eq(rec(o, "meta/m"), "{\"value\":\"odd\"}");
        ck_assert_ptr_null(rec(o, "resource/KVNamespace/k050"));
        {
                _cleanup_free_ char *want = kv_record("k099", "id");

                ck_assert_str_eq(rec(o, "resource/KVNamespace/k099"), want);
        }
        assert_same_records(s, dir);

        s = store_free(s);

        /* Loaded from the journal (a kill -9 left 20 batches there). */
        crash_after(dir, 20);
        ck_assert_int_gt(file_size(dir, "state.journal"), 0);
        ck_assert_int_eq(store_file_open(dir, false, &t, NULL), 0);
        ck_assert_int_eq(store_file_stats(t, &st), 0);
        ck_assert_uint_gt(st.texts_resident, 100 * 50);
        t = store_free(t);
        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(store_file_stats(s, &st), 0);
        ck_assert_uint_eq(st.compactions, 0);
        ck_assert_uint_eq(st.texts_resident, strlen(BINDING));
        json_object_put(TAKE_PTR(o));
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 1 + 99 + 1 + 20);
        {
                _cleanup_free_ char *want = kv_record("k19", "id");

                ck_assert_str_eq(rec(o, "resource/KVNamespace/k19"), want);
        }
        assert_same_records(s, dir);
        s = store_free(s);
        rm_rf(dir);
}
END_TEST

/* state.json is read through a 64 KiB window, never whole: records
 * that straddle windows, and one three windows long, come back exact,
 * to a writer (merged with its journal) and to a reader. */
START_TEST(test_snapshot_read_in_windows) {
        _cleanup_free_ char *dir = make_tmpdir(), *big = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        Store *s = NULL;
        char key[64], val[1100];
        size_t n = 150 * 1024;

        big = malloc(n + 32);
        ck_assert_ptr_nonnull(big);
        strcpy(big, "{\"value\":\"");
        memset(big + 10, 'x', n);
        strcpy(big + 10 + n, "\"}");
        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        commit1(s, "binding", BINDING);
        for (unsigned i = 0; i < 300; i++) {
                snprintf(key, sizeof key, "meta/k%03u", i);
                snprintf(val, sizeof val, "{\"value\":\"%u %01000u\"}", i, i);
                commit1(s, key, val);
        }
        commit1(s, "meta/k150x", big);
        s = store_free(s);                 /* compacted: 450 KB of state.json */
        ck_assert_int_gt(file_size(dir, "state.json"), 400 * 1024);
        ck_assert_int_eq(file_size(dir, "state.journal"), 0);

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        commit1(s, "meta/k007", NULL);
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 1 + 300 - 1 + 1);
        ck_assert_str_eq(rec(o, "meta/k150x"), big);
        snprintf(val, sizeof val, "{\"value\":\"%u %01000u\"}", 299, 299);
        ck_assert_str_eq(rec(o, "meta/k299"), val);
        ck_assert_ptr_null(rec(o, "meta/k007"));
        assert_same_records(s, dir);
        s = store_free(s);
        rm_rf(dir);
}
END_TEST

/* state.json removed or replaced under a writer (by hand, by a restore
 * tool): the writer reads its records back through the file it loaded,
 * and its next compaction writes them all again. */
START_TEST(test_snapshot_gone_under_writer) {
        _cleanup_free_ char *dir = make_tmpdir(), *snap = path_join(dir, "state.json");
        _cleanup_(json_object_putp) json_object *o = NULL;
        Store *s = NULL;
        StoreFileStats st;
        char key[64], val[2100];

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        commit1(s, "binding", BINDING);
        for (char c = 'b'; c <= 'e'; c++) {
                _cleanup_free_ char *v = NULL;
                char name[2] = { c, 0 };

                snprintf(key, sizeof key, "resource/KVNamespace/%c", c);
                v = kv_record(name, "1");
                commit1(s, key, v);
        }
        s = store_free(s);                 /* compacted: everything in state.json */

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        commit1(s, "resource/KVNamespace/c", NULL);
        ck_assert_int_eq(unlink(snap), 0);
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 4);      /* binding, b, d, e */
        ck_assert_ptr_nonnull(rec(o, "resource/KVNamespace/e"));
        json_object_put(TAKE_PTR(o));

        /* Another file put in its place changes nothing the writer reads. */
        write_text(dir, "state.json", "{\"version\": 2, \"records\": {}}");
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 4);
        json_object_put(TAKE_PTR(o));

        for (unsigned i = 0; i < 600; i++) {
                snprintf(key, sizeof key, "meta/k%u", i % 50);
                snprintf(val, sizeof val, "{\"value\":\"%u %02000u\"}", i, i);
                commit1(s, key, val);
        }
        ck_assert_int_eq(store_file_stats(s, &st), 0);
        ck_assert_uint_ge(st.compactions, 1);
        assert_same_records(s, dir);       /* state.json holds them all again */
        s = store_free(s);

        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        o = records_of(s);
        ck_assert_int_eq(json_object_object_length(o), 4 + 50);
        ck_assert_ptr_nonnull(rec(o, "resource/KVNamespace/b"));
        ck_assert_ptr_null(rec(o, "resource/KVNamespace/c"));
        s = store_free(s);
        rm_rf(dir);
}
END_TEST

/* A record the store holds but the ledger cannot read: refused, naming
 * the directory, the key and the field. */
START_TEST(test_bad_record_named) {
        _cleanup_free_ char *dir = make_tmpdir(), *err = NULL;
        _cleanup_(ledger_freep) Ledger *l = NULL;
        Store *s = NULL;

        write_text(dir, "state.json", "{\"version\": 2, \"records\": {\"resource/Worker/x\": {\"kind\": \"Worker\","
                                      " \"name\": \"x\", \"ownership\": \"created\", \"ledger\": {\"crons\": 5}}}}");
        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        ck_assert_int_eq(ledger_load(s, &l, &err), -EBADMSG);
        ck_assert_ptr_nonnull(err);
        ck_assert_msg(startswith(err, dir), "%s", err);
        ck_assert_msg(strstr(err, "resource/Worker/x: ledger.crons: expected an array"), "%s", err);
        s = store_free(s);
        rm_rf(dir);
}
END_TEST

START_TEST(test_unreadable_and_oversize) {
        _cleanup_free_ char *dir = make_tmpdir(), *path = NULL, *err = NULL;
        Store *s = NULL;
        int fd;

        path = path_join(dir, "state.json");
        /* A directory where the file should be: an error, not "fresh". */
        ck_assert_int_eq(mkdir(path, 0700), 0);
        ck_assert_int_lt(store_file_open(dir, false, &s, &err), 0);
        ck_assert_ptr_nonnull(strstr(err, path));
        ck_assert_int_eq(rmdir(path), 0);
        err = mfree(err);

        /* Over the size cap (sparse): the snapshot, then the journal. */
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t) STORE_FILE_MAX_SIZE + 1), 0);
        close(fd);
        ck_assert_int_eq(store_file_open(dir, false, &s, &err), -EFBIG);
        ck_assert_ptr_nonnull(strstr(err, path));
        ck_assert_int_eq(unlink(path), 0);
        err = mfree(err);
        free(path);
        path = path_join(dir, "state.journal");
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t) STORE_FILE_MAX_SIZE + 1), 0);
        close(fd);
        ck_assert_int_eq(store_file_open(dir, false, &s, &err), -EFBIG);
        ck_assert_ptr_nonnull(strstr(err, path));
        rm_rf(dir);
}
END_TEST

/* A kill -9 mid-write leaves state.json.tmp.PID: removed at the next
 * locked open, and state.json itself untouched. */
START_TEST(test_stale_temporaries_removed) {
        _cleanup_free_ char *dir = make_tmpdir(), *t1 = NULL, *t2 = NULL, *other = NULL;
        Store *s = NULL;

        write_text(dir, "state.json.tmp.4242", "{\"version\": 1, \"resou");
        write_text(dir, "hmac.key.tmp.77", "0123");
        write_text(dir, "notes.txt", "keep me");
        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);     /* read-only: leaves them */
        s = store_free(s);
        t1 = path_join(dir, "state.json.tmp.4242");
        t2 = path_join(dir, "hmac.key.tmp.77");
        other = path_join(dir, "notes.txt");
        ck_assert_int_eq(access(t1, F_OK), 0);
        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(access(t1, F_OK), -1);
        ck_assert_int_eq(access(t2, F_OK), -1);
        ck_assert_int_eq(access(other, F_OK), 0);
        s = store_free(s);
        rm_rf(dir);
}
END_TEST

START_TEST(test_hmac_key) {
        _cleanup_free_ char *dir = make_tmpdir(), *dir2 = make_tmpdir(), *keyp = NULL, *err = NULL;
        uint8_t a[STORE_HMAC_KEY_SIZE], b[STORE_HMAC_KEY_SIZE];
        Store *s = NULL;
        struct stat st;

        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        ck_assert_int_eq(store_hmac_key(s, a, NULL), -ENOKEY);
        s = store_free(s);

        /* Made on first use by a writer: 32 bytes, 0600, stable. */
        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(store_hmac_key(s, a, NULL), 0);
        ck_assert_int_eq(store_hmac_key(s, b, NULL), 0);
        ck_assert(memcmp(a, b, sizeof a) == 0);
        s = store_free(s);
        keyp = path_join(dir, "hmac.key");
        ck_assert_int_eq(stat(keyp, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(st.st_size, 32);
        ck_assert_int_eq(store_file_open(dir, false, &s, NULL), 0);
        memset(b, 0, sizeof b);
        ck_assert_int_eq(store_hmac_key(s, b, NULL), 0);
        ck_assert(memcmp(a, b, sizeof a) == 0);
        s = store_free(s);

        /* Another install: another key. */
        ck_assert_int_eq(store_file_open(dir2, true, &s, NULL), 0);
        ck_assert_int_eq(store_hmac_key(s, b, NULL), 0);
        ck_assert(memcmp(a, b, sizeof a) != 0);
        s = store_free(s);

        /* A short key is an error naming the file, never replaced. */
        write_text(dir2, "hmac.key", "short");
        ck_assert_int_eq(store_file_open(dir2, true, &s, NULL), 0);
        ck_assert_int_eq(store_hmac_key(s, b, &err), -EBADMSG);
        ck_assert_ptr_nonnull(err);
        ck_assert_ptr_nonnull(strstr(err, "hmac.key: 5 bytes, expected 32"));
        s = store_free(s);
        ck_assert_int_eq(file_size(dir2, "hmac.key"), 5);
        rm_rf(dir);
        rm_rf(dir2);
}
END_TEST

/* What one commit of one changed resource costs, as counted by the
 * store, with n resources held. */
static void commit_cost(unsigned n, double *ret_bytes, double *ret_fsyncs) {
        _cleanup_free_ char *dir = make_tmpdir();
        _cleanup_(ledger_freep) Ledger *l = ledger_new();
        StoreFileStats before, after;
        Store *s = NULL;
        char doc[32];
        const unsigned rounds = 20;

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(ledger_bind(l, ACCOUNT, API_URL), 0);
        for (unsigned i = 0; i < n; i++) {
                LedgerEntry *e;

                snprintf(doc, sizeof doc, "w%05u", i);
                e = ledger_ensure(l, RESOURCE_WORKER, doc);
                e->name = strdup(doc);
                e->id = strdup(doc);
                e->etag = strdup("etag-00000");
                e->digest = strdup("0000000000000000000000000000000000000000000000000000000000000000");
                ledger_touch(l, e);
        }
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        s = store_free(s);                      /* folded into the snapshot */
        l = ledger_free(l);
        ck_assert_int_eq(file_size(dir, "state.journal"), 0);

        ck_assert_int_eq(store_file_open(dir, true, &s, NULL), 0);
        ck_assert_int_eq(ledger_load(s, &l, NULL), 0);
        ck_assert_uint_eq(l->n_entries, n);
        ck_assert_int_eq(store_file_stats(s, &before), 0);
        for (unsigned k = 0; k < rounds; k++) {
                LedgerEntry *e;

                snprintf(doc, sizeof doc, "w%05u", (k * 7919) % n);
                e = ledger_find(l, RESOURCE_WORKER, doc);
                free(e->etag);
                ck_assert_int_ge(asprintf(&e->etag, "etag-%05u", k + 1), 0);
                ledger_touch(l, e);
                ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        }
        ck_assert_int_eq(store_file_stats(s, &after), 0);
        ck_assert_uint_eq(after.commits - before.commits, rounds);
        ck_assert_uint_eq(after.compactions, before.compactions);
        *ret_bytes = (double) (after.bytes_appended - before.bytes_appended) / rounds;
        *ret_fsyncs = (double) (after.fsyncs - before.fsyncs) / rounds;
        s = store_free(s);
        rm_rf(dir);
}

START_TEST(test_commit_cost_flat) {
        double b100, f100, b2000, f2000;

        commit_cost(100, &b100, &f100);
        commit_cost(2000, &b2000, &f2000);
        printf("bytes per commit: %.0f at 100 resources, %.0f at 2000; fsyncs per commit: %.2f, %.2f\n", b100, b2000,
               f100, f2000);
        /* One record per commit: a few hundred bytes, whatever is held. */
        ck_assert_msg(b2000 <= b100 * 1.05, "bytes per commit grew: %.0f -> %.0f", b100, b2000);
        ck_assert_msg(b100 < 1024, "bytes per commit: %.0f", b100);
        /* One fdatasync per commit (and the journal's directory entry
         * once). */
        ck_assert_msg(f2000 <= 1.1 && f100 <= 1.1, "fsyncs per commit: %.2f, %.2f", f100, f2000);
}
END_TEST

static Suite *store_file_suite(void) {
        Suite *s = suite_create("store-file");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_writer_reads_back);
        tcase_add_test(tc, test_snapshot_read_in_windows);
        tcase_add_test(tc, test_writer_keeps_no_texts);
        tcase_add_test(tc, test_snapshot_gone_under_writer);
        tcase_add_test(tc, test_torn_last_line);
        tcase_add_test(tc, test_corrupt_middle_line);
        tcase_add_test(tc, test_compaction);
        tcase_add_test(tc, test_lock_exclusion);
        tcase_add_test(tc, test_read_only);
        tcase_add_test(tc, test_v1_lifted);
        tcase_add_test(tc, test_corrupt_snapshot_refused);
        tcase_add_test(tc, test_bad_record_named);
        tcase_add_test(tc, test_snapshot_member_order);
        tcase_add_test(tc, test_unreadable_and_oversize);
        tcase_add_test(tc, test_stale_temporaries_removed);
        tcase_add_test(tc, test_hmac_key);
        tcase_add_test(tc, test_commit_cost_flat);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(store_file_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
