/* cfapi.c: the asynchronous Cloudflare client; see cfapi.h.
 *
 * A CfCall is one logical request (all pages, all attempts). Calls wait
 * in one list; a oneshot scheduler timer starts the best ready call
 * (highest priority, then oldest) whenever a transfer slot is free, its
 * backoff has passed and the budget (budget.h) grants a token. Finished
 * transfers come back through curl-glue; the call is then retried,
 * continued with its next page, or completed. User callbacks run from
 * curl-glue's completion dispatch or from the scheduler timer, never from
 * inside cfapi_submit() and never from inside a curl callback.
 */
#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <sys/queue.h>
#include <sys/random.h>

#include <curl/curl.h>

#include "budget.h"
#include "cfapi.h"
#include "config.h"
#include "curl-glue.h"
#include "log.h"
#include "util.h"

#define CFAPI_DEFAULT_CONCURRENCY 8U
#define CFAPI_DEFAULT_CONNECT_TIMEOUT_USEC (10U * USEC_PER_SEC)
#define CFAPI_DEFAULT_REQUEST_TIMEOUT_USEC (60U * USEC_PER_SEC)
#define CFAPI_DEFAULT_MAX_RETRIES 6U
#define CFAPI_DEFAULT_DEADLINE_USEC (10U * 60U * USEC_PER_SEC)
#define CFAPI_DEFAULT_BACKOFF_BASE_USEC (500U * USEC_PER_MSEC)
#define CFAPI_DEFAULT_BACKOFF_MAX_USEC (60U * USEC_PER_SEC)
#define CFAPI_DEFAULT_MAX_RESPONSE ((size_t) 32U * 1024U * 1024U)
#define CFAPI_MAX_PAGES 1000U
#define CFAPI_MAX_ITEMS 100000U
#define CFAPI_BUDGET_FILE "request-budget"  /* in the state directory */
#define BUDGET_SHARE_BATCH_MAX 64U           /* slots reserved per lock, at most */
#define CFAPI_DEFAULT_PER_PAGE_PAGE 100U

/* Latency histogram per route class (cfapi_route_class), seconds. */
static const double latency_buckets[] = { 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
#define N_LATENCY_BUCKETS (sizeof(latency_buckets) / sizeof(latency_buckets[0]))
static const char *const route_classes[] = { "workers", "kv", "r2", "d1", "queues", "secrets_store", "audit",
                                             "tokens", "other" };
#define N_ROUTE_CLASSES (sizeof(route_classes) / sizeof(route_classes[0]))
_Static_assert(N_LATENCY_BUCKETS == CFAPI_LATENCY_BUCKETS, "cfapi.h: CFAPI_LATENCY_BUCKETS");
_Static_assert(N_ROUTE_CLASSES == CFAPI_ROUTE_CLASSES, "cfapi.h: CFAPI_ROUTE_CLASSES");

typedef struct CfCall CfCall;

/* A FIFO of calls; every live call is in exactly one: waiting[priority]
 * or running. */
typedef TAILQ_HEAD(CallList, CfCall) CallList;

struct CfCall {
        CfApi *api;
        uint64_t id;
        TAILQ_ENTRY(CfCall) link;
        CallList *list;                 /* the one it is in, or NULL */

        /* What to send. */
        CfPriority priority;
        char *method;
        char *url;                  /* without query */
        char *query;                /* caller's query, or NULL */
        char *body;                 /* wiped on free */
        size_t body_size;
        bool has_body;
        char *content_type;
        struct curl_slist *extra_headers;
        unsigned flags;
        CfPaging paging;
        unsigned per_page;
        char *items_key;
        char *path;                 /* for messages */

        cfapi_callback_t callback;
        void *userdata;

        /* Progress. */
        bool running;
        uint64_t not_before_usec;   /* backoff: no attempt before this */
        uint64_t deadline_usec;     /* set when the first attempt starts */
        unsigned attempt;           /* of the current page, from 0 */
        unsigned total_attempts;
        unsigned page;              /* page style, 1-based */
        char *cursor;               /* cursor style: the cursor to send */
        unsigned pages;
        json_object *items;         /* paging: the joined array */
        int (*each)(json_object *item, void *userdata);    /* items one by one instead */
        void (*restart)(void *userdata);    /* with each: fed as the body arrives */
        size_t n_items;             /* with each: handed over so far */
        json_object *last_result_info;

        /* The current transfer. */
        CURL *easy;
        struct curl_slist *req_headers;
        char *resp;
        size_t resp_size, resp_alloc;
        size_t resp_total;          /* bytes received, what the feed cut out included */
        bool resp_too_big;
        CfListFeed *feed;           /* the list decoded as it arrives (restart set) */
        bool feed_checked;          /* decided, at the body's first bytes */
        bool fed;                   /* the feed handed items over in this attempt */
        int feed_error;             /* what stopped the transfer from inside on_write */
        bool refused;               /* the write gate said no (cfapi_set_may_send) */
        char *etag;
        char *retry_after;
        char *ratelimit;
};

struct CfApi {
        sd_event *event;
        CurlGlue *glue;
        sd_event_source *sched;
        uint64_t sched_armed_usec;  /* 0: not armed */

        char *api_url;
        char *account_id;
        char *token;                /* wiped on free */
        size_t token_size;
        char *user_agent;
        cfapi_may_send_t may_send;
        void *may_send_userdata;

        unsigned concurrency;
        uint64_t connect_timeout_usec, request_timeout_usec;
        unsigned max_retries;
        uint64_t deadline_usec;
        uint64_t backoff_base_usec, backoff_max_usec;
        size_t max_response_size;

        Budget budget;
        uint64_t rng;

        CallList waiting[_CFAPI_PRIORITY_MAX];
        CallList running;
        unsigned n_calls, n_running;
        uint64_t next_id;
        bool cancelling;
        bool curl_initialized;

        CfApiStats stats;       /* the counters; the rest filled in by cfapi_stats */
};

static void sched_arm(CfApi *api, uint64_t when_usec);

static uint64_t rng_next(CfApi *api) {
        /* xorshift64*: jitter only, not security. Seeded from getrandom. */
        uint64_t x = api->rng;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        api->rng = x;
        return x * 0x2545F4914F6CDD1DULL;
}

/* ---- Options ---- */

void cfapi_options_from_config(CfApiOptions *o, const Config *c) {
        *o = (CfApiOptions) {
                .api_url = c && c->api_url ? c->api_url : CONFIG_DEFAULT_API_URL,
                .account_id = c ? c->account_id : NULL,
                .concurrency = c ? c->concurrency : 0,
                .budget = c ? c->request_budget : 0,
                .budget_window_usec = c ? c->request_window_usec : 0,
                .budget_dir = c ? c->state_dir : NULL,
                .agent_name = c && c->ha ? c->ha->name : NULL,
        };
}

void cfapi_set_may_send(CfApi *api, cfapi_may_send_t fn, void *userdata) {
        api->may_send = fn;
        api->may_send_userdata = userdata;
}

/* CURLOPT_PREREQFUNCTION: the last moment before a request goes out. */
static int on_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port) {
        CfCall *c = clientp;
        CfApi *api = c->api;

        if (api->may_send && !api->may_send(c->method, api->may_send_userdata)) {
                c->refused = true;
                return CURL_PREREQFUNC_ABORT;
        }
        return CURL_PREREQFUNC_OK;
}

/* ---- Calls ---- */

static void call_reset_transfer(CfCall *c) {
        if (c->easy) {
                curl_easy_cleanup(c->easy);
                c->easy = NULL;
        }
        if (c->req_headers) {
                /* One line holds the token: wipe every line before freeing. */
                for (struct curl_slist *l = c->req_headers; l; l = l->next)
                        explicit_bzero(l->data, strlen(l->data));
                curl_slist_free_all(c->req_headers);
                c->req_headers = NULL;
        }
        c->resp = mfree(c->resp);
        c->resp_size = c->resp_alloc = c->resp_total = 0;
        c->resp_too_big = false;
        c->feed = cf_list_feed_free(c->feed);
        c->feed_checked = c->fed = false;
        c->feed_error = 0;
        c->etag = mfree(c->etag);
        c->retry_after = mfree(c->retry_after);
        c->ratelimit = mfree(c->ratelimit);
}

static void call_free(CfCall *c) {
        if (!c)
                return;
        call_reset_transfer(c);
        free(c->method);
        free(c->url);
        free(c->query);
        erase_and_free(c->body, c->body_size);
        free(c->content_type);
        curl_slist_free_all(c->extra_headers);
        free(c->items_key);
        free(c->path);
        free(c->cursor);
        if (c->items)
                json_object_put(c->items);
        if (c->last_result_info)
                json_object_put(c->last_result_info);
        free(c);
}

static void list_remove(CfCall *c) {
        if (!c->list)
                return;
        TAILQ_REMOVE(c->list, c, link);
        c->list = NULL;
}

static void list_append(CallList *l, CfCall *c) {
        list_remove(c);
        TAILQ_INSERT_TAIL(l, c, link);
        c->list = l;
}

static void list_prepend(CallList *l, CfCall *c) {
        list_remove(c);
        TAILQ_INSERT_HEAD(l, c, link);
        c->list = l;
}

static void call_unlink(CfApi *api, CfCall *c) {
        list_remove(c);
        api->n_calls--;
}

/* Replaces every occurrence of the token in s (defence in depth: nothing
 * should ever put it there). */
static void scrub_token(const CfApi *api, char *s) {
        char *p;

        if (!s || !api->token || api->token_size < 4)
                return;
        while ((p = memmem(s, strlen(s), api->token, api->token_size)))
                memset(p, '*', api->token_size);
}

/* Completes a call: unlinks it, runs its callback with reply, frees it. */
static void call_finish(CfCall *c, CfReply *reply) {
        CfApi *api = c->api;

        if (c->running) {
                (void) curl_glue_remove(api->glue, c->easy);
                c->running = false;
                api->n_running--;
        }
        call_unlink(api, c);
        reply->attempts = c->total_attempts;
        reply->pages = c->pages;
        if (c->callback)
                c->callback(api, reply, c->userdata);
        call_free(c);
        /* A slot may have become free. */
        sched_arm(api, now_monotonic_usec());
}

/* Completes a call with an error and no HTTP body to show. */
static void call_fail(CfCall *c, int error, long http_status, const char *what) {
        _cleanup_free_ char *message = NULL;
        CfError e = { .http_status = http_status, .code = 0 };
        CfReply reply = {
                .error = error,
                .http_status = http_status,
        };

        if (asprintf(&message, "%s %s: %s", c->method, c->path, what) < 0)
                message = NULL;
        scrub_token(c->api, message);
        e.message = message ? message : (char *) "request failed";
        reply.errors = &e;
        reply.n_errors = 1;
        reply.message = e.message;
        call_finish(c, &reply);
}

/* ---- curl callbacks (never call back into curl or the user, but for
 * a fed list's each, which may not call cfapi) ---- */

static int on_item(json_object *item, void *userdata);

/* At a body's first bytes: a list whose caller can take it back
 * (restart) is decoded as it arrives when the answer is a 2xx, so it is
 * never whole in memory (10 MB for 10,000 scripts). Others are decoded
 * whole at the end, as before. */
static int feed_check(CfCall *c) {
        long status = 0;

        c->feed_checked = true;
        if (!c->each || !c->restart || c->paging != CFAPI_PAGING_NONE || (c->flags & CFAPI_RAW_RESPONSE))
                return 0;
        (void) curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status >= 300)
                return 0;
        c->feed = cf_list_feed_new(c->items_key, on_item, c);
        return c->feed ? 0 : -ENOMEM;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata) {
        CfCall *c = userdata;
        size_t n = size * nmemb;
        int r;

        if (n == 0)
                return 0;
        if (c->resp_total + n > c->api->max_response_size) {
                c->resp_too_big = true;
                return 0;       /* CURLE_WRITE_ERROR */
        }
        if (!c->feed_checked) {
                r = feed_check(c);
                if (r < 0) {
                        c->feed_error = r;
                        return 0;
                }
        }
        if (c->resp_size + n + 1 > c->resp_alloc) {
                size_t a = c->resp_alloc ? c->resp_alloc : 16384;
                char *p;

                while (a < c->resp_size + n + 1)
                        a *= 2;
                if (a > c->api->max_response_size + 1)
                        a = c->api->max_response_size + 1;
                p = realloc(c->resp, a);
                if (!p)
                        return 0;
                c->resp = p;
                c->resp_alloc = a;
        }
        memcpy(c->resp + c->resp_size, data, n);
        c->resp_size += n;
        c->resp_total += n;
        if (c->feed) {
                size_t before = cf_list_feed_count(c->feed);

                r = cf_list_feed(c->feed, c->resp, &c->resp_size);
                if (cf_list_feed_count(c->feed) > before)
                        c->fed = true;
                if (r < 0) {
                        c->feed_error = r;
                        c->resp[c->resp_size] = 0;
                        return 0;
                }
        }
        c->resp[c->resp_size] = 0;
        return n;
}

/* Keeps the value of a header if line is "name: value". */
static int header_take(const char *line, size_t len, const char *name, char **ret) {
        size_t nl = strlen(name);
        const char *v, *end = line + len;

        if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
                return 0;
        v = line + nl + 1;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
        if (end - v > 1024)
                return 0;
        free(*ret);
        *ret = strndup(v, (size_t) (end - v));
        return 1;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
        CfCall *c = userdata;
        size_t n = size * nmemb;

        /* A new response (after a 100 Continue, say) starts over. */
        if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
                c->etag = mfree(c->etag);
                c->retry_after = mfree(c->retry_after);
                c->ratelimit = mfree(c->ratelimit);
                return n;
        }
        if (header_take(data, n, "etag", &c->etag) ||
            header_take(data, n, "retry-after", &c->retry_after) ||
            header_take(data, n, "ratelimit", &c->ratelimit))
                return n;
        return n;
}

/* ---- Attempts ---- */

static int call_build_url(CfCall *c, char **ret) {
        _cleanup_free_ char *extra = NULL, *esc = NULL;
        char *url;
        int r;

        if (c->paging == CFAPI_PAGING_PAGE)
                r = asprintf(&extra, "page=%u&per_page=%u", c->page, c->per_page);
        else if (c->paging == CFAPI_PAGING_CURSOR && c->cursor) {
                esc = cfapi_escape(c->cursor);
                if (!esc)
                        return -ENOMEM;
                if (c->per_page > 0)
                        r = asprintf(&extra, "cursor=%s&per_page=%u", esc, c->per_page);
                else
                        r = asprintf(&extra, "cursor=%s", esc);
        } else if (c->paging == CFAPI_PAGING_CURSOR && c->per_page > 0)
                r = asprintf(&extra, "per_page=%u", c->per_page);
        else
                r = 0;
        if (r < 0)
                return -ENOMEM;

        if (!isempty(c->query) && extra)
                r = asprintf(&url, "%s?%s&%s", c->url, c->query, extra);
        else if (!isempty(c->query))
                r = asprintf(&url, "%s?%s", c->url, c->query);
        else if (extra)
                r = asprintf(&url, "%s?%s", c->url, extra);
        else
                r = asprintf(&url, "%s", c->url);
        if (r < 0)
                return -ENOMEM;
        *ret = url;
        return 0;
}

static int append_header(struct curl_slist **l, const char *line) {
        struct curl_slist *n = curl_slist_append(*l, line);

        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static void on_transfer_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata);

/* Sets up and starts one attempt. On failure the call is left as it was
 * (not running) and a negative errno returned. */
static int call_start(CfCall *c, uint64_t now) {
        CfApi *api = c->api;
        _cleanup_free_ char *url = NULL;
        char *auth = NULL;
        uint64_t timeout;
        CURL *easy;
        int r;

        call_reset_transfer(c);
        r = call_build_url(c, &url);
        if (r < 0)
                return r;

        easy = curl_easy_init();
        if (!easy)
                return -ENOMEM;
        c->easy = easy;

        if (api->token) {
                size_t n = strlen("Authorization: Bearer ") + api->token_size + 1;

                auth = secret_malloc(n);
                if (!auth)
                        return -ENOMEM;
                memcpy(auth, "Authorization: Bearer ", strlen("Authorization: Bearer "));
                memcpy(auth + strlen("Authorization: Bearer "), api->token, api->token_size);
                auth[n - 1] = 0;
                r = append_header(&c->req_headers, auth);
                erase_and_free(auth, n);
                if (r < 0)
                        return r;
        }
        r = append_header(&c->req_headers, "Accept: application/json");
        if (r < 0)
                return r;
        /* No "Expect: 100-continue" round trip for large uploads. */
        r = append_header(&c->req_headers, "Expect:");
        if (r < 0)
                return r;
        if (c->has_body) {
                _cleanup_free_ char *ct = NULL;

                if (asprintf(&ct, "Content-Type: %s", c->content_type) < 0)
                        return -ENOMEM;
                r = append_header(&c->req_headers, ct);
                if (r < 0)
                        return r;
        }
        for (struct curl_slist *l = c->extra_headers; l; l = l->next) {
                r = append_header(&c->req_headers, l->data);
                if (r < 0)
                        return r;
        }

        timeout = api->request_timeout_usec;
        if (c->deadline_usec > now && c->deadline_usec - now < timeout)
                timeout = c->deadline_usec - now;
        if (timeout < USEC_PER_MSEC)
                timeout = USEC_PER_MSEC;

        if (curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_HTTPHEADER, c->req_headers) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_USERAGENT, api->user_agent) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_WRITEDATA, c) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_HEADERDATA, c) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                             (long) (api->connect_timeout_usec / USEC_PER_MSEC)) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) (timeout / USEC_PER_MSEC)) != CURLE_OK)
                return -EIO;

        if (streq(c->method, "GET")) {
                if (curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L) != CURLE_OK)
                        return -EIO;
        } else {
                if (curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, c->method) != CURLE_OK)
                        return -EIO;
                c->refused = false;
                if (curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, on_prereq) != CURLE_OK ||
                    curl_easy_setopt(easy, CURLOPT_PREREQDATA, c) != CURLE_OK)
                        return -EIO;
                if (c->has_body || !streq(c->method, "DELETE")) {
                        /* The bytes stay in c->body for the whole call. */
                        if (curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                                             (curl_off_t) c->body_size) != CURLE_OK ||
                            curl_easy_setopt(easy, CURLOPT_POSTFIELDS, c->body ? c->body : "") != CURLE_OK)
                                return -EIO;
                }
        }

        r = curl_glue_add(api->glue, easy, on_transfer_done, c);
        if (r < 0)
                return r;
        list_append(&api->running, c);
        c->running = true;
        api->n_running++;
        api->stats.requests_total++;
        if (c->attempt > 0)
                api->stats.retries_total++;
        c->total_attempts++;
        return 0;
}

/* Maps a failed transfer to (errno, retryable). */
static int curl_errno(CURLcode code, bool *ret_retry) {
        *ret_retry = true;
        switch (code) {
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return -ECONNRESET;
        case CURLE_OUT_OF_MEMORY:
                *ret_retry = false;
                return -ENOMEM;
        default:
                *ret_retry = false;
                return -EIO;
        }
}

/* Schedules another attempt of c after its backoff, or fails it when the
 * retry cap or the deadline is reached. http_status/what describe the
 * failure for the final error. */
static void call_retry_or_fail(CfCall *c, int error, long http_status, const char *what,
                               CfEnvelope *env) {
        CfApi *api = c->api;
        uint64_t now = now_monotonic_usec(), delay, ra = 0;
        bool have_ra = false;

        delay = backoff_delay(c->attempt, api->backoff_base_usec, api->backoff_max_usec, rng_next(api));
        if (c->retry_after &&
            cf_retry_after_parse(c->retry_after, now_realtime_usec(), &ra) == 0) {
                have_ra = true;
                if (ra > delay)
                        delay = ra;
        }
        if (http_status == 429)
                /* Cloudflare blocks the whole token after a 429: hold every
                 * request, not just this one. */
                budget_hold(&api->budget, have_ra ? ra : delay, now);

        if (!(c->flags & CFAPI_NO_RETRY) && c->attempt < api->max_retries &&
            now + delay < c->deadline_usec) {
                c->attempt++;
                c->not_before_usec = now + delay;
                if (c->fed) {
                        /* What this attempt handed over goes: the list
                         * starts again with the next. */
                        c->restart(c->userdata);
                        c->n_items = 0;
                }
                call_reset_transfer(c);
                log_debug("cfapi: %s %s: %s, retry %u in %" PRIu64 " ms",
                          c->method, c->path, what, c->attempt, delay / USEC_PER_MSEC);
                sched_arm(api, c->not_before_usec);
                return;
        }

        if (env) {
                _cleanup_free_ char *summary = cf_errors_summary(http_status, env->errors, env->n_errors);
                _cleanup_free_ char *message = NULL;
                CfReply reply = {
                        .error = error,
                        .http_status = http_status,
                        .result = env->result,
                        .result_info = env->result_info,
                        .messages = env->messages,
                        .errors = env->errors,
                        .n_errors = env->n_errors,
                        .etag = c->etag,
                };

                if (asprintf(&message, "%s %s: %s", c->method, c->path, summary ? summary : what) < 0)
                        message = NULL;
                scrub_token(api, message);
                reply.message = message ? message : what;
                call_finish(c, &reply);
                return;
        }
        call_fail(c, error, http_status, what);
}

/* Appends the items of one page to c->items. */
static int call_collect_page(CfCall *c, CfEnvelope *env, size_t *ret_n) {
        json_object *arr = NULL, *result = env->result;
        size_t n;
        int r;

        if (c->each && env->streamed) {
                /* Handed over while decoding (on_item counted them). */
                *ret_n = env->n_streamed;
                return 0;
        }
        if (c->each) {
                /* Not a streamed list: null is an empty page, else the shape is wrong. */
                r = cf_result_items(result, c->items_key, &arr);
                if (r < 0)
                        return r;
                for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
                        r = c->each(json_object_array_get_idx(arr, i), c->userdata);
                        if (r < 0)
                                return r;
                }
                *ret_n = arr ? json_object_array_length(arr) : 0;
                return 0;
        }

        r = cf_result_items(result, c->items_key, &arr);
        if (r < 0)
                return r;
        n = arr ? json_object_array_length(arr) : 0;
        if (!c->items) {
                c->items = json_object_new_array();
                if (!c->items)
                        return -ENOMEM;
        }
        if (json_object_array_length(c->items) + n > CFAPI_MAX_ITEMS)
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                json_object *it = json_object_array_get_idx(arr, i);

                if (json_object_array_add(c->items, json_object_get(it)) < 0) {
                        json_object_put(it);
                        return -ENOMEM;
                }
        }
        *ret_n = n;
        return 0;
}

/* Handles a decoded successful page of a paging call: collects it and
 * either queues the next page (returns 1) or reports it done (0). */
static int call_next_page(CfCall *c, CfEnvelope *env) {
        size_t n = 0;
        int r;

        r = call_collect_page(c, env, &n);
        if (r < 0)
                return r;
        c->pages++;
        if (c->last_result_info)
                json_object_put(c->last_result_info);
        c->last_result_info = env->result_info ? json_object_get(env->result_info) : NULL;

        if (c->paging == CFAPI_PAGING_PAGE) {
                if (!cf_page_has_more(env->result_info, c->page, c->per_page, n))
                        return 0;
                c->page++;
        } else {
                const char *next = cf_cursor_next(env->result_info);
                char *dup;

                if (!next || n == 0)
                        return 0;
                if (streq_ptr(next, c->cursor))
                        return -ELOOP;      /* the server repeats itself */
                dup = strdup(next);
                if (!dup)
                        return -ENOMEM;
                free(c->cursor);
                c->cursor = dup;
        }
        if (c->pages >= CFAPI_MAX_PAGES)
                return -E2BIG;
        c->attempt = 0;
        c->not_before_usec = 0;
        return 1;
}

/* Counts an answer (status, latency) and takes in the server's rate-limit
 * header. */
static void count_answer(CfCall *c, CURL *easy, long status, uint64_t now) {
        CfApi *api = c->api;
        size_t k = (size_t) cfapi_route_class(c->path);
        uint64_t remaining, reset;
        curl_off_t us = 0;
        double s;

        assert(k < N_ROUTE_CLASSES);
        if (status >= 0 && status < CFAPI_STATUS_SLOTS)
                api->stats.by_status[status]++;
        else
                api->stats.other_status++;
        (void) curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &us);
        s = (double) us / 1e6;
        api->stats.latency_n[k]++;
        api->stats.latency_sum[k] += s;
        for (size_t b = 0; b < N_LATENCY_BUCKETS; b++)
                if (s <= latency_buckets[b]) {
                        api->stats.latency_counts[k][b]++;
                        break;
                }
        if (c->ratelimit && cf_ratelimit_parse(c->ratelimit, &remaining, &reset) == 0) {
                budget_observe_server(&api->budget, remaining, reset, now);
                api->stats.server_seen = true;
                api->stats.server_remaining = remaining;
        }
}

/* No HTTP answer, or one cut short: retried if curl says it may be. */
static void on_transport_error(CfCall *c, CURLcode result, long status) {
        char what[256];
        bool retry;
        int r;

        if (c->resp_too_big) {
                snprintf(what, sizeof what, "response larger than %zu bytes", c->api->max_response_size);
                return call_fail(c, -EFBIG, status, what);
        }
        if (c->refused)
                return call_fail(c, -EPERM, 0, "write refused before sending: this host may not write "
                                 "(not the HA leader, or its lease is not known valid)");
        r = curl_errno(result, &retry);
        snprintf(what, sizeof what, "%s", curl_easy_strerror(result));
        if (retry)
                call_retry_or_fail(c, r, status, what, NULL);
        else
                call_fail(c, r, status, what);
}

/* A list's page arrived: ask for the next, or finish with every item. */
static void on_page(CfCall *c, long status, CfEnvelope *env, uint64_t now) {
        int r = call_next_page(c, env);

        if (r < 0)
                return call_fail(c, r, status,
                                 r == -E2BIG ? "too many pages or items" :
                                 r == -ELOOP ? "the server repeated a cursor" :
                                 r == -EBADMSG ? "list result has an unexpected shape" :
                                 "out of memory");
        if (r > 0) {
                call_reset_transfer(c);
                sched_arm(c->api, now);
                return;
        }
        call_finish(c, &(CfReply) {
                .http_status = status,
                .result = c->items,
                .result_info = c->last_result_info,
                .messages = env->messages,
                .etag = c->etag,
        });
}

/* A decoded, non-retryable answer: the reply, the next page, or the
 * envelope's errors. */
static void on_answer(CfCall *c, long status, CfEnvelope *env, uint64_t now) {
        bool ok = status >= 200 && status < 300;
        char what[64];
        int r;

        if (ok && (c->flags & CFAPI_RAW_RESPONSE)) {
                c->pages++;
                return call_finish(c, &(CfReply) {
                        .http_status = status,
                        .body = c->resp ? c->resp : "",
                        .body_size = c->resp_size,
                        .etag = c->etag,
                });
        }
        if (!env && ok) {
                /* An empty 2xx answer (DELETE with 204): success, no result. */
                c->pages++;
                return call_finish(c, &(CfReply) { .http_status = status, .etag = c->etag });
        }
        r = cf_errno_from_status(status, env ? env->success : false,
                                 env ? env->errors : NULL, env ? env->n_errors : 0);
        if (r < 0) {
                snprintf(what, sizeof what, "HTTP %ld", status);
                /* Not retryable: finish with the envelope's errors. */
                c->flags |= CFAPI_NO_RETRY;
                return call_retry_or_fail(c, r, status, what, env);
        }
        if (c->paging != CFAPI_PAGING_NONE)
                return on_page(c, status, env, now);
        if (c->each && !env->streamed)
                return call_fail(c, -EBADMSG, status, "list result has an unexpected shape");
        c->pages++;
        call_finish(c, &(CfReply) {
                .http_status = status,
                .result = c->each ? NULL : env->result,
                .result_info = env->result_info,
                .messages = env->messages,
                .etag = c->etag,
        });
}

/* One item of a streamed list: counted against the cap, handed over. */
static int on_item(json_object *item, void *userdata) {
        CfCall *c = userdata;

        if (c->n_items >= CFAPI_MAX_ITEMS)
                return -E2BIG;
        c->n_items++;
        return c->each(item, c->userdata);
}

static void on_transfer_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        CfCall *c = userdata;
        CfApi *api = c->api;
        _cleanup_(cf_envelope_freep) CfEnvelope *env = NULL;
        uint64_t now = now_monotonic_usec();
        long status = 0;
        int r;

        /* curl-glue has removed the handle already. Back to the front of
         * its queue: a retry or the next page goes before new work of the
         * same priority. */
        c->running = false;
        api->n_running--;
        list_prepend(&api->waiting[c->priority], c);

        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        count_answer(c, easy, status, now);
        if (c->feed_error < 0)
                /* As the whole-body decode below would have failed. */
                return call_fail(c, c->feed_error, status,
                                 c->feed_error == -E2BIG ? "too many pages or items" :
                                 c->feed_error == -ENOMEM ? "out of memory" :
                                 c->feed_error == -EBADMSG ? "response is not a valid JSON envelope" :
                                 "a list item could not be taken");
        if (result != CURLE_OK)
                return on_transport_error(c, result, status);

        /* Decode whatever came back; an error body that is not an envelope
         * (a proxy's HTML page) leaves env NULL. */
        if (c->resp_size > 0 &&
            (!(c->flags & CFAPI_RAW_RESPONSE) || status < 200 || status >= 300)) {
                if (c->each && status >= 200 && status < 300)
                        r = cf_envelope_decode_each(status, c->resp, c->resp_size, c->items_key, on_item, c, &env);
                else
                        r = cf_envelope_decode(status, c->resp, c->resp_size, &env);
                if (r == -ENOMEM || r == -E2BIG)
                        return call_fail(c, r, status, r == -E2BIG ? "too many pages or items" : "out of memory");
                if (r < 0 && r != -EBADMSG && status >= 200 && status < 300)
                        return call_fail(c, r, status, "a list item could not be taken");
                if (r < 0 && status >= 200 && status < 300)
                        return call_fail(c, -EBADMSG, status, "response is not a valid JSON envelope");
        }
        /* Decoded: the body is not needed again, and the callback (the
         * last list of an observation runs the whole plan in it) should
         * not keep it (526 KB for 1,000 workers' scripts). */
        if (!(c->flags & CFAPI_RAW_RESPONSE)) {
                c->resp = mfree(c->resp);
                c->resp_size = c->resp_alloc = 0;
        }

        if (cf_status_is_retryable(status)) {
                char what[64];

                snprintf(what, sizeof what, "HTTP %ld", status);
                r = cf_errno_from_status(status, false, env ? env->errors : NULL, env ? env->n_errors : 0);
                /* 429 → -EBUSY, 5xx → -EAGAIN, 408 → -ETIMEDOUT, whatever
                 * code the body carried. */
                if (status == 429)
                        r = -EBUSY;
                else if (status >= 500)
                        r = -EAGAIN;
                return call_retry_or_fail(c, r, status, what, env);
        }
        on_answer(c, status, env, now);
}

/* ---- Scheduler ---- */

/* The best call ready to start at now: the first ready one of the
 * highest priority. *ret_next gets the earliest not_before among the
 * calls passed over (every waiting call when none is ready). */
static CfCall *sched_pick(CfApi *api, uint64_t now, uint64_t *ret_next) {
        uint64_t next = UINT64_MAX;
        CfCall *c;

        for (int p = _CFAPI_PRIORITY_MAX - 1; p >= 0; p--)
                TAILQ_FOREACH(c, &api->waiting[p], link) {
                        if (c->not_before_usec <= now) {
                                *ret_next = next;
                                return c;
                        }
                        if (c->not_before_usec < next)
                                next = c->not_before_usec;
                }
        *ret_next = next;
        return NULL;
}

static int on_sched(sd_event_source *s, uint64_t usec, void *userdata) {
        CfApi *api = userdata;
        uint64_t now = now_monotonic_usec(), next = UINT64_MAX;

        api->sched_armed_usec = 0;
        while (api->n_running < api->concurrency) {
                CfCall *c;
                uint64_t wait;
                int r;

                /* A start is checked against its slot's lease at the
                 * time it really starts, not when the pass began. */
                now = now_monotonic_usec();
                c = sched_pick(api, now, &next);
                if (!c)
                        break;
                wait = budget_take(&api->budget, now, c->priority == CFAPI_PRIORITY_LOW);
                if (wait == BUDGET_NEED_SYNC) {
                        /* One lock for the batch of starts the queue holds. */
                        unsigned want = api->n_calls > api->n_running ? api->n_calls - api->n_running : 1,
                                 most = api->budget.capacity / 20;

                        if (most > BUDGET_SHARE_BATCH_MAX)
                                most = BUDGET_SHARE_BATCH_MAX;
                        if (want > most)
                                want = most;
                        r = budget_share_sync(&api->budget, now_monotonic_usec, want,
                                              c->priority == CFAPI_PRIORITY_LOW);
                        if (r < 0)
                                log_warning_errno(r, "Cannot share the request budget, counting alone: %m");
                        else
                                now = api->budget.synced_usec;  /* read under the lock */
                        wait = budget_take(&api->budget, now, c->priority == CFAPI_PRIORITY_LOW);
                        if (wait == BUDGET_NEED_SYNC)
                                wait = 1;
                }
                if (wait > 0) {
                        if (now + wait < next)
                                next = now + wait;
                        break;
                }
                if (c->deadline_usec == 0)
                        c->deadline_usec = now + api->deadline_usec;
                r = call_start(c, now);
                if (r < 0) {
                        call_reset_transfer(c);
                        call_fail(c, r, 0, "could not start the request");
                        /* call_fail re-armed the scheduler. */
                        return 0;
                }
        }
        if (next != UINT64_MAX && api->n_running < api->concurrency)
                sched_arm(api, next);
        return 0;
}

/* Makes sure the scheduler runs no later than when_usec. */
static void sched_arm(CfApi *api, uint64_t when_usec) {
        if (api->sched_armed_usec != 0 && api->sched_armed_usec <= when_usec)
                return;
        if (sd_event_source_set_time(api->sched, when_usec) < 0 ||
            sd_event_source_set_enabled(api->sched, SD_EVENT_ONESHOT) < 0)
                return;
        api->sched_armed_usec = when_usec ? when_usec : 1;
}

/* ---- Public ---- */

static char *strip_trailing_slashes(const char *s) {
        char *d = strdup(s);
        size_t n;

        if (!d)
                return NULL;
        n = strlen(d);
        while (n > 0 && d[n - 1] == '/')
                d[--n] = 0;
        return d;
}

int cfapi_new(CfApi **ret, sd_event *event, const CfApiOptions *o) {
        _cleanup_(cfapi_freep) CfApi *api = NULL;
        int r;

        assert(ret && event && o);
        if (isempty(o->api_url))
                return -EINVAL;
        if (!startswith(o->api_url, "https://") && !startswith(o->api_url, "http://"))
                return -EINVAL;
        if (o->token && o->token_size > 0 &&
            (memchr(o->token, '\r', o->token_size) || memchr(o->token, '\n', o->token_size) ||
             memchr(o->token, 0, o->token_size)))
                return -EINVAL;

        api = calloc(1, sizeof(CfApi));
        if (!api)
                return -ENOMEM;
        api->budget.share_fd = -EBADF;     /* budget_done() is safe before budget_init() */
        TAILQ_INIT(&api->running);
        for (int p = 0; p < _CFAPI_PRIORITY_MAX; p++)
                TAILQ_INIT(&api->waiting[p]);
        /* Reference-counted by libcurl; we are single-threaded. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                free(api);
                return -EIO;
        }
        api->curl_initialized = true;
        api->event = sd_event_ref(event);
        api->api_url = strip_trailing_slashes(o->api_url);
        api->account_id = o->account_id ? strdup(o->account_id) : NULL;
        if (o->user_agent)
                api->user_agent = strdup(o->user_agent);
        else if (o->agent_name) {
                if (asprintf(&api->user_agent, "binderyd/%s (%s)", PACKAGE_VERSION, o->agent_name) < 0)
                        api->user_agent = NULL;
        } else
                api->user_agent = strdup("binderyd/" PACKAGE_VERSION);
        if (!api->api_url || (o->account_id && !api->account_id) || !api->user_agent)
                return -ENOMEM;
        if (o->token && o->token_size > 0) {
                api->token = secret_malloc(o->token_size + 1);
                if (!api->token)
                        return -ENOMEM;
                memcpy(api->token, o->token, o->token_size);
                api->token[o->token_size] = 0;
                api->token_size = o->token_size;
                /* Second guard: the log layer redacts it wherever it shows. */
                r = log_register_secret(api->token, api->token_size);
                if (r < 0)
                        return r;
        }

        api->concurrency = o->concurrency > 0 ? o->concurrency : CFAPI_DEFAULT_CONCURRENCY;
        api->connect_timeout_usec = o->connect_timeout_usec > 0 ? o->connect_timeout_usec :
                                    CFAPI_DEFAULT_CONNECT_TIMEOUT_USEC;
        api->request_timeout_usec = o->request_timeout_usec > 0 ? o->request_timeout_usec :
                                    CFAPI_DEFAULT_REQUEST_TIMEOUT_USEC;
        api->max_retries = o->max_retries > 0 ? o->max_retries : CFAPI_DEFAULT_MAX_RETRIES;
        api->deadline_usec = o->deadline_usec > 0 ? o->deadline_usec : CFAPI_DEFAULT_DEADLINE_USEC;
        api->backoff_base_usec = o->backoff_base_usec > 0 ? o->backoff_base_usec :
                                 CFAPI_DEFAULT_BACKOFF_BASE_USEC;
        api->backoff_max_usec = o->backoff_max_usec > 0 ? o->backoff_max_usec :
                                CFAPI_DEFAULT_BACKOFF_MAX_USEC;
        api->max_response_size = o->max_response_size > 0 ? o->max_response_size :
                                 CFAPI_DEFAULT_MAX_RESPONSE;
        r = budget_init(&api->budget, o->budget, o->budget_window_usec, now_monotonic_usec());
        if (r < 0)
                return r;
        if (o->budget_dir) {
                _cleanup_free_ char *p = path_join(o->budget_dir, CFAPI_BUDGET_FILE);

                if (!p)
                        return -ENOMEM;
                r = budget_share_open(&api->budget, p);
                if (r < 0)
                        log_debug_errno(r, "Cannot open '%s', the request budget is this process's alone: %m", p);
        }
        if (getrandom(&api->rng, sizeof api->rng, GRND_NONBLOCK) != (ssize_t) sizeof api->rng)
                api->rng = now_monotonic_usec() ^ ((uint64_t) getpid() << 32);
        if (api->rng == 0)
                api->rng = 0x9E3779B97F4A7C15ULL;

        r = curl_glue_new(&api->glue, event);
        if (r < 0)
                return r;
        r = sd_event_add_time(event, &api->sched, CLOCK_MONOTONIC, 0, 1, on_sched, api);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(api->sched, SD_EVENT_OFF);
        (void) sd_event_source_set_description(api->sched, "cfapi-scheduler");

        *ret = TAKE_PTR(api);
        return 0;
}

CfApi *cfapi_free(CfApi *api) {
        if (!api)
                return NULL;
        cfapi_cancel_all(api);
        if (api->sched)
                (void) sd_event_source_disable_unref(api->sched);
        curl_glue_free(api->glue);
        budget_done(&api->budget);
        free(api->api_url);
        free(api->account_id);
        free(api->user_agent);
        erase_and_free(api->token, api->token_size);
        sd_event_unref(api->event);
        if (api->curl_initialized)
                curl_global_cleanup();
        free(api);
        return NULL;
}

void cfapi_set_limits(CfApi *api, unsigned concurrency, unsigned budget, uint64_t window_usec) {
        if (!api)
                return;
        if (concurrency > 0)
                api->concurrency = concurrency;
        if (budget > 0 || window_usec > 0)
                budget_resize(&api->budget, budget, window_usec, now_monotonic_usec());
        sched_arm(api, now_monotonic_usec());
}

static int build_url(const CfApi *api, const char *path, char **ret) {
        int r;

        if (path[0] == '/') {
                if (startswith(path, "/client/v4/") && endswith(api->api_url, "/client/v4"))
                        path += strlen("/client/v4");
                r = asprintf(ret, "%s%s", api->api_url, path);
        } else {
                if (isempty(api->account_id))
                        return -EINVAL;
                r = asprintf(ret, "%s/accounts/%s/%s", api->api_url, api->account_id, path);
        }
        return r < 0 ? -ENOMEM : 0;
}

int cfapi_submit(CfApi *api, const CfRequest *req, cfapi_callback_t callback, void *userdata,
                 uint64_t *ret_id) {
        CfCall *c;
        int r;

        assert(api && req);
        assert(req->paging >= 0 && req->paging < _CFAPI_PAGING_MAX);
        assert(req->priority >= 0 && req->priority < _CFAPI_PRIORITY_MAX);
        if (isempty(req->method) || isempty(req->path))
                return -EINVAL;
        if (api->cancelling)
                return -ECANCELED;
        if ((req->paging != CFAPI_PAGING_NONE && !streq(req->method, "GET")) ||
            (req->paging != CFAPI_PAGING_NONE && (req->flags & CFAPI_RAW_RESPONSE)))
                return -EINVAL;
        if ((req->body ? 1 : 0) + (req->json ? 1 : 0) + (req->multipart ? 1 : 0) > 1)
                return -EINVAL;
        if (strpbrk(req->method, " \r\n") || strpbrk(req->path, " \r\n?#") ||
            (req->query && strpbrk(req->query, " \r\n#")))
                return -EINVAL;
        for (const char * const *h = req->headers; h && *h; h++)
                if (strncasecmp(*h, "authorization:", strlen("authorization:")) == 0 ||
                    strpbrk(*h, "\r\n") || !strchr(*h, ':'))
                        return -EINVAL;

        c = calloc(1, sizeof(CfCall));
        if (!c)
                return -ENOMEM;
        c->api = api;
        c->priority = req->priority;
        c->flags = req->flags;
        c->paging = req->paging;
        c->per_page = req->per_page > 0 ? req->per_page :
                      req->paging == CFAPI_PAGING_PAGE ? CFAPI_DEFAULT_PER_PAGE_PAGE : 0;
        c->page = 1;
        c->callback = callback;
        c->userdata = userdata;
        c->method = strdup(req->method);
        c->path = strdup(req->path);
        c->query = req->query ? strdup(req->query) : NULL;
        c->items_key = req->items_key ? strdup(req->items_key) : NULL;
        c->each = req->each;
        c->restart = req->each ? req->restart : NULL;
        if (!c->method || !c->path || (req->query && !c->query) || (req->items_key && !c->items_key)) {
                call_free(c);
                return -ENOMEM;
        }
        r = build_url(api, req->path, &c->url);
        if (r < 0) {
                call_free(c);
                return r;
        }

        if (req->body) {
                c->body = secret_malloc(req->body_size + 1);  /* may hold a secret */
                if (!c->body) {
                        call_free(c);
                        return -ENOMEM;
                }
                memcpy(c->body, req->body, req->body_size);
                c->body[req->body_size] = 0;
                c->body_size = req->body_size;
                c->has_body = true;
                c->content_type = strdup(req->content_type ? req->content_type : "application/json");
        } else if (req->json) {
                const char *s = json_object_to_json_string_ext(req->json, JSON_C_TO_STRING_PLAIN);

                c->body = s ? strdup(s) : NULL;
                if (!c->body) {
                        call_free(c);
                        return -ENOMEM;
                }
                c->body_size = strlen(c->body);
                c->has_body = true;
                c->content_type = strdup(req->content_type ? req->content_type : "application/json");
        } else if (req->multipart) {
                r = cfapi_multipart_build(req->multipart, &c->body, &c->body_size, &c->content_type);
                if (r < 0) {
                        call_free(c);
                        return r;
                }
                c->has_body = true;
        }
        if (c->has_body && !c->content_type) {
                call_free(c);
                return -ENOMEM;
        }
        for (const char * const *h = req->headers; h && *h; h++) {
                r = append_header(&c->extra_headers, *h);
                if (r < 0) {
                        call_free(c);
                        return r;
                }
        }

        c->id = ++api->next_id;
        list_append(&api->waiting[c->priority], c);
        api->n_calls++;
        sched_arm(api, now_monotonic_usec());
        if (ret_id)
                *ret_id = c->id;
        return 0;
}

static CfCall *find_call(CfApi *api, uint64_t id) {
        CfCall *c;

        TAILQ_FOREACH(c, &api->running, link)
                if (c->id == id)
                        return c;
        for (int p = 0; p < _CFAPI_PRIORITY_MAX; p++)
                TAILQ_FOREACH(c, &api->waiting[p], link)
                        if (c->id == id)
                                return c;
        return NULL;
}

int cfapi_cancel(CfApi *api, uint64_t id) {
        CfCall *c;

        assert(api);
        if (id == 0)
                return -EINVAL;
        c = find_call(api, id);
        if (!c)
                return -ENOENT;
        call_fail(c, -ECANCELED, 0, "cancelled");
        return 0;
}

void cfapi_cancel_all(CfApi *api) {
        if (!api || api->cancelling)
                return;
        api->cancelling = true;
        for (;;) {
                CfCall *c = TAILQ_FIRST(&api->running);

                for (int p = _CFAPI_PRIORITY_MAX - 1; !c && p >= 0; p--)
                        c = TAILQ_FIRST(&api->waiting[p]);
                if (!c)
                        break;
                call_fail(c, -ECANCELED, 0, "cancelled");
        }
        api->cancelling = false;
}

unsigned cfapi_n_pending(const CfApi *api) {
        return api ? api->n_calls : 0;
}

int cfapi_route_class(const char *path) {
        static const struct {
                const char *needle;
                unsigned cls;
        } map[] = {
                { "/workers/", 0 }, { "/storage/kv/", 1 }, { "/r2/", 2 }, { "/d1/", 3 }, { "/queues", 4 },
                { "/secrets_store/", 5 }, { "/logs/audit", 6 }, { "/tokens/", 7 },
        };
        char b[256];

        /* Paths are relative to the account ("workers/scripts/x") or
         * absolute ("/user/tokens/verify"). */
        snprintf(b, sizeof(b), "/%s/", path ? path : "");
        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (strstr(b, map[i].needle))
                        return (int) map[i].cls;
        return (int) N_ROUTE_CLASSES - 1;
}

const char *cfapi_route_class_name(int cls) {
        return cls >= 0 && (size_t) cls < N_ROUTE_CLASSES ? route_classes[cls] : NULL;
}

void cfapi_stats(const CfApi *api, CfApiStats *ret) {
        CfApi *mut = (CfApi *) api;     /* budget_available refills */

        assert(api);
        assert(ret);
        *ret = api->stats;
        ret->latency_buckets = latency_buckets;
        ret->budget_capacity = (uint64_t) api->budget.capacity;
        ret->budget_left = budget_available(&mut->budget, now_monotonic_usec());
        ret->budget_waits = api->budget.n_waits;
        ret->queued = api->n_calls - api->n_running;
        ret->in_flight = api->n_running;
}

char *cfapi_escape(const char *s) {
        char *c, *d;

        if (!s)
                return NULL;
        c = curl_easy_escape(NULL, s, 0);
        if (!c)
                return NULL;
        d = strdup(c);
        curl_free(c);
        return d;
}

char *cfapi_unescape(const char *s, size_t n) {
        char *c, *d;
        int len = 0;

        if (!s || n > INT_MAX)
                return NULL;
        c = curl_easy_unescape(NULL, s, (int) n, &len);
        if (!c)
                return NULL;
        d = strndup(c, (size_t) len);
        curl_free(c);
        return d;
}
