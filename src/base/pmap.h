/* A map of long-lived objects, read without a lock: the registries the
 * request path looks things up in on every request (rate limiters, live
 * accounts), where a global mutex per lookup would be the one lock every
 * worker shares.
 *
 * An open-addressing table of (hash, object) slots, linear probing, at
 * most half full. Readers probe it with acquire loads and no lock; an
 * insertion, under the map's mutex, builds its object whole and then
 * publishes it with a release store. Growing builds a bigger table and
 * publishes it whole; the table it replaced stays allocated until the map
 * is freed, since a reader may still be probing it (it holds the same
 * objects, and a reader that misses there retries under the mutex). Old
 * tables add up to less than the current one. Objects are never removed:
 * the map holds every one it was given until it is freed. */
#ifndef TG_BASE_PMAP_H
#define TG_BASE_PMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tg_pmap tg_pmap;

/* Whether obj is the object of key (hash already matched). */
typedef bool (*tg_pmap_eq)(const void *obj, const void *key);

tg_pmap *tg_pmap_new(void);
/* Frees the map and, with free_obj, every object in it. No concurrent or
 * later calls. */
void tg_pmap_free(tg_pmap *m, void (*free_obj)(void *obj));

/* The object of key, or NULL; no lock. */
void *tg_pmap_get(tg_pmap *m, uint64_t hash, const void *key, tg_pmap_eq eq);
/* The object of key, made by make(ud) and added when there is none (two
 * callers racing for one key get the same object). NULL when make or the
 * table's growth runs out of memory. */
void *tg_pmap_get_or_add(tg_pmap *m, uint64_t hash, const void *key, tg_pmap_eq eq,
                         void *(*make)(void *ud), void *ud);
#endif
