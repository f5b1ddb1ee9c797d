/* flood.c: an HTTP flood against binderyd from loopback, and what an
 * authorised client sees meanwhile (tests/abuse/http-flood.sh).
 *
 *   flood PORT IDLE SLOW SECONDS TOKEN
 *
 * A child process holds IDLE connections that never send a byte and SLOW
 * slowloris connections that send one header line a second and never
 * finish; whatever the server closes is opened again at once. Meanwhile
 * the parent, every 200 ms for SECONDS, times GET /healthz and POST
 * /v1/reconcile (bearer TOKEN) on fresh connections, and prints
 *
 *   healthz n=N max_ms=X p50_ms=Y failed=F
 *   trigger n=N max_ms=X p50_ms=Y failed=F
 *   flood reconnects=R
 *
 * Latency is connect to the end of the status line. Raises its own
 * RLIMIT_NOFILE to the hard limit; exits 77 when that is too low.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint16_t port;
static volatile sig_atomic_t stop;

static void on_term(int sig) {
        stop = 1;
}

static double now_ms(void) {
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec * 1000.0 + (double) t.tv_nsec / 1e6;
}

static int connect_nb(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0)
                return -1;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
                close(fd);
                return -1;
        }
        return fd;
}

/* The flood: runs until killed. */
static void flood(unsigned idle, unsigned slow) {
        unsigned n = idle + slow;
        struct pollfd *p = calloc(n, sizeof(struct pollfd));
        unsigned long reconnects = 0;
        double last_tick = now_ms();

        if (!p)
                _exit(1);
        for (unsigned i = 0; i < n; i++) {
                p[i].fd = connect_nb();
                p[i].events = POLLIN;
                if (i >= idle && p[i].fd >= 0)
                        (void) send(p[i].fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 32, MSG_NOSIGNAL);
        }
        signal(SIGTERM, on_term);
        while (!stop) {
                char buf[512];

                (void) poll(p, n, 100);
                for (unsigned i = 0; i < n; i++) {
                        bool dead = p[i].fd < 0;

                        if (!dead && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                                ssize_t k = recv(p[i].fd, buf, sizeof(buf), 0);

                                if (k <= 0 && !(k < 0 && (errno == EAGAIN || errno == EINTR)))
                                        dead = true;
                        }
                        if (dead) {
                                if (p[i].fd >= 0)
                                        close(p[i].fd);
                                p[i].fd = connect_nb();
                                reconnects++;
                                if (i >= idle && p[i].fd >= 0)
                                        (void) send(p[i].fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 32,
                                                    MSG_NOSIGNAL);
                        }
                        p[i].revents = 0;
                }
                if (now_ms() - last_tick >= 1000) {
                        last_tick = now_ms();
                        for (unsigned i = idle; i < n; i++)
                                if (p[i].fd >= 0)
                                        (void) send(p[i].fd, "X-a: b\r\n", 8, MSG_NOSIGNAL);
                }
        }
        printf("flood idle=%u slowloris=%u reconnects=%lu\n", idle, slow, reconnects);
        fflush(stdout);
}

/* One request on a fresh blocking connection: ms to the status line, or
 * a negative value on failure. *ret_status gets the status code. */
static double timed(const char *req, int *ret_status) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        double t0 = now_ms(), dt = -1;
        char buf[256];
        size_t got = 0;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct timeval tv = { .tv_sec = 5 };

        *ret_status = 0;
        if (fd < 0)
                return -1;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
            send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
                goto out;
        while (got < sizeof(buf) - 1) {
                ssize_t k = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

                if (k <= 0)
                        break;
                got += (size_t) k;
                buf[got] = 0;
                if (strstr(buf, "\r\n")) {
                        dt = now_ms() - t0;
                        (void) sscanf(buf, "HTTP/1.%*d %d", ret_status);
                        break;
                }
        }
out:
        close(fd);
        return dt;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, unsigned n, unsigned failed) {
        qsort(v, n, sizeof(double), cmp_double);
        printf("%s n=%u max_ms=%.1f p50_ms=%.1f failed=%u\n", what, n, n ? v[n - 1] : -1.0,
               n ? v[n / 2] : -1.0, failed);
}

int main(int argc, char **argv) {
        unsigned idle, slow, seconds, n_h = 0, n_t = 0, f_h = 0, f_t = 0;
        double *h, *t, end;
        char trig[512];
        struct rlimit rl;
        pid_t child;
        int status;

        if (argc != 6) {
                fprintf(stderr, "usage: flood PORT IDLE SLOW SECONDS TOKEN\n");
                return 2;
        }
        port = (uint16_t) atoi(argv[1]);
        idle = (unsigned) atoi(argv[2]);
        slow = (unsigned) atoi(argv[3]);
        seconds = (unsigned) atoi(argv[4]);
        snprintf(trig, sizeof(trig),
                 "POST /v1/reconcile HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n", argv[5]);

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 1;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < idle + slow + 64) {
                printf("SKIP: the hard file limit %llu is below %u\n", (unsigned long long) rl.rlim_max,
                       idle + slow + 64);
                return 77;
        }
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? idle + slow + 1024 : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 1;

        child = fork();
        if (child < 0)
                return 1;
        if (child == 0) {
                flood(idle, slow);
                _exit(0);
        }
        /* Let the flood fill every slot first. */
        usleep(1500 * 1000);
        h = calloc(seconds * 5 + 1, sizeof(double));
        t = calloc(seconds * 5 + 1, sizeof(double));
        if (!h || !t)
                return 1;
        end = now_ms() + seconds * 1000.0;
        while (now_ms() < end) {
                int st;
                double d;

                d = timed("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &st);
                if (d < 0 || st != 200)
                        f_h++;
                else
                        h[n_h++] = d;
                d = timed(trig, &st);
                if (d < 0 || st != 202)
                        f_t++;
                else
                        t[n_t++] = d;
                usleep(200 * 1000);
        }
        kill(child, SIGTERM);
        (void) waitpid(child, &status, 0);
        fflush(stdout);
        report("healthz", h, n_h, f_h);
        report("trigger", t, n_t, f_t);
        free(h);
        free(t);
        return 0;
}
