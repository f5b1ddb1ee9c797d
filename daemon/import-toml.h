/* import-toml.h: a wrangler.toml as json-c objects, for import.c
 * (binderyd(8) "import"), and the protocol of the TOML reader behind it.
 *
 * Why C++, and why in a program of its own: Debian 12 packages no C TOML
 * library, and the design card says never to hand-write what a library
 * does; toml++ (libtomlplusplus-dev) is a C++17 library. Linked into
 * binderyd it made every daemon process map libstdc++, libtomlplusplus,
 * libgcc_s and libm, ~1.3 MiB of RSS for a command the daemon never runs.
 * So the parsing lives in bindery-toml (bindery-toml.cc, installed in
 * $(pkglibexecdir)), and import_toml_parse() (import-toml.c, plain C) runs
 * it and reads its answer back with json-c. binderyd links no C++.
 *
 * The protocol (bindery-toml takes no arguments):
 *   standard input   the TOML text, at most IMPORT_TOML_MAX_INPUT bytes;
 *   standard output  one JSON document and a newline, by exit status:
 *     0 (IMPORT_TOML_EXIT_PARSED)    {"config": {...}, "lines": {...}}
 *     1 (IMPORT_TOML_EXIT_NOT_TOML)  {"error": {"line": L, "column": C,
 *                                     "message": "..."}} (L and C from 1;
 *                                     0 when the error has no position)
 *     2 (IMPORT_TOML_EXIT_NOMEM)     nothing usable: out of memory
 *     3 (IMPORT_TOML_EXIT_IO)        nothing usable: reading standard
 *                                     input or writing standard output
 *                                     failed (or arguments were given)
 *   Nothing is written to standard error.
 */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMPORT_TOML_HELPER "bindery-toml"
/* The same bound as IMPORT_MAX_CONFIG_SIZE (import.h; checked there). */
#define IMPORT_TOML_MAX_INPUT (1024 * 1024)
/* What the caller reads at most. The answer is larger than the input (a
 * key path and line per value); key paths are at most 65 levels deep
 * (to_json's depth cap), so 64 times the input covers every answer a
 * 1 MiB document gives. */
#define IMPORT_TOML_MAX_OUTPUT (64 * IMPORT_TOML_MAX_INPUT)

enum {
        IMPORT_TOML_EXIT_PARSED = 0,
        IMPORT_TOML_EXIT_NOT_TOML = 1,
        IMPORT_TOML_EXIT_NOMEM = 2,
        IMPORT_TOML_EXIT_IO = 3,
};

/* Parses the TOML document text (size bytes, NUL-terminated) by running
 * bindery-toml. On success returns 0, the document as a json-c object in
 * *ret (tables become objects, arrays arrays, strings, integers, floats and
 * booleans their json-c types, dates and times their TOML text) and in
 * *ret_lines an object mapping each key path ("name",
 * "env.staging.vars.STAGE", "kv_namespaces[0].binding", see import.h) to
 * the line where it is defined (from 1). On a syntax error returns -EINVAL
 * with *ret_line, *ret_column and a message in *ret_error (caller frees).
 * When the reader cannot be run or fails, another negative errno (never
 * -EINVAL: -ENOENT when it is missing, -ENOMEM, -EIO, -EFBIG for an
 * answer over IMPORT_TOML_MAX_OUTPUT, -EPROTO for one outside the
 * protocol, a crash or an unknown exit status) with a message naming the
 * reader's path in *ret_error, left NULL only when our own allocation
 * failed (-ENOMEM). Callers own both objects (json_object_put).
 * Non-logging. */
int import_toml_parse(const char *text, size_t size, json_object **ret, json_object **ret_lines,
                      char **ret_error, unsigned *ret_line, unsigned *ret_column);

/* Where bindery-toml is (exe: the running binary, from /proc/self/exe):
 *   - when exe is D + BINDERY_SBINDIR "/binderyd" (installed, D empty, or
 *     staged with DESTDIR=D): D + BINDERY_PKGLIBEXECDIR "/bindery-toml";
 *   - otherwise (the build tree: daemon/binderyd beside daemon/bindery-toml,
 *     or a copy elsewhere): beside exe when there is one, else the
 *     installed BINDERY_PKGLIBEXECDIR "/bindery-toml".
 * Both paths come from configure (config.h). Returns 0 and the path in
 * *ret (which import_toml_parse() reports as missing if it is), or
 * -ENOMEM. Caller frees. */
int import_toml_helper_path(char **ret);

#ifdef __cplusplus
}
#endif
