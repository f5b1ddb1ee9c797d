/* plan.c: see plan.h. Pure: no I/O, no clock, no logging. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding-kinds.h"
#include "plan.h"
#include "util.h"

/* ---- tables ---- */

static const char *const action_kind_table[_ACTION_KIND_MAX] = {
        [ACTION_CREATE] = "create",
        [ACTION_UPDATE] = "update",
        [ACTION_DELETE] = "delete",
        [ACTION_ADOPT] = "adopt",
        [ACTION_PUT_SECRET] = "put-secret",
        [ACTION_DELETE_SECRET] = "delete-secret",
        [ACTION_UPLOAD] = "upload",
        [ACTION_SET_SCHEDULES] = "set-schedules",
        [ACTION_SET_SUBDOMAIN] = "set-subdomain",
        [ACTION_SET_CONSUMER] = "set-consumer",
        [ACTION_MIGRATE] = "migrate",
        [ACTION_NOOP] = "no-op",
        [ACTION_BLOCKED] = "blocked",
        [ACTION_DRIFT_REPORT] = "drift-report",
};

const char *action_kind_to_string(ActionKind k) {
        return k >= 0 && k < _ACTION_KIND_MAX ? action_kind_table[k] : NULL;
}

bool action_kind_is_change(ActionKind k) {
        return k >= 0 && k < _ACTION_KIND_MAX && k != ACTION_NOOP && k != ACTION_BLOCKED &&
               k != ACTION_DRIFT_REPORT;
}

/* ---- small helpers ---- */

static char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

static int dup_into(char **dst, const char *s) {
        if (!s) {
                *dst = NULL;
                return 0;
        }
        *dst = strdup(s);
        return *dst ? 0 : -ENOMEM;
}

static void *grow(void *p, size_t *n, size_t size) {
        void *q = realloc(p, (*n + 1) * size);

        if (!q)
                return NULL;
        memset((char *) q + *n * size, 0, size);
        (*n)++;
        return q;
}

/* ---- LiveState ---- */

static void index_key_free(struct lh_entry *e) {
        free(lh_entry_k(e));
}

LiveState *live_state_new(void) {
        LiveState *s = calloc(1, sizeof(LiveState));

        if (!s)
                return NULL;
        /* Worker keys are the workers' own names; resource keys are made. */
        s->worker_index = lh_kchar_table_new(64, NULL);
        s->resource_by_id = lh_kchar_table_new(64, index_key_free);
        s->resource_by_name = lh_kchar_table_new(64, index_key_free);
        if (!s->worker_index || !s->resource_by_id || !s->resource_by_name)
                return live_state_free(s);
        return s;
}

/* Grows an array to hold one more, doubling (the LiveState's lists hold
 * thousands: one realloc per entry was quadratic). */
static void *grow_cap(void *p, size_t n, size_t *alloc, size_t size) {
        size_t na;
        void *q;

        if (n < *alloc)
                return p;
        na = *alloc ? *alloc * 2 : 16;
        q = reallocarray(p, na, size);
        if (!q)
                return NULL;
        *alloc = na;
        return q;
}

static char *resource_key(ResourceKind kind, const char *s) {
        char *k;

        return asprintf(&k, "%d/%s", (int) kind, s) < 0 ? NULL : k;
}

/* Maps key (taken) to index i unless it is mapped already: the first stays. */
static int index_put_first(struct lh_table *t, char *key, size_t i) {
        if (lh_table_lookup_ex(t, key, NULL)) {
                free(key);
                return 0;
        }
        if (lh_table_insert(t, key, (const void *) (uintptr_t) (i + 1)) < 0) {
                free(key);
                return -ENOMEM;
        }
        return 0;
}

static bool index_get(struct lh_table *t, const char *key, size_t *ret) {
        void *v;

        if (!t || !key || !lh_table_lookup_ex(t, key, &v))
                return false;
        *ret = (size_t) (uintptr_t) v - 1;
        return true;
}

static void live_worker_done(LiveWorker *w) {
        free(w->name);
        free(w->etag);
        free(w->modified_on);
        free(w->migration_tag);
        free(w->compatibility_date);
        strv_free(w->tags);
        strv_free(w->compatibility_flags);
        free(w->version_id);
        for (size_t i = 0; i < w->n_bindings; i++) {
                free(w->bindings[i].name);
                free(w->bindings[i].type);
                free(w->bindings[i].canon);
        }
        free(w->bindings);
        strv_free(w->secret_names);
        strv_free(w->crons);
        free(w->dirty_reason);
}

static void live_resource_done(LiveResource *r) {
        free(r->id);
        free(r->name);
        free(r->store_id);
        free(r->jurisdiction);
        free(r->modified);
        for (size_t i = 0; i < r->n_consumers; i++) {
                free(r->consumers[i].script_name);
                free(r->consumers[i].consumer_id);
                free(r->consumers[i].canon);
        }
        free(r->consumers);
}

LiveState *live_state_free(LiveState *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_workers; i++)
                live_worker_done(&s->workers[i]);
        free(s->workers);
        for (size_t i = 0; i < s->n_resources; i++)
                live_resource_done(&s->resources[i]);
        free(s->resources);
        if (s->worker_index)
                lh_table_free(s->worker_index);
        if (s->resource_by_id)
                lh_table_free(s->resource_by_id);
        if (s->resource_by_name)
                lh_table_free(s->resource_by_name);
        free(s);
        return NULL;
}

LiveWorker *live_state_add_worker(LiveState *s, const char *name) {
        LiveWorker *a;
        size_t n = s->n_workers + 1;
        char *copy = strdup(name);

        if (!copy)
                return NULL;
        a = grow_cap(s->workers, s->n_workers, &s->n_workers_alloc, sizeof(LiveWorker));
        if (!a) {
                free(copy);
                return NULL;
        }
        s->workers = a;
        memset(&a[n - 1], 0, sizeof(LiveWorker));
        if (!lh_table_lookup_ex(s->worker_index, copy, NULL) &&
            lh_table_insert(s->worker_index, copy, (const void *) (uintptr_t) n) < 0) {
                free(copy);
                return NULL;
        }
        s->n_workers = n;
        a[n - 1].name = copy;
        a[n - 1].subdomain = -1;
        a[n - 1].logpush = -1;
        a[n - 1].observability = -1;
        return &a[n - 1];
}

/* Gives back what doubling left unused: at 10,000 workers the worker
 * array had room for 16,384 (3.5 MB) through the whole plan. Only the
 * indexes (values are positions) refer into the arrays, so moving them
 * is safe; a failed realloc keeps the larger array. */
void live_state_trim(LiveState *s) {
        void *p;

        if (!s)
                return;
        if (s->n_workers > 0 && s->n_workers < s->n_workers_alloc &&
            (p = reallocarray(s->workers, s->n_workers, sizeof(LiveWorker)))) {
                s->workers = p;
                s->n_workers_alloc = s->n_workers;
        }
        if (s->n_resources > 0 && s->n_resources < s->n_resources_alloc &&
            (p = reallocarray(s->resources, s->n_resources, sizeof(LiveResource)))) {
                s->resources = p;
                s->n_resources_alloc = s->n_resources;
        }
}

void live_state_truncate_workers(LiveState *s, size_t n) {
        while (s && s->n_workers > n) {
                LiveWorker *w = &s->workers[s->n_workers - 1];

                /* Its index entry (keyed by its own name) points at it:
                 * the first of a name is the one indexed. */
                if (live_state_find_worker(s, w->name) == w)
                        (void) lh_table_delete(s->worker_index, w->name);
                live_worker_done(w);
                s->n_workers--;
        }
}

LiveResource *live_state_add_resource(LiveState *s, ResourceKind kind, const char *id, const char *name) {
        LiveResource *a;
        size_t n = s->n_resources;
        _cleanup_free_ char *i = strdup_or_null(id), *nm = strdup_or_null(name);

        if ((id && !i) || (name && !nm))
                return NULL;
        a = grow_cap(s->resources, s->n_resources, &s->n_resources_alloc, sizeof(LiveResource));
        if (!a)
                return NULL;
        s->resources = a;
        if (id) {
                char *k = resource_key(kind, id);

                if (!k || index_put_first(s->resource_by_id, k, n) < 0)
                        return NULL;
        }
        if (name) {
                char *k = resource_key(kind, name);

                if (!k || index_put_first(s->resource_by_name, k, n) < 0)
                        return NULL;
        }
        n++;
        memset(&a[n - 1], 0, sizeof(LiveResource));
        s->n_resources = n;
        a[n - 1].kind = kind;
        a[n - 1].id = TAKE_PTR(i);
        a[n - 1].name = TAKE_PTR(nm);
        return &a[n - 1];
}

LiveBinding *live_worker_add_binding(LiveWorker *w, const char *name, const char *type, const char *canon) {
        LiveBinding *a;
        size_t n = w->n_bindings;
        _cleanup_free_ char *nm = strdup_or_null(name), *t = strdup_or_null(type), *c = strdup_or_null(canon);

        if ((name && !nm) || (type && !t) || (canon && !c))
                return NULL;
        a = grow(w->bindings, &n, sizeof(LiveBinding));
        if (!a)
                return NULL;
        w->bindings = a;
        w->n_bindings = n;
        a[n - 1].name = TAKE_PTR(nm);
        a[n - 1].type = TAKE_PTR(t);
        a[n - 1].canon = TAKE_PTR(c);
        return &a[n - 1];
}

LiveConsumer *live_resource_add_consumer(LiveResource *r, const char *script, const char *consumer_id,
                                         const char *canon) {
        LiveConsumer *a;
        size_t n = r->n_consumers;
        _cleanup_free_ char *s = strdup_or_null(script), *i = strdup_or_null(consumer_id),
                            *c = strdup_or_null(canon);

        if ((script && !s) || (consumer_id && !i) || (canon && !c))
                return NULL;
        a = grow(r->consumers, &n, sizeof(LiveConsumer));
        if (!a)
                return NULL;
        r->consumers = a;
        r->n_consumers = n;
        a[n - 1].script_name = TAKE_PTR(s);
        a[n - 1].consumer_id = TAKE_PTR(i);
        a[n - 1].canon = TAKE_PTR(c);
        return &a[n - 1];
}

static int live_binding_cmp(const void *a, const void *b) {
        const LiveBinding *x = a, *y = b;

        return strcmp(strna(x->name), strna(y->name));
}

void live_worker_sort(LiveWorker *w) {
        if (w->n_bindings > 1)
                qsort(w->bindings, w->n_bindings, sizeof(LiveBinding), live_binding_cmp);
        strv_sort_uniq(w->secret_names);
        strv_sort_uniq(w->crons);
}

/* The indexes answer; an entry changed in place since (tests do) is
 * checked, and then the list is scanned as before. */
LiveWorker *live_state_find_worker(const LiveState *s, const char *name) {
        size_t i;

        if (!index_get(s->worker_index, name, &i))
                return NULL;
        if (i < s->n_workers && streq_ptr(s->workers[i].name, name))
                return &s->workers[i];
        for (i = 0; i < s->n_workers; i++)
                if (streq_ptr(s->workers[i].name, name))
                        return &s->workers[i];
        return NULL;
}

LiveResource *live_state_find_by_id(const LiveState *s, ResourceKind kind, const char *id) {
        _cleanup_free_ char *k = NULL;
        size_t i;

        if (!id)
                return NULL;
        k = resource_key(kind, id);
        if (!k || !index_get(s->resource_by_id, k, &i))
                return NULL;
        if (i < s->n_resources && s->resources[i].kind == kind && streq_ptr(s->resources[i].id, id))
                return &s->resources[i];
        for (i = 0; i < s->n_resources; i++)
                if (s->resources[i].kind == kind && streq_ptr(s->resources[i].id, id))
                        return &s->resources[i];
        return NULL;
}

LiveResource *live_state_find_by_name(const LiveState *s, ResourceKind kind, const char *name,
                                      const char *store_id) {
        _cleanup_free_ char *k = NULL;
        size_t first;

        if (!name)
                return NULL;
        k = resource_key(kind, name);
        if (!k || !index_get(s->resource_by_name, k, &first))
                return NULL;
        if (first >= s->n_resources || s->resources[first].kind != kind ||
            !streq_ptr(s->resources[first].name, name))
                first = 0;
        /* From the first of that name; another store's secret of the same
         * name lies further on. */
        for (size_t i = first; i < s->n_resources; i++) {
                const LiveResource *r = &s->resources[i];

                if (r->kind != kind || !streq_ptr(r->name, name))
                        continue;
                if (store_id && r->store_id && !streq(store_id, r->store_id))
                        continue;
                return (LiveResource *) r;
        }
        return NULL;
}

static int json_add_str(json_object *o, const char *k, const char *v) {
        json_object *s;

        if (!v)
                return 0;
        s = json_object_new_string(v);
        if (!s)
                return -ENOMEM;
        json_object_object_add(o, k, s);
        return 0;
}

static int canon_value(json_object *j, FILE *f);

static int key_cmp(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static int canon_value(json_object *j, FILE *f) {
        switch (json_object_get_type(j)) {
        case json_type_object: {
                size_t n = (size_t) json_object_object_length(j), i = 0;
                _cleanup_free_ const char **keys = calloc(n + 1, sizeof(char *));

                if (!keys)
                        return -ENOMEM;
                json_object_object_foreach(j, k, val) {
                        (void) val;
                        keys[i++] = k;
                }
                qsort(keys, i, sizeof(char *), key_cmp);
                fputc('{', f);
                for (size_t x = 0; x < i; x++) {
                        json_object *v = NULL, *ks;

                        if (x > 0)
                                fputc(',', f);
                        ks = json_object_new_string(keys[x]);
                        if (!ks)
                                return -ENOMEM;
                        fputs(json_object_to_json_string_ext(ks, JSON_C_TO_STRING_PLAIN |
                                                                         JSON_C_TO_STRING_NOSLASHESCAPE),
                              f);
                        json_object_put(ks);
                        fputc(':', f);
                        (void) json_object_object_get_ex(j, keys[x], &v);
                        if (canon_value(v, f) < 0)
                                return -ENOMEM;
                }
                fputc('}', f);
                return 0;
        }
        case json_type_array:
                fputc('[', f);
                for (size_t x = 0; x < json_object_array_length(j); x++) {
                        if (x > 0)
                                fputc(',', f);
                        if (canon_value(json_object_array_get_idx(j, x), f) < 0)
                                return -ENOMEM;
                }
                fputc(']', f);
                return 0;
        case json_type_double: {
                double d = json_object_get_double(j);

                /* Integral doubles print as integers so 1.0 and 1 agree. */
                if (d == (double) (long long) d && d < 9e15 && d > -9e15)
                        fprintf(f, "%lld", (long long) d);
                else
                        fprintf(f, "%.17g", d);
                return 0;
        }
        case json_type_null:
                fputs("null", f);
                return 0;
        default:
                fputs(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), f);
                return 0;
        }
}

char *plan_json_canonical(json_object *j) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        int r;

        if (!f)
                return NULL;
        r = canon_value(j, f);
        if (fclose(f) != 0 || r < 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* Builds "type k=v k=v" from pairs (NULL values skipped). Values are
 * escaped so a space or '=' in a value cannot fake a field. */
static char *canon_build(const char *type, const char *const *pairs, size_t n) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        fputs(type, f);
        for (size_t i = 0; i + 1 < n; i += 2) {
                if (!pairs[i + 1])
                        continue;
                fprintf(f, " %s=", pairs[i]);
                for (const char *p = pairs[i + 1]; *p; p++) {
                        if (*p == '%' || *p == ' ' || *p == '\n' || *p == '=')
                                fprintf(f, "%%%02X", (unsigned char) *p);
                        else
                                fputc(*p, f);
                }
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static const char *nonempty(const char *s) {
        return isempty(s) ? NULL : s;
}

static const char *norm_jurisdiction(const char *s) {
        return isempty(s) || streq(s, "default") ? NULL : s;
}

static const char *norm_environment(const char *s) {
        return isempty(s) || streq(s, "production") ? NULL : s;
}

static const char *norm_script(const char *s, const char *self) {
        return isempty(s) || streq_ptr(s, self) ? NULL : s;
}

/* A field's value in the canonical form (binding-kinds.h). */
static const char *canon_field(const BindingField *f, json_object *b, const char *script) {
        const char *v = json_get_str(b, f->api);

        if (f->alias && isempty(v))
                v = json_get_str(b, f->alias);
        switch (f->canon) {
        case BINDING_CANON_TEXT:
                return v ?: "";
        case BINDING_CANON_JURISDICTION:
                return norm_jurisdiction(v);
        case BINDING_CANON_ENVIRONMENT:
                return norm_environment(v);
        case BINDING_CANON_SCRIPT:
                return norm_script(v, script);
        default:
                return nonempty(v);
        }
}

/* "type field=value ...": the fields of the kind's descriptor, normalised;
 * json as canonical JSON; a kind bindery does not know, everything but the
 * name. */
static char *canon_for_type(const char *type, json_object *b, const char *script) {
        const BindingKindInfo *info = binding_kind_info(binding_kind_from_api_type(type));

        if (info && info->kind == BINDING_JSON) {
                json_object *v = NULL;
                _cleanup_free_ char *c = NULL;

                (void) json_object_object_get_ex(b, "json", &v);
                c = plan_json_canonical(v);
                if (!c)
                        return NULL;
                const char *p[] = { "json", c };
                return canon_build(type, p, ELEMENTSOF(p));
        }
        if (info) {
                const char *p[2 * BINDING_MAX_FIELDS];
                size_t n = 0;

                for (size_t i = 0; i < BINDING_MAX_FIELDS && info->fields[i].api; i++) {
                        p[n++] = info->fields[i].api;
                        p[n++] = canon_field(&info->fields[i], b, script);
                }
                return canon_build(type, p, n);
        }
        /* Unknown or unmanaged kinds: everything but the name. */
        {
                _cleanup_(json_object_putp) json_object *copy = NULL;
                _cleanup_free_ char *c = NULL;

                if (json_object_deep_copy(b, &copy, NULL) < 0)
                        return NULL;
                json_object_object_del(copy, "name");
                c = plan_json_canonical(copy);
                if (!c)
                        return NULL;
                const char *p[] = { "raw", c };
                return canon_build(type, p, ELEMENTSOF(p));
        }
}

int plan_binding_canon_json(json_object *b, const char *script, char **ret) {
        const char *type = json_get_str(b, "type");
        char *c;

        *ret = NULL;
        if (!type)
                type = "unknown";
        if (streq(type, "secret_text") || streq(type, "secret_key"))
                return 0;
        c = canon_for_type(type, b, script);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

int plan_binding_canon_desired(const Worker *w, const Binding *b, const char *value, const char *store_id,
                               char **ret) {
        const BindingKindInfo *info = binding_kind_info(b->kind);
        const char *type = info ? info->api_type : NULL;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        char *c;

        *ret = NULL;
        if (!o || !type)
                return -ENOMEM;
        if (b->kind == BINDING_SECRET)
                return 0;
        json_object_object_add(o, "type", json_object_new_string(type));
        if (b->kind == BINDING_JSON)
                json_object_object_add(o, "json", json_tokener_parse(b->json ? b->json : "null"));
        for (size_t i = 0; i < BINDING_MAX_FIELDS && info->fields[i].api; i++) {
                const char *v = binding_field_value(&info->fields[i], b, value, store_id);

                if (info->fields[i].canon == BINDING_CANON_TEXT)
                        v = v ?: "";
                if (v && json_add_str(o, info->fields[i].api, v) < 0)
                        return -ENOMEM;
        }
        c = canon_for_type(type, o, w->name);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

/* ---- resolution ---- */

const char *plan_resource_cf_name(ResourceKind kind, const void *d) {
        switch (kind) {
        case RESOURCE_WORKER:
                return ((const Worker *) d)->name;
        case RESOURCE_KV_NAMESPACE: {
                const KVNamespace *k = d;
                return k->title ?: k->name;
        }
        case RESOURCE_R2_BUCKET: {
                const R2Bucket *b = d;
                return b->bucket_name ?: b->name;
        }
        case RESOURCE_D1_DATABASE: {
                const D1Database *x = d;
                return x->database_name ?: x->name;
        }
        case RESOURCE_QUEUE: {
                const Queue *q = d;
                return q->queue_name ?: q->name;
        }
        case RESOURCE_SECRETS_STORE: {
                const SecretsStore *s = d;
                return s->store_name ?: s->name;
        }
        case RESOURCE_SECRETS_STORE_SECRET: {
                const SecretsStoreSecret *s = d;
                return s->secret_name ?: s->name;
        }
        default:
                return NULL;
        }
}

static const char *desired_doc_name(ResourceKind kind, const void *d) {
        switch (kind) {
        case RESOURCE_WORKER: return ((const Worker *) d)->name;
        case RESOURCE_KV_NAMESPACE: return ((const KVNamespace *) d)->name;
        case RESOURCE_R2_BUCKET: return ((const R2Bucket *) d)->name;
        case RESOURCE_D1_DATABASE: return ((const D1Database *) d)->name;
        case RESOURCE_QUEUE: return ((const Queue *) d)->name;
        case RESOURCE_SECRETS_STORE: return ((const SecretsStore *) d)->name;
        case RESOURCE_SECRETS_STORE_SECRET: return ((const SecretsStoreSecret *) d)->name;
        default: return NULL;
        }
}

static const ResourcePolicy *desired_policy(ResourceKind kind, const void *d) {
        switch (kind) {
        case RESOURCE_WORKER: return &((const Worker *) d)->policy;
        case RESOURCE_KV_NAMESPACE: return &((const KVNamespace *) d)->policy;
        case RESOURCE_R2_BUCKET: return &((const R2Bucket *) d)->policy;
        case RESOURCE_D1_DATABASE: return &((const D1Database *) d)->policy;
        case RESOURCE_QUEUE: return &((const Queue *) d)->policy;
        case RESOURCE_SECRETS_STORE: return &((const SecretsStore *) d)->policy;
        case RESOURCE_SECRETS_STORE_SECRET: return &((const SecretsStoreSecret *) d)->policy;
        default: return NULL;
        }
}

static const char *desired_external_id(ResourceKind kind, const void *d) {
        switch (kind) {
        case RESOURCE_KV_NAMESPACE: return ((const KVNamespace *) d)->id;
        case RESOURCE_D1_DATABASE: return ((const D1Database *) d)->id;
        case RESOURCE_QUEUE: return ((const Queue *) d)->id;
        case RESOURCE_SECRETS_STORE: return ((const SecretsStore *) d)->id;
        default: return NULL;
        }
}

/* Resources listed by name only (R2): their id is their name. */
static bool kind_id_is_name(ResourceKind k) {
        return k == RESOURCE_R2_BUCKET || k == RESOURCE_WORKER;
}

/* The live id of a managed or external resource document, or NULL. */
static const char *resolve_doc_id(const Generation *g, ResourceKind kind, const void *d, const LiveState *live,
                                  const Ledger *ledger, const char *store_id, bool trust_ledger) {
        const ResourcePolicy *p = desired_policy(kind, d);
        const char *cf = plan_resource_cf_name(kind, d);
        const LedgerEntry *e;
        const LiveResource *lr;

        if (kind_id_is_name(kind))
                return cf;
        if (p->external) {
                if (desired_external_id(kind, d))
                        return desired_external_id(kind, d);
                lr = live_state_find_by_name(live, kind, cf, store_id);
                return lr ? lr->id : NULL;
        }
        e = ledger_find(ledger, kind, desired_doc_name(kind, d));
        if (e && e->id) {
                if (trust_ledger || !live->listed[kind] || live_state_find_by_id(live, kind, e->id) ||
                    p->drift == DRIFT_REPORT)
                        return e->id;
                return NULL; /* gone: a create is planned */
        }
        lr = live_state_find_by_name(live, kind, cf, store_id);
        return lr ? lr->id : NULL;
}

const char *plan_store_id(const Generation *g, const char *store_doc, const LiveState *live, const Ledger *ledger) {
        const SecretsStore *s = store_doc ? generation_find_store(g, store_doc) : g->default_store;

        if (!s)
                return NULL;
        return resolve_doc_id(g, RESOURCE_SECRETS_STORE, s, live, ledger, NULL, true);
}

int plan_resolve_binding(const Generation *g, const Worker *w, const Binding *b, const LiveState *live,
                         const Ledger *ledger, bool trust_ledger, char **ret_value, char **ret_store_id) {
        const BindingKindInfo *info = binding_kind_info(b->kind);
        const char *v = NULL, *store = NULL;

        *ret_value = NULL;
        if (ret_store_id)
                *ret_store_id = NULL;
        if (!info || info->target < 0)
                return 0;
        if (b->kind == BINDING_SECRETS_STORE_SECRET) {
                /* A secret is named within its store: both are resolved. */
                const SecretsStoreSecret *s = b->target ? generation_find_store_secret(g, b->target) : NULL;

                if (s) {
                        v = plan_resource_cf_name(RESOURCE_SECRETS_STORE_SECRET, s);
                        store = plan_store_id(g, s->store, live, ledger);
                } else {
                        v = b->secret_name;
                        store = plan_store_id(g, b->store, live, ledger);
                }
                if (!store)
                        v = NULL;
        } else {
                /* A document's Cloudflare name or live id; else the id or name written. */
                const void *d = b->target ? generation_find_doc(g, info->target, b->target) : NULL;

                v = !d ? b->target_id
                    : info->by_name ? plan_resource_cf_name(info->target, d)
                    : resolve_doc_id(g, info->target, d, live, ledger, NULL, trust_ledger);
        }
        if (v) {
                *ret_value = strdup(v);
                if (!*ret_value)
                        return -ENOMEM;
        }
        if (store && ret_store_id) {
                *ret_store_id = strdup(store);
                if (!*ret_store_id)
                        return -ENOMEM;
        }
        return 0;
}

static bool binding_needs_target(const Binding *b) {
        return binding_kind_target(b->kind) >= 0;
}

/* The digest state after a worker's own part: "worker <canonical JSON>\n"
 * of what an upload carries, from the worker's canonical JSON: not its
 * schedules, workers.dev, consumers, policy or secret references (those
 * have their own actions), so a change to them never re-uploads the code.
 * With cache, a copy is kept in the (loaded, immutable) worker. */
static int worker_digest_prefix(const Worker *w, bool cache, Sha256 **ret) {
        _cleanup_(json_object_putp) json_object *j = worker_to_json(w);
        _cleanup_(json_object_putp) json_object *keep = NULL;
        _cleanup_free_ char *canon = NULL;
        json_object *b = NULL;
        Sha256 *f;

        if (!j)
                return -ENOMEM;
        json_object_object_del(j, "crons");
        json_object_object_del(j, "workers_dev");
        json_object_object_del(j, "consumers");
        json_object_object_del(j, "policy");
        if (json_object_object_get_ex(j, "bindings", &b) && json_object_is_type(b, json_type_array)) {
                keep = json_object_new_array();
                for (size_t i = 0; keep && i < json_object_array_length(b); i++) {
                        json_object *x = json_object_array_get_idx(b, i);

                        if (!streq_ptr(json_get_str(x, "type"), "secret_text"))
                                json_object_array_add(keep, json_object_get(x));
                }
                if (keep)
                        json_object_object_add(j, "bindings", TAKE_PTR(keep));
        }
        canon = plan_json_canonical(j);
        f = canon ? sha256_begin() : NULL;
        if (!f || sha256_feedf(f, "worker %s\n", canon) < 0) {
                sha256_free(f);
                return -ENOMEM;
        }
        /* A cache that cannot be made is only a cache. */
        if (cache && !w->upload_prefix)
                ((Worker *) w)->upload_prefix = sha256_copy(f);
        *ret = f;
        return 0;
}

/* The resolved targets of a worker's non-secret bindings as one string:
 * with the worker itself (fixed while its generation lives) they decide
 * plan_worker_digest(). NULL entries are "-", others length-prefixed. */
static int worker_digest_key(const Generation *g, const Worker *w, const LiveState *live, const Ledger *ledger,
                             bool trust_ledger, char **values, char **store_ids, char **ret) {
        _cleanup_free_ char *key = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&key, &len);
        int r = 0;

        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < w->n_bindings && r >= 0; i++) {
                if (w->bindings[i].kind == BINDING_SECRET)
                        continue;
                r = plan_resolve_binding(g, w, &w->bindings[i], live, ledger, trust_ledger, &values[i],
                                         &store_ids[i]);
                if (r < 0)
                        break;
                for (int k = 0; k < 2; k++) {
                        const char *x = k == 0 ? values[i] : store_ids[i];

                        if (x)
                                fprintf(f, "%zu:%s", strlen(x), x);
                        else
                                fputc('-', f);
                }
        }
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(key);
        return 0;
}

int plan_worker_digest(const Generation *g, const Worker *w, const LiveState *live, const Ledger *ledger,
                       bool trust_ledger, char ret[static 65], bool *ret_unresolved) {
        /* Fed piece by piece: the same bytes (and digest) as the text
         * this once built in a memstream, without the buffer. The
         * worker's own part is the same every run while its generation
         * lives: a loaded generation keeps the state after it, and the
         * last digest with the resolved targets it came from. */
        bool cache = g && g->sorted, unresolved = false;
        _cleanup_free_ char *key = NULL;
        char **values = calloc(w->n_bindings + 1, sizeof(char *));
        char **store_ids = calloc(w->n_bindings + 1, sizeof(char *));
        Sha256 *f = NULL;
        int r;

        if (!values || !store_ids) {
                r = -ENOMEM;
                goto out;
        }
        r = worker_digest_key(g, w, live, ledger, trust_ledger, values, store_ids, &key);
        if (r < 0)
                goto out;
        if (cache && w->digest_key && streq(w->digest_key, key)) {
                memcpy(ret, w->digest_cached, 65);
                unresolved = w->digest_unresolved;
                goto out;
        }
        f = cache && w->upload_prefix ? sha256_copy(w->upload_prefix) : NULL;
        if (!f)
                r = worker_digest_prefix(w, cache, &f);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < w->n_bindings && r >= 0; i++) {
                const Binding *b = &w->bindings[i];
                _cleanup_free_ char *c = NULL;

                if (b->kind == BINDING_SECRET) {
                        r = r < 0 ? r : sha256_feedf(f, "%s secret\n", b->name);
                        continue;
                }
                if (binding_needs_target(b) && !values[i]) {
                        unresolved = true;
                        r = r < 0 ? r : sha256_feedf(f, "%s <unresolved>\n", b->name);
                        continue;
                }
                r = plan_binding_canon_desired(w, b, values[i], store_ids[i], &c);
                if (r < 0)
                        break;
                r = r < 0 ? r : sha256_feedf(f, "%s %s\n", b->name, strna(c));
        }
        for (size_t i = 0; i < w->n_do_classes; i++)
                r = r < 0 ? r : sha256_feedf(f, "class %s %d\n", w->do_classes[i].class_name, w->do_classes[i].sqlite);
        if (w->n_migrations > 0)
                r = r < 0 ? r : sha256_feedf(f, "migration %s\n", strna(w->migrations[w->n_migrations - 1].tag));
        sha256_end_hex(f, ret);
        if (r >= 0 && !ret[0])
                r = -ENOMEM;
        /* A cache that cannot be made is only a cache. */
        if (r >= 0 && cache) {
                Worker *mw = (Worker *) w;

                free(mw->digest_key);
                mw->digest_key = TAKE_PTR(key);
                memcpy(mw->digest_cached, ret, 65);
                mw->digest_unresolved = unresolved;
        }
out:
        for (size_t i = 0; values && i < w->n_bindings; i++)
                free(values[i]);
        for (size_t i = 0; store_ids && i < w->n_bindings; i++)
                free(store_ids[i]);
        free(values);
        free(store_ids);
        if (r < 0)
                return r;
        if (ret_unresolved)
                *ret_unresolved = unresolved;
        return 0;
}

/* Caches of a worker whose canonical form (Worker.digest) is the same in
 * the generation before: its own digest part and its last digest. A spec
 * edit then costs only the workers it touched. */
void plan_generation_inherit(Generation *g, const Generation *old) {
        if (!g || !old || !g->sorted || !old->sorted || g == old)
                return;
        for (size_t i = 0; i < g->n_workers; i++) {
                Worker *w = &g->workers[i];
                const Worker *o = generation_find_worker(old, w->name);

                if (!o || !streq(o->digest, w->digest))
                        continue;
                if (!w->upload_prefix && o->upload_prefix)
                        w->upload_prefix = sha256_copy(o->upload_prefix);
                if (!w->digest_key && o->digest_key) {
                        w->digest_key = strdup(o->digest_key);
                        memcpy(w->digest_cached, o->digest_cached, 65);
                        w->digest_unresolved = o->digest_unresolved;
                }
        }
}

void plan_resource_digest(ResourceKind kind, const void *d, char ret[static 65]) {
        char buf[4096];

        switch (kind) {
        case RESOURCE_KV_NAMESPACE:
                snprintf(buf, sizeof(buf), "kv|%s", strna(plan_resource_cf_name(kind, d)));
                break;
        case RESOURCE_R2_BUCKET: {
                const R2Bucket *b = d;
                snprintf(buf, sizeof(buf), "r2|%s|%s|%s|%s", strna(plan_resource_cf_name(kind, d)),
                         strna(b->jurisdiction), strna(b->location_hint), strna(b->storage_class));
                break;
        }
        case RESOURCE_D1_DATABASE: {
                const D1Database *x = d;
                snprintf(buf, sizeof(buf), "d1|%s|%s|%s", strna(plan_resource_cf_name(kind, d)),
                         strna(x->location_hint), strna(x->jurisdiction));
                break;
        }
        case RESOURCE_QUEUE: {
                const Queue *q = d;
                snprintf(buf, sizeof(buf), "queue|%s|%lld|%lld", strna(plan_resource_cf_name(kind, d)),
                         (long long) q->delivery_delay, (long long) q->message_retention_period);
                break;
        }
        case RESOURCE_SECRETS_STORE:
                snprintf(buf, sizeof(buf), "store|%s", strna(plan_resource_cf_name(kind, d)));
                break;
        case RESOURCE_SECRETS_STORE_SECRET: {
                const SecretsStoreSecret *s = d;
                size_t o;

                o = (size_t) snprintf(buf, sizeof(buf), "sss|%s|%s|%s|", strna(s->store),
                                      strna(plan_resource_cf_name(kind, d)), strna(s->comment));
                for (size_t i = 0; s->scopes && s->scopes[i] && o < sizeof(buf); i++)
                        o += (size_t) snprintf(buf + o, sizeof(buf) - o, "%s,", s->scopes[i]);
                break;
        }
        default:
                snprintf(buf, sizeof(buf), "?");
        }
        sha256_hex(buf, strlen(buf), ret);
}

int plan_auto_migration_tag(char * const *classes, char **ret) {
        char buf[8192];
        char hex[65];
        size_t o = 0;
        char *t;

        buf[0] = 0;
        for (size_t i = 0; classes && classes[i] && o < sizeof(buf); i++)
                o += (size_t) snprintf(buf + o, sizeof(buf) - o, "%s\n", classes[i]);
        sha256_hex(buf, strlen(buf), hex);
        if (asprintf(&t, "bindery-%.12s", hex) < 0)
                return -ENOMEM;
        *ret = t;
        return 0;
}

/* ---- the planner ---- */

typedef struct Provider {
        ResourceKind kind;
        const char *doc;
        int index;              /* action that makes it usable; -1 none */
        bool blocked;
} Provider;

typedef struct Ctx {
        const Generation *g;
        const LiveState *live;
        const Ledger *ledger;
        const PlanPolicy *policy;
        Plan *plan;
        Provider *providers;
        size_t n_providers;
        struct lh_table *provider_index;    /* resource_key(kind, doc) -> first provider */
        int *worker_main;       /* per g->workers: main action index (-1) */
        bool *worker_blocked;
} Ctx;

/* ---- The diff shown under an action (ActionChange) ---- */

typedef struct Changes {
        ActionChange *v;
        size_t n;
} Changes;

static void changes_clear(Changes *cs) {
        for (size_t i = 0; i < cs->n; i++) {
                free(cs->v[i].field);
                free(cs->v[i].before);
                free(cs->v[i].after);
        }
        free(cs->v);
        *cs = (Changes) {};
}

static int changes_add(Changes *cs, char op, const char *field, const char *before, const char *after, bool secret) {
        size_t n = cs->n;
        ActionChange *v = grow(cs->v, &n, sizeof(ActionChange));

        if (!v)
                return -ENOMEM;
        cs->v = v;
        cs->n = n;
        v = &cs->v[n - 1];
        v->op = op;
        v->secret = secret;
        if (dup_into(&v->field, field) < 0 || (!secret && (dup_into(&v->before, before) < 0 ||
                                                           dup_into(&v->after, after) < 0)))
                return -ENOMEM;
        return 0;
}

/* Moves the collected lines onto an action (which then owns them). */
static void action_take_changes(Action *a, Changes *cs) {
        if (!a || cs->n == 0)
                return;
        a->changes = cs->v;
        a->n_changes = cs->n;
        *cs = (Changes) {};
}

static char *json_quote(const char *s) {
        _cleanup_(json_object_putp) json_object *j = json_object_new_string(s ?: "");

        return j ? strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE))
                 : NULL;
}

/* "%XX" escapes of canon_build undone. */
static char *canon_unescape(const char *s, size_t n) {
        char *r = malloc(n + 1), *o = r;

        if (!r)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char) s[i + 1]) &&
                    isxdigit((unsigned char) s[i + 2])) {
                        char hex[3] = { s[i + 1], s[i + 2], 0 };

                        *o++ = (char) strtol(hex, NULL, 16);
                        i += 2;
                } else
                        *o++ = s[i];
        }
        *o = 0;
        return r;
}

/* A binding's canonical form as a reader wants it: a plain var as a
 * quoted string, a JSON var as its JSON, anything else as the canonical
 * "type key=value" text. */
static const char *skip_prefix(const char *s, const char *prefix) {
        return startswith(s, prefix) ? s + strlen(prefix) : NULL;
}

static char *binding_display(const char *canon) {
        const char *p;

        if (!canon)
                return NULL;
        if ((p = skip_prefix(canon, "plain_text text="))) {
                _cleanup_free_ char *t = canon_unescape(p, strlen(p));

                return t ? json_quote(t) : NULL;
        }
        if (streq(canon, "plain_text"))
                return strdup("\"\"");
        if ((p = skip_prefix(canon, "json json=")))
                return canon_unescape(p, strlen(p));
        return strdup(canon);
}

static char *strv_display(char * const *l) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        fputc('[', f);
        for (size_t i = 0; l && l[i]; i++) {
                _cleanup_free_ char *q = json_quote(l[i]);

                fprintf(f, "%s%s", i ? ", " : "", strna(q));
        }
        fputc(']', f);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* The value of key in a "k=v k=v" text, or NULL. */
static char *kv_get(const char *text, const char *key) {
        size_t kl = strlen(key);

        for (const char *p = text; p && *p;) {
                const char *end = strchr(p, ' ');
                size_t len = end ? (size_t) (end - p) : strlen(p);

                if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=')
                        return strndup(p + kl + 1, len - kl - 1);
                p = end ? end + 1 : NULL;
        }
        return NULL;
}

/* "k=v k=v" texts compared key by key: one "~ prefix.k: v -> v" line per
 * difference. before NULL: unknown, every key is shown as such. */
static int changes_add_kv(Changes *cs, const char *prefix, const char *before, const char *after) {
        for (const char *p = after; p && *p;) {
                const char *end = strchr(p, ' ');
                size_t len = end ? (size_t) (end - p) : strlen(p);
                const char *eq = memchr(p, '=', len);
                _cleanup_free_ char *key = NULL, *val = NULL, *old = NULL, *field = NULL;

                if (eq) {
                        key = strndup(p, (size_t) (eq - p));
                        val = strndup(eq + 1, len - (size_t) (eq - p) - 1);
                        if (!key || !val)
                                return -ENOMEM;
                        old = before ? kv_get(before, key) : NULL;
                        if (!before || !streq_ptr(old, val)) {
                                if (asprintf(&field, "%s.%s", prefix, key) < 0)
                                        return -ENOMEM;
                                if (changes_add(cs, '~', field, old, val, false) < 0)
                                        return -ENOMEM;
                        }
                }
                p = end ? end + 1 : NULL;
        }
        return 0;
}

static Action *add_action(Ctx *c, ActionKind kind, ResourceKind rk, const char *doc, const char *name,
                          const char *fmt, ...) _printf_(6, 7);
static Action *add_action(Ctx *c, ActionKind kind, ResourceKind rk, const char *doc, const char *name,
                          const char *fmt, ...) {
        Plan *p = c->plan;
        size_t n = p->n_actions;
        Action *a;
        va_list ap;
        char *reason = NULL;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&reason, fmt, ap);
        va_end(ap);
        if (r < 0)
                return NULL;
        a = grow(p->actions, &n, sizeof(Action));
        if (!a) {
                free(reason);
                return NULL;
        }
        p->actions = a;
        p->n_actions = n;
        a = &p->actions[n - 1];
        a->index = (unsigned) (n - 1);
        a->kind = kind;
        a->resource_kind = rk;
        a->reason = reason;
        if (dup_into(&a->doc, doc) < 0 || dup_into(&a->name, name) < 0)
                return NULL;
        return a;
}

static bool reaches(const Plan *p, unsigned from, unsigned to, unsigned depth) {
        const Action *a = &p->actions[from];

        if (from == to)
                return true;
        if (depth > 64)
                return true; /* treat as a cycle: be safe */
        for (size_t i = 0; i < a->n_deps; i++)
                if (reaches(p, a->deps[i], to, depth + 1))
                        return true;
        return false;
}

/* Adds a dependency a → on (a waits for on). Refuses cycles. */
static int add_dep(Plan *p, unsigned a, int on) {
        Action *x;
        unsigned *d;

        if (on < 0 || (unsigned) on == a)
                return 0;
        if (reaches(p, (unsigned) on, a, 0))
                return 0;
        x = &p->actions[a];
        for (size_t i = 0; i < x->n_deps; i++)
                if (x->deps[i] == (unsigned) on)
                        return 0;
        d = realloc(x->deps, (x->n_deps + 1) * sizeof(unsigned));
        if (!d)
                return -ENOMEM;
        x->deps = d;
        x->deps[x->n_deps++] = (unsigned) on;
        return 0;
}

static int add_provider(Ctx *c, ResourceKind kind, const char *doc, int index, bool blocked) {
        Provider *a;
        size_t n = c->n_providers;

        a = grow(c->providers, &n, sizeof(Provider));
        if (!a)
                return -ENOMEM;
        c->providers = a;
        c->n_providers = n;
        a[n - 1] = (Provider) { .kind = kind, .doc = doc, .index = index, .blocked = blocked };
        if (doc) {
                char *k = resource_key(kind, doc);

                if (!k || index_put_first(c->provider_index, k, n - 1) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The first provider of kind named doc: every binding of every worker
 * asks, so through the index (a scan of all providers per binding was
 * quadratic: 100 M strcmp per run at 10,000 workers). */
static const Provider *find_provider(const Ctx *c, ResourceKind kind, const char *doc) {
        if (doc) {
                _cleanup_free_ char *k = resource_key(kind, doc);
                size_t i;

                if (k)
                        return index_get(c->provider_index, k, &i) ? &c->providers[i] : NULL;
        }
        for (size_t i = 0; i < c->n_providers; i++)
                if (c->providers[i].kind == kind && streq_ptr(c->providers[i].doc, doc))
                        return &c->providers[i];
        return NULL;
}

int plan_secret_cmp(const void *a, const void *b) {
        const PlanSecret *x = a, *y = b;
        int r = strcmp(x->owner, y->owner);

        return r != 0 ? r : strcmp(x->name, y->name);
}

/* Every worker looks its secrets up: binary search when the engine sorted
 * them (plan_secret_cmp), a scan for a hand-built list (tests). */
static const PlanSecret *find_secret(const PlanPolicy *p, const char *owner, const char *name) {
        PlanSecret key = { .owner = owner, .name = name };

        if (p->secrets_sorted && owner && name)
                return p->n_secrets > 0 ? bsearch(&key, p->secrets, p->n_secrets, sizeof(PlanSecret), plan_secret_cmp) : NULL;
        for (size_t i = 0; i < p->n_secrets; i++)
                if (streq_ptr(p->secrets[i].owner, owner) && streq_ptr(p->secrets[i].name, name))
                        return &p->secrets[i];
        return NULL;
}

static const char *kind_label(ResourceKind k) {
        switch (k) {
        case RESOURCE_WORKER: return "worker";
        case RESOURCE_KV_NAMESPACE: return "KV namespace";
        case RESOURCE_R2_BUCKET: return "R2 bucket";
        case RESOURCE_D1_DATABASE: return "D1 database";
        case RESOURCE_QUEUE: return "queue";
        case RESOURCE_SECRETS_STORE: return "secrets store";
        case RESOURCE_SECRETS_STORE_SECRET: return "secrets store secret";
        default: return "resource";
        }
}

static bool settled(const PlanPolicy *p) {
        uint64_t since = p->generation_since_usec;

        if (since == 0)
                return p->prune_settle_usec == 0;
        return p->now_usec >= since && p->now_usec - since >= p->prune_settle_usec;
}

/* What the sections planning one resource document share. */
typedef struct ResourcePlan {
        Ctx *c;
        ResourceKind kind;
        const void *d;
        const ResourcePolicy *pol;
        const char *doc, *cf, *label;
        const char *store_id;       /* a secrets store secret's store, when known */
} ResourcePlan;

/* Registers the document as a provider of its dependents: index is the
 * action they wait for (-1: none), blocked blocks them. */
static int res_provide(const ResourcePlan *rp, int index, bool blocked) {
        return add_provider(rp->c, rp->kind, rp->doc, index, blocked);
}

static int res_blocked(const ResourcePlan *rp, Action *a) {
        return a ? res_provide(rp, (int) a->index, true) : -ENOMEM;
}

/* A secrets store secret's value as planned; NULL when it cannot be
 * read, after blocking the document (*ret: the result to return). */
static const PlanSecret *res_secret_value(const ResourcePlan *rp, int *ret) {
        const PlanSecret *ps = find_secret(rp->c->policy, "", rp->doc);

        if (ps && ps->hmac)
                return ps;
        *ret = res_blocked(rp, add_action(rp->c, ACTION_BLOCKED, rp->kind, rp->doc, rp->cf,
                                          "cannot read the secret value: %s",
                                          ps && ps->error ? ps->error : "reference not resolved"));
        return NULL;
}

static const char *secret_store_name(const Ctx *c, const SecretsStoreSecret *s) {
        return s->store ?: (c->g->default_store ? c->g->default_store->name : NULL);
}

/* external: bound, never changed; blocked when the account lacks it. */
static int res_external(const ResourcePlan *rp) {
        Ctx *c = rp->c;
        const char *xid = desired_external_id(rp->kind, rp->d);
        const LiveResource *lr;
        Action *a;

        lr = xid ? (kind_id_is_name(rp->kind) ? live_state_find_by_name(c->live, rp->kind, xid, NULL)
                                              : live_state_find_by_id(c->live, rp->kind, xid))
                 : live_state_find_by_name(c->live, rp->kind, rp->cf, rp->store_id);
        if (c->live->listed[rp->kind] && !lr)
                return res_blocked(rp, add_action(c, ACTION_BLOCKED, rp->kind, rp->doc, rp->cf,
                                                  "external %s '%s' does not exist; bindery never creates external "
                                                  "resources",
                                                  rp->label, xid ?: rp->cf));
        a = add_action(c, ACTION_NOOP, rp->kind, rp->doc, rp->cf, "external: bound, never changed");
        if (a && lr)
                (void) dup_into(&a->id, lr->id);
        return a ? res_provide(rp, -1, false) : -ENOMEM;
}

/* An update of an owned resource, with its changes. */
static int res_update(const ResourcePlan *rp, const LedgerEntry *e, Changes *cs, bool drift, const char *reason) {
        Action *a = add_action(rp->c, ACTION_UPDATE, rp->kind, rp->doc, rp->cf, "%s", reason);

        if (!a)
                return -ENOMEM;
        action_take_changes(a, cs);
        a->drift = drift;
        a->desired = rp->d;
        (void) dup_into(&a->id, e->id);
        return res_provide(rp, (int) a->index, false);
}

/* An owned secrets store secret: its value or settings moved. Returns 1
 * when it added an action. */
static int res_owned_secret(const ResourcePlan *rp, const LedgerEntry *e, const char *digest) {
        _cleanup_(changes_clear) Changes cs = {};
        const PlanSecret *ps;
        bool value;
        int r = 0;

        ps = res_secret_value(rp, &r);
        if (!ps)
                return r < 0 ? r : 1;
        value = !streq_ptr(ps->hmac, e->hmac);
        if (!value && streq_ptr(digest, e->digest))
                return 0;
        if (value && changes_add(&cs, '~', "value", NULL, NULL, true) < 0)
                return -ENOMEM;
        r = res_update(rp, e, &cs, false, value ? "value changed" : "settings changed");
        return r < 0 ? r : 1;
}

/* An owned KV namespace whose title differs from the spec: renamed back
 * (drift when the record has the spec's title) or to the spec's. */
static int res_owned_kv_title(const ResourcePlan *rp, const LedgerEntry *e, const LiveResource *lr) {
        bool drift = streq_ptr(e->name, rp->cf);
        _cleanup_(changes_clear) Changes cs = {};
        _cleanup_free_ char *b = NULL, *n = NULL, *reason = NULL;
        Action *a;

        if (drift && rp->pol->drift == DRIFT_REPORT) {
                a = add_action(rp->c, ACTION_DRIFT_REPORT, rp->kind, rp->doc, rp->cf,
                               "KV namespace renamed outside bindery to '%s' (drift: report)", strna(lr->name));
                if (!a)
                        return -ENOMEM;
                a->drift = true;
                rp->c->plan->n_drift++;
                return res_provide(rp, -1, false);
        }
        b = json_quote(lr->name);
        n = json_quote(rp->cf);
        if (!b || !n || changes_add(&cs, '~', "title", b, n, false) < 0)
                return -ENOMEM;
        if (asprintf(&reason, "title '%s' → '%s'%s", strna(lr->name), rp->cf,
                     drift ? " (renamed outside bindery)" : "") < 0)
                return -ENOMEM;
        return res_update(rp, e, &cs, drift, reason);
}

/* An owned queue whose settings moved (the live settings are not
 * listed: the old values are unknown). */
static int res_owned_queue(const ResourcePlan *rp, const LedgerEntry *e) {
        const Queue *q = rp->d;
        _cleanup_(changes_clear) Changes cs = {};
        char v[32];

        snprintf(v, sizeof(v), "%lld", (long long) q->delivery_delay);
        if (q->delivery_delay >= 0 && changes_add(&cs, '~', "delivery_delay", NULL, v, false) < 0)
                return -ENOMEM;
        snprintf(v, sizeof(v), "%lld", (long long) q->message_retention_period);
        if (q->message_retention_period >= 0 && changes_add(&cs, '~', "message_retention_period", NULL, v, false) < 0)
                return -ENOMEM;
        return res_update(rp, e, &cs, false, "queue settings changed");
}

/* A resource bindery owns: recreated (or reported) when deleted outside
 * bindery, else compared with what was last applied. */
static int res_owned(const ResourcePlan *rp, const LedgerEntry *e, const char *digest) {
        Ctx *c = rp->c;
        ResourceKind kind = rp->kind;
        const LiveResource *lr;
        Action *a;
        int r;

        lr = kind_id_is_name(kind) ? live_state_find_by_name(c->live, kind, e->name ?: rp->cf, NULL)
                                   : live_state_find_by_id(c->live, kind, e->id);
        if (c->live->listed[kind] && !lr) {
                if (rp->pol->drift == DRIFT_REPORT) {
                        a = add_action(c, ACTION_DRIFT_REPORT, kind, rp->doc, rp->cf,
                                       "%s '%s' (%s) was deleted outside bindery (drift: report)", rp->label,
                                       strna(e->name), strna(e->id));
                        if (!a)
                                return -ENOMEM;
                        a->drift = true;
                        c->plan->n_drift++;
                        return res_provide(rp, -1, false);
                }
                a = add_action(c, ACTION_CREATE, kind, rp->doc, rp->cf,
                               "%s '%s' (%s) was deleted outside bindery; recreating", rp->label, strna(e->name),
                               strna(e->id));
                if (!a)
                        return -ENOMEM;
                a->drift = true;
                a->intent = true;
                a->desired = rp->d;
                return res_provide(rp, (int) a->index, false);
        }
        /* Exists (or unlisted): compare with what we last applied. */
        if (kind == RESOURCE_SECRETS_STORE_SECRET) {
                r = res_owned_secret(rp, e, digest);
                if (r != 0)
                        return r < 0 ? r : 0;
        } else if (kind == RESOURCE_KV_NAMESPACE && lr && !streq_ptr(lr->name, rp->cf))
                return res_owned_kv_title(rp, e, lr);
        else if (kind == RESOURCE_QUEUE && !streq_ptr(digest, e->digest) && e->digest)
                return res_owned_queue(rp, e);
        a = add_action(c, ACTION_NOOP, kind, rp->doc, rp->cf, "in sync");
        if (!a)
                return -ENOMEM;
        (void) dup_into(&a->id, e->id);
        return res_provide(rp, -1, false);
}

/* A resource of the spec's name that bindery does not own: adopted when
 * the spec says so or an interrupted run of ours created it, else
 * blocked. An adopted store secret's value is unknown: ours is written. */
static int res_existing(const ResourcePlan *rp, const LiveResource *lr) {
        Ctx *c = rp->c;
        const LedgerIntent *in = ledger_find_intent(c->ledger, rp->kind, rp->cf);
        const PlanSecret *ps;
        Action *a, *u;
        unsigned ai;
        int r = 0;

        if (!in && !rp->pol->adopt) {
                a = add_action(c, ACTION_BLOCKED, rp->kind, rp->doc, rp->cf,
                               "%s '%s' already exists (%s) and is not owned by bindery; "
                               "set adopt: true to take it over, or choose another name",
                               rp->label, rp->cf, strna(lr->id));
                if (a)
                        (void) dup_into(&a->id, lr->id);
                return res_blocked(rp, a);
        }
        a = in ? add_action(c, ACTION_ADOPT, rp->kind, rp->doc, rp->cf,
                            "%s '%s' was created by an interrupted run (%s): recognised as own", rp->label, rp->cf,
                            strna(in->run_id))
               : add_action(c, ACTION_ADOPT, rp->kind, rp->doc, rp->cf,
                            "adopt: true — taking ownership of existing %s '%s' (%s)", rp->label, rp->cf,
                            strna(lr->id));
        if (!a)
                return -ENOMEM;
        a->desired = rp->d;
        (void) dup_into(&a->id, lr->id);
        if (rp->kind != RESOURCE_SECRETS_STORE_SECRET)
                return res_provide(rp, (int) a->index, false);
        ai = a->index;
        ps = res_secret_value(rp, &r);
        if (!ps)
                return r;
        u = add_action(c, ACTION_UPDATE, rp->kind, rp->doc, rp->cf, "value set after adopting");
        if (!u)
                return -ENOMEM;
        u->desired = rp->d;
        (void) dup_into(&u->id, lr->id);
        if (add_dep(c->plan, u->index, (int) ai) < 0)
                return -ENOMEM;
        return res_provide(rp, (int) u->index, false);
}

/* A resource neither owned nor present: created (a store secret after
 * its store). */
static int res_create(const ResourcePlan *rp) {
        Ctx *c = rp->c;
        Action *a;
        int r = 0;

        if (rp->kind == RESOURCE_SECRETS_STORE_SECRET && !res_secret_value(rp, &r))
                return r;
        a = add_action(c, ACTION_CREATE, rp->kind, rp->doc, rp->cf, "new %s '%s'", rp->label, rp->cf);
        if (!a)
                return -ENOMEM;
        a->intent = true;
        a->desired = rp->d;
        if (rp->kind == RESOURCE_SECRETS_STORE_SECRET) {
                const Provider *sp = find_provider(c, RESOURCE_SECRETS_STORE, secret_store_name(c, rp->d));

                if (sp && add_dep(c->plan, a->index, sp->index) < 0)
                        return -ENOMEM;
        }
        return res_provide(rp, (int) a->index, false);
}

/* Plans one non-worker resource document. */
static int plan_resource(Ctx *c, ResourceKind kind, const void *d) {
        ResourcePlan rp = {
                .c = c,
                .kind = kind,
                .d = d,
                .pol = desired_policy(kind, d),
                .doc = desired_doc_name(kind, d),
                .cf = plan_resource_cf_name(kind, d),
                .label = kind_label(kind),
        };
        const LedgerEntry *e = ledger_find(c->ledger, kind, rp.doc);
        const LiveResource *lr;
        char digest[65];
        Action *a;

        if (kind == RESOURCE_SECRETS_STORE_SECRET) {
                const SecretsStoreSecret *s = d;
                const Provider *sp = find_provider(c, RESOURCE_SECRETS_STORE, secret_store_name(c, s));

                rp.store_id = plan_store_id(c->g, s->store, c->live, c->ledger);
                if (!rp.store_id && !(sp && sp->index >= 0 && !sp->blocked))
                        return res_blocked(&rp, add_action(c, ACTION_BLOCKED, kind, rp.doc, rp.cf,
                                                           "the secrets store '%s' for %s '%s' does not exist",
                                                           strna(secret_store_name(c, s)), rp.label, rp.cf));
        }
        if (rp.pol->suspend) {
                a = add_action(c, ACTION_NOOP, kind, rp.doc, rp.cf, "suspended in the spec");
                if (!a)
                        return -ENOMEM;
                a->suspended = true;
                return res_provide(&rp, -1, false);
        }
        if (rp.pol->external)
                return res_external(&rp);
        plan_resource_digest(kind, d, digest);
        if (e)
                return res_owned(&rp, e, digest);
        lr = live_state_find_by_name(c->live, kind, rp.cf, rp.store_id);
        if (lr)
                return res_existing(&rp, lr);
        return res_create(&rp);
}

static bool strv_equal_null(char * const *a, char * const *b);

/* Appends "; text" to a growing reason. */
static int reason_add(char **r, const char *fmt, ...) _printf_(2, 3);
static int reason_add(char **r, const char *fmt, ...) {
        _cleanup_free_ char *piece = NULL;
        char *n;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&piece, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        if (!*r) {
                *r = TAKE_PTR(piece);
                return 0;
        }
        if (asprintf(&n, "%s; %s", *r, piece) < 0)
                return -ENOMEM;
        free(*r);
        *r = n;
        return 0;
}

/* Differences between the desired and the live bindings (lw NULL: a new
 * worker, every binding is added). Each goes to cs; to *reason too when
 * reason is not NULL (drift: the spec did not change). */
static int diff_bindings(Ctx *c, const Worker *w, const LiveWorker *lw, char **reason, Changes *cs) {
        int r = 0;

        for (size_t i = 0; i < w->n_bindings; i++) {
                const Binding *b = &w->bindings[i];
                _cleanup_free_ char *v = NULL, *st = NULL, *canon = NULL, *before = NULL, *after = NULL;
                const LiveBinding *found = NULL;
                bool unresolved;

                if (b->kind == BINDING_SECRET)
                        continue;
                r = plan_resolve_binding(c->g, w, b, c->live, c->ledger, false, &v, &st);
                if (r < 0)
                        return r;
                /* A resource still to be (re)created: its id is known after apply. */
                unresolved = b->target && !v;
                r = plan_binding_canon_desired(w, b, v, st, &canon);
                if (r < 0)
                        return r;
                for (size_t j = 0; lw && j < lw->n_bindings; j++)
                        if (streq_ptr(lw->bindings[j].name, b->name))
                                found = &lw->bindings[j];
                if (found && streq_ptr(found->canon, canon))
                        continue;
                if (!unresolved && !(after = binding_display(canon)))
                        return -ENOMEM;
                if (found && !(before = binding_display(found->canon)))
                        return -ENOMEM;
                if (changes_add(cs, found ? '~' : '+', b->name, before, after, false) < 0)
                        return -ENOMEM;
                if (!reason || !lw)
                        continue;
                if (!found)
                        r = reason_add(reason, "binding %s missing", b->name);
                else
                        r = reason_add(reason, "binding %s differs", b->name);
                if (r < 0)
                        return r;
        }
        for (size_t j = 0; lw && j < lw->n_bindings; j++) {
                bool want = false;

                for (size_t i = 0; i < w->n_bindings; i++)
                        if (streq_ptr(w->bindings[i].name, lw->bindings[j].name) &&
                            w->bindings[i].kind != BINDING_SECRET)
                                want = true;
                if (!want) {
                        _cleanup_free_ char *before = binding_display(lw->bindings[j].canon);

                        if (lw->bindings[j].canon && !before)
                                return -ENOMEM;
                        if (changes_add(cs, '-', strna(lw->bindings[j].name), before, NULL, false) < 0)
                                return -ENOMEM;
                        if (reason && reason_add(reason, "unexpected binding %s", strna(lw->bindings[j].name)) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

/* Desired class names, sorted. */
static char **worker_classes(const Worker *w) {
        char **l = NULL;

        for (size_t i = 0; i < w->n_do_classes; i++)
                if (strv_extend(&l, w->do_classes[i].class_name) < 0) {
                        strv_free(l);
                        return NULL;
                }
        if (!l)
                l = calloc(1, sizeof(char *));
        strv_sort_uniq(l);
        return l;
}

/* Works out pending Durable Object migrations. Sets a->old_tag/new_tag and
 * auto_new_classes; returns 1 if a migration is pending, 0 if not, or a
 * negative errno; *blocked_reason when a class vanished without a
 * deletion step. */
static int plan_migrations(const Worker *w, const LedgerEntry *e, const LiveWorker *lw, Action *a,
                           char **blocked_reason) {
        const char *current = lw && lw->migration_tag ? lw->migration_tag : (e ? e->migration_tag : NULL);
        _cleanup_strv_free_ char **classes = worker_classes(w);

        if (!classes)
                return -ENOMEM;
        if (w->n_migrations > 0) {
                size_t start = 0;

                if (current) {
                        bool found = false;

                        for (size_t i = 0; i < w->n_migrations; i++)
                                if (streq_ptr(w->migrations[i].tag, current)) {
                                        start = i + 1;
                                        found = true;
                                }
                        if (!found && !startswith(current, "bindery-")) {
                                if (asprintf(blocked_reason,
                                             "live migration tag '%s' is not in the spec's migration history",
                                             current) < 0)
                                        return -ENOMEM;
                                return 0;
                        }
                }
                if (start >= w->n_migrations)
                        return 0;
                if (dup_into(&a->old_tag, current) < 0 || dup_into(&a->new_tag, w->migrations[w->n_migrations - 1].tag) < 0)
                        return -ENOMEM;
                return 1;
        }
        /* Automatic: new classes only. */
        {
                char * const *known = e ? e->do_classes : NULL;
                _cleanup_strv_free_ char **added = NULL;

                for (size_t i = 0; known && known[i]; i++)
                        if (!strv_contains(classes, known[i])) {
                                if (asprintf(blocked_reason,
                                             "Durable Object class %s was removed from the spec without a "
                                             "deleted_classes migration step; its objects would be lost",
                                             known[i]) < 0)
                                        return -ENOMEM;
                                return 0;
                        }
                for (size_t i = 0; classes[i]; i++)
                        if (!strv_contains(known, classes[i]) && strv_extend(&added, classes[i]) < 0)
                                return -ENOMEM;
                if (!added)
                        return 0;
                /* A script that already has these classes (adopted, or a
                 * crash after the upload) needs no new step. */
                if (!e && lw && lw->migration_tag) {
                        _cleanup_free_ char *tag = NULL;

                        if (plan_auto_migration_tag(classes, &tag) < 0)
                                return -ENOMEM;
                        if (streq(tag, lw->migration_tag))
                                return 0;
                }
                if (dup_into(&a->old_tag, current) < 0 || plan_auto_migration_tag(classes, &a->new_tag) < 0)
                        return -ENOMEM;
                a->auto_new_classes = TAKE_PTR(added);
                return 1;
        }
}

static bool live_r2_exists(const LiveState *live, const char *name, const char *jurisdiction) {
        for (size_t i = 0; i < live->n_resources; i++) {
                const LiveResource *r = &live->resources[i];

                if (r->kind == RESOURCE_R2_BUCKET && streq_ptr(r->name, name) &&
                    streq_ptr(norm_jurisdiction(r->jurisdiction), norm_jurisdiction(jurisdiction)))
                        return true;
        }
        return false;
}

static bool class_declared(const Worker *w, const char *class_name) {
        for (size_t i = 0; w && i < w->n_do_classes; i++)
                if (streq_ptr(w->do_classes[i].class_name, class_name))
                        return true;
        return false;
}

/* Whether binding b of worker w names a target that exists nowhere: not
 * in the spec, not in the account as observed. Cloudflare refuses such an
 * upload (KV 10041, R2 10085, D1 10181, queue 11000, service 10143, DO
 * 10061, store secret 10182), so the worker is blocked before anything of
 * it is sent. Targets given as spec documents are planned (and blocked)
 * with their document; this covers ids and names written in the binding.
 * Only a list that was read can prove absence. Returns a description of
 * the missing target (caller frees), NULL if it exists or cannot be
 * told, or sets -ENOMEM in *r. */
static char *binding_target_missing(const Ctx *c, const Worker *w, const Binding *b, int *r) {
        const Generation *g = c->g;
        const LiveState *live = c->live;
        char *m = NULL;
        int k = 0;

        switch (b->kind) {
        case BINDING_KV_NAMESPACE:
                if (b->target || !b->target_id || !live->listed[RESOURCE_KV_NAMESPACE])
                        return NULL;
                for (size_t i = 0; i < g->n_kv_namespaces; i++)
                        if (streq_ptr(g->kv_namespaces[i].id, b->target_id))
                                return NULL;
                if (live_state_find_by_id(live, RESOURCE_KV_NAMESPACE, b->target_id))
                        return NULL;
                k = asprintf(&m, "KV namespace '%s'", b->target_id);
                break;
        case BINDING_R2_BUCKET:
                if (b->target || !b->target_id || !live->listed[RESOURCE_R2_BUCKET])
                        return NULL;
                for (size_t i = 0; i < g->n_r2_buckets; i++)
                        if (streq_ptr(plan_resource_cf_name(RESOURCE_R2_BUCKET, &g->r2_buckets[i]), b->target_id))
                                return NULL;
                if (live_r2_exists(live, b->target_id, b->jurisdiction))
                        return NULL;
                k = asprintf(&m, "R2 bucket '%s'%s%s", b->target_id, b->jurisdiction ? " in jurisdiction " : "",
                             b->jurisdiction ?: "");
                break;
        case BINDING_D1:
                if (b->target || !b->target_id || !live->listed[RESOURCE_D1_DATABASE])
                        return NULL;
                for (size_t i = 0; i < g->n_d1_databases; i++)
                        if (streq_ptr(g->d1_databases[i].id, b->target_id))
                                return NULL;
                if (live_state_find_by_id(live, RESOURCE_D1_DATABASE, b->target_id))
                        return NULL;
                k = asprintf(&m, "D1 database '%s'", b->target_id);
                break;
        case BINDING_QUEUE:
                if (b->target || !b->target_id || !live->listed[RESOURCE_QUEUE])
                        return NULL;
                for (size_t i = 0; i < g->n_queues; i++)
                        if (streq_ptr(plan_resource_cf_name(RESOURCE_QUEUE, &g->queues[i]), b->target_id))
                                return NULL;
                if (live_state_find_by_name(live, RESOURCE_QUEUE, b->target_id, NULL))
                        return NULL;
                k = asprintf(&m, "queue '%s'", b->target_id);
                break;
        case BINDING_SERVICE:
                if (!b->service || !live->workers_listed || generation_find_worker(g, b->service) ||
                    live_state_find_worker(live, b->service))
                        return NULL;
                k = asprintf(&m, "worker '%s'", b->service);
                break;
        case BINDING_DURABLE_OBJECT: {
                const char *script = b->script_name ?: w->name;
                const Worker *t = generation_find_worker(g, script);

                if (t) {
                        if (class_declared(t, b->class_name))
                                return NULL;
                        k = asprintf(&m, "Durable Object class '%s' in worker '%s'", strna(b->class_name),
                                     script);
                        break;
                }
                if (!live->workers_listed || live_state_find_worker(live, script))
                        return NULL;
                k = asprintf(&m, "Durable Object class '%s' in worker '%s'", strna(b->class_name), script);
                break;
        }
        case BINDING_SECRETS_STORE_SECRET: {
                const char *store;

                if (b->target || !b->secret_name || !live->listed[RESOURCE_SECRETS_STORE_SECRET])
                        return NULL;
                store = plan_store_id(g, b->store, live, c->ledger);
                if (!store)
                        return NULL; /* the store itself is reported missing */
                for (size_t i = 0; i < g->n_secrets_store_secrets; i++) {
                        const SecretsStoreSecret *s = &g->secrets_store_secrets[i];

                        if (streq_ptr(plan_resource_cf_name(RESOURCE_SECRETS_STORE_SECRET, s), b->secret_name) &&
                            streq_ptr(plan_store_id(g, s->store, live, c->ledger), store))
                                return NULL;
                }
                if (live_state_find_by_name(live, RESOURCE_SECRETS_STORE_SECRET, b->secret_name, store))
                        return NULL;
                k = asprintf(&m, "Secrets Store secret '%s' in store '%s'", b->secret_name, store);
                break;
        }
        default:
                return NULL;
        }
        if (k < 0) {
                *r = -ENOMEM;
                return NULL;
        }
        return m;
}

/* What a first upload sets: every non-secret binding, the date and flags. */
static int new_worker_changes(Ctx *c, const Worker *w, Changes *cs) {
        _cleanup_free_ char *d = json_quote(w->compatibility_date);
        int r;

        if (!d || changes_add(cs, '+', "compatibility_date", NULL, d, false) < 0)
                return -ENOMEM;
        if (strv_length(w->compatibility_flags) > 0) {
                _cleanup_free_ char *f = strv_display(w->compatibility_flags);

                if (!f || changes_add(cs, '+', "compatibility_flags", NULL, f, false) < 0)
                        return -ENOMEM;
        }
        r = diff_bindings(c, w, NULL, NULL, cs);
        return r;
}

/* Why nothing of the worker can be uploaded: a binding whose target is
 * neither in the spec nor in the account, or whose target is blocked
 * (*ret NULL: neither). */
static int main_blocked_reason(Ctx *c, const Worker *w, char **ret) {
        _cleanup_free_ char *blocked = NULL;

        for (size_t i = 0; i < w->n_bindings && !blocked; i++) {
                const Binding *b = &w->bindings[i];
                ResourceKind k = binding_kind_target(b->kind);
                const Provider *pv;
                int q = 0;
                _cleanup_free_ char *missing = binding_target_missing(c, w, b, &q);

                if (q < 0)
                        return q;
                if (missing &&
                    asprintf(&blocked, "%s:%u:%u: binding %s: its target %s does not exist (not in the spec, "
                                       "not in the account); nothing of worker '%s' is uploaded",
                             strna(b->loc.file), b->loc.line, b->loc.column, b->name, missing, w->name) < 0)
                        return -ENOMEM;
                if (blocked || k < 0 || !b->target)
                        continue;
                pv = find_provider(c, k, b->target);
                if (pv && pv->blocked &&
                    asprintf(&blocked, "binding %s needs %s '%s', which is blocked", b->name, kind_label(k),
                             b->target) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(blocked);
        return 0;
}

static int main_blocked(Ctx *c, size_t wi, const char *reason) {
        const Worker *w = &c->g->workers[wi];

        if (!add_action(c, ACTION_BLOCKED, RESOURCE_WORKER, w->name, w->name, "%s", reason))
                return -ENOMEM;
        c->worker_blocked[wi] = true;
        return 0;
}

/* A worker Cloudflare does not have: created with its migrations, new or
 * (recreate) deleted outside bindery. */
static int main_create(Ctx *c, size_t wi, bool recreate) {
        const Worker *w = &c->g->workers[wi];
        _cleanup_(changes_clear) Changes cs = {};
        _cleanup_free_ char *blocked = NULL;
        Action *a;
        int r;

        a = recreate ? add_action(c, ACTION_CREATE, RESOURCE_WORKER, w->name, w->name,
                                  "worker '%s' was deleted outside bindery; recreating", w->name)
                     : add_action(c, ACTION_CREATE, RESOURCE_WORKER, w->name, w->name, "new worker '%s'", w->name);
        if (!a)
                return -ENOMEM;
        a->intent = true;
        a->drift = recreate;
        a->worker = w;
        a->desired = w;
        c->worker_main[wi] = (int) a->index;
        r = new_worker_changes(c, w, &cs);
        if (r < 0)
                return r;
        action_take_changes(a, &cs);
        r = plan_migrations(w, NULL, NULL, a, &blocked);
        if (r < 0)
                return r;
        /* A recreate goes ahead whatever the migrations say. */
        if (blocked && !recreate) {
                a->kind = ACTION_BLOCKED;
                free(a->reason);
                a->reason = TAKE_PTR(blocked);
                c->worker_blocked[wi] = true;
        }
        return 0;
}

/* A worker Cloudflare has and bindery has no record of, adopted (the
 * spec says so, or an interrupted run of ours created it); the upload
 * that follows depends on the adoption. */
static int main_adopt(Ctx *c, const Worker *w, int *ret_index, char **spec_reason) {
        const LedgerIntent *in = ledger_find_intent(c->ledger, RESOURCE_WORKER, w->name);
        Action *a;

        a = in ? add_action(c, ACTION_ADOPT, RESOURCE_WORKER, w->name, w->name,
                            "worker '%s' was created by an interrupted run (%s): recognised as own", w->name,
                            strna(in->run_id))
               : add_action(c, ACTION_ADOPT, RESOURCE_WORKER, w->name, w->name,
                            "adopt: true — taking ownership of existing worker '%s'", w->name);
        if (!a)
                return -ENOMEM;
        a->worker = w;
        a->desired = w;
        (void) dup_into(&a->id, w->name);
        *ret_index = (int) a->index;
        return reason_add(spec_reason, "%s", in ? "finishing the interrupted create" : "first upload after adopting");
}

/* Script-level settings Cloudflare shows that differ from the spec:
 * compatibility date and flags, tags, logpush, observability. */
static int main_settings_drift(const Worker *w, const LiveWorker *lw, char **drift_reason, Changes *cs) {
        if (w->compatibility_date && lw->compatibility_date && !streq(w->compatibility_date, lw->compatibility_date)) {
                _cleanup_free_ char *b = json_quote(lw->compatibility_date), *n = json_quote(w->compatibility_date);

                if (reason_add(drift_reason, "compatibility_date is %s, want %s", lw->compatibility_date,
                               w->compatibility_date) < 0 ||
                    !b || !n || changes_add(cs, '~', "compatibility_date", b, n, false) < 0)
                        return -ENOMEM;
        }
        if (lw->flags_known && !strv_equal_null(lw->compatibility_flags, w->compatibility_flags)) {
                _cleanup_strv_free_ char **want = strv_copy(w->compatibility_flags);
                _cleanup_free_ char *b = strv_display(lw->compatibility_flags), *n = NULL;

                if (w->compatibility_flags && !want)
                        return -ENOMEM;
                strv_sort_uniq(want);
                n = strv_display(want);
                /* Shown as a change; the list order of flags is not drift. */
                if (!strv_equal_null(lw->compatibility_flags, want) &&
                    (!b || !n || changes_add(cs, '~', "compatibility_flags", b, n, false) < 0))
                        return -ENOMEM;
        }
        if (lw->tags_known && !strv_equal_null(lw->tags, w->tags)) {
                _cleanup_free_ char *b = strv_display(lw->tags), *n = strv_display(w->tags);

                if (reason_add(drift_reason, "tags differ") < 0 || !b || !n ||
                    changes_add(cs, '~', "tags", b, n, false) < 0)
                        return -ENOMEM;
        }
        if (lw->logpush >= 0 && lw->logpush != (int) w->logpush)
                if (reason_add(drift_reason, "logpush is %s", lw->logpush ? "on" : "off") < 0 ||
                    changes_add(cs, '~', "logpush", lw->logpush ? "true" : "false", w->logpush ? "true" : "false",
                                false) < 0)
                        return -ENOMEM;
        if (w->observability.set && lw->observability >= 0 && lw->observability != (int) w->observability.enabled)
                if (reason_add(drift_reason, "observability is %s", lw->observability ? "on" : "off") < 0 ||
                    changes_add(cs, '~', "observability.enabled", lw->observability ? "true" : "false",
                                w->observability.enabled ? "true" : "false", false) < 0)
                        return -ENOMEM;
        return 0;
}

/* What differs for an owned (or adopted) worker that exists: the spec
 * against the record (spec_reason), Cloudflare against both
 * (drift_reason), and the field changes to show. */
static int main_differences(Ctx *c, const Worker *w, const LedgerEntry *e, const LiveWorker *lw, char **spec_reason,
                            char **drift_reason, Changes *cs) {
        char digest[65];
        bool unresolved = false;
        int r;

        /* The digest observe computed against this LiveState, or computed now. */
        if (lw && lw->desired_digest[0]) {
                memcpy(digest, lw->desired_digest, sizeof(digest));
                unresolved = lw->desired_unresolved;
        } else {
                r = plan_worker_digest(c->g, w, c->live, c->ledger, false, digest, &unresolved);
                if (r < 0)
                        return r;
        }
        if (e && !streq_ptr(e->digest, digest))
                if (reason_add(spec_reason, "%s", e->digest ? (unresolved ? "a bound resource is being (re)created" : "spec changed")
                                                          : "never uploaded by bindery") < 0)
                        return -ENOMEM;
        if (lw && e && e->etag && lw->etag && !streq(lw->etag, e->etag))
                if (reason_add(drift_reason, "code changed outside bindery (etag %.12s, expected %.12s)", lw->etag,
                               e->etag) < 0)
                        return -ENOMEM;
        if (lw) {
                r = main_settings_drift(w, lw, drift_reason, cs);
                if (r < 0)
                        return r;
        }
        if (lw && lw->detail)
                /* With the spec changed, differing bindings are its change,
                 * not drift. */
                return diff_bindings(c, w, lw, *spec_reason ? NULL : drift_reason, cs);
        if (*spec_reason && e && e->digest && changes_add(cs, '?', "bindings", NULL, NULL, false) < 0)
                return -ENOMEM;
        return 0;
}

static void migration_done(Action *t) {
        t->old_tag = mfree(t->old_tag);
        t->new_tag = mfree(t->new_tag);
        t->auto_new_classes = strv_free(t->auto_new_classes);
}

/* The upload (or migration) of an existing worker when the spec moved, a
 * migration is due, or drift is to be repaired. Returns 1 when it added
 * the worker's main action (or blocked it), 0 when there is none. */
static int main_upload(Ctx *c, size_t wi, const LedgerEntry *e, const LiveWorker *lw, const char *spec_reason,
                       const char *drift_reason, Changes *cs, int adopt_index) {
        const Worker *w = &c->g->workers[wi];
        _cleanup_(migration_done) Action tmp = {};
        _cleanup_free_ char *blocked = NULL, *reason = NULL;
        Action *a;
        int m;

        m = plan_migrations(w, e, lw, &tmp, &blocked);
        if (m < 0)
                return m;
        if (blocked)
                return main_blocked(c, wi, blocked) < 0 ? -ENOMEM : 1;
        if (!spec_reason && !(drift_reason && w->policy.drift == DRIFT_REPAIR) && m == 0)
                return 0;
        if (spec_reason && reason_add(&reason, "%s", spec_reason) < 0)
                return -ENOMEM;
        if (drift_reason && reason_add(&reason, "drift: %s", drift_reason) < 0)
                return -ENOMEM;
        if (m > 0 && reason_add(&reason, "Durable Object migration %s → %s", strna(tmp.old_tag), strna(tmp.new_tag)) < 0)
                return -ENOMEM;
        a = add_action(c, m > 0 ? ACTION_MIGRATE : ACTION_UPLOAD, RESOURCE_WORKER, w->name, w->name, "%s", reason);
        if (!a)
                return -ENOMEM;
        a->old_tag = TAKE_PTR(tmp.old_tag);
        a->new_tag = TAKE_PTR(tmp.new_tag);
        a->auto_new_classes = TAKE_PTR(tmp.auto_new_classes);
        action_take_changes(a, cs);
        a->drift = !spec_reason && m == 0;
        a->worker = w;
        a->desired = w;
        c->worker_main[wi] = (int) a->index;
        if (add_dep(c->plan, a->index, adopt_index) < 0)
                return -ENOMEM;
        return 1;
}

/* The worker's main action: create, adopt, upload, migrate, or a
 * no-op, a drift report or blocked. Sets worker_main[wi]. */
static int plan_worker_main(Ctx *c, size_t wi) {
        const Worker *w = &c->g->workers[wi];
        const LedgerEntry *e = ledger_find(c->ledger, RESOURCE_WORKER, w->name);
        const LiveWorker *lw = live_state_find_worker(c->live, w->name);
        _cleanup_free_ char *spec_reason = NULL, *drift_reason = NULL, *blocked = NULL;
        _cleanup_(changes_clear) Changes cs = {};
        int adopt_index = -1, r;
        Action *a;

        c->worker_main[wi] = -1;
        if (w->policy.suspend) {
                a = add_action(c, ACTION_NOOP, RESOURCE_WORKER, w->name, w->name, "suspended in the spec");
                if (!a)
                        return -ENOMEM;
                a->suspended = true;
                return 0;
        }
        if (w->policy.external) {
                a = add_action(c, ACTION_NOOP, RESOURCE_WORKER, w->name, w->name, "external: never changed");
                return a ? 0 : -ENOMEM;
        }
        r = main_blocked_reason(c, w, &blocked);
        if (r < 0)
                return r;
        if (!e && lw && !w->policy.adopt && !ledger_find_intent(c->ledger, RESOURCE_WORKER, w->name)) {
                a = add_action(c, ACTION_BLOCKED, RESOURCE_WORKER, w->name, w->name,
                               "worker '%s' already exists and is not owned by bindery; "
                               "set adopt: true to take it over, or choose another name",
                               w->name);
                if (!a)
                        return -ENOMEM;
                c->worker_blocked[wi] = true;
                return 0;
        }
        if (blocked)
                return main_blocked(c, wi, blocked);
        if (!e && !lw)
                return main_create(c, wi, false);
        if (!e) {
                r = main_adopt(c, w, &adopt_index, &spec_reason);
                if (r < 0)
                        return r;
        } else if (c->live->workers_listed && !lw) {
                if (w->policy.drift != DRIFT_REPORT)
                        return main_create(c, wi, true);
                a = add_action(c, ACTION_DRIFT_REPORT, RESOURCE_WORKER, w->name, w->name,
                               "worker '%s' was deleted outside bindery (drift: report)", w->name);
                if (!a)
                        return -ENOMEM;
                a->drift = true;
                c->plan->n_drift++;
                return 0;
        }

        /* Owned (or being adopted) and present: what differs? */
        r = main_differences(c, w, e, lw, &spec_reason, &drift_reason, &cs);
        if (r < 0)
                return r;
        r = main_upload(c, wi, e, lw, spec_reason, drift_reason, &cs, adopt_index);
        if (r != 0)
                return r < 0 ? r : 0;
        if (drift_reason) {
                a = add_action(c, ACTION_DRIFT_REPORT, RESOURCE_WORKER, w->name, w->name, "drift (report only): %s",
                               drift_reason);
                if (!a)
                        return -ENOMEM;
                action_take_changes(a, &cs);
                a->drift = true;
                c->plan->n_drift++;
                return 0;
        }
        if (adopt_index < 0 && !add_action(c, ACTION_NOOP, RESOURCE_WORKER, w->name, w->name, "in sync"))
                return -ENOMEM;
        return 0;
}

static bool strv_equal_null(char * const *a, char * const *b) {
        return strv_length(a) == strv_length(b) && (strv_length(a) == 0 || strv_equal(a, b));
}

static char *strv_join_simple(char * const *l) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        for (size_t i = 0; l && l[i]; i++)
                fprintf(f, "%s%s", i ? ", " : "", l[i]);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* Whether a live consumer (canonical text) has every setting the spec
 * gives; settings the spec leaves out take the API's defaults. */
static bool consumer_matches(const QueueConsumer *qc, const char *live) {
        long long v[5];
        char dlq[256];
        const long long want[5] = { qc->batch_size, qc->max_retries, qc->max_wait_time_ms, qc->max_concurrency,
                                    qc->retry_delay };

        if (!live || sscanf(live,
                            "batch_size=%lld max_retries=%lld max_wait_time_ms=%lld max_concurrency=%lld "
                            "retry_delay=%lld dlq=%255s",
                            &v[0], &v[1], &v[2], &v[3], &v[4], dlq) != 6)
                return false;
        for (size_t i = 0; i < 5; i++)
                if (want[i] >= 0 && want[i] != v[i])
                        return false;
        if (qc->dead_letter_queue && !streq(qc->dead_letter_queue, dlq))
                return false;
        return true;
}

/* Canonical settings of a desired queue consumer. */
static char *consumer_canon(const QueueConsumer *qc) {
        char b[512];

        snprintf(b, sizeof(b), "batch_size=%lld max_retries=%lld max_wait_time_ms=%lld max_concurrency=%lld "
                 "retry_delay=%lld dlq=%s",
                 (long long) qc->batch_size, (long long) qc->max_retries, (long long) qc->max_wait_time_ms,
                 (long long) qc->max_concurrency, (long long) qc->retry_delay, strna(qc->dead_letter_queue));
        return strdup(b);
}

char *plan_consumer_canon_json(json_object *consumer) {
        json_object *s = NULL, *v;
        long long val[5] = { -1, -1, -1, -1, -1 };
        static const char *const keys[5] = { "batch_size", "max_retries", "max_wait_time_ms", "max_concurrency",
                                             "retry_delay" };
        char b[512];

        (void) json_object_object_get_ex(consumer, "settings", &s);
        for (size_t i = 0; i < 5; i++)
                if (s && json_object_object_get_ex(s, keys[i], &v) && !json_object_is_type(v, json_type_null))
                        val[i] = (long long) json_object_get_int64(v);
        snprintf(b, sizeof(b), "batch_size=%lld max_retries=%lld max_wait_time_ms=%lld max_concurrency=%lld "
                 "retry_delay=%lld dlq=%s",
                 val[0], val[1], val[2], val[3], val[4], strna(nonempty(json_get_str(consumer, "dead_letter_queue"))));
        return strdup(b);
}

/* What the sections of a worker's secondary actions share. */
typedef struct WorkerRest {
        Ctx *c;
        const Worker *w;
        const LedgerEntry *e;       /* NULL: never recorded */
        const LiveWorker *lw;       /* NULL: not observed */
        int main_i;                 /* the worker's main action, or -1 */
        bool report;                /* drift: report */
} WorkerRest;

/* The main action recreates a worker deleted outside bindery: every
 * secondary setting is written again. */
static bool rest_recreated(const WorkerRest *wr) {
        const Action *m = wr->main_i >= 0 ? &wr->c->plan->actions[wr->main_i] : NULL;

        return m && m->kind == ACTION_CREATE && m->drift;
}

/* A secondary change found as drift under drift: report. */
static Action *rest_drift_report(const WorkerRest *wr, const char *what, const char *why) {
        Action *a = add_action(wr->c, ACTION_DRIFT_REPORT, RESOURCE_WORKER, wr->w->name, wr->w->name,
                               "%s%s%s (drift: report)", what, why ? ": " : "", why ?: "");

        if (!a)
                return NULL;
        a->drift = true;
        wr->c->plan->n_drift++;
        return a;
}

/* Cross-worker dependencies of the main action: Durable Object and
 * workflow owners always first, service targets only when created, and
 * every data resource a binding targets. */
static int rest_main_deps(const WorkerRest *wr) {
        Ctx *c = wr->c;
        const Worker *w = wr->w;

        if (wr->main_i < 0)
                return 0;
        for (size_t i = 0; i < w->n_bindings; i++) {
                const Binding *b = &w->bindings[i];
                const char *other = NULL;

                if ((b->kind == BINDING_DURABLE_OBJECT || b->kind == BINDING_WORKFLOW) && b->script_name &&
                    !streq(b->script_name, w->name))
                        other = b->script_name;
                else if (b->kind == BINDING_SERVICE && b->service && !streq(b->service, w->name))
                        other = b->service;
                if (!other)
                        continue;
                for (size_t j = 0; j < c->g->n_workers; j++)
                        if (streq(c->g->workers[j].name, other) && c->worker_main[j] >= 0) {
                                const Action *o = &c->plan->actions[c->worker_main[j]];

                                if (b->kind != BINDING_SERVICE || o->kind == ACTION_CREATE)
                                        if (add_dep(c->plan, (unsigned) wr->main_i, c->worker_main[j]) < 0)
                                                return -ENOMEM;
                        }
        }
        for (size_t i = 0; i < w->n_bindings; i++) {
                const Binding *b = &w->bindings[i];
                ResourceKind k = binding_kind_target(b->kind);
                const Provider *pv = k >= 0 ? find_provider(c, k, b->target) : NULL;

                if (b->target && pv && add_dep(c->plan, (unsigned) wr->main_i, pv->index) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* One secret binding: put when new, changed or drifted; blocked when its
 * value cannot be read. */
static int rest_secret(const WorkerRest *wr, const Binding *b) {
        Ctx *c = wr->c;
        const Worker *w = wr->w;
        const PlanSecret *ps = find_secret(c->policy, w->name, b->name);
        const LedgerSecret *ls;
        const char *why = NULL;
        bool drift = false;
        Action *a;

        if (!ps || !ps->hmac) {
                a = add_action(c, ACTION_BLOCKED, RESOURCE_WORKER, w->name, w->name,
                               "secret %s: cannot read its value: %s", b->name,
                               ps && ps->error ? ps->error : "reference not resolved");
                if (!a || dup_into(&a->detail, b->name) < 0)
                        return -ENOMEM;
                return 0;
        }
        ls = wr->e ? ledger_entry_secret(wr->e, b->name) : NULL;
        if (!ls || !ls->hmac)
                why = "new secret";
        else if (!streq(ls->hmac, ps->hmac))
                why = "value changed";
        else if (wr->lw && wr->lw->detail && !strv_contains(wr->lw->secret_names, b->name))
                why = "missing on the worker (deleted outside bindery)", drift = true;
        else if (wr->lw && wr->lw->secrets_written)
                why = "secrets were written outside bindery", drift = true;
        else if (rest_recreated(wr))
                why = "worker is being recreated";
        if (!why)
                return 0;
        if (drift && wr->report) {
                _cleanup_free_ char *what = NULL;

                if (asprintf(&what, "secret %s", b->name) < 0)
                        return -ENOMEM;
                a = rest_drift_report(wr, what, why);
                return !a || dup_into(&a->detail, b->name) < 0 ? -ENOMEM : 0;
        }
        a = add_action(c, ACTION_PUT_SECRET, RESOURCE_WORKER, w->name, w->name, "secret %s: %s", b->name, why);
        if (!a || dup_into(&a->detail, b->name) < 0)
                return -ENOMEM;
        {
                /* Never a value: only whether it is new. */
                _cleanup_(changes_clear) Changes cs = {};

                if (changes_add(&cs, (!ls || !ls->hmac) ? '+' : '~', b->name, NULL, NULL, true) < 0)
                        return -ENOMEM;
                action_take_changes(a, &cs);
        }
        a->drift = drift;
        a->worker = w;
        return add_dep(c->plan, a->index, wr->main_i);
}

static bool worker_has_secret(const Worker *w, const char *name) {
        for (size_t j = 0; j < w->n_bindings; j++)
                if (w->bindings[j].kind == BINDING_SECRET && streq(w->bindings[j].name, name))
                        return true;
        return false;
}

/* Secrets: each one in the spec, then each recorded one it dropped. */
static int rest_secrets(const WorkerRest *wr) {
        const Worker *w = wr->w;
        const LedgerEntry *e = wr->e;
        Action *a;
        int r;

        for (size_t i = 0; i < w->n_bindings; i++)
                if (w->bindings[i].kind == BINDING_SECRET) {
                        r = rest_secret(wr, &w->bindings[i]);
                        if (r < 0)
                                return r;
                }
        for (size_t i = 0; e && i < e->n_secrets; i++) {
                _cleanup_(changes_clear) Changes cs = {};

                if (worker_has_secret(w, e->secrets[i].name))
                        continue;
                a = add_action(wr->c, ACTION_DELETE_SECRET, RESOURCE_WORKER, w->name, w->name,
                               "secret %s removed from the spec", e->secrets[i].name);
                if (!a || dup_into(&a->detail, e->secrets[i].name) < 0)
                        return -ENOMEM;
                if (changes_add(&cs, '-', e->secrets[i].name, NULL, NULL, true) < 0)
                        return -ENOMEM;
                action_take_changes(a, &cs);
                a->worker = w;
                if (add_dep(wr->c->plan, a->index, wr->main_i) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Cron triggers: set when the spec moved from what was recorded, or (as
 * drift) when Cloudflare's differ; never-managed ones are left alone. */
static int rest_schedules(const WorkerRest *wr) {
        const Worker *w = wr->w;
        const LedgerEntry *e = wr->e;
        const LiveWorker *lw = wr->lw;
        char * const *want = w->crons;
        bool need = false, drift = false;
        _cleanup_free_ char *s = strv_join_simple(want);
        _cleanup_(changes_clear) Changes cs = {};
        _cleanup_free_ char *before = NULL, *after = NULL;
        Action *a;

        if (!s)
                return -ENOMEM;
        if (e && e->crons_set) {
                if (!strv_equal_null(e->crons, want))
                        need = true;
                else if (lw && lw->crons_known && !strv_equal_null(lw->crons, want))
                        need = drift = true;
        } else if (strv_length(want) > 0)
                need = true;
        if (rest_recreated(wr) && strv_length(want) > 0)
                need = true;
        if (!need)
                return 0;
        if (drift && wr->report)
                return rest_drift_report(wr, "schedules changed outside bindery", NULL) ? 0 : -ENOMEM;
        /* Before: what Cloudflare shows; unknown when not read. */
        if (lw && lw->crons_known && !(before = strv_display(lw->crons)))
                return -ENOMEM;
        after = strv_display(want);
        if (!after || changes_add(&cs, '~', "crons", before, after, false) < 0)
                return -ENOMEM;
        a = add_action(wr->c, ACTION_SET_SCHEDULES, RESOURCE_WORKER, w->name, w->name, "schedules [%s]%s", s,
                       drift ? " (changed outside bindery)" : "");
        if (!a)
                return -ENOMEM;
        action_take_changes(a, &cs);
        a->drift = drift;
        a->worker = w;
        return add_dep(wr->c->plan, a->index, wr->main_i);
}

/* The workers.dev subdomain, when the spec says on or off. */
static int rest_subdomain(const WorkerRest *wr) {
        const Worker *w = wr->w;
        const LiveWorker *lw = wr->lw;
        _cleanup_(changes_clear) Changes cs = {};
        bool need = false, drift = false;
        Action *a;

        if (w->workers_dev < 0)
                return 0;
        if (!wr->e || wr->e->subdomain != w->workers_dev)
                need = true;
        else if (lw && lw->subdomain >= 0 && lw->subdomain != w->workers_dev)
                need = drift = true;
        if (rest_recreated(wr))
                need = true;
        if (!need)
                return 0;
        if (drift && wr->report)
                return rest_drift_report(wr, "workers.dev changed outside bindery", NULL) ? 0 : -ENOMEM;
        if (changes_add(&cs, '~', "workers_dev", lw && lw->subdomain >= 0 ? (lw->subdomain ? "true" : "false") : NULL,
                        w->workers_dev ? "true" : "false", false) < 0)
                return -ENOMEM;
        a = add_action(wr->c, ACTION_SET_SUBDOMAIN, RESOURCE_WORKER, w->name, w->name, "workers.dev %s%s",
                       w->workers_dev ? "on" : "off", drift ? " (changed outside bindery)" : "");
        if (!a)
                return -ENOMEM;
        action_take_changes(a, &cs);
        a->remove = !w->workers_dev;
        a->drift = drift;
        a->worker = w;
        return add_dep(wr->c->plan, a->index, wr->main_i);
}

/* The Cloudflare name of the queue a consumer reads (NULL: unresolved). */
static const char *consumer_queue_name(const Ctx *c, const QueueConsumer *qc, const Queue **ret_queue) {
        const Queue *q = qc->queue ? generation_find_queue(c->g, qc->queue) : NULL;

        if (ret_queue)
                *ret_queue = q;
        return q ? plan_resource_cf_name(RESOURCE_QUEUE, q) : qc->queue_id;
}

/* One queue consumer of the spec: attached, updated or recorded. */
static int rest_consumer(const WorkerRest *wr, const QueueConsumer *qc) {
        Ctx *c = wr->c;
        const Worker *w = wr->w;
        const LedgerEntry *e = wr->e;
        const Queue *q;
        const char *qname = consumer_queue_name(c, qc, &q);
        const LiveResource *lq = qname ? live_state_find_by_name(c->live, RESOURCE_QUEUE, qname, NULL) : NULL;
        const LiveConsumer *found = NULL;
        _cleanup_free_ char *canon = consumer_canon(qc), *field = NULL;
        _cleanup_(changes_clear) Changes cs = {};
        const char *why = NULL;
        bool drift = false;
        const Provider *pv;
        Action *a;

        if (!canon)
                return -ENOMEM;
        if (!qname)
                return 0;
        for (size_t j = 0; lq && j < lq->n_consumers; j++)
                if (streq_ptr(lq->consumers[j].script_name, w->name))
                        found = &lq->consumers[j];
        if (!found) {
                drift = e && strv_contains(e->consumers, qname);
                why = drift ? "consumer missing (removed outside bindery)" : "new consumer";
        } else if (!consumer_matches(qc, found->canon))
                why = "consumer settings differ";
        else if (!e || !strv_contains(e->consumers, qname))
                why = "recording consumer";
        if (!why)
                return 0;
        if (drift && wr->report) {
                _cleanup_free_ char *what = NULL;

                if (asprintf(&what, "queue %s", qname) < 0)
                        return -ENOMEM;
                return rest_drift_report(wr, what, why) ? 0 : -ENOMEM;
        }
        if (asprintf(&field, "consumer %s", qname) < 0)
                return -ENOMEM;
        if (found ? changes_add_kv(&cs, field, found->canon, canon) < 0
                  : changes_add(&cs, '+', field, NULL, canon, false) < 0)
                return -ENOMEM;
        a = add_action(c, ACTION_SET_CONSUMER, RESOURCE_WORKER, w->name, w->name, "queue %s: %s", qname, why);
        if (!a || dup_into(&a->detail, qname) < 0)
                return -ENOMEM;
        action_take_changes(a, &cs);
        if (found)
                (void) dup_into(&a->id, found->consumer_id);
        a->drift = drift;
        a->worker = w;
        if (add_dep(c->plan, a->index, wr->main_i) < 0)
                return -ENOMEM;
        pv = q ? find_provider(c, RESOURCE_QUEUE, q->name) : NULL;
        if (pv && add_dep(c->plan, a->index, pv->index) < 0)
                return -ENOMEM;
        return 0;
}

/* A recorded consumer the spec no longer has: detached. */
static int rest_consumer_removed(const WorkerRest *wr, const char *qname) {
        const Worker *w = wr->w;
        const LiveResource *lq = live_state_find_by_name(wr->c->live, RESOURCE_QUEUE, qname, NULL);
        _cleanup_(changes_clear) Changes cs = {};
        _cleanup_free_ char *field = NULL;
        Action *a;

        for (size_t j = 0; j < w->n_consumers; j++)
                if (streq_ptr(consumer_queue_name(wr->c, &w->consumers[j], NULL), qname))
                        return 0;
        a = add_action(wr->c, ACTION_SET_CONSUMER, RESOURCE_WORKER, w->name, w->name,
                       "queue %s: consumer removed from the spec", qname);
        if (!a || dup_into(&a->detail, qname) < 0)
                return -ENOMEM;
        if (asprintf(&field, "consumer %s", qname) < 0 || changes_add(&cs, '-', field, NULL, NULL, false) < 0)
                return -ENOMEM;
        action_take_changes(a, &cs);
        a->remove = true;
        a->worker = w;
        for (size_t j = 0; lq && j < lq->n_consumers; j++)
                if (streq_ptr(lq->consumers[j].script_name, w->name))
                        (void) dup_into(&a->id, lq->consumers[j].consumer_id);
        return 0;
}

/* Secrets, schedules, subdomain and consumers of one worker, after the
 * dependencies of its main action. */
static int plan_worker_rest(Ctx *c, size_t wi) {
        const Worker *w = &c->g->workers[wi];
        WorkerRest wr = {
                .c = c,
                .w = w,
                .e = ledger_find(c->ledger, RESOURCE_WORKER, w->name),
                .lw = live_state_find_worker(c->live, w->name),
                .main_i = c->worker_main[wi],
                .report = w->policy.drift == DRIFT_REPORT,
        };
        int r;

        if (w->policy.suspend || w->policy.external || c->worker_blocked[wi])
                return 0;
        r = rest_main_deps(&wr);
        if (r >= 0)
                r = rest_secrets(&wr);
        if (r >= 0)
                r = rest_schedules(&wr);
        if (r >= 0)
                r = rest_subdomain(&wr);
        for (size_t i = 0; r >= 0 && i < w->n_consumers; i++)
                r = rest_consumer(&wr, &w->consumers[i]);
        for (size_t i = 0; r >= 0 && wr.e && wr.e->consumers && wr.e->consumers[i]; i++)
                r = rest_consumer_removed(&wr, wr.e->consumers[i]);
        return r;
}

static bool doc_in_generation(const Generation *g, ResourceKind k, const char *doc) {
        if (k < 0 || k >= _RESOURCE_KIND_MAX)
                return true;
        return generation_find_doc(g, k, doc);
}

static bool live_has(const LiveState *live, const LedgerEntry *e) {
        if (e->kind == RESOURCE_WORKER)
                return !live->workers_listed || live_state_find_worker(live, e->name ?: e->doc);
        if (!live->listed[e->kind])
                return true;
        if (kind_id_is_name(e->kind))
                return live_state_find_by_name(live, e->kind, e->name ?: e->doc, NULL);
        return live_state_find_by_id(live, e->kind, e->id);
}

static bool is_main_kind(ActionKind k) {
        return k == ACTION_CREATE || k == ACTION_UPLOAD || k == ACTION_MIGRATE || k == ACTION_SET_CONSUMER ||
               k == ACTION_ADOPT;
}

/* Why an owned resource the spec dropped is kept (NULL: it is deleted):
 * data and Durable Object classes only with deletion_policy: delete
 * recorded, workers only with prune. */
static const char *retention_reason(const Ctx *c, const LedgerEntry *e) {
        if (e->kind != RESOURCE_WORKER)
                return e->deletion != DELETION_DELETE
                               ? "retained: data resource removed from the spec (deletion_policy: retain)"
                               : NULL;
        if (strv_length(e->do_classes) > 0 && e->deletion != DELETION_DELETE)
                return "retained: it owns Durable Object classes (their data) and "
                       "deletion_policy: delete was not recorded";
        if (!c->policy->prune)
                return strv_length(e->do_classes) > 0 ? "retained: prune is off"
                                                      : "retained: removed from the spec, but prune is off";
        return NULL;
}

/* One owned resource the spec no longer has: kept, waiting for the spec
 * to settle, or deleted (*n_del counts those still live). */
static int plan_deletion(Ctx *c, const LedgerEntry *e, unsigned *n_del) {
        const char *why = retention_reason(c, e);
        char buf[64];
        Action *a;

        if (why) {
                a = add_action(c, ACTION_NOOP, e->kind, e->doc, e->name, "%s", why);
                return !a || dup_into(&a->id, e->id) < 0 ? -ENOMEM : 0;
        }
        if (!settled(c->policy)) {
                a = add_action(c, ACTION_NOOP, e->kind, e->doc, e->name,
                               "deletion waits until the spec has been stable for %s",
                               format_duration(c->policy->prune_settle_usec, buf, sizeof(buf)));
                if (!a || dup_into(&a->id, e->id) < 0)
                        return -ENOMEM;
                a->waiting = true;
                c->plan->n_waiting++;
                return 0;
        }
        a = add_action(c, ACTION_DELETE, e->kind, e->doc, e->name, "%s '%s' removed from the spec%s",
                       kind_label(e->kind), strna(e->name),
                       live_has(c->live, e) ? "" : " (already gone; forgetting it)");
        if (!a || dup_into(&a->id, e->id) < 0)
                return -ENOMEM;
        if (live_has(c->live, e))
                (*n_del)++;
        return 0;
}

/* Orders one deletion: after every main action (an upload drops the
 * bindings; consumer changes are main actions, so detachments go before
 * the queue or the script they join); data after worker deletions; store
 * secrets before their store. */
static int deletion_deps(Ctx *c, Action *a, size_t first) {
        Plan *p = c->plan;
        const LedgerEntry *ae = ledger_find(c->ledger, a->resource_kind, a->doc);

        for (size_t j = 0; j < first; j++)
                if (is_main_kind(p->actions[j].kind) && add_dep(p, a->index, (int) j) < 0)
                        return -ENOMEM;
        if (a->resource_kind != RESOURCE_WORKER)
                for (size_t j = first; j < p->n_actions; j++)
                        if (p->actions[j].kind == ACTION_DELETE && p->actions[j].resource_kind == RESOURCE_WORKER &&
                            add_dep(p, a->index, (int) j) < 0)
                                return -ENOMEM;
        if (a->resource_kind != RESOURCE_SECRETS_STORE || !ae)
                return 0;
        for (size_t j = first; j < p->n_actions; j++) {
                const Action *x = &p->actions[j];
                const LedgerEntry *xe;

                if (x->kind != ACTION_DELETE || x->resource_kind != RESOURCE_SECRETS_STORE_SECRET)
                        continue;
                xe = ledger_find(c->ledger, x->resource_kind, x->doc);
                if (xe && streq_ptr(xe->store_id, ae->id) && add_dep(p, a->index, (int) j) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* More deletions than max_deletions without --force: every one refused. */
static int deletion_guard(Ctx *c, size_t first, unsigned n_del) {
        Plan *p = c->plan;

        if (n_del <= c->policy->max_deletions || c->policy->force)
                return 0;
        for (size_t i = first; i < p->n_actions; i++) {
                Action *a = &p->actions[i];
                char *nr;

                if (a->kind != ACTION_DELETE)
                        continue;
                if (asprintf(&nr,
                             "refused: this run would delete %u resources, more than max_deletions (%u); "
                             "rerun with --force if that is intended (%s)",
                             n_del, c->policy->max_deletions, a->reason) < 0)
                        return -ENOMEM;
                free(a->reason);
                a->reason = nr;
                a->kind = ACTION_BLOCKED;
        }
        return 0;
}

/* What the ledger owns and the spec dropped: deletions (or why not),
 * ordered, and refused past max_deletions. */
static int plan_deletions(Ctx *c) {
        Plan *p = c->plan;
        size_t first = p->n_actions;
        unsigned n_del = 0;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < c->ledger->n_entries; i++)
                if (!doc_in_generation(c->g, c->ledger->entries[i]->kind, c->ledger->entries[i]->doc))
                        r = plan_deletion(c, c->ledger->entries[i], &n_del);
        for (size_t i = first; r >= 0 && i < p->n_actions; i++)
                if (p->actions[i].kind == ACTION_DELETE)
                        r = deletion_deps(c, &p->actions[i], first);
        return r < 0 ? r : deletion_guard(c, first, n_del);
}

static bool generation_empty(const Generation *g) {
        return g->n_workers + g->n_kv_namespaces + g->n_r2_buckets + g->n_d1_databases + g->n_queues +
               g->n_secrets_stores + g->n_secrets_store_secrets == 0;
}

/* Appends "; WHY" to the action's reason. */
static int hold_reason(Action *a, const char *fmt, ...) _printf_(2, 3);
static int hold_reason(Action *a, const char *fmt, ...) {
        _cleanup_free_ char *why = NULL;
        char *nr = NULL;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&why, fmt, ap);
        va_end(ap);
        if (k < 0 || asprintf(&nr, "%s; %s", strna(a->reason), why) < 0)
                return -ENOMEM;
        free(a->reason);
        a->reason = nr;
        return 0;
}

static int hold_action(Plan *p, Action *a, bool block, const char *fmt, ...) _printf_(4, 5);
static int hold_action(Plan *p, Action *a, bool block, const char *fmt, ...) {
        char *why = NULL, *nr = NULL;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&why, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        k = asprintf(&nr, "%s (%s)", why, strna(a->reason));
        free(why);
        if (k < 0)
                return -ENOMEM;
        free(a->reason);
        a->reason = nr;
        if (block) {
                a->kind = ACTION_BLOCKED;
                if (a->waiting)
                        p->n_waiting--;
                a->waiting = false;
        } else {
                a->kind = ACTION_NOOP;
                a->waiting = true;
                p->n_waiting++;
        }
        return 0;
}

/* Whether the action takes something away that waits as a whole: a
 * secret, a queue consumer, workers.dev. Bindings and schedules are kept
 * instead (plan_hold_removals); deletions are plan_deletions'. */
static const char *action_removes(const Action *a) {
        if (!a->worker || a->resource_kind != RESOURCE_WORKER)
                return NULL;
        switch (a->kind) {
        case ACTION_DELETE_SECRET:
                return "secret removal";
        case ACTION_SET_CONSUMER:
                return a->remove ? "consumer removal" : NULL;
        case ACTION_SET_SUBDOMAIN:
                return a->remove ? "workers.dev removal" : NULL;
        case ACTION_SET_SCHEDULES:
                return NULL;     /* plan_hold_removals: the dropped crons are kept */
        default:
                return NULL;     /* uploads: dropped_bindings() */
        }
}

/* The non-secret bindings bindery last uploaded to worker w that the spec
 * no longer has (NULL: none, or not recorded). */
static int dropped_bindings(const Ctx *c, const Worker *w, char ***ret) {
        const LedgerEntry *e = ledger_find(c->ledger, RESOURCE_WORKER, w->name);
        char **l = NULL;

        for (size_t i = 0; e && e->binding_names && e->binding_names[i]; i++) {
                bool have = false;

                for (size_t j = 0; j < w->n_bindings && !have; j++)
                        have = streq(w->bindings[j].name, e->binding_names[i]) &&
                               w->bindings[j].kind != BINDING_SECRET;
                if (!have && strv_extend(&l, e->binding_names[i]) < 0) {
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        *ret = l;
        return 0;
}

/* Keeps of dropped only the bindings the live version still has (an
 * upload that inherits one it lacks fails). */
static void keep_live_bindings(const LiveWorker *lw, char **dropped) {
        for (size_t i = 0; lw && lw->detail && dropped[i];) {
                bool live = false;

                for (size_t j = 0; j < lw->n_bindings && !live; j++)
                        live = streq_ptr(lw->bindings[j].name, dropped[i]);
                if (live) {
                        i++;
                        continue;
                }
                free(dropped[i]);
                memmove(dropped + i, dropped + i + 1, (strv_length(dropped + i + 1) + 1) * sizeof(char *));
        }
}

/* Settled, a worker still carrying bindings the spec dropped and
 * planned no upload gets one, before any deletion (of a resource it was
 * bound to) and before the rest of the worker's actions. */
static int hold_settled_upload(Ctx *c, size_t wi, const char *names, size_t n_planned) {
        Plan *p = c->plan;
        const Worker *w = &c->g->workers[wi];
        Action *a = add_action(c, ACTION_UPLOAD, RESOURCE_WORKER, w->name, w->name,
                               "binding(s) %s removed from the spec", names);

        if (!a)
                return -ENOMEM;
        a->worker = w;
        a->desired = w;
        c->worker_main[wi] = (int) a->index;
        for (size_t i = 0; i < n_planned; i++)
                if (p->actions[i].kind == ACTION_DELETE && add_dep(p, p->actions[i].index, (int) a->index) < 0)
                        return -ENOMEM;
        for (size_t i = 0; i < n_planned; i++)
                if (p->actions[i].resource_kind == RESOURCE_WORKER && streq_ptr(p->actions[i].doc, w->name) &&
                    p->actions[i].kind != ACTION_NOOP && add_dep(p, p->actions[i].index, (int) a->index) < 0)
                        return -ENOMEM;
        return 0;
}

/* One worker's bindings the spec dropped: an upload keeps them (inherit)
 * until the generation settles, additions and updates going out at
 * once; with no upload planned, their removal waits. Once settled, a
 * worker still carrying them gets an upload. */
static int hold_worker_bindings(Ctx *c, size_t wi, size_t n_planned, bool ok) {
        Plan *p = c->plan;
        const Worker *w = &c->g->workers[wi];
        int mi = c->worker_main[wi];
        _cleanup_strv_free_ char **dropped = NULL;
        _cleanup_free_ char *names = NULL;
        char buf[32];
        const char *settle;
        Action *a;
        int r;

        if (w->policy.suspend || w->policy.external || c->worker_blocked[wi])
                return 0;
        if (mi >= 0 && p->actions[mi].kind != ACTION_UPLOAD && p->actions[mi].kind != ACTION_MIGRATE)
                return 0;    /* a create, an adopt, a drift report: nothing recorded to keep */
        r = dropped_bindings(c, w, &dropped);
        if (r < 0 || !dropped)
                return r;
        names = strv_join_simple(dropped);
        if (!names)
                return -ENOMEM;
        if (ok)
                return mi >= 0 ? 0 /* the upload drops them */ : hold_settled_upload(c, wi, names, n_planned);
        keep_live_bindings(live_state_find_worker(c->live, w->name), dropped);
        if (!dropped[0])
                return 0;
        settle = format_duration(c->policy->prune_settle_usec, buf, sizeof(buf));
        if (mi >= 0) {
                a = &p->actions[mi];
                r = hold_reason(a, "binding(s) %s kept until the spec has been stable for %s", names, settle);
                if (r < 0)
                        return r;
                a->inherit = TAKE_PTR(dropped);
        } else {
                a = add_action(c, ACTION_NOOP, RESOURCE_WORKER, w->name, w->name,
                               "binding removal (%s) waits until the spec has been stable for %s", names, settle);
                if (!a)
                        return -ENOMEM;
                a->waiting = true;
        }
        p->n_waiting++;
        return 0;
}

/* Unsettled, crons the spec dropped are sent along with a schedules
 * update; when dropping them is all the change there is, it waits. */
static int hold_schedules(Ctx *c, Action *a) {
        const LedgerEntry *e;
        _cleanup_strv_free_ char **kept = NULL;
        _cleanup_free_ char *names = NULL;
        bool adds = false;
        char buf[32];
        const char *settle;
        int r;

        if (a->kind != ACTION_SET_SCHEDULES || !a->worker)
                return 0;
        e = ledger_find(c->ledger, RESOURCE_WORKER, a->doc);
        for (size_t k = 0; e && e->crons_set && e->crons && e->crons[k]; k++)
                if (!strv_contains(a->worker->crons, e->crons[k]) && strv_extend(&kept, e->crons[k]) < 0)
                        return -ENOMEM;
        if (!kept)
                return 0;
        for (size_t k = 0; a->worker->crons && a->worker->crons[k]; k++)
                if (!e || !strv_contains(e->crons, a->worker->crons[k]))
                        adds = true;
        settle = format_duration(c->policy->prune_settle_usec, buf, sizeof(buf));
        if (!adds)
                return hold_action(c->plan, a, false, "schedule removal waits until the spec has been stable for %s",
                                   settle);
        names = strv_join_simple(kept);
        if (!names)
                return -ENOMEM;
        r = hold_reason(a, "schedule(s) %s kept until the spec has been stable for %s", names, settle);
        if (r < 0)
                return r;
        a->inherit = TAKE_PTR(kept);
        c->plan->n_waiting++;
        return 0;
}

/* Any other removal: refused when an empty spec would delete, held while
 * the generation is unsettled. */
static int hold_removal(Ctx *c, Action *a, bool empty, bool ok) {
        const char *what;
        char buf[32];
        int r;

        if (empty && (a->kind == ACTION_DELETE || (a->kind == ACTION_NOOP && a->waiting))) {
                r = hold_action(c->plan, a, true, "refused: the spec directory has no documents (emptied, or the "
                                "wrong spec_dir?); set allow_empty: true to let an empty spec delete");
                if (r < 0)
                        return r;
                c->plan->empty_refused = true;
                return 0;
        }
        if (ok || a->waiting)
                return 0;
        what = action_removes(a);
        if (!what)
                return 0;
        return hold_action(c->plan, a, false, "%s waits until the spec has been stable for %s", what,
                           format_duration(c->policy->prune_settle_usec, buf, sizeof(buf)));
}

/* Settled changes: removals of any kind wait until the generation has been
 * stable for prune_settle (a file written line by line must not remove
 * what its next line restores); additions and updates do not wait. And a
 * generation without documents deletes nothing unless allow_empty. */
static int plan_hold_removals(Ctx *c) {
        Plan *p = c->plan;
        bool empty = generation_empty(c->g) && !c->policy->allow_empty;
        bool ok = settled(c->policy);
        size_t n_planned = p->n_actions;
        int r = 0;

        for (size_t wi = 0; r >= 0 && wi < c->g->n_workers; wi++)
                r = hold_worker_bindings(c, wi, n_planned, ok);
        for (size_t i = 0; r >= 0 && !ok && i < p->n_actions; i++)
                r = hold_schedules(c, &p->actions[i]);
        for (size_t i = 0; r >= 0 && i < p->n_actions; i++)
                r = hold_removal(c, &p->actions[i], empty, ok);
        return r < 0 ? r : 0;
}

/* Reorders the actions so every action comes after the ones it depends
 * on, keeping the planner's order otherwise (passes over the list, each
 * placing whatever is ready). */
static int plan_sort(Plan *p) {
        size_t n = p->n_actions, placed = 0;
        _cleanup_free_ size_t *order = calloc(n + 1, sizeof(size_t)), *pos = calloc(n + 1, sizeof(size_t));
        _cleanup_free_ bool *done = calloc(n + 1, sizeof(bool));

        if (!order || !pos || !done)
                return -ENOMEM;
        if (n == 0)
                return 0;
        while (placed < n) {
                size_t before = placed;

                for (size_t i = 0; i < n; i++) {
                        bool ready = !done[i];

                        for (size_t k = 0; ready && k < p->actions[i].n_deps; k++)
                                if (!done[p->actions[i].deps[k]])
                                        ready = false;
                        if (!ready)
                                continue;
                        done[i] = true;
                        order[placed++] = i;
                }
                if (placed == before)   /* cannot happen (add_dep refuses cycles); be safe */
                        for (size_t i = 0; i < n; i++)
                                if (!done[i]) {
                                        done[i] = true;
                                        order[placed++] = i;
                                }
        }
        /* Moved in place, cycle by cycle (a copy of the list was as
         * large as the plan): new position k takes the action at
         * order[k]; done[] now marks the positions filled. */
        for (size_t k = 0; k < n; k++)
                pos[order[k]] = k;
        memset(done, 0, n * sizeof(bool));
        for (size_t start = 0; start < n; start++) {
                Action held;
                size_t k = start;

                if (done[start] || order[start] == start) {
                        done[start] = true;
                        continue;
                }
                held = p->actions[start];
                for (;;) {
                        size_t from = order[k];

                        done[k] = true;
                        if (from == start) {
                                p->actions[k] = held;
                                break;
                        }
                        p->actions[k] = p->actions[from];
                        k = from;
                }
        }
        for (size_t k = 0; k < n; k++) {
                p->actions[k].index = (unsigned) k;
                for (size_t d = 0; d < p->actions[k].n_deps; d++)
                        p->actions[k].deps[d] = (unsigned) pos[p->actions[k].deps[d]];
        }
        return 0;
}

int plan_compute(const Generation *g, const LiveState *live, const Ledger *ledger, const PlanPolicy *policy,
                 Plan **ret) {
        _cleanup_(plan_freep) Plan *p = calloc(1, sizeof(Plan));
        Ctx c = { .g = g, .live = live, .ledger = ledger, .policy = policy };
        int r = 0;

        if (!p)
                return -ENOMEM;
        c.plan = p;
        if (!g) {
                p->generation_missing = true;
                *ret = TAKE_PTR(p);
                return 0;
        }
        c.worker_main = calloc(g->n_workers + 1, sizeof(int));
        c.worker_blocked = calloc(g->n_workers + 1, sizeof(bool));
        c.provider_index = lh_kchar_table_new(64, index_key_free);
        if (!c.worker_main || !c.worker_blocked || !c.provider_index) {
                r = -ENOMEM;
                goto out;
        }

        for (size_t i = 0; i < g->n_secrets_stores && r >= 0; i++) {
                const SecretsStore *s = &g->secrets_stores[i];

                r = plan_resource(&c, RESOURCE_SECRETS_STORE, s);
        }
        for (size_t i = 0; i < g->n_kv_namespaces && r >= 0; i++)
                r = plan_resource(&c, RESOURCE_KV_NAMESPACE, &g->kv_namespaces[i]);
        for (size_t i = 0; i < g->n_r2_buckets && r >= 0; i++)
                r = plan_resource(&c, RESOURCE_R2_BUCKET, &g->r2_buckets[i]);
        for (size_t i = 0; i < g->n_d1_databases && r >= 0; i++)
                r = plan_resource(&c, RESOURCE_D1_DATABASE, &g->d1_databases[i]);
        for (size_t i = 0; i < g->n_queues && r >= 0; i++)
                r = plan_resource(&c, RESOURCE_QUEUE, &g->queues[i]);
        for (size_t i = 0; i < g->n_secrets_store_secrets && r >= 0; i++)
                r = plan_resource(&c, RESOURCE_SECRETS_STORE_SECRET, &g->secrets_store_secrets[i]);
        for (size_t i = 0; i < g->n_workers && r >= 0; i++)
                r = plan_worker_main(&c, i);
        for (size_t i = 0; i < g->n_workers && r >= 0; i++)
                r = plan_worker_rest(&c, i);
        if (r >= 0)
                r = plan_deletions(&c);
        if (r >= 0)
                r = plan_hold_removals(&c);
        if (r >= 0)
                r = plan_sort(p);
        if (r < 0)
                goto out;

        for (size_t i = 0; i < p->n_actions; i++) {
                const Action *a = &p->actions[i];

                if (action_kind_is_change(a->kind))
                        p->n_changes++;
                if (a->kind == ACTION_DELETE)
                        p->n_deletes++;
                if (a->kind == ACTION_BLOCKED)
                        p->n_blocked++;
        }
        *ret = TAKE_PTR(p);
out:
        free(c.worker_main);
        free(c.worker_blocked);
        free(c.providers);
        if (c.provider_index)
                lh_table_free(c.provider_index);
        return r;
}

Plan *plan_free(Plan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_actions; i++) {
                Action *a = &p->actions[i];

                free(a->doc);
                free(a->name);
                free(a->id);
                free(a->detail);
                free(a->reason);
                free(a->deps);
                free(a->old_tag);
                free(a->new_tag);
                strv_free(a->auto_new_classes);
                strv_free(a->inherit);
                for (size_t j = 0; j < a->n_changes; j++) {
                        free(a->changes[j].field);
                        free(a->changes[j].before);
                        free(a->changes[j].after);
                }
                free(a->changes);
        }
        free(p->actions);
        free(p);
        return NULL;
}

bool plan_has_changes(const Plan *p) {
        return p && p->n_changes > 0;
}

static void change_to_text(FILE *f, const ActionChange *ch) {
        const char *unknown = "(unknown)", *later = "(known after apply)";

        fprintf(f, "    %c %s", ch->op, ch->field);
        if (ch->secret) {
                fputs(ch->op == '+' ? ": (new)\n" : ch->op == '-' ? ": (secret removed)\n" : ": (value changed)\n", f);
                return;
        }
        switch (ch->op) {
        case '+':
                fprintf(f, ": %s\n", ch->after ?: later);
                break;
        case '-':
                if (ch->before)
                        fprintf(f, ": %s", ch->before);
                fputc('\n', f);
                break;
        case '?':
                fputs(": current value unknown (not read from Cloudflare this run)\n", f);
                break;
        default:
                fprintf(f, ": %s -> %s\n", ch->before ?: unknown, ch->after ?: later);
        }
}

char *plan_to_text(const Plan *p, bool verbose) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        if (p->generation_missing)
                fputs("No valid spec generation: nothing will be created, changed or deleted.\n", f);
        if (p->empty_refused)
                fputs("The spec directory has no documents: nothing is deleted (allow_empty: true allows it).\n", f);
        for (size_t i = 0; i < p->n_actions; i++) {
                const Action *a = &p->actions[i];

                if (a->kind == ACTION_NOOP && !verbose && !a->waiting)
                        continue;
                fprintf(f, "%-13s %s/%s", a->waiting ? "waiting" : action_kind_to_string(a->kind), resource_kind_to_string(a->resource_kind),
                        strna(a->name));
                if (a->detail)
                        fprintf(f, " [%s]", a->detail);
                fprintf(f, ": %s\n", strna(a->reason));
                for (size_t j = 0; j < a->n_changes; j++)
                        change_to_text(f, &a->changes[j]);
        }
        fprintf(f, "%u change%s, %u deletion%s, %u blocked, %u drift reported%s\n", p->n_changes,
                p->n_changes == 1 ? "" : "s", p->n_deletes, p->n_deletes == 1 ? "" : "s", p->n_blocked, p->n_drift,
                p->n_waiting ? ", deletions waiting for the spec to settle" : "");
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

json_object *plan_to_json(const Plan *p, bool noops) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *arr = json_object_new_array();
        unsigned n_noops = 0;

        if (!o || !arr) {
                json_object_put(arr);
                return NULL;
        }
        json_object_object_add(o, "actions", arr);
        for (size_t i = 0; i < p->n_actions; i++) {
                const Action *a = &p->actions[i];
                json_object *x, *deps;

                if (a->kind == ACTION_NOOP && !a->waiting) {
                        n_noops++;
                        if (!noops)
                                continue;
                }
                x = json_object_new_object();
                if (!x)
                        return NULL;
                json_object_array_add(arr, x);
                json_object_object_add(x, "index", json_object_new_int((int) a->index));
                json_object_object_add(x, "action", json_object_new_string(action_kind_to_string(a->kind)));
                json_object_object_add(x, "kind", json_object_new_string(resource_kind_to_string(a->resource_kind)));
                if (json_add_str(x, "name", a->name) < 0 || json_add_str(x, "doc", a->doc) < 0 ||
                    json_add_str(x, "id", a->id) < 0 || json_add_str(x, "detail", a->detail) < 0 ||
                    json_add_str(x, "reason", a->reason) < 0 || json_add_str(x, "old_tag", a->old_tag) < 0 ||
                    json_add_str(x, "new_tag", a->new_tag) < 0)
                        return NULL;
                json_object_object_add(x, "drift", json_object_new_boolean(a->drift));
                if (a->waiting)
                        json_object_object_add(x, "waiting", json_object_new_boolean(true));
                deps = json_object_new_array();
                if (!deps)
                        return NULL;
                for (size_t j = 0; j < a->n_deps; j++)
                        json_object_array_add(deps, json_object_new_int((int) a->deps[j]));
                json_object_object_add(x, "depends_on", deps);
                if (a->n_changes > 0) {
                        json_object *diff = json_object_new_array();

                        if (!diff)
                                return NULL;
                        json_object_object_add(x, "diff", diff);
                        for (size_t j = 0; j < a->n_changes; j++) {
                                const ActionChange *ch = &a->changes[j];
                                json_object *d = json_object_new_object();
                                char op[2] = { ch->op, 0 };

                                if (!d)
                                        return NULL;
                                json_object_array_add(diff, d);
                                if (json_add_str(d, "op", op) < 0 || json_add_str(d, "field", ch->field) < 0)
                                        return NULL;
                                if (ch->secret) {
                                        json_object_object_add(d, "secret", json_object_new_boolean(true));
                                        if (json_add_str(d, "value", ch->op == '+' ? "new" : ch->op == '-' ? "removed"
                                                                                                   : "changed") < 0)
                                                return NULL;
                                        continue;
                                }
                                if (ch->op != '+') {
                                        json_object_object_add(d, "before", ch->before ? json_object_new_string(ch->before)
                                                                                       : NULL);
                                        if (!ch->before)
                                                json_object_object_add(d, "before_known", json_object_new_boolean(false));
                                }
                                if (ch->op != '-' && ch->op != '?') {
                                        json_object_object_add(d, "after", ch->after ? json_object_new_string(ch->after)
                                                                                     : NULL);
                                        if (!ch->after)
                                                json_object_object_add(d, "after_known", json_object_new_boolean(false));
                                }
                        }
                }
        }
        json_object_object_add(o, "changes", json_object_new_int((int) p->n_changes));
        json_object_object_add(o, "deletes", json_object_new_int((int) p->n_deletes));
        json_object_object_add(o, "blocked", json_object_new_int((int) p->n_blocked));
        json_object_object_add(o, "drift", json_object_new_int((int) p->n_drift));
        json_object_object_add(o, "waiting", json_object_new_int((int) p->n_waiting));
        json_object_object_add(o, "no_ops", json_object_new_int((int) n_noops));
        json_object_object_add(o, "generation_missing", json_object_new_boolean(p->generation_missing));
        json_object_object_add(o, "empty_refused", json_object_new_boolean(p->empty_refused));
        return TAKE_PTR(o);
}
