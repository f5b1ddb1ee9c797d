/* metrics.h: a tiny writer of the Prometheus text exposition format
 * (version 0.0.4): one "# HELP" and "# TYPE" line per family, then its
 * samples, label values escaped. Pure and non-logging.
 *
 *   _cleanup_(metrics_freep) Metrics *m = metrics_new();
 *   metrics_family(m, "bindery_runs_total", "counter", "Reconcile runs by result.");
 *   metrics_sample(m, "bindery_runs_total", 3, "result", "ok", NULL);
 *   char *text = metrics_take(m);    caller frees
 */
#pragma once

#include "cleanup.h"

typedef struct Metrics Metrics;

Metrics *metrics_new(void);
Metrics *metrics_free(Metrics *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Metrics *, metrics_free);

/* type: "counter", "gauge", "histogram", "summary" or "untyped". */
void metrics_family(Metrics *m, const char *name, const char *type, const char *help);
/* Label pairs (name, value, ...) end with NULL. name may carry a suffix
 * of the family ("_bucket", "_sum", "_count"). */
void metrics_sample(Metrics *m, const char *name, double value, ...) __attribute__((sentinel));

/* The text, or NULL on OOM (then also freed). Caller frees the text. */
char *metrics_take(Metrics *m);
