/* main.c: argv → Options → one subcommand. Nothing else lives here. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "log.h"
#include "util.h"

static const struct {
        const char *name;
        int (*run)(const Options *o);
} commands[] = {
        { "validate", cmd_validate },
        { "types", cmd_types },
        { "plan", cmd_plan },
        { "apply", cmd_apply },
        { "daemon", cmd_daemon },
};

static void help(void) {
        printf("Usage: binderyd [COMMAND] [OPTIONS]\n"
               "\n"
               "Keeps a Cloudflare account equal to a directory of YAML specs.\n"
               "\n"
               "Commands:\n"
               "  (none), daemon         run the reconciliation daemon\n"
               "  validate               check a spec directory, print every error\n"
               "  types                  print a worker's TypeScript Env\n"
               "  plan                   show what a reconcile would do (exit 2: changes)\n"
               "  apply                  run one reconcile now\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE      configuration (default %s)\n"
               "      --spec-dir DIR     spec directory (overrides the config)\n"
               "      --state-dir DIR    state directory\n"
               "      --api-url URL      Cloudflare API base URL\n"
               "      --account-id ID    Cloudflare account id\n"
               "      --listen HOST:PORT HTTP API address (repeatable)\n"
               "      --worker NAME      the worker, for types\n"
               "      --json             machine-readable output\n"
               "      --force            allow more than max_deletions deletions\n"
               "      --log-level LEVEL  debug, info, notice, warning, error\n"
               "  -h, --help             this text\n"
               "      --version          the version\n"
               "\n"
               "See binderyd(8), binderyd.yaml(5) and bindery-spec(5).\n",
               BINDERY_DEFAULT_CONFIG);
}

enum {
        ARG_SPEC_DIR = 0x100,
        ARG_STATE_DIR,
        ARG_API_URL,
        ARG_ACCOUNT_ID,
        ARG_LISTEN,
        ARG_WORKER,
        ARG_JSON,
        ARG_FORCE,
        ARG_LOG_LEVEL,
        ARG_VERSION,
};

static int parse_argv(int argc, char **argv, Options *o, const char **ret_command) {
        static const struct option longopts[] = {
                { "config", required_argument, NULL, 'c' },
                { "spec-dir", required_argument, NULL, ARG_SPEC_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "api-url", required_argument, NULL, ARG_API_URL },
                { "account-id", required_argument, NULL, ARG_ACCOUNT_ID },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "worker", required_argument, NULL, ARG_WORKER },
                { "json", no_argument, NULL, ARG_JSON },
                { "force", no_argument, NULL, ARG_FORCE },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) >= 0)
                switch (c) {
                case 'c':
                        o->config_path = optarg;
                        o->config_given = true;
                        break;
                case ARG_SPEC_DIR:
                        o->spec_dir = optarg;
                        break;
                case ARG_STATE_DIR:
                        o->state_dir = optarg;
                        break;
                case ARG_API_URL:
                        o->api_url = optarg;
                        break;
                case ARG_ACCOUNT_ID:
                        o->account_id = optarg;
                        break;
                case ARG_LISTEN:
                        if (strv_extend(&o->listen, optarg) < 0)
                                return log_error_errno(ENOMEM, "Out of memory.");
                        break;
                case ARG_WORKER:
                        o->worker = optarg;
                        break;
                case ARG_JSON:
                        o->json = true;
                        break;
                case ARG_FORCE:
                        o->force = true;
                        break;
                case ARG_LOG_LEVEL:
                        if (log_level_from_string(optarg) < 0)
                                return log_error_errno(EINVAL, "Unknown log level '%s'.", optarg);
                        o->log_level = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("binderyd %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }

        if (optind < argc)
                *ret_command = argv[optind++];
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument '%s'.", argv[optind]);
        return 1;
}

int main(int argc, char **argv) {
        Options o = { .config_path = BINDERY_DEFAULT_CONFIG };
        const char *command = "daemon";
        int r;

        r = process_harden();
        if (r < 0)
                log_warning_errno(r, "Cannot make the process non-dumpable, continuing: %m");
        process_raise_nofile(4096);
        r = parse_argv(argc, argv, &o, &command);
        if (r <= 0) {
                strv_free(o.listen);
                return r < 0 ? EXIT_USAGE : EXIT_OK;
        }
        if (o.log_level)
                log_set_max_level(log_level_from_string(o.log_level));

        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, command)) {
                        r = commands[i].run(&o);
                        strv_free(o.listen);
                        log_forget_secrets();
                        return r;
                }

        log_error("Unknown command '%s'; see 'binderyd --help'.", command);
        strv_free(o.listen);
        return EXIT_USAGE;
}
