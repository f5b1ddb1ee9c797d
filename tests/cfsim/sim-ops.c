/* sim-ops.c: see sim-ops.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sim-json.h"
#include "sim-ops.h"
#include "util.h"

static const char *const fault_kinds[_SIM_FAULT_MAX] = {
        [SIM_FAULT_429] = "429",
        [SIM_FAULT_400] = "400",
        [SIM_FAULT_403] = "403",
        [SIM_FAULT_500] = "500",
        [SIM_FAULT_502] = "502",
        [SIM_FAULT_503] = "503",
        [SIM_FAULT_STALL] = "stall",
        [SIM_FAULT_DROP] = "drop",
        [SIM_FAULT_TRUNCATE] = "truncate",
};

static SimFaultKind fault_kind_from_string(const char *s) {
        for (int i = 0; i < _SIM_FAULT_MAX; i++)
                if (s && streq(s, fault_kinds[i]))
                        return (SimFaultKind) i;
        return _SIM_FAULT_INVALID;
}

static void fault_done(SimFault *f) {
        free(f->method);
        free(f->route);
        if (f->have_re)
                regfree(&f->re);
        *f = (SimFault) {};
}

void sim_faults_clear(Sim *sim) {
        for (size_t i = 0; i < sim->n_faults; i++)
                fault_done(&sim->faults[i]);
        sim->n_faults = 0;
}

static int64_t json_int_member(json_object *o, const char *key, int64_t dflt, bool *bad) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !v)
                return dflt;
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
                *bad = true;
                return dflt;
        }
        return json_object_get_int64(v);
}

static int fault_parse(json_object *o, SimFault *f, const char **ret_msg) {
        const char *method, *route;
        json_object *v;
        bool bad = false;

        *f = (SimFault) { .rate = -1, .count = -1 };
        if (!json_object_is_type(o, json_type_object)) {
                *ret_msg = "a fault rule must be an object";
                return -EINVAL;
        }
        f->kind = fault_kind_from_string(sim_json_str(o, "kind"));
        if (f->kind < 0) {
                *ret_msg = "kind must be one of 429, 500, 502, 503, stall, drop, truncate";
                return -EINVAL;
        }
        method = sim_json_str(o, "method");
        if (method && *method && !streq(method, "*")) {
                f->method = strdup(method);
                if (!f->method)
                        return -ENOMEM;
        }
        route = sim_json_str(o, "route");
        if (route && *route) {
                if (strlen(route) > 1024 || regcomp(&f->re, route, REG_EXTENDED | REG_NOSUB) != 0) {
                        *ret_msg = "route is not a valid extended regular expression";
                        fault_done(f);
                        return -EINVAL;
                }
                f->have_re = true;
                f->route = strdup(route);
                if (!f->route)
                        return -ENOMEM;
        }
        if (json_object_object_get_ex(o, "rate", &v) && v) {
                if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
                        bad = true;
                else
                        f->rate = json_object_get_double(v);
                if (f->rate < 0 || f->rate > 1)
                        bad = true;
        }
        f->count = json_int_member(o, "count", -1, &bad);
        f->retry_after = (unsigned) json_int_member(o, "retry_after", f->kind == SIM_FAULT_429 ? 1 : 0, &bad);
        f->seconds = (unsigned) json_int_member(o, "seconds", 5, &bad);
        f->rng = (uint64_t) json_int_member(o, "seed", 1, &bad) * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
        if (f->rng == 0)
                f->rng = 1;
        if (f->retry_after > 86400 || f->seconds > 3600)
                bad = true;
        if (bad) {
                *ret_msg = "rate must be 0..1; count, retry_after (<= 86400), seconds (<= 3600) and seed non-negative integers";
                fault_done(f);
                return -EINVAL;
        }
        return 0;
}

int sim_faults_set(Sim *sim, json_object *spec, const char **ret_msg) {
        SimFault nf[SIM_FAULTS_MAX];
        size_t n = 0, len;
        int r;

        *ret_msg = NULL;
        if (json_object_is_type(spec, json_type_object)) {
                r = fault_parse(spec, &nf[0], ret_msg);
                if (r < 0)
                        return r;
                n = 1;
        } else if (json_object_is_type(spec, json_type_array)) {
                len = json_object_array_length(spec);
                if (len > SIM_FAULTS_MAX) {
                        *ret_msg = "too many fault rules (max 64)";
                        return -EINVAL;
                }
                for (size_t i = 0; i < len; i++) {
                        r = fault_parse(json_object_array_get_idx(spec, i), &nf[n], ret_msg);
                        if (r < 0) {
                                for (size_t k = 0; k < n; k++)
                                        fault_done(&nf[k]);
                                return r;
                        }
                        n++;
                }
        } else {
                *ret_msg = "expected a fault rule object or an array of them";
                return -EINVAL;
        }
        sim_faults_clear(sim);
        memcpy(sim->faults, nf, sizeof(SimFault) * n);
        sim->n_faults = n;
        return 0;
}

static double rng_next(uint64_t *s) {
        uint64_t x = *s;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *s = x;
        return (double) (x >> 11) / (double) (1ULL << 53);
}

bool sim_faults_match(Sim *sim, const char *method, const char *path, SimFaultHit *ret) {
        for (size_t i = 0; i < sim->n_faults; i++) {
                SimFault *f = &sim->faults[i];

                if (f->count == 0)
                        continue;
                if (f->method && strcasecmp(f->method, method) != 0)
                        continue;
                if (f->have_re && regexec(&f->re, path, 0, NULL, 0) != 0)
                        continue;
                if (f->rate >= 0 && rng_next(&f->rng) >= f->rate)
                        continue;
                if (f->count > 0)
                        f->count--;
                f->hits++;
                *ret = (SimFaultHit) { .kind = f->kind, .retry_after = f->retry_after, .seconds = f->seconds };
                return true;
        }
        return false;
}

static void rl_key(const char *auth, char key[static 17]) {
        /* FNV-1a: a slot key, not a secret (the table lives in memory only). */
        uint64_t h = 1469598103934665603ULL;

        for (const char *p = auth ? auth : ""; *p; p++)
                h = (h ^ (uint8_t) *p) * 1099511628211ULL;
        snprintf(key, 17, "%016" PRIx64, h);
}

static SimRateWindow *rl_slot(Sim *sim, const char *auth) {
        SimRateWindow *oldest = &sim->rl[0];
        char key[17];

        rl_key(auth, key);
        for (size_t i = 0; i < SIM_RL_TOKENS; i++) {
                SimRateWindow *w = &sim->rl[i];

                if (w->start_usec && streq(w->key, key))
                        return w;
                if (!w->start_usec || (oldest->start_usec && w->last_usec < oldest->last_usec))
                        oldest = w;
        }
        *oldest = (SimRateWindow) {};
        memcpy(oldest->key, key, sizeof(key));
        return oldest;
}

bool sim_ratelimit_take(Sim *sim, const char *auth, unsigned *ret_remaining, unsigned *ret_reset) {
        uint64_t now = now_monotonic_usec(), end;
        SimRateWindow *w = rl_slot(sim, auth);

        w->last_usec = now;
        if (w->block_until_usec > now) {
                *ret_remaining = 0;
                *ret_reset = (unsigned) ((w->block_until_usec - now + USEC_PER_SEC - 1) / USEC_PER_SEC);
                return false;
        }
        if (w->start_usec == 0 || w->block_until_usec ||
            now >= w->start_usec + (uint64_t) sim->rl_window * USEC_PER_SEC) {
                w->start_usec = now;
                w->used = 0;
                w->block_until_usec = 0;
        }
        if (w->used >= sim->rl_quota) {
                /* Past the limit: every call is refused for the block length
                 * (Cloudflare: "blocked for the next five minutes"). */
                w->block_until_usec = now + (uint64_t) sim->rl_block * USEC_PER_SEC;
                *ret_remaining = 0;
                *ret_reset = sim->rl_block > 0 ? sim->rl_block : 1;
                return false;
        }
        w->used++;
        end = w->start_usec + (uint64_t) sim->rl_window * USEC_PER_SEC;
        *ret_remaining = sim->rl_quota - w->used;
        *ret_reset = (unsigned) ((end - now + USEC_PER_SEC - 1) / USEC_PER_SEC);
        return true;
}

void sim_ratelimit_reset(Sim *sim) {
        memset(sim->rl, 0, sizeof(sim->rl));
}

static void counter_inc(json_object *map, const char *key) {
        json_object *v;

        if (json_object_object_get_ex(map, key, &v))
                json_object_int_inc(v, 1);
        else
                json_object_object_add(map, key, json_object_new_int64(1));
}

void sim_stats_count(Sim *sim, const char *method, const char *route_template,
                     const char *path, const char *query, const char *user_agent,
                     unsigned status, bool wrote) {
        SimReqLog *l = &sim->reqlog[sim->reqlog_next];
        char key[16];

        sim->requests++;
        if (wrote)
                sim->writes++;
        if (route_template)
                counter_inc(sim->by_route, route_template);
        if (status > 0) {
                snprintf(key, sizeof(key), "%u", status);
                counter_inc(sim->by_status, key);
        }
        snprintf(l->method, sizeof(l->method), "%s", method);
        free(l->path);
        l->path = strndup(path, 2048);
        free(l->query);
        l->query = strndup(query ? query : "", 2048);
        l->status = status;
        snprintf(l->user_agent, sizeof(l->user_agent), "%s", user_agent ? user_agent : "");
        sim_now(l->time);
        sim->reqlog_next = (sim->reqlog_next + 1) % SIM_REQLOG_MAX;
        if (sim->reqlog_n < SIM_REQLOG_MAX)
                sim->reqlog_n++;
}

void sim_stats_reset(Sim *sim) {
        sim->requests = sim->writes = 0;
        json_object_put(sim->by_route);
        json_object_put(sim->by_status);
        sim->by_route = json_object_new_object();
        sim->by_status = json_object_new_object();
        for (size_t i = 0; i < SIM_REQLOG_MAX; i++) {
                sim->reqlog[i].path = mfree(sim->reqlog[i].path);
                sim->reqlog[i].query = mfree(sim->reqlog[i].query);
        }
        sim->reqlog_next = sim->reqlog_n = 0;
        sim_ratelimit_reset(sim);
}

/* ---- /__sim routes ---------------------------------------------------- */

static void reply_plain(SimReply *rep, unsigned status, json_object *o) {
        reply_raw(rep, status, "application/json", "", 0);
        free(rep->body);
        rep->body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        if (!rep->body)
                abort();
        rep->size = strlen(rep->body);
        json_object_put(o);
}

static void reply_op_error(SimReply *rep, unsigned status, const char *msg) {
        json_object *o = json_object_new_object();

        sim_set_str(o, "error", msg);
        reply_plain(rep, status, o);
}

static void op_stats(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *o = json_object_new_object();

        sim_set_int(o, "requests", (int64_t) sim->requests);
        sim_set_int(o, "writes", (int64_t) sim->writes);
        json_object_object_add(o, "by_route", sim_copy(sim->by_route));
        json_object_object_add(o, "by_status", sim_copy(sim->by_status));
        reply_plain(rep, 200, o);
}

static void op_reset(Sim *sim, const SimRequest *req, SimReply *rep) {
        const char *c = sim_query(req, "counters");
        json_object *o = json_object_new_object();

        sim_stats_reset(sim);
        if (!(c && (streq(c, "1") || streq(c, "true")))) {
                sim_store_reset(sim);
                sim_faults_clear(sim);
                pthread_cond_broadcast(&sim->wake);
        }
        sim_set_bool(o, "ok", true);
        reply_plain(rep, 200, o);
}

static json_object *faults_json(Sim *sim) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; i < sim->n_faults; i++) {
                SimFault *f = &sim->faults[i];
                json_object *o = json_object_new_object();

                sim_set_str(o, "method", f->method);
                sim_set_str(o, "route", f->route);
                sim_set_str(o, "kind", fault_kinds[f->kind]);
                if (f->rate >= 0)
                        json_object_object_add(o, "rate", json_object_new_double(f->rate));
                sim_set_int(o, "count", f->count);
                sim_set_int(o, "retry_after", f->retry_after);
                sim_set_int(o, "seconds", f->seconds);
                sim_set_int(o, "hits", (int64_t) f->hits);
                json_object_array_add(a, o);
        }
        return a;
}

static void op_faults_set(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *spec = NULL, *o;
        const char *msg = NULL;
        int r;

        if (sim_json_parse(req->body, req->body_size, &spec) < 0)
                return reply_op_error(rep, 400, "body is not JSON");
        r = sim_faults_set(sim, spec, &msg);
        json_object_put(spec);
        if (r < 0)
                return reply_op_error(rep, 400, msg ? msg : "out of memory");
        o = json_object_new_object();
        json_object_object_add(o, "faults", faults_json(sim));
        reply_plain(rep, 200, o);
}

static void op_faults_get(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "faults", faults_json(sim));
        reply_plain(rep, 200, o);
}

static void op_requests(Sim *sim, const SimRequest *req, SimReply *rep) {
        long limit = sim_query_uint(req, "limit", SIM_REQLOG_MAX, SIM_REQLOG_MAX);
        json_object *a = json_object_new_array(), *o;
        size_t n = sim->reqlog_n, first;

        if (limit >= 0 && (size_t) limit < n)
                n = (size_t) limit;
        /* Oldest first among the last n. */
        first = (sim->reqlog_next + SIM_REQLOG_MAX - n) % SIM_REQLOG_MAX;
        for (size_t i = 0; i < n; i++) {
                SimReqLog *l = &sim->reqlog[(first + i) % SIM_REQLOG_MAX];
                json_object *e = json_object_new_object();

                sim_set_str(e, "method", l->method);
                sim_set_str(e, "path", l->path);
                sim_set_str(e, "query", l->query ? l->query : "");
                sim_set_int(e, "status", l->status);
                sim_set_str(e, "time", l->time);
                sim_set_str(e, "user_agent", l->user_agent);
                json_object_array_add(a, e);
        }
        o = json_object_new_object();
        json_object_object_add(o, "requests", a);
        reply_plain(rep, 200, o);
}

static void op_seed(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *spec = NULL, *o;
        const char *msg = NULL;
        int r;

        if (sim_json_parse(req->body, req->body_size, &spec) < 0)
                return reply_op_error(rep, 400, "body is not JSON");
        r = sim_seed(sim, spec, &msg);
        json_object_put(spec);
        if (r < 0)
                return reply_op_error(rep, 400, msg ? msg : "invalid seed");
        o = json_object_new_object();
        sim_set_bool(o, "ok", true);
        reply_plain(rep, 200, o);
}

static void op_state(Sim *sim, const SimRequest *req, SimReply *rep) {
        reply_plain(rep, 200, json_object_get(sim->state));
}

void sim_ops_handle(Sim *sim, const SimRequest *req, SimReply *rep) {
        static const struct {
                const char *method, *path;
                void (*fn)(Sim *, const SimRequest *, SimReply *);
        } ops[] = {
                { "GET", "/__sim/stats", op_stats },
                { "POST", "/__sim/reset", op_reset },
                { "POST", "/__sim/faults", op_faults_set },
                { "GET", "/__sim/faults", op_faults_get },
                { "GET", "/__sim/requests", op_requests },
                { "GET", "/__sim/state", op_state },
                { "POST", "/__sim/seed", op_seed },
        };
        bool path_known = false;

        for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
                if (!streq(req->path, ops[i].path))
                        continue;
                path_known = true;
                if (streq(req->method, ops[i].method))
                        return ops[i].fn(sim, req, rep);
        }
        reply_op_error(rep, path_known ? 405 : 404, path_known ? "method not allowed" : "no such operator route");
}
