/* cfreq.c: the table of Cloudflare paths and their builders (cfreq.h). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

int cfreq_audit_query(uint64_t since_usec, uint64_t before_usec, char **ret) {
        char since[64], before[64];
        _cleanup_free_ char *a = cfapi_escape(format_rfc3339(since_usec, since, sizeof(since))),
                            *b = cfapi_escape(format_rfc3339(before_usec, before, sizeof(before)));

        assert(ret);
        if (!a || !b || asprintf(ret, "since=%s&before=%s&limit=1000", a, b) < 0)
                return -ENOMEM;
        return 0;
}
