/* import.h: wrangler configurations → bindery spec files (binderyd(8)
 * "import").
 *
 * A wrangler configuration (already parsed into json-c: import-toml.h for
 * TOML, import_parse_jsonc() for JSON and JSONC) becomes one Worker per
 * top level and per [env.NAME], named as wrangler names them, plus the
 * resource documents its bindings name. What bindery cannot express is
 * reported (FILE:LINE for TOML, FILE and key path for JSON) and kept as a
 * comment in the output, never dropped. The output is deterministic: the
 * same input gives the same bytes.
 *
 * Pure apart from reading the worker's main module (to see whether it
 * needs bundling) and the names (never the values) in .dev.vars. No
 * logging: problems come back in ImportRun.notes.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* Limits on untrusted input. */
#define IMPORT_MAX_CONFIG_SIZE  (1024 * 1024)   /* bytes per wrangler config */
#define IMPORT_MAX_DEPTH        32              /* JSON nesting */
#define IMPORT_MAX_MAIN_SIZE    (10 * 1024 * 1024) /* main module scanned for imports */

typedef struct ImportNote {
        char *text;                 /* "FILE:LINE: message" or "FILE: key.path: message" */
        bool error;                 /* the import fails (nothing is written) */
} ImportNote;

typedef struct ImportFile {
        char *name;                 /* relative to the output directory */
        char *content;
} ImportFile;

typedef struct ImportResource ImportResource;

/* One import run over any number of configurations. Zero-initialise, set
 * adopt, call import_config() per file, then import_finish(); free with
 * import_run_done(). */
typedef struct ImportRun {
        bool adopt;                 /* --adopt */
        const char *output;         /* the output directory, absolute, for the bundling recipe */
        ImportNote *notes;
        size_t n_notes;
        size_t n_errors;
        ImportFile *files;          /* after import_finish(), sorted by name */
        size_t n_files;
        ImportResource *resources;  /* collected across configs */
        size_t n_resources;
        char **worker_names;
} ImportRun;

/* Where a configuration lives relative to the output directory. */
typedef struct ImportSource {
        const char *display;        /* the path as given, for notes and comments */
        const char *dir;            /* its directory, for reading main and .dev.vars */
        const char *rel_dir;        /* that directory relative to the output directory
                                     * ("" when equal), or NULL when outside it */
        bool toml;                  /* notes carry FILE:LINE */
} ImportSource;

/* Adds the workers and resources of one parsed configuration. lines maps
 * key paths to line numbers (TOML) or is NULL (JSON). Returns 0, or -ENOMEM. */
int import_config(ImportRun *run, const ImportSource *src, json_object *config, json_object *lines);

/* Builds the output files (one per worker, resources.yaml). -ENOMEM. */
int import_finish(ImportRun *run);

void import_run_done(ImportRun *run);

/* JSON or JSONC text (comments outside strings and trailing commas, as
 * wrangler accepts them) → json-c. -EINVAL with *ret_line, *ret_column
 * and a static message on a syntax error. */
int import_parse_jsonc(const char *text, size_t size, json_object **ret, const char **ret_error,
                       unsigned *ret_line, unsigned *ret_column);

/* Strips comments (replaced by blanks, newlines kept) and trailing commas
 * outside strings, in place. Exposed for tests. */
void import_strip_jsonc(char *text, size_t size);
