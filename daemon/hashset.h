/* hashset.h: a set of pointers in one array of slots — open addressing,
 * linear probing, backward-shift removal (no tombstones).
 *
 * For indexes of records that carry their own key (the ledger's entries
 * by kind and doc, name or id): a slot is one pointer, where a json-c
 * lh_table spends a 40-byte entry per slot and, with string keys, a
 * copy of each key. At 2,000 records the set is 32 KB; an lh_table of
 * the same records 160 KB plus the keys.
 *
 * The set calls hash(item) on insert, removal and growth: what an item
 * is hashed by must not change while it is in the set. Lookups pass the
 * hash of what they look for and a match callback; the first match in
 * probe order is returned. Items may repeat (the caller decides whether
 * a second equal item goes in); NULL is never an item.
 *
 * Pure: no I/O, no logging. Negative errno.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef unsigned long (*hashset_hash_fn)(const void *item);
typedef bool (*hashset_match_fn)(const void *item, const void *probe);

typedef struct HashSet {
        void **slots;               /* NULL: empty; n_slots is 0 or a power of two */
        size_t n_slots;
        size_t n;
        hashset_hash_fn hash;
} HashSet;

#define HASHSET_INIT(h) ((HashSet) { .hash = (h) })

/* Frees the slots (not the items) and empties the set. */
void hashset_done(HashSet *s);
/* Makes room for n items without growing again (the count known at a
 * load: the slots are allocated once). -ENOMEM. */
int hashset_reserve(HashSet *s, size_t n);
/* Adds item (grows when three quarters full). -ENOMEM, nothing added. */
int hashset_put(HashSet *s, void *item);
/* The first item with hash h that match(item, probe) accepts, or NULL. */
void *hashset_find(const HashSet *s, unsigned long h, hashset_match_fn match, const void *probe);
/* Removes this very item (by pointer); false when it is not there. */
bool hashset_remove(HashSet *s, const void *item);
