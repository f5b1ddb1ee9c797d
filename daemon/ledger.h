/* ledger.h: what bindery owns and last applied — the ledger is the state.
 *
 * A pure module (no I/O, no clock, no logging): the engine loads it from
 * a Store (store.h) once, the planner reads it, the applier and the
 * engine change it, and ledger_commit() hands the records changed since
 * the last commit to the store as one batch.
 *
 * What it holds, each a record of store.h's key space:
 *
 *   binding                the account this state belongs to
 *                          (account_id, api_url; a mismatch is -EXDEV)
 *   resource/KIND/DOC      one owned resource (LedgerEntry): ids and
 *                          names, ownership, digest, deletion and drift
 *                          policy, etag, crons, consumers, Durable Object
 *                          classes and migration tags, secret
 *                          fingerprints (a worker's per binding, a store
 *                          secret's own), jurisdiction
 *   intent/KIND/CF_NAME    a create about to be made (LedgerIntent)
 *   meta/KEY               the engine's bookkeeping (audit position, ...)
 *
 * The JSON of each record is the state file's format version 2 (so a
 * snapshot written from these records is read by every binderyd since
 * version 2). Lookups by (kind, doc), (kind, Cloudflare name) and
 * (kind, Cloudflare id) go through hash sets of the entries (O(1)).
 *
 * Changes: a new entry (ledger_ensure) is marked changed; code that
 * edits an entry's fields calls ledger_touch() afterwards (it also
 * re-indexes a changed name or id). Intents, meta and the binding are
 * marked by their setters. ledger_changes() encodes each marked record
 * and compares it with what was last committed: only records that
 * differ are in the batch (of every record but the binding the ledger
 * keeps a digest of the committed text, not the text: the store has
 * it). ledger_discard() puts the committed records back, resources and
 * intents read back from the store, meta values from the value they
 * had at their first change since the commit (a dry run's observations
 * are not kept).
 *
 * Negative errno; decode errors come with a message naming the record's
 * key and field (caller frees).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "hashset.h"
#include "model.h"
#include "store.h"

typedef struct LedgerSecret {
        char *name;
        char *hmac;                 /* HMAC-SHA256 (hex) under the per-install key */
} LedgerSecret;

typedef struct LedgerEntry {
        ResourceKind kind;
        char *doc;                  /* spec document name (key, with kind); never changes,
                                     * stored in the entry's own block: never free it */
        char *name;                 /* Cloudflare name */
        char *id;                   /* Cloudflare id (R2 and workers: the name) */
        char *store_id;             /* store secrets */
        char *jurisdiction;         /* R2: the bucket's jurisdiction (NULL: default); every call sends it */
        char *digest;               /* what was last applied (plan_*_digest) */
        DeletionPolicy deletion;    /* last recorded policy */
        DriftPolicy drift;          /* last recorded policy (kept after the document leaves the spec) */
        bool adopted;
        /* workers */
        char *etag;                 /* from our last upload, or last seen in sync */
        char *modified_on;
        char *migration_tag;        /* last migration tag applied */
        char **migration_tags;      /* every tag applied, oldest first (the record's history) */
        char **do_classes;          /* classes this worker has been given */
        char **crons;               /* last schedules applied (NULL: never set) */
        bool crons_set;
        int subdomain;              /* -1 never set */
        char **consumers;           /* queue names we attached this worker to */
        char **binding_names;       /* non-secret bindings of our last upload (NULL: not recorded) */
        LedgerSecret *secrets;
        size_t n_secrets;
        /* store secrets: hmac of the value */
        char *hmac;
        /* bookkeeping, set when the record is committed */
        char *run_id;               /* run that last wrote it (shared with the entries of that
                                     * run: the ledger's, never free or assign it) */
        uint64_t created_usec;      /* CLOCK_REALTIME */
        uint64_t updated_usec;
        bool dirty;                 /* touched since the last commit (not persisted) */
        /* private: the name and id this entry is indexed under (doc
         * itself when equal to it, not a copy) */
        char *indexed_name;
        char *indexed_id;
        /* private: the SHA-256 of the record's text last committed */
        bool committed;
        uint8_t committed_md[32];
} LedgerEntry;

typedef struct LedgerIntent {
        ResourceKind kind;
        char *name;                 /* Cloudflare name */
        char *run_id;
        uint64_t time_usec;         /* CLOCK_REALTIME; 0: stamped at commit */
        /* private: as LedgerEntry's */
        bool committed;
        uint8_t committed_md[32];
} LedgerIntent;

typedef struct Ledger {
        LedgerEntry **entries;      /* sorted by kind, then doc; pointers stay valid until removed */
        size_t n_entries;
        size_t n_entries_allocated; /* private */
        LedgerIntent **intents;     /* in the order added */
        size_t n_intents;
        /* private */
        char *account_id;
        char *api_url;
        char *run_id;               /* stamped on records committed */
        HashSet by_doc;             /* entries by (kind, doc) */
        HashSet by_name;            /* entries by (kind, indexed_name) */
        HashSet by_id;              /* entries by (kind, indexed_id) */
        HashSet intents_by_name;    /* intents by (kind, name) */
        HashSet run_ids;            /* the entries' run ids, one counted copy each */
        struct lh_table *meta;      /* KEY → value */
        struct lh_table *committed; /* record key → the JSON text last committed, of the binding;
                                     * of a meta value, or a resource or intent the ledger does
                                     * not hold (removed since), the SHA-256 of its text (the
                                     * store has the text; held ones keep it in committed_md) */
        struct lh_table *meta_undo; /* "meta/KEY" → its value as committed ("+VALUE", "-": none),
                                     * kept from its first change to the commit or discard */
        struct lh_table *dirty;     /* record keys changed since */
        size_t n_index_twins;       /* times a name or id was indexed by another entry already */
} Ledger;

Ledger *ledger_new(void);
Ledger *ledger_free(Ledger *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(Ledger *, ledger_free);

/* Loads every record of the store into a new ledger (nothing marked
 * changed). -EBADMSG with a message naming the key and field for a bad
 * record, or the store's error. */
int ledger_load(Store *s, Ledger **ret, char **reterr);

/* Decodes one record into the ledger, replacing what it had under that
 * key, and remembers it as committed. For ledger_load, tests and the
 * fuzzer. Records of the retired "secrets/SCOPE" type are ignored. */
int ledger_load_record(Ledger *l, const char *key, const char *value, char **reterr);

/* ---- Entries ---- */

LedgerEntry *ledger_find(const Ledger *l, ResourceKind kind, const char *doc);
LedgerEntry *ledger_find_by_name(const Ledger *l, ResourceKind kind, const char *name);
LedgerEntry *ledger_find_by_id(const Ledger *l, ResourceKind kind, const char *id);
/* Adds (marked changed) or returns the entry for (kind, doc). NULL on OOM. */
LedgerEntry *ledger_ensure(Ledger *l, ResourceKind kind, const char *doc);
/* Marks e changed and re-indexes its name and id: call after editing it. */
void ledger_touch(Ledger *l, LedgerEntry *e);
/* Forgets (kind, doc): -ENOENT if absent. */
int ledger_remove(Ledger *l, ResourceKind kind, const char *doc);
const LedgerSecret *ledger_entry_secret(const LedgerEntry *e, const char *name);
int ledger_entry_set_secret(LedgerEntry *e, const char *name, const char *hmac);
int ledger_entry_remove_secret(LedgerEntry *e, const char *name);

/* ---- Intents ---- */

const LedgerIntent *ledger_find_intent(const Ledger *l, ResourceKind kind, const char *name);
/* Adds or replaces the intent for (kind, name). */
int ledger_add_intent(Ledger *l, ResourceKind kind, const char *name, const char *run_id);
int ledger_remove_intent(Ledger *l, ResourceKind kind, const char *name);

/* ---- The account binding ---- */

/* An unbound ledger takes this binding (committed with the next batch);
 * a ledger bound to a different account_id or api_url (compared after
 * removing trailing '/') returns -EXDEV and changes nothing. */
int ledger_bind(Ledger *l, const char *account_id, const char *api_url);
const char *ledger_account_id(const Ledger *l) _pure_;
const char *ledger_api_url(const Ledger *l) _pure_;

/* ---- Named values (the engine's bookkeeping). value NULL removes. ---- */

int ledger_set_meta(Ledger *l, const char *key, const char *value);
const char *ledger_get_meta(const Ledger *l, const char *key);

/* ---- Changes ---- */

/* The run stamped on resource records committed from now on (copied;
 * NULL clears). */
int ledger_set_run_id(Ledger *l, const char *run_id);

/* The batch since the last commit: one StoreChange per record whose
 * encoding differs from what was committed (value NULL: deleted).
 * Changed resources get updated_usec = now_usec (created_usec too when
 * new) and the run id. The keys and values are owned by the array;
 * free it with ledger_changes_free(). -EDESTADDRREQ if never bound. */
int ledger_changes(Ledger *l, uint64_t now_usec, StoreChange **ret, size_t *ret_n);
void ledger_changes_free(StoreChange *c, size_t n);

/* Commits ledger_changes() to s as one batch; on success they become
 * the committed records. On failure nothing is forgotten: the records
 * stay marked and go with the next commit. Returns the store's error
 * (-EROFS, -ESTALE when fenced out, ...) with its message in reterr. */
int ledger_commit(Ledger *l, Store *s, char **reterr);
/* Whether anything is marked changed since the last commit. */
bool ledger_has_changes(const Ledger *l) _pure_;
/* Puts every record changed since the last commit back as committed,
 * reading the committed texts of resources and intents back from s (the
 * ledger keeps only their digests; s is read only when a changed one
 * was committed); a meta value gets back what it was before its first
 * change (the ledger kept that until the commit). When
 * the store cannot be read, its error is returned and the records stay
 * marked (they go with the next commit). */
int ledger_discard(Ledger *l, Store *s, char **reterr);

/* The text of one record as it would be committed (caller frees), or
 * NULL in *ret when the ledger has no such record. For tests. */
int ledger_encode_record(Ledger *l, const char *key, char **ret);
