/* spec-validate.c: the rules of bindery-spec(5) that need more than one
 * field: references between documents, Durable Object histories; then the
 * canonical order and the digests of a generation. Single-value rules
 * (names, cron, dates) are in spec-rules.c; it calls nothing in spec.c. */
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "binding-kinds.h"
#include "spec-internal.h"
#include "util.h"

/* Single spaces between fields, names upper-cased: equal schedules, equal text. */
static char *cron_canonical(const char *s) {
        char *r = calloc(1, strlen(s) + 1), *o = r;
        const char *p = s;

        if (!r)
                return NULL;
        for (size_t len; (p = spec_next_field(p, &len)); p += len) {
                if (o != r)
                        *o++ = ' ';
                for (size_t i = 0; i < len; i++)
                        *o++ = (char) toupper((unsigned char) p[i]);
        }
        *o = 0;
        return r;
}

/* ---- duplicates ---- */

typedef struct NameRef {
        const char *name;
        const Location *loc;
        size_t idx;
} NameRef;

static int cmp_nameref(const void *a, const void *b) {
        const NameRef *x = a, *y = b;
        int r = strcmp(x->name, y->name);

        if (r != 0)
                return r;
        return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Reports every element of base[0..n) whose string at name_off repeats an
 * earlier one; "earlier" is array order, which is file order. */
static void check_dups(SpecCtx *c, const void *base, size_t n, size_t stride, size_t name_off,
                       size_t loc_off, size_t doc_name_off, const char *what) {
        _cleanup_free_ NameRef *refs = NULL;
        size_t k = 0;

        if (n < 2)
                return;
        refs = calloc(n, sizeof(NameRef));
        if (!refs) {
                c->oom = true;
                return;
        }
        for (size_t i = 0; i < n; i++) {
                const char *el = (const char *) base + i * stride;
                const char *name = *(char *const *) (el + name_off);

                if (!name)
                        continue;
                refs[k++] = (NameRef) { .name = name, .loc = (const Location *) (el + loc_off), .idx = i };
        }
        qsort(refs, k, sizeof(NameRef), cmp_nameref);
        for (size_t i = 1, first = 0; i < k; i++) {
                if (!streq(refs[i].name, refs[first].name)) {
                        first = i;
                        continue;
                }
                if (doc_name_off != SIZE_MAX) {
                        /* Same document name: already reported as a duplicate document. */
                        const char *a = *(char *const *) ((const char *) base + refs[i].idx * stride + doc_name_off);
                        const char *b = *(char *const *) ((const char *) base + refs[first].idx * stride + doc_name_off);

                        if (streq_ptr(a, b))
                                continue;
                }
                spec_error_at(c, *refs[i].loc, "duplicate %s '%s' (first defined at %s:%u:%u)", what,
                              refs[i].name, refs[first].loc->file, refs[first].loc->line,
                              refs[first].loc->column);
        }
}

#define CHECK_DUPS(c, arr, n, type, field, what) \
        check_dups((c), (arr), (n), sizeof(type), offsetof(type, field), offsetof(type, loc), SIZE_MAX, (what))
/* The Cloudflare-side name, unless the document name already repeats. */
#define CHECK_CF_DUPS(c, arr, n, type, field, what) \
        check_dups((c), (arr), (n), sizeof(type), offsetof(type, field), offsetof(type, loc), \
                   offsetof(type, name), (what))

/* ---- references ---- */

/* The generation's arrays are in file order until spec_finalize_generation
 * sorts them, so a lookup there is a scan: per binding that made the
 * validation of N workers quadratic. A NameIndex is the (name, index)
 * pairs sorted (cmp_nameref); a search returns the first in file order
 * among equal names, as the scan did. */
typedef struct NameIndex {
        NameRef *refs;
        size_t n;
} NameIndex;

typedef struct NameIndexes {
        NameIndex workers, kv, r2, d1, queues;
} NameIndexes;

static int name_index_build(NameIndex *x, const void *base, size_t n, size_t stride, size_t name_off) {
        x->n = 0;
        x->refs = n > 0 ? calloc(n, sizeof(NameRef)) : NULL;
        if (n > 0 && !x->refs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *name = *(char *const *) ((const char *) base + i * stride + name_off);

                if (name)
                        x->refs[x->n++] = (NameRef) { .name = name, .idx = i };
        }
        if (x->n > 1)
                qsort(x->refs, x->n, sizeof(NameRef), cmp_nameref);
        return 0;
}

/* The index of the first element named name, or SIZE_MAX. */
static size_t name_index_find(const NameIndex *x, const char *name) {
        size_t lo = 0, hi = x->n;

        if (!name)
                return SIZE_MAX;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (strcmp(x->refs[mid].name, name) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < x->n && streq(x->refs[lo].name, name) ? x->refs[lo].idx : SIZE_MAX;
}

static void name_indexes_done(NameIndexes *x) {
        free(x->workers.refs);
        free(x->kv.refs);
        free(x->r2.refs);
        free(x->d1.refs);
        free(x->queues.refs);
}

#define INDEX_BUILD(x, arr, n, type) name_index_build((x), (arr), (n), sizeof(type), offsetof(type, name))

static int name_indexes_build(NameIndexes *x, const Generation *g) {
        if (INDEX_BUILD(&x->workers, g->workers, g->n_workers, Worker) < 0 ||
            INDEX_BUILD(&x->kv, g->kv_namespaces, g->n_kv_namespaces, KVNamespace) < 0 ||
            INDEX_BUILD(&x->r2, g->r2_buckets, g->n_r2_buckets, R2Bucket) < 0 ||
            INDEX_BUILD(&x->d1, g->d1_databases, g->n_d1_databases, D1Database) < 0 ||
            INDEX_BUILD(&x->queues, g->queues, g->n_queues, Queue) < 0)
                return -ENOMEM;
        return 0;
}

static const void *index_find(const NameIndex *x, const void *base, size_t stride, const char *name) {
        size_t i = name_index_find(x, name);

        return i == SIZE_MAX ? NULL : (const char *) base + i * stride;
}

/* generation_find_*() for the validation (c->index is set throughout). */
#define VFIND(c, field, arr, type, name) \
        ((const type *) index_find(&(c)->index->field, (c)->g->arr, sizeof(type), (name)))

static const char *hint_from(SpecCtx *c, const void *base, size_t n, size_t stride, size_t name_off,
                             const char *name) {
        static char buf[300];
        const char *best = NULL;
        unsigned best_d = UINT_MAX, limit;
        size_t l = strlen(name);

        /* Bounded: a crafted spec with thousands of unresolved references
         * among thousands of names must not stall the loop. Only names of
         * similar length are compared (the distance is at least the length
         * difference), and only SPEC_MAX_HINT_WORK comparisons per load. */
        limit = l <= 3 ? 1 : l <= 8 ? 2 : 3;
        for (size_t i = 0; i < n && c->hint_work < SPEC_MAX_HINT_WORK; i++) {
                const char *x = *(char *const *) ((const char *) base + i * stride + name_off);
                size_t lx;
                unsigned d;

                if (!x)
                        continue;
                lx = strlen(x);
                if (lx > l + limit || l > lx + limit)
                        continue;
                c->hint_work++;
                d = edit_distance(name, x);
                if (d < best_d) {
                        best_d = d;
                        best = x;
                }
        }
        if (!best || best_d > limit || strlen(best) > 200)
                return "";
        snprintf(buf, sizeof(buf), " (did you mean '%s'?)", best);
        return buf;
}
#define HINT(arr, n, type, value) hint_from(c, (arr), (n), sizeof(type), offsetof(type, name), (value))

static const SecretsStore *find_default_store(const Generation *g) {
        for (size_t i = 0; i < g->n_secrets_stores; i++)
                if (g->secrets_stores[i].is_default)
                        return &g->secrets_stores[i];
        return NULL;
}

/* Resolves a store reference (NULL: the default store). Returns the store
 * or NULL after reporting at loc. */
static const SecretsStore *resolve_store(SpecCtx *c, const Location *loc, const char *what,
                                         const char *store) {
        const SecretsStore *s;

        if (!store) {
                s = find_default_store(c->g);
                if (!s)
                        spec_error_at(c, *loc, "%s: no 'store' given and no SecretsStore has 'default: true'",
                                      what);
                return s;
        }
        s = generation_find_store(c->g, store);
        if (!s)
                spec_error_at(c, *loc, "%s: no SecretsStore named '%s'%s", what, store,
                              HINT(c->g->secrets_stores, c->g->n_secrets_stores, SecretsStore, store));
        return s;
}

/* The "did you mean" for a reference to a kind-k document named name, or
 * NULL when the document exists. */
static const char *target_hint(SpecCtx *c, ResourceKind k, const char *name) {
        const Generation *g = c->g;

        switch (k) {
        case RESOURCE_KV_NAMESPACE:
                return VFIND(c, kv, kv_namespaces, KVNamespace, name) ? NULL
                        : HINT(g->kv_namespaces, g->n_kv_namespaces, KVNamespace, name);
        case RESOURCE_R2_BUCKET:
                return VFIND(c, r2, r2_buckets, R2Bucket, name) ? NULL
                        : HINT(g->r2_buckets, g->n_r2_buckets, R2Bucket, name);
        case RESOURCE_D1_DATABASE:
                return VFIND(c, d1, d1_databases, D1Database, name) ? NULL
                        : HINT(g->d1_databases, g->n_d1_databases, D1Database, name);
        case RESOURCE_QUEUE:
                return VFIND(c, queues, queues, Queue, name) ? NULL : HINT(g->queues, g->n_queues, Queue, name);
        default:
                return NULL;
        }
}

static void check_binding(SpecCtx *c, const Worker *w, Binding *b) {
        const BindingKindInfo *info = binding_kind_info(b->kind);
        const Generation *g = c->g;
        const char *hint;
        char what[300];

        snprintf(what, sizeof(what), "binding '%s'", b->name);
        if (info && info->form == BINDING_FORM_REFERENCE && b->target &&
            (hint = target_hint(c, info->target, b->target)))
                spec_error_at(c, b->loc, "%s: no %s named '%s'%s", what, resource_kind_to_string(info->target),
                              b->target, hint);
        switch (b->kind) {
        case BINDING_DURABLE_OBJECT: {
                const Worker *owner = w;
                bool found = false;

                if (!b->class_name)
                        break;
                if (b->script_name && !streq_ptr(b->script_name, w->name)) {
                        owner = VFIND(c, workers, workers, Worker, b->script_name);
                        if (!owner || owner->policy.external)
                                break; /* a script bindery does not manage: trusted as written */
                }
                for (size_t i = 0; i < owner->n_do_classes; i++)
                        found = found || streq_ptr(owner->do_classes[i].class_name, b->class_name);
                if (!found)
                        spec_error_at(c, b->loc, "%s: class '%s' is not in durable_objects.classes of "
                                      "worker '%s'", what, b->class_name, strna(owner->name));
                break;
        }
        case BINDING_SECRETS_STORE_SECRET: {
                const SecretsStore *s;

                if (!b->secret_name)
                        break;
                s = resolve_store(c, &b->loc, what, b->store);
                if (!s || !s->name)     /* a store without a name has its own error */
                        break;
                if (!b->store) {
                        b->store = strdup(s->name);
                        if (!b->store) {
                                c->oom = true;
                                break;
                        }
                }
                for (size_t i = 0; i < g->n_secrets_store_secrets; i++) {
                        const SecretsStoreSecret *x = &g->secrets_store_secrets[i];

                        if (streq_ptr(x->store, s->name) && streq_ptr(x->secret_name, b->secret_name)) {
                                free(b->target);
                                b->target = strdup(x->name);
                                if (!b->target)
                                        c->oom = true;
                                return;
                        }
                }
                if (!s->policy.external)
                        spec_error_at(c, b->loc, "%s: SecretsStore '%s' is managed by bindery but declares "
                                      "no secret '%s' (add a SecretsStoreSecret)", what, s->name,
                                      b->secret_name);
                break;
        }
        default:
                break;
        }
}

static bool strv_has(char **l, const char *s) {
        return l && strv_contains(l, s);
}

/* The classes a worker's migrations leave, replayed step by step. */
typedef struct ClassReplay {
        char **live;                /* exist after the steps so far */
        char **sqlite;              /* of those, created with SQLite storage */
        char **ever;                /* ever created or renamed to */
} ClassReplay;

static void class_replay_done(ClassReplay *r) {
        r->live = strv_free(r->live);
        r->sqlite = strv_free(r->sqlite);
        r->ever = strv_free(r->ever);
}

/* Replaces every from in l by a copy of to. */
static int strv_rename(char **l, const char *from, const char *to) {
        for (char **p = l; p && *p; p++)
                if (streq(*p, from)) {
                        char *n = strdup(to);

                        if (!n)
                                return -ENOMEM;
                        free(*p);
                        *p = n;
                }
        return 0;
}

/* Removes every s from l. */
static void strv_remove(char **l, const char *s) {
        size_t k = 0;

        if (!l)
                return;
        for (size_t x = 0; l[x]; x++) {
                if (streq(l[x], s))
                        free(l[x]);
                else
                        l[k++] = l[x];
        }
        l[k] = NULL;
}

/* A step's new_classes and new_sqlite_classes: each must not exist yet. */
static int replay_creates(SpecCtx *c, const MigrationStep *m, ClassReplay *r) {
        const char *tag = strna(m->tag);

        for (int pass = 0; pass < 2; pass++) {
                char **l = pass ? m->new_sqlite_classes : m->new_classes;

                for (size_t j = 0; l && l[j]; j++) {
                        if (strv_has(r->live, l[j])) {
                                spec_error_at(c, m->loc, "migration '%s' creates class '%s', "
                                              "which already exists", tag, l[j]);
                                continue;
                        }
                        if (strv_extend(&r->live, l[j]) < 0 || strv_extend(&r->ever, l[j]) < 0 ||
                            (pass && strv_extend(&r->sqlite, l[j]) < 0))
                                return -ENOMEM;
                }
        }
        return 0;
}

/* A step's renamed_classes: from must exist, to must not. */
static int replay_renames(SpecCtx *c, const MigrationStep *m, ClassReplay *r) {
        const char *tag = strna(m->tag);

        for (size_t j = 0; j < m->n_renamed_classes; j++) {
                const RenamedClass *rc = &m->renamed_classes[j];

                if (!rc->from || !rc->to)
                        continue;
                if (!strv_has(r->live, rc->from)) {
                        spec_error_at(c, m->loc, "migration '%s' renames class '%s', which does not "
                                      "exist at that point", tag, rc->from);
                        continue;
                }
                if (strv_has(r->live, rc->to)) {
                        spec_error_at(c, m->loc, "migration '%s' renames '%s' to '%s', which "
                                      "already exists", tag, rc->from, rc->to);
                        continue;
                }
                if (strv_rename(r->live, rc->from, rc->to) < 0 ||
                    strv_extend(&r->ever, rc->to) < 0 ||
                    strv_rename(r->sqlite, rc->from, rc->to) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* A step's deleted_classes: each must exist. */
static void replay_deletes(SpecCtx *c, const MigrationStep *m, ClassReplay *r) {
        for (size_t j = 0; m->deleted_classes && m->deleted_classes[j]; j++) {
                const char *d = m->deleted_classes[j];

                if (!strv_has(r->live, d)) {
                        spec_error_at(c, m->loc, "migration '%s' deletes class '%s', which does "
                                      "not exist at that point", strna(m->tag), d);
                        continue;
                }
                strv_remove(r->live, d);
                strv_remove(r->sqlite, d);
        }
}

/* The declared classes against what the migrations leave: each declared
 * class exists with its storage, and every class left is declared. */
static void check_declared_classes(SpecCtx *c, const Worker *w, const ClassReplay *r) {
        for (size_t i = 0; i < w->n_do_classes; i++) {
                const DurableObjectClass *d = &w->do_classes[i];

                if (!d->class_name)
                        continue;
                if (!strv_has(r->live, d->class_name)) {
                        if (strv_has(r->ever, d->class_name))
                                spec_error_at(c, d->loc, "class '%s' is deleted or renamed by a migration "
                                              "but still in durable_objects.classes", d->class_name);
                        else
                                spec_error_at(c, d->loc, "class '%s' is not created by any migration "
                                              "(add a migration with new_sqlite_classes or new_classes)",
                                              d->class_name);
                        continue;
                }
                if (d->sqlite != strv_has(r->sqlite, d->class_name))
                        spec_error_at(c, d->loc, "class '%s' is declared with %s storage but its "
                                      "migration created it with %s storage", d->class_name,
                                      d->sqlite ? "sqlite" : "kv", d->sqlite ? "kv" : "sqlite");
        }
        for (size_t i = 0; r->live && r->live[i]; i++) {
                bool declared = false;

                for (size_t j = 0; j < w->n_do_classes; j++)
                        declared = declared || streq_ptr(w->do_classes[j].class_name, r->live[i]);
                if (!declared)
                        spec_error_at(c, w->migrations[w->n_migrations - 1].loc,
                                      "class '%s' still exists after the last migration but is not in "
                                      "durable_objects.classes (delete or rename it in a migration)",
                                      r->live[i]);
        }
}

/* Replays the migration history and compares the classes it leaves with
 * the declared ones: renames and deletions must be explicit. */
static void check_durable_objects(SpecCtx *c, const Worker *w) {
        _cleanup_(class_replay_done) ClassReplay r = {};

        CHECK_DUPS(c, w->do_classes, w->n_do_classes, DurableObjectClass, class_name,
                   "Durable Object class");
        CHECK_DUPS(c, w->migrations, w->n_migrations, MigrationStep, tag, "migration tag");

        for (size_t i = 0; i < w->n_migrations; i++) {
                const MigrationStep *m = &w->migrations[i];

                if (replay_creates(c, m, &r) < 0 || replay_renames(c, m, &r) < 0) {
                        c->oom = true;
                        return;
                }
                replay_deletes(c, m, &r);
        }
        check_declared_classes(c, w, &r);
}

typedef struct ConsumerRef {
        const char *queue;
        const Worker *worker;
        const QueueConsumer *consumer;
} ConsumerRef;

/* The queues that have a consumer so far, each with the first one. */
typedef struct ConsumerRefs {
        ConsumerRef *refs;
        size_t n, n_alloc;
} ConsumerRefs;

static void consumer_refs_done(ConsumerRefs *s) {
        s->refs = mfree(s->refs);
        s->n = s->n_alloc = 0;
}

static const ConsumerRef *consumer_refs_find(const ConsumerRefs *s, const char *queue) {
        for (size_t k = 0; k < s->n; k++)
                if (streq(s->refs[k].queue, queue))
                        return &s->refs[k];
        return NULL;
}

static int consumer_refs_add(ConsumerRefs *s, const Worker *w, const QueueConsumer *q) {
        if (s->n >= s->n_alloc) {
                size_t na = s->n_alloc ? s->n_alloc * 2 : 16;
                ConsumerRef *t = realloc(s->refs, sizeof(ConsumerRef) * na);

                if (!t)
                        return -ENOMEM;
                s->refs = t;
                s->n_alloc = na;
        }
        s->refs[s->n++] = (ConsumerRef) { .queue = q->queue, .worker = w, .consumer = q };
        return 0;
}

/* A worker's consumers: each names a Queue and a dead-letter queue other
 * than itself, and is the only consumer of its queue (seen holds the
 * queues of the workers before). */
static int check_consumers(SpecCtx *c, const Worker *w, ConsumerRefs *seen) {
        Generation *g = c->g;

        for (size_t j = 0; j < w->n_consumers; j++) {
                const QueueConsumer *q = &w->consumers[j];
                const ConsumerRef *first;

                if (!q->queue)
                        continue;
                if (!VFIND(c, queues, queues, Queue, q->queue)) {
                        spec_error_at(c, q->loc, "consumer: no Queue named '%s'%s", q->queue,
                                      HINT(g->queues, g->n_queues, Queue, q->queue));
                        continue;
                }
                if (q->dead_letter_queue && !VFIND(c, queues, queues, Queue, q->dead_letter_queue))
                        spec_error_at(c, q->loc, "consumer of '%s': no Queue named '%s' for "
                                      "dead_letter_queue", q->queue, q->dead_letter_queue);
                else if (q->dead_letter_queue && streq(q->dead_letter_queue, q->queue))
                        spec_error_at(c, q->loc, "consumer of '%s': a queue cannot be its own "
                                      "dead_letter_queue", q->queue);
                first = consumer_refs_find(seen, q->queue);
                if (first) {
                        spec_error_at(c, q->loc, "queue '%s' already has a consumer: "
                                      "worker '%s' (%s:%u:%u)", q->queue,
                                      strna(first->worker->name), first->consumer->loc.file,
                                      first->consumer->loc.line, first->consumer->loc.column);
                        continue;
                }
                if (consumer_refs_add(seen, w, q) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Reference names are unique per kind, Cloudflare-side names per kind. */
static void check_unique_names(SpecCtx *c) {
        Generation *g = c->g;

        CHECK_DUPS(c, g->workers, g->n_workers, Worker, name, "Worker");
        CHECK_DUPS(c, g->kv_namespaces, g->n_kv_namespaces, KVNamespace, name, "KVNamespace");
        CHECK_CF_DUPS(c, g->kv_namespaces, g->n_kv_namespaces, KVNamespace, title, "KV namespace title");
        CHECK_DUPS(c, g->r2_buckets, g->n_r2_buckets, R2Bucket, name, "R2Bucket");
        CHECK_CF_DUPS(c, g->r2_buckets, g->n_r2_buckets, R2Bucket, bucket_name, "R2 bucket name");
        CHECK_DUPS(c, g->d1_databases, g->n_d1_databases, D1Database, name, "D1Database");
        CHECK_CF_DUPS(c, g->d1_databases, g->n_d1_databases, D1Database, database_name, "D1 database name");
        CHECK_DUPS(c, g->queues, g->n_queues, Queue, name, "Queue");
        CHECK_CF_DUPS(c, g->queues, g->n_queues, Queue, queue_name, "queue name");
        CHECK_DUPS(c, g->secrets_stores, g->n_secrets_stores, SecretsStore, name, "SecretsStore");
        CHECK_CF_DUPS(c, g->secrets_stores, g->n_secrets_stores, SecretsStore, store_name, "Secrets Store name");
        CHECK_DUPS(c, g->secrets_store_secrets, g->n_secrets_store_secrets, SecretsStoreSecret, name,
                   "SecretsStoreSecret");
}

/* At most one SecretsStore is the default. */
static void check_default_store(SpecCtx *c) {
        Generation *g = c->g;
        const SecretsStore *first_default = NULL;

        for (size_t i = 0; i < g->n_secrets_stores; i++) {
                const SecretsStore *s = &g->secrets_stores[i];

                if (!s->is_default)
                        continue;
                if (first_default)
                        spec_error_at(c, s->loc, "more than one SecretsStore has 'default: true' "
                                      "(first: '%s' at %s:%u:%u)", strna(first_default->name),
                                      first_default->loc.file, first_default->loc.line,
                                      first_default->loc.column);
                else
                        first_default = s;
        }
}

/* Every SecretsStoreSecret gets its store (the default one when it names
 * none), which bindery must manage; within one store, a secret name is
 * declared once. */
static int check_store_secrets(SpecCtx *c) {
        Generation *g = c->g;

        for (size_t i = 0; i < g->n_secrets_store_secrets; i++) {
                SecretsStoreSecret *x = &g->secrets_store_secrets[i];
                const SecretsStore *s;
                char what[300];

                if (!x->name)
                        continue;
                snprintf(what, sizeof(what), "SecretsStoreSecret '%s'", x->name);
                s = resolve_store(c, &x->loc, what, x->store);
                if (!s || !s->name)     /* a store without a name has its own error */
                        continue;
                if (!x->store) {
                        x->store = strdup(s->name);
                        if (!x->store)
                                return -ENOMEM;
                }
                if (s->policy.external && !x->policy.external)
                        spec_error_at(c, x->loc, "%s: SecretsStore '%s' is external; bindery writes "
                                      "secrets only into stores with 'managed: true'", what, s->name);
        }
        for (size_t i = 0; i < g->n_secrets_store_secrets; i++)
                for (size_t j = 0; j < i; j++) {
                        const SecretsStoreSecret *a = &g->secrets_store_secrets[j],
                                                 *b = &g->secrets_store_secrets[i];

                        if (a->store && b->store && a->secret_name && b->secret_name &&
                            !streq_ptr(a->name, b->name) && streq(a->store, b->store) &&
                            streq(a->secret_name, b->secret_name)) {
                                spec_error_at(c, b->loc, "secret '%s' of store '%s' is already declared "
                                              "by SecretsStoreSecret '%s' (%s:%u:%u)", b->secret_name,
                                              b->store, strna(a->name), a->loc.file, a->loc.line,
                                              a->loc.column);
                                break;
                        }
                }
        return 0;
}

void spec_validate_generation(SpecCtx *c) {
        Generation *g = c->g;
        _cleanup_(consumer_refs_done) ConsumerRefs consumers = {};
        _cleanup_(name_indexes_done) NameIndexes index = {};

        check_unique_names(c);
        check_default_store(c);
        if (check_store_secrets(c) < 0 || name_indexes_build(&index, g) < 0) {
                c->oom = true;
                return;
        }
        c->index = &index;
        for (size_t i = 0; i < g->n_workers && !c->oom; i++) {
                Worker *w = &g->workers[i];

                for (size_t j = 0; j < w->n_bindings; j++)
                        check_binding(c, w, &w->bindings[j]);
                if (!strv_has(c->do_broken, w->name ?: ""))
                        check_durable_objects(c, w);
                if (check_consumers(c, w, &consumers) < 0)
                        c->oom = true;
        }
        c->index = NULL;
}

/* ---- canonical form and digests ---- */

#define DEFINE_CMP_BY(fn, type, field)                                          \
        static int fn(const void *a, const void *b) {                           \
                return strcmp(((const type *) a)->field, ((const type *) b)->field); \
        }

DEFINE_CMP_BY(cmp_worker, Worker, name)
DEFINE_CMP_BY(cmp_kv, KVNamespace, name)
DEFINE_CMP_BY(cmp_r2, R2Bucket, name)
DEFINE_CMP_BY(cmp_d1, D1Database, name)
DEFINE_CMP_BY(cmp_queue, Queue, name)
DEFINE_CMP_BY(cmp_store, SecretsStore, name)
DEFINE_CMP_BY(cmp_secret, SecretsStoreSecret, name)
DEFINE_CMP_BY(cmp_binding, Binding, name)
DEFINE_CMP_BY(cmp_module, Module, name)
DEFINE_CMP_BY(cmp_consumer, QueueConsumer, queue)
DEFINE_CMP_BY(cmp_do_class, DurableObjectClass, class_name)

static int digest_json(json_object *o, char ret[static 65]) {
        const char *s;

        if (!o)
                return -ENOMEM;
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return -ENOMEM;
        sha256_hex(s, strlen(s), ret);
        return 0;
}

/* Generation.digest: SHA-256 over each worker's name and digest (which
 * already cover its canonical form and modules) followed by the canonical
 * JSON of everything else, so no worker is serialised twice. */
static int generation_digest(Generation *g) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        FILE *f;
        int r;

        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_workers; i++)
                fprintf(f, "%s %s\n", g->workers[i].name, g->workers[i].digest);
        r = generation_rest_to_text(g, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, f);
        if (fclose(f) != 0 || r < 0)
                return -ENOMEM;
        sha256_hex(text, len, g->digest);
        return 0;
}

/* qsort() wants a non-NULL base even for no elements. */
static void sort_array(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
        if (base && n > 1)
                qsort(base, n, size, cmp);
}

/* Whether w was written exactly as in the generation before (source key)
 * with the same modules: then its digest is the one before, copied. */
static bool worker_same_as_before(SpecCtx *c, Worker *w) {
        const Worker *p = c->prev && w->source_key[0] && w->name ? generation_find_worker(c->prev, w->name) : NULL;

        if (!p || !streq(p->source_key, w->source_key) || p->n_modules != w->n_modules)
                return false;
        for (size_t i = 0; i < w->n_modules; i++)
                if (!streq_ptr(p->modules[i].name, w->modules[i].name) ||
                    !streq(p->modules[i].sha256, w->modules[i].sha256) ||
                    p->modules[i].size != w->modules[i].size || p->modules[i].type != w->modules[i].type)
                        return false;
        memcpy(w->digest, p->digest, sizeof(w->digest));
        return true;
}

int spec_finalize_generation(SpecCtx *c) {
        Generation *g = c->g;
        json_object *o;
        int r;

        sort_array(g->workers, g->n_workers, sizeof(Worker), cmp_worker);
        sort_array(g->kv_namespaces, g->n_kv_namespaces, sizeof(KVNamespace), cmp_kv);
        sort_array(g->r2_buckets, g->n_r2_buckets, sizeof(R2Bucket), cmp_r2);
        sort_array(g->d1_databases, g->n_d1_databases, sizeof(D1Database), cmp_d1);
        sort_array(g->queues, g->n_queues, sizeof(Queue), cmp_queue);
        sort_array(g->secrets_stores, g->n_secrets_stores, sizeof(SecretsStore), cmp_store);
        sort_array(g->secrets_store_secrets, g->n_secrets_store_secrets, sizeof(SecretsStoreSecret), cmp_secret);
        g->sorted = true;
        g->default_store = find_default_store(g);

        for (size_t i = 0; i < g->n_workers; i++) {
                Worker *w = &g->workers[i];

                if (!w->policy.deletion_explicit && w->n_do_classes > 0)
                        w->policy.deletion = DELETION_RETAIN; /* deleting it deletes DO data */
                sort_array(w->bindings, w->n_bindings, sizeof(Binding), cmp_binding);
                if (w->n_modules > 2)
                        sort_array(w->modules + 1, w->n_modules - 1, sizeof(Module), cmp_module);
                sort_array(w->consumers, w->n_consumers, sizeof(QueueConsumer), cmp_consumer);
                sort_array(w->do_classes, w->n_do_classes, sizeof(DurableObjectClass), cmp_do_class);
                strv_sort_uniq(w->compatibility_flags);
                strv_sort_uniq(w->tags);
                for (size_t j = 0; w->crons && w->crons[j]; j++) {
                        char *k = cron_canonical(w->crons[j]);

                        if (!k)
                                return -ENOMEM;
                        free(w->crons[j]);
                        w->crons[j] = k;
                }
                strv_sort_uniq(w->crons);
                for (size_t j = 0; j < w->n_migrations; j++) {
                        strv_sort_uniq(w->migrations[j].new_classes);
                        strv_sort_uniq(w->migrations[j].new_sqlite_classes);
                        strv_sort_uniq(w->migrations[j].deleted_classes);
                }
                if (worker_same_as_before(c, w))
                        continue;
                o = worker_to_json(w);
                r = digest_json(o, w->digest);
                json_object_put(o);
                if (r < 0)
                        return r;
        }
        return generation_digest(g);
}
