/* test-budget.c: sliding window (alone and shared through a record
 * file), server mirror, priority reserve and backoff arithmetic, on an
 * injected clock. */
#include <check.h>
#include <stdlib.h>
#include <unistd.h>

#include "budget.h"
#include "util.h"

#define SEC USEC_PER_SEC
#define T0 (1000 * SEC)        /* an arbitrary monotonic start */

START_TEST(test_defaults) {
        Budget b;

        ck_assert_int_eq(budget_init(&b, 0, 0, T0), 0);
        ck_assert(b.capacity == 1000.0);
        ck_assert_uint_eq(b.window_usec, 300 * SEC);
        ck_assert_uint_eq(budget_available(&b, T0), 1000);
        ck_assert(b.reserve == 200.0);
        budget_done(&b);
}
END_TEST

/* The largest number of times in a sorted array that one window of
 * length w (a half-open interval) holds. */
static unsigned max_in_window(const uint64_t *t, size_t n, uint64_t w) {
        unsigned best = 0;

        for (size_t i = 0, j = 0; i < n; i++) {
                while (t[i] - t[j] >= w)
                        j++;
                if (i - j + 1 > best)
                        best = (unsigned) (i - j + 1);
        }
        return best;
}

START_TEST(test_burst_then_window) {
        Budget b;
        uint64_t wait;

        /* 1000 per 5 min: 1000 immediately, then nothing until the first
         * of them leaves the window (a token bucket would allow a second
         * 1000 within the same 5 minutes). */
        ck_assert_int_eq(budget_init(&b, 1000, 300 * SEC, T0), 0);
        for (unsigned i = 0; i < 1000; i++)
                ck_assert_uint_eq(budget_take(&b, T0 + i * USEC_PER_MSEC, false), 0);
        ck_assert_uint_eq(budget_available(&b, T0 + SEC), 0);
        wait = budget_take(&b, T0 + SEC, false);
        ck_assert_uint_eq(wait, 299 * SEC);
        ck_assert_uint_gt(budget_take(&b, T0 + 300 * SEC - 1, false), 0);
        ck_assert_uint_eq(budget_take(&b, T0 + 300 * SEC, false), 0);
        ck_assert_uint_eq(b.n_taken, 1001);
        /* Never more than capacity after a long idle time. */
        ck_assert_uint_eq(budget_available(&b, T0 + 10000 * SEC), 1000);
        budget_done(&b);
}
END_TEST

START_TEST(test_no_window_exceeded) {
        Budget b;
        uint64_t starts[2000], t = T0;
        size_t n = 0;

        /* Greedy sends every 7 ms for 50 s against 40 per 10 s: whichever
         * window one looks at, never more than 40. */
        ck_assert_int_eq(budget_init(&b, 40, 10 * SEC, T0), 0);
        for (; t < T0 + 50 * SEC && n < ELEMENTSOF(starts); t += 7 * USEC_PER_MSEC)
                while (n < ELEMENTSOF(starts) && budget_take(&b, t, false) == 0)
                        starts[n++] = t;
        ck_assert_uint_eq(max_in_window(starts, n, 10 * SEC), 40);
        ck_assert_uint_ge(n, 200);     /* and it does send: 5 windows' worth */
        budget_done(&b);
}
END_TEST

START_TEST(test_every_attempt_costs) {
        Budget b;
        unsigned ok = 0;

        ck_assert_int_eq(budget_init(&b, 10, 10 * SEC, T0), 0);
        /* 4 requests with 2 retries each = 12 attempts: only 10 fit now. */
        for (unsigned i = 0; i < 12; i++)
                if (budget_take(&b, T0, false) == 0)
                        ok++;
        ck_assert_uint_eq(ok, 10);
        ck_assert_uint_eq(b.n_waits, 2);
        budget_done(&b);
}
END_TEST

START_TEST(test_reserve_for_low_priority) {
        Budget b;
        unsigned low = 0;
        uint64_t wait;

        budget_init(&b, 100, 100 * SEC, T0);
        ck_assert(b.reserve == 20.0);
        while (budget_take(&b, T0, true) == 0)
                low++;
        /* Plan requests stop at the reserve ... */
        ck_assert_uint_eq(low, 80);
        wait = budget_take(&b, T0, true);
        ck_assert_uint_eq(wait, 100 * SEC);  /* the oldest must leave the window */
        /* ... the reconcile still has 20. */
        for (unsigned i = 0; i < 20; i++)
                ck_assert_uint_eq(budget_take(&b, T0, false), 0);
        ck_assert_uint_gt(budget_take(&b, T0, false), 0);

        budget_done(&b);
        /* Tiny budgets keep no reserve (a low request must be servable). */
        budget_init(&b, 3, SEC, T0);
        ck_assert(b.reserve == 0.0);
        ck_assert_uint_eq(budget_take(&b, T0, true), 0);
        budget_done(&b);
        budget_init(&b, 1, SEC, T0);
        ck_assert_uint_eq(budget_take(&b, T0, true), 0);
        budget_done(&b);
}
END_TEST

START_TEST(test_server_clamp_and_hold) {
        Budget b;

        budget_init(&b, 1000, 300 * SEC, T0);
        /* The server says 3 left for 10 s (someone else uses the token too). */
        budget_observe_server(&b, 3, 10, T0);
        ck_assert_uint_eq(b.server_remaining, 3);
        /* Low: paced evenly over the 10 s, whatever the local bucket has. */
        {
                uint64_t starts[8], t = T0;
                unsigned n = 0;

                while (t < T0 + 10 * SEC && n < ELEMENTSOF(starts)) {
                        uint64_t w = budget_take(&b, t, false);

                        if (w == 0)
                                starts[n++] = t;
                        else
                                t += w;
                }
                ck_assert_uint_eq(n, 3);
                ck_assert_uint_eq(starts[0], T0);
                ck_assert_uint_ge(starts[1] - starts[0], 10 * SEC / 3);
                ck_assert_uint_le(starts[1] - starts[0], 10 * SEC / 3 + 2);
                ck_assert_uint_ge(starts[2] - starts[1], 10 * SEC / 3 - 2);
                /* 0 left on the server: hold until its reset, even with local tokens. */
                ck_assert_uint_eq(b.server_remaining, 0);
                ck_assert_uint_eq(budget_take(&b, starts[2], false), T0 + 10 * SEC - starts[2]);
        }
        /* After the reset the local bucket decides again. */
        ck_assert_uint_eq(budget_take(&b, T0 + 10 * SEC, false), 0);

        /* r=0 immediately: hold for t. */
        budget_done(&b);
        budget_init(&b, 1000, 300 * SEC, T0);
        budget_observe_server(&b, 0, 7, T0);
        ck_assert_uint_eq(budget_take(&b, T0, false), 7 * SEC);
        /* A high remaining count does not pace. */
        budget_done(&b);
        budget_init(&b, 1000, 300 * SEC, T0);
        budget_observe_server(&b, 900, 200, T0);
        for (unsigned i = 0; i < 50; i++)
                ck_assert_uint_eq(budget_take(&b, T0, false), 0);
        /* t=0: nothing to mirror. */
        budget_observe_server(&b, 0, 0, T0);
        ck_assert_uint_eq(budget_take(&b, T0, false), 0);
        budget_done(&b);
}
END_TEST

START_TEST(test_hold_429) {
        Budget b;

        budget_init(&b, 1000, 300 * SEC, T0);
        budget_hold(&b, 5 * SEC, T0);
        ck_assert_uint_eq(budget_take(&b, T0, false), 5 * SEC);
        ck_assert_uint_eq(budget_take(&b, T0 + 2 * SEC, false), 3 * SEC);
        /* A shorter hold does not shorten it. */
        budget_hold(&b, 1 * SEC, T0 + 2 * SEC);
        ck_assert_uint_eq(budget_take(&b, T0 + 2 * SEC, false), 3 * SEC);
        ck_assert_uint_eq(budget_take(&b, T0 + 5 * SEC, false), 0);
        budget_done(&b);
}
END_TEST

START_TEST(test_resize) {
        Budget b;

        budget_init(&b, 100, 100 * SEC, T0);
        for (unsigned i = 0; i < 50; i++)
                ck_assert_uint_eq(budget_take(&b, T0, false), 0);
        budget_resize(&b, 1000, 300 * SEC, T0);
        ck_assert_uint_eq(budget_available(&b, T0), 950);
        ck_assert(b.reserve == 200.0);
        budget_done(&b);
}
END_TEST

START_TEST(test_backoff) {
        const uint64_t base = 500 * USEC_PER_MSEC, max = 60 * SEC;

        /* Full jitter: [0, min(max, base*2^n)]. */
        ck_assert_uint_eq(backoff_delay(0, base, max, 0), 0);
        ck_assert_uint_eq(backoff_delay(0, base, max, base), base);
        ck_assert_uint_eq(backoff_delay(0, base, max, base + 1), 0);
        ck_assert_uint_eq(backoff_delay(3, base, max, 4 * SEC), 4 * SEC);
        ck_assert_uint_eq(backoff_delay(3, base, max, 4 * SEC + 1), 0);
        ck_assert_uint_eq(backoff_delay(20, base, max, max), max);
        ck_assert_uint_eq(backoff_delay(200, base, max, UINT64_MAX) <= max, 1);

        /* Spread: over many draws the mean is about half the cap. */
        uint64_t x = 88172645463325252ULL, sum = 0;
        for (unsigned i = 0; i < 10000; i++) {
                uint64_t d;

                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                d = backoff_delay(2, base, max, x);
                ck_assert_uint_le(d, 2 * SEC);
                sum += d;
        }
        ck_assert_uint_gt(sum / 10000, 900 * USEC_PER_MSEC);
        ck_assert_uint_lt(sum / 10000, 1100 * USEC_PER_MSEC);
}
END_TEST

START_TEST(test_clock_backwards) {
        Budget b;

        budget_init(&b, 10, 10 * SEC, T0);
        for (unsigned i = 0; i < 10; i++)
                ck_assert_uint_eq(budget_take(&b, T0, false), 0);
        /* A clock that goes back never mints tokens. */
        ck_assert_uint_gt(budget_take(&b, T0 - 5 * SEC, false), 0);
        ck_assert_uint_eq(budget_available(&b, T0 - 5 * SEC), 0);
        budget_done(&b);
}
END_TEST

/* The shared tests' clock: budget_share_sync() reads it under the lock. */
static uint64_t test_clock_usec;

static uint64_t test_clock(void) {
        return test_clock_usec;
}

static int share_sync_at(Budget *x, uint64_t t, unsigned want, bool low_priority) {
        test_clock_usec = t;
        return budget_share_sync(x, test_clock, want, low_priority);
}

START_TEST(test_shared) {
        char path[] = "/tmp/test-budget-XXXXXX";
        Budget a, b;
        uint64_t starts[4000], t, next_try[2] = { 0, 0 };
        size_t n = 0;
        int fd = mkstemp(path);

        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(budget_init(&a, 40, 10 * SEC, T0), 0);
        ck_assert_int_eq(budget_init(&b, 40, 10 * SEC, T0), 0);
        ck_assert_int_eq(budget_share_open(&a, path), 0);
        ck_assert_int_eq(budget_share_open(&b, path), 0);

        /* Two processes on one file, both greedy, interleaved: together
         * never more than 40 in any 10 s. */
        for (t = T0; t < T0 + 40 * SEC && n < ELEMENTSOF(starts); t += 3 * USEC_PER_MSEC) {
                unsigned i = (t / (3 * USEC_PER_MSEC)) % 2;
                Budget *x = i ? &a : &b;
                uint64_t w;

                /* Like cfapi's scheduler: after a wait, sleep that long. */
                while (t >= next_try[i] && n < ELEMENTSOF(starts)) {
                        w = budget_take(x, t, false);
                        if (w == BUDGET_NEED_SYNC) {
                                ck_assert_int_ge(share_sync_at(x, t, 4, false), 0);
                                w = budget_take(x, t, false);
                                ck_assert_uint_ne(w, BUDGET_NEED_SYNC);
                        }
                        if (w != 0) {
                                next_try[i] = t + w;
                                break;
                        }
                        starts[n++] = t;
                }
        }
        ck_assert_uint_le(max_in_window(starts, n, 10 * SEC), 40);
        ck_assert_uint_ge(n, 100);
        /* One lock per batch of up to 4, not one per start. */
        ck_assert_uint_le(a.n_syncs + b.n_syncs, n / 2);
        ck_assert_uint_ge(a.n_taken + b.n_taken, n);

        /* Unused slots go back at the next sync: a reserves 4, uses 1,
         * syncs again long after: the file holds only the one used. */
        t = T0 + 1000 * SEC;
        ck_assert_int_eq(share_sync_at(&a, t, 4, false), 4);
        ck_assert_uint_eq(budget_take(&a, t, false), 0);
        ck_assert_int_eq(share_sync_at(&b, t + 2 * SEC, 1, false), 1);
        ck_assert_uint_eq(budget_available(&b, t + 2 * SEC), 40 - 1 - 4 + 1);
        ck_assert_int_eq(share_sync_at(&a, t + 3 * SEC, 1, false), 1);
        /* a's 3 unused handed back: the file holds a's 1 + b's 1 + a's new 1. */
        ck_assert_uint_eq(a.n_log - a.head, 3);

        budget_done(&a);
        budget_done(&b);
        unlink(path);
}
END_TEST

/* The off-by-one seen with a daemon and a CLI run on one state
 * directory: b's scheduler read the time, then a synced (its records
 * dated a little later), then b synced with its earlier time. Those
 * records looked dated in the future (another boot's clock), b dropped
 * them and wrote the file back without them: one more start fit in the
 * window than the budget. The time is now read under the lock. */
START_TEST(test_shared_sync_after_a_later_one) {
        char path[] = "/tmp/test-budget-XXXXXX";
        Budget a, b;
        uint64_t t = T0 + 100 * SEC, b_now;
        int fd = mkstemp(path);
        int k;

        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(budget_init(&a, 2, 10 * SEC, T0), 0);
        ck_assert_int_eq(budget_init(&b, 2, 10 * SEC, T0), 0);
        ck_assert_int_eq(budget_share_open(&a, path), 0);
        ck_assert_int_eq(budget_share_open(&b, path), 0);

        b_now = t;                      /* b's scheduler pass starts */
        ck_assert_int_eq(share_sync_at(&a, t + 10 * USEC_PER_MSEC, 1, false), 1);
        ck_assert_uint_eq(budget_take(&a, a.synced_usec, false), 0);
        ck_assert_uint_eq(budget_take(&b, b_now, false), BUDGET_NEED_SYNC);
        /* b syncs 20 ms after its pass began: a's slot is seen and kept. */
        k = share_sync_at(&b, t + 20 * USEC_PER_MSEC, 2, false);
        ck_assert_int_eq(k, 1);
        ck_assert_uint_eq(b.synced_usec, t + 20 * USEC_PER_MSEC);
        ck_assert_uint_eq(budget_take(&b, b.synced_usec, false), 0);
        ck_assert_uint_gt(budget_take(&b, b.synced_usec, false), 0);
        /* a syncs again: the file still holds both slots, nothing fits. */
        ck_assert_int_eq(share_sync_at(&a, t + 30 * USEC_PER_MSEC, 1, false), 0);
        ck_assert_uint_eq(a.n_log - a.head, 2);

        budget_done(&a);
        budget_done(&b);
        unlink(path);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("budget");
        TCase *tc = tcase_create("budget");

        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_burst_then_window);
        tcase_add_test(tc, test_no_window_exceeded);
        tcase_add_test(tc, test_shared);
        tcase_add_test(tc, test_shared_sync_after_a_later_one);
        tcase_add_test(tc, test_every_attempt_costs);
        tcase_add_test(tc, test_reserve_for_low_priority);
        tcase_add_test(tc, test_server_clamp_and_hold);
        tcase_add_test(tc, test_hold_429);
        tcase_add_test(tc, test_resize);
        tcase_add_test(tc, test_backoff);
        tcase_add_test(tc, test_clock_backwards);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
