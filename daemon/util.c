/* util.c: see util.h. */
#include <assert.h>
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>

#include "util.h"

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t strv_length(char * const *l) {
        size_t n = 0;

        if (!l)
                return 0;
        while (l[n])
                n++;
        return n;
}

bool strv_contains(char * const *l, const char *s) {
        if (!l)
                return false;
        for (char * const *i = l; *i; i++)
                if (streq(*i, s))
                        return true;
        return false;
}

int strv_consume(char ***l, char *s) {
        size_t n;
        char **c;

        if (!s)
                return -ENOMEM;
        n = strv_length(*l);
        c = realloc(*l, sizeof(char *) * (n + 2));
        if (!c) {
                free(s);
                return -ENOMEM;
        }
        c[n] = s;
        c[n + 1] = NULL;
        *l = c;
        return 0;
}

int strv_extend(char ***l, const char *s) {
        return strv_consume(l, strdup(s));
}

/* strv_consume() for a caller that keeps the length: *n is the length of
 * *l and is advanced, so building a list of n strings does not rescan it
 * n times (quadratic in strv_length). */
int strv_consume_n(char ***l, size_t *n, char *s) {
        char **c;

        assert(n);
        if (!s)
                return -ENOMEM;
        c = realloc(*l, sizeof(char *) * (*n + 2));
        if (!c) {
                free(s);
                return -ENOMEM;
        }
        c[*n] = s;
        c[++*n] = NULL;
        *l = c;
        return 0;
}

int strv_extend_n(char ***l, size_t *n, const char *s) {
        return strv_consume_n(l, n, strdup(s));
}

char **strv_copy(char * const *l) {
        _cleanup_strv_free_ char **c = NULL;
        size_t n = strv_length(l);

        c = calloc(n + 1, sizeof(char *));
        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                c[i] = strdup(l[i]);
                if (!c[i])
                        return NULL;
        }
        return TAKE_PTR(c);
}

char *strv_to_json_text(char * const *l, size_t from, size_t to) {
        _cleanup_(json_object_putp) json_object *one = json_object_new_string("");
        char *buf = NULL;
        size_t size = 0;
        FILE *f;
        bool ok = one;

        if (!one)
                return NULL;
        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        fputc('[', f);
        for (size_t i = from; ok && i < to && l && l[i]; i++) {
                /* One string object reused: json-c's own escaping. */
                const char *s = json_object_set_string(one, l[i]) ?
                        json_object_to_json_string_ext(one, JSON_C_TO_STRING_PLAIN) : NULL;

                if (!s)
                        ok = false;
                else
                        fprintf(f, "%s%s", i > from ? "," : "", s);
        }
        fputc(']', f);
        if (fclose(f) != 0 || !ok) {
                free(buf);
                return NULL;
        }
        return buf;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char * const *) a, *(char * const *) b);
}

void strv_sort_uniq(char **l) {
        size_t n = strv_length(l), w = 0;

        if (n < 2)
                return;
        qsort(l, n, sizeof(char *), cmp_str);
        for (size_t r = 0; r < n; r++) {
                if (w > 0 && streq(l[w - 1], l[r])) {
                        free(l[r]);
                        continue;
                }
                l[w++] = l[r];
        }
        l[w] = NULL;
}

bool strv_equal(char * const *a, char * const *b) {
        size_t na = strv_length(a), nb = strv_length(b);

        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return true;
}

bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool endswith(const char *s, const char *suffix) {
        size_t ls = strlen(s), lx = strlen(suffix);

        return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

int safe_atou64(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (isempty(s) || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_duration(const char *s, uint64_t *ret_usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                /* Longest first so "ms" wins over "m". */
                { "ms", USEC_PER_MSEC },
                { "us", 1 },
                { "s", USEC_PER_SEC },
                { "m", 60 * USEC_PER_SEC },
                { "h", 3600 * USEC_PER_SEC },
                { "d", 86400 * USEC_PER_SEC },
        };
        uint64_t total = 0;
        const char *p = s;

        if (isempty(s))
                return -EINVAL;
        while (*p) {
                uint64_t v = 0, unit = USEC_PER_SEC;
                bool digits = false, matched = false;

                while (isdigit((unsigned char) *p)) {
                        if (v > (UINT64_MAX - 9) / 10)
                                return -ERANGE;
                        v = v * 10 + (uint64_t) (*p - '0');
                        p++;
                        digits = true;
                }
                if (!digits)
                        return -EINVAL;
                for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                        size_t l = strlen(units[i].suffix);

                        if (strncmp(p, units[i].suffix, l) == 0) {
                                unit = units[i].usec;
                                p += l;
                                matched = true;
                                break;
                        }
                }
                /* A bare number is seconds, but only as the whole string. */
                if (!matched && (p != s + strspn(s, "0123456789") || *p))
                        return -EINVAL;
                if (v > 0 && unit > UINT64_MAX / v)
                        return -ERANGE;
                if (total > UINT64_MAX - v * unit)
                        return -ERANGE;
                total += v * unit;
        }
        *ret_usec = total;
        return 0;
}

char *format_duration(uint64_t usec, char *buf, size_t n) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "d", 86400 * USEC_PER_SEC }, { "h", 3600 * USEC_PER_SEC },
                { "m", 60 * USEC_PER_SEC },    { "s", USEC_PER_SEC },
                { "ms", USEC_PER_MSEC },       { "us", 1 },
        };

        if (usec == USEC_INFINITY) {
                snprintf(buf, n, "infinity");
                return buf;
        }
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (usec % units[i].usec == 0 && (usec > 0 || i == 3)) {
                        snprintf(buf, n, "%llu%s", (unsigned long long) (usec / units[i].usec),
                                 units[i].suffix);
                        return buf;
                }
        snprintf(buf, n, "%lluus", (unsigned long long) usec);
        return buf;
}

int process_harden(void) {
        struct rlimit rl = {};

        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return -errno;
        if (setrlimit(RLIMIT_CORE, &rl) < 0)
                return -errno;
        return 0;
}

void process_raise_nofile(rlim_t want) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
                return;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
}

void *secret_malloc(size_t size) {
        long ps = sysconf(_SC_PAGESIZE);
        size_t page = ps > 0 ? (size_t) ps : 4096, n;
        void *p = NULL;

        if (size > SIZE_MAX - page)
                return NULL;
        n = (size + page - 1) / page * page;
        if (n == 0)
                n = page;
        if (posix_memalign(&p, page, n) != 0)
                return NULL;
        (void) madvise(p, n, MADV_DONTDUMP);
        return p;
}

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        return read_full_fd(fd, max, ret, ret_size);
}

/* Reads fd to its end into a buffer of alloc bytes (grown by doubling,
 * capped at max + 2 so one byte past max is seen): with pread from
 * offset 0 when positional, else with read from where the fd stands. */
static int read_to_end(int fd, bool positional, size_t max, size_t alloc, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;

        if (alloc > max + 2)
                alloc = max + 2;
        buf = malloc(alloc);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k;

                if (size + 1 >= alloc) {
                        char *n;

                        if (alloc > max + 1)
                                return -EFBIG;
                        alloc = alloc * 2 > max + 1 ? max + 2 : alloc * 2;
                        n = realloc(buf, alloc);
                        if (!n)
                                return -ENOMEM;
                        buf = n;
                }
                k = positional ? pread(fd, buf + size, alloc - size - 1, (off_t) size)
                               : read(fd, buf + size, alloc - size - 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                size += (size_t) k;
                if (size > max)
                        return -EFBIG;
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        return read_to_end(fd, true, max, (size_t) st.st_size + 1, ret, ret_size);
}

int read_full_stream(int fd, size_t max, char **ret, size_t *ret_size) {
        return read_to_end(fd, false, max, 64 * 1024, ret, ret_size);
}

int write_file_atomic_with(const char *path, mode_t mode, write_fill_fn fill, void *userdata, uint64_t *ret_size) {
        _cleanup_free_ char *tmp = NULL, *dir = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        _cleanup_fclose_ FILE *out = NULL;
        char *slash;
        off_t size;
        int r;

        if (asprintf(&tmp, "%s.tmp.%d", path, (int) getpid()) < 0)
                return -ENOMEM;
        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash == dir)
                slash[1] = 0;
        else if (slash)
                *slash = 0;
        else
                strcpy(dir, ".");

        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        if (fchmod(fd, mode) < 0) {
                r = -errno;
                goto fail;
        }
        out = fdopen(fd, "w");
        if (!out) {
                r = -errno;
                goto fail;
        }
        fd = -EBADF;    /* owned by out now */
        r = fill(out, userdata);
        if (r < 0)
                goto fail;
        if (fflush(out) != 0 || ferror(out)) {
                r = errno > 0 ? -errno : -EIO;
                goto fail;
        }
        size = ftello(out);
        if (fsync(fileno(out)) < 0) {
                r = -errno;
                goto fail;
        }
        if (fclose(TAKE_PTR(out)) != 0) {
                r = errno > 0 ? -errno : -EIO;
                goto fail;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                goto fail;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        if (ret_size)
                *ret_size = size > 0 ? (uint64_t) size : 0;
        return 0;
fail:
        (void) unlink(tmp);
        return r;
}

typedef struct FillBuffer {
        const void *data;
        size_t size;
} FillBuffer;

static int fill_buffer(FILE *out, void *userdata) {
        const FillBuffer *b = userdata;

        return fwrite(b->data, 1, b->size, out) == b->size ? 0 : (errno > 0 ? -errno : -EIO);
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) {
        FillBuffer b = { .data = data, .size = size };

        return write_file_atomic_with(path, mode, fill_buffer, &b, NULL);
}

static void hex32(const unsigned char md[32], char ret[static 65]) {
        static const char hex[] = "0123456789abcdef";

        for (unsigned i = 0; i < 32; i++) {
                ret[2 * i] = hex[md[i] >> 4];
                ret[2 * i + 1] = hex[md[i] & 0xf];
        }
        ret[64] = '\0';
}

void sha256_raw(const void *data, size_t size, uint8_t ret[static 32]) {
        struct sha256_ctx c;

        sha256_init(&c);
        sha256_update(&c, size, data);
        sha256_digest(&c, SHA256_DIGEST_SIZE, ret);
}

void sha256_hex(const void *data, size_t size, char ret[static 65]) {
        unsigned char md[32];

        sha256_raw(data, size, md);
        hex32(md, ret);
}

void hmac_sha256_raw(const void *key, size_t key_size, const void *data, size_t size, uint8_t ret[static 32]) {
        struct hmac_sha256_ctx c;

        hmac_sha256_set_key(&c, key_size, key);
        hmac_sha256_update(&c, size, data);
        hmac_sha256_digest(&c, SHA256_DIGEST_SIZE, ret);
        explicit_bzero(&c, sizeof(c)); /* the key's inner and outer states */
}

Sha256 *sha256_begin(void) {
        Sha256 *c = malloc(sizeof(Sha256));

        if (c)
                sha256_init(c);
        return c;
}

int sha256_feedf(Sha256 *s, const char *fmt, ...) {
        char buf[1024], *p = buf;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        if ((size_t) n >= sizeof(buf)) {
                va_start(ap, fmt);
                n = vasprintf(&p, fmt, ap);
                va_end(ap);
                if (n < 0)
                        return -ENOMEM;
        }
        sha256_update(s, (size_t) n, (const uint8_t *) p);
        if (p != buf)
                free(p);
        return 0;
}

Sha256 *sha256_copy(const Sha256 *s) {
        Sha256 *c = malloc(sizeof(Sha256));

        if (c)
                *c = *s;
        return c;
}

Sha256 *sha256_free(Sha256 *s) {
        return mfree(s);
}

void sha256_end_hex(Sha256 *s, char ret[static 65]) {
        unsigned char md[32];

        if (!s) {
                ret[0] = '\0';
                return;
        }
        sha256_digest(s, SHA256_DIGEST_SIZE, md);
        free(s);
        hex32(md, ret);
}

char *path_join(const char *a, const char *b) {
        char *r;
        size_t la = strlen(a);

        while (*b == '/')
                b++;
        if (asprintf(&r, "%s%s%s", a, la > 0 && a[la - 1] == '/' ? "" : "/", b) < 0)
                return NULL;
        return r;
}

static uint64_t clock_usec(clockid_t id) {
        struct timespec ts;

        (void) clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

uint64_t now_monotonic_usec(void) {
        return clock_usec(CLOCK_MONOTONIC);
}

uint64_t now_realtime_usec(void) {
        return clock_usec(CLOCK_REALTIME);
}

char *format_rfc3339(uint64_t usec, char *buf, size_t n) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
                if (n > 0)
                        buf[0] = 0;
        }
        return buf;
}

int random_bytes(void *p, size_t n) {
        uint8_t *q = p;

        while (n > 0) {
                ssize_t k = getrandom(q, n, 0);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                q += k;
                n -= (size_t) k;
        }
        return 0;
}

bool memeq_consttime(const void *a, size_t na, const void *b, size_t nb) {
        /* Compare equal lengths with nettle's memeql_sec; a length mismatch
         * still runs one comparison so timing does not reveal the prefix. */
        if (na != nb) {
                (void) memeql_sec(a, a, na);
                return false;
        }
        return memeql_sec(a, b, na) != 0;
}

unsigned edit_distance(const char *a, const char *b) {
        /* Optimal string alignment distance over three rows; keys are short,
         * and anything longer than 64 bytes is simply "far". */
        unsigned rows[3][65], *pp = rows[0], *p = rows[1], *cur = rows[2];
        size_t la = strlen(a), lb = strlen(b);

        if (la > 64 || lb > 64)
                return UINT_MAX / 2;
        for (size_t j = 0; j <= lb; j++)
                p[j] = (unsigned) j;
        for (size_t i = 1; i <= la; i++) {
                unsigned *t;

                cur[0] = (unsigned) i;
                for (size_t j = 1; j <= lb; j++) {
                        unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
                        unsigned v = p[j] + 1;

                        if (cur[j - 1] + 1 < v)
                                v = cur[j - 1] + 1;
                        if (p[j - 1] + cost < v)
                                v = p[j - 1] + cost;
                        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                            pp[j - 2] + 1 < v)
                                v = pp[j - 2] + 1;
                        cur[j] = v;
                }
                t = pp;
                pp = p;
                p = cur;
                cur = t;
        }
        return p[lb];
}

static void strset_entry_free(struct lh_entry *e) {
        free(lh_entry_k(e));
}

StrSet *strset_new(void) {
        return lh_kchar_table_new(16, strset_entry_free);
}

StrSet *strset_free(StrSet *s) {
        if (s)
                lh_table_free(s);
        return NULL;
}

bool strset_contains(const StrSet *s, const char *k) {
        return s && k && lh_table_lookup_ex((StrSet *) s, k, NULL);
}

int strset_put(StrSet *s, const char *k) {
        char *c;

        assert(s);
        assert(k);
        if (strset_contains(s, k))
                return 0;
        c = strdup(k);
        if (!c)
                return -ENOMEM;
        if (lh_table_insert(s, c, NULL) < 0) {
                free(c);
                return -ENOMEM;
        }
        return 0;
}

int free_and_strdup(char **dst, const char *s) {
        char *c = NULL;

        if (s && !(c = strdup(s)))
                return -ENOMEM;
        free(*dst);
        *dst = c;
        return 0;
}

const char *json_get_str(json_object *o, const char *k) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}
