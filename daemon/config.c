/* config.c: binderyd.yaml, see config.h and binderyd.yaml(5).
 *
 * One table of keys (name, type, bounds, default as text) drives parsing:
 * defaults are parsed by the same code as the file, so a default can never
 * drift from what the parser accepts. Every problem is collected with its
 * libyaml mark and the file is rejected only after all were found.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <yaml.h>

#include "config.h"
#include "log.h"
#include "secrets.h"
#include "spec.h"
#include "util.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_ERRORS_MAX 100
#define CONFIG_LISTEN_MAX 16

typedef enum ConfigType {
        CONFIG_STRING,      /* a non-empty scalar */
        CONFIG_ACCOUNT_ID,  /* 32 hex digits */
        CONFIG_ENV_LIST,    /* environment variable names, a scalar or a list */
        CONFIG_PATH,        /* a directory; relative to the config file's directory */
        CONFIG_URL,         /* http:// or https:// */
        CONFIG_BOOL,
        CONFIG_UINT,        /* unsigned, min..max */
        CONFIG_DURATION,    /* "30s", "5m", ...; min..max in µs */
        CONFIG_SECRET,      /* {credential|file|env: X} or "credential:X" */
        CONFIG_LISTEN,      /* "HOST:PORT" or a list of them */
        CONFIG_BUDGET,      /* "N/DURATION" */
        CONFIG_LOG_LEVEL,
        CONFIG_NOTIFY,      /* a list of {url, secret, events} */
        CONFIG_HA,          /* the ha: mapping (parse_ha) */
} ConfigType;

typedef struct ConfigKey {
        const char *name;
        ConfigType type;
        size_t offset;      /* of the value in Config */
        ssize_t set_offset; /* of a "given in the file" bool, or -1 */
        uint64_t min, max;
        const char *def;    /* default, parsed like file text; NULL: none */
        bool required;
} ConfigKey;

#define OFF(f) offsetof(Config, f)
#define SEC USEC_PER_SEC
#define DAY (24 * 3600 * USEC_PER_SEC)

static const ConfigKey config_keys[] = {
        { "account_id",      CONFIG_ACCOUNT_ID, OFF(account_id),         -1,                      0, 0, NULL, true },
        { "api_url",         CONFIG_URL,       OFF(api_url),             -1,                      0, 0, CONFIG_DEFAULT_API_URL },
        { "api_token",       CONFIG_SECRET,    OFF(api_token),           OFF(api_token_set),      0, 0, NULL },
        { "spec_dir",        CONFIG_PATH,      OFF(spec_dir),            -1,                      0, 0, NULL, true },
        { "state_dir",       CONFIG_PATH,      OFF(state_dir),           -1,                      0, 0, NULL },
        { "spec_files_dir",  CONFIG_PATH,      OFF(spec_files_dir),      -1,                      0, 0, NULL },
        { "spec_env",        CONFIG_ENV_LIST,  OFF(spec_env),            -1,                      0, 0, NULL },
        { "listen",          CONFIG_LISTEN,    OFF(listen),              -1,                      0, 0, CONFIG_DEFAULT_LISTEN },
        { "http_token",      CONFIG_SECRET,    OFF(http_token),          OFF(http_token_set),     0, 0, NULL },
        { "http_auth_reads", CONFIG_BOOL,      OFF(http_auth_reads),     -1,                      0, 0, "false" },
        { "webhook_secret",  CONFIG_SECRET,    OFF(webhook_secret),      OFF(webhook_secret_set), 0, 0, NULL },
        { "interval",        CONFIG_DURATION,  OFF(interval_usec),       -1,                      1 * SEC, 7 * DAY, "5m" },
        { "full_refresh",    CONFIG_DURATION,  OFF(full_refresh_usec),   -1,                      60 * SEC, 30 * DAY, "6h" },
        { "audit_overlap",   CONFIG_DURATION,  OFF(audit_overlap_usec),  -1,                      1 * SEC, 1 * DAY, "15m" },
        { "prune",           CONFIG_BOOL,      OFF(prune),               -1,                      0, 0, "false" },
        { "prune_settle",    CONFIG_DURATION,  OFF(prune_settle_usec),   -1,                      0, 1 * DAY, "30s" },
        { "allow_empty",     CONFIG_BOOL,      OFF(allow_empty),         -1,                      0, 0, "false" },
        { "max_deletions",   CONFIG_UINT,      OFF(max_deletions),       -1,                      0, 100000, "5" },
        { "binding_target_wait", CONFIG_DURATION, OFF(target_wait_usec), -1,                    0, 10 * 60 * SEC, "30s" },
        { "concurrency",     CONFIG_UINT,      OFF(concurrency),         -1,                      1, 64, "8" },
        { "request_budget",  CONFIG_BUDGET,    OFF(request_budget),      -1,                      1, 100000, "1000/5m" },
        { "log_level",       CONFIG_LOG_LEVEL, OFF(log_level),           -1,                      0, 0, "info" },
        { "notify",          CONFIG_NOTIFY,    OFF(notify),              -1,                      0, 0, NULL },
        { "webhook_ref",     CONFIG_STRING,    OFF(webhook_ref),         -1,                      0, 0, NULL },
        { "ha",              CONFIG_HA,        OFF(ha),                  -1,                      0, 0, NULL },
};

/* Window bounds of request_budget. */
#define BUDGET_WINDOW_MIN (1 * SEC)
#define BUDGET_WINDOW_MAX (DAY)

typedef struct Errors {
        ConfigError *v;
        size_t n;
        bool oom;
} Errors;

_printf_(4, 5)
static void add_error(Errors *e, unsigned line, unsigned column, const char *fmt, ...) {
        ConfigError *n;
        va_list ap;
        char *m;

        if (e->n >= CONFIG_ERRORS_MAX)
                return;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0) {
                va_end(ap);
                e->oom = true;
                return;
        }
        va_end(ap);
        n = realloc(e->v, sizeof(ConfigError) * (e->n + 1));
        if (!n) {
                free(m);
                e->oom = true;
                return;
        }
        e->v = n;
        e->v[e->n++] = (ConfigError) { .line = line, .column = column, .message = m };
}

void config_errors_free(ConfigError *e, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(e[i].message);
        free(e);
}

static void notify_targets_free(NotifyTarget *t, size_t n);
static HAConfig *ha_config_free(HAConfig *h);

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        free(c->path);
        free(c->account_id);
        free(c->api_url);
        free(c->api_token.ref);
        free(c->spec_dir);
        free(c->spec_files_dir);
        strv_free(c->spec_env);
        free(c->state_dir);
        strv_free(c->listen);
        free(c->http_token.ref);
        free(c->webhook_secret.ref);
        notify_targets_free(c->notify, c->n_notify);
        free(c->webhook_ref);
        ha_config_free(c->ha);
        return mfree(c);
}

static const ConfigKey *find_key(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (streq(config_keys[i].name, name))
                        return &config_keys[i];
        return NULL;
}

static const char *suggest_key(const char *name) {
        const char *best = NULL;
        unsigned best_d = UINT_MAX;

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                unsigned d = edit_distance(name, config_keys[i].name);

                if (d < best_d) {
                        best_d = d;
                        best = config_keys[i].name;
                }
        }
        /* Close enough to be a typo: at most 2 edits, or a third of the key. */
        if (best && (best_d <= 2 || best_d * 3 <= strlen(best)))
                return best;
        return NULL;
}

int config_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len) {
        _cleanup_free_ char *host = NULL;
        const char *colon, *port_s;
        struct sockaddr_storage ss = {};
        socklen_t len;
        uint64_t port;

        if (isempty(s))
                return -EINVAL;
        if (s[0] == '[') {
                const char *end = strchr(s, ']');

                if (!end || end[1] != ':')
                        return -EINVAL;
                host = strndup(s + 1, (size_t) (end - s - 1));
                port_s = end + 2;
        } else {
                colon = strrchr(s, ':');
                if (!colon || strchr(s, ':') != colon)
                        return -EINVAL;
                host = strndup(s, (size_t) (colon - s));
                port_s = colon + 1;
        }
        if (!host)
                return -ENOMEM;
        if (safe_atou64(port_s, &port) < 0 || port > 65535)
                return -EINVAL;

        if (s[0] == '[') {
                struct sockaddr_in6 *sa = (struct sockaddr_in6 *) &ss;

                if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
                        return -EINVAL;
                sa->sin6_family = AF_INET6;
                sa->sin6_port = htons((uint16_t) port);
                len = sizeof(*sa);
        } else {
                struct sockaddr_in *sa = (struct sockaddr_in *) &ss;

                if (streq(host, "localhost"))
                        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
                        return -EINVAL;
                sa->sin_family = AF_INET;
                sa->sin_port = htons((uint16_t) port);
                len = sizeof(*sa);
        }
        if (ret)
                *ret = ss;
        if (ret_len)
                *ret_len = len;
        return 0;
}

static const char *node_type_name(const yaml_node_t *n) {
        switch (n->type) {
        case YAML_MAPPING_NODE:
                return "a mapping";
        case YAML_SEQUENCE_NODE:
                return "a list";
        default:
                return "a scalar";
        }
}

static const char *scalar(const yaml_node_t *n) {
        return n && n->type == YAML_SCALAR_NODE ? (const char *) n->data.scalar.value : NULL;
}

#define LINE(n) ((unsigned) (n)->start_mark.line + 1)
#define COL(n) ((unsigned) (n)->start_mark.column + 1)

static int parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "true", "yes", "on", "True", "TRUE", "Yes", "On" };
        static const char *const no[] = { "false", "no", "off", "False", "FALSE", "No", "Off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (streq(s, yes[i])) {
                        *ret = true;
                        return 0;
                }
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (streq(s, no[i])) {
                        *ret = false;
                        return 0;
                }
        return -EINVAL;
}

static int secret_source_parse(const char *s, SecretSource *ret) {
        if (streq(s, "credential"))
                *ret = SECRET_SOURCE_CREDENTIAL;
        else if (streq(s, "file"))
                *ret = SECRET_SOURCE_FILE;
        else if (streq(s, "env"))
                *ret = SECRET_SOURCE_ENV;
        else
                return -EINVAL;
        return 0;
}

/* Checks a reference's form; returns a static message or NULL if fine. */
static const char *secret_ref_check(SecretSource source, const char *ref) {
        if (isempty(ref))
                return "empty secret reference";
        switch (source) {
        case SECRET_SOURCE_CREDENTIAL:
                if (!secrets_credential_name_is_valid(ref))
                        return "not a valid credential name (no '/' or control character, not '.' or '..', "
                               "at most 255 bytes)";
                return NULL;
        case SECRET_SOURCE_FILE:
                if (ref[0] != '/')
                        return "a secret file must be an absolute path";
                return NULL;
        case SECRET_SOURCE_ENV:
                for (const char *p = ref; *p; p++)
                        if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                              (p != ref && *p >= '0' && *p <= '9')))
                                return "not a valid environment variable name";
                return NULL;
        default:
                return "unknown secret source";
        }
}

/* A secret reference: "credential:NAME" (s), or {credential|file|env: X}
 * (mapping node n), into ref. name is the key, for messages. */
static int parse_secret(const char *name, yaml_document_t *doc, yaml_node_t *n, const char *def, SecretRef *ref,
                        Errors *e) {
        unsigned line = n ? LINE(n) : 0, col = n ? COL(n) : 0;
        const char *s = n ? scalar(n) : def, *value, *msg;
        SecretSource source;
        char *v;

        if (s) {
                /* "credential:NAME", "file:/path", "env:VAR" */
                _cleanup_free_ char *src = NULL;
                const char *colon = strchr(s, ':');

                if (!colon || !(src = strndup(s, (size_t) (colon - s))) || secret_source_parse(src, &source) < 0) {
                        add_error(e, line, col,
                                  "'%s' must be a secret reference ({credential: NAME}, {file: PATH} or {env: VAR}); "
                                  "secret values never go in the config file", name);
                        return -EINVAL;
                }
                value = colon + 1;
        } else if (n && n->type == YAML_MAPPING_NODE) {
                yaml_node_pair_t *pairs = n->data.mapping.pairs.start;
                size_t np = (size_t) (n->data.mapping.pairs.top - pairs);
                yaml_node_t *kn, *vn;

                if (np != 1) {
                        add_error(e, line, col, "'%s' must have exactly one of credential, file or env", name);
                        return -EINVAL;
                }
                kn = yaml_document_get_node(doc, pairs[0].key);
                vn = yaml_document_get_node(doc, pairs[0].value);
                if (!scalar(kn) || secret_source_parse(scalar(kn), &source) < 0) {
                        add_error(e, kn ? LINE(kn) : line, kn ? COL(kn) : col,
                                  "unknown secret source '%s' in '%s' (expected credential, file or env)",
                                  strna(scalar(kn)), name);
                        return -EINVAL;
                }
                if (!scalar(vn)) {
                        add_error(e, vn ? LINE(vn) : line, vn ? COL(vn) : col, "'%s.%s' must be a scalar", name,
                                  scalar(kn));
                        return -EINVAL;
                }
                value = scalar(vn);
                line = LINE(vn);
                col = COL(vn);
        } else {
                add_error(e, line, col, "'%s' must be a secret reference, not %s", name,
                          n ? node_type_name(n) : "nothing");
                return -EINVAL;
        }
        msg = secret_ref_check(source, value);
        if (msg) {
                add_error(e, line, col, "'%s': %s", name, msg);
                return -EINVAL;
        }
        v = strdup(value);
        if (!v)
                return -ENOMEM;
        free(ref->ref);
        ref->ref = v;
        ref->source = source;
        return 0;
}

static const char *const notify_event_names[_NOTIFY_EVENT_MAX] = {
        [NOTIFY_FAILED] = "failed",
        [NOTIFY_BLOCKED] = "blocked",
        [NOTIFY_DRIFT] = "drift",
        [NOTIFY_RECOVERED] = "recovered",
};

const char *notify_event_to_string(NotifyEvent ev) {
        return ev >= 0 && ev < _NOTIFY_EVENT_MAX ? notify_event_names[ev] : NULL;
}

NotifyEvent notify_event_from_string(const char *s) {
        for (int i = 0; s && i < _NOTIFY_EVENT_MAX; i++)
                if (streq(s, notify_event_names[i]))
                        return (NotifyEvent) i;
        return _NOTIFY_EVENT_INVALID;
}

static void notify_targets_free(NotifyTarget *t, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(t[i].url);
                free(t[i].secret.ref);
        }
        free(t);
}

/* notify.url: an http:// or https:// URL. */
static int parse_notify_url(NotifyTarget *t, yaml_node_t *vn, bool *bad, Errors *e) {
        const char *s = scalar(vn);

        if (isempty(s) || !(startswith(s, "http://") || startswith(s, "https://")) || strpbrk(s, " \r\n")) {
                add_error(e, LINE(vn), COL(vn), "'notify.url' must be an http:// or https:// URL");
                *bad = true;
                return 0;
        }
        t->url = strdup(s);
        return t->url ? 0 : -ENOMEM;
}

/* notify.events: a non-empty list of event names, into t->events. */
static void parse_notify_events(NotifyTarget *t, yaml_document_t *doc, yaml_node_t *vn, bool *bad, Errors *e) {
        if (!vn || vn->type != YAML_SEQUENCE_NODE) {
                add_error(e, LINE(vn), COL(vn),
                          "'notify.events' must be a list of failed, blocked, drift, recovered");
                *bad = true;
                return;
        }
        for (yaml_node_item_t *j = vn->data.sequence.items.start; j < vn->data.sequence.items.top; j++) {
                yaml_node_t *en = yaml_document_get_node(doc, *j);
                NotifyEvent ev = notify_event_from_string(scalar(en));

                if (ev < 0) {
                        add_error(e, LINE(en), COL(en),
                                  "unknown notify event '%s' (expected failed, blocked, drift or recovered)",
                                  strna(scalar(en)));
                        *bad = true;
                        continue;
                }
                t->events |= 1U << ev;
        }
        if (t->events == 0 && !*bad) {
                add_error(e, LINE(vn), COL(vn), "'notify.events' must name at least one event");
                *bad = true;
        }
}

static void notify_unknown_key(yaml_node_t *kn, const char *key, Errors *e) {
        static const char *const keys[] = { "url", "secret", "events" };
        const char *best = NULL;

        for (size_t q = 0; key && q < ELEMENTSOF(keys); q++)
                if (edit_distance(key, keys[q]) <= 2)
                        best = keys[q];
        if (best)
                add_error(e, LINE(kn), COL(kn), "unknown key '%s' in 'notify'; did you mean '%s'?",
                          strna(key), best);
        else
                add_error(e, LINE(kn), COL(kn),
                          "unknown key '%s' in 'notify' (expected url, secret, events)", strna(key));
}

/* One notify entry (a mapping) into t. -EINVAL when it has errors (all
 * reported), -ENOMEM. */
static int parse_notify_target(NotifyTarget *t, yaml_document_t *doc, yaml_node_t *tn, Errors *e) {
        bool bad = false;
        int k;

        *t = (NotifyTarget) { .line = LINE(tn) };
        for (yaml_node_pair_t *p = tn->data.mapping.pairs.start; p < tn->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
                const char *key = scalar(kn);

                if (key && streq(key, "url")) {
                        if (parse_notify_url(t, vn, &bad, e) < 0)
                                return -ENOMEM;
                } else if (key && streq(key, "secret")) {
                        k = parse_secret("notify.secret", doc, vn, NULL, &t->secret, e);
                        if (k == -ENOMEM)
                                return k;
                        if (k < 0)
                                bad = true;
                        else
                                t->secret_set = true;
                } else if (key && streq(key, "events"))
                        parse_notify_events(t, doc, vn, &bad, e);
                else {
                        notify_unknown_key(kn, key, e);
                        bad = true;
                }
        }
        if (!t->url && !bad) {
                add_error(e, LINE(tn), COL(tn), "a 'notify' entry needs a url");
                bad = true;
        }
        if (t->events == 0)
                t->events = (1U << _NOTIFY_EVENT_MAX) - 1;     /* default: every event */
        return bad ? -EINVAL : 0;
}

/* notify: a list of {url, secret?, events?}. */
static int parse_notify(Config *c, yaml_document_t *doc, yaml_node_t *n, Errors *e) {
        NotifyTarget *v = NULL;
        size_t nv = 0;
        int r = 0, k;

        if (!n || n->type != YAML_SEQUENCE_NODE) {
                add_error(e, n ? LINE(n) : 0, n ? COL(n) : 0,
                          "'notify' must be a list of {url, secret, events}, not %s", n ? node_type_name(n) : "nothing");
                return -EINVAL;
        }
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
                yaml_node_t *tn = yaml_document_get_node(doc, *i);
                NotifyTarget *nn;

                if (nv >= CONFIG_NOTIFY_MAX) {
                        add_error(e, LINE(tn), COL(tn), "'notify' takes at most %d targets", CONFIG_NOTIFY_MAX);
                        r = -E2BIG;
                        break;
                }
                if (!tn || tn->type != YAML_MAPPING_NODE) {
                        add_error(e, tn ? LINE(tn) : LINE(n), tn ? COL(tn) : COL(n),
                                  "'notify' entries must be mappings with url, secret and events");
                        r = -EINVAL;
                        continue;
                }
                nn = realloc(v, sizeof(NotifyTarget) * (nv + 1));
                if (!nn) {
                        notify_targets_free(v, nv);
                        return -ENOMEM;
                }
                v = nn;
                k = parse_notify_target(&v[nv++], doc, tn, e);
                if (k == -ENOMEM) {
                        notify_targets_free(v, nv);
                        return k;
                }
                if (k < 0)
                        r = k;
        }
        if (r < 0) {
                notify_targets_free(v, nv);
                return r;
        }
        notify_targets_free(c->notify, c->n_notify);
        c->notify = v;
        c->n_notify = nv;
        return 0;
}

/* One value being parsed: a node (n), or a default text (def, n == NULL),
 * for key k, into field; s is the node's scalar text or def. */
typedef struct ConfigValue {
        Config *c;
        const char *base_dir;
        const ConfigKey *k;
        yaml_document_t *doc;
        yaml_node_t *n;
        const char *s, *def;
        void *field;
        unsigned line, col;
        Errors *e;
} ConfigValue;

/* string, account id, URL, path: a non-empty scalar, checked and copied. */
static int parse_string_value(const ConfigValue *v) {
        const ConfigKey *k = v->k;
        char **p = v->field;
        char *d;

        if (k->type == CONFIG_ACCOUNT_ID && !config_account_id_is_valid(v->s)) {
                add_error(v->e, v->line, v->col, "'%s' must be the 32 hexadecimal digits of a Cloudflare account "
                          "id, not '%.64s'", k->name, v->s);
                return -EINVAL;
        }
        if (isempty(v->s)) {
                add_error(v->e, v->line, v->col, "'%s' must not be empty", k->name);
                return -EINVAL;
        }
        if (k->type == CONFIG_URL && !startswith(v->s, "http://") && !startswith(v->s, "https://")) {
                add_error(v->e, v->line, v->col, "'%s' must be an http:// or https:// URL, not '%s'", k->name, v->s);
                return -EINVAL;
        }
        if (k->type == CONFIG_PATH && v->s[0] != '/' && v->base_dir)
                d = path_join(v->base_dir, v->s);
        else
                d = strdup(v->s);
        if (!d)
                return -ENOMEM;
        if (k->type == CONFIG_URL) {
                size_t l = strlen(d);

                while (l > 8 && d[l - 1] == '/')
                        d[--l] = 0;
        }
        free(*p);
        *p = d;
        return 0;
}

static int parse_bool_value(const ConfigValue *v) {
        if (parse_bool(v->s, v->field) < 0) {
                add_error(v->e, v->line, v->col, "'%s' must be true or false, not '%s'", v->k->name, v->s);
                return -EINVAL;
        }
        return 0;
}

static int parse_uint_value(const ConfigValue *v) {
        const ConfigKey *k = v->k;
        uint64_t u;

        if (safe_atou64(v->s, &u) < 0) {
                add_error(v->e, v->line, v->col, "'%s' must be a whole number, not '%s'", k->name, v->s);
                return -EINVAL;
        }
        if (u < k->min || u > k->max) {
                add_error(v->e, v->line, v->col, "'%s' must be between %" PRIu64 " and %" PRIu64 ", not %" PRIu64,
                          k->name, k->min, k->max, u);
                return -ERANGE;
        }
        *(unsigned *) v->field = (unsigned) u;
        return 0;
}

static int parse_duration_value(const ConfigValue *v) {
        const ConfigKey *k = v->k;
        char a[32], b[32];
        uint64_t u;

        if (parse_duration(v->s, &u) < 0) {
                add_error(v->e, v->line, v->col, "'%s' must be a duration like 30s, 5m or 6h, not '%s'",
                          k->name, v->s);
                return -EINVAL;
        }
        if (u < k->min || u > k->max) {
                add_error(v->e, v->line, v->col, "'%s' must be between %s and %s, not '%s'", k->name,
                          format_duration(k->min, a, sizeof(a)), format_duration(k->max, b, sizeof(b)), v->s);
                return -ERANGE;
        }
        *(uint64_t *) v->field = u;
        return 0;
}

static int parse_budget_value(const ConfigValue *v) {
        const ConfigKey *k = v->k;
        _cleanup_free_ char *count = NULL;
        const char *slash = v->s ? strchr(v->s, '/') : NULL;
        uint64_t u, w;

        if (!slash || !(count = strndup(v->s, (size_t) (slash - v->s))) ||
            safe_atou64(count, &u) < 0 || parse_duration(slash + 1, &w) < 0) {
                add_error(v->e, v->line, v->col, "'%s' must read REQUESTS/DURATION, like 1000/5m, not '%s'",
                          k->name, v->s);
                return -EINVAL;
        }
        if (u < k->min || u > k->max) {
                add_error(v->e, v->line, v->col, "'%s': the request count must be between %" PRIu64 " and %" PRIu64,
                          k->name, k->min, k->max);
                return -ERANGE;
        }
        if (w < BUDGET_WINDOW_MIN || w > BUDGET_WINDOW_MAX) {
                add_error(v->e, v->line, v->col, "'%s': the window must be between 1s and 1d", k->name);
                return -ERANGE;
        }
        v->c->request_budget = (unsigned) u;
        v->c->request_window_usec = w;
        return 0;
}

static int parse_log_level_value(const ConfigValue *v) {
        int l = log_level_from_string(v->s);

        if (l < 0) {
                add_error(v->e, v->line, v->col, "'%s' must be one of debug, info, notice, warning, error, not '%s'",
                          v->k->name, v->s);
                return -EINVAL;
        }
        *(int *) v->field = l;
        return 0;
}

static int parse_secret_value(const ConfigValue *v) {
        int r = parse_secret(v->k->name, v->doc, v->n, v->def, v->field, v->e);

        if (r < 0)
                return r;
        if (v->k->set_offset >= 0 && v->n)
                *(bool *) ((uint8_t *) v->c + v->k->set_offset) = true;
        return 0;
}

static int parse_notify_value(const ConfigValue *v) {
        return parse_notify(v->c, v->doc, v->n, v->e);
}

static int parse_ha(Config *c, const char *base_dir, yaml_document_t *doc, yaml_node_t *n, Errors *e);

static int parse_ha_value(const ConfigValue *v) {
        return parse_ha(v->c, v->base_dir, v->doc, v->n, v->e);
}

static int parse_env_list_value(const ConfigValue *v) {
        _cleanup_strv_free_ char **l = NULL;
        const char *k = v->k->name;
        char ***p = v->field;
        bool bad = false;

        if (v->s) {
                if (strv_extend(&l, v->s) < 0)
                        return -ENOMEM;
        } else if (v->n->type == YAML_SEQUENCE_NODE) {
                for (yaml_node_item_t *i = v->n->data.sequence.items.start; i < v->n->data.sequence.items.top; i++) {
                        yaml_node_t *in = yaml_document_get_node(v->doc, *i);
                        const char *a = scalar(in);

                        if (!a) {
                                add_error(v->e, LINE(in), COL(in), "'%s' entries must be scalars", k);
                                bad = true;
                                continue;
                        }
                        if (strv_extend(&l, a) < 0)
                                return -ENOMEM;
                }
        } else {
                add_error(v->e, v->line, v->col, "'%s' must be a variable name or a list of them, not %s",
                          k, node_type_name(v->n));
                return -EINVAL;
        }
        for (char **x = l; x && *x; x++)
                if (isempty(*x) || secret_ref_check(SECRET_SOURCE_ENV, *x)) {
                        add_error(v->e, v->line, v->col, "'%s': '%.64s' is not an environment variable name", k, *x);
                        bad = true;
                }
        if (bad)
                return -EINVAL;
        strv_free(*p);
        *p = TAKE_PTR(l);
        return 0;
}

static int parse_listen_list(const ConfigValue *v, char ***l) {
        const char *k = v->k->name;
        int r = 0;

        for (yaml_node_item_t *i = v->n->data.sequence.items.start; i < v->n->data.sequence.items.top; i++) {
                yaml_node_t *in = yaml_document_get_node(v->doc, *i);
                const char *a = scalar(in);

                if (!a) {
                        add_error(v->e, LINE(in), COL(in), "'%s' entries must be scalars", k);
                        r = -EINVAL;
                        continue;
                }
                if (config_parse_listen(a, NULL, NULL) < 0) {
                        add_error(v->e, LINE(in), COL(in),
                                  "'%s': '%s' is not an address like 127.0.0.1:9470 or [::1]:9470", k, a);
                        r = -EINVAL;
                        continue;
                }
                if (strv_extend(l, a) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        if (strv_length(*l) == 0) {
                add_error(v->e, v->line, v->col, "'%s' must name at least one address", k);
                return -EINVAL;
        }
        if (strv_length(*l) > CONFIG_LISTEN_MAX) {
                add_error(v->e, v->line, v->col, "'%s' takes at most %d addresses", k, CONFIG_LISTEN_MAX);
                return -E2BIG;
        }
        return 0;
}

static int parse_listen_value(const ConfigValue *v) {
        _cleanup_strv_free_ char **l = NULL;
        char ***p = v->field;
        int r;

        if (v->s) {
                if (config_parse_listen(v->s, NULL, NULL) < 0) {
                        add_error(v->e, v->line, v->col,
                                  "'%s': '%s' is not an address like 127.0.0.1:9470 or [::1]:9470", v->k->name, v->s);
                        return -EINVAL;
                }
                if (strv_extend(&l, v->s) < 0)
                        return -ENOMEM;
        } else if (v->n->type == YAML_SEQUENCE_NODE) {
                r = parse_listen_list(v, &l);
                if (r < 0)
                        return r;
        } else {
                add_error(v->e, v->line, v->col, "'%s' must be an address or a list of addresses, not %s",
                          v->k->name, node_type_name(v->n));
                return -EINVAL;
        }
        strv_free(*p);
        *p = TAKE_PTR(l);
        return 0;
}

static int (*const value_parsers[])(const ConfigValue *v) = {
        [CONFIG_STRING] = parse_string_value,
        [CONFIG_ACCOUNT_ID] = parse_string_value,
        [CONFIG_ENV_LIST] = parse_env_list_value,
        [CONFIG_PATH] = parse_string_value,
        [CONFIG_URL] = parse_string_value,
        [CONFIG_BOOL] = parse_bool_value,
        [CONFIG_UINT] = parse_uint_value,
        [CONFIG_DURATION] = parse_duration_value,
        [CONFIG_SECRET] = parse_secret_value,
        [CONFIG_LISTEN] = parse_listen_value,
        [CONFIG_BUDGET] = parse_budget_value,
        [CONFIG_LOG_LEVEL] = parse_log_level_value,
        [CONFIG_NOTIFY] = parse_notify_value,
        [CONFIG_HA] = parse_ha_value,
};

/* A value node (n), or a default text (def, n == NULL), into the field,
 * by the key's type. */
static int parse_value(Config *c, const char *base_dir, const ConfigKey *k,
                       yaml_document_t *doc, yaml_node_t *n, const char *def, Errors *e) {
        ConfigValue v = {
                .c = c, .base_dir = base_dir, .k = k, .doc = doc, .n = n, .def = def, .e = e,
                .s = n ? scalar(n) : def,
                .field = (uint8_t *) c + k->offset,
                .line = n ? LINE(n) : 0,
                .col = n ? COL(n) : 0,
        };

        /* A YAML null ("key:" or "~") is "not set": the default applies. */
        if (n && n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            (streq(v.s, "") || streq(v.s, "~") || streq(v.s, "null")))
                return 0;

        if (k->type != CONFIG_LISTEN && k->type != CONFIG_SECRET && k->type != CONFIG_NOTIFY &&
            k->type != CONFIG_ENV_LIST && k->type != CONFIG_HA && !v.s) {
                add_error(e, v.line, v.col, "'%s' must be a scalar, not %s", k->name, node_type_name(n));
                return -EINVAL;
        }
        if ((size_t) k->type >= ELEMENTSOF(value_parsers) || !value_parsers[k->type])
                return -EINVAL;
        return value_parsers[k->type](&v);
}

static int apply_defaults(Config *c) {
        Errors e = {};
        int r;

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                if (!config_keys[i].def)
                        continue;
                r = parse_value(c, NULL, &config_keys[i], NULL, NULL, config_keys[i].def, &e);
                if (r < 0 || e.n > 0) {
                        /* A default the parser rejects is a programming error. */
                        config_errors_free(e.v, e.n);
                        return r < 0 ? r : -EINVAL;
                }
        }
        return 0;
}

static void yaml_parserp(yaml_parser_t *p) {
        yaml_parser_delete(p);
}

static void yaml_documentp(yaml_document_t **d) {
        if (*d)
                yaml_document_delete(*d);
}

/* The directory of path, absolute (relative to the working directory when
 * path is relative), so status and logs name real paths. */
static int config_base_dir(const char *path, char **ret) {
        _cleanup_free_ char *base_dir = NULL, *cwd = NULL;
        char *slash;

        base_dir = strdup(path);
        if (!base_dir)
                return -ENOMEM;
        slash = strrchr(base_dir, '/');
        if (slash == base_dir)
                slash[1] = 0;
        else if (slash)
                *slash = 0;
        else
                base_dir = mfree(base_dir);
        if (base_dir && base_dir[0] == '/') {
                *ret = TAKE_PTR(base_dir);
                return 0;
        }
        cwd = getcwd(NULL, 0);
        if (!cwd)
                return -errno;
        if (!base_dir) {
                *ret = TAKE_PTR(cwd);
                return 0;
        }
        *ret = path_join(cwd, base_dir);
        return *ret ? 0 : -ENOMEM;
}

/* The top-level mapping: each key known and once, its value parsed.
 * seen[] and bad[] are indexed like config_keys. */
static int parse_root(Config *c, const char *base_dir, yaml_document_t *doc, yaml_node_t *root,
                      bool seen[], bool bad[], Errors *e) {
        int r;

        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = yaml_document_get_node(doc, p->key);
                yaml_node_t *vn = yaml_document_get_node(doc, p->value);
                const char *name = scalar(kn);
                const ConfigKey *k;

                if (!name) {
                        add_error(e, LINE(kn), COL(kn), "keys must be scalars");
                        continue;
                }
                k = find_key(name);
                if (!k) {
                        const char *s = suggest_key(name);

                        if (s)
                                add_error(e, LINE(kn), COL(kn), "unknown key '%s'; did you mean '%s'?", name, s);
                        else
                                add_error(e, LINE(kn), COL(kn), "unknown key '%s'", name);
                        continue;
                }
                if (seen[k - config_keys]) {
                        add_error(e, LINE(kn), COL(kn), "duplicate key '%s'", name);
                        continue;
                }
                seen[k - config_keys] = true;
                r = parse_value(c, base_dir, k, doc, vn, NULL, e);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        bad[k - config_keys] = true;
        }
        return 0;
}

static int parse_file(Config *c, const char *path, bool seen[], bool bad[], Errors *e) {
        _cleanup_(yaml_parserp) yaml_parser_t parser = {};
        _cleanup_(yaml_documentp) yaml_document_t *docp = NULL;
        _cleanup_free_ char *data = NULL, *base_dir = NULL;
        yaml_document_t doc;
        yaml_node_t *root;
        size_t size;
        int r;

        r = read_full_file(path, CONFIG_FILE_MAX, &data, &size);
        if (r < 0)
                return r;
        r = config_base_dir(path, &base_dir);
        if (r < 0)
                return r;

        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *) data, size);
        if (!yaml_parser_load(&parser, &doc)) {
                add_error(e, (unsigned) parser.problem_mark.line + 1, (unsigned) parser.problem_mark.column + 1,
                          "YAML syntax error: %s%s%s", strna(parser.problem),
                          parser.context ? " " : "", parser.context ? parser.context : "");
                return -EINVAL;
        }
        docp = &doc;

        root = yaml_document_get_root_node(&doc);
        if (!root)
                return 0;  /* an empty file: defaults only (required keys are checked later) */
        if (root->type != YAML_MAPPING_NODE) {
                add_error(e, LINE(root), COL(root), "the configuration must be a mapping of keys, not %s",
                          node_type_name(root));
                return -EINVAL;
        }
        return parse_root(c, base_dir, &doc, root, seen, bad, e);
}

static int ha_defaults(Config *c);

/* Where the API token comes from when the file does not say. */
static int default_api_token(Config *c) {
        const char *creds = getenv("CREDENTIALS_DIRECTORY");
        bool have_credential = false;
        char *ref;

        if (creds) {
                _cleanup_free_ char *p = path_join(creds, "cloudflare-api-token");

                if (!p)
                        return -ENOMEM;
                have_credential = access(p, R_OK) == 0;
        }
        if (!have_credential && getenv("CLOUDFLARE_API_TOKEN")) {
                ref = strdup("CLOUDFLARE_API_TOKEN");
                c->api_token.source = SECRET_SOURCE_ENV;
        } else {
                ref = strdup("cloudflare-api-token");
                c->api_token.source = SECRET_SOURCE_CREDENTIAL;
        }
        if (!ref)
                return -ENOMEM;
        free(c->api_token.ref);
        c->api_token.ref = ref;
        return 0;
}

static int apply_options(Config *c, const Options *o, Errors *e) {
        if (!o)
                return 0;
        if (o->account_id && !config_account_id_is_valid(o->account_id))
                add_error(e, 0, 0, "--account-id must be the 32 hexadecimal digits of a Cloudflare account id, "
                          "not '%.64s'", o->account_id);
        else if (o->account_id && free_and_strdup(&c->account_id, o->account_id) < 0)
                return -ENOMEM;
        if (o->api_url) {
                if (!startswith(o->api_url, "http://") && !startswith(o->api_url, "https://"))
                        add_error(e, 0, 0, "--api-url must be an http:// or https:// URL, not '%s'", o->api_url);
                else if (free_and_strdup(&c->api_url, o->api_url) < 0)
                        return -ENOMEM;
        }
        if (o->spec_dir && free_and_strdup(&c->spec_dir, o->spec_dir) < 0)
                return -ENOMEM;
        if (o->state_dir && free_and_strdup(&c->state_dir, o->state_dir) < 0)
                return -ENOMEM;
        if (o->listen && o->listen[0]) {
                char **l;

                for (char **a = o->listen; *a; a++)
                        if (config_parse_listen(*a, NULL, NULL) < 0)
                                add_error(e, 0, 0, "--listen: '%s' is not an address like 127.0.0.1:9470 or [::1]:9470", *a);
                l = strv_copy(o->listen);
                if (!l)
                        return -ENOMEM;
                strv_free(c->listen);
                c->listen = l;
        }
        if (o->log_level) {
                int l = log_level_from_string(o->log_level);

                if (l < 0)
                        add_error(e, 0, 0, "--log-level: unknown level '%s'", o->log_level);
                else
                        c->log_level = l;
        }
        return 0;
}

/* Every required key is set (unless it had an error of its own). */
static void check_required(const Config *c, const bool bad[], Errors *e) {
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                const ConfigKey *k = &config_keys[i];

                if (k->required && !*(char * const *) ((const uint8_t *) c + k->offset) && !bad[i])
                        add_error(e, 0, 0, "missing required key '%s'%s", k->name,
                                  streq(k->name, "spec_dir") ? " (or --spec-dir)" :
                                  streq(k->name, "account_id") ? " (or --account-id)" : "");
        }
}

/* The defaults that depend on the environment: the state directory
 * (systemd's STATE_DIRECTORY), the API token's source, ha:'s. */
static int environment_defaults(Config *c) {
        int r;

        if (!c->state_dir) {
                const char *sd = getenv("STATE_DIRECTORY");

                if (!isempty(sd))
                        /* Several directories are separated by ':'; ours is the first. */
                        c->state_dir = strndup(sd, strcspn(sd, ":"));
                else
                        c->state_dir = strdup("/var/lib/bindery");
                if (!c->state_dir)
                        return -ENOMEM;
        }
        if (!c->api_token_set) {
                r = default_api_token(c);
                if (r < 0)
                        return r;
        }
        if (c->ha) {
                r = ha_defaults(c);
                if (r < 0)
                        return r;
        }
        return 0;
}

int config_load(const char *path, const Options *o, Config **ret,
                ConfigError **ret_errors, size_t *ret_n_errors) {
        _cleanup_(config_freep) Config *c = NULL;
        bool seen[ELEMENTSOF(config_keys)] = {}, bad[ELEMENTSOF(config_keys)] = {};
        bool unreadable = false;
        Errors e = {};
        int r;

        c = calloc(1, sizeof(Config));
        if (!c)
                return -ENOMEM;
        r = apply_defaults(c);
        if (r < 0)
                return r;

        if (path) {
                c->path = strdup(path);
                if (!c->path)
                        return -ENOMEM;
                r = parse_file(c, path, seen, bad, &e);
                if (r < 0 && r != -EINVAL)
                        goto fail;
                /* A file that is not YAML or not a mapping: its error says it all. */
                unreadable = r == -EINVAL;
        }
        r = apply_options(c, o, &e);
        if (r < 0)
                goto fail;
        if (!unreadable)
                check_required(c, bad, &e);
        r = environment_defaults(c);
        if (r < 0)
                goto fail;

        if (e.oom) {
                r = -ENOMEM;
                goto fail;
        }
        if (e.n > 0) {
                r = -EINVAL;
                goto fail;
        }
        *ret = TAKE_PTR(c);
        if (ret_errors)
                *ret_errors = NULL;
        if (ret_n_errors)
                *ret_n_errors = 0;
        return 0;

fail:
        if (ret_errors && e.n > 0) {
                *ret_errors = e.v;
                if (ret_n_errors)
                        *ret_n_errors = e.n;
        } else {
                config_errors_free(e.v, e.n);
                if (ret_errors)
                        *ret_errors = NULL;
                if (ret_n_errors)
                        *ret_n_errors = 0;
        }
        return r;
}

bool config_account_id_is_valid(const char *s) {
        size_t n = 0;

        if (!s)
                return false;
        for (; s[n]; n++)
                if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f') || (s[n] >= 'A' && s[n] <= 'F')))
                        return false;
        return n == 32;
}

/* The daemon's own secrets: specs may never read them. Every secret key
 * of the daemon joins this list (notification and etcd secrets too). */
static const size_t daemon_secrets[] = {
        OFF(api_token),
        OFF(http_token),
        OFF(webhook_secret),
};
/* Their defaults, refused whether or not the file names them. */
static const char *const daemon_default_credentials[] = { "cloudflare-api-token", NULL };
static const char *const daemon_default_env[] = { "CLOUDFLARE_API_TOKEN", NULL };

/* path, and where its symlinks lead if it exists, into *l. */
static int add_path(char ***l, const char *path) {
        _cleanup_free_ char *real = NULL;

        if (strv_extend(l, path) < 0)
                return -ENOMEM;
        real = realpath(path, NULL);
        if (real && !streq(real, path) && strv_extend(l, real) < 0)
                return -ENOMEM;
        return 0;
}

/* A secret of the daemon's: its credential, variable or file is denied. */
static int grant_deny_secret(SpecGrant *g, const SecretRef *r) {
        if (isempty(r->ref))
                return 0;
        switch (r->source) {
        case SECRET_SOURCE_CREDENTIAL:
                return strv_extend(&g->deny_credentials, r->ref);
        case SECRET_SOURCE_ENV:
                return strv_extend(&g->deny_env, r->ref);
        case SECRET_SOURCE_FILE:
                return add_path(&g->deny_paths, r->ref);
        default:
                return 0;
        }
}

/* Every secret of the daemon's: the defaults (refused whether or not the
 * file names them), the keys in daemon_secrets, the notification secrets,
 * the etcd password and TLS client key. */
static int grant_deny_daemon_secrets(const Config *c, SpecGrant *g) {
        for (const char *const *p = daemon_default_credentials; *p; p++)
                if (strv_extend(&g->deny_credentials, *p) < 0)
                        return -ENOMEM;
        for (const char *const *p = daemon_default_env; *p; p++)
                if (strv_extend(&g->deny_env, *p) < 0)
                        return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(daemon_secrets); i++)
                if (grant_deny_secret(g, (const SecretRef *) ((const uint8_t *) c + daemon_secrets[i])) < 0)
                        return -ENOMEM;
        for (size_t i = 0; i < c->n_notify; i++)
                if (c->notify[i].secret_set && grant_deny_secret(g, &c->notify[i].secret) < 0)
                        return -ENOMEM;
        if (c->ha && c->ha->password_set && grant_deny_secret(g, &c->ha->password) < 0)
                return -ENOMEM;
        if (c->ha && c->ha->key_file && add_path(&g->deny_paths, c->ha->key_file) < 0)
                return -ENOMEM;
        return 0;
}

int config_spec_grant(const Config *c, SpecGrant *ret) {
        _cleanup_(spec_grant_done) SpecGrant g = {
                .files_key = "spec_files_dir",
                .env_key = "spec_env",
        };
        const char *creds = getenv("CREDENTIALS_DIRECTORY");

        if (grant_deny_daemon_secrets(c, &g) < 0)
                return -ENOMEM;
        /* The daemon's credentials read as files, too. */
        if (!isempty(creds))
                for (char **n = g.deny_credentials; n && *n; n++) {
                        _cleanup_free_ char *p = path_join(creds, *n);

                        if (!p || add_path(&g.deny_paths, p) < 0)
                                return -ENOMEM;
                }
        if (c->state_dir && add_path(&g.deny_paths, c->state_dir) < 0)
                return -ENOMEM;
        if (c->spec_files_dir) {
                g.files_dir = realpath(c->spec_files_dir, NULL) ?: strdup(c->spec_files_dir);
                if (!g.files_dir)
                        return -ENOMEM;
        }
        if (c->spec_env) {
                g.env = strv_copy(c->spec_env);
                if (!g.env)
                        return -ENOMEM;
        }
        *ret = g;
        g = (SpecGrant) {};
        return 0;
}

/* ---- ha: (issue 11) ---- */

static HAConfig *ha_config_free(HAConfig *h) {
        if (!h)
                return NULL;
        strv_free(h->etcd);
        free(h->ca_file);
        free(h->cert_file);
        free(h->key_file);
        free(h->user);
        free(h->password.ref);
        free(h->name);
        free(h->advertise_url);
        free(h->prefix);
        return mfree(h);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(HAConfig *, ha_config_free);

static const char *const ha_keys[] = {
        "etcd", "ca_file", "cert_file", "key_file", "user", "password",
        "name", "advertise_url", "lease_ttl", "prefix", "forward",
};

/* http(s)://HOST[:PORT][/...], without user:password@ (credentials go in
 * ha.user and ha.password, never in a URL that status shows). */
static bool ha_url_is_valid(const char *s) {
        const char *host;

        if (isempty(s) || !(startswith(s, "http://") || startswith(s, "https://")) || strlen(s) >= 1024 ||
            strpbrk(s, " \t\r\n"))
                return false;
        host = strstr(s, "//") + 2;
        return *host && *host != '/' && !memchr(host, '@', strcspn(host, "/"));
}

static bool ha_name_is_valid(const char *s) {
        size_t n = 0;

        for (; s && s[n]; n++)
                if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
                      (s[n] >= '0' && s[n] <= '9') || strchr(".-_", s[n])))
                        return false;
        return n > 0 && n <= 64;
}

static int ha_set_path(char **p, const char *base_dir, const char *s) {
        char *d = s[0] != '/' && base_dir ? path_join(base_dir, s) : strdup(s);

        if (!d)
                return -ENOMEM;
        free(*p);
        *p = d;
        return 0;
}

static int ha_parse_etcd(HAConfig *h, yaml_document_t *doc, yaml_node_t *vn, Errors *e) {
        _cleanup_strv_free_ char **l = NULL;
        bool bad = false;

        if (scalar(vn)) {
                if (strv_extend(&l, scalar(vn)) < 0)
                        return -ENOMEM;
        } else if (vn->type == YAML_SEQUENCE_NODE) {
                for (yaml_node_item_t *i = vn->data.sequence.items.start; i < vn->data.sequence.items.top; i++) {
                        yaml_node_t *in = yaml_document_get_node(doc, *i);

                        if (!scalar(in)) {
                                add_error(e, LINE(in), COL(in), "'ha.etcd' entries must be URLs");
                                bad = true;
                        } else if (strv_extend(&l, scalar(in)) < 0)
                                return -ENOMEM;
                }
        } else {
                add_error(e, LINE(vn), COL(vn), "'ha.etcd' must be a URL or a list of URLs, not %s",
                          node_type_name(vn));
                return -EINVAL;
        }
        for (char **x = l; x && *x; x++)
                if (strchr(*x, '@')) {
                        /* Not echoed: it may hold a password. */
                        add_error(e, LINE(vn), COL(vn), "'ha.etcd': an endpoint has user:password@ in it; "
                                  "use ha.user and ha.password");
                        bad = true;
                } else if (!ha_url_is_valid(*x)) {
                        add_error(e, LINE(vn), COL(vn), "'ha.etcd': '%.128s' is not an http:// or https:// URL",
                                  *x);
                        bad = true;
                }
        if (!bad && strv_length(l) == 0) {
                add_error(e, LINE(vn), COL(vn), "'ha.etcd' must name at least one endpoint");
                bad = true;
        }
        if (strv_length(l) > CONFIG_HA_ETCD_MAX) {
                add_error(e, LINE(vn), COL(vn), "'ha.etcd' takes at most %d endpoints", CONFIG_HA_ETCD_MAX);
                bad = true;
        }
        if (bad)
                return -EINVAL;
        strv_free(h->etcd);
        h->etcd = TAKE_PTR(l);
        return 0;
}

/* One key of ha: into h. */
static int ha_parse_key(HAConfig *h, const char *base_dir, yaml_document_t *doc, const char *key,
                        yaml_node_t *vn, Errors *e) {
        const char *s = scalar(vn);
        uint64_t u;

        if (streq(key, "etcd"))
                return ha_parse_etcd(h, doc, vn, e);
        if (streq(key, "password")) {
                int r = parse_secret("ha.password", doc, vn, NULL, &h->password, e);

                if (r >= 0)
                        h->password_set = true;
                return r;
        }
        if (isempty(s)) {
                add_error(e, LINE(vn), COL(vn), "'ha.%s' must be a non-empty scalar", key);
                return -EINVAL;
        }
        if (streq(key, "ca_file"))
                return ha_set_path(&h->ca_file, base_dir, s);
        if (streq(key, "cert_file"))
                return ha_set_path(&h->cert_file, base_dir, s);
        if (streq(key, "key_file"))
                return ha_set_path(&h->key_file, base_dir, s);
        if (streq(key, "user"))
                return free_and_strdup(&h->user, s);
        if (streq(key, "name")) {
                if (!ha_name_is_valid(s)) {
                        add_error(e, LINE(vn), COL(vn),
                                  "'ha.name' must be 1 to 64 letters, digits, '.', '-' or '_', not '%.64s'", s);
                        return -EINVAL;
                }
                return free_and_strdup(&h->name, s);
        }
        if (streq(key, "advertise_url")) {
                if (!ha_url_is_valid(s)) {
                        add_error(e, LINE(vn), COL(vn), "'ha.advertise_url' must be an http:// or https:// URL, "
                                  "not '%.128s'", s);
                        return -EINVAL;
                }
                return free_and_strdup(&h->advertise_url, s);
        }
        if (streq(key, "lease_ttl")) {
                if (parse_duration(s, &u) < 0 || u % USEC_PER_SEC != 0 || u < 2 * SEC || u > 60 * SEC) {
                        add_error(e, LINE(vn), COL(vn), "'ha.lease_ttl' must be whole seconds between 2s and 60s, "
                                  "not '%s'", s);
                        return -EINVAL;
                }
                h->lease_ttl_usec = u;
                return 0;
        }
        if (streq(key, "prefix")) {
                if (s[0] != '/' || !endswith(s, "/") || strlen(s) > 200 || strpbrk(s, " \t\r\n")) {
                        add_error(e, LINE(vn), COL(vn), "'ha.prefix' must start and end with '/' (at most 200 "
                                  "bytes, no space), not '%.64s'", s);
                        return -EINVAL;
                }
                return free_and_strdup(&h->prefix, s);
        }
        if (streq(key, "forward")) {
                if (parse_bool(s, &h->forward) < 0) {
                        add_error(e, LINE(vn), COL(vn), "'ha.forward' must be true or false, not '%s'", s);
                        return -EINVAL;
                }
                return 0;
        }
        return -EINVAL;
}

static int parse_ha(Config *c, const char *base_dir, yaml_document_t *doc, yaml_node_t *n, Errors *e) {
        _cleanup_(ha_config_freep) HAConfig *h = NULL;
        bool seen[ELEMENTSOF(ha_keys)] = {}, bad = false;
        int r;

        if (!n || n->type != YAML_MAPPING_NODE) {
                add_error(e, n ? LINE(n) : 0, n ? COL(n) : 0, "'ha' must be a mapping (etcd, name, "
                          "advertise_url, ...), not %s", n ? node_type_name(n) : "nothing");
                return -EINVAL;
        }
        h = calloc(1, sizeof(HAConfig));
        if (!h)
                return -ENOMEM;
        h->lease_ttl_usec = 10 * SEC;
        h->forward = true;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
                const char *key = scalar(kn), *best = NULL;
                size_t i;

                for (i = 0; key && i < ELEMENTSOF(ha_keys); i++)
                        if (streq(key, ha_keys[i]))
                                break;
                if (!key || i == ELEMENTSOF(ha_keys)) {
                        for (size_t j = 0; key && j < ELEMENTSOF(ha_keys); j++)
                                if (edit_distance(key, ha_keys[j]) <= 2)
                                        best = ha_keys[j];
                        if (best)
                                add_error(e, LINE(kn), COL(kn), "unknown key '%s' in 'ha'; did you mean '%s'?",
                                          strna(key), best);
                        else
                                add_error(e, LINE(kn), COL(kn), "unknown key '%s' in 'ha'", strna(key));
                        bad = true;
                        continue;
                }
                if (seen[i]) {
                        add_error(e, LINE(kn), COL(kn), "duplicate key 'ha.%s'", key);
                        bad = true;
                        continue;
                }
                seen[i] = true;
                r = ha_parse_key(h, base_dir, doc, key, vn, e);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        bad = true;
        }
        if (!h->etcd && !seen[0]) {
                add_error(e, LINE(n), COL(n), "'ha' needs 'etcd', a list of etcd endpoint URLs");
                bad = true;
        }
        if (!!h->cert_file != !!h->key_file) {
                add_error(e, LINE(n), COL(n), "'ha.cert_file' and 'ha.key_file' go together");
                bad = true;
        }
        if (!!h->user != h->password_set) {
                add_error(e, LINE(n), COL(n), "'ha.user' and 'ha.password' go together");
                bad = true;
        }
        if (h->etcd && (h->ca_file || h->cert_file))
                for (char **x = h->etcd; *x; x++)
                        if (!startswith(*x, "https://")) {
                                add_error(e, LINE(n), COL(n), "'ha.ca_file'/'ha.cert_file' apply to https:// "
                                          "endpoints, but 'ha.etcd' has '%.128s'", *x);
                                bad = true;
                                break;
                        }
        if (bad)
                return -EINVAL;
        ha_config_free(c->ha);
        c->ha = TAKE_PTR(h);
        return 0;
}

/* What ha: leaves out, once account_id and listen are known. */
static int ha_defaults(Config *c) {
        HAConfig *h = c->ha;

        if (!h->name) {
                char host[256] = {};

                if (gethostname(host, sizeof host - 1) < 0 || !ha_name_is_valid(host))
                        (void) snprintf(host, sizeof host, "binderyd");
                h->name = strdup(host);
                if (!h->name)
                        return -ENOMEM;
        }
        if (!h->prefix && c->account_id && asprintf(&h->prefix, "/bindery/%s/", c->account_id) < 0)
                return -ENOMEM;
        if (!h->advertise_url && c->listen && c->listen[0] &&
            asprintf(&h->advertise_url, "http://%s", c->listen[0]) < 0)
                return -ENOMEM;
        return 0;
}
