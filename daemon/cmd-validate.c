/* cmd-validate.c: `binderyd validate` and `binderyd types`
 * (binderyd(8), bindery-spec(5)). Logging lives here; the loader and the
 * emitter are pure. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* validate -c FILE checks binderyd.yaml itself, like nginx -t: every
 * error as FILE:LINE:COLUMN: message. Returns 0 with *ret (spec_dir
 * known), or -EINVAL after printing the errors (as JSON into *ret_json
 * with --json). */
static int check_config(const Options *o, Config **ret, json_object **ret_json) {
        ConfigError *errors = NULL;
        size_t n_errors = 0;
        json_object *j = NULL, *arr = NULL;
        int r;

        r = config_load(o->config_path, o, ret, &errors, &n_errors);
        if (o->json) {
                j = json_object_new_object();
                arr = json_object_new_array();
                if (!j || !arr) {
                        json_object_put(j);
                        json_object_put(arr);
                        config_errors_free(errors, n_errors);
                        return -ENOMEM;
                }
                json_object_object_add(j, "path", json_object_new_string(o->config_path));
                json_object_object_add(j, "valid", json_object_new_boolean(r >= 0));
                json_object_object_add(j, "errors", arr);
        }
        for (size_t i = 0; i < n_errors; i++) {
                if (arr) {
                        json_object *x = json_object_new_object();

                        if (!x)
                                continue;
                        json_object_object_add(x, "file", json_object_new_string(o->config_path));
                        json_object_object_add(x, "line", json_object_new_int((int) errors[i].line));
                        json_object_object_add(x, "column", json_object_new_int((int) errors[i].column));
                        json_object_object_add(x, "message", json_object_new_string(errors[i].message));
                        json_object_array_add(arr, x);
                } else if (errors[i].line > 0)
                        printf("%s:%u:%u: %s\n", o->config_path, errors[i].line, errors[i].column, errors[i].message);
                else
                        printf("%s: %s\n", o->config_path, errors[i].message);
        }
        if (r < 0 && n_errors == 0) {
                if (arr) {
                        json_object *x = json_object_new_object();

                        if (x) {
                                json_object_object_add(x, "file", json_object_new_string(o->config_path));
                                json_object_object_add(x, "message", json_object_new_string(strerror(-r)));
                                json_object_array_add(arr, x);
                        }
                } else
                        printf("%s: cannot be read: %s\n", o->config_path, strerror(-r));
        }
        config_errors_free(errors, n_errors);
        if (r >= 0 && !o->json)
                printf("%s: configuration OK (spec_dir %s)\n", o->config_path, (*ret)->spec_dir);
        if (ret_json)
                *ret_json = j;
        else
                json_object_put(j);
        return r < 0 ? -EINVAL : 0;
}

static int print_json(const Options *o, const Generation *g, const SpecErrors *e, json_object *config) {
        json_object *j = json_object_new_object(), *errs = spec_errors_to_json(e), *files;

        if (config && j)
                json_object_object_add(j, "config", json_object_get(config));
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
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_free_ char *dir = NULL;
        json_object *cj = NULL;
        _cleanup_(spec_grant_done) SpecGrant grant = {};
        bool have_grant = false;
        SpecErrors e = {};
        size_t n_resources;
        int r;

        /* -c FILE (or the default file without --spec-dir): the
         * configuration first, then the spec directory it names. */
        if (o->config_given || (!o->spec_dir && access(o->config_path, F_OK) == 0)) {
                r = check_config(o, &config, &cj);
                if (r == -ENOMEM)
                        return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILED;
                if (r < 0) {
                        if (cj) {
                                printf("%s\n", json_object_to_json_string_ext(cj, JSON_C_TO_STRING_PRETTY |
                                                                                     JSON_C_TO_STRING_SPACED |
                                                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
                                json_object_put(cj);
                        }
                        return EXIT_FAILED;
                }
                dir = strdup(o->spec_dir ?: config->spec_dir);
                if (!dir || config_spec_grant(config, &grant) < 0) {
                        json_object_put(cj);
                        return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILED;
                }
                have_grant = true;
        } else
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
                if (print_json(o, g, &e, cj) < 0)
                        r = -ENOMEM;
        } else if (g) {
                n_resources = g->n_kv_namespaces + g->n_r2_buckets + g->n_d1_databases + g->n_queues +
                              g->n_secrets_stores + g->n_secrets_store_secrets;
                /* The whole digest: CI passes it to POST /v1/reconcile?expect=. */
                printf("%s: %zu files, %zu workers, %zu resources: OK\ndigest %s\n", dir,
                       strv_length(g->files), g->n_workers, n_resources, g->digest);
        } else
                print_errors(&e);
        spec_errors_done(&e);
        json_object_put(cj);
        return r == 0 && g ? EXIT_OK : EXIT_FAILED;
}

/* The path of "to" as seen from directory "from" (both absolute and
 * canonical): "./x/y.js" or "../x/y.js". Caller frees. */
static char *relative_path(const char *from, const char *to) {
        size_t common = 0, i;
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        /* The longest common prefix ending at a '/' (or the whole of from). */
        for (i = 0; from[i] && from[i] == to[i]; i++)
                if (from[i] == '/')
                        common = i;
        if (!from[i] && to[i] == '/')
                common = i;
        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        if (from[common] == 0 || (from[common] == '/' && from[common + 1] == 0))
                fputs("./", f);
        else
                for (const char *p = from + common; *p; p++)
                        if (*p == '/')
                                fputs("../", f);
        fputs(to + common + 1, f);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

typedef struct Modules {
        TypesModule *v;
        size_t n;
        char **paths;               /* owned import paths */
} Modules;

static void modules_done(Modules *m) {
        for (size_t i = 0; i < m->n; i++)
                strv_free(m->v[i].classes);
        free(m->v);
        strv_free(m->paths);
}

/* Reads every worker's main module and what it exports. A module that
 * cannot be read only costs its precise types (said in the output). */
static int modules_read(const Generation *g, const char *out_dir, Modules *m) {
        _cleanup_free_ char *dir = out_dir ? realpath(out_dir, NULL) : NULL;

        if (out_dir && !dir)
                return log_error_errno(errno, "types: cannot resolve '%s': %m", out_dir);
        m->v = calloc(g->n_workers + 1, sizeof(TypesModule));
        if (!m->v)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_workers; i++) {
                const Worker *w = &g->workers[i];
                _cleanup_free_ char *text = NULL, *real = NULL, *imp = NULL;
                TypesModule *t = &m->v[m->n];
                size_t size = 0;
                int r;

                if (w->n_modules == 0 || !w->modules[0].path)
                        continue;
                r = read_full_file(w->modules[0].path, SPEC_MAX_MODULE_SIZE, &text, &size);
                if (r < 0) {
                        log_warning_errno(r, "types: cannot read '%s' (worker '%s'): %m", w->modules[0].path, w->name);
                        continue;
                }
                real = realpath(w->modules[0].path, NULL);
                if (!real)
                        continue;
                imp = dir ? relative_path(dir, real) : strdup(real);
                if (!imp || strv_extend(&m->paths, imp) < 0)
                        return -ENOMEM;
                r = types_scan_exports(text, size, &t->classes);
                if (r < 0)
                        return r;
                t->worker = w->name;
                t->import_path = m->paths[strv_length(m->paths) - 1];
                m->n++;
        }
        return 0;
}

/* The spec for types: every error on stderr, then why it failed. */
static int types_load_spec(const char *dir, const SpecGrant *grant, Generation **ret) {
        SpecErrors e = {};
        int r;

        r = spec_load_granted(dir, grant, ret, &e);
        if (r < 0) {
                for (size_t i = 0; i < e.n; i++) {
                        _cleanup_free_ char *s = spec_error_to_string(&e.errors[i]);

                        fprintf(stderr, "%s\n", s ?: e.errors[i].message);
                }
                if (r == -EINVAL)
                        log_error("types: '%s' is not a valid spec directory.", dir);
                else
                        log_error_errno(r, "Failed to load '%s': %m", dir);
        }
        spec_errors_done(&e);
        return r;
}

/* --worker names a Worker of the spec that is not external. */
static bool types_worker_ok(const Options *o, const Generation *g, const char *dir) {
        const Worker *w;

        if (!o->worker)
                return true;
        w = generation_find_worker(g, o->worker);
        if (!w) {
                log_error("types: no Worker named '%s' in '%s'.", o->worker, dir);
                return false;
        }
        if (w->policy.external) {
                log_error("types: Worker '%s' is external; it has no bindings here.", o->worker);
                return false;
        }
        return true;
}

/* One worker's Env: on stdout, or into --output as NAME.d.ts. */
static int types_emit(const Options *o, const Generation *g, const Worker *w, const Modules *mods) {
        _cleanup_free_ char *text = NULL, *path = NULL, *file = NULL;
        int r;

        r = types_emit_env_with(g, w, mods->v, mods->n, &text);
        if (r < 0)
                return log_error_errno(r, "Failed to generate types: %m");
        if (!o->output) {
                fputs(text, stdout);
                return 0;
        }
        if (asprintf(&file, "%s.d.ts", w->name) < 0) {
                file = NULL;
                return log_error_errno(ENOMEM, "Out of memory.");
        }
        path = path_join(o->output, file);
        if (!path)
                return log_error_errno(ENOMEM, "Out of memory.");
        r = write_file_atomic(path, text, strlen(text), 0644);
        if (r < 0)
                return log_error_errno(r, "types: cannot write '%s': %m", path);
        return 1;
}

int cmd_types(const Options *o) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_free_ char *dir = NULL;
        _cleanup_(spec_grant_done) SpecGrant grant = {};
        bool have_grant;
        Modules mods = {};
        unsigned written = 0;
        int r, ret = EXIT_OK;

        if (!o->worker == !o->all) {
                log_error("types: give --worker NAME or --all.");
                return EXIT_USAGE;
        }
        if (o->all && !o->output) {
                log_error("types: --all needs --output DIR (one file per worker).");
                return EXIT_USAGE;
        }
        dir = find_spec_dir(o, "types", &grant, &have_grant);
        if (!dir)
                return EXIT_USAGE;
        if (types_load_spec(dir, have_grant ? &grant : NULL, &g) < 0 || !types_worker_ok(o, g, dir))
                return EXIT_FAILED;
        if (o->output && mkdir(o->output, 0755) < 0 && errno != EEXIST)
                return log_error_errno(errno, "types: cannot create '%s': %m", o->output), EXIT_FAILED;
        r = modules_read(g, o->output, &mods);
        if (r < 0) {
                modules_done(&mods);
                return r == -ENOMEM ? (log_error_errno(r, "Out of memory."), EXIT_FAILED) : EXIT_FAILED;
        }
        for (size_t i = 0; i < g->n_workers; i++) {
                const Worker *w = &g->workers[i];

                if (o->worker ? !streq(w->name, o->worker) : w->policy.external)
                        continue;
                r = types_emit(o, g, w, &mods);
                if (r < 0) {
                        ret = EXIT_FAILED;
                        break;
                }
                written += r;
        }
        if (o->output && ret == EXIT_OK)
                log_info("types: %u file%s written to %s.", written, written == 1 ? "" : "s", o->output);
        modules_done(&mods);
        return ret;
}
