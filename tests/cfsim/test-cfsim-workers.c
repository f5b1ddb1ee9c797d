/* test-cfsim-workers.c: cfsim's Workers endpoints against a real cfsim
 * process over loopback: uploads in every client's multipart form, the
 * list, settings, secrets, versions, deployments, migrations, schedules,
 * subdomains, content, services and deletes, with their error codes. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "sim-test.h"

#define CODE "export default { async fetch(req, env) { return new Response('hi'); } };\n"
#define CODE2 "export default { async fetch() { return new Response('v2'); }, async scheduled() {} };\n"
#define SDK7_BODY "--x\r\nContent-Disposition: form-data; name=\"metadata[main_module]\"\r\n\r\nindex.js\r\n--x--\r\n"
#define META_SIMPLE "{\"main_module\":\"index.js\",\"compatibility_date\":\"2025-01-01\",\"bindings\":[]}"

static const char *META_BINDINGS =
        "{\"main_module\":\"index.js\",\"compatibility_date\":\"2025-01-01\",\"bindings\":["
        "{\"name\":\"GREETING\",\"type\":\"plain_text\",\"text\":\"hello\"},"
        "{\"name\":\"CONFIG\",\"type\":\"json\",\"json\":{\"level\":3}},"
        "{\"name\":\"CACHE\",\"type\":\"kv_namespace\",\"namespace_id\":\"11111111111111111111111111111111\"},"
        "{\"name\":\"DB\",\"type\":\"d1\",\"id\":\"22222222-2222-2222-2222-222222222222\"},"
        "{\"name\":\"API_KEY\",\"type\":\"secret_text\",\"text\":\"hunter2\"}]}";

/* The targets META_BINDINGS binds, seeded as a user's existing account
 * would have them (cfsim refuses bindings to missing targets). */
static void reset_seeded(void) {
        sim_reset();
        ck_assert_status(op("POST", "/__sim/seed",
                            "{\"kv\":[{\"id\":\"11111111111111111111111111111111\",\"title\":\"cache\"}],"
                            "\"d1\":[{\"uuid\":\"22222222-2222-2222-2222-222222222222\",\"name\":\"db\"}]}"),
                         200);
}

START_TEST(test_upload_wrangler_form_and_list) {
        Resp *r;
        json_object *s, *b;

        reset_seeded();
        r = upload("w1", "excludeScript=true&bindings_inherit=strict", META_BINDINGS, "index.js", CODE);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.id"), "w1");
        ck_assert_int_eq(strlen(jstr(r->json, "result.etag")), 64);
        ck_assert_ptr_nonnull(jstr(r->json, "result.deployment_id"));
        ck_assert_ptr_nonnull(jpath(r->json, "result.startup_time_ms"));
        ck_assert_ptr_nonnull(jpath(r->json, "messages"));

        r = api("GET", "/workers/scripts", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        s = jpath(r->json, "result.0");
        {
                static const char *const fields[] = { "id", "tag", "etag", "created_on", "modified_on", "tags",
                                                      "migration_tag", "compatibility_date", "compatibility_flags",
                                                      "handlers", "has_modules", "usage_model", "logpush",
                                                      "observability", "placement", "tail_consumers", "routes",
                                                      "last_deployed_from" };
                for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
                        ck_assert_msg(json_object_object_get_ex(s, fields[i], NULL), "list lacks %s", fields[i]);
        }
        ck_assert_str_eq(jstr(s, "compatibility_date"), "2025-01-01");
        ck_assert_str_eq(jstr(s, "handlers.0"), "fetch");
        ck_assert(json_object_get_boolean(jpath(s, "has_modules")));
        ck_assert_ptr_null(jpath(s, "bindings"));

        /* Settings: values shown except secrets; d1 carries both ids. */
        r = api("GET", "/workers/scripts/w1/settings", NULL);
        ck_assert_ok(r);
        b = jfind(jpath(r->json, "result.bindings"), "name", "GREETING");
        ck_assert_str_eq(jstr(b, "text"), "hello");
        b = jfind(jpath(r->json, "result.bindings"), "name", "API_KEY");
        ck_assert_str_eq(jstr(b, "type"), "secret_text");
        ck_assert_ptr_null(jpath(b, "text"));
        b = jfind(jpath(r->json, "result.bindings"), "name", "DB");
        ck_assert_str_eq(jstr(b, "database_id"), "22222222-2222-2222-2222-222222222222");
        ck_assert_str_eq(jstr(b, "id"), "22222222-2222-2222-2222-222222222222");
        ck_assert(strstr(r->body, "hunter2") == NULL);
}
END_TEST

/* SDK 6: metadata as a file part, the module as name="files". */
START_TEST(test_upload_sdk6_and_alchemy_forms) {
        static const char form[] =
                "--XyZ\r\n"
                "Content-Disposition: form-data; name=\"metadata\"; filename=\"metadata\"\r\n"
                "Content-Type: application/json\r\n\r\n"
                "{\"main_module\":\"index.mjs\",\"bindings\":[]}\r\n"
                "--XyZ\r\n"
                "Content-Disposition: form-data; name=\"files\"; filename=\"index.mjs\"\r\n"
                "Content-Type: application/javascript+module\r\n\r\n"
                CODE "\r\n"
                "--XyZ--\r\n";
        static const char alchemy[] =
                "--b\r\n"
                "Content-Disposition: form-data; name=\"index.js.map\"; filename=\"index.js.map\"\r\n"
                "Content-Type: application/source-map\r\n\r\n"
                "{}\r\n"
                "--b\r\n"
                "Content-Disposition: form-data; name=\"index.js\"; filename=\"index.js\"\r\n"
                "Content-Type: application/javascript+module\r\n\r\n"
                CODE "\r\n"
                "--b\r\n"
                "Content-Disposition: form-data; name=\"metadata\"; filename=\"blob\"\r\n"
                "Content-Type: application/json\r\n\r\n"
                "{\"compatibility_date\":\"2025-01-01\",\"bindings\":[{\"type\":\"secret_text\",\"name\":\"S\",\"text\":\"x\"}],"
                "\"observability\":{\"enabled\":true},\"logpush\":false,\"tags\":[],"
                "\"migrations\":{\"new_classes\":[],\"deleted_classes\":[],\"renamed_classes\":[],\"transferred_classes\":[],\"new_sqlite_classes\":[]},"
                "\"main_module\":\"index.js\"}\r\n"
                "--b--\r\n";
        char path[256];
        Resp *r;

        reset_seeded();
        snprintf(path, sizeof(path), "/client/v4/accounts/%s/workers/scripts/sdk", SIM_TEST_ACCOUNT);
        r = sim_call("PUT", path, "multipart/form-data; boundary=XyZ", form, strlen(form), NULL);
        ck_assert_ok(r);
        r = api("GET", "/workers/scripts/sdk/content/v2", NULL);
        ck_assert_status(r, 200);
        ck_assert_str_eq(r->body, CODE);

        snprintf(path, sizeof(path), "/client/v4/accounts/%s/workers/scripts/al", SIM_TEST_ACCOUNT);
        r = sim_call("PUT", path, "multipart/form-data; boundary=\"b\"", alchemy, strlen(alchemy), NULL);
        ck_assert_ok(r);
        ck_assert(json_object_get_boolean(jpath(r->json, "result.observability.enabled")));
        /* alchemy re-uploads unchanged: same etag. */
        {
                char etag[80];

                snprintf(etag, sizeof(etag), "%s", jstr(r->json, "result.etag"));
                r = sim_call("PUT", path, "multipart/form-data; boundary=\"b\"", alchemy, strlen(alchemy), NULL);
                ck_assert_ok(r);
                ck_assert_str_eq(jstr(r->json, "result.etag"), etag);
        }
        /* The SDK 7 form (bracketed fields, no JSON metadata) is refused. */
        r = sim_call("PUT", path, "application/javascript",
                     SDK7_BODY, strlen(SDK7_BODY), NULL);
        ck_assert_error(r, 400, 10021);
}
END_TEST

START_TEST(test_upload_errors) {
        Resp *r;

        reset_seeded();
        r = upload("bad", NULL, "{\"main_module\":\"missing.js\"}", "index.js", CODE);
        ck_assert_error(r, 400, 10021);
        r = upload("bad", NULL, "not json", "index.js", CODE);
        ck_assert_error(r, 400, 10021);
        r = upload("bad", NULL, "{\"bindings\":[]}", "index.js", CODE);
        ck_assert_error(r, 400, 10021);
        r = upload("bad", NULL, "{\"main_module\":\"index.js\",\"bindings\":[{\"type\":\"plain_text\"}]}", "index.js", CODE);
        ck_assert_error(r, 400, 10021);
        r = upload("bad", NULL, "{\"main_module\":\"index.js\",\"bindings\":[{\"name\":\"K\",\"type\":\"kv_namespace\"}]}", "index.js", CODE);
        ck_assert_error(r, 400, 10021);
        r = upload("bad", NULL,
                   "{\"main_module\":\"index.js\",\"bindings\":[{\"name\":\"A\",\"type\":\"plain_text\",\"text\":\"1\"},{\"name\":\"A\",\"type\":\"plain_text\",\"text\":\"2\"}]}",
                   "index.js", CODE);
        ck_assert_error(r, 400, 10021);
        r = api("GET", "/workers/scripts", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);
        r = api("GET", "/workers/scripts/nope/settings", NULL);
        ck_assert_error(r, 404, 10007);
        r = api("PUT", "/workers/scripts/nope/secrets", "{\"name\":\"X\",\"text\":\"y\",\"type\":\"secret_text\"}");
        ck_assert_error(r, 404, 10007);
        r = api("GET", "/workers/services/nope", NULL);
        ck_assert_error(r, 404, 10090);
        r = api("GET", "/workers/scripts/nope/deployments", NULL);
        ck_assert_error(r, 404, 10007);
}
END_TEST

START_TEST(test_keep_bindings_and_secret_survival) {
        Resp *r;
        json_object *bs;

        reset_seeded();
        ck_assert_ok(upload("w", NULL, META_BINDINGS, "index.js", CODE));
        ck_assert_ok(api("PUT", "/workers/scripts/w/secrets", "{\"name\":\"LATE\",\"text\":\"v\",\"type\":\"secret_text\"}"));

        /* A plain re-upload replaces the set, but secrets survive. */
        r = upload("w", NULL, "{\"main_module\":\"index.js\",\"bindings\":[{\"name\":\"NEW\",\"type\":\"plain_text\",\"text\":\"n\"}]}",
                   "index.js", CODE);
        ck_assert_ok(r);
        r = api("GET", "/workers/scripts/w/settings", NULL);
        bs = jpath(r->json, "result.bindings");
        ck_assert_ptr_nonnull(jfind(bs, "name", "NEW"));
        ck_assert_ptr_null(jfind(bs, "name", "GREETING"));
        ck_assert_ptr_null(jfind(bs, "name", "CACHE"));
        ck_assert_ptr_nonnull(jfind(bs, "name", "API_KEY"));
        ck_assert_ptr_nonnull(jfind(bs, "name", "LATE"));

        /* keep_bindings carries whole types over. */
        ck_assert_ok(upload("w", NULL, META_BINDINGS, "index.js", CODE));
        r = upload("w", NULL, "{\"main_module\":\"index.js\",\"bindings\":[],\"keep_bindings\":[\"plain_text\",\"kv_namespace\"]}",
                   "index.js", CODE);
        ck_assert_ok(r);
        r = api("GET", "/workers/scripts/w/settings", NULL);
        bs = jpath(r->json, "result.bindings");
        ck_assert_str_eq(jstr(jfind(bs, "name", "GREETING"), "text"), "hello");
        ck_assert_ptr_nonnull(jfind(bs, "name", "CACHE"));
        ck_assert_ptr_null(jfind(bs, "name", "CONFIG"));
        ck_assert_ptr_null(jfind(bs, "name", "DB"));
        ck_assert_ptr_nonnull(jfind(bs, "name", "API_KEY"));
}
END_TEST

START_TEST(test_inherit) {
        Resp *r;
        json_object *bs;

        reset_seeded();
        ck_assert_ok(upload("w", NULL, META_BINDINGS, "index.js", CODE));
        r = upload("w", "bindings_inherit=strict",
                   "{\"main_module\":\"index.js\",\"bindings\":[{\"name\":\"CACHE\",\"type\":\"inherit\"},"
                   "{\"name\":\"HI\",\"type\":\"inherit\",\"old_name\":\"GREETING\"}]}",
                   "index.js", CODE);
        ck_assert_ok(r);
        r = api("GET", "/workers/scripts/w/settings", NULL);
        bs = jpath(r->json, "result.bindings");
        ck_assert_str_eq(jstr(jfind(bs, "name", "CACHE"), "namespace_id"), "11111111111111111111111111111111");
        ck_assert_str_eq(jstr(jfind(bs, "name", "CACHE"), "type"), "kv_namespace");
        ck_assert_str_eq(jstr(jfind(bs, "name", "HI"), "text"), "hello");
        ck_assert_ptr_null(jfind(bs, "name", "GREETING"));

        /* Strict: an unresolvable inherit fails with one 10057 per binding. */
        r = upload("w", "bindings_inherit=strict",
                   "{\"main_module\":\"index.js\",\"bindings\":[{\"name\":\"GONE\",\"type\":\"inherit\"},{\"name\":\"GONE2\",\"type\":\"inherit\"}]}",
                   "index.js", CODE);
        ck_assert_error(r, 400, 10057);
        ck_assert_uint_eq(jlen(r->json, "errors"), 2);
        /* Not strict: dropped silently. */
        r = upload("w", NULL, "{\"main_module\":\"index.js\",\"bindings\":[{\"name\":\"GONE\",\"type\":\"inherit\"}]}",
                   "index.js", CODE);
        ck_assert_ok(r);
        r = api("GET", "/workers/scripts/w/settings", NULL);
        ck_assert_ptr_null(jfind(jpath(r->json, "result.bindings"), "name", "GONE"));
}
END_TEST

START_TEST(test_secrets) {
        Resp *r;
        char etag[80], modified[64];
        size_t deps;

        reset_seeded();
        r = upload("w", NULL, META_SIMPLE, "index.js", CODE);
        ck_assert_ok(r);
        snprintf(etag, sizeof(etag), "%s", jstr(r->json, "result.etag"));
        snprintf(modified, sizeof(modified), "%s", jstr(r->json, "result.modified_on"));
        r = api("GET", "/workers/scripts/w/deployments", NULL);
        deps = jlen(r->json, "result.deployments");
        ck_assert_uint_eq(deps, 1);

        r = api("PUT", "/workers/scripts/w/secrets", "{\"name\":\"MY SECRET\",\"text\":\"s3cr3t-value\",\"type\":\"secret_text\"}");
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.name"), "MY SECRET");
        ck_assert_str_eq(jstr(r->json, "result.type"), "secret_text");
        ck_assert_ptr_null(jpath(r->json, "result.text"));

        r = api("GET", "/workers/scripts/w/secrets", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        ck_assert(strstr(r->body, "s3cr3t") == NULL);
        r = api("GET", "/workers/scripts/w/secrets/MY%20SECRET?url_encoded=true", NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.name"), "MY SECRET");
        r = api("GET", "/workers/scripts/w/secrets/NOPE", NULL);
        ck_assert_error(r, 404, 10056);

        /* etag kept, and modified_on too (unconfirmed for a secret change:
         * cfsim does not move it, README "modified_on"); a new version and
         * deployment. */
        r = api("GET", "/workers/scripts", NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.etag"), etag);
        ck_assert_str_eq(jstr(r->json, "result.0.modified_on"), modified);
        r = api("GET", "/workers/scripts/w/deployments", NULL);
        ck_assert_uint_eq(jlen(r->json, "result.deployments"), 2);
        ck_assert_str_eq(jstr(r->json, "result.deployments.0.annotations.workers/triggered_by"), "secret");

        /* The value never comes back, anywhere; state shows a hash. */
        r = api("GET", "/workers/scripts/w/settings", NULL);
        ck_assert(strstr(r->body, "s3cr3t") == NULL);
        r = api("GET", "/workers/scripts/w/versions", NULL);
        r = apif("GET", NULL, "/workers/scripts/w/versions/%s", jstr(r->json, "result.items.0.id"));
        ck_assert_ok(r);
        ck_assert(strstr(r->body, "s3cr3t") == NULL);
        ck_assert_ptr_nonnull(jfind(jpath(r->json, "result.resources.bindings"), "name", "MY SECRET"));
        r = op("GET", "/__sim/state", NULL);
        ck_assert(strstr(r->body, "s3cr3t") == NULL);
        /* sha256("s3cr3t-value") */
        ck_assert(strstr(r->body, "sha256:") != NULL);

        /* Bulk: set one, delete one (null), leave others. */
        ck_assert_ok(api("PUT", "/workers/scripts/w/secrets", "{\"name\":\"KEEP\",\"text\":\"k\",\"type\":\"secret_text\"}"));
        r = api("PATCH", "/workers/scripts/w/secrets-bulk",
                "{\"secrets\":{\"MY SECRET\":null,\"B\":{\"name\":\"B\",\"text\":\"b\",\"type\":\"secret_text\"}}}");
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.B.type"), "secret_text");
        r = api("GET", "/workers/scripts/w/secrets", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 2);
        ck_assert_ptr_nonnull(jfind(jpath(r->json, "result"), "name", "KEEP"));
        ck_assert_ptr_nonnull(jfind(jpath(r->json, "result"), "name", "B"));

        r = api("DELETE", "/workers/scripts/w/secrets/KEEP?url_encoded=true", NULL);
        ck_assert_ok(r);
        r = api("DELETE", "/workers/scripts/w/secrets/KEEP?url_encoded=true", NULL);
        ck_assert_error(r, 404, 10056);
        r = api("GET", "/workers/scripts", NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.etag"), etag);
        r = api("PUT", "/workers/scripts/w/secrets", "{\"name\":\"\",\"text\":\"x\"}");
        ck_assert_error(r, 400, 10021);
}
END_TEST

START_TEST(test_settings_and_script_settings) {
        static const char form[] =
                "--s\r\nContent-Disposition: form-data; name=\"settings\"\r\nContent-Type: application/json\r\n\r\n"
                "{\"compatibility_date\":\"2025-06-01\",\"bindings\":[{\"name\":\"API_KEY\",\"type\":\"secret_text\"},"
                "{\"name\":\"NEWVAR\",\"type\":\"plain_text\",\"text\":\"nv\"}],\"logpush\":true}\r\n--s--\r\n";
        char path[256], etag[80], sha[80];
        Resp *r;
        const char *p;

        reset_seeded();
        r = upload("w", NULL, META_BINDINGS, "index.js", CODE);
        snprintf(etag, sizeof(etag), "%s", jstr(r->json, "result.etag"));
        r = op("GET", "/__sim/state", NULL);
        p = strstr(r->body, "sha256:");
        ck_assert_ptr_nonnull(p);
        snprintf(sha, sizeof(sha), "%.71s", p);

        snprintf(path, sizeof(path), "/client/v4/accounts/%s/workers/scripts/w/settings", SIM_TEST_ACCOUNT);
        r = sim_call("PATCH", path, "multipart/form-data; boundary=s", form, strlen(form), NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.compatibility_date"), "2025-06-01");
        ck_assert(json_object_get_boolean(jpath(r->json, "result.logpush")));
        ck_assert_ptr_nonnull(jfind(jpath(r->json, "result.bindings"), "name", "NEWVAR"));
        ck_assert_ptr_nonnull(jfind(jpath(r->json, "result.bindings"), "name", "API_KEY"));
        ck_assert_ptr_null(jfind(jpath(r->json, "result.bindings"), "name", "GREETING"));
        /* The secret named without text kept its value. */
        r = op("GET", "/__sim/state", NULL);
        ck_assert(strstr(r->body, sha) != NULL);
        r = api("GET", "/workers/scripts", NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.etag"), etag);
        ck_assert_str_eq(jstr(r->json, "result.0.compatibility_date"), "2025-06-01");
        r = api("GET", "/workers/scripts/w/deployments", NULL);
        ck_assert_uint_eq(jlen(r->json, "result.deployments"), 2);

        /* wrangler secret bulk: every binding named with its value left
         * out keeps its value; a new secret is added. */
        {
                static const char bulk[] =
                        "--s\r\nContent-Disposition: form-data; name=\"settings\"\r\n\r\n"
                        "{\"bindings\":[{\"name\":\"NEWVAR\",\"type\":\"plain_text\"},{\"name\":\"API_KEY\",\"type\":\"secret_text\"},"
                        "{\"name\":\"ADDED\",\"type\":\"secret_text\",\"text\":\"new\"}]}\r\n--s--\r\n";
                static const char wrong[] =
                        "--s\r\nContent-Disposition: form-data; name=\"settings\"\r\n\r\n"
                        "{\"bindings\":[{\"name\":\"NEWVAR\",\"type\":\"kv_namespace\"}]}\r\n--s--\r\n";

                r = sim_call("PATCH", path, "multipart/form-data; boundary=s", bulk, strlen(bulk), NULL);
                ck_assert_ok(r);
                ck_assert_str_eq(jstr(jfind(jpath(r->json, "result.bindings"), "name", "NEWVAR"), "text"), "nv");
                ck_assert_uint_eq(jlen(r->json, "result.bindings"), 3);
                r = sim_call("PATCH", path, "multipart/form-data; boundary=s", wrong, strlen(wrong), NULL);
                ck_assert_error(r, 400, 10021);
        }
        r = sim_call("PATCH", path, "multipart/form-data; boundary=s", "--s\r\n\r\n--s--", strlen("--s\r\n\r\n--s--"), NULL);
        ck_assert_error(r, 400, 10021);

        /* script-settings: JSON, non-versioned. */
        r = api("PATCH", "/workers/scripts/w/script-settings", "{\"tags\":[\"team:a\",\"prod\"],\"observability\":{\"enabled\":true}}");
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.tags.0"), "team:a");
        r = api("GET", "/workers/scripts/w/script-settings", NULL);
        ck_assert_ok(r);
        ck_assert(json_object_get_boolean(jpath(r->json, "result.observability.enabled")));
        r = api("GET", "/workers/scripts/w/deployments", NULL);
        ck_assert_uint_eq(jlen(r->json, "result.deployments"), 3); /* script-settings made none */
        r = api("GET", "/workers/scripts", NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.tags.1"), "prod");
        r = api("GET", "/workers/scripts?tags=prod:yes", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        r = api("GET", "/workers/scripts?tags=prod:no", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);
        r = api("PATCH", "/workers/scripts/w/script-settings", "[1]");
        ck_assert_error(r, 400, 10021);
}
END_TEST

START_TEST(test_versions_and_deployments) {
        Resp *r;
        char v1[64], v2[64], body[256];

        reset_seeded();
        r = upload("w", NULL, META_BINDINGS, "index.js", CODE);
        snprintf(v1, sizeof(v1), "%s", jstr(r->json, "result.deployment_id"));

        /* wrangler's versions path: POST /versions does not deploy. */
        r = api("GET", "/workers/scripts/w/versions?page=1&per_page=10", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result.items"), 1);
        ck_assert_int_eq(jint(r->json, "result_info.total_count"), 1);

        /* Upload a version via POST .../versions (multipart, like PUT). */
        {
                static const char form[] =
                        "--v\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n"
                        "{\"main_module\":\"index.js\",\"bindings\":[{\"name\":\"CACHE\",\"type\":\"inherit\"}],"
                        "\"annotations\":{\"workers/message\":\"hello\"}}\r\n"
                        "--v\r\nContent-Disposition: form-data; name=\"index.js\"; filename=\"index.js\"\r\n"
                        "Content-Type: application/javascript+module\r\n\r\n" CODE2 "\r\n--v--\r\n";
                char path[256];

                snprintf(path, sizeof(path), "/client/v4/accounts/%s/workers/scripts/w/versions?bindings_inherit=strict",
                         SIM_TEST_ACCOUNT);
                r = sim_call("POST", path, "multipart/form-data; boundary=v", form, strlen(form), NULL);
                ck_assert_ok(r);
                ck_assert_ptr_nonnull(jstr(r->json, "result.id"));
                ck_assert_int_eq(strlen(jstr(r->json, "result.resources.script.etag")), 64);
                ck_assert_str_eq(jstr(r->json, "result.annotations.workers/message"), "hello");
                snprintf(v2, sizeof(v2), "%s", jstr(r->json, "result.id"));
                r = sim_call("POST", "/client/v4/accounts/" SIM_TEST_ACCOUNT "/workers/scripts/none/versions",
                             "multipart/form-data; boundary=v", form, strlen(form), NULL);
                ck_assert_error(r, 404, 10007);
        }
        /* Not deployed: settings and the list still show version 1. */
        r = api("GET", "/workers/scripts/w/settings", NULL);
        ck_assert_ptr_nonnull(jfind(jpath(r->json, "result.bindings"), "name", "GREETING"));
        r = api("GET", "/workers/scripts/w/content/v2", NULL);
        ck_assert_str_eq(r->body, CODE);
        /* A secret edit is refused while the latest version is not live. */
        r = api("PUT", "/workers/scripts/w/secrets", "{\"name\":\"X\",\"text\":\"y\",\"type\":\"secret_text\"}");
        ck_assert_error(r, 400, 10215);

        /* Version 2 has only CACHE (inherited) and the kept secret. */
        r = apif("GET", NULL, "/workers/scripts/w/versions/%s", v2);
        ck_assert_ok(r);
        ck_assert_int_eq(jint(r->json, "result.number"), 2);
        ck_assert_ptr_nonnull(jfind(jpath(r->json, "result.resources.bindings"), "name", "CACHE"));
        ck_assert_ptr_null(jfind(jpath(r->json, "result.resources.bindings"), "name", "GREETING"));
        ck_assert_ptr_null(jpath(jfind(jpath(r->json, "result.resources.bindings"), "name", "API_KEY"), "text"));
        r = api("GET", "/workers/scripts/w/versions/00000000-0000-4000-8000-000000000000", NULL);
        ck_assert_error(r, 404, 10007);

        /* Deploy it. */
        snprintf(body, sizeof(body), "{\"strategy\":\"percentage\",\"versions\":[{\"version_id\":\"%s\",\"percentage\":100}],\"annotations\":{}}", v2);
        r = api("POST", "/workers/scripts/w/deployments", body);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.versions.0.version_id"), v2);
        r = api("GET", "/workers/scripts/w/deployments", NULL);
        ck_assert_uint_eq(jlen(r->json, "result.deployments"), 2);
        ck_assert_str_eq(jstr(r->json, "result.deployments.0.versions.0.version_id"), v2);
        r = api("GET", "/workers/scripts/w/content/v2", NULL);
        ck_assert_str_eq(r->body, CODE2);
        r = api("GET", "/workers/scripts", NULL);
        ck_assert_ptr_nonnull(strstr(r->body, "scheduled"));
        ck_assert_ok(api("PUT", "/workers/scripts/w/secrets", "{\"name\":\"X\",\"text\":\"y\",\"type\":\"secret_text\"}"));

        /* Bad deployments. */
        r = api("POST", "/workers/scripts/w/deployments", "{\"versions\":[{\"version_id\":\"nope\",\"percentage\":100}]}");
        ck_assert_error(r, 400, 10021);
        snprintf(body, sizeof(body), "{\"versions\":[{\"version_id\":\"%s\",\"percentage\":50}]}", v1);
        r = api("POST", "/workers/scripts/w/deployments", body);
        ck_assert_error(r, 400, 10021);

        /* Page pagination of versions: 3 versions now (upload, version
         * upload, secret), newest first. */
        r = api("GET", "/workers/scripts/w/versions?page=2&per_page=2", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result.items"), 1);
        ck_assert_int_eq(jint(r->json, "result_info.total_count"), 3);
        ck_assert_int_eq(jint(r->json, "result.items.0.number"), 1);
        r = api("GET", "/workers/scripts/w/versions?page=9&per_page=3", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result.items"), 0);

        /* services: what wrangler reads on redeploy. */
        r = api("GET", "/workers/services/w", NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.default_environment.script.id"), "w");
        ck_assert_ptr_nonnull(jstr(r->json, "result.default_environment.script.last_deployed_from"));
}
END_TEST

START_TEST(test_migrations) {
        Resp *r;

        reset_seeded();
        r = upload("d", NULL,
                   "{\"main_module\":\"index.js\",\"bindings\":[{\"name\":\"C\",\"type\":\"durable_object_namespace\",\"class_name\":\"Counter\"}],"
                   "\"migrations\":{\"new_tag\":\"v1\",\"steps\":[{\"new_sqlite_classes\":[\"Counter\"]},{\"new_classes\":[\"Old\"]}]}}",
                   "index.js", CODE);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.migration_tag"), "v1");
        r = api("GET", "/workers/durable_objects/namespaces", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result"), 2);
        ck_assert(json_object_get_boolean(jpath(jfind(jpath(r->json, "result"), "class", "Counter"), "use_sqlite")));
        r = api("GET", "/workers/scripts/d/settings", NULL);
        ck_assert_int_eq(strlen(jstr(jfind(jpath(r->json, "result.bindings"), "name", "C"), "namespace_id")), 32);

        /* Sending the same migration again without old_tag: 10079. */
        r = upload("d", NULL, "{\"main_module\":\"index.js\",\"migrations\":{\"new_tag\":\"v1\",\"new_classes\":[\"X\"]}}", "index.js", CODE);
        ck_assert_error(r, 400, 10079);
        ck_assert_ptr_nonnull(strstr(r->body, "when expected tag is 'v1'"));
        r = upload("d", NULL, "{\"main_module\":\"index.js\",\"migrations\":{\"old_tag\":\"v0\",\"new_tag\":\"v2\"}}", "index.js", CODE);
        ck_assert_error(r, 400, 10079);

        /* Single-step form with the right old_tag: rename and delete. */
        r = upload("d", NULL,
                   "{\"main_module\":\"index.js\",\"migrations\":{\"old_tag\":\"v1\",\"new_tag\":\"v2\","
                   "\"renamed_classes\":[{\"from\":\"Counter\",\"to\":\"Tally\"}],\"deleted_classes\":[\"Old\"]}}",
                   "index.js", CODE);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.migration_tag"), "v2");
        r = api("GET", "/workers/durable_objects/namespaces", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        ck_assert_str_eq(jstr(r->json, "result.0.class"), "Tally");

        /* A failing migration changes nothing. */
        r = upload("d", NULL,
                   "{\"main_module\":\"index.js\",\"migrations\":{\"old_tag\":\"v2\",\"new_tag\":\"v3\","
                   "\"steps\":[{\"new_classes\":[\"Z\"]},{\"deleted_classes\":[\"Missing\"]}]}}",
                   "index.js", CODE);
        ck_assert_error(r, 400, 10021);
        r = api("GET", "/workers/durable_objects/namespaces", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 1);
        r = api("GET", "/workers/scripts", NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.migration_tag"), "v2");

        /* Transfer to another script. */
        r = upload("e", NULL,
                   "{\"main_module\":\"index.js\",\"migrations\":{\"new_tag\":\"t1\",\"transferred_classes\":[{\"from\":\"Tally\",\"from_script\":\"d\",\"to\":\"Tally\"}]}}",
                   "index.js", CODE);
        ck_assert_ok(r);
        r = api("GET", "/workers/durable_objects/namespaces", NULL);
        ck_assert_str_eq(jstr(r->json, "result.0.script"), "e");
}
END_TEST

START_TEST(test_delete_schedules_subdomain_content) {
        Resp *r;
        char etag[80];

        reset_seeded();
        r = upload("target", NULL,
                   "{\"main_module\":\"index.js\",\"migrations\":{\"new_tag\":\"v1\",\"new_classes\":[\"D\"]}}", "index.js", CODE);
        ck_assert_ok(r);
        snprintf(etag, sizeof(etag), "%s", jstr(r->json, "result.etag"));
        ck_assert_ok(upload("caller", NULL,
                            "{\"main_module\":\"index.js\",\"bindings\":[{\"name\":\"T\",\"type\":\"service\",\"service\":\"target\"}]}",
                            "index.js", CODE));

        /* Schedules. */
        r = api("GET", "/workers/scripts/target/schedules", NULL);
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result.schedules"), 0);
        r = api("PUT", "/workers/scripts/target/schedules", "[{\"cron\":\"*/5 * * * *\"},{\"cron\":\"0 0 * * MON\"}]");
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result.schedules"), 2);
        ck_assert_str_eq(jstr(r->json, "result.schedules.0.cron"), "*/5 * * * *");
        r = api("PUT", "/workers/scripts/target/schedules", "[{\"cron\":\"not a cron\"}]");
        ck_assert_status(r, 400);
        r = api("PUT", "/workers/scripts/target/schedules", "[]");
        ck_assert_ok(r);
        ck_assert_uint_eq(jlen(r->json, "result.schedules"), 0);

        /* workers.dev: per script and per account. */
        r = api("GET", "/workers/scripts/target/subdomain", NULL);
        ck_assert_ok(r);
        ck_assert(!json_object_get_boolean(jpath(r->json, "result.enabled")));
        r = api("POST", "/workers/scripts/target/subdomain", "{\"enabled\":true}");
        ck_assert_ok(r);
        ck_assert(json_object_get_boolean(jpath(r->json, "result.enabled")));
        ck_assert_ptr_nonnull(jpath(r->json, "result.previews_enabled"));
        r = api("DELETE", "/workers/scripts/target/subdomain", NULL);
        ck_assert_ok(r);
        ck_assert(!json_object_get_boolean(jpath(r->json, "result.enabled")));
        r = api("POST", "/workers/scripts/nope/subdomain", "{\"enabled\":true}");
        ck_assert_error(r, 404, 10007);
        r = api("GET", "/workers/subdomain", NULL);
        ck_assert_str_eq(jstr(r->json, "result.subdomain"), "cfsim");
        ck_assert_ok(api("PUT", "/workers/subdomain", "{\"subdomain\":\"my-team\"}"));
        r = api("GET", "/workers/subdomain", NULL);
        ck_assert_str_eq(jstr(r->json, "result.subdomain"), "my-team");
        ck_assert_status(api("PUT", "/workers/subdomain", "{\"subdomain\":\"BAD NAME\"}"), 400);
        ck_assert_ok(api("DELETE", "/workers/subdomain", NULL));
        ck_assert_error(api("GET", "/workers/subdomain", NULL), 404, 10007);

        /* Content: GET raw, PUT replaces code only (new etag, bindings kept). */
        r = api("GET", "/workers/scripts/target", NULL);
        ck_assert_status(r, 200);
        ck_assert_str_eq(r->body, CODE);
        {
                static const char form[] =
                        "--c\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"main_module\":\"main.js\"}\r\n"
                        "--c\r\nContent-Disposition: form-data; name=\"main.js\"; filename=\"main.js\"\r\n"
                        "Content-Type: application/javascript+module\r\n\r\n" CODE2 "\r\n--c--\r\n";

                r = sim_call("PUT", "/client/v4/accounts/" SIM_TEST_ACCOUNT "/workers/scripts/target/content",
                             "multipart/form-data; boundary=c", form, strlen(form), NULL);
                ck_assert_ok(r);
                ck_assert_str_ne(jstr(r->json, "result.etag"), etag);
        }
        r = api("GET", "/workers/scripts/target/content/v2", NULL);
        ck_assert_str_eq(r->body, CODE2);

        /* What wrangler delete reads first. */
        r = api("GET", "/workers/scripts/target/references", NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.services.incoming.0.service"), "caller");
        ck_assert_ptr_nonnull(jpath(r->json, "result.durable_objects"));
        ck_assert_ptr_nonnull(jpath(r->json, "result.dispatch_outbounds"));
        ck_assert_ok(api("PATCH", "/workers/scripts/caller/script-settings", "{\"tail_consumers\":[{\"service\":\"target\"}]}"));
        r = api("GET", "/workers/tails/by-consumer/target", NULL);
        ck_assert_ok(r);
        ck_assert_str_eq(jstr(r->json, "result.0.producer.script"), "caller");

        /* Delete: blocked by the service binding unless forced. */
        r = api("DELETE", "/workers/scripts/target", NULL);
        ck_assert_status(r, 400);
        ck_assert(json_object_get_boolean(jpath(r->json, "success")) == 0);
        r = api("DELETE", "/workers/scripts/target?force=true", NULL);
        ck_assert_ok(r);
        r = api("GET", "/workers/durable_objects/namespaces", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);
        ck_assert_error(api("DELETE", "/workers/scripts/target", NULL), 404, 10007);
        ck_assert_ok(api("DELETE", "/workers/services/caller?force=false", NULL));
        ck_assert_error(api("GET", "/workers/scripts/target", NULL), 404, 10007);
        r = api("GET", "/workers/scripts", NULL);
        ck_assert_uint_eq(jlen(r->json, "result"), 0);
}
END_TEST

START_TEST(test_bare_service_worker_and_placeholder) {
        Resp *r;
        char path[256];

        reset_seeded();
        snprintf(path, sizeof(path), "/client/v4/accounts/%s/workers/scripts/sw", SIM_TEST_ACCOUNT);
        r = sim_call("PUT", path, "application/javascript", "addEventListener('fetch', e => {})", 34, NULL);
        ck_assert_ok(r);
        ck_assert(!json_object_get_boolean(jpath(r->json, "result.has_modules")));
        /* wrangler's placeholder for `secret put` on a missing worker. */
        r = upload("brand-new", NULL, "{\"main_module\":\"brand-new\",\"bindings\":[],\"logpush\":false}", "brand-new",
                   "export default { fetch() {} }");
        ck_assert_ok(r);
        ck_assert_ok(api("PUT", "/workers/scripts/brand-new/secrets", "{\"name\":\"S\",\"text\":\"v\",\"type\":\"secret_text\"}"));
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("cfsim-workers");
        TCase *tc = tcase_create("workers");

        tcase_add_unchecked_fixture(tc, sim_test_fixture_start, sim_test_fixture_stop);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_upload_wrangler_form_and_list);
        tcase_add_test(tc, test_upload_sdk6_and_alchemy_forms);
        tcase_add_test(tc, test_upload_errors);
        tcase_add_test(tc, test_keep_bindings_and_secret_survival);
        tcase_add_test(tc, test_inherit);
        tcase_add_test(tc, test_secrets);
        tcase_add_test(tc, test_settings_and_script_settings);
        tcase_add_test(tc, test_versions_and_deployments);
        tcase_add_test(tc, test_migrations);
        tcase_add_test(tc, test_delete_schedules_subdomain_content);
        tcase_add_test(tc, test_bare_service_worker_and_placeholder);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return sim_test_run(suite());
}
