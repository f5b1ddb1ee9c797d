/* sim-http.c: see sim-http.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sim-http.h"
#include "sim-json.h"
#include "sim-ops.h"
#include "util.h"

/* Per-request state, created by the URI logger before headers are read. */
typedef struct Conn {
        char *uri;
        char *body;
        size_t size, alloc;
        bool started, too_big;
} Conn;

/* A response that stops halfway: the truncate fault. */
typedef struct Truncated {
        char *body;
        size_t size, limit;
} Truncated;

static const SimRoute *const route_tables[] = {
        sim_workers_routes,
        sim_storage_routes,
        sim_secrets_store_routes,
        sim_account_routes,
};

/* ---- replies ---------------------------------------------------------- */

static void reply_take_string(SimReply *rep, unsigned status, const char *s) {
        free(rep->body);
        sim_blob_unref(rep->blob);
        rep->blob = NULL;
        rep->status = status;
        rep->body = strdup(s);
        if (!rep->body)
                abort();
        rep->size = strlen(rep->body);
        rep->content_type = "application/json";
}

static json_object *envelope(bool success, json_object *errors) {
        json_object *e = json_object_new_object();

        sim_set_bool(e, "success", success);
        json_object_object_add(e, "errors", errors ? errors : json_object_new_array());
        json_object_object_add(e, "messages", json_object_new_array());
        return e;
}

static void reply_envelope(SimReply *rep, unsigned status, json_object *e) {
        reply_take_string(rep, status,
                          json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(e);
}

void reply_result(SimReply *rep, json_object *result, json_object *result_info) {
        json_object *e = envelope(true, NULL);

        json_object_object_add(e, "result", result);
        if (result_info)
                json_object_object_add(e, "result_info", result_info);
        reply_envelope(rep, 200, e);
}

void reply_result_raw(SimReply *rep, const char *result_json, size_t len) {
        static const char head[] = "{\"success\":true,\"errors\":[],\"messages\":[],\"result\":";
        char *b = malloc(sizeof(head) - 1 + len + 2);

        if (!b)
                abort();
        sim_blob_unref(rep->blob);
        rep->blob = NULL;
        memcpy(b, head, sizeof(head) - 1);
        memcpy(b + sizeof(head) - 1, result_json, len);
        memcpy(b + sizeof(head) - 1 + len, "}", 2);
        free(rep->body);
        rep->body = b;
        rep->size = sizeof(head) - 1 + len + 1;
        rep->status = 200;
        rep->content_type = "application/json";
}

void reply_blob(SimReply *rep, SimBlob *blob) {
        rep->body = mfree(rep->body);
        sim_blob_unref(rep->blob);
        rep->blob = sim_blob_ref(blob);
        rep->size = blob->size;
        rep->status = 200;
        rep->content_type = "application/json";
}

void reply_errors(SimReply *rep, unsigned status, json_object *errors) {
        json_object *e = envelope(false, errors);

        json_object_object_add(e, "result", NULL);
        reply_envelope(rep, status, e);
}

void reply_error(SimReply *rep, unsigned status, int code, const char *fmt, ...) {
        json_object *errs = json_object_new_array(), *err = json_object_new_object();
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        sim_set_int(err, "code", code);
        sim_set_str(err, "message", msg);
        json_object_array_add(errs, err);
        reply_errors(rep, status, errs);
}

void reply_raw(SimReply *rep, unsigned status, const char *content_type, const void *data, size_t size) {
        free(rep->body);
        sim_blob_unref(rep->blob);
        rep->blob = NULL;
        rep->body = malloc(size + 1);
        if (!rep->body)
                abort();
        memcpy(rep->body, data, size);
        rep->body[size] = 0;
        rep->size = size;
        rep->status = status;
        rep->content_type = content_type;
}

/* ---- request helpers -------------------------------------------------- */

const char *sim_query(const SimRequest *req, const char *key) {
        return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, key);
}

const char *sim_header(const SimRequest *req, const char *key) {
        return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, key);
}

long sim_query_uint(const SimRequest *req, const char *key, long dflt, long max) {
        const char *v = sim_query(req, key);
        uint64_t u;

        if (!v || !*v)
                return dflt;
        if (safe_atou64(v, &u) < 0)
                return -1;
        return u > (uint64_t) max ? max : (long) u;
}

bool sim_query_bool(const SimRequest *req, const char *key) {
        const char *v = sim_query(req, key);

        return v && (streq(v, "true") || streq(v, "1"));
}

json_object *sim_body_json(const SimRequest *req, SimReply *rep) {
        json_object *o;

        if (sim_json_parse(req->body, req->body_size, &o) < 0) {
                reply_error(rep, 400, 10021, "Could not parse request body as JSON");
                return NULL;
        }
        return o;
}

int sim_page(SimReply *rep, const SimRequest *req, json_object *items, long dflt, long max,
             json_object **ret_slice, json_object **ret_info) {
        long page = sim_query_uint(req, "page", 1, 1000000000L);
        long per_page = sim_query_uint(req, "per_page", dflt, max);
        size_t total = json_object_array_length(items), start;
        json_object *slice, *info;

        if (page < 0 || per_page < 0) {
                reply_error(rep, 400, 10021, "page and per_page must be positive integers");
                return -EINVAL;
        }
        if (page == 0)
                page = 1;
        if (per_page == 0)
                per_page = dflt;
        slice = json_object_new_array();
        start = (size_t) (page - 1) * (size_t) per_page;
        for (size_t i = start; i < total && i < start + (size_t) per_page; i++)
                json_object_array_add(slice, json_object_get(json_object_array_get_idx(items, i)));
        info = json_object_new_object();
        sim_set_int(info, "page", page);
        sim_set_int(info, "per_page", per_page);
        sim_set_int(info, "count", (int64_t) json_object_array_length(slice));
        sim_set_int(info, "total_count", (int64_t) total);
        sim_set_int(info, "total_pages", (int64_t) ((total + (size_t) per_page - 1) / (size_t) per_page));
        *ret_slice = slice;
        *ret_info = info;
        return 0;
}

void reply_paged(SimReply *rep, const SimRequest *req, json_object *items, long dflt, long max) {
        json_object *slice, *info;

        if (sim_page(rep, req, items, dflt, max, &slice, &info) >= 0)
                reply_result(rep, slice, info);
        json_object_put(items);
}

/* ---- routing ---------------------------------------------------------- */

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Percent-decodes [s, s+n). NULL on OOM or if the result has a NUL. */
static char *segment_decode(const char *s, size_t n) {
        char *d = malloc(n + 1), *o = d;

        if (!d)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%' && i + 2 < n && unhex(s[i + 1]) >= 0 && unhex(s[i + 2]) >= 0) {
                        char c = (char) (unhex(s[i + 1]) * 16 + unhex(s[i + 2]));
                        if (c == 0) {
                                free(d);
                                return NULL;
                        }
                        *o++ = c;
                        i += 2;
                } else
                        *o++ = s[i];
        }
        *o = 0;
        return d;
}

/* Matches path against a template; on success fills params (owned). */
static bool route_match(const char *tmpl, const char *path, char *params[SIM_PARAMS_MAX]) {
        const char *t = tmpl, *p = path;
        unsigned n = 0;

        for (;;) {
                const char *te, *pe;
                size_t tl, pl;

                if (*t != '/' || *p != '/')
                        goto no;
                t++, p++;
                te = strchrnul(t, '/');
                pe = strchrnul(p, '/');
                tl = (size_t) (te - t);
                pl = (size_t) (pe - p);
                if (*t == ':') {
                        if (pl == 0 || n >= SIM_PARAMS_MAX)
                                goto no;
                        params[n] = segment_decode(p, pl);
                        if (!params[n])
                                goto no;
                        n++;
                } else if (tl != pl || memcmp(t, p, tl) != 0)
                        goto no;
                t = te, p = pe;
                if (!*t && !*p)
                        return true;
                if (!*t || !*p)
                        goto no;
        }
no:
        for (unsigned i = 0; i < n; i++)
                params[i] = mfree(params[i]);
        return false;
}

static const SimRoute *route_find(const char *method, const char *path, char *params[SIM_PARAMS_MAX],
                                  bool *ret_method_mismatch) {
        *ret_method_mismatch = false;
        for (size_t i = 0; i < ELEMENTSOF(route_tables); i++)
                for (const SimRoute *r = route_tables[i]; r->method; r++) {
                        if (!route_match(r->path, path, params))
                                continue;
                        if (streq(r->method, method))
                                return r;
                        for (unsigned k = 0; k < SIM_PARAMS_MAX; k++)
                                params[k] = mfree(params[k]);
                        *ret_method_mismatch = true;
                }
        return NULL;
}

/* ---- MHD glue --------------------------------------------------------- */

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *c) {
        Conn *x = calloc(1, sizeof(Conn));

        if (x)
                x->uri = strndup(uri, SIM_URI_MAX);
        return x;
}

static void request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                              enum MHD_RequestTerminationCode toe) {
        Conn *x = *con_cls;

        if (!x)
                return;
        free(x->uri);
        free(x->body);
        free(x);
        *con_cls = NULL;
}

static ssize_t truncated_reader(void *cls, uint64_t pos, char *buf, size_t max) {
        Truncated *t = cls;
        size_t n;

        if (pos >= t->limit)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        n = t->limit - (size_t) pos;
        if (n > max)
                n = max;
        memcpy(buf, t->body + pos, n);
        return (ssize_t) n;
}

static void truncated_free(void *cls) {
        Truncated *t = cls;

        free(t->body);
        free(t);
}

static enum MHD_Result send_reply(Sim *sim, struct MHD_Connection *c, SimReply *rep, bool ratelimit_headers,
                                  unsigned rl_remaining, unsigned rl_reset, bool truncate) {
        struct MHD_Response *resp;
        enum MHD_Result ret;
        char buf[128];

        if (!rep->body && !rep->blob)
                reply_error(rep, 500, 10000, "cfsim: handler produced no reply");
        if (truncate && rep->blob) {
                SimBlob *b = TAKE_PTR(rep->blob);

                reply_raw(rep, rep->status, rep->content_type, b->data, b->size);
                sim_blob_unref(b);
        }
        if (truncate) {
                Truncated *t = malloc(sizeof(Truncated));

                if (!t)
                        return MHD_NO;
                t->body = TAKE_PTR(rep->body);
                t->size = rep->size;
                t->limit = rep->size / 2;
                resp = MHD_create_response_from_callback(t->size, 4096, truncated_reader, t, truncated_free);
        } else if (rep->blob) {
                SimBlob *b = TAKE_PTR(rep->blob);

                resp = MHD_create_response_from_buffer_with_free_callback_cls(b->size, b->data, sim_blob_unref, b);
                if (!resp)
                        sim_blob_unref(b);
        } else
                resp = MHD_create_response_from_buffer(rep->size, TAKE_PTR(rep->body), MHD_RESPMEM_MUST_FREE);
        if (!resp)
                return MHD_NO;
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                       rep->content_type ? rep->content_type : "application/json");
        if (ratelimit_headers) {
                snprintf(buf, sizeof(buf), "\"default\";r=%u;t=%u", rl_remaining, rl_reset);
                (void) MHD_add_response_header(resp, "Ratelimit", buf);
                snprintf(buf, sizeof(buf), "\"burst\";q=%u;w=%u", sim->rl_quota, sim->rl_window);
                (void) MHD_add_response_header(resp, "Ratelimit-Policy", buf);
        }
        if (rep->retry_after > 0) {
                snprintf(buf, sizeof(buf), "%u", rep->retry_after);
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, buf);
        }
        ret = MHD_queue_response(c, rep->status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static void stall(Sim *sim, unsigned seconds) {
        struct timespec deadline;

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += seconds;
        pthread_mutex_lock(&sim->lock);
        while (!sim->stopping)
                if (pthread_cond_timedwait(&sim->wake, &sim->lock, &deadline) == ETIMEDOUT)
                        break;
        pthread_mutex_unlock(&sim->lock);
}

static bool authorized(Sim *sim, struct MHD_Connection *c) {
        const char *h;

        if (!sim->tokens)
                return true;
        h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h || strncasecmp(h, "Bearer ", 7) != 0)
                return false;
        h += 7;
        while (*h == ' ')
                h++;
        for (char **t = sim->tokens; *t; t++)
                if (memeq_consttime(h, strlen(h), *t, strlen(*t)))
                        return true;
        return false;
}

/* The query string of a request URI ("" without one), for the log. */
static const char *uri_query(const char *uri) {
        const char *q = uri ? strchr(uri, '?') : NULL;

        return q ? q + 1 : "";
}

/* One API request on its way through dispatch's stages. */
typedef struct Dispatch {
        const char *method;
        const char *path;               /* without the query */
        SimRequest req;
        SimReply rep;
        const SimRoute *route;
        char tmpl[512];                 /* "METHOD /route/template" once routed */
        bool mismatch;                  /* the path has a route, for another method */
        bool rl_on, truncate;
        bool counted;                   /* sim_stats_count done (with the handler, under its lock) */
        unsigned rl_remaining, rl_reset;
} Dispatch;

/* Stage 1: the gate (API prefix, token, rate limit). Returns true when
 * it answered. */
static bool dispatch_gate(Sim *sim, Dispatch *d) {
        struct MHD_Connection *c = d->req.connection;
        bool ok;

        if (!startswith(d->path, "/client/v4/")) {
                d->rl_on = false;
                reply_error(&d->rep, 404, 7003, "No route for the URI");
                return true;
        }
        d->req.path = d->path + strlen("/client/v4");
        d->route = route_find(d->method, d->req.path, d->req.params, &d->mismatch);
        if (d->route)
                snprintf(d->tmpl, sizeof(d->tmpl), "%s %s", d->route->method, d->route->path);

        if (!authorized(sim, c)) {
                d->rl_on = false;
                reply_error(&d->rep, 403, 10000, "Authentication error");
                return true;
        }
        pthread_mutex_lock(&sim->lock);
        ok = sim_ratelimit_take(sim, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
                                &d->rl_remaining, &d->rl_reset);
        pthread_mutex_unlock(&sim->lock);
        if (!ok) {
                reply_error(&d->rep, 429, 971, "Please wait and consider throttling your request speed");
                d->rep.retry_after = d->rl_reset > 0 ? d->rl_reset : 1;
                return true;
        }
        return false;
}

/* Stage 2: an injected fault. Returns 1 when it answered, -1 when the
 * connection is to be dropped, 0 to go on (after a stall, or to truncate). */
static int dispatch_fault(Sim *sim, Dispatch *d) {
        SimFaultHit hit;
        bool matched;

        pthread_mutex_lock(&sim->lock);
        matched = sim_faults_match(sim, d->method, d->path, &hit);
        pthread_mutex_unlock(&sim->lock);
        if (!matched)
                return 0;
        switch (hit.kind) {
        case SIM_FAULT_429:
                reply_error(&d->rep, 429, 971, "Please wait and consider throttling your request speed");
                d->rep.retry_after = hit.retry_after;
                return 1;
        case SIM_FAULT_400:
                reply_error(&d->rep, 400, 10021, "cfsim injected fault: request refused");
                return 1;
        case SIM_FAULT_403:
                reply_error(&d->rep, 403, 10000, "Authentication error");
                return 1;
        case SIM_FAULT_500:
        case SIM_FAULT_502:
        case SIM_FAULT_503: {
                unsigned st = hit.kind == SIM_FAULT_500 ? 500 : hit.kind == SIM_FAULT_502 ? 502 : 503;
                reply_error(&d->rep, st, 10013, "cfsim injected fault: HTTP %u", st);
                d->rep.retry_after = hit.retry_after;
                return 1;
        }
        case SIM_FAULT_STALL:
                stall(sim, hit.seconds);
                return 0;
        case SIM_FAULT_DROP:
                return -1;
        case SIM_FAULT_TRUNCATE:
                d->truncate = true;
                return 0;
        default:
                return 0;
        }
}

/* Stage 3: the route's handler, under the lock; a write is audited and
 * wakes the waiters, and the request is counted before the lock drops. */
static void dispatch_route(Sim *sim, Dispatch *d, Conn *x) {
        bool wrote = false;

        if (x->too_big) {
                reply_error(&d->rep, 413, 10021, "Request body too large (limit %u bytes)", SIM_BODY_MAX);
                return;
        }
        if (!d->route) {
                if (d->mismatch)
                        reply_error(&d->rep, 405, 7001, "Method %s not available for that URI.", d->method);
                else
                        reply_error(&d->rep, 404, 7003, "No route for the URI");
                return;
        }
        if (strstr(d->route->path, ":account_id") && !streq(d->req.params[0], sim->account_id)) {
                reply_error(&d->rep, 403, 10000, "Authentication error");
                return;
        }
        pthread_mutex_lock(&sim->lock);
        d->rep.audit_type = d->route->audit_type;
        d->route->handler(sim, &d->req, &d->rep);
        if (!d->rep.body && !d->rep.blob)
                reply_error(&d->rep, 500, 10000, "cfsim: handler produced no reply");
        if (!streq(d->method, "GET") && !streq(d->method, "HEAD")) {
                const char *uri = startswith(x->uri, "/client/v4") ? x->uri + strlen("/client/v4") : x->uri;
                const char *rid = d->rep.audit_id[0] ? d->rep.audit_id : d->req.params[1];
                char tid[33];

                sim_token_id(sim_header(&d->req, MHD_HTTP_HEADER_AUTHORIZATION), tid);
                wrote = true;
                sim->generation++;
                sim->dirty = true;
                sim_audit(sim, tid, d->method, uri, d->rep.status, d->rep.audit_type, rid);
                pthread_cond_broadcast(&sim->wake);
        }
        sim_stats_count(sim, d->method, d->tmpl, d->path, uri_query(x->uri),
                        sim_header(&d->req, MHD_HTTP_HEADER_USER_AGENT), d->rep.status, wrote);
        d->counted = true;
        pthread_mutex_unlock(&sim->lock);
}

static enum MHD_Result dispatch(Sim *sim, Conn *x, struct MHD_Connection *c, const char *method) {
        _cleanup_free_ char *path = strndup(x->uri, strcspn(x->uri, "?#"));
        Dispatch d = {
                .method = method,
                .path = path,
                .req = { .method = method, .uri = x->uri, .connection = c,
                         .body = x->body ? x->body : "", .body_size = x->size },
                .rl_on = true,
        };
        int r = 0;
        enum MHD_Result ret;

        if (!path)
                return MHD_NO;
        d.req.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE) ?: "";

        if (startswith(path, "/__sim/") || streq(path, "/__sim")) {
                d.req.path = path;
                pthread_mutex_lock(&sim->lock);
                sim_ops_handle(sim, &d.req, &d.rep);
                pthread_mutex_unlock(&sim->lock);
                return send_reply(sim, c, &d.rep, false, 0, 0, false);
        }

        if (!dispatch_gate(sim, &d) && (r = dispatch_fault(sim, &d)) == 0)
                dispatch_route(sim, &d, x);
        if (!d.counted) {
                pthread_mutex_lock(&sim->lock);
                sim_stats_count(sim, method, d.route ? d.tmpl : NULL, path, uri_query(x->uri),
                                sim_header(&d.req, MHD_HTTP_HEADER_USER_AGENT), r < 0 ? 0 : d.rep.status, false);
                pthread_mutex_unlock(&sim->lock);
        }
        for (unsigned k = 0; k < SIM_PARAMS_MAX; k++)
                free(d.req.params[k]);
        if (r < 0)
                return MHD_NO;          /* SIM_FAULT_DROP */
        ret = send_reply(sim, c, &d.rep, d.rl_on, d.rl_remaining, d.rl_reset, d.truncate);
        free(d.rep.body);
        sim_blob_unref(d.rep.blob);
        return ret;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                      const char *version, const char *upload_data, size_t *upload_data_size,
                                      void **con_cls) {
        Sim *sim = cls;
        Conn *x = *con_cls;

        if (!x || !x->uri)
                return MHD_NO;
        if (!x->started) {
                const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                uint64_t n;

                x->started = true;
                if (cl && safe_atou64(cl, &n) >= 0 && n > SIM_BODY_MAX) {
                        x->too_big = true;
                        return dispatch(sim, x, c, method);
                }
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                if (!x->too_big) {
                        size_t need = x->size + *upload_data_size + 1;

                        if (need > SIM_BODY_MAX + 1) {
                                x->too_big = true;
                                x->body = mfree(x->body);
                                x->size = x->alloc = 0;
                        } else {
                                if (need > x->alloc) {
                                        size_t a = x->alloc ? x->alloc * 2 : 16384;
                                        char *b;

                                        while (a < need)
                                                a *= 2;
                                        b = realloc(x->body, a);
                                        if (!b)
                                                return MHD_NO;
                                        x->body = b;
                                        x->alloc = a;
                                }
                                memcpy(x->body + x->size, upload_data, *upload_data_size);
                                x->size += *upload_data_size;
                                x->body[x->size] = 0;
                        }
                }
                *upload_data_size = 0;
                return MHD_YES;
        }
        return dispatch(sim, x, c, method);
}

/* MHD's own messages, marked as cfsim's. The drop and truncate faults make
 * MHD report an "application error"; that is expected. */
static void mhd_logger(void *cls, const char *fmt, va_list ap) _printf_(2, 0);
static void mhd_logger(void *cls, const char *fmt, va_list ap) {
        char msg[512];

        vsnprintf(msg, sizeof(msg), fmt, ap);
        fprintf(stderr, "cfsim: libmicrohttpd: %s%s", msg, strchr(msg, '\n') ? "" : "\n");
}

struct MHD_Daemon *sim_http_start(Sim *sim, const char *host, unsigned port, unsigned *ret_port) {
        struct sockaddr_storage ss = {};
        struct MHD_Daemon *d;
        const union MHD_DaemonInfo *info;
        unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                         MHD_USE_ERROR_LOG;

        if (strchr(host, ':')) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;

                a->sin6_family = AF_INET6;
                a->sin6_port = htons((uint16_t) port);
                if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
                        return NULL;
                flags |= MHD_USE_IPv6;
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *) &ss;

                a->sin_family = AF_INET;
                a->sin_port = htons((uint16_t) port);
                if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
                        return NULL;
        }
        d = MHD_start_daemon(flags, (uint16_t) port, NULL, NULL, access_handler, sim,
                             MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, sim,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned) SIM_CONNECTIONS_MAX,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) SIM_CONN_TIMEOUT_S,
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 128 * 1024,
                             MHD_OPTION_URI_LOG_CALLBACK, uri_logger, sim,
                             MHD_OPTION_NOTIFY_COMPLETED, request_completed, sim,
                             MHD_OPTION_END);
        if (!d)
                return NULL;
        info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        *ret_port = info ? info->port : port;
        return d;
}
