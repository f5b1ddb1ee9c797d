/* fuzz-cfsim-json.c: libFuzzer target for cfsim's bounded JSON body
 * decoder (tests/cfsim/sim-json.c): one value, depth-limited, no trailing
 * garbage, no embedded NUL. A parsed value is serialized again and must
 * parse back. Any crash, leak or sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_object *o = NULL, *again = NULL;
        const char *s;

        if (sim_json_parse((const char *) data, size, &o) < 0)
                return 0;
        (void) sim_json_str(o, "name");
        (void) sim_json_obj(o, "settings");
        (void) sim_json_arr(o, "bindings");
        (void) sim_json_bool(o, "enabled", 0);
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!s || sim_json_parse(s, strlen(s), &again) < 0)
                abort();
        json_object_put(again);
        json_object_put(o);
        return 0;
}
