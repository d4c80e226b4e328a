/* base/pmap.c: objects found by key without a lock; one object per key
 * however many threads race to add it; growth past many tables keeps
 * every object findable; an object the map made is freed with it. */
#include "base/hash.h"
#include "base/pmap.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define KEYS 20000

static atomic_int made, freed;

static bool same(const void *obj, const void *key) { return *(const int *)obj == *(const int *)key; }

static void *make(void *ud)
{
    int *o = malloc(sizeof *o);
    if (o) *o = *(int *)ud;
    atomic_fetch_add(&made, 1);
    return o;
}

static void drop(void *obj)
{
    atomic_fetch_add(&freed, 1);
    free(obj);
}

static uint64_t h(int k) { return tg_hash64(&k, sizeof k, 1); }

static void test_get_and_grow(void **state)
{
    (void)state;
    atomic_store(&made, 0);
    atomic_store(&freed, 0);
    tg_pmap *m = tg_pmap_new();
    for (int k = 0; k < KEYS; k++) {
        assert_null(tg_pmap_get(m, h(k), &k, same));
        int *o = tg_pmap_get_or_add(m, h(k), &k, same, make, &k);
        assert_int_equal(*o, k);
        assert_ptr_equal(tg_pmap_get_or_add(m, h(k), &k, same, make, &k), o);
    }
    for (int k = 0; k < KEYS; k++) assert_int_equal(*(int *)tg_pmap_get(m, h(k), &k, same), k);
    assert_int_equal(atomic_load(&made), KEYS);
    tg_pmap_free(m, drop);
    assert_int_equal(atomic_load(&freed), KEYS);
}

typedef struct {
    tg_pmap *m;
    int *seen[2000];
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    for (int k = 0; k < 2000; k++) {
        int key = k;
        r->seen[k] = tg_pmap_get_or_add(r->m, h(key), &key, same, make, &key);
    }
    return NULL;
}

static void test_race(void **state)
{
    (void)state;
    atomic_store(&made, 0);
    tg_pmap *m = tg_pmap_new();
    static racer r[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        r[i].m = m;
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&made), 2000);
    for (int k = 0; k < 2000; k++)
        for (int i = 1; i < 8; i++) assert_ptr_equal(r[i].seen[k], r[0].seen[k]);
    tg_pmap_free(m, drop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_get_and_grow), cmocka_unit_test(test_race)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
