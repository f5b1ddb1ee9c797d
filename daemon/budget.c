/* budget.c: token bucket, server rate-limit mirror and backoff; see
 * budget.h. Pure arithmetic on times passed in. */
#include "budget.h"
#include "util.h"

#define BUDGET_DEFAULT_CAPACITY 1000U
#define BUDGET_DEFAULT_WINDOW_USEC (5U * 60U * USEC_PER_SEC)

/* floor and ceil for non-negative values, without libm. */
static double floor_pos(double d) {
        return d <= 0.0 ? 0.0 : (double) (uint64_t) d;
}

static double reserve_for(double capacity) {
        /* A fifth, whole tokens, and never so much that a low-priority
         * request could not be served by a full bucket. */
        double r = floor_pos(capacity / 5.0);

        if (r > capacity - 1.0)
                r = capacity - 1.0;
        return r < 0.0 ? 0.0 : r;
}

void budget_init(Budget *b, unsigned capacity, uint64_t window_usec, uint64_t now_usec) {
        *b = (Budget) {
                .capacity = capacity > 0 ? capacity : BUDGET_DEFAULT_CAPACITY,
                .window_usec = window_usec > 0 ? window_usec : BUDGET_DEFAULT_WINDOW_USEC,
                .last_refill_usec = now_usec,
        };
        b->tokens = b->capacity;
        b->reserve = reserve_for(b->capacity);
}

static void refill(Budget *b, uint64_t now_usec) {
        if (now_usec > b->last_refill_usec) {
                double add = (double) (now_usec - b->last_refill_usec) * b->capacity /
                             (double) b->window_usec;

                b->tokens += add;
                if (b->tokens > b->capacity)
                        b->tokens = b->capacity;
        }
        /* A clock that goes backwards (injected in tests) never refills. */
        b->last_refill_usec = now_usec;
}

void budget_resize(Budget *b, unsigned capacity, uint64_t window_usec, uint64_t now_usec) {
        double fraction;

        refill(b, now_usec);
        fraction = b->capacity > 0 ? b->tokens / b->capacity : 1.0;
        if (capacity > 0)
                b->capacity = capacity;
        if (window_usec > 0)
                b->window_usec = window_usec;
        b->tokens = fraction * b->capacity;
        b->reserve = reserve_for(b->capacity);
}

static uint64_t usec_ceil(double d) {
        if (d <= 1.0)
                return 1;
        if (d >= 1e18)
                return (uint64_t) 1e18;
        return (uint64_t) d + ((double) (uint64_t) d < d ? 1 : 0);
}

uint64_t budget_take(Budget *b, uint64_t now_usec, bool low_priority) {
        double need;

        refill(b, now_usec);

        if (now_usec < b->hold_until_usec) {
                b->n_waits++;
                return b->hold_until_usec - now_usec;
        }

        if (b->server_valid && now_usec >= b->server_reset_usec)
                b->server_valid = false;
        if (b->server_valid) {
                if (b->server_remaining == 0) {
                        b->n_waits++;
                        return b->server_reset_usec - now_usec;
                }
                /* Low on the server's count: spread what is left evenly over
                 * the time until its window resets. The next start may come
                 * once (reset - t) / remaining has passed since the last one:
                 * t >= (last * remaining + reset) / (remaining + 1). */
                if ((double) b->server_remaining < b->capacity / 10.0 && b->last_start_usec > 0) {
                        uint64_t n = b->server_remaining;
                        unsigned __int128 num = (unsigned __int128) b->last_start_usec * n + b->server_reset_usec;
                        uint64_t t = (uint64_t) ((num + n) / (n + 1));

                        if (t > now_usec) {
                                b->n_waits++;
                                return t - now_usec;
                        }
                }
        }

        need = 1.0 + (low_priority ? b->reserve : 0.0);
        if (b->tokens < need) {
                b->n_waits++;
                return usec_ceil((need - b->tokens) * (double) b->window_usec / b->capacity);
        }

        b->tokens -= 1.0;
        if (b->server_valid)
                b->server_remaining--;
        b->last_start_usec = now_usec;
        return 0;
}

unsigned budget_available(Budget *b, uint64_t now_usec) {
        refill(b, now_usec);
        return b->tokens <= 0.0 ? 0 : (unsigned) floor_pos(b->tokens);
}

void budget_observe_server(Budget *b, uint64_t remaining, uint64_t reset_sec, uint64_t now_usec) {
        refill(b, now_usec);
        if (reset_sec == 0) {
                /* The window resets now: nothing to mirror. */
                b->server_valid = false;
                return;
        }
        if (reset_sec > 24 * 3600)
                reset_sec = 24 * 3600;
        b->server_valid = true;
        b->server_remaining = remaining;
        b->server_reset_usec = now_usec + reset_sec * USEC_PER_SEC;
        if (b->tokens > (double) remaining)
                b->tokens = (double) remaining;
}

void budget_hold(Budget *b, uint64_t delay_usec, uint64_t now_usec) {
        uint64_t until = delay_usec > UINT64_MAX - now_usec ? UINT64_MAX : now_usec + delay_usec;

        if (until > b->hold_until_usec)
                b->hold_until_usec = until;
}

uint64_t backoff_delay(unsigned attempt, uint64_t base_usec, uint64_t max_usec, uint64_t random) {
        uint64_t cap = base_usec;

        for (unsigned i = 0; i < attempt && cap < max_usec; i++)
                cap = cap > UINT64_MAX / 2 ? UINT64_MAX : cap * 2;
        if (cap > max_usec)
                cap = max_usec;
        if (cap == UINT64_MAX)
                return random;
        return random % (cap + 1);
}
