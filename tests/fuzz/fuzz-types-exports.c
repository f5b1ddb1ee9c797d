/* fuzz-types-exports.c: libFuzzer target for types_scan_exports(), which
 * reads a worker's main module (any bytes a spec writer puts there) to
 * find its exported classes for `binderyd types`. It must never read past
 * the input, whatever comments, strings or template literals are left
 * open, and every name it returns must be a capitalised identifier. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>

#include "types.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_strv_free_ char **l = NULL;

        if (types_scan_exports((const char *) data, size, &l) < 0)
                return 0;
        if (!l)
                abort();
        for (size_t i = 0; l[i]; i++)
                if (!isupper((unsigned char) l[i][0]))
                        abort();
        return 0;
}
