/* cfapi-decode.c: envelope decoding, error mapping, pagination and header
 * parsing for the Cloudflare client; see cfapi-decode.h. Pure. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cfapi-decode.h"
#include "util.h"

#define DECODE_MAX_DEPTH 64
#define SUMMARY_MAX 512
#define RETRY_AFTER_MAX_SEC (24U * 3600U)

void cf_errors_free(CfError *e, size_t n) {
        if (!e)
                return;
        for (size_t i = 0; i < n; i++)
                free(e[i].message);
        free(e);
}

CfEnvelope *cf_envelope_free(CfEnvelope *e) {
        if (!e)
                return NULL;
        cf_errors_free(e->errors, e->n_errors);
        if (e->root)
                json_object_put(e->root);
        free(e);
        return NULL;
}

static bool status_is_2xx(long s) {
        return s >= 200 && s < 300;
}

/* errors[] entries are objects {code, message, ...}; tolerate plain
 * strings and entries missing either field. */
static int decode_errors(long http_status, json_object *arr, CfError **ret, size_t *ret_n) {
        CfError *errors;
        size_t n, k = 0;

        *ret = NULL;
        *ret_n = 0;
        if (!arr || !json_object_is_type(arr, json_type_array))
                return 0;
        n = json_object_array_length(arr);
        if (n == 0)
                return 0;
        if (n > 64)
                n = 64;
        errors = calloc(n, sizeof(CfError));
        if (!errors)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *item = json_object_array_get_idx(arr, i), *v;
                const char *msg = "";
                int code = 0;

                if (item && json_object_is_type(item, json_type_object)) {
                        if (json_object_object_get_ex(item, "code", &v) &&
                            (json_object_is_type(v, json_type_int) ||
                             json_object_is_type(v, json_type_string)))
                                code = json_object_get_int(v);
                        if (json_object_object_get_ex(item, "message", &v) &&
                            json_object_is_type(v, json_type_string))
                                msg = json_object_get_string(v);
                } else if (item && json_object_is_type(item, json_type_string))
                        msg = json_object_get_string(item);
                else
                        continue;

                errors[k].http_status = http_status;
                errors[k].code = code;
                errors[k].message = strdup(msg);
                if (!errors[k].message) {
                        cf_errors_free(errors, k);
                        return -ENOMEM;
                }
                k++;
        }
        if (k == 0) {
                free(errors);
                return 0;
        }
        *ret = errors;
        *ret_n = k;
        return 0;
}

/* Fills an envelope's fields from its root object (taken over). */
static int envelope_from_root(long http_status, json_object *root, CfEnvelope **ret) {
        _cleanup_(cf_envelope_freep) CfEnvelope *e = NULL;
        json_object *v;
        int r;

        e = calloc(1, sizeof(CfEnvelope));
        if (!e) {
                json_object_put(root);
                return -ENOMEM;
        }
        e->root = root;
        e->http_status = http_status;

        if (json_object_object_get_ex(root, "errors", &v)) {
                r = decode_errors(http_status, v, &e->errors, &e->n_errors);
                if (r < 0)
                        return r;
        }
        if (json_object_object_get_ex(root, "success", &v) &&
            json_object_is_type(v, json_type_boolean))
                e->success = json_object_get_boolean(v);
        else
                e->success = status_is_2xx(http_status) && e->n_errors == 0;
        if (json_object_object_get_ex(root, "result", &v) && v)
                e->result = v;
        if (json_object_object_get_ex(root, "result_info", &v) && v &&
            json_object_is_type(v, json_type_object))
                e->result_info = v;
        if (json_object_object_get_ex(root, "messages", &v) && v)
                e->messages = v;

        *ret = TAKE_PTR(e);
        return 0;
}

static bool only_space(const char *s, size_t from, size_t size) {
        for (; from < size; from++)
                if (!strchr(" \t\r\n", s[from]))
                        return false;
        return true;
}

int cf_envelope_decode(long http_status, const char *body, size_t size, CfEnvelope **ret) {
        json_tokener *tok;
        json_object *root;
        size_t end;

        if (!body || !ret)
                return -EINVAL;
        if (size > INT32_MAX)
                return -EFBIG;

        tok = json_tokener_new_ex(DECODE_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        root = json_tokener_parse_ex(tok, body, (int) size);
        if (!root || json_tokener_get_error(tok) != json_tokener_success) {
                /* json_tokener_continue: truncated; anything else: garbage. */
                json_tokener_free(tok);
                if (root)
                        json_object_put(root);
                return -EBADMSG;
        }
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!only_space(body, end, size) || !json_object_is_type(root, json_type_object)) {
                json_object_put(root);
                return -EBADMSG;
        }
        return envelope_from_root(http_status, root, ret);
}

/* ---- Streaming a list ----
 * json-c parses every value; only the punctuation between the members of
 * the envelope (and of the result object, with items_key) and between the
 * array's elements is stepped over here, so one element at a time is a
 * tree in memory, never the whole list. */

typedef struct Stream {
        json_tokener *tok;
        const char *s;
        size_t size, pos;
        cf_item_t each;
        void *userdata;
        size_t n;
} Stream;

static void stream_space(Stream *st) {
        while (st->pos < st->size && strchr(" \t\r\n", st->s[st->pos]) && st->s[st->pos])
                st->pos++;
}

/* Expects the character c (after whitespace) and steps over it. */
static bool stream_punct(Stream *st, char c) {
        stream_space(st);
        if (st->pos >= st->size || st->s[st->pos] != c)
                return false;
        st->pos++;
        return true;
}

static bool stream_peek(Stream *st, char c) {
        stream_space(st);
        return st->pos < st->size && st->s[st->pos] == c;
}

/* One whole JSON value (NULL for null) from the current position. */
static int stream_value(Stream *st, json_object **ret) {
        json_object *v;

        stream_space(st);
        if (st->pos >= st->size)
                return -EBADMSG;
        json_tokener_reset(st->tok);
        v = json_tokener_parse_ex(st->tok, st->s + st->pos, (int) (st->size - st->pos));
        if (json_tokener_get_error(st->tok) != json_tokener_success) {
                json_object_put(v);
                return -EBADMSG;
        }
        st->pos += json_tokener_get_parse_end(st->tok);
        *ret = v;
        return 0;
}

/* A key and its colon. */
static int stream_key(Stream *st, json_object **ret) {
        json_object *k = NULL;
        int r;

        r = stream_value(st, &k);
        if (r < 0)
                return r;
        if (!k || !json_object_is_type(k, json_type_string) || !stream_punct(st, ':')) {
                json_object_put(k);
                return -EBADMSG;
        }
        *ret = k;
        return 0;
}

/* The elements of an array, one by one, to each. */
static int stream_array(Stream *st) {
        int r;

        if (!stream_punct(st, '['))
                return -EBADMSG;
        if (stream_punct(st, ']'))
                return 0;
        for (;;) {
                json_object *v = NULL;

                r = stream_value(st, &v);
                if (r < 0)
                        return r;
                r = st->each(v, st->userdata);
                json_object_put(v);
                if (r < 0)
                        return r;
                st->n++;
                if (stream_punct(st, ']'))
                        return 0;
                if (!stream_punct(st, ','))
                        return -EBADMSG;
        }
}

/* An object's members into a new object, except the member named
 * stream_key when it is an array: its elements go to each (and
 * *ret_streamed says so). */
static int stream_object(Stream *st, const char *stream_key_name, const char *items_key, json_object **ret,
                         bool *ret_streamed) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if (!stream_punct(st, '{'))
                return -EBADMSG;
        if (!stream_punct(st, '}'))
                for (;;) {
                        _cleanup_(json_object_putp) json_object *k = NULL;
                        json_object *v = NULL;
                        const char *name;

                        r = stream_key(st, &k);
                        if (r < 0)
                                return r;
                        name = json_object_get_string(k);
                        if (streq(name, stream_key_name) && !*ret_streamed) {
                                if (!items_key && stream_peek(st, '[')) {
                                        r = stream_array(st);
                                        if (r < 0)
                                                return r;
                                        *ret_streamed = true;
                                } else if (items_key && stream_peek(st, '{')) {
                                        r = stream_object(st, items_key, NULL, &v, ret_streamed);
                                        if (r < 0)
                                                return r;
                                } else {
                                        r = stream_value(st, &v);
                                        if (r < 0)
                                                return r;
                                }
                        } else {
                                r = stream_value(st, &v);
                                if (r < 0)
                                        return r;
                        }
                        if (!*ret_streamed || !streq(name, stream_key_name) || v)
                                if (json_object_object_add(o, name, v) < 0) {
                                        json_object_put(v);
                                        return -ENOMEM;
                                }
                        if (stream_punct(st, '}'))
                                break;
                        if (!stream_punct(st, ','))
                                return -EBADMSG;
                }
        *ret = TAKE_PTR(o);
        return 0;
}

int cf_envelope_decode_each(long http_status, const char *body, size_t size, const char *items_key,
                            cf_item_t each, void *userdata, CfEnvelope **ret) {
        _cleanup_(cf_envelope_freep) CfEnvelope *e = NULL;
        Stream st = { .s = body, .size = size, .each = each, .userdata = userdata };
        json_object *root = NULL;
        bool streamed = false;
        int r;

        if (!body || !ret || !each)
                return -EINVAL;
        if (size > INT32_MAX)
                return -EFBIG;
        st.tok = json_tokener_new_ex(DECODE_MAX_DEPTH);
        if (!st.tok)
                return -ENOMEM;
        r = stream_object(&st, "result", items_key, &root, &streamed);
        json_tokener_free(st.tok);
        if (r < 0)
                return r;
        if (!only_space(body, st.pos, size)) {
                json_object_put(root);
                return -EBADMSG;
        }
        r = envelope_from_root(http_status, root, &e);
        if (r < 0)
                return r;
        e->streamed = streamed;
        e->n_streamed = st.n;
        *ret = TAKE_PTR(e);
        return 0;
}

/* ---- Feeding a list as it arrives ----
 * A byte scanner that knows only what it needs: strings (so brackets in
 * them are not counted), nesting depth, which open containers near the
 * top are objects and whether an object expects a key, and the raw bytes
 * of the keys it looks for. The elements themselves are parsed by
 * json-c, one at a time. */

#define FEED_TOP 4      /* containers tracked by kind: envelope, result, its list, an element */

typedef enum FeedPhase {
        FEED_SEEK,      /* looking for the list */
        FEED_LIST,      /* inside it, between elements */
        FEED_ITEM,      /* inside an element */
        FEED_OFF,       /* past it, or never to be found: the final decode's job */
} FeedPhase;

struct CfListFeed {
        json_tokener *tok;
        char *items_key;
        cf_item_t each;
        void *userdata;
        size_t n;

        size_t pos;             /* scanned up to here */
        FeedPhase phase;
        unsigned depth;         /* containers open at pos */
        unsigned list_depth;    /* depth inside the list */
        bool in_string, escape;
        bool is_object[FEED_TOP + 1];
        bool want_key[FEED_TOP + 1];    /* the object at that depth expects a key next */
        size_t key_start;       /* of the key being read (after its quote) */
        bool key_escaped;
        bool key_is_ours;       /* the value that follows is the one looked for */
        bool seen_result, seen_items_key;
        size_t item_start;
        bool list_comma;        /* the last element took a comma: another must follow */
};

CfListFeed *cf_list_feed_new(const char *items_key, cf_item_t each, void *userdata) {
        CfListFeed *f = calloc(1, sizeof(CfListFeed));

        if (!f)
                return NULL;
        f->each = each;
        f->userdata = userdata;
        f->tok = json_tokener_new_ex(DECODE_MAX_DEPTH);
        if (!f->tok || (items_key && !(f->items_key = strdup(items_key))))
                return cf_list_feed_free(f);
        return f;
}

CfListFeed *cf_list_feed_free(CfListFeed *f) {
        if (!f)
                return NULL;
        if (f->tok)
                json_tokener_free(f->tok);
        free(f->items_key);
        free(f);
        return NULL;
}

size_t cf_list_feed_count(const CfListFeed *f) {
        return f ? f->n : 0;
}

/* The element buf[start..end) (end: the ',' or ']' after it) to each. */
static int feed_item(CfListFeed *f, const char *buf, size_t start, size_t end) {
        json_object *v;
        size_t stop;
        int r;

        if (end - start >= INT32_MAX)
                return -EFBIG;
        json_tokener_reset(f->tok);
        /* With the ',' or ']': a number knows where it ends. */
        v = json_tokener_parse_ex(f->tok, buf + start, (int) (end - start + 1));
        if (json_tokener_get_error(f->tok) != json_tokener_success) {
                json_object_put(v);
                return -EBADMSG;
        }
        stop = start + json_tokener_get_parse_end(f->tok);
        if (stop > end || !only_space(buf, stop, end)) {
                json_object_put(v);
                return -EBADMSG;
        }
        r = f->each(v, f->userdata);
        json_object_put(v);
        if (r < 0)
                return r;
        f->n++;
        return 0;
}

/* Whether buf[f->key_start..end) is the key looked for at this depth. */
static bool feed_key_is_ours(CfListFeed *f, const char *buf, size_t end) {
        const char *want = f->depth == 1 ? "result" : f->items_key;
        bool *seen = f->depth == 1 ? &f->seen_result : &f->seen_items_key;

        if (f->depth > 2 || (f->depth == 2 && (!f->items_key || !f->seen_result)))
                return false;
        if (f->key_escaped) {
                /* "res\u0075lt" may be the one; the final decode judges. */
                f->phase = FEED_OFF;
                return false;
        }
        if (*seen || end - f->key_start != strlen(want) || memcmp(buf + f->key_start, want, end - f->key_start) != 0)
                return false;
        *seen = true;
        return true;
}

/* A value starts with c at f->pos in an object's or the envelope's
 * member: the list, the result object holding it, or anything else. */
static void feed_value_start(CfListFeed *f, char c) {
        if (!f->key_is_ours)
                return;
        f->key_is_ours = false;
        if (c == '[' && (f->depth == 2 || !f->items_key)) {
                f->phase = FEED_LIST;
                f->list_depth = f->depth + 1;
                return;
        }
        if (!(c == '{' && f->depth == 1 && f->items_key))
                f->phase = FEED_OFF;    /* not where the final decode streams from */
}

int cf_list_feed(CfListFeed *f, char *buf, size_t *size) {
        size_t cut_from = SIZE_MAX, cut_to = 0;
        int r = 0;

        for (; f->pos < *size && f->phase != FEED_OFF; f->pos++) {
                char c = buf[f->pos];
                bool top = f->depth >= 1 && f->depth <= FEED_TOP;

                if (f->in_string) {
                        if (!f->escape && c != '\\' && c != '"') {
                                /* The bulk of a list: step over a string's
                                 * plain bytes without the rest of the loop. */
                                const char *p = buf + f->pos + 1, *end = buf + *size;

                                while (p < end && *p != '"' && *p != '\\')
                                        p++;
                                f->pos = (size_t) (p - buf) - 1;
                                continue;
                        }
                        if (f->escape)
                                f->escape = false;
                        else if (c == '\\') {
                                f->escape = true;
                                f->key_escaped = true;
                        } else if (c == '"') {
                                f->in_string = false;
                                if (f->phase == FEED_SEEK && top && f->want_key[f->depth]) {
                                        f->want_key[f->depth] = false;
                                        f->key_is_ours = feed_key_is_ours(f, buf, f->pos);
                                }
                        }
                        continue;
                }
                if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
                        continue;

                switch (f->phase) {
                case FEED_LIST:
                        /* A comma here is a stray one (the element before
                         * took its own); a ']' after a comma ends "[a,]":
                         * both are what the whole-body decode refuses. */
                        if (c == ',' || (c == ']' && f->list_comma)) {
                                r = -EBADMSG;
                                goto out;
                        }
                        if (c == ']') {
                                f->phase = FEED_OFF;
                                goto out;
                        }
                        f->phase = FEED_ITEM;
                        f->item_start = f->pos;
                        break;
                case FEED_ITEM:
                        if (f->depth != f->list_depth || (c != ',' && c != ']'))
                                break;
                        r = feed_item(f, buf, f->item_start, f->pos);
                        if (r < 0)
                                goto out;
                        if (cut_from == SIZE_MAX)
                                cut_from = f->item_start;
                        if (c == ']') {
                                cut_to = f->pos;        /* the list is closed: "[]" stays */
                                f->phase = FEED_OFF;
                                goto out;
                        }
                        cut_to = f->pos + 1;
                        f->list_comma = true;
                        f->phase = FEED_LIST;
                        continue;
                case FEED_SEEK:
                        if (top && f->is_object[f->depth] && (c == ',' || c == ':')) {
                                if (c == ',')
                                        f->want_key[f->depth] = true;
                                continue;
                        }
                        if (!(c == '"' && top && f->want_key[f->depth]) && !strchr(",:}]", c))
                                feed_value_start(f, c);
                        break;
                default:
                        break;
                }

                switch (c) {
                case '"':
                        f->in_string = true;
                        f->key_escaped = false;
                        f->key_start = f->pos + 1;
                        break;
                case '{':
                case '[':
                        f->depth++;
                        if (f->depth <= FEED_TOP) {
                                f->is_object[f->depth] = c == '{';
                                f->want_key[f->depth] = c == '{';
                        }
                        break;
                case '}':
                case ']':
                        if (f->depth == 0) {
                                f->phase = FEED_OFF;
                                break;
                        }
                        f->depth--;
                        /* The result object closed without the list. */
                        if (f->phase == FEED_SEEK && f->depth == 1 && f->seen_result)
                                f->phase = FEED_OFF;
                        break;
                default:
                        break;
                }
        }
out:
        if (cut_from != SIZE_MAX && cut_to > cut_from) {
                size_t d = cut_to - cut_from;

                memmove(buf + cut_from, buf + cut_to, *size - cut_to);
                *size -= d;
                f->pos -= d;
                if (f->phase == FEED_ITEM)
                        f->item_start -= d;
        }
        return r;
}

static int errno_from_code(int code) {
        switch (code) {
        case 10007: /* script not found */
        case 10013: /* KV namespace not found */
        case 10006: /* R2 bucket not found */
        case 10056: /* worker secret not found */
        case 10090: /* legacy environment not found */
        case 7404:  /* D1 database not found */
        case 7003:  /* no route / invalid object identifier */
                return -ENOENT;
        case 10014: /* KV title exists */
        case 10004: /* R2 bucket exists */
        case 7502:  /* D1 database exists */
        case 11004: /* queue consumer exists */
                return -EEXIST;
        case 10000: /* authentication error */
        case 10023: /* unauthorized */
        case 9109:  /* invalid access token */
                return -EACCES;
        case 971:   /* rate limited */
                return -EBUSY;
        default:
                return 0;
        }
}

int cf_errno_from_status(long http_status, bool success, const CfError *errors, size_t n_errors) {
        if (status_is_2xx(http_status) && success)
                return 0;

        /* A server failure or a rate limit is decided by the HTTP status,
         * whatever code the body carries: Cloudflare's codes are not unique
         * (10013 is both "unknown error" and "KV namespace not found"), and
         * reading a 503 as "not found" would let a failed DELETE count as
         * done. */
        if (http_status == 429)
                return -EBUSY;
        if (http_status >= 500 && http_status < 600)
                return -EAGAIN;

        for (size_t i = 0; i < n_errors; i++) {
                int r = errno_from_code(errors[i].code);

                if (r < 0)
                        return r;
        }

        switch (http_status) {
        case 400:
                return -EINVAL;
        case 401:
        case 403:
                return -EACCES;
        case 404:
                return -ENOENT;
        case 405:
                return -EOPNOTSUPP;
        case 408:
                return -ETIMEDOUT;
        case 409:
                return -EEXIST;
        case 412:
                return -ESTALE;
        case 413:
                return -EFBIG;
        case 429:
                return -EBUSY;
        default:
                break;
        }
        if (http_status >= 500 && http_status < 600)
                return -EAGAIN;
        if (http_status >= 400 && http_status < 500)
                return -EINVAL;
        return -EPROTO;
}

/* Appends s to buf (capacity SUMMARY_MAX), replacing control characters
 * with spaces and truncating with "..." when full. Once truncated, *len
 * is SUMMARY_MAX, so later appends add nothing (the "..." is written
 * exactly once; found by fuzz-cfapi-envelope). */
static void summary_append(char *buf, size_t *len, const char *s) {
        for (; *s; s++) {
                if (*len + 4 >= SUMMARY_MAX) {
                        if (*len + 4 == SUMMARY_MAX)
                                memcpy(buf + *len, "...", 4);
                        *len = SUMMARY_MAX;
                        return;
                }
                buf[(*len)++] = iscntrl((unsigned char) *s) ? ' ' : *s;
                buf[*len] = 0;
        }
}

char *cf_errors_summary(long http_status, const CfError *errors, size_t n_errors) {
        char buf[SUMMARY_MAX], tmp[48];
        size_t len = 0;

        buf[0] = 0;
        if (http_status > 0)
                snprintf(tmp, sizeof tmp, "HTTP %ld", http_status);
        else
                snprintf(tmp, sizeof tmp, "no HTTP response");
        summary_append(buf, &len, tmp);
        for (size_t i = 0; i < n_errors; i++) {
                summary_append(buf, &len, i == 0 ? ": " : "; ");
                if (errors[i].code != 0) {
                        snprintf(tmp, sizeof tmp, "[%d] ", errors[i].code);
                        summary_append(buf, &len, tmp);
                }
                summary_append(buf, &len, errors[i].message ? errors[i].message : "");
        }
        return strdup(buf);
}

bool cf_status_is_retryable(long http_status) {
        return http_status == 408 || http_status == 429 ||
               (http_status >= 500 && http_status < 600);
}

int cf_result_items(json_object *result, const char *items_key, json_object **ret) {
        json_object *v;

        if (!result || json_object_is_type(result, json_type_null)) {
                *ret = NULL;
                return 0;
        }
        if (json_object_is_type(result, json_type_array)) {
                *ret = result;
                return 0;
        }
        if (items_key && json_object_is_type(result, json_type_object)) {
                if (!json_object_object_get_ex(result, items_key, &v) || !v ||
                    json_object_is_type(v, json_type_null)) {
                        *ret = NULL;
                        return 0;
                }
                if (json_object_is_type(v, json_type_array)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

/* A non-negative integer field of o, or -1. */
static int64_t get_count(json_object *o, const char *key) {
        json_object *v;
        int64_t n;

        if (!o || !json_object_object_get_ex(o, key, &v) || !v)
                return -1;
        if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_string))
                return -1;
        errno = 0;
        n = json_object_get_int64(v);
        if (errno != 0 || n < 0)
                return -1;
        return n;
}

int cf_page_has_more(json_object *result_info, unsigned page, unsigned requested_per_page,
                     size_t n_items) {
        int64_t per_page, total_count, total_pages;

        if (n_items == 0 || !result_info)
                return 0;
        total_pages = get_count(result_info, "total_pages");
        if (total_pages >= 0)
                return (int64_t) page < total_pages;
        total_count = get_count(result_info, "total_count");
        if (total_count < 0)
                /* No totals: a full page may have a successor; an empty
                 * page ends it. */
                return n_items >= requested_per_page;
        per_page = get_count(result_info, "per_page");
        if (per_page <= 0)
                per_page = requested_per_page;
        return (int64_t) page * per_page < total_count;
}

const char *cf_cursor_next(json_object *result_info) {
        json_object *v, *c;
        const char *s;

        if (!result_info)
                return NULL;
        if (json_object_object_get_ex(result_info, "cursor", &v) && v &&
            json_object_is_type(v, json_type_string)) {
                s = json_object_get_string(v);
                if (!isempty(s))
                        return s;
        }
        if (json_object_object_get_ex(result_info, "cursors", &c) && c &&
            json_object_is_type(c, json_type_object) &&
            json_object_object_get_ex(c, "after", &v) && v &&
            json_object_is_type(v, json_type_string)) {
                s = json_object_get_string(v);
                if (!isempty(s))
                        return s;
        }
        return NULL;
}

static const char *skip_ws(const char *p, const char *end) {
        while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        return p;
}

/* Parses one decimal integer of [p, end), spaces around allowed. */
static int parse_u64_span(const char *p, const char *end, uint64_t *ret) {
        uint64_t v = 0;
        bool any = false;

        p = skip_ws(p, end);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        for (; p < end; p++) {
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                if (v > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*p - '0');
                any = true;
        }
        if (!any)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Parses the parameters of one structured-field list member
 * ("default";r=50;t=30) into r and t. */
static int parse_ratelimit_member(const char *p, const char *end, uint64_t *ret_r, uint64_t *ret_t) {
        bool have_r = false, have_t = false;
        uint64_t r = 0, t = 0;
        const char *semi = memchr(p, ';', (size_t) (end - p));

        while (semi) {
                const char *param = semi + 1, *next, *eq;

                next = memchr(param, ';', (size_t) (end - param));
                semi = next;
                if (!next)
                        next = end;
                param = skip_ws(param, next);
                eq = memchr(param, '=', (size_t) (next - param));
                if (!eq)
                        continue;
                if (eq - param == 1 && param[0] == 'r') {
                        if (parse_u64_span(eq + 1, next, &r) < 0)
                                return -EINVAL;
                        have_r = true;
                } else if (eq - param == 1 && param[0] == 't') {
                        if (parse_u64_span(eq + 1, next, &t) < 0)
                                return -EINVAL;
                        have_t = true;
                }
        }
        if (!have_r || !have_t)
                return -EINVAL;
        *ret_r = r;
        *ret_t = t;
        return 0;
}

int cf_ratelimit_parse(const char *value, uint64_t *ret_remaining, uint64_t *ret_reset_sec) {
        const char *p, *end, *first = NULL, *first_end = NULL;
        uint64_t r, t;

        if (!value)
                return -EINVAL;
        /* Members are separated by ','; prefer the one named "default". */
        for (p = value; *p; p = *end ? end + 1 : end) {
                const char *name;

                end = strchr(p, ',');
                if (!end)
                        end = p + strlen(p);
                name = skip_ws(p, end);
                if (!first) {
                        first = p;
                        first_end = end;
                }
                if ((size_t) (end - name) >= 9 && memcmp(name, "\"default\"", 9) == 0) {
                        first = p;
                        first_end = end;
                        break;
                }
        }
        if (!first)
                return -EINVAL;
        if (parse_ratelimit_member(first, first_end, &r, &t) < 0)
                return -EINVAL;
        *ret_remaining = r;
        *ret_reset_sec = t;
        return 0;
}

int cf_retry_after_parse(const char *value, uint64_t now_realtime_usec, uint64_t *ret_delay_usec) {
        static const char *const formats[] = {
                "%a, %d %b %Y %H:%M:%S GMT",    /* IMF-fixdate */
                "%A, %d-%b-%y %H:%M:%S GMT",    /* RFC 850 */
                "%a %b %e %H:%M:%S %Y",         /* asctime */
        };
        uint64_t sec, when_usec;
        const char *end;

        if (!value)
                return -EINVAL;
        value = skip_ws(value, value + strlen(value));
        end = value + strlen(value);
        if (parse_u64_span(value, end, &sec) == 0) {
                if (sec > RETRY_AFTER_MAX_SEC)
                        sec = RETRY_AFTER_MAX_SEC;
                *ret_delay_usec = sec * USEC_PER_SEC;
                return 0;
        }
        if (value < end && isdigit((unsigned char) *value))
                return -EINVAL;     /* "1.5", "-3", "12abc" */

        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                struct tm tm = {};
                const char *rest = strptime(value, formats[i], &tm);
                time_t t;

                if (!rest || *skip_ws(rest, rest + strlen(rest)) != 0)
                        continue;
                t = timegm(&tm);
                if (t == (time_t) -1 || t < 0)
                        return -EINVAL;
                when_usec = (uint64_t) t * USEC_PER_SEC;
                if (when_usec <= now_realtime_usec)
                        *ret_delay_usec = 0;
                else if (when_usec - now_realtime_usec > RETRY_AFTER_MAX_SEC * USEC_PER_SEC)
                        *ret_delay_usec = RETRY_AFTER_MAX_SEC * USEC_PER_SEC;
                else
                        *ret_delay_usec = when_usec - now_realtime_usec;
                return 0;
        }
        return -EINVAL;
}
