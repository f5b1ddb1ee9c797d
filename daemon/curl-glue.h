/* curl-glue.h: libcurl's multi interface driven by an sd-event loop.
 *
 * The multi handle's socket callback becomes one sd-event io source per
 * curl socket, its timer callback one oneshot CLOCK_MONOTONIC timer with
 * an accuracy of 1 µs (0 would mean 250 ms of slack). curl is only ever
 * called back from those sources, never from inside its own socket or
 * timer callbacks. Completed transfers are collected with
 * curl_multi_info_read() and handed to the per-transfer done callback,
 * after the easy handle has been removed from the multi handle.
 *
 * Single-threaded: every function must be called from the thread running
 * the event loop. Non-logging (debug at most), negative errno.
 */
#pragma once

#include <stdbool.h>

#include <curl/curl.h>
#include <systemd/sd-event.h>

#include "cleanup.h"

typedef struct CurlGlue CurlGlue;

/* Called once per transfer added with curl_glue_add(), when it finishes
 * (result is its CURLcode). The easy handle has already been removed from
 * the multi handle; the callback owns it again and may clean it up, reuse
 * it, or add new transfers. It is not called for transfers removed with
 * curl_glue_remove() or dropped by curl_glue_free(). */
typedef void (*curl_glue_done_t)(CurlGlue *g, CURL *easy, CURLcode result, void *userdata);

/* Creates the glue on event (a reference is taken). Sources are attached
 * at priority SD_EVENT_PRIORITY_NORMAL. Returns 0, -ENOMEM, or a negative
 * errno from sd-event. */
int curl_glue_new(CurlGlue **ret, sd_event *event);

/* Removes every transfer still running (without calling its done
 * callback; the easy handles are left to their owners, who must not use
 * them with this glue again), releases the event sources and the multi
 * handle. Accepts NULL; returns NULL. Must not be called from inside a
 * done callback of the same glue. */
CurlGlue *curl_glue_free(CurlGlue *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(CurlGlue *, curl_glue_free);

/* Starts a transfer. The glue sets CURLOPT_PRIVATE on easy for its own
 * bookkeeping: callers must not use CURLOPT_PRIVATE. The caller keeps
 * ownership of easy, but must not clean it up while it is added (remove it
 * first). done is called exactly once unless the transfer is removed.
 * Returns 0, -ENOMEM, or -EIO if curl refuses the handle. */
int curl_glue_add(CurlGlue *g, CURL *easy, curl_glue_done_t done, void *userdata);

/* Stops a running transfer without calling its done callback. Returns 0,
 * or -ENOENT if easy is not running in this glue. */
int curl_glue_remove(CurlGlue *g, CURL *easy);

/* An answer read into memory, bounded: curl_body_append() adds n bytes
 * (the data stays NUL-terminated) and returns n, or 0 (curl then fails the
 * transfer with CURLE_WRITE_ERROR) when it would pass max (too_big is set)
 * or memory runs out. For CURLOPT_WRITEFUNCTION callbacks. */
typedef struct CurlBody {
        char *data;
        size_t size;
        bool too_big;
} CurlBody;

size_t curl_body_append(CurlBody *b, const char *p, size_t n, size_t max);
/* Frees the data; the body is empty again. */
void curl_body_done(CurlBody *b);
