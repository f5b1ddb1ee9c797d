/* ledger.c: the ledger, its indexes, its change tracking and its JSON
 * codec (one record ↔ one JSON text); see ledger.h.
 *
 * Record formats (state format version 2, as written since version 2):
 *
 *   binding              {"account_id": ..., "api_url": ...}
 *   resource/KIND/DOC    {"kind", "name" (doc), "cf_id", "cf_name",
 *                         "ownership": "created"|"adopted", "digest",
 *                         "deletion_policy", "drift_policy",
 *                         "migration_tags": [...], "run_id",
 *                         "created_usec", "updated_usec",
 *                         "ledger": {"store_id", "jurisdiction", "etag",
 *                                    "modified_on", "hmac", "do_classes",
 *                                    "crons", "subdomain", "consumers",
 *                                    "bindings", "adopted", "secrets"}}
 *   intent/KIND/CF_NAME  {"kind", "name", "cf_name", "run_id", "time_usec"}
 *   meta/KEY             {"value": "..."}
 *
 * DOC and CF_NAME in keys are percent-encoded where a byte is not
 * printable ASCII, a space or '%' (KV titles may hold spaces), so every
 * key is one store.h accepts. A key written raw by an older binderyd is
 * still read, and rewritten encoded at the next commit.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <json-c/linkhash.h>

#include "ledger.h"
#include "util.h"

#define LEDGER_MAX_DEPTH 16
#define LEDGER_DIGEST_SIZE 32   /* SHA-256 of a committed record's text */

/* ---- small helpers ---- */

static void entry_key_free(struct lh_entry *ent) {
        free(lh_entry_k(ent));
}

static void entry_key_value_free(struct lh_entry *ent) {
        free(lh_entry_k(ent));
        free(lh_entry_v(ent));
}

static struct lh_table *table_new(bool owns_value) {
        return lh_kchar_table_new(64, owns_value ? entry_key_value_free : entry_key_free);
}

/* Sets t[key] = value (both copied when owned). */
static int table_set(struct lh_table *t, const char *key, const void *value) {
        struct lh_entry *ent = lh_table_lookup_entry(t, key);
        char *k;

        if (ent) {
                lh_entry_set_val(ent, (void *) value);
                return 0;
        }
        k = strdup(key);
        if (!k)
                return -ENOMEM;
        if (lh_table_insert(t, k, value) < 0) {
                free(k);
                return -ENOMEM;
        }
        return 0;
}

/* t[key] = value, the table taking value over (freed also on failure);
 * NULL removes the key. For tables that own their values. */
static int table_put_owned(struct lh_table *t, const char *key, void *value) {
        struct lh_entry *ent = lh_table_lookup_entry(t, key);

        if (!value) {
                if (ent)
                        (void) lh_table_delete_entry(t, ent);
                return 0;
        }
        if (ent) {
                free(lh_entry_v(ent));
                lh_entry_set_val(ent, value);
                return 0;
        }
        if (table_set(t, key, value) < 0) {
                free(value);
                return -ENOMEM;
        }
        return 0;
}

static void *table_get(const struct lh_table *t, const char *key) {
        void *v = NULL;

        if (!t || !key || !lh_table_lookup_ex((struct lh_table *) t, key, &v))
                return NULL;
        return v;
}

static bool key_byte_escaped(unsigned char c) {
        return c <= ' ' || c > '~' || c == '%';
}

/* "PREFIX/KIND/NAME" (NAME percent-encoded where a store key may not
 * hold the byte, with escape) or "KIND/NAME" (prefix NULL). One
 * allocation: lookups build a key each. */
static char *make_key(const char *prefix, ResourceKind kind, const char *name, bool escape) {
        static const char hex[] = "0123456789ABCDEF";
        const char *k = strna(resource_kind_to_string(kind));
        size_t pl = prefix ? strlen(prefix) + 1 : 0, kl = strlen(k), n = 0;
        char *buf, *p;

        for (const unsigned char *c = (const unsigned char *) name; *c; c++)
                n += escape && key_byte_escaped(*c) ? 3 : 1;
        buf = malloc(pl + kl + 1 + n + 1);
        if (!buf)
                return NULL;
        p = buf;
        if (prefix) {
                memcpy(p, prefix, pl - 1);
                p += pl - 1;
                *p++ = '/';
        }
        memcpy(p, k, kl);
        p += kl;
        *p++ = '/';
        for (const unsigned char *c = (const unsigned char *) name; *c; c++)
                if (escape && key_byte_escaped(*c)) {
                        *p++ = '%';
                        *p++ = hex[*c >> 4];
                        *p++ = hex[*c & 15];
                } else
                        *p++ = (char) *c;
        *p = 0;
        return buf;
}

static int mark_dirty(Ledger *l, const char *key) {
        if (lh_table_lookup_entry(l->dirty, key))
                return 0;
        return table_set(l->dirty, key, NULL);
}

/* ---- lifecycle ---- */

/* The indexes are sets of the entries (and intents) themselves, hashed
 * on (kind, a string the entry holds): no key is copied per entry, and a
 * slot is one pointer (hashset.h). An entry's indexed_name/indexed_id
 * change only while it is out of that index (reindex); its doc never
 * changes. */
static unsigned long kind_hash(ResourceKind kind, const char *v) {
        unsigned long h = 14695981039346656037UL ^ (unsigned long) kind;      /* FNV-1a */

        for (const char *p = v; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211UL;
        return h;
}

static unsigned long by_doc_hash(const void *item) {
        const LedgerEntry *e = item;

        return kind_hash(e->kind, e->doc);
}

static unsigned long by_name_hash(const void *item) {
        const LedgerEntry *e = item;

        return kind_hash(e->kind, e->indexed_name);
}

static unsigned long by_id_hash(const void *item) {
        const LedgerEntry *e = item;

        return kind_hash(e->kind, e->indexed_id);
}

static unsigned long intent_hash(const void *item) {
        const LedgerIntent *in = item;

        return kind_hash(in->kind, in->name);
}

/* What a lookup looks for. */
typedef struct Probe {
        ResourceKind kind;
        const char *v;
} Probe;

static bool by_doc_match(const void *item, const void *probe) {
        const LedgerEntry *e = item;
        const Probe *p = probe;

        return e->kind == p->kind && streq(e->doc, p->v);
}

static bool by_name_match(const void *item, const void *probe) {
        const LedgerEntry *e = item;
        const Probe *p = probe;

        return e->kind == p->kind && streq(e->indexed_name, p->v);
}

static bool by_id_match(const void *item, const void *probe) {
        const LedgerEntry *e = item;
        const Probe *p = probe;

        return e->kind == p->kind && streq(e->indexed_id, p->v);
}

static bool intent_match(const void *item, const void *probe) {
        const LedgerIntent *in = item;
        const Probe *p = probe;

        return in->kind == p->kind && streq(in->name, p->v);
}

/* Run ids: the entries one run committed all carry its id, so they
 * share one counted copy per id (at 1,000 workers 2,000 copies of a
 * few ids were one block each). An entry's run_id points into its
 * RunId. */
typedef struct RunId {
        unsigned n_refs;
        char s[];
} RunId;

static unsigned long run_id_hash(const void *item) {
        return kind_hash(0, ((const RunId *) item)->s);
}

static bool run_id_match(const void *item, const void *probe) {
        return streq(((const RunId *) item)->s, (const char *) probe);
}

static RunId *run_id_of(const char *s) {
        return (RunId *) (void *) (s - offsetof(RunId, s));
}

static void run_id_unref(Ledger *l, char *s) {
        RunId *r;

        if (!s)
                return;
        r = run_id_of(s);
        assert(r->n_refs > 0);
        if (--r->n_refs > 0)
                return;
        (void) hashset_remove(&l->run_ids, r);
        free(r);
}

/* *slot = a reference to the pool's copy of s (NULL: none); -ENOMEM
 * leaves *slot as it was. */
static int run_id_set(Ledger *l, char **slot, const char *s) {
        RunId *r = NULL;

        if (s && !(r = hashset_find(&l->run_ids, kind_hash(0, s), run_id_match, s))) {
                size_t n = strlen(s) + 1;

                r = malloc(offsetof(RunId, s) + n);
                if (!r)
                        return -ENOMEM;
                r->n_refs = 0;
                memcpy(r->s, s, n);
                if (hashset_put(&l->run_ids, r) < 0) {
                        free(r);
                        return -ENOMEM;
                }
        }
        if (r)
                r->n_refs++;
        run_id_unref(l, *slot);
        *slot = r ? r->s : NULL;
        return 0;
}

Ledger *ledger_new(void) {
        Ledger *l = calloc(1, sizeof(Ledger));

        if (!l)
                return NULL;
        l->by_doc = HASHSET_INIT(by_doc_hash);
        l->by_name = HASHSET_INIT(by_name_hash);
        l->by_id = HASHSET_INIT(by_id_hash);
        l->intents_by_name = HASHSET_INIT(intent_hash);
        l->run_ids = HASHSET_INIT(run_id_hash);
        l->meta = table_new(true);
        l->committed = table_new(true);
        l->dirty = table_new(false);
        l->meta_undo = table_new(true);
        if (!l->meta || !l->committed || !l->dirty || !l->meta_undo)
                return ledger_free(l);
        return l;
}

/* indexed_name/indexed_id: doc itself, or a copy of their own. */
static void indexed_free(LedgerEntry *e, char **indexed) {
        if (*indexed != e->doc)
                free(*indexed);
        *indexed = NULL;
}

static void entry_free(Ledger *l, LedgerEntry *e) {
        if (!e)
                return;
        free(e->name);
        free(e->id);
        free(e->store_id);
        free(e->jurisdiction);
        free(e->digest);
        free(e->etag);
        free(e->modified_on);
        free(e->migration_tag);
        strv_free(e->migration_tags);
        strv_free(e->do_classes);
        strv_free(e->crons);
        strv_free(e->consumers);
        strv_free(e->binding_names);
        for (size_t i = 0; i < e->n_secrets; i++)
                free(e->secrets[i].name);       /* the hmac is in the same block */
        free(e->secrets);
        free(e->hmac);
        run_id_unref(l, e->run_id);
        indexed_free(e, &e->indexed_name);
        indexed_free(e, &e->indexed_id);
        free(e);        /* the doc with it */
}

static void intent_free(LedgerIntent *i) {
        if (!i)
                return;
        free(i->name);
        free(i->run_id);
        free(i);
}

Ledger *ledger_free(Ledger *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_entries; i++)
                entry_free(l, l->entries[i]);
        free(l->entries);
        for (size_t i = 0; i < l->n_intents; i++)
                intent_free(l->intents[i]);
        free(l->intents);
        hashset_done(&l->by_doc);
        hashset_done(&l->by_name);
        hashset_done(&l->by_id);
        hashset_done(&l->intents_by_name);
        hashset_done(&l->run_ids);      /* empty: the entries held every reference */
        if (l->meta)
                lh_table_free(l->meta);
        if (l->committed)
                lh_table_free(l->committed);
        if (l->dirty)
                lh_table_free(l->dirty);
        if (l->meta_undo)
                lh_table_free(l->meta_undo);
        free(l->account_id);
        free(l->api_url);
        free(l->run_id);
        free(l);
        return NULL;
}

/* ---- entries and their indexes ---- */

LedgerEntry *ledger_find(const Ledger *l, ResourceKind kind, const char *doc) {
        Probe p = { .kind = kind, .v = doc };

        if (!l || !doc)
                return NULL;
        return hashset_find(&l->by_doc, kind_hash(kind, doc), by_doc_match, &p);
}

LedgerEntry *ledger_find_by_name(const Ledger *l, ResourceKind kind, const char *name) {
        Probe p = { .kind = kind, .v = name };

        if (!l || !name)
                return NULL;
        return hashset_find(&l->by_name, kind_hash(kind, name), by_name_match, &p);
}

LedgerEntry *ledger_find_by_id(const Ledger *l, ResourceKind kind, const char *id) {
        Probe p = { .kind = kind, .v = id };

        if (!l || !id)
                return NULL;
        return hashset_find(&l->by_id, kind_hash(kind, id), by_id_match, &p);
}

static int entry_cmp(const LedgerEntry *a, ResourceKind kind, const char *doc) {
        if (a->kind != kind)
                return a->kind < kind ? -1 : 1;
        return strcmp(a->doc, doc);
}

/* Where (kind, doc) is or would go in the sorted array. */
static size_t entry_position(const Ledger *l, ResourceKind kind, const char *doc) {
        size_t lo = 0, hi = l->n_entries;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (entry_cmp(l->entries[mid], kind, doc) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* Drops e from one secondary index (name or id), putting another entry
 * with the same value in its place if there is one (first wins). */
static void unindex_one(Ledger *l, HashSet *t, LedgerEntry *e, char **indexed, bool by_name) {
        if (!*indexed)
                return;
        if (hashset_remove(t, e)) {
                LedgerEntry *other = NULL;

                /* Only when two entries ever shared a name or id (never in
                 * a valid state) is there another one to look for. */
                for (size_t i = 0; l->n_index_twins > 0 && i < l->n_entries && !other; i++) {
                        LedgerEntry *x = l->entries[i];

                        if (x != e && x->kind == e->kind && streq_ptr(by_name ? x->indexed_name : x->indexed_id, *indexed))
                                other = x;
                }
                if (other)
                        (void) hashset_put(t, other);   /* out of memory: found by doc only */
        }
        indexed_free(e, indexed);
}

static int index_one(Ledger *l, HashSet *t, LedgerEntry *e, const char *value, char **indexed,
                     hashset_match_fn match) {
        Probe p = { .kind = e->kind, .v = value };

        if (!value)
                return 0;
        /* A name or id equal to the doc (workers, most resources) is
         * indexed under the doc itself: no copy. */
        *indexed = streq(value, e->doc) ? e->doc : strdup(value);
        if (!*indexed)
                return -ENOMEM;
        if (hashset_find(t, kind_hash(e->kind, value), match, &p)) {
                l->n_index_twins++;
                return 0;       /* another entry has it: the first one wins */
        }
        if (hashset_put(t, e) < 0) {
                indexed_free(e, indexed);
                return -ENOMEM;
        }
        return 0;
}

static int reindex(Ledger *l, LedgerEntry *e) {
        int r = 0;

        if (!streq_ptr(e->indexed_name, e->name)) {
                unindex_one(l, &l->by_name, e, &e->indexed_name, true);
                r = index_one(l, &l->by_name, e, e->name, &e->indexed_name, by_name_match);
        }
        if (r >= 0 && !streq_ptr(e->indexed_id, e->id)) {
                unindex_one(l, &l->by_id, e, &e->indexed_id, false);
                r = index_one(l, &l->by_id, e, e->id, &e->indexed_id, by_id_match);
        }
        return r;
}

static int entry_key(const LedgerEntry *e, char **ret) {
        *ret = make_key("resource", e->kind, e->doc, true);
        return *ret ? 0 : -ENOMEM;
}

static int unhex(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The entry or intent held under key ("resource/KIND/DOC" or
 * "intent/KIND/NAME" as make_key() writes it: a key written raw by an
 * older binderyd names none), *ret_intent saying which; NULL if none. */
static void *record_object(const Ledger *l, const char *key, bool *ret_intent) {
        _cleanup_free_ char *name = NULL, *again = NULL;
        const char *prefix, *rest, *slash;
        char kind_name[64], *q;
        ResourceKind kind;
        void *o;

        *ret_intent = startswith(key, "intent/");
        if (!*ret_intent && !startswith(key, "resource/"))
                return NULL;
        prefix = *ret_intent ? "intent" : "resource";
        rest = key + strlen(prefix) + 1;
        slash = strchr(rest, '/');
        if (!slash || (size_t) (slash - rest) >= sizeof kind_name)
                return NULL;
        memcpy(kind_name, rest, (size_t) (slash - rest));
        kind_name[slash - rest] = 0;
        kind = resource_kind_from_string(kind_name);
        if (kind < 0)
                return NULL;
        q = name = malloc(strlen(slash + 1) + 1);
        if (!name)
                return NULL;
        for (const char *p = slash + 1; *p; p++)
                if (*p == '%' && unhex(p[1]) >= 0 && unhex(p[2]) >= 0) {
                        *q++ = (char) (unhex(p[1]) << 4 | unhex(p[2]));
                        p += 2;
                } else
                        *q++ = *p;
        *q = 0;
        o = *ret_intent ? (void *) ledger_find_intent(l, kind, name) : (void *) ledger_find(l, kind, name);
        if (!o)
                return NULL;
        /* Only the key as written now names it. */
        again = make_key(prefix, kind, name, true);
        return again && streq(again, key) ? o : NULL;
}

/* A record's committed digest lives in the entry or intent held under
 * its key; when there is none (removed since the commit), in
 * l->committed. These move it between the two as an object comes and
 * goes. Out of memory: the digest is forgotten, and the record is
 * written whole at the next commit (nothing is lost). */
static void committed_to_table(Ledger *l, const char *key, bool committed, const uint8_t *md) {
        uint8_t *copy;

        if (!committed)
                return;
        copy = malloc(LEDGER_DIGEST_SIZE);
        if (copy)
                memcpy(copy, md, LEDGER_DIGEST_SIZE);
        (void) table_put_owned(l->committed, key, copy);
}

static void committed_from_table(Ledger *l, const char *key, bool *committed, uint8_t *md) {
        struct lh_entry *ent = lh_table_lookup_entry(l->committed, key);

        *committed = ent != NULL;
        if (ent) {
                memcpy(md, lh_entry_v(ent), LEDGER_DIGEST_SIZE);
                (void) lh_table_delete_entry(l->committed, ent);
        }
}

void ledger_touch(Ledger *l, LedgerEntry *e) {
        _cleanup_free_ char *k = NULL;

        assert(l && e);
        e->dirty = true;
        (void) reindex(l, e);
        if (entry_key(e, &k) >= 0)
                (void) mark_dirty(l, k);
}

/* Puts e (new, not yet indexed) into the array and the indexes; on
 * failure nothing was put anywhere (the caller still owns e). */
static int entry_insert(Ledger *l, LedgerEntry *e) {
        _cleanup_free_ char *k = NULL;
        size_t pos = entry_position(l, e->kind, e->doc);
        LedgerEntry **a;
        int r;

        r = entry_key(e, &k);
        if (r < 0)
                return r;
        if (l->n_entries == l->n_entries_allocated) {
                size_t n = l->n_entries_allocated > 0 ? l->n_entries_allocated * 2 : 16;

                a = reallocarray(l->entries, n, sizeof(LedgerEntry *));
                if (!a)
                        return -ENOMEM;
                l->entries = a;
                l->n_entries_allocated = n;
        }
        a = l->entries;
        r = hashset_put(&l->by_doc, e);
        if (r < 0)
                return r;
        memmove(&a[pos + 1], &a[pos], (l->n_entries - pos) * sizeof(LedgerEntry *));
        a[pos] = e;
        l->n_entries++;
        committed_from_table(l, k, &e->committed, e->committed_md);
        (void) reindex(l, e);   /* out of memory: found by doc, not by name or id */
        return 0;
}

/* The doc never changes: it is stored after the struct, in the same
 * block (one allocation less per entry). */
static LedgerEntry *entry_new(ResourceKind kind, const char *doc) {
        size_t n = strlen(doc) + 1;
        LedgerEntry *e = calloc(1, sizeof(LedgerEntry) + n);

        if (!e)
                return NULL;
        e->kind = kind;
        e->subdomain = -1;
        e->doc = memcpy((char *) (e + 1), doc, n);
        return e;
}

LedgerEntry *ledger_ensure(Ledger *l, ResourceKind kind, const char *doc) {
        LedgerEntry *e = ledger_find(l, kind, doc);

        if (e)
                return e;
        if (kind < 0 || kind >= _RESOURCE_KIND_MAX || isempty(doc))
                return NULL;
        e = entry_new(kind, doc);
        if (!e)
                return NULL;
        if (entry_insert(l, e) < 0) {
                entry_free(l, e);
                return NULL;
        }
        ledger_touch(l, e);
        return e;
}

/* Takes e out of the array and every index, and frees it. */
static void entry_drop(Ledger *l, LedgerEntry *e) {
        _cleanup_free_ char *k = NULL;
        size_t pos = entry_position(l, e->kind, e->doc);

        assert(pos < l->n_entries && l->entries[pos] == e);
        memmove(&l->entries[pos], &l->entries[pos + 1], (l->n_entries - pos - 1) * sizeof(LedgerEntry *));
        l->n_entries--;
        unindex_one(l, &l->by_name, e, &e->indexed_name, true);
        unindex_one(l, &l->by_id, e, &e->indexed_id, false);
        (void) hashset_remove(&l->by_doc, e);
        if (entry_key(e, &k) >= 0)
                committed_to_table(l, k, e->committed, e->committed_md);
        entry_free(l, e);
}

int ledger_remove(Ledger *l, ResourceKind kind, const char *doc) {
        _cleanup_free_ char *k = NULL;
        LedgerEntry *e = ledger_find(l, kind, doc);
        int r;

        if (!e)
                return -ENOENT;
        r = entry_key(e, &k);
        if (r < 0)
                return r;
        r = mark_dirty(l, k);
        if (r < 0)
                return r;
        entry_drop(l, e);
        return 0;
}

const LedgerSecret *ledger_entry_secret(const LedgerEntry *e, const char *name) {
        for (size_t i = 0; e && i < e->n_secrets; i++)
                if (streq(e->secrets[i].name, name))
                        return &e->secrets[i];
        return NULL;
}

/* A secret's name and hmac in one block (the name first: freeing it
 * frees both). */
static int secret_fill(LedgerSecret *s, const char *name, const char *hmac) {
        size_t nl = strlen(name) + 1, hl = hmac ? strlen(hmac) + 1 : 0;
        char *b = malloc(nl + hl);

        if (!b)
                return -ENOMEM;
        memcpy(b, name, nl);
        if (hmac)
                memcpy(b + nl, hmac, hl);
        free(s->name);
        *s = (LedgerSecret) { .name = b, .hmac = hmac ? b + nl : NULL };
        return 0;
}

int ledger_entry_set_secret(LedgerEntry *e, const char *name, const char *hmac) {
        LedgerSecret *s = (LedgerSecret *) ledger_entry_secret(e, name), *a;

        if (s)
                return secret_fill(s, name, hmac);
        a = reallocarray(e->secrets, e->n_secrets + 1, sizeof(LedgerSecret));
        if (!a)
                return -ENOMEM;
        e->secrets = a;
        a[e->n_secrets] = (LedgerSecret) {};
        if (secret_fill(&a[e->n_secrets], name, hmac) < 0)
                return -ENOMEM;
        e->n_secrets++;
        return 0;
}

int ledger_entry_remove_secret(LedgerEntry *e, const char *name) {
        for (size_t i = 0; i < e->n_secrets; i++)
                if (streq(e->secrets[i].name, name)) {
                        free(e->secrets[i].name);
                        memmove(&e->secrets[i], &e->secrets[i + 1], (e->n_secrets - i - 1) * sizeof(LedgerSecret));
                        e->n_secrets--;
                        return 0;
                }
        return -ENOENT;
}

/* ---- intents ---- */

const LedgerIntent *ledger_find_intent(const Ledger *l, ResourceKind kind, const char *name) {
        Probe p = { .kind = kind, .v = name };

        if (!l || !name)
                return NULL;
        return hashset_find(&l->intents_by_name, kind_hash(kind, name), intent_match, &p);
}

static void intent_drop(Ledger *l, LedgerIntent *in, const char *key) {
        for (size_t i = 0; i < l->n_intents; i++)
                if (l->intents[i] == in) {
                        memmove(&l->intents[i], &l->intents[i + 1], (l->n_intents - i - 1) * sizeof(LedgerIntent *));
                        l->n_intents--;
                        break;
                }
        (void) hashset_remove(&l->intents_by_name, in);
        committed_to_table(l, key, in->committed, in->committed_md);
        intent_free(in);
}

static int intent_insert(Ledger *l, LedgerIntent *in, const char *key) {
        LedgerIntent **a = realloc(l->intents, (l->n_intents + 1) * sizeof(LedgerIntent *));
        int r;

        if (!a)
                return -ENOMEM;
        l->intents = a;
        r = hashset_put(&l->intents_by_name, in);
        if (r < 0)
                return r;
        a[l->n_intents++] = in;
        committed_from_table(l, key, &in->committed, in->committed_md);
        return 0;
}

static LedgerIntent *intent_new(ResourceKind kind, const char *name, const char *run_id, uint64_t t) {
        LedgerIntent *in = calloc(1, sizeof(LedgerIntent));

        if (!in)
                return NULL;
        in->kind = kind;
        in->time_usec = t;
        if (free_and_strdup(&in->name, name) < 0 || free_and_strdup(&in->run_id, run_id) < 0) {
                intent_free(in);
                return NULL;
        }
        return in;
}

int ledger_add_intent(Ledger *l, ResourceKind kind, const char *name, const char *run_id) {
        _cleanup_free_ char *k = NULL;
        LedgerIntent *old, *in;
        int r;

        assert(l && kind >= 0 && kind < _RESOURCE_KIND_MAX);
        if (isempty(name))
                return -EINVAL;
        k = make_key("intent", kind, name, true);
        if (!k)
                return -ENOMEM;
        in = intent_new(kind, name, run_id, 0);
        if (!in)
                return -ENOMEM;
        r = mark_dirty(l, k);
        if (r < 0) {
                intent_free(in);
                return r;
        }
        old = (LedgerIntent *) ledger_find_intent(l, kind, name);
        if (old)
                intent_drop(l, old, k);
        r = intent_insert(l, in, k);
        if (r < 0)
                intent_free(in);
        return r;
}

int ledger_remove_intent(Ledger *l, ResourceKind kind, const char *name) {
        _cleanup_free_ char *k = NULL;
        LedgerIntent *in;
        int r;

        if (!l || !name)
                return -ENOENT;
        k = make_key("intent", kind, name, true);
        if (!k)
                return -ENOMEM;
        in = (LedgerIntent *) ledger_find_intent(l, kind, name);
        if (!in)
                return -ENOENT;
        r = mark_dirty(l, k);
        if (r < 0)
                return r;
        intent_drop(l, in, k);
        return 0;
}

/* ---- binding and meta ---- */

static bool url_equal(const char *a, const char *b) {
        size_t na = strlen(a), nb = strlen(b);

        while (na > 0 && a[na - 1] == '/')
                na--;
        while (nb > 0 && b[nb - 1] == '/')
                nb--;
        return na == nb && memcmp(a, b, na) == 0;
}

int ledger_bind(Ledger *l, const char *account_id, const char *api_url) {
        assert(l);
        if (isempty(account_id) || isempty(api_url))
                return -EINVAL;
        if (l->account_id || l->api_url) {
                if (!streq_ptr(l->account_id, account_id) || !l->api_url || !url_equal(l->api_url, api_url))
                        return -EXDEV;
                return 0;
        }
        if (free_and_strdup(&l->account_id, account_id) < 0 || free_and_strdup(&l->api_url, api_url) < 0)
                return -ENOMEM;
        return mark_dirty(l, "binding");
}

const char *ledger_account_id(const Ledger *l) {
        return l ? l->account_id : NULL;
}

const char *ledger_api_url(const Ledger *l) {
        return l ? l->api_url : NULL;
}

static int meta_key(const char *key, char **ret) {
        if (asprintf(ret, "meta/%s", key) < 0)
                return -ENOMEM;
        return 0;
}

/* Sets meta[key] without marking it. */
static int meta_put(Ledger *l, const char *key, const char *value) {
        char *v = NULL;

        if (value && !(v = strdup(value)))
                return -ENOMEM;
        return table_put_owned(l->meta, key, v);
}

/* Before the first change of a meta value since the last commit (its
 * key not marked), keeps the value as committed in l->meta_undo, so a
 * discard puts it back without the store and without the ledger
 * holding every committed meta text between runs (audit.seen alone is
 * 810 KB after a converge of 10,000 workers). "+VALUE", or "-": none. */
static int meta_remember(Ledger *l, const char *k, const char *key) {
        const char *v = ledger_get_meta(l, key);
        char *u;

        if (lh_table_lookup_entry(l->dirty, k))
                return 0;
        u = malloc(v ? strlen(v) + 2 : 2);
        if (!u)
                return -ENOMEM;
        u[0] = v ? '+' : '-';
        strcpy(u + 1, v ?: "");
        return table_put_owned(l->meta_undo, k, u);
}

int ledger_set_meta(Ledger *l, const char *key, const char *value) {
        _cleanup_free_ char *k = NULL;
        int r;

        assert(l);
        if (isempty(key))
                return -EINVAL;
        if (streq_ptr(ledger_get_meta(l, key), value))
                return 0;
        r = meta_key(key, &k);
        if (r < 0)
                return r;
        r = meta_remember(l, k, key);
        if (r < 0)
                return r;
        r = mark_dirty(l, k);
        if (r < 0)
                return r;
        return meta_put(l, key, value);
}

const char *ledger_get_meta(const Ledger *l, const char *key) {
        return l ? table_get(l->meta, key) : NULL;
}

int ledger_set_run_id(Ledger *l, const char *run_id) {
        return free_and_strdup(&l->run_id, run_id);
}

/* ---- the codec: encoding ---- */

static int add_str(json_object *o, const char *key, const char *v) {
        json_object *j;

        if (!v)
                return 0;
        j = json_object_new_string(v);
        if (!j || json_object_object_add(o, key, j) < 0) {
                json_object_put(j);
                return -ENOMEM;
        }
        return 0;
}

static int add_obj(json_object *o, const char *key, json_object *v) {
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_u64(json_object *o, const char *key, uint64_t v) {
        return add_obj(o, key, json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t) v));
}

static json_object *strv_to_json(char * const *l) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; a && l && l[i]; i++) {
                json_object *s = json_object_new_string(l[i]);

                if (!s || json_object_array_add(a, s) < 0) {
                        json_object_put(s);
                        json_object_put(a);
                        return NULL;
                }
        }
        return a;
}

static json_object *extras_to_json(const LedgerEntry *e) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (add_str(o, "store_id", e->store_id) < 0 || add_str(o, "jurisdiction", e->jurisdiction) < 0 ||
            add_str(o, "etag", e->etag) < 0 || add_str(o, "modified_on", e->modified_on) < 0 ||
            add_str(o, "hmac", e->hmac) < 0)
                return NULL;
        if (e->do_classes && add_obj(o, "do_classes", strv_to_json(e->do_classes)) < 0)
                return NULL;
        if (e->crons_set && add_obj(o, "crons", strv_to_json(e->crons)) < 0)
                return NULL;
        if (e->subdomain >= 0 && add_obj(o, "subdomain", json_object_new_int(e->subdomain)) < 0)
                return NULL;
        if (e->consumers && add_obj(o, "consumers", strv_to_json(e->consumers)) < 0)
                return NULL;
        if (e->binding_names && add_obj(o, "bindings", strv_to_json(e->binding_names)) < 0)
                return NULL;
        if (e->adopted && add_obj(o, "adopted", json_object_new_boolean(true)) < 0)
                return NULL;
        if (e->n_secrets > 0) {
                json_object *s = json_object_new_object();

                if (add_obj(o, "secrets", s) < 0)
                        return NULL;
                for (size_t i = 0; i < e->n_secrets; i++) {
                        json_object *h = NULL;

                        if (e->secrets[i].hmac && !(h = json_object_new_string(e->secrets[i].hmac)))
                                return NULL;
                        if (json_object_object_add(s, e->secrets[i].name, h) < 0) {
                                json_object_put(h);
                                return NULL;
                        }
                }
        }
        return TAKE_PTR(o);
}

static json_object *entry_to_json(const LedgerEntry *e) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_strv_free_ char **tags = NULL;

        if (!o)
                return NULL;
        /* The record keeps every migration tag applied; the entry's
         * current one is appended when new. */
        if (e->migration_tags && !(tags = strv_copy(e->migration_tags)))
                return NULL;
        if (e->migration_tag && !strv_contains(tags, e->migration_tag) && strv_extend(&tags, e->migration_tag) < 0)
                return NULL;
        if (add_str(o, "kind", resource_kind_to_string(e->kind)) < 0 || add_str(o, "name", e->doc) < 0 ||
            add_str(o, "cf_id", e->id) < 0 || add_str(o, "cf_name", e->name) < 0 ||
            add_str(o, "ownership", e->adopted ? "adopted" : "created") < 0 || add_str(o, "digest", e->digest) < 0 ||
            add_str(o, "deletion_policy", deletion_policy_to_string(e->deletion)) < 0 ||
            add_str(o, "drift_policy", drift_policy_to_string(e->drift)) < 0 ||
            (tags && add_obj(o, "migration_tags", strv_to_json(tags)) < 0) || add_str(o, "run_id", e->run_id) < 0 ||
            add_u64(o, "created_usec", e->created_usec) < 0 || add_u64(o, "updated_usec", e->updated_usec) < 0 ||
            add_obj(o, "ledger", extras_to_json(e)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static json_object *intent_to_json(const LedgerIntent *in) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (add_str(o, "kind", resource_kind_to_string(in->kind)) < 0 || add_str(o, "name", in->name) < 0 ||
            add_str(o, "cf_name", in->name) < 0 || add_str(o, "run_id", in->run_id) < 0 ||
            add_u64(o, "time_usec", in->time_usec) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static char *json_text(json_object *o) {
        const char *t;

        if (!o)
                return NULL;
        t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        return t ? strdup(t) : NULL;
}

int ledger_encode_record(Ledger *l, const char *key, char **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        bool intent;
        void *v;

        assert(l && key && ret);
        *ret = NULL;
        if (streq(key, "binding")) {
                if (!l->account_id)
                        return 0;
                o = json_object_new_object();
                if (!o || add_str(o, "account_id", l->account_id) < 0 || add_str(o, "api_url", l->api_url) < 0)
                        return -ENOMEM;
        } else if (startswith(key, "meta/")) {
                const char *value = ledger_get_meta(l, key + 5);

                if (!value)
                        return 0;
                o = json_object_new_object();
                if (!o || add_str(o, "value", value) < 0)
                        return -ENOMEM;
        } else if ((v = record_object(l, key, &intent))) {
                o = intent ? intent_to_json(v) : entry_to_json(v);
                if (!o)
                        return -ENOMEM;
        } else
                return 0;
        *ret = json_text(o);
        return *ret ? 0 : -ENOMEM;
}

/* ---- the codec: decoding ---- */

typedef struct Decoder {
        Ledger *l;
        const char *key;
        char **reterr;
} Decoder;

static int fail(Decoder *d, const char *fmt, ...) _printf_(2, 3);
static int fail(Decoder *d, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        if (d->reterr && asprintf(d->reterr, "%s: %s", d->key, what ?: "invalid") < 0)
                *d->reterr = NULL;
        return -EBADMSG;
}

static json_object *field(json_object *o, const char *name) {
        json_object *v = NULL;

        if (!json_object_object_get_ex(o, name, &v))
                return NULL;
        return v;      /* NULL for JSON null as well: absent */
}

static int get_str(Decoder *d, json_object *o, const char *where, const char *name, char **ret) {
        json_object *v = field(o, name);

        if (!v)
                return 0;
        if (!json_object_is_type(v, json_type_string))
                return fail(d, "%s%s: expected a string", where, name);
        return free_and_strdup(ret, json_object_get_string(v));
}

static int get_u64(Decoder *d, json_object *o, const char *name, uint64_t *ret) {
        json_object *v = field(o, name);

        if (!v)
                return 0;
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
                return fail(d, "%s: expected a non-negative integer", name);
        *ret = (uint64_t) json_object_get_int64(v);
        return 0;
}

/* An array of strings; an empty array gives an empty (non-NULL) list. */
static int get_strv(Decoder *d, json_object *o, const char *where, const char *name, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        json_object *a = field(o, name);
        size_t n;

        if (!a)
                return 0;
        if (!json_object_is_type(a, json_type_array))
                return fail(d, "%s%s: expected an array", where, name);
        n = json_object_array_length(a);
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *x = json_object_array_get_idx(a, i);

                if (!x || !json_object_is_type(x, json_type_string))
                        return fail(d, "%s%s[%zu]: expected a string", where, name, i);
                if (strv_extend(&l, json_object_get_string(x)) < 0)
                        return -ENOMEM;
        }
        strv_free(*ret);
        *ret = TAKE_PTR(l);
        return 0;
}

static int extras_from_json(Decoder *d, LedgerEntry *e, json_object *o) {
        json_object *v;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return fail(d, "ledger: expected an object");
        if ((r = get_str(d, o, "ledger.", "store_id", &e->store_id)) < 0 ||
            (r = get_str(d, o, "ledger.", "jurisdiction", &e->jurisdiction)) < 0 ||
            (r = get_str(d, o, "ledger.", "etag", &e->etag)) < 0 ||
            (r = get_str(d, o, "ledger.", "modified_on", &e->modified_on)) < 0 ||
            (r = get_str(d, o, "ledger.", "hmac", &e->hmac)) < 0 ||
            (r = get_strv(d, o, "ledger.", "do_classes", &e->do_classes)) < 0 ||
            (r = get_strv(d, o, "ledger.", "consumers", &e->consumers)) < 0 ||
            (r = get_strv(d, o, "ledger.", "bindings", &e->binding_names)) < 0)
                return r;
        if (json_object_object_get_ex(o, "crons", NULL)) {
                if ((r = get_strv(d, o, "ledger.", "crons", &e->crons)) < 0)
                        return r;
                if (!e->crons && !(e->crons = calloc(1, sizeof(char *))))
                        return -ENOMEM;
                e->crons_set = true;
        }
        if ((v = field(o, "subdomain"))) {
                if (json_object_is_type(v, json_type_int))
                        e->subdomain = json_object_get_int(v) ? 1 : 0;
                else if (json_object_is_type(v, json_type_boolean))
                        e->subdomain = json_object_get_boolean(v) ? 1 : 0;
                else
                        return fail(d, "ledger.subdomain: expected an integer");
        }
        if ((v = field(o, "adopted"))) {
                if (!json_object_is_type(v, json_type_boolean))
                        return fail(d, "ledger.adopted: expected a boolean");
                if (json_object_get_boolean(v))
                        e->adopted = true;
        }
        if ((v = field(o, "secrets"))) {
                if (!json_object_is_type(v, json_type_object))
                        return fail(d, "ledger.secrets: expected an object");
                json_object_object_foreach(v, k, h) {
                        if (h && !json_object_is_type(h, json_type_string))
                                return fail(d, "ledger.secrets.%s: expected a string", k);
                        if (ledger_entry_set_secret(e, k, h ? json_object_get_string(h) : NULL) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int kind_from_json(Decoder *d, json_object *o, ResourceKind *ret) {
        json_object *v = field(o, "kind");

        if (!v)
                return fail(d, "kind: missing");
        if (!json_object_is_type(v, json_type_string))
                return fail(d, "kind: expected a string");
        *ret = resource_kind_from_string(json_object_get_string(v));
        if (*ret < 0)
                return fail(d, "kind: unknown kind '%s'", json_object_get_string(v));
        return 0;
}

/* Whether key names (prefix, kind, name): encoded as written now, or raw
 * as written before keys were encoded (*ret_legacy). */
static bool key_names(const char *key, const char *prefix, ResourceKind kind, const char *name, bool *ret_legacy) {
        _cleanup_free_ char *want = make_key(prefix, kind, name, true), *raw = NULL;

        *ret_legacy = false;
        if (want && streq(want, key))
                return true;
        raw = make_key(prefix, kind, name, false);
        if (raw && streq(raw, key)) {
                *ret_legacy = true;
                return true;
        }
        return false;
}

static int decode_entry(Decoder *d, json_object *o, LedgerEntry **ret, bool *ret_legacy) {
        _cleanup_free_ char *doc = NULL, *own = NULL, *del = NULL, *drift = NULL, *run = NULL;
        ResourceKind kind;
        LedgerEntry *e;
        json_object *x;
        int r;

        r = kind_from_json(d, o, &kind);
        if (r < 0)
                return r;
        r = get_str(d, o, "", "name", &doc);
        if (r < 0)
                return r;
        if (isempty(doc))
                return fail(d, "name: missing");
        if (!key_names(d->key, "resource", kind, doc, ret_legacy))
                return fail(d, "the key does not name the record's kind and name (%s/%s)",
                            resource_kind_to_string(kind), doc);
        e = entry_new(kind, doc);
        if (!e)
                return -ENOMEM;
        if ((r = get_str(d, o, "", "cf_id", &e->id)) < 0 || (r = get_str(d, o, "", "cf_name", &e->name)) < 0 ||
            (r = get_str(d, o, "", "ownership", &own)) < 0 || (r = get_str(d, o, "", "digest", &e->digest)) < 0 ||
            (r = get_str(d, o, "", "deletion_policy", &del)) < 0 ||
            (r = get_str(d, o, "", "drift_policy", &drift)) < 0 ||
            (r = get_strv(d, o, "", "migration_tags", &e->migration_tags)) < 0 ||
            (r = get_str(d, o, "", "run_id", &run)) < 0 || (r = run_id_set(d->l, &e->run_id, run)) < 0 ||
            (r = get_u64(d, o, "created_usec", &e->created_usec)) < 0 ||
            (r = get_u64(d, o, "updated_usec", &e->updated_usec)) < 0)
                goto fail;
        if (!own || (!streq(own, "created") && !streq(own, "adopted"))) {
                r = fail(d, "ownership: invalid '%s'", strna(own));
                goto fail;
        }
        e->adopted = streq(own, "adopted");
        e->deletion = del ? deletion_policy_from_string(del) : DELETION_RETAIN;
        if (e->deletion < 0) {
                r = fail(d, "deletion_policy: invalid '%s'", del);
                goto fail;
        }
        e->drift = drift ? drift_policy_from_string(drift) : DRIFT_REPAIR;
        if (e->drift < 0) {
                r = fail(d, "drift_policy: invalid '%s'", drift);
                goto fail;
        }
        if (e->migration_tags && e->migration_tags[0] &&
            free_and_strdup(&e->migration_tag, e->migration_tags[strv_length(e->migration_tags) - 1]) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        if (!e->migration_tags || !e->migration_tags[0])
                e->migration_tags = strv_free(e->migration_tags);
        if (!e->name && free_and_strdup(&e->name, e->doc) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        if ((x = field(o, "ledger")) && (r = extras_from_json(d, e, x)) < 0)
                goto fail;
        *ret = e;
        return 0;
fail:
        entry_free(d->l, e);
        return r;
}

static int decode_intent(Decoder *d, json_object *o, LedgerIntent **ret, bool *ret_legacy) {
        _cleanup_free_ char *name = NULL, *cf = NULL, *run = NULL;
        ResourceKind kind;
        uint64_t t = 0;
        int r;

        if ((r = kind_from_json(d, o, &kind)) < 0 || (r = get_str(d, o, "", "name", &name)) < 0 ||
            (r = get_str(d, o, "", "cf_name", &cf)) < 0 || (r = get_str(d, o, "", "run_id", &run)) < 0 ||
            (r = get_u64(d, o, "time_usec", &t)) < 0)
                return r;
        if (isempty(cf))
                return fail(d, "cf_name: missing");
        if (!key_names(d->key, "intent", kind, cf, ret_legacy))
                return fail(d, "the key does not name the record's kind and cf_name (%s/%s)",
                            resource_kind_to_string(kind), cf);
        *ret = intent_new(kind, cf, run, t);
        return *ret ? 0 : -ENOMEM;
}

static int parse_text(Decoder *d, const char *value, json_object **ret) {
        json_tokener *tok = json_tokener_new_ex(LEDGER_MAX_DEPTH);
        json_object *o;
        size_t n = strlen(value), end;

        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, value, (int) n);
        if (!o || json_tokener_get_error(tok) != json_tokener_success) {
                enum json_tokener_error e = json_tokener_get_error(tok);

                json_tokener_free(tok);
                json_object_put(o);
                return fail(d, "not valid JSON (%s)",
                            e == json_tokener_continue ? "truncated" : json_tokener_error_desc(e));
        }
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (end != n && value[end + strspn(value + end, " \t\r\n")]) {
                json_object_put(o);
                return fail(d, "trailing data after the JSON value");
        }
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return fail(d, "expected a JSON object");
        }
        *ret = o;
        return 0;
}

static int apply_binding(Ledger *l, Decoder *d, json_object *o) {
        _cleanup_free_ char *a = NULL, *u = NULL;
        int r;

        if (o) {
                if ((r = get_str(d, o, "", "account_id", &a)) < 0 || (r = get_str(d, o, "", "api_url", &u)) < 0)
                        return r;
                if (isempty(a) || isempty(u))
                        return fail(d, "needs account_id and api_url");
        }
        free(l->account_id);
        free(l->api_url);
        l->account_id = TAKE_PTR(a);
        l->api_url = TAKE_PTR(u);
        return 0;
}

static int apply_meta(Ledger *l, Decoder *d, json_object *o) {
        const char *name = d->key + strlen("meta/");
        json_object *v = NULL;

        if (!*name)
                return fail(d, "empty meta key");
        if (o && (!json_object_object_get_ex(o, "value", &v) || !json_object_is_type(v, json_type_string)))
                return fail(d, "value: expected a string");
        return meta_put(l, name, v ? json_object_get_string(v) : NULL);
}

static int apply_resource(Ledger *l, Decoder *d, json_object *o, bool *ret_legacy) {
        LedgerEntry *e = NULL, *old;
        int r;

        if (o) {
                r = decode_entry(d, o, &e, ret_legacy);
                if (r < 0)
                        return r;
                old = ledger_find(l, e->kind, e->doc);
        } else {
                bool intent;

                old = record_object(l, d->key, &intent);
        }
        if (old)
                entry_drop(l, old);
        if (e && (r = entry_insert(l, e)) < 0) {
                entry_free(l, e);
                return r;
        }
        return 0;
}

static int apply_intent(Ledger *l, Decoder *d, json_object *o, bool *ret_legacy) {
        _cleanup_free_ char *k = NULL;
        LedgerIntent *in = NULL, *old;
        int r;

        if (o) {
                r = decode_intent(d, o, &in, ret_legacy);
                if (r < 0)
                        return r;
                k = make_key("intent", in->kind, in->name, true);
        } else
                k = strdup(d->key);
        if (!k) {
                intent_free(in);
                return -ENOMEM;
        }
        {
                bool intent;

                old = record_object(l, k, &intent);
        }
        if (old)
                intent_drop(l, old, k);
        if (in && (r = intent_insert(l, in, k)) < 0) {
                intent_free(in);
                return r;
        }
        return 0;
}

/* Retired (fingerprints live in each resource's record): checked, then
 * ignored. */
static int check_secrets(Decoder *d, json_object *o) {
        if (!o)
                return 0;
        json_object_object_foreach(o, k, v)
                if (!v || !json_object_is_type(v, json_type_string) || strlen(json_object_get_string(v)) != 64)
                        return fail(d, "%s: expected a fingerprint", k);
        return 0;
}

/* Replaces what the ledger holds under d->key with o's record (NULL:
 * none). *ret_legacy: the key was written raw; the encoded key is
 * committed next. */
static int apply_record(Ledger *l, Decoder *d, json_object *o, bool *ret_legacy) {
        *ret_legacy = false;
        if (streq(d->key, "binding"))
                return apply_binding(l, d, o);
        if (startswith(d->key, "meta/"))
                return apply_meta(l, d, o);
        if (startswith(d->key, "resource/"))
                return apply_resource(l, d, o, ret_legacy);
        if (startswith(d->key, "intent/"))
                return apply_intent(l, d, o, ret_legacy);
        if (startswith(d->key, "secrets/"))
                return check_secrets(d, o);
        return fail(d, "unknown record type");
}

/* Of every record but the binding the ledger keeps a digest of the
 * committed text: the store holds the text, and ledger_discard reads
 * resources and intents back from there, meta values from meta_undo.
 * The binding, one small record, keeps its text. */
static bool committed_keeps_text(const char *key) {
        return streq(key, "binding");
}

/* The committed digest of key's entry or intent, if the ledger holds
 * one under key (true), in *ret_committed and *ret_md. */
static bool committed_held(const Ledger *l, const char *key, bool **ret_committed, uint8_t **ret_md) {
        bool intent;
        void *o = record_object(l, key, &intent);

        if (!o)
                return false;
        *ret_committed = intent ? &((LedgerIntent *) o)->committed : &((LedgerEntry *) o)->committed;
        *ret_md = intent ? ((LedgerIntent *) o)->committed_md : ((LedgerEntry *) o)->committed_md;
        return true;
}

/* committed[key] = text or its digest (text NULL: not committed). */
static int committed_set(Ledger *l, const char *key, const char *text) {
        uint8_t *md = NULL;
        bool *held;

        if (committed_keeps_text(key)) {
                if (text && !(md = (uint8_t *) strdup(text)))
                        return -ENOMEM;
                return table_put_owned(l->committed, key, md);
        }
        if (committed_held(l, key, &held, &md)) {
                *held = text != NULL;
                if (text)
                        sha256_raw(text, strlen(text), md);
                return table_put_owned(l->committed, key, NULL);       /* never in both */
        }
        if (text) {
                md = malloc(LEDGER_DIGEST_SIZE);
                if (!md)
                        return -ENOMEM;
                sha256_raw(text, strlen(text), md);
        }
        return table_put_owned(l->committed, key, md);
}

/* The text (binding, meta) or digest committed under key, or NULL. */
static const uint8_t *committed_get(const Ledger *l, const char *key) {
        uint8_t *md;
        bool *held;

        if (!committed_keeps_text(key) && committed_held(l, key, &held, &md))
                return *held ? md : NULL;
        return table_get(l->committed, key);
}

/* Whether text (NULL: no record) is what was committed under key. */
static bool committed_is(const Ledger *l, const char *key, const char *text) {
        const uint8_t *was = committed_get(l, key);
        uint8_t md[LEDGER_DIGEST_SIZE];

        if (!text || !was)
                return !text && !was;
        if (committed_keeps_text(key))
                return streq((const char *) was, text);
        sha256_raw(text, strlen(text), md);
        return memcmp(md, was, sizeof md) == 0;
}

int ledger_load_record(Ledger *l, const char *key, const char *value, char **reterr) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        Decoder d = { .l = l, .key = key, .reterr = reterr };
        bool legacy = false;
        int r;

        assert(l && key && value);
        r = parse_text(&d, value, &o);
        if (r < 0)
                return r;
        r = apply_record(l, &d, o, &legacy);
        if (r < 0)
                return r;
        r = committed_set(l, key, value);
        if (r < 0)
                return r;
        if (legacy) {
                /* Committed under the raw key: the next commit deletes it
                 * and puts the record under its encoded key. */
                bool res = startswith(key, "resource/");
                _cleanup_free_ char *k = make_key(res ? "resource" : "intent",
                                                  resource_kind_from_string(json_object_get_string(field(o, "kind"))),
                                                  json_object_get_string(field(o, res ? "name" : "cf_name")), true);

                if (!k)
                        return -ENOMEM;
                r = mark_dirty(l, key);
                if (r >= 0)
                        r = mark_dirty(l, k);
                if (r < 0)
                        return r;
        }
        return 0;
}

typedef struct LoadCtx {
        Ledger *l;
        char **reterr;
} LoadCtx;

static int load_one(const char *key, const char *value, void *userdata) {
        LoadCtx *c = userdata;

        return ledger_load_record(c->l, key, value, c->reterr);
}

int ledger_load(Store *s, Ledger **ret, char **reterr) {
        _cleanup_(ledger_freep) Ledger *l = ledger_new();
        LoadCtx c = { .reterr = reterr };
        int r;

        if (!l)
                return -ENOMEM;
        c.l = l;
        r = store_load(s, load_one, &c, reterr);
        if (r < 0) {
                /* A record's message names its key: say in which store. */
                if (reterr && *reterr && r == -EBADMSG) {
                        char *m = NULL;

                        if (asprintf(&m, "%s: %s", store_describe(s), *reterr) >= 0) {
                                free(*reterr);
                                *reterr = m;
                        }
                }
                return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* ---- changes ---- */

bool ledger_has_changes(const Ledger *l) {
        return l && lh_table_length(l->dirty) > 0;
}

void ledger_changes_free(StoreChange *c, size_t n) {
        for (size_t i = 0; c && i < n; i++) {
                free((char *) c[i].key);
                free((char *) c[i].value);
        }
        free(c);
}

int ledger_changes(Ledger *l, uint64_t now_usec, StoreChange **ret, size_t *ret_n) {
        size_t n = 0, cap = (size_t) lh_table_length(l->dirty);
        StoreChange *c;
        struct lh_entry *ent;
        int r;

        assert(l && ret && ret_n);
        if (cap > 0 && !l->account_id)
                return -EDESTADDRREQ;
        c = calloc(cap + 1, sizeof(StoreChange));
        if (!c)
                return -ENOMEM;
        lh_foreach(l->dirty, ent) {
                const char *key = lh_entry_k(ent);
                _cleanup_free_ char *now = NULL;
                bool intent;

                r = ledger_encode_record(l, key, &now);
                if (r < 0)
                        goto fail;
                if (committed_is(l, key, now))
                        continue;
                if (now && startswith(key, "resource/")) {
                        LedgerEntry *e = record_object(l, key, &intent);

                        e->updated_usec = now_usec;
                        if (e->created_usec == 0)
                                e->created_usec = now_usec;
                        if (run_id_set(l, &e->run_id, l->run_id) < 0) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        now = mfree(now);
                        r = ledger_encode_record(l, key, &now);
                        if (r < 0)
                                goto fail;
                } else if (now && startswith(key, "intent/")) {
                        LedgerIntent *in = record_object(l, key, &intent);

                        if (in->time_usec == 0) {
                                in->time_usec = now_usec;
                                now = mfree(now);
                                r = ledger_encode_record(l, key, &now);
                                if (r < 0)
                                        goto fail;
                        }
                }
                c[n].key = strdup(key);
                if (!c[n].key) {
                        r = -ENOMEM;
                        goto fail;
                }
                c[n++].value = TAKE_PTR(now);
        }
        *ret = c;
        *ret_n = n;
        return 0;
fail:
        ledger_changes_free(c, n);
        return r;
}

/* Forgets the marks: what is there now is what was committed. */
static void clear_dirty(Ledger *l) {
        struct lh_entry *ent, *tmp;

        lh_foreach_safe(l->dirty, ent, tmp) {
                bool intent;
                LedgerEntry *e = record_object(l, lh_entry_k(ent), &intent);

                if (e && !intent)
                        e->dirty = false;
                (void) lh_table_delete_entry(l->dirty, ent);
        }
        lh_foreach_safe(l->meta_undo, ent, tmp)
                (void) lh_table_delete_entry(l->meta_undo, ent);
}

int ledger_commit(Ledger *l, Store *s, char **reterr) {
        StoreChange *c = NULL;
        size_t n = 0;
        int r;

        assert(l && s);
        if (!ledger_has_changes(l))
                return 0;
        r = ledger_changes(l, now_realtime_usec(), &c, &n);
        if (r < 0)
                return r;
        if (n > 0) {
                r = store_commit(s, c, n, reterr);
                if (r < 0) {
                        ledger_changes_free(c, n);
                        return r;
                }
        }
        for (size_t i = 0; i < n; i++)
                if (committed_set(l, c[i].key, c[i].value) < 0)
                        /* Out of memory: the digest is gone, so the next
                         * change of this record is written whole again,
                         * nothing is lost. */
                        (void) committed_set(l, c[i].key, NULL);
        ledger_changes_free(c, n);
        clear_dirty(l);
        return 0;
}

typedef struct DiscardCtx {
        Ledger *l;
        struct lh_table *left;      /* dirty keys not yet put back */
        int r;
} DiscardCtx;

static void discard_apply(Ledger *l, const char *key, const char *text, int *r) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        Decoder d = { .l = l, .key = key };
        bool legacy;
        int k = 0;

        if (text)
                k = parse_text(&d, text, &o);
        if (k >= 0)
                k = apply_record(l, &d, o, &legacy);
        if (k < 0 && *r >= 0)
                *r = k;
}

static int discard_one(const char *key, const char *value, void *userdata) {
        DiscardCtx *c = userdata;
        struct lh_entry *ent = lh_table_lookup_entry(c->left, key);

        if (!ent)
                return 0;
        discard_apply(c->l, key, value, &c->r);
        (void) lh_table_delete_entry(c->left, ent);
        return 0;
}

int ledger_discard(Ledger *l, Store *s, char **reterr) {
        struct lh_entry *ent, *tmp;
        DiscardCtx c = { .l = l };
        bool stored = false;
        int r = 0;

        assert(l);
        c.left = table_new(false);
        if (!c.left)
                return -ENOMEM;
        lh_foreach(l->dirty, ent)
                if (table_set(c.left, lh_entry_k(ent), NULL) < 0) {
                        lh_table_free(c.left);
                        return -ENOMEM;
                }
        lh_foreach_safe(c.left, ent, tmp) {
                const char *key = lh_entry_k(ent);

                struct lh_entry *undo = startswith(key, "meta/") ? lh_table_lookup_entry(l->meta_undo, key) : NULL;

                if (committed_keeps_text(key)) {
                        discard_apply(l, key, table_get(l->committed, key), &c.r);
                        (void) lh_table_delete_entry(c.left, ent);
                } else if (undo) {
                        const char *u = lh_entry_v(undo);

                        if (meta_put(l, key + strlen("meta/"), u[0] == '+' ? u + 1 : NULL) < 0 && c.r >= 0)
                                c.r = -ENOMEM;
                        (void) lh_table_delete_entry(c.left, ent);
                } else if (committed_get(l, key))
                        stored = true;
        }
        /* The other committed texts are the store's: read back only when
         * a changed resource or intent had one. */
        if (stored && s)
                r = store_load(s, discard_one, &c, reterr);
        if (r >= 0) {
                /* What the store does not hold was never committed. */
                lh_foreach(c.left, ent)
                        discard_apply(l, lh_entry_k(ent), NULL, &c.r);
                r = c.r;
                clear_dirty(l);
        }
        lh_table_free(c.left);
        return r;
}
