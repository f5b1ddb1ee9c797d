/* state.c: the ownership ledger in the state directory; see state.h.
 *
 * state.json, format 1:
 *   {"version": 1,
 *    "binding": {"account_id": "...", "api_url": "..."},
 *    "resources": [{"kind": "Worker", "name": "api", "cf_id": ..., "cf_name": ...,
 *                   "ownership": "created", "digest": ..., "deletion_policy": "retain",
 *                   "drift_policy": "repair", "own_writes": [...], "migration_tags": [...],
 *                   "run_id": ..., "created_usec": N, "updated_usec": N}, ...],
 *    "intents": [{"kind": ..., "name": ..., "cf_name": ..., "run_id": ..., "time_usec": N}],
 *    "secrets": {"worker:api": {"API_KEY": "<hex HMAC-SHA256>"}},
 *    "meta": {"key": "value"}}
 */
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "state.h"
#include "util.h"

#define STATE_FILE "state.json"
#define STATE_LOCK_FILE "lock"
#define STATE_KEY_FILE "hmac.key"
#define STATE_KEY_SIZE 32
#define STATE_MAX_DEPTH 32

struct State {
        char *dir;
        char *path;
        char *key_path;
        int lock_fd;
        int dir_fd;                 /* the state directory, flock()ed too: deleting "lock" frees nothing */
        bool locked;
        char *key_error;            /* why hmac.key is unusable, naming it */

        char *account_id;
        char *api_url;

        StateResource **resources;  /* sorted by kind, then name */
        size_t n_resources;
        StateIntent **intents;
        size_t n_intents;
        json_object *secrets;       /* {scope: {key: hex}} */
        json_object *meta;          /* {key: string} */

        uint8_t key[STATE_KEY_SIZE];
        bool have_key;
};

static const char *const ownership_table[_OWNERSHIP_MAX] = {
        [OWNERSHIP_CREATED] = "created",
        [OWNERSHIP_ADOPTED] = "adopted",
};

const char *ownership_to_string(Ownership o) {
        if (o < 0 || o >= _OWNERSHIP_MAX)
                return NULL;
        return ownership_table[o];
}

Ownership ownership_from_string(const char *s) {
        if (!s)
                return _OWNERSHIP_INVALID;
        for (int i = 0; i < _OWNERSHIP_MAX; i++)
                if (streq(s, ownership_table[i]))
                        return (Ownership) i;
        return _OWNERSHIP_INVALID;
}

/* ---- Records ---- */

void state_resource_done(StateResource *r) {
        if (!r)
                return;
        free(r->name);
        free(r->cf_id);
        free(r->cf_name);
        free(r->digest);
        strv_free(r->own_writes);
        strv_free(r->migration_tags);
        free(r->run_id);
        json_object_put(r->ledger);
        *r = (StateResource) {};
}

static void resource_free(StateResource *r) {
        state_resource_done(r);
        free(r);
}

static void intent_free(StateIntent *i) {
        if (!i)
                return;
        free(i->name);
        free(i->cf_name);
        free(i->run_id);
        free(i);
}

static int strdup_opt(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int strv_copy_opt(char * const *l, char ***ret) {
        if (!l) {
                *ret = NULL;
                return 0;
        }
        *ret = strv_copy(l);
        return *ret ? 0 : -ENOMEM;
}

/* Deep copy of src into dst (dst zeroed first). */
static int resource_copy(StateResource *dst, const StateResource *src) {
        *dst = (StateResource) {
                .kind = src->kind,
                .ownership = src->ownership,
                .deletion = src->deletion,
                .drift = src->drift,
                .created_usec = src->created_usec,
                .updated_usec = src->updated_usec,
        };
        if (src->ledger && json_object_deep_copy(src->ledger, &dst->ledger, NULL) < 0)
                return -ENOMEM;
        if (strdup_opt(src->name, &dst->name) < 0 ||
            strdup_opt(src->cf_id, &dst->cf_id) < 0 ||
            strdup_opt(src->cf_name, &dst->cf_name) < 0 ||
            strdup_opt(src->digest, &dst->digest) < 0 ||
            strdup_opt(src->run_id, &dst->run_id) < 0 ||
            strv_copy_opt(src->own_writes, &dst->own_writes) < 0 ||
            strv_copy_opt(src->migration_tags, &dst->migration_tags) < 0) {
                state_resource_done(dst);
                return -ENOMEM;
        }
        /* Keep only the newest markers. */
        size_t n = strv_length(dst->own_writes);
        if (n > STATE_MAX_OWN_WRITES) {
                size_t drop = n - STATE_MAX_OWN_WRITES;

                for (size_t i = 0; i < drop; i++)
                        free(dst->own_writes[i]);
                memmove(dst->own_writes, dst->own_writes + drop,
                        sizeof(char *) * (STATE_MAX_OWN_WRITES + 1));
        }
        return 0;
}

static int resource_cmp(const void *a, const void *b) {
        const StateResource *x = *(const StateResource * const *) a;
        const StateResource *y = *(const StateResource * const *) b;

        if (x->kind != y->kind)
                return x->kind < y->kind ? -1 : 1;
        return strcmp(x->name, y->name);
}

static StateResource *find_resource(const State *s, ResourceKind kind, const char *name,
                                    size_t *ret_idx) {
        if (!s || !name)
                return NULL;
        for (size_t i = 0; i < s->n_resources; i++)
                if (s->resources[i]->kind == kind && streq(s->resources[i]->name, name)) {
                        if (ret_idx)
                                *ret_idx = i;
                        return s->resources[i];
                }
        return NULL;
}

/* ---- Lifecycle ---- */

State *state_free(State *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_resources; i++)
                resource_free(s->resources[i]);
        free(s->resources);
        for (size_t i = 0; i < s->n_intents; i++)
                intent_free(s->intents[i]);
        free(s->intents);
        if (s->secrets)
                json_object_put(s->secrets);
        if (s->meta)
                json_object_put(s->meta);
        explicit_bzero(s->key, sizeof s->key);
        if (s->lock_fd >= 0)
                (void) close(s->lock_fd);     /* releases the flock */
        if (s->dir_fd >= 0)
                (void) close(s->dir_fd);
        free(s->key_error);
        free(s->dir);
        free(s->path);
        free(s->key_path);
        free(s->account_id);
        free(s->api_url);
        free(s);
        return NULL;
}

static int set_error(char **reterr, const char *fmt, ...) _printf_(2, 3);
static int set_error(char **reterr, const char *fmt, ...) {
        va_list ap;

        if (!reterr)
                return 0;
        va_start(ap, fmt);
        if (vasprintf(reterr, fmt, ap) < 0)
                *reterr = NULL;
        va_end(ap);
        return 0;
}

/* Typed field access for the loader: every shape error is -EBADMSG with
 * a message naming the file and the field. */
typedef struct Loader {
        const char *path;
        char **reterr;
} Loader;

static int load_fail(Loader *l, const char *fmt, ...) _printf_(2, 3);
static int load_fail(Loader *l, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        (void) set_error(l->reterr, "%s: %s", l->path, what ? what : "invalid");
        return -EBADMSG;
}

/* An optional string field: absent or null gives NULL. */
static int get_str(Loader *l, json_object *o, const char *key, const char *where, char **ret) {
        json_object *v;

        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_string))
                return load_fail(l, "%s.%s: expected a string", where, key);
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_u64(Loader *l, json_object *o, const char *key, const char *where, uint64_t *ret) {
        json_object *v;
        int64_t n;

        *ret = 0;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_int))
                return load_fail(l, "%s.%s: expected an integer", where, key);
        n = json_object_get_int64(v);
        if (n < 0)
                return load_fail(l, "%s.%s: negative", where, key);
        *ret = (uint64_t) n;
        return 0;
}

static int get_strv(Loader *l, json_object *o, const char *key, const char *where, char ***ret) {
        _cleanup_strv_free_ char **v = NULL;
        json_object *a;
        size_t n;
        int r;

        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &a) || !a)
                return 0;
        if (!json_object_is_type(a, json_type_array))
                return load_fail(l, "%s.%s: expected an array", where, key);
        n = json_object_array_length(a);
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(a, i);

                if (!e || !json_object_is_type(e, json_type_string))
                        return load_fail(l, "%s.%s[%zu]: expected a string", where, key, i);
                r = strv_extend(&v, json_object_get_string(e));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

static int get_kind(Loader *l, json_object *o, const char *where, ResourceKind *ret) {
        _cleanup_free_ char *k = NULL;
        int r;

        r = get_str(l, o, "kind", where, &k);
        if (r < 0)
                return r;
        if (!k)
                return load_fail(l, "%s: missing kind", where);
        *ret = resource_kind_from_string(k);
        if (*ret < 0)
                return load_fail(l, "%s: unknown kind '%s'", where, k);
        return 0;
}

static int load_resource(Loader *l, json_object *o, const char *where, StateResource **ret) {
        _cleanup_free_ char *own = NULL, *del = NULL, *drift = NULL;
        json_object *x;
        StateResource *r;
        int k;

        if (!json_object_is_type(o, json_type_object))
                return load_fail(l, "%s: expected an object", where);
        r = calloc(1, sizeof(StateResource));
        if (!r)
                return -ENOMEM;
        if ((k = get_kind(l, o, where, &r->kind)) < 0 ||
            (k = get_str(l, o, "name", where, &r->name)) < 0 ||
            (k = get_str(l, o, "cf_id", where, &r->cf_id)) < 0 ||
            (k = get_str(l, o, "cf_name", where, &r->cf_name)) < 0 ||
            (k = get_str(l, o, "ownership", where, &own)) < 0 ||
            (k = get_str(l, o, "digest", where, &r->digest)) < 0 ||
            (k = get_str(l, o, "deletion_policy", where, &del)) < 0 ||
            (k = get_str(l, o, "drift_policy", where, &drift)) < 0 ||
            (k = get_strv(l, o, "own_writes", where, &r->own_writes)) < 0 ||
            (k = get_strv(l, o, "migration_tags", where, &r->migration_tags)) < 0 ||
            (k = get_str(l, o, "run_id", where, &r->run_id)) < 0 ||
            (k = get_u64(l, o, "created_usec", where, &r->created_usec)) < 0 ||
            (k = get_u64(l, o, "updated_usec", where, &r->updated_usec)) < 0)
                goto fail;
        if (json_object_object_get_ex(o, "ledger", &x) && x) {
                if (!json_object_is_type(x, json_type_object)) {
                        k = load_fail(l, "%s.ledger: expected an object", where);
                        goto fail;
                }
                r->ledger = json_object_get(x);
        }
        if (isempty(r->name)) {
                k = load_fail(l, "%s: missing name", where);
                goto fail;
        }
        r->ownership = ownership_from_string(own);
        if (r->ownership < 0) {
                k = load_fail(l, "%s: invalid ownership '%s'", where, strna(own));
                goto fail;
        }
        r->deletion = del ? deletion_policy_from_string(del) : DELETION_RETAIN;
        if (r->deletion < 0) {
                k = load_fail(l, "%s: invalid deletion_policy '%s'", where, del);
                goto fail;
        }
        r->drift = drift ? drift_policy_from_string(drift) : DRIFT_REPAIR;
        if (r->drift < 0) {
                k = load_fail(l, "%s: invalid drift_policy '%s'", where, drift);
                goto fail;
        }
        *ret = r;
        return 0;
fail:
        resource_free(r);
        return k;
}

static int load_intent(Loader *l, json_object *o, const char *where, StateIntent **ret) {
        StateIntent *i;
        int k;

        if (!json_object_is_type(o, json_type_object))
                return load_fail(l, "%s: expected an object", where);
        i = calloc(1, sizeof(StateIntent));
        if (!i)
                return -ENOMEM;
        if ((k = get_kind(l, o, where, &i->kind)) < 0 ||
            (k = get_str(l, o, "name", where, &i->name)) < 0 ||
            (k = get_str(l, o, "cf_name", where, &i->cf_name)) < 0 ||
            (k = get_str(l, o, "run_id", where, &i->run_id)) < 0 ||
            (k = get_u64(l, o, "time_usec", where, &i->time_usec)) < 0)
                goto fail;
        if (isempty(i->cf_name)) {
                k = load_fail(l, "%s: missing cf_name", where);
                goto fail;
        }
        *ret = i;
        return 0;
fail:
        intent_free(i);
        return k;
}

/* A {string: {string: string}} map (secrets) or {string: string} (meta). */
static int check_map(Loader *l, json_object *o, const char *what, bool nested) {
        if (!json_object_is_type(o, json_type_object))
                return load_fail(l, "%s: expected an object", what);
        json_object_object_foreach(o, k, v) {
                if (nested) {
                        if (!v || !json_object_is_type(v, json_type_object))
                                return load_fail(l, "%s.%s: expected an object", what, k);
                        json_object_object_foreach(v, k2, v2)
                                if (!v2 || !json_object_is_type(v2, json_type_string) ||
                                    strlen(json_object_get_string(v2)) != 64)
                                        return load_fail(l, "%s.%s.%s: expected a fingerprint", what, k, k2);
                } else if (!v || !json_object_is_type(v, json_type_string))
                        return load_fail(l, "%s.%s: expected a string", what, k);
        }
        return 0;
}

/* Removes what a kill -9 mid-save left: "state.json.tmp.PID" and
 * "hmac.key.tmp.PID" (write_file_atomic's temporaries). Only with the
 * lock held: no one else is writing them. */
static void remove_stale_temporaries(int dir_fd) {
        _cleanup_close_ int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        DIR *d;

        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d)
                return;
        fd = -EBADF;  /* owned by d now */
        for (struct dirent *de; (de = readdir(d));)
                if ((startswith(de->d_name, STATE_FILE ".tmp.") || startswith(de->d_name, STATE_KEY_FILE ".tmp.")) &&
                    (de->d_type == DT_REG || de->d_type == DT_UNKNOWN))
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
}

static StateIntent *find_intent(const State *s, ResourceKind kind, const char *cf_name, size_t *ret_idx);

/* "TYPE/A" or "TYPE/A/B": a record's key in format version 2. */
static char *record_key(const char *type, const char *a, const char *b) {
        char *k;

        if (asprintf(&k, "%s/%s%s%s", type, a, b ? "/" : "", b ?: "") < 0)
                return NULL;
        return k;
}

/* Version 1 kept the engine's ledger fields of each resource as a JSON
 * string in meta ("engine.x.KIND.NAME"); version 2 keeps them in the
 * resource's record. */
#define V1_LEDGER_META_PREFIX "engine.x."

static int lift_v1(Loader *l, State *s) {
        for (size_t i = 0; i < s->n_resources; i++) {
                StateResource *res = s->resources[i];
                _cleanup_free_ char *key = NULL;
                json_object *v, *x;

                if (asprintf(&key, V1_LEDGER_META_PREFIX "%s.%s", resource_kind_to_string(res->kind), res->name) < 0)
                        return -ENOMEM;
                if (!s->meta || !json_object_object_get_ex(s->meta, key, &v))
                        continue;
                x = json_tokener_parse(json_object_get_string(v));
                if (!x || !json_object_is_type(x, json_type_object)) {
                        json_object_put(x);
                        return load_fail(l, "meta.%s: expected a JSON object in a string", key);
                }
                json_object_put(res->ledger);
                res->ledger = x;
                json_object_object_del(s->meta, key);
        }
        /* Ledger fields of no resource (a v1 state never wrote them
         * without one): dropped, as version 1 would have ignored them. */
        if (s->meta) {
                bool again = true;

                while (again) {
                        again = false;
                        json_object_object_foreach(s->meta, k, v) {
                                (void) v;
                                if (startswith(k, V1_LEDGER_META_PREFIX)) {
                                        json_object_object_del(s->meta, k);
                                        again = true;
                                        break;
                                }
                        }
                }
        }
        return 0;
}

/* Version 2: { "records": { "TYPE/...": {...} } } (see state.h). */
static int load_records(Loader *l, State *s, json_object *root) {
        json_object *records;
        size_t n;
        int r;

        if (!json_object_object_get_ex(root, "records", &records) || !records)
                return 0;
        if (!json_object_is_type(records, json_type_object))
                return load_fail(l, "records: expected an object");
        n = (size_t) json_object_object_length(records);
        s->resources = calloc(n ? n : 1, sizeof(StateResource *));
        s->intents = calloc(n ? n : 1, sizeof(StateIntent *));
        if (!s->resources || !s->intents)
                return -ENOMEM;
        json_object_object_foreach(records, key, v) {
                _cleanup_free_ char *where = NULL, *want = NULL;
                const char *p;

                if (asprintf(&where, "records.%s", key) < 0)
                        return -ENOMEM;
                if ((p = startswith(key, "resource/") ? key + 9 : NULL)) {
                        StateResource *res = NULL;

                        r = load_resource(l, v, where, &res);
                        if (r < 0)
                                return r;
                        want = record_key("resource", resource_kind_to_string(res->kind), res->name);
                        if (!want || !streq(want, key)) {
                                resource_free(res);
                                return want ? load_fail(l, "%s: key does not name its kind and name", where) : -ENOMEM;
                        }
                        s->resources[s->n_resources++] = res;
                } else if ((p = startswith(key, "intent/") ? key + 7 : NULL)) {
                        StateIntent *t = NULL;

                        r = load_intent(l, v, where, &t);
                        if (r < 0)
                                return r;
                        want = record_key("intent", resource_kind_to_string(t->kind), t->cf_name);
                        if (!want || !streq(want, key)) {
                                intent_free(t);
                                return want ? load_fail(l, "%s: key does not name its kind and cf_name", where) : -ENOMEM;
                        }
                        s->intents[s->n_intents++] = t;
                } else if ((p = startswith(key, "secrets/") ? key + 8 : NULL)) {
                        _cleanup_(json_object_putp) json_object *m = json_object_new_object();

                        if (!m || json_object_object_add(m, p, json_object_get(v)) < 0)
                                return -ENOMEM;
                        r = check_map(l, m, "records.secrets", true);
                        if (r < 0)
                                return r;
                        if (json_object_object_add(s->secrets, p, json_object_get(v)) < 0)
                                return -ENOMEM;
                } else if ((p = startswith(key, "meta/") ? key + 5 : NULL)) {
                        json_object *value;

                        if (!json_object_is_type(v, json_type_object) ||
                            !json_object_object_get_ex(v, "value", &value) ||
                            !json_object_is_type(value, json_type_string))
                                return load_fail(l, "%s: expected an object with a string \"value\"", where);
                        if (json_object_object_add(s->meta, p, json_object_get(value)) < 0)
                                return -ENOMEM;
                } else
                        return load_fail(l, "%s: unknown record type", where);
        }
        qsort(s->resources, s->n_resources, sizeof(StateResource *), resource_cmp);
        return 0;
}

static int state_load(State *s, char **reterr) {
        _cleanup_free_ char *data = NULL;
        Loader l = { .path = s->path, .reterr = reterr };
        json_object *root = NULL, *v;
        json_tokener *tok;
        size_t size = 0, end;
        int r;

        r = read_full_file(s->path, STATE_MAX_SIZE, &data, &size);
        if (r == -ENOENT)
                return 0;       /* fresh */
        if (r == -EFBIG) {
                (void) set_error(reterr, "%s: larger than %u bytes, refusing to load", s->path,
                                 STATE_MAX_SIZE);
                return r;
        }
        if (r < 0) {
                (void) set_error(reterr, "%s: cannot read: %s", s->path, strerror(-r));
                return r;
        }

        tok = json_tokener_new_ex(STATE_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        root = json_tokener_parse_ex(tok, data, (int) size);
        if (!root || json_tokener_get_error(tok) != json_tokener_success) {
                enum json_tokener_error e = json_tokener_get_error(tok);

                (void) set_error(reterr, "%s: not valid JSON (%s at offset %zu); refusing to treat it as empty",
                                 s->path,
                                 e == json_tokener_continue ? "truncated" : json_tokener_error_desc(e),
                                 json_tokener_get_parse_end(tok));
                json_tokener_free(tok);
                json_object_put(root);
                return -EBADMSG;
        }
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        for (; end < size; end++)
                if (!strchr(" \t\r\n", data[end])) {
                        json_object_put(root);
                        return load_fail(&l, "trailing data at offset %zu", end);
                }

        r = 0;
        if (!json_object_is_type(root, json_type_object)) {
                r = load_fail(&l, "expected a JSON object");
                goto out;
        }
        if (!json_object_object_get_ex(root, "version", &v) || !json_object_is_type(v, json_type_int)) {
                r = load_fail(&l, "missing format version");
                goto out;
        }
        if (json_object_get_int64(v) < 1) {
                r = load_fail(&l, "invalid format version %" PRId64, json_object_get_int64(v));
                goto out;
        }
        if (json_object_get_int64(v) > STATE_FORMAT_VERSION) {
                (void) set_error(reterr, "%s: format version %" PRId64 " is newer than this binderyd supports (%d)",
                                 s->path, json_object_get_int64(v), STATE_FORMAT_VERSION);
                r = -EPROTONOSUPPORT;
                goto out;
        }

        if (json_object_object_get_ex(root, "binding", &v) && v) {
                if (!json_object_is_type(v, json_type_object)) {
                        r = load_fail(&l, "binding: expected an object");
                        goto out;
                }
                if ((r = get_str(&l, v, "account_id", "binding", &s->account_id)) < 0 ||
                    (r = get_str(&l, v, "api_url", "binding", &s->api_url)) < 0)
                        goto out;
                if (!s->account_id || !s->api_url) {
                        r = load_fail(&l, "binding: needs account_id and api_url");
                        goto out;
                }
        }
        if (json_object_get_int64(v = json_object_object_get(root, "version")) >= 2) {
                r = load_records(&l, s, root);
                goto out;
        }

        if (json_object_object_get_ex(root, "resources", &v) && v) {
                size_t n;

                if (!json_object_is_type(v, json_type_array)) {
                        r = load_fail(&l, "resources: expected an array");
                        goto out;
                }
                n = json_object_array_length(v);
                s->resources = calloc(n ? n : 1, sizeof(StateResource *));
                if (!s->resources) {
                        r = -ENOMEM;
                        goto out;
                }
                for (size_t i = 0; i < n; i++) {
                        char where[32];
                        StateResource *res = NULL;

                        snprintf(where, sizeof where, "resources[%zu]", i);
                        r = load_resource(&l, json_object_array_get_idx(v, i), where, &res);
                        if (r < 0)
                                goto out;
                        if (find_resource(s, res->kind, res->name, NULL)) {
                                r = load_fail(&l, "%s: duplicate %s '%s'", where,
                                              resource_kind_to_string(res->kind), res->name);
                                resource_free(res);
                                goto out;
                        }
                        s->resources[s->n_resources++] = res;
                }
                qsort(s->resources, s->n_resources, sizeof(StateResource *), resource_cmp);
        }

        if (json_object_object_get_ex(root, "intents", &v) && v) {
                size_t n;

                if (!json_object_is_type(v, json_type_array)) {
                        r = load_fail(&l, "intents: expected an array");
                        goto out;
                }
                n = json_object_array_length(v);
                s->intents = calloc(n ? n : 1, sizeof(StateIntent *));
                if (!s->intents) {
                        r = -ENOMEM;
                        goto out;
                }
                for (size_t i = 0; i < n; i++) {
                        char where[32];

                        snprintf(where, sizeof where, "intents[%zu]", i);
                        r = load_intent(&l, json_object_array_get_idx(v, i), where,
                                        &s->intents[s->n_intents]);
                        if (r < 0)
                                goto out;
                        s->n_intents++;
                        if (find_intent(s, s->intents[s->n_intents - 1]->kind,
                                        s->intents[s->n_intents - 1]->cf_name, NULL) != s->intents[s->n_intents - 1]) {
                                r = load_fail(&l, "%s: duplicate intent", where);
                                goto out;
                        }
                }
        }

        if (json_object_object_get_ex(root, "secrets", &v) && v) {
                r = check_map(&l, v, "secrets", true);
                if (r < 0)
                        goto out;
                json_object_put(s->secrets);
                s->secrets = json_object_get(v);
        }
        if (json_object_object_get_ex(root, "meta", &v) && v) {
                r = check_map(&l, v, "meta", false);
                if (r < 0)
                        goto out;
                json_object_put(s->meta);
                s->meta = json_object_get(v);
        }
        r = lift_v1(&l, s);
out:
        json_object_put(root);
        return r;
}

int state_open(const char *dir, bool lock, State **ret, char **reterr_message) {
        _cleanup_(state_freep) State *s = NULL;
        int r;

        if (reterr_message)
                *reterr_message = NULL;
        if (isempty(dir) || !ret)
                return -EINVAL;

        s = calloc(1, sizeof(State));
        if (!s)
                return -ENOMEM;
        s->lock_fd = -EBADF;
        s->dir_fd = -EBADF;
        s->dir = strdup(dir);
        s->path = path_join(dir, STATE_FILE);
        s->key_path = path_join(dir, STATE_KEY_FILE);
        s->secrets = json_object_new_object();
        s->meta = json_object_new_object();
        if (!s->dir || !s->path || !s->key_path || !s->secrets || !s->meta)
                return -ENOMEM;

        if (lock) {
                _cleanup_free_ char *lock_path = path_join(dir, STATE_LOCK_FILE);

                if (!lock_path)
                        return -ENOMEM;
                if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                        r = -errno;
                        (void) set_error(reterr_message, "%s: cannot create state directory: %s",
                                         dir, strerror(-r));
                        return r;
                }
                s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
                if (s->lock_fd < 0) {
                        r = -errno;
                        (void) set_error(reterr_message, "%s: cannot open: %s", lock_path, strerror(-r));
                        return r;
                }
                if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                        (void) set_error(reterr_message, "%s: %s", lock_path,
                                         r == -EBUSY ? "held by another process" : strerror(-r));
                        return r;
                }
                /* The directory itself too: a "lock" file can be deleted
                 * under a running daemon (and a new one created and locked
                 * by a second), the directory cannot while it holds state. */
                s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);  /* may be a symlink (StateDirectory= with DynamicUser=) */
                if (s->dir_fd < 0) {
                        r = -errno;
                        (void) set_error(reterr_message, "%s: cannot open: %s", dir, strerror(-r));
                        return r;
                }
                if (flock(s->dir_fd, LOCK_EX | LOCK_NB) < 0) {
                        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                        (void) set_error(reterr_message, "%s: %s", dir,
                                         r == -EBUSY ? "locked by another process" : strerror(-r));
                        return r;
                }
                s->locked = true;
                remove_stale_temporaries(s->dir_fd);
        }

        r = state_load(s, reterr_message);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

const char *state_key_error(const State *s) {
        return s ? s->key_error : NULL;
}

bool state_is_locked(const State *s) {
        return s && s->locked;
}

const char *state_path(const State *s) {
        return s ? s->path : NULL;
}

/* ---- Binding ---- */

static bool url_equal(const char *a, const char *b) {
        size_t na = strlen(a), nb = strlen(b);

        while (na > 0 && a[na - 1] == '/')
                na--;
        while (nb > 0 && b[nb - 1] == '/')
                nb--;
        return na == nb && memcmp(a, b, na) == 0;
}

int state_bind(State *s, const char *account_id, const char *api_url) {
        char *a, *u;

        if (!s || isempty(account_id) || isempty(api_url))
                return -EINVAL;
        if (s->account_id || s->api_url) {
                if (!streq_ptr(s->account_id, account_id) || !s->api_url ||
                    !url_equal(s->api_url, api_url))
                        return -EXDEV;
                return 0;
        }
        a = strdup(account_id);
        u = strdup(api_url);
        if (!a || !u) {
                free(a);
                free(u);
                return -ENOMEM;
        }
        s->account_id = a;
        s->api_url = u;
        return 0;
}

const char *state_account_id(const State *s) {
        return s ? s->account_id : NULL;
}

const char *state_api_url(const State *s) {
        return s ? s->api_url : NULL;
}

/* ---- Serialisation ---- */

static int add_str(json_object *o, const char *key, const char *v) {
        json_object *j;

        if (!v)
                return 0;
        j = json_object_new_string(v);
        if (!j || json_object_object_add(o, key, j) < 0) {
                json_object_put(j);
                return -ENOMEM;
        }
        return 0;
}

static int add_u64(json_object *o, const char *key, uint64_t v) {
        json_object *j = json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t) v);

        if (!j || json_object_object_add(o, key, j) < 0) {
                json_object_put(j);
                return -ENOMEM;
        }
        return 0;
}

static int add_strv(json_object *o, const char *key, char * const *l) {
        json_object *a;

        if (!l)
                return 0;
        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        for (char * const *p = l; *p; p++) {
                json_object *j = json_object_new_string(*p);

                if (!j || json_object_array_add(a, j) < 0) {
                        json_object_put(j);
                        json_object_put(a);
                        return -ENOMEM;
                }
        }
        if (json_object_object_add(o, key, a) < 0) {
                json_object_put(a);
                return -ENOMEM;
        }
        return 0;
}

static json_object *resource_to_json(const StateResource *r) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (add_str(o, "kind", resource_kind_to_string(r->kind)) < 0 ||
            add_str(o, "name", r->name) < 0 ||
            add_str(o, "cf_id", r->cf_id) < 0 ||
            add_str(o, "cf_name", r->cf_name) < 0 ||
            add_str(o, "ownership", ownership_to_string(r->ownership)) < 0 ||
            add_str(o, "digest", r->digest) < 0 ||
            add_str(o, "deletion_policy", deletion_policy_to_string(r->deletion)) < 0 ||
            add_str(o, "drift_policy", drift_policy_to_string(r->drift)) < 0 ||
            add_strv(o, "own_writes", r->own_writes) < 0 ||
            add_strv(o, "migration_tags", r->migration_tags) < 0 ||
            add_str(o, "run_id", r->run_id) < 0 ||
            add_u64(o, "created_usec", r->created_usec) < 0 ||
            add_u64(o, "updated_usec", r->updated_usec) < 0 ||
            (r->ledger && json_object_object_add(o, "ledger", json_object_get(r->ledger)) < 0)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static json_object *intent_to_json(const StateIntent *i) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (add_str(o, "kind", resource_kind_to_string(i->kind)) < 0 ||
            add_str(o, "name", i->name) < 0 ||
            add_str(o, "cf_name", i->cf_name) < 0 ||
            add_str(o, "run_id", i->run_id) < 0 ||
            add_u64(o, "time_usec", i->time_usec) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* Adds records[key] = o (taking o; NULL is -ENOMEM). */
static int add_record(json_object *records, char *key, json_object *o) {
        _cleanup_free_ char *k = key;

        if (!k || !o || json_object_object_add(records, k, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

json_object *state_to_json(const State *s) {
        json_object *root, *records, *b;

        if (!s)
                return NULL;
        root = json_object_new_object();
        if (!root)
                return NULL;
        if (add_u64(root, "version", STATE_FORMAT_VERSION) < 0)
                goto fail;
        if (s->account_id) {
                b = json_object_new_object();
                if (!b || json_object_object_add(root, "binding", b) < 0) {
                        json_object_put(b);
                        goto fail;
                }
                if (add_str(b, "account_id", s->account_id) < 0 || add_str(b, "api_url", s->api_url) < 0)
                        goto fail;
        }
        records = json_object_new_object();
        if (!records || json_object_object_add(root, "records", records) < 0) {
                json_object_put(records);
                goto fail;
        }
        for (size_t i = 0; i < s->n_resources; i++) {
                const StateResource *r = s->resources[i];

                if (add_record(records, record_key("resource", resource_kind_to_string(r->kind), r->name),
                               resource_to_json(r)) < 0)
                        goto fail;
        }
        for (size_t i = 0; i < s->n_intents; i++) {
                const StateIntent *t = s->intents[i];

                if (add_record(records, record_key("intent", resource_kind_to_string(t->kind), t->cf_name),
                               intent_to_json(t)) < 0)
                        goto fail;
        }
        if (s->secrets) {
                json_object_object_foreach(s->secrets, scope, keys)
                        if (json_object_object_length(keys) > 0 &&
                            add_record(records, record_key("secrets", scope, NULL), json_object_get(keys)) < 0)
                                goto fail;
        }
        if (s->meta) {
                json_object_object_foreach(s->meta, key, value) {
                        json_object *o = json_object_new_object();

                        if (!o || json_object_object_add(o, "value", json_object_get(value)) < 0) {
                                json_object_put(o);
                                goto fail;
                        }
                        if (add_record(records, record_key("meta", key, NULL), o) < 0)
                                goto fail;
                }
        }
        return root;
fail:
        json_object_put(root);
        return NULL;
}

int state_save(State *s) {
        json_object *root;
        const char *text;
        int r;

        if (!s)
                return -EINVAL;
        if (!s->locked)
                return -EROFS;
        if (!s->account_id)
                return -EDESTADDRREQ;
        root = state_to_json(s);
        if (!root)
                return -ENOMEM;
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text) {
                json_object_put(root);
                return -ENOMEM;
        }
        r = write_file_atomic(s->path, text, strlen(text), 0600);
        json_object_put(root);
        return r;
}

/* ---- Resources ---- */

const StateResource *state_get(const State *s, ResourceKind kind, const char *name) {
        return find_resource(s, kind, name, NULL);
}

const StateResource *state_find_cf(const State *s, ResourceKind kind, const char *cf_id,
                                   const char *cf_name) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_resources; i++) {
                const StateResource *r = s->resources[i];

                if (r->kind != kind)
                        continue;
                if (cf_id ? streq_ptr(r->cf_id, cf_id) : streq_ptr(r->cf_name, cf_name))
                        return r;
        }
        return NULL;
}

const StateResource *const *state_resources(const State *s, size_t *ret_n) {
        if (ret_n)
                *ret_n = s ? s->n_resources : 0;
        return s ? (const StateResource *const *) s->resources : NULL;
}

int state_put(State *s, const StateResource *r) {
        StateResource copy, *existing, **n;
        uint64_t now = now_realtime_usec();
        int k;

        if (!s || !r || isempty(r->name) || r->kind < 0 || r->kind >= _RESOURCE_KIND_MAX ||
            r->ownership < 0 || r->ownership >= _OWNERSHIP_MAX ||
            r->deletion < 0 || r->deletion >= _DELETION_POLICY_MAX ||
            r->drift < 0 || r->drift >= _DRIFT_POLICY_MAX)
                return -EINVAL;
        k = resource_copy(&copy, r);
        if (k < 0)
                return k;
        copy.updated_usec = now;

        existing = find_resource(s, r->kind, r->name, NULL);
        if (existing) {
                copy.created_usec = existing->created_usec;
                state_resource_done(existing);
                *existing = copy;
                return 0;
        }
        if (copy.created_usec == 0)
                copy.created_usec = now;
        existing = malloc(sizeof(StateResource));
        n = realloc(s->resources, sizeof(StateResource *) * (s->n_resources + 1));
        if (!existing || !n) {
                free(existing);
                if (n)
                        s->resources = n;
                state_resource_done(&copy);
                return -ENOMEM;
        }
        s->resources = n;
        *existing = copy;
        s->resources[s->n_resources++] = existing;
        qsort(s->resources, s->n_resources, sizeof(StateResource *), resource_cmp);
        return 0;
}

int state_remove(State *s, ResourceKind kind, const char *name) {
        size_t idx;
        StateResource *r = find_resource(s, kind, name, &idx);

        if (!r)
                return -ENOENT;
        resource_free(r);
        memmove(s->resources + idx, s->resources + idx + 1,
                sizeof(StateResource *) * (s->n_resources - idx - 1));
        s->n_resources--;
        return 0;
}

int state_set_digest(State *s, ResourceKind kind, const char *name, const char *digest) {
        StateResource *r = find_resource(s, kind, name, NULL);
        char *d = NULL;

        if (!r)
                return -ENOENT;
        if (strdup_opt(digest, &d) < 0)
                return -ENOMEM;
        free(r->digest);
        r->digest = d;
        r->updated_usec = now_realtime_usec();
        return 0;
}

int state_set_policy(State *s, ResourceKind kind, const char *name, DeletionPolicy deletion,
                     DriftPolicy drift) {
        StateResource *r = find_resource(s, kind, name, NULL);

        if (deletion < 0 || deletion >= _DELETION_POLICY_MAX || drift < 0 || drift >= _DRIFT_POLICY_MAX)
                return -EINVAL;
        if (!r)
                return -ENOENT;
        r->deletion = deletion;
        r->drift = drift;
        return 0;
}

int state_add_own_write(State *s, ResourceKind kind, const char *name, const char *marker) {
        StateResource *r = find_resource(s, kind, name, NULL);
        size_t n;
        int k;

        if (isempty(marker))
                return -EINVAL;
        if (!r)
                return -ENOENT;
        if (strv_contains(r->own_writes, marker))
                return 0;
        k = strv_extend(&r->own_writes, marker);
        if (k < 0)
                return k;
        n = strv_length(r->own_writes);
        if (n > STATE_MAX_OWN_WRITES) {
                free(r->own_writes[0]);
                memmove(r->own_writes, r->own_writes + 1, sizeof(char *) * n);
        }
        return 0;
}

bool state_is_own_write(const State *s, ResourceKind kind, const char *name, const char *marker) {
        const StateResource *r = find_resource(s, kind, name, NULL);

        return r && marker && strv_contains(r->own_writes, marker);
}

int state_add_migration_tag(State *s, const char *worker, const char *tag) {
        StateResource *r = find_resource(s, RESOURCE_WORKER, worker, NULL);

        if (isempty(tag))
                return -EINVAL;
        if (!r)
                return -ENOENT;
        if (strv_contains(r->migration_tags, tag))
                return 0;
        return strv_extend(&r->migration_tags, tag);
}

/* ---- Intents ---- */

static StateIntent *find_intent(const State *s, ResourceKind kind, const char *cf_name, size_t *ret_idx) {
        if (!s || !cf_name)
                return NULL;
        for (size_t i = 0; i < s->n_intents; i++)
                if (s->intents[i]->kind == kind && streq(s->intents[i]->cf_name, cf_name)) {
                        if (ret_idx)
                                *ret_idx = i;
                        return s->intents[i];
                }
        return NULL;
}

int state_intent_add(State *s, ResourceKind kind, const char *name, const char *cf_name,
                     const char *run_id) {
        StateIntent *i, **n;
        size_t idx;

        if (!s || isempty(cf_name) || kind < 0 || kind >= _RESOURCE_KIND_MAX)
                return -EINVAL;
        i = calloc(1, sizeof(StateIntent));
        if (!i)
                return -ENOMEM;
        i->kind = kind;
        i->time_usec = now_realtime_usec();
        if (strdup_opt(name, &i->name) < 0 || strdup_opt(cf_name, &i->cf_name) < 0 ||
            strdup_opt(run_id, &i->run_id) < 0) {
                intent_free(i);
                return -ENOMEM;
        }
        if (find_intent(s, kind, cf_name, &idx)) {
                intent_free(s->intents[idx]);
                s->intents[idx] = i;
                return 0;
        }
        n = realloc(s->intents, sizeof(StateIntent *) * (s->n_intents + 1));
        if (!n) {
                intent_free(i);
                return -ENOMEM;
        }
        s->intents = n;
        s->intents[s->n_intents++] = i;
        return 0;
}

int state_intent_clear(State *s, ResourceKind kind, const char *cf_name) {
        size_t idx;

        if (!find_intent(s, kind, cf_name, &idx))
                return -ENOENT;
        intent_free(s->intents[idx]);
        memmove(s->intents + idx, s->intents + idx + 1, sizeof(StateIntent *) * (s->n_intents - idx - 1));
        s->n_intents--;
        return 0;
}

const StateIntent *state_intent_find(const State *s, ResourceKind kind, const char *cf_name) {
        return find_intent(s, kind, cf_name, NULL);
}

const StateIntent *const *state_intents(const State *s, size_t *ret_n) {
        if (ret_n)
                *ret_n = s ? s->n_intents : 0;
        return s ? (const StateIntent *const *) s->intents : NULL;
}

/* ---- Secret fingerprints ---- */

static int load_key(State *s) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r;

        if (s->have_key)
                return 0;
        r = read_full_file(s->key_path, 1024, &data, &size);
        if (r == 0) {
                if (size != STATE_KEY_SIZE) {
                        explicit_bzero(data, size);
                        free(s->key_error);
                        if (asprintf(&s->key_error, "%s: %zu bytes, expected %d; move it away and bindery makes "
                                     "a new key (every secret is then uploaded again)", s->key_path, size,
                                     STATE_KEY_SIZE) < 0)
                                s->key_error = NULL;
                        return -EBADMSG;
                }
                memcpy(s->key, data, STATE_KEY_SIZE);
                explicit_bzero(data, size);
                s->have_key = true;
                return 0;
        }
        if (r != -ENOENT)
                return r;
        if (!s->locked)
                return -ENOKEY;

        if (getrandom(s->key, STATE_KEY_SIZE, 0) != STATE_KEY_SIZE)
                return errno > 0 ? -errno : -EIO;
        r = write_file_atomic(s->key_path, s->key, STATE_KEY_SIZE, 0600);
        if (r < 0) {
                explicit_bzero(s->key, sizeof s->key);
                return r;
        }
        s->have_key = true;
        return 0;
}

int state_secret_hmac(State *s, const void *value, size_t size, char ret[static 65]) {
        static const char hex[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        int r;

        if (!s || (!value && size > 0))
                return -EINVAL;
        r = load_key(s);
        if (r < 0)
                return r;
        if (!HMAC(EVP_sha256(), s->key, STATE_KEY_SIZE, value ? value : (const void *) "", size, md, &len) ||
            len != 32)
                return -EIO;
        for (unsigned i = 0; i < 32; i++) {
                ret[2 * i] = hex[md[i] >> 4];
                ret[2 * i + 1] = hex[md[i] & 15];
        }
        ret[64] = 0;
        explicit_bzero(md, sizeof md);
        return 0;
}

int state_secret_set(State *s, const char *scope, const char *key, const void *value, size_t size) {
        char fp[65];
        json_object *m, *j;
        int r;

        if (!s || isempty(scope) || isempty(key))
                return -EINVAL;
        r = state_secret_hmac(s, value, size, fp);
        if (r < 0)
                return r;
        if (!json_object_object_get_ex(s->secrets, scope, &m) || !m) {
                m = json_object_new_object();
                if (!m || json_object_object_add(s->secrets, scope, m) < 0) {
                        json_object_put(m);
                        return -ENOMEM;
                }
        }
        j = json_object_new_string(fp);
        if (!j || json_object_object_add(m, key, j) < 0) {
                json_object_put(j);
                return -ENOMEM;
        }
        return 0;
}

const char *state_secret_get(const State *s, const char *scope, const char *key) {
        json_object *m, *v;

        if (!s || !scope || !key)
                return NULL;
        if (!json_object_object_get_ex(s->secrets, scope, &m) || !m ||
            !json_object_object_get_ex(m, key, &v) || !v)
                return NULL;
        return json_object_get_string(v);
}

int state_secret_matches(State *s, const char *scope, const char *key, const void *value,
                         size_t size) {
        const char *recorded = state_secret_get(s, scope, key);
        char fp[65];
        int r;

        if (!s || isempty(scope) || isempty(key))
                return -EINVAL;
        if (!recorded)
                return 0;
        r = state_secret_hmac(s, value, size, fp);
        if (r < 0)
                return r;
        return memeq_consttime(fp, 64, recorded, strlen(recorded)) ? 1 : 0;
}

int state_secret_forget(State *s, const char *scope, const char *key) {
        json_object *m;

        if (!s || isempty(scope))
                return -EINVAL;
        if (!json_object_object_get_ex(s->secrets, scope, &m) || !m)
                return -ENOENT;
        if (!key) {
                json_object_object_del(s->secrets, scope);
                return 0;
        }
        if (!json_object_object_get_ex(m, key, NULL))
                return -ENOENT;
        json_object_object_del(m, key);
        if (json_object_object_length(m) == 0)
                json_object_object_del(s->secrets, scope);
        return 0;
}

/* ---- Meta ---- */

int state_set_meta(State *s, const char *key, const char *value) {
        json_object *j;

        if (!s || isempty(key))
                return -EINVAL;
        if (!value) {
                json_object_object_del(s->meta, key);
                return 0;
        }
        j = json_object_new_string(value);
        if (!j || json_object_object_add(s->meta, key, j) < 0) {
                json_object_put(j);
                return -ENOMEM;
        }
        return 0;
}

const char *state_get_meta(const State *s, const char *key) {
        json_object *v;

        if (!s || !key || !json_object_object_get_ex(s->meta, key, &v) || !v)
                return NULL;
        return json_object_get_string(v);
}
