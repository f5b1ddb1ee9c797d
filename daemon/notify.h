/* notify.h: notifications out (binderyd.yaml "notify:").
 *
 * After each reconcile the manager hands the run to notifier_run_finished();
 * for every target whose events include what happened it queues one POST of
 *
 *   {"event": "failed|blocked|drift|recovered", "run_id": "...",
 *    "result": "...", "generation": "<digest>",
 *    "resources": [{"kind", "name", "state", "reason"}], "text": "one line"}
 *
 * (text, so a Slack-compatible incoming webhook shows it), with
 * "X-Bindery-Signature-256: sha256=HEX" (HMAC-SHA256 of the body under the
 * target's secret, httpd_webhook_signature(): the same form GitHub uses)
 * when a secret is set. The secret is read at each send
 * and wiped at once; it never goes into a body, a header other than the
 * signature, or a log line.
 *
 * When: failed and blocked on a run with that result, drift when a run
 * finds resources drifted (drift: report), recovered on the first run that
 * is neither failed nor blocked after one that was. A run whose event,
 * resources and reasons equal the previous run's sends nothing again (an
 * interval timer does not page every 5 minutes for the same failure).
 *
 * Delivery never blocks the loop: libcurl multi on the sd-event loop
 * (curl-glue), connect timeout 5 s, whole request 10 s; a refused
 * connection, a timeout, 408, 429 or 5xx is retried with exponential
 * backoff (1 s doubling to 60 s, ±10 % jitter) for at most
 * NOTIFY_RETRY_WINDOW_USEC; any other answer ends the delivery. At most
 * NOTIFY_QUEUE_MAX deliveries wait; beyond that new ones are dropped
 * (logged). The pure parts (which events, the body, the signature) are
 * separate functions so tests check them without a network.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "cleanup.h"
#include "config.h"
#include "util.h"

#define NOTIFY_QUEUE_MAX 64
#define NOTIFY_RETRY_WINDOW_USEC (10 * 60 * USEC_PER_SEC)
#define NOTIFY_RESOURCES_MAX 100
#define NOTIFY_REASON_MAX 1024

/* What a finished run tells the notifier. */
typedef struct NotifyRun {
        const char *run_id;
        const char *result;         /* run_result_to_string() */
        bool failed, blocked;
        const char *generation;     /* digest, or NULL */
        json_object *resources;     /* the status array (engine_status_json), or NULL */
} NotifyRun;

/* What the previous runs left: for "recovered" and repeat suppression. */
typedef struct NotifyMemory {
        bool bad;                   /* the last run was failed or blocked */
        char last[65];              /* sha256 hex of the last sent (event, resources, reasons); "" none */
        char last_drift[65];
} NotifyMemory;

/* Pure: the events this run fires (1 << NotifyEvent), updating memory. */
unsigned notify_events(const NotifyRun *run, NotifyMemory *memory);
/* Pure: the JSON body of one event. Caller frees. NULL on OOM. */
char *notify_body(NotifyEvent ev, const NotifyRun *run);

typedef struct Notifier Notifier;

int notifier_new(Notifier **ret, sd_event *event);
/* Drops what still waits (logged at debug). Accepts NULL. */
Notifier *notifier_free(Notifier *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(Notifier *, notifier_free);

/* Queues the events of a finished run for config's targets. Never blocks;
 * returns the number of deliveries queued, or -ENOMEM. */
int notifier_run_finished(Notifier *n, const Config *config, const NotifyRun *run);
/* Counters for /metrics: sent (2xx), failed (given up), dropped (queue full). */
void notifier_counts(const Notifier *n, unsigned long *sent, unsigned long *failed, unsigned long *dropped);
