/* test-store-etcd.c: the etcd backend of store.h against a real etcd
 * started by this test on free loopback ports: a round trip of records
 * (load in key order, across pages), deletes, a fenced commit refused
 * with nothing written (a wrong create revision, and a fence that knows it
 * is not leader), the 128-operation batch limit, the shared HMAC key
 * (created once, the same for a second host, -ENOKEY read-only), and a
 * read-only store. Exits 77, saying so, when etcd is not installed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "etcd-harness.h"
#include "etcd.h"
#include "store-etcd.h"
#include "util.h"

static EtcdHarness harness;

typedef struct Fence {
        const char *key;
        int64_t rev;
        bool leader;
} Fence;

static int fence_fn(const void *userdata, const char **ret_key, int64_t *ret_rev) {
        const Fence *f = userdata;

        if (!f->leader)
                return -ESTALE;
        *ret_key = f->key;
        *ret_rev = f->rev;
        return 0;
}

static Etcd *client(void) {
        char *eps[2] = { harness.url, NULL };
        EtcdOptions o = { .endpoints = eps };
        Etcd *e = NULL;

        ck_assert_int_eq(etcd_new(&e, NULL, &o), 0);
        return e;
}

/* A stand-in leader key: its create revision is the fence. */
static int64_t make_leader_key(Etcd *e, const char *key) {
        _cleanup_(etcd_txn_freep) EtcdTxn *t = etcd_txn_new();
        _cleanup_(json_object_putp) json_object *a = NULL;
        EtcdKeyValue kv = {};
        json_object *kvs;
        int64_t rev;

        ck_assert_int_eq(etcd_txn_put(t, key, "{}", 2), 0);
        ck_assert_int_eq(etcd_txn_sync(e, t, USEC_PER_SEC, NULL, NULL), 1);
        ck_assert_int_eq(etcd_range_sync(e, key, NULL, 0, USEC_PER_SEC, &a, NULL), 0);
        ck_assert(json_object_object_get_ex(a, "kvs", &kvs));
        ck_assert_int_eq(etcd_decode_key_value(json_object_array_get_idx(kvs, 0), 256, 256, &kv), 0);
        rev = kv.create_revision;
        etcd_key_value_done(&kv);
        return rev;
}

typedef struct Seen {
        char keys[400][64];
        char values[400][64];
        unsigned n;
} Seen;

static int collect(const char *key, const char *value, void *userdata) {
        Seen *s = userdata;

        ck_assert_uint_lt(s->n, 400);
        (void) snprintf(s->keys[s->n], 64, "%s", key);
        (void) snprintf(s->values[s->n], 64, "%s", value);
        s->n++;
        return 0;
}

static Store *open_store(Etcd *e, const char *prefix, Fence *f) {
        StoreEtcdOptions o = { .prefix = prefix, .fence = f ? fence_fn : NULL, .fence_userdata = f };
        Store *s = NULL;

        ck_assert_int_eq(store_etcd_new(&s, e, &o), 0);
        return s;
}

START_TEST(test_round_trip) {
        _cleanup_(etcd_freep) Etcd *e = client();
        Fence f = { .key = "/t/rt/election/a", .leader = true };
        _cleanup_(store_freep) Store *s = NULL;
        StoreChange ch[3] = {
                { "resource/kv_namespace/b", "{\"id\":\"2\"}" },
                { "binding", "{\"account_id\":\"x\"}" },
                { "resource/kv_namespace/a", "{\"id\":\"1\"}" },
        };
        StoreChange del[2] = {
                { "resource/kv_namespace/a", NULL },
                { "intent/never/there", NULL },
        };
        Seen *seen = calloc(1, sizeof(Seen));

        f.rev = make_leader_key(e, f.key);
        s = open_store(e, "/t/rt/", &f);
        ck_assert_str_eq(s->ops->name, "etcd");
        ck_assert_ptr_nonnull(strstr(store_describe(s), "/t/rt/"));
        ck_assert_int_eq(store_load(s, collect, seen, NULL), 0);
        ck_assert_uint_eq(seen->n, 0);

        ck_assert_int_eq(store_commit(s, ch, 3, NULL), 0);
        ck_assert_int_eq(store_load(s, collect, seen, NULL), 0);
        ck_assert_uint_eq(seen->n, 3);
        ck_assert_str_eq(seen->keys[0], "binding");
        ck_assert_str_eq(seen->keys[1], "resource/kv_namespace/a");
        ck_assert_str_eq(seen->values[1], "{\"id\":\"1\"}");
        ck_assert_str_eq(seen->keys[2], "resource/kv_namespace/b");

        ck_assert_int_eq(store_commit(s, del, 2, NULL), 0);
        seen->n = 0;
        ck_assert_int_eq(store_load(s, collect, seen, NULL), 0);
        ck_assert_uint_eq(seen->n, 2);
        ck_assert_str_eq(seen->keys[1], "resource/kv_namespace/b");
        free(seen);
}
END_TEST

START_TEST(test_paging) {
        _cleanup_(etcd_freep) Etcd *e = client();
        Fence f = { .key = "/t/pg/election/a", .leader = true };
        _cleanup_(store_freep) Store *s = NULL;
        Seen *seen = calloc(1, sizeof(Seen));
        char keys[300][32];
        StoreChange ch[100];

        f.rev = make_leader_key(e, f.key);
        s = open_store(e, "/t/pg/", &f);
        for (unsigned batch = 0; batch < 3; batch++) {
                for (unsigned i = 0; i < 100; i++) {
                        unsigned k = batch * 100 + i;

                        (void) snprintf(keys[k], sizeof keys[k], "resource/worker/w%03u", k);
                        ch[i] = (StoreChange) { keys[k], "{}" };
                }
                ck_assert_int_eq(store_commit(s, ch, 100, NULL), 0);
        }
        ck_assert_int_eq(store_load(s, collect, seen, NULL), 0);
        ck_assert_uint_eq(seen->n, 300);
        for (unsigned k = 0; k < 300; k++)
                ck_assert_str_eq(seen->keys[k], keys[k]);
        free(seen);
}
END_TEST

START_TEST(test_fenced) {
        _cleanup_(etcd_freep) Etcd *e = client();
        Fence f = { .key = "/t/fe/election/a", .leader = true };
        _cleanup_(store_freep) Store *s = NULL;
        StoreChange ch[1] = { { "binding", "{\"v\":1}" } };
        Seen seen = {};
        char *err = NULL;
        int64_t rev;

        rev = make_leader_key(e, f.key);
        s = open_store(e, "/t/fe/", &f);
        /* Another create revision (a deposed leader): refused. */
        f.rev = rev + 1000;
        ck_assert_int_eq(store_commit(s, ch, 1, &err), -ESTALE);
        ck_assert_ptr_nonnull(err);
        free(err);
        err = NULL;
        /* The leader key deleted (its lease expired): refused too. */
        f.rev = rev;
        {
                _cleanup_(etcd_txn_freep) EtcdTxn *t = etcd_txn_new();

                ck_assert_int_eq(etcd_txn_delete(t, f.key), 0);
                ck_assert_int_eq(etcd_txn_sync(e, t, USEC_PER_SEC, NULL, NULL), 1);
        }
        ck_assert_int_eq(store_commit(s, ch, 1, NULL), -ESTALE);
        /* A fence that knows it is not leader: nothing sent. */
        f.leader = false;
        ck_assert_int_eq(store_commit(s, ch, 1, NULL), -ESTALE);
        ck_assert_int_eq(store_load(s, collect, &seen, NULL), 0);
        ck_assert_uint_eq(seen.n, 0);
}
END_TEST

START_TEST(test_batch_limit) {
        _cleanup_(etcd_freep) Etcd *e = client();
        Fence f = { .key = "/t/bl/election/a", .leader = true };
        _cleanup_(store_freep) Store *s = NULL;
        StoreChange ch[ETCD_MAX_TXN_OPS + 1];
        char keys[ETCD_MAX_TXN_OPS + 1][32];
        Seen *seen = calloc(1, sizeof(Seen));

        f.rev = make_leader_key(e, f.key);
        s = open_store(e, "/t/bl/", &f);
        for (unsigned i = 0; i <= ETCD_MAX_TXN_OPS; i++) {
                (void) snprintf(keys[i], sizeof keys[i], "intent/worker/w%03u", i);
                ch[i] = (StoreChange) { keys[i], "{}" };
        }
        ck_assert_int_eq(store_commit(s, ch, ETCD_MAX_TXN_OPS + 1, NULL), -E2BIG);
        ck_assert_int_eq(store_load(s, collect, seen, NULL), 0);
        ck_assert_uint_eq(seen->n, 0);
        ck_assert_int_eq(store_commit(s, ch, ETCD_MAX_TXN_OPS, NULL), 0);
        ck_assert_int_eq(store_load(s, collect, seen, NULL), 0);
        ck_assert_uint_eq(seen->n, ETCD_MAX_TXN_OPS);
        /* Two changes to one key: the last wins. */
        ch[0] = (StoreChange) { "binding", "{\"v\":1}" };
        ch[1] = (StoreChange) { "binding", "{\"v\":2}" };
        ck_assert_int_eq(store_commit(s, ch, 2, NULL), 0);
        seen->n = 0;
        ck_assert_int_eq(store_load(s, collect, seen, NULL), 0);
        ck_assert_str_eq(seen->keys[0], "binding");
        ck_assert_str_eq(seen->values[0], "{\"v\":2}");
        free(seen);
}
END_TEST

START_TEST(test_hmac_key) {
        _cleanup_(etcd_freep) Etcd *e = client();
        Fence f = { .key = "/t/hk/election/a", .leader = true };
        _cleanup_(store_freep) Store *ro = NULL, *a = NULL, *b = NULL;
        uint8_t k1[STORE_HMAC_KEY_SIZE], k2[STORE_HMAC_KEY_SIZE], zero[STORE_HMAC_KEY_SIZE] = {};
        StoreChange ch[1] = { { "binding", "{}" } };

        f.rev = make_leader_key(e, f.key);
        ro = open_store(e, "/t/hk/", NULL);
        ck_assert(!ro->writable);
        ck_assert_int_eq(store_hmac_key(ro, k1, NULL), -ENOKEY);
        ck_assert_int_eq(store_commit(ro, ch, 1, NULL), -EROFS);

        a = open_store(e, "/t/hk/", &f);
        ck_assert_int_eq(store_hmac_key(a, k1, NULL), 0);
        ck_assert_mem_ne(k1, zero, sizeof zero);
        /* Another host (a new Store) reads the same key; so does ro now. */
        b = open_store(e, "/t/hk/", &f);
        ck_assert_int_eq(store_hmac_key(b, k2, NULL), 0);
        ck_assert_mem_eq(k1, k2, sizeof k1);
        ck_assert_int_eq(store_hmac_key(ro, k2, NULL), 0);
        ck_assert_mem_eq(k1, k2, sizeof k1);
        /* The key is not a ledger record. */
        {
                Seen seen = {};

                ck_assert_int_eq(store_load(a, collect, &seen, NULL), 0);
                ck_assert_uint_eq(seen.n, 0);
        }
}
END_TEST

/* state import: the single-host key goes into etcd once; another key is
 * refused; a read-only store cannot set it. */
START_TEST(test_set_hmac_key) {
        _cleanup_(etcd_freep) Etcd *e = client();
        Fence f = { .key = "/t/sk/election/a", .leader = true };
        _cleanup_(store_freep) Store *s = NULL, *ro = NULL, *other = NULL;
        uint8_t k[STORE_HMAC_KEY_SIZE], k2[STORE_HMAC_KEY_SIZE], got[STORE_HMAC_KEY_SIZE];

        for (size_t i = 0; i < sizeof k; i++) {
                k[i] = (uint8_t) (i * 7 + 1);
                k2[i] = (uint8_t) (i * 5 + 3);
        }
        f.rev = make_leader_key(e, f.key);
        ro = open_store(e, "/t/sk/", NULL);
        ck_assert_int_eq(store_etcd_set_hmac_key(ro, k, NULL), -EROFS);
        s = open_store(e, "/t/sk/", &f);
        ck_assert_int_eq(store_etcd_set_hmac_key(s, k, NULL), 0);
        ck_assert_int_eq(store_etcd_set_hmac_key(s, k, NULL), 0);
        ck_assert_int_eq(store_etcd_set_hmac_key(s, k2, NULL), -EEXIST);
        other = open_store(e, "/t/sk/", &f);
        ck_assert_int_eq(store_hmac_key(other, got, NULL), 0);
        ck_assert_mem_eq(got, k, sizeof k);
}
END_TEST

START_TEST(test_bad_prefix) {
        _cleanup_(etcd_freep) Etcd *e = client();
        StoreEtcdOptions o = { .prefix = "bindery/x/" };
        Store *s = NULL;
        char *name;

        ck_assert_int_eq(store_etcd_new(&s, e, &o), -EINVAL);
        o.prefix = "/bindery/x";
        ck_assert_int_eq(store_etcd_new(&s, e, &o), -EINVAL);
        name = store_etcd_election_name("/bindery/x/");
        ck_assert_str_eq(name, "/bindery/x/election");
        free(name);
}
END_TEST

int main(void) {
        Suite *s;
        TCase *tc;

        s = suite_create("store-etcd");
        tc = tcase_create("store");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_paging);
        tcase_add_test(tc, test_fenced);
        tcase_add_test(tc, test_batch_limit);
        tcase_add_test(tc, test_hmac_key);
        tcase_add_test(tc, test_set_hmac_key);
        tcase_add_test(tc, test_bad_prefix);
        suite_add_tcase(s, tc);
        return etcd_harness_run("test-store-etcd", &harness, s);
}
