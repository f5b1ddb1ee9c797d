/* cfsim: a local, stateful simulator of the Cloudflare v4 API subset that
 * bindery and the recorded clients use. See tests/cfsim/README.md.
 *
 *   cfsim --port N [--host 127.0.0.1] [--account-id ID] [--token T]
 *         [--state FILE] [--seed FILE] [--rate-limit N/SECONDS]
 *         [--rate-limit-block SECONDS] [--no-check-bindings]
 *         [--propagation-delay SECONDS] [--propagation-every N]
 *         [--audit-forbidden] [--audit-delay SECONDS]
 *         [--max-scripts N] [--max-crons N] [--max-stores N]
 *         [--max-store-secrets N]
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
                "Usage: cfsim --port N [OPTION...]\n"
                "  --port N                 TCP port; 0 picks a free one\n"
                "  --host ADDR              listen address (default 127.0.0.1)\n"
                "  --account-id ID          the one account served (default %s)\n"
                "  --token TOKEN            require \"Authorization: Bearer TOKEN\" (repeatable: any of them)\n"
                "  --state FILE             load state from FILE and save it there (atomically)\n"
                "  --seed FILE              add what a spec can only reference (see README)\n"
                "  --rate-limit N/S         N API requests per S seconds per token (default %u/%u)\n"
                "  --rate-limit-block S     past the limit, refuse everything for S seconds (default %u)\n"
                "  --no-check-bindings      accept bindings to targets that do not exist\n"
                "  --propagation-delay S    a new KV/R2/D1/queue/store secret is no binding target for S seconds\n"
                "  --propagation-every N    only every Nth such create lags (default 1: all)\n"
                "  --audit-forbidden        the audit log answers 403 (token without Account Settings Read)\n"
                "  --audit-delay S          an action shows up in the audit log S seconds later\n"
                "  --audit-page-max N       the audit log's largest page (default and Cloudflare's: 1000)\n"
                "  --max-scripts N          Workers per account (default %u; 0: unlimited)\n"
                "  --max-crons N            cron triggers per account (default %u; 0: unlimited)\n"
                "  --max-stores N           Secrets Store stores per account (default %u; 0: unlimited)\n"
                "  --max-store-secrets N    Secrets Store secrets per account (default %u; 0: unlimited)\n"
                "  --check-bindings         accepted for compatibility (the default now)\n",
                SIM_DEFAULT_ACCOUNT, SIM_RL_QUOTA_DEFAULT, SIM_RL_WINDOW_DEFAULT, SIM_RL_BLOCK_DEFAULT,
                SIM_MAX_SCRIPTS_DEFAULT, SIM_MAX_CRONS_DEFAULT, SIM_MAX_STORES_DEFAULT, SIM_MAX_STORE_SECRETS_DEFAULT);
}

/* Seconds with an optional fraction ("1", "0.5") into microseconds. */
static int parse_seconds(const char *s, uint64_t *ret_usec) {
        char *end;
        double d;

        errno = 0;
        d = strtod(s, &end);
        if (errno || end == s || *end || !(d >= 0) || d > 86400.0 * 366)
                return -EINVAL;
        *ret_usec = (uint64_t) (d * 1e6);
        return 0;
}

static int parse_count(const char *s, unsigned *ret) {
        uint64_t u;

        if (safe_atou64(s, &u) < 0 || u > 100000000ULL)
                return -EINVAL;
        *ret = (unsigned) u;
        return 0;
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

/* What the command line asks for. */
typedef struct CfsimOptions {
        const char *host, *account, *state, *seed;
        char **tokens;                  /* owned */
        unsigned audit_page_max;
        unsigned port, quota, window, block;
        unsigned max_scripts, max_crons, max_stores, max_store_secrets;
        unsigned prop_every;
        uint64_t prop_usec, audit_delay;
        bool check_bindings, audit_forbidden;
} CfsimOptions;

/* One option with an argument (c is its getopt code) into o. 0, or the
 * exit status after saying why. */
static int parse_option(int c, const char *arg, CfsimOptions *o, bool *have_port) {
        uint64_t u, block_usec;

        switch (c) {
        case 'p':
                if (safe_atou64(arg, &u) < 0 || u > 65535) {
                        fprintf(stderr, "cfsim: invalid port '%s'\n", arg);
                        return 64;
                }
                o->port = (unsigned) u;
                *have_port = true;
                return 0;
        case 'r': {
                unsigned long q, w;
                char extra;

                if (sscanf(arg, "%lu/%lu%c", &q, &w, &extra) != 2 || q < 1 || w < 1 ||
                    q > 100000000UL || w > 86400UL * 366) {
                        fprintf(stderr, "cfsim: --rate-limit wants N/SECONDS, e.g. 1200/300\n");
                        return 64;
                }
                o->quota = (unsigned) q;
                o->window = (unsigned) w;
                return 0;
        }
        case 'B':
                if (parse_seconds(arg, &block_usec) < 0 || block_usec < USEC_PER_SEC) {
                        fprintf(stderr, "cfsim: --rate-limit-block wants whole seconds >= 1\n");
                        return 64;
                }
                o->block = (unsigned) (block_usec / USEC_PER_SEC);
                return 0;
        case 'P':
                if (parse_seconds(arg, &o->prop_usec) < 0) {
                        fprintf(stderr, "cfsim: --propagation-delay wants seconds, e.g. 1 or 0.5\n");
                        return 64;
                }
                return 0;
        case 'E':
                if (parse_count(arg, &o->prop_every) < 0 || o->prop_every < 1) {
                        fprintf(stderr, "cfsim: --propagation-every wants a count >= 1\n");
                        return 64;
                }
                return 0;
        case 'D':
                if (parse_seconds(arg, &o->audit_delay) < 0) {
                        fprintf(stderr, "cfsim: --audit-delay wants seconds, e.g. 1 or 0.5\n");
                        return 64;
                }
                return 0;
        case 1001:
        case 1002:
        case 1003:
        case 1004: {
                unsigned *t = c == 1001 ? &o->max_scripts : c == 1002 ? &o->max_crons :
                              c == 1003 ? &o->max_stores : &o->max_store_secrets;

                if (parse_count(arg, t) < 0) {
                        fprintf(stderr, "cfsim: --%s wants a count (0: unlimited)\n",
                                c == 1001 ? "max-scripts" : c == 1002 ? "max-crons" :
                                c == 1003 ? "max-stores" : "max-store-secrets");
                        return 64;
                }
                return 0;
        }
        case 1005:
                if (parse_count(arg, &o->audit_page_max) < 0 || o->audit_page_max == 0 ||
                    o->audit_page_max > 1000) {
                        fprintf(stderr, "cfsim: --audit-page-max wants 1 to 1000\n");
                        return 64;
                }
                return 0;
        default:
                usage(stderr);
                return 64;
        }
}

/* The command line into o. -1 to go on, else the exit status. */
static int parse_argv(int argc, char **argv, CfsimOptions *o) {
        static const struct option options[] = {
                { "port", required_argument, NULL, 'p' },
                { "host", required_argument, NULL, 'H' },
                { "account-id", required_argument, NULL, 'a' },
                { "token", required_argument, NULL, 't' },
                { "state", required_argument, NULL, 's' },
                { "rate-limit", required_argument, NULL, 'r' },
                { "check-bindings", no_argument, NULL, 'c' },
                { "no-check-bindings", no_argument, NULL, 'C' },
                { "rate-limit-block", required_argument, NULL, 'B' },
                { "propagation-delay", required_argument, NULL, 'P' },
                { "propagation-every", required_argument, NULL, 'E' },
                { "audit-forbidden", no_argument, NULL, 'F' },
                { "audit-delay", required_argument, NULL, 'D' },
                { "audit-page-max", required_argument, NULL, 1005 },
                { "max-scripts", required_argument, NULL, 1001 },
                { "max-crons", required_argument, NULL, 1002 },
                { "max-stores", required_argument, NULL, 1003 },
                { "max-store-secrets", required_argument, NULL, 1004 },
                { "seed", required_argument, NULL, 'S' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        bool have_port = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'H':
                        o->host = optarg;
                        break;
                case 'a':
                        o->account = optarg;
                        break;
                case 't':
                        if (strv_extend(&o->tokens, optarg) < 0)
                                return 1;
                        break;
                case 's':
                        o->state = optarg;
                        break;
                case 'c':
                        o->check_bindings = true;
                        break;
                case 'C':
                        o->check_bindings = false;
                        break;
                case 'F':
                        o->audit_forbidden = true;
                        break;
                case 'S':
                        o->seed = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        r = parse_option(c, optarg, o, &have_port);
                        if (r != 0)
                                return r;
                }
        if (!have_port || optind < argc) {
                usage(stderr);
                return 64;
        }
        if (!account_id_valid(o->account)) {
                fprintf(stderr, "cfsim: invalid account id '%s'\n", o->account);
                return 64;
        }
        return -1;
}

/* The simulated account as o asks: limits, token, state loaded, seeded.
 * 0, or the exit status after saying why (sim is then done). */
static int sim_setup(Sim *sim, CfsimOptions *o) {
        int r;

        if (sim_init(sim, o->account) < 0) {
                fprintf(stderr, "cfsim: out of memory\n");
                return 1;
        }
        sim->rl_quota = o->quota;
        sim->rl_window = o->window;
        sim->rl_block = o->block;
        sim->check_bindings = o->check_bindings;
        sim->propagation_usec = o->prop_usec;
        sim->propagation_every = o->prop_every;
        sim->audit_forbidden = o->audit_forbidden;
        sim->audit_delay_usec = o->audit_delay;
        sim->max_scripts = o->max_scripts;
        sim->max_crons = o->max_crons;
        sim->max_stores = o->max_stores;
        sim->max_store_secrets = o->max_store_secrets;
        sim->audit_page_max = o->audit_page_max;
        sim->tokens = TAKE_PTR(o->tokens);
        if (o->state) {
                sim->state_path = strdup(o->state);
                r = sim->state_path ? sim_store_load(sim) : -ENOMEM;
                if (r < 0) {
                        fprintf(stderr, "cfsim: cannot load state '%s': %s\n", o->state, strerror(-r));
                        sim_done(sim);
                        return 1;
                }
        }
        if (o->seed) {
                const char *msg = NULL;

                r = sim_seed_file(sim, o->seed, &msg);
                if (r < 0) {
                        fprintf(stderr, "cfsim: cannot seed from '%s': %s\n", o->seed, msg ? msg : strerror(-r));
                        sim_done(sim);
                        return 1;
                }
        }
        return 0;
}

int main(int argc, char **argv) {
        CfsimOptions o = {
                .host = "127.0.0.1",
                .account = SIM_DEFAULT_ACCOUNT,
                .quota = SIM_RL_QUOTA_DEFAULT,
                .window = SIM_RL_WINDOW_DEFAULT,
                .block = SIM_RL_BLOCK_DEFAULT,
                .max_scripts = SIM_MAX_SCRIPTS_DEFAULT,
                .max_crons = SIM_MAX_CRONS_DEFAULT,
                .max_stores = SIM_MAX_STORES_DEFAULT,
                .max_store_secrets = SIM_MAX_STORE_SECRETS_DEFAULT,
                .prop_every = 1,
                .audit_page_max = 1000,
                .check_bindings = true,
        };
        struct MHD_Daemon *d;
        pthread_t saver;
        bool have_saver = false;
        sigset_t mask;
        unsigned port;
        Sim sim;
        int sig, r;

        r = parse_argv(argc, argv, &o);
        if (r >= 0) {
                strv_free(o.tokens);
                return r;
        }
        r = sim_setup(&sim, &o);
        strv_free(o.tokens);            /* what sim_setup did not take */
        if (r != 0)
                return r;

        /* Block the stop signals in every thread; main waits for them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        d = sim_http_start(&sim, o.host, o.port, &port);
        if (!d) {
                fprintf(stderr, "cfsim: cannot listen on %s:%u\n", o.host, o.port);
                sim_done(&sim);
                return 1;
        }
        if (sim.state_path && pthread_create(&saver, NULL, persister, &sim) == 0)
                have_saver = true;

        if (strchr(o.host, ':'))
                printf("cfsim listening on http://[%s]:%u/client/v4\n", o.host, port);
        else
                printf("cfsim listening on http://%s:%u/client/v4\n", o.host, port);
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
