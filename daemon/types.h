/* types.h: a Worker's bindings → its TypeScript `Env` interface for
 * @cloudflare/workers-types (what `binderyd types` prints).
 *
 * Pure: works on a loaded Generation, no I/O, no logging.
 */
#pragma once

#include "model.h"

/* The TypeScript type of one binding ("KVNamespace", "\"production\"",
 * "{ \"rpm\": number }", "string" for secrets, ...). Caller frees; NULL on
 * OOM. */
char *types_binding_type(const Binding *b);

/* The interface name for a worker: its name in PascalCase + "Env"
 * ("queue-consumer" → "QueueConsumerEnv"). Caller frees; NULL on OOM. */
char *types_interface_name(const char *worker_name);

/* The whole declaration file for worker w: an exported interface with one
 * member per binding (sorted by name) and the `declare module
 * "cloudflare:workers"` augmentation that makes it Cloudflare.Env.
 * Returns 0 and a string the caller frees, or -ENOMEM. */
int types_emit_env(const Generation *g, const Worker *w, char **ret);

/* What one worker's main module exports, as the command layer read it
 * (types.c itself reads nothing). */
typedef struct TypesModule {
        const char *worker;         /* script name */
        const char *import_path;    /* as written in import("…"), e.g. "./bundles/counter/index.js" */
        char **classes;             /* exported class names (types_scan_exports) */
} TypesModule;

/* Like types_emit_env, closer to wrangler's types: a Durable Object
 * binding whose class the owning worker's main module exports is typed
 * DurableObjectNamespace<import("…").Class>, a service binding with an
 * entrypoint the target's module exports Service<import("…").Entrypoint>.
 * Otherwise the plain types, with a comment saying why. */
int types_emit_env_with(const Generation *g, const Worker *w, const TypesModule *mods, size_t n_mods, char **ret);

/* The names a JavaScript/TypeScript module exports as classes: "export
 * class X", "export { X, Y as Z }" (Z), skipping comments, strings and
 * template literals; "export default class" is not a named export.
 * Sorted, unique; *ret is an empty list when there are none. Returns 0
 * or -ENOMEM. */
int types_scan_exports(const char *src, size_t size, char ***ret);
