/* sim-test.c: see sim-test.h. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim-test.h"

SimProc sim_test_current;
static Resp ring[SIM_TEST_RING];
static unsigned ring_next;

static const char *cfsim_path(char *buf, size_t n) {
        const char *top = getenv("top_builddir");

        snprintf(buf, n, "%s/tests/cfsim/cfsim", top && *top ? top : ".");
        return buf;
}

int sim_test_start(SimProc *ret, const char *const *extra_args) {
        char path[4096], line[512] = "";
        const char *argv[32];
        size_t argc = 0, got = 0;
        int fds[2];
        pid_t pid;
        const char *p;

        cfsim_path(path, sizeof(path));
        argv[argc++] = path;
        argv[argc++] = "--host";
        argv[argc++] = "127.0.0.1";
        argv[argc++] = "--port";
        argv[argc++] = "0";
        for (size_t i = 0; extra_args && extra_args[i] && argc < 30; i++)
                argv[argc++] = extra_args[i];
        argv[argc] = NULL;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(fds[1], STDOUT_FILENO);
                execv(path, (char *const *) argv);
                _exit(127);
        }
        close(fds[1]);
        while (got < sizeof(line) - 1 && !strchr(line, '\n')) {
                struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
                ssize_t n;

                if (poll(&pfd, 1, 5000) <= 0)
                        break;
                n = read(fds[0], line + got, sizeof(line) - 1 - got);
                if (n <= 0)
                        break;
                got += (size_t) n;
                line[got] = 0;
        }
        close(fds[0]);
        p = strstr(line, "cfsim listening on http://127.0.0.1:");
        if (!p) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                return -EIO;
        }
        *ret = (SimProc) { .pid = pid, .port = (unsigned) strtoul(p + strlen("cfsim listening on http://127.0.0.1:"), NULL, 10) };
        sim_test_current = *ret;
        return 0;
}

int sim_test_stop(SimProc *p) {
        int status;

        if (p->pid <= 0)
                return -1;
        kill(p->pid, SIGTERM);
        for (int i = 0; i < 1000; i++) {
                pid_t r = waitpid(p->pid, &status, WNOHANG);

                if (r == p->pid) {
                        p->pid = 0;
                        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                }
                usleep(10000);
        }
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
        return -1;
}

static SimProc fixture_proc;

void sim_test_fixture_start(void) {
        if (sim_test_start(&fixture_proc, NULL) < 0) {
                fprintf(stderr, "cannot start cfsim\n");
                exit(1);
        }
}

void sim_test_fixture_stop(void) {
        int r = sim_test_stop(&fixture_proc);

        /* A sanitizer report or a crash at exit fails the whole program. */
        if (r != 0) {
                fprintf(stderr, "cfsim did not exit cleanly (status %d)\n", r);
                exit(1);
        }
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata) {
        Resp *r = userdata;
        size_t n = size * nmemb;
        char *b = realloc(r->body, r->size + n + 1);

        if (!b)
                return 0;
        memcpy(b + r->size, data, n);
        r->body = b;
        r->size += n;
        r->body[r->size] = 0;
        return n;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *userdata) {
        Resp *r = userdata;
        size_t n = size * nmemb, old = r->headers ? strlen(r->headers) : 0;
        char *b = realloc(r->headers, old + n + 1);

        if (!b)
                return 0;
        memcpy(b + old, data, n);
        b[old + n] = 0;
        r->headers = b;
        return n;
}

static Resp *resp_new(void) {
        Resp *r = &ring[ring_next++ % SIM_TEST_RING];

        free(r->body);
        free(r->headers);
        json_object_put(r->json);
        *r = (Resp) {};
        return r;
}

static Resp *perform(const char *method, const char *path, const char *ctype, const void *body, size_t len,
                     const char *const *headers, curl_mime *mime) {
        Resp *r = resp_new();
        struct curl_slist *h = NULL;
        CURL *c = curl_easy_init();
        char url[8192], buf[512];
        struct timespec t0, t1;

        snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", sim_test_current.port, path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "sim-test/1 (unit)");
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
        if (ctype) {
                snprintf(buf, sizeof(buf), "Content-Type: %s", ctype);
                h = curl_slist_append(h, buf);
        }
        h = curl_slist_append(h, "Expect:");
        for (size_t i = 0; headers && headers[i]; i++)
                h = curl_slist_append(h, headers[i]);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        if (mime)
                curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
        else if (body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
        }
        if (strcmp(method, "GET") == 0)
                curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        r->curl_code = (int) curl_easy_perform(c);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        r->seconds = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (r->curl_code == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        if (r->body)
                r->json = json_tokener_parse(r->body);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        return r;
}

Resp *sim_call(const char *method, const char *path, const char *ctype, const void *body, size_t len,
               const char *const *headers) {
        return perform(method, path, ctype, body, len, headers, NULL);
}

Resp *api(const char *method, const char *sub, const char *json) {
        char path[8192];

        snprintf(path, sizeof(path), "/client/v4/accounts/%s%s", SIM_TEST_ACCOUNT, sub);
        return perform(method, path, json ? "application/json" : NULL, json, json ? strlen(json) : 0, NULL, NULL);
}

Resp *apif(const char *method, const char *json, const char *fmt, ...) {
        char sub[4096];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sub, sizeof(sub), fmt, ap);
        va_end(ap);
        return api(method, sub, json);
}

Resp *upload(const char *name, const char *query, const char *metadata, const char *main, const char *code) {
        CURL *tmp = curl_easy_init();
        curl_mime *mime = curl_mime_init(tmp);
        curl_mimepart *part;
        char path[4096];
        Resp *r;

        part = curl_mime_addpart(mime);
        curl_mime_name(part, "metadata");
        curl_mime_data(part, metadata, CURL_ZERO_TERMINATED);
        part = curl_mime_addpart(mime);
        curl_mime_name(part, main);
        curl_mime_filename(part, main);
        curl_mime_type(part, "application/javascript+module");
        curl_mime_data(part, code, CURL_ZERO_TERMINATED);
        snprintf(path, sizeof(path), "/client/v4/accounts/%s/workers/scripts/%s%s%s", SIM_TEST_ACCOUNT, name,
                 query ? "?" : "", query ? query : "");
        r = perform("PUT", path, NULL, NULL, 0, NULL, mime);
        curl_mime_free(mime);
        curl_easy_cleanup(tmp);
        return r;
}

Resp *op(const char *method, const char *path, const char *json) {
        return perform(method, path, json ? "application/json" : NULL, json, json ? strlen(json) : 0, NULL, NULL);
}

void sim_reset(void) {
        Resp *r = op("POST", "/__sim/reset", NULL);

        ck_assert_msg(r->status == 200, "reset failed: %ld", r->status);
}

json_object *jpath(json_object *o, const char *path) {
        char buf[512], *save = NULL;

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *t = strtok_r(buf, ".", &save); t && o; t = strtok_r(NULL, ".", &save)) {
                if (json_object_is_type(o, json_type_array)) {
                        char *end;
                        long i = strtol(t, &end, 10);

                        if (*end || i < 0 || (size_t) i >= json_object_array_length(o))
                                return NULL;
                        o = json_object_array_get_idx(o, (size_t) i);
                } else if (json_object_is_type(o, json_type_object)) {
                        json_object *v;

                        if (!json_object_object_get_ex(o, t, &v))
                                return NULL;
                        o = v;
                } else
                        return NULL;
        }
        return o;
}

const char *jstr(json_object *o, const char *path) {
        json_object *v = jpath(o, path);

        return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int64_t jint(json_object *o, const char *path) {
        json_object *v = jpath(o, path);

        return v ? json_object_get_int64(v) : -1;
}

size_t jlen(json_object *o, const char *path) {
        json_object *v = jpath(o, path);

        if (v && json_object_is_type(v, json_type_array))
                return json_object_array_length(v);
        if (v && json_object_is_type(v, json_type_object))
                return (size_t) json_object_object_length(v);
        return (size_t) -1;
}

int errcode(const Resp *r) {
        json_object *v = jpath(r->json, "errors.0.code");

        return v ? json_object_get_int(v) : -1;
}

json_object *jfind(json_object *array, const char *key, const char *value) {
        for (size_t i = 0; array && json_object_is_type(array, json_type_array) && i < json_object_array_length(array); i++) {
                json_object *e = json_object_array_get_idx(array, i);
                const char *v = jstr(e, key);

                if (v && strcmp(v, value) == 0)
                        return e;
        }
        return NULL;
}

const char *resp_header(const Resp *r, const char *name, char *buf, size_t n) {
        size_t nl = strlen(name);

        for (const char *p = r->headers; p && *p;) {
                const char *eol = strstr(p, "\r\n");

                if (!eol)
                        break;
                if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
                        const char *v = p + nl + 1;

                        while (*v == ' ')
                                v++;
                        snprintf(buf, n, "%.*s", (int) (eol - v), v);
                        return buf;
                }
                p = eol + 2;
        }
        return NULL;
}

int sim_test_run(Suite *s) {
        SRunner *sr = srunner_create(s);
        int failed;

        curl_global_init(CURL_GLOBAL_DEFAULT);
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        curl_global_cleanup();
        return failed == 0 ? 0 : 1;
}
