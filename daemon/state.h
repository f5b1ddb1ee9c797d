/* state.h: what bindery owns and what it last applied, in the state
 * directory (Config.state_dir).
 *
 *   state_dir/state.json   the ledger (json-c), mode 0600, written
 *                          atomically (temp file, fsync, rename, fsync dir)
 *
 * Format version 2 is one keyed record per thing known, so that a journal
 * (one line per changed record) or a key-value store (one key per
 * record) holds the same records without a third format:
 *
 *   { "version": 2, "binding": { "account_id", "api_url" },
 *     "records": { "resource/KIND/NAME": { ...the resource, "ledger": {...} },
 *                  "intent/KIND/CF_NAME": { ... },
 *                  "secrets/SCOPE": { KEY: HMAC, ... },
 *                  "meta/KEY": { "value": "..." } } }
 *
 * Version 1 (arrays "resources", "intents", maps "secrets", "meta", and
 * the engine's ledger fields as JSON strings in meta under
 * "engine.x.KIND.NAME") is read and lifted: those strings become each
 * resource's "ledger" object. It is written as version 2 at the next save.
 *   state_dir/lock         flock()ed by the process that may write (and the
 *                          directory itself, so deleting "lock" frees nothing)
 *   state_dir/hmac.key     32 random bytes, mode 0600: the per-install key
 *                          for secret fingerprints (HMAC-SHA256)
 *
 * The ledger records its format version; its binding to one account
 * (account_id and api_url: a state from cfsim can never drive a real
 * account); per resource (kind + spec name) the Cloudflare id and name,
 * ownership (created or adopted), the last-applied digest, the last
 * deletion and drift policies (kept after the document leaves the spec),
 * the ids/etags/version ids of bindery's own writes, the Durable Object
 * migration tags applied (workers); per secret an HMAC-SHA256 fingerprint
 * of its value (never the value); and pending create intents.
 *
 * Mutators change memory only; state_save() writes the file, and the
 * engine calls it after every successful action. A state opened without
 * the lock is read-only (state_save → -EROFS). The storage seams:
 * load = state_open(); a batch of resource and intent changes = the
 * mutators since the last save, committed as one by state_save() (one
 * atomic rename); lock = state_open(lock=true). No fence is checked yet
 * (an etcd backend would check its lease revision at commit).
 *
 * An unreadable or corrupt state.json is an error naming the file, never
 * an empty state (that would lose ownership); a missing one is a fresh
 * state. Non-logging, negative errno.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "model.h"

#define STATE_FORMAT_VERSION 2       /* 1 is still read (and lifted) */
#define STATE_MAX_SIZE (64U * 1024U * 1024U)   /* state.json larger than this is refused */
#define STATE_MAX_OWN_WRITES 32                /* own-write markers kept per resource (newest) */

typedef struct State State;

typedef enum Ownership {
        OWNERSHIP_CREATED,          /* bindery created it (or a pending intent matched) */
        OWNERSHIP_ADOPTED,          /* existed; taken over because the spec said adopt: true */
        _OWNERSHIP_MAX,
        _OWNERSHIP_INVALID = -EINVAL,
} Ownership;

const char *ownership_to_string(Ownership o) _pure_;   /* "created", "adopted" */
Ownership ownership_from_string(const char *s) _pure_;

/* One owned resource. Plain data; strings owned by the record. When
 * passed to state_put() the record is copied. */
typedef struct StateResource {
        ResourceKind kind;
        char *name;                 /* spec name (the key, with kind) */
        char *cf_id;                /* Cloudflare id (KV/D1/Queue id; script name or tag for workers); may be NULL */
        char *cf_name;              /* Cloudflare name/title */
        Ownership ownership;
        char *digest;               /* last-applied canonical digest; NULL: never applied */
        DeletionPolicy deletion;    /* last policy seen in the spec */
        DriftPolicy drift;
        char **own_writes;          /* ids/etags/version ids returned by bindery's writes, oldest first */
        char **migration_tags;      /* Durable Object migration tags applied (workers), in order */
        char *run_id;               /* run that last wrote it */
        json_object *ledger;        /* the engine's typed ledger fields (etag, crons, consumers, DO
                                     * classes, secret HMACs, ...: ledger_entry_extras_to_json());
                                     * a reference, NULL if none */
        uint64_t created_usec;      /* CLOCK_REALTIME: recorded in state */
        uint64_t updated_usec;
} StateResource;

void state_resource_done(StateResource *r);

/* A create about to happen (written before the call, cleared after the
 * result is recorded). */
typedef struct StateIntent {
        ResourceKind kind;
        char *name;                 /* spec name */
        char *cf_name;              /* the Cloudflare name/title the create uses */
        char *run_id;
        uint64_t time_usec;         /* CLOCK_REALTIME */
} StateIntent;

/* Opens dir. With lock, creates dir (0700) if missing, takes a
 * non-blocking flock on dir/lock and on dir itself (-EBUSY if another
 * process holds either) and removes the temporaries a kill left
 * (state.json.tmp.PID, hmac.key.tmp.PID);
 * without, only reads (a missing dir or file is a fresh, empty state).
 * Loads state.json: missing → fresh; larger than STATE_MAX_SIZE → -EFBIG;
 * unreadable → its errno; not valid JSON, wrong shape or a newer format
 * version → -EBADMSG (or -EPROTONOSUPPORT for the version). On failure,
 * if reterr_message is non-NULL, it receives a message naming the file
 * ("/var/lib/bindery/state.json: not valid JSON at offset 120"); caller
 * frees. */
int state_open(const char *dir, bool lock, State **ret, char **reterr_message);

/* Releases the lock and frees everything (the HMAC key is wiped). Does
 * not save. Accepts NULL; returns NULL. */
State *state_free(State *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(State *, state_free);

bool state_is_locked(const State *s) _pure_;
/* The state file's path (borrowed). */
const char *state_path(const State *s) _pure_;

/* Binds the state to an account. A state without a binding (fresh) takes
 * this one (recorded at the next save); a state bound to a different
 * account_id or api_url (compared after removing trailing '/') returns
 * -EXDEV and changes nothing. */
int state_bind(State *s, const char *account_id, const char *api_url);
/* The recorded binding (borrowed; NULL for a fresh, unbound state). */
const char *state_account_id(const State *s) _pure_;
const char *state_api_url(const State *s) _pure_;

/* Writes state.json atomically (mode 0600). -EROFS without the lock,
 * -EDESTADDRREQ if never bound, or the write's errno. */
int state_save(State *s);

/* ---- Resources ---- */

/* Looks up (kind, spec name); borrowed, valid until the next mutation of
 * that resource. NULL if not owned. */
const StateResource *state_get(const State *s, ResourceKind kind, const char *name);
/* Finds an owned resource by its Cloudflare id, or (cf_id NULL) name. */
const StateResource *state_find_cf(const State *s, ResourceKind kind, const char *cf_id,
                                   const char *cf_name);
/* All records, sorted by kind then name. Borrowed; invalidated by any
 * mutation. */
const StateResource *const *state_resources(const State *s, size_t *ret_n);

/* Inserts or replaces the record for (r->kind, r->name), deep-copied.
 * created_usec is kept from an existing record (set to now for a new one
 * when 0); updated_usec is set to now. Returns 0, -EINVAL, -ENOMEM. */
int state_put(State *s, const StateResource *r);
/* Forgets a resource (after it was deleted, or released). -ENOENT if
 * absent. Its secret fingerprints (state_secret_*) stay until forgotten
 * with state_secret_forget. */
int state_remove(State *s, ResourceKind kind, const char *name);

/* Field updates on an existing record (-ENOENT otherwise). */
int state_set_digest(State *s, ResourceKind kind, const char *name, const char *digest);
int state_set_policy(State *s, ResourceKind kind, const char *name, DeletionPolicy deletion,
                     DriftPolicy drift);
/* Remembers marker (an id, etag or version id returned by one of
 * bindery's own writes) on the resource; only the newest
 * STATE_MAX_OWN_WRITES are kept. Duplicates are ignored. */
int state_add_own_write(State *s, ResourceKind kind, const char *name, const char *marker);
bool state_is_own_write(const State *s, ResourceKind kind, const char *name, const char *marker);
/* Appends a Durable Object migration tag to a worker's ledger (no-op if
 * already there). */
int state_add_migration_tag(State *s, const char *worker, const char *tag);

/* ---- Intents ---- */

/* Records that a create of kind/cf_name (spec name `name`) is about to be
 * made by run_id. Replaces an intent for the same kind and cf_name.
 * Caller saves before making the call. */
int state_intent_add(State *s, ResourceKind kind, const char *name, const char *cf_name,
                     const char *run_id);
/* Clears it (after the create is recorded with state_put). -ENOENT if none. */
int state_intent_clear(State *s, ResourceKind kind, const char *cf_name);
/* The pending intent for kind/cf_name, or NULL. Borrowed. */
const StateIntent *state_intent_find(const State *s, ResourceKind kind, const char *cf_name);
const StateIntent *const *state_intents(const State *s, size_t *ret_n);

/* ---- Secret fingerprints ----
 *
 * scope + key name one secret: ("worker:api", "API_KEY") for a worker's
 * secret binding, ("store:default", "api-token") for a Secrets Store
 * secret. The fingerprint is HMAC-SHA256 under the per-install key
 * (hex), so state.json never holds anything that can be checked against
 * a guessed value without the key. The key file is created on first use
 * with getrandom(); without the lock a missing key is not created
 * (-ENOKEY): nothing can have been fingerprinted under it anyway. */

/* Why the key file is unusable (after state_secret_hmac() failed with
 * -EBADMSG): a message naming the file, or NULL. Borrowed. */
const char *state_key_error(const State *s);

/* Computes the fingerprint of a value (hex, 64 chars + NUL). */
int state_secret_hmac(State *s, const void *value, size_t size, char ret[static 65]);
/* Records the fingerprint of value for scope/key. */
int state_secret_set(State *s, const char *scope, const char *key, const void *value, size_t size);
/* 1 if the recorded fingerprint matches value, 0 if it differs or none is
 * recorded, negative errno on failure. Constant-time comparison. */
int state_secret_matches(State *s, const char *scope, const char *key, const void *value,
                         size_t size);
/* The recorded fingerprint (borrowed) or NULL. */
const char *state_secret_get(const State *s, const char *scope, const char *key);
/* Forgets one (key non-NULL) or every fingerprint in scope. */
int state_secret_forget(State *s, const char *scope, const char *key);

/* ---- Small named values (the engine's bookkeeping, e.g. the audit-log
 * position). Strings, copied. value NULL removes. ---- */
int state_set_meta(State *s, const char *key, const char *value);
const char *state_get_meta(const State *s, const char *key);

/* The whole ledger as JSON (a new reference; caller puts), as written to
 * state.json (format version 2). For tests and the fuzzer. */
json_object *state_to_json(const State *s);
