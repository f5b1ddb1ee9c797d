/* store-etcd.h: the ledger in etcd — the second backend of store.h.
 *
 * Layout under the prefix (ha.prefix, default "/bindery/ACCOUNT_ID/"):
 *
 *   PREFIX "ledger/" KEY   one etcd key per ledger record (store.h keys),
 *                          the record's JSON text as the value
 *   PREFIX "hmac-key"      the shared HMAC key (64 hex digits)
 *   PREFIX "election"      the election name ha.c campaigns in; the
 *                          leader key is PREFIX "election/LEASE_HEX"
 *
 * load   a range over PREFIX "ledger/", paged (at most 128 records per
 *        answer, fewer when an answer would pass the client's size limit),
 *        every page read at the revision of the first, so a load is one
 *        consistent snapshot.
 * commit one transaction: compare the create revision of the leader key
 *        the fence names (ha_fence) with the one this host was elected
 *        with, then every put and delete. A deposed leader (its key gone
 *        with its lease, or another create revision) gets -ESTALE and
 *        nothing is written; a fence that already knows it is not leader
 *        sends nothing. At most ETCD_MAX_TXN_OPS (128, etcd's default
 *        --max-txn-ops) changes per commit: -E2BIG beyond, and the caller
 *        splits where atomicity is not needed (store.h). Two changes to
 *        one key in a batch: the last wins (etcd refuses duplicates).
 *        commit BLOCKS the event loop for one round trip, bounded by
 *        timeout_usec (default 2 s) per endpoint tried: the engine waits
 *        for the commit either way (store.h). A commit that timed out may
 *        or may not have been applied; the engine's intents cover that
 *        case as they cover a crash.
 *
 * The HMAC key is kept in etcd, not in a credential every host has.
 * Why: a host that joins with an empty state directory must produce the
 * same fingerprints at once, and `binderyd state import` must carry the
 * single-host key along (or every secret would be re-uploaded); a
 * credential would need provisioning by hand on every host and could
 * silently differ between them. The first leader creates it in a
 * transaction that also requires it to be absent, so two hosts never
 * create two keys. Protect it as the ledger is protected: with etcd's
 * auth on, grant bindery's etcd user read/write on PREFIX and nobody else
 * read; use TLS; etcd snapshots and backups then hold the key and must be
 * kept as secrets. It is never logged and is wiped from memory on free.
 *
 * Non-logging, negative errno; messages name the endpoint.
 */
#pragma once

#include <stdint.h>

#include "etcd.h"
#include "store.h"

#define STORE_ETCD_LEDGER "ledger/"
#define STORE_ETCD_HMAC_KEY "hmac-key"
#define STORE_ETCD_ELECTION "election"
#define STORE_ETCD_PAGE 128

/* The fence: the leader key and the create revision it was elected with,
 * or -ESTALE when this process may not write (ha_fence has this shape). */
typedef int (*store_etcd_fence_fn)(const void *userdata, const char **ret_key, int64_t *ret_create_revision);

typedef struct StoreEtcdOptions {
        const char *prefix;         /* must end in '/' */
        uint64_t timeout_usec;      /* per round trip and endpoint; default 2 s */
        store_etcd_fence_fn fence;  /* NULL: read-only store */
        const void *fence_userdata;
        bool own_etcd;              /* the store frees etcd (one-shot tools) */
} StoreEtcdOptions;

/* etcd is borrowed and must outlive the store (unless own_etcd: then it
 * is the store's, also when this fails). Nothing is sent here.
 * -EINVAL for a prefix that is empty, does not start and end with '/' or
 * is longer than 256 bytes. */
int store_etcd_new(Store **ret, Etcd *etcd, const StoreEtcdOptions *o);

/* binderyd state import: sets the shared HMAC key to key (the single-host
 * state's), so fingerprints carry over and nothing is re-uploaded. 0 when
 * set or already equal; -EEXIST when etcd holds another key; -ESTALE when
 * fenced out; -EROFS read-only. Fenced like a commit. */
int store_etcd_set_hmac_key(Store *s, const uint8_t key[static STORE_HMAC_KEY_SIZE], char **reterr);

/* PREFIX "election": the election name for ha.c. Caller frees. */
char *store_etcd_election_name(const char *prefix);
