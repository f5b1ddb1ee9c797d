/* spec-internal.h: what spec.c (files, documents, fields) and
 * spec-validate.c (cross-references, canonical form) share. The shared
 * functions live in spec-common.c (errors, digests, suggestions) and the
 * single-value rules in spec-rules.c, so spec.c calls spec-validate.c and
 * never the reverse. Not for other modules: use spec.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "model.h"
#include "spec-yaml.h"

struct lh_table;
#include "spec.h"

typedef struct SpecCtx {
        const SpecLimits *limits;
        SpecErrors *errors;
        Generation *g;
        char *root;                 /* realpath of the spec directory */
        int root_fd;                /* O_PATH fd of root, for openat2 */
        bool no_openat2;
        const SpecGrant *grant;     /* NULL: secret references checked for form only */
        struct lh_table *modules_read;      /* rel path → ModuleRead: each module file read once per load */
        bool reload;                /* spec_reload(): each worker gets its source_key */
        const Generation *prev;     /* spec_reload(): the generation before, loaded; else NULL */
        time_t now;                 /* the validator's clock: limits->now or time(NULL) */
        size_t hint_work;
        uint64_t total_yaml, total_modules; /* bytes read so far (SPEC_MAX_TOTAL_*) */
        bool total_yaml_exceeded, total_modules_exceeded;           /* "did you mean" comparisons so far (SPEC_MAX_HINT_WORK) */
        const char *file;           /* current file, relative; points into g->files */
        char *file_dir;             /* its directory, relative ("" at the top) */
        size_t n_documents;
        char **do_broken;           /* workers whose durable_objects section had errors */
        bool documents_exceeded;
        bool oom;
        const struct NameIndexes *index;    /* during spec_validate_generation only */
        /* allocated lengths of the Generation arrays */
        size_t a_workers, a_kv, a_r2, a_d1, a_queues, a_stores, a_secrets;
} SpecCtx;

/* Records an error at file:line:column (control characters in the message
 * become '?'). On OOM sets c->oom. */
void spec_errorf(SpecCtx *c, const char *file, unsigned line, unsigned column,
                 const char *fmt, ...) _printf_(5, 6);
#define spec_error_at(c, loc, ...) \
        spec_errorf((c), (loc).file, (loc).line, (loc).column, __VA_ARGS__)

/* Cross-document rules: duplicates, references, Durable Object classes,
 * the default store, consumers. Then canonical order and digests. */
void spec_validate_generation(SpecCtx *c);
int spec_finalize_generation(SpecCtx *c);

/* Damerau-style suggestion: the name in names[] (NULL-terminated) closest
 * to s, or NULL when none is close enough. Names whose length differs by
 * more than the allowed distance are not compared. */
const char *spec_suggest(const char *s, const char *const *names);

/* spec-rules.c: the next field of p (fields are separated by spaces or
 * tabs): its start, its length in *ret_len; NULL when none is left. */
const char *spec_next_field(const char *p, size_t *ret_len);

/* spec-files.c: the loader's file and directory I/O. */
int spec_open_beneath(SpecCtx *c, const char *rel);
const char *spec_file_type_name(mode_t m) _pure_;
bool spec_read_file(SpecCtx *c, const char *rel, char **ret, size_t *ret_size);
/* Collects the spec files below root/rel into *files (relative paths),
 * sorted per directory, within the limits on files and depth. */
void spec_scan_dir(SpecCtx *c, const char *rel, unsigned depth, char ***files, size_t *n_files);
