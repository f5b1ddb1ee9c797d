/* commands.h: the subcommands main.c dispatches to. Each returns the
 * process exit code (see binderyd(8)); each logs its own errors. */
#pragma once

#include <stdbool.h>

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
        const char *log_level;      /* --log-level */
        bool json;                  /* --json */
        bool force;                 /* --force */
        const char *output;         /* --output (import) */
        bool adopt;                 /* --adopt (import) */
        char **args;                /* arguments after the command (import), strv owned by main */
} Options;

#define BINDERY_DEFAULT_CONFIG "/etc/bindery/binderyd.yaml"

/* Exit codes (binderyd(8)). */
enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1,            /* validate: invalid; plan/apply: error */
        EXIT_CHANGES = 2,           /* plan: changes pending or drift reported */
        EXIT_BLOCKED = 3,           /* apply: blocked by a safety rule */
        EXIT_USAGE = 64,
};

int cmd_validate(const Options *o);   /* cmd-validate.c */
int cmd_types(const Options *o);      /* cmd-validate.c */
int cmd_plan(const Options *o);       /* cmd-engine.c */
int cmd_apply(const Options *o);      /* cmd-engine.c */
int cmd_daemon(const Options *o);     /* cmd-daemon.c */
int cmd_import(const Options *o);     /* cmd-import.c */
int cmd_schema(const Options *o);     /* cmd-schema.c */
