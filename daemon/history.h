/* history.h: the run history on disk. One JSON record per finished run,
 * appended as a line to STATE_DIR/runs.jsonl; when that file would pass
 * half the byte cap it becomes runs.jsonl.1 (replacing the one before)
 * and a new one starts, so the history never takes more than the cap.
 * The daemon keeps only each run's summary in memory, with a HistoryRef
 * to read the whole record (report, text) back for GET /v1/runs/ID: what
 * it holds does not grow with the reports.
 *
 * History is not state: nothing is fsynced, a line that does not parse
 * (torn by a crash) is skipped. A runs.json of an older version (one JSON
 * array, rewritten whole after every run) is moved into the new file by
 * history_load() and removed. */
#pragma once

#include <stdint.h>

#include <json-c/json.h>

#include "cleanup.h"

#define HISTORY_FILE "runs.jsonl"          /* in the state directory */
#define HISTORY_FILE_OLD "runs.jsonl.1"    /* the previous segment */
#define HISTORY_LEGACY_FILE "runs.json"    /* before: one array */
#define HISTORY_DEFAULT_MAX (32U * 1024 * 1024)

/* Where a record lies: segment (numbered from 1 at open, +1 per
 * rotation), byte offset, length without the newline (0: no record). */
typedef struct HistoryRef {
        uint64_t seg;
        uint64_t offset;
        uint32_t size;
} HistoryRef;

typedef struct History History;

/* Called for every record, oldest first; the record is borrowed. */
typedef void (*history_each_t)(json_object *record, const HistoryRef *ref, void *userdata);

/* Opens (creates 0600) the history in dir, at most max_bytes on disk
 * (0: HISTORY_DEFAULT_MAX). Returns 0 or a negative errno. */
int history_open(History **ret, const char *dir, uint64_t max_bytes);
History *history_free(History *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(History *, history_free);

/* Reads every record (the older segment first), streaming: one line in
 * memory at a time. Moves a legacy runs.json in first. Returns the number
 * of records or a negative errno. */
int history_load(History *h, history_each_t each, void *userdata);

/* Appends record as one line, rotating first when the segment would pass
 * half the cap. -EFBIG when one record alone is over half the cap.
 * ret (may be NULL) tells where it lies. */
int history_append(History *h, json_object *record, HistoryRef *ret);

/* Reads the record at ref back (-ENOENT: rotated away or none). */
int history_read(History *h, const HistoryRef *ref, json_object **ret);

/* Bytes on disk now (both segments), for the tests. */
uint64_t history_bytes(const History *h);
