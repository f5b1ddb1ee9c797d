/* cfapi-decode.h: the pure half of the Cloudflare client — decoding the
 * v4 response envelope, mapping Cloudflare errors to errno, pagination
 * arithmetic and response header parsing. No I/O, no logging, no clock
 * (times are passed in), so it is tested on recorded JSON.
 *
 * Decoding is tolerant: unknown fields are ignored, `messages` may hold
 * objects or plain strings, `errors` entries may lack a code or message.
 * It is strict about the body itself: a non-JSON, truncated or non-object
 * body is -EBADMSG, never a crash and never "success".
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "cleanup.h"

/* One Cloudflare error (or one synthesised from HTTP/transport failure,
 * code 0). */
typedef struct CfError {
        long http_status;           /* 0 if no HTTP answer */
        int code;                   /* Cloudflare's code; 0 if none */
        char *message;              /* never NULL once decoded ("" if absent) */
} CfError;

void cf_errors_free(CfError *e, size_t n);

/* A decoded envelope. Owns references to the JSON it points into. */
typedef struct CfEnvelope {
        long http_status;
        bool success;               /* the envelope's flag; when it is missing or not a
                                     * boolean: a 2xx answer without errors */
        json_object *root;          /* the whole document */
        json_object *result;        /* borrowed from root; NULL if absent or null */
        json_object *result_info;   /* borrowed from root; NULL if absent */
        json_object *messages;      /* borrowed from root; NULL if absent */
        CfError *errors;
        size_t n_errors;
        /* cf_envelope_decode_each: the list went to the callback, item
         * by item (result then lacks it), and how many items. */
        bool streamed;
        size_t n_streamed;
} CfEnvelope;

CfEnvelope *cf_envelope_free(CfEnvelope *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(CfEnvelope *, cf_envelope_free);

/* Decodes body (size bytes, need not be NUL-terminated) received with
 * http_status. Returns 0 and *ret on a well-formed envelope, whatever its
 * success flag; -EBADMSG if body is not one complete JSON object (garbage,
 * truncated, trailing bytes, an array, too deep); -EINVAL on a NULL body;
 * -ENOMEM. */
int cf_envelope_decode(long http_status, const char *body, size_t size, CfEnvelope **ret);

/* Takes one item of a list (borrowed); a negative errno stops decoding. */
typedef int (*cf_item_t)(json_object *item, void *userdata);

/* Like cf_envelope_decode, but a list is never a whole tree in memory:
 * when result is an array (with items_key: when result is an object and
 * result[items_key] an array), each element is handed to each as soon as
 * it is parsed and freed after; e->streamed is then true, e->n_streamed
 * counts them and the envelope's result lacks them (with items_key, the
 * result object keeps its other members). Otherwise the result is kept
 * as cf_envelope_decode keeps it. Items handed over before an error
 * (-EBADMSG for a body that turns out truncated or malformed; the error
 * each returned) are not taken back: the caller fails the whole list. */
int cf_envelope_decode_each(long http_status, const char *body, size_t size, const char *items_key,
                            cf_item_t each, void *userdata, CfEnvelope **ret);

/* The same list decoded as its bytes arrive, so a 10,000-script answer
 * never sits whole in memory: the caller appends each chunk to one
 * buffer and calls cf_list_feed(), which hands every element of the list
 * that is complete by then to each and cuts it (with its comma) out of
 * the buffer. What stays is the envelope with what has not been handed
 * over yet: at the end, cf_envelope_decode_each() on it hands over the
 * rest (normally nothing: the list reads "[]") and decodes the envelope,
 * exactly as it would have decoded the whole body. Only a list found
 * where cf_envelope_decode_each() would stream it is fed early (the first
 * member named "result", with items_key its first member of that name,
 * keys as written without escapes); anything else, or a document that
 * turns out malformed around the list, is left in the buffer for that
 * final decode to judge. */
typedef struct CfListFeed CfListFeed;

/* items_key is copied. Returns NULL on OOM. */
CfListFeed *cf_list_feed_new(const char *items_key, cf_item_t each, void *userdata);
CfListFeed *cf_list_feed_free(CfListFeed *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(CfListFeed *, cf_list_feed_free);

/* Scans buf from where the last call stopped up to *size (the bytes
 * before are the ones the last call left, unchanged). Returns 0 with
 * *size reduced by what was cut out (buf[*size] is not written), or the
 * error each returned, -EBADMSG for an element that is not one JSON
 * value, -ENOMEM; after an error the feed must not be used again. */
int cf_list_feed(CfListFeed *f, char *buf, size_t *size);

/* How many elements went to each so far. */
size_t cf_list_feed_count(const CfListFeed *f) _pure_;

/* The errno for a finished exchange: 0 when http_status is 2xx and
 * success is true. 429 → -EBUSY and 5xx → -EAGAIN whatever the body's
 * codes (codes are ambiguous; a 503 must never read as "not found").
 * Otherwise, first by Cloudflare code, then by status:
 *   codes 10007, 10013, 10006, 10056, 10090, 7404, 7003 → -ENOENT;
 *   10014, 10004, 7502, 11004 → -EEXIST; 10000, 10023, 9109 → -EACCES;
 *   971 → -EBUSY;
 *   400 → -EINVAL, 401/403 → -EACCES, 404 → -ENOENT, 405 → -EOPNOTSUPP,
 *   408 → -ETIMEDOUT, 409 → -EEXIST, 412 → -ESTALE, 413 → -EFBIG,
 *   429 → -EBUSY, 5xx → -EAGAIN, other 4xx → -EINVAL,
 *   2xx with success false → -EPROTO, anything else → -EPROTO. */
int cf_errno_from_status(long http_status, bool success, const CfError *errors, size_t n_errors);

/* Builds a one-line summary: "HTTP 404: [10007] script not found; [7003] ..."
 * (at most 512 bytes, control characters replaced). Caller frees. */
char *cf_errors_summary(long http_status, const CfError *errors, size_t n_errors);

/* Whether a status is worth retrying: 408, 429, 5xx. (409 is not: for a
 * reconciler a conflict means "exists", not "try again".) */
bool cf_status_is_retryable(long http_status) _pure_;

/* The items of a list page: result itself when it is an array, or
 * result[items_key] (R2: "buckets") when items_key is given and result is
 * an object. Borrowed. Returns 0, or -EBADMSG when the shape differs. A
 * NULL result is an empty page (*ret = NULL, 0). */
int cf_result_items(json_object *result, const char *items_key, json_object **ret);

/* Page-number pagination: after receiving page `page` (1-based) with
 * n_items items, returns 1 if another page must be fetched, 0 if done.
 * More pages while page*per_page < total_count (per_page and total_count
 * from result_info; per_page falls back to requested_per_page); an empty
 * page or missing total_count ends it; total_pages is honoured when
 * present. */
int cf_page_has_more(json_object *result_info, unsigned page, unsigned requested_per_page,
                     size_t n_items);

/* Cursor pagination: the next cursor from result_info.cursor (or
 * result_info.cursors.after), or NULL when missing/empty (done). Borrowed. */
const char *cf_cursor_next(json_object *result_info);

/* Parses the `Ratelimit` header ("default";r=<remaining>;t=<secs>; other
 * list members and parameters are ignored). Returns 0 with both values,
 * -EINVAL if r or t is missing or malformed. */
int cf_ratelimit_parse(const char *value, uint64_t *ret_remaining, uint64_t *ret_reset_sec);

/* Parses `Retry-After`: delay-seconds, or an HTTP date (IMF-fixdate, RFC
 * 850 and asctime forms) converted with now_realtime_usec. A date in the
 * past is 0. Capped at 1 day. Returns 0 or -EINVAL. */
int cf_retry_after_parse(const char *value, uint64_t now_realtime_usec, uint64_t *ret_delay_usec);
