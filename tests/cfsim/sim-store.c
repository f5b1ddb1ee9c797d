/* sim-store.c: see sim-store.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "sim-store.h"
#include "util.h"

static const char *const collections[] = {
        "scripts", "kv", "r2", "d1", "queues", "stores", "do_namespaces",
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
        if (!sim->state || !sim->by_route || !sim->by_status)
                return -ENOMEM;
        return 0;
}

void sim_done(Sim *sim) {
        json_object_put(sim->state);
        json_object_put(sim->by_route);
        json_object_put(sim->by_status);
        sim_blob_unref(sim->list_cache);
        for (size_t i = 0; i < SIM_REQLOG_MAX; i++)
                free(sim->reqlog[i].path);
        for (size_t i = 0; i < sim->n_faults; i++) {
                free(sim->faults[i].method);
                free(sim->faults[i].route);
                if (sim->faults[i].have_re)
                        regfree(&sim->faults[i].re);
        }
        free(sim->token);
        free(sim->state_path);
        pthread_cond_destroy(&sim->wake);
        pthread_mutex_destroy(&sim->lock);
}

void sim_store_reset(Sim *sim) {
        json_object_put(sim->state);
        sim->state = sim_store_new_state(sim->account_id);
        sim->generation++;
        sim->dirty = true;
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

static const char *action_type(const char *method) {
        if (streq(method, "POST"))
                return "create";
        if (streq(method, "DELETE"))
                return "delete";
        return "update";
}

void sim_audit(Sim *sim, const char *method, const char *uri, unsigned status,
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
        json_object_object_add(e, "raw", o);
        o = json_object_new_object();
        sim_set_str(o, "type", resource_type ? resource_type : "account");
        sim_set_str(o, "id", resource_id && *resource_id ? resource_id : sim->account_id);
        json_object_object_add(e, "resource", o);
        o = json_object_new_object();
        sim_set_str(o, "type", "user");
        json_object_object_add(e, "actor", o);
        o = json_object_new_object();
        sim_set_str(o, "id", sim->account_id);
        json_object_object_add(e, "account", o);

        if (json_object_array_length(log) >= SIM_AUDIT_MAX)
                (void) json_object_array_del_idx(log, 0, json_object_array_length(log) - SIM_AUDIT_MAX + 1);
        json_object_array_add(log, e);
}
