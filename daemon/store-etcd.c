/* store-etcd.c: the etcd backend of store.h; see store-etcd.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-etcd.h"
#include "util.h"

#define PREFIX_MAX 256U
#define DEFAULT_TIMEOUT_USEC (2 * USEC_PER_SEC)

typedef struct StoreEtcd {
        Etcd *etcd;
        char *prefix;
        char *ledger;               /* PREFIX "ledger/" */
        char *hmac_key_name;        /* PREFIX "hmac-key" */
        char *describe;
        uint64_t timeout_usec;
        store_etcd_fence_fn fence;
        const void *fence_userdata;
        uint8_t hmac_key[STORE_HMAC_KEY_SIZE];
        bool have_hmac_key;
        bool own_etcd;
} StoreEtcd;

static const StoreOps store_etcd_ops;

static void store_etcd_free(void *impl) {
        StoreEtcd *s = impl;

        if (!s)
                return;
        explicit_bzero(s->hmac_key, sizeof s->hmac_key);
        if (s->own_etcd)
                etcd_free(s->etcd);
        free(s->prefix);
        free(s->ledger);
        free(s->hmac_key_name);
        free(s->describe);
        free(s);
}

/* Sets *reterr (if wanted) and returns r. */
_printf_(3, 4) static int set_err(char **reterr, int r, const char *fmt, ...) {
        va_list ap;

        if (reterr) {
                va_start(ap, fmt);
                if (vasprintf(reterr, fmt, ap) < 0)
                        *reterr = NULL;
                va_end(ap);
        }
        return r;
}

/* One page of [from, end) at rev (0: current). */
static int range_page(StoreEtcd *s, const char *from, const char *end, int64_t rev, int64_t limit,
                      json_object **ret, char **reterr) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();
        char num[32];

        if (!b || json_object_object_add(b, "key", etcd_json_b64(from)) < 0 ||
            json_object_object_add(b, "range_end", etcd_json_b64(end)) < 0)
                return -ENOMEM;
        (void) snprintf(num, sizeof num, "%" PRId64, limit);
        if (json_object_object_add(b, "limit", json_object_new_string(num)) < 0)
                return -ENOMEM;
        if (rev > 0) {
                (void) snprintf(num, sizeof num, "%" PRId64, rev);
                if (json_object_object_add(b, "revision", json_object_new_string(num)) < 0)
                        return -ENOMEM;
        }
        return etcd_call_sync(s->etcd, "/v3/kv/range", b, s->timeout_usec, ret, reterr);
}

static int store_etcd_load(void *impl, store_record_fn fn, void *userdata, char **reterr) {
        StoreEtcd *s = impl;
        _cleanup_free_ char *end = etcd_prefix_end(s->ledger);
        _cleanup_free_ char *from = strdup(s->ledger);
        size_t plen = strlen(s->ledger);
        int64_t rev = 0, limit = STORE_ETCD_PAGE;
        int r;

        if (!end || !from)
                return -ENOMEM;
        for (;;) {
                _cleanup_(json_object_putp) json_object *a = NULL;
                json_object *kvs, *header;
                size_t n;

                r = range_page(s, from, end, rev, limit, &a, reterr);
                if (r == -EFBIG && limit > 1) {
                        /* Large records: fewer per answer. */
                        if (reterr)
                                *reterr = mfree(*reterr);
                        limit /= 2;
                        continue;
                }
                if (r < 0)
                        return r;
                if (rev == 0) {
                        if (!json_object_object_get_ex(a, "header", &header) ||
                            etcd_json_int64(header, "revision", &rev) < 0 || rev <= 0)
                                return set_err(reterr, -EBADMSG, "etcd %s: range answer without a revision",
                                               etcd_current_endpoint(s->etcd));
                }
                if (!json_object_object_get_ex(a, "kvs", &kvs))
                        return 0;   /* empty */
                if (!json_object_is_type(kvs, json_type_array))
                        return -EBADMSG;
                n = json_object_array_length(kvs);
                for (size_t i = 0; i < n; i++) {
                        EtcdKeyValue kv = {};

                        r = etcd_decode_key_value(json_object_array_get_idx(kvs, i), plen + STORE_KEY_MAX,
                                                  STORE_VALUE_MAX, &kv);
                        if (r < 0)
                                return set_err(reterr, r, "etcd: a ledger record under %s is unreadable",
                                               s->ledger);
                        if (!startswith(kv.key, s->ledger) || !store_key_is_valid(kv.key + plen) ||
                            strlen(kv.value) != kv.value_size) {
                                (void) set_err(reterr, 0, "etcd: invalid ledger key or value at '%s'", kv.key);
                                etcd_key_value_done(&kv);
                                return -EBADMSG;
                        }
                        r = fn(kv.key + plen, kv.value, userdata);
                        if (r >= 0 && i + 1 == n) {
                                /* The next page starts at the smallest valid
                                 * key after this one (keys are printable
                                 * ASCII above space: '!' is the least). */
                                free(from);
                                if (asprintf(&from, "%s!", kv.key) < 0)
                                        from = NULL;
                        }
                        etcd_key_value_done(&kv);
                        if (r < 0)
                                return r;
                }
                if (!from)
                        return -ENOMEM;
                if (!etcd_json_bool(a, "more") || n == 0)
                        return 0;
        }
}

/* Index of the last change to the same key at or after i, so earlier
 * ones are skipped. */
static bool superseded(const StoreChange *changes, size_t n, size_t i) {
        for (size_t j = i + 1; j < n; j++)
                if (streq(changes[j].key, changes[i].key))
                        return true;
        return false;
}

static int store_etcd_commit(void *impl, const StoreChange *changes, size_t n, char **reterr) {
        StoreEtcd *s = impl;
        _cleanup_(etcd_txn_freep) EtcdTxn *t = NULL;
        const char *leader = NULL;
        int64_t rev = 0;
        int r;

        if (n > ETCD_MAX_TXN_OPS)
                return -E2BIG;
        if (!s->fence)
                return -EROFS;
        r = s->fence(s->fence_userdata, &leader, &rev);
        if (r < 0)
                return set_err(reterr, r, "etcd: not the leader: nothing written");
        t = etcd_txn_new();
        if (!t)
                return -ENOMEM;
        r = etcd_txn_compare_create(t, leader, rev);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *key = NULL;

                if (superseded(changes, n, i))
                        continue;
                if (asprintf(&key, "%s%s", s->ledger, changes[i].key) < 0)
                        return -ENOMEM;
                r = changes[i].value ? etcd_txn_put(t, key, changes[i].value, strlen(changes[i].value))
                                     : etcd_txn_delete(t, key);
                if (r < 0)
                        return r;
        }
        r = etcd_txn_sync(s->etcd, t, s->timeout_usec, NULL, reterr);
        if (r < 0)
                return r;
        if (r == 0)
                return set_err(reterr, -ESTALE, "etcd: leader key changed (deposed): nothing written");
        return 0;
}

static int hmac_parse(const char *hex, size_t size, uint8_t ret[static STORE_HMAC_KEY_SIZE]) {
        if (size != 2 * STORE_HMAC_KEY_SIZE)
                return -EBADMSG;
        for (size_t i = 0; i < STORE_HMAC_KEY_SIZE; i++) {
                unsigned x;

                if (sscanf(hex + 2 * i, "%2x", &x) != 1 || !strchr("0123456789abcdef", hex[2 * i]) ||
                    !strchr("0123456789abcdef", hex[2 * i + 1]))
                        return -EBADMSG;
                ret[i] = (uint8_t) x;
        }
        return 0;
}

/* Reads the key: 1 found, 0 absent. */
static int hmac_read(StoreEtcd *s, char **reterr) {
        _cleanup_(json_object_putp) json_object *a = NULL;
        EtcdKeyValue kv = {};
        json_object *kvs;
        int r;

        r = etcd_range_sync(s->etcd, s->hmac_key_name, NULL, 0, s->timeout_usec, &a, reterr);
        if (r < 0)
                return r;
        if (!json_object_object_get_ex(a, "kvs", &kvs) || !json_object_is_type(kvs, json_type_array) ||
            json_object_array_length(kvs) == 0)
                return 0;
        r = etcd_decode_key_value(json_object_array_get_idx(kvs, 0), 1024, 128, &kv);
        if (r >= 0)
                r = hmac_parse(kv.value, kv.value_size, s->hmac_key);
        if (kv.value)
                explicit_bzero(kv.value, kv.value_size);
        etcd_key_value_done(&kv);
        if (r < 0)
                return set_err(reterr, r, "etcd: '%s' is not 64 hex digits", s->hmac_key_name);
        s->have_hmac_key = true;
        return 1;
}

/* Creates the key as key in one transaction that also requires it absent
 * and this host to lead; then reads back whichever key won. */
static int hmac_create(StoreEtcd *s, const uint8_t key[static STORE_HMAC_KEY_SIZE], char **reterr) {
        _cleanup_(etcd_txn_freep) EtcdTxn *t = NULL;
        char hex[2 * STORE_HMAC_KEY_SIZE + 1];
        const char *leader = NULL;
        int64_t rev = 0;
        int r;

        if (!s->fence)
                return -EROFS;
        r = s->fence(s->fence_userdata, &leader, &rev);
        if (r < 0)
                return r;
        for (size_t i = 0; i < STORE_HMAC_KEY_SIZE; i++)
                (void) snprintf(hex + 2 * i, 3, "%02x", key[i]);
        t = etcd_txn_new();
        r = t ? 0 : -ENOMEM;
        if (r >= 0)
                r = etcd_txn_compare_create(t, leader, rev);
        if (r >= 0)
                r = etcd_txn_compare_create(t, s->hmac_key_name, 0);
        if (r >= 0)
                r = etcd_txn_put(t, s->hmac_key_name, hex, strlen(hex));
        explicit_bzero(hex, sizeof hex);
        if (r >= 0)
                r = etcd_txn_sync(s->etcd, t, s->timeout_usec, NULL, reterr);
        if (r < 0)
                return r;
        /* Ours, or another leader's made first: read what won. */
        r = hmac_read(s, reterr);
        if (r < 0)
                return r;
        return r == 0 ? -ESTALE : 0;
}

static int store_etcd_hmac_key(void *impl, uint8_t ret[static STORE_HMAC_KEY_SIZE], char **reterr) {
        StoreEtcd *s = impl;
        uint8_t key[STORE_HMAC_KEY_SIZE];
        int r;

        if (!s->have_hmac_key) {
                r = hmac_read(s, reterr);
                if (r < 0)
                        return r;
                if (r == 0) {
                        if (!s->fence)
                                return -ENOKEY;
                        r = random_bytes(key, sizeof key);
                        if (r < 0)
                                return r;
                        r = hmac_create(s, key, reterr);
                        explicit_bzero(key, sizeof key);
                        if (r < 0)
                                return r;
                }
        }
        memcpy(ret, s->hmac_key, STORE_HMAC_KEY_SIZE);
        return 0;
}

int store_etcd_set_hmac_key(Store *store, const uint8_t key[static STORE_HMAC_KEY_SIZE], char **reterr) {
        StoreEtcd *s;
        int r;

        if (!store || store->ops != &store_etcd_ops)
                return -EINVAL;
        s = store->impl;
        if (!s->have_hmac_key) {
                r = hmac_read(s, reterr);
                if (r < 0)
                        return r;
                if (r == 0) {
                        r = hmac_create(s, key, reterr);
                        if (r < 0)
                                return r;
                }
        }
        return memeq_consttime(s->hmac_key, sizeof s->hmac_key, key, STORE_HMAC_KEY_SIZE) ? 0 : -EEXIST;
}

static const char *store_etcd_describe(void *impl) {
        StoreEtcd *s = impl;

        return s->describe;
}

static const StoreOps store_etcd_ops = {
        .name = "etcd",
        .load = store_etcd_load,
        .commit = store_etcd_commit,
        .hmac_key = store_etcd_hmac_key,
        .describe = store_etcd_describe,
        .free = store_etcd_free,
};

char *store_etcd_election_name(const char *prefix) {
        char *s;

        return asprintf(&s, "%s%s", prefix, STORE_ETCD_ELECTION) < 0 ? NULL : s;
}

int store_etcd_new(Store **ret, Etcd *etcd, const StoreEtcdOptions *o) {
        StoreEtcd *s;
        Store *store;

        if (!ret || !etcd || !o || isempty(o->prefix) || o->prefix[0] != '/' ||
            !endswith(o->prefix, "/") || strlen(o->prefix) > PREFIX_MAX) {
                if (o && o->own_etcd)
                        etcd_free(etcd);
                return -EINVAL;
        }
        s = calloc(1, sizeof(StoreEtcd));
        store = calloc(1, sizeof(Store));
        if (!s || !store) {
                free(s);
                free(store);
                if (o->own_etcd)
                        etcd_free(etcd);
                return -ENOMEM;
        }
        s->etcd = etcd;
        s->own_etcd = o->own_etcd;
        s->timeout_usec = o->timeout_usec ? o->timeout_usec : DEFAULT_TIMEOUT_USEC;
        s->fence = o->fence;
        s->fence_userdata = o->fence_userdata;
        s->prefix = strdup(o->prefix);
        if (asprintf(&s->ledger, "%s%s", o->prefix, STORE_ETCD_LEDGER) < 0)
                s->ledger = NULL;
        if (asprintf(&s->hmac_key_name, "%s%s", o->prefix, STORE_ETCD_HMAC_KEY) < 0)
                s->hmac_key_name = NULL;
        if (asprintf(&s->describe, "etcd %s %s", etcd_current_endpoint(etcd), o->prefix) < 0)
                s->describe = NULL;
        if (!s->prefix || !s->ledger || !s->hmac_key_name || !s->describe) {
                store_etcd_free(s);
                free(store);
                return -ENOMEM;
        }
        *store = (Store) { .ops = &store_etcd_ops, .impl = s, .writable = o->fence != NULL };
        *ret = store;
        return 0;
}
