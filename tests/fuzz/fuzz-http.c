/* fuzz-http.c: libFuzzer target for the HTTP request path: bytes from a
 * client go through libmicrohttpd into httpd.c (routing, authentication,
 * body limits, chunked bodies, the webhook's HMAC, the connection tracker
 * and its eviction) with a stub backend, on a real sd-event loop. Each
 * input is written into one end of a socketpair whose other end is handed
 * to the server (httpd_add_connection), then the write side is shut and
 * the loop turns until the server closes. Any crash, leak or sanitizer
 * report is a bug. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"
#include "log.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "fuzz-token-0123456789"
#define HOOK "fuzz-hook-secret"

static sd_event *event;
static Httpd *httpd;

static json_object *b_status(void *u) {
        return json_object_new_object();
}
static json_object *b_runs(void *u) {
        return json_object_new_array();
}
static json_object *b_run(void *u, const char *id) {
        json_object *j;

        if (!streq(id, "r1"))
                return NULL;
        j = json_object_new_object();
        json_object_object_add(j, "id", json_object_new_string("r1"));
        json_object_object_add(j, "state", json_object_new_string("done"));
        json_object_object_add(j, "result", json_object_new_string("ok"));
        return j;
}
static int b_trigger(void *u, const char *reason, bool force, char **ret) {
        *ret = strdup("r1");
        return *ret ? 0 : -ENOMEM;
}
static int b_plan(void *u, json_object **ret, unsigned *retry) {
        *retry = 3;
        return -EBUSY;
}
static char *b_metrics(void *u) {
        return strdup("# HELP x x\n# TYPE x gauge\nx 1\n");
}
static bool b_ready(void *u) {
        return true;
}

static const HttpdBackend backend = {
        .status = b_status, .runs = b_runs, .run = b_run, .trigger = b_trigger,
        .plan = b_plan, .metrics = b_metrics, .ready = b_ready,
};

static void setup(void) {
        char *listen[] = { (char *) "127.0.0.1:0", NULL };
        HttpdSettings s = { .listen = listen, .request_deadline_sec = 1, .connection_timeout_sec = 1 };

        log_set_max_level(LOG_CRIT);
        if (sd_event_new(&event) < 0 || httpd_new(&httpd, event, &s, &backend, NULL) < 0 ||
            httpd_set_auth(httpd, TOKEN, strlen(TOKEN), false, HOOK, strlen(HOOK)) < 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        int sv[2];
        size_t off = 0;
        bool closed = false;
        char buf[4096];

        if (size > 64 * 1024)
                return 0;
        if (!event)
                setup();
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        if (httpd_add_connection(httpd, sv[0]) < 0) {
                close(sv[1]);
                return 0;
        }
        /* Write what fits, turn the loop, repeat; then close our write
         * side and read until the server closes, at most 20 more turns
         * (a request MHD still waits for is then cut by our close). */
        for (unsigned i = 0, after = 0; i < 2000 && !closed && after < 20; i++) {
                ssize_t k;

                if (off == size)
                        after++;
                if (off < size) {
                        k = write(sv[1], data + off, size - off);
                        if (k > 0)
                                off += (size_t) k;
                        else if (k < 0 && errno != EAGAIN)
                                off = size;
                        if (off == size)
                                (void) shutdown(sv[1], SHUT_WR);
                } else if (size == 0 && i == 0)
                        (void) shutdown(sv[1], SHUT_WR);
                (void) sd_event_run(event, 1000);  /* 1 ms */
                for (;;) {
                        k = read(sv[1], buf, sizeof(buf));
                        if (k > 0)
                                continue;
                        if (k == 0 || (k < 0 && errno != EAGAIN))
                                closed = true;
                        break;
                }
        }
        close(sv[1]);
        /* Let the server notice the close and free the connection. */
        for (unsigned i = 0; i < 4; i++)
                (void) sd_event_run(event, 0);
        return 0;
}
