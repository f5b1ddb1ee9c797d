/* sim-workers.c: Workers scripts, versions, deployments, secrets,
 * settings, schedules, workers.dev subdomains and Durable Object
 * namespaces (cloudflare-api.md §2, §3, §4.6).
 *
 * A script in the state tree:
 *   { "info": {the list entry}, "subdomain": {...}, "schedules": [...],
 *     "versions": [oldest..newest], "deployments": [oldest..newest] }
 * A version holds its modules, bindings (secret values as "sha256:<hex>")
 * and the versioned settings. "info" mirrors the live version. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sim-http.h"
#include "sim-json.h"
#include "sim-multipart.h"
#include "util.h"

#define DEFAULT_COMPAT_DATE "2021-11-02"

/* ---- state helpers ---------------------------------------------------- */

static json_object *get(json_object *o, const char *key) {
        json_object *v = NULL;

        if (o)
                (void) json_object_object_get_ex(o, key, &v);
        return v;
}

static json_object *script_get(Sim *sim, const char *name) {
        return get(sim_coll(sim, "scripts"), name);
}

static json_object *script_info(json_object *script) {
        return get(script, "info");
}

static json_object *version_latest(json_object *script) {
        json_object *vs = get(script, "versions");
        size_t n = vs ? json_object_array_length(vs) : 0;

        return n ? json_object_array_get_idx(vs, n - 1) : NULL;
}

static json_object *version_find(json_object *script, const char *id) {
        json_object *vs = get(script, "versions");
        size_t n = vs ? json_object_array_length(vs) : 0;

        for (size_t i = 0; i < n; i++) {
                json_object *v = json_object_array_get_idx(vs, i);

                if (streq_ptr(sim_json_str(v, "id"), id))
                        return v;
        }
        return NULL;
}

json_object *sim_script_live_version(json_object *script) {
        json_object *deps = get(script, "deployments"), *d, *vers, *best = NULL;
        double best_pct = -1;

        if (!deps || json_object_array_length(deps) == 0)
                return NULL;
        d = json_object_array_get_idx(deps, json_object_array_length(deps) - 1);
        vers = get(d, "versions");
        for (size_t i = 0; vers && i < json_object_array_length(vers); i++) {
                json_object *v = json_object_array_get_idx(vers, i);
                double pct = json_object_get_double(get(v, "percentage"));

                if (pct > best_pct) {
                        best_pct = pct;
                        best = v;
                }
        }
        return best ? version_find(script, sim_json_str(best, "version_id")) : NULL;
}

static bool is_secret_type(const char *t) {
        return t && (streq(t, "secret_text") || streq(t, "secret_key"));
}

/* A binding as the API shows it: no secret material; d1 with both ids. */
static json_object *binding_out(json_object *b) {
        const char *type = sim_json_str(b, "type");
        json_object *o = sim_copy(b);

        if (is_secret_type(type)) {
                json_object_object_del(o, "text");
                json_object_object_del(o, "key_base64");
                json_object_object_del(o, "key_jwk");
        }
        return o;
}

static json_object *bindings_out(json_object *bindings) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; bindings && i < json_object_array_length(bindings); i++)
                json_object_array_add(a, binding_out(json_object_array_get_idx(bindings, i)));
        return a;
}

static json_object *secret_out(json_object *b) {
        json_object *o = json_object_new_object();

        sim_set_str(o, "name", sim_json_str(b, "name"));
        sim_set_str(o, "type", sim_json_str(b, "type"));
        if (streq_ptr(sim_json_str(b, "type"), "secret_key")) {
                json_object_object_add(o, "algorithm", sim_copy(get(b, "algorithm")));
                json_object_object_add(o, "format", sim_copy(get(b, "format")));
                json_object_object_add(o, "usages", sim_copy(get(b, "usages")));
        }
        return o;
}

static json_object *binding_find(json_object *bindings, const char *name) {
        for (size_t i = 0; bindings && i < json_object_array_length(bindings); i++) {
                json_object *b = json_object_array_get_idx(bindings, i);

                if (streq_ptr(sim_json_str(b, "name"), name))
                        return b;
        }
        return NULL;
}

/* Guesses handlers from the main module: "fetch(", "scheduled(", ... */
static json_object *handlers_guess(const char *code) {
        static const char *const names[] = { "fetch", "scheduled", "queue", "email", "tail", "trace", "alarm" };
        json_object *a = json_object_new_array();

        for (size_t i = 0; code && i < ELEMENTSOF(names); i++) {
                const char *p = code;
                size_t n = strlen(names[i]);

                while ((p = strstr(p, names[i]))) {
                        const char *q = p + n;

                        while (*q == ' ' || *q == '\t')
                                q++;
                        if ((*q == '(' || *q == ':') && (p == code || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z')))) {
                                json_object_array_add(a, json_object_new_string(names[i]));
                                break;
                        }
                        p += n;
                }
        }
        return a;
}

static const char *main_module_content(json_object *version, const char **ret_type, size_t *ret_size) {
        const char *main = sim_json_str(version, "main_module");
        json_object *mods = get(version, "modules");

        if (!main)
                main = sim_json_str(version, "body_part");
        for (size_t i = 0; mods && i < json_object_array_length(mods); i++) {
                json_object *m = json_object_array_get_idx(mods, i);

                if (streq_ptr(sim_json_str(m, "name"), main)) {
                        json_object *c = get(m, "content");

                        if (ret_type)
                                *ret_type = sim_json_str(m, "content_type");
                        if (ret_size)
                                *ret_size = c ? (size_t) json_object_get_string_len(c) : 0;
                        return c ? json_object_get_string(c) : "";
                }
        }
        return NULL;
}

/* Copies the versioned fields of the live version into the list entry. */
static void info_sync(json_object *script, json_object *version, const char *now) {
        json_object *info = script_info(script);
        static const char *const keys[] = { "etag", "compatibility_date", "compatibility_flags", "usage_model",
                                            "placement", "handlers" };

        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                json_object_object_add(info, keys[i], sim_copy(get(version, keys[i])));
        sim_set_bool(info, "has_modules", sim_json_str(version, "main_module") != NULL);
        if (now)
                sim_set_str(info, "modified_on", now);
}

static json_object *deployment_new(const char *version_id, double pct, const char *triggered_by,
                                   const char *source, const char *now) {
        json_object *d = json_object_new_object(), *vs = json_object_new_array(), *v = json_object_new_object(), *a;
        char id[37];

        sim_random_uuid(id);
        sim_set_str(d, "id", id);
        sim_set_str(d, "created_on", now);
        sim_set_str(d, "source", source);
        sim_set_str(d, "strategy", "percentage");
        sim_set_str(v, "version_id", version_id);
        json_object_object_add(v, "percentage", json_object_new_double(pct));
        json_object_array_add(vs, v);
        json_object_object_add(d, "versions", vs);
        a = json_object_new_object();
        sim_set_str(a, "workers/triggered_by", triggered_by);
        json_object_object_add(d, "annotations", a);
        sim_set_str(d, "author_email", "cfsim@example.com");
        return d;
}

static void deployments_push(json_object *script, json_object *dep) {
        json_object *deps = get(script, "deployments");

        /* Stored oldest first; shown newest first. */
        json_object_array_add(deps, dep);
        if (json_object_array_length(deps) > SIM_VERSIONS_MAX)
                (void) json_object_array_del_idx(deps, 0, json_object_array_length(deps) - SIM_VERSIONS_MAX);
}

/* Deploys version at 100%: a new deployment; the list entry follows.
 * modified_on moves only for an upload (confirmed, change-detection §1
 * X1); whether a settings or secret change moves it is unconfirmed, so
 * cfsim does not (the choice that does not flatter a client relying on
 * it, README "modified_on"). */
static void script_deploy(json_object *script, json_object *version, const char *triggered_by, const char *now) {
        deployments_push(script, deployment_new(sim_json_str(version, "id"), 100, triggered_by,
                                                sim_json_str(version, "source"), now));
        info_sync(script, version, streq(triggered_by, "upload") ? now : NULL);
}

static void versions_push(json_object *script, json_object *version) {
        json_object *vs = get(script, "versions");

        json_object_array_add(vs, version);
        /* Never drop a version a deployment still names: keep the cap
         * loose by dropping only the oldest beyond it. */
        if (json_object_array_length(vs) > SIM_VERSIONS_MAX)
                (void) json_object_array_del_idx(vs, 0, json_object_array_length(vs) - SIM_VERSIONS_MAX);
}

/* A new version based on base (may be NULL): modules are shared, the
 * rest copied; gets a fresh id, number and time. */
static json_object *version_new(json_object *script, json_object *base, const char *triggered_by,
                                const char *source, const char *now) {
        json_object *v = json_object_new_object(), *latest = version_latest(script), *a;
        char id[37];
        int64_t number = latest ? json_object_get_int64(get(latest, "number")) + 1 : 1;

        if (base) {
                json_object_object_foreach(base, key, val) {
                        if (streq(key, "modules"))
                                json_object_object_add(v, key, json_object_get(val));
                        else
                                json_object_object_add(v, key, sim_copy(val));
                }
        }
        sim_random_uuid(id);
        sim_set_str(v, "id", id);
        sim_set_int(v, "number", number);
        sim_set_str(v, "created_on", now);
        sim_set_str(v, "source", source);
        sim_set_str(v, "triggered_by", triggered_by);
        a = json_object_new_object();
        sim_set_str(a, "workers/triggered_by", triggered_by);
        json_object_object_add(v, "annotations", a);
        return v;
}

static json_object *version_out(json_object *script, json_object *v, bool full) {
        json_object *o = json_object_new_object(), *m = json_object_new_object();

        sim_set_str(o, "id", sim_json_str(v, "id"));
        sim_set_int(o, "number", json_object_get_int64(get(v, "number")));
        sim_set_str(m, "created_on", sim_json_str(v, "created_on"));
        sim_set_str(m, "modified_on", sim_json_str(v, "created_on"));
        sim_set_str(m, "source", sim_json_str(v, "source"));
        sim_set_str(m, "author_email", "cfsim@example.com");
        sim_set_bool(m, "hasPreview", false);
        json_object_object_add(o, "metadata", m);
        json_object_object_add(o, "annotations", sim_copy(get(v, "annotations")));
        if (full) {
                json_object *res = json_object_new_object(), *s = json_object_new_object(),
                            *rt = json_object_new_object();

                json_object_object_add(res, "bindings", bindings_out(get(v, "bindings")));
                sim_set_str(s, "etag", sim_json_str(v, "etag"));
                json_object_object_add(s, "handlers", sim_copy(get(v, "handlers")));
                sim_set_str(s, "last_deployed_from", sim_json_str(script_info(script), "last_deployed_from"));
                json_object_object_add(res, "script", s);
                json_object_object_add(rt, "compatibility_date", sim_copy(get(v, "compatibility_date")));
                json_object_object_add(rt, "compatibility_flags", sim_copy(get(v, "compatibility_flags")));
                json_object_object_add(rt, "usage_model", sim_copy(get(v, "usage_model")));
                json_object_object_add(rt, "limits", sim_copy(get(v, "limits")));
                json_object_object_add(res, "script_runtime", rt);
                json_object_object_add(o, "resources", res);
        }
        return o;
}

static const char *source_of(const SimRequest *req) {
        const char *ua = sim_header(req, "User-Agent");

        return ua && strcasestr(ua, "wrangler") ? "wrangler" : "api";
}

/* ---- upload decoding ---------------------------------------------------- */

typedef struct Upload {
        json_object *metadata;  /* owned */
        json_object *modules;   /* owned array of {name, filename?, content_type, content} */
        char *main;             /* resolved main module / body part name */
        bool is_module;         /* main_module (ESM) vs body_part */
        char etag[65];
} Upload;

static void upload_done(Upload *u) {
        json_object_put(u->metadata);
        json_object_put(u->modules);
        free(u->main);
}

static bool looks_like_form(const char *body, size_t size) {
        return size > 2 && body[0] == '-' && body[1] == '-' && memmem(body, size, "form-data", 9);
}

/* A bare script body: the service-worker format (or garbage). */
static int upload_decode_script(const SimRequest *req, SimReply *rep, Upload *u) {
        json_object *m;

        if (looks_like_form(req->body, req->body_size) || req->body_size == 0) {
                reply_error(rep, 400, 10021, "Expected a multipart/form-data upload with a metadata part");
                return -EINVAL;
        }
        m = json_object_new_object();
        sim_set_str(m, "name", "worker.js");
        sim_set_str(m, "content_type", "application/javascript");
        json_object_object_add(m, "content", json_object_new_string_len(req->body, (int) req->body_size));
        json_object_array_add(u->modules, m);
        u->metadata = json_object_new_object();
        sim_set_str(u->metadata, "body_part", "worker.js");
        u->main = strdup("worker.js");
        sha256_hex(req->body, req->body_size, u->etag);
        return 0;
}

/* The module parts (every part but meta) into u->modules; *hashbuf gets
 * each one's name and content, what the etag is the SHA-256 of. */
static int upload_modules(const SimForm *form, const SimFormPart *meta, Upload *u, char **hashbuf,
                          size_t *hashlen) {
        for (size_t i = 0; i < form->n_parts; i++) {
                const SimFormPart *p = &form->parts[i];
                json_object *m;
                const char *name;
                size_t need;
                char *nb;

                if (p == meta)
                        continue;
                /* SDK 6 names every module part "files" and puts the
                 * module name in the filename. */
                name = streq(p->name, "files") && p->filename ? p->filename : p->name;
                m = json_object_new_object();
                sim_set_str(m, "name", name);
                if (p->filename)
                        sim_set_str(m, "filename", p->filename);
                sim_set_str(m, "content_type", p->content_type ? p->content_type : "application/octet-stream");
                json_object_object_add(m, "content", json_object_new_string_len(p->data, (int) p->size));
                json_object_array_add(u->modules, m);
                need = *hashlen + strlen(name) + 1 + p->size + 1;
                nb = realloc(*hashbuf, need);
                if (!nb)
                        return -ENOMEM;
                *hashbuf = nb;
                memcpy(nb + *hashlen, name, strlen(name) + 1);
                *hashlen += strlen(name) + 1;
                memcpy(nb + *hashlen, p->data, p->size);
                *hashlen += p->size;
                nb[(*hashlen)++] = 0;
        }
        return 0;
}

/* The main module's name: from the metadata (main_module for ES
 * modules, body_part for a service worker), or for PUT /content from a
 * header; it must name a module part, by part name or filename. */
static const char *upload_main(const SimRequest *req, SimReply *rep, Upload *u, bool content_only) {
        const char *main = sim_json_str(u->metadata, "main_module");
        size_t n = json_object_array_length(u->modules);

        u->is_module = main != NULL;
        if (!main)
                main = sim_json_str(u->metadata, "body_part");
        if (!main && content_only) {
                main = sim_header(req, "CF-WORKER-MAIN-MODULE-PART");
                u->is_module = main != NULL;
                if (!main)
                        main = sim_header(req, "CF-WORKER-BODY-PART");
        }
        if (!main) {
                reply_error(rep, 400, 10021, "metadata needs main_module (ES modules) or body_part (service worker)");
                return NULL;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *m = json_object_array_get_idx(u->modules, i);

                if (streq_ptr(sim_json_str(m, "name"), main))
                        return main;
                if (streq_ptr(sim_json_str(m, "filename"), main)) {
                        sim_set_str(m, "name", main);
                        return main;
                }
        }
        reply_error(rep, 400, 10021, "Uncaught Error: No such module \"%s\".", main);
        return NULL;
}

/* Decodes an upload body: multipart with a metadata part (plain field or
 * file part) and module parts (matched by part name or filename), or a
 * bare service-worker script. content_only: the PUT /content form may
 * carry the main module in a header instead of metadata. */
static int upload_decode(const SimRequest *req, SimReply *rep, Upload *u, bool content_only) {
        _cleanup_(sim_form_done) SimForm form = {};
        const SimFormPart *meta;
        const char *main;
        _cleanup_free_ char *hashbuf = NULL;
        size_t hashlen = 0;
        int r;

        *u = (Upload) {};
        u->modules = json_object_new_array();
        if (strncasecmp(req->content_type, "multipart/form-data", 19) != 0)
                return upload_decode_script(req, rep, u);
        r = sim_form_parse(req->content_type, req->body, req->body_size, &form);
        if (r < 0) {
                reply_error(rep, 400, 10021, "Malformed multipart/form-data body: %s", strerror(-r));
                return r;
        }
        meta = sim_form_find(&form, "metadata", false);
        if (meta) {
                r = sim_json_parse(meta->data, meta->size, &u->metadata);
                if (r < 0 || !json_object_is_type(u->metadata, json_type_object)) {
                        reply_error(rep, 400, 10021, "The metadata part is not a JSON object");
                        return -EINVAL;
                }
        } else if (!content_only) {
                reply_error(rep, 400, 10021, "Missing the metadata part");
                return -EINVAL;
        } else
                u->metadata = json_object_new_object();
        r = upload_modules(&form, meta, u, &hashbuf, &hashlen);
        if (r < 0)
                return r;
        main = upload_main(req, rep, u, content_only);
        if (!main)
                return -EINVAL;
        u->main = strdup(main);
        if (!u->main)
                return -ENOMEM;
        sha256_hex(hashbuf ? hashbuf : "", hashlen, u->etag);
        return 0;
}

/* ---- bindings ----------------------------------------------------------- */

static const struct {
        const char *type;
        const char *required[2];
} binding_rules[] = {
        { "plain_text", { "text" } },
        { "json", { "json" } },
        { "kv_namespace", { "namespace_id" } },
        { "r2_bucket", { "bucket_name" } },
        { "queue", { "queue_name" } },
        { "service", { "service" } },
        { "durable_object_namespace", { "class_name" } },
        { "secrets_store_secret", { "store_id", "secret_name" } },
        { "analytics_engine", { "dataset" } },
        { "hyperdrive", { "id" } },
        { "vectorize", { "index_name" } },
        { "workflow", { "workflow_name" } },
        { "mtls_certificate", { "certificate_id" } },
        { "dispatch_namespace", { "namespace" } },
        { "wasm_module", { "part" } },
        { "text_blob", { "part" } },
        { "data_blob", { "part" } },
};

/* True if b lacks the value fields its type requires. */
static bool binding_incomplete(json_object *b, const char *type) {
        if (streq(type, "secret_text"))
                return !get(b, "text");
        if (streq(type, "secret_key"))
                return !get(b, "key_base64") && !get(b, "key_jwk");
        if (streq(type, "d1"))
                return !sim_json_str(b, "database_id") && !sim_json_str(b, "id");
        for (size_t k = 0; k < ELEMENTSOF(binding_rules); k++) {
                if (!streq(binding_rules[k].type, type))
                        continue;
                for (size_t f = 0; f < 2 && binding_rules[k].required[f]; f++)
                        if (!get(b, binding_rules[k].required[f]))
                                return true;
        }
        return false;
}

static const char *binding_needs(const char *type) {
        if (streq(type, "secret_text"))
                return "text";
        if (streq(type, "secret_key"))
                return "key_base64 or key_jwk";
        if (streq(type, "d1"))
                return "database_id";
        for (size_t k = 0; k < ELEMENTSOF(binding_rules); k++)
                if (streq(binding_rules[k].type, type))
                        return binding_rules[k].required[1] ? "store_id and secret_name" : binding_rules[k].required[0];
        return "its fields";
}

static void add_error(json_object *errors, int code, const char *fmt, ...) _printf_(3, 4);
static void add_error(json_object *errors, int code, const char *fmt, ...) {
        json_object *e = json_object_new_object();
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        sim_set_int(e, "code", code);
        sim_set_str(e, "message", msg);
        json_object_array_add(errors, e);
}

static bool type_in(json_object *types, const char *type) {
        for (size_t i = 0; types && i < json_object_array_length(types); i++)
                if (streq_ptr(json_object_get_string(json_object_array_get_idx(types, i)), type))
                        return true;
        return false;
}

static json_object *do_find(Sim *sim, const char *script, const char *cls, const char **ret_id);

static bool is_hex32(const char *s) {
        size_t n = 0;

        for (; s && s[n]; n++)
                if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f') || (s[n] >= 'A' && s[n] <= 'F')))
                        return false;
        return n == 32;
}

/* Every binding's target must exist and be past its propagation delay,
 * as Cloudflare refuses an upload or settings PATCH otherwise (codes as
 * Alchemy captured them from the live API, alchemy-run/alchemy PR #753;
 * the service code as users quote it, see README). self is the script
 * being written: a service binding to itself is fine, and a Durable
 * Object class of its own must exist once its migrations ran. Adds one
 * error per binding to errors. */
/* Each binding type that names a resource checks it exists (and is not
 * still propagating), adding Cloudflare's error when not. self is the
 * script being uploaded. */
typedef void (*ref_check_fn)(Sim *sim, const char *self, json_object *b, const char *name, json_object *errors);

static void ref_kv(Sim *sim, const char *self, json_object *b, const char *name, json_object *errors) {
        const char *id = sim_json_str(b, "namespace_id");

        (void) self;
        if (!is_hex32(id))
                add_error(errors, 10042,
                          "KV namespace '%s' is not valid. Please verify the namespace_id in your configuration. [binding '%s']",
                          strna(id), name);
        else if (!get(sim_coll(sim, "kv"), id) || sim_propagating(sim, "kv", id))
                add_error(errors, 10041, "KV namespace '%s' not found. [binding '%s']", id, name);
}

static void ref_r2(Sim *sim, const char *self, json_object *b, const char *name, json_object *errors) {
        const char *bucket = sim_json_str(b, "bucket_name"), *j = sim_json_str(b, "jurisdiction");
        char key[600];

        (void) self;
        snprintf(key, sizeof(key), "%s/%s", j && *j ? j : "default", strna(bucket));
        if (!bucket || !get(sim_coll(sim, "r2"), key) || sim_propagating(sim, "r2", key))
                add_error(errors, 10085, "R2 bucket '%s' could not be found%s%s. [binding '%s']",
                          strna(bucket), j && *j ? " in jurisdiction " : "", j && *j ? j : "", name);
}

static void ref_d1(Sim *sim, const char *self, json_object *b, const char *name, json_object *errors) {
        const char *id = sim_json_str(b, "database_id");

        (void) self;
        if (!id || !get(sim_coll(sim, "d1"), id) || sim_propagating(sim, "d1", id))
                add_error(errors, 10181, "D1 database '%s' could not be found. [binding '%s']", strna(id), name);
}

static void ref_queue(Sim *sim, const char *self, json_object *b, const char *name, json_object *errors) {
        const char *q = sim_json_str(b, "queue_name");
        bool found = false;

        (void) self;
        SIM_FOREACH_VAL(sim_coll(sim, "queues"), qo)
                if (streq_ptr(sim_json_str(qo, "queue_name"), q))
                        found = true;
        if (!found || sim_propagating(sim, "queue", strna(q)))
                add_error(errors, 11000, "Queue '%s' does not exist. [binding '%s']", strna(q), name);
}

static void ref_service(Sim *sim, const char *self, json_object *b, const char *name, json_object *errors) {
        const char *target = sim_json_str(b, "service");

        if (!target || (!streq_ptr(target, self) && !get(sim_coll(sim, "scripts"), target)))
                add_error(errors, 10143,
                          "Could not resolve service binding '%s'. Target script '%s' not found. Please verify the target script and try again.",
                          name, strna(target));
}

static void ref_durable_object(Sim *sim, const char *self, json_object *b, const char *name, json_object *errors) {
        const char *cls = sim_json_str(b, "class_name"), *owner = sim_json_str(b, "script_name");

        if (!owner || streq_ptr(owner, self)) {
                if (!do_find(sim, self, cls, NULL))
                        add_error(errors, 10061,
                                  "Cannot create binding for class '%s' because it is not currently configured to implement Durable Objects. Did you forget to add a migration? [binding '%s']",
                                  strna(cls), name);
        } else if (!get(sim_coll(sim, "scripts"), owner))
                add_error(errors, 10061,
                          "Cannot create binding for class '%s' of script '%s': the script does not exist. [binding '%s']",
                          strna(cls), owner, name);
        else if (!do_find(sim, owner, cls, NULL))
                add_error(errors, 10061,
                          "Cannot create binding for class '%s': script '%s' does not export it as a Durable Object. [binding '%s']",
                          strna(cls), owner, name);
}

static void ref_store_secret(Sim *sim, const char *self, json_object *b, const char *name, json_object *errors) {
        const char *store = sim_json_str(b, "store_id"), *sn = sim_json_str(b, "secret_name");
        json_object *st = get(sim_coll(sim, "stores"), store);
        bool found = false;
        char key[600];

        (void) self;
        if (st)
                SIM_FOREACH_VAL(get(st, "secrets"), se)
                        if (streq_ptr(sim_json_str(se, "name"), sn))
                                found = true;
        snprintf(key, sizeof(key), "%s/%s", strna(store), strna(sn));
        if (!found || sim_propagating(sim, "store_secret", key))
                add_error(errors, 10182, "Secrets Store secret '%s' in store '%s' could not be found. [binding '%s']",
                          strna(sn), strna(store), name);
}

static void ref_hyperdrive(Sim *sim, const char *self, json_object *b, const char *name, json_object *errors) {
        const char *id = sim_json_str(b, "id");

        (void) self;
        if (!id || !get(sim_coll(sim, "hyperdrive"), id))
                add_error(errors, 10157, "Hyperdrive config '%s' could not be found. [binding '%s']", strna(id), name);
}

static void ref_vectorize(Sim *sim, const char *self, json_object *b, const char *name, json_object *errors) {
        const char *idx = sim_json_str(b, "index_name");

        (void) self;
        if (!idx || !get(sim_coll(sim, "vectorize"), idx))
                add_error(errors, 10159, "Vectorize index '%s' could not be found. [binding '%s']", strna(idx), name);
}

static const struct {
        const char *type;
        ref_check_fn check;
} ref_checks[] = {
        { "kv_namespace", ref_kv },
        { "r2_bucket", ref_r2 },
        { "d1", ref_d1 },
        { "queue", ref_queue },
        { "service", ref_service },
        { "durable_object_namespace", ref_durable_object },
        { "secrets_store_secret", ref_store_secret },
        { "hyperdrive", ref_hyperdrive },
        { "vectorize", ref_vectorize },
};

static void bindings_check_refs(Sim *sim, const char *self, json_object *bindings, json_object *errors) {
        for (size_t i = 0; i < json_object_array_length(bindings); i++) {
                json_object *b = json_object_array_get_idx(bindings, i);
                const char *type = sim_json_str(b, "type"), *name = sim_json_str(b, "name");

                for (size_t k = 0; k < ELEMENTSOF(ref_checks); k++)
                        if (streq_ptr(type, ref_checks[k].type)) {
                                ref_checks[k].check(sim, self, b, name, errors);
                                break;
                        }
        }
}

/* Runs the reference check after the migrations of the same request ran
 * (so a class they create can be bound); on failure restores the Durable
 * Object namespaces from snapshot and replies. Takes snapshot. */
static int bindings_check_after(Sim *sim, const char *self, json_object *bindings, json_object *snapshot, SimReply *rep) {
        json_object *errors;

        if (!sim->check_bindings) {
                json_object_put(snapshot);
                return 0;
        }
        errors = json_object_new_array();
        bindings_check_refs(sim, self, bindings, errors);
        if (json_object_array_length(errors) == 0) {
                json_object_put(errors);
                json_object_put(snapshot);
                return 0;
        }
        json_object_object_add(sim->state, "do_namespaces", snapshot);
        reply_errors(rep, 400, errors);
        return -ENOENT;
}

/* Builds the new binding set from the request's bindings and the previous
 * version's: inherit entries copy the previous binding; secret values are
 * hashed; a secret without a value keeps the previous one; keep_types and
 * (when keep_secrets) secret bindings not named carry over. Returns a new
 * array, or NULL after replying with the error(s). */
/* An "inherit" binding: the binding of that name (or old_name) in the
 * previous version, or the version named; NULL when there is none (an
 * error only when strict). */
static json_object *binding_inherit(json_object *script, json_object *prev, json_object *b, const char *name,
                                    bool strict, json_object *errors) {
        const char *old = sim_json_str(b, "old_name"), *vid = sim_json_str(b, "version_id");
        json_object *src_v = prev, *src, *nb;

        if (vid && !streq(vid, "latest"))
                src_v = version_find(script, vid);
        src = binding_find(get(src_v, "bindings"), old ? old : name);
        if (!src) {
                if (strict)
                        add_error(errors, 10057,
                                  "Binding '%s' of type 'inherit' could not be resolved: the previous version has no binding named '%s'",
                                  name, old ? old : name);
                return NULL;
        }
        nb = sim_copy(src);
        sim_set_str(nb, "name", name);
        return nb;
}

/* A binding sent with its value left out keeps the previous value of that
 * name and type (wrangler's secret bulk PATCHes every binding this way). */
static json_object *binding_complete(json_object *prev_b, json_object *b, const char *name, const char *type,
                                     json_object *errors) {
        json_object *old = binding_find(prev_b, name), *nb;

        if (!old || !streq_ptr(sim_json_str(old, "type"), type)) {
                add_error(errors, 10021, "%s binding '%s' is incomplete (needs %s)", type, name,
                          binding_needs(type));
                return NULL;
        }
        nb = sim_copy(old);
        json_object_object_foreach(b, bk, bv)
                json_object_object_add(nb, bk, sim_copy(bv));
        return nb;
}

/* A binding as sent; secrets are kept only as tags of their values, a D1
 * binding gets both id spellings. */
static json_object *binding_new(json_object *b, const char *name, const char *type, json_object *errors) {
        json_object *nb = sim_copy(b);
        char tag[72];

        if (streq(type, "secret_text")) {
                const char *text = sim_json_str(b, "text");

                if (!text) {
                        add_error(errors, 10021, "secret_text binding '%s' needs text as a string", name);
                        json_object_put(nb);
                        return NULL;
                }
                sim_set_str(nb, "text", sim_sha256_tag(text, strlen(text), tag));
        } else if (streq(type, "secret_key")) {
                json_object *k64 = get(b, "key_base64"), *jwk = get(b, "key_jwk");
                const char *s = json_object_to_json_string_ext(k64 ? k64 : jwk, JSON_C_TO_STRING_PLAIN);

                sim_set_str(nb, k64 ? "key_base64" : "key_jwk", sim_sha256_tag(s, strlen(s), tag));
        } else if (streq(type, "d1")) {
                const char *id = sim_json_str(b, "database_id");

                if (!id)
                        id = sim_json_str(b, "id");
                sim_set_str(nb, "database_id", id);
                sim_set_str(nb, "id", id);
        }
        return nb;
}

static json_object *bindings_resolve(Sim *sim, json_object *script, json_object *prev, json_object *reqb,
                                     json_object *keep_types, bool strict, bool keep_secrets, SimReply *rep) {
        json_object *out = json_object_new_array(), *errors = json_object_new_array();
        json_object *prev_b = get(prev, "bindings");

        if (reqb && !json_object_is_type(reqb, json_type_array)) {
                add_error(errors, 10021, "bindings must be an array");
                goto fail;
        }
        if (keep_types && !json_object_is_type(keep_types, json_type_array)) {
                add_error(errors, 10021, "keep_bindings must be an array of binding types");
                goto fail;
        }
        for (size_t i = 0; reqb && i < json_object_array_length(reqb); i++) {
                json_object *b = json_object_array_get_idx(reqb, i), *nb;
                const char *name = sim_json_str(b, "name"), *type = sim_json_str(b, "type");

                if (!name || !*name || !type || !*type) {
                        add_error(errors, 10021, "binding %zu needs a name and a type", i);
                        continue;
                }
                if (strlen(name) > 256) {
                        add_error(errors, 10021, "binding name too long");
                        continue;
                }
                if (binding_find(out, name)) {
                        add_error(errors, 10021, "Duplicate binding name '%s'", name);
                        continue;
                }
                if (streq(type, "inherit"))
                        nb = binding_inherit(script, prev, b, name, strict, errors);
                else if (binding_incomplete(b, type))
                        nb = binding_complete(prev_b, b, name, type, errors);
                else
                        nb = binding_new(b, name, type, errors);
                if (nb)
                        json_object_array_add(out, nb);
        }
        if (json_object_array_length(errors) > 0)
                goto fail;

        /* The previous version's bindings of the kept types stay. */
        for (size_t i = 0; prev_b && i < json_object_array_length(prev_b); i++) {
                json_object *b = json_object_array_get_idx(prev_b, i);
                const char *type = sim_json_str(b, "type"), *name = sim_json_str(b, "name");

                if (binding_find(out, name))
                        continue;
                if (type_in(keep_types, type) || (keep_secrets && is_secret_type(type)))
                        json_object_array_add(out, sim_copy(b));
        }
        json_object_put(errors);
        return out;
fail:
        json_object_put(out);
        reply_errors(rep, 400, errors);
        return NULL;
}

/* Fills namespace_id of Durable Object bindings from the namespaces the
 * migrations created. */
static void bindings_fill_do(Sim *sim, const char *script_name, json_object *bindings) {
        json_object *nss = sim_coll(sim, "do_namespaces");

        for (size_t i = 0; i < json_object_array_length(bindings); i++) {
                json_object *b = json_object_array_get_idx(bindings, i);
                const char *cls = sim_json_str(b, "class_name"), *owner = sim_json_str(b, "script_name");

                if (!streq_ptr(sim_json_str(b, "type"), "durable_object_namespace") || !cls)
                        continue;
                if (!owner)
                        owner = script_name;
                json_object_object_foreach(nss, id, ns) {
                        if (streq_ptr(sim_json_str(ns, "script"), owner) && streq_ptr(sim_json_str(ns, "class"), cls)) {
                                sim_set_str(b, "namespace_id", id);
                                break;
                        }
                }
        }
}

/* ---- migrations ----------------------------------------------------------- */

static json_object *do_find(Sim *sim, const char *script, const char *cls, const char **ret_id) {
        json_object_object_foreach(sim_coll(sim, "do_namespaces"), id, ns)
                if (streq_ptr(sim_json_str(ns, "script"), script) && streq_ptr(sim_json_str(ns, "class"), cls)) {
                        if (ret_id)
                                *ret_id = id;
                        return ns;
                }
        return NULL;
}

static bool strv_json_ok(json_object *a) {
        for (size_t i = 0; a && i < json_object_array_length(a); i++)
                if (!json_object_is_type(json_object_array_get_idx(a, i), json_type_string))
                        return false;
        return true;
}

/* Validates (apply=false) or applies (apply=true) one migration step. */
/* new_classes and new_sqlite_classes: each class must not exist yet;
 * with apply, its namespace is created. */
static int migration_creates(Sim *sim, const char *script, json_object *step, bool apply, SimReply *rep) {
        static const char *const creates[] = { "new_classes", "new_sqlite_classes" };

        for (size_t k = 0; k < ELEMENTSOF(creates); k++) {
                json_object *a = get(step, creates[k]);

                if (a && (!json_object_is_type(a, json_type_array) || !strv_json_ok(a))) {
                        reply_error(rep, 400, 10021, "%s must be an array of class names", creates[k]);
                        return -EINVAL;
                }
                for (size_t i = 0; a && i < json_object_array_length(a); i++) {
                        const char *cls = json_object_get_string(json_object_array_get_idx(a, i));
                        json_object *ns;
                        char id[33], name[600];

                        if (do_find(sim, script, cls, NULL)) {
                                reply_error(rep, 400, 10074,
                                            "Cannot apply new-class migration to class '%s' that is already depended on by existing Durable Objects",
                                            cls);
                                return -EEXIST;
                        }
                        if (!apply)
                                continue;
                        ns = json_object_new_object();
                        sim_random_hex(id, 32);
                        snprintf(name, sizeof(name), "%s_%s", script, cls);
                        sim_set_str(ns, "id", id);
                        sim_set_str(ns, "name", name);
                        sim_set_str(ns, "class", cls);
                        sim_set_str(ns, "script", script);
                        sim_set_bool(ns, "use_sqlite", k == 1);
                        json_object_object_add(sim_coll(sim, "do_namespaces"), id, ns);
                }
        }
        return 0;
}

/* deleted_classes: each class must exist; with apply, its namespace goes. */
static int migration_deletes(Sim *sim, const char *script, json_object *step, bool apply, SimReply *rep) {
        json_object *a = get(step, "deleted_classes");

        if (a && (!json_object_is_type(a, json_type_array) || !strv_json_ok(a))) {
                reply_error(rep, 400, 10021, "deleted_classes must be an array of class names");
                return -EINVAL;
        }
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
                const char *cls = json_object_get_string(json_object_array_get_idx(a, i)), *id = NULL;

                if (!do_find(sim, script, cls, &id)) {
                        reply_error(rep, 400, 10021, "Cannot delete class '%s': no such Durable Object class", cls);
                        return -ENOENT;
                }
                if (apply)
                        json_object_object_del(sim_coll(sim, "do_namespaces"), id);
        }
        return 0;
}

/* renamed_classes ({from, to} in this script) and transferred_classes
 * ({from, from_script, to}): the class must exist where it comes from;
 * with apply, its namespace moves to script under the new name. */
static int migration_moves(Sim *sim, const char *script, json_object *step, const char *key, bool apply,
                           SimReply *rep) {
        json_object *a = get(step, key);
        bool transfer = streq(key, "transferred_classes");

        for (size_t i = 0; a && json_object_is_type(a, json_type_array) && i < json_object_array_length(a); i++) {
                json_object *mv = json_object_array_get_idx(a, i), *ns;
                const char *from = sim_json_str(mv, "from"), *to = sim_json_str(mv, "to");
                const char *from_script = transfer ? sim_json_str(mv, "from_script") : script;
                char name[600];

                if (!from || !from_script || !to || !(ns = do_find(sim, from_script, from, NULL))) {
                        if (transfer)
                                reply_error(rep, 400, 10021,
                                            "Cannot transfer class '%s' from '%s': no such Durable Object class",
                                            strna(from), strna(from_script));
                        else
                                reply_error(rep, 400, 10021, "Cannot rename class '%s': no such Durable Object class",
                                            strna(from));
                        return -ENOENT;
                }
                if (!apply)
                        continue;
                snprintf(name, sizeof(name), "%s_%s", script, to);
                sim_set_str(ns, "class", to);
                if (transfer)
                        sim_set_str(ns, "script", script);
                sim_set_str(ns, "name", name);
        }
        return 0;
}

static int migration_step(Sim *sim, const char *script, json_object *step, bool apply, SimReply *rep) {
        int r;

        if (!json_object_is_type(step, json_type_object)) {
                reply_error(rep, 400, 10021, "A migration step must be an object");
                return -EINVAL;
        }
        r = migration_creates(sim, script, step, apply, rep);
        if (r >= 0)
                r = migration_deletes(sim, script, step, apply, rep);
        if (r >= 0)
                r = migration_moves(sim, script, step, "renamed_classes", apply, rep);
        if (r >= 0)
                r = migration_moves(sim, script, step, "transferred_classes", apply, rep);
        return r;
}

/* Checks old_tag against the script's migration_tag, then applies the
 * single-step or stepped form. On any error the Durable Object namespaces
 * are restored as they were. */
static int migrations_run(Sim *sim, const char *script_name, json_object *info, json_object *mig, SimReply *rep) {
        const char *old_tag, *cur;
        json_object *steps, *snapshot;
        int r = 0;

        if (!mig)
                return 0;
        if (!json_object_is_type(mig, json_type_object)) {
                reply_error(rep, 400, 10021, "migrations must be an object");
                return -EINVAL;
        }
        old_tag = sim_json_str(mig, "old_tag");
        cur = info ? sim_json_str(info, "migration_tag") : NULL;
        if (!streq(old_tag ? old_tag : "", cur ? cur : "")) {
                reply_error(rep, 400, 10079, "Actor migration tag precondition failed, got tag '%s' when expected tag is '%s'.",
                            old_tag ? old_tag : "", cur ? cur : "");
                return -ESTALE;
        }
        steps = get(mig, "steps");
        if (steps && !json_object_is_type(steps, json_type_array)) {
                reply_error(rep, 400, 10021, "migrations.steps must be an array");
                return -EINVAL;
        }
        snapshot = sim_copy(sim_coll(sim, "do_namespaces"));
        if (steps) {
                for (size_t i = 0; i < json_object_array_length(steps) && r >= 0; i++)
                        r = migration_step(sim, script_name, json_object_array_get_idx(steps, i), true, rep);
        } else
                r = migration_step(sim, script_name, mig, true, rep);
        if (r < 0)
                json_object_object_add(sim->state, "do_namespaces", snapshot);
        else
                json_object_put(snapshot);
        return r;
}

/* ---- building versions from metadata -------------------------------------- */

static const char *const script_level_keys[] = { "logpush", "observability", "tags", "tail_consumers" };

static json_object *script_new(Sim *sim, const char *name, const char *now) {
        json_object *s = json_object_new_object(), *info = json_object_new_object(), *sub = json_object_new_object();
        char tag[33];

        sim_random_hex(tag, 32);
        sim_set_str(info, "id", name);
        sim_set_str(info, "tag", tag);
        sim_set_str(info, "etag", "");
        sim_set_str(info, "created_on", now);
        sim_set_str(info, "modified_on", now);
        json_object_object_add(info, "tags", json_object_new_array());
        sim_set_str(info, "migration_tag", NULL);
        sim_set_str(info, "compatibility_date", DEFAULT_COMPAT_DATE);
        json_object_object_add(info, "compatibility_flags", json_object_new_array());
        json_object_object_add(info, "handlers", json_object_new_array());
        json_object_object_add(info, "named_handlers", json_object_new_array());
        sim_set_bool(info, "has_modules", false);
        sim_set_bool(info, "has_assets", false);
        sim_set_str(info, "usage_model", "standard");
        sim_set_bool(info, "logpush", false);
        json_object_object_add(info, "observability", NULL);
        json_object_object_add(info, "placement", json_object_new_object());
        json_object_object_add(info, "tail_consumers", NULL);
        json_object_object_add(info, "routes", NULL);
        sim_set_str(info, "last_deployed_from", "api");
        json_object_object_add(s, "info", info);
        sim_set_bool(sub, "enabled", false);
        sim_set_bool(sub, "previews_enabled", false);
        json_object_object_add(s, "subdomain", sub);
        json_object_object_add(s, "schedules", json_object_new_array());
        json_object_object_add(s, "versions", json_object_new_array());
        json_object_object_add(s, "deployments", json_object_new_array());
        json_object_object_add(sim_coll(sim, "scripts"), name, s);
        return s;
}

static bool valid_script_name(const char *n) {
        size_t len = strlen(n);

        if (len < 1 || len > 63)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '-' || n[i] == '_' ||
                      (n[i] >= 'A' && n[i] <= 'Z')))
                        return false;
        return true;
}

/* Sets the versioned fields of v from metadata m (only those present,
 * or defaults when fresh). */
static void version_apply_metadata(json_object *v, json_object *m, bool fresh) {
        static const char *const keys[] = { "compatibility_date", "compatibility_flags", "usage_model", "limits",
                                            "placement" };

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_object *val = get(m, keys[i]);

                if (val)
                        json_object_object_add(v, keys[i], sim_copy(val));
        }
        if (fresh || !get(v, "compatibility_date"))
                if (!get(v, "compatibility_date"))
                        sim_set_str(v, "compatibility_date", DEFAULT_COMPAT_DATE);
        if (!get(v, "compatibility_flags"))
                json_object_object_add(v, "compatibility_flags", json_object_new_array());
        if (!get(v, "usage_model"))
                sim_set_str(v, "usage_model", "standard");
        if (!get(v, "placement"))
                json_object_object_add(v, "placement", json_object_new_object());
        if (!get(v, "limits"))
                json_object_object_add(v, "limits", json_object_new_object());
}

static void version_set_code(json_object *v, Upload *u) {
        const char *code;

        json_object_object_del(v, "main_module");
        json_object_object_del(v, "body_part");
        sim_set_str(v, u->is_module ? "main_module" : "body_part", u->main);
        json_object_object_add(v, "modules", json_object_get(u->modules));
        sim_set_str(v, "etag", u->etag);
        code = main_module_content(v, NULL, NULL);
        json_object_object_add(v, "handlers", handlers_guess(code));
}

static void info_apply_script_level(json_object *info, json_object *m) {
        for (size_t i = 0; i < ELEMENTSOF(script_level_keys); i++) {
                json_object *val = get(m, script_level_keys[i]);

                if (val || json_object_object_get_ex(m, script_level_keys[i], NULL))
                        json_object_object_add(info, script_level_keys[i], sim_copy(val));
        }
}

static json_object *script_out(json_object *script, json_object *version) {
        json_object *o = sim_copy(script_info(script));

        sim_set_int(o, "startup_time_ms", 0);
        if (version)
                sim_set_str(o, "deployment_id", sim_json_str(version, "id"));
        return o;
}

/* Whether the uploaded main module exports a queue() handler (guessed
 * from its text, as the handlers list is). */
static bool upload_has_queue_handler(Upload *u) {
        json_object *v = json_object_new_object(), *h;
        bool found = false;

        version_set_code(v, u);
        h = get(v, "handlers");
        for (size_t i = 0; h && i < json_object_array_length(h); i++)
                if (streq_ptr(json_object_get_string(json_object_array_get_idx(h, i)), "queue"))
                        found = true;
        json_object_put(v);
        return found;
}

/* PUT /workers/scripts/:name and POST .../versions share this. */
static void upload(Sim *sim, const SimRequest *req, SimReply *rep, bool deploy) {
        const char *name = req->params[1];
        json_object *script = script_get(sim, name), *prev, *bindings, *v, *mig, *anno, *snapshot;
        _cleanup_(upload_done) Upload u = {};
        bool strict;
        char now[40];

        snprintf(rep->audit_id, sizeof(rep->audit_id), "%s", name);
        if (!valid_script_name(name))
                return reply_error(rep, 400, 10021, "Invalid script name '%s'", name);
        if (!deploy && !script)
                return reply_error(rep, 404, 10007, "This Worker does not exist on your account.");
        if (upload_decode(req, rep, &u, false) < 0)
                return;
        prev = script ? version_latest(script) : NULL;
        strict = streq_ptr(sim_query(req, "bindings_inherit"), "strict");
        bindings = bindings_resolve(sim, script, prev, get(u.metadata, "bindings"), get(u.metadata, "keep_bindings"),
                                    strict, true, rep);
        if (!bindings)
                return;
        if (!script && sim->max_scripts > 0 &&
            json_object_object_length(sim_coll(sim, "scripts")) >= (int) sim->max_scripts) {
                json_object_put(bindings);
                return reply_error(rep, 400, 10037,
                                   "You have reached the limit of %u Workers on this account. Delete a Worker or ask for a higher limit.",
                                   sim->max_scripts);
        }
        mig = get(u.metadata, "migrations");
        snapshot = sim_copy(sim_coll(sim, "do_namespaces"));
        if (migrations_run(sim, name, script_info(script), mig, rep) < 0) {
                json_object_put(snapshot);
                json_object_put(bindings);
                return;
        }
        if (bindings_check_after(sim, name, bindings, TAKE_PTR(snapshot), rep) < 0) {
                json_object_put(bindings);
                return;
        }
        if (script && sim_script_is_consumer(sim, name) && !upload_has_queue_handler(&u)) {
                json_object_put(bindings);
                return reply_error(rep, 400, 11001, "workers.api.error.queue_handler_missing");
        }
        sim_now(now);
        if (!script)
                script = script_new(sim, name, now);
        if (mig && sim_json_str(mig, "new_tag"))
                sim_set_str(script_info(script), "migration_tag", sim_json_str(mig, "new_tag"));
        bindings_fill_do(sim, name, bindings);

        v = version_new(script, NULL, deploy ? "upload" : "version_upload", source_of(req), now);
        version_apply_metadata(v, u.metadata, true);
        version_set_code(v, &u);
        json_object_object_add(v, "bindings", bindings);
        anno = sim_json_obj(u.metadata, "annotations");
        if (anno) {
                json_object_object_foreach(anno, ak, av)
                        if (!streq(ak, "workers/triggered_by"))
                                json_object_object_add(get(v, "annotations"), ak, sim_copy(av));
        }
        versions_push(script, v);
        if (deploy) {
                info_apply_script_level(script_info(script), u.metadata);
                sim_set_str(script_info(script), "last_deployed_from", source_of(req));
                script_deploy(script, v, "upload", now);
                return reply_result(rep, script_out(script, v), NULL);
        }
        return reply_result(rep, version_out(script, v, true), NULL);
}

static void h_script_put(Sim *sim, const SimRequest *req, SimReply *rep) {
        upload(sim, req, rep, true);
}

static void h_versions_post(Sim *sim, const SimRequest *req, SimReply *rep) {
        upload(sim, req, rep, false);
}

/* ---- script routes ---------------------------------------------------------- */

#define SCRIPT_OR_404(sim, req, rep, script)                                                       \
        json_object *script = script_get(sim, (req)->params[1]);                                   \
        snprintf((rep)->audit_id, sizeof((rep)->audit_id), "%s", (req)->params[1]);                \
        if (!script)                                                                               \
                return reply_error(rep, 404, 10007, "This Worker does not exist on your account.")

static bool tags_filter_match(json_object *info, const char *filter) {
        _cleanup_free_ char *f = strdup(filter);
        json_object *tags = get(info, "tags");
        char *save = NULL;

        if (!f)
                return false;
        for (char *t = strtok_r(f, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                char *colon = strrchr(t, ':');
                bool want = true, has = false;

                if (colon) {
                        want = !streq(colon + 1, "no");
                        *colon = 0;
                }
                for (size_t i = 0; tags && json_object_is_type(tags, json_type_array) && i < json_object_array_length(tags); i++)
                        if (streq_ptr(json_object_get_string(json_object_array_get_idx(tags, i)), t))
                                has = true;
                if (has != want)
                        return false;
        }
        return true;
}

static void h_scripts_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        const char *tags = sim_query(req, "tags");
        json_object *a;

        if (!tags && sim->list_cache && sim->list_cache_gen == sim->generation)
                return reply_blob(rep, sim->list_cache);
        a = json_object_new_array_ext((int) json_object_object_length(sim_coll(sim, "scripts")));
        SIM_FOREACH_VAL(sim_coll(sim, "scripts"), s) {
                if (tags && !tags_filter_match(script_info(s), tags))
                        continue;
                json_object_array_add(a, json_object_get(script_info(s)));
        }
        if (!tags) {
                const char *js = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

                sim_blob_unref(sim->list_cache);
                sim->list_cache = sim_blob_new("{\"success\":true,\"errors\":[],\"messages\":[],\"result\":", js,
                                               strlen(js), "}");
                sim->list_cache_gen = sim->generation;
                json_object_put(a);
                return reply_blob(rep, sim->list_cache);
        }
        reply_result(rep, a, NULL);
}

static void h_script_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *v = sim_script_live_version(script);
        const char *type = NULL, *code;
        size_t size = 0;

        code = v ? main_module_content(v, &type, &size) : NULL;
        if (!code)
                return reply_error(rep, 404, 10007, "This Worker has no content.");
        reply_raw(rep, 200, "application/javascript", code, size);
}

static void h_content_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *v = sim_script_live_version(script);
        const char *type = NULL, *code;
        size_t size = 0;

        code = v ? main_module_content(v, &type, &size) : NULL;
        if (!code)
                return reply_error(rep, 404, 10007, "This Worker has no content.");
        reply_raw(rep, 200, type && strstr(type, "module") ? "application/javascript+module" : "application/javascript",
                  code, size);
}

static void h_content_put(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        _cleanup_(upload_done) Upload u = {};
        json_object *v;
        char now[40];

        if (upload_decode(req, rep, &u, true) < 0)
                return;
        sim_now(now);
        v = version_new(script, sim_script_live_version(script), "upload", source_of(req), now);
        version_set_code(v, &u);
        version_apply_metadata(v, u.metadata, false);
        versions_push(script, v);
        script_deploy(script, v, "upload", now);
        reply_result(rep, script_out(script, v), NULL);
}

static void h_script_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        const char *name = req->params[1];
        json_object *nss = sim_coll(sim, "do_namespaces");
        _cleanup_strv_free_ char **doomed = NULL;

        if (!sim_query_bool(req, "force")) {
                json_object_object_foreach(sim_coll(sim, "scripts"), other, s) {
                        json_object *lv = sim_script_live_version(s), *bs = get(lv, "bindings");

                        if (streq(other, name))
                                continue;
                        for (size_t i = 0; bs && i < json_object_array_length(bs); i++) {
                                json_object *b = json_object_array_get_idx(bs, i);
                                const char *t = sim_json_str(b, "type");

                                if ((streq_ptr(t, "service") && streq_ptr(sim_json_str(b, "service"), name)) ||
                                    (streq_ptr(t, "durable_object_namespace") &&
                                     streq_ptr(sim_json_str(b, "script_name"), name)))
                                        return reply_error(rep, 400, 10064,
                                                           "Cannot delete this Worker: Worker '%s' binds to it (binding '%s'). Use force=true to delete anyway.",
                                                           other, strna(sim_json_str(b, "name")));
                        }
                }
        }
        if (sim_script_is_consumer(sim, name)) {
                /* workers-sdk #3370: a consumer script cannot be deleted
                 * without force; forced, its consumers go with it. */
                if (!sim_query_bool(req, "force"))
                        return reply_error(rep, 400, 10064, "script still in use as a consumer for a queue");
                sim_remove_consumers_of(sim, name);
        }
        /* Deleting a script deletes the Durable Object namespaces it owns. */
        {
                json_object_object_foreach(nss, id, ns)
                        if (streq_ptr(sim_json_str(ns, "script"), name) && strv_extend(&doomed, id) < 0)
                                return reply_error(rep, 500, 10000, "out of memory");
        }
        for (char **d = doomed; d && *d; d++)
                json_object_object_del(nss, *d);
        json_object_object_del(sim_coll(sim, "scripts"), name);
        reply_result(rep, NULL, NULL);
}

/* ---- settings ------------------------------------------------------------- */

static json_object *settings_out(json_object *script) {
        json_object *v = sim_script_live_version(script), *info = script_info(script), *o = json_object_new_object();

        json_object_object_add(o, "bindings", bindings_out(get(v, "bindings")));
        json_object_object_add(o, "compatibility_date", sim_copy(get(v, "compatibility_date")));
        json_object_object_add(o, "compatibility_flags", sim_copy(get(v, "compatibility_flags")));
        json_object_object_add(o, "limits", sim_copy(get(v, "limits")));
        json_object_object_add(o, "placement", sim_copy(get(v, "placement")));
        json_object_object_add(o, "usage_model", sim_copy(get(v, "usage_model")));
        for (size_t i = 0; i < ELEMENTSOF(script_level_keys); i++)
                json_object_object_add(o, script_level_keys[i], sim_copy(get(info, script_level_keys[i])));
        json_object_object_add(o, "migration_tag", sim_copy(get(info, "migration_tag")));
        json_object_object_add(o, "annotations", sim_copy(get(v, "annotations")));
        return o;
}

static void h_settings_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        reply_result(rep, settings_out(script), NULL);
}

/* The settings PATCH body: a multipart "settings" part, or plain JSON. */
static json_object *settings_body(const SimRequest *req, SimReply *rep) {
        _cleanup_(sim_form_done) SimForm form = {};
        const SimFormPart *p;
        json_object *o = NULL;

        if (strncasecmp(req->content_type, "multipart/form-data", 19) != 0) {
                o = sim_body_json(req, rep);
                goto check;
        }
        if (sim_form_parse(req->content_type, req->body, req->body_size, &form) < 0) {
                reply_error(rep, 400, 10021, "Malformed multipart/form-data body");
                return NULL;
        }
        p = sim_form_find(&form, "settings", false);
        if (!p) {
                reply_error(rep, 400, 10021, "Missing the settings part");
                return NULL;
        }
        if (sim_json_parse(p->data, p->size, &o) < 0) {
                reply_error(rep, 400, 10021, "The settings part is not JSON");
                return NULL;
        }
check:
        if (o && !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                reply_error(rep, 400, 10021, "settings must be a JSON object");
                return NULL;
        }
        return o;
}

static void h_settings_patch(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *body = settings_body(req, rep), *live = sim_script_live_version(script), *v, *bindings = NULL, *mig,
                    *snapshot;
        char now[40];

        if (!body)
                return;
        if (get(body, "bindings")) {
                bindings = bindings_resolve(sim, script, live, get(body, "bindings"), get(body, "keep_bindings"),
                                            streq_ptr(sim_query(req, "bindings_inherit"), "strict"), false, rep);
                if (!bindings) {
                        json_object_put(body);
                        return;
                }
        }
        mig = get(body, "migrations");
        snapshot = sim_copy(sim_coll(sim, "do_namespaces"));
        if (migrations_run(sim, req->params[1], script_info(script), mig, rep) < 0) {
                json_object_put(snapshot);
                json_object_put(bindings);
                json_object_put(body);
                return;
        }
        if (bindings_check_after(sim, req->params[1], bindings ? bindings : get(live, "bindings"), TAKE_PTR(snapshot),
                                 rep) < 0) {
                json_object_put(bindings);
                json_object_put(body);
                return;
        }
        if (mig && sim_json_str(mig, "new_tag"))
                sim_set_str(script_info(script), "migration_tag", sim_json_str(mig, "new_tag"));
        sim_now(now);
        v = version_new(script, live, "settings", source_of(req), now);
        version_apply_metadata(v, body, false);
        if (bindings)
                json_object_object_add(v, "bindings", bindings);
        if (get(v, "bindings"))
                bindings_fill_do(sim, req->params[1], get(v, "bindings"));
        info_apply_script_level(script_info(script), body);
        versions_push(script, v);
        script_deploy(script, v, "settings", now);
        json_object_put(body);
        reply_result(rep, settings_out(script), NULL);
}

static json_object *script_settings_out(json_object *script) {
        json_object *o = json_object_new_object();

        for (size_t i = 0; i < ELEMENTSOF(script_level_keys); i++)
                json_object_object_add(o, script_level_keys[i], sim_copy(get(script_info(script), script_level_keys[i])));
        return o;
}

static void h_script_settings_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        reply_result(rep, script_settings_out(script), NULL);
}

static void h_script_settings_patch(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *body = sim_body_json(req, rep);

        if (!body)
                return;
        if (!json_object_is_type(body, json_type_object)) {
                json_object_put(body);
                return reply_error(rep, 400, 10021, "script-settings must be a JSON object");
        }
        info_apply_script_level(script_info(script), body);
        json_object_put(body);
        reply_result(rep, script_settings_out(script), NULL);
}

/* ---- schedules ---------------------------------------------------------------- */

static void h_schedules_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *o = json_object_new_object();

        json_object_object_add(o, "schedules", sim_copy(get(script, "schedules")));
        reply_result(rep, o, NULL);
}

static bool cron_valid(const char *c) {
        _cleanup_free_ char *d = strdup(c);
        char *save = NULL;
        unsigned n = 0;

        if (!d || strlen(c) > 200)
                return false;
        for (char *t = strtok_r(d, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
                n++;
                for (char *p = t; *p; p++)
                        if (!strchr("0123456789*/,-?LW#ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", *p))
                                return false;
        }
        return n == 5 || n == 6;
}

static void h_schedules_put(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *body = sim_body_json(req, rep), *list, *old = get(script, "schedules"), *nw, *o;
        char now[40];

        if (!body)
                return;
        list = json_object_is_type(body, json_type_array) ? body : get(body, "schedules");
        if (!list || !json_object_is_type(list, json_type_array)) {
                json_object_put(body);
                return reply_error(rep, 400, 10021, "Expected a JSON array of {\"cron\": ...}");
        }
        sim_now(now);
        nw = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                const char *cron = sim_json_str(json_object_array_get_idx(list, i), "cron");
                json_object *e;
                const char *created = now;

                if (!cron || !cron_valid(cron)) {
                        reply_error(rep, 400, 10100, "Invalid cron expression '%s'", strna(cron));
                        json_object_put(nw);
                        json_object_put(body);
                        return;
                }
                for (size_t k = 0; k < json_object_array_length(old); k++)
                        if (streq_ptr(sim_json_str(json_object_array_get_idx(old, k), "cron"), cron))
                                created = sim_json_str(json_object_array_get_idx(old, k), "created_on");
                e = json_object_new_object();
                sim_set_str(e, "cron", cron);
                sim_set_str(e, "created_on", created ? created : now);
                sim_set_str(e, "modified_on", created && created != now ? created : now);
                json_object_array_add(nw, e);
        }
        json_object_put(body);
        if (sim->max_crons > 0) {
                /* Cron triggers per account (Workers Paid: 250). */
                size_t total = json_object_array_length(nw);
                const char *self = req->params[1];

                json_object_object_foreach(sim_coll(sim, "scripts"), sname, so)
                        if (!streq(sname, self) && get(so, "schedules"))
                                total += json_object_array_length(get(so, "schedules"));
                if (total > sim->max_crons) {
                        json_object_put(nw);
                        return reply_error(rep, 400, 10101,
                                           "You have reached the limit of %u cron triggers on this account.", sim->max_crons);
                }
        }
        json_object_object_add(script, "schedules", nw);
        o = json_object_new_object();
        json_object_object_add(o, "schedules", sim_copy(nw));
        reply_result(rep, o, NULL);
}

/* ---- secrets ---------------------------------------------------------------- */

static bool latest_is_live(json_object *script) {
        json_object *l = version_latest(script), *live = sim_script_live_version(script);

        return !l || l == live;
}

/* Makes a new version from the latest with the secret changes in edits
 * (name -> binding or NULL to delete) and deploys it. */
static json_object *secrets_commit(json_object *script, json_object *edits, const SimRequest *req) {
        json_object *v, *old_b, *nb = json_object_new_array();
        char now[40];

        sim_now(now);
        v = version_new(script, version_latest(script), "secret", source_of(req), now);
        old_b = get(v, "bindings");
        for (size_t i = 0; old_b && i < json_object_array_length(old_b); i++) {
                json_object *b = json_object_array_get_idx(old_b, i);

                if (!json_object_object_get_ex(edits, sim_json_str(b, "name"), NULL))
                        json_object_array_add(nb, json_object_get(b));
        }
        SIM_FOREACH_VAL(edits, e)
                json_object_array_add(nb, json_object_get(e));
        json_object_object_add(v, "bindings", nb);
        versions_push(script, v);
        script_deploy(script, v, "secret", now);
        return v;
}

/* Decodes one secret from the request into an internal binding (value
 * hashed). NULL after replying with an error. */
static json_object *secret_decode(json_object *body, const char *name_override, SimReply *rep) {
        const char *name = name_override ? name_override : sim_json_str(body, "name");
        const char *type = sim_json_str(body, "type");
        json_object *b;
        char tag[72];

        if (!type)
                type = "secret_text";
        if (!name || !*name || strlen(name) > 256)
                return reply_error(rep, 400, 10021, "A secret needs a name"), NULL;
        if (streq(type, "secret_text")) {
                const char *text = sim_json_str(body, "text");

                if (!text)
                        return reply_error(rep, 400, 10021, "secret_text '%s' needs text", name), NULL;
                b = json_object_new_object();
                sim_set_str(b, "name", name);
                sim_set_str(b, "type", type);
                sim_set_str(b, "text", sim_sha256_tag(text, strlen(text), tag));
                return b;
        }
        if (streq(type, "secret_key")) {
                json_object *k = get(body, "key_base64") ? get(body, "key_base64") : get(body, "key_jwk");
                const char *s;

                if (!k || !get(body, "algorithm"))
                        return reply_error(rep, 400, 10021, "secret_key '%s' needs algorithm, format, usages and key material", name), NULL;
                b = sim_copy(body);
                sim_set_str(b, "name", name);
                s = json_object_to_json_string_ext(k, JSON_C_TO_STRING_PLAIN);
                sim_set_str(b, get(body, "key_base64") ? "key_base64" : "key_jwk", sim_sha256_tag(s, strlen(s), tag));
                return b;
        }
        return reply_error(rep, 400, 10021, "Unsupported secret type '%s'", type), NULL;
}

static void h_secret_put(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *body = sim_body_json(req, rep), *b, *edits;

        if (!body)
                return;
        if (!latest_is_live(script)) {
                json_object_put(body);
                return reply_error(rep, 400, 10215,
                                   "Secret edit failed. You attempted to modify a secret, but the latest version of your Worker isn't currently deployed.");
        }
        b = secret_decode(body, NULL, rep);
        json_object_put(body);
        if (!b)
                return;
        {
                /* Cloudflare: 10053 "Binding name '…' already in use" when
                 * the name is a non-secret binding of the script. */
                json_object *old = binding_find(get(version_latest(script), "bindings"), sim_json_str(b, "name"));

                if (old && !is_secret_type(sim_json_str(old, "type"))) {
                        reply_error(rep, 400, 10053, "Binding name '%s' already in use. Please use a different name and try again.",
                                    sim_json_str(b, "name"));
                        json_object_put(b);
                        return;
                }
        }
        edits = json_object_new_object();
        json_object_object_add(edits, sim_json_str(b, "name"), b);
        (void) secrets_commit(script, edits, req);
        reply_result(rep, secret_out(b), NULL);
        json_object_put(edits);
}

static void h_secrets_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *bs = get(version_latest(script), "bindings"), *a = json_object_new_array();

        for (size_t i = 0; bs && i < json_object_array_length(bs); i++) {
                json_object *b = json_object_array_get_idx(bs, i);

                if (is_secret_type(sim_json_str(b, "type")))
                        json_object_array_add(a, secret_out(b));
        }
        reply_result(rep, a, NULL);
}

static void h_secret_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *b = binding_find(get(version_latest(script), "bindings"), req->params[2]);

        if (!b || !is_secret_type(sim_json_str(b, "type")))
                return reply_error(rep, 404, 10056, "Secret '%s' not found", req->params[2]);
        reply_result(rep, secret_out(b), NULL);
}

static void h_secret_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *b = binding_find(get(version_latest(script), "bindings"), req->params[2]), *edits;

        if (!b || !is_secret_type(sim_json_str(b, "type")))
                return reply_error(rep, 404, 10056, "Secret '%s' not found", req->params[2]);
        if (!latest_is_live(script))
                return reply_error(rep, 400, 10215,
                                   "Secret edit failed. You attempted to modify a secret, but the latest version of your Worker isn't currently deployed.");
        edits = json_object_new_object();
        json_object_object_add(edits, req->params[2], NULL);
        (void) secrets_commit(script, edits, req);
        json_object_put(edits);
        reply_result(rep, NULL, NULL);
}

static void h_secrets_bulk(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *body = sim_body_json(req, rep), *secrets, *edits, *res;

        if (!body)
                return;
        secrets = sim_json_obj(body, "secrets");
        if (!secrets) {
                json_object_put(body);
                return reply_error(rep, 400, 10021, "Expected {\"secrets\": {NAME: {...} | null}}");
        }
        if (!latest_is_live(script)) {
                json_object_put(body);
                return reply_error(rep, 400, 10215,
                                   "Secret edit failed. You attempted to modify a secret, but the latest version of your Worker isn't currently deployed.");
        }
        edits = json_object_new_object();
        res = json_object_new_object();
        json_object_object_foreach(secrets, name, val) {
                json_object *b;

                if (!val) {
                        json_object_object_add(edits, name, NULL);
                        continue;
                }
                b = secret_decode(val, name, rep);
                if (!b) {
                        json_object_put(edits);
                        json_object_put(res);
                        json_object_put(body);
                        return;
                }
                json_object_object_add(res, name, secret_out(b));
                json_object_object_add(edits, name, b);
        }
        (void) secrets_commit(script, edits, req);
        json_object_put(edits);
        json_object_put(body);
        reply_result(rep, res, NULL);
}

/* ---- subdomains --------------------------------------------------------------- */

static void h_script_subdomain_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        reply_result(rep, sim_copy(get(script, "subdomain")), NULL);
}

static void h_script_subdomain_post(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *body = sim_body_json(req, rep), *sub = get(script, "subdomain"), *en;

        if (!body)
                return;
        if (!json_object_object_get_ex(body, "enabled", &en) || !json_object_is_type(en, json_type_boolean)) {
                json_object_put(body);
                return reply_error(rep, 400, 10021, "enabled (boolean) is required");
        }
        sim_set_bool(sub, "enabled", json_object_get_boolean(en));
        sim_set_bool(sub, "previews_enabled", sim_json_bool(body, "previews_enabled", json_object_get_boolean(en)));
        json_object_put(body);
        reply_result(rep, sim_copy(sub), NULL);
}

static void h_script_subdomain_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *sub = get(script, "subdomain");

        sim_set_bool(sub, "enabled", false);
        sim_set_bool(sub, "previews_enabled", false);
        reply_result(rep, sim_copy(sub), NULL);
}

static void h_account_subdomain_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        const char *s = sim_json_str(sim->state, "subdomain");
        json_object *o;

        if (!s)
                return reply_error(rep, 404, 10007, "This account does not have a workers.dev subdomain.");
        o = json_object_new_object();
        sim_set_str(o, "subdomain", s);
        reply_result(rep, o, NULL);
}

static void h_account_subdomain_put(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *body = sim_body_json(req, rep), *o;
        const char *s;

        if (!body)
                return;
        s = sim_json_str(body, "subdomain");
        if (!s || strlen(s) < 1 || strlen(s) > 63 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(s) ||
            s[0] == '-') {
                json_object_put(body);
                return reply_error(rep, 400, 10031, "workers.dev subdomain unavailable or invalid");
        }
        sim_set_str(sim->state, "subdomain", s);
        o = json_object_new_object();
        sim_set_str(o, "subdomain", s);
        json_object_put(body);
        reply_result(rep, o, NULL);
}

static void h_account_subdomain_delete(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object_object_add(sim->state, "subdomain", NULL);
        reply_result(rep, NULL, NULL);
}

/* ---- versions and deployments --------------------------------------------------- */

static void h_versions_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *vs = get(script, "versions"), *items = json_object_new_array(), *slice, *info, *o;

        for (size_t i = json_object_array_length(vs); i > 0; i--)
                json_object_array_add(items, version_out(script, json_object_array_get_idx(vs, i - 1), false));
        if (sim_page(rep, req, items, 10, 100, &slice, &info) < 0) {
                json_object_put(items);
                return;
        }
        json_object_put(items);
        o = json_object_new_object();
        json_object_object_add(o, "items", slice);
        reply_result(rep, o, info);
}

static void h_version_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *v = version_find(script, req->params[2]);

        if (!v)
                return reply_error(rep, 404, 10007, "Version '%s' not found", req->params[2]);
        reply_result(rep, version_out(script, v, true), NULL);
}

static void h_deployments_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *o = json_object_new_object(), *deps = get(script, "deployments"), *a = json_object_new_array();

        for (size_t i = json_object_array_length(deps); i > 0; i--)
                json_object_array_add(a, sim_copy(json_object_array_get_idx(deps, i - 1)));
        json_object_object_add(o, "deployments", a);
        reply_result(rep, o, NULL);
}

static void h_deployments_post(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        json_object *body = sim_body_json(req, rep), *vers, *d, *best = NULL, *anno;
        double sum = 0, best_pct = -1;
        char now[40], id[37];

        if (!body)
                return;
        vers = sim_json_arr(body, "versions");
        if (!vers || json_object_array_length(vers) == 0 || json_object_array_length(vers) > 2) {
                json_object_put(body);
                return reply_error(rep, 400, 10021, "versions must list one or two {version_id, percentage}");
        }
        for (size_t i = 0; i < json_object_array_length(vers); i++) {
                json_object *e = json_object_array_get_idx(vers, i), *p = get(e, "percentage"), *v;
                double pct;

                v = version_find(script, sim_json_str(e, "version_id"));
                if (!v || !p || !(json_object_is_type(p, json_type_int) || json_object_is_type(p, json_type_double))) {
                        json_object_put(body);
                        return reply_error(rep, 400, 10021, "Unknown version_id or missing percentage in versions[%zu]", i);
                }
                pct = json_object_get_double(p);
                sum += pct;
                if (pct > best_pct) {
                        best_pct = pct;
                        best = v;
                }
        }
        if (fabs(sum - 100) > 0.01) {
                json_object_put(body);
                return reply_error(rep, 400, 10021, "Version percentages must add up to 100");
        }
        sim_now(now);
        d = json_object_new_object();
        sim_random_uuid(id);
        sim_set_str(d, "id", id);
        sim_set_str(d, "created_on", now);
        sim_set_str(d, "source", source_of(req));
        sim_set_str(d, "strategy", "percentage");
        json_object_object_add(d, "versions", sim_copy(vers));
        anno = sim_copy(sim_json_obj(body, "annotations"));
        if (!anno)
                anno = json_object_new_object();
        sim_set_str(anno, "workers/triggered_by", "deployment");
        json_object_object_add(d, "annotations", anno);
        sim_set_str(d, "author_email", "cfsim@example.com");
        deployments_push(script, d);
        info_sync(script, best, NULL);  /* modified_on: unconfirmed, not moved */
        json_object_put(body);
        reply_result(rep, sim_copy(d), NULL);
}

static void h_service_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *script = script_get(sim, req->params[1]), *o, *env;

        if (!script)
                return reply_error(rep, 404, 10090, "This service does not exist.");
        o = json_object_new_object();
        sim_set_str(o, "id", req->params[1]);
        sim_set_str(o, "created_on", sim_json_str(script_info(script), "created_on"));
        sim_set_str(o, "modified_on", sim_json_str(script_info(script), "modified_on"));
        env = json_object_new_object();
        sim_set_str(env, "environment", "production");
        sim_set_str(env, "created_on", sim_json_str(script_info(script), "created_on"));
        sim_set_str(env, "modified_on", sim_json_str(script_info(script), "modified_on"));
        json_object_object_add(env, "script", sim_copy(script_info(script)));
        json_object_object_add(o, "default_environment", env);
        reply_result(rep, o, NULL);
}

/* What wrangler delete checks before deleting: service bindings and
 * Durable Object bindings into this script from live versions. */
static void h_references(Sim *sim, const SimRequest *req, SimReply *rep) {
        SCRIPT_OR_404(sim, req, rep, script);
        const char *name = req->params[1];
        json_object *o = json_object_new_object(), *svc = json_object_new_object(), *in = json_object_new_array(),
                    *dos = json_object_new_array();

        json_object_object_foreach(sim_coll(sim, "scripts"), other, s) {
                json_object *bs = get(sim_script_live_version(s), "bindings");
                bool counted = false;

                for (size_t i = 0; bs && i < json_object_array_length(bs); i++) {
                        json_object *b = json_object_array_get_idx(bs, i), *e;
                        const char *t = sim_json_str(b, "type"), *owner = sim_json_str(b, "script_name");

                        if (streq_ptr(t, "service") && streq_ptr(sim_json_str(b, "service"), name) && !counted) {
                                e = json_object_new_object();
                                sim_set_str(e, "service", other);
                                sim_set_str(e, "environment", "production");
                                json_object_array_add(in, e);
                                counted = true;
                        }
                        if (streq_ptr(t, "durable_object_namespace") && streq(owner ? owner : other, name)) {
                                const char *nsid = NULL;
                                json_object *ns = do_find(sim, name, sim_json_str(b, "class_name"), &nsid);

                                e = json_object_new_object();
                                sim_set_str(e, "service", other);
                                sim_set_str(e, "environment", "production");
                                sim_set_str(e, "durable_object_namespace_id", nsid);
                                sim_set_str(e, "durable_object_namespace_name", ns ? sim_json_str(ns, "name") : NULL);
                                json_object_array_add(dos, e);
                        }
                }
        }
        json_object_object_add(svc, "incoming", in);
        json_object_object_add(svc, "outgoing", json_object_new_array());
        sim_set_bool(svc, "pages_function", false);
        json_object_object_add(o, "services", svc);
        json_object_object_add(o, "durable_objects", dos);
        json_object_object_add(o, "dispatch_outbounds", json_object_new_array());
        reply_result(rep, o, NULL);
}

/* Scripts whose tail_consumers name this one. */
static void h_tails_by_consumer(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *a = json_object_new_array();

        json_object_object_foreach(sim_coll(sim, "scripts"), other, s) {
                json_object *tc = get(script_info(s), "tail_consumers");

                for (size_t i = 0; tc && json_object_is_type(tc, json_type_array) && i < json_object_array_length(tc); i++)
                        if (streq_ptr(sim_json_str(json_object_array_get_idx(tc, i), "service"), req->params[1])) {
                                json_object *e = json_object_new_object(), *p = json_object_new_object();

                                sim_set_str(p, "script", other);
                                json_object_object_add(e, "producer", p);
                                json_object_array_add(a, e);
                                break;
                        }
        }
        reply_result(rep, a, NULL);
}

static void h_do_namespaces_list(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *a = json_object_new_array();

        SIM_FOREACH_VAL(sim_coll(sim, "do_namespaces"), ns)
                json_object_array_add(a, json_object_get(ns));
        reply_paged(rep, req, a, 20, 1000);
}

#define S "/accounts/:account_id/workers/scripts/:script_name"
const SimRoute sim_workers_routes[] = {
        { "GET", "/accounts/:account_id/workers/scripts", h_scripts_list, "workers.script" },
        { "PUT", S, h_script_put, "workers.script" },
        { "GET", S, h_script_get, "workers.script" },
        { "DELETE", S, h_script_delete, "workers.script" },
        { "GET", S "/content/v2", h_content_get, "workers.script" },
        { "PUT", S "/content", h_content_put, "workers.script" },
        { "GET", S "/settings", h_settings_get, "workers.script" },
        { "PATCH", S "/settings", h_settings_patch, "workers.script" },
        { "GET", S "/script-settings", h_script_settings_get, "workers.script" },
        { "PATCH", S "/script-settings", h_script_settings_patch, "workers.script" },
        { "GET", S "/schedules", h_schedules_get, "workers.script" },
        { "PUT", S "/schedules", h_schedules_put, "workers.script" },
        { "GET", S "/secrets", h_secrets_list, "workers.script" },
        { "PUT", S "/secrets", h_secret_put, "workers.script" },
        { "GET", S "/secrets/:secret_name", h_secret_get, "workers.script" },
        { "DELETE", S "/secrets/:secret_name", h_secret_delete, "workers.script" },
        { "PATCH", S "/secrets-bulk", h_secrets_bulk, "workers.script" },
        { "GET", S "/subdomain", h_script_subdomain_get, "workers.script" },
        { "POST", S "/subdomain", h_script_subdomain_post, "workers.script" },
        { "DELETE", S "/subdomain", h_script_subdomain_delete, "workers.script" },
        { "GET", S "/versions", h_versions_list, "workers.script" },
        { "POST", S "/versions", h_versions_post, "workers.script" },
        { "GET", S "/versions/:version_id", h_version_get, "workers.script" },
        { "GET", S "/deployments", h_deployments_get, "workers.script" },
        { "POST", S "/deployments", h_deployments_post, "workers.script" },
        { "GET", S "/references", h_references, "workers.script" },
        { "GET", "/accounts/:account_id/workers/services/:service_name", h_service_get, "workers.script" },
        { "DELETE", "/accounts/:account_id/workers/services/:service_name", h_script_delete, "workers.script" },
        { "GET", "/accounts/:account_id/workers/tails/by-consumer/:script_name", h_tails_by_consumer, "workers.script" },
        { "GET", "/accounts/:account_id/workers/subdomain", h_account_subdomain_get, "workers.subdomain" },
        { "PUT", "/accounts/:account_id/workers/subdomain", h_account_subdomain_put, "workers.subdomain" },
        { "DELETE", "/accounts/:account_id/workers/subdomain", h_account_subdomain_delete, "workers.subdomain" },
        { "GET", "/accounts/:account_id/workers/durable_objects/namespaces", h_do_namespaces_list, "workers.durable_object_namespace" },
        {}
};
#undef S
