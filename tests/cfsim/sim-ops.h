/* sim-ops.h: cfsim's operator side: the /__sim/ routes, fault injection,
 * request statistics, the request log and rate-limit emulation.
 * All functions expect Sim.lock held unless stated. */
#pragma once

#include <stdbool.h>

#include "sim-http.h"

/* The fault that fires for one request (a copy; rules may change). */
typedef struct SimFaultHit {
        SimFaultKind kind;
        unsigned retry_after;
        unsigned seconds;
} SimFaultHit;

/* Handles a /__sim/... request (path starts with "/__sim/"). */
void sim_ops_handle(Sim *sim, const SimRequest *req, SimReply *rep);

/* Replaces the fault rules with spec (one rule object or an array).
 * Returns 0, or -EINVAL with *ret_msg naming the problem (static). */
int sim_faults_set(Sim *sim, json_object *spec, const char **ret_msg);
void sim_faults_clear(Sim *sim);
/* Decides whether a fault fires for method+path; consumes count/rng. */
bool sim_faults_match(Sim *sim, const char *method, const char *path, SimFaultHit *ret);

/* Rate limit: takes one request from the budget of the token that sent
 * auth (the Authorization header value, NULL when absent). Returns false
 * when over budget or blocked; *ret_remaining and *ret_reset (seconds to
 * the window end, or to the block end when refused) describe the window. */
bool sim_ratelimit_take(Sim *sim, const char *auth, unsigned *ret_remaining, unsigned *ret_reset);
/* Forgets every window and block. */
void sim_ratelimit_reset(Sim *sim);

/* Counts one API request. route is the template ("GET /accounts/..."),
 * or NULL when no route matched; wrote is true when a non-GET reached a
 * handler. path, query (without the '?') and the User-Agent (may be
 * NULL) go to the request log. */
void sim_stats_count(Sim *sim, const char *method, const char *route_template,
                     const char *path, const char *query, const char *user_agent,
                     unsigned status, bool wrote);
void sim_stats_reset(Sim *sim);
