/* import.c: wrangler configurations → bindery spec files (import.h,
 * binderyd(8) "import", bindery-spec(5) for what is written). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "binding-kinds.h"
#include "import.h"
#include "spec.h"
#include "util.h"

/* The largest max_batch_timeout taken from a wrangler config: a day, far
 * past what Cloudflare accepts (the validator says so), well inside a
 * conversion to milliseconds. */
#define IMPORT_MAX_BATCH_TIMEOUT_SEC 86400.0

/* ---- small helpers ---- */

static inline const char *strempty(const char *s) {
        return s ?: "";
}

typedef struct Buf {
        char *data;
        size_t size;
        FILE *f;
} Buf;

static int buf_open(Buf *b) {
        *b = (Buf) {};
        b->f = open_memstream(&b->data, &b->size);
        return b->f ? 0 : -ENOMEM;
}

/* Closes the stream; returns the text (caller frees) or NULL on OOM. */
static char *buf_steal(Buf *b) {
        if (!b->f)
                return NULL;
        if (fclose(b->f) != 0) {
                b->f = NULL;
                free(b->data);
                return NULL;
        }
        b->f = NULL;
        return TAKE_PTR(b->data);
}

static void buf_done(Buf *b) {
        if (b->f)
                (void) fclose(b->f);
        b->f = NULL;
        free(b->data);
        b->data = NULL;
}

static const char *json_str(json_object *o) {
        return json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* A YAML scalar for s: plain when unambiguous, else double-quoted (JSON
 * escapes are YAML escapes). */
static void put_scalar(FILE *f, const char *s) {
        static const char *const special[] = {
                "true", "false", "null", "True", "False", "Null", "TRUE", "FALSE", "NULL",
                "yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES", "NO", "ON", "OFF",
        };
        bool plain = *s && (isalpha((unsigned char) *s) || *s == '_');
        json_object *j;

        for (const char *p = s; plain && *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("_./-", *p))
                        plain = false;
        for (size_t i = 0; plain && i < ELEMENTSOF(special); i++)
                if (streq(s, special[i]))
                        plain = false;
        if (plain) {
                fputs(s, f);
                return;
        }
        j = json_object_new_string(s);
        fputs(j ? json_str(j) : "\"\"", f);
        json_object_put(j);
}

/* [a, b] with scalars. */
static void put_strv(FILE *f, char *const *l) {
        fputc('[', f);
        for (size_t i = 0; l && l[i]; i++) {
                if (i > 0)
                        fputs(", ", f);
                put_scalar(f, l[i]);
        }
        fputc(']', f);
}

static json_object *get(json_object *o, const char *key) {
        json_object *v = NULL;

        if (!o || !json_object_is_type(o, json_type_object))
                return NULL;
        return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* The length of an array; 0 for anything else. */
static size_t alen(json_object *o) {
        return json_object_is_type(o, json_type_array) ? json_object_array_length(o) : 0;
}

static const char *get_string(json_object *o, const char *key) {
        json_object *v = get(o, key);

        return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool in_list(const char *s, const char *const *l) {
        for (; *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

/* A name written as a plain YAML scalar as is: letters, digits, '_', '.'
 * and '-', starting with a letter, digit or '_', and not a word YAML
 * reads as null or a boolean. */
static bool any_name(const char *s) {
        static const char *const words[] = { "null", "true", "false", "Null", "True", "False", "NULL",
                                             "TRUE", "FALSE", NULL };

        if (isempty(s) || strlen(s) > 255 || !(isalnum((unsigned char) s[0]) || s[0] == '_') ||
            in_list(s, words))
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("_.-", *s))
                        return false;
        return true;
}

/* ---- resources ---- */

typedef enum ResKind {
        RES_KV,
        RES_R2,
        RES_D1,
        RES_QUEUE,
        RES_STORE,
        _RES_MAX,
} ResKind;

struct ImportResource {
        ResKind kind;
        char *name;
        char *body;                 /* the document after kind and name */
        char *origin;               /* where it was first named */
};

/* ---- one worker being built ---- */

typedef struct Ctx {
        ImportRun *run;
        const ImportSource *src;
        json_object *lines;
        json_object *eff;           /* the worker's effective configuration */
        json_object *base;          /* key -> path prefix ("" or "env.NAME") */
        const char *env;            /* NULL at the top level */
        char *worker;
        char **binding_lines;       /* "NAME\t<line>" to sort */
        char **kept;                /* comment lines for what cannot be expressed */
        char **placeholders;        /* secret placeholders (comments in bindings) */
        char *consumers;            /* the consumers section's items */
        char **own_classes;         /* classes after replaying migrations */
        bool *own_sqlite;
        size_t n_own;
        bool oom;
} Ctx;

/* The key path of key inside the effective configuration. */
static char *path_of(Ctx *c, const char *key, const char *rest) {
        const char *base = NULL;
        json_object *b = get(c->base, key);
        char *p = NULL;

        if (b)
                base = json_object_get_string(b);
        if (asprintf(&p, "%s%s%s%s", isempty(base) ? "" : base, isempty(base) ? "" : ".", key, rest ?: "") < 0) {
                c->oom = true;
                return NULL;
        }
        return p;
}

/* "FILE:LINE" (TOML), or "FILE" when the line is unknown (JSON). */
static char *where(Ctx *c, const char *path) {
        json_object *l = path ? get(c->lines, path) : NULL;
        char *s = NULL;
        int r;

        if (l)
                r = asprintf(&s, "%s:%d", c->src->display, json_object_get_int(l));
        else
                r = asprintf(&s, "%s", c->src->display);
        if (r < 0) {
                c->oom = true;
                return NULL;
        }
        return s;
}

static void note_add(ImportRun *run, bool error, char *text, bool *oom) {
        ImportNote *n;

        if (!text) {
                *oom = true;
                return;
        }
        n = reallocarray(run->notes, run->n_notes + 1, sizeof(ImportNote));
        if (!n) {
                free(text);
                *oom = true;
                return;
        }
        run->notes = n;
        run->notes[run->n_notes++] = (ImportNote) { .text = text, .error = error };
        if (error)
                run->n_errors++;
}

/* A note about path: "FILE:LINE: path: msg" or "FILE: path: msg". */
static void _printf_(4, 5) note(Ctx *c, bool error, const char *path, const char *fmt, ...) {
        _cleanup_free_ char *w = where(c, path), *m = NULL;
        char *t = NULL;
        va_list ap;
        int r;

        if (!w)
                return;
        va_start(ap, fmt);
        r = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (r < 0 || asprintf(&t, "%s: %s%s%s", w, strempty(path), path ? ": " : "", m) < 0) {
                c->oom = true;
                return;
        }
        note_add(c->run, error, t, &c->oom);
}

/* Keys whose values may be credentials are kept without their value. */
static bool credential_like(const char *path) {
        static const char *const words[] = { "connection", "password", "secret", "token", "credential", NULL };
        _cleanup_free_ char *low = strdup(path);

        if (!low)
                return true;
        for (char *p = low; *p; p++)
                *p = (char) tolower((unsigned char) *p);
        for (const char *const *w = words; *w; w++)
                if (strstr(low, *w))
                        return true;
        return false;
}

/* Reports path as inexpressible and keeps it (with its value) as a comment. */
static void keep(Ctx *c, const char *path, json_object *value, const char *why) {
        _cleanup_free_ char *w = where(c, path), *line = NULL;
        const char *v = credential_like(path) ? "(value left out: it may be a credential)"
                                              : json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN |
                                                                                      JSON_C_TO_STRING_NOSLASHESCAPE);

        if (!w)
                return;
        note(c, false, path, "cannot be expressed in bindery%s%s; kept as a comment",
             why ? ": " : "", why ?: "");
        if (asprintf(&line, "#   %s: %s = %s", w, path, v) < 0 || strv_consume(&c->kept, TAKE_PTR(line)) < 0)
                c->oom = true;
}

/* Keeps every key of the object at path (a binding entry, say) that is not
 * in allowed[]. */
static void keep_unknown(Ctx *c, json_object *o, const char *path, const char *const *allowed) {
        if (!json_object_is_type(o, json_type_object))
                return;
        json_object_object_foreach(o, k, v) {
                _cleanup_free_ char *p = NULL;

                if (in_list(k, allowed))
                        continue;
                if (asprintf(&p, "%s.%s", path, k) < 0) {
                        c->oom = true;
                        return;
                }
                keep(c, p, v, NULL);
        }
}

static void add_binding(Ctx *c, const char *name, const char *fmt, ...) _printf_(3, 4);
static void add_binding(Ctx *c, const char *name, const char *fmt, ...) {
        _cleanup_free_ char *body = NULL, *line = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&body, fmt, ap);
        va_end(ap);
        if (r < 0 || asprintf(&line, "%s\t  %s: %s", name, name, body) < 0 ||
            strv_consume(&c->binding_lines, TAKE_PTR(line)) < 0)
                c->oom = true;
}

/* A binding name wrangler gave; bindery needs a JavaScript identifier. */
static const char *binding_name(Ctx *c, json_object *entry, const char *key, const char *path) {
        const char *n = get_string(entry, key);

        if (!n) {
                note(c, true, path, "no '%s'", key);
                return NULL;
        }
        if (!spec_valid_js_identifier(n)) {
                note(c, true, path, "binding name '%s' is not a valid JavaScript identifier", n);
                return NULL;
        }
        return n;
}

/* Declares a resource document; the same (kind, name) twice is one
 * document, and a second one with other settings is reported. */
static void add_resource(Ctx *c, ResKind kind, const char *name, const char *path, const char *fmt, ...)
        _printf_(5, 6);
static void add_resource(Ctx *c, ResKind kind, const char *name, const char *path, const char *fmt, ...) {
        static const char *const kinds[_RES_MAX] = { "KVNamespace", "R2Bucket", "D1Database", "Queue", "SecretsStore" };
        _cleanup_free_ char *body = NULL, *origin = NULL;
        ImportResource *r;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&body, fmt, ap);
        va_end(ap);
        origin = where(c, path);
        if (k < 0 || !origin) {
                c->oom = true;
                return;
        }
        for (size_t i = 0; i < c->run->n_resources; i++) {
                r = &c->run->resources[i];
                if (r->kind != kind || !streq(r->name, name))
                        continue;
                if (!streq(r->body, body))
                        note(c, false, path, "%s '%s' is declared with other settings at %s; the first is kept",
                             kinds[kind], name, r->origin);
                return;
        }
        r = reallocarray(c->run->resources, c->run->n_resources + 1, sizeof(ImportResource));
        if (!r) {
                c->oom = true;
                return;
        }
        c->run->resources = r;
        c->run->resources[c->run->n_resources++] = (ImportResource) {
                .kind = kind, .name = strdup(name), .body = TAKE_PTR(body), .origin = TAKE_PTR(origin),
        };
        r = &c->run->resources[c->run->n_resources - 1];
        if (!r->name)
                c->oom = true;
}

static const char *adopt_line(Ctx *c) {
        return c->run->adopt ? "adopt: true\n" : "";
}

/* The array at key of the effective configuration, or NULL (a value that
 * is not an array is kept and reported). */
static json_object *entries(Ctx *c, const char *key) {
        json_object *a = get(c->eff, key);
        _cleanup_free_ char *p = NULL;

        if (!a || json_object_is_type(a, json_type_array))
                return a;
        p = path_of(c, key, NULL);
        if (p)
                keep(c, p, a, "not an array");
        return NULL;
}

/* for each entry e (with its key path p) of the array at key */
#define FOREACH_ENTRY(c, key, e, p, i)                                                  \
        for (json_object *_a = entries((c), (key)); _a; _a = NULL)                     \
                for (size_t i = 0; i < alen(_a); i++)               \
                        for (json_object *e = json_object_array_get_idx(_a, i); e; e = NULL) \
                                for (char *p = entry_path((c), (key), i); p; free(p), p = NULL)

static char *entry_path(Ctx *c, const char *key, size_t i) {
        char rest[32];

        snprintf(rest, sizeof(rest), "[%zu]", i);
        return path_of(c, key, rest);
}

/* ---- binding kinds ---- */

static bool valid_hex(const char *s, size_t len) {
        if (!s || strlen(s) != len)
                return false;
        for (; *s; s++)
                if (!isxdigit((unsigned char) *s))
                        return false;
        return true;
}

static void import_kv(Ctx *c) {
        static const char *const allowed[] = { "binding", "id", NULL };

        FOREACH_ENTRY(c, "kv_namespaces", e, p, i) {
                const char *b = binding_name(c, e, "binding", p), *id = get_string(e, "id");
                _cleanup_free_ char *doc = NULL;

                if (!b)
                        continue;
                keep_unknown(c, e, p, allowed);
                if (!valid_hex(id, 32)) {
                        keep(c, p, e, id ? "the id is not 32 hexadecimal digits"
                                         : "no id (wrangler provisions the namespace itself); "
                                           "create it, then add a KVNamespace and the binding");
                        continue;
                }
                if (asprintf(&doc, "kv-%s", id) < 0) {
                        c->oom = true;
                        continue;
                }
                add_resource(c, RES_KV, doc, p, "external: true\nid: %s\n", id);
                add_binding(c, b, "{ kv_namespace: %s }", doc);
        }
}

static void import_r2(Ctx *c) {
        static const char *const allowed[] = { "binding", "bucket_name", "jurisdiction", NULL };

        FOREACH_ENTRY(c, "r2_buckets", e, p, i) {
                const char *b = binding_name(c, e, "binding", p), *n = get_string(e, "bucket_name"),
                           *j = get_string(e, "jurisdiction");

                if (!b)
                        continue;
                keep_unknown(c, e, p, allowed);
                if (!n || !spec_valid_bucket_name(n) || !any_name(n)) {
                        keep(c, p, e, n ? "not a valid bucket name"
                                        : "no bucket_name (wrangler provisions the bucket itself)");
                        continue;
                }
                if (j && !streq(j, "eu") && !streq(j, "fedramp")) {
                        if (streq(j, "fedramp-high")) {
                                add_binding(c, b, "{ r2_bucket: { name: %s, jurisdiction: fedramp-high } }", n);
                                continue;
                        }
                        keep(c, p, e, "unknown jurisdiction");
                        continue;
                }
                if (j)
                        add_resource(c, RES_R2, n, p, "%sjurisdiction: %s\n", adopt_line(c), j);
                else
                        add_resource(c, RES_R2, n, p, "%s", adopt_line(c));
                add_binding(c, b, "{ r2_bucket: %s }", n);
        }
}

static bool d1_name_ok(const char *s) {
        size_t l = strlen(s);

        return l >= 1 && l <= 63 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_") == l &&
               isalnum((unsigned char) s[0]) && any_name(s);
}

static void import_d1(Ctx *c) {
        static const char *const allowed[] = { "binding", "database_name", "database_id", NULL };

        FOREACH_ENTRY(c, "d1_databases", e, p, i) {
                const char *b = binding_name(c, e, "binding", p), *n = get_string(e, "database_name"),
                           *id = get_string(e, "database_id");
                _cleanup_free_ char *doc = NULL;

                if (!b)
                        continue;
                keep_unknown(c, e, p, allowed);
                if (n && d1_name_ok(n)) {
                        /* Looked up by name; the id wrangler recorded is not needed. */
                        add_resource(c, RES_D1, n, p, "%s", adopt_line(c));
                        add_binding(c, b, "{ d1: %s }", n);
                        continue;
                }
                if (!n && id && binding_valid_uuid(id)) {
                        if (asprintf(&doc, "d1-%s", id) < 0) {
                                c->oom = true;
                                continue;
                        }
                        add_resource(c, RES_D1, doc, p, "external: true\nid: %s\n", id);
                        add_binding(c, b, "{ d1: %s }", doc);
                        continue;
                }
                keep(c, p, e, n ? "not a valid D1 database name" : "neither a database_name nor a database id");
        }
}

static bool queue_name_ok(const char *s) {
        return s && spec_valid_queue_name(s) && isalnum((unsigned char) s[0]) && any_name(s);
}

/* The keys of table t (at tpath) other than skip_a and skip_b are kept
 * as they are. */
static int keep_other_keys(Ctx *c, json_object *t, const char *tpath, const char *skip_a, const char *skip_b) {
        json_object_object_foreach(t, k, v) {
                _cleanup_free_ char *kp = NULL;

                if (streq(k, skip_a) || (skip_b && streq(k, skip_b)))
                        continue;
                if (asprintf(&kp, "%s.%s", tpath, k) < 0) {
                        c->oom = true;
                        return -ENOMEM;
                }
                keep(c, kp, v, NULL);
        }
        return 0;
}

/* queues.producers: a queue binding each, the queue adopted. */
static int import_queue_producers(Ctx *c, json_object *q, const char *qpath) {
        static const char *const allowed[] = { "binding", "queue", NULL };

        for (size_t i = 0, n = alen(get(q, "producers")); i < n; i++) {
                json_object *e = json_object_array_get_idx(get(q, "producers"), i);
                _cleanup_free_ char *p = NULL;
                const char *b, *name;

                if (asprintf(&p, "%s.producers[%zu]", qpath, i) < 0) {
                        c->oom = true;
                        return -ENOMEM;
                }
                b = binding_name(c, e, "binding", p);
                if (!b)
                        continue;
                keep_unknown(c, e, p, allowed);
                name = get_string(e, "queue");
                if (!queue_name_ok(name)) {
                        keep(c, p, e, "no valid queue name");
                        continue;
                }
                add_resource(c, RES_QUEUE, name, p, "%s", adopt_line(c));
                add_binding(c, b, "{ queue: %s }", name);
        }
        return 0;
}

/* One queues.consumers entry (at p) as a line of the worker's consumers:
 * its queue and dead-letter queue adopted, wrangler's settings renamed. */
static void import_queue_consumer(Ctx *c, json_object *e, const char *p, FILE *f) {
        static const char *const allowed[] = {
                "queue", "max_batch_size", "max_batch_timeout", "max_retries", "dead_letter_queue",
                "max_concurrency", "retry_delay", "type", NULL
        };
        const char *name = get_string(e, "queue"), *dlq = get_string(e, "dead_letter_queue"),
                   *type = get_string(e, "type");
        json_object *x;

        if (type && !streq(type, "worker")) {
                keep(c, p, e, "only worker consumers are supported, not pull consumers");
                return;
        }
        if (!queue_name_ok(name) || (dlq && !queue_name_ok(dlq))) {
                keep(c, p, e, "no valid queue name");
                return;
        }
        keep_unknown(c, e, p, allowed);
        add_resource(c, RES_QUEUE, name, p, "%s", adopt_line(c));
        fprintf(f, "  - { queue: %s", name);
        if ((x = get(e, "max_batch_size")) && json_object_is_type(x, json_type_int))
                fprintf(f, ", batch_size: %d", json_object_get_int(x));
        if ((x = get(e, "max_retries")) && json_object_is_type(x, json_type_int))
                fprintf(f, ", max_retries: %d", json_object_get_int(x));
        if ((x = get(e, "max_batch_timeout")) &&
            (json_object_is_type(x, json_type_int) || json_object_is_type(x, json_type_double))) {
                double sec = json_object_get_double(x);

                /* Seconds; anything no spec could hold stays a comment
                 * (and never reaches a conversion it would overflow). */
                if (sec >= 0 && sec <= IMPORT_MAX_BATCH_TIMEOUT_SEC)
                        fprintf(f, ", max_wait_time_ms: %lld", (long long) (sec * 1000.0 + 0.5));
                else {
                        _cleanup_free_ char *kp = NULL;

                        if (asprintf(&kp, "%s.max_batch_timeout", p) < 0)
                                c->oom = true;
                        else
                                keep(c, kp, x, "not a number of seconds from 0 to 86400");
                }
        }
        if ((x = get(e, "max_concurrency")) && json_object_is_type(x, json_type_int))
                fprintf(f, ", max_concurrency: %d", json_object_get_int(x));
        if ((x = get(e, "retry_delay")) && json_object_is_type(x, json_type_int))
                fprintf(f, ", retry_delay: %d", json_object_get_int(x));
        if (dlq) {
                add_resource(c, RES_QUEUE, dlq, p, "%s", adopt_line(c));
                fprintf(f, ", dead_letter_queue: %s", dlq);
        }
        fputs(" }\n", f);
}

static void import_queues(Ctx *c) {
        json_object *q = get(c->eff, "queues");
        Buf cons;
        _cleanup_free_ char *qpath = path_of(c, "queues", NULL);

        if (!q || !qpath)
                return;
        if (!json_object_is_type(q, json_type_object)) {
                keep(c, qpath, q, "not a table");
                return;
        }
        if (keep_other_keys(c, q, qpath, "producers", "consumers") < 0 ||
            import_queue_producers(c, q, qpath) < 0)
                return;
        if (buf_open(&cons) < 0) {
                c->oom = true;
                return;
        }
        for (size_t i = 0, n = alen(get(q, "consumers")); i < n; i++) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s.consumers[%zu]", qpath, i) < 0) {
                        c->oom = true;
                        break;
                }
                import_queue_consumer(c, json_object_array_get_idx(get(q, "consumers"), i), p, cons.f);
        }
        free(c->consumers);
        c->consumers = buf_steal(&cons);
        if (!c->consumers)
                c->oom = true;
        buf_done(&cons);
}

/* The classes this worker exports, as its migrations leave them: a
 * deleted class keeps its slot with an empty name. */
static void own_class_add(Ctx *c, const char *cls, bool sqlite) {
        bool *ns;

        if (strv_extend(&c->own_classes, cls) < 0 ||
            !(ns = reallocarray(c->own_sqlite, c->n_own + 1, sizeof(bool)))) {
                c->oom = true;
                return;
        }
        c->own_sqlite = ns;
        c->own_sqlite[c->n_own++] = sqlite;
}

static void own_class_delete(Ctx *c, const char *cls) {
        for (size_t k = 0; k < c->n_own; k++)
                if (streq(c->own_classes[k], cls))
                        c->own_classes[k][0] = '\0';
}

static void own_class_rename(Ctx *c, const char *from, const char *to) {
        for (size_t k = 0; k < c->n_own; k++)
                if (streq(c->own_classes[k], from)) {
                        char *t = strdup(to);

                        if (!t) {
                                c->oom = true;
                                return;
                        }
                        free(c->own_classes[k]);
                        c->own_classes[k] = t;
                }
}

static bool own_class(Ctx *c, const char *cls) {
        for (size_t k = 0; k < c->n_own; k++)
                if (streq(c->own_classes[k], cls))
                        return true;
        return false;
}

/* A migration's new_sqlite_classes, new_classes and deleted_classes, as
 * written and replayed. False when it has none. */
static bool replay_class_lists(Ctx *c, json_object *m, FILE *f) {
        static const char *const lists[] = { "new_sqlite_classes", "new_classes", "deleted_classes" };
        bool any = false;

        for (size_t l = 0; l < ELEMENTSOF(lists); l++) {
                json_object *a = get(m, lists[l]);
                size_t n = json_object_is_type(a, json_type_array) ? alen(a) : 0;

                if (n == 0)
                        continue;
                any = true;
                fprintf(f, ", %s: [", lists[l]);
                for (size_t j = 0; j < n; j++) {
                        const char *cls = json_object_get_string(json_object_array_get_idx(a, j));

                        fputs(j ? ", " : "", f);
                        put_scalar(f, cls);
                        if (l < 2)
                                own_class_add(c, cls, l == 0);
                        else
                                own_class_delete(c, cls);
                }
                fputc(']', f);
        }
        return any;
}

/* A migration's renamed_classes, as written and replayed. False when it
 * has none. */
static bool replay_renames(Ctx *c, json_object *m, FILE *f) {
        json_object *r = get(m, "renamed_classes");

        if (!json_object_is_type(r, json_type_array) || alen(r) == 0)
                return false;
        fputs(", renamed_classes: [", f);
        for (size_t j = 0; j < alen(r); j++) {
                const char *from = get_string(json_object_array_get_idx(r, j), "from"),
                           *to = get_string(json_object_array_get_idx(r, j), "to");

                fprintf(f, "%s{ from: ", j ? ", " : "");
                put_scalar(f, from ?: "");
                fputs(", to: ", f);
                put_scalar(f, to ?: "");
                fputs(" }", f);
                if (from && to)
                        own_class_rename(c, from, to);
        }
        fputc(']', f);
        return true;
}

/* Durable Objects: bindings, and the migrations as the history whose
 * replay gives the classes this worker exports. */
static void replay_migrations(Ctx *c, Buf *out) {
        static const char *const allowed[] = {
                "tag", "new_classes", "new_sqlite_classes", "renamed_classes", "deleted_classes", NULL
        };

        FOREACH_ENTRY(c, "migrations", m, p, i) {
                const char *tag = get_string(m, "tag");
                bool any;

                if (!tag) {
                        keep(c, p, m, "a migration without a tag");
                        continue;
                }
                keep_unknown(c, m, p, allowed);
                fputs("    - { tag: ", out->f);
                put_scalar(out->f, tag);
                any = replay_class_lists(c, m, out->f);
                any = replay_renames(c, m, out->f) || any;
                fputs(" }\n", out->f);
                if (!any)
                        note(c, false, p, "migration '%s' changes nothing bindery knows", tag);
        }
}

/* One durable_objects.bindings entry (at p): another script's class, or
 * one of this worker's own that a migration creates. */
static void import_do_binding(Ctx *c, json_object *e, const char *p) {
        static const char *const allowed[] = { "name", "class_name", "script_name", "environment", NULL };
        _cleanup_free_ char *sp = NULL, *ep = NULL;
        const char *b, *cls, *script, *env;

        b = binding_name(c, e, "name", p);
        if (!b)
                return;
        keep_unknown(c, e, p, allowed);
        cls = get_string(e, "class_name");
        script = get_string(e, "script_name");
        env = get_string(e, "environment");
        if (!cls || !spec_valid_js_identifier(cls)) {
                keep(c, p, e, "no valid class_name");
                return;
        }
        if (script && streq(script, c->worker))
                script = NULL;
        if (env && !any_name(env)) {
                keep(c, p, e, "not a valid environment name");
                return;
        }
        if (script && (!spec_valid_script_name(script) || !any_name(script))) {
                keep(c, p, e, "not a valid script_name");
                return;
        }
        if (!script && !own_class(c, cls)) {
                keep(c, p, e, "the class is this worker's own but no migration creates it; "
                     "add the migration that did");
                return;
        }
        if ((script && asprintf(&sp, ", script: %s", script) < 0) ||
            (env && asprintf(&ep, ", environment: %s", env) < 0)) {
                c->oom = true;
                return;
        }
        add_binding(c, b, "{ durable_object: { class_name: %s%s%s } }", cls, strempty(sp), strempty(ep));
}

/* The durable_objects table: its bindings imported, other keys kept. */
static void import_do_bindings(Ctx *c, json_object *d, const char *dpath) {
        json_object *bs = get(d, "bindings");

        if (!json_object_is_type(d, json_type_object)) {
                keep(c, dpath, d, "not a table");
                return;
        }
        (void) keep_other_keys(c, d, dpath, "bindings", NULL);
        for (size_t i = 0; json_object_is_type(bs, json_type_array) && i < alen(bs); i++) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s.bindings[%zu]", dpath, i) < 0) {
                        c->oom = true;
                        break;
                }
                import_do_binding(c, json_object_array_get_idx(bs, i), p);
        }
}

/* The worker's durable_objects: the classes its migrations leave, then
 * the migrations (migs, already written). */
static char *put_durable_objects(Ctx *c, const char *migs) {
        Buf out;

        if (buf_open(&out) < 0) {
                c->oom = true;
                return NULL;
        }
        fputs("durable_objects:\n  classes: [", out.f);
        for (size_t k = 0, n = 0; k < c->n_own; k++) {
                if (!c->own_classes[k][0])
                        continue;
                fputs(n++ ? ", " : "", out.f);
                if (c->own_sqlite[k])
                        put_scalar(out.f, c->own_classes[k]);
                else {
                        fputs("{ class_name: ", out.f);
                        put_scalar(out.f, c->own_classes[k]);
                        fputs(", storage: kv }", out.f);
                }
        }
        fprintf(out.f, "]\n  migrations:\n%s", migs);
        return buf_steal(&out);
}

static char *import_durable_objects(Ctx *c) {
        json_object *d = get(c->eff, "durable_objects");
        _cleanup_free_ char *dpath = path_of(c, "durable_objects", NULL), *migs = NULL;
        Buf m;
        bool any = false;

        if (!dpath || buf_open(&m) < 0) {
                c->oom = true;
                return NULL;
        }
        replay_migrations(c, &m);
        migs = buf_steal(&m);
        if (!migs) {
                c->oom = true;
                return NULL;
        }
        if (d)
                import_do_bindings(c, d, dpath);
        for (size_t k = 0; k < c->n_own; k++)
                if (c->own_classes[k][0])
                        any = true;
        if (!any && !*migs)
                return strdup("");
        return put_durable_objects(c, migs);
}

static void import_services(Ctx *c) {
        static const char *const allowed[] = { "binding", "service", "entrypoint", "environment", NULL };

        FOREACH_ENTRY(c, "services", e, p, i) {
                const char *b = binding_name(c, e, "binding", p), *svc = get_string(e, "service"),
                           *ep = get_string(e, "entrypoint"), *env = get_string(e, "environment");
                _cleanup_free_ char *x = NULL, *y = NULL;

                if (!b)
                        continue;
                keep_unknown(c, e, p, allowed);
                if (!svc || !spec_valid_script_name(svc) || !any_name(svc) || (ep && !spec_valid_js_identifier(ep)) ||
                    (env && !any_name(env))) {
                        keep(c, p, e, "not a valid service or entrypoint name");
                        continue;
                }
                if (!ep && !env) {
                        add_binding(c, b, "{ service: %s }", svc);
                        continue;
                }
                if ((ep && asprintf(&x, ", entrypoint: %s", ep) < 0) ||
                    (env && asprintf(&y, ", environment: %s", env) < 0)) {
                        c->oom = true;
                        continue;
                }
                add_binding(c, b, "{ service: { service: %s%s%s } }", svc, strempty(x), strempty(y));
        }
}

static void import_store_secrets(Ctx *c) {
        static const char *const allowed[] = { "binding", "store_id", "secret_name", NULL };

        FOREACH_ENTRY(c, "secrets_store_secrets", e, p, i) {
                const char *b = binding_name(c, e, "binding", p), *store = get_string(e, "store_id"),
                           *secret = get_string(e, "secret_name");
                _cleanup_free_ char *doc = NULL;

                if (!b)
                        continue;
                keep_unknown(c, e, p, allowed);
                if (!valid_hex(store, 32) || !any_name(secret)) {
                        keep(c, p, e, "needs a 32-hex-digit store_id and a secret_name");
                        continue;
                }
                if (asprintf(&doc, "store-%s", store) < 0) {
                        c->oom = true;
                        continue;
                }
                add_resource(c, RES_STORE, doc, p, "id: %s\n", store);
                add_binding(c, b, "{ secrets_store: { store: %s, secret: %s } }", doc, secret);
        }
}

/* Bindings of one key each: a list of {binding, KEY} or one {binding}. */
static void import_simple_list(Ctx *c, const char *key, const char *field, const char *form,
                               bool (*valid)(const char *)) {
        const char *allowed[] = { "binding", field, NULL };

        FOREACH_ENTRY(c, key, e, p, i) {
                const char *b = binding_name(c, e, "binding", p), *v = get_string(e, field);

                if (!b)
                        continue;
                keep_unknown(c, e, p, allowed);
                if (!v || !valid(v)) {
                        keep(c, p, e, "a required value is missing or invalid");
                        continue;
                }
                add_binding(c, b, "{ %s: { %s: %s } }", form, field, v);
        }
}

static bool hyperdrive_id(const char *s) {
        return valid_hex(s, 32);
}

static void import_single(Ctx *c, const char *key, const char *form) {
        static const char *const allowed[] = { "binding", NULL };
        json_object *o = get(c->eff, key);
        _cleanup_free_ char *p = NULL;
        const char *b;

        if (!o)
                return;
        p = path_of(c, key, NULL);
        if (!p)
                return;
        b = binding_name(c, o, "binding", p);
        if (!b)
                return;
        keep_unknown(c, o, p, allowed);
        add_binding(c, b, "{ %s: {} }", form);
}

static void import_workflows(Ctx *c) {
        static const char *const allowed[] = { "binding", "name", "class_name", "script_name", NULL };

        FOREACH_ENTRY(c, "workflows", e, p, i) {
                const char *b = binding_name(c, e, "binding", p), *n = get_string(e, "name"),
                           *cls = get_string(e, "class_name"), *script = get_string(e, "script_name");
                _cleanup_free_ char *sp = NULL;

                if (!b)
                        continue;
                keep_unknown(c, e, p, allowed);
                if (!any_name(n) || !cls || !spec_valid_js_identifier(cls) ||
                    (script && (!spec_valid_script_name(script) || !any_name(script)))) {
                        keep(c, p, e, "needs a name, a class_name and a valid script_name");
                        continue;
                }
                if (script && asprintf(&sp, ", script: %s", script) < 0) {
                        c->oom = true;
                        continue;
                }
                add_binding(c, b, "{ workflow: { name: %s, class_name: %s%s } }", n, cls, strempty(sp));
        }
}

static void import_vars(Ctx *c) {
        json_object *vars = get(c->eff, "vars");
        _cleanup_free_ char *vp = path_of(c, "vars", NULL);

        if (!vars || !vp)
                return;
        if (!json_object_is_type(vars, json_type_object)) {
                keep(c, vp, vars, "not a table");
                return;
        }
        json_object_object_foreach(vars, k, v) {
                _cleanup_free_ char *p = NULL;
                Buf b;

                if (asprintf(&p, "%s.%s", vp, k) < 0) {
                        c->oom = true;
                        return;
                }
                if (!spec_valid_js_identifier(k)) {
                        note(c, true, p, "variable name '%s' is not a valid JavaScript identifier", k);
                        continue;
                }
                if (buf_open(&b) < 0) {
                        c->oom = true;
                        return;
                }
                if (json_object_is_type(v, json_type_string))
                        put_scalar(b.f, json_object_get_string(v));
                else
                        fprintf(b.f, "{ json: %s }", json_str(v));
                {
                        _cleanup_free_ char *t = buf_steal(&b);

                        if (!t)
                                c->oom = true;
                        else
                                add_binding(c, k, "%s", t);
                }
        }
}

/* Secret names: wrangler's "secrets.required", and the names (never the
 * values) in .dev.vars next to the configuration. Each becomes a comment
 * naming the secret: bindery never guesses where a value lives. */
static void add_secret_placeholder(Ctx *c, const char *name, const char *origin) {
        char *line = NULL;

        if (!spec_valid_js_identifier(name))
                return;
        for (size_t i = 0; c->placeholders && c->placeholders[i]; i++)
                if (startswith(c->placeholders[i], name) && c->placeholders[i][strlen(name)] == '\t')
                        return;
        if (asprintf(&line, "%s\t  # %s: { secret: { credential: %s } }  "
                     "# secret from %s: choose a reference (credential, file or env), then uncomment",
                     name, name, name, origin) < 0 || strv_consume(&c->placeholders, line) < 0)
                c->oom = true;
}

static void import_secrets(Ctx *c) {
        json_object *s = get(c->eff, "secrets"), *req = get(s, "required");
        _cleanup_free_ char *sp = path_of(c, "secrets", NULL), *dv = NULL, *text = NULL;
        _cleanup_free_ char *dev = NULL;
        size_t size = 0;

        if (!sp)
                return;
        if (s) {
                if (!json_object_is_type(s, json_type_object))
                        keep(c, sp, s, "not a table");
                else {
                        json_object_object_foreach(s, k, v) {
                                _cleanup_free_ char *kp = NULL;

                                if (streq(k, "required") && json_object_is_type(v, json_type_array))
                                        continue;
                                if (asprintf(&kp, "%s.%s", sp, k) >= 0)
                                        keep(c, kp, v, NULL);
                        }
                }
                for (size_t i = 0; json_object_is_type(req, json_type_array) && i < alen(req); i++)
                        add_secret_placeholder(c, json_object_get_string(json_object_array_get_idx(req, i)),
                                               "secrets.required");
        }
        /* .dev.vars.ENV for an environment, else .dev.vars, as wrangler reads them. */
        if (asprintf(&dev, ".dev.vars%s%s", c->env ? "." : "", strempty(c->env)) < 0) {
                c->oom = true;
                return;
        }
        dv = path_join(c->src->dir, dev);
        if (!dv) {
                c->oom = true;
                return;
        }
        if (read_full_file(dv, 64 * 1024, &text, &size) < 0 && c->env) {
                free(dv);
                dv = path_join(c->src->dir, ".dev.vars");
                if (!dv || read_full_file(dv, 64 * 1024, &text, &size) < 0)
                        return;
                free(dev);
                dev = strdup(".dev.vars");
        }
        if (!text)
                return;
        for (char *line = text, *next; line && *line; line = next) {
                char *eq;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                line += strspn(line, " \t");
                if (startswith(line, "export "))
                        line += 7;
                eq = strchr(line, '=');
                if (*line == '#' || !eq)
                        continue;
                *eq = '\0';
                while (eq > line && isspace((unsigned char) eq[-1]))
                        *--eq = '\0';
                add_secret_placeholder(c, line, dev ?: ".dev.vars");
        }
        explicit_bzero(text, size);
}

/* ---- main module ---- */

/* Whether the module imports anything but cloudflare: and node: built-ins
 * (bare package names, relative files): then it needs wrangler's bundle. */
static bool needs_bundle(const char *text) {
        static const char *const keys[] = { "from", "import", "require(", NULL };

        for (const char *const *k = keys; *k; k++)
                for (const char *p = text; (p = strstr(p, *k)); p += strlen(*k)) {
                        const char *q = p + strlen(*k);
                        char quote;

                        if (p > text && (isalnum((unsigned char) p[-1]) || p[-1] == '_' || p[-1] == '$' || p[-1] == '.'))
                                continue;
                        q += strspn(q, " \t\r\n");
                        if (**k == 'i' && *q == '(')
                                q = q + 1 + strspn(q + 1, " \t\r\n");
                        if (*q != '"' && *q != '\'' && *q != '`')
                                continue;
                        quote = *q++;
                        if (startswith(q, "cloudflare:") || startswith(q, "node:"))
                                continue;
                        if (*q == quote)
                                continue;
                        return true;
                }
        return false;
}

static char *import_main(Ctx *c) {
        const char *m = get_string(c->eff, "main");
        _cleanup_free_ char *mp = path_of(c, "main", NULL), *abs = NULL, *text = NULL, *stem = NULL;
        const char *why = NULL, *base;
        char *ret = NULL, *dot;
        size_t size;
        int r;

        if (!mp)
                return NULL;
        if (!m) {
                note(c, true, mp, "no 'main': bindery uploads ES modules (a Workers Sites or assets-only "
                     "worker cannot be imported)");
                return NULL;
        }
        while (startswith(m, "./"))
                m += 2;
        if (!endswith(m, ".js") && !endswith(m, ".mjs"))
                why = "it is not JavaScript (.js or .mjs)";
        else if (!c->src->rel_dir || strstr(m, "..") || *m == '/')
                why = "it lies outside the output directory";
        else {
                abs = path_join(c->src->dir, m);
                if (!abs) {
                        c->oom = true;
                        return NULL;
                }
                r = read_full_file(abs, IMPORT_MAX_MAIN_SIZE, &text, &size);
                if (r < 0)
                        why = "it cannot be read";
                else if (needs_bundle(text))
                        why = "it imports modules (packages or other files) that need bundling";
        }
        if (!why) {
                if (isempty(c->src->rel_dir))
                        return strdup(m);
                return path_join(c->src->rel_dir, m);
        }
        base = strrchr(m, '/');
        stem = strdup(base ? base + 1 : m);
        if (!stem) {
                c->oom = true;
                return NULL;
        }
        dot = strrchr(stem, '.');
        if (dot && dot != stem)
                *dot = '\0';
        if (asprintf(&ret, "bundles/%s/%s.js", c->worker, stem) < 0) {
                c->oom = true;
                return NULL;
        }
        note(c, false, mp, "main '%s' cannot be uploaded as is (%s); main is '%s', wrangler's bundle: "
             "run 'npx wrangler deploy --dry-run --outdir %s/bundles/%s%s%s' in %s",
             m, why, ret, c->run->output ?: ".", c->worker, c->env ? " --env " : "", strempty(c->env), c->src->dir);
        return ret;
}

/* ---- the worker ---- */

static const char *const handled_keys[] = {
        "name", "main", "compatibility_date", "compatibility_flags", "workers_dev", "triggers", "vars",
        "kv_namespaces", "r2_buckets", "d1_databases", "queues", "durable_objects", "migrations",
        "services", "secrets_store_secrets", "analytics_engine_datasets", "ai", "version_metadata",
        "hyperdrive", "vectorize", "browser", "workflows", "secrets", "observability", "logpush", "env",
        "no_bundle", /* bindery uploads main as is: what no_bundle asks of wrangler */
        NULL
};

/* Keys an environment inherits from the top level, as wrangler does. */
static const char *const inherited_keys[] = {
        "main", "compatibility_date", "compatibility_flags", "workers_dev", "triggers", "migrations",
        "observability", "logpush", "account_id", "route", "routes", "build", "rules", "no_bundle",
        "minify", "keep_names", "placement", "limits", "tail_consumers", "upload_source_maps",
        "usage_model", "preview_urls", "base_dir", "find_additional_modules", "preserve_file_names",
        "tsconfig", "jsx_factory", "jsx_fragment", "node_compat", "first_party_worker", NULL
};

static void put_header(Ctx *c, FILE *f, const char *main_path) {
        json_object *v;

        fprintf(f, "# Imported by 'binderyd import' from %s (%s%s).\n", c->src->display,
                c->env ? "env " : "top level", strempty(c->env));
        fputs("kind: Worker\nname: ", f);
        put_scalar(f, c->worker);
        fputc('\n', f);
        if (c->run->adopt)
                fputs("adopt: true\n", f);
        fputs("main: ", f);
        put_scalar(f, main_path);
        fputs("\ncompatibility_date: ", f);
        put_scalar(f, get_string(c->eff, "compatibility_date") ?: "");
        fputc('\n', f);
        v = get(c->eff, "compatibility_flags");
        if (json_object_is_type(v, json_type_array) && alen(v) > 0) {
                fputs("compatibility_flags: [", f);
                for (size_t i = 0; i < alen(v); i++) {
                        fputs(i ? ", " : "", f);
                        put_scalar(f, json_object_get_string(json_object_array_get_idx(v, i)));
                }
                fputs("]\n", f);
        }
        v = get(c->eff, "workers_dev");
        if (json_object_is_type(v, json_type_boolean))
                fprintf(f, "workers_dev: %s\n", json_object_get_boolean(v) ? "true" : "false");
        v = get(c->eff, "logpush");
        if (json_object_is_type(v, json_type_boolean))
                fprintf(f, "logpush: %s\n", json_object_get_boolean(v) ? "true" : "false");
}

/* Checks the scalar keys put_header() writes; what is wrong is reported. */
static void check_header(Ctx *c) {
        static const char *const obs_keys[] = { "enabled", "head_sampling_rate", "logs", NULL };
        static const char *const logs_keys[] = { "enabled", "invocation_logs", NULL };
        const char *d = get_string(c->eff, "compatibility_date"), *reason;
        _cleanup_free_ char *dp = path_of(c, "compatibility_date", NULL), *fp = path_of(c, "compatibility_flags", NULL),
                             *op = path_of(c, "observability", NULL);
        json_object *v;

        if (!dp || !fp || !op)
                return;
        if (!d)
                note(c, true, dp, "no compatibility_date (wrangler would use today's; bindery needs one fixed)");
        else if (!spec_valid_compat_date(d, time(NULL), &reason))
                note(c, true, dp, "invalid compatibility_date '%s': %s", d, reason);
        v = get(c->eff, "compatibility_flags");
        for (size_t i = 0; json_object_is_type(v, json_type_array) && i < alen(v); i++) {
                const char *s = json_object_get_string(json_object_array_get_idx(v, i));

                if (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(s) || !*s)
                        note(c, true, fp, "invalid compatibility flag '%s'", s);
        }
        v = get(c->eff, "observability");
        if (v) {
                _cleanup_free_ char *lp = NULL;

                keep_unknown(c, v, op, obs_keys);
                if (asprintf(&lp, "%s.logs", op) < 0)
                        c->oom = true;
                else if (get(v, "logs"))
                        keep_unknown(c, get(v, "logs"), lp, logs_keys);
        }
}

static void put_observability(Ctx *c, FILE *f) {
        json_object *v = get(c->eff, "observability"), *x, *logs;
        bool first = true;

        if (!json_object_is_type(v, json_type_object))
                return;
        fputs("observability: {", f);
        if ((x = get(v, "enabled")) && json_object_is_type(x, json_type_boolean)) {
                fprintf(f, " enabled: %s", json_object_get_boolean(x) ? "true" : "false");
                first = false;
        }
        if ((x = get(v, "head_sampling_rate")) &&
            (json_object_is_type(x, json_type_double) || json_object_is_type(x, json_type_int))) {
                fprintf(f, "%s head_sampling_rate: %s", first ? "" : ",", json_object_to_json_string(x));
                first = false;
        }
        logs = get(v, "logs");
        if (json_object_is_type(logs, json_type_object)) {
                bool lf = true;

                fprintf(f, "%s logs: {", first ? "" : ",");
                if ((x = get(logs, "enabled")) && json_object_is_type(x, json_type_boolean)) {
                        fprintf(f, " enabled: %s", json_object_get_boolean(x) ? "true" : "false");
                        lf = false;
                }
                if ((x = get(logs, "invocation_logs")) && json_object_is_type(x, json_type_boolean))
                        fprintf(f, "%s invocation_logs: %s", lf ? "" : ",",
                                json_object_get_boolean(x) ? "true" : "false");
                fputs(" }", f);
        }
        fputs(" }\n", f);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void put_crons(Ctx *c, FILE *f) {
        json_object *t = get(c->eff, "triggers"), *crons = get(t, "crons");
        _cleanup_free_ char *tp = path_of(c, "triggers", NULL);
        _cleanup_strv_free_ char **ok = NULL;
        static const char *const allowed[] = { "crons", NULL };

        if (!t || !tp)
                return;
        keep_unknown(c, t, tp, allowed);
        for (size_t i = 0; json_object_is_type(crons, json_type_array) && i < alen(crons); i++) {
                json_object *e = json_object_array_get_idx(crons, i);
                const char *s = json_object_get_string(e), *reason;
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s.crons[%zu]", tp, i) < 0) {
                        c->oom = true;
                        return;
                }
                if (!json_object_is_type(e, json_type_string) || !spec_valid_cron(s, &reason)) {
                        keep(c, p, e, "a cron expression bindery does not accept (L, W and # are not)");
                        continue;
                }
                if (strv_extend(&ok, s) < 0) {
                        c->oom = true;
                        return;
                }
        }
        if (ok) {
                fputs("crons: ", f);
                put_strv(f, ok);
                fputc('\n', f);
        }
}

/* Every key of the effective configuration: each importer takes its own,
 * the rest is kept as it is. Returns the main module's path (NULL when
 * there is none) and, in *ret_dobj, the durable_objects section. */
static char *import_keys(Ctx *c, char **ret_dobj) {
        char *main_path;

        check_header(c);
        main_path = import_main(c);
        import_vars(c);
        import_secrets(c);
        import_kv(c);
        import_r2(c);
        import_d1(c);
        import_queues(c);
        *ret_dobj = import_durable_objects(c);
        import_services(c);
        import_store_secrets(c);
        import_simple_list(c, "analytics_engine_datasets", "dataset", "analytics_engine", any_name);
        import_simple_list(c, "hyperdrive", "id", "hyperdrive", hyperdrive_id);
        import_simple_list(c, "vectorize", "index_name", "vectorize", any_name);
        import_single(c, "ai", "ai");
        import_single(c, "version_metadata", "version_metadata");
        import_single(c, "browser", "browser");
        import_workflows(c);

        json_object_object_foreach(c->eff, k, v) {
                _cleanup_free_ char *p = NULL;

                if (in_list(k, handled_keys))
                        continue;
                p = path_of(c, k, NULL);
                if (p)
                        keep(c, p, v, NULL);
        }
        return main_path;
}

/* The bindings, sorted by name (a name defined twice is noted), then the
 * placeholders. */
static void put_bindings(Ctx *c, FILE *f) {
        size_t n_b = strv_length(c->binding_lines), n_p = strv_length(c->placeholders);

        if (c->binding_lines)
                qsort(c->binding_lines, n_b, sizeof(char *), cmp_str);
        if (c->placeholders)
                qsort(c->placeholders, n_p, sizeof(char *), cmp_str);
        for (size_t i = 1; i < n_b; i++) {
                size_t l = strcspn(c->binding_lines[i], "\t");

                if (strncmp(c->binding_lines[i], c->binding_lines[i - 1], l) == 0 &&
                    c->binding_lines[i - 1][l] == '\t')
                        note(c, true, NULL, "worker '%s': binding '%.*s' is defined twice", c->worker, (int) l,
                             c->binding_lines[i]);
        }
        if (n_b + n_p == 0)
                return;
        fputs("bindings:\n", f);
        for (size_t i = 0; i < n_b; i++)
                fprintf(f, "%s\n", strchr(c->binding_lines[i], '\t') + 1);
        for (size_t i = 0; i < n_p; i++)
                fprintf(f, "%s\n", strchr(c->placeholders[i], '\t') + 1);
}

/* Builds the worker file of one effective configuration. */
static int import_worker(Ctx *c, char **ret_name, char **ret_content) {
        _cleanup_free_ char *main_path = NULL, *dobj = NULL;
        Buf out;

        main_path = import_keys(c, &dobj);
        if (c->oom)
                return -ENOMEM;
        if (!main_path)
                return 0;

        if (buf_open(&out) < 0)
                return -ENOMEM;
        put_header(c, out.f, main_path);
        put_observability(c, out.f);
        put_crons(c, out.f);
        put_bindings(c, out.f);
        if (!isempty(c->consumers))
                fprintf(out.f, "consumers:\n%s", c->consumers);
        if (!isempty(dobj))
                fputs(dobj, out.f);
        if (c->kept) {
                fprintf(out.f, "# Not expressible in bindery, kept from %s:\n", c->src->display);
                for (size_t i = 0; c->kept[i]; i++)
                        fprintf(out.f, "%s\n", c->kept[i]);
        }
        *ret_content = buf_steal(&out);
        if (!*ret_content)
                return -ENOMEM;
        if (asprintf(ret_name, "%s.yaml", c->worker) < 0) {
                *ret_content = mfree(*ret_content);
                return -ENOMEM;
        }
        return 0;
}

static void ctx_done(Ctx *c) {
        json_object_put(c->eff);
        json_object_put(c->base);
        free(c->worker);
        strv_free(c->binding_lines);
        strv_free(c->kept);
        strv_free(c->placeholders);
        strv_free(c->own_classes);
        free(c->own_sqlite);
        free(c->consumers);
}

static int add_file(ImportRun *run, char *name, char *content) {
        ImportFile *f = reallocarray(run->files, run->n_files + 1, sizeof(ImportFile));

        if (!f) {
                free(name);
                free(content);
                return -ENOMEM;
        }
        run->files = f;
        run->files[run->n_files++] = (ImportFile) { .name = name, .content = content };
        return 0;
}

/* One worker: the top level (env NULL) or one environment. */
static int import_one(ImportRun *run, const ImportSource *src, json_object *config, json_object *lines,
                      const char *env, json_object *envobj) {
        _cleanup_(ctx_done) Ctx c = { .run = run, .src = src, .lines = lines, .env = env };
        const char *name = get_string(envobj ?: config, "name");
        _cleanup_free_ char *envpath = NULL, *fname = NULL, *content = NULL;
        int r;

        c.eff = json_object_new_object();
        c.base = json_object_new_object();
        if (!c.eff || !c.base)
                return -ENOMEM;
        if (env && asprintf(&envpath, "env.%s", env) < 0)
                return -ENOMEM;
        if (envobj) {
                json_object_object_foreach(config, k, v) {
                        if (!in_list(k, inherited_keys) || get(envobj, k))
                                continue;
                        if (json_object_object_add(c.eff, k, json_object_get(v)) < 0)
                                return -ENOMEM;
                }
                json_object_object_foreach(envobj, k2, v2) {
                        if (json_object_object_add(c.eff, k2, json_object_get(v2)) < 0 ||
                            json_object_object_add(c.base, k2, json_object_new_string(envpath)) < 0)
                                return -ENOMEM;
                }
        } else {
                json_object_object_foreach(config, k, v) {
                        if (json_object_object_add(c.eff, k, json_object_get(v)) < 0)
                                return -ENOMEM;
                }
        }
        (void) json_object_object_del(c.eff, "env");

        if (envobj && !name) {
                const char *top = get_string(config, "name");

                if (top && asprintf(&c.worker, "%s-%s", top, env) < 0)
                        return -ENOMEM;
        } else if (name && !(c.worker = strdup(name)))
                return -ENOMEM;
        if (!c.worker) {
                note(&c, true, envpath, "no 'name': wrangler needs one to deploy, and so does bindery");
                return 0;
        }
        if (!spec_valid_script_name(c.worker)) {
                note(&c, true, envpath ?: "name", "'%s' is not a valid worker name (1-63 characters: "
                     "a-z, 0-9, '-' and '_')", c.worker);
                return 0;
        }
        if (strv_contains(run->worker_names, c.worker)) {
                note(&c, true, envpath ?: "name", "worker '%s' is imported twice", c.worker);
                return 0;
        }
        if (strv_extend(&run->worker_names, c.worker) < 0)
                return -ENOMEM;
        r = import_worker(&c, &fname, &content);
        if (r < 0)
                return r;
        if (!fname)
                return 0;
        return add_file(run, TAKE_PTR(fname), TAKE_PTR(content));
}

int import_config(ImportRun *run, const ImportSource *src, json_object *config, json_object *lines) {
        json_object *envs;
        int r;

        if (!json_object_is_type(config, json_type_object)) {
                bool oom = false;
                char *t = NULL;

                if (asprintf(&t, "%s: the configuration is not an object", src->display) < 0)
                        return -ENOMEM;
                note_add(run, true, t, &oom);
                return oom ? -ENOMEM : 0;
        }
        r = import_one(run, src, config, lines, NULL, NULL);
        if (r < 0)
                return r;
        envs = get(config, "env");
        if (!envs)
                return 0;
        if (!json_object_is_type(envs, json_type_object)) {
                Ctx c = { .run = run, .src = src, .lines = lines };

                note(&c, true, "env", "'env' must be a table of environments");
                return c.oom ? -ENOMEM : 0;
        }
        json_object_object_foreach(envs, name, e) {
                if (!json_object_is_type(e, json_type_object)) {
                        Ctx c = { .run = run, .src = src, .lines = lines };
                        _cleanup_free_ char *p = NULL;

                        if (asprintf(&p, "env.%s", name) < 0)
                                return -ENOMEM;
                        note(&c, true, p, "an environment must be a table");
                        continue;
                }
                r = import_one(run, src, config, lines, name, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int cmp_resource(const void *a, const void *b) {
        const ImportResource *x = a, *y = b;

        if (x->kind != y->kind)
                return x->kind < y->kind ? -1 : 1;
        return strcmp(x->name, y->name);
}

static int cmp_file(const void *a, const void *b) {
        return strcmp(((const ImportFile *) a)->name, ((const ImportFile *) b)->name);
}

int import_finish(ImportRun *run) {
        static const char *const kinds[_RES_MAX] = { "KVNamespace", "R2Bucket", "D1Database", "Queue", "SecretsStore" };
        char *content, *name;
        Buf out;

        if (run->n_resources > 0) {
                qsort(run->resources, run->n_resources, sizeof(ImportResource), cmp_resource);
                if (buf_open(&out) < 0)
                        return -ENOMEM;
                fputs("# Resources the imported workers bind, by 'binderyd import'.\n", out.f);
                for (size_t i = 0; i < run->n_resources; i++) {
                        fprintf(out.f, "%skind: %s\nname: ", i ? "---\n" : "", kinds[run->resources[i].kind]);
                        put_scalar(out.f, run->resources[i].name);
                        fprintf(out.f, "\n%s", run->resources[i].body);
                }
                content = buf_steal(&out);
                name = strdup("resources.yaml");
                if (!content || !name) {
                        free(content);
                        free(name);
                        return -ENOMEM;
                }
                if (add_file(run, name, content) < 0)
                        return -ENOMEM;
        }
        if (run->n_files > 0)
                qsort(run->files, run->n_files, sizeof(ImportFile), cmp_file);
        return 0;
}

void import_run_done(ImportRun *run) {
        for (size_t i = 0; i < run->n_notes; i++)
                free(run->notes[i].text);
        free(run->notes);
        for (size_t i = 0; i < run->n_files; i++) {
                free(run->files[i].name);
                free(run->files[i].content);
        }
        free(run->files);
        for (size_t i = 0; i < run->n_resources; i++) {
                free(run->resources[i].name);
                free(run->resources[i].body);
                free(run->resources[i].origin);
        }
        free(run->resources);
        strv_free(run->worker_names);
        *run = (ImportRun) {};
}

/* ---- JSON and JSONC ---- */

void import_strip_jsonc(char *text, size_t size) {
        bool in_string = false;

        for (size_t i = 0; i < size; i++) {
                if (in_string) {
                        if (text[i] == '\\' && i + 1 < size)
                                i++;
                        else if (text[i] == '"')
                                in_string = false;
                        continue;
                }
                if (text[i] == '"')
                        in_string = true;
                else if (text[i] == '/' && i + 1 < size && text[i + 1] == '/') {
                        for (; i < size && text[i] != '\n'; i++)
                                text[i] = ' ';
                } else if (text[i] == '/' && i + 1 < size && text[i + 1] == '*') {
                        size_t j = i + 2;

                        while (j < size && !(text[j - 1] == '*' && text[j] == '/' && j > i + 2))
                                j++;
                        /* An unterminated comment runs to the end (the parser then reports it). */
                        for (size_t k = i; k <= j && k < size; k++)
                                if (text[k] != '\n')
                                        text[k] = ' ';
                        i = j;
                }
        }
        /* Trailing commas: a ',' followed only by blanks before '}' or ']'. */
        in_string = false;
        for (size_t i = 0; i < size; i++) {
                if (in_string) {
                        if (text[i] == '\\' && i + 1 < size)
                                i++;
                        else if (text[i] == '"')
                                in_string = false;
                        continue;
                }
                if (text[i] == '"')
                        in_string = true;
                else if (text[i] == ',') {
                        size_t j = i + 1;

                        while (j < size && isspace((unsigned char) text[j]))
                                j++;
                        if (j < size && (text[j] == '}' || text[j] == ']'))
                                text[i] = ' ';
                }
        }
}

int import_parse_jsonc(const char *text, size_t size, json_object **ret, const char **ret_error,
                       unsigned *ret_line, unsigned *ret_column) {
        _cleanup_free_ char *copy = NULL;
        struct json_tokener *tok;
        enum json_tokener_error jerr;
        json_object *o;
        size_t off;

        if (size > IMPORT_MAX_CONFIG_SIZE || memchr(text, '\0', size)) {
                *ret_error = size > IMPORT_MAX_CONFIG_SIZE ? "file too large" : "NUL byte in the file";
                *ret_line = *ret_column = 1;
                return -EINVAL;
        }
        copy = strndup(text, size);
        if (!copy)
                return -ENOMEM;
        import_strip_jsonc(copy, size);
        tok = json_tokener_new_ex(IMPORT_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, copy, (int) size);
        jerr = json_tokener_get_error(tok);
        off = json_tokener_get_parse_end(tok);
        if (!o && jerr == json_tokener_continue)
                jerr = json_tokener_error_parse_eof;
        if (o && jerr == json_tokener_success)
                for (size_t i = off; i < size; i++)
                        if (!isspace((unsigned char) copy[i])) {
                                jerr = json_tokener_error_parse_unexpected;
                                off = i;
                                json_object_put(o);
                                o = NULL;
                                break;
                        }
        json_tokener_free(tok);
        if (!o || jerr != json_tokener_success) {
                json_object_put(o);
                *ret_error = json_tokener_error_desc(jerr);
                *ret_line = 1;
                *ret_column = 1;
                for (size_t i = 0; i < off && i < size; i++) {
                        if (copy[i] == '\n') {
                                (*ret_line)++;
                                *ret_column = 1;
                        } else
                                (*ret_column)++;
                }
                return -EINVAL;
        }
        *ret = o;
        return 0;
}
