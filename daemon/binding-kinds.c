/* binding-kinds.c: the binding-kind table; see binding-kinds.h. */
#include <ctype.h>
#include <string.h>

#include "binding-kinds.h"
#include "spec.h"
#include "util.h"

static const char *const no_keys[] = { NULL };
static const char *const id_keys[] = { "id", NULL };
static const char *const r2_keys[] = { "name", "jurisdiction", NULL };
static const char *const queue_keys[] = { "name", NULL };
static const char *const do_keys[] = { "class_name", "script", "environment", NULL };
static const char *const service_keys[] = { "service", "entrypoint", "environment", NULL };
static const char *const store_keys[] = { "store", "secret", NULL };
static const char *const analytics_keys[] = { "dataset", NULL };
static const char *const vectorize_keys[] = { "index_name", NULL };
static const char *const workflow_keys[] = { "name", "class_name", "script", NULL };

bool binding_valid_hex32(const char *s) {
        if (strlen(s) != 32)
                return false;
        for (const char *p = s; *p; p++)
                if (!isxdigit((unsigned char) *p))
                        return false;
        return true;
}

bool binding_valid_uuid(const char *s) {
        if (strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;

                if (dash ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
                        return false;
        }
        return true;
}

#define NONE _RESOURCE_KIND_INVALID
#define M(member) offsetof(Binding, member)
#define RESOLVED BINDING_FROM_RESOLVED

static const BindingKindInfo table[_BINDING_KIND_MAX] = {
        [BINDING_PLAIN_TEXT] = {
                BINDING_PLAIN_TEXT, "text", "plain_text", NONE, false, NULL, BINDING_FORM_TEXT, NULL,
                { { "text", M(text), BINDING_CANON_TEXT } },
        },
        [BINDING_JSON] = {
                BINDING_JSON, "json", "json", NONE, false, NULL, BINDING_FORM_JSON,
        },
        [BINDING_SECRET] = {
                BINDING_SECRET, "secret", "secret_text", NONE, false, "string", BINDING_FORM_SECRET,
        },
        [BINDING_KV_NAMESPACE] = {
                BINDING_KV_NAMESPACE, "kv_namespace", "kv_namespace", RESOURCE_KV_NAMESPACE, false, "KVNamespace",
                BINDING_FORM_REFERENCE, id_keys, { { "namespace_id", RESOLVED } },
                binding_valid_hex32, "KV namespace id ", " must be 32 hexadecimal characters",
        },
        [BINDING_R2_BUCKET] = {
                BINDING_R2_BUCKET, "r2_bucket", "r2_bucket", RESOURCE_R2_BUCKET, true, "R2Bucket",
                BINDING_FORM_REFERENCE, r2_keys,
                { { "bucket_name", RESOLVED }, { "jurisdiction", M(jurisdiction), BINDING_CANON_JURISDICTION } },
                spec_valid_bucket_name, "", " is not a valid R2 bucket name (3-63 characters: "
                "a-z, 0-9 and '-', starting and ending with a letter or digit)",
        },
        [BINDING_D1] = {
                BINDING_D1, "d1", "d1", RESOURCE_D1_DATABASE, false, "D1Database",
                BINDING_FORM_REFERENCE, id_keys, { { "database_id", RESOLVED, .alias = "id" } },
                binding_valid_uuid, "D1 database id ", " must be a UUID",
        },
        [BINDING_DURABLE_OBJECT] = {
                BINDING_DURABLE_OBJECT, "durable_object", "durable_object_namespace", NONE, false,
                "DurableObjectNamespace", BINDING_FORM_MAPPING, do_keys,
                { { "class_name", M(class_name) }, { "script_name", M(script_name), BINDING_CANON_SCRIPT },
                  { "environment", M(environment), BINDING_CANON_ENVIRONMENT } },
        },
        [BINDING_QUEUE] = {
                BINDING_QUEUE, "queue", "queue", RESOURCE_QUEUE, true, "Queue",
                BINDING_FORM_REFERENCE, queue_keys, { { "queue_name", RESOLVED } },
                spec_valid_queue_name, "", " is not a valid queue name (1-63 characters: a-z, 0-9, '-' and '_')",
        },
        [BINDING_SERVICE] = {
                BINDING_SERVICE, "service", "service", NONE, false, "Fetcher", BINDING_FORM_SERVICE, service_keys,
                { { "service", M(service) }, { "environment", M(environment), BINDING_CANON_ENVIRONMENT },
                  { "entrypoint", M(entrypoint) } },
        },
        [BINDING_SECRETS_STORE_SECRET] = {
                BINDING_SECRETS_STORE_SECRET, "secrets_store", "secrets_store_secret",
                RESOURCE_SECRETS_STORE_SECRET, false, "SecretsStoreSecret", BINDING_FORM_MAPPING, store_keys,
                { { "store_id", BINDING_FROM_STORE_ID }, { "secret_name", RESOLVED } },
        },
        [BINDING_ANALYTICS_ENGINE] = {
                BINDING_ANALYTICS_ENGINE, "analytics_engine", "analytics_engine", NONE, false,
                "AnalyticsEngineDataset", BINDING_FORM_MAPPING, analytics_keys, { { "dataset", M(dataset) } },
        },
        [BINDING_AI] = {
                BINDING_AI, "ai", "ai", NONE, false, "Ai", BINDING_FORM_EMPTY, no_keys,
        },
        [BINDING_VERSION_METADATA] = {
                BINDING_VERSION_METADATA, "version_metadata", "version_metadata", NONE, false,
                "WorkerVersionMetadata", BINDING_FORM_EMPTY, no_keys,
        },
        [BINDING_HYPERDRIVE] = {
                BINDING_HYPERDRIVE, "hyperdrive", "hyperdrive", NONE, false, "Hyperdrive", BINDING_FORM_MAPPING,
                id_keys,
                { { "id", M(target_id) } }, binding_valid_hex32, "Hyperdrive id ", " must be 32 hexadecimal characters",
        },
        [BINDING_VECTORIZE] = {
                BINDING_VECTORIZE, "vectorize", "vectorize", NONE, false, "VectorizeIndex", BINDING_FORM_MAPPING,
                vectorize_keys, { { "index_name", M(index_name) } },
        },
        [BINDING_BROWSER] = {
                BINDING_BROWSER, "browser", "browser", NONE, false, "Fetcher", BINDING_FORM_EMPTY, no_keys,
        },
        [BINDING_WORKFLOW] = {
                BINDING_WORKFLOW, "workflow", "workflow", NONE, false, "Workflow", BINDING_FORM_MAPPING,
                workflow_keys,
                { { "workflow_name", M(workflow_name) }, { "class_name", M(class_name) },
                  { "script_name", M(script_name), BINDING_CANON_SCRIPT } },
        },
};

void binding_spec_keys(const char *ret[static _BINDING_KIND_MAX + 1]) {
        for (BindingKind k = 0; k < _BINDING_KIND_MAX; k++)
                ret[k] = table[k].spec_key;
        ret[_BINDING_KIND_MAX] = NULL;
}

const char *binding_kind_to_api_type(BindingKind k) {
        const BindingKindInfo *i = binding_kind_info(k);

        return i ? i->api_type : NULL;
}

BindingKind binding_kind_from_api_type(const char *s) {
        if (!s)
                return _BINDING_KIND_INVALID;
        for (BindingKind k = 0; k < _BINDING_KIND_MAX; k++)
                if (streq(table[k].api_type, s))
                        return k;
        return _BINDING_KIND_INVALID;
}

const char *binding_field_value(const BindingField *f, const Binding *b, const char *resolved,
                                const char *store_id) {
        if (f->from == BINDING_FROM_RESOLVED)
                return resolved;
        if (f->from == BINDING_FROM_STORE_ID)
                return store_id;
        return *(char *const *) ((const char *) b + f->from);
}

const BindingKindInfo *binding_kind_info(BindingKind k) {
        if (k < 0 || k >= _BINDING_KIND_MAX)
                return NULL;
        return &table[k];
}

BindingKind binding_kind_from_spec_key(const char *s) {
        if (!s)
                return _BINDING_KIND_INVALID;
        for (BindingKind k = 0; k < _BINDING_KIND_MAX; k++)
                if (streq(table[k].spec_key, s))
                        return k;
        return _BINDING_KIND_INVALID;
}

ResourceKind binding_kind_target(BindingKind k) {
        const BindingKindInfo *i = binding_kind_info(k);

        return i ? i->target : _RESOURCE_KIND_INVALID;
}
