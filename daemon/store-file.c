/* store-file.c: the file backend of the storage seam — a snapshot and an
 * append-only journal in the state directory; see store-file.h.
 *
 * A writer keeps in memory (key → Rec, a json-c hash table) only the
 * binding and what the journal changed since the snapshot, and of those
 * changes only where their text is in the journal; a load or a
 * compaction merges them, read back, with the snapshot read back from
 * disk, record by record (FileStore.delta). A reader keeps every
 * record's text. A commit appends one journal line and applies the
 * batch to the table, a
 * compaction writes every record as the snapshot. Records are parsed only
 * to embed them in the snapshot and journal as JSON (so both stay
 * readable), never interpreted: that is ledger.c's job — except for
 * lifting a version 1 snapshot, which has no records.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <json-c/linkhash.h>

#include "store-file.h"
#include "util.h"

#define SNAPSHOT_FILE "state.json"
#define JOURNAL_FILE "state.journal"
#define LOCK_FILE "lock"
#define KEY_FILE "hmac.key"
#define FORMAT_VERSION 2
#define MAX_DEPTH 32
#define SUM_LEN 16              /* hex digits of SHA-256 per journal line */
#define V1_LEDGER_META_PREFIX "engine.x."

typedef struct FileStore {
        char *dir;
        char *snap_path;
        char *journal_path;
        char *key_path;
        int lock_fd;
        int dir_fd;
        int journal_fd;             /* opened at the first append or read back (Rec), read-write */
        bool writable;
        bool broken;                /* an append could not be undone: refuse more */
        struct lh_table *records;   /* key → Rec (the text, or where it is in the journal); see delta */
        /* delta: records holds the binding and what the journal changed
         * since state.json (a deleted key maps to TOMBSTONE), not the
         * records state.json holds: those are read back from the file
         * when all of them are needed (load, compaction), so the texts
         * are not resident (as large as the file: 1 MB at 1,000
         * workers). Only a writer (the lock held: nobody else rewrites
         * the file) whose snapshot is sorted version 2 or absent; a
         * reader, or a snapshot loaded otherwise, keeps every record
         * until its first compaction. */
        bool delta;
        bool snap_on_disk;          /* delta: state.json holds records to merge */
        int snap_fd;                /* delta: that state.json, open, so it is read
                                     * back even if its name is removed or
                                     * replaced; < 0: read back by name */
        uint64_t seq;               /* last batch applied */
        uint64_t journal_size;      /* bytes of whole, valid lines */
        uint64_t snap_size;
        int snap_version;           /* 0: none */
        uint8_t key[STORE_HMAC_KEY_SIZE];
        bool have_key;
        StoreFileStats stats;
} FileStore;

static int set_error(char **reterr, const char *fmt, ...) _printf_(2, 3);
static int set_error(char **reterr, const char *fmt, ...) {
        va_list ap;

        if (!reterr)
                return 0;
        free(*reterr);
        va_start(ap, fmt);
        if (vasprintf(reterr, fmt, ap) < 0)
                *reterr = NULL;
        va_end(ap);
        return 0;
}

/* A record's value in FileStore.records: its text, or where the text
 * is in state.journal (a writer's commits and journal load, the lock
 * held: nobody else truncates the journal under it). */
typedef struct Rec {
        uint64_t off;               /* text_len > 0: journal offset of the text */
        uint32_t text_len;          /* 0: the text follows */
        char text[];
} Rec;

static Rec tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static void record_value_free(void *v) {
        if (v != TOMBSTONE)
                free(v);
}

static Rec *rec_text(const char *text) {
        size_t n = strlen(text) + 1;
        Rec *r = malloc(sizeof(Rec) + n);

        if (!r)
                return NULL;
        *r = (Rec) {};
        memcpy(r->text, text, n);
        return r;
}

static void record_free(struct lh_entry *ent) {
        free(lh_entry_k(ent));
        record_value_free(lh_entry_v(ent));
}

/* records[key] = v (taken over, also on failure); NULL removes (in
 * delta mode: marks the key deleted, since state.json may hold it). */
static int records_put(FileStore *f, const char *key, Rec *v) {
        struct lh_entry *ent = lh_table_lookup_entry(f->records, key);
        char *k;

        if (!v && !f->delta) {
                if (ent)
                        (void) lh_table_delete_entry(f->records, ent);
                return 0;
        }
        if (!v)
                v = TOMBSTONE;
        if (ent) {
                record_value_free(lh_entry_v(ent));
                lh_entry_set_val(ent, v);
                return 0;
        }
        k = strdup(key);
        if (!k || lh_table_insert(f->records, k, v) < 0) {
                free(k);
                record_value_free(v);
                return -ENOMEM;
        }
        return 0;
}

/* records[key] = text (copied); text NULL removes. */
static int records_set(FileStore *f, const char *key, const char *text) {
        Rec *v = NULL;

        if (text && !(v = rec_text(text)))
                return -ENOMEM;
        return records_put(f, key, v);
}

/* records[key] = the text of len bytes at off in state.journal. */
static int records_set_ref(FileStore *f, const char *key, uint64_t off, size_t len) {
        Rec *v = malloc(sizeof(Rec));

        if (!v)
                return -ENOMEM;
        *v = (Rec) { .off = off, .text_len = (uint32_t) len };
        return records_put(f, key, v);
}

static int open_journal(FileStore *f, char **reterr);

/* The text of a record value: its own, or read back from the journal
 * into *buf (caller frees). */
static int rec_read(FileStore *f, const Rec *v, char **buf, const char **ret) {
        ssize_t k;
        int r;

        if (v->text_len == 0) {
                *ret = v->text;
                return 0;
        }
        /* The journal's own descriptor: the file appended to, even if
         * its name were removed meanwhile. */
        r = open_journal(f, NULL);
        if (r < 0)
                return r;
        *buf = malloc((size_t) v->text_len + 1);
        if (!*buf)
                return -ENOMEM;
        do
                k = pread(f->journal_fd, *buf, v->text_len, (off_t) v->off);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        /* A record is a JSON object: anything else there means the
         * journal is not what this process wrote (never written on). */
        if ((size_t) k != v->text_len || (*buf)[0] != '{' || (*buf)[k - 1] != '}')
                return -ENODATA;
        (*buf)[k] = 0;
        *ret = *buf;
        return 0;
}

static int records_set_json(FileStore *f, const char *key, json_object *o) {
        const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        return t ? records_set(f, key, t) : -ENOMEM;
}

/* A key as store.h accepts it: bytes that are not printable ASCII or a
 * space, which an older binderyd wrote raw (KV titles), percent-encoded
 * as ledger.c encodes them. */
static char *key_normalize(const char *key) {
        char *buf = NULL;
        size_t size = 0;
        FILE *m = open_memstream(&buf, &size);

        if (!m)
                return NULL;
        for (const unsigned char *p = (const unsigned char *) key; *p; p++)
                if (*p <= ' ' || *p > '~')
                        fprintf(m, "%%%02X", *p);
                else
                        fputc(*p, m);
        if (fclose(m) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* ---- the snapshot ---- */

typedef struct Loader {
        const char *path;
        char **reterr;
} Loader;

static int load_fail(Loader *l, const char *fmt, ...) _printf_(2, 3);
static int load_fail(Loader *l, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        (void) set_error(l->reterr, "%s: %s", l->path, what ?: "invalid");
        return -EBADMSG;
}

static const char *str_field(json_object *o, const char *k) {
        json_object *v;

        if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

/* Version 1's "secrets" map was written by nothing (per-secret
 * fingerprints live in each resource's ledger): checked, dropped. */
static int lift_v1_check_secrets(Loader *l, json_object *root) {
        json_object *m;

        if (!json_object_object_get_ex(root, "secrets", &m) || !m)
                return 0;
        if (!json_object_is_type(m, json_type_object))
                return load_fail(l, "secrets: expected an object");
        json_object_object_foreach(m, scope, keys) {
                if (!keys || !json_object_is_type(keys, json_type_object))
                        return load_fail(l, "secrets.%s: expected an object", scope);
                json_object_object_foreach(keys, k, v)
                        if (!v || !json_object_is_type(v, json_type_string) || strlen(json_object_get_string(v)) != 64)
                                return load_fail(l, "secrets.%s.%s: expected a fingerprint", scope, k);
        }
        return 0;
}

/* The "meta" map of strings (NULL in *ret if absent). */
static int lift_v1_meta_map(Loader *l, json_object *root, json_object **ret) {
        json_object *m;

        *ret = NULL;
        if (!json_object_object_get_ex(root, "meta", &m) || !m)
                return 0;
        if (!json_object_is_type(m, json_type_object))
                return load_fail(l, "meta: expected an object");
        json_object_object_foreach(m, k, v)
                if (!v || !json_object_is_type(v, json_type_string))
                        return load_fail(l, "meta.%s: expected a string", k);
        *ret = m;
        return 0;
}

/* One element of "resources" or "intents" → records["PREFIX/KIND/NAME"],
 * the key's name from field name_field. Returns the key (caller frees). */
static int lift_v1_record(Loader *l, FileStore *f, json_object *o, const char *what, size_t i, const char *prefix,
                          const char *name_field, char **ret_key) {
        _cleanup_free_ char *key = NULL;
        const char *kind, *name;

        if (!o || !json_object_is_type(o, json_type_object))
                return load_fail(l, "%s[%zu]: expected an object", what, i);
        kind = str_field(o, "kind");
        name = str_field(o, name_field);
        if (!kind || isempty(name))
                return load_fail(l, "%s[%zu]: needs a kind and a %s", what, i, name_field);
        if (asprintf(&key, "%s/%s/%s", prefix, kind, name) < 0 || !(*ret_key = key_normalize(key)))
                return -ENOMEM;
        if (lh_table_lookup_entry(f->records, *ret_key)) {
                *ret_key = mfree(*ret_key);
                return load_fail(l, "%s[%zu]: duplicate %s %s", what, i, prefix, name);
        }
        return 0;
}

/* "resources": each becomes a record, its ledger fields (a JSON string
 * in meta "engine.x.KIND.NAME") its "ledger" object. */
static int lift_v1_resources(Loader *l, FileStore *f, json_object *root, json_object *meta) {
        json_object *res;

        if (!json_object_object_get_ex(root, "resources", &res) || !res)
                return 0;
        if (!json_object_is_type(res, json_type_array))
                return load_fail(l, "resources: expected an array");
        for (size_t i = 0; i < json_object_array_length(res); i++) {
                json_object *o = json_object_array_get_idx(res, i), *x, *lifted;
                _cleanup_free_ char *key = NULL, *mkey = NULL;
                int r;

                r = lift_v1_record(l, f, o, "resources", i, "resource", "name", &key);
                if (r < 0)
                        return r;
                if (asprintf(&mkey, V1_LEDGER_META_PREFIX "%s.%s", str_field(o, "kind"), str_field(o, "name")) < 0)
                        return -ENOMEM;
                if (meta && json_object_object_get_ex(meta, mkey, &x)) {
                        lifted = json_tokener_parse(json_object_get_string(x));
                        if (!lifted || !json_object_is_type(lifted, json_type_object)) {
                                json_object_put(lifted);
                                return load_fail(l, "meta.%s: expected a JSON object in a string", mkey);
                        }
                        if (json_object_object_add(o, "ledger", lifted) < 0) {
                                json_object_put(lifted);
                                return -ENOMEM;
                        }
                }
                r = records_set_json(f, key, o);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int lift_v1_intents(Loader *l, FileStore *f, json_object *root) {
        json_object *intents;

        if (!json_object_object_get_ex(root, "intents", &intents) || !intents)
                return 0;
        if (!json_object_is_type(intents, json_type_array))
                return load_fail(l, "intents: expected an array");
        for (size_t i = 0; i < json_object_array_length(intents); i++) {
                json_object *o = json_object_array_get_idx(intents, i);
                _cleanup_free_ char *key = NULL;
                int r;

                r = lift_v1_record(l, f, o, "intents", i, "intent", "cf_name", &key);
                if (r < 0)
                        return r;
                r = records_set_json(f, key, o);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Meta values other than the ledger fields (lifted, or of no resource:
 * dropped, as version 1 ignored them) → "meta/KEY": {"value": ...}. */
static int lift_v1_meta(FileStore *f, json_object *meta) {
        if (!meta)
                return 0;
        json_object_object_foreach(meta, k, v) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                _cleanup_free_ char *key = NULL, *norm = NULL;
                int r;

                if (startswith(k, V1_LEDGER_META_PREFIX))
                        continue;
                o = json_object_new_object();
                if (!o || json_object_object_add(o, "value", json_object_get(v)) < 0 || asprintf(&key, "meta/%s", k) < 0 ||
                    !(norm = key_normalize(key)))
                        return -ENOMEM;
                r = records_set_json(f, norm, o);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Version 1: arrays and maps, lifted into records. */
static int lift_v1(Loader *l, FileStore *f, json_object *root) {
        json_object *meta;
        int r;

        if ((r = lift_v1_check_secrets(l, root)) < 0 || (r = lift_v1_meta_map(l, root, &meta)) < 0 ||
            (r = lift_v1_resources(l, f, root, meta)) < 0 || (r = lift_v1_intents(l, f, root)) < 0)
                return r;
        return lift_v1_meta(f, meta);
}

/* The snapshot's text as one JSON object (anything else, or more, is an
 * error naming the file). */
static int parse_snapshot(Loader *l, const char *data, size_t size, json_object **ret) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        json_tokener *tok;
        size_t end;

        tok = json_tokener_new_ex(MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        root = json_tokener_parse_ex(tok, data, (int) size);
        if (!root || json_tokener_get_error(tok) != json_tokener_success) {
                enum json_tokener_error e = json_tokener_get_error(tok);

                (void) set_error(l->reterr, "%s: not valid JSON (%s at offset %zu); refusing to treat it as empty",
                                 l->path, e == json_tokener_continue ? "truncated" : json_tokener_error_desc(e),
                                 json_tokener_get_parse_end(tok));
                json_tokener_free(tok);
                return -EBADMSG;
        }
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        for (; end < size; end++)
                if (!strchr(" \t\r\n", data[end]))
                        return load_fail(l, "trailing data at offset %zu", end);
        if (!json_object_is_type(root, json_type_object))
                return load_fail(l, "expected a JSON object");
        *ret = TAKE_PTR(root);
        return 0;
}

/* The snapshot's text as the walk reads it: read from the file through
 * a window of SNAP_CHUNK bytes, never held whole (a record that spans
 * two windows is carried over by json-c's tokener, which keeps only the
 * value it is parsing). */
#define SNAP_CHUNK (64U * 1024U)

typedef struct Src {
        int fd;                     /* read with pread(): the offset of fd is not used */
        char *buf;                  /* the window */
        const char *data;           /* = buf */
        size_t size;                /* bytes in data */
        size_t pos;                 /* next byte of data to look at */
        uint64_t off;               /* file offset just past data[size - 1] */
        bool eof;                   /* no more bytes past data[size - 1] */
        int error;                  /* a read failed (negative errno) */
} Src;

static int src_init_fd(Src *src, int fd) {
        *src = (Src) { .fd = fd };
        src->buf = malloc(SNAP_CHUNK);
        if (!src->buf)
                return -ENOMEM;
        src->data = src->buf;
        return 0;
}

static void src_done(Src *src) {
        src->buf = mfree(src->buf);
}

/* Once every byte of the window is looked at: the next window. False at
 * the end of the file (or a read error, in src->error). */
static bool src_fill(Src *src) {
        ssize_t k;

        if (src->pos < src->size)
                return true;
        if (src->eof)
                return false;
        do
                k = pread(src->fd, src->buf, SNAP_CHUNK, (off_t) src->off);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                src->error = -errno;
        if (k <= 0) {
                src->eof = true;
                return false;
        }
        if (src->off + (uint64_t) k > STORE_FILE_MAX_SIZE) {
                src->error = -EFBIG;
                src->eof = true;
                return false;
        }
        src->off += (uint64_t) k;
        src->size = (size_t) k;
        src->pos = 0;
        return true;
}

/* Skips blanks; false at the end. */
static bool src_skip_blanks(Src *src) {
        for (;;) {
                if (!src_fill(src))
                        return false;
                while (src->pos < src->size && strchr(" \t\r\n", src->data[src->pos]) && src->data[src->pos])
                        src->pos++;
                if (src->pos < src->size)
                        return true;
        }
}

/* Parses the one JSON value at the reader's position (after blanks) and
 * moves past it; NULL when there is none (any error). */
static json_object *next_value(json_tokener *tok, Src *src) {
        if (!src_skip_blanks(src))
                return NULL;
        json_tokener_reset(tok);
        for (;;) {
                size_t n = src->size - src->pos;
                json_object *o = json_tokener_parse_ex(tok, src->data + src->pos, (int) n);
                enum json_tokener_error e = json_tokener_get_error(tok);

                if (o && e == json_tokener_success) {
                        src->pos += json_tokener_get_parse_end(tok);
                        return o;
                }
                json_object_put(o);
                if (e != json_tokener_continue)
                        return NULL;
                /* The value goes on in the next window. */
                src->pos = src->size;
                if (!src_fill(src))
                        return NULL;
        }
}

/* Skips blanks, then expects c. */
static bool next_char(Src *src, char c) {
        if (!src_skip_blanks(src) || src->data[src->pos] != c)
                return false;
        src->pos++;
        return true;
}

/* Whether only blanks are left. */
static bool src_at_end(Src *src) {
        return !src_skip_blanks(src) && src->error == 0;
}

/* A walk over a version 2 snapshot's members, one value at a time (a
 * tree of the whole file held several times its size at once): the
 * binding and each record (its key normalized) go to record(), in the
 * file's order, each value freed after the call. */
typedef struct SnapWalk SnapWalk;
struct SnapWalk {
        FileStore *f;
        /* binding: the top-level member, not a record. A negative return
         * stops the walk with that error; 1 stops it as unusual. */
        int (*record)(SnapWalk *w, const char *key, json_object *v, bool binding);
        char *last;                 /* the previous record's key (sorted check) */
        bool sorted;                /* every record's key above the one before */
        /* merge */
        const char **keys;          /* delta keys, sorted */
        int read_error;             /* a delta text could not be read back from the journal */
        size_t n_keys, next;
        store_record_fn fn;
        void *userdata;
        uint64_t seq;
        bool have_seq;
};

/* Returns 1 when the snapshot was walked whole; 0 when anything is
 * unusual (a parse error, another version, a repeated member, a record
 * that is not an object, the binding among the records): then the tree
 * path decides, with its messages. */
static int walk_snapshot(SnapWalk *w, Src *src) {
        /* Values sit one (members) or two (records) levels below the
         * root: the same depth limit as the tree's. */
        json_tokener *tok = json_tokener_new_ex(MAX_DEPTH - 2);
        bool have_version = false, have_binding = false, have_records = false, ok = false;
        int r = 0;

        if (!tok)
                return -ENOMEM;
        w->sorted = true;
        if (!next_char(src, '{'))
                goto done;
        for (bool first = true;; first = false) {
                _cleanup_(json_object_putp) json_object *k = NULL, *v = NULL;
                const char *key;

                if (next_char(src, '}'))
                        break;
                if (!first && !next_char(src, ','))
                        goto done;
                k = next_value(tok, src);
                if (!k || !json_object_is_type(k, json_type_string) || !next_char(src, ':'))
                        goto done;
                key = json_object_get_string(k);
                if (streq(key, "records")) {
                        if (have_records || !next_char(src, '{'))
                                goto done;
                        have_records = true;
                        for (bool rfirst = true;; rfirst = false) {
                                _cleanup_(json_object_putp) json_object *rk = NULL, *rv = NULL;
                                _cleanup_free_ char *norm = NULL;

                                if (next_char(src, '}'))
                                        break;
                                if (!rfirst && !next_char(src, ','))
                                        goto done;
                                rk = next_value(tok, src);
                                if (!rk || !json_object_is_type(rk, json_type_string) ||
                                    !next_char(src, ':'))
                                        goto done;
                                rv = next_value(tok, src);
                                if (!rv || !json_object_is_type(rv, json_type_object))
                                        goto done;
                                norm = key_normalize(json_object_get_string(rk));
                                if (!norm) {
                                        r = -ENOMEM;
                                        goto done;
                                }
                                if (streq(norm, "binding"))
                                        goto done;
                                if (w->last && strcmp(w->last, norm) >= 0)
                                        w->sorted = false;
                                r = w->record(w, norm, rv, false);
                                if (r != 0)
                                        goto done;
                                free(w->last);
                                w->last = TAKE_PTR(norm);
                        }
                        continue;
                }
                v = next_value(tok, src);
                if (!v)
                        goto done;
                if (streq(key, "version")) {
                        if (have_version || !json_object_is_type(v, json_type_int) ||
                            json_object_get_int64(v) != FORMAT_VERSION)
                                goto done;
                        have_version = true;
                } else if (streq(key, "journal_seq")) {
                        if (w->have_seq || !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
                                goto done;
                        w->have_seq = true;
                        w->seq = (uint64_t) json_object_get_int64(v);
                } else if (streq(key, "binding")) {
                        if (have_binding || !json_object_is_type(v, json_type_object))
                                goto done;
                        have_binding = true;
                        r = w->record(w, "binding", v, true);
                        if (r != 0)
                                goto done;
                }
                /* Other members: ignored, as the tree path ignores them. */
        }
        ok = have_version && src_at_end(src);
done:
        json_tokener_free(tok);
        w->last = mfree(w->last);
        if (r >= 0 && src->error < 0)
                r = src->error;
        if (r < 0)
                return r;
        return ok && r == 0 ? 1 : 0;
}

static int walk_keep(SnapWalk *w, const char *key, json_object *v, bool binding) {
        (void) binding;
        return records_set_json(w->f, key, v);
}

/* Delta mode: the records are checked, not kept. */
static int walk_check(SnapWalk *w, const char *key, json_object *v, bool binding) {
        return binding ? records_set_json(w->f, key, v) : 0;
}

static void records_clear(FileStore *f) {
        lh_table_free(f->records);
        f->records = lh_kchar_table_new(1024, record_free);
}

/* The common case of load_snapshot(): a version 2 snapshot walked
 * member by member. A writer whose snapshot is sorted (what compact()
 * writes) keeps only the binding (delta mode); otherwise every record is
 * kept. The file is read through a window (Src), never whole. Returns
 * 1 when it loaded the snapshot; 0 when the tree path must decide (then
 * nothing is kept); a read error is returned as it is. */
static int walk_file(SnapWalk *w, int fd) {
        Src src;
        int r;

        r = src_init_fd(&src, fd);
        if (r < 0)
                return r;
        r = walk_snapshot(w, &src);
        src_done(&src);
        return r;
}

static int load_snapshot_streamed(FileStore *f, int fd) {
        SnapWalk w = { .f = f, .record = f->writable ? walk_check : walk_keep };
        int r;

        r = walk_file(&w, fd);
        if (r > 0 && f->writable && !w.sorted) {
                /* Not in key order (an older writer's): kept whole. */
                records_clear(f);
                if (!f->records)
                        return -ENOMEM;
                w = (SnapWalk) { .f = f, .record = walk_keep };
                r = walk_file(&w, fd);
        } else if (r > 0 && f->writable) {
                f->delta = true;
                f->snap_on_disk = true;
        }
        if (r <= 0) {
                f->delta = f->snap_on_disk = false;
                records_clear(f);
                if (!f->records)
                        return -ENOMEM;
                return r;
        }
        if (w.have_seq)
                f->seq = w.seq;
        f->snap_version = FORMAT_VERSION;
        return 1;
}

static int load_snapshot(FileStore *f, char **reterr) {
        _cleanup_free_ char *data = NULL;
        _cleanup_(json_object_putp) json_object *root = NULL;
        Loader l = { .path = f->snap_path, .reterr = reterr };
        _cleanup_close_ int fd = -EBADF;
        json_object *v, *records;
        struct stat st;
        size_t size = 0;
        int64_t version;
        int r;

        fd = open(f->snap_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0)
                r = -errno;
        else if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        else
                r = (uint64_t) st.st_size > STORE_FILE_MAX_SIZE ? -EFBIG : 0;
        if (r >= 0) {
                f->snap_size = (uint64_t) st.st_size;
                r = load_snapshot_streamed(f, fd);
        }
        if (r == -EFBIG)
                return set_error(reterr, "%s: larger than %u bytes, refusing to load", f->snap_path,
                                 STORE_FILE_MAX_SIZE), r;
        if (r < 0 && r != -ENOMEM)
                return set_error(reterr, "%s: cannot read: %s", f->snap_path, strerror(-r)), r;
        if (r > 0 && f->delta && f->snap_on_disk)
                f->snap_fd = TAKE_FD(fd);
        if (r != 0)
                return r;
        /* Anything unusual (version 1, a parse error to report, ...):
         * the whole text as one tree. */
        r = read_full_fd(fd, STORE_FILE_MAX_SIZE, &data, &size);
        if (r == -EFBIG)
                return set_error(reterr, "%s: larger than %u bytes, refusing to load", f->snap_path,
                                 STORE_FILE_MAX_SIZE), r;
        if (r < 0)
                return set_error(reterr, "%s: cannot read: %s", f->snap_path, strerror(-r)), r;
        f->snap_size = size;
        r = parse_snapshot(&l, data, size, &root);
        if (r < 0)
                return r;
        if (!json_object_object_get_ex(root, "version", &v) || !json_object_is_type(v, json_type_int))
                return load_fail(&l, "missing format version");
        version = json_object_get_int64(v);
        if (version < 1)
                return load_fail(&l, "invalid format version %" PRId64, version);
        if (version > FORMAT_VERSION)
                return set_error(reterr, "%s: format version %" PRId64 " is newer than this binderyd supports (%d)",
                                 f->snap_path, version, FORMAT_VERSION), -EPROTONOSUPPORT;
        f->snap_version = (int) version;

        if (json_object_object_get_ex(root, "binding", &v) && v) {
                if (!json_object_is_type(v, json_type_object))
                        return load_fail(&l, "binding: expected an object");
                r = records_set_json(f, "binding", v);
                if (r < 0)
                        return r;
        }
        if (json_object_object_get_ex(root, "journal_seq", &v) && v) {
                if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
                        return load_fail(&l, "journal_seq: expected a non-negative integer");
                f->seq = (uint64_t) json_object_get_int64(v);
        }
        if (version < 2)
                return lift_v1(&l, f, root);
        if (!json_object_object_get_ex(root, "records", &records) || !records)
                return 0;
        if (!json_object_is_type(records, json_type_object))
                return load_fail(&l, "records: expected an object");
        json_object_object_foreach(records, key, o) {
                _cleanup_free_ char *norm = key_normalize(key);

                if (!norm)
                        return -ENOMEM;
                if (!o || !json_object_is_type(o, json_type_object))
                        return load_fail(&l, "records.%s: expected an object", key);
                if (streq(norm, "binding"))
                        return load_fail(&l, "records.binding: the binding is kept outside the records");
                r = records_set_json(f, norm, o);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- the journal ---- */

static const char *json_plain(json_object *o) {
        return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Where each value of put is in json, the batch's text as written
 * (format_line: json-c's plain text of {"put": {...}, "del": [...]}):
 * each value's plain text is looked for where it must be, so a text
 * written any other way is never misread — then false, and the caller
 * keeps the texts. offs[i] for the i-th member. */
static bool locate_puts(const char *json, size_t n, json_object *put, size_t *offs) {
        static const char head[] = "{\"put\":{";
        size_t pos = sizeof head - 1, i = 0;

        if (n < pos || memcmp(json, head, pos) != 0)
                return false;
        json_object_object_foreach(put, k, v) {
                _cleanup_(json_object_putp) json_object *ks = json_object_new_string(k);
                const char *kt = ks ? json_plain(ks) : NULL, *vt = json_plain(v);
                size_t kl, vl;

                if (!kt || !vt)
                        return false;
                kl = strlen(kt);
                vl = strlen(vt);
                if (i > 0 && (pos >= n || json[pos++] != ','))
                        return false;
                if (n - pos < kl + 1 + vl || memcmp(json + pos, kt, kl) != 0 || json[pos + kl] != ':' ||
                    memcmp(json + pos + kl + 1, vt, vl) != 0)
                        return false;
                offs[i++] = pos + kl + 1;
                pos += kl + 1 + vl;
        }
        return pos < n && json[pos] == '}';
}

/* Applies one batch {"put": {KEY: {...}}, "del": [KEY]}: the deletes,
 * then the puts (a commit applies its batch as a load replays it). json
 * is the batch's text, at offset json_off of state.journal: a writer
 * keeps of each put only where its text is there (not the text, as
 * large as the record); NULL keeps the texts. */
static int apply_batch(FileStore *f, json_object *b, const char *json, size_t json_len, uint64_t json_off,
                       const char *what, char **reterr) {
        _cleanup_free_ size_t *offs = NULL;
        json_object *put = NULL, *del = NULL;
        size_t i = 0;
        int r;

        if (!json_object_is_type(b, json_type_object))
                return set_error(reterr, "%s: expected a JSON object", what), -EBADMSG;
        if (json_object_object_get_ex(b, "put", &put) && put && !json_object_is_type(put, json_type_object))
                return set_error(reterr, "%s: put: expected an object", what), -EBADMSG;
        if (json_object_object_get_ex(b, "del", &del) && del && !json_object_is_type(del, json_type_array))
                return set_error(reterr, "%s: del: expected an array", what), -EBADMSG;
        for (size_t j = 0; del && j < json_object_array_length(del); j++) {
                json_object *k = json_object_array_get_idx(del, j);

                if (!k || !json_object_is_type(k, json_type_string))
                        return set_error(reterr, "%s: del[%zu]: expected a string", what, j), -EBADMSG;
                (void) records_set(f, json_object_get_string(k), NULL);
        }
        if (!put)
                return 0;
        {
                json_object_object_foreach(put, k, v)
                        if (!v || !json_object_is_type(v, json_type_object))
                                return set_error(reterr, "%s: put.%s: expected an object", what, k), -EBADMSG;
        }
        if (json && f->writable && json_object_object_length(put) > 0) {
                offs = calloc((size_t) json_object_object_length(put), sizeof(size_t));
                if (offs && !locate_puts(json, json_len, put, offs))
                        offs = mfree(offs);
        }
        {
                json_object_object_foreach(put, k, v) {
                        if (offs && streq(k, "binding"))
                                r = records_set_json(f, k, v);  /* read without the journal (compact_fill) */
                        else if (offs)
                                r = records_set_ref(f, k, json_off + offs[i], strlen(json_plain(v)));
                        else
                                r = records_set_json(f, k, v);
                        if (r < 0)
                                return r;
                        i++;
                }
        }
        return 0;
}

/* Parses "SEQ LEN SUM JSON" (line without its newline). */
static int parse_line(const char *line, size_t n, uint64_t *ret_seq, json_object **ret, size_t *ret_json) {
        char sum[65], head[64];
        unsigned long long seq, len;
        int consumed = 0;
        json_tokener *tok;
        json_object *o;
        size_t hl = n < sizeof(head) - 1 ? n : sizeof(head) - 1;

        memcpy(head, line, hl);
        head[hl] = 0;
        if (sscanf(head, "%llu %llu %16[0-9a-f] %n", &seq, &len, sum, &consumed) != 3 || consumed == 0 ||
            strlen(sum) != SUM_LEN || (size_t) consumed + len != n)
                return -EBADMSG;
        {
                char full[65];

                sha256_hex(line + consumed, (size_t) len, full);
                if (memcmp(full, sum, SUM_LEN) != 0)
                        return -EBADMSG;
        }
        tok = json_tokener_new_ex(MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, line + consumed, (int) len);
        if (!o || json_tokener_get_error(tok) != json_tokener_success ||
            json_tokener_get_parse_end(tok) != (size_t) len) {
                json_tokener_free(tok);
                json_object_put(o);
                return -EBADMSG;
        }
        json_tokener_free(tok);
        *ret_seq = seq;
        *ret = o;
        *ret_json = (size_t) consumed;
        return 0;
}

/* Reads the journal (before the snapshot: a compaction between the two
 * reads then only makes the snapshot hold more, whose lines are
 * skipped; the other order could miss the batches it folded in). */
static int read_journal(FileStore *f, char **ret, size_t *ret_size, char **reterr) {
        int r = read_full_file(f->journal_path, STORE_FILE_MAX_SIZE, ret, ret_size);

        if (r == -ENOENT) {
                *ret = NULL;
                *ret_size = 0;
                return 0;
        }
        if (r == -EFBIG)
                return set_error(reterr, "%s: larger than %u bytes, refusing to load", f->journal_path,
                                 STORE_FILE_MAX_SIZE), r;
        if (r < 0)
                return set_error(reterr, "%s: cannot read: %s", f->journal_path, strerror(-r)), r;
        return 0;
}

static int load_journal(FileStore *f, const char *data, size_t size, char **reterr) {
        size_t pos = 0;
        unsigned line = 0;
        int r;

        while (pos < size) {
                const char *nl = memchr(data + pos, '\n', size - pos);
                _cleanup_(json_object_putp) json_object *b = NULL;
                size_t end = nl ? (size_t) (nl - data) : size;
                bool last = !nl || end + 1 == size;
                uint64_t seq = 0;
                size_t json = 0;
                char what[32];

                line++;
                r = nl ? parse_line(data + pos, end - pos, &seq, &b, &json) : -EBADMSG;
                if (r == -ENOMEM)
                        return r;
                if (r < 0 && last)
                        break;          /* torn by a crash mid-append: never committed */
                if (r < 0)
                        return set_error(reterr, "%s:%u: corrupt journal line (length or checksum do not match); "
                                         "refusing to load", f->journal_path, line), -EBADMSG;
                if (seq > f->seq) {
                        if (seq != f->seq + 1)
                                return set_error(reterr, "%s:%u: batch %" PRIu64 " follows %" PRIu64
                                                 "; refusing to load", f->journal_path, line, seq, f->seq), -EBADMSG;
                        snprintf(what, sizeof what, "line %u", line);
                        {
                                _cleanup_free_ char *err = NULL;

                                r = apply_batch(f, b, data + pos + json, end - pos - json, pos + json, what, &err);
                                if (r < 0)
                                        return set_error(reterr, "%s:%s", f->journal_path, strna(err)), r;
                        }
                        f->seq = seq;
                }
                /* Batches the snapshot already holds (a crash between
                 * writing it and emptying the journal) are skipped. */
                pos = end + 1;
        }
        f->journal_size = pos > size ? size : pos;
        if (f->journal_size < size && f->writable && truncate(f->journal_path, (off_t) f->journal_size) < 0) {
                r = -errno;
                return set_error(reterr, "%s: cannot cut off the torn last line: %s", f->journal_path, strerror(-r)), r;
        }
        return 0;
}

static int key_cmp(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The record keys, sorted (borrowed from the table). */
static const char **sorted_keys(FileStore *f, size_t *ret_n) {
        size_t n = 0, cap = (size_t) lh_table_length(f->records);
        const char **keys = calloc(cap + 1, sizeof(char *));
        struct lh_entry *ent;

        if (!keys)
                return NULL;
        lh_foreach(f->records, ent)
                keys[n++] = lh_entry_k(ent);
        qsort(keys, n, sizeof(char *), key_cmp);
        *ret_n = n;
        return keys;
}

/* Emits the delta's keys below key (all when NULL); a deleted key is
 * skipped. */
/* Hands one record of the delta to fn, its text read back from the
 * journal if that is where it is. */
static int emit_delta(SnapWalk *w, const char *key, const Rec *v) {
        _cleanup_free_ char *buf = NULL;
        const char *t = NULL;
        int r;

        if (v == TOMBSTONE)
                return 0;
        r = rec_read(w->f, v, &buf, &t);
        if (r < 0)
                return w->read_error = r;
        return w->fn(key, t, w->userdata);
}

static int merge_delta_below(SnapWalk *w, const char *key) {
        for (; w->next < w->n_keys && (!key || strcmp(w->keys[w->next], key) < 0); w->next++) {
                int r = emit_delta(w, w->keys[w->next], lh_entry_v(lh_table_lookup_entry(w->f->records, w->keys[w->next])));

                if (r < 0)
                        return r;
        }
        return 0;
}

/* One record of state.json: what the delta says of its key if it says
 * anything, else its text as the file holds it. */
static int walk_merge(SnapWalk *w, const char *key, json_object *v, bool binding) {
        const char *t;
        int r;

        if (binding)
                return 0;       /* the binding is always in records */
        r = merge_delta_below(w, key);
        if (r < 0)
                return r;
        if (w->next < w->n_keys && streq(w->keys[w->next], key)) {
                const Rec *d = lh_entry_v(lh_table_lookup_entry(w->f->records, w->keys[w->next++]));

                return emit_delta(w, key, d);
        }
        t = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        return t ? w->fn(key, t, w->userdata) : -ENOMEM;
}

/* Every record (the binding among them) in key order to fn: in delta
 * mode state.json's records merged with the delta, read back from the
 * file one record at a time. */
static int records_foreach(FileStore *f, store_record_fn fn, void *userdata, char **reterr) {
        _cleanup_free_ const char **keys = NULL;
        SnapWalk w = { .f = f, .record = walk_merge, .fn = fn, .userdata = userdata };
        int r;

        keys = sorted_keys(f, &w.n_keys);
        if (!keys)
                return -ENOMEM;
        w.keys = keys;
        if (f->delta && f->snap_on_disk) {
                _cleanup_close_ int own = -EBADF;
                int fd = f->snap_fd;
                Src src;

                if (fd < 0) {
                        own = open(f->snap_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                        if (own < 0)
                                return r = -errno, set_error(reterr, "%s: cannot read back: %s", f->snap_path,
                                                             strerror(-r)), r;
                        fd = own;
                }
                /* Read through a window, one record at a time: the file
                 * is never held whole (at 10,000 workers it is 10 MB). */
                r = src_init_fd(&src, fd);
                if (r < 0)
                        return r;
                r = walk_snapshot(&w, &src);
                src_done(&src);
                if (r < 0 && r == src.error)
                        return set_error(reterr, "%s: cannot read back: %s", f->snap_path, strerror(-r)), r;
                if (r < 0 && r == w.read_error)
                        return set_error(reterr, "%s: cannot read a record back: %s", f->journal_path,
                                         strerror(-r)), r;
                if (r < 0)
                        return r;
                if (r == 0 || !w.sorted)
                        return set_error(reterr, "%s: changed since it was loaded", f->snap_path), -EBADMSG;
        }
        r = merge_delta_below(&w, NULL);
        if (r < 0 && r == w.read_error)
                return set_error(reterr, "%s: cannot read a record back: %s", f->journal_path, strerror(-r)), r;
        return r;
}

static json_object *parse_record(const char *text) {
        return json_tokener_parse(text);
}

/* Appends "key": text for one record: the record's text as committed,
 * checked to be one JSON value (never a tree of all records: that held
 * several times the snapshot's size at once), the key escaped by json-c. */
static int put_record(FILE *out, const char *key, const char *text, bool first) {
        _cleanup_(json_object_putp) json_object *k = json_object_new_string(key);
        json_object *o = text ? parse_record(text) : NULL;
        const char *ks = k ? json_object_to_json_string_ext(k, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;

        if (!o || !ks) {
                json_object_put(o);
                return -ENOMEM;
        }
        json_object_put(o);
        fprintf(out, "%s\n    %s: %s", first ? "" : ",", ks, text);
        return 0;
}

typedef struct CompactCtx {
        FileStore *f;
        FILE *out;
        bool first;
        char **reterr;
} CompactCtx;

static int compact_one(const char *key, const char *text, void *userdata) {
        CompactCtx *c = userdata;
        int r;

        if (streq(key, "binding"))
                return 0;       /* written before the records */
        r = put_record(c->out, key, text, c->first);
        c->first = false;
        return r;
}

/* The snapshot's text, straight into the temporary file. */
static int compact_fill(FILE *out, void *userdata) {
        CompactCtx *c = userdata;
        struct lh_entry *bent = lh_table_lookup_entry(c->f->records, "binding");
        int r;

        c->out = out;
        fprintf(out, "{\n  \"version\": %d,\n", FORMAT_VERSION);
        if (bent && lh_entry_v(bent) != TOMBSTONE) {
                const char *t = ((const Rec *) lh_entry_v(bent))->text;     /* always kept as text */
                json_object *o = parse_record(t);

                /* Not JSON: null, as the tree this replaced wrote it. */
                fprintf(out, "  \"binding\": %s,\n", o ? t : "null");
                json_object_put(o);
        }
        fputs("  \"records\": {", out);
        r = records_foreach(c->f, compact_one, c, c->reterr);
        if (r < 0)
                return r;
        fprintf(out, "%s},\n  \"journal_seq\": %" PRIu64 "\n}\n", c->first ? "" : "\n  ", c->f->seq);
        return 0;
}

/* After a snapshot holds everything: a writer keeps only the binding
 * (on failure nothing changed). */
static int records_to_delta(FileStore *f) {
        struct lh_entry *bent = lh_table_lookup_entry(f->records, "binding");
        struct lh_table *t = lh_kchar_table_new(1024, record_free);

        if (!t)
                return -ENOMEM;
        if (bent && lh_entry_v(bent) != TOMBSTONE) {
                char *k = strdup("binding");
                Rec *v = rec_text(((const Rec *) lh_entry_v(bent))->text);

                if (!k || !v || lh_table_insert(t, k, v) < 0) {
                        free(k);
                        free(v);
                        lh_table_free(t);
                        return -ENOMEM;
                }
        }
        lh_table_free(f->records);
        f->records = t;
        f->delta = f->snap_on_disk = true;
        return 0;
}

/* Writes every record as the snapshot, then empties the journal. The
 * text goes record by record, one per line under "records", into the
 * temporary file (no buffer of the whole snapshot). */
static int compact(FileStore *f, char **reterr) {
        CompactCtx c = { .f = f, .first = true, .reterr = reterr };
        uint64_t size = 0;
        int r;

        r = write_file_atomic_with(f->snap_path, 0600, compact_fill, &c, &size);
        if (r < 0) {
                if (reterr && !*reterr)
                        (void) set_error(reterr, "%s: cannot write: %s", f->snap_path, strerror(-r));
                return r;
        }
        f->stats.fsyncs += 2;           /* the file and the directory */
        f->stats.compactions++;
        f->snap_size = size;
        f->snap_version = FORMAT_VERSION;
        /* The file holds every record now (in key order): keep only the
         * binding, and read back through this open file from now on
         * (the lock is held: nobody else renames over it meanwhile). */
        if (f->snap_fd >= 0)
                (void) close(f->snap_fd);
        f->snap_fd = open(f->snap_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (records_to_delta(f) < 0)
                /* Out of memory: the records stay as they were, and
                 * those that are only a place in the journal need it,
                 * so it is not emptied (its lines are all in the
                 * snapshot: skipped by a load). */
                return 0;
        /* The snapshot holds every batch (journal_seq): a crash before
         * the journal is emptied only leaves lines that are skipped. */
        if (f->journal_size > 0) {
                if ((f->journal_fd >= 0 ? ftruncate(f->journal_fd, 0) : truncate(f->journal_path, 0)) < 0) {
                        r = -errno;
                        return set_error(reterr, "%s: cannot empty: %s", f->journal_path, strerror(-r)), r;
                }
                f->journal_size = 0;
        }
        return 0;
}

static bool compaction_due(const FileStore *f) {
        uint64_t limit = f->snap_size > STORE_FILE_COMPACT_MIN ? f->snap_size : STORE_FILE_COMPACT_MIN;

        return f->journal_size > limit;
}

/* ---- the ops ---- */

static int file_load(void *impl, store_record_fn fn, void *userdata, char **reterr) {
        return records_foreach(impl, fn, userdata, reterr);
}

static int open_journal(FileStore *f, char **reterr) {
        if (f->journal_fd >= 0)
                return 0;
        f->journal_fd = open(f->journal_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (f->journal_fd < 0) {
                int r = -errno;

                return set_error(reterr, "%s: cannot open: %s", f->journal_path, strerror(-r)), r;
        }
        /* Its directory entry is durable before the first line counts. */
        if (f->dir_fd >= 0 && fsync(f->dir_fd) >= 0)
                f->stats.fsyncs++;
        return 0;
}

/* The batch as one journal line, and as a tree (*ret_batch, caller
 * puts it). */
static int format_line(FileStore *f, const StoreChange *changes, size_t n, char **ret, size_t *ret_size,
                       json_object **ret_batch) {
        _cleanup_(json_object_putp) json_object *b = json_object_new_object();
        json_object *put = json_object_new_object(), *del = json_object_new_array();
        const char *text;
        char sum[65];
        size_t len;

        if (!b || !put || !del || json_object_object_add(b, "put", put) < 0) {
                json_object_put(put);
                json_object_put(del);
                return -ENOMEM;
        }
        if (json_object_object_add(b, "del", del) < 0) {
                json_object_put(del);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                if (!changes[i].value) {
                        if (json_object_array_add(del, json_object_new_string(changes[i].key)) < 0)
                                return -ENOMEM;
                        continue;
                }
                {
                        json_object *o = parse_record(changes[i].value);

                        if (!o || !json_object_is_type(o, json_type_object)) {
                                json_object_put(o);
                                return -EINVAL;         /* not a JSON object: never in the journal */
                        }
                        if (json_object_object_add(put, changes[i].key, o) < 0) {
                                json_object_put(o);
                                return -ENOMEM;
                        }
                }
        }
        text = json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        sha256_hex(text, len, sum);
        if (asprintf(ret, "%" PRIu64 " %zu %.16s %s\n", f->seq + 1, len, sum, text) < 0)
                return -ENOMEM;
        *ret_size = strlen(*ret);
        *ret_batch = TAKE_PTR(b);
        return 0;
}

static int file_commit(void *impl, const StoreChange *changes, size_t n, char **reterr) {
        FileStore *f = impl;
        _cleanup_(json_object_putp) json_object *b = NULL;
        _cleanup_free_ char *line = NULL, *err = NULL;
        size_t size = 0, done = 0, json_len;
        off_t end;
        int r;

        if (!f->writable)
                return -EROFS;
        if (f->broken)
                return set_error(reterr, "%s: an earlier append could not be undone; restart binderyd",
                                 f->journal_path), -EIO;
        r = format_line(f, changes, n, &line, &size, &b);
        if (r < 0)
                return r;
        json_len = strlen(json_plain(b));       /* the line ends with the batch's text and "\n" */
        r = open_journal(f, reterr);
        if (r < 0)
                return r;
        while (done < size) {
                ssize_t k = write(f->journal_fd, line + done, size - done);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        goto undo;
                }
                done += (size_t) k;
        }
        if (fdatasync(f->journal_fd) < 0) {
                r = -errno;
                goto undo;
        }
        f->stats.fsyncs++;
        /* Where the line landed (O_APPEND: the end of the file now, less
         * the line), so that records keep where their text is, not the
         * text; unknown: the texts are kept. */
        end = lseek(f->journal_fd, 0, SEEK_CUR);
        r = end == (off_t) (f->journal_size + size) ?
                apply_batch(f, b, line + size - 1 - json_len, json_len, (uint64_t) end - 1 - json_len, "commit", &err) :
                apply_batch(f, b, NULL, 0, 0, "commit", &err);
        if (r < 0) {
                /* Durable but not in memory: only a reload can tell what
                 * is true now. */
                f->broken = true;
                return set_error(reterr, "%s: out of memory after an append", f->journal_path), r;
        }
        f->seq++;
        f->journal_size += size;
        f->stats.commits++;
        f->stats.bytes_appended += size;
        if (compaction_due(f)) {
                err = mfree(err);
                (void) compact(f, &err);        /* the commit stands; compaction is tried again later */
        }
        return 0;
undo:
        /* Leave no partial line behind the last whole one: a later
         * append after it would make it a corrupt middle line. */
        if (ftruncate(f->journal_fd, (off_t) f->journal_size) < 0)
                f->broken = true;
        return set_error(reterr, "%s: cannot append: %s", f->journal_path, strerror(-r)), r;
}

static int file_hmac_key(void *impl, uint8_t ret[static STORE_HMAC_KEY_SIZE], char **reterr) {
        FileStore *f = impl;
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r;

        if (f->have_key) {
                memcpy(ret, f->key, STORE_HMAC_KEY_SIZE);
                return 0;
        }
        r = read_full_file(f->key_path, 1024, &data, &size);
        if (r == 0) {
                if (size != STORE_HMAC_KEY_SIZE) {
                        explicit_bzero(data, size);
                        return set_error(reterr, "%s: %zu bytes, expected %u; move it away and bindery makes a new "
                                         "key (every secret is then uploaded again)", f->key_path, size,
                                         STORE_HMAC_KEY_SIZE), -EBADMSG;
                }
                memcpy(f->key, data, STORE_HMAC_KEY_SIZE);
                explicit_bzero(data, size);
        } else if (r != -ENOENT)
                return set_error(reterr, "%s: cannot read: %s", f->key_path, strerror(-r)), r;
        else if (!f->writable)
                return -ENOKEY;
        else {
                if (getrandom(f->key, STORE_HMAC_KEY_SIZE, 0) != STORE_HMAC_KEY_SIZE)
                        return errno > 0 ? -errno : -EIO;
                r = write_file_atomic(f->key_path, f->key, STORE_HMAC_KEY_SIZE, 0600);
                if (r < 0) {
                        explicit_bzero(f->key, sizeof f->key);
                        return set_error(reterr, "%s: cannot write: %s", f->key_path, strerror(-r)), r;
                }
                f->stats.fsyncs += 2;
        }
        f->have_key = true;
        memcpy(ret, f->key, STORE_HMAC_KEY_SIZE);
        return 0;
}

static const char *file_describe(void *impl) {
        return ((FileStore *) impl)->dir;
}

static void file_free(void *impl) {
        FileStore *f = impl;

        if (!f)
                return;
        /* Leave state.json complete for whoever reads it next. */
        if (f->writable && !f->broken && f->journal_size > 0)
                (void) compact(f, NULL);
        explicit_bzero(f->key, sizeof f->key);
        if (f->journal_fd >= 0)
                (void) close(f->journal_fd);
        if (f->snap_fd >= 0)
                (void) close(f->snap_fd);
        if (f->lock_fd >= 0)
                (void) close(f->lock_fd);       /* releases the flock */
        if (f->dir_fd >= 0)
                (void) close(f->dir_fd);
        if (f->records)
                lh_table_free(f->records);
        free(f->dir);
        free(f->snap_path);
        free(f->journal_path);
        free(f->key_path);
        free(f);
}

static const StoreOps file_ops = {
        .name = "file",
        .load = file_load,
        .commit = file_commit,
        .hmac_key = file_hmac_key,
        .describe = file_describe,
        .free = file_free,
};

/* ---- open ---- */

/* Removes what a kill -9 mid-write left: "state.json.tmp.PID" and
 * "hmac.key.tmp.PID" (write_file_atomic's temporaries). Only with the
 * lock held: no one else is writing them. */
static void remove_stale_temporaries(int dir_fd) {
        _cleanup_close_ int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        DIR *d;

        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d)
                return;
        fd = -EBADF;    /* owned by d now */
        for (struct dirent *de; (de = readdir(d));)
                if ((startswith(de->d_name, SNAPSHOT_FILE ".tmp.") || startswith(de->d_name, KEY_FILE ".tmp.")) &&
                    (de->d_type == DT_REG || de->d_type == DT_UNKNOWN))
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
}

static int take_lock(FileStore *f, const char *dir, char **reterr) {
        _cleanup_free_ char *lock_path = path_join(dir, LOCK_FILE);
        int r;

        if (!lock_path)
                return -ENOMEM;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return r = -errno, set_error(reterr, "%s: cannot create state directory: %s", dir, strerror(-r)), r;
        f->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (f->lock_fd < 0)
                return r = -errno, set_error(reterr, "%s: cannot open: %s", lock_path, strerror(-r)), r;
        if (flock(f->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                return set_error(reterr, "%s: %s", lock_path, r == -EBUSY ? "held by another process" : strerror(-r)), r;
        }
        /* The directory itself too: a "lock" file can be deleted under a
         * running daemon (and a new one created and locked by a second),
         * the directory cannot while it holds state. */
        f->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);  /* may be a symlink (StateDirectory= with DynamicUser=) */
        if (f->dir_fd < 0)
                return r = -errno, set_error(reterr, "%s: cannot open: %s", dir, strerror(-r)), r;
        if (flock(f->dir_fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                return set_error(reterr, "%s: %s", dir, r == -EBUSY ? "locked by another process" : strerror(-r)), r;
        }
        remove_stale_temporaries(f->dir_fd);
        return 0;
}

int store_file_open(const char *dir, bool lock, Store **ret, char **reterr) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_free_ char *journal = NULL;
        size_t journal_size = 0;
        FileStore *f;
        int r;

        if (reterr)
                *reterr = NULL;
        if (isempty(dir) || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(Store));
        f = calloc(1, sizeof(FileStore));
        if (!s || !f) {
                free(f);
                return -ENOMEM;
        }
        s->ops = &file_ops;
        s->impl = f;
        f->lock_fd = f->dir_fd = f->journal_fd = f->snap_fd = -EBADF;
        f->dir = strdup(dir);
        f->snap_path = path_join(dir, SNAPSHOT_FILE);
        f->journal_path = path_join(dir, JOURNAL_FILE);
        f->key_path = path_join(dir, KEY_FILE);
        f->records = lh_kchar_table_new(1024, record_free);
        if (!f->dir || !f->snap_path || !f->journal_path || !f->key_path || !f->records)
                return -ENOMEM;
        if (lock) {
                r = take_lock(f, dir, reterr);
                if (r < 0)
                        return r;
                f->writable = true;
        }
        r = read_journal(f, &journal, &journal_size, reterr);
        if (r < 0)
                return r;
        r = load_snapshot(f, reterr);
        if (r < 0)
                return r;
        if (f->writable && f->snap_version == 0)
                f->delta = true;        /* no state.json: the journal is everything */
        r = load_journal(f, journal, journal_size, reterr);
        if (r < 0)
                return r;
        /* A version 1 snapshot is rewritten as version 2 at once, and a
         * long journal folded in. */
        if (f->writable && ((f->snap_version == 1) || compaction_due(f))) {
                r = compact(f, reterr);
                if (r < 0)
                        return r;
        }
        s->writable = f->writable;
        *ret = TAKE_PTR(s);
        return 0;
}

int store_file_stats(const Store *s, StoreFileStats *ret) {
        const FileStore *f;
        struct lh_entry *ent;

        if (!s || s->ops != &file_ops || !ret)
                return -EINVAL;
        f = s->impl;
        *ret = f->stats;
        ret->texts_resident = 0;
        lh_foreach(f->records, ent) {
                const Rec *v = lh_entry_v(ent);

                if (v != TOMBSTONE && v->text_len == 0)
                        ret->texts_resident += strlen(v->text);
        }
        return 0;
}
