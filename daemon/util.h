/* util.h: small helpers every module uses. Non-logging, negative errno. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "cleanup.h"

#define USEC_PER_SEC  ((uint64_t) 1000000ULL)
#define USEC_PER_MSEC ((uint64_t) 1000ULL)
#define USEC_INFINITY ((uint64_t) UINT64_MAX)

/* *dst = a copy of s (NULL: NULL), the old value freed. 0 or -ENOMEM
 * (*dst unchanged). */
int free_and_strdup(char **dst, const char *s);

/* o's member k when o is an object and the member a string; else NULL. */
const char *json_get_str(json_object *o, const char *k);

/* NULL-terminated string vectors. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char * const *l) _pure_;
bool strv_contains(char * const *l, const char *s) _pure_;
/* Appends a copy of s; -ENOMEM leaves *l unchanged. */
int strv_extend(char ***l, const char *s) _warn_unused_result_;
/* Takes ownership of s (freed on failure too). */
int strv_consume(char ***l, char *s) _warn_unused_result_;
/* The same with the length kept by the caller in *n (advanced). */
int strv_consume_n(char ***l, size_t *n, char *s) _warn_unused_result_;
int strv_extend_n(char ***l, size_t *n, const char *s) _warn_unused_result_;
char **strv_copy(char * const *l);
/* l[from..to) (to past the end: up to it) as a JSON array, the bytes
 * json-c prints for an array of those strings (JSON_C_TO_STRING_PLAIN),
 * without a tree of them. Caller frees; NULL on OOM. */
char *strv_to_json_text(char * const *l, size_t from, size_t to);
/* Sorts in place (strcmp order) and removes adjacent duplicates. */
void strv_sort_uniq(char **l);
bool strv_equal(char * const *a, char * const *b) _pure_;

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)
#define isempty(s) (!(s) || !*(s))
static inline const char *strna(const char *s) {
        return s ? s : "n/a";
}

bool startswith(const char *s, const char *prefix) _pure_;
bool endswith(const char *s, const char *suffix) _pure_;

/* "30s", "5m", "6h", "1d", "250ms", "1h30m"; a bare number is seconds. */
int parse_duration(const char *s, uint64_t *ret_usec);
/* Formats microseconds as the shortest of the forms above. */
char *format_duration(uint64_t usec, char *buf, size_t n);
int safe_atou64(const char *s, uint64_t *ret);

/* Reads at most max bytes of a regular file; -EFBIG past that. The result
 * is NUL-terminated (not counted in *ret_size). Caller frees. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);
/* The same from an open file, from its start (pread: the offset is left
 * alone). */
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size);
/* The same from a pipe or socket, to its end (read: the offset moves). */
int read_full_stream(int fd, size_t max, char **ret, size_t *ret_size);

/* A buffer for a secret value: whole pages, marked MADV_DONTDUMP so a core
 * dump never holds it. Free with erase_and_free() like any other buffer.
 * NULL on OOM. */
void *secret_malloc(size_t size);

/* Makes the process non-dumpable (PR_SET_DUMPABLE 0: no core dump, no
 * ptrace by the same user) and sets RLIMIT_CORE to 0. Called first thing
 * in main(): the process will hold the account's API token. */
int process_harden(void);

/* Raises the soft RLIMIT_NOFILE to min(hard, want): the HTTP API keeps up
 * to ~1100 connections (epoll, never select()). */
void process_raise_nofile(rlim_t want);

/* Writes data to path atomically: temp file in the same directory, fsync,
 * rename, fsync of the directory. mode applies to the new file. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);
/* The same, the content written by fill to the temporary file as it
 * goes (nothing the file's size is held in memory); a negative return
 * from fill abandons the write (the temporary is removed) and is
 * returned. *ret_size (may be NULL): the bytes written. */
typedef int (*write_fill_fn)(FILE *out, void *userdata);
int write_file_atomic_with(const char *path, mode_t mode, write_fill_fn fill, void *userdata, uint64_t *ret_size);

/* Lower-case hex SHA-256 of a buffer (65 bytes with NUL). */
void sha256_hex(const void *data, size_t size, char ret[static 65]);
/* The same digest as 32 bytes. */
void sha256_raw(const void *data, size_t size, uint8_t ret[static 32]);
/* HMAC-SHA256 (RFC 2104) of data under key, 32 bytes. */
void hmac_sha256_raw(const void *key, size_t key_size, const void *data, size_t size, uint8_t ret[static 32]);

/* The same digest fed piece by piece (no buffer of the whole text):
 * sha256_begin() (NULL on OOM), sha256_feedf() formats and feeds (-ENOMEM),
 * sha256_end_hex() writes the hex digest and frees (accepts NULL: then
 * ret is ""). */
typedef struct sha256_ctx Sha256; /* nettle's, opaque here */
Sha256 *sha256_begin(void);
int sha256_feedf(Sha256 *s, const char *fmt, ...) _printf_(2, 3);
void sha256_end_hex(Sha256 *s, char ret[static 65]);
/* A copy of the state so far (NULL on OOM), and freeing one unfinished. */
Sha256 *sha256_copy(const Sha256 *s);
Sha256 *sha256_free(Sha256 *s);

/* Joins a and b with one '/'. Caller frees; NULL on OOM. */
char *path_join(const char *a, const char *b);

/* Monotonic and realtime clocks in microseconds. */
uint64_t now_monotonic_usec(void);
uint64_t now_realtime_usec(void);

/* RFC 3339 UTC ("2026-11-23T09:02:19Z") from microseconds since the epoch. */
char *format_rfc3339(uint64_t usec, char *buf, size_t n);

/* Fills p with n bytes from getrandom(2) (blocking until the kernel's
 * pool is ready; interrupted and short reads are resumed). 0 or -errno. */
int random_bytes(void *p, size_t n);

/* Constant-time comparison of two buffers of possibly different length. */
bool memeq_consttime(const void *a, size_t na, const void *b, size_t nb);

/* Optimal string alignment distance (Damerau-Levenshtein without repeated
 * edits of one substring), for "did you mean"; strings longer than 64 bytes
 * are "far" (UINT_MAX / 2). The one edit distance of config and spec. */
unsigned edit_distance(const char *a, const char *b) _pure_;

/* A set of strings (json-c's hash table; keys copied). The one string-set
 * helper: strset_put returns 0 (also when already there) or -ENOMEM. */
typedef struct lh_table StrSet;
StrSet *strset_new(void);
StrSet *strset_free(StrSet *s);
int strset_put(StrSet *s, const char *k);
bool strset_contains(const StrSet *s, const char *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(StrSet *, strset_free);
