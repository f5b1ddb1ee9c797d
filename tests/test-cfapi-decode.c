/* test-cfapi-decode.c: envelope decoding, error mapping, pagination and
 * header parsing on recorded responses in tests/data/cfapi/. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "cfapi-decode.h"
#include "cfapi.h"
#include "cfreq.h"
#include "util.h"

static char *load(const char *name, size_t *ret_size) {
        const char *top = getenv("top_srcdir");
        _cleanup_free_ char *path = NULL;
        char *data = NULL;
        int r;

        ck_assert_int_ge(asprintf(&path, "%s/tests/data/cfapi/%s", top ? top : ".", name), 0);
        r = read_full_file(path, 1 << 20, &data, ret_size);
        ck_assert_msg(r == 0, "cannot read %s: %d", path, r);
        return data;
}

static int decode_file(const char *name, long status, CfEnvelope **ret) {
        _cleanup_free_ char *data = NULL;
        size_t size;

        data = load(name, &size);
        return cf_envelope_decode(status, data, size, ret);
}

START_TEST(test_success_object) {
        _cleanup_(cf_envelope_freep) CfEnvelope *e = NULL;
        json_object *v;

        ck_assert_int_eq(decode_file("success-object.json", 200, &e), 0);
        ck_assert(e->success);
        ck_assert_int_eq(e->n_errors, 0);
        ck_assert_ptr_nonnull(e->result);
        ck_assert(json_object_object_get_ex(e->result, "id", &v));
        ck_assert_str_eq(json_object_get_string(v), "0f2ac74b498b48028cb68387c421e279");
        ck_assert_ptr_null(e->result_info);
        ck_assert_int_eq(cf_errno_from_status(200, e->success, e->errors, e->n_errors), 0);
}
END_TEST

START_TEST(test_failure_10007) {
        _cleanup_(cf_envelope_freep) CfEnvelope *e = NULL;
        _cleanup_free_ char *summary = NULL;

        ck_assert_int_eq(decode_file("failure-10007.json", 404, &e), 0);
        ck_assert(!e->success);
        ck_assert_ptr_null(e->result);
        ck_assert_int_eq(e->n_errors, 1);
        ck_assert_int_eq(e->errors[0].code, 10007);
        ck_assert_int_eq(e->errors[0].http_status, 404);
        ck_assert_str_eq(e->errors[0].message, "This Worker does not exist on your account.");
        ck_assert_int_eq(cf_errno_from_status(404, e->success, e->errors, e->n_errors), -ENOENT);
        /* The code decides even when the status is unusual. */
        ck_assert_int_eq(cf_errno_from_status(400, e->success, e->errors, e->n_errors), -ENOENT);
        summary = cf_errors_summary(404, e->errors, e->n_errors);
        ck_assert_str_eq(summary, "HTTP 404: [10007] This Worker does not exist on your account.");
}
END_TEST

START_TEST(test_failure_multi) {
        _cleanup_(cf_envelope_freep) CfEnvelope *e = NULL;
        _cleanup_free_ char *summary = NULL;

        ck_assert_int_eq(decode_file("failure-multi.json", 400, &e), 0);
        ck_assert_int_eq(e->n_errors, 2);
        ck_assert_int_eq(e->errors[0].code, 10021);
        ck_assert_int_eq(e->errors[1].code, 100402);
        ck_assert_int_eq(cf_errno_from_status(400, e->success, e->errors, e->n_errors), -EINVAL);
        summary = cf_errors_summary(400, e->errors, e->n_errors);
        /* Control characters (the newline in the validator text) become spaces. */
        ck_assert_ptr_null(strchr(summary, '\n'));
        ck_assert_ptr_nonnull(strstr(summary, "[10021] Uncaught SyntaxError"));
        ck_assert_ptr_nonnull(strstr(summary, "; [100402] exports reconciliation failed"));
}
END_TEST

START_TEST(test_error_codes) {
        static const struct {
                const char *file;
                long status;
                int error;
        } cases[] = {
                { "failure-kv-exists.json", 400, -EEXIST },
                { "rate-limited-971.json", 429, -EBUSY },
                { "auth-10000.json", 403, -EACCES },
                { "success-false-2xx.json", 200, -EPROTO },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(cf_envelope_freep) CfEnvelope *e = NULL;

                ck_assert_int_eq(decode_file(cases[i].file, cases[i].status, &e), 0);
                ck_assert_msg(cf_errno_from_status(cases[i].status, e->success, e->errors, e->n_errors) ==
                              cases[i].error, "%s", cases[i].file);
        }

        /* Status alone. */
        ck_assert_int_eq(cf_errno_from_status(401, false, NULL, 0), -EACCES);
        ck_assert_int_eq(cf_errno_from_status(403, false, NULL, 0), -EACCES);
        ck_assert_int_eq(cf_errno_from_status(404, false, NULL, 0), -ENOENT);
        ck_assert_int_eq(cf_errno_from_status(409, false, NULL, 0), -EEXIST);
        ck_assert_int_eq(cf_errno_from_status(412, false, NULL, 0), -ESTALE);
        ck_assert_int_eq(cf_errno_from_status(413, false, NULL, 0), -EFBIG);
        ck_assert_int_eq(cf_errno_from_status(429, false, NULL, 0), -EBUSY);
        ck_assert_int_eq(cf_errno_from_status(503, false, NULL, 0), -EAGAIN);
        ck_assert_int_eq(cf_errno_from_status(418, false, NULL, 0), -EINVAL);
        ck_assert_int_eq(cf_errno_from_status(204, true, NULL, 0), 0);
        ck_assert_int_eq(cf_errno_from_status(302, false, NULL, 0), -EPROTO);

        ck_assert(cf_status_is_retryable(429));
        ck_assert(cf_status_is_retryable(500));
        ck_assert(cf_status_is_retryable(503));
        ck_assert(cf_status_is_retryable(408));
        ck_assert(!cf_status_is_retryable(409));
        ck_assert(!cf_status_is_retryable(404));
        ck_assert(!cf_status_is_retryable(200));
}
END_TEST

START_TEST(test_unknown_fields) {
        _cleanup_(cf_envelope_freep) CfEnvelope *e = NULL;
        json_object *items = NULL;

        ck_assert_int_eq(decode_file("unknown-fields.json", 200, &e), 0);
        ck_assert(e->success);
        ck_assert_ptr_nonnull(e->messages);
        ck_assert_int_eq(cf_result_items(e->result, NULL, &items), 0);
        ck_assert_int_eq(json_object_array_length(items), 1);
        ck_assert_int_eq(cf_page_has_more(e->result_info, 1, 20, 1), 0);
}
END_TEST

START_TEST(test_tolerant_shapes) {
        _cleanup_(cf_envelope_freep) CfEnvelope *a = NULL, *b = NULL, *c = NULL;

        /* Queues-style string messages. */
        ck_assert_int_eq(decode_file("messages-strings.json", 200, &a), 0);
        ck_assert(a->success);
        ck_assert(json_object_is_type(a->messages, json_type_array));

        /* Odd error entries: strings, missing fields, codes as strings, a number. */
        ck_assert_int_eq(decode_file("errors-odd.json", 404, &b), 0);
        ck_assert(!b->success);
        ck_assert_int_eq(b->n_errors, 4);
        ck_assert_str_eq(b->errors[0].message, "plain string error");
        ck_assert_int_eq(b->errors[0].code, 0);
        ck_assert_str_eq(b->errors[1].message, "no code");
        ck_assert_int_eq(b->errors[2].code, 7003);
        ck_assert_str_eq(b->errors[2].message, "");
        ck_assert_int_eq(b->errors[3].code, 1003);
        ck_assert_int_eq(cf_errno_from_status(404, b->success, b->errors, b->n_errors), -ENOENT);

        /* No success flag on a 2xx without errors: success. */
        ck_assert_int_eq(decode_file("success-no-flag.json", 200, &c), 0);
        ck_assert(c->success);
        ck_assert_ptr_nonnull(c->result);
}
END_TEST

START_TEST(test_garbage) {
        static const char *const files[] = {
                "garbage.txt", "truncated.json", "array-top.json", "trailing.json",
                "deep.json", "html-502.html", "empty.json",
        };

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                CfEnvelope *e = NULL;

                ck_assert_msg(decode_file(files[i], 200, &e) == -EBADMSG, "%s", files[i]);
                ck_assert_ptr_null(e);
        }

        /* Every prefix of a valid envelope is rejected, none crashes. */
        {
                _cleanup_free_ char *data = NULL;
                size_t size;

                data = load("failure-multi.json", &size);
                while (size > 0 && strchr(" \n", data[size - 1]))
                        size--;
                for (size_t n = 0; n < size; n++) {
                        CfEnvelope *e = NULL;

                        ck_assert_int_eq(cf_envelope_decode(200, data, n, &e), -EBADMSG);
                }
        }

        /* Embedded NUL. */
        {
                static const char nul[] = "{\"success\":true,\0\"result\":1}";
                CfEnvelope *e = NULL;

                ck_assert_int_eq(cf_envelope_decode(200, nul, sizeof nul - 1, &e), -EBADMSG);
        }
        ck_assert_int_eq(cf_envelope_decode(200, NULL, 0, NULL), -EINVAL);
}
END_TEST

/* Streaming a list: the elements come one by one, the envelope keeps
 * the rest; the same answers as the whole-tree decoder otherwise. */
typedef struct Items {
        unsigned n;
        char names[8][16];
        int fail_at;            /* >0: each fails on this item */
} Items;

static int take_item(json_object *item, void *userdata) {
        Items *it = userdata;
        json_object *v;

        it->n++;
        if (it->fail_at > 0 && (int) it->n == it->fail_at)
                return -ENOSPC;
        if (it->n <= 8 && json_object_object_get_ex(item, "name", &v))
                snprintf(it->names[it->n - 1], sizeof(it->names[0]), "%s", json_object_get_string(v));
        return 0;
}

START_TEST(test_decode_each) {
        CfEnvelope *e = NULL;
        Items it = {};
        const char *list = " { \"success\" : true, \"errors\":[], \"result\" : [ {\"name\":\"a\",\"n\":[1,{\"x\":2}]} ,"
                           "{\"name\":\"b\"},{\"name\":\"c\", \"t\": 5}], \"result_info\":{\"page\":1,\"count\":3}} \n";

        ck_assert_int_eq(cf_envelope_decode_each(200, list, strlen(list), NULL, take_item, &it, &e), 0);
        ck_assert(e->success);
        ck_assert(e->streamed);
        ck_assert_uint_eq(e->n_streamed, 3);
        ck_assert_uint_eq(it.n, 3);
        ck_assert_str_eq(it.names[0], "a");
        ck_assert_str_eq(it.names[2], "c");
        ck_assert_ptr_null(e->result);              /* not kept */
        ck_assert_ptr_nonnull(e->result_info);
        e = cf_envelope_free(e);

        /* items_key (R2 "buckets"): the array inside the result object. */
        {
                const char *r2 = "{\"result\":{\"buckets\":[{\"name\":\"x\"},{\"name\":\"y\"}],\"other\":1},\"success\":true}";

                it = (Items) {};
                ck_assert_int_eq(cf_envelope_decode_each(200, r2, strlen(r2), "buckets", take_item, &it, &e), 0);
                ck_assert(e->streamed);
                ck_assert_uint_eq(it.n, 2);
                ck_assert_str_eq(it.names[1], "y");
                ck_assert_ptr_nonnull(e->result);
                ck_assert(json_object_object_get_ex(e->result, "other", NULL));
                ck_assert(!json_object_object_get_ex(e->result, "buckets", NULL));
                e = cf_envelope_free(e);
        }
        /* Empty list, and a result that is no list: not streamed, kept. */
        {
                const char *empty = "{\"result\":[],\"success\":true}", *obj = "{\"result\":{\"id\":\"z\"},\"success\":true}",
                           *null = "{\"success\":true,\"result\":null}";

                it = (Items) {};
                ck_assert_int_eq(cf_envelope_decode_each(200, empty, strlen(empty), NULL, take_item, &it, &e), 0);
                ck_assert(e->streamed);
                ck_assert_uint_eq(it.n, 0);
                e = cf_envelope_free(e);
                ck_assert_int_eq(cf_envelope_decode_each(200, obj, strlen(obj), NULL, take_item, &it, &e), 0);
                ck_assert(!e->streamed);
                ck_assert_ptr_nonnull(e->result);
                e = cf_envelope_free(e);
                ck_assert_int_eq(cf_envelope_decode_each(200, null, strlen(null), NULL, take_item, &it, &e), 0);
                ck_assert(!e->streamed);
                ck_assert_ptr_null(e->result);
                e = cf_envelope_free(e);
        }
        /* Errors in the envelope are decoded as ever. */
        {
                const char *err = "{\"result\":null,\"success\":false,\"errors\":[{\"code\":10007,\"message\":\"nope\"}]}";

                ck_assert_int_eq(cf_envelope_decode_each(404, err, strlen(err), NULL, take_item, &it, &e), 0);
                ck_assert(!e->success);
                ck_assert_uint_eq(e->n_errors, 1);
                ck_assert_int_eq(e->errors[0].code, 10007);
                e = cf_envelope_free(e);
        }
        /* Truncated, garbage between elements, trailing bytes: -EBADMSG,
         * and the callback's own error stops the decoding. */
        {
                const char *bad[] = {
                        "{\"result\":[{\"name\":\"a\"},{\"name\":",
                        "{\"result\":[{\"name\":\"a\"} {\"name\":\"b\"}]}",
                        "{\"result\":[1,2]} x",
                        "[1,2]",
                        "{\"result\":[1,2],}",
                };

                for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                        it = (Items) {};
                        ck_assert_int_eq(cf_envelope_decode_each(200, bad[i], strlen(bad[i]), NULL, take_item, &it, &e),
                                         -EBADMSG);
                        ck_assert_ptr_null(e);
                }
                it = (Items) { .fail_at = 2 };
                ck_assert_int_eq(cf_envelope_decode_each(200, list, strlen(list), NULL, take_item, &it, &e), -ENOSPC);
                ck_assert_uint_eq(it.n, 2);
        }
}
END_TEST

/* The list fed as it arrives, chunk bytes at a time, then the rest
 * decoded: the same answer as decoding the whole body at once. Returns
 * the error, or 0 with *ret. *ret_left: the bytes left to the final
 * decode. */
static int feed_in_chunks(const char *body, const char *items_key, size_t chunk, Items *it, CfEnvelope **ret,
                          size_t *ret_left) {
        _cleanup_(cf_list_feed_freep) CfListFeed *f = cf_list_feed_new(items_key, take_item, it);
        size_t len = strlen(body), size = 0, left = 0, max = 0;
        _cleanup_free_ char *buf = malloc(len + 1);
        int r;

        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(buf);
        for (size_t at = 0; at < len; at += chunk) {
                size_t n = len - at < chunk ? len - at : chunk;

                memcpy(buf + size, body + at, n);
                size += n;
                r = cf_list_feed(f, buf, &size);
                if (r < 0)
                        return r;
                if (size > max)
                        max = size;
        }
        left = size;
        if (ret_left)
                *ret_left = max;
        r = cf_envelope_decode_each(200, buf, left, items_key, take_item, it, ret);
        if (r >= 0)
                (*ret)->n_streamed += cf_list_feed_count(f);
        return r;
}

START_TEST(test_list_feed) {
        static const struct {
                const char *body, *items_key;
        } cases[] = {
                { " { \"success\" : true, \"errors\":[], \"result\" : [ {\"name\":\"a\",\"n\":[1,{\"x\":2}]} ,"
                  "{\"name\":\"b\"},{\"name\":\"c\", \"t\": 5}], \"result_info\":{\"page\":1,\"count\":3}} \n", NULL },
                { "{\"result\":{\"buckets\":[{\"name\":\"x\"},{\"name\":\"y\"}],\"other\":1},\"success\":true}", "buckets" },
                { "{\"result\":{\"other\":[1],\"buckets\":[{\"name\":\"x\"}]},\"result_info\":{\"buckets\":[{\"name\":\"no\"}]}}",
                  "buckets" },
                { "{\"result\":{\"other\":1},\"result_info\":{\"buckets\":[{\"name\":\"no\"}]}}", "buckets" },
                { "{\"result\":[],\"success\":true}", NULL },
                { "{\"result\":{\"id\":\"z\"},\"success\":true}", NULL },
                { "{\"success\":true,\"result\":null}", NULL },
                { "{\"errors\":[{\"result\":[1]}],\"result\":[{\"name\":\"a]\\\"},\"},{\"name\":\"b[{\"}]}", NULL },
                { "{\"res\\u0075lt\":[{\"name\":\"a\"}],\"success\":true}", NULL },
                { "{\"result\":\"no\",\"result\":[{\"name\":\"a\"}]}", NULL },
                { "{\"result\":[1,2.5,\"x\",null,[3,[4]],{\"name\":\"n\"},true]}", NULL },
                /* Malformed: each is -EBADMSG however it arrives. */
                { "{\"result\":[{\"name\":\"a\"},{\"name\":", NULL },
                { "{\"result\":[{\"name\":\"a\"} {\"name\":\"b\"}]}", NULL },
                { "{\"result\":[1,2]} x", NULL },
                { "[1,2]", NULL },
                { "{\"result\":[1,2],}", NULL },
                { "{\"result\":[1,]}", NULL },
                { "{\"result\":[,1]}", NULL },
                { "{\"result\":[1,,2]}", NULL },
                { "{\"result\":[{\"a\":1]]}", NULL },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                CfEnvelope *whole = NULL;
                Items w = {};
                int rw = cf_envelope_decode_each(200, cases[i].body, strlen(cases[i].body), cases[i].items_key,
                                                 take_item, &w, &whole);

                for (size_t chunk = 1; chunk <= strlen(cases[i].body); chunk++) {
                        CfEnvelope *e = NULL;
                        Items it = {};
                        int r = feed_in_chunks(cases[i].body, cases[i].items_key, chunk, &it, &e, NULL);

                        ck_assert_msg(r == rw, "case %zu chunk %zu: %d, whole %d", i, chunk, r, rw);
                        if (rw < 0)
                                continue;       /* what went over before an error is dropped whole */
                        ck_assert_uint_eq(it.n, w.n);
                        for (unsigned k = 0; k < w.n && k < 8; k++)
                                ck_assert_str_eq(it.names[k], w.names[k]);
                        ck_assert_int_eq(e->success, whole->success);
                        ck_assert_int_eq(e->streamed, whole->streamed);
                        ck_assert_uint_eq(e->n_streamed, whole->n_streamed);
                        ck_assert_int_eq(!e->result, !whole->result);
                        ck_assert_int_eq(!e->result_info, !whole->result_info);
                        if (whole->result)
                                ck_assert_str_eq(json_object_to_json_string(e->result),
                                                 json_object_to_json_string(whole->result));
                        cf_envelope_free(e);
                }
                cf_envelope_free(whole);
        }

        /* Memory: a long list never sits whole in the buffer, only the
         * envelope and the element being received. */
        {
                _cleanup_free_ char *big = NULL;
                size_t len = 0, max = 0;
                FILE *f = open_memstream(&big, &len);
                CfEnvelope *e = NULL;
                Items it = {};

                ck_assert_ptr_nonnull(f);
                fputs("{\"success\":true,\"errors\":[],\"result\":[", f);
                for (int k = 0; k < 2000; k++)
                        fprintf(f, "%s{\"id\":\"worker-%04d\",\"etag\":\"%064d\"}", k ? "," : "", k, k);
                fputs("],\"result_info\":{\"count\":2000}}", f);
                ck_assert_int_eq(fclose(f), 0);
                ck_assert_int_eq(feed_in_chunks(big, NULL, 16384, &it, &e, &max), 0);
                ck_assert_uint_eq(it.n, 2000);
                ck_assert_uint_eq(e->n_streamed, 2000);
                ck_assert_uint_lt(max, 16384 + 200);
                ck_assert_uint_gt(len, 100 * 1024);
                cf_envelope_free(e);

                /* The callback's error stops the feed there. */
                it = (Items) { .fail_at = 3 };
                ck_assert_int_eq(feed_in_chunks(big, NULL, 100, &it, &e, NULL), -ENOSPC);
                ck_assert_uint_eq(it.n, 3);
        }
}
END_TEST

START_TEST(test_page_pagination) {
        _cleanup_(cf_envelope_freep) CfEnvelope *p1 = NULL, *p3 = NULL, *pe = NULL, *tp = NULL, *nt = NULL;
        json_object *items;

        ck_assert_int_eq(decode_file("page-1.json", 200, &p1), 0);
        ck_assert_int_eq(cf_result_items(p1->result, NULL, &items), 0);
        ck_assert_int_eq(json_object_array_length(items), 2);
        /* 1*2 < 5: more. */
        ck_assert_int_eq(cf_page_has_more(p1->result_info, 1, 50, 2), 1);
        /* page 3: 3*2 >= 5: done. */
        ck_assert_int_eq(decode_file("page-3-last.json", 200, &p3), 0);
        ck_assert_int_eq(cf_page_has_more(p3->result_info, 3, 2, 1), 0);
        /* An empty page ends it whatever the totals say. */
        ck_assert_int_eq(decode_file("page-empty.json", 200, &pe), 0);
        ck_assert_int_eq(cf_result_items(pe->result, NULL, &items), 0);
        ck_assert_int_eq(json_object_array_length(items), 0);
        ck_assert_int_eq(cf_page_has_more(pe->result_info, 4, 2, 0), 0);
        /* total_pages honoured. */
        ck_assert_int_eq(decode_file("page-total-pages.json", 200, &tp), 0);
        ck_assert_int_eq(cf_page_has_more(tp->result_info, 1, 1, 1), 1);
        ck_assert_int_eq(cf_page_has_more(tp->result_info, 3, 1, 1), 0);
        /* No totals: a full page may have a successor, a short one not. */
        ck_assert_int_eq(decode_file("page-no-totals.json", 200, &nt), 0);
        ck_assert_int_eq(cf_page_has_more(nt->result_info, 1, 2, 2), 1);
        ck_assert_int_eq(cf_page_has_more(nt->result_info, 1, 5, 2), 0);
        ck_assert_int_eq(cf_page_has_more(NULL, 1, 5, 5), 0);
}
END_TEST

START_TEST(test_cursor_pagination) {
        _cleanup_(cf_envelope_freep) CfEnvelope *a = NULL, *b = NULL, *c = NULL;
        json_object *items;

        ck_assert_int_eq(decode_file("r2-buckets-cursor.json", 200, &a), 0);
        /* R2's {buckets: [...]} */
        ck_assert_int_eq(cf_result_items(a->result, "buckets", &items), 0);
        ck_assert_int_eq(json_object_array_length(items), 2);
        ck_assert_int_eq(cf_result_items(a->result, NULL, &items), -EBADMSG);
        ck_assert_str_eq(cf_cursor_next(a->result_info), "bG9ncw==");

        ck_assert_int_eq(decode_file("r2-buckets-last.json", 200, &b), 0);
        ck_assert_ptr_null(cf_cursor_next(b->result_info));

        ck_assert_int_eq(decode_file("cursor-after.json", 200, &c), 0);
        ck_assert_str_eq(cf_cursor_next(c->result_info), "AAAA");
        ck_assert_ptr_null(cf_cursor_next(NULL));

        /* An items_key that is absent, or a null result: an empty page. */
        ck_assert_int_eq(cf_result_items(c->result, "buckets", &items), 0);  /* array passes */
        ck_assert_ptr_nonnull(items);
        ck_assert_int_eq(cf_result_items(NULL, "buckets", &items), 0);
        ck_assert_ptr_null(items);
}
END_TEST

START_TEST(test_ratelimit_header) {
        uint64_t r = 0, t = 0;

        ck_assert_int_eq(cf_ratelimit_parse("\"default\";r=50;t=30", &r, &t), 0);
        ck_assert_uint_eq(r, 50);
        ck_assert_uint_eq(t, 30);
        ck_assert_int_eq(cf_ratelimit_parse("\"burst\";r=1;t=1, \"default\";r=1199;t=299", &r, &t), 0);
        ck_assert_uint_eq(r, 1199);
        ck_assert_uint_eq(t, 299);
        ck_assert_int_eq(cf_ratelimit_parse("\"default\"; t=5 ; r=0; x=9", &r, &t), 0);
        ck_assert_uint_eq(r, 0);
        ck_assert_uint_eq(t, 5);
        ck_assert_int_eq(cf_ratelimit_parse("\"default\";r=50", &r, &t), -EINVAL);
        ck_assert_int_eq(cf_ratelimit_parse("\"default\";r=-1;t=3", &r, &t), -EINVAL);
        ck_assert_int_eq(cf_ratelimit_parse("\"default\";r=abc;t=3", &r, &t), -EINVAL);
        ck_assert_int_eq(cf_ratelimit_parse("", &r, &t), -EINVAL);
        ck_assert_int_eq(cf_ratelimit_parse(NULL, &r, &t), -EINVAL);
}
END_TEST

START_TEST(test_retry_after) {
        /* 2026-11-23T09:00:00Z */
        const uint64_t now = 1795424400ULL * USEC_PER_SEC;
        uint64_t d = 0;

        ck_assert_int_eq(cf_retry_after_parse("7", now, &d), 0);
        ck_assert_uint_eq(d, 7 * USEC_PER_SEC);
        ck_assert_int_eq(cf_retry_after_parse(" 0 ", now, &d), 0);
        ck_assert_uint_eq(d, 0);
        ck_assert_int_eq(cf_retry_after_parse("999999999", now, &d), 0);
        ck_assert_uint_eq(d, 86400 * USEC_PER_SEC);
        ck_assert_int_eq(cf_retry_after_parse("Mon, 23 Nov 2026 09:00:30 GMT", now, &d), 0);
        ck_assert_uint_eq(d, 30 * USEC_PER_SEC);
        ck_assert_int_eq(cf_retry_after_parse("Monday, 23-Nov-26 09:01:00 GMT", now, &d), 0);
        ck_assert_uint_eq(d, 60 * USEC_PER_SEC);
        ck_assert_int_eq(cf_retry_after_parse("Mon Nov 23 09:00:05 2026", now, &d), 0);
        ck_assert_uint_eq(d, 5 * USEC_PER_SEC);
        /* In the past: now. */
        ck_assert_int_eq(cf_retry_after_parse("Sun, 22 Nov 2026 09:00:00 GMT", now, &d), 0);
        ck_assert_uint_eq(d, 0);
        ck_assert_int_eq(cf_retry_after_parse("1.5", now, &d), -EINVAL);
        ck_assert_int_eq(cf_retry_after_parse("-3", now, &d), -EINVAL);
        ck_assert_int_eq(cf_retry_after_parse("soon", now, &d), -EINVAL);
        ck_assert_int_eq(cf_retry_after_parse("", now, &d), -EINVAL);
}
END_TEST

START_TEST(test_multipart) {
        _cleanup_(cfapi_multipart_freep) CfMultipart *m = NULL;
        _cleanup_free_ char *body = NULL, *ct = NULL;
        const char *boundary;
        char expect[512];
        size_t size;

        m = cfapi_multipart_new();
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(cfapi_multipart_add(m, "metadata", NULL, "application/json",
                                             "{\"main_module\":\"index.js\"}", 26), 0);
        ck_assert_int_eq(cfapi_multipart_add(m, "index.js", "index.js", "application/javascript+module",
                                             "export default {}", 17), 0);
        ck_assert_int_eq(cfapi_multipart_add(m, "bad\"name", NULL, NULL, "x", 1), -EINVAL);
        ck_assert_int_eq(cfapi_multipart_add(m, "x", "a\r\nb", NULL, "x", 1), -EINVAL);
        ck_assert_int_eq(cfapi_multipart_build(m, &body, &size, &ct), 0);
        ck_assert(startswith(ct, "multipart/form-data; boundary="));
        boundary = ct + strlen("multipart/form-data; boundary=");
        snprintf(expect, sizeof expect,
                 "--%1$s\r\nContent-Disposition: form-data; name=\"metadata\"\r\n"
                 "Content-Type: application/json\r\n\r\n{\"main_module\":\"index.js\"}\r\n"
                 "--%1$s\r\nContent-Disposition: form-data; name=\"index.js\"; filename=\"index.js\"\r\n"
                 "Content-Type: application/javascript+module\r\n\r\nexport default {}\r\n"
                 "--%1$s--\r\n", boundary);
        ck_assert_uint_eq(size, strlen(expect));
        ck_assert(memcmp(body, expect, size) == 0);
}
END_TEST

START_TEST(test_summary_truncation) {
        /* Several long messages: the summary is truncated once, with "...",
         * and later errors add nothing (a second "..." past the end was a
         * stack overflow, found by fuzz-cfapi-envelope). */
        char longmsg[700];
        CfError errors[3];
        _cleanup_free_ char *summary = NULL;

        memset(longmsg, '#', sizeof longmsg - 1);
        longmsg[sizeof longmsg - 1] = 0;
        for (size_t i = 0; i < 3; i++)
                errors[i] = (CfError) { .http_status = 400, .code = 1003 + (int) i, .message = longmsg };
        summary = cf_errors_summary(400, errors, 3);
        ck_assert_ptr_nonnull(summary);
        ck_assert_uint_le(strlen(summary), 511);
        ck_assert(endswith(summary, "..."));
        ck_assert_ptr_null(strstr(summary, "[1004]"));
        ck_assert(startswith(summary, "HTTP 400: [1003] ###"));
}
END_TEST

START_TEST(test_server_error_wins_over_code) {
        /* A 503 carrying a "not found" code is a server failure, not a
         * missing resource: a DELETE answered so must not count as done. */
        CfError nf = { .http_status = 503, .code = 10013, .message = (char *) "unknown error" };
        CfError rl = { .http_status = 429, .code = 10007, .message = (char *) "x" };
        CfError nf404 = { .http_status = 404, .code = 10013, .message = (char *) "namespace not found" };

        ck_assert_int_eq(cf_errno_from_status(503, false, &nf, 1), -EAGAIN);
        ck_assert_int_eq(cf_errno_from_status(500, false, &nf, 1), -EAGAIN);
        ck_assert_int_eq(cf_errno_from_status(429, false, &rl, 1), -EBUSY);
        ck_assert_int_eq(cf_errno_from_status(404, false, &nf404, 1), -ENOENT);
        /* A retried consumer attach that already happened. */
        {
                CfError dup = { .http_status = 400, .code = 11004, .message = (char *) "consumer exists" };

                ck_assert_int_eq(cf_errno_from_status(400, false, &dup, 1), -EEXIST);
        }
}
END_TEST

START_TEST(test_escape) {
        _cleanup_free_ char *a = cfapi_escape("my script/ü 1"), *b = cfapi_escape("AZaz09-._~");

        ck_assert_str_eq(a, "my%20script%2F%C3%BC%201");
        ck_assert_str_eq(b, "AZaz09-._~");
}
END_TEST

START_TEST(test_unescape) {
        _cleanup_free_ char *a = cfapi_unescape("my%20script%2F%C3%BC%201/rest", 24),
                            *b = cfapi_unescape("100%zz%4", 8);

        ck_assert_str_eq(a, "my script/\xc3\xbc 1");
        ck_assert_str_eq(b, "100%zz%4");   /* not an escape: kept as is */
}
END_TEST

START_TEST(test_cfreq_paths) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *q = NULL;

        ck_assert_int_eq(cfreq_path(&a, CF_PATH_SCRIPT_VERSION, "my script/x", "v?1"), 0);
        ck_assert_str_eq(a, "workers/scripts/my%20script%2Fx/versions/v%3F1");
        ck_assert_int_eq(cfreq_path(&b, CF_PATH_STORE_SECRET, NULL, "id"), 0);
        ck_assert_str_eq(b, "secrets_store/stores//secrets/id");
        ck_assert_int_eq(cfreq_path(&c, CF_PATH_QUEUES), 0);
        ck_assert_str_eq(c, "queues");
        ck_assert_int_eq(cfreq_path(&d, cfreq_item(RESOURCE_KV_NAMESPACE), "abc"), 0);
        ck_assert_str_eq(d, "storage/kv/namespaces/abc");
        ck_assert_str_eq(cfreq_template(cfreq_collection(RESOURCE_R2_BUCKET)), "r2/buckets");
        ck_assert_int_eq(cfreq_collection(RESOURCE_SECRETS_STORE_SECRET), _CF_PATH_INVALID);
        ck_assert_uint_eq(cfreq_segments(CF_PATH_QUEUE_CONSUMER), 2);
        ck_assert_uint_eq(cfreq_segments(CF_PATH_AUDIT), 0);
        /* Every template is set, and only the token check leaves the account. */
        for (CfPath p = 0; p < _CF_PATH_MAX; p++) {
                ck_assert_ptr_nonnull(cfreq_template(p));
                ck_assert_int_eq(cfreq_template(p)[0] == '/', p == CF_PATH_TOKEN_VERIFY);
        }
        ck_assert_str_eq(cfreq_permission("GET storage/kv/namespaces: HTTP 403: denied"), "Workers KV Storage: Edit");
        ck_assert_str_eq(cfreq_permission("GET logs/audit: HTTP 403"), "Account Settings: Read");
        ck_assert_str_eq(cfreq_permission("PUT workers/scripts/a: HTTP 403"), "Workers Scripts: Edit");
        ck_assert_ptr_null(cfreq_permission("GET /user/tokens/verify"));
        ck_assert_ptr_null(cfreq_permission(NULL));
        /* 2026-01-02T03:04:05Z .. +1 s */
        ck_assert_int_eq(cfreq_audit_query(UINT64_C(1767323045) * 1000000, UINT64_C(1767323046) * 1000000, NULL, &q), 0);
        ck_assert_str_eq(q, "since=2026-01-02T03%3A04%3A05Z&before=2026-01-02T03%3A04%3A06Z&limit=1000");
        q = mfree(q);
        /* Without the own token's entries, as SDK 6.5 serialises
         * { actor_token_id: { not: [id] } }; the id is escaped. */
        ck_assert_int_eq(cfreq_audit_query(UINT64_C(1767323045) * 1000000, UINT64_C(1767323046) * 1000000, "ab c", &q), 0);
        ck_assert_str_eq(q, "since=2026-01-02T03%3A04%3A05Z&before=2026-01-02T03%3A04%3A06Z&limit=1000"
                            "&actor_token_id.not=ab%20c");
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("cfapi-decode");
        TCase *tc = tcase_create("decode");

        tcase_add_test(tc, test_success_object);
        tcase_add_test(tc, test_failure_10007);
        tcase_add_test(tc, test_failure_multi);
        tcase_add_test(tc, test_error_codes);
        tcase_add_test(tc, test_unknown_fields);
        tcase_add_test(tc, test_tolerant_shapes);
        tcase_add_test(tc, test_garbage);
        tcase_add_test(tc, test_decode_each);
        tcase_add_test(tc, test_list_feed);
        tcase_add_test(tc, test_page_pagination);
        tcase_add_test(tc, test_cursor_pagination);
        tcase_add_test(tc, test_ratelimit_header);
        tcase_add_test(tc, test_retry_after);
        tcase_add_test(tc, test_multipart);
        tcase_add_test(tc, test_escape);
        tcase_add_test(tc, test_unescape);
        tcase_add_test(tc, test_cfreq_paths);
        tcase_add_test(tc, test_summary_truncation);
        tcase_add_test(tc, test_server_error_wins_over_code);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
