/* cfsim: a local, stateful simulator of the Cloudflare v4 API subset that
 * bindery and the recorded clients use. See tests/cfsim/README.md.
 *
 *   cfsim --port N [--host 127.0.0.1] [--account-id ID] [--token T]
 *         [--state FILE] [--rate-limit N/SECONDS] [--check-bindings]
 *
 * Prints "cfsim listening on http://HOST:PORT/client/v4" once ready and
 * serves until SIGTERM or SIGINT, saving the state first when --state is
 * given. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sim-http.h"
#include "sim-store.h"
#include "util.h"

static void usage(FILE *f) {
        fprintf(f,
                "Usage: cfsim --port N [--host ADDR] [--account-id ID] [--token TOKEN]\n"
                "             [--state FILE] [--rate-limit N/SECONDS] [--check-bindings]\n"
                "  --port N           TCP port; 0 picks a free one\n"
                "  --host ADDR        listen address (default 127.0.0.1)\n"
                "  --account-id ID    the one account served (default %s)\n"
                "  --token TOKEN      require \"Authorization: Bearer TOKEN\"\n"
                "  --state FILE       load state from FILE and save it there (atomically)\n"
                "  --rate-limit N/S   allow N API requests per S seconds, then 429/971\n"
                "  --check-bindings   refuse bindings to KV/R2/D1/queues/store secrets that do not exist\n",
                SIM_DEFAULT_ACCOUNT);
}

static bool account_id_valid(const char *s) {
        size_t n = strlen(s);

        if (n < 1 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-'))
                        return false;
        return true;
}

static void *persister(void *arg) {
        Sim *sim = arg;

        pthread_mutex_lock(&sim->lock);
        while (!sim->stopping) {
                struct timespec t;

                if (!sim->dirty) {
                        pthread_cond_wait(&sim->wake, &sim->lock);
                        continue;
                }
                /* Coalesce bursts of writes: save at most twice a second. */
                clock_gettime(CLOCK_REALTIME, &t);
                t.tv_nsec += 500 * 1000 * 1000;
                if (t.tv_nsec >= 1000000000L) {
                        t.tv_sec++;
                        t.tv_nsec -= 1000000000L;
                }
                while (!sim->stopping && pthread_cond_timedwait(&sim->wake, &sim->lock, &t) != ETIMEDOUT)
                        ;
                if (sim->stopping)
                        break;
                pthread_mutex_unlock(&sim->lock);
                if (sim_store_save(sim) < 0)
                        fprintf(stderr, "cfsim: failed to save state to '%s', will retry\n", sim->state_path);
                pthread_mutex_lock(&sim->lock);
        }
        pthread_mutex_unlock(&sim->lock);
        return NULL;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "port", required_argument, NULL, 'p' },
                { "host", required_argument, NULL, 'H' },
                { "account-id", required_argument, NULL, 'a' },
                { "token", required_argument, NULL, 't' },
                { "state", required_argument, NULL, 's' },
                { "rate-limit", required_argument, NULL, 'r' },
                { "check-bindings", no_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *host = "127.0.0.1", *account = SIM_DEFAULT_ACCOUNT, *token = NULL, *state = NULL;
        unsigned port = 0, quota = 0, window = 0;
        bool have_port = false, check_bindings = false;
        struct MHD_Daemon *d;
        pthread_t saver;
        bool have_saver = false;
        sigset_t mask;
        Sim sim;
        int c, sig, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                uint64_t u;

                switch (c) {
                case 'p':
                        if (safe_atou64(optarg, &u) < 0 || u > 65535) {
                                fprintf(stderr, "cfsim: invalid port '%s'\n", optarg);
                                return 64;
                        }
                        port = (unsigned) u;
                        have_port = true;
                        break;
                case 'H':
                        host = optarg;
                        break;
                case 'a':
                        account = optarg;
                        break;
                case 't':
                        token = optarg;
                        break;
                case 's':
                        state = optarg;
                        break;
                case 'r': {
                        unsigned long q, w;
                        char extra;

                        if (sscanf(optarg, "%lu/%lu%c", &q, &w, &extra) != 2 || q < 1 || w < 1 ||
                            q > 100000000UL || w > 86400UL * 366) {
                                fprintf(stderr, "cfsim: --rate-limit wants N/SECONDS, e.g. 1200/300\n");
                                return 64;
                        }
                        quota = (unsigned) q;
                        window = (unsigned) w;
                        break;
                }
                case 'c':
                        check_bindings = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 64;
                }
        }
        if (!have_port || optind < argc) {
                usage(stderr);
                return 64;
        }
        if (!account_id_valid(account)) {
                fprintf(stderr, "cfsim: invalid account id '%s'\n", account);
                return 64;
        }

        if (sim_init(&sim, account) < 0) {
                fprintf(stderr, "cfsim: out of memory\n");
                return 1;
        }
        sim.rl_quota = quota;
        sim.check_bindings = check_bindings;
        sim.rl_window = window;
        if (token && !(sim.token = strdup(token))) {
                sim_done(&sim);
                return 1;
        }
        if (state) {
                sim.state_path = strdup(state);
                r = sim.state_path ? sim_store_load(&sim) : -ENOMEM;
                if (r < 0) {
                        fprintf(stderr, "cfsim: cannot load state '%s': %s\n", state, strerror(-r));
                        sim_done(&sim);
                        return 1;
                }
        }

        /* Block the stop signals in every thread; main waits for them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        d = sim_http_start(&sim, host, port, &port);
        if (!d) {
                fprintf(stderr, "cfsim: cannot listen on %s:%u\n", host, port);
                sim_done(&sim);
                return 1;
        }
        if (sim.state_path && pthread_create(&saver, NULL, persister, &sim) == 0)
                have_saver = true;

        if (strchr(host, ':'))
                printf("cfsim listening on http://[%s]:%u/client/v4\n", host, port);
        else
                printf("cfsim listening on http://%s:%u/client/v4\n", host, port);
        fflush(stdout);

        do
                r = sigwait(&mask, &sig);
        while (r != 0);

        pthread_mutex_lock(&sim.lock);
        sim.stopping = true;
        pthread_cond_broadcast(&sim.wake);
        pthread_mutex_unlock(&sim.lock);
        MHD_stop_daemon(d);
        if (have_saver)
                pthread_join(saver, NULL);
        r = sim_store_save(&sim);
        if (r < 0)
                fprintf(stderr, "cfsim: cannot save state '%s': %s\n", sim.state_path, strerror(-r));
        sim_done(&sim);
        return r < 0 ? 1 : 0;
}
