/* cmd-engine.c: `binderyd plan` and `binderyd apply` (binderyd(8)): one
 * reconcile on a private event loop, through engine.h. Logging lives
 * here; the engine reports. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "commands.h"
#include "cmd-config.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "manager-ha.h"
#include "spec.h"
#include "util.h"

typedef struct CliRun {
        sd_event *event;
        bool done;
        RunResult result;
        unsigned n_blocked;
        char *text;
        json_object *json;
} CliRun;

static void on_done(Engine *e, const RunReport *report, void *userdata) {
        CliRun *c = userdata;

        c->done = true;
        c->result = report->result;
        c->n_blocked = report->n_blocked;
        c->text = report->text ? strdup(report->text) : NULL;
        c->json = report->json ? json_object_get(report->json) : NULL;
        (void) sd_event_exit(c->event, 0);
}

/* When the generation became current, as the CLI can tell: the newest
 * modification time among the spec's files and modules. */
static uint64_t generation_since(const Generation *g) {
        uint64_t newest = 0;
        struct stat st;

        for (size_t i = 0; g->files && g->files[i]; i++) {
                _cleanup_free_ char *p = path_join(g->spec_dir, g->files[i]);

                if (p && stat(p, &st) >= 0) {
                        uint64_t t = (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC + (uint64_t) st.st_mtim.tv_nsec / 1000;

                        if (t > newest)
                                newest = t;
                }
        }
        for (size_t i = 0; i < g->n_workers; i++)
                for (size_t j = 0; j < g->workers[i].n_modules; j++)
                        if (g->workers[i].modules[j].path && stat(g->workers[i].modules[j].path, &st) >= 0) {
                                uint64_t t = (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC +
                                             (uint64_t) st.st_mtim.tv_nsec / 1000;

                                if (t > newest)
                                        newest = t;
                        }
        return newest ? newest : now_realtime_usec();
}

/* The spec, loaded with the config's grant; every error logged. */
static int load_spec(const Config *c, const char *name, Generation **ret) {
        _cleanup_(spec_grant_done) SpecGrant grant = {};
        SpecErrors se = {};
        int r;

        r = config_spec_grant(c, &grant);
        if (r < 0)
                return log_error_errno(r, "Out of memory.");
        r = spec_load_granted(c->spec_dir, &grant, ret, &se);
        if (r < 0) {
                for (size_t i = 0; i < se.n; i++) {
                        _cleanup_free_ char *s = spec_error_to_string(&se.errors[i]);

                        log_error("%s", s ?: se.errors[i].message);
                }
                if (r == -EINVAL)
                        log_error("%s: the spec in '%s' is invalid; nothing was changed.", name, c->spec_dir);
                else
                        log_error_errno(r, "%s: failed to load the spec '%s': %m", name, c->spec_dir);
        }
        spec_errors_done(&se);
        return r;
}

/* The engine over the state directory (with ha:, the ledger in etcd, read
 * only). Returns 0 or the exit code, logged. */
static int start_engine(const Config *c, sd_event *event, RunMode mode, const char *name, Engine **ret) {
        int r;

        r = c->ha ? manager_ha_engine_readonly(ret, event, c) : engine_new(ret, event, c, mode == RUN_MODE_APPLY);
        if (r == -EBUSY) {
                log_error("%s: the state directory '%s' is locked by another process (is binderyd running?). "
                          "Use POST /v1/reconcile on the daemon's HTTP API instead.",
                          name, c->state_dir);
                return EXIT_FAILED;
        }
        if (r == -EXDEV) {
                log_error("%s: the state in '%s' belongs to another account or API URL; refusing to act on "
                          "account '%s' at '%s' with it.",
                          name, c->state_dir, strna(c->account_id), strna(c->api_url));
                return EXIT_BLOCKED;
        }
        if (r < 0) {
                log_error_errno(r, "%s: failed to start the engine (state '%s'): %m", name, c->state_dir);
                return EXIT_FAILED;
        }
        return 0;
}

/* The run's report on stdout, as JSON or text. */
static void print_report(const Options *o, const CliRun *cr) {
        if (o->json) {
                if (cr->json)
                        printf("%s\n", json_object_to_json_string_ext(cr->json, JSON_C_TO_STRING_PRETTY |
                                                                                   JSON_C_TO_STRING_SPACED |
                                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        } else if (cr->text)
                fputs(cr->text, stdout);
        fflush(stdout);
}

/* One precedence for every verb: 1 > 3 > 2 > 0. A plan with blocked
 * actions (a missing binding target, an unowned resource, the deletion
 * guard) is blocked (3); waiting removals are pending changes (2). */
static int run_exit_code(const CliRun *cr) {
        json_object *v;
        unsigned waiting = 0;

        if (cr->json && json_object_object_get_ex(cr->json, "waiting", &v))
                waiting = (unsigned) json_object_get_int(v);
        return exit_code_for_result(cr->n_blocked > 0 && cr->result != RUN_RESULT_FAILED ? "blocked" :
                                    run_result_to_string(cr->result), waiting);
}

static int run(const Options *o, RunMode mode) {
        const char *name = mode == RUN_MODE_PLAN ? "plan" : "apply";
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(generation_freep) Generation *g = NULL;
        _cleanup_(engine_freep) Engine *e = NULL;
        sd_event *event = NULL;
        CliRun cr = {};
        RunOptions ro = {};
        char run_id[64];
        int r, ret;

        r = cmd_load_config(o, &c);
        if (r < 0)
                return EXIT_FAILED;
        if (!o->log_level)
                log_set_max_level(c->log_level);
        if (c->ha && mode == RUN_MODE_APPLY) {
                log_error("apply: with ha: only the leading daemon writes; use binderyd reconcile (any host "
                          "forwards it to the leader).");
                return EXIT_FAILED;
        }
        if (load_spec(c, name, &g) < 0)
                return EXIT_FAILED;

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m"), EXIT_FAILED;
        cr.event = event;
        ret = start_engine(c, event, mode, name, &e);
        if (ret != 0)
                goto out;

        snprintf(run_id, sizeof(run_id), "cli-%s-%llx", name, (unsigned long long) now_realtime_usec());
        ro.mode = mode;
        ro.force = o->force;
        ro.report_noops = true;
        ro.run_id = run_id;
        ro.generation_since_usec = generation_since(g);
        r = engine_run(e, g, &ro, on_done, &cr);
        if (r < 0) {
                log_error_errno(r, "%s: failed to start: %m", name);
                ret = EXIT_FAILED;
                goto out;
        }
        r = sd_event_loop(event);
        if (r < 0 || !cr.done) {
                log_error_errno(r < 0 ? r : -EIO, "%s: the event loop failed: %m", name);
                ret = EXIT_FAILED;
                goto out;
        }
        print_report(o, &cr);
        ret = run_exit_code(&cr);
out:
        free(cr.text);
        json_object_put(cr.json);
        e = engine_free(e);
        sd_event_unref(event);
        return ret;
}

int cmd_plan(const Options *o) {
        return run(o, RUN_MODE_PLAN);
}

int cmd_apply(const Options *o) {
        return run(o, RUN_MODE_APPLY);
}
