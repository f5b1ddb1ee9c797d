/* budget.c: sliding-window request budget (optionally shared between
 * processes through a record file), server rate-limit mirror and
 * backoff; see budget.h. The core is arithmetic on times passed in. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "budget.h"
#include "util.h"

#define BUDGET_DEFAULT_CAPACITY 1000U
#define BUDGET_DEFAULT_WINDOW_USEC (5U * 60U * USEC_PER_SEC)
#define BUDGET_LOG_INITIAL 64U

static size_t size_max(size_t a, size_t b) {
        return a > b ? a : b;
}

static unsigned reserve_for(unsigned capacity) {
        /* A fifth, and never so much that a low-priority request could
         * not be served by an empty window. */
        unsigned r = capacity / 5;

        return capacity > 0 && r > capacity - 1 ? capacity - 1 : r;
}

static int log_reserve(Budget *b, size_t n) {
        uint64_t *p;

        if (b->head > 0 && b->n_log + n > b->n_alloc) {
                /* Compact first: pruned records leave room at the front. */
                memmove(b->log, b->log + b->head, (b->n_log - b->head) * sizeof(uint64_t));
                b->n_log -= b->head;
                b->head = 0;
        }
        if (b->n_log + n <= b->n_alloc)
                return 0;
        n = size_max(b->n_log + n, b->n_alloc * 2);
        p = reallocarray(b->log, n, sizeof(uint64_t));
        if (!p)
                return -ENOMEM;
        b->log = p;
        b->n_alloc = n;
        return 0;
}

int budget_init(Budget *b, unsigned capacity, uint64_t window_usec, uint64_t now_usec) {
        *b = (Budget) {
                .capacity = capacity > 0 ? capacity : BUDGET_DEFAULT_CAPACITY,
                .window_usec = window_usec > 0 ? window_usec : BUDGET_DEFAULT_WINDOW_USEC,
                .share_fd = -EBADF,
        };
        b->reserve = reserve_for(b->capacity);
        /* The log grows with the records (doubling), not to the
         * capacity up front: 100,000 would be 800 KiB never used. */
        return log_reserve(b, BUDGET_LOG_INITIAL);
}

void budget_done(Budget *b) {
        if (!b)
                return;
        free(b->log);
        b->log = NULL;
        b->head = b->n_log = b->n_alloc = 0;
        if (b->share_fd >= 0)
                (void) close(b->share_fd);
        b->share_fd = -EBADF;
}

int budget_resize(Budget *b, unsigned capacity, uint64_t window_usec, uint64_t now_usec) {
        if (capacity > 0)
                b->capacity = capacity;
        if (window_usec > 0)
                b->window_usec = window_usec;
        b->reserve = reserve_for(b->capacity);
        return 0;
}

/* Drops the records that no window ending after now can see. */
static void prune(Budget *b, uint64_t now_usec) {
        while (b->head < b->n_log && b->log[b->head] + b->window_usec <= now_usec)
                b->head++;
        if (b->head == b->n_log)
                b->head = b->n_log = 0;
}

static size_t alive(const Budget *b) {
        return b->n_log - b->head;
}

/* µs until `need` more starts fit under the capacity (1 if they fit). */
static uint64_t wait_for_room(const Budget *b, size_t need, uint64_t now_usec) {
        size_t n = alive(b), excess;
        uint64_t t;

        if (n + need <= b->capacity)
                return 1;
        excess = n + need - b->capacity;
        if (excess > n)
                return b->window_usec;  /* more than capacity can ever hold */
        /* The excess-th oldest record must leave the window. */
        t = b->log[b->head + excess - 1] + b->window_usec;
        return t > now_usec ? t - now_usec : 1;
}

static bool server_pace(Budget *b, uint64_t now_usec, uint64_t *ret_wait) {
        if (now_usec < b->hold_until_usec) {
                *ret_wait = b->hold_until_usec - now_usec;
                return true;
        }
        if (b->server_valid && now_usec >= b->server_reset_usec)
                b->server_valid = false;
        if (!b->server_valid)
                return false;
        if (b->server_remaining == 0) {
                *ret_wait = b->server_reset_usec - now_usec;
                return true;
        }
        /* Low on the server's count: spread what is left evenly over the
         * time until its window resets. The next start may come once
         * (reset - t) / remaining has passed since the last one:
         * t >= (last * remaining + reset) / (remaining + 1). */
        if ((double) b->server_remaining < (double) b->capacity / 10.0 && b->last_start_usec > 0) {
                uint64_t n = b->server_remaining;
                unsigned __int128 num = (unsigned __int128) b->last_start_usec * n + b->server_reset_usec;
                uint64_t t = (uint64_t) ((num + n) / (n + 1));

                if (t > now_usec) {
                        *ret_wait = t - now_usec;
                        return true;
                }
        }
        return false;
}

static void taken(Budget *b, uint64_t now_usec) {
        if (b->server_valid)
                b->server_remaining--;
        b->last_start_usec = now_usec;
        b->n_taken++;
}

uint64_t budget_take(Budget *b, uint64_t now_usec, bool low_priority) {
        size_t need = 1 + (low_priority ? b->reserve : 0);
        uint64_t wait;

        if (server_pace(b, now_usec, &wait)) {
                b->n_waits++;
                return wait;
        }

        if (b->share_fd >= 0) {
                if (b->granted > 0 && now_usec < b->grant_until_usec) {
                        b->granted--;
                        taken(b, now_usec);
                        return 0;
                }
                if (b->synced_usec != now_usec)
                        return BUDGET_NEED_SYNC;
                /* Synced just now and nothing fit: wait for room. */
                prune(b, now_usec);
                b->n_waits++;
                return wait_for_room(b, need, now_usec);
        }

        prune(b, now_usec);
        if (alive(b) + need > b->capacity || log_reserve(b, 1) < 0) {
                b->n_waits++;
                return wait_for_room(b, need, now_usec);
        }
        /* Records stay ascending even if the clock went back. */
        b->log[b->n_log] = b->n_log > b->head && b->log[b->n_log - 1] > now_usec ? b->log[b->n_log - 1] : now_usec;
        b->n_log++;
        taken(b, now_usec);
        return 0;
}

unsigned budget_available(Budget *b, uint64_t now_usec) {
        size_t n;

        prune(b, now_usec);
        n = alive(b);
        if (b->share_fd >= 0)
                return (n >= b->capacity ? 0 : (unsigned) (b->capacity - n)) +
                       (now_usec < b->grant_until_usec ? b->granted : 0);
        return n >= b->capacity ? 0 : (unsigned) (b->capacity - n);
}

void budget_observe_server(Budget *b, uint64_t remaining, uint64_t reset_sec, uint64_t now_usec) {
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
}

void budget_hold(Budget *b, uint64_t delay_usec, uint64_t now_usec) {
        uint64_t until = delay_usec > UINT64_MAX - now_usec ? UINT64_MAX : now_usec + delay_usec;

        if (until > b->hold_until_usec)
                b->hold_until_usec = until;
}

/* ---- The shared record file ---- */

int budget_share_open(Budget *b, const char *path) {
        int fd;

        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        if (b->share_fd >= 0)
                (void) close(b->share_fd);
        b->share_fd = fd;
        b->granted = 0;
        b->synced_usec = 0;
        return 0;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* Reads the file's records into the log (replacing it), dropping those no
 * window can see any more and those dated past any lease (another boot's
 * clock), sorted. */
static int share_read(Budget *b, uint64_t now_usec, size_t room) {
        struct stat st;
        size_t n, keep = 0;
        ssize_t k;

        if (fstat(b->share_fd, &st) < 0)
                return -errno;
        n = (size_t) st.st_size / sizeof(uint64_t);
        if (n > BUDGET_SHARE_MAX_RECORDS)
                n = BUDGET_SHARE_MAX_RECORDS;
        b->head = b->n_log = 0;
        if (log_reserve(b, n + room) < 0)
                return -ENOMEM;
        k = n > 0 ? pread(b->share_fd, b->log, n * sizeof(uint64_t), 0) : 0;
        if (k < 0)
                return -errno;
        n = (size_t) k / sizeof(uint64_t);
        for (size_t i = 0; i < n; i++)
                if (b->log[i] + b->window_usec > now_usec && b->log[i] <= now_usec + BUDGET_SHARE_LEASE_USEC)
                        b->log[keep++] = b->log[i];
        /* Appended in time order, so normally sorted already: one pass
         * to check instead of a sort per sync. */
        for (size_t i = 1; i < keep; i++)
                if (b->log[i - 1] > b->log[i]) {
                        qsort(b->log, keep, sizeof(uint64_t), cmp_u64);
                        break;
                }
        b->n_log = keep;
        return 0;
}

/* Removes up to n records dated exactly t (this process's unused slots:
 * records are bare times, so any n of them are these). */
static void share_hand_back(Budget *b, uint64_t t, unsigned n) {
        size_t w = b->head;

        for (size_t i = b->head; i < b->n_log; i++)
                if (n > 0 && b->log[i] == t)
                        n--;
                else
                        b->log[w++] = b->log[i];
        b->n_log = w;
}

int budget_share_sync(Budget *b, uint64_t (*clock)(void), unsigned want, bool low_priority) {
        size_t need_free = low_priority ? b->reserve : 0, n, k = 0;
        uint64_t now_usec, until;
        ssize_t w;
        int r;

        if (b->share_fd < 0)
                return -EBADF;
        if (flock(b->share_fd, LOCK_EX) < 0) {
                r = -errno;
                goto local;
        }
        /* Only now: every record in the file was written by a sync that
         * held the lock before, at a time no later than this. */
        now_usec = clock();
        until = now_usec + BUDGET_SHARE_LEASE_USEC;
        r = share_read(b, now_usec, (size_t) (want > 0 ? want : 1));
        if (r >= 0) {
                if (b->granted > 0)
                        share_hand_back(b, b->grant_until_usec, b->granted);
                b->granted = 0;
                n = alive(b);
                if (want == 0)
                        want = 1;
                if (n + need_free < b->capacity)
                        k = b->capacity - need_free - n;
                if (k > want)
                        k = want;
                /* Dated at the lease's end: covers a start anywhere in it. */
                for (size_t i = 0; i < k; i++)
                        b->log[b->n_log++] = until;
                n = alive(b);
                w = pwrite(b->share_fd, b->log + b->head, n * sizeof(uint64_t), 0);
                if (w < 0 || (size_t) w != n * sizeof(uint64_t))
                        r = w < 0 ? -errno : -EIO;
                else if (ftruncate(b->share_fd, (off_t) (n * sizeof(uint64_t))) < 0)
                        r = -errno;
        }
        (void) flock(b->share_fd, LOCK_UN);
        if (r < 0)
                goto local;
        b->n_syncs++;
        b->synced_usec = now_usec;
        b->granted = (unsigned) k;
        b->grant_until_usec = until;
        return (int) k;

local:
        /* Keep the records read so far; count on alone from here. */
        (void) close(b->share_fd);
        b->share_fd = -EBADF;
        b->granted = 0;
        return r;
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
