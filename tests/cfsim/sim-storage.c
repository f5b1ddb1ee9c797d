/* sim-storage.c: KV namespaces, R2 buckets, D1 databases and Queues with
 * consumers (cloudflare-api.md §4.1-§4.4). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sim-http.h"
#include "sim-json.h"
#include "util.h"

static json_object *get(json_object *o, const char *key) {
        json_object *v = NULL;

        if (o)
                (void) json_object_object_get_ex(o, key, &v);
        return v;
}

/* Parses the body as a JSON object, replying 400/10021 otherwise. */
static json_object *body_object(const SimRequest *req, SimReply *rep) {
        json_object *o = sim_body_json(req, rep);

        if (o && !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                reply_error(rep, 400, 10021, "Expected a JSON object");
                return NULL;
        }
        return o;
}

static int cmp_by(const void *a, const void *b, const char *key) {
        const char *x = sim_json_str(*(json_object *const *) a, key), *y = sim_json_str(*(json_object *const *) b, key);

        return strcmp(x ? x : "", y ? y : "");
}
static int cmp_title(const void *a, const void *b) {
        return cmp_by(a, b, "title");
}
static int cmp_id(const void *a, const void *b) {
        return cmp_by(a, b, "id");
}
static int cmp_name(const void *a, const void *b) {
        return cmp_by(a, b, "name");
}

static void array_reverse(json_object *a) {
        size_t n = json_object_array_length(a);
        json_object *tmp = json_object_new_array();

        for (size_t i = n; i > 0; i--)
                json_object_array_add(tmp, json_object_get(json_object_array_get_idx(a, i - 1)));
        (void) json_object_array_del_idx(a, 0, n);
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, json_object_get(json_object_array_get_idx(tmp, i)));
        json_object_put(tmp);
}

/* ---- KV ------------------------------------------------------------------ */

static json_object *kv_by_title(Sim *sim, const char *title) {
        SIM_FOREACH_VAL(sim_coll(sim, "kv"), ns)
                if (streq_ptr(sim_json_str(ns, "title"), title))
                        return ns;
        return NULL;
}

static bool title_ok(const char *t) {
        return t && *t && strlen(t) <= 512;
}

static void h_kv_create(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *body = body_object(req, rep), *ns;
        const char *title;
        char id[33];

        if (!body)
                return;
        title = sim_json_str(body, "title");
        if (!title_ok(title)) {
                json_object_put(body);
                return reply_error(rep, 400, 10019, "A namespace title is required (1-512 characters)");
        }
        if (kv_by_title(sim, title)) {
                json_object_put(body);
                return reply_error(rep, 400, 10014, "A namespace with this account ID and title already exists");
        }
        sim_random_hex(id, 32);
        ns = json_object_new_object();
        sim_set_str(ns, "id", id);
        sim_set_str(ns, "title", title);
        sim_set_bool(ns, "supports_url_encoding", true);
        if (sim_json_str(body, "jurisdiction"))
                sim_set_str(ns, "jurisdiction", sim_json_str(body, "jurisdiction"));
        json_object_object_add(sim_coll(sim, "kv"), id, ns);
        sim_created(sim, "kv", id);
        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", id);
        json_object_put(body);
        reply_result(rep, sim_copy(ns), NULL);
}

static void h_kv_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        const char *order = sim_query(req, "order"), *dir = sim_query(req, "direction");
        json_object *a = json_object_new_array();

        SIM_FOREACH_VAL(sim_coll(sim, "kv"), ns)
                json_object_array_add(a, json_object_get(ns));
        if (streq_ptr(order, "title"))
                json_object_array_sort(a, cmp_title);
        else if (streq_ptr(order, "id"))
                json_object_array_sort(a, cmp_id);
        if (streq_ptr(dir, "desc"))
                array_reverse(a);
        reply_paged(rep, req, a, 20, 1000);
}

static json_object *kv_or_404(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *ns = get(sim_coll(sim, "kv"), req->params[1]);

        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", req->params[1]);
        if (!ns)
                reply_error(rep, 404, 10013, "namespace not found");
        return ns;
}

static void h_kv_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *ns = kv_or_404(sim, req, rep);

        if (ns)
                reply_result(rep, sim_copy(ns), NULL);
}

static void h_kv_rename(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *ns = kv_or_404(sim, req, rep), *body, *other;
        const char *title;

        if (!ns)
                return;
        body = body_object(req, rep);
        if (!body)
                return;
        title = sim_json_str(body, "title");
        if (!title_ok(title)) {
                json_object_put(body);
                return reply_error(rep, 400, 10019, "A namespace title is required (1-512 characters)");
        }
        other = kv_by_title(sim, title);
        if (other && other != ns) {
                json_object_put(body);
                return reply_error(rep, 400, 10014, "A namespace with this account ID and title already exists");
        }
        sim_set_str(ns, "title", title);
        json_object_put(body);
        reply_result(rep, sim_copy(ns), NULL);
}

static void h_kv_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        if (!kv_or_404(sim, req, rep))
                return;
        json_object_object_del(sim_coll(sim, "kv"), req->params[1]);
        reply_result(rep, NULL, NULL);
}

/* ---- R2 ------------------------------------------------------------------ */

static const char *jurisdiction(const SimRequest *req, SimReply *rep) {
        const char *j = sim_header(req, "cf-r2-jurisdiction");

        if (!j || !*j)
                return "default";
        if (!streq(j, "default") && !streq(j, "eu") && !streq(j, "fedramp") && !streq(j, "fedramp-high")) {
                reply_error(rep, 400, 10021, "Invalid jurisdiction '%s'", j);
                return NULL;
        }
        return j;
}

static bool bucket_name_ok(const char *n) {
        size_t len = n ? strlen(n) : 0;

        if (len < 3 || len > 63)
                return false;
        if (strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789-") != len)
                return false;
        return n[0] != '-' && n[len - 1] != '-';
}

static json_object *bucket_or_404(Sim *sim, const SimRequest *req, SimReply *rep, char key[static 160]) {
        const char *j = jurisdiction(req, rep);
        json_object *b;

        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", req->params[1]);
        if (!j)
                return NULL;
        snprintf(key, 160, "%s/%s", j, req->params[1]);
        b = get(sim_coll(sim, "r2"), key);
        if (!b)
                reply_error(rep, 404, 10006, "The specified bucket does not exist.");
        return b;
}

static json_object *bucket_out(json_object *b) {
        json_object *o = sim_copy(b);

        if (streq_ptr(sim_json_str(o, "jurisdiction"), "default"))
                json_object_object_del(o, "jurisdiction");
        return o;
}

static void h_r2_create(Sim *sim, const SimRequest *req, SimReply *rep) {
        const char *j = jurisdiction(req, rep), *name, *loc, *sc;
        json_object *body, *b;
        char key[160], now[40];

        if (!j)
                return;
        body = body_object(req, rep);
        if (!body)
                return;
        name = sim_json_str(body, "name");
        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", strna(name));
        if (!bucket_name_ok(name)) {
                json_object_put(body);
                return reply_error(rep, 400, 10005,
                                   "The specified bucket name is not valid (3-63 characters: a-z, 0-9 and '-', not at either end).");
        }
        snprintf(key, sizeof(key), "%s/%s", j, name);
        if (get(sim_coll(sim, "r2"), key)) {
                json_object_put(body);
                return reply_error(rep, 409, 10004, "The bucket you tried to create already exists, and you own it.");
        }
        loc = sim_json_str(body, "locationHint");
        sc = sim_json_str(body, "storageClass");
        b = json_object_new_object();
        sim_set_str(b, "name", name);
        sim_set_str(b, "creation_date", sim_now(now));
        sim_set_str(b, "location", loc ? loc : "enam");
        sim_set_str(b, "jurisdiction", j);
        sim_set_str(b, "storage_class", sc ? sc : "Standard");
        json_object_object_add(sim_coll(sim, "r2"), key, b);
        sim_created(sim, "r2", key);
        json_object_put(body);
        reply_result(rep, bucket_out(b), NULL);
}

static void h_r2_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        const char *j = jurisdiction(req, rep), *contains = sim_query(req, "name_contains"),
                   *after = sim_query(req, "start_after"), *cursor = sim_query(req, "cursor");
        long per_page = sim_query_uint(req, "per_page", 20, 1000);
        json_object *all = json_object_new_array(), *page, *res, *info;
        size_t n = 0, i;

        if (!j) {
                json_object_put(all);
                return;
        }
        if (per_page < 0) {
                json_object_put(all);
                return reply_error(rep, 400, 10021, "per_page must be a positive integer");
        }
        if (per_page == 0)
                per_page = 20;
        SIM_FOREACH_VAL(sim_coll(sim, "r2"), bk) {
                const char *name = sim_json_str(bk, "name");

                if (!streq_ptr(sim_json_str(bk, "jurisdiction"), j))
                        continue;
                if (contains && !strstr(name, contains))
                        continue;
                json_object_array_add(all, json_object_get(bk));
        }
        json_object_array_sort(all, cmp_name);
        if (streq_ptr(sim_query(req, "direction"), "desc"))
                array_reverse(all);
        page = json_object_new_array();
        for (i = 0; i < json_object_array_length(all); i++) {
                json_object *b = json_object_array_get_idx(all, i);
                const char *name = sim_json_str(b, "name");
                bool desc = streq_ptr(sim_query(req, "direction"), "desc");

                /* The cursor is the last name of the previous page. */
                if (cursor && *cursor && (desc ? strcmp(name, cursor) >= 0 : strcmp(name, cursor) <= 0))
                        continue;
                if (after && *after && strcmp(name, after) <= 0)
                        continue;
                if (n == (size_t) per_page)
                        break;
                json_object_array_add(page, bucket_out(b));
                n++;
        }
        info = json_object_new_object();
        if (i < json_object_array_length(all) && n > 0)
                sim_set_str(info, "cursor", sim_json_str(json_object_array_get_idx(page, n - 1), "name"));
        sim_set_int(info, "per_page", per_page);
        sim_set_int(info, "count", (int64_t) n);
        json_object_put(all);
        res = json_object_new_object();
        json_object_object_add(res, "buckets", page);
        reply_result(rep, res, info);
}

static void h_r2_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        char key[160];
        json_object *b = bucket_or_404(sim, req, rep, key);

        if (b)
                reply_result(rep, bucket_out(b), NULL);
}

static void h_r2_patch(Sim *sim, const SimRequest *req, SimReply *rep) {
        char key[160];
        json_object *b = bucket_or_404(sim, req, rep, key);
        const char *sc = sim_header(req, "cf-r2-storage-class");

        if (!b)
                return;
        if (!sc || !(streq(sc, "Standard") || streq(sc, "InfrequentAccess")))
                return reply_error(rep, 400, 10021, "cf-r2-storage-class must be Standard or InfrequentAccess");
        sim_set_str(b, "storage_class", sc);
        reply_result(rep, bucket_out(b), NULL);
}

static void h_r2_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        char key[160];

        if (!bucket_or_404(sim, req, rep, key))
                return;
        json_object_object_del(sim_coll(sim, "r2"), key);
        reply_result(rep, NULL, NULL);
}

/* ---- D1 ------------------------------------------------------------------ */

static json_object *d1_by_name(Sim *sim, const char *name) {
        SIM_FOREACH_VAL(sim_coll(sim, "d1"), db)
                if (streq_ptr(sim_json_str(db, "name"), name))
                        return db;
        return NULL;
}

static int read_replication_set(json_object *db, json_object *body, SimReply *rep) {
        json_object *rr = get(body, "read_replication");
        const char *mode;

        if (!rr)
                return 0;
        mode = sim_json_str(rr, "mode");
        if (!mode || !(streq(mode, "auto") || streq(mode, "disabled"))) {
                reply_error(rep, 400, 7400, "read_replication.mode must be auto or disabled");
                return -EINVAL;
        }
        json_object_object_add(db, "read_replication", sim_copy(rr));
        return 0;
}

static void h_d1_create(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *body = body_object(req, rep), *db, *rr;
        const char *name, *j;
        char id[37], now[40];

        if (!body)
                return;
        name = sim_json_str(body, "name");
        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", strna(name));
        if (!name || !*name || strlen(name) > 64) {
                json_object_put(body);
                return reply_error(rep, 400, 7400, "The database name is required (1-64 characters)");
        }
        if (d1_by_name(sim, name)) {
                json_object_put(body);
                return reply_error(rep, 400, 7502, "A database with that name already exists");
        }
        sim_random_uuid(id);
        db = json_object_new_object();
        sim_set_str(db, "uuid", id);
        sim_set_str(db, "name", name);
        sim_set_str(db, "created_at", sim_now(now));
        sim_set_str(db, "version", "production");
        sim_set_int(db, "num_tables", 0);
        sim_set_int(db, "file_size", 0);
        j = sim_json_str(body, "jurisdiction");
        if (j)
                sim_set_str(db, "jurisdiction", j);
        rr = json_object_new_object();
        sim_set_str(rr, "mode", "disabled");
        json_object_object_add(db, "read_replication", rr);
        if (read_replication_set(db, body, rep) < 0) {
                json_object_put(db);
                json_object_put(body);
                return;
        }
        json_object_object_add(sim_coll(sim, "d1"), id, db);
        sim_created(sim, "d1", id);
        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", id);
        json_object_put(body);
        reply_result(rep, sim_copy(db), NULL);
}

static void h_d1_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        const char *name = sim_query(req, "name");
        json_object *a = json_object_new_array();

        SIM_FOREACH_VAL(sim_coll(sim, "d1"), db)
                if (!name || strstr(sim_json_str(db, "name"), name))
                        json_object_array_add(a, json_object_get(db));
        reply_paged(rep, req, a, 1000, 10000);
}

static json_object *d1_or_404(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *db = get(sim_coll(sim, "d1"), req->params[1]);

        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", req->params[1]);
        if (!db)
                reply_error(rep, 404, 7404, "The database %s could not be found", req->params[1]);
        return db;
}

static void h_d1_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *db = d1_or_404(sim, req, rep);

        if (db)
                reply_result(rep, sim_copy(db), NULL);
}

static void h_d1_update(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *db = d1_or_404(sim, req, rep), *body;

        if (!db)
                return;
        body = body_object(req, rep);
        if (!body)
                return;
        if (read_replication_set(db, body, rep) >= 0)
                reply_result(rep, sim_copy(db), NULL);
        json_object_put(body);
}

static void h_d1_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        if (!d1_or_404(sim, req, rep))
                return;
        json_object_object_del(sim_coll(sim, "d1"), req->params[1]);
        reply_result(rep, NULL, NULL);
}

/* ---- Queues --------------------------------------------------------------- */

static bool queue_name_ok(const char *n) {
        size_t len = n ? strlen(n) : 0;

        return len >= 1 && len <= 63 && strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789-_") == len;
}

static json_object *queue_by_name(Sim *sim, const char *name) {
        SIM_FOREACH_VAL(sim_coll(sim, "queues"), q)
                if (streq_ptr(sim_json_str(q, "queue_name"), name))
                        return q;
        return NULL;
}

/* The queue as the API shows it: consumers inline, producers derived
 * from the live versions' queue bindings. */
static json_object *queue_out(Sim *sim, json_object *q) {
        json_object *o = sim_copy(q), *producers = json_object_new_array(), *consumers = get(o, "consumers");
        const char *name = sim_json_str(q, "queue_name");

        json_object_object_foreach(sim_coll(sim, "scripts"), sname, script) {
                json_object *bs = get(sim_script_live_version(script), "bindings");

                for (size_t i = 0; bs && i < json_object_array_length(bs); i++) {
                        json_object *b = json_object_array_get_idx(bs, i), *p;

                        if (!streq_ptr(sim_json_str(b, "type"), "queue") || !streq_ptr(sim_json_str(b, "queue_name"), name))
                                continue;
                        p = json_object_new_object();
                        sim_set_str(p, "type", "worker");
                        sim_set_str(p, "script", sname);
                        json_object_array_add(producers, p);
                        break;
                }
        }
        sim_set_int(o, "producers_total_count", (int64_t) json_object_array_length(producers));
        json_object_object_add(o, "producers", producers);
        sim_set_int(o, "consumers_total_count", consumers ? (int64_t) json_object_array_length(consumers) : 0);
        return o;
}

static json_object *queue_settings_default(void) {
        json_object *s = json_object_new_object();

        sim_set_int(s, "delivery_delay", 0);
        sim_set_bool(s, "delivery_paused", false);
        sim_set_int(s, "message_retention_period", 345600);
        return s;
}

static int queue_settings_apply(json_object *q, json_object *body, SimReply *rep) {
        json_object *s = get(body, "settings"), *cur = get(q, "settings");

        if (!s)
                return 0;
        if (!json_object_is_type(s, json_type_object)) {
                reply_error(rep, 400, 100128, "settings must be an object");
                return -EINVAL;
        }
        json_object_object_foreach(s, k, v) {
                if (!streq(k, "delivery_delay") && !streq(k, "delivery_paused") && !streq(k, "message_retention_period")) {
                        reply_error(rep, 400, 100128, "Unknown queue setting '%s'", k);
                        return -EINVAL;
                }
                json_object_object_add(cur, k, sim_copy(v));
        }
        return 0;
}

static void h_queue_create(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *body = body_object(req, rep), *q, *s;
        const char *name;
        char id[33], now[40];

        if (!body)
                return;
        name = sim_json_str(body, "queue_name");
        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", strna(name));
        if (!queue_name_ok(name)) {
                json_object_put(body);
                return reply_error(rep, 400, 11003, "Invalid queue name");
        }
        if (queue_by_name(sim, name)) {
                json_object_put(body);
                return reply_error(rep, 409, 11009, "A queue with this name already exists");
        }
        sim_random_hex(id, 32);
        q = json_object_new_object();
        sim_set_str(q, "queue_id", id);
        sim_set_str(q, "queue_name", name);
        sim_set_str(q, "created_on", sim_now(now));
        sim_set_str(q, "modified_on", now);
        json_object_object_add(q, "consumers", json_object_new_array());
        s = queue_settings_default();
        json_object_object_add(q, "settings", s);
        if (queue_settings_apply(q, body, rep) < 0) {
                json_object_put(q);
                json_object_put(body);
                return;
        }
        json_object_object_add(sim_coll(sim, "queues"), id, q);
        sim_created(sim, "queue", name);
        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", id);
        json_object_put(body);
        reply_result(rep, queue_out(sim, q), NULL);
}

static enum MHD_Result collect_names(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        if (key && value && streq(key, "name"))
                if (strv_extend(cls, value) < 0)
                        return MHD_NO;
        return MHD_YES;
}

static void h_queue_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        _cleanup_strv_free_ char **names = NULL;
        json_object *a = json_object_new_array();

        (void) MHD_get_connection_values(req->connection, MHD_GET_ARGUMENT_KIND, collect_names, &names);
        SIM_FOREACH_VAL(sim_coll(sim, "queues"), q)
                if (!names || strv_contains(names, sim_json_str(q, "queue_name")))
                        json_object_array_add(a, queue_out(sim, q));
        reply_paged(rep, req, a, 100, 1000);
}

static json_object *queue_or_404(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *q = get(sim_coll(sim, "queues"), req->params[1]);

        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", req->params[1]);
        if (!q)
                reply_error(rep, 404, 11000, "Queue does not exist");
        return q;
}

static void h_queue_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *q = queue_or_404(sim, req, rep);

        if (q)
                reply_result(rep, queue_out(sim, q), NULL);
}

static void h_queue_update(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *q = queue_or_404(sim, req, rep), *body, *other;
        const char *name;
        char now[40];

        if (!q)
                return;
        body = body_object(req, rep);
        if (!body)
                return;
        name = sim_json_str(body, "queue_name");
        if (name) {
                if (!queue_name_ok(name)) {
                        json_object_put(body);
                        return reply_error(rep, 400, 11003, "Invalid queue name");
                }
                other = queue_by_name(sim, name);
                if (other && other != q) {
                        json_object_put(body);
                        return reply_error(rep, 409, 11009, "A queue with this name already exists");
                }
        }
        if (streq(req->method, "PUT")) {
                /* PUT replaces (the API reference: "Updates a Queue. Note
                 * that this endpoint does not support partial updates"):
                 * settings not sent go back to their defaults. */
                json_object *saved = sim_copy(get(q, "settings"));

                json_object_object_add(q, "settings", queue_settings_default());
                if (queue_settings_apply(q, body, rep) < 0) {
                        json_object_object_add(q, "settings", saved);
                        json_object_put(body);
                        return;
                }
                json_object_put(saved);
        } else if (queue_settings_apply(q, body, rep) < 0) {
                json_object_put(body);
                return;
        }
        if (name)
                sim_set_str(q, "queue_name", name);
        sim_set_str(q, "modified_on", sim_now(now));
        json_object_put(body);
        reply_result(rep, queue_out(sim, q), NULL);
}

static void h_queue_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        if (!queue_or_404(sim, req, rep))
                return;
        json_object_object_del(sim_coll(sim, "queues"), req->params[1]);
        reply_result(rep, NULL, NULL);
}

bool sim_script_is_consumer(Sim *sim, const char *script) {
        SIM_FOREACH_VAL(sim_coll(sim, "queues"), q) {
                json_object *cs = get(q, "consumers");

                for (size_t i = 0; cs && i < json_object_array_length(cs); i++)
                        if (streq_ptr(sim_json_str(json_object_array_get_idx(cs, i), "script_name"), script))
                                return true;
        }
        return false;
}

void sim_remove_consumers_of(Sim *sim, const char *script) {
        char now[40];

        sim_now(now);
        SIM_FOREACH_VAL(sim_coll(sim, "queues"), q) {
                json_object *cs = get(q, "consumers");

                for (size_t i = cs ? json_object_array_length(cs) : 0; i > 0; i--)
                        if (streq_ptr(sim_json_str(json_object_array_get_idx(cs, i - 1), "script_name"), script)) {
                                (void) json_object_array_del_idx(cs, i - 1, 1);
                                sim_set_str(q, "modified_on", now);
                        }
        }
}

static json_object *consumer_find(json_object *q, const char *id_or_script, size_t *ret_idx) {
        json_object *cs = get(q, "consumers");

        for (size_t i = 0; cs && i < json_object_array_length(cs); i++) {
                json_object *c = json_object_array_get_idx(cs, i);

                if (streq_ptr(sim_json_str(c, "consumer_id"), id_or_script) ||
                    streq_ptr(sim_json_str(c, "script_name"), id_or_script) ||
                    streq_ptr(sim_json_str(c, "script"), id_or_script)) {
                        if (ret_idx)
                                *ret_idx = i;
                        return c;
                }
        }
        return NULL;
}

/* Validates a consumer body and fills c (new or existing). */
static int consumer_apply(Sim *sim, json_object *q, json_object *c, json_object *body, bool fresh, SimReply *rep) {
        const char *type = sim_json_str(body, "type"), *script = sim_json_str(body, "script_name");
        json_object *settings = get(body, "settings"), *cur;

        if (!script)
                script = sim_json_str(body, "script");
        if (!type)
                type = fresh ? (script ? "worker" : NULL) : sim_json_str(c, "type");
        if (!type || !(streq(type, "worker") || streq(type, "http_pull"))) {
                reply_error(rep, 400, 100127, "Consumer type must be worker or http_pull");
                return -EINVAL;
        }
        if (streq(type, "worker") && !script && fresh) {
                reply_error(rep, 400, 100127, "A worker consumer needs script_name");
                return -EINVAL;
        }
        if (fresh) {
                json_object *cs = get(q, "consumers");

                for (size_t i = 0; i < json_object_array_length(cs); i++) {
                        json_object *o = json_object_array_get_idx(cs, i);

                        if (streq_ptr(sim_json_str(o, "type"), type) &&
                            (streq(type, "http_pull") || streq_ptr(sim_json_str(o, "script_name"), script))) {
                                reply_error(rep, 400, 11004, "A consumer for this queue and %s already exists",
                                            streq(type, "worker") ? script : "http_pull");
                                return -EEXIST;
                        }
                }
        }
        if (settings && !json_object_is_type(settings, json_type_object)) {
                reply_error(rep, 400, 100127, "settings must be an object");
                return -EINVAL;
        }
        if (script && streq(type, "worker") && !get(sim_coll(sim, "scripts"), script)) {
                reply_error(rep, 400, 100127, "Worker '%s' does not exist on your account; upload it before adding it as a consumer",
                            script);
                return -ENOENT;
        }
        sim_set_str(c, "type", type);
        if (script && streq(type, "worker"))
                sim_set_str(c, "script_name", script);
        if (json_object_object_get_ex(body, "dead_letter_queue", NULL))
                json_object_object_add(c, "dead_letter_queue", sim_copy(get(body, "dead_letter_queue")));
        /* An unset dead letter queue reads as "" (the API's consumer shape). */
        if (!sim_json_str(c, "dead_letter_queue"))
                sim_set_str(c, "dead_letter_queue", "");
        cur = get(c, "settings");
        if (!cur) {
                cur = json_object_new_object();
                sim_set_int(cur, "batch_size", 10);
                sim_set_int(cur, "max_retries", 3);
                if (streq(type, "worker")) {
                        sim_set_int(cur, "max_wait_time_ms", 5000);
                        json_object_object_add(cur, "max_concurrency", NULL);
                } else
                        sim_set_int(cur, "visibility_timeout_ms", 30000);
                sim_set_int(cur, "retry_delay", 0);
                json_object_object_add(c, "settings", cur);
        }
        if (settings) {
                json_object_object_foreach(settings, k, v)
                        json_object_object_add(cur, k, sim_copy(v));
        }
        return 0;
}

static void h_consumers_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *q = queue_or_404(sim, req, rep);

        if (q)
                reply_result(rep, sim_copy(get(q, "consumers")), NULL);
}

static void h_consumer_create(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *q = queue_or_404(sim, req, rep), *body, *c;
        char id[33], now[40];

        if (!q)
                return;
        body = body_object(req, rep);
        if (!body)
                return;
        c = json_object_new_object();
        sim_random_hex(id, 32);
        sim_set_str(c, "consumer_id", id);
        sim_set_str(c, "created_on", sim_now(now));
        sim_set_str(c, "queue_id", sim_json_str(q, "queue_id"));
        sim_set_str(c, "queue_name", sim_json_str(q, "queue_name"));
        if (consumer_apply(sim, q, c, body, true, rep) < 0) {
                json_object_put(c);
                json_object_put(body);
                return;
        }
        json_object_array_add(get(q, "consumers"), c);
        sim_set_str(q, "modified_on", now);
        json_object_put(body);
        reply_result(rep, sim_copy(c), NULL);
}

static json_object *consumer_or_404(Sim *sim, const SimRequest *req, SimReply *rep, json_object **ret_q, size_t *ret_idx) {
        json_object *q = queue_or_404(sim, req, rep), *c;

        if (!q)
                return NULL;
        c = consumer_find(q, req->params[2], ret_idx);
        if (!c)
                reply_error(rep, 404, 11005, "Consumer does not exist");
        *ret_q = q;
        return c;
}

static void h_consumer_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *q, *c = consumer_or_404(sim, req, rep, &q, NULL);

        if (c)
                reply_result(rep, sim_copy(c), NULL);
}

static void h_consumer_update(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *q, *c = consumer_or_404(sim, req, rep, &q, NULL), *body, *tmp;

        if (!c)
                return;
        body = body_object(req, rep);
        if (!body)
                return;
        tmp = sim_copy(c);
        if (consumer_apply(sim, q, tmp, body, false, rep) >= 0) {
                size_t idx = 0;

                (void) consumer_find(q, req->params[2], &idx);
                json_object_array_put_idx(get(q, "consumers"), idx, json_object_get(tmp));
                reply_result(rep, sim_copy(tmp), NULL);
        }
        json_object_put(tmp);
        json_object_put(body);
}

static void h_consumer_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        size_t idx = 0;
        json_object *q, *c = consumer_or_404(sim, req, rep, &q, &idx);
        char now[40];

        if (!c)
                return;
        (void) json_object_array_del_idx(get(q, "consumers"), idx, 1);
        sim_set_str(q, "modified_on", sim_now(now));
        reply_result(rep, NULL, NULL);
}

#define A "/accounts/:account_id"
const SimRoute sim_storage_routes[] = {
        { "POST", A "/storage/kv/namespaces", h_kv_create, "kv.namespace" },
        { "GET", A "/storage/kv/namespaces", h_kv_list, "kv.namespace" },
        { "GET", A "/storage/kv/namespaces/:namespace_id", h_kv_get, "kv.namespace" },
        { "PUT", A "/storage/kv/namespaces/:namespace_id", h_kv_rename, "kv.namespace" },
        { "DELETE", A "/storage/kv/namespaces/:namespace_id", h_kv_delete, "kv.namespace" },
        { "POST", A "/r2/buckets", h_r2_create, "r2.bucket" },
        { "GET", A "/r2/buckets", h_r2_list, "r2.bucket" },
        { "GET", A "/r2/buckets/:bucket_name", h_r2_get, "r2.bucket" },
        { "PATCH", A "/r2/buckets/:bucket_name", h_r2_patch, "r2.bucket" },
        { "DELETE", A "/r2/buckets/:bucket_name", h_r2_delete, "r2.bucket" },
        { "POST", A "/d1/database", h_d1_create, "d1.database" },
        { "GET", A "/d1/database", h_d1_list, "d1.database" },
        { "GET", A "/d1/database/:database_id", h_d1_get, "d1.database" },
        { "PUT", A "/d1/database/:database_id", h_d1_update, "d1.database" },
        { "PATCH", A "/d1/database/:database_id", h_d1_update, "d1.database" },
        { "DELETE", A "/d1/database/:database_id", h_d1_delete, "d1.database" },
        { "POST", A "/queues", h_queue_create, "queues.queue" },
        { "GET", A "/queues", h_queue_list, "queues.queue" },
        { "GET", A "/queues/:queue_id", h_queue_get, "queues.queue" },
        { "PUT", A "/queues/:queue_id", h_queue_update, "queues.queue" },
        { "PATCH", A "/queues/:queue_id", h_queue_update, "queues.queue" },
        { "DELETE", A "/queues/:queue_id", h_queue_delete, "queues.queue" },
        { "GET", A "/queues/:queue_id/consumers", h_consumers_list, "queues.consumer" },
        { "POST", A "/queues/:queue_id/consumers", h_consumer_create, "queues.consumer" },
        { "GET", A "/queues/:queue_id/consumers/:consumer_id", h_consumer_get, "queues.consumer" },
        { "PUT", A "/queues/:queue_id/consumers/:consumer_id", h_consumer_update, "queues.consumer" },
        { "DELETE", A "/queues/:queue_id/consumers/:consumer_id", h_consumer_delete, "queues.consumer" },
        {}
};
#undef A
