/* sim-http.h: cfsim's HTTP server (libmicrohttpd, one thread per
 * connection), router, Cloudflare envelope and request limits.
 *
 * Handlers are called with Sim.lock held. They fill a SimReply through
 * the reply_* helpers, which serialize at once, so a reply never points
 * into the state tree. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <microhttpd.h>
#include <json-c/json.h>

#include "cleanup.h"
#include "sim-store.h"

#define SIM_BODY_MAX        (64u * 1024 * 1024)  /* request body cap -> 413 */
#define SIM_CONNECTIONS_MAX 512
#define SIM_CONN_TIMEOUT_S  120
#define SIM_PARAMS_MAX      4
#define SIM_URI_MAX         8192

typedef struct SimRequest {
        const char *method;
        const char *path;               /* raw, below /client/v4 */
        const char *uri;                /* raw request URI with query */
        char *params[SIM_PARAMS_MAX];   /* decoded :param values, in order */
        const char *body;               /* NUL-terminated (not counted) */
        size_t body_size;
        const char *content_type;       /* never NULL ("" if absent) */
        struct MHD_Connection *connection;
} SimRequest;

typedef struct SimReply {
        unsigned status;
        char *body;                     /* owned */
        size_t size;
        SimBlob *blob;                  /* one reference, instead of body */
        const char *content_type;       /* static string */
        unsigned retry_after;           /* seconds, 0: no header */
        const char *audit_type;         /* resource type for the audit log */
        char audit_id[256];             /* resource id for the audit log */
} SimReply;

typedef void (*SimHandler)(Sim *sim, const SimRequest *req, SimReply *rep);

typedef struct SimRoute {
        const char *method;
        const char *path;               /* template with :param segments */
        SimHandler handler;
        const char *audit_type;
} SimRoute;

/* Route tables of each area, terminated by a NULL method. */
extern const SimRoute sim_workers_routes[];
extern const SimRoute sim_storage_routes[];
extern const SimRoute sim_secrets_store_routes[];
extern const SimRoute sim_account_routes[];

/* Query parameter (decoded by MHD) or NULL. */
const char *sim_query(const SimRequest *req, const char *key);
/* Query parameter as a bounded unsigned; dflt when absent, -1 if invalid. */
long sim_query_uint(const SimRequest *req, const char *key, long dflt, long max);
/* True if the query parameter is "true" or "1". */
bool sim_query_bool(const SimRequest *req, const char *key);
/* Request header or NULL. */
const char *sim_header(const SimRequest *req, const char *key);

/* Parses the body as JSON whatever its Content-Type (clients label JSON
 * text/plain). On failure replies 400/10021 and returns NULL. The result
 * is a new reference the caller puts. */
json_object *sim_body_json(const SimRequest *req, SimReply *rep);

/* Success envelope; takes ownership of result and result_info (either
 * may be NULL). */
void reply_result(SimReply *rep, json_object *result, json_object *result_info);
/* Success envelope around an already serialized result. */
void reply_result_raw(SimReply *rep, const char *result_json, size_t len);
/* A complete, shared 200 JSON answer; takes a new reference to blob. */
void reply_blob(SimReply *rep, SimBlob *blob);
/* Failure envelope with one error. */
void reply_error(SimReply *rep, unsigned status, int code, const char *fmt, ...) _printf_(4, 5);
/* Failure envelope from several errors (takes the array). */
void reply_errors(SimReply *rep, unsigned status, json_object *errors);
/* A raw body (not the envelope). Copies data. */
void reply_raw(SimReply *rep, unsigned status, const char *content_type, const void *data, size_t size);

/* Computes one page of items (borrowed) from ?page and ?per_page.
 * *ret_slice holds new references; *ret_info is the result_info. On bad
 * parameters replies 400/10021 and returns -EINVAL. */
int sim_page(SimReply *rep, const SimRequest *req, json_object *items, long dflt, long max,
             json_object **ret_slice, json_object **ret_info);

/* Page-number pagination over items (takes it): slices by ?page and
 * ?per_page (default dflt, capped at max) and adds result_info. A page
 * past the end is an empty success. */
void reply_paged(SimReply *rep, const SimRequest *req, json_object *items, long dflt, long max);

/* Starts the server on host:port (port 0 picks one). Returns the MHD
 * daemon or NULL; *ret_port gets the bound port. */
struct MHD_Daemon *sim_http_start(Sim *sim, const char *host, unsigned port, unsigned *ret_port);
