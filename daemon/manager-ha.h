/* manager-ha.h: the daemon's high-availability side (issue 11), kept out
 * of manager.c: the etcd client, the election (ha.h), the write gate the
 * engine's Cloudflare client asks, the relay of triggers and plans from a
 * follower to the leader, the record of the generation last enforced, and
 * what status and metrics show about the role.
 *
 * Only created with an ha: section; without it manager.c never calls in
 * here and nothing changes. Logs role changes (journal: BINDERY_ACTION
 * "ha-leader" / "ha-follower").
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "cleanup.h"
#include "config.h"
#include "httpd.h"
#include "metrics.h"
#include "store.h"

typedef struct ManagerHA ManagerHA;
typedef struct Etcd Etcd;

/* binderyd plan with ha:: an engine over the ledger in etcd, read-only
 * (its own etcd client, blocking calls). Logs errors. */
struct Engine;
int manager_ha_engine_readonly(struct Engine **ret, sd_event *event, const Config *c);

/* The etcd client of c->ha (endpoints, TLS, user and the password, read
 * as a daemon secret); event NULL for blocking calls only. Logs errors. */
int manager_ha_etcd_new(const Config *c, sd_event *event, const char *user_agent, Etcd **ret);

/* leader: this host now leads (true) or not (false); reason for logs. */
typedef void (*manager_ha_role_fn)(ManagerHA *mh, bool leader, const char *reason, void *userdata);

/* Locks c->state_dir (-EBUSY when another process holds it; kept until
 * manager_ha_free), reads the etcd password (a daemon secret) and sets up
 * the client and the election from c->ha; nothing is sent yet. Logs its
 * errors. */
int manager_ha_new(ManagerHA **ret, sd_event *event, const Config *c, manager_ha_role_fn fn, void *userdata);
ManagerHA *manager_ha_free(ManagerHA *mh);
DEFINE_TRIVIAL_CLEANUP_FUNC(ManagerHA *, manager_ha_free);

/* Starts the lease, the campaign and the keepalive timer. */
int manager_ha_start(ManagerHA *mh);

/* SIGTERM: hands leadership over at once (bounded: about 2 s at most). */
void manager_ha_resign(ManagerHA *mh);

bool manager_ha_is_leader(const ManagerHA *mh);

/* The write gate (cfapi_may_send_t; userdata is the ManagerHA): true only
 * while this host leads and its lease is known valid. */
bool manager_ha_may_send(const char *method, void *userdata);

/* The ledger in etcd for the engine (store-etcd.h), fenced by this host's
 * leadership. Caller frees. */
int manager_ha_open_store(ManagerHA *mh, Store **ret);

/* The generation last enforced by any leader (PREFIX "enforced": digest
 * and time). 0 and the digest, -ENOENT when none is recorded. Blocks for
 * one round trip (bounded). */
int manager_ha_read_enforced(ManagerHA *mh, char ret_digest[static 65], uint64_t *ret_usec);
/* Records it (a leader, after a run that enforced it): fenced like every
 * ledger commit. Blocks for one round trip (bounded). */
int manager_ha_record_enforced(ManagerHA *mh, const char *digest, uint64_t at_usec);

/* GET /v1/status "ha": {role, name, leader, leader_url, since, reason,
 * lease_ttl, forward, etcd}. New reference. */
json_object *manager_ha_status_json(const ManagerHA *mh);
/* bindery_ha_* families. */
void manager_ha_metrics(const ManagerHA *mh, Metrics *x);

/* The httpd backend's leader/forward/forward_cancel (httpd.h). */
int manager_ha_leader(ManagerHA *mh, char **ret_url, bool *ret_forward);
int manager_ha_forward(ManagerHA *mh, const char *method, const char *url, const char *authorization,
                       const char *body, size_t size, uint64_t timeout_usec, httpd_relay_done_t done,
                       void *cookie, void **ret_handle);
void manager_ha_forward_cancel(ManagerHA *mh, void *handle);
