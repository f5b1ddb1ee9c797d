/* test-engine-fence.c: an engine over a store that fences it out. The
 * engine runs against cfsim (tests/cfsim/cfsim, on a free loopback port)
 * with a file store wrapped so that commit number N and every later one
 * answer -ESTALE (what the etcd backend answers once another binderyd
 * leads): the run must stop as "interrupted", never call commit again,
 * and a later apply run is refused. Exits 77 when cfsim is not built. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "engine.h"
#include "ledger.h"
#include "log.h"
#include "spec.h"
#include "store-file.h"
#include "util.h"

#define ACCOUNT "0123456789abcdef0123456789abcdef"
#define TOKEN "test-engine-fence-token-0123456789"

static char *cfsim_path;
static pid_t cfsim_pid;
static char *cfsim_url;         /* …/client/v4 */

/* ---- a file store that fences after some commits ---- */

typedef struct Fence {
        Store *inner;
        unsigned allow;             /* commits that succeed */
        unsigned calls;             /* commits asked for */
        unsigned after_fence;       /* commits asked for after the first -ESTALE */
        bool fenced;
} Fence;

static Fence *fence;            /* the one the test looks at (owned by its Store) */

static int fence_load(void *impl, store_record_fn fn, void *userdata, char **reterr) {
        return store_load(((Fence *) impl)->inner, fn, userdata, reterr);
}

static int fence_commit(void *impl, const StoreChange *c, size_t n, char **reterr) {
        Fence *f = impl;

        f->calls++;
        if (f->fenced)
                f->after_fence++;
        if (f->calls > f->allow) {
                f->fenced = true;
                if (reterr)
                        *reterr = strdup("leader key has another revision");
                return -ESTALE;
        }
        return store_commit(f->inner, c, n, reterr);
}

static int fence_hmac_key(void *impl, uint8_t ret[static STORE_HMAC_KEY_SIZE], char **reterr) {
        return store_hmac_key(((Fence *) impl)->inner, ret, reterr);
}

static const char *fence_describe(void *impl) {
        (void) impl;
        return "fence";
}

static void fence_free(void *impl) {
        Fence *f = impl;

        store_free(f->inner);
        free(f);
}

static const StoreOps fence_ops = {
        .name = "fence",
        .load = fence_load,
        .commit = fence_commit,
        .hmac_key = fence_hmac_key,
        .describe = fence_describe,
        .free = fence_free,
};

static Store *fence_new(const char *dir, unsigned allow) {
        Store *s = calloc(1, sizeof(Store));
        Fence *f = calloc(1, sizeof(Fence));

        ck_assert_ptr_nonnull(s);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(store_file_open(dir, true, &f->inner, NULL), 0);
        f->allow = allow;
        s->ops = &fence_ops;
        s->impl = f;
        s->writable = true;
        fence = f;
        return s;
}

/* ---- cfsim ---- */

static void cfsim_start(const char *dir) {
        _cleanup_free_ char *out = path_join(dir, "cfsim.out");
        char line[512];

        cfsim_pid = fork();
        ck_assert_int_ge(cfsim_pid, 0);
        if (cfsim_pid == 0) {
                int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

                /* Stopped with the test, whatever way the test ends. */
                if (fd < 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || dup2(fd, STDOUT_FILENO) < 0)
                        _exit(127);
                execl(cfsim_path, cfsim_path, "--port", "0", "--host", "127.0.0.1", "--account-id", ACCOUNT,
                      "--token", TOKEN, (char *) NULL);
                _exit(127);
        }
        for (unsigned i = 0; i < 200 && !cfsim_url; i++) {
                FILE *f = fopen(out, "re");

                while (f && fgets(line, sizeof line, f))
                        if (startswith(line, "cfsim listening on ")) {
                                line[strcspn(line, "\n")] = 0;
                                cfsim_url = strdup(line + strlen("cfsim listening on "));
                        }
                if (f)
                        fclose(f);
                if (!cfsim_url)
                        usleep(25 * 1000);
        }
        ck_assert_msg(cfsim_url, "cfsim did not start");
}

static void cfsim_stop(void) {
        if (cfsim_pid > 0) {
                (void) kill(cfsim_pid, SIGTERM);
                (void) waitpid(cfsim_pid, NULL, 0);
                cfsim_pid = 0;
        }
        cfsim_url = mfree(cfsim_url);
}

static size_t keep_body(char *p, size_t size, size_t n, void *userdata) {
        FILE *f = userdata;

        return fwrite(p, size, n, f);
}

/* Writes cfsim has answered (GET /__sim/stats). */
static long cfsim_writes(void) {
        _cleanup_free_ char *url = NULL, *body = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&body, &size);
        CURL *c = curl_easy_init();
        json_object *j, *w;
        long n;

        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_ge(asprintf(&url, "%.*s/__sim/stats", (int) (strlen(cfsim_url) - strlen("/client/v4")),
                                  cfsim_url), 0);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
        ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
        curl_easy_cleanup(c);
        fclose(f);
        j = json_tokener_parse(body);
        ck_assert_ptr_nonnull(j);
        ck_assert(json_object_object_get_ex(j, "writes", &w));
        n = (long) json_object_get_int64(w);
        json_object_put(j);
        return n;
}

/* ---- the run ---- */

static char *make_tmpdir(void) {
        const char *tmp = getenv("TMPDIR");
        char *d = NULL;

        ck_assert_int_ge(asprintf(&d, "%s/test-engine-fence.XXXXXX", isempty(tmp) ? "/tmp" : tmp), 0);
        ck_assert_ptr_nonnull(mkdtemp(d));
        return d;
}

static void write_file(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *p = path_join(dir, name);

        ck_assert_int_eq(write_file_atomic(p, text, strlen(text), 0600), 0);
}

static void rm_rf(const char *dir) {
        _cleanup_free_ char *cmd = NULL;

        ck_assert_int_ge(asprintf(&cmd, "rm -rf '%s'", dir), 0);
        ck_assert_int_eq(system(cmd), 0);
}

typedef struct Done {
        sd_event *event;
        bool done;
        RunResult result;
        char *text;
} Done;

static void on_done(Engine *e, const RunReport *rep, void *userdata) {
        Done *d = userdata;

        (void) e;
        d->done = true;
        d->result = rep->result;
        d->text = rep->text ? strdup(rep->text) : NULL;
        (void) sd_event_exit(d->event, 0);
}

/* Applies a spec of four KV namespaces with commits after the first
 * `allow` fenced; returns cfsim's writes. */
static long run_fenced(unsigned allow, unsigned *ret_after_fence, RunResult *ret_result, char **ret_text,
                       int *ret_second) {
        _cleanup_free_ char *dir = make_tmpdir(), *spec = NULL, *state = NULL, *yaml = NULL, *cfg_text = NULL;
        _cleanup_(config_freep) Config *cfg = NULL;
        _cleanup_(generation_freep) Generation *g = NULL;
        Engine *e = NULL;
        sd_event *event = NULL;
        SpecErrors se = {};
        Done d = {};
        RunOptions ro = { .mode = RUN_MODE_APPLY, .run_id = "run-fence" };
        long writes;

        cfsim_start(dir);
        spec = path_join(dir, "spec");
        state = path_join(dir, "state");
        ck_assert_int_eq(mkdir(spec, 0700), 0);
        write_file(spec, "kv.yaml", "kind: KVNamespace\nname: a\n---\nkind: KVNamespace\nname: b\n---\n"
                                    "kind: KVNamespace\nname: c\n---\nkind: KVNamespace\nname: d\n");
        ck_assert_int_ge(asprintf(&cfg_text, "account_id: %s\napi_url: %s\nspec_dir: %s\nstate_dir: %s\n"
                                  "api_token: { env: FENCE_CF_TOKEN }\nprune_settle: 0s\nlog_level: warning\n",
                                  ACCOUNT, cfsim_url, spec, state), 0);
        write_file(dir, "binderyd.yaml", cfg_text);
        yaml = path_join(dir, "binderyd.yaml");
        ck_assert_int_eq(setenv("FENCE_CF_TOKEN", TOKEN, 1), 0);
        ck_assert_int_eq(config_load(yaml, NULL, &cfg, NULL, NULL), 0);
        ck_assert_int_eq(spec_load(spec, &g, &se), 0);
        spec_errors_done(&se);

        ck_assert_int_eq(sd_event_new(&event), 0);
        d.event = event;
        ck_assert_int_eq(mkdir(state, 0700), 0);
        ck_assert_int_eq(engine_new_with_store(&e, event, cfg, fence_new(state, allow)), 0);
        ck_assert_int_eq(engine_run(e, g, &ro, on_done, &d), 0);
        ck_assert_int_ge(sd_event_loop(event), 0);
        ck_assert(d.done);
        *ret_result = d.result;
        *ret_text = d.text;
        *ret_after_fence = fence->after_fence;
        /* A later apply run is refused at once. */
        *ret_second = engine_run(e, g, &ro, on_done, &d);
        writes = cfsim_writes();
        e = engine_free(e);
        sd_event_unref(event);
        cfsim_stop();
        rm_rf(dir);
        return writes;
}

/* Fenced at the commit before apply starts: nothing is written at all. */
START_TEST(test_fenced_before_apply) {
        unsigned after = 99;
        RunResult res;
        _cleanup_free_ char *text = NULL;
        int second;
        long writes = run_fenced(0, &after, &res, &text, &second);

        ck_assert_int_eq(res, RUN_RESULT_INTERRUPTED);
        ck_assert_str_eq(run_result_to_string(res), "interrupted");
        ck_assert_uint_eq(after, 0);
        ck_assert_int_eq(writes, 0);
        ck_assert_int_eq(second, -ESTALE);
        ck_assert_ptr_nonnull(text);
        ck_assert_msg(strstr(text, "interrupted"), "%s", text);
}
END_TEST

/* Fenced at the intents' commit: no create starts, no commit follows. */
START_TEST(test_fenced_at_intents) {
        unsigned after = 99;
        RunResult res;
        _cleanup_free_ char *text = NULL;
        int second;
        long writes = run_fenced(1, &after, &res, &text, &second);

        ck_assert_int_eq(res, RUN_RESULT_INTERRUPTED);
        ck_assert_uint_eq(after, 0);
        ck_assert_int_eq(writes, 0);
        ck_assert_int_eq(second, -ESTALE);
}
END_TEST

/* Fenced after the creates went out: their results are not committed,
 * and nothing more is asked of the store. */
START_TEST(test_fenced_after_creates) {
        unsigned after = 99;
        RunResult res;
        _cleanup_free_ char *text = NULL;
        int second;
        long writes = run_fenced(2, &after, &res, &text, &second);

        ck_assert_int_eq(res, RUN_RESULT_INTERRUPTED);
        ck_assert_uint_eq(after, 0);
        ck_assert_int_eq(writes, 4);          /* the creates went out */
        ck_assert_int_eq(second, -ESTALE);
}
END_TEST

/* Unfenced, the same run converges (the wrapper is not the problem). */
START_TEST(test_unfenced_converges) {
        unsigned after = 99;
        RunResult res;
        _cleanup_free_ char *text = NULL;
        int second;
        long writes = run_fenced(1000, &after, &res, &text, &second);

        ck_assert_int_eq(res, RUN_RESULT_OK);
        ck_assert_int_eq(writes, 4);
        ck_assert_int_eq(second, 0);
}
END_TEST

int main(void) {
        const char *b = getenv("top_builddir");
        SRunner *sr;
        Suite *s;
        TCase *tc;
        int failed;

        if (asprintf(&cfsim_path, "%s/tests/cfsim/cfsim", isempty(b) ? "." : b) < 0)
                return EXIT_FAILURE;
        if (access(cfsim_path, X_OK) < 0) {
                fprintf(stderr, "SKIP: %s is not built; the fence test needs cfsim\n", cfsim_path);
                return 77;
        }
        log_set_max_level(LOG_ERR);
        (void) signal(SIGPIPE, SIG_IGN);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        s = suite_create("engine-fence");
        tc = tcase_create("core");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_fenced_before_apply);
        tcase_add_test(tc, test_fenced_at_intents);
        tcase_add_test(tc, test_fenced_after_creates);
        tcase_add_test(tc, test_unfenced_converges);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        curl_global_cleanup();
        free(cfsim_path);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
