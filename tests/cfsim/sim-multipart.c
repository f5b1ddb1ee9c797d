/* sim-multipart.c: see sim-multipart.h. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "sim-multipart.h"

static const char *skip_ws(const char *p, const char *end) {
        while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        return p;
}

/* Reads a parameter value (token or quoted string) starting at *pp, up to
 * end. Returns a new string or NULL (OOM or malformed); advances *pp. */
static char *param_value(const char **pp, const char *end, int *err) {
        const char *p = *pp;
        _cleanup_free_ char *v = NULL;
        size_t n = 0;

        v = malloc((size_t) (end - p) + 1);
        if (!v) {
                *err = -ENOMEM;
                return NULL;
        }
        if (p < end && *p == '"') {
                p++;
                for (;;) {
                        if (p >= end) {
                                *err = -EINVAL;
                                return NULL;
                        }
                        if (*p == '"')
                                break;
                        if (*p == '\\' && p + 1 < end)
                                p++;
                        v[n++] = *p++;
                }
                p++;
        } else {
                while (p < end && *p != ';' && *p != ' ' && *p != '\t')
                        v[n++] = *p++;
        }
        v[n] = 0;
        *pp = p;
        return TAKE_PTR(v);
}

/* Walks "type; a=b; c="d"" looking for parameter key. Sets *ret to a new
 * string, or NULL if absent. Returns 0 or negative errno. */
static int header_param(const char *value, size_t len, const char *key, char **ret) {
        const char *p = value, *end = value + len;
        size_t klen = strlen(key);
        int err = 0;

        *ret = NULL;
        /* Skip the leading token (the type / disposition). */
        while (p < end && *p != ';') {
                if (*p == '"')
                        return -EINVAL;
                p++;
        }
        while (p < end) {
                const char *name;
                size_t nlen;
                char *v;

                p++; /* ';' */
                p = skip_ws(p, end);
                name = p;
                while (p < end && *p != '=' && *p != ';')
                        p++;
                nlen = (size_t) (p - name);
                while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
                        nlen--;
                if (p >= end || *p == ';')
                        continue; /* a parameter without value: ignore */
                p++; /* '=' */
                p = skip_ws(p, end);
                v = param_value(&p, end, &err);
                if (!v)
                        return err;
                if (nlen == klen && strncasecmp(name, key, klen) == 0 && !*ret)
                        *ret = v;
                else
                        free(v);
                p = skip_ws(p, end);
                while (p < end && *p != ';')
                        p++; /* tolerate garbage after a value */
        }
        return 0;
}

int sim_form_boundary(const char *content_type, char ret[static 71]) {
        _cleanup_free_ char *b = NULL;
        size_t len;
        int r;

        if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) != 0)
                return -EMEDIUMTYPE;
        len = strlen(content_type);
        if (len > SIM_FORM_HEADER_LINE_MAX)
                return -EINVAL;
        r = header_param(content_type, len, "boundary", &b);
        if (r < 0)
                return r;
        if (!b || strlen(b) < 1 || strlen(b) > 70)
                return -EINVAL;
        strcpy(ret, b);
        return 0;
}

static void part_done(SimFormPart *p) {
        free(p->name);
        free(p->filename);
        free(p->content_type);
}

void sim_form_done(SimForm *form) {
        if (!form)
                return;
        for (size_t i = 0; i < form->n_parts; i++)
                part_done(&form->parts[i]);
        free(form->parts);
        form->parts = NULL;
        form->n_parts = 0;
}

static char *strndup_trim(const char *s, size_t n) {
        while (n > 0 && (*s == ' ' || *s == '\t')) {
                s++;
                n--;
        }
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
                n--;
        return strndup(s, n);
}

/* Parses the header block [p, end) of one part into *part. */
static int parse_part_headers(const char *p, const char *end, SimFormPart *part) {
        unsigned n_headers = 0;
        bool have_disposition = false;

        while (p < end) {
                const char *eol = memmem(p, (size_t) (end - p), "\r\n", 2);
                const char *colon;
                size_t nlen;

                if (!eol)
                        eol = end;
                if ((size_t) (eol - p) > SIM_FORM_HEADER_LINE_MAX || ++n_headers > SIM_FORM_HEADERS_MAX)
                        return -E2BIG;
                colon = memchr(p, ':', (size_t) (eol - p));
                if (!colon)
                        return -EINVAL;
                nlen = (size_t) (colon - p);
                if (nlen == 19 && strncasecmp(p, "Content-Disposition", 19) == 0) {
                        const char *v = skip_ws(colon + 1, eol);
                        int r;

                        if (have_disposition)
                                return -EINVAL;
                        have_disposition = true;
                        if ((size_t) (eol - v) < 9 || strncasecmp(v, "form-data", 9) != 0)
                                return -EINVAL;
                        r = header_param(v, (size_t) (eol - v), "name", &part->name);
                        if (r < 0)
                                return r;
                        r = header_param(v, (size_t) (eol - v), "filename", &part->filename);
                        if (r < 0)
                                return r;
                } else if (nlen == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
                        free(part->content_type);
                        part->content_type = strndup_trim(colon + 1, (size_t) (eol - colon - 1));
                        if (!part->content_type)
                                return -ENOMEM;
                }
                p = eol + 2;
        }
        if (!have_disposition || !part->name)
                return -EINVAL;
        if (strlen(part->name) > SIM_FORM_NAME_MAX ||
            (part->filename && strlen(part->filename) > SIM_FORM_NAME_MAX))
                return -E2BIG;
        return 0;
}

/* True if a delimiter ending at p is a real one: followed by "--" (the
 * close) or by optional transport padding and CRLF. */
static bool delim_complete(const char *p, const char *end) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
                return true;
        p = skip_ws(p, end);
        return end - p >= 2 && p[0] == '\r' && p[1] == '\n';
}

/* Finds the next complete delimiter in [p, end); NULL if none. */
static const char *find_delim(const char *p, const char *end, const char *delim, size_t dlen) {
        while (p < end) {
                const char *d = memmem(p, (size_t) (end - p), delim, dlen);

                if (!d)
                        return NULL;
                if (delim_complete(d + dlen, end))
                        return d;
                p = d + 1;
        }
        return NULL;
}

/* Where the first part starts: after the first delimiter, which may sit
 * at the very start (no preceding CRLF) or after a preamble. NULL when
 * there is none. */
static const char *form_first_part(const char *body, const char *end, const char *delim, size_t dlen) {
        const char *p;

        if ((size_t) (end - body) >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0 &&
            delim_complete(body + dlen - 2, end))
                return body + dlen - 2;
        p = find_delim(body, end, delim, dlen);
        return p ? p + dlen : NULL;
}

/* One part from *p (just past its opening CRLF): headers, then data up to
 * the next delimiter, past which *p is left. */
static int form_read_part(const char **p, const char *end, const char *delim, size_t dlen, SimFormPart *ret) {
        const char *hdr_end, *next, *q = *p;
        SimFormPart part = {};
        int r;

        if (end - q >= 2 && q[0] == '\r' && q[1] == '\n')
                hdr_end = q; /* no headers at all */
        else {
                hdr_end = memmem(q, (size_t) (end - q), "\r\n\r\n", 4);
                if (!hdr_end)
                        return -EINVAL;
        }
        r = parse_part_headers(q, hdr_end, &part);
        if (r < 0) {
                part_done(&part);
                return r;
        }
        q = hdr_end + (hdr_end == q ? 2 : 4);
        next = find_delim(q, end, delim, dlen);
        if (!next) {
                part_done(&part);
                return -EINVAL;
        }
        part.data = q;
        part.size = (size_t) (next - q);
        *ret = part;
        *p = next + dlen;
        return 0;
}

int sim_form_parse(const char *content_type, const char *body, size_t size, SimForm *ret) {
        char boundary[71], delim[75];
        SimForm form = {};
        const char *p, *end = body + size;
        size_t dlen;
        int r;

        r = sim_form_boundary(content_type, boundary);
        if (r < 0)
                return r;
        dlen = (size_t) snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
        p = form_first_part(body, end, delim, dlen);
        if (!p)
                return -EINVAL;
        for (;;) {
                SimFormPart *parts, part;

                /* After a delimiter: "--" closes, else padding + CRLF. */
                if (end - p >= 2 && p[0] == '-' && p[1] == '-')
                        break;
                p = skip_ws(p, end);
                if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
                        r = -EINVAL;
                        goto fail;
                }
                p += 2;
                if (form.n_parts >= SIM_FORM_PARTS_MAX) {
                        r = -E2BIG;
                        goto fail;
                }
                r = form_read_part(&p, end, delim, dlen, &part);
                if (r < 0)
                        goto fail;
                parts = realloc(form.parts, sizeof(SimFormPart) * (form.n_parts + 1));
                if (!parts) {
                        part_done(&part);
                        r = -ENOMEM;
                        goto fail;
                }
                form.parts = parts;
                form.parts[form.n_parts++] = part;
        }
        *ret = form;
        return 0;
fail:
        sim_form_done(&form);
        return r;
}

const SimFormPart *sim_form_find(const SimForm *form, const char *name, bool by_filename) {
        for (size_t i = 0; i < form->n_parts; i++)
                if (strcmp(form->parts[i].name, name) == 0)
                        return &form->parts[i];
        if (by_filename)
                for (size_t i = 0; i < form->n_parts; i++)
                        if (form->parts[i].filename && strcmp(form->parts[i].filename, name) == 0)
                                return &form->parts[i];
        return NULL;
}
