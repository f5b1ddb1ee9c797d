/* curl-glue.c: libcurl multi on sd-event; see curl-glue.h.
 *
 * curl tells us, through CURLMOPT_SOCKETFUNCTION, which sockets to watch
 * and for what; we keep one io source per socket (stored with
 * curl_multi_assign) and hand readiness back with
 * curl_multi_socket_action(). Through CURLMOPT_TIMERFUNCTION it asks for
 * one timeout; we keep one oneshot timer. Neither callback calls back into
 * curl: a timeout of 0 ("now") arms the timer for the next loop
 * iteration. After every socket_action, finished transfers are collected
 * with curl_multi_info_read() and their done callbacks run.
 */
#include <assert.h>
#include <sys/queue.h>

#include <systemd/sd-event.h>

#include "curl-glue.h"
#include "util.h"

typedef struct GlueTransfer GlueTransfer;
typedef struct GlueSocket GlueSocket;

struct GlueTransfer {
        CurlGlue *glue;
        CURL *easy;
        curl_glue_done_t done;
        void *userdata;
        LIST_ENTRY(GlueTransfer) link;
};

/* One watched curl socket; curl_multi_assign() points curl at it. */
struct GlueSocket {
        sd_event_source *source;
        curl_socket_t fd;
        LIST_ENTRY(GlueSocket) link;
};

struct CurlGlue {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        LIST_HEAD(, GlueTransfer) transfers;
        LIST_HEAD(, GlueSocket) sockets;
};

static void glue_socket_free(CurlGlue *g, GlueSocket *gs) {
        LIST_REMOVE(gs, link);
        (void) sd_event_source_disable_unref(gs->source);
        free(gs);
}

static void glue_transfer_free(CurlGlue *g, GlueTransfer *t) {
        LIST_REMOVE(t, link);
        free(t);
}

static int glue_socket_action(CurlGlue *g, curl_socket_t fd, int ev_bitmask);

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CurlGlue *g = userdata;
        int action = 0;

        if (revents & (EPOLLIN | EPOLLPRI | EPOLLHUP))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & EPOLLERR)
                action |= CURL_CSELECT_ERR;
        (void) glue_socket_action(g, fd, action);
        return 0;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        CurlGlue *g = userp;
        GlueSocket *gs = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (gs) {
                        (void) curl_multi_assign(g->multi, fd, NULL);
                        glue_socket_free(g, gs);
                }
                return 0;
        }

        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (gs) {
                r = sd_event_source_set_io_events(gs->source, events);
                if (r < 0)
                        return -1;
                r = sd_event_source_set_enabled(gs->source, SD_EVENT_ON);
                if (r < 0)
                        return -1;
                return 0;
        }

        gs = calloc(1, sizeof(GlueSocket));
        if (!gs)
                return -1;
        gs->fd = fd;
        r = sd_event_add_io(g->event, &gs->source, fd, events, on_io, g);
        if (r < 0) {
                free(gs);
                return -1;
        }
        (void) sd_event_source_set_description(gs->source, "curl-io");
        LIST_INSERT_HEAD(&g->sockets, gs, link);
        if (curl_multi_assign(g->multi, fd, gs) != CURLM_OK) {
                glue_socket_free(g, gs);
                return -1;
        }
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        CurlGlue *g = userdata;

        (void) glue_socket_action(g, CURL_SOCKET_TIMEOUT, 0);
        return 0;
}

static int on_timer_update(CURLM *multi, long timeout_ms, void *userp) {
        CurlGlue *g = userp;
        uint64_t usec;
        int r;

        if (timeout_ms < 0) {
                if (g->timer)
                        (void) sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
                return 0;
        }
        usec = (uint64_t) timeout_ms * USEC_PER_MSEC;

        if (!g->timer) {
                /* Accuracy 1 µs: 0 would mean the default 250 ms slack. */
                r = sd_event_add_time_relative(g->event, &g->timer, CLOCK_MONOTONIC, usec, 1,
                                               on_timer, g);
                if (r < 0)
                        return -1;
                (void) sd_event_source_set_description(g->timer, "curl-timer");
                return 0;
        }
        r = sd_event_source_set_time_relative(g->timer, usec);
        if (r < 0)
                return -1;
        r = sd_event_source_set_enabled(g->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                return -1;
        return 0;
}

/* Drives curl and dispatches completions. Called only from our own event
 * sources, never from inside a curl callback. */
static int glue_socket_action(CurlGlue *g, curl_socket_t fd, int ev_bitmask) {
        int running = 0;
        CURLMsg *msg;
        int left;

        if (curl_multi_socket_action(g->multi, fd, ev_bitmask, &running) != CURLM_OK)
                return -EIO;

        while ((msg = curl_multi_info_read(g->multi, &left))) {
                GlueTransfer *t = NULL;
                curl_glue_done_t done;
                void *userdata;
                CURL *easy;
                CURLcode result;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                easy = msg->easy_handle;
                result = msg->data.result;
                if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &t) != CURLE_OK || !t)
                        continue;
                /* msg is invalid after remove_handle; everything needed
                 * has been copied out. */
                done = t->done;
                userdata = t->userdata;
                (void) curl_multi_remove_handle(g->multi, easy);
                (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
                glue_transfer_free(g, t);
                if (done)
                        done(g, easy, result, userdata);
        }
        return 0;
}

int curl_glue_new(CurlGlue **ret, sd_event *event) {
        CurlGlue *g;

        assert(ret && event);
        g = calloc(1, sizeof(CurlGlue));
        if (!g)
                return -ENOMEM;
        g->event = sd_event_ref(event);
        g->multi = curl_multi_init();
        if (!g->multi) {
                curl_glue_free(g);
                return -ENOMEM;
        }
        if (curl_multi_setopt(g->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_SOCKETDATA, g) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_TIMERFUNCTION, on_timer_update) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_TIMERDATA, g) != CURLM_OK) {
                curl_glue_free(g);
                return -EIO;
        }
        *ret = g;
        return 0;
}

CurlGlue *curl_glue_free(CurlGlue *g) {
        if (!g)
                return NULL;
        while (!LIST_EMPTY(&g->transfers))
                (void) curl_glue_remove(g, LIST_FIRST(&g->transfers)->easy);
        if (g->multi)
                (void) curl_multi_cleanup(g->multi);
        /* Normally released through CURL_POLL_REMOVE; whatever curl did
         * not report goes here. */
        while (!LIST_EMPTY(&g->sockets))
                glue_socket_free(g, LIST_FIRST(&g->sockets));
        if (g->timer)
                (void) sd_event_source_disable_unref(g->timer);
        sd_event_unref(g->event);
        free(g);
        return NULL;
}

int curl_glue_add(CurlGlue *g, CURL *easy, curl_glue_done_t done, void *userdata) {
        GlueTransfer *t;

        assert(g && easy);
        t = calloc(1, sizeof(GlueTransfer));
        if (!t)
                return -ENOMEM;
        *t = (GlueTransfer) { .glue = g, .easy = easy, .done = done, .userdata = userdata };
        LIST_INSERT_HEAD(&g->transfers, t, link);
        if (curl_easy_setopt(easy, CURLOPT_PRIVATE, t) != CURLE_OK) {
                glue_transfer_free(g, t);
                return -EIO;
        }
        if (curl_multi_add_handle(g->multi, easy) != CURLM_OK) {
                (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
                glue_transfer_free(g, t);
                return -EIO;
        }
        return 0;
}

int curl_glue_remove(CurlGlue *g, CURL *easy) {
        GlueTransfer *t = NULL;

        assert(g && easy);
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &t) != CURLE_OK || !t ||
            t->glue != g)
                return -ENOENT;
        (void) curl_multi_remove_handle(g->multi, easy);
        (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        glue_transfer_free(g, t);
        return 0;
}

size_t curl_body_append(CurlBody *b, const char *p, size_t n, size_t max) {
        char *d;

        if (b->size + n > max) {
                b->too_big = true;
                return 0;
        }
        d = realloc(b->data, b->size + n + 1);
        if (!d)
                return 0;
        memcpy(d + b->size, p, n);
        b->data = d;
        b->size += n;
        b->data[b->size] = 0;
        return n;
}

void curl_body_done(CurlBody *b) {
        b->data = mfree(b->data);
        b->size = 0;
        b->too_big = false;
}
