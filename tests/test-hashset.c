/* test-hashset.c: the open-addressing pointer set (hashset.h) — finds
 * what was put, growth keeps every item, removal by pointer keeps every
 * other item findable (the backward shift across a wrapped cluster),
 * repeats. Items are small ints whose hash the test chooses, so
 * collisions and clusters are made on purpose. */
#include <check.h>
#include <stdlib.h>

#include "hashset.h"

typedef struct Item {
        unsigned long h;
        int v;
} Item;

static unsigned long item_hash(const void *item) {
        return ((const Item *) item)->h;
}

static bool item_match(const void *item, const void *probe) {
        return ((const Item *) item)->v == *(const int *) probe;
}

static Item *find(const HashSet *s, unsigned long h, int v) {
        return hashset_find(s, h, item_match, &v);
}

START_TEST(test_put_find_grow) {
        HashSet s = HASHSET_INIT(item_hash);
        Item *items = calloc(5000, sizeof(Item));

        ck_assert_ptr_nonnull(items);
        ck_assert_ptr_null(find(&s, 1, 1));
        for (int i = 0; i < 5000; i++) {
                items[i] = (Item) { .h = (unsigned long) i * 2654435761UL, .v = i };
                ck_assert_int_eq(hashset_put(&s, &items[i]), 0);
        }
        ck_assert_uint_eq(s.n, 5000);
        ck_assert_uint_ge(s.n_slots, 5000 * 4 / 3);
        for (int i = 0; i < 5000; i++)
                ck_assert_ptr_eq(find(&s, items[i].h, i), &items[i]);
        ck_assert_ptr_null(find(&s, items[7].h, 5001));
        for (int i = 0; i < 5000; i += 2)
                ck_assert(hashset_remove(&s, &items[i]));
        ck_assert(!hashset_remove(&s, &items[0]));
        for (int i = 0; i < 5000; i++)
                ck_assert_ptr_eq(find(&s, items[i].h, i), i % 2 ? &items[i] : NULL);
        hashset_done(&s);
        ck_assert_uint_eq(s.n, 0);
        ck_assert_ptr_null(find(&s, items[1].h, 1));
        free(items);
}
END_TEST

/* Every item hashed near the end of the slots: the cluster wraps to the
 * start, and removing from its middle must shift the rest back. */
START_TEST(test_remove_from_wrapped_clusters) {
        HashSet s = HASHSET_INIT(item_hash);
        Item items[10];

        ck_assert_int_eq(hashset_reserve(&s, 10), 0);
        ck_assert_uint_eq(s.n_slots, 16);
        for (int i = 0; i < 10; i++) {
                items[i] = (Item) { .h = 14 + (unsigned long) (i % 3), .v = i };
                ck_assert_int_eq(hashset_put(&s, &items[i]), 0);
        }
        ck_assert_uint_eq(s.n_slots, 16);       /* reserved: no growth */
        for (int k = 0; k < 10; k++) {
                ck_assert(hashset_remove(&s, &items[k]));
                for (int i = 0; i < 10; i++)
                        ck_assert_ptr_eq(find(&s, items[i].h, i), i > k ? &items[i] : NULL);
        }
        ck_assert_uint_eq(s.n, 0);
        hashset_done(&s);
}
END_TEST

/* The same item twice, and two equal items: each removal takes one. */
START_TEST(test_repeats) {
        HashSet s = HASHSET_INIT(item_hash);
        Item a = { .h = 3, .v = 1 }, b = { .h = 3, .v = 1 };

        ck_assert_int_eq(hashset_put(&s, &a), 0);
        ck_assert_int_eq(hashset_put(&s, &b), 0);
        ck_assert_ptr_eq(find(&s, 3, 1), &a);
        ck_assert(hashset_remove(&s, &a));
        ck_assert_ptr_eq(find(&s, 3, 1), &b);
        ck_assert(hashset_remove(&s, &b));
        ck_assert_ptr_null(find(&s, 3, 1));
        hashset_done(&s);
}
END_TEST

static Suite *hashset_suite(void) {
        Suite *s = suite_create("hashset");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_put_find_grow);
        tcase_add_test(tc, test_remove_from_wrapped_clusters);
        tcase_add_test(tc, test_repeats);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(hashset_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
