/* spec.h: a spec directory → one validated, immutable Generation
 * (bindery-spec(5)).
 *
 * spec_load() reads every *.yaml / *.yml file below the directory (hidden
 * entries and editor temporaries skipped), parses every document, checks
 * every rule, resolves references between documents, reads (and hashes)
 * every module file a Worker names, and canonicalises the result so that
 * equivalent specs give identical digests. Either every file is valid and
 * a Generation comes back, or nothing does and SpecErrors lists every
 * problem found as FILE:LINE:COLUMN: message.
 *
 * Pure core: no logging, no network; the only I/O is reading the spec
 * directory. Secret references are checked for form, never resolved.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "model.h"

/* Limits on untrusted input (STYLE rule 9), documented in bindery-spec(5). */
#define SPEC_MAX_FILES          4096            /* YAML files in one spec directory */
#define SPEC_MAX_FILE_SIZE      (16 * 1024 * 1024) /* bytes per YAML file (a generated 10,000-worker file) */
#define SPEC_MAX_MODULE_SIZE    (10 * 1024 * 1024) /* bytes per module file */
#define SPEC_MAX_DEPTH          32              /* YAML nesting of collections */
#define SPEC_MAX_DOCUMENTS      50000           /* documents in one generation (10,000 workers, a few resources each) */
#define SPEC_MAX_DIR_DEPTH      16              /* directory levels below the spec dir */
#define SPEC_MAX_MODULES        256             /* modules per Worker, main included */
#define SPEC_MAX_ERRORS         1000            /* errors kept; the rest are counted */
#define SPEC_MAX_TOTAL_YAML     (32 * 1024 * 1024)  /* bytes of YAML in one generation */
#define SPEC_MAX_TOTAL_MODULES  (128 * 1024 * 1024) /* bytes of modules read (and hashed) in one generation */
#define SPEC_MAX_MESSAGE        512             /* bytes of one error message (longer: cut, "...") */
#define SPEC_MAX_HINT_WORK      20000           /* "did you mean" comparisons in one load */

typedef struct SpecLimits {
        size_t max_files;
        size_t max_file_size;
        uint64_t max_module_size;
        unsigned max_depth;
        size_t max_documents;
        unsigned max_dir_depth;
        size_t max_modules;
        size_t max_errors;
        uint64_t max_total_yaml;    /* 0: unlimited */
        uint64_t max_total_modules; /* 0: unlimited */
        time_t now;                 /* the validator's clock (compatibility_date "in the future");
                                     * 0: time(NULL) when the load starts */
} SpecLimits;

/* The defaults above. */
extern const SpecLimits spec_limits_default;

/* One located problem. file is relative to the spec directory ("" when
 * the problem is the directory itself); line and column count from 1, 0
 * when unknown (a file that cannot be read). */
typedef struct SpecError {
        char *file;
        unsigned line;
        unsigned column;
        char *message;
} SpecError;

/* Every problem of one load, sorted by file, line, column (then in the
 * order found). Owned by the caller: zero-initialise, then spec_errors_done(). */
typedef struct SpecErrors {
        SpecError *errors;
        size_t n;
        size_t n_dropped;           /* errors past max_errors, counted only */
        size_t n_files;             /* spec files found by the last load (valid or not) */
} SpecErrors;

void spec_errors_done(SpecErrors *e);

/* "FILE:LINE:COLUMN: message" (no newline). Caller frees; NULL on OOM. */
char *spec_error_to_string(const SpecError *e);

/* {"file", "line", "column", "message"} objects in an array. New reference;
 * NULL on OOM. */
json_object *spec_errors_to_json(const SpecErrors *e);

/* What the operator grants spec writers (bindery-spec(5), "Secrets"):
 * who may write specs can read what is granted here, nothing else.
 *   credential NAME  any name except those in deny_credentials (the
 *                    daemon's own secrets)
 *   file PATH        only below files_dir (NULL: no file references at all;
 *                    the error names files_key), never below a deny_paths
 *                    entry (the state directory, the daemon's secret files)
 *   env VAR          only names in env, never a name in deny_env
 * Violations are load errors at the reference's FILE:LINE:COLUMN. */
typedef struct SpecGrant {
        char **deny_credentials;
        char *files_dir;            /* absolute */
        const char *files_key;      /* the config key that sets files_dir */
        char **deny_paths;          /* absolute */
        char **env;
        const char *env_key;        /* the config key that sets env */
        char **deny_env;
} SpecGrant;

void spec_grant_done(SpecGrant *g);

/* Checks a file reference (absolute, as the loader left it) against grant
 * now, where its symlinks lead at this moment: the engine calls it again
 * right before reading a spec secret file, so a symlink swapped in after
 * the load cannot reach the daemon's files. 0, or -EPERM and a message
 * (caller frees) naming the path. */
int spec_grant_check_file(const SpecGrant *grant, const char *path, char **reterr);

/* Loads spec_dir. Returns 0 and a new Generation in *ret (caller frees with
 * generation_free); -EINVAL when the spec has errors (all in errors, *ret
 * untouched); another -errno when the directory itself cannot be read (also
 * recorded in errors with file ""). errors is appended to. */
int spec_load(const char *spec_dir, Generation **ret, SpecErrors *errors);

/* As spec_load, with explicit limits (tests, fuzzing). */
int spec_load_with_limits(const char *spec_dir, const SpecLimits *limits,
                          Generation **ret, SpecErrors *errors);

/* As spec_load, checking every secret reference against grant (NULL: form
 * only, as spec_load). The daemon and the CLI load through this. */
int spec_load_granted(const char *spec_dir, const SpecGrant *grant, Generation **ret, SpecErrors *errors);

/* As spec_load_granted, for the daemon's loads: a worker whose document
 * (the same text in the same file of the same directory) and modules are
 * those of prev (a generation spec_reload made, or NULL) takes its digest
 * from prev instead of computing its canonical form again. The result is
 * the generation spec_load_granted gives, plus each worker's source_key. */
int spec_reload(const char *spec_dir, const SpecGrant *grant, const Generation *prev, Generation **ret,
                SpecErrors *errors);

/* Rule checks, exposed for unit tests. Each returns true when valid;
 * with reterr, a static reason on failure. */
bool spec_valid_cron(const char *s, const char **reterr);
bool spec_valid_compat_date(const char *s, time_t now, const char **reterr); /* now: the clock, time(NULL) */
bool spec_valid_js_identifier(const char *s) _pure_;
bool spec_valid_script_name(const char *s) _pure_;
bool spec_valid_bucket_name(const char *s) _pure_;
bool spec_valid_queue_name(const char *s) _pure_;
bool spec_valid_kv_title(const char *s) _pure_;
