/* etcd-harness.h: a real single-member etcd for unit tests, on two free
 * loopback ports in a temporary data directory; started by the test,
 * killed and removed by etcd_harness_stop(). Header-only (static), so
 * each test program that needs it includes it once.
 *
 * etcd_harness_start() returns -ENOENT when no etcd binary is found
 * (PATH, or $ETCD): the test then prints why and exits 77.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <curl/curl.h>

typedef struct EtcdHarness {
        pid_t pid;
        char dir[64];
        char url[64];
        char peer[64];
} EtcdHarness;

static int harness_free_port(void) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t n = sizeof a;
        int fd, port = -1;

        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
                return -1;
        if (bind(fd, (struct sockaddr *) &a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *) &a, &n) == 0)
                port = ntohs(a.sin_port);
        close(fd);
        return port;
}

static const char *harness_etcd_binary(void) {
        const char *e = getenv("ETCD");

        if (e && access(e, X_OK) == 0)
                return e;
        if (access("/usr/bin/etcd", X_OK) == 0)
                return "/usr/bin/etcd";
        if (access("/usr/local/bin/etcd", X_OK) == 0)
                return "/usr/local/bin/etcd";
        return NULL;
}

static size_t harness_sink(char *p, size_t s, size_t n, void *u) {
        (void) p;
        (void) u;
        return s * n;
}

static bool harness_healthy(const char *url) {
        char health[96];
        CURL *c = curl_easy_init();
        long status = 0;
        bool ok;

        if (!c)
                return false;
        (void) snprintf(health, sizeof health, "%s/health", url);
        (void) curl_easy_setopt(c, CURLOPT_URL, health);
        (void) curl_easy_setopt(c, CURLOPT_PROXY, "");
        (void) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 500L);
        (void) curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, harness_sink);
        ok = curl_easy_perform(c) == CURLE_OK &&
             curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200;
        curl_easy_cleanup(c);
        return ok;
}

static void etcd_harness_stop(EtcdHarness *h) {
        char cmd[96];

        if (h->pid > 0) {
                (void) kill(h->pid, SIGKILL);
                (void) waitpid(h->pid, NULL, 0);
                h->pid = 0;
        }
        if (h->dir[0]) {
                (void) snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
                (void) system(cmd);
                h->dir[0] = 0;
        }
}

static int etcd_harness_start(EtcdHarness *h) {
        const char *bin = harness_etcd_binary();
        char data[96], peer_arg[160], cluster[160];
        int cport, pport;

        memset(h, 0, sizeof *h);
        if (!bin)
                return -ENOENT;
        (void) snprintf(h->dir, sizeof h->dir, "/tmp/bindery-etcd-XXXXXX");
        if (!mkdtemp(h->dir))
                return -errno;
        cport = harness_free_port();
        pport = harness_free_port();
        if (cport <= 0 || pport <= 0 || cport == pport)
                return -EADDRINUSE;
        (void) snprintf(h->url, sizeof h->url, "http://127.0.0.1:%d", cport);
        (void) snprintf(h->peer, sizeof h->peer, "http://127.0.0.1:%d", pport);
        (void) snprintf(data, sizeof data, "%s/data", h->dir);
        (void) snprintf(peer_arg, sizeof peer_arg, "%s", h->peer);
        (void) snprintf(cluster, sizeof cluster, "t=%s", h->peer);

        h->pid = fork();
        if (h->pid < 0)
                return -errno;
        if (h->pid == 0) {
                char logp[96];
                FILE *f;

                (void) snprintf(logp, sizeof logp, "%s/etcd.log", h->dir);
                f = freopen(logp, "w", stderr);
                (void) f;
                execl(bin, "etcd", "--name", "t", "--data-dir", data,
                      "--listen-client-urls", h->url, "--advertise-client-urls", h->url,
                      "--listen-peer-urls", peer_arg, "--initial-advertise-peer-urls", peer_arg,
                      "--initial-cluster", cluster, "--log-level", "error", (char *) NULL);
                _exit(127);
        }
        for (int i = 0; i < 100; i++) {
                struct timespec ts = { 0, 100 * 1000 * 1000 };

                if (harness_healthy(h->url))
                        return 0;
                if (waitpid(h->pid, NULL, WNOHANG) == h->pid) {
                        h->pid = 0;
                        return -ECHILD;
                }
                nanosleep(&ts, NULL);
        }
        return -ETIMEDOUT;
}

/* The whole main() of a test that needs etcd: starts h, runs s (check
 * forks each test; only this process stops etcd), stops h. 77 when etcd
 * is not installed, saying so. */
static int etcd_harness_run(const char *name, EtcdHarness *h, Suite *s) {
        pid_t parent = getpid();
        SRunner *sr;
        int failed, r;

        curl_global_init(CURL_GLOBAL_DEFAULT);
        r = etcd_harness_start(h);
        if (r == -ENOENT) {
                fprintf(stderr, "SKIP: %s needs etcd (Debian package etcd-server); none found\n", name);
                return 77;
        }
        if (r < 0) {
                fprintf(stderr, "%s: could not start etcd: %s\n", name, strerror(-r));
                etcd_harness_stop(h);
                return 1;
        }
        sr = srunner_create(s);
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        if (getpid() == parent) {
                (void) kill(h->pid, SIGCONT);       /* a test may have stopped it */
                etcd_harness_stop(h);
        }
        return failed == 0 ? 0 : 1;
}
