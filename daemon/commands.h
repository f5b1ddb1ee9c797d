/* commands.h: the subcommands main.c dispatches to. Each returns the
 * process exit code (see binderyd(8)); each logs its own errors. */
#pragma once

#include <stdbool.h>

#include "model.h"

/* Command-line options shared by every subcommand. Strings point into
 * argv; NULL means "not given" (the config file or a default applies). */
typedef struct Options {
        const char *config_path;    /* --config; default BINDERY_DEFAULT_CONFIG */
        bool config_given;
        const char *spec_dir;       /* --spec-dir */
        const char *state_dir;      /* --state-dir */
        const char *api_url;        /* --api-url */
        const char *account_id;     /* --account-id */
        char **listen;              /* --listen, repeatable (strv, owned by main) */
        const char *worker;         /* --worker (types) */
        bool all;                   /* --all (types: every worker) */
        const char *output;         /* --output DIR (types, import) */
        const char *log_level;      /* --log-level */
        bool json;                  /* --json */
        bool force;                 /* --force */
        bool adopt;                 /* --adopt (import) */
        /* clients of a running daemon (reconcile, status) */
        const char *url;            /* --url */
        const char *token_file;     /* --token-file */
        const char *wait;           /* --wait SECONDS */
        const char *expect;         /* --expect DIGEST */
        char **args;                /* arguments after the command (import CONFIG..., state forget KIND/NAME) */
} Options;

#define BINDERY_DEFAULT_CONFIG "/etc/bindery/binderyd.yaml"

/* Exit codes (binderyd(8)), one precedence for every verb: 1 > 3 > 2 > 0. */
enum {
        EXIT_OK = 0,                /* in sync, or changed as asked */
        EXIT_FAILED = 1,            /* any error; validate: invalid */
        EXIT_CHANGES = 2,           /* drift reported, or changes pending (plan; removals waiting) */
        EXIT_BLOCKED = 3,           /* blocked by a safety rule */
        EXIT_TIMEOUT = 4,           /* reconcile --wait: the run did not finish in time */
        EXIT_USAGE = 64,
};

/* The exit code for a run result ("ok", "changes", "drift", "failed",
 * "blocked") with pending removals: the precedence above. */
int exit_code_for_result(const char *result, unsigned pending);

int cmd_validate(const Options *o);   /* cmd-validate.c */
int cmd_types(const Options *o);      /* cmd-validate.c */
int cmd_credentials(const Options *o); /* cmd-credentials.c */
int cmd_plan(const Options *o);       /* cmd-engine.c */
int cmd_apply(const Options *o);      /* cmd-engine.c */
int cmd_daemon(const Options *o);     /* cmd-daemon.c */
int cmd_reconcile(const Options *o);  /* cmd-client.c */
int cmd_status(const Options *o);     /* cmd-client.c */
int cmd_state(const Options *o);      /* cmd-client.c */
/* state import | export (cmd-state-ha.c), from cmd_state. */
int cmd_state_transfer(const Options *o, bool import);
/* state forget with ha: the ledger in etcd, under one-shot leadership. */
struct Config;
int cmd_state_forget_ha(const struct Config *cfg, ResourceKind kind, const char *name, const char *what);
int cmd_import(const Options *o);     /* cmd-import.c */
int cmd_schema(const Options *o);     /* cmd-schema.c */
