/* budget.h: the request budget and retry backoff arithmetic of the
 * Cloudflare client. The core is pure: no clock, no randomness — the
 * caller passes the time (CLOCK_MONOTONIC µs) and random numbers in, so
 * the tests drive it with an injected clock. The one piece of I/O is the
 * shared record file (budget_share_*), kept apart below.
 *
 * The budget is a sliding window: every attempt (retries included) leaves
 * a record of its start time, and a request may start only while fewer
 * than `capacity` records are younger than `window`. So no window of that
 * length, wherever it lies, ever sees more than `capacity` starts (a token
 * bucket that starts full lets one window see twice its capacity).
 *
 * Shared: with a record file (the state directory's "request-budget"),
 * every process on that state directory (the daemon, CLI apply and plan)
 * keeps its records in the one file, under flock. To take one lock per
 * batch rather than per request, a process reserves a few slots at once
 * (budget_share_sync), each recorded at the end of a short lease; a slot
 * must be used before its lease ends, and unused slots are handed back at
 * the next sync. A record written at w and dated w + lease covers any
 * start in [w, w + lease), so the count stays an upper bound.
 *
 * The server's view (the `Ratelimit: r=<remaining>;t=<secs>` header) is
 * mirrored on top: no request is started while the server says 0 remain
 * until its window resets, and when the server's remaining count is low
 * (under a tenth of capacity) requests are paced evenly over the time
 * left. A 429 holds everything until its Retry-After has passed.
 *
 * Low-priority requests may not take the last `reserve` slots (a fifth of
 * capacity by default), so a plan can never starve the reconcile.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* budget_take()'s answer when a shared budget must sync first. */
#define BUDGET_NEED_SYNC UINT64_MAX
/* How long reserved slots of a shared budget stay usable. */
#define BUDGET_SHARE_LEASE_USEC (1000ULL * 1000ULL)
/* Records read from a shared file at most (a budget's largest capacity
 * is 100,000). */
#define BUDGET_SHARE_MAX_RECORDS 200000U

typedef struct Budget {
        unsigned capacity;          /* starts per window */
        unsigned reserve;           /* slots low-priority requests may not take */
        uint64_t window_usec;
        /* start records, ascending, alive in log[head..n_log) */
        uint64_t *log;
        size_t head, n_log, n_alloc;
        /* shared: the record file, the slots reserved and their lease */
        int share_fd;               /* -1: not shared */
        unsigned granted;
        uint64_t grant_until_usec;
        uint64_t synced_usec;       /* the last sync's time (0: none) */
        uint64_t hold_until_usec;   /* nothing starts before this (429, server r=0) */
        /* the server's view, valid while server_valid and now < server_reset_usec */
        bool server_valid;
        uint64_t server_remaining;
        uint64_t server_reset_usec;
        uint64_t last_start_usec;   /* for pacing */
        uint64_t n_taken;           /* requests started (tests count the window with it) */
        uint64_t n_waits;           /* budget_take calls that had to wait */
        uint64_t n_syncs;           /* locked syncs of a shared file */
} Budget;

/* capacity 0 means 1000; window 0 means 5 min. now: the current time.
 * Returns 0 or -ENOMEM. budget_done() frees (and closes a shared file). */
int budget_init(Budget *b, unsigned capacity, uint64_t window_usec, uint64_t now_usec);
void budget_done(Budget *b);

/* Changes capacity and window; the records stay. 0 or -ENOMEM. */
int budget_resize(Budget *b, unsigned capacity, uint64_t window_usec, uint64_t now_usec);

/* Tries to take one slot at now. Returns 0 when taken; otherwise the
 * number of µs (>= 1) after which trying again may succeed, and takes
 * nothing; or, for a shared budget without slots left, BUDGET_NEED_SYNC:
 * call budget_share_sync() and try again. low_priority applies the
 * reserve. */
uint64_t budget_take(Budget *b, uint64_t now_usec, bool low_priority);

/* Slots available at now, before the server clamp (a shared budget: as
 * of the last sync, plus the slots reserved). */
unsigned budget_available(Budget *b, uint64_t now_usec);

/* Feeds the server's `Ratelimit` header: remaining requests and seconds
 * until its window resets, as seen at now. */
void budget_observe_server(Budget *b, uint64_t remaining, uint64_t reset_sec, uint64_t now_usec);

/* Holds every request until now + delay (a 429's Retry-After). Extends,
 * never shortens, an existing hold. */
void budget_hold(Budget *b, uint64_t delay_usec, uint64_t now_usec);

/* Shares the budget through the record file at path (created 0600).
 * Returns 0 or a negative errno (the budget stays local). */
int budget_share_open(Budget *b, const char *path);

/* Under the file's lock: reads every process's records, hands back this
 * process's unused slots, reserves up to want (at least 1) new ones that
 * fit, writes the records back. The time is read from clock once the
 * lock is held (and kept in synced_usec, the `now` to pass to
 * budget_take() next): a time read before could be older than records
 * another process wrote meanwhile, which would then look dated in the
 * future (another boot's clock) and be dropped from the file — one
 * window would see more than the budget. Returns the slots reserved (0:
 * none fit; budget_take() then says how long to wait) or a negative
 * errno, after which the budget is local again. */
int budget_share_sync(Budget *b, uint64_t (*clock)(void), unsigned want, bool low_priority);

/* Exponential backoff with full jitter: a delay uniformly drawn from
 * [0, min(max, base * 2^attempt)] using random (any 64-bit random
 * number). attempt counts from 0 (the first retry). */
uint64_t backoff_delay(unsigned attempt, uint64_t base_usec, uint64_t max_usec, uint64_t random);
