/* main.c: argv → Options → one subcommand. Nothing else lives here. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <libssh2.h>

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
        { "import", cmd_import },
        { "schema", cmd_schema },
        { "reconcile", cmd_reconcile },
        { "status", cmd_status },
        { "state", cmd_state },
        { "credentials", cmd_credentials },
};

/* `binderyd VERB --help`: what that verb takes. */
static const struct {
        const char *name;
        const char *text;
} verb_help[] = {
        { "reconcile",
          "Usage: binderyd reconcile [-c FILE] [--url URL] [--token-file FILE] [--wait SECONDS]\n"
          "                          [--expect DIGEST] [--force] [--json]\n"
          "\n"
          "Asks the running daemon to load the spec directory as it is now and reconcile\n"
          "(POST /v1/reconcile).\n"
          "\n"
          "  -c, --config FILE      configuration: its first listen address and http_token\n"
          "      --url URL          the daemon's HTTP API (needed under socket activation)\n"
          "      --token-file FILE  bearer token (else $BINDERY_HTTP_TOKEN, else http_token)\n"
          "      --wait SECONDS     wait for the run to finish (at most 3600)\n"
          "      --expect DIGEST    the generation the spec directory must produce (binderyd\n"
          "                         validate prints it; a prefix of at least 12 hex digits)\n"
          "      --force            allow more than max_deletions deletions\n"
          "      --json             print the run as JSON\n"
          "\n"
          "Exit: 0 queued (no --wait), in sync or changed; 2 drift reported or removals\n"
          "waiting; 3 blocked; 4 --wait timed out; 1 any error (412: the directory does not\n"
          "produce --expect).\n" },
        { "status",
          "Usage: binderyd status [-c FILE] [--url URL] [--token-file FILE] [--json]\n"
          "\n"
          "Shows the running daemon's status (GET /v1/status) as a table, or as JSON.\n"
          "\n"
          "Exit: 0 in sync; 2 drifted or pending; 3 blocked; 1 failed, spec rejected, or any\n"
          "error.\n" },
        { "state",
          "Usage: binderyd state forget KIND/NAME [-c FILE]\n"
          "       binderyd state import [-c FILE]\n"
          "       binderyd state export [-c FILE]\n"
          "\n"
          "forget: stops owning a resource without deleting it (e.g. Worker/api). The daemon\n"
          "must be stopped (it holds the state lock); with ha: every binderyd of the account\n"
          "(forget takes leadership in etcd). Remove the resource from the spec too.\n"
          "import: moves the state directory's ledger and HMAC key into etcd (ha.prefix),\n"
          "for high availability; every binderyd of the account must be stopped.\n"
          "export: copies the ledger and HMAC key from etcd into the state directory.\n" },
        { "validate",
          "Usage: binderyd validate [-c FILE] [--spec-dir DIR] [--json]\n"
          "\n"
          "Checks binderyd.yaml (with -c, or the default file when --spec-dir is not given;\n"
          "every error as FILE:LINE:COLUMN: message) and then the spec directory it names\n"
          "(or --spec-dir), like nginx -t. Prints the generation digest when both are\n"
          "valid. Exit: 0 valid; 1 invalid.\n" },
        { "types",
          "Usage: binderyd types (--worker NAME | --all) [--output DIR] [-c FILE] [--spec-dir DIR]\n"
          "\n"
          "Prints a worker's TypeScript Env for @cloudflare/workers-types, or with --output\n"
          "writes DIR/WORKER.d.ts for the worker (or every worker with --all). Durable\n"
          "Object bindings are typed DurableObjectNamespace<import(\"...\").Class> and service\n"
          "bindings with an entrypoint Service<import(\"...\").Entrypoint> when the owning\n"
          "worker's main module exports that class (paths relative to DIR, else absolute).\n"
          "Exit: 0; 1 the spec did not load or a file could not be written.\n" },
        { "credentials",
          "Usage: binderyd credentials [-c FILE] [--json]\n"
          "\n"
          "Lists every secret reference of the configuration and of the spec directory it\n"
          "names (credentials, files, environment variables, and where each is used), and\n"
          "prints the LoadCredential= drop-in for the credentials binderyd.service does not\n"
          "load already (systemctl edit binderyd.service). Never reads a value.\n"
          "Exit: 0; 1 the configuration or the spec did not load.\n" },
        { "plan",
          "Usage: binderyd plan [-c FILE] [--spec-dir DIR] [--json] [--force]\n"
          "\n"
          "Shows what a reconcile would do. Exit: 0 nothing to do; 2 changes, drift or\n"
          "waiting removals; 3 blocked; 1 any error.\n" },
        { "apply",
          "Usage: binderyd apply [-c FILE] [--spec-dir DIR] [--json] [--force]\n"
          "\n"
          "Runs one reconcile now (the daemon must not be running). Exit: 0 in sync or\n"
          "changed; 2 drift reported or removals waiting; 3 blocked; 1 any error.\n" },
};

static void help(void) {
        printf("Usage: binderyd [COMMAND] [OPTIONS]\n"
               "\n"
               "Keeps a Cloudflare account equal to a directory of YAML specs.\n"
               "\n"
               "Commands:\n"
               "  (none), daemon         run the reconciliation daemon\n"
               "  validate               check binderyd.yaml (-c) and the spec directory\n"
               "  types                  print a worker's TypeScript Env\n"
               "  plan                   show what a reconcile would do (exit 2: changes)\n"
               "  apply                  run one reconcile now\n"
               "  import CONFIG...       wrangler.toml/.json/.jsonc to spec files\n"
               "  schema                 print the JSON Schema of the spec language\n"
               "  reconcile              ask the running daemon to reconcile (--wait, --expect)\n"
               "  status                 the running daemon's status\n"
               "  state forget KIND/NAME stop owning a resource without deleting it\n"
               "  credentials            the credentials config and spec use; a LoadCredential= drop-in\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE      configuration (default %s)\n"
               "      --spec-dir DIR     spec directory (overrides the config)\n"
               "      --state-dir DIR    state directory\n"
               "      --api-url URL      Cloudflare API base URL\n"
               "      --account-id ID    Cloudflare account id\n"
               "      --listen HOST:PORT HTTP API address (repeatable)\n"
               "      --worker NAME      the worker, for types\n"
               "      --all              types: every worker\n"
               "      --output DIR       types: write DIR/WORKER.d.ts; import: where to write (default .)\n"
               "      --json             machine-readable output\n"
               "      --force            allow more than max_deletions deletions\n"
               "      --adopt            import: adopt the worker and named resources\n"
               "      --log-level LEVEL  debug, info, notice, warning, error\n"
               "      --url URL          reconcile, status: the daemon's HTTP API\n"
               "      --token-file FILE  reconcile, status: the bearer token\n"
               "      --wait SECONDS     reconcile: wait for the run\n"
               "      --expect DIGEST    reconcile: the generation the spec must produce\n"
               "  -h, --help             this text (COMMAND --help: that command's)\n"
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
        ARG_OUTPUT,
        ARG_ADOPT,
        ARG_URL,
        ARG_TOKEN_FILE,
        ARG_WAIT,
        ARG_EXPECT,
        ARG_ALL,
};

/* After the options: the verb (with --help, its help) and its arguments,
 * which only "state" and "import" take. 1 to run it, 0 done, <0 usage. */
static int parse_command(int argc, char **argv, bool want_help, Options *o, const char **ret_command) {
        if (optind < argc)
                *ret_command = argv[optind++];
        if (want_help) {
                for (size_t i = 0; i < ELEMENTSOF(verb_help); i++)
                        if (streq(verb_help[i].name, *ret_command)) {
                                fputs(verb_help[i].text, stdout);
                                return 0;
                        }
                help();
                return 0;
        }
        if (optind < argc && !streq(*ret_command, "state") &&
            !streq(*ret_command, "import"))
                return log_error_errno(EINVAL, "Unexpected argument '%s'.", argv[optind]);
        for (; optind < argc; optind++)
                if (strv_extend(&o->args, argv[optind]) < 0)
                        return log_error_errno(ENOMEM, "Out of memory.");
        return 1;
}

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
                { "output", required_argument, NULL, ARG_OUTPUT },
                { "adopt", no_argument, NULL, ARG_ADOPT },
                { "url", required_argument, NULL, ARG_URL },
                { "token-file", required_argument, NULL, ARG_TOKEN_FILE },
                { "wait", required_argument, NULL, ARG_WAIT },
                { "expect", required_argument, NULL, ARG_EXPECT },
                { "all", no_argument, NULL, ARG_ALL },
                {}
        };
        bool want_help = false;
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
                case ARG_OUTPUT:
                        o->output = optarg;
                        break;
                case ARG_ADOPT:
                        o->adopt = true;
                        break;
                case 'h':
                        want_help = true;
                        break;
                case ARG_URL:
                        o->url = optarg;
                        break;
                case ARG_TOKEN_FILE:
                        o->token_file = optarg;
                        break;
                case ARG_WAIT:
                        o->wait = optarg;
                        break;
                case ARG_EXPECT:
                        o->expect = optarg;
                        break;
                case ARG_ALL:
                        o->all = true;
                        break;
                case ARG_VERSION:
                        printf("binderyd %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }

        return parse_command(argc, argv, want_help, o, ret_command);
}

static int run(int argc, char **argv) {
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
                strv_free(o.args);
                return r < 0 ? EXIT_USAGE : EXIT_OK;
        }
        if (o.log_level)
                log_set_max_level(log_level_from_string(o.log_level));

        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, command)) {
                        r = commands[i].run(&o);
                        strv_free(o.listen);
                        strv_free(o.args);
                        log_forget_secrets();
                        return r;
                }

        log_error("Unknown command '%s'; see 'binderyd --help'.", command);
        strv_free(o.listen);
        strv_free(o.args);
        return EXIT_USAGE;
}

int main(int argc, char **argv) {
        int r;

        /* Before anything reaches curl_global_init() (cfapi, notify,
         * etcd, the ctl client's curl_easy_init()): curl's global init
         * calls libssh2_init(0), which initialises all of OpenSSL's
         * algorithms for scp/sftp, protocols bindery never enables
         * (CURLOPT_PROTOCOLS_STR is "http,https" everywhere); that cost
         * the daemon 1.4 MiB (libcrypto's RSS 2.9 MiB instead of 1.4,
         * measured at 1 worker). libssh2 counts its callers and sets
         * crypto up only in the first, so this first call leaves it off
         * and curl's is only counted. (OpenSSL >= 1.1 initialises itself
         * on first use, should libssh2 ever need it.) Every command,
         * the CLI's included, comes through here. */
        (void) libssh2_init(LIBSSH2_INIT_NO_CRYPTO);
        r = run(argc, argv);
        libssh2_exit();
        return r;
}
