/* The registry of customers created at runtime. See customers.h.
 * Open addressing over FNV-1a hashes of the id; grows at 1/2 load. */
#include "gate/customers.h"

#include "base/hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *id; /* NULL: empty slot */
    tg_customer_info info;
} entry;

struct tg_customers {
    pthread_mutex_t mu;
    entry *slots;
    size_t cap, n;
};

tg_customers *tg_customers_new(void)
{
    tg_customers *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void tg_customers_free(tg_customers *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->cap; i++)
        free(c->slots[i].id);
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static entry *find(tg_customers *c, tg_str id)
{
    if (!c->cap) return NULL;
    size_t i = tg_hash64(id.p, id.n, 0) & (c->cap - 1);
    for (;; i = (i + 1) & (c->cap - 1)) {
        entry *e = &c->slots[i];
        if (!e->id) return e;
        if (strlen(e->id) == id.n && memcmp(e->id, id.p, id.n) == 0) return e;
    }
}

static int grow(tg_customers *c)
{
    size_t cap = c->cap ? c->cap * 2 : 64;
    entry *slots = calloc(cap, sizeof *slots);
    if (!slots) return TG_ENOMEM;
    entry *old = c->slots;
    size_t oldcap = c->cap;
    c->slots = slots;
    c->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].id) *find(c, tg_str_c(old[i].id)) = old[i];
    free(old);
    return TG_OK;
}

/* Under the lock. */
static int add(tg_customers *c, tg_str id, tg_str app, tg_str plan, entry **out)
{
    entry *e = find(c, id);
    if (e && e->id) {
        *out = e;
        return TG_OK;
    }
    if ((c->n + 1) * 2 > c->cap) {
        if (grow(c)) return TG_ENOMEM;
        e = find(c, id);
    }
    char *copy = tg_str_dup(id);
    if (!copy) return TG_ENOMEM;
    e->id = copy;
    tg_record_set(e->info.app, app.p, app.n);
    tg_record_set(e->info.plan, plan.p, plan.n);
    c->n++;
    *out = e;
    return TG_OK;
}

int tg_customers_put(tg_customers *c, tg_str id, tg_str app, tg_str plan)
{
    entry *e;
    pthread_mutex_lock(&c->mu);
    int rc = add(c, id, app, plan, &e);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

bool tg_customers_get(tg_customers *c, tg_str id, tg_customer_info *out)
{
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, id);
    bool hit = e && e->id;
    if (hit) *out = e->info;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

int tg_customers_get_or_add(tg_customers *c, tg_str id, tg_str app, tg_str plan, tg_customer_info *out)
{
    entry *e;
    pthread_mutex_lock(&c->mu);
    int rc = add(c, id, app, plan, &e);
    if (!rc) *out = e->info;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int tg_customers_set_plan(tg_customers *c, tg_str id, tg_str app, tg_str plan)
{
    entry *e;
    pthread_mutex_lock(&c->mu);
    int rc = add(c, id, app, plan, &e);
    if (!rc) tg_record_set(e->info.plan, plan.p, plan.n);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

size_t tg_customers_on_plan(tg_customers *c, tg_str plan)
{
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i].id && tg_str_eq(tg_str_c(c->slots[i].info.plan), plan)) n++;
    pthread_mutex_unlock(&c->mu);
    return n;
}
