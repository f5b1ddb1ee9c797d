/* model.c: string tables and destructors for model.h. */
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "util.h"

static const char *const resource_kind_table[_RESOURCE_KIND_MAX] = {
        [RESOURCE_WORKER] = "Worker",
        [RESOURCE_KV_NAMESPACE] = "KVNamespace",
        [RESOURCE_R2_BUCKET] = "R2Bucket",
        [RESOURCE_D1_DATABASE] = "D1Database",
        [RESOURCE_QUEUE] = "Queue",
        [RESOURCE_SECRETS_STORE] = "SecretsStore",
        [RESOURCE_SECRETS_STORE_SECRET] = "SecretsStoreSecret",
};

static const char *const deletion_policy_table[_DELETION_POLICY_MAX] = {
        [DELETION_RETAIN] = "retain",
        [DELETION_DELETE] = "delete",
};

static const char *const drift_policy_table[_DRIFT_POLICY_MAX] = {
        [DRIFT_REPAIR] = "repair",
        [DRIFT_REPORT] = "report",
};

static const char *const secret_source_table[_SECRET_SOURCE_MAX] = {
        [SECRET_SOURCE_CREDENTIAL] = "credential",
        [SECRET_SOURCE_FILE] = "file",
        [SECRET_SOURCE_ENV] = "env",
};

static const char *const module_type_table[_MODULE_TYPE_MAX] = {
        [MODULE_ESM] = "esm",
        [MODULE_COMMONJS] = "commonjs",
        [MODULE_WASM] = "wasm",
        [MODULE_TEXT] = "text",
        [MODULE_DATA] = "data",
        [MODULE_SOURCE_MAP] = "source_map",
};

static const char *const module_content_type_table[_MODULE_TYPE_MAX] = {
        [MODULE_ESM] = "application/javascript+module",
        [MODULE_COMMONJS] = "application/javascript",
        [MODULE_WASM] = "application/wasm",
        [MODULE_TEXT] = "text/plain",
        [MODULE_DATA] = "application/octet-stream",
        [MODULE_SOURCE_MAP] = "application/source-map",
};

static int table_lookup(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (table[i] && streq(table[i], s))
                        return (int) i;
        return -EINVAL;
}

#define TABLE_TO_STRING(table, v) \
        ((v) >= 0 && (size_t) (v) < ELEMENTSOF(table) ? (table)[(v)] : NULL)

const char *resource_kind_to_string(ResourceKind k) {
        return TABLE_TO_STRING(resource_kind_table, k);
}

ResourceKind resource_kind_from_string(const char *s) {
        return (ResourceKind) table_lookup(resource_kind_table, ELEMENTSOF(resource_kind_table), s);
}

bool resource_kind_is_data(ResourceKind k) {
        return k == RESOURCE_KV_NAMESPACE || k == RESOURCE_R2_BUCKET ||
               k == RESOURCE_D1_DATABASE || k == RESOURCE_QUEUE;
}

const char *deletion_policy_to_string(DeletionPolicy p) {
        return TABLE_TO_STRING(deletion_policy_table, p);
}

DeletionPolicy deletion_policy_from_string(const char *s) {
        return (DeletionPolicy) table_lookup(deletion_policy_table, ELEMENTSOF(deletion_policy_table), s);
}

const char *drift_policy_to_string(DriftPolicy p) {
        return TABLE_TO_STRING(drift_policy_table, p);
}

DriftPolicy drift_policy_from_string(const char *s) {
        return (DriftPolicy) table_lookup(drift_policy_table, ELEMENTSOF(drift_policy_table), s);
}

const char *secret_source_to_string(SecretSource s) {
        return TABLE_TO_STRING(secret_source_table, s);
}

char *secret_ref_to_string(const SecretRef *s) {
        char *r;

        if (asprintf(&r, "%s:%s", strna(secret_source_to_string(s->source)), strna(s->ref)) < 0)
                return NULL;
        return r;
}

const char *module_type_to_content_type(ModuleType t) {
        return TABLE_TO_STRING(module_content_type_table, t);
}

const char *module_type_to_string(ModuleType t) {
        return TABLE_TO_STRING(module_type_table, t);
}

ModuleType module_type_from_string(const char *s) {
        return (ModuleType) table_lookup(module_type_table, ELEMENTSOF(module_type_table), s);
}

static void binding_done(Binding *b) {
        free(b->name);
        free(b->text);
        free(b->json);
        free(b->secret.ref);
        free(b->target);
        free(b->target_id);
        free(b->jurisdiction);
        free(b->class_name);
        free(b->script_name);
        free(b->environment);
        free(b->service);
        free(b->entrypoint);
        free(b->store);
        free(b->secret_name);
        free(b->dataset);
        free(b->index_name);
        free(b->workflow_name);
}

static void worker_done(Worker *w) {
        sha256_free(w->upload_prefix);
        free(w->digest_key);
        free(w->name);
        free(w->main_module);
        for (size_t i = 0; i < w->n_modules; i++) {
                free(w->modules[i].name);
                free(w->modules[i].path);
        }
        free(w->modules);
        free(w->compatibility_date);
        strv_free(w->compatibility_flags);
        for (size_t i = 0; i < w->n_bindings; i++)
                binding_done(&w->bindings[i]);
        free(w->bindings);
        strv_free(w->crons);
        for (size_t i = 0; i < w->n_consumers; i++) {
                free(w->consumers[i].queue);
                free(w->consumers[i].queue_id);
                free(w->consumers[i].dead_letter_queue);
        }
        free(w->consumers);
        for (size_t i = 0; i < w->n_do_classes; i++)
                free(w->do_classes[i].class_name);
        free(w->do_classes);
        for (size_t i = 0; i < w->n_migrations; i++) {
                MigrationStep *m = &w->migrations[i];

                free(m->tag);
                strv_free(m->new_classes);
                strv_free(m->new_sqlite_classes);
                strv_free(m->deleted_classes);
                for (size_t j = 0; j < m->n_renamed_classes; j++) {
                        free(m->renamed_classes[j].from);
                        free(m->renamed_classes[j].to);
                }
                free(m->renamed_classes);
        }
        free(w->migrations);
        strv_free(w->tags);
}

Generation *generation_free(Generation *g) {
        if (!g)
                return NULL;
        for (size_t i = 0; i < g->n_workers; i++)
                worker_done(&g->workers[i]);
        free(g->workers);
        for (size_t i = 0; i < g->n_kv_namespaces; i++) {
                free(g->kv_namespaces[i].name);
                free(g->kv_namespaces[i].title);
                free(g->kv_namespaces[i].id);
        }
        free(g->kv_namespaces);
        for (size_t i = 0; i < g->n_r2_buckets; i++) {
                R2Bucket *b = &g->r2_buckets[i];

                free(b->name);
                free(b->bucket_name);
                free(b->jurisdiction);
                free(b->location_hint);
                free(b->storage_class);
        }
        free(g->r2_buckets);
        for (size_t i = 0; i < g->n_d1_databases; i++) {
                D1Database *d = &g->d1_databases[i];

                free(d->name);
                free(d->database_name);
                free(d->id);
                free(d->location_hint);
                free(d->jurisdiction);
        }
        free(g->d1_databases);
        for (size_t i = 0; i < g->n_queues; i++) {
                free(g->queues[i].name);
                free(g->queues[i].queue_name);
                free(g->queues[i].id);
        }
        free(g->queues);
        for (size_t i = 0; i < g->n_secrets_stores; i++) {
                free(g->secrets_stores[i].name);
                free(g->secrets_stores[i].store_name);
                free(g->secrets_stores[i].id);
        }
        free(g->secrets_stores);
        for (size_t i = 0; i < g->n_secrets_store_secrets; i++) {
                SecretsStoreSecret *s = &g->secrets_store_secrets[i];

                free(s->name);
                free(s->store);
                free(s->secret_name);
                free(s->value.ref);
                strv_free(s->scopes);
                free(s->comment);
        }
        free(g->secrets_store_secrets);
        strv_free(g->files);
        free(g->spec_dir);
        free(g);
        return NULL;
}

/* A loaded generation's arrays are sorted by name: binary search (the
 * plan looks every live resource up); one built by hand (tests) is
 * scanned. */
#define DEFINE_FIND(fn, type, array, count)                                   \
        const type *fn(const Generation *g, const char *name) {               \
                size_t lo = 0, hi = g->count;                                 \
                                                                              \
                if (!name)                                                    \
                        return NULL;                                          \
                if (!g->sorted) {                                             \
                        for (size_t i = 0; i < g->count; i++)                 \
                                if (streq_ptr(g->array[i].name, name))        \
                                        return &g->array[i];                  \
                        return NULL;                                          \
                }                                                             \
                while (lo < hi) {                                             \
                        size_t mid = lo + (hi - lo) / 2;                      \
                        int c = strcmp(name, g->array[mid].name);             \
                                                                              \
                        if (c == 0)                                           \
                                return &g->array[mid];                        \
                        if (c < 0)                                            \
                                hi = mid;                                     \
                        else                                                  \
                                lo = mid + 1;                                 \
                }                                                             \
                return NULL;                                                  \
        }

DEFINE_FIND(generation_find_worker, Worker, workers, n_workers)
DEFINE_FIND(generation_find_kv, KVNamespace, kv_namespaces, n_kv_namespaces)
DEFINE_FIND(generation_find_r2, R2Bucket, r2_buckets, n_r2_buckets)
DEFINE_FIND(generation_find_d1, D1Database, d1_databases, n_d1_databases)
DEFINE_FIND(generation_find_queue, Queue, queues, n_queues)
DEFINE_FIND(generation_find_store, SecretsStore, secrets_stores, n_secrets_stores)
DEFINE_FIND(generation_find_store_secret, SecretsStoreSecret, secrets_store_secrets, n_secrets_store_secrets)

const void *generation_find_doc(const Generation *g, ResourceKind k, const char *name) {
        switch (k) {
        case RESOURCE_WORKER: return generation_find_worker(g, name);
        case RESOURCE_KV_NAMESPACE: return generation_find_kv(g, name);
        case RESOURCE_R2_BUCKET: return generation_find_r2(g, name);
        case RESOURCE_D1_DATABASE: return generation_find_d1(g, name);
        case RESOURCE_QUEUE: return generation_find_queue(g, name);
        case RESOURCE_SECRETS_STORE: return generation_find_store(g, name);
        case RESOURCE_SECRETS_STORE_SECRET: return generation_find_store_secret(g, name);
        default: return NULL;
        }
}

/* ---- canonical JSON ---- */

typedef struct JsonBuild {
        bool oom;
} JsonBuild;

static void jadd(JsonBuild *b, json_object *o, const char *key, json_object *v) {
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                b->oom = true;
        }
}

static void jstr(JsonBuild *b, json_object *o, const char *key, const char *s) {
        if (s)
                jadd(b, o, key, json_object_new_string(s));
}

static void jint(JsonBuild *b, json_object *o, const char *key, int64_t v) {
        if (v >= 0)
                jadd(b, o, key, json_object_new_int64(v));
}

static void jbool(JsonBuild *b, json_object *o, const char *key, bool v) {
        jadd(b, o, key, json_object_new_boolean(v));
}

static json_object *jstrv(JsonBuild *b, char * const *l) {
        json_object *a = json_object_new_array();

        if (!a) {
                b->oom = true;
                return NULL;
        }
        for (size_t i = 0; l && l[i]; i++) {
                json_object *s = json_object_new_string(l[i]);

                if (!s || json_object_array_add(a, s) < 0) {
                        json_object_put(s);
                        b->oom = true;
                }
        }
        return a;
}

static json_object *jobj(JsonBuild *b) {
        json_object *o = json_object_new_object();

        if (!o)
                b->oom = true;
        return o;
}

static void jpush(JsonBuild *b, json_object *a, json_object *v) {
        if (!a || !v || json_object_array_add(a, v) < 0) {
                json_object_put(v);
                b->oom = true;
        }
}

static json_object *policy_to_json(JsonBuild *b, const ResourcePolicy *p) {
        json_object *o = jobj(b);

        if (!o)
                return NULL;
        jbool(b, o, "adopt", p->adopt);
        jstr(b, o, "deletion_policy", deletion_policy_to_string(p->deletion));
        jstr(b, o, "drift", drift_policy_to_string(p->drift));
        jbool(b, o, "external", p->external);
        jbool(b, o, "suspend", p->suspend);
        return o;
}

static json_object *secret_ref_to_json(JsonBuild *b, const SecretRef *s) {
        json_object *o = jobj(b);

        if (o && s->ref)
                jstr(b, o, secret_source_to_string(s->source), s->ref);
        return o;
}

static json_object *binding_to_json(JsonBuild *b, const Binding *x) {
        json_object *o = jobj(b);

        if (!o)
                return NULL;
        jstr(b, o, "name", x->name);
        jstr(b, o, "type", binding_kind_to_api_type(x->kind));
        jstr(b, o, "text", x->text);
        if (x->json) {
                json_object *j = json_tokener_parse(x->json);

                if (!j && !streq(x->json, "null"))
                        b->oom = true;
                else if (json_object_object_add(o, "json", j) < 0) {
                        json_object_put(j);
                        b->oom = true;
                }
        }
        if (x->kind == BINDING_SECRET)
                jadd(b, o, "secret", secret_ref_to_json(b, &x->secret));
        jstr(b, o, "target", x->target);
        jstr(b, o, "target_id", x->target_id);
        jstr(b, o, "jurisdiction", x->jurisdiction);
        jstr(b, o, "class_name", x->class_name);
        jstr(b, o, "script_name", x->script_name);
        jstr(b, o, "environment", x->environment);
        jstr(b, o, "service", x->service);
        jstr(b, o, "entrypoint", x->entrypoint);
        jstr(b, o, "store", x->store);
        jstr(b, o, "secret_name", x->secret_name);
        jstr(b, o, "dataset", x->dataset);
        jstr(b, o, "index_name", x->index_name);
        jstr(b, o, "workflow_name", x->workflow_name);
        return o;
}

/* An array member key of o, made from items[0..n) by fn. */
#define JSON_LIST(b, o, key, items, n, fn)                              \
        do {                                                            \
                json_object *_a = json_object_new_array();              \
                                                                        \
                for (size_t _i = 0; _i < (n); _i++)                     \
                        jpush((b), _a, fn((b), &(items)[_i]));          \
                jadd((b), (o), (key), _a);                              \
        } while (0)

static json_object *module_to_json(JsonBuild *b, const Module *x) {
        json_object *m = jobj(b);

        if (!m)
                return NULL;
        jstr(b, m, "name", x->name);
        jstr(b, m, "type", module_type_to_string(x->type));
        jstr(b, m, "sha256", x->sha256);
        jint(b, m, "size", (int64_t) x->size);
        return m;
}

static json_object *consumer_to_json(JsonBuild *b, const QueueConsumer *q) {
        json_object *m = jobj(b);

        if (!m)
                return NULL;
        jstr(b, m, "queue", q->queue);
        jint(b, m, "batch_size", q->batch_size);
        jint(b, m, "max_retries", q->max_retries);
        jint(b, m, "max_wait_time_ms", q->max_wait_time_ms);
        jint(b, m, "max_concurrency", q->max_concurrency);
        jint(b, m, "retry_delay", q->retry_delay);
        jstr(b, m, "dead_letter_queue", q->dead_letter_queue);
        return m;
}

static json_object *do_class_to_json(JsonBuild *b, const DurableObjectClass *d) {
        json_object *m = jobj(b);

        if (!m)
                return NULL;
        jstr(b, m, "class_name", d->class_name);
        jstr(b, m, "storage", d->sqlite ? "sqlite" : "kv");
        return m;
}

static json_object *migration_to_json(JsonBuild *b, const MigrationStep *s) {
        json_object *m = jobj(b), *r;

        if (!m)
                return NULL;
        jstr(b, m, "tag", s->tag);
        jadd(b, m, "new_classes", jstrv(b, s->new_classes));
        jadd(b, m, "new_sqlite_classes", jstrv(b, s->new_sqlite_classes));
        r = json_object_new_array();
        for (size_t j = 0; j < s->n_renamed_classes; j++) {
                json_object *x = jobj(b);

                if (!x)
                        continue;
                jstr(b, x, "from", s->renamed_classes[j].from);
                jstr(b, x, "to", s->renamed_classes[j].to);
                jpush(b, r, x);
        }
        jadd(b, m, "renamed_classes", r);
        jadd(b, m, "deleted_classes", jstrv(b, s->deleted_classes));
        return m;
}

static json_object *observability_to_json(JsonBuild *b, const Observability *x) {
        json_object *m = jobj(b);

        if (!m)
                return NULL;
        jbool(b, m, "enabled", x->enabled);
        if (x->head_sampling_rate >= 0)
                jadd(b, m, "head_sampling_rate", json_object_new_double(x->head_sampling_rate));
        if (x->logs_set) {
                json_object *l = jobj(b);

                if (l) {
                        jbool(b, l, "enabled", x->logs_enabled);
                        jbool(b, l, "invocation_logs", x->logs_invocation_logs);
                }
                jadd(b, m, "logs", l);
        }
        return m;
}

json_object *worker_to_json(const Worker *w) {
        JsonBuild b = {};
        json_object *o = jobj(&b);

        if (!o)
                return NULL;
        jstr(&b, o, "kind", "Worker");
        jstr(&b, o, "name", w->name);
        jstr(&b, o, "main_module", w->main_module);
        JSON_LIST(&b, o, "modules", w->modules, w->n_modules, module_to_json);
        jstr(&b, o, "compatibility_date", w->compatibility_date);
        jadd(&b, o, "compatibility_flags", jstrv(&b, w->compatibility_flags));
        JSON_LIST(&b, o, "bindings", w->bindings, w->n_bindings, binding_to_json);
        jadd(&b, o, "crons", jstrv(&b, w->crons));
        if (w->workers_dev >= 0)
                jbool(&b, o, "workers_dev", w->workers_dev);
        JSON_LIST(&b, o, "consumers", w->consumers, w->n_consumers, consumer_to_json);
        JSON_LIST(&b, o, "durable_object_classes", w->do_classes, w->n_do_classes, do_class_to_json);
        JSON_LIST(&b, o, "migrations", w->migrations, w->n_migrations, migration_to_json);
        jadd(&b, o, "tags", jstrv(&b, w->tags));
        if (w->observability.set)
                jadd(&b, o, "observability", observability_to_json(&b, &w->observability));
        jbool(&b, o, "logpush", w->logpush);
        jadd(&b, o, "policy", policy_to_json(&b, &w->policy));
        if (b.oom) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static json_object *kv_namespace_to_json(JsonBuild *b, const KVNamespace *k) {
        json_object *m = jobj(b);

        if (!m)
                return NULL;
        jstr(b, m, "name", k->name);
        jstr(b, m, "title", k->title);
        jstr(b, m, "id", k->id);
        jadd(b, m, "policy", policy_to_json(b, &k->policy));
        return m;
}

static json_object *r2_bucket_to_json(JsonBuild *b, const R2Bucket *k) {
        json_object *m = jobj(b);

        if (!m)
                return NULL;
        jstr(b, m, "name", k->name);
        jstr(b, m, "bucket_name", k->bucket_name);
        jstr(b, m, "jurisdiction", k->jurisdiction);
        jstr(b, m, "location_hint", k->location_hint);
        jstr(b, m, "storage_class", k->storage_class);
        jadd(b, m, "policy", policy_to_json(b, &k->policy));
        return m;
}

static json_object *d1_database_to_json(JsonBuild *b, const D1Database *k) {
        json_object *m = jobj(b);

        if (!m)
                return NULL;
        jstr(b, m, "name", k->name);
        jstr(b, m, "database_name", k->database_name);
        jstr(b, m, "id", k->id);
        jstr(b, m, "location_hint", k->location_hint);
        jstr(b, m, "jurisdiction", k->jurisdiction);
        jadd(b, m, "policy", policy_to_json(b, &k->policy));
        return m;
}

static json_object *queue_to_json(JsonBuild *b, const Queue *k) {
        json_object *m = jobj(b);

        if (!m)
                return NULL;
        jstr(b, m, "name", k->name);
        jstr(b, m, "queue_name", k->queue_name);
        jstr(b, m, "id", k->id);
        jint(b, m, "delivery_delay", k->delivery_delay);
        jint(b, m, "message_retention_period", k->message_retention_period);
        jadd(b, m, "policy", policy_to_json(b, &k->policy));
        return m;
}

static json_object *secrets_store_to_json(JsonBuild *b, const SecretsStore *k) {
        json_object *m = jobj(b);

        if (!m)
                return NULL;
        jstr(b, m, "name", k->name);
        jstr(b, m, "store_name", k->store_name);
        jstr(b, m, "id", k->id);
        jbool(b, m, "default", k->is_default);
        jadd(b, m, "policy", policy_to_json(b, &k->policy));
        return m;
}

static json_object *store_secret_to_json(JsonBuild *b, const SecretsStoreSecret *k) {
        json_object *m = jobj(b);

        if (!m)
                return NULL;
        jstr(b, m, "name", k->name);
        jstr(b, m, "store", k->store);
        jstr(b, m, "secret_name", k->secret_name);
        if (k->value.ref)
                jadd(b, m, "value", secret_ref_to_json(b, &k->value));
        jadd(b, m, "scopes", jstrv(b, k->scopes));
        jstr(b, m, "comment", k->comment);
        jadd(b, m, "policy", policy_to_json(b, &k->policy));
        return m;
}

/* Writes one list as generation_to_json() would print it: each element
 * built, printed and freed in turn, never the whole list as a tree. */
#define TEXT_LIST(b, f, flags, key, items, n, fn)                                               \
        do {                                                                                    \
                fputs(",\"" key "\":[", (f));                                                    \
                for (size_t _i = 0; _i < (n) && !(b)->oom; _i++) {                              \
                        json_object *_x = fn((b), &(items)[_i]);                                \
                        const char *_s = _x ? json_object_to_json_string_ext(_x, (flags)) : NULL; \
                                                                                                \
                        if (!_s)                                                                \
                                (b)->oom = true;                                                \
                        else                                                                    \
                                fprintf((f), "%s%s", _i > 0 ? "," : "", _s);                    \
                        json_object_put(_x);                                                    \
                }                                                                               \
                fputc(']', (f));                                                                \
        } while (0)

int generation_rest_to_text(const Generation *g, int flags, FILE *f) {
        JsonBuild b = {};

        /* The workers are digested apart (their names and digests). */
        fputs("{\"workers\":[]", f);
        TEXT_LIST(&b, f, flags, "kv_namespaces", g->kv_namespaces, g->n_kv_namespaces, kv_namespace_to_json);
        TEXT_LIST(&b, f, flags, "r2_buckets", g->r2_buckets, g->n_r2_buckets, r2_bucket_to_json);
        TEXT_LIST(&b, f, flags, "d1_databases", g->d1_databases, g->n_d1_databases, d1_database_to_json);
        TEXT_LIST(&b, f, flags, "queues", g->queues, g->n_queues, queue_to_json);
        TEXT_LIST(&b, f, flags, "secrets_stores", g->secrets_stores, g->n_secrets_stores, secrets_store_to_json);
        TEXT_LIST(&b, f, flags, "secrets_store_secrets", g->secrets_store_secrets, g->n_secrets_store_secrets,
                  store_secret_to_json);
        fputc('}', f);
        return b.oom || ferror(f) ? -ENOMEM : 0;
}

json_object *generation_to_json(const Generation *g) {
        JsonBuild b = {};
        json_object *o = jobj(&b), *a;

        if (!o)
                return NULL;
        a = json_object_new_array();
        for (size_t i = 0; i < g->n_workers; i++)
                jpush(&b, a, worker_to_json(&g->workers[i]));
        jadd(&b, o, "workers", a);
        JSON_LIST(&b, o, "kv_namespaces", g->kv_namespaces, g->n_kv_namespaces, kv_namespace_to_json);
        JSON_LIST(&b, o, "r2_buckets", g->r2_buckets, g->n_r2_buckets, r2_bucket_to_json);
        JSON_LIST(&b, o, "d1_databases", g->d1_databases, g->n_d1_databases, d1_database_to_json);
        JSON_LIST(&b, o, "queues", g->queues, g->n_queues, queue_to_json);
        JSON_LIST(&b, o, "secrets_stores", g->secrets_stores, g->n_secrets_stores, secrets_store_to_json);
        JSON_LIST(&b, o, "secrets_store_secrets", g->secrets_store_secrets, g->n_secrets_store_secrets,
                  store_secret_to_json);
        if (b.oom) {
                json_object_put(o);
                return NULL;
        }
        return o;
}
