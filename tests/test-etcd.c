/* test-etcd.c: the v3 gateway client against a real etcd (Debian's
 * etcd-server) started by this test on free loopback ports. Covers the
 * base64 and int64 codecs, kv txn (put, delete, compare create/mod
 * revision) and range, lease grant/keepalive/revoke, an election (a second
 * candidate waits without blocking the loop and is elected when the first
 * lease is revoked), endpoint failover, the answer size limit, the txn
 * operation limit, and user/password auth (the password never in a
 * message). Exits 77, saying so, when etcd is not installed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-event.h>

#include "etcd.h"
#include "etcd-harness.h"
#include "util.h"

static EtcdHarness harness;

static Etcd *client(sd_event *event, const char *first, const char *user, const char *password,
                    size_t max_answer) {
        char *eps[3] = { (char *) (first ? first : harness.url), first ? harness.url : NULL, NULL };
        EtcdOptions o = { .endpoints = eps, .user = user, .password = password, .max_answer = max_answer };
        Etcd *e = NULL;

        ck_assert_int_eq(etcd_new(&e, event, &o), 0);
        return e;
}

START_TEST(test_b64) {
        char *enc = etcd_b64_encode("hello, etcd", 11), *dec = NULL;
        size_t n = 0;

        ck_assert_str_eq(enc, "aGVsbG8sIGV0Y2Q=");
        ck_assert_int_eq(etcd_b64_decode(enc, 64, &dec, &n), 0);
        ck_assert_uint_eq(n, 11);
        ck_assert_str_eq(dec, "hello, etcd");
        free(dec);
        ck_assert_int_eq(etcd_b64_decode(enc, 5, &dec, &n), -EFBIG);
        ck_assert_int_eq(etcd_b64_decode("abc", 64, &dec, &n), -EBADMSG);
        ck_assert_int_eq(etcd_b64_decode("a*c=", 64, &dec, &n), -EBADMSG);
        ck_assert_int_eq(etcd_b64_decode("", 64, &dec, &n), 0);
        ck_assert_uint_eq(n, 0);
        free(dec);
        free(enc);
}
END_TEST

/* RFC 4648 section 10's vectors both ways, every length up to 70 of
 * every byte value round-tripped, and malformed text refused. */
START_TEST(test_b64_vectors) {
        static const char *const vec[][2] = {
                { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
                { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
        };
        static const char *const bad[] = { "Zg=", "Zg=a", "Z===", "Zm9v====", "Zm9vY g=", "Zh==", "Zm9=" };
        uint8_t bin[256];
        char *dec = NULL;
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(vec); i++) {
                _cleanup_free_ char *enc = etcd_b64_encode(vec[i][0], strlen(vec[i][0]));

                ck_assert_str_eq(enc, vec[i][1]);
                ck_assert_int_eq(etcd_b64_decode(vec[i][1], 64, &dec, &n), 0);
                ck_assert_uint_eq(n, strlen(vec[i][0]));
                ck_assert_str_eq(dec, vec[i][0]);
                dec = mfree(dec);
        }
        for (size_t i = 0; i < sizeof(bin); i++)
                bin[i] = (uint8_t) (i * 7 + 3);
        for (size_t len = 0; len <= 70; len++) {
                const uint8_t *p = bin + len; /* a different window each time */
                _cleanup_free_ char *enc = etcd_b64_encode(p, len);

                ck_assert_ptr_nonnull(enc);
                ck_assert_uint_eq(strlen(enc), (len + 2) / 3 * 4);
                ck_assert_int_eq(etcd_b64_decode(enc, len, &dec, &n), 0);
                ck_assert_uint_eq(n, len);
                ck_assert_mem_eq(dec, p, len);
                ck_assert_int_eq(dec[len], 0);
                dec = mfree(dec);
                if (len > 0)
                        ck_assert_int_eq(etcd_b64_decode(enc, len - 1, &dec, &n), -EFBIG);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(etcd_b64_decode(bad[i], 64, &dec, &n) == -EBADMSG, "%s accepted", bad[i]);
}
END_TEST

START_TEST(test_int64_and_prefix) {
        json_object *o = json_tokener_parse("{\"a\":\"42\",\"b\":7,\"c\":\"x\",\"d\":[]}");
        int64_t x = -1;
        char *end;

        ck_assert_int_eq(etcd_json_int64(o, "a", &x), 0);
        ck_assert_int_eq(x, 42);
        ck_assert_int_eq(etcd_json_int64(o, "b", &x), 0);
        ck_assert_int_eq(x, 7);
        ck_assert_int_eq(etcd_json_int64(o, "missing", &x), 0);
        ck_assert_int_eq(x, 0);
        ck_assert_int_eq(etcd_json_int64(o, "c", &x), -EBADMSG);
        ck_assert_int_eq(etcd_json_int64(o, "d", &x), -EBADMSG);
        json_object_put(o);
        end = etcd_prefix_end("/bindery/a/");
        ck_assert_str_eq(end, "/bindery/a0");
        free(end);
}
END_TEST

START_TEST(test_txn_and_range) {
        _cleanup_(etcd_freep) Etcd *e = client(NULL, NULL, NULL, NULL, 0);
        _cleanup_(json_object_putp) json_object *a = NULL;
        _cleanup_(etcd_txn_freep) EtcdTxn *t = etcd_txn_new();
        json_object *kvs;
        EtcdKeyValue kv;
        int64_t rev;

        /* Create only if absent: compare create_revision == 0. */
        ck_assert_int_eq(etcd_txn_compare_create(t, "/t/x/one", 0), 0);
        ck_assert_int_eq(etcd_txn_put(t, "/t/x/one", "{\"v\":1}", 7), 0);
        ck_assert_int_eq(etcd_txn_put(t, "/t/x/two", "{\"v\":2}", 7), 0);
        ck_assert_int_eq(etcd_txn_sync(e, t, USEC_PER_SEC, NULL, NULL), 1);
        /* The same again: the key exists now, nothing is applied. */
        ck_assert_int_eq(etcd_txn_sync(e, t, USEC_PER_SEC, NULL, NULL), 0);

        ck_assert_int_eq(etcd_range_sync(e, "/t/x/", "/t/x0", 0, USEC_PER_SEC, &a, NULL), 0);
        ck_assert(json_object_object_get_ex(a, "kvs", &kvs));
        ck_assert_int_eq(json_object_array_length(kvs), 2);
        ck_assert_int_eq(etcd_decode_key_value(json_object_array_get_idx(kvs, 0), 64, 64, &kv), 0);
        ck_assert_str_eq(kv.key, "/t/x/one");
        ck_assert_str_eq(kv.value, "{\"v\":1}");
        rev = kv.create_revision;
        ck_assert_int_gt(rev, 0);
        ck_assert_int_eq(kv.mod_revision, rev);
        etcd_key_value_done(&kv);
        /* A value longer than the decoder's limit is refused. */
        ck_assert_int_eq(etcd_decode_key_value(json_object_array_get_idx(kvs, 0), 64, 3, &kv), -EFBIG);
        json_object_put(a);
        a = NULL;

        /* Paged: limit 1 gives one kv and "more". */
        ck_assert_int_eq(etcd_range_sync(e, "/t/x/", "/t/x0", 1, USEC_PER_SEC, &a, NULL), 0);
        ck_assert(json_object_object_get_ex(a, "kvs", &kvs));
        ck_assert_int_eq(json_object_array_length(kvs), 1);
        ck_assert(etcd_json_bool(a, "more"));
        json_object_put(a);
        a = NULL;

        /* Guarded by the create revision: right one applies, wrong one not. */
        t = etcd_txn_free(t);
        t = etcd_txn_new();
        ck_assert_int_eq(etcd_txn_compare_create(t, "/t/x/one", rev + 100), 0);
        ck_assert_int_eq(etcd_txn_delete(t, "/t/x/two"), 0);
        ck_assert_int_eq(etcd_txn_sync(e, t, USEC_PER_SEC, NULL, NULL), 0);
        t = etcd_txn_free(t);
        t = etcd_txn_new();
        ck_assert_int_eq(etcd_txn_compare_create(t, "/t/x/one", rev), 0);
        ck_assert_int_eq(etcd_txn_compare_mod(t, "/t/x/one", rev), 0);
        ck_assert_int_eq(etcd_txn_delete(t, "/t/x/two"), 0);
        ck_assert_int_eq(etcd_txn_sync(e, t, USEC_PER_SEC, NULL, NULL), 1);
        ck_assert_int_eq(etcd_range_sync(e, "/t/x/two", NULL, 0, USEC_PER_SEC, &a, NULL), 0);
        ck_assert(!json_object_object_get_ex(a, "kvs", &kvs));
}
END_TEST

START_TEST(test_txn_limit) {
        _cleanup_(etcd_freep) Etcd *e = client(NULL, NULL, NULL, NULL, 0);
        _cleanup_(etcd_txn_freep) EtcdTxn *t = etcd_txn_new();
        char key[32];

        for (unsigned i = 0; i < ETCD_MAX_TXN_OPS; i++) {
                (void) snprintf(key, sizeof key, "/t/lim/%03u", i);
                ck_assert_int_eq(etcd_txn_put(t, key, "1", 1), 0);
        }
        ck_assert_int_eq(etcd_txn_sync(e, t, 2 * USEC_PER_SEC, NULL, NULL), 1);
        ck_assert_int_eq(etcd_txn_put(t, "/t/lim/over", "1", 1), 0);
        ck_assert_int_eq(etcd_txn_sync(e, t, 2 * USEC_PER_SEC, NULL, NULL), -E2BIG);
}
END_TEST

START_TEST(test_answer_limit) {
        _cleanup_(etcd_freep) Etcd *e = client(NULL, NULL, NULL, NULL, 300);
        _cleanup_(etcd_txn_freep) EtcdTxn *t = etcd_txn_new();
        _cleanup_(json_object_putp) json_object *a = NULL;
        char big[512];
        char *err = NULL;

        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        ck_assert_int_eq(etcd_txn_put(t, "/t/big", big, strlen(big)), 0);
        /* The txn answer itself is short enough. */
        ck_assert_int_eq(etcd_txn_sync(e, t, USEC_PER_SEC, NULL, NULL), 1);
        ck_assert_int_eq(etcd_range_sync(e, "/t/big", NULL, 0, USEC_PER_SEC, &a, &err), -EFBIG);
        ck_assert_ptr_nonnull(err);
        free(err);
}
END_TEST

START_TEST(test_failover) {
        char dead[64];
        _cleanup_(etcd_freep) Etcd *e = NULL;
        _cleanup_(etcd_freep) Etcd *d = NULL;
        _cleanup_(json_object_putp) json_object *a = NULL;
        char *eps[2] = { dead, NULL };
        EtcdOptions o = { .endpoints = eps };
        char *err = NULL;

        (void) snprintf(dead, sizeof dead, "http://127.0.0.1:%d", harness_free_port());
        e = client(NULL, dead, NULL, NULL, 0);
        ck_assert_int_eq(etcd_range_sync(e, "/t/none", NULL, 0, USEC_PER_SEC, &a, NULL), 0);
        /* The endpoint that answered is remembered. */
        ck_assert_str_eq(etcd_current_endpoint(e), harness.url);

        ck_assert_int_eq(etcd_new(&d, NULL, &o), 0);
        json_object_put(a);
        a = NULL;
        ck_assert_int_eq(etcd_range_sync(d, "/t/none", NULL, 0, USEC_PER_SEC, &a, &err), -ECONNREFUSED);
        ck_assert_ptr_nonnull(strstr(err, dead));
        free(err);
}
END_TEST

/* ---- async ---- */

typedef struct Reply {
        bool done;
        int r;
        json_object *answer;
} Reply;

static void on_reply(Etcd *e, int r, json_object *answer, const char *message, void *userdata) {
        Reply *rep = userdata;

        rep->done = true;
        rep->r = r;
        rep->answer = answer ? json_object_get(answer) : NULL;
}

static void wait_for(sd_event *event, Reply *rep, unsigned max_ms) {
        uint64_t until = now_monotonic_usec() + max_ms * USEC_PER_MSEC;

        while (!rep->done && now_monotonic_usec() < until)
                ck_assert_int_ge(sd_event_run(event, 50 * USEC_PER_MSEC), 0);
        ck_assert_msg(rep->done, "no answer within %u ms", max_ms);
}

static void reply_done(Reply *rep) {
        json_object_put(rep->answer);
        *rep = (Reply) {};
}

static int64_t grant(sd_event *event, Etcd *e, int64_t ttl) {
        Reply rep = {};
        int64_t id = 0, got = 0;

        ck_assert_int_eq(etcd_lease_grant(e, ttl, on_reply, &rep, NULL), 0);
        wait_for(event, &rep, 3000);
        ck_assert_int_eq(rep.r, 0);
        ck_assert_int_eq(etcd_json_int64(rep.answer, "ID", &id), 0);
        ck_assert_int_eq(etcd_json_int64(rep.answer, "TTL", &got), 0);
        ck_assert_int_eq(got, ttl);
        reply_done(&rep);
        return id;
}

START_TEST(test_lease_and_election) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(etcd_freep) Etcd *e = NULL;
        Reply rep = {}, second = {};
        EtcdLeaderKey first = {}, won = {};
        EtcdKeyValue kv = {};
        EtcdCall *call = NULL;
        int64_t l1, l2, ttl = -1;
        json_object *o;

        ck_assert_int_ge(sd_event_new(&event), 0);
        e = client(event, NULL, NULL, NULL, 0);
        l1 = grant(event, e, 30);
        l2 = grant(event, e, 30);
        ck_assert_int_ne(l1, l2);

        ck_assert_int_eq(etcd_lease_keepalive(e, l1, 2 * USEC_PER_SEC, on_reply, &rep, NULL), 0);
        wait_for(event, &rep, 3000);
        ck_assert_int_eq(rep.r, 0);
        ck_assert_int_eq(etcd_decode_keepalive(rep.answer, &ttl), 0);
        ck_assert_int_eq(ttl, 30);
        reply_done(&rep);

        /* Nobody leads yet: -ENOENT. */
        ck_assert_int_eq(etcd_leader(e, "/t/el", on_reply, &rep, NULL), 0);
        wait_for(event, &rep, 3000);
        ck_assert_int_eq(rep.r, -ENOENT);
        reply_done(&rep);

        /* The first candidate is elected at once. */
        ck_assert_int_eq(etcd_campaign(e, "/t/el", l1, "host-a", on_reply, &rep, NULL), 0);
        wait_for(event, &rep, 3000);
        ck_assert_int_eq(rep.r, 0);
        ck_assert_int_eq(etcd_decode_campaign(rep.answer, &first), 0);
        ck_assert_str_eq(first.name, "/t/el");
        ck_assert_int_eq(first.lease, l1);
        reply_done(&rep);

        /* The second waits in etcd; the loop keeps running meanwhile. */
        ck_assert_int_eq(etcd_campaign(e, "/t/el", l2, "host-b", on_reply, &second, &call), 0);
        ck_assert_int_eq(etcd_leader(e, "/t/el", on_reply, &rep, NULL), 0);
        wait_for(event, &rep, 3000);
        ck_assert_int_eq(rep.r, 0);
        ck_assert(!second.done);
        ck_assert(json_object_object_get_ex(rep.answer, "kv", &o));
        ck_assert_int_eq(etcd_decode_key_value(o, 256, 256, &kv), 0);
        ck_assert_str_eq(kv.value, "host-a");
        ck_assert_str_eq(kv.key, first.key);
        ck_assert_int_eq(kv.create_revision, first.rev);
        etcd_key_value_done(&kv);
        reply_done(&rep);
        ck_assert_uint_eq(etcd_n_calls(e), 1);

        /* Resign: the second is elected. */
        ck_assert_int_eq(etcd_resign_sync(e, &first, USEC_PER_SEC, NULL), 0);
        wait_for(event, &second, 5000);
        ck_assert_int_eq(second.r, 0);
        ck_assert_int_eq(etcd_decode_campaign(second.answer, &won), 0);
        ck_assert_int_eq(won.lease, l2);
        reply_done(&second);

        /* Revoke: the lease is gone, keepalive reports TTL 0 or not found. */
        ck_assert_int_eq(etcd_lease_revoke_sync(e, l2, USEC_PER_SEC, NULL), 0);
        ck_assert_int_eq(etcd_lease_keepalive(e, l2, 2 * USEC_PER_SEC, on_reply, &rep, NULL), 0);
        wait_for(event, &rep, 3000);
        if (rep.r == 0) {
                ck_assert_int_eq(etcd_decode_keepalive(rep.answer, &ttl), 0);
                ck_assert_int_le(ttl, 0);
        } else
                ck_assert_int_eq(rep.r, -ENOENT);
        reply_done(&rep);
        ck_assert_int_eq(etcd_lease_revoke_sync(e, l2, USEC_PER_SEC, NULL), -ENOENT);

        /* A cancelled campaign never calls back. */
        ck_assert_int_eq(etcd_campaign(e, "/t/el", l1, "host-a", on_reply, &rep, &call), 0);
        etcd_call_cancel(call);
        ck_assert_uint_eq(etcd_n_calls(e), 0);
        for (int i = 0; i < 5; i++)
                ck_assert_int_ge(sd_event_run(event, 20 * USEC_PER_MSEC), 0);
        ck_assert(!rep.done);
        etcd_leader_key_done(&first);
        etcd_leader_key_done(&won);
}
END_TEST

/* Last: it turns auth on in this etcd. */
START_TEST(test_auth) {
        _cleanup_(etcd_freep) Etcd *root = client(NULL, NULL, NULL, NULL, 0);
        _cleanup_(etcd_freep) Etcd *good = NULL, *bad = NULL, *anon = NULL;
        _cleanup_(json_object_putp) json_object *a = NULL;
        json_object *b;
        char *err = NULL;

        b = json_tokener_parse("{\"name\":\"root\",\"password\":\"s3cret-pw-123\"}");
        ck_assert_int_eq(etcd_call_sync(root, "/v3/auth/user/add", b, USEC_PER_SEC, &a, NULL), 0);
        json_object_put(b);
        json_object_put(a);
        b = json_tokener_parse("{\"user\":\"root\",\"role\":\"root\"}");
        ck_assert_int_eq(etcd_call_sync(root, "/v3/auth/user/grant", b, USEC_PER_SEC, &a, NULL), 0);
        json_object_put(b);
        json_object_put(a);
        b = json_object_new_object();
        ck_assert_int_eq(etcd_call_sync(root, "/v3/auth/enable", b, USEC_PER_SEC, &a, NULL), 0);
        json_object_put(b);
        json_object_put(a);
        a = NULL;

        good = client(NULL, NULL, "root", "s3cret-pw-123", 0);
        ck_assert_int_eq(etcd_range_sync(good, "/t/x/one", NULL, 0, USEC_PER_SEC, &a, NULL), 0);
        json_object_put(a);
        a = NULL;

        bad = client(NULL, NULL, "root", "wrong-pw-456", 0);
        ck_assert_int_eq(etcd_range_sync(bad, "/t/x/one", NULL, 0, USEC_PER_SEC, &a, &err), -EACCES);
        ck_assert_ptr_nonnull(err);
        ck_assert_ptr_null(strstr(err, "wrong-pw-456"));
        free(err);
        err = NULL;

        anon = client(NULL, NULL, NULL, NULL, 0);
        ck_assert_int_lt(etcd_range_sync(anon, "/t/x/one", NULL, 0, USEC_PER_SEC, &a, &err), 0);
        free(err);
}
END_TEST

int main(void) {
        Suite *s;
        TCase *tc;

        s = suite_create("etcd");
        tc = tcase_create("codec");
        tcase_add_test(tc, test_b64);
        tcase_add_test(tc, test_b64_vectors);
        tcase_add_test(tc, test_int64_and_prefix);
        suite_add_tcase(s, tc);
        tc = tcase_create("etcd");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_txn_and_range);
        tcase_add_test(tc, test_txn_limit);
        tcase_add_test(tc, test_answer_limit);
        tcase_add_test(tc, test_failover);
        tcase_add_test(tc, test_lease_and_election);
        tcase_add_test(tc, test_auth);
        suite_add_tcase(s, tc);

        return etcd_harness_run("test-etcd", &harness, s);
}
