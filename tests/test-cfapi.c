/* test-cfapi.c: the asynchronous client on a real sd-event loop against a
 * small libmicrohttpd fake of the Cloudflare API, started inside the test
 * on 127.0.0.1 port 0 (thread per connection, so a stalled answer does
 * not hold up the others). Covers the envelope, both pagination styles,
 * retries (429 + Retry-After, 503, a dropped connection, a stalled answer
 * hitting the timeout), the concurrency bound and the request budget as
 * the server sees them, the Ratelimit header, cancellation, and the token:
 * on the wire, never in an error string. Loopback only, bounded in
 * requests and time. */
#include <check.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "cfapi.h"
#include "util.h"

#define TOKEN "test-token-Zq9xW2vB7yN4"
#define ACCOUNT "acc123"
#define MAX_ROUTES 32
#define MAX_HITS 64

/* ---- The fake server ---- */

typedef struct Route {
        char path[96];
        unsigned hits;
        uint64_t at[MAX_HITS];      /* monotonic µs of each hit */
} Route;

typedef struct Fake {
        struct MHD_Daemon *mhd;
        uint16_t port;
        pthread_mutex_t lock;
        Route routes[MAX_ROUTES];
        unsigned n_routes;
        unsigned requests;
        unsigned bad_auth;
        unsigned in_flight, max_in_flight;
        char user_agent[128];       /* of the last request */
        volatile int stop;
} Fake;

static Fake fake;

typedef struct Upload {
        char *data;
        size_t size;
} Upload;

static unsigned record_hit(const char *path, uint64_t *ret_at) {
        Route *r = NULL;
        unsigned n;

        pthread_mutex_lock(&fake.lock);
        fake.requests++;
        for (unsigned i = 0; i < fake.n_routes; i++)
                if (streq(fake.routes[i].path, path))
                        r = &fake.routes[i];
        if (!r && fake.n_routes < MAX_ROUTES) {
                r = &fake.routes[fake.n_routes++];
                snprintf(r->path, sizeof r->path, "%s", path);
        }
        n = 0;
        if (r) {
                if (r->hits < MAX_HITS)
                        r->at[r->hits] = now_monotonic_usec();
                n = ++r->hits;
        }
        pthread_mutex_unlock(&fake.lock);
        if (ret_at)
                *ret_at = now_monotonic_usec();
        return n;
}

static Route *route(const char *path) {
        for (unsigned i = 0; i < fake.n_routes; i++)
                if (streq(fake.routes[i].path, path))
                        return &fake.routes[i];
        return NULL;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             const char *h1, const char *v1) {
        struct MHD_Response *resp;
        enum MHD_Result ret;

        resp = MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        (void) MHD_add_response_header(resp, "Content-Type", "application/json");
        if (h1)
                (void) MHD_add_response_header(resp, h1, v1);
        ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result ok(struct MHD_Connection *c, const char *result) {
        char body[4096];

        snprintf(body, sizeof body, "{\"success\":true,\"errors\":[],\"messages\":[],\"result\":%s}", result);
        return reply(c, 200, body, NULL, NULL);
}

static void nap(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
}

/* A list of CUT_ITEMS scripts, about 12 KB: the first answer breaks off
 * half way (the connection closes short of its Content-Length), the
 * next is whole. */
#define CUT_ITEMS 300
static char cut_body[CUT_ITEMS * 64];

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max) {
        size_t len = strlen(cut_body), end = cls ? len / 2 : len;

        if (pos >= end)
                return cls ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        if (max > end - pos)
                max = end - pos;
        memcpy(buf, cut_body + pos, max);
        return (ssize_t) max;
}

/* Written once: the answers are read by one thread per connection. */
static void cut_body_init(void) {
        size_t len = 0;

        len += (size_t) snprintf(cut_body, sizeof cut_body, "{\"success\":true,\"errors\":[],\"result\":[");
        for (unsigned i = 0; i < CUT_ITEMS; i++)
                len += (size_t) snprintf(cut_body + len, sizeof cut_body - len, "%s{\"id\":\"w%u\",\"n\":%u}",
                                         i ? "," : "", i, i);
        snprintf(cut_body + len, sizeof cut_body - len, "]}");
}

static enum MHD_Result reply_cut_list(struct MHD_Connection *c, bool cut) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        struct MHD_Response *resp;
        enum MHD_Result ret;

        (void) pthread_once(&once, cut_body_init);
        resp = MHD_create_response_from_callback(strlen(cut_body), 1024, cut_reader, cut ? (void *) 1 : NULL, NULL);
        if (!resp)
                return MHD_NO;
        ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls) {
        Upload *u = *con_cls;
        const char *auth, *path;
        char buf[8192];
        unsigned hit;

        if (!u) {
                u = calloc(1, sizeof(Upload));
                if (!u)
                        return MHD_NO;
                *con_cls = u;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                char *n = realloc(u->data, u->size + *upload_data_size + 1);

                if (!n)
                        return MHD_NO;
                u->data = n;
                memcpy(u->data + u->size, upload_data, *upload_data_size);
                u->size += *upload_data_size;
                u->data[u->size] = 0;
                *upload_data_size = 0;
                return MHD_YES;
        }

        pthread_mutex_lock(&fake.lock);
        snprintf(fake.user_agent, sizeof fake.user_agent, "%s",
                 strna(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent")));
        pthread_mutex_unlock(&fake.lock);
        auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!auth || !streq(auth, "Bearer " TOKEN)) {
                pthread_mutex_lock(&fake.lock);
                fake.bad_auth++;
                pthread_mutex_unlock(&fake.lock);
                return reply(c, 403, "{\"success\":false,\"errors\":[{\"code\":10000,\"message\":\"Authentication error\"}],\"result\":null}",
                             NULL, NULL);
        }
        if (!startswith(url, "/client/v4/"))
                return reply(c, 404, "{\"success\":false,\"errors\":[{\"code\":7003,\"message\":\"No route\"}]}", NULL, NULL);
        path = url + strlen("/client/v4");
        hit = record_hit(path, NULL);

        if (streq(path, "/accounts/" ACCOUNT "/ok") || streq(path, "/user/tokens/verify")) {
                snprintf(buf, sizeof buf, "{\"hit\":%u,\"status\":\"active\"}", hit);
                return ok(c, buf);
        }
        if (streq(path, "/accounts/" ACCOUNT "/missing"))
                return reply(c, 404, "{\"success\":false,\"errors\":[{\"code\":10007,\"message\":\"This Worker does not exist on your account.\"}],\"messages\":[],\"result\":null}",
                             NULL, NULL);
        if (streq(path, "/accounts/" ACCOUNT "/conflict"))
                return reply(c, 409, "{\"success\":false,\"errors\":[{\"code\":10014,\"message\":\"already exists\"}],\"result\":null}", NULL, NULL);
        if (streq(path, "/accounts/" ACCOUNT "/garbage"))
                return reply(c, 200, "<html>this is not json", NULL, NULL);
        if (streq(path, "/accounts/" ACCOUNT "/big")) {
                memset(buf, ' ', sizeof buf - 1);
                buf[sizeof buf - 1] = 0;
                memcpy(buf, "{\"result\":1,", 12);
                buf[sizeof buf - 2] = '}';
                return reply(c, 200, buf, NULL, NULL);
        }
        if (streq(path, "/accounts/" ACCOUNT "/retry429")) {
                if (hit == 1)
                        return reply(c, 429, "{\"success\":false,\"errors\":[{\"code\":971,\"message\":\"Please wait and consider throttling your request speed\"}]}",
                                     "Retry-After", "1");
                return ok(c, "{\"after\":\"429\"}");
        }
        if (streq(path, "/accounts/" ACCOUNT "/flaky503")) {
                if (hit <= 2)
                        return reply(c, 503, "<html>503 Service Unavailable</html>", NULL, NULL);
                return ok(c, "{\"after\":\"503\"}");
        }
        if (streq(path, "/accounts/" ACCOUNT "/always503"))
                return reply(c, 503, "{\"success\":false,\"errors\":[{\"code\":10013,\"message\":\"overloaded\"}]}", NULL, NULL);
        if (streq(path, "/accounts/" ACCOUNT "/drop")) {
                if (hit == 1)
                        return MHD_NO;      /* close without an answer */
                return ok(c, "{\"after\":\"drop\"}");
        }
        if (streq(path, "/accounts/" ACCOUNT "/stall")) {
                for (unsigned i = 0; i < 300 && !fake.stop; i++)
                        nap(10);
                return ok(c, "{\"late\":true}");
        }
        if (streq(path, "/accounts/" ACCOUNT "/slow")) {
                pthread_mutex_lock(&fake.lock);
                fake.in_flight++;
                if (fake.in_flight > fake.max_in_flight)
                        fake.max_in_flight = fake.in_flight;
                pthread_mutex_unlock(&fake.lock);
                nap(80);
                pthread_mutex_lock(&fake.lock);
                fake.in_flight--;
                pthread_mutex_unlock(&fake.lock);
                return ok(c, "{}");
        }
        if (streq(path, "/accounts/" ACCOUNT "/ratelimited"))
                return reply(c, 200, "{\"success\":true,\"errors\":[],\"result\":{}}", "Ratelimit", "\"default\";r=0;t=1");
        if (streq(path, "/accounts/" ACCOUNT "/echo")) {
                const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
                json_object *o = json_object_new_object();

                json_object_object_add(o, "method", json_object_new_string(method));
                json_object_object_add(o, "content_type", ct ? json_object_new_string(ct) : NULL);
                json_object_object_add(o, "body", json_object_new_string_len(u->data ? u->data : "", (int) u->size));
                json_object_object_add(o, "r2", json_object_new_string(
                        strna(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "cf-r2-jurisdiction"))));
                snprintf(buf, sizeof buf, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
                return ok(c, buf);
        }
        if (streq(path, "/accounts/" ACCOUNT "/things")) {
                /* 7 items, page-number pagination. */
                const char *p = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "page");
                const char *pp = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "per_page");
                const char *f = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "filter");
                unsigned page = p ? (unsigned) atoi(p) : 1, per = pp ? (unsigned) atoi(pp) : 20, k;
                size_t len = 0;

                if (!f || !streq(f, "x"))
                        return reply(c, 400, "{\"success\":false,\"errors\":[{\"code\":1,\"message\":\"filter lost\"}]}", NULL, NULL);
                len += (size_t) snprintf(buf + len, sizeof buf - len, "{\"success\":true,\"errors\":[],\"result\":[");
                k = 0;
                for (unsigned i = (page - 1) * per; i < page * per && i < 7; i++, k++)
                        len += (size_t) snprintf(buf + len, sizeof buf - len, "%s{\"id\":\"t%u\"}", k ? "," : "", i);
                snprintf(buf + len, sizeof buf - len,
                         "],\"result_info\":{\"page\":%u,\"per_page\":%u,\"count\":%u,\"total_count\":7}}", page, per, k);
                return reply(c, 200, buf, NULL, NULL);
        }
        if (streq(path, "/accounts/" ACCOUNT "/r2/buckets")) {
                /* Cursor pagination, R2 shape: a, b | c, d | e. */
                const char *cur = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor");

                if (!cur)
                        return reply(c, 200, "{\"success\":true,\"errors\":[],\"result\":{\"buckets\":[{\"name\":\"a\"},{\"name\":\"b\"}]},\"result_info\":{\"cursor\":\"c1/+=\",\"per_page\":2}}", NULL, NULL);
                if (streq(cur, "c1/+="))
                        return reply(c, 200, "{\"success\":true,\"errors\":[],\"result\":{\"buckets\":[{\"name\":\"c\"},{\"name\":\"d\"}]},\"result_info\":{\"cursor\":\"c2\",\"per_page\":2}}", NULL, NULL);
                if (streq(cur, "c2"))
                        return reply(c, 200, "{\"success\":true,\"errors\":[],\"result\":{\"buckets\":[{\"name\":\"e\"}]},\"result_info\":{\"cursor\":\"\",\"per_page\":2}}", NULL, NULL);
                return reply(c, 400, "{\"success\":false,\"errors\":[{\"code\":2,\"message\":\"bad cursor\"}]}", NULL, NULL);
        }
        if (startswith(path, "/accounts/" ACCOUNT "/cutlist"))
                return reply_cut_list(c, hit == 1);
        if (streq(path, "/accounts/" ACCOUNT "/loop"))
                /* A broken server that hands back the same cursor forever. */
                return reply(c, 200, "{\"success\":true,\"errors\":[],\"result\":[{\"id\":1}],\"result_info\":{\"cursor\":\"same\"}}", NULL, NULL);
        return reply(c, 404, "{\"success\":false,\"errors\":[{\"code\":7003,\"message\":\"No route for the URI\"}]}", NULL, NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
        Upload *u = *con_cls;

        if (u) {
                free(u->data);
                free(u);
                *con_cls = NULL;
        }
}

static void fake_start(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        const union MHD_DaemonInfo *info;

        memset(&fake, 0, sizeof fake);
        pthread_mutex_init(&fake.lock, NULL);
        fake.mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                                    0, NULL, NULL, handler, NULL,
                                    MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
                                    MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                    MHD_OPTION_CONNECTION_LIMIT, 64U,
                                    MHD_OPTION_END);
        ck_assert_ptr_nonnull(fake.mhd);
        info = MHD_get_daemon_info(fake.mhd, MHD_DAEMON_INFO_BIND_PORT);
        ck_assert_ptr_nonnull(info);
        fake.port = info->port;
        ck_assert_uint_gt(fake.port, 0);
}

static void fake_stop(void) {
        fake.stop = 1;
        if (fake.mhd)
                MHD_stop_daemon(fake.mhd);
        fake.mhd = NULL;
        pthread_mutex_destroy(&fake.lock);
}

/* ---- The client side ---- */

typedef struct Result {
        bool done;
        int error;
        long status;
        unsigned attempts, pages;
        char *message;
        char *errors;               /* all error messages joined */
        int first_code;
        json_object *result;
        uint64_t at;
} Result;

static sd_event *event;
static CfApi *api;
static unsigned pending;
static char *all_messages;          /* every message seen, for the token check */

static void remember_message(const char *m) {
        char *n = NULL;

        if (!m)
                return;
        ck_assert_int_ge(asprintf(&n, "%s\n%s", all_messages ? all_messages : "", m), 0);
        free(all_messages);
        all_messages = n;
}

static void on_reply(CfApi *a, const CfReply *r, void *userdata) {
        Result *res = userdata;

        ck_assert(!res->done);
        res->done = true;
        res->error = r->error;
        res->status = r->http_status;
        res->attempts = r->attempts;
        res->pages = r->pages;
        res->at = now_monotonic_usec();
        res->message = r->message ? strdup(r->message) : NULL;
        remember_message(r->message);
        for (size_t i = 0; i < r->n_errors; i++) {
                if (i == 0)
                        res->first_code = r->errors[i].code;
                remember_message(r->errors[i].message);
        }
        res->result = r->result ? json_object_get(r->result) : NULL;
        ck_assert_uint_gt(pending, 0);
        pending--;
}

static void result_done(Result *r) {
        free(r->message);
        free(r->errors);
        if (r->result)
                json_object_put(r->result);
        *r = (Result) {};
}

/* Runs the loop until every submitted request has called back. */
static void run_loop(unsigned max_sec) {
        uint64_t deadline = now_monotonic_usec() + (uint64_t) max_sec * USEC_PER_SEC;

        while (pending > 0) {
                ck_assert_msg(now_monotonic_usec() < deadline,
                              "event loop did not finish in time (%u pending)", pending);
                ck_assert_int_ge(sd_event_run(event, 100 * USEC_PER_MSEC), 0);
        }
}

static void client_new(const CfApiOptions *extra) {
        char url[64];
        CfApiOptions o = extra ? *extra : (CfApiOptions) {};

        snprintf(url, sizeof url, "http://127.0.0.1:%u/client/v4/", fake.port);
        o.api_url = url;
        o.account_id = ACCOUNT;
        o.token = TOKEN;
        o.token_size = strlen(TOKEN);
        if (!o.backoff_base_usec)
                o.backoff_base_usec = 20 * USEC_PER_MSEC;
        if (!o.backoff_max_usec)
                o.backoff_max_usec = 200 * USEC_PER_MSEC;
        if (!o.request_timeout_usec)
                o.request_timeout_usec = 5 * USEC_PER_SEC;
        ck_assert_int_eq(cfapi_new(&api, event, &o), 0);
}

/* cfapi_submit with priority NORMAL, no paging, an optional JSON body. */
static int request(CfApi *a, const char *method, const char *path, const char *query,
                   json_object *body, cfapi_callback_t callback, void *userdata) {
        CfRequest req = {
                .method = method, .path = path, .query = query, .json = body,
                .priority = CFAPI_PRIORITY_NORMAL,
        };

        return cfapi_submit(a, &req, callback, userdata, NULL);
}

/* cfapi_submit of a paged GET. */
static int get_all(CfApi *a, const char *path, const char *query, CfPaging paging,
                   const char *items_key, CfPriority priority,
                   cfapi_callback_t callback, void *userdata) {
        CfRequest req = {
                .method = "GET", .path = path, .query = query, .priority = priority,
                .paging = paging, .items_key = items_key,
        };

        return cfapi_submit(a, &req, callback, userdata, NULL);
}

static void submit(const char *method, const char *path, Result *r) {
        ck_assert_int_eq(request(api, method, path, NULL, NULL, on_reply, r), 0);
        pending++;
}

static void setup(void) {
        fake_start();
        ck_assert_int_ge(sd_event_new(&event), 0);
        pending = 0;
        all_messages = NULL;
}

static void teardown(void) {
        /* The token never appears in anything handed back. */
        if (all_messages)
                ck_assert_ptr_null(strstr(all_messages, TOKEN));
        api = cfapi_free(api);
        event = sd_event_unref(event);
        fake_stop();
        all_messages = mfree(all_messages);
}

/* ---- Tests ---- */

START_TEST(test_envelope) {
        Result a = {}, b = {}, c = {}, d = {}, e = {};
        json_object *v;

        client_new(NULL);
        submit("GET", "ok", &a);
        submit("DELETE", "missing", &b);
        submit("GET", "garbage", &c);
        submit("POST", "conflict", &d);
        submit("GET", "/user/tokens/verify", &e);
        run_loop(10);

        ck_assert_int_eq(a.error, 0);
        ck_assert_int_eq(a.status, 200);
        ck_assert_uint_eq(a.attempts, 1);
        ck_assert(json_object_object_get_ex(a.result, "status", &v));
        ck_assert_str_eq(json_object_get_string(v), "active");
        ck_assert_ptr_null(a.message);

        ck_assert_int_eq(b.error, -ENOENT);
        ck_assert_int_eq(b.status, 404);
        ck_assert_int_eq(b.first_code, 10007);
        ck_assert_str_eq(b.message, "DELETE missing: HTTP 404: [10007] This Worker does not exist on your account.");
        ck_assert_uint_eq(b.attempts, 1);   /* 404 is not retried */

        ck_assert_int_eq(c.error, -EBADMSG);
        ck_assert_int_eq(d.error, -EEXIST);
        ck_assert_int_eq(e.error, 0);       /* absolute path */

        /* The token went over the wire every time. */
        ck_assert_uint_eq(fake.bad_auth, 0);
        ck_assert_uint_eq(fake.requests, 5);
        result_done(&a); result_done(&b); result_done(&c); result_done(&d); result_done(&e);
}
END_TEST

START_TEST(test_bodies) {
        Result a = {}, b = {}, c = {};
        _cleanup_(cfapi_multipart_freep) CfMultipart *m = cfapi_multipart_new();
        json_object *body = json_object_new_object(), *v;
        static const char *const hdr[] = { "cf-r2-jurisdiction: eu", NULL };
        static const char *const bad_hdr[] = { "authorization: Bearer x", NULL };
        CfRequest req = { .method = "PUT", .path = "echo", .multipart = m,
                          .priority = CFAPI_PRIORITY_NORMAL, .headers = hdr };
        CfRequest raw = { .method = "PATCH", .path = "echo", .body = "a=b", .body_size = 3,
                          .content_type = "application/merge-patch+json", .priority = CFAPI_PRIORITY_NORMAL };

        client_new(NULL);
        json_object_object_add(body, "title", json_object_new_string("api-sessions"));
        ck_assert_int_eq(request(api, "POST", "echo", NULL, body, on_reply, &a), 0);
        pending++;
        json_object_put(body);      /* copied at submission */
        ck_assert_int_eq(cfapi_multipart_add(m, "metadata", NULL, "application/json", "{}", 2), 0);
        ck_assert_int_eq(cfapi_multipart_add(m, "index.js", "index.js", "application/javascript+module", "export default {}", 17), 0);
        ck_assert_int_eq(cfapi_submit(api, &req, on_reply, &b, NULL), 0);
        pending++;
        ck_assert_int_eq(cfapi_submit(api, &raw, on_reply, &c, NULL), 0);
        pending++;
        req.headers = bad_hdr;
        ck_assert_int_eq(cfapi_submit(api, &req, on_reply, &c, NULL), -EINVAL);
        run_loop(10);

        ck_assert_int_eq(a.error, 0);
        ck_assert(json_object_object_get_ex(a.result, "body", &v));
        ck_assert_str_eq(json_object_get_string(v), "{\"title\":\"api-sessions\"}");
        ck_assert(json_object_object_get_ex(a.result, "content_type", &v));
        ck_assert_str_eq(json_object_get_string(v), "application/json");
        ck_assert(json_object_object_get_ex(a.result, "method", &v));
        ck_assert_str_eq(json_object_get_string(v), "POST");

        ck_assert_int_eq(b.error, 0);
        ck_assert(json_object_object_get_ex(b.result, "content_type", &v));
        ck_assert(startswith(json_object_get_string(v), "multipart/form-data; boundary="));
        ck_assert(json_object_object_get_ex(b.result, "body", &v));
        ck_assert_ptr_nonnull(strstr(json_object_get_string(v), "name=\"index.js\"; filename=\"index.js\""));
        ck_assert(json_object_object_get_ex(b.result, "r2", &v));
        ck_assert_str_eq(json_object_get_string(v), "eu");

        ck_assert_int_eq(c.error, 0);
        ck_assert(json_object_object_get_ex(c.result, "content_type", &v));
        ck_assert_str_eq(json_object_get_string(v), "application/merge-patch+json");
        ck_assert(json_object_object_get_ex(c.result, "method", &v));
        ck_assert_str_eq(json_object_get_string(v), "PATCH");
        result_done(&a); result_done(&b); result_done(&c);
}
END_TEST

START_TEST(test_pagination) {
        Result a = {}, b = {};
        CfRequest req = { .method = "GET", .path = "things", .query = "filter=x", .paging = CFAPI_PAGING_PAGE,
                          .per_page = 3, .priority = CFAPI_PRIORITY_NORMAL };

        client_new(NULL);
        ck_assert_int_eq(cfapi_submit(api, &req, on_reply, &a, NULL), 0);
        pending++;
        ck_assert_int_eq(get_all(api, "r2/buckets", NULL, CFAPI_PAGING_CURSOR, "buckets",
                                       CFAPI_PRIORITY_LOW, on_reply, &b), 0);
        pending++;
        run_loop(10);

        ck_assert_int_eq(a.error, 0);
        ck_assert_uint_eq(a.pages, 3);
        ck_assert_int_eq(json_object_array_length(a.result), 7);
        for (int i = 0; i < 7; i++) {
                json_object *v;
                char id[8];

                snprintf(id, sizeof id, "t%d", i);
                ck_assert(json_object_object_get_ex(json_object_array_get_idx(a.result, (size_t) i), "id", &v));
                ck_assert_str_eq(json_object_get_string(v), id);
        }
        ck_assert_uint_eq(route("/accounts/" ACCOUNT "/things")->hits, 3);

        ck_assert_int_eq(b.error, 0);
        ck_assert_uint_eq(b.pages, 3);
        ck_assert_int_eq(json_object_array_length(b.result), 5);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(json_object_array_get_idx(b.result, 4), "name")), "e");
        ck_assert_uint_eq(route("/accounts/" ACCOUNT "/r2/buckets")->hits, 3);

        /* Paging is GET-only. */
        req.method = "POST";
        ck_assert_int_eq(cfapi_submit(api, &req, on_reply, &a, NULL), -EINVAL);
        result_done(&a); result_done(&b);
}
END_TEST

START_TEST(test_retry_429) {
        Result a = {}, b = {};
        Route *r;
        _cleanup_free_ CfApiStats *st = malloc(sizeof(CfApiStats));

        client_new(NULL);
        submit("GET", "retry429", &a);
        run_loop(10);
        ck_assert_int_eq(a.error, 0);
        ck_assert_uint_eq(a.attempts, 2);
        r = route("/accounts/" ACCOUNT "/retry429");
        ck_assert_uint_eq(r->hits, 2);
        /* Retry-After: 1 honoured (the backoff alone would be ≤ 20 ms). */
        ck_assert_uint_ge(r->at[1] - r->at[0], 950 * USEC_PER_MSEC);
        ck_assert_uint_lt(r->at[1] - r->at[0], 3 * USEC_PER_SEC);

        /* The hold was for everyone: but it is over now. */
        submit("GET", "ok", &b);
        run_loop(5);
        ck_assert_int_eq(b.error, 0);

        cfapi_stats(api, st);
        ck_assert_uint_eq(st->by_status[429], 1);
        ck_assert_uint_eq(st->by_status[200], 2);
        ck_assert_uint_eq(st->retries_total, 1);
        ck_assert_uint_eq(st->requests_total, 3);
        /* 3 spent; about 1 s of refill (1000 per 5 min) since. */
        ck_assert_uint_ge(st->budget_left, 997);
        ck_assert_uint_le(st->budget_left, 999);
        ck_assert_uint_eq(st->budget_capacity, 1000);
        /* Every answered attempt is in one latency bucket of a route class. */
        {
                uint64_t n = 0;

                for (int k = 0; k < CFAPI_ROUTE_CLASSES; k++)
                        n += st->latency_n[k];
                ck_assert_uint_eq(n, 3);
        }
        result_done(&a); result_done(&b);
}
END_TEST

/* A list fed as it arrives (each with restart) whose first answer breaks
 * off mid-body: the items it handed over are taken back (restart) before
 * the retry hands the whole list over again, so every item is seen once.
 * Without restart the list is decoded whole at the end, as ever. */
typedef struct Listed {
        Result r;                   /* first: on_reply takes the same userdata */
        unsigned n, restarts, before_restart;
        bool dup;
        char seen[CUT_ITEMS];
} Listed;

static int listed_item(json_object *item, void *userdata) {
        Listed *l = userdata;
        json_object *v;
        int k;

        ck_assert(json_object_object_get_ex(item, "n", &v));
        k = json_object_get_int(v);
        ck_assert(k >= 0 && k < CUT_ITEMS);
        if (l->seen[k])
                l->dup = true;
        l->seen[k] = 1;
        l->n++;
        return 0;
}

static void listed_restart(void *userdata) {
        Listed *l = userdata;

        l->before_restart = l->n;
        l->restarts++;
        l->n = 0;
        memset(l->seen, 0, sizeof l->seen);
}

START_TEST(test_list_fed_restart) {
        Listed fed = {}, whole = {};
        CfRequest a = {
                .method = "GET", .path = "cutlist-fed", .priority = CFAPI_PRIORITY_NORMAL,
                .each = listed_item, .restart = listed_restart,
        }, b = {
                .method = "GET", .path = "cutlist-whole", .priority = CFAPI_PRIORITY_NORMAL,
                .each = listed_item,
        };

        client_new(NULL);
        ck_assert_int_ge(cfapi_submit(api, &a, on_reply, &fed, NULL), 0);
        ck_assert_int_ge(cfapi_submit(api, &b, on_reply, &whole, NULL), 0);
        pending += 2;
        run_loop(10);

        ck_assert_int_eq(fed.r.error, 0);
        ck_assert_uint_eq(fed.r.attempts, 2);
        ck_assert_uint_eq(fed.restarts, 1);
        ck_assert_uint_gt(fed.before_restart, 0);           /* the broken answer was fed */
        ck_assert_uint_lt(fed.before_restart, CUT_ITEMS);
        ck_assert_uint_eq(fed.n, CUT_ITEMS);
        ck_assert(!fed.dup);
        ck_assert_ptr_null(fed.r.result);

        ck_assert_int_eq(whole.r.error, 0);
        ck_assert_uint_eq(whole.r.attempts, 2);
        ck_assert_uint_eq(whole.restarts, 0);
        ck_assert_uint_eq(whole.n, CUT_ITEMS);
        ck_assert(!whole.dup);
        result_done(&fed.r); result_done(&whole.r);
}
END_TEST

START_TEST(test_retry_503_drop) {
        Result a = {}, b = {}, c = {};
        CfApiOptions o = { .max_retries = 2 };

        client_new(&o);
        submit("GET", "flaky503", &a);
        submit("PUT", "drop", &b);
        submit("GET", "always503", &c);
        run_loop(10);

        ck_assert_int_eq(a.error, 0);
        ck_assert_uint_eq(a.attempts, 3);
        ck_assert_int_eq(b.error, 0);
        ck_assert_uint_eq(b.attempts, 2);
        /* Retries exhausted: the last status and -EAGAIN, with the API's message. */
        ck_assert_int_eq(c.error, -EAGAIN);
        ck_assert_int_eq(c.status, 503);
        ck_assert_uint_eq(c.attempts, 3);
        ck_assert_ptr_nonnull(strstr(c.message, "HTTP 503"));
        ck_assert_ptr_nonnull(strstr(c.message, "overloaded"));
        ck_assert_uint_eq(route("/accounts/" ACCOUNT "/always503")->hits, 3);
        result_done(&a); result_done(&b); result_done(&c);
}
END_TEST

/* The write gate (HA): asked just before each write attempt is sent,
 * retries included; a refused write never reaches the server, reads are
 * never asked about. */
static unsigned gate_asked, gate_allow;

static bool gate(const char *method, void *userdata) {
        ck_assert_str_ne(method, "GET");
        ck_assert_ptr_eq(userdata, &gate_asked);
        return ++gate_asked <= gate_allow;
}

START_TEST(test_write_gate) {
        Result a = {}, b = {}, c = {};
        CfApiOptions o = { .max_retries = 5, .agent_name = "ops-7" };

        client_new(&o);
        cfapi_set_may_send(api, gate, &gate_asked);
        gate_asked = 0;
        gate_allow = 2;
        /* Two attempts pass the gate (503 each), the third is refused. */
        submit("PUT", "always503", &a);
        run_loop(10);
        ck_assert_int_eq(a.error, -EPERM);
        ck_assert_uint_eq(gate_asked, 3);
        ck_assert_uint_eq(route("/accounts/" ACCOUNT "/always503")->hits, 2);
        ck_assert_ptr_nonnull(strstr(a.message, "write refused"));
        ck_assert_str_eq(fake.user_agent, "binderyd/" PACKAGE_VERSION " (ops-7)");

        /* Refused from the start: nothing sent; a GET goes through. */
        submit("POST", "ok", &b);
        submit("GET", "ok", &c);
        run_loop(10);
        ck_assert_int_eq(b.error, -EPERM);
        ck_assert_int_eq(c.error, 0);
        ck_assert_uint_eq(route("/accounts/" ACCOUNT "/ok")->hits, 1);
        result_done(&a); result_done(&b); result_done(&c);
}
END_TEST

START_TEST(test_timeout) {
        Result a = {};
        CfApiOptions o = { .max_retries = 1, .request_timeout_usec = 300 * USEC_PER_MSEC };
        uint64_t t0;

        client_new(&o);
        t0 = now_monotonic_usec();
        submit("GET", "stall", &a);
        run_loop(10);
        ck_assert_int_eq(a.error, -ETIMEDOUT);
        ck_assert_uint_eq(a.attempts, 2);
        ck_assert_int_eq(a.status, 0);
        ck_assert_ptr_nonnull(a.message);
        ck_assert_ptr_nonnull(strstr(a.message, "GET stall: "));
        /* Two attempts of 300 ms plus a short backoff. */
        ck_assert_uint_ge(a.at - t0, 600 * USEC_PER_MSEC);
        ck_assert_uint_lt(a.at - t0, 2500 * USEC_PER_MSEC);
        result_done(&a);
}
END_TEST

START_TEST(test_deadline) {
        Result a = {};
        CfApiOptions o = { .max_retries = 50, .request_timeout_usec = 200 * USEC_PER_MSEC,
                           .deadline_usec = 700 * USEC_PER_MSEC };

        client_new(&o);
        submit("GET", "stall", &a);
        run_loop(10);
        ck_assert_int_eq(a.error, -ETIMEDOUT);
        ck_assert_uint_le(a.attempts, 4);
        result_done(&a);
}
END_TEST

START_TEST(test_concurrency_bound) {
        Result r[24] = {};
        CfApiOptions o = { .concurrency = 4 };

        client_new(&o);
        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                submit("GET", "slow", &r[i]);
        run_loop(20);
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                ck_assert_int_eq(r[i].error, 0);
                result_done(&r[i]);
        }
        ck_assert_uint_eq(route("/accounts/" ACCOUNT "/slow")->hits, ELEMENTSOF(r));
        /* Seen from the server: never more than 4 at once, and 4 were used. */
        ck_assert_uint_le(fake.max_in_flight, 4);
        ck_assert_uint_eq(fake.max_in_flight, 4);
}
END_TEST

START_TEST(test_budget_holds) {
        Result r[6] = {}, low[3] = {}, normal = {};
        CfApiOptions o = { .budget = 3, .budget_window_usec = 900 * USEC_PER_MSEC };
        Route *rt;
        _cleanup_free_ CfApiStats *st = malloc(sizeof(CfApiStats));
        uint64_t t0;

        client_new(&o);
        t0 = now_monotonic_usec();
        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                submit("GET", "ok", &r[i]);
        run_loop(10);
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                ck_assert_int_eq(r[i].error, 0);    /* queued, not failed */
                result_done(&r[i]);
        }
        rt = route("/accounts/" ACCOUNT "/ok");
        ck_assert_uint_eq(rt->hits, 6);
        /* 3 at once, then one per 300 ms: the 4th cannot start before 300 ms
         * and the 6th not before 900 ms after submission (arrival at the
         * server is later still, so these bounds hold under any load). */
        ck_assert_uint_ge(rt->at[3] - t0, 295 * USEC_PER_MSEC);
        ck_assert_uint_ge(rt->at[5] - t0, 895 * USEC_PER_MSEC);
        ck_assert_uint_lt(rt->at[5] - t0, 5 * USEC_PER_SEC);

        cfapi_stats(api, st);
        ck_assert_uint_gt(st->budget_waits, 0);

        /* Priority: with the bucket empty, a NORMAL request submitted after
         * three LOW ones still goes first. */
        for (size_t i = 0; i < ELEMENTSOF(low); i++) {
                ck_assert_int_eq(get_all(api, "r2/buckets", NULL, CFAPI_PAGING_CURSOR, "buckets",
                                               CFAPI_PRIORITY_LOW, on_reply, &low[i]), 0);
                pending++;
        }
        submit("GET", "ok", &normal);
        run_loop(20);
        ck_assert_int_eq(normal.error, 0);
        for (size_t i = 0; i < ELEMENTSOF(low); i++) {
                ck_assert_int_eq(low[i].error, 0);
                ck_assert_uint_lt(normal.at, low[i].at);
                result_done(&low[i]);
        }
        result_done(&normal);
}
END_TEST

START_TEST(test_ratelimit_header) {
        Result a = {}, b = {};
        Route *r1, *r2;

        client_new(NULL);
        submit("GET", "ratelimited", &a);
        run_loop(5);
        ck_assert_int_eq(a.error, 0);
        /* The server said r=0 for 1 s: the next request waits for it. */
        submit("GET", "ok", &b);
        run_loop(5);
        ck_assert_int_eq(b.error, 0);
        r1 = route("/accounts/" ACCOUNT "/ratelimited");
        r2 = route("/accounts/" ACCOUNT "/ok");
        ck_assert_uint_ge(r2->at[0] - r1->at[0], 900 * USEC_PER_MSEC);
        result_done(&a); result_done(&b);
}
END_TEST

START_TEST(test_body_cap) {
        Result a = {};
        CfApiOptions o = { .max_response_size = 1024 };

        client_new(&o);
        submit("GET", "big", &a);
        run_loop(5);
        ck_assert_int_eq(a.error, -EFBIG);
        ck_assert_uint_eq(a.attempts, 1);
        result_done(&a);
}
END_TEST

START_TEST(test_cursor_loop) {
        Result a = {};

        client_new(NULL);
        ck_assert_int_eq(get_all(api, "loop", NULL, CFAPI_PAGING_CURSOR, NULL, CFAPI_PRIORITY_NORMAL,
                                       on_reply, &a), 0);
        pending++;
        run_loop(5);
        ck_assert_int_eq(a.error, -ELOOP);
        ck_assert_uint_eq(route("/accounts/" ACCOUNT "/loop")->hits, 2);
        result_done(&a);
}
END_TEST

static int on_free_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        api = cfapi_free(api);
        return 0;
}

START_TEST(test_free_in_flight) {
        Result r[4] = {};
        sd_event_source *t = NULL;

        /* Shutdown with transfers running and queued: every callback runs
         * once with -ECANCELED, nothing leaks (ASan). */
        client_new(&(CfApiOptions) { .concurrency = 2 });
        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                submit("GET", "stall", &r[i]);
        ck_assert_int_ge(sd_event_add_time_relative(event, &t, CLOCK_MONOTONIC, 100 * USEC_PER_MSEC, 1,
                                                    on_free_timer, NULL), 0);
        run_loop(5);
        ck_assert_ptr_null(api);
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                ck_assert(r[i].done);
                ck_assert_int_eq(r[i].error, -ECANCELED);
                result_done(&r[i]);
        }
        sd_event_source_unref(t);
}
END_TEST

static Result *cancel_res;

static int on_cancel_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        cfapi_cancel_all(api);
        return 0;
}

START_TEST(test_cancel) {
        Result r[3] = {}, one = {};
        sd_event_source *t = NULL;
        uint64_t id = 0;
        CfRequest req = { .method = "GET", .path = "ok", .priority = CFAPI_PRIORITY_NORMAL };

        client_new(NULL);
        /* One cancelled before it starts. */
        ck_assert_int_eq(cfapi_submit(api, &req, on_reply, &one, &id), 0);
        pending++;
        ck_assert_int_eq(cfapi_cancel(api, id), 0);
        ck_assert(one.done);
        ck_assert_int_eq(one.error, -ECANCELED);
        ck_assert_int_eq(cfapi_cancel(api, id), -ENOENT);

        /* Three stalled ones cancelled in flight. */
        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                submit("GET", "stall", &r[i]);
        cancel_res = r;
        ck_assert_int_ge(sd_event_add_time_relative(event, &t, CLOCK_MONOTONIC, 200 * USEC_PER_MSEC, 1,
                                                    on_cancel_timer, NULL), 0);
        run_loop(5);
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                ck_assert_int_eq(r[i].error, -ECANCELED);
                result_done(&r[i]);
        }
        ck_assert_uint_eq(cfapi_n_pending(api), 0);
        sd_event_source_unref(t);
        result_done(&one);
}
END_TEST

START_TEST(test_bad_input) {
        CfApiOptions o = { .api_url = "ftp://example.com" };
        CfApi *a = NULL;
        Result r = {};

        ck_assert_int_eq(cfapi_new(&a, event, &o), -EINVAL);
        o.api_url = "http://127.0.0.1:1/client/v4";
        o.token = "bad\ntoken";
        o.token_size = 9;
        ck_assert_int_eq(cfapi_new(&a, event, &o), -EINVAL);

        client_new(NULL);
        ck_assert_int_eq(request(api, "GET", "a b", NULL, NULL, on_reply, &r), -EINVAL);
        ck_assert_int_eq(request(api, "GET", "x?y=1", NULL, NULL, on_reply, &r), -EINVAL);
        ck_assert_int_eq(request(api, "", "x", NULL, NULL, on_reply, &r), -EINVAL);
        ck_assert_int_eq(cfapi_submit(api, &(CfRequest) { .method = "POST", .path = "x", .paging = CFAPI_PAGING_CURSOR },
                                      on_reply, &r, NULL), -EINVAL);
}
END_TEST

START_TEST(test_connection_refused) {
        Result a = {};
        CfApiOptions o = { .max_retries = 2, .api_url = "http://127.0.0.1:1/client/v4", .account_id = ACCOUNT,
                           .token = TOKEN, .token_size = strlen(TOKEN),
                           .backoff_base_usec = 10 * USEC_PER_MSEC };

        ck_assert_int_eq(cfapi_new(&api, event, &o), 0);
        submit("GET", "ok", &a);
        run_loop(10);
        ck_assert_int_eq(a.error, -ECONNREFUSED);
        ck_assert_uint_eq(a.attempts, 3);
        ck_assert_ptr_null(strstr(a.message, TOKEN));
        result_done(&a);
}
END_TEST

START_TEST(test_route_class) {
        static const struct {
                const char *path, *cls;
        } cases[] = {
                { "workers/scripts", "workers" },
                { "workers/scripts/api/versions/v1", "workers" },
                { "storage/kv/namespaces", "kv" },
                { "r2/buckets", "r2" },
                { "d1/database", "d1" },
                { "queues", "queues" },
                { "queues/q1/consumers", "queues" },
                { "secrets_store/stores/s/secrets", "secrets_store" },
                { "logs/audit", "audit" },
                { "/user/tokens/verify", "tokens" },
                { "workersx", "other" },
                { NULL, "other" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                ck_assert_str_eq(cfapi_route_class_name(cfapi_route_class(cases[i].path)), cases[i].cls);
        ck_assert_ptr_null(cfapi_route_class_name(-1));
        ck_assert_ptr_null(cfapi_route_class_name(99));
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("cfapi");
        TCase *tc = tcase_create("cfapi");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_envelope);
        tcase_add_test(tc, test_bodies);
        tcase_add_test(tc, test_pagination);
        tcase_add_test(tc, test_retry_429);
        tcase_add_test(tc, test_retry_503_drop);
        tcase_add_test(tc, test_list_fed_restart);
        tcase_add_test(tc, test_write_gate);
        tcase_add_test(tc, test_timeout);
        tcase_add_test(tc, test_deadline);
        tcase_add_test(tc, test_concurrency_bound);
        tcase_add_test(tc, test_budget_holds);
        tcase_add_test(tc, test_ratelimit_header);
        tcase_add_test(tc, test_body_cap);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_cursor_loop);
        tcase_add_test(tc, test_free_in_flight);
        tcase_add_test(tc, test_bad_input);
        tcase_add_test(tc, test_connection_refused);
        tcase_add_test(tc, test_route_class);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr;
        int failed;

        curl_global_init(CURL_GLOBAL_DEFAULT);
        sr = srunner_create(suite());
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        curl_global_cleanup();
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
