/* sim-store.c: see sim-store.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "sim-store.h"
#include "util.h"

static const char *const collections[] = {
        "scripts", "kv", "r2", "d1", "queues", "stores", "do_namespaces", "hyperdrive", "vectorize",
};

json_object *sim_store_new_state(const char *account_id) {
        json_object *s = json_object_new_object();

        if (!s)
                abort();
        sim_set_str(s, "account_id", account_id);
        sim_set_str(s, "subdomain", "cfsim");
        sim_set_int(s, "audit_seq", 0);
        for (size_t i = 0; i < ELEMENTSOF(collections); i++)
                json_object_object_add(s, collections[i], json_object_new_object());
        json_object_object_add(s, "audit", json_object_new_array());
        return s;
}

int sim_init(Sim *sim, const char *account_id) {
        *sim = (Sim) {};
        if (pthread_mutex_init(&sim->lock, NULL) != 0 || pthread_cond_init(&sim->wake, NULL) != 0)
                return -ENOMEM;
        snprintf(sim->account_id, sizeof(sim->account_id), "%s", account_id);
        sim->state = sim_store_new_state(account_id);
        sim->by_route = json_object_new_object();
        sim->by_status = json_object_new_object();
        sim->propagation = json_object_new_object();
        sim->propagation_every = 1;
        if (!sim->state || !sim->by_route || !sim->by_status || !sim->propagation)
                return -ENOMEM;
        return 0;
}

void sim_done(Sim *sim) {
        json_object_put(sim->state);
        json_object_put(sim->by_route);
        json_object_put(sim->by_status);
        json_object_put(sim->propagation);
        sim_blob_unref(sim->list_cache);
        for (size_t i = 0; i < SIM_REQLOG_MAX; i++) {
                free(sim->reqlog[i].path);
                free(sim->reqlog[i].query);
        }
        for (size_t i = 0; i < sim->n_faults; i++) {
                free(sim->faults[i].method);
                free(sim->faults[i].route);
                if (sim->faults[i].have_re)
                        regfree(&sim->faults[i].re);
        }
        strv_free(sim->tokens);
        free(sim->state_path);
        pthread_cond_destroy(&sim->wake);
        pthread_mutex_destroy(&sim->lock);
}

void sim_store_reset(Sim *sim) {
        json_object_put(sim->state);
        sim->state = sim_store_new_state(sim->account_id);
        json_object_put(sim->propagation);
        sim->propagation = json_object_new_object();
        sim->propagation_count = 0;
        sim->generation++;
        sim->dirty = true;
}

void sim_created(Sim *sim, const char *kind, const char *key) {
        char k[700];

        if (sim->propagation_usec == 0)
                return;
        sim->propagation_count++;
        if (sim->propagation_every > 1 && sim->propagation_count % sim->propagation_every != 0)
                return;
        /* Forget entries that are ready, so the map stays small. */
        {
                uint64_t now = now_monotonic_usec();
                _cleanup_strv_free_ char **done = NULL;

                json_object_object_foreach(sim->propagation, pk, pv)
                        if ((uint64_t) json_object_get_int64(pv) <= now && strv_extend(&done, pk) < 0)
                                break;
                for (char **d = done; d && *d; d++)
                        json_object_object_del(sim->propagation, *d);
        }
        snprintf(k, sizeof(k), "%s:%s", kind, key);
        json_object_object_add(sim->propagation, k,
                               json_object_new_int64((int64_t) (now_monotonic_usec() + sim->propagation_usec)));
}

bool sim_propagating(Sim *sim, const char *kind, const char *key) {
        json_object *v;
        char k[700];

        snprintf(k, sizeof(k), "%s:%s", kind, key);
        if (!json_object_object_get_ex(sim->propagation, k, &v))
                return false;
        return (uint64_t) json_object_get_int64(v) > now_monotonic_usec();
}

/* ---- seeding ---------------------------------------------------------------- */

static json_object *seed_list(json_object *seed, const char *key, const char **ret_msg) {
        json_object *v;

        if (!json_object_object_get_ex(seed, key, &v) || !v)
                return NULL;
        if (!json_object_is_type(v, json_type_array)) {
                *ret_msg = "every seed collection must be an array";
                return NULL;
        }
        return v;
}

static const char *seed_str(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool seed_id_ok(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n < 1 || n > 255)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      s[i] == '-' || s[i] == '_' || s[i] == '.'))
                        return false;
        return true;
}

/* Each seed kind builds its account object from a seed entry's name and
 * id (the seed's, or a random one when the kind has ids), and names its
 * key in the collection. NULL with *ret_msg when the entry is refused. */
typedef json_object *(*seed_build_fn)(Sim *sim, json_object *e, const char *name, const char *id,
                                      const char *now, char *key, size_t key_size, const char **ret_msg);

static json_object *seed_kv(Sim *sim, json_object *e, const char *name, const char *id, const char *now,
                            char *key, size_t key_size, const char **ret_msg) {
        json_object *o = json_object_new_object();

        (void) sim, (void) e, (void) now, (void) ret_msg;
        sim_set_str(o, "id", id);
        sim_set_str(o, "title", name);
        sim_set_bool(o, "supports_url_encoding", true);
        snprintf(key, key_size, "%s", id);
        return o;
}

static json_object *seed_r2(Sim *sim, json_object *e, const char *name, const char *id, const char *now,
                            char *key, size_t key_size, const char **ret_msg) {
        const char *j = seed_str(e, "jurisdiction");
        json_object *o;

        (void) sim, (void) id;
        if (j && !(streq(j, "default") || streq(j, "eu") || streq(j, "fedramp") || streq(j, "fedramp-high"))) {
                *ret_msg = "r2 jurisdiction must be default, eu, fedramp or fedramp-high";
                return NULL;
        }
        o = json_object_new_object();
        sim_set_str(o, "name", name);
        sim_set_str(o, "creation_date", now);
        sim_set_str(o, "location", "ENAM");
        sim_set_str(o, "storage_class", "Standard");
        sim_set_str(o, "jurisdiction", j ? j : "default");
        snprintf(key, key_size, "%s/%s", j ? j : "default", name);
        return o;
}

static json_object *seed_d1(Sim *sim, json_object *e, const char *name, const char *id, const char *now,
                            char *key, size_t key_size, const char **ret_msg) {
        json_object *o = json_object_new_object();

        (void) sim, (void) e, (void) ret_msg;
        sim_set_str(o, "uuid", id);
        sim_set_str(o, "name", name);
        sim_set_str(o, "created_at", now);
        sim_set_str(o, "version", "production");
        sim_set_int(o, "num_tables", 0);
        sim_set_int(o, "file_size", 0);
        snprintf(key, key_size, "%s", id);
        return o;
}

static json_object *seed_queue(Sim *sim, json_object *e, const char *name, const char *id, const char *now,
                               char *key, size_t key_size, const char **ret_msg) {
        json_object *o = json_object_new_object(), *st = json_object_new_object();
        char rid[33];

        (void) sim, (void) e, (void) id, (void) ret_msg;
        sim_random_hex(rid, 32);
        sim_set_str(o, "queue_id", rid);
        sim_set_str(o, "queue_name", name);
        sim_set_str(o, "created_on", now);
        sim_set_str(o, "modified_on", now);
        json_object_object_add(o, "consumers", json_object_new_array());
        sim_set_int(st, "delivery_delay", 0);
        sim_set_bool(st, "delivery_paused", false);
        sim_set_int(st, "message_retention_period", 345600);
        json_object_object_add(o, "settings", st);
        snprintf(key, key_size, "%s", rid);
        return o;
}

/* A seeded store's secrets (an array of names) into secrets, each with a
 * fresh id and a value derived from it. */
static int seed_store_secrets(json_object *names, const char *store_id, const char *now, json_object *secrets,
                              const char **ret_msg) {
        if (!json_object_is_type(names, json_type_array)) {
                *ret_msg = "a seeded store's secrets must be an array of names";
                return -EINVAL;
        }
        for (size_t m = 0; m < json_object_array_length(names); m++) {
                const char *sn = json_object_get_string(json_object_array_get_idx(names, m));
                json_object *se;
                char sid[33], tag[72];

                if (!json_object_is_type(json_object_array_get_idx(names, m), json_type_string) || !seed_id_ok(sn)) {
                        *ret_msg = "a seeded store's secrets must be an array of names";
                        return -EINVAL;
                }
                se = json_object_new_object();
                sim_random_hex(sid, 32);
                sim_set_str(se, "id", sid);
                sim_set_str(se, "name", sn);
                sim_set_str(se, "store_id", store_id);
                sim_set_str(se, "status", "active");
                sim_set_str(se, "created", now);
                sim_set_str(se, "modified", now);
                sim_set_str(se, "comment", "seeded");
                json_object_object_add(se, "scopes", json_object_new_array());
                json_object_array_add(json_object_object_get(se, "scopes"), json_object_new_string("workers"));
                sim_set_str(se, "value", sim_sha256_tag(sid, strlen(sid), tag));
                json_object_object_add(secrets, sid, se);
        }
        return 0;
}

static json_object *seed_store(Sim *sim, json_object *e, const char *name, const char *id, const char *now,
                               char *key, size_t key_size, const char **ret_msg) {
        json_object *o = json_object_new_object(), *secrets = json_object_new_object(), *names;

        sim_set_str(o, "id", id);
        sim_set_str(o, "name", name);
        sim_set_str(o, "account_id", sim->account_id);
        sim_set_str(o, "created", now);
        sim_set_str(o, "modified", now);
        json_object_object_add(o, "secrets", secrets);
        if (json_object_object_get_ex(e, "secrets", &names) && names &&
            seed_store_secrets(names, id, now, secrets, ret_msg) < 0) {
                json_object_put(o);
                return NULL;
        }
        snprintf(key, key_size, "%s", id);
        return o;
}

static json_object *seed_hyperdrive(Sim *sim, json_object *e, const char *name, const char *id, const char *now,
                                    char *key, size_t key_size, const char **ret_msg) {
        json_object *o = json_object_new_object();

        (void) sim, (void) e, (void) now, (void) ret_msg;
        sim_set_str(o, "id", id);
        sim_set_str(o, "name", name);
        snprintf(key, key_size, "%s", id);
        return o;
}

static json_object *seed_vectorize(Sim *sim, json_object *e, const char *name, const char *id, const char *now,
                                   char *key, size_t key_size, const char **ret_msg) {
        json_object *o = json_object_new_object();

        (void) sim, (void) e, (void) id, (void) ret_msg;
        sim_set_str(o, "name", name);
        sim_set_str(o, "created_on", now);
        snprintf(key, key_size, "%s", name);
        return o;
}

static const struct SeedKind {
        const char *coll, *id_key, *name_key;
        seed_build_fn build;
} seed_kinds[] = {
        { "kv", "id", "title", seed_kv },
        { "r2", NULL, "name", seed_r2 },
        { "d1", "uuid", "name", seed_d1 },
        { "queues", NULL, "queue_name", seed_queue },
        { "stores", "id", "name", seed_store },
        { "hyperdrive", "id", "name", seed_hyperdrive },
        { "vectorize", NULL, "name", seed_vectorize },
};

/* One kind's seed entries, built into into (keyed as the account keeps
 * them); what the account already holds is left out. */
static int seed_stage_kind(Sim *sim, const struct SeedKind *kind, json_object *list, json_object *into,
                           const char *now, const char **ret_msg) {
        for (size_t k = 0; list && k < json_object_array_length(list); k++) {
                json_object *e = json_object_array_get_idx(list, k), *o;
                const char *name = seed_str(e, kind->name_key);
                const char *id = kind->id_key ? seed_str(e, kind->id_key) : NULL;
                char key[600], rid[33];

                if (!json_object_is_type(e, json_type_object) || !seed_id_ok(name) ||
                    (kind->id_key && id && !seed_id_ok(id))) {
                        *ret_msg = "every seed entry needs a valid name (and id, when given)";
                        return -EINVAL;
                }
                if (kind->id_key && !id) {
                        sim_random_hex(rid, 32);
                        id = rid;
                }
                o = kind->build(sim, e, name, id, now, key, sizeof(key), ret_msg);
                if (!o)
                        return -EINVAL;
                if (json_object_object_get_ex(into, key, NULL)) {
                        json_object_put(o);
                        *ret_msg = "a resource appears twice in the seed";
                        return -EINVAL;
                }
                /* What the account already holds stays as it is (a
                 * --state file seeded before). */
                if (json_object_object_get_ex(sim_coll(sim, kind->coll), key, NULL)) {
                        json_object_put(o);
                        continue;
                }
                json_object_object_add(into, key, o);
        }
        return 0;
}

int sim_seed(Sim *sim, json_object *seed, const char **ret_msg) {
        json_object *staged;
        char now[40];

        *ret_msg = NULL;
        if (!seed || !json_object_is_type(seed, json_type_object)) {
                *ret_msg = "the seed must be a JSON object";
                return -EINVAL;
        }
        json_object_object_foreach(seed, ckey, val) {
                bool known = false;

                (void) val;
                for (size_t i = 0; i < ELEMENTSOF(seed_kinds); i++)
                        known = known || streq(ckey, seed_kinds[i].coll);
                if (!known) {
                        *ret_msg = "unknown seed collection (kv, r2, d1, queues, stores, hyperdrive, vectorize)";
                        return -EINVAL;
                }
        }
        /* Validate all, then add all: nothing half-seeded. */
        staged = json_object_new_object();
        sim_now(now);
        for (size_t i = 0; i < ELEMENTSOF(seed_kinds); i++) {
                json_object *list = seed_list(seed, seed_kinds[i].coll, ret_msg), *into = json_object_new_object();

                json_object_object_add(staged, seed_kinds[i].coll, into);
                if (*ret_msg || seed_stage_kind(sim, &seed_kinds[i], list, into, now, ret_msg) < 0) {
                        json_object_put(staged);
                        return -EINVAL;
                }
        }
        json_object_object_foreach(staged, coll, entries) {
                json_object *dst = sim_coll(sim, coll);

                json_object_object_foreach(entries, k, v)
                        json_object_object_add(dst, k, json_object_get(v));
        }
        json_object_put(staged);
        sim->generation++;
        sim->dirty = true;
        return 0;
}

int sim_seed_file(Sim *sim, const char *path, const char **ret_msg) {
        _cleanup_free_ char *data = NULL;
        json_object *seed;
        size_t size;
        int r;

        *ret_msg = NULL;
        r = read_full_file(path, (size_t) 16 << 20, &data, &size);
        if (r < 0)
                return r;
        seed = json_tokener_parse(data);
        if (!seed) {
                *ret_msg = "not JSON";
                return -EINVAL;
        }
        pthread_mutex_lock(&sim->lock);
        r = sim_seed(sim, seed, ret_msg);
        pthread_mutex_unlock(&sim->lock);
        json_object_put(seed);
        return r;
}

json_object *sim_coll(Sim *sim, const char *name) {
        json_object *v;

        if (!json_object_object_get_ex(sim->state, name, &v)) {
                v = json_object_new_object();
                json_object_object_add(sim->state, name, v);
        }
        return v;
}

int sim_store_load(Sim *sim) {
        _cleanup_free_ char *data = NULL;
        json_object *s, *v;
        size_t size;
        int r;

        if (!sim->state_path)
                return 0;
        r = read_full_file(sim->state_path, (size_t) 1 << 30, &data, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        s = json_tokener_parse(data);
        if (!s || !json_object_is_type(s, json_type_object)) {
                json_object_put(s);
                return -EBADMSG;
        }
        /* Fill in whatever an older or hand-edited file lacks. */
        for (size_t i = 0; i < ELEMENTSOF(collections); i++)
                if (!json_object_object_get_ex(s, collections[i], &v) || !json_object_is_type(v, json_type_object))
                        json_object_object_add(s, collections[i], json_object_new_object());
        if (!json_object_object_get_ex(s, "audit", &v) || !json_object_is_type(v, json_type_array))
                json_object_object_add(s, "audit", json_object_new_array());
        if (!json_object_object_get_ex(s, "audit_seq", &v))
                sim_set_int(s, "audit_seq", 0);
        sim_set_str(s, "account_id", sim->account_id);
        json_object_put(sim->state);
        sim->state = s;
        sim->generation++;
        return 0;
}

int sim_store_save(Sim *sim) {
        _cleanup_free_ char *data = NULL;
        size_t size;

        if (!sim->state_path)
                return 0;
        pthread_mutex_lock(&sim->lock);
        if (!sim->dirty) {
                pthread_mutex_unlock(&sim->lock);
                return 0;
        }
        data = strdup(json_object_to_json_string_ext(sim->state, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        sim->dirty = false;
        pthread_mutex_unlock(&sim->lock);
        if (!data)
                return -ENOMEM;
        size = strlen(data);
        return write_file_atomic(sim->state_path, data, size, 0600);
}

char *sim_now(char buf[static 40]) {
        struct timespec ts;
        struct tm tm;
        size_t n;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        (void) gmtime_r(&ts.tv_sec, &tm);
        n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, 40 - n, ".%06uZ", (unsigned) (ts.tv_nsec / 1000) % 1000000u);
        return buf;
}

int sim_parse_time(const char *s, uint64_t *ret_usec) {
        struct tm tm = {};
        const char *p;
        uint64_t frac = 0, scale = 1000000;
        time_t t;

        if (!s)
                return -EINVAL;
        p = strptime(s, "%Y-%m-%d", &tm);
        if (!p)
                return -EINVAL;
        if (*p == 'T' || *p == 't' || *p == ' ') {
                p = strptime(p + 1, "%H:%M:%S", &tm);
                if (!p)
                        return -EINVAL;
                if (*p == '.') {
                        p++;
                        while (*p >= '0' && *p <= '9') {
                                if (scale > 1) {
                                        scale /= 10;
                                        frac += (uint64_t) (*p - '0') * scale;
                                }
                                p++;
                        }
                }
                if (*p == 'Z' || *p == 'z')
                        p++;
                else if (startswith(p, "+00:00"))
                        p += 6;
        }
        if (*p)
                return -EINVAL;
        t = timegm(&tm);
        if (t < 0)
                return -EINVAL;
        *ret_usec = (uint64_t) t * USEC_PER_SEC + frac;
        return 0;
}

void sim_random_hex(char *buf, size_t n) {
        unsigned char raw[32];

        if (n > 64)
                n = 64;
        if (getrandom(raw, (n + 1) / 2, 0) != (ssize_t) ((n + 1) / 2))
                abort();
        for (size_t i = 0; i < n; i++)
                buf[i] = "0123456789abcdef"[(raw[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
        buf[n] = 0;
}

void sim_random_uuid(char buf[static 37]) {
        char h[33];

        sim_random_hex(h, 32);
        h[12] = '4';
        h[16] = "89ab"[h[16] % 4];
        snprintf(buf, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

char *sim_sha256_tag(const void *data, size_t size, char buf[static 72]) {
        char hex[65];

        sha256_hex(data, size, hex);
        snprintf(buf, 72, "sha256:%s", hex);
        return buf;
}

void sim_set_str(json_object *o, const char *key, const char *v) {
        json_object_object_add(o, key, v ? json_object_new_string(v) : NULL);
}

void sim_set_int(json_object *o, const char *key, int64_t v) {
        json_object_object_add(o, key, json_object_new_int64(v));
}

void sim_set_bool(json_object *o, const char *key, bool v) {
        json_object_object_add(o, key, json_object_new_boolean(v));
}

json_object *sim_copy(json_object *o) {
        json_object *c = NULL;

        if (!o)
                return NULL;
        if (json_object_deep_copy(o, &c, NULL) < 0)
                abort();
        return c;
}

SimBlob *sim_blob_new(const char *head, const char *body, size_t body_size, const char *tail) {
        size_t hl = strlen(head), tl = strlen(tail);
        SimBlob *b = malloc(sizeof(SimBlob) + hl + body_size + tl + 1);

        if (!b)
                abort();
        b->refs = 1;
        b->size = hl + body_size + tl;
        memcpy(b->data, head, hl);
        memcpy(b->data + hl, body, body_size);
        memcpy(b->data + hl + body_size, tail, tl + 1);
        return b;
}

SimBlob *sim_blob_ref(SimBlob *b) {
        if (b)
                __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
        return b;
}

void sim_blob_unref(void *p) {
        SimBlob *b = p;

        if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
                free(b);
}

/* resource.product as the Audit Logs v2 reference names it (e.g.
 * "workers", "r2"); cfsim's mapping from its resource types. */
static const char *audit_product(const char *resource_type) {
        static const struct {
                const char *prefix, *product;
        } map[] = {
                { "workers.", "workers" },  { "kv.", "workers_kv" },   { "r2.", "r2" },
                { "d1.", "d1" },            { "queues.", "queues" },   { "secrets_store.", "secrets_store" },
        };

        for (size_t i = 0; resource_type && i < ELEMENTSOF(map); i++)
                if (startswith(resource_type, map[i].prefix))
                        return map[i].product;
        return "account";
}

static const char *action_type(const char *method) {
        if (streq(method, "POST"))
                return "create";
        if (streq(method, "DELETE"))
                return "delete";
        return "update";
}

void sim_token_id(const char *authorization, char ret[static 33]) {
        static const char hex[] = "0123456789abcdef";
        uint8_t md[32];

        if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) {
                snprintf(ret, 33, "%s", SIM_TOKEN_ID_NONE);
                return;
        }
        authorization += 7;
        authorization += strspn(authorization, " ");
        sha256_raw(authorization, strlen(authorization), md);
        for (unsigned i = 0; i < 16; i++) {
                ret[2 * i] = hex[md[i] >> 4];
                ret[2 * i + 1] = hex[md[i] & 15];
        }
        ret[32] = 0;
}

void sim_audit(Sim *sim, const char *token_id, const char *method, const char *uri, unsigned status,
               const char *resource_type, const char *resource_id) {
        json_object *log = sim_coll(sim, "audit"), *seqo, *e, *o;
        char now[40], id[48];
        int64_t seq = 0;

        if (json_object_object_get_ex(sim->state, "audit_seq", &seqo))
                seq = json_object_get_int64(seqo);
        seq++;
        sim_set_int(sim->state, "audit_seq", seq);
        snprintf(id, sizeof(id), "%016" PRIx64 "-cfsim", (uint64_t) seq);

        e = json_object_new_object();
        sim_set_str(e, "id", id);
        sim_set_int(e, "seq", seq);
        sim_set_int(e, "usec", (int64_t) now_realtime_usec());
        o = json_object_new_object();
        sim_set_str(o, "time", sim_now(now));
        sim_set_str(o, "type", action_type(method));
        sim_set_str(o, "result", status < 400 ? "success" : "failure");
        json_object_object_add(e, "action", o);
        o = json_object_new_object();
        sim_set_str(o, "method", method);
        sim_set_str(o, "uri", uri);
        sim_set_int(o, "status_code", status);
        sim_set_str(o, "cf_ray_id", id);
        json_object_object_add(e, "raw", o);
        o = json_object_new_object();
        sim_set_str(o, "type", resource_type ? resource_type : "account");
        sim_set_str(o, "id", resource_id && *resource_id ? resource_id : sim->account_id);
        sim_set_str(o, "product", audit_product(resource_type));
        sim_set_str(o, "scope", "accounts");
        json_object_object_add(e, "resource", o);
        o = json_object_new_object();
        sim_set_str(o, "id", "cfsim00000000000000000000000user");
        sim_set_str(o, "email", "cfsim@example.com");
        sim_set_str(o, "type", "user");
        sim_set_str(o, "context", "api_token");
        sim_set_str(o, "token_id", token_id ? token_id : SIM_TOKEN_ID_NONE);
        sim_set_str(o, "token_name", "cfsim");
        sim_set_str(o, "ip_address", "127.0.0.1");
        json_object_object_add(e, "actor", o);
        o = json_object_new_object();
        sim_set_str(o, "id", sim->account_id);
        json_object_object_add(e, "account", o);

        if (json_object_array_length(log) >= SIM_AUDIT_MAX)
                (void) json_object_array_del_idx(log, 0, json_object_array_length(log) - SIM_AUDIT_MAX + 1);
        json_object_array_add(log, e);
}
