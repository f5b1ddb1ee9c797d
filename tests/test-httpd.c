/* test-httpd.c: the HTTP API server (httpd.c) on a real sd-event loop, in
 * process, with a stub backend standing in for the manager and engine.
 *
 * The loop runs on a second thread and owns every server object; the test
 * thread only speaks HTTP to it over loopback (libcurl and raw sockets)
 * and stops it through an eventfd. The stub's runs finish on loop timers.
 */
#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"
#include "metrics.h"
#include "util.h"

#define TOKEN "s3cret-t0ken-for-tests"
#define HOOK_SECRET "It's a Secret to Everybody"

/* ---- the stub backend (all on the loop thread) ---- */

typedef struct Stub {
        sd_event *event;
        Httpd *httpd;
        bool ready;
        unsigned run_msec;          /* how long a run takes */
        const char *run_result;     /* "ok", "failed", ... */
        unsigned n_runs_started;
        unsigned n_triggers;
        unsigned n_forced;          /* triggers with force */
        char running_id[16], pending_id[16], done_id[16];
        unsigned seq;
        sd_event_source *run_timer;
        /* plan: 0 ready, 1 in progress then ready after 100 ms, 2 busy */
        int plan_mode;
        bool plan_done;
        sd_event_source *plan_timer;
        /* status_version and how often status/runs were built */
        uint64_t version;
        unsigned n_status_built, n_runs_built;
        /* high availability: 0 serve here, 1 relay, 2 redirect, 3 no leader */
        int ha_mode;
        unsigned n_forwarded;
        char fwd_method[8], fwd_url[512], fwd_auth[128];
        sd_event_source *fwd_timer;
        httpd_relay_done_t fwd_done;
        void *fwd_cookie;
} Stub;

static json_object *stub_status(void *userdata) {
        Stub *s = userdata;
        json_object *j = json_object_new_object(), *res = json_object_new_array(), *x = json_object_new_object();

        s->n_status_built++;
        json_object_object_add(j, "last_run", json_object_new_string(s->done_id));

        json_object_object_add(x, "kind", json_object_new_string("Worker"));
        json_object_object_add(x, "name", json_object_new_string("api"));
        json_object_object_add(x, "state", json_object_new_string("in_sync"));
        json_object_array_add(res, x);
        json_object_object_add(j, "resources", res);
        return j;
}

#define STUB_DIGEST "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static json_object *run_json(Stub *s, const char *id) {
        json_object *j;

        if (!*id)
                return NULL;
        j = json_object_new_object();
        json_object_object_add(j, "id", json_object_new_string(id));
        if (streq(id, s->running_id))
                json_object_object_add(j, "state", json_object_new_string("running"));
        else if (streq(id, s->pending_id))
                json_object_object_add(j, "state", json_object_new_string("queued"));
        else {
                json_object_object_add(j, "state", json_object_new_string("done"));
                json_object_object_add(j, "result", json_object_new_string(s->run_result));
                json_object_object_add(j, "generation", json_object_new_string(STUB_DIGEST));
        }
        return j;
}

static json_object *stub_run(void *userdata, const char *id) {
        Stub *s = userdata;

        if (streq(id, s->running_id) || streq(id, s->pending_id) || streq(id, s->done_id))
                return run_json(s, id);
        return NULL;
}

static uint64_t stub_status_version(void *userdata) {
        Stub *s = userdata;

        return s->version;
}

static json_object *stub_runs(void *userdata) {
        Stub *s = userdata;
        json_object *a = json_object_new_array();

        s->n_runs_built++;

        if (*s->done_id)
                json_object_array_add(a, run_json(s, s->done_id));
        return a;
}

static void stub_start(Stub *s);

static int on_run_finished(sd_event_source *src, uint64_t usec, void *userdata) {
        Stub *s = userdata;

        memcpy(s->done_id, s->running_id, sizeof(s->done_id));
        s->running_id[0] = 0;
        s->version++;
        s->run_timer = sd_event_source_disable_unref(s->run_timer);
        if (*s->pending_id) {
                memcpy(s->running_id, s->pending_id, sizeof(s->running_id));
                s->pending_id[0] = 0;
                stub_start(s);
        }
        httpd_wake(s->httpd);
        return 0;
}

static void stub_start(Stub *s) {
        s->n_runs_started++;
        ck_assert_int_ge(sd_event_add_time_relative(s->event, &s->run_timer, CLOCK_MONOTONIC,
                                                    s->run_msec * USEC_PER_MSEC, 1, on_run_finished, s), 0);
}

static int stub_trigger(void *userdata, const char *reason, bool force, char **ret) {
        Stub *s = userdata;

        s->n_triggers++;
        s->version++;
        if (force)
                s->n_forced++;
        if (*s->pending_id) {
                *ret = strdup(s->pending_id);
                return 0;
        }
        if (*s->running_id) {
                snprintf(s->pending_id, sizeof(s->pending_id), "r%u", ++s->seq);
                *ret = strdup(s->pending_id);
                return 0;
        }
        snprintf(s->running_id, sizeof(s->running_id), "r%u", ++s->seq);
        stub_start(s);
        *ret = strdup(s->running_id);
        return 0;
}

static int on_plan_finished(sd_event_source *src, uint64_t usec, void *userdata) {
        Stub *s = userdata;

        s->plan_done = true;
        httpd_wake(s->httpd);
        return 0;
}

static int stub_plan(void *userdata, json_object **ret, unsigned *retry) {
        Stub *s = userdata;

        if (s->plan_mode == 2) {
                *retry = 7;
                return -EBUSY;
        }
        if (s->plan_mode == 1 && !s->plan_done) {
                if (!s->plan_timer)
                        ck_assert_int_ge(sd_event_add_time_relative(s->event, &s->plan_timer, CLOCK_MONOTONIC,
                                                                    100 * USEC_PER_MSEC, 1, on_plan_finished, s), 0);
                return -EINPROGRESS;
        }
        *ret = json_object_new_object();
        json_object_object_add(*ret, "result", json_object_new_string("changes"));
        json_object_object_add(*ret, "text", json_object_new_string("+ create Worker api"));
        return 0;
}

static char *stub_metrics(void *userdata) {
        Metrics *m = metrics_new();

        metrics_family(m, "bindery_runs_total", "counter", "Runs by result.");
        metrics_sample(m, "bindery_runs_total", 3, "result", "ok", NULL);
        metrics_sample(m, "bindery_runs_total", 0, "result", "failed", NULL);
        metrics_family(m, "bindery_generation_info", "gauge", "Generation with \"quotes\" and \\ in help.");
        metrics_sample(m, "bindery_generation_info", 1, "digest", "ab\"c\\d\ne", NULL);
        metrics_family(m, "bindery_run_duration_seconds", "histogram", "Durations.");
        metrics_sample(m, "bindery_run_duration_seconds_bucket", 1, "le", "0.5", NULL);
        metrics_sample(m, "bindery_run_duration_seconds_bucket", 2, "le", "+Inf", NULL);
        metrics_sample(m, "bindery_run_duration_seconds_sum", 1.25, NULL);
        metrics_sample(m, "bindery_run_duration_seconds_count", 2, NULL);
        return metrics_take(m);
}

static bool stub_ready(void *userdata) {
        Stub *s = userdata;

        return s->ready;
}

/* The directory "produces" STUB_DIGEST. */
static int stub_trigger_load(void *userdata, const char *reason, bool force, const char *expect, char **ret,
                             json_object **ret_detail) {
        if (expect && !startswith(STUB_DIGEST, expect)) {
                *ret_detail = json_object_new_object();
                json_object_object_add(*ret_detail, "digest", json_object_new_string(STUB_DIGEST));
                return -ESTALE;
        }
        return stub_trigger(userdata, reason, force, ret);
}

static const HttpdBackend stub_backend = {
        .status = stub_status,
        .status_version = stub_status_version,
        .runs = stub_runs,
        .run = stub_run,
        .trigger = stub_trigger,
        .trigger_load = stub_trigger_load,
        .plan = stub_plan,
        .metrics = stub_metrics,
        .ready = stub_ready,
};

/* High availability: "the leader" answers a relay 10 ms later. */
static int stub_leader(void *userdata, char **ret_url, bool *ret_forward) {
        Stub *s = userdata;

        if (s->ha_mode == 0)
                return 0;
        if (s->ha_mode == 3)
                return -EAGAIN;
        *ret_url = strdup("http://leader.example:9470");
        *ret_forward = s->ha_mode == 1;
        return 1;
}

static int stub_relay_answer(sd_event_source *src, uint64_t usec, void *userdata) {
        Stub *s = userdata;
        static const char body[] = "{\"relayed\":true}\n";
        HttpdRelay a = { .status = 202, .content_type = "application/json", .body = body, .size = strlen(body) };

        s->fwd_timer = sd_event_source_disable_unref(s->fwd_timer);
        s->fwd_done(&a, s->fwd_cookie);
        return 0;
}

static int stub_forward(void *userdata, const char *method, const char *url, const char *authorization,
                        const char *body, size_t size, uint64_t timeout_usec, httpd_relay_done_t done,
                        void *cookie, void **ret_handle) {
        Stub *s = userdata;

        ck_assert_ptr_null(s->fwd_timer);
        s->n_forwarded++;
        snprintf(s->fwd_method, sizeof s->fwd_method, "%s", method);
        snprintf(s->fwd_url, sizeof s->fwd_url, "%s", url);
        snprintf(s->fwd_auth, sizeof s->fwd_auth, "%s", strna(authorization));
        s->fwd_done = done;
        s->fwd_cookie = cookie;
        ck_assert_int_ge(sd_event_add_time_relative(s->event, &s->fwd_timer, CLOCK_MONOTONIC, 10 * USEC_PER_MSEC,
                                                    0, stub_relay_answer, s), 0);
        *ret_handle = s;
        return 0;
}

static void stub_forward_cancel(void *userdata, void *handle) {
        Stub *s = userdata;

        s->fwd_timer = sd_event_source_disable_unref(s->fwd_timer);
}


/* ---- the server thread ---- */

typedef struct Server {
        Stub stub;
        HttpdSettings settings;
        bool auth_reads;
        bool no_token;
        bool no_hook;
        const char *webhook_ref;
        int stop_fd;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool up;
        uint16_t port;
        uint16_t port2;             /* second listener, if any */
        bool ipv6;                  /* also listen on [::1] */
} Server;

static int on_stop(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Server *srv = userdata;

        return sd_event_exit(srv->stub.event, 0);
}

static void *server_main(void *p) {
        Server *srv = p;
        sd_event_source *stop = NULL;
        char *listen[] = { (char *) "127.0.0.1:0", srv->ipv6 ? (char *) "[::1]:0" : NULL, NULL };
        HttpdBackend backend = stub_backend;   /* httpd_new copies it */

        ck_assert_int_ge(sd_event_new(&srv->stub.event), 0);
        srv->settings.listen = listen;
        if (srv->stub.ha_mode) {
                backend.leader = stub_leader;
                backend.forward = stub_forward;
                backend.forward_cancel = stub_forward_cancel;
        }
        ck_assert_int_eq(httpd_new(&srv->stub.httpd, srv->stub.event, &srv->settings, &backend, &srv->stub), 0);
        ck_assert_int_eq(httpd_set_auth(srv->stub.httpd, srv->no_token ? NULL : TOKEN, strlen(TOKEN), srv->auth_reads,
                                        srv->no_hook ? NULL : HOOK_SECRET, strlen(HOOK_SECRET)), 0);
        ck_assert_int_eq(httpd_set_webhook_ref(srv->stub.httpd, srv->webhook_ref), 0);
        ck_assert_int_ge(sd_event_add_io(srv->stub.event, &stop, srv->stop_fd, EPOLLIN, on_stop, srv), 0);

        pthread_mutex_lock(&srv->lock);
        srv->port = httpd_port(srv->stub.httpd, 0);
        srv->port2 = httpd_port(srv->stub.httpd, 1);
        srv->up = true;
        pthread_cond_signal(&srv->cond);
        pthread_mutex_unlock(&srv->lock);

        ck_assert_int_ge(sd_event_loop(srv->stub.event), 0);

        sd_event_source_disable_unref(stop);
        sd_event_source_disable_unref(srv->stub.run_timer);
        sd_event_source_disable_unref(srv->stub.plan_timer);
        sd_event_source_disable_unref(srv->stub.fwd_timer);
        httpd_free(srv->stub.httpd);
        sd_event_unref(srv->stub.event);
        return NULL;
}

static Server *server_start(const HttpdSettings *settings, void (*tweak)(Server *s)) {
        Server *srv = calloc(1, sizeof(Server));

        ck_assert_ptr_nonnull(srv);
        if (settings)
                srv->settings = *settings;
        srv->stub.run_msec = 200;
        srv->stub.run_result = "ok";
        srv->stub.ready = true;
        if (tweak)
                tweak(srv);
        srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(srv->stop_fd, 0);
        pthread_mutex_init(&srv->lock, NULL);
        pthread_cond_init(&srv->cond, NULL);
        ck_assert_int_eq(pthread_create(&srv->thread, NULL, server_main, srv), 0);
        pthread_mutex_lock(&srv->lock);
        while (!srv->up)
                pthread_cond_wait(&srv->cond, &srv->lock);
        pthread_mutex_unlock(&srv->lock);
        ck_assert_uint_gt(srv->port, 0);
        return srv;
}

static void server_stop(Server *srv) {
        uint64_t one = 1;

        ck_assert_int_eq(write(srv->stop_fd, &one, sizeof(one)), (int) sizeof(one));
        pthread_join(srv->thread, NULL);
        close(srv->stop_fd);
        free(srv);
}

/* ---- a small HTTP client ---- */

typedef struct Reply {
        long status;
        char *body;
        size_t size;
        char *headers;
        size_t headers_size;
        double seconds;
} Reply;

static size_t collect(char *p, size_t size, size_t n, void *userdata) {
        FILE *f = userdata;

        return fwrite(p, size, n, f);
}

static void reply_done(Reply *r) {
        free(r->body);
        free(r->headers);
}

/* extra: one header line, or NULL */
static Reply request(Server *srv, const char *method, const char *path, const char *extra, const char *extra2,
                     const char *body, size_t body_size) {
        Reply r = {};
        CURL *c = curl_easy_init();
        struct curl_slist *h = NULL;
        FILE *fb = open_memstream(&r.body, &r.size), *fh = open_memstream(&r.headers, &r.headers_size);
        char url[512];

        snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", srv->port, path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (streq(method, "HEAD"))
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, fb);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, fh);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
        if (body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long) body_size);
        }
        if (extra)
                h = curl_slist_append(h, extra);
        if (extra2)
                h = curl_slist_append(h, extra2);
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r.seconds);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        fclose(fb);
        fclose(fh);
        return r;
}

static Reply get(Server *srv, const char *path) {
        return request(srv, "GET", path, NULL, NULL, NULL, 0);
}

static Reply post(Server *srv, const char *path, const char *auth) {
        return request(srv, "POST", path, auth, NULL, "", 0);
}

static bool has_header(const Reply *r, const char *line) {
        return r->headers && strcasestr(r->headers, line);
}

static json_object *body_json(const Reply *r) {
        json_object *j = json_tokener_parse(r->body ? r->body : "");

        ck_assert_msg(j, "not JSON: %s", strna(r->body));
        return j;
}

static const char *jstr(json_object *j, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(j, key, &v))
                return NULL;
        return json_object_get_string(v);
}

/* ---- tests ---- */

START_TEST(test_routes) {
        Server *srv = server_start(NULL, NULL);
        Reply r;

        r = get(srv, "/healthz");
        ck_assert_int_eq(r.status, 200);
        ck_assert(has_header(&r, "Content-Type: application/json"));
        ck_assert(has_header(&r, "Cache-Control: no-store"));
        reply_done(&r);

        r = get(srv, "/readyz");
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        r = get(srv, "/v1/status");
        ck_assert_int_eq(r.status, 200);
        {
                _cleanup_(json_object_putp) json_object *j = body_json(&r);

                ck_assert(json_object_object_get_ex(j, "resources", NULL));
        }
        reply_done(&r);

        /* humans get a table */
        r = get(srv, "/v1/status?format=table");
        ck_assert_int_eq(r.status, 200);
        ck_assert(has_header(&r, "Content-Type: text/plain"));
        ck_assert_ptr_nonnull(strstr(r.body, "KIND"));
        ck_assert_ptr_nonnull(strstr(r.body, "in_sync"));
        reply_done(&r);
        /* ?pretty: the same JSON, indented */
        r = get(srv, "/v1/status?pretty");
        ck_assert_int_eq(r.status, 200);
        ck_assert(has_header(&r, "Content-Type: application/json"));
        ck_assert_ptr_nonnull(strstr(r.body, "{\n  \""));
        {
                _cleanup_(json_object_putp) json_object *j = body_json(&r);

                ck_assert(json_object_object_get_ex(j, "resources", NULL));
        }
        reply_done(&r);
        r = request(srv, "GET", "/v1/status", "Accept: text/plain", NULL, NULL, 0);
        ck_assert(has_header(&r, "Content-Type: text/plain"));
        reply_done(&r);

        r = request(srv, "HEAD", "/v1/status", NULL, NULL, NULL, 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.size, 0);
        reply_done(&r);

        r = get(srv, "/v1/runs");
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        r = get(srv, "/v1/runs/nope");
        ck_assert_int_eq(r.status, 404);
        {
                _cleanup_(json_object_putp) json_object *j = body_json(&r);

                ck_assert_ptr_nonnull(jstr(j, "error"));
        }
        reply_done(&r);

        r = get(srv, "/v1/runs/a/b");
        ck_assert_int_eq(r.status, 404);
        reply_done(&r);
        r = get(srv, "/nowhere");
        ck_assert_int_eq(r.status, 404);
        reply_done(&r);

        r = request(srv, "DELETE", "/v1/status", NULL, NULL, NULL, 0);
        ck_assert_int_eq(r.status, 405);
        ck_assert(has_header(&r, "Allow: GET, HEAD"));
        reply_done(&r);
        r = get(srv, "/v1/reconcile");
        ck_assert_int_eq(r.status, 405);
        ck_assert(has_header(&r, "Allow: POST"));
        reply_done(&r);

        r = get(srv, "/metrics");
        ck_assert_int_eq(r.status, 200);
        ck_assert(has_header(&r, "Content-Type: text/plain; version=0.0.4"));
        reply_done(&r);
        server_stop(srv);
}
END_TEST

static void not_ready(Server *s) {
        s->stub.ready = false;
}

/* The ETag header's value (with its quotes), or a failed check. */
static char *reply_etag(const Reply *r) {
        const char *p = r->headers ? strcasestr(r->headers, "\nETag: ") : NULL;
        size_t n;

        ck_assert_msg(p, "no ETag in: %s", strna(r->headers));
        p += strlen("\nETag: ");
        n = strcspn(p, "\r\n");
        ck_assert_uint_eq(n, 34);        /* a strong tag: 32 hex digits in quotes */
        ck_assert_int_eq(p[0], '"');
        ck_assert_int_eq(p[n - 1], '"');
        return strndup(p, n);
}

/* The plain body is the JSON a fresh build (?pretty, built per request)
 * gives, byte for byte once re-serialised, and ends in a newline. */
static void assert_same_as_fresh(Server *srv, const char *path, const Reply *plain) {
        char pretty[64];
        Reply f;

        snprintf(pretty, sizeof(pretty), "%s?pretty", path);
        f = get(srv, pretty);
        ck_assert_int_eq(f.status, 200);
        ck_assert(!has_header(&f, "ETag:"));
        {
                _cleanup_(json_object_putp) json_object *a = body_json(plain), *b = body_json(&f);
                _cleanup_free_ char *line = NULL;

                ck_assert(json_object_equal(a, b));
                ck_assert_int_ge(asprintf(&line, "%s\n", json_object_to_json_string_ext(b,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)), 0);
                ck_assert_uint_eq(plain->size, strlen(line));
                ck_assert(memcmp(plain->body, line, plain->size) == 0);
        }
        reply_done(&f);
}

START_TEST(test_status_etag) {
        Server *srv = server_start(NULL, NULL);
        _cleanup_free_ char *tag = NULL, *tag2 = NULL, *runs_tag = NULL;
        char h[128];
        unsigned built;
        Reply r, r2;

        r = get(srv, "/v1/status");
        ck_assert_int_eq(r.status, 200);
        ck_assert(has_header(&r, "Content-Type: application/json"));
        ck_assert(has_header(&r, "Cache-Control: no-store"));
        tag = reply_etag(&r);
        assert_same_as_fresh(srv, "/v1/status", &r);
        built = srv->stub.n_status_built;

        /* Unchanged: the same bytes and tag, not built again. */
        for (int i = 0; i < 5; i++) {
                _cleanup_free_ char *t = NULL;

                r2 = get(srv, "/v1/status");
                ck_assert_int_eq(r2.status, 200);
                t = reply_etag(&r2);
                ck_assert_str_eq(t, tag);
                ck_assert_uint_eq(r2.size, r.size);
                ck_assert(memcmp(r2.body, r.body, r.size) == 0);
                reply_done(&r2);
        }
        ck_assert_uint_eq(srv->stub.n_status_built, built);

        /* If-None-Match with the tag (alone, weak, in a list, "*"): 304, no body. */
        static const struct { const char *before, *after; bool any; } forms[] = {
                { "", "", false }, { "W/", "", false }, { "\"nope\", ", "", false },
                { "\"a\",", " , \"b\"", false }, { "*", "", true },
        };
        for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
                _cleanup_free_ char *t = NULL;

                snprintf(h, sizeof(h), "If-None-Match: %s%s%s", forms[i].before, forms[i].any ? "" : tag,
                         forms[i].after);
                r2 = request(srv, "GET", "/v1/status", h, NULL, NULL, 0);
                ck_assert_msg(r2.status == 304, "%s: %ld", h, r2.status);
                ck_assert_uint_eq(r2.size, 0);
                t = reply_etag(&r2);
                ck_assert_str_eq(t, tag);
                reply_done(&r2);
        }
        /* Another tag, or a prefix of ours: the body. */
        snprintf(h, sizeof(h), "If-None-Match: \"0123\", %.20s\"", tag);
        r2 = request(srv, "GET", "/v1/status", h, NULL, NULL, 0);
        ck_assert_int_eq(r2.status, 200);
        ck_assert_uint_eq(r2.size, r.size);
        reply_done(&r2);
        /* HEAD: the tag, no body. */
        r2 = request(srv, "HEAD", "/v1/status", NULL, NULL, NULL, 0);
        ck_assert_int_eq(r2.status, 200);
        ck_assert_uint_eq(r2.size, 0);
        free(reply_etag(&r2));
        reply_done(&r2);
        /* Tables are built per request and carry no tag. */
        r2 = get(srv, "/v1/status?format=table");
        ck_assert_int_eq(r2.status, 200);
        ck_assert(!has_header(&r2, "ETag:"));
        reply_done(&r2);
        ck_assert_uint_eq(srv->stub.n_status_built, built + 1);

        r2 = get(srv, "/v1/runs");
        ck_assert_int_eq(r2.status, 200);
        runs_tag = reply_etag(&r2);
        assert_same_as_fresh(srv, "/v1/runs", &r2);
        reply_done(&r2);

        /* A run: a new tag and body; the old tag no longer matches. */
        r2 = post(srv, "/v1/reconcile?wait=10", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r2.status, 200);
        reply_done(&r2);
        snprintf(h, sizeof(h), "If-None-Match: %s", tag);
        r2 = request(srv, "GET", "/v1/status", h, NULL, NULL, 0);
        ck_assert_int_eq(r2.status, 200);
        tag2 = reply_etag(&r2);
        ck_assert_str_ne(tag2, tag);
        ck_assert_ptr_nonnull(strstr(r2.body, "\"last_run\":\"r1\""));
        assert_same_as_fresh(srv, "/v1/status", &r2);
        reply_done(&r2);
        snprintf(h, sizeof(h), "If-None-Match: %s", tag2);
        r2 = request(srv, "GET", "/v1/status", h, NULL, NULL, 0);
        ck_assert_int_eq(r2.status, 304);
        reply_done(&r2);
        snprintf(h, sizeof(h), "If-None-Match: %s", runs_tag);
        r2 = request(srv, "GET", "/v1/runs", h, NULL, NULL, 0);
        ck_assert_int_eq(r2.status, 200);
        ck_assert_ptr_nonnull(strstr(r2.body, "\"r1\""));
        reply_done(&r2);

        reply_done(&r);
        server_stop(srv);
}
END_TEST

START_TEST(test_readyz_not_ready) {
        Server *srv = server_start(NULL, not_ready);
        Reply r = get(srv, "/readyz");

        ck_assert_int_eq(r.status, 503);
        reply_done(&r);
        r = get(srv, "/healthz");
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);
        server_stop(srv);
}
END_TEST

START_TEST(test_auth) {
        Server *srv = server_start(NULL, NULL);
        Reply r;

        r = post(srv, "/v1/reconcile", NULL);
        ck_assert_int_eq(r.status, 401);
        ck_assert(has_header(&r, "WWW-Authenticate: Bearer"));
        reply_done(&r);
        r = post(srv, "/v1/reconcile", "Authorization: Bearer wrong");
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        r = post(srv, "/v1/reconcile", "Authorization: Bearer " TOKEN "x");
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        r = post(srv, "/v1/reconcile", "Authorization: Basic " TOKEN);
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        r = post(srv, "/v1/reconcile", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 202);
        {
                _cleanup_(json_object_putp) json_object *j = body_json(&r);

                ck_assert_str_eq(jstr(j, "id"), "r1");
                ck_assert(has_header(&r, "Location: /v1/runs/r1"));
        }
        reply_done(&r);
        /* reads are open by default */
        r = get(srv, "/v1/status");
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);
        server_stop(srv);
}
END_TEST

static void reads_need_auth(Server *s) {
        s->auth_reads = true;
}

START_TEST(test_auth_reads) {
        Server *srv = server_start(NULL, reads_need_auth);
        Reply r;

        r = get(srv, "/v1/status");
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        r = get(srv, "/metrics");
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        r = request(srv, "GET", "/v1/status", "Authorization: Bearer " TOKEN, NULL, NULL, 0);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);
        /* probes stay open */
        r = get(srv, "/healthz");
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);
        r = get(srv, "/readyz");
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);
        server_stop(srv);
}
END_TEST

static void no_token(Server *s) {
        s->no_token = true;
        s->no_hook = true;
}

START_TEST(test_no_token_configured) {
        Server *srv = server_start(NULL, no_token);
        Reply r;

        r = post(srv, "/v1/reconcile", "Authorization: Bearer anything");
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        r = post(srv, "/v1/hooks/github", "X-Hub-Signature-256: sha256=00");
        ck_assert_int_eq(r.status, 403);
        reply_done(&r);
        server_stop(srv);
}
END_TEST

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static double median_401(Server *srv, const char *auth) {
        double t[101];

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                Reply r = post(srv, "/v1/reconcile", auth);

                ck_assert_int_eq(r.status, 401);
                t[i] = r.seconds;
                reply_done(&r);
        }
        qsort(t, ELEMENTSOF(t), sizeof(double), cmp_double);
        return t[ELEMENTSOF(t) / 2];
}

START_TEST(test_auth_constant_time) {
        /* A wrong first byte and a wrong last byte are refused alike; the
         * comparison itself is memeq_consttime (test-util covers it), so
         * this only guards against an early-exit compare creeping back in
         * with a loose bound: loopback timing is noisy. */
        Server *srv = server_start(NULL, NULL);
        char first[128], last[128];
        double a, b;

        snprintf(first, sizeof(first), "Authorization: Bearer X%s", &TOKEN[1]);
        snprintf(last, sizeof(last), "Authorization: Bearer %.*sX", (int) strlen(TOKEN) - 1, TOKEN);
        a = median_401(srv, first);
        b = median_401(srv, last);
        ck_assert_msg(a < 3 * b + 0.001 && b < 3 * a + 0.001, "median %.6fs vs %.6fs", a, b);
        server_stop(srv);
}
END_TEST

START_TEST(test_limits_body) {
        Server *srv = server_start(NULL, NULL);
        char *big = malloc(2 * 1024 * 1024);
        Reply r;

        memset(big, 'x', 2 * 1024 * 1024);
        r = request(srv, "POST", "/v1/reconcile", "Authorization: Bearer " TOKEN, NULL, big, 5000);
        ck_assert_int_eq(r.status, 413);
        reply_done(&r);
        r = request(srv, "POST", "/v1/hooks/github", "X-GitHub-Event: push", NULL, big, 2 * 1024 * 1024);
        ck_assert_int_eq(r.status, 413);
        reply_done(&r);
        /* unauthenticated: refused before the body is read */
        r = request(srv, "POST", "/v1/reconcile", NULL, NULL, big, 3000);
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        free(big);
        server_stop(srv);
}
END_TEST

static int connect_to(uint16_t port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        return fd;
}

/* Reads until EOF or timeout; returns bytes read, -1 on timeout. */
static ssize_t read_until_close(int fd, char *buf, size_t size, int timeout_ms) {
        size_t got = 0;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t n;

                if (poll(&p, 1, timeout_ms) <= 0)
                        return -1;
                n = read(fd, buf + got, size - got - 1);
                if (n <= 0) {
                        buf[got] = 0;
                        return (ssize_t) got;
                }
                got += (size_t) n;
                if (got >= size - 1) {
                        buf[got] = 0;
                        return (ssize_t) got;
                }
        }
}

START_TEST(test_limits_header_memory) {
        HttpdSettings s = { .memory_limit = 8192 };
        Server *srv = server_start(&s, NULL);
        char *req = malloc(64 * 1024), buf[4096];
        int fd = connect_to(srv->port);
        size_t n;

        n = (size_t) snprintf(req, 64 * 1024, "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ");
        memset(req + n, 'a', 32 * 1024);
        n += 32 * 1024;
        n += (size_t) snprintf(req + n, 64 * 1024 - n, "\r\n\r\n");
        (void) send(fd, req, n, MSG_NOSIGNAL);
        ck_assert_int_ge(read_until_close(fd, buf, sizeof(buf), 5000), 0);
        /* either an error status or a closed connection, never a 200 */
        ck_assert_ptr_null(strstr(buf, " 200 "));
        close(fd);
        free(req);
        server_stop(srv);
}
END_TEST

START_TEST(test_limits_connections_and_timeout) {
        HttpdSettings s = { .connection_limit = 4, .connection_timeout_sec = 1 };
        Server *srv = server_start(&s, NULL);
        int fds[4], extra;
        char buf[256];
        struct timespec t0, t1;
        Reply r;

        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = connect_to(srv->port);
        usleep(100 * 1000);
        /* at the limit, the fifth is served at once: the oldest connection
         * that has not sent a request makes room */
        clock_gettime(CLOCK_MONOTONIC, &t0);
        extra = connect_to(srv->port);
        (void) send(extra, "GET /healthz HTTP/1.0\r\n\r\n", 26, MSG_NOSIGNAL);
        ck_assert_int_gt(read_until_close(extra, buf, sizeof(buf), 2000), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_ptr_nonnull(strstr(buf, " 200 "));
        ck_assert_msg((t1.tv_sec - t0.tv_sec) * 1000.0 + (t1.tv_nsec - t0.tv_nsec) / 1e6 < 500.0,
                      "the fifth connection waited");
        close(extra);
        /* the oldest was closed; the rest time out (1 s here) */
        ck_assert_int_ge(read_until_close(fds[0], buf, sizeof(buf), 500), 0);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                ck_assert_int_ge(read_until_close(fds[i], buf, sizeof(buf), 5000), 0);
                close(fds[i]);
        }
        r = get(srv, "/healthz");
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);
        server_stop(srv);
}
END_TEST

/* A client trickling a header line now and then is active, so MHD's
 * inactivity timeout never fires; the request deadline does. */
START_TEST(test_request_deadline_slowloris) {
        HttpdSettings s = { .request_deadline_sec = 2, .connection_timeout_sec = 30 };
        Server *srv = server_start(&s, NULL);
        int fd = connect_to(srv->port);
        struct timespec t0, t1;
        bool closed = false;
        char buf[256];
        double ms;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        (void) send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 32, MSG_NOSIGNAL);
        for (unsigned i = 0; i < 40 && !closed; i++) {
                if (send(fd, "X-a: b\r\n", 8, MSG_NOSIGNAL) < 0)
                        closed = true;
                else if (read_until_close(fd, buf, sizeof(buf), 250) >= 0)
                        closed = true;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (t1.tv_sec - t0.tv_sec) * 1000.0 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        ck_assert_msg(closed, "a trickling client kept its connection for 10 s");
        ck_assert_msg(ms >= 1900 && ms < 4500, "closed after %.0f ms (deadline 2 s)", ms);
        close(fd);
        server_stop(srv);
}
END_TEST

/* Per address: past the cap the oldest of that address makes room, while
 * a request being answered (a waiter) is never evicted. */
START_TEST(test_per_address_cap_spares_waiters) {
        HttpdSettings s = { .per_address_limit = 8, .connection_limit = 64 };
        Server *srv = server_start(&s, NULL);
        int waiter = connect_to(srv->port), fds[20];
        char buf[1024];
        size_t open_n;
        uint64_t evicted, deadline;
        static const char req[] = "POST /v1/reconcile?wait=3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                                  "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

        (void) send(waiter, req, sizeof(req) - 1, MSG_NOSIGNAL);
        usleep(100 * 1000);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = connect_to(srv->port);
        usleep(200 * 1000);
        /* the waiter got its answer (the run takes 200 ms) */
        ck_assert_int_gt(read_until_close(waiter, buf, sizeof(buf), 3000), 0);
        ck_assert_ptr_nonnull(strstr(buf, " 200 "));
        close(waiter);
        httpd_connection_stats(srv->stub.httpd, &open_n, &evicted, &deadline);
        ck_assert_uint_ge(evicted, ELEMENTSOF(fds) - 8);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
        server_stop(srv);
}
END_TEST

/* A chunked body has no Content-Length to refuse up front: past the limit
 * it is dropped and answered 413. */
START_TEST(test_chunked_body_413) {
        Server *srv = server_start(NULL, NULL);
        int fd = connect_to(srv->port);
        static const char head[] = "POST /v1/reconcile HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                                   "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        char chunk[1100], buf[1024];
        int n;

        (void) send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL);
        memset(chunk, 0, sizeof(chunk));
        n = snprintf(chunk, sizeof(chunk), "400\r\n");
        memset(chunk + n, 'x', 1024);
        memcpy(chunk + n + 1024, "\r\n", 2);
        for (unsigned i = 0; i < 8; i++)  /* 8 KiB > the 4 KiB limit */
                (void) send(fd, chunk, (size_t) n + 1026, MSG_NOSIGNAL);
        (void) send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL);
        ck_assert_int_gt(read_until_close(fd, buf, sizeof(buf), 3000), 0);
        ck_assert_msg(strstr(buf, " 413 "), "got: %.80s", buf);
        close(fd);
        ck_assert_uint_eq(srv->stub.n_triggers, 0);
        server_stop(srv);
}
END_TEST

START_TEST(test_idle_connections_do_not_block) {
        Server *srv = server_start(NULL, NULL);
        int fds[200];
        Reply r;

        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = connect_to(srv->port);
        r = post(srv, "/v1/reconcile", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 202);
        ck_assert(r.seconds < 1.0);
        reply_done(&r);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
        server_stop(srv);
}
END_TEST

START_TEST(test_wait) {
        Server *srv = server_start(NULL, NULL);
        Reply r;

        /* done within the wait: 200 with the result */
        r = post(srv, "/v1/reconcile?wait=10", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 200);
        {
                _cleanup_(json_object_putp) json_object *j = body_json(&r);

                ck_assert_str_eq(jstr(j, "state"), "done");
                ck_assert_str_eq(jstr(j, "result"), "ok");
        }
        ck_assert(r.seconds >= 0.15);
        reply_done(&r);

        /* bad wait */
        r = post(srv, "/v1/reconcile?wait=soon", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 400);
        reply_done(&r);
        server_stop(srv);
}
END_TEST

START_TEST(test_expect) {
        Server *srv = server_start(NULL, NULL);
        Reply r;

        /* the directory produces another generation: 412 with its digest, nothing queued */
        r = post(srv, "/v1/reconcile?wait=10&expect=fedcba987654", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 412);
        {
                _cleanup_(json_object_putp) json_object *j = body_json(&r);

                ck_assert_str_eq(jstr(j, "digest"), STUB_DIGEST);
        }
        reply_done(&r);
        ck_assert_uint_eq(srv->stub.n_triggers, 0);
        /* too short, not hex */
        r = post(srv, "/v1/reconcile?wait=10&expect=0123456789a", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 400);
        reply_done(&r);
        r = post(srv, "/v1/reconcile?wait=10&expect=0123456789abcdeg", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 400);
        reply_done(&r);
        /* a match (any case): the run's answer */
        r = post(srv, "/v1/reconcile?wait=10&expect=0123456789ABCDEF", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 200);
        {
                _cleanup_(json_object_putp) json_object *j = body_json(&r);

                ck_assert_str_eq(jstr(j, "generation"), STUB_DIGEST);
        }
        reply_done(&r);
        ck_assert_uint_eq(srv->stub.n_triggers, 1);
        server_stop(srv);
}
END_TEST

static void slow_failing(Server *s) {
        s->stub.run_msec = 2500;
        s->stub.run_result = "failed";
}

START_TEST(test_wait_timeout_and_failure) {
        Server *srv = server_start(NULL, slow_failing);
        Reply r;

        r = post(srv, "/v1/reconcile?wait=1", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 504);
        {
                _cleanup_(json_object_putp) json_object *j = body_json(&r);

                ck_assert_str_eq(jstr(j, "state"), "running");
        }
        ck_assert(r.seconds >= 0.9 && r.seconds < 2.0);
        reply_done(&r);
        /* the next trigger coalesces into a pending run; waiting for it
         * sees the failure: 409 */
        r = post(srv, "/v1/reconcile?wait=10&force=1", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 409);
        {
                _cleanup_(json_object_putp) json_object *j = body_json(&r);

                ck_assert_str_eq(jstr(j, "id"), "r2");
                ck_assert_str_eq(jstr(j, "result"), "failed");
        }
        reply_done(&r);
        server_stop(srv);
}
END_TEST

static void plan_in_progress(Server *s) {
        s->stub.plan_mode = 1;
}

START_TEST(test_plan) {
        Server *srv = server_start(NULL, plan_in_progress);
        Reply r;

        r = get(srv, "/v1/plan");
        ck_assert_int_eq(r.status, 200);
        ck_assert(r.seconds >= 0.05);
        {
                _cleanup_(json_object_putp) json_object *j = body_json(&r);

                ck_assert_str_eq(jstr(j, "result"), "changes");
        }
        reply_done(&r);
        r = get(srv, "/v1/plan?format=table");
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.body, "+ create Worker api\n");
        reply_done(&r);
        server_stop(srv);
}
END_TEST

static void plan_busy(Server *s) {
        s->stub.plan_mode = 2;
}

START_TEST(test_plan_busy) {
        Server *srv = server_start(NULL, plan_busy);
        Reply r = get(srv, "/v1/plan");

        ck_assert_int_eq(r.status, 503);
        ck_assert(has_header(&r, "Retry-After: 7"));
        reply_done(&r);
        server_stop(srv);
}
END_TEST

/* High availability: a follower answers 307 to the leader (path and
 * query kept), relays to it (with the client's token, never twice), or
 * 503 when no leader is known; only authenticated requests go anywhere;
 * reads stay local. */
static void ha_redirect(Server *s) {
        s->stub.ha_mode = 2;
}

static void ha_relay(Server *s) {
        s->stub.ha_mode = 1;
}

static void ha_none(Server *s) {
        s->stub.ha_mode = 3;
}

START_TEST(test_ha_redirect) {
        Server *srv = server_start(NULL, ha_redirect);
        Reply r = post(srv, "/v1/reconcile?wait=5&force=1", "Authorization: Bearer " TOKEN);

        ck_assert_int_eq(r.status, 307);
        ck_assert(has_header(&r, "Location: http://leader.example:9470/v1/reconcile?wait=5&force=1"));
        ck_assert_uint_eq(srv->stub.n_triggers, 0);
        reply_done(&r);
        r = post(srv, "/v1/reconcile", NULL);
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        r = get(srv, "/v1/status");
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);
        server_stop(srv);
}
END_TEST

START_TEST(test_ha_relay) {
        Server *srv = server_start(NULL, ha_relay);
        Reply r = post(srv, "/v1/reconcile?expect=0123456789ab", "Authorization: Bearer " TOKEN);

        ck_assert_int_eq(r.status, 202);
        ck_assert_str_eq(r.body, "{\"relayed\":true}\n");
        ck_assert_uint_eq(srv->stub.n_forwarded, 1);
        ck_assert_str_eq(srv->stub.fwd_method, "POST");
        ck_assert_str_eq(srv->stub.fwd_url, "http://leader.example:9470/v1/reconcile?expect=0123456789ab");
        ck_assert_str_eq(srv->stub.fwd_auth, "Bearer " TOKEN);
        ck_assert_uint_eq(srv->stub.n_triggers, 0);
        reply_done(&r);
        r = get(srv, "/v1/plan");
        ck_assert_int_eq(r.status, 202);
        ck_assert_str_eq(srv->stub.fwd_method, "GET");
        reply_done(&r);
        /* Already forwarded once: no second hop. */
        r = request(srv, "POST", "/v1/reconcile", "Authorization: Bearer " TOKEN, HTTPD_FORWARDED_HEADER ": 1", "", 0);
        ck_assert_int_eq(r.status, 503);
        ck_assert_uint_eq(srv->stub.n_forwarded, 2);
        reply_done(&r);
        r = post(srv, "/v1/reconcile", "Authorization: Bearer wrong");
        ck_assert_int_eq(r.status, 401);
        ck_assert_uint_eq(srv->stub.n_forwarded, 2);
        reply_done(&r);
        server_stop(srv);
}
END_TEST

START_TEST(test_ha_no_leader) {
        Server *srv = server_start(NULL, ha_none);
        Reply r = post(srv, "/v1/reconcile", "Authorization: Bearer " TOKEN);

        ck_assert_int_eq(r.status, 503);
        ck_assert(has_header(&r, "Retry-After: 2"));
        ck_assert_uint_eq(srv->stub.n_triggers, 0);
        reply_done(&r);
        server_stop(srv);
}
END_TEST

START_TEST(test_webhook) {
        Server *srv = server_start(NULL, NULL);
        const char *body = "{\"zen\":\"Keep it logically awesome.\"}";
        char sig[72], hdr[128];
        Reply r;

        /* GitHub's documented example: secret "It's a Secret to Everybody",
         * payload "Hello, World!" */
        ck_assert_int_eq(httpd_webhook_signature(HOOK_SECRET, strlen(HOOK_SECRET), "Hello, World!", 13, sig), 0);
        ck_assert_str_eq(sig, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");

        ck_assert_int_eq(httpd_webhook_signature(HOOK_SECRET, strlen(HOOK_SECRET), body, strlen(body), sig), 0);
        snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s", sig);

        r = request(srv, "POST", "/v1/hooks/github", hdr, "X-GitHub-Event: ping", body, strlen(body));
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);
        r = request(srv, "POST", "/v1/hooks/github", hdr, "X-GitHub-Event: push", body, strlen(body));
        ck_assert_int_eq(r.status, 202);
        reply_done(&r);
        r = request(srv, "POST", "/v1/hooks/github", hdr, "X-GitHub-Event: issues", body, strlen(body));
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        /* a changed body, a wrong signature, none at all: 401 */
        r = request(srv, "POST", "/v1/hooks/github", hdr, "X-GitHub-Event: push", "{}", 2);
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        sig[10] = sig[10] == '0' ? '1' : '0';
        snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s", sig);
        r = request(srv, "POST", "/v1/hooks/github", hdr, "X-GitHub-Event: push", body, strlen(body));
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        r = request(srv, "POST", "/v1/hooks/github", "X-GitHub-Event: push", NULL, body, strlen(body));
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        /* the bearer token is not a way in */
        r = request(srv, "POST", "/v1/hooks/github", "Authorization: Bearer " TOKEN, "X-GitHub-Event: push",
                    body, strlen(body));
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        ck_assert_uint_eq(srv->stub.n_triggers, 1);
        server_stop(srv);
}
END_TEST

static void tweak_ref(Server *s) {
        s->webhook_ref = "refs/heads/main";
}

START_TEST(test_webhook_ref) {
        Server *srv = server_start(NULL, tweak_ref);
        const char *other = "{\"ref\":\"refs/heads/feature\",\"after\":\"abc\"}",
                   *main_ = "{\"ref\":\"refs/heads/main\",\"after\":\"def\"}", *noref = "{\"zen\":\"x\"}";
        char sig[72], hdr[128];
        Reply r;

        /* A push to another ref: 200, ignored, nothing triggered. */
        ck_assert_int_eq(httpd_webhook_signature(HOOK_SECRET, strlen(HOOK_SECRET), other, strlen(other), sig), 0);
        snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s", sig);
        r = request(srv, "POST", "/v1/hooks/github", hdr, "X-GitHub-Event: push", other, strlen(other));
        ck_assert_int_eq(r.status, 200);
        ck_assert_ptr_nonnull(strstr(r.body, "\"ignored\":true"));
        ck_assert_ptr_nonnull(strstr(r.body, "refs/heads/feature"));
        reply_done(&r);
        ck_assert_uint_eq(srv->stub.n_triggers, 0);
        /* A push without a ref (form-encoded payload) cannot be matched: 400. */
        ck_assert_int_eq(httpd_webhook_signature(HOOK_SECRET, strlen(HOOK_SECRET), noref, strlen(noref), sig), 0);
        snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s", sig);
        r = request(srv, "POST", "/v1/hooks/github", hdr, "X-GitHub-Event: push", noref, strlen(noref));
        ck_assert_int_eq(r.status, 400);
        reply_done(&r);
        /* The signature is checked first: a bad one is 401 whatever the ref. */
        r = request(srv, "POST", "/v1/hooks/github", hdr, "X-GitHub-Event: push", main_, strlen(main_));
        ck_assert_int_eq(r.status, 401);
        reply_done(&r);
        ck_assert_uint_eq(srv->stub.n_triggers, 0);
        /* The configured ref: triggered. */
        ck_assert_int_eq(httpd_webhook_signature(HOOK_SECRET, strlen(HOOK_SECRET), main_, strlen(main_), sig), 0);
        snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s", sig);
        r = request(srv, "POST", "/v1/hooks/github", hdr, "X-GitHub-Event: push", main_, strlen(main_));
        ck_assert_int_eq(r.status, 202);
        reply_done(&r);
        ck_assert_uint_eq(srv->stub.n_triggers, 1);
        server_stop(srv);
}
END_TEST

/* No query parameter changes what a webhook run may do: the query is not
 * covered by the signature, so a replayed delivery with ?force=1&wait=5
 * only queues an ordinary reconcile and is answered at once. */
START_TEST(test_webhook_replay_query) {
        Server *srv = server_start(NULL, NULL);
        const char *body = "{\"ref\":\"refs/heads/main\"}";
        char sig[72], hdr[128];
        Reply r;

        ck_assert_int_eq(httpd_webhook_signature(HOOK_SECRET, strlen(HOOK_SECRET), body, strlen(body), sig), 0);
        snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s", sig);
        r = request(srv, "POST", "/v1/hooks/github?force=1&wait=5", hdr, "X-GitHub-Event: push", body, strlen(body));
        ck_assert_int_eq(r.status, 202);
        ck_assert(r.seconds < 1.0);
        reply_done(&r);
        r = request(srv, "POST", "/v1/hooks/github?force=true", hdr, "X-GitHub-Event: push", body, strlen(body));
        ck_assert_int_eq(r.status, 202);
        reply_done(&r);
        ck_assert_uint_eq(srv->stub.n_triggers, 2);
        ck_assert_uint_eq(srv->stub.n_forced, 0);
        /* the bearer-token API keeps ?force */
        r = post(srv, "/v1/reconcile?force=1", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 202);
        reply_done(&r);
        ck_assert_uint_eq(srv->stub.n_forced, 1);
        server_stop(srv);
}
END_TEST

/* A strict reader of the Prometheus text format 0.0.4: every family has
 * HELP then TYPE before its samples, names and labels are well formed,
 * label values use only \\ \" \n escapes, values parse, no family repeats,
 * histograms end with an le="+Inf" bucket equal to _count. Returns NULL
 * if fine, else a static message. */
static const char *prom_check(const char *text, unsigned *ret_samples) {
        char family[128] = "", type[32] = "";
        char seen[64][128];
        size_t n_seen = 0;
        unsigned samples = 0;
        double inf_bucket = NAN;

        for (const char *line = text; *line;) {
                const char *eol = strchr(line, '\n');
                char l[1024];
                size_t len;

                if (!eol)
                        return "last line has no newline";
                len = (size_t) (eol - line);
                if (len >= sizeof(l))
                        return "line too long";
                memcpy(l, line, len);
                l[len] = 0;
                line = eol + 1;

                if (startswith(l, "# HELP ")) {
                        char name[128];

                        if (sscanf(l + 7, "%127s", name) != 1)
                                return "bad HELP";
                        for (size_t i = 0; i < n_seen; i++)
                                if (streq(seen[i], name))
                                        return "family repeated";
                        if (n_seen < ELEMENTSOF(seen))
                                snprintf(seen[n_seen++], sizeof(seen[0]), "%s", name);
                        snprintf(family, sizeof(family), "%s", name);
                        type[0] = 0;
                        continue;
                }
                if (startswith(l, "# TYPE ")) {
                        char name[128], t[32];

                        if (sscanf(l + 7, "%127s %31s", name, t) != 2 || !streq(name, family))
                                return "TYPE without matching HELP";
                        if (!streq(t, "counter") && !streq(t, "gauge") && !streq(t, "histogram") &&
                            !streq(t, "summary") && !streq(t, "untyped"))
                                return "bad TYPE";
                        snprintf(type, sizeof(type), "%s", t);
                        continue;
                }
                if (l[0] == '#' || l[0] == 0)
                        return "stray comment or empty line";

                /* sample: name{labels} value */
                {
                        const char *p = l;
                        char name[128];
                        size_t k = 0;
                        char *end;
                        double v;

                        if (!type[0])
                                return "sample before TYPE";
                        if (!(isalpha((unsigned char) *p) || *p == '_' || *p == ':'))
                                return "bad metric name";
                        while (isalnum((unsigned char) *p) || *p == '_' || *p == ':')
                                name[k++] = *p++;
                        name[k] = 0;
                        if (!startswith(name, family))
                                return "sample outside its family";
                        if (!streq(name, family) &&
                            !(streq(type, "histogram") &&
                              (streq(name + strlen(family), "_bucket") || streq(name + strlen(family), "_sum") ||
                               streq(name + strlen(family), "_count"))))
                                return "sample name does not match family";
                        if (*p == '{') {
                                p++;
                                while (*p != '}') {
                                        bool is_le;

                                        if (!(isalpha((unsigned char) *p) || *p == '_'))
                                                return "bad label name";
                                        is_le = startswith(p, "le=");
                                        while (isalnum((unsigned char) *p) || *p == '_')
                                                p++;
                                        if (*p++ != '=' || *p++ != '"')
                                                return "bad label syntax";
                                        if (is_le && startswith(p, "+Inf\""))
                                                inf_bucket = 0;  /* marks: this sample is +Inf */
                                        while (*p != '"') {
                                                if (!*p)
                                                        return "unterminated label value";
                                                if (*p == '\\') {
                                                        p++;
                                                        if (*p != '\\' && *p != '"' && *p != 'n')
                                                                return "bad escape";
                                                }
                                                p++;
                                        }
                                        p++;
                                        if (*p == ',')
                                                p++;
                                        else if (*p != '}')
                                                return "bad label separator";
                                }
                                p++;
                        }
                        if (*p++ != ' ')
                                return "no space before value";
                        if (streq(p, "+Inf") || streq(p, "-Inf") || streq(p, "NaN"))
                                v = streq(p, "NaN") ? NAN : INFINITY;
                        else {
                                v = strtod(p, &end);
                                if (end == p || *end)
                                        return "bad value";
                        }
                        if (streq(type, "histogram") && endswith(name, "_bucket") && inf_bucket == 0)
                                inf_bucket = v;
                        if (streq(type, "histogram") && endswith(name, "_count") && !(inf_bucket == v))
                                return "histogram _count differs from the +Inf bucket";
                        samples++;
                }
        }
        *ret_samples = samples;
        return NULL;
}

START_TEST(test_metrics_parse) {
        Server *srv = server_start(NULL, NULL);
        Reply r = get(srv, "/metrics");
        unsigned n = 0;
        const char *err;

        ck_assert_int_eq(r.status, 200);
        err = prom_check(r.body, &n);
        ck_assert_msg(!err, "%s in:\n%s", err, r.body);
        ck_assert_uint_eq(n, 7);
        ck_assert_ptr_nonnull(strstr(r.body, "digest=\"ab\\\"c\\\\d\\ne\""));
        ck_assert_ptr_nonnull(strstr(r.body, "bindery_run_duration_seconds_sum 1.25\n"));
        reply_done(&r);

        /* the checker itself rejects what it should */
        ck_assert_ptr_nonnull(prom_check("x 1\n", &n));
        ck_assert_ptr_nonnull(prom_check("# HELP x h\n# TYPE x gauge\nx{a=\"\\q\"} 1\n", &n));
        ck_assert_ptr_nonnull(prom_check("# HELP x h\n# TYPE x gauge\nx one\n", &n));
        ck_assert_ptr_nonnull(prom_check("# HELP x h\n# TYPE x gauge\ny 1\n", &n));
        server_stop(srv);
}
END_TEST

START_TEST(test_shutdown_answers_waiters) {
        /* A waiting request is answered when the server goes away. */
        Server *srv = server_start(NULL, slow_failing);
        Reply r;
        pthread_t t;

        (void) t;
        r = post(srv, "/v1/reconcile?wait=0", "Authorization: Bearer " TOKEN);
        ck_assert_int_eq(r.status, 504);
        reply_done(&r);
        server_stop(srv);
}
END_TEST

static void with_ipv6(Server *s) {
        s->ipv6 = true;
}

static bool have_ipv6_loopback(void) {
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok = fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;

        if (fd >= 0)
                close(fd);
        return ok;
}

START_TEST(test_two_listeners_ipv6) {
        Server *srv;
        CURL *c;
        char url[128];
        long status = 0;

        if (!have_ipv6_loopback()) {
                fprintf(stderr, "SKIP test_two_listeners_ipv6: no IPv6 loopback\n");
                return;
        }
        srv = server_start(NULL, with_ipv6);
        ck_assert_uint_gt(srv->port2, 0);
        c = curl_easy_init();
        snprintf(url, sizeof(url), "http://[::1]:%u/healthz", srv->port2);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        {
                FILE *devnull = fopen("/dev/null", "w");

                curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
                curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
                ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
                fclose(devnull);
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        ck_assert_int_eq(status, 200);
        curl_easy_cleanup(c);
        server_stop(srv);
}
END_TEST

static Suite *httpd_suite(void) {
        Suite *s = suite_create("httpd");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_routes);
        tcase_add_test(tc, test_status_etag);
        tcase_add_test(tc, test_readyz_not_ready);
        tcase_add_test(tc, test_auth);
        tcase_add_test(tc, test_auth_reads);
        tcase_add_test(tc, test_no_token_configured);
        tcase_add_test(tc, test_auth_constant_time);
        tcase_add_test(tc, test_limits_body);
        tcase_add_test(tc, test_limits_header_memory);
        tcase_add_test(tc, test_limits_connections_and_timeout);
        tcase_add_test(tc, test_idle_connections_do_not_block);
        tcase_add_test(tc, test_wait);
        tcase_add_test(tc, test_expect);
        tcase_add_test(tc, test_wait_timeout_and_failure);
        tcase_add_test(tc, test_plan);
        tcase_add_test(tc, test_plan_busy);
        tcase_add_test(tc, test_ha_redirect);
        tcase_add_test(tc, test_ha_relay);
        tcase_add_test(tc, test_ha_no_leader);
        tcase_add_test(tc, test_webhook);
        tcase_add_test(tc, test_webhook_ref);
        tcase_add_test(tc, test_webhook_replay_query);
        tcase_add_test(tc, test_request_deadline_slowloris);
        tcase_add_test(tc, test_per_address_cap_spares_waiters);
        tcase_add_test(tc, test_chunked_body_413);
        tcase_add_test(tc, test_metrics_parse);
        tcase_add_test(tc, test_shutdown_answers_waiters);
        tcase_add_test(tc, test_two_listeners_ipv6);
        suite_add_tcase(s, tc);
        return s;
}

/* "test-httpd --check-metrics FILE": runs the strict parser on a file
 * (tests/daemon/e2e.sh uses it on the real daemon's /metrics when
 * promtool is not available). */
static int check_metrics_file(const char *path) {
        _cleanup_free_ char *text = NULL;
        unsigned n = 0;
        const char *err;
        size_t size;

        if (read_full_file(path, 4 * 1024 * 1024, &text, &size) < 0) {
                fprintf(stderr, "cannot read %s\n", path);
                return EXIT_FAILURE;
        }
        err = prom_check(text, &n);
        if (err) {
                fprintf(stderr, "%s: %s\n", path, err);
                return EXIT_FAILURE;
        }
        printf("%s: %u samples, well formed\n", path, n);
        return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
        SRunner *sr;
        int failed;

        if (argc == 3 && streq(argv[1], "--check-metrics"))
                return check_metrics_file(argv[2]);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        sr = srunner_create(httpd_suite());
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        curl_global_cleanup();
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
