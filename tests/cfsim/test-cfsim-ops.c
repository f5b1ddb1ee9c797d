/* test-cfsim-ops.c: cfsim's operator side and robustness: /__sim/stats,
 * reset, requests, state, fault injection (429, 5xx, drop, truncate,
 * stall; count, rate and seed), the audit log, rate-limit emulation,
 * token auth, state persistence across a restart, malformed and oversized
 * input, and concurrent clients. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim-test.h"

#define LIST "/workers/scripts"

START_TEST(test_stats_reset_requests) {
        Resp *r;

        sim_reset();
        ck_assert_ok(api("GET", LIST, NULL));
        ck_assert_ok(api("GET", LIST, NULL));
        ck_assert_ok(api("GET", LIST, NULL));
        ck_assert_ok(api("POST", "/storage/kv/namespaces", "{\"title\":\"a\"}"));
        ck_assert_error(api("POST", "/storage/kv/namespaces", "{\"title\":\"a\"}"), 400, 10014);
        ck_assert_error(sim_call("GET", "/client/v4/nothing/here", NULL, NULL, 0, NULL), 404, 7003);
        ck_assert_error(api("PATCH", LIST, NULL), 405, 7001);

        r = op("GET", "/__sim/stats", NULL);
        ck_assert_status(r, 200);
        ck_assert_int_eq(jint(r->json, "requests"), 7);
        ck_assert_int_eq(jint(r->json, "writes"), 2);
        ck_assert_int_eq(jint(r->json, "by_route.GET /accounts/:account_id/workers/scripts"), 3);
        ck_assert_int_eq(jint(r->json, "by_route.POST /accounts/:account_id/storage/kv/namespaces"), 2);
        ck_assert_int_eq(jint(r->json, "by_status.200"), 4);
        ck_assert_int_eq(jint(r->json, "by_status.400"), 1);
        ck_assert_int_eq(jint(r->json, "by_status.404"), 1);
        ck_assert_int_eq(jint(r->json, "by_status.405"), 1);
        /* Operator routes are not counted. */
        r = op("GET", "/__sim/stats", NULL);
        ck_assert_int_eq(jint(r->json, "requests"), 7);

        r = op("GET", "/__sim/requests", NULL);
        ck_assert_status(r, 200);
        ck_assert_uint_eq(jlen(r->json, "requests"), 7);
        ck_assert_str_eq(jstr(r->json, "requests.0.method"), "GET");
        ck_assert_str_eq(jstr(r->json, "requests.0.path"), "/client/v4/accounts/" SIM_TEST_ACCOUNT "/workers/scripts");
        ck_assert_int_eq(jint(r->json, "requests.3.status"), 200);
        ck_assert_ptr_nonnull(jstr(r->json, "requests.3.time"));
        ck_assert_ptr_null(jpath(r->json, "requests.3.body"));
        /* The user agent tells writers apart (HA tests). */
        ck_assert_str_eq(jstr(r->json, "requests.0.user_agent"), "sim-test/1 (unit)");
        r = op("GET", "/__sim/requests?limit=2", NULL);
        ck_assert_uint_eq(jlen(r->json, "requests"), 2);
        ck_assert_int_eq(jint(r->json, "requests.1.status"), 405);

        /* Counters only: the namespace stays. */
        ck_assert_status(op("POST", "/__sim/reset?counters=1", NULL), 200);
        r = op("GET", "/__sim/stats", NULL);
        ck_assert_int_eq(jint(r->json, "requests"), 0);
        ck_assert_uint_eq(jlen(r->json, "by_route"), 0);
        r = api("GET", "/storage/kv/namespaces", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        /* Everything. */
        sim_reset();
        r = api("GET", "/storage/kv/namespaces", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);

        r = op("GET", "/__sim/state", NULL);
        ck_assert_status(r, 200);
        ck_assert_str_eq(jstr(r->json, "account_id"), SIM_TEST_ACCOUNT);
        ck_assert_ptr_nonnull(jpath(r->json, "scripts"));
        ck_assert_status(op("GET", "/__sim/nope", NULL), 404);
        ck_assert_status(op("GET", "/__sim/reset", NULL), 405);
}
END_TEST

static void faults(const char *json) {
        Resp *r = op("POST", "/__sim/faults", json);

        ck_assert_msg(r->status == 200, "faults %s: %ld %s", json, r->status, r->body);
}

START_TEST(test_faults_429_5xx_count) {
        Resp *r;
        char buf[64];

        sim_reset();
        faults("{\"method\":\"GET\",\"route\":\"/workers/scripts$\",\"kind\":\"429\",\"count\":1,\"retry_after\":7}");
        r = api("GET", LIST, NULL);
        ck_assert_error(r, 429, 971);
        ck_assert_str_eq(resp_header(r, "Retry-After", buf, sizeof(buf)), "7");
        ck_assert_ok(api("GET", LIST, NULL));
        /* Method filter: a PUT rule leaves GETs alone. */
        faults("[{\"method\":\"PUT\",\"route\":\"/workers/scripts\",\"kind\":\"503\",\"count\":2},"
               "{\"method\":\"POST\",\"route\":\"/storage/kv\",\"kind\":\"502\",\"count\":1},"
               "{\"route\":\"/d1/\",\"kind\":\"500\",\"count\":1,\"retry_after\":3}]");
        ck_assert_ok(api("GET", LIST, NULL));
        r = upload("w", NULL, "{\"main_module\":\"i.js\"}", "i.js", "export default {}");
        ck_assert_error(r, 503, 10013);
        ck_assert_error(upload("w", NULL, "{\"main_module\":\"i.js\"}", "i.js", "export default {}"), 503, 10013);
        ck_assert_ok(upload("w", NULL, "{\"main_module\":\"i.js\"}", "i.js", "export default {}"));
        ck_assert_status(api("POST", "/storage/kv/namespaces", "{\"title\":\"t\"}"), 502);
        ck_assert_ok(api("POST", "/storage/kv/namespaces", "{\"title\":\"t\"}"));
        r = api("GET", "/d1/database", NULL);
        ck_assert_status(r, 500);
        ck_assert_str_eq(resp_header(r, "Retry-After", buf, sizeof(buf)), "3");
        r = op("GET", "/__sim/faults", NULL);
        ck_assert_uint_eq(jlen(r->json, "faults"), 3);
        ck_assert_int_eq(jint(r->json, "faults.0.hits"), 2);
        ck_assert_int_eq(jint(r->json, "faults.0.count"), 0);
        /* A faulted write never reached a handler: not a write. */
        r = op("GET", "/__sim/stats", NULL);
        ck_assert_int_eq(jint(r->json, "writes"), 2);
        ck_assert_int_eq(jint(r->json, "by_status.503"), 2);
        /* [] clears; bad rules are refused and leave the rules alone. */
        faults("{\"kind\":\"429\"}");
        ck_assert_status(api("GET", LIST, NULL), 429);
        ck_assert_status(op("POST", "/__sim/faults", "{\"kind\":\"teapot\"}"), 400);
        ck_assert_status(op("POST", "/__sim/faults", "{\"kind\":\"429\",\"rate\":2}"), 400);
        ck_assert_status(op("POST", "/__sim/faults", "{\"kind\":\"429\",\"route\":\"(\"}"), 400);
        ck_assert_status(op("POST", "/__sim/faults", "nope"), 400);
        ck_assert_status(api("GET", LIST, NULL), 429);
        /* Operator routes are never faulted. */
        ck_assert_status(op("GET", "/__sim/stats", NULL), 200);
        faults("[]");
        ck_assert_ok(api("GET", LIST, NULL));
        r = op("GET", "/__sim/faults", NULL);
        ck_assert_uint_eq(jlen(r->json, "faults"), 0);
}
END_TEST

START_TEST(test_faults_drop_truncate_stall) {
        Resp *r;

        sim_reset();
        /* drop: the connection closes with no answer; nothing happened. */
        faults("{\"method\":\"POST\",\"route\":\"/storage/kv/namespaces$\",\"kind\":\"drop\",\"count\":1}");
        r = api("POST", "/storage/kv/namespaces", "{\"title\":\"dropped\"}");
        ck_assert_int_eq(r->status, 0);
        ck_assert_int_eq(r->curl_code, CURLE_GOT_NOTHING);
        r = api("GET", "/storage/kv/namespaces", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);

        /* truncate: the write happened, the answer breaks off. */
        faults("{\"method\":\"POST\",\"route\":\"/storage/kv/namespaces$\",\"kind\":\"truncate\",\"count\":1}");
        r = api("POST", "/storage/kv/namespaces", "{\"title\":\"truncated\"}");
        ck_assert_int_eq(r->curl_code, CURLE_PARTIAL_FILE);
        ck_assert_ptr_null(r->json);
        r = api("GET", "/storage/kv/namespaces", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);

        /* stall: answers late but answers. */
        faults("{\"route\":\"/workers/scripts$\",\"kind\":\"stall\",\"seconds\":2,\"count\":1}");
        r = api("GET", LIST, NULL);
        ck_assert_ok(r);
        ck_assert_msg(r->seconds >= 1.9, "stall took only %.2f s", r->seconds);
        r = api("GET", LIST, NULL);
        ck_assert_msg(r->seconds < 1.5, "second request stalled too (%.2f s)", r->seconds);
        faults("[]");
}
END_TEST

static unsigned fault_pattern(char *buf, size_t n) {
        unsigned fails = 0;

        for (size_t i = 0; i < n; i++) {
                Resp *r = api("GET", LIST, NULL);

                buf[i] = r->status == 200 ? '.' : 'x';
                fails += r->status != 200;
        }
        buf[n] = 0;
        return fails;
}

START_TEST(test_faults_rate_seed) {
        char a[41], b[41], c[41];
        unsigned fa, fc;

        sim_reset();
        faults("{\"route\":\"/workers/scripts$\",\"kind\":\"500\",\"rate\":0.5,\"seed\":42}");
        fa = fault_pattern(a, 40);
        faults("{\"route\":\"/workers/scripts$\",\"kind\":\"500\",\"rate\":0.5,\"seed\":42}");
        (void) fault_pattern(b, 40);
        ck_assert_str_eq(a, b); /* same seed, same sequence */
        ck_assert_msg(fa >= 8 && fa <= 32, "rate 0.5 gave %u/40 failures: %s", fa, a);
        faults("{\"route\":\"/workers/scripts$\",\"kind\":\"500\",\"rate\":0.5,\"seed\":7}");
        (void) fault_pattern(c, 40);
        ck_assert_str_ne(a, c);
        faults("{\"route\":\"/workers/scripts$\",\"kind\":\"500\",\"rate\":0.2,\"count\":3,\"seed\":1}");
        fc = fault_pattern(c, 40);
        ck_assert_uint_eq(fc, 3);
        faults("{\"route\":\"/workers/scripts$\",\"kind\":\"500\",\"rate\":0}");
        ck_assert_uint_eq(fault_pattern(c, 10), 0);
        faults("[]");
}
END_TEST

START_TEST(test_audit_log) {
        Resp *r;
        char id[64], cursor[64];
        size_t seen;

        sim_reset();
        r = api("POST", "/storage/kv/namespaces", "{\"title\":\"a\"}");
        snprintf(id, sizeof(id), "%s", jstr(r->json, "result.id"));
        ck_assert_ok(apif("PUT", "{\"title\":\"b\"}", "/storage/kv/namespaces/%s", id));
        ck_assert_ok(upload("w", NULL, "{\"main_module\":\"i.js\"}", "i.js", "export default {}"));
        ck_assert_ok(api("PUT", "/workers/scripts/w/secrets", "{\"name\":\"S\",\"text\":\"hunter2\"}"));
        ck_assert_error(api("POST", "/storage/kv/namespaces", "{\"title\":\"b\"}"), 400, 10014);
        ck_assert_ok(apif("DELETE", NULL, "/storage/kv/namespaces/%s", id));
        ck_assert_ok(api("GET", LIST, NULL)); /* reads are not logged */

        r = api("GET", "/logs/audit?since=2000-01-01&before=2100-01-01", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 6);
        ck_assert_int_eq(jint(r->json, "result_info.count"), 6);
        ck_assert_ptr_null(jpath(r->json, "result_info.cursors.after"));
        /* Newest first; the full v2 shape. */
        ck_assert_str_eq(jstr(r->json, "result.0.raw.method"), "DELETE");
        ck_assert_str_eq(jstr(r->json, "result.0.action.type"), "delete");
        ck_assert_str_eq(jstr(r->json, "result.0.action.result"), "success");
        ck_assert_ptr_nonnull(jstr(r->json, "result.0.action.time"));
        ck_assert_int_eq(jint(r->json, "result.0.raw.status_code"), 200);
        ck_assert_str_eq(jstr(r->json, "result.0.resource.type"), "kv.namespace");
        ck_assert_str_eq(jstr(r->json, "result.0.resource.id"), id);
        ck_assert_ptr_nonnull(jstr(r->json, "result.0.actor.type"));
        ck_assert_ptr_nonnull(jstr(r->json, "result.0.id"));
        ck_assert_str_eq(jstr(r->json, "result.1.action.result"), "failure");
        ck_assert_int_eq(jint(r->json, "result.1.raw.status_code"), 400);
        ck_assert_str_eq(jstr(r->json, "result.2.raw.uri"), "/accounts/" SIM_TEST_ACCOUNT "/workers/scripts/w/secrets");
        ck_assert_str_eq(jstr(r->json, "result.2.resource.id"), "w");
        ck_assert_str_eq(jstr(r->json, "result.3.resource.type"), "workers.script");
        ck_assert(strstr(r->body, "hunter2") == NULL);
        r = op("GET", "/__sim/stats", NULL);
        ck_assert_int_eq(jint(r->json, "writes"), 6);

        /* Cursor pagination. */
        seen = 0;
        cursor[0] = 0;
        for (int i = 0; i < 10; i++) {
                r = apif("GET", NULL, "/logs/audit?since=2000-01-01&before=2100-01-01&limit=4%s%s", *cursor ? "&cursor=" : "", cursor);
                ck_assert_ok(r);
                seen += jlen(r->json, "result");
                if (!jstr(r->json, "result_info.cursors.after"))
                        break;
                snprintf(cursor, sizeof(cursor), "%s", jstr(r->json, "result_info.cursors.after"));
        }
        ck_assert_uint_eq(seen, 6);
        r = api("GET", "/logs/audit?since=2000-01-01&before=2100-01-01&direction=asc&limit=1", NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.action.type"), "create");
        ck_assert_ptr_nonnull(jstr(r->json, "result_info.cursors.after"));
        /* Time window. */
        r = api("GET", "/logs/audit?since=2099-01-01T00:00:00Z&before=2100-01-01", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);
        r = api("GET", "/logs/audit?since=2000-01-01&before=2099-01-01T00:00:00.5Z", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 6);
        r = api("GET", "/logs/audit?since=1999-01-01&before=2000-01-01T00:00:00Z", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);
        ck_assert_error(api("GET", "/logs/audit?since=yesterday&before=2100-01-01", NULL), 400, 10021);
        /* Audit Logs v2 requires both since and before. */
        ck_assert_error(api("GET", "/logs/audit", NULL), 400, 10021);
        ck_assert_error(api("GET", "/logs/audit?since=2000-01-01", NULL), 400, 10021);
        ck_assert_error(api("GET", "/logs/audit?before=2100-01-01", NULL), 400, 10021);
        /* resource.product, actor and raw on every entry. */
        r = api("GET", "/logs/audit?" "since=2000-01-01&before=2100-01-01", NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.resource.product"), "workers_kv");
        ck_assert_ptr_nonnull(jstr(r->json, "result.0.actor.id"));
        ck_assert_ptr_nonnull(jstr(r->json, "result.0.raw.method"));
}
END_TEST

/* Sends raw bytes on a fresh connection and returns what came back. */
static char *raw_exchange(const char *req, size_t len, size_t body_bytes) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) sim_test_current.port) };
        static char buf[8192];
        size_t got = 0;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        ck_assert_int_eq(connect(fd, (struct sockaddr *) &a, sizeof(a)), 0);
        ck_assert_int_eq(send(fd, req, len, MSG_NOSIGNAL), (ssize_t) len);
        if (body_bytes) {
                static char chunk[65536];

                memset(chunk, 'a', sizeof(chunk));
                for (size_t sent = 0; sent < body_bytes;) {
                        ssize_t n = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
                        if (n <= 0)
                                break;
                        sent += (size_t) n;
                }
        }
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t n;

                if (poll(&p, 1, 10000) <= 0)
                        break;
                n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
                if (n <= 0)
                        break;
                got += (size_t) n;
                if (got >= sizeof(buf) - 1 || (strstr(buf, "\r\n\r\n") && strstr(buf, "\"result\"")))
                        break;
        }
        buf[got] = 0;
        close(fd);
        return buf;
}

START_TEST(test_malformed_input) {
        static const char *const bad_forms[] = {
                "garbage",
                "--a\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{}",             /* no closing */
                "--a\r\nContent-Type: text/plain\r\n\r\nx\r\n--a--\r\n",                          /* no disposition */
                "--a\r\nContent-Disposition: form-data; name=\"metadata\r\n\r\n{}\r\n--a--\r\n", /* open quote */
                "--a\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n[1,2]\r\n--a--\r\n",
                "--a\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"main_module\":\"x\"}\r\n--a--\r\n",
                "--a--\r\n",
                "",
        };
        const char *path = "/client/v4/accounts/" SIM_TEST_ACCOUNT "/workers/scripts/m";
        char *big, *deep;
        Resp *r;

        sim_reset();
        for (size_t i = 0; i < sizeof(bad_forms) / sizeof(bad_forms[0]); i++) {
                r = sim_call("PUT", path, "multipart/form-data; boundary=a", bad_forms[i], strlen(bad_forms[i]), NULL);
                ck_assert_error(r, 400, 10021);
        }
        ck_assert_error(sim_call("PUT", path, "multipart/form-data", "--a--", 5, NULL), 400, 10021);
        ck_assert_error(sim_call("PUT", path, "multipart/form-data; boundary=", "--a--", 5, NULL), 400, 10021);
        /* Too many parts. */
        big = malloc(2000 * 64);
        big[0] = 0;
        for (int i = 0; i < 1100; i++)
                strcat(big, "--a\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\nx\r\n");
        strcat(big, "--a--\r\n");
        ck_assert_error(sim_call("PUT", path, "multipart/form-data; boundary=a", big, strlen(big), NULL), 400, 10021);
        free(big);

        /* JSON endpoints: not JSON, wrong type, too deep. */
        ck_assert_error(api("POST", "/storage/kv/namespaces", "{title: x}"), 400, 10021);
        ck_assert_error(api("POST", "/storage/kv/namespaces", "[]"), 400, 10021);
        ck_assert_error(api("POST", "/storage/kv/namespaces", "{\"title\":\"a\"} trailing"), 400, 10021);
        ck_assert_error(sim_call("POST", "/client/v4/accounts/" SIM_TEST_ACCOUNT "/queues", NULL, NULL, 0, NULL), 400, 10021);
        deep = malloc(20001);
        memset(deep, '[', 20000);
        deep[20000] = 0;
        ck_assert_error(api("POST", "/storage/kv/namespaces", deep), 400, 10021);
        ck_assert_error(api("POST", "/queues", "{\"queue_name\":\"\\u0000\"}"), 400, 11003);
        free(deep);
        ck_assert_error(api("PUT", "/workers/scripts/m%00x", "{}"), 404, 7003);
        ck_assert_error(sim_call("GET", "/", NULL, NULL, 0, NULL), 404, 7003);
        ck_assert_error(sim_call("GET", "/client/v4", NULL, NULL, 0, NULL), 404, 7003);

        /* Oversized: 413 with an envelope, from the Content-Length alone. */
        {
                static const char hdr[] =
                        "PUT /client/v4/accounts/" SIM_TEST_ACCOUNT "/workers/scripts/huge HTTP/1.1\r\n"
                        "Host: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=a\r\n"
                        "Content-Length: 67108865\r\n\r\n";
                char *resp = raw_exchange(hdr, strlen(hdr), 0);

                ck_assert_msg(strncmp(resp, "HTTP/1.1 413", 12) == 0, "got: %.200s", resp);
                ck_assert_ptr_nonnull(strstr(resp, "\"success\":false"));
        }
        /* Chunked past the cap: consumed, then 413. */
        {
                static const char hdr[] =
                        "POST /client/v4/accounts/" SIM_TEST_ACCOUNT "/storage/kv/namespaces HTTP/1.1\r\n"
                        "Host: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
                char *req = malloc(strlen(hdr) + 70 * 1024 * 1024), *p;
                size_t len;

                p = req + sprintf(req, "%s", hdr);
                for (int i = 0; i < 65 * 16; i++) { /* 65 MiB in 64 KiB chunks */
                        p += sprintf(p, "10000\r\n");
                        memset(p, 'a', 65536);
                        p += 65536;
                        p += sprintf(p, "\r\n");
                }
                p += sprintf(p, "0\r\n\r\n");
                len = (size_t) (p - req);
                {
                        char *resp = raw_exchange(req, len, 0);

                        ck_assert_msg(strncmp(resp, "HTTP/1.1 413", 12) == 0, "got: %.200s", resp);
                }
                free(req);
        }
        /* Still alive and serving. */
        ck_assert_ok(api("GET", LIST, NULL));
}
END_TEST

/* Every route gets JSON of every wrong shape (and a few right-looking
 * ones with wrong member types): cfsim must answer each with a 2xx or 4xx
 * envelope, never a 5xx or a dropped connection. Run under ASan this is
 * the handlers' robustness test. */
START_TEST(test_every_route_survives_garbage) {
        static const char *const routes[][2] = {
                { "PUT", "/workers/scripts/g" },
                { "GET", "/workers/scripts/g" },
                { "PUT", "/workers/scripts/g/content" },
                { "PATCH", "/workers/scripts/g/settings" },
                { "PATCH", "/workers/scripts/g/script-settings" },
                { "PUT", "/workers/scripts/g/schedules" },
                { "PUT", "/workers/scripts/g/secrets" },
                { "DELETE", "/workers/scripts/g/secrets/S" },
                { "PATCH", "/workers/scripts/g/secrets-bulk" },
                { "POST", "/workers/scripts/g/subdomain" },
                { "POST", "/workers/scripts/g/versions" },
                { "POST", "/workers/scripts/g/deployments" },
                { "GET", "/workers/scripts/g/versions?page=-1" },
                { "GET", "/workers/scripts/g/references" },
                { "PUT", "/workers/subdomain" },
                { "POST", "/storage/kv/namespaces" },
                { "PUT", "/storage/kv/namespaces/K" },
                { "POST", "/r2/buckets" },
                { "PATCH", "/r2/buckets/bucket-g" },
                { "POST", "/d1/database" },
                { "PATCH", "/d1/database/D" },
                { "POST", "/queues" },
                { "PATCH", "/queues/Q" },
                { "POST", "/queues/Q/consumers" },
                { "PUT", "/queues/Q/consumers/C" },
                { "POST", "/secrets_store/stores" },
                { "POST", "/secrets_store/stores/ST/secrets" },
                { "PATCH", "/secrets_store/stores/ST/secrets/SE" },
                { "POST", "/secrets_store/stores/ST/secrets/SE/duplicate" },
                { "GET", "/logs/audit?limit=x&cursor=-5&since=" },
        };
        static const char *const bodies[] = {
                "null", "1", "\"x\"", "[]", "[null]", "{}", "[{}]", "[[[]]]",
                "{\"name\":1,\"title\":[],\"queue_name\":{},\"bindings\":\"x\",\"secrets\":[],\"versions\":{}}",
                "{\"bindings\":[1,null,{\"name\":\"a\",\"type\":\"inherit\",\"version_id\":5}],\"keep_bindings\":[1],\"migrations\":[]}",
                "{\"settings\":[],\"enabled\":\"yes\",\"versions\":[{\"version_id\":null,\"percentage\":\"100\"}]}",
                "{\"migrations\":{\"steps\":[1,{\"new_classes\":[2]},{\"renamed_classes\":[{}]}]},\"main_module\":7}",
                "[{\"name\":\"n\",\"value\":5,\"scopes\":\"workers\"}]",
                "{\"secrets\":{\"A\":1,\"B\":{\"type\":\"secret_key\"},\"C\":{\"text\":[]}}}",
        };
        Resp *r;
        char id[5][64];

        sim_reset();
        /* Real objects behind the ids, so handlers get past their 404s. */
        ck_assert_ok(upload("g", NULL, "{\"main_module\":\"i.js\",\"bindings\":[{\"name\":\"S\",\"type\":\"secret_text\",\"text\":\"x\"}]}",
                            "i.js", "export default {}"));
        r = api("POST", "/storage/kv/namespaces", "{\"title\":\"g\"}");
        snprintf(id[0], sizeof(id[0]), "%s", jstr(r->json, "result.id"));
        ck_assert_ok(api("POST", "/r2/buckets", "{\"name\":\"bucket-g\"}"));
        r = api("POST", "/d1/database", "{\"name\":\"g\"}");
        snprintf(id[1], sizeof(id[1]), "%s", jstr(r->json, "result.uuid"));
        r = api("POST", "/queues", "{\"queue_name\":\"g\"}");
        snprintf(id[2], sizeof(id[2]), "%s", jstr(r->json, "result.queue_id"));
        ck_assert_ok(upload("gc", NULL, "{\"main_module\":\"i.js\"}", "i.js", "export default { async queue() {} }"));
        ck_assert_ok(apif("POST", "{\"type\":\"worker\",\"script_name\":\"gc\"}", "/queues/%s/consumers", id[2]));
        r = api("POST", "/secrets_store/stores", "{\"name\":\"g\"}");
        snprintf(id[3], sizeof(id[3]), "%s", jstr(r->json, "result.id"));
        r = apif("POST", "[{\"name\":\"g\",\"value\":\"v\",\"scopes\":[\"workers\"]}]", "/secrets_store/stores/%s/secrets", id[3]);
        snprintf(id[4], sizeof(id[4]), "%s", jstr(r->json, "result.0.id"));

        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
                for (size_t k = 0; k < sizeof(bodies) / sizeof(bodies[0]); k++) {
                        char sub[512], *p;
                        const char *from[] = { "/K", "/D", "/Q", "/ST", "/SE", "/C" };
                        const char *to[] = { id[0], id[1], id[2], id[3], id[4], "gc" };

                        snprintf(sub, sizeof(sub), "%s", routes[i][1]);
                        for (size_t f = 0; f < 6; f++)
                                if ((p = strstr(sub, from[f])) && (p[strlen(from[f])] == '/' || p[strlen(from[f])] == 0)) {
                                        char rest[256];

                                        snprintf(rest, sizeof(rest), "%s", p + strlen(from[f]));
                                        snprintf(p, sizeof(sub) - (size_t) (p - sub), "/%s%s", to[f], rest);
                                }
                        r = api(routes[i][0], sub, bodies[k]);
                        ck_assert_msg(r->status >= 200 && r->status < 500 && r->json,
                                      "%s %s with %s: HTTP %ld curl %d: %.300s", routes[i][0], sub, bodies[k], r->status,
                                      r->curl_code, r->body ? r->body : "");
                }
        r = op("GET", "/__sim/state", NULL);
        ck_assert_status(r, 200);
        ck_assert_ok(api("GET", LIST, NULL));
}
END_TEST

typedef struct Worker {
        unsigned port, id, ok;
} Worker;

static size_t sink(char *d, size_t s, size_t n, void *u) {
        return s * n;
}

static void *client(void *arg) {
        Worker *w = arg;
        CURL *c = curl_easy_init();
        char url[256], body[64];

        for (int i = 0; i < 40; i++) {
                long st = 0;
                bool write = i % 2 == 0;

                snprintf(url, sizeof(url), "http://127.0.0.1:%u/client/v4/accounts/%s/storage/kv/namespaces%s", w->port,
                         SIM_TEST_ACCOUNT, write ? "" : "?per_page=5");
                curl_easy_reset(c);
                curl_easy_setopt(c, CURLOPT_URL, url);
                curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
                curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
                if (write) {
                        snprintf(body, sizeof(body), "{\"title\":\"t-%u-%d\"}", w->id, i);
                        curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, body);
                }
                if (curl_easy_perform(c) == CURLE_OK && curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st) == CURLE_OK &&
                    st == 200)
                        w->ok++;
        }
        curl_easy_cleanup(c);
        return NULL;
}

START_TEST(test_concurrent_clients) {
        pthread_t t[8];
        Worker w[8];
        unsigned ok = 0;
        Resp *r;

        sim_reset();
        for (unsigned i = 0; i < 8; i++) {
                w[i] = (Worker) { .port = sim_test_current.port, .id = i };
                ck_assert_int_eq(pthread_create(&t[i], NULL, client, &w[i]), 0);
        }
        for (unsigned i = 0; i < 8; i++) {
                pthread_join(t[i], NULL);
                ok += w[i].ok;
        }
        ck_assert_uint_eq(ok, 8 * 40);
        r = api("GET", "/storage/kv/namespaces?per_page=1", NULL);
        ck_assert_int_eq(jint(r->json, "result_info.total_count"), 8 * 20);
        r = op("GET", "/__sim/stats", NULL);
        ck_assert_int_eq(jint(r->json, "requests"), 8 * 40 + 1);
        ck_assert_int_eq(jint(r->json, "writes"), 8 * 20);
}
END_TEST

/* ---- tests with their own cfsim process ---------------------------------- */

START_TEST(test_token_auth) {
        static const char *const args[] = { "--token", "s3cret-token", NULL };
        static const char *const good[] = { "Authorization: Bearer s3cret-token", NULL };
        static const char *const bad[] = { "Authorization: Bearer nope", NULL };
        const char *path = "/client/v4/accounts/" SIM_TEST_ACCOUNT "/workers/scripts";
        SimProc p;
        Resp *r;

        ck_assert_int_eq(sim_test_start(&p, args), 0);
        r = sim_call("GET", path, NULL, NULL, 0, NULL);
        ck_assert_error(r, 403, 10000);
        ck_assert_error(sim_call("GET", path, NULL, NULL, 0, bad), 403, 10000);
        ck_assert_ok(sim_call("GET", path, NULL, NULL, 0, good));
        ck_assert_error(sim_call("GET", "/client/v4/nothing", NULL, NULL, 0, NULL), 403, 10000);
        ck_assert_status(op("GET", "/__sim/stats", NULL), 200);
        ck_assert_int_eq(sim_test_stop(&p), 0);
}
END_TEST

/* Two tokens: each write's audit entry carries its token's id (the one
 * /user/tokens/verify shows), actor_token_id.not (repeatable, SDK 6.5's
 * wire form) leaves a token's entries out, --audit-page-max cuts pages. */
START_TEST(test_audit_tokens) {
        static const char *const args[] = { "--token", "tok-a", "--token", "tok-b", "--audit-page-max", "2", NULL };
        static const char *const ha[] = { "Authorization: Bearer tok-a", NULL };
        static const char *const hb[] = { "Authorization: Bearer tok-b", NULL };
        const char *kv = "/client/v4/accounts/" SIM_TEST_ACCOUNT "/storage/kv/namespaces";
        const char *feed = "/client/v4/accounts/" SIM_TEST_ACCOUNT "/logs/audit?since=2000-01-01&before=2100-01-01";
        char ida[33], idb[33], path[512];
        SimProc p;
        Resp *r;

        ck_assert_int_eq(sim_test_start(&p, args), 0);
        r = sim_call("GET", "/client/v4/user/tokens/verify", NULL, NULL, 0, ha);
        ck_assert_ok(r);
        snprintf(ida, sizeof(ida), "%s", jstr(r->json, "result.id"));
        r = sim_call("GET", "/client/v4/user/tokens/verify", NULL, NULL, 0, hb);
        ck_assert_ok(r);
        snprintf(idb, sizeof(idb), "%s", jstr(r->json, "result.id"));
        ck_assert_uint_eq(strlen(ida), 32);
        ck_assert_str_ne(ida, idb);
        for (int i = 0; i < 3; i++) {
                char body[64];

                snprintf(body, sizeof(body), "{\"title\":\"a%d\"}", i);
                ck_assert_ok(sim_call("POST", kv, "application/json", body, strlen(body), ha));
        }
        ck_assert_ok(sim_call("POST", kv, "application/json", "{\"title\":\"b\"}", strlen("{\"title\":\"b\"}"), hb));

        /* Pages of two (limit=1000 asked); the newest entry is b's. */
        snprintf(path, sizeof(path), "%s&limit=1000", feed);
        r = sim_call("GET", path, NULL, NULL, 0, ha);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 2);
        ck_assert_ptr_nonnull(jstr(r->json, "result_info.cursors.after"));
        ck_assert_str_eq(jstr(r->json, "result.0.actor.token_id"), idb);
        ck_assert_str_eq(jstr(r->json, "result.1.actor.token_id"), ida);
        /* Without a's entries: b's only, one page. */
        snprintf(path, sizeof(path), "%s&actor_token_id.not=%s", feed, ida);
        r = sim_call("GET", path, NULL, NULL, 0, ha);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        ck_assert_str_eq(jstr(r->json, "result.0.actor.token_id"), idb);
        ck_assert_ptr_null(jpath(r->json, "result_info.cursors"));
        /* Both left out (the parameter repeated): nothing. */
        snprintf(path, sizeof(path), "%s&actor_token_id.not=%s&actor_token_id.not=%s", feed, ida, idb);
        r = sim_call("GET", path, NULL, NULL, 0, ha);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);
        /* An id no entry has leaves all in. */
        snprintf(path, sizeof(path), "%s&actor_token_id.not=0123&limit=5", feed);
        r = sim_call("GET", path, NULL, NULL, 0, ha);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 2);
        ck_assert_int_eq(sim_test_stop(&p), 0);
}
END_TEST

START_TEST(test_rate_limit) {
        static const char *const args[] = { "--rate-limit", "5/60", "--rate-limit-block", "2", NULL };
        static const char *const other_token[] = { "Authorization: Bearer other", NULL };
        SimProc p;
        Resp *r;
        char buf[128], path[256];
        long ra;

        ck_assert_int_eq(sim_test_start(&p, args), 0);
        for (int i = 0; i < 5; i++) {
                r = api("GET", LIST, NULL);
                ck_assert_ok(r);
                ck_assert_ptr_nonnull(resp_header(r, "Ratelimit", buf, sizeof(buf)));
                {
                        char want[64];

                        snprintf(want, sizeof(want), "\"default\";r=%d;t=", 4 - i);
                        ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "Ratelimit: %s, want %s...", buf, want);
                }
                ck_assert_str_eq(resp_header(r, "Ratelimit-Policy", buf, sizeof(buf)), "\"burst\";q=5;w=60");
        }
        /* Past the limit: 429 with Retry-After = the block length. */
        r = api("GET", LIST, NULL);
        ck_assert_error(r, 429, 971);
        ck_assert_ptr_nonnull(resp_header(r, "Retry-After", buf, sizeof(buf)));
        ra = strtol(buf, NULL, 10);
        ck_assert_msg(ra >= 1 && ra <= 2, "Retry-After %ld", ra);
        ck_assert_str_eq(resp_header(r, "Ratelimit", buf, sizeof(buf)), "\"default\";r=0;t=2");
        ck_assert_error(api("POST", "/storage/kv/namespaces", "{\"title\":\"x\"}"), 429, 971);
        /* Per token: another token has its own window. */
        snprintf(path, sizeof(path), "/client/v4/accounts/%s%s", SIM_TEST_ACCOUNT, LIST);
        ck_assert_ok(sim_call("GET", path, NULL, NULL, 0, other_token));
        /* The block ends after its length, then a new window opens. */
        usleep(2100 * 1000);
        r = api("GET", LIST, NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(resp_header(r, "Ratelimit", buf, sizeof(buf)), "\"default\";r=4;t=60");
        for (int i = 0; i < 4; i++)
                ck_assert_ok(api("GET", LIST, NULL));
        ck_assert_error(api("GET", LIST, NULL), 429, 971);
        /* Operator routes are not limited; a counter reset clears the block. */
        ck_assert_status(op("GET", "/__sim/stats", NULL), 200);
        ck_assert_status(op("POST", "/__sim/reset?counters=1", NULL), 200);
        ck_assert_ok(api("GET", LIST, NULL));
        ck_assert_int_eq(sim_test_stop(&p), 0);
}
END_TEST

/* The default is Cloudflare's: 1,200 per 300 s, headers on every answer. */
START_TEST(test_rate_limit_default) {
        char buf[128];
        Resp *r;

        sim_reset();
        r = api("GET", LIST, NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(resp_header(r, "Ratelimit-Policy", buf, sizeof(buf)), "\"burst\";q=1200;w=300");
        ck_assert_ptr_nonnull(resp_header(r, "Ratelimit", buf, sizeof(buf)));
        ck_assert_int_eq(strncmp(buf, "\"default\";r=1199;t=", 19), 0);
        r = api("GET", "/workers/scripts/nope/settings", NULL);
        ck_assert_error(r, 404, 10007);
        ck_assert_ptr_nonnull(resp_header(r, "Ratelimit", buf, sizeof(buf)));
}
END_TEST

START_TEST(test_check_bindings) {
        static const char *const args[] = { NULL };
        char meta[1024], kv[64], db[64], st[64];
        SimProc p;
        Resp *r;

        ck_assert_int_eq(sim_test_start(&p, args), 0);
        r = upload("w", NULL,
                   "{\"main_module\":\"i.js\",\"bindings\":[{\"name\":\"K\",\"type\":\"kv_namespace\",\"namespace_id\":\"11111111111111111111111111111111\"},"
                   "{\"name\":\"B\",\"type\":\"r2_bucket\",\"bucket_name\":\"nope\"},{\"name\":\"Q\",\"type\":\"queue\",\"queue_name\":\"nope\"}]}",
                   "i.js", "export default {}");
        ck_assert_error(r, 400, 10041);
        ck_assert_uint_eq(jlen(r->json, "errors"), 3);
        r = api("POST", "/storage/kv/namespaces", "{\"title\":\"k\"}");
        snprintf(kv, sizeof(kv), "%s", jstr(r->json, "result.id"));
        r = api("POST", "/d1/database", "{\"name\":\"d\"}");
        snprintf(db, sizeof(db), "%s", jstr(r->json, "result.uuid"));
        ck_assert_ok(api("POST", "/r2/buckets", "{\"name\":\"bucket\"}"));
        ck_assert_ok(api("POST", "/queues", "{\"queue_name\":\"q\"}"));
        r = api("POST", "/secrets_store/stores", "{\"name\":\"s\"}");
        snprintf(st, sizeof(st), "%s", jstr(r->json, "result.id"));
        ck_assert_ok(apif("POST", "[{\"name\":\"tok\",\"value\":\"v\",\"scopes\":[\"workers\"]}]", "/secrets_store/stores/%s/secrets", st));
        snprintf(meta, sizeof(meta),
                 "{\"main_module\":\"i.js\",\"bindings\":[{\"name\":\"K\",\"type\":\"kv_namespace\",\"namespace_id\":\"%s\"},"
                 "{\"name\":\"B\",\"type\":\"r2_bucket\",\"bucket_name\":\"bucket\"},{\"name\":\"Q\",\"type\":\"queue\",\"queue_name\":\"q\"},"
                 "{\"name\":\"D\",\"type\":\"d1\",\"id\":\"%s\"},"
                 "{\"name\":\"T\",\"type\":\"secrets_store_secret\",\"store_id\":\"%s\",\"secret_name\":\"tok\"}]}",
                 kv, db, st);
        ck_assert_ok(upload("w", NULL, meta, "i.js", "export default {}"));
        /* A deleted resource fails the next upload that keeps it. */
        ck_assert_ok(apif("DELETE", NULL, "/d1/database/%s", db));
        r = upload("w", NULL, "{\"main_module\":\"i.js\",\"bindings\":[{\"name\":\"D\",\"type\":\"inherit\"}]}", "i.js",
                   "export default {}");
        ck_assert_error(r, 400, 10181);
        ck_assert_int_eq(sim_test_stop(&p), 0);
}
END_TEST

START_TEST(test_persistence) {
        char dir[256], state[300];
        const char *args[] = { "--state", state, NULL };
        struct stat st;
        SimProc p;
        Resp *r;
        FILE *f;
        char *data;
        long n;

        snprintf(dir, sizeof(dir), "%s/cfsim-test-XXXXXX", getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(state, sizeof(state), "%s/state.json", dir);
        ck_assert_int_eq(sim_test_start(&p, args), 0);
        ck_assert_ok(api("POST", "/storage/kv/namespaces", "{\"title\":\"kept\"}"));
        ck_assert_ok(upload("w", NULL,
                            "{\"main_module\":\"i.js\",\"bindings\":[{\"name\":\"S\",\"type\":\"secret_text\",\"text\":\"hunter2\"},"
                            "{\"name\":\"V\",\"type\":\"plain_text\",\"text\":\"v\"}]}",
                            "i.js", "export default {}"));
        r = api("GET", LIST, NULL);
        {
                char etag[80];

                snprintf(etag, sizeof(etag), "%s", jstr(r->json, "result.0.etag"));
                ck_assert_int_eq(sim_test_stop(&p), 0);

                ck_assert_int_eq(stat(state, &st), 0);
                ck_assert_int_eq(st.st_mode & 0777, 0600);
                f = fopen(state, "r");
                fseek(f, 0, SEEK_END);
                n = ftell(f);
                rewind(f);
                data = calloc(1, (size_t) n + 1);
                ck_assert_int_eq(fread(data, 1, (size_t) n, f), n);
                fclose(f);
                ck_assert(strstr(data, "hunter2") == NULL);
                free(data);

                ck_assert_int_eq(sim_test_start(&p, args), 0);
                r = api("GET", "/storage/kv/namespaces", NULL);
                ck_assert_str_eq(jstr(r->json, "result.0.title"), "kept");
                r = api("GET", LIST, NULL);
                ck_assert_str_eq(jstr(r->json, "result.0.etag"), etag);
                r = api("GET", "/workers/scripts/w/settings", NULL);
                ck_assert_ptr_nonnull(jfind(jpath(r->json, "result.bindings"), "name", "S"));
                r = api("GET", "/logs/audit?since=2000-01-01&before=2100-01-01", NULL);
                ck_assert_uint_eq(jlen(r->json, "result"), 2);
                /* Writes are saved by the saver thread within a second,
                 * without waiting for the exit. */
                ck_assert_ok(api("POST", "/d1/database", "{\"name\":\"later\"}"));
                {
                        bool saved = false;

                        for (int i = 0; i < 50 && !saved; i++) {
                                usleep(100000);
                                f = fopen(state, "r");
                                if (f) {
                                        static char buf[1 << 16];
                                        size_t got = fread(buf, 1, sizeof(buf) - 1, f);

                                        buf[got] = 0;
                                        saved = strstr(buf, "\"later\"") != NULL;
                                        fclose(f);
                                }
                        }
                        ck_assert_msg(saved, "the state file did not get the new database within 5 s");
                }
                ck_assert_int_eq(sim_test_stop(&p), 0);
        }
        ck_assert_int_eq(sim_test_start(&p, args), 0);
        r = api("GET", "/d1/database", NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.name"), "later");
        ck_assert_int_eq(sim_test_stop(&p), 0);

        /* No temporary files left; a corrupt file refuses to start. */
        {
                char cmd[700];

                snprintf(cmd, sizeof(cmd), "test \"$(ls -A %s)\" = state.json", dir);
                ck_assert_int_eq(system(cmd), 0);
                f = fopen(state, "w");
                fputs("{not json", f);
                fclose(f);
                ck_assert_int_lt(sim_test_start(&p, args), 0);
                snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
                ck_assert_int_eq(system(cmd), 0);
        }
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("cfsim-ops");
        TCase *tc = tcase_create("ops"), *own = tcase_create("own-process");

        tcase_add_unchecked_fixture(tc, sim_test_fixture_start, sim_test_fixture_stop);
        tcase_set_timeout(tc, 90);
        tcase_add_test(tc, test_stats_reset_requests);
        tcase_add_test(tc, test_faults_429_5xx_count);
        tcase_add_test(tc, test_faults_drop_truncate_stall);
        tcase_add_test(tc, test_faults_rate_seed);
        tcase_add_test(tc, test_audit_log);
        tcase_add_test(tc, test_malformed_input);
        tcase_add_test(tc, test_every_route_survives_garbage);
        tcase_add_test(tc, test_concurrent_clients);
        tcase_add_test(tc, test_rate_limit_default);
        suite_add_tcase(s, tc);
        tcase_set_timeout(own, 60);
        tcase_add_test(own, test_token_auth);
        tcase_add_test(own, test_audit_tokens);
        tcase_add_test(own, test_rate_limit);
        tcase_add_test(own, test_persistence);
        tcase_add_test(own, test_check_bindings);
        suite_add_tcase(s, own);
        return s;
}

int main(void) {
        return sim_test_run(suite());
}
