/* manager.h: the daemon. Owns the one sd_event loop and everything on it:
 * the engine (reconcile runs), the HTTP API, the spec watch, the interval
 * timer, signals and sd_notify.
 *
 * Invariants (one thread, so they hold between any two events):
 *   - at most one engine run (reconcile or plan) at a time;
 *   - at most one reconcile pending: triggers coalesce into it;
 *   - a plan never delays a reconcile: it only starts when no reconcile
 *     runs or waits, and a trigger cancels a running plan;
 *   - the generation enforced is the last one that loaded cleanly; a spec
 *     that fails to load only adds its errors to the status.
 */
#pragma once

#include <systemd/sd-event.h>

#include "cleanup.h"
#include "commands.h"
#include "config.h"

typedef struct Manager Manager;

/* Takes ownership of config. o must outlive the manager (SIGHUP reloads
 * o->config_path with the same overrides). */
int manager_new(Manager **ret, Config *config, const Options *o);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Opens the engine (takes the state lock), starts the HTTP API (sockets
 * from systemd if passed, else Config.listen), the watch, the timers;
 * loads the spec; READY=1. Logs its own errors. */
int manager_start(Manager *m);

/* Runs the loop until SIGTERM/SIGINT (after in-flight calls finish).
 * Returns the exit code. */
int manager_run(Manager *m);
