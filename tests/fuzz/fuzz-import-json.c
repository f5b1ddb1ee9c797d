/* fuzz-import-json.c: libFuzzer target for "binderyd import" of JSON and
 * JSONC: each input goes through the comment and trailing-comma stripper
 * and json-c, then, when it parses, through the whole importer (one
 * configuration; its main and .dev.vars live in a directory that does not
 * exist, so nothing is read) and the output builder. Any crash, leak or
 * sanitizer report is a bug; errors and notes are expected. The TOML
 * reader (C++, toml++) is not linked into fuzzers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ImportSource src = { .display = "wrangler.jsonc", .dir = "/nonexistent-fuzz-import", .rel_dir = "" };
        ImportRun run = { .adopt = (size & 1) != 0, .output = "." };
        json_object *config = NULL;
        const char *err = NULL;
        unsigned line = 0, column = 0;

        if (import_parse_jsonc((const char *) data, size, &config, &err, &line, &column) == 0) {
                (void) import_config(&run, &src, config, NULL);
                (void) import_finish(&run);
                json_object_put(config);
        }
        import_run_done(&run);
        return 0;
}
