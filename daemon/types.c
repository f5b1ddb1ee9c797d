/* types.c: see types.h. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "binding-kinds.h"
#include "types.h"
#include "util.h"

/* A growing string; on OOM it frees itself and stays NULL. */
typedef struct Buf {
        char *s;
        size_t len, alloc;
        bool oom;
} Buf;

_printf_(2, 3)
static void buf_printf(Buf *b, const char *fmt, ...) {
        va_list ap;
        int k;

        if (b->oom)
                return;
        for (;;) {
                size_t room = b->alloc - b->len;

                va_start(ap, fmt);
                k = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
                va_end(ap);
                if (k < 0) {
                        b->oom = true;
                        break;
                }
                if ((size_t) k < room) {
                        b->len += (size_t) k;
                        return;
                }
                {
                        size_t na = (b->alloc + (size_t) k + 1) * 2;
                        char *n = realloc(b->s, na);

                        if (!n) {
                                b->oom = true;
                                break;
                        }
                        b->s = n;
                        b->alloc = na;
                }
        }
        b->s = mfree(b->s);
}

static char *buf_take(Buf *b) {
        if (b->oom)
                return NULL;
        if (!b->s)
                return strdup("");
        return TAKE_PTR(b->s);
}

/* A JSON string literal is a valid TypeScript string literal. */
static void ts_string(Buf *b, const char *s) {
        json_object *o = json_object_new_string(s);

        if (!o) {
                b->oom = true;
                return;
        }
        buf_printf(b, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *json_shape(json_object *o);

static void shape_into(Buf *b, json_object *o) {
        switch (json_object_get_type(o)) {
        case json_type_null:
                buf_printf(b, "null");
                break;
        case json_type_boolean:
                buf_printf(b, "boolean");
                break;
        case json_type_int:
        case json_type_double:
                buf_printf(b, "number");
                break;
        case json_type_string:
                buf_printf(b, "string");
                break;
        case json_type_array: {
                size_t n = json_object_array_length(o), k = 0;
                _cleanup_strv_free_ char **types = NULL;

                if (n == 0) {
                        buf_printf(b, "unknown[]");
                        break;
                }
                for (size_t i = 0; i < n; i++) {
                        char *t = json_shape(json_object_array_get_idx(o, i));

                        if (!t || strv_consume(&types, t) < 0) {
                                b->oom = true;
                                return;
                        }
                }
                strv_sort_uniq(types);
                k = strv_length(types);
                buf_printf(b, k > 1 ? "(" : "");
                for (size_t i = 0; i < k; i++)
                        buf_printf(b, "%s%s", i ? " | " : "", types[i]);
                buf_printf(b, k > 1 ? ")[]" : "[]");
                break;
        }
        case json_type_object: {
                _cleanup_free_ const char **keys = NULL;
                size_t n = (size_t) json_object_object_length(o), k = 0;

                if (n == 0) {
                        buf_printf(b, "{}");
                        break;
                }
                keys = calloc(n, sizeof(char *));
                if (!keys) {
                        b->oom = true;
                        return;
                }
                json_object_object_foreach(o, key, val) {
                        (void) val;
                        keys[k++] = key;
                }
                qsort(keys, k, sizeof(char *), cmp_str);
                buf_printf(b, "{ ");
                for (size_t i = 0; i < k; i++) {
                        ts_string(b, keys[i]);
                        buf_printf(b, ": ");
                        shape_into(b, json_object_object_get(o, keys[i]));
                        buf_printf(b, "; ");
                }
                buf_printf(b, "}");
                break;
        }
        }
}

static char *json_shape(json_object *o) {
        Buf b = {};

        shape_into(&b, o);
        return buf_take(&b);
}

char *types_binding_type(const Binding *x) {
        const BindingKindInfo *info = binding_kind_info(x->kind);
        Buf b = {};

        switch (x->kind) {
        case BINDING_PLAIN_TEXT:
                ts_string(&b, x->text ?: "");
                return buf_take(&b);
        case BINDING_JSON: {
                json_object *o = json_tokener_parse(x->json ?: "null");
                char *s = json_shape(o);

                json_object_put(o);
                return s;
        }
        default:
                if (!info || !info->ts_type)
                        return strdup("unknown");
                return strdup(info->ts_type);
        }
}

char *types_interface_name(const char *name) {
        Buf b = {};
        bool up = true;

        for (const char *p = name; *p; p++) {
                if (!isalnum((unsigned char) *p)) {
                        up = true;
                        continue;
                }
                if (b.len == 0 && isdigit((unsigned char) *p))
                        buf_printf(&b, "W");
                buf_printf(&b, "%c", up ? toupper((unsigned char) *p) : *p);
                up = false;
        }
        buf_printf(&b, "Env");
        return buf_take(&b);
}

static bool is_ident(char ch, bool first) {
        return ch == '_' || ch == '$' || isalpha((unsigned char) ch) || (!first && isdigit((unsigned char) ch)) ||
               (unsigned char) ch >= 0x80;
}

/* The next token: an identifier, or one punctuation character; comments,
 * strings and template literals are skipped. Returns its length (0 at the
 * end) and its start in *tok. */
static size_t next_token(const char *s, size_t n, size_t *pos, const char **tok) {
        size_t i = *pos;

        while (i < n) {
                char ch = s[i];

                if (isspace((unsigned char) ch)) {
                        i++;
                } else if (ch == '/' && i + 1 < n && s[i + 1] == '/') {
                        while (i < n && s[i] != '\n')
                                i++;
                } else if (ch == '/' && i + 1 < n && s[i + 1] == '*') {
                        i += 2;
                        while (i + 1 < n && !(s[i] == '*' && s[i + 1] == '/'))
                                i++;
                        i += 2;
                } else if (ch == '"' || ch == '\'' || ch == '`') {
                        i++;
                        while (i < n && s[i] != ch) {
                                if (s[i] == '\\')
                                        i++;
                                i++;
                        }
                        i++;
                } else
                        break;
        }
        if (i >= n) {
                *pos = n;
                return 0;
        }
        *tok = s + i;
        if (is_ident(s[i], true)) {
                size_t st = i;

                while (i < n && is_ident(s[i], false))
                        i++;
                *pos = i;
                return i - st;
        }
        *pos = i + 1;
        return 1;
}

static bool tok_is(const char *t, size_t l, const char *word) {
        return l == strlen(word) && strncmp(t, word, l) == 0;
}

int types_scan_exports(const char *src, size_t size, char ***ret) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        size_t pos = 0, len;
        const char *t = NULL;

        if (!l)
                return -ENOMEM;
        while ((len = next_token(src, size, &pos, &t)) > 0) {
                if (!tok_is(t, len, "export"))
                        continue;
                len = next_token(src, size, &pos, &t);
                if (tok_is(t, len, "class")) {
                        len = next_token(src, size, &pos, &t);
                        if (len > 0 && is_ident(t[0], true) && !tok_is(t, len, "extends")) {
                                char *name = strndup(t, len);

                                if (!name || strv_consume(&l, name) < 0)
                                        return -ENOMEM;
                        }
                } else if (tok_is(t, len, "{")) {
                        /* export { A, B as C } [from "x"] */
                        const char *last = NULL;
                        size_t last_len = 0;

                        while ((len = next_token(src, size, &pos, &t)) > 0 && !tok_is(t, len, "}")) {
                                if (tok_is(t, len, ",")) {
                                        if (last) {
                                                char *name = strndup(last, last_len);

                                                if (!name || strv_consume(&l, name) < 0)
                                                        return -ENOMEM;
                                        }
                                        last = NULL;
                                } else if (is_ident(t[0], true) && !tok_is(t, len, "as")) {
                                        last = t;
                                        last_len = len;
                                }
                        }
                        if (last && !tok_is(last, last_len, "default")) {
                                char *name = strndup(last, last_len);

                                if (!name || strv_consume(&l, name) < 0)
                                        return -ENOMEM;
                        }
                }
        }
        /* Only names that look like classes (capitalised), as wrangler
         * treats exported classes. */
        for (size_t i = 0, j = 0;; i++) {
                if (!l[i]) {
                        l[j] = NULL;
                        break;
                }
                if (isupper((unsigned char) l[i][0]))
                        l[j++] = l[i];
                else
                        free(l[i]);
        }
        strv_sort_uniq(l);
        *ret = TAKE_PTR(l);
        return 0;
}

static const TypesModule *find_module(const TypesModule *mods, size_t n, const char *worker) {
        for (size_t i = 0; worker && i < n; i++)
                if (streq_ptr(mods[i].worker, worker))
                        return &mods[i];
        return NULL;
}

/* The precise type of a DO or service binding, or NULL (then the plain
 * one, with *why saying what was missing). */
static char *class_type(const Worker *w, const Binding *x, const TypesModule *mods, size_t n, const char **why) {
        const char *owner, *cls, *wrapper;
        const TypesModule *m;
        char *r = NULL;
        Buf b = {};

        if (x->kind == BINDING_DURABLE_OBJECT) {
                owner = x->script_name ?: w->name;
                cls = x->class_name;
                wrapper = "DurableObjectNamespace";
        } else if (x->kind == BINDING_SERVICE && x->entrypoint) {
                owner = x->service;
                cls = x->entrypoint;
                wrapper = "Service";
        } else
                return NULL;
        m = find_module(mods, n, owner);
        if (!m) {
                *why = "its worker is not in this spec";
                return NULL;
        }
        if (!cls || !strv_contains(m->classes, cls)) {
                *why = "its worker's main module does not export the class";
                return NULL;
        }
        buf_printf(&b, "%s<import(", wrapper);
        ts_string(&b, m->import_path);
        buf_printf(&b, ").%s>", cls);
        r = buf_take(&b);
        return r;
}

int types_emit_env(const Generation *g, const Worker *w, char **ret) {
        return types_emit_env_with(g, w, NULL, 0, ret);
}

int types_emit_env_with(const Generation *g, const Worker *w, const TypesModule *mods, size_t n_mods, char **ret) {
        _cleanup_free_ char *iface = NULL;
        Buf b = {};

        iface = types_interface_name(w->name);
        if (!iface)
                return -ENOMEM;
        buf_printf(&b, "// Generated by `binderyd types` for worker '%s'.\n", w->name);
        buf_printf(&b, "// Spec digest %.12s, worker digest %.12s. Do not edit.\n", g->digest, w->digest);
        buf_printf(&b, "// Types come from @cloudflare/workers-types.\n\n");
        buf_printf(&b, "export interface %s {\n", iface);
        for (size_t i = 0; i < w->n_bindings; i++) {
                const Binding *x = &w->bindings[i];
                const char *why = NULL;
                _cleanup_free_ char *t = mods ? class_type(w, x, mods, n_mods, &why) : NULL;

                if (!t)
                        t = types_binding_type(x);
                if (!t) {
                        free(b.s);
                        return -ENOMEM;
                }
                if (why)
                        buf_printf(&b, "\t/** %s: %s. */\n", x->kind == BINDING_SERVICE ? "Fetcher" : "Untyped stub",
                                   why);
                buf_printf(&b, "\t%s: %s;\n", x->name, t);
        }
        buf_printf(&b, "}\n\n");
        buf_printf(&b, "export type Env = %s;\n\n", iface);
        /* The augmentation Alchemy documents. Inside "cloudflare:workers"
         * the module's own Cloudflare namespace then shadows the global one,
         * so it re-exports the one other member the module body uses
         * (Exports). The global namespace gets the same Env, for code that
         * writes Cloudflare.Env or ExportedHandler<Cloudflare.Env>. */
        buf_printf(&b, "// Inside \"cloudflare:workers\" the augmented namespace shadows the global\n"
                       "// one; re-export what the module refers to.\n"
                       "type GlobalExports = Cloudflare.Exports;\n\n");
        buf_printf(&b, "declare module \"cloudflare:workers\" {\n"
                       "\tnamespace Cloudflare {\n"
                       "\t\texport interface Env extends %s {}\n"
                       "\t\texport type Exports = GlobalExports;\n"
                       "\t}\n"
                       "}\n\n", iface);
        buf_printf(&b, "declare global {\n"
                       "\tnamespace Cloudflare {\n"
                       "\t\tinterface Env extends %s {}\n"
                       "\t}\n"
                       "}\n", iface);
        *ret = buf_take(&b);
        return *ret ? 0 : -ENOMEM;
}
