/* cmd-state-ha.c: binderyd state import | export (issue 11) — a
 * single-host ledger (the state directory, store-file.h) moved into etcd
 * (ha.prefix, store-etcd.h) and back, with the HMAC key of secret
 * fingerprints, so the other side converges without writing anything.
 *
 * import takes leadership for itself (ha_oneshot_acquire: refused while a
 * binderyd leads) and holds the state directory's lock (refused while a
 * single-host binderyd runs), so nothing else writes either side; it
 * commits in batches of at most 128 records, each fenced by its leader
 * key. A record already in etcd with the same value is skipped; one with
 * another value, or another HMAC key in etcd, stops the import before
 * anything is written. An import cut short is finished by running it
 * again.
 *
 * forget (binderyd state forget KIND/NAME with ha:) takes leadership the
 * same way and commits the removal from the ledger in etcd fenced by it:
 * refused while a binderyd leads, as without ha: it needs the daemon
 * stopped (its state lock). The state directory is not touched.
 *
 * export reads one consistent snapshot of etcd (a paged range at one
 * revision) into the state directory, which must be empty of other
 * records and hold no other HMAC key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd-config.h"
#include "commands.h"
#include "config.h"
#include "etcd.h"
#include "ha.h"
#include "ledger.h"
#include "log.h"
#include "manager-ha.h"
#include "store-etcd.h"
#include "store-file.h"
#include "util.h"

#define IMPORT_LEASE_SEC 60
#define IMPORT_CAMPAIGN_USEC (5 * USEC_PER_SEC)

/* Every record of a store, in key order. */
typedef struct Records {
        char **keys;
        char **values;
        size_t n, allocated;
} Records;

static void records_done(Records *r) {
        for (size_t i = 0; i < r->n; i++) {
                free(r->keys[i]);
                free(r->values[i]);
        }
        free(r->keys);
        free(r->values);
        *r = (Records) {};
}

static int records_add(const char *key, const char *value, void *userdata) {
        Records *r = userdata;

        if (r->n == r->allocated) {
                size_t n = r->allocated ? 2 * r->allocated : 256;
                char **k = realloc(r->keys, n * sizeof(char *)), **v;

                if (!k)
                        return -ENOMEM;
                r->keys = k;
                v = realloc(r->values, n * sizeof(char *));
                if (!v)
                        return -ENOMEM;
                r->values = v;
                r->allocated = n;
        }
        r->keys[r->n] = strdup(key);
        r->values[r->n] = strdup(value);
        if (!r->keys[r->n] || !r->values[r->n]) {
                free(r->keys[r->n]);
                free(r->values[r->n]);
                return -ENOMEM;
        }
        r->n++;
        return 0;
}

/* The value of key in r, or NULL (r is in key order). */
static const char *records_find(const Records *r, const char *key) {
        size_t lo = 0, hi = r->n;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = strcmp(r->keys[mid], key);

                if (c == 0)
                        return r->values[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* Copies what from has and to lacks, in batches (after refresh, when
 * given); a record to holds with another value stops it first. Returns
 * the number copied. */
static int records_copy(const Records *from, const Records *to, Store *dest, HAOneShot *hold,
                        const char *from_name, const char *to_name) {
        StoreChange batch[ETCD_MAX_TXN_OPS];
        size_t n = 0;
        int copied = 0, r;

        for (size_t i = 0; i < to->n; i++) {
                const char *v = records_find(from, to->keys[i]);

                if (!v || !streq(v, to->values[i])) {
                        log_error("%s already holds '%s', %s; refusing to mix two ledgers (nothing was written).",
                                  to_name, to->keys[i], v ? "with another value" : "which is not in the source");
                        return -EEXIST;
                }
        }
        for (size_t i = 0; i <= from->n; i++) {
                if (i < from->n) {
                        if (records_find(to, from->keys[i]))
                                continue;
                        batch[n++] = (StoreChange) { .key = from->keys[i], .value = from->values[i] };
                        if (n < ELEMENTSOF(batch))
                                continue;
                }
                if (n == 0)
                        break;
                if (hold) {
                        r = ha_oneshot_refresh(hold);
                        if (r < 0)
                                return log_error_errno(r, "Lost the etcd lease held for the import after %d "
                                                       "records; run it again: %m", copied);
                }
                {
                        _cleanup_free_ char *msg = NULL;

                        r = store_commit(dest, batch, n, &msg);
                        if (r < 0)
                                return log_error_errno(r, "Cannot write to %s after %d records (run it again): %s",
                                                       to_name, copied, msg ?: strerror(-r));
                }
                copied += (int) n;
                n = 0;
        }
        (void) from_name;
        return copied;
}

static int open_file_store(const Config *cfg, Store **ret) {
        _cleanup_free_ char *msg = NULL;
        int r;

        r = store_file_open(cfg->state_dir, true, ret, &msg);
        if (r == -EBUSY)
                return log_error_errno(r, "The state directory '%s' is locked: stop the binderyd that uses it "
                                       "first.", cfg->state_dir);
        if (r < 0)
                return log_error_errno(r, "Cannot open the state in '%s': %s", cfg->state_dir, msg ?: strerror(-r));
        return 0;
}

/* The etcd client of cfg and leadership for a tool (verb: "import",
 * "forget"): refused while a host leads. Logs errors. */
static int take_leadership(const Config *cfg, const char *verb, Etcd **ret_etcd, HAOneShot *hold) {
        _cleanup_free_ char *election = NULL, *msg = NULL, *who = NULL;
        int r;

        if (manager_ha_etcd_new(cfg, NULL, NULL, ret_etcd) < 0)
                return -EIO;
        election = store_etcd_election_name(cfg->ha->prefix);
        if (!election || asprintf(&who, "binderyd state %s (%s)", verb, cfg->ha->name) < 0)
                return log_error_errno(ENOMEM, "Out of memory.");
        r = ha_oneshot_acquire(*ret_etcd, election, who, IMPORT_LEASE_SEC, IMPORT_CAMPAIGN_USEC, hold, &msg);
        if (r == -EBUSY)
                log_error("state %s: %s; stop every binderyd of this account first.", verb, strna(msg));
        else if (r < 0)
                log_error_errno(r, "state %s: cannot take leadership in etcd: %s", verb, msg ?: strerror(-r));
        return r;
}

static int state_import(const Config *cfg) {
        _cleanup_(store_freep) Store *fs = NULL, *es = NULL;
        _cleanup_(etcd_freep) Etcd *etcd = NULL;
        _cleanup_(records_done) Records from = {}, to = {};
        _cleanup_free_ char *msg = NULL;
        uint8_t key[STORE_HMAC_KEY_SIZE];
        HAOneShot hold = {};
        StoreEtcdOptions eo = { .prefix = cfg->ha->prefix, .fence = ha_oneshot_fence, .fence_userdata = &hold };
        int r, copied;

        if (open_file_store(cfg, &fs) < 0)
                return EXIT_FAILED;
        r = store_load(fs, records_add, &from, &msg);
        if (r < 0)
                return log_error_errno(r, "Cannot read the state in '%s': %s", cfg->state_dir,
                                       msg ?: strerror(-r)), EXIT_FAILED;
        r = store_hmac_key(fs, key, &msg);
        if (r < 0)
                return log_error_errno(r, "Cannot read the HMAC key in '%s': %s", cfg->state_dir,
                                       msg ?: strerror(-r)), EXIT_FAILED;

        if (take_leadership(cfg, "import", &etcd, &hold) < 0)
                goto fail;
        r = store_etcd_new(&es, etcd, &eo);
        if (r >= 0)
                r = store_load(es, records_add, &to, &msg);
        if (r < 0) {
                log_error_errno(r, "state import: cannot read etcd %s: %s", cfg->ha->prefix, msg ?: strerror(-r));
                goto fail;
        }
        r = store_etcd_set_hmac_key(es, key, &msg);
        if (r == -EEXIST) {
                log_error("state import: etcd %s holds another HMAC key: refusing to mix two ledgers (nothing "
                          "was written).", cfg->ha->prefix);
                goto fail;
        }
        if (r < 0) {
                log_error_errno(r, "state import: cannot store the HMAC key in etcd: %s", msg ?: strerror(-r));
                goto fail;
        }
        copied = records_copy(&from, &to, es, &hold, cfg->state_dir, "etcd");
        if (copied < 0)
                goto fail;
        explicit_bzero(key, sizeof key);
        ha_oneshot_release(&hold);
        printf("Imported %d records (%zu already there) from '%s' into etcd %s with the HMAC key.\n"
               "Start binderyd with ha: on each host; '%s' no longer holds the ledger they use.\n",
               copied, from.n - (size_t) copied, cfg->state_dir, cfg->ha->prefix, cfg->state_dir);
        return EXIT_OK;
fail:
        explicit_bzero(key, sizeof key);
        ha_oneshot_release(&hold);
        return EXIT_FAILED;
}

static int state_export(const Config *cfg) {
        _cleanup_(store_freep) Store *fs = NULL, *es = NULL;
        _cleanup_(etcd_freep) Etcd *etcd = NULL;
        _cleanup_(records_done) Records from = {}, to = {};
        _cleanup_free_ char *msg = NULL, *key_path = NULL, *old = NULL;
        StoreEtcdOptions eo = { .prefix = cfg->ha->prefix };
        uint8_t key[STORE_HMAC_KEY_SIZE];
        size_t old_size = 0;
        bool have_key;
        int r, copied;

        if (manager_ha_etcd_new(cfg, NULL, NULL, &etcd) < 0)
                return EXIT_FAILED;
        r = store_etcd_new(&es, etcd, &eo);
        if (r >= 0)
                r = store_load(es, records_add, &from, &msg);
        if (r < 0)
                return log_error_errno(r, "state export: cannot read etcd %s: %s", cfg->ha->prefix,
                                       msg ?: strerror(-r)), EXIT_FAILED;
        r = store_hmac_key(es, key, &msg);
        if (r < 0 && r != -ENOKEY)
                return log_error_errno(r, "state export: cannot read the HMAC key in etcd: %s",
                                       msg ?: strerror(-r)), EXIT_FAILED;
        have_key = r >= 0;

        if (open_file_store(cfg, &fs) < 0)
                goto fail;
        r = store_load(fs, records_add, &to, &msg);
        if (r < 0) {
                log_error_errno(r, "Cannot read the state in '%s': %s", cfg->state_dir, msg ?: strerror(-r));
                goto fail;
        }
        /* The key first (store-file.h: STATE_DIR/hmac.key, read on first
         * use), so the records never meet another one. */
        key_path = path_join(cfg->state_dir, "hmac.key");
        if (!key_path) {
                log_error_errno(ENOMEM, "Out of memory.");
                goto fail;
        }
        if (have_key) {
                r = read_full_file(key_path, 1024, &old, &old_size);
                if (r >= 0 && !memeq_consttime(old, old_size, key, sizeof key)) {
                        log_error("'%s' holds another HMAC key: refusing to mix two ledgers (nothing was "
                                  "written).", key_path);
                        goto fail;
                }
                if (r == -ENOENT)
                        r = write_file_atomic(key_path, key, sizeof key, 0600);
                if (r < 0) {
                        log_error_errno(r, "Cannot write '%s': %m", key_path);
                        goto fail;
                }
        }
        copied = records_copy(&from, &to, fs, NULL, "etcd", cfg->state_dir);
        if (copied < 0)
                goto fail;
        old = erase_and_free(old, old_size);
        explicit_bzero(key, sizeof key);
        printf("Exported %d records (%zu already there) from etcd %s into '%s'%s.\n", copied,
               from.n - (size_t) copied, cfg->ha->prefix, cfg->state_dir, have_key ? " with the HMAC key" : "");
        return EXIT_OK;
fail:
        old = erase_and_free(old, old_size);
        explicit_bzero(key, sizeof key);
        return EXIT_FAILED;
}

int cmd_state_forget_ha(const Config *cfg, ResourceKind kind, const char *name, const char *what) {
        _cleanup_(store_freep) Store *es = NULL;
        _cleanup_(ledger_freep) Ledger *l = NULL;
        _cleanup_(etcd_freep) Etcd *etcd = NULL;
        _cleanup_free_ char *msg = NULL;
        HAOneShot hold = {};
        StoreEtcdOptions eo = { .prefix = cfg->ha->prefix, .fence = ha_oneshot_fence, .fence_userdata = &hold };
        int r;

        if (take_leadership(cfg, "forget", &etcd, &hold) < 0)
                goto fail;
        r = store_etcd_new(&es, etcd, &eo);
        if (r >= 0)
                r = ledger_load(es, &l, &msg);
        if (r < 0) {
                log_error_errno(r, "state forget: cannot read the ledger in etcd %s: %s", cfg->ha->prefix,
                                msg ?: strerror(-r));
                goto fail;
        }
        r = ledger_remove(l, kind, name);
        if (r == -ENOENT) {
                log_error("state forget: bindery does not own %s.", what);
                goto fail;
        }
        if (r < 0) {
                log_error_errno(r, "state forget: %m");
                goto fail;
        }
        /* Fenced by the one-shot leadership: -ESTALE if it was lost. */
        r = ledger_commit(l, es, &msg);
        if (r < 0) {
                log_error_errno(r, "state forget: cannot save the ledger in etcd: %s", msg ?: strerror(-r));
                goto fail;
        }
        ha_oneshot_release(&hold);
        printf("bindery no longer owns %s (ledger in etcd %s); it was not deleted. Remove it from the spec "
               "too, or it is adopted or blocked again.\n", what, cfg->ha->prefix);
        return EXIT_OK;
fail:
        ha_oneshot_release(&hold);
        return EXIT_FAILED;
}

int cmd_state_transfer(const Options *o, bool import) {
        _cleanup_(config_freep) Config *cfg = NULL;

        if (cmd_load_config(o, &cfg) < 0)
                return EXIT_FAILED;
        if (!cfg->ha) {
                log_error("state %s: the configuration has no ha: section (where is etcd?).",
                          import ? "import" : "export");
                return EXIT_USAGE;
        }
        return import ? state_import(cfg) : state_export(cfg);
}
