/* fuzz-cfsim-multipart.c: libFuzzer target for cfsim's multipart/form-data
 * decoder (tests/cfsim/sim-multipart.c) and the JSON decoding of the parts
 * cfsim reads as JSON (metadata, settings). An input is a Content-Type
 * parameter line ("boundary=...", up to the first newline) followed by the
 * body. Any crash, leak or sanitizer report is a bug; errors are expected. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim-json.h"
#include "sim-multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *nl = memchr(data, '\n', size < 512 ? size : 512);
        char ctype[600], boundary[71];
        const char *body;
        size_t body_size;
        SimForm form = {};

        if (!nl)
                return 0;
        snprintf(ctype, sizeof(ctype), "multipart/form-data; %.*s", (int) ((const uint8_t *) nl - data), (const char *) data);
        body = nl + 1;
        body_size = size - (size_t) ((const uint8_t *) body - data);
        (void) sim_form_boundary(ctype, boundary);
        if (sim_form_parse(ctype, body, body_size, &form) < 0)
                return 0;
        for (size_t i = 0; i < form.n_parts; i++) {
                const SimFormPart *p = &form.parts[i];
                json_object *o = NULL;

                /* Parts must lie inside the body. */
                if (p->data < body || p->data + p->size > body + body_size)
                        abort();
                if (strcmp(p->name, "metadata") == 0 || strcmp(p->name, "settings") == 0) {
                        if (sim_json_parse(p->data, p->size, &o) == 0) {
                                (void) sim_json_str(o, "main_module");
                                (void) sim_json_arr(o, "bindings");
                                (void) sim_json_obj(o, "migrations");
                                json_object_put(o);
                        }
                }
                if (p->filename && !sim_form_find(&form, p->filename, true))
                        abort();
                if (!sim_form_find(&form, p->name, false))
                        abort();
        }
        sim_form_done(&form);
        return 0;
}
