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

static const char *const binding_api_type_table[_BINDING_KIND_MAX] = {
        [BINDING_PLAIN_TEXT] = "plain_text",
        [BINDING_JSON] = "json",
        [BINDING_SECRET] = "secret_text",
        [BINDING_KV_NAMESPACE] = "kv_namespace",
        [BINDING_R2_BUCKET] = "r2_bucket",
        [BINDING_D1] = "d1",
        [BINDING_DURABLE_OBJECT] = "durable_object_namespace",
        [BINDING_QUEUE] = "queue",
        [BINDING_SERVICE] = "service",
        [BINDING_SECRETS_STORE_SECRET] = "secrets_store_secret",
        [BINDING_ANALYTICS_ENGINE] = "analytics_engine",
        [BINDING_AI] = "ai",
        [BINDING_VERSION_METADATA] = "version_metadata",
        [BINDING_HYPERDRIVE] = "hyperdrive",
        [BINDING_VECTORIZE] = "vectorize",
        [BINDING_BROWSER] = "browser",
        [BINDING_WORKFLOW] = "workflow",
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

const char *binding_kind_to_api_type(BindingKind k) {
        return TABLE_TO_STRING(binding_api_type_table, k);
}

BindingKind binding_kind_from_api_type(const char *s) {
        return (BindingKind) table_lookup(binding_api_type_table, ELEMENTSOF(binding_api_type_table), s);
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

#define DEFINE_FIND(fn, type, array, count)                                   \
        const type *fn(const Generation *g, const char *name) {               \
                for (size_t i = 0; i < g->count; i++)                         \
                        if (streq(g->array[i].name, name))                    \
                                return &g->array[i];                          \
                return NULL;                                                  \
        }

DEFINE_FIND(generation_find_worker, Worker, workers, n_workers)
DEFINE_FIND(generation_find_kv, KVNamespace, kv_namespaces, n_kv_namespaces)
DEFINE_FIND(generation_find_r2, R2Bucket, r2_buckets, n_r2_buckets)
DEFINE_FIND(generation_find_d1, D1Database, d1_databases, n_d1_databases)
DEFINE_FIND(generation_find_queue, Queue, queues, n_queues)
DEFINE_FIND(generation_find_store, SecretsStore, secrets_stores, n_secrets_stores)
DEFINE_FIND(generation_find_store_secret, SecretsStoreSecret, secrets_store_secrets, n_secrets_store_secrets)
