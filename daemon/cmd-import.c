/* cmd-import.c: `binderyd import [--output DIR] [--adopt] WRANGLER_CONFIG...`
 * (binderyd(8)). Reads the files, hands them to the pure importer
 * (import.h, import-toml.h), prints its notes and writes the files only
 * when there was no error: nothing half-written. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "commands.h"
#include "import-toml.h"
#include "import.h"
#include "log.h"
#include "util.h"

/* dir relative to out ("" when equal), or NULL when not below it. */
static char *relative_to(const char *out, const char *dir) {
        size_t l = strlen(out);

        if (streq(out, "/"))
                return strdup(dir + 1);
        if (strncmp(dir, out, l) != 0 || (dir[l] != '\0' && dir[l] != '/'))
                return NULL;
        return strdup(dir[l] ? dir + l + 1 : "");
}

static int import_file(ImportRun *run, const char *path, const char *out_abs) {
        _cleanup_free_ char *text = NULL, *dir = NULL, *dir_abs = NULL, *rel = NULL, *err = NULL;
        json_object *config = NULL, *lines = NULL;
        const char *jerr = NULL, *slash;
        unsigned line = 0, column = 0;
        ImportSource src = { .display = path };
        size_t size;
        int r;

        r = read_full_file(path, IMPORT_MAX_CONFIG_SIZE, &text, &size);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read: %m", path);
        slash = strrchr(path, '/');
        dir = slash ? strndup(path, (size_t) (slash - path) + (slash == path)) : strdup(".");
        if (!dir)
                return log_error_errno(ENOMEM, "Out of memory.");
        dir_abs = realpath(dir, NULL);
        if (!dir_abs)
                return log_error_errno(errno, "%s: cannot resolve its directory: %m", path);
        rel = relative_to(out_abs, dir_abs);
        src.dir = dir_abs;
        src.rel_dir = rel;
        src.toml = endswith(path, ".toml");
        if (src.toml) {
                r = import_toml_parse(text, size, &config, &lines, &err, &line, &column);
                if (r == -EINVAL) {
                        log_error("%s:%u:%u: %s", path, line, column, err);
                        return -EINVAL;
                }
                if (r < 0 && err) /* the TOML reader is missing or failed: err names it */
                        return log_error_errno(r, "%s: %s", path, err);
        } else if (endswith(path, ".json") || endswith(path, ".jsonc")) {
                r = import_parse_jsonc(text, size, &config, &jerr, &line, &column);
                if (r == -EINVAL) {
                        log_error("%s:%u:%u: %s", path, line, column, jerr);
                        return -EINVAL;
                }
        } else {
                log_error("%s: not a wrangler configuration (wrangler.toml, wrangler.json or wrangler.jsonc).",
                          path);
                return -EINVAL;
        }
        if (r < 0)
                return log_error_errno(r, "%s: %m", path);
        r = import_config(run, &src, config, lines);
        json_object_put(config);
        json_object_put(lines);
        if (r < 0)
                return log_error_errno(r, "%s: %m", path);
        return 0;
}

int cmd_import(const Options *o) {
        _cleanup_free_ char *out_abs = NULL;
        _cleanup_(import_run_done) ImportRun run = { .adopt = o->adopt };
        const char *out = o->output ?: ".";
        bool failed = false;
        int r;

        if (strv_length(o->args) == 0) {
                log_error("import: give at least one wrangler configuration (wrangler.toml, wrangler.json, "
                          "wrangler.jsonc).");
                return EXIT_USAGE;
        }
        if (mkdir(out, 0755) < 0 && errno != EEXIST)
                return log_error_errno(errno, "import: cannot create '%s': %m", out), EXIT_FAILED;
        out_abs = realpath(out, NULL);
        if (!out_abs)
                return log_error_errno(errno, "import: cannot resolve '%s': %m", out), EXIT_FAILED;
        /* The bundling recipe runs in the wrangler project: an absolute --outdir. */
        run.output = out_abs;

        for (size_t i = 0; o->args[i]; i++) {
                r = import_file(&run, o->args[i], out_abs);
                if (r == -ENOMEM)
                        return EXIT_FAILED;
                if (r < 0)
                        failed = true;
        }
        if (import_finish(&run) < 0)
                return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILED;
        for (size_t i = 0; i < run.n_notes; i++)
                fprintf(stderr, "%s%s\n", run.notes[i].error ? "error: " : "", run.notes[i].text);
        if (failed || run.n_errors > 0) {
                log_error("import: %zu errors; nothing written.", run.n_errors + (failed ? 1 : 0));
                return EXIT_FAILED;
        }
        for (size_t i = 0; i < run.n_files; i++) {
                _cleanup_free_ char *p = path_join(out, run.files[i].name);

                if (!p)
                        return log_error_errno(ENOMEM, "Out of memory."), EXIT_FAILED;
                r = write_file_atomic(p, run.files[i].content, strlen(run.files[i].content), 0644);
                if (r < 0)
                        return log_error_errno(r, "import: cannot write '%s': %m", p), EXIT_FAILED;
                printf("%s\n", p);
        }
        return EXIT_OK;
}
