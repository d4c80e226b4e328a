/* Agent runs. See runs.h. */
#include "gate/runs.h"

#include "base/hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 16
#define SWEEP_EVERY 1024 /* insertions into a shard between sweeps of its idle runs */

typedef struct {
    uint64_t hash;
    char *key;          /* app \x1f customer \x1f run; NULL: an empty slot */
    size_t keylen;
    tg_run_state st;
    int64_t last_ms;
    bool dead;          /* swept: a tombstone, reused by an insertion */
} run_ent;

typedef struct {
    pthread_mutex_t mu;
    run_ent *e;         /* open addressing, cap a power of two */
    size_t n;           /* live runs */
    size_t used;        /* slots with a key: live runs and tombstones */
    size_t cap, inserts;
} shard;

struct tg_runs {
    shard s[SHARDS];
};

tg_runs *tg_runs_new(void)
{
    tg_runs *r = calloc(1, sizeof *r);
    if (r)
        for (int i = 0; i < SHARDS; i++) pthread_mutex_init(&r->s[i].mu, NULL);
    return r;
}

void tg_runs_free(tg_runs *r)
{
    if (!r) return;
    for (int i = 0; i < SHARDS; i++) {
        for (size_t j = 0; j < r->s[i].cap; j++) free(r->s[i].e[j].key);
        free(r->s[i].e);
        pthread_mutex_destroy(&r->s[i].mu);
    }
    free(r);
}

tg_run_limits tg_runs_limits(const tg_plan *p, const tg_app *a)
{
    tg_run_limits l = a ? a->runs : (tg_run_limits){0};
    if (p && p->has_run_steps) l.max_steps = p->runs.max_steps;
    if (p && p->has_run_cost) l.max_cost = p->runs.max_cost;
    return l;
}

/* The key of a run in buf (cap bytes); its length, 0 when it does not fit. */
static size_t make_key(char *buf, size_t cap, tg_str app, tg_str customer, tg_str run)
{
    size_t n = app.n + customer.n + run.n + 2;
    if (n > cap) return 0;
    memcpy(buf, app.p, app.n);
    buf[app.n] = '\x1f';
    memcpy(buf + app.n + 1, customer.p, customer.n);
    buf[app.n + 1 + customer.n] = '\x1f';
    memcpy(buf + app.n + 2 + customer.n, run.p, run.n);
    return n;
}

static run_ent *find(shard *s, uint64_t h, const char *key, size_t n)
{
    if (!s->cap) return NULL;
    for (size_t j = h & (s->cap - 1); s->e[j].key; j = (j + 1) & (s->cap - 1))
        if (!s->e[j].dead && s->e[j].hash == h && s->e[j].keylen == n && !memcmp(s->e[j].key, key, n))
            return &s->e[j];
    return NULL;
}

/* Forgets the runs idle since before now_ms - TG_RUN_IDLE_MS (tombstones,
 * so probe chains stay whole). */
static void sweep(shard *s, int64_t now_ms)
{
    for (size_t j = 0; j < s->cap; j++) {
        run_ent *e = &s->e[j];
        if (e->key && !e->dead && e->last_ms < now_ms - TG_RUN_IDLE_MS) {
            e->dead = true;
            s->n--;
        }
    }
}

static int grow(shard *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    run_ent *e = calloc(cap, sizeof *e);
    if (!e) return TG_ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        run_ent *o = &s->e[i];
        if (!o->key) continue;
        if (o->dead) {
            free(o->key);
            continue;
        }
        size_t j = o->hash & (cap - 1);
        while (e[j].key) j = (j + 1) & (cap - 1);
        e[j] = *o;
    }
    free(s->e);
    s->e = e;
    s->cap = cap;
    s->used = s->n;
    return TG_OK;
}

/* The entry of key, made when new (at now_ms); NULL when out of memory. */
static run_ent *get_or_add(shard *s, uint64_t h, const char *key, size_t n, int64_t now_ms)
{
    run_ent *e = find(s, h, key, n);
    if (e) return e;
    if (++s->inserts % SWEEP_EVERY == 0) sweep(s, now_ms);
    /* tombstones count: a probe stops only at an empty slot */
    if (2 * (s->used + 1) > s->cap && grow(s)) return NULL;
    size_t j = h & (s->cap - 1);
    while (s->e[j].key && !s->e[j].dead) j = (j + 1) & (s->cap - 1);
    char *k = malloc(n);
    if (!k) return NULL;
    memcpy(k, key, n);
    if (s->e[j].key) free(s->e[j].key); /* a tombstone's */
    else s->used++;
    s->e[j] = (run_ent){.hash = h, .key = k, .keylen = n, .last_ms = now_ms};
    s->n++;
    return &s->e[j];
}

#define KEY_MAX (3 * 128 + 2)

/* The shard and hash of a run, its key in buf; NULL for a key too long. */
static shard *locate(tg_runs *r, tg_str app, tg_str customer, tg_str run, char buf[KEY_MAX],
                     size_t *n, uint64_t *h)
{
    if (!(*n = make_key(buf, KEY_MAX, app, customer, run))) return NULL;
    *h = tg_hash64(buf, *n, 0x7235);
    return &r->s[*h % SHARDS];
}

int tg_runs_admit(tg_runs *r, tg_str app, tg_str customer, tg_str run, const tg_run_limits *lim,
                  int64_t now_ms, tg_run_verdict *v, tg_run_state *st)
{
    char buf[KEY_MAX];
    size_t n;
    uint64_t h;
    shard *s = locate(r, app, customer, run, buf, &n, &h);
    if (!s) return TG_EINVAL;
    pthread_mutex_lock(&s->mu);
    run_ent *e = get_or_add(s, h, buf, n, now_ms);
    int rc = e ? TG_OK : TG_ENOMEM;
    if (e) {
        *v = lim->max_steps && e->st.steps >= lim->max_steps ? TG_RUN_STEPS
             : lim->max_cost && e->st.cost >= lim->max_cost  ? TG_RUN_COST
                                                             : TG_RUN_OK;
        if (*v == TG_RUN_OK) {
            e->st.steps++;
            e->last_ms = now_ms;
        }
        *st = e->st;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The run's entry with its shard locked (*s; the caller unlocks it), or
 * NULL (nothing locked when *s is NULL too: a key too long). */
static run_ent *lock_find(tg_runs *r, tg_str app, tg_str customer, tg_str run, shard **s)
{
    char buf[KEY_MAX];
    size_t n;
    uint64_t h;
    if (!(*s = locate(r, app, customer, run, buf, &n, &h))) return NULL;
    pthread_mutex_lock(&(*s)->mu);
    return find(*s, h, buf, n);
}

void tg_runs_cancel(tg_runs *r, tg_str app, tg_str customer, tg_str run)
{
    shard *s;
    run_ent *e = lock_find(r, app, customer, run, &s);
    if (e && e->st.steps) e->st.steps--;
    if (s) pthread_mutex_unlock(&s->mu);
}

void tg_runs_cost(tg_runs *r, tg_str app, tg_str customer, tg_str run, tg_nanos cost)
{
    shard *s;
    run_ent *e = lock_find(r, app, customer, run, &s);
    if (e && __builtin_add_overflow(e->st.cost, cost, &e->st.cost)) e->st.cost = INT64_MAX;
    if (s) pthread_mutex_unlock(&s->mu);
}

int tg_runs_note(tg_runs *r, tg_str app, tg_str customer, tg_str run, tg_nanos cost, int64_t t_ms)
{
    char buf[KEY_MAX];
    size_t n;
    uint64_t h;
    shard *s = locate(r, app, customer, run, buf, &n, &h);
    if (!s) return TG_EINVAL;
    pthread_mutex_lock(&s->mu);
    run_ent *e = get_or_add(s, h, buf, n, t_ms);
    if (e) {
        e->st.steps++;
        if (__builtin_add_overflow(e->st.cost, cost, &e->st.cost)) e->st.cost = INT64_MAX;
        if (t_ms > e->last_ms) e->last_ms = t_ms;
    }
    pthread_mutex_unlock(&s->mu);
    return e ? TG_OK : TG_ENOMEM;
}

bool tg_runs_get(tg_runs *r, tg_str app, tg_str customer, tg_str run, tg_run_state *st)
{
    shard *s;
    run_ent *e = lock_find(r, app, customer, run, &s);
    if (e) *st = e->st;
    if (s) pthread_mutex_unlock(&s->mu);
    return e != NULL;
}
