/* httpd.h: the HTTP API (binderyd(8) "HTTP API"), libmicrohttpd driven
 * from the daemon's one sd-event loop.
 *
 * Every MHD daemon runs in MHD_USE_EPOLL mode: its epoll fd is one io
 * source of the loop, and one timer is re-armed from MHD_get_timeout()
 * after every MHD_run(). Handlers therefore run on the loop's thread and
 * may read the daemon's state without locks; they must not block.
 *
 * The server knows nothing about engines or specs: what it serves comes
 * from an HttpdBackend (manager.c in the daemon, a stub in test-httpd.c).
 * Waiting requests (POST /v1/reconcile?wait=, GET /v1/plan while a plan
 * runs) are suspended and re-evaluated whenever the backend calls
 * httpd_wake().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "cleanup.h"

typedef struct Httpd Httpd;

/* High availability: a leader's answer relayed by a follower. */
typedef struct HttpdRelay {
        unsigned status;
        const char *content_type;   /* may be NULL */
        const char *location;       /* the leader's Location header, may be NULL */
        const char *body;
        size_t size;
} HttpdRelay;

/* Called once with the leader's answer, or NULL when it could not be
 * had (the request is then answered 502). */
typedef void (*httpd_relay_done_t)(const HttpdRelay *answer, void *cookie);

/* Header a follower adds to what it forwards: a host that is not leader
 * either answers 503 instead of forwarding again (no loops). */
#define HTTPD_FORWARDED_HEADER "X-Bindery-Forwarded"

typedef struct HttpdBackend {
        /* GET /v1/status: a new reference (the caller puts it). */
        json_object *(*status)(void *userdata);
        /* A number that moves whenever status() or runs() would answer
         * differently. With it, the plain JSON forms of GET /v1/status and
         * GET /v1/runs are serialised once per change and served as
         * prepared bytes with a strong ETag (If-None-Match: 304); ?pretty
         * and the tables stay built per request, without an ETag. NULL:
         * everything is built per request. */
        uint64_t (*status_version)(void *userdata);
        /* GET /v1/runs: a new reference to an array, newest first. */
        json_object *(*runs)(void *userdata);
        /* GET /v1/runs/{id}: a new reference, or NULL if unknown (404).
         * A run object has "id", "state" ("queued", "running", "done") and,
         * once done, "result" (engine.h run_result_to_string). */
        json_object *(*run)(void *userdata, const char *id);
        /* POST /v1/reconcile and a webhook push: queue a reconcile (one
         * running, one pending: triggers coalesce). Returns 0 and the id
         * of the run that will serve this trigger (caller frees), or a
         * negative errno (-ESHUTDOWN while stopping). */
        int (*trigger)(void *userdata, const char *reason, bool force, char **ret_run_id);
        /* POST /v1/reconcile: like trigger, but the backend first loads the
         * spec directory as it is now. With expect (a hex digest prefix of
         * at least 12 digits; NULL: none) the loaded generation must match:
         * else -ESTALE and *ret_detail says what the directory produced
         * (412). A match settles that generation at once (prune_settle).
         * NULL: the server falls back to trigger. */
        int (*trigger_load)(void *userdata, const char *reason, bool force, const char *expect,
                            char **ret_run_id, json_object **ret_detail);
        /* GET /v1/plan: 0 and a new reference to a plan report no older
         * than a few seconds; -EINPROGRESS if a plan is now running (the
         * request waits for httpd_wake()); -EBUSY if a reconcile runs and
         * nothing is cached (503 with Retry-After: *ret_retry_after). */
        int (*plan)(void *userdata, json_object **ret, unsigned *ret_retry_after);
        /* GET /metrics: Prometheus text exposition (caller frees). */
        char *(*metrics)(void *userdata);
        /* GET /readyz: the first spec load succeeded. */
        bool (*ready)(void *userdata);

        /* High availability (NULL: single host). Asked first by POST
         * /v1/reconcile and GET /v1/plan: 0 serve here (this host leads,
         * or there is no HA); 1 not here: *ret_url is the leader's base
         * URL (caller frees) and *ret_forward says whether to relay the
         * request (forward) or answer 307 to it; -EAGAIN: no leader is
         * known (503, Retry-After). */
        int (*leader)(void *userdata, char **ret_url, bool *ret_forward);
        /* Sends method url (the leader's URL with the path and query)
         * with the client's Authorization header and body, adding
         * HTTPD_FORWARDED_HEADER; calls done once unless cancelled.
         * *ret_handle identifies it for forward_cancel. */
        int (*forward)(void *userdata, const char *method, const char *url, const char *authorization,
                       const char *body, size_t size, uint64_t timeout_usec, httpd_relay_done_t done,
                       void *cookie, void **ret_handle);
        void (*forward_cancel)(void *userdata, void *handle);
} HttpdBackend;

typedef struct HttpdSettings {
        char **listen;              /* "HOST:PORT" to bind when no fds are given */
        const int *fds;             /* listening sockets passed by systemd */
        size_t n_fds;
        unsigned connection_limit;  /* default 1024; past it the oldest connection that has not
                                     * sent its whole request is closed */
        unsigned per_address_limit; /* per client address; default 768; the same */
        unsigned request_deadline_sec; /* to deliver a whole request (headers and body) from
                                     * the accept or the last answer; default 15 */
        unsigned connection_timeout_sec; /* idle connections; default 30 */
        size_t memory_limit;        /* per connection; default 64 KiB */
        size_t body_max;            /* request body; default 4 KiB */
        size_t webhook_body_max;    /* webhook body; default 1 MiB */
        unsigned wait_max_sec;      /* cap on ?wait=; default 3600 */
} HttpdSettings;

/* Starts listening. The settings are copied; fds are taken over (closed
 * by httpd_free). Returns -EADDRINUSE etc. Logs its own errors. */
int httpd_new(Httpd **ret, sd_event *event, const HttpdSettings *s,
              const HttpdBackend *backend, void *userdata);
/* Stops listening; suspended requests are answered 503 first. */
Httpd *httpd_free(Httpd *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(Httpd *, httpd_free);

/* Sets the bearer token (NULL: every POST but the webhook is refused),
 * whether GETs need it too, and the webhook secret (NULL: the webhook is
 * off). Values are copied and wiped on change and on free. */
int httpd_set_auth(Httpd *h, const char *token, size_t token_size, bool auth_reads,
                   const char *webhook_secret, size_t webhook_secret_size);

/* Only pushes whose payload "ref" equals ref trigger a run; others are
 * answered 200 {"ignored": true} and logged (NULL: every push). */
int httpd_set_webhook_ref(Httpd *h, const char *ref);

/* Re-evaluates every waiting request (a run or plan changed state). */
void httpd_wake(Httpd *h);

/* Answers every waiting request and refuses new work (503): shutdown. */
void httpd_shutdown(Httpd *h);

/* Open connections, those closed at a limit, those closed at the request
 * deadline (tests, metrics). */
void httpd_connection_stats(const Httpd *h, size_t *ret_open, uint64_t *ret_evicted, uint64_t *ret_deadline);

/* Hands a connected stream socket to the first listener, as if accepted
 * from 127.0.0.1 (tests and fuzzing: a socketpair end). The fd is taken
 * over, also on failure. */
int httpd_add_connection(Httpd *h, int fd);

/* The port of listener i (for tests using port 0); 0 if none. */
uint16_t httpd_port(const Httpd *h, size_t i);

/* HMAC-SHA256 of body under key as "sha256=<hex>" (72 bytes with NUL). */
int httpd_webhook_signature(const void *key, size_t key_size, const void *body, size_t size,
                            char ret[static 72]);
