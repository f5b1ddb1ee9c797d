/* ha.h: leader election through etcd (issue 11) — who may write.
 *
 * Each host holds a lease of lease_ttl and campaigns in one etcd election
 * (etcd's own election API: the candidate whose key under the election
 * name has the lowest create revision leads; a key dies with its lease).
 * The campaign is a request that waits in etcd until this host is
 * elected; it never blocks the loop (etcd.h).
 *
 * One timer, every lease_ttl / 3 (250 ms after a failed keepalive): a
 * keepalive of the lease (each attempt bounded by lease_ttl / 4) and a
 * look at who leads (for followers' status and forwarding; a leader that
 * sees another key, or none, steps down, unless the look-up was sent
 * before its term began). The lease is known valid locally
 * until the send time of the last keepalive that etcd answered + lease_ttl
 * - margin: etcd received that keepalive after it was sent, so the lease
 * cannot expire in etcd before then (the send time, not the answer time,
 * is the conservative end). ha_may_write() is true only for a leader
 * inside that window — bindery's gate on every Cloudflare write, checked
 * when each request is sent.
 *
 * Stepping down (lease lost, the window passed without a keepalive answer,
 * another leader seen, etcd unreachable for longer than the window): the
 * role becomes follower at once, the old lease is revoked (best effort)
 * and a new lease and candidacy start, so leadership resumes by itself
 * when etcd is back. ha_resign() (SIGTERM) hands over: it deletes this
 * host's key so the next candidate is elected at once.
 *
 * Single-threaded, on the loop given to ha_new(). Non-logging: the role
 * callback and ha_reason() say what happened.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "cleanup.h"
#include "etcd.h"

typedef struct HA HA;

typedef enum HARole {
        HA_ROLE_FOLLOWER,
        HA_ROLE_LEADER,
        _HA_ROLE_MAX,
        _HA_ROLE_INVALID = -EINVAL,
} HARole;

const char *ha_role_to_string(HARole r) _pure_;

typedef struct HAOptions {
        const char *election;       /* election name in etcd (PREFIX "election") */
        const char *name;           /* this host */
        const char *advertise_url;  /* where this host's HTTP API is reached (may be NULL) */
        uint64_t lease_ttl_usec;    /* whole seconds, >= 2 s */
        uint64_t margin_usec;       /* 0: lease_ttl / 5, at least 200 ms */
} HAOptions;

/* Called on every role change, after the new role is in place (so
 * ha_may_write() already answers for it). reason says why (never NULL).
 * May call any ha_ function but ha_free(). */
typedef void (*ha_role_fn)(HA *ha, HARole role, const char *reason, void *userdata);

/* etcd is borrowed (must outlive ha) and must run on event. Copies o.
 * Nothing is sent before ha_start(). -EINVAL for a TTL under 2 s or not
 * whole seconds, or no election/name. */
int ha_new(HA **ret, sd_event *event, Etcd *etcd, const HAOptions *o, ha_role_fn fn, void *userdata);
/* Stops every call and the timer; does not resign (see ha_resign). */
HA *ha_free(HA *ha);
DEFINE_TRIVIAL_CLEANUP_FUNC(HA *, ha_free);

/* Starts the lease, the campaign and the timer. */
int ha_start(HA *ha);

/* SIGTERM: stops campaigning; a leader deletes its key (resign) and
 * revokes its lease so a follower is elected at once. Blocks for at most
 * timeout_usec per call (two calls). Leaves ha a follower that never
 * campaigns again. */
int ha_resign(HA *ha, uint64_t timeout_usec);

HARole ha_role(const HA *ha) _pure_;
/* Leader, and the lease known valid now. */
bool ha_may_write(const HA *ha);
/* The fence a leader's store commits are guarded by: the leader key and
 * its create revision. -ESTALE when not leader or the window passed. */
int ha_fence(const HA *ha, const char **ret_key, int64_t *ret_create_revision);

/* ---- One-shot leadership, for offline tools (binderyd state import) ----
 * Synchronous, no event loop: grants a lease of ttl_sec, refuses (-EBUSY,
 * the leader named in reterr) when a host already leads, else campaigns
 * for at most timeout_usec; the fence then guards the tool's commits like
 * a daemon's. ha_oneshot_refresh() keeps the lease (call it between
 * batches); ha_oneshot_release() resigns and revokes. */
typedef struct HAOneShot {
        Etcd *etcd;
        int64_t lease;
        EtcdLeaderKey key;
} HAOneShot;

int ha_oneshot_acquire(Etcd *etcd, const char *election, const char *name, int64_t ttl_sec,
                       uint64_t timeout_usec, HAOneShot *ret, char **reterr);
int ha_oneshot_refresh(HAOneShot *h);
void ha_oneshot_release(HAOneShot *h);
/* store_etcd_fence_fn shape; userdata is the HAOneShot. */
int ha_oneshot_fence(const void *userdata, const char **ret_key, int64_t *ret_create_revision);

/* Who leads, as last seen (NULL: unknown or none). */
const char *ha_leader_name(const HA *ha) _pure_;
const char *ha_leader_url(const HA *ha) _pure_;
/* Realtime µs of the last role change (start time before any). */
uint64_t ha_since(const HA *ha) _pure_;
/* Why this host is not writing, or the last etcd trouble ("" if none). */
const char *ha_reason(const HA *ha) _pure_;
unsigned ha_n_role_changes(const HA *ha) _pure_;
/* Monotonic µs until which a leader may write (0 when not leader). */
uint64_t ha_valid_until(const HA *ha) _pure_;
