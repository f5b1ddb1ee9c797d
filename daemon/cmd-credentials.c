/* cmd-credentials.c: `binderyd credentials [-c FILE]` (binderyd(8)).
 *
 * Lists every secret reference the configuration and the spec make —
 * credentials, files and environment variables, with where each is used —
 * and prints the systemd drop-in (LoadCredential=) that gives the daemon
 * the credentials its unit does not load already. Values are never read.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cmd-config.h"
#include "commands.h"
#include "config.h"
#include "log.h"
#include "spec.h"
#include "util.h"

/* Where the shipped unit (systemd/binderyd.service.in) takes its files. */
#define CREDENTIALS_SOURCE_DIR "/etc/bindery"

/* The credentials binderyd.service loads already. */
static const char *const unit_credentials[] = { "cloudflare-api-token", "http-token" };

typedef struct Use {
        SecretSource source;
        char *ref;
        char **where;               /* "api_token", "Worker/api secret API_KEY (workers/api.yaml:9)" */
} Use;

typedef struct Uses {
        Use *v;
        size_t n;
} Uses;

static void uses_done(Uses *u) {
        for (size_t i = 0; i < u->n; i++) {
                free(u->v[i].ref);
                strv_free(u->v[i].where);
        }
        free(u->v);
}

static int uses_add(Uses *u, const SecretRef *s, const char *where) {
        Use *n;

        if (!s->ref)
                return 0;
        for (size_t i = 0; i < u->n; i++)
                if (u->v[i].source == s->source && streq(u->v[i].ref, s->ref))
                        return strv_extend(&u->v[i].where, where);
        n = realloc(u->v, sizeof(Use) * (u->n + 1));
        if (!n)
                return -ENOMEM;
        u->v = n;
        n = &u->v[u->n];
        *n = (Use) { .source = s->source, .ref = strdup(s->ref) };
        if (!n->ref)
                return -ENOMEM;
        u->n++;
        return strv_extend(&n->where, where);
}

static bool in_unit(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(unit_credentials); i++)
                if (streq(unit_credentials[i], name))
                        return true;
        return false;
}

static int collect_config(const Config *c, Uses *u) {
        SecretRef def = { SECRET_SOURCE_CREDENTIAL, (char *) "cloudflare-api-token" };
        int r = 0;

        /* Without api_token the unit's credential is what the daemon reads. */
        r = uses_add(u, c->api_token_set ? &c->api_token : &def,
                     c->api_token_set ? "api_token" : "api_token (default)");
        if (r >= 0 && c->http_token_set)
                r = uses_add(u, &c->http_token, "http_token");
        if (r >= 0 && c->webhook_secret_set)
                r = uses_add(u, &c->webhook_secret, "webhook_secret");
        for (size_t i = 0; r >= 0 && i < c->n_notify; i++) {
                _cleanup_free_ char *w = NULL;

                if (!c->notify[i].secret_set)
                        continue;
                if (asprintf(&w, "notify secret for %s (line %u)", c->notify[i].url, c->notify[i].line) < 0)
                        return -ENOMEM;
                r = uses_add(u, &c->notify[i].secret, w);
        }
        return r;
}

static int collect_spec(const Generation *g, Uses *u) {
        int r = 0;

        for (size_t i = 0; r >= 0 && i < g->n_workers; i++) {
                const Worker *w = &g->workers[i];

                for (size_t j = 0; r >= 0 && j < w->n_bindings; j++) {
                        const Binding *b = &w->bindings[j];
                        _cleanup_free_ char *where = NULL;

                        if (b->kind != BINDING_SECRET)
                                continue;
                        if (asprintf(&where, "spec: Worker/%s secret %s (%s:%u)", w->name, b->name,
                                     strna(b->loc.file), b->loc.line) < 0)
                                return -ENOMEM;
                        r = uses_add(u, &b->secret, where);
                }
        }
        for (size_t i = 0; r >= 0 && i < g->n_secrets_store_secrets; i++) {
                const SecretsStoreSecret *s = &g->secrets_store_secrets[i];
                _cleanup_free_ char *where = NULL;

                if (asprintf(&where, "spec: SecretsStoreSecret/%s (%s:%u)", s->name, strna(s->loc.file),
                             s->loc.line) < 0)
                        return -ENOMEM;
                r = uses_add(u, &s->value, where);
        }
        return r;
}

static int print_json(const Uses *u, const char *dropin, const char *unit) {
        json_object *o = json_object_new_object(), *arr = json_object_new_array();

        if (!o || !arr) {
                json_object_put(o);
                json_object_put(arr);
                return -ENOMEM;
        }
        json_object_object_add(o, "references", arr);
        for (size_t i = 0; i < u->n; i++) {
                json_object *x = json_object_new_object(), *w = json_object_new_array();

                if (!x || !w) {
                        json_object_put(x);
                        json_object_put(w);
                        json_object_put(o);
                        return -ENOMEM;
                }
                json_object_object_add(x, "source", json_object_new_string(secret_source_to_string(u->v[i].source)));
                json_object_object_add(x, "name", json_object_new_string(u->v[i].ref));
                json_object_object_add(x, "used_by", w);
                for (size_t j = 0; u->v[i].where && u->v[i].where[j]; j++)
                        json_object_array_add(w, json_object_new_string(u->v[i].where[j]));
                if (u->v[i].source == SECRET_SOURCE_CREDENTIAL)
                        json_object_object_add(x, "in_unit", json_object_new_boolean(in_unit(u->v[i].ref)));
                json_object_array_add(arr, x);
        }
        json_object_object_add(o, "unit", json_object_new_string(unit));
        json_object_object_add(o, "dropin", json_object_new_string(dropin));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        return 0;
}

/* Which unit reads this config: /etc/bindery/X.yaml (X not "binderyd")
 * is binderyd@X.service, whose credentials live in /etc/bindery/X/
 * (systemd/binderyd@.service.in); anything else binderyd.service. */
static void unit_for(const char *config_path, char **ret_unit, char **ret_dir) {
        const char *p = config_path ? startswith(config_path, CREDENTIALS_SOURCE_DIR "/") ? config_path +
                                                  strlen(CREDENTIALS_SOURCE_DIR "/") : NULL : NULL;
        size_t n = p ? strlen(p) : 0;

        *ret_unit = *ret_dir = NULL;
        if (p && n > 5 && streq(p + n - 5, ".yaml") && !strchr(p, '/') && !streq(p, "binderyd.yaml")) {
                _cleanup_free_ char *inst = strndup(p, n - 5);

                if (inst && asprintf(ret_unit, "binderyd@%s.service", inst) >= 0 &&
                    asprintf(ret_dir, CREDENTIALS_SOURCE_DIR "/%s", inst) >= 0)
                        return;
                *ret_unit = mfree(*ret_unit);
        }
        *ret_unit = strdup("binderyd.service");
        *ret_dir = strdup(CREDENTIALS_SOURCE_DIR);
}

/* The spec's references into u. A spec that does not load is said (its
 * errors logged) and leaves *ret_ok false; the config's references still
 * count. */
static int collect_spec_dir(const Config *c, Uses *u, bool *ret_ok) {
        _cleanup_(generation_freep) Generation *g = NULL;
        SpecErrors e = {};
        int r;

        *ret_ok = true;
        if (isempty(c->spec_dir))
                return 0;
        r = spec_load(c->spec_dir, &g, &e);
        if (r < 0) {
                *ret_ok = false;
                for (size_t i = 0; i < e.n && i < 20; i++) {
                        _cleanup_free_ char *s = spec_error_to_string(&e.errors[i]);

                        log_error("%s", s ?: e.errors[i].message);
                }
                log_error("credentials: the spec directory '%s' did not load; its references are not listed.",
                          c->spec_dir);
                spec_errors_done(&e);
                return 0;
        }
        spec_errors_done(&e);
        return collect_spec(g, u);
}

/* The drop-in: a LoadCredential= line for each credential the unit does
 * not load already (*ret_any says whether there is one). */
static int make_dropin(const Uses *u, const char *srcdir, char **ret, bool *ret_any) {
        _cleanup_free_ char *dropin = NULL;
        size_t size = 0;
        bool any = false;
        FILE *f;

        f = open_memstream(&dropin, &size);
        if (!f)
                return -ENOMEM;
        fputs("[Service]\n", f);
        for (size_t i = 0; i < u->n; i++)
                if (u->v[i].source == SECRET_SOURCE_CREDENTIAL && !in_unit(u->v[i].ref)) {
                        fprintf(f, "LoadCredential=%s:%s/%s\n", u->v[i].ref, srcdir, u->v[i].ref);
                        any = true;
                }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(dropin);
        *ret_any = any;
        return 0;
}

/* The references as comments, where each is used and who provides it,
 * the steps, then the drop-in. */
static void print_text(const Config *c, const Uses *u, bool spec_ok, const char *unit, const char *srcdir,
                       const char *dropin, bool any) {
        printf("# Secret references of %s%s%s:\n", c->path ?: "(flags)", spec_ok ? " and " : "",
               spec_ok ? strna(c->spec_dir) : "");
        for (size_t i = 0; i < u->n; i++) {
                const Use *x = &u->v[i];

                printf("#   %-10s %-28s ", secret_source_to_string(x->source), x->ref);
                for (size_t j = 0; x->where && x->where[j]; j++)
                        printf("%s%s", j ? "; " : "", x->where[j]);
                if (x->source == SECRET_SOURCE_CREDENTIAL && in_unit(x->ref))
                        printf(" [%s loads it]", unit);
                else if (x->source == SECRET_SOURCE_FILE)
                        printf(" [the service user must be able to read it; DynamicUser= cannot read root-only "
                               "files: prefer a credential]");
                else if (x->source == SECRET_SOURCE_ENV)
                        printf(" [set with Environment= or EnvironmentFile=]");
                putchar('\n');
        }
        printf("#\n"
               "# Put each value in %s/NAME (owner root, mode 0600; systemd reads it\n"
               "# before dropping privileges), then run\n"
               "#   systemctl edit %s\n"
               "# paste the lines below, and run systemctl restart %s.\n",
               srcdir, unit, unit);
        if (!any)
                printf("# Nothing to add: %s loads every credential named here.\n", unit);
        fputs(dropin, stdout);
}

int cmd_credentials(const Options *o) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *dropin = NULL, *unit = NULL, *srcdir = NULL;
        _cleanup_(uses_done) Uses u = {};
        bool spec_ok = true, any = false;
        int r;

        r = cmd_load_config(o, &c);
        if (r < 0)
                return EXIT_FAILED;
        unit_for(c->path, &unit, &srcdir);
        if (!unit || !srcdir)
                return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILED;
        r = collect_config(c, &u);
        if (r >= 0)
                r = collect_spec_dir(c, &u, &spec_ok);
        if (r >= 0)
                r = make_dropin(&u, srcdir, &dropin, &any);
        if (r >= 0 && o->json)
                r = print_json(&u, dropin, unit);
        if (r < 0)
                return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILED;
        if (!o->json)
                print_text(c, &u, spec_ok, unit, srcdir, dropin, any);
        return spec_ok ? EXIT_OK : EXIT_FAILED;
}
