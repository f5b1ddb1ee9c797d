/* apply.h: executes a plan as a DAG on the event loop.
 *
 * Actions start as soon as every action they depend on has succeeded, up
 * to `concurrency` at a time. Each success is recorded in the ledger and
 * persisted (the save hook, once for the successes that completed
 * together) before anything that depends on it starts;
 * before every create an intent is recorded and persisted, so a kill
 * between the create call and its record is recognised on the next run.
 * An action whose dependency failed or was blocked is skipped.
 *
 * Worker uploads are multipart (cloudflare-api.md §2.2) with
 * keep_bindings ["secret_text","secret_key"], so secrets bindery does
 * not send survive. Secrets go through PUT .../secrets; their values are
 * read at the moment of the call (the secret hook), never logged or kept,
 * and wiped after use. Non-logging.
 */
#pragma once

#include <stdbool.h>

#include <systemd/sd-event.h>

#include "cfapi.h"
#include "plan.h"

typedef struct Applier Applier;

typedef struct ApplyHooks {
        /* Persists the ledger (one commit). Called once per batch of
         * successes, and before each batch of creates starts (their
         * intents). A failure fails the actions of the batch. */
        int (*save)(void *userdata);
        /* Reads a secret value (caller of the hook wipes it). */
        int (*secret_read)(void *userdata, const SecretRef *ref, char **ret_value, size_t *ret_size,
                           char **reterr_message);
        /* The HMAC fingerprint of a value, 64 hex + NUL. */
        int (*secret_hmac)(void *userdata, const void *value, size_t size, char ret[static 65]);
        /* An action finished (for logs and status); error 0 on success. */
        void (*action_done)(void *userdata, const Action *a, int error, const char *message);
        void *userdata;
} ApplyHooks;

typedef struct ApplyResult {
        bool started;
        bool done;
        bool skipped;           /* a dependency failed */
        bool recorded;          /* succeeded; waiting for the state to be saved */
        int error;
        char *message;
} ApplyResult;

typedef void (*apply_done_t)(Applier *a, void *userdata);

/* Starts executing plan. g, plan, ledger and live must outlive the
 * applier. Returns 0 (done is called later, from the loop, exactly once)
 * or a negative errno. */
int apply_start(CfApi *api, sd_event *event, const Generation *g, const Plan *plan, Ledger *ledger,
                const LiveState *live, unsigned concurrency, const char *run_id, const ApplyHooks *hooks,
                apply_done_t done, void *userdata, Applier **ret);
/* How long an upload refused because Cloudflare cannot find a binding
 * target that this run just created is retried (default 30 s; every
 * attempt goes through the request budget). Call before the loop runs. */
void apply_set_target_wait(Applier *a, uint64_t usec);

/* Stops starting new actions; in-flight requests finish. */
void apply_cancel(Applier *a);
/* Frees; if requests are in flight they are abandoned safely (no callback). */
Applier *apply_free(Applier *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(Applier *, apply_free);

const ApplyResult *apply_result(const Applier *a, size_t index);
unsigned apply_n_writes(const Applier *a) _pure_;
/* Method + path of every write made, for matching the audit log later. */
char * const *apply_writes(const Applier *a) _pure_;
/* When each of apply_writes() was submitted (CLOCK_REALTIME µs), or NULL
 * when the list is incomplete. */
const uint64_t *apply_write_times(const Applier *a) _pure_;
/* When the last write was submitted (CLOCK_REALTIME µs); 0 when none was
 * or the writes list is incomplete. */
uint64_t apply_last_write_usec(const Applier *a) _pure_;

/* The upload metadata for a worker (exposed for tests): its bindings'
 * targets resolved through the ledger, then built by
 * cfreq_worker_metadata, with the migration of action a (NULL: none).
 * New reference or NULL with *reterr (caller frees) naming what failed. */
json_object *apply_worker_metadata(const Generation *g, const Worker *w, const Ledger *ledger,
                                   const LiveState *live, const Action *a, char **reterr);
