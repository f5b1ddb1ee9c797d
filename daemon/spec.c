/* spec.c: the spec directory → documents → model (bindery-spec(5)).
 *
 * This file parses each YAML file (spec-yaml.c) and turns each document
 * into model structs, checking the form of every field where it stands.
 * The directory walk and file reads are in spec-files.c; single-value rules
 * in spec-rules.c; binding kinds in binding-kinds.c. Rules that need the
 * whole generation (references, duplicates, Durable Object histories) and
 * the canonical form live in spec-validate.c.
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/linkhash.h>

#include "spec-grammar.h"
#include "binding-kinds.h"
#include "secrets.h"
#include "spec-internal.h"
#include "util.h"

const SpecLimits spec_limits_default = {
        .max_files = SPEC_MAX_FILES,
        .max_file_size = SPEC_MAX_FILE_SIZE,
        .max_module_size = SPEC_MAX_MODULE_SIZE,
        .max_depth = SPEC_MAX_DEPTH,
        .max_documents = SPEC_MAX_DOCUMENTS,
        .max_dir_depth = SPEC_MAX_DIR_DEPTH,
        .max_modules = SPEC_MAX_MODULES,
        .max_errors = SPEC_MAX_ERRORS,
        .max_total_yaml = SPEC_MAX_TOTAL_YAML,
        .max_total_modules = SPEC_MAX_TOTAL_MODULES,
};

#define node_error(c, n, ...) spec_errorf((c), (c)->file, (n)->line, (n)->column, __VA_ARGS__)

static Location node_loc(const SpecCtx *c, const SpecNode *n) {
        return (Location) { .file = c->file, .line = n->line, .column = n->column };
}

static char *sdup(SpecCtx *c, const char *s) {
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                c->oom = true;
        return d;
}

/* spec_suggest() within the load's budget for hints: past it, no hint. */
static const char *ctx_suggest(SpecCtx *c, const char *s, const char *const *names) {
        if (c->hint_work >= SPEC_MAX_HINT_WORK)
                return NULL;
        for (const char *const *n = names; *n; n++)
                c->hint_work++;
        return spec_suggest(s, names);
}

/* ---- fields of a mapping ---- */

#define MAX_FIELDS 32

typedef struct Fields {
        const char *const *names;   /* NULL-terminated */
        const SpecNode *key[MAX_FIELDS];
        const SpecNode *val[MAX_FIELDS];
        bool suggested[MAX_FIELDS]; /* an unknown key looked like this one */
        size_t n_unknown;
        const SpecNode *map;
} Fields;

/* Fills f from map; reports keys not in names (with a suggestion). */
static void fields_parse(SpecCtx *c, const SpecNode *map, const char *const *names, Fields *f) {
        *f = (Fields) { .names = names, .map = map };
        for (size_t i = 0; i < map->n_items; i++) {
                const SpecNode *k = map->items[2 * i], *v = map->items[2 * i + 1];
                const char *hint;
                size_t j;

                for (j = 0; names[j]; j++)
                        if (streq(names[j], k->value))
                                break;
                if (names[j]) {
                        f->key[j] = k;
                        f->val[j] = v;
                        continue;
                }
                f->n_unknown++;
                hint = ctx_suggest(c, k->value, names);
                if (hint) {
                        for (j = 0; names[j]; j++)
                                if (names[j] == hint)
                                        f->suggested[j] = true;
                        node_error(c, k, "unknown key '%s' (did you mean '%s'?)", k->value, hint);
                } else
                        node_error(c, k, "unknown key '%s'", k->value);
        }
}

/* A missing key is not reported again when a misspelt key already was. */
static bool field_required(SpecCtx *c, const Fields *f, size_t i) {
        if (f->val[i])
                return true;
        if (f->suggested[i])
                return false;
        node_error(c, f->map, "missing required key '%s'", f->names[i]);
        return false;
}

static bool need_mapping(SpecCtx *c, const char *what, const SpecNode *v) {
        if (v->type == SPEC_NODE_MAPPING)
                return true;
        node_error(c, v, "'%s' must be a mapping, not %s", what, spec_node_describe(v));
        return false;
}

static bool need_item_mapping(SpecCtx *c, const char *list, const SpecNode *v) {
        if (v->type == SPEC_NODE_MAPPING)
                return true;
        node_error(c, v, "items of '%s' must be mappings, not %s", list, spec_node_describe(v));
        return false;
}

/* A non-null scalar, as text. */
static bool get_str(SpecCtx *c, const char *what, const SpecNode *v, char **dest) {
        if (!v)
                return false;
        if (v->type != SPEC_NODE_SCALAR || spec_node_is_null(v)) {
                node_error(c, v, "'%s' must be a string, not %s", what, spec_node_describe(v));
                return false;
        }
        if (v->length == 0) {
                node_error(c, v, "'%s' must not be empty", what);
                return false;
        }
        free(*dest);
        *dest = sdup(c, v->value);
        return *dest != NULL;
}

static bool get_bool(SpecCtx *c, const char *what, const SpecNode *v, bool *dest) {
        int b;

        if (!v)
                return false;
        b = spec_node_bool(v);
        if (b < 0) {
                node_error(c, v, "'%s' must be true or false, not %s", what, spec_node_describe(v));
                return false;
        }
        *dest = b;
        return true;
}

static bool get_int(SpecCtx *c, const char *what, const SpecNode *v, int64_t min, int64_t max, int64_t *dest) {
        int64_t x;

        if (!v)
                return false;
        if (spec_node_int(v, &x) < 0) {
                node_error(c, v, "'%s' must be an integer, not %s", what, spec_node_describe(v));
                return false;
        }
        if (x < min || x > max) {
                node_error(c, v, "'%s' must be between %lld and %lld", what, (long long) min,
                           (long long) max);
                return false;
        }
        *dest = x;
        return true;
}

/* One of choices[] (NULL-terminated). */
static bool get_choice(SpecCtx *c, const char *what, const SpecNode *v, const char *const *choices, char **dest) {
        _cleanup_free_ char *s = NULL, *list = NULL;
        size_t len = 0;

        if (!get_str(c, what, v, &s))
                return false;
        for (const char *const *i = choices; *i; i++)
                if (streq(*i, s)) {
                        free(*dest);
                        *dest = TAKE_PTR(s);
                        return true;
                }
        for (const char *const *i = choices; *i; i++)
                len += strlen(*i) + 2;
        list = calloc(1, len + 1);
        if (!list) {
                c->oom = true;
                return false;
        }
        for (const char *const *i = choices; *i; i++) {
                if (i != choices)
                        strcat(list, ", ");
                strcat(list, *i);
        }
        node_error(c, v, "'%s' must be one of %s, not '%s'", what, list, s);
        return false;
}

/* A sequence of non-empty strings (a single string is not accepted). */
static bool get_strv(SpecCtx *c, const char *what, const SpecNode *v, char ***dest, const SpecNode ***ret_nodes) {
        _cleanup_strv_free_ char **l = NULL;
        bool ok = true;

        if (!v)
                return false;
        if (v->type != SPEC_NODE_SEQUENCE) {
                node_error(c, v, "'%s' must be a sequence of strings, not %s", what, spec_node_describe(v));
                return false;
        }
        for (size_t i = 0; i < v->n_items; i++) {
                const SpecNode *it = v->items[i];

                if (it->type != SPEC_NODE_SCALAR || spec_node_is_null(it) || it->length == 0) {
                        node_error(c, it, "items of '%s' must be non-empty strings, not %s", what,
                                   it->type == SPEC_NODE_SCALAR && !spec_node_is_null(it)
                                           ? "an empty string" : spec_node_describe(it));
                        ok = false;
                        continue;
                }
                if (strv_extend(&l, it->value) < 0) {
                        c->oom = true;
                        return false;
                }
        }
        if (!ok)
                return false;
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l) {
                        c->oom = true;
                        return false;
                }
        }
        strv_free(*dest);
        *dest = TAKE_PTR(l);
        if (ret_nodes)
                *ret_nodes = (const SpecNode **) v->items;
        return true;
}

/* ---- names ---- */

static bool valid_ref_name(const char *s) {
        size_t l = strlen(s);

        if (l == 0 || l > 255 || !isalnum((unsigned char) s[0]))
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("._-", *p))
                        return false;
        return true;
}

static bool check_kv_id(SpecCtx *c, const SpecNode *v, const char *s) {
        if (binding_valid_hex32(s))
                return true;
        node_error(c, v, "KV namespace id '%s' must be 32 hexadecimal characters", s);
        return false;
}

static bool check_d1_id(SpecCtx *c, const SpecNode *v, const char *s) {
        if (binding_valid_uuid(s))
                return true;
        node_error(c, v, "D1 database id '%s' must be a UUID", s);
        return false;
}

/* ---- paths ---- */

/* Lexically resolves path (relative to the current spec file's directory)
 * to a path relative to the spec root; NULL (error reported) if it is
 * absolute, empty or climbs out of the root. */
static char *resolve_rel_path(SpecCtx *c, const SpecNode *v, const char *path) {
        _cleanup_free_ char *joined = NULL, *out = NULL;
        size_t o = 0;
        char *save = NULL;

        if (path[0] == '/') {
                node_error(c, v, "path '%s' must be relative to the spec file", path);
                return NULL;
        }
        if (asprintf(&joined, "%s%s%s", c->file_dir, *c->file_dir ? "/" : "", path) < 0) {
                c->oom = true;
                return NULL;
        }
        out = calloc(1, strlen(joined) + 1);
        if (!out) {
                c->oom = true;
                return NULL;
        }
        for (char *t = strtok_r(joined, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
                if (streq(t, "."))
                        continue;
                if (streq(t, "..")) {
                        char *slash;

                        if (o == 0) {
                                node_error(c, v, "path '%s' escapes the spec directory", path);
                                return NULL;
                        }
                        out[o] = 0;
                        slash = strrchr(out, '/');
                        o = slash ? (size_t) (slash - out) : 0;
                        out[o] = 0;
                        continue;
                }
                if (o > 0)
                        out[o++] = '/';
                strcpy(out + o, t);
                o += strlen(t);
        }
        out[o] = 0;
        if (o == 0) {
                node_error(c, v, "path '%s' names the spec directory itself", path);
                return NULL;
        }
        return TAKE_PTR(out);
}

static const struct {
        const char *ext;
        ModuleType type;
} module_extensions[] = {
        { ".js", MODULE_ESM },
        { ".mjs", MODULE_ESM },
        { ".cjs", MODULE_COMMONJS },
        { ".wasm", MODULE_WASM },
        { ".txt", MODULE_TEXT },
        { ".html", MODULE_TEXT },
        { ".sql", MODULE_TEXT },
        { ".json", MODULE_TEXT },
        { ".bin", MODULE_DATA },
        { ".dat", MODULE_DATA },
        { ".map", MODULE_SOURCE_MAP },
};

static ModuleType module_type_from_path(const char *p) {
        for (size_t i = 0; i < ELEMENTSOF(module_extensions); i++)
                if (endswith(p, module_extensions[i].ext))
                        return module_extensions[i].type;
        return _MODULE_TYPE_INVALID;
}

/* A module file read in this load: every worker naming it again takes
 * these instead of opening and hashing it again (5,000 workers sharing
 * one bundle read it once). */
typedef struct ModuleRead {
        uint64_t size;
        char sha256[65];
} ModuleRead;

static void module_read_free(struct lh_entry *e) {
        free(lh_entry_k(e));
        free(lh_entry_v(e));
}

/* The whole generation is bounded too, counting every reference as a
 * read (whether or not it was read again): loading runs on the loop. */
static bool module_count(SpecCtx *c, const SpecNode *v, const char *display, uint64_t size) {
        if (c->limits->max_total_modules > 0 && c->total_modules + size > c->limits->max_total_modules) {
                if (!c->total_modules_exceeded)
                        node_error(c, v, "module '%s': the modules of this spec exceed %llu bytes in total",
                                   display, (unsigned long long) c->limits->max_total_modules);
                c->total_modules_exceeded = true;
                return false;
        }
        c->total_modules += size;
        return true;
}

static void module_remember(SpecCtx *c, const char *rel, const Module *m) {
        _cleanup_free_ char *k = NULL;
        _cleanup_free_ ModuleRead *x = NULL;

        if (!c->modules_read)
                c->modules_read = lh_kchar_table_new(64, module_read_free);
        k = strdup(rel);
        x = malloc(sizeof(ModuleRead));
        /* Only a cache: without it the module is read again. */
        if (!c->modules_read || !k || !x)
                return;
        x->size = m->size;
        memcpy(x->sha256, m->sha256, sizeof(x->sha256));
        if (lh_table_insert(c->modules_read, k, x) == 0) {
                TAKE_PTR(k);
                TAKE_PTR(x);
        }
}

/* Reads one module (relative to the root) into m: inside the root, a
 * regular file, within the size limit; records its size and SHA-256. */
static bool module_load(SpecCtx *c, const SpecNode *v, const char *display, const char *rel, Module *m) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *data = NULL;
        const ModuleRead *seen = NULL;
        struct stat st;
        size_t size = 0;

        if (c->modules_read && lh_table_lookup_ex(c->modules_read, rel, (void **) &seen) && seen) {
                if (!module_count(c, v, display, seen->size))
                        return false;
                memcpy(m->sha256, seen->sha256, sizeof(m->sha256));
                m->size = seen->size;
                m->path = path_join(c->root, rel);
                if (!m->path)
                        c->oom = true;
                return m->path != NULL;
        }
        fd = spec_open_beneath(c, rel);
        if (fd == -ENOENT || fd == -ENOTDIR) {
                node_error(c, v, "module '%s' not found", display);
                return false;
        }
        if (fd == -EXDEV) {
                node_error(c, v, "module '%s' leaves the spec directory through a symlink", display);
                return false;
        }
        if (fd == -ELOOP) {
                node_error(c, v, "module '%s': symlink loop", display);
                return false;
        }
        if (fd == -ENOMEM) {
                c->oom = true;
                return false;
        }
        if (fd < 0) {
                node_error(c, v, "cannot read module '%s': %s", display, strerror(-fd));
                return false;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                if (S_ISDIR(st.st_mode))
                        node_error(c, v, "module '%s' is not a regular file", display);
                else
                        node_error(c, v, "module '%s' is not a regular file (%s)", display,
                                   spec_file_type_name(st.st_mode));
                return false;
        }
        if ((uint64_t) st.st_size > c->limits->max_module_size) {
                node_error(c, v, "module '%s' is larger than the limit of %llu bytes", display,
                           (unsigned long long) c->limits->max_module_size);
                return false;
        }
        if (!module_count(c, v, display, (uint64_t) st.st_size))
                return false;
        data = malloc((size_t) st.st_size + 1);
        if (!data) {
                c->oom = true;
                return false;
        }
        /* Read what fstat promised; a file that grows meanwhile is cut
         * there and hashed as read. */
        while (size < (size_t) st.st_size) {
                ssize_t k = read(fd, data + size, (size_t) st.st_size - size);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        node_error(c, v, "cannot read module '%s': %s", display, strerror(errno));
                        return false;
                }
                if (k == 0)
                        break;
                size += (size_t) k;
        }
        sha256_hex(data, size, m->sha256);
        m->size = size;
        m->path = path_join(c->root, rel);
        if (!m->path) {
                c->oom = true;
                return false;
        }
        module_remember(c, rel, m);
        return true;
}

/* ---- common document keys ---- */

enum {
        K_KIND,
        K_NAME,
        K_ADOPT,
        K_DELETION_POLICY,
        K_DRIFT,
        K_SUSPEND,
        K_EXTERNAL,
        _K_COMMON_MAX,
};
#define COMMON_KEYS "kind", "name", "adopt", "deletion_policy", "drift", "suspend", "external"

static const char *const deletion_choices[] = { "retain", "delete", NULL };
static const char *const drift_choices[] = { "repair", "report", NULL };

static void parse_policy(SpecCtx *c, const Fields *f, ResourceKind kind, ResourcePolicy *p) {
        _cleanup_free_ char *del = NULL, *drift = NULL;

        p->deletion = kind == RESOURCE_WORKER ? DELETION_DELETE : DELETION_RETAIN;
        p->drift = DRIFT_REPAIR;
        if (f->val[K_ADOPT])
                (void) get_bool(c, "adopt", f->val[K_ADOPT], &p->adopt);
        if (f->val[K_SUSPEND])
                (void) get_bool(c, "suspend", f->val[K_SUSPEND], &p->suspend);
        if (f->val[K_EXTERNAL])
                (void) get_bool(c, "external", f->val[K_EXTERNAL], &p->external);
        if (f->val[K_DELETION_POLICY] &&
            get_choice(c, "deletion_policy", f->val[K_DELETION_POLICY], deletion_choices, &del)) {
                p->deletion = deletion_policy_from_string(del);
                p->deletion_explicit = true;
        }
        if (f->val[K_DRIFT] && get_choice(c, "drift", f->val[K_DRIFT], drift_choices, &drift))
                p->drift = drift_policy_from_string(drift);
        if (p->adopt && p->external)
                node_error(c, f->key[K_ADOPT], "'adopt' and 'external' exclude each other: "
                           "an external resource is never owned");
        if (p->external && p->deletion_explicit && p->deletion == DELETION_DELETE)
                node_error(c, f->key[K_DELETION_POLICY],
                           "'deletion_policy: delete' contradicts 'external: true'");
}

/* An `id` is only meaningful for an external resource. */
static void check_id_external(SpecCtx *c, const Fields *f, size_t idx, const ResourcePolicy *p) {
        if (f->val[idx] && !p->external)
                node_error(c, f->key[idx], "'id' needs 'external: true' "
                           "(bindery never chooses ids; it looks resources up by id)");
}

/* Grows a Generation array by one zeroed element (from 2, doubling: most
 * workers have one module and a few bindings, and 8 of each per worker
 * were 2.3 KiB of empty slots). */
#define GROW(c, arr, n, a)                                                      \
        ({                                                                      \
                __typeof__(arr) _p = NULL;                                      \
                if ((n) >= (a)) {                                               \
                        size_t _na = (a) ? (a) * 2 : 2;                         \
                        __typeof__(arr) _r = realloc((arr), sizeof(*(arr)) * _na); \
                        if (_r) {                                               \
                                (arr) = _r;                                     \
                                (a) = _na;                                      \
                        }                                                       \
                }                                                               \
                if ((n) < (a)) {                                                \
                        _p = &(arr)[(n)++];                                     \
                        memset(_p, 0, sizeof(*_p));                             \
                } else                                                          \
                        (c)->oom = true;                                        \
                _p;                                                             \
        })

/* Gives back a GROW array's unused slots once it is complete (the
 * model lives as long as its generation; up to half of it was empty). */
#define SHRINK(arr, n)                                                          \
        do {                                                                    \
                __typeof__(arr) _r = (n) > 0 ? realloc((arr), sizeof(*(arr)) * (n)) : NULL; \
                if (_r)                                                         \
                        (arr) = _r;                                             \
        } while (0)

/* The generation's arrays at their counts, once every file is parsed:
 * doubling left up to half of each unused (the worker array alone had
 * room for 16,384 at 10,000 workers, 2.6 MB idle for the generation's
 * life). Nothing points into them yet: finalizing sorts them in place. */
static void shrink_generation(SpecCtx *c) {
        Generation *g = c->g;

        SHRINK(g->workers, g->n_workers);
        c->a_workers = g->n_workers;
        SHRINK(g->kv_namespaces, g->n_kv_namespaces);
        c->a_kv = g->n_kv_namespaces;
        SHRINK(g->r2_buckets, g->n_r2_buckets);
        c->a_r2 = g->n_r2_buckets;
        SHRINK(g->d1_databases, g->n_d1_databases);
        c->a_d1 = g->n_d1_databases;
        SHRINK(g->queues, g->n_queues);
        c->a_queues = g->n_queues;
        SHRINK(g->secrets_stores, g->n_secrets_stores);
        c->a_stores = g->n_secrets_stores;
        SHRINK(g->secrets_store_secrets, g->n_secrets_store_secrets);
        c->a_secrets = g->n_secrets_store_secrets;
}

/* ---- secret references ---- */

static const char *const secret_ref_keys[] = { "credential", "file", "env", NULL };

static bool valid_env_name(const char *s) {
        if (!isalpha((unsigned char) s[0]) && s[0] != '_')
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && *p != '_')
                        return false;
        return true;
}

void spec_grant_done(SpecGrant *g) {
        if (!g)
                return;
        strv_free(g->deny_credentials);
        free(g->files_dir);
        strv_free(g->deny_paths);
        strv_free(g->env);
        strv_free(g->deny_env);
        *g = (SpecGrant) {};
}

/* Whether path is dir or below it (both absolute, no trailing '/'). */
static bool path_below(const char *path, const char *dir) {
        size_t l = strlen(dir);

        while (l > 1 && dir[l - 1] == '/')
                l--;
        if (strncmp(path, dir, l) != 0)
                return false;
        return path[l] == 0 || path[l] == '/' || streq(dir, "/");
}

/* Lexically normalised absolute path: no ".", "..", "//". NULL on OOM. */
static char *path_normalize(const char *p) {
        _cleanup_free_ char *out = malloc(strlen(p) + 2);
        size_t n = 0;

        if (!out)
                return NULL;
        for (const char *s = p; *s;) {
                size_t l;

                while (*s == '/')
                        s++;
                l = strcspn(s, "/");
                if (l == 0)
                        break;
                if (l == 1 && s[0] == '.') {
                        /* skip */
                } else if (l == 2 && s[0] == '.' && s[1] == '.') {
                        while (n > 0 && out[n - 1] != '/')
                                n--;
                        if (n > 0)
                                n--;
                } else {
                        out[n++] = '/';
                        memcpy(out + n, s, l);
                        n += l;
                }
                s += l;
        }
        if (n == 0)
                out[n++] = '/';
        out[n] = 0;
        return TAKE_PTR(out);
}

/* NULL if norm (and real, where the path leads, if it exists) is inside
 * the grant; else a reason, with *ret_dir the directory concerned. */
static const char *grant_file_verdict(const SpecGrant *g, const char *norm, const char *real, const char **ret_dir) {
        *ret_dir = NULL;
        for (char **d = g->deny_paths; d && *d; d++)
                if (path_below(norm, *d) || (real && path_below(real, *d))) {
                        *ret_dir = *d;
                        return "belongs to the daemon";
                }
        if (!g->files_dir)
                return "is not granted";
        if (!path_below(norm, g->files_dir) || (real && !path_below(real, g->files_dir))) {
                *ret_dir = g->files_dir;
                return "is outside";
        }
        return NULL;
}

int spec_grant_check_file(const SpecGrant *g, const char *path, char **reterr) {
        _cleanup_free_ char *norm = NULL, *real = NULL;
        const char *why, *dir;

        if (!g)
                return 0;
        norm = path_normalize(path);
        if (!norm)
                return -ENOMEM;
        real = realpath(norm, NULL);
        why = grant_file_verdict(g, norm, real, &dir);
        if (!why)
                return 0;
        if (reterr && asprintf(reterr, "file '%s' %s%s%s, refused (what specs may read: spec_files_dir)", path,
                               why, dir ? " " : "", dir ?: "") < 0)
                *reterr = NULL;
        return -EPERM;
}

/* Checks a parsed reference against what the operator grants specs
 * (SpecGrant). Both the path as written and, when it exists, where its
 * symlinks lead must stay inside the grant. */
static bool check_grant(SpecCtx *c, const SpecNode *v, SecretSource source, const char *ref) {
        const SpecGrant *g = c->grant;

        if (!g)
                return true;
        switch (source) {
        case SECRET_SOURCE_CREDENTIAL:
                if (strv_contains(g->deny_credentials, ref)) {
                        node_error(c, v, "credential '%s' is one of the daemon's own secrets; "
                                   "specs cannot read it", ref);
                        return false;
                }
                return true;
        case SECRET_SOURCE_ENV:
                if (strv_contains(g->deny_env, ref)) {
                        node_error(c, v, "environment variable '%s' holds one of the daemon's own secrets; "
                                   "specs cannot read it", ref);
                        return false;
                }
                if (!strv_contains(g->env, ref)) {
                        node_error(c, v, "environment variable '%s' is not granted to specs "
                                   "(list it in '%s' in binderyd.yaml)", ref, g->env_key ?: "spec_env");
                        return false;
                }
                return true;
        case SECRET_SOURCE_FILE: {
                _cleanup_free_ char *norm = NULL, *real = NULL;
                const char *dir;

                if (!g->files_dir) {
                        node_error(c, v, "secret files are not granted to specs: set '%s' in binderyd.yaml "
                                   "to the directory spec secret files may come from",
                                   g->files_key ?: "spec_files_dir");
                        return false;
                }
                norm = path_normalize(ref);
                if (!norm) {
                        c->oom = true;
                        return false;
                }
                real = realpath(norm, NULL);   /* NULL: does not exist (yet); checked again when read */
                if (grant_file_verdict(g, norm, real, &dir)) {
                        if (g->files_dir && dir == g->files_dir)
                                node_error(c, v, "secret file '%s' is outside '%s' (%s), the only directory "
                                           "granted to specs", v->value, g->files_key ?: "spec_files_dir",
                                           g->files_dir);
                        else
                                node_error(c, v, "secret file '%s' belongs to the daemon (%s); "
                                           "specs cannot read it", v->value, strna(dir));
                        return false;
                }
                return true;
        }
        default:
                return false;
        }
}

/* {credential: NAME} | {file: PATH} | {env: VAR}. Never reads the value. */
static bool parse_secret_ref(SpecCtx *c, const char *what, const SpecNode *v, SecretRef *ret) {
        Fields f;
        size_t which = SIZE_MAX, count = 0;
        _cleanup_free_ char *s = NULL;

        if (!need_mapping(c, what, v))
                return false;
        fields_parse(c, v, secret_ref_keys, &f);
        for (size_t i = 0; i < 3; i++)
                if (f.val[i]) {
                        which = i;
                        count++;
                }
        if (count != 1) {
                if (count == 0 && (f.suggested[0] || f.suggested[1] || f.suggested[2]))
                        return false;
                node_error(c, v, "'%s' must have exactly one of 'credential', 'file' or 'env'", what);
                return false;
        }
        if (!get_str(c, secret_ref_keys[which], f.val[which], &s))
                return false;
        switch (which) {
        case SECRET_SOURCE_CREDENTIAL:
                if (!secrets_credential_name_is_valid(s)) {
                        node_error(c, f.val[which], "'%s' is not a valid credential name", s);
                        return false;
                }
                break;
        case SECRET_SOURCE_FILE:
                if (s[0] != '/') {
                        char *abs;

                        if (asprintf(&abs, "%s/%s%s%s", c->root, c->file_dir,
                                     *c->file_dir ? "/" : "", s) < 0) {
                                c->oom = true;
                                return false;
                        }
                        free(s);
                        s = abs;
                }
                if (endswith(s, "/")) {
                        node_error(c, f.val[which], "secret file '%s' must name a file",
                                   f.val[which]->value);
                        return false;
                }
                break;
        case SECRET_SOURCE_ENV:
                if (!valid_env_name(s)) {
                        node_error(c, f.val[which], "'%s' is not a valid environment variable name", s);
                        return false;
                }
                break;
        }
        if (!check_grant(c, f.val[which], (SecretSource) which, s))
                return false;
        ret->source = (SecretSource) which;
        free(ret->ref);
        ret->ref = TAKE_PTR(s);
        return true;
}

/* ---- YAML → canonical JSON (sorted keys) ---- */

static int cmp_pair_keys(const void *a, const void *b) {
        const SpecNode *const *x = a, *const *y = b;

        return strcmp(x[0]->value, y[0]->value);
}

static json_object *node_to_json(SpecCtx *c, const SpecNode *n) {
        json_object *o;
        int64_t i;
        double d;
        int b;

        switch (n->type) {
        case SPEC_NODE_SEQUENCE:
                o = json_object_new_array();
                if (!o)
                        break;
                for (size_t k = 0; k < n->n_items; k++) {
                        json_object *e = node_to_json(c, n->items[k]);

                        if ((!e && !spec_node_is_null(n->items[k])) || json_object_array_add(o, e) < 0) {
                                json_object_put(e);
                                json_object_put(o);
                                return NULL;
                        }
                }
                return o;
        case SPEC_NODE_MAPPING: {
                _cleanup_free_ const SpecNode **pairs = NULL;

                o = json_object_new_object();
                if (!o)
                        break;
                pairs = calloc(n->n_items * 2 + 1, sizeof(SpecNode *));
                if (!pairs) {
                        json_object_put(o);
                        break;
                }
                if (n->n_items > 0)     /* an empty mapping has no items array */
                        memcpy(pairs, n->items, sizeof(SpecNode *) * n->n_items * 2);
                qsort(pairs, n->n_items, sizeof(SpecNode *) * 2, cmp_pair_keys);
                for (size_t k = 0; k < n->n_items; k++) {
                        json_object *e = node_to_json(c, pairs[2 * k + 1]);

                        if (!e && !spec_node_is_null(pairs[2 * k + 1])) {
                                json_object_put(o);
                                return NULL;
                        }
                        if (json_object_object_add(o, pairs[2 * k]->value, e) < 0) {
                                json_object_put(e);
                                json_object_put(o);
                                return NULL;
                        }
                }
                return o;
        }
        default:
                if (spec_node_is_null(n))
                        return NULL; /* JSON null is a NULL json_object */
                if ((b = spec_node_bool(n)) >= 0)
                        return json_object_new_boolean(b);
                if (spec_node_int(n, &i) >= 0)
                        return json_object_new_int64(i);
                if (spec_node_double(n, &d) >= 0) {
                        if (!isfinite(d)) {
                                node_error(c, n, "JSON has no representation for '%s'", n->value);
                                return json_object_new_null();
                        }
                        return json_object_new_double(d);
                }
                return json_object_new_string_len(n->value, (int) n->length);
        }
        c->oom = true;
        return NULL;
}

static char *node_to_canonical_json(SpecCtx *c, const SpecNode *n) {
        json_object *o = node_to_json(c, n);
        const char *s;
        char *r;

        if (!o && !spec_node_is_null(n))
                return NULL;
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        r = sdup(c, s ?: "null");
        json_object_put(o);
        return r;
}

/* ---- bindings ---- */

static const char *const no_keys[] = { NULL };
static const char *const r2_jurisdictions[] = { "eu", "fedramp", "fedramp-high", NULL };

/* Reference forms NAME | {key: ...}: returns the mapping's fields in f, or
 * sets *ret_name for the scalar form. */
static bool ref_form(SpecCtx *c, const char *what, const SpecNode *v, const char *const *keys,
                     char **ret_name, Fields *f) {
        if (v->type == SPEC_NODE_SCALAR && !spec_node_is_null(v)) {
                if (!get_str(c, what, v, ret_name))
                        return false;
                if (!valid_ref_name(*ret_name)) {
                        node_error(c, v, "'%s' is not a valid document name", *ret_name);
                        return false;
                }
                return true;
        }
        if (v->type != SPEC_NODE_MAPPING) {
                node_error(c, v, "'%s' must be a name or a mapping, not %s", what, spec_node_describe(v));
                return false;
        }
        fields_parse(c, v, keys, f);
        return true;
}

static bool parse_empty(SpecCtx *c, const char *what, const SpecNode *v) {
        Fields f;

        if (spec_node_is_null(v))
                return true;
        if (!need_mapping(c, what, v))
                return false;
        fields_parse(c, v, no_keys, &f);
        return v->n_items == 0;
}

/* The direct id of a reference (or of hyperdrive), keys[0] of the kind's
 * mapping, checked by the kind's validation hook. */
static bool binding_id(SpecCtx *c, const BindingKindInfo *info, Fields *f, Binding *b) {
        if (!field_required(c, f, 0) || !get_str(c, info->keys[0], f->val[0], &b->target_id))
                return false;
        if (info->valid_id && !info->valid_id(b->target_id)) {
                node_error(c, f->val[0], "%s'%s'%s", info->id_prefix, b->target_id, info->id_suffix);
                return false;
        }
        return true;
}

/* kv_namespace, r2_bucket, d1, queue: a document name or the resource's id. */
static bool parse_reference(SpecCtx *c, const BindingKindInfo *info, Binding *b, const SpecNode *v) {
        Fields f = {};

        if (!ref_form(c, info->spec_key, v, info->keys, &b->target, &f))
                return false;
        if (b->target)
                return true;
        if (!binding_id(c, info, &f, b))
                return false;
        /* What only an R2 reference has. */
        if (b->kind == BINDING_R2_BUCKET && f.val[1] &&
            !get_choice(c, "jurisdiction", f.val[1], r2_jurisdictions, &b->jurisdiction))
                return false;
        return true;
}

static bool parse_service(SpecCtx *c, const BindingKindInfo *info, Binding *b, const SpecNode *v) {
        Fields f = {};

        if (v->type == SPEC_NODE_SCALAR && !spec_node_is_null(v)) {
                b->service = sdup(c, v->value);
                f.val[0] = v;
        } else {
                if (v->type != SPEC_NODE_MAPPING) {
                        node_error(c, v, "'service' must be a name or a mapping, not %s", spec_node_describe(v));
                        return false;
                }
                fields_parse(c, v, info->keys, &f);
                if (!field_required(c, &f, 0) || !get_str(c, "service", f.val[0], &b->service))
                        return false;
                if (f.val[1] && !get_str(c, "entrypoint", f.val[1], &b->entrypoint))
                        return false;
                if (b->entrypoint && !spec_valid_js_identifier(b->entrypoint)) {
                        node_error(c, f.val[1], "entrypoint '%s' is not a valid JavaScript identifier",
                                   b->entrypoint);
                        return false;
                }
                if (f.val[2] && !get_str(c, "environment", f.val[2], &b->environment))
                        return false;
        }
        if (b->service && !spec_valid_script_name(b->service)) {
                node_error(c, f.val[0], "'%s' is not a valid worker name", b->service);
                return false;
        }
        return true;
}

static bool parse_durable_object(SpecCtx *c, Binding *b, const Fields *f) {
        if (!field_required(c, f, 0) || !get_str(c, "class_name", f->val[0], &b->class_name))
                return false;
        if (!spec_valid_js_identifier(b->class_name)) {
                node_error(c, f->val[0], "'%s' is not a valid class name", b->class_name);
                return false;
        }
        if (f->val[1] && !get_str(c, "script", f->val[1], &b->script_name))
                return false;
        if (b->script_name && !spec_valid_script_name(b->script_name)) {
                node_error(c, f->val[1], "'%s' is not a valid worker name", b->script_name);
                return false;
        }
        if (f->val[2] && !get_str(c, "environment", f->val[2], &b->environment))
                return false;
        return true;
}

static bool parse_workflow(SpecCtx *c, Binding *b, const Fields *f) {
        bool ok;

        /* Report both missing keys, not only the first. */
        ok = field_required(c, f, 0);
        ok = field_required(c, f, 1) && ok;
        if (!ok)
                return false;
        ok = get_str(c, "name", f->val[0], &b->workflow_name);
        ok = get_str(c, "class_name", f->val[1], &b->class_name) && ok;
        if (!ok)
                return false;
        if (!spec_valid_js_identifier(b->class_name)) {
                node_error(c, f->val[1], "'%s' is not a valid class name", b->class_name);
                return false;
        }
        return !f->val[2] || get_str(c, "script", f->val[2], &b->script_name);
}

/* The mapping kinds: the table gives the keys, this what each one fills. */
static bool parse_mapping(SpecCtx *c, const BindingKindInfo *info, Binding *b, const SpecNode *v) {
        Fields f = {};

        if (!need_mapping(c, info->spec_key, v))
                return false;
        fields_parse(c, v, info->keys, &f);
        switch (b->kind) {
        case BINDING_DURABLE_OBJECT:
                return parse_durable_object(c, b, &f);
        case BINDING_SECRETS_STORE_SECRET:
                if (f.val[0] && !get_str(c, "store", f.val[0], &b->store))
                        return false;
                return field_required(c, &f, 1) && get_str(c, "secret", f.val[1], &b->secret_name);
        case BINDING_ANALYTICS_ENGINE:
                return field_required(c, &f, 0) && get_str(c, "dataset", f.val[0], &b->dataset);
        case BINDING_HYPERDRIVE:
                return binding_id(c, info, &f, b);
        case BINDING_VECTORIZE:
                return field_required(c, &f, 0) && get_str(c, "index_name", f.val[0], &b->index_name);
        case BINDING_WORKFLOW:
                return parse_workflow(c, b, &f);
        default: /* not a mapping kind */
                return false;
        }
}

/* The value of a binding, by the form its kind's descriptor gives. */
static bool parse_binding_value(SpecCtx *c, const BindingKindInfo *info, Binding *b, const SpecNode *v) {
        switch (info->form) {
        case BINDING_FORM_TEXT:
                if (v->type != SPEC_NODE_SCALAR || spec_node_is_null(v)) {
                        node_error(c, v, "'text' must be a string, not %s", spec_node_describe(v));
                        return false;
                }
                b->text = sdup(c, v->value);
                return true;
        case BINDING_FORM_JSON:
                b->json = node_to_canonical_json(c, v);
                return true;
        case BINDING_FORM_SECRET:
                return parse_secret_ref(c, "secret", v, &b->secret);
        case BINDING_FORM_REFERENCE:
                return parse_reference(c, info, b, v);
        case BINDING_FORM_SERVICE:
                return parse_service(c, info, b, v);
        case BINDING_FORM_MAPPING:
                return parse_mapping(c, info, b, v);
        case BINDING_FORM_EMPTY:
                return parse_empty(c, info->spec_key, v);
        default:
                return false;
        }
}

static void parse_binding(SpecCtx *c, Worker *w, size_t *a_bindings, const SpecNode *k, const SpecNode *v) {
        const char *keys[_BINDING_KIND_MAX + 1], *hint;
        const SpecNode *fk;
        BindingKind kind;
        Binding *b;

        if (!spec_valid_js_identifier(k->value)) {
                node_error(c, k, "binding name '%s' is not a valid JavaScript identifier", k->value);
                return;
        }
        if (spec_node_is_null(v)) {
                node_error(c, v, "binding '%s' has no value", k->value);
                return;
        }
        if (v->type == SPEC_NODE_SEQUENCE) {
                node_error(c, v, "binding '%s' must be a string or a mapping with one kind key, not a sequence",
                           k->value);
                return;
        }
        b = GROW(c, w->bindings, w->n_bindings, *a_bindings);
        if (!b)
                return;
        b->loc = node_loc(c, k);
        b->name = sdup(c, k->value);
        if (v->type == SPEC_NODE_SCALAR) {
                b->kind = BINDING_PLAIN_TEXT;
                b->text = sdup(c, v->value);
                return;
        }
        if (v->n_items != 1) {
                char list[512] = "";
                size_t n = 0;

                binding_spec_keys(keys);
                for (size_t i = 0; keys[i] && n < sizeof(list); i++)
                        n += (size_t) snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", keys[i]);
                node_error(c, v, "binding '%s' must have exactly one kind key (%s)", k->value, list);
                goto fail;
        }
        fk = v->items[0];
        kind = binding_kind_from_spec_key(fk->value);
        if (kind < 0) {
                binding_spec_keys(keys);
                hint = ctx_suggest(c, fk->value, keys);
                if (hint)
                        node_error(c, fk, "unknown binding kind '%s' (did you mean '%s'?)", fk->value, hint);
                else
                        node_error(c, fk, "unknown binding kind '%s'", fk->value);
                goto fail;
        }
        b->kind = kind;
        if (parse_binding_value(c, binding_kind_info(kind), b, v->items[1]))
                return;
fail:
        /* Keep the binding (its name still counts) but take it out of the
         * cross-document checks; the generation is rejected anyway. */
        b->kind = _BINDING_KIND_INVALID;
}

/* ---- Worker ---- */

enum {
        W_MAIN = _K_COMMON_MAX,
        W_MODULES,
        W_COMPAT_DATE,
        W_COMPAT_FLAGS,
        W_BINDINGS,
        W_CRONS,
        W_WORKERS_DEV,
        W_CONSUMERS,
        W_DURABLE_OBJECTS,
        W_TAGS,
        W_OBSERVABILITY,
        W_LOGPUSH,
};

static const char *const worker_keys[] = {
        COMMON_KEYS, "main", "modules", "compatibility_date", "compatibility_flags", "bindings",
        "crons", "workers_dev", "consumers", "durable_objects", "tags", "observability", "logpush",
        NULL
};

static const char *const module_keys[] = { "path", "type", NULL };
static const char *const module_type_choices[] = { "esm", "commonjs", "wasm", "text", "data", "source_map", NULL };

/* One entry of 'modules' (a path, or {path, type}), below the main
 * module's directory (main_rel's first main_dir_len bytes). -ENOMEM stops
 * the list; an entry with errors is reported and skipped. */
static int parse_module(SpecCtx *c, Worker *w, const SpecNode *it, const char *main_rel, size_t main_dir_len,
                        size_t *a_modules) {
        const SpecNode *pv = it, *tv = NULL;
        _cleanup_free_ char *rel = NULL, *type = NULL;
        Module *m;
        Fields f;

        if (it->type == SPEC_NODE_MAPPING) {
                fields_parse(c, it, module_keys, &f);
                if (!field_required(c, &f, 0))
                        return 0;
                pv = f.val[0];
                tv = f.val[1];
        }
        if (pv->type != SPEC_NODE_SCALAR || spec_node_is_null(pv) || pv->length == 0) {
                node_error(c, pv, "a module must be a path or a mapping with 'path', not %s",
                           spec_node_describe(pv));
                return 0;
        }
        rel = resolve_rel_path(c, pv, pv->value);
        if (!rel)
                return 0;
        if (main_dir_len > 0 && strncmp(rel, main_rel, main_dir_len) != 0) {
                node_error(c, pv, "module '%s' is not below the main module's directory '%.*s'",
                           pv->value, (int) main_dir_len - 1, main_rel);
                return 0;
        }
        if (streq(rel, main_rel)) {
                node_error(c, pv, "module '%s' is the main module", pv->value);
                return 0;
        }
        for (size_t j = 1; j < w->n_modules; j++)
                if (streq(w->modules[j].name, rel + main_dir_len)) {
                        node_error(c, pv, "module '%s' is listed twice", pv->value);
                        return 0;
                }
        m = GROW(c, w->modules, w->n_modules, *a_modules);
        if (!m)
                return -ENOMEM;
        m->loc = node_loc(c, pv);
        m->name = sdup(c, rel + main_dir_len);
        if (tv) {
                if (get_choice(c, "type", tv, module_type_choices, &type))
                        m->type = module_type_from_string(type);
        } else {
                m->type = module_type_from_path(rel);
                if (m->type < 0)
                        node_error(c, pv, "cannot infer the type of module '%s' from its "
                                   "extension; give 'type'", pv->value);
        }
        (void) module_load(c, pv, pv->value, rel, m);
        return 0;
}

/* The main module (modules[0], an ES module), then 'modules'. */
static void parse_modules(SpecCtx *c, Worker *w, const SpecNode *main_node, const SpecNode *mods) {
        _cleanup_free_ char *main_rel = NULL;
        const char *main_dir_end;
        size_t main_dir_len, a_modules = 0;
        Module *m;

        main_rel = resolve_rel_path(c, main_node, main_node->value);
        if (!main_rel)
                return;
        main_dir_end = strrchr(main_rel, '/');
        main_dir_len = main_dir_end ? (size_t) (main_dir_end - main_rel) + 1 : 0;

        m = GROW(c, w->modules, w->n_modules, a_modules);
        if (!m)
                return;
        m->loc = node_loc(c, main_node);
        m->type = module_type_from_path(main_rel);
        m->name = sdup(c, main_rel + main_dir_len);
        w->main_module = sdup(c, m->name);
        if (m->type != MODULE_ESM)
                node_error(c, main_node, "main module '%s' must be an ES module (.js or .mjs)",
                           main_node->value);
        (void) module_load(c, main_node, main_node->value, main_rel, m);

        if (!mods)
                return;
        if (mods->type != SPEC_NODE_SEQUENCE) {
                node_error(c, mods, "'modules' must be a sequence, not %s", spec_node_describe(mods));
                return;
        }
        for (size_t i = 0; i < mods->n_items; i++) {
                if (w->n_modules >= c->limits->max_modules) {
                        node_error(c, mods->items[i], "too many modules (limit %zu)", c->limits->max_modules);
                        return;
                }
                if (parse_module(c, w, mods->items[i], main_rel, main_dir_len, &a_modules) < 0)
                        return;
        }
}

static const char *const consumer_keys[] = {
        "queue", "batch_size", "max_retries", "max_wait_time_ms", "max_concurrency", "retry_delay",
        "dead_letter_queue", "settings", NULL
};
/* The same settings nested, as the API writes them. */
static const char *const consumer_settings_keys[] = {
        "batch_size", "max_retries", "max_wait_time_ms", "max_concurrency", "retry_delay", NULL
};

static void parse_consumers(SpecCtx *c, Worker *w, const SpecNode *v) {
        static const struct {
                int64_t min, max;
        } ranges[] = {
                [1] = { 1, 100 }, [2] = { 0, 100 }, [3] = { 0, 60000 }, [4] = { 1, 250 }, [5] = { 0, 43200 },
        };
        size_t a = 0;

        if (v->type != SPEC_NODE_SEQUENCE) {
                node_error(c, v, "'consumers' must be a sequence, not %s", spec_node_describe(v));
                return;
        }
        for (size_t i = 0; i < v->n_items; i++) {
                const SpecNode *it = v->items[i];
                QueueConsumer *q;
                Fields f, sf = {};
                int64_t *dest[6];

                if (!need_item_mapping(c, "consumers", it))
                        continue;
                q = GROW(c, w->consumers, w->n_consumers, a);
                if (!q)
                        return;
                q->loc = node_loc(c, it);
                q->batch_size = q->max_retries = q->max_wait_time_ms = -1;
                q->max_concurrency = q->retry_delay = -1;
                dest[1] = &q->batch_size;
                dest[2] = &q->max_retries;
                dest[3] = &q->max_wait_time_ms;
                dest[4] = &q->max_concurrency;
                dest[5] = &q->retry_delay;
                fields_parse(c, it, consumer_keys, &f);
                if (field_required(c, &f, 0) && get_str(c, "queue", f.val[0], &q->queue))
                        q->loc = node_loc(c, f.val[0]);
                if (f.val[7] && need_mapping(c, "settings", f.val[7]))
                        fields_parse(c, f.val[7], consumer_settings_keys, &sf);
                for (size_t k = 1; k <= 5; k++) {
                        const SpecNode *sv = f.val[k] ?: sf.val[k - 1];

                        if (f.val[k] && sf.val[k - 1]) {
                                node_error(c, sf.key[k - 1], "'%s' is given twice (here and in the consumer)",
                                           consumer_keys[k]);
                                continue;
                        }
                        if (sv)
                                (void) get_int(c, consumer_keys[k], sv, ranges[k].min, ranges[k].max, dest[k]);
                }
                if (f.val[6])
                        (void) get_str(c, "dead_letter_queue", f.val[6], &q->dead_letter_queue);
        }
}

static const char *const do_section_keys[] = { "classes", "migrations", NULL };
static const char *const do_class_keys[] = { "class_name", "storage", NULL };
static const char *const storage_choices[] = { "sqlite", "kv", NULL };
static const char *const migration_keys[] = {
        "tag", "new_classes", "new_sqlite_classes", "renamed_classes", "deleted_classes", NULL
};
static const char *const rename_keys[] = { "from", "to", NULL };

static bool class_list(SpecCtx *c, const char *what, const SpecNode *v, char ***dest) {
        const SpecNode **nodes = NULL;
        size_t n;

        if (!get_strv(c, what, v, dest, &nodes))
                return false;
        n = strv_length(*dest);
        for (size_t i = 0; i < n; i++)
                if (!spec_valid_js_identifier((*dest)[i])) {
                        node_error(c, nodes[i], "'%s' is not a valid class name", (*dest)[i]);
                        return false;
                }
        return true;
}

/* durable_objects.classes: names, or {class_name, storage}. */
static int parse_do_classes(SpecCtx *c, Worker *w, const SpecNode *classes) {
        size_t a_classes = 0;

        if (classes->type != SPEC_NODE_SEQUENCE) {
                node_error(c, classes, "'classes' must be a sequence, not %s", spec_node_describe(classes));
                return 0;
        }
        for (size_t i = 0; i < classes->n_items; i++) {
                const SpecNode *it = classes->items[i], *nv = it;
                _cleanup_free_ char *storage = NULL;
                DurableObjectClass *d;
                Fields cf;

                d = GROW(c, w->do_classes, w->n_do_classes, a_classes);
                if (!d)
                        return -ENOMEM;
                d->sqlite = true;
                d->loc = node_loc(c, it);
                if (it->type == SPEC_NODE_MAPPING) {
                        fields_parse(c, it, do_class_keys, &cf);
                        if (!field_required(c, &cf, 0))
                                continue;
                        nv = cf.val[0];
                        if (cf.val[1] && get_choice(c, "storage", cf.val[1], storage_choices, &storage))
                                d->sqlite = streq(storage, "sqlite");
                }
                if (!get_str(c, "class_name", nv, &d->class_name))
                        continue;
                d->loc = node_loc(c, nv);
                if (!spec_valid_js_identifier(d->class_name))
                        node_error(c, nv, "'%s' is not a valid class name", d->class_name);
        }
        return 0;
}

/* A migration's renamed_classes: {from, to} each. */
static int parse_renames(SpecCtx *c, MigrationStep *m, const SpecNode *rs) {
        if (rs->type != SPEC_NODE_SEQUENCE) {
                node_error(c, rs, "'renamed_classes' must be a sequence, not %s", spec_node_describe(rs));
                return 0;
        }
        m->renamed_classes = calloc(rs->n_items ?: 1, sizeof(RenamedClass));
        if (!m->renamed_classes) {
                c->oom = true;
                return -ENOMEM;
        }
        for (size_t j = 0; j < rs->n_items; j++) {
                RenamedClass *rc = &m->renamed_classes[m->n_renamed_classes];
                Fields rf;

                if (!need_item_mapping(c, "renamed_classes", rs->items[j]))
                        continue;
                fields_parse(c, rs->items[j], rename_keys, &rf);
                m->n_renamed_classes++;
                if (field_required(c, &rf, 0))
                        (void) get_str(c, "from", rf.val[0], &rc->from);
                if (field_required(c, &rf, 1) && get_str(c, "to", rf.val[1], &rc->to) &&
                    !spec_valid_js_identifier(rc->to))
                        node_error(c, rf.val[1], "'%s' is not a valid class name", rc->to);
        }
        return 0;
}

/* durable_objects.migrations: each a mapping with a tag and at least one
 * change. */
static int parse_migrations(SpecCtx *c, Worker *w, const SpecNode *migs) {
        size_t a_migs = 0;

        if (migs->type != SPEC_NODE_SEQUENCE) {
                node_error(c, migs, "'migrations' must be a sequence, not %s", spec_node_describe(migs));
                return 0;
        }
        for (size_t i = 0; i < migs->n_items; i++) {
                const SpecNode *it = migs->items[i];
                MigrationStep *m;
                Fields mf;

                if (!need_item_mapping(c, "migrations", it))
                        continue;
                m = GROW(c, w->migrations, w->n_migrations, a_migs);
                if (!m)
                        return -ENOMEM;
                m->loc = node_loc(c, it);
                fields_parse(c, it, migration_keys, &mf);
                if (field_required(c, &mf, 0))
                        (void) get_str(c, "tag", mf.val[0], &m->tag);
                if (mf.val[1])
                        (void) class_list(c, "new_classes", mf.val[1], &m->new_classes);
                if (mf.val[2])
                        (void) class_list(c, "new_sqlite_classes", mf.val[2], &m->new_sqlite_classes);
                if (mf.val[4])
                        (void) class_list(c, "deleted_classes", mf.val[4], &m->deleted_classes);
                if (mf.val[3] && parse_renames(c, m, mf.val[3]) < 0)
                        return -ENOMEM;
                if (!mf.val[1] && !mf.val[2] && !mf.val[3] && !mf.val[4] && mf.n_unknown == 0)
                        node_error(c, it, "migration '%s' changes nothing", strna(m->tag));
        }
        return 0;
}

static void parse_durable_objects(SpecCtx *c, Worker *w, const SpecNode *v) {
        Fields f;

        if (!need_mapping(c, "durable_objects", v))
                return;
        fields_parse(c, v, do_section_keys, &f);
        if (f.val[0] && parse_do_classes(c, w, f.val[0]) < 0)
                return;
        if (f.val[1])
                (void) parse_migrations(c, w, f.val[1]);
}

static const char *const observability_keys[] = { "enabled", "head_sampling_rate", "logs", NULL };
static const char *const logs_keys[] = { "enabled", "invocation_logs", NULL };

static void parse_observability(SpecCtx *c, Worker *w, const SpecNode *v) {
        Observability *o = &w->observability;
        Fields f;

        o->head_sampling_rate = -1;
        if (v->type == SPEC_NODE_SCALAR && spec_node_bool(v) >= 0) {
                o->set = get_bool(c, "observability", v, &o->enabled);
                return;
        }
        if (!need_mapping(c, "observability", v))
                return;
        o->set = true;
        o->enabled = true;
        fields_parse(c, v, observability_keys, &f);
        if (f.val[0])
                (void) get_bool(c, "enabled", f.val[0], &o->enabled);
        if (f.val[1]) {
                double d;

                if (spec_node_double(f.val[1], &d) < 0 || !(d >= 0 && d <= 1))
                        node_error(c, f.val[1], "'head_sampling_rate' must be a number from 0 to 1");
                else
                        o->head_sampling_rate = d;
        }
        if (f.val[2]) {
                Fields lf;

                if (!need_mapping(c, "logs", f.val[2]))
                        return;
                fields_parse(c, f.val[2], logs_keys, &lf);
                o->logs_set = true;
                o->logs_enabled = true;
                if (lf.val[0])
                        (void) get_bool(c, "enabled", lf.val[0], &o->logs_enabled);
                if (lf.val[1])
                        (void) get_bool(c, "invocation_logs", lf.val[1], &o->logs_invocation_logs);
        }
}

/* compatibility_date (required, not in the future) and
 * compatibility_flags. */
static void parse_compat(SpecCtx *c, Worker *w, const Fields *f) {
        const SpecNode **nodes = NULL;
        const char *reason;

        if (field_required(c, f, W_COMPAT_DATE) &&
            get_str(c, "compatibility_date", f->val[W_COMPAT_DATE], &w->compatibility_date) &&
            !spec_valid_compat_date(w->compatibility_date, c->now, &reason))
                node_error(c, f->val[W_COMPAT_DATE], "invalid compatibility_date '%s': %s",
                           w->compatibility_date, reason);

        if (f->val[W_COMPAT_FLAGS] &&
            get_strv(c, "compatibility_flags", f->val[W_COMPAT_FLAGS], &w->compatibility_flags, &nodes))
                for (size_t i = 0; w->compatibility_flags[i]; i++) {
                        const char *s = w->compatibility_flags[i];

                        if (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(s))
                                node_error(c, nodes[i], "invalid compatibility flag '%s' "
                                           "(a-z, 0-9 and '_')", s);
                }
}

/* crons: each a valid cron expression. */
static void parse_crons(SpecCtx *c, Worker *w, const SpecNode *v) {
        const SpecNode **nodes = NULL;
        const char *reason;

        if (get_strv(c, "crons", v, &w->crons, &nodes))
                for (size_t i = 0; w->crons[i]; i++)
                        if (!spec_valid_cron(w->crons[i], &reason))
                                node_error(c, nodes[i], "invalid cron expression '%s': %s", w->crons[i], reason);
}

/* tags: at most 128 characters each, no ',' or ':'. */
static void parse_tags(SpecCtx *c, Worker *w, const SpecNode *v) {
        const SpecNode **nodes = NULL;

        if (get_strv(c, "tags", v, &w->tags, &nodes))
                for (size_t i = 0; w->tags[i]; i++)
                        if (strpbrk(w->tags[i], ",:") || strlen(w->tags[i]) > 128)
                                node_error(c, nodes[i], "invalid tag '%s' (at most 128 characters, "
                                           "no ',' or ':')", w->tags[i]);
}

/* durable_objects; a history with errors of its own is not replayed by
 * the validator (that would only repeat them). */
static void parse_worker_durable_objects(SpecCtx *c, Worker *w, const SpecNode *v) {
        size_t before = c->errors->n + c->errors->n_dropped;

        parse_durable_objects(c, w, v);
        if (c->errors->n + c->errors->n_dropped != before &&
            strv_consume(&c->do_broken, strdup(w->name ?: "")) < 0)
                c->oom = true;
}

/* A document as written (each node's type, style and text, never its
 * position), appended to a memstream: a tag byte, then the length or
 * item count as raw bytes, then the text or the items. */
static void node_feed(FILE *f, const SpecNode *n) {
        size_t k;

        if (!n) {
                fputc('~', f);
                return;
        }
        switch (n->type) {
        case SPEC_NODE_SCALAR:
                fputc(n->plain ? 's' : 'q', f);
                fwrite(&n->length, sizeof(n->length), 1, f);
                fwrite(n->value, 1, n->length, f);
                break;
        case SPEC_NODE_SEQUENCE:
        case SPEC_NODE_MAPPING:
                k = n->type == SPEC_NODE_MAPPING ? 2 * n->n_items : n->n_items;
                fputc(n->type == SPEC_NODE_MAPPING ? 'm' : 'l', f);
                fwrite(&k, sizeof(k), 1, f);
                for (size_t i = 0; i < k; i++)
                        node_feed(f, n->items[i]);
                break;
        default:
                break;
        }
}

/* Worker.source_key: the spec directory, the file and the document as
 * written. With the same key and the same modules a worker is the same
 * (its canonical form depends on nothing else), so spec_reload() takes
 * its digest from the generation before. Left empty when it cannot be
 * made: the digest is then computed. */
static void worker_source_key(SpecCtx *c, const SpecNode *doc, char ret[static 65]) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        FILE *f;

        ret[0] = '\0';
        if (!c->reload)
                return;
        f = open_memstream(&buf, &len);
        if (!f)
                return;
        fputs(c->root ?: "", f);
        fputc('\0', f);
        fputs(c->file ?: "", f);
        fputc('\0', f);
        node_feed(f, doc);
        if (fclose(f) != 0)
                return;
        sha256_hex(buf, len, ret);
}

static void parse_worker(SpecCtx *c, const Fields *f) {
        Worker *w = GROW(c, c->g->workers, c->g->n_workers, c->a_workers);
        size_t a_bindings = 0;
        bool b;

        if (!w)
                return;
        worker_source_key(c, f->map, w->source_key);
        w->loc = node_loc(c, f->map);
        w->workers_dev = -1;
        w->observability.head_sampling_rate = -1;
        if (get_str(c, "name", f->val[K_NAME], &w->name)) {
                w->loc = node_loc(c, f->val[K_NAME]);
                if (!spec_valid_script_name(w->name))
                        node_error(c, f->val[K_NAME], "'%s' is not a valid worker name (1-63 characters: "
                                   "a-z, 0-9, '-' and '_', not starting or ending with '-')", w->name);
        }
        parse_policy(c, f, RESOURCE_WORKER, &w->policy);

        if (w->policy.external) {
                for (size_t i = W_MAIN; i <= W_LOGPUSH; i++)
                        if (f->val[i])
                                node_error(c, f->key[i], "'%s' is not allowed on an external Worker",
                                           f->names[i]);
                return;
        }

        if (field_required(c, f, W_MAIN) && get_str(c, "main", f->val[W_MAIN], &w->main_module)) {
                free(w->main_module);
                w->main_module = NULL;
                parse_modules(c, w, f->val[W_MAIN], f->val[W_MODULES]);
        }
        parse_compat(c, w, f);
        if (f->val[W_BINDINGS]) {
                const SpecNode *bs = f->val[W_BINDINGS];

                if (need_mapping(c, "bindings", bs))
                        for (size_t i = 0; i < bs->n_items; i++)
                                parse_binding(c, w, &a_bindings, bs->items[2 * i], bs->items[2 * i + 1]);
        }
        if (f->val[W_CRONS])
                parse_crons(c, w, f->val[W_CRONS]);
        if (f->val[W_WORKERS_DEV] && get_bool(c, "workers_dev", f->val[W_WORKERS_DEV], &b))
                w->workers_dev = b;
        if (f->val[W_CONSUMERS])
                parse_consumers(c, w, f->val[W_CONSUMERS]);
        if (f->val[W_DURABLE_OBJECTS])
                parse_worker_durable_objects(c, w, f->val[W_DURABLE_OBJECTS]);
        if (f->val[W_TAGS])
                parse_tags(c, w, f->val[W_TAGS]);
        if (f->val[W_OBSERVABILITY])
                parse_observability(c, w, f->val[W_OBSERVABILITY]);
        if (f->val[W_LOGPUSH])
                (void) get_bool(c, "logpush", f->val[W_LOGPUSH], &w->logpush);
        SHRINK(w->modules, w->n_modules);
        SHRINK(w->bindings, w->n_bindings);
}

/* ---- resource documents ---- */

static const char *const kv_keys[] = { COMMON_KEYS, "title", "id", NULL };
static const char *const r2_keys[] = {
        COMMON_KEYS, "bucket_name", "jurisdiction", "location_hint", "storage_class", NULL
};
static const char *const d1_keys[] = {
        COMMON_KEYS, "database_name", "id", "location_hint", "jurisdiction", NULL
};
static const char *const queue_keys[] = {
        COMMON_KEYS, "queue_name", "id", "delivery_delay", "message_retention_period", NULL
};
static const char *const store_keys[] = { COMMON_KEYS, "store_name", "id", "default", "managed", NULL };
static const char *const secret_keys[] = {
        COMMON_KEYS, "store", "secret_name", "value", "scopes", "comment", NULL
};

static const char *const location_hints[] = { "apac", "eeur", "enam", "weur", "wnam", "oc", NULL };
static const char *const storage_classes[] = { "Standard", "InfrequentAccess", NULL };
static const char *const r2_doc_jurisdictions[] = { "eu", "fedramp", NULL };
static const char *const d1_jurisdictions[] = { "eu", "fedramp", NULL };
static const char *const secret_scopes[] = {
        "workers", "ai_gateway", "dex", "access", "containers", "websearch", NULL
};

/* name: required, a valid reference name. Returns the name node. */
static const SpecNode *doc_name(SpecCtx *c, const Fields *f, char **dest, Location *loc) {
        *loc = node_loc(c, f->map);
        if (!get_str(c, "name", f->val[K_NAME], dest))
                return NULL;
        *loc = node_loc(c, f->val[K_NAME]);
        if (!valid_ref_name(*dest)) {
                node_error(c, f->val[K_NAME], "'%s' is not a valid document name (letters, digits, "
                           "'.', '_' and '-', starting with a letter or digit)", *dest);
                return NULL;
        }
        return f->val[K_NAME];
}

/* The Cloudflare-side name: the given key, or the document name. Returns
 * the node it came from (for error locations). */
static const SpecNode *cf_name(SpecCtx *c, const Fields *f, size_t idx, const char *doc_name_value,
                               const SpecNode *name_node, char **dest) {
        if (f->val[idx]) {
                if (!get_str(c, f->names[idx], f->val[idx], dest))
                        return NULL;
                return f->val[idx];
        }
        if (!doc_name_value)
                return NULL;
        *dest = sdup(c, doc_name_value);
        return name_node;
}

static void parse_kv(SpecCtx *c, const Fields *f) {
        KVNamespace *k = GROW(c, c->g->kv_namespaces, c->g->n_kv_namespaces, c->a_kv);
        const SpecNode *nn, *tn;

        if (!k)
                return;
        nn = doc_name(c, f, &k->name, &k->loc);
        parse_policy(c, f, RESOURCE_KV_NAMESPACE, &k->policy);
        tn = cf_name(c, f, _K_COMMON_MAX, k->name, nn, &k->title);
        if (tn && k->title && !spec_valid_kv_title(k->title))
                node_error(c, tn, "'%s' is not a valid KV namespace title (1-512 bytes, no control "
                           "characters)", k->title);
        if (f->val[_K_COMMON_MAX + 1] && get_str(c, "id", f->val[_K_COMMON_MAX + 1], &k->id))
                (void) check_kv_id(c, f->val[_K_COMMON_MAX + 1], k->id);
        check_id_external(c, f, _K_COMMON_MAX + 1, &k->policy);
}

static void parse_r2(SpecCtx *c, const Fields *f) {
        R2Bucket *b = GROW(c, c->g->r2_buckets, c->g->n_r2_buckets, c->a_r2);
        const SpecNode *nn, *bn;
        size_t o = _K_COMMON_MAX;

        if (!b)
                return;
        nn = doc_name(c, f, &b->name, &b->loc);
        parse_policy(c, f, RESOURCE_R2_BUCKET, &b->policy);
        bn = cf_name(c, f, o, b->name, nn, &b->bucket_name);
        if (bn && b->bucket_name && !spec_valid_bucket_name(b->bucket_name))
                node_error(c, bn, "'%s' is not a valid R2 bucket name (3-63 characters: a-z, 0-9 and "
                           "'-', starting and ending with a letter or digit)", b->bucket_name);
        if (f->val[o + 1])
                (void) get_choice(c, "jurisdiction", f->val[o + 1], r2_doc_jurisdictions, &b->jurisdiction);
        if (f->val[o + 2])
                (void) get_choice(c, "location_hint", f->val[o + 2], location_hints, &b->location_hint);
        if (f->val[o + 3])
                (void) get_choice(c, "storage_class", f->val[o + 3], storage_classes, &b->storage_class);
}

static void parse_d1(SpecCtx *c, const Fields *f) {
        D1Database *d = GROW(c, c->g->d1_databases, c->g->n_d1_databases, c->a_d1);
        const SpecNode *nn, *dn;
        size_t o = _K_COMMON_MAX;

        if (!d)
                return;
        nn = doc_name(c, f, &d->name, &d->loc);
        parse_policy(c, f, RESOURCE_D1_DATABASE, &d->policy);
        dn = cf_name(c, f, o, d->name, nn, &d->database_name);
        if (dn && d->database_name && !spec_valid_queue_name(d->database_name))
                node_error(c, dn, "'%s' is not a valid D1 database name (1-63 characters: a-z, 0-9, "
                           "'-' and '_')", d->database_name);
        if (f->val[o + 1] && get_str(c, "id", f->val[o + 1], &d->id))
                (void) check_d1_id(c, f->val[o + 1], d->id);
        check_id_external(c, f, o + 1, &d->policy);
        if (f->val[o + 2])
                (void) get_choice(c, "location_hint", f->val[o + 2], location_hints, &d->location_hint);
        if (f->val[o + 3])
                (void) get_choice(c, "jurisdiction", f->val[o + 3], d1_jurisdictions, &d->jurisdiction);
}

static void parse_queue(SpecCtx *c, const Fields *f) {
        Queue *q = GROW(c, c->g->queues, c->g->n_queues, c->a_queues);
        const SpecNode *nn, *qn;
        size_t o = _K_COMMON_MAX;

        if (!q)
                return;
        q->delivery_delay = q->message_retention_period = -1;
        nn = doc_name(c, f, &q->name, &q->loc);
        parse_policy(c, f, RESOURCE_QUEUE, &q->policy);
        qn = cf_name(c, f, o, q->name, nn, &q->queue_name);
        if (qn && q->queue_name && !spec_valid_queue_name(q->queue_name))
                node_error(c, qn, "'%s' is not a valid queue name (1-63 characters: a-z, 0-9, '-' "
                           "and '_')", q->queue_name);
        if (f->val[o + 1] && get_str(c, "id", f->val[o + 1], &q->id))
                (void) (binding_valid_hex32(q->id) ||
                        (node_error(c, f->val[o + 1], "queue id '%s' must be 32 hexadecimal characters",
                                    q->id), false));
        check_id_external(c, f, o + 1, &q->policy);
        if (f->val[o + 2])
                (void) get_int(c, "delivery_delay", f->val[o + 2], 0, 43200, &q->delivery_delay);
        if (f->val[o + 3])
                (void) get_int(c, "message_retention_period", f->val[o + 3], 60, 1209600,
                               &q->message_retention_period);
}

static void parse_store(SpecCtx *c, const Fields *f) {
        SecretsStore *s = GROW(c, c->g->secrets_stores, c->g->n_secrets_stores, c->a_stores);
        const SpecNode *nn, *sn;
        size_t o = _K_COMMON_MAX;
        bool managed = false;

        if (!s)
                return;
        nn = doc_name(c, f, &s->name, &s->loc);
        parse_policy(c, f, RESOURCE_SECRETS_STORE, &s->policy);
        sn = cf_name(c, f, o, s->name, nn, &s->store_name);
        if (sn && s->store_name && !valid_ref_name(s->store_name))
                node_error(c, sn, "'%s' is not a valid Secrets Store name (letters, digits, '.', '_' "
                           "and '-')", s->store_name);
        if (f->val[o + 2])
                (void) get_bool(c, "default", f->val[o + 2], &s->is_default);
        if (f->val[o + 3])
                (void) get_bool(c, "managed", f->val[o + 3], &managed);
        if (managed && f->val[K_EXTERNAL] && s->policy.external)
                node_error(c, f->key[o + 3], "'managed: true' and 'external: true' exclude each other");
        if (f->val[K_EXTERNAL] && !s->policy.external && !managed)
                node_error(c, f->key[K_EXTERNAL], "a SecretsStore is external unless 'managed: true'; "
                           "'external: false' alone is not enough");
        s->policy.external = !managed;
        if (f->val[o + 1]) {
                if (managed)
                        node_error(c, f->key[o + 1], "'id' names an existing store; it cannot be "
                                   "combined with 'managed: true'");
                else if (get_str(c, "id", f->val[o + 1], &s->id) && !binding_valid_hex32(s->id))
                        node_error(c, f->val[o + 1], "Secrets Store id '%s' must be 32 hexadecimal "
                                   "characters", s->id);
        }
        if (!managed && (f->val[K_ADOPT] || f->val[K_DELETION_POLICY] || f->val[K_DRIFT])) {
                size_t k = f->val[K_ADOPT] ? K_ADOPT : f->val[K_DELETION_POLICY] ? K_DELETION_POLICY : K_DRIFT;

                node_error(c, f->key[k], "'%s' needs 'managed: true' (an external store is never changed)",
                           f->names[k]);
        }
}

static void parse_secret(SpecCtx *c, const Fields *f) {
        SecretsStoreSecret *s = GROW(c, c->g->secrets_store_secrets, c->g->n_secrets_store_secrets, c->a_secrets);
        const SpecNode *nn, *sn, **nodes = NULL;
        size_t o = _K_COMMON_MAX;

        if (!s)
                return;
        nn = doc_name(c, f, &s->name, &s->loc);
        parse_policy(c, f, RESOURCE_SECRETS_STORE_SECRET, &s->policy);
        if (f->val[o])
                (void) get_str(c, "store", f->val[o], &s->store);
        sn = cf_name(c, f, o + 1, s->name, nn, &s->secret_name);
        if (sn && s->secret_name && !valid_ref_name(s->secret_name))
                node_error(c, sn, "'%s' is not a valid secret name", s->secret_name);
        if (f->val[o + 2])
                (void) parse_secret_ref(c, "value", f->val[o + 2], &s->value);
        else if (!s->policy.external)
                (void) field_required(c, f, o + 2);
        if (f->val[o + 3] && get_strv(c, "scopes", f->val[o + 3], &s->scopes, &nodes)) {
                for (size_t i = 0; s->scopes[i]; i++) {
                        bool ok = false;

                        for (const char *const *k = secret_scopes; *k; k++)
                                ok = ok || streq(*k, s->scopes[i]);
                        if (!ok)
                                node_error(c, nodes[i], "unknown scope '%s' (workers, ai_gateway, dex, "
                                           "access, containers, websearch)", s->scopes[i]);
                }
                if (!s->scopes[0])
                        node_error(c, f->val[o + 3], "'scopes' must not be empty");
        }
        if (!s->scopes && strv_extend(&s->scopes, "workers") < 0)
                c->oom = true;
        strv_sort_uniq(s->scopes);
        if (f->val[o + 4])
                (void) get_str(c, "comment", f->val[o + 4], &s->comment);
}

/* ---- documents and files ---- */

static const char *const kind_names[] = {
        "Worker", "KVNamespace", "R2Bucket", "D1Database", "Queue", "SecretsStore",
        "SecretsStoreSecret", NULL
};

static void parse_document(SpecCtx *c, const SpecNode *root) {
        static const char *const *const keys[_RESOURCE_KIND_MAX] = {
                [RESOURCE_WORKER] = worker_keys,
                [RESOURCE_KV_NAMESPACE] = kv_keys,
                [RESOURCE_R2_BUCKET] = r2_keys,
                [RESOURCE_D1_DATABASE] = d1_keys,
                [RESOURCE_QUEUE] = queue_keys,
                [RESOURCE_SECRETS_STORE] = store_keys,
                [RESOURCE_SECRETS_STORE_SECRET] = secret_keys,
        };
        const SpecNode *kn, *kk = NULL, *nn;
        ResourceKind kind;
        Fields f;

        if (root->type != SPEC_NODE_MAPPING) {
                node_error(c, root, "a document must be a mapping with 'kind' and 'name', not %s",
                           spec_node_describe(root));
                return;
        }
        kn = spec_node_get(root, "kind", &kk);
        if (!kn) {
                node_error(c, root, "missing required key 'kind'");
                return;
        }
        if (kn->type != SPEC_NODE_SCALAR || spec_node_is_null(kn)) {
                node_error(c, kn, "'kind' must be a string, not %s", spec_node_describe(kn));
                return;
        }
        kind = resource_kind_from_string(kn->value);
        if (kind < 0) {
                const char *hint = ctx_suggest(c, kn->value, kind_names);

                if (hint)
                        node_error(c, kn, "unknown kind '%s' (did you mean '%s'?)", kn->value, hint);
                else
                        node_error(c, kn, "unknown kind '%s' (Worker, KVNamespace, R2Bucket, D1Database, "
                                   "Queue, SecretsStore, SecretsStoreSecret)", kn->value);
                return;
        }
        fields_parse(c, root, keys[kind], &f);
        nn = f.val[K_NAME];
        if (!nn) {
                node_error(c, root, "missing required key 'name'");
                return;
        }
        switch (kind) {
        case RESOURCE_WORKER:
                parse_worker(c, &f);
                break;
        case RESOURCE_KV_NAMESPACE:
                parse_kv(c, &f);
                break;
        case RESOURCE_R2_BUCKET:
                parse_r2(c, &f);
                break;
        case RESOURCE_D1_DATABASE:
                parse_d1(c, &f);
                break;
        case RESOURCE_QUEUE:
                parse_queue(c, &f);
                break;
        case RESOURCE_SECRETS_STORE:
                parse_store(c, &f);
                break;
        case RESOURCE_SECRETS_STORE_SECRET:
                parse_secret(c, &f);
                break;
        default:
                break;
        }
}

/* One document of a file that parsed without errors. Stops the file at
 * the directory's document limit or when out of memory. */
static int parse_file_document(const SpecNode *doc, void *userdata) {
        SpecCtx *c = userdata;

        if (c->oom)
                return -ENOMEM;
        if (!doc || spec_node_is_null(doc))
                return 0;
        if (c->n_documents >= c->limits->max_documents) {
                if (!c->documents_exceeded)
                        node_error(c, doc, "too many documents in the spec directory "
                                   "(limit %zu)", c->limits->max_documents);
                c->documents_exceeded = true;
                return -ECANCELED;
        }
        c->n_documents++;
        parse_document(c, doc);
        return 0;
}

static void parse_file(SpecCtx *c, const char *rel) {
        _cleanup_free_ char *buf = NULL;
        SpecYamlLimits yl = {
                .max_depth = c->limits->max_depth,
                .max_nodes = c->limits->max_file_size, /* a node takes at least one byte */
                .max_documents = c->limits->max_documents,
        };
        SpecYamlErrors ye = {};
        size_t size = 0;
        const char *slash;
        int r;

        c->file = rel;
        free(c->file_dir);
        slash = strrchr(rel, '/');
        c->file_dir = slash ? strndup(rel, (size_t) (slash - rel)) : strdup("");
        if (!c->file_dir) {
                c->oom = true;
                return;
        }
        if (!spec_read_file(c, rel, &buf, &size))
                return;
        /* Twice: first only checked (a file with a YAML error gives none
         * of its documents), then each document parsed into the model as
         * it ends and freed, so a file's tree is never whole in memory
         * (22 MB for 10,000 workers in one file). */
        r = spec_yaml_parse_each(buf, size, &yl, NULL, NULL, &ye);
        for (size_t i = 0; i < ye.n; i++)
                spec_errorf(c, rel, ye.errors[i].line, ye.errors[i].column, "%s", ye.errors[i].message);
        spec_yaml_errors_done(&ye);
        if (r == -ENOMEM) {
                c->oom = true;
                return;
        }
        if (r < 0)
                return;
        r = spec_yaml_parse_each(buf, size, &yl, parse_file_document, c, &ye);
        spec_yaml_errors_done(&ye);     /* the same text: none */
        if (r == -ENOMEM)
                c->oom = true;
}

static int cmp_strp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* ---- the whole load ---- */

typedef struct SortedError {
        SpecError e;
        size_t seq;
} SortedError;

static int cmp_sorted_error(const void *a, const void *b) {
        const SortedError *x = a, *y = b;
        int r = strcmp(x->e.file, y->e.file);

        if (r != 0)
                return r;
        if (x->e.line != y->e.line)
                return x->e.line < y->e.line ? -1 : 1;
        if (x->e.column != y->e.column)
                return x->e.column < y->e.column ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorts errors[from..n) by file, line, column, keeping the found order
 * for ties. */
static int sort_errors(SpecErrors *e, size_t from) {
        _cleanup_free_ SortedError *t = NULL;
        size_t n = e->n - from;

        if (n < 2)
                return 0;
        t = calloc(n, sizeof(SortedError));
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                t[i] = (SortedError) { .e = e->errors[from + i], .seq = i };
        qsort(t, n, sizeof(SortedError), cmp_sorted_error);
        for (size_t i = 0; i < n; i++)
                e->errors[from + i] = t[i].e;
        return 0;
}

static int spec_load_full(const char *spec_dir, const SpecLimits *limits, const SpecGrant *grant,
                          bool reload, const Generation *prev, Generation **ret, SpecErrors *errors) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_strv_free_ char **files = NULL;
        SpecCtx c = { .limits = limits, .errors = errors, .root_fd = -EBADF, .grant = grant,
                      .now = limits->now ?: time(NULL), .reload = reload,
                      .prev = prev && prev->sorted ? prev : NULL };
        size_t first = errors->n, dropped = errors->n_dropped, n_files = 0;
        struct stat st;
        int r;

        g = calloc(1, sizeof(Generation));
        if (!g)
                return -ENOMEM;
        c.g = g;
        c.root = realpath(spec_dir, NULL);
        if (!c.root || stat(c.root, &st) < 0) {
                r = -errno;
                spec_errorf(&c, "", 0, 0, "cannot open spec directory '%s': %s", spec_dir, strerror(-r));
                free(c.root);
                return r;
        }
        if (!S_ISDIR(st.st_mode)) {
                spec_errorf(&c, "", 0, 0, "spec directory '%s' is not a directory", spec_dir);
                free(c.root);
                return -ENOTDIR;
        }
        c.root_fd = open(c.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        g->spec_dir = strdup(c.root);
        if (!g->spec_dir)
                c.oom = true;

        spec_scan_dir(&c, "", 0, &files, &n_files);
        errors->n_files = n_files;
        if (files)
                qsort(files, strv_length(files), sizeof(char *), cmp_strp);
        g->files = TAKE_PTR(files);
        if (!g->files) {
                g->files = calloc(1, sizeof(char *));
                if (!g->files)
                        c.oom = true;
        }
        for (size_t i = 0; !c.oom && g->files[i]; i++)
                parse_file(&c, g->files[i]);
        if (!c.oom)
                spec_validate_generation(&c);
        if (!c.oom && errors->n == first && errors->n_dropped == dropped) {
                shrink_generation(&c);
                r = spec_finalize_generation(&c);
                if (r == -ENOMEM)
                        c.oom = true;
        }
        free(c.root);
        if (c.root_fd >= 0)
                (void) close(c.root_fd);
        free(c.file_dir);
        strv_free(c.do_broken);
        if (c.modules_read)
                lh_table_free(c.modules_read);
        if (c.oom)
                return -ENOMEM;
        if (sort_errors(errors, first) < 0)
                return -ENOMEM;
        if (errors->n != first || errors->n_dropped != dropped)
                return -EINVAL;
        g->loaded_usec = now_realtime_usec();
        *ret = TAKE_PTR(g);
        return 0;
}

int spec_load_with_limits(const char *spec_dir, const SpecLimits *limits,
                          Generation **ret, SpecErrors *errors) {
        return spec_load_full(spec_dir, limits, NULL, false, NULL, ret, errors);
}

int spec_load_granted(const char *spec_dir, const SpecGrant *grant, Generation **ret, SpecErrors *errors) {
        return spec_load_full(spec_dir, &spec_limits_default, grant, false, NULL, ret, errors);
}

int spec_reload(const char *spec_dir, const SpecGrant *grant, const Generation *prev, Generation **ret,
                SpecErrors *errors) {
        return spec_load_full(spec_dir, &spec_limits_default, grant, true, prev, ret, errors);
}

int spec_load(const char *spec_dir, Generation **ret, SpecErrors *errors) {
        return spec_load_with_limits(spec_dir, &spec_limits_default, ret, errors);
}

/* ---- the tables above, for the JSON Schema (spec-grammar.h) ---- */

static const char *const *const document_keys[_RESOURCE_KIND_MAX] = {
        [RESOURCE_WORKER] = worker_keys,
        [RESOURCE_KV_NAMESPACE] = kv_keys,
        [RESOURCE_R2_BUCKET] = r2_keys,
        [RESOURCE_D1_DATABASE] = d1_keys,
        [RESOURCE_QUEUE] = queue_keys,
        [RESOURCE_SECRETS_STORE] = store_keys,
        [RESOURCE_SECRETS_STORE_SECRET] = secret_keys,
};


const SpecGrammar spec_grammar = {
        .kind_names = kind_names,
        .document_keys = document_keys,
        .secret_ref_keys = secret_ref_keys,
        .module_keys = module_keys,
        .module_types = module_type_choices,
        .consumer_keys = consumer_keys,
        .consumer_settings_keys = consumer_settings_keys,
        .do_section_keys = do_section_keys,
        .do_class_keys = do_class_keys,
        .do_storage = storage_choices,
        .migration_keys = migration_keys,
        .rename_keys = rename_keys,
        .observability_keys = observability_keys,
        .logs_keys = logs_keys,
        .deletion_policies = deletion_choices,
        .drift_policies = drift_choices,
        .location_hints = location_hints,
        .r2_storage_classes = storage_classes,
        .r2_jurisdictions = r2_doc_jurisdictions,
        .r2_binding_jurisdictions = r2_jurisdictions,
        .d1_jurisdictions = d1_jurisdictions,
        .secret_scopes = secret_scopes,
};
