/* test-ledger.c: the ledger alone (ledger.h) — the codec round trip of
 * every field, the batches of changes, the indexes, the account binding,
 * bad records refused naming key and field. The store is an in-memory
 * fake (a Store over a json-c object) that records each batch. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "ledger.h"
#include "util.h"

#define ACCOUNT "0123456789abcdef0123456789abcdef"
#define API_URL "https://api.cloudflare.com/client/v4"
#define FP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- a fake store ---- */

typedef struct FakeStore {
        json_object *records;       /* key → text */
        unsigned commits;
        size_t last_n;              /* changes in the last batch */
        json_object *last;          /* the last batch: key → text or null */
        int fail;                   /* commit answers this when < 0 */
        int fail_load;              /* load answers this when < 0 */
        unsigned loads;
} FakeStore;

static int fake_load(void *impl, store_record_fn fn, void *userdata, char **reterr) {
        FakeStore *f = impl;

        f->loads++;
        if (f->fail_load < 0) {
                if (reterr)
                        *reterr = strdup("fake: unreachable");
                return f->fail_load;
        }
        json_object_object_foreach(f->records, k, v) {
                int r = fn(k, json_object_get_string(v), userdata);

                if (r < 0)
                        return r;
        }
        return 0;
}

static int fake_commit(void *impl, const StoreChange *c, size_t n, char **reterr) {
        FakeStore *f = impl;

        if (f->fail < 0) {
                if (reterr)
                        *reterr = strdup("fake: fenced");
                return f->fail;
        }
        json_object_put(f->last);
        f->last = json_object_new_object();
        for (size_t i = 0; i < n; i++) {
                json_object_object_add(f->last, c[i].key, c[i].value ? json_object_new_string(c[i].value) : NULL);
                if (c[i].value)
                        json_object_object_add(f->records, c[i].key, json_object_new_string(c[i].value));
                else
                        json_object_object_del(f->records, c[i].key);
        }
        f->commits++;
        f->last_n = n;
        return 0;
}

static int fake_hmac_key(void *impl, uint8_t ret[static STORE_HMAC_KEY_SIZE], char **reterr) {
        (void) impl;
        (void) reterr;
        memset(ret, 7, STORE_HMAC_KEY_SIZE);
        return 0;
}

static const char *fake_describe(void *impl) {
        (void) impl;
        return "fake";
}

static void fake_free(void *impl) {
        FakeStore *f = impl;

        json_object_put(f->records);
        json_object_put(f->last);
        free(f);
}

static const StoreOps fake_ops = {
        .name = "fake",
        .load = fake_load,
        .commit = fake_commit,
        .hmac_key = fake_hmac_key,
        .describe = fake_describe,
        .free = fake_free,
};

static Store *fake_new(FakeStore **ret) {
        Store *s = calloc(1, sizeof(Store));
        FakeStore *f = calloc(1, sizeof(FakeStore));

        ck_assert_ptr_nonnull(s);
        ck_assert_ptr_nonnull(f);
        f->records = json_object_new_object();
        s->ops = &fake_ops;
        s->impl = f;
        s->writable = true;
        *ret = f;
        return s;
}

static bool batch_has(const FakeStore *f, const char *key, bool put) {
        json_object *v;

        if (!f->last || !json_object_object_get_ex(f->last, key, &v))
                return false;
        return put ? v != NULL : v == NULL;
}

/* ---- a ledger with every field set ---- */

/* A list of one or two strings (b NULL: one). */
static char **sv(const char *a, const char *b) {
        char **l = NULL;

        ck_assert_int_eq(strv_extend(&l, a), 0);
        if (b)
                ck_assert_int_eq(strv_extend(&l, b), 0);
        return l;
}

static LedgerEntry *full_worker(Ledger *l) {
        LedgerEntry *e = ledger_ensure(l, RESOURCE_WORKER, "api");

        ck_assert_ptr_nonnull(e);
        e->name = strdup("api-prod");
        e->id = strdup("api-prod");
        e->digest = strdup("d-worker");
        e->deletion = DELETION_DELETE;
        e->drift = DRIFT_REPORT;
        e->adopted = true;
        e->etag = strdup("etag-1");
        e->modified_on = strdup("2026-12-07T05:00:00Z");
        e->migration_tags = sv("v1", NULL);
        e->migration_tag = strdup("v2");
        e->do_classes = sv("Counter", "Room");
        e->crons = sv("*/5 * * * *", NULL);
        e->crons_set = true;
        e->subdomain = 1;
        e->consumers = sv("jobs", NULL);
        e->binding_names = sv("CACHE", "STAGE");
        ck_assert_int_eq(ledger_entry_set_secret(e, "API_KEY", FP), 0);
        ck_assert_int_eq(ledger_entry_set_secret(e, "UNREAD", NULL), 0);
        ledger_touch(l, e);
        return e;
}

static void fill(Ledger *l) {
        LedgerEntry *e;

        ck_assert_int_eq(ledger_bind(l, ACCOUNT, API_URL), 0);
        full_worker(l);
        e = ledger_ensure(l, RESOURCE_R2_BUCKET, "uploads");
        e->name = strdup("uploads");
        e->id = strdup("uploads");
        e->jurisdiction = strdup("eu");
        ledger_touch(l, e);
        e = ledger_ensure(l, RESOURCE_SECRETS_STORE_SECRET, "token");
        e->name = strdup("api-token");
        e->id = strdup("sec-1");
        e->store_id = strdup("store-1");
        e->hmac = strdup(FP);
        e->crons_set = true;            /* an empty, set list */
        e->crons = calloc(1, sizeof(char *));
        ledger_touch(l, e);
        ck_assert_int_eq(ledger_add_intent(l, RESOURCE_KV_NAMESPACE, "my sessions", "run-7"), 0);
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", "123"), 0);
        ck_assert_int_eq(ledger_set_run_id(l, "run-7"), 0);
}

static void assert_strv(char * const *l, const char *a, const char *b) {
        _cleanup_strv_free_ char **want = sv(a, b);

        ck_assert_msg(strv_equal(l, want), "lists differ");
}

START_TEST(test_codec_round_trip) {
        _cleanup_(ledger_freep) Ledger *l = ledger_new(), *m = ledger_new();
        StoreChange *c = NULL;
        size_t n = 0;
        const LedgerEntry *e;
        const LedgerIntent *in;

        fill(l);
        ck_assert_int_eq(ledger_changes(l, 1000, &c, &n), 0);
        ck_assert_uint_eq(n, 6);        /* binding, 3 resources, 1 intent, 1 meta */
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *err = NULL;

                ck_assert_ptr_nonnull(c[i].value);
                ck_assert_msg(store_key_is_valid(c[i].key), "%s", c[i].key);
                ck_assert_msg(ledger_load_record(m, c[i].key, c[i].value, &err) == 0, "%s: %s", c[i].key, strna(err));
        }
        ck_assert(!ledger_has_changes(m));

        ck_assert_str_eq(ledger_account_id(m), ACCOUNT);
        ck_assert_str_eq(ledger_api_url(m), API_URL);
        ck_assert_str_eq(ledger_get_meta(m, "engine.audit.last"), "123");

        e = ledger_find(m, RESOURCE_WORKER, "api");
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(e->name, "api-prod");
        ck_assert_str_eq(e->id, "api-prod");
        ck_assert_str_eq(e->digest, "d-worker");
        ck_assert_int_eq(e->deletion, DELETION_DELETE);
        ck_assert_int_eq(e->drift, DRIFT_REPORT);
        ck_assert(e->adopted);
        ck_assert_str_eq(e->etag, "etag-1");
        ck_assert_str_eq(e->modified_on, "2026-12-07T05:00:00Z");
        ck_assert_str_eq(e->migration_tag, "v2");
        assert_strv(e->migration_tags, "v1", "v2");
        assert_strv(e->do_classes, "Counter", "Room");
        ck_assert(e->crons_set);
        assert_strv(e->crons, "*/5 * * * *", NULL);
        ck_assert_int_eq(e->subdomain, 1);
        assert_strv(e->consumers, "jobs", NULL);
        assert_strv(e->binding_names, "CACHE", "STAGE");
        ck_assert_str_eq(ledger_entry_secret(e, "API_KEY")->hmac, FP);
        ck_assert_ptr_nonnull(ledger_entry_secret(e, "UNREAD"));
        ck_assert_ptr_null(ledger_entry_secret(e, "UNREAD")->hmac);
        ck_assert_str_eq(e->run_id, "run-7");
        ck_assert_uint_eq(e->created_usec, 1000);
        ck_assert_uint_eq(e->updated_usec, 1000);

        e = ledger_find(m, RESOURCE_R2_BUCKET, "uploads");
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(e->jurisdiction, "eu");
        ck_assert(!e->adopted);
        ck_assert_int_eq(e->subdomain, -1);
        ck_assert(!e->crons_set);
        ck_assert_int_eq(e->deletion, DELETION_RETAIN);
        ck_assert_int_eq(e->drift, DRIFT_REPAIR);

        e = ledger_find(m, RESOURCE_SECRETS_STORE_SECRET, "token");
        ck_assert_str_eq(e->store_id, "store-1");
        ck_assert_str_eq(e->hmac, FP);
        ck_assert(e->crons_set);
        ck_assert_ptr_nonnull(e->crons);
        ck_assert_ptr_null(e->crons[0]);

        in = ledger_find_intent(m, RESOURCE_KV_NAMESPACE, "my sessions");
        ck_assert_ptr_nonnull(in);
        ck_assert_str_eq(in->run_id, "run-7");
        ck_assert_uint_eq(in->time_usec, 1000);

        /* Re-encoded: the same text, record by record. */
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *t = NULL;

                ck_assert_int_eq(ledger_encode_record(m, c[i].key, &t), 0);
                ck_assert_str_eq(t, c[i].value);
        }
        ledger_changes_free(c, n);
}
END_TEST

START_TEST(test_dirty_batches) {
        FakeStore *f;
        _cleanup_(store_freep) Store *s = fake_new(&f);
        _cleanup_(ledger_freep) Ledger *l = ledger_new(), *back = NULL;
        LedgerEntry *e;

        /* Never bound: nothing may be committed. */
        ck_assert_ptr_nonnull(ledger_ensure(l, RESOURCE_KV_NAMESPACE, "x"));
        ck_assert_int_eq(ledger_commit(l, s, NULL), -EDESTADDRREQ);
        ck_assert_int_eq(ledger_discard(l, s, NULL), 0);
        ck_assert_ptr_null(ledger_find(l, RESOURCE_KV_NAMESPACE, "x"));

        fill(l);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->commits, 1);
        ck_assert_uint_eq(f->last_n, 6);
        ck_assert(!ledger_has_changes(l));

        /* Nothing changed: no batch at all. */
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->commits, 1);
        /* Touched but equal: no batch either. */
        ledger_touch(l, ledger_find(l, RESOURCE_WORKER, "api"));
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", "123"), 0);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->commits, 1);

        /* One field of one entry: that record only. */
        e = ledger_find(l, RESOURCE_R2_BUCKET, "uploads");
        free(e->digest);
        e->digest = strdup("d2");
        ledger_touch(l, e);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->commits, 2);
        ck_assert_uint_eq(f->last_n, 1);
        ck_assert(batch_has(f, "resource/R2Bucket/uploads", true));

        /* An intent cleared, a resource forgotten, a meta value dropped,
         * one created: one batch of puts and deletes. */
        ck_assert_int_eq(ledger_remove_intent(l, RESOURCE_KV_NAMESPACE, "my sessions"), 0);
        ck_assert_int_eq(ledger_remove_intent(l, RESOURCE_KV_NAMESPACE, "my sessions"), -ENOENT);
        ck_assert_int_eq(ledger_remove(l, RESOURCE_SECRETS_STORE_SECRET, "token"), 0);
        ck_assert_int_eq(ledger_remove(l, RESOURCE_SECRETS_STORE_SECRET, "token"), -ENOENT);
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", NULL), 0);
        ck_assert_ptr_nonnull(ledger_ensure(l, RESOURCE_QUEUE, "jobs"));
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->last_n, 4);
        ck_assert(batch_has(f, "intent/KVNamespace/my%20sessions", false));
        ck_assert(batch_has(f, "resource/SecretsStoreSecret/token", false));
        ck_assert(batch_has(f, "meta/engine.audit.last", false));
        ck_assert(batch_has(f, "resource/Queue/jobs", true));

        /* Added then removed before a commit: nothing to write. */
        ck_assert_int_eq(ledger_add_intent(l, RESOURCE_D1_DATABASE, "db", NULL), 0);
        ck_assert_int_eq(ledger_remove_intent(l, RESOURCE_D1_DATABASE, "db"), 0);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->commits, 3);

        /* What the store holds loads back as the ledger. */
        ck_assert_int_eq(ledger_load(s, &back, NULL), 0);
        ck_assert_ptr_nonnull(ledger_find(back, RESOURCE_QUEUE, "jobs"));
        ck_assert_ptr_null(ledger_find(back, RESOURCE_SECRETS_STORE_SECRET, "token"));
        ck_assert_str_eq(ledger_find(back, RESOURCE_R2_BUCKET, "uploads")->digest, "d2");
        ck_assert_ptr_null(ledger_find_intent(back, RESOURCE_KV_NAMESPACE, "my sessions"));
        ck_assert_ptr_null(ledger_get_meta(back, "engine.audit.last"));
}
END_TEST

/* A failed commit forgets nothing (the changes go with the next one); a
 * discard puts the committed records back. */
START_TEST(test_failed_commit_and_discard) {
        FakeStore *f;
        _cleanup_(store_freep) Store *s = fake_new(&f);
        _cleanup_(ledger_freep) Ledger *l = ledger_new();
        _cleanup_free_ char *err = NULL;
        LedgerEntry *e;

        fill(l);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        e = ledger_find(l, RESOURCE_WORKER, "api");
        free(e->etag);
        e->etag = strdup("etag-2");
        ledger_touch(l, e);
        f->fail = -ESTALE;
        ck_assert_int_eq(ledger_commit(l, s, &err), -ESTALE);
        ck_assert_str_eq(err, "fake: fenced");
        ck_assert(ledger_has_changes(l));
        f->fail = 0;
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert(batch_has(f, "resource/Worker/api", true));

        /* A dry run's observations, then discarded. */
        e = ledger_find(l, RESOURCE_WORKER, "api");
        free(e->etag);
        e->etag = strdup("etag-dry");
        free(e->name);
        e->name = strdup("renamed");
        ledger_touch(l, e);
        ck_assert_ptr_nonnull(ledger_find_by_name(l, RESOURCE_WORKER, "renamed"));
        ck_assert_ptr_nonnull(ledger_ensure(l, RESOURCE_KV_NAMESPACE, "new"));
        ck_assert_int_eq(ledger_remove(l, RESOURCE_R2_BUCKET, "uploads"), 0);
        ck_assert_int_eq(ledger_add_intent(l, RESOURCE_QUEUE, "q", "run-8"), 0);
        ck_assert_int_eq(ledger_remove_intent(l, RESOURCE_KV_NAMESPACE, "my sessions"), 0);
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", "999"), 0);
        ck_assert_int_eq(ledger_discard(l, s, NULL), 0);
        ck_assert(!ledger_has_changes(l));
        e = ledger_find(l, RESOURCE_WORKER, "api");
        ck_assert_str_eq(e->etag, "etag-2");
        ck_assert_str_eq(e->name, "api-prod");
        ck_assert_ptr_null(ledger_find_by_name(l, RESOURCE_WORKER, "renamed"));
        ck_assert_ptr_eq(ledger_find_by_name(l, RESOURCE_WORKER, "api-prod"), e);
        ck_assert_ptr_null(ledger_find(l, RESOURCE_KV_NAMESPACE, "new"));
        ck_assert_ptr_nonnull(ledger_find(l, RESOURCE_R2_BUCKET, "uploads"));
        ck_assert_ptr_null(ledger_find_intent(l, RESOURCE_QUEUE, "q"));
        ck_assert_ptr_nonnull(ledger_find_intent(l, RESOURCE_KV_NAMESPACE, "my sessions"));
        ck_assert_str_eq(ledger_get_meta(l, "engine.audit.last"), "123");
        ck_assert_uint_eq(l->n_entries, 3);
}
END_TEST

/* The ledger keeps digests of the resources and intents it committed,
 * not the texts: a discard reads those back from the store, and only
 * when a changed one had been committed. */
START_TEST(test_discard_reads_the_store) {
        FakeStore *f;
        _cleanup_(store_freep) Store *s = fake_new(&f);
        _cleanup_(ledger_freep) Ledger *l = ledger_new();
        _cleanup_free_ char *err = NULL;
        LedgerEntry *e;

        fill(l);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);

        /* Only never-committed records changed: the store is not read. */
        ck_assert_ptr_nonnull(ledger_ensure(l, RESOURCE_KV_NAMESPACE, "new"));
        ck_assert_int_eq(ledger_discard(l, s, NULL), 0);
        ck_assert_uint_eq(f->loads, 0);
        ck_assert_ptr_null(ledger_find(l, RESOURCE_KV_NAMESPACE, "new"));

        /* A committed record changed, the store unreadable: the error,
         * and the change stays marked for the next commit. */
        e = ledger_find(l, RESOURCE_WORKER, "api");
        free(e->etag);
        e->etag = strdup("etag-dry");
        ledger_touch(l, e);
        f->fail_load = -EIO;
        ck_assert_int_eq(ledger_discard(l, s, &err), -EIO);
        ck_assert_str_eq(err, "fake: unreachable");
        ck_assert(ledger_has_changes(l));
        ck_assert_str_eq(ledger_find(l, RESOURCE_WORKER, "api")->etag, "etag-dry");

        /* Readable again: the committed text comes back from the store. */
        f->fail_load = 0;
        ck_assert_int_eq(ledger_discard(l, s, NULL), 0);
        ck_assert_uint_eq(f->loads, 2);
        ck_assert(!ledger_has_changes(l));
        e = ledger_find(l, RESOURCE_WORKER, "api");
        ck_assert_str_ne(e->etag, "etag-dry");
        /* And it is what was committed: nothing to commit now. */
        ledger_touch(l, e);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->commits, 1);

        /* Meta values keep their committed value from their first
         * change to the commit (the binding its text): a discard of them
         * reads nothing back. */
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", "777"), 0);
        ck_assert_int_eq(ledger_discard(l, s, NULL), 0);
        ck_assert_uint_eq(f->loads, 2);
        ck_assert_str_eq(ledger_get_meta(l, "engine.audit.last"), "123");
}
END_TEST

/* A meta value changed twice, through a failed commit, and a new one:
 * a discard gives back what was committed, and only digests stay. */
START_TEST(test_meta_discard) {
        FakeStore *f;
        _cleanup_(store_freep) Store *s = fake_new(&f);
        _cleanup_(ledger_freep) Ledger *l = ledger_new();

        fill(l);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", "1"), 0);
        f->fail = -EIO;
        ck_assert_int_eq(ledger_commit(l, s, NULL), -EIO);
        f->fail = 0;
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", "2"), 0);
        ck_assert_int_eq(ledger_set_meta(l, "engine.new", "x"), 0);
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", NULL), 0);
        ck_assert_ptr_null(ledger_get_meta(l, "engine.audit.last"));
        ck_assert_int_eq(ledger_discard(l, s, NULL), 0);
        ck_assert_uint_eq(f->loads, 0);
        ck_assert(!ledger_has_changes(l));
        ck_assert_str_eq(ledger_get_meta(l, "engine.audit.last"), "123");
        ck_assert_ptr_null(ledger_get_meta(l, "engine.new"));
        ck_assert_uint_eq(lh_table_length(l->meta_undo), 0);

        /* Committed for real: the next discard keeps the new value. */
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", "456"), 0);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert(batch_has(f, "meta/engine.audit.last", true));
        ck_assert_uint_eq(lh_table_length(l->meta_undo), 0);
        ck_assert_int_eq(ledger_discard(l, s, NULL), 0);
        ck_assert_str_eq(ledger_get_meta(l, "engine.audit.last"), "456");
        /* And unchanged is what was committed: nothing to commit. */
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", "9"), 0);
        ck_assert_int_eq(ledger_set_meta(l, "engine.audit.last", "456"), 0);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->commits, 2);
}
END_TEST

/* A record's committed digest is its key's, whichever entry or intent
 * holds it: removed and put back (a discard), an entry or intent is
 * again what was committed, and a touch commits nothing. */
START_TEST(test_committed_follows_the_key) {
        FakeStore *f;
        _cleanup_(store_freep) Store *s = fake_new(&f);
        _cleanup_(ledger_freep) Ledger *l = ledger_new();
        LedgerEntry *e;

        fill(l);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->commits, 1);

        ck_assert_int_eq(ledger_remove(l, RESOURCE_WORKER, "api"), 0);
        ck_assert_int_eq(ledger_remove_intent(l, RESOURCE_KV_NAMESPACE, "my sessions"), 0);
        ck_assert_int_eq(ledger_discard(l, s, NULL), 0);
        e = ledger_find(l, RESOURCE_WORKER, "api");
        ck_assert_ptr_nonnull(e);
        ck_assert_ptr_nonnull(ledger_find_intent(l, RESOURCE_KV_NAMESPACE, "my sessions"));
        ledger_touch(l, e);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->commits, 1);

        /* Removed for good: the deletion is committed once. */
        ck_assert_int_eq(ledger_remove(l, RESOURCE_WORKER, "api"), 0);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_uint_eq(f->commits, 2);
        ck_assert(batch_has(f, "resource/Worker/api", false));
        ck_assert_ptr_null(ledger_find(l, RESOURCE_WORKER, "api"));

        /* A secret's name and fingerprint, replaced and removed. */
        e = ledger_ensure(l, RESOURCE_WORKER, "other");
        ck_assert_int_eq(ledger_entry_set_secret(e, "A", FP), 0);
        ck_assert_int_eq(ledger_entry_set_secret(e, "B", NULL), 0);
        ck_assert_int_eq(ledger_entry_set_secret(e, "A", "ff"), 0);
        ck_assert_str_eq(ledger_entry_secret(e, "A")->hmac, "ff");
        ck_assert_ptr_null(ledger_entry_secret(e, "B")->hmac);
        ck_assert_int_eq(ledger_entry_remove_secret(e, "A"), 0);
        ck_assert_ptr_null(ledger_entry_secret(e, "A"));
        ck_assert_str_eq(ledger_entry_secret(e, "B")->name, "B");
        ck_assert_str_eq(e->doc, "other");
}
END_TEST

/* Entries committed by one run share one copy of its id; a later run
 * stamps only what it changed, and the others keep theirs. */
START_TEST(test_run_ids_shared) {
        FakeStore *f;
        _cleanup_(store_freep) Store *s = fake_new(&f);
        _cleanup_(ledger_freep) Ledger *l = ledger_new(), *m = NULL;
        LedgerEntry *a, *b;

        ck_assert_int_eq(ledger_bind(l, ACCOUNT, API_URL), 0);
        ck_assert_int_eq(ledger_set_run_id(l, "run-1"), 0);
        a = ledger_ensure(l, RESOURCE_KV_NAMESPACE, "a");
        b = ledger_ensure(l, RESOURCE_KV_NAMESPACE, "b");
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_str_eq(a->run_id, "run-1");
        ck_assert_ptr_eq(a->run_id, b->run_id);
        ck_assert_uint_eq(l->run_ids.n, 1);

        ck_assert_int_eq(ledger_set_run_id(l, "run-2"), 0);
        a->adopted = true;
        ledger_touch(l, a);
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert_str_eq(a->run_id, "run-2");
        ck_assert_str_eq(b->run_id, "run-1");
        ck_assert_uint_eq(l->run_ids.n, 2);
        ck_assert_int_eq(ledger_remove(l, RESOURCE_KV_NAMESPACE, "b"), 0);
        ck_assert_uint_eq(l->run_ids.n, 1);         /* run-1's last reference went */

        /* Loaded: shared too. */
        ck_assert_int_eq(ledger_load(s, &m, NULL), 0);
        ck_assert_str_eq(ledger_find(m, RESOURCE_KV_NAMESPACE, "b")->run_id, "run-1");
        ck_assert_uint_eq(m->run_ids.n, 2);
}
END_TEST

START_TEST(test_index_lookups) {
        _cleanup_(ledger_freep) Ledger *l = ledger_new();
        char doc[32], name[32], id[32];
        LedgerEntry *e, *other;

        for (unsigned i = 0; i < 5000; i++) {
                snprintf(doc, sizeof doc, "doc-%u", i);
                snprintf(name, sizeof name, "name-%u", i);
                snprintf(id, sizeof id, "id-%u", i);
                e = ledger_ensure(l, i % 2 ? RESOURCE_KV_NAMESPACE : RESOURCE_WORKER, doc);
                ck_assert_ptr_nonnull(e);
                e->name = strdup(name);
                e->id = strdup(id);
                ledger_touch(l, e);
        }
        ck_assert_uint_eq(l->n_entries, 5000);
        /* Sorted by kind, then doc. */
        for (size_t i = 1; i < l->n_entries; i++)
                ck_assert(l->entries[i - 1]->kind < l->entries[i]->kind ||
                          (l->entries[i - 1]->kind == l->entries[i]->kind &&
                           strcmp(l->entries[i - 1]->doc, l->entries[i]->doc) < 0));
        e = ledger_find(l, RESOURCE_KV_NAMESPACE, "doc-4999");
        ck_assert_ptr_nonnull(e);
        ck_assert_ptr_null(ledger_find(l, RESOURCE_WORKER, "doc-4999"));
        ck_assert_ptr_eq(ledger_find_by_name(l, RESOURCE_KV_NAMESPACE, "name-4999"), e);
        ck_assert_ptr_eq(ledger_find_by_id(l, RESOURCE_KV_NAMESPACE, "id-4999"), e);
        ck_assert_ptr_null(ledger_find_by_id(l, RESOURCE_WORKER, "id-4999"));
        ck_assert_ptr_eq(ledger_ensure(l, RESOURCE_KV_NAMESPACE, "doc-4999"), e);

        /* Renamed: found under the new name only. */
        free(e->name);
        e->name = strdup("fresh");
        ledger_touch(l, e);
        ck_assert_ptr_eq(ledger_find_by_name(l, RESOURCE_KV_NAMESPACE, "fresh"), e);
        ck_assert_ptr_null(ledger_find_by_name(l, RESOURCE_KV_NAMESPACE, "name-4999"));

        /* Two entries with one name: the other one takes over when the
         * first goes. */
        other = ledger_ensure(l, RESOURCE_KV_NAMESPACE, "doc-twin");
        other->name = strdup("fresh");
        ledger_touch(l, other);
        ck_assert_ptr_eq(ledger_find_by_name(l, RESOURCE_KV_NAMESPACE, "fresh"), e);
        ck_assert_int_eq(ledger_remove(l, RESOURCE_KV_NAMESPACE, "doc-4999"), 0);
        ck_assert_ptr_eq(ledger_find_by_name(l, RESOURCE_KV_NAMESPACE, "fresh"), other);
        ck_assert_ptr_null(ledger_find_by_id(l, RESOURCE_KV_NAMESPACE, "id-4999"));
        ck_assert_ptr_null(ledger_find(l, RESOURCE_KV_NAMESPACE, "doc-4999"));

        /* Intents by kind and name. */
        ck_assert_int_eq(ledger_add_intent(l, RESOURCE_QUEUE, "jobs", "r1"), 0);
        ck_assert_int_eq(ledger_add_intent(l, RESOURCE_QUEUE, "jobs", "r2"), 0);
        ck_assert_uint_eq(l->n_intents, 1);
        ck_assert_str_eq(ledger_find_intent(l, RESOURCE_QUEUE, "jobs")->run_id, "r2");
        ck_assert_ptr_null(ledger_find_intent(l, RESOURCE_KV_NAMESPACE, "jobs"));
}
END_TEST

START_TEST(test_binding) {
        _cleanup_(ledger_freep) Ledger *l = ledger_new();

        ck_assert_ptr_null(ledger_account_id(l));
        ck_assert_int_eq(ledger_bind(l, ACCOUNT, API_URL "/"), 0);
        /* Same account, trailing slash aside. */
        ck_assert_int_eq(ledger_bind(l, ACCOUNT, API_URL), 0);
        /* A simulator's URL, or another account: refused, nothing changed. */
        ck_assert_int_eq(ledger_bind(l, ACCOUNT, "http://127.0.0.1:8788/client/v4"), -EXDEV);
        ck_assert_int_eq(ledger_bind(l, "ffffffffffffffffffffffffffffffff", API_URL), -EXDEV);
        ck_assert_str_eq(ledger_account_id(l), ACCOUNT);
        ck_assert_str_eq(ledger_api_url(l), API_URL "/");
}
END_TEST

START_TEST(test_bad_records) {
        static const struct {
                const char *key, *value, *needle;
        } cases[] = {
                { "thing/x", "{}", "unknown record type" },
                { "resource/Worker/x", "garbage", "not valid JSON" },
                { "resource/Worker/x", "[]", "expected a JSON object" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\"} 1", "trailing" },
                { "resource/Worker/x", "{\"name\": \"x\", \"ownership\": \"created\"}", "kind: missing" },
                { "resource/Nope/x", "{\"kind\": \"Nope\", \"name\": \"x\", \"ownership\": \"created\"}", "kind: unknown kind 'Nope'" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"ownership\": \"created\"}", "name: missing" },
                { "resource/Worker/y", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\"}", "key does not name" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"stolen\"}", "ownership: invalid" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"cf_id\": 7}", "cf_id: expected a string" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"deletion_policy\": \"shred\"}",
                  "deletion_policy: invalid" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"drift_policy\": \"x\"}",
                  "drift_policy: invalid" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"created_usec\": -1}",
                  "created_usec: expected a non-negative integer" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"migration_tags\": [1]}",
                  "migration_tags[0]: expected a string" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"ledger\": \"{}\"}",
                  "ledger: expected an object" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"ledger\": {\"crons\": [\"a\", 2]}}",
                  "ledger.crons[1]: expected a string" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"ledger\": {\"etag\": []}}",
                  "ledger.etag: expected a string" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"ledger\": {\"secrets\": {\"K\": 1}}}",
                  "ledger.secrets.K: expected a string" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"ledger\": {\"subdomain\": \"on\"}}",
                  "ledger.subdomain: expected an integer" },
                { "resource/Worker/x", "{\"kind\": \"Worker\", \"name\": \"x\", \"ownership\": \"created\", \"ledger\": {\"adopted\": 1}}",
                  "ledger.adopted: expected a boolean" },
                { "intent/KVNamespace/b", "{\"kind\": \"KVNamespace\", \"name\": \"a\", \"cf_name\": \"c\"}", "key does not name" },
                { "intent/KVNamespace/b", "{\"kind\": \"KVNamespace\", \"name\": \"b\"}", "cf_name: missing" },
                { "meta/k", "{\"v\": 1}", "value: expected a string" },
                { "meta/", "{\"value\": \"x\"}", "empty meta key" },
                { "binding", "{\"account_id\": \"" ACCOUNT "\"}", "needs account_id and api_url" },
                { "secrets/worker:api", "{\"K\": \"plaintext\"}", "K: expected a fingerprint" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(ledger_freep) Ledger *l = ledger_new();
                _cleanup_free_ char *err = NULL;

                ck_assert_msg(ledger_load_record(l, cases[i].key, cases[i].value, &err) == -EBADMSG, "case %zu", i);
                ck_assert_ptr_nonnull(err);
                /* The message names the key, then the field. */
                ck_assert_msg(startswith(err, cases[i].key), "case %zu: %s", i, err);
                ck_assert_msg(strstr(err, cases[i].needle), "case %zu: %s", i, err);
                ck_assert_uint_eq(l->n_entries, 0);
        }
}
END_TEST

/* Keys hold names percent-encoded; a key an older binderyd wrote raw is
 * read, and moved to its encoded key at the next commit. */
START_TEST(test_legacy_keys) {
        FakeStore *f;
        _cleanup_(store_freep) Store *s = fake_new(&f);
        _cleanup_(ledger_freep) Ledger *l = ledger_new();

        ck_assert_int_eq(ledger_load_record(l, "binding", "{\"account_id\": \"" ACCOUNT "\", \"api_url\": \"" API_URL "\"}",
                                            NULL), 0);
        ck_assert_int_eq(ledger_load_record(l, "intent/KVNamespace/100%",
                                            "{\"kind\": \"KVNamespace\", \"name\": \"100%\", \"cf_name\": \"100%\"}", NULL), 0);
        ck_assert_ptr_nonnull(ledger_find_intent(l, RESOURCE_KV_NAMESPACE, "100%"));
        ck_assert(ledger_has_changes(l));
        ck_assert_int_eq(ledger_commit(l, s, NULL), 0);
        ck_assert(batch_has(f, "intent/KVNamespace/100%", false));
        ck_assert(batch_has(f, "intent/KVNamespace/100%25", true));
}
END_TEST

static Suite *ledger_suite(void) {
        Suite *s = suite_create("ledger");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_codec_round_trip);
        tcase_add_test(tc, test_dirty_batches);
        tcase_add_test(tc, test_failed_commit_and_discard);
        tcase_add_test(tc, test_discard_reads_the_store);
        tcase_add_test(tc, test_meta_discard);
        tcase_add_test(tc, test_committed_follows_the_key);
        tcase_add_test(tc, test_run_ids_shared);
        tcase_add_test(tc, test_index_lookups);
        tcase_add_test(tc, test_binding);
        tcase_add_test(tc, test_bad_records);
        tcase_add_test(tc, test_legacy_keys);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(ledger_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
