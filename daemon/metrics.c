/* metrics.c: see metrics.h. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"

struct Metrics {
        FILE *f;
        char *buf;
        size_t size;
};

Metrics *metrics_new(void) {
        Metrics *m = calloc(1, sizeof(Metrics));

        if (!m)
                return NULL;
        m->f = open_memstream(&m->buf, &m->size);
        if (!m->f)
                return mfree(m);
        return m;
}

Metrics *metrics_free(Metrics *m) {
        if (!m)
                return NULL;
        if (m->f)
                fclose(m->f);
        free(m->buf);
        return mfree(m);
}

/* HELP text escapes backslash and newline; label values also '"'. */
static void put_escaped(FILE *f, const char *s, bool quote) {
        for (; *s; s++)
                switch (*s) {
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '"':
                        fputs(quote ? "\\\"" : "\"", f);
                        break;
                default:
                        fputc(*s, f);
                }
}

void metrics_family(Metrics *m, const char *name, const char *type, const char *help) {
        fprintf(m->f, "# HELP %s ", name);
        put_escaped(m->f, help, false);
        fprintf(m->f, "\n# TYPE %s %s\n", name, type);
}

void metrics_sample(Metrics *m, const char *name, double value, ...) {
        const char *k, *v;
        bool first = true;
        va_list ap;

        fputs(name, m->f);
        va_start(ap, value);
        while ((k = va_arg(ap, const char *))) {
                v = va_arg(ap, const char *);
                fprintf(m->f, "%s%s=\"", first ? "{" : ",", k);
                put_escaped(m->f, v ? v : "", true);
                fputc('"', m->f);
                first = false;
        }
        va_end(ap);
        if (!first)
                fputc('}', m->f);
        if (isnan(value))
                fputs(" NaN\n", m->f);
        else if (isinf(value))
                fputs(value > 0 ? " +Inf\n" : " -Inf\n", m->f);
        else if (value == (double) (long long) value && (value < 0 ? -value : value) < 1e15)
                fprintf(m->f, " %lld\n", (long long) value);
        else
                fprintf(m->f, " %.15g\n", value);
}

char *metrics_take(Metrics *m) {
        char *t;
        bool bad;

        bad = ferror(m->f) || fclose(m->f) != 0;
        m->f = NULL;
        t = TAKE_PTR(m->buf);
        metrics_free(m);
        if (bad)
                return mfree(t);
        return t;
}
