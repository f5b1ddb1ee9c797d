/* cfapi.h: the Cloudflare REST client (v4), asynchronous on an sd-event
 * loop through curl-glue.
 *
 * Every request is queued, costs one token of the request budget per
 * attempt (retries included), runs with at most `concurrency` transfers in
 * flight, has a connect and a total timeout, and is retried with
 * exponential backoff and full jitter on 429, 5xx, connection errors and
 * timeouts (honouring Retry-After) up to a retry cap and an overall
 * deadline. The {success, errors, messages, result, result_info} envelope
 * is decoded (cfapi-decode.h) and Cloudflare's errors are turned into a
 * negative errno, with the API's own messages handed back beside it.
 *
 * The API token is copied at cfapi_new() and wiped at cfapi_free(); it is
 * sent only as the Authorization header (redirects are not followed) and
 * never appears in a message, an error string or the metrics. It is also
 * registered with log_register_secret() as a second guard.
 *
 * Single-threaded, non-logging (debug at most), negative errno.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "cfapi-decode.h"
#include "cleanup.h"

typedef struct CfApi CfApi;
typedef struct Config Config;

/* Who is asking. Queued requests are started highest priority first; LOW
 * requests (plan, status refreshes) may also not spend the last part of
 * the budget reserved for the reconcile (budget.h), so a plan can never
 * starve an apply. */
typedef enum CfPriority {
        CFAPI_PRIORITY_LOW,         /* GET /v1/plan, read-only CLI plan */
        CFAPI_PRIORITY_NORMAL,      /* the reconcile's observe and apply */
        _CFAPI_PRIORITY_MAX,
        _CFAPI_PRIORITY_INVALID = -EINVAL,
} CfPriority;

typedef struct CfApiOptions {
        const char *api_url;        /* e.g. "https://api.cloudflare.com/client/v4"; required */
        const char *account_id;     /* required for account-relative paths */
        const void *token;          /* API token bytes; copied, wiped on free; may be NULL (no header) */
        size_t token_size;
        unsigned concurrency;       /* transfers in flight; default 8 */
        unsigned budget;            /* requests per window; default 1000 */
        uint64_t budget_window_usec;        /* default 5 min */
        uint64_t connect_timeout_usec;      /* default 10 s */
        uint64_t request_timeout_usec;      /* per attempt, total; default 60 s */
        unsigned max_retries;               /* retries after the first attempt; default 6 */
        uint64_t deadline_usec;             /* per request, from its first attempt (queueing for budget
                                             * does not count): all attempts and backoffs; default 10 min */
        uint64_t backoff_base_usec;         /* default 500 ms */
        uint64_t backoff_max_usec;          /* default 60 s */
        size_t max_response_size;           /* body cap; default 32 MiB */
        const char *user_agent;             /* default "binderyd/VERSION", or with agent_name
                                             * "binderyd/VERSION (NAME)" */
        const char *agent_name;             /* this host's name in the user agent (ha.name) */
        const char *budget_dir;             /* shares the budget with every process on this
                                             * directory (its "request-budget" file); NULL: local */
} CfApiOptions;

/* Fills o with the defaults above and the values of c (api_url,
 * account_id, concurrency, request_budget, request_window_usec, state_dir
 * as budget_dir). The
 * strings point into c. The token is not part of Config (it is a secret
 * reference); the caller resolves it (secrets.h) and sets o->token. */
void cfapi_options_from_config(CfApiOptions *o, const Config *c);

/* Creates a client on event. Copies everything in o (the token into a
 * buffer wiped on free). Zero fields take their defaults. Calls
 * curl_global_init() (reference-counted; released by cfapi_free). Returns
 * 0, -EINVAL (no api_url, an api_url that is not http(s)://, a token with
 * CR, LF or NUL), -ENOMEM, -EIO (libcurl). */
int cfapi_new(CfApi **ret, sd_event *event, const CfApiOptions *o);

/* Cancels everything (as cfapi_cancel_all) and frees the client; wipes
 * the token. Accepts NULL; returns NULL. Must not be called from inside
 * one of its own callbacks: defer it instead. */
CfApi *cfapi_free(CfApi *api);
DEFINE_TRIVIAL_CLEANUP_FUNC(CfApi *, cfapi_free);

/* The write gate: when set, every request other than a GET asks fn just
 * before it is sent on the wire (libcurl's CURLOPT_PREREQFUNCTION: after
 * the connection is up, for the first attempt and every retry), and is
 * not sent when fn returns false: it fails with -EPERM, not retried, and
 * nothing reached Cloudflare. High availability uses it so a process that
 * lost its lease writes nothing; cfapi knows nothing about why. NULL
 * clears it. */
typedef bool (*cfapi_may_send_t)(const char *method, void *userdata);
void cfapi_set_may_send(CfApi *api, cfapi_may_send_t fn, void *userdata);

/* Changes concurrency and budget (SIGHUP). Tokens already spent stay
 * spent. 0 keeps the current value. */
void cfapi_set_limits(CfApi *api, unsigned concurrency, unsigned budget, uint64_t window_usec);

/* ---- Multipart bodies (worker uploads) ---- */

/* A multipart/form-data body built in memory, so a retry can resend it.
 * For a worker upload: cfapi_multipart_add(m, "metadata", NULL,
 * "application/json", json, len), then one part per module with name and
 * filename = the module path and the module's content type
 * ("application/javascript+module", "text/javascript", "application/wasm",
 * "text/plain", "application/octet-stream", ...). */
typedef struct CfMultipart CfMultipart;

CfMultipart *cfapi_multipart_new(void);
/* Frees the parts, wiping their bytes. Accepts NULL; returns NULL. */
CfMultipart *cfapi_multipart_free(CfMultipart *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(CfMultipart *, cfapi_multipart_free);

/* Appends a part. name is required; filename and content_type may be NULL
 * (a plain form field). The data are copied. name, filename and
 * content_type must not contain '"', CR or LF (-EINVAL). Returns 0,
 * -EINVAL, -ENOMEM, -EFBIG past 100 MiB in total. */
int cfapi_multipart_add(CfMultipart *m, const char *name, const char *filename,
                        const char *content_type, const void *data, size_t size);

/* Serialises the body with a random boundary that occurs in no part. On
 * success *ret_body (caller frees, erase_and_free if it held secrets) and
 * *ret_content_type ("multipart/form-data; boundary=...", caller frees). */
int cfapi_multipart_build(const CfMultipart *m, char **ret_body, size_t *ret_size,
                          char **ret_content_type);

/* ---- Requests ---- */

typedef enum CfPaging {
        CFAPI_PAGING_NONE,          /* one call */
        CFAPI_PAGING_PAGE,          /* ?page=N&per_page=M, result_info.total_count */
        CFAPI_PAGING_CURSOR,        /* ?cursor=..., result_info.cursor */
        _CFAPI_PAGING_MAX,
        _CFAPI_PAGING_INVALID = -EINVAL,
} CfPaging;

enum {
        CFAPI_RAW_RESPONSE = 1 << 0,  /* do not decode an envelope (script content); body in CfReply */
        CFAPI_NO_RETRY     = 1 << 1,  /* one attempt only */
};

/* One request. path is either relative to the account ("workers/scripts",
 * "storage/kv/namespaces/ID" → API_URL/accounts/ACCOUNT/PATH) or, with a
 * leading '/', relative to the API root ("/user/tokens/verify" →
 * API_URL/user/tokens/verify; a leading "/client/v4" is accepted and
 * dropped). Segments must already be escaped (cfapi_escape). query is
 * "a=b&c=d" without '?', or NULL. The body is one of: body/body_size with
 * content_type (default "application/json"), a json_object (serialised
 * once), or a multipart (serialised once); all are copied at submission
 * and wiped when the request ends. headers: extra "Name: value" lines
 * (e.g. "cf-r2-jurisdiction: eu"), NULL-terminated, copied; an
 * "Authorization" header there is refused (-EINVAL). */
typedef struct CfRequest {
        const char *method;         /* "GET", "PUT", "POST", "PATCH", "DELETE" */
        const char *path;
        const char *query;
        const void *body;
        size_t body_size;
        const char *content_type;
        json_object *json;          /* borrowed */
        const CfMultipart *multipart;   /* borrowed */
        const char * const *headers;
        CfPriority priority;        /* default NORMAL (0 is LOW: set it) */
        unsigned flags;             /* CFAPI_* */
        CfPaging paging;            /* GET only: fetch every page, hand back one array */
        unsigned per_page;          /* paging: default 100 for PAGE; for CURSOR sent only when set */
        const char *items_key;      /* paging: result is {items_key: [...]} (R2 "buckets"); NULL: result is the array */
        /* A list handed over item by item as each page is decoded, never
         * joined (no tree of the whole list in memory): the reply's
         * result is then NULL. A negative errno from each fails the call
         * (-EBADMSG-like; the items already handed over stand, so the
         * caller must drop the whole list on failure). Without paging the
         * result must be an array. */
        int (*each)(json_object *item, void *userdata);   /* userdata: the callback's */
        /* With each and no paging: the list is decoded as its bytes
         * arrive (cf_list_feed), so it is never whole in memory; each
         * then runs inside curl's write callback and must not call into
         * cfapi. When an attempt that handed items over is retried (its
         * connection broke mid-body), restart is called first: drop them,
         * the next attempt hands the whole list over again. */
        void (*restart)(void *userdata);
} CfRequest;

/* What a finished request hands back. Every pointer is borrowed for the
 * duration of the callback: take a reference (json_object_get) or copy to
 * keep anything. */
typedef struct CfReply {
        int error;                  /* 0, or negative errno (cfapi_errno_from_reply rules):
                                     * -ENOENT 404/10007..., -EEXIST 409/"exists" codes,
                                     * -EACCES 401/403, -EBUSY 429 after retries,
                                     * -EAGAIN 5xx after retries, -ETIMEDOUT timeout or deadline,
                                     * -ECONNREFUSED/-EHOSTUNREACH/-ECONNRESET connection,
                                     * -EBADMSG undecodable body (or a list of an unexpected shape),
                                     * -EFBIG body over the cap, -E2BIG too many pages or items,
                                     * -ELOOP a cursor that repeats,
                                     * -EINVAL other 4xx, -ECANCELED cancelled */
        long http_status;           /* of the last attempt; 0 if none answered */
        json_object *result;        /* envelope result (all pages joined for paging); may be NULL */
        json_object *result_info;   /* of the last page; may be NULL */
        json_object *messages;      /* envelope messages; may be NULL */
        const CfError *errors;      /* Cloudflare's errors[], or one synthesised from a transport error */
        size_t n_errors;
        const char *message;        /* one-line summary for status and logs: "HTTP 404: [10007] workers.api.error.script_not_found";
                                     * never contains the token or a request body; NULL on success */
        const char *body;           /* CFAPI_RAW_RESPONSE: the raw body (NUL-terminated); else NULL */
        size_t body_size;
        const char *etag;           /* ETag response header, or NULL */
        unsigned attempts;          /* attempts made in all (every page, retries included) */
        unsigned pages;             /* pages fetched */
} CfReply;

typedef void (*cfapi_callback_t)(CfApi *api, const CfReply *reply, void *userdata);

/* Retries: 408, 429, 5xx, connection errors and timeouts are retried for
 * every method. A POST whose answer was lost may therefore have been
 * applied: a create retried this way can come back -EEXIST, which the
 * engine resolves through its intents (ledger.h).
 *
 * Queues a request; callback is called exactly once, later, from the
 * event loop (never from inside cfapi_submit), unless the client is freed
 * first (then with -ECANCELED from cfapi_cancel_all/cfapi_free). The
 * callback may submit more requests. On success *ret_id (optional) is a
 * non-zero id for cfapi_cancel. Returns 0, -EINVAL (bad request: no
 * method/path, paging on a non-GET, Authorization in headers), -ENOMEM,
 * -ECANCELED (the client is shutting down). */
int cfapi_submit(CfApi *api, const CfRequest *req, cfapi_callback_t callback, void *userdata,
                 uint64_t *ret_id);

/* Cancels one request: its callback is called synchronously with
 * -ECANCELED before this returns. Returns 0 or -ENOENT (unknown or
 * already finished). */
int cfapi_cancel(CfApi *api, uint64_t id);

/* Cancels every queued and running request (shutdown): each callback is
 * called synchronously with -ECANCELED. Requests submitted from those
 * callbacks are refused with -ECANCELED. Afterwards the client accepts new
 * requests again. */
void cfapi_cancel_all(CfApi *api);

/* Requests queued or running. */
unsigned cfapi_n_pending(const CfApi *api) _pure_;

#define CFAPI_STATUS_SLOTS 600
#define CFAPI_LATENCY_BUCKETS 10
#define CFAPI_ROUTE_CLASSES 9

/* The client's counters, handed to the manager as they are (no JSON). */
typedef struct CfApiStats {
        uint64_t requests_total;
        uint64_t retries_total;
        uint64_t by_status[CFAPI_STATUS_SLOTS];     /* answers by HTTP status; [0]: no HTTP answer */
        uint64_t other_status;                      /* statuses past the table */
        /* Latency per route class (cfapi_route_class_name) and bucket
         * (upper bounds in latency_buckets, seconds), not cumulative. */
        const double *latency_buckets;
        uint64_t latency_counts[CFAPI_ROUTE_CLASSES][CFAPI_LATENCY_BUCKETS];
        uint64_t latency_n[CFAPI_ROUTE_CLASSES];
        double latency_sum[CFAPI_ROUTE_CLASSES];
        bool server_seen;                           /* server_remaining is known */
        uint64_t server_remaining;                  /* the server's rate-limit header */
        uint64_t budget_capacity, budget_left, budget_waits;
        uint64_t queued, in_flight;
} CfApiStats;

/* Fills *ret with the counters now (budget_left refilled to now). */
void cfapi_stats(const CfApi *api, CfApiStats *ret);

/* The route class of an API path, for the latency histogram: workers, kv,
 * r2, d1, queues, secrets_store, audit, tokens, other (its index). */
int cfapi_route_class(const char *path) _pure_;
const char *cfapi_route_class_name(int cls) _pure_;

/* Percent-encodes one path segment or query value (RFC 3986 unreserved
 * characters pass), through curl_easy_escape. Caller frees; NULL on OOM. */
char *cfapi_escape(const char *s);

/* Decodes the first n bytes of s (%XY sequences; anything else stays),
 * through curl_easy_unescape; the result ends at a decoded NUL. Caller
 * frees; NULL on OOM. */
char *cfapi_unescape(const char *s, size_t n);
