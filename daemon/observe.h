/* observe.h: live state into the model, cheaply (change-detection.md).
 *
 * Every cycle: one GET /workers/scripts (decoded tolerantly), the
 * account's audit log since the last check (with an overlap window,
 * deduplicated by entry id), and one list per resource type the spec or
 * the ledger uses (KV, R2, D1, Queues, Secrets Store stores and their
 * secrets). Per-script detail (deployments → live version's bindings and
 * secret names, schedules, workers.dev) only for scripts that are new,
 * flagged by the audit log, whose list entry differs from what bindery
 * recorded (etag, modified_on, migration_tag), or that are due in the
 * staggered full refresh.
 *
 * Asynchronous on the CfApi's event loop; non-logging.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cfapi.h"
#include "plan.h"

/* Overlap when re-reading the audit log: entries can arrive late. The
 * default of the audit_overlap setting (its ingestion delay is not
 * documented; change-detection.md). */
#define OBSERVE_AUDIT_OVERLAP_USEC (15ULL * 60ULL * 1000000ULL)
/* The window's end: a little past now, so a server clock slightly ahead
 * of ours still shows the newest entries (the overlap dedups them). */
#define OBSERVE_AUDIT_BEFORE_SLACK_USEC (60ULL * 1000000ULL)
/* How much earlier than its send time an own write's entry may be dated
 * (the host's clock against Cloudflare's; the post-apply read allows the
 * same before the run's start). */
#define OBSERVE_AUDIT_OWN_SLACK_USEC (60ULL * 1000000ULL)

typedef struct Observer Observer;

typedef struct ObserveRequest {
        const Generation *g;            /* may be NULL */
        const Ledger *ledger;
        /* audit log position: the last check (µs, CLOCK_REALTIME; 0: never)
         * and the entry ids already processed in the overlap window */
        uint64_t audit_last_usec;
        char * const *audit_seen;
        /* "METHOD path" of bindery's own earlier writes whose audit entries
         * were not seen yet (ingestion lag): matched, never drift */
        char * const *own_writes;
        char * const *refresh;          /* workers due in the full refresh this cycle */
        /* Workers read in detail this cycle if the audit feed is
         * unavailable (the settings rotation): without the feed a
         * bindings-only change shows in no list. */
        char * const *rotation;
        /* The feed answers but lost entries (own writes never showed up):
         * run the rotation as if it were unavailable. */
        bool audit_gap;
        uint64_t audit_overlap_usec;    /* 0: OBSERVE_AUDIT_OVERLAP_USEC */
        /* bindery's own API token id as the feed shows it (engine.c
         * META_AUDIT_TOKEN), or NULL. Its entries are bindery's, never
         * taken for outside writes; they are left out of the feed's
         * query while no own write waits for its entry (those are
         * matched in the feed). */
        const char *audit_own_token_id;
        /* When the oldest of own_writes was sent (µs; 0: unknown). With
         * the token id known, the feed is then read twice: filtered over
         * the usual window, unfiltered from this time less
         * OBSERVE_AUDIT_OWN_SLACK_USEC (clock skew) for the own entries,
         * rather than unfiltered over the whole window. */
        uint64_t own_writes_from_usec;
        /* Keep audit_seen's ids in the result's even if not read again
         * (engine.c META_AUDIT_POST). */
        bool audit_keep_seen;
        CfPriority priority;
        uint64_t now_usec;
} ObserveRequest;

typedef struct ObserveResult {
        int error;                      /* 0 or negative errno */
        char *message;                  /* what failed, for status */
        LiveState *live;                /* owned by the result */
        uint64_t audit_checked_usec;    /* the new audit position */
        char **audit_seen;              /* every entry id returned (processed) */
        char **own_writes_left;         /* own writes still not matched */
        bool audit_ok;
        /* actor.token_id of every entry an own write was matched to, if
         * they were one and the same; else NULL */
        char *own_token_id;
        long audit_http_status;         /* of a failed audit read (0: no answer) */
        char *audit_message;            /* why the audit read failed */
        unsigned n_requests;
        unsigned n_details;             /* workers read in detail */
} ObserveResult;

void observe_result_done(ObserveResult *r);

typedef void (*observe_done_t)(ObserveResult *result, void *userdata);

/* Starts observing. done is called exactly once from the event loop (the
 * result is the callee's to keep: it may steal result->live). */
int observe_start(CfApi *api, const ObserveRequest *req, observe_done_t done, void *userdata,
                  Observer **ret);
/* Cancels (done is not called) and frees. */
Observer *observe_free(Observer *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(Observer *, observe_free);

/* Parsers, exposed for tests. Tolerant: unknown fields, unknown binding
 * types and missing optional fields never fail. */
int observe_parse_script_list(json_object *result, LiveState *live);
int observe_parse_bindings(json_object *bindings, LiveWorker *lw);
int observe_parse_resources(ResourceKind kind, json_object *items, LiveState *live, const char *store_id);
/* One entry of a list, as the lists above take them (streamed lists hand
 * them over one by one): 0 also for an entry skipped as odd or deleted;
 * ret (may be NULL): the resource added, or NULL. The lists' "listed"
 * flags are the caller's to set once the whole list has been read. */
int observe_parse_script(json_object *s, LiveState *live);
int observe_parse_resource(ResourceKind kind, json_object *x, LiveState *live, const char *store_id,
                           LiveResource **ret);
/* One Audit Logs v2 entry as bindery reads it, parsed once. */
typedef struct AuditEntry {
        char *id;               /* NULL if the entry had none */
        bool get;               /* a read (nothing to do) */
        char *key;              /* "METHOD path" (observe_audit_write_key), or NULL */
        char *script;           /* the Worker script it wrote (observe_audit_script), or NULL */
        bool secrets;           /* ...its secrets */
        /* actor.token_id is bindery's own token's id; mine: or that id is
         * unknown (then any entry may be one of bindery's writes). Own
         * writes are matched only to entries that may be bindery's. */
        bool own_token;
        bool mine;
        /* actor.token_id, borrowed from the observer's few distinct ids
         * (set by the observer only; NULL: none, or too many distinct) */
        const char *token_id;
} AuditEntry;

void audit_entry_done(AuditEntry *e);
/* Parses entry x: 1 and *ret (the caller's to done), or -ENOMEM.
 * own_token_id: bindery's API token id, or NULL if unknown. */
int observe_audit_entry(json_object *x, const char *own_token_id, AuditEntry *ret);
/* actor.token_id of entry x (borrowed from x), or NULL. */
const char *observe_audit_token_id(json_object *x);
/* Learning bindery's token id from the entries its own writes were
 * matched to: *id takes the first one's, *mixed is set once another (or
 * none) shows up. Returns 0 or -ENOMEM. */
int observe_token_agree(char **id, bool *mixed, const char *token_id);

/* Whether an audit entry (method, raw.uri) is the write "METHOD path"
 * (path relative to the account, as bindery sent it). */
bool observe_audit_matches(const char *method, const char *uri, const char *write) _pure_;
/* "METHOD path" for an audit entry (path relative to the account, no
 * query), the same form bindery records its own writes in. Caller frees;
 * NULL on OOM or when method or uri is missing. */
char *observe_audit_write_key(const char *method, const char *uri);
/* A multiset of "METHOD path" keys (a json-c object of counts), for
 * matching audit entries to own writes in O(1) each. */
json_object *observe_write_counts(char * const *writes);
bool observe_write_take(json_object *counts, const char *key);
int observe_write_leftovers(json_object *counts, char ***l);
/* The script an audit entry's raw.uri names, and whether it is a secrets
 * write. Returns 1 and *ret (caller frees) if it names a script, 0 if not. */
int observe_audit_script(const char *uri, char **ret, bool *ret_secrets);
