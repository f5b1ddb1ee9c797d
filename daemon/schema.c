/* schema.c: the JSON Schema (draft 2020-12) of the spec language
 * (schema.h, binderyd(8) "schema").
 *
 * Which keys each mapping has, the binding kinds, the document kinds and
 * every enumeration come from the loader's own tables (spec-grammar.h).
 * What the loader checks in code (a key's value type, ranges, name
 * patterns) is written here once per key, in value_types[]; a key in the
 * loader's tables without an entry there makes schema_build() fail with
 * -ENOKEY, and the schema test fails with it, so the two cannot drift
 * apart silently. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "binding-kinds.h"
#include "schema.h"
#include "spec-grammar.h"
#include "util.h"

/* The schema of each key by context. "@list@" as the value of "enum"
 * becomes that grammar list. */
static const struct {
        const char *ctx;
        const char *key;
        bool required;
        const char *schema;
} value_types[] = {
        { "common", "kind", true, "{\"type\":\"string\"}" },
        { "common", "name", true, "{\"$ref\":\"#/$defs/name\"}" },
        { "common", "adopt", false, "{\"type\":\"boolean\"}" },
        { "common", "external", false, "{\"type\":\"boolean\"}" },
        { "common", "suspend", false, "{\"type\":\"boolean\"}" },
        { "common", "deletion_policy", false, "{\"enum\":\"@deletion_policies@\"}" },
        { "common", "drift", false, "{\"enum\":\"@drift_policies@\"}" },

        { "Worker", "main", false, "{\"type\":\"string\",\"minLength\":1}" },
        { "Worker", "modules", false, "{\"type\":\"array\",\"items\":{\"oneOf\":[{\"type\":\"string\",\"minLength\":1},{\"$ref\":\"#/$defs/module\"}]}}" },
        { "Worker", "compatibility_date", false, "{\"type\":\"string\",\"pattern\":\"^[0-9]{4}-[0-9]{2}-[0-9]{2}$\"}" },
        { "Worker", "compatibility_flags", false, "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"pattern\":\"^[a-z0-9_]+$\"}}" },
        { "Worker", "bindings", false, "{\"type\":\"object\",\"propertyNames\":{\"$ref\":\"#/$defs/identifier\"},\"additionalProperties\":{\"$ref\":\"#/$defs/binding\"}}" },
        { "Worker", "crons", false, "{\"$ref\":\"#/$defs/strings\"}" },
        { "Worker", "workers_dev", false, "{\"type\":\"boolean\"}" },
        { "Worker", "consumers", false, "{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/consumer\"}}" },
        { "Worker", "durable_objects", false, "{\"$ref\":\"#/$defs/durable_objects\"}" },
        { "Worker", "tags", false, "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":128,\"pattern\":\"^[^,:]+$\"}}" },
        { "Worker", "observability", false, "{\"oneOf\":[{\"type\":\"boolean\"},{\"$ref\":\"#/$defs/observability\"}]}" },
        { "Worker", "logpush", false, "{\"type\":\"boolean\"}" },

        { "KVNamespace", "title", false, "{\"type\":\"string\",\"minLength\":1,\"maxLength\":512}" },
        { "KVNamespace", "id", false, "{\"$ref\":\"#/$defs/hex32\"}" },
        { "R2Bucket", "bucket_name", false, "{\"type\":\"string\",\"pattern\":\"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$\"}" },
        { "R2Bucket", "jurisdiction", false, "{\"enum\":\"@r2_jurisdictions@\"}" },
        { "R2Bucket", "location_hint", false, "{\"enum\":\"@location_hints@\"}" },
        { "R2Bucket", "storage_class", false, "{\"enum\":\"@r2_storage_classes@\"}" },
        { "D1Database", "database_name", false, "{\"type\":\"string\",\"pattern\":\"^[a-z0-9_-]{1,63}$\"}" },
        { "D1Database", "id", false, "{\"$ref\":\"#/$defs/uuid\"}" },
        { "D1Database", "location_hint", false, "{\"enum\":\"@location_hints@\"}" },
        { "D1Database", "jurisdiction", false, "{\"enum\":\"@d1_jurisdictions@\"}" },
        { "Queue", "queue_name", false, "{\"type\":\"string\",\"pattern\":\"^[a-z0-9_-]{1,63}$\"}" },
        { "Queue", "id", false, "{\"type\":\"string\",\"minLength\":1}" },
        { "Queue", "delivery_delay", false, "{\"type\":\"integer\",\"minimum\":0,\"maximum\":43200}" },
        { "Queue", "message_retention_period", false, "{\"type\":\"integer\",\"minimum\":60,\"maximum\":1209600}" },
        { "SecretsStore", "store_name", false, "{\"type\":\"string\",\"minLength\":1}" },
        { "SecretsStore", "id", false, "{\"$ref\":\"#/$defs/hex32\"}" },
        { "SecretsStore", "default", false, "{\"type\":\"boolean\"}" },
        { "SecretsStore", "managed", false, "{\"type\":\"boolean\"}" },
        { "SecretsStoreSecret", "store", false, "{\"$ref\":\"#/$defs/name\"}" },
        { "SecretsStoreSecret", "secret_name", false, "{\"type\":\"string\",\"minLength\":1}" },
        { "SecretsStoreSecret", "value", false, "{\"$ref\":\"#/$defs/secret_ref\"}" },
        { "SecretsStoreSecret", "scopes", false, "{\"type\":\"array\",\"items\":{\"enum\":\"@secret_scopes@\"}}" },
        { "SecretsStoreSecret", "comment", false, "{\"type\":\"string\"}" },

        { "module", "path", true, "{\"type\":\"string\",\"minLength\":1}" },
        { "module", "type", false, "{\"enum\":\"@module_types@\"}" },
        { "consumer", "queue", true, "{\"$ref\":\"#/$defs/name\"}" },
        { "consumer", "batch_size", false, "{\"type\":\"integer\",\"minimum\":1,\"maximum\":100}" },
        { "consumer", "max_retries", false, "{\"type\":\"integer\",\"minimum\":0,\"maximum\":100}" },
        { "consumer", "max_wait_time_ms", false, "{\"type\":\"integer\",\"minimum\":0,\"maximum\":60000}" },
        { "consumer", "max_concurrency", false, "{\"type\":\"integer\",\"minimum\":1,\"maximum\":250}" },
        { "consumer", "retry_delay", false, "{\"type\":\"integer\",\"minimum\":0,\"maximum\":43200}" },
        { "consumer", "dead_letter_queue", false, "{\"$ref\":\"#/$defs/name\"}" },
        { "consumer", "settings", false, "{\"$ref\":\"#/$defs/consumer_settings\"}" },
        { "consumer_settings", "batch_size", false, "{\"type\":\"integer\",\"minimum\":1,\"maximum\":100}" },
        { "consumer_settings", "max_retries", false, "{\"type\":\"integer\",\"minimum\":0,\"maximum\":100}" },
        { "consumer_settings", "max_wait_time_ms", false, "{\"type\":\"integer\",\"minimum\":0,\"maximum\":60000}" },
        { "consumer_settings", "max_concurrency", false, "{\"type\":\"integer\",\"minimum\":1,\"maximum\":250}" },
        { "consumer_settings", "retry_delay", false, "{\"type\":\"integer\",\"minimum\":0,\"maximum\":43200}" },
        { "durable_objects", "classes", false, "{\"type\":\"array\",\"items\":{\"oneOf\":[{\"$ref\":\"#/$defs/identifier\"},{\"$ref\":\"#/$defs/do_class\"}]}}" },
        { "durable_objects", "migrations", false, "{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/migration\"}}" },
        { "do_class", "class_name", true, "{\"$ref\":\"#/$defs/identifier\"}" },
        { "do_class", "storage", false, "{\"enum\":\"@do_storage@\"}" },
        { "migration", "tag", true, "{\"type\":\"string\",\"minLength\":1}" },
        { "migration", "new_classes", false, "{\"$ref\":\"#/$defs/classes\"}" },
        { "migration", "new_sqlite_classes", false, "{\"$ref\":\"#/$defs/classes\"}" },
        { "migration", "renamed_classes", false, "{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/rename\"}}" },
        { "migration", "deleted_classes", false, "{\"$ref\":\"#/$defs/classes\"}" },
        { "rename", "from", true, "{\"type\":\"string\",\"minLength\":1}" },
        { "rename", "to", true, "{\"$ref\":\"#/$defs/identifier\"}" },
        { "observability", "enabled", false, "{\"type\":\"boolean\"}" },
        { "observability", "head_sampling_rate", false, "{\"type\":\"number\",\"minimum\":0,\"maximum\":1}" },
        { "observability", "logs", false, "{\"$ref\":\"#/$defs/logs\"}" },
        { "logs", "enabled", false, "{\"type\":\"boolean\"}" },
        { "logs", "invocation_logs", false, "{\"type\":\"boolean\"}" },
        { "secret_ref", "credential", false, "{\"type\":\"string\",\"pattern\":\"^[^/]+$\",\"not\":{\"enum\":[\".\",\"..\"]}}" },
        { "secret_ref", "file", false, "{\"type\":\"string\",\"minLength\":1}" },
        { "secret_ref", "env", false, "{\"type\":\"string\",\"pattern\":\"^[A-Za-z_][A-Za-z0-9_]*$\"}" },

        /* Binding references, "binding.FORM". */
        { "binding.kv_namespace", "id", true, "{\"$ref\":\"#/$defs/hex32\"}" },
        { "binding.r2_bucket", "name", true, "{\"type\":\"string\",\"pattern\":\"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$\"}" },
        { "binding.r2_bucket", "jurisdiction", false, "{\"enum\":\"@r2_binding_jurisdictions@\"}" },
        { "binding.d1", "id", true, "{\"$ref\":\"#/$defs/uuid\"}" },
        { "binding.queue", "name", true, "{\"type\":\"string\",\"pattern\":\"^[a-z0-9_-]{1,63}$\"}" },
        { "binding.durable_object", "class_name", true, "{\"$ref\":\"#/$defs/identifier\"}" },
        { "binding.durable_object", "script", false, "{\"$ref\":\"#/$defs/worker_name\"}" },
        { "binding.durable_object", "environment", false, "{\"type\":\"string\",\"minLength\":1}" },
        { "binding.service", "service", true, "{\"$ref\":\"#/$defs/worker_name\"}" },
        { "binding.service", "entrypoint", false, "{\"$ref\":\"#/$defs/identifier\"}" },
        { "binding.service", "environment", false, "{\"type\":\"string\",\"minLength\":1}" },
        { "binding.secrets_store", "store", false, "{\"type\":\"string\",\"minLength\":1}" },
        { "binding.secrets_store", "secret", true, "{\"type\":\"string\",\"minLength\":1}" },
        { "binding.analytics_engine", "dataset", true, "{\"type\":\"string\",\"minLength\":1}" },
        { "binding.hyperdrive", "id", true, "{\"$ref\":\"#/$defs/hex32\"}" },
        { "binding.vectorize", "index_name", true, "{\"type\":\"string\",\"minLength\":1}" },
        { "binding.workflow", "name", true, "{\"type\":\"string\",\"minLength\":1}" },
        { "binding.workflow", "class_name", true, "{\"$ref\":\"#/$defs/identifier\"}" },
        { "binding.workflow", "script", false, "{\"type\":\"string\",\"minLength\":1}" },
};

/* Shared definitions that are not keyed mappings. */
static const struct {
        const char *name;
        const char *schema;
} plain_defs[] = {
        { "name", "{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$\"}" },
        { "worker_name", "{\"type\":\"string\",\"pattern\":\"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$\"}" },
        { "identifier", "{\"type\":\"string\",\"pattern\":\"^[A-Za-z_$][A-Za-z0-9_$]{0,254}$\"}" },
        { "hex32", "{\"type\":\"string\",\"pattern\":\"^[0-9A-Fa-f]{32}$\"}" },
        { "uuid", "{\"type\":\"string\",\"pattern\":\"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$\"}" },
        { "strings", "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1}}" },
        { "classes", "{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/identifier\"}}" },
};

/* Binding forms whose value is not a keyed mapping, and forms that also
 * take a document name as a scalar (ref_form() in the loader). */
/* The schema of each value form that is not a mapping of keys. */
static const char *const scalar_forms[_BINDING_FORM_MAX] = {
        [BINDING_FORM_TEXT] = "{\"type\":[\"string\",\"number\",\"boolean\"]}",
        [BINDING_FORM_JSON] = "true",
        [BINDING_FORM_SECRET] = "{\"$ref\":\"#/$defs/secret_ref\"}",
};

static const char *const *grammar_list(const char *name) {
        static const struct {
                const char *name;
                size_t offset;
        } lists[] = {
#define L(x) { #x, offsetof(SpecGrammar, x) }
                L(deletion_policies), L(drift_policies), L(location_hints), L(r2_storage_classes),
                L(r2_jurisdictions), L(r2_binding_jurisdictions), L(d1_jurisdictions), L(secret_scopes),
                L(module_types), L(do_storage),
#undef L
        };

        for (size_t i = 0; i < ELEMENTSOF(lists); i++)
                if (streq(lists[i].name, name))
                        return *(const char *const *const *) ((const char *) &spec_grammar + lists[i].offset);
        return NULL;
}

static json_object *strv_json(const char *const *l) {
        json_object *a = json_object_new_array();

        for (; a && *l; l++)
                if (json_object_array_add(a, json_object_new_string(*l)) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        return a;
}

/* Parses a fragment and fills "@list@" enums. */
static int fragment(const char *text, json_object **ret) {
        json_object *o = json_tokener_parse(text), *e;
        const char *s;

        if (!o)
                return -ENOMEM;
        if (json_object_object_get_ex(o, "enum", &e) && json_object_is_type(e, json_type_string)) {
                _cleanup_free_ char *name = NULL;
                const char *const *l;
                json_object *a;

                s = json_object_get_string(e);
                name = strndup(s + 1, strlen(s) - 2);
                l = name ? grammar_list(name) : NULL;
                if (!l || !(a = strv_json(l))) {
                        json_object_put(o);
                        return l ? -ENOMEM : -EINVAL;
                }
                json_object_object_add(o, "enum", a);
        }
        if (json_object_object_get_ex(o, "items", &e) && json_object_object_get_ex(e, "enum", NULL)) {
                json_object *inner;
                int r = fragment(json_object_to_json_string(e), &inner);

                if (r < 0) {
                        json_object_put(o);
                        return r;
                }
                json_object_object_add(o, "items", inner);
        }
        *ret = o;
        return 0;
}

/* {"type":"object","properties":...,"required":[...],"additionalProperties":false}
 * over keys[], each key's schema from value_types[] in ctx (or "common"). */
static int mapping(const char *ctx, const char *const *keys, json_object **ret) {
        json_object *o = json_object_new_object(), *props = json_object_new_object(),
                    *req = json_object_new_array();
        int r = -ENOMEM;

        if (!o || !props || !req)
                goto fail;
        for (const char *const *k = keys; *k; k++) {
                json_object *v = NULL;
                size_t i;

                for (i = 0; i < ELEMENTSOF(value_types); i++)
                        if (streq(value_types[i].key, *k) &&
                            (streq(value_types[i].ctx, ctx) || streq(value_types[i].ctx, "common")))
                                break;
                /* A context's own entry wins over "common". */
                for (size_t j = 0; j < ELEMENTSOF(value_types); j++)
                        if (streq(value_types[j].key, *k) && streq(value_types[j].ctx, ctx))
                                i = j;
                if (i == ELEMENTSOF(value_types)) {
                        r = -ENOKEY;
                        goto fail;
                }
                r = fragment(value_types[i].schema, &v);
                if (r < 0)
                        goto fail;
                json_object_object_add(props, *k, v);
                if (value_types[i].required)
                        json_object_array_add(req, json_object_new_string(*k));
        }
        json_object_object_add(o, "type", json_object_new_string("object"));
        json_object_object_add(o, "properties", props);
        if (json_object_array_length(req) > 0)
                json_object_object_add(o, "required", req);
        else
                json_object_put(req);
        json_object_object_add(o, "additionalProperties", json_object_new_boolean(false));
        *ret = o;
        return 0;
fail:
        json_object_put(o);
        json_object_put(props);
        json_object_put(req);
        return r;
}

static int add_mapping_def(json_object *defs, const char *name, const char *const *keys) {
        json_object *m;
        int r = mapping(name, keys, &m);

        if (r < 0)
                return r;
        return json_object_object_add(defs, name, m) < 0 ? -ENOMEM : 0;
}

/* "binding": a scalar (plain text) or a mapping with exactly one kind key. */
static int binding_def(json_object *defs) {
        json_object *b = json_object_new_object(), *one = json_object_new_array(), *m = json_object_new_object(),
                    *props = json_object_new_object(), *v;
        int r = -ENOMEM;

        if (!b || !one || !m || !props)
                goto fail;
        for (BindingKind k = 0; k < _BINDING_KIND_MAX; k++) {
                const BindingKindInfo *info = binding_kind_info(k);
                const char *form = info->spec_key;
                _cleanup_free_ char *ctx = NULL;
                json_object *alts;

                v = NULL;
                if (scalar_forms[info->form] && fragment(scalar_forms[info->form], &v) < 0)
                        goto fail;
                if (!v && !info->keys) {
                        r = -ENOKEY;
                        goto fail;
                }
                if (!v) {
                        if (asprintf(&ctx, "binding.%s", form) < 0)
                                goto fail;
                        r = mapping(ctx, info->keys, &v);
                        if (r < 0)
                                goto fail;
                        r = -ENOMEM;
                        if (info->form == BINDING_FORM_EMPTY) {
                                /* {} or nothing (ai: {}, browser: ~) */
                                alts = json_object_new_array();
                                json_object_array_add(alts, v);
                                json_object_array_add(alts, json_tokener_parse("{\"type\":\"null\"}"));
                                v = json_object_new_object();
                                json_object_object_add(v, "oneOf", alts);
                        } else if (info->form == BINDING_FORM_SERVICE || info->form == BINDING_FORM_REFERENCE) {
                                alts = json_object_new_array();
                                json_object_array_add(alts, json_tokener_parse(info->form == BINDING_FORM_SERVICE
                                                ? "{\"$ref\":\"#/$defs/worker_name\"}"
                                                : "{\"$ref\":\"#/$defs/name\"}"));
                                json_object_array_add(alts, v);
                                v = json_object_new_object();
                                json_object_object_add(v, "oneOf", alts);
                        }
                }
                json_object_object_add(props, form, v);
        }
        json_object_object_add(m, "type", json_object_new_string("object"));
        json_object_object_add(m, "minProperties", json_object_new_int(1));
        json_object_object_add(m, "maxProperties", json_object_new_int(1));
        json_object_object_add(m, "properties", props);
        json_object_object_add(m, "additionalProperties", json_object_new_boolean(false));
        json_object_array_add(one, json_tokener_parse("{\"type\":[\"string\",\"number\",\"boolean\"]}"));
        json_object_array_add(one, m);
        json_object_object_add(b, "oneOf", one);
        return json_object_object_add(defs, "binding", b) < 0 ? -ENOMEM : 0;
fail:
        json_object_put(b);
        json_object_put(one);
        json_object_put(m);
        json_object_put(props);
        return r;
}

/* The shared definitions: the plain ones, each section's mapping, the
 * bindings, and a secret reference (exactly one of its keys). */
static int add_section_defs(json_object *defs) {
        const SpecGrammar *g = &spec_grammar;
        json_object *sr;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(plain_defs); i++) {
                json_object *d = NULL;

                r = fragment(plain_defs[i].schema, &d);
                if (r < 0)
                        return r;
                if (json_object_object_add(defs, plain_defs[i].name, d) < 0)
                        return -ENOMEM;
        }
        if ((r = add_mapping_def(defs, "module", g->module_keys)) < 0 ||
            (r = add_mapping_def(defs, "consumer", g->consumer_keys)) < 0 ||
            (r = add_mapping_def(defs, "consumer_settings", g->consumer_settings_keys)) < 0 ||
            (r = add_mapping_def(defs, "durable_objects", g->do_section_keys)) < 0 ||
            (r = add_mapping_def(defs, "do_class", g->do_class_keys)) < 0 ||
            (r = add_mapping_def(defs, "migration", g->migration_keys)) < 0 ||
            (r = add_mapping_def(defs, "rename", g->rename_keys)) < 0 ||
            (r = add_mapping_def(defs, "observability", g->observability_keys)) < 0 ||
            (r = add_mapping_def(defs, "logs", g->logs_keys)) < 0 ||
            (r = binding_def(defs)) < 0)
                return r;
        r = mapping("secret_ref", g->secret_ref_keys, &sr);
        if (r < 0)
                return r;
        json_object_object_add(sr, "minProperties", json_object_new_int(1));
        json_object_object_add(sr, "maxProperties", json_object_new_int(1));
        json_object_object_add(defs, "secret_ref", sr);
        return 0;
}

/* Document kind k: its definition in defs, and in all the rule "if kind
 * is k, then that definition". */
static int add_kind_def(json_object *defs, json_object *all, size_t k) {
        const SpecGrammar *g = &spec_grammar;
        json_object *d, *c, *kc, *ifo, *item, *ref;
        _cleanup_free_ char *refs = NULL;
        int r;

        r = mapping(g->kind_names[k], g->document_keys[k], &d);
        if (r < 0)
                return r;
        json_object_object_get_ex(d, "properties", &c);
        kc = json_object_new_object();
        json_object_object_add(kc, "const", json_object_new_string(g->kind_names[k]));
        json_object_object_add(c, "kind", kc);
        if (k == 0) /* a Worker's name is also its script name */
                json_object_object_add(c, "name", json_tokener_parse("{\"$ref\":\"#/$defs/worker_name\"}"));
        json_object_object_add(defs, g->kind_names[k], d);
        if (asprintf(&refs, "#/$defs/%s", g->kind_names[k]) < 0) {
                refs = NULL;
                return -ENOMEM;
        }
        ifo = json_tokener_parse("{\"properties\":{\"kind\":{\"const\":\"\"}},\"required\":[\"kind\"]}");
        item = json_object_new_object();
        ref = json_object_new_object();
        if (!ifo || !item || !ref) {
                json_object_put(ifo);
                json_object_put(item);
                json_object_put(ref);
                return -ENOMEM;
        }
        json_object_object_get_ex(ifo, "properties", &c);
        json_object_object_get_ex(c, "kind", &c);
        json_object_object_add(c, "const", json_object_new_string(g->kind_names[k]));
        json_object_object_add(ref, "$ref", json_object_new_string(refs));
        json_object_object_add(item, "if", ifo);
        json_object_object_add(item, "then", ref);
        json_object_array_add(all, item);
        return 0;
}

int schema_build(json_object **ret) {
        const SpecGrammar *g = &spec_grammar;
        json_object *s = json_object_new_object(), *defs = json_object_new_object(), *all = json_object_new_array(),
                    *props = json_object_new_object(), *kind;
        int r = -ENOMEM;

        if (!s || !defs || !all || !props)
                goto fail;
        r = add_section_defs(defs);
        if (r < 0)
                goto fail;
        for (size_t k = 0; g->kind_names[k]; k++) {
                r = add_kind_def(defs, all, k);
                if (r < 0)
                        goto fail;
        }
        json_object_object_add(s, "$schema", json_object_new_string("https://json-schema.org/draft/2020-12/schema"));
        json_object_object_add(s, "$id", json_object_new_string("urn:bindery:spec"));
        json_object_object_add(s, "title", json_object_new_string("bindery spec document (bindery-spec(5))"));
        json_object_object_add(s, "type", json_object_new_string("object"));
        json_object_object_add(s, "required", json_tokener_parse("[\"kind\",\"name\"]"));
        kind = json_object_new_object();
        json_object_object_add(kind, "enum", strv_json(g->kind_names));
        json_object_object_add(props, "kind", kind);
        json_object_object_add(s, "properties", props);
        json_object_object_add(s, "allOf", all);
        json_object_object_add(s, "$defs", defs);
        *ret = s;
        return 0;
fail:
        json_object_put(s);
        json_object_put(defs);
        json_object_put(all);
        json_object_put(props);
        return r;
}
