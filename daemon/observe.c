/* observe.c: see observe.h. */
#include <stdio.h>
#include <string.h>

#include "binding-kinds.h"
#include "cfapi.h"
#include "cfreq.h"
#include "observe.h"
#include "util.h"

typedef struct Observer Observer;

typedef enum ReqType {
        REQ_SCRIPTS,
        REQ_AUDIT,
        REQ_LIST,
        REQ_STORE_SECRETS,
        REQ_DEPLOYMENTS,
        REQ_VERSION,
        REQ_SETTINGS,
        REQ_SCHEDULES,
        REQ_SUBDOMAIN,
} ReqType;

typedef struct Req {
        Observer *o;
        ReqType type;
        ResourceKind kind;
        char *worker;           /* detail requests */
        char *store_id;
        char *jurisdiction;     /* R2 lists: sent as cf-r2-jurisdiction */
        size_t n_workers_before;        /* scripts: the LiveState's workers when asked */
} Req;

struct Observer {
        CfApi *api;
        const Generation *g;
        const Ledger *ledger;
        uint64_t audit_last_usec;
        char **audit_seen;
        char **own_writes;
        char **refresh;
        char **rotation;
        bool audit_gap;
        char *own_token_id;     /* ObserveRequest.audit_own_token_id */
        char **token_ids;       /* distinct actor.token_id values read (AuditEntry.token_id) */
        size_t n_token_ids;
        bool audit_failed;      /* one of the audit reads failed (there may be two) */
        bool keep_seen;         /* ObserveRequest.audit_keep_seen */
        CfPriority priority;
        uint64_t now_usec;

        ObserveResult res;
        AuditEntry *audit;      /* the feed's entries, parsed once as they stream in */
        size_t n_audit, n_audit_alloc;
        unsigned pending;
        int phase;
        bool dead;
        bool finished;
        observe_done_t done;
        void *userdata;
};

void observe_result_done(ObserveResult *r) {
        free(r->message);
        r->message = NULL;
        r->live = live_state_free(r->live);
        r->audit_seen = strv_free(r->audit_seen);
        r->own_writes_left = strv_free(r->own_writes_left);
        free(r->audit_message);
        r->audit_message = NULL;
        r->own_token_id = mfree(r->own_token_id);
}

static void observer_destroy(Observer *o) {
        observe_result_done(&o->res);
        strv_free(o->audit_seen);
        strv_free(o->own_writes);
        strv_free(o->refresh);
        strv_free(o->rotation);
        free(o->own_token_id);
        strv_free(o->token_ids);
        for (size_t i = 0; i < o->n_audit; i++)
                audit_entry_done(&o->audit[i]);
        free(o->audit);
        free(o);
}

Observer *observe_free(Observer *o) {
        if (!o)
                return NULL;
        o->dead = true;
        if (o->pending == 0)
                observer_destroy(o);
        return NULL;
}

static json_object *jget(json_object *o, const char *k) {
        json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, k, &v))
                return NULL;
        return v;
}

/* ---- parsers ---- */

int observe_parse_script_list(json_object *result, LiveState *live) {
        int r;

        if (!result || !json_object_is_type(result, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(result); i++) {
                r = observe_parse_script(json_object_array_get_idx(result, i), live);
                if (r < 0)
                        return r;
        }
        live->workers_listed = true;
        return 0;
}

int observe_parse_script(json_object *s, LiveState *live) {
        const char *name = json_get_str(s, "id") ?: json_get_str(s, "script_name");
        LiveWorker *w;

        if (!name)
                return 0; /* tolerate odd entries */
        w = live_state_find_worker(live, name);
        if (!w)
                w = live_state_add_worker(live, name);
        if (!w)
                return -ENOMEM;
        if (free_and_strdup(&w->etag, json_get_str(s, "etag")) < 0 || free_and_strdup(&w->modified_on, json_get_str(s, "modified_on")) < 0 ||
            free_and_strdup(&w->migration_tag, json_get_str(s, "migration_tag")) < 0 ||
            free_and_strdup(&w->compatibility_date, json_get_str(s, "compatibility_date")) < 0)
                return -ENOMEM;
        {
                json_object *t = jget(s, "tags"), *lp = jget(s, "logpush"), *ob = jget(s, "observability"),
                            *fl = jget(s, "compatibility_flags");

                /* Flags: only to show a plan's change, never a reason. */
                w->compatibility_flags = strv_free(w->compatibility_flags);
                w->flags_known = false;
                if (fl && json_object_is_type(fl, json_type_array)) {
                        w->compatibility_flags = calloc(1, sizeof(char *));
                        if (!w->compatibility_flags)
                                return -ENOMEM;
                        for (size_t k = 0; k < json_object_array_length(fl); k++) {
                                json_object *x = json_object_array_get_idx(fl, k);

                                if (json_object_is_type(x, json_type_string) &&
                                    strv_extend(&w->compatibility_flags, json_object_get_string(x)) < 0)
                                        return -ENOMEM;
                        }
                        strv_sort_uniq(w->compatibility_flags);
                        w->flags_known = true;
                }

                w->tags = strv_free(w->tags);
                w->tags_known = false;
                if (t && json_object_is_type(t, json_type_array)) {
                        w->tags = calloc(1, sizeof(char *));
                        if (!w->tags)
                                return -ENOMEM;
                        for (size_t k = 0; k < json_object_array_length(t); k++) {
                                json_object *x = json_object_array_get_idx(t, k);

                                if (json_object_is_type(x, json_type_string) &&
                                    strv_extend(&w->tags, json_object_get_string(x)) < 0)
                                        return -ENOMEM;
                        }
                        strv_sort_uniq(w->tags);
                        w->tags_known = true;
                } else if (t && json_object_is_type(t, json_type_null))
                        w->tags_known = true;
                w->logpush = lp && json_object_is_type(lp, json_type_boolean) ? json_object_get_boolean(lp) : -1;
                ob = ob ? jget(ob, "enabled") : NULL;
                w->observability = ob && json_object_is_type(ob, json_type_boolean) ? json_object_get_boolean(ob)
                                                                                     : -1;
        }
        return 0;
}

int observe_parse_bindings(json_object *bindings, LiveWorker *lw) {
        for (size_t i = 0; i < lw->n_bindings; i++) {
                free(lw->bindings[i].name);
                free(lw->bindings[i].type);
                free(lw->bindings[i].canon);
        }
        free(lw->bindings);
        lw->bindings = NULL;
        lw->n_bindings = 0;
        lw->secret_names = strv_free(lw->secret_names);
        lw->secret_names = calloc(1, sizeof(char *));
        if (!lw->secret_names)
                return -ENOMEM;
        if (!bindings || !json_object_is_type(bindings, json_type_array))
                return 0;
        for (size_t i = 0; i < json_object_array_length(bindings); i++) {
                json_object *b = json_object_array_get_idx(bindings, i);
                const char *name = json_get_str(b, "name"), *type = json_get_str(b, "type");
                _cleanup_free_ char *canon = NULL;
                int r;

                if (!name)
                        continue;
                r = plan_binding_canon_json(b, lw->name, &canon);
                if (r < 0)
                        return r;
                if (!canon) {
                        if (strv_extend(&lw->secret_names, name) < 0)
                                return -ENOMEM;
                        continue;
                }
                if (!live_worker_add_binding(lw, name, type, canon))
                        return -ENOMEM;
        }
        live_worker_sort(lw);
        return 0;
}

int observe_parse_resources(ResourceKind kind, json_object *items, LiveState *live, const char *store_id) {
        int r;

        if (!items)
                items = NULL;
        else if (!json_object_is_type(items, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; items && i < json_object_array_length(items); i++) {
                r = observe_parse_resource(kind, json_object_array_get_idx(items, i), live, store_id, NULL);
                if (r < 0)
                        return r;
        }
        live->listed[kind] = true;
        return 0;
}

int observe_parse_resource(ResourceKind kind, json_object *x, LiveState *live, const char *store_id,
                           LiveResource **ret) {
        if (ret)
                *ret = NULL;
        const char *id = NULL, *name = NULL, *modified = NULL;
        LiveResource *r;

        switch (kind) {
        case RESOURCE_KV_NAMESPACE:
                id = json_get_str(x, "id");
                name = json_get_str(x, "title");
                break;
        case RESOURCE_R2_BUCKET:
                id = name = json_get_str(x, "name");
                break;
        case RESOURCE_D1_DATABASE:
                id = json_get_str(x, "uuid") ?: json_get_str(x, "id");
                name = json_get_str(x, "name");
                break;
        case RESOURCE_QUEUE:
                id = json_get_str(x, "queue_id") ?: json_get_str(x, "id");
                name = json_get_str(x, "queue_name");
                modified = json_get_str(x, "modified_on");
                break;
        case RESOURCE_SECRETS_STORE:
                id = json_get_str(x, "id");
                name = json_get_str(x, "name");
                modified = json_get_str(x, "modified");
                break;
        case RESOURCE_SECRETS_STORE_SECRET:
                id = json_get_str(x, "id");
                name = json_get_str(x, "name");
                modified = json_get_str(x, "modified");
                if (json_get_str(x, "status") && streq(json_get_str(x, "status"), "deleted"))
                        return 0;
                break;
        default:
                return -EINVAL;
        }
        if (!id || !name)
                return 0;
        r = live_state_add_resource(live, kind, id, name);
        if (!r)
                return -ENOMEM;
        if (free_and_strdup(&r->modified, modified) < 0)
                return -ENOMEM;
        if (kind == RESOURCE_SECRETS_STORE_SECRET &&
            free_and_strdup(&r->store_id, json_get_str(x, "store_id") ?: store_id) < 0)
                return -ENOMEM;
        if (kind == RESOURCE_QUEUE) {
                json_object *cs = jget(x, "consumers");

                for (size_t j = 0; cs && json_object_is_type(cs, json_type_array) &&
                                   j < json_object_array_length(cs);
                     j++) {
                        json_object *c = json_object_array_get_idx(cs, j);
                        const char *script = json_get_str(c, "script_name") ?: json_get_str(c, "script") ?: json_get_str(c, "service");
                        _cleanup_free_ char *canon = NULL;

                        if (!script)
                                continue;
                        canon = plan_consumer_canon_json(c);
                        if (!canon)
                                return -ENOMEM;
                        if (!live_resource_add_consumer(r, script, json_get_str(c, "consumer_id") ?: json_get_str(c, "id"),
                                                        canon))
                                return -ENOMEM;
                }
        }
        if (ret)
                *ret = r;
        return 0;
}

bool observe_audit_matches(const char *method, const char *uri, const char *write) {
        const char *sp = write ? strchr(write, ' ') : NULL, *q, *path;
        size_t n, pn;

        if (!method || !uri || !sp || strlen(method) != (size_t) (sp - write) ||
            strncmp(write, method, (size_t) (sp - write)) != 0)
                return false;
        path = sp + 1;
        pn = strlen(path);
        q = strchr(uri, '?');
        n = q ? (size_t) (q - uri) : strlen(uri);
        return n > pn && uri[n - pn - 1] == '/' && strncmp(uri + n - pn, path, pn) == 0;
}

char *observe_audit_write_key(const char *method, const char *uri) {
        const char *p, *q;
        char *k;

        if (!method || !uri)
                return NULL;
        p = strstr(uri, "/accounts/");
        if (p) {
                p += strlen("/accounts/");
                p += strcspn(p, "/?");
                if (*p == '/')
                        p++;
        } else
                p = uri + (*uri == '/');
        q = p + strcspn(p, "?#");
        if (asprintf(&k, "%s %.*s", method, (int) (q - p), p) < 0)
                return NULL;
        return k;
}

json_object *observe_write_counts(char * const *writes) {
        json_object *c = json_object_new_object();

        for (size_t i = 0; c && writes && writes[i]; i++) {
                json_object *v;
                int n = json_object_object_get_ex(c, writes[i], &v) ? json_object_get_int(v) : 0;

                json_object_object_add(c, writes[i], json_object_new_int(n + 1));
        }
        return c;
}

bool observe_write_take(json_object *counts, const char *key) {
        json_object *v;

        if (!counts || !key || !json_object_object_get_ex(counts, key, &v) || json_object_get_int(v) <= 0)
                return false;
        json_object_set_int(v, json_object_get_int(v) - 1);
        return true;
}

int observe_write_leftovers(json_object *counts, char ***l) {
        if (!counts)
                return 0;
        json_object_object_foreach(counts, k, v)
                for (int i = 0; i < json_object_get_int(v); i++)
                        if (strv_extend(l, k) < 0)
                                return -ENOMEM;
        return 0;
}

int observe_audit_script(const char *uri, char **ret, bool *ret_secrets) {
        const char *p, *end;
        size_t n;

        *ret = NULL;
        if (!uri)
                return 0;
        p = strstr(uri, "/workers/scripts/");
        if (!p)
                return 0;
        p += strlen("/workers/scripts/");
        n = strcspn(p, "/?#");
        if (n == 0)
                return 0;
        end = p + n;
        *ret = cfapi_unescape(p, n);
        if (!*ret)
                return -ENOMEM;
        if (ret_secrets)
                *ret_secrets = startswith(end, "/secrets");
        return 1;
}

void audit_entry_done(AuditEntry *e) {
        free(e->id);
        free(e->key);
        free(e->script);
        *e = (AuditEntry) {};
}

const char *observe_audit_token_id(json_object *x) {
        return json_get_str(jget(x, "actor"), "token_id");
}

int observe_token_agree(char **id, bool *mixed, const char *token_id) {
        if (*mixed)
                return 0;
        if (!token_id || (*id && !streq(*id, token_id))) {
                *mixed = true;
                return 0;
        }
        if (!*id) {
                *id = strdup(token_id);
                if (!*id)
                        return -ENOMEM;
        }
        return 0;
}

int observe_audit_entry(json_object *x, const char *own_token_id, AuditEntry *ret) {
        _cleanup_(audit_entry_done) AuditEntry a = {};
        const char *id = json_get_str(x, "id"), *method = json_get_str(jget(x, "raw"), "method"), *uri = json_get_str(jget(x, "raw"), "uri");
        int r;

        a.own_token = own_token_id && streq_ptr(json_get_str(jget(x, "actor"), "token_id"), own_token_id);
        a.mine = !own_token_id || a.own_token;
        if (id) {
                a.id = strdup(id);
                if (!a.id)
                        return -ENOMEM;
        }
        a.get = method && streq(method, "GET");
        if (!a.get) {
                if (method && uri) {
                        a.key = observe_audit_write_key(method, uri);
                        if (!a.key)
                                return -ENOMEM;
                }
                r = observe_audit_script(uri, &a.script, &a.secrets);
                if (r < 0)
                        return r;
        }
        *ret = a;
        a = (AuditEntry) {};
        return 1;
}

/* ---- requests ---- */

static void on_reply(CfApi *api, const CfReply *reply, void *userdata);

static void fail(Observer *o, int error, const char *what, const char *msg) {
        if (o->res.error)
                return;
        o->res.error = error;
        if (asprintf(&o->res.message, "%s: %s", what, msg ?: strerror(-error)) < 0)
                o->res.message = NULL;
}

/* The observer's copy of an entry's token id: the distinct ids of one
 * read are few (bindery's, a dashboard user's); past
 * OBSERVE_TOKEN_IDS_MAX, NULL (never taken for bindery's). */
#define OBSERVE_TOKEN_IDS_MAX 32
static int intern_token_id(Observer *o, const char *id, const char **ret) {
        *ret = NULL;
        if (!id)
                return 0;
        for (size_t i = 0; i < o->n_token_ids; i++)
                if (streq(o->token_ids[i], id)) {
                        *ret = o->token_ids[i];
                        return 0;
                }
        if (o->n_token_ids == OBSERVE_TOKEN_IDS_MAX)
                return 0;
        if (strv_extend_n(&o->token_ids, &o->n_token_ids, id) < 0)
                return -ENOMEM;
        *ret = o->token_ids[o->n_token_ids - 1];
        return 0;
}

/* One item of a streamed list (scripts, resources, store secrets) into
 * the LiveState as it is decoded: the list is never a tree in memory. */
static int on_item(json_object *item, void *userdata) {
        Req *q = userdata;
        Observer *o = q->o;
        LiveResource *res = NULL;
        int r;

        if (o->dead)
                return 0;
        if (q->type == REQ_SCRIPTS)
                return observe_parse_script(item, o->res.live);
        if (q->type == REQ_AUDIT) {
                AuditEntry a;

                r = observe_audit_entry(item, o->own_token_id, &a);
                if (r <= 0)
                        return r;
                r = intern_token_id(o, observe_audit_token_id(item), &a.token_id);
                if (r < 0) {
                        audit_entry_done(&a);
                        return r;
                }
                if (o->n_audit == o->n_audit_alloc) {
                        size_t n = o->n_audit_alloc ? o->n_audit_alloc * 2 : 64;
                        AuditEntry *p = reallocarray(o->audit, n, sizeof(AuditEntry));

                        if (!p) {
                                audit_entry_done(&a);
                                return -ENOMEM;
                        }
                        o->audit = p;
                        o->n_audit_alloc = n;
                }
                o->audit[o->n_audit++] = a;
                return 0;
        }
        r = observe_parse_resource(q->kind, item, o->res.live, q->store_id, &res);
        if (r >= 0 && res && q->jurisdiction)
                r = free_and_strdup(&res->jurisdiction, q->jurisdiction);
        return r;
}

/* The scripts list is read again from its start (a broken connection
 * mid-body): the workers it added so far go. */
static void on_restart(void *userdata) {
        Req *q = userdata;

        if (!q->o->dead)
                live_state_truncate_workers(q->o->res.live, q->n_workers_before);
}

static int submit_ex(Observer *o, ReqType type, ResourceKind kind, const char *path, const char *query,
                     CfPaging paging, const char *items_key, const char *worker, const char *store_id,
                     const char *jurisdiction) {
        Req *q = calloc(1, sizeof(Req));
        _cleanup_free_ char *hdr = NULL;
        const char *hdrs[2] = {};
        CfRequest r = {
                .method = "GET",
                .path = path,
                .query = query,
                .priority = o->priority,
                .paging = paging,
                .items_key = items_key,
                .each = type == REQ_SCRIPTS || type == REQ_LIST || type == REQ_STORE_SECRETS || type == REQ_AUDIT ?
                        on_item : NULL,
                /* The list that grows with the account is read as it
                 * arrives; the paged ones come 100 or 1,000 at a time. */
                .restart = type == REQ_SCRIPTS ? on_restart : NULL,
        };
        int k;

        if (!q)
                return -ENOMEM;
        q->o = o;
        q->type = type;
        q->kind = kind;
        q->n_workers_before = o->res.live ? o->res.live->n_workers : 0;
        if ((worker && !(q->worker = strdup(worker))) || (store_id && !(q->store_id = strdup(store_id))) ||
            (jurisdiction && !(q->jurisdiction = strdup(jurisdiction))) ||
            (jurisdiction && asprintf(&hdr, "cf-r2-jurisdiction: %s", jurisdiction) < 0)) {
                free(q->worker);
                free(q->store_id);
                free(q->jurisdiction);
                free(q);
                return -ENOMEM;
        }
        if (hdr) {
                hdrs[0] = hdr;
                r.headers = hdrs;
        }
        /* Ask for big pages (wrangler asks KV for 1000): a server that caps
         * lower says so in result_info and paging follows its numbers. */
        if (paging == CFAPI_PAGING_PAGE)
                r.per_page = 1000;
        k = cfapi_submit(o->api, &r, on_reply, q, NULL);
        if (k < 0) {
                free(q->worker);
                free(q->store_id);
                free(q->jurisdiction);
                free(q);
                return k;
        }
        o->pending++;
        o->res.n_requests++;
        return 0;
}

static int submit(Observer *o, ReqType type, ResourceKind kind, const char *path, const char *query, CfPaging paging,
                  const char *items_key, const char *worker, const char *store_id) {
        return submit_ex(o, type, kind, path, query, paging, items_key, worker, store_id, NULL);
}

/* The R2 jurisdictions the spec or the state uses besides the default
 * one: a bucket in a jurisdiction is listed, read and deleted only with
 * the matching cf-r2-jurisdiction header. */
static int r2_jurisdictions(const Observer *o, char ***ret) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < o->ledger->n_entries; i++)
                if (o->ledger->entries[i]->kind == RESOURCE_R2_BUCKET && o->ledger->entries[i]->jurisdiction &&
                    strv_extend(&l, o->ledger->entries[i]->jurisdiction) < 0)
                        return -ENOMEM;
        for (size_t i = 0; o->g && i < o->g->n_r2_buckets; i++)
                if (o->g->r2_buckets[i].jurisdiction && strv_extend(&l, o->g->r2_buckets[i].jurisdiction) < 0)
                        return -ENOMEM;
        for (size_t i = 0; o->g && i < o->g->n_workers; i++)
                for (size_t j = 0; j < o->g->workers[i].n_bindings; j++) {
                        const Binding *b = &o->g->workers[i].bindings[j];

                        if (b->kind == BINDING_R2_BUCKET && b->jurisdiction && strv_extend(&l, b->jurisdiction) < 0)
                                return -ENOMEM;
                }
        strv_sort_uniq(l);
        /* "default" is the list without the header. */
        for (size_t i = 0, k = 0;; i++) {
                if (l[i] && streq(l[i], "default")) {
                        free(l[i]);
                        continue;
                }
                l[k++] = l[i];
                if (!l[i])
                        break;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* Whether a worker binds a resource of kind k by id or name (no
 * document): its list is needed to tell whether the target exists. */
static bool bound_by_id(const Generation *g, ResourceKind k) {
        for (size_t i = 0; g && i < g->n_workers; i++)
                for (size_t j = 0; j < g->workers[i].n_bindings; j++) {
                        const Binding *b = &g->workers[i].bindings[j];

                        if (b->target || !b->target_id)
                                continue;
                        if (binding_kind_target(b->kind) == k)
                                return true;
                }
        return false;
}

static bool kind_used(const Observer *o, ResourceKind k) {
        const Generation *g = o->g;

        for (size_t i = 0; i < o->ledger->n_entries; i++)
                if (o->ledger->entries[i]->kind == k)
                        return true;
        for (size_t i = 0; i < o->ledger->n_intents; i++)
                if (o->ledger->intents[i]->kind == k)
                        return true;
        if (!g)
                return false;
        if (bound_by_id(g, k))
                return true;
        switch (k) {
        case RESOURCE_KV_NAMESPACE: return g->n_kv_namespaces > 0;
        case RESOURCE_R2_BUCKET: return g->n_r2_buckets > 0;
        case RESOURCE_D1_DATABASE: return g->n_d1_databases > 0;
        case RESOURCE_QUEUE: {
                if (g->n_queues > 0)
                        return true;
                for (size_t i = 0; i < g->n_workers; i++)
                        if (g->workers[i].n_consumers > 0)
                                return true;
                return false;
        }
        case RESOURCE_SECRETS_STORE:
        case RESOURCE_SECRETS_STORE_SECRET: {
                if (g->n_secrets_stores > 0 || g->n_secrets_store_secrets > 0)
                        return true;
                for (size_t i = 0; i < g->n_workers; i++)
                        for (size_t j = 0; j < g->workers[i].n_bindings; j++)
                                if (g->workers[i].bindings[j].kind == BINDING_SECRETS_STORE_SECRET)
                                        return true;
                return false;
        }
        default:
                return false;
        }
}

static bool worker_relevant(const Observer *o, const char *name) {
        return (o->g && generation_find_worker(o->g, name)) || ledger_find(o->ledger, RESOURCE_WORKER, name) ||
               ledger_find_intent(o->ledger, RESOURCE_WORKER, name);
}

static int start_detail(Observer *o, LiveWorker *w, const char *why) {
        _cleanup_free_ char *p1 = NULL, *p2 = NULL, *p3 = NULL;
        const Worker *dw = o->g ? generation_find_worker(o->g, w->name) : NULL;
        const LedgerEntry *e = ledger_find(o->ledger, RESOURCE_WORKER, w->name);
        int r;

        w->dirty = true;
        if (free_and_strdup(&w->dirty_reason, why) < 0)
                return -ENOMEM;
        if (cfreq_path(&p1, CF_PATH_SCRIPT_DEPLOYMENTS, w->name) < 0 ||
            cfreq_path(&p2, CF_PATH_SCRIPT_SCHEDULES, w->name) < 0 ||
            cfreq_path(&p3, CF_PATH_SCRIPT_SUBDOMAIN, w->name) < 0)
                return -ENOMEM;
        o->res.n_details++;
        r = submit(o, REQ_DEPLOYMENTS, RESOURCE_WORKER, p1, NULL, CFAPI_PAGING_NONE, NULL, w->name, NULL);
        if (r < 0)
                return r;
        r = submit(o, REQ_SCHEDULES, RESOURCE_WORKER, p2, NULL, CFAPI_PAGING_NONE, NULL, w->name, NULL);
        if (r < 0)
                return r;
        if ((dw && dw->workers_dev >= 0) || (e && e->subdomain >= 0)) {
                r = submit(o, REQ_SUBDOMAIN, RESOURCE_WORKER, p3, NULL, CFAPI_PAGING_NONE, NULL, w->name, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Phase 2: decide which scripts to read closely. */
/* Whether the spec wants something else than what bindery last applied
 * to an owned worker; then its live bindings are read so the plan can
 * show the values it replaces. */
static bool spec_changed(Observer *o, LiveWorker *w, const LedgerEntry *e) {
        const Worker *dw = o->g ? generation_find_worker(o->g, w->name) : NULL;

        if (!dw || !e || !e->digest || dw->policy.suspend || dw->policy.external)
                return false;
        /* Kept in the LiveWorker: the plan needs the same digest. */
        if (plan_worker_digest(o->g, dw, o->res.live, o->ledger, false, w->desired_digest,
                               &w->desired_unresolved) < 0) {
                w->desired_digest[0] = '\0';
                return false;
        }
        return !streq(e->digest, w->desired_digest);
}

/* Workers read only to show a spec change's old values, per cycle. */
#define OBSERVE_DIFF_READS_MAX 20

static int start_details(Observer *o) {
        LiveState *live = o->res.live;
        unsigned n_diff_reads = 0;
        size_t n_seen = strv_length(o->res.audit_seen);
        bool mixed = false;     /* own writes matched entries of more than one token id */
        _cleanup_(strset_freep) StrSet *seen = strset_new(), *flagged = strset_new(), *secret_flagged = strset_new();
        _cleanup_(json_object_putp) json_object *own = observe_write_counts(o->own_writes);

        if (!seen || !flagged || !secret_flagged || !own)
                return -ENOMEM;
        for (size_t i = 0; o->audit_seen && o->audit_seen[i]; i++)
                if (strset_put(seen, o->audit_seen[i]) < 0)
                        return -ENOMEM;
        /* The audit feed: writes we have not processed yet. */
        for (size_t i = 0; i < o->n_audit; i++) {
                const AuditEntry *e = &o->audit[i];

                if (e->id && strv_extend_n(&o->res.audit_seen, &n_seen, e->id) < 0)
                        return -ENOMEM;
                if ((e->id && strset_contains(seen, e->id)) || e->get)
                        continue;
                if (e->key && e->mine && observe_write_take(own, e->key)) {
                        if (observe_token_agree(&o->res.own_token_id, &mixed, e->token_id) < 0)
                                return -ENOMEM;
                        continue;       /* one of ours, late */
                }
                if (!e->script || e->own_token)
                        continue;       /* our token's: an earlier run's, already matched */
                if (strset_put(flagged, e->script) < 0 || (e->secrets && strset_put(secret_flagged, e->script) < 0))
                        return -ENOMEM;
        }
        /* The ids read before are not needed again: kept, they move into
         * the result rather than being copied (30,000 of them after a
         * converge of 10,000 workers). */
        for (size_t i = 0; o->keep_seen && o->audit_seen && o->audit_seen[i]; i++)
                if (strv_consume_n(&o->res.audit_seen, &n_seen, TAKE_PTR(o->audit_seen[i])) < 0) {
                        for (size_t k = i + 1; o->audit_seen[k]; k++)
                                free(o->audit_seen[k]);
                        o->audit_seen = mfree(o->audit_seen);
                        return -ENOMEM;
                }
        if (o->keep_seen)
                o->audit_seen = mfree(o->audit_seen);  /* its strings moved */
        else
                o->audit_seen = strv_free(o->audit_seen);
        strv_sort_uniq(o->res.audit_seen);
        if (observe_write_leftovers(own, &o->res.own_writes_left) < 0)
                return -ENOMEM;
        if (mixed)
                o->res.own_token_id = mfree(o->res.own_token_id);

        for (size_t i = 0; i < live->n_workers; i++) {
                LiveWorker *w = &live->workers[i];
                const LedgerEntry *e = ledger_find(o->ledger, RESOURCE_WORKER, w->name);
                const char *why = NULL;
                int r;

                if (!worker_relevant(o, w->name))
                        continue;
                if (strset_contains(secret_flagged, w->name))
                        w->secrets_written = true;
                if (!e)
                        why = "not owned yet";
                else if (strset_contains(flagged, w->name))
                        why = "written outside bindery (audit log)";
                else if (!streq_ptr(e->etag, w->etag))
                        why = "etag changed";
                else if (!streq_ptr(e->modified_on, w->modified_on))
                        why = "modified_on changed";
                else if (e->migration_tag && !streq_ptr(e->migration_tag, w->migration_tag))
                        why = "migration_tag changed";
                else if (strv_contains(o->refresh, w->name))
                        why = "full refresh";
                else if ((!o->res.audit_ok || o->audit_gap) && e && strv_contains(o->rotation, w->name)) {
                        why = o->audit_gap ? "settings rotation (audit feed has gaps)"
                                           : "settings rotation (audit feed unavailable)";
                } else if (n_diff_reads < OBSERVE_DIFF_READS_MAX && spec_changed(o, w, e)) {
                        /* Bounded: a spec change touching every worker must
                         * not spend the request budget on showing the diff;
                         * past the bound the plan says the values are unknown. */
                        why = "spec changed (the plan shows old and new values)";
                        n_diff_reads++;
                }
                if (!why)
                        continue;
                /* Unowned scripts only matter when they may be adopted or
                 * resumed; the plan blocks the rest without detail. */
                if (!e) {
                        const Worker *dw = o->g ? generation_find_worker(o->g, w->name) : NULL;

                        if (!(dw && dw->policy.adopt) && !ledger_find_intent(o->ledger, RESOURCE_WORKER, w->name))
                                continue;
                }
                r = start_detail(o, w, why);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void finish(Observer *o) {
        ObserveResult res;

        if (o->finished)
                return;
        o->finished = true;
        res = o->res;
        o->res = (ObserveResult) {};
        if (!res.error)
                res.audit_checked_usec = o->now_usec;
        o->done(&res, o->userdata);
        observe_result_done(&res);
}

static void step(Observer *o) {
        int r;

        if (o->pending > 0 || o->dead)
                return;
        if (o->phase == 1 && !o->res.error) {
                o->phase = 2;
                r = start_details(o);
                if (r < 0)
                        fail(o, r, "observe", NULL);
                if (o->pending > 0)
                        return;
        }
        finish(o);
}

static void on_scripts(Observer *o, const CfReply *reply) {
        if (reply->error < 0)
                return fail(o, reply->error, "GET workers/scripts", reply->message);
        /* The entries came one by one (on_item). */
        o->res.live->workers_listed = true;
}

static void on_audit(Observer *o, const CfReply *reply) {
        if (reply->error < 0) {
                /* Not fatal: the position is not advanced, so the next
                 * cycle reads the same window again; the lists and the
                 * full refresh still catch drift meanwhile. */
                o->res.audit_ok = false;
                o->audit_failed = true;
                o->res.audit_http_status = reply->http_status;
                free(o->res.audit_message);
                o->res.audit_message = reply->message ? strdup(reply->message) : NULL;
                return;
        }
        /* The entries came one by one (on_item). */
        o->res.audit_ok = !o->audit_failed;
}

/* Whether bindery uses a listed secrets store (its ledger or the spec). */
static bool store_used(const Observer *o, const LiveResource *s) {
        for (size_t j = 0; j < o->ledger->n_entries; j++)
                if (o->ledger->entries[j]->kind == RESOURCE_SECRETS_STORE_SECRET &&
                    streq_ptr(o->ledger->entries[j]->store_id, s->id))
                        return true;
        for (size_t j = 0; o->g && j < o->g->n_secrets_stores; j++) {
                const SecretsStore *st = &o->g->secrets_stores[j];

                if (streq_ptr(st->id, s->id) || streq_ptr(st->store_name ?: st->name, s->name))
                        return true;
        }
        return false;
}

/* One secrets list per store bindery uses. */
static void list_store_secrets(Observer *o) {
        LiveState *live = o->res.live;
        int r;

        for (size_t i = 0; i < live->n_resources; i++) {
                const LiveResource *s = &live->resources[i];
                _cleanup_free_ char *path = NULL;

                if (s->kind != RESOURCE_SECRETS_STORE || !store_used(o, s))
                        continue;
                if (cfreq_path(&path, CF_PATH_STORE_SECRETS, s->id) < 0)
                        return fail(o, -ENOMEM, "observe", NULL);
                r = submit(o, REQ_STORE_SECRETS, RESOURCE_SECRETS_STORE_SECRET, path, NULL, CFAPI_PAGING_PAGE, NULL,
                           NULL, s->id);
                if (r < 0)
                        return fail(o, r, "observe", NULL);
        }
        live->listed[RESOURCE_SECRETS_STORE_SECRET] = true;
}

static void on_list(Observer *o, Req *q, const CfReply *reply) {
        if (reply->error < 0)
                return fail(o, reply->error, resource_kind_to_string(q->kind), reply->message);
        /* The entries came one by one (on_item, jurisdiction included). */
        o->res.live->listed[q->kind] = true;
        if (q->kind == RESOURCE_SECRETS_STORE)
                list_store_secrets(o);
}

static void on_store_secrets(Observer *o, Req *q, const CfReply *reply) {
        if (reply->error < 0)
                return fail(o, reply->error, "Secrets Store secrets", reply->message);
        o->res.live->listed[RESOURCE_SECRETS_STORE_SECRET] = true;
}

/* The version serving the most traffic in the newest deployment
 * (documented as the first, but picked by created_on so either order
 * works); NULL if none. */
static const char *deployed_version(json_object *result) {
        json_object *deps = jget(result, "deployments"), *d, *vs;
        const char *best = NULL;
        double best_pct = -1;

        if (!deps || !json_object_is_type(deps, json_type_array) || json_object_array_length(deps) == 0)
                return NULL;
        d = json_object_array_get_idx(deps, 0);
        for (size_t i = 1; i < json_object_array_length(deps); i++) {
                json_object *x = json_object_array_get_idx(deps, i);

                if (json_get_str(x, "created_on") &&
                    (!json_get_str(d, "created_on") || strcmp(json_get_str(x, "created_on"), json_get_str(d, "created_on")) > 0))
                        d = x;
        }
        vs = jget(d, "versions");
        for (size_t i = 0; vs && json_object_is_type(vs, json_type_array) && i < json_object_array_length(vs); i++) {
                json_object *v = json_object_array_get_idx(vs, i), *pct = jget(v, "percentage");
                double p = pct ? json_object_get_double(pct) : 0;

                if (json_get_str(v, "version_id") && p > best_pct) {
                        best = json_get_str(v, "version_id");
                        best_pct = p;
                }
        }
        return best;
}

/* The bindings come from the deployed version, or else the settings. */
static void on_deployments(Observer *o, LiveWorker *w, const CfReply *reply) {
        _cleanup_free_ char *path = NULL;
        const char *best;
        int r;

        if (!w || reply->error < 0)
                return; /* detail stays unknown; nothing absorbed */
        best = deployed_version(reply->result);
        if (best) {
                if (free_and_strdup(&w->version_id, best) < 0 || cfreq_path(&path, CF_PATH_SCRIPT_VERSION, w->name, best) < 0)
                        return fail(o, -ENOMEM, "observe", NULL);
                r = submit(o, REQ_VERSION, RESOURCE_WORKER, path, NULL, CFAPI_PAGING_NONE, NULL, w->name, NULL);
        } else {
                if (cfreq_path(&path, CF_PATH_SCRIPT_SETTINGS, w->name) < 0)
                        return fail(o, -ENOMEM, "observe", NULL);
                r = submit(o, REQ_SETTINGS, RESOURCE_WORKER, path, NULL, CFAPI_PAGING_NONE, NULL, w->name, NULL);
        }
        if (r < 0)
                fail(o, r, "observe", NULL);
}

static void on_bindings(Observer *o, Req *q, LiveWorker *w, const CfReply *reply) {
        json_object *b;
        int r;

        if (!w || reply->error < 0)
                return;
        b = q->type == REQ_VERSION ? jget(jget(reply->result, "resources"), "bindings")
                                   : jget(reply->result, "bindings");
        r = observe_parse_bindings(b, w);
        if (r < 0)
                return fail(o, r, "observe", NULL);
        w->detail = true;
}

static void on_schedules(Observer *o, LiveWorker *w, const CfReply *reply) {
        json_object *s = jget(reply->result, "schedules");

        if (!w || reply->error < 0)
                return;
        if (!s && reply->result && json_object_is_type(reply->result, json_type_array))
                s = reply->result;
        w->crons = strv_free(w->crons);
        w->crons = calloc(1, sizeof(char *));
        if (!w->crons)
                return fail(o, -ENOMEM, "observe", NULL);
        for (size_t i = 0; s && json_object_is_type(s, json_type_array) && i < json_object_array_length(s); i++)
                if (json_get_str(json_object_array_get_idx(s, i), "cron") &&
                    strv_extend(&w->crons, json_get_str(json_object_array_get_idx(s, i), "cron")) < 0)
                        return fail(o, -ENOMEM, "observe", NULL);
        strv_sort_uniq(w->crons);
        w->crons_known = true;
}

static void on_subdomain(LiveWorker *w, const CfReply *reply) {
        json_object *en = jget(reply->result, "enabled");

        if (!w || reply->error < 0 || !en)
                return;
        w->subdomain = json_object_get_boolean(en) ? 1 : 0;
}

static void handle(Observer *o, Req *q, const CfReply *reply) {
        LiveWorker *w = q->worker ? live_state_find_worker(o->res.live, q->worker) : NULL;

        switch (q->type) {
        case REQ_SCRIPTS:
                return on_scripts(o, reply);
        case REQ_AUDIT:
                return on_audit(o, reply);
        case REQ_LIST:
                return on_list(o, q, reply);
        case REQ_STORE_SECRETS:
                return on_store_secrets(o, q, reply);
        case REQ_DEPLOYMENTS:
                return on_deployments(o, w, reply);
        case REQ_VERSION:
        case REQ_SETTINGS:
                return on_bindings(o, q, w, reply);
        case REQ_SCHEDULES:
                return on_schedules(o, w, reply);
        case REQ_SUBDOMAIN:
                return on_subdomain(w, reply);
        }
}

static void on_reply(CfApi *api, const CfReply *reply, void *userdata) {
        Req *q = userdata;
        Observer *o = q->o;

        o->pending--;
        if (!o->dead && reply->error != -ECANCELED)
                handle(o, q, reply);
        else if (!o->dead)
                fail(o, -ECANCELED, "observe", "cancelled");
        free(q->worker);
        free(q->store_id);
        free(q->jurisdiction);
        free(q);
        if (o->dead) {
                if (o->pending == 0)
                        observer_destroy(o);
                return;
        }
        step(o);
}

int observe_start(CfApi *api, const ObserveRequest *req, observe_done_t done, void *userdata, Observer **ret) {
        Observer *o = calloc(1, sizeof(Observer));
        uint64_t from, overlap, own_from;
        bool waiting, split;
        int r;
        static const struct {
                ResourceKind kind;
                CfPaging paging;
                const char *items_key;
        } lists[] = {
                { RESOURCE_KV_NAMESPACE, CFAPI_PAGING_PAGE, NULL },
                { RESOURCE_R2_BUCKET, CFAPI_PAGING_CURSOR, "buckets" },
                { RESOURCE_D1_DATABASE, CFAPI_PAGING_PAGE, NULL },
                { RESOURCE_QUEUE, CFAPI_PAGING_PAGE, NULL },
                { RESOURCE_SECRETS_STORE, CFAPI_PAGING_PAGE, NULL },
        };

        if (!o)
                return -ENOMEM;
        o->api = api;
        o->g = req->g;
        o->ledger = req->ledger;
        o->audit_last_usec = req->audit_last_usec;
        o->priority = req->priority;
        o->now_usec = req->now_usec;
        o->done = done;
        o->userdata = userdata;
        o->phase = 1;
        o->audit_seen = strv_copy(req->audit_seen ?: (char *[]) { NULL });
        o->refresh = strv_copy(req->refresh ?: (char *[]) { NULL });
        o->rotation = strv_copy(req->rotation ?: (char *[]) { NULL });
        o->audit_gap = req->audit_gap;
        o->own_writes = strv_copy(req->own_writes ?: (char *[]) { NULL });
        o->own_token_id = req->audit_own_token_id ? strdup(req->audit_own_token_id) : NULL;
        o->keep_seen = req->audit_keep_seen;
        o->res.live = live_state_new();
        if (!o->audit_seen || !o->refresh || !o->rotation || !o->own_writes || !o->res.live ||
            (req->audit_own_token_id && !o->own_token_id)) {
                observer_destroy(o);
                return -ENOMEM;
        }

        r = submit(o, REQ_SCRIPTS, RESOURCE_WORKER, cfreq_template(CF_PATH_SCRIPTS), NULL, CFAPI_PAGING_NONE,
                   NULL, NULL, NULL);
        if (r >= 0) {
                _cleanup_free_ char *q = NULL;

                from = req->audit_last_usec ? req->audit_last_usec : req->now_usec;
                overlap = req->audit_overlap_usec ?: OBSERVE_AUDIT_OVERLAP_USEC;
                from = from > overlap ? from - overlap : 0;
                own_from = req->own_writes_from_usec > OBSERVE_AUDIT_OWN_SLACK_USEC ?
                                   req->own_writes_from_usec - OBSERVE_AUDIT_OWN_SLACK_USEC : 0;
                waiting = req->own_writes && req->own_writes[0];
                /* Own writes waiting for their entries, sent after the
                 * window starts: others' entries over the window, and
                 * every entry from when the oldest waiting write was sent. */
                split = waiting && req->audit_own_token_id && own_from > from;
                r = cfreq_audit_query(from, req->now_usec + OBSERVE_AUDIT_BEFORE_SLACK_USEC,
                                      waiting && !split ? NULL : req->audit_own_token_id, &q);
                if (r >= 0)
                        r = submit(o, REQ_AUDIT, RESOURCE_WORKER, cfreq_template(CF_PATH_AUDIT), q,
                                   CFAPI_PAGING_CURSOR, NULL, NULL, NULL);
                if (r >= 0 && split) {
                        q = mfree(q);
                        r = cfreq_audit_query(own_from, req->now_usec + OBSERVE_AUDIT_BEFORE_SLACK_USEC, NULL, &q);
                        if (r >= 0)
                                r = submit(o, REQ_AUDIT, RESOURCE_WORKER, cfreq_template(CF_PATH_AUDIT), q,
                                           CFAPI_PAGING_CURSOR, NULL, NULL, NULL);
                }
        }
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(lists); i++)
                if (kind_used(o, lists[i].kind) ||
                    (lists[i].kind == RESOURCE_SECRETS_STORE && kind_used(o, RESOURCE_SECRETS_STORE_SECRET))) {
                        r = submit(o, REQ_LIST, lists[i].kind, cfreq_template(cfreq_collection(lists[i].kind)), NULL,
                                   lists[i].paging,
                                   lists[i].items_key, NULL, NULL);
                        if (r >= 0 && lists[i].kind == RESOURCE_R2_BUCKET) {
                                _cleanup_strv_free_ char **js = NULL;

                                r = r2_jurisdictions(o, &js);
                                for (size_t k = 0; r >= 0 && js[k]; k++)
                                        r = submit_ex(o, REQ_LIST, lists[i].kind,
                                                      cfreq_template(cfreq_collection(lists[i].kind)), NULL,
                                                      lists[i].paging, lists[i].items_key, NULL, NULL, js[k]);
                        }
                }
        if (r < 0) {
                /* Requests already queued call back later: let them free it. */
                fail(o, r, "observe", NULL);
                o->dead = true;
                if (o->pending == 0)
                        observer_destroy(o);
                return r;
        }
        *ret = o;
        return 0;
}
