/* sim-secrets-store.c: Secrets Store stores and secrets (cloudflare-api.md
 * §4.5). Values are write-only: the state keeps "sha256:<hex>" only and
 * no response carries it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sim-http.h"
#include "sim-json.h"
#include "util.h"

#define SECRET_VALUE_MAX (64 * 1024)

static json_object *get(json_object *o, const char *key) {
        json_object *v = NULL;

        if (o)
                (void) json_object_object_get_ex(o, key, &v);
        return v;
}

static json_object *store_out(json_object *st) {
        json_object *o = sim_copy(st);

        json_object_object_del(o, "secrets");
        return o;
}

static json_object *secret_out(json_object *s) {
        json_object *o = sim_copy(s);

        json_object_object_del(o, "value");
        return o;
}

static json_object *store_create_one(Sim *sim, json_object *body, SimReply *rep) {
        const char *name = sim_json_str(body, "name");
        json_object *st;
        char id[33], now[40];

        if (!name || !*name || strlen(name) > 255) {
                reply_error(rep, 400, 1001, "store_name_empty");
                return NULL;
        }
        SIM_FOREACH_VAL(sim_coll(sim, "stores"), v)
                if (streq_ptr(sim_json_str(v, "name"), name)) {
                        reply_error(rep, 409, 1003, "store_name_already_exists");
                        return NULL;
                }
        if (sim->max_stores > 0 && json_object_object_length(sim_coll(sim, "stores")) >= (int) sim->max_stores) {
                /* Secrets Store docs: "there can only be one store per account". */
                reply_error(rep, 400, 1003, "maximum_stores_exceeded (this account may have %u)", sim->max_stores);
                return NULL;
        }
        sim_random_hex(id, 32);
        st = json_object_new_object();
        sim_set_str(st, "id", id);
        sim_set_str(st, "name", name);
        sim_set_str(st, "account_id", sim->account_id);
        sim_set_str(st, "created", sim_now(now));
        sim_set_str(st, "modified", now);
        json_object_object_add(st, "secrets", json_object_new_object());
        json_object_object_add(sim_coll(sim, "stores"), id, st);
        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", id);
        return st;
}

static void h_store_create(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *body = sim_body_json(req, rep), *st;

        if (!body)
                return;
        if (json_object_is_type(body, json_type_array)) {
                /* The pre-2026 form: an array in, an array out. */
                json_object *out = json_object_new_array();

                if (json_object_array_length(body) != 1) {
                        json_object_put(out);
                        json_object_put(body);
                        return reply_error(rep, 400, 10021, "Expected exactly one store");
                }
                st = store_create_one(sim, json_object_array_get_idx(body, 0), rep);
                if (st) {
                        json_object_array_add(out, store_out(st));
                        reply_result(rep, out, NULL);
                } else
                        json_object_put(out);
        } else if (json_object_is_type(body, json_type_object)) {
                st = store_create_one(sim, body, rep);
                if (st)
                        reply_result(rep, store_out(st), NULL);
        } else
                reply_error(rep, 400, 10021, "Expected {\"name\": ...}");
        json_object_put(body);
}

static int cmp_key(const void *a, const void *b, const char *key) {
        const char *x = sim_json_str(*(json_object *const *) a, key), *y = sim_json_str(*(json_object *const *) b, key);

        return strcmp(x ? x : "", y ? y : "");
}
static int cmp_name(const void *a, const void *b) {
        return cmp_key(a, b, "name");
}
static int cmp_created(const void *a, const void *b) {
        return cmp_key(a, b, "created");
}
static int cmp_modified(const void *a, const void *b) {
        return cmp_key(a, b, "modified");
}
static int cmp_comment(const void *a, const void *b) {
        return cmp_key(a, b, "comment");
}

static void sort_list(const SimRequest *req, json_object *a) {
        const char *order = sim_query(req, "order");

        if (streq_ptr(order, "name"))
                json_object_array_sort(a, cmp_name);
        else if (streq_ptr(order, "created"))
                json_object_array_sort(a, cmp_created);
        else if (streq_ptr(order, "modified"))
                json_object_array_sort(a, cmp_modified);
        else if (streq_ptr(order, "comment"))
                json_object_array_sort(a, cmp_comment);
        if (streq_ptr(sim_query(req, "direction"), "desc")) {
                size_t n = json_object_array_length(a);

                for (size_t i = 0; i < n / 2; i++) {
                        json_object *x = json_object_get(json_object_array_get_idx(a, i));
                        json_object *y = json_object_get(json_object_array_get_idx(a, n - 1 - i));

                        json_object_array_put_idx(a, i, y);
                        json_object_array_put_idx(a, n - 1 - i, x);
                }
        }
}

static void h_store_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *a = json_object_new_array();

        SIM_FOREACH_VAL(sim_coll(sim, "stores"), st)
                json_object_array_add(a, store_out(st));
        sort_list(req, a);
        reply_paged(rep, req, a, 20, 1000);
}

static json_object *store_or_404(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *st = get(sim_coll(sim, "stores"), req->params[1]);

        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", req->params[1]);
        if (!st)
                reply_error(rep, 404, 1001, "store_not_found");
        return st;
}

static void h_store_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *st = store_or_404(sim, req, rep);

        if (st)
                reply_result(rep, store_out(st), NULL);
}

static void h_store_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *st = store_or_404(sim, req, rep);

        if (!st)
                return;
        if (json_object_object_length(get(st, "secrets")) > 0 && !sim_query_bool(req, "force"))
                return reply_error(rep, 409, 1002, "store_not_empty");
        json_object_object_del(sim_coll(sim, "stores"), req->params[1]);
        reply_result(rep, NULL, NULL);
}

static const char *const scopes_allowed[] = { "workers", "ai_gateway", "dex", "access", "containers", "websearch" };

static int scopes_check(json_object *scopes, SimReply *rep) {
        if (!scopes)
                return 0;
        if (!json_object_is_type(scopes, json_type_array))
                goto bad;
        for (size_t i = 0; i < json_object_array_length(scopes); i++) {
                json_object *s = json_object_array_get_idx(scopes, i);
                bool ok = false;

                if (!json_object_is_type(s, json_type_string))
                        goto bad;
                for (size_t k = 0; k < ELEMENTSOF(scopes_allowed); k++)
                        if (streq(json_object_get_string(s), scopes_allowed[k]))
                                ok = true;
                if (!ok)
                        goto bad;
        }
        return 0;
bad:
        reply_error(rep, 400, 1001, "secret_scope_invalid");
        return -EINVAL;
}

static json_object *secret_by_name(json_object *st, const char *name) {
        SIM_FOREACH_VAL(get(st, "secrets"), s)
                if (streq_ptr(sim_json_str(s, "name"), name))
                        return s;
        return NULL;
}

static int value_set(json_object *s, json_object *body, SimReply *rep) {
        json_object *v = get(body, "value");
        char tag[72];

        if (!v)
                return 0;
        if (!json_object_is_type(v, json_type_string)) {
                reply_error(rep, 400, 10021, "value must be a string");
                return -EINVAL;
        }
        if (json_object_get_string_len(v) > SECRET_VALUE_MAX) {
                reply_error(rep, 400, 10021, "secret_value_too_large (max 64 KiB)");
                return -E2BIG;
        }
        sim_set_str(s, "value", sim_sha256_tag(json_object_get_string(v), (size_t) json_object_get_string_len(v), tag));
        return 0;
}

/* The body of a create: one {name, value, scopes} or an array of 1 to
 * 100; NULL after replying with the error. */
static json_object *secrets_create_list(const SimRequest *req, SimReply *rep) {
        json_object *body = sim_body_json(req, rep), *list;

        if (!body)
                return NULL;
        if (json_object_is_type(body, json_type_object)) {
                list = json_object_new_array();
                json_object_array_add(list, json_object_get(body));
        } else if (json_object_is_type(body, json_type_array))
                list = json_object_get(body);
        else {
                json_object_put(body);
                reply_error(rep, 400, 10021, "Expected an array of {name, value, scopes}");
                return NULL;
        }
        json_object_put(body);
        if (json_object_array_length(list) == 0 || json_object_array_length(list) > 100) {
                json_object_put(list);
                reply_error(rep, 400, 10021, "Expected 1 to 100 secrets");
                return NULL;
        }
        return list;
}

/* Every secret of list is valid, new in store st and in list, and the
 * account's limit holds: all are checked before any is created. False
 * after replying with the error. */
static bool secrets_create_check(Sim *sim, json_object *st, json_object *list, SimReply *rep) {
        size_t total = json_object_array_length(list);

        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *e = json_object_array_get_idx(list, i), *tmp;
                const char *name = sim_json_str(e, "name");

                if (!name || !*name || strlen(name) > 255) {
                        reply_error(rep, 400, 1001, "secret_name_empty");
                        return false;
                }
                if (!sim_json_str(e, "value")) {
                        reply_error(rep, 400, 10021, "secret '%s' needs a value", name);
                        return false;
                }
                tmp = json_object_new_object();
                if (scopes_check(get(e, "scopes"), rep) < 0 || value_set(tmp, e, rep) < 0) {
                        json_object_put(tmp);
                        return false;
                }
                json_object_put(tmp);
                if (secret_by_name(st, name)) {
                        reply_error(rep, 409, 1003, "secret_name_already_exists");
                        return false;
                }
                for (size_t k = 0; k < i; k++)
                        if (streq_ptr(sim_json_str(json_object_array_get_idx(list, k), "name"), name)) {
                                reply_error(rep, 409, 1003, "secret_name_already_exists");
                                return false;
                        }
        }
        if (sim->max_store_secrets == 0)
                return true;
        /* Secrets Store docs: "up to 100 secrets per account". */
        SIM_FOREACH_VAL(sim_coll(sim, "stores"), so)
                total += (size_t) json_object_object_length(get(so, "secrets"));
        if (total > sim->max_store_secrets) {
                reply_error(rep, 400, 1003, "maximum_secrets_exceeded (this account may have %u)",
                            sim->max_store_secrets);
                return false;
        }
        return true;
}

/* Secret e created in store st; returns it (a reference the caller owns). */
static json_object *secret_create(Sim *sim, json_object *st, json_object *e, const char *now, SimReply *rep) {
        json_object *s = json_object_new_object();
        char id[33], key[600];

        sim_random_hex(id, 32);
        sim_set_str(s, "id", id);
        sim_set_str(s, "name", sim_json_str(e, "name"));
        sim_set_str(s, "store_id", sim_json_str(st, "id"));
        sim_set_str(s, "status", "active");
        sim_set_str(s, "created", now);
        sim_set_str(s, "modified", now);
        sim_set_str(s, "comment", sim_json_str(e, "comment") ? sim_json_str(e, "comment") : "");
        json_object_object_add(s, "scopes", get(e, "scopes") ? sim_copy(get(e, "scopes")) : json_object_new_array());
        (void) value_set(s, e, rep);
        json_object_object_add(get(st, "secrets"), id, s);
        snprintf(key, sizeof(key), "%s/%s", sim_json_str(st, "id"), sim_json_str(e, "name"));
        sim_created(sim, "store_secret", key);
        return json_object_get(s);
}

static void h_secrets_create(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *st = store_or_404(sim, req, rep), *list, *out;
        char now[40];

        if (!st)
                return;
        list = secrets_create_list(req, rep);
        if (!list)
                return;
        if (!secrets_create_check(sim, st, list, rep)) {
                json_object_put(list);
                return;
        }
        out = json_object_new_array();
        sim_now(now);
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *s = secret_create(sim, st, json_object_array_get_idx(list, i), now, rep);

                json_object_array_add(out, secret_out(s));
                json_object_put(s);
        }
        sim_set_str(st, "modified", now);
        json_object_put(list);
        reply_result(rep, out, NULL);
}

static void h_secrets_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *st = store_or_404(sim, req, rep), *a;
        const char *search = sim_query(req, "search");

        if (!st)
                return;
        a = json_object_new_array();
        SIM_FOREACH_VAL(get(st, "secrets"), s)
                if (!search || strstr(sim_json_str(s, "name"), search))
                        json_object_array_add(a, secret_out(s));
        sort_list(req, a);
        reply_paged(rep, req, a, 20, 1000);
}

static json_object *secret_or_404(Sim *sim, const SimRequest *req, SimReply *rep, json_object **ret_store) {
        json_object *st = store_or_404(sim, req, rep), *s;

        if (!st)
                return NULL;
        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", req->params[2]);
        s = get(get(st, "secrets"), req->params[2]);
        if (!s)
                reply_error(rep, 404, 1001, "secret_not_found");
        *ret_store = st;
        return s;
}

static void h_secret_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *st, *s = secret_or_404(sim, req, rep, &st);

        if (s)
                reply_result(rep, secret_out(s), NULL);
}

static void h_secret_patch(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *st, *s = secret_or_404(sim, req, rep, &st), *body, *tmp;
        char now[40];

        if (!s)
                return;
        body = sim_body_json(req, rep);
        if (!body)
                return;
        if (!json_object_is_type(body, json_type_object)) {
                json_object_put(body);
                return reply_error(rep, 400, 10021, "Expected {value?, scopes?, comment?}");
        }
        tmp = sim_copy(s);
        if (scopes_check(get(body, "scopes"), rep) < 0 || value_set(tmp, body, rep) < 0) {
                json_object_put(tmp);
                json_object_put(body);
                return;
        }
        if (get(body, "scopes"))
                json_object_object_add(tmp, "scopes", sim_copy(get(body, "scopes")));
        if (sim_json_str(body, "comment"))
                sim_set_str(tmp, "comment", sim_json_str(body, "comment"));
        sim_set_str(tmp, "modified", sim_now(now));
        json_object_object_add(get(st, "secrets"), req->params[2], tmp);
        json_object_put(body);
        reply_result(rep, secret_out(tmp), NULL);
}

static void h_secret_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *st, *s = secret_or_404(sim, req, rep, &st);

        if (!s)
                return;
        json_object_object_del(get(st, "secrets"), req->params[2]);
        reply_result(rep, NULL, NULL);
}

static void h_secret_duplicate(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *st, *s = secret_or_404(sim, req, rep, &st), *body, *n;
        const char *name;
        char id[33], now[40];

        if (!s)
                return;
        body = sim_body_json(req, rep);
        if (!body)
                return;
        name = sim_json_str(body, "name");
        if (!name || !*name) {
                json_object_put(body);
                return reply_error(rep, 400, 1001, "secret_name_empty");
        }
        if (secret_by_name(st, name)) {
                json_object_put(body);
                return reply_error(rep, 409, 1003, "secret_name_already_exists");
        }
        if (scopes_check(get(body, "scopes"), rep) < 0) {
                json_object_put(body);
                return;
        }
        n = sim_copy(s);
        sim_random_hex(id, 32);
        sim_set_str(n, "id", id);
        sim_set_str(n, "name", name);
        sim_set_str(n, "created", sim_now(now));
        sim_set_str(n, "modified", now);
        if (get(body, "scopes"))
                json_object_object_add(n, "scopes", sim_copy(get(body, "scopes")));
        if (sim_json_str(body, "comment"))
                sim_set_str(n, "comment", sim_json_str(body, "comment"));
        json_object_object_add(get(st, "secrets"), id, n);
        json_object_put(body);
        reply_result(rep, secret_out(n), NULL);
}

#define A "/accounts/:account_id/secrets_store/stores"
/* GET /secrets_store/quota: {"secrets": {"quota", "usage"}} (the API
 * reference's QuotaGetResponse); quota 0 when --max-store-secrets 0. */
static void h_quota(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *o = json_object_new_object(), *s = json_object_new_object();
        int64_t usage = 0;

        SIM_FOREACH_VAL(sim_coll(sim, "stores"), st)
                usage += json_object_object_length(get(st, "secrets"));
        sim_set_int(s, "quota", sim->max_store_secrets);
        sim_set_int(s, "usage", usage);
        json_object_object_add(o, "secrets", s);
        reply_result(rep, o, NULL);
}

const SimRoute sim_secrets_store_routes[] = {
        { "GET", "/accounts/:account_id/secrets_store/quota", h_quota, "secrets_store.store" },
        { "POST", A, h_store_create, "secrets_store.store" },
        { "GET", A, h_store_list, "secrets_store.store" },
        { "GET", A "/:store_id", h_store_get, "secrets_store.store" },
        { "DELETE", A "/:store_id", h_store_delete, "secrets_store.store" },
        { "POST", A "/:store_id/secrets", h_secrets_create, "secrets_store.secret" },
        { "GET", A "/:store_id/secrets", h_secrets_list, "secrets_store.secret" },
        { "GET", A "/:store_id/secrets/:secret_id", h_secret_get, "secrets_store.secret" },
        { "PATCH", A "/:store_id/secrets/:secret_id", h_secret_patch, "secrets_store.secret" },
        { "DELETE", A "/:store_id/secrets/:secret_id", h_secret_delete, "secrets_store.secret" },
        { "POST", A "/:store_id/secrets/:secret_id/duplicate", h_secret_duplicate, "secrets_store.secret" },
        {}
};
#undef A
