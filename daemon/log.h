/* log.h: the one place that writes log output.
 *
 * Under journald (stderr is the journal stream, or the target is forced)
 * every message goes through sd_journal_send with structured fields:
 * PRIORITY, MESSAGE, BINDERY_RUN, BINDERY_RESOURCE, BINDERY_ACTION. On a
 * terminal it is one readable line per event on stderr.
 *
 * Secret values registered with log_register_secret() are replaced by
 * "[redacted]" in every message before it leaves the process: a second
 * guard behind the rule that no code ever formats a secret.
 *
 * log_*_errno(r, ...) set errno from r so "%m" works, and return -|r|, so
 * callers can write: return log_error_errno(r, "Failed to load '%s': %m", p);
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "cleanup.h"

typedef enum LogTarget {
        LOG_TARGET_AUTO,     /* journal if JOURNAL_STREAM matches stderr */
        LOG_TARGET_CONSOLE,
        LOG_TARGET_JOURNAL,
        _LOG_TARGET_MAX,
        _LOG_TARGET_INVALID = -EINVAL,
} LogTarget;

void log_set_target(LogTarget t);
void log_set_max_level(int level);
int log_get_max_level(void);
/* "debug", "info", "notice", "warning", "error" → LOG_*; -EINVAL if unknown. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);

/* Adds a value to redact. The log module keeps its own copy, wiped on
 * log_forget_secrets(). Values shorter than 4 bytes are not registered
 * (they would redact ordinary words). The newest 4096 distinct values are
 * kept; past that the oldest is forgotten. Returns 0 or -ENOMEM. */
int log_register_secret(const void *value, size_t size);
void log_forget_secrets(void);
/* Copies msg with every registered secret replaced. Caller frees. */
char *log_redact(const char *msg);

/* Structured context for the messages that follow (may be NULL). The
 * strings are copied. */
void log_set_context(const char *run, const char *resource, const char *action);

int log_internal(int level, int error, const char *file, int line,
                 const char *fmt, ...) _printf_(5, 6);
/* As log_internal, with explicit structured fields for this message only. */
int log_struct_internal(int level, int error, const char *run, const char *resource,
                        const char *action, const char *fmt, ...) _printf_(6, 7);

#define log_full_errno(level, error, ...)                                       \
        ({                                                                      \
                int _l = (level), _e = (error);                                 \
                (log_get_max_level() >= (_l & LOG_PRIMASK))                     \
                        ? log_internal(_l, _e, __FILE__, __LINE__, __VA_ARGS__) \
                        : -abs(_e);                                             \
        })
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_notice_errno(e, ...)  log_full_errno(LOG_NOTICE, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, e, __VA_ARGS__)

/* As log_struct_internal, with a BINDERY_REASON field too (redacted like
 * the message). */
int log_reason_internal(int level, const char *run, const char *resource, const char *reason,
                        const char *fmt, ...) _printf_(5, 6);
#define log_event_reason(level, run, resource, reason, ...) \
        (void) log_reason_internal((level), (run), (resource), (reason), __VA_ARGS__)

/* One event with its own BINDERY_RUN/RESOURCE/ACTION fields. */
#define log_event(level, run, resource, action, ...) \
        (void) log_struct_internal((level), 0, (run), (resource), (action), __VA_ARGS__)
