/* notify-harness.c: a fake systemd for one daemon process.
 *
 *   notify-harness COMMAND [ARG...]
 *
 * Binds an abstract AF_UNIX datagram socket with SO_PASSCRED and passes it
 * as NOTIFY_SOCKET; sets WATCHDOG_USEC (400 ms) and WATCHDOG_PID; binds a
 * TCP socket on 127.0.0.1 (a free port) and passes it as fd 3 with
 * LISTEN_FDS=1, LISTEN_PID and LISTEN_FDNAMES=http, the way systemd starts
 * a socket-activated Type=notify service. Then it checks, in order:
 *   READY=1 arrives (from the daemon's own pid, by SCM_CREDENTIALS);
 *   a STATUS= line arrives;
 *   WATCHDOG=1 keeps arriving (at least 4 in 1.5 s);
 *   GET /healthz and GET /v1/status on the passed socket answer 200;
 *   SIGHUP gives RELOADING=1 with MONOTONIC_USEC=, then READY=1 again;
 *   SIGTERM gives STOPPING=1 and exit status 0.
 * Prints one line per check and "N passed, N failed"; exits 0 only if all
 * passed. Every wait is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned passed, failed;

static void check(bool ok, const char *what) {
        printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
        fflush(stdout);
        if (ok)
                passed++;
        else
                failed++;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

typedef struct Message {
        char text[4096];
        pid_t pid;
} Message;

/* Receives one notification within timeout_ms; false on timeout. */
static bool receive(int fd, Message *m, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(struct ucred))];
        } control;
        struct iovec iov = { .iov_base = m->text, .iov_len = sizeof(m->text) - 1 };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = &control, .msg_controllen = sizeof(control),
        };
        ssize_t n;

        if (poll(&p, 1, timeout_ms) <= 0)
                return false;
        n = recvmsg(fd, &mh, MSG_DONTWAIT);
        if (n < 0)
                return false;
        m->text[n] = 0;
        m->pid = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                        struct ucred uc;

                        memcpy(&uc, CMSG_DATA(c), sizeof(uc));
                        m->pid = uc.pid;
                }
        return true;
}

/* Has the message a line that starts with prefix? */
static bool has_line(const char *text, const char *prefix) {
        size_t n = strlen(prefix);

        for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
                if (strncmp(l, prefix, n) == 0)
                        return true;
        return false;
}

/* Waits for a message with a line starting with prefix; counts WATCHDOG=1
 * seen meanwhile. */
static bool wait_for(int fd, const char *prefix, int timeout_ms, Message *ret, pid_t child, bool *pid_ok,
                     unsigned *watchdogs) {
        uint64_t end = now_ms() + (uint64_t) timeout_ms;
        Message m;

        while (now_ms() < end) {
                if (!receive(fd, &m, (int) (end - now_ms())))
                        return false;
                if (pid_ok && m.pid != child)
                        *pid_ok = false;
                if (watchdogs && has_line(m.text, "WATCHDOG=1"))
                        (*watchdogs)++;
                if (has_line(m.text, prefix)) {
                        if (ret)
                                *ret = m;
                        return true;
                }
        }
        return false;
}

static int http_get(uint16_t port, const char *path, char *buf, size_t size) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = -1;
        char req[256];
        size_t got = 0;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                goto out;
        snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
                goto out;
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t n;

                if (poll(&p, 1, 5000) <= 0)
                        goto out;
                n = read(fd, buf + got, size - got - 1);
                if (n <= 0)
                        break;
                got += (size_t) n;
                if (got >= size - 1)
                        break;
        }
        buf[got] = 0;
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                status = -1;
out:
        if (fd >= 0)
                close(fd);
        return status;
}

int main(int argc, char **argv) {
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        struct sockaddr_in sin = { .sin_family = AF_INET };
        socklen_t sl = sizeof(sin);
        char name[64], buf[16384];
        int nfd, lfd, one = 1, status;
        bool pid_ok = true, exited = false;
        unsigned watchdogs = 0;
        uint16_t port;
        uint64_t t0;
        Message m;
        pid_t child;

        if (argc < 2) {
                fprintf(stderr, "Usage: %s COMMAND [ARG...]\n", argv[0]);
                return 64;
        }

        /* the notification socket, abstract namespace */
        snprintf(name, sizeof(name), "bindery-notify-harness-%d", (int) getpid());
        memcpy(sun.sun_path + 1, name, strlen(name));
        nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (nfd < 0 || setsockopt(nfd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
            bind(nfd, (struct sockaddr *) &sun, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))) < 0) {
                perror("notify socket");
                return 1;
        }

        /* the listening socket systemd would pass */
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        lfd = socket(AF_INET, SOCK_STREAM, 0);
        if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(lfd, (struct sockaddr *) &sin, sizeof(sin)) < 0 || listen(lfd, 64) < 0 ||
            getsockname(lfd, (struct sockaddr *) &sin, &sl) < 0) {
                perror("listen socket");
                return 1;
        }
        port = ntohs(sin.sin_port);
        printf("notify-harness: NOTIFY_SOCKET=@%s, passing 127.0.0.1:%u as fd 3\n", name, port);
        fflush(stdout);

        t0 = now_ms();
        child = fork();
        if (child < 0) {
                perror("fork");
                return 1;
        }
        if (child == 0) {
                char v[80];

                if (dup2(lfd, 3) < 0)
                        _exit(127);
                if (lfd != 3)
                        close(lfd);
                snprintf(v, sizeof(v), "@%s", name);
                setenv("NOTIFY_SOCKET", v, 1);
                setenv("WATCHDOG_USEC", "400000", 1);
                snprintf(v, sizeof(v), "%d", (int) getpid());
                setenv("WATCHDOG_PID", v, 1);
                setenv("LISTEN_PID", v, 1);
                setenv("LISTEN_FDS", "1", 1);
                setenv("LISTEN_FDNAMES", "http", 1);
                execvp(argv[1], argv + 1);
                _exit(127);
        }
        close(lfd);

        check(wait_for(nfd, "READY=1", 15000, &m, child, &pid_ok, &watchdogs), "READY=1 received");
        printf("  (ready after %llu ms)\n", (unsigned long long) (now_ms() - t0));
        check(has_line(m.text, "STATUS=") || wait_for(nfd, "STATUS=", 3000, &m, child, &pid_ok, &watchdogs),
              "STATUS= received");
        if (has_line(m.text, "STATUS="))
                printf("  (%s)\n", strstr(m.text, "STATUS="));

        /* watchdog pings: at least 4 in 1.5 s at WATCHDOG_USEC=400ms */
        watchdogs = 0;
        t0 = now_ms();
        while (now_ms() - t0 < 1500)
                (void) wait_for(nfd, "WATCHDOG=1", (int) (1500 - (now_ms() - t0)) + 1, NULL, child, &pid_ok,
                                &watchdogs);
        printf("  (%u watchdog pings in 1.5 s)\n", watchdogs);
        check(watchdogs >= 4, "WATCHDOG=1 at least 4 times in 1.5 s");

        check(http_get(port, "/healthz", buf, sizeof(buf)) == 200, "GET /healthz on the passed socket: 200");
        check(http_get(port, "/v1/status", buf, sizeof(buf)) == 200 && strstr(buf, "\"generation\""),
              "GET /v1/status on the passed socket: 200 with a generation");

        kill(child, SIGHUP);
        check(wait_for(nfd, "RELOADING=1", 5000, &m, child, &pid_ok, NULL) && has_line(m.text, "MONOTONIC_USEC="),
              "SIGHUP: RELOADING=1 with MONOTONIC_USEC=");
        check(wait_for(nfd, "READY=1", 10000, NULL, child, &pid_ok, NULL), "SIGHUP: READY=1 again");

        kill(child, SIGTERM);
        check(wait_for(nfd, "STOPPING=1", 5000, NULL, child, &pid_ok, NULL), "SIGTERM: STOPPING=1");
        t0 = now_ms();
        while (now_ms() - t0 < 20000) {
                pid_t p = waitpid(child, &status, WNOHANG);

                if (p == child) {
                        exited = true;
                        break;
                }
                usleep(20 * 1000);
        }
        if (!exited) {
                kill(child, SIGKILL);
                (void) waitpid(child, &status, 0);
        }
        check(exited && WIFEXITED(status) && WEXITSTATUS(status) == 0, "SIGTERM: exit status 0");
        check(pid_ok, "every notification came from the daemon's own pid (SCM_CREDENTIALS)");

        printf("%u passed, %u failed\n", passed, failed);
        return failed ? 1 : 0;
}
