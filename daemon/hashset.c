/* hashset.c: see hashset.h. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "hashset.h"

#define HASHSET_MIN_SLOTS 16U

static size_t slot_of(const HashSet *s, unsigned long h) {
        return (size_t) h & (s->n_slots - 1);
}

void hashset_done(HashSet *s) {
        free(s->slots);
        s->slots = NULL;
        s->n_slots = s->n = 0;
}

/* Whether n items fit in n_slots (at most three quarters full). */
static bool fits(size_t n, size_t n_slots) {
        return n_slots > 0 && n <= n_slots / 4 * 3;
}

static void place(void **slots, size_t n_slots, unsigned long h, void *item) {
        size_t i = (size_t) h & (n_slots - 1);

        while (slots[i])
                i = (i + 1) & (n_slots - 1);
        slots[i] = item;
}

static int resize(HashSet *s, size_t n_slots) {
        void **slots = calloc(n_slots, sizeof(void *));

        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i])
                        place(slots, n_slots, s->hash(s->slots[i]), s->slots[i]);
        free(s->slots);
        s->slots = slots;
        s->n_slots = n_slots;
        return 0;
}

int hashset_reserve(HashSet *s, size_t n) {
        size_t want = s->n_slots > 0 ? s->n_slots : HASHSET_MIN_SLOTS;

        while (!fits(n, want)) {
                if (want > SIZE_MAX / 2 / sizeof(void *))
                        return -ENOMEM;
                want *= 2;
        }
        return want == s->n_slots ? 0 : resize(s, want);
}

int hashset_put(HashSet *s, void *item) {
        int r;

        if (!fits(s->n + 1, s->n_slots)) {
                r = hashset_reserve(s, s->n + 1);
                if (r < 0)
                        return r;
        }
        place(s->slots, s->n_slots, s->hash(item), item);
        s->n++;
        return 0;
}

void *hashset_find(const HashSet *s, unsigned long h, hashset_match_fn match, const void *probe) {
        if (s->n == 0)
                return NULL;
        for (size_t i = slot_of(s, h); s->slots[i]; i = (i + 1) & (s->n_slots - 1))
                if (match(s->slots[i], probe))
                        return s->slots[i];
        return NULL;
}

bool hashset_remove(HashSet *s, const void *item) {
        size_t i, j;

        if (s->n == 0)
                return false;
        for (i = slot_of(s, s->hash(item)); s->slots[i] != item; i = (i + 1) & (s->n_slots - 1))
                if (!s->slots[i])
                        return false;
        /* Backward shift: each later item of the cluster that may sit in
         * the hole (its home is not between the hole and it) moves in. */
        s->slots[i] = NULL;
        for (j = (i + 1) & (s->n_slots - 1); s->slots[j]; j = (j + 1) & (s->n_slots - 1)) {
                size_t home = slot_of(s, s->hash(s->slots[j]));

                if (((j - home) & (s->n_slots - 1)) >= ((j - i) & (s->n_slots - 1))) {
                        s->slots[i] = s->slots[j];
                        s->slots[j] = NULL;
                        i = j;
                }
        }
        s->n--;
        return true;
}
