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
