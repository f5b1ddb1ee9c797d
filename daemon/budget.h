/* budget.h: the request budget and retry backoff arithmetic of the
 * Cloudflare client. Pure: no clock, no randomness, no I/O — the caller
 * passes the time (CLOCK_MONOTONIC µs) and random numbers in, so the
 * tests drive it with an injected clock.
 *
 * The budget is a token bucket: `capacity` tokens, refilled continuously
 * at capacity/window, starting full. Every attempt (retries included)
 * takes one. The server's view (the `Ratelimit: r=<remaining>;t=<secs>`
 * header) is mirrored on top: the bucket never holds more than the server
 * says remain, no request is started while the server says 0 remain until
 * its window resets, and when the server's remaining count is low (under
 * a tenth of capacity) requests are paced evenly over the time left. A
 * 429 holds everything until its Retry-After has passed.
 *
 * Low-priority requests may not take the last `reserve` tokens (a fifth of
 * capacity by default), so a plan can never starve the reconcile.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct Budget {
        double capacity;            /* tokens */
        double tokens;              /* available now (after the last refill) */
        double reserve;             /* tokens low-priority requests may not take */
        uint64_t window_usec;
        uint64_t last_refill_usec;
        uint64_t hold_until_usec;   /* nothing starts before this (429, server r=0) */
        /* the server's view, valid while server_valid and now < server_reset_usec */
        bool server_valid;
        uint64_t server_remaining;
        uint64_t server_reset_usec;
        uint64_t last_start_usec;   /* for pacing */
        uint64_t n_waits;           /* budget_take calls that had to wait */
} Budget;

/* capacity 0 means 1000; window 0 means 5 min. now: the current time. */
void budget_init(Budget *b, unsigned capacity, uint64_t window_usec, uint64_t now_usec);

/* Changes capacity and window, keeping the fraction already spent. */
void budget_resize(Budget *b, unsigned capacity, uint64_t window_usec, uint64_t now_usec);

/* Tries to take one token at now. Returns 0 when taken; otherwise the
 * number of µs (>= 1) after which trying again may succeed, and takes
 * nothing. low_priority applies the reserve. */
uint64_t budget_take(Budget *b, uint64_t now_usec, bool low_priority);

/* Tokens available at now (refilled), floored, before the server clamp. */
unsigned budget_available(Budget *b, uint64_t now_usec);

/* Feeds the server's `Ratelimit` header: remaining requests and seconds
 * until its window resets, as seen at now. */
void budget_observe_server(Budget *b, uint64_t remaining, uint64_t reset_sec, uint64_t now_usec);

/* Holds every request until now + delay (a 429's Retry-After). Extends,
 * never shortens, an existing hold. */
void budget_hold(Budget *b, uint64_t delay_usec, uint64_t now_usec);

/* Exponential backoff with full jitter: a delay uniformly drawn from
 * [0, min(max, base * 2^attempt)] using random (any 64-bit random
 * number). attempt counts from 0 (the first retry). */
uint64_t backoff_delay(unsigned attempt, uint64_t base_usec, uint64_t max_usec, uint64_t random);
