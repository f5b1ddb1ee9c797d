/* cmd-client.c: `binderyd reconcile`, `binderyd status` (clients of a
 * running daemon's HTTP API, binderyd(8) "CLIENT COMMANDS") and `binderyd
 * state forget`. The CLI may block, so libcurl's easy interface is used. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "commands.h"
#include "cmd-config.h"
#include "config.h"
#include "curl-glue.h"
#include "log.h"
#include "secrets.h"
#include "ledger.h"
#include "store-file.h"
#include "util.h"

#define CLIENT_BODY_MAX (16U * 1024 * 1024)

int exit_code_for_result(const char *result, unsigned pending) {
        if (!result || streq(result, "failed") || streq(result, "interrupted"))
                return EXIT_FAILED;
        if (streq(result, "blocked"))
                return EXIT_BLOCKED;
        if (streq(result, "changes") || streq(result, "drift") || pending > 0)
                return EXIT_CHANGES;
        return EXIT_OK;
}

static size_t on_data(char *ptr, size_t size, size_t n, void *userdata) {
        return curl_body_append(userdata, ptr, size * n, CLIENT_BODY_MAX);
}

/* "HOST:PORT" of a listen entry → a URL; a wildcard host is loopback. */
static char *url_from_listen(const char *l) {
        const char *colon = strrchr(l, ':');
        _cleanup_free_ char *host = NULL;
        char *u;

        if (!colon)
                return NULL;
        host = strndup(l, (size_t) (colon - l));
        if (!host)
                return NULL;
        if (isempty(host) || streq(host, "*") || streq(host, "0.0.0.0"))
                return asprintf(&u, "http://127.0.0.1:%s", colon + 1) < 0 ? NULL : u;
        if (streq(host, "[::]") || streq(host, "::"))
                return asprintf(&u, "http://[::1]:%s", colon + 1) < 0 ? NULL : u;
        return asprintf(&u, "http://%s:%s", host, colon + 1) < 0 ? NULL : u;
}

typedef struct Client {
        char *url;                  /* base, no trailing slash */
        char *token;                /* wiped on free */
        size_t token_size;
} Client;

static void client_done(Client *c) {
        free(c->url);
        erase_and_free(c->token, c->token_size);
}

/* The daemon's URL and the bearer token: flags, environment, then the
 * configuration (its first listen address, its http_token reference). */
static int client_init(const Options *o, bool need_token, Client *c) {
        _cleanup_(config_freep) Config *cfg = NULL;
        const char *env = getenv("BINDERY_HTTP_TOKEN");
        int r;

        if (!o->url || (need_token && !o->token_file && isempty(env))) {
                r = cmd_load_config(o, &cfg);
                if (r < 0 && !o->url)
                        return log_error_errno(r, "Cannot find the daemon: give --url URL or a configuration with listen.");
        }
        if (o->url)
                c->url = strdup(o->url);
        else if (cfg && cfg->listen && cfg->listen[0])
                c->url = url_from_listen(cfg->listen[0]);
        else
                return log_error_errno(EINVAL, "Cannot find the daemon: give --url URL (under socket activation "
                                       "the configuration's listen is not used).");
        if (!c->url)
                return log_error_errno(ENOMEM, "Out of memory.");
        while (endswith(c->url, "/"))
                c->url[strlen(c->url) - 1] = 0;

        if (o->token_file) {
                r = read_full_file(o->token_file, 64 * 1024, &c->token, &c->token_size);
                if (r < 0)
                        return log_error_errno(r, "Cannot read the token file '%s': %m", o->token_file);
        } else if (!isempty(env)) {
                c->token = strdup(env);
                if (!c->token)
                        return log_error_errno(ENOMEM, "Out of memory.");
                c->token_size = strlen(env);
        } else if (cfg && cfg->http_token_set) {
                _cleanup_free_ char *msg = NULL;

                r = secrets_resolve(&cfg->http_token, NULL, &c->token, &c->token_size, &msg);
                if (r < 0 && need_token) {
                        _cleanup_free_ char *ref = secret_ref_to_string(&cfg->http_token);

                        return log_error_errno(r, "No HTTP token: %s (http_token %s); give --token-file FILE or "
                                               "set $BINDERY_HTTP_TOKEN.", msg ?: strerror(-r), strna(ref));
                }
        }
        if (c->token) {
                /* One trailing newline, as for credentials. */
                if (c->token_size > 0 && c->token[c->token_size - 1] == '\n')
                        c->token[--c->token_size] = 0;
                if (c->token_size == 0 || strpbrk(c->token, "\r\n"))
                        return log_error_errno(EINVAL, "The HTTP token is empty or spans lines.");
                (void) log_register_secret(c->token, c->token_size);
        } else if (need_token)
                return log_error_errno(ENOKEY, "No HTTP token: give --token-file FILE, set $BINDERY_HTTP_TOKEN, "
                                       "or configure http_token.");
        return 0;
}

/* One request; *ret_status is the HTTP status (0: no answer). */
static int client_call(Client *c, const char *method, const char *path_query, const char *accept,
                       long timeout_sec, long *ret_status, char **ret_body) {
        _cleanup_free_ char *url = NULL, *auth = NULL, *acc = NULL;
        struct curl_slist *h = NULL;
        CurlBody b = {};
        CURLcode cc;
        CURL *curl;
        int r = 0;

        if (asprintf(&url, "%s%s", c->url, path_query) < 0)
                return -ENOMEM;
        curl = curl_easy_init();
        if (!curl)
                return -ENOMEM;
        if (c->token) {
                if (asprintf(&auth, "Authorization: Bearer %s", c->token) < 0) {
                        curl_easy_cleanup(curl);
                        return -ENOMEM;
                }
                h = curl_slist_append(h, auth);
        }
        if (asprintf(&acc, "Accept: %s", accept) >= 0)
                h = curl_slist_append(h, acc);
        (void) curl_easy_setopt(curl, CURLOPT_URL, url);
        (void) curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        if (streq(method, "POST")) {
                (void) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
                (void) curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
        }
        (void) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
        (void) curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
        (void) curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
        (void) curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_sec);
        (void) curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
        (void) curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        /* A follower with ha.forward: false answers 307 to the leader:
         * follow it, resending the token there (curl --location-trusted);
         * only 3xx are followed, never a 202's Location. */
        (void) curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
        (void) curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 2L);
        (void) curl_easy_setopt(curl, CURLOPT_UNRESTRICTED_AUTH, 1L);
        (void) curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        (void) curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        cc = curl_easy_perform(curl);
        *ret_status = 0;
        if (cc == CURLE_OK)
                (void) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, ret_status);
        else {
                log_error("Cannot reach the daemon at %s: %s.", c->url, curl_easy_strerror(cc));
                r = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
        }
        curl_easy_cleanup(curl);
        curl_slist_free_all(h);
        if (auth)
                explicit_bzero(auth, strlen(auth));
        if (r < 0 || b.too_big) {
                free(b.data);
                return r < 0 ? r : -EFBIG;
        }
        *ret_body = b.data ? b.data : strdup("");
        return *ret_body ? 0 : -ENOMEM;
}

static const char *jstr(json_object *o, const char *k) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, k, &v) || !v || json_object_is_type(v, json_type_null))
                return NULL;
        return json_object_get_string(v);
}

static unsigned jint(json_object *o, const char *k) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, k, &v) || !v)
                return 0;
        return (unsigned) json_object_get_int(v);
}

int cmd_reconcile(const Options *o) {
        _cleanup_(client_done) Client c = {};
        _cleanup_free_ char *q = NULL, *body = NULL;
        _cleanup_(json_object_putp) json_object *j = NULL;
        uint64_t wait = 0;
        long status = 0;
        int r;

        if (o->wait && (safe_atou64(o->wait, &wait) < 0 || wait > 3600)) {
                log_error("reconcile: --wait takes a number of seconds (at most 3600), not '%s'.", o->wait);
                return EXIT_USAGE;
        }
        if (client_init(o, true, &c) < 0)
                return EXIT_FAILED;
        if (asprintf(&q, "/v1/reconcile?%s%s%s%s%s", o->force ? "force=1&" : "",
                     o->expect ? "expect=" : "", o->expect ?: "", o->expect ? "&" : "",
                     o->wait ? "wait=" : "") < 0)
                return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILED;
        if (o->wait) {
                _cleanup_free_ char *qq = NULL;

                if (asprintf(&qq, "%s%" PRIu64, q, wait) < 0)
                        return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILED;
                free(q);
                q = TAKE_PTR(qq);
        }
        if (endswith(q, "&") || endswith(q, "?"))
                q[strlen(q) - 1] = 0;
        r = client_call(&c, "POST", q, "application/json", (long) wait + 30, &status, &body);
        if (r < 0)
                return EXIT_FAILED;
        j = json_tokener_parse(body);
        if (status == 401 || status == 403) {
                log_error("reconcile: the daemon refused the token (HTTP %ld): %s", status, strna(jstr(j, "error")));
                return EXIT_FAILED;
        }
        if (status == 412) {
                json_object *errs;

                log_error("reconcile: %s (expected %s, the directory produces %s).", strna(jstr(j, "error")),
                          strna(o->expect), jstr(j, "digest") ?: "no valid generation");
                if (json_object_object_get_ex(j, "errors", &errs) && json_object_is_type(errs, json_type_array))
                        for (size_t i = 0; i < json_object_array_length(errs) && i < 50; i++)
                                log_error("%s", strna(jstr(json_object_array_get_idx(errs, i), "text")));
                return EXIT_FAILED;
        }
        if (!j || !jstr(j, "id")) {
                log_error("reconcile: HTTP %ld: %s", status, j && jstr(j, "error") ? jstr(j, "error") : strna(body));
                return EXIT_FAILED;
        }
        if (status == 202) {
                printf("run %s queued (%s)\n", jstr(j, "id"), strna(jstr(j, "url")));
                return EXIT_OK;
        }
        if (status == 504) {
                printf("run %s: %s after %" PRIu64 "s; still going (GET %s)\n", jstr(j, "id"),
                       strna(jstr(j, "state")), wait, strna(jstr(j, "url")));
                return EXIT_TIMEOUT;
        }
        if (o->json)
                printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        else {
                if (jstr(j, "text"))
                        fputs(jstr(j, "text"), stdout);
                printf("run %s: %s, generation %.12s, %u actions, %u writes, %u failed%s%s%s\n", jstr(j, "id"),
                       strna(jstr(j, "result")), strna(jstr(j, "generation")), jint(j, "n_actions"),
                       jint(j, "n_writes"), jint(j, "n_failed"),
                       jint(j, "pending_removals") ? "; removals waiting until " : "",
                       jint(j, "pending_removals") ? strna(jstr(j, "removals_due_at")) : "",
                       jint(j, "pending_removals") ? " (prune_settle)" : "");
        }
        if (status != 200 && status != 409) {
                log_error("reconcile: unexpected HTTP %ld.", status);
                return EXIT_FAILED;
        }
        return exit_code_for_result(jstr(j, "result"), jint(j, "pending_removals"));
}

/* Exit code of a status: 1 the last run failed (or the spec is rejected),
 * 3 something is blocked, 2 drift or pending, else 0. */
static int status_exit_code(json_object *s) {
        json_object *sum, *last, *g;
        int code = EXIT_OK;

        if (json_object_object_get_ex(s, "generation", &g) && streq_ptr(jstr(g, "state"), "rejected"))
                return EXIT_FAILED;
        if (json_object_object_get_ex(s, "last_run", &last) && last && streq_ptr(jstr(last, "result"), "failed"))
                return EXIT_FAILED;
        if (json_object_object_get_ex(s, "summary", &sum)) {
                if (jint(sum, "failed") > 0)
                        return EXIT_FAILED;
                if (jint(sum, "blocked") > 0)
                        return EXIT_BLOCKED;
                if (jint(sum, "drifted") > 0 || jint(sum, "pending") > 0)
                        code = EXIT_CHANGES;
        }
        if (last && streq_ptr(jstr(last, "result"), "blocked"))
                return EXIT_BLOCKED;
        if (last && (streq_ptr(jstr(last, "result"), "drift") || streq_ptr(jstr(last, "result"), "changes")))
                code = EXIT_CHANGES;
        if (jint(s, "pending_removals") > 0)     /* removals waiting for prune_settle */
                code = EXIT_CHANGES;
        return code;
}

int cmd_status(const Options *o) {
        _cleanup_(client_done) Client c = {};
        _cleanup_free_ char *body = NULL, *table = NULL;
        _cleanup_(json_object_putp) json_object *j = NULL;
        long status = 0;

        if (client_init(o, false, &c) < 0)
                return EXIT_FAILED;
        if (client_call(&c, "GET", "/v1/status", "application/json", 30, &status, &body) < 0)
                return EXIT_FAILED;
        j = json_tokener_parse(body);
        if (status != 200 || !j) {
                log_error("status: HTTP %ld: %s", status, j && jstr(j, "error") ? jstr(j, "error") : strna(body));
                return EXIT_FAILED;
        }
        if (o->json)
                printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        else {
                if (client_call(&c, "GET", "/v1/status?format=table", "text/plain", 30, &status, &table) < 0 ||
                    status != 200)
                        return EXIT_FAILED;
                fputs(table, stdout);
        }
        return status_exit_code(j);
}

/* binderyd state forget KIND/NAME: bindery stops owning the resource; it
 * is not deleted. Needs the state lock (the daemon stopped). */
int cmd_state(const Options *o) {
        _cleanup_(config_freep) Config *cfg = NULL;
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_(ledger_freep) Ledger *l = NULL;
        _cleanup_free_ char *msg = NULL, *kind_s = NULL;
        const char *what, *slash, *name;
        ResourceKind kind;
        int r;

        if (strv_length(o->args) == 1 && (streq(o->args[0], "import") || streq(o->args[0], "export")))
                return cmd_state_transfer(o, streq(o->args[0], "import"));
        if (strv_length(o->args) != 2 || !streq(o->args[0], "forget")) {
                log_error("state: usage: binderyd state forget KIND/NAME | import | export (see binderyd state --help).");
                return EXIT_USAGE;
        }
        what = o->args[1];
        slash = strchr(what, '/');
        if (!slash || slash == what || !slash[1]) {
                log_error("state forget: '%s' is not KIND/NAME (e.g. Worker/api, KVNamespace/cache).", what);
                return EXIT_USAGE;
        }
        kind_s = strndup(what, (size_t) (slash - what));
        if (!kind_s)
                return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILED;
        kind = resource_kind_from_string(kind_s);
        if (kind < 0) {
                log_error("state forget: unknown kind '%s'.", kind_s);
                return EXIT_USAGE;
        }
        name = slash + 1;
        if (cmd_load_config(o, &cfg) < 0)
                return EXIT_FAILED;
        if (cfg->ha)
                return cmd_state_forget_ha(cfg, kind, name, what);
        r = store_file_open(cfg->state_dir, true, &s, &msg);
        if (r == -EBUSY) {
                log_error("state forget: the state directory '%s' is locked (is binderyd running?); stop the "
                          "daemon first.", cfg->state_dir);
                return EXIT_FAILED;
        }
        if (r < 0)
                return log_error_errno(r, "state forget: cannot open the state in '%s': %s", cfg->state_dir,
                                       msg ?: strerror(-r)), EXIT_FAILED;
        r = ledger_load(s, &l, &msg);
        if (r < 0)
                return log_error_errno(r, "state forget: cannot load the state in '%s': %s", cfg->state_dir,
                                       msg ?: strerror(-r)), EXIT_FAILED;
        r = ledger_remove(l, kind, name);
        if (r == -ENOENT) {
                log_error("state forget: bindery does not own %s.", what);
                return EXIT_FAILED;
        }
        if (r < 0)
                return log_error_errno(r, "state forget: %m"), EXIT_FAILED;
        r = ledger_commit(l, s, &msg);
        if (r < 0)
                return log_error_errno(r, "state forget: cannot save the state: %s", msg ?: strerror(-r)), EXIT_FAILED;
        printf("bindery no longer owns %s; it was not deleted. Remove it from the spec too, or it is "
               "adopted or blocked again.\n", what);
        return EXIT_OK;
}
