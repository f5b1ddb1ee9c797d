/* etcd.c: the v3 JSON gateway client; see etcd.h.
 *
 * One EtcdCall carries a request through its attempts: optionally an
 * authenticate step first (its body holds the password: built in a wiped
 * buffer just before sending and wiped after), then the request proper,
 * on one endpoint after another while they fail. call_prepare() sets the
 * easy handle up for the next attempt, call_finish() reads what came back
 * and says whether to try again; the async path (curl-glue) and the sync
 * path (curl_easy_perform) share both.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <nettle/base64.h>

#include "curl-glue.h"
#include "etcd.h"
#include "util.h"

#define ETCD_TOKEN_MAX 4096U
#define ETCD_MESSAGE_MAX 240U
#define ETCD_JSON_DEPTH 32

DEFINE_TRIVIAL_CLEANUP_FUNC(json_tokener *, json_tokener_free);

/* gRPC status codes the gateway reports in "code". */
enum {
        GRPC_CANCELLED = 1,
        GRPC_INVALID_ARGUMENT = 3,
        GRPC_DEADLINE_EXCEEDED = 4,
        GRPC_NOT_FOUND = 5,
        GRPC_PERMISSION_DENIED = 7,
        GRPC_RESOURCE_EXHAUSTED = 8,
        GRPC_FAILED_PRECONDITION = 9,
        GRPC_OUT_OF_RANGE = 11,
        GRPC_UNAVAILABLE = 14,
        GRPC_UNAUTHENTICATED = 16,
};

struct Etcd {
        sd_event *event;
        CurlGlue *glue;
        char **endpoints;
        size_t n_endpoints;
        size_t current;
        char *ca_file, *cert_file, *key_file;
        char *user;
        char *password;             /* secret_malloc'd */
        char *token;                /* from /v3/auth/authenticate */
        char *user_agent;
        uint64_t connect_timeout_usec;
        size_t max_answer;
        LIST_HEAD(, EtcdCall) calls;
        unsigned n_calls;
};

struct EtcdCall {
        Etcd *etcd;
        CURL *easy;
        struct curl_slist *headers;
        char *path;
        char *body;
        char *secret_body;          /* the authenticate body while it is sent */
        CurlBody answer;            /* too_big also for a stream's message */
        uint64_t timeout_usec;
        size_t endpoint;
        size_t tried;               /* endpoints that failed in this call */
        bool authenticating;
        bool auth_retried;
        bool async;
        int result;
        json_object *reply;
        char *message;
        char errbuf[CURL_ERROR_SIZE];
        etcd_reply_fn fn;
        etcd_reply_fn event_fn;     /* a stream's messages (etcd_observe) */
        json_tokener *stream;       /* the message being read */
        size_t stream_bytes;        /* its bytes so far (capped like an answer) */
        void *userdata;
        LIST_ENTRY(EtcdCall) link;
};

/* ---- Encoding ---- */

char *etcd_b64_encode(const void *data, size_t size) {
        char *s;

        if (size > INT32_MAX / 2)
                return NULL;
        s = malloc(BASE64_ENCODE_RAW_LENGTH(size) + 1);
        if (!s)
                return NULL;
        base64_encode_raw(s, size, data); /* padded, not terminated */
        s[BASE64_ENCODE_RAW_LENGTH(size)] = 0;
        return s;
}

int etcd_b64_decode(const char *s, size_t max, char **ret, size_t *ret_size) {
        size_t n = strlen(s), size = 0, pad = 0;
        struct base64_decode_ctx ctx;
        _cleanup_free_ char *buf = NULL;

        if (n % 4 != 0)
                return -EBADMSG;
        if (n / 4 * 3 > max + 2)
                return -EFBIG;
        if (n > 0 && s[n - 1] == '=')
                pad++;
        if (n > 1 && s[n - 2] == '=')
                pad++;
        /* BASE64_DECODE_LENGTH(n) >= n / 4 * 3: what nettle may write. */
        buf = malloc(BASE64_DECODE_LENGTH(n) + 1);
        if (!buf)
                return -ENOMEM;
        /* nettle refuses characters outside the alphabet, anything after
         * the padding and non-zero bits under it (no canonical encoder,
         * etcd's or ours, writes those); it skips white space, which the
         * length check then refuses. */
        base64_decode_init(&ctx);
        if (!base64_decode_update(&ctx, &size, (uint8_t *) buf, n, s) || !base64_decode_final(&ctx) ||
            size != n / 4 * 3 - pad)
                return -EBADMSG;
        if (size > max)
                return -EFBIG;
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

json_object *etcd_json_b64(const char *s) {
        _cleanup_free_ char *b = etcd_b64_encode(s, strlen(s));

        return b ? json_object_new_string(b) : NULL;
}

int etcd_json_int64(json_object *o, const char *field, int64_t *ret) {
        json_object *v;
        const char *s;
        char *end;
        long long x;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if (!json_object_object_get_ex(o, field, &v) || !v) {
                *ret = 0;
                return 0;
        }
        if (json_object_is_type(v, json_type_int)) {
                *ret = json_object_get_int64(v);
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        s = json_object_get_string(v);
        errno = 0;
        x = strtoll(s, &end, 10);
        if (errno != 0 || end == s || *end)
                return -EBADMSG;
        *ret = x;
        return 0;
}

bool etcd_json_bool(json_object *o, const char *field) {
        json_object *v;

        return json_object_object_get_ex(o, field, &v) && json_object_is_type(v, json_type_boolean) &&
               json_object_get_boolean(v);
}

char *etcd_prefix_end(const char *prefix) {
        _cleanup_free_ char *end = strdup(prefix);
        size_t n = strlen(prefix);

        if (!end)
                return NULL;
        while (n > 0) {
                unsigned char c = (unsigned char) end[n - 1];

                if (c < 0xff) {
                        end[n - 1] = (char) (c + 1);
                        end[n] = 0;
                        return TAKE_PTR(end);
                }
                n--;
        }
        /* Every byte 0xff: to the end of the key space ("\0"). */
        end[0] = 0;
        return TAKE_PTR(end);
}

static int json_b64_field(json_object *o, const char *field, size_t max, char **ret, size_t *ret_size) {
        json_object *v;

        if (!json_object_object_get_ex(o, field, &v) || !v) {
                char *e = strdup("");

                if (!e)
                        return -ENOMEM;
                *ret = e;
                if (ret_size)
                        *ret_size = 0;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        return etcd_b64_decode(json_object_get_string(v), max, ret, ret_size);
}

void etcd_key_value_done(EtcdKeyValue *kv) {
        if (!kv)
                return;
        free(kv->key);
        free(kv->value);
        *kv = (EtcdKeyValue) {};
}

int etcd_decode_key_value(json_object *o, size_t max_key, size_t max_value, EtcdKeyValue *ret) {
        EtcdKeyValue kv = {};
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        r = json_b64_field(o, "key", max_key, &kv.key, NULL);
        if (r >= 0)
                r = json_b64_field(o, "value", max_value, &kv.value, &kv.value_size);
        if (r >= 0)
                r = etcd_json_int64(o, "create_revision", &kv.create_revision);
        if (r >= 0)
                r = etcd_json_int64(o, "mod_revision", &kv.mod_revision);
        if (r >= 0)
                r = etcd_json_int64(o, "lease", &kv.lease);
        if (r < 0) {
                etcd_key_value_done(&kv);
                return r;
        }
        *ret = kv;
        return 0;
}

void etcd_leader_key_done(EtcdLeaderKey *l) {
        if (!l)
                return;
        free(l->name);
        free(l->key);
        *l = (EtcdLeaderKey) {};
}

int etcd_decode_campaign(json_object *answer, EtcdLeaderKey *ret) {
        EtcdLeaderKey l = {};
        json_object *o;
        int r;

        if (!json_object_object_get_ex(answer, "leader", &o) || !json_object_is_type(o, json_type_object))
                return -EBADMSG;
        r = json_b64_field(o, "name", 4096, &l.name, NULL);
        if (r >= 0)
                r = json_b64_field(o, "key", 4096, &l.key, NULL);
        if (r >= 0)
                r = etcd_json_int64(o, "rev", &l.rev);
        if (r >= 0)
                r = etcd_json_int64(o, "lease", &l.lease);
        if (r >= 0 && (isempty(l.key) || l.rev <= 0))
                r = -EBADMSG;
        if (r < 0) {
                etcd_leader_key_done(&l);
                return r;
        }
        *ret = l;
        return 0;
}

json_object *etcd_leader_key_to_json(const EtcdLeaderKey *l) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        char num[32];

        if (!o)
                return NULL;
        if (json_object_object_add(o, "name", etcd_json_b64(l->name)) < 0 ||
            json_object_object_add(o, "key", etcd_json_b64(l->key)) < 0)
                return NULL;
        (void) snprintf(num, sizeof num, "%" PRId64, l->rev);
        if (json_object_object_add(o, "rev", json_object_new_string(num)) < 0)
                return NULL;
        (void) snprintf(num, sizeof num, "%" PRId64, l->lease);
        if (json_object_object_add(o, "lease", json_object_new_string(num)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

int etcd_decode_keepalive(json_object *answer, int64_t *ret_ttl) {
        json_object *res;

        if (!json_object_object_get_ex(answer, "result", &res) || !json_object_is_type(res, json_type_object))
                return -EBADMSG;
        return etcd_json_int64(res, "TTL", ret_ttl);
}

/* ---- The client ---- */

static bool endpoint_is_valid(const char *s) {
        return s && (startswith(s, "http://") || startswith(s, "https://")) && strlen(s) < 1024 &&
               !strpbrk(s, " \t\r\n");
}

Etcd *etcd_free(Etcd *e) {
        if (!e)
                return NULL;
        while (!LIST_EMPTY(&e->calls))
                etcd_call_cancel(LIST_FIRST(&e->calls));
        curl_glue_free(e->glue);
        sd_event_unref(e->event);
        strv_free(e->endpoints);
        free(e->ca_file);
        free(e->cert_file);
        free(e->key_file);
        free(e->user);
        erase_and_free_str(e->password);
        erase_and_free_str(e->token);
        free(e->user_agent);
        free(e);
        return NULL;
}

static int strdup_opt(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int etcd_new(Etcd **ret, sd_event *event, const EtcdOptions *o) {
        _cleanup_(etcd_freep) Etcd *e = NULL;
        size_t n;
        int r;

        if (!ret || !o || !o->endpoints)
                return -EINVAL;
        n = strv_length(o->endpoints);
        if (n == 0 || n > ETCD_ENDPOINTS_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!endpoint_is_valid(o->endpoints[i]))
                        return -EINVAL;
        if (!!o->cert_file != !!o->key_file)
                return -EINVAL;

        e = calloc(1, sizeof(Etcd));
        if (!e)
                return -ENOMEM;
        LIST_INIT(&e->calls);
        e->endpoints = strv_copy(o->endpoints);
        if (!e->endpoints)
                return -ENOMEM;
        /* Without a trailing slash, so paths join with one. */
        for (size_t i = 0; i < n; i++) {
                size_t k = strlen(e->endpoints[i]);

                while (k > 0 && e->endpoints[i][k - 1] == '/')
                        e->endpoints[i][--k] = 0;
        }
        e->n_endpoints = n;
        if (strdup_opt(o->ca_file, &e->ca_file) < 0 || strdup_opt(o->cert_file, &e->cert_file) < 0 ||
            strdup_opt(o->key_file, &e->key_file) < 0 || strdup_opt(o->user, &e->user) < 0 ||
            strdup_opt(o->user_agent ? o->user_agent : "binderyd", &e->user_agent) < 0)
                return -ENOMEM;
        if (o->user) {
                size_t k = o->password ? strlen(o->password) : 0;

                e->password = secret_malloc(k + 1);
                if (!e->password)
                        return -ENOMEM;
                memcpy(e->password, o->password ? o->password : "", k + 1);
        }
        e->connect_timeout_usec = o->connect_timeout_usec ? o->connect_timeout_usec : USEC_PER_SEC;
        e->max_answer = o->max_answer ? o->max_answer : ETCD_DEFAULT_MAX_ANSWER;
        if (event) {
                e->event = sd_event_ref(event);
                r = curl_glue_new(&e->glue, event);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(e);
        return 0;
}

const char *etcd_current_endpoint(const Etcd *e) {
        return e->endpoints[e->current];
}

unsigned etcd_n_calls(const Etcd *e) {
        return e ? e->n_calls : 0;
}

/* One message of a stream ({"result": ...} or {"error": ...}): results
 * go to event_fn; an error ends the stream, and the call's end says why. */
static void stream_message(EtcdCall *c, json_object *o) {
        json_object *v;

        if (json_object_object_get_ex(o, "result", &v) && json_object_is_type(v, json_type_object))
                c->event_fn(c->etcd, 0, v, NULL, c->userdata);
}

/* A stream's bytes: each complete JSON object is one message. */
static int stream_feed(EtcdCall *c, const char *p, size_t n) {
        while (n > 0) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                enum json_tokener_error err;
                size_t used;

                if (!c->stream) {
                        c->stream = json_tokener_new_ex(ETCD_JSON_DEPTH);
                        if (!c->stream)
                                return -ENOMEM;
                        c->stream_bytes = 0;
                }
                o = json_tokener_parse_ex(c->stream, p, n > INT32_MAX ? INT32_MAX : (int) n);
                err = json_tokener_get_error(c->stream);
                if (!o && err == json_tokener_continue) {
                        c->stream_bytes += n;
                        if (c->stream_bytes > c->etcd->max_answer) {
                                c->answer.too_big = true;
                                return -EFBIG;
                        }
                        return 0;
                }
                if (!o || !json_object_is_type(o, json_type_object))
                        return -EBADMSG;
                used = json_tokener_get_parse_end(c->stream);
                json_tokener_reset(c->stream);
                c->stream_bytes = 0;
                stream_message(c, o);
                if (used == 0 || used > n)
                        return -EBADMSG;
                p += used;
                n -= used;
        }
        return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        EtcdCall *c = userdata;
        size_t n = size * nmemb;

        if (c->event_fn && !c->authenticating) {
                long status = 0;

                (void) curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
                if (status == 200)
                        return stream_feed(c, ptr, n) < 0 ? 0 : n;
        }
        return curl_body_append(&c->answer, ptr, n, c->etcd->max_answer);
}

static void call_wipe_secret(EtcdCall *c) {
        if (c->secret_body)
                c->secret_body = erase_and_free_str(c->secret_body);
}

static EtcdCall *call_free(EtcdCall *c) {
        if (!c)
                return NULL;
        call_wipe_secret(c);
        if (c->easy)
                curl_easy_cleanup(c->easy);
        curl_slist_free_all(c->headers);
        if (c->stream)
                json_tokener_free(c->stream);
        free(c->path);
        free(c->body);
        curl_body_done(&c->answer);
        json_object_put(c->reply);
        free(c->message);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(EtcdCall *, call_free);

/* The authenticate body, built in a wiped buffer. */
static int auth_body(const Etcd *e, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const char *s;
        char *buf;

        if (!o || json_object_object_add(o, "name", json_object_new_string(e->user)) < 0 ||
            json_object_object_add(o, "password", json_object_new_string(e->password)) < 0)
                return -ENOMEM;
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        buf = secret_malloc(strlen(s) + 1);
        if (!buf)
                return -ENOMEM;
        strcpy(buf, s);
        /* json-c's own serialisation buffer lives in o: wipe it too. */
        explicit_bzero((char *) s, strlen(s));
        *ret = buf;
        return 0;
}

static int call_prepare(EtcdCall *c) {
        Etcd *e = c->etcd;
        _cleanup_free_ char *url = NULL;
        const char *body;
        int r;

        if (e->user && !e->token)
                c->authenticating = true;
        call_wipe_secret(c);
        if (c->authenticating) {
                r = auth_body(e, &c->secret_body);
                if (r < 0)
                        return r;
                body = c->secret_body;
        } else
                body = c->body;
        if (asprintf(&url, "%s%s", e->endpoints[c->endpoint],
                     c->authenticating ? "/v3/auth/authenticate" : c->path) < 0)
                return -ENOMEM;

        curl_body_done(&c->answer);
        if (c->stream)
                json_tokener_reset(c->stream);
        c->stream_bytes = 0;
        c->errbuf[0] = 0;
        curl_slist_free_all(c->headers);
        c->headers = curl_slist_append(NULL, "Content-Type: application/json");
        if (!c->headers)
                return -ENOMEM;
        if (!c->authenticating && e->token) {
                _cleanup_erase_free_ char *h = NULL;
                struct curl_slist *l;

                if (asprintf(&h, "Authorization: %s", e->token) < 0)
                        return -ENOMEM;
                l = curl_slist_append(c->headers, h);
                if (!l)
                        return -ENOMEM;
                c->headers = l;
        }

        if (!c->easy) {
                c->easy = curl_easy_init();
                if (!c->easy)
                        return -ENOMEM;
        } else
                curl_easy_reset(c->easy);
        if (curl_easy_setopt(c->easy, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_PROXY, "") != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long) strlen(body)) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_USERAGENT, e->user_agent) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS,
                             (long) (e->connect_timeout_usec / USEC_PER_MSEC)) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS,
                             (long) (c->timeout_usec / USEC_PER_MSEC)) != CURLE_OK ||
            /* A campaign waits for minutes: notice a dead peer. */
            curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPIDLE, 5L) != CURLE_OK ||
            curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPINTVL, 2L) != CURLE_OK)
                return -EIO;
        if (e->ca_file && curl_easy_setopt(c->easy, CURLOPT_CAINFO, e->ca_file) != CURLE_OK)
                return -EIO;
        if (e->cert_file && (curl_easy_setopt(c->easy, CURLOPT_SSLCERT, e->cert_file) != CURLE_OK ||
                             curl_easy_setopt(c->easy, CURLOPT_SSLKEY, e->key_file) != CURLE_OK))
                return -EIO;
        return 0;
}

static int set_message(EtcdCall *c, const char *what) {
        char buf[ETCD_MESSAGE_MAX + 1];

        /* Cut server text: a message is for a log line. */
        (void) snprintf(buf, sizeof buf, "%s", what);
        free(c->message);
        if (asprintf(&c->message, "etcd %s: %s", c->etcd->endpoints[c->endpoint], buf) < 0)
                c->message = NULL;
        return 0;
}

static int errno_from_curl(CURLcode rc) {
        switch (rc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
                return -EPROTO;
        default:
                return -EIO;
        }
}

static int errno_from_grpc(int64_t code) {
        switch (code) {
        case GRPC_CANCELLED:
                return -ECANCELED;
        case GRPC_INVALID_ARGUMENT:
                return -EINVAL;
        case GRPC_DEADLINE_EXCEEDED:
                return -ETIMEDOUT;
        case GRPC_NOT_FOUND:
                return -ENOENT;
        case GRPC_PERMISSION_DENIED:
        case GRPC_UNAUTHENTICATED:
                return -EACCES;
        case GRPC_RESOURCE_EXHAUSTED:
                return -E2BIG;
        case GRPC_FAILED_PRECONDITION:
                return -EPERM;
        case GRPC_OUT_OF_RANGE:
                return -ERANGE;
        case GRPC_UNAVAILABLE:
                return -EAGAIN;
        default:
                return -EIO;
        }
}

static json_object *parse_answer(const char *s, size_t n) {
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new_ex(ETCD_JSON_DEPTH);
        json_object *o;

        if (!tok || !s || n > INT32_MAX)
                return NULL;
        o = json_tokener_parse_ex(tok, s, (int) n);
        if (!o || json_tokener_get_error(tok) != json_tokener_success ||
            json_tokener_get_parse_end(tok) != n || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* Moves to the next endpoint; false when every one was tried. */
static bool call_next_endpoint(EtcdCall *c) {
        c->tried++;
        if (c->tried >= c->etcd->n_endpoints)
                return false;
        c->endpoint = (c->endpoint + 1) % c->etcd->n_endpoints;
        return true;
}

/* An error answer ({"error", "message", "code"}): 1 to send again, 0
 * when done. */
static int call_finish_error(EtcdCall *c, json_object *o) {
        Etcd *e = c->etcd;
        int64_t code = 0;
        json_object *v;
        const char *msg = NULL;

        (void) etcd_json_int64(o, "code", &code);
        if (json_object_object_get_ex(o, "message", &v) && json_object_is_type(v, json_type_string))
                msg = json_object_get_string(v);
        else if (json_object_object_get_ex(o, "error", &v) && json_object_is_type(v, json_type_string))
                msg = json_object_get_string(v);
        c->result = errno_from_grpc(code);
        /* The election service says "none" with code 2 (Unknown). */
        if (msg && streq(msg, "election: no leader"))
                c->result = -ENOENT;
        (void) set_message(c, msg ? msg : "error without a message");
        if (c->authenticating) {
                c->authenticating = false;
                c->result = -EACCES;
                return 0;
        }
        if (code == GRPC_UNAUTHENTICATED && e->user && !c->auth_retried) {
                /* The token expired (simple tokens last 5 minutes idle). */
                c->auth_retried = true;
                e->token = erase_and_free_str(e->token);
                return 1;
        }
        if (code == GRPC_UNAVAILABLE)
                return call_next_endpoint(c) ? 1 : 0;
        return 0;
}

/* Returns 1 to send again (call_prepare first), 0 when done (c->result,
 * c->reply, c->message set). */
static int call_finish(EtcdCall *c, CURLcode rc) {
        Etcd *e = c->etcd;
        _cleanup_(json_object_putp) json_object *o = NULL;
        long status = 0;
        json_object *v;

        call_wipe_secret(c);
        if (c->answer.too_big) {
                c->result = -EFBIG;
                return set_message(c, "answer too large");
        }
        if (rc != CURLE_OK) {
                c->result = errno_from_curl(rc);
                (void) set_message(c, c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
                return call_next_endpoint(c) ? 1 : 0;
        }
        (void) curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        o = parse_answer(c->answer.data, c->answer.size);
        if (!o) {
                char what[128];

                /* Say what came instead (etcd answers some refusals in
                 * plain text), printable bytes only. */
                (void) snprintf(what, sizeof what, "HTTP %ld, not JSON: %.80s", status,
                                c->answer.data ? c->answer.data : "");
                for (char *p = what; *p; p++)
                        if ((unsigned char) *p < ' ' || (unsigned char) *p > '~')
                                *p = ' ';
                c->result = status == 404 ? -EOPNOTSUPP : -EBADMSG;
                (void) set_message(c, what);
                return call_next_endpoint(c) ? 1 : 0;
        }
        if (status == 200) {
                e->current = c->endpoint;
                if (c->authenticating) {
                        if (!json_object_object_get_ex(o, "token", &v) ||
                            !json_object_is_type(v, json_type_string) ||
                            json_object_get_string_len(v) == 0 ||
                            (size_t) json_object_get_string_len(v) > ETCD_TOKEN_MAX) {
                                c->result = -EBADMSG;
                                return set_message(c, "authenticate: no token in the answer");
                        }
                        erase_and_free_str(e->token);
                        e->token = strdup(json_object_get_string(v));
                        if (!e->token) {
                                c->result = -ENOMEM;
                                return 0;
                        }
                        c->authenticating = false;
                        return 1;
                }
                c->result = 0;
                c->reply = TAKE_PTR(o);
                return 0;
        }

        return call_finish_error(c, o);
}

static int call_new(Etcd *e, const char *path, json_object *body, uint64_t timeout_usec, EtcdCall **ret) {
        _cleanup_(call_freep) EtcdCall *c = NULL;
        const char *s;

        if (!path || !body)
                return -EINVAL;
        c = calloc(1, sizeof(EtcdCall));
        if (!c)
                return -ENOMEM;
        c->etcd = e;
        c->timeout_usec = timeout_usec;
        c->endpoint = e->current;
        c->path = strdup(path);
        s = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
        c->body = s ? strdup(s) : NULL;
        if (!c->path || !c->body)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

static void call_unlink(EtcdCall *c) {
        if (!c->async)
                return;
        LIST_REMOVE(c, link);
        c->etcd->n_calls--;
        c->async = false;
}

static void on_done(CurlGlue *g, CURL *easy, CURLcode rc, void *userdata) {
        EtcdCall *c = userdata;
        int r;

        r = call_finish(c, rc);
        if (r > 0) {
                r = call_prepare(c);
                if (r >= 0)
                        r = curl_glue_add(g, c->easy, on_done, c);
                if (r >= 0)
                        return;
                c->result = r;
        }
        call_unlink(c);
        if (c->fn)
                c->fn(c->etcd, c->result, c->reply, c->message, c->userdata);
        call_free(c);
}

int etcd_call(Etcd *e, const char *path, json_object *body, uint64_t timeout_usec,
              etcd_reply_fn fn, void *userdata, EtcdCall **ret_call) {
        _cleanup_(call_freep) EtcdCall *c = NULL;
        int r;

        if (!e || !e->glue)
                return -EINVAL;
        r = call_new(e, path, body, timeout_usec, &c);
        if (r < 0)
                return r;
        c->fn = fn;
        c->userdata = userdata;
        r = call_prepare(c);
        if (r < 0)
                return r;
        r = curl_glue_add(e->glue, c->easy, on_done, c);
        if (r < 0)
                return r;
        LIST_INSERT_HEAD(&e->calls, c, link);
        e->n_calls++;
        c->async = true;
        if (ret_call)
                *ret_call = c;
        TAKE_PTR(c);
        return 0;
}

void etcd_call_cancel(EtcdCall *c) {
        if (!c)
                return;
        if (c->easy)
                (void) curl_glue_remove(c->etcd->glue, c->easy);
        call_unlink(c);
        call_free(c);
}

int etcd_call_sync(Etcd *e, const char *path, json_object *body, uint64_t timeout_usec,
                   json_object **ret, char **reterr) {
        _cleanup_(call_freep) EtcdCall *c = NULL;
        int r;

        if (!e || !ret)
                return -EINVAL;
        r = call_new(e, path, body, timeout_usec, &c);
        if (r < 0)
                return r;
        do {
                r = call_prepare(c);
                if (r < 0)
                        return r;
        } while (call_finish(c, curl_easy_perform(c->easy)) > 0);
        if (c->result < 0) {
                if (reterr && c->message)
                        *reterr = TAKE_PTR(c->message);
                return c->result;
        }
        *ret = TAKE_PTR(c->reply);
        return 0;
}

/* ---- Common requests ---- */

static json_object *json_int64_string(int64_t x) {
        char num[32];

        (void) snprintf(num, sizeof num, "%" PRId64, x);
        return json_object_new_string(num);
}

int etcd_lease_grant(Etcd *e, int64_t ttl_sec, etcd_reply_fn fn, void *userdata, EtcdCall **ret_call) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();

        if (!b || json_object_object_add(b, "TTL", json_int64_string(ttl_sec)) < 0)
                return -ENOMEM;
        return etcd_call(e, "/v3/lease/grant", b, 2 * USEC_PER_SEC, fn, userdata, ret_call);
}

int etcd_lease_keepalive(Etcd *e, int64_t lease, uint64_t timeout_usec, etcd_reply_fn fn, void *userdata,
                         EtcdCall **ret_call) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();

        if (!b || json_object_object_add(b, "ID", json_int64_string(lease)) < 0)
                return -ENOMEM;
        return etcd_call(e, "/v3/lease/keepalive", b, timeout_usec, fn, userdata, ret_call);
}

int etcd_lease_revoke_sync(Etcd *e, int64_t lease, uint64_t timeout_usec, char **reterr) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();
        _cleanup_(json_object_putp) json_object *a = NULL;

        if (!b || json_object_object_add(b, "ID", json_int64_string(lease)) < 0)
                return -ENOMEM;
        return etcd_call_sync(e, "/v3/lease/revoke", b, timeout_usec, &a, reterr);
}

int etcd_campaign(Etcd *e, const char *name, int64_t lease, const char *value,
                  etcd_reply_fn fn, void *userdata, EtcdCall **ret_call) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();

        if (!b || json_object_object_add(b, "name", etcd_json_b64(name)) < 0 ||
            json_object_object_add(b, "lease", json_int64_string(lease)) < 0 ||
            json_object_object_add(b, "value", etcd_json_b64(value)) < 0)
                return -ENOMEM;
        return etcd_call(e, "/v3/election/campaign", b, 0, fn, userdata, ret_call);
}

int etcd_leader(Etcd *e, const char *name, etcd_reply_fn fn, void *userdata, EtcdCall **ret_call) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();

        if (!b || json_object_object_add(b, "name", etcd_json_b64(name)) < 0)
                return -ENOMEM;
        return etcd_call(e, "/v3/election/leader", b, 2 * USEC_PER_SEC, fn, userdata, ret_call);
}

int etcd_observe(Etcd *e, const char *name, etcd_reply_fn event_fn, etcd_reply_fn fn, void *userdata,
                 EtcdCall **ret_call) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();
        EtcdCall *c = NULL;
        int r;

        if (!event_fn)
                return -EINVAL;
        if (!b || json_object_object_add(b, "name", etcd_json_b64(name)) < 0)
                return -ENOMEM;
        r = etcd_call(e, "/v3/election/observe", b, 0, fn, userdata, &c);
        if (r < 0)
                return r;
        c->event_fn = event_fn;     /* before the loop runs: no byte came yet */
        if (ret_call)
                *ret_call = c;
        return 0;
}

int etcd_resign_sync(Etcd *e, const EtcdLeaderKey *l, uint64_t timeout_usec, char **reterr) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();
        _cleanup_(json_object_putp) json_object *a = NULL;

        if (!b || json_object_object_add(b, "leader", etcd_leader_key_to_json(l)) < 0)
                return -ENOMEM;
        return etcd_call_sync(e, "/v3/election/resign", b, timeout_usec, &a, reterr);
}

/* ---- Transactions and ranges ---- */

struct EtcdTxn {
        json_object *body;
        json_object *compare, *success, *failure;
        size_t n_ops;
};

EtcdTxn *etcd_txn_free(EtcdTxn *t) {
        if (!t)
                return NULL;
        json_object_put(t->body);
        free(t);
        return NULL;
}

EtcdTxn *etcd_txn_new(void) {
        _cleanup_(etcd_txn_freep) EtcdTxn *t = calloc(1, sizeof(EtcdTxn));

        if (!t)
                return NULL;
        t->body = json_object_new_object();
        t->compare = json_object_new_array();
        t->success = json_object_new_array();
        t->failure = json_object_new_array();
        if (!t->body || json_object_object_add(t->body, "compare", t->compare) < 0) {
                json_object_put(t->compare);
                json_object_put(t->success);
                json_object_put(t->failure);
                return NULL;
        }
        if (json_object_object_add(t->body, "success", t->success) < 0) {
                json_object_put(t->success);
                json_object_put(t->failure);
                return NULL;
        }
        if (json_object_object_add(t->body, "failure", t->failure) < 0) {
                json_object_put(t->failure);
                return NULL;
        }
        return TAKE_PTR(t);
}

static int txn_compare(EtcdTxn *t, const char *key, const char *target, const char *field, int64_t rev) {
        _cleanup_(json_object_putp) json_object *c = json_object_new_object();

        if (!c || json_object_object_add(c, "key", etcd_json_b64(key)) < 0 ||
            json_object_object_add(c, "result", json_object_new_string("EQUAL")) < 0 ||
            json_object_object_add(c, "target", json_object_new_string(target)) < 0 ||
            json_object_object_add(c, field, json_int64_string(rev)) < 0 ||
            json_object_array_add(t->compare, c) < 0)
                return -ENOMEM;
        TAKE_PTR(c);
        return 0;
}

int etcd_txn_compare_create(EtcdTxn *t, const char *key, int64_t rev) {
        return txn_compare(t, key, "CREATE", "create_revision", rev);
}

int etcd_txn_compare_mod(EtcdTxn *t, const char *key, int64_t rev) {
        return txn_compare(t, key, "MOD", "mod_revision", rev);
}

static int txn_op(json_object *list, const char *op, json_object *req) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_(json_object_putp) json_object *r = req;

        if (!o || !r || json_object_object_add(o, op, TAKE_PTR(r)) < 0 || json_object_array_add(list, o) < 0)
                return -ENOMEM;
        TAKE_PTR(o);
        return 0;
}

int etcd_txn_put(EtcdTxn *t, const char *key, const void *value, size_t size) {
        _cleanup_(json_object_putp) json_object *p = json_object_new_object();
        _cleanup_free_ char *v = etcd_b64_encode(value, size);
        int r;

        if (!p || !v || json_object_object_add(p, "key", etcd_json_b64(key)) < 0 ||
            json_object_object_add(p, "value", json_object_new_string(v)) < 0)
                return -ENOMEM;
        r = txn_op(t->success, "request_put", TAKE_PTR(p));
        if (r >= 0)
                t->n_ops++;
        return r;
}

int etcd_txn_delete(EtcdTxn *t, const char *key) {
        _cleanup_(json_object_putp) json_object *p = json_object_new_object();
        int r;

        if (!p || json_object_object_add(p, "key", etcd_json_b64(key)) < 0)
                return -ENOMEM;
        r = txn_op(t->success, "request_delete_range", TAKE_PTR(p));
        if (r >= 0)
                t->n_ops++;
        return r;
}

static int txn_range(json_object *list, const char *key) {
        _cleanup_(json_object_putp) json_object *p = json_object_new_object();

        if (!p || json_object_object_add(p, "key", etcd_json_b64(key)) < 0)
                return -ENOMEM;
        return txn_op(list, "request_range", TAKE_PTR(p));
}

int etcd_txn_range(EtcdTxn *t, const char *key) {
        int r = txn_range(t->success, key);

        if (r >= 0)
                t->n_ops++;
        return r;
}

int etcd_txn_failure_range(EtcdTxn *t, const char *key) {
        return txn_range(t->failure, key);
}

size_t etcd_txn_n_ops(const EtcdTxn *t) {
        return t->n_ops;
}

json_object *etcd_txn_body(EtcdTxn *t) {
        return t->body;
}

int etcd_txn_sync(Etcd *e, EtcdTxn *t, uint64_t timeout_usec, json_object **ret_answer, char **reterr) {
        _cleanup_(json_object_putp) json_object *a = NULL;
        bool ok;
        int r;

        if (t->n_ops > ETCD_MAX_TXN_OPS)
                return -E2BIG;
        r = etcd_call_sync(e, "/v3/kv/txn", t->body, timeout_usec, &a, reterr);
        if (r < 0)
                return r;
        ok = etcd_json_bool(a, "succeeded");
        if (ret_answer)
                *ret_answer = TAKE_PTR(a);
        return ok ? 1 : 0;
}

int etcd_range_sync(Etcd *e, const char *key, const char *range_end, int64_t limit,
                    uint64_t timeout_usec, json_object **ret, char **reterr) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();

        if (!b || json_object_object_add(b, "key", etcd_json_b64(key)) < 0)
                return -ENOMEM;
        if (!isempty(range_end) && json_object_object_add(b, "range_end", etcd_json_b64(range_end)) < 0)
                return -ENOMEM;
        if (limit > 0 && json_object_object_add(b, "limit", json_int64_string(limit)) < 0)
                return -ENOMEM;
        return etcd_call_sync(e, "/v3/kv/range", b, timeout_usec, ret, reterr);
}
