/* test-config.c: binderyd.yaml parsing (config.c). */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon/config.h"
#include "spec.h"
#include "util.h"

static char tmpdir[] = "/tmp/test-config.XXXXXX";

static void setup(void) {
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        unsetenv("CREDENTIALS_DIRECTORY");
        unsetenv("CLOUDFLARE_API_TOKEN");
        unsetenv("STATE_DIRECTORY");
}

static void teardown(void) {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        ck_assert_int_eq(system(cmd), 0);
        memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
}

/* Writes text to tmpdir/name; returns the path (static buffer). */
static const char *write_config(const char *name, const char *text) {
        static char path[256];

        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        ck_assert_int_eq(write_file_atomic(path, text, strlen(text), 0600), 0);
        return path;
}

/* Loads text expecting failure; returns the errors joined as
 * "L:C: message\n" lines (caller frees). */
static char *load_errors(const char *text, const Options *o) {
        ConfigError *errs = NULL;
        size_t n = 0;
        Config *c = NULL;
        char *out = NULL;
        size_t size = 0;
        FILE *f;
        int r;

        r = config_load(write_config("bad.yaml", text), o, &c, &errs, &n);
        ck_assert_int_eq(r, -EINVAL);
        ck_assert_ptr_null(c);
        ck_assert_uint_gt(n, 0);
        f = open_memstream(&out, &size);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%u:%u: %s\n", errs[i].line, errs[i].column, errs[i].message);
        fclose(f);
        config_errors_free(errs, n);
        return out;
}

START_TEST(test_defaults) {
        _cleanup_(config_freep) Config *c = NULL;
        Options o = { .account_id = "0123456789abcdef0123456789abcdef", .spec_dir = "/srv/spec" };

        ck_assert_int_eq(config_load(NULL, &o, &c, NULL, NULL), 0);
        ck_assert_ptr_null(c->path);
        ck_assert_str_eq(c->account_id, "0123456789abcdef0123456789abcdef");
        ck_assert_str_eq(c->spec_dir, "/srv/spec");
        ck_assert_str_eq(c->api_url, CONFIG_DEFAULT_API_URL);
        ck_assert_str_eq(c->state_dir, "/var/lib/bindery");
        ck_assert_uint_eq(strv_length(c->listen), 1);
        ck_assert_str_eq(c->listen[0], CONFIG_DEFAULT_LISTEN);
        ck_assert(!c->http_auth_reads);
        ck_assert(!c->http_token_set);
        ck_assert(!c->webhook_secret_set);
        ck_assert(!c->api_token_set);
        ck_assert_int_eq(c->api_token.source, SECRET_SOURCE_CREDENTIAL);
        ck_assert_str_eq(c->api_token.ref, "cloudflare-api-token");
        ck_assert_uint_eq(c->interval_usec, 300 * USEC_PER_SEC);
        ck_assert_uint_eq(c->full_refresh_usec, 6 * 3600 * USEC_PER_SEC);
        ck_assert(!c->prune);
        ck_assert_uint_eq(c->prune_settle_usec, 30 * USEC_PER_SEC);
        ck_assert_uint_eq(c->max_deletions, 5);
        ck_assert_uint_eq(c->concurrency, 8);
        ck_assert_uint_eq(c->request_budget, 1000);
        ck_assert_uint_eq(c->request_window_usec, 300 * USEC_PER_SEC);
        ck_assert_int_eq(c->log_level, LOG_INFO);
}
END_TEST

START_TEST(test_full_file) {
        _cleanup_(config_freep) Config *c = NULL;
        const char *p;

        p = write_config("full.yaml",
                         "# every key\n"
                         "account_id: 0123456789abcdef0123456789abcdef\n"
                         "api_url: http://127.0.0.1:8788/client/v4/\n"
                         "api_token: { file: /etc/bindery/token }\n"
                         "spec_dir: specs\n"
                         "state_dir: /var/lib/bindery-test\n"
                         "listen:\n"
                         "  - 127.0.0.1:9470\n"
                         "  - \"[::1]:9470\"\n"
                         "http_token: credential:http-token\n"
                         "http_auth_reads: yes\n"
                         "webhook_secret: { env: GH_SECRET }\n"
                         "interval: 1m\n"
                         "full_refresh: 2h\n"
                         "prune: true\n"
                         "prune_settle: 10s\n"
                         "max_deletions: 0\n"
                         "concurrency: 64\n"
                         "request_budget: 600/2m\n"
                         "log_level: debug\n");
        ck_assert_int_eq(config_load(p, NULL, &c, NULL, NULL), 0);
        ck_assert_str_eq(c->path, p);
        ck_assert_str_eq(c->account_id, "0123456789abcdef0123456789abcdef");
        ck_assert_str_eq(c->api_url, "http://127.0.0.1:8788/client/v4");
        ck_assert(c->api_token_set);
        ck_assert_int_eq(c->api_token.source, SECRET_SOURCE_FILE);
        ck_assert_str_eq(c->api_token.ref, "/etc/bindery/token");
        /* relative paths are relative to the config file's directory */
        ck_assert(startswith(c->spec_dir, tmpdir));
        ck_assert(endswith(c->spec_dir, "/specs"));
        ck_assert_str_eq(c->state_dir, "/var/lib/bindery-test");
        ck_assert_uint_eq(strv_length(c->listen), 2);
        ck_assert_str_eq(c->listen[1], "[::1]:9470");
        ck_assert(c->http_token_set);
        ck_assert_int_eq(c->http_token.source, SECRET_SOURCE_CREDENTIAL);
        ck_assert_str_eq(c->http_token.ref, "http-token");
        ck_assert(c->http_auth_reads);
        ck_assert(c->webhook_secret_set);
        ck_assert_int_eq(c->webhook_secret.source, SECRET_SOURCE_ENV);
        ck_assert_str_eq(c->webhook_secret.ref, "GH_SECRET");
        ck_assert_uint_eq(c->interval_usec, 60 * USEC_PER_SEC);
        ck_assert_uint_eq(c->full_refresh_usec, 7200 * USEC_PER_SEC);
        ck_assert(c->prune);
        ck_assert_uint_eq(c->prune_settle_usec, 10 * USEC_PER_SEC);
        ck_assert_uint_eq(c->max_deletions, 0);
        ck_assert_uint_eq(c->concurrency, 64);
        ck_assert_uint_eq(c->request_budget, 600);
        ck_assert_uint_eq(c->request_window_usec, 120 * USEC_PER_SEC);
        ck_assert_int_eq(c->log_level, LOG_DEBUG);
}
END_TEST

START_TEST(test_overrides) {
        _cleanup_(config_freep) Config *c = NULL;
        char l0[] = "127.0.0.1:0", l1[] = "[::1]:0";
        char *listen[] = { l0, l1, NULL };
        Options o = {
                .account_id = "abcdefabcdefabcdefabcdefabcdefab",
                .api_url = "http://127.0.0.1:1/client/v4",
                .spec_dir = "/flag/spec",
                .state_dir = "/flag/state",
                .listen = listen,
                .log_level = "warning",
        };
        const char *p;

        p = write_config("o.yaml",
                         "account_id: 0123456789abcdef0123456789abcdef\n"
                         "spec_dir: /file/spec\n"
                         "listen: 127.0.0.1:1\n"
                         "log_level: debug\n");
        ck_assert_int_eq(config_load(p, &o, &c, NULL, NULL), 0);
        ck_assert_str_eq(c->account_id, "abcdefabcdefabcdefabcdefabcdefab");
        ck_assert_str_eq(c->api_url, "http://127.0.0.1:1/client/v4");
        ck_assert_str_eq(c->spec_dir, "/flag/spec");
        ck_assert_str_eq(c->state_dir, "/flag/state");
        ck_assert_uint_eq(strv_length(c->listen), 2);
        ck_assert_str_eq(c->listen[0], "127.0.0.1:0");
        ck_assert_int_eq(c->log_level, LOG_WARNING);
}
END_TEST

START_TEST(test_api_token_default) {
        _cleanup_(config_freep) Config *a = NULL, *b = NULL, *c = NULL;
        Options o = { .account_id = "0123456789abcdef0123456789abcdef", .spec_dir = "/s" };
        char p[300];

        /* env only: the environment variable */
        setenv("CLOUDFLARE_API_TOKEN", "t0ken", 1);
        ck_assert_int_eq(config_load(NULL, &o, &a, NULL, NULL), 0);
        ck_assert_int_eq(a->api_token.source, SECRET_SOURCE_ENV);
        ck_assert_str_eq(a->api_token.ref, "CLOUDFLARE_API_TOKEN");

        /* a credential wins over the environment */
        snprintf(p, sizeof(p), "%s/cloudflare-api-token", tmpdir);
        ck_assert_int_eq(write_file_atomic(p, "x", 1, 0600), 0);
        setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
        ck_assert_int_eq(config_load(NULL, &o, &b, NULL, NULL), 0);
        ck_assert_int_eq(b->api_token.source, SECRET_SOURCE_CREDENTIAL);
        ck_assert_str_eq(b->api_token.ref, "cloudflare-api-token");

        /* $STATE_DIRECTORY: the first entry */
        setenv("STATE_DIRECTORY", "/var/lib/bindery/a:/var/lib/other", 1);
        ck_assert_int_eq(config_load(NULL, &o, &c, NULL, NULL), 0);
        ck_assert_str_eq(c->state_dir, "/var/lib/bindery/a");
        unsetenv("CREDENTIALS_DIRECTORY");
        unsetenv("CLOUDFLARE_API_TOKEN");
        unsetenv("STATE_DIRECTORY");
}
END_TEST

START_TEST(test_unknown_key) {
        _cleanup_free_ char *e = NULL;

        e = load_errors("account_id: 0123456789abcdef0123456789abcdef\n"
                        "spec_dir: /s\n"
                        "intervall: 5m\n"
                        "  \n"
                        "frobnicate: 1\n", NULL);
        ck_assert_str_eq(e, "3:1: unknown key 'intervall'; did you mean 'interval'?\n"
                            "5:1: unknown key 'frobnicate'\n");
}
END_TEST

START_TEST(test_bad_values) {
        _cleanup_free_ char *e = NULL;

        /* every error is reported, each at its value */
        e = load_errors("account_id: [a, b]\n"
                        "spec_dir: /s\n"
                        "interval: 5 minutes\n"
                        "full_refresh: 10s\n"
                        "prune: maybe\n"
                        "concurrency: 65\n"
                        "max_deletions: -1\n"
                        "request_budget: 1000\n"
                        "listen: [127.0.0.1:9470, \"localhost:http\", \"::1:9470\"]\n"
                        "log_level: loud\n"
                        "api_url: ftp://x\n"
                        "http_token: hunter2\n"
                        "webhook_secret: { file: relative/path }\n"
                        "api_token: { credential: a, env: B }\n"
                        "spec_dir: /again\n", NULL);
        ck_assert_str_eq(e,
                "1:13: 'account_id' must be a scalar, not a list\n"
                "3:11: 'interval' must be a duration like 30s, 5m or 6h, not '5 minutes'\n"
                "4:15: 'full_refresh' must be between 1m and 30d, not '10s'\n"
                "5:8: 'prune' must be true or false, not 'maybe'\n"
                "6:14: 'concurrency' must be between 1 and 64, not 65\n"
                "7:16: 'max_deletions' must be a whole number, not '-1'\n"
                "8:17: 'request_budget' must read REQUESTS/DURATION, like 1000/5m, not '1000'\n"
                "9:26: 'listen': 'localhost:http' is not an address like 127.0.0.1:9470 or [::1]:9470\n"
                "9:44: 'listen': '::1:9470' is not an address like 127.0.0.1:9470 or [::1]:9470\n"
                "10:12: 'log_level' must be one of debug, info, notice, warning, error, not 'loud'\n"
                "11:10: 'api_url' must be an http:// or https:// URL, not 'ftp://x'\n"
                "12:13: 'http_token' must be a secret reference ({credential: NAME}, {file: PATH} or {env: VAR}); "
                        "secret values never go in the config file\n"
                "13:25: 'webhook_secret': a secret file must be an absolute path\n"
                "14:12: 'api_token' must have exactly one of credential, file or env\n"
                "15:1: duplicate key 'spec_dir'\n");
}
END_TEST

/* One credential-name rule (secrets_credential_name_is_valid, systemd's):
 * the config file refused '/' but took a control character that the spec
 * loader refused; now both refuse it, and both keep ':' and UTF-8. */
START_TEST(test_credential_name_rule) {
        _cleanup_free_ char *e = NULL;
        Config *c = NULL;
        ConfigError *errs = NULL;
        size_t n = 0;

        e = load_errors("account_id: 0123456789abcdef0123456789abcdef\n"
                        "spec_dir: /s\n"
                        "http_token: { credential: \"tok\\tx\" }\n"
                        "webhook_secret: { credential: a/b }\n", NULL);
        ck_assert_str_eq(e, "3:27: 'http_token': not a valid credential name (no '/' or control character, "
                            "not '.' or '..', at most 255 bytes)\n"
                            "4:31: 'webhook_secret': not a valid credential name (no '/' or control character, "
                            "not '.' or '..', at most 255 bytes)\n");
        ck_assert_int_eq(config_load(write_config("ok.yaml",
                                                  "account_id: 0123456789abcdef0123456789abcdef\n"
                                                  "spec_dir: /s\n"
                                                  "http_token: { credential: \"ns:t\u00f6ken\" }\n"),
                                     NULL, &c, &errs, &n), 0);
        ck_assert_ptr_nonnull(c);
        ck_assert_str_eq(c->http_token.ref, "ns:t\xc3\xb6ken");
        config_free(c);
}
END_TEST

/* account_id ends up in request paths: only 32 hex digits pass. */
START_TEST(test_account_id_validated) {
        _cleanup_free_ char *a = NULL, *b = NULL;
        Options o = { .account_id = "../../../user/tokens/verify?", .spec_dir = "/s" };

        a = load_errors("account_id: ../../../user/tokens/verify?\nspec_dir: /s\n", NULL);
        ck_assert_str_eq(a, "1:13: 'account_id' must be the 32 hexadecimal digits of a Cloudflare account id, "
                            "not '../../../user/tokens/verify?'\n");
        b = load_errors("spec_dir: /s\n", &o);
        ck_assert_ptr_nonnull(strstr(b, "--account-id must be the 32 hexadecimal digits"));
        ck_assert(config_account_id_is_valid("023e105f4ecef8ad9ca31a8372d0c353"));
        ck_assert(config_account_id_is_valid("023E105F4ECEF8AD9CA31A8372D0C353"));
        ck_assert(!config_account_id_is_valid("023e105f4ecef8ad9ca31a8372d0c35"));
        ck_assert(!config_account_id_is_valid("023e105f4ecef8ad9ca31a8372d0c353/"));
        ck_assert(!config_account_id_is_valid("023e105f4ecef8ad9ca31a8372d0c35g"));
        ck_assert(!config_account_id_is_valid(""));
}
END_TEST

/* What specs may read: the daemon's own secrets and the state directory
 * never, files only below spec_files_dir, env only from spec_env. */
START_TEST(test_spec_grant) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(spec_grant_done) SpecGrant g = {};
        _cleanup_free_ char *e = NULL;

        ck_assert_int_eq(config_load(write_config("g.yaml",
                         "account_id: 0123456789abcdef0123456789abcdef\n"
                         "spec_dir: /srv/spec\n"
                         "state_dir: /var/lib/bx\n"
                         "api_token: { env: MY_CF_TOKEN }\n"
                         "http_token: { credential: my-http-token }\n"
                         "webhook_secret: { file: /etc/bx/hook }\n"
                         "spec_files_dir: /etc/bx/spec-secrets\n"
                         "spec_env: [APP_KEY, OTHER]\n"), NULL, &c, NULL, NULL), 0);
        ck_assert_str_eq(c->spec_files_dir, "/etc/bx/spec-secrets");
        ck_assert_int_eq((int) strv_length(c->spec_env), 2);
        ck_assert_int_eq(config_spec_grant(c, &g), 0);
        ck_assert(strv_contains(g.deny_credentials, "my-http-token"));
        ck_assert(strv_contains(g.deny_credentials, "cloudflare-api-token"));
        ck_assert(strv_contains(g.deny_env, "MY_CF_TOKEN"));
        ck_assert(strv_contains(g.deny_env, "CLOUDFLARE_API_TOKEN"));
        ck_assert(strv_contains(g.deny_paths, "/etc/bx/hook"));
        ck_assert(strv_contains(g.deny_paths, "/var/lib/bx"));
        ck_assert_str_eq(g.files_dir, "/etc/bx/spec-secrets");
        ck_assert(strv_contains(g.env, "APP_KEY"));
        ck_assert(!strv_contains(g.env, "MY_CF_TOKEN"));

        e = load_errors("account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\nspec_env: [OK, \"no-dash\"]\n", NULL);
        ck_assert_str_eq(e, "3:11: 'spec_env': 'no-dash' is not an environment variable name\n");
}
END_TEST

START_TEST(test_bad_budget_and_durations) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

        a = load_errors("account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\nrequest_budget: 0/5m\n", NULL);
        ck_assert_str_eq(a, "3:17: 'request_budget': the request count must be between 1 and 100000\n");
        b = load_errors("account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\nrequest_budget: 10/0s\n", NULL);
        ck_assert_str_eq(b, "3:17: 'request_budget': the window must be between 1s and 1d\n");
        c = load_errors("account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\nrequest_budget: 10/fortnight\n", NULL);
        ck_assert_str_eq(c, "3:17: 'request_budget' must read REQUESTS/DURATION, like 1000/5m, not '10/fortnight'\n");
        d = load_errors("account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\nprune_settle: -5s\n", NULL);
        ck_assert_str_eq(d, "3:15: 'prune_settle' must be a duration like 30s, 5m or 6h, not '-5s'\n");
}
END_TEST

START_TEST(test_syntax_and_shape) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        a = load_errors("account_id: 0123456789abcdef0123456789abcdef\nspec_dir: [unclosed\n", NULL);
        ck_assert(startswith(a, "3:1: YAML syntax error: ") || startswith(a, "2:"));
        b = load_errors("- a\n- b\n", NULL);
        ck_assert_str_eq(b, "1:1: the configuration must be a mapping of keys, not a list\n");
        c = load_errors("interval: 1m\n", NULL);
        ck_assert_str_eq(c, "0:0: missing required key 'account_id' (or --account-id)\n"
                            "0:0: missing required key 'spec_dir' (or --spec-dir)\n");
}
END_TEST

START_TEST(test_bad_overrides) {
        _cleanup_free_ char *e = NULL;
        char l0[] = "nowhere";
        char *listen[] = { l0, NULL };
        Options o = { .api_url = "gopher://x", .listen = listen };

        e = load_errors("account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\n", &o);
        ck_assert_str_eq(e, "0:0: --api-url must be an http:// or https:// URL, not 'gopher://x'\n"
                            "0:0: --listen: 'nowhere' is not an address like 127.0.0.1:9470 or [::1]:9470\n");
}
END_TEST

START_TEST(test_null_values_and_empty_file) {
        _cleanup_(config_freep) Config *c = NULL, *d = NULL;
        Options o = { .account_id = "0123456789abcdef0123456789abcdef", .spec_dir = "/s" };

        /* "key:" with no value means the default */
        ck_assert_int_eq(config_load(write_config("n.yaml", "interval:\nlisten: ~\naccount_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\n"),
                                     NULL, &c, NULL, NULL), 0);
        ck_assert_uint_eq(c->interval_usec, 300 * USEC_PER_SEC);
        ck_assert_str_eq(c->listen[0], CONFIG_DEFAULT_LISTEN);
        ck_assert_int_eq(config_load(write_config("e.yaml", ""), &o, &d, NULL, NULL), 0);
}
END_TEST

START_TEST(test_missing_file) {
        Config *c = NULL;
        ConfigError *e = (ConfigError *) 1;
        size_t n = 7;

        ck_assert_int_eq(config_load("/nonexistent/binderyd.yaml", NULL, &c, &e, &n), -ENOENT);
        ck_assert_ptr_null(c);
        ck_assert_ptr_null(e);
        ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_parse_listen) {
        struct sockaddr_storage ss;
        socklen_t len;

        ck_assert_int_eq(config_parse_listen("127.0.0.1:9470", &ss, &len), 0);
        ck_assert_int_eq(ss.ss_family, AF_INET);
        ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
        ck_assert_uint_eq(ntohs(((struct sockaddr_in *) &ss)->sin_port), 9470);
        ck_assert_int_eq(config_parse_listen("[::1]:80", &ss, &len), 0);
        ck_assert_int_eq(ss.ss_family, AF_INET6);
        ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
        ck_assert_int_eq(config_parse_listen("localhost:0", &ss, &len), 0);
        ck_assert_int_eq(config_parse_listen("0.0.0.0:65535", NULL, NULL), 0);
        ck_assert_int_eq(config_parse_listen("0.0.0.0:65536", NULL, NULL), -EINVAL);
        ck_assert_int_eq(config_parse_listen("[::1]", NULL, NULL), -EINVAL);
        ck_assert_int_eq(config_parse_listen("::1:80", NULL, NULL), -EINVAL);
        ck_assert_int_eq(config_parse_listen("example.com:80", NULL, NULL), -EINVAL);
        ck_assert_int_eq(config_parse_listen("1.2.3.4:", NULL, NULL), -EINVAL);
        ck_assert_int_eq(config_parse_listen("", NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_example_config) {
        /* etc/binderyd.yaml, the example shipped with the sources, loads. */
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *p = NULL;
        const char *top = getenv("top_srcdir");
        ConfigError *e = NULL;
        size_t n = 0;

        ck_assert_int_ge(asprintf(&p, "%s/etc/binderyd.yaml", top ? top : ".."), 0);
        ck_assert_msg(config_load(p, NULL, &c, &e, &n) == 0, "%s:%u:%u: %s", p, n ? e[0].line : 0,
                      n ? e[0].column : 0, n ? e[0].message : "");
        ck_assert_str_eq(c->spec_dir, "/srv/bindery/spec");
        ck_assert_uint_eq(strv_length(c->listen), 2);
        ck_assert(c->http_token_set);
}
END_TEST

START_TEST(test_notify_and_webhook_ref) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *errs = NULL;

        ck_assert_int_eq(config_load(write_config("n.yaml",
                                                  "account_id: 0123456789abcdef0123456789abcdef\n"
                                                  "spec_dir: /srv/spec\n"
                                                  "webhook_ref: refs/heads/main\n"
                                                  "notify:\n"
                                                  "  - url: https://hooks.slack.com/services/T/B/X\n"
                                                  "    events: [failed, recovered]\n"
                                                  "  - url: http://127.0.0.1:9000/hook\n"
                                                  "    secret: { credential: notify-secret }\n"),
                                     NULL, &c, NULL, NULL),
                         0);
        ck_assert_str_eq(c->webhook_ref, "refs/heads/main");
        ck_assert_uint_eq(c->n_notify, 2);
        ck_assert_str_eq(c->notify[0].url, "https://hooks.slack.com/services/T/B/X");
        ck_assert_uint_eq(c->notify[0].events, (1U << NOTIFY_FAILED) | (1U << NOTIFY_RECOVERED));
        ck_assert(!c->notify[0].secret_set);
        ck_assert(c->notify[1].secret_set);
        ck_assert_int_eq(c->notify[1].secret.source, SECRET_SOURCE_CREDENTIAL);
        ck_assert_str_eq(c->notify[1].secret.ref, "notify-secret");
        /* No events named: every event. */
        ck_assert_uint_eq(c->notify[1].events, (1U << _NOTIFY_EVENT_MAX) - 1);

        errs = load_errors("account_id: 0123456789abcdef0123456789abcdef\n"
                           "spec_dir: /srv/spec\n"
                           "notify:\n"
                           "  - url: ftp://x\n"
                           "    events: [failed, exploded]\n"
                           "  - secret: hunter2\n"
                           "    evnts: [failed]\n"
                           "  - just a string\n",
                           NULL);
        ck_assert_ptr_nonnull(strstr(errs, "4:10: 'notify.url' must be an http:// or https:// URL\n"));
        ck_assert_ptr_nonnull(strstr(errs, "5:22: unknown notify event 'exploded'"));
        ck_assert_ptr_nonnull(strstr(errs, "6:13: 'notify.secret' must be a secret reference"));
        ck_assert_ptr_nonnull(strstr(errs, "7:5: unknown key 'evnts' in 'notify'; did you mean 'events'?\n"));
        ck_assert_ptr_nonnull(strstr(errs, "8:5: 'notify' entries must be mappings"));
        /* A secret value never appears in a message. */
        ck_assert_ptr_null(strstr(errs, "hunter2"));
}
END_TEST

/* ha: (issue 11): defaults, every key, errors naming the key, and the
 * etcd password and TLS key as daemon secrets specs may not read. */
START_TEST(test_ha) {
        _cleanup_(config_freep) Config *c = NULL, *d = NULL, *n = NULL;
        _cleanup_(spec_grant_done) SpecGrant g = {};
        _cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL;

        ck_assert_int_eq(config_load(write_config("n.yaml",
                         "account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\n"), NULL, &n, NULL, NULL), 0);
        ck_assert_ptr_null(n->ha);

        ck_assert_int_eq(config_load(write_config("d.yaml",
                         "account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\nlisten: 10.0.0.5:9470\n"
                         "ha:\n  etcd: http://10.0.0.1:2379\n"), NULL, &d, NULL, NULL), 0);
        ck_assert_ptr_nonnull(d->ha);
        ck_assert_uint_eq(strv_length(d->ha->etcd), 1);
        ck_assert_str_eq(d->ha->prefix, "/bindery/0123456789abcdef0123456789abcdef/");
        ck_assert_str_eq(d->ha->advertise_url, "http://10.0.0.5:9470");
        ck_assert_uint_eq(d->ha->lease_ttl_usec, 10 * USEC_PER_SEC);
        ck_assert(d->ha->forward);
        ck_assert_ptr_nonnull(d->ha->name);
        ck_assert_ptr_null(d->ha->user);

        ck_assert_int_eq(config_load(write_config("h.yaml",
                         "account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\n"
                         "ha:\n"
                         "  etcd: [https://10.0.0.1:2379, https://10.0.0.2:2379, https://10.0.0.3:2379]\n"
                         "  ca_file: /etc/bindery/etcd-ca.pem\n"
                         "  cert_file: tls/client.pem\n"
                         "  key_file: /etc/bindery/client.key\n"
                         "  user: bindery\n"
                         "  password: { credential: etcd-password }\n"
                         "  name: ops-1\n"
                         "  advertise_url: https://ops-1.example:9470\n"
                         "  lease_ttl: 5s\n"
                         "  prefix: /prod/bindery/\n"
                         "  forward: false\n"), NULL, &c, NULL, NULL), 0);
        ck_assert_uint_eq(strv_length(c->ha->etcd), 3);
        ck_assert_str_eq(c->ha->ca_file, "/etc/bindery/etcd-ca.pem");
        ck_assert(endswith(c->ha->cert_file, "/tls/client.pem"));
        ck_assert_str_eq(c->ha->user, "bindery");
        ck_assert(c->ha->password_set);
        ck_assert_str_eq(c->ha->password.ref, "etcd-password");
        ck_assert_str_eq(c->ha->name, "ops-1");
        ck_assert_str_eq(c->ha->advertise_url, "https://ops-1.example:9470");
        ck_assert_uint_eq(c->ha->lease_ttl_usec, 5 * USEC_PER_SEC);
        ck_assert_str_eq(c->ha->prefix, "/prod/bindery/");
        ck_assert(!c->ha->forward);
        ck_assert_int_eq(config_spec_grant(c, &g), 0);
        ck_assert(strv_contains(g.deny_credentials, "etcd-password"));
        ck_assert(strv_contains(g.deny_paths, "/etc/bindery/client.key"));

        e1 = load_errors("account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\n"
                         "ha:\n  etcd: [ftp://x, http://ok:2379, http://u:pw@h:2379]\n  lease_ttl: 1s\n  prefix: nope\n"
                         "  forwad: true\n  name: \"a b\"\n", NULL);
        ck_assert_ptr_nonnull(strstr(e1, "'ha.etcd': 'ftp://x' is not an http:// or https:// URL"));
        ck_assert_ptr_nonnull(strstr(e1, "an endpoint has user:password@ in it"));
        ck_assert_ptr_null(strstr(e1, "u:pw"));
        ck_assert_ptr_nonnull(strstr(e1, "'ha.lease_ttl' must be whole seconds between 2s and 60s"));
        ck_assert_ptr_nonnull(strstr(e1, "'ha.prefix' must start and end with '/'"));
        ck_assert_ptr_nonnull(strstr(e1, "unknown key 'forwad' in 'ha'; did you mean 'forward'?"));
        ck_assert_ptr_nonnull(strstr(e1, "'ha.name' must be"));
        e2 = load_errors("account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\n"
                         "ha:\n  user: bindery\n  ca_file: /ca.pem\n  etcd: http://x:1\n  cert_file: /c.pem\n",
                         NULL);
        ck_assert_ptr_nonnull(strstr(e2, "'ha.user' and 'ha.password' go together"));
        ck_assert_ptr_nonnull(strstr(e2, "'ha.cert_file' and 'ha.key_file' go together"));
        ck_assert_ptr_nonnull(strstr(e2, "apply to https:// endpoints"));
        e3 = load_errors("account_id: 0123456789abcdef0123456789abcdef\nspec_dir: /s\nha:\n  name: x\n", NULL);
        ck_assert_ptr_nonnull(strstr(e3, "'ha' needs 'etcd'"));
}
END_TEST

static Suite *config_suite(void) {
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_full_file);
        tcase_add_test(tc, test_overrides);
        tcase_add_test(tc, test_api_token_default);
        tcase_add_test(tc, test_unknown_key);
        tcase_add_test(tc, test_bad_values);
        tcase_add_test(tc, test_bad_budget_and_durations);
        tcase_add_test(tc, test_syntax_and_shape);
        tcase_add_test(tc, test_bad_overrides);
        tcase_add_test(tc, test_account_id_validated);
        tcase_add_test(tc, test_credential_name_rule);
        tcase_add_test(tc, test_spec_grant);
        tcase_add_test(tc, test_null_values_and_empty_file);
        tcase_add_test(tc, test_missing_file);
        tcase_add_test(tc, test_parse_listen);
        tcase_add_test(tc, test_example_config);
        tcase_add_test(tc, test_notify_and_webhook_ref);
        tcase_add_test(tc, test_ha);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(config_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
