/* httpd.c: see httpd.h.
 *
 * Request flow (MHD calls the access handler at least twice): the first
 * call matches the route, checks method, authentication and the declared
 * body size, and answers 404/405/401/413 at once without reading a body;
 * middle calls collect the body (capped); the final call runs the route's
 * handler. A handler may suspend its connection (waiting for a run or a
 * plan); httpd_wake() and per-request deadline timers resume it and MHD
 * calls the handler again.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "config.h"
#include "httpd.h"
#include "log.h"
#include "util.h"

#define HTTPD_CONNECTION_LIMIT_DEFAULT 1024
#define HTTPD_PER_ADDRESS_LIMIT_DEFAULT 768
#define HTTPD_REQUEST_DEADLINE_DEFAULT 15
/* MHD's own limit sits above ours, so a new connection is always accepted
 * and we choose whom to evict. */
#define HTTPD_MHD_LIMIT_SLACK 64
#define HTTPD_TIMEOUT_DEFAULT 30
#define HTTPD_MEMORY_LIMIT_DEFAULT (64 * 1024)
#define HTTPD_BODY_MAX_DEFAULT (4 * 1024)
#define HTTPD_WEBHOOK_BODY_MAX_DEFAULT (1024 * 1024)
#define HTTPD_WAIT_MAX_DEFAULT 3600
#define HTTPD_PLAN_WAIT_SEC 300

DEFINE_TRIVIAL_CLEANUP_FUNC(struct MHD_Response *, MHD_destroy_response);

typedef struct Request Request;
typedef struct Route Route;
typedef struct Conn Conn;

typedef enum HandlerResult {
        HANDLER_DONE,               /* a response was queued (or the connection is to be closed) */
        HANDLER_SUSPENDED,          /* the connection was suspended; ask again on wake */
        HANDLER_FAILED,             /* close the connection */
} HandlerResult;

typedef HandlerResult (*handler_t)(Request *r, const char *arg);

/* A JSON answer serialised once per change of the backend's version and
 * queued as the same MHD response to every request (MHD counts its
 * references), with a strong ETag: the first 128 bits of the SHA-256 of
 * the bytes, so it also holds across restarts. */
typedef struct Prepared {
        struct MHD_Response *ok;            /* 200, the body and the ETag */
        struct MHD_Response *not_modified;  /* 304, no body, the same ETag */
        uint64_t version;
        char etag[2 + 32 + 1];
} Prepared;

typedef enum RouteFlags {
        ROUTE_PUBLIC = 1 << 0,      /* never needs the token (probes) */
        ROUTE_WEBHOOK = 1 << 1,     /* checked by HMAC, not by the token */
        ROUTE_BIG_BODY = 1 << 2,    /* body up to webhook_body_max */
} RouteFlags;

struct Route {
        const char *method;
        const char *path;           /* a "{id}" segment matches one path segment */
        handler_t handler;
        unsigned flags;
};

typedef struct Listener {
        Httpd *httpd;
        struct MHD_Daemon *daemon;
        sd_event_source *io;
        sd_event_source *timer;
        uint16_t port;
} Listener;

/* One client connection, from MHD's connection-notify callback. A
 * connection is "receiving" from its accept (or its last answered request)
 * until its request's headers and body are in; only receiving connections
 * are evicted or cut by the deadline: an authenticated request being
 * answered or waiting is never. */
struct Conn {
        Httpd *httpd;
        int fd;
        struct sockaddr_storage addr;
        uint64_t since;             /* CLOCK_MONOTONIC µs: accepted, or the last request answered */
        bool busy;                  /* a whole request is in; it is being answered */
        bool evicted;               /* shutdown() already */
        TAILQ_ENTRY(Conn) link;     /* h->conns, oldest first */
};

struct Request {
        Httpd *httpd;
        struct MHD_Connection *connection;
        const Route *route;
        char *arg;                  /* the {id} segment */
        char *body;
        size_t size, max;
        bool head;
        bool too_large;             /* a chunked body passed max: discarded, answered 413 */
        /* waiting */
        bool suspended;
        bool timed_out;
        char *run_id;
        char *expect;               /* ?expect=DIGEST prefix: the run must enforce it */
        int status_if_created;      /* POST /v1/reconcile without wait */
        sd_event_source *deadline;
        Request *wait_prev, *wait_next;
        /* high availability: relaying to the leader */
        char *url;                  /* the path asked */
        void *relay;                /* the backend's handle while relaying */
        bool relayed;               /* the relay ended: relay_* hold the answer */
        unsigned relay_status;
        char *relay_type, *relay_body, *relay_location;
        size_t relay_size;
};

struct Httpd {
        sd_event *event;
        Listener *listeners;
        size_t n_listeners;
        HttpdBackend backend;
        void *userdata;
        HttpdSettings settings;
        char *token;
        size_t token_size;
        bool auth_reads;
        char *webhook_secret;
        size_t webhook_secret_size;
        char *webhook_ref;          /* only pushes to this ref trigger (NULL: any) */
        Request *waiting;           /* suspended requests */
        bool shutting_down;
        TAILQ_HEAD(, Conn) conns;   /* every open connection, oldest first */
        size_t n_conns;
        uint64_t n_started, n_evicted, n_deadline;
        sd_event_source *deadline_timer;
        Prepared status, runs;      /* plain JSON of GET /v1/status and GET /v1/runs */
};

static void conn_set_busy(struct MHD_Connection *c, bool busy);
static HandlerResult handle_healthz(Request *r, const char *arg);
static HandlerResult handle_readyz(Request *r, const char *arg);
static HandlerResult handle_status(Request *r, const char *arg);
static HandlerResult handle_plan(Request *r, const char *arg);
static HandlerResult handle_reconcile(Request *r, const char *arg);
static HandlerResult handle_runs(Request *r, const char *arg);
static HandlerResult handle_run(Request *r, const char *arg);
static HandlerResult handle_metrics(Request *r, const char *arg);
static HandlerResult handle_github(Request *r, const char *arg);

static const Route routes[] = {
        { "GET",  "/healthz",          handle_healthz,   ROUTE_PUBLIC },
        { "GET",  "/readyz",           handle_readyz,    ROUTE_PUBLIC },
        { "GET",  "/v1/status",        handle_status,    0 },
        { "GET",  "/v1/plan",          handle_plan,      0 },
        { "POST", "/v1/reconcile",     handle_reconcile, 0 },
        { "GET",  "/v1/runs",          handle_runs,      0 },
        { "GET",  "/v1/runs/{id}",     handle_run,       0 },
        { "GET",  "/metrics",          handle_metrics,   0 },
        { "POST", "/v1/hooks/github",  handle_github,    ROUTE_WEBHOOK | ROUTE_BIG_BODY },
};

/* ---- responses ---- */

static enum MHD_Result add_common_headers(struct MHD_Response *resp, const char *content_type) {
        if (content_type && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
                return MHD_NO;
        if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
            MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES)
                return MHD_NO;
        return MHD_YES;
}

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, const char *content_type,
                             const char *body, size_t size, const char *h1, const char *v1) {
        _cleanup_(MHD_destroy_responsep) struct MHD_Response *resp = NULL;

        resp = MHD_create_response_from_buffer(size, (void *) body, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        if (add_common_headers(resp, content_type) != MHD_YES)
                return MHD_NO;
        if (h1 && MHD_add_response_header(resp, h1, v1) != MHD_YES)
                return MHD_NO;
        return MHD_queue_response(c, status, resp);
}

static bool query_has(struct MHD_Connection *c, const char *key) {
        /* MHD_lookup_connection_value() cannot tell "?pretty" from no key. */
        const char *v = NULL;
        size_t n = 0;

        return MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, key, strlen(key), &v, &n) == MHD_YES;
}

/* Tables with ?format=table or Accept: text/plain; ?format=json or
 * ?pretty keep JSON. */
static bool wants_text(struct MHD_Connection *c) {
        const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
        const char *format = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");

        if (format)
                return streq(format, "table") || streq(format, "text");
        if (query_has(c, "pretty"))
                return false;
        return accept && strstr(accept, "text/plain") && !strstr(accept, "application/json");
}

static HandlerResult respond_json(Request *r, unsigned status, json_object *j, const char *h1, const char *v1) {
        /* ?pretty: indented JSON (two spaces), else one line. */
        const char *s = json_object_to_json_string_ext(j, (query_has(r->connection, "pretty")
                                                           ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
                                                           : JSON_C_TO_STRING_PLAIN) |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
        _cleanup_free_ char *line = NULL;

        if (!s)
                return HANDLER_FAILED;
        if (asprintf(&line, "%s\n", s) < 0)
                return HANDLER_FAILED;
        return queue(r->connection, status, "application/json", line, strlen(line), h1, v1) == MHD_YES
                ? HANDLER_DONE : HANDLER_FAILED;
}

static enum MHD_Result error_on(struct MHD_Connection *c, unsigned status, const char *h1, const char *v1,
                                const char *msg) {
        _cleanup_(json_object_putp) json_object *j = json_object_new_object();
        _cleanup_free_ char *line = NULL;

        if (!j)
                return MHD_NO;
        json_object_object_add(j, "error", json_object_new_string(msg));
        json_object_object_add(j, "status", json_object_new_int((int) status));
        if (asprintf(&line, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN)) < 0)
                return MHD_NO;
        return queue(c, status, "application/json", line, strlen(line), h1, v1);
}

_printf_(5, 6)
static HandlerResult respond_error(Request *r, unsigned status, const char *h1, const char *v1,
                                   const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (k < 0)
                return HANDLER_FAILED;
        return error_on(r->connection, status, h1, v1, msg) == MHD_YES ? HANDLER_DONE : HANDLER_FAILED;
}

static HandlerResult respond_text(Request *r, unsigned status, const char *text) {
        return queue(r->connection, status, "text/plain; charset=utf-8", text, strlen(text), NULL, NULL) == MHD_YES
                ? HANDLER_DONE : HANDLER_FAILED;
}

/* ---- human-readable tables (?pretty, Accept: text/plain) ---- */

static const char *jstr(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return NULL;
        return json_object_get_string(v);
}

static json_object *jget(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v))
                return NULL;
        return v;
}

static void text_run_line(FILE *f, const char *label, json_object *run) {
        if (!run || json_object_is_type(run, json_type_null)) {
                fprintf(f, "%-12s -\n", label);
                return;
        }
        fprintf(f, "%-12s %s  %s%s%s  trigger=%s  started=%s  finished=%s  actions=%s\n", label,
                strna(jstr(run, "id")), strna(jstr(run, "state")),
                jstr(run, "result") ? "/" : "", jstr(run, "result") ? jstr(run, "result") : "",
                strna(jstr(run, "trigger")), strna(jstr(run, "started_at")), strna(jstr(run, "finished_at")),
                strna(jstr(run, "n_actions")));
}

static char *status_text(json_object *s) {
        json_object *g = jget(s, "generation"), *d = jget(s, "daemon"), *errs, *res;
        _cleanup_fclose_ FILE *f = NULL;
        char *out = NULL;
        size_t size = 0;

        f = open_memstream(&out, &size);
        if (!f)
                return NULL;
        fprintf(f, "daemon       binderyd %s, pid %s, ready %s, account %s\n", strna(jstr(d, "version")),
                strna(jstr(d, "pid")), strna(jstr(d, "ready")), strna(jstr(d, "account_id")));
        fprintf(f, "spec         %s\n", strna(jstr(d, "spec_dir")));
        fprintf(f, "generation   %.12s  loaded %s  state %s\n", strna(jstr(g, "digest")),
                strna(jstr(g, "loaded_at")), strna(jstr(g, "state")));
        errs = jget(g, "errors");
        if (errs && json_object_is_type(errs, json_type_array))
                for (size_t i = 0; i < json_object_array_length(errs); i++)
                        fprintf(f, "  error      %s\n", strna(jstr(json_object_array_get_idx(errs, i), "text")));
        if (jstr(g, "empty"))
                fprintf(f, "  guard      %s\n", jstr(g, "empty"));
        text_run_line(f, "current run", jget(s, "current_run"));
        text_run_line(f, "last run", jget(s, "last_run"));
        if (jstr(s, "pending_removals"))
                fprintf(f, "removals     %s waiting for prune_settle, due %s\n", jstr(s, "pending_removals"),
                        jstr(s, "removals_due_at") ?: "-");
        fprintf(f, "\n%-20s %-28s %-9s %-20s %s\n", "KIND", "NAME", "STATE", "LAST CHANGE", "REASON");
        res = jget(s, "resources");
        if (res && json_object_is_type(res, json_type_array))
                for (size_t i = 0; i < json_object_array_length(res); i++) {
                        json_object *x = json_object_array_get_idx(res, i);

                        fprintf(f, "%-20s %-28s %-9s %-20s %s\n", strna(jstr(x, "kind")), strna(jstr(x, "name")),
                                strna(jstr(x, "state")), jstr(x, "last_change") ?: "-", jstr(x, "reason") ?: "");
                }
        if (fflush(f) != 0)
                return NULL;
        f = (fclose(f), NULL);
        return out;
}

static char *runs_text(json_object *runs) {
        _cleanup_fclose_ FILE *f = NULL;
        char *out = NULL;
        size_t size = 0;

        f = open_memstream(&out, &size);
        if (!f)
                return NULL;
        fprintf(f, "%-24s %-8s %-8s %-16s %-20s %-20s %s\n", "ID", "STATE", "RESULT", "TRIGGER", "STARTED",
                "FINISHED", "ACTIONS");
        for (size_t i = 0; i < json_object_array_length(runs); i++) {
                json_object *x = json_object_array_get_idx(runs, i);

                fprintf(f, "%-24s %-8s %-8s %-16s %-20s %-20s %s\n", strna(jstr(x, "id")), strna(jstr(x, "state")),
                        jstr(x, "result") ?: "-", strna(jstr(x, "trigger")), jstr(x, "started_at") ?: "-",
                        jstr(x, "finished_at") ?: "-", jstr(x, "n_actions") ?: "-");
        }
        if (fflush(f) != 0)
                return NULL;
        f = (fclose(f), NULL);
        return out;
}

/* A report with a "text" member is shown as that text; anything else as
 * indented JSON. */
static char *report_text(json_object *j) {
        const char *t = jstr(j, "text");
        char *out;

        if (t) {
                if (asprintf(&out, "%s%s", t, endswith(t, "\n") ? "" : "\n") < 0)
                        return NULL;
                return out;
        }
        if (asprintf(&out, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                                       JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
                return NULL;
        return out;
}

static HandlerResult respond_human_or_json(Request *r, unsigned status, json_object *j,
                                           char *(*render)(json_object *j)) {
        if (wants_text(r->connection)) {
                _cleanup_free_ char *t = render(j);

                if (!t)
                        return HANDLER_FAILED;
                return respond_text(r, status, t);
        }
        return respond_json(r, status, j, NULL, NULL);
}

/* ---- waiting ---- */

static void request_unwait(Request *r) {
        Httpd *h = r->httpd;

        if (r->wait_prev)
                r->wait_prev->wait_next = r->wait_next;
        else if (h->waiting == r)
                h->waiting = r->wait_next;
        if (r->wait_next)
                r->wait_next->wait_prev = r->wait_prev;
        r->wait_prev = r->wait_next = NULL;
}

/* Makes every listener run MHD soon: a resumed connection is only
 * processed by the next MHD_run() of its daemon. */
static void httpd_poke(Httpd *h) {
        for (size_t i = 0; i < h->n_listeners; i++)
                if (h->listeners[i].timer) {
                        (void) sd_event_source_set_time_relative(h->listeners[i].timer, 0);
                        (void) sd_event_source_set_enabled(h->listeners[i].timer, SD_EVENT_ONESHOT);
                }
}

static void request_resume(Request *r) {
        if (!r->suspended)
                return;
        r->suspended = false;
        request_unwait(r);
        MHD_resume_connection(r->connection);
        httpd_poke(r->httpd);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Request *r = userdata;

        r->timed_out = true;
        request_resume(r);
        return 0;
}

/* Suspends r until httpd_wake() or, the first time, until timeout_usec
 * from now. */
static HandlerResult request_suspend(Request *r, uint64_t timeout_usec) {
        Httpd *h = r->httpd;
        int k;

        if (!r->deadline) {
                k = sd_event_add_time_relative(h->event, &r->deadline, CLOCK_MONOTONIC, timeout_usec,
                                               USEC_PER_MSEC, on_deadline, r);
                if (k < 0)
                        return HANDLER_FAILED;
        }
        r->suspended = true;
        r->wait_next = h->waiting;
        if (h->waiting)
                h->waiting->wait_prev = r;
        h->waiting = r;
        MHD_suspend_connection(r->connection);
        return HANDLER_SUSPENDED;
}

void httpd_wake(Httpd *h) {
        if (!h)
                return;
        while (h->waiting)
                request_resume(h->waiting);
}

/* ---- handlers ---- */

static HandlerResult handle_healthz(Request *r, const char *arg) {
        _cleanup_(json_object_putp) json_object *j = json_object_new_object();

        json_object_object_add(j, "status", json_object_new_string("ok"));
        return respond_json(r, MHD_HTTP_OK, j, NULL, NULL);
}

static HandlerResult handle_readyz(Request *r, const char *arg) {
        _cleanup_(json_object_putp) json_object *j = json_object_new_object();
        bool ready = !r->httpd->shutting_down && r->httpd->backend.ready(r->httpd->userdata);

        json_object_object_add(j, "ready", json_object_new_boolean(ready));
        if (!ready)
                json_object_object_add(j, "error", json_object_new_string(
                        r->httpd->shutting_down ? "stopping" : "no spec generation has loaded yet"));
        return respond_json(r, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, j, NULL, NULL);
}

/* ---- prepared answers ---- */

static void prepared_clear(Prepared *p) {
        if (p->ok)
                MHD_destroy_response(p->ok);
        if (p->not_modified)
                MHD_destroy_response(p->not_modified);
        *p = (Prepared) {};
}

/* Serialises j as respond_json() does without ?pretty (the same bytes). */
static int prepared_set(Prepared *p, json_object *j, uint64_t version) {
        _cleanup_(MHD_destroy_responsep) struct MHD_Response *ok = NULL, *nm = NULL;
        const char *s = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        char *line = NULL, hex[65], etag[sizeof(p->etag)];
        int n;

        if (!s)
                return -ENOMEM;
        n = asprintf(&line, "%s\n", s);
        if (n < 0)
                return -ENOMEM;
        sha256_hex(line, (size_t) n, hex);
        snprintf(etag, sizeof(etag), "\"%.32s\"", hex);
        ok = MHD_create_response_from_buffer((size_t) n, line, MHD_RESPMEM_MUST_FREE);
        if (!ok) {
                free(line);
                return -ENOMEM;
        }
        nm = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!nm ||
            add_common_headers(ok, "application/json") != MHD_YES ||
            MHD_add_response_header(ok, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES ||
            add_common_headers(nm, NULL) != MHD_YES ||
            MHD_add_response_header(nm, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES)
                return -ENOMEM;
        prepared_clear(p);
        p->ok = TAKE_PTR(ok);
        p->not_modified = TAKE_PTR(nm);
        p->version = version;
        memcpy(p->etag, etag, sizeof(etag));
        return 0;
}

/* If-None-Match (RFC 9110 13.1.2): "*" or a list of entity tags, compared
 * weakly (a W/ prefix is ignored). */
static bool etag_matches(const char *header, const char *etag) {
        size_t n = strlen(etag);
        const char *p = header;

        for (;;) {
                p += strspn(p, " \t,");
                if (!*p)
                        return false;
                if (*p == '*')
                        return true;
                if (startswith(p, "W/"))
                        p += 2;
                if (strncmp(p, etag, n) == 0 && (p[n] == 0 || strchr(" \t,", p[n])))
                        return true;
                if (*p == '"') {
                        const char *q = strchr(p + 1, '"');

                        if (!q)
                                return false;
                        p = q + 1;
                } else
                        p += strcspn(p, ",");
        }
}

/* The plain JSON form (no ?pretty, no table) from p, rebuilt when the
 * backend's version moved; 304 when If-None-Match names its ETag. */
static HandlerResult respond_prepared(Request *r, Prepared *p, json_object *(*build)(void *userdata)) {
        Httpd *h = r->httpd;
        uint64_t v = h->backend.status_version(h->userdata);
        const char *inm;

        if (!p->ok || p->version != v) {
                _cleanup_(json_object_putp) json_object *j = build(h->userdata);

                if (!j || prepared_set(p, j, v) < 0) {
                        prepared_clear(p);
                        return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "out of memory");
                }
        }
        inm = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
        if (inm && etag_matches(inm, p->etag))
                return MHD_queue_response(r->connection, MHD_HTTP_NOT_MODIFIED, p->not_modified) == MHD_YES
                        ? HANDLER_DONE : HANDLER_FAILED;
        return MHD_queue_response(r->connection, MHD_HTTP_OK, p->ok) == MHD_YES ? HANDLER_DONE : HANDLER_FAILED;
}

static bool wants_prepared(Request *r) {
        return r->httpd->backend.status_version && !wants_text(r->connection) &&
               !query_has(r->connection, "pretty");
}

static HandlerResult handle_status(Request *r, const char *arg) {
        _cleanup_(json_object_putp) json_object *j = NULL;

        if (wants_prepared(r))
                return respond_prepared(r, &r->httpd->status, r->httpd->backend.status);
        j = r->httpd->backend.status(r->httpd->userdata);

        if (!j)
                return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "out of memory");
        return respond_human_or_json(r, MHD_HTTP_OK, j, status_text);
}

static bool serve_on_leader(Request *r, bool local_unknown, HandlerResult *ret);

static HandlerResult handle_runs(Request *r, const char *arg) {
        _cleanup_(json_object_putp) json_object *j = NULL;
        HandlerResult hr;

        /* A follower lists the leader's runs (those its relayed triggers
         * started); its own while no leader is known. */
        if (!r->httpd->shutting_down && serve_on_leader(r, true, &hr))
                return hr;
        if (wants_prepared(r))
                return respond_prepared(r, &r->httpd->runs, r->httpd->backend.runs);
        j = r->httpd->backend.runs(r->httpd->userdata);

        if (!j)
                return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "out of memory");
        return respond_human_or_json(r, MHD_HTTP_OK, j, runs_text);
}

static HandlerResult handle_run(Request *r, const char *arg) {
        _cleanup_(json_object_putp) json_object *j = NULL;
        HandlerResult hr;

        /* A run this follower does not hold is the leader's (the Location
         * of a relayed trigger): asked of it. */
        if (!r->relayed)
                j = r->httpd->backend.run(r->httpd->userdata, arg);
        if (!j && !r->httpd->shutting_down && serve_on_leader(r, true, &hr))
                return hr;
        if (!j)
                return respond_error(r, MHD_HTTP_NOT_FOUND, NULL, NULL, "no run '%s' (only recent runs are kept)", arg);
        return respond_human_or_json(r, MHD_HTTP_OK, j, report_text);
}

/* ---- high availability: serve on the leader ---- */

/* Appends the query string of c, re-encoded, to *q ("?a=b&c"). */
static enum MHD_Result query_append(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        char **q = cls;
        _cleanup_free_ char *n = NULL;
        char *k, *v = NULL;

        k = curl_easy_escape(NULL, key, 0);
        if (value)
                v = curl_easy_escape(NULL, value, 0);
        if (!k || (value && !v) ||
            asprintf(&n, "%s%s%s%s%s", *q ? *q : "", *q ? "&" : "?", k, v ? "=" : "", v ? v : "") < 0) {
                curl_free(k);
                curl_free(v);
                return MHD_NO;
        }
        curl_free(k);
        curl_free(v);
        free(*q);
        *q = TAKE_PTR(n);
        return MHD_YES;
}

static void on_relayed(const HttpdRelay *a, void *cookie) {
        Request *r = cookie;

        r->relay = NULL;
        r->relayed = true;
        if (a) {
                r->relay_status = a->status;
                r->relay_type = a->content_type ? strdup(a->content_type) : NULL;
                /* A path on the leader (/v1/runs/ID) is one on this host
                 * too (GET /v1/runs/ID is relayed); never another host. */
                if (a->location && a->location[0] == '/' && a->location[1] != '/')
                        r->relay_location = strdup(a->location);
                r->relay_body = malloc(a->size + 1);
                if (r->relay_body) {
                        memcpy(r->relay_body, a->body, a->size);
                        r->relay_body[a->size] = 0;
                        r->relay_size = a->size;
                }
        }
        r->suspended = true;        /* MHD_suspend_connection was called */
        request_resume(r);
}

/* Not the leader: answers 307 to it, relays to it, or 503 when none is
 * known (with local_unknown: false, served here). Returns true when r was
 * answered or suspended (*ret). */
static bool serve_on_leader(Request *r, bool local_unknown, HandlerResult *ret) {
        Httpd *h = r->httpd;
        _cleanup_free_ char *base = NULL, *query = NULL, *target = NULL;
        const char *auth, *method;
        bool forward = false;
        int k;

        if (r->relayed) {
                if (!r->relay_body || r->relay_status < 100 || r->relay_status > 599)
                        *ret = respond_error(r, MHD_HTTP_BAD_GATEWAY, NULL, NULL,
                                             "this host does not lead and the leader did not answer");
                else
                        *ret = queue(r->connection, r->relay_status, r->relay_type ? r->relay_type : "application/json",
                                     r->relay_body, r->relay_size,
                                     r->relay_location ? MHD_HTTP_HEADER_LOCATION : NULL, r->relay_location)
                                == MHD_YES ? HANDLER_DONE : HANDLER_FAILED;
                return true;
        }
        if (!h->backend.leader)
                return false;
        k = h->backend.leader(h->userdata, &base, &forward);
        if (k == 0)
                return false;
        if (k < 0 || !base) {
                if (local_unknown)
                        return false;
                *ret = respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, MHD_HTTP_HEADER_RETRY_AFTER, "2",
                                     "this host does not lead and no leader is known yet (high availability)");
                return true;
        }
        if (MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, HTTPD_FORWARDED_HEADER)) {
                *ret = respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, MHD_HTTP_HEADER_RETRY_AFTER, "2",
                                     "forwarded to a host that does not lead either; retry");
                return true;
        }
        if (MHD_get_connection_values(r->connection, MHD_GET_ARGUMENT_KIND, query_append, &query) < 0 ||
            asprintf(&target, "%s%s%s", base, r->url, query ? query : "") < 0) {
                *ret = HANDLER_FAILED;
                return true;
        }
        if (!forward) {
                _cleanup_(json_object_putp) json_object *j = json_object_new_object();

                if (!j) {
                        *ret = HANDLER_FAILED;
                        return true;
                }
                json_object_object_add(j, "error", json_object_new_string(
                        "this host does not lead; resend to the leader (with the token)"));
                json_object_object_add(j, "status", json_object_new_int(307));
                json_object_object_add(j, "leader_url", json_object_new_string(base));
                *ret = respond_json(r, MHD_HTTP_TEMPORARY_REDIRECT, j, MHD_HTTP_HEADER_LOCATION, target);
                return true;
        }
        auth = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        method = r->route->method;
        k = h->backend.forward(h->userdata, method, target, auth, r->body ? r->body : "", r->size,
                               (uint64_t) (h->settings.wait_max_sec + 60) * USEC_PER_SEC, on_relayed, r,
                               &r->relay);
        if (k < 0) {
                *ret = respond_error(r, MHD_HTTP_BAD_GATEWAY, NULL, NULL,
                                     "this host does not lead and cannot reach the leader: %s", strerror(-k));
                return true;
        }
        MHD_suspend_connection(r->connection);
        *ret = HANDLER_SUSPENDED;
        return true;
}

static HandlerResult handle_plan(Request *r, const char *arg) {
        Httpd *h = r->httpd;
        _cleanup_(json_object_putp) json_object *j = NULL;
        unsigned retry = 5;
        char buf[32];
        HandlerResult hr;
        int k;

        if (!h->shutting_down && serve_on_leader(r, false, &hr))
                return hr;
        if (h->shutting_down)
                return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL, "stopping");
        if (r->timed_out)
                return respond_error(r, MHD_HTTP_GATEWAY_TIMEOUT, NULL, NULL, "the plan did not finish in time");
        k = h->backend.plan(h->userdata, &j, &retry);
        if (k == -EINPROGRESS)
                return request_suspend(r, HTTPD_PLAN_WAIT_SEC * USEC_PER_SEC);
        if (k == -EBUSY) {
                snprintf(buf, sizeof(buf), "%u", retry ? retry : 1);
                return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, MHD_HTTP_HEADER_RETRY_AFTER, buf,
                                     "a reconcile is running and no recent plan is cached; retry later");
        }
        if (k < 0)
                return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "plan failed: %s", strerror(-k));
        return respond_human_or_json(r, MHD_HTTP_OK, j, report_text);
}

static HandlerResult reply_run(Request *r, unsigned status_running) {
        Httpd *h = r->httpd;
        _cleanup_(json_object_putp) json_object *run = h->backend.run(h->userdata, r->run_id);
        _cleanup_free_ char *location = NULL;
        const char *state, *result;

        if (asprintf(&location, "/v1/runs/%s", r->run_id) < 0)
                return HANDLER_FAILED;
        if (!run) {
                /* Fell off the ring already; say what we know. */
                run = json_object_new_object();
                if (!run)
                        return HANDLER_FAILED;
                json_object_object_add(run, "id", json_object_new_string(r->run_id));
                json_object_object_add(run, "state", json_object_new_string("unknown"));
                return respond_json(r, status_running, run, MHD_HTTP_HEADER_LOCATION, location);
        }
        json_object_object_add(run, "url", json_object_new_string(location));
        state = jstr(run, "state");
        result = jstr(run, "result");
        if (streq_ptr(state, "done") && r->expect && status_running != MHD_HTTP_ACCEPTED &&
            !startswith(jstr(run, "generation") ?: "", r->expect)) {
                /* Another generation was loaded before the run started. */
                json_object_object_add(run, "error", json_object_new_string(
                        "the run enforced another generation than the expected one"));
                json_object_object_add(run, "expected", json_object_new_string(r->expect));
                return respond_json(r, MHD_HTTP_PRECONDITION_FAILED, run, MHD_HTTP_HEADER_LOCATION, location);
        }
        if (streq_ptr(state, "done")) {
                unsigned st = streq_ptr(result, "failed") || streq_ptr(result, "blocked")
                        ? MHD_HTTP_CONFLICT : MHD_HTTP_OK;

                if (status_running == MHD_HTTP_ACCEPTED)
                        st = MHD_HTTP_ACCEPTED;  /* no wait: always 202 */
                return respond_json(r, st, run, MHD_HTTP_HEADER_LOCATION, location);
        }
        return respond_json(r, status_running, run, MHD_HTTP_HEADER_LOCATION, location);
}

static bool run_is_done(Httpd *h, const char *id) {
        _cleanup_(json_object_putp) json_object *run = h->backend.run(h->userdata, id);

        return !run || streq_ptr(jstr(run, "state"), "done");
}

static int parse_wait(const char *s, unsigned max, unsigned *ret) {
        uint64_t u;

        if (!s || !*s) {
                *ret = max < 30 ? max : 30;  /* "?wait" alone */
                return 0;
        }
        if (safe_atou64(s, &u) < 0)
                return -EINVAL;
        *ret = u > max ? max : (unsigned) u;
        return 0;
}

/* A digest prefix: 12 to 64 lowercase or uppercase hex digits. */
static bool expect_valid(const char *s) {
        size_t n = strlen(s);

        if (n < 12 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("0123456789abcdefABCDEF", s[i]))
                        return false;
        return true;
}

/* Queues a reconcile and answers. With options, ?wait, ?force and ?expect
 * apply (the bearer-token API); without (the webhook, whose query string no
 * signature covers), nothing in the request changes what the run may do:
 * a delivery, or a replayed one, only queues a coalesced reconcile. */
static HandlerResult trigger_and_reply(Request *r, const char *reason, bool options) {
        Httpd *h = r->httpd;
        _cleanup_(json_object_putp) json_object *detail = NULL;
        const char *wait_s = NULL, *force_s, *expect_s = NULL;
        bool wait = false, force = false;
        unsigned wait_sec = 0;
        int k;

        if (r->run_id) {
                /* resumed */
                if (run_is_done(h, r->run_id) || r->timed_out || h->shutting_down)
                        return reply_run(r, MHD_HTTP_GATEWAY_TIMEOUT);
                return request_suspend(r, 0);
        }

        if (options) {
                wait = query_has(r->connection, "wait");
                wait_s = MHD_lookup_connection_value(r->connection, MHD_GET_ARGUMENT_KIND, "wait");
                force_s = MHD_lookup_connection_value(r->connection, MHD_GET_ARGUMENT_KIND, "force");
                force = query_has(r->connection, "force") &&
                        (!force_s || streq(force_s, "") || streq(force_s, "1") || streq(force_s, "true") ||
                         streq(force_s, "yes"));
                expect_s = MHD_lookup_connection_value(r->connection, MHD_GET_ARGUMENT_KIND, "expect");
                if (query_has(r->connection, "expect") && (!expect_s || !expect_valid(expect_s)))
                        return respond_error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL,
                                             "'expect' must be a generation digest or a prefix of at least 12 hex digits");
                if (expect_s) {
                        r->expect = strdup(expect_s);
                        if (!r->expect)
                                return HANDLER_FAILED;
                        for (char *p = r->expect; *p; p++)
                                *p = (char) tolower((unsigned char) *p);
                }
        }
        if (wait && parse_wait(wait_s, h->settings.wait_max_sec, &wait_sec) < 0)
                return respond_error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL,
                                     "'wait' must be a number of seconds, not '%s'", wait_s);
        if (h->shutting_down)
                return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL, "stopping");

        if (h->backend.trigger_load)
                k = h->backend.trigger_load(h->userdata, reason, force, r->expect, &r->run_id, &detail);
        else
                k = h->backend.trigger(h->userdata, reason, force, &r->run_id);
        if (k == -ESTALE) {
                if (!detail)
                        return respond_error(r, MHD_HTTP_PRECONDITION_FAILED, NULL, NULL,
                                             "the spec directory does not produce generation %s", strna(r->expect));
                return respond_json(r, MHD_HTTP_PRECONDITION_FAILED, detail, NULL, NULL);
        }
        if (k == -ESHUTDOWN)
                return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL, "stopping");
        if (k < 0)
                return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, MHD_HTTP_HEADER_RETRY_AFTER, "5",
                                     "cannot queue a reconcile: %s", strerror(-k));
        if (!wait)
                return reply_run(r, MHD_HTTP_ACCEPTED);
        if (wait_sec == 0 || run_is_done(h, r->run_id))
                return reply_run(r, MHD_HTTP_GATEWAY_TIMEOUT);
        return request_suspend(r, wait_sec * USEC_PER_SEC);
}

static HandlerResult handle_reconcile(Request *r, const char *arg) {
        HandlerResult hr;

        if (!r->run_id && !r->httpd->shutting_down && serve_on_leader(r, false, &hr))
                return hr;
        return trigger_and_reply(r, "api", true);
}

static HandlerResult handle_metrics(Request *r, const char *arg) {
        _cleanup_free_ char *t = r->httpd->backend.metrics(r->httpd->userdata);

        if (!t)
                return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "out of memory");
        return queue(r->connection, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", t, strlen(t),
                     NULL, NULL) == MHD_YES ? HANDLER_DONE : HANDLER_FAILED;
}

int httpd_webhook_signature(const void *key, size_t key_size, const void *body, size_t size,
                            char ret[static 72]) {
        uint8_t md[32];

        hmac_sha256_raw(key, key_size, body, size, md);
        memcpy(ret, "sha256=", 7);
        for (unsigned i = 0; i < sizeof(md); i++)
                snprintf(ret + 7 + 2 * i, 3, "%02x", md[i]);
        explicit_bzero(md, sizeof(md));
        return 0;
}

static HandlerResult handle_github(Request *r, const char *arg) {
        Httpd *h = r->httpd;
        const char *sig, *event;
        char expected[72];
        _cleanup_(json_object_putp) json_object *j = NULL;

        if (r->run_id)
                return trigger_and_reply(r, "webhook", false);  /* resumed (not used without wait) */
        if (!h->webhook_secret)
                return respond_error(r, MHD_HTTP_FORBIDDEN, NULL, NULL,
                                     "the webhook is off: set webhook_secret in binderyd.yaml");
        sig = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, "X-Hub-Signature-256");
        if (!sig)
                return respond_error(r, MHD_HTTP_UNAUTHORIZED, NULL, NULL, "missing X-Hub-Signature-256");
        if (httpd_webhook_signature(h->webhook_secret, h->webhook_secret_size, r->body ?: "", r->size,
                                    expected) < 0)
                return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "HMAC failed");
        if (!memeq_consttime(expected, strlen(expected), sig, strlen(sig))) {
                log_notice("Webhook: bad X-Hub-Signature-256, refusing.");
                return respond_error(r, MHD_HTTP_UNAUTHORIZED, NULL, NULL, "bad X-Hub-Signature-256");
        }
        event = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, "X-GitHub-Event");
        if (streq_ptr(event, "push") && h->webhook_ref) {
                /* webhook_ref: a push to another branch or tag changes
                 * nothing bindery enforces. The payload must be JSON
                 * (the hook's content type application/json). */
                _cleanup_(json_object_putp) json_object *p = r->body ? json_tokener_parse(r->body) : NULL;
                json_object *ref = NULL;

                if (!p || !json_object_object_get_ex(p, "ref", &ref) || !json_object_is_type(ref, json_type_string))
                        return respond_error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL,
                                             "push without a \"ref\" (set the hook's content type to application/json)");
                if (!streq(json_object_get_string(ref), h->webhook_ref)) {
                        log_info("Webhook: push to %.200s ignored (webhook_ref is %s).", json_object_get_string(ref),
                                 h->webhook_ref);
                        j = json_object_new_object();
                        if (!j)
                                return HANDLER_FAILED;
                        json_object_object_add(j, "event", json_object_new_string("push"));
                        json_object_object_add(j, "ignored", json_object_new_boolean(true));
                        json_object_object_add(j, "ref", json_object_get(ref));
                        json_object_object_add(j, "webhook_ref", json_object_new_string(h->webhook_ref));
                        return respond_json(r, MHD_HTTP_OK, j, NULL, NULL);
                }
        }
        if (streq_ptr(event, "push"))
                return trigger_and_reply(r, "webhook", false);

        j = json_object_new_object();
        if (!j)
                return HANDLER_FAILED;
        json_object_object_add(j, "event", json_object_new_string(strna(event)));
        if (streq_ptr(event, "ping"))
                json_object_object_add(j, "pong", json_object_new_boolean(true));
        else
                json_object_object_add(j, "ignored", json_object_new_boolean(true));
        return respond_json(r, MHD_HTTP_OK, j, NULL, NULL);
}

/* ---- dispatch ---- */

/* Matches path against a route pattern; *ret_arg points into path for a
 * "{id}" segment (length in *ret_arg_len). */
static bool route_match(const char *pattern, const char *path, const char **ret_arg, size_t *ret_arg_len) {
        const char *brace = strchr(pattern, '{');
        size_t pre, n;

        if (!brace)
                return streq(pattern, path);
        pre = (size_t) (brace - pattern);
        if (strncmp(pattern, path, pre) != 0)
                return false;
        n = strcspn(path + pre, "/");
        if (n == 0 || path[pre + n] != 0)
                return false;
        *ret_arg = path + pre;
        *ret_arg_len = n;
        return true;
}

static bool method_is(const char *route_method, const char *method) {
        return streq(route_method, method) || (streq(route_method, "GET") && streq(method, "HEAD"));
}

static bool authorized(Httpd *h, struct MHD_Connection *c) {
        const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        static const char dummy[] = "no token is configured";

        if (!a || strncasecmp(a, "Bearer ", 7) != 0)
                return false;
        a += 7;
        while (*a == ' ')
                a++;
        if (!h->token) {
                /* Spend the same time, then refuse. */
                (void) memeq_consttime(dummy, sizeof(dummy) - 1, a, strlen(a));
                return false;
        }
        return memeq_consttime(h->token, h->token_size, a, strlen(a));
}

/* First call for a request: route, method, auth, declared size. Returns
 * MHD_YES to continue (r set up), or the result of queueing an error. */
static enum MHD_Result request_start(Httpd *h, struct MHD_Connection *c, const char *url,
                                     const char *method, Request **ret) {
        const Route *route = NULL;
        const char *arg = NULL, *cl;
        size_t arg_len = 0, max;
        char allow[64] = "";
        bool path_known = false;
        Request *r;

        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                const char *a = NULL;
                size_t al = 0;

                if (!route_match(routes[i].path, url, &a, &al))
                        continue;
                path_known = true;
                if (method_is(routes[i].method, method)) {
                        route = &routes[i];
                        arg = a;
                        arg_len = al;
                        break;
                }
                if (!strstr(allow, routes[i].method)) {
                        if (allow[0])
                                strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
                        strncat(allow, routes[i].method, sizeof(allow) - strlen(allow) - 1);
                        if (streq(routes[i].method, "GET"))
                                strncat(allow, ", HEAD", sizeof(allow) - strlen(allow) - 1);
                }
        }
        if (!route) {
                if (path_known)
                        return error_on(c, MHD_HTTP_METHOD_NOT_ALLOWED, MHD_HTTP_HEADER_ALLOW, allow,
                                        "method not allowed");
                return error_on(c, MHD_HTTP_NOT_FOUND, NULL, NULL, "no such endpoint");
        }

        if (!(route->flags & (ROUTE_PUBLIC | ROUTE_WEBHOOK)) &&
            (streq(route->method, "POST") || h->auth_reads) && !authorized(h, c)) {
                log_debug("HTTP %s %s: unauthorized.", method, url);
                return error_on(c, MHD_HTTP_UNAUTHORIZED, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer",
                                h->token ? "a valid bearer token is required"
                                         : "a bearer token is required but none is configured (http_token)");
        }

        max = route->flags & ROUTE_BIG_BODY ? h->settings.webhook_body_max : h->settings.body_max;
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
                uint64_t n;

                if (safe_atou64(cl, &n) < 0)
                        return error_on(c, MHD_HTTP_BAD_REQUEST, NULL, NULL, "bad Content-Length");
                if (n > max)
                        return error_on(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL, "request body too large");
        }

        r = calloc(1, sizeof(Request));
        if (!r)
                return MHD_NO;
        r->httpd = h;
        r->connection = c;
        r->route = route;
        r->max = max;
        r->head = streq(method, "HEAD");
        r->url = strdup(url);
        if (!r->url) {
                free(r);
                return MHD_NO;
        }
        if (arg) {
                r->arg = strndup(arg, arg_len);
                if (!r->arg) {
                        free(r->url);
                        free(r);
                        return MHD_NO;
                }
        }
        *ret = r;
        return MHD_YES;
}

static void request_free(Request *r) {
        if (!r)
                return;
        if (r->relay && r->httpd->backend.forward_cancel)
                r->httpd->backend.forward_cancel(r->httpd->userdata, r->relay);
        free(r->url);
        free(r->relay_type);
        free(r->relay_body);
        free(r->relay_location);
        request_unwait(r);
        sd_event_source_disable_unref(r->deadline);
        free(r->arg);
        free(r->body);
        free(r->run_id);
        free(r->expect);
        free(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        Httpd *h = cls;
        Request *r = *con_cls;
        HandlerResult hr;

        if (!r) {
                enum MHD_Result m = request_start(h, c, url, method, &r);

                if (r)
                        *con_cls = r;
                return m;
        }

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                char *b;

                if (r->too_large || r->size + n > r->max) {
                        /* Chunked (no Content-Length) and too large: drop
                         * what came, answer 413 when the body ends (the
                         * request deadline bounds how long that may take). */
                        r->too_large = true;
                        r->body = mfree(r->body);
                        r->size = 0;
                        *upload_data_size = 0;
                        return MHD_YES;
                }
                b = realloc(r->body, r->size + n + 1);
                if (!b)
                        return MHD_NO;
                memcpy(b + r->size, upload_data, n);
                r->body = b;
                r->size += n;
                r->body[r->size] = 0;
                *upload_data_size = 0;
                return MHD_YES;
        }

        conn_set_busy(c, true);
        if (r->too_large)
                return error_on(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL, "request body too large");
        log_debug("HTTP %s %s", method, url);
        hr = r->route->handler(r, r->arg);
        return hr == HANDLER_FAILED ? MHD_NO : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        request_free(*con_cls);
        *con_cls = NULL;
        /* Kept alive: receiving the next request from now on. */
        conn_set_busy(c, false);
}

/* ---- connections: the per-address cap, eviction, the request deadline ---- */

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *) a)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *) b)->sin_addr.s_addr;
        if (a->ss_family == AF_INET6)
                return memcmp(&((const struct sockaddr_in6 *) a)->sin6_addr,
                              &((const struct sockaddr_in6 *) b)->sin6_addr, sizeof(struct in6_addr)) == 0;
        return true;  /* AF_UNIX and the like: one "address" */
}

static void conn_evict(Conn *k, const char *why) {
        Httpd *h = k->httpd;

        if (k->evicted)
                return;
        k->evicted = true;
        /* MHD has no call to drop a connection it owns: shut the socket
         * down under it; its next read sees EOF and it closes. */
        (void) shutdown(k->fd, SHUT_RDWR);
        if (streq(why, "deadline"))
                h->n_deadline++;
        else
                h->n_evicted++;
        log_debug("HTTP: closing a connection that had not sent its request (%s).", why);
}

/* The oldest receiving connection (of addr, if given), or NULL. */
static Conn *conn_oldest_idle(Httpd *h, const struct sockaddr_storage *addr) {
        Conn *k;

        TAILQ_FOREACH(k, &h->conns, link)
                if (!k->busy && !k->evicted && (!addr || same_address(&k->addr, addr)))
                        return k;
        return NULL;
}

static void conn_admit(Httpd *h, Conn *n) {
        size_t same = 0, live = 0;
        Conn *k;

        TAILQ_FOREACH(k, &h->conns, link)
                if (!k->evicted) {
                        live++;
                        if (same_address(&k->addr, &n->addr))
                                same++;
                }
        /* At a cap, make room by closing the oldest connection that has
         * not completed its request (never one being answered): a flood,
         * even from our own address, cannot hold every slot. */
        if (same > h->settings.per_address_limit) {
                Conn *v = conn_oldest_idle(h, &n->addr);

                if (v) {
                        conn_evict(v, "per-address limit");
                        live--;
                }
        }
        if (live > h->settings.connection_limit) {
                Conn *v = conn_oldest_idle(h, NULL);

                if (v)
                        conn_evict(v, "connection limit");
        }
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
        Httpd *h = cls;
        Conn *k = *socket_context;
        int on;

        if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
                const union MHD_ConnectionInfo *ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

                h->n_started++;
                k = calloc(1, sizeof(Conn));
                if (!k)
                        return;  /* untracked: MHD's own limits and timeout still apply */
                k->httpd = h;
                k->fd = fi ? fi->connect_fd : -1;
                if (ai && ai->client_addr) {
                        socklen_t l = ai->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
                                      ai->client_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : 0;

                        memcpy(&k->addr, ai->client_addr, l);
                        k->addr.ss_family = ai->client_addr->sa_family;
                }
                k->since = now_monotonic_usec();
                TAILQ_INSERT_TAIL(&h->conns, k, link);
                h->n_conns++;
                *socket_context = k;
                /* The deadline timer runs only while connections are open. */
                if (h->deadline_timer && sd_event_source_get_enabled(h->deadline_timer, &on) >= 0 &&
                    on == SD_EVENT_OFF &&
                    sd_event_source_set_time_relative(h->deadline_timer, USEC_PER_SEC) >= 0)
                        (void) sd_event_source_set_enabled(h->deadline_timer, SD_EVENT_ON);
                if (k->fd >= 0)
                        conn_admit(h, k);
                return;
        }
        if (toe == MHD_CONNECTION_NOTIFY_CLOSED && k) {
                TAILQ_REMOVE(&h->conns, k, link);
                h->n_conns--;
                free(k);
                *socket_context = NULL;
        }
}

static void conn_set_busy(struct MHD_Connection *c, bool busy) {
        const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        Conn *k = i ? i->socket_context : NULL;

        if (!k || (busy && k->busy))
                return;
        k->busy = busy;
        if (!busy) {
                /* Back to receiving: to the end of the age order. */
                k->since = now_monotonic_usec();
                TAILQ_REMOVE(&k->httpd->conns, k, link);
                TAILQ_INSERT_TAIL(&k->httpd->conns, k, link);
        }
}

/* Once a second while connections are open (off otherwise, so an idle
 * daemon does not wake): a connection gets request_deadline_sec from its
 * accept (or its last answer) to deliver a whole request, headers and
 * body — however slowly it trickles, unlike MHD's inactivity timeout. */
static int on_deadline_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Httpd *h = userdata;
        uint64_t now = now_monotonic_usec(), limit = (uint64_t) h->settings.request_deadline_sec * USEC_PER_SEC;
        Conn *k;

        TAILQ_FOREACH(k, &h->conns, link) {
                if (k->since + limit > now)
                        break;  /* oldest first: the rest are younger */
                if (!k->busy)
                        conn_evict(k, "deadline");
        }
        if (TAILQ_EMPTY(&h->conns))
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        (void) sd_event_source_set_time_relative(s, USEC_PER_SEC);
        return 0;
}

/* ---- the loop glue ---- */

static int listener_rearm(Listener *l) {
        const union MHD_DaemonInfo *info;
        MHD_UNSIGNED_LONG_LONG ms;
        bool has_timeout;
        int k;

        /* While connections are open, run MHD at least once a second even
         * when it asks for no timer: a daemon that reached its connection
         * limit (or a resource limit) takes its listening socket out of the
         * epoll set and only puts it back from a later MHD_run(), which
         * nothing else would trigger. With no connection open that cannot
         * happen (MHD sets its at-limit flag only with connections open),
         * so an idle daemon arms no timer and does not wake. */
        has_timeout = MHD_get_timeout(l->daemon, &ms) == MHD_YES;
        info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!info || info->num_connections > 0) {
                if (!has_timeout || ms > 1000)
                        ms = 1000;
        } else if (!has_timeout)
                return sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
        k = sd_event_source_set_time_relative(l->timer, (uint64_t) ms * USEC_PER_MSEC);
        if (k < 0)
                return k;
        return sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
}

static int on_listener_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Listener *l = userdata;

        /* MHD accepts at most 10 connections per run: under a flood, run
         * again (a bounded number of times) while a run accepted that
         * many, so the accept queue drains faster than a flood refills it. */
        for (unsigned i = 0; i < 16; i++) {
                uint64_t before = l->httpd->n_started;

                if (MHD_run(l->daemon) != MHD_YES) {
                        log_debug("MHD_run() failed, ignoring.");
                        break;
                }
                if (l->httpd->n_started - before < 10)
                        break;
        }
        (void) listener_rearm(l);
        return 0;
}

static int on_listener_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        return on_listener_io(NULL, -1, 0, userdata);
}

_printf_(2, 0)
static void log_mhd(void *cls, const char *fmt, va_list ap) {
        char buf[512];

        vsnprintf(buf, sizeof(buf), fmt, ap);
        buf[strcspn(buf, "\n")] = 0;
        log_debug("libmicrohttpd: %s", buf);
}

static int listener_start(Httpd *h, Listener *l, int fd, const char *address) {
        struct sockaddr_storage ss;
        socklen_t len;
        const union MHD_DaemonInfo *info;
        unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        int k;

        l->httpd = h;
        if (fd < 0) {
                k = config_parse_listen(address, &ss, &len);
                if (k < 0)
                        return log_error_errno(k, "Bad listen address '%s'.", address);
                if (ss.ss_family == AF_INET6)
                        flags |= MHD_USE_IPv6;
        }

        l->daemon = MHD_start_daemon(
                flags, 0, NULL, NULL, on_request, h,
                MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
                MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                MHD_OPTION_CONNECTION_LIMIT, h->settings.connection_limit + HTTPD_MHD_LIMIT_SLACK,
                MHD_OPTION_CONNECTION_TIMEOUT, h->settings.connection_timeout_sec,
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->settings.memory_limit,
                /* Deep enough that a flood reconnecting as fast as it is
                 * evicted does not fill it: a full queue drops SYNs, and a
                 * dropped SYN costs a legitimate client a 1 s retransmit. */
                MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096,
                fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR,
                fd >= 0 ? (void *) (intptr_t) fd : (void *) &ss,
                MHD_OPTION_END);
        if (!l->daemon)
                return log_error_errno(EADDRNOTAVAIL, "Failed to listen on %s%s (address in use or not available).",
                                       fd >= 0 ? "a socket passed by systemd" : "", fd >= 0 ? "" : address);

        info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info)
                return log_error_errno(EIO, "libmicrohttpd has no epoll fd.");
        k = sd_event_add_io(h->event, &l->io, info->epoll_fd, EPOLLIN, on_listener_io, l);
        if (k < 0)
                return log_error_errno(k, "Failed to watch the HTTP server: %m");
        k = sd_event_add_time_relative(h->event, &l->timer, CLOCK_MONOTONIC, 0, 1, on_listener_timer, l);
        if (k < 0)
                return log_error_errno(k, "Failed to add the HTTP timer: %m");
        (void) listener_rearm(l);

        info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_BIND_PORT);
        l->port = info ? info->port : 0;
        if (fd >= 0)
                log_info("HTTP API listening on a socket passed by systemd (port %u).", l->port);
        else
                log_info("HTTP API listening on %s (port %u).", address, l->port);
        return 0;
}

int httpd_new(Httpd **ret, sd_event *event, const HttpdSettings *s, const HttpdBackend *backend,
              void *userdata) {
        _cleanup_(httpd_freep) Httpd *h = NULL;
        size_t n;
        int k;

        h = calloc(1, sizeof(Httpd));
        if (!h)
                return log_error_errno(ENOMEM, "Out of memory.");
        TAILQ_INIT(&h->conns);
        h->event = sd_event_ref(event);
        h->backend = *backend;
        h->userdata = userdata;
        h->settings = *s;
        h->settings.listen = NULL;
        h->settings.fds = NULL;
        if (!h->settings.connection_limit)
                h->settings.connection_limit = HTTPD_CONNECTION_LIMIT_DEFAULT;
        if (!h->settings.per_address_limit)
                h->settings.per_address_limit = HTTPD_PER_ADDRESS_LIMIT_DEFAULT;
        if (h->settings.per_address_limit > h->settings.connection_limit)
                h->settings.per_address_limit = h->settings.connection_limit;
        if (!h->settings.request_deadline_sec)
                h->settings.request_deadline_sec = HTTPD_REQUEST_DEADLINE_DEFAULT;
        if (!h->settings.connection_timeout_sec)
                h->settings.connection_timeout_sec = HTTPD_TIMEOUT_DEFAULT;
        if (!h->settings.memory_limit)
                h->settings.memory_limit = HTTPD_MEMORY_LIMIT_DEFAULT;
        if (!h->settings.body_max)
                h->settings.body_max = HTTPD_BODY_MAX_DEFAULT;
        if (!h->settings.webhook_body_max)
                h->settings.webhook_body_max = HTTPD_WEBHOOK_BODY_MAX_DEFAULT;
        if (!h->settings.wait_max_sec)
                h->settings.wait_max_sec = HTTPD_WAIT_MAX_DEFAULT;

        k = sd_event_add_time_relative(event, &h->deadline_timer, CLOCK_MONOTONIC, USEC_PER_SEC, 0,
                                       on_deadline_timer, h);
        if (k < 0)
                return log_error_errno(k, "Failed to add the HTTP deadline timer: %m");
        (void) sd_event_source_set_enabled(h->deadline_timer, SD_EVENT_ON);

        n = s->n_fds > 0 ? s->n_fds : strv_length(s->listen);
        if (n == 0)
                return log_error_errno(EINVAL, "No address to listen on.");
        h->listeners = calloc(n, sizeof(Listener));
        if (!h->listeners)
                return log_error_errno(ENOMEM, "Out of memory.");
        for (size_t i = 0; i < n; i++) {
                h->n_listeners++;
                k = listener_start(h, &h->listeners[i], s->n_fds > 0 ? s->fds[i] : -1,
                                   s->n_fds > 0 ? NULL : s->listen[i]);
                if (k < 0)
                        return k;
        }
        *ret = TAKE_PTR(h);
        return 0;
}

void httpd_shutdown(Httpd *h) {
        if (!h)
                return;
        h->shutting_down = true;
        httpd_wake(h);
        /* Let MHD call the handlers of the resumed requests now. */
        for (size_t i = 0; i < h->n_listeners; i++)
                if (h->listeners[i].daemon) {
                        (void) MHD_run(h->listeners[i].daemon);
                        (void) listener_rearm(&h->listeners[i]);
                }
}

Httpd *httpd_free(Httpd *h) {
        if (!h)
                return NULL;
        httpd_shutdown(h);
        for (size_t i = 0; i < h->n_listeners; i++) {
                Listener *l = &h->listeners[i];

                sd_event_source_disable_unref(l->io);
                sd_event_source_disable_unref(l->timer);
                if (l->daemon)
                        MHD_stop_daemon(l->daemon);
        }
        free(h->listeners);
        prepared_clear(&h->status);
        prepared_clear(&h->runs);
        sd_event_source_disable_unref(h->deadline_timer);
        (void) httpd_set_auth(h, NULL, 0, false, NULL, 0);
        free(h->webhook_ref);
        sd_event_unref(h->event);
        return mfree(h);
}

static int replace_secret(char **p, size_t *psize, const char *v, size_t size) {
        char *n = NULL;

        if (v) {
                n = secret_malloc(size + 1);
                if (!n)
                        return -ENOMEM;
                memcpy(n, v, size);
                n[size] = 0;
        }
        erase_and_free(*p, *psize);
        *p = n;
        *psize = v ? size : 0;
        return 0;
}

int httpd_set_webhook_ref(Httpd *h, const char *ref) {
        char *n = NULL;

        if (ref && !(n = strdup(ref)))
                return -ENOMEM;
        free(h->webhook_ref);
        h->webhook_ref = n;
        return 0;
}

int httpd_set_auth(Httpd *h, const char *token, size_t token_size, bool auth_reads,
                   const char *webhook_secret, size_t webhook_secret_size) {
        if (replace_secret(&h->token, &h->token_size, token, token_size) < 0 ||
            replace_secret(&h->webhook_secret, &h->webhook_secret_size, webhook_secret, webhook_secret_size) < 0)
                return -ENOMEM;
        h->auth_reads = auth_reads;
        return 0;
}

void httpd_connection_stats(const Httpd *h, size_t *ret_open, uint64_t *ret_evicted, uint64_t *ret_deadline) {
        *ret_open = h ? h->n_conns : 0;
        *ret_evicted = h ? h->n_evicted : 0;
        *ret_deadline = h ? h->n_deadline : 0;
}

int httpd_add_connection(Httpd *h, int fd) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

        if (!h || h->n_listeners == 0 || !h->listeners[0].daemon) {
                if (fd >= 0)
                        (void) close(fd);
                return -EINVAL;
        }
        /* MHD closes the socket itself when it fails. */
        if (MHD_add_connection(h->listeners[0].daemon, fd, (struct sockaddr *) &sa, sizeof(sa)) != MHD_YES)
                return -EIO;
        (void) listener_rearm(&h->listeners[0]);
        return 0;
}

uint16_t httpd_port(const Httpd *h, size_t i) {
        return h && i < h->n_listeners ? h->listeners[i].port : 0;
}
