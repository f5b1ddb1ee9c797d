/* cmd-validate.c: `binderyd validate` and `binderyd types`
 * (binderyd(8), bindery-spec(5)). Logging lives here; the loader and the
 * emitter are pure. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "commands.h"
#include "log.h"
#include "spec.h"
#include "types.h"
#include "util.h"

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
        SpecErrors e = {};
        size_t n_resources;
        int r;

        if (!o->spec_dir) {
                log_error("validate: --spec-dir DIR is required.");
                return EXIT_USAGE;
        }
        r = spec_load(o->spec_dir, &g, &e);
        if (r < 0 && r != -EINVAL && e.n == 0) {
                log_error_errno(r, "Failed to load '%s': %m", o->spec_dir);
                spec_errors_done(&e);
                return EXIT_FAILED;
        }
        if (o->json) {
                if (print_json(o, g, &e) < 0)
                        r = -ENOMEM;
        } else if (g) {
                n_resources = g->n_kv_namespaces + g->n_r2_buckets + g->n_d1_databases + g->n_queues +
                              g->n_secrets_stores + g->n_secrets_store_secrets;
                printf("%s: %zu files, %zu workers, %zu resources, digest %.8s: OK\n", o->spec_dir,
                       strv_length(g->files), g->n_workers, n_resources, g->digest);
        } else
                print_errors(&e);
        spec_errors_done(&e);
        return r == 0 && g ? EXIT_OK : EXIT_FAILED;
}

int cmd_types(const Options *o) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_free_ char *text = NULL;
        const Worker *w;
        SpecErrors e = {};
        int r;

        if (!o->spec_dir || !o->worker) {
                log_error("types: --spec-dir DIR and --worker NAME are required.");
                return EXIT_USAGE;
        }
        r = spec_load(o->spec_dir, &g, &e);
        if (r < 0) {
                for (size_t i = 0; i < e.n; i++) {
                        _cleanup_free_ char *s = spec_error_to_string(&e.errors[i]);

                        fprintf(stderr, "%s\n", s ?: e.errors[i].message);
                }
                spec_errors_done(&e);
                if (r == -EINVAL)
                        log_error("types: '%s' is not a valid spec directory.", o->spec_dir);
                else
                        log_error_errno(r, "Failed to load '%s': %m", o->spec_dir);
                return EXIT_FAILED;
        }
        w = generation_find_worker(g, o->worker);
        if (!w) {
                log_error("types: no Worker named '%s' in '%s'.", o->worker, o->spec_dir);
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
