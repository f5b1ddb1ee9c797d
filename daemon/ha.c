/* ha.c: the role state machine; see ha.h.
 *
 *   no lease ──grant──▶ lease ──campaign (waits in etcd)──▶ leader
 *       ▲                 │ keepalive every ttl/3               │
 *       └── lease lost ◀──┴── window passed / other leader ◀────┘
 *
 * At most one call of each kind is in flight (grant, keepalive, campaign,
 * leader look-up, a follower's observe stream); the timer starts whatever
 * is missing. A follower learns of a new leader from the stream at once,
 * not at its next tick.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha.h"
#include "util.h"

#define HA_REASON_MAX 256U
#define HA_RETRY_USEC (250 * USEC_PER_MSEC)

struct HA {
        sd_event *event;
        Etcd *etcd;
        char *election;
        char *name;
        char *advertise_url;
        char *candidate;            /* campaign value: {"name": ..., "url": ...} */
        uint64_t ttl_usec;
        uint64_t margin_usec;
        ha_role_fn fn;
        void *userdata;

        sd_event_source *timer;
        EtcdCall *grant_call, *keepalive_call, *campaign_call, *leader_call;
        EtcdCall *observe_call;     /* a follower's stream of leaders */
        uint64_t grant_sent, keepalive_sent, leader_sent;
        uint64_t elected;           /* monotonic µs this term began */
        uint64_t observed;          /* monotonic µs the stream last named a leader */

        int64_t lease;              /* 0: none */
        uint64_t lease_valid_until; /* monotonic µs; our lease is surely alive before */
        HARole role;
        EtcdLeaderKey leader_key;   /* ours, while leader */
        char *leader_name, *leader_url;
        uint64_t since;
        char reason[HA_REASON_MAX];
        unsigned n_role_changes;
        bool started, stopping;
};

static const char *const role_names[_HA_ROLE_MAX] = {
        [HA_ROLE_FOLLOWER] = "follower",
        [HA_ROLE_LEADER] = "leader",
};

const char *ha_role_to_string(HARole r) {
        return r >= 0 && r < _HA_ROLE_MAX ? role_names[r] : NULL;
}

static void set_reason(HA *ha, const char *what, const char *message) {
        (void) snprintf(ha->reason, sizeof ha->reason, "%s%s%s", what, message ? ": " : "",
                        message ? message : "");
}

static void cancel_calls(HA *ha) {
        etcd_call_cancel(TAKE_PTR(ha->grant_call));
        etcd_call_cancel(TAKE_PTR(ha->keepalive_call));
        etcd_call_cancel(TAKE_PTR(ha->campaign_call));
        etcd_call_cancel(TAKE_PTR(ha->leader_call));
        etcd_call_cancel(TAKE_PTR(ha->observe_call));
}

HA *ha_free(HA *ha) {
        if (!ha)
                return NULL;
        cancel_calls(ha);
        (void) sd_event_source_disable_unref(ha->timer);
        sd_event_unref(ha->event);
        etcd_leader_key_done(&ha->leader_key);
        free(ha->election);
        free(ha->name);
        free(ha->advertise_url);
        free(ha->candidate);
        free(ha->leader_name);
        free(ha->leader_url);
        free(ha);
        return NULL;
}

int ha_new(HA **ret, sd_event *event, Etcd *etcd, const HAOptions *o, ha_role_fn fn, void *userdata) {
        _cleanup_(ha_freep) HA *ha = NULL;
        _cleanup_(json_object_putp) json_object *v = NULL;

        if (!ret || !event || !etcd || !o || isempty(o->election) || isempty(o->name))
                return -EINVAL;
        if (o->lease_ttl_usec < 2 * USEC_PER_SEC || o->lease_ttl_usec % USEC_PER_SEC != 0)
                return -EINVAL;
        ha = calloc(1, sizeof(HA));
        if (!ha)
                return -ENOMEM;
        ha->event = sd_event_ref(event);
        ha->etcd = etcd;
        ha->fn = fn;
        ha->userdata = userdata;
        ha->ttl_usec = o->lease_ttl_usec;
        ha->margin_usec = o->margin_usec ? o->margin_usec : ha->ttl_usec / 5;
        if (ha->margin_usec < 200 * USEC_PER_MSEC)
                ha->margin_usec = 200 * USEC_PER_MSEC;
        if (ha->margin_usec >= ha->ttl_usec / 2)
                return -EINVAL;
        ha->role = HA_ROLE_FOLLOWER;
        ha->since = now_realtime_usec();
        ha->election = strdup(o->election);
        ha->name = strdup(o->name);
        if (!ha->election || !ha->name)
                return -ENOMEM;
        if (o->advertise_url && !(ha->advertise_url = strdup(o->advertise_url)))
                return -ENOMEM;
        v = json_object_new_object();
        if (!v || json_object_object_add(v, "name", json_object_new_string(o->name)) < 0 ||
            json_object_object_add(v, "url", o->advertise_url ? json_object_new_string(o->advertise_url)
                                                               : NULL) < 0)
                return -ENOMEM;
        ha->candidate = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        if (!ha->candidate)
                return -ENOMEM;
        set_reason(ha, "starting", NULL);
        *ret = TAKE_PTR(ha);
        return 0;
}

static void leader_clear(HA *ha) {
        ha->leader_name = mfree(ha->leader_name);
        ha->leader_url = mfree(ha->leader_url);
}

static void set_role(HA *ha, HARole role, const char *reason) {
        if (ha->role == role)
                return;
        ha->role = role;
        ha->since = now_realtime_usec();
        ha->n_role_changes++;
        if (ha->fn)
                ha->fn(ha, role, reason, ha->userdata);
}

static void on_revoked(Etcd *e, int r, json_object *answer, const char *message, void *userdata) {
        /* Best effort: a lease we no longer use expires anyway. */
}

/* Drops the lease (revoking it in etcd, best effort) and any leadership;
 * the next tick starts over with a new lease. */
static void lose_lease(HA *ha, const char *reason) {
        _cleanup_(json_object_putp) json_object *b = NULL;
        char id[32];

        etcd_call_cancel(TAKE_PTR(ha->campaign_call));
        etcd_call_cancel(TAKE_PTR(ha->keepalive_call));
        if (ha->lease != 0) {
                (void) snprintf(id, sizeof id, "%" PRId64, ha->lease);
                b = json_object_new_object();
                if (b && json_object_object_add(b, "ID", json_object_new_string(id)) >= 0)
                        (void) etcd_call(ha->etcd, "/v3/lease/revoke", b, 2 * USEC_PER_SEC, on_revoked,
                                         NULL, NULL);
        }
        ha->lease = 0;
        ha->lease_valid_until = 0;
        etcd_leader_key_done(&ha->leader_key);
        if (ha->role == HA_ROLE_LEADER)
                leader_clear(ha);   /* no longer us; the next look-up says who */
        set_role(ha, HA_ROLE_FOLLOWER, reason);
}

static void step_down(HA *ha, const char *reason) {
        set_reason(ha, reason, NULL);
        lose_lease(ha, reason);
}

static void start_calls(HA *ha);

static void on_campaign(Etcd *e, int r, json_object *answer, const char *message, void *userdata) {
        HA *ha = userdata;
        EtcdLeaderKey l = {};

        ha->campaign_call = NULL;
        if (r < 0) {
                set_reason(ha, "campaign failed", message);
                return;             /* the next tick campaigns again */
        }
        r = etcd_decode_campaign(answer, &l);
        if (r < 0 || l.lease != ha->lease) {
                etcd_leader_key_done(&l);
                set_reason(ha, "campaign answer unreadable", NULL);
                return;
        }
        if (now_monotonic_usec() >= ha->lease_valid_until) {
                etcd_leader_key_done(&l);
                step_down(ha, "elected with a lease not known valid");
                return;
        }
        etcd_leader_key_done(&ha->leader_key);
        ha->leader_key = l;
        free(ha->leader_name);
        free(ha->leader_url);
        ha->leader_name = strdup(ha->name);
        ha->leader_url = ha->advertise_url ? strdup(ha->advertise_url) : NULL;
        ha->reason[0] = 0;
        ha->elected = now_monotonic_usec();
        /* A leader looks itself up each tick (its key must still lead). */
        etcd_call_cancel(TAKE_PTR(ha->observe_call));
        set_role(ha, HA_ROLE_LEADER, "elected");
}

static void on_keepalive(Etcd *e, int r, json_object *answer, const char *message, void *userdata) {
        HA *ha = userdata;
        int64_t ttl = 0;

        ha->keepalive_call = NULL;
        if (r == -ENOENT || (r >= 0 && etcd_decode_keepalive(answer, &ttl) >= 0 && ttl <= 0)) {
                step_down(ha, "lease expired in etcd");
                start_calls(ha);
                return;
        }
        if (r < 0) {
                set_reason(ha, "keepalive failed", message);
                /* Try again soon (an etcd leader election takes about a
                 * second), not a third of the TTL later. */
                if (ha->timer && !ha->stopping) {
                        (void) sd_event_source_set_time_relative(ha->timer, HA_RETRY_USEC);
                        (void) sd_event_source_set_enabled(ha->timer, SD_EVENT_ONESHOT);
                }
                return;
        }
        if (ttl <= 0) {
                set_reason(ha, "keepalive answer unreadable", NULL);
                return;
        }
        ha->lease_valid_until = ha->keepalive_sent + (uint64_t) ttl * USEC_PER_SEC - ha->margin_usec;
        if (ha->role == HA_ROLE_LEADER)
                ha->reason[0] = 0;
}

static void on_grant(Etcd *e, int r, json_object *answer, const char *message, void *userdata) {
        HA *ha = userdata;
        int64_t id = 0, ttl = 0;

        ha->grant_call = NULL;
        if (r >= 0)
                r = etcd_json_int64(answer, "ID", &id);
        if (r >= 0)
                r = etcd_json_int64(answer, "TTL", &ttl);
        if (r < 0 || id == 0 || ttl <= 0) {
                set_reason(ha, "lease grant failed", message);
                return;
        }
        ha->lease = id;
        ha->lease_valid_until = ha->grant_sent + (uint64_t) ttl * USEC_PER_SEC - ha->margin_usec;
        start_calls(ha);
}

/* The leader named by its key's value {"name", "url"}. */
static void leader_set(HA *ha, const EtcdKeyValue *kv) {
        _cleanup_(json_object_putp) json_object *v = json_tokener_parse(kv->value);
        json_object *f;

        leader_clear(ha);
        if (v && json_object_object_get_ex(v, "name", &f) && json_object_is_type(f, json_type_string))
                ha->leader_name = strndup(json_object_get_string(f), 255);
        if (v && json_object_object_get_ex(v, "url", &f) && json_object_is_type(f, json_type_string))
                ha->leader_url = strndup(json_object_get_string(f), 1023);
}

static void on_leader(Etcd *e, int r, json_object *answer, const char *message, void *userdata) {
        HA *ha = userdata;
        EtcdKeyValue kv = {};
        json_object *o;

        ha->leader_call = NULL;
        /* A look-up sent before this term began may predate our key: it
         * says nothing about this term. */
        if (ha->role == HA_ROLE_LEADER && ha->leader_sent < ha->elected)
                return;
        /* Likewise a follower's look-up sent before its observe stream
         * named a leader: a "no leader" sent before the election and
         * answered after the stream's news would clear the leader, and
         * with the stream open nothing looks up again until the next
         * leader (ha-basic.sh saw this, rarely: a follower answering 503
         * with no leader known for the whole term). */
        if (ha->role == HA_ROLE_FOLLOWER && ha->observed >= ha->leader_sent)
                return;
        if (r == -ENOENT) {         /* "election: no leader" */
                leader_clear(ha);
                if (ha->role == HA_ROLE_LEADER)
                        step_down(ha, "our leader key is gone");
                return;
        }
        if (r < 0 || !json_object_object_get_ex(answer, "kv", &o) ||
            etcd_decode_key_value(o, 4096, 4096, &kv) < 0)
                return;             /* keep what we knew */
        if (ha->role == HA_ROLE_LEADER && !streq(kv.key, ha->leader_key.key)) {
                etcd_key_value_done(&kv);
                step_down(ha, "another host leads");
                return;
        }
        leader_set(ha, &kv);
        etcd_key_value_done(&kv);
}

/* A follower's stream: each leader etcd reports, at once. Runs inside
 * libcurl's write callback: cancels nothing. */
static void on_observed(Etcd *e, int r, json_object *answer, const char *message, void *userdata) {
        HA *ha = userdata;
        EtcdKeyValue kv = {};
        json_object *o;

        if (ha->role != HA_ROLE_FOLLOWER || !json_object_object_get_ex(answer, "kv", &o) ||
            etcd_decode_key_value(o, 4096, 4096, &kv) < 0)
                return;
        leader_set(ha, &kv);
        ha->observed = now_monotonic_usec();
        etcd_key_value_done(&kv);
}

static void on_observe_end(Etcd *e, int r, json_object *answer, const char *message, void *userdata) {
        HA *ha = userdata;

        ha->observe_call = NULL;    /* the next tick looks up and observes again */
}

/* Starts whichever call the state needs and is not in flight. */
static void start_calls(HA *ha) {
        if (ha->stopping)
                return;
        if (ha->lease == 0) {
                if (!ha->grant_call) {
                        ha->grant_sent = now_monotonic_usec();
                        if (etcd_lease_grant(ha->etcd, (int64_t) (ha->ttl_usec / USEC_PER_SEC), on_grant,
                                             ha, &ha->grant_call) < 0)
                                ha->grant_call = NULL;
                }
                return;
        }
        if (ha->role == HA_ROLE_FOLLOWER && !ha->campaign_call &&
            etcd_campaign(ha->etcd, ha->election, ha->lease, ha->candidate, on_campaign, ha,
                          &ha->campaign_call) < 0)
                ha->campaign_call = NULL;
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        HA *ha = userdata;

        if (ha->stopping)
                return 0;
        if (ha->role == HA_ROLE_LEADER && now_monotonic_usec() >= ha->lease_valid_until)
                step_down(ha, "lease not renewed in time (etcd unreachable or without quorum)");
        if (ha->lease != 0 && !ha->keepalive_call) {
                ha->keepalive_sent = now_monotonic_usec();
                /* A keepalive stuck on a member without a raft leader is
                 * abandoned after a quarter of the TTL and sent on. */
                if (etcd_lease_keepalive(ha->etcd, ha->lease, ha->ttl_usec / 4, on_keepalive, ha,
                                         &ha->keepalive_call) < 0)
                        ha->keepalive_call = NULL;
        }
        /* A follower learns of each new leader from its observe stream;
         * it looks up only while the stream is not open. */
        if (!ha->leader_call && (ha->role == HA_ROLE_LEADER || !ha->observe_call)) {
                ha->leader_sent = now_monotonic_usec();
                if (etcd_leader(ha->etcd, ha->election, on_leader, ha, &ha->leader_call) < 0)
                        ha->leader_call = NULL;
        }
        if (ha->role == HA_ROLE_FOLLOWER && !ha->observe_call &&
            etcd_observe(ha->etcd, ha->election, on_observed, on_observe_end, ha, &ha->observe_call) < 0)
                ha->observe_call = NULL;
        start_calls(ha);
        (void) sd_event_source_set_time_relative(s, ha->ttl_usec / 3);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

int ha_start(HA *ha) {
        int r;

        if (ha->started)
                return -EALREADY;
        r = sd_event_add_time_relative(ha->event, &ha->timer, CLOCK_MONOTONIC, 0, 10 * USEC_PER_MSEC,
                                       on_tick, ha);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(ha->timer, "ha-keepalive");
        ha->started = true;
        return 0;
}

int ha_resign(HA *ha, uint64_t timeout_usec) {
        int r = 0, k;

        ha->stopping = true;
        cancel_calls(ha);
        if (ha->timer)
                (void) sd_event_source_set_enabled(ha->timer, SD_EVENT_OFF);
        if (ha->role == HA_ROLE_LEADER)
                r = etcd_resign_sync(ha->etcd, &ha->leader_key, timeout_usec, NULL);
        if (ha->lease != 0) {
                k = etcd_lease_revoke_sync(ha->etcd, ha->lease, timeout_usec, NULL);
                if (k < 0 && k != -ENOENT && r >= 0)
                        r = k;
        }
        ha->lease = 0;
        ha->lease_valid_until = 0;
        etcd_leader_key_done(&ha->leader_key);
        set_reason(ha, "resigned", NULL);
        set_role(ha, HA_ROLE_FOLLOWER, "resigned");
        return r;
}

HARole ha_role(const HA *ha) {
        return ha->role;
}

bool ha_may_write(const HA *ha) {
        return ha && ha->role == HA_ROLE_LEADER && !ha->stopping &&
               now_monotonic_usec() < ha->lease_valid_until;
}

int ha_fence(const HA *ha, const char **ret_key, int64_t *ret_create_revision) {
        if (!ha_may_write(ha))
                return -ESTALE;
        *ret_key = ha->leader_key.key;
        *ret_create_revision = ha->leader_key.rev;
        return 0;
}

const char *ha_leader_name(const HA *ha) {
        return ha->leader_name;
}

const char *ha_leader_url(const HA *ha) {
        return ha->leader_url;
}

uint64_t ha_since(const HA *ha) {
        return ha->since;
}

const char *ha_reason(const HA *ha) {
        return ha->reason;
}

unsigned ha_n_role_changes(const HA *ha) {
        return ha->n_role_changes;
}

uint64_t ha_valid_until(const HA *ha) {
        return ha->role == HA_ROLE_LEADER ? ha->lease_valid_until : 0;
}

/* ---- One-shot leadership ---- */

static json_object *json_id(const char *field, int64_t id) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();
        char num[32];

        (void) snprintf(num, sizeof num, "%" PRId64, id);
        if (!b || json_object_object_add(b, field, json_object_new_string(num)) < 0)
                return NULL;
        return TAKE_PTR(b);
}

int ha_oneshot_acquire(Etcd *etcd, const char *election, const char *name, int64_t ttl_sec,
                       uint64_t timeout_usec, HAOneShot *ret, char **reterr) {
        _cleanup_(json_object_putp) json_object *b = NULL, *a = NULL, *v = NULL;
        HAOneShot h = { .etcd = etcd };
        json_object *kv;
        int64_t ttl = 0;
        int r;

        /* Someone leads already? */
        b = json_object_new_object();
        if (!b || json_object_object_add(b, "name", etcd_json_b64(election)) < 0)
                return -ENOMEM;
        r = etcd_call_sync(etcd, "/v3/election/leader", b, 2 * USEC_PER_SEC, &a, reterr);
        if (r >= 0 && json_object_object_get_ex(a, "kv", &kv)) {
                EtcdKeyValue k = {};

                if (reterr && etcd_decode_key_value(kv, 4096, 4096, &k) >= 0 &&
                    asprintf(reterr, "a host leads already: %s", k.value) < 0)
                        *reterr = NULL;
                etcd_key_value_done(&k);
                return -EBUSY;
        }
        if (r < 0 && r != -ENOENT)
                return r;
        if (reterr)
                *reterr = mfree(*reterr);

        json_object_put(b);
        json_object_put(a);
        a = NULL;
        b = json_id("TTL", ttl_sec);
        if (!b)
                return -ENOMEM;
        r = etcd_call_sync(etcd, "/v3/lease/grant", b, 2 * USEC_PER_SEC, &a, reterr);
        if (r < 0)
                return r;
        r = etcd_json_int64(a, "ID", &h.lease);
        if (r >= 0)
                r = etcd_json_int64(a, "TTL", &ttl);
        if (r < 0 || h.lease == 0 || ttl <= 0)
                return r < 0 ? r : -EBADMSG;

        /* The campaign body: {"name", "lease", "value"}, as ha_start's. */
        json_object_put(b);
        json_object_put(a);
        a = NULL;
        b = json_id("lease", h.lease);
        v = json_object_new_object();
        if (!b || !v || json_object_object_add(v, "name", json_object_new_string(name)) < 0 ||
            json_object_object_add(b, "name", etcd_json_b64(election)) < 0 ||
            json_object_object_add(b, "value",
                                   etcd_json_b64(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN))) < 0)
                r = -ENOMEM;
        if (r >= 0)
                r = etcd_call_sync(etcd, "/v3/election/campaign", b, timeout_usec, &a, reterr);
        if (r >= 0)
                r = etcd_decode_campaign(a, &h.key);
        if (r < 0) {
                (void) etcd_lease_revoke_sync(etcd, h.lease, USEC_PER_SEC, NULL);
                return r;
        }
        *ret = h;
        return 0;
}

int ha_oneshot_refresh(HAOneShot *h) {
        _cleanup_(json_object_putp) json_object *b = json_id("ID", h->lease), *a = NULL;
        int64_t ttl = 0;
        int r;

        if (!b)
                return -ENOMEM;
        r = etcd_call_sync(h->etcd, "/v3/lease/keepalive", b, 2 * USEC_PER_SEC, &a, NULL);
        if (r < 0)
                return r;
        r = etcd_decode_keepalive(a, &ttl);
        if (r < 0)
                return r;
        return ttl > 0 ? 0 : -ESTALE;
}

void ha_oneshot_release(HAOneShot *h) {
        if (h->lease == 0)
                return;
        (void) etcd_resign_sync(h->etcd, &h->key, USEC_PER_SEC, NULL);
        (void) etcd_lease_revoke_sync(h->etcd, h->lease, USEC_PER_SEC, NULL);
        etcd_leader_key_done(&h->key);
        h->lease = 0;
}

int ha_oneshot_fence(const void *userdata, const char **ret_key, int64_t *ret_create_revision) {
        const HAOneShot *h = userdata;

        if (h->lease == 0)
                return -ESTALE;
        *ret_key = h->key.key;
        *ret_create_revision = h->key.rev;
        return 0;
}
