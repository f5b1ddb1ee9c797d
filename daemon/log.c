/* log.c: see log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"
#include "util.h"

#define LOG_MESSAGE_MAX 8192
#define LOG_SECRETS_MAX 4096

typedef struct Secret {
        char *value;
        size_t size;
} Secret;

static int max_level = LOG_INFO;
static LogTarget target = LOG_TARGET_AUTO;
static LogTarget resolved = LOG_TARGET_AUTO;
static Secret *secrets;
static size_t n_secrets;
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

int log_register_secret(const void *value, size_t size) {
        Secret *n;

        if (!value || size < 4)
                return 0;
        for (size_t i = 0; i < n_secrets; i++)
                if (secrets[i].size == size && memcmp(secrets[i].value, value, size) == 0)
                        return 0;
        if (n_secrets >= LOG_SECRETS_MAX) {
                /* Full: forget the oldest value (a long-rotated one no code
                 * path holds any more) rather than refuse new secrets, so a
                 * daemon that rotates secrets for months keeps working. */
                erase_and_free(secrets[0].value, secrets[0].size);
                memmove(secrets, secrets + 1, sizeof(Secret) * (n_secrets - 1));
                n_secrets--;
        }
        n = realloc(secrets, sizeof(Secret) * (n_secrets + 1));
        if (!n)
                return -ENOMEM;
        secrets = n;
        secrets[n_secrets].value = malloc(size);
        if (!secrets[n_secrets].value)
                return -ENOMEM;
        memcpy(secrets[n_secrets].value, value, size);
        secrets[n_secrets].size = size;
        n_secrets++;
        return 0;
}

void log_forget_secrets(void) {
        for (size_t i = 0; i < n_secrets; i++)
                erase_and_free(secrets[i].value, secrets[i].size);
        secrets = mfree(secrets);
        n_secrets = 0;
}

char *log_redact(const char *msg) {
        static const char mark[] = "[redacted]";
        size_t len = strlen(msg), n = 0, cap = len + 1;
        char *out = malloc(cap);

        if (!out)
                return NULL;
        /* One left-to-right pass over the original: at each position the
         * longest registered secret that starts there is replaced, and the
         * scan resumes after it. The output is never rescanned, so a secret
         * that occurs inside the mark itself cannot loop. */
        for (size_t i = 0; i < len;) {
                size_t best = 0;

                for (size_t k = 0; k < n_secrets; k++)
                        if (secrets[k].size > best && secrets[k].size <= len - i &&
                            memcmp(msg + i, secrets[k].value, secrets[k].size) == 0)
                                best = secrets[k].size;
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
