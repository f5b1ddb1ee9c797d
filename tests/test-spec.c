/* test-spec.c: the spec loader (bindery-spec(5)): one test per rule, the
 * canonical form, and the corpus in tests/spec/{bad,good}. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "binding-kinds.h"
#include "spec-yaml.h"
#include "spec.h"
#include "util.h"

static const char *srcdir(void) {
        const char *s = getenv("top_srcdir");

        return s ? s : ".";
}

/* ---- temp spec directories ---- */

static char *mkspec(void) {
        char *d = strdup("/tmp/test-spec.XXXXXX");

        ck_assert_ptr_nonnull(d);
        ck_assert_ptr_nonnull(mkdtemp(d));
        return d;
}

static void mkparents(const char *path) {
        _cleanup_free_ char *p = strdup(path);

        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = 0;
                (void) mkdir(p, 0755);
                *s = '/';
        }
}

static void put(const char *dir, const char *rel, const char *content) {
        _cleanup_free_ char *p = path_join(dir, rel);
        FILE *f;

        mkparents(p);
        f = fopen(p, "we");
        ck_assert_ptr_nonnull(f);
        fputs(content, f);
        ck_assert_int_eq(fclose(f), 0);
}

static void rm_rf(const char *dir) {
        _cleanup_free_ char *cmd = NULL;

        ck_assert_int_ge(asprintf(&cmd, "rm -rf '%s'", dir), 0);
        ck_assert_int_eq(system(cmd), 0);
}

/* Loads dir; returns "OK <digest>" or the error lines joined by '\n'. */
static char *load_dir(const char *dir, const SpecLimits *limits, Generation **ret) {
        _cleanup_(generation_freep) Generation *g = NULL;
        SpecErrors e = {};
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        int r;

        ck_assert_ptr_nonnull(f);
        r = spec_load_with_limits(dir, limits ?: &spec_limits_default, &g, &e);
        if (r == 0) {
                ck_assert_uint_eq(e.n, 0);
                fprintf(f, "OK %s", g->digest);
        } else {
                ck_assert_int_lt(r, 0);
                for (size_t i = 0; i < e.n; i++) {
                        _cleanup_free_ char *s = spec_error_to_string(&e.errors[i]);

                        fprintf(f, "%s%s", i ? "\n" : "", s);
                }
                if (e.n_dropped)
                        fprintf(f, "\n+%zu", e.n_dropped);
        }
        fclose(f);
        spec_errors_done(&e);
        if (ret)
                *ret = TAKE_PTR(g);
        return out;
}

/* files: path, content, path, content, ..., NULL. Every directory gets a
 * small module at w.js so Workers can say `main: w.js`. */
static char *load_files(const char *const *files, Generation **ret) {
        _cleanup_free_ char *d = mkspec();
        char *out;

        put(d, "w.js", "export default {};\n");
        for (size_t i = 0; files[i]; i += 2)
                put(d, files[i], files[i + 1]);
        out = load_dir(d, NULL, ret);
        rm_rf(d);
        return out;
}

static char *load1(const char *yaml) {
        return load_files((const char *const[]) { "spec.yaml", yaml, NULL }, NULL);
}

#define W "kind: Worker\nname: w\nmain: w.js\ncompatibility_date: \"2025-01-01\"\n"

#define assert_load(yaml, expected)                                     \
        do {                                                            \
                _cleanup_free_ char *_o = load1(yaml);                  \
                ck_assert_str_eq(_o, (expected));                       \
        } while (0)

#define assert_ok(yaml)                                                 \
        do {                                                            \
                _cleanup_free_ char *_o = load1(yaml);                  \
                ck_assert_msg(startswith(_o, "OK "), "not OK: %s", _o); \
        } while (0)

/* ---- YAML layer ---- */

START_TEST(test_yaml_tree) {
        static const char text[] = "a: 1\nb: [x, 'y', \"z\"]\nc: {d: ~}\n---\n- q\n";
        SpecYamlLimits l = { .max_depth = 8, .max_nodes = 100, .max_documents = 10 };
        SpecYamlErrors e = {};
        SpecNode **docs = NULL;
        const SpecNode *v, *k;
        size_t n = 0;
        int64_t i;

        ck_assert_int_eq(spec_yaml_parse(text, sizeof(text) - 1, &l, &docs, &n, &e), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(docs[0]->type, SPEC_NODE_MAPPING);
        ck_assert_uint_eq(docs[0]->n_items, 3);
        v = spec_node_get(docs[0], "a", &k);
        ck_assert_ptr_nonnull(v);
        ck_assert_int_eq(spec_node_int(v, &i), 0);
        ck_assert_int_eq(i, 1);
        ck_assert_uint_eq(k->line, 1);
        ck_assert_uint_eq(k->column, 1);
        v = spec_node_get(docs[0], "b", NULL);
        ck_assert_uint_eq(v->n_items, 3);
        ck_assert(v->items[0]->plain);
        ck_assert(!v->items[1]->plain);
        ck_assert_uint_eq(v->items[2]->line, 2);
        ck_assert_uint_eq(v->items[2]->column, 13);
        v = spec_node_get(spec_node_get(docs[0], "c", NULL), "d", NULL);
        ck_assert(spec_node_is_null(v));
        ck_assert_int_eq(docs[1]->type, SPEC_NODE_SEQUENCE);
        spec_yaml_documents_free(docs, n);
        spec_yaml_errors_done(&e);
}
END_TEST

/* One document at a time: the same documents, in order, each freed
 * after its call; the same errors; each's error stops the parse. */
typedef struct EachSeen {
        unsigned n, nulls, stop_at;
        SpecNodeType types[4];
} EachSeen;

static int each_seen(const SpecNode *doc, void *userdata) {
        EachSeen *s = userdata;

        if (spec_node_is_null(doc))
                s->nulls++;
        else if (s->n < 4)
                s->types[s->n] = doc->type;
        s->n++;
        return s->stop_at > 0 && s->n == s->stop_at ? -ECANCELED : 0;
}

START_TEST(test_yaml_each) {
        static const char text[] = "a: 1\n---\n---\n- q\n---\nb: [x]\n";
        SpecYamlLimits l = { .max_depth = 8, .max_nodes = 100, .max_documents = 10 };
        SpecYamlErrors e = {};
        EachSeen s = {};

        ck_assert_int_eq(spec_yaml_parse_each(text, sizeof(text) - 1, &l, each_seen, &s, &e), 0);
        ck_assert_uint_eq(e.n, 0);
        ck_assert_uint_eq(s.n, 4);
        ck_assert_uint_eq(s.nulls, 1);
        ck_assert_int_eq(s.types[0], SPEC_NODE_MAPPING);
        ck_assert_int_eq(s.types[2], SPEC_NODE_SEQUENCE);
        ck_assert_int_eq(s.types[3], SPEC_NODE_MAPPING);
        ck_assert_int_eq(spec_yaml_parse_each(text, sizeof(text) - 1, &l, NULL, NULL, &e), 0);

        s = (EachSeen) { .stop_at = 2 };
        ck_assert_int_eq(spec_yaml_parse_each(text, sizeof(text) - 1, &l, each_seen, &s, &e), -ECANCELED);
        ck_assert_uint_eq(s.n, 2);

        /* A later error: reported as spec_yaml_parse reports it, after the
         * documents before it were handed over. */
        s = (EachSeen) {};
        ck_assert_int_eq(spec_yaml_parse_each("a: 1\n---\nb: 1\nb: 2\n", 19, &l, each_seen, &s, &e), -EINVAL);
        ck_assert_uint_eq(e.n, 1);
        ck_assert_str_eq(e.errors[0].message, "duplicate key 'b' (first at line 3)");
        ck_assert_uint_eq(s.n, 2);
        spec_yaml_errors_done(&e);
        ck_assert_int_eq(spec_yaml_parse_each("a\n---\nb\n---\nc\n", 14, &(SpecYamlLimits) {
                .max_depth = 8, .max_nodes = 100, .max_documents = 2 }, NULL, NULL, &e), -EINVAL);
        ck_assert_str_eq(e.errors[0].message, "too many documents in one file (limit 2)");
        spec_yaml_errors_done(&e);

        /* The spec load parses a file one document at a time only once it
         * is known to have no YAML error: a later syntax error leaves the
         * earlier documents unread (no "unknown kind" here). */
        {
                _cleanup_free_ char *o = load1("kind: Nope\nname: x\n---\nkind: Worker\nname: [1\n");

                ck_assert_ptr_null(strstr(o, "unknown kind"));
                ck_assert_ptr_nonnull(strstr(o, "syntax error"));
        }
}
END_TEST

START_TEST(test_yaml_errors) {
        SpecYamlLimits l = { .max_depth = 3, .max_nodes = 100, .max_documents = 2 };
        SpecYamlErrors e = {};
        SpecNode **docs = NULL;
        size_t n = 0;

        ck_assert_int_eq(spec_yaml_parse("a: [1, 2\n", 9, &l, &docs, &n, &e), -EINVAL);
        ck_assert_uint_eq(e.n, 1);
        ck_assert(startswith(e.errors[0].message, "syntax error:"));
        spec_yaml_errors_done(&e);

        ck_assert_int_eq(spec_yaml_parse("a: 1\na: 2\nb: 1\nb: 3\n", 20, &l, &docs, &n, &e), -EINVAL);
        ck_assert_uint_eq(e.n, 2);
        ck_assert_str_eq(e.errors[0].message, "duplicate key 'a' (first at line 1)");
        ck_assert_uint_eq(e.errors[0].line, 2);
        spec_yaml_errors_done(&e);

        ck_assert_int_eq(spec_yaml_parse("a: &x 1\nb: *x\n", 14, &l, &docs, &n, &e), -EINVAL);
        ck_assert_str_eq(e.errors[0].message, "YAML aliases are not supported");
        spec_yaml_errors_done(&e);

        ck_assert_int_eq(spec_yaml_parse("a: [[[[1]]]]\n", 13, &l, &docs, &n, &e), -EINVAL);
        ck_assert_str_eq(e.errors[0].message, "nesting deeper than 3 levels");
        spec_yaml_errors_done(&e);

        ck_assert_int_eq(spec_yaml_parse("a\n---\nb\n---\nc\n", 14, &l, &docs, &n, &e), -EINVAL);
        ck_assert_str_eq(e.errors[0].message, "too many documents in one file (limit 2)");
        spec_yaml_errors_done(&e);

        ck_assert_int_eq(spec_yaml_parse("a: !!binary eA==\n", 17, &l, &docs, &n, &e), -EINVAL);
        ck_assert_str_eq(e.errors[0].message, "YAML tag 'tag:yaml.org,2002:binary' is not supported");
        spec_yaml_errors_done(&e);

        ck_assert_int_eq(spec_yaml_parse("a: \"x\\0y\"\n", 10, &l, &docs, &n, &e), -EINVAL);
        ck_assert_str_eq(e.errors[0].message, "strings must not contain NUL characters");
        spec_yaml_errors_done(&e);

        ck_assert_int_eq(spec_yaml_parse("a: \xff\n", 5, &l, &docs, &n, &e), -EINVAL);
        ck_assert(startswith(e.errors[0].message, "invalid text:"));
        spec_yaml_errors_done(&e);

        ck_assert_int_eq(spec_yaml_parse("[a]: 1\n", 7, &l, &docs, &n, &e), -EINVAL);
        ck_assert_str_eq(e.errors[0].message, "mapping keys must be scalars");
        spec_yaml_errors_done(&e);
}
END_TEST

START_TEST(test_yaml_scalars) {
        SpecNode n = { .type = SPEC_NODE_SCALAR, .plain = true };
        int64_t i;
        double d;

        n.value = (char *) "true";
        ck_assert_int_eq(spec_node_bool(&n), 1);
        n.value = (char *) "False";
        ck_assert_int_eq(spec_node_bool(&n), 0);
        n.value = (char *) "yes";
        n.length = 3;
        ck_assert_int_eq(spec_node_bool(&n), -EINVAL);
        ck_assert_str_eq(spec_node_describe(&n), "a string");
        n.value = (char *) "-42";
        ck_assert_int_eq(spec_node_int(&n, &i), 0);
        ck_assert_int_eq(i, -42);
        n.value = (char *) "99999999999999999999";
        ck_assert_int_eq(spec_node_int(&n, &i), -ERANGE);
        n.value = (char *) "1.5e3";
        ck_assert_int_eq(spec_node_int(&n, &i), -EINVAL);
        ck_assert_int_eq(spec_node_double(&n, &d), 0);
        ck_assert(d == 1500.0);
        ck_assert_str_eq(spec_node_describe(&n), "a number");
        n.value = (char *) "1.2.3";
        ck_assert_int_eq(spec_node_double(&n, &d), -EINVAL);
        n.value = (char *) "~";
        n.length = 1;
        ck_assert(spec_node_is_null(&n));
        n.plain = false;
        ck_assert(!spec_node_is_null(&n));
        n.value = (char *) "true";
        ck_assert_int_eq(spec_node_bool(&n), -EINVAL);
}
END_TEST

/* ---- rule functions ---- */

START_TEST(test_edit_distance) {
        ck_assert_uint_eq(edit_distance("title", "title"), 0);
        ck_assert_uint_eq(edit_distance("titel", "title"), 1);
        ck_assert_uint_eq(edit_distance("bindngs", "bindings"), 1);
        ck_assert_uint_eq(edit_distance("", "abc"), 3);
        ck_assert_uint_eq(edit_distance("kitten", "sitting"), 3);
}
END_TEST

START_TEST(test_cron) {
        const char *why = NULL;

        ck_assert(spec_valid_cron("* * * * *", NULL));
        ck_assert(spec_valid_cron("*/15 0-6,18-23 1 JAN-jun mon-FRI", NULL));
        ck_assert(spec_valid_cron("0 3 * * 7", NULL));
        ck_assert(spec_valid_cron("5/10 * * * *", NULL));
        ck_assert(spec_valid_cron("  0   3 * * *  ", NULL));
        ck_assert(!spec_valid_cron("* * * *", &why));
        ck_assert_str_eq(why, "expected 5 fields (minute hour day-of-month month day-of-week)");
        ck_assert(!spec_valid_cron("* * * * * *", &why));
        ck_assert(!spec_valid_cron("60 * * * *", &why));
        ck_assert_str_eq(why, "bad minute field (0-59)");
        ck_assert(!spec_valid_cron("* 24 * * *", &why));
        ck_assert_str_eq(why, "bad hour field (0-23)");
        ck_assert(!spec_valid_cron("* * 0 * *", &why));
        ck_assert_str_eq(why, "bad day-of-month field (1-31)");
        ck_assert(!spec_valid_cron("* * * 13 *", &why));
        ck_assert_str_eq(why, "bad month field (1-12 or JAN-DEC)");
        ck_assert(!spec_valid_cron("* * * * FUN", &why));
        ck_assert_str_eq(why, "bad day-of-week field (0-7 or SUN-SAT)");
        ck_assert(!spec_valid_cron("*/0 * * * *", NULL));
        ck_assert(!spec_valid_cron("*/61 * * * *", NULL));
        ck_assert(!spec_valid_cron("5-1 * * * *", NULL));
        ck_assert(!spec_valid_cron("1,,2 * * * *", NULL));
        ck_assert(!spec_valid_cron("1, * * * *", NULL));
        ck_assert(!spec_valid_cron("a * * * *", NULL));
        ck_assert(!spec_valid_cron("", NULL));
}
END_TEST

START_TEST(test_compat_date) {
        const char *why = NULL;

        ck_assert(spec_valid_compat_date("2025-06-01", time(NULL), NULL));
        ck_assert(spec_valid_compat_date("2024-02-29", time(NULL), NULL));
        ck_assert(!spec_valid_compat_date("2023-02-29", time(NULL), &why));
        ck_assert_str_eq(why, "no such date");
        ck_assert(!spec_valid_compat_date("2025-6-1", time(NULL), &why));
        ck_assert_str_eq(why, "expected YYYY-MM-DD");
        ck_assert(!spec_valid_compat_date("2025-04-31", time(NULL), NULL));
        ck_assert(!spec_valid_compat_date("2099-01-01", time(NULL), &why));
        ck_assert_str_eq(why, "in the future");
        ck_assert(!spec_valid_compat_date("2001-01-01", time(NULL), &why));
}
END_TEST

/* The validator's clock is injected: SpecLimits.now (2030-06-01 here)
 * decides what "in the future" means, one day of slack for time zones. */
START_TEST(test_compat_date_clock) {
        SpecLimits l = spec_limits_default;
        _cleanup_free_ char *d = mkspec(), *ok = NULL, *bad = NULL;
        const char *why = NULL;

        l.now = 1906502400;
        ck_assert(spec_valid_compat_date("2030-06-02", l.now, NULL));
        ck_assert(!spec_valid_compat_date("2030-06-03", l.now, &why));
        ck_assert_str_eq(why, "in the future");
        ck_assert(spec_valid_compat_date("2030-06-03", l.now + 86400, NULL));

        put(d, "w.js", "export default {};\n");
        put(d, "spec.yaml", "kind: Worker\nname: w\nmain: w.js\ncompatibility_date: \"2030-06-02\"\n");
        ok = load_dir(d, &l, NULL);
        ck_assert_msg(startswith(ok, "OK "), "%s", ok);
        put(d, "spec.yaml", "kind: Worker\nname: w\nmain: w.js\ncompatibility_date: \"2030-06-03\"\n");
        bad = load_dir(d, &l, NULL);
        ck_assert_str_eq(bad, "spec.yaml:4:21: invalid compatibility_date '2030-06-03': in the future");
        rm_rf(d);
}
END_TEST

/* The binding-kind table: one row per kind, in enum order, with unique
 * spec keys and Cloudflare types; every reference names a document kind
 * and checks its direct id; mapping forms list their keys. */
START_TEST(test_binding_kinds) {
        const char *keys[_BINDING_KIND_MAX + 1];

        binding_spec_keys(keys);
        ck_assert_ptr_null(keys[_BINDING_KIND_MAX]);
        ck_assert_ptr_null(binding_kind_info(_BINDING_KIND_MAX));
        ck_assert_ptr_null(binding_kind_info(_BINDING_KIND_INVALID));
        for (BindingKind k = 0; k < _BINDING_KIND_MAX; k++) {
                const BindingKindInfo *i = binding_kind_info(k);

                ck_assert_ptr_nonnull(i);
                ck_assert_int_eq(i->kind, k);
                ck_assert_ptr_nonnull(i->spec_key);
                ck_assert_ptr_nonnull(i->api_type);
                ck_assert_str_eq(keys[k], i->spec_key);
                ck_assert_int_eq(binding_kind_from_spec_key(i->spec_key), k);
                ck_assert_int_eq(binding_kind_from_api_type(i->api_type), k);
                ck_assert_int_eq(binding_kind_target(k), i->target);
                if (i->form == BINDING_FORM_REFERENCE) {
                        ck_assert_int_ge(i->target, 0);
                        ck_assert_ptr_nonnull(i->valid_id);
                        ck_assert_ptr_nonnull(i->fields[0].api);
                        ck_assert_uint_eq(i->fields[0].from, BINDING_FROM_RESOLVED);
                }
                if (i->form >= BINDING_FORM_REFERENCE)
                        ck_assert_ptr_nonnull(i->keys);
                if (i->by_name)
                        ck_assert_int_eq(i->form, BINDING_FORM_REFERENCE);
                if (k != BINDING_PLAIN_TEXT && k != BINDING_JSON)
                        ck_assert_ptr_nonnull(i->ts_type);
        }
        ck_assert_int_eq(binding_kind_from_spec_key("kv"), _BINDING_KIND_INVALID);
        ck_assert_int_eq(binding_kind_from_spec_key(NULL), _BINDING_KIND_INVALID);
        ck_assert_int_eq(binding_kind_target(BINDING_D1), RESOURCE_D1_DATABASE);
        ck_assert_int_eq(binding_kind_target(BINDING_HYPERDRIVE), _RESOURCE_KIND_INVALID);
        ck_assert(binding_valid_hex32("0123456789abcdef0123456789ABCDEF"));
        ck_assert(!binding_valid_hex32("0123456789abcdef0123456789abcdeg"));
        ck_assert(binding_valid_uuid("01234567-89ab-cdef-0123-456789abcdef"));
        ck_assert(!binding_valid_uuid("0123456789ab-cdef-0123-456789abcdef-"));
}
END_TEST

START_TEST(test_names) {
        ck_assert(spec_valid_js_identifier("API_KEY"));
        ck_assert(spec_valid_js_identifier("$x"));
        ck_assert(spec_valid_js_identifier("_"));
        ck_assert(!spec_valid_js_identifier("1A"));
        ck_assert(!spec_valid_js_identifier("A-B"));
        ck_assert(!spec_valid_js_identifier("class"));
        ck_assert(!spec_valid_js_identifier(""));

        ck_assert(spec_valid_script_name("api"));
        ck_assert(spec_valid_script_name("jobs_consumer-2"));
        ck_assert(!spec_valid_script_name("Api"));
        ck_assert(!spec_valid_script_name("-api"));
        ck_assert(!spec_valid_script_name("api-"));
        ck_assert(!spec_valid_script_name("a.b"));
        ck_assert(!spec_valid_script_name("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));

        ck_assert(spec_valid_bucket_name("abc"));
        ck_assert(spec_valid_bucket_name("my-bucket-1"));
        ck_assert(!spec_valid_bucket_name("ab"));
        ck_assert(!spec_valid_bucket_name("My-bucket"));
        ck_assert(!spec_valid_bucket_name("my_bucket"));
        ck_assert(!spec_valid_bucket_name("-abc"));
        ck_assert(!spec_valid_bucket_name("abc-"));

        ck_assert(spec_valid_queue_name("jobs"));
        ck_assert(spec_valid_queue_name("jobs_dlq-1"));
        ck_assert(!spec_valid_queue_name("Jobs"));
        ck_assert(!spec_valid_queue_name(""));

        ck_assert(spec_valid_kv_title("api sessions (prod)"));
        ck_assert(!spec_valid_kv_title(""));
        ck_assert(!spec_valid_kv_title("a\tb"));
}
END_TEST

/* ---- documents ---- */

START_TEST(test_minimal_worker) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_free_ char *o = load_files((const char *const[]) { "spec.yaml", W, NULL }, &g);
        const Worker *w;

        ck_assert(startswith(o, "OK "));
        ck_assert_uint_eq(g->n_workers, 1);
        w = generation_find_worker(g, "w");
        ck_assert_ptr_nonnull(w);
        ck_assert_str_eq(w->main_module, "w.js");
        ck_assert_uint_eq(w->n_modules, 1);
        ck_assert_int_eq(w->modules[0].type, MODULE_ESM);
        ck_assert_uint_eq(w->modules[0].size, 19);
        ck_assert_int_eq(w->workers_dev, -1);
        ck_assert_int_eq(w->policy.deletion, DELETION_DELETE);
        ck_assert_int_eq(w->policy.drift, DRIFT_REPAIR);
        ck_assert_uint_eq(strlen(w->digest), 64);
        ck_assert_uint_eq(strlen(g->digest), 64);
        ck_assert_str_eq(g->files[0], "spec.yaml");
        ck_assert_ptr_eq(w->loc.file, g->files[0]);
        ck_assert_uint_eq(w->loc.line, 2);
        ck_assert_uint_eq(w->loc.column, 7);
}
END_TEST

START_TEST(test_every_binding) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_free_ char *o = NULL;
        const Worker *w;
        const Binding *b;

        o = load_files((const char *const[]) {
                "res.yaml",
                "kind: KVNamespace\nname: kv\n---\nkind: R2Bucket\nname: bucket\n---\n"
                "kind: D1Database\nname: db\n---\nkind: Queue\nname: q\n---\n"
                "kind: SecretsStore\nname: main\ndefault: true\nmanaged: true\n---\n"
                "kind: SecretsStoreSecret\nname: tok\nvalue: {env: TOK}\n",
                "spec.yaml",
                W "durable_objects:\n  classes: [C]\n  migrations:\n    - {tag: v1, new_sqlite_classes: [C]}\n"
                "bindings:\n"
                "  T: hello\n  T2: {text: 42}\n  J: {json: {b: [1, true, null], a: x}}\n"
                "  S: {secret: {credential: k}}\n  S2: {secret: {file: sec/x}}\n  S3: {secret: {env: X_1}}\n"
                "  K: {kv_namespace: kv}\n  K2: {kv_namespace: {id: 0123456789abcdef0123456789abcdef}}\n"
                "  R: {r2_bucket: bucket}\n  R2: {r2_bucket: {name: other-b, jurisdiction: eu}}\n"
                "  D: {d1: db}\n  D2: {d1: {id: 01234567-89ab-cdef-0123-456789abcdef}}\n"
                "  DO: {durable_object: {class_name: C}}\n"
                "  DO2: {durable_object: {class_name: X, script: other, environment: prod}}\n"
                "  Q: {queue: q}\n  Q2: {queue: {name: ext-q}}\n"
                "  SV: {service: auth}\n  SV2: {service: {service: auth, entrypoint: Rpc, environment: e}}\n"
                "  SS: {secrets_store: {secret: tok}}\n  SS2: {secrets_store: {store: main, secret: other}}\n"
                "  AE: {analytics_engine: {dataset: ds}}\n  AI: {ai: {}}\n  VM: {version_metadata: {}}\n"
                "  HD: {hyperdrive: {id: 0123456789abcdef0123456789abcdef}}\n"
                "  VX: {vectorize: {index_name: idx}}\n  BR: {browser: {}}\n"
                "  WF: {workflow: {name: flow, class_name: Flow, script: other}}\n",
                NULL }, &g);
        /* SS2 names a secret the managed store does not declare. */
        ck_assert_str_eq(o, "spec.yaml:29:3: binding 'SS2': SecretsStore 'main' is managed by bindery but "
                            "declares no secret 'other' (add a SecretsStoreSecret)");
        free(o);
        o = load_files((const char *const[]) {
                "res.yaml",
                "kind: KVNamespace\nname: kv\n---\nkind: SecretsStore\nname: main\ndefault: true\n",
                "spec.yaml",
                W "bindings:\n  Z: {kv_namespace: kv}\n  T: hello\n  J: {json: {b: [1, true, null], a: x}}\n"
                "  S2: {secret: {file: sec/x}}\n  SS: {secrets_store: {secret: tok}}\n"
                "  DO2: {durable_object: {class_name: X, script: other}}\n",
                NULL }, &g);
        ck_assert_msg(startswith(o, "OK "), "%s", o);
        w = &g->workers[0];
        ck_assert_uint_eq(w->n_bindings, 6);
        /* sorted by name */
        ck_assert_str_eq(w->bindings[0].name, "DO2");
        ck_assert_str_eq(w->bindings[5].name, "Z");
        b = &w->bindings[1];
        ck_assert_str_eq(b->name, "J");
        ck_assert_int_eq(b->kind, BINDING_JSON);
        ck_assert_str_eq(b->json, "{\"a\":\"x\",\"b\":[1,true,null]}");
        b = &w->bindings[2];
        ck_assert_int_eq(b->kind, BINDING_SECRET);
        ck_assert_int_eq(b->secret.source, SECRET_SOURCE_FILE);
        ck_assert(endswith(b->secret.ref, "/sec/x"));
        ck_assert(b->secret.ref[0] == '/');
        b = &w->bindings[3];
        ck_assert_int_eq(b->kind, BINDING_SECRETS_STORE_SECRET);
        ck_assert_str_eq(b->store, "main"); /* the default store, resolved */
        ck_assert_str_eq(b->secret_name, "tok");
        ck_assert_ptr_null(b->target);
        b = &w->bindings[4];
        ck_assert_int_eq(b->kind, BINDING_PLAIN_TEXT);
        ck_assert_str_eq(b->text, "hello");
        ck_assert_ptr_nonnull(g->default_store);
        ck_assert_str_eq(g->default_store->name, "main");
        ck_assert(g->default_store->policy.external);
}
END_TEST

START_TEST(test_resources) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_free_ char *o = NULL;

        o = load_files((const char *const[]) {
                "r.yaml",
                "kind: KVNamespace\nname: kv\ntitle: My KV\nadopt: true\ndrift: report\n---\n"
                "kind: KVNamespace\nname: ext\nexternal: true\nid: 0123456789abcdef0123456789abcdef\n---\n"
                "kind: R2Bucket\nname: b\nbucket_name: my-bucket\njurisdiction: eu\nlocation_hint: weur\n"
                "storage_class: InfrequentAccess\ndeletion_policy: delete\n---\n"
                "kind: D1Database\nname: db\nlocation_hint: enam\nsuspend: true\n---\n"
                "kind: Queue\nname: q\ndelivery_delay: 30\nmessage_retention_period: 3600\n---\n"
                "kind: SecretsStore\nname: s\nmanaged: true\n---\n"
                "kind: SecretsStoreSecret\nname: x\nstore: s\nsecret_name: X_1\nvalue: {credential: x}\n"
                "scopes: [workers, ai_gateway, workers]\ncomment: hi\n",
                NULL }, &g);
        ck_assert_msg(startswith(o, "OK "), "%s", o);
        ck_assert_uint_eq(g->n_kv_namespaces, 2);
        ck_assert_str_eq(g->kv_namespaces[0].name, "ext");
        ck_assert(g->kv_namespaces[0].policy.external);
        ck_assert_str_eq(g->kv_namespaces[0].title, "ext");
        ck_assert_str_eq(g->kv_namespaces[1].title, "My KV");
        ck_assert(g->kv_namespaces[1].policy.adopt);
        ck_assert_int_eq(g->kv_namespaces[1].policy.drift, DRIFT_REPORT);
        ck_assert_int_eq(g->kv_namespaces[1].policy.deletion, DELETION_RETAIN);
        ck_assert(!g->kv_namespaces[1].policy.deletion_explicit);
        ck_assert_str_eq(g->r2_buckets[0].bucket_name, "my-bucket");
        ck_assert_str_eq(g->r2_buckets[0].jurisdiction, "eu");
        ck_assert_str_eq(g->r2_buckets[0].storage_class, "InfrequentAccess");
        ck_assert_int_eq(g->r2_buckets[0].policy.deletion, DELETION_DELETE);
        ck_assert(g->r2_buckets[0].policy.deletion_explicit);
        ck_assert_str_eq(g->d1_databases[0].database_name, "db");
        ck_assert(g->d1_databases[0].policy.suspend);
        ck_assert_int_eq(g->queues[0].delivery_delay, 30);
        ck_assert_int_eq(g->queues[0].message_retention_period, 3600);
        ck_assert(!g->secrets_stores[0].policy.external);
        ck_assert_ptr_null(g->default_store);
        ck_assert_str_eq(g->secrets_store_secrets[0].store, "s");
        ck_assert_str_eq(g->secrets_store_secrets[0].secret_name, "X_1");
        ck_assert_int_eq(g->secrets_store_secrets[0].value.source, SECRET_SOURCE_CREDENTIAL);
        ck_assert_str_eq(g->secrets_store_secrets[0].value.ref, "x");
        ck_assert_uint_eq(strv_length(g->secrets_store_secrets[0].scopes), 2);
        ck_assert_str_eq(g->secrets_store_secrets[0].scopes[0], "ai_gateway");
}
END_TEST

START_TEST(test_worker_fields) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_free_ char *o = NULL;
        const Worker *w;

        o = load_files((const char *const[]) {
                "q.yaml", "kind: Queue\nname: jobs\n---\nkind: Queue\nname: dlq\n",
                "src/lib/b.js", "export const b = 1;\n",
                "src/a.wasm", "\0asm",
                "src/data.bin", "x",
                "src/t.txt", "t",
                "src/m.cjs", "module.exports = 1;\n",
                "src/main.mjs", "export default {};\n",
                "sub/w.yaml",
                "kind: Worker\nname: w\nmain: ../src/main.mjs\n"
                "modules: [../src/lib/b.js, ../src/a.wasm, {path: ../src/data.bin}, ../src/t.txt, "
                "../src/m.cjs, {path: ../src/t.txt2, type: text}]\n"
                "compatibility_date: \"2025-01-01\"\ncompatibility_flags: [nodejs_compat, a_flag, nodejs_compat]\n"
                "crons: [\"0  3 * * mon\", \"*/5 * * * *\", \"0 3 * * MON\"]\nworkers_dev: false\n"
                "tags: [b, a, b]\nlogpush: true\n"
                "observability: {enabled: true, head_sampling_rate: 0.25, logs: {invocation_logs: true}}\n"
                "consumers:\n  - {queue: jobs, batch_size: 5, max_retries: 2, max_wait_time_ms: 100, "
                "max_concurrency: 3, retry_delay: 10, dead_letter_queue: dlq}\n",
                "src/t.txt2", "x",
                NULL }, &g);
        ck_assert_msg(startswith(o, "OK "), "%s", o);
        w = &g->workers[0];
        ck_assert_str_eq(w->main_module, "main.mjs");
        ck_assert_uint_eq(w->n_modules, 7);
        ck_assert_str_eq(w->modules[0].name, "main.mjs");
        ck_assert_str_eq(w->modules[1].name, "a.wasm");
        ck_assert_int_eq(w->modules[1].type, MODULE_WASM);
        ck_assert_str_eq(w->modules[2].name, "data.bin");
        ck_assert_int_eq(w->modules[2].type, MODULE_DATA);
        ck_assert_str_eq(w->modules[3].name, "lib/b.js");
        ck_assert_int_eq(w->modules[4].type, MODULE_COMMONJS);
        ck_assert_int_eq(w->modules[5].type, MODULE_TEXT);
        ck_assert_int_eq(w->modules[6].type, MODULE_TEXT);
        ck_assert_uint_eq(strv_length(w->compatibility_flags), 2);
        ck_assert_str_eq(w->compatibility_flags[0], "a_flag");
        ck_assert_uint_eq(strv_length(w->crons), 2);
        ck_assert_str_eq(w->crons[0], "*/5 * * * *");
        ck_assert_str_eq(w->crons[1], "0 3 * * MON");
        ck_assert_int_eq(w->workers_dev, 0);
        ck_assert_uint_eq(strv_length(w->tags), 2);
        ck_assert(w->logpush);
        ck_assert(w->observability.set && w->observability.enabled);
        ck_assert(w->observability.head_sampling_rate == 0.25);
        ck_assert(w->observability.logs_set && w->observability.logs_enabled);
        ck_assert(w->observability.logs_invocation_logs);
        ck_assert_uint_eq(w->n_consumers, 1);
        ck_assert_str_eq(w->consumers[0].queue, "jobs");
        ck_assert_int_eq(w->consumers[0].batch_size, 5);
        ck_assert_int_eq(w->consumers[0].retry_delay, 10);
        ck_assert_str_eq(w->consumers[0].dead_letter_queue, "dlq");
        ck_assert_str_eq(g->files[0], "q.yaml");
        ck_assert_str_eq(g->files[1], "sub/w.yaml");
}
END_TEST

START_TEST(test_durable_objects) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_free_ char *o = NULL;
        const Worker *w;

        o = load_files((const char *const[]) {
                "spec.yaml",
                W "durable_objects:\n  classes: [B, {class_name: K, storage: kv}]\n  migrations:\n"
                "    - {tag: v1, new_sqlite_classes: [A, X], new_classes: [K]}\n"
                "    - {tag: v2, renamed_classes: [{from: A, to: B}]}\n"
                "    - {tag: v3, deleted_classes: [X]}\n",
                NULL }, &g);
        ck_assert_msg(startswith(o, "OK "), "%s", o);
        w = &g->workers[0];
        ck_assert_uint_eq(w->n_do_classes, 2);
        ck_assert_str_eq(w->do_classes[0].class_name, "B");
        ck_assert(w->do_classes[0].sqlite);
        ck_assert(!w->do_classes[1].sqlite);
        ck_assert_uint_eq(w->n_migrations, 3);
        ck_assert_str_eq(w->migrations[1].tag, "v2");
        ck_assert_str_eq(w->migrations[1].renamed_classes[0].to, "B");
        /* It owns Durable Object data: retained by default. */
        ck_assert_int_eq(w->policy.deletion, DELETION_RETAIN);

        assert_load(W "durable_objects:\n  classes: [A]\n",
                    "spec.yaml:6:13: class 'A' is not created by any migration (add a migration with "
                    "new_sqlite_classes or new_classes)");
        assert_load(W "durable_objects:\n  classes: [B]\n  migrations:\n    - {tag: v1, new_sqlite_classes: [A]}\n"
                    "    - {tag: v2, new_sqlite_classes: [B]}\n",
                    "spec.yaml:9:7: class 'A' still exists after the last migration but is not in "
                    "durable_objects.classes (delete or rename it in a migration)");
        assert_load(W "durable_objects:\n  classes: [A]\n  migrations:\n    - {tag: v1, new_classes: [A]}\n",
                    "spec.yaml:6:13: class 'A' is declared with sqlite storage but its migration created "
                    "it with kv storage");
        assert_load(W "durable_objects:\n  classes: [A]\n  migrations:\n    - {tag: v1, new_sqlite_classes: [A]}\n"
                    "    - {tag: v1, renamed_classes: [{from: Z, to: Y}]}\n",
                    "spec.yaml:9:7: duplicate migration tag 'v1' (first defined at spec.yaml:8:7)\n"
                    "spec.yaml:9:7: migration 'v1' renames class 'Z', which does not exist at that point");
        assert_load(W "durable_objects:\n  classes: [A]\n  migrations:\n    - {tag: v1, new_sqlite_classes: [A]}\n"
                    "    - {tag: v2, new_sqlite_classes: [A]}\n",
                    "spec.yaml:9:7: migration 'v2' creates class 'A', which already exists");
        assert_load(W "durable_objects:\n  classes: [A]\n  migrations:\n    - {tag: v1, new_sqlite_classes: [A]}\n"
                    "    - {tag: v2, deleted_classes: [Q]}\n",
                    "spec.yaml:9:7: migration 'v2' deletes class 'Q', which does not exist at that point");
        assert_load(W "durable_objects:\n  migrations:\n    - {tag: v1}\n",
                    "spec.yaml:7:7: migration 'v1' changes nothing");
        assert_load(W "bindings:\n  D: {durable_object: {class_name: Nope}}\n",
                    "spec.yaml:6:3: binding 'D': class 'Nope' is not in durable_objects.classes of worker 'w'");
}
END_TEST

START_TEST(test_policy_rules) {
        assert_load("kind: KVNamespace\nname: k\nadopt: true\nexternal: true\n",
                    "spec.yaml:3:1: 'adopt' and 'external' exclude each other: an external resource is never owned");
        assert_load("kind: KVNamespace\nname: k\nexternal: true\ndeletion_policy: delete\n",
                    "spec.yaml:4:1: 'deletion_policy: delete' contradicts 'external: true'");
        assert_load("kind: KVNamespace\nname: k\nid: 0123456789abcdef0123456789abcdef\n",
                    "spec.yaml:3:1: 'id' needs 'external: true' (bindery never chooses ids; it looks "
                    "resources up by id)");
        assert_load("kind: KVNamespace\nname: k\ndrift: fix\n",
                    "spec.yaml:3:8: 'drift' must be one of repair, report, not 'fix'");
        assert_load("kind: KVNamespace\nname: k\ndeletion_policy: keep\n",
                    "spec.yaml:3:18: 'deletion_policy' must be one of retain, delete, not 'keep'");
        assert_load("kind: KVNamespace\nname: k\nsuspend: \"true\"\n",
                    "spec.yaml:3:10: 'suspend' must be true or false, not a string");
        assert_load("kind: SecretsStore\nname: s\nmanaged: true\nexternal: true\n",
                    "spec.yaml:3:1: 'managed: true' and 'external: true' exclude each other");
        assert_load("kind: SecretsStore\nname: s\nadopt: true\n",
                    "spec.yaml:3:1: 'adopt' needs 'managed: true' (an external store is never changed)");
        assert_load("kind: Worker\nname: w\nexternal: true\nmain: w.js\n",
                    "spec.yaml:4:1: 'main' is not allowed on an external Worker");
        assert_ok("kind: Worker\nname: w\nexternal: true\n");
}
END_TEST

START_TEST(test_types_and_keys) {
        assert_load("kind: KVNamespace\nname: k\ntitel: x\n",
                    "spec.yaml:3:1: unknown key 'titel' (did you mean 'title'?)");
        assert_load(W "bindngs: {}\n", "spec.yaml:5:1: unknown key 'bindngs' (did you mean 'bindings'?)");
        assert_load(W "zzzzzz: 1\n", "spec.yaml:5:1: unknown key 'zzzzzz'");
        assert_load("kind: Wroker\nname: w\n", "spec.yaml:1:7: unknown kind 'Wroker' (did you mean 'Worker'?)");
        assert_load("name: w\n", "spec.yaml:1:1: missing required key 'kind'");
        assert_load("kind: Queue\n", "spec.yaml:1:1: missing required key 'name'");
        assert_load("- a\n", "spec.yaml:1:1: a document must be a mapping with 'kind' and 'name', not a sequence");
        assert_load("kind: Queue\nname: [a]\n", "spec.yaml:2:7: 'name' must be a string, not a sequence");
        assert_load("kind: Queue\nname: q\ndelivery_delay: soon\n",
                    "spec.yaml:3:17: 'delivery_delay' must be an integer, not a string");
        assert_load("kind: Queue\nname: q\ndelivery_delay: 99999\n",
                    "spec.yaml:3:17: 'delivery_delay' must be between 0 and 43200");
        assert_load(W "tags: a\n", "spec.yaml:5:7: 'tags' must be a sequence of strings, not a string");
        assert_load(W "tags: [a, {b: 1}]\n",
                    "spec.yaml:5:11: items of 'tags' must be non-empty strings, not a mapping");
        assert_load(W "bindings: [a]\n", "spec.yaml:5:11: 'bindings' must be a mapping, not a sequence");
        /* An empty file and empty documents are fine. */
        assert_ok("");
        assert_ok("---\n---\n");
}
END_TEST

START_TEST(test_binding_rules) {
        assert_load(W "bindings:\n  my-var: x\n",
                    "spec.yaml:6:3: binding name 'my-var' is not a valid JavaScript identifier");
        assert_load(W "bindings:\n  A:\n", "spec.yaml:6:5: binding 'A' has no value");
        assert_load(W "bindings:\n  A: {text: a, json: 1}\n",
                    "spec.yaml:6:6: binding 'A' must have exactly one kind key (text, json, secret, kv_namespace, "
                    "r2_bucket, d1, durable_object, queue, service, secrets_store, analytics_engine, ai, "
                    "version_metadata, hyperdrive, vectorize, browser, workflow)");
        assert_load(W "bindings:\n  A: {kv: a}\n", "spec.yaml:6:7: unknown binding kind 'kv'");
        assert_load(W "bindings:\n  A: {kv_namespaces: a}\n",
                    "spec.yaml:6:7: unknown binding kind 'kv_namespaces' (did you mean 'kv_namespace'?)");
        assert_load(W "bindings:\n  A: {secret: {credential: a, env: B}}\n",
                    "spec.yaml:6:15: 'secret' must have exactly one of 'credential', 'file' or 'env'");
        assert_load(W "bindings:\n  A: {secret: {credential: a/b}}\n",
                    "spec.yaml:6:28: 'a/b' is not a valid credential name");
        assert_load(W "bindings:\n  A: {secret: {env: 1X}}\n",
                    "spec.yaml:6:21: '1X' is not a valid environment variable name");
        assert_load(W "bindings:\n  A: {secret: plain}\n", "spec.yaml:6:15: 'secret' must be a mapping, not a string");
        assert_load(W "bindings:\n  A: {kv_namespace: {id: xyz}}\n",
                    "spec.yaml:6:26: KV namespace id 'xyz' must be 32 hexadecimal characters");
        assert_load(W "bindings:\n  A: {d1: {id: 123}}\n", "spec.yaml:6:16: D1 database id '123' must be a UUID");
        assert_load(W "bindings:\n  A: {r2_bucket: {name: Bad_B}}\n",
                    "spec.yaml:6:25: 'Bad_B' is not a valid R2 bucket name (3-63 characters: a-z, 0-9 and '-', "
                    "starting and ending with a letter or digit)");
        assert_load(W "bindings:\n  A: {r2_bucket: {name: abc, jurisdiction: us}}\n",
                    "spec.yaml:6:44: 'jurisdiction' must be one of eu, fedramp, fedramp-high, not 'us'");
        assert_load(W "bindings:\n  A: {queue: {name: Q!}}\n",
                    "spec.yaml:6:21: 'Q!' is not a valid queue name (1-63 characters: a-z, 0-9, '-' and '_')");
        assert_load(W "bindings:\n  A: {durable_object: {script: x}}\n",
                    "spec.yaml:6:23: missing required key 'class_name'");
        assert_load(W "bindings:\n  A: {service: Auth}\n", "spec.yaml:6:16: 'Auth' is not a valid worker name");
        assert_load(W "bindings:\n  A: {service: {service: a, entrypoint: a-b}}\n",
                    "spec.yaml:6:41: entrypoint 'a-b' is not a valid JavaScript identifier");
        assert_load(W "bindings:\n  A: {secrets_store: {store: s}}\n",
                    "spec.yaml:6:22: missing required key 'secret'");
        assert_load(W "bindings:\n  A: {secrets_store: {secret: s}}\n",
                    "spec.yaml:6:3: binding 'A': no 'store' given and no SecretsStore has 'default: true'");
        assert_load(W "bindings:\n  A: {analytics_engine: {}}\n",
                    "spec.yaml:6:25: missing required key 'dataset'");
        assert_load(W "bindings:\n  A: {ai: {model: x}}\n", "spec.yaml:6:12: unknown key 'model'");
        assert_load(W "bindings:\n  A: {hyperdrive: {id: nope}}\n",
                    "spec.yaml:6:24: Hyperdrive id 'nope' must be 32 hexadecimal characters");
        assert_load(W "bindings:\n  A: {vectorize: {index: x}}\n",
                    "spec.yaml:6:18: missing required key 'index_name'\nspec.yaml:6:19: unknown key 'index'");
        assert_load(W "bindings:\n  A: {workflow: {name: f}}\n",
                    "spec.yaml:6:17: missing required key 'class_name'");
        assert_load(W "bindings:\n  A: {kv_namespace: x}\n  B: {r2_bucket: y}\n  C: {d1: z}\n  D: {queue: q}\n",
                    "spec.yaml:6:3: binding 'A': no KVNamespace named 'x'\n"
                    "spec.yaml:7:3: binding 'B': no R2Bucket named 'y'\n"
                    "spec.yaml:8:3: binding 'C': no D1Database named 'z'\n"
                    "spec.yaml:9:3: binding 'D': no Queue named 'q'");
        assert_load(W "bindings:\n  A: {json: .inf}\n", "spec.yaml:6:13: JSON has no representation for '.inf'");
        assert_ok(W "bindings:\n  A: {json: null}\n  B: {text: \"\"}\n  C: 1.5\n");
        /* An empty mapping has no items array (UBSan: memcpy from NULL). */
        assert_ok(W "bindings:\n  E: {json: {}}\n  F: {json: {a: {}}}\n");
}
END_TEST

START_TEST(test_module_rules) {
        assert_load("kind: Worker\nname: w\nmain: /etc/passwd\ncompatibility_date: \"2025-01-01\"\n",
                    "spec.yaml:3:7: path '/etc/passwd' must be relative to the spec file");
        assert_load("kind: Worker\nname: w\nmain: ../x.js\ncompatibility_date: \"2025-01-01\"\n",
                    "spec.yaml:3:7: path '../x.js' escapes the spec directory");
        assert_load("kind: Worker\nname: w\nmain: nope.js\ncompatibility_date: \"2025-01-01\"\n",
                    "spec.yaml:3:7: module 'nope.js' not found");
        assert_load(W "modules: [w.js]\n", "spec.yaml:5:11: module 'w.js' is the main module");
        assert_load(W "modules: [x.zip]\n",
                    "spec.yaml:5:11: cannot infer the type of module 'x.zip' from its extension; give 'type'\n"
                    "spec.yaml:5:11: module 'x.zip' not found");
        assert_load(W "modules: [{path: m.py, type: python}]\n",
                    "spec.yaml:5:18: module 'm.py' not found\n"
                    "spec.yaml:5:30: 'type' must be one of esm, commonjs, wasm, text, data, source_map, not 'python'");
        assert_load("kind: Worker\nname: w\nmain: x.txt\ncompatibility_date: \"2025-01-01\"\n",
                    "spec.yaml:3:7: main module 'x.txt' must be an ES module (.js or .mjs)\n"
                    "spec.yaml:3:7: module 'x.txt' not found");
        assert_load("kind: Worker\nname: w\ncompatibility_date: \"2025-01-01\"\n",
                    "spec.yaml:1:1: missing required key 'main'");
        assert_load("kind: Worker\nname: w\nmain: w.js\n", "spec.yaml:1:1: missing required key 'compatibility_date'");
}
END_TEST

START_TEST(test_module_limits_and_symlinks) {
        _cleanup_free_ char *d = mkspec(), *o = NULL, *link = NULL, *big = NULL;
        SpecLimits l = spec_limits_default;

        put(d, "w.js", "export default {};\n");
        put(d, "big.js", "export const x = 1234567890;\n");
        put(d, "sub/spec.yaml", "kind: Worker\nname: w\nmain: ../w.js\nmodules: [../big.js, ../out.js]\n"
                                "compatibility_date: \"2025-01-01\"\n");
        link = path_join(d, "out.js");
        ck_assert_int_eq(symlink("/etc/hostname", link), 0);
        l.max_module_size = 20;
        o = load_dir(d, &l, NULL);
        ck_assert_str_eq(o, "sub/spec.yaml:4:11: module '../big.js' is larger than the limit of 20 bytes\n"
                            "sub/spec.yaml:4:22: module '../out.js' leaves the spec directory through a symlink");
        free(o);

        /* A YAML symlink leaving the tree, a directory symlink leaving it. */
        free(link);
        link = path_join(d, "evil.yaml");
        ck_assert_int_eq(symlink("/etc/hostname", link), 0);
        free(link);
        link = path_join(d, "etc");
        ck_assert_int_eq(symlink("/etc", link), 0);
        l = spec_limits_default;
        o = load_dir(d, &l, NULL);
        ck_assert_str_eq(o, "etc:1:1: symlink leaves the spec directory\n"
                            "evil.yaml:1:1: symlink leaves the spec directory\n"
                            "sub/spec.yaml:4:22: module '../out.js' leaves the spec directory through a symlink");
        rm_rf(d);
}
END_TEST

START_TEST(test_file_limits) {
        _cleanup_free_ char *d = mkspec(), *o = NULL;
        SpecLimits l = spec_limits_default;

        put(d, "a.yaml", "kind: Queue\nname: a\n");
        put(d, "b.yaml", "kind: Queue\nname: b\n---\nkind: Queue\nname: c\n");
        put(d, "c.yml", "kind: Queue\nname: d\n");
        put(d, "d/e/f.yaml", "kind: Queue\nname: e\n# some padding to make this file larger\n");
        /* Ignored: hidden, editor temporaries, other extensions. */
        put(d, ".hidden.yaml", "!!!");
        put(d, ".git/x.yaml", "!!!");
        put(d, "#x.yaml#", "!!!");
        put(d, "x.yaml~", "!!!");
        put(d, ".x.yaml.swp", "!!!");
        put(d, "README.md", "!!!");
        o = load_dir(d, &l, NULL);
        ck_assert_msg(startswith(o, "OK "), "%s", o);
        free(o);

        l.max_files = 2;
        o = load_dir(d, &l, NULL);
        ck_assert_str_eq(o, "c.yml:1:1: too many spec files (limit 2)");
        free(o);

        l = spec_limits_default;
        l.max_documents = 3;
        o = load_dir(d, &l, NULL);
        ck_assert_str_eq(o, "c.yml:1:1: too many documents in the spec directory (limit 3)");
        free(o);

        l = spec_limits_default;
        l.max_file_size = 40;
        o = load_dir(d, &l, NULL);
        ck_assert_str_eq(o, "b.yaml:1:1: file is larger than the limit of 40 bytes\n"
                            "d/e/f.yaml:1:1: file is larger than the limit of 40 bytes");
        free(o);

        l = spec_limits_default;
        l.max_dir_depth = 1;
        o = load_dir(d, &l, NULL);
        ck_assert_str_eq(o, "d/e:1:1: directory nesting deeper than 1 levels");
        free(o);

        l = spec_limits_default;
        l.max_errors = 1;
        put(d, "z.yaml", "kind: Nope\nname: x\n---\nkind: Nope\nname: y\n");
        o = load_dir(d, &l, NULL);
        ck_assert_str_eq(o, "z.yaml:1:7: unknown kind 'Nope' (Worker, KVNamespace, R2Bucket, D1Database, "
                            "Queue, SecretsStore, SecretsStoreSecret)\n+1");
        free(o);
        rm_rf(d);

        o = load_dir("/nonexistent/spec", NULL, NULL);
        ck_assert_str_eq(o, "cannot open spec directory '/nonexistent/spec': No such file or directory");
}
END_TEST

/* Load through a grant; like load_dir otherwise. */
static char *load_granted(const char *dir, const SpecGrant *grant) {
        _cleanup_(generation_freep) Generation *g = NULL;
        SpecErrors e = {};
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);

        ck_assert_ptr_nonnull(f);
        if (spec_load_granted(dir, grant, &g, &e) == 0)
                fprintf(f, "OK");
        for (size_t i = 0; i < e.n; i++) {
                _cleanup_free_ char *s = spec_error_to_string(&e.errors[i]);

                fprintf(f, "%s%s", i ? "\n" : "", s);
        }
        fclose(f);
        spec_errors_done(&e);
        return out;
}

/* Spec writers read what the operator grants, nothing else: not the
 * daemon's credentials or env, not the state directory, no file outside
 * spec_files_dir, no env outside spec_env. */
START_TEST(test_secret_grant) {
        _cleanup_free_ char *d = mkspec(), *files = mkspec(), *state = mkspec(), *o = NULL, *yaml = NULL,
                            *lnk = NULL;
        char *deny_creds[] = { (char *) "cloudflare-api-token", (char *) "http-token", NULL };
        char *deny_env[] = { (char *) "CLOUDFLARE_API_TOKEN", NULL };
        char *env[] = { (char *) "APP_KEY", (char *) "CLOUDFLARE_API_TOKEN", NULL };
        char *deny_paths[] = { state, NULL };
        SpecGrant g = {
                .deny_credentials = deny_creds, .deny_env = deny_env, .env = env,
                .deny_paths = deny_paths, .files_key = "spec_files_dir", .env_key = "spec_env",
        };

        put(d, "w.js", "export default {};\n");
        put(files, "app.key", "x\n");
        put(state, "hmac.key", "x\n");
        lnk = path_join(files, "sneaky");
        ck_assert_int_eq(symlink(state, lnk), 0);
        ck_assert_int_ge(asprintf(&yaml, W "bindings:\n"
                                  "  A: { secret: { credential: cloudflare-api-token } }\n"
                                  "  B: { secret: { credential: app-secret } }\n"
                                  "  C: { secret: { env: CLOUDFLARE_API_TOKEN } }\n"
                                  "  D: { secret: { env: APP_KEY } }\n"
                                  "  E: { secret: { env: HOME } }\n"
                                  "  F: { secret: { file: %s/app.key } }\n"
                                  "  G: { secret: { file: %s/hmac.key } }\n"
                                  "  H: { secret: { file: %s/../%s/hmac.key } }\n"
                                  "  I: { secret: { file: /etc/shadow } }\n"
                                  "  J: { secret: { file: %s/sneaky/hmac.key } }\n",
                                  files, state, files, strrchr(state, '/') + 1, files), 0);
        put(d, "spec.yaml", yaml);
        /* no grant: form only (unit tests, fuzzing) */
        o = load_granted(d, NULL);
        ck_assert_str_eq(o, "OK");
        free(o);
        /* no spec_files_dir: every file reference names the key to set */
        o = load_granted(d, &g);
        ck_assert_ptr_nonnull(strstr(o, "spec.yaml:6:30: credential 'cloudflare-api-token' is one of the daemon's own secrets"));
        ck_assert_ptr_null(strstr(o, "app-secret"));
        ck_assert_ptr_nonnull(strstr(o, "spec.yaml:8:23: environment variable 'CLOUDFLARE_API_TOKEN' holds one of the daemon's own secrets"));
        ck_assert_ptr_null(strstr(o, "'APP_KEY'"));
        ck_assert_ptr_nonnull(strstr(o, "spec.yaml:10:23: environment variable 'HOME' is not granted to specs (list it in 'spec_env'"));
        ck_assert_ptr_nonnull(strstr(o, "spec.yaml:11:24: secret files are not granted to specs: set 'spec_files_dir'"));
        free(o);
        /* with spec_files_dir: F passes; the state dir (also through .. and a symlink) and /etc do not */
        g.files_dir = files;
        o = load_granted(d, &g);
        ck_assert_ptr_null(strstr(o, "spec.yaml:11:"));
        ck_assert_ptr_nonnull(strstr(o, "spec.yaml:12:24: secret file"));
        ck_assert_ptr_nonnull(strstr(o, "belongs to the daemon"));
        ck_assert_ptr_nonnull(strstr(o, "spec.yaml:13:24: secret file"));
        ck_assert_ptr_nonnull(strstr(o, "spec.yaml:14:24: secret file '/etc/shadow' is outside 'spec_files_dir'"));
        ck_assert_ptr_nonnull(strstr(o, "spec.yaml:15:24: secret file"));
        o = mfree(o);
        /* checked again when read: a symlink swapped in after the load */
        {
                _cleanup_free_ char *app = path_join(files, "app.key"), *key = path_join(state, "hmac.key"),
                                    *err = NULL;

                ck_assert_int_eq(spec_grant_check_file(&g, app, NULL), 0);
                ck_assert_int_eq(unlink(app), 0);
                ck_assert_int_eq(symlink(key, app), 0);
                ck_assert_int_eq(spec_grant_check_file(&g, app, &err), -EPERM);
                ck_assert_ptr_nonnull(strstr(err, "belongs to the daemon"));
        }
        rm_rf(d);
        rm_rf(files);
        rm_rf(state);
}
END_TEST

/* A FIFO, socket or device named like a spec or a module is an error at
 * FILE, and never blocks the load (opened O_NONBLOCK, fstat first). */
START_TEST(test_hostile_files) {
        _cleanup_free_ char *d = mkspec(), *o = NULL, *p = NULL, *q = NULL;

        put(d, "w.js", "export default {};\n");
        put(d, "spec.yaml", W "modules: [fifo.js]\n");
        p = path_join(d, "fifo.js");
        ck_assert_int_eq(mkfifo(p, 0600), 0);
        free(p);
        p = path_join(d, "pipe.yaml");
        ck_assert_int_eq(mkfifo(p, 0600), 0);
        free(p);
        /* a symlink loop, and a UTF-8 BOM */
        p = path_join(d, "loop1.yaml");
        q = path_join(d, "loop2.yaml");
        ck_assert_int_eq(symlink(q, p), 0);
        ck_assert_int_eq(symlink(p, q), 0);
        put(d, "bom.yaml", "\xef\xbb\xbfkind: Queue\nname: q\n");
        o = load_dir(d, NULL, NULL);
        ck_assert_str_eq(o, "bom.yaml:1:1: file starts with a UTF-8 byte order mark (BOM); save it as UTF-8 without BOM\n"
                            "loop1.yaml:1:1: symlink loop\n"
                            "loop2.yaml:1:1: symlink loop\n"
                            "pipe.yaml: a FIFO, not a regular file; spec files must be regular files\n"
                            "spec.yaml:5:11: module 'fifo.js' is not a regular file (a FIFO)");
        rm_rf(d);
}
END_TEST

static bool sanitized(void) {
#if defined(__SANITIZE_ADDRESS__)
        return true;
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
        return true;
#  endif
#endif
        return streq_ptr(getenv("BINDERY_SANITIZED"), "1");
}

/* A crafted spec cannot stall the loop or blow memory: 3,000 unresolved
 * references of 59 characters among 3,000 names, and huge names. */
START_TEST(test_hostile_sizes) {
        _cleanup_free_ char *d = mkspec(), *o = NULL;
        FILE *f;
        char *path, *big;
        struct timespec t0, t1;
        double sec;
        Generation *g = NULL;
        SpecErrors e = {};
        size_t total = 0;

        path = path_join(d, "many.yaml");
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        for (unsigned i = 0; i < 3000; i++)
                fprintf(f, "---\nkind: KVNamespace\nname: kv-%054u\n", i);
        for (unsigned w = 0; w < 30; w++) {
                fprintf(f, "---\nkind: Worker\nname: w%u\nmain: w.js\ncompatibility_date: \"2025-01-01\"\nbindings:\n", w);
                for (unsigned i = 0; i < 100; i++)
                        fprintf(f, "  B%u: { kv_namespace: kx-%054u }\n", i, w * 100 + i);
        }
        ck_assert_int_eq(fclose(f), 0);
        free(path);
        put(d, "w.js", "export default {};\n");
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_int_eq(spec_load(d, &g, &e), -EINVAL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        sec = (double) (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        /* Before the bound: ~60 s. Sanitizers slow everything ~10x. */
        ck_assert_msg(sec < (sanitized() ? 30.0 : 3.0), "3,000 x 3,000 unresolved names took %.2f s", sec);
        ck_assert_uint_eq(e.n + e.n_dropped, 3000);
        spec_errors_done(&e);
        rm_rf(d);

        /* 20 names of 1 MiB - 64 bytes: each message is cut */
        d = mfree(d);
        d = mkspec();
        big = malloc(1024 * 1024);
        ck_assert_ptr_nonnull(big);
        for (unsigned i = 0; i < 20; i++) {
                char name[32];
                int n = snprintf(big, 64, "kind: Queue\nname: ");

                memset(big + n, 'a', 1024 * 1024 - 64 - (size_t) n);
                big[1024 * 1024 - 64] = 0;
                snprintf(name, sizeof(name), "q%u.yaml", i);
                put(d, name, big);
        }
        free(big);
        ck_assert_int_eq(spec_load(d, &g, &e), -EINVAL);
        ck_assert_uint_ge(e.n, 20);
        for (size_t i = 0; i < e.n; i++) {
                ck_assert_uint_le(strlen(e.errors[i].message), SPEC_MAX_MESSAGE);
                total += strlen(e.errors[i].message);
        }
        ck_assert_uint_le(total, 64 * 1024);
        spec_errors_done(&e);
        rm_rf(d);
}
END_TEST

/* Writes n workers (each with its own KV namespace, a var and a binding
 * to it, sharing one module) into `files` YAML files under dir. Returns
 * the largest file's size. */
static size_t write_workers(const char *dir, unsigned n, unsigned files) {
        size_t largest = 0;

        put(dir, "w.js", "export default { fetch() { return new Response('ok'); } };\n");
        for (unsigned f = 0; f < files; f++) {
                _cleanup_free_ char *rel = NULL, *path = NULL;
                FILE *out;
                long size;

                ck_assert_int_ge(asprintf(&rel, "gen/w%04u.yaml", f), 0);
                path = path_join(dir, rel);
                mkparents(path);
                out = fopen(path, "we");
                ck_assert_ptr_nonnull(out);
                for (unsigned i = f; i < n; i += files)
                        fprintf(out,
                                "---\nkind: KVNamespace\nname: kv-w%05u\n"
                                "---\nkind: Worker\nname: w%05u\nmain: ../w.js\ncompatibility_date: \"2025-06-01\"\n"
                                "bindings:\n  STAGE: s-w%05u\n  CACHE: { kv_namespace: kv-w%05u }\n",
                                i, i, i, i);
                size = ftell(out);
                ck_assert_int_eq(fclose(out), 0);
                if ((size_t) size > largest)
                        largest = (size_t) size;
        }
        return largest;
}

/* 10,000 workers load within the documented limits (bindery-spec(5)):
 * as one generated file (past the old 1 MiB per file) and as 100 files. */
START_TEST(test_10000_workers) {
        static const unsigned files[] = { 1, 100 };

        for (size_t k = 0; k < ELEMENTSOF(files); k++) {
                _cleanup_(generation_freep) Generation *g = NULL;
                _cleanup_free_ char *d = mkspec();
                SpecErrors e = {};
                size_t largest = write_workers(d, 10000, files[k]);
                int r;

                if (files[k] == 1)
                        ck_assert_uint_gt(largest, 1024 * 1024);
                ck_assert_uint_le(largest, SPEC_MAX_FILE_SIZE);
                r = spec_load(d, &g, &e);
                if (r < 0 && e.n > 0)
                        ck_abort_msg("%u file(s): %s", files[k], e.errors[0].message);
                ck_assert_int_eq(r, 0);
                ck_assert_uint_eq(g->n_workers, 10000);
                ck_assert_uint_eq(g->n_kv_namespaces, 10000);
                spec_errors_done(&e);
                rm_rf(d);
        }
}
END_TEST

/* Loading runs on the daemon's loop: a generation's YAML and modules are
 * bounded in total, not only per file. */
START_TEST(test_total_limits) {
        _cleanup_free_ char *d = mkspec(), *o = NULL;
        SpecLimits l = spec_limits_default;

        put(d, "w.js", "export default { fetch() { return new Response('0123456789'); } };\n");
        put(d, "a.yaml", "kind: Queue\nname: a\n");
        put(d, "b.yaml", W "modules: [w2.js]\n");
        put(d, "w2.js", "export const x = '0123456789012345678901234567890123456789';\n");
        o = load_dir(d, &l, NULL);
        ck_assert_msg(startswith(o, "OK "), "%s", o);
        free(o);
        l.max_total_yaml = 40;
        o = load_dir(d, &l, NULL);
        ck_assert_str_eq(o, "b.yaml:1:1: the spec files exceed 40 bytes in total");
        free(o);
        l = spec_limits_default;
        l.max_total_modules = 100;
        o = load_dir(d, &l, NULL);
        ck_assert_str_eq(o, "b.yaml:5:11: module 'w2.js': the modules of this spec exceed 100 bytes in total");
        o = mfree(o);
        rm_rf(d);
}
END_TEST

START_TEST(test_duplicates) {
        _cleanup_free_ char *o = load_files((const char *const[]) {
                "a.yaml", "kind: Queue\nname: q\n---\nkind: KVNamespace\nname: k\ntitle: T\n",
                "b/c.yaml", "kind: Queue\nname: q\n---\nkind: KVNamespace\nname: k2\ntitle: T\n",
                NULL }, NULL);

        /* The queue name repeats too, but that is the same mistake. */
        ck_assert_str_eq(o, "b/c.yaml:2:7: duplicate Queue 'q' (first defined at a.yaml:2:7)\n"
                            "b/c.yaml:5:7: duplicate KV namespace title 'T' (first defined at a.yaml:5:7)");
}
END_TEST

START_TEST(test_stores_and_consumers) {
        assert_load("kind: SecretsStore\nname: a\ndefault: true\n---\nkind: SecretsStore\nname: b\ndefault: true\n",
                    "spec.yaml:6:7: more than one SecretsStore has 'default: true' (first: 'a' at spec.yaml:2:7)");
        assert_load("kind: SecretsStore\nname: a\n---\nkind: SecretsStoreSecret\nname: s\nstore: a\nvalue: {env: X}\n",
                    "spec.yaml:5:7: SecretsStoreSecret 's': SecretsStore 'a' is external; bindery writes "
                    "secrets only into stores with 'managed: true'");
        assert_load("kind: SecretsStoreSecret\nname: s\nstore: nope\nvalue: {env: X}\n",
                    "spec.yaml:2:7: SecretsStoreSecret 's': no SecretsStore named 'nope'");
        assert_load("kind: SecretsStore\nname: a\nmanaged: true\n---\nkind: SecretsStoreSecret\nname: s\nstore: a\n",
                    "spec.yaml:5:1: missing required key 'value'");
        assert_load(W "consumers:\n  - queue: nope\n", "spec.yaml:6:12: consumer: no Queue named 'nope'");
        assert_load("kind: Queue\nname: q\n---\n" W "consumers:\n  - {queue: q, dead_letter_queue: q}\n",
                    "spec.yaml:9:13: consumer of 'q': a queue cannot be its own dead_letter_queue");
        assert_load("kind: Queue\nname: q\n---\n" W "consumers:\n  - {queue: q}\n  - {queue: q}\n",
                    "spec.yaml:10:13: queue 'q' already has a consumer: worker 'w' (spec.yaml:9:13)");
        assert_load("kind: Queue\nname: q\n---\n" W "consumers:\n  - {queue: q, batch_size: 0}\n",
                    "spec.yaml:9:28: 'batch_size' must be between 1 and 100");
}
END_TEST

/* ---- canonical form ---- */

START_TEST(test_canonical_digest) {
        static const char a[] =
                "kind: KVNamespace\nname: k\n---\n"
                "kind: Worker\nname: w\nmain: w.js\ncompatibility_date: \"2025-01-01\"\n"
                "compatibility_flags: [b, a]\ntags: [y, x]\ncrons: [\"0 3 * * mon\"]\n"
                "bindings:\n  B: {kv_namespace: k}\n  A: {json: {y: 1, x: [true, \"s\"]}}\n  C: '5'\n";
        /* Same meaning: keys, bindings and lists reordered, comments, quoting,
         * duplicate list entries, spacing in crons, two files. */
        static const char b1[] =
                "# comment\nkind: Worker\ncompatibility_date: 2025-01-01\nname: w\nmain: ./w.js\n"
                "bindings:\n  C: 5\n  A: {json: {x: [true, s], y: 1.0e0}}\n  B: {kv_namespace: k}\n"
                "tags: [x, y, x]\ncrons: [\"0  3 * * MON\"]\ncompatibility_flags: [a, b, a]\n";
        static const char b2[] = "name: k\nkind: KVNamespace\n";
        _cleanup_free_ char *oa = load_files((const char *const[]) { "spec.yaml", a, NULL }, NULL);
        _cleanup_free_ char *ob = load_files((const char *const[]) { "x.yaml", b1, "y/z.yml", b2, NULL }, NULL);
        _cleanup_free_ char *oc = NULL, *od = NULL;

        ck_assert(startswith(oa, "OK "));
        /* 1.0e0 is a double: JSON "1.0"? json-c prints it as 1.0, so compare
         * without that field below. */
        ck_assert_str_ne(oa, "");
        oc = load_files((const char *const[]) { "spec.yaml", a, NULL }, NULL);
        ck_assert_str_eq(oa, oc);
        od = load_files((const char *const[]) {
                "x.yaml",
                "kind: Worker\ncompatibility_date: 2025-01-01\nname: w\nmain: ./w.js\n"
                "bindings:\n  C: 5\n  A: {json: {x: [true, s], y: 1}}\n  B: {kv_namespace: k}\n"
                "tags: [x, y, x]\ncrons: [\"0  3 * * MON\"]\ncompatibility_flags: [a, b, a]\n",
                "y/z.yml", b2, NULL }, NULL);
        ck_assert_str_eq(oa, od);
        ck_assert(startswith(ob, "OK "));
}
END_TEST

START_TEST(test_digest_covers_modules) {
        _cleanup_free_ char *d = mkspec(), *o1 = NULL, *o2 = NULL, *o3 = NULL;

        put(d, "w.js", "export default {};\n");
        put(d, "spec.yaml", W);
        o1 = load_dir(d, NULL, NULL);
        put(d, "w.js", "export default { fetch() {} };\n");
        o2 = load_dir(d, NULL, NULL);
        ck_assert_str_ne(o1, o2);
        put(d, "w.js", "export default {};\n");
        o3 = load_dir(d, NULL, NULL);
        ck_assert_str_eq(o1, o3);
        rm_rf(d);
}
END_TEST

/* spec_reload: each reload gives the generation a fresh load gives, with
 * the digests of unchanged workers taken from the one before: a changed
 * document, module, quoting, file or directory is computed again. */
static void assert_reload_equals_load(const char *d, Generation **prev) {
        _cleanup_(generation_freep) Generation *fresh = NULL;
        Generation *g = NULL;
        SpecErrors e = {};

        ck_assert_int_eq(spec_load(d, &fresh, &e), 0);
        ck_assert_int_eq(spec_reload(d, NULL, *prev, &g, &e), 0);
        ck_assert_str_eq(g->digest, fresh->digest);
        ck_assert_uint_eq(g->n_workers, fresh->n_workers);
        for (size_t i = 0; i < g->n_workers; i++) {
                ck_assert_str_eq(g->workers[i].name, fresh->workers[i].name);
                ck_assert_str_eq(g->workers[i].digest, fresh->workers[i].digest);
        }
        spec_errors_done(&e);
        generation_free(*prev);
        *prev = g;
}

START_TEST(test_reload_reuses_digests) {
        _cleanup_free_ char *d = mkspec(), *d2 = mkspec(), *before = NULL;
        _cleanup_(generation_freep) Generation *prev = NULL;
        SpecErrors e = {};

        put(d, "w.js", "export default {};\n");
        put(d, "spec.yaml", W "bindings:\n  A: '1'\n---\n"
            "kind: Worker\nname: v\nmain: w.js\ncompatibility_date: \"2025-01-01\"\n");
        ck_assert_int_eq(spec_load(d, &prev, &e), 0);
        ck_assert_str_eq(prev->workers[0].source_key, "");  /* spec_load makes no key */
        generation_free(TAKE_PTR(prev));
        ck_assert_int_eq(spec_reload(d, NULL, NULL, &prev, &e), 0);
        ck_assert_str_ne(prev->workers[0].source_key, "");
        assert_reload_equals_load(d, &prev);
        before = strdup(prev->workers[1].digest);
        /* One document edited: w's digest moves, v's is the one before. */
        put(d, "spec.yaml", W "bindings:\n  A: '2'\n---\n"
            "kind: Worker\nname: v\nmain: w.js\ncompatibility_date: \"2025-01-01\"\n");
        assert_reload_equals_load(d, &prev);
        ck_assert_str_eq(prev->workers[1].name, "w");
        ck_assert_str_ne(prev->workers[1].digest, before);
        /* Quoting that changes the type, a module's content, a file's name. */
        put(d, "spec.yaml", W "bindings:\n  A: 2\n---\n"
            "kind: Worker\nname: v\nmain: w.js\ncompatibility_date: \"2025-01-01\"\n");
        assert_reload_equals_load(d, &prev);
        put(d, "w.js", "export default { fetch() {} };\n");
        assert_reload_equals_load(d, &prev);
        {
                _cleanup_free_ char *from = path_join(d, "spec.yaml"), *to = path_join(d, "other.yaml");

                ck_assert_int_eq(rename(from, to), 0);
        }
        assert_reload_equals_load(d, &prev);
        /* The same files in another directory. */
        put(d2, "w.js", "export default { fetch() {} };\n");
        put(d2, "other.yaml", W "bindings:\n  A: 2\n---\n"
            "kind: Worker\nname: v\nmain: w.js\ncompatibility_date: \"2025-01-01\"\n");
        assert_reload_equals_load(d2, &prev);
        /* Taken, not computed: a marked digest before comes back as is. */
        {
                Generation *g = NULL;

                memset(prev->workers[0].digest, 'a', 64);
                ck_assert_int_eq(spec_reload(d2, NULL, prev, &g, &e), 0);
                ck_assert_str_eq(g->workers[0].digest, prev->workers[0].digest);
                ck_assert_str_ne(g->workers[1].digest, prev->workers[0].digest);
                generation_free(g);
        }
        spec_errors_done(&e);
        rm_rf(d);
        rm_rf(d2);
}
END_TEST

/* One module named by many workers is read once per load, with the same
 * outcome as reading it for each: the same digest, each reference counted
 * against the total limit, a change seen by the next load. */
START_TEST(test_shared_module) {
        static const char two[] = W "---\nkind: Worker\nname: v\nmain: w.js\ncompatibility_date: \"2025-01-01\"\n";
        _cleanup_free_ char *d = mkspec(), *o = NULL;
        _cleanup_(generation_freep) Generation *g = NULL, *g2 = NULL;
        SpecLimits l = spec_limits_default;
        const char *js = "export default {};\n";

        put(d, "w.js", js);
        put(d, "spec.yaml", two);
        o = load_dir(d, NULL, &g);
        ck_assert_msg(startswith(o, "OK "), "%s", o);
        ck_assert_uint_eq(g->n_workers, 2);
        ck_assert_str_eq(g->workers[0].modules[0].sha256, g->workers[1].modules[0].sha256);
        ck_assert_uint_eq(g->workers[1].modules[0].size, strlen(js));
        ck_assert_str_ne(g->workers[0].modules[0].path, "");
        o = mfree(o);
        l.max_total_modules = 2 * strlen(js) - 1;
        o = load_dir(d, &l, NULL);
        ck_assert_msg(strstr(o, "the modules of this spec exceed"), "%s", o);
        o = mfree(o);
        put(d, "w.js", "export default { fetch() {} };\n");
        o = load_dir(d, NULL, &g2);
        ck_assert_str_ne(g2->workers[0].modules[0].sha256, g->workers[0].modules[0].sha256);
        ck_assert_str_eq(g2->workers[0].modules[0].sha256, g2->workers[1].modules[0].sha256);
        o = mfree(o);
        rm_rf(d);
}
END_TEST

START_TEST(test_errors_json) {
        SpecErrors e = {};
        Generation *g = NULL;
        json_object *j;
        _cleanup_free_ char *d = mkspec();

        put(d, "a.yaml", "kind: Nope\nname: x\n");
        ck_assert_int_eq(spec_load(d, &g, &e), -EINVAL);
        ck_assert_ptr_null(g);
        ck_assert_uint_eq(e.n_files, 1);
        j = spec_errors_to_json(&e);
        ck_assert_str_eq(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN),
                         "[{\"file\":\"a.yaml\",\"line\":1,\"column\":7,\"message\":\"unknown kind 'Nope' "
                         "(Worker, KVNamespace, R2Bucket, D1Database, Queue, SecretsStore, SecretsStoreSecret)\"}]");
        json_object_put(j);
        spec_errors_done(&e);
        rm_rf(d);
}
END_TEST

/* ---- the corpus ---- */

static char *read_text(const char *path) {
        char *s = NULL;
        size_t n;

        ck_assert_msg(read_full_file(path, 1 << 20, &s, &n) == 0, "cannot read %s", path);
        while (n > 0 && s[n - 1] == '\n')
                s[--n] = 0;
        return s;
}

static int cmp_name(const struct dirent **a, const struct dirent **b) {
        return strcmp((*a)->d_name, (*b)->d_name);
}

static unsigned run_corpus(const char *kind, unsigned *ret_failed) {
        _cleanup_free_ char *base = NULL;
        struct dirent **ents = NULL;
        unsigned n_cases = 0, failed = 0;
        int n;

        ck_assert_int_ge(asprintf(&base, "%s/tests/spec/%s", srcdir(), kind), 0);
        n = scandir(base, &ents, NULL, cmp_name);
        ck_assert_msg(n >= 0, "cannot read %s", base);
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *dir = NULL, *exp_path = NULL, *expected = NULL, *got = NULL;

                if (ents[i]->d_name[0] == '.') {
                        free(ents[i]);
                        continue;
                }
                ck_assert_int_ge(asprintf(&dir, "%s/%s", base, ents[i]->d_name), 0);
                ck_assert_int_ge(asprintf(&exp_path, "%s/expected", dir), 0);
                got = load_dir(dir, NULL, NULL);
                if (streq(kind, "bad")) {
                        expected = read_text(exp_path);
                        if (!streq(got, expected)) {
                                fprintf(stderr, "corpus %s/%s:\n--- expected\n%s\n--- got\n%s\n", kind,
                                        ents[i]->d_name, expected, got);
                                failed++;
                        }
                } else if (!startswith(got, "OK ")) {
                        fprintf(stderr, "corpus %s/%s should load:\n%s\n", kind, ents[i]->d_name, got);
                        failed++;
                }
                n_cases++;
                free(ents[i]);
        }
        free(ents);
        *ret_failed = failed;
        return n_cases;
}

START_TEST(test_corpus_bad) {
        unsigned failed, n = run_corpus("bad", &failed);

        fprintf(stderr, "tests/spec/bad: %u cases, %u failed\n", n, failed);
        ck_assert_uint_ge(n, 150);
        ck_assert_uint_eq(failed, 0);
}
END_TEST

START_TEST(test_corpus_good) {
        unsigned failed, n = run_corpus("good", &failed);

        fprintf(stderr, "tests/spec/good: %u cases, %u failed\n", n, failed);
        ck_assert_uint_ge(n, 5);
        ck_assert_uint_eq(failed, 0);
}
END_TEST

START_TEST(test_examples) {
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_free_ char *dir = NULL, *o = NULL;
        bool seen[_BINDING_KIND_MAX] = {};

        ck_assert_int_ge(asprintf(&dir, "%s/etc/examples", srcdir()), 0);
        o = load_dir(dir, NULL, &g);
        ck_assert_msg(startswith(o, "OK "), "etc/examples: %s", o);
        ck_assert_uint_ge(g->n_workers, 4);
        ck_assert_uint_ge(g->n_kv_namespaces, 1);
        ck_assert_uint_ge(g->n_r2_buckets, 1);
        ck_assert_uint_ge(g->n_d1_databases, 1);
        ck_assert_uint_ge(g->n_queues, 1);
        ck_assert_uint_ge(g->n_secrets_stores, 1);
        ck_assert_uint_ge(g->n_secrets_store_secrets, 1);
        ck_assert_ptr_nonnull(g->default_store);
        for (size_t i = 0; i < g->n_workers; i++)
                for (size_t j = 0; j < g->workers[i].n_bindings; j++)
                        seen[g->workers[i].bindings[j].kind] = true;
        for (int k = 0; k < _BINDING_KIND_MAX; k++)
                ck_assert_msg(seen[k], "no example binding of kind %s", binding_kind_to_api_type(k));

        /* Generation.digest's text, written one resource at a time, is
         * byte for byte the tree's (every kind is here), and so is an
         * empty generation's. */
        for (int empty = 0; empty < 2; empty++) {
                const int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
                Generation rest = empty ? (Generation) {} : *g;
                _cleanup_free_ char *text = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&text, &len);
                json_object *tree;

                ck_assert_ptr_nonnull(f);
                rest.n_workers = 0;
                ck_assert_int_eq(generation_rest_to_text(&rest, flags, f), 0);
                ck_assert_int_eq(fclose(f), 0);
                tree = generation_to_json(&rest);
                ck_assert_ptr_nonnull(tree);
                ck_assert_str_eq(text, json_object_to_json_string_ext(tree, flags));
                if (!empty)
                        ck_assert_ptr_nonnull(strstr(text, "\"secrets_store_secrets\":[{"));
                json_object_put(tree);
        }
}
END_TEST

/* The EXAMPLES block of bindery-spec(5) is a spec of its own: it must load
 * (with the example bundles beside it). */
START_TEST(test_man_example) {
        _cleanup_free_ char *man = NULL, *text = NULL, *d = mkspec(), *cmd = NULL, *o = NULL;
        const char *start, *end;

        ck_assert_int_ge(asprintf(&man, "%s/man/bindery-spec.5", srcdir()), 0);
        text = read_text(man);
        start = strstr(text, "\n.Sh EXAMPLES\n");
        ck_assert_ptr_nonnull(start);
        start = strstr(start, "\n.Bd -literal\n");
        ck_assert_ptr_nonnull(start);
        start += strlen("\n.Bd -literal\n");
        end = strstr(start, "\n.Ed\n");
        ck_assert_ptr_nonnull(end);
        ((char *) end)[1] = 0;
        put(d, "spec.yaml", start);
        ck_assert_int_ge(asprintf(&cmd, "cp -R '%s/etc/examples/bundles' '%s/' && chmod -R u+w '%s'", srcdir(), d, d), 0);
        ck_assert_int_eq(system(cmd), 0);
        o = load_dir(d, NULL, NULL);
        ck_assert_msg(startswith(o, "OK "), "bindery-spec(5) EXAMPLES: %s", o);
        rm_rf(d);
}
END_TEST

static Suite *spec_suite(void) {
        Suite *s = suite_create("spec");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_yaml_tree);
        tcase_add_test(tc, test_yaml_errors);
        tcase_add_test(tc, test_yaml_each);
        tcase_add_test(tc, test_yaml_scalars);
        tcase_add_test(tc, test_edit_distance);
        tcase_add_test(tc, test_cron);
        tcase_add_test(tc, test_compat_date);
        tcase_add_test(tc, test_compat_date_clock);
        tcase_add_test(tc, test_binding_kinds);
        tcase_add_test(tc, test_names);
        tcase_add_test(tc, test_minimal_worker);
        tcase_add_test(tc, test_every_binding);
        tcase_add_test(tc, test_resources);
        tcase_add_test(tc, test_worker_fields);
        tcase_add_test(tc, test_durable_objects);
        tcase_add_test(tc, test_policy_rules);
        tcase_add_test(tc, test_types_and_keys);
        tcase_add_test(tc, test_binding_rules);
        tcase_add_test(tc, test_module_rules);
        tcase_add_test(tc, test_module_limits_and_symlinks);
        tcase_add_test(tc, test_file_limits);
        tcase_add_test(tc, test_secret_grant);
        tcase_add_test(tc, test_hostile_files);
        tcase_add_test(tc, test_hostile_sizes);
        tcase_add_test(tc, test_total_limits);
        tcase_add_test(tc, test_10000_workers);
        tcase_add_test(tc, test_duplicates);
        tcase_add_test(tc, test_stores_and_consumers);
        tcase_add_test(tc, test_canonical_digest);
        tcase_add_test(tc, test_digest_covers_modules);
        tcase_add_test(tc, test_reload_reuses_digests);
        tcase_add_test(tc, test_shared_module);
        tcase_add_test(tc, test_errors_json);
        tcase_add_test(tc, test_corpus_bad);
        tcase_add_test(tc, test_corpus_good);
        tcase_add_test(tc, test_examples);
        tcase_add_test(tc, test_man_example);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(spec_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
