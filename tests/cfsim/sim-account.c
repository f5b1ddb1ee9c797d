/* sim-account.c: account-level routes: the Audit Logs v2 feed, token
 * verification, the user, accounts and memberships (what `wrangler whoami`
 * and account lookups call). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sim-http.h"
#include "sim-json.h"
#include "util.h"

#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX     1000

static json_object *get(json_object *o, const char *key) {
        json_object *v = NULL;

        if (o)
                (void) json_object_object_get_ex(o, key, &v);
        return v;
}

/* The values of a repeated query parameter ("actor_token_id.not=a&
 * actor_token_id.not=b", as SDK 6.5 sends { not: [a, b] }). */
typedef struct QueryValues {
        const char *key;
        const char *v[SIM_AUDIT_FILTER_MAX];
        size_t n;
        bool too_many;
} QueryValues;

static enum MHD_Result collect_value(void *userdata, enum MHD_ValueKind kind, const char *key, const char *value) {
        QueryValues *q = userdata;

        if (!streq(key, q->key))
                return MHD_YES;
        if (q->n == SIM_AUDIT_FILTER_MAX)
                q->too_many = true;
        else
                q->v[q->n++] = value ? value : "";
        return MHD_YES;
}

static bool query_values_contain(const QueryValues *q, const char *s) {
        for (size_t i = 0; s && i < q->n; i++)
                if (streq(q->v[i], s))
                        return true;
        return false;
}

static json_object *audit_out(json_object *e) {
        json_object *o = sim_copy(e);

        json_object_object_del(o, "seq");
        json_object_object_del(o, "usec");
        return o;
}

/* GET /accounts/:id/logs/audit?since=&before=&cursor=&limit=&direction=
 * The cursor is the sequence number of the last entry returned; entries
 * written after a listing started never shift later pages. */
static void h_audit(Sim *sim, const SimRequest *req, SimReply *rep) {
        const char *since_s = sim_query(req, "since"), *before_s = sim_query(req, "before"),
                   *cursor_s = sim_query(req, "cursor"), *dir = sim_query(req, "direction");
        /* per_page is accepted as another name for limit (generic clients). */
        long limit = sim_query_uint(req, "limit", sim_query_uint(req, "per_page", AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX),
                                    AUDIT_LIMIT_MAX);
        uint64_t since = 0, before = UINT64_MAX, cursor = 0;
        bool asc = streq_ptr(dir, "asc"), more = false;
        json_object *log = sim_coll(sim, "audit"), *out, *info;
        size_t n = json_object_array_length(log), count = 0;
        int64_t last_seq = 0;
        uint64_t now = now_realtime_usec();
        QueryValues not_token = { .key = "actor_token_id.not" };

        if (sim->audit_forbidden)
                /* A token without "Account Settings Read" (cfsim's switch,
                 * --audit-forbidden). */
                return reply_error(rep, 403, 10000, "Authentication error");
        if (!since_s || !*since_s || !before_s || !*before_s)
                /* The Audit Logs v2 reference lists both as required. */
                return reply_error(rep, 400, 10021, "since and before are required query parameters");
        if (dir && !asc && !streq(dir, "desc"))
                return reply_error(rep, 400, 10021, "direction must be asc or desc");
        if (limit < 0)
                return reply_error(rep, 400, 10021, "limit must be a positive integer");
        if (limit == 0)
                limit = AUDIT_LIMIT_DEFAULT;
        if ((since_s && sim_parse_time(since_s, &since) < 0) || (before_s && sim_parse_time(before_s, &before) < 0))
                return reply_error(rep, 400, 10021, "since and before must be RFC 3339 times");
        if (cursor_s && *cursor_s && safe_atou64(cursor_s, &cursor) < 0)
                return reply_error(rep, 400, 10021, "invalid cursor");
        (void) MHD_get_connection_values(req->connection, MHD_GET_ARGUMENT_KIND, collect_value, &not_token);
        if (not_token.too_many)
                return reply_error(rep, 400, 10021, "too many actor_token_id.not values");
        if (sim->audit_page_max > 0 && limit > (long) sim->audit_page_max)
                limit = sim->audit_page_max;

        out = json_object_new_array();
        for (size_t k = 0; k < n; k++) {
                json_object *e = json_object_array_get_idx(log, asc ? k : n - 1 - k);
                uint64_t seq = (uint64_t) json_object_get_int64(get(e, "seq"));
                uint64_t t = (uint64_t) json_object_get_int64(get(e, "usec"));

                if (cursor && (asc ? seq <= cursor : seq >= cursor))
                        continue;
                if (t < since || t >= before)
                        continue;
                if (sim->audit_delay_usec > 0 && t + sim->audit_delay_usec > now)
                        continue;       /* not ingested yet */
                if (not_token.n > 0 && query_values_contain(&not_token, json_object_get_string(get(get(e, "actor"), "token_id"))))
                        continue;       /* filtered out */
                if (count == (size_t) limit) {
                        more = true;
                        break;
                }
                json_object_array_add(out, audit_out(e));
                last_seq = (int64_t) seq;
                count++;
        }
        info = json_object_new_object();
        sim_set_int(info, "count", (int64_t) count);
        if (more) {
                /* Where the cloudflare SDK 6.x reads it: CursorPaginationAfter
                 * takes result_info.cursors.after (pagination.d.ts). */
                json_object *cursors = json_object_new_object();
                char c[32];

                snprintf(c, sizeof(c), "%" PRId64, last_seq);
                sim_set_str(cursors, "after", c);
                json_object_object_add(info, "cursors", cursors);
        }
        reply_result(rep, out, info);
}

static void h_token_verify(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *o = json_object_new_object();
        char id[33];

        sim_token_id(sim_header(req, MHD_HTTP_HEADER_AUTHORIZATION), id);
        sim_set_str(o, "id", id);
        sim_set_str(o, "status", "active");
        reply_result(rep, o, NULL);
}

static void h_user(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *o = json_object_new_object();

        sim_set_str(o, "id", "cfsim00000000000000000000000user");
        sim_set_str(o, "email", "cfsim@example.com");
        reply_result(rep, o, NULL);
}

static json_object *account_obj(Sim *sim) {
        json_object *o = json_object_new_object();

        sim_set_str(o, "id", sim->account_id);
        sim_set_str(o, "name", "cfsim account");
        sim_set_str(o, "type", "standard");
        json_object_object_add(o, "settings", json_object_new_object());
        sim_set_str(o, "created_on", "2020-01-01T00:00:00.000000Z");
        return o;
}

static void h_accounts(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *a = json_object_new_array();

        json_object_array_add(a, account_obj(sim));
        reply_paged(rep, req, a, 20, 50);
}

static void h_account(Sim *sim, const SimRequest *req, SimReply *rep) {
        reply_result(rep, account_obj(sim), NULL);
}

static void h_memberships(Sim *sim, const SimRequest *req, SimReply *rep) {
        json_object *a = json_object_new_array(), *m = json_object_new_object(), *acc = json_object_new_object();

        sim_set_str(m, "id", "cfsim000000000000000000membership");
        sim_set_str(acc, "id", sim->account_id);
        sim_set_str(acc, "name", "cfsim account");
        json_object_object_add(m, "account", acc);
        sim_set_str(m, "status", "accepted");
        json_object_object_add(m, "roles", json_object_new_array());
        json_object_array_add(json_object_object_get(m, "roles"), json_object_new_string("Super Administrator - All Privileges"));
        json_object_array_add(a, m);
        reply_paged(rep, req, a, 20, 50);
}

const SimRoute sim_account_routes[] = {
        { "GET", "/accounts/:account_id/logs/audit", h_audit, "account" },
        { "GET", "/user/tokens/verify", h_token_verify, "user" },
        { "GET", "/user", h_user, "user" },
        { "GET", "/accounts", h_accounts, "account" },
        { "GET", "/accounts/:account_id", h_account, "account" },
        { "GET", "/memberships", h_memberships, "account" },
        {}
};
