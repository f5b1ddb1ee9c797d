/* fuzz-spec.c: libFuzzer target for the spec loader. Each input is parsed
 * by the YAML layer directly, then written as spec.yaml into a private spec
 * directory (which also holds a small module, w.js, so Worker documents get
 * as far as module loading) and loaded as a whole generation; a valid
 * generation is also rendered as TypeScript for each worker. Any crash,
 * leak or sanitizer report is a bug; errors are expected. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spec-yaml.h"
#include "spec.h"
#include "types.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dir, *spec_path;

static void setup(void) {
        char *w;

        dir = strdup("/tmp/fuzz-spec.XXXXXX");
        if (!dir || !mkdtemp(dir))
                abort();
        spec_path = path_join(dir, "spec.yaml");
        w = path_join(dir, "w.js");
        if (!spec_path || !w || write_file_atomic(w, "export default {};\n", 19, 0644) < 0)
                abort();
        free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        SpecYamlLimits l = { .max_depth = SPEC_MAX_DEPTH, .max_nodes = 1 << 16, .max_documents = 64 };
        SpecYamlErrors ye = {};
        SpecErrors e = {};
        SpecNode **docs = NULL;
        Generation *g = NULL;
        size_t n = 0;
        FILE *f;

        if (size > 64 * 1024)
                return 0;
        if (!dir)
                setup();

        if (spec_yaml_parse((const char *) data, size, &l, &docs, &n, &ye) == 0)
                spec_yaml_documents_free(docs, n);
        spec_yaml_errors_done(&ye);

        /* Plain write: no fsync, the file only has to be there for the load. */
        f = fopen(spec_path, "we");
        if (!f || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
                abort();
        if (spec_load(dir, &g, &e) == 0) {
                for (size_t i = 0; i < g->n_workers; i++) {
                        char *ts = NULL;

                        if (!g->workers[i].policy.external && types_emit_env(g, &g->workers[i], &ts) == 0)
                                free(ts);
                }
                generation_free(g);
        } else {
                json_object *j = spec_errors_to_json(&e);

                for (size_t i = 0; i < e.n; i++)
                        free(spec_error_to_string(&e.errors[i]));
                json_object_put(j);
        }
        spec_errors_done(&e);
        return 0;
}
