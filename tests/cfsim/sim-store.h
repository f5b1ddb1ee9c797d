/* sim-store.h: cfsim's account state, its persistence and audit log.
 *
 * The whole account is one json-c tree (Sim.state) guarded by Sim.lock;
 * every handler runs with the lock held, so handlers may read and modify
 * the tree freely and must not keep references to it after returning.
 * Secret values never enter the tree: they are replaced by "sha256:<hex>"
 * as soon as a request is decoded. */
#pragma once

#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#define SIM_DEFAULT_ACCOUNT  "023e105f4ecef8ad9ca31a8372d0c353"
#define SIM_AUDIT_MAX        100000  /* oldest entries dropped past this */
#define SIM_AUDIT_FILTER_MAX 100     /* values of one audit filter (more: 400) */
#define SIM_VERSIONS_MAX     100     /* per script; oldest dropped */
#define SIM_REQLOG_MAX       1000    /* /__sim/requests ring */
#define SIM_FAULTS_MAX       64
#define SIM_RL_TOKENS        32      /* rate-limit windows kept (one per token) */

/* Cloudflare's documented defaults (README "Rate limit", "Account limits"). */
#define SIM_RL_QUOTA_DEFAULT  1200
#define SIM_RL_WINDOW_DEFAULT 300
#define SIM_RL_BLOCK_DEFAULT  300
#define SIM_MAX_SCRIPTS_DEFAULT       500   /* Workers Paid */
#define SIM_MAX_CRONS_DEFAULT         250   /* Workers Paid */
#define SIM_MAX_STORES_DEFAULT        1
#define SIM_MAX_STORE_SECRETS_DEFAULT 100

typedef enum SimFaultKind {
        SIM_FAULT_429,
        SIM_FAULT_400,          /* a definitive refusal: 10021, nothing written */
        SIM_FAULT_403,          /* a permission refusal: 10000, nothing written */
        SIM_FAULT_500,
        SIM_FAULT_502,
        SIM_FAULT_503,
        SIM_FAULT_STALL,
        SIM_FAULT_DROP,
        SIM_FAULT_TRUNCATE,
        _SIM_FAULT_MAX,
        _SIM_FAULT_INVALID = -22,
} SimFaultKind;

typedef struct SimFault {
        char *method;           /* NULL: any */
        char *route;            /* the regex source, NULL: any path */
        regex_t re;
        bool have_re;
        SimFaultKind kind;
        double rate;            /* < 0: not a rate rule */
        int64_t count;          /* remaining; < 0: unlimited */
        unsigned retry_after;   /* seconds */
        unsigned seconds;       /* stall */
        uint64_t rng;           /* xorshift64 state */
        uint64_t hits;
} SimFault;

/* One token's rate-limit window. key is a hash of the Authorization value. */
typedef struct SimRateWindow {
        char key[17];
        uint64_t start_usec;            /* window start, 0: unused slot */
        uint64_t block_until_usec;      /* > now: blocked */
        uint64_t last_usec;             /* last use (for slot reuse) */
        unsigned used;
} SimRateWindow;

typedef struct SimReqLog {
        char method[12];
        char *path;
        char *query;            /* the raw query string, without '?' */
        unsigned status;
        char time[40];
        char user_agent[160];   /* cut; tells writers apart (HA tests) */
} SimReqLog;

/* An immutable, reference-counted buffer: the serialized script list is
 * shared by the cache and every response still sending it. */
typedef struct SimBlob {
        unsigned refs;          /* atomic */
        size_t size;
        char data[];
} SimBlob;

/* A new blob holding head + body + tail (refs = 1); aborts on OOM. */
SimBlob *sim_blob_new(const char *head, const char *body, size_t body_size, const char *tail);
SimBlob *sim_blob_ref(SimBlob *b);
/* Drops one reference (void * so it can be an MHD free callback). */
void sim_blob_unref(void *b);

typedef struct Sim {
        pthread_mutex_t lock;
        pthread_cond_t wake;            /* stalls and the persister wait here */
        bool stopping;

        char account_id[65];
        char **tokens;                  /* accepted tokens (--token, repeatable); NULL: no auth */
        char *state_path;               /* NULL: memory only */

        json_object *state;             /* the account, see sim_store_new_state() */
        uint64_t generation;            /* bumped by every write */
        bool dirty;                     /* state changed since last save */

        SimBlob *list_cache;            /* the whole GET /workers/scripts answer */
        uint64_t list_cache_gen;

        /* Operator counters. */
        uint64_t requests, writes;
        json_object *by_route, *by_status;
        SimReqLog reqlog[SIM_REQLOG_MAX];
        size_t reqlog_next, reqlog_n;

        SimFault faults[SIM_FAULTS_MAX];
        size_t n_faults;

        /* Rate limit, per token: rl_quota requests per fixed rl_window
         * seconds; past it every call is refused for rl_block seconds. */
        unsigned rl_quota, rl_window, rl_block;
        SimRateWindow rl[SIM_RL_TOKENS];

        /* Binding targets must exist (on unless --no-check-bindings). */
        bool check_bindings;
        /* A target created less than this ago is not yet accepted as a
         * binding target; only every propagation_every-th create lags. */
        uint64_t propagation_usec;
        unsigned propagation_every, propagation_count;

        /* Audit Logs v2: answer 403 (token without Account Settings Read);
         * entries become visible only this long after the action. */
        bool audit_forbidden;
        uint64_t audit_delay_usec;
        unsigned audit_page_max;        /* largest limit= honoured (Cloudflare: 1000) */

        json_object *propagation;       /* "kind:key" -> ready time (usec), not persisted */

        /* Account limits (0: unlimited). */
        unsigned max_scripts, max_crons, max_stores, max_store_secrets;
} Sim;

/* Initialises sim with defaults and an empty account. Returns 0 or -ENOMEM. */
int sim_init(Sim *sim, const char *account_id);
/* Frees everything sim owns (not sim itself). */
void sim_done(Sim *sim);

/* Returns a new, empty account tree for account_id (caller owns it). */
json_object *sim_store_new_state(const char *account_id);
/* Replaces the account with an empty one (lock held). */
void sim_store_reset(Sim *sim);

/* Loads sim->state_path if it exists. 0 if loaded or absent, negative
 * errno on a read or parse error (the state is then left empty). */
int sim_store_load(Sim *sim);
/* Serializes the state under the lock, writes it atomically outside the
 * lock if it changed. Returns 0 or negative errno. */
int sim_store_save(Sim *sim);

/* Top-level collections of the tree, e.g. sim_coll(sim, "scripts"). */
json_object *sim_coll(Sim *sim, const char *name);

/* Appends one Audit Logs v2 entry (lock held). */
/* The id of the API token in an Authorization value ("Bearer T"), as
 * /user/tokens/verify and the audit entries' actor.token_id show it: 32
 * hex digits of SHA-256(T); SIM_TOKEN_ID_NONE without a bearer token. */
#define SIM_TOKEN_ID_NONE "cfsim0000000000000000000000token"
void sim_token_id(const char *authorization, char ret[static 33]);
void sim_audit(Sim *sim, const char *token_id, const char *method, const char *uri, unsigned status,
               const char *resource_type, const char *resource_id);

/* Current time as RFC 3339 with microseconds ("...T09:02:19.123456Z"). */
char *sim_now(char buf[static 40]);
/* Parses RFC 3339 (or YYYY-MM-DD) into microseconds. 0 or -EINVAL. */
int sim_parse_time(const char *s, uint64_t *ret_usec);
/* Random lower-case hex of n characters (n even, <= 64) into buf[n+1]. */
void sim_random_hex(char *buf, size_t n);
/* Random UUID v4 into buf[37]. */
void sim_random_uuid(char buf[static 37]);
/* "sha256:<hex>" of data into buf[72]. */
char *sim_sha256_tag(const void *data, size_t size, char buf[static 72]);

/* json-c conveniences: add a string / int / bool / deep copy. */
void sim_set_str(json_object *o, const char *key, const char *v);
void sim_set_int(json_object *o, const char *key, int64_t v);
void sim_set_bool(json_object *o, const char *key, bool v);
/* Returns a deep copy of o (NULL stays NULL); aborts on OOM. */
json_object *sim_copy(json_object *o);

/* The version a script's newest deployment serves (the one with the
 * largest percentage), or NULL. Borrowed. Implemented in sim-workers.c. */
json_object *sim_script_live_version(json_object *script);

/* Queue consumers (sim-storage.c): whether script consumes any queue;
 * removes every consumer naming script. */
bool sim_script_is_consumer(Sim *sim, const char *script);
void sim_remove_consumers_of(Sim *sim, const char *script);

/* Propagation (--propagation-delay): records that a binding target of
 * kind ("kv", "r2", "d1", "queue", "store_secret") and key was created
 * now; sim_propagating() is true while it is not yet a binding target. */
void sim_created(Sim *sim, const char *kind, const char *key);
bool sim_propagating(Sim *sim, const char *kind, const char *key);

/* Adds what a spec can only reference (--seed FILE, POST /__sim/seed):
 * {"kv":[{id,title}], "r2":[{name,jurisdiction?}], "d1":[{uuid,name}],
 *  "queues":[{queue_name}], "stores":[{id,name,secrets?:[name]}],
 *  "hyperdrive":[{id,name}], "vectorize":[{name}]}. What already exists
 * is kept as it is; an invalid seed adds nothing. Lock held for
 * sim_seed(). 0, or -EINVAL with *ret_msg (static). */
int sim_seed(Sim *sim, json_object *seed, const char **ret_msg);
int sim_seed_file(Sim *sim, const char *path, const char **ret_msg);

/* Iterates the member values of a json-c object (val declared by the
 * macro; members whose value is JSON null are skipped). The body must not
 * delete members, and "break" leaves only the current member. */
#define SIM_FOREACH_VAL(obj, val)                                                                     \
        for (struct lh_entry *val##_e_ = json_object_get_object(obj)->head; val##_e_; val##_e_ = val##_e_->next) \
                for (json_object *val = (json_object *) lh_entry_v(val##_e_), *val##_once_ = val; val##_once_; \
                     val##_once_ = NULL)
