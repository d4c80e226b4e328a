/* A map of long-lived objects, read without a lock. See pmap.h.
 *
 * A slot's hash is written before its object is published (release), and
 * a reader reads the object first (acquire), so a reader that sees the
 * object sees its hash. */
#include "base/pmap.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct {
    uint64_t hash;
    _Atomic(void *) obj;
} slot;

typedef struct table {
    size_t cap;          /* a power of two */
    struct table *older; /* the table this one replaced */
    slot slots[];
} table;

struct tg_pmap {
    _Atomic(table *) cur;
    pthread_mutex_t mu; /* serialises insertion and growth */
    size_t n;           /* objects, under mu */
};

static table *table_new(size_t cap)
{
    table *t = calloc(1, sizeof *t + cap * sizeof t->slots[0]);
    if (!t) return NULL;
    t->cap = cap;
    for (size_t i = 0; i < cap; i++) atomic_init(&t->slots[i].obj, NULL);
    return t;
}

tg_pmap *tg_pmap_new(void)
{
    tg_pmap *m = calloc(1, sizeof *m);
    table *t = table_new(64);
    if (!m || !t) {
        free(m);
        free(t);
        return NULL;
    }
    atomic_init(&m->cur, t);
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void tg_pmap_free(tg_pmap *m, void (*free_obj)(void *obj))
{
    if (!m) return;
    table *t = atomic_load_explicit(&m->cur, memory_order_relaxed);
    for (size_t i = 0; free_obj && i < t->cap; i++) {
        void *o = atomic_load_explicit(&t->slots[i].obj, memory_order_relaxed);
        if (o) free_obj(o);
    }
    while (t) {
        table *older = t->older;
        free(t);
        t = older;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void *probe(table *t, uint64_t hash, const void *key, tg_pmap_eq eq)
{
    for (size_t i = hash & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        void *o = atomic_load_explicit(&t->slots[i].obj, memory_order_acquire);
        if (!o || (t->slots[i].hash == hash && eq(o, key))) return o;
    }
}

/* Puts o into t's first free slot on its probe path, publishing it. */
static void place(table *t, uint64_t hash, void *o)
{
    size_t i = hash & (t->cap - 1);
    while (atomic_load_explicit(&t->slots[i].obj, memory_order_relaxed)) i = (i + 1) & (t->cap - 1);
    t->slots[i].hash = hash;
    atomic_store_explicit(&t->slots[i].obj, o, memory_order_release);
}

void *tg_pmap_get(tg_pmap *m, uint64_t hash, const void *key, tg_pmap_eq eq)
{
    return probe(atomic_load_explicit(&m->cur, memory_order_acquire), hash, key, eq);
}

/* Under m->mu. */
static int grow(tg_pmap *m)
{
    table *old = atomic_load_explicit(&m->cur, memory_order_relaxed);
    table *t = table_new(old->cap * 2);
    if (!t) return -1;
    for (size_t i = 0; i < old->cap; i++) {
        void *o = atomic_load_explicit(&old->slots[i].obj, memory_order_relaxed);
        if (o) place(t, old->slots[i].hash, o);
    }
    t->older = old;
    atomic_store_explicit(&m->cur, t, memory_order_release);
    return 0;
}

void *tg_pmap_get_or_add(tg_pmap *m, uint64_t hash, const void *key, tg_pmap_eq eq,
                         void *(*make)(void *ud), void *ud)
{
    void *o = tg_pmap_get(m, hash, key, eq);
    if (o) return o;
    pthread_mutex_lock(&m->mu);
    table *t = atomic_load_explicit(&m->cur, memory_order_relaxed);
    if ((o = probe(t, hash, key, eq))) goto out;
    if ((m->n + 1) * 2 > t->cap) {
        if (grow(m)) goto out;
        t = atomic_load_explicit(&m->cur, memory_order_relaxed);
    }
    if (!(o = make(ud))) goto out;
    place(t, hash, o);
    m->n++;
out:
    pthread_mutex_unlock(&m->mu);
    return o;
}
