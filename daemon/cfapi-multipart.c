/* cfapi-multipart.c: multipart/form-data bodies for worker uploads; see
 * cfapi.h. Built in memory (RFC 7578) so a retried request resends the
 * same bytes. Pure apart from the random boundary. */
#include <assert.h>
#include <stdio.h>
#include <sys/random.h>

#include "cfapi.h"
#include "util.h"

#define MULTIPART_MAX_TOTAL (100U * 1024U * 1024U)
#define MULTIPART_MAX_PARTS 1024U

typedef struct MultipartPart {
        char *name;
        char *filename;
        char *content_type;
        char *data;
        size_t size;
} MultipartPart;

struct CfMultipart {
        MultipartPart *parts;
        size_t n_parts;
        size_t total;
};

CfMultipart *cfapi_multipart_new(void) {
        return calloc(1, sizeof(CfMultipart));
}

static void part_done(MultipartPart *p) {
        free(p->name);
        free(p->filename);
        free(p->content_type);
        erase_and_free(p->data, p->size);
}

CfMultipart *cfapi_multipart_free(CfMultipart *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_parts; i++)
                part_done(&m->parts[i]);
        free(m->parts);
        free(m);
        return NULL;
}

static bool header_value_ok(const char *s) {
        return !s || !strpbrk(s, "\"\r\n");
}

int cfapi_multipart_add(CfMultipart *m, const char *name, const char *filename,
                        const char *content_type, const void *data, size_t size) {
        MultipartPart p = {}, *n;

        assert(m && (data || size == 0));
        if (isempty(name))
                return -EINVAL;
        if (!header_value_ok(name) || !header_value_ok(filename) || !header_value_ok(content_type))
                return -EINVAL;
        if (m->n_parts >= MULTIPART_MAX_PARTS || size > MULTIPART_MAX_TOTAL ||
            m->total + size > MULTIPART_MAX_TOTAL)
                return -EFBIG;

        p.name = strdup(name);
        p.filename = filename ? strdup(filename) : NULL;
        p.content_type = content_type ? strdup(content_type) : NULL;
        p.data = malloc(size + 1);
        if (!p.name || (filename && !p.filename) || (content_type && !p.content_type) || !p.data) {
                p.size = 0;
                part_done(&p);
                return -ENOMEM;
        }
        if (size > 0)
                memcpy(p.data, data, size);
        p.size = size;

        n = realloc(m->parts, sizeof(MultipartPart) * (m->n_parts + 1));
        if (!n) {
                part_done(&p);
                return -ENOMEM;
        }
        m->parts = n;
        m->parts[m->n_parts++] = p;
        m->total += size;
        return 0;
}

static bool boundary_is_free(const CfMultipart *m, const char *boundary) {
        size_t len = strlen(boundary);

        for (size_t i = 0; i < m->n_parts; i++)
                if (m->parts[i].size >= len && memmem(m->parts[i].data, m->parts[i].size, boundary, len))
                        return false;
        return true;
}

int cfapi_multipart_build(const CfMultipart *m, char **ret_body, size_t *ret_size,
                          char **ret_content_type) {
        char boundary[64];
        _cleanup_free_ char *ctype = NULL;
        char *body, *p;
        size_t size;
        int r;

        assert(m && ret_body && ret_size && ret_content_type);

        /* A random boundary; retried in the (astronomically unlikely) case
         * that some part contains it. */
        for (unsigned attempt = 0;; attempt++) {
                uint8_t rnd[16];

                if (attempt >= 8)
                        return -EIO;
                if (getrandom(rnd, sizeof rnd, 0) != (ssize_t) sizeof rnd)
                        return errno > 0 ? -errno : -EIO;
                r = snprintf(boundary, sizeof boundary, "----bindery");
                for (size_t i = 0; i < sizeof rnd; i++)
                        r += snprintf(boundary + r, sizeof boundary - (size_t) r, "%02x", rnd[i]);
                if (boundary_is_free(m, boundary))
                        break;
        }

        /* Size first, then fill: per part "--B\r\n" headers "\r\n" data
         * "\r\n", then "--B--\r\n". */
        size = 0;
        for (size_t i = 0; i < m->n_parts; i++) {
                const MultipartPart *pt = &m->parts[i];

                size += 2 + strlen(boundary) + 2;
                size += strlen("Content-Disposition: form-data; name=\"\"") + strlen(pt->name);
                if (pt->filename)
                        size += strlen("; filename=\"\"") + strlen(pt->filename);
                size += 2;
                if (pt->content_type)
                        size += strlen("Content-Type: ") + strlen(pt->content_type) + 2;
                size += 2 + pt->size + 2;
        }
        size += 2 + strlen(boundary) + 4;

        body = malloc(size + 1);
        if (!body)
                return -ENOMEM;
        p = body;
        for (size_t i = 0; i < m->n_parts; i++) {
                const MultipartPart *pt = &m->parts[i];

                p += sprintf(p, "--%s\r\nContent-Disposition: form-data; name=\"%s\"", boundary, pt->name);
                if (pt->filename)
                        p += sprintf(p, "; filename=\"%s\"", pt->filename);
                p += sprintf(p, "\r\n");
                if (pt->content_type)
                        p += sprintf(p, "Content-Type: %s\r\n", pt->content_type);
                p += sprintf(p, "\r\n");
                if (pt->size > 0)
                        memcpy(p, pt->data, pt->size);
                p += pt->size;
                p += sprintf(p, "\r\n");
        }
        p += sprintf(p, "--%s--\r\n", boundary);
        if ((size_t) (p - body) != size) {
                erase_and_free(body, size + 1);
                return -EIO;
        }

        if (asprintf(&ctype, "multipart/form-data; boundary=%s", boundary) < 0) {
                erase_and_free(body, size + 1);
                return -ENOMEM;
        }
        *ret_body = body;
        *ret_size = size;
        *ret_content_type = TAKE_PTR(ctype);
        return 0;
}
