/* etcd.h: a client of etcd's v3 JSON gateway (grpc-gateway, "/v3/...").
 *
 * Every call is one HTTP POST of a JSON body to one endpoint; the answer
 * is one JSON object. Keys and values travel base64-encoded (etcd_b64_*),
 * 64-bit integers as JSON strings (etcd_json_int64 reads both forms).
 *
 * Two ways to call:
 *   etcd_call()       asynchronous, on the sd-event loop given to
 *                     etcd_new() (libcurl multi through curl-glue); the
 *                     callback runs exactly once unless the call is
 *                     cancelled. Long-lived calls (an election campaign
 *                     blocks in etcd until this host is elected) are
 *                     requests like any other: they never block the loop.
 *   etcd_call_sync()  blocking (curl_easy_perform), bounded by its timeout
 *                     per endpoint tried; for the store's commit, which
 *                     store.h allows to block for one round trip.
 *
 * Endpoints: a call goes to the endpoint that answered last; on a
 * transport failure (connection refused, reset, timed out) or an
 * "unavailable" answer from etcd (that member lost quorum) it tries the
 * next, each endpoint at most once per call.
 *
 * Auth: with a user, a call first gets a token from /v3/auth/authenticate
 * (kept for later calls) and sends it in the Authorization header; a
 * rejected token is dropped and fetched again once per call. TLS: https
 * endpoints verify the server against ca_file (or the system store); a
 * client certificate and key may be given.
 *
 * Limits: an answer is at most max_answer bytes (default 16 MiB; -EFBIG
 * past it), decoders check the type of each field they read and the
 * length of each key and value.
 *
 * Errors are negative errno: -ECONNREFUSED / -ETIMEDOUT / -EIO (transport,
 * every endpoint failed), -EAGAIN (etcd unavailable: no leader, no
 * quorum), -ENOENT (not found: lease), -EACCES (auth), -E2BIG (too many
 * operations), -EINVAL (bad request), -EBADMSG (an answer we cannot read),
 * -EFBIG. Messages (reterr / the callback's message) name the endpoint
 * and never hold the password or token. Non-logging.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "cleanup.h"

typedef struct Etcd Etcd;
typedef struct EtcdCall EtcdCall;

#define ETCD_ENDPOINTS_MAX 16
#define ETCD_DEFAULT_MAX_ANSWER (16U * 1024U * 1024U)
#define ETCD_DEFAULT_TIMEOUT_USEC (5U * 1000000U)
/* etcd's default --max-txn-ops. */
#define ETCD_MAX_TXN_OPS 128U

typedef struct EtcdOptions {
        char * const *endpoints;    /* "http://HOST:PORT" or "https://..."; 1..ETCD_ENDPOINTS_MAX */
        const char *ca_file;        /* PEM bundle for https (NULL: system store) */
        const char *cert_file;      /* client certificate (PEM), with key_file */
        const char *key_file;
        const char *user;           /* NULL: no auth */
        const char *password;       /* copied into locked memory, wiped on free */
        const char *user_agent;     /* NULL: "binderyd" */
        uint64_t connect_timeout_usec; /* default 1 s */
        size_t max_answer;          /* default ETCD_DEFAULT_MAX_ANSWER */
} EtcdOptions;

/* event may be NULL for a client that only uses etcd_call_sync(). Copies
 * everything in o. Returns 0, -EINVAL (no endpoint, an endpoint not
 * http(s)://, cert without key), -ENOMEM. */
int etcd_new(Etcd **ret, sd_event *event, const EtcdOptions *o);
/* Cancels every call still running (their callbacks are not called). */
Etcd *etcd_free(Etcd *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(Etcd *, etcd_free);

/* The endpoint calls go to first (the last that answered). */
const char *etcd_current_endpoint(const Etcd *e) _pure_;

/* r is 0 with answer the decoded JSON object (borrowed: take a reference
 * to keep it), or negative with message a description (may be NULL). */
typedef void (*etcd_reply_fn)(Etcd *e, int r, json_object *answer, const char *message,
                              void *userdata);

/* POSTs body (not consumed) to path ("/v3/kv/range") asynchronously.
 * timeout_usec bounds each attempt (0: none, for calls that wait in etcd
 * such as a campaign). ret_call (may be NULL) identifies the call for
 * etcd_call_cancel(); it is valid until fn runs. Returns 0 or -ENOMEM,
 * -EINVAL (no event loop). */
int etcd_call(Etcd *e, const char *path, json_object *body, uint64_t timeout_usec,
              etcd_reply_fn fn, void *userdata, EtcdCall **ret_call);
/* Stops a call; its callback is not called. NULL is a no-op. */
void etcd_call_cancel(EtcdCall *c);
/* Calls in flight. */
unsigned etcd_n_calls(const Etcd *e) _pure_;

/* Blocking form; on success *ret is the answer (caller puts it). */
int etcd_call_sync(Etcd *e, const char *path, json_object *body, uint64_t timeout_usec,
                   json_object **ret, char **reterr);

/* ---- Encoding (pure) ---- */

/* Base64 (RFC 4648, padded) of size bytes. Caller frees; NULL on OOM. */
char *etcd_b64_encode(const void *data, size_t size);
/* Decodes s (padded base64, at most max decoded bytes, -EFBIG past it)
 * into a NUL-terminated buffer; -EBADMSG when s is not base64. */
int etcd_b64_decode(const char *s, size_t max, char **ret, size_t *ret_size);
/* A JSON string of base64 for a NUL-terminated text. NULL on OOM. */
json_object *etcd_json_b64(const char *s);

/* Reads an int64 field sent as a string or a number; absent means 0
 * (the gateway omits zero values). -EBADMSG for anything else. */
int etcd_json_int64(json_object *o, const char *field, int64_t *ret);
/* A bool field; absent means false. */
bool etcd_json_bool(json_object *o, const char *field);

/* The range end that selects every key starting with prefix (the prefix
 * with its last byte below 0xff incremented). Caller frees. */
char *etcd_prefix_end(const char *prefix);

/* One key-value as etcd returns it (mvccpb.KeyValue). */
typedef struct EtcdKeyValue {
        char *key;
        char *value;
        size_t value_size;
        int64_t create_revision;
        int64_t mod_revision;
        int64_t lease;
} EtcdKeyValue;

void etcd_key_value_done(EtcdKeyValue *kv);
/* Decodes one "kv" object; keys at most max_key, values at most max_value
 * bytes. */
int etcd_decode_key_value(json_object *o, size_t max_key, size_t max_value, EtcdKeyValue *ret);

/* The election leader record (v3electionpb.LeaderKey). */
typedef struct EtcdLeaderKey {
        char *name;
        char *key;
        int64_t rev;
        int64_t lease;
} EtcdLeaderKey;

void etcd_leader_key_done(EtcdLeaderKey *l);
/* From a campaign answer ({"leader": {...}}). */
int etcd_decode_campaign(json_object *answer, EtcdLeaderKey *ret);
/* The JSON form of l, for /v3/election/resign and proclaim. */
json_object *etcd_leader_key_to_json(const EtcdLeaderKey *l);

/* ---- Requests (async forms of the common calls) ---- */

/* /v3/lease/grant: answer "ID", "TTL". */
int etcd_lease_grant(Etcd *e, int64_t ttl_sec, etcd_reply_fn fn, void *userdata, EtcdCall **ret_call);
/* /v3/lease/keepalive: answer {"result": {"ID", "TTL"}}; TTL 0 means the
 * lease is gone. timeout_usec bounds each attempt (a member without a
 * raft leader holds it): keep it well under the TTL. */
int etcd_lease_keepalive(Etcd *e, int64_t lease, uint64_t timeout_usec, etcd_reply_fn fn, void *userdata,
                         EtcdCall **ret_call);
/* Reads the TTL a keepalive answer grants (0: lease gone). */
int etcd_decode_keepalive(json_object *answer, int64_t *ret_ttl);
/* /v3/lease/revoke (sync, bounded). -ENOENT when already gone. */
int etcd_lease_revoke_sync(Etcd *e, int64_t lease, uint64_t timeout_usec, char **reterr);
/* /v3/election/campaign: blocks in etcd until elected (no timeout here:
 * cancel it to give up; etcd then withdraws the candidacy). */
int etcd_campaign(Etcd *e, const char *name, int64_t lease, const char *value,
                  etcd_reply_fn fn, void *userdata, EtcdCall **ret_call);
/* /v3/election/leader: answer {"kv": ...}; -ENOENT when none leads. */
int etcd_leader(Etcd *e, const char *name, etcd_reply_fn fn, void *userdata, EtcdCall **ret_call);
/* /v3/election/observe, a stream without timeout: event_fn runs for each
 * leader etcd reports (answer {"header", "kv"}; the current one first),
 * from libcurl's write callback, so it must not cancel the call. A broken
 * stream is resent to the next endpoint; fn runs once when every one was
 * tried (r < 0). */
int etcd_observe(Etcd *e, const char *name, etcd_reply_fn event_fn, etcd_reply_fn fn, void *userdata,
                 EtcdCall **ret_call);
/* /v3/election/resign (sync, bounded). */
int etcd_resign_sync(Etcd *e, const EtcdLeaderKey *l, uint64_t timeout_usec, char **reterr);

/* A transaction under construction (etcdserverpb.TxnRequest). */
typedef struct EtcdTxn EtcdTxn;
EtcdTxn *etcd_txn_new(void);
EtcdTxn *etcd_txn_free(EtcdTxn *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(EtcdTxn *, etcd_txn_free);
/* Compares: key's create or mod revision EQUAL rev (0: key absent). */
int etcd_txn_compare_create(EtcdTxn *t, const char *key, int64_t rev);
int etcd_txn_compare_mod(EtcdTxn *t, const char *key, int64_t rev);
/* Success operations. */
int etcd_txn_put(EtcdTxn *t, const char *key, const void *value, size_t size);
int etcd_txn_delete(EtcdTxn *t, const char *key);
int etcd_txn_range(EtcdTxn *t, const char *key);
/* Failure operation (run when a compare fails). */
int etcd_txn_failure_range(EtcdTxn *t, const char *key);
size_t etcd_txn_n_ops(const EtcdTxn *t) _pure_;
/* The request body (borrowed). */
json_object *etcd_txn_body(EtcdTxn *t);

/* Runs t synchronously: 1 when the compares held (operations applied), 0
 * when they did not (nothing applied); *ret_answer (may be NULL) gets the
 * answer. -E2BIG beyond ETCD_MAX_TXN_OPS operations (not sent). */
int etcd_txn_sync(Etcd *e, EtcdTxn *t, uint64_t timeout_usec, json_object **ret_answer, char **reterr);

/* One page of a range [key, range_end) ("" end: only key), sorted by key,
 * at most limit kvs (0: no limit), synchronously. */
int etcd_range_sync(Etcd *e, const char *key, const char *range_end, int64_t limit,
                    uint64_t timeout_usec, json_object **ret, char **reterr);
