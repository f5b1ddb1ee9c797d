/* store-file.h: the ledger's records in the state directory (store.h's
 * file backend, the default).
 *
 *   STATE_DIR/state.json     the snapshot: {"version": 2, "binding": {...},
 *                            "records": {KEY: {...}, ...}, "journal_seq": N},
 *                            pretty-printed, mode 0600, written atomically
 *                            (temp file, fsync, rename, fsync dir)
 *   STATE_DIR/state.journal  append-only, mode 0600: one line per committed
 *                            batch, fdatasync()ed once per batch:
 *                              SEQ LEN SUM {"put": {KEY: {...}}, "del": [KEY]}
 *                            SEQ counts batches (the snapshot's journal_seq
 *                            is the last one it holds), LEN is the JSON's
 *                            length in bytes and SUM the first 16 hex digits
 *                            of its SHA-256. A last line that is short or
 *                            does not match (a crash mid-append) is
 *                            discarded (and cut off when writable); a bad
 *                            line before the last is an error naming the
 *                            file and line.
 *   STATE_DIR/lock           flock()ed by the writer (and the directory
 *                            itself, so deleting "lock" frees nothing)
 *   STATE_DIR/hmac.key       32 random bytes, mode 0600 (getrandom() on
 *                            first use when writable)
 *
 * A commit costs one append and one fdatasync, whatever the number of
 * records held. The snapshot is rewritten (compaction) when the journal
 * grows past max(1 MiB, the snapshot's size) — checked at open and after
 * each commit — when a version 1 snapshot is opened for writing, and
 * when a writable store with a non-empty journal is closed, so
 * state.json is complete whenever no binderyd holds the directory.
 *
 * Version 1 snapshots ("resources", "intents", "secrets", "meta" and the
 * engine's ledger fields as JSON strings in meta "engine.x.KIND.NAME")
 * are lifted into version 2 records when loaded.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

#define STORE_FILE_MAX_SIZE (64U * 1024U * 1024U)        /* state.json or state.journal larger: refused */
#define STORE_FILE_COMPACT_MIN (1024U * 1024U)

/* Opens dir. With lock: creates dir (0700) if missing, takes a
 * non-blocking flock on dir/lock and on dir itself (-EBUSY if another
 * process holds either), removes the temporaries a kill left
 * (state.json.tmp.PID, hmac.key.tmp.PID) and a torn last journal line.
 * Without: reads only (a missing dir or file is an empty store; commit
 * is -EROFS). Loads state.json and replays state.journal: too large →
 * -EFBIG, unreadable → its errno, bad JSON, shape or journal line →
 * -EBADMSG, a newer format → -EPROTONOSUPPORT; reterr names the file
 * (and line). */
int store_file_open(const char *dir, bool lock, Store **ret, char **reterr);

typedef struct StoreFileStats {
        uint64_t commits;           /* batches appended */
        uint64_t bytes_appended;    /* to state.journal */
        uint64_t fsyncs;            /* fdatasync/fsync calls, snapshots' included */
        uint64_t compactions;       /* snapshots written */
        uint64_t texts_resident;    /* bytes of record texts held in memory now (a writer: the
                                     * binding's; a record committed or read from the journal
                                     * is kept as its place in state.journal) */
} StoreFileStats;

/* Counters since open (for tests and benchmarks). -EINVAL if s is not a
 * file store. */
int store_file_stats(const Store *s, StoreFileStats *ret);
