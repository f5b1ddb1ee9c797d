/* cfreq.c: the table of Cloudflare paths, the request bodies and the
 * answers apply reads (cfreq.h). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "binding-kinds.h"
#include "cfapi.h"
#include "cfreq.h"
#include "cleanup.h"
#include "util.h"

static const char *const templates[_CF_PATH_MAX] = {
        [CF_PATH_SCRIPTS] = "workers/scripts",
        [CF_PATH_SCRIPT] = "workers/scripts/{}",
        [CF_PATH_SCRIPT_DEPLOYMENTS] = "workers/scripts/{}/deployments",
        [CF_PATH_SCRIPT_SCHEDULES] = "workers/scripts/{}/schedules",
        [CF_PATH_SCRIPT_SUBDOMAIN] = "workers/scripts/{}/subdomain",
        [CF_PATH_SCRIPT_SETTINGS] = "workers/scripts/{}/settings",
        [CF_PATH_SCRIPT_SECRETS] = "workers/scripts/{}/secrets",
        [CF_PATH_SCRIPT_SECRET] = "workers/scripts/{}/secrets/{}",
        [CF_PATH_SCRIPT_VERSION] = "workers/scripts/{}/versions/{}",
        [CF_PATH_KV_NAMESPACES] = "storage/kv/namespaces",
        [CF_PATH_KV_NAMESPACE] = "storage/kv/namespaces/{}",
        [CF_PATH_R2_BUCKETS] = "r2/buckets",
        [CF_PATH_R2_BUCKET] = "r2/buckets/{}",
        [CF_PATH_D1_DATABASES] = "d1/database",
        [CF_PATH_D1_DATABASE] = "d1/database/{}",
        [CF_PATH_QUEUES] = "queues",
        [CF_PATH_QUEUE] = "queues/{}",
        [CF_PATH_QUEUE_CONSUMERS] = "queues/{}/consumers",
        [CF_PATH_QUEUE_CONSUMER] = "queues/{}/consumers/{}",
        [CF_PATH_STORES] = "secrets_store/stores",
        [CF_PATH_STORE] = "secrets_store/stores/{}",
        [CF_PATH_STORE_SECRETS] = "secrets_store/stores/{}/secrets",
        [CF_PATH_STORE_SECRET] = "secrets_store/stores/{}/secrets/{}",
        [CF_PATH_AUDIT] = "logs/audit",
        [CF_PATH_TOKEN_VERIFY] = "/user/tokens/verify",
};

static const struct {
        CfPath collection, item;
} kinds[_RESOURCE_KIND_MAX] = {
        [RESOURCE_WORKER] = { CF_PATH_SCRIPTS, CF_PATH_SCRIPT },
        [RESOURCE_KV_NAMESPACE] = { CF_PATH_KV_NAMESPACES, CF_PATH_KV_NAMESPACE },
        [RESOURCE_R2_BUCKET] = { CF_PATH_R2_BUCKETS, CF_PATH_R2_BUCKET },
        [RESOURCE_D1_DATABASE] = { CF_PATH_D1_DATABASES, CF_PATH_D1_DATABASE },
        [RESOURCE_QUEUE] = { CF_PATH_QUEUES, CF_PATH_QUEUE },
        [RESOURCE_SECRETS_STORE] = { CF_PATH_STORES, CF_PATH_STORE },
        [RESOURCE_SECRETS_STORE_SECRET] = { _CF_PATH_INVALID, _CF_PATH_INVALID },
};

const char *cfreq_template(CfPath p) {
        assert(p >= 0 && p < _CF_PATH_MAX);
        return templates[p];
}

unsigned cfreq_segments(CfPath p) {
        unsigned n = 0;

        for (const char *t = cfreq_template(p); (t = strstr(t, "{}")); t += 2)
                n++;
        return n;
}

int cfreq_path(char **ret, CfPath p, ...) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t size = 0;
        const char *t = cfreq_template(p), *hole;
        va_list ap;
        int r = 0;

        assert(ret);
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        va_start(ap, p);
        while ((hole = strstr(t, "{}"))) {
                _cleanup_free_ char *esc = cfapi_escape(va_arg(ap, const char *) ?: "");

                if (!esc) {
                        r = -ENOMEM;
                        break;
                }
                fwrite(t, 1, (size_t) (hole - t), f);
                fputs(esc, f);
                t = hole + 2;
        }
        va_end(ap);
        if (r < 0)
                return r;
        fputs(t, f);
        if (fclose(TAKE_PTR(f)) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

CfPath cfreq_collection(ResourceKind k) {
        return k >= 0 && k < _RESOURCE_KIND_MAX ? kinds[k].collection : _CF_PATH_INVALID;
}

CfPath cfreq_item(ResourceKind k) {
        return k >= 0 && k < _RESOURCE_KIND_MAX ? kinds[k].item : _CF_PATH_INVALID;
}

const char *cfreq_permission(const char *text) {
        static const struct {
                const char *route, *permission;
        } t[] = {
                { "storage/kv", "Workers KV Storage: Edit" },
                { "r2/", "Workers R2 Storage: Edit" },
                { "d1/", "D1: Edit" },
                { "queues", "Queues: Edit" },
                { "secrets_store", "Secrets Store: Edit" },
                { "logs/audit", "Account Settings: Read" },
                { "workers/", "Workers Scripts: Edit" },
        };

        for (size_t i = 0; text && i < ELEMENTSOF(t); i++)
                if (strstr(text, t[i].route))
                        return t[i].permission;
        return NULL;
}

int cfreq_audit_query(uint64_t since_usec, uint64_t before_usec, const char *exclude_token_id, char **ret) {
        char since[64], before[64];
        _cleanup_free_ char *a = cfapi_escape(format_rfc3339(since_usec, since, sizeof(since))),
                            *b = cfapi_escape(format_rfc3339(before_usec, before, sizeof(before))),
                            *t = exclude_token_id ? cfapi_escape(exclude_token_id) : NULL;

        assert(ret);
        if (!a || !b || (exclude_token_id && !t) ||
            asprintf(ret, "since=%s&before=%s&limit=1000%s%s", a, b, t ? "&actor_token_id.not=" : "", t ? t : "") < 0)
                return -ENOMEM;
        return 0;
}

/* ---- request bodies ---- */

static void add_str(json_object *o, const char *k, const char *v) {
        if (v)
                json_object_object_add(o, k, json_object_new_string(v));
}

static json_object *strv_json(char * const *l) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; a && l && l[i]; i++)
                json_object_array_add(a, json_object_new_string(l[i]));
        return a;
}

/* One binding as the upload metadata lists it: its type, name and the
 * fields its kind sends. */
static json_object *binding_json(const Generation *g, const Binding *b, const BindingKindInfo *info,
                                 const CfBindingTarget *t) {
        json_object *x = json_object_new_object();

        if (!x)
                return NULL;
        add_str(x, "type", info->api_type);
        add_str(x, "name", b->name);
        if (b->kind == BINDING_JSON)
                json_object_object_add(x, "json", json_tokener_parse(b->json ?: "null"));
        for (size_t j = 0; j < BINDING_MAX_FIELDS && info->fields[j].api; j++) {
                const char *fv = binding_field_value(&info->fields[j], b, t->value, t->store);

                if (info->fields[j].canon == BINDING_CANON_TEXT)
                        fv = fv ?: "";
                /* An R2 reference without a jurisdiction takes its bucket's. */
                if (b->kind == BINDING_R2_BUCKET && streq(info->fields[j].api, "jurisdiction") && !fv) {
                        const R2Bucket *r2 = b->target ? generation_find_r2(g, b->target) : NULL;

                        fv = r2 ? r2->jurisdiction : NULL;
                }
                add_str(x, info->fields[j].api, fv);
        }
        return x;
}

static json_object *migration_step_json(const MigrationStep *m) {
        json_object *s = json_object_new_object(), *ren = json_object_new_array();

        if (!s || !ren) {
                json_object_put(s);
                json_object_put(ren);
                return NULL;
        }
        json_object_object_add(s, "new_classes", strv_json(m->new_classes));
        json_object_object_add(s, "new_sqlite_classes", strv_json(m->new_sqlite_classes));
        for (size_t i = 0; i < m->n_renamed_classes; i++) {
                json_object *r = json_object_new_object();

                add_str(r, "from", m->renamed_classes[i].from);
                add_str(r, "to", m->renamed_classes[i].to);
                json_object_array_add(ren, r);
        }
        json_object_object_add(s, "renamed_classes", ren);
        json_object_object_add(s, "deleted_classes", strv_json(m->deleted_classes));
        return s;
}

/* The one step creating classes at once, each sqlite or not as the
 * worker declares it (sqlite when it does not). */
static json_object *auto_step_json(const Worker *w, char * const *classes) {
        json_object *s = json_object_new_object(), *sq = json_object_new_array(), *kv = json_object_new_array();

        for (size_t i = 0; classes[i]; i++) {
                bool sqlite = true;

                for (size_t j = 0; j < w->n_do_classes; j++)
                        if (streq(w->do_classes[j].class_name, classes[i]))
                                sqlite = w->do_classes[j].sqlite;
                json_object_array_add(sqlite ? sq : kv, json_object_new_string(classes[i]));
        }
        json_object_object_add(s, "new_classes", kv);
        json_object_object_add(s, "new_sqlite_classes", sq);
        return s;
}

static json_object *migrations_json(const Worker *w, const CfMigration *mig) {
        json_object *o = json_object_new_object(), *steps = json_object_new_array();

        add_str(o, "old_tag", mig->old_tag);
        add_str(o, "new_tag", mig->new_tag);
        if (mig->auto_new_classes)
                json_object_array_add(steps, auto_step_json(w, mig->auto_new_classes));
        else {
                size_t start = 0;

                for (size_t i = 0; mig->old_tag && i < w->n_migrations; i++)
                        if (streq_ptr(w->migrations[i].tag, mig->old_tag))
                                start = i + 1;
                for (size_t i = start; i < w->n_migrations; i++)
                        json_object_array_add(steps, migration_step_json(&w->migrations[i]));
        }
        json_object_object_add(o, "steps", steps);
        return o;
}

static json_object *observability_json(const Worker *w) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "enabled", json_object_new_boolean(w->observability.enabled));
        if (w->observability.head_sampling_rate >= 0)
                json_object_object_add(o, "head_sampling_rate",
                                       json_object_new_double(w->observability.head_sampling_rate));
        if (w->observability.logs_set) {
                json_object *l = json_object_new_object();

                json_object_object_add(l, "enabled", json_object_new_boolean(w->observability.logs_enabled));
                json_object_object_add(l, "invocation_logs",
                                       json_object_new_boolean(w->observability.logs_invocation_logs));
                json_object_object_add(o, "logs", l);
        }
        return o;
}

json_object *cfreq_worker_metadata(const Generation *g, const Worker *w, const CfBindingTarget *targets,
                                   const CfMigration *mig, char **reterr) {
        _cleanup_(json_object_putp) json_object *m = json_object_new_object();
        json_object *bindings = json_object_new_array(), *keep;

        assert(reterr);
        *reterr = NULL;
        if (!m || !bindings) {
                json_object_put(bindings);
                return NULL;
        }
        add_str(m, "main_module", w->main_module ?: (w->n_modules > 0 ? w->modules[0].name : NULL));
        json_object_object_add(m, "bindings", bindings);
        for (size_t i = 0; i < w->n_bindings; i++) {
                const Binding *b = &w->bindings[i];
                const BindingKindInfo *info = binding_kind_info(b->kind);
                json_object *x;

                if (!info || b->kind == BINDING_SECRET)
                        continue;
                if (info->target >= 0 && !targets[i].value) {
                        if (asprintf(reterr, "binding %s: its %s is not available", b->name,
                                     b->target ? b->target : "target") < 0)
                                *reterr = NULL;
                        return NULL;
                }
                x = binding_json(g, b, info, &targets[i]);
                if (!x)
                        return NULL;
                json_object_array_add(bindings, x);
        }
        add_str(m, "compatibility_date", w->compatibility_date);
        json_object_object_add(m, "compatibility_flags", strv_json(w->compatibility_flags));
        keep = json_object_new_array();
        if (!keep)
                return NULL;
        json_object_array_add(keep, json_object_new_string("secret_text"));
        json_object_array_add(keep, json_object_new_string("secret_key"));
        json_object_object_add(m, "keep_bindings", keep);
        json_object_object_add(m, "tags", strv_json(w->tags));   /* [] clears tags set elsewhere */
        json_object_object_add(m, "logpush", json_object_new_boolean(w->logpush));
        if (w->observability.set)
                json_object_object_add(m, "observability", observability_json(w));
        if (mig && mig->new_tag)
                json_object_object_add(m, "migrations", migrations_json(w, mig));
        return TAKE_PTR(m);
}

int cfreq_metadata_inherit(json_object *meta, char * const *names) {
        json_object *bs = json_object_object_get(meta, "bindings");

        assert(json_object_is_type(bs, json_type_array));  /* made by cfreq_worker_metadata */
        for (size_t i = 0; names && names[i]; i++) {
                json_object *x = json_object_new_object();

                if (!x)
                        return -ENOMEM;
                json_object_object_add(x, "name", json_object_new_string(names[i]));
                json_object_object_add(x, "type", json_object_new_string("inherit"));
                json_object_array_add(bs, x);
        }
        return 0;
}

/* Queue settings as Cloudflare takes them (create and update). */
static json_object *queue_settings(const Queue *q) {
        json_object *s = json_object_new_object();

        if (q->delivery_delay >= 0)
                json_object_object_add(s, "delivery_delay", json_object_new_int64(q->delivery_delay));
        if (q->message_retention_period >= 0)
                json_object_object_add(s, "message_retention_period",
                                       json_object_new_int64(q->message_retention_period));
        return s;
}

int cfreq_create_body(ResourceKind k, const char *name, const void *desired, json_object **ret) {
        _cleanup_(json_object_putp) json_object *body = NULL;

        assert(ret);
        if (k != RESOURCE_KV_NAMESPACE && k != RESOURCE_R2_BUCKET && k != RESOURCE_D1_DATABASE &&
            k != RESOURCE_QUEUE && k != RESOURCE_SECRETS_STORE)
                return -EOPNOTSUPP;
        body = json_object_new_object();
        if (!body)
                return -ENOMEM;
        add_str(body, k == RESOURCE_KV_NAMESPACE ? "title" : k == RESOURCE_QUEUE ? "queue_name" : "name", name);
        if (k == RESOURCE_R2_BUCKET) {
                const R2Bucket *b = desired;

                add_str(body, "locationHint", b->location_hint);
                add_str(body, "storageClass", b->storage_class);
        } else if (k == RESOURCE_D1_DATABASE) {
                const D1Database *d = desired;

                add_str(body, "primary_location_hint", d->location_hint);
                add_str(body, "jurisdiction", d->jurisdiction);
        } else if (k == RESOURCE_QUEUE) {
                const Queue *q = desired;

                if (q->delivery_delay >= 0 || q->message_retention_period >= 0)
                        json_object_object_add(body, "settings", queue_settings(q));
        }
        *ret = TAKE_PTR(body);
        return 0;
}

int cfreq_update_body(ResourceKind k, const char *name, const void *desired, json_object **ret) {
        json_object *body;

        assert(ret);
        if (k != RESOURCE_KV_NAMESPACE && k != RESOURCE_QUEUE)
                return -EOPNOTSUPP;
        body = json_object_new_object();
        if (!body)
                return -ENOMEM;
        if (k == RESOURCE_KV_NAMESPACE)
                add_str(body, "title", name);
        else
                json_object_object_add(body, "settings", queue_settings(desired));
        *ret = body;
        return 0;
}

int cfreq_r2_jurisdiction_header(const char *jurisdiction, char **ret) {
        assert(ret);
        *ret = NULL;
        if (jurisdiction && asprintf(ret, "cf-r2-jurisdiction: %s", jurisdiction) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

json_object *cfreq_store_secret_body(const SecretsStoreSecret *s, const char *name) {
        json_object *body = json_object_new_object(), *scopes;

        if (!body)
                return NULL;
        add_str(body, "name", name);
        if (s->scopes)
                scopes = strv_json(s->scopes);
        else {
                scopes = json_object_new_array();
                json_object_array_add(scopes, json_object_new_string("workers"));
        }
        json_object_object_add(body, "scopes", scopes);
        add_str(body, "comment", s->comment);
        return body;
}

json_object *cfreq_worker_secret_body(const char *name) {
        json_object *body = json_object_new_object();

        add_str(body, "name", name);
        add_str(body, "type", "secret_text");
        return body;
}

json_object *cfreq_schedules_body(char * const *crons, char * const *kept) {
        json_object *body = json_object_new_array();
        char * const *lists[] = { crons, kept };

        for (size_t l = 0; body && l < ELEMENTSOF(lists); l++)
                for (size_t i = 0; lists[l] && lists[l][i]; i++) {
                        json_object *c = json_object_new_object();

                        add_str(c, "cron", lists[l][i]);
                        json_object_array_add(body, c);
                }
        return body;
}

json_object *cfreq_subdomain_body(bool enabled) {
        json_object *body = json_object_new_object();

        json_object_object_add(body, "enabled", json_object_new_boolean(enabled));
        return body;
}

json_object *cfreq_consumer_body(const char *script, const QueueConsumer *qc) {
        json_object *body = json_object_new_object(), *s = json_object_new_object();
        const struct {
                const char *key;
                int64_t value;
        } settings[] = {
                { "batch_size", qc->batch_size },
                { "max_retries", qc->max_retries },
                { "max_wait_time_ms", qc->max_wait_time_ms },
                { "max_concurrency", qc->max_concurrency },
                { "retry_delay", qc->retry_delay },
        };

        add_str(body, "type", "worker");
        add_str(body, "script_name", script);
        add_str(body, "dead_letter_queue", qc->dead_letter_queue);
        for (size_t i = 0; i < ELEMENTSOF(settings); i++)
                if (settings[i].value >= 0)
                        json_object_object_add(s, settings[i].key, json_object_new_int64(settings[i].value));
        json_object_object_add(body, "settings", s);
        return body;
}

/* Writes s as a JSON string literal at p; returns the end. p must have
 * room for 6 * strlen(s) + 2 bytes. */
static char *json_quote_at(char *p, const char *s) {
        static const char hex[] = "0123456789abcdef";

        *p++ = '"';
        for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
                if (*c == '"' || *c == '\\') {
                        *p++ = '\\';
                        *p++ = (char) *c;
                } else if (*c < 0x20) {
                        memcpy(p, "\\u00", 4);
                        p += 4;
                        *p++ = hex[*c >> 4];
                        *p++ = hex[*c & 15];
                } else
                        *p++ = (char) *c;
        }
        *p++ = '"';
        return p;
}

int cfreq_secret_json(json_object *rest, const char *key, const char *value, bool array, char **ret,
                      size_t *ret_size, size_t *ret_cap) {
        const char *others = rest ? json_object_to_json_string_ext(rest, JSON_C_TO_STRING_PLAIN |
                                                                                 JSON_C_TO_STRING_NOSLASHESCAPE)
                                  : NULL;
        size_t cap = 6 * strlen(key) + 6 * strlen(value) + (others ? strlen(others) : 0) + 16;
        char *buf = secret_malloc(cap), *p;  /* holds the value: MADV_DONTDUMP */

        assert(ret && ret_size && ret_cap);
        if (!buf)
                return -ENOMEM;
        p = buf;
        if (array)
                *p++ = '[';
        *p++ = '{';
        p = json_quote_at(p, key);
        *p++ = ':';
        p = json_quote_at(p, value);
        if (others && strlen(others) > 2) {
                *p++ = ',';
                memcpy(p, others + 1, strlen(others) - 1);  /* the members after '{', and the '}' */
                p += strlen(others) - 1;
        } else
                *p++ = '}';
        if (array)
                *p++ = ']';
        *ret = buf;
        *ret_size = (size_t) (p - buf);
        *ret_cap = cap;
        return 0;
}

/* ---- answers ---- */

/* A create answered with an array (Secrets Store): its first object. */
static json_object *first_object(json_object *result) {
        if (result && json_object_is_type(result, json_type_array))
                return json_object_array_get_idx(result, 0);
        return result;
}

const char *cfreq_created_id(ResourceKind k, const char *name, json_object *result) {
        switch (k) {
        case RESOURCE_KV_NAMESPACE: return json_get_str(result, "id");
        case RESOURCE_R2_BUCKET: return name;
        case RESOURCE_D1_DATABASE: return json_get_str(result, "uuid") ?: json_get_str(result, "id");
        case RESOURCE_QUEUE: return json_get_str(result, "queue_id") ?: json_get_str(result, "id");
        case RESOURCE_SECRETS_STORE:
        case RESOURCE_SECRETS_STORE_SECRET: return json_get_str(first_object(result), "id");
        default: return NULL;
        }
}

const char *cfreq_created_store_id(json_object *result) {
        return json_get_str(first_object(result), "store_id");
}

const char *cfreq_name_key(ResourceKind k) {
        return k == RESOURCE_KV_NAMESPACE ? "title" : k == RESOURCE_QUEUE ? "queue_name" : "name";
}

json_object *cfreq_find_listed(ResourceKind k, json_object *items, const char *name) {
        const char *key = cfreq_name_key(k);
        json_object *found = NULL;

        if (!items || !json_object_is_type(items, json_type_array))
                return NULL;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *x = json_object_array_get_idx(items, i);

                if (streq_ptr(json_get_str(x, key), name))
                        found = x;
        }
        return found;
}

void cfreq_upload_answer(json_object *result, CfUploadAnswer *ret) {
        assert(ret);
        *ret = (CfUploadAnswer) {
                .etag = json_get_str(result, "etag"),
                .modified_on = json_get_str(result, "modified_on"),
                .migration_tag = json_get_str(result, "migration_tag"),
        };
}
