/* types.c: see types.h. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

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
        static const char *const fixed[_BINDING_KIND_MAX] = {
                [BINDING_SECRET] = "string",
                [BINDING_KV_NAMESPACE] = "KVNamespace",
                [BINDING_R2_BUCKET] = "R2Bucket",
                [BINDING_D1] = "D1Database",
                [BINDING_DURABLE_OBJECT] = "DurableObjectNamespace",
                [BINDING_QUEUE] = "Queue",
                [BINDING_SERVICE] = "Fetcher",
                [BINDING_SECRETS_STORE_SECRET] = "SecretsStoreSecret",
                [BINDING_ANALYTICS_ENGINE] = "AnalyticsEngineDataset",
                [BINDING_AI] = "Ai",
                [BINDING_VERSION_METADATA] = "WorkerVersionMetadata",
                [BINDING_HYPERDRIVE] = "Hyperdrive",
                [BINDING_VECTORIZE] = "VectorizeIndex",
                [BINDING_BROWSER] = "Fetcher",
                [BINDING_WORKFLOW] = "Workflow",
        };
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
                if (x->kind < 0 || x->kind >= _BINDING_KIND_MAX || !fixed[x->kind])
                        return strdup("unknown");
                return strdup(fixed[x->kind]);
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

int types_emit_env(const Generation *g, const Worker *w, char **ret) {
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
                _cleanup_free_ char *t = types_binding_type(x);

                if (!t) {
                        free(b.s);
                        return -ENOMEM;
                }
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
