/* manager-ha.c: see manager-ha.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <syslog.h>

#include <curl/curl.h>

#include "curl-glue.h"
#include "engine.h"
#include "etcd.h"
#include "ha.h"
#include "log.h"
#include "manager-ha.h"
#include "secrets.h"
#include "store-etcd.h"
#include "store-file.h"
#include "util.h"

#define RESIGN_TIMEOUT_USEC (1 * USEC_PER_SEC)
#define RECORD_TIMEOUT_USEC (2 * USEC_PER_SEC)
#define RELAY_ANSWER_MAX (4U * 1024U * 1024U)
#define ENFORCED_KEY "enforced"

typedef struct Relay Relay;

struct Relay {
        ManagerHA *mh;
        CURL *easy;
        struct curl_slist *headers;
        char *body;
        size_t body_size;
        CurlBody answer;
        httpd_relay_done_t done;
        void *cookie;
        LIST_ENTRY(Relay) link;
};

struct ManagerHA {
        sd_event *event;
        Etcd *etcd;
        HA *ha;
        CurlGlue *glue;             /* relays */
        Store *state_lock;          /* the state directory, locked (file store) */
        LIST_HEAD(, Relay) relays;
        char *prefix;
        char *enforced_key;
        char *name;
        char *first_endpoint;
        uint64_t lease_ttl_usec;
        bool forward;
        char *user_agent;
        manager_ha_role_fn fn;
        void *userdata;
        uint64_t relayed, relay_failed, redirected;
};

static void relay_free(Relay *r) {
        if (!r)
                return;
        LIST_REMOVE(r, link);
        if (r->easy) {
                (void) curl_glue_remove(r->mh->glue, r->easy);
                curl_easy_cleanup(r->easy);
        }
        if (r->headers) {
                /* One line holds the client's token. */
                for (struct curl_slist *l = r->headers; l; l = l->next)
                        explicit_bzero(l->data, strlen(l->data));
                curl_slist_free_all(r->headers);
        }
        free(r->body);
        curl_body_done(&r->answer);
        free(r);
}

ManagerHA *manager_ha_free(ManagerHA *mh) {
        if (!mh)
                return NULL;
        while (!LIST_EMPTY(&mh->relays))
                relay_free(LIST_FIRST(&mh->relays));
        curl_glue_free(mh->glue);
        ha_free(mh->ha);
        etcd_free(mh->etcd);
        store_free(mh->state_lock);
        sd_event_unref(mh->event);
        free(mh->prefix);
        free(mh->enforced_key);
        free(mh->name);
        free(mh->first_endpoint);
        free(mh->user_agent);
        return mfree(mh);
}

static void on_role(HA *ha, HARole role, const char *reason, void *userdata) {
        ManagerHA *mh = userdata;
        bool leader = role == HA_ROLE_LEADER;

        log_event(leader ? LOG_NOTICE : LOG_WARNING, NULL, NULL, leader ? "ha-leader" : "ha-follower",
                  "High availability: this host (%s) is now %s: %s.", mh->name, ha_role_to_string(role), reason);
        if (mh->fn)
                mh->fn(mh, leader, reason, mh->userdata);
}

int manager_ha_etcd_new(const Config *c, sd_event *event, const char *user_agent, Etcd **ret) {
        _cleanup_free_ char *msg = NULL;
        char *password = NULL;
        size_t password_size = 0;
        const HAConfig *h = c->ha;
        EtcdOptions eo;
        int r;

        if (h->password_set) {
                _cleanup_free_ char *ref = secret_ref_to_string(&h->password);

                r = secrets_resolve(&h->password, NULL, &password, &password_size, &msg);
                if (r < 0)
                        return log_error_errno(r, "Cannot read the etcd password %s (ha.password): %s",
                                               strna(ref), msg ? msg : strerror(-r));
                (void) log_register_secret(password, password_size);
        }
        eo = (EtcdOptions) {
                .endpoints = h->etcd,
                .ca_file = h->ca_file,
                .cert_file = h->cert_file,
                .key_file = h->key_file,
                .user = h->user,
                .password = password,
                .user_agent = user_agent,
        };
        r = etcd_new(ret, event, &eo);
        erase_and_free(password, password_size);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the etcd client (ha.etcd): %m");
        return 0;
}

int manager_ha_new(ManagerHA **ret, sd_event *event, const Config *c, manager_ha_role_fn fn, void *userdata) {
        _cleanup_(manager_ha_freep) ManagerHA *mh = NULL;
        _cleanup_free_ char *election = NULL, *msg = NULL;
        const HAConfig *h = c->ha;
        HAOptions ho;
        int r;

        mh = calloc(1, sizeof(ManagerHA));
        if (!mh)
                return log_error_errno(ENOMEM, "Out of memory.");
        LIST_INIT(&mh->relays);
        mh->event = sd_event_ref(event);
        mh->fn = fn;
        mh->userdata = userdata;
        mh->forward = h->forward;
        mh->lease_ttl_usec = h->lease_ttl_usec;
        mh->prefix = strdup(h->prefix);
        mh->name = strdup(h->name);
        mh->first_endpoint = strdup(h->etcd[0]);
        if (!mh->prefix || !mh->name || !mh->first_endpoint ||
            asprintf(&mh->enforced_key, "%s%s", h->prefix, ENFORCED_KEY) < 0 ||
            asprintf(&mh->user_agent, "binderyd/%s (%s)", PACKAGE_VERSION, h->name) < 0)
                return log_error_errno(ENOMEM, "Out of memory.");

        /* The state directory still holds this host's local cache, the
         * request budget and the runs history: one daemon per directory,
         * as without ha:. The file store holds the lock until exit. */
        r = store_file_open(c->state_dir, true, &mh->state_lock, &msg);
        if (r == -EBUSY)
                return log_error_errno(r, "The state directory '%s' is locked by another bindery process.",
                                       c->state_dir);
        if (r < 0)
                return log_error_errno(r, "Cannot open the state directory '%s': %s", c->state_dir,
                                       msg ? msg : strerror(-r));

        r = manager_ha_etcd_new(c, event, mh->user_agent, &mh->etcd);
        if (r < 0)
                return r;

        election = store_etcd_election_name(h->prefix);
        if (!election)
                return log_error_errno(ENOMEM, "Out of memory.");
        ho = (HAOptions) {
                .election = election,
                .name = h->name,
                .advertise_url = h->advertise_url,
                .lease_ttl_usec = h->lease_ttl_usec,
        };
        r = ha_new(&mh->ha, event, mh->etcd, &ho, on_role, mh);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the leader election (ha.lease_ttl): %m");
        r = curl_glue_new(&mh->glue, event);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the trigger relay: %m");
        *ret = TAKE_PTR(mh);
        return 0;
}

int manager_ha_start(ManagerHA *mh) {
        int r = ha_start(mh->ha);

        if (r < 0)
                return log_error_errno(r, "Cannot start the leader election: %m");
        log_info("High availability: host '%s' campaigns in %s%s (etcd %s, lease %" PRIu64 "s).", mh->name,
                 mh->prefix, STORE_ETCD_ELECTION, mh->first_endpoint, mh->lease_ttl_usec / USEC_PER_SEC);
        return 0;
}

void manager_ha_resign(ManagerHA *mh) {
        bool was_leader = ha_role(mh->ha) == HA_ROLE_LEADER;
        int r;

        r = ha_resign(mh->ha, RESIGN_TIMEOUT_USEC);
        if (r < 0)
                log_warning_errno(r, "High availability: resigning failed (the lease expires within %" PRIu64
                                  "s instead): %m", mh->lease_ttl_usec / USEC_PER_SEC);
        else if (was_leader)
                log_notice("High availability: resigned; another host may lead now.");
}

bool manager_ha_is_leader(const ManagerHA *mh) {
        return ha_role(mh->ha) == HA_ROLE_LEADER;
}

bool manager_ha_may_send(const char *method, void *userdata) {
        ManagerHA *mh = userdata;

        return ha_may_write(mh->ha);
}

static int fence(const void *userdata, const char **ret_key, int64_t *ret_rev) {
        return ha_fence(userdata, ret_key, ret_rev);
}

int manager_ha_engine_readonly(Engine **ret, sd_event *event, const Config *c) {
        StoreEtcdOptions o = { .prefix = c->ha->prefix, .own_etcd = true };
        Etcd *etcd = NULL;
        Store *store = NULL;
        int r;

        r = manager_ha_etcd_new(c, NULL, NULL, &etcd);
        if (r < 0)
                return r;
        r = store_etcd_new(&store, etcd, &o);
        if (r < 0)
                return log_error_errno(r, "Cannot open the ledger in etcd %s: %m", c->ha->prefix);
        r = engine_new_with_store(ret, event, c, store);
        if (r < 0)
                return log_error_errno(r, "Cannot read the ledger in etcd %s: %m", c->ha->prefix);
        return 0;
}

int manager_ha_open_store(ManagerHA *mh, Store **ret) {
        StoreEtcdOptions o = {
                .prefix = mh->prefix,
                .fence = fence,
                .fence_userdata = mh->ha,
        };

        return store_etcd_new(ret, mh->etcd, &o);
}

int manager_ha_read_enforced(ManagerHA *mh, char ret_digest[static 65], uint64_t *ret_usec) {
        _cleanup_(json_object_putp) json_object *a = NULL, *v = NULL;
        EtcdKeyValue kv = {};
        json_object *kvs, *d, *t;
        int r;

        r = etcd_range_sync(mh->etcd, mh->enforced_key, NULL, 0, RECORD_TIMEOUT_USEC, &a, NULL);
        if (r < 0)
                return r;
        if (!json_object_object_get_ex(a, "kvs", &kvs) || !json_object_is_type(kvs, json_type_array) ||
            json_object_array_length(kvs) == 0)
                return -ENOENT;
        r = etcd_decode_key_value(json_object_array_get_idx(kvs, 0), 1024, 1024, &kv);
        if (r < 0)
                return r;
        v = json_tokener_parse(kv.value);
        etcd_key_value_done(&kv);
        if (!v || !json_object_object_get_ex(v, "digest", &d) || !json_object_is_type(d, json_type_string) ||
            json_object_get_string_len(d) != 64)
                return -EBADMSG;
        memcpy(ret_digest, json_object_get_string(d), 65);
        *ret_usec = json_object_object_get_ex(v, "at_usec", &t) ? (uint64_t) json_object_get_int64(t) : 0;
        return 0;
}

int manager_ha_record_enforced(ManagerHA *mh, const char *digest, uint64_t at_usec) {
        _cleanup_(etcd_txn_freep) EtcdTxn *t = etcd_txn_new();
        _cleanup_(json_object_putp) json_object *v = json_object_new_object();
        const char *leader = NULL, *s;
        int64_t rev = 0;
        int r;

        if (!t || !v)
                return -ENOMEM;
        r = ha_fence(mh->ha, &leader, &rev);
        if (r < 0)
                return r;
        json_object_object_add(v, "digest", json_object_new_string(digest));
        json_object_object_add(v, "at_usec", json_object_new_int64((int64_t) at_usec));
        json_object_object_add(v, "host", json_object_new_string(mh->name));
        s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        r = etcd_txn_compare_create(t, leader, rev);
        if (r >= 0)
                r = etcd_txn_put(t, mh->enforced_key, s, strlen(s));
        if (r >= 0)
                r = etcd_txn_sync(mh->etcd, t, RECORD_TIMEOUT_USEC, NULL, NULL);
        if (r == 0)
                return -ESTALE;
        return r < 0 ? r : 0;
}

json_object *manager_ha_status_json(const ManagerHA *mh) {
        json_object *j = json_object_new_object();
        char ts[64];

        if (!j)
                return NULL;
        json_object_object_add(j, "role", json_object_new_string(ha_role_to_string(ha_role(mh->ha))));
        json_object_object_add(j, "name", json_object_new_string(mh->name));
        json_object_object_add(j, "leader", ha_leader_name(mh->ha) ? json_object_new_string(ha_leader_name(mh->ha))
                                                                    : NULL);
        json_object_object_add(j, "leader_url", ha_leader_url(mh->ha) ?
                               json_object_new_string(ha_leader_url(mh->ha)) : NULL);
        json_object_object_add(j, "since", json_object_new_string(format_rfc3339(ha_since(mh->ha), ts, sizeof ts)));
        json_object_object_add(j, "may_write", json_object_new_boolean(ha_may_write(mh->ha)));
        json_object_object_add(j, "reason", isempty(ha_reason(mh->ha)) ? NULL :
                               json_object_new_string(ha_reason(mh->ha)));
        json_object_object_add(j, "role_changes", json_object_new_int64(ha_n_role_changes(mh->ha)));
        json_object_object_add(j, "lease_ttl", json_object_new_string(format_duration(mh->lease_ttl_usec, ts,
                                                                                      sizeof ts)));
        json_object_object_add(j, "forward", json_object_new_boolean(mh->forward));
        json_object_object_add(j, "etcd", json_object_new_string(etcd_current_endpoint(mh->etcd)));
        json_object_object_add(j, "prefix", json_object_new_string(mh->prefix));
        return j;
}

void manager_ha_metrics(const ManagerHA *mh, Metrics *x) {
        bool leader = ha_role(mh->ha) == HA_ROLE_LEADER;

        metrics_family(x, "bindery_ha_role", "gauge", "1 for this host's high-availability role.");
        metrics_sample(x, "bindery_ha_role", leader ? 1 : 0, "role", "leader", NULL);
        metrics_sample(x, "bindery_ha_role", leader ? 0 : 1, "role", "follower", NULL);
        metrics_family(x, "bindery_ha_may_write", "gauge", "1 while this host may write to Cloudflare.");
        metrics_sample(x, "bindery_ha_may_write", ha_may_write(mh->ha), NULL);
        metrics_family(x, "bindery_ha_role_changes_total", "counter", "Role changes since start.");
        metrics_sample(x, "bindery_ha_role_changes_total", ha_n_role_changes(mh->ha), NULL);
        metrics_family(x, "bindery_ha_forwarded_total", "counter",
                       "Triggers and plans a follower relayed to the leader, by outcome.");
        metrics_sample(x, "bindery_ha_forwarded_total", (double) mh->relayed, "outcome", "relayed", NULL);
        metrics_sample(x, "bindery_ha_forwarded_total", (double) mh->relay_failed, "outcome", "failed", NULL);
        metrics_sample(x, "bindery_ha_forwarded_total", (double) mh->redirected, "outcome", "redirected", NULL);
}

int manager_ha_leader(ManagerHA *mh, char **ret_url, bool *ret_forward) {
        const char *url;

        if (ha_role(mh->ha) == HA_ROLE_LEADER)
                return 0;
        url = ha_leader_url(mh->ha);
        if (isempty(url))
                return -EAGAIN;
        *ret_url = strdup(url);
        if (!*ret_url)
                return -ENOMEM;
        while (endswith(*ret_url, "/"))
                (*ret_url)[strlen(*ret_url) - 1] = 0;
        *ret_forward = mh->forward;
        if (!mh->forward)
                mh->redirected++;
        return 1;
}

static size_t on_relay_data(char *p, size_t size, size_t n, void *userdata) {
        Relay *r = userdata;

        return curl_body_append(&r->answer, p, size * n, RELAY_ANSWER_MAX);
}

static void on_relay_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        Relay *r = userdata;
        ManagerHA *mh = r->mh;
        HttpdRelay a = {};
        struct curl_header *loc = NULL;
        long status = 0;
        char *ct = NULL;

        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        (void) curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct);
        if (curl_easy_header(easy, "Location", 0, CURLH_HEADER, -1, &loc) != CURLHE_OK)
                loc = NULL;
        if (result == CURLE_OK && !r->answer.too_big && status >= 100 && status <= 599) {
                a = (HttpdRelay) {
                        .status = (unsigned) status,
                        .content_type = ct,
                        .location = loc ? loc->value : NULL,
                        .body = r->answer.data ? r->answer.data : "",
                        .size = r->answer.size,
                };
                mh->relayed++;
                log_debug("High availability: relayed to the leader: HTTP %ld.", status);
        } else {
                mh->relay_failed++;
                log_warning("High availability: relaying to the leader failed: %s.",
                            r->answer.too_big ? "answer too large" : curl_easy_strerror(result));
        }
        /* The easy handle is ours again (curl-glue removed it). */
        if (r->done)
                r->done(a.status ? &a : NULL, r->cookie);
        relay_free(r);
}

int manager_ha_forward(ManagerHA *mh, const char *method, const char *url, const char *authorization,
                       const char *body, size_t size, uint64_t timeout_usec, httpd_relay_done_t done,
                       void *cookie, void **ret_handle) {
        Relay *r;
        int k;

        r = calloc(1, sizeof(Relay));
        if (!r)
                return -ENOMEM;
        r->mh = mh;
        r->done = done;
        r->cookie = cookie;
        LIST_INSERT_HEAD(&mh->relays, r, link);
        r->easy = curl_easy_init();
        r->body = malloc(size + 1);
        if (!r->easy || !r->body) {
                relay_free(r);
                return -ENOMEM;
        }
        memcpy(r->body, body, size);
        r->body[size] = 0;
        r->body_size = size;
        r->headers = curl_slist_append(NULL, HTTPD_FORWARDED_HEADER ": 1");
        if (r->headers && authorization) {
                _cleanup_erase_free_ char *h = NULL;
                struct curl_slist *l;

                if (asprintf(&h, "Authorization: %s", authorization) < 0) {
                        relay_free(r);
                        return -ENOMEM;
                }
                l = curl_slist_append(r->headers, h);
                if (l)
                        r->headers = l;
        }
        if (!r->headers) {
                relay_free(r);
                return -ENOMEM;
        }
        if (curl_easy_setopt(r->easy, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_USERAGENT, mh->user_agent) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_relay_data) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L) != CURLE_OK ||
            curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long) (timeout_usec / USEC_PER_MSEC)) != CURLE_OK) {
                relay_free(r);
                return -EIO;
        }
        if (!streq(method, "GET") &&
            (curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body) != CURLE_OK ||
             curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long) r->body_size) != CURLE_OK)) {
                relay_free(r);
                return -EIO;
        }
        k = curl_glue_add(mh->glue, r->easy, on_relay_done, r);
        if (k < 0) {
                relay_free(r);
                return k;
        }
        *ret_handle = r;
        return 0;
}

void manager_ha_forward_cancel(ManagerHA *mh, void *handle) {
        relay_free(handle);
}
