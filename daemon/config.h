/* config.h: binderyd.yaml (binderyd.yaml(5)).
 *
 * A table of keys with type, bounds and default drives parsing (STYLE
 * rule 8); every error is reported as FILE:LINE:COLUMN: message and any
 * error rejects the file (the daemon then keeps its previous Config).
 * Command-line flags (Options) override the file. Secret references are
 * kept as references; values are read by secrets.c when needed.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "commands.h"
#include "model.h"

/* Outgoing notifications (notify.h). */
typedef enum NotifyEvent {
        NOTIFY_FAILED,
        NOTIFY_BLOCKED,
        NOTIFY_DRIFT,
        NOTIFY_RECOVERED,
        _NOTIFY_EVENT_MAX,
        _NOTIFY_EVENT_INVALID = -EINVAL,
} NotifyEvent;

const char *notify_event_to_string(NotifyEvent ev) _pure_;
NotifyEvent notify_event_from_string(const char *s) _pure_;

#define CONFIG_NOTIFY_MAX 16

typedef struct NotifyTarget {
        char *url;
        SecretRef secret;           /* HMAC key of X-Bindery-Signature-256 (a daemon-own secret) */
        bool secret_set;
        unsigned events;            /* 1 << NotifyEvent; every event when the file names none */
        unsigned line;              /* in the config file, for messages */
} NotifyTarget;

/* ha: (issue 11; binderyd.yaml(5) HIGH AVAILABILITY). NULL in Config
 * when the file has no ha: section: nothing changes then. */
#define CONFIG_HA_ETCD_MAX 16

typedef struct HAConfig {
        char **etcd;                /* endpoint URLs, http:// or https:// */
        char *ca_file;              /* TLS: CA bundle for https endpoints */
        char *cert_file, *key_file; /* TLS client certificate and key (key: a daemon secret) */
        char *user;                 /* etcd auth user, with password */
        SecretRef password;         /* a daemon-own secret reference */
        bool password_set;
        char *name;                 /* this host; default the hostname */
        char *advertise_url;        /* this host's HTTP API; default http://LISTEN[0] */
        uint64_t lease_ttl_usec;    /* default 10s, whole seconds 2s..60s */
        char *prefix;               /* default /bindery/ACCOUNT_ID/ */
        bool forward;               /* default true: forward triggers, else 307 */
} HAConfig;

typedef struct Config {
        char *path;                 /* the file read, or NULL (defaults + flags only) */
        char *account_id;
        char *api_url;              /* default "https://api.cloudflare.com/client/v4" */
        SecretRef api_token;        /* default: credential cloudflare-api-token, then env CLOUDFLARE_API_TOKEN */
        bool api_token_set;         /* api_token was given in the file */
        char *spec_dir;
        char *spec_files_dir;       /* the only directory spec {file:} secrets may name; NULL: none */
        char **spec_env;            /* the environment variables spec {env:} secrets may name */
        char *state_dir;            /* default /var/lib/bindery, or $STATE_DIRECTORY */
        char **listen;              /* "HOST:PORT" list; default {"127.0.0.1:9470"} */
        SecretRef http_token;       /* required for every POST except the webhook */
        bool http_token_set;
        bool http_auth_reads;       /* GETs need the token too */
        SecretRef webhook_secret;
        bool webhook_secret_set;
        uint64_t interval_usec;     /* default 5m */
        uint64_t full_refresh_usec; /* default 6h */
        uint64_t audit_overlap_usec; /* audit feed re-read per cycle (its ingestion delay); default 15m */
        bool prune;                 /* default false */
        uint64_t prune_settle_usec; /* default 30s */
        uint64_t target_wait_usec;  /* binding_target_wait: default 30s */
        bool allow_empty;           /* default false: a spec without documents deletes nothing */
        unsigned max_deletions;     /* default 5 */
        unsigned concurrency;       /* default 8, 1..64 */
        unsigned request_budget;    /* requests per window; default 1000 */
        uint64_t request_window_usec; /* default 5m */
        int log_level;              /* LOG_*; default LOG_INFO */
        NotifyTarget *notify;       /* notify: targets (at most CONFIG_NOTIFY_MAX) */
        size_t n_notify;
        char *webhook_ref;          /* only pushes to this ref trigger (NULL: any) */
        HAConfig *ha;               /* ha: section, or NULL */
} Config;

#define CONFIG_DEFAULT_API_URL "https://api.cloudflare.com/client/v4"
#define CONFIG_DEFAULT_LISTEN "127.0.0.1:9470"

Config *config_free(Config *c);

/* What specs may read (spec.h SpecGrant) under c: every credential but the
 * daemon's own, files below spec_files_dir only, env names in spec_env
 * only; never the daemon's own secrets (config.c daemon_secrets[], the one
 * list every secret key of the daemon joins) nor the state directory.
 * Caller frees with spec_grant_done(). Returns 0 or -ENOMEM. */
struct SpecGrant;
int config_spec_grant(const Config *c, struct SpecGrant *ret);

/* account_id: 32 lower- or upper-case hexadecimal digits. */
bool config_account_id_is_valid(const char *s) _pure_;
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/* One located error. */
typedef struct ConfigError {
        unsigned line, column;
        char *message;
} ConfigError;

/* Loads path (NULL: defaults only), then applies the overrides in o.
 * On failure returns -EINVAL (or -errno for I/O) and, if ret_errors is
 * non-NULL, the errors (caller frees with config_errors_free). Missing
 * required keys (account_id, spec_dir) are errors. Non-logging. */
int config_load(const char *path, const Options *o, Config **ret,
                ConfigError **ret_errors, size_t *ret_n_errors);
void config_errors_free(ConfigError *e, size_t n);

/* The daemon's own secret references (api_token, http_token,
 * webhook_secret, every notify secret) as "source:ref" strings; a spec may
 * not use them. NULL-terminated list (never NULL unless OOM); caller frees. */

/* Parses one listen address: "HOST:PORT" with a numeric IPv4 host,
 * "[IPv6]:PORT", or "localhost:PORT" (127.0.0.1); PORT 0..65535 (0: any
 * free port, for tests). Returns 0, or -EINVAL with nothing written. */
int config_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);
