/* cmd-validate.c: `binderyd validate` and `binderyd types`
 * (binderyd(8), bindery-spec(5)). Logging lives here; the loader and the
 * emitter are pure. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "commands.h"
#include "cmd-config.h"
#include "config.h"
#include "log.h"
#include "spec.h"
#include "types.h"
#include "util.h"

/* The spec directory: --spec-dir, else spec_dir of the configuration
 * (--config, or the default file when it exists). Returns a string the
 * caller frees, or NULL after logging why there is none. When a
 * configuration was read (always with --config), *ret_grant is what it
 * grants specs (bindery-spec(5)) and *ret_have_grant is true; without one,
 * secret references are checked for form only. */
static char *find_spec_dir(const Options *o, const char *cmd, SpecGrant *ret_grant, bool *ret_have_grant) {
        _cleanup_(config_freep) Config *c = NULL;
        ConfigError *errors = NULL;
        size_t n_errors = 0;
        char *d;
        int r;

        *ret_have_grant = false;
        if (o->spec_dir && !o->config_given)
                return strdup(o->spec_dir);
        if (!o->config_given && access(o->config_path, F_OK) < 0) {
                log_error("%s: --spec-dir DIR is required (no %s to take spec_dir from).", cmd, o->config_path);
                return NULL;
        }
        r = config_load(o->config_path, o, &c, &errors, &n_errors);
        if (r < 0 || !c || isempty(c->spec_dir)) {
                config_log_errors(o->config_path, r, errors, n_errors);
                config_errors_free(errors, n_errors);
                log_error("%s: --spec-dir DIR is required (cannot take spec_dir from %s).", cmd, o->config_path);
                return NULL;
        }
        if (config_spec_grant(c, ret_grant) < 0) {
                log_error("Out of memory.");
                return NULL;
        }
        *ret_have_grant = true;
        d = strdup(o->spec_dir ?: c->spec_dir);
        if (!d)
                log_error("Out of memory.");
        return d;
}

static void print_errors(const SpecErrors *e) {
        for (size_t i = 0; i < e->n; i++) {
                _cleanup_free_ char *s = spec_error_to_string(&e->errors[i]);

                printf("%s\n", s ?: e->errors[i].message);
        }
        if (e->n_dropped > 0)
                printf("... and %zu more errors\n", e->n_dropped);
}

static int print_json(const Options *o, const Generation *g, const SpecErrors *e) {
        json_object *j = json_object_new_object(), *errs = spec_errors_to_json(e), *files;

        if (!j || !errs)
                goto oom;
        files = json_object_new_int64((int64_t) e->n_files);
        if (json_object_object_add(j, "valid", json_object_new_boolean(g != NULL)) < 0 ||
            json_object_object_add(j, "digest", g ? json_object_new_string(g->digest) : NULL) < 0 ||
            json_object_object_add(j, "files", files) < 0 ||
            json_object_object_add(j, "errors", errs) < 0)
                goto oom;
        errs = NULL;
        if (e->n_dropped > 0 &&
            json_object_object_add(j, "errors_dropped", json_object_new_int64((int64_t) e->n_dropped)) < 0)
                goto oom;
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
        return 0;
oom:
        json_object_put(errs);
        json_object_put(j);
        return log_error_errno(ENOMEM, "Out of memory.");
}

int cmd_validate(const Options *o) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_free_ char *dir = NULL;
        _cleanup_(spec_grant_done) SpecGrant grant = {};
        bool have_grant;
        SpecErrors e = {};
        size_t n_resources;
        int r;

        dir = find_spec_dir(o, "validate", &grant, &have_grant);
        if (!dir)
                return EXIT_USAGE;
        r = spec_load_granted(dir, have_grant ? &grant : NULL, &g, &e);
        if (r < 0 && r != -EINVAL && e.n == 0) {
                log_error_errno(r, "Failed to load '%s': %m", dir);
                spec_errors_done(&e);
                return EXIT_FAILED;
        }
        if (o->json) {
                if (print_json(o, g, &e) < 0)
                        r = -ENOMEM;
        } else if (g) {
                n_resources = g->n_kv_namespaces + g->n_r2_buckets + g->n_d1_databases + g->n_queues +
                              g->n_secrets_stores + g->n_secrets_store_secrets;
                printf("%s: %zu files, %zu workers, %zu resources, digest %.8s: OK\n", dir,
                       strv_length(g->files), g->n_workers, n_resources, g->digest);
        } else
                print_errors(&e);
        spec_errors_done(&e);
        return r == 0 && g ? EXIT_OK : EXIT_FAILED;
}

int cmd_types(const Options *o) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_free_ char *text = NULL, *dir = NULL;
        _cleanup_(spec_grant_done) SpecGrant grant = {};
        bool have_grant;
        const Worker *w;
        SpecErrors e = {};
        int r;

        if (!o->worker) {
                log_error("types: --worker NAME is required.");
                return EXIT_USAGE;
        }
        dir = find_spec_dir(o, "types", &grant, &have_grant);
        if (!dir)
                return EXIT_USAGE;
        r = spec_load_granted(dir, have_grant ? &grant : NULL, &g, &e);
        if (r < 0) {
                for (size_t i = 0; i < e.n; i++) {
                        _cleanup_free_ char *s = spec_error_to_string(&e.errors[i]);

                        fprintf(stderr, "%s\n", s ?: e.errors[i].message);
                }
                spec_errors_done(&e);
                if (r == -EINVAL)
                        log_error("types: '%s' is not a valid spec directory.", dir);
                else
                        log_error_errno(r, "Failed to load '%s': %m", dir);
                return EXIT_FAILED;
        }
        w = generation_find_worker(g, o->worker);
        if (!w) {
                log_error("types: no Worker named '%s' in '%s'.", o->worker, dir);
                return EXIT_FAILED;
        }
        if (w->policy.external) {
                log_error("types: Worker '%s' is external; it has no bindings here.", o->worker);
                return EXIT_FAILED;
        }
        r = types_emit_env(g, w, &text);
        if (r < 0)
                return log_error_errno(r, "Failed to generate types: %m"), EXIT_FAILED;
        fputs(text, stdout);
        return EXIT_OK;
}
