/* spec-common.c: what the loader (spec.c) and the validator
 * (spec-validate.c) both use: the error list and suggestions. A leaf:
 * it calls neither, so they need not call each other. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "spec-internal.h"
#include "util.h"

/* ---- errors ---- */

void spec_errors_done(SpecErrors *e) {
        if (!e)
                return;
        for (size_t i = 0; i < e->n; i++) {
                free(e->errors[i].file);
                free(e->errors[i].message);
        }
        free(e->errors);
        *e = (SpecErrors) {};
}

char *spec_error_to_string(const SpecError *e) {
        char *s;
        int r;

        if (isempty(e->file))
                r = asprintf(&s, "%s", e->message);
        else if (e->line == 0)
                r = asprintf(&s, "%s: %s", e->file, e->message);
        else
                r = asprintf(&s, "%s:%u:%u: %s", e->file, e->line, e->column, e->message);
        return r < 0 ? NULL : s;
}

json_object *spec_errors_to_json(const SpecErrors *e) {
        json_object *a = json_object_new_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < e->n; i++) {
                json_object *o = json_object_new_object();

                if (!o || json_object_array_add(a, o) < 0) {
                        json_object_put(o);
                        json_object_put(a);
                        return NULL;
                }
                if (json_object_object_add(o, "file", json_object_new_string(e->errors[i].file)) < 0 ||
                    json_object_object_add(o, "line", json_object_new_int64(e->errors[i].line)) < 0 ||
                    json_object_object_add(o, "column", json_object_new_int64(e->errors[i].column)) < 0 ||
                    json_object_object_add(o, "message", json_object_new_string(e->errors[i].message)) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        }
        return a;
}

static int errors_add(SpecErrors *e, size_t max, const char *file, unsigned line, unsigned column, char *msg) {
        SpecError *n;
        char *f;

        if (e->n >= max) {
                e->n_dropped++;
                free(msg);
                return 0;
        }
        f = strdup(file ?: "");
        if (!f) {
                free(msg);
                return -ENOMEM;
        }
        n = realloc(e->errors, sizeof(SpecError) * (e->n + 1));
        if (!n) {
                free(f);
                free(msg);
                return -ENOMEM;
        }
        e->errors = n;
        e->errors[e->n++] = (SpecError) { .file = f, .line = line, .column = column, .message = msg };
        return 0;
}

void spec_errorf(SpecCtx *c, const char *file, unsigned line, unsigned column, const char *fmt, ...) {
        va_list ap;
        char *m;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (k < 0) {
                c->oom = true;
                return;
        }
        /* A crafted spec must not make messages (and /v1/status) huge: cut
         * long ones at a character boundary. */
        if ((size_t) k > SPEC_MAX_MESSAGE) {
                /* Keep the head and the tail (where the reason usually is). */
                size_t head = SPEC_MAX_MESSAGE / 2, tail = (size_t) k - (SPEC_MAX_MESSAGE / 2 - 3);
                char *t;

                while (head > 0 && ((unsigned char) m[head] & 0xc0) == 0x80)
                        head--;
                while (m[tail] && ((unsigned char) m[tail] & 0xc0) == 0x80)
                        tail++;
                memcpy(m + head, "...", 3);
                memmove(m + head + 3, m + tail, (size_t) k - tail + 1);
                t = realloc(m, strlen(m) + 1);
                if (t)
                        m = t;
        }
        for (char *p = m; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        if (errors_add(c->errors, c->limits->max_errors, file, line, column, m) < 0)
                c->oom = true;
}

/* ---- suggestions ---- */

const char *spec_suggest(const char *s, const char *const *names) {
        size_t l = strlen(s);
        unsigned best = UINT_MAX, limit = l <= 3 ? 1 : l <= 8 ? 2 : 3;
        const char *r = NULL;

        for (const char *const *n = names; *n; n++) {
                size_t ln = strlen(*n);
                unsigned d;

                /* The distance is at least the difference in length. */
                if (ln > l + limit || l > ln + limit)
                        continue;
                d = edit_distance(s, *n);

                if (d < best) {
                        best = d;
                        r = *n;
                }
        }
        return best <= limit ? r : NULL;
}
