/* import-toml.h: a wrangler.toml as json-c objects, for import.c
 * (binderyd(8) "import").
 *
 * Why C++ here, and only here: Debian 12 packages no C TOML library, and
 * the design card says never to hand-write what a library does. toml++
 * (libtomlplusplus-dev) is a C++17 library, so one translation unit,
 * import-toml.cc, wraps it behind this C interface; it does no I/O, no
 * logging, and lets no exception out. Nothing else in the tree is C++.
 */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parses the TOML document text (size bytes, NUL-terminated). On success
 * returns 0, the document as a json-c object in *ret (tables become
 * objects, arrays arrays, strings, integers, floats and booleans their
 * json-c types, dates and times their TOML text) and in *ret_lines an
 * object mapping each key path ("name", "env.staging.vars.STAGE",
 * "kv_namespaces[0].binding", see import.h) to the line where it is
 * defined (from 1). On a syntax error returns -EINVAL with *ret_line,
 * *ret_column and a message in *ret_error (caller frees). -ENOMEM on OOM.
 * Callers own both objects (json_object_put). */
int import_toml_parse(const char *text, size_t size, json_object **ret, json_object **ret_lines,
                      char **ret_error, unsigned *ret_line, unsigned *ret_column);

#ifdef __cplusplus
}
#endif
