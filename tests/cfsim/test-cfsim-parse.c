/* test-cfsim-parse.c: cfsim's pure request decoders, without a server:
 * multipart/form-data (boundaries, quoting, preambles, limits, every
 * malformation) and the bounded JSON body decoder. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim-json.h"
#include "sim-multipart.h"

START_TEST(test_boundary) {
        char b[71];

        ck_assert_int_eq(sim_form_boundary("multipart/form-data; boundary=abc", b), 0);
        ck_assert_str_eq(b, "abc");
        ck_assert_int_eq(sim_form_boundary("Multipart/Form-Data;boundary=\"a b;c\"", b), 0);
        ck_assert_str_eq(b, "a b;c");
        ck_assert_int_eq(sim_form_boundary("multipart/form-data; charset=utf-8; BOUNDARY=----formdata-undici-012345678901", b), 0);
        ck_assert_str_eq(b, "----formdata-undici-012345678901");
        ck_assert_int_eq(sim_form_boundary("application/json", b), -EMEDIUMTYPE);
        ck_assert_int_eq(sim_form_boundary(NULL, b), -EMEDIUMTYPE);
        ck_assert_int_eq(sim_form_boundary("multipart/form-data", b), -EINVAL);
        ck_assert_int_eq(sim_form_boundary("multipart/form-data; boundary=", b), -EINVAL);
        ck_assert_int_eq(sim_form_boundary("multipart/form-data; boundary=\"open", b), -EINVAL);
        ck_assert_int_eq(sim_form_boundary("multipart/form-data; boundary="
                                           "12345678901234567890123456789012345678901234567890123456789012345678901", b),
                         -EINVAL);
}
END_TEST

START_TEST(test_parse_parts) {
        static const char body[] =
                "preamble to ignore\r\n"
                "--B\r\n"
                "Content-Disposition: form-data; name=\"metadata\"\r\n\r\n"
                "{\"main_module\":\"a.js\"}\r\n"
                "--B\r\n"
                "content-disposition: form-data; name=\"files\"; filename=\"a.js\"\r\n"
                "CONTENT-TYPE:  application/javascript+module \r\n\r\n"
                "line1\r\n--Bnot-a-delimiter\r\nline3\r\n"
                "--B \t\r\n"
                "Content-Disposition: form-data; name=\"q\\\"uote\"; filename=\"x;y.wasm\"\r\n\r\n"
                "\r\n"
                "--B--\r\nepilogue";
        SimForm f = {};
        const SimFormPart *p;

        ck_assert_int_eq(sim_form_parse("multipart/form-data; boundary=B", body, strlen(body), &f), 0);
        ck_assert_uint_eq(f.n_parts, 3);
        ck_assert_str_eq(f.parts[0].name, "metadata");
        ck_assert_ptr_null(f.parts[0].filename);
        ck_assert_ptr_null(f.parts[0].content_type);
        ck_assert_uint_eq(f.parts[0].size, strlen("{\"main_module\":\"a.js\"}"));
        ck_assert_str_eq(f.parts[1].name, "files");
        ck_assert_str_eq(f.parts[1].filename, "a.js");
        ck_assert_str_eq(f.parts[1].content_type, "application/javascript+module");
        ck_assert_uint_eq(f.parts[1].size, strlen("line1\r\n--Bnot-a-delimiter\r\nline3"));
        ck_assert_int_eq(memcmp(f.parts[1].data, "line1\r\n--Bnot", 13), 0);
        ck_assert_str_eq(f.parts[2].name, "q\"uote");
        ck_assert_str_eq(f.parts[2].filename, "x;y.wasm");
        ck_assert_uint_eq(f.parts[2].size, 0);
        p = sim_form_find(&f, "a.js", false);
        ck_assert_ptr_null(p);
        p = sim_form_find(&f, "a.js", true);
        ck_assert_ptr_eq(p, &f.parts[1]);
        ck_assert_ptr_eq(sim_form_find(&f, "metadata", false), &f.parts[0]);
        sim_form_done(&f);
        ck_assert_uint_eq(f.n_parts, 0);
        sim_form_done(&f);

        /* No parts at all. */
        ck_assert_int_eq(sim_form_parse("multipart/form-data; boundary=B", "--B--", 5, &f), 0);
        ck_assert_uint_eq(f.n_parts, 0);
        sim_form_done(&f);
        /* Binary content with NULs. */
        {
                static const char bin[] = "--B\r\nContent-Disposition: form-data; name=\"w\"\r\n\r\n\0\1\2\0\r\n--B--";
                ck_assert_int_eq(sim_form_parse("multipart/form-data; boundary=B", bin, sizeof(bin) - 1, &f), 0);
                ck_assert_uint_eq(f.parts[0].size, 4);
                sim_form_done(&f);
        }
}
END_TEST

START_TEST(test_parse_malformed) {
        static const char *const bad[] = {
                "",
                "no delimiter at all",
                "--B",                                                                    /* nothing after */
                "--Bx\r\n",                                                               /* junk after delimiter */
                "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\ndata",          /* unterminated */
                "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n",                  /* no blank line */
                "--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--",                     /* no disposition */
                "--B\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--B--",   /* not form-data */
                "--B\r\nContent-Disposition: form-data; filename=\"a\"\r\n\r\nx\r\n--B--", /* no name */
                "--B\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--B--",      /* open quote */
                "--B\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nx\r\n--B--",
                "--B\r\nno colon here\r\n\r\nx\r\n--B--",
        };
        SimForm f = {};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int r = sim_form_parse("multipart/form-data; boundary=B", bad[i], strlen(bad[i]), &f);

                ck_assert_msg(r < 0, "case %zu parsed", i);
                ck_assert_uint_eq(f.n_parts, 0);
        }
        ck_assert_int_eq(sim_form_parse("text/plain", "--B--", 5, &f), -EMEDIUMTYPE);
}
END_TEST

START_TEST(test_parse_limits) {
        size_t n = SIM_FORM_PARTS_MAX + 1, len = 0;
        char *b = malloc(n * 64 + 16), *hdrs;
        SimForm f = {};

        for (size_t i = 0; i < n; i++)
                len += (size_t) sprintf(b + len, "--B\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\nx\r\n");
        len += (size_t) sprintf(b + len, "--B--");
        ck_assert_int_eq(sim_form_parse("multipart/form-data; boundary=B", b, len, &f), -E2BIG);
        free(b);

        /* Too many headers in one part. */
        hdrs = malloc(4096);
        len = (size_t) sprintf(hdrs, "--B\r\nContent-Disposition: form-data; name=\"p\"\r\n");
        for (int i = 0; i < SIM_FORM_HEADERS_MAX + 1; i++)
                len += (size_t) sprintf(hdrs + len, "X-%d: y\r\n", i);
        len += (size_t) sprintf(hdrs + len, "\r\nx\r\n--B--");
        ck_assert_int_eq(sim_form_parse("multipart/form-data; boundary=B", hdrs, len, &f), -E2BIG);
        free(hdrs);
}
END_TEST

START_TEST(test_json) {
        json_object *o = NULL;
        static const char deep_ok[] = "[[[[[[[[[[1]]]]]]]]]]";
        char *deep;

        ck_assert_int_eq(sim_json_parse("{\"a\":\"b\",\"n\":1,\"t\":true,\"o\":{},\"l\":[]}", 38, &o), 0);
        ck_assert_str_eq(sim_json_str(o, "a"), "b");
        ck_assert_ptr_null(sim_json_str(o, "n"));
        ck_assert_ptr_nonnull(sim_json_obj(o, "o"));
        ck_assert_ptr_null(sim_json_obj(o, "l"));
        ck_assert_ptr_nonnull(sim_json_arr(o, "l"));
        ck_assert_int_eq(sim_json_bool(o, "t", 0), 1);
        ck_assert_int_eq(sim_json_bool(o, "a", 7), 7);
        ck_assert_int_eq(sim_json_bool(o, "missing", 5), 5);
        json_object_put(o);

        ck_assert_int_eq(sim_json_parse(" 12 \n", 5, &o), 0);
        ck_assert_int_eq(json_object_get_int(o), 12);
        json_object_put(o);
        ck_assert_int_eq(sim_json_parse("\"x\"", 3, &o), 0);
        ck_assert_ptr_null(sim_json_str(o, "x")); /* not an object */
        json_object_put(o);
        ck_assert_int_eq(sim_json_parse(deep_ok, strlen(deep_ok), &o), 0);
        json_object_put(o);

        ck_assert_int_eq(sim_json_parse("", 0, &o), -EBADMSG);
        ck_assert_int_eq(sim_json_parse("   ", 3, &o), -EBADMSG);
        ck_assert_int_eq(sim_json_parse("{", 1, &o), -EBADMSG);
        ck_assert_int_eq(sim_json_parse("{} {}", 5, &o), -EBADMSG);
        ck_assert_int_eq(sim_json_parse("{}x", 3, &o), -EBADMSG);
        ck_assert_int_eq(sim_json_parse("{\"a\":1}\0", 8, &o), -EBADMSG);
        ck_assert_int_eq(sim_json_parse("[1,]x", 5, &o), -EBADMSG);
        deep = malloc(SIM_JSON_DEPTH_MAX * 2 + 4);
        memset(deep, '[', SIM_JSON_DEPTH_MAX + 1);
        memset(deep + SIM_JSON_DEPTH_MAX + 1, ']', SIM_JSON_DEPTH_MAX + 1);
        ck_assert_int_eq(sim_json_parse(deep, 2 * (SIM_JSON_DEPTH_MAX + 1), &o), -EBADMSG);
        free(deep);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("cfsim-parse");
        TCase *tc = tcase_create("parse");

        tcase_add_test(tc, test_boundary);
        tcase_add_test(tc, test_parse_parts);
        tcase_add_test(tc, test_parse_malformed);
        tcase_add_test(tc, test_parse_limits);
        tcase_add_test(tc, test_json);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
