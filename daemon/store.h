/* store.h: where the ledger's records are kept — the storage seam.
 *
 * The ledger (ledger.h) is a set of records, each a key and a JSON text
 * (state format version 2; the codec is ledger.c's, a backend never
 * parses a record):
 *
 *   binding                 { "account_id": ..., "api_url": ... }
 *   resource/KIND/NAME      one owned resource (KIND: model.h's kind name)
 *   intent/KIND/CF_NAME     one pending create
 *   meta/KEY                engine bookkeeping (audit position, the
 *                           digest of the generation last enforced, ...)
 *
 * Keys are at most STORE_KEY_MAX bytes of printable ASCII other than
 * space; values at most STORE_VALUE_MAX bytes of JSON text.
 *
 * A backend offers four things:
 *   load    every record, in key order, through a callback;
 *   commit  a batch of puts and deletes applied as one — all or none —
 *           and durable when it returns 0;
 *   lock    taken when the store is opened for writing (the file
 *           backend's flock; the etcd backend's leadership);
 *   fence   checked by commit in the same atomic step as the write: a
 *           process that lost the right to write (the etcd backend's
 *           leader key has another create revision, its lease expired)
 *           gets -ESTALE and nothing is written.
 *
 * Backends: store-file.c (STATE_DIR/state.json and its journal, the
 * default) and store-etcd.c (one etcd key per record under ha.prefix,
 * each commit one transaction guarded by the leader key). Both are
 * opened by their own constructors, which know their configuration; the
 * rest of bindery sees only Store.
 *
 * The per-install HMAC key for secret fingerprints lives with the store
 * (every writer must use the same key, or fingerprints stop matching):
 * the file backend keeps it in STATE_DIR/hmac.key, the etcd backend in
 * the cluster (see store-etcd.c for where and why).
 *
 * commit may block: the file backend for its write and fsync, the etcd
 * backend for one transaction's round trip, bounded by its timeout. The
 * engine commits an intent before the Cloudflare call it announces and
 * the result after it, so it waits for the commit either way.
 *
 * Non-logging, negative errno. Messages returned through reterr name the
 * file or endpoint; the caller frees them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"

#define STORE_KEY_MAX 512U
#define STORE_VALUE_MAX (1024U * 1024U)
#define STORE_HMAC_KEY_SIZE 32U

typedef struct StoreChange {
        const char *key;
        const char *value;          /* JSON text; NULL deletes the key (absent: no-op) */
} StoreChange;

/* Called once per record by load; a negative return stops the load and
 * is returned by it. */
typedef int (*store_record_fn)(const char *key, const char *value, void *userdata);

typedef struct StoreOps {
        const char *name;           /* "file", "etcd" */
        int (*load)(void *impl, store_record_fn fn, void *userdata, char **reterr);
        /* -EROFS when opened read-only, -ESTALE when fenced out,
         * -E2BIG when the batch exceeds what one atomic step may hold
         * (the caller splits only where atomicity is not needed). */
        int (*commit)(void *impl, const StoreChange *changes, size_t n, char **reterr);
        /* The shared HMAC key; created on first use when writable
         * (-ENOKEY when read-only and none exists yet). */
        int (*hmac_key)(void *impl, uint8_t ret[static STORE_HMAC_KEY_SIZE], char **reterr);
        /* A short description for logs and status ("/var/lib/bindery",
         * "etcd http://10.0.0.1:2379 /bindery/ACCOUNT/"). */
        const char *(*describe)(void *impl);
        void (*free)(void *impl);
} StoreOps;

typedef struct Store {
        const StoreOps *ops;
        void *impl;
        bool writable;
} Store;

/* Thin dispatchers (store.c), so callers never reach into ops. */
int store_load(Store *s, store_record_fn fn, void *userdata, char **reterr);
int store_commit(Store *s, const StoreChange *changes, size_t n, char **reterr);
int store_hmac_key(Store *s, uint8_t ret[static STORE_HMAC_KEY_SIZE], char **reterr);
const char *store_describe(const Store *s);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

/* A key is valid: 1..STORE_KEY_MAX bytes, printable ASCII, no space. */
bool store_key_is_valid(const char *key) _pure_;
