/* spec-rules.c: the single-value rules of bindery-spec(5): names
 * Cloudflare accepts, compatibility dates (against a clock the caller
 * passes), cron syntax. Pure, and a leaf: the loader, the validator, the
 * binding-kind table and the importer call it; it calls none of them. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spec-internal.h"
#include "spec.h"
#include "util.h"

/* ---- names ---- */

static const char *const js_reserved[] = {
        "break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete",
        "do", "else", "enum", "export", "extends", "false", "finally", "for", "function", "if",
        "import", "in", "instanceof", "new", "null", "return", "super", "switch", "this",
        "throw", "true", "try", "typeof", "var", "void", "while", "with", "yield", "let",
        "static", "implements", "interface", "package", "private", "protected", "public",
        "await", NULL
};

bool spec_valid_js_identifier(const char *s) {
        size_t l = strlen(s);

        if (l == 0 || l > 255)
                return false;
        if (!isalpha((unsigned char) s[0]) && s[0] != '_' && s[0] != '$')
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && *p != '_' && *p != '$')
                        return false;
        /* Every reserved word is lower-case letters only. */
        if (s[0] < 'a' || s[0] > 'z' || l > 10)
                return true;
        for (const char *const *r = js_reserved; *r; r++)
                if (streq(*r, s))
                        return false;
        return true;
}

static bool charset(const char *s, const char *extra) {
        for (const char *p = s; *p; p++)
                if (!(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9') && !strchr(extra, *p))
                        return false;
        return true;
}

bool spec_valid_script_name(const char *s) {
        size_t l = strlen(s);

        return l >= 1 && l <= 63 && charset(s, "-_") && s[0] != '-' && s[l - 1] != '-';
}

bool spec_valid_bucket_name(const char *s) {
        size_t l = strlen(s);

        return l >= 3 && l <= 63 && charset(s, "-") && s[0] != '-' && s[l - 1] != '-';
}

bool spec_valid_queue_name(const char *s) {
        size_t l = strlen(s);

        return l >= 1 && l <= 63 && charset(s, "-_");
}

bool spec_valid_kv_title(const char *s) {
        size_t l = strlen(s);

        if (l == 0 || l > 512)
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

/* ---- compatibility_date ---- */

bool spec_valid_compat_date(const char *s, time_t now, const char **reterr) {
        static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int y, m, d;
        char today[11];
        struct tm tm;

        if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
            strspn(s, "0123456789") != 4 || strspn(s + 5, "0123456789") != 2 ||
            strspn(s + 8, "0123456789") != 2) {
                if (reterr)
                        *reterr = "expected YYYY-MM-DD";
                return false;
        }
        y = atoi(s);
        m = atoi(s + 5);
        d = atoi(s + 8);
        if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
            (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))) {
                if (reterr)
                        *reterr = "no such date";
                return false;
        }
        if (y < 2009) {
                if (reterr)
                        *reterr = "before Workers existed";
                return false;
        }
        /* Cloudflare refuses dates in the future; allow one day for time zones. */
        now += 86400;
        if (gmtime_r(&now, &tm) && strftime(today, sizeof(today), "%Y-%m-%d", &tm) == 10 &&
            strcmp(s, today) > 0) {
                if (reterr)
                        *reterr = "in the future";
                return false;
        }
        return true;
}

/* ---- cron ---- */

static const char *const month_names[] = {
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL
};
static const char *const dow_names[] = { "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL };

static const struct {
        int min, max;
        const char *const *names;
        int names_base;
        const char *error;
} cron_fields[5] = {
        { 0, 59, NULL, 0, "bad minute field (0-59)" },
        { 0, 23, NULL, 0, "bad hour field (0-23)" },
        { 1, 31, NULL, 0, "bad day-of-month field (1-31)" },
        { 1, 12, month_names, 1, "bad month field (1-12 or JAN-DEC)" },
        { 0, 7, dow_names, 0, "bad day-of-week field (0-7 or SUN-SAT)" },
};

/* A number or (month, weekday) a three-letter name; advances *p. */
static bool cron_value(const char **p, size_t f, int *ret) {
        const char *s = *p;

        if (isdigit((unsigned char) *s)) {
                int v = 0;

                while (isdigit((unsigned char) *s)) {
                        v = v * 10 + (*s - '0');
                        if (v > 1000)
                                return false;
                        s++;
                }
                *p = s;
                *ret = v;
                return v >= cron_fields[f].min && v <= cron_fields[f].max;
        }
        if (cron_fields[f].names)
                for (int i = 0; cron_fields[f].names[i]; i++)
                        if (strncasecmp(s, cron_fields[f].names[i], 3) == 0) {
                                *p = s + 3;
                                *ret = i + cron_fields[f].names_base;
                                return true;
                        }
        return false;
}

static bool cron_field(const char *s, size_t len, size_t f) {
        _cleanup_free_ char *copy = strndup(s, len);
        char *save = NULL;

        if (!copy || len == 0 || copy[len - 1] == ',' || copy[0] == ',' || strstr(copy, ",,"))
                return false;
        for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
                const char *p = item;
                int a, b;

                if (*p == '*') {
                        p++;
                        a = cron_fields[f].min;
                        b = cron_fields[f].max;
                } else {
                        if (!cron_value(&p, f, &a))
                                return false;
                        b = a;
                        if (*p == '-') {
                                p++;
                                if (!cron_value(&p, f, &b) || b < a)
                                        return false;
                        }
                }
                if (*p == '/') {
                        int step = 0;

                        p++;
                        if (!isdigit((unsigned char) *p))
                                return false;
                        while (isdigit((unsigned char) *p)) {
                                step = step * 10 + (*p - '0');
                                if (step > 1000)
                                        return false;
                                p++;
                        }
                        if (step < 1 || step > cron_fields[f].max - cron_fields[f].min + 1)
                                return false;
                }
                if (*p)
                        return false;
        }
        return true;
}

const char *spec_next_field(const char *p, size_t *ret_len) {
        p += strspn(p, " \t");
        if (!*p)
                return NULL;
        *ret_len = strcspn(p, " \t");
        return p;
}

bool spec_valid_cron(const char *s, const char **reterr) {
        const char *p = s;
        size_t f = 0, len;

        for (; (p = spec_next_field(p, &len)); p += len) {
                if (f >= 5) {
                        f++;
                        break;
                }
                if (!cron_field(p, len, f)) {
                        if (reterr)
                                *reterr = cron_fields[f].error;
                        return false;
                }
                f++;
        }
        if (f != 5) {
                if (reterr)
                        *reterr = "expected 5 fields (minute hour day-of-month month day-of-week)";
                return false;
        }
        return true;
}
