/* log.c: see log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "util.h"

#define LOG_MESSAGE_MAX 8192
#define LOG_SECRETS_MAX 4096

/* A registered secret, without its plaintext: a core dump or a memory
 * read of the redaction list yields no value. log_redact() finds
 * candidates with a rolling (Rabin-Karp) hash under a random base and
 * confirms them with SHA-256 under a random per-process key. */
typedef struct Secret {
        size_t size;
        uint64_t rk;                /* rolling hash of the value */
        uint64_t top;               /* base^(size-1), to roll the hash */
        unsigned char mac[32];      /* SHA-256(key || value), key secret and fixed-size */
} Secret;

typedef struct RedactKey {
        unsigned char key[32];
        uint64_t base;
        bool ready;
} RedactKey;

static int max_level = LOG_INFO;
static LogTarget target = LOG_TARGET_AUTO;
static LogTarget resolved = LOG_TARGET_AUTO;
static Secret *secrets;
static size_t n_secrets, a_secrets;
static RedactKey *redact_key;       /* in a MADV_DONTDUMP page */
static char *ctx_run, *ctx_resource, *ctx_action;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",
        [LOG_ERR] = "error",       [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",       [LOG_DEBUG] = "debug",
};

void log_set_target(LogTarget t) {
        target = t;
        resolved = LOG_TARGET_AUTO;
}

void log_set_max_level(int level) {
        max_level = level & LOG_PRIMASK;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (level_names[i] && streq(level_names[i], s))
                        return (int) i;
        if (streq(s, "err"))
                return LOG_ERR;
        if (streq(s, "warn"))
                return LOG_WARNING;
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        level &= LOG_PRIMASK;
        return level_names[level];
}

/* stderr is connected to the journal when JOURNAL_STREAM names its
 * device and inode (systemd.exec(5)). */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

static LogTarget log_resolve_target(void) {
        if (resolved != LOG_TARGET_AUTO)
                return resolved;
        if (target != LOG_TARGET_AUTO)
                resolved = target;
        else
                resolved = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_CONSOLE;
        return resolved;
}

static int redact_key_init(void) {
        if (redact_key && redact_key->ready)
                return 0;
        if (!redact_key) {
                redact_key = secret_malloc(sizeof(RedactKey));
                if (!redact_key)
                        return -ENOMEM;
                memset(redact_key, 0, sizeof(RedactKey));
        }
        if (random_bytes(redact_key->key, sizeof(redact_key->key)) < 0 ||
            random_bytes(&redact_key->base, sizeof(redact_key->base)) < 0)
                return -EIO;
        redact_key->base |= 1;
        redact_key->ready = true;
        return 0;
}

static uint64_t rk_hash(const unsigned char *p, size_t n) {
        uint64_t h = 0;

        for (size_t i = 0; i < n; i++)
                h = h * redact_key->base + p[i];
        return h;
}

/* SHA-256 of the random key and the value: only ever compared for
 * equality, so no length extension matters. On the stack, no allocation. */
static void secret_mac(const void *p, size_t n, unsigned char ret[static 32]) {
        struct sha256_ctx c;

        sha256_init(&c);
        sha256_update(&c, sizeof(redact_key->key), redact_key->key);
        sha256_update(&c, n, p);
        sha256_digest(&c, SHA256_DIGEST_SIZE, ret);
        explicit_bzero(&c, sizeof(c));
}

int log_register_secret(const void *value, size_t size) {
        Secret x = { .size = size }, *n;
        int r;

        if (!value || size < 4)
                return 0;
        r = redact_key_init();
        if (r < 0)
                return r;
        x.rk = rk_hash(value, size);
        x.top = 1;
        for (size_t i = 1; i < size; i++)
                x.top *= redact_key->base;
        secret_mac(value, size, x.mac);
        for (size_t i = 0; i < n_secrets; i++)
                if (secrets[i].size == size && secrets[i].rk == x.rk &&
                    memeql_sec(secrets[i].mac, x.mac, 32))
                        return 0;
        if (n_secrets >= LOG_SECRETS_MAX) {
                /* Full: forget the oldest value (a long-rotated one no code
                 * path holds any more) rather than refuse new secrets, so a
                 * daemon that rotates secrets for months keeps working. */
                memmove(secrets, secrets + 1, sizeof(Secret) * (n_secrets - 1));
                n_secrets--;
        }
        if (n_secrets >= a_secrets) {
                size_t na = a_secrets ? a_secrets * 2 : 16;

                n = realloc(secrets, sizeof(Secret) * na);
                if (!n)
                        return -ENOMEM;
                secrets = n;
                a_secrets = na;
        }
        secrets[n_secrets++] = x;
        return 0;
}

void log_forget_secrets(void) {
        secrets = mfree(secrets);
        n_secrets = a_secrets = 0;
}

char *log_redact(const char *msg) {
        static const char mark[] = "[redacted]";
        size_t len = strlen(msg), n = 0, cap = len + 1;
        _cleanup_free_ size_t *match = NULL;
        char *out;

        if (n_secrets > 0 && len >= 4) {
                const unsigned char *m = (const unsigned char *) msg;

                /* match[i]: the longest registered secret starting at i. */
                match = calloc(len, sizeof(size_t));
                if (!match)
                        return NULL;
                for (size_t k = 0; k < n_secrets; k++) {
                        const Secret *x = &secrets[k];
                        uint64_t h;

                        if (x->size > len)
                                continue;
                        h = rk_hash(m, x->size);
                        for (size_t i = 0;; i++) {
                                unsigned char mac[32];

                                if (h == x->rk && x->size > match[i]) {
                                        secret_mac(m + i, x->size, mac);
                                        if (memeql_sec(mac, x->mac, 32))
                                                match[i] = x->size;
                                }
                                if (i + x->size >= len)
                                        break;
                                h = (h - m[i] * x->top) * redact_key->base + m[i + x->size];
                        }
                }
        }
        out = malloc(cap);
        if (!out)
                return NULL;
        /* One left-to-right pass over the original: at each position the
         * longest registered secret that starts there is replaced, and the
         * scan resumes after it. The output is never rescanned, so a secret
         * that occurs inside the mark itself cannot loop. */
        for (size_t i = 0; i < len;) {
                size_t best = match ? match[i] : 0;

                if (n + (best ? sizeof(mark) - 1 : 1) + 1 > cap) {
                        size_t ncap = cap * 2 + sizeof(mark);
                        char *t = malloc(ncap);

                        if (!t) {
                                erase_and_free(out, cap);
                                return NULL;
                        }
                        memcpy(t, out, n);
                        erase_and_free(out, cap);
                        out = t;
                        cap = ncap;
                }
                if (best) {
                        memcpy(out + n, mark, sizeof(mark) - 1);
                        n += sizeof(mark) - 1;
                        i += best;
                } else
                        out[n++] = msg[i++];
        }
        out[n] = 0;
        return out;
}

static void set_field(char **f, const char *v) {
        free(*f);
        *f = v ? strdup(v) : NULL;
}

void log_set_context(const char *run, const char *resource, const char *action) {
        set_field(&ctx_run, run);
        set_field(&ctx_resource, resource);
        set_field(&ctx_action, action);
}

static const char *emit_reason;      /* set only inside log_reason_internal() */

static void log_emit(int level, const char *run, const char *resource, const char *action,
                     const char *file, int line, const char *raw) {
        _cleanup_free_ char *msg = log_redact(raw);
        const char *m = msg ? msg : "(log message dropped: out of memory)";

        if (log_resolve_target() == LOG_TARGET_JOURNAL) {
                char pri[16];

                snprintf(pri, sizeof(pri), "PRIORITY=%d", level & LOG_PRIMASK);
                if (emit_reason) {
                        _cleanup_free_ char *why = log_redact(emit_reason);

                        (void) sd_journal_send("MESSAGE=%s", m, "%s", pri,
                                               "SYSLOG_IDENTIFIER=binderyd",
                                               "BINDERY_RUN=%s", run ? run : "",
                                               "BINDERY_RESOURCE=%s", resource ? resource : "",
                                               "BINDERY_REASON=%s", why ? why : "",
                                               NULL);
                        return;
                }
                (void) sd_journal_send("MESSAGE=%s", m, "%s", pri,
                                       "SYSLOG_IDENTIFIER=binderyd",
                                       "BINDERY_RUN=%s", run ? run : "",
                                       "BINDERY_RESOURCE=%s", resource ? resource : "",
                                       "BINDERY_ACTION=%s", action ? action : "",
                                       "CODE_FILE=%s", file ? file : "",
                                       "CODE_LINE=%d", line,
                                       NULL);
                return;
        }

        /* Console: "LEVEL [run] resource action: message". */
        {
                char prefix[512];
                int n = 0;

                n += snprintf(prefix + n, sizeof(prefix) - (size_t) n, "%-7s",
                              log_level_to_string(level));
                if (run && n < (int) sizeof(prefix))
                        n += snprintf(prefix + n, sizeof(prefix) - (size_t) n, " [%s]", run);
                if (resource && n < (int) sizeof(prefix))
                        n += snprintf(prefix + n, sizeof(prefix) - (size_t) n, " %s", resource);
                if (action && n < (int) sizeof(prefix))
                        (void) snprintf(prefix + n, sizeof(prefix) - (size_t) n, " %s", action);
                fprintf(stderr, "%s: %s\n", prefix, m);
        }
}

_printf_(8, 0)
static int log_vformat(int level, int error, const char *run, const char *resource,
                       const char *action, const char *file, int line, const char *fmt,
                       va_list ap) {
        char buf[LOG_MESSAGE_MAX];
        int saved = errno;

        if (error != 0)
                errno = abs(error);
        (void) vsnprintf(buf, sizeof(buf), fmt, ap);
        log_emit(level, run, resource, action, file, line, buf);
        explicit_bzero(buf, sizeof(buf));
        errno = saved;
        return -abs(error);
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = log_vformat(level, error, ctx_run, ctx_resource, ctx_action, file, line, fmt, ap);
        va_end(ap);
        return r;
}

int log_struct_internal(int level, int error, const char *run, const char *resource,
                        const char *action, const char *fmt, ...) {
        va_list ap;
        int r;

        if (max_level < (level & LOG_PRIMASK))
                return -abs(error);
        va_start(ap, fmt);
        r = log_vformat(level, error, run ? run : ctx_run, resource, action, NULL, 0, fmt, ap);
        va_end(ap);
        return r;
}

int log_reason_internal(int level, const char *run, const char *resource, const char *reason,
                        const char *fmt, ...) {
        va_list ap;
        int r;

        if (max_level < (level & LOG_PRIMASK))
                return 0;
        emit_reason = reason ? reason : "";
        va_start(ap, fmt);
        r = log_vformat(level, 0, run ? run : ctx_run, resource, NULL, NULL, 0, fmt, ap);
        va_end(ap);
        emit_reason = NULL;
        return r;
}
