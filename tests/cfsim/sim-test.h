/* sim-test.h: what the cfsim check tests share: starting and stopping a
 * cfsim process on 127.0.0.1 port 0, libcurl requests and JSON lookups.
 *
 * Responses live in a small ring owned by this module: a Resp stays valid
 * for the next SIM_TEST_RING - 1 requests, so tests never free them. */
#pragma once

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <json-c/json.h>

#define SIM_TEST_RING 32
#define SIM_TEST_ACCOUNT "023e105f4ecef8ad9ca31a8372d0c353"

typedef struct Resp {
        long status;            /* 0 when the transfer failed */
        int curl_code;          /* CURLcode */
        char *body;
        size_t size;
        char *headers;          /* raw response headers */
        json_object *json;      /* NULL if the body is not JSON */
        double seconds;
} Resp;

typedef struct SimProc {
        pid_t pid;
        unsigned port;
} SimProc;

/* The sim most helpers talk to (set by sim_test_start / the fixtures). */
extern SimProc sim_test_current;

/* Starts cfsim with --port 0 --host 127.0.0.1 plus the NULL-terminated
 * extra arguments, waits for its "listening" line (5 s at most). Returns
 * 0 or a negative errno. */
int sim_test_start(SimProc *ret, const char *const *extra_args);
/* SIGTERM, then waits up to 10 s. Returns the exit status, or -1. */
int sim_test_stop(SimProc *p);

/* Unchecked fixture pair: one plain cfsim per TCase. */
void sim_test_fixture_start(void);
void sim_test_fixture_stop(void);

/* A request against the current sim. path is absolute ("/client/v4/...",
 * "/__sim/stats"); ctype may be NULL; headers is NULL-terminated or NULL. */
Resp *sim_call(const char *method, const char *path, const char *ctype, const void *body, size_t len,
               const char *const *headers);
/* Account API: sub is below /client/v4/accounts/<id> (e.g. "/queues");
 * json (may be NULL) is sent as application/json. */
Resp *api(const char *method, const char *sub, const char *json);
/* Same with printf-style sub path. */
Resp *apif(const char *method, const char *json, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A worker upload in wrangler's form: metadata as a plain field, one
 * module part named and filed as main. query may be NULL. */
Resp *upload(const char *name, const char *query, const char *metadata, const char *main, const char *code);
/* POST/GET an operator route with an optional JSON body. */
Resp *op(const char *method, const char *path, const char *json);
/* Resets the current sim (state, counters, faults). */
void sim_reset(void);

/* Looks up a dotted path ("result.bindings.0.name") in o. */
json_object *jpath(json_object *o, const char *path);
const char *jstr(json_object *o, const char *path);
int64_t jint(json_object *o, const char *path);
size_t jlen(json_object *o, const char *path);
/* errors[0].code of a response, or -1. */
int errcode(const Resp *r);
/* A binding of the given name in an array, or NULL. */
json_object *jfind(json_object *array, const char *key, const char *value);
/* The value of response header name (case-insensitive) copied into buf. */
const char *resp_header(const Resp *r, const char *name, char *buf, size_t n);

/* These evaluate their response argument once, so a call may be passed. */
#define ck_assert_status(r, st)                                                                                \
        do {                                                                                                   \
                const Resp *r_ = (r);                                                                          \
                ck_assert_msg(r_->status == (st), "%s:%d: HTTP %ld (curl %d), want %d: %.600s", __FILE__,      \
                              __LINE__, r_->status, r_->curl_code, (int) (st), r_->body ? r_->body : "");     \
        } while (0)
#define ck_assert_error(r, st, code)                                                                           \
        do {                                                                                                   \
                const Resp *r_ = (r);                                                                          \
                ck_assert_msg(r_->status == (st) && errcode(r_) == (code) &&                                   \
                                      !json_object_get_boolean(jpath(r_->json, "success")),                   \
                              "%s:%d: HTTP %ld code %d, want HTTP %d code %d: %.600s", __FILE__, __LINE__,     \
                              r_->status, errcode(r_), (int) (st), (int) (code), r_->body ? r_->body : "");   \
        } while (0)
#define ck_assert_ok(r)                                                                                        \
        do {                                                                                                   \
                const Resp *r_ = (r);                                                                          \
                ck_assert_msg(r_->status == 200 && json_object_get_boolean(jpath(r_->json, "success")),        \
                              "%s:%d: HTTP %ld (curl %d), not a success: %.600s", __FILE__, __LINE__,          \
                              r_->status, r_->curl_code, r_->body ? r_->body : "");                           \
        } while (0)

/* Runs a suite with CK_ENV and returns the process exit status. */
int sim_test_run(Suite *s);
